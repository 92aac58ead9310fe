//! Results: one row per (workload, case, system), the table of medians with the ratio
//! cowfat/peer, and the JSON file.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::cap::{is_cap, Sample};

/// Which side of the comparison a row is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Side {
    CowfatInProcess,
    CowfatFuse,
    Peer,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "kebab-case")]
pub enum Outcome {
    Measured {
        samples_s: Vec<f64>,
        median_s: f64,
        bytes_written: Option<u64>,
        note: Option<String>,
    },
    Skipped {
        reason: String,
    },
    Capped {
        cap_s: f64,
    },
    Failed {
        error: String,
    },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Row {
    pub workload: String,
    pub case: String,
    pub system: String,
    pub side: Side,
    /// Bytes the operation moves, for a MiB/s column (throughput rows).
    pub payload_bytes: Option<u64>,
    /// Where the row sits on a plot's x axis (file size or file count).
    pub x: Option<f64>,
    pub outcome: Outcome,
}

impl Row {
    pub fn median(&self) -> Option<f64> {
        match &self.outcome {
            Outcome::Measured { median_s, .. } => Some(*median_s),
            _ => None,
        }
    }
}

pub fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    match s.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => s[n / 2],
        n => (s[n / 2 - 1] + s[n / 2]) / 2.0,
    }
}

/// Turns the repeats of one system into an outcome.
pub fn outcome(result: anyhow::Result<Vec<Sample>>) -> Outcome {
    match result {
        Ok(samples) if !samples.is_empty() => {
            let secs: Vec<f64> = samples.iter().map(|s| s.secs).collect();
            let mut written: Vec<f64> = samples
                .iter()
                .filter_map(|s| s.bytes_written.map(|b| b as f64))
                .collect();
            let bytes_written = (written.len() == samples.len()).then(|| {
                written.sort_by(f64::total_cmp);
                median(&written) as u64
            });
            Outcome::Measured {
                median_s: median(&secs),
                samples_s: secs,
                bytes_written,
                note: samples.last().and_then(|s| s.note.clone()),
            }
        }
        Ok(_) => Outcome::Failed {
            error: "no samples".into(),
        },
        Err(e) if is_cap(&e) => Outcome::Capped {
            cap_s: e
                .downcast_ref::<crate::cap::CapExceeded>()
                .map(|c| c.0.as_secs_f64())
                .unwrap_or(0.0),
        },
        Err(e) => Outcome::Failed {
            error: format!("{e:#}"),
        },
    }
}

#[derive(Debug, Default, Serialize)]
pub struct Report {
    pub rows: Vec<Row>,
}

impl Report {
    pub fn push(&mut self, row: Row) {
        print_progress(&row);
        self.rows.push(row);
    }

    /// A cowfat row that failed (or never finished) makes the run fail; peers only skip.
    pub fn cowfat_failures(&self) -> Vec<&Row> {
        self.rows
            .iter()
            .filter(|r| r.side != Side::Peer)
            .filter(|r| matches!(r.outcome, Outcome::Failed { .. } | Outcome::Capped { .. }))
            .collect()
    }

    fn reference(&self, row: &Row, side: Side) -> Option<f64> {
        self.rows
            .iter()
            .find(|r| r.workload == row.workload && r.case == row.case && r.side == side)
            .and_then(Row::median)
    }

    /// The table of medians. Ratios are cowfat's time over this row's time: below 1 means
    /// cowfat is faster than this system.
    pub fn table(&self) -> String {
        let header = [
            "workload",
            "case",
            "system",
            "median",
            "MiB/s",
            "written",
            "in-proc/this",
            "FUSE/this",
            "n",
            "note",
        ];
        let mut lines: Vec<[String; 10]> = Vec::new();
        for r in &self.rows {
            let ratio = |side| match (self.reference(r, side), r.median()) {
                (Some(c), Some(p)) if r.side != side && p > 0.0 => format!("{:.3}", c / p),
                _ => "-".into(),
            };
            let (median, mibs, written, n, note) = match &r.outcome {
                Outcome::Measured {
                    samples_s,
                    median_s,
                    bytes_written,
                    note,
                } => (
                    fmt_secs(*median_s),
                    r.payload_bytes
                        .map(|b| format!("{:.0}", b as f64 / (1 << 20) as f64 / median_s))
                        .unwrap_or_else(|| "-".into()),
                    bytes_written.map(fmt_bytes).unwrap_or_else(|| "-".into()),
                    samples_s.len().to_string(),
                    note.clone().unwrap_or_default(),
                ),
                Outcome::Skipped { reason } => skipped("skipped", reason),
                Outcome::Capped { cap_s } => skipped(
                    "capped",
                    &format!("did not finish within the {cap_s:.0} s cap"),
                ),
                Outcome::Failed { error } => skipped("FAILED", error),
            };
            lines.push([
                r.workload.clone(),
                r.case.clone(),
                r.system.clone(),
                median,
                mibs,
                written,
                ratio(Side::CowfatInProcess),
                ratio(Side::CowfatFuse),
                n,
                note,
            ]);
        }
        let mut widths = header.map(str::len);
        for l in &lines {
            for (w, c) in widths.iter_mut().zip(l.iter()).take(9) {
                *w = (*w).max(c.chars().count());
            }
        }
        let mut out = String::new();
        let put = |out: &mut String, cells: &[String]| {
            let mut line = String::new();
            for (i, c) in cells.iter().enumerate() {
                if i == 9 {
                    line.push_str(c);
                } else if (3..=8).contains(&i) {
                    let _ = write!(line, "{c:>w$}  ", w = widths[i]);
                } else {
                    let _ = write!(line, "{c:<w$}  ", w = widths[i]);
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        };
        put(&mut out, &header.map(String::from));
        put(&mut out, &widths.map(|w| "-".repeat(w)));
        let mut last = String::new();
        for l in lines {
            if !last.is_empty() && l[0] != last {
                out.push('\n');
            }
            last = l[0].clone();
            put(&mut out, &l);
        }
        out
    }
}

fn skipped(what: &str, why: &str) -> (String, String, String, String, String) {
    (
        what.into(),
        "-".into(),
        "-".into(),
        "0".into(),
        why.replace('\n', " "),
    )
}

pub fn fmt_secs(s: f64) -> String {
    if s < 1e-3 {
        format!("{:.1} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

pub fn fmt_bytes(b: u64) -> String {
    let b = b as f64;
    if b < 1024.0 * 1024.0 {
        format!("{:.0} KiB", b / 1024.0)
    } else if b < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", b / (1024.0 * 1024.0))
    } else {
        format!("{:.2} GiB", b / (1024.0 * 1024.0 * 1024.0))
    }
}

fn print_progress(r: &Row) {
    let what = match &r.outcome {
        Outcome::Measured { median_s, .. } => fmt_secs(*median_s),
        Outcome::Skipped { reason } => format!("skipped: {reason}"),
        Outcome::Capped { cap_s } => format!("capped at {cap_s:.0} s"),
        Outcome::Failed { error } => format!("FAILED: {error}"),
    };
    eprintln!("  {} / {} / {}: {}", r.workload, r.case, r.system, what);
}
