//! The master side: accepts slaves on `haListenPort` and streams the CommitLog to each,
//! all on one thread.
//!
//! | thread | does |
//! | --- | --- |
//! | `ringmq-ha-loop` | the HA loop (`master_loop`): one io_uring for every slave's accept, `haAuthToken` handshake, offset reports and transfers; pinned to `haCore` when [`HaConfig::core`] is set |
//!
//! With `haAuthToken`, a peer is registered in the [`SlaveTable`] (and may report offsets)
//! only once it passed the handshake; nothing is streamed before its first report. The
//! loop ships bytes once they survive a crash of the master process
//! ([`CommitLog::process_safe_level`](ringmq_engine::commitlog::CommitLog::process_safe_level)):
//! as soon as they are appended when the tail ring lives in shared memory (start-up
//! writes it back), else once their O_DIRECT write completed. So a slave never holds
//! bytes the master loses to a kill -9, and the master's disk write is not in a
//! SYNC_MASTER send's path. (A power cut can cost the master its unflushed tail in either
//! case; the slave then truncates what its master no longer has.) [`HaMaster::shutdown`]
//! wakes the loop through an eventfd the loop reads on its ring.

use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ringmq_engine::sync::lock;
use ringmq_engine::MessageStore;

use crate::config::HaConfig;
use crate::master_loop::{eventfd, wake, Inner, Loop};
use crate::slave_table::SlaveTable;

/// A running HA master. Dropping it shuts it down.
pub struct HaMaster {
    inner: Arc<Inner>,
    local_addr: SocketAddr,
    wake: Arc<OwnedFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
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
