//! Members that went away: dropped when not refreshed for 120 s (`expire_idle`, called by
//! the broker's housekeeping every few seconds) and at once when their connection closes
//! (`connection_closed`). A consumer group that lost a member is notified.
//!
//! Runs on: the broker's housekeeping thread (expiry) and the network core whose
//! connection closed.

use std::time::{Duration, Instant};

use super::registry::{ClientRegistry, ConsumerMember, ProducerMember};

/// RocketMQ's `channelExpiredTimeout`: a member not refreshed for this long is dropped.
pub const CHANNEL_EXPIRED_TIMEOUT: Duration = Duration::from_secs(120);

impl ClientRegistry {
    /// Drops members (consumers and producers) not refreshed for 120 s and notifies the
    /// groups that lost consumers.
    pub fn expire_idle(&self) {
        self.expire_older_than(CHANNEL_EXPIRED_TIMEOUT);
    }

    /// Drops members whose last heartbeat is more than `timeout` ago.
    pub fn expire_older_than(&self, timeout: Duration) {
        let now = Instant::now();
        let idle = |t: Instant| now.saturating_duration_since(t) > timeout;
        self.remove_members(
            |m| idle(m.last_heartbeat),
            |p| idle(p.last_heartbeat),
            "expired",
        );
    }

    /// Drops every registration made on connection `conn_id` (the connection closed) and
    /// notifies the groups that lost a consumer.
    pub fn connection_closed(&self, conn_id: u64) {
        self.remove_members(
            |m| m.conn_id == conn_id,
            |p| p.conn_id == conn_id,
            "connection closed",
        );
    }

    fn remove_members(
        &self,
        drop_consumer: impl Fn(&ConsumerMember) -> bool,
        drop_producer: impl Fn(&ProducerMember) -> bool,
        why: &str,
    ) {
        let mut changed = Vec::new();
        {
            let mut inner = self.lock();
            inner.consumers.retain(|name, g| {
                let before = g.members.len();
                g.members.retain(|_, m| {
                    let gone = drop_consumer(m);
                    if gone {
                        tracing::info!(group = %name, client = %m.client_id, conn = m.conn_id, why, "consumer removed");
                    }
                    !gone
                });
                if g.members.len() != before && !g.members.is_empty() {
                    changed.push(name.clone());
                }
                !g.members.is_empty()
            });
            inner.producers.retain(|_, members| {
                members.retain(|_, p| !drop_producer(p));
                !members.is_empty()
            });
        }
        for group in changed {
            self.notify_group_changed(&group);
        }
    }
}
