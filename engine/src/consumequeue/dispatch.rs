//! The dispatcher: follows the CommitLog's `append_end` and writes one ConsumeQueue entry
//! per record. It parses records in place in the tail ring, so on a slave it works the
//! same on replicated bytes (a record cut by a replication chunk waits for the rest).
//! Runs on the dispatch/housekeeping core.
//!
//! The dispatcher holds a [`DispatchGate`] while it dispatches a range and publishes its
//! position, and reads both its position and the log's end under it, so a slave-side
//! truncation (`MessageStore::truncate_log`) can stop it between ranges, move the
//! position back and let it resume from there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::{ConsumeQueueStore, CqEntry};
use crate::commitlog::{CommitLog, Level};
use crate::delay_levels::{DelayLevels, SCHEDULE_TOPIC};
use crate::record::{self, Parsed};
use crate::sync::lock;
use crate::{Error, Result};

/// Told about new entries, e.g. to wake long-polling pulls.
pub trait DispatchListener: Send + Sync {
    fn on_dispatched(&self, topic: &str, queue_id: i32, max_offset: i64);
}

/// Stops the dispatcher between ranges (see the module comment).
#[derive(Default)]
pub struct DispatchGate {
    lock: Mutex<()>,
    /// Pausers waiting or holding the gate: the dispatcher stays out meanwhile, so a
    /// busy dispatcher cannot starve a truncation.
    pausers: AtomicU32,
}

/// Keeps the dispatcher paused until dropped; it then re-reads its position.
pub struct DispatchPause<'a> {
    gate: &'a DispatchGate,
    _guard: MutexGuard<'a, ()>,
}

impl DispatchGate {
    /// Waits until the dispatcher is between ranges and keeps it there.
    pub fn pause(&self) -> DispatchPause<'_> {
        self.pausers.fetch_add(1, Ordering::SeqCst);
        let guard = lock(&self.lock);
        DispatchPause {
            gate: self,
            _guard: guard,
        }
    }

    /// The dispatcher's side: None while a pause is requested or held.
    fn enter(&self) -> Option<MutexGuard<'_, ()>> {
        if self.pausers.load(Ordering::SeqCst) != 0 {
            return None;
        }
        Some(lock(&self.lock))
    }
}

impl Drop for DispatchPause<'_> {
    fn drop(&mut self) {
        self.gate.pausers.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Bytes examined per pass; a record larger than this is read whole on its own.
const CHUNK: usize = 1 << 20;

/// One parsed record's index data.
struct Indexed {
    /// Index of the topic's name in [`Batch::topics`].
    topic: usize,
    queue_id: i32,
    queue_offset: i64,
    entry: CqEntry,
}

/// The records of one pass, with each topic name stored once (not once per record).
#[derive(Default)]
struct Batch {
    items: Vec<Indexed>,
    topics: Vec<String>,
    topic_index: HashMap<String, usize>,
}

impl Batch {
    fn topic(&mut self, name: &str) -> usize {
        if let Some(&i) = self.topic_index.get(name) {
            return i;
        }
        let i = self.topics.len();
        self.topics.push(name.to_owned());
        self.topic_index.insert(name.to_owned(), i);
        i
    }

    fn clear(&mut self) {
        self.items.clear();
    }
}

/// Dispatches every whole record in `[from, to)`; returns the offset after the last
/// record dispatched (a record boundary, <= `to`).
pub fn dispatch_range(
    log: &CommitLog,
    cqs: &ConsumeQueueStore,
    levels: &DelayLevels,
    from: u64,
    to: u64,
    listener: Option<&dyn DispatchListener>,
) -> Result<u64> {
    let seg_size = log.config().segment_size;
    let mut pos = from;
    let mut batch = Batch::default();
    while pos < to {
        let seg_end = pos - pos % seg_size + seg_size;
        let mut want = CHUNK.min((to - pos) as usize).min((seg_end - pos) as usize);
        loop {
            let (consumed, next, need) = log.with_bytes(pos as i64, want, |buf| {
                index_chunk(buf, pos, seg_end, levels, &mut batch)
            })??;
            if consumed > 0 || next != pos {
                pos = next;
                break;
            }
            // A record longer than `want`: read it whole if it is all there.
            match need {
                Some(len) if len > want && pos + len as u64 <= to.min(seg_end) => want = len,
                _ => {
                    apply(cqs, &mut batch, listener)?;
                    return Ok(pos);
                }
            }
        }
        apply(cqs, &mut batch, listener)?;
    }
    Ok(pos)
}

/// Parses whole records of `buf` (which starts at log offset `pos`). Returns the bytes
/// consumed, the next position (past a blank marker: the next segment), and the size the
/// first unparsed record needs if it was cut.
fn index_chunk(
    buf: &[u8],
    pos: u64,
    seg_end: u64,
    levels: &DelayLevels,
    out: &mut Batch,
) -> Result<(usize, u64, Option<usize>)> {
    let mut at = 0usize;
    while at < buf.len() {
        let here = pos + at as u64;
        match record::parse(&buf[at..], here as i64, false)? {
            Parsed::Record(v) => {
                let size = v.total_size() as usize;
                let tags_code = if v.topic() == SCHEDULE_TOPIC {
                    v.store_timestamp() + levels.delay_ms(v.delay_level())
                } else {
                    v.tags_code()
                };
                let topic = out.topic(v.topic());
                out.items.push(Indexed {
                    topic,
                    queue_id: v.queue_id(),
                    queue_offset: v.queue_offset(),
                    entry: CqEntry {
                        phys_offset: here as i64,
                        size: size as i32,
                        tags_code,
                    },
                });
                at += size;
            }
            Parsed::Blank { .. } => return Ok((at, seg_end, None)),
            Parsed::Incomplete => {
                let need = (buf.len() - at >= 4).then(|| {
                    i32::from_be_bytes(buf[at..at + 4].try_into().expect("4 bytes")) as usize
                });
                return Ok((at, pos + at as u64, need));
            }
        }
    }
    Ok((at, pos + at as u64, None))
}

/// Writes the batch's entries: grouped by queue (each queue's entries keep their log
/// order) and, within a queue, one [`ConsumeQueue::put_run`] per run of consecutive queue
/// offsets, so one pwrite per queue per pass instead of one per record. A run refused as
/// `Invalid` (nothing written) is redone entry by entry exactly as before, so a record no
/// queue can hold is still skipped alone.
///
/// [`ConsumeQueue::put_run`]: super::ConsumeQueue::put_run
fn apply(
    cqs: &ConsumeQueueStore,
    batch: &mut Batch,
    listener: Option<&dyn DispatchListener>,
) -> Result<()> {
    // Stable: a queue's entries stay in log order.
    batch.items.sort_by_key(|ix| (ix.topic, ix.queue_id));
    let mut touched: Vec<(usize, i32, i64)> = Vec::new();
    let mut entries: Vec<CqEntry> = Vec::new();
    let items = &batch.items;
    let mut start = 0;
    while start < items.len() {
        let (t, qid) = (items[start].topic, items[start].queue_id);
        let mut end = start + 1;
        while end < items.len() && items[end].topic == t && items[end].queue_id == qid {
            end += 1;
        }
        let topic = batch.topics[t].as_str();
        let mut next_max = None;
        let mut run_start = start;
        while run_start < end {
            let mut run_end = run_start + 1;
            while run_end < end
                && items[run_end].queue_offset == items[run_end - 1].queue_offset + 1
            {
                run_end += 1;
            }
            let run = &items[run_start..run_end];
            entries.clear();
            entries.extend(run.iter().map(|ix| ix.entry));
            let first = run[0].queue_offset;
            match cqs
                .get_or_create(topic, qid)
                .and_then(|cq| cq.put_run(first, &entries))
            {
                Ok(()) => next_max = Some(run[run.len() - 1].queue_offset + 1),
                Err(Error::Invalid(_)) => {
                    for ix in run {
                        if put_one(cqs, topic, ix)? {
                            next_max = Some(ix.queue_offset + 1);
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            run_start = run_end;
        }
        if let Some(max) = next_max {
            touched.push((t, qid, max));
        }
        start = end;
    }
    if let Some(l) = listener {
        for (t, qid, max) in touched {
            l.on_dispatched(&batch.topics[t], qid, max);
        }
    }
    batch.clear();
    Ok(())
}

/// One entry as the dispatcher always wrote it: true if put, false if skipped for good
/// (a record no queue can hold is never retried).
fn put_one(cqs: &ConsumeQueueStore, topic: &str, ix: &Indexed) -> Result<bool> {
    let indexed = cqs
        .get_or_create(topic, ix.queue_id)
        .and_then(|cq| cq.put(ix.queue_offset, ix.entry));
    match indexed {
        Ok(()) => Ok(true),
        Err(e @ Error::Invalid(_)) => {
            cqs.skip_unindexable(ix.entry.phys_offset, topic, ix.queue_id, &e);
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// The dispatcher thread's loop: follow `append_end` until `stop`, from the position in
/// `dispatched` (re-read on every pass: a truncation may move it back).
#[allow(clippy::too_many_arguments)] // the thread's whole context, passed once at spawn
pub fn run(
    log: Arc<CommitLog>,
    cqs: Arc<ConsumeQueueStore>,
    levels: DelayLevels,
    dispatched: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    listener: Option<Arc<dyn DispatchListener>>,
    gate: Arc<DispatchGate>,
    examined: Arc<AtomicI64>,
    failing: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Acquire) {
        let Some(guard) = gate.enter() else {
            std::thread::sleep(Duration::from_millis(1));
            continue;
        };
        let pos = dispatched.load(Ordering::Acquire) as u64;
        let end = log.progress().get(Level::Append) as u64;
        if end <= pos {
            drop(guard);
            log.progress()
                .wait(Level::Append, pos as i64 + 1, Duration::from_millis(50));
            continue;
        }
        let res = dispatch_range(&log, &cqs, &levels, pos, end, listener.as_deref());
        if let Ok(next) = res {
            dispatched.store(next as i64, Ordering::Release);
            // Everything below `end` is indexed, except a record cut by a replication
            // chunk that waits for its remaining bytes.
            examined.fetch_max(end as i64, Ordering::AcqRel);
        }
        drop(guard);
        failing.store(res.is_err(), Ordering::Release);
        match res {
            Ok(next) => {
                if next == pos {
                    // A cut record (slave mid-chunk): wait for more bytes.
                    log.progress()
                        .wait(Level::Append, end as i64 + 1, Duration::from_millis(50));
                }
            }
            Err(Error::Corrupt { offset, reason }) => {
                tracing::error!(
                    offset,
                    reason,
                    "dispatcher met a corrupt record; ConsumeQueues stop here until restart"
                );
                log.progress()
                    .wait(Level::Append, i64::MAX, Duration::from_secs(1));
            }
            Err(e) => {
                tracing::error!(error = %e, "dispatch failed; retrying");
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    }
}
