//! A structured request fuzzer (issue 11, item 6): every request code the broker serves,
//! and unknown ones, with generated and mutated header fields and bodies, against an
//! in-process broker. After each batch a fresh client must still send and pull; at the
//! end the broker must stop within 5 s, reopen its store and serve again; no thread may
//! have panicked and no request may go unanswered.
//!
//! Bounded in CI (`RINGMQ_FUZZ_REQUESTS`, default 3000). A long run:
//! `RINGMQ_FUZZ_REQUESTS=10000000 RINGMQ_FUZZ_THREADS=16 cargo test -p ringmq-broker
//! --release --test broker_fuzz_requests -- --nocapture`; `RINGMQ_FUZZ_SEED` replays a
//! seed (each run prints its own; connection `t` uses `seed + t`).

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_client::{Connection, Message, MessageQueue, Producer, PullConsumer};
use ringmq_engine::record::{encode_batch, BatchItem};
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::RemotingCommand;

const T: Duration = Duration::from_secs(5);
const BATCH: u64 = 250;

/// Every code the broker routes, plus neighbours it does not serve.
const CODES: &[i32] = &[
    rq::SEND_MESSAGE,
    rq::SEND_MESSAGE_V2,
    rq::SEND_BATCH_MESSAGE,
    rq::PULL_MESSAGE,
    rq::LITE_PULL_MESSAGE,
    rq::CONSUMER_SEND_MSG_BACK,
    rq::QUERY_CONSUMER_OFFSET,
    rq::UPDATE_CONSUMER_OFFSET,
    rq::GET_MAX_OFFSET,
    rq::GET_MIN_OFFSET,
    rq::SEARCH_OFFSET_BY_TIMESTAMP,
    rq::HEART_BEAT,
    rq::UNREGISTER_CLIENT,
    rq::GET_CONSUMER_LIST_BY_GROUP,
    rq::LOCK_BATCH_MQ,
    rq::UNLOCK_BATCH_MQ,
    rq::UPDATE_AND_CREATE_TOPIC,
    rq::GET_ALL_TOPIC_CONFIG,
    rq::GET_ROUTEINFO_BY_TOPIC,
    rq::GET_BROKER_CLUSTER_INFO,
    rq::GET_BROKER_RUNTIME_INFO,
    rq::GET_ALL_CONSUMER_OFFSET,
    rq::GET_ALL_DELAY_OFFSET,
    rq::GET_ALL_SUBSCRIPTIONGROUP_CONFIG,
];

/// Header fields any processor reads (long and short send names included).
const FIELDS: &[&str] = &[
    "topic",
    "queueId",
    "queueOffset",
    "consumerGroup",
    "group",
    "producerGroup",
    "defaultTopic",
    "defaultTopicQueueNums",
    "sysFlag",
    "bornTimestamp",
    "flag",
    "properties",
    "reconsumeTimes",
    "unitMode",
    "maxReconsumeTimes",
    "batch",
    "brokerName",
    "maxMsgNums",
    "commitOffset",
    "suspendTimeoutMillis",
    "subscription",
    "expressionType",
    "offset",
    "delayLevel",
    "originMsgId",
    "originTopic",
    "readQueueNums",
    "writeQueueNums",
    "perm",
    "topicFilterType",
    "topicSysFlag",
    "order",
    "attributes",
    "timestamp",
    "setZeroIfNotFound",
    "clientID",
    "committed",
    "force",
    "acceptStandardJsonOnly",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "i",
    "j",
    "k",
    "l",
    "m",
    "n",
    "bname",
];

/// splitmix64: small, seedable, good enough to drive a fuzzer.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }

    fn int(&mut self) -> String {
        let edges: &[i64] = &[
            0,
            1,
            -1,
            2,
            3,
            7,
            8,
            255,
            256,
            1024,
            1025,
            65_535,
            65_536,
            70_000,
            i32::MAX as i64,
            i32::MIN as i64,
            i64::MAX,
            i64::MIN,
        ];
        match self.below(4) {
            0 => self.pick(edges).to_string(),
            1 => (self.next() as i64).to_string(),
            2 => (self.below(16) as i64).to_string(),
            _ => self
                .pick(&["", " 1", "1e3", "0x10", "true", "NaN", "١٢"])
                .to_string(),
        }
    }

    fn name(&mut self) -> String {
        match self.below(6) {
            0 => self
                .pick(&[
                    "T",
                    "TBW102",
                    "FuzzTopic",
                    "%RETRY%G",
                    "%DLQ%G",
                    "SCHEDULE_TOPIC_XXXX",
                    "rmq_sys_x",
                    "RMQ_SYS_TRANS_HALF_TOPIC",
                    "G",
                    "OFFSET_MOVED_EVENT",
                ])
                .to_string(),
            1 => "x".repeat(self.below(300)),
            2 => self
                .pick(&[
                    "", " ", "a b", "../x", "a/b", ".", "..", "a@b", "a\u{0}b", "é",
                ])
                .to_string(),
            3 => format!("Fuzz{}", self.below(50)),
            4 => {
                let len = self.below(20);
                (0..len)
                    .map(|_| (b'!' + self.below(94) as u8) as char)
                    .collect()
            }
            _ => format!("%RETRY%Fuzz{}", self.below(5)),
        }
    }

    fn value(&mut self) -> String {
        match self.below(5) {
            0 | 1 => self.int(),
            2 => self.name(),
            3 => self
                .pick(&[
                    "true",
                    "false",
                    "SINGLE_TAG",
                    "MULTI_TAG",
                    "TAG",
                    "SQL92",
                    "*",
                    "+a=b,-c",
                ])
                .to_string(),
            _ => self.properties(),
        }
    }

    fn properties(&mut self) -> String {
        let n = self.below(6);
        let mut s = String::new();
        for _ in 0..n {
            let key = self.pick(&[
                "DELAY",
                "WAIT",
                "TAGS",
                "KEYS",
                "UNIQ_KEY",
                "REAL_TOPIC",
                "REAL_QID",
                "RETRY_TOPIC",
                "TRAN_MSG",
                "MAX_OFFSET",
                "x",
            ]);
            s.push_str(key);
            s.push('\u{1}');
            s.push_str(&self.int());
            if !self.chance(10) {
                s.push('\u{2}');
            }
        }
        s
    }

    fn bytes(&mut self, max: usize) -> Vec<u8> {
        let len = self.below(max + 1);
        (0..len).map(|_| self.next() as u8).collect()
    }

    fn body(&mut self, code: i32) -> Vec<u8> {
        match self.below(5) {
            0 => Vec::new(),
            1 => self.bytes(512),
            2 if code == rq::SEND_BATCH_MESSAGE => {
                let items: Vec<BatchItem> = (0..self.below(5))
                    .map(|_| BatchItem {
                        flag: self.int().parse().unwrap_or(0),
                        body: Bytes::from(self.bytes(64)),
                        properties: Bytes::from(self.properties()),
                    })
                    .collect();
                encode_batch(&items).map(|b| b.to_vec()).unwrap_or_default()
            }
            2 | 3 => {
                let mqs: Vec<serde_json::Value> = (0..self.below(4))
                    .map(|_| {
                        serde_json::json!({"topic": self.name(), "brokerName": "broker-a",
                        "queueId": self.int().parse::<i64>().unwrap_or(0)})
                    })
                    .collect();
                let subs: Vec<serde_json::Value> = (0..self.below(3))
                    .map(|_| {
                        serde_json::json!({"topic": self.name(), "subString": "*",
                        "expressionType": "TAG", "tagsSet": [], "codeSet": [], "subVersion": 1,
                        "classFilterMode": false})
                    })
                    .collect();
                serde_json::json!({
                    "consumerGroup": self.name(), "clientId": self.name(), "clientID": self.name(),
                    "mqSet": mqs, "onlyThisBroker": self.chance(50),
                    "consumerDataSet": [{"groupName": self.name(), "consumeType": "CONSUME_PASSIVELY",
                        "messageModel": self.pick(&["CLUSTERING", "BROADCASTING", "x"]).to_string(),
                        "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                        "subscriptionDataSet": subs, "unitMode": self.chance(10)}],
                    "producerDataSet": [{"groupName": self.name()}],
                    "heartbeatFingerprint": self.int().parse::<i64>().unwrap_or(0),
                })
                .to_string()
                .into_bytes()
            }
            _ => b"hello fuzz".to_vec(),
        }
    }

    /// A value `field` takes in a well-formed request of `code`.
    fn valid(&mut self, code: i32, field: &str) -> String {
        let small = |r: &mut Self, n: usize| r.below(n).to_string();
        match field {
            "topic" | "b" | "originTopic" => self
                .pick(&["FuzzTopic", "Fuzz1", "Fuzz2", "%RETRY%FuzzGroup"])
                .to_string(),
            "defaultTopic" | "c" => "TBW102".into(),
            "consumerGroup" | "group" | "producerGroup" | "a" => {
                self.pick(&["FuzzGroup", "FuzzGroup2"]).to_string()
            }
            "queueId" | "e" => small(self, 9),
            "queueOffset" | "commitOffset" => small(self, 100),
            "maxMsgNums" => (1 + self.below(64)).to_string(),
            "sysFlag" | "f" => small(self, 8),
            "suspendTimeoutMillis" => small(self, 50),
            "offset" => {
                if self.chance(50) {
                    "0".into() // the first record of the log
                } else {
                    small(self, 200_000)
                }
            }
            "delayLevel" | "reconsumeTimes" | "j" => small(self, 4),
            "maxReconsumeTimes" | "l" => small(self, 20),
            "readQueueNums" | "writeQueueNums" | "defaultTopicQueueNums" | "d" => {
                (1 + self.below(16)).to_string()
            }
            "perm" => self.pick(&["2", "4", "6", "7"]).to_string(),
            "topicFilterType" => "SINGLE_TAG".into(),
            "batch" | "m" => (code == rq::SEND_BATCH_MESSAGE).to_string(),
            "order"
            | "unitMode"
            | "k"
            | "setZeroIfNotFound"
            | "committed"
            | "force"
            | "acceptStandardJsonOnly" => self.chance(50).to_string(),
            "timestamp" | "bornTimestamp" | "g" => "1700000000000".into(),
            "flag" | "h" | "topicSysFlag" => "0".into(),
            "properties" | "i" => "TAGS\u{1}a\u{2}KEYS\u{1}k\u{2}".into(),
            "subscription" => "*".into(),
            "expressionType" => "TAG".into(),
            "clientID" => "fuzz-client".into(),
            "brokerName" | "bname" => "broker-a".into(),
            _ => self.name(),
        }
    }

    /// A request with a code of [`CODES`] (or an unknown one): mostly a well-formed one
    /// with a field or two mutated or missing, sometimes fields drawn at random.
    fn request(&mut self) -> RemotingCommand {
        let code = if self.chance(5) {
            self.next() as i32
        } else {
            *self.pick(CODES)
        };
        let mut req = RemotingCommand::request(code);
        req.version = *self.pick(&[0, 317, 401, 474, 999, -1]);
        if self.chance(70) {
            for field in FIELDS {
                let v = self.valid(code, field);
                req.set_ext(*field, v);
            }
            for _ in 0..self.below(3) {
                let field = *self.pick(FIELDS);
                if self.chance(25) {
                    req.ext_fields.remove(field);
                } else {
                    let v = self.value();
                    req.set_ext(field, v);
                }
            }
        } else {
            let present = if self.chance(70) { 80 } else { 20 };
            for field in FIELDS {
                if self.chance(present) {
                    let v = self.value();
                    req.set_ext(*field, v);
                }
            }
        }
        req.with_body(self.body(code))
    }
}

static PANICKED: AtomicBool = AtomicBool::new(false);

fn healthy(addr: &str, round: u64) {
    let p = Producer::connect(addr, "FuzzProducer").unwrap();
    let mq = MessageQueue::new("FuzzHealth", "broker-a", 0);
    let body = format!("health-{round}");
    let r = p.send_to(&mq, Message::new(body.clone())).unwrap();
    let c = PullConsumer::connect(addr, "FuzzHealthGroup").unwrap();
    // Pull at the send's own offset until it is dispatched (a pull past the dispatched
    // end is told to go elsewhere; other connections' health messages are there).
    let deadline = Instant::now() + T;
    loop {
        let got = c
            .pull(&mq, r.queue_offset, 1, Some(Duration::from_millis(200)))
            .unwrap();
        if let Some(m) = got.messages.first() {
            assert_eq!(m.queue_offset, r.queue_offset);
            assert_eq!(m.body, body.as_bytes());
            return;
        }
        assert!(
            Instant::now() < deadline,
            "health message {round} never became readable"
        );
    }
}

#[test]
fn every_request_code_survives_generated_and_mutated_input() {
    let total: u64 = std::env::var("RINGMQ_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed: u64 = std::env::var("RINGMQ_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    eprintln!("request fuzzer: seed {seed} ({total} requests; RINGMQ_FUZZ_SEED={seed} replays it)");
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        PANICKED.store(true, Ordering::SeqCst);
        default_hook(info);
    }));

    let dir = tempfile::tempdir().unwrap();
    let config = || {
        let mut cfg = common::config(dir.path());
        cfg.max_pull_suspend = Duration::from_millis(20);
        cfg.sync_flush_timeout = Duration::from_secs(1);
        cfg
    };
    let mut broker = common::start_with(config());
    let started = Instant::now();
    // Several connections at once (RINGMQ_FUZZ_THREADS, default 1), each its own request
    // stream from `seed + connection`: a long run is bound by parked pulls and round
    // trips, not CPU. The inputs replay exactly; their interleaving across connections
    // does not.
    let threads: u64 = std::env::var("RINGMQ_FUZZ_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let answers: std::collections::BTreeMap<(i32, i32), u64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let addr = broker.addr.clone();
                let count = total / threads + u64::from(t < total % threads);
                s.spawn(move || fuzz_connection(&addr, seed.wrapping_add(t), count, started))
            })
            .collect();
        let mut all = std::collections::BTreeMap::new();
        for w in workers {
            for (k, n) in w.join().expect("a fuzzing connection failed") {
                *all.entry(k).or_insert(0) += n;
            }
        }
        all
    });
    healthy(&broker.addr, total);
    // How deep the inputs got: per request code (-1: unknown codes), answers by response code.
    let success = answers
        .iter()
        .filter(|((_, r), _)| *r == 0)
        .map(|(_, n)| n)
        .sum::<u64>();
    eprintln!("answers (request code, response code) -> count: {answers:?}");
    eprintln!("{success} answered SUCCESS");

    let stopping = Instant::now();
    broker.stop();
    assert!(
        stopping.elapsed() < T,
        "seed {seed}: shutdown took {:?}",
        stopping.elapsed()
    );
    let broker = common::start_with(config());
    healthy(&broker.addr, total + 1);
    assert!(
        !PANICKED.load(Ordering::SeqCst),
        "seed {seed}: a thread panicked"
    );
    eprintln!(
        "request fuzzer: {total} requests in {:?}, no panic, no wedge",
        started.elapsed()
    );
}

/// Sends `count` generated requests from `seed` on one connection (a fresh one every
/// 5,000), checking after every batch that the broker still serves and nothing panicked.
/// Returns the answers by (request code, -1 for unknown codes; response code).
fn fuzz_connection(
    addr: &str,
    seed: u64,
    count: u64,
    started: Instant,
) -> std::collections::BTreeMap<(i32, i32), u64> {
    let mut rng = Rng(seed);
    let mut conn = Connection::connect(addr).unwrap();
    let mut answers = std::collections::BTreeMap::new();
    for i in 0..count {
        let req = rng.request();
        let code = req.code;
        if rng.chance(3) {
            let _ = conn.oneway(req);
        } else {
            match conn.request(req, T) {
                Ok(resp) => {
                    let known = if CODES.contains(&code) { code } else { -1 };
                    *answers.entry((known, resp.code)).or_insert(0u64) += 1;
                }
                Err(e) if conn.is_closed() => {
                    // Only a frame the broker cannot read closes a connection.
                    panic!("seed {seed}: request {i} (code {code}) closed the connection: {e}")
                }
                Err(e) => panic!("seed {seed}: request {i} (code {code}) unanswered: {e}"),
            }
        }
        if (i + 1) % BATCH == 0 {
            healthy(addr, i);
            assert!(
                !PANICKED.load(Ordering::SeqCst),
                "seed {seed}: a thread panicked"
            );
            if (i + 1) % (BATCH * 20) == 0 {
                conn = Connection::connect(addr).unwrap();
                eprintln!("seed {seed}: {} requests, {:?}", i + 1, started.elapsed());
            }
        }
    }
    answers
}
