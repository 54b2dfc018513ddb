//! ConsumeQueues: the per (topic, queueId) index of the CommitLog, in RocketMQ's on-disk
//! format (spec §4.8): 20-byte big-endian entries (physical offset, size, tagsCode), entry
//! `k` = queue offset `k`, in files `consumequeue/<topic>/<queueId>/<20-digit start byte
//! offset>` of `entries_per_file` x 20 bytes (RocketMQ: 300 000 x 20).
//!
//! | file | owns |
//! | --- | --- |
//! | `entry` | [`CqEntry`], the 20-byte entry, and the file sizes |
//! | `queue` | [`ConsumeQueue`], one queue: put (idempotent re-put, append, gaps refused), reads by queue offset, min/max offsets, truncation to a CommitLog offset, search by store time, flush |
//! | `files` | one queue's index files: list, create, delete, fsync the directories |
//! | `file_io` | positional reads, zeroing and hole-aware scrubbing of one file |
//! | `recovery` | a queue's min/max found from its files at open, stale tails removed |
//! | `search` | binary searches over offsets (truncation cut, pre-blank end, store time) |
//! | `store` | [`ConsumeQueueStore`], all queues keyed by (topic, queueId) |
//! | `dispatch` | the dispatcher thread that fills the queues from the CommitLog |
//!
//! The store rediscovers the queues from disk at start and is the source of the writer's
//! next-queue-offset table (`max_offsets`).
//!
//! Threads: the **dispatcher** (dispatch/housekeeping core) is the only writer: it follows
//! the CommitLog and calls `put`, and runs `truncate_to_phys` during recovery or when a slave
//! cuts a diverged log; `flush` may run from the housekeeping flush tick. **Net threads**
//! read concurrently (pull lookups, GET_MAX/MIN_OFFSET, SEARCH_OFFSET_BY_TIMESTAMP): reads
//! are `pread`s below `max_offset`, which the writer publishes with Release only after the
//! entry's bytes are written, so a reader never sees a half-written entry.

pub mod dispatch;
mod entry;
mod file_io;
mod files;
mod queue;
mod recovery;
mod search;
mod store;

pub use entry::{CqEntry, CQ_ENTRY_SIZE, DEFAULT_ENTRIES_PER_FILE};
pub use queue::ConsumeQueue;
pub use store::{ConsumeQueueStore, MAX_QUEUE_ID};
