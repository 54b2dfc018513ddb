//! The offsets the engine publishes, `append_end >= write_end >= durable_end`, and waits
//! on them from any thread. Waiters sit in a map ordered by offset, so each progress
//! event releases the whole prefix it covers in one pass.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

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

struct Waiter {
    fired: Mutex<bool>,
    cond: Condvar,
}

struct Watch {
    offset: AtomicI64,
    seq: AtomicU64,
    waiters: Mutex<BTreeMap<(i64, u64), Arc<Waiter>>>,
    has_waiters: AtomicBool,
}

impl Watch {
    fn new(at: i64) -> Self {
        Watch {
            offset: AtomicI64::new(at),
            seq: AtomicU64::new(0),
            waiters: Mutex::new(BTreeMap::new()),
            has_waiters: AtomicBool::new(false),
        }
    }
}

pub struct Progress {
    watches: [Watch; 3],
    stopped: AtomicBool,
}

impl Progress {
    pub fn new(at: i64) -> Self {
        Progress {
            watches: [Watch::new(at), Watch::new(at), Watch::new(at)],
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
    pub fn publish(&self, level: Level, offset: i64) {
        let w = self.watch(level);
        let prev = w.offset.swap(offset, Ordering::AcqRel);
        debug_assert!(
            offset >= prev || level == Level::Append,
            "{level:?} went back from {prev} to {offset}"
        );
        if w.has_waiters.load(Ordering::Acquire) {
            self.release(w, Some(offset));
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
            self.release(w, None);
        }
    }

    pub fn is_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    fn release(&self, w: &Watch, upto: Option<i64>) {
        let released = {
            let mut map = w.waiters.lock().expect("waiters lock");
            let released = match upto {
                Some(off) => {
                    let rest = map.split_off(&(off + 1, 0));
                    std::mem::replace(&mut *map, rest)
                }
                None => std::mem::take(&mut *map),
            };
            w.has_waiters.store(!map.is_empty(), Ordering::Release);
            released
        };
        for waiter in released.into_values() {
            *waiter.fired.lock().expect("waiter lock") = true;
            waiter.cond.notify_one();
        }
    }

    /// Blocks until `level` reaches `offset`, the engine stops, or `timeout` passes.
    /// Returns whether the offset was reached.
    pub fn wait(&self, level: Level, offset: i64, timeout: Duration) -> bool {
        let w = self.watch(level);
        if w.offset.load(Ordering::Acquire) >= offset {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let waiter = Arc::new(Waiter {
            fired: Mutex::new(false),
            cond: Condvar::new(),
        });
        let key = (offset, w.seq.fetch_add(1, Ordering::Relaxed));
        {
            let mut map = w.waiters.lock().expect("waiters lock");
            map.insert(key, waiter.clone());
            w.has_waiters.store(true, Ordering::Release);
        }
        // Re-check after registering: a publish between the first check and the insert
        // would otherwise be missed.
        if w.offset.load(Ordering::Acquire) < offset && !self.is_stopped() {
            let mut fired = waiter.fired.lock().expect("waiter lock");
            while !*fired {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                fired = waiter
                    .cond
                    .wait_timeout(fired, deadline - now)
                    .expect("waiter lock")
                    .0;
            }
        }
        let mut map = w.waiters.lock().expect("waiters lock");
        map.remove(&key);
        w.has_waiters.store(!map.is_empty(), Ordering::Release);
        drop(map);
        w.offset.load(Ordering::Acquire) >= offset
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        p.publish(Level::Durable, 20);
        let first_two: Vec<bool> = handles.drain(..2).map(|h| h.join().unwrap()).collect();
        assert_eq!(first_two, vec![true, true]);
        assert!(!p.wait(Level::Durable, 30, Duration::from_millis(20)));
        p.publish(Level::Durable, 30);
        assert!(handles.pop().unwrap().join().unwrap());
    }
}
