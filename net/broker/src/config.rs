//! Broker settings: RocketMQ's `broker.conf` keys (`key=value`), their defaults, and the
//! values derived from them, read once at start-up on the thread that starts the broker.
//! The keys themselves are a table in [`keys`]. Unknown keys are warned about; a bad value
//! is refused with the key named.

pub mod keys;

use std::collections::{BTreeMap, BTreeSet};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use ringmq_engine::delay_levels::DelayLevels;

/// `brokerRole`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerRole {
    AsyncMaster,
    SyncMaster,
    Slave,
}

impl BrokerRole {
    pub fn is_master(self) -> bool {
        self != BrokerRole::Slave
    }

    pub fn name(self) -> &'static str {
        match self {
            BrokerRole::AsyncMaster => "ASYNC_MASTER",
            BrokerRole::SyncMaster => "SYNC_MASTER",
            BrokerRole::Slave => "SLAVE",
        }
    }
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    pub broker_cluster_name: String,
    pub broker_name: String,
    pub broker_id: i64,
    /// `brokerIP1`: the address clients are told to use.
    pub broker_ip: IpAddr,
    pub listen_port: u16,
    pub store_path_root_dir: PathBuf,
    pub broker_role: BrokerRole,
    /// `flushDiskType`: true = SYNC_FLUSH.
    pub sync_flush: bool,
    /// `ackBeforeWrite` (ringmq, default false): under ASYNC_FLUSH with a private tail
    /// ring (`tailRingShmDir` empty or not a tmpfs), answer a send once it is in the ring,
    /// before its O_DIRECT write completes. Faster, but a crash of the broker process
    /// loses acknowledged messages (without it such a send is answered once the write
    /// completed, which survives `kill -9`). Moot with a ring in shared memory.
    pub ack_before_write: bool,
    /// `enabledAppendPropCRC` (RocketMQ 5, default false): every stored record carries
    /// the whole-record CRC property `__CRC32#`, so recovery detects a record torn in its
    /// header, topic or properties too (BODYCRC covers only the body).
    pub enabled_append_prop_crc: bool,
    /// `tailRingShmDir` (ringmq, default `/dev/shm`): the tmpfs the CommitLog's tail ring
    /// lives in, so it survives a crash of the broker process and ASYNC_FLUSH sends are
    /// answered from it (as RocketMQ answers from its page cache). None: private memory.
    pub tail_ring_shm_dir: Option<PathBuf>,
    pub ha_listen_port: u16,
    pub ha_master_address: Option<String>,
    /// `namesrvAddr`: name servers to register with, `host:port;host:port` (see `register`).
    pub namesrv_addr: Option<String>,
    /// `registerNameServerPeriod` (30 s; a value from the file is held to RocketMQ's
    /// 10 s..60 s, a value set in code is taken as is).
    pub register_name_server_period: Duration,
    pub auto_create_topic_enable: bool,
    pub auto_create_subscription_group: bool,
    pub default_topic_queue_nums: i32,
    /// `maxTopicQueueNums` (ringmq's): the most read or write queues a topic may have,
    /// at most what a ConsumeQueue store holds (65536).
    pub max_topic_queue_nums: i32,
    /// Limits that keep one client from exhausting the broker (issue 11). Connections
    /// over all network loops (`maxConnections`).
    pub max_connections: usize,
    /// `serverChannelMaxIdleTimeSeconds`: a connection idle this long is closed (0: never).
    pub server_channel_max_idle_time: Duration,
    /// `maxConnectionQueuedBytes`: answers queued for one connection before it stops
    /// reading requests.
    pub max_connection_queued_bytes: usize,
    /// `maxParkedPullsPerConnection` / `maxParkedPulls`: long-poll pulls waiting at once.
    pub max_parked_pulls_per_connection: usize,
    pub max_parked_pulls: usize,
    /// `maxPullSuspendMillis`: the longest a pull may wait for messages, whatever the
    /// client asks.
    pub max_pull_suspend: Duration,
    /// `maxTopics` / `maxSubscriptionGroups`: sizes of those tables; creating one more
    /// is refused.
    pub max_topics: usize,
    pub max_subscription_groups: usize,
    pub sync_flush_timeout: Duration,
    pub flush_interval_commit_log: Duration,
    pub mapped_file_size_commit_log: u64,
    pub mapped_file_size_consume_queue: u64,
    pub max_message_size: usize,
    /// Largest remoting frame accepted (checked before anything is allocated).
    pub max_frame_size: usize,
    pub long_polling_enable: bool,
    pub short_polling_time: Duration,
    pub region_id: String,
    pub trace_on: bool,
    /// Cores the network loops run on (one loop per core).
    pub net_cores: Vec<usize>,
    pub writer_core: usize,
    pub dispatch_core: usize,
    /// Core of the master's HA loop (`haCore`; with ha+dispatch on core 1 by default).
    pub ha_core: usize,
    /// Pin threads to their cores (off for tests sharing 2 cores).
    pub pin_threads: bool,
    /// Tail ring size (bytes of recent log kept in memory).
    pub tail_ring_bytes: usize,
    /// Writer busy-poll before sleeping (microseconds).
    pub writer_spin_us: u64,
    /// `inSyncReplicas`: copies (master included) a SYNC_MASTER waits for.
    pub in_sync_replicas: u32,
    /// `allAckInSyncStateSet`: a SYNC_MASTER send also waits for every in-sync slave.
    pub all_ack_in_sync_state_set: bool,
    /// `haMaxGapNotInSync` (4.x: `haSlaveFallbehindMax`): a slave further behind than this
    /// does not count as in sync; with none in sync SYNC_MASTER answers SLAVE_NOT_AVAILABLE.
    pub ha_max_gap_not_in_sync: u64,
    /// `haAuthToken`: shared secret for the HA handshake (None: RocketMQ's classic protocol).
    pub ha_auth_token: Option<Secret>,
    pub ha_send_heartbeat_interval: Duration,
    pub ha_housekeeping_interval: Duration,
    pub ha_transfer_batch_size: usize,
    /// First metadata sync of a slave after start, and the period after that.
    pub slave_sync_initial_delay: Duration,
    pub slave_sync_interval: Duration,
    /// The master's remoting address for metadata sync (default: haMasterAddress's host
    /// with port - 1, RocketMQ's haListenPort = listenPort + 1 convention).
    pub master_remoting_address: Option<String>,
    /// `messageDelayLevel`: the delay of each level (level i = i-th entry) for messages
    /// with a `DELAY` property and for retries.
    pub message_delay_level: DelayLevels,
    /// `metricsExporterType`: DISABLE, or PROM to serve `/metrics` (see `metrics/`).
    pub metrics_exporter_type: String,
    /// `metricsPromExporterHost` (empty: brokerIP1) and `metricsPromExporterPort`.
    pub metrics_prom_exporter_host: String,
    pub metrics_prom_exporter_port: u16,
    /// `aclEnable`: check every request against the accounts file (see `acl`).
    pub acl_enable: bool,
    /// `plainAclFile` (ringmq's; RocketMQ reads `conf/plain_acl.yml` under its home):
    /// the accounts file, by default [`plain_acl_file_beside`] the store.
    pub plain_acl_file: PathBuf,
}

/// `<storePathRootDir>/../conf/plain_acl.yml`, with `..` resolved by name (the store
/// directory need not exist yet).
pub fn plain_acl_file_beside(store_root: &Path) -> PathBuf {
    let conf = match (store_root.file_name(), store_root.parent()) {
        (Some(_), Some(parent)) => parent.join("conf"),
        _ => store_root.join("..").join("conf"),
    };
    conf.join("plain_acl.yml")
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            broker_cluster_name: "DefaultCluster".into(),
            broker_name: "broker-a".into(),
            broker_id: 0,
            broker_ip: "127.0.0.1".parse().expect("literal"),
            listen_port: 10911,
            store_path_root_dir: PathBuf::from("./store"),
            broker_role: BrokerRole::AsyncMaster,
            sync_flush: false,
            ack_before_write: false,
            enabled_append_prop_crc: false,
            tail_ring_shm_dir: Some(PathBuf::from("/dev/shm")),
            ha_listen_port: 10912,
            ha_master_address: None,
            namesrv_addr: None,
            register_name_server_period: Duration::from_secs(30),
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
            max_topic_queue_nums: 1024,
            max_connections: 10_000,
            server_channel_max_idle_time: Duration::from_secs(120),
            max_connection_queued_bytes: 32 << 20,
            max_parked_pulls_per_connection: 1024,
            max_parked_pulls: 65_536,
            max_pull_suspend: Duration::from_secs(30),
            max_topics: 100_000,
            max_subscription_groups: 100_000,
            sync_flush_timeout: Duration::from_millis(5000),
            flush_interval_commit_log: Duration::from_millis(500),
            mapped_file_size_commit_log: 1 << 30,
            mapped_file_size_consume_queue: 300_000 * 20,
            max_message_size: 4 << 20,
            max_frame_size: 16 << 20,
            long_polling_enable: true,
            short_polling_time: Duration::from_millis(1000),
            region_id: "DefaultRegion".into(),
            trace_on: true,
            net_cores: vec![0],
            writer_core: 0,
            dispatch_core: 1,
            ha_core: 1,
            pin_threads: true,
            tail_ring_bytes: 64 << 20,
            writer_spin_us: 50,
            in_sync_replicas: 1,
            all_ack_in_sync_state_set: false,
            ha_max_gap_not_in_sync: 256 << 20,
            ha_auth_token: None,
            ha_send_heartbeat_interval: Duration::from_secs(5),
            ha_housekeeping_interval: Duration::from_secs(20),
            ha_transfer_batch_size: 32 * 1024,
            slave_sync_initial_delay: Duration::from_secs(10),
            slave_sync_interval: Duration::from_secs(60),
            master_remoting_address: None,
            message_delay_level: DelayLevels::default(),
            metrics_exporter_type: "DISABLE".into(),
            metrics_prom_exporter_host: String::new(),
            metrics_prom_exporter_port: 5557,
            acl_enable: false,
            plain_acl_file: plain_acl_file_beside(Path::new("./store")),
        }
    }
}

/// A secret setting (`haAuthToken`): its `Debug` never prints the value, so logging a
/// configuration cannot leak it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// A config problem, naming the key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

impl BrokerConfig {
    /// The address clients reach this broker at.
    pub fn broker_addr(&self) -> SocketAddr {
        SocketAddr::new(self.broker_ip, self.listen_port)
    }

    /// Reads `key=value` lines (`#` comments, blank lines ignored).
    pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let mut map = BTreeMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let Some((k, v)) = line.split_once(['=', ':']) else {
                return Err(ConfigError(format!(
                    "line {}: expected key=value, got {line:?}",
                    n + 1
                )));
            };
            map.insert(k.trim().to_string(), v.trim().to_string());
        }
        Ok(map)
    }

    /// Reads a `broker.conf` file's `key=value` lines.
    pub fn read_properties(path: &Path) -> Result<BTreeMap<String, String>, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        Self::parse_properties(&text)
    }

    /// Reads a `broker.conf` file into a configuration.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        Self::from_properties(&Self::read_properties(path)?)
    }

    /// The configuration `props` describe, in one pass: every key given is set from
    /// [`keys::KEYS`] over the defaults, then the keys whose default depends on others
    /// (haListenPort, inSyncReplicas) are derived, only where nobody set them. Callers
    /// with several sources (a file and command-line flags) merge them first, so a
    /// derived default never overwrites an explicit value. Returns a warning per key
    /// that is unknown or has no effect; fails on the first bad value, naming its key.
    pub fn from_properties(
        props: &BTreeMap<String, String>,
    ) -> Result<(Self, Vec<String>), ConfigError> {
        let mut cfg = BrokerConfig::default();
        let mut warnings = Vec::new();
        let mut explicit = BTreeSet::new();
        for (name, value) in props {
            if let Some(key) = keys::find(name) {
                (key.set)(&mut cfg, value, &mut warnings)
                    .map_err(|expected| bad(name, value, expected))?;
                explicit.insert(key.name);
            } else if keys::NO_EFFECT.contains(&name.as_str()) {
                warnings.push(format!(
                    "{name}={value} is accepted and has no effect in ringmq"
                ));
            } else {
                warnings.push(format!("unknown config key {name} (ignored)"));
            }
        }
        for key in keys::KEYS {
            if let Some(derive) = key.derive.filter(|_| !explicit.contains(key.name)) {
                derive(&mut cfg)?;
            }
        }
        cfg.check_role()?;
        Ok((cfg, warnings))
    }

    /// The rules tying brokerRole, brokerId and haMasterAddress together.
    fn check_role(&self) -> Result<(), ConfigError> {
        if self.broker_role == BrokerRole::Slave && self.broker_id == 0 {
            return Err(ConfigError(
                "brokerRole=SLAVE needs brokerId > 0 (brokerId 0 is the master)".into(),
            ));
        }
        if self.broker_role != BrokerRole::Slave && self.broker_id != 0 {
            return Err(ConfigError(format!(
                "brokerId={} with brokerRole={}: a master has brokerId 0",
                self.broker_id,
                self.broker_role.name()
            )));
        }
        if self.broker_role == BrokerRole::Slave
            && self.ha_master_address.is_none()
            && self.namesrv_addr.is_none()
        {
            return Err(ConfigError(
                "brokerRole=SLAVE needs haMasterAddress (host:port of the master's haListenPort) or namesrvAddr to learn it from"
                    .into(),
            ));
        }
        Ok(())
    }
}

fn bad(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError(format!(
        "bad value for {key}: {value:?} (expected {expected})"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(kvs: &[(&str, &str)]) -> BTreeMap<String, String> {
        kvs.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_a_rocketmq_broker_conf() {
        let text = "# comment\nbrokerClusterName = C1\nbrokerName=b1\nbrokerId=0\nlistenPort=20911\n\
                    brokerRole=SYNC_MASTER\nflushDiskType=SYNC_FLUSH\ndeleteWhen=04\nmysteryKey=1\n";
        let (cfg, warnings) =
            BrokerConfig::from_properties(&BrokerConfig::parse_properties(text).unwrap()).unwrap();
        assert_eq!(cfg.broker_cluster_name, "C1");
        assert_eq!(cfg.listen_port, 20911);
        assert_eq!(
            cfg.ha_listen_port, 20912,
            "haListenPort defaults to listenPort + 1"
        );
        assert_eq!(cfg.broker_role, BrokerRole::SyncMaster);
        assert!(cfg.sync_flush);
        assert_eq!(warnings.len(), 2);
        assert_eq!(cfg.message_delay_level, DelayLevels::default());
        let (cfg, _) =
            BrokerConfig::from_properties(&props(&[("messageDelayLevel", "1s 2s 3s")])).unwrap();
        assert_eq!(cfg.message_delay_level.max_level(), 3);
        assert_eq!(cfg.message_delay_level.delay_ms(2), 2_000);
        assert!(warnings.iter().any(|w| w.contains("mysteryKey")));
    }

    #[test]
    fn the_auth_token_never_shows_in_debug_output() {
        let (cfg, _) =
            BrokerConfig::from_properties(&props(&[("haAuthToken", "hunter2")])).unwrap();
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert_eq!(
            cfg.ha_auth_token.as_ref().map(|s| s.0.as_str()),
            Some("hunter2")
        );
    }

    #[test]
    fn bad_values_name_their_key() {
        for (k, v) in [
            ("listenPort", "abc"),
            ("brokerRole", "BOSS"),
            ("flushDiskType", "x"),
            ("mappedFileSizeCommitLog", "1000"),
            ("messageDelayLevel", "1s 2x"),
        ] {
            let err = BrokerConfig::from_properties(&props(&[(k, v)])).unwrap_err();
            assert!(err.0.contains(k), "{err}");
        }
        let err = BrokerConfig::from_properties(&props(&[("brokerRole", "SLAVE")])).unwrap_err();
        assert!(err.0.contains("brokerId"));
    }

    #[test]
    fn derived_defaults_apply_only_to_keys_nobody_set() {
        let (cfg, _) = BrokerConfig::from_properties(&props(&[
            ("brokerRole", "SYNC_MASTER"),
            ("inSyncReplicas", "1"),
            ("listenPort", "20911"),
            ("haListenPort", "30000"),
        ]))
        .unwrap();
        assert_eq!((cfg.in_sync_replicas, cfg.ha_listen_port), (1, 30000));

        let (cfg, _) =
            BrokerConfig::from_properties(&props(&[("brokerRole", "SYNC_MASTER")])).unwrap();
        assert_eq!((cfg.in_sync_replicas, cfg.ha_listen_port), (2, 10912));
        let (cfg, _) = BrokerConfig::from_properties(&props(&[("listenPort", "0")])).unwrap();
        assert_eq!(
            (cfg.in_sync_replicas, cfg.ha_listen_port),
            (1, 0),
            "any free remoting port, any free HA port"
        );
        let err = BrokerConfig::from_properties(&props(&[("listenPort", "65535")])).unwrap_err();
        assert!(err.0.contains("listenPort"), "{err}");
    }
}
