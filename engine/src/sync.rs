//! Poison-tolerant locking: the one way engine code (and the crates built on it) takes a
//! `Mutex` or `RwLock`. Runs on whichever thread locks.
//!
//! Policy: a lock poisoned by a thread that panicked while holding it is taken anyway
//! ([`PoisonError::into_inner`]). A panic on one thread (a bug in one request, a failed
//! assertion in a callback) must not turn every later request that touches the same lock
//! into a panic too, which is what `.lock().unwrap()` would do: one bad request would take
//! the whole broker down, lock by lock.
//!
//! This is sound only because no critical section in the engine leaves the guarded value
//! half-updated across a point where it can panic. Each one either
//! - makes a single assignment or container operation (`insert`, `remove`, `push`,
//!   `take`, `split_off`, `extend`, `retain`) on plain data: the value is the old or the
//!   new one, never in between (CommitLog `stopped`/sender/thread slots, tail pins and
//!   `retain_start`, the segment table, the ConsumeQueue tables and per-queue file lists,
//!   offset waiters, metadata tables);
//! - guards no data at all (`Mutex<()>`: the dispatch gate, the checkpoint gate, the
//!   metadata persist locks), so there is nothing to leave inconsistent; or
//! - in one case, `Tail::reset_with`, runs the writer's own closure (re-seed ring bytes,
//!   reset the published offsets) under the write lock after moving `retain_start`. That
//!   closure only copies bytes of a length it computed and stores offsets; a panic there
//!   is a writer bug that ends the writer thread, after which the broker acknowledges
//!   nothing more (see `commitlog::writer`).
//!
//! A new critical section must keep that property, or not use these helpers.

use std::sync::{Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// Locks `m`, recovering the guard if a panicking holder poisoned it (module docs).
pub fn lock<T: ?Sized>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Read-locks `l`, recovering the guard if a panicking writer poisoned it (module docs).
pub fn read<T: ?Sized>(l: &RwLock<T>) -> RwLockReadGuard<'_, T> {
    l.read().unwrap_or_else(PoisonError::into_inner)
}

/// Write-locks `l`, recovering the guard if a panicking writer poisoned it (module docs).
pub fn write<T: ?Sized>(l: &RwLock<T>) -> RwLockWriteGuard<'_, T> {
    l.write().unwrap_or_else(PoisonError::into_inner)
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
    }
}
