//! Truncation (`Command::Truncate`, slave side): parked until nothing is in flight and the
//! log is written and durable up to the cut (writes past the cut are not submitted
//! meanwhile), then the cut in one step: acknowledgements past it refused, the segment
//! tail zeroed and synced, later segments deleted, the ring and offsets reset. Writer
//! thread only.

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::Arc;

use super::Writer;
use crate::commitlog::segment;
use crate::io::gate::{disk, Open};
use crate::io::{align_down, direct_file};
use crate::{Error, Result};

impl Writer {
    /// Answers a truncation request at once when it is refused or changes nothing;
    /// otherwise parks it until `try_truncate` can run it.
    pub(super) fn begin_truncate(&mut self, offset: u64, reply: Sender<Result<()>>) {
        if let Some(why) = self.stopped_reason() {
            let _ = reply.send(Err(Error::WriterStopped(why)));
            return;
        }
        let first = self
            .shared
            .segments
            .first_base()
            .unwrap_or(self.current.base);
        if offset > self.append_end || offset < first {
            let _ = reply.send(Err(Error::Invalid(format!(
                "cannot truncate the CommitLog to {offset}: it holds [{first}, {})",
                self.append_end
            ))));
            return;
        }
        if offset == self.append_end {
            let _ = reply.send(Ok(()));
            return;
        }
        self.truncating = Some((offset, reply));
    }

    /// Runs the parked truncation once no write or fdatasync is in flight and the log is
    /// written and durable up to the cut (`maybe_write` and `maybe_fsync` get it there).
    /// Returns false while it must still wait.
    pub(super) fn try_truncate(&mut self) -> bool {
        let Some(offset) = self.truncating.as_ref().map(|(o, _)| *o) else {
            return true;
        };
        if let Some(why) = self.stopped_reason() {
            if let Some((_, reply)) = self.truncating.take() {
                let _ = reply.send(Err(Error::WriterStopped(why)));
            }
            return true;
        }
        let idle = self.inflight.is_empty() && self.fsync_inflight.is_none();
        if !idle || self.write_end < offset || self.durable_end < offset {
            return false;
        }
        // The cut lowers append_end and the next appends rewrite the ring bytes past it:
        // no pin may be held on them (a master never truncates; this is a safety net).
        let unpins = self.shared.tail.unpins();
        if self.shared.tail.pinned_floor().is_some() {
            self.held_by_pins(i64::MAX as u64, unpins);
            return false;
        }
        self.pins_out_of_the_way();
        let (_, reply) = self.truncating.take().expect("a parked truncation");
        let res = self.truncate_now(offset);
        if let Err(e) = &res {
            // Files may be half cut: stop, as after a failed write; restart recovers.
            self.fail(format!("truncating the CommitLog to {offset} failed: {e}"));
        }
        let _ = reply.send(res);
        true
    }

    /// Cuts the log back to `offset` (< append_end). Nothing is in flight and everything
    /// below `offset` is written and durable. For a crash in the middle, the tail of the
    /// segment holding `offset` is zeroed and synced before later segments are deleted,
    /// so a start-up scan from a checkpoint <= `offset` stops at `offset` whatever made
    /// it to disk.
    fn truncate_now(&mut self, offset: u64) -> Result<()> {
        let seg_size = self.shared.cfg.segment_size;
        let dir = self.shared.cfg.dir.clone();
        let old_end = self.append_end;
        let base = offset - offset % seg_size;
        let next = base + seg_size;
        let page = align_down(offset);
        // Before any file changes: a crash from here on must not write the cut bytes back.
        self.shared.tail.ring().cut_window(offset);

        let target = match self.shared.segments.find(base) {
            Some(seg) => seg,
            None => {
                // Only reachable when `offset` starts a segment that was never created.
                let seg = Arc::new(self.prealloc.take(base)?);
                self.shared.segments.insert(seg.clone());
                seg
            }
        };
        // The partial page [page, offset) the next write rewrites: still in the ring, or
        // read back now, before anything is cut, so a read error changes nothing.
        let in_ring = page >= self.shared.tail.retain_start();
        let mut seed = Vec::new();
        if !in_ring && offset > page {
            seed.resize((offset - page) as usize, 0);
            target
                .read_file()
                .read_exact_at(&mut seed, page - base)
                .map_err(|e| Error::io(format!("read {}", target.path.display()), e))?;
        }

        // SYNC_FLUSH appends past the cut will never be durable.
        self.durable_acks.reject_past(offset, "truncated");
        self.write_acks.reject_past(offset, "truncated");
        // From here on a reader copying from a segment file fails rather than return
        // bytes being cut.
        self.shared.truncations.fetch_add(1, Ordering::AcqRel);

        // A segment being prepared for right after `target` is fresh: keep it. Any other
        // is waited for and deleted with the rest.
        let keep_next = self.prealloc.pending() == Some(next);
        if !keep_next {
            self.prealloc.discard();
        }
        // 1. Zero the cut tail of the target segment, durably.
        let file = disk()
            .open(&target.path, Open::ReadWrite)
            .map_err(|e| Error::io(format!("open {}", target.path.display()), e))?;
        direct_file::zero_range(&file, &target.path, offset - base, seg_size)?;
        direct_file::sync_data(&file, &target.path)?;
        drop(file);
        // 2. Later segments: out of the readers' table, then off the disk. Nothing in
        // flight references them; readers holding an Arc keep the file open.
        let dropped = self.shared.segments.remove_from(base + 1);
        for b in segment::list(&dir)? {
            if b <= base || (keep_next && b == next) {
                continue;
            }
            let path = dir.join(segment::file_name(b));
            match disk().remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
            }
        }
        direct_file::sync_dir(&dir)?;
        drop(dropped);

        // 3. Continue at `offset`.
        self.current = target;
        self.append_end = offset;
        self.write_end = offset;
        self.durable_end = offset;
        self.submitted_end = offset;
        let shared = &self.shared;
        shared.tail.reset_with(page, || {
            if !seed.is_empty() {
                // SAFETY: the tail's write lock is held, so no reader is inside
                // with_slice; [page, offset) is at or above the new retain_start and
                // nothing is in flight, so no write reads these ring bytes; only this
                // thread writes the ring.
                let dst = unsafe { shared.tail.ring().slice_mut(page, seed.len()) };
                dst.copy_from_slice(&seed);
            }
            shared.tail.ring().publish_end(offset);
            shared.progress.reset(offset as i64);
        });
        self.prealloc.request(self.current.end());
        tracing::info!(
            offset,
            old_end,
            dropped_bytes = old_end - offset,
            segment = self.current.base,
            "CommitLog truncated"
        );
        Ok(())
    }
}
