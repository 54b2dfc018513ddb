//! Topic routes: GET_ROUTEINFO_BY_TOPIC (105, spec §3.15) and the
//! TopicRouteData JSON body (§6.3), plus [`MessageQueue`].
//!
//! Java name servers answer old clients in fastjson's default dialect, where
//! the Long keys of `brokerAddrs` are unquoted (`{0:"10.0.0.1:10911"}`,
//! §6.1); [`TopicRoute::parse`] accepts that as well as standard JSON.
//!
//! Producers use [`TopicRoute::write_queues`]: writable queue data (perm
//! WRITE) of brokers that have a master (id 0). Consumers use
//! [`TopicRoute::read_queues`]: readable queue data (perm READ).

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;

use super::connection::{expect_success, new_request, ClientError, Connection, Result};
use ringmq_remoting::codes::{request_code, SerializeType};

/// PermName bits (§3.12).
pub mod perm {
    pub const PRIORITY: i32 = 8;
    pub const READ: i32 = 4;
    pub const WRITE: i32 = 2;
    pub const INHERIT: i32 = 1;
}

/// Broker id of a master in `brokerAddrs`.
pub const MASTER_ID: i64 = 0;

/// One queue of a topic on one broker (sorts by topic, broker, queue id).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageQueue {
    pub topic: String,
    pub broker_name: String,
    pub queue_id: i32,
}

impl MessageQueue {
    pub fn new(topic: impl Into<String>, broker_name: impl Into<String>, queue_id: i32) -> Self {
        Self {
            topic: topic.into(),
            broker_name: broker_name.into(),
            queue_id,
        }
    }
}

impl fmt::Display for MessageQueue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}:{}", self.topic, self.broker_name, self.queue_id)
    }
}

/// QueueData (§6.3).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct QueueData {
    pub broker_name: String,
    pub read_queue_nums: i32,
    pub write_queue_nums: i32,
    pub perm: i32,
    #[serde(default)]
    pub topic_sys_flag: i32,
}

/// BrokerData (§6.3): `broker_addrs` maps broker id (0 = master) to `ip:port`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BrokerData {
    #[serde(default)]
    pub cluster: String,
    pub broker_name: String,
    #[serde(default)]
    pub broker_addrs: BTreeMap<i64, String>,
    #[serde(default)]
    pub zone_name: Option<String>,
    #[serde(default)]
    pub enable_acting_master: bool,
}

impl BrokerData {
    /// Address of the master (id 0), if registered.
    pub fn master_addr(&self) -> Option<&str> {
        self.broker_addrs.get(&MASTER_ID).map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RouteJson {
    #[serde(default)]
    order_topic_conf: Option<String>,
    #[serde(default)]
    queue_datas: Vec<QueueData>,
    #[serde(default)]
    broker_datas: Vec<BrokerData>,
}

/// Which queues of a route to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    /// Producer view: writable queues of brokers with a master.
    Write,
    /// Consumer view: readable queues.
    Read,
}

/// Route of one topic (TopicRouteData).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    pub topic: String,
    pub order_topic_conf: Option<String>,
    pub queue_datas: Vec<QueueData>,
    pub broker_datas: Vec<BrokerData>,
}

impl TopicRoute {
    /// Parse a TopicRouteData body, standard JSON or with unquoted numeric keys.
    pub fn parse(topic: &str, body: &[u8]) -> Result<TopicRoute> {
        let parsed: RouteJson = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(first) => {
                let text = std::str::from_utf8(body).map_err(|e| {
                    ClientError::Protocol(format!("route data for {topic} is not UTF-8: {e}"))
                })?;
                serde_json::from_str(&quote_numeric_keys(text)).map_err(|_| {
                    ClientError::Protocol(format!("invalid route data for {topic}: {first}"))
                })?
            }
        };
        Ok(TopicRoute {
            topic: topic.to_owned(),
            order_topic_conf: parsed.order_topic_conf,
            queue_datas: parsed.queue_datas,
            broker_datas: parsed.broker_datas,
        })
    }

    pub fn broker(&self, broker_name: &str) -> Option<&BrokerData> {
        self.broker_datas
            .iter()
            .find(|b| b.broker_name == broker_name)
    }

    /// Sorted queues of the given kind.
    pub fn message_queues(&self, kind: QueueKind) -> Vec<MessageQueue> {
        let mut out = Vec::new();
        for qd in &self.queue_datas {
            let n = match kind {
                QueueKind::Write => {
                    let has_master = self
                        .broker(&qd.broker_name)
                        .is_some_and(|b| b.master_addr().is_some());
                    if qd.perm & perm::WRITE == 0 || !has_master {
                        continue;
                    }
                    qd.write_queue_nums
                }
                QueueKind::Read => {
                    if qd.perm & perm::READ == 0 {
                        continue;
                    }
                    qd.read_queue_nums
                }
            };
            out.extend((0..n.max(0)).map(|q| MessageQueue::new(&self.topic, &qd.broker_name, q)));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Queues a producer sends to.
    pub fn write_queues(&self) -> Vec<MessageQueue> {
        self.message_queues(QueueKind::Write)
    }

    /// Queues a consumer pulls from.
    pub fn read_queues(&self) -> Vec<MessageQueue> {
        self.message_queues(QueueKind::Read)
    }
}

/// Fetch a topic's route (a TOPIC_NOT_EXIST answer is a `Broker` error).
pub fn fetch_route(conn: &Connection, topic: &str) -> Result<TopicRoute> {
    let cmd = new_request(request_code::GET_ROUTEINFO_BY_TOPIC, SerializeType::Json)
        .with_ext("topic", topic);
    let resp = expect_success(conn.request(cmd, conn.default_timeout())?)?;
    TopicRoute::parse(topic, &resp.body)
}

/// Quote bare numeric object keys (`{0:"a"}` → `{"0":"a"}`), leaving
/// strings and array elements alone.
fn quote_numeric_keys(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = String::with_capacity(src.len() + 16);
    // true = object, false = array
    let mut stack: Vec<bool> = Vec::new();
    let mut expect_key = false;
    let mut i = 0;
    let mut last = 0;
    while i < b.len() {
        match b[i] {
            b'"' => {
                expect_key = false;
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
                continue;
            }
            b'{' => {
                stack.push(true);
                expect_key = true;
            }
            b'[' => {
                stack.push(false);
                expect_key = false;
            }
            b'}' | b']' => {
                stack.pop();
                expect_key = false;
            }
            b',' => expect_key = stack.last() == Some(&true),
            c if c.is_ascii_whitespace() => {}
            c if expect_key && (c.is_ascii_digit() || c == b'-') => {
                let start = i;
                while i < b.len() && (b[i].is_ascii_alphanumeric() || b"-+.".contains(&b[i])) {
                    i += 1;
                }
                out.push_str(&src[last..start]);
                out.push('"');
                out.push_str(&src[start..i]);
                out.push('"');
                last = i;
                expect_key = false;
                continue;
            }
            _ => expect_key = false,
        }
        i += 1;
    }
    out.push_str(&src[last.min(src.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_server::FakeServer;
    use ringmq_remoting::codes::response_code;
    use ringmq_remoting::command::RemotingCommand;

    const STANDARD: &str = r#"{"brokerDatas":[{"brokerAddrs":{"0":"10.0.0.1:10911","1":"10.0.0.2:10911"},"brokerName":"broker-b",
      "cluster":"DefaultCluster","enableActingMaster":false},
      {"brokerAddrs":{"1":"10.0.0.4:10911"},"brokerName":"broker-c","cluster":"DefaultCluster","enableActingMaster":false},
      {"brokerAddrs":{"0":"10.0.0.3:10911"},"brokerName":"broker-a","cluster":"DefaultCluster","enableActingMaster":false}],
      "filterServerTable":{},
      "queueDatas":[{"brokerName":"broker-b","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":3},
                    {"brokerName":"broker-c","perm":6,"readQueueNums":1,"topicSysFlag":0,"writeQueueNums":1},
                    {"brokerName":"broker-a","perm":4,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}]}"#;

    const FASTJSON: &str = r#"{"brokerDatas":[{"brokerAddrs":{0:"10.0.0.1:10911",1:"10.0.0.2:10911"},"brokerName":"broker-b","cluster":"DefaultCluster","enableActingMaster":false},{"brokerAddrs":{1:"10.0.0.4:10911"},"brokerName":"broker-c","cluster":"DefaultCluster","enableActingMaster":false},{"brokerAddrs":{ 0 :"10.0.0.3:10911"},"brokerName":"broker-a","cluster":"Default{0:x}Cluster","enableActingMaster":false}],"filterServerTable":{},"queueDatas":[{"brokerName":"broker-b","perm":6,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":3},{"brokerName":"broker-c","perm":6,"readQueueNums":1,"topicSysFlag":0,"writeQueueNums":1},{"brokerName":"broker-a","perm":4,"readQueueNums":2,"topicSysFlag":0,"writeQueueNums":2}]}"#;

    fn check(route: &TopicRoute) {
        let b = route.broker("broker-b").unwrap();
        assert_eq!(b.master_addr(), Some("10.0.0.1:10911"));
        assert_eq!(
            b.broker_addrs.get(&1).map(String::as_str),
            Some("10.0.0.2:10911")
        );
        assert_eq!(route.broker("broker-c").unwrap().master_addr(), None);
        // broker-a is read-only, broker-c has no master.
        let w: Vec<(String, i32)> = route
            .write_queues()
            .into_iter()
            .map(|q| (q.broker_name, q.queue_id))
            .collect();
        assert_eq!(
            w,
            [
                ("broker-b".into(), 0),
                ("broker-b".into(), 1),
                ("broker-b".into(), 2)
            ]
        );
        let r: Vec<String> = route.read_queues().iter().map(|q| q.to_string()).collect();
        assert_eq!(
            r,
            [
                "T@broker-a:0",
                "T@broker-a:1",
                "T@broker-b:0",
                "T@broker-b:1",
                "T@broker-c:0"
            ]
        );
    }

    #[test]
    fn parses_quoted_and_unquoted_keys() {
        let a = TopicRoute::parse("T", STANDARD.as_bytes()).unwrap();
        check(&a);
        let b = TopicRoute::parse("T", FASTJSON.as_bytes()).unwrap();
        check(&b);
        // A brace inside a string value is not touched.
        assert_eq!(b.broker("broker-a").unwrap().cluster, "Default{0:x}Cluster");
        assert!(TopicRoute::parse("T", b"{\"queueDatas\":[1,").is_err());
        assert_eq!(
            quote_numeric_keys(r#"{1:[1,2,{-3:4}],"a":{"5":6}}"#),
            r#"{"1":[1,2,{"-3":4}],"a":{"5":6}}"#
        );
    }

    #[test]
    fn fetch_route_over_the_wire() {
        let server = FakeServer::start(|req, out| {
            assert_eq!(req.code, request_code::GET_ROUTEINFO_BY_TOPIC);
            let resp = if req.ext("topic") == Some("T") {
                RemotingCommand::response_to(&req, 0, None).with_body(FASTJSON.as_bytes().to_vec())
            } else {
                RemotingCommand::response_to(
                    &req,
                    response_code::TOPIC_NOT_EXIST,
                    Some("No topic route info in name server for the topic: X".into()),
                )
            };
            out.send(resp);
        });
        let conn = Connection::connect(server.addr()).unwrap();
        check(&fetch_route(&conn, "T").unwrap());
        match fetch_route(&conn, "X") {
            Err(ClientError::Broker { code, remark }) => {
                assert_eq!(code, response_code::TOPIC_NOT_EXIST);
                assert!(remark.contains("No topic route"));
            }
            other => panic!("{other:?}"),
        }
    }
}
