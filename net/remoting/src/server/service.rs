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
