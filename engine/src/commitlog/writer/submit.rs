//! Submitting I/O: O_DIRECT writes of the dirty pages (the partial last page from the
//! snapshot page) and, under ASYNC_FLUSH, the periodic fdatasync. See the module docs of
//! `writer` for how writes are pipelined. Writer thread only.

use std::time::Instant;

use super::inflight::{Inflight, MAX_INFLIGHT, OP_FSYNC, OP_WRITE, WRITE_ID_MASK};
use super::Writer;
use crate::commitlog::config::{FlushMode, SyncMethod};
use crate::io::{align_down, faults, PAGE};

/// Fixed-buffer indices registered with the ring.
const BUF_RING: u16 = 0;
/// ASYNC_FLUSH pipelining: page-aligned writes of at most this size.
const CHUNK: u64 = 2 << 20;

impl Writer {
    /// Submits writes for the dirty pages. SYNC_FLUSH: one write covering everything,
    /// partial last page included (latency first; that is the group commit). ASYNC_FLUSH:
    /// page-aligned chunks pipelined up to MAX_INFLIGHT deep, the partial last page only
    /// when nothing else is in flight.
    pub(super) fn maybe_write(&mut self) {
        if self.failed.is_some() || faults::writes_paused() {
            return;
        }
        let sync = self.shared.cfg.flush_mode == FlushMode::Sync;
        let max_inflight = if sync { 1 } else { MAX_INFLIGHT };
        // While a truncation waits, only bytes below the cut are worth writing.
        let limit = match self.truncating {
            Some((offset, _)) => offset.min(self.append_end),
            None => self.append_end,
        };
        while self.inflight.len() < max_inflight && self.submitted_end < limit {
            if self.inflight.back().is_some_and(|w| w.partial) {
                break;
            }
            let start = align_down(self.submitted_end);
            let full = align_down(limit);
            let end = if !sync && full > start + CHUNK {
                start + CHUNK
            } else if sync || self.inflight.is_empty() {
                limit
            } else if full > start {
                full
            } else {
                break;
            };
            self.submit_write(start, end, sync);
        }
    }

    /// Queues the ops that write `[start, end)` (start page-aligned) as one write.
    fn submit_write(&mut self, start: u64, end: u64, sync: bool) {
        let dsync = sync && self.shared.cfg.sync_method == SyncMethod::Dsync;
        let linked_fsync = sync && !dsync;
        let user_data =
            OP_WRITE | ((self.first_write_id + self.inflight.len() as u64) & WRITE_ID_MASK);
        let mut at = start;
        let mut ops = 0u32;
        let mut segments = Vec::with_capacity(2);
        let mut iovecs = None;
        while at < end {
            let seg = if at >= self.current.base {
                self.current.clone()
            } else {
                self.shared
                    .segments
                    .find(at)
                    .expect("segment of a dirty page is in the table")
            };
            let piece_end = end.min(seg.end());
            let full_end = align_down(piece_end);
            if piece_end == full_end {
                // SAFETY: the pages [at, full_end) hold bytes below append_end, which the
                // writer never rewrites, and make_room never recycles ring slots at or
                // above align_down(write_end), which this write's completion gates.
                unsafe {
                    self.ring.push_write(
                        seg.direct_fd(),
                        self.shared.tail.ring().ptr(at),
                        (full_end - at) as u32,
                        at - seg.base,
                        BUF_RING,
                        dsync,
                        linked_fsync,
                        user_data,
                    )
                };
            } else {
                // Segment ends are page-aligned, so only a write's last page is partial.
                // It goes out from a snapshot copy, in the same vectored op as the full
                // pages before it: one op, one device flush.
                let len = (piece_end - full_end) as usize;
                // SAFETY: [full_end, piece_end) is below append_end (stable) and still in
                // the ring (retain_start <= align_down(write_end) <= full_end).
                let src = unsafe { self.shared.tail.ring().slice(full_end, len) };
                let page = self.snapshot.as_mut_slice();
                page[..len].copy_from_slice(src);
                page[len..].fill(0);
                let vecs = iovecs.insert(Box::new([
                    libc::iovec {
                        iov_base: self.shared.tail.ring().ptr(at) as *mut libc::c_void,
                        iov_len: (full_end - at) as usize,
                    },
                    libc::iovec {
                        iov_base: self.snapshot.as_mut_ptr() as *mut libc::c_void,
                        iov_len: PAGE,
                    },
                ]));
                let (first, count) = if full_end > at { (0, 2) } else { (1, 1) };
                // SAFETY: the iovec box is kept in this write's Inflight entry until it
                // completes; the ring pages are stable as above; the snapshot page is
                // rewritten only here, and only once no partial write is in flight
                // (maybe_write stops behind one).
                unsafe {
                    self.ring.push_writev(
                        seg.direct_fd(),
                        vecs[first..].as_ptr(),
                        count,
                        (if count == 2 { at } else { full_end }) - seg.base,
                        dsync,
                        linked_fsync,
                        user_data,
                    )
                };
            }
            ops += 1;
            if linked_fsync {
                // Linked after this segment's write: runs only if it succeeded.
                self.ring.push_fdatasync(seg.direct_fd(), user_data);
                ops += 1;
            }
            segments.push(seg);
            at = piece_end;
        }
        self.inflight.push_back(Inflight {
            end,
            ops_left: ops,
            durable: sync,
            partial: !end.is_multiple_of(PAGE as u64),
            _segments: segments,
            _iovecs: iovecs,
        });
        self.submitted_end = end;
    }

    /// ASYNC_FLUSH: fdatasync everything written, every flush_interval.
    pub(super) fn maybe_fsync(&mut self) {
        let async_flush = self.shared.cfg.flush_mode == FlushMode::Async;
        let due = self.last_fsync.elapsed() >= self.shared.cfg.flush_interval
            || self.shutdown.is_some()
            || self.truncating.is_some();
        if !async_flush
            || !due
            || self.fsync_inflight.is_some()
            || self.durable_end >= self.write_end
        {
            return;
        }
        let target = self.write_end;
        let segs: Vec<_> = self.unsynced.drain(..).collect();
        for seg in &segs {
            self.ring.push_fdatasync(seg.direct_fd(), OP_FSYNC);
        }
        self.unsynced.push(self.current.clone());
        self.fsync_inflight = Some((target, segs.len() as u32, segs));
        self.last_fsync = Instant::now();
    }
}
