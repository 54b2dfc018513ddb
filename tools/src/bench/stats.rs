//! Latency and error accounting, and the once-a-second progress line.
//!
//! A [`Recorder`] (one per producer connection, one for the consumers) keeps
//! two HdrHistograms in microseconds with 3 significant digits: the current
//! interval (taken and reset by the progress printer) and the measured total
//! (warm-up excluded). Failures are counted by name — the response code's
//! name from `response_code::name`, or `io` / `timeout` / `protocol` — in
//! the measured or the warm-up map; nothing is dropped.

use ringmq_engine::sync::lock;
use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use ringmq_client::{ClientError, SendStatus};
use ringmq_remoting::response_code;

/// Largest latency kept exactly: one hour (larger values are clamped).
const MAX_US: u64 = 3_600_000_000;

/// A histogram of microseconds, 3 significant digits.
pub fn new_hist() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_US, 3).expect("valid histogram bounds")
}

/// Microseconds in `d`, at least 1.
pub fn micros(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

/// The name a failure is counted under.
pub fn error_name(e: &ClientError) -> String {
    match e {
        ClientError::Broker { code, .. } => code_name(*code),
        ClientError::Timeout(_) => "timeout".into(),
        ClientError::Io(_) => "io".into(),
        ClientError::Protocol(_) => "protocol".into(),
    }
}

/// `response_code::name(code)`, or `CODE_<n>` for a code not in the table.
pub fn code_name(code: i32) -> String {
    response_code::name(code).map_or_else(|| format!("CODE_{code}"), str::to_owned)
}

/// The response code name of a stored-but-degraded send, `None` for SEND_OK.
pub fn status_error(s: SendStatus) -> Option<&'static str> {
    match s {
        SendStatus::SendOk => None,
        SendStatus::FlushDiskTimeout => Some("FLUSH_DISK_TIMEOUT"),
        SendStatus::FlushSlaveTimeout => Some("FLUSH_SLAVE_TIMEOUT"),
        SendStatus::SlaveNotAvailable => Some("SLAVE_NOT_AVAILABLE"),
    }
}

/// What a [`Recorder`] has counted.
pub struct Counts {
    pub interval: Histogram<u64>,
    pub interval_ok: u64,
    pub interval_bytes: u64,
    /// Measured (post-warm-up) latencies.
    pub total: Histogram<u64>,
    pub total_ok: u64,
    pub total_bytes: u64,
    pub errors: BTreeMap<String, u64>,
    pub warmup_errors: BTreeMap<String, u64>,
    /// When the last measured operation completed.
    pub last_done: Option<Instant>,
}

impl Default for Counts {
    fn default() -> Self {
        Self {
            interval: new_hist(),
            interval_ok: 0,
            interval_bytes: 0,
            total: new_hist(),
            total_ok: 0,
            total_bytes: 0,
            errors: BTreeMap::new(),
            warmup_errors: BTreeMap::new(),
            last_done: None,
        }
    }
}

impl Counts {
    /// Add `other`'s totals (not its interval) to these.
    pub fn merge(&mut self, other: &Counts) {
        self.total.add(&other.total).expect("same histogram bounds");
        self.total_ok += other.total_ok;
        self.total_bytes += other.total_bytes;
        for (k, v) in &other.errors {
            *self.errors.entry(k.clone()).or_default() += v;
        }
        for (k, v) in &other.warmup_errors {
            *self.warmup_errors.entry(k.clone()).or_default() += v;
        }
        self.last_done = self.last_done.max(other.last_done);
    }
}

/// One interval taken by the progress printer.
pub struct Interval {
    pub hist: Histogram<u64>,
    pub ok: u64,
    pub bytes: u64,
}

/// Thread-safe latency and error counters.
#[derive(Default)]
pub struct Recorder(Mutex<Counts>);

impl Recorder {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> MutexGuard<'_, Counts> {
        lock(&self.0)
    }

    /// One success of `latency_us` carrying `bytes`, completed at `done`.
    pub fn ok(&self, latency_us: u64, bytes: u64, measured: bool, done: Instant) {
        let mut c = self.lock();
        c.interval.saturating_record(latency_us);
        c.interval_ok += 1;
        c.interval_bytes += bytes;
        if measured {
            c.total.saturating_record(latency_us);
            c.total_ok += 1;
            c.total_bytes += bytes;
            c.last_done = c.last_done.max(Some(done));
        }
    }

    /// One failure counted under `name`.
    pub fn err(&self, name: &str, measured: bool) {
        let mut c = self.lock();
        let map = if measured {
            &mut c.errors
        } else {
            &mut c.warmup_errors
        };
        *map.entry(name.to_owned()).or_default() += 1;
    }

    /// Take (and reset) the current interval.
    pub fn take_interval(&self) -> Interval {
        let mut c = self.lock();
        let hist = c.interval.clone();
        c.interval.reset();
        let out = Interval {
            hist,
            ok: c.interval_ok,
            bytes: c.interval_bytes,
        };
        c.interval_ok = 0;
        c.interval_bytes = 0;
        out
    }

    /// Sum of errors so far, measured and warm-up together.
    pub fn all_errors(&self, into: &mut BTreeMap<String, u64>) {
        let c = self.lock();
        for (k, v) in c.errors.iter().chain(c.warmup_errors.iter()) {
            *into.entry(k.clone()).or_default() += v;
        }
    }

    /// A copy of the totals.
    pub fn totals(&self) -> Counts {
        let mut out = Counts::default();
        out.merge(&self.lock());
        out
    }
}

/// `NAME=n NAME=n`, or `none`.
pub fn format_errors(errors: &BTreeMap<String, u64>) -> String {
    if errors.values().all(|v| *v == 0) {
        return "none".into();
    }
    errors
        .iter()
        .filter(|(_, v)| **v > 0)
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Microseconds as a short human string (`850 us`, `1.25 ms`, `2.10 s`).
pub fn fmt_us(us: f64) -> String {
    if us < 1000.0 {
        format!("{us:.0} us")
    } else if us < 1_000_000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// What the progress printer watches.
pub struct Progress {
    pub sends: Vec<Arc<Recorder>>,
    /// End-to-end latency of consumed messages, when consumers run.
    pub e2e: Option<Arc<Recorder>>,
    pub start: Instant,
    pub warm_end: Instant,
}

impl Progress {
    /// One progress line for the interval just ended.
    pub fn line(&self, now: Instant, secs: f64) -> String {
        let mut hist = new_hist();
        let (mut ok, mut bytes) = (0u64, 0u64);
        for r in &self.sends {
            let i = r.take_interval();
            hist.add(&i.hist).expect("same histogram bounds");
            ok += i.ok;
            bytes += i.bytes;
        }
        let secs = secs.max(1e-3);
        let mut line = format!(
            "[{:>6.1}s]{} {:>8.0} msgs/s {:>7.2} MB/s  p50 {:>9}  p99 {:>9}",
            (now - self.start).as_secs_f64(),
            if now < self.warm_end { " warm-up" } else { "" },
            ok as f64 / secs,
            bytes as f64 / secs / 1e6,
            pct(&hist, 0.5),
            pct(&hist, 0.99),
        );
        if let Some(e2e) = &self.e2e {
            let i = e2e.take_interval();
            line.push_str(&format!(
                "  | consumed {:>8.0} msgs/s  e2e p99 {:>9}",
                i.ok as f64 / secs,
                pct(&i.hist, 0.99)
            ));
        }
        let mut errors = BTreeMap::new();
        for r in &self.sends {
            r.all_errors(&mut errors);
        }
        line.push_str(&format!("  | errors: {}", format_errors(&errors)));
        line
    }

    /// Print [`Progress::line`] to stderr once a second until `stop`.
    pub fn spawn(self, stop: Arc<AtomicBool>) -> JoinHandle<()> {
        std::thread::Builder::new()
            .name("bench-progress".into())
            .spawn(move || {
                let mut last = Instant::now();
                let mut next = last + Duration::from_secs(1);
                while !stop.load(Ordering::Acquire) {
                    let now = Instant::now();
                    if now < next {
                        std::thread::sleep((next - now).min(Duration::from_millis(50)));
                        continue;
                    }
                    let line = self.line(now, (now - last).as_secs_f64());
                    let _ = writeln!(std::io::stderr(), "{line}");
                    last = now;
                    next += Duration::from_secs(1);
                }
            })
            .expect("spawn progress thread")
    }
}

fn pct(h: &Histogram<u64>, q: f64) -> String {
    if h.is_empty() {
        "-".into()
    } else {
        fmt_us(h.value_at_quantile(q) as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_are_named_by_response_code() {
        let busy = ClientError::Broker {
            code: response_code::SYSTEM_BUSY,
            remark: "too many requests".into(),
        };
        assert_eq!(error_name(&busy), "SYSTEM_BUSY");
        let odd = ClientError::Broker {
            code: 9999,
            remark: String::new(),
        };
        assert_eq!(error_name(&odd), "CODE_9999");
        assert_eq!(
            error_name(&ClientError::Timeout(Duration::from_secs(1))),
            "timeout"
        );
        let r = Recorder::new();
        r.err("SYSTEM_BUSY", true);
        r.err("SYSTEM_BUSY", true);
        r.err("timeout", false);
        let mut all = BTreeMap::new();
        r.all_errors(&mut all);
        assert_eq!(format_errors(&all), "SYSTEM_BUSY=2 timeout=1");
        assert_eq!(r.totals().errors.get("SYSTEM_BUSY"), Some(&2));
    }

    #[test]
    fn intervals_reset_totals_keep_measured_only() {
        let r = Recorder::new();
        let now = Instant::now();
        r.ok(100, 10, false, now);
        r.ok(200, 10, true, now);
        let i = r.take_interval();
        assert_eq!((i.ok, i.bytes, i.hist.len()), (2, 20, 2));
        assert_eq!(r.take_interval().ok, 0);
        let t = r.totals();
        assert_eq!((t.total_ok, t.total.len()), (1, 1));
        assert!(t.total.equivalent(t.total.max(), 200));
        assert_eq!(fmt_us(850.0), "850 us");
        assert_eq!(fmt_us(1250.0), "1.25 ms");
    }
}
