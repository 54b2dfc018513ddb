//! Failure injection for tests: make the next preallocation report ENOSPC, the next
//! CommitLog write fail with EIO or come back short, the next ConsumeQueue fdatasync
//! fail with EIO, or writes stall, so the error paths
//! can be driven deterministically.
//! In production nothing sets these and each check is one relaxed atomic load.

use std::sync::atomic::{AtomicU32, Ordering};

static PREALLOCATE_ENOSPC: AtomicU32 = AtomicU32::new(0);
static WRITE_EIO: AtomicU32 = AtomicU32::new(0);
static WRITES_PAUSED: AtomicU32 = AtomicU32::new(0);
static SHORT_WRITES: AtomicU32 = AtomicU32::new(0);
static CQ_SYNC_EIO: AtomicU32 = AtomicU32::new(0);

/// The next `n` segment preallocations fail with ENOSPC.
pub fn fail_preallocations(n: u32) {
    PREALLOCATE_ENOSPC.store(n, Ordering::SeqCst);
}

/// The next `n` CommitLog write completions are turned into EIO.
pub fn fail_writes(n: u32) {
    WRITE_EIO.store(n, Ordering::SeqCst);
}

/// The next `n` CommitLog writes of more than one page are really short: the writer asks
/// the kernel for fewer bytes than the write covers (half its whole pages, or all but
/// the snapshot page), so the file misses the rest until the writer writes it again.
pub fn short_writes(n: u32) {
    SHORT_WRITES.store(n, Ordering::SeqCst);
}

/// The next `n` ConsumeQueue fdatasyncs fail with EIO.
pub fn fail_cq_syncs(n: u32) {
    CQ_SYNC_EIO.store(n, Ordering::SeqCst);
}

/// How many injected short writes have not happened yet.
pub fn short_writes_left() -> u32 {
    SHORT_WRITES.load(Ordering::SeqCst)
}

/// While paused the writer submits no CommitLog writes (a stalled device).
pub fn pause_writes(paused: bool) {
    WRITES_PAUSED.store(paused as u32, Ordering::SeqCst);
}

pub(crate) fn writes_paused() -> bool {
    WRITES_PAUSED.load(Ordering::Relaxed) != 0
}

fn take(counter: &AtomicU32) -> bool {
    counter.load(Ordering::Relaxed) != 0
        && counter
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
}

pub(crate) fn preallocation_should_fail() -> bool {
    take(&PREALLOCATE_ENOSPC)
}

pub(crate) fn write_should_fail() -> bool {
    take(&WRITE_EIO)
}

pub(crate) fn write_should_be_short() -> bool {
    take(&SHORT_WRITES)
}

pub(crate) fn cq_sync_should_fail() -> bool {
    take(&CQ_SYNC_EIO)
}
