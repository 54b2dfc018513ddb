//! The shared view of the tail ring: which offsets are still in memory.
//!
//! The ring holds the log's bytes from `retain_start` up to `append_end`. Readers take
//! the read lock, check that their range lies in that window and copy or parse in place;
//! the writer takes the write lock only to move `retain_start` forward (a quarter of the
//! ring at a time), before it overwrites the bytes of that older lap.
//!
//! A reader that hands ring bytes to the kernel (the HA master's send_zc) cannot hold the
//! read lock until the kernel is done with them: it *pins* the range instead
//! ([`Tail::pin`], checked like [`Tail::with_slice`]), and [`Tail::advance_retain`] never
//! moves `retain_start` past the start of a pinned range, so the writer never rewrites
//! pinned bytes. The writer reports how long pins held it up through `revoke_below`
//! (see `commitlog::pin`).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};

use super::progress::{Level, Progress};
use crate::io::tail_ring::TailRing;
use crate::sync::{lock, read, write};
use crate::Result;

pub struct Tail {
    ring: TailRing,
    retain_start: RwLock<u64>,
    /// Start offset of every pinned range -> how many pins start there. Taken after
    /// `retain_start`'s lock when both are held.
    pins: Mutex<BTreeMap<u64, usize>>,
    /// Bumped by every unpin, so the writer can tell whether a pin went away between
    /// its last look and going to sleep.
    unpins: AtomicU64,
    /// Set while the writer waits for pins: only then does an unpin wake it.
    pin_waiter: AtomicBool,
    /// Pin pressure: the writer has waited too long for pins starting below this offset
    /// (0: no pressure). Holders of such pins should give them up.
    revoke_below: AtomicU64,
}

impl Tail {
    /// The view of `ring`, whose window starts (empty) at `start`.
    pub fn new(ring: TailRing, start: u64) -> Result<Self> {
        ring.empty_window_at(start);
        Ok(Tail {
            ring,
            retain_start: RwLock::new(start),
            pins: Mutex::new(BTreeMap::new()),
            unpins: AtomicU64::new(0),
            pin_waiter: AtomicBool::new(false),
            revoke_below: AtomicU64::new(0),
        })
    }

    pub fn ring(&self) -> &TailRing {
        &self.ring
    }

    pub fn capacity(&self) -> u64 {
        self.ring.capacity() as u64
    }

    /// Runs `f` on `[phys, phys + len)` if those bytes are in the ring and below the
    /// published `append_end`. None otherwise.
    ///
    /// `append_end` is read under the read lock: a truncation lowers it under the write
    /// lock (see [`Tail::reset_with`]), so a reader either finishes before the truncation
    /// or sees the new, lower end; it never copies ring bytes the writer may reuse.
    pub fn with_slice<R>(
        &self,
        phys: u64,
        len: usize,
        progress: &Progress,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let retain = read(&self.retain_start);
        let append_end = progress.get(Level::Append).max(0) as u64;
        if phys < *retain || phys + len as u64 > append_end || len > self.ring.capacity() {
            return None;
        }
        // SAFETY: the range is >= retain_start and < append_end; the writer only writes
        // ring bytes at or above append_end, and overwrites an older lap only after
        // raising retain_start under the write lock, which our read guard holds off; a
        // truncation lowers append_end only under that write lock, too.
        Some(f(unsafe { self.ring.slice(phys, len) }))
    }

    pub fn retain_start(&self) -> u64 {
        *read(&self.retain_start)
    }

    /// Pins `[phys, phys + len)` if it is in the ring and below the published
    /// `append_end` (the window of [`Tail::with_slice`]): until [`Tail::unpin`], the
    /// writer does not move `retain_start` past `phys`, so it never rewrites these bytes.
    pub fn pin(&self, phys: u64, len: usize, progress: &Progress) -> bool {
        let retain = read(&self.retain_start);
        let append_end = progress.get(Level::Append).max(0) as u64;
        if phys < *retain || phys + len as u64 > append_end || len > self.ring.capacity() {
            return false;
        }
        // Recorded while the read lock holds `retain_start` at or below `phys`: the
        // writer reads the pins under the write lock, so it sees this one before it
        // moves the window again.
        *lock(&self.pins).entry(phys).or_insert(0) += 1;
        true
    }

    /// Releases one pin taken by [`Tail::pin`] at `phys`. Returns whether the writer
    /// waits for pins (then the caller rings its doorbell).
    pub fn unpin(&self, phys: u64) -> bool {
        let mut pins = lock(&self.pins);
        match pins.get_mut(&phys) {
            Some(n) if *n > 1 => *n -= 1,
            Some(_) => {
                pins.remove(&phys);
            }
            None => debug_assert!(false, "unpin of {phys}, which is not pinned"),
        }
        drop(pins);
        // SeqCst with the writer's `set_pin_waiter(true)`, `Doorbell::going_to_sleep` and
        // `unpins()`: either the writer sees this unpin before it sleeps, or this sees
        // the writer waiting (and the doorbell then sees it sleeping).
        self.unpins.fetch_add(1, Ordering::SeqCst);
        self.pin_waiter.load(Ordering::SeqCst)
    }

    /// Writer only: whether it waits for pins (unpins ring its doorbell meanwhile).
    pub fn set_pin_waiter(&self, waiting: bool) {
        self.pin_waiter.store(waiting, Ordering::SeqCst);
    }

    /// The lowest pinned offset, if any range is pinned.
    pub fn pinned_floor(&self) -> Option<u64> {
        lock(&self.pins).first_key_value().map(|(k, _)| *k)
    }

    /// How many unpins there have been (the writer compares two readings).
    pub fn unpins(&self) -> u64 {
        self.unpins.load(Ordering::SeqCst)
    }

    /// Pin pressure: holders of pins starting below this offset should release them
    /// (0: none).
    pub fn revoke_below(&self) -> u64 {
        self.revoke_below.load(Ordering::Acquire)
    }

    /// Writer only: raises (`Some`) or clears (`None`) the pin pressure.
    pub fn set_revoke_below(&self, below: Option<u64>) {
        match below {
            Some(b) => self.revoke_below.fetch_max(b, Ordering::AcqRel),
            None => self.revoke_below.swap(0, Ordering::AcqRel),
        };
    }

    /// Writer only: forget everything below `to`, or below the lowest pinned offset if
    /// that is lower (but never move back). Returns the new `retain_start`.
    pub fn advance_retain(&self, to: u64) -> u64 {
        let mut retain = write(&self.retain_start);
        debug_assert!(to >= *retain);
        // Under the write lock no pin can be added (pin holds the read lock), so the
        // floor read here stays a floor until the lock is released.
        let to = match self.pinned_floor() {
            Some(floor) => to.min(floor).max(*retain),
            None => to,
        };
        *retain = to;
        // Before any slot below `to` is reused: a crash from here on must not read them.
        self.ring.publish_start(to);
        to
    }

    /// Writer only: moves the window to start at `to` and runs `f` (which re-seeds ring
    /// bytes and publishes the new offsets) while holding the write lock, so no reader is
    /// inside [`Tail::with_slice`] while the window and `append_end` change.
    /// The ring's crash window becomes empty at `to`; `f` publishes its new end.
    pub fn reset_with<R>(&self, to: u64, f: impl FnOnce() -> R) -> R {
        let mut retain = write(&self.retain_start);
        *retain = to;
        self.ring.empty_window_at(to);
        f()
    }
}
