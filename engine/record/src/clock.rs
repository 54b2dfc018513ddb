//! Wall-clock time as RocketMQ stores it.

use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch, like Java's `System.currentTimeMillis()` (0 if the
/// clock is before 1970).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
