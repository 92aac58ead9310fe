//! Time caps and repeated measurement: every run is bounded, a peer that is too slow shows
//! as "capped" instead of stalling the whole benchmark.

use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::Result;

/// The error a run returns when it passed its cap (checked between steps).
#[derive(Debug)]
pub struct CapExceeded(pub Duration);

impl std::fmt::Display for CapExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "stopped at the {:.0} s time cap", self.0.as_secs_f64())
    }
}
impl std::error::Error for CapExceeded {}

/// A deadline for one run.
#[derive(Debug, Clone, Copy)]
pub struct Cap {
    start: Instant,
    limit: Duration,
}

impl Cap {
    pub fn new(limit: Duration) -> Cap {
        Cap {
            start: Instant::now(),
            limit,
        }
    }
    /// Err once the cap has passed; called between steps of a long loop.
    pub fn check(&self) -> Result<()> {
        if self.start.elapsed() > self.limit {
            return Err(CapExceeded(self.limit).into());
        }
        Ok(())
    }
}

/// One measured run: seconds, and what it wrote to storage when that was measured.
#[derive(Debug, Clone, Default)]
pub struct Sample {
    pub secs: f64,
    pub bytes_written: Option<u64>,
    /// Extra figures for the note column (memory, for example), already formatted.
    pub note: Option<String>,
}

impl Sample {
    pub fn secs(secs: f64) -> Sample {
        Sample {
            secs,
            ..Sample::default()
        }
    }
}

/// Runs `f` on a worker thread and gives up waiting after the cap. Used for anything that
/// goes through a mount: a hung FUSE server would block the calling thread in a system call
/// forever. The caller's mount guard then unmounts (or kills the server), which makes the
/// stuck call fail and the worker end.
pub fn on_worker<T: Send + 'static>(
    limit: Duration,
    f: impl FnOnce(Cap) -> Result<T> + Send + 'static,
) -> Result<T> {
    let (tx, rx) = mpsc::channel();
    let cap = Cap::new(limit);
    std::thread::spawn(move || {
        let _ = tx.send(f(cap));
    });
    match rx.recv_timeout(limit + Duration::from_secs(1)) {
        Ok(r) => r,
        Err(_) => Err(CapExceeded(limit).into()),
    }
}

pub fn is_cap(e: &anyhow::Error) -> bool {
    e.downcast_ref::<CapExceeded>().is_some()
}
