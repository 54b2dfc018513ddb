//! The CommitLog: one log for all topics, in fixed-size segment files, written by one
//! pinned writer thread with O_DIRECT through io_uring.
//!
//! | file | owns |
//! | --- | --- |
//! | `config` | settings (RocketMQ key names) |
//! | `segment` | segment files, the readers' segment table, the preallocator thread |
//! | `tail` | the in-memory window of recent bytes readers may copy from |
//! | `crash_tail` | the tail ring in shared memory, written back at start-up after a process crash |
//! | `pin` | pins on ring bytes handed to the kernel (HA send_zc), and the pin pressure that bounds them |
//! | `stats` | flush latency, group-commit sizes and io_uring submissions, for metrics |
//! | `progress` | published offsets `append_end >= write_end >= durable_end` and waits on them |
//! | `request` | append requests and outcomes |
//! | `writer/` | the writer thread: encode, pipelined writes, flush, acknowledgements (one file per step of its loop) |
//! | `recovery` | checkpoint, abort marker, start-up scan and tail cut |
//!
//! Truncation (slave side, [`CommitLog::truncate`]): the writer finishes what is in flight,
//! makes everything below the cut durable, fails the SYNC_FLUSH acknowledgements past it,
//! zeroes the segment tail past the cut, deletes later segments and continues there.
//!
//! Contract: an append is answered once, on the writer thread, with where each message
//! landed. Under SYNC_FLUSH the answer comes when the records are durable; otherwise
//! (ASYNC_FLUSH, or `WAIT=false`) as soon as they are in the tail ring when it lives in
//! shared memory (`crash_tail`: start-up after a process crash writes it back), else when
//! their O_DIRECT write completed; either way they survive a broker process crash (with
//! `ack_before_write` and a private ring: as soon as they are in the ring, and lost by a
//! process crash). A wait longer than
//! `syncFlushTimeout` is answered FLUSH_DISK_TIMEOUT. Nothing is answered Ok that was not
//! stored.

pub mod config;
pub mod crash_tail;
pub mod pin;
pub mod progress;
pub mod recovery;
pub mod request;
pub mod segment;
pub mod stats;
pub mod tail;
mod writer;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, SyncSender};
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;

pub use config::{CommitLogConfig, FlushMode, SyncMethod};
pub use pin::{TailBuffer, TailPin, PIN_PRESSURE_AFTER};
pub use progress::{Level, Progress};
pub use request::{AppendOutcome, AppendRequest, Appended, Completion, PutStatus, RawAppend};

use crate::io::{align_down, wake::Doorbell};
use crate::record::MessageToStore;
use crate::sync::{lock, read, write};
use crate::{Error, Result};
use segment::{SegmentFile, SegmentTable};
use tail::Tail;
use writer::{Command, Writer};

/// State shared by the writer thread and every reader.
pub(crate) struct Shared {
    pub cfg: CommitLogConfig,
    pub tail: Tail,
    pub progress: Progress,
    pub segments: SegmentTable,
    pub doorbell: Doorbell,
    /// Why the writer stopped, once it has.
    pub stopped: Mutex<Option<String>>,
    /// Whether the ring and snapshot page are registered io_uring buffers.
    pub registered: std::sync::atomic::AtomicBool,
    /// What the writer counts for operators.
    pub stats: stats::WriterStats,
    /// Bumped by the writer before a truncation touches any file: a reader that copied
    /// from a segment file checks it did not change, so it never returns bytes that were
    /// being cut.
    pub truncations: AtomicU64,
}

impl Shared {
    /// See [`CommitLog::acks_from_ring`].
    pub fn acks_from_ring(&self) -> bool {
        self.cfg.ack_before_write || self.tail.ring().survives_process_crash()
    }
}

pub struct CommitLog {
    shared: Arc<Shared>,
    /// None once shut down. Appenders take the read lock (uncontended); shutdown the write lock.
    tx: RwLock<Option<SyncSender<Command>>>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl CommitLog {
    /// Starts the writer on a recovered log ending at `end`. Before the first append, give
    /// it the next queue offsets with [`CommitLog::set_queue_offsets`].
    pub fn start(cfg: CommitLogConfig, end: u64) -> Result<Self> {
        cfg.validate()?;
        crate::io::gate::disk()
            .create_dir_all(&cfg.dir)
            .map_err(|e| Error::io(format!("create {}", cfg.dir.display()), e))?;
        crate::io::direct_file::probe_direct_io(&cfg.dir)?;
        let segments = SegmentTable::default();
        for base in segment::list(&cfg.dir)? {
            if base <= end {
                segments.insert(Arc::new(SegmentFile::open(
                    &cfg.dir,
                    base,
                    cfg.segment_size,
                    cfg.zero_fill(),
                )?));
            }
        }
        let current_base = end - end % cfg.segment_size;
        let current = match segments.find(current_base) {
            Some(seg) => seg,
            None => {
                let seg = Arc::new(SegmentFile::open(
                    &cfg.dir,
                    current_base,
                    cfg.segment_size,
                    cfg.zero_fill(),
                )?);
                segments.insert(seg.clone());
                seg
            }
        };
        let tail = Tail::new(crash_tail::create_ring(&cfg)?, align_down(end))?;
        // Seed the ring with the partial last page, which the first write rewrites.
        let page_start = align_down(end);
        if end > page_start {
            let len = (end - page_start) as usize;
            // SAFETY: no reader or writer exists yet; these ring bytes are ours alone.
            let dst = unsafe { tail.ring().slice_mut(page_start, len) };
            current
                .read_file()
                .read_exact_at(dst, page_start - current.base)
                .map_err(|e| Error::io(format!("read {}", current.path.display()), e))?;
        }
        tail.ring().publish_end(end);
        let doorbell = Doorbell::new().map_err(|e| Error::io("eventfd", e))?;
        let shared = Arc::new(Shared {
            progress: Progress::new(end as i64),
            tail,
            segments,
            doorbell,
            stopped: Mutex::new(None),
            registered: std::sync::atomic::AtomicBool::new(false),
            truncations: AtomicU64::new(0),
            stats: stats::WriterStats::default(),
            cfg,
        });
        let (tx, rx) = mpsc::sync_channel(shared.cfg.queue_capacity);
        // The ring is created on the writer thread: it is a single-issuer ring.
        let (ready_tx, ready_rx) = mpsc::channel();
        let writer_shared = shared.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-writer".into())
            .spawn(move || match Writer::new(writer_shared, rx, current, end) {
                Ok(writer) => {
                    let _ = ready_tx.send(Ok(()));
                    writer.run();
                }
                Err(e) => {
                    let _ = ready_tx.send(Err(e));
                }
            })
            .map_err(|e| Error::io("spawn writer", e))?;
        ready_rx
            .recv()
            .unwrap_or_else(|_| Err(Error::WriterStopped("writer thread died at start".into())))?;
        Ok(CommitLog {
            shared,
            tx: RwLock::new(Some(tx)),
            thread: Mutex::new(Some(thread)),
        })
    }

    pub fn config(&self) -> &CommitLogConfig {
        &self.shared.cfg
    }

    pub fn progress(&self) -> &Progress {
        &self.shared.progress
    }

    /// Why the writer stopped, if it has.
    pub fn stopped(&self) -> Option<String> {
        lock(&self.shared.stopped).clone()
    }

    /// The random id of the tail ring; the store's abort marker records it so start-up
    /// after a crash salvages this ring's bytes (see [`crash_tail`]).
    pub fn ring_id(&self) -> u64 {
        self.shared.tail.ring().id()
    }

    /// Flush latency, group-commit sizes and io_uring submissions (see [`stats`]).
    pub fn stats(&self) -> &stats::WriterStats {
        &self.shared.stats
    }

    /// Whether the tail ring lives in shared memory, so what it holds survives a crash of
    /// this process (start-up writes it back).
    pub fn ring_survives_process_crash(&self) -> bool {
        self.shared.tail.ring().survives_process_crash()
    }

    /// The lowest level whose bytes survive a crash of this process: `Append` when the
    /// tail ring is in shared memory (start-up writes it back), else `Write`. What a
    /// master may stream to its slaves: they never hold bytes it loses by a kill -9.
    pub fn process_safe_level(&self) -> Level {
        if self.ring_survives_process_crash() {
            Level::Append
        } else {
            Level::Write
        }
    }

    /// The log's end at [`CommitLog::process_safe_level`]: how far a master may stream.
    pub fn process_safe_end(&self) -> i64 {
        self.shared.progress.get(self.process_safe_level())
    }

    /// Whether appends that do not wait for durability are answered from the tail ring
    /// (it is in shared memory, or `ack_before_write`), not after their write.
    pub fn acks_from_ring(&self) -> bool {
        self.shared.acks_from_ring()
    }

    /// Whether writes go out from registered io_uring buffers (WRITE_FIXED).
    pub fn uses_registered_buffers(&self) -> bool {
        self.shared
            .registered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Queues an append; blocks while the queue is full. Messages are validated here, on
    /// the caller's thread (an invalid request is answered at once, before queueing); the
    /// completion of a queued request runs on the writer thread.
    pub fn append(&self, mut req: AppendRequest) {
        if self.shared.cfg.append_prop_crc {
            req.messages
                .iter_mut()
                .for_each(MessageToStore::reserve_prop_crc);
        }
        let max = self.shared.cfg.max_message_size;
        if let Some(err) = req.messages.iter().find_map(|m| m.validate(max).err()) {
            (req.done)(AppendOutcome::rejected(PutStatus::MessageIllegal(
                err.to_string(),
            )));
            return;
        }
        self.send(Command::Append(req));
    }

    /// Appends and waits for the outcome (tests, tools).
    pub fn append_blocking(&self, messages: Vec<MessageToStore>) -> AppendOutcome {
        let (tx, rx) = mpsc::channel();
        self.append(AppendRequest {
            messages,
            wait_durable: true,
            done: Box::new(move |o| {
                let _ = tx.send(o);
            }),
        });
        rx.recv().unwrap_or_else(|_| {
            AppendOutcome::rejected(PutStatus::ServiceNotAvailable("writer exited".into()))
        })
    }

    /// Sets the next queue offset of every (topic, queue): `table[topic][queue_id]`.
    pub fn set_queue_offsets(&self, table: HashMap<Box<str>, Vec<i64>>) {
        self.send(Command::SetQueueOffsets(table));
    }

    /// Slave side: appends replicated bytes at `raw.phys_offset`.
    pub fn append_raw(&self, raw: RawAppend) {
        self.send(Command::AppendRaw(raw));
    }

    /// Slave side: cuts the log back to `offset` (the master's end) and blocks until done.
    ///
    /// The writer finishes every write and fdatasync in flight and makes the log durable
    /// up to `offset`; answers every SYNC_FLUSH append still waiting whose end lies past
    /// `offset` with ServiceNotAvailable("truncated"); zeroes the segment holding `offset`
    /// from there to its end and deletes every later segment file (fdatasync and directory
    /// fsync before returning); then continues appending at `offset` (a segment starting
    /// exactly at `offset` is the current one). `offset == max_offset()` changes nothing.
    ///
    /// Refused with [`Error::Invalid`] past the end or below the first segment. The caller
    /// submits no appends meanwhile and, if the store keeps a checkpoint, lowers it to
    /// at most `offset` first (see `MessageStore::truncate_log`). An I/O error while
    /// cutting stops the writer, like a failed write.
    pub fn truncate(&self, offset: i64) -> Result<()> {
        if offset < 0 {
            return Err(Error::Invalid(format!(
                "cannot truncate the CommitLog to {offset}"
            )));
        }
        let (tx, rx) = mpsc::channel();
        self.send(Command::Truncate(offset as u64, tx));
        rx.recv()
            .unwrap_or_else(|_| Err(Error::WriterStopped("writer exited".into())))
    }

    fn send(&self, cmd: Command) {
        let guard = read(&self.tx);
        let Some(tx) = guard.as_ref() else {
            fail_command(cmd, "CommitLog is shut down");
            return;
        };
        match tx.send(cmd) {
            Ok(()) => self.shared.doorbell.ring(),
            Err(mpsc::SendError(cmd)) => fail_command(cmd, "CommitLog writer exited"),
        }
    }

    /// Offset just past the last appended byte.
    pub fn max_offset(&self) -> i64 {
        self.shared.progress.get(Level::Append)
    }

    /// The first offset still stored.
    pub fn min_offset(&self) -> i64 {
        self.shared.segments.first_base().unwrap_or(0) as i64
    }

    /// The segment file holding `phys`, while it is stored. Its
    /// [`SegmentFile::read_file`] is a buffered fd: the HA master splices from it.
    pub fn segment_at(&self, phys: i64) -> Option<Arc<SegmentFile>> {
        u64::try_from(phys)
            .ok()
            .and_then(|p| self.shared.segments.find(p))
    }

    /// Where the tail ring's window starts. Every byte below it is on disk, in whole pages
    /// below `align_down(write_end)` (the window never starts above that), which the writer
    /// never writes again; only a truncation changes them. So reading them through the
    /// page cache (buffered reads, splice) cannot meet an in-flight O_DIRECT write.
    pub fn cold_end(&self) -> i64 {
        self.shared.tail.retain_start() as i64
    }

    /// Pins the log bytes `[phys, phys + len)` in the tail ring, if they are all there
    /// and below `append_end` (None otherwise: read them with [`CommitLog::read`] or from
    /// the segment files). While the pin lives the writer does not rewrite them, so they
    /// may be handed to the kernel (send_zc); it holds appends back once the log has
    /// grown a ring capacity past `phys`, and after [`PIN_PRESSURE_AFTER`] of that
    /// raises [`CommitLog::pin_revoke_below`]. Drop it as soon as the kernel is done.
    pub fn pin_tail(&self, phys: i64, len: usize) -> Option<TailPin> {
        let phys = u64::try_from(phys).ok()?;
        TailPin::new(&self.shared, phys, len)
    }

    /// The tail ring's whole mapping, kept mapped while the handle lives (to register it
    /// as an io_uring fixed buffer that [`TailPin`] ranges lie in).
    pub fn tail_buffer(&self) -> TailBuffer {
        TailBuffer::new(&self.shared)
    }

    /// Pin pressure: nonzero once the writer has waited [`PIN_PRESSURE_AFTER`] for pins
    /// starting below this offset; holders of such pins must release them soon. Back to
    /// 0 once the writer got past.
    pub fn pin_revoke_below(&self) -> i64 {
        self.shared.tail.revoke_below() as i64
    }

    /// Bumped before a truncation touches any file: a reader of segment files compares
    /// it before and after to know it did not read bytes being cut.
    pub fn truncation_epoch(&self) -> u64 {
        self.shared.truncations.load(Ordering::Acquire)
    }

    /// Runs `f` on the log bytes `[phys, phys + len)` (which must lie in one segment and
    /// below `append_end`): in place from the tail ring when they are all still there,
    /// otherwise from a copy made by [`CommitLog::read`].
    pub fn with_bytes<R>(&self, phys: i64, len: usize, f: impl FnOnce(&[u8]) -> R) -> Result<R> {
        let mut f = Some(f);
        if phys >= 0 {
            if let Some(r) =
                self.shared
                    .tail
                    .with_slice(phys as u64, len, &self.shared.progress, |b| {
                        (f.take().expect("once"))(b)
                    })
            {
                return Ok(r);
            }
        }
        let mut buf = vec![0u8; len];
        self.read(phys, &mut buf)?;
        Ok((f.take().expect("once"))(&buf))
    }

    /// Copies `[phys, phys + buf.len())` into `buf` (may span segments): the part at or
    /// above the tail window's start from the ring, the part below it from the segment
    /// files (the window never starts above `write_end`, so that part is on disk; bytes
    /// above `write_end` may not be, and are never read from the files).
    pub fn read(&self, phys: i64, buf: &mut [u8]) -> Result<()> {
        let len = buf.len() as u64;
        // Each retry means the window moved on by at least a quarter ring (or the log was
        // cut, which the range check then reports): a few are plenty.
        for _ in 0..64 {
            let epoch = self.shared.truncations.load(Ordering::Acquire);
            let end = self.shared.progress.get(Level::Append);
            if phys < 0 || phys + len as i64 > end {
                return Err(Error::Invalid(format!(
                    "range {phys}+{len} is beyond the log end {end}"
                )));
            }
            let start = phys as u64;
            let split = self.shared.tail.retain_start().clamp(start, start + len);
            let (below, in_ring) = buf.split_at_mut((split - start) as usize);
            if !in_ring.is_empty() {
                let n = in_ring.len();
                let copied = self
                    .shared
                    .tail
                    .with_slice(split, n, &self.shared.progress, |b| {
                        in_ring.copy_from_slice(b)
                    });
                if copied.is_none() {
                    continue; // the window moved past `split`, or the log was cut
                }
            }
            if !below.is_empty() {
                self.read_files(start, below, epoch)?;
            }
            return Ok(());
        }
        Err(Error::Invalid(format!(
            "range {phys}+{len} kept moving out of the tail window"
        )))
    }

    /// Copies from the segment files. `epoch` is the truncation count read before the
    /// caller checked the range against `append_end`: if a truncation started since, the
    /// bytes may have been cut while being read, and the read fails instead.
    fn read_files(&self, phys: u64, buf: &mut [u8], epoch: u64) -> Result<()> {
        let mut at = phys;
        let mut done = 0;
        while done < buf.len() {
            let seg = self.shared.segments.find(at).ok_or_else(|| {
                Error::Invalid(format!("offset {at} is not in any CommitLog segment"))
            })?;
            let n = (buf.len() - done).min((seg.end() - at) as usize);
            seg.read_file()
                .read_exact_at(&mut buf[done..done + n], at - seg.base)
                .map_err(|e| Error::io(format!("read {}", seg.path.display()), e))?;
            done += n;
            at += n as u64;
        }
        if self.shared.truncations.load(Ordering::Acquire) != epoch {
            return Err(Error::Invalid(format!(
                "range {phys}+{} was truncated while being read",
                buf.len()
            )));
        }
        Ok(())
    }

    /// Makes everything appended durable and stops the writer. Returns the final end.
    pub fn shutdown(&self) -> Result<i64> {
        let Some(tx) = write(&self.tx).take() else {
            return Ok(self.shared.progress.get(Level::Durable));
        };
        let (done_tx, done_rx) = mpsc::channel();
        let sent = tx.send(Command::Shutdown(done_tx)).is_ok();
        self.shared.doorbell.ring_always();
        drop(tx);
        let res = if sent {
            done_rx
                .recv()
                .unwrap_or(Err(Error::WriterStopped("writer exited".into())))
        } else {
            Err(Error::WriterStopped("writer exited".into()))
        };
        if let Some(t) = lock(&self.thread).take() {
            let _ = t.join();
        }
        self.shared.progress.stop();
        if res.is_ok() && self.stopped().is_none() {
            // Everything the ring held is written: nothing for a start-up to salvage.
            self.shared.tail.ring().remove_file();
        }
        res
    }
}

impl Drop for CommitLog {
    fn drop(&mut self) {
        let _ = self.shutdown();
    }
}

fn fail_command(cmd: Command, why: &str) {
    match cmd {
        Command::Append(req) => (req.done)(AppendOutcome::rejected(
            PutStatus::ServiceNotAvailable(why.into()),
        )),
        Command::AppendRaw(raw) => (raw.done)(Err(Error::WriterStopped(why.into()))),
        Command::SetQueueOffsets(_) => {}
        Command::Truncate(_, tx) => {
            let _ = tx.send(Err(Error::WriterStopped(why.into())));
        }
        Command::Shutdown(tx) => {
            let _ = tx.send(Err(Error::WriterStopped(why.into())));
        }
    }
}
