//! GET_BROKER_RUNTIME_INFO (28): the table `admin` builds (versions, offsets, disk ratio)
//! plus the rates and totals mqadmin's brokerStatus prints, from the metrics counters.

use std::sync::atomic::Ordering;
use std::time::Instant;

use serde_json::json;

use super::success;
use crate::metrics::tps::{format_rates, Totals};
use crate::Broker;
use ringmq_remoting::command::RemotingCommand;
use ringmq_remoting::error::FrameError;

/// The broker's totals now (messages put and got, bytes got).
pub fn totals(b: &Broker) -> Totals {
    Totals {
        put: b.stats.msgs_put.load(Ordering::Relaxed),
        got: b.stats.msgs_got.load(Ordering::Relaxed),
        got_bytes: b.metrics.got_bytes.load(Ordering::Relaxed),
    }
}

pub fn get_broker_runtime_info(
    b: &Broker,
    req: &RemotingCommand,
) -> Result<RemotingCommand, FrameError> {
    let mut t = crate::admin::runtime_table(b);
    let now = totals(b);
    let rates = b.metrics.tps.rates(Instant::now(), now);
    let put = format_rates(rates.map(|r| r.0));
    let got = format_rates(rates.map(|r| r.1));
    let (stored_msgs, stored_bytes) = b
        .metrics
        .topics_in
        .snapshot()
        .iter()
        .fold((0u64, 0u64), |(m, s), (_, dm, ds)| (m + dm, s + ds));
    let avg = if stored_msgs > 0 {
        stored_bytes as f64 / stored_msgs as f64
    } else {
        0.0
    };
    let f = b
        .metrics
        .send_failures
        .flush_disk_timeout
        .load(Ordering::Relaxed);
    let pairs = [
        ("putTps", put),
        // Java's spelling, which mqadmin and dashboards read; the corrected one beside it.
        ("getTransferedTps", got.clone()),
        ("getTransferredTps", got.clone()),
        ("getFoundTps", got.clone()),
        ("getTotalTps", got),
        ("getMissTps", format_rates([0.0; 3])),
        ("putMessageTimesTotal", now.put.to_string()),
        ("putMessageSizeTotal", stored_bytes.to_string()),
        ("putMessageAverageSize", format!("{avg:.2}")),
        ("getMessageTransferedBytes", now.got_bytes.to_string()),
        ("flushDiskTimeoutTimes", f.to_string()),
    ];
    for (k, v) in pairs {
        t.insert(k.to_string(), v);
    }
    let body = json!({ "table": t }).to_string();
    Ok(success(req).with_body(body))
}
