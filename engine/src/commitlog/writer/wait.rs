//! Sleeping between turns: in io_uring_enter until a completion, a producer's doorbell
//! (an eventfd read kept armed), a pin going away or the next deadline; optionally
//! spinning for `writer_spin` first. Writer thread only.

use std::sync::mpsc::TryRecvError;
use std::time::{Duration, Instant};

use super::inflight::OP_WAKE;
use super::Writer;
use crate::commitlog::config::FlushMode;

/// How often the loop wakes with nothing to do, to check deadlines.
const TICK: Duration = Duration::from_millis(5);

impl Writer {
    pub(super) fn wait(&mut self, blocked: bool) {
        let busy = !self.inflight.is_empty() || self.fsync_inflight.is_some();
        if !self.wake_armed {
            let fd = self.shared.doorbell.raw_fd();
            let buf: *mut u64 = &mut *self.wake_buf;
            // SAFETY: wake_buf is boxed, owned by the writer, and not touched until this
            // read completes (wake_armed guards re-arming).
            unsafe { self.ring.push_eventfd_read(fd, buf, OP_WAKE) };
            self.wake_armed = true;
        }
        if blocked && !busy {
            if let Some(pins) = self.pin_wait {
                // Room waits for tail pins (ring bytes an HA sender handed to the
                // kernel): sleep until one goes (a pin's drop rings the doorbell), a
                // command comes, or TICK passes (make_room then looks again and raises
                // pin pressure once it is due). Never spin.
                self.shared.doorbell.going_to_sleep();
                if self.shared.tail.unpins() != pins.unpins {
                    self.shared.doorbell.awake();
                    return;
                }
                if let Err(e) = self.ring.submit_and_wait(1, Some(TICK)) {
                    self.fail(format!("io_uring_enter failed: {e}"));
                }
                self.shared.doorbell.awake();
                return;
            }
            // Waiting for room with nothing in flight and no pin in the way cannot
            // happen: room only needs written pages, and maybe_write just submitted them.
            self.ring.submit_and_wait(0, None).ok();
            return;
        }
        if self.spin_for_work(blocked) {
            return;
        }
        let timeout = self.next_timeout();
        self.shared.doorbell.going_to_sleep();
        if self.stash.is_none() && self.has_queued() {
            self.shared.doorbell.awake();
            let _ = self.ring.submit_and_wait(0, None);
            return;
        }
        if let Err(e) = self.ring.submit_and_wait(1, Some(timeout)) {
            self.fail(format!("io_uring_enter failed: {e}"));
        }
        self.shared.doorbell.awake();
    }

    /// Submits what is queued, then polls for a completion or a new command for up to
    /// `writer_spin`. Returns true if there is something to do.
    fn spin_for_work(&mut self, blocked: bool) -> bool {
        let spin = self.shared.cfg.writer_spin;
        if spin.is_zero() {
            return false;
        }
        if let Err(e) = self.ring.submit_and_wait(0, None) {
            self.fail(format!("io_uring_enter failed: {e}"));
            return true;
        }
        let until = Instant::now() + spin;
        loop {
            if self.ring.has_completions()
                || (!blocked && self.stash.is_none() && self.has_queued())
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }

    /// Whether a command is waiting in the queue (peeks by taking it into the stash).
    fn has_queued(&mut self) -> bool {
        match self.rx.try_recv() {
            Ok(cmd) => {
                self.stash = Some(cmd);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        }
    }

    fn next_timeout(&self) -> Duration {
        let mut t = TICK;
        let deadlines = [
            self.durable_acks.next_deadline(),
            self.write_acks.next_deadline(),
        ];
        for deadline in deadlines.into_iter().flatten() {
            t = t.min(deadline.saturating_duration_since(Instant::now()));
        }
        if self.shared.cfg.flush_mode == FlushMode::Async && self.durable_end < self.write_end {
            t = t.min(
                self.shared
                    .cfg
                    .flush_interval
                    .saturating_sub(self.last_fsync.elapsed()),
            );
        }
        t.max(Duration::from_micros(50))
    }
}
