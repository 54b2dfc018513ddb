//! [`RouteTable`]: which broker groups exist, which of their brokers are alive, and which
//! queues each group serves per topic, kept the way Apache RocketMQ's RouteInfoManager keeps
//! them (facts in `README.md`). Sans-IO: time comes in as an argument and the connection a
//! broker registered on is only an id, so every rule is testable without sockets.
//!
//! Invariants, checked by [`RouteTable::check`] in tests:
//! - every address in a group's `brokerAddrs` appears once in that group;
//! - a group listed in `brokers` has at least one address and is listed under its cluster;
//! - every topic lists at least one group.
//!
//! A topic's route lists only live brokers: a broker leaves `brokerAddrs` when it
//! unregisters, when the connection it registered on closes, or when it has not registered
//! for its expiry time; the last broker of a group takes the group's queues with it.
//!
//! Runs on: the name server's network loop and its scan thread, behind one mutex.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::wire::{
    BrokerData, ClusterInfo, DataVersion, QueueData, TopicConfig, TopicConfigWrapper, TopicList,
    TopicRouteData, MASTER_ID, PERM_WRITE,
};

/// RocketMQ's default broker expiry (BROKER_CHANNEL_EXPIRED_TIME): 120 s.
pub const DEFAULT_BROKER_EXPIRY: Duration = Duration::from_secs(120);

/// A broker as the live table knows it: its cluster and its remoting address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BrokerKey {
    pub cluster: String,
    pub addr: String,
}

#[derive(Debug, Clone)]
struct LiveInfo {
    last_update: Instant,
    expiry: Duration,
    data_version: DataVersion,
    /// The connection the last registration came on (None: registered by a test).
    conn: Option<u64>,
    ha_server_addr: String,
}

/// One REGISTER_BROKER request, decoded.
#[derive(Debug, Clone, Default)]
pub struct Registration {
    pub cluster: String,
    pub broker_addr: String,
    pub broker_name: String,
    pub broker_id: i64,
    pub ha_server_addr: String,
    pub zone_name: Option<String>,
    /// `heartbeatTimeoutMillis`; None: the table's default expiry.
    pub expiry: Option<Duration>,
    /// `enableActingMaster`; None marks a broker older than 5.0.
    pub enable_acting_master: Option<bool>,
    pub topics: TopicConfigWrapper,
    pub filter_server_list: Option<Vec<String>>,
    pub conn: Option<u64>,
}

/// What a registration answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegisterOutcome {
    /// Registered. For a slave whose master is alive: the master's HA and remoting address.
    Registered {
        ha_server_addr: Option<String>,
        master_addr: Option<String>,
    },
    /// A single-topic registration from a broker that has not registered in full first.
    Refused,
}

/// The routing state of one name server.
#[derive(Debug)]
pub struct RouteTable {
    topic_queues: BTreeMap<String, BTreeMap<String, QueueData>>,
    brokers: BTreeMap<String, BrokerData>,
    clusters: BTreeMap<String, BTreeSet<String>>,
    live: HashMap<BrokerKey, LiveInfo>,
    filter_servers: HashMap<BrokerKey, Vec<String>>,
    default_expiry: Duration,
    delete_topic_with_broker_registration: bool,
}

impl RouteTable {
    pub fn new(default_expiry: Duration, delete_topic_with_broker_registration: bool) -> Self {
        RouteTable {
            topic_queues: BTreeMap::new(),
            brokers: BTreeMap::new(),
            clusters: BTreeMap::new(),
            live: HashMap::new(),
            filter_servers: HashMap::new(),
            default_expiry,
            delete_topic_with_broker_registration,
        }
    }

    /// REGISTER_BROKER: adds or refreshes a broker, and (from a master, or the lowest-id
    /// slave of a 5.x group) its topics' queue data.
    pub fn register(&mut self, reg: Registration, now: Instant) -> RegisterOutcome {
        let name = reg.broker_name.as_str();
        let addr = reg.broker_addr.as_str();
        let id = reg.broker_id;
        self.clusters
            .entry(reg.cluster.clone())
            .or_default()
            .insert(name.to_owned());
        let mut register_first = !self.brokers.contains_key(name);
        let group = self
            .brokers
            .entry(name.to_owned())
            .or_insert_with(|| BrokerData {
                broker_addrs: BTreeMap::new(),
                broker_name: name.to_owned(),
                cluster: reg.cluster.clone(),
                enable_acting_master: false,
                zone_name: None,
            });
        let old_version_broker = reg.enable_acting_master.is_none();
        group.enable_acting_master = reg.enable_acting_master.unwrap_or(false);
        group.zone_name = reg.zone_name.clone();
        // A slave turned master: one address has one id in a group.
        group.broker_addrs.retain(|&k, v| k == id || v != addr);

        let key = BrokerKey {
            cluster: reg.cluster.clone(),
            addr: addr.to_owned(),
        };
        // Another address already holds this id: keep it if its state is newer.
        if let Some(old_addr) = group.broker_addrs.get(&id).filter(|a| *a != addr) {
            let old_key = BrokerKey {
                cluster: reg.cluster.clone(),
                addr: old_addr.clone(),
            };
            if let Some(old) = self.live.get(&old_key) {
                if old.data_version.state_version > reg.topics.data_version.state_version {
                    tracing::warn!(broker = name, id, old = %old_addr, new = addr, "registration conflicts with a newer one; ignored");
                    self.live.remove(&key);
                    return RegisterOutcome::Registered {
                        ha_server_addr: None,
                        master_addr: None,
                    };
                }
            }
        }
        if !group.broker_addrs.contains_key(&id) && reg.topics.topic_config_table.len() == 1 {
            tracing::warn!(
                broker = name,
                id,
                addr,
                "single-topic registration before a full one; refused"
            );
            if group.broker_addrs.is_empty() {
                self.remove_group(&reg.cluster, name);
            }
            return RegisterOutcome::Refused;
        }
        let old_addr = group.broker_addrs.insert(id, addr.to_owned());
        register_first |= old_addr.is_none();
        let is_master = id == MASTER_ID;
        let is_prime_slave =
            !old_version_broker && !is_master && group.broker_addrs.keys().next() == Some(&id);
        let acting_master = group.enable_acting_master;

        if is_master || is_prime_slave {
            let table = &reg.topics.topic_config_table;
            if self.delete_topic_with_broker_registration
                && reg.topics.topic_queue_mapping_info_map.is_empty()
            {
                self.drop_topics_not_in(name, table);
            }
            let version_changed = self.version_changed(&key, &reg.topics.data_version);
            for config in table.values() {
                let missing = self
                    .topic_queues
                    .get(&config.topic_name)
                    .is_none_or(|groups| !groups.contains_key(name));
                if register_first || version_changed || missing {
                    let mut config = config.clone();
                    if is_prime_slave && acting_master {
                        config.perm &= !PERM_WRITE;
                    }
                    self.put_queue_data(name, &config);
                }
            }
        }

        let previous = self.live.insert(
            key.clone(),
            LiveInfo {
                last_update: now,
                expiry: reg.expiry.unwrap_or(self.default_expiry),
                data_version: reg.topics.data_version,
                conn: reg.conn,
                ha_server_addr: reg.ha_server_addr.clone(),
            },
        );
        if previous.is_none() {
            tracing::info!(broker = name, id, addr, ha = %reg.ha_server_addr, "new broker registered");
        }
        match reg.filter_server_list {
            Some(list) if list.is_empty() => {
                self.filter_servers.remove(&key);
            }
            Some(list) => {
                self.filter_servers.insert(key.clone(), list);
            }
            None => {}
        }
        let (mut ha_server_addr, mut master_addr) = (None, None);
        if !is_master {
            let master = self.brokers[name].broker_addrs.get(&MASTER_ID).cloned();
            if let Some(master) = master {
                let master_key = BrokerKey {
                    cluster: reg.cluster.clone(),
                    addr: master.clone(),
                };
                if let Some(info) = self.live.get(&master_key) {
                    ha_server_addr = Some(info.ha_server_addr.clone());
                    master_addr = Some(master);
                }
            }
        }
        RegisterOutcome::Registered {
            ha_server_addr,
            master_addr,
        }
    }

    fn version_changed(&self, key: &BrokerKey, version: &DataVersion) -> bool {
        self.live
            .get(key)
            .is_none_or(|l| l.data_version != *version)
    }

    fn put_queue_data(&mut self, broker_name: &str, config: &TopicConfig) {
        let qd = QueueData::of(broker_name, config);
        let groups = self
            .topic_queues
            .entry(config.topic_name.clone())
            .or_default();
        if groups.get(broker_name) != Some(&qd) {
            tracing::debug!(topic = %config.topic_name, ?qd, "topic queue data updated");
            groups.insert(broker_name.to_owned(), qd);
        }
    }

    fn drop_topics_not_in(&mut self, broker_name: &str, table: &BTreeMap<String, TopicConfig>) {
        self.topic_queues.retain(|topic, groups| {
            if !table.contains_key(topic) {
                groups.remove(broker_name);
            }
            !groups.is_empty()
        });
    }

    /// UNREGISTER_BROKER (and what a closed connection or an expiry amounts to): the
    /// broker leaves the live table and its group; an emptied group leaves its cluster and
    /// every topic.
    pub fn unregister(&mut self, cluster: &str, addr: &str, broker_name: &str) {
        let key = BrokerKey {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        let was_live = self.live.remove(&key).is_some();
        self.filter_servers.remove(&key);
        let Some(group) = self.brokers.get_mut(broker_name) else {
            tracing::info!(
                broker = broker_name,
                addr,
                was_live,
                "unregister: no such group"
            );
            return;
        };
        group.broker_addrs.retain(|_, a| a != addr);
        tracing::info!(broker = broker_name, addr, was_live, "broker unregistered");
        if group.broker_addrs.is_empty() {
            self.remove_group(cluster, broker_name);
        } else if group.enable_acting_master && !group.broker_addrs.contains_key(&MASTER_ID) {
            // Acting-master groups lose write permission with their master.
            for groups in self.topic_queues.values_mut() {
                if let Some(qd) = groups.get_mut(broker_name) {
                    qd.perm &= !PERM_WRITE;
                }
            }
        }
    }

    fn remove_group(&mut self, cluster: &str, broker_name: &str) {
        self.brokers.remove(broker_name);
        if let Some(names) = self.clusters.get_mut(cluster) {
            names.remove(broker_name);
            if names.is_empty() {
                self.clusters.remove(cluster);
            }
        }
        self.topic_queues.retain(|_, groups| {
            groups.remove(broker_name);
            !groups.is_empty()
        });
        tracing::info!(broker = broker_name, cluster, "broker group removed");
    }

    /// Unregisters the broker `key` names, finding its group and id as RocketMQ does.
    fn unregister_key(&mut self, key: &BrokerKey) {
        let name = self
            .brokers
            .values()
            .find(|g| g.cluster == key.cluster && g.broker_addrs.values().any(|a| *a == key.addr))
            .map(|g| g.broker_name.clone());
        match name {
            Some(name) => self.unregister(&key.cluster, &key.addr, &name),
            None => {
                self.live.remove(key);
                self.filter_servers.remove(key);
            }
        }
    }

    /// The connection `conn` closed: every broker whose last registration came on it is
    /// unregistered at once. Returns how many.
    pub fn connection_closed(&mut self, conn: u64) -> usize {
        let mut gone: Vec<BrokerKey> = self
            .live
            .iter()
            .filter(|(_, l)| l.conn == Some(conn))
            .map(|(k, _)| k.clone())
            .collect();
        gone.sort();
        for key in &gone {
            tracing::info!(broker = %key.addr, conn, "the broker's connection closed; unregistering it");
            self.unregister_key(key);
        }
        gone.len()
    }

    /// The periodic scan: brokers silent for longer than their expiry are unregistered.
    /// Returns the expired brokers.
    pub fn expire(&mut self, now: Instant) -> Vec<BrokerKey> {
        let mut expired: Vec<BrokerKey> = self
            .live
            .iter()
            .filter(|(_, l)| now.saturating_duration_since(l.last_update) > l.expiry)
            .map(|(k, _)| k.clone())
            .collect();
        expired.sort();
        for key in &expired {
            tracing::warn!(broker = %key.addr, cluster = %key.cluster, "broker expired");
            self.unregister_key(key);
        }
        expired
    }

    /// BROKER_HEARTBEAT / QUERY_DATA_VERSION: the broker is alive as of `now`.
    pub fn touch(&mut self, cluster: &str, addr: &str, now: Instant) {
        let key = BrokerKey {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        if let Some(l) = self.live.get_mut(&key) {
            l.last_update = now;
        }
    }

    /// The topic-table version the broker last registered, if it is alive.
    pub fn data_version(&self, cluster: &str, addr: &str) -> Option<DataVersion> {
        let key = BrokerKey {
            cluster: cluster.to_owned(),
            addr: addr.to_owned(),
        };
        self.live.get(&key).map(|l| l.data_version)
    }

    /// GET_ROUTEINFO_BY_TOPIC: None when no live group serves the topic.
    pub fn route(&self, topic: &str) -> Option<TopicRouteData> {
        let groups = self.topic_queues.get(topic)?;
        let broker_datas: Vec<BrokerData> = groups
            .keys()
            .filter_map(|name| self.brokers.get(name).cloned())
            .collect();
        if broker_datas.is_empty() {
            return None;
        }
        let mut filter_server_table = BTreeMap::new();
        if !self.filter_servers.is_empty() {
            for g in &broker_datas {
                for addr in g.broker_addrs.values() {
                    let key = BrokerKey {
                        cluster: g.cluster.clone(),
                        addr: addr.clone(),
                    };
                    if let Some(list) = self.filter_servers.get(&key) {
                        filter_server_table.insert(addr.clone(), list.clone());
                    }
                }
            }
        }
        Some(TopicRouteData {
            broker_datas,
            filter_server_table,
            order_topic_conf: None,
            queue_datas: groups.values().cloned().collect(),
        })
    }

    pub fn cluster_info(&self) -> ClusterInfo {
        ClusterInfo {
            broker_addr_table: self.brokers.clone(),
            cluster_addr_table: self.clusters.clone(),
        }
    }

    /// GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub fn all_topics(&self) -> TopicList {
        TopicList {
            broker_addr: None,
            topic_list: self.topic_queues.keys().cloned().collect(),
        }
    }

    /// GET_TOPICS_BY_CLUSTER: topics served by any group of `cluster`.
    pub fn topics_by_cluster(&self, cluster: &str) -> TopicList {
        let names = self.clusters.get(cluster);
        let topic_list = self
            .topic_queues
            .iter()
            .filter(|(_, groups)| names.is_some_and(|n| groups.keys().any(|g| n.contains(g))))
            .map(|(t, _)| t.clone())
            .collect();
        TopicList {
            broker_addr: None,
            topic_list,
        }
    }

    /// GET_SYSTEM_TOPIC_LIST_FROM_NS: cluster and group names (each is a topic on its
    /// brokers), plus one broker address to ask for the rest.
    pub fn system_topics(&self) -> TopicList {
        let mut topic_list = BTreeSet::new();
        for (cluster, names) in &self.clusters {
            topic_list.insert(cluster.clone());
            topic_list.extend(names.iter().cloned());
        }
        let broker_addr = self
            .brokers
            .values()
            .find_map(|g| g.broker_addrs.values().next().cloned());
        TopicList {
            broker_addr,
            topic_list,
        }
    }

    /// DELETE_TOPIC_IN_NAMESRV: the topic leaves every group (of `cluster`, if given).
    pub fn delete_topic(&mut self, topic: &str, cluster: Option<&str>) {
        match cluster.and_then(|c| self.clusters.get(c)) {
            Some(names) => {
                if let Some(groups) = self.topic_queues.get_mut(topic) {
                    groups.retain(|g, _| !names.contains(g));
                    if groups.is_empty() {
                        self.topic_queues.remove(topic);
                    }
                }
            }
            None if cluster.is_some() => {}
            None => {
                self.topic_queues.remove(topic);
            }
        }
    }

    /// WIPE_WRITE_PERM_OF_BROKER (`add` false) / ADD_WRITE_PERM_OF_BROKER (`add` true):
    /// returns how many topics of the group changed.
    pub fn set_write_perm(&mut self, broker_name: &str, add: bool) -> usize {
        let mut count = 0;
        for groups in self.topic_queues.values_mut() {
            if let Some(qd) = groups.get_mut(broker_name) {
                qd.perm = if add {
                    qd.perm | PERM_WRITE
                } else {
                    qd.perm & !PERM_WRITE
                };
                count += 1;
            }
        }
        count
    }

    /// Asserts the invariants in the file header.
    pub fn check(&self) {
        for (name, g) in &self.brokers {
            assert!(!g.broker_addrs.is_empty(), "group {name} has no address");
            let addrs: BTreeSet<&String> = g.broker_addrs.values().collect();
            assert_eq!(
                addrs.len(),
                g.broker_addrs.len(),
                "an address twice in {name}"
            );
            assert!(
                self.clusters
                    .get(&g.cluster)
                    .is_some_and(|n| n.contains(name)),
                "group {name} not under its cluster"
            );
        }
        for (topic, groups) in &self.topic_queues {
            assert!(!groups.is_empty(), "topic {topic} lists no group");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topics(version: i64, names: &[(&str, i32)]) -> TopicConfigWrapper {
        TopicConfigWrapper {
            data_version: DataVersion {
                counter: version,
                state_version: 0,
                timestamp: 1,
            },
            topic_config_table: names
                .iter()
                .map(|(n, q)| {
                    let c = TopicConfig {
                        topic_name: n.to_string(),
                        read_queue_nums: *q,
                        write_queue_nums: *q,
                        ..TopicConfig::default()
                    };
                    (n.to_string(), c)
                })
                .collect(),
            ..TopicConfigWrapper::default()
        }
    }

    /// Like a RocketMQ broker, every test broker also has a topic named after its group
    /// (a table of one topic is a single-topic registration).
    fn reg(name: &str, id: i64, addr: &str, conn: u64, mut t: TopicConfigWrapper) -> Registration {
        let own = TopicConfig {
            topic_name: name.to_string(),
            ..TopicConfig::default()
        };
        t.topic_config_table.insert(name.to_string(), own);
        Registration {
            cluster: "C".into(),
            broker_addr: addr.into(),
            broker_name: name.into(),
            broker_id: id,
            ha_server_addr: format!("{addr}-ha"),
            enable_acting_master: Some(false),
            topics: t,
            conn: Some(conn),
            ..Registration::default()
        }
    }

    fn addrs(r: &TopicRouteData) -> Vec<(String, Vec<i64>)> {
        r.broker_datas
            .iter()
            .map(|b| {
                (
                    b.broker_name.clone(),
                    b.broker_addrs.keys().copied().collect(),
                )
            })
            .collect()
    }

    #[test]
    fn two_groups_share_a_topic_and_a_slave_learns_its_master() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        let a = t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4), ("A", 1)])), now);
        assert_eq!(
            a,
            RegisterOutcome::Registered {
                ha_server_addr: None,
                master_addr: None
            }
        );
        t.register(reg("b", 0, "b0", 2, topics(1, &[("T", 2)])), now);
        let s = t.register(reg("a", 1, "a1", 3, topics(1, &[("T", 4), ("A", 1)])), now);
        assert_eq!(
            s,
            RegisterOutcome::Registered {
                ha_server_addr: Some("a0-ha".into()),
                master_addr: Some("a0".into())
            }
        );
        t.check();
        let r = t.route("T").unwrap();
        assert_eq!(addrs(&r), [("a".into(), vec![0, 1]), ("b".into(), vec![0])]);
        assert_eq!(r.queue_datas.len(), 2);
        assert_eq!(addrs(&t.route("A").unwrap()), [("a".into(), vec![0, 1])]);
        assert!(t.route("Nope").is_none());
        assert_eq!(t.all_topics().topic_list.len(), 4);
        assert_eq!(t.cluster_info().cluster_addr_table["C"].len(), 2);
    }

    #[test]
    fn a_closed_connection_unregisters_at_once() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4)])), now);
        t.register(reg("a", 1, "a1", 2, topics(1, &[("T", 4)])), now);
        t.register(reg("b", 0, "b0", 3, topics(1, &[("T", 2)])), now);
        assert_eq!(t.connection_closed(99), 0);
        assert_eq!(t.connection_closed(1), 1);
        t.check();
        // The master is gone; the slave keeps the group (readable, not writable by clients).
        let r = t.route("T").unwrap();
        assert_eq!(addrs(&r), [("a".into(), vec![1]), ("b".into(), vec![0])]);
        t.connection_closed(2);
        assert_eq!(addrs(&t.route("T").unwrap()), [("b".into(), vec![0])]);
        assert_eq!(t.route("T").unwrap().queue_datas.len(), 1);
        t.connection_closed(3);
        assert!(t.route("T").is_none());
        assert!(t.cluster_info().broker_addr_table.is_empty());
        assert!(t.cluster_info().cluster_addr_table.is_empty());
        t.check();
    }

    #[test]
    fn a_reconnected_broker_survives_its_old_connection() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4)])), now);
        t.register(reg("a", 0, "a0", 2, topics(1, &[("T", 4)])), now);
        assert_eq!(t.connection_closed(1), 0);
        assert!(t.route("T").is_some());
    }

    #[test]
    fn silent_brokers_expire() {
        let start = Instant::now();
        let mut t = RouteTable::new(Duration::from_secs(2), false);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4)])), start);
        let mut r = reg("b", 0, "b0", 2, topics(1, &[("T", 4)]));
        r.expiry = Some(Duration::from_secs(10));
        t.register(r, start);
        assert!(t.expire(start + Duration::from_secs(2)).is_empty());
        t.touch("C", "a0", start + Duration::from_secs(2));
        assert!(t.expire(start + Duration::from_secs(4)).is_empty());
        let gone = t.expire(start + Duration::from_millis(4001));
        assert_eq!(
            gone.iter().map(|k| k.addr.as_str()).collect::<Vec<_>>(),
            ["a0"]
        );
        assert_eq!(addrs(&t.route("T").unwrap()), [("b".into(), vec![0])]);
        assert_eq!(t.expire(start + Duration::from_secs(11)).len(), 1);
        assert!(t.route("T").is_none());
        t.check();
    }

    #[test]
    fn topic_changes_follow_the_data_version() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4)])), now);
        // Same version, different content: ignored except for topics the table lacks.
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 8), ("N", 1)])), now);
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 4);
        assert!(t.route("N").is_some());
        t.register(reg("a", 0, "a0", 1, topics(2, &[("T", 8)])), now);
        assert_eq!(t.route("T").unwrap().queue_datas[0].write_queue_nums, 8);
        assert!(
            t.route("N").is_some(),
            "kept: deleteTopicWithBrokerRegistration is off"
        );
        assert_eq!(t.data_version("C", "a0").unwrap().counter, 2);
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, true);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4), ("N", 1)])), now);
        t.register(reg("a", 0, "a0", 1, topics(2, &[("T", 4)])), now);
        assert!(t.route("N").is_none());
    }

    #[test]
    fn only_masters_and_5x_prime_slaves_publish_topics() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        // A 4.x slave (no enableActingMaster) never publishes queue data.
        let mut old = reg("a", 1, "a1", 1, topics(1, &[("T", 4), ("U", 1)]));
        old.enable_acting_master = None;
        t.register(old, now);
        assert!(t.route("T").is_none());
        // A 5.x slave that is the lowest id of its group does.
        t.register(reg("b", 1, "b1", 2, topics(1, &[("T", 4), ("U", 1)])), now);
        assert_eq!(addrs(&t.route("T").unwrap()), [("b".into(), vec![1])]);
        // A single-topic registration before a full one is refused.
        let mut single = reg("c", 0, "c0", 3, topics(1, &[]));
        single.topics.topic_config_table.remove("c");
        single
            .topics
            .topic_config_table
            .insert("T".into(), TopicConfig::default());
        let outcome = t.register(single, now);
        assert_eq!(outcome, RegisterOutcome::Refused);
        assert!(!t.cluster_info().broker_addr_table.contains_key("c"));
        t.check();
    }

    #[test]
    fn a_slave_promoted_keeps_one_id_per_address() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        t.register(reg("a", 1, "x", 1, topics(1, &[("T", 4), ("U", 1)])), now);
        t.register(reg("a", 0, "x", 1, topics(1, &[("T", 4), ("U", 1)])), now);
        assert_eq!(addrs(&t.route("T").unwrap()), [("a".into(), vec![0])]);
        t.check();
    }

    #[test]
    fn admin_edits() {
        let now = Instant::now();
        let mut t = RouteTable::new(DEFAULT_BROKER_EXPIRY, false);
        t.register(reg("a", 0, "a0", 1, topics(1, &[("T", 4), ("U", 1)])), now);
        assert_eq!(t.set_write_perm("a", false), 3);
        assert_eq!(t.route("T").unwrap().queue_datas[0].perm & PERM_WRITE, 0);
        assert_eq!(t.set_write_perm("a", true), 3);
        assert_ne!(t.route("T").unwrap().queue_datas[0].perm & PERM_WRITE, 0);
        assert_eq!(t.topics_by_cluster("C").topic_list.len(), 3);
        assert!(t.topics_by_cluster("X").topic_list.is_empty());
        let sys = t.system_topics();
        assert!(sys.topic_list.contains("C") && sys.topic_list.contains("a"));
        assert_eq!(sys.broker_addr.as_deref(), Some("a0"));
        t.delete_topic("T", Some("X"));
        assert!(t.route("T").is_some());
        t.delete_topic("T", Some("C"));
        assert!(t.route("T").is_none());
        t.delete_topic("U", None);
        assert_eq!(t.all_topics().topic_list.len(), 1);
        t.check();
    }
}
