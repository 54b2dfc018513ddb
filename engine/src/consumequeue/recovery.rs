//! Opening a ConsumeQueue after a restart or a crash: find `[min_offset, max_offset)` from
//! the files on disk and restore the invariants of `queue` (nothing valid at or above
//! `max_offset`, no file above the one holding it). Runs once per queue at open, on the
//! thread opening the store, before the queue is shared.
//!
//! RocketMQ's rule: the queue ends at the first invalid entry of its last file. An empty
//! last file after a partly filled one means the crash lost the previous file's tail, so
//! that one is the last. Stale bytes a lost page left above the end are zeroed.

use std::path::Path;

use tracing::warn;

use super::entry::{CqEntry, CQ_ENTRY_SIZE, ENTRY_BYTES};
use super::file_io::{read_full_at, scrub_file};
use super::files::{fsync_dirs, remove_files, CqFile, Files};
use super::search::partition_point;
use crate::{Error, Result};

/// Entries read per `pread` while scanning a file at open.
const SCAN_CHUNK_ENTRIES: usize = 4096;

/// Which queue is recovered, for log lines.
pub(super) struct QueueName<'a> {
    pub topic: &'a str,
    pub queue_id: i32,
}

/// Establishes `(min_offset, max_offset)` of the queue whose files in `dir` are `files`
/// (`epf` entries each), deleting files above the end, zeroing stale bytes above it and
/// fsyncing what it changed.
pub(super) fn recover(
    files: &mut Files,
    dir: &Path,
    epf: i64,
    name: QueueName<'_>,
) -> Result<(i64, i64)> {
    let first_index = files.first_index;
    let n = files.list.len() as i64;
    if n == 0 {
        return Ok((first_index * epf, first_index * epf));
    }
    let mut last = first_index + n - 1;
    let mut valid = count_valid(file(files, last), epf)?;
    if valid == 0 && n >= 2 {
        // An empty last file: the previous one may have lost its tail in a crash.
        let prev = count_valid(file(files, last - 1), epf)?;
        if prev < epf {
            last -= 1;
            valid = prev;
        }
    }
    let max = last * epf + valid;
    let keep = (last - files.first_index + 1) as usize;
    let removed = files.list.split_off(keep);
    if !removed.is_empty() {
        warn!(topic = %name.topic, queue_id = name.queue_id, max,
              files = removed.len(), "deleting consume queue files above the end");
        remove_files(&removed)?;
        fsync_dirs(dir)?;
    }
    if let Some(f) = files.get(max / epf) {
        scrub_above(f, max, epf, &name)?;
    }
    // Pre-blank fillers are a prefix of the first file.
    let first_valid = if last == first_index { valid } else { epf };
    let first_start = first_index * epf;
    let first = file(files, first_index);
    let min = partition_point(first_start, first_start + first_valid, |k| {
        Ok(first.read_entry(k - first_start)?.is_blank())
    })?;
    Ok((min, max))
}

fn file(files: &Files, index: i64) -> &CqFile {
    files.get(index).expect("file listed at open")
}

/// Number of valid entries at the start of `file` (up to the first invalid one).
fn count_valid(file: &CqFile, epf: i64) -> Result<i64> {
    let mut buf = vec![0u8; SCAN_CHUNK_ENTRIES * CQ_ENTRY_SIZE];
    let mut count = 0i64;
    while count < epf {
        let want = ((epf - count) as usize).min(SCAN_CHUNK_ENTRIES);
        let got = read_full_at(
            &file.file,
            &mut buf[..want * CQ_ENTRY_SIZE],
            (count * ENTRY_BYTES) as u64,
        )
        .map_err(|e| Error::io(format!("pread {}", file.path.display()), e))?;
        let whole = got / CQ_ENTRY_SIZE;
        for chunk in buf[..whole * CQ_ENTRY_SIZE].chunks_exact(CQ_ENTRY_SIZE) {
            if !CqEntry::decode(chunk).is_valid() {
                return Ok(count);
            }
            count += 1;
        }
        if whole < want {
            break; // short file
        }
    }
    Ok(count)
}

/// Zeroes stale non-zero bytes above `max` in `file`, the file holding it (left by a crash
/// that lost a page in the middle), skipping holes with SEEK_DATA.
fn scrub_above(file: &CqFile, max: i64, epf: i64, name: &QueueName<'_>) -> Result<()> {
    let from = ((max % epf) * ENTRY_BYTES) as u64;
    let zeroed = scrub_file(&file.file, from, (epf * ENTRY_BYTES) as u64)
        .map_err(|e| Error::io(format!("scrub {}", file.path.display()), e))?;
    if zeroed > 0 {
        warn!(topic = %name.topic, queue_id = name.queue_id, max, bytes = zeroed,
              "zeroed stale consume queue bytes above the recovered end");
        file.file
            .sync_data()
            .map_err(|e| Error::io(format!("fdatasync {}", file.path.display()), e))?;
    }
    Ok(())
}
