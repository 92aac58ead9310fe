//! Crash consistency on a disk with a volatile write cache (the model in `fs_core::crash`):
//! a workload's writes and flushes are recorded, and every crash state the model allows (all
//! writes before the last completed flush, any subset of the later ones, one possibly torn)
//! is mounted and checked. It must check clean, and show the state of the last operation that
//! had returned by the latest moment the crash can have come (what a flush promised), or of
//! the one in progress; a sealed volume's base must stay what it was. Each test prints the
//! number of crash states it checked. `COWFAT_CRASH_STATES=N` widens the run (docs/format.md).

mod common;
use common::*;
use fs_core::crash::{CrashPlan, CrashState};
use fs_core::{BlockDevice, CrashRecorder, Error, MemDevice, Volume};
use std::collections::BTreeMap;

type Snapshot = BTreeMap<String, Option<Vec<u8>>>;

/// Marker entries (their names cannot be file paths, which start with '/').
const SEALED: &str = "<sealed>";
const NOT_COWFAT: &str = "<not a cowfat volume>";

/// Every path with its content (None for directories), and whether the volume is sealed.
fn snapshot<D: BlockDevice>(vol: &mut Volume<D>) -> Snapshot {
    let mut out = Snapshot::new();
    if vol.is_sealed() {
        out.insert(SEALED.into(), None);
    }
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

/// The base of a sealed image (what a volume discard would bring back), None if not sealed.
fn base_snapshot(image: &MemDevice) -> Option<Snapshot> {
    let mut vol = mount(image.clone());
    if !vol.is_sealed() {
        return None;
    }
    vol.discard().unwrap();
    Some(snapshot(&mut vol))
}

/// A recorded run: the recorder, the state after each step, and the position in the
/// recorder's ops at which each step returned (step 0 = the start, at 0).
struct Recording {
    recorder: CrashRecorder,
    states: Vec<Snapshot>,
    bases: Vec<Option<Snapshot>>,
    returned_at: Vec<usize>,
}

impl Recording {
    fn start(vol: &mut Volume<CrashRecorder>, with_base: bool) -> Recording {
        let state = snapshot(vol);
        let base = with_base
            .then(|| base_snapshot(vol.device().current()))
            .flatten();
        Recording {
            recorder: CrashRecorder::new(MemDevice::new(0)),
            states: vec![state],
            bases: vec![base],
            // The mount's own recovery writes show this same state: step 0 holds from the start.
            returned_at: vec![0],
        }
    }

    /// A step returned: its state is what a crash from now on must show.
    fn step(&mut self, vol: &mut Volume<CrashRecorder>) {
        let with_base = self.bases[0].is_some();
        self.states.push(snapshot(vol));
        let base = with_base
            .then(|| base_snapshot(vol.device().current()))
            .flatten();
        self.bases.push(base);
        self.returned_at.push(vol.device().ops.len());
    }

    fn finish(mut self, vol: Volume<CrashRecorder>) -> Recording {
        self.recorder = vol.unmount().unwrap();
        self
    }

    /// The steps a crash state may show: the last step that had returned at the latest
    /// moment the crash can have come, or the one in progress then; a step that returned
    /// before the earliest moment may not be lost.
    fn allowed(&self, crash: &CrashState) -> Vec<usize> {
        let done_by = |t: usize| self.returned_at.iter().rposition(|&r| r <= t).unwrap();
        let (early, late) = (done_by(crash.earliest_crash), done_by(crash.latest_crash));
        (early..=early + 1)
            .filter(|&i| i >= late && i <= late + 1 && i < self.states.len())
            .collect()
    }
}

fn shape(s: &Snapshot) -> Vec<(String, Option<usize>)> {
    s.iter()
        .map(|(k, v)| (k.clone(), v.as_ref().map(Vec::len)))
        .collect()
}

/// Whether `got` has the names and sizes of one of `shapes_of` and every byte from one of
/// `bytes_of` (a data overwrite in place that was not synced may have landed partly, as in
/// any file system that does not journal data).
fn matches(got: &Snapshot, shapes_of: &[&Snapshot], bytes_of: &[&Snapshot]) -> bool {
    let got_shape = shape(got);
    if !shapes_of.iter().any(|c| shape(c) == got_shape) {
        return false;
    }
    got.iter().all(|(path, content)| {
        let Some(bytes) = content else { return true };
        bytes.iter().enumerate().all(|(i, b)| {
            bytes_of
                .iter()
                .any(|c| c.get(path).and_then(|v| v.as_ref()).and_then(|v| v.get(i)) == Some(b))
        })
    })
}

/// What one crash image shows: its snapshot, or the not-a-volume marker. The image must
/// check clean; the mounted (recovered) image is handed back.
fn observe(image: MemDevice, what: &str) -> (Snapshot, Option<MemDevice>) {
    let (report, image) = match fs_core::fsck::check(image, false, &mut |_, _| {}) {
        Err(Error::NotCowfat(_)) => return (Snapshot::from([(NOT_COWFAT.into(), None)]), None),
        Err(e) => panic!("{what}: check failed: {e}"),
        Ok(checked) => checked,
    };
    assert!(
        report.is_clean(),
        "{what}: fsck found {:#?}",
        report.problems
    );
    let mut vol =
        Volume::mount(image, opts()).unwrap_or_else(|e| panic!("{what}: mount failed: {e}"));
    let snap = snapshot(&mut vol);
    (snap, Some(vol.unmount().unwrap()))
}

/// Checks every crash state of `rec`; returns how many.
fn check_crash_states(label: &str, rec: &Recording, plan: &CrashPlan) -> usize {
    let mut checked = 0;
    rec.recorder.for_each_crash_state(plan, |crash| {
        let what = format!(
            "{label}: epoch {} (ops {}..{}), landed {:?} torn {:?}",
            crash.epoch,
            crash.epoch_start,
            crash.latest_crash,
            crash.subset.landed,
            crash.subset.torn
        );
        let allowed = rec.allowed(&crash);
        assert!(
            !allowed.is_empty(),
            "{what}: a step returned without a flush"
        );
        let check_base = rec.bases[allowed[0]].is_some() && checked % 3 == 0;
        let image = crash.image;
        let (got, mounted) = observe(image, &what);
        let shapes: Vec<&Snapshot> = allowed.iter().map(|&i| &rec.states[i]).collect();
        let lo = allowed[0];
        let hi = (allowed[allowed.len() - 1] + 1).min(rec.states.len() - 1);
        let bytes: Vec<&Snapshot> = (lo..=hi).map(|i| &rec.states[i]).collect();
        assert!(
            matches(&got, &shapes, &bytes),
            "{what}: the volume shows none of steps {allowed:?}; got {:?}",
            got.keys().collect::<Vec<_>>()
        );
        if check_base {
            if let Some(image) = mounted {
                let base = base_snapshot(&image);
                assert!(
                    allowed.iter().any(|&i| rec.bases[i] == base),
                    "{what}: the base is none of steps {allowed:?}"
                );
            }
        }
        checked += 1;
    });
    println!(
        "{label}: {checked} crash states checked ({} writes, {} flushes)",
        rec.recorder.write_count(),
        rec.recorder.ops.len() - rec.recorder.write_count()
    );
    assert!(checked > 0);
    checked
}

fn recorded(start: MemDevice) -> Volume<CrashRecorder> {
    Volume::mount(CrashRecorder::new(start), opts()).unwrap()
}

fn sealed_start(cluster_size: u32) -> MemDevice {
    let mut vol = mount(formatted(8 << 20, cluster_size));
    mkdir(&mut vol, "/base");
    create_file(&mut vol, "/base/b1", &pattern(1, 40_000));
    create_file(&mut vol, "/base/b2", &pattern(2, 9_000));
    vol.seal().unwrap();
    vol.unmount().unwrap()
}

/// Creates, overwrites, deletes, renames and truncates over `phases` steps, each ending in a
/// sync, on a sealed volume.
fn namespace_and_data_work(cluster_size: u32, seed: u64) -> Recording {
    let mut vol = recorded(sealed_start(cluster_size));
    let mut rec = Recording::start(&mut vol, true);
    let root = vol.root().unwrap();
    for p in 0..5u64 {
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
        rec.step(&mut vol);
    }
    rec.finish(vol)
}

#[test]
fn crash_states_of_namespace_and_data_work_with_4k_clusters() {
    let rec = namespace_and_data_work(4096, 1);
    check_crash_states("4k clusters", &rec, &CrashPlan::from_env(1));
}

#[test]
fn crash_states_of_namespace_and_data_work_with_512_byte_clusters() {
    let rec = namespace_and_data_work(512, 2);
    check_crash_states("512-byte clusters", &rec, &CrashPlan::from_env(2));
}

/// Unsealed files overwritten in place and extended, so data flushes guard fresh clusters.
#[test]
fn crash_states_of_unsealed_writes() {
    let mut vol = recorded(formatted(8 << 20, 4096));
    let mut rec = Recording::start(&mut vol, false);
    for p in 0..4u64 {
        let f = create_file(&mut vol, &format!("/f{p}"), &pattern(30 + p, 6000));
        vol.sync().unwrap();
        rec.step(&mut vol);
        vol.write(f, 4000, &pattern(40 + p, 9000)).unwrap();
        if p > 0 {
            let prev = vol.resolve(&format!("/f{}", p - 1)).unwrap();
            vol.set_file_size(prev, 1000).unwrap();
        }
        vol.sync().unwrap();
        rec.step(&mut vol);
    }
    let rec = rec.finish(vol);
    check_crash_states("unsealed writes", &rec, &CrashPlan::from_env(3));
}

#[test]
fn crash_states_of_seal() {
    let mut vol = recorded(formatted(8 << 20, 4096));
    let mut rec = Recording::start(&mut vol, false);
    mkdir(&mut vol, "/d");
    create_file(&mut vol, "/d/a", &pattern(4, 20_000));
    create_file(&mut vol, "/b", &pattern(5, 3000));
    vol.sync().unwrap();
    rec.step(&mut vol);
    vol.seal().unwrap();
    rec.step(&mut vol);
    let b = vol.resolve("/b").unwrap();
    vol.write(b, 100, &pattern(6, 5000)).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states("seal", &rec, &CrashPlan::from_env(4));
}

/// A sealed volume with overlay changes: b1 rewritten, b2 truncated, a new file.
fn overlay_changes() -> MemDevice {
    let mut vol = mount(sealed_start(4096));
    let b1 = vol.resolve("/base/b1").unwrap();
    vol.write(b1, 5000, &pattern(7, 12_000)).unwrap();
    let b2 = vol.resolve("/base/b2").unwrap();
    vol.set_file_size(b2, 1000).unwrap();
    create_file(&mut vol, "/fresh", &pattern(8, 7000));
    vol.unmount().unwrap()
}

#[test]
fn crash_states_of_volume_commit() {
    let mut vol = recorded(overlay_changes());
    let mut rec = Recording::start(&mut vol, true);
    vol.commit().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states("volume commit", &rec, &CrashPlan::from_env(5));
}

/// A commit while a file is unlinked but open (an orphan), then its last close: a crash
/// anywhere must leave neither its clusters in the base nor its record behind.
#[test]
fn crash_states_of_volume_commit_with_an_open_orphan() {
    let mut vol = recorded(overlay_changes());
    let mut rec = Recording::start(&mut vol, true);
    let root = vol.root().unwrap();
    let f = create_file(&mut vol, "/open", &pattern(9, 30_000));
    vol.unlink(root, &name("open")).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    vol.commit().unwrap();
    rec.step(&mut vol);
    vol.write(f, 10_000, &pattern(10, 8000)).unwrap();
    vol.purge_orphan(f).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states(
        "volume commit with an open orphan",
        &rec,
        &CrashPlan::from_env(7),
    );
}

#[test]
fn crash_states_of_volume_discard() {
    let mut vol = recorded(overlay_changes());
    let mut rec = Recording::start(&mut vol, true);
    vol.discard().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states("volume discard", &rec, &CrashPlan::from_env(6));
}

#[test]
fn crash_states_of_file_commit_and_discard() {
    let mut vol = recorded(overlay_changes());
    let mut rec = Recording::start(&mut vol, true);
    let b1 = vol.resolve("/base/b1").unwrap();
    vol.commit_file(b1).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    let b2 = vol.resolve("/base/b2").unwrap();
    vol.discard_file(b2).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states("file commit and discard", &rec, &CrashPlan::from_env(7));
}

#[test]
fn crash_states_of_writes_into_reserved_overlay_clusters() {
    let mut vol = recorded(sealed_start(4096));
    let mut rec = Recording::start(&mut vol, true);
    let b1 = vol.resolve("/base/b1").unwrap();
    assert!(vol.reserve_overlay(b1, 0, 40_000).unwrap() > 0);
    vol.write(b1, 8192, &pattern(9, 10_000)).unwrap();
    vol.sync().unwrap();
    rec.step(&mut vol);
    vol.write(b1, 30_000, &pattern(10, 6000)).unwrap();
    vol.release_overlay_reservation(b1);
    vol.sync().unwrap();
    rec.step(&mut vol);
    let rec = rec.finish(vol);
    check_crash_states("reserved overlay writes", &rec, &CrashPlan::from_env(8));
}

/// fsck --repair frees leaked clusters: a crash during it leaves the files intact and either
/// the leak (which a later repair fixes) or a clean volume.
#[test]
fn crash_states_of_fsck_repair() {
    use fs_core::ondisk::table::{entry_position, END};
    let mut vol = mount(formatted(8 << 20, 4096));
    create_file(&mut vol, "/f", &pattern(11, 10_000));
    let files = snapshot(&mut vol);
    let geo = vol.geometry().clone();
    let mut dev = vol.unmount().unwrap();
    for c in [geo.cluster_end() - 1, geo.cluster_end() - 2] {
        let (block, at) = entry_position(c);
        let offset = geo.live_table_offset + u64::from(block) * 4096;
        let mut data = vec![0u8; 4096];
        dev.get(offset, &mut data);
        data[at..at + 4].copy_from_slice(&END.to_le_bytes());
        fs_core::ondisk::seal_block(&mut data);
        dev.put(offset, &data);
    }
    let (report, recorder) =
        fs_core::fsck::check(CrashRecorder::new(dev), true, &mut |_, _| {}).unwrap();
    assert_eq!(report.exit_code(), 1, "{:#?}", report.problems);
    let mut checked = 0;
    recorder.for_each_crash_state(&CrashPlan::from_env(9), |crash| {
        let what = format!("fsck repair: epoch {} {:?}", crash.epoch, crash.subset);
        let (report, image) = fs_core::fsck::check(crash.image, false, &mut |_, _| {})
            .unwrap_or_else(|e| panic!("{what}: check failed: {e}"));
        assert!(report.exit_code() == 0 || report.exit_code() == 4, "{what}");
        let (_, image) = fs_core::fsck::check(image, true, &mut |_, _| {}).unwrap();
        let mut vol = mount(assert_clean(image));
        assert_eq!(snapshot(&mut vol), files, "{what}: files changed");
        checked += 1;
    });
    println!("fsck repair: {checked} crash states checked");
    assert_clean(recorder.current().clone());
}

/// A crash while formatting leaves either no volume or an empty, clean one; once `format`
/// has returned, the volume is there whatever the cache does.
#[test]
fn crash_states_of_format() {
    let mut recorder = CrashRecorder::new(MemDevice::new(8 << 20));
    let before = recorder.ops.len();
    fs_core::format(
        &mut recorder,
        &fs_core::FormatOptions {
            label: "crash".into(),
            ..Default::default()
        },
    )
    .unwrap();
    let empty = snapshot(&mut mount(recorder.current().clone()));
    let rec = Recording {
        states: vec![Snapshot::from([(NOT_COWFAT.into(), None)]), empty],
        bases: vec![None, None],
        returned_at: vec![before, recorder.ops.len()],
        recorder,
    };
    check_crash_states("format", &rec, &CrashPlan::from_env(10));
}

/// After `unmount` every write is on the medium: the image a power cut leaves then needs no
/// journal replay (it mounts the same with the journal wiped).
#[test]
fn unmount_leaves_nothing_to_replay() {
    let mut vol = recorded(sealed_start(4096));
    let f = create_file(&mut vol, "/after", &pattern(12, 9000));
    vol.write(f, 100, b"rewritten").unwrap();
    let expected = snapshot(&mut vol);
    let geo = vol.geometry().clone();
    let recorder = vol.unmount().unwrap();
    let mut image = recorder.durable_image();
    image.put(geo.journal_offset, &vec![0u8; geo.journal_size as usize]);
    let mut vol = mount(assert_clean(image));
    assert_eq!(snapshot(&mut vol), expected);
}

/// Recovery is crash safe too: a crash during the mount that replays the journal or finishes
/// an interrupted volume commit or discard (or during the first commit after it, which reuses
/// the journal), then a mount again, shows what one uninterrupted recovery shows (or the
/// commit after it).
#[test]
fn crash_during_recovery_then_mount_again() {
    let plan = CrashPlan::from_env(11);
    let mut recoveries = 0;
    let mut checked = 0;
    for op in ["sync", "commit", "discard"] {
        let mut vol = recorded(overlay_changes());
        match op {
            "sync" => {
                let b1 = vol.resolve("/base/b1").unwrap();
                vol.write(b1, 0, &pattern(13, 9000)).unwrap();
                create_file(&mut vol, "/late", &pattern(14, 5000));
                vol.sync().unwrap();
            }
            "commit" => vol.commit().unwrap(),
            _ => vol.discard().unwrap(),
        }
        let recorder = vol.unmount().unwrap();
        let mut n = 0usize;
        recorder.for_each_crash_state(&plan, |crash| {
            n += 1;
            // Only the crash images whose mount has recovery work, and a sample of those.
            let needs = needs_recovery(&crash.image);
            if !needs || n % 8 != 0 {
                return;
            }
            recoveries += 1;
            let (want, _) = observe(crash.image.clone(), "uninterrupted recovery");
            // Recovery, then the first transaction after it (which reuses the journal).
            let mut vol = Volume::mount(CrashRecorder::new(crash.image), opts()).unwrap();
            create_file(&mut vol, "/after-recovery", &pattern(15, 6000));
            vol.sync().unwrap();
            let want_after = snapshot(&mut vol);
            let recovering = vol.unmount().unwrap();
            recovering.for_each_crash_state(&plan, |again| {
                let what = format!(
                    "{op}: crash {:?} then crash during recovery {:?}",
                    crash.subset, again.subset
                );
                let (got, _) = observe(again.image, &what);
                assert!(
                    got == want || got == want_after,
                    "{what}: neither the recovered state nor the next one"
                );
                checked += 1;
            });
        });
    }
    println!("recovery: {checked} crash states checked in {recoveries} interrupted recoveries");
    assert!(recoveries >= 3 && checked > recoveries);
}

/// Whether mounting `image` writes anything (replays a journal, finishes an overlay op).
fn needs_recovery(image: &MemDevice) -> bool {
    let vol = Volume::mount(CrashRecorder::new(image.clone()), opts()).unwrap();
    vol.device().write_count() > 0
}
