//! What the application gives a push consumer: a listener that consumes a batch of
//! messages, either concurrently (any worker, any order; failures go back to the broker's
//! retry topic) or orderly (one batch of a queue at a time, in queue order, while this
//! consumer holds the queue's broker lock; failures are retried in place).

use std::sync::Arc;

use crate::consumer::ReceivedMessage;

/// A concurrent listener's verdict on its batch (RocketMQ's `ConsumeConcurrentlyStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeStatus {
    Success,
    /// Redeliver later through `%RETRY%<group>` (after the next delay level).
    ReconsumeLater,
}

/// An orderly listener's verdict on its batch (RocketMQ's `ConsumeOrderlyStatus`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderlyStatus {
    Success,
    /// Wait `suspend_current_queue`, then give the same batch again.
    SuspendCurrentQueueAMoment,
}

pub type ConcurrentFn = dyn Fn(&[ReceivedMessage]) -> ConsumeStatus + Send + Sync;
pub type OrderlyFn = dyn Fn(&[ReceivedMessage]) -> OrderlyStatus + Send + Sync;

/// The consumer's listener. A panic inside it counts as a failure of the batch.
#[derive(Clone)]
pub enum Listener {
    Concurrently(Arc<ConcurrentFn>),
    Orderly(Arc<OrderlyFn>),
}

impl Listener {
    pub fn concurrently(
        f: impl Fn(&[ReceivedMessage]) -> ConsumeStatus + Send + Sync + 'static,
    ) -> Self {
        Listener::Concurrently(Arc::new(f))
    }

    pub fn orderly(
        f: impl Fn(&[ReceivedMessage]) -> OrderlyStatus + Send + Sync + 'static,
    ) -> Self {
        Listener::Orderly(Arc::new(f))
    }

    pub fn is_orderly(&self) -> bool {
        matches!(self, Listener::Orderly(_))
    }
}
