//! The network loops: one thread per configured core, each running its own io_uring
//! (tokio-uring, current-thread) with its own SO_REUSEPORT listener on the service port,
//! so the kernel spreads connections over the cores and a connection stays on one core.
//!
//! | file | owns |
//! | --- | --- |
//! | `service` | [`Service`]: what a loop asks of the program it serves; [`Conn`] |
//! | `listener` | SO_REUSEPORT listening sockets |
//! | `conn` | one connection: read and decode loop, per-turn batching, writer task |

mod conn;
mod listener;
mod service;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub use conn::put;
pub use service::{Conn, ConnLimits, Service};

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);
/// Connections closed at accept because the server was full.
static REFUSED_CONNS: AtomicU64 = AtomicU64::new(0);

/// Closes the idle connections of one loop every so often, until `stop` changes.
async fn close_idle_until_stopped(
    conns: Rc<conn::Connections>,
    idle: Duration,
    mut stop: watch::Receiver<bool>,
) {
    let every = (idle / 4).clamp(Duration::from_millis(10), Duration::from_secs(10));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.changed() => return,
        }
        conns.close_idle(idle);
    }
}

/// The listening sockets, one per network core, bound before the service starts so that a
/// port of 0 is resolved first (the broker advertises its real address in routes and
/// stamps it into every record's STOREHOST).
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Listeners {
    /// Binds `addr` once per network core (`cores` >= 1).
    pub fn bind(addr: SocketAddr, cores: usize) -> io::Result<Listeners> {
        let first = listener::reuse_port_listener(addr)?;
        let local_addr = first.local_addr()?;
        let mut sockets = vec![first];
        for _ in 1..cores.max(1) {
            sockets.push(listener::reuse_port_listener(local_addr)?);
        }
        Ok(Listeners {
            sockets,
            local_addr,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

/// Where the loops run.
#[derive(Debug, Clone)]
pub struct LoopPlacement {
    /// One core id per listener, in order.
    pub cores: Vec<usize>,
    /// Pin each loop's thread to its core.
    pub pin: bool,
}

/// Running network loops serving one [`Service`].
pub struct Loops {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
}

/// Accepts connections until `stop` changes (or its sender is gone), then stops accepting
/// without leaving the accept operation in flight: the listening socket is shut down,
/// which completes the pending accept (EINVAL), and that completion is awaited. Dropping
/// the accept future instead would leave the kernel free to write a peer address into
/// memory tokio-uring frees when the runtime is dropped (see `conn::Connections`).
async fn accept_until_stopped<S: Service>(
    listener: &tokio_uring::net::TcpListener,
    svc: &Arc<S>,
    conns: &Rc<conn::Connections>,
    stop: &mut watch::Receiver<bool>,
) {
    loop {
        let accept = listener.accept();
        tokio::pin!(accept);
        let accepted = tokio::select! {
            accepted = &mut accept => accepted,
            _ = stop.changed() => {
                // SAFETY: shutdown(2) on the listening socket `listener` owns, which stays
                // open for the whole call; no memory is passed.
                if unsafe { libc::shutdown(listener.as_raw_fd(), libc::SHUT_RDWR) } != 0 {
                    let error = io::Error::last_os_error();
                    tracing::warn!(%error, "cannot shut the listener down");
                }
                // A connection that raced in is closed when its stream drops here.
                let _ = accept.await;
                return;
            }
        };
        match accepted {
            Ok((stream, peer)) => {
                let max = svc.limits().max_connections;
                if conns.total() >= max {
                    // Closed as it drops: nothing was submitted on it yet.
                    let refused = REFUSED_CONNS.fetch_add(1, Ordering::Relaxed);
                    if refused.is_power_of_two() || refused == 0 {
                        tracing::warn!(%peer, max, refused = refused + 1, "connection limit reached (maxConnections); closing new connection");
                    }
                    drop(stream);
                    continue;
                }
                let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                conns.serve(svc.clone(), stream, peer, id);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl Loops {
    /// Starts one loop per listener, each on its core of `placement`.
    pub fn start<S: Service>(
        svc: Arc<S>,
        bound: Listeners,
        placement: &LoopPlacement,
    ) -> io::Result<Loops> {
        assert_eq!(
            bound.sockets.len(),
            placement.cores.len(),
            "one core per listener"
        );
        let Listeners {
            sockets: listeners,
            local_addr,
        } = bound;
        let (stop, stop_rx) = watch::channel(false);
        let total = Arc::new(AtomicUsize::new(0));
        let mut threads = Vec::new();
        for (i, std_listener) in listeners.into_iter().enumerate() {
            let core = placement.cores[i];
            let pin = placement.pin;
            let svc = svc.clone();
            let mut stop_rx = stop_rx.clone();
            let total = total.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ringmq-net-{i}"))
                .spawn(move || {
                    if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin network loop");
                    }
                    tokio_uring::start(async move {
                        let listener = tokio_uring::net::TcpListener::from_std(std_listener);
                        let conns = Rc::new(conn::Connections::new(total));
                        if let Some(idle) = svc.limits().idle_timeout {
                            tokio_uring::spawn(close_idle_until_stopped(
                                conns.clone(),
                                idle,
                                stop_rx.clone(),
                            ));
                        }
                        accept_until_stopped(&listener, &svc, &conns, &mut stop_rx).await;
                        // Give in-flight requests a moment to be answered before the loop ends.
                        let deadline = Instant::now() + Duration::from_secs(2);
                        while svc.in_flight() > 0 && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        // No socket operation may be in flight when the runtime is dropped
                        // (see `conn::Connections`).
                        conns.close_all().await;
                    });
                })?;
            threads.push(thread);
        }
        tracing::info!(addr = %local_addr, cores = ?placement.cores, "serving RocketMQ remoting");
        Ok(Loops {
            local_addr,
            stop,
            threads,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stops accepting, lets in-flight requests finish (briefly) and closes every
    /// connection; returns when every loop has ended.
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
