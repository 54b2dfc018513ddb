//! Open-loop load: sends scheduled on a timetable at a fixed rate, each latency counted
//! from its scheduled time (so a stalled broker cannot hide its stall), for broker-bench
//! and ha-bench.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hdrhistogram::Histogram;
use ringmq_client::{Message, Producer, SendStatus};
use ringmq_engine::sync::lock;

/// The outcome of one open-loop run.
pub struct OpenLoop {
    /// Latency of every SEND_OK answer, microseconds from the send's scheduled time.
    pub latency_us: Histogram<u64>,
    pub achieved_per_s: f64,
    /// Answers other than SEND_OK (FLUSH_*_TIMEOUT, SLAVE_NOT_AVAILABLE).
    pub not_ok: u64,
    /// Sends that failed (error codes, I/O, timeouts).
    pub failed: u64,
}

/// Sends `rate * secs` messages of `body` to `topic`, the i-th at start + i/rate. With
/// `spin` the last ~100 us before each send are busy-waited; without it the thread sleeps
/// with 1 us timer slack (spinning costs a whole core on a small machine).
pub fn run(p: &Producer, topic: &str, body: &Bytes, rate: u64, secs: f64, spin: bool) -> OpenLoop {
    if !spin {
        // SAFETY: prctl(PR_SET_TIMERSLACK) takes integers only and affects this thread.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong, 0, 0, 0) };
    }
    let hist = Arc::new(Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram"),
    ));
    let not_ok = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let total = (rate as f64 * secs) as u64;
    let interval = Duration::from_secs_f64(1.0 / rate as f64);
    let start = Instant::now() + Duration::from_millis(10);
    for i in 0..total {
        let scheduled = start + interval.mul_f64(i as f64);
        let now = Instant::now();
        if scheduled > now {
            let wait = scheduled - now;
            if !spin {
                std::thread::sleep(wait);
            } else {
                if wait > Duration::from_micros(200) {
                    std::thread::sleep(wait - Duration::from_micros(100));
                }
                while Instant::now() < scheduled {
                    std::hint::spin_loop();
                }
            }
        }
        let (hist2, not_ok2, failed2) = (hist.clone(), not_ok.clone(), failed.clone());
        let res = p.send_async(topic, Message::new(body.clone()), move |r| {
            // Latency from the scheduled send time: a stall shows up in full.
            let us = scheduled.elapsed().as_micros() as u64;
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
    let elapsed = start.elapsed().as_secs_f64();
    let latency_us = lock(&hist).clone();
    OpenLoop {
        achieved_per_s: latency_us.len() as f64 / elapsed,
        latency_us,
        not_ok: not_ok.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
    }
}
