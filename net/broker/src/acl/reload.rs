//! Rereads the accounts file when its modification time or size changes, on a thread of
//! its own (never the network loops). A file that no longer reads keeps the accounts in
//! force and is reported; the next change is tried again.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::accounts::Accounts;
use super::Shared;

/// What identifies a version of the file.
pub type Stamp = Option<(SystemTime, u64)>;

fn stamp(path: &Path) -> Stamp {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

/// Reads the file and the stamp it was read at.
pub fn read(path: &Path) -> Result<(Accounts, Stamp), String> {
    let before = stamp(path);
    Ok((Accounts::load(path)?, before))
}

/// The reload thread; stopped and joined on drop.
pub struct Reloader {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Reloader {
    pub fn start(
        shared: Arc<Shared>,
        mut seen: Stamp,
        poll: Duration,
    ) -> std::io::Result<Reloader> {
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-acl-reload".into())
            .spawn(move || {
                while !stopping.load(Ordering::Acquire) {
                    std::thread::park_timeout(poll);
                    let now = stamp(&shared.path);
                    if now == seen {
                        continue;
                    }
                    seen = now;
                    match Accounts::load(&shared.path) {
                        Ok(a) => {
                            tracing::info!(file = %shared.path.display(), accounts = a.by_key.len(), "accounts file reloaded");
                            shared.replace(a);
                        }
                        Err(e) => tracing::error!(error = %e, "accounts file not reloaded; the previous accounts stay in force"),
                    }
                }
            })?;
        Ok(Reloader {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            t.thread().unpark();
            let _ = t.join();
        }
    }
}
