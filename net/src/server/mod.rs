//! The network loops: one thread per configured core, each running its own io_uring
//! (tokio-uring, current-thread) with its own SO_REUSEPORT listener on the broker port,
//! so the kernel spreads connections over the cores and a connection stays on one core.
//!
//! | file | owns |
//! | --- | --- |
//! | `listener` | SO_REUSEPORT listening sockets |
//! | `conn` | one connection: read and decode loop, per-turn send batching, writer task |

mod conn;
mod listener;

use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::broker::Broker;

pub struct Server {
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    threads: Vec<JoinHandle<()>>,
    broker: Arc<Broker>,
}

static NEXT_CONN_ID: AtomicU64 = AtomicU64::new(1);

/// Why a broker could not start serving.
#[derive(Debug)]
pub enum ServeError {
    /// The listening port could not be bound.
    Bind(io::Error),
    /// The store or its metadata could not be opened.
    Store(ringmq_engine::Error),
}

impl std::fmt::Display for ServeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServeError::Bind(e) => write!(f, "cannot listen: {e}"),
            ServeError::Store(e) => write!(f, "cannot open the store: {e}"),
        }
    }
}

impl std::error::Error for ServeError {}

/// The listening sockets, one per network core, bound before the broker opens so that a
/// `listenPort` of 0 is resolved first: the broker advertises its real address in routes
/// and stamps it into every record's STOREHOST.
pub struct Listeners {
    sockets: Vec<std::net::TcpListener>,
    local_addr: SocketAddr,
}

impl Listeners {
    /// Binds `brokerIP1:listenPort` once per network core and writes the bound port back
    /// into `cfg`.
    pub fn bind(cfg: &mut crate::broker::BrokerConfig) -> io::Result<Listeners> {
        let first = listener::reuse_port_listener(SocketAddr::new(cfg.broker_ip, cfg.listen_port))?;
        let local_addr = first.local_addr()?;
        cfg.listen_port = local_addr.port();
        let mut sockets = vec![first];
        for _ in 1..cfg.net_cores.len() {
            sockets.push(listener::reuse_port_listener(local_addr)?);
        }
        Ok(Listeners {
            sockets,
            local_addr,
        })
    }
}

/// Accepts connections until `stop` changes (or its sender is gone), then stops accepting
/// without leaving the accept operation in flight: the listening socket is shut down,
/// which completes the pending accept (EINVAL), and that completion is awaited. Dropping
/// the accept future instead would leave the kernel free to write a peer address into
/// memory tokio-uring frees when the runtime is dropped (see `conn::Connections`).
async fn accept_until_stopped(
    listener: &tokio_uring::net::TcpListener,
    b: &Arc<Broker>,
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
                let id = NEXT_CONN_ID.fetch_add(1, Ordering::Relaxed);
                conns.serve(b.clone(), stream, peer, id);
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

impl Server {
    /// Binds the port, opens the broker (recovering its store), and starts serving.
    pub fn open(mut cfg: crate::broker::BrokerConfig) -> Result<Server, ServeError> {
        let listeners = Listeners::bind(&mut cfg).map_err(ServeError::Bind)?;
        let broker = Broker::open(cfg).map_err(ServeError::Store)?;
        Server::start(broker, listeners).map_err(ServeError::Bind)
    }

    /// Serves `broker` on sockets bound with [`Listeners::bind`] from its configuration.
    pub fn start(broker: Arc<Broker>, bound: Listeners) -> io::Result<Server> {
        let cfg = &broker.cfg;
        assert_eq!(
            bound.local_addr.port(),
            cfg.listen_port,
            "listeners bound from another configuration"
        );
        let Listeners {
            sockets: listeners,
            local_addr,
        } = bound;
        let (stop, stop_rx) = watch::channel(false);
        let mut threads = Vec::new();
        for (i, std_listener) in listeners.into_iter().enumerate() {
            let core = cfg.net_cores[i];
            let pin = cfg.pin_threads;
            let b = broker.clone();
            let mut stop_rx = stop_rx.clone();
            let thread = std::thread::Builder::new()
                .name(format!("ringmq-net-{i}"))
                .spawn(move || {
                    if pin && !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                        tracing::warn!(core, "could not pin network loop");
                    }
                    tokio_uring::start(async move {
                        let listener = tokio_uring::net::TcpListener::from_std(std_listener);
                        let conns = Rc::new(conn::Connections::default());
                        accept_until_stopped(&listener, &b, &conns, &mut stop_rx).await;
                        // Give in-flight requests a moment to be answered before the loop ends.
                        let deadline = Instant::now() + Duration::from_secs(2);
                        while crate::broker::send::pending() > 0 && Instant::now() < deadline {
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                        // No socket operation may be in flight when the runtime is dropped
                        // (see `conn::Connections`).
                        conns.close_all().await;
                    });
                })?;
            threads.push(thread);
        }
        tracing::info!(addr = %local_addr, cores = ?broker.cfg.net_cores, "serving RocketMQ remoting");
        Ok(Server {
            local_addr,
            stop,
            threads,
            broker,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, lets in-flight sends finish (briefly) and closes every connection.
    /// The broker itself stays open (see [`Server::shutdown`]).
    pub fn stop(&mut self) {
        let _ = self.stop.send(true);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }

    /// [`Server::stop`], then shuts the broker down cleanly.
    pub fn shutdown(mut self) -> Result<(), ringmq_engine::Error> {
        self.stop();
        self.broker.shutdown()
    }
}
