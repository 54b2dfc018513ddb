//! The master side: accepts slaves on `haListenPort` and streams the CommitLog to each,
//! all on one thread.
//!
//! | thread | does |
//! | --- | --- |
//! | `ringmq-ha-loop` | the HA loop (`master_loop`): one io_uring for every slave's accept, `haAuthToken` handshake, offset reports and transfers; pinned to `haCore` when [`HaConfig::core`] is set |
//!
//! With `haAuthToken`, a peer is registered in the [`SlaveTable`] (and may report offsets)
//! only once it passed the handshake; nothing is streamed before its first report. The
//! loop ships bytes once the CommitLog's `write_end` covers them (the data path in
//! ARCHITECTURE.md: written, then streamed), so a slave never holds bytes the master's
//! own disk has not seen. [`HaMaster::shutdown`] wakes the loop through an eventfd the
//! loop reads on its ring.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ringmq_engine::sync::lock;
use ringmq_engine::MessageStore;

use crate::config::{EmptySlaveStart, HaConfig};
use crate::master_loop::{eventfd, wake, Loop};
use crate::slave_table::SlaveTable;

/// Most connections at once that have not proven themselves yet: with `haAuthToken`, not
/// through the handshake (which times out after `auth::HANDSHAKE_TIMEOUT`); without, no
/// first report yet (dropped after `haHousekeepingInterval`). Later ones are closed at
/// accept, so stray clients cannot pile up.
pub const MAX_UNPROVEN: usize = 16;

/// Where streaming to a slave starts, decided from its first report (spec 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// Stream from this offset.
    At(i64),
    /// The slave's log is longer than the master's, so its tail past `master_end` is not
    /// the master's (the master lost an unflushed tail). Streaming starts at `master_end`;
    /// the slave, seeing a first frame below its own end, truncates its CommitLog to that
    /// offset (`MessageStore::truncate_log`, which also cuts its ConsumeQueues) and
    /// follows from there (see `slave`).
    Diverged { slave_end: i64, master_end: i64 },
    /// The slave needs bytes the master no longer stores.
    Behind { slave_end: i64, master_min: i64 },
}

/// Spec 7.4, with [`EmptySlaveStart`] choosing the start for an empty slave.
pub fn decide_start(
    reported: i64,
    master_min: i64,
    master_end: i64,
    segment_size: u64,
    empty: EmptySlaveStart,
) -> StartDecision {
    if reported == 0 {
        return StartDecision::At(match empty {
            EmptySlaveStart::Oldest => master_min,
            EmptySlaveStart::LastSegment => (master_end - master_end % segment_size as i64).max(0),
        });
    }
    if reported > master_end {
        StartDecision::Diverged {
            slave_end: reported,
            master_end,
        }
    } else if reported < master_min {
        StartDecision::Behind {
            slave_end: reported,
            master_min,
        }
    } else {
        StartDecision::At(reported)
    }
}

/// A running HA master. Dropping it shuts it down.
pub struct HaMaster {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    wake: Arc<OwnedFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// What the HA loop shares with the [`HaMaster`] handle.
pub(crate) struct Inner {
    pub(crate) store: Arc<MessageStore>,
    pub(crate) cfg: HaConfig,
    pub(crate) table: Arc<SlaveTable>,
    pub(crate) stop: AtomicBool,
}

impl HaMaster {
    /// Binds `listen` and starts the HA loop.
    pub fn start(
        store: Arc<MessageStore>,
        listen: SocketAddr,
        cfg: HaConfig,
    ) -> io::Result<HaMaster> {
        if cfg.transfer_batch_size == 0 || cfg.transfer_batch_size > i32::MAX as usize {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "haTransferBatchSize {} must be in 1..=i32::MAX",
                    cfg.transfer_batch_size
                ),
            ));
        }
        let listener = TcpListener::bind(listen)?;
        let local_addr = listener.local_addr()?;
        let core = cfg.core;
        let inner = Arc::new(Inner {
            store: store.clone(),
            cfg,
            table: Arc::new(SlaveTable::with_log_end({
                let store = store.clone();
                move || store.commitlog().max_offset()
            })),
            stop: AtomicBool::new(false),
        });
        let wake_fd = Arc::new(eventfd()?);
        // The ring is built on the loop thread (a ring belongs to its creator); its
        // set-up result comes back before `start` returns.
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = {
            let (inner, wake_fd) = (inner.clone(), wake_fd.clone());
            std::thread::Builder::new()
                .name("ringmq-ha-loop".into())
                .spawn(move || {
                    if let Some(core) = core {
                        if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                            tracing::warn!(core, "cannot pin the HA loop to haCore");
                        }
                    }
                    match Loop::new(inner, listener, wake_fd) {
                        Ok(l) => {
                            let _ = ready_tx.send(Ok(()));
                            l.run();
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                })?
        };
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                let _ = thread.join();
                return Err(e);
            }
            Err(_) => {
                let _ = thread.join();
                return Err(io::Error::other("the HA loop thread died at start"));
            }
        }
        tracing::info!(listen = %local_addr, core = ?core, "HA master listening");
        Ok(HaMaster {
            inner,
            local_addr,
            wake: wake_fd,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Connected slaves and their acknowledged offsets.
    pub fn slaves(&self) -> &Arc<SlaveTable> {
        &self.inner.table
    }

    /// Closes every slave connection and stops the HA loop. Idempotent.
    pub fn shutdown(&self) {
        if self.inner.stop.swap(true, Ordering::AcqRel) {
            return;
        }
        wake(&self.wake);
        if let Some(thread) = lock(&self.thread).take() {
            let _ = thread.join();
        }
        self.inner.table.stop();
        tracing::info!(listen = %self.local_addr, "HA master stopped");
    }
}

impl Drop for HaMaster {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_rules() {
        let seg = 65536;
        let d = |r, min, end, e| decide_start(r, min, end, seg, e);
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(0)
        );
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::LastSegment),
            StartDecision::At(196_608)
        );
        assert_eq!(
            d(150, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(150)
        );
        assert_eq!(
            d(300_000, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Diverged {
                slave_end: 300_000,
                master_end: 200_000
            }
        );
        assert_eq!(
            d(10, 65536, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Behind {
                slave_end: 10,
                master_min: 65536
            }
        );
    }
}
