//! The latency-by-percentile chart of `ringmq compare`, drawn as HdrHistogram's plotter draws
//! it: latency (microseconds, log scale) against percentile, with the x axis log-scaled in
//! `1/(1-percentile)` so that 90%, 99%, 99.9%, ... are evenly spaced. One labelled line per
//! run, written both as SVG and as PNG.
//!
//! Text is laid out (and, in the PNG, rendered) with DejaVu Sans embedded from the `dejavu`
//! crate, so no system font or font package is needed.

use std::path::Path;
use std::sync::Once;

use plotters::coord::Shift;
use plotters::prelude::*;

use super::hgrm::Distribution;

const SIZE: (u32, u32) = (1200, 720);
const FONT: &str = "sans-serif";
const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(23, 190, 207),
];

/// Draws one line per `(label, distribution)` to `svg` and `png`.
pub fn draw(
    runs: &[(String, Distribution)],
    svg: &Path,
    png: &Path,
    title: &str,
) -> Result<(), String> {
    register_font()?;
    let series = series(runs);
    let axes = Axes::fit(&series);
    {
        let root = SVGBackend::new(svg, SIZE).into_drawing_area();
        plot(&root, &series, &axes, title)
            .map_err(|e| format!("cannot draw {}: {e}", svg.display()))?;
    }
    let root = BitMapBackend::new(png, SIZE).into_drawing_area();
    plot(&root, &series, &axes, title).map_err(|e| format!("cannot draw {}: {e}", png.display()))
}

fn register_font() -> Result<(), String> {
    static REGISTER: Once = Once::new();
    let mut result = Ok(());
    REGISTER.call_once(|| {
        result = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| "the embedded DejaVu Sans font could not be loaded".to_string());
    });
    result
}

/// A run's line: (x = 1/(1-p), latency) for every point below 100%, plus its max.
struct Series {
    label: String,
    points: Vec<(f64, f64)>,
    max: f64,
}

fn series(runs: &[(String, Distribution)]) -> Vec<Series> {
    runs.iter()
        .map(|(label, d)| Series {
            label: label.clone(),
            points: d
                .points
                .iter()
                .filter(|p| p.percentile < 1.0)
                .map(|p| (1.0 / (1.0 - p.percentile), p.value))
                .collect(),
            max: d.max,
        })
        .collect()
}

/// The axis ranges: x from 0% to the decade past the deepest percentile drawn (at least 99%),
/// y from the decade below the smallest latency to the decade above the largest.
struct Axes {
    x_decades: u32,
    y_low: f64,
    y_high: f64,
}

impl Axes {
    fn fit(series: &[Series]) -> Axes {
        let max_x = series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0))
            .fold(1.0, f64::max);
        let x_decades = (max_x.log10() - 1e-9).ceil().clamp(2.0, 7.0) as u32;
        let values = || {
            series
                .iter()
                .flat_map(|s| s.points.iter().map(|p| p.1).chain([s.max]))
        };
        let min_positive = values().filter(|v| *v > 0.0).fold(f64::INFINITY, f64::min);
        let max_value = values().fold(0.0, f64::max);
        let y_low = if min_positive.is_finite() {
            10f64.powf(min_positive.log10().floor())
        } else {
            1.0
        };
        let y_high = 10f64
            .powf((max_value.max(y_low).log10() + 1e-9).ceil())
            .max(y_low * 10.0);
        Axes {
            x_decades,
            y_low,
            y_high,
        }
    }

    fn x_high(&self) -> f64 {
        10f64.powi(self.x_decades as i32)
    }

    fn x_keys(&self) -> Vec<f64> {
        let mut keys = vec![1.0, 2.0];
        keys.extend((1..=self.x_decades).map(|k| 10f64.powi(k as i32)));
        keys
    }

    fn y_keys(&self) -> Vec<f64> {
        let decades = (self.y_high / self.y_low).log10().round() as i32;
        let steps: &[f64] = if decades <= 3 {
            &[1.0, 2.0, 5.0]
        } else {
            &[1.0]
        };
        let mut keys = Vec::new();
        for k in 0..=decades {
            for s in steps {
                let v = self.y_low * 10f64.powi(k) * s;
                if v <= self.y_high * 1.000_001 {
                    keys.push(v);
                }
            }
        }
        keys
    }
}

/// "50%" for x = 2, "99.9%" for x = 1000: the percentile whose 1/(1-p) is `x`.
fn percentile_label(x: f64) -> String {
    if x < 1.5 {
        return "0%".into();
    }
    if x < 5.0 {
        return "50%".into();
    }
    let nines = x.log10().round() as usize;
    match nines {
        1 => "90%".into(),
        2 => "99%".into(),
        n => format!("99.{}%", "9".repeat(n - 2)),
    }
}

fn latency_label(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn plot<DB: DrawingBackend>(
    root: &DrawingArea<DB, Shift>,
    series: &[Series],
    axes: &Axes,
    title: &str,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(root)
        .caption(title, (FONT, title_size(title)))
        .margin(24)
        .margin_right(64)
        .x_label_area_size(64)
        .y_label_area_size(96)
        .build_cartesian_2d(
            (1.0..axes.x_high())
                .log_scale()
                .with_key_points(axes.x_keys()),
            (axes.y_low..axes.y_high)
                .log_scale()
                .with_key_points(axes.y_keys()),
        )?;
    chart
        .configure_mesh()
        .x_desc("percentile")
        .y_desc("latency (µs, log scale)")
        .axis_desc_style((FONT, 22))
        .label_style((FONT, 18))
        .x_label_formatter(&|x| percentile_label(*x))
        .y_label_formatter(&|y| latency_label(*y))
        .bold_line_style(BLACK.mix(0.12))
        .light_line_style(TRANSPARENT)
        .draw()?;
    for (i, s) in series.iter().enumerate() {
        let color = COLORS[i % COLORS.len()];
        let style = ShapeStyle::from(&color).stroke_width(3);
        let y_low = axes.y_low;
        let points = s.points.iter().map(move |&(x, y)| (x, y.max(y_low)));
        chart
            .draw_series(LineSeries::new(points, style))?
            .label(format!("{} (max {} µs)", s.label, latency_label(s.max)))
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 28, y)], style));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font((FONT, 20))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.4))
        .margin(12)
        .draw()?;
    root.present()
}

/// A caption size that fits the title in the chart's width (about 0.55 em per character).
fn title_size(title: &str) -> u32 {
    let chars = title.chars().count().max(1) as f64;
    ((1100.0 / (chars * 0.55)).floor() as u32).clamp(14, 30)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_labels() {
        let labels: Vec<String> = [1.0, 2.0, 10.0, 100.0, 1e3, 1e4, 1e5, 1e6]
            .into_iter()
            .map(percentile_label)
            .collect();
        assert_eq!(
            labels,
            ["0%", "50%", "90%", "99%", "99.9%", "99.99%", "99.999%", "99.9999%"]
        );
    }

    #[test]
    fn draws_svg_and_png() {
        use super::super::hgrm::{parse_distribution, write_distribution};
        let mut runs = Vec::new();
        for (label, base) in [("fast", 100u64), ("slow", 400u64)] {
            let mut h = hdrhistogram::Histogram::<u64>::new(3).unwrap();
            for i in 0..100_000u64 {
                h.record(base + (i * 7919) % 1000 + if i % 1000 == 0 { 50 * base } else { 0 })
                    .unwrap();
            }
            let mut text = Vec::new();
            write_distribution(&h, &mut text).unwrap();
            runs.push((
                label.to_string(),
                parse_distribution(std::str::from_utf8(&text).unwrap()).unwrap(),
            ));
        }
        let dir = tempfile::tempdir().unwrap();
        let (svg, png) = (dir.path().join("l.svg"), dir.path().join("l.png"));
        draw(&runs, &svg, &png, "two runs").unwrap();
        let svg_text = std::fs::read_to_string(&svg).unwrap();
        assert!(svg_text.contains("fast (max") && svg_text.contains("slow (max"));
        assert!(svg_text.contains("99.9%") && svg_text.contains("percentile"));
        let png_bytes = std::fs::read(&png).unwrap();
        assert_eq!(&png_bytes[..8], b"\x89PNG\r\n\x1a\n");
        if let Ok(keep) = std::env::var("RINGMQ_CHART_KEEP") {
            std::fs::copy(&png, keep).unwrap();
        }
    }
}
