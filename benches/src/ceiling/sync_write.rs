//! Ceiling: latency of one durable small O_DIRECT write.
//!
//! Each case writes `n` blocks (4 KiB by default) at sequential offsets of a
//! scratch file, one at a time, each made durable before the next starts, and
//! records each write's latency in microseconds. Methods:
//!
//! * `pwrite` + `fdatasync` (two syscalls);
//! * `pwritev2(RWF_DSYNC)` (one syscall);
//! * io_uring `Write` linked to `Fsync(DATASYNC)` (one submission, two CQEs);
//! * io_uring `Write` with `rw_flags = RWF_DSYNC`.
//!
//! Each method runs on two kinds of file, both `fallocate`d to size first:
//!
//! * *written before*: the range was fully written (and synced) once, so the
//!   write overwrites written extents and the sync only has data to flush;
//! * *fallocated only*: never written, so every write converts an unwritten
//!   extent to written, which is metadata that the sync must journal.
//!
//! The engine preallocates CommitLog segments with fallocate; the difference
//! between the two tells whether segments must be zero-filled ahead of time.
//! A few warm-up writes precede the recorded ones; each case is capped in time.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use io_uring::{opcode, squeue, types, IoUring};

use super::{
    iovec, is_aligned, latency_histogram, pwrite_all, random_buf, stamp_pages, submit_and_wait,
    AlignedBuf, ScratchFile, ALIGN,
};

/// How one write is made durable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// `pwrite` then `fdatasync`.
    PwriteFdatasync,
    /// One `pwritev2(.., RWF_DSYNC)`.
    Pwritev2Dsync,
    /// io_uring `Write` linked (`IO_LINK`) to `Fsync(DATASYNC)`, waited together.
    UringWriteFsync,
    /// io_uring `Write` with `rw_flags = RWF_DSYNC`.
    UringWriteDsync,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 4] = [
        Method::PwriteFdatasync,
        Method::Pwritev2Dsync,
        Method::UringWriteFsync,
        Method::UringWriteDsync,
    ];

    /// Short label.
    pub fn name(self) -> &'static str {
        match self {
            Method::PwriteFdatasync => "pwrite+fdatasync",
            Method::Pwritev2Dsync => "pwritev2 RWF_DSYNC",
            Method::UringWriteFsync => "uring write->fsync",
            Method::UringWriteDsync => "uring write RWF_DSYNC",
        }
    }
}

/// State of the file region before the measured writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileState {
    /// fallocated, then fully written and synced once.
    WrittenBefore,
    /// fallocated only (unwritten extents).
    FallocatedOnly,
}

impl FileState {
    /// Short label.
    pub fn name(self) -> &'static str {
        match self {
            FileState::WrittenBefore => "written-before",
            FileState::FallocatedOnly => "fallocate-only",
        }
    }
}

/// Default warm-up writes (not recorded) before the `n` recorded ones.
pub const DEFAULT_WARMUP: usize = 32;
/// Default cap on one case.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(20);

/// Latency histograms (microseconds) of every method on both file states.
pub struct SyncWriteResult {
    /// pwrite O_DIRECT + fdatasync, file written before.
    pub write_fdatasync: Histogram<u64>,
    /// pwritev2 O_DIRECT RWF_DSYNC, file written before.
    pub dsync_write: Histogram<u64>,
    /// pwrite O_DIRECT + fdatasync, file only fallocated.
    pub write_fdatasync_fallocated: Histogram<u64>,
    /// pwritev2 O_DIRECT RWF_DSYNC, file only fallocated.
    pub dsync_write_fallocated: Histogram<u64>,
    /// io_uring Write -> Fsync(DATASYNC) linked, file written before.
    pub uring_write_fsync: Histogram<u64>,
    /// io_uring Write with RWF_DSYNC, file written before.
    pub uring_dsync_write: Histogram<u64>,
    /// io_uring Write -> Fsync(DATASYNC) linked, file only fallocated.
    pub uring_write_fsync_fallocated: Histogram<u64>,
    /// io_uring Write with RWF_DSYNC, file only fallocated.
    pub uring_dsync_write_fallocated: Histogram<u64>,
}

impl SyncWriteResult {
    /// The histogram for one (method, file state) case.
    pub fn get(&self, method: Method, state: FileState) -> &Histogram<u64> {
        use FileState::*;
        use Method::*;
        match (method, state) {
            (PwriteFdatasync, WrittenBefore) => &self.write_fdatasync,
            (Pwritev2Dsync, WrittenBefore) => &self.dsync_write,
            (PwriteFdatasync, FallocatedOnly) => &self.write_fdatasync_fallocated,
            (Pwritev2Dsync, FallocatedOnly) => &self.dsync_write_fallocated,
            (UringWriteFsync, WrittenBefore) => &self.uring_write_fsync,
            (UringWriteDsync, WrittenBefore) => &self.uring_dsync_write,
            (UringWriteFsync, FallocatedOnly) => &self.uring_write_fsync_fallocated,
            (UringWriteDsync, FallocatedOnly) => &self.uring_dsync_write_fallocated,
        }
    }

    /// `("<method> <state>", histogram)` for every case, written-before first.
    pub fn cases(&self) -> Vec<(String, &Histogram<u64>)> {
        let mut out = Vec::new();
        for state in [FileState::WrittenBefore, FileState::FallocatedOnly] {
            for m in Method::ALL {
                out.push((format!("{} {}", m.name(), state.name()), self.get(m, state)));
            }
        }
        out
    }
}

/// Measure all eight cases with `n` recorded writes of `block` bytes each;
/// panics on I/O error. See [`measure_case`].
pub fn measure(dir: &Path, n: usize, block: usize) -> SyncWriteResult {
    try_measure(dir, n, block, DEFAULT_MAX_DURATION)
        .unwrap_or_else(|e| panic!("sync_write ceiling in {dir:?}: {e}"))
}

/// Like [`measure`], returning errors and with a per-case time cap.
pub fn try_measure(
    dir: &Path,
    n: usize,
    block: usize,
    max_per_case: Duration,
) -> io::Result<SyncWriteResult> {
    let case = |m, s| measure_case(dir, m, s, n, block, DEFAULT_WARMUP, max_per_case);
    use FileState::*;
    use Method::*;
    Ok(SyncWriteResult {
        write_fdatasync: case(PwriteFdatasync, WrittenBefore)?,
        dsync_write: case(Pwritev2Dsync, WrittenBefore)?,
        uring_write_fsync: case(UringWriteFsync, WrittenBefore)?,
        uring_dsync_write: case(UringWriteDsync, WrittenBefore)?,
        write_fdatasync_fallocated: case(PwriteFdatasync, FallocatedOnly)?,
        dsync_write_fallocated: case(Pwritev2Dsync, FallocatedOnly)?,
        uring_write_fsync_fallocated: case(UringWriteFsync, FallocatedOnly)?,
        uring_dsync_write_fallocated: case(UringWriteDsync, FallocatedOnly)?,
    })
}

/// One case: a fresh file in `dir` prepared as `state`, then `warmup + n`
/// durable writes of `block` bytes at sequential offsets, the last `n`
/// recorded in microseconds (fewer if `max_duration` runs out).
pub fn measure_case(
    dir: &Path,
    method: Method,
    state: FileState,
    n: usize,
    block: usize,
    warmup: usize,
    max_duration: Duration,
) -> io::Result<Histogram<u64>> {
    if block == 0 || !is_aligned(block) || block > u32::MAX as usize {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block {block} must be a non-zero multiple of {ALIGN}"),
        ));
    }
    const FILL_CHUNK: u64 = 1 << 20;
    let writes = warmup + n;
    let len = (writes as u64 * block as u64).div_ceil(FILL_CHUNK) * FILL_CHUNK;

    let file = ScratchFile::create(dir, "sync")?;
    file.fallocate(len)?;
    file.fdatasync()?;
    if state == FileState::WrittenBefore {
        file.fill(len, &random_buf(FILL_CHUNK as usize, 7))?;
    }

    // Declared before the ring: dropped after it.
    let mut buf = random_buf(block, 0xD1B5_4A32_D192_ED03);
    let mut ring = match method {
        Method::UringWriteFsync | Method::UringWriteDsync => Some(IoUring::new(4)?),
        _ => None,
    };
    let fd = file.fd();
    let mut hist = latency_histogram();
    let deadline = Instant::now() + max_duration;

    for i in 0..writes {
        if Instant::now() >= deadline {
            break;
        }
        let offset = i as u64 * block as u64;
        stamp_pages(&mut buf, offset ^ 0x5A5A_0000_0000_0000);
        let t0 = Instant::now();
        match method {
            Method::PwriteFdatasync => {
                pwrite_all(fd, buf.as_slice(), offset)?;
                file.fdatasync()?;
            }
            Method::Pwritev2Dsync => pwritev2_dsync(fd, &buf, offset)?,
            Method::UringWriteFsync | Method::UringWriteDsync => {
                let ring = ring.as_mut().expect("ring built for io_uring methods");
                uring_durable_write(ring, fd, &buf, offset, method)?;
            }
        }
        let us = t0.elapsed().as_micros() as u64;
        if i >= warmup {
            hist.saturating_record(us.max(1));
        }
    }
    drop(ring);
    Ok(hist)
}

fn pwritev2_dsync(fd: i32, buf: &AlignedBuf, offset: u64) -> io::Result<()> {
    let iov = iovec(buf);
    loop {
        // SAFETY: `iov` describes `buf`, a live 4096-aligned buffer of a
        // 4096-multiple length, borrowed for the whole synchronous call; the
        // kernel only reads from it.
        let rc = unsafe { libc::pwritev2(fd, &iov, 1, offset as libc::off_t, libc::RWF_DSYNC) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc as usize != buf.len() {
            return Err(io::Error::other(format!("short pwritev2: {rc}")));
        }
        return Ok(());
    }
}

fn uring_durable_write(
    ring: &mut IoUring,
    fd: i32,
    buf: &AlignedBuf,
    offset: u64,
    method: Method,
) -> io::Result<()> {
    let fd = types::Fd(fd);
    let len = buf.len() as u32;
    let dsync = method == Method::UringWriteDsync;
    let write = opcode::Write::new(fd, buf.as_ptr(), len)
        .offset(offset)
        .rw_flags(if dsync { libc::RWF_DSYNC } else { 0 })
        .build()
        .user_data(1);
    let want = if dsync { 1 } else { 2 };
    {
        let mut sq = ring.submission();
        // SAFETY: `buf` is 4096-aligned, `len` bytes, and borrowed until this
        // function returns, which is only after every submitted entry has
        // completed (we wait for `want` CQEs below; on a wait error we abort
        // rather than return or unwind, so `buf` cannot be freed or reused
        // while the kernel may still read it). The ring has 4 free slots; we push <= 2.
        unsafe {
            if dsync {
                sq.push(&write)
            } else {
                let fsync = opcode::Fsync::new(fd)
                    .flags(types::FsyncFlags::DATASYNC)
                    .build()
                    .user_data(2);
                sq.push(&write.flags(squeue::Flags::IO_LINK))
                    .and_then(|()| sq.push(&fsync))
            }
        }
        .map_err(|_| io::Error::other("submission queue full"))?;
    }
    let mut got = 0;
    let mut err = None;
    while got < want {
        if let Err(e) = submit_and_wait(ring, want - got) {
            // Unwinding would free `buf` while the kernel may still read it.
            eprintln!("sync_write: io_uring_enter failed with a write in flight: {e}");
            std::process::abort();
        }
        for cqe in ring.completion() {
            got += 1;
            let res = cqe.result();
            if res < 0 {
                err.get_or_insert(io::Error::from_raw_os_error(-res));
            } else if cqe.user_data() == 1 && res as u32 != len {
                err.get_or_insert(io::Error::other(format!("short write: {res}")));
            }
        }
    }
    err.map_or(Ok(()), Err)
}
