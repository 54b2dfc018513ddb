//! How CommitLog bytes get onto a slave's socket. Runs on each slave's sender thread
//! (`master`).
//!
//! | path | [`PathKind`] | moves bytes by |
//! | --- | --- | --- |
//! | [`CopyPath`] | `Copy` | `CommitLog::read` into a user-space buffer, one `write_all` of header and body |
//! | [`SplicePath`](crate::zerocopy::SplicePath) | `Splice` | IORING_OP_SPLICE: segment file -> pipe -> socket, no user-space copy |
//! | [`SplicePath`](crate::zerocopy::SplicePath) | `SpliceSyscall` | the same with plain splice(2) (the fallback when io_uring splice is unavailable) |
//!
//! The splice paths splice only bytes below [`CommitLog::cold_end`] (out of the tail ring,
//! whole pages the writer never rewrites); the hot tail still goes out by copy from the
//! ring until send_zc from the registered ring exists.
//!
//! [`sender_path`] builds the path a new sender uses: [`default_path`], which is
//! [`PathKind::Splice`] unless [`set_default_path`] or `RINGMQ_HA_TRANSFER`
//! (`copy`, `splice`, `splice-syscall`) says otherwise. Per-kind counters ([`path_stats`])
//! record frames and bytes, and, when [`set_cpu_accounting`] is on, the sender threads'
//! CPU time spent in `send_data` (CLOCK_THREAD_CPUTIME_ID around each call). io_uring
//! runs splices in its io-wq worker threads (`iou-wrk-<sender tid>`), whose CPU time is
//! not in that figure: `ha-bench` adds it.

use std::io::{self, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};

use ringmq_engine::commitlog::CommitLog;

use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};
pub use crate::zerocopy::SplicePath;

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

    /// A short name for logs ("copy", "splice", "splice-syscall").
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

    fn name(&self) -> &'static str {
        (**self).name()
    }
}

/// Which transfer path a sender uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PathKind {
    /// [`CopyPath`]: read() + write().
    Copy,
    /// [`SplicePath`] through io_uring (IORING_OP_SPLICE).
    Splice,
    /// [`SplicePath`] through plain splice(2) calls on the sender thread.
    SpliceSyscall,
}

impl PathKind {
    pub const ALL: [PathKind; 3] = [PathKind::Copy, PathKind::Splice, PathKind::SpliceSyscall];

    pub fn name(self) -> &'static str {
        match self {
            PathKind::Copy => "copy",
            PathKind::Splice => "splice",
            PathKind::SpliceSyscall => "splice-syscall",
        }
    }

    /// Parses a name printed by [`PathKind::name`].
    pub fn parse(s: &str) -> Option<PathKind> {
        PathKind::ALL.into_iter().find(|k| k.name() == s.trim())
    }

    fn index(self) -> usize {
        self as usize
    }
}

const KIND_UNSET: u8 = u8::MAX;
static DEFAULT_KIND: AtomicU8 = AtomicU8::new(KIND_UNSET);
static CPU_ACCOUNTING: AtomicBool = AtomicBool::new(false);

/// Sets the path every sender started from now on uses.
pub fn set_default_path(kind: PathKind) {
    DEFAULT_KIND.store(kind as u8, Ordering::Release);
}

/// The path new senders use: the last [`set_default_path`], else `RINGMQ_HA_TRANSFER`,
/// else [`PathKind::Splice`].
pub fn default_path() -> PathKind {
    let k = DEFAULT_KIND.load(Ordering::Acquire);
    if let Some(kind) = PathKind::ALL.get(k as usize) {
        return *kind;
    }
    let kind = match std::env::var("RINGMQ_HA_TRANSFER") {
        Ok(v) => PathKind::parse(&v).unwrap_or_else(|| {
            tracing::warn!(value = %v, "RINGMQ_HA_TRANSFER: expected copy, splice or splice-syscall; using splice");
            PathKind::Splice
        }),
        Err(_) => PathKind::Splice,
    };
    let _ =
        DEFAULT_KIND.compare_exchange(KIND_UNSET, kind as u8, Ordering::AcqRel, Ordering::Acquire);
    kind
}

/// The transfer path for a new sender thread (call it on that thread: the io_uring
/// path's ring belongs to its creator). A splice path that cannot be set up (no pipe)
/// logs why and falls back to copying.
pub fn sender_path(batch_size: usize) -> Box<dyn TransferPath> {
    let kind = default_path();
    if kind == PathKind::Copy {
        return Box::new(CopyPath::new(batch_size));
    }
    match SplicePath::new(batch_size, kind == PathKind::SpliceSyscall) {
        Ok(p) => Box::new(p),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up the splice transfer path; copying instead");
            Box::new(CopyPath::new(batch_size))
        }
    }
}

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
    /// for the splice kinds).
    pub copied_bytes: u64,
    /// Sender-thread CPU time inside `send_data`, when accounting is on (ns).
    pub sender_cpu_ns: u64,
}

#[derive(Default)]
struct Counters {
    frames: AtomicU64,
    bytes: AtomicU64,
    spliced: AtomicU64,
    copied: AtomicU64,
    cpu_ns: AtomicU64,
}

static COUNTERS: [Counters; 3] = [const {
    Counters {
        frames: AtomicU64::new(0),
        bytes: AtomicU64::new(0),
        spliced: AtomicU64::new(0),
        copied: AtomicU64::new(0),
        cpu_ns: AtomicU64::new(0),
    }
}; 3];

/// A snapshot of the counters of `kind`.
pub fn path_stats(kind: PathKind) -> PathStats {
    let c = &COUNTERS[kind.index()];
    PathStats {
        frames: c.frames.load(Ordering::Relaxed),
        bytes: c.bytes.load(Ordering::Relaxed),
        spliced_bytes: c.spliced.load(Ordering::Relaxed),
        copied_bytes: c.copied.load(Ordering::Relaxed),
        sender_cpu_ns: c.cpu_ns.load(Ordering::Relaxed),
    }
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
        let c = &COUNTERS[self.kind.index()];
        if let Some((spliced, copied)) = sent {
            c.frames.fetch_add(1, Ordering::Relaxed);
            c.bytes
                .fetch_add((spliced + copied) as u64, Ordering::Relaxed);
            c.spliced.fetch_add(spliced as u64, Ordering::Relaxed);
            c.copied.fetch_add(copied as u64, Ordering::Relaxed);
        }
        if let Some(t0) = self.cpu_start {
            c.cpu_ns
                .fetch_add(thread_cpu_ns().saturating_sub(t0), Ordering::Relaxed);
        }
    }
}

/// The copy path: log bytes are copied into a buffer, then written.
pub struct CopyPath {
    buf: Vec<u8>,
}

impl CopyPath {
    pub fn new(batch_size: usize) -> Self {
        CopyPath {
            buf: Vec::with_capacity(TRANSFER_HEADER_SIZE + batch_size),
        }
    }

    /// The bytes `[phys, phys + len)`, after their frame header if `header`, through
    /// one user-space buffer, without accounting.
    pub(crate) fn send_copy(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
        header: bool,
    ) -> io::Result<()> {
        self.buf.clear();
        if header {
            self.buf
                .extend_from_slice(&encode_transfer_header(phys, len));
        }
        let at = self.buf.len();
        self.buf.resize(at + len, 0);
        log.read(phys, &mut self.buf[at..])
            .map_err(|e| io::Error::other(format!("read CommitLog {phys}+{len}: {e}")))?;
        sock.write_all(&self.buf)
    }
}

impl TransferPath for CopyPath {
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()> {
        let acct = Accounting::start(PathKind::Copy);
        let res = self.send_copy(log, sock, phys, len, true);
        acct.finish(res.is_ok().then_some((0, len)));
        res
    }

    fn name(&self) -> &'static str {
        "copy"
    }
}
