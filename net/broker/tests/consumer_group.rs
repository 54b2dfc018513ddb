//! A consumer group on a real broker (127.0.0.1): members join, leave and die while a
//! producer runs, and the group must re-converge (every queue held by exactly one live
//! member, each holding the AVG share of the sorted member list) within 2 s of each
//! change, driven by NOTIFY_CONSUMER_IDS_CHANGED (the periodic rebalance is 20 s here). At
//! the end every produced message has been consumed at least once; the test prints the
//! convergence times and the number of duplicates.
//!
//! One member runs in a child process (this test binary re-run with
//! `--exact child_consumer_entry --ignored` and [`CHILD_ENV`] set) so that it can be killed
//! with SIGKILL; it reports its held queues and consumed keys on stdout.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ringmq_client::allocate::{allocate, Averagely};
use ringmq_client::push::{ConsumeStatus, Listener, PushConsumer, PushConsumerOptions};
use ringmq_client::{Message, MessageQueue, Producer, ReceivedMessage};

const TOPIC: &str = "GroupTopic";
const GROUP: &str = "group_rebalance";
const QUEUES: i32 = 8;
const CONVERGE_WITHIN: Duration = Duration::from_secs(2);
/// The broker address, set only for the child member.
const CHILD_ENV: &str = "RINGMQ_CHILD_CONSUMER";

fn options(addr: &str, client_id: &str) -> PushConsumerOptions {
    let mut o = PushConsumerOptions::new(addr, GROUP);
    o.client_id = client_id.into();
    o.consume_from = ringmq_client::push::ConsumeFromWhere::FirstOffset;
    o.persist_interval = Duration::from_millis(500);
    o.suspend = Duration::from_secs(2);
    o
}

/// Keys consumed, over every member (the child's arrive through its stdout).
#[derive(Default)]
struct Consumed {
    counts: Mutex<HashMap<String, u32>>,
}

impl Consumed {
    fn add(&self, key: &str) {
        *self
            .counts
            .lock()
            .unwrap()
            .entry(key.to_owned())
            .or_default() += 1;
    }
}

fn recording_listener(consumed: Arc<Consumed>) -> Listener {
    Listener::concurrently(move |msgs: &[ReceivedMessage]| {
        for m in msgs {
            consumed.add(m.keys.as_deref().unwrap_or(""));
        }
        ConsumeStatus::Success
    })
}

/// The child member: consumes, prints `HELD q,q,..` on every change of its queues and
/// `KEY k` for every message, until killed. Not a test of its own: ignored in a normal
/// run, and run only by [`spawn_child`], which re-executes this binary with
/// `--exact child_consumer_entry --ignored` and the broker address in [`CHILD_ENV`].
#[test]
#[ignore = "child process of group_converges_after_joins_leave_and_kill, which runs it"]
fn child_consumer_entry() {
    let addr = std::env::var(CHILD_ENV).expect(
        "child_consumer_entry runs only as the child of group_converges_after_joins_leave_and_kill",
    );
    let client_id = std::env::var("RINGMQ_CHILD_ID").unwrap();
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let out2 = out.clone();
    let consumer = PushConsumer::new(options(&addr, &client_id))
        .subscribe(TOPIC, "*")
        .start(Listener::concurrently(move |msgs: &[ReceivedMessage]| {
            let mut o = out2.lock().unwrap();
            for m in msgs {
                let _ = writeln!(o, "KEY {}", m.keys.as_deref().unwrap_or(""));
            }
            let _ = o.flush();
            ConsumeStatus::Success
        }))
        .unwrap();
    let parent = std::os::unix::process::parent_id();
    let mut last = None;
    // Runs until killed; also ends if the parent test process went away.
    while std::os::unix::process::parent_id() == parent {
        let held = queue_ids(&consumer.assigned());
        if last.as_ref() != Some(&held) {
            let mut o = out.lock().unwrap();
            let list: Vec<String> = held.iter().map(|q| q.to_string()).collect();
            let _ = writeln!(o, "HELD {}", list.join(","));
            let _ = o.flush();
            last = Some(held);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    consumer.shutdown();
}

fn queue_ids(mqs: &[MessageQueue]) -> BTreeSet<i32> {
    mqs.iter()
        .filter(|q| q.topic == TOPIC)
        .map(|q| q.queue_id)
        .collect()
}

/// The child member, as the parent sees it.
struct ChildMember {
    child: Child,
    held: Arc<Mutex<Option<BTreeSet<i32>>>>,
}

fn spawn_child(addr: &str, client_id: &str, consumed: Arc<Consumed>) -> ChildMember {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_consumer_entry",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, addr)
        .env("RINGMQ_CHILD_ID", client_id)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let held = Arc::new(Mutex::new(None));
    let (h, stdout) = (held.clone(), child.stdout.take().unwrap());
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            // The test harness may print its own text before ours on the same line.
            if let Some(i) = line.find("KEY ") {
                consumed.add(&line[i + 4..]);
            } else if let Some(i) = line.find("HELD ") {
                let set = line[i + 5..]
                    .split(',')
                    .filter(|s| !s.is_empty())
                    .map(|s| s.parse().unwrap())
                    .collect();
                *h.lock().unwrap() = Some(set);
            }
        }
    });
    ChildMember { child, held }
}

impl Drop for ChildMember {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A live member, in-process or child.
enum Member {
    Local(PushConsumer),
    Child(ChildMember),
}

impl Member {
    fn held(&self) -> Option<BTreeSet<i32>> {
        match self {
            Member::Local(c) => Some(queue_ids(&c.assigned())),
            Member::Child(c) => c.held.lock().unwrap().clone(),
        }
    }
}

/// Waits until every live member holds exactly its AVG share; returns how long it took.
fn converge(members: &HashMap<String, Member>, since: Instant, what: &str) -> Duration {
    let all: Vec<MessageQueue> = (0..QUEUES)
        .map(|q| MessageQueue::new(TOPIC, "", q))
        .collect();
    let ids: Vec<String> = members.keys().cloned().collect();
    let deadline = since + Duration::from_secs(30);
    loop {
        let converged = members.iter().all(|(id, m)| {
            let want: BTreeSet<i32> = allocate(&Averagely, GROUP, id, &all, &ids)
                .iter()
                .map(|q| q.queue_id)
                .collect();
            m.held() == Some(want)
        });
        if converged {
            let took = since.elapsed();
            println!("{what}: converged in {} ms", took.as_millis());
            return took;
        }
        assert!(Instant::now() < deadline, "{what}: no convergence in 30 s");
        std::thread::sleep(Duration::from_millis(2));
    }
}

#[test]
fn group_converges_after_joins_leave_and_kill() {
    let dir = tempfile::tempdir().unwrap();
    let broker = common::start(dir.path());
    let addr = broker.addr.clone();
    common::create_topic(&addr, TOPIC, QUEUES);

    // A producer at ~2,000 msgs/s for the whole test (bounded by count and by `stop`).
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let producer = {
        let (addr, stop, sent) = (addr.clone(), stop.clone(), sent.clone());
        std::thread::spawn(move || {
            let p = Producer::connect(&addr, "group_rebalance_producer").unwrap();
            let mut n = 0u64;
            while !stop.load(Ordering::Acquire) && n < 200_000 {
                for _ in 0..20 {
                    let key = format!("k{n}");
                    p.send(TOPIC, Message::new(key.clone()).with_keys(key))
                        .unwrap();
                    n += 1;
                }
                sent.store(n, Ordering::Release);
                std::thread::sleep(Duration::from_millis(10));
            }
            n
        })
    };

    let consumed = Arc::new(Consumed::default());
    let mut members: HashMap<String, Member> = HashMap::new();
    let mut times = Vec::new();
    let start_local = |id: &str| {
        PushConsumer::new(options(&addr, id))
            .subscribe(TOPIC, "*")
            .start(recording_listener(consumed.clone()))
            .unwrap()
    };

    let t = Instant::now();
    members.insert("c1".into(), Member::Local(start_local("c1")));
    times.push(("c1 starts", converge(&members, t, "c1 starts")));
    std::thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    members.insert("c2".into(), Member::Local(start_local("c2")));
    times.push(("c2 joins", converge(&members, t, "c2 joins")));
    std::thread::sleep(Duration::from_millis(500));

    let t = Instant::now();
    let child = spawn_child(&addr, "c3", consumed.clone());
    members.insert("c3".into(), Member::Child(child));
    times.push((
        "c3 joins (child)",
        converge(&members, t, "c3 joins (child)"),
    ));
    std::thread::sleep(Duration::from_millis(1500));

    let t = Instant::now();
    if let Some(Member::Local(c2)) = members.remove("c2") {
        c2.shutdown();
    }
    times.push(("c2 leaves", converge(&members, t, "c2 leaves")));
    std::thread::sleep(Duration::from_millis(1500));

    let t = Instant::now();
    if let Some(Member::Child(c3)) = members.remove("c3") {
        drop(c3); // SIGKILL: no unregister, no offset commit
    }
    times.push(("c3 killed", converge(&members, t, "c3 killed")));
    std::thread::sleep(Duration::from_millis(500));

    stop.store(true, Ordering::Release);
    let produced = producer.join().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        let counts = consumed.counts.lock().unwrap();
        let missing: Vec<u64> = (0..produced)
            .filter(|n| !counts.contains_key(&format!("k{n}")))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        drop(counts);
        std::thread::sleep(Duration::from_millis(50));
    };
    let duplicates: u32 = consumed
        .counts
        .lock()
        .unwrap()
        .values()
        .map(|c| c - 1)
        .sum();
    println!(
        "produced {produced}, duplicates {duplicates}, missing {}",
        missing.len()
    );
    for (what, took) in &times {
        println!("  {what}: {} ms", took.as_millis());
    }
    assert!(
        missing.is_empty(),
        "{} messages never consumed, first {:?}",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    for (what, took) in &times {
        assert!(*took <= CONVERGE_WITHIN, "{what}: took {took:?}");
    }
    drop(members);
}
