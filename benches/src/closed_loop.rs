//! Closed-loop load: sends back to back, as many in flight as the producer's
//! `max_in_flight` allows, each latency counted from its send call; for throughput at a
//! fixed concurrency (ha-bench's slow-link mode).

use ringmq_engine::sync::lock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringmq_client::{Message, Producer, SendStatus};

/// The outcome of one closed-loop run.
pub struct ClosedLoop {
    /// Latency of every SEND_OK answer, microseconds from its send call.
    pub latency_us: Histogram<u64>,
    /// Answers other than SEND_OK (FLUSH_*_TIMEOUT, SLAVE_NOT_AVAILABLE).
    pub not_ok: u64,
    /// Sends that failed (error codes, I/O, timeouts).
    pub failed: u64,
    /// From the first send to the last answer.
    pub secs: f64,
}

impl ClosedLoop {
    /// SEND_OK bytes per second, MB/s (1 MB = 10^6 B).
    pub fn mb_per_s(&self, body: usize) -> f64 {
        self.latency_us.len() as f64 * body as f64 / 1e6 / self.secs
    }
}

/// Sends `body` to `topic` for `secs`, blocking whenever the producer's in-flight bound
/// is reached; then waits for every answer.
pub fn run(p: &Producer, topic: &str, body: &Bytes, secs: f64) -> ClosedLoop {
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let not_ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(secs);
    while Instant::now() < until {
        let sent = Instant::now();
        let (hist2, not_ok2, failed2) = (hist.clone(), not_ok.clone(), failed.clone());
        let res = p.send_async(topic, Message::new(body.clone()), move |r| {
            let us = sent.elapsed().as_micros() as u64;
            match r {
                Ok(r) if r.status == SendStatus::SendOk => {
                    lock(&hist2).saturating_record(us.max(1))
                }
                Ok(_) => {
                    not_ok2.fetch_add(1, Ordering::Relaxed);
                }
                Err(_) => {
                    failed2.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        if res.is_err() {
            failed.fetch_add(1, Ordering::Relaxed);
        }
    }
    p.flush(Duration::from_secs(30));
    let secs = start.elapsed().as_secs_f64();
    let latency_us = lock(&hist).clone();
    ClosedLoop {
        latency_us,
        not_ok: not_ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        secs,
    }
}
