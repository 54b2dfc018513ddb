//! Moving the tail to the next segment: the blank end-of-file marker on a master, the
//! preallocated segment installed for writers and readers. Writer thread only.

use std::sync::Arc;

use super::Writer;
use crate::commitlog::request::PutStatus;
use crate::commitlog::segment::SegmentFile;
use crate::record;
use crate::Error;

impl Writer {
    /// Writes the blank end-of-file marker and moves to the next segment.
    pub(super) fn roll(&mut self) -> std::result::Result<(), PutStatus> {
        let remaining = self.current.end() - self.append_end;
        if remaining == 0 {
            // Replicated bytes filled the segment, blank marker included (a slave whose
            // chunk ended at the segment's end, now taking its own appends): nothing to
            // mark, only move on.
            return self.switch_segment();
        }
        let next = self.take_next_segment()?;
        // SAFETY: make_room covered everything up to the next segment's first bytes;
        // these bytes are above append_end.
        let dst = unsafe {
            self.shared
                .tail
                .ring()
                .slice_mut(self.append_end, remaining as usize)
        };
        dst.fill(0);
        record::encode_blank(dst, remaining as i32);
        self.append_end = self.current.end();
        self.install(next);
        Ok(())
    }

    /// Slave side: the replicated bytes already contain the blank marker.
    pub(super) fn switch_segment(&mut self) -> std::result::Result<(), PutStatus> {
        let next = self.take_next_segment()?;
        self.install(next);
        Ok(())
    }

    fn take_next_segment(&mut self) -> std::result::Result<SegmentFile, PutStatus> {
        let base = self.current.end();
        match self.prealloc.take(base) {
            Ok(seg) => Ok(seg),
            Err(e) => {
                tracing::error!(error = %e, "cannot prepare the next CommitLog segment; rejecting appends that need it");
                Err(match e {
                    Error::DiskFull { .. } => PutStatus::DiskFull,
                    other => PutStatus::ServiceNotAvailable(other.to_string()),
                })
            }
        }
    }

    fn install(&mut self, next: SegmentFile) {
        let next = Arc::new(next);
        self.shared.segments.insert(next.clone());
        self.prealloc.request(next.end());
        self.current = next;
    }
}
