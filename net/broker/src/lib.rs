//! ringmq-broker: the broker's shared state, its request processors (one file per area),
//! and a broker composed with its replication role.
//!
//! | file | owns |
//! | --- | --- |
//! | `config` | `broker.conf` keys, defaults, validation |
//! | `topics` | topic table, auto-creation (retry topics included), route and cluster views |
//! | `send` | SEND_MESSAGE, SEND_MESSAGE_V2, SEND_BATCH_MESSAGE: decode, store, answer |
//! | `put` | appends stored like a send: flush mode and replication role honoured |
//! | `pull` | PULL_MESSAGE and long polling |
//! | `offsets` | consumer offsets and queue offset queries |
//! | `clients/` | client registry, heartbeats, consumer notifications, idle expiry; HEART_BEAT, UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP |
//! | `groups` | subscription groups as requests name them: name rules, auto-creation |
//! | `locks` | LOCK_BATCH_MQ, UNLOCK_BATCH_MQ: queue locks for orderly consumers |
//! | `send_back` | CONSUMER_SEND_MSG_BACK: failed messages to `%RETRY%`/`%DLQ%` |
//! | `schedule` | delayed delivery out of `SCHEDULE_TOPIC_XXXX` (masters only) |
//! | `acl/` | `aclEnable`: accounts file, signatures, permissions, checked before routing |
//! | `admin` | topic admin, GET_ALL_*, route, cluster and runtime info |
//! | `validate` | the rules request fields meet: queue counts and ids, group names, offsets |
//! | `admin_ops/` | mqadmin's requests: delete topic, groups, topic and consume stats, connections, view message, reset offset, broker config |
//! | `metrics/` | per-topic counters, TPS, the Prometheus endpoint |
//! | `route` | which processor serves which request code |
//! | `conn` | the connection a request came on, its outbox items, shared answers |
//! | `server` | the broker as a remoting `Service`; `Server`: broker + network loops |
//! | `register` | registration with the name servers in `namesrvAddr` (own threads) |
//! | `metasync` | a slave copies the master's topics, offsets, groups (`ringmq-metasync`) |
//! | `node` | `Node`: server + broker + replication role, started and stopped in order |
//!
//! Processors run on the network cores; each decodes its request's typed header
//! (`ringmq_remoting::header`) once, at the top. Appends go to the engine's writer thread
//! and come back as completions (see `send`).

pub mod acl;
pub mod admin;
pub mod admin_ops;
pub mod clients;
pub mod config;
pub mod conn;
pub mod groups;
pub mod locks;
pub mod metasync;
pub mod metrics;
pub mod node;
pub mod offsets;
pub mod pull;
pub mod put;
pub mod register;
pub mod route;
pub mod schedule;
pub mod send;
pub mod send_back;
pub mod server;
#[cfg(test)]
mod test_support;
pub mod topics;
pub mod validate;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ringmq_engine::commitlog::{FlushMode, SyncMethod};
use ringmq_engine::meta::{
    ConsumerOffsetStore, DelayOffsetStore, SubscriptionGroupStore, TopicStore,
};
use ringmq_engine::sync::lock;
use ringmq_engine::{MessageStore, StoreConfig};

pub use config::{BrokerConfig, BrokerRole, ConfigError};
pub use metasync::MetaSync;
pub use node::Node;
pub use server::{ServeError, Server};

use clients::ClientRegistry;
use pull::PullHold;
use topics::Topics;

/// Counters for GET_BROKER_RUNTIME_INFO and the logs.
#[derive(Default)]
pub struct Stats {
    pub msgs_put: AtomicU64,
    pub msgs_got: AtomicU64,
    pub put_errors: AtomicU64,
    /// Topic and group table writes, and those made on a network thread (a bug: metadata
    /// is written by the housekeeping thread and at shutdown only).
    pub meta_persists: AtomicU64,
    pub meta_persists_on_network_thread: AtomicU64,
}

pub struct Broker {
    pub cfg: BrokerConfig,
    pub store: Arc<MessageStore>,
    pub topics: Topics,
    pub consumer_offsets: ConsumerOffsetStore,
    pub subscription_groups: SubscriptionGroupStore,
    pub delay_offsets: DelayOffsetStore,
    pub clients: ClientRegistry,
    pub locks: locks::RebalanceLocks,
    pub holds: Arc<PullHold>,
    pub stats: Stats,
    pub metrics: Arc<metrics::Metrics>,
    pub ops: admin_ops::OpsState,
    /// `aclEnable`: who may do what (None: anyone).
    pub acl: Option<acl::Acl>,
    pub started: Instant,
    stopping: Arc<AtomicBool>,
    /// The subscription group table changed in memory since it was last written.
    groups_dirty: AtomicBool,
    housekeeping: Mutex<Option<JoinHandle<()>>>,
    schedule: Mutex<Option<schedule::ScheduleService>>,
    /// Set once HA is up on a SYNC_MASTER: sends then also wait for slaves.
    replication: std::sync::OnceLock<Arc<dyn ringmq_ha::Replication>>,
}

/// How often committed consumer offsets are written to `consumerOffset.json`
/// (RocketMQ's flushConsumerOffsetInterval).
const OFFSET_PERSIST_INTERVAL: Duration = Duration::from_secs(5);

/// How often topics and subscription groups created or changed in memory (by requests on
/// the network cores) are written, each table at most once per interval. A crash loses at
/// most this much of such changes; a clean shutdown writes them all.
pub const METADATA_PERSIST_INTERVAL: Duration = Duration::from_secs(1);

impl Broker {
    /// Opens the store (recovering it if needed) and the metadata files.
    pub fn open(cfg: BrokerConfig) -> Result<Arc<Broker>, ringmq_engine::Error> {
        let holds = Arc::new(PullHold::default());
        let acl = acl::Acl::open(&cfg).map_err(ringmq_engine::Error::Invalid)?;
        let mut sc = StoreConfig::new(&cfg.store_path_root_dir);
        sc.commitlog.segment_size = cfg.mapped_file_size_commit_log;
        sc.commitlog.flush_mode = if cfg.sync_flush {
            FlushMode::Sync
        } else {
            FlushMode::Async
        };
        sc.commitlog.ack_before_write = cfg.ack_before_write;
        sc.commitlog.append_prop_crc = cfg.enabled_append_prop_crc;
        sc.commitlog.tail_shm_dir = cfg.tail_ring_shm_dir.clone();
        sc.commitlog.sync_method = SyncMethod::Dsync;
        sc.commitlog.sync_flush_timeout = cfg.sync_flush_timeout;
        sc.commitlog.flush_interval = cfg.flush_interval_commit_log;
        sc.commitlog.max_message_size = cfg.max_message_size;
        sc.commitlog.ring_capacity = cfg.tail_ring_bytes;
        sc.commitlog.store_host = cfg.broker_addr();
        sc.commitlog.writer_core = cfg.pin_threads.then_some(cfg.writer_core);
        sc.commitlog.writer_spin = if cfg.pin_threads {
            Duration::from_micros(cfg.writer_spin_us)
        } else {
            Duration::ZERO
        };
        sc.cq_entries_per_file = (cfg.mapped_file_size_consume_queue / 20) as usize;
        sc.dispatch_core = cfg.pin_threads.then_some(cfg.dispatch_core);
        sc.listener = Some(holds.clone());
        sc.delay_levels = cfg.message_delay_level.clone();
        let store = Arc::new(MessageStore::open(sc)?);
        let config_dir = cfg.store_path_root_dir.join("config");
        std::fs::create_dir_all(&config_dir)
            .map_err(|e| ringmq_engine::Error::io(format!("create {}", config_dir.display()), e))?;
        let broker = Arc::new(Broker {
            topics: Topics::new(TopicStore::load(&config_dir)?, &cfg)?,
            consumer_offsets: ConsumerOffsetStore::load(&config_dir)?,
            subscription_groups: SubscriptionGroupStore::load(&config_dir)?,
            delay_offsets: DelayOffsetStore::load(&config_dir)?,
            clients: ClientRegistry::default(),
            locks: locks::RebalanceLocks::default(),
            holds,
            stats: Stats::default(),
            metrics: Arc::default(),
            ops: admin_ops::OpsState::default(),
            acl,
            started: Instant::now(),
            stopping: Arc::new(AtomicBool::new(false)),
            groups_dirty: AtomicBool::new(false),
            housekeeping: Mutex::new(None),
            schedule: Mutex::new(None),
            replication: std::sync::OnceLock::new(),
            store,
            cfg,
        });
        let weak = Arc::downgrade(&broker);
        let stopping = broker.stopping.clone();
        let handle = std::thread::Builder::new()
            .name("ringmq-broker-housekeeping".into())
            .spawn(move || {
                let mut last = Instant::now();
                let mut last_meta = Instant::now();
                while !stopping.load(Ordering::Acquire) {
                    std::thread::sleep(Duration::from_millis(100));
                    if last_meta.elapsed() >= METADATA_PERSIST_INTERVAL {
                        last_meta = Instant::now();
                        let Some(b) = weak.upgrade() else { break };
                        if let Err(e) = b.persist_metadata() {
                            tracing::error!(error = %e, "persisting topics or subscription groups failed; retrying");
                        }
                    }
                    if let Some(b) = weak.upgrade() {
                        b.metrics.sample(admin_ops::totals(&b));
                    }
                    if last.elapsed() < OFFSET_PERSIST_INTERVAL {
                        continue;
                    }
                    last = Instant::now();
                    let Some(b) = weak.upgrade() else { break };
                    if let Err(e) = b.consumer_offsets.persist() {
                        tracing::error!(error = %e, "persisting consumer offsets failed");
                    }
                    b.clients.expire_idle();
                }
            })
            .map_err(|e| ringmq_engine::Error::io("spawn broker housekeeping", e))?;
        *lock(&broker.housekeeping) = Some(handle);
        if broker.cfg.broker_role.is_master() {
            let service = schedule::ScheduleService::start(&broker)
                .map_err(|e| ringmq_engine::Error::io("spawn schedule service", e))?;
            *lock(&broker.schedule) = Some(service);
        }
        broker
            .metrics
            .start_exporter(&broker)
            .map_err(|e| ringmq_engine::Error::io("start the metrics exporter", e))?;
        Ok(broker)
    }

    /// Makes sends wait for slaves (SYNC_MASTER). Only the first call takes effect.
    pub fn set_replication(&self, r: Arc<dyn ringmq_ha::Replication>) {
        let _ = self.replication.set(r);
    }

    pub fn replication(&self) -> Option<&Arc<dyn ringmq_ha::Replication>> {
        self.replication.get()
    }

    /// The subscription group table changed in memory; housekeeping writes it.
    pub fn mark_groups_dirty(&self) {
        self.groups_dirty.store(true, Ordering::Release);
    }

    /// Writes the topic and subscription group tables if they changed since their last
    /// write (the housekeeping thread; at shutdown). A failed write is retried next time.
    pub fn persist_metadata(&self) -> Result<(), ringmq_engine::Error> {
        if self.topics.take_dirty() {
            self.count_meta_persist();
            if let Err(e) = self.topics.store().persist() {
                self.topics.mark_dirty();
                return Err(e);
            }
        }
        if self.groups_dirty.swap(false, Ordering::AcqRel) {
            self.count_meta_persist();
            if let Err(e) = self.subscription_groups.persist() {
                self.mark_groups_dirty();
                return Err(e);
            }
        }
        Ok(())
    }

    fn count_meta_persist(&self) {
        self.stats.meta_persists.fetch_add(1, Ordering::Relaxed);
        let on_net = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("ringmq-net"));
        if on_net {
            tracing::error!("metadata written on a network thread (a bug)");
            self.stats
                .meta_persists_on_network_thread
                .fetch_add(1, Ordering::Relaxed);
        }
    }

    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Stops accepting work, persists metadata and shuts the store down cleanly
    /// (everything appended is made durable and the checkpoint written).
    pub fn shutdown(&self) -> Result<(), ringmq_engine::Error> {
        if self.stopping.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.holds.wake_all();
        self.metrics.stop_exporter();
        if let Some(h) = lock(&self.housekeeping).take() {
            let _ = h.join();
        }
        // Before the delay offsets are persisted and the store closes.
        if let Some(mut s) = lock(&self.schedule).take() {
            s.stop();
        }
        self.topics.mark_dirty();
        self.mark_groups_dirty();
        let meta = [
            self.consumer_offsets.persist(),
            self.persist_metadata(),
            self.delay_offsets.persist(),
        ];
        let store = self.store.shutdown();
        meta.into_iter()
            .find(|r| r.is_err())
            .unwrap_or(Ok(()))
            .and(store)
    }
}
