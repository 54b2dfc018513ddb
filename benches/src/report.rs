//! Printing helpers: an aligned `name value unit ceiling ratio` table and
//! histogram percentiles.
//!
//! ```
//! use ringmq_benches::report::Table;
//! let mut t = Table::new("append");
//! t.row("throughput", 812.0, "MB/s", Some(1650.0));
//! t.row("records", 1.2e6, "rec/s", None);
//! print!("{t}");
//! ```

use std::fmt;

use hdrhistogram::Histogram;

/// One table line; `ratio` is `value / ceiling` when a ceiling is given.
#[derive(Clone, Debug)]
pub struct Row {
    /// What was measured.
    pub name: String,
    /// The measurement.
    pub value: f64,
    /// Its unit (also the ceiling's).
    pub unit: String,
    /// The same quantity's ceiling measured in this run, if any.
    pub ceiling: Option<f64>,
}

impl Row {
    /// `value / ceiling`, if there is a non-zero ceiling.
    pub fn ratio(&self) -> Option<f64> {
        self.ceiling.filter(|c| *c != 0.0).map(|c| self.value / c)
    }
}

/// An aligned table with a title; print it with `{}` or [`Table::print`].
#[derive(Clone, Debug, Default)]
pub struct Table {
    /// Printed above the rows.
    pub title: String,
    /// The rows, in order.
    pub rows: Vec<Row>,
}

impl Table {
    /// An empty table.
    pub fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
        }
    }

    /// Append a row.
    pub fn row(
        &mut self,
        name: impl Into<String>,
        value: f64,
        unit: impl Into<String>,
        ceiling: Option<f64>,
    ) -> &mut Self {
        self.rows.push(Row {
            name: name.into(),
            value,
            unit: unit.into(),
            ceiling,
        });
        self
    }

    /// Append p50/p99/p99.9/max rows for `hist` (values divided by `scale`,
    /// e.g. 1000.0 to show a nanosecond histogram in us), each beside the
    /// same percentile of `ceiling` if given.
    pub fn latency_rows(
        &mut self,
        name: &str,
        hist: &Histogram<u64>,
        scale: f64,
        unit: &str,
        ceiling: Option<&Histogram<u64>>,
    ) -> &mut Self {
        let p = Percentiles::of(hist).scaled(scale);
        let c = ceiling.map(|h| Percentiles::of(h).scaled(scale));
        for (label, v, cv) in [
            ("p50", p.p50, c.map(|c| c.p50)),
            ("p99", p.p99, c.map(|c| c.p99)),
            ("p99.9", p.p999, c.map(|c| c.p999)),
            ("max", p.max, c.map(|c| c.max)),
        ] {
            self.row(format!("{name} {label}"), v, unit, cv);
        }
        self
    }

    /// Print to stdout.
    pub fn print(&self) {
        print!("{self}");
    }
}

/// Format a value with precision that suits its magnitude.
pub fn fmt_value(v: f64) -> String {
    let a = v.abs();
    if v == 0.0 {
        "0".into()
    } else if a >= 100_000.0 {
        format!("{v:.0}")
    } else if a >= 100.0 {
        format!("{v:.1}")
    } else if a >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cells: Vec<[String; 5]> = self
            .rows
            .iter()
            .map(|r| {
                [
                    r.name.clone(),
                    fmt_value(r.value),
                    r.unit.clone(),
                    r.ceiling.map(fmt_value).unwrap_or_else(|| "-".into()),
                    r.ratio()
                        .map(|x| format!("{x:.2}x"))
                        .unwrap_or_else(|| "-".into()),
                ]
            })
            .collect();
        let header = ["name", "value", "unit", "ceiling", "ratio"];
        let mut w = header.map(str::len);
        for c in &cells {
            for (i, s) in c.iter().enumerate() {
                w[i] = w[i].max(s.len());
            }
        }
        if !self.title.is_empty() {
            writeln!(f, "== {} ==", self.title)?;
        }
        let line = |f: &mut fmt::Formatter<'_>, c: &[&str; 5]| {
            writeln!(
                f,
                "{:<w0$}  {:>w1$}  {:<w2$}  {:>w3$}  {:>w4$}",
                c[0],
                c[1],
                c[2],
                c[3],
                c[4],
                w0 = w[0],
                w1 = w[1],
                w2 = w[2],
                w3 = w[3],
                w4 = w[4]
            )
        };
        line(f, &header)?;
        for c in &cells {
            line(f, &[&c[0], &c[1], &c[2], &c[3], &c[4]])?;
        }
        Ok(())
    }
}

/// Summary of a latency histogram, in the histogram's unit unless scaled.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Percentiles {
    /// Samples recorded.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest sample.
    pub max: f64,
}

impl Percentiles {
    /// p50/p99/p99.9/max/mean/count of `h` (all zero when empty).
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        Self {
            count: h.len(),
            mean: h.mean(),
            p50: h.value_at_quantile(0.50) as f64,
            p99: h.value_at_quantile(0.99) as f64,
            p999: h.value_at_quantile(0.999) as f64,
            max: h.max() as f64,
        }
    }

    /// Every value divided by `scale` (count unchanged).
    pub fn scaled(self, scale: f64) -> Self {
        Self {
            count: self.count,
            mean: self.mean / scale,
            p50: self.p50 / scale,
            p99: self.p99 / scale,
            p999: self.p999 / scale,
            max: self.max / scale,
        }
    }
}

/// One line: `name  n=..  p50 ..  p99 ..  p99.9 ..  max ..  <unit>`, values
/// divided by `scale`.
pub fn percentile_line(name: &str, h: &Histogram<u64>, scale: f64, unit: &str) -> String {
    let p = Percentiles::of(h).scaled(scale);
    format!(
        "{name}  n={}  p50 {}  p99 {}  p99.9 {}  max {}  mean {}  {unit}",
        p.count,
        fmt_value(p.p50),
        fmt_value(p.p99),
        fmt_value(p.p999),
        fmt_value(p.max),
        fmt_value(p.mean)
    )
}

/// An aligned percentile table: one row per `(name, histogram)`, columns
/// n/p50/p99/p99.9/max/mean, values divided by `scale` and shown in `unit`.
pub fn percentile_table(
    title: &str,
    unit: &str,
    scale: f64,
    rows: &[(&str, &Histogram<u64>)],
) -> String {
    let header = ["name", "n", "p50", "p99", "p99.9", "max", "mean"];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|(name, h)| {
            let p = Percentiles::of(h).scaled(scale);
            [
                name.to_string(),
                p.count.to_string(),
                fmt_value(p.p50),
                fmt_value(p.p99),
                fmt_value(p.p999),
                fmt_value(p.max),
                fmt_value(p.mean),
            ]
        })
        .collect();
    let mut w = header.map(str::len);
    for c in &cells {
        for (i, s) in c.iter().enumerate() {
            w[i] = w[i].max(s.len());
        }
    }
    let mut out = String::new();
    if !title.is_empty() {
        out.push_str(&format!("== {title} ({unit}) ==\n"));
    }
    let mut push = |c: [&str; 7]| {
        out.push_str(&format!("{:<w0$}", c[0], w0 = w[0]));
        for i in 1..7 {
            out.push_str(&format!("  {:>wi$}", c[i], wi = w[i]));
        }
        out.push('\n');
    };
    push(header);
    for c in &cells {
        push([&c[0], &c[1], &c[2], &c[3], &c[4], &c[5], &c[6]]);
    }
    out
}
