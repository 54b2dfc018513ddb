//! UNIQ_KEY, the message id a producer (or the broker, for a message sent without one)
//! gives each message: clients only need it to be unique.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

/// A new 32-hex-digit unique id: a per-process prefix (pid and start time)
/// and a 48-bit counter.
pub fn new_uniq_key() -> String {
    static PREFIX: OnceLock<[u8; 10]> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let prefix = PREFIX.get_or_init(|| {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        let pid = std::process::id();
        let mut p = [0u8; 10];
        p[..4].copy_from_slice(&pid.to_be_bytes());
        p[4..].copy_from_slice(&nanos.to_be_bytes()[2..]);
        p
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut raw = [0u8; 16];
    raw[..10].copy_from_slice(prefix);
    raw[10..].copy_from_slice(&n.to_be_bytes()[2..]);
    let mut s = String::with_capacity(32);
    for b in raw {
        s.push(HEX[(b >> 4) as usize] as char);
        s.push(HEX[(b & 0xF) as usize] as char);
    }
    s
}
