//! Detaching without `fork`: the command starts itself again with `--foreground` in a new
//! process group (so the terminal's Ctrl-C does not reach it), waits until the mount is
//! live, and returns. A mount that fails reports its own error on the shared stderr.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::cli::MountArgs;
use crate::commands::Outcome;
use crate::error::{Cause, Failure};

/// How long a mount may take to come up (fs-core replays its journal at mount).
const STARTUP: Duration = Duration::from_secs(60);

pub fn detach(a: &MountArgs, index: Option<u32>) -> Outcome {
    use std::os::unix::process::CommandExt;
    let fail = |why: String| Failure::new(&a.image, "mount", None, Cause::Other(why));
    let exe =
        std::env::current_exe().map_err(|e| fail(format!("cannot find this program: {e}")))?;
    let dir = a
        .dir
        .canonicalize()
        .map_err(|e| Failure::new(&a.image, "mount", None, Cause::Host(a.dir.clone(), e)))?;
    let mut cmd = Command::new(exe);
    if let Some(i) = index {
        cmd.arg("--partition-index").arg(i.to_string());
    }
    cmd.arg("mount")
        .arg(&a.image)
        .arg(&dir)
        .arg("--foreground")
        .arg("--detached-child");
    for o in &a.options {
        cmd.arg("-o").arg(o);
    }
    if a.writeback_cache {
        cmd.arg("--writeback-cache");
    }
    // stderr is a pipe, read only if the mount fails, so a caller that captures our output
    // (`$(cowfat mount ..)`) is not left waiting for the mount to end.
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .process_group(0);
    let mut child = cmd
        .spawn()
        .map_err(|e| fail(format!("cannot start the mount process: {e}")))?;
    let started = Instant::now();
    while started.elapsed() < STARTUP {
        if is_mounted(&dir) {
            println!(
                "mounted {} at {} (pid {}); `umount {}` unmounts it",
                a.image.display(),
                dir.display(),
                child.id(),
                dir.display()
            );
            return Ok(None);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(Some(relay_failure(&mut child, status)));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(fail(format!(
        "the mount did not come up within {} s",
        STARTUP.as_secs()
    )))
}

/// The mount process failed before it was live: its own error sentence is on its stderr.
fn relay_failure(child: &mut std::process::Child, status: std::process::ExitStatus) -> u8 {
    use std::io::Read;
    let mut said = String::new();
    if let Some(mut err) = child.stderr.take() {
        let _ = err.read_to_string(&mut said);
    }
    eprint!("{said}");
    if said.is_empty() {
        eprintln!("cowfat: the mount process ended ({status}) before the mount was live.");
    }
    status
        .code()
        .and_then(|c| u8::try_from(c).ok())
        .filter(|c| *c != 0)
        .unwrap_or(1)
}

/// In the detached mount, once it is live: stderr (a pipe to the starting command, which
/// is about to exit) goes to /dev/null, so later lines are not written into a closed pipe.
pub fn release_stderr() {
    if let Ok(null) = std::fs::OpenOptions::new().write(true).open("/dev/null") {
        let _ = nix::unistd::dup2_stderr(&null);
    }
}

/// Whether `dir` (canonical) is a FUSE mount point now.
pub fn is_mounted(dir: &Path) -> bool {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return false;
    };
    info.lines().any(|line| mount_line_matches(line, dir))
}

/// mountinfo: "id parent maj:min root MOUNTPOINT opts ... - FSTYPE source superopts".
fn mount_line_matches(line: &str, dir: &Path) -> bool {
    let mut fields = line.split(' ');
    let point = fields.nth(4).map(unescape);
    let fstype = line
        .split(" - ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next());
    point.as_deref() == Some(dir) && fstype.is_some_and(|t| t.starts_with("fuse"))
}

/// mountinfo writes space, tab, newline and backslash as three-digit octal escapes.
fn unescape(s: &str) -> PathBuf {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('\\') {
        out.push_str(&rest[..i]);
        let code = rest
            .get(i + 1..i + 4)
            .and_then(|o| u8::from_str_radix(o, 8).ok());
        match code {
            Some(c) => {
                out.push(char::from(c));
                rest = &rest[i + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[i + 1..];
            }
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_line_with_escaped_space() {
        let line = "48 29 0:45 / /tmp/a\\040b rw,relatime - fuse.cowfat cowfat:x rw,user_id=0";
        assert!(mount_line_matches(line, Path::new("/tmp/a b")));
        assert!(!mount_line_matches(line, Path::new("/tmp/a")));
    }
}
