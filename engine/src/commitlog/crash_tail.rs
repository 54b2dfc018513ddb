//! The tail ring in shared memory, and what start-up does with the one a crash left.
//!
//! Under ASYNC_FLUSH an append is answered once its bytes are in the tail ring. When the
//! ring is a file on a tmpfs (`tailRingShmDir`, `/dev/shm` by default) those bytes outlive
//! a crash of the broker process, as RocketMQ's page cache does: after a kill -9 the
//! ring's published window `[lo, hi)` (see `io::tail_ring`) holds every acknowledged byte
//! the disk may lack, and everything below `lo` had been written before the crash. So
//! start-up, before it scans the log, writes that window back into the segment files and
//! syncs them; the scan then finds every acknowledged record. A power cut or a kernel
//! crash loses the tmpfs, and with it what the last fdatasync did not cover, as it loses
//! RocketMQ's page cache.
//!
//! A ring file is used only by the run that made it: its random id is written into the
//! store's abort marker, and start-up salvages only the ring that marker names, for the
//! store directory its header names. Files of stores that no longer exist are removed
//! when a ring is created.

use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use super::segment;
use super::CommitLogConfig;
use crate::io::direct_file;
use crate::io::gate::{self, disk, GateFile, Open};
use crate::io::tail_ring::{header_at, TailRing, DIR_MAX, MAGIC};
use crate::io::PAGE;
use crate::{Error, Result};

/// Name prefix of ring files in the shared-memory directory.
const PREFIX: &str = "ringmq-tail-";

/// The ring file of the CommitLog in `log_dir` (canonical), under `shm_dir`.
pub fn ring_file(shm_dir: &Path, log_dir: &Path) -> PathBuf {
    let hash = crc32fast::hash(log_dir.as_os_str().as_bytes());
    let name: String = log_dir
        .components()
        .rev()
        .take(2)
        .filter_map(|c| c.as_os_str().to_str())
        .map(|c| {
            c.chars()
                .filter(|ch| ch.is_ascii_alphanumeric())
                .take(24)
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("-");
    shm_dir.join(format!("{PREFIX}{name}-{hash:08x}"))
}

/// The ring for `cfg`: in shared memory when `cfg.tail_shm_dir` names a usable tmpfs,
/// else private (with a warning, since acks then wait for the write).
pub fn create_ring(cfg: &CommitLogConfig) -> Result<TailRing> {
    if let Some(shm) = &cfg.tail_shm_dir {
        remove_orphans(shm);
        let dir = canonical(&cfg.dir)?;
        let path = ring_file(shm, &dir);
        if dir.as_os_str().len() > DIR_MAX {
            tracing::warn!(dir = %dir.display(), "store path too long for a tail ring in shared memory: ASYNC_FLUSH answers wait for the write");
            return TailRing::new(cfg.ring_capacity).map_err(|e| Error::io("map tail ring", e));
        }
        match TailRing::in_shared_memory(cfg.ring_capacity, &path, &dir) {
            Ok(ring) => return Ok(ring),
            Err(e) => tracing::warn!(
                path = %path.display(),
                error = %e,
                "the tail ring cannot live in shared memory: ASYNC_FLUSH answers wait for the write"
            ),
        }
    }
    TailRing::new(cfg.ring_capacity).map_err(|e| Error::io("map tail ring", e))
}

/// What [`salvage`] wrote back.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Salvaged {
    pub from: u64,
    pub to: u64,
}

/// Start-up after a crash: writes the window of the ring `ring_id` (named by the abort
/// marker) back into the log's segment files and syncs them. Nothing when there is no
/// such ring file, or it belongs to another run or store.
pub fn salvage(cfg: &CommitLogConfig, ring_id: u64) -> Result<Option<Salvaged>> {
    let Some(shm) = &cfg.tail_shm_dir else {
        return Ok(None);
    };
    let dir = canonical(&cfg.dir)?;
    let path = ring_file(shm, &dir);
    let file = match disk().open(&path, Open::Read) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("open {}", path.display()), e)),
    };
    let read_err = |e| Error::io(format!("read {}", path.display()), e);
    let Some(h) = read_header(&file).map_err(read_err)? else {
        tracing::warn!(path = %path.display(), "ignoring a tail ring file without a valid header");
        return Ok(None);
    };
    if h.id != ring_id || h.dir != dir.as_os_str().as_bytes() {
        tracing::warn!(path = %path.display(), "ignoring a tail ring file of another run");
        return Ok(None);
    }
    if h.hi <= h.lo {
        return Ok(None);
    }
    if h.hi - h.lo > h.capacity {
        tracing::warn!(
            lo = h.lo,
            hi = h.hi,
            "ignoring a tail ring file with an impossible window"
        );
        return Ok(None);
    }
    let mut bytes = vec![0u8; (h.hi - h.lo) as usize];
    let first = (h.lo % h.capacity) as usize;
    let before_wrap = bytes.len().min(h.capacity as usize - first);
    file.read_exact_at(&mut bytes[..before_wrap], first as u64)
        .map_err(read_err)?;
    file.read_exact_at(&mut bytes[before_wrap..], 0)
        .map_err(read_err)?;
    write_back(cfg, h.lo, &bytes)?;
    tracing::warn!(
        from = h.lo,
        to = h.hi,
        "wrote back the tail ring a crashed run left in shared memory"
    );
    Ok(Some(Salvaged {
        from: h.lo,
        to: h.hi,
    }))
}

/// Writes `bytes` at physical offset `at` into the segment files, creating missing
/// segments past the last one (a segment below it that is gone was deleted on purpose,
/// and its bytes are skipped), then syncs what it touched.
fn write_back(cfg: &CommitLogConfig, at: u64, bytes: &[u8]) -> Result<()> {
    let seg_size = cfg.segment_size;
    let existing = segment::list(&cfg.dir)?;
    let last = existing.last().copied();
    let mut created = false;
    let mut pos = at;
    let mut rest = bytes;
    while !rest.is_empty() {
        let base = pos - pos % seg_size;
        let n = rest.len().min((base + seg_size - pos) as usize);
        let exists = existing.contains(&base);
        if exists || last.is_none_or(|l| base > l) {
            let path = cfg.dir.join(segment::file_name(base));
            let file = disk()
                .open(&path, Open::Create)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            let io_err = |e| Error::io(format!("write back into {}", path.display()), e);
            if !exists {
                file.set_len(seg_size).map_err(io_err)?;
                created = true;
            }
            file.write_all_at(&rest[..n], pos - base).map_err(io_err)?;
            direct_file::sync_data(&file, &path)?;
        }
        pos += n as u64;
        rest = &rest[n..];
    }
    if created {
        direct_file::sync_dir(&cfg.dir)?;
    }
    Ok(())
}

struct RingHeader {
    capacity: u64,
    id: u64,
    lo: u64,
    hi: u64,
    dir: Vec<u8>,
}

fn read_header(file: &GateFile) -> std::io::Result<Option<RingHeader>> {
    let len = file.size()?;
    if len < 3 * PAGE as u64 || !len.is_multiple_of(PAGE as u64) {
        return Ok(None);
    }
    let capacity = len - PAGE as u64;
    let mut page = vec![0u8; PAGE];
    file.read_exact_at(&mut page, capacity)?;
    let u64_at = |at: usize| u64::from_le_bytes(page[at..at + 8].try_into().expect("8 bytes"));
    let dir_len = u64_at(header_at::DIR_LEN) as usize;
    if u64_at(header_at::MAGIC) != MAGIC
        || u64_at(header_at::CAPACITY) != capacity
        || dir_len > DIR_MAX
    {
        return Ok(None);
    }
    Ok(Some(RingHeader {
        capacity,
        id: u64_at(header_at::ID),
        lo: u64_at(header_at::LO),
        hi: u64_at(header_at::HI),
        dir: page[header_at::DIR..header_at::DIR + dir_len].to_vec(),
    }))
}

/// Removes ring files whose store directory is gone (a test's or a deleted store's ring
/// left by a crash). Best effort.
fn remove_orphans(shm: &Path) {
    let Ok(entries) = disk().list(shm) else {
        return;
    };
    for entry in entries {
        if !entry.name.to_string_lossy().starts_with(PREFIX) {
            continue;
        }
        let path = shm.join(&entry.name);
        let Ok(file) = disk().open(&path, Open::Read) else {
            continue;
        };
        if let Ok(Some(h)) = read_header(&file) {
            let dir = Path::new(std::ffi::OsStr::from_bytes(&h.dir));
            if !gate::exists(dir) {
                let _ = disk().remove_file(&path);
            }
        }
    }
}

fn canonical(dir: &Path) -> Result<PathBuf> {
    disk()
        .create_dir_all(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    disk()
        .canonicalize(dir)
        .map_err(|e| Error::io(format!("resolve {}", dir.display()), e))
}
