//! Blocking producer over one broker connection (spec §3.1, §4.1–§4.3).
//!
//! - Single messages: SEND_MESSAGE_V2 (310, one-letter header keys) by
//!   default, or SEND_MESSAGE (10, long names) with [`SendHeader::Long`];
//!   JSON header by default, ROCKETMQ binary with
//!   `ProducerOptions::serialize_type`.
//! - Batches: SEND_BATCH_MESSAGE (320, one-letter keys, `m=true`) with the
//!   client-side batch body.
//! - Every message gets a `UNIQ_KEY` property (unless it has one), which is
//!   the `msg_id` of the [`SendResult`]; the broker's offsetMsgId is
//!   `offset_msg_id`.
//! - Queues: round-robin over the route's write queues, fetched once per
//!   topic (GET_ROUTEINFO_BY_TOPIC on the name server if configured, else on
//!   the broker connection) and refreshed with [`Producer::refresh_route`].
//!   If the topic has no route yet, the `TBW102` route (or, failing that,
//!   `default_topic_queue_nums` queues) is used, as the broker auto-creates
//!   the topic on first send.
//! - [`Producer::send_async`] bounds the requests in flight with a counting
//!   semaphore (Mutex + Condvar); the caller blocks when the bound is hit.
//!   Callbacks run on the connection's reader thread and must not block.

use ringmq_record::clock::now_millis;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use ringmq_record::{encode_batch, encode_properties_into, keys, BatchItem};

use super::connection::{new_request, ClientError, ConnectOptions, Connection, Result};
use super::route::{fetch_route, MessageQueue, TopicRoute};
use crate::sync::{lock, read, wait, wait_timeout, write};
use ringmq_remoting::codes::{request_code, response_code, SerializeType};
use ringmq_remoting::command::RemotingCommand;

/// A message to send.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub body: Bytes,
    /// `TAGS` property.
    pub tags: Option<String>,
    /// `KEYS` property (space-separated business keys).
    pub keys: Option<String>,
    /// Application flag, stored verbatim.
    pub flag: i32,
    /// Further properties, in order.
    pub properties: Vec<(String, String)>,
}

impl Message {
    pub fn new(body: impl Into<Bytes>) -> Self {
        Self {
            body: body.into(),
            ..Default::default()
        }
    }

    pub fn with_tags(mut self, tags: impl Into<String>) -> Self {
        self.tags = Some(tags.into());
        self
    }

    pub fn with_keys(mut self, keys: impl Into<String>) -> Self {
        self.keys = Some(keys.into());
        self
    }

    pub fn with_flag(mut self, flag: i32) -> Self {
        self.flag = flag;
        self
    }

    pub fn with_property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.push((name.into(), value.into()));
        self
    }

    /// Delivers the message only after delay level `level` (1-based; the broker's
    /// `messageDelayLevel`, by default 1s 5s 10s 30s 1m ... 2h) has passed.
    pub fn with_delay_level(self, level: i32) -> Self {
        self.with_property("DELAY", level.to_string())
    }

    /// The caller-set `UNIQ_KEY`, if any.
    pub fn uniq_key(&self) -> Option<&str> {
        self.properties
            .iter()
            .rev()
            .find(|(k, _)| k == keys::UNIQ_KEY)
            .map(|(_, v)| v.as_str())
    }
}

/// Outcome of a stored send (response codes 0, 10, 12, 11).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendStatus {
    SendOk,
    FlushDiskTimeout,
    FlushSlaveTimeout,
    SlaveNotAvailable,
}

impl SendStatus {
    /// `None` for codes that mean the message was not stored.
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            response_code::SUCCESS => Some(Self::SendOk),
            response_code::FLUSH_DISK_TIMEOUT => Some(Self::FlushDiskTimeout),
            response_code::FLUSH_SLAVE_TIMEOUT => Some(Self::FlushSlaveTimeout),
            response_code::SLAVE_NOT_AVAILABLE => Some(Self::SlaveNotAvailable),
            _ => None,
        }
    }
}

/// Result of a send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendResult {
    pub status: SendStatus,
    /// Client id (`UNIQ_KEY`); for a batch, the ids joined with `,`.
    pub msg_id: String,
    /// Broker's offsetMsgId (`msgId` response field; `,`-joined for a batch).
    pub offset_msg_id: String,
    pub queue_id: i32,
    /// Queue offset of the (first) stored message.
    pub queue_offset: i64,
}

/// Header form of single-message sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SendHeader {
    /// SEND_MESSAGE_V2 (310), keys `a`..`n` (Java's default).
    #[default]
    Short,
    /// SEND_MESSAGE (10), long field names (rocketmq-client-rust's default).
    Long,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerOptions {
    pub header: SendHeader,
    /// JSON (default) or ROCKETMQ binary frame headers.
    pub serialize_type: SerializeType,
    /// Timeout of every send.
    pub timeout: Duration,
    /// Bound on `send_async` requests in flight.
    pub max_in_flight: usize,
    /// Template topic for auto-creation (`c` / `defaultTopic`).
    pub default_topic: String,
    /// Queue count for auto-created topics (`d` / `defaultTopicQueueNums`).
    pub default_topic_queue_nums: i32,
    /// Name server for routes; `None` asks the broker connection.
    pub name_server: Option<String>,
    /// Broker name used when no route is available ("" = not sent).
    pub broker_name: String,
    pub connect: ConnectOptions,
}

impl Default for ProducerOptions {
    fn default() -> Self {
        Self {
            header: SendHeader::Short,
            serialize_type: SerializeType::Json,
            timeout: Duration::from_secs(3),
            max_in_flight: 1024,
            default_topic: "TBW102".into(),
            default_topic_queue_nums: 4,
            name_server: None,
            broker_name: String::new(),
            connect: ConnectOptions::default(),
        }
    }
}

/// Counting semaphore bounding async sends.
struct InFlight {
    avail: Mutex<usize>,
    permits: Condvar,
    drained: Condvar,
    max: usize,
}

impl InFlight {
    fn new(max: usize) -> Self {
        Self {
            avail: Mutex::new(max),
            permits: Condvar::new(),
            drained: Condvar::new(),
            max,
        }
    }

    fn acquire(&self) {
        let mut a = lock(&self.avail);
        while *a == 0 {
            a = wait(&self.permits, a);
        }
        *a -= 1;
    }

    fn release(&self) {
        let mut a = lock(&self.avail);
        *a += 1;
        self.permits.notify_one();
        if *a == self.max {
            self.drained.notify_all();
        }
    }

    fn in_use(&self) -> usize {
        self.max - *lock(&self.avail)
    }

    fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut a = lock(&self.avail);
        while *a < self.max {
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            a = wait_timeout(&self.drained, a, deadline - now);
        }
        true
    }
}

/// One acquired [`InFlight`] permit, released on drop.
struct Permit(Arc<InFlight>);

impl Drop for Permit {
    fn drop(&mut self) {
        self.0.release();
    }
}

/// Sends messages to one broker.
pub struct Producer {
    conn: Connection,
    route_conn: Option<Connection>,
    group: String,
    opts: ProducerOptions,
    routes: RwLock<HashMap<String, Arc<Vec<MessageQueue>>>>,
    next_queue: AtomicUsize,
    in_flight: Arc<InFlight>,
}

impl Producer {
    /// Connect to the broker at `addr` with default options.
    pub fn connect(addr: &str, group: &str) -> Result<Producer> {
        Self::connect_with(addr, group, ProducerOptions::default())
    }

    pub fn connect_with(addr: &str, group: &str, opts: ProducerOptions) -> Result<Producer> {
        let conn = Connection::connect_with(addr, opts.connect.clone())?;
        let route_conn = match &opts.name_server {
            Some(ns) => Some(Connection::connect_with(ns.as_str(), opts.connect.clone())?),
            None => None,
        };
        Ok(Producer {
            conn,
            route_conn,
            group: group.to_owned(),
            in_flight: Arc::new(InFlight::new(opts.max_in_flight.max(1))),
            opts,
            routes: RwLock::new(HashMap::new()),
            next_queue: AtomicUsize::new(0),
        })
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    pub fn options(&self) -> &ProducerOptions {
        &self.opts
    }

    /// Use `queues` for `topic` instead of its route.
    pub fn set_queues(&self, topic: &str, queues: Vec<MessageQueue>) {
        write(&self.routes).insert(topic.to_owned(), Arc::new(queues));
    }

    /// The write queues used for `topic` (fetching the route if needed).
    pub fn queues(&self, topic: &str) -> Result<Arc<Vec<MessageQueue>>> {
        if let Some(q) = read(&self.routes).get(topic) {
            return Ok(q.clone());
        }
        self.refresh_route(topic)
    }

    /// Fetch `topic`'s route again and use its write queues.
    pub fn refresh_route(&self, topic: &str) -> Result<Arc<Vec<MessageQueue>>> {
        let rc = self.route_conn.as_ref().unwrap_or(&self.conn);
        let fallback = || -> Vec<MessageQueue> {
            (0..self.opts.default_topic_queue_nums.max(1))
                .map(|q| MessageQueue::new(topic, &self.opts.broker_name, q))
                .collect()
        };
        let queues = match fetch_route(rc, topic) {
            Ok(route) => self.own_queues(&route),
            Err(ClientError::Broker { code, .. }) if code == response_code::TOPIC_NOT_EXIST => {
                match fetch_route(rc, &self.opts.default_topic) {
                    Ok(route) => {
                        let qs: Vec<MessageQueue> = self
                            .own_queues(&route)
                            .into_iter()
                            .filter(|q| q.queue_id < self.opts.default_topic_queue_nums)
                            .map(|q| MessageQueue::new(topic, q.broker_name, q.queue_id))
                            .collect();
                        if qs.is_empty() {
                            fallback()
                        } else {
                            qs
                        }
                    }
                    Err(ClientError::Broker { .. }) => fallback(),
                    Err(e) => return Err(e),
                }
            }
            Err(ClientError::Broker { code, .. })
                if code == response_code::REQUEST_CODE_NOT_SUPPORTED =>
            {
                fallback()
            }
            Err(e) => return Err(e),
        };
        if queues.is_empty() {
            return Err(ClientError::Protocol(format!(
                "route of topic {topic} has no writable queue"
            )));
        }
        let queues = Arc::new(queues);
        write(&self.routes).insert(topic.to_owned(), queues.clone());
        Ok(queues)
    }

    /// Write queues of `route`, narrowed to the broker this producer is
    /// connected to when the route lists its address as a master.
    fn own_queues(&self, route: &TopicRoute) -> Vec<MessageQueue> {
        let all = route.write_queues();
        let peer = self.conn.peer_addr().to_string();
        let mine: Vec<MessageQueue> = all
            .iter()
            .filter(|q| {
                route.broker(&q.broker_name).and_then(|b| b.master_addr()) == Some(peer.as_str())
            })
            .cloned()
            .collect();
        if mine.is_empty() {
            all
        } else {
            mine
        }
    }

    /// Next queue of `topic`, round-robin.
    pub fn select_queue(&self, topic: &str) -> Result<MessageQueue> {
        let qs = self.queues(topic)?;
        let i = self.next_queue.fetch_add(1, Ordering::Relaxed);
        Ok(qs[i % qs.len()].clone())
    }

    fn pick(&self, topic: &str) -> Result<(Arc<Vec<MessageQueue>>, usize)> {
        let qs = self.queues(topic)?;
        let i = self.next_queue.fetch_add(1, Ordering::Relaxed) % qs.len();
        Ok((qs, i))
    }

    /// Send one message to the next queue of `topic`.
    pub fn send(&self, topic: &str, msg: Message) -> Result<SendResult> {
        let (qs, i) = self.pick(topic)?;
        self.send_to(&qs[i], msg)
    }

    /// Send one message to `mq`.
    pub fn send_to(&self, mq: &MessageQueue, msg: Message) -> Result<SendResult> {
        let (cmd, uniq) = self.single_request(mq, &msg)?;
        let resp = self.conn.request(cmd, self.opts.timeout)?;
        parse_send_response(&resp, uniq)
    }

    /// Send a batch (same topic, one queue) with SEND_BATCH_MESSAGE.
    pub fn send_batch(&self, topic: &str, msgs: Vec<Message>) -> Result<SendResult> {
        let (qs, i) = self.pick(topic)?;
        self.send_batch_to(&qs[i], msgs)
    }

    pub fn send_batch_to(&self, mq: &MessageQueue, msgs: Vec<Message>) -> Result<SendResult> {
        let (cmd, uniq) = self.batch_request(mq, &msgs)?;
        let resp = self.conn.request(cmd, self.opts.timeout)?;
        parse_send_response(&resp, uniq)
    }

    /// Send without waiting; blocks while `max_in_flight` sends are
    /// outstanding. On `Ok` the callback runs exactly once (on the reader
    /// thread, or on the caller's if the request cannot be written); on
    /// `Err` (no route, bad message) it is not called. The callback must
    /// not block and must not send on this producer.
    pub fn send_async<F>(&self, topic: &str, msg: Message, callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let (qs, i) = self.pick(topic)?;
        self.send_async_to(&qs[i], msg, callback)
    }

    pub fn send_async_to<F>(&self, mq: &MessageQueue, msg: Message, callback: F) -> Result<()>
    where
        F: FnOnce(Result<SendResult>) + Send + 'static,
    {
        let (cmd, uniq) = self.single_request(mq, &msg)?;
        self.in_flight.acquire();
        // Released after the callback (even if it panics), so `flush`
        // also waits for callbacks.
        let permit = Permit(self.in_flight.clone());
        self.conn
            .request_async_timeout(cmd, self.opts.timeout, move |r| {
                let _permit = permit;
                callback(r.and_then(|resp| parse_send_response(&resp, uniq)));
            });
        Ok(())
    }

    /// Async sends currently outstanding.
    pub fn in_flight(&self) -> usize {
        self.in_flight.in_use()
    }

    /// Wait until no async send is outstanding; false on timeout.
    pub fn flush(&self, timeout: Duration) -> bool {
        self.in_flight.wait_drained(timeout)
    }

    fn header(&self, cmd: &mut RemotingCommand, long: bool, mq: &MessageQueue) {
        let k = |short: &'static str, name: &'static str| if long { name } else { short };
        cmd.set_ext(k("a", "producerGroup"), &self.group);
        cmd.set_ext(k("b", "topic"), &mq.topic);
        cmd.set_ext(k("c", "defaultTopic"), &self.opts.default_topic);
        cmd.set_ext(
            k("d", "defaultTopicQueueNums"),
            self.opts.default_topic_queue_nums,
        );
        cmd.set_ext(k("e", "queueId"), mq.queue_id);
        cmd.set_ext(k("f", "sysFlag"), 0);
        cmd.set_ext(k("g", "bornTimestamp"), now_millis());
    }

    fn tail(cmd: &mut RemotingCommand, long: bool, mq: &MessageQueue, batch: bool) {
        let k = |short: &'static str, name: &'static str| if long { name } else { short };
        cmd.set_ext(k("j", "reconsumeTimes"), 0);
        cmd.set_ext(k("k", "unitMode"), false);
        cmd.set_ext(k("m", "batch"), batch);
        if !mq.broker_name.is_empty() {
            cmd.set_ext(k("n", "bname"), &mq.broker_name);
        }
    }

    fn single_request(
        &self,
        mq: &MessageQueue,
        msg: &Message,
    ) -> Result<(RemotingCommand, String)> {
        let (props, uniq) = message_properties(msg)?;
        let (code, long) = match self.opts.header {
            SendHeader::Short => (request_code::SEND_MESSAGE_V2, false),
            SendHeader::Long => (request_code::SEND_MESSAGE, true),
        };
        let mut cmd = new_request(code, self.opts.serialize_type).with_body(msg.body.clone());
        self.header(&mut cmd, long, mq);
        cmd.set_ext(if long { "flag" } else { "h" }, msg.flag);
        cmd.set_ext(if long { "properties" } else { "i" }, props);
        Self::tail(&mut cmd, long, mq, false);
        Ok((cmd, uniq))
    }

    fn batch_request(
        &self,
        mq: &MessageQueue,
        msgs: &[Message],
    ) -> Result<(RemotingCommand, String)> {
        if msgs.is_empty() {
            return Err(ClientError::Protocol("empty batch".into()));
        }
        let mut items = Vec::with_capacity(msgs.len());
        let mut ids = String::with_capacity(msgs.len() * 33);
        for m in msgs {
            let (props, uniq) = message_properties(m)?;
            if !ids.is_empty() {
                ids.push(',');
            }
            ids.push_str(&uniq);
            items.push(BatchItem {
                flag: m.flag,
                body: m.body.clone(),
                properties: Bytes::from(props.into_bytes()),
            });
        }
        let body = encode_batch(&items).map_err(|e| ClientError::Protocol(e.to_string()))?;
        let mut cmd =
            new_request(request_code::SEND_BATCH_MESSAGE, self.opts.serialize_type).with_body(body);
        self.header(&mut cmd, false, mq);
        cmd.set_ext("h", 0);
        Self::tail(&mut cmd, false, mq, true);
        Ok((cmd, ids))
    }
}

fn check_prop(s: &str, what: &str) -> Result<()> {
    if s.bytes().any(|b| b == 0x01 || b == 0x02) {
        return Err(ClientError::Protocol(format!(
            "property {what} {s:?} contains a 0x01/0x02 separator"
        )));
    }
    Ok(())
}

/// The properties string of `msg` (TAGS, KEYS, its properties, UNIQ_KEY)
/// and its UNIQ_KEY.
pub fn message_properties(msg: &Message) -> Result<(String, String)> {
    let uniq = match msg.uniq_key() {
        Some(u) => u.to_owned(),
        None => ringmq_record::new_uniq_key(),
    };
    let mut pairs: Vec<(&str, &str)> = Vec::with_capacity(msg.properties.len() + 3);
    if let Some(t) = &msg.tags {
        pairs.push((keys::TAGS, t));
    }
    if let Some(k) = &msg.keys {
        pairs.push((keys::KEYS, k));
    }
    for (k, v) in &msg.properties {
        let overridden = (k == keys::TAGS && msg.tags.is_some())
            || (k == keys::KEYS && msg.keys.is_some())
            || k == keys::UNIQ_KEY;
        if !overridden {
            pairs.push((k, v));
        }
    }
    pairs.push((keys::UNIQ_KEY, &uniq));
    for (k, v) in &pairs {
        if k.is_empty() {
            return Err(ClientError::Protocol("empty property name".into()));
        }
        check_prop(k, "name")?;
        check_prop(v, "value")?;
    }
    let mut out = Vec::with_capacity(pairs.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
    encode_properties_into(&mut out, pairs);
    let props = String::from_utf8(out).expect("properties built from &str are UTF-8");
    Ok((props, uniq))
}

/// Map a send response to a [`SendResult`] or a `Broker` error.
pub fn parse_send_response(resp: &RemotingCommand, msg_id: String) -> Result<SendResult> {
    let Some(status) = SendStatus::from_code(resp.code) else {
        return Err(ClientError::from_response(resp));
    };
    let bad = |e: ringmq_remoting::FrameError| ClientError::Protocol(format!("send response: {e}"));
    Ok(SendResult {
        status,
        msg_id,
        offset_msg_id: resp.ext_str("msgId").map_err(bad)?.to_owned(),
        queue_id: resp.ext_i32("queueId").map_err(bad)?,
        queue_offset: resp.ext_i64("queueOffset").map_err(bad)?,
    })
}
