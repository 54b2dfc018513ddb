//! Poison-tolerant locking: the one way client code takes a `Mutex` or `RwLock`, or waits
//! on a `Condvar`. Runs on whichever thread locks (caller threads, a connection's reader
//! thread, a push consumer's service, pull and consume threads).
//!
//! Policy: a lock poisoned by a thread that panicked while holding it is taken anyway
//! ([`PoisonError::into_inner`]). A panic on one thread (most often a user's listener or
//! request handler) must not turn every later call that touches the same lock into a
//! panic too, which is what `.lock().unwrap()` would do: one bad callback would wedge the
//! connection or the consumer for good.
//!
//! This is sound only because no critical section in the client leaves the guarded value
//! half-updated across a point where it can panic. Each one either
//! - makes assignments and container operations (`insert`, `remove`, `take`, `drain`,
//!   `push`) on plain data that is consistent after every step (the pending-request table,
//!   route and broker tables, offset and process-queue tables, the send-permit count);
//! - rebuilds what it uses before using it (a connection's write buffer is cleared before
//!   each frame); or
//! - guards no data at all (a process queue's consume lock, the consume workers' shared
//!   receiver).
//!
//! User callbacks run outside the locks (a connection's request handler is cloned out
//! first), or under the data-less consume lock, and listener panics are caught there.
//!
//! The same policy as `ringmq_engine::sync`; the client keeps its own copy because it does
//! not depend on the engine (only on the remoting crate and the record codec).
//! A new critical section must keep that property, or not use these helpers.

use std::sync::{
    Condvar, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard,
};
use std::time::Duration;

/// Locks `m`, recovering the guard if a panicking holder poisoned it (module docs).
pub(crate) fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, recovering the guard if a panicking writer poisoned it (module docs).
pub(crate) fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, recovering the guard if a panicking writer poisoned it (module docs).
pub(crate) fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv`, re-taking the lock even if poisoned meanwhile (module docs).
pub(crate) fn wait<'a, T>(cv: &Condvar, g: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
    cv.wait(g).unwrap_or_else(PoisonError::into_inner)
}

/// Waits on `cv` for at most `timeout`, re-taking the lock even if poisoned meanwhile
/// (module docs). Callers check their condition again; a timeout is not reported apart.
pub(crate) fn wait_timeout<'a, T>(
    cv: &Condvar,
    g: MutexGuard<'a, T>,
    timeout: Duration,
) -> MutexGuard<'a, T> {
    cv.wait_timeout(g, timeout)
        .unwrap_or_else(PoisonError::into_inner)
        .0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_lock_is_still_taken() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let l = std::sync::Arc::new(RwLock::new(2));
        let (m2, l2) = (m.clone(), l.clone());
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            let _w = l2.write().unwrap();
            panic!("poison both");
        })
        .join();
        assert!(m.is_poisoned() && l.is_poisoned());
        *lock(&m) += 1;
        *write(&l) += 1;
        assert_eq!((*lock(&m), *read(&l)), (2, 3));
        let g = wait_timeout(&Condvar::new(), lock(&m), Duration::from_millis(1));
        assert_eq!(*g, 2);
    }
}
