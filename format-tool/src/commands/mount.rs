//! mount: the FUSE host lives in `crate::mount` (Linux only).

use super::Outcome;
use crate::cli::MountArgs;

#[cfg(target_os = "linux")]
pub fn run(a: &MountArgs, index: Option<u32>) -> Outcome {
    crate::mount::run(a, index)
}

#[cfg(not(target_os = "linux"))]
pub fn run(a: &MountArgs, _index: Option<u32>) -> Outcome {
    use crate::error::{Cause, Failure};
    let why = Cause::Other("mounting through FUSE is available on Linux only".into());
    Err(Failure::new(&a.image, "mount", None, why))
}
