//! The push consumer's connections and the requests it sends on them: one connection to
//! the name server for routes, one per broker address for pulls, offsets, heartbeats,
//! member lists, queue locks and send-backs. A broker connection is opened on first use,
//! announces this member with a HEART_BEAT before anything else (the broker keys members
//! by connection), and routes the broker's NOTIFY_CONSUMER_IDS_CHANGED to the rebalance.
//! A closed connection is replaced on next use.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::json;

use super::options::PushConsumerOptions;
use crate::connection::{
    expect_success, new_request, ClientError, ConnectOptions, Connection, RequestHandler, Result,
};
use crate::consumer::{PullConsumer, PullOptions, ReceivedMessage};
use crate::route::{fetch_route, MessageQueue, TopicRoute};
use crate::sync::lock;
use ringmq_remoting::codes::request_code as rq;
use ringmq_remoting::command::RemotingCommand;

pub struct Links {
    opts: Arc<PushConsumerOptions>,
    name_server: Mutex<Option<Connection>>,
    /// Broker address → its connection (wrapped for pulls and offset requests).
    brokers: Mutex<HashMap<String, Arc<PullConsumer>>>,
    /// Topic → last route seen.
    routes: Mutex<HashMap<String, TopicRoute>>,
    /// The HEART_BEAT body; fixed once the consumer starts.
    heartbeat: Vec<u8>,
    on_notify: RequestHandler,
    /// Set by `unregister_and_close`: no connection is opened after it.
    closed: AtomicBool,
}

impl Links {
    pub fn new(
        opts: Arc<PushConsumerOptions>,
        heartbeat: Vec<u8>,
        on_notify: RequestHandler,
    ) -> Self {
        Self {
            opts,
            name_server: Mutex::new(None),
            brokers: Mutex::new(HashMap::new()),
            routes: Mutex::new(HashMap::new()),
            heartbeat,
            on_notify,
            closed: AtomicBool::new(false),
        }
    }

    fn connect_options(&self, handler: Option<RequestHandler>) -> ConnectOptions {
        ConnectOptions {
            default_timeout: self.opts.request_timeout,
            handler,
            ..ConnectOptions::default()
        }
    }

    /// Looks the topic's route up and remembers it.
    pub fn refresh_route(&self, topic: &str) -> Result<TopicRoute> {
        let conn = {
            let mut ns = lock(&self.name_server);
            match ns.as_ref().filter(|c| !c.is_closed()) {
                Some(c) => c.clone(),
                None => {
                    let c = crate::cluster::connect_any(
                        &self.opts.name_server,
                        self.connect_options(None),
                    )?;
                    *ns = Some(c.clone());
                    c
                }
            }
        };
        let route = fetch_route(&conn, topic)?;
        lock(&self.routes).insert(topic.to_owned(), route.clone());
        Ok(route)
    }

    /// Every broker address the known routes name.
    pub fn broker_addrs(&self) -> Vec<String> {
        let mut addrs: Vec<String> = lock(&self.routes)
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .flat_map(|b| b.broker_addrs.values().cloned())
            .collect();
        addrs.sort();
        addrs.dedup();
        addrs
    }

    /// The address to pull `broker_name`'s queues from: its master, else its lowest id.
    pub fn addr_of(&self, broker_name: &str) -> Option<String> {
        let routes = lock(&self.routes);
        let b = routes
            .values()
            .flat_map(|r| r.broker_datas.iter())
            .find(|b| b.broker_name == broker_name)?;
        b.broker_addrs.values().next().cloned()
    }

    /// The connection to `addr`, opened (and announced with a heartbeat) if needed.
    pub fn broker(&self, addr: &str) -> Result<Arc<PullConsumer>> {
        if let Some(c) = lock(&self.brokers)
            .get(addr)
            .filter(|c| !c.connection().is_closed())
        {
            return Ok(c.clone());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(ClientError::Protocol("consumer is shut down".into()));
        }
        let conn =
            Connection::connect_with(addr, self.connect_options(Some(self.on_notify.clone())))?;
        let pull_opts = PullOptions {
            serialize_type: self.opts.serialize_type,
            timeout: self.opts.request_timeout,
            ..PullOptions::default()
        };
        let consumer = Arc::new(PullConsumer::with_connection(
            conn,
            &self.opts.group,
            pull_opts,
        ));
        self.send_heartbeat(consumer.connection())?;
        let mut brokers = lock(&self.brokers);
        // Another thread may have connected meanwhile; keep one.
        let kept = brokers
            .entry(addr.to_owned())
            .and_modify(|c| {
                if c.connection().is_closed() {
                    *c = consumer.clone();
                }
            })
            .or_insert_with(|| consumer.clone())
            .clone();
        if !Arc::ptr_eq(&kept, &consumer) {
            consumer.connection().close();
        }
        Ok(kept)
    }

    /// The connection serving `mq`'s broker.
    pub fn broker_of(&self, mq: &MessageQueue) -> Result<Arc<PullConsumer>> {
        let addr = self.addr_of(&mq.broker_name).ok_or_else(|| {
            ClientError::Protocol(format!("no address known for broker {}", mq.broker_name))
        })?;
        self.broker(&addr)
    }

    fn request(&self, code: i32) -> RemotingCommand {
        new_request(code, self.opts.serialize_type)
    }

    fn send_heartbeat(&self, conn: &Connection) -> Result<()> {
        let cmd = self
            .request(rq::HEART_BEAT)
            .with_body(self.heartbeat.clone());
        expect_success(conn.request(cmd, self.opts.request_timeout)?)?;
        Ok(())
    }

    /// HEART_BEAT to every broker of every known route (RocketMQ: every 30 s).
    pub fn heartbeat_all(&self) {
        for addr in self.broker_addrs() {
            let open = lock(&self.brokers).get(&addr).cloned();
            let result = match open {
                Some(c) if !c.connection().is_closed() => self.send_heartbeat(c.connection()),
                // broker() announces a new connection itself.
                _ => self.broker(&addr).map(|_| ()),
            };
            if let Err(e) = result {
                tracing::warn!(broker = %addr, error = %e, "heartbeat failed");
            }
        }
    }

    /// GET_CONSUMER_LIST_BY_GROUP on one broker of `route`.
    pub fn consumer_ids(&self, route: &TopicRoute) -> Result<Vec<String>> {
        let addr = route
            .broker_datas
            .iter()
            .find_map(|b| b.broker_addrs.values().next().cloned())
            .ok_or_else(|| {
                ClientError::Protocol(format!("route of {} has no broker", route.topic))
            })?;
        let conn = self.broker(&addr)?;
        let cmd = self
            .request(rq::GET_CONSUMER_LIST_BY_GROUP)
            .with_ext("consumerGroup", &self.opts.group);
        let resp = expect_success(conn.connection().request(cmd, self.opts.request_timeout)?)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            consumer_id_list: Vec<String>,
        }
        let body: Body = serde_json::from_slice(&resp.body)
            .map_err(|e| ClientError::Protocol(format!("consumer list body: {e}")))?;
        Ok(body.consumer_id_list)
    }

    /// LOCK_BATCH_MQ on `mqs` (all of one broker): the queues now held by us.
    pub fn lock_queues(
        &self,
        broker_name: &str,
        mqs: &[MessageQueue],
    ) -> Result<Vec<MessageQueue>> {
        let conn = self.broker(&self.addr_for(broker_name)?)?;
        let cmd = self
            .request(rq::LOCK_BATCH_MQ)
            .with_body(self.lock_body(mqs).to_string());
        let resp = expect_success(conn.connection().request(cmd, self.opts.request_timeout)?)?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Body {
            #[serde(default, rename = "lockOKMQSet")]
            lock_ok_mq_set: Vec<WireQueue>,
        }
        let body: Body = serde_json::from_slice(&resp.body)
            .map_err(|e| ClientError::Protocol(format!("lock response body: {e}")))?;
        Ok(body
            .lock_ok_mq_set
            .into_iter()
            .map(|q| MessageQueue::new(q.topic, q.broker_name, q.queue_id))
            .collect())
    }

    /// UNLOCK_BATCH_MQ on `mqs` (all of one broker).
    pub fn unlock_queues(&self, broker_name: &str, mqs: &[MessageQueue]) -> Result<()> {
        let conn = self.broker(&self.addr_for(broker_name)?)?;
        let cmd = self
            .request(rq::UNLOCK_BATCH_MQ)
            .with_body(self.lock_body(mqs).to_string());
        expect_success(conn.connection().request(cmd, self.opts.request_timeout)?)?;
        Ok(())
    }

    fn addr_for(&self, broker_name: &str) -> Result<String> {
        self.addr_of(broker_name).ok_or_else(|| {
            ClientError::Protocol(format!("no address known for broker {broker_name}"))
        })
    }

    fn lock_body(&self, mqs: &[MessageQueue]) -> serde_json::Value {
        let set: Vec<_> = mqs
            .iter()
            .map(|q| json!({"topic": q.topic, "brokerName": q.broker_name, "queueId": q.queue_id}))
            .collect();
        json!({
            "consumerGroup": self.opts.group,
            "clientId": self.opts.client_id,
            "onlyThisBroker": false,
            "mqSet": set,
        })
    }

    /// CONSUMER_SEND_MSG_BACK: hands a message the listener failed on back to the broker,
    /// which puts it in the group's retry topic (or its DLQ past `max_reconsume_times`).
    pub fn send_back(
        &self,
        broker_name: &str,
        msg: &ReceivedMessage,
        delay_level: i32,
        max_reconsume_times: i32,
    ) -> Result<()> {
        let conn = self.broker(&self.addr_for(broker_name)?)?;
        let origin_topic = msg.property("RETRY_TOPIC").unwrap_or(&msg.topic);
        let cmd = self
            .request(rq::CONSUMER_SEND_MSG_BACK)
            .with_ext("offset", msg.phys_offset)
            .with_ext("group", &self.opts.group)
            .with_ext("delayLevel", delay_level)
            .with_ext("originMsgId", &msg.msg_id)
            .with_ext("originTopic", origin_topic)
            .with_ext("unitMode", false)
            .with_ext("maxReconsumeTimes", max_reconsume_times);
        expect_success(conn.connection().request(cmd, self.opts.request_timeout)?)?;
        Ok(())
    }

    /// UNREGISTER_CLIENT on every open broker connection, then closes them all.
    pub fn unregister_and_close(&self) {
        self.closed.store(true, Ordering::Release);
        let brokers: Vec<_> = lock(&self.brokers).drain().collect();
        for (addr, c) in brokers {
            let cmd = self
                .request(rq::UNREGISTER_CLIENT)
                .with_ext("clientID", &self.opts.client_id)
                .with_ext("consumerGroup", &self.opts.group);
            if let Err(e) = c
                .connection()
                .request(cmd, self.opts.request_timeout)
                .and_then(expect_success)
            {
                tracing::warn!(broker = %addr, error = %e, "unregister failed");
            }
            c.connection().close();
        }
        if let Some(ns) = lock(&self.name_server).take() {
            ns.close();
        }
    }
}

/// A MessageQueue as lock bodies carry it.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct WireQueue {
    topic: String,
    broker_name: String,
    queue_id: i32,
}
