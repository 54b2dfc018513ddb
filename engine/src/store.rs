//! `MessageStore`: the engine as the broker sees it. Owns the CommitLog, the
//! ConsumeQueues and their dispatcher thread, the housekeeping thread (ConsumeQueue
//! flush and checkpoints), the store lock and the abort marker.
//!
//! Start-up order: take the lock; read the checkpoint; note whether the abort marker is
//! there (an unclean stop); scan and cut the log; cut ConsumeQueue entries past the log's
//! end; start the writer; re-dispatch from the checkpoint; hand the writer the queue
//! offsets; start the dispatcher; write the abort marker.
//!
//! Slave side, [`MessageStore::truncate_log`] cuts a log that holds bytes its master lost
//! back to the master's end: checkpoint lowered first, then the CommitLog, then the
//! ConsumeQueues, with the dispatcher paused and no stale checkpoint written meanwhile.

use crate::clock::now_millis;
use crate::sync::lock;
use std::collections::HashMap;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};

use crate::commitlog::recovery::{self, Checkpoint};
use crate::commitlog::{
    AppendOutcome, AppendRequest, CommitLog, CommitLogConfig, Level, RawAppend,
};
use crate::consumequeue::dispatch::{self, DispatchGate, DispatchListener};
use crate::consumequeue::{ConsumeQueueStore, CqEntry};
use crate::delay_levels::DelayLevels;
use crate::io::direct_file;
use crate::io::gate::{self, disk, GateFile, Open};
use crate::record::{self, MessageToStore};
use crate::{Error, Result};

#[derive(Clone)]
pub struct StoreConfig {
    /// `storePathRootDir`.
    pub root: PathBuf,
    pub commitlog: CommitLogConfig,
    /// Entries per ConsumeQueue file (`mappedFileSizeConsumeQueue` / 20).
    pub cq_entries_per_file: usize,
    /// How often ConsumeQueues are flushed and the checkpoint advanced.
    pub checkpoint_interval: Duration,
    pub delay_levels: DelayLevels,
    /// Core the dispatcher and housekeeping threads are pinned to (None: not pinned).
    pub dispatch_core: Option<usize>,
    /// Told about new ConsumeQueue entries (long polling).
    pub listener: Option<Arc<dyn DispatchListener>>,
}

impl StoreConfig {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        StoreConfig {
            commitlog: CommitLogConfig::new(&root),
            root,
            cq_entries_per_file: 300_000,
            checkpoint_interval: Duration::from_secs(1),
            delay_levels: DelayLevels::default(),
            dispatch_core: None,
            listener: None,
        }
    }
}

/// RocketMQ's `GetMessageStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GetStatus {
    Found,
    NoMatchedMessage,
    MessageWasRemoving,
    OffsetFoundNull,
    OffsetOverflowBadly,
    OffsetOverflowOne,
    OffsetTooSmall,
    NoMatchedLogicQueue,
    NoMessageInQueue,
}

#[derive(Debug, Clone)]
pub struct GetResult {
    pub status: GetStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    /// Stored records, byte for byte as in the CommitLog.
    pub messages: Vec<Bytes>,
    /// The same records as the buffers they were read into: one per run of records that
    /// are adjacent in the log, so a pull body of one run needs no copy.
    pub runs: Vec<Bytes>,
    pub total_bytes: usize,
}

/// Filters ConsumeQueue entries by tags code (true = deliver).
pub type TagFilter<'a> = &'a dyn Fn(i64) -> bool;

/// What [`MessageStore::truncate_log`] cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TruncateReport {
    /// Log bytes dropped: the old end minus the new one.
    pub dropped_bytes: u64,
    /// The log's end now: where the next replicated bytes go.
    pub new_end: i64,
}

/// Keeps housekeeping from writing a checkpoint it computed before a truncation: it takes
/// `lock` to write and skips the write if `generation` moved since it read its candidate.
#[derive(Default)]
struct CheckpointGate {
    lock: Mutex<()>,
    generation: AtomicU64,
}

struct BumpOnDrop<'a>(&'a AtomicU64);

impl Drop for BumpOnDrop<'_> {
    fn drop(&mut self) {
        self.0.fetch_add(1, Ordering::AcqRel);
    }
}

pub struct MessageStore {
    root: PathBuf,
    log: Arc<CommitLog>,
    cqs: Arc<ConsumeQueueStore>,
    dispatched: Arc<AtomicI64>,
    /// How far the dispatcher has looked: below it every whole record is indexed (a
    /// record cut by a replication chunk may remain, waiting for its bytes).
    examined: Arc<AtomicI64>,
    /// Set while the dispatcher's last attempt failed (an I/O error, a corrupt record).
    dispatch_failing: Arc<AtomicBool>,
    dispatch_gate: Arc<DispatchGate>,
    checkpoint_gate: Arc<CheckpointGate>,
    levels: DelayLevels,
    listener: Option<Arc<dyn DispatchListener>>,
    stop: Arc<AtomicBool>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    closed: AtomicBool,
    _lock: GateFile,
}

impl MessageStore {
    pub fn open(cfg: StoreConfig) -> Result<Self> {
        let root = cfg.root.clone();
        disk()
            .create_dir_all(&root)
            .map_err(|e| Error::io(format!("create {}", root.display()), e))?;
        let lock = lock_store(&root)?;
        let abnormal = gate::exists(&recovery::abort_path(&root));
        let checkpoint = recovery::read_checkpoint(&root)?;
        if abnormal {
            tracing::warn!(checkpoint = ?checkpoint.map(|c| c.phys_offset), "store was not shut down cleanly; recovering from the checkpoint");
        }
        let started = Instant::now();
        let recovered = recovery::recover(
            &cfg.commitlog,
            checkpoint.map(|c| c.phys_offset as u64),
            abnormal,
            recovery::ring_of_abort_marker(&root),
        )?;
        let cqs = Arc::new(ConsumeQueueStore::open(
            &root.join("consumequeue"),
            cfg.cq_entries_per_file,
        )?);
        cqs.truncate_to_phys(recovered.end as i64)?;
        let log = Arc::new(CommitLog::start(cfg.commitlog.clone(), recovered.end)?);
        let redispatched = dispatch::dispatch_range(
            &log,
            &cqs,
            &cfg.delay_levels,
            recovered.scanned_from,
            recovered.end,
            None,
        )?;
        if redispatched != recovered.end {
            return Err(Error::Corrupt {
                offset: redispatched as i64,
                reason: format!(
                    "re-dispatch stopped before the recovered end {}",
                    recovered.end
                ),
            });
        }
        log.set_queue_offsets(queue_offset_table(&cqs));
        tracing::info!(
            end = recovered.end,
            scanned_from = recovered.scanned_from,
            cut_bytes = recovered.cut_bytes,
            salvaged = ?recovered.salvaged,
            abnormal,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store recovered"
        );
        write_abort_marker(&root, log.ring_id())?;

        let dispatched = Arc::new(AtomicI64::new(recovered.end as i64));
        let dispatch_gate = Arc::new(DispatchGate::default());
        let examined = Arc::new(AtomicI64::new(recovered.end as i64));
        let dispatch_failing = Arc::new(AtomicBool::new(false));
        let checkpoint_gate = Arc::new(CheckpointGate::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        {
            let (log, cqs, d, s) = (log.clone(), cqs.clone(), dispatched.clone(), stop.clone());
            let (levels, listener, core, gate) = (
                cfg.delay_levels.clone(),
                cfg.listener.clone(),
                cfg.dispatch_core,
                dispatch_gate.clone(),
            );
            let (examined, failing) = (examined.clone(), dispatch_failing.clone());
            threads.push(spawn("ringmq-dispatch", core, move || {
                dispatch::run(log, cqs, levels, d, s, listener, gate, examined, failing)
            })?);
        }
        {
            let (log, cqs, d, s, root, gate) = (
                log.clone(),
                cqs.clone(),
                dispatched.clone(),
                stop.clone(),
                root.clone(),
                checkpoint_gate.clone(),
            );
            let interval = cfg.checkpoint_interval;
            threads.push(spawn(
                "ringmq-housekeeping",
                cfg.dispatch_core,
                move || housekeeping(&root, &log, &cqs, &d, &s, &gate, interval),
            )?);
        }
        Ok(MessageStore {
            root,
            log,
            cqs,
            dispatched,
            examined,
            dispatch_failing,
            dispatch_gate,
            checkpoint_gate,
            levels: cfg.delay_levels.clone(),
            listener: cfg.listener.clone(),
            stop,
            threads: Mutex::new(threads),
            closed: AtomicBool::new(false),
            _lock: lock,
        })
    }

    pub fn commitlog(&self) -> &Arc<CommitLog> {
        &self.log
    }

    pub fn consume_queues(&self) -> &Arc<ConsumeQueueStore> {
        &self.cqs
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The delay levels the dispatcher uses for `SCHEDULE_TOPIC_XXXX` delivery times.
    pub fn delay_levels(&self) -> &DelayLevels {
        &self.levels
    }

    /// The whole record stored at CommitLog offset `phys` (RocketMQ's
    /// `lookMessageByOffset`), byte for byte; `record::parse` on it gives a
    /// [`record::Parsed::Record`]. Refused with [`Error::Invalid`] when `phys` lies outside
    /// the stored log or is not where a record starts (no record magic there, a size that
    /// does not fit, or a record whose stored physical offset says it starts elsewhere),
    /// and with [`Error::Corrupt`] when the record there fails validation (body CRC
    /// included). An I/O failure is [`Error::Io`].
    pub fn read_message_at(&self, phys: i64) -> Result<Bytes> {
        let (first, end) = (self.log.min_offset(), self.log.max_offset());
        let not_a_record = |why: String| {
            Err(Error::Invalid(format!(
                "CommitLog offset {phys} is not the start of a record: {why}"
            )))
        };
        if phys < first || phys >= end {
            return Err(Error::Invalid(format!(
                "CommitLog offset {phys} is outside the stored log [{first}, {end})"
            )));
        }
        if phys + record::END_FILE_MIN_BLANK_LENGTH as i64 > end {
            return not_a_record(format!("only {} bytes remain before the end", end - phys));
        }
        let mut head = [0u8; record::END_FILE_MIN_BLANK_LENGTH];
        self.log.read(phys, &mut head)?;
        let total = i32::from_be_bytes(head[0..4].try_into().expect("4 bytes"));
        let magic = i32::from_be_bytes(head[4..8].try_into().expect("4 bytes"));
        if magic != record::MAGIC_V1 && magic != record::MAGIC_V2 {
            return not_a_record(format!("no record magic ({:#010x})", magic as u32));
        }
        let max = self.log.config().max_record_size() as usize;
        let seg_size = self.log.config().segment_size as i64;
        if total < record::MIN_RECORD_SIZE as i32 || total as usize > max {
            return not_a_record(format!(
                "size {total} outside {}..={max}",
                record::MIN_RECORD_SIZE
            ));
        }
        if phys + total as i64 > end || phys % seg_size + total as i64 > seg_size {
            return not_a_record(format!("a {total}-byte record does not fit there"));
        }
        let mut buf = BytesMut::zeroed(total as usize);
        self.log.read(phys, &mut buf)?;
        let stored_at = match record::parse_with_limit(&buf, phys, true, max)? {
            record::Parsed::Record(v) => v.physical_offset(),
            _ => return not_a_record("the bytes there do not parse as a whole record".into()),
        };
        if stored_at != phys {
            return not_a_record(format!("the record there was stored at {stored_at}"));
        }
        Ok(buf.freeze())
    }

    /// Queues an append; see [`CommitLog::append`].
    pub fn put(&self, req: AppendRequest) {
        self.log.append(req);
    }

    pub fn put_blocking(&self, messages: Vec<MessageToStore>) -> AppendOutcome {
        self.log.append_blocking(messages)
    }

    /// Slave side: see [`CommitLog::append_raw`].
    pub fn put_raw(&self, raw: RawAppend) {
        self.log.append_raw(raw);
    }

    /// Slave side: cuts the log back to `offset`, the master's end, when this store holds
    /// bytes the master lost. The caller (the replication thread, the only appender)
    /// submits no appends meanwhile; replicated bytes then continue at `offset`.
    ///
    /// Steps, in this order so a crash at any point recovers to a consistent store:
    /// 1. pause the dispatcher between ranges and keep housekeeping from writing a
    ///    checkpoint computed before the cut;
    /// 2. if the checkpoint lies past `offset`, lower it to the start of the segment
    ///    holding `offset` (a record boundary, below which everything was durable and
    ///    indexed): a start-up scan must never begin inside the range about to be zeroed;
    /// 3. [`CommitLog::truncate`] (fails SYNC_FLUSH acks past `offset`, zeroes the tail,
    ///    deletes later segments);
    /// 4. [`ConsumeQueueStore::truncate_to_phys`]: drops every entry of a record that
    ///    ends past `offset`;
    /// 5. moves the dispatcher's position back to a record boundary all of whose records
    ///    below are indexed: unchanged if it was at or below `offset`; otherwise the last
    ///    boundary <= `offset` the ConsumeQueues cover, i.e. the largest end (phys + size)
    ///    of a remaining entry, or the checkpoint (if <= `offset`), or the first
    ///    segment's start, whichever is largest;
    /// 6. dispatches from there up to `offset` on this thread, so the ConsumeQueues hold
    ///    exactly the whole records below `offset`, and gives the writer the next queue
    ///    offsets from them (as at start-up: a later `put` continues the queues). If
    ///    `offset` cuts a record, dispatching stops where that record starts; its prefix
    ///    stays in the log and is indexed once replicated bytes complete it (a restart
    ///    before that cuts it off, as any torn tail);
    /// 7. flushes the ConsumeQueues and writes a checkpoint at min(old checkpoint, the
    ///    boundary dispatching reached), then lets the dispatcher resume from there.
    ///
    /// `offset` past the end or below the first segment is refused with
    /// [`Error::Invalid`]; `offset` equal to the end changes nothing.
    pub fn truncate_log(&self, offset: i64) -> Result<TruncateReport> {
        if self.closed.load(Ordering::Acquire) {
            return Err(Error::WriterStopped("the store is shut down".into()));
        }
        let _checkpoints = lock(&self.checkpoint_gate.lock);
        // Bumped again on the way out (still under the lock), after `dispatched` moved: a
        // candidate read at any point in between is never written.
        let _generation = BumpOnDrop(&self.checkpoint_gate.generation);
        _generation.0.fetch_add(1, Ordering::AcqRel);
        let _paused = self.dispatch_gate.pause();
        let old_end = self.log.max_offset();
        let first = self.log.min_offset();
        if offset > old_end || offset < first {
            return Err(Error::Invalid(format!(
                "cannot truncate the CommitLog to {offset}: it holds [{first}, {old_end})"
            )));
        }
        if offset == old_end {
            return Ok(TruncateReport {
                dropped_bytes: 0,
                new_end: offset,
            });
        }
        let dispatched = self.dispatched.load(Ordering::Acquire);
        let old_cp = recovery::read_checkpoint(&self.root)?.map(|c| c.phys_offset);
        if let Some(cp) = old_cp.filter(|&cp| cp > offset) {
            let seg_size = self.log.config().segment_size as i64;
            let lowered = cp.min(offset - offset % seg_size);
            recovery::write_checkpoint(
                &self.root,
                &Checkpoint {
                    phys_offset: lowered,
                    timestamp_ms: now_millis(),
                },
            )?;
        }
        self.log.truncate(offset)?;
        self.cqs.truncate_to_phys(offset)?;
        let floor = if dispatched <= offset {
            dispatched
        } else {
            let mut b = first.max(old_cp.filter(|&cp| cp <= offset).unwrap_or(first));
            for (_, _, q) in self.cqs.all() {
                if let Some(e) = q.last_entry()? {
                    if e.phys_end() <= offset {
                        b = b.max(e.phys_end());
                    }
                }
            }
            b
        };
        self.dispatched.store(floor, Ordering::Release);
        let resume = dispatch::dispatch_range(
            &self.log,
            &self.cqs,
            &self.levels,
            floor as u64,
            offset as u64,
            self.listener.as_deref(),
        )? as i64;
        self.dispatched.store(resume, Ordering::Release);
        self.examined.store(offset, Ordering::Release);
        self.log.set_queue_offsets(queue_offset_table(&self.cqs));
        self.cqs.flush_all()?;
        let checkpoint = old_cp.map_or(resume, |cp| cp.min(resume));
        recovery::write_checkpoint(
            &self.root,
            &Checkpoint {
                phys_offset: checkpoint,
                timestamp_ms: now_millis(),
            },
        )?;
        let dropped_bytes = (old_end - offset) as u64;
        tracing::warn!(
            dropped_bytes,
            from = offset,
            to = old_end,
            dispatch_resumes_at = resume,
            checkpoint,
            "truncated the CommitLog past the master's end: bytes [{offset}, {old_end}) dropped"
        );
        Ok(TruncateReport {
            dropped_bytes,
            new_end: offset,
        })
    }

    /// Offset up to which every record has a ConsumeQueue entry.
    pub fn dispatched_offset(&self) -> i64 {
        self.dispatched.load(Ordering::Acquire)
    }

    /// Waits until the dispatcher has indexed everything below `phys` (tests, tools).
    pub fn wait_dispatched(&self, phys: i64, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.dispatched_offset() < phys {
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        true
    }

    /// Deletes every ConsumeQueue of `topic` (files included) with the dispatcher paused
    /// between ranges, so it is not writing an entry there meanwhile. The CommitLog keeps
    /// the records; records of `topic` not yet dispatched would make the queues again, so
    /// callers first stop new sends and wait for [`Self::wait_dispatched`].
    pub fn delete_topic_queues(&self, topic: &str) -> Result<usize> {
        let _pause = self.dispatch_gate.pause();
        self.cqs.remove_topic(topic)
    }

    pub fn max_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.cqs
            .get(topic, queue_id)
            .map(|q| q.max_offset())
            .unwrap_or(0)
    }

    pub fn min_offset_in_queue(&self, topic: &str, queue_id: i32) -> i64 {
        self.cqs
            .get(topic, queue_id)
            .map(|q| q.min_offset())
            .unwrap_or(0)
    }

    /// Queue offset by store time (RocketMQ's SEARCH_OFFSET_BY_TIMESTAMP): `upper` picks
    /// the last entry stored at or before `ts_ms`, else the first at or after it.
    pub fn offset_by_time(
        &self,
        topic: &str,
        queue_id: i32,
        ts_ms: i64,
        upper: bool,
    ) -> Result<i64> {
        let Some(cq) = self.cqs.get(topic, queue_id) else {
            return Ok(0);
        };
        cq.search_by_timestamp(ts_ms, upper, |phys, size| {
            self.log
                .with_bytes(phys, size.max(0) as usize, record::peek_store_timestamp)
                .ok()
                .flatten()
        })
    }

    /// Reads up to `max_msgs` records (and about `max_bytes`) from a queue, starting at
    /// queue offset `offset`, as RocketMQ's store lookup does (spec 5.3).
    pub fn get_messages(
        &self,
        topic: &str,
        queue_id: i32,
        offset: i64,
        max_msgs: usize,
        max_bytes: usize,
        filter: Option<TagFilter<'_>>,
    ) -> Result<GetResult> {
        let empty = |status, next, min, max| GetResult {
            status,
            next_begin_offset: next,
            min_offset: min,
            max_offset: max,
            messages: Vec::new(),
            runs: Vec::new(),
            total_bytes: 0,
        };
        let Some(cq) = self.cqs.get(topic, queue_id) else {
            return Ok(empty(GetStatus::NoMessageInQueue, 0, 0, 0));
        };
        let (min, max) = (cq.min_offset(), cq.max_offset());
        if max == 0 {
            return Ok(empty(GetStatus::NoMessageInQueue, 0, min, max));
        }
        if offset < min {
            return Ok(empty(GetStatus::OffsetTooSmall, min, min, max));
        }
        if offset == max {
            return Ok(empty(GetStatus::OffsetOverflowOne, offset, min, max));
        }
        if offset > max {
            return Ok(empty(GetStatus::OffsetOverflowBadly, max, min, max));
        }
        let max_msgs = max_msgs.max(1);
        let scan_entries = (16_000 / 20).max(max_msgs);
        let entries = cq.read(offset, scan_entries)?;
        let mut result = empty(GetStatus::NoMatchedMessage, offset, min, max);
        if entries.is_empty() {
            result.status = GetStatus::OffsetFoundNull;
            return Ok(result);
        }
        let log_min = self.log.min_offset();
        let mut picked: Vec<CqEntry> = Vec::new();
        let mut bytes = 0usize;
        for (i, e) in entries.iter().enumerate() {
            if !picked.is_empty()
                && (picked.len() >= max_msgs || bytes + e.size as usize > max_bytes)
            {
                break;
            }
            result.next_begin_offset = offset + i as i64 + 1;
            if filter.is_some_and(|f| !f(e.tags_code)) {
                continue;
            }
            if e.phys_offset < log_min {
                if picked.is_empty() {
                    result.status = GetStatus::MessageWasRemoving;
                }
                continue;
            }
            bytes += e.size as usize;
            picked.push(*e);
        }
        if picked.is_empty() {
            return Ok(result);
        }
        (result.messages, result.runs) = self.read_records(&picked)?;
        result.total_bytes = bytes;
        result.status = GetStatus::Found;
        Ok(result)
    }

    /// Reads records, one read per run of records adjacent in the log. Returns the records
    /// and the run buffers they are slices of.
    fn read_records(&self, entries: &[CqEntry]) -> Result<(Vec<Bytes>, Vec<Bytes>)> {
        let seg_size = self.log.config().segment_size as i64;
        let mut out = Vec::with_capacity(entries.len());
        let mut runs = Vec::with_capacity(1);
        let mut i = 0;
        while i < entries.len() {
            let start = entries[i].phys_offset;
            let mut j = i + 1;
            let mut end = start + entries[i].size as i64;
            while j < entries.len() && entries[j].phys_offset == end && (end % seg_size) != 0 {
                end += entries[j].size as i64;
                j += 1;
            }
            let mut buf = BytesMut::zeroed((end - start) as usize);
            self.log.read(start, &mut buf)?;
            let buf = buf.freeze();
            for e in &entries[i..j] {
                let from = (e.phys_offset - start) as usize;
                out.push(buf.slice(from..from + e.size as usize));
            }
            runs.push(buf);
            i = j;
        }
        Ok((out, runs))
    }

    /// Stops the store cleanly: everything appended is made durable and indexed, the
    /// checkpoint is written at the log's end and the abort marker removed.
    pub fn shutdown(&self) -> Result<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        // Appends still queued are stored; after the writer stops, new ones are refused.
        let log_end = match self.log.shutdown() {
            Ok(end) => end,
            Err(e) => {
                // The writer failed: stop the dispatcher and housekeeping anyway, so no
                // thread of this store touches its files once the caller moves on (a
                // reopened store, a test's next disk). The next start recovers.
                self.stop_threads();
                return Err(e);
            }
        };
        // Wait until the dispatcher has looked at everything; on a slave the log may end
        // inside a record (a replication chunk cut it), which stays unindexed and is cut
        // by the next start's recovery.
        let deadline = Instant::now() + Duration::from_secs(30);
        // A dispatcher that fails (the disk died, a corrupt record) will not catch up:
        // the next start re-dispatches from the checkpoint, so do not wait for it.
        while self.examined.load(Ordering::Acquire) < log_end
            && !self.dispatch_failing.load(Ordering::Acquire)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_micros(200));
        }
        let reached = self.examined.load(Ordering::Acquire) >= log_end;
        self.stop_threads();
        self.cqs.flush_all()?;
        if !reached {
            tracing::warn!(
                log_end,
                dispatched = self.dispatched_offset(),
                "dispatcher did not catch up before shutdown; the next start re-dispatches"
            );
            return Ok(());
        }
        // The checkpoint is a record boundary: the end of the last indexed record.
        let log_end = self.dispatched_offset();
        recovery::write_checkpoint(
            &self.root,
            &Checkpoint {
                phys_offset: log_end,
                timestamp_ms: now_millis(),
            },
        )?;
        disk()
            .remove_file(&recovery::abort_path(&self.root))
            .map_err(|e| Error::io("remove abort marker", e))?;
        direct_file::sync_dir(&self.root)?;
        tracing::info!(log_end, "store shut down cleanly");
        Ok(())
    }

    /// Stops and joins the dispatcher and housekeeping threads.
    fn stop_threads(&self) {
        self.stop.store(true, Ordering::Release);
        self.log.progress().stop();
        for t in lock(&self.threads).drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for MessageStore {
    fn drop(&mut self) {
        if let Err(e) = self.shutdown() {
            tracing::error!(error = %e, "store shutdown failed");
        }
    }
}

fn queue_offset_table(cqs: &ConsumeQueueStore) -> HashMap<Box<str>, Vec<i64>> {
    let mut table: HashMap<Box<str>, Vec<i64>> = HashMap::new();
    for (topic, qid, max) in cqs.max_offsets() {
        let queues = table.entry(topic.into_boxed_str()).or_default();
        let qid = qid.max(0) as usize;
        if queues.len() <= qid {
            queues.resize(qid + 1, 0);
        }
        queues[qid] = max;
    }
    table
}

/// Flushes ConsumeQueues and advances the checkpoint to a record boundary that is both
/// durable in the log and indexed in flushed ConsumeQueues.
fn housekeeping(
    root: &Path,
    log: &CommitLog,
    cqs: &ConsumeQueueStore,
    dispatched: &AtomicI64,
    stop: &AtomicBool,
    gate: &CheckpointGate,
    every: Duration,
) {
    let mut last = -1i64;
    while !stop.load(Ordering::Acquire) {
        let deadline = Instant::now() + every;
        while Instant::now() < deadline && !stop.load(Ordering::Acquire) {
            std::thread::sleep(Duration::from_millis(20).min(every));
        }
        let generation = gate.generation.load(Ordering::Acquire);
        let candidate = dispatched.load(Ordering::Acquire);
        if candidate == last {
            continue;
        }
        if let Err(e) = cqs.flush_all() {
            tracing::error!(error = %e, "ConsumeQueue flush failed");
            continue;
        }
        // The candidate is durable once the log's durable end passes it; wait a little.
        if !log.progress().wait(Level::Durable, candidate, every) {
            continue;
        }
        let _gate = lock(&gate.lock);
        if gate.generation.load(Ordering::Acquire) != generation {
            continue; // a truncation ran since the candidate was read
        }
        match recovery::write_checkpoint(
            root,
            &Checkpoint {
                phys_offset: candidate,
                timestamp_ms: now_millis(),
            },
        ) {
            Ok(()) => last = candidate,
            Err(e) => tracing::error!(error = %e, "checkpoint write failed"),
        }
    }
}

fn spawn(
    name: &str,
    core: Option<usize>,
    f: impl FnOnce() + Send + 'static,
) -> Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            if let Some(core) = core {
                core_affinity::set_for_current(core_affinity::CoreId { id: core });
            }
            f()
        })
        .map_err(|e| Error::io(format!("spawn {name}"), e))
}

fn lock_store(root: &Path) -> Result<GateFile> {
    let path = root.join("lock");
    disk().lock(&path).map_err(|e| match e.kind() {
        std::io::ErrorKind::WouldBlock => Error::Locked {
            path: root.to_owned(),
        },
        _ => Error::io(format!("lock {}", path.display()), e),
    })
}

fn write_abort_marker(root: &Path, ring_id: u64) -> Result<()> {
    let path = recovery::abort_path(root);
    disk()
        .open(&path, Open::Truncate)
        .and_then(|f| {
            f.write_all_at(recovery::abort_marker(ring_id).as_bytes(), 0)?;
            f.sync_all()
        })
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    direct_file::sync_dir(root)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{encode_properties, Parsed};

    fn small(root: &Path) -> StoreConfig {
        let mut cfg = StoreConfig::new(root);
        cfg.commitlog.segment_size = 64 * 1024;
        cfg.commitlog.ring_capacity = 1 << 20;
        cfg.commitlog.max_message_size = 16 * 1024;
        cfg.commitlog.writer_spin = Duration::ZERO;
        cfg.cq_entries_per_file = 64;
        cfg
    }

    #[test]
    fn read_message_at_finds_whole_records_and_refuses_other_offsets() {
        let dir = tempfile::tempdir().unwrap();
        let store = MessageStore::open(small(dir.path())).unwrap();
        let mut starts = Vec::new();
        // Enough records to roll into a second segment (and past the blank marker).
        for n in 0..200u32 {
            let props = encode_properties([("TAGS", format!("t{n}"))]);
            let body = vec![b'a' + (n % 26) as u8; 300 + n as usize];
            let o = store.put_blocking(vec![MessageToStore::new("T", 0, body, props)]);
            assert_eq!(o.status, crate::commitlog::PutStatus::Ok);
            starts.push((o.appended[0].phys_offset, n));
        }
        assert!(starts.last().unwrap().0 > 64 * 1024, "rolled a segment");
        for &(phys, n) in &starts {
            let bytes = store.read_message_at(phys).unwrap();
            let Parsed::Record(v) = record::parse(&bytes, phys, true).unwrap() else {
                panic!("not a record at {phys}");
            };
            assert_eq!(v.physical_offset(), phys);
            assert_eq!(v.total_size() as usize, bytes.len());
            assert_eq!(v.body().len(), 300 + n as usize);
            assert_eq!(v.property("TAGS"), Some(format!("t{n}").as_str()));
        }
        let end = store.commitlog().max_offset();
        for bad in [-1, end, end + 1, 1 << 40, starts[3].0 + 1, starts[3].0 + 8] {
            match store.read_message_at(bad) {
                Err(Error::Invalid(why)) => assert!(why.contains(&bad.to_string()), "{why}"),
                other => panic!("offset {bad}: {other:?}"),
            }
        }
        // The blank marker at the end of the first segment is not a record either.
        let first_of_second = starts.iter().find(|(p, _)| *p >= 64 * 1024).unwrap().0;
        let (last_of_first, n) = starts.iter().rev().find(|(p, _)| *p < 64 * 1024).unwrap();
        let blank_at = last_of_first + store.read_message_at(*last_of_first).unwrap().len() as i64;
        assert!(
            blank_at < first_of_second,
            "record {n} is followed by the blank marker"
        );
        assert!(matches!(
            store.read_message_at(blank_at),
            Err(Error::Invalid(_))
        ));
        store.shutdown().unwrap();
    }
}
