//! Waits for an offset to be reached, kept in offset order so that each progress event
//! releases the whole prefix it covers in one pass. A waiter is either a blocked thread or
//! a callback with its own deadline (expired by a periodic `expire` sweep: no per-waiter
//! timers, no counting of wake-ups). Used for the CommitLog's published offsets and for
//! the HA master's slave acknowledgements.

use crate::sync::lock;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Called once: true when the offset was reached, false at its deadline or on stop.
pub type Callback = Box<dyn FnOnce(bool) + Send>;

struct Parker {
    fired: Mutex<bool>,
    cond: Condvar,
}

enum Waiter {
    Thread(Arc<Parker>),
    Callback { deadline: Instant, done: Callback },
}

impl Waiter {
    fn fire(self, reached: bool) {
        match self {
            Waiter::Thread(p) => {
                *lock(&p.fired) = true;
                p.cond.notify_one();
            }
            Waiter::Callback { done, .. } => done(reached),
        }
    }
}

#[derive(Default)]
pub struct OffsetWaiters {
    waiters: Mutex<BTreeMap<(i64, u64), Waiter>>,
    seq: AtomicU64,
    has_waiters: AtomicBool,
}

impl OffsetWaiters {
    /// Cheap check for the publisher's fast path.
    #[inline]
    pub fn is_empty(&self) -> bool {
        !self.has_waiters.load(Ordering::Acquire)
    }

    fn insert(&self, offset: i64, w: Waiter) -> (i64, u64) {
        let key = (offset, self.seq.fetch_add(1, Ordering::Relaxed));
        let mut map = lock(&self.waiters);
        map.insert(key, w);
        self.has_waiters.store(true, Ordering::Release);
        key
    }

    /// Blocks until `done()` holds (the offset was reached or the source stopped), a
    /// release covering `offset` wakes us, or `timeout` passes. Returns `done()`.
    /// `done` is re-checked after registering, so a release in between is never missed.
    pub fn wait(&self, offset: i64, timeout: Duration, done: impl Fn() -> bool) -> bool {
        if done() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        let parker = Arc::new(Parker {
            fired: Mutex::new(false),
            cond: Condvar::new(),
        });
        let key = self.insert(offset, Waiter::Thread(parker.clone()));
        if !done() {
            let mut fired = lock(&parker.fired);
            while !*fired {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                fired = parker
                    .cond
                    .wait_timeout(fired, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let mut map = lock(&self.waiters);
        map.remove(&key);
        self.has_waiters.store(!map.is_empty(), Ordering::Release);
        drop(map);
        done()
    }

    /// Calls `cb(true)` once a release covers `offset`, or `cb(false)` at `deadline` (see
    /// [`OffsetWaiters::expire`]) or on [`OffsetWaiters::release_all`]. `current` is the
    /// source's offset now, re-read after registering so that a release in between is
    /// never missed.
    pub fn on_reached(
        &self,
        offset: i64,
        deadline: Instant,
        cb: Callback,
        current: impl Fn() -> i64,
    ) {
        if current() >= offset {
            return cb(true);
        }
        self.insert(offset, Waiter::Callback { deadline, done: cb });
        let now = current();
        if now >= offset {
            self.release_upto(now);
        }
    }

    /// Releases every waiter at or below `offset`, in offset order, in one pass.
    pub fn release_upto(&self, offset: i64) {
        let released = {
            let mut map = lock(&self.waiters);
            let rest = map.split_off(&(offset.saturating_add(1), 0));
            let released = std::mem::replace(&mut *map, rest);
            self.has_waiters.store(!map.is_empty(), Ordering::Release);
            released
        };
        for w in released.into_values() {
            w.fire(true);
        }
    }

    /// Releases every waiter: threads wake (and re-check), callbacks get false.
    pub fn release_all(&self) {
        let released = std::mem::take(&mut *lock(&self.waiters));
        self.has_waiters.store(false, Ordering::Release);
        for w in released.into_values() {
            w.fire(false);
        }
    }

    /// Fails every callback whose own deadline has passed.
    pub fn expire(&self, now: Instant) {
        if self.is_empty() {
            return;
        }
        let expired: Vec<Waiter> = {
            let mut map = lock(&self.waiters);
            let keys: Vec<(i64, u64)> = map
                .iter()
                .filter(|(_, w)| matches!(w, Waiter::Callback { deadline, .. } if *deadline <= now))
                .map(|(k, _)| *k)
                .collect();
            let expired = keys.iter().filter_map(|k| map.remove(k)).collect();
            self.has_waiters.store(!map.is_empty(), Ordering::Release);
            expired
        };
        for w in expired {
            w.fire(false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicI64;

    #[test]
    fn releases_the_covered_prefix_and_expires_by_own_deadline() {
        let w = OffsetWaiters::default();
        let at = AtomicI64::new(0);
        let log = Arc::new(Mutex::new(Vec::new()));
        let now = Instant::now();
        for (off, deadline_ms) in [(10, 1_000), (20, 10), (30, 1_000)] {
            let log = log.clone();
            w.on_reached(
                off,
                now + Duration::from_millis(deadline_ms),
                Box::new(move |ok| lock(&log).push((off, ok))),
                || at.load(Ordering::Acquire),
            );
        }
        at.store(15, Ordering::Release);
        w.release_upto(15);
        assert_eq!(*lock(&log), vec![(10, true)]);
        w.expire(now + Duration::from_millis(50));
        assert_eq!(*lock(&log), vec![(10, true), (20, false)]);
        w.release_upto(30);
        assert_eq!(*lock(&log), vec![(10, true), (20, false), (30, true)]);
        assert!(w.is_empty());
    }

    #[test]
    fn a_blocked_thread_wakes_on_release() {
        let w = Arc::new(OffsetWaiters::default());
        let at = Arc::new(AtomicI64::new(0));
        let (w2, at2) = (w.clone(), at.clone());
        let t = std::thread::spawn(move || {
            w2.wait(5, Duration::from_secs(5), || {
                at2.load(Ordering::Acquire) >= 5
            })
        });
        std::thread::sleep(Duration::from_millis(30));
        at.store(5, Ordering::Release);
        w.release_upto(5);
        assert!(t.join().unwrap());
        assert!(
            !w.wait(9, Duration::from_millis(10), || at.load(Ordering::Acquire)
                >= 9)
        );
    }
}
