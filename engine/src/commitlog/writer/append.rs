//! Appends: a producer's messages encoded into the tail ring (physical offset, queue
//! offset and store timestamp assigned here), or a slave's replicated bytes copied in as
//! they are. A producer's append is queued in `durable_acks` until durable (SYNC_FLUSH and
//! `WAIT` true) or in `write_acks` until written (otherwise), or answered at once when
//! the ring is in shared memory or with `ack_before_write`. Writer thread only.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::acks::PendingAck;
use super::Writer;
use crate::commitlog::config::FlushMode;
use crate::commitlog::progress::Level;
use crate::commitlog::request::{AppendOutcome, AppendRequest, Appended, PutStatus, RawAppend};
use crate::offset::{PhyOffset, QueueOffset};
use crate::record::StoreFields;
use crate::Error;

impl Writer {
    /// Encodes one request. Gives it back if the ring has no room yet.
    pub(super) fn append(&mut self, req: AppendRequest) -> std::result::Result<(), AppendRequest> {
        if let Some(why) = self.stopped_reason() {
            (req.done)(AppendOutcome::rejected(PutStatus::ServiceNotAvailable(why)));
            return Ok(());
        }
        let cfg = &self.shared.cfg;
        let host = cfg.store_host;
        let mut total = 0u64;
        for m in &req.messages {
            if let Err(e) = m.validate(cfg.max_message_size) {
                (req.done)(AppendOutcome::rejected(PutStatus::MessageIllegal(
                    e.to_string(),
                )));
                return Ok(());
            }
            total += m.encoded_len(&host) as u64;
        }
        if req.messages.is_empty()
            || total + 8 > cfg.segment_size
            || total > self.shared.tail.capacity() / 4
        {
            let why = format!(
                "{} bytes in {} messages do not fit one segment",
                total,
                req.messages.len()
            );
            (req.done)(AppendOutcome::rejected(PutStatus::MessageIllegal(why)));
            return Ok(());
        }
        let rolls = self.append_end + total + 8 > self.current.end();
        let room_to = if rolls {
            self.current.end() + total
        } else {
            self.append_end + total
        };
        if !self.make_room(room_to) {
            return Err(req);
        }
        if rolls {
            if let Err(status) = self.roll() {
                (req.done)(AppendOutcome::rejected(status));
                return Ok(());
            }
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0);
        let mut appended = Vec::with_capacity(req.messages.len());
        for m in &req.messages {
            let len = m.encoded_len(&host);
            let queue_offset =
                next_queue_offset(&mut self.queue_offsets, &m.topic, m.queue_id).wire();
            let fields = StoreFields {
                queue_offset,
                physical_offset: self.append_end as i64,
                store_timestamp: now,
                store_host: host,
            };
            // SAFETY: [append_end, append_end + len) is above the published append_end,
            // so no reader looks at it; make_room raised retain_start past the older lap
            // these slots held; no in-flight write covers bytes above append_end except
            // through the snapshot page.
            let dst = unsafe { self.shared.tail.ring().slice_mut(self.append_end, len) };
            m.encode_into(dst, &fields);
            appended.push(Appended {
                phys_offset: self.append_end as i64,
                queue_offset,
                size: len as i32,
                store_timestamp: now,
            });
            self.append_end += len as u64;
        }
        self.publish_append();
        let outcome = AppendOutcome {
            status: PutStatus::Ok,
            appended,
            end_offset: self.append_end as i64,
        };
        let cfg = &self.shared.cfg;
        let end = self.append_end;
        let ack = |outcome, done| PendingAck {
            end,
            deadline: Instant::now() + cfg.sync_flush_timeout,
            outcome,
            done,
        };
        if cfg.flush_mode == FlushMode::Sync && req.wait_durable {
            self.durable_acks.push(ack(outcome, req.done));
        } else if !self.shared.acks_from_ring() {
            // Answered once the write completed: survives a kill -9 of the broker.
            // (From a ring in shared memory the answer is at once: that survives too.)
            self.write_acks.push(ack(outcome, req.done));
        } else {
            (req.done)(outcome);
        }
        Ok(())
    }

    /// Appends replicated bytes (slave side). Gives them back if the ring has no room yet.
    pub(super) fn append_raw(&mut self, raw: RawAppend) -> std::result::Result<(), RawAppend> {
        if let Some(why) = self.stopped_reason() {
            (raw.done)(Err(Error::WriterStopped(why)));
            return Ok(());
        }
        if raw.phys_offset as u64 != self.append_end {
            (raw.done)(Err(Error::Discontinuity {
                expected: self.append_end as i64,
                got: raw.phys_offset,
            }));
            return Ok(());
        }
        if raw.bytes.len() as u64 > self.shared.tail.capacity() / 4 {
            (raw.done)(Err(Error::Invalid(format!(
                "replicated chunk of {} bytes is too large",
                raw.bytes.len()
            ))));
            return Ok(());
        }
        if !self.make_room(self.append_end + raw.bytes.len() as u64) {
            return Err(raw);
        }
        let mut rest = &raw.bytes[..];
        while !rest.is_empty() {
            if self.append_end == self.current.end() {
                if let Err(status) = self.switch_segment() {
                    (raw.done)(Err(match status {
                        PutStatus::DiskFull => Error::DiskFull {
                            path: self.shared.cfg.dir.clone(),
                        },
                        other => Error::WriterStopped(format!("{other:?}")),
                    }));
                    self.publish_append();
                    return Ok(());
                }
            }
            let n = rest
                .len()
                .min((self.current.end() - self.append_end) as usize);
            // SAFETY: as in `append`: the bytes are above append_end and make_room freed them.
            let dst = unsafe { self.shared.tail.ring().slice_mut(self.append_end, n) };
            dst.copy_from_slice(&rest[..n]);
            self.append_end += n as u64;
            rest = &rest[n..];
        }
        self.publish_append();
        (raw.done)(Ok(self.append_end as i64));
        Ok(())
    }

    /// Publishes `append_end`: first into the ring's crash window (the bytes are in), then
    /// to readers and waiters.
    fn publish_append(&self) {
        self.shared.tail.ring().publish_end(self.append_end);
        self.shared
            .progress
            .publish(Level::Append, PhyOffset::new(self.append_end));
    }
}

fn next_queue_offset(
    table: &mut HashMap<Box<str>, Vec<QueueOffset>>,
    topic: &str,
    queue_id: i32,
) -> QueueOffset {
    let qid = queue_id.max(0) as usize;
    let queues = match table.get_mut(topic) {
        Some(q) => q,
        None => table.entry(topic.into()).or_default(),
    };
    if queues.len() <= qid {
        queues.resize(qid + 1, QueueOffset::ZERO);
    }
    let off = queues[qid];
    queues[qid] = off.plus(1);
    off
}
