//! The connection a request arrived on, what its writer task sends, and the answers every
//! processor shares. A leaf: it imports no other module of the broker, so processors and
//! the service that routes to them can all use it.
//!
//! Runs on: the network cores; [`Outgoing`] items are also queued from the writer thread
//! (send completions) and the HA threads (SYNC_MASTER answers).

use ringmq_engine::commitlog::AppendOutcome;
use ringmq_ha::ReplicaOutcome;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::codes::SerializeType;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::server::Conn;

/// What a connection's writer task sends, in order.
pub enum Outgoing {
    /// A finished response or a broker-initiated request.
    Command(RemotingCommand),
    /// The engine's answer for the sends of one network turn, and (SYNC_MASTER) how the
    /// wait for slaves ended; turned into responses only when written
    /// (`send::encode_responses`).
    Sends(Vec<SendCtx>, AppendOutcome, ReplicaOutcome),
}

impl From<RemotingCommand> for Outgoing {
    fn from(cmd: RemotingCommand) -> Self {
        Outgoing::Command(cmd)
    }
}

/// The connection a request arrived on.
pub type ConnInfo = Conn<Outgoing>;

/// What is kept of one send request until the writer answers.
pub struct SendCtx {
    /// The request's opaque and header form, which its answer carries.
    pub opaque: i32,
    pub serialize_type: SerializeType,
    pub queue_id: i32,
    /// How many messages of the turn's append belong to this request.
    pub count: usize,
    /// UNIQ_KEY of a single message (the response's transactionId).
    pub uniq_key: Option<String>,
    pub oneway: bool,
}

/// The answer to a request whose header could not be read.
pub fn header_error(req: &RemotingCommand, err: &FrameError) -> RemotingCommand {
    RemotingCommand::response_to(req, rs::SYSTEM_ERROR, Some(err.to_string()))
}
