//! `ringmq bench` end to end, running the built binary:
//!
//! - against a tiny fake broker (below) that stops answering for 200 ms once,
//!   300 ms into the run: an open-loop run must charge the stall to the high
//!   percentiles while the median stays small;
//! - the `.hgrm` and `.json` files are written and the JSON parses back into
//!   a `RunSummary`;
//! - against a real `ringmq broker` with consumers: nothing lost or duplicated.
//!
//! Every child process runs under a deadline and is killed if it overstays.

#[path = "../src/report/summary.rs"]
#[allow(dead_code)]
mod summary;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use ringmq_remoting::{encode_frame, request_code, response_code, FrameDecoder, RemotingCommand};
use summary::RunSummary;

const BIN: &str = env!("CARGO_BIN_EXE_ringmq");

/// Accepted connections: a socket clone (to shut it down) and its thread.
type Conns = Arc<Mutex<Vec<(TcpStream, JoinHandle<()>)>>>;

/// A fake RocketMQ broker: answers sends with SUCCESS (msgId, queueId,
/// queueOffset), routes with TOPIC_NOT_EXIST, anything else with
/// REQUEST_CODE_NOT_SUPPORTED. With a stall, it holds every send that
/// arrives in `[first send + after, first send + after + length)` until the
/// window ends.
struct FakeBroker {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    conns: Conns,
}

#[derive(Clone, Copy)]
struct Stall {
    after: Duration,
    length: Duration,
}

struct Shared {
    stall: Option<Stall>,
    first_send: OnceLock<Instant>,
    offset: AtomicI64,
}

impl FakeBroker {
    fn start(stall: Option<Stall>) -> FakeBroker {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Conns = Arc::default();
        let shared = Arc::new(Shared {
            stall,
            first_send: OnceLock::new(),
            offset: AtomicI64::new(0),
        });
        let (stop2, conns2) = (stop.clone(), conns.clone());
        let accept = std::thread::spawn(move || {
            for s in listener.incoming() {
                if stop2.load(Ordering::Acquire) {
                    return;
                }
                let Ok(s) = s else { continue };
                let s2 = s.try_clone().unwrap();
                let shared = shared.clone();
                let t = std::thread::spawn(move || serve(s, &shared));
                conns2.lock().unwrap().push((s2, t));
            }
        });
        FakeBroker {
            addr,
            stop,
            accept: Some(accept),
            conns,
        }
    }
}

impl Drop for FakeBroker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Release);
        let _ = TcpStream::connect(self.addr);
        let _ = self.accept.take().unwrap().join();
        for (s, t) in std::mem::take(&mut *self.conns.lock().unwrap()) {
            let _ = s.shutdown(Shutdown::Both);
            let _ = t.join();
        }
    }
}

fn serve(mut s: TcpStream, shared: &Shared) {
    let mut dec = FrameDecoder::default();
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match s.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        while let Some(req) = dec.decode(&mut buf).unwrap() {
            if req.is_response() || req.is_oneway() {
                continue;
            }
            let resp = match req.code {
                request_code::SEND_MESSAGE | request_code::SEND_MESSAGE_V2 => {
                    let first = *shared.first_send.get_or_init(Instant::now);
                    if let Some(st) = shared.stall {
                        let (from, to) = (first + st.after, first + st.after + st.length);
                        let now = Instant::now();
                        if now >= from && now < to {
                            std::thread::sleep(to - now);
                        }
                    }
                    let off = shared.offset.fetch_add(1, Ordering::Relaxed);
                    let queue = req.ext_any(&["e", "queueId"]).unwrap_or("0").to_owned();
                    RemotingCommand::response_to(&req, response_code::SUCCESS, None)
                        .with_ext("msgId", format!("7F00000100002A9F{off:016X}"))
                        .with_ext("queueId", queue)
                        .with_ext("queueOffset", off)
                }
                request_code::GET_ROUTEINFO_BY_TOPIC => RemotingCommand::response_to(
                    &req,
                    response_code::TOPIC_NOT_EXIST,
                    Some("no route".into()),
                ),
                _ => RemotingCommand::response_to(
                    &req,
                    response_code::REQUEST_CODE_NOT_SUPPORTED,
                    None,
                ),
            };
            let mut out = BytesMut::new();
            encode_frame(&resp, &mut out).unwrap();
            if s.write_all(&out).is_err() {
                return;
            }
        }
    }
}

/// Run the binary with `args`, killing it after `limit`.
fn run_bounded(args: &[&str], limit: Duration) -> Output {
    let child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, limit)
}

fn wait_bounded(mut child: Child, limit: Duration) -> Output {
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() >= deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "ringmq overstayed {limit:?}\nstdout:\n{}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn check_ok(out: &Output) {
    assert!(
        out.status.success(),
        "ringmq bench failed ({})\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn load(dir: &Path, name: &str) -> RunSummary {
    RunSummary::load(&dir.join(format!("{name}.json"))).unwrap()
}

#[test]
fn open_loop_charges_a_broker_stall() {
    let fake = FakeBroker::start(Some(Stall {
        after: Duration::from_millis(300),
        length: Duration::from_millis(200),
    }));
    let dir = tempfile::tempdir().unwrap();
    let addr = fake.addr.to_string();
    let out = run_bounded(
        &[
            "bench",
            "--addr",
            &addr,
            "--rate",
            "2000",
            "--warmup-secs",
            "0",
            "--duration-secs",
            "1.5",
            "--connections",
            "2",
            "--name",
            "stall",
            "--out",
            dir.path().to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(30),
    );
    check_ok(&out);
    let s = load(dir.path(), "stall");
    let report = String::from_utf8_lossy(&out.stdout);
    eprintln!("{report}");
    assert_eq!(s.mode, "open");
    assert_eq!(s.offered_rate, Some(2000.0));
    assert!(s.errors.is_empty(), "{:?}", s.errors);
    assert_eq!(s.count, 3000, "{report}");
    // ~400 of 3000 sends were due during the stall: the tail shows it...
    let l = &s.latency_us;
    assert!(l.p999 >= 150_000.0 || l.max >= 150_000.0, "{l:?}\n{report}");
    assert!(l.max <= 400_000.0, "{l:?}");
    // ...while the median stays small.
    assert!(l.p50 < 20_000.0, "{l:?}\n{report}");
    drop(fake);
}

#[test]
fn closed_loop_writes_hgrm_and_json() {
    let fake = FakeBroker::start(None);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("runs");
    let addr = fake.addr.to_string();
    let out = run_bounded(
        &[
            "bench",
            "--addr",
            &addr,
            "--warmup-secs",
            "0.2",
            "--count",
            "5000",
            "--size",
            "100-300",
            "--tags",
            "a,b",
            "--keys",
            "--header",
            "binary",
            "--name",
            "closed",
            "--out",
            out_dir.to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    check_ok(&out);
    let s = load(&out_dir, "closed");
    assert_eq!(s.name, "closed");
    assert_eq!(s.mode, "closed");
    assert_eq!(s.offered_rate, None);
    assert_eq!(s.count, 5000);
    assert!(s.throughput_msgs_per_s > 0.0);
    let mb = s.count as f64 * 200.0 / 1e6 / s.duration_s;
    assert!((s.throughput_mb_per_s / mb - 1.0).abs() < 0.2, "{s:?}");
    assert!(s.latency_us.p50 > 0.0 && s.latency_us.max >= s.latency_us.p99);
    assert_eq!((s.lost, s.duplicated), (None, None));
    assert!(s.e2e_latency_us.is_none());
    assert_eq!(s.hgrm, "closed.hgrm");
    assert_eq!(s.settings.get("header").map(String::as_str), Some("binary"));
    let hgrm = std::fs::read_to_string(out_dir.join(&s.hgrm)).unwrap();
    assert!(hgrm.trim_start().starts_with("Value"), "{hgrm}");
    assert!(hgrm.contains("Total count    =         5000"), "{hgrm}");
    // Round trip through the summary type.
    let again: RunSummary =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("closed.json")).unwrap())
            .unwrap();
    assert_eq!(again, s);
    // Progress lines went to stderr.
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("ringmq bench closed"), "{err}");
    drop(fake);
}

#[test]
fn self_test_states_the_generator_ceiling() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_bounded(
        &[
            "bench",
            "--self-test",
            "--warmup-secs",
            "0.2",
            "--duration-secs",
            "0.5",
            "--name",
            "self",
            "--out",
            dir.path().to_str().unwrap(),
            "--quiet",
        ],
        Duration::from_secs(30),
    );
    check_ok(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert!(text.contains("generator   ceiling"), "{text}");
    assert!(load(dir.path(), "self").count > 0);
}

#[test]
fn bad_arguments_fail_cleanly() {
    let out = run_bounded(
        &["bench", "--size", "10-2", "--addr", "127.0.0.1:1"],
        Duration::from_secs(10),
    );
    assert!(!out.status.success());
    let out = run_bounded(
        &["bench", "--addr", "127.0.0.1:1", "--count", "10", "--quiet"],
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot connect"));
}

/// A real broker: consumers see every message exactly once.
#[test]
fn consumers_count_nothing_lost_against_a_real_broker() {
    let store = tempfile::tempdir().unwrap();
    let mut broker = Command::new(BIN)
        .args(["broker", "--listen-port", "0", "--no-pin", "--store"])
        .arg(store.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = broker.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(a) = line.strip_prefix("ringmq broker listening on ") {
                let _ = tx.send(a.trim().to_owned());
            }
        }
    });
    let addr = rx.recv_timeout(Duration::from_secs(20));
    let result = addr.map(|addr| {
        let dir = tempfile::tempdir().unwrap();
        let out = run_bounded(
            &[
                "bench",
                "--addr",
                &addr,
                "--rate",
                "2000",
                "--warmup-secs",
                "0.2",
                "--count",
                "2000",
                "--consumers",
                "2",
                "--queues",
                "4",
                "--drain-secs",
                "3",
                "--name",
                "e2e",
                "--out",
                dir.path().to_str().unwrap(),
                "--quiet",
            ],
            Duration::from_secs(60),
        );
        (out, dir)
    });
    // Stop the broker whatever happened.
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(broker.id() as i32, libc::SIGTERM) };
    let _ = wait_bounded(broker, Duration::from_secs(20));
    let _ = reader.join();
    let (out, dir) = result.expect("broker did not start");
    check_ok(&out);
    let s = load(dir.path(), "e2e");
    let text = String::from_utf8_lossy(&out.stdout);
    eprintln!("{text}");
    assert_eq!(s.lost, Some(0), "{text}");
    assert_eq!(s.duplicated, Some(0), "{text}");
    assert_eq!(s.count, 2000, "{text}");
    let e2e = s.e2e_latency_us.expect("e2e latency");
    assert!(e2e.p50 > 0.0 && e2e.max < 5_000_000.0, "{e2e:?}");
    assert_eq!(
        s.settings.get("e2e_delivered_measured").map(String::as_str),
        Some("2000"),
        "{text}"
    );
}
