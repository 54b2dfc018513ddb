//! The engine's one error type. Operating errors are values of [`Error`]; bugs are
//! assertions; a disk that can no longer be trusted stops the writer (see `commitlog`).

use std::io;
use std::path::PathBuf;

/// Result alias used across the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug)]
pub enum Error {
    /// An I/O call failed; `context` names the operation and file.
    Io { context: String, source: io::Error },
    /// The kernel refuses io_uring (sysctl `kernel.io_uring_disabled`, seccomp, old kernel).
    IoUringUnavailable { source: io::Error },
    /// The file system under `path` does not support O_DIRECT (tmpfs, some FUSE mounts).
    DirectIoUnsupported { path: PathBuf, source: io::Error },
    /// No room left on the device: nothing was written, nothing was acknowledged.
    DiskFull { path: PathBuf },
    /// A stored record failed validation (bad magic, size, CRC, position).
    Corrupt { offset: i64, reason: String },
    /// A request was malformed or exceeds a limit (body size, topic length, properties).
    Invalid(String),
    /// A slave-side raw append did not start where the log ends.
    Discontinuity { expected: i64, got: i64 },
    /// The writer stopped after a failed write or fsync; the engine accepts no more appends.
    WriterStopped(String),
    /// A flush wait passed its deadline (SYNC_FLUSH -> FLUSH_DISK_TIMEOUT).
    FlushTimeout,
    /// Another process holds the store directory.
    Locked { path: PathBuf },
    /// A metadata file could not be parsed.
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

impl Error {
    /// Wraps an `io::Error` with a description of what was being done.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        if source.raw_os_error() == Some(libc::ENOSPC) {
            return Error::DiskFull {
                path: PathBuf::from(context.into()),
            };
        }
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<ringmq_record::Error> for Error {
    fn from(e: ringmq_record::Error) -> Self {
        match e {
            ringmq_record::Error::Corrupt { offset, reason } => Error::Corrupt { offset, reason },
            ringmq_record::Error::Invalid(why) => Error::Invalid(why),
        }
    }
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::IoUringUnavailable { source } => write!(
                f,
                "io_uring is not available ({source}); ringmq needs it for the CommitLog. \
                 Check `sysctl kernel.io_uring_disabled` (must be 0) and, in a container, \
                 allow the io_uring_setup/io_uring_enter/io_uring_register syscalls in its seccomp profile"
            ),
            Error::DirectIoUnsupported { path, source } => write!(
                f,
                "the file system holding {} does not support O_DIRECT ({source}); \
                 put storePathRootDir on ext4 or xfs (tmpfs and most FUSE mounts cannot do direct IO)",
                path.display()
            ),
            Error::DiskFull { path } => write!(f, "disk full while writing {}", path.display()),
            Error::Corrupt { offset, reason } => write!(f, "corrupt record at offset {offset}: {reason}"),
            Error::Invalid(why) => write!(f, "invalid request: {why}"),
            Error::Discontinuity { expected, got } => write!(
                f,
                "replicated bytes start at offset {got} but the log ends at {expected} ({})",
                if got > expected { "gap" } else { "overlap" }
            ),
            Error::WriterStopped(why) => write!(f, "CommitLog writer stopped: {why}"),
            Error::FlushTimeout => write!(f, "flush did not complete within syncFlushTimeout"),
            Error::Locked { path } => {
                write!(f, "store directory {} is in use by another broker (lock held)", path.display())
            }
            Error::Json { path, source } => write!(f, "cannot parse {}: {source}", path.display()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. }
            | Error::IoUringUnavailable { source }
            | Error::DirectIoUnsupported { source, .. } => Some(source),
            Error::Json { source, .. } => Some(source),
            _ => None,
        }
    }
}
