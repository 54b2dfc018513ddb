//! What a request needs, after RocketMQ's `PlainAccessValidator.parse` and `Permission`:
//! sends PUB on their topic (SUB on the group for a send to `%RETRY%<group>`), pulls SUB
//! on topic and group, offset and lock requests SUB on group and topic, a heartbeat SUB on
//! each consumer group and subscribed topic, send-back SUB on the group; topic, group,
//! broker-config, offset-reset and ACL administration an admin account. Any other request
//! needs a valid signature only.

use ringmq_engine::record::RETRY_TOPIC_PREFIX;
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;
use serde_json::Value;

use super::perm::{PUB, SUB};

/// Request codes only an admin account may use (RocketMQ's `Permission.ADMIN_CODE` and
/// the other administration codes ringmq or its tools may serve).
pub const ADMIN_CODES: &[i32] = &[
    rq::UPDATE_AND_CREATE_TOPIC,
    rq::UPDATE_BROKER_CONFIG,
    50, // UPDATE_AND_CREATE_ACL_CONFIG
    51, // DELETE_ACL_CONFIG
    53, // UPDATE_GLOBAL_WHITE_ADDRS_CONFIG
    rq::UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
    rq::DELETE_SUBSCRIPTIONGROUP,
    rq::DELETE_TOPIC_IN_BROKER,
    rq::INVOKE_BROKER_TO_RESET_OFFSET,
];

/// A topic or a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resource {
    Topic(String),
    Group(String),
}

/// What one request needs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub admin: bool,
    pub resources: Vec<(Resource, u8)>,
}

impl Needs {
    fn add(&mut self, r: Resource, perm: u8) {
        self.resources.push((r, perm));
    }

    fn topic(&mut self, req: &RemotingCommand, keys: &[&str], perm: u8) {
        if let Some(t) = req.ext_any(keys) {
            match t.strip_prefix(RETRY_TOPIC_PREFIX) {
                // A retry topic is its group's resource (RocketMQ's isRetryTopic).
                Some(g) => self.add(Resource::Group(g.to_string()), SUB),
                None => self.add(Resource::Topic(t.to_string()), perm),
            }
        }
    }

    fn group(&mut self, req: &RemotingCommand, keys: &[&str]) {
        if let Some(g) = req.ext_any(keys).filter(|g| !g.is_empty()) {
            self.add(Resource::Group(g.to_string()), SUB);
        }
    }
}

/// What `req` needs. `Err` when its body cannot be read well enough to tell.
pub fn of(req: &RemotingCommand) -> Result<Needs, String> {
    let mut n = Needs {
        admin: ADMIN_CODES.contains(&req.code),
        ..Needs::default()
    };
    match req.code {
        rq::SEND_MESSAGE | rq::SEND_MESSAGE_V2 | rq::SEND_BATCH_MESSAGE => {
            n.topic(req, &["b", "topic"], PUB)
        }
        rq::PULL_MESSAGE | rq::LITE_PULL_MESSAGE => {
            n.topic(req, &["topic"], SUB);
            n.group(req, &["consumerGroup"]);
        }
        rq::QUERY_MESSAGE => n.topic(req, &["topic"], SUB),
        rq::QUERY_CONSUMER_OFFSET | rq::UPDATE_CONSUMER_OFFSET => {
            n.group(req, &["consumerGroup"]);
            n.topic(req, &["topic"], SUB);
        }
        rq::CONSUMER_SEND_MSG_BACK => n.group(req, &["group"]),
        rq::UNREGISTER_CLIENT | rq::GET_CONSUMER_LIST_BY_GROUP => n.group(req, &["consumerGroup"]),
        rq::HEART_BEAT => heartbeat(&mut n, &req.body)?,
        rq::LOCK_BATCH_MQ | rq::UNLOCK_BATCH_MQ => lock_batch(&mut n, &req.body)?,
        _ => {}
    }
    Ok(n)
}

fn json(body: &[u8], what: &str) -> Result<Value, String> {
    if body.is_empty() {
        return Ok(Value::Null);
    }
    ringmq_engine::meta::json::from_slice(body)
        .map_err(|e| format!("cannot read the {what} body: {e}"))
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

fn array<'a>(v: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    v.get(key).and_then(Value::as_array).into_iter().flatten()
}

/// SUB on every consumer group and every topic it subscribes.
fn heartbeat(n: &mut Needs, body: &[u8]) -> Result<(), String> {
    let v = json(body, "HeartbeatData")?;
    for c in array(&v, "consumerDataSet") {
        if let Some(g) = str_of(c, "groupName") {
            n.add(Resource::Group(g.to_string()), SUB);
        }
        for s in array(c, "subscriptionDataSet") {
            if let Some(t) = str_of(s, "topic") {
                match t.strip_prefix(RETRY_TOPIC_PREFIX) {
                    Some(g) => n.add(Resource::Group(g.to_string()), SUB),
                    None => n.add(Resource::Topic(t.to_string()), SUB),
                }
            }
        }
    }
    Ok(())
}

/// SUB on the group and on every topic of the queues.
fn lock_batch(n: &mut Needs, body: &[u8]) -> Result<(), String> {
    let v = json(body, "LockBatchRequestBody")?;
    if let Some(g) = str_of(&v, "consumerGroup") {
        n.add(Resource::Group(g.to_string()), SUB);
    }
    for mq in array(&v, "mqSet") {
        if let Some(t) = str_of(mq, "topic") {
            let r = match t.strip_prefix(RETRY_TOPIC_PREFIX) {
                Some(g) => Resource::Group(g.to_string()),
                None => Resource::Topic(t.to_string()),
            };
            if !n.resources.iter().any(|(x, _)| *x == r) {
                n.add(r, SUB);
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_pulls_and_admin() {
        let send = RemotingCommand::request(rq::SEND_MESSAGE_V2).with_ext("b", "T");
        assert_eq!(
            of(&send).unwrap().resources,
            vec![(Resource::Topic("T".into()), PUB)]
        );
        let retry = RemotingCommand::request(rq::SEND_MESSAGE).with_ext("topic", "%RETRY%G");
        assert_eq!(
            of(&retry).unwrap().resources,
            vec![(Resource::Group("G".into()), SUB)]
        );
        let pull = RemotingCommand::request(rq::PULL_MESSAGE)
            .with_ext("topic", "T")
            .with_ext("consumerGroup", "G");
        assert_eq!(
            of(&pull).unwrap().resources,
            vec![
                (Resource::Topic("T".into()), SUB),
                (Resource::Group("G".into()), SUB)
            ]
        );
        assert!(
            of(&RemotingCommand::request(rq::UPDATE_AND_CREATE_TOPIC))
                .unwrap()
                .admin
        );
        assert!(
            !of(&RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC))
                .unwrap()
                .admin
        );
    }

    #[test]
    fn bodies() {
        let mut hb = RemotingCommand::request(rq::HEART_BEAT);
        hb.body = br#"{"clientID":"c","consumerDataSet":[{"groupName":"G","subscriptionDataSet":[{"topic":"T"},{"topic":"%RETRY%G"}]}]}"#.to_vec().into();
        assert_eq!(of(&hb).unwrap().resources.len(), 3);
        let mut lock = RemotingCommand::request(rq::LOCK_BATCH_MQ);
        lock.body = br#"{"consumerGroup":"G","clientId":"c","mqSet":[{"topic":"T","brokerName":"b","queueId":0},{"topic":"T","brokerName":"b","queueId":1}]}"#.to_vec().into();
        assert_eq!(of(&lock).unwrap().resources.len(), 2);
        lock.body = b"{nope".to_vec().into();
        assert!(of(&lock).is_err());
    }
}
