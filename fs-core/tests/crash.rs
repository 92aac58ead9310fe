//! Crash consistency: a workload's device writes are recorded, and the image a crash would
//! leave after every prefix of them (and after a torn last write) is mounted and checked.
//! It must mount, check clean, hold exactly the state of the last completed sync or of the
//! one in progress, and keep the sealed base byte for byte.

mod common;
use common::*;
use fs_core::device::RecordedOp;
use fs_core::{BlockDevice, CrashRecorder, MemDevice, Volume};
use std::collections::BTreeMap;

type Snapshot = BTreeMap<String, Option<Vec<u8>>>;

/// Every path with its content (None for directories).
fn snapshot<D: BlockDevice>(vol: &mut Volume<D>) -> Snapshot {
    let mut out = Snapshot::new();
    let mut stack = vec![(String::new(), vol.root().unwrap())];
    while let Some((path, dir)) = stack.pop() {
        for e in vol.list(dir).unwrap() {
            let p = format!("{path}/{}", e.name);
            if e.info.kind == fs_core::FileKind::Directory {
                out.insert(p.clone(), None);
                stack.push((p, e.info.id));
            } else {
                out.insert(p, Some(read_all(vol, e.info.id)));
            }
        }
    }
    out
}

/// Whether `got` is the state of the last completed sync or of the one in progress: its
/// names and sizes are exactly one of them, and every byte is one of the two versions (a data
/// overwrite in place that was not synced may have landed partly, as in any file system that
/// does not journal data).
fn same_or_in_between(got: &Snapshot, done: &Snapshot, next: Option<&Snapshot>) -> bool {
    let shape = |s: &Snapshot| {
        s.iter()
            .map(|(k, v)| (k.clone(), v.as_ref().map(Vec::len)))
            .collect::<Vec<_>>()
    };
    let got_shape = shape(got);
    let candidates: Vec<&Snapshot> = core::iter::once(done).chain(next).collect();
    if !candidates.iter().any(|c| shape(c) == got_shape) {
        return false;
    }
    got.iter().all(|(path, content)| {
        let Some(bytes) = content else { return true };
        bytes.iter().enumerate().all(|(i, b)| {
            candidates
                .iter()
                .any(|c| c.get(path).and_then(|v| v.as_ref()).and_then(|v| v.get(i)) == Some(b))
        })
    })
}

/// Runs `phases` steps of work, each ending in a sync; returns the recorder, the snapshot
/// after each sync (index 0 = before any), and the write count at which each sync completed.
fn record(
    start: MemDevice,
    phases: usize,
    seed: u64,
) -> (CrashRecorder, Vec<Snapshot>, Vec<usize>) {
    let mut vol = Volume::mount(CrashRecorder::new(start), opts()).unwrap();
    let mut states = vec![snapshot(&mut vol)];
    let mut marks = vec![0];
    let root = vol.root().unwrap();
    for p in 0..phases as u64 {
        let s = seed * 100 + p;
        create_file(
            &mut vol,
            &format!("/new{p}"),
            &pattern(s, 3000 + 2500 * (p as usize % 4)),
        );
        let base = vol.resolve("/base/b1").unwrap();
        vol.write(base, p * 3000, &pattern(s + 1, 5000)).unwrap();
        if p >= 2 {
            vol.delete(root, &name(&format!("new{}", p - 2))).unwrap();
        }
        if p % 3 == 1 {
            let d = vol.resolve("/base").unwrap();
            vol.rename(d, &name("b2"), root, &name(&format!("moved{p}")), false)
                .unwrap();
        }
        if p % 3 == 2 {
            let moved = vol.resolve(&format!("/moved{}", p - 1)).unwrap();
            vol.set_file_size(moved, 100).unwrap();
            let d = vol.resolve("/base").unwrap();
            vol.rename(
                root,
                &name(&format!("moved{}", p - 1)),
                d,
                &name("b2"),
                false,
            )
            .unwrap();
        }
        vol.sync().unwrap();
        marks.push(vol.device().write_count());
        states.push(snapshot(&mut vol));
    }
    let recorder = vol.unmount().unwrap();
    (recorder, states, marks)
}

fn sealed_start(cluster_size: u32) -> (MemDevice, Snapshot) {
    let mut vol = mount(formatted(8 << 20, cluster_size));
    mkdir(&mut vol, "/base");
    create_file(&mut vol, "/base/b1", &pattern(1, 40_000));
    create_file(&mut vol, "/base/b2", &pattern(2, 9_000));
    vol.seal().unwrap();
    let base = snapshot(&mut vol);
    (vol.unmount().unwrap(), base)
}

fn check_every_prefix(cluster_size: u32, seed: u64) {
    let (start, base) = sealed_start(cluster_size);
    let (recorder, states, marks) = record(start, 6, seed);
    let total = recorder.write_count();
    assert!(total > 50, "workload too small: {total} writes");
    let sizes: Vec<usize> = recorder
        .ops
        .iter()
        .filter_map(|op| match op {
            RecordedOp::Write { data, .. } => Some(data.len() / 512),
            RecordedOp::Flush => None,
        })
        .collect();
    let mut checked = 0;
    for k in 0..=total {
        let torn_variants: Vec<Option<usize>> = match sizes.get(k) {
            Some(&sectors) if sectors > 1 => vec![None, Some(1), Some(sectors / 2)],
            _ => vec![None],
        };
        for torn in torn_variants {
            let image = recorder.image_after(k, torn);
            let image = assert_clean(image);
            let mut vol = Volume::mount(image, opts())
                .unwrap_or_else(|e| panic!("prefix {k} torn {torn:?}: mount failed: {e}"));
            let got = snapshot(&mut vol);
            let done = marks.iter().rposition(|&m| m <= k).unwrap();
            let ok = same_or_in_between(&got, &states[done], states.get(done + 1));
            assert!(
                ok,
                "prefix {k} torn {torn:?}: state is neither sync {done} nor the next"
            );
            if k % 4 == 0 {
                vol.discard().unwrap();
                assert_eq!(snapshot(&mut vol), base, "prefix {k}: the base changed");
            }
            checked += 1;
        }
    }
    assert!(checked > total);
}

#[test]
fn crash_at_every_write_with_4k_clusters() {
    check_every_prefix(4096, 1);
}

#[test]
fn crash_at_every_write_with_512_byte_clusters() {
    check_every_prefix(512, 2);
}

#[test]
fn crash_during_volume_commit_and_discard_finishes_at_mount() {
    for discard in [false, true] {
        let (start, base) = sealed_start(4096);
        let mut vol = Volume::mount(start, opts()).unwrap();
        let b1 = vol.resolve("/base/b1").unwrap();
        vol.write(b1, 0, b"changed").unwrap();
        create_file(&mut vol, "/fresh", b"fresh");
        vol.sync().unwrap();
        let live = snapshot(&mut vol);
        let start = vol.unmount().unwrap();
        let mut vol = Volume::mount(CrashRecorder::new(start), opts()).unwrap();
        if discard {
            vol.discard().unwrap()
        } else {
            vol.commit().unwrap()
        }
        let recorder = vol.unmount().unwrap();
        for k in 0..=recorder.write_count() {
            let image = assert_clean(recorder.image_after(k, None));
            let mut vol = Volume::mount(image, opts()).unwrap();
            let got = snapshot(&mut vol);
            assert!(
                got == live || got == base,
                "prefix {k}: neither before nor after"
            );
            let dev = vol.unmount().unwrap();
            let mut vol = mount(assert_clean(dev));
            if discard {
                vol.discard().unwrap();
                assert_eq!(
                    snapshot(&mut vol),
                    base,
                    "prefix {k}: base changed by an interrupted discard"
                );
            }
        }
        // The last image holds the finished operation.
        let mut vol = mount(recorder.current().clone());
        assert_eq!(snapshot(&mut vol), if discard { base } else { live });
    }
}
