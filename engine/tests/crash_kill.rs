//! Crash test: a child process appends and prints each acknowledgement; the parent kills
//! it with SIGKILL at a random moment, reopens the store and checks that every
//! acknowledged record is there, intact, at its offsets. Repeated on the same store, under
//! SYNC_FLUSH, and under ASYNC_FLUSH with the disk stalled part-way (writes paused), so the
//! last acknowledgements exist only in the tail ring in shared memory, which start-up must
//! write back.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use ringmq_engine::commitlog::{AppendRequest, FlushMode, PutStatus};
use ringmq_engine::record::{self, Parsed};

const CHILD_ENV: &str = "RINGMQ_CRASH_CHILD_DIR";
const MODE_ENV: &str = "RINGMQ_CRASH_MODE";

/// Child side: append forever (until killed), 16 requests in flight. Not a test of its
/// own: ignored in a normal run, and run only by the parent below, which re-executes this
/// binary with `--exact crash_child --ignored` and the store directory in [`CHILD_ENV`].
#[test]
#[ignore = "child process of the kill tests below, which run it"]
fn crash_child() {
    let dir =
        std::env::var(CHILD_ENV).expect("crash_child runs only as the child of the kill tests");
    let start_seq: u64 = std::env::var("RINGMQ_CRASH_SEQ").unwrap().parse().unwrap();
    let stall_disk = std::env::var(MODE_ENV).as_deref() == Ok("async-stalled");
    let flush = if stall_disk {
        FlushMode::Async
    } else {
        FlushMode::Sync
    };
    let store = open(std::path::Path::new(&dir), flush);
    // Stalled mode: after this many acknowledgements no write reaches the disk any more.
    let stall_after = 20 + start_seq % 7 * 30;
    let mut acked = 0u64;
    let (tx, rx) = mpsc::channel();
    let mut next = start_seq;
    let mut in_flight = 0;
    let stdout = std::io::stdout();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        while in_flight < 16 {
            let seq = next;
            next += 1;
            let tx = tx.clone();
            let size = 20 + (seq * 37 % 3000) as usize;
            store.put(AppendRequest {
                messages: vec![message("crash", (seq % 3) as i32, seq, size)],
                wait_durable: true,
                done: Box::new(move |o| tx.send((seq, o)).unwrap()),
            });
            in_flight += 1;
        }
        let (seq, o) = rx.recv().unwrap();
        in_flight -= 1;
        if o.status == PutStatus::Ok {
            acked += 1;
            if stall_disk && acked == stall_after {
                ringmq_engine::io::faults::pause_writes(true);
            }
            let a = o.appended[0];
            let mut out = stdout.lock();
            writeln!(
                out,
                "ACK {seq} {} {} {}",
                a.phys_offset,
                seq % 3,
                a.queue_offset
            )
            .unwrap();
            out.flush().unwrap();
        }
    }
}

struct Ack {
    seq: u64,
    phys: i64,
    queue: i32,
    queue_offset: i64,
}

fn pseudo_random(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

#[test]
fn every_acknowledged_record_survives_sigkill() {
    kill_and_check("sync", FlushMode::Sync, 20);
}

#[test]
fn async_acks_from_the_shared_ring_survive_sigkill_with_the_disk_stalled() {
    kill_and_check("async-stalled", FlushMode::Async, 10);
}

fn kill_and_check(mode: &str, flush: FlushMode, kills: usize) {
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    println!("crash test seed {seed}");
    let exe = std::env::current_exe().unwrap();
    let mut acks: Vec<Ack> = Vec::new();
    let mut next_seq = 0u64;
    for round in 0..kills {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ENV, dir.path())
            .env("RINGMQ_CRASH_SEQ", next_seq.to_string())
            .env(MODE_ENV, mode)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.strip_prefix("ACK ") {
                    let f: Vec<i64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                    tx.send(Ack {
                        seq: f[0] as u64,
                        phys: f[1],
                        queue: f[2] as i32,
                        queue_offset: f[3],
                    })
                    .unwrap();
                }
            }
        });
        // Wait for the first acknowledgement, then kill at a random moment.
        let first = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("child acknowledges appends");
        acks.push(first);
        std::thread::sleep(Duration::from_millis(20 + pseudo_random(&mut seed) % 300));
        // SAFETY: kill(2) on our own child's pid; no memory involved.
        unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
        child.wait().unwrap();
        reader.join().unwrap();
        acks.extend(rx.try_iter());
        next_seq = acks.iter().map(|a| a.seq).max().unwrap() + 1_000_000;

        let store = open(dir.path(), flush);
        for a in &acks {
            let got = store
                .get_messages("crash", a.queue, a.queue_offset, 1, usize::MAX, None)
                .unwrap();
            assert_eq!(
                got.messages.len(),
                1,
                "round {round}: ack seq {} (queue {} offset {}) lost",
                a.seq,
                a.queue,
                a.queue_offset
            );
            let Parsed::Record(v) = record::parse(&got.messages[0], a.phys, true).unwrap() else {
                panic!("not a record")
            };
            assert_eq!(
                v.physical_offset(),
                a.phys,
                "round {round}: seq {} moved",
                a.seq
            );
            assert_eq!(
                seq_of(v.body()),
                a.seq,
                "round {round}: wrong record at {}",
                a.phys
            );
        }
        println!(
            "{mode} round {round}: {} acknowledged records intact",
            acks.len()
        );
        store.shutdown().unwrap();
    }
    assert!(acks.len() >= kills);
}
