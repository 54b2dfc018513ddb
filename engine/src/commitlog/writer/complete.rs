//! Completions: written and durable ends advanced over the completed prefix of writes,
//! acknowledgements released or expired, and a failed write or fdatasync turned into a
//! stopped writer. Writer thread only.

use std::sync::atomic::Ordering;
use std::time::Instant;

use super::inflight::{
    untag, OP_FSYNC, OP_LINKED_FSYNC, OP_MASK, OP_WAKE, OP_WRITE, WRITE_ID_MASK,
};
use super::Writer;
use crate::commitlog::progress::Level;
use crate::io::faults;
use crate::offset::PhyOffset;

impl Writer {
    pub(super) fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.completions);
        self.ring.reap(&mut cqes);
        for cqe in cqes.drain(..) {
            match cqe.user_data & OP_MASK {
                OP_WAKE => self.wake_armed = false,
                OP_WRITE | OP_LINKED_FSYNC => self.on_piece(cqe.user_data, cqe.result),
                OP_FSYNC => self.on_fsync(cqe.result),
                other => debug_assert!(false, "unknown completion kind {other:#x}"),
            }
        }
        self.completions = cqes;
        self.advance_written();
        let stats = &self.shared.stats;
        let (sqes, enters) = self.ring.counters();
        stats.uring_sqes.store(sqes, Ordering::Relaxed);
        stats.uring_enters.store(enters, Ordering::Relaxed);
    }

    /// One op of a piece of a write completed: a write (maybe short) or its linked
    /// fdatasync. A piece whose write came back short is written again from the last
    /// whole page the kernel took, once its fdatasync (cancelled by the short write) is
    /// back too.
    fn on_piece(&mut self, user_data: u64, result: i32) {
        let is_write = user_data & OP_MASK == OP_WRITE;
        let result = if is_write && result >= 0 && faults::write_should_fail() {
            -libc::EIO
        } else {
            result
        };
        let (id, part) = untag(user_data);
        let index = id.wrapping_sub(self.first_write_id & WRITE_ID_MASK) & WRITE_ID_MASK;
        let Some(write) = self.inflight.get_mut(index as usize) else {
            debug_assert!(false, "completion for unknown write {id}");
            return;
        };
        let Some(p) = write.parts.get_mut(part) else {
            debug_assert!(false, "completion for unknown piece {part} of write {id}");
            return;
        };
        let outcome = if is_write {
            p.piece.on_write(result)
        } else {
            p.piece.on_linked_fsync(result)
        }
        .map_err(|why| format!("{why} ({})", p.seg.path.display()));
        let resubmit = p.piece.needs_resubmit();
        match outcome {
            Err(why) => self.fail(why),
            Ok(()) if resubmit && self.failed.is_none() => self.push_part(index as usize, part),
            Ok(()) => {}
        }
    }

    /// Moves `write_end` over the prefix of writes whose every piece was written in full
    /// (writes complete in any order), and `durable_end` with it for durable writes.
    fn advance_written(&mut self) {
        let failed = self.failed.is_some();
        let mut written = None;
        while self.inflight.front().is_some_and(|w| w.settled(failed)) {
            let w = self.inflight.pop_front().expect("front exists");
            self.first_write_id = self.first_write_id.wrapping_add(1);
            if w.durable && !failed {
                let us = w.submitted.elapsed().as_micros() as u64;
                self.shared.stats.flush_us.record(us);
            }
            written = Some((w.end, w.durable));
        }
        if self.inflight.is_empty() && failed {
            self.submitted_end = self.write_end;
        }
        let Some((end, durable)) = written else {
            return;
        };
        if failed {
            return;
        }
        self.write_end = end;
        self.shared
            .progress
            .publish(Level::Write, PhyOffset::new(end));
        self.write_acks.release_upto(end);
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
            let us = self.last_fsync.elapsed().as_micros() as u64;
            self.shared.stats.flush_us.record(us);
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
        self.shared
            .progress
            .publish(Level::Durable, PhyOffset::new(end));
        let answered = self.durable_acks.release_upto(end);
        if answered > 0 {
            self.shared.stats.group_commit.record(answered as u64);
        }
    }

    /// Answers FLUSH_DISK_TIMEOUT to every ack past its own deadline.
    pub(super) fn expire_acks(&mut self) {
        let now = Instant::now();
        self.durable_acks.expire(now);
        self.write_acks.expire(now);
    }
}
