//! Blocking pull consumer over one broker connection: PULL_MESSAGE (11,
//! spec §5) with optional long polling, consumer offsets (§3.3, §3.4) and
//! queue offsets (§3.10).
//!
//! Pulls always carry the SUBSCRIPTION sysFlag bit with the consumer's
//! expression (default `*`, type TAG), since this client sends no
//! heartbeat. The SUCCESS body is a concatenation of stored CommitLog
//! records (§5.5), decoded by [`decode_messages`] into [`ReceivedMessage`]s
//! whose bodies are zero-copy slices of the response. Bodies of messages
//! with the COMPRESSED sysFlag are returned as stored (still compressed).

use ringmq_record::clock::now_millis;
use std::time::Duration;

use bytes::Bytes;
use ringmq_record::{decode_properties, keys, parse, Parsed};

use super::connection::{
    expect_success, new_request, ClientError, ConnectOptions, Connection, Result,
};
use super::route::MessageQueue;
use ringmq_remoting::codes::{request_code, response_code, SerializeType};
use ringmq_remoting::command::RemotingCommand;

/// Pull sysFlag bits (§5.1).
pub mod pull_sysflag {
    pub const COMMIT_OFFSET: i32 = 0x1;
    pub const SUSPEND: i32 = 0x2;
    pub const SUBSCRIPTION: i32 = 0x4;
    pub const CLASS_FILTER: i32 = 0x8;
    pub const LITE_PULL: i32 = 0x10;
}

/// Pull outcome (response codes 0, 19, 20, 21).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PullStatus {
    Found,
    NoNewMessage,
    NoMatchedMsg,
    OffsetIllegal,
}

impl PullStatus {
    pub fn from_code(code: i32) -> Option<Self> {
        match code {
            response_code::SUCCESS => Some(Self::Found),
            response_code::PULL_NOT_FOUND => Some(Self::NoNewMessage),
            response_code::PULL_RETRY_IMMEDIATELY => Some(Self::NoMatchedMsg),
            response_code::PULL_OFFSET_MOVED => Some(Self::OffsetIllegal),
            _ => None,
        }
    }
}

/// One pulled message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    pub topic: String,
    pub queue_id: i32,
    pub queue_offset: i64,
    pub phys_offset: i64,
    pub flag: i32,
    pub sys_flag: i32,
    /// Slice of the pull response body.
    pub body: Bytes,
    pub properties: Vec<(String, String)>,
    pub tags: Option<String>,
    pub keys: Option<String>,
    pub store_timestamp: i64,
    pub born_timestamp: i64,
    pub born_host: std::net::SocketAddr,
    pub store_host: std::net::SocketAddr,
    /// `UNIQ_KEY`, or the offsetMsgId when the message has none.
    pub msg_id: String,
    pub offset_msg_id: String,
    pub reconsume_times: i32,
}

impl ReceivedMessage {
    pub fn property(&self, name: &str) -> Option<&str> {
        self.properties
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Result of a pull.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullResult {
    pub status: PullStatus,
    pub next_begin_offset: i64,
    pub min_offset: i64,
    pub max_offset: i64,
    pub suggest_which_broker_id: i64,
    pub messages: Vec<ReceivedMessage>,
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct PullOptions {
    pub serialize_type: SerializeType,
    /// Timeout of non-suspended requests; a suspended pull waits
    /// `suspend + SUSPEND_SLACK + timeout`.
    pub timeout: Duration,
    /// Subscription expression sent with every pull (`*` = all).
    pub subscription: String,
    /// `TAG` or `SQL92`.
    pub expression_type: String,
    /// Verify body CRCs of pulled records.
    pub check_crc: bool,
    pub connect: ConnectOptions,
}

impl Default for PullOptions {
    fn default() -> Self {
        Self {
            serialize_type: SerializeType::Json,
            timeout: Duration::from_secs(3),
            subscription: "*".into(),
            expression_type: "TAG".into(),
            check_crc: false,
            connect: ConnectOptions::default(),
        }
    }
}

/// A broker may answer a timed-out long poll up to ~5 s late (§5.6).
pub const SUSPEND_SLACK: Duration = Duration::from_secs(5);

/// Pulls from one broker.
pub struct PullConsumer {
    conn: Connection,
    group: String,
    opts: PullOptions,
    /// The subscription of plain [`pull`](PullConsumer::pull)s.
    filter: Filter,
}

/// A subscription expression as pulls send it, with the tags a TAG expression names
/// (the broker filters by tag hash; the client re-filters by tag text, as RocketMQ's do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `*` (or empty) = every message; `a || b` = tags a or b.
    pub expression: String,
    /// `TAG` or `SQL92`.
    pub expression_type: String,
    /// Tags of a TAG expression other than `*`.
    pub tags: Option<Vec<String>>,
}

impl Filter {
    pub fn new(expression: &str, expression_type: &str) -> Filter {
        let sub = expression.trim();
        let tags = (expression_type.eq_ignore_ascii_case("TAG") && !sub.is_empty() && sub != "*")
            .then(|| {
                sub.split("||")
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned)
                    .collect()
            });
        Filter {
            expression: if sub.is_empty() {
                "*".into()
            } else {
                sub.to_owned()
            },
            expression_type: expression_type.to_owned(),
            tags,
        }
    }

    /// Every message (`*`).
    pub fn all() -> Filter {
        Filter::new("*", "TAG")
    }
}

/// Arguments of [`PullConsumer::pull_with`].
#[derive(Debug, Clone, Default)]
pub struct PullArgs<'a> {
    pub offset: i64,
    pub max_nums: i32,
    /// Long-poll hold asked of the broker.
    pub suspend: Option<Duration>,
    /// None = the consumer's own subscription.
    pub filter: Option<&'a Filter>,
    /// Commit this offset for the group with the pull.
    pub commit_offset: Option<i64>,
}

impl PullConsumer {
    pub fn connect(addr: &str, group: &str) -> Result<PullConsumer> {
        Self::connect_with(addr, group, PullOptions::default())
    }

    pub fn connect_with(addr: &str, group: &str, opts: PullOptions) -> Result<PullConsumer> {
        let conn = Connection::connect_with(addr, opts.connect.clone())?;
        Ok(Self::with_connection(conn, group, opts))
    }

    /// Use an existing connection.
    pub fn with_connection(conn: Connection, group: &str, opts: PullOptions) -> PullConsumer {
        let filter = Filter::new(&opts.subscription, &opts.expression_type);
        PullConsumer {
            conn,
            group: group.to_owned(),
            opts,
            filter,
        }
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    pub fn group(&self) -> &str {
        &self.group
    }

    fn request(&self, code: i32) -> RemotingCommand {
        new_request(code, self.opts.serialize_type)
    }

    /// Pull up to `max_nums` messages from `offset`. With `suspend`, the
    /// broker may hold the request that long waiting for messages.
    pub fn pull(
        &self,
        mq: &MessageQueue,
        offset: i64,
        max_nums: i32,
        suspend: Option<Duration>,
    ) -> Result<PullResult> {
        self.pull_with(
            mq,
            &PullArgs {
                offset,
                max_nums,
                suspend,
                filter: None,
                commit_offset: None,
            },
        )
    }

    /// A pull with every knob: a subscription other than the consumer's own (a push
    /// consumer subscribes per topic) and an offset commit piggy-backed on the request
    /// (the COMMIT_OFFSET sysFlag, §5.7).
    pub fn pull_with(&self, mq: &MessageQueue, args: &PullArgs<'_>) -> Result<PullResult> {
        let filter = args.filter.unwrap_or(&self.filter);
        let mut sys_flag = pull_sysflag::SUBSCRIPTION;
        if args.suspend.is_some() {
            sys_flag |= pull_sysflag::SUSPEND;
        }
        if args.commit_offset.is_some() {
            sys_flag |= pull_sysflag::COMMIT_OFFSET;
        }
        let suspend_ms = args.suspend.map_or(0, |d| d.as_millis() as i64);
        let mut cmd = self
            .request(request_code::PULL_MESSAGE)
            .with_ext("consumerGroup", &self.group)
            .with_ext("topic", &mq.topic)
            .with_ext("queueId", mq.queue_id)
            .with_ext("queueOffset", args.offset)
            .with_ext("maxMsgNums", args.max_nums)
            .with_ext("sysFlag", sys_flag)
            .with_ext("commitOffset", args.commit_offset.unwrap_or(0))
            .with_ext("suspendTimeoutMillis", suspend_ms)
            .with_ext("subscription", &filter.expression)
            .with_ext("subVersion", now_millis())
            .with_ext("expressionType", &filter.expression_type);
        if !mq.broker_name.is_empty() {
            cmd.set_ext("bname", &mq.broker_name);
        }
        let timeout = match args.suspend {
            Some(d) => d + SUSPEND_SLACK + self.opts.timeout,
            None => self.opts.timeout,
        };
        let resp = self.conn.request(cmd, timeout)?;
        self.parse_pull_response(resp, filter)
    }

    fn parse_pull_response(&self, resp: RemotingCommand, filter: &Filter) -> Result<PullResult> {
        let Some(mut status) = PullStatus::from_code(resp.code) else {
            return Err(ClientError::from_response(&resp));
        };
        let field = |name: &str| {
            resp.ext_i64(name)
                .map_err(|e| ClientError::Protocol(format!("pull response: {e}")))
        };
        let mut result = PullResult {
            status,
            next_begin_offset: field("nextBeginOffset")?,
            min_offset: field("minOffset")?,
            max_offset: field("maxOffset")?,
            suggest_which_broker_id: resp
                .ext_opt::<i64>(&["suggestWhichBrokerId"])
                .ok()
                .flatten()
                .unwrap_or(0),
            messages: Vec::new(),
        };
        if status == PullStatus::Found {
            let mut msgs = decode_messages(&resp.body, self.opts.check_crc)?;
            if let Some(tags) = &filter.tags {
                msgs.retain(|m| m.tags.as_ref().is_some_and(|t| tags.contains(t)));
            }
            if msgs.is_empty() {
                status = PullStatus::NoMatchedMsg;
            }
            result.status = status;
            result.messages = msgs;
        }
        Ok(result)
    }

    /// Committed offset of `group` on `mq`; `None` if the broker has none
    /// (QUERY_NOT_FOUND).
    pub fn query_offset(&self, group: &str, mq: &MessageQueue) -> Result<Option<i64>> {
        let cmd = self
            .request(request_code::QUERY_CONSUMER_OFFSET)
            .with_ext("consumerGroup", group)
            .with_ext("topic", &mq.topic)
            .with_ext("queueId", mq.queue_id);
        let resp = self.conn.request(cmd, self.opts.timeout)?;
        if resp.code == response_code::QUERY_NOT_FOUND {
            return Ok(None);
        }
        offset_field(expect_success(resp)?).map(Some)
    }

    /// Commit `offset` (the next offset to consume) for `group` on `mq`.
    pub fn update_offset(&self, group: &str, mq: &MessageQueue, offset: i64) -> Result<()> {
        let cmd = self.update_offset_request(group, mq, offset);
        expect_success(self.conn.request(cmd, self.opts.timeout)?)?;
        Ok(())
    }

    /// [`update_offset`](Self::update_offset) as a oneway request, as
    /// RocketMQ clients persist offsets.
    pub fn update_offset_oneway(&self, group: &str, mq: &MessageQueue, offset: i64) -> Result<()> {
        self.conn
            .oneway(self.update_offset_request(group, mq, offset))
    }

    fn update_offset_request(
        &self,
        group: &str,
        mq: &MessageQueue,
        offset: i64,
    ) -> RemotingCommand {
        self.request(request_code::UPDATE_CONSUMER_OFFSET)
            .with_ext("consumerGroup", group)
            .with_ext("topic", &mq.topic)
            .with_ext("queueId", mq.queue_id)
            .with_ext("commitOffset", offset)
    }

    fn queue_offset(&self, code: i32, mq: &MessageQueue, extra: &[(&str, String)]) -> Result<i64> {
        let mut cmd = self
            .request(code)
            .with_ext("topic", &mq.topic)
            .with_ext("queueId", mq.queue_id);
        for (k, v) in extra {
            cmd.set_ext(*k, v);
        }
        offset_field(expect_success(self.conn.request(cmd, self.opts.timeout)?)?)
    }

    /// Offset the next message of `mq` will get (GET_MAX_OFFSET).
    pub fn max_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.queue_offset(request_code::GET_MAX_OFFSET, mq, &[])
    }

    /// Oldest offset still present in `mq` (GET_MIN_OFFSET).
    pub fn min_offset(&self, mq: &MessageQueue) -> Result<i64> {
        self.queue_offset(request_code::GET_MIN_OFFSET, mq, &[])
    }

    /// SEARCH_OFFSET_BY_TIMESTAMP: first offset stored at or after
    /// `timestamp_ms` (`upper = false`), or last offset stored at or before
    /// it (`upper = true`).
    pub fn search_offset(&self, mq: &MessageQueue, timestamp_ms: i64, upper: bool) -> Result<i64> {
        let boundary = if upper { "UPPER" } else { "LOWER" };
        self.queue_offset(
            request_code::SEARCH_OFFSET_BY_TIMESTAMP,
            mq,
            &[
                ("timestamp", timestamp_ms.to_string()),
                ("boundaryType", boundary.to_owned()),
            ],
        )
    }
}

fn offset_field(resp: RemotingCommand) -> Result<i64> {
    resp.ext_i64("offset")
        .map_err(|e| ClientError::Protocol(format!("offset response: {e}")))
}

/// Split a pull body (concatenated stored records) into messages.
pub fn decode_messages(body: &Bytes, check_crc: bool) -> Result<Vec<ReceivedMessage>> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let rest = &body[at..];
        let view = match parse(rest, at as i64, check_crc) {
            Ok(Parsed::Record(v)) => v,
            Ok(Parsed::Blank { .. }) => {
                return Err(ClientError::Protocol(format!(
                    "pull body: blank marker at byte {at}"
                )))
            }
            Ok(Parsed::Incomplete) => {
                return Err(ClientError::Protocol(format!(
                    "pull body: truncated record at byte {at} ({} bytes left)",
                    rest.len()
                )))
            }
            Err(e) => return Err(ClientError::Protocol(format!("pull body: {e}"))),
        };
        let body_start = at + (view.body().as_ptr() as usize - rest.as_ptr() as usize);
        let properties = decode_properties(view.properties());
        let prop = |name: &str| {
            properties
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        };
        let offset_msg_id = view.offset_msg_id();
        out.push(ReceivedMessage {
            topic: view.topic().to_owned(),
            queue_id: view.queue_id(),
            queue_offset: view.queue_offset(),
            phys_offset: view.physical_offset(),
            flag: view.flag(),
            sys_flag: view.sys_flag(),
            body: body.slice(body_start..body_start + view.body().len()),
            tags: prop(keys::TAGS),
            keys: prop(keys::KEYS),
            msg_id: prop(keys::UNIQ_KEY).unwrap_or_else(|| offset_msg_id.clone()),
            offset_msg_id,
            store_timestamp: view.store_timestamp(),
            born_timestamp: view.born_timestamp(),
            born_host: view.born_host(),
            store_host: view.store_host(),
            reconsume_times: view.reconsume_times(),
            properties,
        });
        at += view.total_size() as usize;
    }
    Ok(out)
}
