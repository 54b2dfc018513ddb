//! SEND_MESSAGE (10), SEND_MESSAGE_V2 (310) and SEND_BATCH_MESSAGE (320).
//!
//! The connection loop hands over every send decoded in one network turn; they become
//! one append request for the writer (one queue hand-off, contiguous in the log). Header
//! checks, topic auto-creation, property handling and the body CRC all happen here, on
//! the network core, so the writer only encodes. The writer's completion comes back to
//! the connection as `Outgoing::Sends`, where `responses` turns it into one answer per
//! request.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use ringmq_engine::commitlog::{AppendOutcome, AppendRequest, PutStatus};
use ringmq_engine::meta::PERM_WRITE;
use ringmq_engine::record::{self, decode_batch, keys, offset_msg_id, MessageToStore};

use super::replication::ReplicaOutcome;
use super::route::{header_error, ConnInfo, Outgoing};
use super::topics::validate_topic_name;
use super::Broker;
use crate::codes::{request_code as rq, response_code as rs};
use crate::command::RemotingCommand;
use crate::error::FrameError;

/// What is kept of one send request until the writer answers.
pub struct SendCtx {
    /// A response carrying the request's opaque and serialize type, to be filled in.
    response: RemotingCommand,
    queue_id: i32,
    /// How many messages of the turn's append belong to this request.
    count: usize,
    /// UNIQ_KEY of a single message (the response's transactionId).
    uniq_key: Option<String>,
    oneway: bool,
}

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
    // Under SYNC_MASTER the answer also waits for slaves (unless every message said WAIT=false).
    let replication = if wait { b.replication().cloned() } else { None };
    let timeout = b.cfg.sync_flush_timeout;
    b.store.put(AppendRequest {
        messages,
        wait_durable: wait,
        done: Box::new(move |outcome| {
            let answer = move |outcome, replica| {
                PENDING.fetch_sub(n, Ordering::AcqRel);
                let _ = outbox.send(Outgoing::Sends(ctxs, outcome, replica));
            };
            let stored = matches!(outcome.status, PutStatus::Ok | PutStatus::FlushDiskTimeout);
            match replication {
                Some(r) if stored => {
                    let deadline = std::time::Instant::now() + timeout;
                    let end = outcome.end_offset;
                    r.wait_replicated(
                        end,
                        deadline,
                        Box::new(move |replica| answer(outcome, replica)),
                    );
                }
                _ => answer(outcome, ReplicaOutcome::NotRequired),
            }
        }),
    });
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

/// Header field names: code 10 uses long names, 310/320 the one-letter V2 names.
fn field<'a>(req: &RemotingCommand, long: &'a str, short: &'a str) -> [&'a str; 2] {
    if req.code == rq::SEND_MESSAGE {
        [long, short]
    } else {
        [short, long]
    }
}

static NEXT_QUEUE: AtomicU32 = AtomicU32::new(0);

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
    let topic = req.ext_str_any(&field(req, "topic", "b"))?;
    let default_topic = req
        .ext_opt::<String>(&field(req, "defaultTopic", "c"))?
        .unwrap_or_default();
    let default_queues = req
        .ext_opt::<i32>(&field(req, "defaultTopicQueueNums", "d"))?
        .unwrap_or(4);
    let queue_id = req.ext_i32_any(&field(req, "queueId", "e"))?;
    let sys_flag = req
        .ext_opt::<i32>(&field(req, "sysFlag", "f"))?
        .unwrap_or(0);
    let born_timestamp = req
        .ext_opt::<i64>(&field(req, "bornTimestamp", "g"))?
        .unwrap_or(0);
    let flag = req.ext_opt::<i32>(&field(req, "flag", "h"))?.unwrap_or(0);
    let properties = req
        .ext_opt::<String>(&field(req, "properties", "i"))?
        .unwrap_or_default();
    let reconsume_times = req
        .ext_opt::<i32>(&field(req, "reconsumeTimes", "j"))?
        .unwrap_or(0);
    let batch = req
        .ext_opt::<bool>(&field(req, "batch", "m"))?
        .unwrap_or(req.code == rq::SEND_BATCH_MESSAGE);

    if let Err(why) = validate_topic_name(topic) {
        return Ok(reject(req, rs::INVALID_PARAMETER, why));
    }
    if batch && topic.starts_with("%RETRY%") {
        return Ok(reject(
            req,
            rs::MESSAGE_ILLEGAL,
            "batch request does not support retry group",
        ));
    }
    let info = match b
        .topics
        .get_or_create_for_send(topic, &default_topic, default_queues)
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
        m.sys_flag = sys_flag;
        m.born_timestamp = born_timestamp;
        m.born_host = conn.peer;
        m.reconsume_times = reconsume_times;
        m
    };
    let max = b.cfg.max_message_size;
    let (messages, uniq_key, wait) = if batch {
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
        let mut msgs = Vec::with_capacity(items.len());
        for item in items {
            let props = match stored_properties(&item.properties, cluster, false) {
                Ok(p) => p,
                Err(why) => return Ok(reject(req, rs::MESSAGE_ILLEGAL, why)),
            };
            msgs.push(build(item.body, props, item.flag));
        }
        (
            msgs,
            None,
            record::find_property(properties.as_bytes(), keys::WAIT) != Some("false"),
        )
    } else {
        let props = match stored_properties(properties.as_bytes(), cluster, true) {
            Ok(p) => p,
            Err(why) => return Ok(reject(req, rs::MESSAGE_ILLEGAL, why)),
        };
        let uniq = record::find_property(&props, keys::UNIQ_KEY).map(str::to_owned);
        let wait = record::find_property(&props, keys::WAIT) != Some("false");
        (vec![build(req.body.clone(), props, flag)], uniq, wait)
    };
    if let Some(err) = messages.iter().find_map(|m| m.validate(max).err()) {
        return Ok(reject(req, rs::MESSAGE_ILLEGAL, err.to_string()));
    }
    let mut response = RemotingCommand::response_to(req, rs::SUCCESS, None);
    response.set_ext("MSG_REGION", &b.cfg.region_id);
    response.set_ext("TRACE_ON", b.cfg.trace_on);
    let ctx = SendCtx {
        response,
        queue_id,
        count: messages.len(),
        uniq_key,
        oneway: req.is_oneway(),
    };
    Ok(Prepared::Ready(ctx, messages, wait))
}

/// The properties string as stored: the client's string with a 0x02 after its last entry
/// (recovery relies on it), `UNIQ_KEY` added to a single message that lacks one, and the
/// broker's `CLUSTER`. NUL bytes are refused.
fn stored_properties(client: &[u8], cluster: &str, add_uniq: bool) -> Result<Bytes, String> {
    if client.contains(&0) {
        return Err("message properties contain a NUL byte".into());
    }
    let mut out = BytesMut::with_capacity(client.len() + cluster.len() + 48);
    out.put_slice(client);
    if !client.is_empty() && client.last() != Some(&0x02) {
        out.put_u8(0x02);
    }
    if add_uniq && record::find_property(client, keys::UNIQ_KEY).is_none() {
        put_property(&mut out, keys::UNIQ_KEY, &generate_uniq_key());
    }
    if record::find_property(client, "CLUSTER").is_none() {
        put_property(&mut out, "CLUSTER", cluster);
    }
    if out.len() > record::PROPERTIES_MAX_LEN {
        return Err(format!(
            "properties of {} bytes exceed {}",
            out.len(),
            record::PROPERTIES_MAX_LEN
        ));
    }
    Ok(out.freeze())
}

fn put_property(out: &mut BytesMut, name: &str, value: &str) {
    out.put_slice(name.as_bytes());
    out.put_u8(0x01);
    out.put_slice(value.as_bytes());
    out.put_u8(0x02);
}

/// A unique message id for messages sent without one: pid, start time and a counter, as
/// upper-case hex (clients only need uniqueness).
fn generate_uniq_key() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    static START: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    let start = *START.get_or_init(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0)
    });
    format!(
        "{:08X}{:012X}{:08X}",
        std::process::id(),
        start & 0xFFFF_FFFF_FFFF,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// Turns the writer's answer for one turn into one response per request.
pub fn responses(
    b: &Broker,
    ctxs: Vec<SendCtx>,
    outcome: AppendOutcome,
    replica: ReplicaOutcome,
) -> Vec<RemotingCommand> {
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
    let mut at = 0;
    let mut out = Vec::with_capacity(ctxs.len());
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
        let mut resp = ctx.response;
        resp.code = code;
        resp.remark = remark.clone();
        if let Some(first) = mine.first() {
            let ids: Vec<String> = mine
                .iter()
                .map(|a| offset_msg_id(&store_host, a.phys_offset))
                .collect();
            resp.set_ext("msgId", ids.join(","));
            resp.set_ext("queueId", ctx.queue_id);
            resp.set_ext("queueOffset", first.queue_offset);
            if let Some(uniq) = &ctx.uniq_key {
                resp.set_ext("transactionId", uniq);
            }
        }
        out.push(resp);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_properties_are_terminated_and_tagged() {
        let p = stored_properties(b"TAGS\x01a\x02KEYS\x01k", "C1", true).unwrap();
        assert!(record::properties_well_formed(&p));
        assert_eq!(record::find_property(&p, "KEYS"), Some("k"));
        assert_eq!(record::find_property(&p, "CLUSTER"), Some("C1"));
        assert!(record::find_property(&p, keys::UNIQ_KEY).is_some());
        let kept = stored_properties(b"UNIQ_KEY\x01ABC\x02", "C1", true).unwrap();
        assert_eq!(record::find_property(&kept, keys::UNIQ_KEY), Some("ABC"));
        assert!(stored_properties(b"A\x01\x00\x02", "C1", true).is_err());
        assert_eq!(
            &stored_properties(b"", "C", false).unwrap()[..],
            b"CLUSTER\x01C\x02"
        );
    }
}
