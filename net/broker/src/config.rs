//! Broker settings: RocketMQ's `broker.conf` keys (`key=value`), their defaults, and the
//! values derived from them. Unknown keys are warned about; a bad value is refused with
//! the key named.

use std::collections::BTreeMap;
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
    /// Pin threads to their cores (off for tests sharing 2 cores).
    pub pin_threads: bool,
    /// Tail ring size (bytes of recent log kept in memory).
    pub tail_ring_bytes: usize,
    /// Writer busy-poll before sleeping (microseconds).
    pub writer_spin_us: u64,
    /// `inSyncReplicas`: copies (master included) a SYNC_MASTER waits for.
    pub in_sync_replicas: u32,
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
            ha_listen_port: 10912,
            ha_master_address: None,
            namesrv_addr: None,
            register_name_server_period: Duration::from_secs(30),
            auto_create_topic_enable: true,
            auto_create_subscription_group: true,
            default_topic_queue_nums: 8,
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
            pin_threads: true,
            tail_ring_bytes: 64 << 20,
            writer_spin_us: 50,
            in_sync_replicas: 1,
            ha_max_gap_not_in_sync: 256 << 20,
            ha_auth_token: None,
            ha_send_heartbeat_interval: Duration::from_secs(5),
            ha_housekeeping_interval: Duration::from_secs(20),
            ha_transfer_batch_size: 32 * 1024,
            slave_sync_initial_delay: Duration::from_secs(10),
            slave_sync_interval: Duration::from_secs(60),
            master_remoting_address: None,
            message_delay_level: DelayLevels::default(),
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

    /// Reads a `broker.conf` file.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = BrokerConfig::default();
        let warnings = cfg.apply(&Self::parse_properties(&text)?)?;
        Ok((cfg, warnings))
    }

    /// Applies `key=value` settings over the current values. Returns a warning per
    /// unknown key; fails on the first bad value, naming its key.
    pub fn apply(&mut self, props: &BTreeMap<String, String>) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        let mut ha_port_set = false;
        let mut in_sync_set = false;
        let mut listen_port_set = false;
        for (key, value) in props {
            let v = value.as_str();
            match key.as_str() {
                "brokerClusterName" => self.broker_cluster_name = non_empty(key, v)?,
                "brokerName" => self.broker_name = non_empty(key, v)?,
                "brokerId" => self.broker_id = num(key, v)?,
                "brokerIP1" => {
                    self.broker_ip = v.parse().map_err(|_| bad(key, v, "an IP address"))?
                }
                "listenPort" => {
                    self.listen_port = num(key, v)?;
                    listen_port_set = true;
                }
                "storePathRootDir" => self.store_path_root_dir = PathBuf::from(non_empty(key, v)?),
                "storePathCommitLog" => warnings.push(format!(
                    "{key} is ignored: the CommitLog lives in storePathRootDir/commitlog"
                )),
                "brokerRole" => {
                    self.broker_role = match v.to_ascii_uppercase().as_str() {
                        "ASYNC_MASTER" => BrokerRole::AsyncMaster,
                        "SYNC_MASTER" => BrokerRole::SyncMaster,
                        "SLAVE" => BrokerRole::Slave,
                        _ => return Err(bad(key, v, "ASYNC_MASTER, SYNC_MASTER or SLAVE")),
                    }
                }
                "flushDiskType" => {
                    self.sync_flush = match v.to_ascii_uppercase().as_str() {
                        "SYNC_FLUSH" => true,
                        "ASYNC_FLUSH" => false,
                        _ => return Err(bad(key, v, "SYNC_FLUSH or ASYNC_FLUSH")),
                    }
                }
                "haListenPort" => {
                    self.ha_listen_port = num(key, v)?;
                    ha_port_set = true;
                }
                "haMasterAddress" => {
                    self.ha_master_address = (!v.is_empty()).then(|| v.to_string())
                }
                "namesrvAddr" => self.namesrv_addr = (!v.is_empty()).then(|| v.to_string()),
                "registerNameServerPeriod" => {
                    let ms: u64 = positive(key, v)?;
                    self.register_name_server_period = Duration::from_millis(ms)
                        .clamp(crate::register::PERIOD_MIN, crate::register::PERIOD_MAX);
                }
                "autoCreateTopicEnable" => self.auto_create_topic_enable = boolean(key, v)?,
                "autoCreateSubscriptionGroup" => {
                    self.auto_create_subscription_group = boolean(key, v)?
                }
                "defaultTopicQueueNums" => self.default_topic_queue_nums = positive(key, v)?,
                "syncFlushTimeout" => {
                    self.sync_flush_timeout = Duration::from_millis(positive(key, v)?)
                }
                "flushIntervalCommitLog" => {
                    self.flush_interval_commit_log = Duration::from_millis(positive(key, v)?)
                }
                "mappedFileSizeCommitLog" => {
                    let size: u64 = positive(key, v)?;
                    if !size.is_multiple_of(4096) {
                        return Err(bad(key, v, "a multiple of 4096"));
                    }
                    self.mapped_file_size_commit_log = size;
                }
                "mappedFileSizeConsumeQueue" => {
                    let size: u64 = positive(key, v)?;
                    if !size.is_multiple_of(20) {
                        return Err(bad(key, v, "a multiple of 20"));
                    }
                    self.mapped_file_size_consume_queue = size;
                }
                "maxMessageSize" => self.max_message_size = positive(key, v)?,
                "maxFrameSize" => self.max_frame_size = positive(key, v)?,
                "longPollingEnable" => self.long_polling_enable = boolean(key, v)?,
                "shortPollingTimeMills" => {
                    self.short_polling_time = Duration::from_millis(positive(key, v)?)
                }
                "regionId" => self.region_id = non_empty(key, v)?,
                "traceOn" => self.trace_on = boolean(key, v)?,
                "netCores" => {
                    self.net_cores = v
                        .split(',')
                        .map(|c| {
                            c.trim()
                                .parse::<usize>()
                                .map_err(|_| bad(key, v, "a comma-separated list of core numbers"))
                        })
                        .collect::<Result<_, _>>()?;
                    if self.net_cores.is_empty() {
                        return Err(bad(key, v, "at least one core"));
                    }
                }
                "writerCore" => self.writer_core = num(key, v)?,
                "dispatchCore" => self.dispatch_core = num(key, v)?,
                "pinThreads" => self.pin_threads = boolean(key, v)?,
                "tailRingBytes" => self.tail_ring_bytes = positive(key, v)?,
                "writerSpinMicros" => self.writer_spin_us = num(key, v)?,
                "inSyncReplicas" => {
                    self.in_sync_replicas = positive(key, v)?;
                    in_sync_set = true;
                }
                "haMaxGapNotInSync" | "haSlaveFallbehindMax" => {
                    self.ha_max_gap_not_in_sync = positive(key, v)?
                }
                "haAuthToken" => {
                    self.ha_auth_token = (!v.is_empty()).then(|| Secret(v.to_string()))
                }
                "haSendHeartbeatInterval" => {
                    self.ha_send_heartbeat_interval = Duration::from_millis(positive(key, v)?)
                }
                "haHousekeepingInterval" => {
                    self.ha_housekeeping_interval = Duration::from_millis(positive(key, v)?)
                }
                "haTransferBatchSize" => self.ha_transfer_batch_size = positive(key, v)?,
                "slaveSyncInitialDelayMillis" => {
                    self.slave_sync_initial_delay = Duration::from_millis(num(key, v)?)
                }
                "masterRemotingAddress" => {
                    self.master_remoting_address = (!v.is_empty()).then(|| v.to_string())
                }
                "messageDelayLevel" => {
                    self.message_delay_level = DelayLevels::parse(v).map_err(|_| {
                        bad(
                            key,
                            v,
                            "space-separated durations such as \"1s 5s 10s 30s 1m 2h 1d\"",
                        )
                    })?
                }
                "slaveSyncIntervalMillis" => {
                    self.slave_sync_interval = Duration::from_millis(positive(key, v)?)
                }
                // Keys RocketMQ has that ringmq accepts and does not need.
                "deleteWhen"
                | "fileReservedTime"
                | "brokerIP2"
                | "sendMessageThreadPoolNums"
                | "pullMessageThreadPoolNums"
                | "transientStorePoolEnable"
                | "useReentrantLockWhenPutMessage"
                | "enablePropertyFilter" => {
                    warnings.push(format!("{key}={v} is accepted and has no effect in ringmq"))
                }
                _ => warnings.push(format!("unknown config key {key} (ignored)")),
            }
        }
        if listen_port_set && !ha_port_set {
            self.ha_listen_port = self
                .listen_port
                .checked_add(1)
                .ok_or_else(|| bad("listenPort", "65535", "below 65535"))?;
        }
        // Under SYNC_MASTER inSyncReplicas defaults to 2 (the master and one slave): unlike
        // RocketMQ 5's default, SYNC_MASTER really waits for a slave unless told otherwise.
        if self.broker_role == BrokerRole::SyncMaster && !in_sync_set {
            self.in_sync_replicas = 2;
        }
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
        Ok(warnings)
    }
}

fn bad(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError(format!(
        "bad value for {key}: {value:?} (expected {expected})"
    ))
}

fn non_empty(key: &str, v: &str) -> Result<String, ConfigError> {
    if v.is_empty() {
        return Err(bad(key, v, "a non-empty string"));
    }
    Ok(v.to_string())
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| bad(key, v, "a number in range"))
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(
    key: &str,
    v: &str,
) -> Result<T, ConfigError> {
    let n: T = num(key, v)?;
    if n <= T::default() {
        return Err(bad(key, v, "a positive number"));
    }
    Ok(n)
}

fn boolean(key: &str, v: &str) -> Result<bool, ConfigError> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(bad(key, v, "true or false")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_rocketmq_broker_conf() {
        let text = "# comment\nbrokerClusterName = C1\nbrokerName=b1\nbrokerId=0\nlistenPort=20911\n\
                    brokerRole=SYNC_MASTER\nflushDiskType=SYNC_FLUSH\ndeleteWhen=04\nmysteryKey=1\n";
        let mut cfg = BrokerConfig::default();
        let warnings = cfg
            .apply(&BrokerConfig::parse_properties(text).unwrap())
            .unwrap();
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
        cfg.apply(&BTreeMap::from([(
            "messageDelayLevel".to_string(),
            "1s 2s 3s".to_string(),
        )]))
        .unwrap();
        assert_eq!(cfg.message_delay_level.max_level(), 3);
        assert_eq!(cfg.message_delay_level.delay_ms(2), 2_000);
        assert!(warnings.iter().any(|w| w.contains("mysteryKey")));
    }

    #[test]
    fn the_auth_token_never_shows_in_debug_output() {
        let mut cfg = BrokerConfig::default();
        cfg.apply(&BTreeMap::from([(
            "haAuthToken".to_string(),
            "hunter2".to_string(),
        )]))
        .unwrap();
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
            let mut cfg = BrokerConfig::default();
            let err = cfg
                .apply(&BTreeMap::from([(k.to_string(), v.to_string())]))
                .unwrap_err();
            assert!(err.0.contains(k), "{err}");
        }
        let mut cfg = BrokerConfig::default();
        let props = BTreeMap::from([("brokerRole".to_string(), "SLAVE".to_string())]);
        assert!(cfg.apply(&props).unwrap_err().0.contains("brokerId"));
    }
}
