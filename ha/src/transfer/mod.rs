//! How CommitLog bytes get onto a slave's socket. The master's HA loop (`master_loop`)
//! runs every slave's transfers as jobs of `stream` on its one io_uring; the stand-alone
//! paths below ([`TransferPath`]) drive one socket each on their caller's thread (tests,
//! benches, tools) and share their kernel plumbing with `stream`.
//!
//! | path | [`PathKind`] | moves bytes by |
//! | --- | --- | --- |
//! | [`SendZcPath`] | `SendZc` | the hot tail: IORING_OP_SEND_ZC from the pinned tail ring (a registered buffer); older bytes as `Splice` |
//! | [`CopyPath`] | `Copy` | `CommitLog::read` into a user-space buffer, one `write_all` of header and body |
//! | [`SplicePath`] | `Splice` | IORING_OP_SPLICE: segment file -> pipe -> socket, no user-space copy |
//! | [`SplicePath`] | `SpliceSyscall` | the same with plain splice(2) (the fallback when io_uring splice is unavailable) |
//!
//! The splice paths splice only bytes below [`CommitLog::cold_end`] (out of the tail ring,
//! whole pages the writer never rewrites) and copy the hot tail from the ring; the
//! send_zc path sends the hot tail without a copy and splices the rest.
//!
//! | module | owns |
//! | --- | --- |
//! | `path` | [`TransferPath`], [`PathKind`], the per-kind counters ([`path_stats`]) and the accounting every path books into |
//! | `copy` | [`CopyPath`] |
//! | `splice` | [`SplicePath`] |
//! | `send_zc` | [`SendZcPath`]: its io_uring submissions, completions and notifications, the send_zc probe, the socket abort |
//! | `send_zc_state` | the send_zc rounds and the sends awaiting notification with their pins: pure bookkeeping, no I/O |
//! | `stream` | the HA loop's per-slave stream: the same zc, splice and copy transfers as jobs on the loop's one io_uring, with their buffer lifetimes |
//! | `uring` | the one place an HA io_uring is built (preferred flags, fallback, feature and opcode checks) |
//! | `select` | [`sender_path`]: which path a new sender uses (`RINGMQ_HA_TRANSFER`, [`set_default_path`]) and its fallbacks |
//!
//! Imports run one way: `path` and `uring` import no sibling; `copy` imports `path`;
//! `splice` imports `path`, `copy`, `uring`; `send_zc_state` imports no sibling;
//! `send_zc` imports `path`, `splice`, `send_zc_state`, `uring`; `select` imports the
//! paths; `stream` imports `path`, `send_zc`, `send_zc_state`, `splice`, `uring`. This file only re-exports; no sibling imports it.
//!
//! [`CommitLog::cold_end`]: ringmq_engine::commitlog::CommitLog::cold_end

pub mod copy;
pub mod path;
pub mod select;
pub mod send_zc;
mod send_zc_state;
pub mod splice;
pub(crate) mod stream;
pub(crate) mod uring;

pub use copy::CopyPath;
pub use path::{path_stats, set_cpu_accounting, thread_cpu_ns, PathKind, PathStats, TransferPath};
pub use select::{default_path, sender_path, set_default_path};
pub use send_zc::SendZcPath;
pub use splice::SplicePath;
