//! What the writer has with the kernel: the `user_data` tags of its io_uring operations
//! and [`Inflight`], the record of one write until it completes. Writer thread only.

use std::sync::Arc;

use crate::commitlog::segment::SegmentFile;

/// `user_data` tags (top byte); a write's id is in the low 56 bits.
pub(super) const OP_WRITE: u64 = 1 << 56;
pub(super) const OP_FSYNC: u64 = 2 << 56;
pub(super) const OP_WAKE: u64 = 3 << 56;
pub(super) const OP_MASK: u64 = 0xff << 56;
pub(super) const WRITE_ID_MASK: u64 = (1 << 56) - 1;
/// ASYNC_FLUSH pipelining: at most this many writes in flight (SYNC_FLUSH: one).
pub(super) const MAX_INFLIGHT: usize = 8;

/// One write with the kernel: one or more ops (a piece per segment, the snapshot page,
/// linked fdatasyncs).
pub(super) struct Inflight {
    /// Log offset this write makes written once it and every earlier write completed.
    pub end: u64,
    pub ops_left: u32,
    /// Durable when it completes (RWF_DSYNC or linked fdatasync).
    pub durable: bool,
    /// Ends in a partial page written from the snapshot: nothing may follow it until it
    /// completes, or two writes would race on that page.
    pub partial: bool,
    /// Segments referenced by the ops, kept open until they complete.
    pub _segments: Vec<Arc<SegmentFile>>,
    /// The iovecs of a vectored op, alive until it completes (boxed: stable address).
    pub _iovecs: Option<Box<[libc::iovec; 2]>>,
}
