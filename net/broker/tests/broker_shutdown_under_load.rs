//! Shutting the broker down while producers are sending and consumers are long-polling:
//! the network loops and the store must stop without touching freed memory.
//!
//! A test process once aborted with glibc's "corrupted double-linked list" in exactly this
//! situation: a network loop's runtime was dropped with connection reads in flight, and
//! tokio-uring freed their 64 KiB buffers before cancelling the reads, so a producer's bytes
//! landed in freed heap memory (see `server::conn::Connections`). glibc notices that only
//! now and then (about once in a thousand rounds here), so this binary runs under a
//! quarantine allocator: freed blocks of 32 KiB or more are filled with a pattern and kept
//! out of circulation, and each round checks that none was written after it was freed.
//! Before the fix that caught the bug within a few rounds.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ringmq_client::{Message, MessageQueue, Producer, PullConsumer, PullStatus};

const TOPIC: &str = "ShutdownLoad";
const PRODUCERS: usize = 4;
const PULLERS: usize = 2;

/// Blocks at least this large are quarantined when freed.
const QUARANTINE_MIN: usize = 32 << 10;
/// At most this many blocks and bytes are held; past that, blocks are checked and released.
const QUARANTINE_BLOCKS: usize = 4096;
const QUARANTINE_BYTES: usize = 256 << 20;
const POISON: u8 = 0xA5;

/// The system allocator, except that large freed blocks are poisoned and held back.
struct Quarantine;

struct Held {
    blocks: Vec<(usize, Layout)>,
    bytes: usize,
}

static HELD: Mutex<Held> = Mutex::new(Held {
    blocks: Vec::new(),
    bytes: 0,
});
/// Blocks found modified after they were freed.
static WRITTEN_AFTER_FREE: AtomicUsize = AtomicUsize::new(0);
/// The first such block: its size, where the first changed byte is, and the bytes there.
static FIRST_WRITTEN: Mutex<Option<(usize, usize, [u8; 32])>> = Mutex::new(None);

// SAFETY: every block comes from `System` with the caller's layout and goes back to it with
// the same layout, either at once or after its stay in quarantine, where nothing else can
// reach it (the caller freed it). `HELD`'s Vec only grows in `quarantine_setup`, so no
// allocation happens while the lock is held in `dealloc`.
unsafe impl GlobalAlloc for Quarantine {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if layout.size() >= QUARANTINE_MIN {
            if let Ok(mut held) = HELD.try_lock() {
                if held.blocks.capacity() > 0 {
                    if held.blocks.len() == held.blocks.capacity()
                        || held.bytes + layout.size() > QUARANTINE_BYTES
                    {
                        release(&mut held);
                    }
                    // SAFETY: the caller gives up the block, valid for layout.size() bytes.
                    unsafe { std::ptr::write_bytes(ptr, POISON, layout.size()) };
                    held.blocks.push((ptr as usize, layout));
                    held.bytes += layout.size();
                    return;
                }
            }
        }
        // SAFETY: forwarded with the caller's guarantees.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Quarantine = Quarantine;

fn quarantine_setup() {
    let mut held = HELD.lock().unwrap();
    if held.blocks.capacity() == 0 {
        held.blocks.reserve_exact(QUARANTINE_BLOCKS);
    }
}

/// Counts the held blocks written after they were freed, then returns them all to `System`.
/// Allocates nothing (it runs inside `dealloc`).
fn release(held: &mut Held) {
    for (ptr, layout) in held.blocks.drain(..) {
        // SAFETY: the block is held in quarantine: valid for layout.size() bytes and
        // reachable by nobody else.
        let bytes = unsafe { std::slice::from_raw_parts(ptr as *const u8, layout.size()) };
        if let Some(at) = bytes.iter().position(|&b| b != POISON) {
            WRITTEN_AFTER_FREE.fetch_add(1, Ordering::SeqCst);
            if let Ok(mut first) = FIRST_WRITTEN.try_lock() {
                if first.is_none() {
                    let mut sample = [0u8; 32];
                    let n = (bytes.len() - at).min(32);
                    sample[..n].copy_from_slice(&bytes[at..at + n]);
                    *first = Some((bytes.len(), at, sample));
                }
            }
        }
        // SAFETY: allocated by `System` with this layout and not freed since.
        unsafe { System.dealloc(ptr as *mut u8, layout) };
    }
    held.bytes = 0;
}

fn iterations() -> usize {
    std::env::var("RINGMQ_SHUTDOWN_ITERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

/// One round: load the broker, shut it down mid-load, join every client thread.
fn round(iter: usize) {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = common::start(dir.path());
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let mut threads = Vec::new();

    for p in 0..PRODUCERS {
        let (addr, stop, sent) = (broker.addr.clone(), stop.clone(), sent.clone());
        threads.push(thread::spawn(move || {
            let producer = Producer::connect(&addr, "pg").unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let mq = MessageQueue::new(TOPIC, "broker-a", (n % 2) as i32);
                let body = format!("p{p}-{n}-{}", "x".repeat((n % 7) as usize * 100));
                // Errors are expected once the broker is going away.
                match producer.send_to(&mq, Message::new(body)) {
                    Ok(_) => {
                        sent.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
                n += 1;
            }
        }));
    }
    for c in 0..PULLERS {
        let (addr, stop) = (broker.addr.clone(), stop.clone());
        threads.push(thread::spawn(move || {
            let consumer = PullConsumer::connect(&addr, "cg").unwrap();
            // Queue 2 gets no messages: pulls there are held (suspended) until shutdown.
            let mq = MessageQueue::new(TOPIC, "broker-a", if c == 0 { 0 } else { 2 });
            let mut offset = 0;
            while !stop.load(Ordering::Relaxed) {
                match consumer.pull(&mq, offset, 32, Some(Duration::from_secs(2))) {
                    Ok(r) => {
                        if r.status == PullStatus::Found {
                            assert!(!r.messages.is_empty());
                        }
                        offset = r.next_begin_offset.max(offset);
                    }
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
        }));
    }

    // Let the load build up, then shut down in the middle of it, at a moment that varies
    // a little from round to round.
    let started = Instant::now();
    while sent.load(Ordering::Relaxed) < 50 && started.elapsed() < Duration::from_secs(10) {
        thread::sleep(Duration::from_millis(1));
    }
    thread::sleep(Duration::from_millis(10 + (iter as u64 * 37) % 60));
    broker.stop();
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().expect("client thread");
    }
    assert!(sent.load(Ordering::Relaxed) >= 50, "the broker took sends");
    drop(broker);
    dir.close().expect("temp store removed");
}

#[test]
fn shutdown_while_sending_and_long_polling() {
    quarantine_setup();
    let deadline = Instant::now() + Duration::from_secs(120);
    for iter in 0..iterations() {
        round(iter);
        release(&mut HELD.lock().unwrap());
        let bad = WRITTEN_AFTER_FREE.load(Ordering::SeqCst);
        assert_eq!(
            bad,
            0,
            "round {iter}: {bad} heap blocks written after free; the first one \
             (size, offset, bytes there): {:?}",
            FIRST_WRITTEN.lock().unwrap()
        );
        if Instant::now() > deadline {
            break;
        }
    }
}
