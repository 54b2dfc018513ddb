//! The end of a run: the [`RunSummary`] (printed, and saved as
//! `<name>.json` beside the `<name>.hgrm` percentile distribution of the send
//! latency), plus the generator's own account of itself: for an open loop the
//! rate it actually offered against the target, how late sends left their
//! timetable (scheduling lag), and how often the in-flight window was full —
//! and a plain flag when it could not keep its timetable.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::time::Instant;

use hdrhistogram::Histogram;

use super::produce::ConnOutcome;
use super::stats::{fmt_us, format_errors, new_hist, Counts};
use super::{BenchArgs, E2eFrom, HeaderArg};
use crate::report::summary::{Percentiles, RunSummary};

/// A schedule lag p99 above this means the timetable was not kept.
const LAG_LIMIT_US: u64 = 1000;

/// Facts of the run needed for the summary.
pub struct RunFacts {
    pub args: BenchArgs,
    pub addr: String,
    pub topic_note: String,
    pub queues: usize,
    pub run_id: String,
    pub measure_start: Instant,
    pub send_end: Instant,
}

/// What the consumers saw.
pub struct Consumed {
    pub lost: u64,
    pub duplicated: u64,
    /// Delivered numbers whose send had failed (stored anyway).
    pub unacked_seen: u64,
    /// Every acknowledged message arrived before the drain wait ended.
    pub complete: bool,
    pub e2e: Counts,
}

/// The open-loop generator check.
pub struct GeneratorCheck {
    pub target: f64,
    pub offered: f64,
    pub lag: Histogram<u64>,
    pub window_waits: u64,
    pub kept: bool,
}

pub struct Outcome {
    pub summary: RunSummary,
    pub hist: Histogram<u64>,
    pub generator: Option<GeneratorCheck>,
    pub consumed: Option<Consumed>,
    pub undrained: bool,
}

/// Percentiles of a microsecond histogram (zeros when empty).
pub fn percentiles(h: &Histogram<u64>) -> Percentiles {
    if h.is_empty() {
        return Percentiles {
            p50: 0.0,
            p90: 0.0,
            p99: 0.0,
            p999: 0.0,
            p9999: 0.0,
            max: 0.0,
            mean: 0.0,
        };
    }
    let q = |x: f64| h.value_at_quantile(x) as f64;
    Percentiles {
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        p9999: q(0.9999),
        max: h.max() as f64,
        mean: h.mean(),
    }
}

impl Outcome {
    pub fn build(
        f: &RunFacts,
        sends: &Counts,
        conns: &[ConnOutcome],
        consumed: Option<Consumed>,
    ) -> Outcome {
        let a = &f.args;
        let end = sends.last_done.unwrap_or(f.send_end).max(f.measure_start);
        let secs = (end - f.measure_start).as_secs_f64().max(1e-6);
        let mut s = BTreeMap::new();
        let mut set = |k: &str, v: String| {
            s.insert(k.to_owned(), v);
        };
        set("topic", a.topic.clone());
        set("topic_setup", f.topic_note.clone());
        set("queues", f.queues.to_string());
        set("connections", a.connections.to_string());
        set("inflight_per_connection", a.inflight.to_string());
        set("size_bytes", a.size.to_string());
        set("warmup_s", a.warmup_secs.to_string());
        match a.count {
            Some(c) => set("measure", format!("count {c}")),
            None => set(
                "measure",
                format!("duration {} s", a.duration_secs.unwrap_or(10.0)),
            ),
        }
        set("tags", a.tags.join(","));
        set("keys", a.keys.to_string());
        set(
            "header",
            match a.header {
                HeaderArg::Json => "json",
                HeaderArg::Binary => "binary",
            }
            .into(),
        );
        set("timeout_ms", a.timeout_ms.to_string());
        set("consumers", a.consumers.to_string());
        set("run_id", f.run_id.clone());
        set("self_test", a.self_test.to_string());
        let issued: u64 = conns.iter().map(|c| c.issued).sum();
        let measured_issued: u64 = conns.iter().map(|c| c.measured_issued).sum();
        let window_waits: u64 = conns.iter().map(|c| c.window_waits).sum();
        let undrained = conns.iter().any(|c| c.undrained);
        set("issued_total", issued.to_string());
        set("issued_measured", measured_issued.to_string());
        set("window_full_waits", window_waits.to_string());
        if !sends.warmup_errors.is_empty() {
            set("warmup_errors", format_errors(&sends.warmup_errors));
        }
        if undrained {
            set("undrained", "sends still outstanding at exit".into());
        }

        let generator = (a.rate > 0.0).then(|| {
            let mut lag = new_hist();
            for c in conns {
                lag.add(&c.lag).expect("same histogram bounds");
            }
            let last = conns.iter().filter_map(|c| c.last_issue).max();
            let offered = match last {
                Some(l) => {
                    measured_issued as f64
                        / ((l - f.measure_start).as_secs_f64() + 1.0 / a.rate).max(1e-6)
                }
                None => 0.0,
            };
            let lag_p99 = if lag.is_empty() {
                0
            } else {
                lag.value_at_quantile(0.99)
            };
            let kept = offered >= 0.99 * a.rate && lag_p99 <= LAG_LIMIT_US;
            GeneratorCheck {
                target: a.rate,
                offered,
                lag,
                window_waits,
                kept,
            }
        });
        if let Some(g) = &generator {
            set("offered_achieved_msgs_per_s", format!("{:.1}", g.offered));
            set("schedule_lag_us", lag_text(&g.lag));
            set("kept_timetable", g.kept.to_string());
        }
        if let Some(c) = &consumed {
            set(
                "e2e_from",
                match a.e2e {
                    E2eFrom::Send => "send",
                    E2eFrom::Store => "store",
                }
                .into(),
            );
            set("e2e_delivered_measured", c.e2e.total_ok.to_string());
            set("consumed_all", c.complete.to_string());
            set("seen_after_failed_send", c.unacked_seen.to_string());
            if !c.e2e.errors.is_empty() {
                set("consume_errors", format_errors(&c.e2e.errors));
            }
        }

        let summary = RunSummary {
            name: a.name.clone(),
            broker: f.addr.clone(),
            mode: if a.rate > 0.0 { "open" } else { "closed" }.into(),
            offered_rate: (a.rate > 0.0).then_some(a.rate),
            duration_s: secs,
            count: sends.total_ok,
            throughput_msgs_per_s: sends.total_ok as f64 / secs,
            throughput_mb_per_s: sends.total_bytes as f64 / secs / 1e6,
            latency_us: percentiles(&sends.total),
            e2e_latency_us: consumed.as_ref().map(|c| percentiles(&c.e2e.total)),
            errors: sends.errors.clone(),
            lost: consumed.as_ref().map(|c| c.lost),
            duplicated: consumed.as_ref().map(|c| c.duplicated),
            hgrm: format!("{}.hgrm", a.name),
            settings: s,
        };
        Outcome {
            summary,
            hist: sends.total.clone(),
            generator,
            consumed,
            undrained,
        }
    }

    /// The human summary (stdout).
    pub fn text(&self, f: &RunFacts) -> String {
        let s = &self.summary;
        let mut t = String::new();
        let mut line = |l: String| {
            t.push_str(&l);
            t.push('\n');
        };
        line(format!(
            "== {} against {}: {} loop{}",
            s.name,
            s.broker,
            s.mode,
            s.offered_rate
                .map_or(String::new(), |r| format!(" at {r} msgs/s"))
        ));
        line(format!(
            "  measured    {:.2} s  {} ok  {:.0} msgs/s  {:.2} MB/s",
            s.duration_s, s.count, s.throughput_msgs_per_s, s.throughput_mb_per_s
        ));
        line(format!("  send latency {}", pct_text(&s.latency_us)));
        line(format!("  errors      {}", format_errors(&s.errors)));
        if let Some(w) = s.settings.get("warmup_errors") {
            line(format!("  warm-up errors {w}"));
        }
        if let Some(g) = &self.generator {
            line(format!(
                "  generator   offered {:.0} of {:.0} msgs/s ({:.1}%); schedule lag {}; window full {} times",
                g.offered,
                g.target,
                100.0 * g.offered / g.target,
                lag_text(&g.lag),
                g.window_waits
            ));
            line(if g.kept {
                "              kept its timetable: latencies are charged from due times".into()
            } else if g.window_waits > 0 {
                format!(
                    "              BEHIND its timetable: sends found the in-flight window ({} x {}) full; the broker (or the CPUs it shares with this generator) did not keep up; latency still counts from due times",
                    f.args.connections, f.args.inflight
                )
            } else {
                "              COULD NOT keep its timetable: this rate is above the generator's own ceiling on this machine".into()
            });
        } else if f.args.self_test {
            line(format!(
                "  generator   ceiling {:.0} msgs/s (closed loop against an in-process fake broker sharing this machine)",
                s.throughput_msgs_per_s
            ));
        } else {
            line("  generator   closed loop: rate is what the broker sustained; see `ringmq bench --self-test` for the generator's ceiling".into());
        }
        if let (Some(c), Some(e)) = (&self.consumed, &s.e2e_latency_us) {
            line(format!("  e2e latency {}", pct_text(e)));
            line(format!(
                "  consumers   lost {}  duplicated {}  (delivered {} measured{}{})",
                c.lost,
                c.duplicated,
                c.e2e.total_ok,
                if c.complete {
                    ""
                } else {
                    "; gave up waiting for missing messages"
                },
                s.settings
                    .get("consume_errors")
                    .map_or(String::new(), |e| format!("; pull errors {e}"))
            ));
        }
        if self.undrained {
            line("  WARNING     some sends were still outstanding when the run ended".into());
        }
        t
    }

    pub fn print(&self, f: &RunFacts) {
        print!("{}", self.text(f));
    }

    /// Write `<dir>/<name>.hgrm` and `<dir>/<name>.json`.
    pub fn write(&self, dir: &Path, name: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
        let hgrm = dir.join(format!("{name}.hgrm"));
        let mut w = std::io::BufWriter::new(
            std::fs::File::create(&hgrm)
                .map_err(|e| format!("cannot write {}: {e}", hgrm.display()))?,
        );
        crate::report::hgrm::write_distribution(&self.hist, &mut w)
            .and_then(|_| w.flush())
            .map_err(|e| format!("cannot write {}: {e}", hgrm.display()))?;
        let json = dir.join(format!("{name}.json"));
        self.summary.save(&json)?;
        println!("  files       {} {}", hgrm.display(), json.display());
        Ok(())
    }
}

fn pct_text(p: &Percentiles) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}  max {}  mean {}",
        fmt_us(p.p50),
        fmt_us(p.p90),
        fmt_us(p.p99),
        fmt_us(p.p999),
        fmt_us(p.p9999),
        fmt_us(p.max),
        fmt_us(p.mean)
    )
}

fn lag_text(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "-".into();
    }
    format!(
        "p50 {} p99 {} max {}",
        fmt_us(h.value_at_quantile(0.5) as f64),
        fmt_us(h.value_at_quantile(0.99) as f64),
        fmt_us(h.max() as f64)
    )
}
