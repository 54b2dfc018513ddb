//! The offsets the engine publishes, `append_end >= write_end >= durable_end`, and waits
//! on them from any thread (waiters in offset order, see `crate::waiters`).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use crate::offset::PhyOffset;
use crate::waiters::OffsetWaiters;

/// Which published offset a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Encoded into the tail ring (visible to readers and the dispatcher).
    Append,
    /// O_DIRECT write completed.
    Write,
    /// Made durable (RWF_DSYNC write or fdatasync completed).
    Durable,
}

struct Watch {
    offset: AtomicI64,
    waiters: OffsetWaiters,
}

pub struct Progress {
    watches: [Watch; 3],
    stopped: AtomicBool,
}

impl Progress {
    pub fn new(at: i64) -> Self {
        let watch = || Watch {
            offset: AtomicI64::new(at),
            waiters: OffsetWaiters::default(),
        };
        Progress {
            watches: [watch(), watch(), watch()],
            stopped: AtomicBool::new(false),
        }
    }

    fn watch(&self, level: Level) -> &Watch {
        &self.watches[level as usize]
    }

    /// The current value of `level`.
    #[inline]
    pub fn get(&self, level: Level) -> i64 {
        self.watch(level).offset.load(Ordering::Acquire)
    }

    /// Publishes a new value of `level` and releases every waiter it covers, in offset order.
    ///
    /// Asserts the order the engine promises, `append_end >= write_end >= durable_end`,
    /// and that `write_end` and `durable_end` never go back (only [`Progress::reset`]
    /// moves them down). Only the writer thread publishes, so the other levels cannot
    /// move while this one is checked against them.
    pub fn publish(&self, level: Level, offset: PhyOffset) {
        let offset = offset.wire();
        let (append, write, durable) = (
            self.get(Level::Append),
            self.get(Level::Write),
            self.get(Level::Durable),
        );
        let ordered = match level {
            Level::Append => offset >= write,
            Level::Write => append >= offset && offset >= durable,
            Level::Durable => write >= offset,
        };
        assert!(
            ordered,
            "publishing {level:?} = {offset} breaks append_end {append} >= write_end {write} \
             >= durable_end {durable}"
        );
        let w = self.watch(level);
        let prev = w.offset.swap(offset, Ordering::AcqRel);
        assert!(
            offset >= prev || level == Level::Append,
            "{level:?} went back from {prev} to {offset}"
        );
        if !w.waiters.is_empty() {
            w.waiters.release_upto(offset);
        }
    }

    /// Moves every level to `offset` (used when a slave truncates a diverged tail).
    pub fn reset(&self, offset: i64) {
        for w in &self.watches {
            w.offset.store(offset, Ordering::Release);
        }
    }

    /// Wakes all waiters (they re-check and see `is_stopped`).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        for w in &self.watches {
            w.waiters.release_all();
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Calls `cb(true)` once `level` reaches `offset` (at once if it has), or `cb(false)`
    /// when the engine stops. `cb` runs on the publishing thread (the writer): keep it
    /// short, such as one eventfd write that wakes an io_uring loop.
    pub fn on_reached(&self, level: Level, offset: i64, cb: crate::waiters::Callback) {
        if self.is_stopped() {
            return cb(false);
        }
        let w = self.watch(level);
        // Progress watches are never expired: the deadline only has to be far away.
        let deadline = std::time::Instant::now() + Duration::from_secs(365 * 24 * 3600);
        w.waiters
            .on_reached(offset, deadline, cb, || w.offset.load(Ordering::Acquire));
        if self.is_stopped() {
            // `stop` may have released the waiters before this one was in.
            w.waiters.release_all();
        }
    }

    /// Blocks until `level` reaches `offset`, the engine stops, or `timeout` passes.
    /// Returns whether the offset was reached.
    pub fn wait(&self, level: Level, offset: i64, timeout: Duration) -> bool {
        let w = self.watch(level);
        w.waiters.wait(offset, timeout, || {
            w.offset.load(Ordering::Acquire) >= offset || self.is_stopped()
        });
        w.offset.load(Ordering::Acquire) >= offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn releases_prefix_only() {
        let p = Arc::new(Progress::new(0));
        let mut handles = Vec::new();
        for target in [10, 20, 30] {
            let p = p.clone();
            handles.push(std::thread::spawn(move || {
                p.wait(Level::Durable, target, Duration::from_secs(5))
            }));
        }
        std::thread::sleep(Duration::from_millis(50));
        p.publish(Level::Append, PhyOffset::new(30));
        p.publish(Level::Write, PhyOffset::new(30));
        p.publish(Level::Durable, PhyOffset::new(20));
        let first_two: Vec<bool> = handles.drain(..2).map(|h| h.join().unwrap()).collect();
        assert_eq!(first_two, vec![true, true]);
        assert!(!p.wait(Level::Durable, 30, Duration::from_millis(20)));
        p.publish(Level::Durable, PhyOffset::new(30));
        assert!(handles.pop().unwrap().join().unwrap());
    }

    #[test]
    #[should_panic(expected = "breaks append_end")]
    fn durable_past_written_is_refused() {
        let p = Progress::new(0);
        p.publish(Level::Append, PhyOffset::new(100));
        p.publish(Level::Write, PhyOffset::new(50));
        p.publish(Level::Durable, PhyOffset::new(60));
    }

    #[test]
    #[should_panic(expected = "breaks append_end")]
    fn written_past_appended_is_refused() {
        let p = Progress::new(0);
        p.publish(Level::Append, PhyOffset::new(10));
        p.publish(Level::Write, PhyOffset::new(20));
    }
}
