//! What a push consumer can be told: its group and identity, how it shares queues
//! (message model, allocation strategy), where a new queue starts, and the timings of its
//! background work. Defaults are RocketMQ's (`DefaultMQPushConsumer`, `ClientConfig`).

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::allocate::{AllocateStrategy, Averagely};
use ringmq_remoting::codes::SerializeType;

/// How a group's members share a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageModel {
    /// Each queue belongs to one member; offsets are kept on the broker.
    Clustering,
    /// Every member gets every message; each keeps its own offsets in a local file.
    Broadcasting,
}

impl MessageModel {
    /// The name heartbeats carry.
    pub fn wire_name(self) -> &'static str {
        match self {
            MessageModel::Clustering => "CLUSTERING",
            MessageModel::Broadcasting => "BROADCASTING",
        }
    }
}

/// Where a queue the group has no committed offset for starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConsumeFromWhere {
    /// The queue's current end (a retry topic starts at 0).
    LastOffset,
    FirstOffset,
    /// The first message stored at or after this time (ms since the epoch).
    Timestamp(i64),
}

impl ConsumeFromWhere {
    pub fn wire_name(self) -> &'static str {
        match self {
            ConsumeFromWhere::LastOffset => "CONSUME_FROM_LAST_OFFSET",
            ConsumeFromWhere::FirstOffset => "CONSUME_FROM_FIRST_OFFSET",
            ConsumeFromWhere::Timestamp(_) => "CONSUME_FROM_TIMESTAMP",
        }
    }
}

/// Push consumer settings.
#[derive(Debug, Clone)]
pub struct PushConsumerOptions {
    /// Where routes are looked up (a ringmq broker is its own name server).
    pub name_server: String,
    pub group: String,
    /// Unique per consumer instance; default `<ip>@<pid>#<n>`.
    pub client_id: String,
    pub message_model: MessageModel,
    pub consume_from: ConsumeFromWhere,
    pub strategy: Arc<dyn AllocateStrategy>,
    /// Periodic rebalance (RocketMQ: 20 s); a NOTIFY_CONSUMER_IDS_CHANGED or a start
    /// rebalances at once.
    pub rebalance_interval: Duration,
    /// Offsets are committed this often (and when a queue is released, and on shutdown).
    pub persist_interval: Duration,
    pub heartbeat_interval: Duration,
    /// How often orderly consumers refresh their queue locks (the broker's expire after 60 s).
    pub lock_refresh_interval: Duration,
    /// How soon an orderly consumer retries a queue lock it did not get.
    pub lock_retry_interval: Duration,
    /// A client-side lock not refreshed for this long is not trusted (RocketMQ: 30 s).
    pub lock_max_live: Duration,
    /// Messages per PULL_MESSAGE (RocketMQ: 32).
    pub pull_batch_size: i32,
    /// Messages per listener call (RocketMQ: 1).
    pub consume_batch_size: usize,
    /// Worker threads of a concurrent listener.
    pub consume_threads: usize,
    /// Pulling pauses while a queue holds this many unconsumed messages (RocketMQ: 1000).
    pub pull_threshold_per_queue: usize,
    /// Long-poll hold asked of the broker (RocketMQ: 15 s).
    pub suspend: Duration,
    /// Redeliveries before a message goes to the DLQ; None = RocketMQ's default (16 for
    /// concurrent listeners, unbounded for orderly ones).
    pub max_reconsume_times: Option<i32>,
    /// How long an orderly queue waits after its listener asked to suspend (RocketMQ: 1 s).
    pub suspend_current_queue: Duration,
    /// Broadcasting offsets are kept under `<dir>/<client_id>/<group>/offsets.json`.
    pub local_offset_dir: PathBuf,
    pub serialize_type: SerializeType,
    /// Timeout of ordinary requests.
    pub request_timeout: Duration,
}

impl PushConsumerOptions {
    pub fn new(name_server: impl Into<String>, group: impl Into<String>) -> Self {
        Self {
            name_server: name_server.into(),
            group: group.into(),
            client_id: default_client_id(),
            message_model: MessageModel::Clustering,
            consume_from: ConsumeFromWhere::LastOffset,
            strategy: Arc::new(Averagely),
            rebalance_interval: Duration::from_secs(20),
            persist_interval: Duration::from_secs(5),
            heartbeat_interval: Duration::from_secs(30),
            lock_refresh_interval: Duration::from_secs(20),
            lock_retry_interval: Duration::from_millis(200),
            lock_max_live: Duration::from_secs(30),
            pull_batch_size: 32,
            consume_batch_size: 1,
            consume_threads: 4,
            pull_threshold_per_queue: 1000,
            suspend: Duration::from_secs(15),
            max_reconsume_times: None,
            suspend_current_queue: Duration::from_secs(1),
            local_offset_dir: default_offset_dir(),
            serialize_type: SerializeType::Json,
            request_timeout: Duration::from_secs(3),
        }
    }
}

/// `<ip>@<pid>#<n>`: RocketMQ's `ip@instanceName`, with an instance name unique within
/// this process so several consumers of one process are distinct members.
fn default_client_id() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("127.0.0.1@{}#{n}", std::process::id())
}

/// RocketMQ's `rocketmq.client.localOffsetStoreDir` default: `~/.rocketmq_offsets`.
fn default_offset_dir() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir)
        .join(".rocketmq_offsets")
}
