//! What callers hand the writer and what comes back.

use crate::record::MessageToStore;

/// RocketMQ's `PutMessageStatus`, reduced to what the CommitLog itself can report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutStatus {
    /// Stored with the durability the flush mode promises.
    Ok,
    /// Stored in the log but not durable within `syncFlushTimeout` (FLUSH_DISK_TIMEOUT).
    FlushDiskTimeout,
    /// Rejected before anything was stored: too large, bad topic, bad properties.
    MessageIllegal(String),
    /// Rejected before anything was stored: no disk space for the next segment.
    DiskFull,
    /// The writer has stopped (failed write or fsync, or shutdown); nothing was stored.
    ServiceNotAvailable(String),
}

/// Where one message landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    pub phys_offset: i64,
    pub queue_offset: i64,
    pub size: i32,
    pub store_timestamp: i64,
}

/// The answer to one [`AppendRequest`].
#[derive(Debug, Clone)]
pub struct AppendOutcome {
    pub status: PutStatus,
    /// One entry per message, in request order; empty unless something was stored.
    pub appended: Vec<Appended>,
    /// The log offset just past the last stored byte of this request.
    pub end_offset: i64,
}

impl AppendOutcome {
    pub fn rejected(status: PutStatus) -> Self {
        AppendOutcome {
            status,
            appended: Vec::new(),
            end_offset: 0,
        }
    }
}

/// Called once, on the writer thread, when the request is answered: keep it short
/// (push to a queue, wake a thread).
pub type Completion = Box<dyn FnOnce(AppendOutcome) + Send>;

/// One or more messages stored contiguously in one segment (a batch never straddles a
/// segment boundary, as in RocketMQ).
pub struct AppendRequest {
    pub messages: Vec<MessageToStore>,
    /// RocketMQ's `WAIT` property: false answers at append time even under SYNC_FLUSH.
    pub wait_durable: bool,
    pub done: Completion,
}

/// Replicated bytes a slave appends at `phys_offset` (must equal the log's end).
pub struct RawAppend {
    pub phys_offset: i64,
    pub bytes: bytes::Bytes,
    /// Called with the new end of the log, or the reason nothing was appended.
    pub done: Box<dyn FnOnce(crate::Result<i64>) + Send>,
}
