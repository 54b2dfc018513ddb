//! Start-up: the checkpoint, the abort marker, and the scan that finds where the valid
//! log ends.
//!
//! A clean shutdown leaves a checkpoint whose offset is the log's end and removes the
//! `abort` marker. After a kill the marker is still there: the scan starts at the last
//! checkpoint (a record boundary below which the log and the ConsumeQueues were durable),
//! re-verifies every record by magic, size, position and body CRC, and stops at the first
//! one that fails. Everything past that point is a torn or never-acknowledged tail: it is
//! zeroed, so a later scan can never mistake stale bytes for records.
//!
//! The abort marker names the tail ring of the run that wrote it (`ring=<id>`): when that
//! ring is still in shared memory, its bytes are written back into the log before the
//! scan (see `crash_tail`), so every append answered from it is found.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::crash_tail;
use super::segment::{self, SegmentFile};
use super::CommitLogConfig;
use crate::io::direct_file;
use crate::io::gate::{self, disk, GateFile, Open};
use crate::meta::atomic_file;
use crate::record::{self, Parsed};
use crate::{Error, Result};

/// What the checkpoint file records.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Checkpoint {
    /// A record boundary: the log below it is durable and fully dispatched into durable
    /// ConsumeQueues.
    pub phys_offset: i64,
    pub timestamp_ms: i64,
}

pub fn checkpoint_path(root: &Path) -> PathBuf {
    root.join("checkpoint")
}

pub fn abort_path(root: &Path) -> PathBuf {
    root.join("abort")
}

/// The abort marker's content for a run whose tail ring is `ring_id`.
pub fn abort_marker(ring_id: u64) -> String {
    format!("ring={ring_id}\n")
}

/// The tail ring an abort marker names (None: an empty or older marker).
pub fn ring_of_abort_marker(root: &Path) -> Option<u64> {
    let bytes = gate::read_whole(&abort_path(root)).ok()??;
    let text = String::from_utf8(bytes).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("ring="))
        .and_then(|id| id.trim().parse().ok())
}

pub fn read_checkpoint(root: &Path) -> Result<Option<Checkpoint>> {
    let path = checkpoint_path(root);
    match atomic_file::read_if_exists(&path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|source| Error::Json { path, source }),
    }
}

pub fn write_checkpoint(root: &Path, cp: &Checkpoint) -> Result<()> {
    let bytes = serde_json::to_vec(cp).expect("checkpoint serializes");
    atomic_file::write_atomically(&checkpoint_path(root), &bytes)
}

/// The outcome of the start-up scan.
#[derive(Debug, Clone)]
pub struct Recovered {
    /// End of the valid log: where the writer continues.
    pub end: u64,
    /// Where the scan started; the ConsumeQueues are re-dispatched from here.
    pub scanned_from: u64,
    /// Bytes of torn or unacknowledged tail that were cut.
    pub cut_bytes: u64,
    /// What the crashed run's tail ring gave back, if anything.
    pub salvaged: Option<crash_tail::Salvaged>,
}

/// Finds the end of the valid log in `cfg.dir`, starting at `from` (the checkpoint), and
/// cuts whatever follows it when `abnormal`. After a crash (`abnormal`), the tail ring
/// `crashed_ring` (from the abort marker) is written back first.
pub fn recover(
    cfg: &CommitLogConfig,
    from: Option<u64>,
    abnormal: bool,
    crashed_ring: Option<u64>,
) -> Result<Recovered> {
    disk()
        .create_dir_all(&cfg.dir)
        .map_err(|e| Error::io(format!("create {}", cfg.dir.display()), e))?;
    let salvaged = match crashed_ring {
        Some(id) if abnormal => crash_tail::salvage(cfg, id)?,
        _ => None,
    };
    let mut bases = segment::list(&cfg.dir)?;
    drop_unprepared_segment(cfg, &mut bases)?;
    let Some(&first) = bases.first() else {
        return Ok(Recovered {
            end: from.unwrap_or(0),
            scanned_from: from.unwrap_or(0),
            cut_bytes: 0,
            salvaged,
        });
    };
    let seg_size = cfg.segment_size;
    let last_end = bases.last().expect("non-empty") + seg_size;
    let start = match from {
        Some(off) if off >= first && off <= last_end => off,
        Some(off) => {
            tracing::warn!(
                checkpoint = off,
                first,
                "checkpoint lies outside the CommitLog files; scanning from the first file"
            );
            first
        }
        None => first,
    };
    let end = scan(cfg, &bases, start)?;
    // Everything in existing files past `end` is cut.
    let mut cut = 0u64;
    for &base in &bases {
        let path = cfg.dir.join(segment::file_name(base));
        if base + seg_size <= end {
            continue; // wholly valid
        } else if base > end {
            // A segment past the end holds nothing that was acknowledged.
            cut += seg_size;
            disk()
                .remove_file(&path)
                .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
        } else if abnormal {
            // The segment the log ends in: zero its tail so stale bytes never parse.
            let file = disk()
                .open(&path, Open::ReadWrite)
                .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
            cut += seg_size - (end - base);
            direct_file::zero_range(&file, &path, end - base, seg_size)?;
            direct_file::sync_data(&file, &path)?;
        }
    }
    if cut > 0 {
        direct_file::sync_dir(&cfg.dir)?;
    }
    Ok(Recovered {
        end,
        scanned_from: start,
        cut_bytes: cut,
        salvaged,
    })
}

/// A crash between creating a segment and preallocating it leaves an empty file (its
/// name reached the disk, its size did not). Nothing was ever written to it (the writer
/// only uses a segment once it has its full size), so when no later segment holds a
/// record either (the preallocator may have made the next one, still blank), the empty
/// file and the blank ones after it go, and the log ends at its base at most. Any
/// other size that differs from `mappedFileSizeCommitLog`, or an empty file before a
/// segment with records, is refused when the file opens.
fn drop_unprepared_segment(cfg: &CommitLogConfig, bases: &mut Vec<u64>) -> Result<()> {
    let stat = |base: u64| -> Result<(PathBuf, GateFile, u64)> {
        let path = cfg.dir.join(segment::file_name(base));
        let file = disk()
            .open(&path, Open::Read)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        let len = file
            .size()
            .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
        Ok((path, file, len))
    };
    let mut empty = None;
    for (i, &base) in bases.iter().enumerate() {
        if stat(base)?.2 == 0 {
            empty = Some(i);
            break;
        }
    }
    let Some(i) = empty else {
        return Ok(());
    };
    for &later in &bases[i + 1..] {
        let (path, file, len) = stat(later)?;
        let mut head = [0u8; 8];
        let n = file
            .read_full_at(&mut head[..len.min(8) as usize], 0)
            .map_err(|e| Error::io(format!("read {}", path.display()), e))?;
        if head[..n].iter().any(|&b| b != 0) {
            return Ok(());
        }
    }
    for &base in &bases[i..] {
        let path = cfg.dir.join(segment::file_name(base));
        tracing::warn!(path = %path.display(), "segment whose creation a crash cut (empty, or blank after one): removed");
        disk()
            .remove_file(&path)
            .map_err(|e| Error::io(format!("remove {}", path.display()), e))?;
    }
    direct_file::sync_dir(&cfg.dir)?;
    bases.truncate(i);
    Ok(())
}

/// Reads records from `start` on; returns the offset just past the last valid one.
fn scan(cfg: &CommitLogConfig, bases: &[u64], start: u64) -> Result<u64> {
    const CHUNK: usize = 8 << 20;
    let seg_size = cfg.segment_size;
    let mut pos = start;
    let mut buf = vec![0u8; CHUNK.max(cfg.max_record_size() as usize)];
    'segments: loop {
        let base = pos - pos % seg_size;
        if !bases.contains(&base) {
            return Ok(pos);
        }
        let seg = SegmentFile::open(&cfg.dir, base, seg_size, false)?;
        let file = seg.read_file();
        loop {
            let in_file = pos - base;
            if in_file == seg_size {
                continue 'segments;
            }
            let want = buf.len().min((seg_size - in_file) as usize);
            let got = read_full(file, &mut buf[..want], in_file, &seg.path)?;
            let mut at = 0usize;
            while at < got {
                match record::parse(&buf[at..got], pos as i64, true) {
                    Ok(Parsed::Record(view))
                        if view.physical_offset() == pos as i64 && record::looks_whole(&view) =>
                    {
                        let size = view.total_size() as usize;
                        at += size;
                        pos += size as u64;
                    }
                    Ok(Parsed::Blank { remaining })
                        if remaining as u64 == seg_size - (pos - base) =>
                    {
                        pos = base + seg_size;
                        continue 'segments;
                    }
                    Ok(Parsed::Incomplete)
                        if at > 0 && got == want && in_file + (got as u64) < seg_size =>
                    {
                        break
                    }
                    Ok(Parsed::Record(view)) => {
                        tracing::warn!(
                            offset = pos,
                            stored = view.physical_offset(),
                            "torn or misplaced record: end of the valid log"
                        );
                        return Ok(pos);
                    }
                    Ok(_) => return Ok(pos),
                    Err(e) => {
                        tracing::debug!(offset = pos, error = %e, "end of the valid log");
                        return Ok(pos);
                    }
                }
            }
            if at == 0 {
                return Ok(pos);
            }
        }
    }
}

fn read_full(file: &GateFile, buf: &mut [u8], offset: u64, path: &Path) -> Result<usize> {
    file.read_full_at(buf, offset)
        .map_err(|e| Error::io(format!("read {}", path.display()), e))
}
