//! ringmq-client: a blocking RocketMQ client (std threads, no async runtime), for
//! tests, tools and load generators against ringmq or any RocketMQ broker. It depends on
//! `ringmq-remoting` for the protocol and `ringmq-record` for stored-record bodies only.
//!
//! Threads: each [`Connection`] has one reader thread (responses routed by `opaque`,
//! broker requests to a handler); a push consumer adds its rebalance, pull and consume
//! threads (see [`push`]); everything else runs on the caller's thread.
//!
//! - [`acl`]: [`Credentials`]: requests signed for brokers with ACL on.
//! - [`connection`]: [`Connection`], one multiplexed TCP connection with a
//!   reader thread routing responses by `opaque`; [`ClientError`].
//! - [`route`]: GET_ROUTEINFO_BY_TOPIC, [`TopicRoute`], [`MessageQueue`].
//! - [`cluster`]: name server lists and [`cluster::ClusterProducer`], which spreads
//!   sends over every broker group of a cluster.
//! - [`producer`]: [`Producer`] (SEND_MESSAGE / _V2 / SEND_BATCH_MESSAGE,
//!   bounded async sends), [`Message`], [`SendResult`].
//! - [`consumer`]: [`PullConsumer`] (PULL_MESSAGE with long polling,
//!   consumer and queue offsets), [`ReceivedMessage`], [`PullResult`].
//! - [`fastjson`]: maps keyed by `MessageQueue` objects, as fastjson writes them.
//! - [`push`]: [`push::PushConsumer`], consumer groups with client-side rebalance,
//!   concurrent and orderly listeners, retry through `%RETRY%` topics.
//! - [`allocate`]: RocketMQ's queue allocation strategies (AVG, AVG_BY_CIRCLE,
//!   CONSISTENT_HASH, CONFIG, MACHINE_ROOM, MACHINE_ROOM_NEARBY).
//!
//! ```no_run
//! use ringmq_client::{Message, Producer, PullConsumer, MessageQueue};
//! # fn main() -> ringmq_client::Result<()> {
//! let producer = Producer::connect("127.0.0.1:10911", "PG")?;
//! let sent = producer.send("TopicA", Message::new("hello").with_tags("t"))?;
//! let consumer = PullConsumer::connect("127.0.0.1:10911", "CG")?;
//! let mq = MessageQueue::new("TopicA", "", sent.queue_id);
//! let got = consumer.pull(&mq, sent.queue_offset, 32, None)?;
//! assert_eq!(got.messages[0].msg_id, sent.msg_id);
//! # Ok(()) }
//! ```
//!
//! Wire facts: `/work/shared/spec/rocketmq-wire.md` §1–§6.

pub mod acl;
pub mod admin;
pub mod allocate;
pub mod cluster;
pub mod connection;
pub mod consumer;
pub mod fastjson;
pub mod producer;
pub mod push;
pub mod route;
mod sync;

#[cfg(test)]
mod test_server;
#[cfg(test)]
mod tests;

pub use acl::Credentials;
pub use admin::create_topic;
pub use connection::{
    expect_success, ClientError, ConnectOptions, Connection, RequestHandler, Result,
};
pub use consumer::{
    decode_messages, Filter, PullArgs, PullConsumer, PullOptions, PullResult, PullStatus,
    ReceivedMessage,
};
pub use producer::{Message, Producer, ProducerOptions, SendHeader, SendResult, SendStatus};
pub use route::{fetch_route, BrokerData, MessageQueue, QueueData, QueueKind, TopicRoute};
