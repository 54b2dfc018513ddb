//! The `broker.conf` key table: one row per key with its RocketMQ name, the type of its
//! value, its default (as it would be written in the file) and the setter that stores a
//! value in [`BrokerConfig`]. Read once at start-up by [`BrokerConfig::from_properties`].
//!
//! A setter parses and checks one value and answers what it expected when the value is
//! bad; the caller names the key in the error. A row with a `derive` rule has a default
//! that depends on other keys; the rule runs after every explicit value is in, and only
//! when nobody set the key (a rule reads only keys that are never derived).

use std::path::PathBuf;
use std::time::Duration;

use ringmq_engine::delay_levels::{DelayLevels, DEFAULT_LEVELS};

use super::{BrokerConfig, BrokerRole, ConfigError, Secret};

/// Stores a value; `Err` says what a good value looks like.
pub type Setter = fn(&mut BrokerConfig, &str, &mut Vec<String>) -> Result<(), &'static str>;

/// Computes a default from other keys.
pub type Derive = fn(&mut BrokerConfig) -> Result<(), ConfigError>;

/// One `broker.conf` key.
pub struct Key {
    /// RocketMQ's spelling.
    pub name: &'static str,
    /// What a value looks like.
    pub ty: &'static str,
    /// The default as written in a file; for a derived key, its rule.
    pub default: &'static str,
    pub set: Setter,
    /// For a key whose default depends on other keys.
    pub derive: Option<Derive>,
}

const fn key(name: &'static str, ty: &'static str, default: &'static str, set: Setter) -> Key {
    Key {
        name,
        ty,
        default,
        set,
        derive: None,
    }
}

impl Key {
    const fn derived(self, derive: Derive) -> Key {
        Key {
            derive: Some(derive),
            ..self
        }
    }
}

/// A setter storing `parse(value)` in `field`.
macro_rules! field {
    ($field:ident, $parse:expr) => {
        |c: &mut BrokerConfig, v: &str, _: &mut Vec<String>| {
            c.$field = $parse(v)?;
            Ok(())
        }
    };
}

/// Every key ringmq reads. Keys RocketMQ has that ringmq does not need are in
/// [`NO_EFFECT`]; any other key is warned about as unknown.
#[rustfmt::skip]
pub const KEYS: &[Key] = &[
    // Identity and addresses.
    key("brokerClusterName", "string", "DefaultCluster", field!(broker_cluster_name, non_empty)),
    key("brokerName", "string", "broker-a", field!(broker_name, non_empty)),
    key("brokerId", "i64", "0", field!(broker_id, num)),
    key("brokerIP1", "IP address", "127.0.0.1", field!(broker_ip, ip)),
    key("listenPort", "u16", "10911", field!(listen_port, num)),
    key("namesrvAddr", "host:port;host:port", "", field!(namesrv_addr, optional)),
    key("registerNameServerPeriod", "ms, held to 10000..60000", "30000",
        field!(register_name_server_period, register_period)),
    key("regionId", "string", "DefaultRegion", field!(region_id, non_empty)),
    key("traceOn", "bool", "true", field!(trace_on, boolean)),
    // Store.
    key("storePathRootDir", "path", "./store", field!(store_path_root_dir, path)),
    key("storePathCommitLog", "path", "", warn_store_path_commit_log),
    key("ackBeforeWrite", "bool (loses acknowledged messages on a process crash)", "false",
        field!(ack_before_write, boolean)),
    key("tailRingShmDir", "tmpfs path; empty: private memory, ASYNC_FLUSH acks wait for the write",
        "/dev/shm", field!(tail_ring_shm_dir, optional_path)),
    key("enabledAppendPropCRC", "bool (20 more bytes per record: a CRC of the whole record)", "false",
        field!(enabled_append_prop_crc, boolean)),
    key("flushDiskType", "ASYNC_FLUSH | SYNC_FLUSH", "ASYNC_FLUSH",
        field!(sync_flush, flush_disk_type)),
    key("syncFlushTimeout", "ms > 0", "5000", field!(sync_flush_timeout, positive_ms)),
    key("flushIntervalCommitLog", "ms > 0", "500", field!(flush_interval_commit_log, positive_ms)),
    key("mappedFileSizeCommitLog", "bytes, multiple of 4096", "1073741824",
        field!(mapped_file_size_commit_log, page_multiple)),
    key("mappedFileSizeConsumeQueue", "bytes, multiple of 20", "6000000",
        field!(mapped_file_size_consume_queue, entry_multiple)),
    key("maxMessageSize", "bytes > 0", "4194304", field!(max_message_size, positive)),
    key("messageDelayLevel", "durations (1s 5m 2h 1d)", DEFAULT_LEVELS,
        field!(message_delay_level, delay_levels)),
    // Topics, subscriptions, pulls.
    key("autoCreateTopicEnable", "bool", "true", field!(auto_create_topic_enable, boolean)),
    key("autoCreateSubscriptionGroup", "bool", "true",
        field!(auto_create_subscription_group, boolean)),
    key("defaultTopicQueueNums", "i32 > 0", "8", field!(default_topic_queue_nums, positive)),
    key("longPollingEnable", "bool", "true", field!(long_polling_enable, boolean)),
    key("shortPollingTimeMills", "ms > 0", "1000", field!(short_polling_time, positive_ms)),
    // ACL.
    key("aclEnable", "bool", "false", field!(acl_enable, boolean)),
    key("plainAclFile", "path", "storePathRootDir/../conf/plain_acl.yml", field!(plain_acl_file, path))
        .derived(plain_acl_file_from_store_root),
    // Replication.
    key("brokerRole", "ASYNC_MASTER | SYNC_MASTER | SLAVE", "ASYNC_MASTER",
        field!(broker_role, broker_role)),
    key("haListenPort", "u16", "listenPort + 1 (0 if listenPort is 0)", field!(ha_listen_port, num))
        .derived(ha_listen_port_from_listen_port),
    key("haMasterAddress", "host:port", "", field!(ha_master_address, optional)),
    key("inSyncReplicas", "u32 > 0", "2 under SYNC_MASTER, else 1",
        field!(in_sync_replicas, positive))
        .derived(in_sync_replicas_from_role),
    key("allAckInSyncStateSet", "bool", "false", field!(all_ack_in_sync_state_set, boolean)),
    key("haMaxGapNotInSync", "bytes > 0", "268435456", field!(ha_max_gap_not_in_sync, positive)),
    key("haSlaveFallbehindMax", "bytes > 0", "268435456", field!(ha_max_gap_not_in_sync, positive)),
    key("haAuthToken", "string (secret)", "", field!(ha_auth_token, secret)),
    key("haSendHeartbeatInterval", "ms > 0", "5000",
        field!(ha_send_heartbeat_interval, positive_ms)),
    key("haHousekeepingInterval", "ms > 0", "20000", field!(ha_housekeeping_interval, positive_ms)),
    key("haTransferBatchSize", "bytes > 0", "32768", field!(ha_transfer_batch_size, positive)),
    key("slaveSyncInitialDelayMillis", "ms", "10000", field!(slave_sync_initial_delay, ms)),
    key("slaveSyncIntervalMillis", "ms > 0", "60000", field!(slave_sync_interval, positive_ms)),
    key("masterRemotingAddress", "host:port", "", field!(master_remoting_address, optional)),
    // ringmq's own.
    key("maxFrameSize", "bytes > 0", "16777216", field!(max_frame_size, positive)),
    key("maxTopicQueueNums", "1..=65536", "1024", field!(max_topic_queue_nums, queue_nums_limit)),
    // Limits per client and per broker.
    key("maxConnections", "count > 0", "10000", field!(max_connections, positive)),
    key("serverChannelMaxIdleTimeSeconds", "seconds (0: never)", "120",
        field!(server_channel_max_idle_time, seconds)),
    key("maxConnectionQueuedBytes", "bytes > 0", "33554432",
        field!(max_connection_queued_bytes, positive)),
    key("maxParkedPullsPerConnection", "count > 0", "1024",
        field!(max_parked_pulls_per_connection, positive)),
    key("maxParkedPulls", "count > 0", "65536", field!(max_parked_pulls, positive)),
    key("maxPullSuspendMillis", "ms > 0", "30000", field!(max_pull_suspend, positive_ms)),
    key("maxTopics", "count > 0", "100000", field!(max_topics, positive)),
    key("maxSubscriptionGroups", "count > 0", "100000", field!(max_subscription_groups, positive)),
    key("netCores", "core list (0,1)", "0", field!(net_cores, cores)),
    key("writerCore", "core", "0", field!(writer_core, num)),
    key("dispatchCore", "core", "1", field!(dispatch_core, num)),
    key("haCore", "core", "1", field!(ha_core, num)),
    key("pinThreads", "bool", "true", field!(pin_threads, boolean)),
    key("tailRingBytes", "bytes > 0", "67108864", field!(tail_ring_bytes, positive)),
    key("writerSpinMicros", "us", "50", field!(writer_spin_us, num)),
    // Metrics.
    key("metricsExporterType", "DISABLE | PROM", "DISABLE", field!(metrics_exporter_type, exporter_type)),
    key("metricsPromExporterHost", "host (empty: brokerIP1)", "", field!(metrics_prom_exporter_host, text)),
    key("metricsPromExporterPort", "u16", "5557", field!(metrics_prom_exporter_port, num)),
];

/// Keys RocketMQ has that ringmq accepts and does not need (each warned about).
pub const NO_EFFECT: &[&str] = &[
    "deleteWhen",
    "fileReservedTime",
    "brokerIP2",
    "sendMessageThreadPoolNums",
    "pullMessageThreadPoolNums",
    "transientStorePoolEnable",
    "useReentrantLockWhenPutMessage",
    "enablePropertyFilter",
];

pub fn find(name: &str) -> Option<&'static Key> {
    KEYS.iter().find(|k| k.name == name)
}

// Setters that do more than store a value.

/// `registerNameServerPeriod` from a file is held to RocketMQ's 10 s..60 s.
fn register_period(v: &str) -> Parsed<Duration> {
    Ok(positive_ms(v)?.clamp(crate::register::PERIOD_MIN, crate::register::PERIOD_MAX))
}

fn warn_store_path_commit_log(
    _: &mut BrokerConfig,
    _: &str,
    w: &mut Vec<String>,
) -> Result<(), &'static str> {
    w.push(
        "storePathCommitLog is ignored: the CommitLog lives in storePathRootDir/commitlog".into(),
    );
    Ok(())
}

// Derived defaults.

/// RocketMQ's convention: HA on the port after the remoting port. A broker asked for any
/// free remoting port (0) gets any free HA port too, not port 1.
fn ha_listen_port_from_listen_port(c: &mut BrokerConfig) -> Result<(), ConfigError> {
    c.ha_listen_port = match c.listen_port {
        0 => 0,
        p => p
            .checked_add(1)
            .ok_or_else(|| super::bad("listenPort", "65535", "below 65535"))?,
    };
    Ok(())
}

/// The accounts file sits in `conf/` beside the store, as in a RocketMQ install.
fn plain_acl_file_from_store_root(c: &mut BrokerConfig) -> Result<(), ConfigError> {
    c.plain_acl_file = super::plain_acl_file_beside(&c.store_path_root_dir);
    Ok(())
}

/// Under SYNC_MASTER inSyncReplicas defaults to 2 (the master and one slave): unlike
/// RocketMQ 5's default, SYNC_MASTER really waits for a slave unless told otherwise.
fn in_sync_replicas_from_role(c: &mut BrokerConfig) -> Result<(), ConfigError> {
    c.in_sync_replicas = if c.broker_role == BrokerRole::SyncMaster {
        2
    } else {
        1
    };
    Ok(())
}

// Value parsers: `Err` says what was expected.

type Parsed<T> = Result<T, &'static str>;

fn queue_nums_limit(v: &str) -> Parsed<i32> {
    let n: i32 = num(v)?;
    if (1..=ringmq_engine::consumequeue::MAX_QUEUE_ID + 1).contains(&n) {
        Ok(n)
    } else {
        Err("1..=65536 (queue ids of a ConsumeQueue store are 0..=65535)")
    }
}

fn exporter_type(v: &str) -> Parsed<String> {
    match v.trim().to_ascii_uppercase().as_str() {
        t @ ("DISABLE" | "PROM") => Ok(t.to_string()),
        _ => Err("DISABLE or PROM (OTLP_GRPC and LOG are not served by ringmq)"),
    }
}

fn text(v: &str) -> Parsed<String> {
    Ok(v.trim().to_string())
}

fn non_empty(v: &str) -> Parsed<String> {
    if v.is_empty() {
        return Err("a non-empty string");
    }
    Ok(v.to_string())
}

/// Empty means unset.
fn optional(v: &str) -> Parsed<Option<String>> {
    Ok((!v.is_empty()).then(|| v.to_string()))
}

fn secret(v: &str) -> Parsed<Option<Secret>> {
    Ok(optional(v)?.map(Secret))
}

fn optional_path(v: &str) -> Parsed<Option<PathBuf>> {
    Ok((!v.is_empty()).then(|| PathBuf::from(v)))
}

fn path(v: &str) -> Parsed<PathBuf> {
    non_empty(v).map(PathBuf::from)
}

fn ip(v: &str) -> Parsed<std::net::IpAddr> {
    v.parse().map_err(|_| "an IP address")
}

fn num<T: std::str::FromStr>(v: &str) -> Parsed<T> {
    v.parse().map_err(|_| "a number in range")
}

fn positive<T: std::str::FromStr + Default + PartialOrd>(v: &str) -> Parsed<T> {
    let n: T = num(v)?;
    if n <= T::default() {
        return Err("a positive number");
    }
    Ok(n)
}

fn seconds(v: &str) -> Parsed<Duration> {
    Ok(Duration::from_secs(num(v)?))
}

fn ms(v: &str) -> Parsed<Duration> {
    num(v).map(Duration::from_millis)
}

fn positive_ms(v: &str) -> Parsed<Duration> {
    positive(v).map(Duration::from_millis)
}

fn page_multiple(v: &str) -> Parsed<u64> {
    let size: u64 = positive(v)?;
    if !size.is_multiple_of(4096) {
        return Err("a multiple of 4096");
    }
    Ok(size)
}

fn entry_multiple(v: &str) -> Parsed<u64> {
    let size: u64 = positive(v)?;
    if !size.is_multiple_of(20) {
        return Err("a multiple of 20");
    }
    Ok(size)
}

fn boolean(v: &str) -> Parsed<bool> {
    match v.to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err("true or false"),
    }
}

fn broker_role(v: &str) -> Parsed<BrokerRole> {
    match v.to_ascii_uppercase().as_str() {
        "ASYNC_MASTER" => Ok(BrokerRole::AsyncMaster),
        "SYNC_MASTER" => Ok(BrokerRole::SyncMaster),
        "SLAVE" => Ok(BrokerRole::Slave),
        _ => Err("ASYNC_MASTER, SYNC_MASTER or SLAVE"),
    }
}

/// true = SYNC_FLUSH.
fn flush_disk_type(v: &str) -> Parsed<bool> {
    match v.to_ascii_uppercase().as_str() {
        "SYNC_FLUSH" => Ok(true),
        "ASYNC_FLUSH" => Ok(false),
        _ => Err("SYNC_FLUSH or ASYNC_FLUSH"),
    }
}

fn cores(v: &str) -> Parsed<Vec<usize>> {
    let cores = v
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| "a comma-separated list of core numbers")?;
    if cores.is_empty() {
        return Err("at least one core");
    }
    Ok(cores)
}

fn delay_levels(v: &str) -> Parsed<DelayLevels> {
    DelayLevels::parse(v)
        .map_err(|_| "space-separated durations such as \"1s 5s 10s 30s 1m 2h 1d\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_apart_from_the_no_effect_keys() {
        let mut names: Vec<&str> = KEYS
            .iter()
            .map(|k| k.name)
            .chain(NO_EFFECT.iter().copied())
            .collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n, "a key is listed twice");
    }

    /// The default column says what `BrokerConfig::default()` holds: writing every
    /// default into a file changes nothing.
    #[test]
    fn the_default_column_matches_the_defaults() {
        let expected = format!("{:?}", BrokerConfig::default());
        for k in KEYS {
            let mut c = BrokerConfig::default();
            match k.derive {
                Some(derive) => derive(&mut c).unwrap(),
                None => (k.set)(&mut c, k.default, &mut Vec::new()).unwrap(),
            }
            assert_eq!(format!("{c:?}"), expected, "default of {}", k.name);
        }
    }
}
