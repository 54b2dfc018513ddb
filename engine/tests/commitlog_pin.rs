//! Tail pins: a pinned range keeps its bytes while the log grows past the ring's capacity
//! (the append that would overwrite them waits, without spinning the writer), the writer
//! raises pin pressure after PIN_PRESSURE_AFTER, and dropping the pin lets the append
//! complete and clears the pressure.

mod common;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use ringmq_engine::commitlog::{FlushMode, PutStatus, PIN_PRESSURE_AFTER};

/// CPU time (ns) of this process's CommitLog writer thread(s).
fn writer_cpu_ns() -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir("/proc/self/task").unwrap().flatten() {
        let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
        if comm.trim() != "ringmq-writer" {
            continue;
        }
        let stat = std::fs::read_to_string(entry.path().join("schedstat")).unwrap_or_default();
        total += stat
            .split_whitespace()
            .next()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while !cond() {
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    true
}

#[test]
fn a_pin_holds_appends_back_until_dropped_and_raises_pressure() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = Arc::new(open(dir.path(), FlushMode::Async));
    let log = store.commitlog().clone();
    let cap = log.config().ring_capacity as i64;
    for seq in 0..50 {
        assert_eq!(
            store.put_blocking(vec![message("T", 0, seq, 2000)]).status,
            PutStatus::Ok
        );
    }
    let phys = 4096i64;
    let len = 8192usize;
    let pin = log.pin_tail(phys, len).expect("the range is in the ring");
    assert_eq!(pin.phys(), phys);
    let mut before = vec![0u8; len];
    log.read(phys, &mut before).unwrap();
    assert!(pin.bytes() == &before[..]);
    // Not in the window: past the end, or longer than the ring.
    assert!(log.pin_tail(log.max_offset(), 1).is_none());
    assert!(log.pin_tail(0, cap as usize + 1).is_none());
    assert_eq!(log.pin_revoke_below(), 0);

    // Produce until the log would have to overwrite the pinned bytes.
    let end = Arc::new(AtomicI64::new(log.max_offset()));
    let target = phys + cap + 256 * 1024;
    let producer = {
        let (store, end) = (store.clone(), end.clone());
        std::thread::spawn(move || {
            let mut seq = 1000;
            while end.load(Ordering::Acquire) < target {
                let o = store.put_blocking(vec![message("T", 1, seq, 3000)]);
                assert_eq!(o.status, PutStatus::Ok);
                end.store(o.end_offset, Ordering::Release);
                seq += 1;
            }
        })
    };
    // The producer gets close to a ring capacity past the pin, then stalls there.
    assert!(
        wait_until(Duration::from_secs(10), || end.load(Ordering::Acquire)
            > phys + cap - 64 * 1024),
        "appends up to the pin went through (end {})",
        end.load(Ordering::Acquire)
    );
    std::thread::sleep(Duration::from_millis(50));
    let stalled_at = end.load(Ordering::Acquire);
    assert!(
        stalled_at <= phys + cap,
        "the log grew to {stalled_at}, past the pinned {phys} + ring {cap}"
    );
    assert!(log.cold_end() <= phys, "the window moved past the pin");
    // Pressure comes after PIN_PRESSURE_AFTER, not before.
    let t0 = Instant::now();
    assert!(
        wait_until(Duration::from_secs(5), || log.pin_revoke_below() > phys),
        "pin pressure was not raised"
    );
    assert!(t0.elapsed() + Duration::from_millis(60) >= PIN_PRESSURE_AFTER);
    // Blocked by a pin, the writer sleeps instead of spinning.
    let cpu0 = writer_cpu_ns();
    std::thread::sleep(Duration::from_millis(300));
    let cpu = writer_cpu_ns() - cpu0;
    assert!(
        cpu < 100_000_000,
        "the blocked writer used {} ms of CPU in 300 ms",
        cpu / 1_000_000
    );
    assert_eq!(
        end.load(Ordering::Acquire),
        stalled_at,
        "an append got past the pin"
    );
    assert!(pin.bytes() == &before[..], "pinned bytes changed");

    // Dropping the pin lets everything through and clears the pressure.
    drop(pin);
    producer.join().unwrap();
    assert!(end.load(Ordering::Acquire) >= target);
    assert!(log.cold_end() > phys);
    assert!(
        wait_until(Duration::from_secs(2), || log.pin_revoke_below() == 0),
        "pin pressure stayed at {}",
        log.pin_revoke_below()
    );
    let o = store.put_blocking(vec![message("T", 2, 1, 100)]);
    assert_eq!(o.status, PutStatus::Ok);
    store.shutdown().unwrap();
}

#[test]
fn pins_of_the_same_start_count() {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let store = open(dir.path(), FlushMode::Async);
    let log = store.commitlog();
    store.put_blocking(vec![message("T", 0, 1, 5000)]);
    let a = log.pin_tail(0, 100).unwrap();
    let b = log.pin_tail(0, 4000).unwrap();
    drop(a);
    let tail = log.tail_buffer();
    assert!(tail.holds(&b));
    let at = b.as_ptr() as usize;
    assert!(at >= tail.as_ptr() as usize && at + b.len() <= tail.as_ptr() as usize + tail.len());
    drop(b);
    store.shutdown().unwrap();
}
