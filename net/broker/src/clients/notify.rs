//! NOTIFY_CONSUMER_IDS_CHANGED (40), broker → client (spec §3.8): whenever the member set
//! of a consumer group changes (a new connection, a member's subscribed topics change,
//! unregister, close, expiry) every remaining member is told, unless the group config
//! disables it or the group consumes in BROADCASTING mode (Java's rules).
//!
//! Runs on: whichever thread changed the group (a network core, or the housekeeping thread
//! for expiry); the requests go out through each member's outbox.

use tokio::sync::mpsc::UnboundedSender;

use super::registry::ClientRegistry;
use crate::conn::Outgoing;
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::header::{NotifyConsumerIdsChangedHeader, RequestHeader};

/// `MessageModel.BROADCASTING`: groups in this mode are never told about member changes.
pub const BROADCASTING: &str = "BROADCASTING";

impl ClientRegistry {
    /// Sends the oneway NOTIFY_CONSUMER_IDS_CHANGED request (header `consumerGroup`) to every
    /// member connection of `group`, unless the group's config disabled notifications or it
    /// consumes in BROADCASTING mode. Members whose connection is gone are skipped.
    pub fn notify_group_changed(&self, group: &str) {
        let outboxes: Vec<UnboundedSender<Outgoing>> = {
            let inner = self.lock();
            let Some(g) = inner.consumers.get(group) else {
                return;
            };
            if !g.notify_enabled || g.message_model == BROADCASTING {
                return;
            }
            g.members.values().map(|m| m.outbox.clone()).collect()
        };
        tracing::debug!(
            group,
            members = outboxes.len(),
            "notifying consumer ids changed"
        );
        for outbox in outboxes {
            let mut cmd = RemotingCommand::request(rq::NOTIFY_CONSUMER_IDS_CHANGED);
            NotifyConsumerIdsChangedHeader {
                consumer_group: group,
            }
            .encode(&mut cmd);
            cmd.mark_oneway();
            let _ = outbox.send(Outgoing::Command(cmd));
        }
    }
}
