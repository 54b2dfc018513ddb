//! Completions: written and durable ends advanced over the completed prefix of writes,
//! acknowledgements released or expired, and a failed write or fdatasync turned into a
//! stopped writer. Writer thread only.

use std::time::Instant;

use super::inflight::{OP_FSYNC, OP_MASK, OP_WAKE, OP_WRITE, WRITE_ID_MASK};
use super::Writer;
use crate::commitlog::progress::Level;
use crate::io::faults;

impl Writer {
    pub(super) fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.completions);
        self.ring.reap(&mut cqes);
        for cqe in cqes.drain(..) {
            match cqe.user_data & OP_MASK {
                OP_WAKE => self.wake_armed = false,
                OP_WRITE => self.on_write(cqe.user_data & WRITE_ID_MASK, cqe.result),
                OP_FSYNC => self.on_fsync(cqe.result),
                other => debug_assert!(false, "unknown completion kind {other:#x}"),
            }
        }
        self.completions = cqes;
    }

    fn on_write(&mut self, id: u64, result: i32) {
        let result = if result >= 0 && faults::write_should_fail() {
            -libc::EIO
        } else {
            result
        };
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            self.fail(format!(
                "CommitLog write to {} failed: {err}",
                self.current.path.display()
            ));
        }
        let index = id.wrapping_sub(self.first_write_id) as usize;
        let Some(write) = self.inflight.get_mut(index) else {
            debug_assert!(false, "completion for unknown write {id}");
            return;
        };
        write.ops_left -= 1;
        // Writes complete in any order; write_end moves over the completed prefix.
        let mut written = None;
        while self.inflight.front().is_some_and(|w| w.ops_left == 0) {
            let w = self.inflight.pop_front().expect("front exists");
            self.first_write_id += 1;
            written = Some((w.end, w.durable));
        }
        if self.inflight.is_empty() && self.failed.is_some() {
            self.submitted_end = self.write_end;
        }
        let Some((end, durable)) = written else {
            return;
        };
        if self.failed.is_some() {
            return;
        }
        self.write_end = end;
        self.shared.progress.publish(Level::Write, end as i64);
        if durable {
            self.set_durable(end);
        }
    }

    fn on_fsync(&mut self, result: i32) {
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            self.fail(format!("fdatasync of the CommitLog failed: {err}"));
        }
        let Some((target, left, _)) = self.fsync_inflight.as_mut() else {
            return;
        };
        *left -= 1;
        if *left == 0 {
            let target = *target;
            self.fsync_inflight = None;
            if self.failed.is_none() {
                self.set_durable(target);
            }
        }
    }

    fn set_durable(&mut self, end: u64) {
        if end <= self.durable_end {
            return;
        }
        self.durable_end = end;
        self.shared.progress.publish(Level::Durable, end as i64);
        self.acks.release_upto(end);
    }

    /// Answers FLUSH_DISK_TIMEOUT to every ack past its own deadline.
    pub(super) fn expire_acks(&mut self) {
        self.acks.expire(Instant::now());
    }
}
