//! Submitting I/O: O_DIRECT writes of the dirty pages (the partial last page from the
//! snapshot page) and, under ASYNC_FLUSH, the periodic fdatasync. See the module docs of
//! `writer` for how writes are pipelined. Writer thread only.

use std::time::Instant;

use super::inflight::{
    tag, Inflight, Part, Piece, MAX_INFLIGHT, OP_FSYNC, OP_LINKED_FSYNC, OP_WRITE,
};
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

    /// Queues the ops that write `[start, end)` (start page-aligned) as one write: one
    /// piece per segment it touches.
    fn submit_write(&mut self, start: u64, end: u64, sync: bool) {
        let dsync = sync && self.shared.cfg.sync_method == SyncMethod::Dsync;
        let linked_fsync = sync && !dsync;
        let full_end = align_down(end);
        if end > full_end {
            // Segment ends are page-aligned, so only a write's last page is partial. It
            // goes out from a snapshot copy, so new records can be encoded into the
            // ring's copy of that page meanwhile.
            let len = (end - full_end) as usize;
            // SAFETY: [full_end, end) is below append_end (stable) and still in the ring
            // (retain_start <= align_down(write_end) <= full_end).
            let src = unsafe { self.shared.tail.ring().slice(full_end, len) };
            let page = self.snapshot.as_mut_slice();
            page[..len].copy_from_slice(src);
            page[len..].fill(0);
        }
        let mut parts = Vec::with_capacity(2);
        let mut at = start;
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
            parts.push(Part {
                seg,
                iovecs: None,
                piece: Piece::new(at, piece_end),
            });
            at = piece_end;
        }
        assert!(parts.len() <= 256, "a write spans {} segments", parts.len());
        let count = parts.len();
        self.inflight.push_back(Inflight {
            end,
            parts,
            durable: sync,
            submitted: Instant::now(),
            dsync,
            linked_fsync,
            partial: end > full_end,
        });
        let write = self.inflight.len() - 1;
        for part in 0..count {
            self.push_part(write, part);
        }
        self.submitted_end = end;
    }

    /// Queues the write of what is left of piece `part` of `inflight[write]` (all of it
    /// the first time, the rest after a short write), and its linked fdatasync.
    pub(super) fn push_part(&mut self, write: usize, part: usize) {
        let id = self.first_write_id.wrapping_add(write as u64);
        let Writer {
            ring,
            shared,
            snapshot,
            inflight,
            ..
        } = self;
        let w = &mut inflight[write];
        let (dsync, linked_fsync) = (w.dsync, w.linked_fsync);
        let Part { seg, iovecs, piece } = &mut w.parts[part];
        debug_assert_eq!(piece.pending, 0, "resubmitted while the kernel has it");
        let (at, end) = (piece.at, piece.end);
        let full_end = align_down(end);
        let asked = piece.len_to_write();
        // Test hook: ask for less than the piece, so the file really misses the rest.
        let short = asked > PAGE as u64 && faults::write_should_be_short();
        let user_data = tag(OP_WRITE, id, part);
        if end == full_end {
            let len = if short { align_down(asked / 2) } else { asked };
            // SAFETY: the pages [at, full_end) hold bytes below append_end, which the
            // writer never rewrites, and make_room never recycles ring slots at or above
            // align_down(write_end), which this write's completion gates (write_end does
            // not pass a write until all its pieces are written in full).
            unsafe {
                ring.push_write(
                    seg.direct_fd(),
                    shared.tail.ring().ptr(at),
                    len as u32,
                    at - seg.base,
                    BUF_RING,
                    dsync,
                    linked_fsync,
                    user_data,
                )
            };
        } else {
            // The full pages and the snapshot page in one vectored op: one op, one
            // device flush.
            let vecs = iovecs.insert(Box::new([
                libc::iovec {
                    iov_base: shared.tail.ring().ptr(at) as *mut libc::c_void,
                    iov_len: (full_end - at) as usize,
                },
                libc::iovec {
                    iov_base: snapshot.as_mut_ptr() as *mut libc::c_void,
                    iov_len: PAGE,
                },
            ]));
            let (first, count) = match (full_end > at, short) {
                (true, false) => (0, 2),
                (true, true) => {
                    // Test hook: half the whole pages (at least one), no snapshot page.
                    vecs[0].iov_len = (align_down((full_end - at) / 2) as usize).max(PAGE);
                    (0, 1)
                }
                (false, _) => (1, 1),
            };
            // SAFETY: the iovec box is kept in this piece until its op completes (it is
            // replaced only by a resubmission, once the kernel is done with it); the ring
            // pages are stable as above; the snapshot page is rewritten only in
            // submit_write, and only once no partial write is in flight (maybe_write
            // stops behind one), so it still holds this write's last page.
            unsafe {
                ring.push_writev(
                    seg.direct_fd(),
                    vecs[first..].as_ptr(),
                    count,
                    (if first == 0 { at } else { full_end }) - seg.base,
                    dsync,
                    linked_fsync,
                    user_data,
                )
            };
        }
        piece.asked = asked;
        piece.pending = 1;
        if linked_fsync {
            // Linked after this piece's write: runs only if it succeeded in full.
            ring.push_fdatasync(seg.direct_fd(), tag(OP_LINKED_FSYNC, id, part));
            piece.pending += 1;
        }
    }

    /// ASYNC_FLUSH: fdatasync everything written, every flush_interval.
    pub(super) fn maybe_fsync(&mut self) {
        let async_flush = self.shared.cfg.flush_mode == FlushMode::Async;
        let due = self.last_fsync.elapsed() >= self.shared.cfg.flush_interval
            || self.shutdown.is_some()
            || self.truncating.is_some();
        // A stopped writer syncs nothing more: it would issue an fdatasync every turn
        // (each failing, or succeeding without syncing what the failed one dropped), and
        // shutdown, which waits for nothing in flight, would never finish.
        if !async_flush
            || self.failed.is_some()
            || !due
            || self.fsync_inflight.is_some()
            || self.durable_end >= self.write_end
        {
            return;
        }
        let target = self.write_end;
        // Every segment holding a byte of [durable_end, target), whichever segment is
        // current now: writes to an older segment may complete after a roll, and a
        // list kept by hand once dropped such a segment, so its bytes were called
        // durable without an fdatasync of its file.
        let segs = self.shared.segments.overlapping(self.durable_end, target);
        debug_assert!(
            !segs.is_empty(),
            "no segment holds [{}, {target})",
            self.durable_end
        );
        if segs.is_empty() {
            return;
        }
        for seg in &segs {
            self.ring.push_fdatasync(seg.direct_fd(), OP_FSYNC);
        }
        self.fsync_inflight = Some((target, segs.len() as u32, segs));
        self.last_fsync = Instant::now();
    }
}
