//! Acknowledgements waiting for a published offset: [`Acks`], in offset order (appends are
//! ordered), so each step of the offset answers a prefix in one pass. The writer keeps
//! two: SYNC_FLUSH appends wait for `durable_end`, the others for `write_end`. Owned by
//! the writer thread; every answer is given on it.

use std::collections::VecDeque;
use std::time::Instant;

use crate::commitlog::request::{AppendOutcome, Completion, PutStatus};

/// One append answered once the log is durable (or written) up to `end`, or at
/// `deadline` with FLUSH_DISK_TIMEOUT.
pub(super) struct PendingAck {
    pub end: u64,
    pub deadline: Instant,
    pub outcome: AppendOutcome,
    pub done: Completion,
}

/// The waiting acknowledgements, oldest (lowest `end`) first.
#[derive(Default)]
pub(super) struct Acks {
    queue: VecDeque<PendingAck>,
}

impl Acks {
    /// Queues an acknowledgement; `ack.end` is not below any queued one.
    pub fn push(&mut self, ack: PendingAck) {
        debug_assert!(self.queue.back().is_none_or(|a| a.end <= ack.end));
        self.queue.push_back(ack);
    }

    /// The deadline of the oldest acknowledgement, if any.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.queue.front().map(|a| a.deadline)
    }

    /// Answers every acknowledgement the offset now covers (`ack.end <= end`).
    /// Answers every acknowledgement up to `end`; returns how many.
    pub fn release_upto(&mut self, end: u64) -> usize {
        let mut n = 0;
        while self.queue.front().is_some_and(|a| a.end <= end) {
            let ack = self.queue.pop_front().expect("front exists");
            (ack.done)(ack.outcome);
            n += 1;
        }
        n
    }

    /// Answers FLUSH_DISK_TIMEOUT to every acknowledgement past its own deadline.
    pub fn expire(&mut self, now: Instant) {
        if self.queue.is_empty() {
            return;
        }
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for mut ack in self.queue.drain(..) {
            if ack.deadline <= now {
                ack.outcome.status = PutStatus::FlushDiskTimeout;
                (ack.done)(ack.outcome);
            } else {
                kept.push_back(ack);
            }
        }
        self.queue = kept;
    }

    /// Refuses (SERVICE_NOT_AVAILABLE, `why`) every acknowledgement past `offset`: after a
    /// truncation to `offset` those appends will never be written or durable.
    pub fn reject_past(&mut self, offset: u64, why: &str) {
        let mut kept = VecDeque::with_capacity(self.queue.len());
        for ack in self.queue.drain(..) {
            if ack.end > offset {
                (ack.done)(AppendOutcome::rejected(PutStatus::ServiceNotAvailable(
                    why.into(),
                )));
            } else {
                kept.push_back(ack);
            }
        }
        self.queue = kept;
    }

    /// Refuses every acknowledgement (SERVICE_NOT_AVAILABLE, `why`): the writer stopped.
    pub fn reject_all(&mut self, why: &str) {
        for ack in self.queue.drain(..) {
            (ack.done)(AppendOutcome::rejected(PutStatus::ServiceNotAvailable(
                why.into(),
            )));
        }
    }
}
