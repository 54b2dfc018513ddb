//! GET_BROKER_CONFIG (26) and UPDATE_BROKER_CONFIG (25). Both bodies are Java properties
//! text (`key=value` lines), as `MixAll.properties2String` writes them.
//!
//! Only keys listed in [`RUNTIME_KEYS`] change while the broker runs, each through a
//! setter that takes effect at once; any other key of `broker.conf` is refused with
//! NO_PERMISSION naming it (set it in the file and restart), an unknown key with
//! INVALID_PARAMETER. A request is applied whole or not at all.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use super::{error, success};
use crate::config::keys;
use crate::{Broker, BrokerConfig};
use ringmq_engine::sync::lock;
use ringmq_remoting::codes::response_code as rs;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// A key that may change at runtime: its parser-and-applier.
struct RuntimeKey {
    name: &'static str,
    /// Checks `value`; `apply` false only checks.
    set: fn(&Broker, &str, bool) -> Result<(), String>,
}

const RUNTIME_KEYS: &[RuntimeKey] = &[RuntimeKey {
    name: "rebalanceLockMaxLiveTime",
    set: set_rebalance_lock_max_live,
}];

/// The names of the keys UPDATE_BROKER_CONFIG accepts.
pub fn runtime_key_names() -> Vec<&'static str> {
    RUNTIME_KEYS.iter().map(|k| k.name).collect()
}

fn set_rebalance_lock_max_live(b: &Broker, v: &str, apply: bool) -> Result<(), String> {
    let ms: u64 = v
        .trim()
        .parse()
        .ok()
        .filter(|&ms| ms > 0)
        .ok_or("milliseconds > 0")?;
    if apply {
        b.locks.set_max_live(Duration::from_millis(ms));
    }
    Ok(())
}

/// Bumped on every accepted UPDATE_BROKER_CONFIG (the `version` response field).
static VERSION: AtomicI64 = AtomicI64::new(0);

/// GET_BROKER_CONFIG (26): every key ringmq reads with its value in effect, the runtime
/// changes included; `haAuthToken` is masked.
pub fn get_broker_config(b: &Broker, req: &RemotingCommand) -> Result<RemotingCommand, FrameError> {
    let mut props = config_properties(&b.cfg);
    props.insert(
        "rebalanceLockMaxLiveTime".into(),
        b.locks.max_live().as_millis().to_string(),
    );
    props.extend(lock(&b.ops.config_overrides).clone());
    let body: String = props.iter().map(|(k, v)| format!("{k}={v}\n")).collect();
    let version = format!(
        "{{\"counter\":{},\"stateVersion\":0,\"timestamp\":{}}}",
        VERSION.load(Ordering::Relaxed),
        b.started.elapsed().as_millis()
    );
    Ok(success(req).with_ext("version", version).with_body(body))
}

/// UPDATE_BROKER_CONFIG (25): applies runtime keys from a properties body.
pub fn update_broker_config(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let text = String::from_utf8_lossy(&req.body);
    let props = match BrokerConfig::parse_properties(&text) {
        Ok(p) if !p.is_empty() => p,
        Ok(_) => {
            return Ok(error(
                req,
                rs::INVALID_PARAMETER,
                "no key=value in the body",
            ))
        }
        Err(e) => return Ok(error(req, rs::INVALID_PARAMETER, e.to_string())),
    };
    let mut chosen = Vec::new();
    for (name, value) in &props {
        match RUNTIME_KEYS.iter().find(|k| k.name == name) {
            Some(k) => {
                if let Err(expected) = (k.set)(b, value, false) {
                    return Ok(error(
                        req,
                        rs::INVALID_PARAMETER,
                        format!("{name}={value}: expected {expected}"),
                    ));
                }
                chosen.push((k, value));
            }
            None if keys::find(name).is_some() => {
                return Ok(error(
                    req,
                    rs::NO_PERMISSION,
                    format!(
                        "{name} cannot change while the broker runs; set it in broker.conf and restart (runtime keys: {})",
                        runtime_key_names().join(", ")
                    ),
                ))
            }
            None => {
                return Ok(error(
                    req,
                    rs::INVALID_PARAMETER,
                    format!("unknown config key {name}"),
                ))
            }
        }
    }
    let mut overrides = lock(&b.ops.config_overrides);
    for (k, value) in chosen {
        (k.set)(b, value, true).expect("checked above");
        overrides.insert(k.name.to_string(), value.trim().to_string());
        tracing::info!(
            key = k.name,
            value,
            "broker config changed by admin request"
        );
    }
    VERSION.fetch_add(1, Ordering::Relaxed);
    Ok(success(req))
}

/// `cfg` as `broker.conf` properties (RocketMQ's key names).
pub fn config_properties(c: &BrokerConfig) -> BTreeMap<String, String> {
    let ms = |d: Duration| d.as_millis().to_string();
    let opt = |o: &Option<String>| o.clone().unwrap_or_default();
    let list = |v: &[usize]| v.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    let levels = (1..=c.message_delay_level.max_level())
        .map(|l| human_ms(c.message_delay_level.delay_ms(l)))
        .collect::<Vec<_>>()
        .join(" ");
    let pairs: Vec<(&str, String)> = vec![
        ("brokerClusterName", c.broker_cluster_name.clone()),
        ("brokerName", c.broker_name.clone()),
        ("brokerId", c.broker_id.to_string()),
        ("brokerIP1", c.broker_ip.to_string()),
        ("listenPort", c.listen_port.to_string()),
        ("namesrvAddr", opt(&c.namesrv_addr)),
        ("regionId", c.region_id.clone()),
        ("traceOn", c.trace_on.to_string()),
        (
            "storePathRootDir",
            c.store_path_root_dir.display().to_string(),
        ),
        (
            "flushDiskType",
            if c.sync_flush {
                "SYNC_FLUSH"
            } else {
                "ASYNC_FLUSH"
            }
            .into(),
        ),
        (
            "enabledAppendPropCRC",
            c.enabled_append_prop_crc.to_string(),
        ),
        ("syncFlushTimeout", ms(c.sync_flush_timeout)),
        ("flushIntervalCommitLog", ms(c.flush_interval_commit_log)),
        (
            "mappedFileSizeCommitLog",
            c.mapped_file_size_commit_log.to_string(),
        ),
        (
            "mappedFileSizeConsumeQueue",
            c.mapped_file_size_consume_queue.to_string(),
        ),
        ("maxMessageSize", c.max_message_size.to_string()),
        ("messageDelayLevel", levels),
        (
            "autoCreateTopicEnable",
            c.auto_create_topic_enable.to_string(),
        ),
        (
            "autoCreateSubscriptionGroup",
            c.auto_create_subscription_group.to_string(),
        ),
        (
            "defaultTopicQueueNums",
            c.default_topic_queue_nums.to_string(),
        ),
        ("longPollingEnable", c.long_polling_enable.to_string()),
        ("shortPollingTimeMills", ms(c.short_polling_time)),
        ("brokerRole", c.broker_role.name().into()),
        ("haListenPort", c.ha_listen_port.to_string()),
        ("haMasterAddress", opt(&c.ha_master_address)),
        ("inSyncReplicas", c.in_sync_replicas.to_string()),
        ("haMaxGapNotInSync", c.ha_max_gap_not_in_sync.to_string()),
        (
            "haAuthToken",
            if c.ha_auth_token.is_some() {
                "******"
            } else {
                ""
            }
            .into(),
        ),
        ("haSendHeartbeatInterval", ms(c.ha_send_heartbeat_interval)),
        ("haHousekeepingInterval", ms(c.ha_housekeeping_interval)),
        ("haTransferBatchSize", c.ha_transfer_batch_size.to_string()),
        (
            "slaveSyncInitialDelayMillis",
            ms(c.slave_sync_initial_delay),
        ),
        ("slaveSyncIntervalMillis", ms(c.slave_sync_interval)),
        ("masterRemotingAddress", opt(&c.master_remoting_address)),
        ("maxFrameSize", c.max_frame_size.to_string()),
        ("netCores", list(&c.net_cores)),
        ("writerCore", c.writer_core.to_string()),
        ("dispatchCore", c.dispatch_core.to_string()),
        ("haCore", c.ha_core.to_string()),
        ("pinThreads", c.pin_threads.to_string()),
        ("tailRingBytes", c.tail_ring_bytes.to_string()),
        ("writerSpinMicros", c.writer_spin_us.to_string()),
        ("metricsExporterType", c.metrics_exporter_type.clone()),
        (
            "metricsPromExporterHost",
            c.metrics_prom_exporter_host.clone(),
        ),
        (
            "metricsPromExporterPort",
            c.metrics_prom_exporter_port.to_string(),
        ),
    ];
    pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
}

/// A delay as RocketMQ's `messageDelayLevel` writes it (`1s 5m 2h 1d`).
fn human_ms(ms: i64) -> String {
    for (unit, name) in [
        (86_400_000, "d"),
        (3_600_000, "h"),
        (60_000, "m"),
        (1000, "s"),
    ] {
        if ms >= unit && ms % unit == 0 {
            return format!("{}{name}", ms / unit);
        }
    }
    format!("{ms}ms")
}
