//! Segment files: fixed-size pieces of the log named by their 20-digit start offset, the
//! table readers use to find them, and the preallocator thread that keeps the next one
//! ready so the writer never waits for fallocate.

use std::collections::BTreeMap;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, RwLock};

use crate::io::direct_file;
use crate::io::gate::{self, disk, GateFile, Kind};
use crate::sync::{read, write};
use crate::{Error, Result};

/// One segment: an O_DIRECT fd for the writer and a buffered fd for readers.
pub struct SegmentFile {
    pub base: u64,
    pub size: u64,
    pub path: PathBuf,
    direct: GateFile,
    read: GateFile,
}

impl SegmentFile {
    /// Opens an existing segment or creates and preallocates a new one (zero-filled when
    /// `zero_fill`).
    pub fn open(dir: &Path, base: u64, size: u64, zero_fill: bool) -> Result<Self> {
        let path = dir.join(file_name(base));
        let created = !gate::exists(&path);
        let direct = direct_file::open_direct(&path)?;
        if created {
            let prepared = direct_file::preallocate(&direct, &path, size).and_then(|()| {
                if zero_fill {
                    direct_file::write_zeros(&direct, &path, size)?;
                }
                Ok(())
            });
            if let Err(e) = prepared {
                drop(direct);
                let _ = disk().remove_file(&path);
                return Err(e);
            }
            direct_file::sync_dir(dir)?;
        } else {
            let len = direct
                .size()
                .map_err(|e| Error::io(format!("stat {}", path.display()), e))?;
            if len != size {
                return Err(Error::Invalid(format!(
                    "{} is {len} bytes but mappedFileSizeCommitLog is {size}; segment size cannot change on an existing store",
                    path.display()
                )));
            }
        }
        let read = direct_file::open_read(&path)?;
        Ok(SegmentFile {
            base,
            size,
            path,
            direct,
            read,
        })
    }

    pub fn end(&self) -> u64 {
        self.base + self.size
    }

    pub fn direct_fd(&self) -> RawFd {
        self.direct
            .raw_fd()
            .expect("the io_uring writer needs a file of the real disk")
    }

    pub fn direct_file(&self) -> &GateFile {
        &self.direct
    }

    pub fn read_file(&self) -> &GateFile {
        &self.read
    }
}

/// RocketMQ's file name for a segment starting at `base`.
pub fn file_name(base: u64) -> String {
    format!("{base:020}")
}

/// Lists the segment bases present in `dir`, sorted. Files whose names are not 20 digits
/// are ignored.
pub fn list(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    let entries = disk()
        .list(dir)
        .map_err(|e| Error::io(format!("list {}", dir.display()), e))?;
    for entry in entries {
        if entry.kind == Kind::Dir {
            continue;
        }
        let Some(name) = entry.name.to_str() else {
            continue;
        };
        if name.len() == 20 && name.bytes().all(|b| b.is_ascii_digit()) {
            bases.push(name.parse::<u64>().expect("20 digits fit in u64"));
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// The segments readers can see, by base offset.
#[derive(Default)]
pub struct SegmentTable {
    map: RwLock<BTreeMap<u64, Arc<SegmentFile>>>,
}

impl SegmentTable {
    pub fn insert(&self, seg: Arc<SegmentFile>) {
        write(&self.map).insert(seg.base, seg);
    }

    /// The segment containing `offset`.
    pub fn find(&self, offset: u64) -> Option<Arc<SegmentFile>> {
        let map = read(&self.map);
        let (_, seg) = map.range(..=offset).next_back()?;
        (offset < seg.end()).then(|| seg.clone())
    }

    /// The segments holding any byte of `[from, to)`, in offset order.
    pub fn overlapping(&self, from: u64, to: u64) -> Vec<Arc<SegmentFile>> {
        if from >= to {
            return Vec::new();
        }
        let map = read(&self.map);
        let first = map
            .range(..=from)
            .next_back()
            .map_or(from, |(&base, _)| base);
        map.range(first..to)
            .filter(|(_, seg)| seg.end() > from)
            .map(|(_, seg)| seg.clone())
            .collect()
    }

    pub fn first_base(&self) -> Option<u64> {
        read(&self.map).keys().next().copied()
    }

    pub fn remove_from(&self, base: u64) -> Vec<Arc<SegmentFile>> {
        let mut map = write(&self.map);
        let tail = map.split_off(&base);
        tail.into_values().collect()
    }
}

/// Creates segment files ahead of the writer on its own thread. At most one request is
/// outstanding; after a failure (disk full) nothing is retried until the writer needs the
/// segment again, so a stale failure is never taken for a later answer.
pub struct Preallocator {
    requests: Sender<u64>,
    ready: Receiver<(u64, Result<SegmentFile>)>,
    pending: Option<u64>,
}

impl Preallocator {
    pub fn start(dir: PathBuf, size: u64, zero_fill: bool) -> Result<Self> {
        let (req_tx, req_rx) = mpsc::channel::<u64>();
        let (ready_tx, ready_rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("ringmq-prealloc".into())
            .spawn(move || {
                for base in req_rx {
                    let res = SegmentFile::open(&dir, base, size, zero_fill);
                    if ready_tx.send((base, res)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Error::io("spawn preallocator", e))?;
        Ok(Preallocator {
            requests: req_tx,
            ready: ready_rx,
            pending: None,
        })
    }

    /// Asks for the segment at `base` to be prepared in the background.
    pub fn request(&mut self, base: u64) {
        if self.pending.is_none() && self.requests.send(base).is_ok() {
            self.pending = Some(base);
        }
    }

    /// The base of the segment being prepared (or prepared and not yet taken), if any.
    pub fn pending(&self) -> Option<u64> {
        self.pending
    }

    /// Waits for the outstanding request, if any, and drops its result (the file stays on
    /// disk; the caller deletes it if it must not be used).
    pub fn discard(&mut self) {
        if let Some(base) = self.pending.take() {
            if let Ok((b, _)) = self.ready.recv() {
                debug_assert_eq!(b, base);
            }
        }
    }

    /// The segment at `base`: the one prepared in the background, or prepared now.
    pub fn take(&mut self, base: u64) -> Result<SegmentFile> {
        if self.pending != Some(base) {
            if let Some(other) = self.pending.take() {
                // A request for another base is never made; drain it to stay in step.
                let _ = self.ready.recv();
                tracing::warn!(
                    other,
                    base,
                    "discarded a segment prepared for another offset"
                );
            }
            self.request(base);
        }
        self.pending = None;
        match self.ready.recv() {
            Ok((b, res)) => {
                debug_assert_eq!(b, base);
                res
            }
            Err(_) => Err(Error::WriterStopped("preallocator thread exited".into())),
        }
    }
}

impl Drop for Preallocator {
    /// Waits for the segment being prepared, so no thread of a closed store still writes
    /// into its directory (a store reopened, or a directory removed, right after the
    /// writer exits would otherwise race with it).
    fn drop(&mut self) {
        self.discard();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Regression (ASYNC_FLUSH): the writer once kept the segments to fdatasync in a list
    /// it reset to the current segment at each fdatasync, so an older segment whose writes
    /// completed after a roll was never synced again although `durable_end` passed its
    /// bytes. It now syncs every segment overlapping `[durable_end, write_end)`.
    #[test]
    fn overlapping_finds_every_segment_of_a_range() {
        let dir = tempfile::tempdir().unwrap();
        let table = SegmentTable::default();
        for base in [0, 8192, 16384] {
            table.insert(Arc::new(
                SegmentFile::open(dir.path(), base, 8192, false).unwrap(),
            ));
        }
        let bases =
            |from, to| -> Vec<u64> { table.overlapping(from, to).iter().map(|s| s.base).collect() };
        assert_eq!(bases(100, 200), [0]);
        assert_eq!(bases(8000, 8193), [0, 8192], "an older segment is kept");
        assert_eq!(bases(8192, 16384), [8192]);
        assert_eq!(bases(4096, 20000), [0, 8192, 16384]);
        assert_eq!(bases(16384, 16385), [16384]);
        assert!(bases(300, 300).is_empty());
        assert!(bases(24576, 30000).is_empty());
    }
}
