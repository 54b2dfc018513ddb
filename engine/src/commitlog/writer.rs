//! The writer thread: sole owner of the log's tail. Runs pinned on its own core.
//!
//! Each turn of its loop it (1) takes appends off the bounded queue and encodes them into
//! the tail ring, assigning physical offsets, queue offsets and store timestamps;
//! (2) if no write is in flight, submits one O_DIRECT write covering every dirty page
//! since the last one (the group commit: whatever arrived while the previous write was
//! in flight goes out together); (3) under ASYNC_FLUSH, submits an fdatasync every
//! `flush_interval`; (4) sleeps in io_uring_enter until a completion, a doorbell from a
//! producer, or the next deadline. Completions advance `write_end`/`durable_end` and
//! release the acknowledgements they cover, in offset order, in one pass.
//!
//! The partial last page of a write is copied to a snapshot page first and written from
//! there, so new records can be encoded into the ring's copy of that page while the
//! write is in flight; the next write rewrites the page with its new content. One write
//! batch is in flight at a time, so two writes never race on the same page.
//!
//! A failed write or fdatasync stops the writer: every waiter is failed, nothing more is
//! acknowledged, and the broker must restart (after an fsync error the page cache and
//! device state cannot be trusted).
//!
//! Tail pins (`commitlog::pin`: ring bytes the HA master handed to the kernel) hold the
//! window back: an append that needs their ring slots waits, asleep, until they go, and
//! after PIN_PRESSURE_AFTER the writer raises pin pressure so their holder lets go.
//!
//! A truncation (`Command::Truncate`) stops taking commands until nothing is in flight
//! and the log is written and durable up to the cut (writes past the cut are not
//! submitted meanwhile), then cuts in one step on this thread: see `truncate_now`.

use std::collections::{HashMap, VecDeque};
use std::os::unix::fs::FileExt;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::config::{FlushMode, SyncMethod};
use super::pin::PIN_PRESSURE_AFTER;
use super::progress::Level;
use super::request::{AppendOutcome, AppendRequest, Appended, Completion, PutStatus, RawAppend};
use super::segment::{self, Preallocator, SegmentFile};
use super::Shared;
use crate::io::aligned::AlignedBuf;
use crate::io::uring::{Completion as Cqe, WriterRing};
use crate::io::{align_down, direct_file, faults, PAGE};
use crate::record::{self, StoreFields};
use crate::sync::lock;
use crate::{Error, Result};

/// Messages to the writer thread.
pub enum Command {
    Append(AppendRequest),
    AppendRaw(RawAppend),
    /// Replace the next-queue-offset table (once, at start, after the ConsumeQueues are
    /// rebuilt; the queue is FIFO so it precedes every append).
    SetQueueOffsets(HashMap<Box<str>, Vec<i64>>),
    /// Cut the log back to this offset (slave side); answered once done (see
    /// `CommitLog::truncate`).
    Truncate(u64, Sender<Result<()>>),
    /// Make everything durable, then exit; the sender learns the final durable end.
    Shutdown(std::sync::mpsc::Sender<Result<i64>>),
}

const OP_WRITE: u64 = 1 << 56;
const OP_FSYNC: u64 = 2 << 56;
const OP_WAKE: u64 = 3 << 56;
const OP_MASK: u64 = 0xff << 56;
/// Fixed-buffer indices registered with the ring.
const BUF_RING: u16 = 0;
/// How often the loop wakes with nothing to do, to check deadlines.
const TICK: Duration = Duration::from_millis(5);
/// ASYNC_FLUSH pipelining: page-aligned writes of at most this size, this many in flight.
const CHUNK: u64 = 2 << 20;
const MAX_INFLIGHT: usize = 8;
const WRITE_ID_MASK: u64 = (1 << 56) - 1;

/// One write with the kernel: one or more ops (a piece per segment, the snapshot page,
/// linked fdatasyncs).
struct Inflight {
    /// Log offset this write makes written once it and every earlier write completed.
    end: u64,
    ops_left: u32,
    /// Durable when it completes (RWF_DSYNC or linked fdatasync).
    durable: bool,
    /// Ends in a partial page written from the snapshot: nothing may follow it until it
    /// completes, or two writes would race on that page.
    partial: bool,
    /// Segments referenced by the ops, kept open until they complete.
    _segments: Vec<Arc<SegmentFile>>,
    /// The iovecs of a vectored op, alive until it completes (boxed: stable address).
    _iovecs: Option<Box<[libc::iovec; 2]>>,
}

/// Room (or a truncation) waiting for tail pins to go.
#[derive(Debug, Clone, Copy)]
struct PinWait {
    /// When pins first held the writer up (in this stretch).
    since: Instant,
    /// `Tail::unpins` read before the pins were found in the way: if it moved since, a
    /// pin went away and it is worth looking again.
    unpins: u64,
}

struct PendingAck {
    end: u64,
    deadline: Instant,
    outcome: AppendOutcome,
    done: Completion,
}

pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    stash: Option<Command>,
    ring: WriterRing,
    snapshot: AlignedBuf,
    /// Eventfd read buffer; boxed so its address is stable while the read is armed.
    wake_buf: Box<u64>,
    wake_armed: bool,
    prealloc: Preallocator,
    current: Arc<SegmentFile>,
    /// Segments written since the last fdatasync (ASYNC_FLUSH).
    unsynced: Vec<Arc<SegmentFile>>,
    append_end: u64,
    write_end: u64,
    durable_end: u64,
    /// Writes with the kernel, oldest first; `write_end` moves when the oldest completes.
    inflight: VecDeque<Inflight>,
    /// Id of `inflight[0]`; ids increase by one per write.
    first_write_id: u64,
    /// End of the last write submitted (>= write_end).
    submitted_end: u64,
    /// (durable end it makes, fdatasyncs left, the segments it syncs, kept open until done).
    fsync_inflight: Option<(u64, u32, Vec<Arc<SegmentFile>>)>,
    last_fsync: Instant,
    queue_offsets: HashMap<Box<str>, Vec<i64>>,
    acks: VecDeque<PendingAck>,
    shutdown: Option<std::sync::mpsc::Sender<Result<i64>>>,
    completions: Vec<Cqe>,
    /// Set once by `fail`; the reason every later request is refused with.
    failed: Option<String>,
    /// A truncation waiting for in-flight I/O to finish: (offset, reply). No command is
    /// taken while it waits.
    truncating: Option<(u64, Sender<Result<()>>)>,
    /// Set while tail pins keep the window from moving as far as needed.
    pin_wait: Option<PinWait>,
}

impl Writer {
    pub(crate) fn new(
        shared: Arc<Shared>,
        rx: Receiver<Command>,
        current: Arc<SegmentFile>,
        end: u64,
    ) -> Result<Self> {
        let mut ring = WriterRing::new(256)?;
        let snapshot = AlignedBuf::new(PAGE);
        let buffers = [shared.tail.ring().mapping()];
        // SAFETY: the tail ring is owned by `shared`, which this writer holds an Arc of
        // for its whole life, so it outlives the ring, which is dropped with the writer.
        let registered = unsafe { ring.register(&buffers) };
        shared
            .registered
            .store(registered, std::sync::atomic::Ordering::Relaxed);
        if !registered {
            tracing::warn!(
                "io_uring buffer registration refused; CommitLog writes use unregistered buffers"
            );
        }
        let mut prealloc = Preallocator::start(
            shared.cfg.dir.clone(),
            shared.cfg.segment_size,
            shared.cfg.zero_fill(),
        )?;
        prealloc.request(current.end());
        Ok(Writer {
            rx,
            stash: None,
            ring,
            snapshot,
            wake_buf: Box::new(0),
            wake_armed: false,
            prealloc,
            unsynced: vec![current.clone()],
            current,
            append_end: end,
            write_end: end,
            durable_end: end,
            inflight: VecDeque::with_capacity(MAX_INFLIGHT),
            first_write_id: 0,
            submitted_end: end,
            fsync_inflight: None,
            last_fsync: Instant::now(),
            queue_offsets: HashMap::new(),
            acks: VecDeque::new(),
            shutdown: None,
            completions: Vec::with_capacity(64),
            failed: None,
            truncating: None,
            pin_wait: None,
            shared,
        })
    }

    /// The thread body.
    pub fn run(mut self) {
        if let Some(core) = self.shared.cfg.writer_core {
            if !core_affinity::set_for_current(core_affinity::CoreId { id: core }) {
                tracing::warn!(core, "could not pin the CommitLog writer");
            }
        }
        loop {
            let blocked = self.take_commands();
            self.maybe_write();
            self.maybe_fsync();
            if self.finished() {
                break;
            }
            self.wait(blocked);
            self.reap();
            self.expire_acks();
        }
    }

    /// Encodes queued commands until the queue is empty or the ring has no room.
    /// Returns true if a command is waiting for room.
    fn take_commands(&mut self) -> bool {
        loop {
            if self.truncating.is_some() && !self.try_truncate() {
                return false;
            }
            let cmd = match self.stash.take() {
                Some(cmd) => cmd,
                None => match self.rx.try_recv() {
                    Ok(cmd) => cmd,
                    Err(TryRecvError::Empty) => return false,
                    Err(TryRecvError::Disconnected) => {
                        if self.shutdown.is_none() {
                            let (tx, _rx) = std::sync::mpsc::channel();
                            self.shutdown = Some(tx);
                        }
                        return false;
                    }
                },
            };
            match cmd {
                Command::Append(req) => {
                    if let Err(req) = self.append(req) {
                        self.stash = Some(Command::Append(req));
                        return true;
                    }
                }
                Command::AppendRaw(raw) => {
                    if let Err(raw) = self.append_raw(raw) {
                        self.stash = Some(Command::AppendRaw(raw));
                        return true;
                    }
                }
                Command::SetQueueOffsets(table) => self.queue_offsets = table,
                Command::Truncate(offset, reply) => self.begin_truncate(offset, reply),
                Command::Shutdown(tx) => self.shutdown = Some(tx),
            }
        }
    }

    fn stopped_reason(&self) -> Option<String> {
        self.failed.clone()
    }

    /// Encodes one request. Gives it back if the ring has no room yet.
    fn append(&mut self, req: AppendRequest) -> std::result::Result<(), AppendRequest> {
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
            let queue_offset = next_queue_offset(&mut self.queue_offsets, &m.topic, m.queue_id);
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
        self.shared
            .progress
            .publish(Level::Append, self.append_end as i64);
        let outcome = AppendOutcome {
            status: PutStatus::Ok,
            appended,
            end_offset: self.append_end as i64,
        };
        if self.shared.cfg.flush_mode == FlushMode::Sync && req.wait_durable {
            let deadline = Instant::now() + self.shared.cfg.sync_flush_timeout;
            self.acks.push_back(PendingAck {
                end: self.append_end,
                deadline,
                outcome,
                done: req.done,
            });
        } else {
            (req.done)(outcome);
        }
        Ok(())
    }

    /// Appends replicated bytes (slave side). Gives them back if the ring has no room yet.
    fn append_raw(&mut self, raw: RawAppend) -> std::result::Result<(), RawAppend> {
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
                    self.shared
                        .progress
                        .publish(Level::Append, self.append_end as i64);
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
        self.shared
            .progress
            .publish(Level::Append, self.append_end as i64);
        (raw.done)(Ok(self.append_end as i64));
        Ok(())
    }

    /// Ensures ring slots up to `end` can be written: their older lap must be on disk
    /// and forgotten by readers. False if the disk is too far behind (wait for a write)
    /// or a pin holds the window below what is needed (wait for the pin to go).
    fn make_room(&mut self, end: u64) -> bool {
        let cap = self.shared.tail.capacity();
        let need = end.saturating_sub(cap);
        let retain = self.shared.tail.retain_start();
        if need <= retain {
            self.pins_out_of_the_way();
            return true;
        }
        let limit = align_down(self.write_end);
        if need > limit {
            return false;
        }
        let unpins = self.shared.tail.unpins();
        // Move in big steps so readers rarely meet the write lock. Pins clamp the move.
        let moved_to = self.shared.tail.advance_retain((need + cap / 4).min(limit));
        if moved_to < need {
            self.held_by_pins(need, unpins);
            return false;
        }
        self.pins_out_of_the_way();
        true
    }

    /// Pins keep the window below `need`: remember since when, and raise pin pressure
    /// once that has lasted PIN_PRESSURE_AFTER.
    fn held_by_pins(&mut self, need: u64, unpins: u64) {
        let since = self.pin_wait.map_or_else(Instant::now, |w| w.since);
        self.pin_wait = Some(PinWait { since, unpins });
        self.shared.tail.set_pin_waiter(true);
        if since.elapsed() >= PIN_PRESSURE_AFTER {
            if self.shared.tail.revoke_below() < need {
                tracing::warn!(
                    need,
                    pinned_floor = ?self.shared.tail.pinned_floor(),
                    waited_ms = since.elapsed().as_millis() as u64,
                    "tail pins hold the CommitLog writer up; raising pin pressure"
                );
            }
            self.shared.tail.set_revoke_below(Some(need));
        }
    }

    /// Nothing is waiting for pins (any more): drop the pressure.
    fn pins_out_of_the_way(&mut self) {
        if self.pin_wait.take().is_some() {
            self.shared.tail.set_pin_waiter(false);
            self.shared.tail.set_revoke_below(None);
        }
    }

    /// Writes the blank end-of-file marker and moves to the next segment.
    fn roll(&mut self) -> std::result::Result<(), PutStatus> {
        let remaining = self.current.end() - self.append_end;
        let next = self.take_next_segment()?;
        // SAFETY: make_room covered everything up to the next segment's first bytes;
        // these bytes are above append_end.
        let dst = unsafe {
            self.shared
                .tail
                .ring()
                .slice_mut(self.append_end, remaining as usize)
        };
        dst.fill(0);
        record::encode_blank(dst, remaining as i32);
        self.append_end = self.current.end();
        self.install(next);
        Ok(())
    }

    /// Slave side: the replicated bytes already contain the blank marker.
    fn switch_segment(&mut self) -> std::result::Result<(), PutStatus> {
        let next = self.take_next_segment()?;
        self.install(next);
        Ok(())
    }

    fn take_next_segment(&mut self) -> std::result::Result<SegmentFile, PutStatus> {
        let base = self.current.end();
        match self.prealloc.take(base) {
            Ok(seg) => Ok(seg),
            Err(e) => {
                tracing::error!(error = %e, "cannot prepare the next CommitLog segment; rejecting appends that need it");
                Err(match e {
                    Error::DiskFull { .. } => PutStatus::DiskFull,
                    other => PutStatus::ServiceNotAvailable(other.to_string()),
                })
            }
        }
    }

    fn install(&mut self, next: SegmentFile) {
        let next = Arc::new(next);
        self.shared.segments.insert(next.clone());
        self.prealloc.request(next.end());
        if self.shared.cfg.flush_mode == FlushMode::Async {
            self.unsynced.push(next.clone());
        }
        self.current = next;
    }

    /// Submits writes for the dirty pages. SYNC_FLUSH: one write covering everything,
    /// partial last page included (latency first; that is the group commit). ASYNC_FLUSH:
    /// page-aligned chunks pipelined up to MAX_INFLIGHT deep, the partial last page only
    /// when nothing else is in flight.
    fn maybe_write(&mut self) {
        if self.failed.is_some() || faults::writes_paused() {
            return;
        }
        let sync = self.shared.cfg.flush_mode == FlushMode::Sync;
        let max_inflight = if sync { 1 } else { MAX_INFLIGHT };
        // While a truncation waits, only bytes below the cut are worth writing.
        let limit = match self.truncating {
            Some((offset, _)) => offset.min(self.append_end),
            None => self.append_end,
        };
        while self.inflight.len() < max_inflight && self.submitted_end < limit {
            if self.inflight.back().is_some_and(|w| w.partial) {
                break;
            }
            let start = align_down(self.submitted_end);
            let full = align_down(limit);
            let end = if !sync && full > start + CHUNK {
                start + CHUNK
            } else if sync || self.inflight.is_empty() {
                limit
            } else if full > start {
                full
            } else {
                break;
            };
            self.submit_write(start, end, sync);
        }
    }

    /// Queues the ops that write `[start, end)` (start page-aligned) as one write.
    fn submit_write(&mut self, start: u64, end: u64, sync: bool) {
        let dsync = sync && self.shared.cfg.sync_method == SyncMethod::Dsync;
        let linked_fsync = sync && !dsync;
        let user_data =
            OP_WRITE | ((self.first_write_id + self.inflight.len() as u64) & WRITE_ID_MASK);
        let mut at = start;
        let mut ops = 0u32;
        let mut segments = Vec::with_capacity(2);
        let mut iovecs = None;
        while at < end {
            let seg = if at >= self.current.base {
                self.current.clone()
            } else {
                self.shared
                    .segments
                    .find(at)
                    .expect("segment of a dirty page is in the table")
            };
            let piece_end = end.min(seg.end());
            let full_end = align_down(piece_end);
            if piece_end == full_end {
                // SAFETY: the pages [at, full_end) hold bytes below append_end, which the
                // writer never rewrites, and make_room never recycles ring slots at or
                // above align_down(write_end), which this write's completion gates.
                unsafe {
                    self.ring.push_write(
                        seg.direct_fd(),
                        self.shared.tail.ring().ptr(at),
                        (full_end - at) as u32,
                        at - seg.base,
                        BUF_RING,
                        dsync,
                        linked_fsync,
                        user_data,
                    )
                };
            } else {
                // Segment ends are page-aligned, so only a write's last page is partial.
                // It goes out from a snapshot copy, in the same vectored op as the full
                // pages before it: one op, one device flush.
                let len = (piece_end - full_end) as usize;
                // SAFETY: [full_end, piece_end) is below append_end (stable) and still in
                // the ring (retain_start <= align_down(write_end) <= full_end).
                let src = unsafe { self.shared.tail.ring().slice(full_end, len) };
                let page = self.snapshot.as_mut_slice();
                page[..len].copy_from_slice(src);
                page[len..].fill(0);
                let vecs = iovecs.insert(Box::new([
                    libc::iovec {
                        iov_base: self.shared.tail.ring().ptr(at) as *mut libc::c_void,
                        iov_len: (full_end - at) as usize,
                    },
                    libc::iovec {
                        iov_base: self.snapshot.as_mut_ptr() as *mut libc::c_void,
                        iov_len: PAGE,
                    },
                ]));
                let (first, count) = if full_end > at { (0, 2) } else { (1, 1) };
                // SAFETY: the iovec box is kept in this write's Inflight entry until it
                // completes; the ring pages are stable as above; the snapshot page is
                // rewritten only here, and only once no partial write is in flight
                // (maybe_write stops behind one).
                unsafe {
                    self.ring.push_writev(
                        seg.direct_fd(),
                        vecs[first..].as_ptr(),
                        count,
                        (if count == 2 { at } else { full_end }) - seg.base,
                        dsync,
                        linked_fsync,
                        user_data,
                    )
                };
            }
            ops += 1;
            if linked_fsync {
                // Linked after this segment's write: runs only if it succeeded.
                self.ring.push_fdatasync(seg.direct_fd(), user_data);
                ops += 1;
            }
            segments.push(seg);
            at = piece_end;
        }
        self.inflight.push_back(Inflight {
            end,
            ops_left: ops,
            durable: sync,
            partial: !end.is_multiple_of(PAGE as u64),
            _segments: segments,
            _iovecs: iovecs,
        });
        self.submitted_end = end;
    }

    /// Answers a truncation request at once when it is refused or changes nothing;
    /// otherwise parks it until `try_truncate` can run it.
    fn begin_truncate(&mut self, offset: u64, reply: Sender<Result<()>>) {
        if let Some(why) = self.stopped_reason() {
            let _ = reply.send(Err(Error::WriterStopped(why)));
            return;
        }
        let first = self
            .shared
            .segments
            .first_base()
            .unwrap_or(self.current.base);
        if offset > self.append_end || offset < first {
            let _ = reply.send(Err(Error::Invalid(format!(
                "cannot truncate the CommitLog to {offset}: it holds [{first}, {})",
                self.append_end
            ))));
            return;
        }
        if offset == self.append_end {
            let _ = reply.send(Ok(()));
            return;
        }
        self.truncating = Some((offset, reply));
    }

    /// Runs the parked truncation once no write or fdatasync is in flight and the log is
    /// written and durable up to the cut (`maybe_write` and `maybe_fsync` get it there).
    /// Returns false while it must still wait.
    fn try_truncate(&mut self) -> bool {
        let Some(offset) = self.truncating.as_ref().map(|(o, _)| *o) else {
            return true;
        };
        if let Some(why) = self.stopped_reason() {
            if let Some((_, reply)) = self.truncating.take() {
                let _ = reply.send(Err(Error::WriterStopped(why)));
            }
            return true;
        }
        let idle = self.inflight.is_empty() && self.fsync_inflight.is_none();
        if !idle || self.write_end < offset || self.durable_end < offset {
            return false;
        }
        // The cut lowers append_end and the next appends rewrite the ring bytes past it:
        // no pin may be held on them (a master never truncates; this is a safety net).
        let unpins = self.shared.tail.unpins();
        if self.shared.tail.pinned_floor().is_some() {
            self.held_by_pins(i64::MAX as u64, unpins);
            return false;
        }
        self.pins_out_of_the_way();
        let (_, reply) = self.truncating.take().expect("a parked truncation");
        let res = self.truncate_now(offset);
        if let Err(e) = &res {
            // Files may be half cut: stop, as after a failed write; restart recovers.
            self.fail(format!("truncating the CommitLog to {offset} failed: {e}"));
        }
        let _ = reply.send(res);
        true
    }

    /// Cuts the log back to `offset` (< append_end). Nothing is in flight and everything
    /// below `offset` is written and durable. For a crash in the middle, the tail of the
    /// segment holding `offset` is zeroed and synced before later segments are deleted,
    /// so a start-up scan from a checkpoint <= `offset` stops at `offset` whatever made
    /// it to disk.
    fn truncate_now(&mut self, offset: u64) -> Result<()> {
        let seg_size = self.shared.cfg.segment_size;
        let dir = self.shared.cfg.dir.clone();
        let old_end = self.append_end;
        let base = offset - offset % seg_size;
        let next = base + seg_size;
        let page = align_down(offset);

        let target = match self.shared.segments.find(base) {
            Some(seg) => seg,
            None => {
                // Only reachable when `offset` starts a segment that was never created.
                let seg = Arc::new(self.prealloc.take(base)?);
                self.shared.segments.insert(seg.clone());
                seg
            }
        };
        // The partial page [page, offset) the next write rewrites: still in the ring, or
        // read back now, before anything is cut, so a read error changes nothing.
        let in_ring = page >= self.shared.tail.retain_start();
        let mut seed = Vec::new();
        if !in_ring && offset > page {
            seed.resize((offset - page) as usize, 0);
            target
                .read_file()
                .read_exact_at(&mut seed, page - base)
                .map_err(|e| Error::io(format!("read {}", target.path.display()), e))?;
        }

        // SYNC_FLUSH appends past the cut will never be durable.
        let mut kept = VecDeque::with_capacity(self.acks.len());
        for ack in self.acks.drain(..) {
            if ack.end > offset {
                (ack.done)(AppendOutcome::rejected(PutStatus::ServiceNotAvailable(
                    "truncated".into(),
                )));
            } else {
                kept.push_back(ack);
            }
        }
        self.acks = kept;
        // From here on a reader copying from a segment file fails rather than return
        // bytes being cut.
        self.shared.truncations.fetch_add(1, Ordering::AcqRel);

        // A segment being prepared for right after `target` is fresh: keep it. Any other
        // is waited for and deleted with the rest.
        let keep_next = self.prealloc.pending() == Some(next);
        if !keep_next {
            self.prealloc.discard();
        }
        // 1. Zero the cut tail of the target segment, durably.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open(&target.path)
            .map_err(|e| Error::io(format!("open {}", target.path.display()), e))?;
        direct_file::zero_range(&file, &target.path, offset - base, seg_size)?;
        direct_file::sync_data(&file, &target.path)?;
        drop(file);
        // 2. Later segments: out of the readers' table, then off the disk. Nothing in
        // flight references them; readers holding an Arc keep the file open.
        let dropped = self.shared.segments.remove_from(base + 1);
        for b in segment::list(&dir)? {
            if b <= base || (keep_next && b == next) {
                continue;
            }
            let path = dir.join(segment::file_name(b));
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(Error::io(format!("remove {}", path.display()), e)),
            }
        }
        direct_file::sync_dir(&dir)?;
        drop(dropped);

        // 3. Continue at `offset`.
        self.unsynced = vec![target.clone()];
        self.current = target;
        self.append_end = offset;
        self.write_end = offset;
        self.durable_end = offset;
        self.submitted_end = offset;
        let shared = &self.shared;
        shared.tail.reset_with(page, || {
            if !seed.is_empty() {
                // SAFETY: the tail's write lock is held, so no reader is inside
                // with_slice; [page, offset) is at or above the new retain_start and
                // nothing is in flight, so no write reads these ring bytes; only this
                // thread writes the ring.
                let dst = unsafe { shared.tail.ring().slice_mut(page, seed.len()) };
                dst.copy_from_slice(&seed);
            }
            shared.progress.reset(offset as i64);
        });
        self.prealloc.request(self.current.end());
        tracing::info!(
            offset,
            old_end,
            dropped_bytes = old_end - offset,
            segment = self.current.base,
            "CommitLog truncated"
        );
        Ok(())
    }

    /// ASYNC_FLUSH: fdatasync everything written, every flush_interval.
    fn maybe_fsync(&mut self) {
        let async_flush = self.shared.cfg.flush_mode == FlushMode::Async;
        let due = self.last_fsync.elapsed() >= self.shared.cfg.flush_interval
            || self.shutdown.is_some()
            || self.truncating.is_some();
        if !async_flush
            || !due
            || self.fsync_inflight.is_some()
            || self.durable_end >= self.write_end
        {
            return;
        }
        let target = self.write_end;
        let segs: Vec<_> = self.unsynced.drain(..).collect();
        for seg in &segs {
            self.ring.push_fdatasync(seg.direct_fd(), OP_FSYNC);
        }
        self.unsynced.push(self.current.clone());
        self.fsync_inflight = Some((target, segs.len() as u32, segs));
        self.last_fsync = Instant::now();
    }

    /// Shutdown completes once everything appended is durable.
    fn finished(&mut self) -> bool {
        if self.shutdown.is_none() || self.stash.is_some() || self.truncating.is_some() {
            return false;
        }
        let failed = self.stopped_reason();
        let idle = self.inflight.is_empty() && self.fsync_inflight.is_none();
        if failed.is_some() && idle {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(Err(Error::WriterStopped(failed.unwrap_or_default())));
            }
            return true;
        }
        if idle && self.durable_end == self.append_end {
            if let Some(tx) = self.shutdown.take() {
                let _ = tx.send(Ok(self.durable_end as i64));
            }
            return true;
        }
        false
    }

    fn wait(&mut self, blocked: bool) {
        let busy = !self.inflight.is_empty() || self.fsync_inflight.is_some();
        if !self.wake_armed {
            let fd = self.shared.doorbell.raw_fd();
            let buf: *mut u64 = &mut *self.wake_buf;
            // SAFETY: wake_buf is boxed, owned by the writer, and not touched until this
            // read completes (wake_armed guards re-arming).
            unsafe { self.ring.push_eventfd_read(fd, buf, OP_WAKE) };
            self.wake_armed = true;
        }
        if blocked && !busy {
            if let Some(pins) = self.pin_wait {
                // Room waits for tail pins (ring bytes an HA sender handed to the
                // kernel): sleep until one goes (a pin's drop rings the doorbell), a
                // command comes, or TICK passes (make_room then looks again and raises
                // pin pressure once it is due). Never spin.
                self.shared.doorbell.going_to_sleep();
                if self.shared.tail.unpins() != pins.unpins {
                    self.shared.doorbell.awake();
                    return;
                }
                if let Err(e) = self.ring.submit_and_wait(1, Some(TICK)) {
                    self.fail(format!("io_uring_enter failed: {e}"));
                }
                self.shared.doorbell.awake();
                return;
            }
            // Waiting for room with nothing in flight and no pin in the way cannot
            // happen: room only needs written pages, and maybe_write just submitted them.
            self.ring.submit_and_wait(0, None).ok();
            return;
        }
        if self.spin_for_work(blocked) {
            return;
        }
        let timeout = self.next_timeout();
        self.shared.doorbell.going_to_sleep();
        if self.stash.is_none() && self.has_queued() {
            self.shared.doorbell.awake();
            let _ = self.ring.submit_and_wait(0, None);
            return;
        }
        if let Err(e) = self.ring.submit_and_wait(1, Some(timeout)) {
            self.fail(format!("io_uring_enter failed: {e}"));
        }
        self.shared.doorbell.awake();
    }

    /// Submits what is queued, then polls for a completion or a new command for up to
    /// `writer_spin`. Returns true if there is something to do.
    fn spin_for_work(&mut self, blocked: bool) -> bool {
        let spin = self.shared.cfg.writer_spin;
        if spin.is_zero() {
            return false;
        }
        if let Err(e) = self.ring.submit_and_wait(0, None) {
            self.fail(format!("io_uring_enter failed: {e}"));
            return true;
        }
        let until = Instant::now() + spin;
        loop {
            if self.ring.has_completions()
                || (!blocked && self.stash.is_none() && self.has_queued())
            {
                return true;
            }
            if Instant::now() >= until {
                return false;
            }
            for _ in 0..64 {
                std::hint::spin_loop();
            }
        }
    }

    /// Whether a command is waiting in the queue (peeks by taking it into the stash).
    fn has_queued(&mut self) -> bool {
        match self.rx.try_recv() {
            Ok(cmd) => {
                self.stash = Some(cmd);
                true
            }
            Err(TryRecvError::Empty) => false,
            Err(TryRecvError::Disconnected) => true,
        }
    }

    fn next_timeout(&self) -> Duration {
        let mut t = TICK;
        if let Some(ack) = self.acks.front() {
            t = t.min(ack.deadline.saturating_duration_since(Instant::now()));
        }
        if self.shared.cfg.flush_mode == FlushMode::Async && self.durable_end < self.write_end {
            t = t.min(
                self.shared
                    .cfg
                    .flush_interval
                    .saturating_sub(self.last_fsync.elapsed()),
            );
        }
        t.max(Duration::from_micros(50))
    }

    fn reap(&mut self) {
        let mut cqes = std::mem::take(&mut self.completions);
        self.ring.reap(&mut cqes);
        for cqe in cqes.drain(..) {
            match cqe.user_data & OP_MASK {
                OP_WAKE => self.wake_armed = false,
                OP_WRITE => self.on_write(cqe.user_data & WRITE_ID_MASK, cqe.result),
                OP_FSYNC => self.on_fsync(cqe.result),
                other => debug_assert!(false, "unknown completion kind {other:#x}"),
            }
        }
        self.completions = cqes;
    }

    fn on_write(&mut self, id: u64, result: i32) {
        let result = if result >= 0 && faults::write_should_fail() {
            -libc::EIO
        } else {
            result
        };
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            self.fail(format!(
                "CommitLog write to {} failed: {err}",
                self.current.path.display()
            ));
        }
        let index = id.wrapping_sub(self.first_write_id) as usize;
        let Some(write) = self.inflight.get_mut(index) else {
            debug_assert!(false, "completion for unknown write {id}");
            return;
        };
        write.ops_left -= 1;
        // Writes complete in any order; write_end moves over the completed prefix.
        let mut written = None;
        while self.inflight.front().is_some_and(|w| w.ops_left == 0) {
            let w = self.inflight.pop_front().expect("front exists");
            self.first_write_id += 1;
            written = Some((w.end, w.durable));
        }
        if self.inflight.is_empty() && self.failed.is_some() {
            self.submitted_end = self.write_end;
        }
        let Some((end, durable)) = written else {
            return;
        };
        if self.failed.is_some() {
            return;
        }
        self.write_end = end;
        self.shared.progress.publish(Level::Write, end as i64);
        if durable {
            self.set_durable(end);
        }
    }

    fn on_fsync(&mut self, result: i32) {
        if result < 0 {
            let err = std::io::Error::from_raw_os_error(-result);
            self.fail(format!("fdatasync of the CommitLog failed: {err}"));
        }
        let Some((target, left, _)) = self.fsync_inflight.as_mut() else {
            return;
        };
        *left -= 1;
        if *left == 0 {
            let target = *target;
            self.fsync_inflight = None;
            if self.failed.is_none() {
                self.set_durable(target);
            }
        }
    }

    fn set_durable(&mut self, end: u64) {
        if end <= self.durable_end {
            return;
        }
        self.durable_end = end;
        self.shared.progress.publish(Level::Durable, end as i64);
        while self.acks.front().is_some_and(|a| a.end <= end) {
            let ack = self.acks.pop_front().expect("front exists");
            (ack.done)(ack.outcome);
        }
    }

    /// Answers FLUSH_DISK_TIMEOUT to every ack past its own deadline.
    fn expire_acks(&mut self) {
        if self.acks.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut kept = VecDeque::with_capacity(self.acks.len());
        for mut ack in self.acks.drain(..) {
            if ack.deadline <= now {
                ack.outcome.status = PutStatus::FlushDiskTimeout;
                (ack.done)(ack.outcome);
            } else {
                kept.push_back(ack);
            }
        }
        self.acks = kept;
    }

    /// Stops the writer for good after an I/O failure.
    fn fail(&mut self, why: String) {
        if self.failed.is_some() {
            return;
        }
        tracing::error!("{why}; the CommitLog writer stops and acknowledges nothing more");
        self.failed = Some(why.clone());
        *lock(&self.shared.stopped) = Some(why.clone());
        for ack in self.acks.drain(..) {
            (ack.done)(AppendOutcome::rejected(PutStatus::ServiceNotAvailable(
                why.clone(),
            )));
        }
        self.shared.progress.stop();
    }
}

fn next_queue_offset(table: &mut HashMap<Box<str>, Vec<i64>>, topic: &str, queue_id: i32) -> i64 {
    let qid = queue_id.max(0) as usize;
    let queues = match table.get_mut(topic) {
        Some(q) => q,
        None => table.entry(topic.into()).or_default(),
    };
    if queues.len() <= qid {
        queues.resize(qid + 1, 0);
    }
    let off = queues[qid];
    queues[qid] += 1;
    off
}
