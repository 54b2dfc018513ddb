//! What admin requests and the metrics read from the registry: connection counts per
//! group and the outboxes of a group's members (to push RESET_CONSUMER_CLIENT_OFFSET).

use tokio::sync::mpsc::UnboundedSender;

use super::registry::ClientRegistry;
use crate::conn::Outgoing;

impl ClientRegistry {
    /// (group, connections) of every producer group and of every consumer group, sorted.
    #[allow(clippy::type_complexity)]
    pub fn connection_counts(&self) -> (Vec<(String, usize)>, Vec<(String, usize)>) {
        let inner = self.lock();
        let mut producers: Vec<_> = inner
            .producers
            .iter()
            .map(|(g, m)| (g.clone(), m.len()))
            .collect();
        let mut consumers: Vec<_> = inner
            .consumers
            .iter()
            .map(|(g, c)| (g.clone(), c.members.len()))
            .collect();
        producers.sort();
        consumers.sort();
        (producers, consumers)
    }

    /// The outboxes of every member connection of consumer `group`.
    pub fn consumer_outboxes(&self, group: &str) -> Vec<UnboundedSender<Outgoing>> {
        let inner = self.lock();
        inner
            .consumers
            .get(group)
            .map(|g| g.members.values().map(|m| m.outbox.clone()).collect())
            .unwrap_or_default()
    }
}
