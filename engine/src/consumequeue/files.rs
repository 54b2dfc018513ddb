//! The files of one ConsumeQueue: [`CqFile`] (one open index file), [`Files`] (the
//! contiguous run of them a queue holds), and listing, creating, deleting and fsyncing
//! them. Runs on the dispatcher thread (create, delete, sync) and at open; readers only
//! look files up.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tracing::warn;

use super::entry::{CqEntry, CQ_ENTRY_SIZE, ENTRY_BYTES};
use super::file_io::read_full_at;
use crate::io::gate::{disk, GateFile, Kind, Open};
use crate::{Error, Result};

/// One index file, open read-write.
pub(super) struct CqFile {
    /// File number: the file holds queue offsets `[index * epf, (index + 1) * epf)`.
    pub index: i64,
    pub path: PathBuf,
    pub file: GateFile,
}

impl CqFile {
    /// Reads the entry in slot `slot` of this file (zeros past the end of a short file).
    pub fn read_entry(&self, slot: i64) -> Result<CqEntry> {
        let mut buf = [0u8; CQ_ENTRY_SIZE];
        read_full_at(&self.file, &mut buf, (slot * ENTRY_BYTES) as u64)
            .map_err(|e| Error::io(format!("pread {}", self.path.display()), e))?;
        Ok(CqEntry::decode(&buf))
    }
}

/// A queue's files, numbered contiguously from `first_index`.
#[derive(Default)]
pub(super) struct Files {
    pub first_index: i64,
    pub list: Vec<Arc<CqFile>>,
}

impl Files {
    pub fn get(&self, index: i64) -> Option<&Arc<CqFile>> {
        let i = index.checked_sub(self.first_index)?;
        self.list.get(usize::try_from(i).ok()?)
    }

    pub fn end_index(&self) -> i64 {
        self.first_index + self.list.len() as i64
    }
}

/// Lists and opens the files of a queue directory (missing directory: none). Names must be
/// 20-digit start byte offsets at file boundaries, contiguous.
pub(super) fn list_files(dir: &Path, epf: i64) -> Result<Files> {
    let rd = match disk().list(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Files::default()),
        Err(e) => return Err(Error::io(format!("list {}", dir.display()), e)),
    };
    let file_bytes = epf * ENTRY_BYTES;
    let mut found: Vec<(i64, PathBuf)> = Vec::new();
    for ent in rd {
        let path = dir.join(&ent.name);
        let start = ent.name.to_str().and_then(|n| {
            (n.len() == 20 && n.bytes().all(|b| b.is_ascii_digit()))
                .then(|| n.parse::<i64>().ok())
                .flatten()
        });
        match start {
            Some(s) if ent.kind == Kind::File => {
                if s % file_bytes != 0 {
                    return Err(Error::Corrupt {
                        offset: s,
                        reason: format!(
                            "{} does not start at a multiple of the file size {file_bytes}",
                            path.display()
                        ),
                    });
                }
                found.push((s / file_bytes, path));
            }
            _ => warn!(path = %path.display(), "ignoring unexpected entry in consume queue dir"),
        }
    }
    found.sort_unstable_by_key(|(i, _)| *i);
    let mut files = Files {
        first_index: found.first().map_or(0, |(i, _)| *i),
        list: Vec::new(),
    };
    for (n, (index, path)) in found.into_iter().enumerate() {
        if index != files.first_index + n as i64 {
            return Err(Error::Corrupt {
                offset: index * file_bytes,
                reason: format!(
                    "consume queue files in {} are not contiguous",
                    dir.display()
                ),
            });
        }
        let file = disk()
            .open(&path, Open::ReadWrite)
            .map_err(|e| Error::io(format!("open {}", path.display()), e))?;
        files.list.push(Arc::new(CqFile { index, path, file }));
    }
    Ok(files)
}

pub(super) fn remove_files(files: &[Arc<CqFile>]) -> Result<()> {
    for f in files {
        debug_assert!(f.index >= 0);
        match disk().remove_file(&f.path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::io(format!("delete {}", f.path.display()), e)),
        }
    }
    Ok(())
}

/// Creates (or empties) file `index` of a queue in `dir` at its full size, creating the
/// directory if needed.
pub(super) fn create_file(dir: &Path, index: i64, epf: i64) -> Result<CqFile> {
    disk()
        .create_dir_all(dir)
        .map_err(|e| Error::io(format!("create {}", dir.display()), e))?;
    let path = dir.join(format!("{:020}", index * epf * ENTRY_BYTES));
    let file = disk()
        .open(&path, Open::Truncate)
        .map_err(|e| Error::io(format!("create {}", path.display()), e))?;
    file.set_len((epf * ENTRY_BYTES) as u64)
        .map_err(|e| Error::io(format!("preallocate {}", path.display()), e))?;
    Ok(CqFile { index, path, file })
}

/// fsyncs a queue directory and its two parents (`<topic>/` and `consumequeue/`, created
/// lazily with it).
pub(super) fn fsync_dirs(dir: &Path) -> Result<()> {
    let mut dir = Some(dir);
    for _ in 0..3 {
        let Some(d) = dir else { break };
        disk()
            .sync_dir(d)
            .map_err(|e| Error::io(format!("fsync directory {}", d.display()), e))?;
        dir = d.parent();
    }
    Ok(())
}
