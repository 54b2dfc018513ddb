//! ringmq-ha: RocketMQ-compatible master/slave replication (spec section 7, the classic
//! `DefaultHAService` byte protocol) on top of `ringmq-engine`.
//!
//! | module | owns | runs on |
//! | --- | --- | --- |
//! | `config` | [`HaConfig`] (RocketMQ key names) | any |
//! | `auth` | the `haAuthToken` handshake that opens a connection when a token is set | master reader, slave session |
//! | `protocol` | the two HA frames: encoders, streaming decoders | master reader, slave session |
//! | `slave_table` | [`SlaveTable`]: connected slaves, each acked end bounded by what was sent to it, the [`Quorum`] of them a send needs, ack waiters | master readers write; any thread waits |
//! | `transfer` | the folder below: its map and re-exports | - |
//! | `transfer::path` | [`TransferPath`]: CommitLog range -> socket; `PathKind`, the per-kind counters and accounting every path books into | master senders |
//! | `transfer::copy` | [`CopyPath`]: read into a buffer, write | master senders |
//! | `transfer::splice` | [`SplicePath`]: segment file -> pipe -> socket through io_uring, for bytes below the tail ring | master senders |
//! | `transfer::send_zc` | [`SendZcPath`] (the default): IORING_OP_SEND_ZC from the pinned tail ring for the hot tail, [`SplicePath`] below it; its io_uring submissions, completions, notifications | master senders |
//! | `transfer::send_zc_state` | the send_zc rounds and the sends awaiting notification with their tail pins: bookkeeping without I/O | master senders |
//! | `transfer::uring` | the one io_uring builder of the splice and send_zc paths: preferred flags, fallback, feature and opcode checks | master senders |
//! | `transfer::select` | `sender_path`: which path a new sender uses (`RINGMQ_HA_TRANSFER`), and its fallbacks | master senders |
//! | `master` | [`HaMaster`]: starts and stops the HA loop | any |
//! | `start_decision` | [`decide_start`]: where streaming to a slave begins, from its first report (spec 7.4) | `ringmq-ha-loop` |
//! | `master_loop` | the HA loop: one io_uring for every slave's accept, handshake, reports and transfers | `ringmq-ha-loop` |
//! | `sync_master` | [`Replication`], [`SyncReplication`]: SYNC_MASTER sends wait for a slave ack | sweeper thread |
//! | `slave` | [`HaSlave`]: connect, receive (on the session's io_uring), append with `put_raw`, report | `ringmq-ha-slave` |
//!
//! The master runs on one pinned io_uring loop (ARCHITECTURE.md's ha role); the slave
//! runs its session on one thread with its own io_uring.

pub mod auth;
pub mod config;
pub mod master;
mod master_loop;
pub mod protocol;
pub mod slave;
pub mod slave_table;
pub mod start_decision;
pub mod sync_master;
pub mod transfer;

pub use auth::AuthError;
pub use config::{EmptySlaveStart, HaConfig};
pub use master::HaMaster;
pub use protocol::{FrameDecoder, ProtocolError, ReportDecoder, TransferFrame};
pub use slave::HaSlave;
pub use slave_table::{Quorum, ReportError, SlaveInfo, SlaveTable};
pub use start_decision::{decide_start, StartDecision};
pub use sync_master::{ReplicaOutcome, Replication, SyncReplication};
pub use transfer::{CopyPath, SendZcPath, SplicePath, TransferPath};
