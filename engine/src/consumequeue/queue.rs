//! One ConsumeQueue: the index of one (topic, queueId), an array of 20-byte entries kept in
//! fixed-size files under `<root>/<topic>/<queueId>/<20-digit start byte offset>`.
//!
//! Writer: only the dispatcher thread calls [`ConsumeQueue::put`] and
//! [`ConsumeQueue::truncate_to_phys`] (a Mutex serialises them anyway). Readers: any thread
//! (net threads serving pulls and offset queries) reads with `pread`, never above the
//! published `max_offset`.
//!
//! Invariants, kept by open, put, truncate:
//! - entries `[min_offset, max_offset)` are valid (`phys_offset >= 0 && size > 0`), in
//!   CommitLog order;
//! - every byte at or above `max_offset` in the files is zero, and no file starts above the
//!   file holding `max_offset`, so reopening finds `max_offset` again by scanning forward to
//!   the first invalid entry (RocketMQ's recovery rule);
//! - entries of the first file below `min_offset` are RocketMQ's "pre-blank" fillers
//!   ([`CqEntry::BLANK`]), written when a queue starts at a non-zero offset (a fresh slave).
//!
//! Open restores them with `recovery`; the files themselves are `files`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};

use tracing::{info, warn};

use super::entry::{CqEntry, CQ_ENTRY_SIZE, ENTRY_BYTES};
use super::file_io::{read_full_at, zero_range};
use super::files::{create_file, fsync_dirs, list_files, remove_files, CqFile, Files};
use super::recovery::{self, QueueName};
use super::search::{self, partition_point};
use crate::sync::{lock, read, write};
use crate::{Error, Result};

#[derive(Default)]
struct WriterState {
    /// Files written since the last flush (deduplicated against the last one pushed).
    dirty: Vec<Arc<CqFile>>,
    /// A file was created or deleted since the last flush.
    dir_dirty: bool,
    /// Set by the first failed fdatasync; every later flush fails with it. After a failed
    /// fsync the kernel may have dropped the dirty pages and a retry reports success
    /// without syncing them, so nothing written before it can ever be called durable.
    /// The checkpoint then stops moving and the next start re-dispatches from the
    /// CommitLog, rewriting the entries.
    sync_failed: Option<String>,
}

impl WriterState {
    /// Fails when an earlier fdatasync of this queue failed (see `sync_failed`).
    fn check_synced(&self) -> Result<()> {
        match &self.sync_failed {
            Some(why) => Err(Error::Io {
                context: format!("{why}; the ConsumeQueue is not flushed again until restart"),
                source: std::io::ErrorKind::Other.into(),
            }),
            None => Ok(()),
        }
    }

    /// Records a failed fdatasync for good and returns its error.
    fn sync_failed(&mut self, why: String, e: std::io::Error) -> Error {
        tracing::error!("{why}; the ConsumeQueue refuses every later flush until restart");
        let context = why.clone();
        self.sync_failed.get_or_insert(why);
        Error::io(context, e)
    }

    fn mark_dirty(&mut self, f: &Arc<CqFile>) {
        if !self.dirty.iter().rev().take(2).any(|d| Arc::ptr_eq(d, f)) {
            self.dirty.push(Arc::clone(f));
        }
    }
}

/// The ConsumeQueue of one (topic, queueId). See the module docs for who calls what.
pub struct ConsumeQueue {
    topic: String,
    queue_id: i32,
    dir: PathBuf,
    entries_per_file: i64,
    min_offset: AtomicI64,
    /// Published with Release after the entry bytes are written; readers load Acquire.
    max_offset: AtomicI64,
    files: RwLock<Files>,
    writer: Mutex<WriterState>,
}

impl std::fmt::Debug for ConsumeQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumeQueue")
            .field("topic", &self.topic)
            .field("queue_id", &self.queue_id)
            .field("min_offset", &self.min_offset())
            .field("max_offset", &self.max_offset())
            .finish()
    }
}

impl ConsumeQueue {
    /// Opens the queue stored under `root/<topic>/<queue_id>/` (`root` is the `consumequeue`
    /// directory). A missing directory is an empty queue; nothing is created until the first
    /// `put`. Finds `max_offset` by scanning the last file forward to its first invalid
    /// entry, zeroes any stale bytes above it and deletes files that start above it.
    pub fn open(root: &Path, topic: &str, queue_id: i32, entries_per_file: usize) -> Result<Self> {
        let epf = i64::try_from(entries_per_file)
            .ok()
            .filter(|&n| n > 0 && n.checked_mul(ENTRY_BYTES).is_some())
            .ok_or_else(|| Error::Invalid(format!("entries_per_file {entries_per_file}")))?;
        let dir = root.join(topic).join(queue_id.to_string());
        let mut files = list_files(&dir, epf)?;
        let (min, max) = recovery::recover(&mut files, &dir, epf, QueueName { topic, queue_id })?;
        Ok(ConsumeQueue {
            topic: topic.to_owned(),
            queue_id,
            dir,
            entries_per_file: epf,
            min_offset: AtomicI64::new(min),
            max_offset: AtomicI64::new(max),
            files: RwLock::new(files),
            writer: Mutex::new(WriterState::default()),
        })
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    pub fn queue_id(&self) -> i32 {
        self.queue_id
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn entries_per_file(&self) -> usize {
        self.entries_per_file as usize
    }

    /// Offset of the oldest entry present (0 for a new queue).
    pub fn min_offset(&self) -> i64 {
        self.min_offset.load(Ordering::Acquire)
    }

    /// Number of entries ever written = the offset the next message gets.
    pub fn max_offset(&self) -> i64 {
        self.max_offset.load(Ordering::Acquire)
    }

    /// First queue offset of the file after the one holding `qoffset` (a pull traverses one
    /// file per request).
    pub fn file_end_offset(&self, qoffset: i64) -> i64 {
        (qoffset.div_euclid(self.entries_per_file) + 1) * self.entries_per_file
    }

    /// The entry at `qoffset`, or None outside `[min_offset, max_offset)`.
    pub fn get(&self, qoffset: i64) -> Result<Option<CqEntry>> {
        let max = self.max_offset.load(Ordering::Acquire);
        let min = self.min_offset.load(Ordering::Acquire);
        if qoffset < min || qoffset >= max {
            return Ok(None);
        }
        let e = self.read_slot(qoffset)?;
        Ok((e.is_valid() && !e.is_blank()).then_some(e))
    }

    /// Up to `max_entries` entries from `from`, with one `pread`; stops at `max_offset` and at
    /// the end of the file holding `from`. Empty outside `[min_offset, max_offset)`.
    pub fn read(&self, from: i64, max_entries: usize) -> Result<Vec<CqEntry>> {
        // max before min: a concurrent upward rebase stores min first, so this order never
        // sees a non-empty range that was not published.
        let max = self.max_offset.load(Ordering::Acquire);
        let min = self.min_offset.load(Ordering::Acquire);
        if from < min || from >= max || max_entries == 0 {
            return Ok(Vec::new());
        }
        let in_file = from % self.entries_per_file;
        let n = (max - from)
            .min(self.entries_per_file - in_file)
            .min(i64::try_from(max_entries).unwrap_or(i64::MAX)) as usize;
        let Some(file) = self.file(from / self.entries_per_file) else {
            return Ok(Vec::new()); // removed by a concurrent truncate or rebase
        };
        let mut buf = vec![0u8; n * CQ_ENTRY_SIZE];
        read_full_at(&file.file, &mut buf, (in_file * ENTRY_BYTES) as u64)
            .map_err(|e| Error::io(format!("pread {}", file.path.display()), e))?;
        // A concurrent truncate zeroes entries after lowering max_offset; stop at the first
        // slot that is not a written entry.
        Ok(buf
            .chunks_exact(CQ_ENTRY_SIZE)
            .map(CqEntry::decode)
            .take_while(|e| e.is_valid() && !e.is_blank())
            .collect())
    }

    /// The entry at `max_offset - 1`, if the queue holds any.
    pub fn last_entry(&self) -> Result<Option<CqEntry>> {
        let max = self.max_offset();
        if max <= self.min_offset() {
            return Ok(None);
        }
        self.get(max - 1)
    }

    /// Writes `entry` at `queue_offset`. Re-putting an offset below `max_offset` overwrites
    /// the same 20 bytes (re-dispatch after a crash); `queue_offset == max_offset` appends.
    /// Above `max_offset` is a gap and is refused, except on a queue holding no entries,
    /// which then starts at `queue_offset` (RocketMQ's pre-blank fill: a fresh slave's
    /// first message of a queue has a non-zero offset). Below `min_offset` is refused.
    pub fn put(&self, queue_offset: i64, entry: CqEntry) -> Result<()> {
        if !entry.is_valid() || entry.is_blank() {
            return Err(Error::Invalid(format!(
                "consume queue entry {entry:?} for {}:{} at {queue_offset}",
                self.topic, self.queue_id
            )));
        }
        let mut w = self.lock_writer();
        let mut max = self.max_offset.load(Ordering::Relaxed);
        let min = self.min_offset.load(Ordering::Relaxed);
        if queue_offset > max && min == max {
            self.rebase(&mut w, queue_offset)?;
            max = queue_offset;
        } else if queue_offset > max || queue_offset < min {
            warn!(
                topic = %self.topic, queue_id = self.queue_id, queue_offset, min, max,
                "consume queue put outside [min, max]: refused, nothing filled"
            );
            return Err(Error::Invalid(format!(
                "consume queue {}:{} put at {queue_offset} outside [{min}, {max}]",
                self.topic, self.queue_id
            )));
        }
        let file = self.file_for_write(&mut w, queue_offset)?;
        let pos = (queue_offset % self.entries_per_file) * ENTRY_BYTES;
        file.file
            .write_all_at(&entry.encode(), pos as u64)
            .map_err(|e| Error::io(format!("pwrite {}", file.path.display()), e))?;
        w.mark_dirty(&file);
        if queue_offset == max {
            self.max_offset.store(max + 1, Ordering::Release);
        }
        Ok(())
    }

    /// Writes `entries` at the consecutive offsets `first, first + 1, ...`: the same bytes,
    /// checks and `max_offset` as calling [`put`](Self::put) for each in turn, with one
    /// pwrite per file touched instead of one per entry (the dispatcher's path). Refused
    /// with `Invalid` before anything is written when an entry is invalid or `put` would
    /// refuse `first`; once `first` is accepted, each later offset is at most the
    /// `max_offset` its predecessor left, so `put` would accept it too. `max_offset` is
    /// published after each file's write, never ahead of the bytes.
    pub fn put_run(&self, first: i64, entries: &[CqEntry]) -> Result<()> {
        if let Some(bad) = entries.iter().find(|e| !e.is_valid() || e.is_blank()) {
            return Err(Error::Invalid(format!(
                "consume queue entry {bad:?} for {}:{} in a run from {first}",
                self.topic, self.queue_id
            )));
        }
        if entries.is_empty() {
            return Ok(());
        }
        let mut w = self.lock_writer();
        let mut max = self.max_offset.load(Ordering::Relaxed);
        let min = self.min_offset.load(Ordering::Relaxed);
        if first > max && min == max {
            self.rebase(&mut w, first)?;
            max = first;
        } else if first > max || first < min {
            warn!(
                topic = %self.topic, queue_id = self.queue_id, queue_offset = first, min, max,
                "consume queue put outside [min, max]: refused, nothing filled"
            );
            return Err(Error::Invalid(format!(
                "consume queue {}:{} put at {first} outside [{min}, {max}]",
                self.topic, self.queue_id
            )));
        }
        let epf = self.entries_per_file;
        let mut bytes = Vec::with_capacity(entries.len().min(epf as usize) * CQ_ENTRY_SIZE);
        let mut done = 0usize;
        while done < entries.len() {
            let qoffset = first + done as i64;
            debug_assert!(qoffset <= max, "a run never leaves a gap");
            let file = self.file_for_write(&mut w, qoffset)?;
            let room = (epf - qoffset % epf) as usize;
            let n = room.min(entries.len() - done);
            bytes.clear();
            for e in &entries[done..done + n] {
                bytes.extend_from_slice(&e.encode());
            }
            let pos = (qoffset % epf) * ENTRY_BYTES;
            file.file
                .write_all_at(&bytes, pos as u64)
                .map_err(|e| Error::io(format!("pwrite {}", file.path.display()), e))?;
            w.mark_dirty(&file);
            let end = qoffset + n as i64;
            if end > max {
                max = end;
                self.max_offset.store(end, Ordering::Release);
            }
            done += n;
        }
        Ok(())
    }

    /// Drops every entry whose record ends past `phys_end` (`phys_offset + size > phys_end`):
    /// zeroes them on disk (fdatasync'd before returning), deletes files left entirely above
    /// the new end and lowers `max_offset`. Entries are in CommitLog order, so the cut is
    /// found by binary search.
    pub fn truncate_to_phys(&self, phys_end: i64) -> Result<()> {
        let mut w = self.lock_writer();
        let max = self.max_offset.load(Ordering::Relaxed);
        let min = self.min_offset.load(Ordering::Relaxed);
        let cut = partition_point(min, max, |k| Ok(self.read_slot(k)?.phys_end() <= phys_end))?;
        if cut == max {
            return Ok(());
        }
        info!(
            topic = %self.topic, queue_id = self.queue_id, phys_end, from = max, to = cut,
            "consume queue truncated"
        );
        self.max_offset.store(cut, Ordering::Release);
        self.zero_entries(&mut w, cut, max)?;
        let cut_index = cut / self.entries_per_file;
        let removed = {
            let mut files = self.files_write();
            let keep = usize::try_from(cut_index - files.first_index + 1).unwrap_or(0);
            let keep = keep.min(files.list.len());
            files.list.split_off(keep)
        };
        if !removed.is_empty() {
            remove_files(&removed)?;
            w.dir_dirty = true;
        }
        self.sync_dirs(&mut w)
    }

    /// fdatasync of the files written since the last flush (and of the directory when files
    /// were created or deleted). The writer keeps putting while this runs.
    pub fn flush(&self) -> Result<()> {
        let (dirty, dir_dirty) = {
            let mut w = self.lock_writer();
            w.check_synced()?;
            (
                std::mem::take(&mut w.dirty),
                std::mem::take(&mut w.dir_dirty),
            )
        };
        for f in &dirty {
            if let Err(e) = sync_data(&f.file) {
                let why = format!("fdatasync {} failed: {e}", f.path.display());
                return Err(self.lock_writer().sync_failed(why, e));
            }
        }
        if dir_dirty {
            if let Err(e) = fsync_dirs(&self.dir) {
                let why = format!("fsync of {} failed: {e}", self.dir.display());
                let mut w = self.lock_writer();
                w.sync_failed.get_or_insert(why);
                return Err(e);
            }
        }
        Ok(())
    }

    /// The queue offset for a time, by binary search over `[min, max)` on the messages' store
    /// timestamps (`store_ts(phys, size)`; None = the record is gone, treated as older than
    /// everything, as RocketMQ treats offsets below the CommitLog's minimum).
    /// Lower boundary (`upper == false`): the first offset whose store time >= `ts_ms`, `max`
    /// if every message is older. Upper: the last offset whose store time <= `ts_ms`, `min`
    /// if every message is newer (RocketMQ returns 0 and clamps it to min). Empty queue: max.
    pub fn search_by_timestamp(
        &self,
        ts_ms: i64,
        upper: bool,
        store_ts: impl Fn(i64, i32) -> Option<i64>,
    ) -> Result<i64> {
        let max = self.max_offset();
        let min = self.min_offset();
        search::by_timestamp(min, max, ts_ms, upper, |k| self.get(k), store_ts)
    }

    // ---- internals -------------------------------------------------------------------

    fn lock_writer(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.writer)
    }

    fn files_read(&self) -> RwLockReadGuard<'_, Files> {
        read(&self.files)
    }

    fn files_write(&self) -> RwLockWriteGuard<'_, Files> {
        write(&self.files)
    }

    fn file(&self, index: i64) -> Option<Arc<CqFile>> {
        self.files_read().get(index).cloned()
    }

    /// Reads slot `k` regardless of min/max (zeros if the file is missing or short).
    fn read_slot(&self, k: i64) -> Result<CqEntry> {
        match self.file(k / self.entries_per_file) {
            Some(file) => file.read_entry(k % self.entries_per_file),
            None => Ok(CqEntry::default()),
        }
    }

    /// Zeroes entries `[from, to)` on disk and fdatasyncs the touched files.
    fn zero_entries(&self, w: &mut WriterState, from: i64, to: i64) -> Result<()> {
        let epf = self.entries_per_file;
        let mut k = from;
        while k < to {
            let end = to.min(self.file_end_offset(k));
            if let Some(file) = self.file(k / epf) {
                let start = (k % epf) * ENTRY_BYTES;
                let range = start as u64..(start + (end - k) * ENTRY_BYTES) as u64;
                let ctx = || format!("zero {}", file.path.display());
                zero_range(&file.file, range).map_err(|e| Error::io(ctx(), e))?;
                if let Err(e) = sync_data(&file.file) {
                    return Err(w.sync_failed(ctx(), e));
                }
            }
            k = end;
        }
        Ok(())
    }

    /// Empties the queue and restarts it at `start` (only when it holds no entries).
    fn rebase(&self, w: &mut WriterState, start: i64) -> Result<()> {
        let old = self.max_offset.load(Ordering::Relaxed);
        debug_assert!(start > old && old == self.min_offset.load(Ordering::Relaxed));
        warn!(topic = %self.topic, queue_id = self.queue_id, from = old, to = start,
              "empty consume queue starts at a later offset (pre-blank fill)");
        // Upward move: min first, so a reader (max then min) never sees a non-empty range.
        self.min_offset.store(start, Ordering::Release);
        self.max_offset.store(start, Ordering::Release);
        let removed = std::mem::take(&mut self.files_write().list);
        if !removed.is_empty() {
            remove_files(&removed)?;
            w.dir_dirty = true;
        }
        self.file_for_write(w, start).map(|_| ())
    }

    /// The file for writing `qoffset` (<= max_offset), created when it is the next one; a
    /// first file of a queue starting mid-file gets the pre-blank fillers.
    fn file_for_write(&self, w: &mut WriterState, qoffset: i64) -> Result<Arc<CqFile>> {
        let epf = self.entries_per_file;
        let index = qoffset / epf;
        let (existing, end_index, empty) = {
            let f = self.files_read();
            (f.get(index).cloned(), f.end_index(), f.list.is_empty())
        };
        if let Some(f) = existing {
            return Ok(f);
        }
        if !empty && index != end_index {
            return Err(Error::Invalid(format!(
                "consume queue {}:{}: no file for offset {qoffset}",
                self.topic, self.queue_id
            )));
        }
        let file = Arc::new(create_file(&self.dir, index, epf)?);
        w.dir_dirty = true;
        let blanks = qoffset - index * epf;
        if empty && blanks > 0 {
            let blank: Vec<u8> = CqEntry::BLANK.encode().repeat(blanks as usize);
            file.file
                .write_all_at(&blank, 0)
                .map_err(|e| Error::io(format!("pwrite {}", file.path.display()), e))?;
            w.mark_dirty(&file);
        }
        let mut files = self.files_write();
        if files.list.is_empty() {
            files.first_index = index;
        }
        files.list.push(Arc::clone(&file));
        Ok(file)
    }

    /// fsyncs the queue directory and its two parents (created lazily) if `w.dir_dirty`.
    fn sync_dirs(&self, w: &mut WriterState) -> Result<()> {
        w.check_synced()?;
        if !std::mem::take(&mut w.dir_dirty) {
            return Ok(());
        }
        fsync_dirs(&self.dir).inspect_err(|e| {
            w.dir_dirty = true;
            w.sync_failed
                .get_or_insert(format!("fsync of {}: {e}", self.dir.display()));
        })
    }
}

/// fdatasync of a ConsumeQueue file (with the test fault hook).
fn sync_data(file: &crate::io::gate::GateFile) -> std::io::Result<()> {
    if crate::io::faults::cq_sync_should_fail() {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    file.sync_data()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::sync::atomic::AtomicBool;

    fn entry(k: i64) -> CqEntry {
        CqEntry {
            phys_offset: k * 100,
            size: 100,
            tags_code: k ^ 0x5a5a,
        }
    }

    fn open(root: &Path, epf: usize) -> ConsumeQueue {
        ConsumeQueue::open(root, "TopicTest", 3, epf).unwrap()
    }

    fn fill(q: &ConsumeQueue, n: i64) {
        for k in q.max_offset()..n {
            q.put(k, entry(k)).unwrap();
        }
    }

    fn file_names(q: &ConsumeQueue) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(q.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn put_get_read_across_file_boundary() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 4);
        assert_eq!((q.min_offset(), q.max_offset()), (0, 0));
        assert_eq!(q.get(0).unwrap(), None);
        assert!(!q.dir().exists(), "directories are created lazily");
        fill(&q, 10);
        assert_eq!(q.max_offset(), 10);
        assert_eq!(
            file_names(&q),
            [
                "00000000000000000000",
                "00000000000000000080",
                "00000000000000000160"
            ]
        );
        for k in 0..10 {
            assert_eq!(q.get(k).unwrap(), Some(entry(k)));
        }
        assert_eq!(q.get(10).unwrap(), None);
        assert_eq!(q.get(-1).unwrap(), None);
        // one read stops at the file end, then at max
        assert_eq!(q.read(2, 100).unwrap(), vec![entry(2), entry(3)]);
        assert_eq!(q.read(4, 3).unwrap(), vec![entry(4), entry(5), entry(6)]);
        assert_eq!(q.read(8, 100).unwrap(), vec![entry(8), entry(9)]);
        assert!(q.read(10, 100).unwrap().is_empty());
        assert_eq!(q.last_entry().unwrap(), Some(entry(9)));
        assert_eq!(q.file_end_offset(5), 8);
        q.flush().unwrap();
        let raw = fs::read(q.dir().join("00000000000000000080")).unwrap();
        assert_eq!(raw.len(), 80);
        assert_eq!(&raw[20..40], &entry(5).encode());
    }

    #[test]
    fn reopen_finds_same_max_and_idempotent_reput() {
        let dir = tempfile::tempdir().unwrap();
        for n in [0, 1, 4, 7, 8, 9] {
            let root = dir.path().join(n.to_string());
            let q = open(&root, 4);
            fill(&q, n);
            if n > 0 {
                q.put(n / 2, entry(n / 2)).unwrap(); // re-put below max: max unchanged
            }
            assert_eq!(q.max_offset(), n);
            q.flush().unwrap();
            drop(q);
            let q = open(&root, 4);
            assert_eq!((q.min_offset(), q.max_offset()), (0, n), "n={n}");
            let all: Vec<_> = (0..n).map(|k| q.get(k).unwrap().unwrap()).collect();
            assert_eq!(all, (0..n).map(entry).collect::<Vec<_>>());
            fill(&q, n + 3);
            assert_eq!(q.read(n, 1).unwrap(), vec![entry(n)]);
        }
    }

    #[test]
    fn gap_and_below_min_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 4);
        fill(&q, 5);
        assert!(matches!(q.put(7, entry(7)), Err(Error::Invalid(_))));
        assert!(matches!(q.put(6, entry(6)), Err(Error::Invalid(_))));
        assert!(matches!(
            q.put(5, CqEntry::default()),
            Err(Error::Invalid(_))
        ));
        assert_eq!(q.max_offset(), 5);
        assert_eq!(q.read(5, 10).unwrap(), vec![]);
        assert_eq!(
            q.read_slot(6).unwrap(),
            CqEntry::default(),
            "nothing filled"
        );
        q.put(5, entry(5)).unwrap();
        assert_eq!(q.max_offset(), 6);
    }

    #[test]
    fn empty_queue_starts_at_a_later_offset_with_blanks() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 4);
        q.put(6, entry(6)).unwrap();
        q.put(7, entry(7)).unwrap();
        q.put(8, entry(8)).unwrap();
        assert_eq!((q.min_offset(), q.max_offset()), (6, 9));
        assert_eq!(q.get(5).unwrap(), None);
        assert_eq!(q.read(6, 10).unwrap(), vec![entry(6), entry(7)]);
        assert!(matches!(q.put(5, entry(5)), Err(Error::Invalid(_))));
        assert_eq!(
            file_names(&q),
            ["00000000000000000080", "00000000000000000160"]
        );
        q.flush().unwrap();
        drop(q);
        let q = open(dir.path(), 4);
        assert_eq!((q.min_offset(), q.max_offset()), (6, 9));
        assert_eq!(q.get(6).unwrap(), Some(entry(6)));
    }

    #[test]
    fn truncate_to_phys_drops_exactly_past_the_end_across_files() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 4);
        fill(&q, 11); // files 0..4, 4..8, 8..11; entry k ends at k*100+100
        q.truncate_to_phys(2000).unwrap(); // above everything: no-op
        assert_eq!(q.max_offset(), 11);
        q.truncate_to_phys(650).unwrap(); // entry 6 ends at 700 > 650; entry 5 ends at 600
        assert_eq!(q.max_offset(), 6);
        assert_eq!(q.last_entry().unwrap(), Some(entry(5)));
        assert_eq!(q.get(6).unwrap(), None);
        assert_eq!(
            file_names(&q),
            ["00000000000000000000", "00000000000000000080"]
        );
        let raw = fs::read(q.dir().join("00000000000000000080")).unwrap();
        assert!(raw[40..].iter().all(|&b| b == 0));
        drop(q);
        let q = open(dir.path(), 4);
        assert_eq!(q.max_offset(), 6);
        q.truncate_to_phys(400).unwrap(); // exactly at a file boundary: entry 3 ends at 400
        assert_eq!(q.max_offset(), 4);
        drop(q);
        let q = open(dir.path(), 4);
        assert_eq!(q.max_offset(), 4);
        fill(&q, 9);
        assert_eq!(q.read(4, 9).unwrap(), (4..8).map(entry).collect::<Vec<_>>());
        q.truncate_to_phys(-1).unwrap();
        assert_eq!((q.min_offset(), q.max_offset()), (0, 0));
        drop(q);
        assert_eq!(open(dir.path(), 4).max_offset(), 0);
    }

    #[test]
    fn reopen_zeroes_stale_entries_after_a_lost_page() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 8);
        fill(&q, 7);
        // A crash lost entry 3 but kept 4..7: the queue ends at 3 and 4..7 must not come back.
        let f = q.file(0).unwrap();
        f.file.write_all_at(&[0u8; 20], 60).unwrap();
        drop(f);
        drop(q);
        let q = open(dir.path(), 8);
        assert_eq!(q.max_offset(), 3);
        q.put(3, entry(3)).unwrap();
        drop(q);
        assert_eq!(open(dir.path(), 8).max_offset(), 4);
    }

    #[test]
    fn concurrent_reader_never_sees_a_half_written_entry() {
        const N: i64 = 100_000;
        let dir = tempfile::tempdir().unwrap();
        let q = Arc::new(open(dir.path(), 1000));
        let done = Arc::new(AtomicBool::new(false));
        let reader = {
            let (q, done) = (Arc::clone(&q), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut next = 0i64;
                let mut checks = 0u64;
                while next < N {
                    let max = q.max_offset();
                    if max > 0 {
                        let last = q.get(max - 1).unwrap().expect("published entry");
                        assert_eq!(last, entry(max - 1));
                    }
                    for e in q.read(next, 333).unwrap() {
                        assert_eq!(e, entry(next));
                        next += 1;
                        checks += 1;
                    }
                    if done.load(Ordering::Acquire) && next >= q.max_offset() {
                        break;
                    }
                }
                (next, checks)
            })
        };
        for k in 0..N {
            q.put(k, entry(k)).unwrap();
            if k % 25_000 == 0 {
                q.flush().unwrap();
            }
        }
        done.store(true, Ordering::Release);
        let (next, checks) = reader.join().unwrap();
        assert_eq!((next, checks), (N, N as u64));
    }

    /// Every file's bytes, by name.
    fn contents(q: &ConsumeQueue) -> Vec<(String, Vec<u8>)> {
        file_names(q)
            .into_iter()
            .map(|n| {
                let bytes = std::fs::read(q.dir().join(&n)).unwrap();
                (n, bytes)
            })
            .collect()
    }

    #[test]
    fn put_run_writes_what_puts_one_by_one_write() {
        // (first, len) runs applied in order: a start mid-file on an empty queue, runs
        // across file boundaries, a re-put overlapping the end, a refused gap.
        let runs: &[(i64, i64)] = &[(3, 2), (5, 9), (14, 1), (10, 7), (17, 12), (40, 2)];
        let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (one, run) = (open(d1.path(), 4), open(d2.path(), 4));
        for &(first, len) in runs {
            let entries: Vec<CqEntry> = (first..first + len).map(entry).collect();
            let by_one: Result<()> = (first..first + len).try_for_each(|k| one.put(k, entry(k)));
            let by_run = run.put_run(first, &entries);
            assert_eq!(by_one.is_ok(), by_run.is_ok(), "run {first}+{len}");
            assert_eq!(
                (one.min_offset(), one.max_offset()),
                (run.min_offset(), run.max_offset())
            );
            assert_eq!(contents(&one), contents(&run), "after run {first}+{len}");
        }
        assert_eq!(run.max_offset(), 29);
        let before = contents(&run);
        let bad = [entry(29), CqEntry::BLANK];
        assert!(matches!(run.put_run(29, &bad), Err(Error::Invalid(_))));
        assert_eq!(contents(&run), before, "a refused run writes nothing");
        assert_eq!(run.max_offset(), 29);
        run.put_run(29, &[]).unwrap();
    }

    #[test]
    fn search_by_timestamp_lower_and_upper() {
        let dir = tempfile::tempdir().unwrap();
        let q = open(dir.path(), 4);
        // store time of entry k (phys k*100): 1000 + 10*k, with entries 4,5,6 sharing 1040.
        let ts = |phys: i64, _size: i32| {
            let k = phys / 100;
            Some(if (4..=6).contains(&k) {
                1040
            } else {
                1000 + 10 * k
            })
        };
        assert_eq!(
            q.search_by_timestamp(5, false, ts).unwrap(),
            0,
            "empty queue"
        );
        fill(&q, 10); // times 1000..1090
        let lower = |t| q.search_by_timestamp(t, false, ts).unwrap();
        let upper = |t| q.search_by_timestamp(t, true, ts).unwrap();
        assert_eq!(lower(0), 0);
        assert_eq!(upper(0), 0, "every message newer");
        assert_eq!(lower(5000), 10, "every message older");
        assert_eq!(upper(5000), 9);
        assert_eq!(lower(1000), 0);
        assert_eq!(upper(1000), 0);
        assert_eq!(lower(1090), 9);
        assert_eq!(upper(1090), 9);
        assert_eq!(lower(1040), 4);
        assert_eq!(upper(1040), 6);
        assert_eq!(lower(1015), 2);
        assert_eq!(upper(1015), 1);
        // records gone from the CommitLog count as older
        let gone = |phys: i64, size: i32| if phys < 300 { None } else { ts(phys, size) };
        assert_eq!(q.search_by_timestamp(0, false, gone).unwrap(), 3);
        // a queue starting at 6: upper before the first clamps to min
        let dir2 = tempfile::tempdir().unwrap();
        let q2 = open(dir2.path(), 4);
        for k in 6..10 {
            q2.put(k, entry(k)).unwrap();
        }
        assert_eq!(q2.search_by_timestamp(0, true, ts).unwrap(), 6);
        assert_eq!(q2.search_by_timestamp(0, false, ts).unwrap(), 6);
        assert_eq!(q2.search_by_timestamp(9999, false, ts).unwrap(), 10);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Append(u8),
            Reput(u8),
            Truncate(u16),
            Reopen,
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                4 => (1u8..12).prop_map(Op::Append),
                1 => any::<u8>().prop_map(Op::Reput),
                1 => any::<u16>().prop_map(Op::Truncate),
                1 => Just(Op::Reopen),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(48))]
            #[test]
            fn ops_match_a_vec_model(ops in proptest::collection::vec(op(), 1..30)) {
                let dir = tempfile::tempdir().unwrap();
                let mut q = open(dir.path(), 5);
                let mut model: Vec<CqEntry> = Vec::new();
                for op in ops {
                    match op {
                        Op::Append(n) => for _ in 0..n {
                            let k = model.len() as i64;
                            q.put(k, entry(k)).unwrap();
                            model.push(entry(k));
                        },
                        Op::Reput(i) if !model.is_empty() => {
                            let k = i as usize % model.len();
                            q.put(k as i64, model[k]).unwrap();
                        }
                        Op::Reput(_) => {}
                        Op::Truncate(p) => {
                            let p = i64::from(p) % 12_000;
                            q.truncate_to_phys(p).unwrap();
                            model.retain(|e| e.phys_end() <= p);
                        }
                        Op::Reopen => {
                            q.flush().unwrap();
                            drop(q);
                            q = open(dir.path(), 5);
                        }
                    }
                    prop_assert_eq!(q.max_offset(), model.len() as i64);
                    let mut got = Vec::new();
                    while (got.len() as i64) < q.max_offset() {
                        let part = q.read(got.len() as i64, 3).unwrap();
                        prop_assert!(!part.is_empty());
                        got.extend(part);
                    }
                    prop_assert_eq!(&got, &model);
                }
            }
        }
    }
}
