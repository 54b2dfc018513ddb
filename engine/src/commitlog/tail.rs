//! The shared view of the tail ring: which offsets are still in memory.
//!
//! The ring holds the log's bytes from `retain_start` up to `append_end`. Readers take
//! the read lock, check that their range lies in that window and copy or parse in place;
//! the writer takes the write lock only to move `retain_start` forward (a quarter of the
//! ring at a time), before it overwrites the bytes of that older lap.

use std::sync::RwLock;

use super::progress::{Level, Progress};
use crate::io::tail_ring::TailRing;
use crate::{Error, Result};

pub struct Tail {
    ring: TailRing,
    retain_start: RwLock<u64>,
}

impl Tail {
    pub fn new(capacity: usize, start: u64) -> Result<Self> {
        let ring = TailRing::new(capacity).map_err(|e| Error::io("map tail ring", e))?;
        Ok(Tail {
            ring,
            retain_start: RwLock::new(start),
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
        let retain = self.retain_start.read().expect("tail lock");
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
        *self.retain_start.read().expect("tail lock")
    }

    /// Writer only: forget everything below `to`.
    pub fn advance_retain(&self, to: u64) {
        let mut retain = self.retain_start.write().expect("tail lock");
        debug_assert!(to >= *retain);
        *retain = to;
    }

    /// Writer only: reset the window after recovery or truncation.
    pub fn reset(&self, to: u64) {
        *self.retain_start.write().expect("tail lock") = to;
    }

    /// Writer only: moves the window to start at `to` and runs `f` (which re-seeds ring
    /// bytes and publishes the new offsets) while holding the write lock, so no reader is
    /// inside [`Tail::with_slice`] while the window and `append_end` change.
    pub fn reset_with<R>(&self, to: u64, f: impl FnOnce() -> R) -> R {
        let mut retain = self.retain_start.write().expect("tail lock");
        *retain = to;
        f()
    }
}
