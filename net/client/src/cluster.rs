//! Clients of a cluster of broker groups: [`NameServers`] (routes from any of a list of
//! name servers, `host:port;host:port` as RocketMQ's `namesrvAddr`) and
//! [`ClusterProducer`], which spreads sends over the writable queues of every group.
//!
//! The producer follows RocketMQ's DefaultMQProducer where it matters here:
//! - queues: every writable queue of every group that has a master (sorted by
//!   topic, broker name, queue id), taken round-robin;
//! - routes: fetched on first use, again every `POLL_NAME_SERVER_INTERVAL` (RocketMQ's
//!   `pollNameServerInterval`, 30 s) and after a failed send;
//! - failures: a send that fails is retried on another group (RocketMQ's
//!   `retryTimesWhenSendFailed` = 2, so three attempts), and the failed group is skipped
//!   for `FAULT_ISOLATION` while any other group is available (a simple form of its
//!   latency fault tolerance);
//! - an unknown topic is sent through the `TBW102` route, as `Producer` does, and the
//!   brokers create it.
//!
//! Threads: the caller's; one [`Producer`] (one connection) per master address, opened on
//! first use and replaced when closed.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use ringmq_remoting::codes::response_code;

use crate::connection::{ClientError, ConnectOptions, Connection, Result};
use crate::producer::{Message, Producer, ProducerOptions, SendResult};
use crate::route::{fetch_route, MessageQueue, TopicRoute};

/// RocketMQ's `pollNameServerInterval`.
pub const POLL_NAME_SERVER_INTERVAL: Duration = Duration::from_secs(30);
/// How long a group whose send failed is avoided.
pub const FAULT_ISOLATION: Duration = Duration::from_secs(30);
/// Attempts per send: the first plus RocketMQ's `retryTimesWhenSendFailed` (2).
const SEND_ATTEMPTS: usize = 3;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A connection to the first reachable address of `list` (`host:port;host:port`), tried
/// in order: how a client that keeps one name server connection takes a list.
pub fn connect_any(list: &str, opts: ConnectOptions) -> Result<Connection> {
    let mut last = None;
    for addr in list.split(';').map(str::trim).filter(|a| !a.is_empty()) {
        match Connection::connect_with(addr, opts.clone()) {
            Ok(c) => return Ok(c),
            Err(e) => last = Some(e),
        }
    }
    Err(last
        .unwrap_or_else(|| ClientError::Protocol(format!("no name server address in {list:?}"))))
}

/// A list of name servers asked in turn: the one that answered last is asked first.
pub struct NameServers {
    addrs: Vec<String>,
    opts: ConnectOptions,
    current: Mutex<Option<(usize, Connection)>>,
}

impl NameServers {
    /// `list` is `host:port;host:port` (at least one address).
    pub fn new(list: &str, opts: ConnectOptions) -> Result<NameServers> {
        let addrs: Vec<String> = list
            .split(';')
            .map(str::trim)
            .filter(|a| !a.is_empty())
            .map(str::to_owned)
            .collect();
        if addrs.is_empty() {
            return Err(ClientError::Protocol(format!(
                "no name server address in {list:?}"
            )));
        }
        Ok(NameServers {
            addrs,
            opts,
            current: Mutex::new(None),
        })
    }

    pub fn addrs(&self) -> &[String] {
        &self.addrs
    }

    /// The topic's route from the first name server that answers. An answer (even
    /// TOPIC_NOT_EXIST) ends the search; only unreachable name servers are skipped.
    pub fn fetch_route(&self, topic: &str) -> Result<TopicRoute> {
        self.call(|conn| fetch_route(conn, topic))
    }

    /// Runs `f` on a connection to the first name server that answers (the one that
    /// answered last is tried first). A connection error moves on to the next name
    /// server; any other outcome, success or a refusal, is returned.
    pub fn call<T>(&self, f: impl Fn(&Connection) -> Result<T>) -> Result<T> {
        let mut current = lock(&self.current);
        let start = current.as_ref().map_or(0, |(i, _)| *i);
        let mut last = None;
        for k in 0..self.addrs.len() {
            let i = (start + k) % self.addrs.len();
            let conn = match current.take() {
                Some((j, c)) if j == i && !c.is_closed() => c,
                _ => match Connection::connect_with(self.addrs[i].as_str(), self.opts.clone()) {
                    Ok(c) => c,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                },
            };
            match f(&conn) {
                Err(e) if !matches!(e, ClientError::Broker { .. }) => {
                    conn.close();
                    last = Some(e);
                }
                answer => {
                    *current = Some((i, conn));
                    return answer;
                }
            }
        }
        Err(last.unwrap_or_else(|| ClientError::Protocol("no name server".into())))
    }
}

/// Where a topic's messages go.
struct Publish {
    route: TopicRoute,
    queues: Vec<MessageQueue>,
    fetched: Instant,
}

/// A sent message: the queue it went to and what the broker answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSendResult {
    pub queue: MessageQueue,
    pub result: SendResult,
}

/// A producer for a cluster: routes from name servers, sends to every group's masters.
pub struct ClusterProducer {
    name_servers: NameServers,
    group: String,
    opts: ProducerOptions,
    routes: Mutex<HashMap<String, Arc<Publish>>>,
    /// Master address -> its connection.
    brokers: Mutex<HashMap<String, Arc<Producer>>>,
    /// Broker name -> avoided until.
    faults: Mutex<HashMap<String, Instant>>,
    next: AtomicUsize,
    failures: AtomicUsize,
}

impl ClusterProducer {
    /// `namesrv_addr` is `host:port;host:port`.
    pub fn connect(namesrv_addr: &str, group: &str) -> Result<ClusterProducer> {
        Self::connect_with(namesrv_addr, group, ProducerOptions::default())
    }

    /// `opts.name_server` is ignored: the name servers are `namesrv_addr`.
    pub fn connect_with(
        namesrv_addr: &str,
        group: &str,
        opts: ProducerOptions,
    ) -> Result<ClusterProducer> {
        Ok(ClusterProducer {
            name_servers: NameServers::new(namesrv_addr, opts.connect.clone())?,
            group: group.to_owned(),
            opts: ProducerOptions {
                name_server: None,
                ..opts
            },
            routes: Mutex::new(HashMap::new()),
            brokers: Mutex::new(HashMap::new()),
            faults: Mutex::new(HashMap::new()),
            next: AtomicUsize::new(0),
            failures: AtomicUsize::new(0),
        })
    }

    pub fn name_servers(&self) -> &NameServers {
        &self.name_servers
    }

    /// Failed send attempts so far (each retried on another group when one is left).
    pub fn failures(&self) -> usize {
        self.failures.load(Ordering::Relaxed)
    }

    /// The queues sends of `topic` are spread over (fetching the route if needed).
    pub fn write_queues(&self, topic: &str) -> Result<Vec<MessageQueue>> {
        Ok(self.publish(topic)?.queues.clone())
    }

    fn publish(&self, topic: &str) -> Result<Arc<Publish>> {
        if let Some(p) = lock(&self.routes).get(topic) {
            if p.fetched.elapsed() < POLL_NAME_SERVER_INTERVAL {
                return Ok(p.clone());
            }
        }
        self.refresh(topic)
    }

    /// Fetches `topic`'s route again.
    pub fn refresh_route(&self, topic: &str) -> Result<()> {
        self.refresh(topic).map(|_| ())
    }

    fn refresh(&self, topic: &str) -> Result<Arc<Publish>> {
        let (route, queues) = match self.name_servers.fetch_route(topic) {
            Ok(route) => {
                let queues = route.write_queues();
                (route, queues)
            }
            Err(ClientError::Broker { code, .. }) if code == response_code::TOPIC_NOT_EXIST => {
                let route = self.name_servers.fetch_route(&self.opts.default_topic)?;
                let queues = route
                    .write_queues()
                    .into_iter()
                    .filter(|q| q.queue_id < self.opts.default_topic_queue_nums)
                    .map(|q| MessageQueue::new(topic, q.broker_name, q.queue_id))
                    .collect();
                (route, queues)
            }
            Err(e) => return Err(e),
        };
        if queues.is_empty() {
            return Err(ClientError::Protocol(format!(
                "route of topic {topic} has no writable queue"
            )));
        }
        let p = Arc::new(Publish {
            route,
            queues,
            fetched: Instant::now(),
        });
        lock(&self.routes).insert(topic.to_owned(), p.clone());
        Ok(p)
    }

    /// The next queue round-robin, skipping groups already tried for this message and,
    /// while another group is available, groups that failed recently.
    fn pick(&self, p: &Publish, tried: &[String]) -> Option<MessageQueue> {
        let now = Instant::now();
        let faults = lock(&self.faults);
        let avoided = |b: &str| faults.get(b).is_some_and(|&until| until > now);
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = p.queues.len();
        let candidates = (0..n).map(|k| &p.queues[(start + k) % n]);
        let fresh = |q: &&MessageQueue| !tried.contains(&q.broker_name);
        candidates
            .clone()
            .filter(fresh)
            .find(|q| !avoided(&q.broker_name))
            .or_else(|| candidates.clone().find(fresh))
            .cloned()
    }

    fn producer_for(&self, addr: &str) -> Result<Arc<Producer>> {
        let mut brokers = lock(&self.brokers);
        if let Some(p) = brokers.get(addr).filter(|p| !p.connection().is_closed()) {
            return Ok(p.clone());
        }
        let p = Arc::new(Producer::connect_with(
            addr,
            &self.group,
            self.opts.clone(),
        )?);
        brokers.insert(addr.to_owned(), p.clone());
        Ok(p)
    }

    fn send_once(&self, p: &Publish, mq: &MessageQueue, msg: Message) -> Result<SendResult> {
        let addr = p
            .route
            .broker(&mq.broker_name)
            .and_then(|b| b.master_addr())
            .ok_or_else(|| ClientError::Protocol(format!("{} has no master", mq.broker_name)))?;
        self.producer_for(addr)?.send_to(mq, msg)
    }

    /// Sends one message to the next queue of `topic`, retrying on other groups.
    pub fn send(&self, topic: &str, msg: Message) -> Result<ClusterSendResult> {
        let mut tried: Vec<String> = Vec::new();
        let mut last = None;
        for _ in 0..SEND_ATTEMPTS {
            let p = self.publish(topic)?;
            let Some(mq) = self.pick(&p, &tried) else {
                break;
            };
            match self.send_once(&p, &mq, msg.clone()) {
                Ok(result) => {
                    return Ok(ClusterSendResult { queue: mq, result });
                }
                Err(e) => {
                    self.failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(broker = %mq.broker_name, error = %e, "send failed; trying another group");
                    lock(&self.faults)
                        .insert(mq.broker_name.clone(), Instant::now() + FAULT_ISOLATION);
                    tried.push(mq.broker_name);
                    let _ = self.refresh_route(topic);
                    last = Some(e);
                }
            }
        }
        Err(last
            .unwrap_or_else(|| ClientError::Protocol(format!("no group left to send {topic} to"))))
    }
}
