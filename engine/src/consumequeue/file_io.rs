//! Positional I/O on one ConsumeQueue file: read to the end of a buffer, zero a range,
//! and scrub stale bytes above an end (skipping holes). Runs on the caller's thread (the
//! dispatcher for writes and scrubs, any reader for `read_full_at`). Every operation goes
//! through the I/O gate.

use std::io;

use crate::io::gate::GateFile;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// `pread` until `buf` is full or end of file; returns the bytes read (the rest of `buf`
/// is zeroed).
pub(super) fn read_full_at(file: &GateFile, buf: &mut [u8], off: u64) -> io::Result<usize> {
    file.read_full_at(buf, off)
}

/// Writes zeros over `range` of `file`.
pub(super) fn zero_range(file: &GateFile, range: std::ops::Range<u64>) -> io::Result<()> {
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
pub(super) fn scrub_file(file: &GateFile, from: u64, end: u64) -> io::Result<u64> {
    let mut buf = vec![0u8; ZEROS.len()];
    let mut zeroed = 0u64;
    let mut pos = from;
    while pos < end {
        let Some((data, hole)) = file.data_region(pos)? else {
            break;
        };
        if data >= end {
            break;
        }
        let hole = hole.min(end);
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
