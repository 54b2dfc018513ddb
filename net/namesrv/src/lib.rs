//! ringmq-namesrv: a name server speaking Apache RocketMQ's protocol. Broker groups
//! register with it; clients ask it for topic routes across all groups.
//!
//! | module | owns | runs on |
//! | --- | --- | --- |
//! | [`config`] | `namesrv.conf` keys and defaults | caller |
//! | [`routes`] | `RouteTable`: groups, live brokers, topic queue data (RouteInfoManager) | loop + scan thread |
//! | [`kv`] | `KvConfig`: the namespaced KV table, persisted to `kvConfig.json` | network loop |
//! | [`wire`] | JSON bodies: RegisterBrokerBody in; TopicRouteData, ClusterInfo, ... out | any |
//! | [`processor`] | one typed handler per request code | network loop |
//! | [`server`] | `NameServer` as a remoting `Service`; `Namesrv`: loop + scan thread | caller |
//!
//! It keeps no state a restart needs except the KV config: brokers re-register within
//! their registration period. Protocol facts, with sources: `README.md`.

pub mod config;
pub mod kv;
pub mod processor;
pub mod routes;
pub mod server;
pub mod wire;

pub use config::{ConfigError, NamesrvConfig};
pub use server::{NameServer, Namesrv};
