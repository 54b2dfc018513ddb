//! Ceiling: sequential O_DIRECT write bandwidth through io_uring.
//!
//! Writes `total_bytes` into a fresh file with `queue_depth` writes of `block`
//! bytes in flight (each from its own 4096-aligned buffer, registered with the
//! ring as a fixed buffer when the kernel allows, else plain `Write`), then
//! fdatasyncs. The timed span runs from the first submission to the end of the
//! fdatasync. With `preallocate` the file is `fallocate`d (unwritten extents,
//! as the engine does for CommitLog segments) before the clock starts; without
//! it every write extends the file. The file is deleted afterwards.

use std::io;
use std::path::Path;
use std::time::{Duration, Instant};

use io_uring::{opcode, types, IoUring};

use super::{
    iovec, is_aligned, mb_per_s, random_buf, stamp_pages, submit_and_wait, AlignedBuf, ScratchFile,
    ALIGN,
};

/// Default cap on one measurement; submission stops when it is reached and the
/// result reports the bytes actually written.
pub const DEFAULT_MAX_DURATION: Duration = Duration::from_secs(60);

/// What [`try_measure`] should do.
#[derive(Clone, Debug)]
pub struct DirectWriteConfig {
    /// Bytes per write; a non-zero multiple of 4096 (and at most 2 GiB - 4 KiB).
    pub block: usize,
    /// Writes in flight at once (>= 1).
    pub queue_depth: usize,
    /// Bytes to write; rounded up to whole blocks.
    pub total_bytes: u64,
    /// `fallocate` the whole file before the clock starts.
    pub preallocate: bool,
    /// Try registered buffers (`WriteFixed`); falls back to `Write` if registration fails.
    pub fixed_buffers: bool,
    /// Stop submitting after this long (in-flight writes and the fdatasync still count).
    pub max_duration: Duration,
}

impl DirectWriteConfig {
    /// The configuration for `measure(block, queue_depth, total_bytes, preallocate)`.
    pub fn new(block: usize, queue_depth: usize, total_bytes: u64, preallocate: bool) -> Self {
        Self {
            block,
            queue_depth,
            total_bytes,
            preallocate,
            fixed_buffers: true,
            max_duration: DEFAULT_MAX_DURATION,
        }
    }
}

/// Outcome of one bandwidth measurement.
#[derive(Clone, Debug)]
pub struct DirectWriteResult {
    /// Bytes written (less than asked for only if `max_duration` cut the run short).
    pub bytes: u64,
    /// Seconds from first submission to the end of the final fdatasync.
    pub secs: f64,
    /// `bytes / secs` in MB/s (1 MB = 10^6 bytes).
    pub mb_per_s: f64,
    /// Whether registered (fixed) buffers were used.
    pub fixed_buffers: bool,
    /// Block size used.
    pub block: usize,
    /// Queue depth used.
    pub queue_depth: usize,
    /// Whether the file was fallocated first.
    pub preallocated: bool,
    /// True when `max_duration` stopped submission before `total_bytes`.
    pub truncated: bool,
}

/// Measure sequential O_DIRECT write bandwidth in `dir`; panics on I/O error.
/// See [`try_measure`].
pub fn measure(
    dir: &Path,
    block: usize,
    queue_depth: usize,
    total_bytes: u64,
    preallocate: bool,
) -> DirectWriteResult {
    let cfg = DirectWriteConfig::new(block, queue_depth, total_bytes, preallocate);
    try_measure(dir, &cfg).unwrap_or_else(|e| panic!("direct_write ceiling in {dir:?}: {e}"))
}

/// Measure sequential O_DIRECT write bandwidth in `dir` as configured.
pub fn try_measure(dir: &Path, cfg: &DirectWriteConfig) -> io::Result<DirectWriteResult> {
    let block = cfg.block;
    if block == 0 || !is_aligned(block) || block > (u32::MAX as usize & !(ALIGN - 1)) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("block {block} must be a non-zero multiple of {ALIGN} below 4 GiB"),
        ));
    }
    let qd = cfg.queue_depth.max(1);
    let blocks = cfg.total_bytes.div_ceil(block as u64).max(1);
    let total = blocks * block as u64;

    let file = ScratchFile::create(dir, "direct")?;
    if cfg.preallocate {
        file.fallocate(total)?;
        // Make the allocation itself durable before timing, as a segment
        // preallocated ahead of time would be.
        file.fdatasync()?;
    }

    // Declared before the ring so that they are dropped after it.
    let mut bufs: Vec<AlignedBuf> = (0..qd)
        .map(|i| random_buf(block, 0x9E37_79B9_7F4A_7C15 ^ i as u64))
        .collect();
    let mut ring = IoUring::new((qd as u32).next_power_of_two())?;

    let mut fixed = false;
    if cfg.fixed_buffers && qd <= u16::MAX as usize {
        let iovecs: Vec<libc::iovec> = bufs.iter().map(iovec).collect();
        // SAFETY: each iovec describes a live AlignedBuf in `bufs`, which is
        // never reallocated or dropped while `ring` exists (it is declared
        // first, so dropped after the ring; the registration dies with the ring).
        fixed = unsafe { ring.submitter().register_buffers(&iovecs) }.is_ok();
    }

    let fd = types::Fd(file.fd());
    let mut free: Vec<usize> = (0..qd).rev().collect();
    let mut next_block = 0u64;
    let mut inflight = 0usize;
    let mut done = 0u64;
    let mut first_err: Option<io::Error> = None;
    let mut truncated = false;

    let start = Instant::now();
    loop {
        while first_err.is_none() && next_block < blocks {
            if start.elapsed() >= cfg.max_duration {
                truncated = true;
                break;
            }
            let Some(slot) = free.pop() else { break };
            let offset = next_block * block as u64;
            let buf = &mut bufs[slot];
            stamp_pages(buf, offset);
            let ptr = buf.as_ptr();
            let entry = if fixed {
                opcode::WriteFixed::new(fd, ptr, block as u32, slot as u16)
                    .offset(offset)
                    .build()
            } else {
                opcode::Write::new(fd, ptr, block as u32)
                    .offset(offset)
                    .build()
            }
            .user_data(slot as u64);
            // SAFETY: the entry points at `bufs[slot]`: 4096-aligned, `block`
            // bytes long, and not touched again (no stamp, no drop) until its
            // completion returns `slot` to `free`; `bufs` outlives the ring and
            // every path out of this loop first drains all in-flight writes.
            // The fd stays open (`file` outlives the ring too). The SQ has
            // >= qd entries and at most qd are outstanding, so push cannot fail
            // for lack of space (handled anyway).
            if unsafe { ring.submission().push(&entry) }.is_err() {
                free.push(slot);
                break;
            }
            inflight += 1;
            next_block += 1;
        }
        if inflight == 0 {
            break;
        }
        if let Err(e) = submit_and_wait(&ring, 1) {
            // The kernel may still own some buffers and we cannot wait for
            // them: leak them so no write can ever read freed memory.
            std::mem::forget(bufs);
            return Err(io::Error::new(
                e.kind(),
                format!("io_uring_enter with {inflight} writes in flight: {e}"),
            ));
        }
        for cqe in ring.completion() {
            inflight -= 1;
            free.push(cqe.user_data() as usize);
            let res = cqe.result();
            if res < 0 {
                first_err.get_or_insert(io::Error::from_raw_os_error(-res));
            } else if res as usize != block {
                first_err.get_or_insert(io::Error::other(format!(
                    "short O_DIRECT write: {res} of {block} bytes"
                )));
            } else {
                done += res as u64;
            }
        }
    }
    if let Some(e) = first_err {
        return Err(e);
    }
    file.fdatasync()?;
    let secs = start.elapsed().as_secs_f64();
    drop(ring);
    drop(bufs);
    drop(file);

    Ok(DirectWriteResult {
        bytes: done,
        secs,
        mb_per_s: mb_per_s(done, secs),
        fixed_buffers: fixed,
        block,
        queue_depth: qd,
        preallocated: cfg.preallocate,
        truncated,
    })
}
