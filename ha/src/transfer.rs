//! How CommitLog bytes get onto a slave's socket: the boundary behind which the
//! zero-copy paths (send_zc from the tail ring, splice from segment files) will sit.
//! Runs on each slave's sender thread (`master`).
//!
//! This version has one implementation, [`CopyPath`]: `CommitLog::read` into a
//! user-space buffer, then one `write_all` of header and body.

use std::io::{self, Write};
use std::net::TcpStream;

use ringmq_engine::commitlog::CommitLog;

use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};

/// Sends transfer frames (spec 7.3) for CommitLog ranges. The caller guarantees that
/// `[phys, phys + len)` lies in one segment, below the log's written end, and that `len`
/// is at most the batch size.
pub trait TransferPath: Send {
    /// Sends the frame `[phys, len]` followed by the log bytes `[phys, phys + len)`.
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()>;

    /// Sends a heartbeat frame `[phys, 0]`.
    fn send_heartbeat(&mut self, sock: &mut TcpStream, phys: i64) -> io::Result<()> {
        sock.write_all(&encode_transfer_header(phys, 0))
    }

    /// A short name for logs ("copy", later "send_zc", "splice").
    fn name(&self) -> &'static str;
}

/// The copy path: log bytes are copied into a buffer, then written.
pub struct CopyPath {
    buf: Vec<u8>,
}

impl CopyPath {
    pub fn new(batch_size: usize) -> Self {
        CopyPath {
            buf: Vec::with_capacity(TRANSFER_HEADER_SIZE + batch_size),
        }
    }
}

impl TransferPath for CopyPath {
    fn send_data(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
    ) -> io::Result<()> {
        self.buf.clear();
        self.buf
            .extend_from_slice(&encode_transfer_header(phys, len));
        self.buf.resize(TRANSFER_HEADER_SIZE + len, 0);
        log.read(phys, &mut self.buf[TRANSFER_HEADER_SIZE..])
            .map_err(|e| io::Error::other(format!("read CommitLog {phys}+{len}: {e}")))?;
        sock.write_all(&self.buf)
    }

    fn name(&self) -> &'static str {
        "copy"
    }
}
