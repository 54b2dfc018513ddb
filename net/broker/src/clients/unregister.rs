//! UNREGISTER_CLIENT (35) (spec §3.6): removes a client's producer and/or consumer
//! registration; a consumer group that lost a member is notified.
//!
//! Runs on: the network core of the connection the request came on.

use crate::conn::ConnInfo;
use crate::Broker;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{RequestHeader, UnregisterClientHeader};

/// UNREGISTER_CLIENT (35): header `clientID`, optional `producerGroup` / `consumerGroup`.
pub fn unregister_client(
    b: &Broker,
    conn: &ConnInfo,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = UnregisterClientHeader::decode(req)?;
    let client_id = h.client_id;
    // An empty group name counts as absent.
    if let Some(group) = h.producer_group.filter(|g| !g.is_empty()) {
        b.clients.unregister_producer(group, conn.id, client_id);
    }
    if let Some(group) = h.consumer_group.filter(|g| !g.is_empty()) {
        if b.clients.unregister_consumer(group, conn.id, client_id) {
            tracing::info!(
                group,
                client = client_id,
                conn = conn.id,
                "consumer unregistered"
            );
            b.clients.notify_group_changed(group);
        }
    }
    Ok(RemotingCommand::response_to(req, rs::SUCCESS, None))
}
