//! Which transfer path a new sender uses, and building it: [`default_path`] is
//! [`PathKind::SendZc`] unless [`set_default_path`] or `RINGMQ_HA_TRANSFER` (`zc`,
//! `copy`, `splice`, `splice-syscall`) says otherwise; [`sender_path`] builds that path,
//! falling back where the kernel lacks what it needs (send_zc -> io_uring splice ->
//! copy). Apart from the paths: it imports each of them, none of them imports it.
//! [`sender_path`] runs on the thread that will use the path; the master's HA loop reads
//! [`default_path`] for each new slave stream. The default is a process-wide atomic any
//! thread may set.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use super::copy::CopyPath;
use super::path::{PathKind, TransferPath};
use super::send_zc::SendZcPath;
use super::splice::SplicePath;

const KIND_UNSET: u8 = u8::MAX;
static DEFAULT_KIND: AtomicU8 = AtomicU8::new(KIND_UNSET);

/// Sets the path every sender started from now on uses.
pub fn set_default_path(kind: PathKind) {
    DEFAULT_KIND.store(kind as u8, Ordering::Release);
}

/// The path new senders use: the last [`set_default_path`], else `RINGMQ_HA_TRANSFER`,
/// else [`PathKind::SendZc`].
pub fn default_path() -> PathKind {
    let k = DEFAULT_KIND.load(Ordering::Acquire);
    if let Some(kind) = PathKind::ALL.iter().find(|p| **p as u8 == k) {
        return *kind;
    }
    let kind = match std::env::var("RINGMQ_HA_TRANSFER") {
        Ok(v) => PathKind::parse(&v).unwrap_or_else(|| {
            tracing::warn!(value = %v, "RINGMQ_HA_TRANSFER: expected zc, copy, splice or splice-syscall; using zc");
            PathKind::SendZc
        }),
        Err(_) => PathKind::SendZc,
    };
    let _ =
        DEFAULT_KIND.compare_exchange(KIND_UNSET, kind as u8, Ordering::AcqRel, Ordering::Acquire);
    kind
}

/// The transfer path for a new sender thread (call it on that thread: the io_uring
/// paths' rings belong to their creator). A send_zc path that cannot be set up (no
/// IORING_OP_SEND_ZC: logged once per process) falls back to the io_uring splice path; a
/// splice path that cannot be set up (no pipe) logs why and falls back to copying.
pub fn sender_path(batch_size: usize) -> Box<dyn TransferPath> {
    let kind = default_path();
    if kind == PathKind::Copy {
        return Box::new(CopyPath::new(batch_size));
    }
    if kind == PathKind::SendZc {
        match SendZcPath::new(batch_size) {
            Ok(p) => return Box::new(p),
            Err(e) => {
                static LOGGED: AtomicBool = AtomicBool::new(false);
                if !LOGGED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "cannot set up the send_zc transfer path; HA senders splice and copy instead");
                }
            }
        }
    }
    match SplicePath::new(batch_size, kind == PathKind::SpliceSyscall) {
        Ok(p) => Box::new(p),
        Err(e) => {
            tracing::warn!(error = %e, "cannot set up the splice transfer path; copying instead");
            Box::new(CopyPath::new(batch_size))
        }
    }
}
