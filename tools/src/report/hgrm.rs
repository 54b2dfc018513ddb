//! HdrHistogram percentile-distribution (`.hgrm`) files: write and parse.
//!
//! [`write_distribution`] produces the text of Java's
//! `AbstractHistogram.outputPercentileDistribution(out, 5, 1.0)`: a header, one line per
//! quantile-iterator step (5 ticks per half distance to 100%), a final 100% line without the
//! `1/(1-Percentile)` column, and three `#[...]` footer lines. Values are written unscaled
//! (ratio 1.0), so a histogram of microseconds gives a file of microseconds. Numbers are
//! formatted as Java's `Formatter` does (`%f` rounds the shortest decimal form of a double
//! half-up), so the bytes match a Java-written file of the same histogram.
//!
//! [`parse_distribution`] reads such a file back (ours, Java's, or wrk2's) into a
//! [`Distribution`]: the points plus the footer's mean, standard deviation, max, total count
//! and bucket geometry.
//!
//! A file only holds the values at the iterator's ticks, so a quantile that is not a tick
//! (0.99, say: the ticks around it are 0.9890625 and 0.990625) can come back slightly high:
//! [`Distribution::value_at`] is exact when the quantile's bucket crossed a tick, and otherwise
//! the value at the next tick; [`Distribution::bounds`] gives the interval the exact value lies
//! in.

use std::io::Write;

use hdrhistogram::Histogram;

/// Ticks per half distance to 100%, as in HdrHistogram's own tools.
pub const TICKS_PER_HALF_DISTANCE: u32 = 5;

/// One line of a percentile distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The highest value equivalent to the bucket the step reached (microseconds here).
    pub value: f64,
    /// The quantile level the iterator stepped to, 0.0 ..= 1.0 (the file's "Percentile").
    pub percentile: f64,
    /// Recorded values at or below `value`.
    pub total_count: u64,
}

/// A parsed percentile-distribution file.
#[derive(Debug, Clone, PartialEq)]
pub struct Distribution {
    /// The lines in file order: values and counts never decrease.
    pub points: Vec<Point>,
    pub mean: f64,
    pub std_deviation: f64,
    pub max: f64,
    pub total_count: u64,
    pub buckets: u64,
    pub sub_buckets: u64,
}

impl Distribution {
    /// The value at quantile `p` (0.0 ..= 1.0): the smallest value in the file whose
    /// cumulative count reaches `p` of the total, with the same count rule as HdrHistogram's
    /// `getValueAtPercentile` (`max(ceil(p * total), 1)`). `p >= 1` gives the max; an empty
    /// distribution gives 0.
    pub fn value_at(&self, p: f64) -> f64 {
        if self.total_count == 0 || self.points.is_empty() {
            return 0.0;
        }
        if p >= 1.0 {
            return self.max;
        }
        let target = self.target_count(p);
        self.points
            .iter()
            .find(|pt| pt.total_count >= target)
            .map_or(self.max, |pt| pt.value)
    }

    /// `(low, high)` with `low < v <= high` for the histogram's exact value `v` at quantile
    /// `p`: `high` is [`Distribution::value_at`], `low` the largest value in the file whose
    /// cumulative count falls short of `p` (0 if none).
    pub fn bounds(&self, p: f64) -> (f64, f64) {
        let high = self.value_at(p);
        if self.total_count == 0 {
            return (0.0, high);
        }
        let target = if p >= 1.0 {
            self.total_count
        } else {
            self.target_count(p)
        };
        let low = self
            .points
            .iter()
            .filter(|pt| pt.total_count < target)
            .map(|pt| pt.value)
            .fold(0.0, f64::max);
        (low, high)
    }

    /// The width of the histogram bucket holding `value`: two values closer than this may have
    /// been recorded in the same bucket (at least 1 unit).
    pub fn resolution_at(&self, value: f64) -> f64 {
        if self.sub_buckets < 2 {
            return 1.0;
        }
        (value * 2.0 / self.sub_buckets as f64).max(1.0)
    }

    fn target_count(&self, p: f64) -> u64 {
        let p = p.clamp(0.0, 1.0);
        ((p * self.total_count as f64).ceil() as u64).clamp(1, self.total_count)
    }
}

/// Writes `hist`'s percentile distribution exactly as Java's
/// `outputPercentileDistribution(out, 5, 1.0)` does (values printed with as many decimals as
/// the histogram's significant digits, i.e. `%12.3f` for the usual 3).
pub fn write_distribution(hist: &Histogram<u64>, out: &mut impl Write) -> std::io::Result<()> {
    let digits = usize::from(hist.sigfig());
    writeln!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    )?;
    if !hist.is_empty() {
        let mut total: u64 = 0;
        for step in hist.iter_quantiles(TICKS_PER_HALF_DISTANCE) {
            total = total.saturating_add(step.count_since_last_iteration());
            let value = java_fixed(step.value_iterated_to() as f64, digits);
            let level = step.quantile_iterated_to();
            #[allow(clippy::float_cmp)] // exactly as Java: `!= 100.0D`
            let last = level == 1.0;
            if last {
                writeln!(out, "{value:>12} {:>2} {total:>10}", java_fixed(level, 12))?;
            } else {
                writeln!(
                    out,
                    "{value:>12} {:>2} {total:>10} {:>14}",
                    java_fixed(level, 12),
                    java_fixed(1.0 / (1.0 - level), 2)
                )?;
            }
        }
    }
    let (mean, std_deviation) = java_mean_stddev(hist);
    writeln!(
        out,
        "#[Mean    = {:>12}, StdDeviation   = {:>12}]",
        java_fixed(mean, digits),
        java_fixed(std_deviation, digits)
    )?;
    writeln!(
        out,
        "#[Max     = {:>12}, Total count    = {:>12}]",
        java_fixed(hist.max() as f64, digits),
        hist.len()
    )?;
    writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        hist.buckets(),
        sub_bucket_count(hist.sigfig())
    )?;
    Ok(())
}

/// Parses a percentile-distribution file (see the module documentation).
pub fn parse_distribution(text: &str) -> Result<Distribution, String> {
    let mut saw_header = false;
    let mut points: Vec<Point> = Vec::new();
    let mut mean_sd: Option<(f64, f64)> = None;
    let mut max_total: Option<(f64, u64)> = None;
    let mut geometry: Option<(u64, u64)> = None;
    for (index, raw) in text.lines().enumerate() {
        let line_no = index + 1;
        let line = raw.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            let fields = footer_fields(footer, line_no)?;
            match fields[0].0.as_str() {
                "Mean" => {
                    expect_key(&fields, "StdDeviation", line_no)?;
                    mean_sd = Some((
                        number(&fields[0].1, line_no)?,
                        number(&fields[1].1, line_no)?,
                    ));
                }
                "Max" => {
                    expect_key(&fields, "Total count", line_no)?;
                    max_total = Some((
                        number(&fields[0].1, line_no)?,
                        count(&fields[1].1, line_no)?,
                    ));
                }
                "Buckets" => {
                    expect_key(&fields, "SubBuckets", line_no)?;
                    geometry = Some((count(&fields[0].1, line_no)?, count(&fields[1].1, line_no)?));
                }
                other => return Err(format!("line {line_no}: unknown footer field {other:?}")),
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        if !saw_header {
            if line.split_whitespace().next() != Some("Value") || !line.contains("Percentile") {
                return Err(format!(
                    "line {line_no}: expected the header \"Value Percentile TotalCount \
                     1/(1-Percentile)\" of a percentile-distribution file, found {line:?}"
                ));
            }
            saw_header = true;
            continue;
        }
        if max_total.is_some() || mean_sd.is_some() || geometry.is_some() {
            return Err(format!(
                "line {line_no}: data line after the footer: {line:?}"
            ));
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() != 3 && fields.len() != 4 {
            return Err(format!(
                "line {line_no}: expected 3 or 4 columns (value, percentile, total count[, \
                 1/(1-percentile)]), found {}: {line:?}",
                fields.len()
            ));
        }
        let point = Point {
            value: number(fields[0], line_no)?,
            percentile: number(fields[1], line_no)?,
            total_count: count(fields[2], line_no)?,
        };
        if !(0.0..=1.0).contains(&point.percentile) {
            return Err(format!(
                "line {line_no}: percentile {} is outside 0..1",
                fields[1]
            ));
        }
        if let Some(prev) = points.last() {
            if point.value < prev.value
                || point.total_count < prev.total_count
                || point.percentile < prev.percentile
            {
                return Err(format!(
                    "line {line_no}: values, percentiles and counts must not decrease: {line:?}"
                ));
            }
        }
        points.push(point);
    }
    if !saw_header {
        return Err(
            "not a percentile-distribution file: no \"Value Percentile ...\" header".into(),
        );
    }
    let (mean, std_deviation) =
        mean_sd.ok_or("missing footer line \"#[Mean = ..., StdDeviation = ...]\"")?;
    let (max, total_count) =
        max_total.ok_or("missing footer line \"#[Max = ..., Total count = ...]\"")?;
    let (buckets, sub_buckets) = geometry.unwrap_or((0, 0));
    if total_count > 0 && points.is_empty() {
        return Err(format!(
            "the footer counts {total_count} values but the file has no percentile lines"
        ));
    }
    if let Some(last) = points.last() {
        if last.total_count != total_count {
            return Err(format!(
                "the last percentile line counts {} values but the footer says {total_count}",
                last.total_count
            ));
        }
    }
    Ok(Distribution {
        points,
        mean,
        std_deviation,
        max,
        total_count,
        buckets,
        sub_buckets,
    })
}

/// Splits `Key = value, Key2 = value2]` into two (key, value) pairs.
fn footer_fields(footer: &str, line_no: usize) -> Result<Vec<(String, String)>, String> {
    let body = footer
        .strip_suffix(']')
        .ok_or_else(|| format!("line {line_no}: footer line does not end with ']'"))?;
    let fields = body
        .split(',')
        .map(|part| {
            let (key, value) = part
                .split_once('=')
                .ok_or_else(|| format!("line {line_no}: footer field {part:?} has no '='"))?;
            Ok((key.trim().to_string(), value.trim().to_string()))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if fields.len() != 2 {
        return Err(format!(
            "line {line_no}: footer line must have two fields, found {}",
            fields.len()
        ));
    }
    Ok(fields)
}

fn expect_key(fields: &[(String, String)], key: &str, line_no: usize) -> Result<(), String> {
    if fields[1].0 == key {
        Ok(())
    } else {
        Err(format!(
            "line {line_no}: expected footer field {key:?}, found {:?}",
            fields[1].0
        ))
    }
}

fn number(text: &str, line_no: usize) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("line {line_no}: {text:?} is not a finite number")),
    }
}

fn count(text: &str, line_no: usize) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("line {line_no}: {text:?} is not a count"))
}

/// Java's `subBucketCount` for `sigfig` significant digits.
fn sub_bucket_count(sigfig: u8) -> u64 {
    let largest = 2.0 * 10f64.powi(i32::from(sigfig));
    1u64 << ((largest.log2().ceil() as u32).max(1))
}

/// Mean and standard deviation computed as Java's `getMean` / `getStdDeviation` do (sum of
/// median-equivalent values times counts, divided once).
fn java_mean_stddev(hist: &Histogram<u64>) -> (f64, f64) {
    let total = hist.len();
    if total == 0 {
        return (0.0, 0.0);
    }
    let mut sum = 0.0;
    for v in hist.iter_recorded() {
        sum += hist.median_equivalent(v.value_iterated_to()) as f64 * v.count_at_value() as f64;
    }
    let mean = sum / total as f64;
    let mut deviations = 0.0;
    for v in hist.iter_recorded() {
        let d = hist.median_equivalent(v.value_iterated_to()) as f64 - mean;
        deviations += d * d * v.count_since_last_iteration() as f64;
    }
    (mean, (deviations / total as f64).sqrt())
}

/// `String.format(Locale.US, "%.{decimals}f", x)`: Java rounds the shortest decimal form of
/// the double half-up (Rust's `{:.N}` rounds the exact binary value, which differs on ties
/// such as 0.125 or 0.15).
fn java_fixed(x: f64, decimals: usize) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    let negative = x.is_sign_negative() && x != 0.0;
    // Shortest round-trip digits: d.ddddde<exp>.
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').expect("{:e} has an exponent");
    let exp: i64 = exp.parse().expect("{:e} exponent is an integer");
    let mut digits: Vec<u8> = mantissa
        .bytes()
        .filter(u8::is_ascii_digit)
        .map(|b| b - b'0')
        .collect();
    // The value is 0.d1d2d3... * 10^point.
    let mut point = exp + 1;
    let keep = point + decimals as i64;
    if keep < 0 {
        digits.clear();
    } else if (keep as usize) < digits.len() {
        let round_up = digits[keep as usize] >= 5;
        digits.truncate(keep as usize);
        if round_up {
            let mut i = digits.len();
            loop {
                if i == 0 {
                    digits.insert(0, 1);
                    point += 1;
                    break;
                }
                i -= 1;
                if digits[i] == 9 {
                    digits[i] = 0;
                } else {
                    digits[i] += 1;
                    break;
                }
            }
        }
    }
    let digit_at = |pos: i64| -> char {
        // pos counts from the first digit (0) in the 0.d1d2... form.
        if pos >= 0 && (pos as usize) < digits.len() {
            char::from(b'0' + digits[pos as usize])
        } else {
            '0'
        }
    };
    let mut s = String::new();
    if negative && digits.iter().any(|&d| d != 0) {
        s.push('-');
    }
    if point <= 0 {
        s.push('0');
    } else {
        for pos in 0..point {
            s.push(digit_at(pos));
        }
    }
    if decimals > 0 {
        s.push('.');
        for k in 0..decimals as i64 {
            s.push(digit_at(point + k));
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(hist: &Histogram<u64>) -> String {
        let mut out = Vec::new();
        write_distribution(hist, &mut out).unwrap();
        String::from_utf8(out).unwrap()
    }

    /// A small deterministic generator (xorshift64*), so the tests need no extra crate.
    struct Rng(u64);
    impl Rng {
        fn next_f64(&mut self) -> f64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
        }
    }

    fn uniform() -> Histogram<u64> {
        let mut h = Histogram::new(3).unwrap();
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        for _ in 0..200_000 {
            h.record(100 + (rng.next_f64() * 9_900.0) as u64).unwrap();
        }
        h
    }

    /// Mostly ~200 us, with a Pareto tail out to tens of milliseconds.
    fn long_tailed() -> Histogram<u64> {
        let mut h = Histogram::new_with_bounds(1, 60_000_000, 3).unwrap();
        let mut rng = Rng(42);
        for _ in 0..300_000 {
            let u = rng.next_f64().max(1e-12);
            let v = 150.0 / u.powf(1.0 / 1.6);
            h.record((v as u64).min(50_000_000)).unwrap();
        }
        h
    }

    fn single_value() -> Histogram<u64> {
        let mut h = Histogram::new(3).unwrap();
        h.record_n(1234, 1000).unwrap();
        h
    }

    const QUANTILES: [f64; 5] = [0.5, 0.9, 0.99, 0.999, 0.9999];

    #[test]
    fn header_lines_and_footer_have_javas_layout() {
        let text = render(&single_value());
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "       Value     Percentile TotalCount 1/(1-Percentile)"
        );
        assert_eq!(lines[1], "");
        assert_eq!(
            lines[2],
            "    1234.000 0.000000000000       1000           1.00"
        );
        assert_eq!(lines[3], "    1234.000 1.000000000000       1000");
        assert_eq!(
            lines[4],
            "#[Mean    =     1234.000, StdDeviation   =        0.000]"
        );
        assert_eq!(
            lines[5],
            "#[Max     =     1234.000, Total count    =         1000]"
        );
        // An auto-resizing histogram has grown to the one bucket 1234 needs.
        assert_eq!(
            lines[6],
            "#[Buckets =            1, SubBuckets     =         2048]"
        );
        assert_eq!(lines.len(), 7);
    }

    #[test]
    fn lines_follow_the_quantile_ticks() {
        let text = render(&uniform());
        let levels: Vec<&str> = text
            .lines()
            .skip(2)
            .take(8)
            .map(|l| l.split_whitespace().nth(1).unwrap())
            .collect();
        assert_eq!(
            levels,
            [
                "0.000000000000",
                "0.100000000000",
                "0.200000000000",
                "0.300000000000",
                "0.400000000000",
                "0.500000000000",
                "0.550000000000",
                "0.600000000000"
            ]
        );
        // Every non-final line has 4 columns, the last 3.
        let data: Vec<&str> = text
            .lines()
            .skip(2)
            .filter(|l| !l.starts_with('#'))
            .collect();
        let (last, rest) = data.split_last().unwrap();
        assert!(rest.iter().all(|l| l.split_whitespace().count() == 4));
        assert_eq!(last.split_whitespace().count(), 3);
        assert!(last.contains(" 1.000000000000 "));
    }

    #[test]
    fn write_then_parse_gives_back_the_percentiles() {
        for (name, hist) in [
            ("uniform", uniform()),
            ("long-tailed", long_tailed()),
            ("single value", single_value()),
        ] {
            let d = parse_distribution(&render(&hist)).unwrap();
            assert_eq!(d.total_count, hist.len(), "{name}");
            assert_eq!(d.max, hist.max() as f64, "{name} max");
            assert_eq!(d.value_at(1.0), hist.max() as f64, "{name} max");
            assert!(
                (d.mean - hist.mean()).abs() < 1e-3 * hist.mean(),
                "{name} mean"
            );
            assert!((d.std_deviation - hist.stdev()).abs() <= 1e-3 * hist.stdev().max(1.0));
            assert_eq!(d.buckets, u64::from(hist.buckets()));
            for q in QUANTILES {
                let exact = hist.value_at_quantile(q) as f64;
                let got = d.value_at(q);
                let (low, high) = d.bounds(q);
                assert!(
                    low < exact && exact <= high,
                    "{name} q{q}: {low} < {exact} <= {high}"
                );
                // The file holds the values at the quantile ticks: the value read back is the
                // exact one, or the one at the next tick (0.990625 for 0.99, ...).
                let next_tick = next_tick(q);
                assert!(
                    exact <= got && got <= hist.value_at_quantile(next_tick) as f64,
                    "{name} q{q}: {exact} <= {got} <= value at {next_tick}"
                );
            }
            // Quantiles that are ticks themselves come back exactly.
            assert_eq!(
                d.value_at(0.5),
                hist.value_at_quantile(0.5) as f64,
                "{name} p50"
            );
            assert_eq!(
                d.value_at(0.9),
                hist.value_at_quantile(0.9) as f64,
                "{name} p90"
            );
            assert_eq!(
                d.value_at(0.75),
                hist.value_at_quantile(0.75) as f64,
                "{name} p75"
            );
        }
        // A single value comes back exactly at every quantile.
        let d = parse_distribution(&render(&single_value())).unwrap();
        for q in QUANTILES {
            assert_eq!(d.value_at(q), 1234.0, "single value q{q}");
        }
    }

    /// The first quantile tick at or above `q` with 5 ticks per half distance.
    fn next_tick(q: f64) -> f64 {
        let halvings = (1.0 / (1.0 - q)).log2().floor() as i32;
        let step = 1.0 / (f64::from(TICKS_PER_HALF_DISTANCE) * 2f64.powi(halvings + 1));
        let base = 1.0 - 0.5f64.powi(halvings);
        base + ((q - base) / step - 1e-9).ceil() * step
    }

    #[test]
    fn empty_histogram_round_trips() {
        let h: Histogram<u64> = Histogram::new(3).unwrap();
        let text = render(&h);
        let d = parse_distribution(&text).unwrap();
        assert!(d.points.is_empty());
        assert_eq!(d.total_count, 0);
        assert_eq!(d.value_at(0.99), 0.0);
    }

    #[test]
    fn parses_a_java_written_file() {
        let text = "       Value     Percentile TotalCount 1/(1-Percentile)\n\n\
                    \x20     10.000 0.000000000000          1           1.00\n\
                    \x20     20.000 0.500000000000          2           2.00\n\
                    \x20     30.000 1.000000000000          3\n\
                    #[Mean    =       20.000, StdDeviation   =        8.165]\n\
                    #[Max     =       30.000, Total count    =            3]\n\
                    #[Buckets =           22, SubBuckets     =         2048]\n";
        let d = parse_distribution(text).unwrap();
        assert_eq!(d.points.len(), 3);
        assert_eq!(d.value_at(0.5), 20.0);
        assert_eq!(d.value_at(0.6), 20.0); // ceil(0.6 * 3) = 2 values
        assert_eq!(d.value_at(0.7), 30.0);
        assert_eq!(d.bounds(0.7), (20.0, 30.0));
        assert_eq!(d.value_at(0.0), 10.0);
        assert_eq!(d.mean, 20.0);
        assert_eq!((d.buckets, d.sub_buckets), (22, 2048));
    }

    #[test]
    fn malformed_input_gives_a_clear_error() {
        let good = render(&uniform());
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "no \"Value Percentile"),
            ("{\"name\": \"x\"}".into(), "expected the header"),
            (good.replace("#[Max ", "#[Mux "), "unknown footer field"),
            (
                good.lines()
                    .filter(|l| !l.starts_with("#[Max"))
                    .collect::<Vec<_>>()
                    .join("\n"),
                "missing footer line \"#[Max",
            ),
            (
                good.replacen(" 0.100000000000 ", " zero.one ", 1),
                "\"zero.one\" is not a finite number",
            ),
            (
                good.replacen(" 0.100000000000 ", " extra 0.1 ", 1),
                "expected 3 or 4 columns",
            ),
            (
                good.replacen(" 0.100000000000 ", " 1.100000000000 ", 1),
                "outside 0..1",
            ),
        ];
        for (text, expected) in cases {
            let err = parse_distribution(&text).unwrap_err();
            assert!(
                err.contains(expected),
                "{err:?} should mention {expected:?}"
            );
        }
        // Lines out of order.
        let swapped = "Value Percentile TotalCount 1/(1-Percentile)\n\
                       20.000 0.000000000000 1 1.00\n\
                       10.000 0.500000000000 2 2.00\n";
        assert!(parse_distribution(swapped)
            .unwrap_err()
            .contains("must not decrease"));
    }

    #[test]
    fn java_fixed_rounds_like_javas_formatter() {
        assert_eq!(java_fixed(0.125, 2), "0.13");
        assert_eq!(java_fixed(0.15, 1), "0.2");
        assert_eq!(java_fixed(2.5, 0), "3");
        assert_eq!(java_fixed(9.995, 2), "10.00");
        assert_eq!(java_fixed(99.999, 2), "100.00");
        assert_eq!(java_fixed(0.0, 3), "0.000");
        assert_eq!(java_fixed(1234.0, 3), "1234.000");
        assert_eq!(java_fixed(0.990625, 12), "0.990625000000");
        assert_eq!(java_fixed(0.1 + 0.2, 12), "0.300000000000");
        assert_eq!(java_fixed(1e-5, 2), "0.00");
        assert_eq!(java_fixed(0.0004, 3), "0.000");
        assert_eq!(java_fixed(0.0005, 3), "0.001");
        assert_eq!(java_fixed(1.0 / (1.0 - 0.990625), 2), "106.67");
        assert_eq!(java_fixed(1e20, 1), "100000000000000000000.0");
    }
}
