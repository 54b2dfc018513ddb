//! The writer thread: sole owner of the log's tail. Runs pinned on its own core (the
//! writer core); every method of [`Writer`] runs on that thread.
//!
//! Each turn of its loop it (1) takes appends off the bounded queue and encodes them into
//! the tail ring, assigning physical offsets, queue offsets and store timestamps
//! (`append`, with `room` and `roll`); (2) submits O_DIRECT writes of the dirty pages and,
//! under ASYNC_FLUSH, an fdatasync every `flush_interval` (`submit`); (3) sleeps in
//! io_uring_enter until a completion, a doorbell from a producer, or the next deadline
//! (`wait`). Completions advance `write_end`/`durable_end` and release the
//! acknowledgements they cover, in offset order, in one pass (`complete`, `acks`): an
//! append is answered once durable under SYNC_FLUSH; otherwise at once when the ring is
//! in shared memory (it survives a broker process crash there, see `crash_tail`), else
//! once written (so it survives one all the same), or at once with `ack_before_write`.
//!
//! Writes are pipelined. Under ASYNC_FLUSH up to MAX_INFLIGHT (8) writes are in flight,
//! each at most 2 MiB of page-aligned pages; they complete in any order and `write_end`
//! moves over the completed prefix. Under SYNC_FLUSH one write is in flight at a time and
//! covers everything appended so far, partial last page included: what arrives while it is
//! in flight goes out together in the next one (the group commit).
//!
//! The partial last page of a write is copied to a snapshot page and written from there,
//! so new records can be encoded into the ring's copy of that page while the write is in
//! flight; the next write rewrites the page with its new content. Two writes never race
//! on one page: every write starts at the page where the previous one ended, a write that
//! ends in a partial page is submitted under ASYNC_FLUSH only when no other write is in
//! flight, and nothing is submitted behind it until it completes (`Inflight::partial`), so
//! the snapshot page is never rewritten while the kernel reads it either.
//!
//! A short write (the kernel took fewer bytes than asked) is not written yet: the rest of
//! that piece is written again from the last whole page the kernel took, and only then
//! does the write count toward `write_end` (see `inflight`). A piece that makes no
//! progress for a few tries in a row fails like an I/O error.
//!
//! A failed write or fdatasync stops the writer: every waiter is failed, nothing more is
//! acknowledged, and the broker must restart (after an fsync error the page cache and
//! device state cannot be trusted).
//!
//! | file | owns |
//! | --- | --- |
//! | `append` | encoding appends and copying replicated bytes into the ring |
//! | `room` | ring room for new records, tail pins and pin pressure |
//! | `roll` | moving to the next segment |
//! | `submit` | O_DIRECT writes of dirty pages, the ASYNC_FLUSH fdatasync |
//! | `inflight` | `user_data` tags, the record of a write with the kernel, short-write resumption |
//! | `complete` | completions: written/durable ends, failures |
//! | `acks` | acknowledgements waiting for `write_end` or `durable_end`, in offset order |
//! | `wait` | sleeping until there is work |
//! | `truncate` | cutting the log back (slave side), see `truncate_now` |

mod acks;
mod append;
mod complete;
mod inflight;
mod roll;
mod room;
mod submit;
mod truncate;
mod wait;

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::sync::Arc;
use std::time::Instant;

use super::request::{AppendRequest, RawAppend};
use super::segment::{Preallocator, SegmentFile};
use super::Shared;
use crate::io::aligned::AlignedBuf;
use crate::io::gate::{Completion as Cqe, WriteRing};
use crate::io::PAGE;
use crate::offset::QueueOffset;
use crate::sync::lock;
use crate::{Error, Result};
use acks::Acks;
use inflight::{Inflight, MAX_INFLIGHT};
use room::PinWait;

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

pub struct Writer {
    shared: Arc<Shared>,
    rx: Receiver<Command>,
    stash: Option<Command>,
    ring: Box<dyn WriteRing>,
    snapshot: AlignedBuf,
    /// Eventfd read buffer; boxed so its address is stable while the read is armed.
    wake_buf: Box<u64>,
    wake_armed: bool,
    prealloc: Preallocator,
    current: Arc<SegmentFile>,
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
    /// Next queue offset of every (topic, queue id).
    queue_offsets: HashMap<Box<str>, Vec<QueueOffset>>,
    /// SYNC_FLUSH appends waiting for `durable_end`.
    durable_acks: Acks,
    /// Other appends waiting for `write_end` (unless acks come from the ring).
    write_acks: Acks,
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
        let mut ring = crate::io::gate::disk().write_ring(256)?;
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
            durable_acks: Acks::default(),
            write_acks: Acks::default(),
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
                Command::SetQueueOffsets(table) => self.set_queue_offsets(table),
                Command::Truncate(offset, reply) => self.begin_truncate(offset, reply),
                Command::Shutdown(tx) => self.shutdown = Some(tx),
            }
        }
    }

    /// Takes the next-queue-offset table (rebuilt from the ConsumeQueues, which never
    /// hold a negative offset).
    fn set_queue_offsets(&mut self, table: HashMap<Box<str>, Vec<i64>>) {
        self.queue_offsets = table
            .into_iter()
            .map(|(topic, next)| {
                let next = next
                    .into_iter()
                    .map(|n| QueueOffset::from_wire(n).expect("queue offsets are not negative"))
                    .collect();
                (topic, next)
            })
            .collect();
    }

    fn stopped_reason(&self) -> Option<String> {
        self.failed.clone()
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

    /// Stops the writer for good after an I/O failure.
    fn fail(&mut self, why: String) {
        if self.failed.is_some() {
            return;
        }
        tracing::error!("{why}; the CommitLog writer stops and acknowledges nothing more");
        self.failed = Some(why.clone());
        *lock(&self.shared.stopped) = Some(why.clone());
        self.durable_acks.reject_all(&why);
        self.write_acks.reject_all(&why);
        self.shared.progress.stop();
    }
}
