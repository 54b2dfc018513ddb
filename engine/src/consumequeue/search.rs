//! Binary searches over a queue's offsets: [`partition_point`] (the cut of a truncation,
//! the end of the pre-blank fillers at open) and [`by_timestamp`] (SEARCH_OFFSET_BY_TIMESTAMP).
//! No I/O of their own: the caller passes how to read an entry. Any thread.

use super::entry::CqEntry;
use crate::Result;

/// Smallest `k` in `[lo, hi)` for which `pred(k)` is false (`hi` if none); `pred` must be
/// true on a prefix.
pub(super) fn partition_point(
    mut lo: i64,
    mut hi: i64,
    mut pred: impl FnMut(i64) -> Result<bool>,
) -> Result<i64> {
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid)? {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// The queue offset for a time, by binary search over `[min, max)` on the messages' store
/// timestamps; `entry(k)` reads entry `k` (None = absent), `store_ts(phys, size)` gives a
/// record's store time (None = the record is gone, treated as older than everything).
/// See [`ConsumeQueue::search_by_timestamp`](super::ConsumeQueue::search_by_timestamp).
pub(super) fn by_timestamp(
    min: i64,
    max: i64,
    ts_ms: i64,
    upper: bool,
    entry: impl Fn(i64) -> Result<Option<CqEntry>>,
    store_ts: impl Fn(i64, i32) -> Option<i64>,
) -> Result<i64> {
    if min >= max {
        return Ok(max);
    }
    let time_at = |k: i64| -> Result<i64> {
        Ok(match entry(k)? {
            Some(e) => store_ts(e.phys_offset, e.size).unwrap_or(i64::MIN),
            None => i64::MIN,
        })
    };
    if upper {
        let after = partition_point(min, max, |k| Ok(time_at(k)? <= ts_ms))?;
        Ok((after - 1).max(min))
    } else {
        partition_point(min, max, |k| Ok(time_at(k)? < ts_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_point_finds_the_end_of_the_true_prefix() {
        for n in 0..10i64 {
            for cut in 0..=n {
                assert_eq!(partition_point(0, n, |k| Ok(k < cut)).unwrap(), cut);
            }
        }
        assert_eq!(partition_point(5, 9, |k| Ok(k < 7)).unwrap(), 7);
        assert_eq!(partition_point(5, 5, |_| Ok(true)).unwrap(), 5);
    }
}
