//! A push consumer: RocketMQ's `DefaultMQPushConsumer` on std threads.
//!
//! The members of a group share a topic's queues by client-side rebalancing: each member
//! lists the topic's queues and the group's consumer ids (both sorted, so every member
//! sees the same view) and takes the share its allocation strategy gives it. A rebalance
//! runs at start, every `rebalance_interval`, and at once when the broker sends
//! NOTIFY_CONSUMER_IDS_CHANGED.
//!
//! | file | owns |
//! | --- | --- |
//! | `options` | settings and their RocketMQ defaults |
//! | `listener` | the application's listener, concurrent or orderly |
//! | `subscription` | subscriptions and the HEART_BEAT body |
//! | `links` | connections and every request the consumer sends |
//! | `offsets` | progress per queue: broker-side (clustering) or a local file (broadcasting) |
//! | `process_queue` | one held queue: pulled messages, orderly batch, lock, dropped flag |
//! | `rebalance` | who owns which queue; taking and releasing queues |
//! | `pulling` | a held queue's pull loop (and its lock for orderly listeners) |
//! | `consume` | running the listener: a worker pool, or one ordered loop per queue |
//! | `service` | the background loop: heartbeats, rebalances, commits, lock refreshes |
//!
//! Threads: one service thread; per held queue a pull thread (plus, for orderly
//! listeners, a consume thread); for concurrent listeners a pool of `consume_threads`.

pub mod consume;
pub mod links;
pub mod listener;
pub mod offsets;
pub mod options;
pub mod process_queue;
pub mod pulling;
pub mod rebalance;
pub mod service;
pub mod subscription;

use ringmq_record::clock::now_millis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

pub use listener::{ConsumeStatus, Listener, OrderlyStatus};
pub use options::{ConsumeFromWhere, MessageModel, PushConsumerOptions};

use crate::connection::{RequestHandler, Result};
use crate::consumer::Filter;
use crate::route::MessageQueue;
use crate::sync::lock;
use consume::ConcurrentPool;
use links::Links;
use offsets::OffsetStore;
use process_queue::ProcessQueue;
use ringmq_remoting::codes::request_code as rq;
use service::Event;
use subscription::Subscription;

/// State shared by the consumer's threads.
pub struct Shared {
    pub opts: Arc<PushConsumerOptions>,
    pub subs: Vec<Subscription>,
    pub listener: Listener,
    pub links: Links,
    pub offsets: OffsetStore,
    /// The queues this member holds now.
    pub table: Mutex<HashMap<MessageQueue, Arc<ProcessQueue>>>,
    pub stopping: AtomicBool,
    pub events: Mutex<mpsc::Sender<Event>>,
    pub pool: Mutex<Option<ConcurrentPool>>,
    /// Pull and orderly-consume threads, joined at shutdown.
    pub threads: Mutex<Vec<JoinHandle<()>>>,
    /// Failed concurrent batches the broker did not take back: consumed again later.
    pub later: Mutex<Vec<consume::LocalRetry>>,
}

impl Shared {
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::Acquire)
    }

    /// Redeliveries before a message goes to the DLQ (RocketMQ: 16 concurrent, unbounded
    /// orderly).
    pub fn max_reconsume_times(&self) -> i32 {
        self.opts
            .max_reconsume_times
            .unwrap_or(if self.listener.is_orderly() {
                i32::MAX
            } else {
                16
            })
    }

    pub fn subscription(&self, topic: &str) -> Option<&Subscription> {
        self.subs.iter().find(|s| s.topic == topic)
    }

    /// Starts a background thread that is joined at shutdown.
    pub fn spawn(&self, name: String, f: impl FnOnce() + Send + 'static) {
        let mut threads = lock(&self.threads);
        threads.retain(|t| !t.is_finished());
        match std::thread::Builder::new().name(name).spawn(f) {
            Ok(t) => threads.push(t),
            Err(e) => tracing::error!(error = %e, "spawning a consumer thread failed"),
        }
    }

    pub fn send_event(&self, e: Event) {
        let _ = lock(&self.events).send(e);
    }
}

/// Collects subscriptions before [`start`](PushConsumerBuilder::start).
pub struct PushConsumerBuilder {
    opts: PushConsumerOptions,
    subs: Vec<Subscription>,
}

impl PushConsumerBuilder {
    /// Subscribes to `topic` with a TAG expression (`*`, `a || b`).
    pub fn subscribe(mut self, topic: &str, expression: &str) -> Self {
        self.subs.retain(|s| s.topic != topic);
        self.subs.push(Subscription {
            topic: topic.to_owned(),
            filter: Filter::new(expression, "TAG"),
            sub_version: now_millis(),
        });
        self
    }

    /// Connects, announces the consumer, rebalances once and starts consuming.
    pub fn start(self, listener: Listener) -> Result<PushConsumer> {
        let opts = Arc::new(self.opts);
        let subs = subscription::with_retry_topic(&opts, self.subs);
        let heartbeat = subscription::heartbeat_body(&opts, &subs);
        let (tx, rx) = mpsc::channel();
        let notify_tx = Mutex::new(tx.clone());
        let group = opts.group.clone();
        let on_notify: RequestHandler = Arc::new(move |req| {
            if req.code == rq::NOTIFY_CONSUMER_IDS_CHANGED {
                tracing::debug!(group = %group, "consumer ids changed: rebalancing");
                let _ = lock(&notify_tx).send(Event::Rebalance);
            } else if req.code == rq::RESET_CONSUMER_CLIENT_OFFSET
                && req.ext("group") == Some(group.as_str())
            {
                match reset_offsets(&req.body) {
                    Ok(table) => {
                        tracing::info!(group = %group, queues = table.len(), "offsets reset by the broker");
                        let _ = lock(&notify_tx).send(Event::ResetOffset(table));
                    }
                    Err(e) => tracing::warn!(group = %group, error = %e, "bad offset reset body"),
                }
            }
            None
        });
        let shared = Arc::new(Shared {
            offsets: OffsetStore::new(&opts)?,
            links: Links::new(opts.clone(), heartbeat, on_notify),
            opts,
            subs,
            listener,
            table: Mutex::new(HashMap::new()),
            stopping: AtomicBool::new(false),
            events: Mutex::new(tx),
            pool: Mutex::new(None),
            threads: Mutex::new(Vec::new()),
            later: Mutex::new(Vec::new()),
        });
        if let Listener::Concurrently(f) = &shared.listener {
            let pool = ConcurrentPool::start(&shared, f.clone())?;
            *lock(&shared.pool) = Some(pool);
        }
        // Routes first (they name the brokers), then heartbeats, then the first rebalance.
        for s in &shared.subs {
            if let Err(e) = shared.links.refresh_route(&s.topic) {
                tracing::debug!(topic = %s.topic, error = %e, "no route yet");
            }
        }
        shared.links.heartbeat_all();
        rebalance::rebalance_all(&shared);
        let service = service::start(shared.clone(), rx)?;
        Ok(PushConsumer {
            shared,
            service: Mutex::new(Some(service)),
        })
    }
}

/// A started push consumer; [`shutdown`](PushConsumer::shutdown) (or drop) stops it.
pub struct PushConsumer {
    shared: Arc<Shared>,
    service: Mutex<Option<JoinHandle<()>>>,
}

impl PushConsumer {
    #[allow(clippy::new_ret_no_self)]
    pub fn new(opts: PushConsumerOptions) -> PushConsumerBuilder {
        PushConsumerBuilder {
            opts,
            subs: Vec::new(),
        }
    }

    pub fn client_id(&self) -> &str {
        &self.shared.opts.client_id
    }

    /// The queues this member holds now, sorted.
    pub fn assigned(&self) -> Vec<MessageQueue> {
        let mut v: Vec<_> = lock(&self.shared.table)
            .iter()
            .filter(|(_, pq)| !pq.is_dropped())
            .map(|(q, _)| q.clone())
            .collect();
        v.sort();
        v
    }

    /// Asks the service thread for a rebalance now.
    pub fn rebalance_now(&self) {
        self.shared.send_event(Event::Rebalance);
    }

    /// Stops pulling, lets batches in progress finish, commits every offset, releases
    /// orderly locks, unregisters from the brokers and joins every thread.
    pub fn shutdown(&self) {
        if self.shared.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        self.shared.send_event(Event::Stop);
        let service = lock(&self.service).take();
        if let Some(t) = service {
            let _ = t.join();
        }
        let pool = lock(&self.shared.pool).take();
        if let Some(pool) = pool {
            pool.stop();
        }
        rebalance::release_all(&self.shared);
        self.shared.links.unregister_and_close();
        let threads: Vec<_> = lock(&self.shared.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Drop for PushConsumer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// The `ResetOffsetBody` of RESET_CONSUMER_CLIENT_OFFSET: `{"offsetTable":{mq:offset}}`
/// with `MessageQueue` objects as keys (fastjson).
fn reset_offsets(body: &[u8]) -> std::result::Result<Vec<(MessageQueue, i64)>, String> {
    let (entries, _) = crate::fastjson::parse_object_key_map(body, "offsetTable")?;
    entries
        .into_iter()
        .map(|(k, v)| {
            let mq = MessageQueue::new(
                k["topic"].as_str().ok_or("queue without topic")?,
                k["brokerName"].as_str().unwrap_or(""),
                k["queueId"].as_i64().ok_or("queue without queueId")? as i32,
            );
            Ok((mq, v.as_i64().ok_or("offset is not a number")?))
        })
        .collect()
}
