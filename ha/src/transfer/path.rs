//! What every transfer path shares: the [`TransferPath`] trait a sender drives, the
//! [`PathKind`] names, and the per-kind counters ([`path_stats`]) each path books its
//! frames, bytes, send_zc notifications and (with [`set_cpu_accounting`]) sender CPU time
//! into. The paths ([`CopyPath`](super::copy::CopyPath),
//! [`SplicePath`](super::splice::SplicePath), [`SendZcPath`](super::send_zc::SendZcPath))
//! each import this module; it imports none of them. Runs on the thread driving a path,
//! or the HA loop for its streams; the counters are process-wide atomics that any thread
//! may read.
//!
//! CPU time is the sender threads' (CLOCK_THREAD_CPUTIME_ID around `send_data` and
//! [`TransferPath::idle`]). io_uring runs splices in its io-wq worker threads
//! (`iou-wrk-<sender tid>`), whose CPU time is not in that figure: `ha-bench` adds it
//! (send_zc runs on the sender thread itself, inline or in its task work).

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use ringmq_engine::commitlog::CommitLog;

use crate::protocol::encode_transfer_header;

/// Sends transfer frames (spec 7.3) for CommitLog ranges. The caller guarantees that
/// `[phys, phys + len)` lies in one segment, below the log's written end, and that `len`
/// is at most the batch size.
pub trait TransferPath: Send {
    /// Sends the frame `[phys, len]` followed by the log bytes `[phys, phys + len)`.
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()>;

    /// Sends a heartbeat frame `[phys, 0]`.
    fn send_heartbeat(&mut self, sock: &mut TcpStream, phys: i64) -> io::Result<()> {
        sock.write_all(&encode_transfer_header(phys, 0))
    }

    /// Called by the sender before it sleeps waiting for new log bytes: finishes work
    /// the kernel still has (send_zc notifications, which release tail pins). Returns
    /// how soon to call again at the latest (None: no need).
    fn idle(&mut self, _log: &CommitLog, _sock: &mut TcpStream) -> io::Result<Option<Duration>> {
        Ok(None)
    }

    /// A short name for logs ("zc", "copy", "splice", "splice-syscall").
    fn name(&self) -> &'static str;
}

impl<T: TransferPath + ?Sized> TransferPath for Box<T> {
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()> {
        (**self).send_data(log, sock, phys, len)
    }

    fn send_heartbeat(&mut self, sock: &mut TcpStream, phys: i64) -> io::Result<()> {
        (**self).send_heartbeat(sock, phys)
    }

    fn idle(&mut self, log: &CommitLog, sock: &mut TcpStream) -> io::Result<Option<Duration>> {
        (**self).idle(log, sock)
    }

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Which transfer path a sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// [`CopyPath`](super::copy::CopyPath): read() + write().
    Copy,
    /// [`SplicePath`](super::splice::SplicePath) through io_uring (IORING_OP_SPLICE).
    Splice,
    /// [`SplicePath`](super::splice::SplicePath) through plain splice(2) calls on the sender thread.
    SpliceSyscall,
    /// [`SendZcPath`](super::send_zc::SendZcPath): IORING_OP_SEND_ZC from the tail ring for the hot tail, io_uring
    /// splice below it.
    SendZc,
}

impl PathKind {
    pub const ALL: [PathKind; 4] = [
        PathKind::Copy,
        PathKind::Splice,
        PathKind::SpliceSyscall,
        PathKind::SendZc,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PathKind::Copy => "copy",
            PathKind::Splice => "splice",
            PathKind::SpliceSyscall => "splice-syscall",
            PathKind::SendZc => "zc",
        }
    }

    /// Parses a name printed by [`PathKind::name`] (and `send-zc`, `send_zc` for `zc`).
    pub fn parse(s: &str) -> Option<PathKind> {
        let s = s.trim();
        if s == "send-zc" || s == "send_zc" {
            return Some(PathKind::SendZc);
        }
        PathKind::ALL.into_iter().find(|k| k.name() == s)
    }

    fn index(self) -> usize {
        self as usize
    }
}

static CPU_ACCOUNTING: AtomicBool = AtomicBool::new(false);

/// Turns the per-call CPU clock reads of [`path_stats`] on or off (off by default: two
/// clock_gettime syscalls per frame).
pub fn set_cpu_accounting(on: bool) {
    CPU_ACCOUNTING.store(on, Ordering::Release);
}

/// Counters of one [`PathKind`], summed over all its senders since start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Data frames sent.
    pub frames: u64,
    /// CommitLog bytes sent (headers excluded).
    pub bytes: u64,
    /// Of `bytes`, those spliced from segment files.
    pub spliced_bytes: u64,
    /// Of `bytes`, those copied through user space (everything for `Copy`; the hot tail
    /// for the splice kinds; for `SendZc`, frames that straddle the tail ring's start).
    pub copied_bytes: u64,
    /// Of `bytes`, those sent with IORING_OP_SEND_ZC from the tail ring (`SendZc`).
    pub zc_bytes: u64,
    /// send_zc notifications received: the kernel let go of the bytes of one send.
    pub zc_notifs: u64,
    /// Of `zc_notifs`, those where the kernel reported that it copied the bytes after
    /// all (IORING_SEND_ZC_REPORT_USAGE; always, over loopback: the receiving socket
    /// cannot keep the sender's pages).
    pub zc_copied_notifs: u64,
    /// Sender-thread CPU time inside `send_data` (and `idle`), when accounting is on (ns).
    pub sender_cpu_ns: u64,
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    spliced: AtomicU64,
    copied: AtomicU64,
    zc: AtomicU64,
    zc_notifs: AtomicU64,
    zc_copied_notifs: AtomicU64,
    cpu_ns: AtomicU64,
}

static COUNTERS: [Counters; 4] = [const {
    Counters {
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        spliced: AtomicU64::new(0),
        copied: AtomicU64::new(0),
        zc: AtomicU64::new(0),
        zc_notifs: AtomicU64::new(0),
        zc_copied_notifs: AtomicU64::new(0),
        cpu_ns: AtomicU64::new(0),
    }
}; 4];

/// A snapshot of the counters of `kind`.
pub fn path_stats(kind: PathKind) -> PathStats {
    let c = &COUNTERS[kind.index()];
    PathStats {
        frames: c.frames.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        spliced_bytes: c.spliced.load(Ordering::Relaxed),
        copied_bytes: c.copied.load(Ordering::Relaxed),
        zc_bytes: c.zc.load(Ordering::Relaxed),
        zc_notifs: c.zc_notifs.load(Ordering::Relaxed),
        zc_copied_notifs: c.zc_copied_notifs.load(Ordering::Relaxed),
        sender_cpu_ns: c.cpu_ns.load(Ordering::Relaxed),
    }
}

/// Books send_zc notifications of `kind`: `total`, of which `copied` reported a copy.
pub(crate) fn count_zc_notifs(kind: PathKind, total: u64, copied: u64) {
    let c = &COUNTERS[kind.index()];
    c.zc_notifs.fetch_add(total, Ordering::Relaxed);
    c.zc_copied_notifs.fetch_add(copied, Ordering::Relaxed);
}

/// Body bytes of one frame by how they left.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Moved {
    pub spliced: usize,
    pub copied: usize,
    pub zero_copy: usize,
}

/// The calling thread's CPU time (user + system) in ns.
pub fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a live, writable timespec for the duration of the call; the clock
    // id is a constant the kernel always accepts.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Started at the top of `send_data`; [`Accounting::finish`] books the frame.
pub(crate) struct Accounting {
    kind: PathKind,
    cpu_start: Option<u64>,
}

impl Accounting {
    pub(crate) fn start(kind: PathKind) -> Self {
        Accounting {
            kind,
            cpu_start: CPU_ACCOUNTING.load(Ordering::Relaxed).then(thread_cpu_ns),
        }
    }

    /// Books one frame of `spliced + copied` bytes (call after a successful send) and the
    /// CPU time since [`Accounting::start`] (always, errors cost CPU too).
    pub(crate) fn finish(self, sent: Option<(usize, usize)>) {
        self.finish_moved(sent.map(|(spliced, copied)| Moved {
            spliced,
            copied,
            zero_copy: 0,
        }))
    }

    /// [`Accounting::finish`] with send_zc bytes too; `None` books only the CPU time.
    pub(crate) fn finish_moved(self, sent: Option<Moved>) {
        let c = &COUNTERS[self.kind.index()];
        if let Some(m) = sent {
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.bytes.fetch_add(
                (m.spliced + m.copied + m.zero_copy) as u64,
                Ordering::Relaxed,
            );
            c.spliced.fetch_add(m.spliced as u64, Ordering::Relaxed);
            c.copied.fetch_add(m.copied as u64, Ordering::Relaxed);
            c.zc.fetch_add(m.zero_copy as u64, Ordering::Relaxed);
        }
        if let Some(t0) = self.cpu_start {
            c.cpu_ns
                .fetch_add(thread_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
        }
    }
}
