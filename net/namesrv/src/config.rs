//! Name server settings: RocketMQ's `namesrv.conf` keys (Java properties, `key=value`)
//! where they exist, their defaults, and the few ringmq adds. Unknown keys are warned
//! about; a bad value is refused with its key named.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::routes::DEFAULT_BROKER_EXPIRY;

#[derive(Debug, Clone)]
pub struct NamesrvConfig {
    /// `bindAddress` (RocketMQ: 0.0.0.0; ringmq: 127.0.0.1 unless told otherwise).
    pub bind_address: IpAddr,
    /// `listenPort` (9876).
    pub listen_port: u16,
    /// `kvConfigPath` (`$HOME/namesrv/kvConfig.json`).
    pub kv_config_path: PathBuf,
    /// `scanNotActiveBrokerInterval` in ms (5000): how often silent brokers are looked for.
    pub scan_not_active_broker_interval: Duration,
    /// `brokerChannelExpiredTime` in ms (ringmq key; RocketMQ's constant of that name is
    /// 120 s): expiry of a broker that registered without `heartbeatTimeoutMillis`.
    pub broker_channel_expired_time: Duration,
    /// `orderMessageEnable` (false): fill a route's `orderTopicConf` from the KV config.
    pub order_message_enable: bool,
    /// `returnOrderTopicConfigToBroker` (true): answer registrations with that namespace.
    pub return_order_topic_config_to_broker: bool,
    /// `enableAllTopicList` (true): serve GET_ALL_TOPIC_LIST_FROM_NAMESERVER.
    pub enable_all_topic_list: bool,
    /// `enableTopicList` (true): serve GET_TOPICS_BY_CLUSTER.
    pub enable_topic_list: bool,
    /// `deleteTopicWithBrokerRegistration` (false): a master's registration drops the
    /// group's topics missing from its table.
    pub delete_topic_with_broker_registration: bool,
}

impl Default for NamesrvConfig {
    fn default() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
        NamesrvConfig {
            bind_address: IpAddr::from([127, 0, 0, 1]),
            listen_port: 9876,
            kv_config_path: home.join("namesrv").join("kvConfig.json"),
            scan_not_active_broker_interval: Duration::from_secs(5),
            broker_channel_expired_time: DEFAULT_BROKER_EXPIRY,
            order_message_enable: false,
            return_order_topic_config_to_broker: true,
            enable_all_topic_list: true,
            enable_topic_list: true,
            delete_topic_with_broker_registration: false,
        }
    }
}

/// A refused setting, its key named.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Keys RocketMQ's name server knows that change nothing here.
const NO_EFFECT: &[&str] = &[
    "rocketmqHome",
    "configStorePath",
    "productEnvName",
    "clusterTest",
    "serverWorkerThreads",
    "serverCallbackExecutorThreads",
    "serverSelectorThreads",
    "serverOnewaySemaphoreValue",
    "serverAsyncSemaphoreValue",
    "serverChannelMaxIdleTimeSeconds",
    "serverSocketSndBufSize",
    "serverSocketRcvBufSize",
    "serverPooledByteBufAllocatorEnable",
    "useEpollNativeSelector",
    "defaultThreadPoolNums",
    "clientRequestThreadPoolNums",
    "defaultThreadPoolQueueCapacity",
    "clientRequestThreadPoolQueueCapacity",
    "unRegisterBrokerQueueCapacity",
    "supportActingMaster",
    "notifyMinBrokerIdChanged",
    "needWaitForService",
    "waitSecondsForService",
];

impl NamesrvConfig {
    /// Reads a `namesrv.conf`; returns the config and a warning per ignored key.
    pub fn load(path: &Path) -> Result<(Self, Vec<String>), ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
        let mut cfg = NamesrvConfig::default();
        let warnings = cfg.apply(&text)?;
        Ok((cfg, warnings))
    }

    /// Applies `key=value` lines (`#`/`!` comments, `=` or `:` separators).
    pub fn apply(&mut self, text: &str) -> Result<Vec<String>, ConfigError> {
        let mut warnings = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with('!') {
                continue;
            }
            let (key, value) = line
                .split_once(['=', ':'])
                .map_or((line, ""), |(k, v)| (k.trim(), v.trim()));
            match key {
                "bindAddress" => {
                    self.bind_address = value
                        .parse()
                        .map_err(|_| bad(key, value, "an IP address"))?
                }
                "listenPort" => self.listen_port = num(key, value)?,
                "kvConfigPath" if !value.is_empty() => self.kv_config_path = PathBuf::from(value),
                "scanNotActiveBrokerInterval" => {
                    self.scan_not_active_broker_interval = millis(key, value)?
                }
                "brokerChannelExpiredTime" => {
                    self.broker_channel_expired_time = millis(key, value)?
                }
                "orderMessageEnable" => self.order_message_enable = boolean(key, value)?,
                "returnOrderTopicConfigToBroker" => {
                    self.return_order_topic_config_to_broker = boolean(key, value)?
                }
                "enableAllTopicList" => self.enable_all_topic_list = boolean(key, value)?,
                "enableTopicList" => self.enable_topic_list = boolean(key, value)?,
                "deleteTopicWithBrokerRegistration" => {
                    self.delete_topic_with_broker_registration = boolean(key, value)?
                }
                k if NO_EFFECT.contains(&k) => warnings.push(format!(
                    "{k}={value} is accepted and has no effect in ringmq"
                )),
                k => warnings.push(format!("unknown config key {k} (ignored)")),
            }
        }
        Ok(warnings)
    }

    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.bind_address, self.listen_port)
    }
}

fn bad(key: &str, value: &str, expected: &str) -> ConfigError {
    ConfigError(format!("{key}={value:?}: expected {expected}"))
}

fn num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T, ConfigError> {
    v.parse().map_err(|_| bad(key, v, "a number"))
}

fn millis(key: &str, v: &str) -> Result<Duration, ConfigError> {
    match v.parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err(bad(key, v, "a positive number of milliseconds")),
    }
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
    fn reads_rocketmq_keys_and_names_bad_ones() {
        let mut cfg = NamesrvConfig::default();
        let warnings = cfg
            .apply(
                "# comment\nlistenPort=19876\nkvConfigPath=/tmp/x/kv.json\n\
                 scanNotActiveBrokerInterval=1000\nbrokerChannelExpiredTime = 3000\n\
                 orderMessageEnable=true\nrocketmqHome=/opt\nfoo=bar\n",
            )
            .unwrap();
        assert_eq!(cfg.listen_port, 19876);
        assert_eq!(cfg.kv_config_path, PathBuf::from("/tmp/x/kv.json"));
        assert_eq!(cfg.scan_not_active_broker_interval, Duration::from_secs(1));
        assert_eq!(cfg.broker_channel_expired_time, Duration::from_secs(3));
        assert!(cfg.order_message_enable);
        assert_eq!(warnings.len(), 2, "{warnings:?}");
        assert_eq!(cfg.listen_addr().to_string(), "127.0.0.1:19876");
        let e = cfg.apply("listenPort=abc").unwrap_err();
        assert!(e.0.contains("listenPort"), "{e}");
        assert!(cfg.apply("brokerChannelExpiredTime=0").is_err());
    }
}
