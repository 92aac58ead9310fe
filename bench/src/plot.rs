//! `--plot FILE.svg`: two panels people would rather look at than read — time to create N
//! files against N, and first-write time against file size — one line per system, log
//! scales (the systems differ by orders of magnitude).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{anyhow, Result};
use plotters::coord::ranged1d::ValueFormatter;
use plotters::prelude::*;

use crate::report::{Report, Row};

const COLORS: [RGBColor; 8] = [
    RGBColor(0xd6, 0x27, 0x28),
    RGBColor(0xff, 0x7f, 0x0e),
    RGBColor(0x1f, 0x77, 0xb4),
    RGBColor(0x2c, 0xa0, 0x2c),
    RGBColor(0x94, 0x67, 0xbd),
    RGBColor(0x8c, 0x56, 0x4b),
    RGBColor(0x7f, 0x7f, 0x7f),
    RGBColor(0x17, 0xbe, 0xcf),
];

pub fn write(report: &Report, path: &Path, title: &str) -> Result<()> {
    let root = SVGBackend::new(path, (1200, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(err)?;
    let root = root.titled(title, ("sans-serif", 18)).map_err(err)?;
    let (left, right) = root.split_horizontally(600);
    let creates = series(report, |r| {
        r.workload == "small-files" && r.case.starts_with("create")
    });
    panel(
        &left,
        "Create N files of 4 KiB, then sync (log time)",
        "files",
        &creates,
        false,
        // The slowest peers sit at the top left, at the smallest N.
        SeriesLabelPosition::LowerRight,
        |x| format!("{x:.0}"),
    )?;
    let first = series(report, |r| r.workload == "first-write");
    panel(
        &right,
        "First 1-byte write + fsync into a sealed file (log-log)",
        "file size (MiB)",
        &first,
        true,
        SeriesLabelPosition::UpperLeft,
        |x| format!("{:.0}", x / (1u64 << 20) as f64),
    )?;
    root.present().map_err(err)?;
    Ok(())
}

type Series = BTreeMap<String, Vec<(f64, f64)>>;

fn series(report: &Report, pick: impl Fn(&Row) -> bool) -> Series {
    let mut s: Series = BTreeMap::new();
    for r in report.rows.iter().filter(|r| pick(r)) {
        if let (Some(x), Some(y)) = (r.x, r.median()) {
            s.entry(r.system.clone())
                .or_default()
                .push((x, y.max(1e-6)));
        }
    }
    s
}

fn panel(
    area: &DrawingArea<SVGBackend, plotters::coord::Shift>,
    caption: &str,
    xlabel: &str,
    data: &Series,
    log_x: bool,
    legend: SeriesLabelPosition,
    xfmt: impl Fn(&f64) -> String,
) -> Result<()> {
    let points = data.values().flatten();
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, f64::MAX, f64::MIN);
    for &(x, y) in points {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    if data.is_empty() {
        (x0, x1, y0, y1) = (1.0, 10.0, 1e-3, 1.0);
    }
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);
    // Room under the lowest line for the legend when it sits at the bottom.
    let floor = if legend == SeriesLabelPosition::LowerRight {
        10.0
    } else {
        2.0
    };
    let y = (y0 / floor..y1 * 2.0).log_scale();
    // Create time against N is plotted on a linear N axis, so linear growth is a straight
    // line; file sizes span decades, so that axis is logarithmic.
    if log_x {
        let mut chart = builder
            .build_cartesian_2d(
                (x0 * 0.7..x1 * 1.4)
                    .log_scale()
                    .with_key_points(key_points(data)),
                y,
            )
            .map_err(err)?;
        draw(&mut chart, xlabel, data, legend, &xfmt)
    } else {
        let mut chart = builder.build_cartesian_2d(0.0..x1 * 1.1, y).map_err(err)?;
        draw(&mut chart, xlabel, data, legend, &xfmt)
    }
}

fn draw<'a, X>(
    chart: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, LogCoord<f64>>>,
    xlabel: &str,
    data: &Series,
    legend: SeriesLabelPosition,
    xfmt: &dyn Fn(&f64) -> String,
) -> Result<()>
where
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    chart
        .configure_mesh()
        .x_desc(xlabel)
        .x_labels(8)
        .x_label_formatter(xfmt)
        .y_label_formatter(&|y| crate::report::fmt_secs(*y))
        .draw()
        .map_err(err)?;
    for (system, pts) in data {
        let color = color_of(system);
        chart
            .draw_series(LineSeries::new(pts.iter().copied(), color.stroke_width(2)))
            .map_err(err)?
            .label(system)
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        chart
            .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
            .map_err(err)?;
    }
    chart
        .configure_series_labels()
        .position(legend)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(err)?;
    Ok(())
}

/// The x values that have data: the file sizes measured, labelled exactly.
fn key_points(data: &Series) -> Vec<f64> {
    let mut v: Vec<f64> = data.values().flatten().map(|p| p.0).collect();
    v.sort_by(f64::total_cmp);
    v.dedup();
    v
}

/// One color per system in both panels: cowfat first, in red and orange.
fn color_of(system: &str) -> RGBColor {
    const ORDER: [&str; 8] = [
        "cowfat FUSE",
        "cowfat in-process",
        "kernel overlayfs",
        "fuse-overlayfs",
        "mtools",
        "fatfs crate",
        "ext4 (reference)",
        "tmpfs (reference)",
    ];
    let i = ORDER.iter().position(|s| *s == system).unwrap_or_else(|| {
        // Systems not in the list (the fsync floor) take the last color.
        COLORS.len() - 1
    });
    COLORS[i % COLORS.len()]
}

fn err(e: impl std::fmt::Debug) -> anyhow::Error {
    anyhow!("plot: {e:?}")
}
