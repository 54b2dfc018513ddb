//! Positional I/O on one ConsumeQueue file: read to the end of a buffer, zero a range,
//! and scrub stale bytes above an end (skipping holes). Runs on the caller's thread (the
//! dispatcher for writes and scrubs, any reader for `read_full_at`).

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// `pread` until `buf` is full or end of file; returns the bytes read (the rest of `buf`
/// is zeroed).
pub(super) fn read_full_at(file: &File, buf: &mut [u8], mut off: u64) -> io::Result<usize> {
    let mut done = 0;
    while done < buf.len() {
        match file.read_at(&mut buf[done..], off) {
            Ok(0) => break,
            Ok(n) => {
                done += n;
                off += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf[done..].fill(0);
    Ok(done)
}

/// Writes zeros over `range` of `file`.
pub(super) fn zero_range(file: &File, range: std::ops::Range<u64>) -> io::Result<()> {
    let mut pos = range.start;
    while pos < range.end {
        let n = ((range.end - pos) as usize).min(ZEROS.len());
        file.write_all_at(&ZEROS[..n], pos)?;
        pos += n as u64;
    }
    Ok(())
}

/// Zeroes every non-zero byte of `[from, end)`, reading only the data regions; returns the
/// number of bytes rewritten.
pub(super) fn scrub_file(file: &File, from: u64, end: u64) -> io::Result<u64> {
    let fd = file.as_raw_fd();
    let seek = |pos: u64, whence: libc::c_int| -> io::Result<Option<u64>> {
        // SAFETY: lseek on the descriptor of `file`, which outlives this call; it touches no
        // memory. The file position it moves is not used (all I/O is positional).
        let r = unsafe { libc::lseek(fd, pos as libc::off_t, whence) };
        if r >= 0 {
            return Ok(Some(r as u64));
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENXIO) => Ok(None),
            // SEEK_DATA/SEEK_HOLE unsupported: treat everything as data.
            Some(libc::EINVAL) | Some(libc::EOPNOTSUPP) => {
                Ok(Some(if whence == libc::SEEK_DATA { pos } else { end }))
            }
            _ => Err(e),
        }
    };
    let mut buf = vec![0u8; ZEROS.len()];
    let mut zeroed = 0u64;
    let mut pos = from;
    while pos < end {
        let Some(data) = seek(pos, libc::SEEK_DATA)? else {
            break;
        };
        if data >= end {
            break;
        }
        let hole = seek(data, libc::SEEK_HOLE)?.unwrap_or(end).min(end);
        let mut p = data;
        while p < hole {
            let n = ((hole - p) as usize).min(buf.len());
            let got = read_full_at(file, &mut buf[..n], p)?;
            if got == 0 {
                return Ok(zeroed);
            }
            if buf[..got].iter().any(|&b| b != 0) {
                file.write_all_at(&ZEROS[..got], p)?;
                zeroed += got as u64;
            }
            p += got as u64;
        }
        pos = hole.max(data + 1);
    }
    Ok(zeroed)
}
