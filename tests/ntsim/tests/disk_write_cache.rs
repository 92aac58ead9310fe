//! The driver's flush path on a disk with a volatile write cache: files written through the
//! driver, `NtFlushBuffersFile` (IRP_MJ_FLUSH_BUFFERS to the volume, which the driver passes
//! on to the disk after fs-core's sync), then a power cut at sampled points of the cache. Each
//! crash image must check clean with fs-core and hold everything a completed flush promised.
//! Also crashes between operations (nothing promised beyond the last flush, but the volume
//! stays consistent) and after a dismount (everything promised).

mod common;
use common::*;
use fs_core::crash::{CrashPlan, CRASH_STATES_ENV};
use fs_core::time::{FixedClock, NtTime};
use fs_core::{MemDevice, MountOptions, Volume};

const RENAME: i32 = windows_sys::Wdk::Storage::FileSystem::FileRenameInformation;
const DISPOSITION: i32 = windows_sys::Wdk::Storage::FileSystem::FileDispositionInformation;

fn pattern(seed: u8, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

/// A file's content in a crash image, None when it is not there. The image must check clean.
fn content(image: &MemDevice, path: &str, what: &str) -> Option<Vec<u8>> {
    let (report, image) = fs_core::fsck::check(image.clone(), false, &mut |_, _| {})
        .unwrap_or_else(|e| panic!("{what}: the crash image does not check: {e}"));
    assert!(
        report.is_clean(),
        "{what}: fsck found {:#?}",
        report.problems
    );
    let options = MountOptions::new(Box::new(FixedClock(NtTime(0)))).read_only();
    let mut vol = Volume::mount(image, options).unwrap();
    let id = vol.resolve(path).ok()?;
    let size = vol.info(id).unwrap().file_size;
    let mut buf = vec![0u8; size as usize];
    vol.read(id, 0, &mut buf).unwrap();
    Some(buf)
}

/// Checks every sampled crash image of the disk as it is now: `promised` files must be there
/// with that content, `maybe` files absent or with one of the given contents.
fn power_cut(
    sim: &Sim,
    when: &str,
    seed: u64,
    promised: &[(&str, &[u8])],
    maybe: &[(&str, &[&[u8]])],
) -> usize {
    let states = std::env::var(CRASH_STATES_ENV)
        .ok()
        .and_then(|v| v.trim().parse().ok());
    let plan = CrashPlan::quick(seed).widened(states);
    let images = sim.disk_crash_images(&plan, seed);
    for (n, image) in images.iter().enumerate() {
        let what = format!("power cut {when}, state {n}");
        for (path, want) in promised {
            let got = content(image, path, &what);
            assert_eq!(
                got.as_deref(),
                Some(*want),
                "{what}: {path} lost what the flush promised"
            );
        }
        for (path, allowed) in maybe {
            if let Some(got) = content(image, path, &what) {
                assert!(
                    allowed.contains(&got.as_slice()),
                    "{what}: {path} holds neither version ({} bytes)",
                    got.len()
                );
            }
        }
    }
    images.len()
}

#[test]
fn what_a_flush_promised_survives_a_power_cut() {
    let mut sim = Sim::new();
    assert_eq!(sim.mount(), status::STATUS_SUCCESS);
    sim.enable_disk_write_cache();
    let a_data = pattern(1, 70_000);
    let b_data = pattern(2, 12_000);
    let a2_data = pattern(3, 9000);
    let mut states = 0;

    // A file written through Cc and flushed: IRP_MJ_FLUSH_BUFFERS on its handle.
    let a = open_rw(&mut sim, "\\a");
    assert_eq!(sim.write(a, Some(0), &a_data), Ok(a_data.len()));
    states += power_cut(
        &sim,
        "before any flush",
        1,
        &[],
        &[("\\a", &[&[], &a_data])],
    );
    assert_eq!(sim.flush(a), status::STATUS_SUCCESS);
    states += power_cut(&sim, "after flushing a", 2, &[("\\a", &a_data)], &[]);
    assert!(
        sim.disk_flushes() >= 2,
        "the driver's flush reached the disk"
    );

    // More work, not flushed: a second file, renamed; a rewrite of a's start.
    let b = open_rw(&mut sim, "\\b");
    assert_eq!(sim.write(b, Some(0), &b_data), Ok(b_data.len()));
    assert_eq!(sim.rename(b, RENAME, "\\c", 0), status::STATUS_SUCCESS);
    sim.close(b);
    sim.lazy_writer();
    states += power_cut(
        &sim,
        "after unflushed work",
        3,
        &[("\\a", &a_data)],
        &[("\\b", &[&[], &b_data]), ("\\c", &[&[], &b_data])],
    );

    // A volume flush (FlushFileBuffers on the volume handle) promises everything.
    let volume = sim.open_volume().expect("volume open");
    assert_eq!(sim.flush(volume), status::STATUS_SUCCESS);
    states += power_cut(
        &sim,
        "after flushing the volume",
        4,
        &[("\\a", &a_data), ("\\c", &b_data)],
        &[("\\b", &[])],
    );
    assert!(content(&sim.medium(), "\\b", "final").is_none());

    // Overwrite a's start and delete c; flush only a.
    let mut a_new = a_data.clone();
    a_new[..a2_data.len()].copy_from_slice(&a2_data);
    assert_eq!(sim.write(a, Some(0), &a2_data), Ok(a2_data.len()));
    let c = open_rw(&mut sim, "\\c");
    assert_eq!(
        sim.set_information(c, DISPOSITION, &[1]),
        status::STATUS_SUCCESS
    );
    sim.close(c);
    assert_eq!(sim.flush(a), status::STATUS_SUCCESS);
    // The file flush commits the volume's metadata too: c's delete is durable with it.
    states += power_cut(
        &sim,
        "after the second flush of a",
        5,
        &[("\\a", &a_new)],
        &[],
    );
    for image in sim.disk_crash_images(&CrashPlan::quick(6), 6) {
        assert!(content(&image, "\\c", "after the delete").is_none());
    }

    sim.close(a);
    sim.close(volume);
    assert_eq!(sim.dismount(), status::STATUS_SUCCESS);
    // After a dismount nothing is left in the cache.
    states += power_cut(&sim, "after the dismount", 7, &[("\\a", &a_new)], &[]);
    println!(
        "ntsim disk write cache: {states} crash images checked, {} disk flushes",
        sim.disk_flushes()
    );
    finish_clean(sim);
}
