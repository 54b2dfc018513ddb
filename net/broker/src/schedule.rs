//! Delayed delivery: RocketMQ's `ScheduleMessageService` (wire spec §9).
//!
//! A message sent with `DELAY` = level > 0 (or sent back for a retry) is not stored in its
//! topic but in queue `level - 1` of `SCHEDULE_TOPIC_XXXX`, with `REAL_TOPIC` / `REAL_QID`
//! naming where it belongs ([`to_schedule_topic`], used by the send and send-back paths).
//! The dispatcher writes each such entry's **delivery time** (store time + the level's
//! delay) as its ConsumeQueue tagsCode. Within one level every message waits equally long,
//! so delivery times rise with the queue offset: each level is a FIFO whose head is the
//! next message due.
//!
//! One thread ([`ScheduleService`]) walks the levels from their delay offsets
//! (`delayOffset.json`, the next queue offset to deliver per level). For each level it
//! reads entries in offset order; every entry whose delivery time has passed is re-read
//! from the CommitLog and stored again in its real topic and queue, without `DELAY` and
//! with `WAIT=false` (the tags code is recomputed by the dispatcher from `TAGS`). The first
//! entry not yet due ends that level's pass. A pass delivers at most [`BATCH_PER_LEVEL`]
//! entries per level, so one busy level cannot starve the others; when nothing is due the
//! thread sleeps until the nearest delivery time, at most [`DELAY_FOR_A_WHILE`].
//!
//! Copies are stored like a send (`put`): a level's offset moves on only once they are
//! durable under SYNC_FLUSH and held by a slave under SYNC_MASTER (or that wait timed out).
//!
//! **At least once.** A level's offset moves only after the copies were stored; the table
//! is persisted every [`PERSIST_INTERVAL`] and at shutdown (after this service stopped,
//! before the store closes). A crash between a put and the next persist redelivers those
//! messages after restart; nothing is ever skipped, except records that cannot be
//! delivered at all (unreadable or corrupt, no `REAL_TOPIC`, refused by the store as
//! illegal), which are logged and passed over so they cannot block their level.
//!
//! Only a master runs this service: a slave's delay offsets come from its master.

use ringmq_engine::clock::now_millis;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Weak};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_engine::commitlog::{AppendOutcome, PutStatus};
use ringmq_engine::consumequeue::CqEntry;
use ringmq_engine::delay_levels::{DelayLevels, SCHEDULE_TOPIC};
use ringmq_engine::record::{self, edit_properties, keys, MessageToStore, Parsed, RecordView};

use super::put::put_like_send;
use super::Broker;
use ringmq_ha::ReplicaOutcome;

/// Re-check interval when nothing is due (Java's `DELAY_FOR_A_WHILE`).
pub const DELAY_FOR_A_WHILE: Duration = Duration::from_millis(100);
/// Entries one level may deliver per pass.
pub const BATCH_PER_LEVEL: usize = 32;
/// Bytes of records one put may carry (a single larger record goes alone).
const BATCH_BYTES: usize = 1 << 20;
/// How often changed delay offsets are written to `delayOffset.json`.
pub const PERSIST_INTERVAL: Duration = Duration::from_secs(5);
/// RocketMQ's half-message topic: a delayed message never goes there.
const TRANS_HALF_TOPIC: &str = "RMQ_SYS_TRANS_HALF_TOPIC";
/// 5.x timer properties, dropped from delay-level messages as Java does.
const TIMER_PROPERTIES: [&str; 3] = ["TIMER_DELIVER_MS", "TIMER_DELAY_SEC", "TIMER_DELAY_MS"];

/// The copy of a due delayed record that goes to its real topic
/// (`ScheduleMessageService.messageTimeUp`): same body, flag, sysFlag, born time and
/// host, reconsume count and properties, less `DELAY` and the timer properties, plus
/// `WAIT=false`; topic `REAL_TOPIC`, queue `REAL_QID`. Err names why it cannot be
/// delivered.
pub fn time_up_message(view: &RecordView<'_>, max_body: usize) -> Result<MessageToStore, String> {
    let topic = view
        .property(keys::REAL_TOPIC)
        .filter(|t| !t.is_empty())
        .ok_or("the record has no REAL_TOPIC property")?;
    if topic == SCHEDULE_TOPIC || topic == TRANS_HALF_TOPIC {
        return Err(format!("REAL_TOPIC {topic} is not a deliverable topic"));
    }
    let queue_id = view
        .property(keys::REAL_QID)
        .and_then(|q| q.parse::<i32>().ok())
        .filter(|q| *q >= 0)
        .ok_or("the record has no valid REAL_QID property")?;
    let mut remove = vec![keys::DELAY];
    remove.extend(TIMER_PROPERTIES);
    let msg = MessageToStore {
        topic: topic.to_owned(),
        queue_id,
        flag: view.flag(),
        sys_flag: view.sys_flag(),
        born_timestamp: view.born_timestamp(),
        born_host: view.born_host(),
        reconsume_times: view.reconsume_times(),
        prepared_transaction_offset: 0,
        body: Bytes::copy_from_slice(view.body()),
        body_crc: view.body_crc(),
        properties: edit_properties(view.properties(), &remove, &[(keys::WAIT, "false")]),
    };
    msg.validate(max_body).map_err(|e| e.to_string())?;
    Ok(msg)
}

/// The delivery time to act on: a time further ahead than the level's whole delay means
/// the clock went back since the message was stored, so it is due now
/// (`correctDeliverTimestamp`).
pub fn correct_deliver_time(now: i64, deliver_at: i64, level_delay: i64) -> i64 {
    if deliver_at > now.saturating_add(level_delay) {
        now
    } else {
        deliver_at
    }
}

/// The running service: one thread, stopped (and joined) by [`ScheduleService::stop`] or
/// on drop.
pub struct ScheduleService {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ScheduleService {
    /// Starts the thread. It holds only a `Weak` reference: the broker owns the service.
    pub fn start(b: &Arc<Broker>) -> std::io::Result<ScheduleService> {
        let stop = Arc::new(AtomicBool::new(false));
        let weak = Arc::downgrade(b);
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-schedule".into())
            .spawn(move || run(weak, flag))?;
        tracing::info!(
            levels = b.store.delay_levels().max_level(),
            "schedule service started"
        );
        Ok(ScheduleService {
            stop,
            thread: Some(thread),
        })
    }

    /// Stops the thread after its current put and waits for it. Offsets it advanced are
    /// in memory (the broker persists them at shutdown).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            // The broker (and this service with it) is dropped on the schedule thread when
            // that thread held the last reference: it exits on its own, do not join it.
            if t.thread().id() == std::thread::current().id() {
                return;
            }
            if t.join().is_err() {
                tracing::error!("schedule thread panicked");
            }
        }
    }
}

impl Drop for ScheduleService {
    fn drop(&mut self) {
        self.stop();
    }
}

/// What one level's pass ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Next {
    /// Nothing left in the queue.
    Idle,
    /// The head entry is due in this many milliseconds.
    DueIn(i64),
    /// More due entries than one pass takes.
    More,
    /// Reading or storing failed; try again after a while.
    Retry,
}

fn run(weak: Weak<Broker>, stop: Arc<AtomicBool>) {
    let mut last_persist = Instant::now();
    let mut dirty = false;
    let mut last_failure_log: Option<Instant> = None;
    while !stop.load(Ordering::Acquire) {
        let Some(b) = weak.upgrade() else { break };
        if b.is_stopping() {
            break;
        }
        let levels = b.store.delay_levels().clone();
        let mut wait = DELAY_FOR_A_WHILE;
        for level in 1..=levels.max_level() {
            if stop.load(Ordering::Acquire) {
                break;
            }
            let (advanced, next) = deliver_level(&b, &levels, level, &mut last_failure_log);
            dirty |= advanced;
            match next {
                Next::Idle | Next::Retry => {}
                Next::More => wait = Duration::ZERO,
                Next::DueIn(ms) => wait = wait.min(Duration::from_millis(ms.max(1) as u64)),
            }
        }
        if dirty && last_persist.elapsed() >= PERSIST_INTERVAL {
            match b.delay_offsets.persist() {
                Ok(()) => dirty = false,
                Err(e) => tracing::error!(error = %e, "persisting delay offsets failed"),
            }
            last_persist = Instant::now();
        }
        drop(b);
        if !wait.is_zero() {
            std::thread::park_timeout(wait);
        }
    }
}

/// Why one entry was not delivered.
enum Failure {
    /// It never can be: log it and pass over it.
    Skip(String),
    /// Maybe later (I/O error): stop this level's pass here.
    Retry(String),
}

/// One pass over one level. Returns whether its offset moved, and how the pass ended.
fn deliver_level(
    b: &Broker,
    levels: &DelayLevels,
    level: i32,
    last_failure_log: &mut Option<Instant>,
) -> (bool, Next) {
    let qid = DelayLevels::queue_id(level);
    let Some(cq) = b.store.consume_queues().get(SCHEDULE_TOPIC, qid) else {
        return (false, Next::Idle);
    };
    let stored = b.delay_offsets.get(level).unwrap_or(0);
    let (min, max) = (cq.min_offset(), cq.max_offset());
    let mut advanced = false;
    let offset = stored.min(max).max(min);
    if offset != stored {
        tracing::error!(
            level,
            stored,
            min,
            max,
            corrected = offset,
            "delay offset outside its schedule queue; corrected"
        );
        b.delay_offsets.set(level, offset);
        advanced = true;
    }
    if offset >= max {
        return (advanced, Next::Idle);
    }
    let entries = match cq.read(offset, BATCH_PER_LEVEL) {
        Ok(e) => e,
        Err(e) => {
            log_failure(last_failure_log, level, offset, &e.to_string());
            return (advanced, Next::Retry);
        }
    };
    if entries.is_empty() {
        tracing::error!(
            level,
            queue_offset = offset,
            "schedule queue slot holds no entry; skipped"
        );
        b.delay_offsets.set(level, offset + 1);
        return (true, Next::More);
    }

    let delay = levels.delay_ms(level);
    let now = now_millis();
    let ring_quarter = b.store.commitlog().config().ring_capacity / 4;
    let byte_cap = BATCH_BYTES.min(ring_quarter).max(1);
    // (queue offset, message) of the due entries that can be delivered, in offset order.
    let mut batch: Vec<(i64, MessageToStore)> = Vec::new();
    let mut bytes = 0usize;
    // Entries handled (delivered or passed over) from `offset` on.
    let mut handled = 0usize;
    let mut next = Next::Idle;
    for (i, e) in entries.iter().enumerate() {
        let deliver_at = correct_deliver_time(now, e.tags_code, delay);
        if deliver_at > now {
            next = Next::DueIn(deliver_at - now);
            break;
        }
        if !batch.is_empty() && bytes + e.size.max(0) as usize > byte_cap {
            next = Next::More;
            break;
        }
        let qoff = offset + i as i64;
        match load(b, e) {
            Ok(m) => {
                bytes += e.size.max(0) as usize;
                batch.push((qoff, m));
            }
            Err(Failure::Skip(why)) => {
                tracing::error!(
                    level,
                    queue_offset = qoff,
                    phys_offset = e.phys_offset,
                    why,
                    "delayed message cannot be delivered; skipped"
                );
            }
            Err(Failure::Retry(why)) => {
                log_failure(last_failure_log, level, qoff, &why);
                next = Next::Retry;
                break;
            }
        }
        handled = i + 1;
    }
    if handled == entries.len() && offset + (handled as i64) < max {
        next = Next::More;
    }
    let mut delivered_to = offset + handled as i64;
    if !batch.is_empty() {
        match store_batch(b, batch, level) {
            Ok(()) => {}
            Err((stopped_at, why)) => {
                log_failure(last_failure_log, level, stopped_at, &why);
                delivered_to = stopped_at;
                next = Next::Retry;
            }
        }
    }
    if delivered_to > offset {
        b.delay_offsets.set(level, delivered_to);
        advanced = true;
    }
    (advanced, next)
}

/// Reads the record an entry points at and builds its delivery.
fn load(b: &Broker, e: &CqEntry) -> Result<MessageToStore, Failure> {
    let bytes = match b.store.read_message_at(e.phys_offset) {
        Ok(bytes) => bytes,
        Err(err @ ringmq_engine::Error::Io { .. }) => return Err(Failure::Retry(err.to_string())),
        Err(err) => return Err(Failure::Skip(err.to_string())),
    };
    let view = match record::parse(&bytes, e.phys_offset, false) {
        Ok(Parsed::Record(v)) => v,
        Ok(_) => return Err(Failure::Skip("no record there".into())),
        Err(err) => return Err(Failure::Skip(err.to_string())),
    };
    if view.total_size() != e.size {
        return Err(Failure::Skip(format!(
            "the entry says {} bytes, the record there has {}",
            e.size,
            view.total_size()
        )));
    }
    time_up_message(&view, b.cfg.max_message_size).map_err(Failure::Skip)
}

/// Stores the batch in one append. If the store refuses the whole batch as illegal, the
/// messages are stored one by one and those it refuses are passed over. On another
/// failure returns the queue offset of the first message not stored, and why.
fn store_batch(
    b: &Broker,
    batch: Vec<(i64, MessageToStore)>,
    level: i32,
) -> Result<(), (i64, String)> {
    let first = batch[0].0;
    let n = batch.len();
    let (offsets, messages): (Vec<i64>, Vec<MessageToStore>) = batch.into_iter().unzip();
    let singles = if n > 1 { Some(messages.clone()) } else { None };
    let outcome = put_and_wait(b, messages);
    match outcome.status {
        PutStatus::Ok | PutStatus::FlushDiskTimeout => {
            count_delivered(b, n, level);
            Ok(())
        }
        PutStatus::MessageIllegal(why) => match singles {
            None => {
                tracing::error!(
                    level,
                    queue_offset = first,
                    why,
                    "the store refused a delayed message; skipped"
                );
                Ok(())
            }
            Some(messages) => {
                for (qoff, m) in offsets.into_iter().zip(messages) {
                    store_batch(b, vec![(qoff, m)], level)?;
                }
                Ok(())
            }
        },
        status => Err((
            first,
            format!("storing delayed messages failed: {status:?}"),
        )),
    }
}

fn count_delivered(b: &Broker, n: usize, level: i32) {
    b.stats.msgs_put.fetch_add(n as u64, Ordering::Relaxed);
    tracing::debug!(level, messages = n, "delayed messages delivered");
}

/// Appends as a send is stored (durable under SYNC_FLUSH, on a slave under SYNC_MASTER,
/// before the delay offset moves on) and blocks this thread, which is the service's own,
/// until then. Copies a slave did not confirm in time are stored here all the same: they
/// are not put again (that would duplicate them), only logged.
fn put_and_wait(b: &Broker, messages: Vec<MessageToStore>) -> AppendOutcome {
    let (tx, rx) = mpsc::sync_channel(1);
    put_like_send(
        b,
        messages,
        true,
        Box::new(move |o, replica| {
            let _ = tx.send((o, replica));
        }),
    );
    let (outcome, replica) = rx.recv().unwrap_or_else(|_| {
        let exited = PutStatus::ServiceNotAvailable("writer exited".into());
        (AppendOutcome::rejected(exited), ReplicaOutcome::NotRequired)
    });
    if matches!(
        replica,
        ReplicaOutcome::Timeout | ReplicaOutcome::NotAvailable
    ) {
        tracing::warn!(
            ?replica,
            end = outcome.end_offset,
            "delayed messages stored without a slave's confirmation"
        );
    }
    outcome
}

/// Logs a retryable failure at most once a second.
fn log_failure(last: &mut Option<Instant>, level: i32, queue_offset: i64, why: &str) {
    if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(1)) {
        *last = Some(Instant::now());
        tracing::error!(
            level,
            queue_offset,
            why,
            "delivering delayed messages failed; retrying"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::broker_with;
    use ringmq_engine::delay_levels::{delay_applies, to_schedule_topic};
    use ringmq_engine::record::{encode_properties, find_property, sysflag, StoreFields};

    fn encoded(m: &MessageToStore, phys: i64) -> Vec<u8> {
        let host = "10.0.0.1:10911".parse().unwrap();
        let mut buf = vec![0u8; m.encoded_len(&host)];
        m.encode_into(
            &mut buf,
            &StoreFields {
                queue_offset: 0,
                physical_offset: phys,
                store_timestamp: 1_000,
                store_host: host,
            },
        );
        buf
    }

    #[test]
    fn transform_and_time_up_round_trip() {
        let levels = DelayLevels::parse("1s 2s 3s").unwrap();
        let props = encode_properties([("TAGS", "a"), ("DELAY", "9"), ("UNIQ_KEY", "U1")]);
        let mut m = MessageToStore::new("Orders", 5, &b"body"[..], props);
        m.flag = 7;
        m.reconsume_times = 2;
        to_schedule_topic(&mut m, 9, &levels);
        assert_eq!((m.topic.as_str(), m.queue_id), (SCHEDULE_TOPIC, 2));
        let p = &m.properties;
        assert_eq!(find_property(p, keys::DELAY), Some("3"), "clamped");
        assert_eq!(find_property(p, keys::REAL_TOPIC), Some("Orders"));
        assert_eq!(find_property(p, keys::REAL_QID), Some("5"));
        assert_eq!(
            std::str::from_utf8(p).unwrap().matches("DELAY").count(),
            1,
            "no duplicate keys"
        );
        assert!(record::properties_well_formed(p));

        let bytes = encoded(&m, 4096);
        let Parsed::Record(v) = record::parse(&bytes, 4096, true).unwrap() else {
            panic!()
        };
        let out = time_up_message(&v, 1 << 20).unwrap();
        assert_eq!((out.topic.as_str(), out.queue_id), ("Orders", 5));
        assert_eq!((out.flag, out.reconsume_times), (7, 2));
        assert_eq!(&out.body[..], b"body");
        assert_eq!(out.body_crc, record::crc32(b"body"));
        assert_eq!(find_property(&out.properties, keys::DELAY), None);
        assert_eq!(find_property(&out.properties, keys::WAIT), Some("false"));
        assert_eq!(find_property(&out.properties, keys::TAGS), Some("a"));
        assert_eq!(find_property(&out.properties, keys::UNIQ_KEY), Some("U1"));
        assert_eq!(
            find_property(&out.properties, keys::REAL_TOPIC),
            Some("Orders")
        );
    }

    #[test]
    fn undeliverable_records_are_named() {
        for props in [
            encode_properties([("DELAY", "1")]),
            encode_properties([("REAL_TOPIC", "T"), ("REAL_QID", "x")]),
            encode_properties([("REAL_TOPIC", "T"), ("REAL_QID", "-1")]),
            encode_properties([("REAL_TOPIC", SCHEDULE_TOPIC), ("REAL_QID", "0")]),
        ] {
            let m = MessageToStore::new(SCHEDULE_TOPIC, 0, &b"x"[..], props);
            let bytes = encoded(&m, 0);
            let Parsed::Record(v) = record::parse(&bytes, 0, true).unwrap() else {
                panic!()
            };
            assert!(time_up_message(&v, 1 << 20).is_err());
        }
    }

    #[test]
    fn clock_going_back_makes_entries_due() {
        assert_eq!(correct_deliver_time(1_000, 1_500, 1_000), 1_500);
        assert_eq!(correct_deliver_time(1_000, 5_000, 1_000), 1_000);
        assert!(delay_applies(0));
        assert!(delay_applies(sysflag::TRANSACTION_COMMIT_TYPE));
        assert!(!delay_applies(sysflag::TRANSACTION_PREPARED_TYPE));
    }

    /// Stores a delayed message directly, then lets the service deliver it; a bad record in
    /// the same level is passed over, not blocking the one behind it.
    #[test]
    fn service_delivers_due_entries_and_skips_bad_ones() {
        let (_dir, b) = broker_with(|c| {
            c.message_delay_level = DelayLevels::parse("1s 1s").unwrap();
        });
        let levels = b.store.delay_levels().clone();
        let bad = MessageToStore::new(
            SCHEDULE_TOPIC,
            0,
            &b"bad"[..],
            encode_properties([("DELAY", "1")]),
        );
        let mut good =
            MessageToStore::new("Real", 1, &b"good"[..], encode_properties([("TAGS", "t")]));
        to_schedule_topic(&mut good, 1, &levels);
        let o = b.store.put_blocking(vec![bad, good]);
        assert_eq!(o.status, PutStatus::Ok);
        let stored_at = o.appended[1].store_timestamp;
        let deadline = Instant::now() + Duration::from_secs(10);
        while b.store.max_offset_in_queue("Real", 1) == 0 {
            assert!(Instant::now() < deadline, "not delivered");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(now_millis() >= stored_at + 1_000);
        assert_eq!(b.delay_offsets.get(1), Some(2));
        let got = b
            .store
            .get_messages("Real", 1, 0, 1, 1 << 20, None)
            .unwrap();
        let Parsed::Record(v) = record::parse(&got.messages[0], 0, true).unwrap() else {
            panic!()
        };
        assert!(v.store_timestamp() >= stored_at + 1_000);
        assert_eq!(v.body(), b"good");
        assert_eq!(v.tags_code(), record::tags_hash("t") as i64);
        b.shutdown().unwrap();
        let text = std::fs::read_to_string(b.delay_offsets.path()).unwrap();
        assert!(text.contains("1:2"), "{text}");
    }
}
