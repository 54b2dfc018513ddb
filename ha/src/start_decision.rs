//! Where the master starts streaming to a slave, decided from the slave's first report
//! (spec 7.4): a pure function of the offsets, so the HA loop and tests share one rule.

use crate::config::EmptySlaveStart;

/// Where streaming to a slave starts, decided from its first report (spec 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartDecision {
    /// Stream from this offset.
    At(i64),
    /// The slave's log is longer than the master's, so its tail past `master_end` is not
    /// the master's (the master lost an unflushed tail). Streaming starts at `master_end`;
    /// the slave, seeing a first frame below its own end, truncates its CommitLog to that
    /// offset (`MessageStore::truncate_log`, which also cuts its ConsumeQueues) and
    /// follows from there (see `slave`).
    Diverged { slave_end: i64, master_end: i64 },
    /// The slave needs bytes the master no longer stores.
    Behind { slave_end: i64, master_min: i64 },
}

/// Spec 7.4, with [`EmptySlaveStart`] choosing the start for an empty slave.
pub fn decide_start(
    reported: i64,
    master_min: i64,
    master_end: i64,
    segment_size: u64,
    empty: EmptySlaveStart,
) -> StartDecision {
    if reported == 0 {
        return StartDecision::At(match empty {
            EmptySlaveStart::Oldest => master_min,
            EmptySlaveStart::LastSegment => (master_end - master_end % segment_size as i64).max(0),
        });
    }
    if reported > master_end {
        StartDecision::Diverged {
            slave_end: reported,
            master_end,
        }
    } else if reported < master_min {
        StartDecision::Behind {
            slave_end: reported,
            master_min,
        }
    } else {
        StartDecision::At(reported)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_rules() {
        let seg = 65536;
        let d = |r, min, end, e| decide_start(r, min, end, seg, e);
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(0)
        );
        assert_eq!(
            d(0, 0, 200_000, EmptySlaveStart::LastSegment),
            StartDecision::At(196_608)
        );
        assert_eq!(
            d(150, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::At(150)
        );
        assert_eq!(
            d(300_000, 0, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Diverged {
                slave_end: 300_000,
                master_end: 200_000
            }
        );
        assert_eq!(
            d(10, 65536, 200_000, EmptySlaveStart::Oldest),
            StartDecision::Behind {
                slave_end: 10,
                master_min: 65536
            }
        );
    }
}
