//! The `/metrics` document: RocketMQ 5's metric names and labels where RocketMQ has the
//! metric (`BrokerMetricsConstant`, `DefaultStoreMetricsConstant`,
//! `RemotingMetricsConstant`), ringmq's own under `ringmq_`. Everything is read from the
//! broker's counters when scraped (a `prometheus_client` collector), so producing and
//! consuming pay only for their relaxed adds.
//!
//! Every sample carries `cluster`, `node_type="broker"` and `node_id` (the broker name).

use std::borrow::Cow;
use std::sync::Weak;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;

use crate::admin::is_system_topic;
use crate::Broker;
use ringmq_engine::commitlog::Level;
use ringmq_engine::meta::TOPIC_GROUP_SEPARATOR;
use ringmq_ha::transfer::{path_stats, PathKind};
use ringmq_remoting::codes::{request_code, response_code};

type Labels = Vec<(&'static str, String)>;

/// The registry a scrape encodes: the broker's constant labels and one collector.
pub fn registry(b: &std::sync::Arc<Broker>) -> Registry {
    let labels: Vec<(Cow<'static, str>, Cow<'static, str>)> = vec![
        ("cluster".into(), b.cfg.broker_cluster_name.clone().into()),
        ("node_type".into(), "broker".into()),
        ("node_id".into(), b.cfg.broker_name.clone().into()),
    ];
    let mut r = Registry::with_labels(labels.into_iter());
    r.register_collector(Box::new(BrokerCollector {
        broker: std::sync::Arc::downgrade(b),
    }));
    r
}

/// Renders the Prometheus text format (0.0.4).
pub fn render(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::prometheus_text::encode(&mut out, registry).is_err() {
        out.clear();
    }
    out
}

pub const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

#[derive(Debug)]
struct BrokerCollector {
    broker: Weak<Broker>,
}

fn counter(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, u64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Counter)?;
    for (labels, v) in samples {
        ConstCounter::new(*v).encode(m.encode_family(labels)?)?;
    }
    Ok(())
}

fn gauge(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(Labels, i64)],
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, MetricType::Gauge)?;
    for (labels, v) in samples {
        m.encode_family(labels)?.encode_gauge(v)?;
    }
    Ok(())
}

fn is_system(topic: &str) -> String {
    (is_system_topic(topic) || topic.starts_with("rmq_sys")).to_string()
}

fn code_name(name: Option<&str>, code: i32) -> String {
    name.map_or_else(|| code.to_string(), str::to_ascii_lowercase)
}

impl Collector for BrokerCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let Some(b) = self.broker.upgrade() else {
            return Ok(());
        };
        let m = &b.metrics;

        // Messages and bytes in, per topic.
        let ins = m.topics_in.snapshot();
        let in_labels = |t: &str| -> Labels {
            vec![
                ("topic", t.to_string()),
                ("message_type", "Normal".into()),
                ("is_system", is_system(t)),
            ]
        };
        let msgs: Vec<_> = ins.iter().map(|(t, n, _)| (in_labels(t), *n)).collect();
        let bytes: Vec<_> = ins.iter().map(|(t, _, s)| (in_labels(t), *s)).collect();
        counter(
            &mut enc,
            "rocketmq_messages_in",
            "Messages stored, per topic.",
            &msgs,
        )?;
        counter(
            &mut enc,
            "rocketmq_throughput_in",
            "Message body bytes stored, per topic.",
            &bytes,
        )?;

        {
            let mut h = enc.encode_descriptor(
                "rocketmq_message_size",
                "Body sizes of stored messages, in bytes.",
                None,
                MetricType::Histogram,
            )?;
            let load =
                |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
            let mut buckets: Vec<(f64, u64)> = super::SIZE_BOUNDS
                .iter()
                .zip(&m.message_size.buckets)
                .map(|(b, c)| (*b as f64, load(c)))
                .collect();
            buckets.push((
                f64::INFINITY,
                load(&m.message_size.buckets[super::SIZE_BOUNDS.len()]),
            ));
            let count = buckets.iter().map(|(_, c)| c).sum();
            let labels: Labels = vec![("message_type", "Normal".into())];
            h.encode_family(&labels)?.encode_histogram::<NoLabelSet>(
                load(&m.message_size.sum) as f64,
                count,
                &buckets,
                None,
            )?;
        }
        let dlq: Vec<_> = m
            .dlq
            .snapshot()
            .into_iter()
            .map(|(g, n, _)| (vec![("consumer_group", g)], n))
            .collect();
        counter(
            &mut enc,
            "rocketmq_send_to_dlq_messages",
            "Messages sent back into the group's dead-letter topic.",
            &dlq,
        )?;

        // Messages and bytes out, per topic and group.
        let outs = m.out_snapshot();
        let out_labels = |t: &str, g: &str| -> Labels {
            vec![
                ("topic", t.to_string()),
                ("consumer_group", g.to_string()),
                ("is_retry", t.starts_with("%RETRY%").to_string()),
                ("is_system", is_system(t)),
            ]
        };
        let msgs: Vec<_> = outs
            .iter()
            .map(|(t, g, n, _)| (out_labels(t, g), *n))
            .collect();
        let bytes: Vec<_> = outs
            .iter()
            .map(|(t, g, _, s)| (out_labels(t, g), *s))
            .collect();
        counter(
            &mut enc,
            "rocketmq_messages_out",
            "Messages pulled, per topic and consumer group.",
            &msgs,
        )?;
        counter(
            &mut enc,
            "rocketmq_throughput_out",
            "Stored bytes pulled, per topic and consumer group.",
            &bytes,
        )?;

        // Connections.
        let (producers, consumers) = b.clients.connection_counts();
        let total: usize = producers.iter().map(|(_, n)| n).sum();
        gauge(
            &mut enc,
            "rocketmq_producer_connections",
            "Producer connections.",
            &[(vec![], total as i64)],
        )?;
        let per_group: Vec<_> = consumers
            .iter()
            .map(|(g, n)| (vec![("consumer_group", g.clone())], *n as i64))
            .collect();
        gauge(
            &mut enc,
            "rocketmq_consumer_connections",
            "Consumer connections, per group.",
            &per_group,
        )?;

        // Lag: broker max offset minus committed offset, summed over the queues.
        let offsets = b.consumer_offsets.snapshot();
        let mut lag: Vec<(Labels, i64)> = Vec::new();
        for (key, queues) in &offsets.offset_table {
            let Some((topic, group)) = key.rsplit_once(TOPIC_GROUP_SEPARATOR) else {
                continue;
            };
            let behind: i64 = queues
                .iter()
                .map(|(qid, committed)| {
                    (b.store.max_offset_in_queue(topic, *qid) - committed).max(0)
                })
                .sum();
            lag.push((
                vec![
                    ("topic", topic.to_string()),
                    ("consumer_group", group.to_string()),
                    ("is_retry", topic.starts_with("%RETRY%").to_string()),
                    ("is_system", is_system(topic)),
                ],
                behind,
            ));
        }
        gauge(
            &mut enc,
            "rocketmq_consumer_lag_messages",
            "Messages stored and not yet committed by the group, per topic.",
            &lag,
        )?;

        // In flight: pulled (the group's pull offset) minus committed, per topic.
        let mut inflight: Vec<(Labels, i64)> = Vec::new();
        for (topic, group, marks) in m.pull_offsets.snapshot() {
            let key = format!("{topic}{TOPIC_GROUP_SEPARATOR}{group}");
            let committed = offsets.offset_table.get(&key);
            let n = super::inflight::in_flight(
                &marks,
                |q| committed.and_then(|c| c.get(&q).copied()),
                |q| b.store.min_offset_in_queue(&topic, q),
            );
            inflight.push((
                vec![
                    ("is_retry", topic.starts_with("%RETRY%").to_string()),
                    ("is_system", is_system(&topic)),
                    ("topic", topic),
                    ("consumer_group", group),
                ],
                n,
            ));
        }
        gauge(
            &mut enc,
            "rocketmq_consumer_inflight_messages",
            "Messages the group has pulled and not yet committed, per topic.",
            &inflight,
        )?;

        // Storage.
        let log = b.store.commitlog();
        let (min, max) = (log.min_offset(), log.max_offset());
        let durable = log.progress().get(Level::Durable);
        let dispatched = b.store.dispatched_offset();
        gauge(
            &mut enc,
            "rocketmq_storage_size",
            "CommitLog bytes held (max offset - min offset).",
            &[(vec![], (max - min).max(0))],
        )?;
        gauge(
            &mut enc,
            "rocketmq_storage_flush_behind_bytes",
            "CommitLog bytes not yet durable.",
            &[(vec![], (max - durable).max(0))],
        )?;
        gauge(
            &mut enc,
            "rocketmq_storage_dispatch_behind_bytes",
            "CommitLog bytes not yet in a ConsumeQueue.",
            &[(vec![], (max - dispatched).max(0))],
        )?;

        // RPC latency.
        {
            let mut h = enc.encode_descriptor(
                "rocketmq_rpc_latency",
                "Request latency in milliseconds, by request and response code.",
                None,
                MetricType::Histogram,
            )?;
            for ((rq, rs), hist) in m.rpc.snapshot() {
                let labels: Labels = vec![
                    ("protocol_type", "remoting".into()),
                    ("request_code", code_name(request_code::name(rq), rq)),
                    ("response_code", code_name(response_code::name(rs), rs)),
                ];
                let (sum, count, buckets) = hist.snapshot();
                h.encode_family(&labels)?
                    .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
            }
        }

        // ringmq's own.
        let f = &m.send_failures;
        let load = |a: &std::sync::atomic::AtomicU64| a.load(std::sync::atomic::Ordering::Relaxed);
        counter(
            &mut enc,
            "ringmq_send_failures",
            "Send answers that failed the durability or replication promise, by code.",
            &[
                (
                    vec![("code", "FLUSH_DISK_TIMEOUT".into())],
                    load(&f.flush_disk_timeout),
                ),
                (
                    vec![("code", "SLAVE_NOT_AVAILABLE".into())],
                    load(&f.slave_not_available),
                ),
                (
                    vec![("code", "FLUSH_SLAVE_TIMEOUT".into())],
                    load(&f.flush_slave_timeout),
                ),
            ],
        )?;
        gauge(
            &mut enc,
            "ringmq_sync_master_waiters",
            "SYNC_MASTER sends stored locally and waiting for their slaves.",
            &[(
                vec![],
                m.replica_waiters.load(std::sync::atomic::Ordering::Relaxed),
            )],
        )?;
        {
            let mut h = enc.encode_descriptor(
                "ringmq_sync_master_wait",
                "How long SYNC_MASTER sends waited for their slaves after the local store, in milliseconds.",
                None,
                MetricType::Histogram,
            )?;
            let (sum, count, buckets) = m.replica_wait.snapshot();
            h.encode_family(&Labels::new())?
                .encode_histogram::<NoLabelSet>(sum, count, &buckets, None)?;
        }
        let stats = log.stats();
        {
            let mut h = enc.encode_descriptor(
                "ringmq_flush_latency",
                "CommitLog flushes (SYNC_FLUSH: each durable write; ASYNC_FLUSH: each fdatasync), submission to completion, in microseconds.",
                None,
                MetricType::Histogram,
            )?;
            let (sum, count, buckets) = stats.flush_us.snapshot();
            let mode = if log.config().flush_mode == ringmq_engine::commitlog::FlushMode::Sync {
                "SYNC_FLUSH"
            } else {
                "ASYNC_FLUSH"
            };
            h.encode_family(&vec![("flush_disk_type", mode.to_string())])?
                .encode_histogram::<NoLabelSet>(sum as f64, count, &buckets, None)?;
        }
        {
            let mut h = enc.encode_descriptor(
                "ringmq_group_commit_appends",
                "Appends answered by one durable step (SYNC_FLUSH group commit size).",
                None,
                MetricType::Histogram,
            )?;
            let (sum, count, buckets) = stats.group_commit.snapshot();
            h.encode_family(&Labels::new())?
                .encode_histogram::<NoLabelSet>(sum as f64, count, &buckets, None)?;
        }
        counter(
            &mut enc,
            "ringmq_io_uring_submissions",
            "The CommitLog writer's io_uring: operations queued (sqes) and io_uring_enter calls (enters).",
            &[
                (
                    vec![("ring", "commitlog".into()), ("what", "sqes".into())],
                    load(&stats.uring_sqes),
                ),
                (
                    vec![("ring", "commitlog".into()), ("what", "enters".into())],
                    load(&stats.uring_enters),
                ),
            ],
        )?;
        let slaves = m.slaves();
        let lag: Vec<_> = slaves
            .iter()
            .map(|s| {
                let acked = s.acked_end.unwrap_or(min);
                (vec![("slave", s.addr.to_string())], (max - acked).max(0))
            })
            .collect();
        gauge(
            &mut enc,
            "ringmq_replication_lag_bytes",
            "CommitLog bytes the master holds that a slave has not acknowledged, per slave.",
            &lag,
        )?;
        gauge(
            &mut enc,
            "ringmq_replication_slaves",
            "Slaves connected to this master.",
            &[(vec![], slaves.len() as i64)],
        )?;
        let mut moved = Vec::new();
        for kind in PathKind::ALL {
            let s = path_stats(kind);
            for (how, v) in [
                ("spliced", s.spliced_bytes),
                ("copied", s.copied_bytes),
                ("zero_copy", s.zc_bytes),
            ] {
                moved.push((vec![("path", kind.name().into()), ("how", how.into())], v));
            }
        }
        counter(
            &mut enc,
            "ringmq_ha_transfer_bytes",
            "CommitLog bytes sent to slaves, by transfer path and how they left.",
            &moved,
        )?;
        Ok(())
    }
}
