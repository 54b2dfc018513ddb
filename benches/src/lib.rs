//! Shared helpers for the ringmq benchmark programs.
//!
//! Every benchmark in this project prints its metric beside a *ceiling*
//! measured in the same run on the same file system, so a number is never read
//! without knowing what the hardware (or VM) could have given:
//!
//! * [`ceiling::direct_write`]: sequential O_DIRECT write bandwidth through
//!   io_uring at a given block size and queue depth.
//! * [`ceiling::sync_write`]: latency of one durable 4 KiB write
//!   (write + fdatasync, and RWF_DSYNC), on written-before and
//!   fallocate-only files.
//! * [`ceiling::loopback`]: TCP round trip and bandwidth over 127.0.0.1.
//! * [`open_loop`]: fixed-rate sends with latency from each send's scheduled time.
//! * [`closed_loop`]: back-to-back sends at a fixed concurrency, for throughput.
//! * [`cpu`]: CPU time of a process (all its threads) or of this one.
//! * [`delay_proxy`]: a TCP proxy adding a fixed one-way delay (a slow link).
//! * [`report`]: aligned tables (`name value unit ceiling ratio`) and
//!   histogram percentiles.
//!
//! Units: bandwidth is MB/s with 1 MB = 1,000,000 bytes; `sync_write`
//! histograms are in microseconds; `loopback::rtt` is in nanoseconds.

pub mod ceiling;
pub mod closed_loop;
pub mod cpu;
pub mod delay_proxy;
pub mod open_loop;
pub mod report;
