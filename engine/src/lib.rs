//! ringmq-engine: the storage engine.
//!
//! | module | owns | runs on |
//! | --- | --- | --- |
//! | `io` | the only path to the kernel: io_uring ring, aligned buffers, the tail ring | writer / any |
//! | `record` | RocketMQ stored-record layout (the `ringmq-record` crate, re-exported) | any |
//! | `commitlog` | segments, the writer thread, flush and group commit, reads, recovery | writer core |
//! | `consumequeue` | per topic/queue index files and the dispatcher that fills them | dispatch core |
//! | `store` | `MessageStore`: start-up, recovery, pulls, checkpoints, shutdown | any |
//! | `delay_levels` | RocketMQ's delay levels | any |
//! | `waiters` | waits for an offset, in offset order (threads or callbacks with deadlines) | any |
//! | `meta` | topics, consumer offsets, subscription groups, delay offsets (JSON) | any |
//! | `sync` | poison-tolerant `lock`/`read`/`write`: the locking policy | any |

pub mod commitlog;
pub mod consumequeue;
pub mod delay_levels;
pub mod error;
pub mod io;
pub mod meta;
pub mod offset;
pub mod store;
pub mod sync;
pub mod waiters;

pub use error::{Error, Result};
/// The stored-record codec lives in its own crate (the client shares it); re-exported here
/// under the names the engine has always used.
pub use ringmq_record as record;
pub use ringmq_record::clock;

pub use store::{GetResult, GetStatus, MessageStore, StoreConfig, TruncateReport};
