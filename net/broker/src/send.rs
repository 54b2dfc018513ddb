//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).
//!
//! The connection loop hands over every send decoded in one network turn; they become
//! one append request for the writer (one queue hand-off, contiguous in the log). Header
//! checks, topic auto-creation, property handling and the body CRC all happen here, on
//! the network core, so the writer only encodes. The writer's completion comes back to
//! the connection as `Outgoing::Sends`, where `responses` turns it into one answer per
//! request.
//!
//! Two kinds of single sends are rewritten before they are stored (spec §3.1 steps 5 and
//! 11): a send to `%RETRY%<group>` whose reconsume count exceeds the group's limit goes to
//! `%DLQ%<group>` instead, and a message with `DELAY` > 0 goes to `SCHEDULE_TOPIC_XXXX`
//! (see `schedule`). Both are found in the one pass over the properties every send makes
//! anyway, so ordinary sends pay nothing extra. Batches may do neither (MESSAGE_ILLEGAL).

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ringmq_engine::commitlog::{AppendOutcome, Appended, PutStatus};
use ringmq_engine::delay_levels::SCHEDULE_TOPIC;
use ringmq_engine::meta::PERM_WRITE;
use ringmq_engine::record::{
    self, decode_batch, keys, sysflag, MessageToStore, OffsetMsgId, PropertyIter, DLQ_TOPIC_PREFIX,
    RETRY_TOPIC_PREFIX,
};

use super::conn::{header_error, ConnInfo, Outgoing, SendCtx};
use super::put::put_like_send;
use super::topics::validate_topic_name;
use super::{send_back, Broker};
use ringmq_engine::delay_levels;
use ringmq_engine::record::edit_properties;
use ringmq_ha::ReplicaOutcome;
use ringmq_remoting::codes::SerializeType;
use ringmq_remoting::codes::{response_code as rs, version};
use ringmq_remoting::command::{ExtFields, RemotingCommand, LOCAL_LANGUAGE, LOCAL_VERSION};
use ringmq_remoting::error::FrameError;
use ringmq_remoting::frame::encode_json_response;
use ringmq_remoting::header::{RequestHeader, SendMessageHeader};
use ringmq_remoting::server::put;

/// A send that could not be stored: its answer is known now.
pub enum Prepared {
    Ready(SendCtx, Vec<MessageToStore>, bool),
    Rejected(Option<RemotingCommand>),
}

/// Stores the sends of one network turn; answers arrive on the connection's outbox.
pub fn submit_turn(b: &Arc<Broker>, conn: &Arc<ConnInfo>, requests: Vec<RemotingCommand>) {
    let mut ctxs = Vec::with_capacity(requests.len());
    let mut messages = Vec::with_capacity(requests.len());
    let mut wait = false;
    for req in requests {
        match prepare(b, conn, &req) {
            Prepared::Ready(ctx, msgs, wait_store) => {
                wait |= wait_store;
                messages.extend(msgs);
                ctxs.push(ctx);
            }
            Prepared::Rejected(Some(resp)) => conn.send(resp),
            Prepared::Rejected(None) => {}
        }
    }
    if ctxs.is_empty() {
        return;
    }
    let outbox = conn.outbox.clone();
    let n = ctxs.len();
    PENDING.fetch_add(n, Ordering::AcqRel);
    // Under SYNC_FLUSH / SYNC_MASTER the answer waits (unless every message said WAIT=false).
    let tally = b.metrics.tally(&messages, n);
    put_like_send(
        b,
        messages,
        wait,
        Box::new(move |outcome, replica| {
            if matches!(outcome.status, PutStatus::Ok | PutStatus::FlushDiskTimeout) {
                tally.commit();
            }
            PENDING.fetch_sub(n, Ordering::AcqRel);
            let _ = outbox.send(Outgoing::Sends(ctxs, outcome, replica));
        }),
    );
}

fn reject(req: &RemotingCommand, code: i32, remark: impl Into<String>) -> Prepared {
    if req.is_oneway() {
        return Prepared::Rejected(None);
    }
    Prepared::Rejected(Some(RemotingCommand::response_to(
        req,
        code,
        Some(remark.into()),
    )))
}

static NEXT_QUEUE: AtomicU32 = AtomicU32::new(0);

/// Topics producers may not send to (`TopicValidator.isNotAllowedSendTopic`).
const NOT_ALLOWED_SEND_TOPICS: &[&str] = &[
    SCHEDULE_TOPIC,
    "RMQ_SYS_TRANS_HALF_TOPIC",
    "RMQ_SYS_TRANS_OP_HALF_TOPIC",
    "TRANS_CHECK_MAX_TIME_TOPIC",
    "SELF_TEST_TOPIC",
    "OFFSET_MOVED_EVENT",
];

/// Sends handed to the writer and not yet answered by it, over all connections (a
/// stopping server waits for these).
static PENDING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

pub fn pending() -> usize {
    PENDING.load(Ordering::Acquire)
}

fn prepare(b: &Broker, conn: &ConnInfo, req: &RemotingCommand) -> Prepared {
    match prepare_inner(b, conn, req) {
        Ok(p) => p,
        Err(e) => {
            b.stats.put_errors.fetch_add(1, Ordering::Relaxed);
            if req.is_oneway() {
                Prepared::Rejected(None)
            } else {
                Prepared::Rejected(Some(header_error(req, &e)))
            }
        }
    }
}

fn prepare_inner(
    b: &Broker,
    conn: &ConnInfo,
    req: &RemotingCommand,
) -> Result<Prepared, FrameError> {
    if !b.cfg.broker_role.is_master() {
        return Ok(reject(
            req,
            rs::SERVICE_NOT_AVAILABLE,
            "this broker is a SLAVE and does not accept messages; send to the master",
        ));
    }
    if b.is_stopping() {
        return Ok(reject(
            req,
            rs::SERVICE_NOT_AVAILABLE,
            "broker is shutting down",
        ));
    }
    let h = SendMessageHeader::decode(req)?;
    let topic = h.topic;

    if let Err(why) = validate_topic_name(topic) {
        return Ok(reject(req, rs::INVALID_PARAMETER, why));
    }
    if NOT_ALLOWED_SEND_TOPICS.contains(&topic) {
        return Ok(reject(
            req,
            rs::NO_PERMISSION,
            format!("Sending message to topic[{topic}] is forbidden."),
        ));
    }
    if h.batch && topic.starts_with(RETRY_TOPIC_PREFIX) {
        return Ok(reject(
            req,
            rs::MESSAGE_ILLEGAL,
            "batch request does not support retry group",
        ));
    }
    let info =
        match b
            .topics
            .get_or_create_for_send(topic, h.default_topic, h.default_topic_queue_nums)
        {
            Ok(info) => info,
            Err(why) => return Ok(reject(req, rs::TOPIC_NOT_EXIST, why)),
        };
    if info.perm & PERM_WRITE == 0 {
        return Ok(reject(
            req,
            rs::NO_PERMISSION,
            format!("the topic[{topic}] sending message is forbidden"),
        ));
    }
    let queues = info.write_queues.max(info.read_queues);
    let queue_id = h.queue_id;
    if queue_id >= queues {
        return Ok(reject(
            req,
            rs::INVALID_PARAMETER,
            format!("queueId[{queue_id}] is illegal, topic {topic} has {queues} queues"),
        ));
    }
    let queue_id = if queue_id < 0 {
        (NEXT_QUEUE.fetch_add(1, Ordering::Relaxed) % info.write_queues.max(1) as u32) as i32
    } else {
        queue_id
    };
    let cluster = &b.cfg.broker_cluster_name;
    let build = |body: Bytes, props: Bytes, flag: i32| {
        let mut m = MessageToStore::new(topic, queue_id, body, props);
        m.flag = flag;
        m.sys_flag = h.sys_flag;
        m.born_timestamp = h.born_timestamp;
        m.born_host = conn.peer;
        m.reconsume_times = h.reconsume_times;
        m
    };
    let max = b.cfg.max_message_size;
    let (messages, uniq_key, wait) = if h.batch {
        // As RocketMQ's store checks a batch: the whole body within maxMessageSize.
        if req.body.len() > max {
            return Ok(reject(
                req,
                rs::MESSAGE_ILLEGAL,
                format!(
                    "batch body size {} exceeds maxMessageSize {max}",
                    req.body.len()
                ),
            ));
        }
        let items = match decode_batch(&req.body) {
            Ok(items) => items,
            Err(e) => {
                return Ok(reject(
                    req,
                    rs::MESSAGE_ILLEGAL,
                    format!("bad batch body: {e}"),
                ))
            }
        };
        // The store refuses batches with a transaction type or a delay level.
        if sysflag::transaction_type(h.sys_flag) != sysflag::TRANSACTION_NOT_TYPE {
            return Ok(reject(
                req,
                rs::MESSAGE_ILLEGAL,
                "batch messages cannot be transactional",
            ));
        }
        let envelope = scan_properties(h.properties.as_bytes());
        if envelope.delay > 0 {
            return Ok(reject(
                req,
                rs::MESSAGE_ILLEGAL,
                "batch messages cannot have a delay level",
            ));
        }
        let mut msgs = Vec::with_capacity(items.len());
        for item in items {
            let stored = match stored_properties(&item.properties, cluster, false) {
                Ok(p) => p,
                Err(why) => return Ok(reject(req, rs::MESSAGE_ILLEGAL, why)),
            };
            if stored.delay > 0 {
                return Ok(reject(
                    req,
                    rs::MESSAGE_ILLEGAL,
                    "batch messages cannot have a delay level",
                ));
            }
            msgs.push(build(item.body, stored.props, item.flag));
        }
        (msgs, None, envelope.wait)
    } else {
        let stored = match stored_properties(h.properties.as_bytes(), cluster, true) {
            Ok(p) => p,
            Err(why) => return Ok(reject(req, rs::MESSAGE_ILLEGAL, why)),
        };
        let mut m = build(req.body.clone(), stored.props, h.flag);
        let mut delay = stored.delay;
        if let Some(group) = topic.strip_prefix(RETRY_TOPIC_PREFIX) {
            let max_times = if req.version >= version::V3_4_9 {
                h.max_reconsume_times.clone()?
            } else {
                None
            };
            if let Some(refused) = retry_or_dlq(b, req, group, max_times, &mut m) {
                return Ok(refused);
            }
            if m.topic.starts_with(DLQ_TOPIC_PREFIX) {
                delay = -1; // redirected: its DELAY is now -1
            }
        }
        if delay > 0 && delay_levels::delay_applies(m.sys_flag) {
            delay_levels::to_schedule_topic(&mut m, delay, b.store.delay_levels());
        }
        (vec![m], stored.uniq_key, stored.wait)
    };
    if let Some(err) = messages.iter().find_map(|m| m.validate(max).err()) {
        return Ok(reject(req, rs::MESSAGE_ILLEGAL, err.to_string()));
    }
    let ctx = SendCtx {
        opaque: req.opaque,
        serialize_type: req.serialize_type,
        queue_id,
        count: messages.len(),
        uniq_key,
        oneway: req.is_oneway(),
    };
    Ok(Prepared::Ready(ctx, messages, wait))
}

/// §3.1 step 5, for a single send to `%RETRY%<group>`: the group must exist (or be
/// auto-created); past the group's retry limit (or the header's `maxReconsumeTimes`) the
/// message goes to `%DLQ%<group>` with `DELAY=-1`. Returns the refusal, if refused.
fn retry_or_dlq(
    b: &Broker,
    req: &RemotingCommand,
    group: &str,
    max_times: Option<i32>,
    m: &mut MessageToStore,
) -> Option<Prepared> {
    let Some(config) = send_back::find_group(b, group) else {
        return Some(reject(
            req,
            rs::SUBSCRIPTION_GROUP_NOT_EXIST,
            format!("subscription group not exist, {group}"),
        ));
    };
    let limit = max_times.unwrap_or(config.retry_max_times);
    // A group holding order locks consumes orderly: RocketMQ sends its retries to the DLQ.
    let orderly = !b.locks.is_lock_all_expired(group);
    if m.reconsume_times <= limit && !orderly {
        return None;
    }
    let dlq = match send_back::ensure_dlq_topic(b, group) {
        Ok(t) => t,
        Err(why) => return Some(reject(req, rs::SYSTEM_ERROR, why)),
    };
    tracing::info!(
        group,
        dlq = %dlq,
        reconsume_times = m.reconsume_times,
        limit,
        orderly,
        "retry message past its limit (or of an orderly group) sent to the DLQ"
    );
    m.topic = dlq;
    m.queue_id = 0;
    m.properties = edit_properties(&m.properties, &[], &[(keys::DELAY, "-1")]);
    None
}

/// What the send path needs to know of a client's properties, found in one pass.
#[derive(Debug, Default)]
struct Scanned<'a> {
    uniq_key: Option<&'a str>,
    has_cluster: bool,
    /// `WAIT` is not `false`.
    wait: bool,
    /// `DELAY` as a number (0 when absent or not a number).
    delay: i32,
}

fn scan_properties(client: &[u8]) -> Scanned<'_> {
    let mut s = Scanned {
        wait: true,
        ..Scanned::default()
    };
    // Later duplicates win, as in `find_property`.
    for (k, v) in PropertyIter::new(client) {
        match k {
            b"UNIQ_KEY" => s.uniq_key = std::str::from_utf8(v).ok(),
            b"CLUSTER" => s.has_cluster = std::str::from_utf8(v).is_ok(),
            b"WAIT" => s.wait = v != b"false",
            b"DELAY" => {
                s.delay = std::str::from_utf8(v)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .unwrap_or(0)
            }
            _ => {}
        }
    }
    s
}

/// A message's properties as stored, and what the send path learnt from them.
#[derive(Debug)]
struct Stored {
    props: Bytes,
    uniq_key: Option<String>,
    wait: bool,
    delay: i32,
}

/// The properties string as stored: the client's string with a 0x02 after its last entry
/// (recovery relies on it), `UNIQ_KEY` added to a single message that lacks one, and the
/// broker's `CLUSTER`. NUL bytes are refused.
fn stored_properties(client: &[u8], cluster: &str, add_uniq: bool) -> Result<Stored, String> {
    if client.contains(&0) {
        return Err("message properties contain a NUL byte".into());
    }
    let scanned = scan_properties(client);
    let mut out = BytesMut::with_capacity(client.len() + cluster.len() + 48);
    out.put_slice(client);
    if !client.is_empty() && client.last() != Some(&0x02) {
        out.put_u8(0x02);
    }
    let mut uniq_key = scanned.uniq_key.map(str::to_owned);
    if add_uniq && uniq_key.is_none() {
        let key = record::new_uniq_key();
        record::put_property(&mut out, keys::UNIQ_KEY, &key);
        uniq_key = Some(key);
    }
    if !scanned.has_cluster {
        record::put_property(&mut out, keys::CLUSTER, cluster);
    }
    if out.len() > record::PROPERTIES_MAX_LEN {
        return Err(format!(
            "properties of {} bytes exceed {}",
            out.len(),
            record::PROPERTIES_MAX_LEN
        ));
    }
    Ok(Stored {
        props: out.freeze(),
        uniq_key,
        wait: scanned.wait,
        delay: scanned.delay,
    })
}

/// The `msgId` of a send's answer: its stored messages' offsetMsgIds, comma-separated,
/// written into the response without intermediate strings.
struct MsgIds<'a> {
    store_host: &'a std::net::SocketAddr,
    appended: &'a [Appended],
}

impl std::fmt::Display for MsgIds<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, a) in self.appended.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", OffsetMsgId::new(self.store_host, a.phys_offset))?;
        }
        Ok(())
    }
}

/// Writes the answers to the sends of one turn, one per request (none for a oneway one),
/// from the writer's answer, into `out`.
///
/// Each answer is a response to its request with `MSG_REGION` and `TRACE_ON`, and for
/// stored messages `msgId` (offsetMsgIds, comma-separated), `queueId`, `queueOffset` and
/// `transactionId` (a single message's UNIQ_KEY), in that order. JSON answers without a
/// remark (every successful one) are written straight into `out`
/// ([`encode_json_response`]: the same bytes as the command, with no command or strings
/// built); the others are built as commands and encoded.
pub fn encode_responses(
    b: &Broker,
    ctxs: Vec<SendCtx>,
    outcome: AppendOutcome,
    replica: ReplicaOutcome,
    out: &mut BytesMut,
) {
    let (code, remark) = match (&outcome.status, replica) {
        // RocketMQ reports a disk timeout before a replication failure.
        (PutStatus::Ok, ReplicaOutcome::Timeout) => (rs::FLUSH_SLAVE_TIMEOUT, None),
        (PutStatus::Ok, ReplicaOutcome::NotAvailable) => (rs::SLAVE_NOT_AVAILABLE, None),
        (PutStatus::Ok, _) => (rs::SUCCESS, None),
        (PutStatus::FlushDiskTimeout, _) => (rs::FLUSH_DISK_TIMEOUT, None),
        (PutStatus::MessageIllegal(why), _) => (rs::MESSAGE_ILLEGAL, Some(why.clone())),
        (PutStatus::DiskFull, _) => (
            rs::SERVICE_NOT_AVAILABLE,
            Some("the broker's disk is full; message not stored".to_string()),
        ),
        (PutStatus::ServiceNotAvailable(why), _) => (
            rs::SERVICE_NOT_AVAILABLE,
            Some(format!("store not available: {why}")),
        ),
    };
    b.metrics.send_failures.count(code, ctxs.len() as u64);
    let stored = !outcome.appended.is_empty();
    if stored {
        b.stats
            .msgs_put
            .fetch_add(outcome.appended.len() as u64, Ordering::Relaxed);
    } else {
        b.stats
            .put_errors
            .fetch_add(ctxs.len() as u64, Ordering::Relaxed);
    }
    let store_host = b.store.commitlog().config().store_host;
    let region = b.cfg.region_id.as_str();
    let trace_on = b.cfg.trace_on;
    let mut at = 0;
    for ctx in ctxs {
        let mine = if stored {
            &outcome.appended[at..at + ctx.count]
        } else {
            &[][..]
        };
        at += ctx.count;
        if ctx.oneway {
            continue;
        }
        let ids = MsgIds {
            store_host: &store_host,
            appended: mine,
        };
        let queue_offset = mine.first().map_or(0, |a| a.queue_offset);
        let uniq = ctx.uniq_key.as_deref().unwrap_or("");
        let fields: [(&str, &dyn std::fmt::Display); 6] = [
            ("MSG_REGION", &region),
            ("TRACE_ON", &trace_on),
            ("msgId", &ids),
            ("queueId", &ctx.queue_id),
            ("queueOffset", &queue_offset),
            ("transactionId", &uniq),
        ];
        let n = match (mine.is_empty(), ctx.uniq_key.is_some()) {
            (true, _) => 2,
            (false, false) => 5,
            (false, true) => 6,
        };
        let fields = &fields[..n];
        if ctx.serialize_type == SerializeType::Json && remark.is_none() {
            tracing::trace!(code, opaque = ctx.opaque, "response");
            encode_json_response(out, code, ctx.opaque, None, fields);
        } else {
            let mut resp = RemotingCommand {
                code,
                language: LOCAL_LANGUAGE,
                version: LOCAL_VERSION,
                opaque: ctx.opaque,
                flag: RemotingCommand::RESPONSE_FLAG,
                remark: remark.clone(),
                ext_fields: ExtFields::with_capacity(n, 160),
                body: Bytes::new(),
                serialize_type: ctx.serialize_type,
            };
            for (k, v) in fields {
                resp.set_ext(k, v);
            }
            put(&resp, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_properties_are_terminated_and_tagged() {
        let s = stored_properties(b"TAGS\x01a\x02KEYS\x01k", "C1", true).unwrap();
        let p = &s.props;
        assert!(record::properties_well_formed(p));
        assert_eq!(record::find_property(p, "KEYS"), Some("k"));
        assert_eq!(record::find_property(p, "CLUSTER"), Some("C1"));
        assert_eq!(
            record::find_property(p, keys::UNIQ_KEY),
            s.uniq_key.as_deref()
        );
        assert!(s.uniq_key.is_some() && s.wait && s.delay == 0);
        let kept = stored_properties(b"UNIQ_KEY\x01ABC\x02", "C1", true).unwrap();
        assert_eq!(
            record::find_property(&kept.props, keys::UNIQ_KEY),
            Some("ABC")
        );
        assert_eq!(kept.uniq_key.as_deref(), Some("ABC"));
        assert!(stored_properties(b"A\x01\x00\x02", "C1", true).is_err());
        let bare = stored_properties(b"", "C", false).unwrap();
        assert_eq!(&bare.props[..], b"CLUSTER\x01C\x02");
        assert_eq!(bare.uniq_key, None, "none generated for batch items");
        let flags = stored_properties(
            b"DELAY\x012\x02WAIT\x01false\x02CLUSTER\x01X\x02DELAY\x013\x02",
            "C",
            false,
        )
        .unwrap();
        assert_eq!((flags.delay, flags.wait), (3, false), "last duplicate wins");
        assert_eq!(record::find_property(&flags.props, "CLUSTER"), Some("X"));
        assert_eq!(
            stored_properties(b"DELAY\x01x\x02", "C", false)
                .unwrap()
                .delay,
            0
        );
    }
}
