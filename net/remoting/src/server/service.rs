//! What a network loop asks of the program it serves ([`Service`]), and the connection a
//! request arrived on ([`Conn`]). The broker implements [`Service`]; the loops know
//! nothing of its processors.
//!
//! Runs on: the network cores (every method is called from a connection's tasks), except
//! [`Conn::send`]/[`Conn::push`], which any thread may call (the writer thread answers
//! appends through them).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::sync::mpsc::UnboundedSender;

use crate::command::RemotingCommand;

/// A program served by the network loops.
pub trait Service: Send + Sync + Sized + 'static {
    /// What a connection's writer task sends, in order: finished commands, or items the
    /// service turns into frames only when they are written (see [`Service::encode`]).
    type Outgoing: From<RemotingCommand> + Send + 'static;

    /// Largest frame a connection accepts; a larger one closes the connection.
    fn max_frame_size(&self) -> usize;

    /// Requests with this code are collected over one network turn and handed to
    /// [`Service::submit_batch`] together (the broker's sends: one hand-off per turn).
    fn is_batched(&self, code: i32) -> bool;

    /// Requests with this code may wait for a long time (long-poll pulls): each is
    /// served in a task of its own so the connection keeps reading.
    fn may_park(&self, code: i32) -> bool;

    /// Serves one request. `None` for a oneway request: nothing is sent back.
    fn process(
        svc: &Arc<Self>,
        conn: &Arc<Conn<Self::Outgoing>>,
        req: RemotingCommand,
    ) -> impl Future<Output = Option<RemotingCommand>>;

    /// Takes one turn's batched requests; their answers come back through `conn` later.
    fn submit_batch(svc: &Arc<Self>, conn: &Arc<Conn<Self::Outgoing>>, reqs: Vec<RemotingCommand>);

    /// Appends the frames of one outgoing item to `out` (see [`crate::server::put`]).
    fn encode(&self, item: Self::Outgoing, out: &mut BytesMut);

    /// The connection `conn_id` is gone (its reader ended).
    fn connection_closed(&self, conn_id: u64);

    /// Requests accepted but not yet answered; a stopping loop waits (briefly) for them.
    fn in_flight(&self) -> usize;

    /// What the loops allow a client (connections, idle time, queued answers).
    fn limits(&self) -> ConnLimits {
        ConnLimits::default()
    }
}

/// What the network loops allow clients, so that none can exhaust the broker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnLimits {
    /// Open connections over all loops; one more is closed as soon as it is accepted.
    pub max_connections: usize,
    /// A connection with no read or write completed for this long is closed
    /// (RocketMQ's `serverChannelMaxIdleTimeSeconds`); None: never.
    pub idle_timeout: Option<Duration>,
    /// Answers encoded and not yet written to one connection: above this the connection
    /// stops reading requests until its writer has drained to half of it.
    pub max_queued_bytes: usize,
    /// Requests of one connection served in tasks of their own (long-poll pulls) and not
    /// yet answered: at this many the connection stops reading until one is answered.
    pub max_parked_requests: usize,
}

impl Default for ConnLimits {
    fn default() -> Self {
        ConnLimits {
            max_connections: 10_000,
            idle_timeout: Some(Duration::from_secs(120)),
            max_queued_bytes: 32 << 20,
            max_parked_requests: 1024,
        }
    }
}

/// The connection a request arrived on.
pub struct Conn<O> {
    pub id: u64,
    pub peer: SocketAddr,
    /// Feeds the connection's writer; also used to push requests to the client.
    pub outbox: UnboundedSender<O>,
}

impl<O> Conn<O> {
    pub fn new(id: u64, peer: SocketAddr, outbox: UnboundedSender<O>) -> Self {
        Conn { id, peer, outbox }
    }

    /// Queues `item` for the connection's writer. False once the connection is gone.
    pub fn push(&self, item: O) -> bool {
        self.outbox.send(item).is_ok()
    }
}

impl<O: From<RemotingCommand>> Conn<O> {
    /// Queues a finished command (a response, or a request the broker sends the client).
    pub fn send(&self, cmd: RemotingCommand) {
        let _ = self.push(O::from(cmd));
    }
}
