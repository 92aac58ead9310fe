//! Crash consistency of a dynamic VHD on a host whose file writes sit in a volatile cache
//! until a flush (fs_core::crash): `cowfat create --format vhd-dynamic`, then files written
//! into fresh VHD blocks (data block, sector bitmap, BAT entry, footer move), each step ending
//! in a sync. Every crash state of the image file must open as a VHD (once `create` returned),
//! hold a clean volume showing the last step that returned or the one in progress, give every
//! allocated block an all-present sector bitmap, and, for a sample, read the same through
//! `qemu-img` as through cowfat (`qemu-img check` does not support VHD: `qemu-img compare`
//! reads every block instead).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use fs_core::crash::{epoch_subsets, CrashPlan, Subset};
use fs_core::time::{FixedClock, NtTime};
use fs_core::{BlockDevice, FileAttributes, FileKind, FormatOptions, MountOptions, Name, Volume};

use super::recording::{self, FileOp};
use super::{create, open, open_disk, ImageFormat, Scheme};

type Snapshot = BTreeMap<String, Vec<u8>>;
const NO_VOLUME: &str = "<no volume>";

fn opts() -> MountOptions {
    MountOptions::new(Box::new(FixedClock(NtTime(132_000_000_000_000_000))))
}

fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn snapshot<D: BlockDevice>(vol: &mut Volume<D>) -> Snapshot {
    let root = vol.root().unwrap();
    let mut out = Snapshot::new();
    for e in vol.list(root).unwrap() {
        let mut buf = vec![0u8; e.info.file_size as usize];
        vol.read(e.info.id, 0, &mut buf).unwrap();
        out.insert(format!("/{}", e.name), buf);
    }
    out
}

/// The recorded run: host file operations, the state after each step and where it returned.
struct Run {
    ops: Vec<FileOp>,
    states: Vec<Snapshot>,
    returned_at: Vec<usize>,
}

fn record(path: &Path) -> Run {
    recording::start();
    let no_volume = Snapshot::from([(NO_VOLUME.to_owned(), Vec::new())]);
    let mut states = vec![no_volume];
    let mut returned_at = vec![0];
    // What `cowfat create --format vhd-dynamic` does: the image, a GPT, a formatted volume
    // and a flush.
    let (mut dev, _) = create(path, 16 << 20, ImageFormat::VhdDynamic, Scheme::Gpt, false).unwrap();
    let options = FormatOptions {
        label: "crash".into(),
        ..FormatOptions::default()
    };
    fs_core::format(&mut dev, &options).unwrap();
    dev.flush().unwrap();
    let mut vol = Volume::mount(dev, opts()).unwrap();
    states.push(snapshot(&mut vol));
    returned_at.push(recording::len());
    // Each file lands in VHD blocks the previous ones did not touch.
    let root = vol.root().unwrap();
    for p in 0..3u64 {
        let name = Name::from_str(&format!("f{p}")).unwrap();
        let id = vol
            .create(root, &name, FileKind::File, FileAttributes::empty())
            .unwrap();
        vol.write(id, 0, &pattern(p + 1, 1_500_000)).unwrap();
        vol.sync().unwrap();
        states.push(snapshot(&mut vol));
        returned_at.push(recording::len());
    }
    let f0 = vol.resolve("/f0").unwrap();
    vol.write(f0, 700_000, &pattern(9, 300_000)).unwrap();
    vol.sync().unwrap();
    states.push(snapshot(&mut vol));
    returned_at.push(recording::len());
    drop(vol.unmount().unwrap());
    Run {
        ops: recording::stop(),
        states,
        returned_at,
    }
}

fn apply(file: &mut Vec<u8>, op: &FileOp, torn_sectors: Option<usize>) {
    match op {
        FileOp::Write { offset, data } => {
            let data = match torn_sectors {
                Some(s) => &data[..(s * 512).min(data.len())],
                None => &data[..],
            };
            let (start, end) = (*offset as usize, *offset as usize + data.len());
            if file.len() < end {
                file.resize(end, 0);
            }
            file[start..end].copy_from_slice(data);
        }
        FileOp::SetLen(len) => file.resize(*len as usize, 0),
        FileOp::Flush => {}
    }
}

/// One crash state of the image file: its bytes, and the range of op positions the crash can
/// have come at.
struct FileCrash {
    bytes: Vec<u8>,
    earliest: usize,
    latest: usize,
    subset: Subset,
}

fn for_each_file_crash(ops: &[FileOp], plan: &CrashPlan, mut f: impl FnMut(FileCrash)) {
    let mut durable = Vec::new();
    let (mut start, mut epoch) = (0usize, 0u64);
    while start <= ops.len() {
        let end = ops[start..]
            .iter()
            .position(|op| matches!(op, FileOp::Flush))
            .map_or(ops.len(), |p| start + p);
        let epoch_ops = &ops[start..end];
        let sectors: Vec<usize> = epoch_ops
            .iter()
            .map(|op| match op {
                FileOp::Write { data, .. } => data.len().div_ceil(512),
                _ => 1,
            })
            .collect();
        if !epoch_ops.is_empty() {
            for subset in epoch_subsets(&sectors, plan, epoch) {
                let mut bytes = durable.clone();
                for (k, op) in epoch_ops.iter().enumerate() {
                    if subset.landed[k] {
                        apply(&mut bytes, op, None);
                    } else if let Some((t, cut)) = subset.torn {
                        if t == k {
                            apply(&mut bytes, op, Some(cut));
                        }
                    }
                }
                let earliest = subset.last_issued().map_or(start, |k| start + k + 1);
                f(FileCrash {
                    bytes,
                    earliest,
                    latest: end,
                    subset,
                });
            }
        }
        for op in epoch_ops {
            apply(&mut durable, op, None);
        }
        start = end + 1;
        epoch += 1;
    }
}

/// Checks that every allocated block of a dynamic VHD has an all-present sector bitmap (the
/// specification's readers may consult it; cowfat writes whole blocks as present).
fn check_bitmaps(bytes: &[u8], what: &str) {
    let be32 = |at: usize| u32::from_be_bytes(bytes[at..at + 4].try_into().unwrap());
    let be64 = |at: usize| u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    let footer = bytes.len() - 512;
    let header = be64(footer + 16) as usize;
    let (bat, entries, block_size) = (
        be64(header + 16) as usize,
        be32(header + 28) as usize,
        be32(header + 32) as usize,
    );
    let bitmap = (block_size / 512).div_ceil(8).next_multiple_of(512);
    for i in 0..entries {
        let sector = be32(bat + 4 * i);
        if sector == u32::MAX {
            continue;
        }
        let at = sector as usize * 512;
        assert!(
            at + bitmap + block_size <= footer,
            "{what}: block {i} runs past the footer"
        );
        assert!(
            bytes[at..at + bitmap].iter().all(|&b| b == 0xFF),
            "{what}: block {i} has a sector bitmap that is not all present"
        );
    }
}

/// Whether `got` has the names and sizes of one of the `allowed` steps and every byte from
/// one of the steps up to `hi` (a data overwrite in place may land partly before its sync).
fn matches(got: &Snapshot, allowed: &[usize], hi: usize, states: &[Snapshot]) -> bool {
    let shape = |s: &Snapshot| {
        s.iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect::<Vec<_>>()
    };
    if !allowed.iter().any(|&i| shape(&states[i]) == shape(got)) {
        return false;
    }
    got.iter().all(|(path, bytes)| {
        let versions = (allowed[0]..=hi).filter_map(|i| states[i].get(path));
        if versions.clone().any(|v| v == bytes) {
            return true;
        }
        bytes.iter().enumerate().all(|(at, b)| {
            (allowed[0]..=hi).any(|i| states[i].get(path).and_then(|v| v.get(at)) == Some(b))
        })
    })
}

/// `qemu-img compare` of the image against the disk as cowfat reads it.
fn qemu_agrees(image: &Path, scratch: &Path, what: &str) {
    let mut disk = open_disk(image, false).unwrap();
    let mut raw = vec![0u8; disk.size() as usize];
    disk.read_at(0, &mut raw).unwrap();
    std::fs::write(scratch, &raw).unwrap();
    let out = Command::new("qemu-img")
        .args(["compare", "-f", "vpc", "-F", "raw"])
        .arg(image)
        .arg(scratch)
        .output()
        .expect("qemu-img is installed (apt-get install qemu-utils)");
    assert!(
        out.status.success(),
        "{what}: qemu-img reads the image differently: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn crash_states_of_a_dynamic_vhd_stay_readable_by_cowfat_and_qemu() {
    let dir = tempfile::tempdir().unwrap();
    let run = record(&dir.path().join("disk.vhd"));
    let crash_path = dir.path().join("crash.vhd");
    let scratch = dir.path().join("cowfat-view.raw");
    let plan = CrashPlan::from_env(21);
    let (mut checked, mut by_qemu) = (0usize, 0usize);
    for_each_file_crash(&run.ops, &plan, |crash| {
        let what = format!(
            "ops {}..{} landed {:?} torn {:?}",
            crash.earliest, crash.latest, crash.subset.landed, crash.subset.torn
        );
        let done_by = |t: usize| run.returned_at.iter().rposition(|&r| r <= t).unwrap();
        let (early, late) = (done_by(crash.earliest), done_by(crash.latest));
        let allowed: Vec<usize> = (late..=early + 1)
            .filter(|&i| i < run.states.len())
            .collect();
        assert!(
            !allowed.is_empty(),
            "{what}: a step returned without a flush"
        );
        std::fs::write(&crash_path, &crash.bytes).unwrap();
        let got = match open(&crash_path, false, None) {
            Err(e) => {
                assert!(allowed.contains(&0), "{what}: the image does not open: {e}");
                run.states[0].clone()
            }
            Ok(img) => {
                check_bitmaps(&crash.bytes, &what);
                let (report, dev) = match fs_core::fsck::check(img.dev, false, &mut |_, _| {}) {
                    Ok(checked) => checked,
                    Err(fs_core::Error::NotCowfat(_)) if allowed.contains(&0) => {
                        return;
                    }
                    Err(e) => panic!("{what}: the volume does not check: {e}"),
                };
                assert!(
                    report.is_clean(),
                    "{what}: fsck found {:#?}",
                    report.problems
                );
                let mut vol = Volume::mount(dev, opts().read_only()).unwrap();
                let got = snapshot(&mut vol);
                if checked % 10 == 0 {
                    qemu_agrees(&crash_path, &scratch, &what);
                    by_qemu += 1;
                }
                got
            }
        };
        let hi = (allowed[allowed.len() - 1] + 1).min(run.states.len() - 1);
        assert!(
            matches(&got, &allowed, hi, &run.states),
            "{what}: the volume shows none of steps {allowed:?}"
        );
        checked += 1;
    });
    println!(
        "dynamic VHD: {checked} crash states checked, {by_qemu} of them with qemu-img ({} host file operations)",
        run.ops.len()
    );
    assert!(by_qemu > 0);
}
