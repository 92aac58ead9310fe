//! What every workload needs: the plan (sizes, repeats, caps), the scratch disk, the
//! `cowfat` binary, which peers can run, and the report rows go to.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;

use crate::cap::Sample;
use crate::host;
use crate::report::{self, Report, Row, Side};
use crate::scratch::Scratch;

/// Sizes and repeats: the full run, or `--quick` for CI.
#[derive(Debug, Clone)]
pub struct Plan {
    pub quick: bool,
    pub repeats: usize,
    pub first_write_sizes: Vec<u64>,
    pub seq_bytes: u64,
    pub small_counts: Vec<usize>,
    pub mount_disk: u64,
    pub mount_files: usize,
    /// Per run of one system; a run past it is stopped and shown as capped.
    pub cap: Duration,
    /// Systems not to measure (`--skip`): a row whose system name starts with one of these
    /// is shown as skipped.
    pub skip: Vec<String>,
}

impl Plan {
    pub fn new(quick: bool, repeats: Option<usize>) -> Plan {
        const M: u64 = 1 << 20;
        if quick {
            Plan {
                quick,
                repeats: repeats.unwrap_or(1),
                first_write_sizes: vec![16 * M, 64 * M],
                seq_bytes: 32 * M,
                small_counts: vec![200, 1000],
                mount_disk: 64 << 30,
                mount_files: 1000,
                cap: Duration::from_secs(60),
                skip: Vec::new(),
            }
        } else {
            Plan {
                quick,
                repeats: repeats.unwrap_or(3),
                first_write_sizes: vec![16 * M, 256 * M, 1024 * M],
                seq_bytes: 256 * M,
                small_counts: vec![2000, 10000],
                mount_disk: 1 << 40,
                mount_files: 10000,
                cap: Duration::from_secs(180),
                skip: Vec::new(),
            }
        }
    }
}

pub struct Ctx {
    pub plan: Plan,
    pub scratch: Scratch,
    /// The `cowfat` binary, or why the FUSE rows cannot run.
    pub cowfat: Result<PathBuf, String>,
    pub root: bool,
    pub report: Report,
    pending_error: Option<anyhow::Error>,
}

/// One measured phase of a run: its case label, payload for MiB/s, plot position.
#[derive(Debug, Clone)]
pub struct Phase {
    pub case: String,
    pub payload_bytes: Option<u64>,
    pub x: Option<f64>,
}

impl Phase {
    pub fn new(case: impl Into<String>, x: Option<f64>) -> Phase {
        Phase {
            case: case.into(),
            payload_bytes: None,
            x,
        }
    }
}

/// A copy of a cap error that keeps its type (errors are not Clone).
fn cap_of(e: &anyhow::Error) -> anyhow::Error {
    match e.downcast_ref::<crate::cap::CapExceeded>() {
        Some(c) => crate::cap::CapExceeded(c.0).into(),
        None => anyhow::anyhow!("{e:#}"),
    }
}

impl Ctx {
    /// Drops the page cache for a cold run. Not root: the run is warm, and says so.
    pub fn cold(&self) -> Result<()> {
        if self.root {
            host::drop_caches()
        } else {
            Ok(())
        }
    }

    pub fn cold_note(&self) -> Option<String> {
        (!self.root).then(|| "WARM: not root, page cache not dropped".to_string())
    }

    /// Why `tool` cannot run, if it cannot.
    pub fn need_tool(&self, tool: &str) -> Result<(), String> {
        match host::which(tool) {
            Some(_) => Ok(()),
            None => Err(format!("{tool} is not installed")),
        }
    }

    /// Why the FUSE server `tool` cannot run, if it cannot.
    pub fn need_fuse_tool(&self, tool: &str) -> Result<(), String> {
        match host::fuse_unavailable() {
            Some(why) => Err(why),
            None => self.need_tool(tool),
        }
    }

    pub fn need_root(&self, what: &str) -> Result<(), String> {
        if self.root {
            Ok(())
        } else {
            Err(format!("{what} needs root"))
        }
    }

    pub fn need_cowfat(&self) -> Result<PathBuf, String> {
        self.cowfat.clone()
    }

    /// Runs `f` once per repeat and records the row.
    #[allow(clippy::too_many_arguments)]
    pub fn measure(
        &mut self,
        workload: &str,
        case: &str,
        system: &str,
        side: Side,
        payload_bytes: Option<u64>,
        x: Option<f64>,
        can_run: Result<(), String>,
        mut f: impl FnMut(&mut Ctx) -> Result<Sample>,
    ) {
        let phase = Phase {
            case: case.into(),
            payload_bytes,
            x,
        };
        self.measure_phases(workload, &[phase], system, side, can_run, |c| {
            Ok(vec![f(c)?])
        });
    }

    /// Runs `f` once per repeat; each run measures several phases in order (create, then
    /// list, then read), one row each. A failure in any phase fails them all.
    pub fn measure_phases(
        &mut self,
        workload: &str,
        phases: &[Phase],
        system: &str,
        side: Side,
        can_run: Result<(), String>,
        mut f: impl FnMut(&mut Ctx) -> Result<Vec<Sample>>,
    ) {
        let mut per_phase: Vec<Vec<Sample>> = vec![Vec::new(); phases.len()];
        let skipped = self
            .plan
            .skip
            .iter()
            .any(|s| system.starts_with(s.as_str()));
        let can_run = if skipped {
            Err("left out with --skip".to_string())
        } else {
            can_run
        };
        let mut result = can_run.map_err(Some);
        if result.is_ok() {
            for _ in 0..self.plan.repeats.max(1) {
                match f(self) {
                    Ok(samples) if samples.len() == phases.len() => {
                        for (p, s) in per_phase.iter_mut().zip(samples) {
                            p.push(s);
                        }
                    }
                    Ok(_) => {
                        result = Err(None);
                        break;
                    }
                    Err(e) => {
                        self.pending_error = Some(e);
                        result = Err(None);
                        break;
                    }
                }
            }
        }
        let error = self.pending_error.take();
        for (phase, samples) in phases.iter().zip(per_phase) {
            let outcome = match &result {
                Ok(()) => report::outcome(Ok(samples)),
                Err(Some(reason)) => report::Outcome::Skipped {
                    reason: reason.clone(),
                },
                Err(None) => match &error {
                    Some(e) => report::outcome(Err(cap_of(e))),
                    None => report::Outcome::Failed {
                        error: "wrong number of phases measured".into(),
                    },
                },
            };
            self.report.push(Row {
                workload: workload.into(),
                case: phase.case.clone(),
                system: system.into(),
                side,
                payload_bytes: phase.payload_bytes,
                x: phase.x,
                outcome,
            });
        }
    }

    pub fn new(plan: Plan, scratch: Scratch, cowfat: Result<PathBuf, String>) -> Ctx {
        Ctx {
            plan,
            scratch,
            cowfat,
            root: host::is_root(),
            report: Report::default(),
            pending_error: None,
        }
    }
}
