//! PULL_MESSAGE (11) and long polling.
//!
//! A pull that finds nothing at the queue's end, with the SUSPEND flag, is parked: its task
//! waits on the queue's `Notify` until the dispatcher indexes a new message for that queue
//! (`PullHold::on_dispatched`, called on the dispatch thread) or the client's suspend time
//! passes, then runs once more and answers whatever it finds. The interest is registered
//! before the re-check, so an arrival between the two is never missed.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::BytesMut;
use ringmq_engine::consumequeue::dispatch::DispatchListener;
use ringmq_engine::sync::lock;
use ringmq_engine::{GetResult, GetStatus};
use tokio::sync::Notify;

use super::{groups, Broker};
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;
use ringmq_remoting::header::{PullMessageHeader, RequestHeader};

/// Pull sysFlag bits (spec 5.1).
const FLAG_COMMIT_OFFSET: i32 = 0x1;
const FLAG_SUSPEND: i32 = 0x2;
const FLAG_SUBSCRIPTION: i32 = 0x4;

/// RocketMQ's in-memory transfer limits per pull (maxTransferCountOnMessageInMemory,
/// maxTransferBytesOnMessageInMemory).
const MAX_PULL_MSGS: usize = 32;
const MAX_PULL_BYTES: usize = 256 * 1024;

/// Parked pulls, one `Notify` per queue that has had a waiter, and how many are parked
/// (in total and per connection) so that neither exceeds its limit.
#[derive(Default)]
pub struct PullHold {
    queues: Mutex<HashMap<String, HashMap<i32, Arc<Notify>>>>,
    parked: Mutex<Parked>,
}

#[derive(Default)]
struct Parked {
    total: usize,
    per_conn: HashMap<u64, usize>,
}

/// One parked pull; its slot is given back when dropped.
struct ParkSlot<'a> {
    hold: &'a PullHold,
    conn_id: u64,
}

impl Drop for ParkSlot<'_> {
    fn drop(&mut self) {
        let mut p = lock(&self.hold.parked);
        p.total -= 1;
        if let Some(n) = p.per_conn.get_mut(&self.conn_id) {
            *n -= 1;
            if *n == 0 {
                p.per_conn.remove(&self.conn_id);
            }
        }
    }
}

impl PullHold {
    /// A slot to park one more pull of connection `conn_id`, or why there is none.
    fn park(
        &self,
        conn_id: u64,
        per_conn_max: usize,
        total_max: usize,
    ) -> Result<ParkSlot<'_>, String> {
        let mut p = lock(&self.parked);
        let mine = p.per_conn.get(&conn_id).copied().unwrap_or(0);
        if mine >= per_conn_max {
            return Err(format!(
                "too many parked pulls on this connection ({mine}, maxParkedPullsPerConnection)"
            ));
        }
        if p.total >= total_max {
            return Err(format!(
                "too many parked pulls on this broker ({}, maxParkedPulls)",
                p.total
            ));
        }
        p.total += 1;
        *p.per_conn.entry(conn_id).or_default() += 1;
        Ok(ParkSlot {
            hold: self,
            conn_id,
        })
    }

    /// Pulls parked now, over all connections.
    pub fn parked(&self) -> usize {
        lock(&self.parked).total
    }

    fn notify_for(&self, topic: &str, queue_id: i32) -> Arc<Notify> {
        let mut map = lock(&self.queues);
        if let Some(n) = map.get(topic).and_then(|q| q.get(&queue_id)) {
            return n.clone();
        }
        map.entry(topic.to_string())
            .or_default()
            .entry(queue_id)
            .or_default()
            .clone()
    }

    /// Releases every parked pull (shutdown).
    pub fn wake_all(&self) {
        for queues in lock(&self.queues).values() {
            for n in queues.values() {
                n.notify_waiters();
            }
        }
    }
}

impl DispatchListener for PullHold {
    fn on_dispatched(&self, topic: &str, queue_id: i32, _max_offset: i64) {
        let notify = self
            .queues
            .lock()
            .expect("pull hold lock")
            .get(topic)
            .and_then(|q| q.get(&queue_id))
            .cloned();
        if let Some(n) = notify {
            n.notify_waiters();
        }
    }
}

/// A subscription expression as RocketMQ's TAG filter: `*`/empty = all, else tag hashes.
fn tag_filter(expr: &str) -> Option<Vec<i64>> {
    let expr = expr.trim();
    if expr.is_empty() || expr == "*" {
        return None;
    }
    let codes: Vec<i64> = expr
        .split("||")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(|t| ringmq_engine::record::tags_hash(t) as i64)
        .collect();
    Some(codes)
}

pub async fn process(
    b: &Arc<Broker>,
    conn_id: u64,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let h = PullMessageHeader::decode(req)?;
    let (group, topic, queue_id, offset) = (h.consumer_group, h.topic, h.queue_id, h.queue_offset);

    let Some(info) = b.topics.get(topic) else {
        return Ok(RemotingCommand::response_to(
            req,
            rs::TOPIC_NOT_EXIST,
            Some(format!("topic[{topic}] not exist, apply first please!")),
        ));
    };
    if !info.readable() {
        return Ok(RemotingCommand::response_to(
            req,
            rs::NO_PERMISSION,
            Some(format!("the topic[{topic}] pulling message is forbidden")),
        ));
    }
    if queue_id < 0 || queue_id >= info.read_queues {
        return Ok(RemotingCommand::response_to(
            req,
            rs::INVALID_PARAMETER,
            Some(format!(
                "queueId[{queue_id}] is illegal, topic:[{topic}] topicConfig.readQueueNums:[{}]",
                info.read_queues
            )),
        ));
    }
    if let Err(refused) = groups::find_or_create(b, group) {
        return Ok(RemotingCommand::response_to(
            req,
            refused.code,
            Some(refused.remark),
        ));
    }
    let filter = if h.sys_flag & FLAG_SUBSCRIPTION != 0 {
        tag_filter(h.subscription.unwrap_or_default())
    } else {
        let registered = b.clients.subscription(group, topic);
        tag_filter(registered.as_ref().map_or("", |s| s.sub_string.as_str()))
    };
    if h.sys_flag & FLAG_COMMIT_OFFSET != 0 && h.commit_offset >= 0 && b.cfg.broker_role.is_master()
    {
        b.consumer_offsets
            .commit(group, topic, queue_id, h.commit_offset);
    }
    let max_msgs = (h.max_msg_nums.max(1) as usize).min(MAX_PULL_MSGS);
    let suspend =
        h.sys_flag & FLAG_SUSPEND != 0 && h.suspend_timeout_millis > 0 && !b.is_stopping();
    let hold = if b.cfg.long_polling_enable {
        Duration::from_millis(h.suspend_timeout_millis as u64).min(b.cfg.max_pull_suspend)
    } else {
        b.cfg.short_polling_time
    };

    let lookup = || -> Result<GetResult, ringmq_engine::Error> {
        let matches = |code: i64| {
            filter
                .as_ref()
                .is_none_or(|codes| codes.contains(&(code as i32 as i64)))
        };
        b.store.get_messages(
            topic,
            queue_id,
            offset,
            max_msgs,
            MAX_PULL_BYTES,
            Some(&matches),
        )
    };
    let store_error = |e: ringmq_engine::Error| {
        tracing::error!(topic, queue_id, offset, error = %e, "pull failed");
        Ok(RemotingCommand::response_to(
            req,
            rs::SYSTEM_ERROR,
            Some(format!("store error: {e}")),
        ))
    };
    let mut result = match lookup() {
        Ok(r) => r,
        Err(e) => return store_error(e),
    };
    if suspend
        && matches!(
            result.status,
            GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue
        )
    {
        let _slot = match b.holds.park(
            conn_id,
            b.cfg.max_parked_pulls_per_connection,
            b.cfg.max_parked_pulls,
        ) {
            Ok(slot) => slot,
            Err(why) => {
                return Ok(RemotingCommand::response_to(
                    req,
                    rs::SYSTEM_BUSY,
                    Some(why),
                ))
            }
        };
        let notify = b.holds.notify_for(topic, queue_id);
        let deadline = tokio::time::Instant::now() + hold;
        loop {
            let notified = notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            result = match lookup() {
                Ok(r) => r,
                Err(e) => return store_error(e),
            };
            let still_empty = matches!(
                result.status,
                GetStatus::OffsetOverflowOne | GetStatus::NoMessageInQueue
            );
            if !still_empty
                || b.is_stopping()
                || tokio::time::timeout_at(deadline, notified).await.is_err()
            {
                if still_empty {
                    result = match lookup() {
                        Ok(r) => r,
                        Err(e) => return store_error(e),
                    };
                }
                break;
            }
        }
    }
    b.metrics.on_pulled(topic, group, queue_id, &result);
    Ok(respond(b, req, offset, result))
}

fn respond(b: &Broker, req: &RemotingCommand, offset: i64, r: GetResult) -> RemotingCommand {
    let (code, name) = match r.status {
        GetStatus::Found => (rs::SUCCESS, "FOUND"),
        GetStatus::NoMatchedMessage => (rs::PULL_RETRY_IMMEDIATELY, "NO_MATCHED_MESSAGE"),
        GetStatus::MessageWasRemoving => (rs::PULL_RETRY_IMMEDIATELY, "MESSAGE_WAS_REMOVING"),
        GetStatus::NoMatchedLogicQueue | GetStatus::NoMessageInQueue => {
            let name = if r.status == GetStatus::NoMessageInQueue {
                "NO_MESSAGE_IN_QUEUE"
            } else {
                "NO_MATCHED_LOGIC_QUEUE"
            };
            (
                if offset != 0 {
                    rs::PULL_OFFSET_MOVED
                } else {
                    rs::PULL_NOT_FOUND
                },
                name,
            )
        }
        GetStatus::OffsetOverflowOne => (rs::PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE"),
        GetStatus::OffsetFoundNull => (rs::PULL_NOT_FOUND, "OFFSET_FOUND_NULL"),
        GetStatus::OffsetOverflowBadly => (rs::PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY"),
        GetStatus::OffsetTooSmall => (rs::PULL_OFFSET_MOVED, "OFFSET_TOO_SMALL"),
    };
    let mut resp = RemotingCommand::response_to(req, code, Some(name.to_string()));
    resp.set_ext("suggestWhichBrokerId", 0);
    resp.set_ext("nextBeginOffset", r.next_begin_offset);
    resp.set_ext("minOffset", r.min_offset);
    resp.set_ext("maxOffset", r.max_offset);
    resp.set_ext("topicSysFlag", 0);
    resp.set_ext("groupSysFlag", 0);
    if code == rs::SUCCESS {
        b.stats
            .msgs_got
            .fetch_add(r.messages.len() as u64, Ordering::Relaxed);
        resp.body = concat(r.runs);
    }
    resp
}

/// The pull body: the records back to back. The store read them in runs of records
/// adjacent in the log; a body of a single run is that buffer as it is, without a copy.
fn concat(runs: Vec<bytes::Bytes>) -> bytes::Bytes {
    if runs.len() == 1 {
        return runs.into_iter().next().expect("one run");
    }
    let total: usize = runs.iter().map(|m| m.len()).sum();
    let mut out = BytesMut::with_capacity(total);
    for m in &runs {
        out.extend_from_slice(m);
    }
    out.freeze()
}
