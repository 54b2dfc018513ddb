//! The broker served on the network loops: [`Broker`] as a remoting [`Service`] (which
//! requests are batched, which may park, how deferred send answers become frames), and
//! [`Server`], the broker with its loops, opened and stopped in order.
//!
//! Runs on: the network cores (the `Service` methods); `Server` on the caller's thread.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::BytesMut;
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::server::{put, ConnLimits, Listeners, LoopPlacement, Loops, Service};

use crate::conn::{ConnInfo, Outgoing};
use crate::{acl, route, send, Broker, BrokerConfig};

impl Service for Broker {
    type Outgoing = Outgoing;

    fn max_frame_size(&self) -> usize {
        self.cfg.max_frame_size
    }

    fn is_batched(&self, code: i32) -> bool {
        route::is_send(code)
    }

    fn may_park(&self, code: i32) -> bool {
        matches!(code, rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE)
    }

    async fn process(
        b: &Arc<Broker>,
        conn: &Arc<ConnInfo>,
        req: RemotingCommand,
    ) -> Option<RemotingCommand> {
        if let Err(refusal) = acl::gate(b.acl.as_ref(), conn, &req) {
            return refusal;
        }
        route::process(b, conn, req).await
    }

    fn submit_batch(b: &Arc<Broker>, conn: &Arc<ConnInfo>, mut reqs: Vec<RemotingCommand>) {
        if b.acl.is_some() {
            reqs.retain(|req| match acl::gate(b.acl.as_ref(), conn, req) {
                Ok(()) => true,
                Err(refusal) => {
                    if let Some(r) = refusal {
                        conn.send(r);
                    }
                    false
                }
            });
        }
        send::submit_turn(b, conn, reqs);
    }

    fn encode(&self, item: Outgoing, out: &mut BytesMut) {
        match item {
            Outgoing::Command(cmd) => put(&cmd, out),
            Outgoing::Sends(ctxs, outcome, replica) => {
                send::encode_responses(self, ctxs, outcome, replica, out)
            }
        }
    }

    fn connection_closed(&self, conn_id: u64) {
        self.clients.connection_closed(conn_id);
    }

    fn in_flight(&self) -> usize {
        send::pending()
    }

    fn limits(&self) -> ConnLimits {
        let idle = self.cfg.server_channel_max_idle_time;
        ConnLimits {
            max_connections: self.cfg.max_connections,
            idle_timeout: (!idle.is_zero()).then_some(idle),
            max_queued_bytes: self.cfg.max_connection_queued_bytes,
            // Past maxParkedPullsPerConnection pulls are refused (SYSTEM_BUSY); the loop
            // stops reading only at twice that, counting pulls that are being answered.
            max_parked_requests: self.cfg.max_parked_pulls_per_connection.saturating_mul(2),
        }
    }
}

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

/// Binds `brokerIP1:listenPort` once per network core and writes the bound port back into
/// `cfg`, before the broker opens (see [`Listeners`]).
pub fn bind(cfg: &mut BrokerConfig) -> io::Result<Listeners> {
    let listeners = Listeners::bind(
        SocketAddr::new(cfg.broker_ip, cfg.listen_port),
        cfg.net_cores.len(),
    )?;
    cfg.listen_port = listeners.local_addr().port();
    Ok(listeners)
}

/// A broker and the network loops serving it.
pub struct Server {
    loops: Loops,
    broker: Arc<Broker>,
}

impl Server {
    /// Binds the port, opens the broker (recovering its store), and starts serving.
    pub fn open(mut cfg: BrokerConfig) -> Result<Server, ServeError> {
        let listeners = bind(&mut cfg).map_err(ServeError::Bind)?;
        let broker = Broker::open(cfg).map_err(ServeError::Store)?;
        Server::start(broker, listeners).map_err(ServeError::Bind)
    }

    /// Serves `broker` on sockets bound with [`bind`] from its configuration.
    pub fn start(broker: Arc<Broker>, bound: Listeners) -> io::Result<Server> {
        assert_eq!(
            bound.local_addr().port(),
            broker.cfg.listen_port,
            "listeners bound from another configuration"
        );
        let placement = LoopPlacement {
            cores: broker.cfg.net_cores.clone(),
            pin: broker.cfg.pin_threads,
        };
        let loops = Loops::start(broker.clone(), bound, &placement)?;
        Ok(Server { loops, broker })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.loops.local_addr()
    }

    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Stops accepting, lets in-flight sends finish (briefly) and closes every connection.
    /// The broker itself stays open (see [`Server::shutdown`]).
    pub fn stop(&mut self) {
        self.loops.stop();
    }

    /// [`Server::stop`], then shuts the broker down cleanly.
    pub fn shutdown(mut self) -> Result<(), ringmq_engine::Error> {
        self.stop();
        self.broker.shutdown()
    }
}
