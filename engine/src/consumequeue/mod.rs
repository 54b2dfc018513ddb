//! ConsumeQueues: the per (topic, queueId) index of the CommitLog, in RocketMQ's on-disk
//! format (spec §4.8): 20-byte big-endian entries (physical offset, size, tagsCode), entry
//! `k` = queue offset `k`, in files `consumequeue/<topic>/<queueId>/<20-digit start byte
//! offset>` of `entries_per_file` x 20 bytes (RocketMQ: 300 000 x 20).
//!
//! - `queue`: [`ConsumeQueue`], one queue's files: put (idempotent re-put, append, gaps
//!   refused), reads by queue offset, min/max offsets, truncation to a CommitLog offset,
//!   search by store time, flush.
//! - `store`: [`ConsumeQueueStore`], all queues keyed by (topic, queueId), rediscovered from
//!   disk at start; source of the writer's next-queue-offset table (`max_offsets`).
//!
//! Threads: the **dispatcher** (dispatch/housekeeping core) is the only writer: it follows
//! the CommitLog and calls `put`, and runs `truncate_to_phys` during recovery or when a slave
//! cuts a diverged log; `flush` may run from the housekeeping flush tick. **Net threads**
//! read concurrently (pull lookups, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP): reads
//! are `pread`s below `max_offset`, which the writer publishes with Release only after the
//! entry's bytes are written, so a reader never sees a half-written entry.

pub mod dispatch;
mod queue;
mod store;

pub use queue::{ConsumeQueue, CqEntry, CQ_ENTRY_SIZE, DEFAULT_ENTRIES_PER_FILE};
pub use store::{ConsumeQueueStore, MAX_QUEUE_ID};
