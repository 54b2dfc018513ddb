//! Rates over the last 10 s, 60 s and 600 s from one-second samples of the broker's
//! totals, as RocketMQ's StoreStatsService reports them (`putTps`, `getTransferedTps`:
//! three numbers separated by spaces). The broker's housekeeping thread calls
//! [`TpsSampler::sample`] every 100 ms; a sample is kept at most once a second.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use ringmq_engine::sync::lock;

/// Longest window reported, plus one sample.
const KEEP: Duration = Duration::from_secs(601);
const EVERY: Duration = Duration::from_secs(1);
pub const WINDOWS_SECS: [u64; 3] = [10, 60, 600];

/// Totals at one instant: messages put, messages got, bytes got.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Totals {
    pub put: u64,
    pub got: u64,
    pub got_bytes: u64,
}

#[derive(Debug, Default)]
pub struct TpsSampler {
    samples: Mutex<VecDeque<(Instant, Totals)>>,
    days: Mutex<Days>,
}

/// The totals at the start of today and of yesterday (UTC days; Java uses local time),
/// for `msgPutTotalTodayMorning` and friends. A broker started today had 0 then.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Days {
    /// Days since 1970-01-01 of the last sample (0: none yet).
    day: i64,
    pub today_morning: Totals,
    pub yesterday_morning: Totals,
}

const DAY_MS: i64 = 86_400_000;

impl TpsSampler {
    /// Moves the day marks when `now_ms` falls on a new day: today's morning becomes
    /// yesterday's and `totals` today's.
    pub fn mark_day(&self, now_ms: i64, totals: Totals) {
        let day = now_ms.div_euclid(DAY_MS);
        let mut d = lock(&self.days);
        if d.day == 0 {
            d.day = day;
        } else if day > d.day {
            d.yesterday_morning = if day == d.day + 1 {
                d.today_morning
            } else {
                totals
            };
            d.today_morning = totals;
            d.day = day;
        }
    }

    pub fn days(&self) -> Days {
        *lock(&self.days)
    }

    /// Records `now`'s totals unless the last sample is younger than a second.
    pub fn sample(&self, now: Instant, totals: Totals) {
        let mut s = lock(&self.samples);
        if s.back()
            .is_some_and(|(t, _)| now.duration_since(*t) < EVERY)
        {
            return;
        }
        s.push_back((now, totals));
        while s
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > KEEP)
        {
            s.pop_front();
        }
    }

    /// Per-second rates of (put, got) over each of [`WINDOWS_SECS`], from the oldest
    /// sample inside the window to `now`'s totals (0 before there is any history).
    pub fn rates(&self, now: Instant, totals: Totals) -> [(f64, f64); 3] {
        let s = lock(&self.samples);
        WINDOWS_SECS.map(|w| {
            let from = s
                .iter()
                .find(|(t, _)| now.duration_since(*t) <= Duration::from_secs(w));
            match from {
                Some((t, old)) => {
                    let secs = now.duration_since(*t).as_secs_f64();
                    if secs < 0.5 {
                        return (0.0, 0.0);
                    }
                    (
                        totals.put.saturating_sub(old.put) as f64 / secs,
                        totals.got.saturating_sub(old.got) as f64 / secs,
                    )
                }
                None => (0.0, 0.0),
            }
        })
    }
}

/// Java's `"%.2f %.2f %.2f"` of three rates.
pub fn format_rates(r: [f64; 3]) -> String {
    format!("{:.2} {:.2} {:.2}", r[0], r[1], r[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn day_marks_move_at_midnight() {
        let s = TpsSampler::default();
        let t = |put| Totals {
            put,
            got: 0,
            got_bytes: 0,
        };
        s.mark_day(10 * DAY_MS + 5, t(3));
        assert_eq!(
            s.days().today_morning,
            t(0),
            "started today: 0 this morning"
        );
        s.mark_day(11 * DAY_MS + 1, t(40));
        assert_eq!(
            (s.days().today_morning, s.days().yesterday_morning),
            (t(40), t(0))
        );
        s.mark_day(11 * DAY_MS + 9, t(50));
        assert_eq!(s.days().today_morning, t(40));
        s.mark_day(12 * DAY_MS, t(90));
        assert_eq!(
            (s.days().today_morning, s.days().yesterday_morning),
            (t(90), t(40))
        );
    }

    #[test]
    fn tps_over_windows() {
        let s = TpsSampler::default();
        let t0 = Instant::now();
        let at = |secs: u64, put: u64| {
            (
                t0 + Duration::from_secs(secs),
                Totals {
                    put,
                    got: put / 2,
                    got_bytes: 0,
                },
            )
        };
        for i in 0..=20 {
            let (t, tot) = at(i, i * 100);
            s.sample(t, tot);
        }
        let (now, tot) = at(20, 2000);
        let r = s.rates(now, tot);
        assert_eq!(r[0], (100.0, 50.0), "10 s window");
        assert_eq!(r[1], (100.0, 50.0), "all 20 s of history");
        assert_eq!(format_rates([r[0].0, 1.0, 0.5]), "100.00 1.00 0.50");
        // A second sample within the same second is dropped.
        s.sample(t0 + Duration::from_millis(20_500), tot);
        assert_eq!(lock(&s.samples).len(), 21);
    }
}
