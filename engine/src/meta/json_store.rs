//! [`JsonStore`]: one metadata table kept in one JSON file, shared by every metadata store
//! (topics, subscription groups, consumer offsets, delay offsets). Any thread: net threads
//! change and read tables, the broker's housekeeping thread persists them.
//!
//! It owns what the stores have in common: loading the file (or its `.bak`, in either
//! JSON dialect), the lock around the table, the dirty flag of tables that change in
//! memory only, the data version bumped when a change reaches the file, and the atomic
//! replacement of the file. The file's bytes (pretty standard JSON, or Java's dialect with
//! bare integer keys) are the table's own business ([`JsonTable::file_bytes`]).
//!
//! Two ways to change a table, matching what Java does per file:
//! - [`JsonStore::change`]: bump the data version with the change (topics and subscription
//!   groups, which then persist at once);
//! - [`JsonStore::touch`]: change memory only and mark the table dirty; the next
//!   [`JsonStore::persist`] bumps the version once for everything since the last write
//!   (consumer and delay offsets, persisted periodically).

use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

use serde::de::DeserializeOwned;

use super::atomic_file::write_atomically;
use super::data_version::DataVersion;
use super::json;
use crate::sync::{lock, read, write};
use crate::Result;

/// A table that lives in one metadata file.
pub trait JsonTable: Default + DeserializeOwned {
    /// The table's change stamp (created, as Java's `new DataVersion()`, if the file had
    /// none).
    fn data_version_mut(&mut self) -> &mut DataVersion;
    /// The file's content for this table.
    fn file_bytes(&self) -> Vec<u8>;
}

#[derive(Debug)]
struct State<T> {
    table: T,
    /// Touched since the last persist: the next persist bumps the version.
    dirty: bool,
}

/// One table and the file it persists to. Internally locked; share it with an `Arc`.
#[derive(Debug)]
pub struct JsonStore<T> {
    path: PathBuf,
    state: RwLock<State<T>>,
    /// Serializes snapshot + write so an older snapshot never overwrites a newer file.
    persist_lock: Mutex<()>,
}

impl<T: JsonTable> JsonStore<T> {
    /// Loads `<dir>/<file_name>` (or its `.bak`); an absent file gives an empty table.
    pub fn load(dir: &Path, file_name: &str) -> Result<Self> {
        let path = dir.join(file_name);
        let mut table: T = json::load_file(&path)?.unwrap_or_default();
        table.data_version_mut();
        Ok(JsonStore {
            path,
            state: RwLock::new(State {
                table,
                dirty: false,
            }),
            persist_lock: Mutex::new(()),
        })
    }

    /// The file this store persists to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` on the table under the read lock.
    pub fn read<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        f(&read(&self.state).table)
    }

    /// Runs `f` on the table under the write lock: no flag, no version bump (for changes
    /// that manage the version themselves, such as adopting a master's table).
    pub fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        f(&mut write(&self.state).table)
    }

    /// Changes the table now, and bumps its version with the change if `f` says it
    /// changed something (Java's `dataVersion.nextVersion()` beside the change). The
    /// caller persists.
    pub fn change<R>(&self, f: impl FnOnce(&mut T) -> (R, bool)) -> R {
        let mut s = write(&self.state);
        let (r, changed) = f(&mut s.table);
        if changed {
            s.table.data_version_mut().next_version();
        }
        r
    }

    /// Changes the table in memory only; if `f` says it changed something, the next
    /// [`JsonStore::persist`] bumps the version and writes it.
    pub fn touch<R>(&self, f: impl FnOnce(&mut T) -> (R, bool)) -> R {
        let mut s = write(&self.state);
        let (r, changed) = f(&mut s.table);
        s.dirty |= changed;
        r
    }

    /// Writes the table atomically, first bumping the version if it was touched since the
    /// last write.
    pub fn persist(&self) -> Result<()> {
        let _guard = lock(&self.persist_lock);
        {
            let mut s = write(&self.state);
            if s.dirty {
                s.table.data_version_mut().next_version();
                s.dirty = false;
            }
        }
        let bytes = self.read(T::file_bytes);
        write_atomically(&self.path, &bytes)
    }

    /// Applies `f` (for example a slave adopting its master's table and version), forgets
    /// earlier touches, and writes the result without bumping the version.
    pub fn replace_and_persist(&self, f: impl FnOnce(&mut T)) -> Result<()> {
        {
            let mut s = write(&self.state);
            f(&mut s.table);
            s.dirty = false;
        }
        let _guard = lock(&self.persist_lock);
        let bytes = self.read(T::file_bytes);
        write_atomically(&self.path, &bytes)
    }

    /// Writes `raw` as the file verbatim, then applies `f`, which returns whether the
    /// table now holds something the file does not (then the next persist writes it).
    pub fn write_raw_then(&self, raw: &[u8], f: impl FnOnce(&mut T) -> bool) -> Result<()> {
        let _guard = lock(&self.persist_lock);
        write_atomically(&self.path, raw)?;
        let mut s = write(&self.state);
        s.dirty = f(&mut s.table);
        Ok(())
    }
}
