//! What the writer has with the kernel: the `user_data` tags of its io_uring operations
//! and [`Inflight`], the record of one write until it completes, made of one [`Piece`]
//! per segment it touches. Writer thread only.
//!
//! A piece's write may come back short (fewer bytes than asked; O_DIRECT allows it, and a
//! short write breaks an IO_LINK chain, so its linked fdatasync then completes with
//! ECANCELED). The piece is then resubmitted from the last whole page the kernel took,
//! with its fdatasync again, until the kernel has taken all of it; only then does it
//! count as written. A piece that makes no progress for [`MAX_SHORT_RETRIES`] tries in a
//! row fails the write (and stops the writer), so `write_end` never covers bytes that
//! did not reach the file.

use std::sync::Arc;

use crate::commitlog::segment::SegmentFile;
use crate::io::{align_down, PAGE};

/// `user_data` tags (top byte); a piece index in the next byte, a write's id in the low
/// 48 bits.
pub(super) const OP_WRITE: u64 = 1 << 56;
pub(super) const OP_FSYNC: u64 = 2 << 56;
pub(super) const OP_WAKE: u64 = 3 << 56;
/// The fdatasync linked behind a piece's write (SYNC_FLUSH with `SyncMethod::Fdatasync`).
pub(super) const OP_LINKED_FSYNC: u64 = 4 << 56;
pub(super) const OP_MASK: u64 = 0xff << 56;
const PIECE_SHIFT: u32 = 48;
const PIECE_MASK: u64 = 0xff << PIECE_SHIFT;
pub(super) const WRITE_ID_MASK: u64 = (1 << PIECE_SHIFT) - 1;
/// ASYNC_FLUSH pipelining: at most this many writes in flight (SYNC_FLUSH: one).
pub(super) const MAX_INFLIGHT: usize = 8;
/// Short writes in a row that move no whole page before the write is failed.
pub(super) const MAX_SHORT_RETRIES: u32 = 8;

/// The `user_data` of an op of piece `piece` of write `id`.
pub(super) fn tag(kind: u64, id: u64, piece: usize) -> u64 {
    debug_assert!(piece <= 0xff, "piece index {piece} does not fit the tag");
    kind | ((piece as u64) << PIECE_SHIFT) | (id & WRITE_ID_MASK)
}

/// (write id, piece index) of a `user_data`.
pub(super) fn untag(user_data: u64) -> (u64, usize) {
    (
        user_data & WRITE_ID_MASK,
        ((user_data & PIECE_MASK) >> PIECE_SHIFT) as usize,
    )
}

/// The part of one write that lies in one segment, with what the kernel is given for it.
pub(super) struct Part {
    pub seg: Arc<SegmentFile>,
    /// The iovecs of a vectored op, alive until it completes (boxed: stable address).
    pub iovecs: Option<Box<[libc::iovec; 2]>>,
    pub piece: Piece,
}

/// How far the write of log bytes `[at, end)` of one segment has got (the partial last
/// page, if any, goes out from the snapshot page). No I/O here: the writer feeds it
/// completions and asks what to do next.
pub(super) struct Piece {
    /// Page-aligned log offset the op in flight (or the next resubmission) starts at.
    pub at: u64,
    /// Log offset the piece ends at (partial last page included).
    pub end: u64,
    /// Bytes the op in flight asks the kernel for (a whole snapshot page counted).
    pub asked: u64,
    /// Ops of this piece with the kernel (the write, and its linked fdatasync).
    pub pending: u8,
    /// The last write came back short: resubmit from `at` once `pending` is 0.
    pub short: bool,
    /// Short writes in a row that moved no whole page.
    pub stuck: u32,
}

impl Piece {
    pub fn new(at: u64, end: u64) -> Self {
        debug_assert!(at.is_multiple_of(PAGE as u64) && at < end);
        Piece {
            at,
            end,
            asked: 0,
            pending: 0,
            short: false,
            stuck: 0,
        }
    }

    /// Bytes a write of the rest of this piece asks for: whole pages, the partial last
    /// page rounded up to a page (it goes out from the snapshot page).
    pub fn len_to_write(&self) -> u64 {
        crate::io::align_up(self.end) - self.at
    }

    /// The write completed with `result` (bytes taken, or -errno).
    pub fn on_write(&mut self, result: i32) -> Result<(), String> {
        debug_assert!(self.pending > 0);
        self.pending -= 1;
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            return Err(format!("CommitLog write failed: {err}"));
        }
        let took = result as u64;
        debug_assert!(took <= self.asked, "wrote {took} of {} bytes", self.asked);
        if took >= self.asked {
            self.short = false;
            self.stuck = 0;
            return Ok(());
        }
        // Bytes past the last whole page the kernel took are written again: rewriting a
        // page with the same content is harmless, and keeps the O_DIRECT alignment.
        let moved = align_down(took);
        self.at += moved;
        self.short = true;
        self.stuck = if moved == 0 { self.stuck + 1 } else { 0 };
        tracing::warn!(
            took,
            asked = self.asked,
            at = self.at,
            "short CommitLog write; writing the rest again"
        );
        if self.stuck >= MAX_SHORT_RETRIES {
            return Err(format!(
                "CommitLog write at {} made no progress in {} short writes ({took} of {} bytes)",
                self.at, self.stuck, self.asked
            ));
        }
        Ok(())
    }

    /// The fdatasync linked behind the write completed with `result`.
    pub fn on_linked_fsync(&mut self, result: i32) -> Result<(), String> {
        debug_assert!(self.pending > 0);
        self.pending -= 1;
        if result == -libc::ECANCELED && self.short {
            // The short write broke the link; the resubmission carries a new fdatasync.
            return Ok(());
        }
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            return Err(format!("fdatasync of the CommitLog failed: {err}"));
        }
        Ok(())
    }

    /// Whether the rest of the piece must be written again now.
    pub fn needs_resubmit(&self) -> bool {
        self.pending == 0 && self.short
    }

    /// Whether the kernel is done with this piece: written in full, or (after a failure)
    /// given up.
    pub fn settled(&self, failed: bool) -> bool {
        self.pending == 0 && (!self.short || failed)
    }
}

/// One write with the kernel: one piece per segment it touches.
pub(super) struct Inflight {
    /// Log offset this write makes written once it and every earlier write completed.
    pub end: u64,
    pub parts: Vec<Part>,
    /// Durable when it completes (RWF_DSYNC or linked fdatasync).
    pub durable: bool,
    /// When it went to the ring (flush latency of a durable write).
    pub submitted: std::time::Instant,
    /// The writes carry RWF_DSYNC.
    pub dsync: bool,
    /// Each piece's write is followed by a linked fdatasync.
    pub linked_fsync: bool,
    /// Ends in a partial page written from the snapshot: nothing may follow it until it
    /// completes, or two writes would race on that page.
    pub partial: bool,
}

impl Inflight {
    pub fn settled(&self, failed: bool) -> bool {
        self.parts.iter().all(|p| p.piece.settled(failed))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(at: u64, end: u64) -> Piece {
        let mut p = Piece::new(at, end);
        p.asked = p.len_to_write();
        p.pending = 2;
        p
    }

    #[test]
    fn tags_round_trip() {
        let t = tag(OP_LINKED_FSYNC, (1 << 50) + 7, 200);
        assert_eq!(t & OP_MASK, OP_LINKED_FSYNC);
        assert_eq!(untag(t), (7, 200));
    }

    #[test]
    fn full_write_settles() {
        let mut p = piece(0, 3 * 4096 + 100);
        assert_eq!(p.asked, 4 * 4096);
        p.on_write(4 * 4096).unwrap();
        p.on_linked_fsync(0).unwrap();
        assert!(p.settled(false) && !p.needs_resubmit());
    }

    #[test]
    fn short_write_resumes_from_the_last_whole_page() {
        let mut p = piece(0, 3 * 4096 + 100);
        // 1.5 pages taken (a 512-byte-sector device): the second page is written again.
        p.on_write(4096 + 2048).unwrap();
        assert!(!p.settled(false));
        // The short write broke the link: the fdatasync is cancelled, not an error.
        p.on_linked_fsync(-libc::ECANCELED).unwrap();
        assert!(p.needs_resubmit());
        assert_eq!(p.at, 4096);
        assert_eq!(p.len_to_write(), 3 * 4096);
        p.asked = p.len_to_write();
        p.pending = 2;
        p.on_write(3 * 4096).unwrap();
        p.on_linked_fsync(0).unwrap();
        assert!(p.settled(false));
    }

    #[test]
    fn cancelled_fsync_without_a_short_write_is_an_error() {
        let mut p = piece(0, 4096);
        p.on_write(4096).unwrap();
        assert!(p.on_linked_fsync(-libc::ECANCELED).is_err());
    }

    #[test]
    fn no_progress_fails_after_bounded_retries() {
        let mut p = piece(0, 2 * 4096);
        let mut failed = None;
        for i in 0..MAX_SHORT_RETRIES {
            p.pending = 1;
            if let Err(e) = p.on_write(512) {
                failed = Some((i, e));
                break;
            }
            assert_eq!(p.at, 0);
        }
        let (i, e) = failed.expect("gives up");
        assert_eq!(i + 1, MAX_SHORT_RETRIES);
        assert!(e.contains("no progress"), "{e}");
        assert!(p.settled(true) && !p.settled(false));
    }

    #[test]
    fn zero_bytes_written_is_no_progress() {
        let mut p = piece(0, 4096);
        p.pending = 1;
        p.on_write(0).unwrap();
        assert!(p.needs_resubmit() && p.stuck == 1);
    }
}
