//! `ringmq compare`: the report of two or more saved runs.
//!
//! Loads each run's JSON summary and its `.hgrm` percentile-distribution file, and writes to
//! `--out` (default `report/`): `report.md` (title, latency and throughput table with ratio
//! columns against the first run, errors by code, the files used), `latency.svg` and
//! `latency.png` (the latency-by-percentile chart). The table is also printed to stdout.
//!
//! The latency percentiles in the table are read from the `.hgrm` files, not from the JSON
//! summaries' own numbers; the two are cross-checked and a disagreement beyond what the file
//! can resolve is reported as a warning (stderr and the report).

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::chart;
use super::hgrm::{parse_distribution, Distribution};
use super::summary::RunSummary;

#[derive(clap::Args, Debug)]
pub struct CompareArgs {
    /// JSON run summaries written by `ringmq bench`, two or more; the first is the baseline of
    /// the ratio columns.
    pub runs: Vec<PathBuf>,
    /// Directory for report.md, latency.svg and latency.png (created if missing).
    #[arg(long, default_value = "report")]
    pub out: PathBuf,
    /// Report and chart title (default: "Latency comparison: A vs B ...").
    #[arg(long)]
    pub title: Option<String>,
}

/// The latency rows: label and quantile (1.0 is the max).
const LATENCY_ROWS: [(&str, f64); 6] = [
    ("p50", 0.5),
    ("p90", 0.9),
    ("p99", 0.99),
    ("p99.9", 0.999),
    ("p99.99", 0.9999),
    ("max", 1.0),
];

pub fn run(args: CompareArgs) -> i32 {
    match compare(&args) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("ringmq compare: error: {e}");
            2
        }
    }
}

fn compare(args: &CompareArgs) -> Result<(), String> {
    if args.runs.len() < 2 {
        return Err(format!(
            "need two or more run summaries (JSON files written by `ringmq bench`), got {}",
            args.runs.len()
        ));
    }
    let mut runs = Vec::new();
    let mut hgrm_paths = Vec::new();
    for path in &args.runs {
        let summary = RunSummary::load(path)?;
        let hgrm_path = path.parent().unwrap_or(Path::new("")).join(&summary.hgrm);
        let text = std::fs::read_to_string(&hgrm_path).map_err(|e| {
            format!(
                "cannot read {} (the percentile distribution of {}): {e}",
                hgrm_path.display(),
                path.display()
            )
        })?;
        let dist = parse_distribution(&text).map_err(|e| {
            format!(
                "{} is not a percentile distribution: {e}",
                hgrm_path.display()
            )
        })?;
        hgrm_paths.push(hgrm_path);
        runs.push((summary, dist));
    }
    let names = labels(&runs);
    let title = args
        .title
        .clone()
        .unwrap_or_else(|| format!("Latency comparison: {}", names.join(" vs ")));
    let warnings = cross_check(&runs);
    for w in &warnings {
        eprintln!("ringmq compare: warning: {w}");
    }
    let table = table(&runs);

    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let svg = args.out.join("latency.svg");
    let png = args.out.join("latency.png");
    let chart_runs: Vec<(String, Distribution)> = names
        .iter()
        .cloned()
        .zip(runs.iter().map(|(_, d)| d.clone()))
        .collect();
    chart::draw(&chart_runs, &svg, &png, &title)?;

    let mut md = String::new();
    let _ = writeln!(md, "# {}\n", title);
    let _ = writeln!(md, "Send latency in microseconds, from the `.hgrm` files; ratios are each run divided by the first ({}).\n", names[0]);
    md.push_str(&table);
    md.push('\n');
    for w in &warnings {
        let _ = writeln!(md, "> **warning:** {w}\n");
    }
    let _ = writeln!(md, "![latency by percentile](latency.svg)\n");
    md.push_str("## Errors\n\n");
    md.push_str(&errors_table(&runs, &names));
    md.push_str(&generator_section(&runs, &names));
    md.push_str("\n## Runs\n\n");
    for (((summary, dist), name), (json, hgrm)) in runs
        .iter()
        .zip(&names)
        .zip(args.runs.iter().zip(&hgrm_paths))
    {
        let mode = match summary.offered_rate {
            Some(rate) => format!("{} loop at {rate:.0} msgs/s offered", summary.mode),
            None => format!("{} loop", summary.mode),
        };
        let _ = writeln!(
            md,
            "- {}: `{}` with `{}`: {mode} against {}, {} sends in {:.1} s ({} latencies)",
            escape(name),
            json.display(),
            hgrm.display(),
            summary.broker,
            summary.count,
            summary.duration_s,
            dist.total_count
        );
    }
    let report = args.out.join("report.md");
    std::fs::write(&report, md).map_err(|e| format!("cannot write {}: {e}", report.display()))?;

    println!("{table}");
    println!(
        "wrote {}, {} and {}",
        report.display(),
        svg.display(),
        png.display()
    );
    Ok(())
}

/// The markdown comparison table: one column per run, then one ratio column per later run
/// (that run divided by the first); rows p50 .. max (µs, from the distributions) and
/// throughput (msgs/s and MB/s, from the summaries).
pub fn table(runs: &[(RunSummary, Distribution)]) -> String {
    let names = labels(runs);
    let mut md = String::from("| metric |");
    for name in &names {
        let _ = write!(md, " {} |", escape(name));
    }
    for name in names.iter().skip(1) {
        let _ = write!(md, " {} / {} |", escape(name), escape(&names[0]));
    }
    md.push_str("\n| --- |");
    md.push_str(&" ---: |".repeat(2 * names.len() - 1));
    md.push('\n');

    let mut row = |label: &str, values: Vec<f64>, fmt: &dyn Fn(f64) -> String| {
        let _ = write!(md, "| {label} |");
        for v in &values {
            let _ = write!(md, " {} |", fmt(*v));
        }
        for v in values.iter().skip(1) {
            let _ = write!(md, " {} |", ratio(*v, values[0]));
        }
        md.push('\n');
    };
    for (label, q) in LATENCY_ROWS {
        let values = runs.iter().map(|(_, d)| d.value_at(q)).collect();
        row(&format!("{label} (µs)"), values, &latency);
    }
    row(
        "throughput (msgs/s)",
        runs.iter().map(|(s, _)| s.throughput_msgs_per_s).collect(),
        &|v| format!("{v:.0}"),
    );
    row(
        "throughput (MB/s)",
        runs.iter().map(|(s, _)| s.throughput_mb_per_s).collect(),
        &|v| format!("{v:.2}"),
    );
    md
}

/// `later / first` with 2 decimals, or "n/a" when the first is 0.
fn ratio(later: f64, first: f64) -> String {
    if first == 0.0 {
        "n/a".into()
    } else {
        format!("{:.2}", later / first)
    }
}

fn latency(v: f64) -> String {
    if v.fract() == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.3}")
    }
}

/// Run names for columns and legends; a repeated name gets " (2)", " (3)", ...
fn labels(runs: &[(RunSummary, Distribution)]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (s, _) in runs {
        let base = if s.name.trim().is_empty() {
            "run".to_string()
        } else {
            s.name.clone()
        };
        let mut name = base.clone();
        let mut n = 1;
        while seen.contains(&name) {
            n += 1;
            name = format!("{base} ({n})");
        }
        seen.push(name);
    }
    seen
}

/// Whether the load generator kept its promise in each run: the rate it actually offered,
/// how late sends left their timetable, and whether its in-flight window ever filled.
fn generator_section(runs: &[(RunSummary, Distribution)], names: &[String]) -> String {
    let mut out = String::from("\n## Load generator\n\n");
    for ((summary, _), name) in runs.iter().zip(names) {
        let get = |k: &str| summary.settings.get(k).map(String::as_str).unwrap_or("n/a");
        let _ = writeln!(
            out,
            "- {}: offered {} msgs/s, schedule lag {}, window full {} times, kept its timetable: {}",
            escape(name),
            get("offered_achieved_msgs_per_s"),
            get("schedule_lag_us"),
            get("window_full_waits"),
            get("kept_timetable"),
        );
    }
    out
}

fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

/// Errors by code: one row per code seen in any run, one column per run.
fn errors_table(runs: &[(RunSummary, Distribution)], names: &[String]) -> String {
    let codes: BTreeSet<&String> = runs.iter().flat_map(|(s, _)| s.errors.keys()).collect();
    if codes.is_empty() {
        return "No failed sends in any run.\n".into();
    }
    let mut md = String::from("| code |");
    for name in names {
        let _ = write!(md, " {} |", escape(name));
    }
    md.push_str("\n| --- |");
    md.push_str(&" ---: |".repeat(names.len()));
    md.push('\n');
    for code in codes {
        let _ = write!(md, "| {} |", escape(code));
        for (s, _) in runs {
            let _ = write!(md, " {} |", s.errors.get(code).copied().unwrap_or(0));
        }
        md.push('\n');
    }
    md
}

/// Compares each summary's own percentiles with its distribution file: the file brackets
/// the exact value at a quantile between two of its lines, widened by a bucket's width.
fn cross_check(runs: &[(RunSummary, Distribution)]) -> Vec<String> {
    let mut warnings = Vec::new();
    for (s, d) in runs {
        if s.count != d.total_count {
            warnings.push(format!(
                "{}: the summary counts {} sends but its .hgrm holds {} latencies",
                s.name, s.count, d.total_count
            ));
        }
        let l = &s.latency_us;
        for ((label, q), json) in LATENCY_ROWS
            .iter()
            .zip([l.p50, l.p90, l.p99, l.p999, l.p9999, l.max])
        {
            let (low, high) = d.bounds(*q);
            let tolerance = d.resolution_at(json.max(high));
            if json < low - tolerance || json > high + tolerance {
                warnings.push(format!(
                    "{}: {label} is {} µs in the summary but {} µs in its .hgrm (the file puts \
                     it in ({}, {}])",
                    s.name,
                    latency(json),
                    latency(d.value_at(*q)),
                    latency(low),
                    latency(high)
                ));
            }
        }
    }
    warnings
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use hdrhistogram::Histogram;

    use super::super::hgrm::write_distribution;
    use super::super::summary::Percentiles;
    use super::*;

    fn histogram(base: u64, spread: u64, tail: u64) -> Histogram<u64> {
        let mut h = Histogram::new(3).unwrap();
        for i in 0..50_000u64 {
            let mut v = base + (i * 7919) % spread;
            if i % 500 == 0 {
                v += tail;
            }
            h.record(v).unwrap();
        }
        h
    }

    /// Latencies in clusters of 10 values holding 50%, 40%, 9%, 0.9%, 0.09%, 0.009% and
    /// 0.001% of 100,000: each of p50 .. p99.99 ends a cluster that spans a quantile tick, so
    /// the `.hgrm` file holds the histogram's exact percentiles.
    fn clustered(base: u64) -> Histogram<u64> {
        let mut h = Histogram::new(3).unwrap();
        for (factor, count) in [
            (1, 50_000),
            (2, 40_000),
            (3, 9_000),
            (5, 900),
            (8, 90),
            (13, 9),
            (30, 1),
        ] {
            for i in 0..count {
                h.record(base * factor + (i % 10)).unwrap();
            }
        }
        h
    }

    /// Saves `h` as `<dir>/<file>.json` + `<file>.hgrm`, as `ringmq bench` does.
    fn save(dir: &Path, file: &str, name: &str, h: &Histogram<u64>, msgs: f64) -> PathBuf {
        let mut text = Vec::new();
        write_distribution(h, &mut text).unwrap();
        std::fs::write(dir.join(format!("{file}.hgrm")), text).unwrap();
        let q = |q: f64| h.value_at_quantile(q) as f64;
        let summary = RunSummary {
            name: name.into(),
            broker: "127.0.0.1:10911".into(),
            mode: "closed".into(),
            offered_rate: None,
            duration_s: 10.0,
            count: h.len(),
            throughput_msgs_per_s: msgs,
            throughput_mb_per_s: msgs * 1024.0 / 1e6,
            latency_us: Percentiles {
                p50: q(0.5),
                p90: q(0.9),
                p99: q(0.99),
                p999: q(0.999),
                p9999: q(0.9999),
                max: h.max() as f64,
                mean: h.mean(),
            },
            e2e_latency_us: None,
            errors: BTreeMap::from([("SYSTEM_BUSY".to_string(), 3)]),
            lost: None,
            duplicated: None,
            hgrm: format!("{file}.hgrm"),
            settings: BTreeMap::new(),
        };
        let path = dir.join(format!("{file}.json"));
        summary.save(&path).unwrap();
        path
    }

    fn cells(line: &str) -> Vec<String> {
        line.trim_matches('|')
            .split('|')
            .map(|c| c.trim().to_string())
            .collect()
    }

    #[test]
    fn compare_writes_report_svg_and_png_with_the_histograms_numbers() {
        let dir = tempfile::tempdir().unwrap();
        let h_async = clustered(200);
        let h_sync = clustered(700);
        let a = save(dir.path(), "async", "ASYNC_MASTER", &h_async, 50_000.0);
        let b = save(dir.path(), "sync", "SYNC_MASTER", &h_sync, 20_000.0);
        let out = dir.path().join("out");
        let code = run(CompareArgs {
            runs: vec![a.clone(), b.clone()],
            out: out.clone(),
            title: Some("ASYNC vs SYNC".into()),
        });
        assert_eq!(code, 0);
        let md = std::fs::read_to_string(out.join("report.md")).unwrap();
        assert!(md.starts_with("# ASYNC vs SYNC\n"));
        assert!(md.contains("async.json") && md.contains("sync.hgrm"));
        assert!(md.contains("| SYSTEM_BUSY | 3 | 3 |"));
        assert!(!md.contains("warning"), "{md}");
        assert!(out.join("latency.svg").metadata().unwrap().len() > 1000);
        let png = std::fs::read(out.join("latency.png")).unwrap();
        assert_eq!(&png[..4], b"\x89PNG");

        let lines: Vec<&str> = md
            .lines()
            .filter(|l| l.starts_with("| ") && !l.starts_with("| ---"))
            .collect();
        assert_eq!(
            cells(lines[0]),
            [
                "metric",
                "ASYNC_MASTER",
                "SYNC_MASTER",
                "SYNC_MASTER / ASYNC_MASTER"
            ]
        );
        for (i, (label, q)) in LATENCY_ROWS.iter().enumerate() {
            let row = cells(lines[1 + i]);
            assert_eq!(row[0], format!("{label} (µs)"));
            let (va, vs) = if *q >= 1.0 {
                (h_async.max() as f64, h_sync.max() as f64)
            } else {
                (
                    h_async.value_at_quantile(*q) as f64,
                    h_sync.value_at_quantile(*q) as f64,
                )
            };
            assert_eq!(row[1].parse::<f64>().unwrap(), va, "{label}");
            assert_eq!(row[2].parse::<f64>().unwrap(), vs, "{label}");
            assert_eq!(row[3], format!("{:.2}", vs / va), "{label}");
        }
        let msgs = cells(lines[7]);
        assert_eq!(msgs, ["throughput (msgs/s)", "50000", "20000", "0.40"]);
        let mb = cells(lines[8]);
        assert_eq!(mb, ["throughput (MB/s)", "51.20", "20.48", "0.40"]);
    }

    #[test]
    fn table_ratios_are_quotients_against_the_first_run() {
        let h1 = histogram(100, 100, 1_000);
        let h2 = histogram(300, 100, 1_000);
        let h3 = histogram(50, 100, 1_000);
        let parse = |h: &Histogram<u64>| {
            let mut t = Vec::new();
            write_distribution(h, &mut t).unwrap();
            parse_distribution(std::str::from_utf8(&t).unwrap()).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let load = |file: &str, name: &str, h: &Histogram<u64>, msgs: f64| {
            RunSummary::load(&save(dir.path(), file, name, h, msgs)).unwrap()
        };
        let runs = vec![
            (load("a", "A", &h1, 1000.0), parse(&h1)),
            (load("b", "B", &h2, 500.0), parse(&h2)),
            (load("c", "A", &h3, 0.0), parse(&h3)),
        ];
        let t = table(&runs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(
            cells(lines[0]),
            ["metric", "A", "B", "A (2)", "B / A", "A (2) / A"]
        );
        assert_eq!(cells(lines[1]).len(), 6);
        let p50 = cells(lines[2]);
        let v: Vec<f64> = runs.iter().map(|(_, d)| d.value_at(0.5)).collect();
        assert_eq!(p50[4], format!("{:.2}", v[1] / v[0]));
        assert_eq!(p50[5], format!("{:.2}", v[2] / v[0]));
        assert_eq!(
            cells(lines[8]),
            ["throughput (msgs/s)", "1000", "500", "0", "0.50", "0.00"]
        );
    }

    #[test]
    fn cross_check_warns_when_the_summary_disagrees_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let h = histogram(200, 400, 5_000);
        let path = save(dir.path(), "r", "R", &h, 1.0);
        let mut s = RunSummary::load(&path).unwrap();
        let d = parse_distribution(&std::fs::read_to_string(dir.path().join("r.hgrm")).unwrap())
            .unwrap();
        assert!(cross_check(&[(s.clone(), d.clone())]).is_empty());
        s.latency_us.p99 *= 2.0;
        let w = cross_check(&[(s, d)]);
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("p99 is"), "{w:?}");
    }

    #[test]
    fn bad_invocations_return_2() {
        let dir = tempfile::tempdir().unwrap();
        let h = histogram(200, 400, 5_000);
        let a = save(dir.path(), "a", "A", &h, 1.0);
        let args = |runs: Vec<PathBuf>| CompareArgs {
            runs,
            out: dir.path().join("out"),
            title: None,
        };
        assert_eq!(run(args(vec![a.clone()])), 2);
        assert_eq!(
            run(args(vec![a.clone(), dir.path().join("missing.json")])),
            2
        );
        std::fs::remove_file(dir.path().join("a.hgrm")).unwrap();
        let b = save(dir.path(), "b", "B", &h, 1.0);
        assert_eq!(run(args(vec![b, a])), 2);
        assert!(!dir.path().join("out").exists());
    }
}
