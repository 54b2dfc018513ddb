//! The shared view of the tail ring: which offsets are still in memory.
//!
//! The ring holds the log's bytes from `retain_start` up to `append_end`. Readers take
//! the read lock, check that their range lies in that window and copy or parse in place;
//! the writer takes the write lock only to move `retain_start` forward (a quarter of the
//! ring at a time), before it overwrites the bytes of that older lap.

use std::sync::RwLock;

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

    /// Runs `f` on `[phys, phys + len)` if those bytes are in the ring and below
    /// `append_end` (read by the caller from the published offset). None otherwise.
    pub fn with_slice<R>(
        &self,
        phys: u64,
        len: usize,
        append_end: u64,
        f: impl FnOnce(&[u8]) -> R,
    ) -> Option<R> {
        let retain = self.retain_start.read().expect("tail lock");
        if phys < *retain || phys + len as u64 > append_end || len > self.ring.capacity() {
            return None;
        }
        // SAFETY: the range is >= retain_start and < append_end; the writer only writes
        // ring bytes at or above append_end, and overwrites an older lap only after
        // raising retain_start under the write lock, which our read guard holds off.
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
}
