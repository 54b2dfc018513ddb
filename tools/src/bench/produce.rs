//! The producer side: one thread per connection, each with its own bounded
//! in-flight window, sending on an open-loop timetable or as fast as the
//! window allows (closed loop).
//!
//! Latency origin: open loop, the send's due time (see `schedule`); closed
//! loop, the moment the window granted a slot (so time spent waiting for a
//! slot is not charged to the next message). The window is ours, not the
//! `Producer`'s, so that moment can be observed.
//!
//! Every message carries `bseq` (sequence number), `bts` (origin, wall-clock
//! microseconds) and `brun` (run id) properties; its body is a zero-copy
//! slice of one shared buffer, of a fixed or uniformly random size.

use ringmq_engine::sync::lock;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringmq_client::{Message, Producer};

use super::schedule::{wait_until, Timetable};
use super::sequence::{SeqSet, RUN, SENT_US, SEQ};
use super::stats::{error_name, micros, new_hist, status_error, Recorder};

/// Message body size: fixed, or uniform in `min..=max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeSpec {
    pub min: usize,
    pub max: usize,
}

impl SizeSpec {
    /// `N` or `MIN-MAX` (bytes).
    pub fn parse(s: &str) -> Result<SizeSpec, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<usize>()
                .map_err(|_| format!("{t:?} is not a byte count"))
        };
        let (min, max) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => (num(s)?, num(s)?),
        };
        if min > max {
            return Err(format!("size range {min}-{max} is empty"));
        }
        if max > 4 * 1024 * 1024 {
            return Err(format!("size {max} exceeds RocketMQ's 4 MiB message limit"));
        }
        Ok(SizeSpec { min, max })
    }

    /// A size for the next message.
    pub fn pick(&self, rng: &mut u64) -> usize {
        if self.min == self.max {
            return self.min;
        }
        // xorshift64
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        self.min + (*rng % (self.max - self.min + 1) as u64) as usize
    }
}

impl std::fmt::Display for SizeSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.min == self.max {
            write!(f, "{}", self.min)
        } else {
            write!(f, "{}-{}", self.min, self.max)
        }
    }
}

/// Monotonic wall clock: `Instant`s mapped to microseconds since the epoch
/// from one base, so timestamps carried in messages and read back by the
/// consumers of this process never jump.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_wall_us: u64,
}

impl Clock {
    pub fn new() -> Self {
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_micros() as u64)
            .unwrap_or(0);
        Self {
            base: Instant::now(),
            base_wall_us: wall,
        }
    }

    pub fn wall_us(&self, t: Instant) -> u64 {
        if t >= self.base {
            self.base_wall_us + (t - self.base).as_micros() as u64
        } else {
            self.base_wall_us
                .saturating_sub((self.base - t).as_micros() as u64)
        }
    }
}

/// A counting semaphore: the in-flight window of one connection.
pub struct Window {
    free: Mutex<usize>,
    cv: Condvar,
    size: usize,
}

impl Window {
    pub fn new(size: usize) -> Self {
        Self {
            free: Mutex::new(size.max(1)),
            cv: Condvar::new(),
            size: size.max(1),
        }
    }

    /// Take a slot; true if the window was full and we had to wait.
    pub fn acquire(&self) -> bool {
        let mut f = lock(&self.free);
        let waited = *f == 0;
        while *f == 0 {
            f = self.cv.wait(f).unwrap_or_else(|p| p.into_inner());
        }
        *f -= 1;
        waited
    }

    pub fn release(&self) {
        let mut f = lock(&self.free);
        *f += 1;
        self.cv.notify_all();
    }

    /// Wait until every slot is free; false on timeout.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut f = lock(&self.free);
        while *f < self.size {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            f = self
                .cv
                .wait_timeout(f, deadline - now)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
        true
    }
}

/// Open or closed loop.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// Sends `0..total` on `timetable`; those from `warm_n` on are measured.
    Open {
        timetable: Timetable,
        warm_n: u64,
        total: u64,
    },
    /// As fast as the window allows, from `start`; sends issued after
    /// `warm_end` are measured; stop at `end` or after `count` measured sends.
    Closed {
        start: Instant,
        warm_end: Instant,
        end: Option<Instant>,
        count: Option<u64>,
    },
}

/// Settings shared by the connection threads.
pub struct Plan {
    pub topic: String,
    pub sizes: SizeSpec,
    pub tags: Vec<String>,
    pub keys: bool,
    pub inflight: usize,
    pub run_id: String,
    pub pace: Pace,
    pub clock: Clock,
    /// How long to wait for outstanding sends at the end.
    pub drain: Duration,
    pub body: Bytes,
    /// Closed loop: next sequence number, measured sends issued.
    pub next_seq: AtomicU64,
    pub measured_issued: AtomicU64,
    pub stop: AtomicBool,
}

/// What one connection thread reports.
pub struct ConnOutcome {
    /// Open loop: how late each measured send was ready to leave.
    pub lag: Histogram<u64>,
    /// Sends issued (all / measured).
    pub issued: u64,
    pub measured_issued: u64,
    /// When the last measured send was issued.
    pub last_issue: Option<Instant>,
    /// Sends that found the in-flight window full.
    pub window_waits: u64,
    /// Sends still outstanding when the drain wait gave up.
    pub undrained: bool,
}

/// Run connection `conn` of `conns` until its part of the plan is done.
pub fn run_connection(
    conn: usize,
    conns: usize,
    producer: Producer,
    plan: Arc<Plan>,
    rec: Arc<Recorder>,
    acks: Option<Arc<Mutex<SeqSet>>>,
) -> ConnOutcome {
    let window = Arc::new(Window::new(plan.inflight));
    let mut out = ConnOutcome {
        lag: new_hist(),
        issued: 0,
        measured_issued: 0,
        last_issue: None,
        window_waits: 0,
        undrained: false,
    };
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ (conn as u64 + 1).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    let send = |seq: u64, origin: Instant, measured: bool, rng: &mut u64| {
        let len = plan.sizes.pick(rng);
        let mut msg = Message::new(plan.body.slice(..len))
            .with_property(SEQ, seq.to_string())
            .with_property(SENT_US, plan.clock.wall_us(origin).to_string())
            .with_property(RUN, plan.run_id.as_str());
        if !plan.tags.is_empty() {
            msg = msg.with_tags(plan.tags[(seq % plan.tags.len() as u64) as usize].as_str());
        }
        if plan.keys {
            msg = msg.with_keys(format!("k{seq}"));
        }
        let (rec2, win2, acks2) = (rec.clone(), window.clone(), acks.clone());
        let callback = move |r: ringmq_client::Result<ringmq_client::SendResult>| {
            let done = Instant::now();
            match r {
                Ok(res) => {
                    if let Some(a) = &acks2 {
                        lock(a).insert(seq);
                    }
                    match status_error(res.status) {
                        None => rec2.ok(
                            micros(done.saturating_duration_since(origin)),
                            len as u64,
                            measured,
                            done,
                        ),
                        Some(name) => rec2.err(name, measured),
                    }
                }
                Err(e) => rec2.err(&error_name(&e), measured),
            }
            win2.release();
        };
        if let Err(e) = producer.send_async(&plan.topic, msg, callback) {
            rec.err(&error_name(&e), measured);
            window.release();
        }
    };

    match plan.pace {
        Pace::Open {
            timetable,
            warm_n,
            total,
        } => {
            for i in Timetable::owned(conn, conns, total) {
                if plan.stop.load(Ordering::Relaxed) {
                    break;
                }
                let due = timetable.due(i);
                wait_until(due);
                let ready = Instant::now();
                let measured = i >= warm_n;
                if measured {
                    out.lag.saturating_record(micros(ready - due));
                }
                if window.acquire() {
                    out.window_waits += 1;
                }
                send(i, due, measured, &mut rng);
                out.issued += 1;
                if measured {
                    out.measured_issued += 1;
                    out.last_issue = Some(Instant::now());
                }
            }
        }
        Pace::Closed {
            start,
            warm_end,
            end,
            count,
        } => {
            wait_until(start);
            loop {
                if plan.stop.load(Ordering::Relaxed) {
                    break;
                }
                if window.acquire() {
                    out.window_waits += 1;
                }
                let now = Instant::now();
                if end.is_some_and(|e| now >= e) {
                    window.release();
                    break;
                }
                let measured = now >= warm_end;
                if measured {
                    if let Some(c) = count {
                        if plan.measured_issued.fetch_add(1, Ordering::Relaxed) >= c {
                            window.release();
                            break;
                        }
                    }
                }
                let seq = plan.next_seq.fetch_add(1, Ordering::Relaxed);
                send(seq, now, measured, &mut rng);
                out.issued += 1;
                if measured {
                    out.measured_issued += 1;
                    out.last_issue = Some(now);
                }
                if producer.connection().is_closed() {
                    // Every later send would fail at once; the failure is counted.
                    tracing::error!(conn, "connection closed; this connection stops sending");
                    break;
                }
            }
        }
    }
    out.undrained = !window.wait_drained(plan.drain);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_stay_in_range() {
        assert_eq!(SizeSpec::parse("128"), Ok(SizeSpec { min: 128, max: 128 }));
        let r = SizeSpec::parse("100-200").unwrap();
        assert_eq!(r.to_string(), "100-200");
        assert!(SizeSpec::parse("9-3").is_err());
        assert!(SizeSpec::parse("x").is_err());
        assert!(SizeSpec::parse("99999999").is_err());
        let mut rng = 7;
        let picks: Vec<usize> = (0..1000).map(|_| r.pick(&mut rng)).collect();
        assert!(picks.iter().all(|s| (100..=200).contains(s)));
        assert!(picks.iter().any(|s| *s < 120) && picks.iter().any(|s| *s > 180));
    }

    #[test]
    fn window_bounds_and_drains() {
        let w = Arc::new(Window::new(2));
        assert!(!w.acquire());
        assert!(!w.acquire());
        assert!(!w.wait_drained(Duration::from_millis(10)));
        let w2 = w.clone();
        let t = std::thread::spawn(move || w2.acquire());
        std::thread::sleep(Duration::from_millis(20));
        w.release();
        assert!(t.join().unwrap(), "third acquire had to wait");
        w.release();
        w.release();
        assert!(w.wait_drained(Duration::from_millis(10)));
    }

    #[test]
    fn clock_is_monotonic_wall_time() {
        let c = Clock::new();
        let now = Instant::now();
        let a = c.wall_us(now);
        let b = c.wall_us(now + Duration::from_millis(3));
        assert_eq!(b - a, 3000);
        assert!(a > 1_600_000_000_000_000);
    }
}
