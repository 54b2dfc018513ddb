//! [`CopyPath`]: CommitLog bytes are read into a user-space buffer, then written to the
//! slave's socket with the frame header in one `write_all`. The fallback when no
//! zero-copy path can be set up, and how the splice path sends the hot tail. Runs on
//! each slave's sender thread (`master`).

use std::io::{self, Write};
use std::net::TcpStream;

use ringmq_engine::commitlog::CommitLog;

use super::path::{Accounting, PathKind, TransferPath};
use crate::protocol::{encode_transfer_header, TRANSFER_HEADER_SIZE};

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

    /// The bytes `[phys, phys + len)`, after their frame header if `header`, through
    /// one user-space buffer, without accounting.
    pub(crate) fn send_copy(
        &mut self,
        log: &CommitLog,
        sock: &mut TcpStream,
        phys: i64,
        len: usize,
        header: bool,
    ) -> io::Result<()> {
        self.buf.clear();
        if header {
            self.buf
                .extend_from_slice(&encode_transfer_header(phys, len));
        }
        let at = self.buf.len();
        self.buf.resize(at + len, 0);
        log.read(phys, &mut self.buf[at..])
            .map_err(|e| io::Error::other(format!("read CommitLog {phys}+{len}: {e}")))?;
        sock.write_all(&self.buf)
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
        let acct = Accounting::start(PathKind::Copy);
        let res = self.send_copy(log, sock, phys, len, true);
        acct.finish(res.is_ok().then_some((0, len)));
        res
    }

    fn name(&self) -> &'static str {
        "copy"
    }
}
