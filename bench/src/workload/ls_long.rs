//! Workload 5 (issue 21): `ls -l` of a directory of N files of 4 KiB, cold, through the
//! systems a user lists with it: cowfat's FUSE mount, ext4 and tmpfs. `ls -l` is run as the
//! program itself, because what it asks per file (a stat and two extended attributes,
//! `security.selinux` and `system.posix_acl_access`) is the cost: through FUSE each is a
//! round trip unless the kernel has the answer cached.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Result};

use crate::cap::{on_worker, Sample};
use crate::ctx::{Ctx, Phase};
use crate::report::Side;
use crate::system::{inproc, mounted, pattern, small_name, MIB};

const W: &str = "ls-l";
const LEN: usize = 4096;

pub fn run(ctx: &mut Ctx) -> Result<()> {
    let Some(&n) = ctx.plan.small_counts.iter().max() else {
        return Ok(());
    };
    eprintln!("ls -l of {n} files");
    let phases = [Phase::new(format!("ls -l {n} cold"), Some(n as f64))];
    let names: Vec<String> = (1..=n).map(small_name).collect();
    let image_size = (n as u64 * LEN as u64 * 2 + 64 * MIB).max(300 * MIB);
    let ns = names.clone();
    let can = ctx.need_cowfat().map(|_| ());
    ctx.measure_phases(W, &phases, "cowfat FUSE", Side::CowfatFuse, can, |c| {
        cowfat_fuse(c, &ns, image_size)
    });
    let ns = names.clone();
    ctx.measure_phases(W, &phases, "ext4 (reference)", Side::Peer, Ok(()), |c| {
        let base = c.scratch.fresh("ls-ext4")?;
        let r = files(c, &base, &ns);
        c.scratch.remove(&base);
        r
    });
    let can = ctx.need_root("tmpfs");
    ctx.measure_phases(W, &phases, "tmpfs (reference)", Side::Peer, can, |c| {
        let dir = c.scratch.mount_point("tmpfs")?;
        let m = mounted::tmpfs(&dir, image_size)?;
        let r = files(c, &dir, &names);
        m.unmount()?;
        r.map(|mut s| {
            s[0].note = Some("in memory: no cold state".into());
            s
        })
    });
    Ok(())
}

fn cowfat_fuse(ctx: &mut Ctx, names: &[String], image_size: u64) -> Result<Vec<Sample>> {
    let bin = ctx.need_cowfat().map_err(anyhow::Error::msg)?;
    let image = ctx.scratch.dir.join("ls.vhd");
    inproc::create_image(&image, image_size, false)?;
    let dir = ctx.scratch.mount_point("cowfat")?;
    let log = ctx.scratch.dir.join("cowfat-mount.log");
    let m = mounted::cowfat(&bin, &image, &dir, &log)?;
    let d = dir.join("d");
    std::fs::create_dir(&d)?;
    create(ctx, &d, names)?;
    m.unmount()?;
    // A fresh server and a dropped page cache: nothing listed before is remembered.
    let m = mounted::cowfat(&bin, &image, &dir, &log)?;
    let secs = ls_long_cold(ctx, &d, names.len());
    m.unmount()?;
    ctx.scratch.remove(&image);
    Ok(vec![sample(ctx, secs?)])
}

fn files(ctx: &mut Ctx, base: &Path, names: &[String]) -> Result<Vec<Sample>> {
    let d = base.join("d");
    std::fs::create_dir_all(&d)?;
    create(ctx, &d, names)?;
    let secs = ls_long_cold(ctx, &d, names.len())?;
    Ok(vec![sample(ctx, secs)])
}

fn create(ctx: &Ctx, d: &Path, names: &[String]) -> Result<()> {
    let (dd, ns) = (d.to_path_buf(), names.to_vec());
    on_worker(ctx.plan.cap, move |cap| {
        mounted::create_many(&dd, &ns, &pattern(LEN, 7), &cap)
    })
}

/// Drops the page cache, then times `ls -l DIR` (output discarded) and checks it listed
/// every file.
fn ls_long_cold(ctx: &Ctx, d: &Path, count: usize) -> Result<f64> {
    ctx.cold()?;
    let dd = d.to_path_buf();
    on_worker(ctx.plan.cap, move |_| {
        let t = Instant::now();
        let out = Command::new("ls")
            .arg("-l")
            .arg(&dd)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()?;
        let secs = t.elapsed().as_secs_f64();
        if !out.status.success() {
            bail!("ls -l {} failed ({})", dd.display(), out.status);
        }
        // One line per file after the "total" line.
        let lines = out
            .stdout
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        if lines != count + 1 {
            bail!(
                "ls -l {} listed {} lines, expected {}",
                dd.display(),
                lines,
                count + 1
            );
        }
        Ok(secs)
    })
}

fn sample(ctx: &Ctx, secs: f64) -> Sample {
    Sample {
        secs,
        bytes_written: None,
        note: ctx.cold_note(),
    }
}
