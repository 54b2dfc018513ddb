//! One admin session: a connection per address (made on first use), requests that must
//! succeed, and the look-ups most commands start with (cluster info, topic routes).

use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::time::Duration;

use serde::Deserialize;

use super::Common;
use ringmq_client::{ClientError, ConnectOptions, Connection, TopicRoute};
use ringmq_engine::meta::json::quote_bare_keys;
use ringmq_remoting::codes::{request_code as rq, response_code as rs, SerializeType};
use ringmq_remoting::command::RemotingCommand;

pub struct Admin {
    namesrv: Vec<String>,
    timeout: Duration,
    conns: RefCell<HashMap<String, Rc<Connection>>>,
}

/// ClusterInfo (spec §6.4).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClusterInfo {
    pub broker_addr_table: BTreeMap<String, BrokerAddrs>,
    pub cluster_addr_table: BTreeMap<String, Vec<String>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct BrokerAddrs {
    pub cluster: String,
    pub broker_name: String,
    pub broker_addrs: BTreeMap<i64, String>,
}

impl ClusterInfo {
    /// (cluster, broker name, master address) of every master, optionally of one cluster.
    pub fn masters(&self, cluster: Option<&str>) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for (c, names) in &self.cluster_addr_table {
            if cluster.is_some_and(|want| want != c) {
                continue;
            }
            for name in names {
                if let Some(addr) = self
                    .broker_addr_table
                    .get(name)
                    .and_then(|b| b.broker_addrs.get(&0))
                {
                    out.push((c.clone(), name.clone(), addr.clone()));
                }
            }
        }
        out
    }
}

impl Admin {
    pub fn new(common: &Common) -> Admin {
        Admin {
            namesrv: common
                .namesrv
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
            timeout: common.timeout(),
            conns: RefCell::new(HashMap::new()),
        }
    }

    fn conn(&self, addr: &str) -> Result<Rc<Connection>, String> {
        if let Some(c) = self.conns.borrow().get(addr) {
            if !c.is_closed() {
                return Ok(Rc::clone(c));
            }
        }
        let opts = ConnectOptions {
            connect_timeout: self.timeout,
            default_timeout: self.timeout,
            ..Default::default()
        };
        let c = Rc::new(
            Connection::connect_with(addr, opts).map_err(|e| format!("connect to {addr}: {e}"))?,
        );
        self.conns
            .borrow_mut()
            .insert(addr.to_string(), Rc::clone(&c));
        Ok(c)
    }

    /// Sends `cmd` to `addr`; the answer whatever its code.
    pub fn call(&self, addr: &str, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let cmd = cmd.with_serialize_type(SerializeType::Json);
        self.conn(addr)?
            .request(cmd, self.timeout)
            .map_err(|e| format!("{addr}: {e}"))
    }

    /// Sends `cmd` to `addr` and fails unless the answer is SUCCESS.
    pub fn ok(&self, addr: &str, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let resp = self.call(addr, cmd)?;
        if resp.code == rs::SUCCESS {
            Ok(resp)
        } else {
            Err(format!("{addr}: {}", ClientError::from_response(&resp)))
        }
    }

    /// The name server addresses, in order.
    pub fn namesrv(&self) -> &[String] {
        &self.namesrv
    }

    /// Sends `cmd` to the first name server that answers.
    pub fn ns_call(&self, cmd: RemotingCommand) -> Result<RemotingCommand, String> {
        let mut last = "no name server address (-n)".to_string();
        for addr in &self.namesrv {
            match self.call(addr, cmd.clone()) {
                Ok(r) => return Ok(r),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    pub fn cluster_info(&self) -> Result<ClusterInfo, String> {
        let resp = self.ns_call(RemotingCommand::request(rq::GET_BROKER_CLUSTER_INFO))?;
        if resp.code != rs::SUCCESS {
            return Err(ClientError::from_response(&resp).to_string());
        }
        serde_json::from_slice(&quote_bare_keys(&resp.body))
            .map_err(|e| format!("bad cluster info: {e}"))
    }

    pub fn route(&self, topic: &str) -> Result<TopicRoute, String> {
        let resp = self.ns_call(
            RemotingCommand::request(rq::GET_ROUTEINFO_BY_TOPIC).with_ext("topic", topic),
        )?;
        if resp.code != rs::SUCCESS {
            return Err(ClientError::from_response(&resp).to_string());
        }
        TopicRoute::parse(topic, &resp.body).map_err(|e| e.to_string())
    }

    /// (broker name, address) of the brokers a command targets: `-b` if given, else the
    /// masters of cluster `-c`, else every master the name server knows.
    pub fn targets(
        &self,
        broker: Option<&str>,
        cluster: Option<&str>,
    ) -> Result<Vec<(String, String)>, String> {
        if let Some(b) = broker {
            return Ok(vec![(String::new(), b.to_string())]);
        }
        let masters = self.cluster_info()?.masters(cluster);
        if masters.is_empty() {
            return Err(match cluster {
                Some(c) => format!("no master broker in cluster {c}"),
                None => "the name server knows no master broker".to_string(),
            });
        }
        Ok(masters.into_iter().map(|(_, n, a)| (n, a)).collect())
    }

    /// (broker name, master address) of every broker in `topic`'s route.
    pub fn route_masters(&self, topic: &str) -> Result<Vec<(String, String)>, String> {
        let route = self.route(topic)?;
        let mut out: Vec<(String, String)> = route
            .broker_datas
            .iter()
            .filter_map(|b| Some((b.broker_name.clone(), b.master_addr()?.to_string())))
            .collect();
        out.sort();
        if out.is_empty() {
            return Err(format!("no master broker in the route of {topic}"));
        }
        Ok(out)
    }
}
