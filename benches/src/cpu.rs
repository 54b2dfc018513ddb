//! CPU time of a process or of this one, for the "CPU microseconds per message" figures.
//!
//! A process's `/proc/<pid>/stat` `utime + stime` cover all of its threads, including
//! threads that have already exited, so a broker run as a child process is measured whole
//! (net loops, writer, dispatcher, io_uring workers, housekeeping) without counting the
//! load generator. Resolution is one clock tick (10 ms at the usual 100 Hz), fine for
//! runs of seconds.

use std::io;

/// CPU time (user + system) of process `pid`, all its threads, in microseconds.
pub fn process_us(pid: u32) -> io::Result<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) is in parentheses and may hold spaces: split after it.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or_else(|| io::Error::other("malformed /proc stat"))?;
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| -> io::Result<u64> {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .ok_or_else(|| io::Error::other("malformed /proc stat field"))
    };
    let total = ticks(14)? + ticks(15)?;
    Ok(total * 1_000_000 / clock_ticks_per_s())
}

/// CPU time (user + system) of this process, all its threads (getrusage RUSAGE_SELF),
/// in microseconds; microsecond resolution.
pub fn self_us() -> u64 {
    // SAFETY: getrusage writes into the zeroed struct we own; RUSAGE_SELF is always valid.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let us = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    us(ru.ru_utime) + us(ru.ru_stime)
}

fn clock_ticks_per_s() -> u64 {
    // SAFETY: sysconf has no memory effects.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as u64
    } else {
        100
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_process_time_is_read_and_grows() {
        let pid = std::process::id();
        let a = process_us(pid).unwrap();
        let s = self_us();
        let mut x = 0u64;
        let until = std::time::Instant::now() + std::time::Duration::from_millis(60);
        while std::time::Instant::now() < until {
            x = x.wrapping_add(std::hint::black_box(1));
        }
        assert!(x > 0);
        assert!(process_us(pid).unwrap() > a);
        assert!(self_us() >= s + 40_000);
    }
}
