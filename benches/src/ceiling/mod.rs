//! Ceilings: what the machine can do, measured in the same run as a benchmark.
//!
//! This module holds what the three ceiling measurements share: 4096-aligned
//! heap buffers for O_DIRECT (the engine's [`AlignedBuf`], filled by [`random_buf`]), a scratch file that deletes
//! itself ([`ScratchFile`]), a description of the file system and block device
//! under a directory ([`fs_info`]), and the latency histogram constructor used
//! everywhere ([`latency_histogram`]).

pub mod direct_write;
pub mod loopback;
pub mod sync_write;

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use io_uring::IoUring;

/// Alignment (and size granularity) of every O_DIRECT buffer, offset and length.
pub const ALIGN: usize = 4096;

/// True when `x` is a multiple of [`ALIGN`] (written as a mask so that it
/// builds on the workspace MSRV, 1.80, which lacks `is_multiple_of`).
pub const fn is_aligned(x: usize) -> bool {
    x & (ALIGN - 1) == 0
}

/// Bytes in the "MB" of every MB/s figure printed by these benchmarks.
pub const MB: f64 = 1_000_000.0;

/// Bandwidth in MB/s (1 MB = 10^6 bytes); 0 when no time elapsed.
pub fn mb_per_s(bytes: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        bytes as f64 / MB / secs
    } else {
        0.0
    }
}

/// A latency histogram: 3 significant digits, values 1..=6e10 (nanoseconds up
/// to 60 s, or microseconds up to ~16 h). Record with `saturating_record`.
pub fn latency_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// The engine's page-aligned buffer, so the ceiling writes from the same memory the
/// CommitLog writer does. Its address and length are multiples of [`ALIGN`].
pub use ringmq_engine::io::aligned::AlignedBuf;

const _: () = assert!(ALIGN == ringmq_engine::io::PAGE);

/// A buffer of `len` bytes filled with pseudo-random bytes (xorshift64 from `seed`), so
/// that no layer below (virtual disk, compressing or deduplicating storage) can take a
/// shortcut on zero pages. `len` must be a non-zero multiple of [`ALIGN`].
pub fn random_buf(len: usize, seed: u64) -> AlignedBuf {
    assert!(
        len > 0 && is_aligned(len),
        "AlignedBuf length {len} must be a non-zero multiple of {ALIGN}"
    );
    let mut buf = AlignedBuf::new(len);
    debug_assert_eq!(buf.len(), len);
    let mut x = seed | 1;
    for chunk in buf.as_mut_slice().chunks_exact_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        chunk.copy_from_slice(&x.to_le_bytes());
    }
    buf
}

/// Writes `stamp` into the first 8 bytes of every 4 KiB page of `buf`, so that the pages
/// of successive writes differ (defeats block-level deduplication).
pub fn stamp_pages(buf: &mut AlignedBuf, stamp: u64) {
    for (i, page) in buf.as_mut_slice().chunks_exact_mut(ALIGN).enumerate() {
        page[..8].copy_from_slice(&(stamp.wrapping_add(i as u64)).to_le_bytes());
    }
}

/// An iovec describing the whole of `buf` (for buffer registration or pwritev2).
pub fn iovec(buf: &AlignedBuf) -> libc::iovec {
    libc::iovec {
        iov_base: buf.as_ptr().cast_mut().cast(),
        iov_len: buf.len(),
    }
}

/// A fresh file opened `O_RDWR | O_DIRECT`, unlinked when dropped.
pub struct ScratchFile {
    file: File,
    path: PathBuf,
}

static SCRATCH_SEQ: AtomicU64 = AtomicU64::new(0);

impl ScratchFile {
    /// Create a new, empty file in `dir` (`O_CREAT | O_EXCL | O_DIRECT`).
    pub fn create(dir: &Path, tag: &str) -> io::Result<Self> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let seq = SCRATCH_SEQ.fetch_add(1, Ordering::Relaxed);
        let path = dir.join(format!(
            ".ringmq-ceiling-{tag}-{}-{nanos}-{seq}.dat",
            std::process::id()
        ));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_DIRECT | libc::O_CLOEXEC)
            .open(&path)
            .map_err(|e| {
                io::Error::new(
                    e.kind(),
                    format!("open {} with O_DIRECT: {e}", path.display()),
                )
            })?;
        Ok(Self { file, path })
    }

    /// The open file.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Its raw descriptor.
    pub fn fd(&self) -> i32 {
        self.file.as_raw_fd()
    }

    /// Where it lives (until dropped).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reserve `len` bytes with `fallocate(mode 0)`: blocks are allocated as
    /// unwritten extents and the file size becomes `len`.
    pub fn fallocate(&self, len: u64) -> io::Result<()> {
        // SAFETY: plain syscall on a descriptor we own; no memory is passed.
        let rc = unsafe { libc::fallocate(self.fd(), 0, 0, len as libc::off_t) };
        if rc != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// `fdatasync(2)`.
    pub fn fdatasync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    /// Write `[0, len)` once with O_DIRECT writes of `buf` (len rounded up to
    /// whole buffers), then fdatasync: afterwards the range holds written
    /// extents and overwriting it needs no extent conversion.
    pub fn fill(&self, len: u64, buf: &AlignedBuf) -> io::Result<()> {
        let mut off = 0u64;
        while off < len {
            pwrite_all(self.fd(), buf.as_slice(), off)?;
            off += buf.len() as u64;
        }
        self.fdatasync()
    }
}

impl Drop for ScratchFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// `pwrite(2)` the whole of `data` at `offset`, failing on a short write.
pub fn pwrite_all(fd: i32, data: &[u8], offset: u64) -> io::Result<()> {
    loop {
        // SAFETY: `data` is a live slice for the whole (synchronous) call; the
        // kernel only reads `data.len()` bytes from it. For O_DIRECT the caller
        // passes an AlignedBuf slice, so address and length are 4096-aligned.
        let rc =
            unsafe { libc::pwrite(fd, data.as_ptr().cast(), data.len(), offset as libc::off_t) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if rc as usize != data.len() {
            return Err(io::Error::other(format!(
                "short pwrite: {rc} of {} bytes at {offset}",
                data.len()
            )));
        }
        return Ok(());
    }
}

/// `submit_and_wait(want)`, retrying on EINTR.
pub(crate) fn submit_and_wait(ring: &IoUring, want: usize) -> io::Result<usize> {
    loop {
        match ring.submit_and_wait(want) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// The file system and block device under a directory.
#[derive(Clone, Debug)]
pub struct FsInfo {
    /// `statfs.f_type`.
    pub magic: u64,
    /// A name for `magic` ("ext4", "xfs", "tmpfs", ...), or "unknown".
    pub fs_name: &'static str,
    /// `major:minor` of the device holding the directory.
    pub device: String,
    /// `/sys/dev/block/<dev>/queue/write_cache` ("write back" / "write through").
    pub write_cache: Option<String>,
    /// `/sys/dev/block/<dev>/queue/fua` ("1" when the device honours FUA writes).
    pub fua: Option<String>,
    /// `/sys/dev/block/<dev>/queue/rotational`.
    pub rotational: Option<String>,
}

impl FsInfo {
    /// True for file systems kept in RAM, whose numbers say nothing about a disk.
    pub fn is_memory_backed(&self) -> bool {
        matches!(self.fs_name, "tmpfs" | "ramfs")
    }
}

impl std::fmt::Display for FsInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |o: &Option<String>| o.clone().unwrap_or_else(|| "?".into());
        write!(
            f,
            "fs={} (0x{:x}) dev={} write_cache={} fua={} rotational={}",
            self.fs_name,
            self.magic,
            self.device,
            opt(&self.write_cache),
            opt(&self.fua),
            opt(&self.rotational)
        )
    }
}

fn fs_name(magic: u64) -> &'static str {
    match magic {
        0xEF53 => "ext4",
        0x5846_5342 => "xfs",
        0x9123_683E => "btrfs",
        0xF2F5_2010 => "f2fs",
        0x0102_1994 => "tmpfs",
        0x8584_58F6 => "ramfs",
        0x794C_7630 => "overlayfs",
        0x2FC1_2FC1 => "zfs",
        0x6969 => "nfs",
        0x6573_5546 => "fuse",
        _ => "unknown",
    }
}

/// Describe the file system holding `path` (statfs) and its block device (sysfs).
pub fn fs_info(path: &Path) -> io::Result<FsInfo> {
    let c_path = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "path contains NUL"))?;
    // SAFETY: statfs is plain old data; all-zero is a valid value.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a NUL-terminated string and `st` a valid, writable
    // statfs that both outlive the call.
    let rc = unsafe { libc::statfs(c_path.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let magic = st.f_type as u64 & 0xFFFF_FFFF;
    let dev = std::fs::metadata(path)?.dev();
    let device = format!("{}:{}", libc::major(dev), libc::minor(dev));
    let sys = |name: &str| -> Option<String> {
        let whole = format!("/sys/dev/block/{device}/queue/{name}");
        // Partitions have no queue/ of their own: use the parent disk's.
        let parent = format!("/sys/dev/block/{device}/../queue/{name}");
        std::fs::read_to_string(whole)
            .or_else(|_| std::fs::read_to_string(parent))
            .ok()
            .map(|s| s.trim().to_string())
    };
    Ok(FsInfo {
        magic,
        fs_name: fs_name(magic),
        write_cache: sys("write_cache"),
        fua: sys("fua"),
        rotational: sys("rotational"),
        device,
    })
}

/// A snapshot of CPU time, to tell afterwards how busy the *other* processes
/// kept the machine while a measurement ran (the main source of noise on a
/// shared box: a CPU-bound neighbour shows up as multi-millisecond tails).
#[derive(Clone, Copy, Debug)]
pub struct CpuSnapshot {
    /// All CPUs: busy jiffies excluding steal (user..softirq).
    busy: u64,
    /// All CPUs: jiffies stolen by the hypervisor.
    steal: u64,
    /// All CPUs: total jiffies.
    total: u64,
    /// This process (all threads, io_uring workers included): utime + stime.
    own: u64,
}

/// CPU use by others over an interval, as shares (0..=1) of all CPUs' time.
#[derive(Clone, Copy, Debug, Default)]
pub struct CpuNoise {
    /// Busy time not spent in this process (other processes, kernel threads
    /// such as jbd2 and writeback kworkers, interrupts).
    pub others: f64,
    /// Time stolen by the hypervisor.
    pub steal: f64,
}

impl CpuSnapshot {
    /// Read `/proc/stat` and `/proc/self/stat`; None where they are unreadable.
    pub fn now() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .take(8)
            .map(|v| v.parse().unwrap_or(0))
            .collect();
        if cpu.len() < 8 {
            return None;
        }
        let total: u64 = cpu.iter().sum();
        let steal = cpu[7];
        let busy = total - cpu[3] - cpu[4] - steal;
        let me = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime, stime are 14, 15.
        let rest = &me[me.rfind(')')? + 2..];
        let f: Vec<&str> = rest.split_whitespace().collect();
        let own = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
        Some(Self {
            busy,
            steal,
            total,
            own,
        })
    }

    /// CPU use by everything but this process since `self`.
    pub fn noise_since(&self) -> Option<CpuNoise> {
        let now = Self::now()?;
        let total = now.total.checked_sub(self.total)?;
        if total == 0 {
            return Some(CpuNoise::default());
        }
        let busy = now.busy.saturating_sub(self.busy);
        let own = now.own.saturating_sub(self.own);
        Some(CpuNoise {
            others: busy.saturating_sub(own) as f64 / total as f64,
            steal: now.steal.saturating_sub(self.steal) as f64 / total as f64,
        })
    }
}
