use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

fn new_file(dir: &tempfile::TempDir, name: &str) -> (PathBuf, File) {
    let path = dir.path().join(name);
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    (path, f)
}

fn reopen(path: &Path, writable: bool) -> Result<VhdxDisk, VhdxError> {
    let f = File::options()
        .read(true)
        .write(writable)
        .open(path)
        .unwrap();
    let len = f.metadata().unwrap().len();
    VhdxDisk::open(HostFile::new(f, writable), len)
}

/// Deterministic bytes (xorshift), different per seed.
fn pattern(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

/// `qemu-img check` must find nothing wrong; returns its output.
fn qemu_check(path: &Path) -> String {
    let out = Command::new("qemu-img")
        .args(["check", "-f", "vhdx"])
        .arg(path)
        .output()
        .expect("qemu-img is installed (apt-get install qemu-utils)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "qemu-img check failed: {text}");
    assert!(text.contains("No errors were found"), "{text}");
    text
}

fn qemu_info(path: &Path) -> serde_json::Value {
    let out = Command::new("qemu-img")
        .args(["info", "--output=json", "-f", "vhdx"])
        .arg(path)
        .output()
        .expect("qemu-img is installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The virtual disk as qemu reads it.
fn qemu_raw(path: &Path) -> Vec<u8> {
    let raw = path.with_extension("raw");
    let st = Command::new("qemu-img")
        .args(["convert", "-f", "vhdx", "-O", "raw"])
        .arg(path)
        .arg(&raw)
        .status()
        .expect("qemu-img is installed");
    assert!(st.success());
    let bytes = std::fs::read(&raw).unwrap();
    std::fs::remove_file(raw).unwrap();
    bytes
}

/// Writes spread over the disk: inside a block, across a block boundary, at the end.
fn writes(size: u64) -> Vec<(u64, Vec<u8>)> {
    vec![
        (4096, pattern(8192, 1)),
        (DEFAULT_BLOCK_SIZE - 1024, pattern(4096, 2)),
        (size - 512, pattern(512, 3)),
    ]
}

#[test]
fn fixed_and_dynamic_round_trip_and_qemu_agrees() {
    let dir = tempfile::tempdir().unwrap();
    let size = 80 << 20; // not a multiple of the block size: the last block is partial
    for fixed in [true, false] {
        let (path, f) = new_file(&dir, if fixed { "f.vhdx" } else { "d.vhdx" });
        let mut d = VhdxDisk::create(f, size, fixed).unwrap();
        assert_eq!(
            d.kind(),
            if fixed {
                VhdxKind::Fixed
            } else {
                VhdxKind::Dynamic
            }
        );
        assert_eq!(d.block_usage(), (if fixed { 3 } else { 0 }, 3));
        // An all-zero write allocates nothing.
        d.write_at(40 << 20, &[0u8; 4096]).unwrap();
        assert_eq!(d.block_usage().0, if fixed { 3 } else { 0 });
        for (at, bytes) in writes(size) {
            d.write_at(at, &bytes).unwrap();
        }
        d.flush().unwrap();
        drop(d);
        let mut d = reopen(&path, false).unwrap();
        assert_eq!(d.size(), size);
        assert_eq!(d.block_usage(), (3, 3), "blocks 0, 1 and 2 hold data");
        let raw = qemu_raw(&path);
        assert_eq!(raw.len() as u64, size);
        for (at, bytes) in writes(size) {
            let mut back = vec![0u8; bytes.len()];
            d.read_at(at, &mut back).unwrap();
            assert!(back == bytes, "fixed={fixed}: our read at {at}");
            let a = to_usize(at);
            assert!(
                raw[a..a + bytes.len()] == bytes,
                "fixed={fixed}: qemu's read at {at}"
            );
        }
        let mut zeros = vec![1u8; 4096];
        d.read_at(60 << 20, &mut zeros).unwrap();
        assert!(zeros.iter().all(|&b| b == 0));
        qemu_check(&path);
        let info = qemu_info(&path);
        assert_eq!(info["format"], "vhdx");
        assert_eq!(info["virtual-size"], size);
        assert_eq!(info["cluster-size"], DEFAULT_BLOCK_SIZE);
    }
}

/// Reads the current header's log GUID and the BAT entry of `block` straight from the file.
fn on_disk_state(path: &Path, block: u64) -> ([u8; 16], u64) {
    let bytes = std::fs::read(path).unwrap();
    let headers: Vec<Header> = HEADER_OFFSETS
        .iter()
        .map(|&at| {
            Header::read_from_bytes(&bytes[to_usize(at)..to_usize(at) + HEADER_SIZE]).unwrap()
        })
        .filter(|h| h.signature.get() == HEADER_SIGNATURE)
        .collect();
    let current = headers
        .iter()
        .max_by_key(|h| h.sequence_number.get())
        .unwrap();
    let chunk = chunk_ratio(512, DEFAULT_BLOCK_SIZE);
    let at = to_usize(3 * MIB + bat_index(block, chunk) * 8);
    let entry = u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap());
    (current.log_guid, entry)
}

#[test]
fn a_crash_during_block_allocation_is_replayed_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let (path, f) = new_file(&dir, "crash.vhdx");
    let size = 96 << 20;
    let mut d = VhdxDisk::create(f, size, false).unwrap();
    let kept = pattern(65536, 7);
    d.write_at(0, &kept).unwrap();
    d.crash_after(CrashPoint::LogWritten);
    let lost = pattern(4096, 8);
    assert!(
        d.write_at(DEFAULT_BLOCK_SIZE + 8192, &lost).is_err(),
        "the hook stops the write"
    );
    drop(d);

    // The crash left: the log GUID set, the entry in the log, the BAT not yet changed.
    let (log_guid, entry) = on_disk_state(&path, 1);
    assert_ne!(log_guid, [0; 16], "the header names the log");
    assert_eq!(
        entry, PAYLOAD_NOT_PRESENT,
        "the in-place BAT write never happened"
    );
    let before = std::fs::read(&path).unwrap();

    // A read-only open sees the replayed state without writing.
    let mut ro = reopen(&path, false).unwrap();
    assert_eq!(ro.block_usage(), (2, 3), "the replay allocated block 1");
    let mut back = vec![0u8; kept.len()];
    ro.read_at(0, &mut back).unwrap();
    assert!(back == kept);
    drop(ro);
    assert!(
        std::fs::read(&path).unwrap() == before,
        "a read-only open wrote"
    );

    // A writable open replays into the file and empties the log.
    let mut rw = reopen(&path, true).unwrap();
    assert_eq!(rw.block_usage(), (2, 3));
    let (log_guid, entry) = on_disk_state(&path, 1);
    assert_eq!(log_guid, [0; 16], "the log is empty after the replay");
    assert_eq!(entry & BAT_STATE_MASK, PAYLOAD_FULLY_PRESENT);
    qemu_check(&path);
    // The block the crash allocated reads as zeros (the data write never happened) and takes
    // new writes.
    let mut block1 = vec![1u8; 4096];
    rw.read_at(DEFAULT_BLOCK_SIZE + 8192, &mut block1).unwrap();
    assert!(block1.iter().all(|&b| b == 0));
    rw.write_at(DEFAULT_BLOCK_SIZE + 8192, &lost).unwrap();
    drop(rw);
    let mut again = reopen(&path, false).unwrap();
    again
        .read_at(DEFAULT_BLOCK_SIZE + 8192, &mut block1)
        .unwrap();
    assert!(block1 == lost);
    again.read_at(0, &mut back).unwrap();
    assert!(back == kept);
    qemu_check(&path);
    assert!(qemu_raw(&path)[to_usize(DEFAULT_BLOCK_SIZE) + 8192..][..4096] == lost[..]);
}

#[test]
fn a_crash_at_any_other_step_of_an_update_leaves_a_valid_image() {
    for point in [CrashPoint::LogGuidSet, CrashPoint::InPlaceWritten] {
        let dir = tempfile::tempdir().unwrap();
        let (path, f) = new_file(&dir, "step.vhdx");
        let mut d = VhdxDisk::create(f, 64 << 20, false).unwrap();
        let kept = pattern(4096, 4);
        d.write_at(0, &kept).unwrap();
        d.crash_after(point);
        assert!(d.write_at(DEFAULT_BLOCK_SIZE, &pattern(4096, 5)).is_err());
        drop(d);
        let (log_guid, entry) = on_disk_state(&path, 1);
        assert_ne!(
            log_guid, [0; 16],
            "{point:?}: the header still names the log"
        );
        let allocated = point == CrashPoint::InPlaceWritten;
        assert_eq!(entry != 0, allocated, "{point:?}");
        let mut d = reopen(&path, true).unwrap();
        // Before the entry was written there is nothing to replay (an older entry in the log
        // carries another GUID); after the in-place write the replay repeats it harmlessly.
        assert_eq!(
            d.block_usage().0,
            if allocated { 2 } else { 1 },
            "{point:?}"
        );
        let mut back = vec![0u8; 4096];
        d.read_at(0, &mut back).unwrap();
        assert!(back == kept, "{point:?}");
        drop(d);
        assert_eq!(on_disk_state(&path, 1).0, [0; 16], "{point:?}: log emptied");
        qemu_check(&path);
    }
}

#[test]
fn qemu_replays_the_log_this_tool_writes() {
    // The same crash, replayed by another implementation: qemu-img check -r all.
    let dir = tempfile::tempdir().unwrap();
    let (path, f) = new_file(&dir, "q.vhdx");
    let mut d = VhdxDisk::create(f, 64 << 20, false).unwrap();
    d.write_at(0, &pattern(4096, 1)).unwrap();
    d.crash_after(CrashPoint::LogWritten);
    assert!(d.write_at(DEFAULT_BLOCK_SIZE, &pattern(4096, 2)).is_err());
    drop(d);
    let st = Command::new("qemu-img")
        .args(["check", "-r", "all", "-f", "vhdx"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
    let (log_guid, entry) = on_disk_state(&path, 1);
    assert_eq!(log_guid, [0; 16]);
    assert_eq!(
        entry & BAT_STATE_MASK,
        PAYLOAD_FULLY_PRESENT,
        "qemu applied our entry"
    );
    assert_eq!(reopen(&path, false).unwrap().block_usage(), (2, 2));
}

fn qemu_create(path: &Path, extra: &[&str]) {
    let st = Command::new("qemu-img")
        .args(["create", "-q", "-f", "vhdx"])
        .args(extra)
        .arg(path)
        .arg("64M")
        .status()
        .expect("qemu-img is installed");
    assert!(st.success());
}

fn qemu_io_write(path: &Path, pattern_byte: u8, at: u64, len: u64) {
    let st = Command::new("qemu-io")
        .args(["-f", "vhdx", "-c"])
        .arg(format!("write -P {pattern_byte} {at} {len}"))
        .arg(path)
        .output()
        .expect("qemu-io is installed (qemu-utils)");
    assert!(
        st.status.success(),
        "{}",
        String::from_utf8_lossy(&st.stderr)
    );
}

#[test]
fn qemu_made_images_are_read_and_written() {
    let dir = tempfile::tempdir().unwrap();
    for (name, extra) in [
        ("qd.vhdx", &[][..]),
        ("qf.vhdx", &["-o", "subformat=fixed"][..]),
        ("q1m.vhdx", &["-o", "block_size=1M"][..]),
    ] {
        let path = dir.path().join(name);
        qemu_create(&path, extra);
        qemu_io_write(&path, 0x5a, 3 << 20, 1 << 20);
        let mut d = reopen(&path, true).unwrap();
        assert_eq!(d.size(), 64 << 20);
        let mut buf = vec![0u8; 1 << 20];
        d.read_at(3 << 20, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0x5a), "{name}: qemu's data");
        d.read_at(10 << 20, &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 0), "{name}: unwritten reads zero");
        let mine = pattern(1 << 20, 9);
        d.write_at(40 << 20, &mine).unwrap();
        drop(d);
        qemu_check(&path);
        let raw = qemu_raw(&path);
        assert!(
            raw[40 << 20..41 << 20] == mine[..],
            "{name}: qemu reads our write"
        );
        assert!(raw[3 << 20..4 << 20].iter().all(|&b| b == 0x5a));
    }
}

// ---- hostile input ----

/// A small dynamic image with one block allocated: its first 4 MiB and 4 KiB (everything
/// but the zeros of the data block) and its length.
fn sample_image(dir: &tempfile::TempDir) -> Sample {
    let (path, f) = new_file(dir, "sample.vhdx");
    let mut d = VhdxDisk::create(f, 8 << 20, false).unwrap();
    d.write_at(0, &pattern(4096, 3)).unwrap();
    drop(d);
    let mut bytes = std::fs::read(&path).unwrap();
    let len = bytes.len() as u64;
    bytes.truncate((4 << 20) + 4096);
    Sample { bytes, len }
}

struct Sample {
    bytes: Vec<u8>,
    len: u64,
}

/// Opens the image `bytes` extended with zeros to `len` both ways and reads the whole disk;
/// the only acceptable outcomes are a working disk or a typed error.
fn open_hostile(path: &Path, bytes: &[u8], len: u64) -> Result<(), String> {
    std::fs::write(path, bytes).unwrap();
    File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
    // Read-only first: the writable open may replay a log into the file.
    for writable in [false, true] {
        let mut d = reopen(path, writable).map_err(|e| e.to_string())?;
        // The start and the end of the disk (a mutated size can make it terabytes long).
        let mut buf = vec![0u8; 1 << 20];
        let size = d.size();
        for at in [0, (1 << 20).min(size), size.saturating_sub(1 << 20)] {
            let n = (size - at).min(1 << 20);
            d.read_at(at, &mut buf[..to_usize(n)])
                .map_err(|e| format!("{e:?}"))?;
        }
    }
    Ok(())
}

/// Re-seals whichever checksummed structure covers `at`, so a mutation gets past the CRC and
/// into the parser.
fn reseal(bytes: &mut [u8], at: usize) {
    for &h in &HEADER_OFFSETS {
        let h = to_usize(h);
        if (h..h + HEADER_SIZE).contains(&at) {
            seal_checksum(&mut bytes[h..h + HEADER_SIZE], 4);
        }
    }
    for &r in &REGION_TABLE_OFFSETS {
        let r = to_usize(r);
        if (r..r + REGION_TABLE_SIZE).contains(&at) {
            seal_checksum(&mut bytes[r..r + REGION_TABLE_SIZE], 4);
        }
    }
}

#[test]
fn mutated_images_give_typed_errors_never_panics() {
    let dir = tempfile::tempdir().unwrap();
    let Sample { bytes: good, len } = sample_image(&dir);
    let path = dir.path().join("hostile.vhdx");
    open_hostile(&path, &good, len).unwrap();
    // Fields that steer the parser: header fields, region entries, metadata table and items,
    // BAT entries.
    let targets: Vec<usize> = [
        (64 * 1024, 80),
        (128 * 1024, 80),
        (192 * 1024, 80),
        (2 << 20, 32 * 6),
        ((2 << 20) + (64 << 10), 40),
        (3 << 20, 16),
    ]
    .iter()
    .flat_map(|&(start, len)| start..start + len)
    .collect();
    let mut x = 0x1234_5678u32;
    let mut errors = 0;
    for round in 0..300 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let at = targets[to_usize(u64::from(x)) % targets.len()];
        let mut bytes = good.clone();
        let values = [0x00, 0xFF, 0x7F, 0x80, (x >> 8) as u8];
        bytes[at] = values[round % values.len()];
        if round % 3 != 0 {
            reseal(&mut bytes, at);
        }
        if open_hostile(&path, &bytes, len).is_err() {
            errors += 1;
        }
    }
    assert!(
        errors > 50,
        "most mutations of structure fields are caught ({errors})"
    );
}

#[test]
fn hostile_fields_are_refused_with_their_reason() {
    let dir = tempfile::tempdir().unwrap();
    let Sample { bytes: good, len } = sample_image(&dir);
    let path = dir.path().join("h.vhdx");
    let header = 128 * 1024; // the current header (slot 1) after creation
    let cases: Vec<(&str, usize, Vec<u8>, bool)> = vec![
        (
            "log",
            header + 72,
            (u64::MAX - 5).to_le_bytes().to_vec(),
            true,
        ),
        (
            "log",
            header + 68,
            0x7FFF_0000u32.to_le_bytes().to_vec(),
            true,
        ),
        (
            "region",
            192 * 1024 + 16 + 24,
            0xFFFF_FFFFu32.to_le_bytes().to_vec(),
            true,
        ),
        (
            "block table entry",
            3 << 20,
            ((1u64 << 62) | 6).to_le_bytes().to_vec(),
            false,
        ),
        (
            "block size",
            (2 << 20) + (64 << 10),
            12345u32.to_le_bytes().to_vec(),
            false,
        ),
        (
            "disk size",
            (2 << 20) + (64 << 10) + 8,
            u64::MAX.to_le_bytes().to_vec(),
            false,
        ),
        (
            "logical sector",
            (2 << 20) + (64 << 10) + 32,
            4096u32.to_le_bytes().to_vec(),
            false,
        ),
    ];
    for (what, at, value, sealed) in cases {
        let mut bytes = good.clone();
        bytes[at..at + value.len()].copy_from_slice(&value);
        if sealed {
            reseal(&mut bytes, at);
            // Both region table copies carry the change, so the second is no fallback.
            if (192 * 1024..256 * 1024).contains(&at) {
                let (a, b) = bytes.split_at_mut(256 * 1024);
                b[..REGION_TABLE_SIZE].copy_from_slice(&a[192 * 1024..]);
            }
        }
        let err = open_hostile(&path, &bytes, len).expect_err(what);
        assert!(err.contains("VHDX"), "{what}: {err}");
    }
}

#[test]
fn a_hostile_log_is_searched_within_bounds() {
    let dir = tempfile::tempdir().unwrap();
    let Sample { mut bytes, len } = sample_image(&dir);
    // Point the current header at a log GUID and fill the log with entries of that GUID whose
    // lengths, tails and sequence numbers disagree, each with a valid checksum.
    let guid = [7u8; 16];
    let header = 128 * 1024;
    bytes[header + 48..header + 64].copy_from_slice(&guid);
    seal_checksum(&mut bytes[header..header + HEADER_SIZE], 4);
    let log = to_usize(MIB);
    let mut x = 99u32;
    for i in 0..256u64 {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let writes = [((u64::from(x) % 64) * 4096, &pattern(4096, x)[..])];
        let mut entry = log::build_entry(i % 5 + 1, guid, 1 << 40, &writes);
        // Tails all over the log; an entry claims the file was once 1 TiB long.
        entry[12..16].copy_from_slice(&((u64::from(x) % 256 * 4096) as u32).to_le_bytes());
        seal_checksum(&mut entry, 4);
        let at = log + to_usize(i * 4096);
        let n = entry.len().min(2 * to_usize(MIB) - at);
        bytes[at..at + n].copy_from_slice(&entry[..n]);
    }
    let path = dir.path().join("log.vhdx");
    let started = std::time::Instant::now();
    // Either no sequence checks out, or one that claims a longer file is refused.
    if let Err(e) = open_hostile(&path, &bytes, len) {
        assert!(e.contains("VHDX log"), "{e}");
    }
    assert!(started.elapsed().as_secs() < 20, "the search is bounded");
}

/// `qemu-io` reads `len` bytes of `byte` at `at` (it exits 0 but says "Pattern verification
/// failed" on a mismatch).
fn qemu_io_verify(path: &Path, byte: u8, at: u64, len: u64) -> bool {
    let out = Command::new("qemu-io")
        .args(["-f", "vhdx", "-r", "-c"])
        .arg(format!("read -P {byte} {at} {len}"))
        .arg(path)
        .output()
        .expect("qemu-io is installed (qemu-utils)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    out.status.success() && !text.contains("failed")
}

#[test]
fn blocks_past_the_first_sector_bitmap_entry_are_where_qemu_looks() {
    // Past 128 blocks of 32 MiB the BAT interleaves a sector bitmap entry every 128 payload
    // entries: a 6 GiB disk has payload blocks on both sides of two of them.
    let dir = tempfile::tempdir().unwrap();
    let size = 6 << 30;
    let at = |block: u64| block * DEFAULT_BLOCK_SIZE + 4096;
    for fixed in [false, true] {
        let (path, f) = new_file(&dir, if fixed { "bigf.vhdx" } else { "bigd.vhdx" });
        let mut d = VhdxDisk::create(f, size, fixed).unwrap();
        for (block, byte) in [(127u64, 1u8), (128, 2), (129, 3), (191, 4)] {
            d.write_at(at(block), &vec![byte; 4096]).unwrap();
        }
        drop(d);
        qemu_check(&path);
        for (block, byte) in [(127u64, 1u8), (128, 2), (129, 3), (191, 4)] {
            assert!(
                qemu_io_verify(&path, byte, at(block), 4096),
                "fixed={fixed}: block {block}"
            );
        }
        assert!(
            !qemu_io_verify(&path, 9, at(128), 4096),
            "the check can fail"
        );
        // And the other way: qemu writes past the bitmap entry, we read it.
        let st = Command::new("qemu-io")
            .args(["-f", "vhdx", "-c", &format!("write -P 7 {} 4096", at(150))])
            .arg(&path)
            .output()
            .unwrap();
        assert!(st.status.success());
        let mut d = reopen(&path, false).unwrap();
        let mut buf = vec![0u8; 4096];
        d.read_at(at(150), &mut buf).unwrap();
        assert!(
            buf.iter().all(|&b| b == 7),
            "fixed={fixed}: qemu's block 150"
        );
        d.read_at(at(129), &mut buf).unwrap();
        assert!(buf.iter().all(|&b| b == 3));
    }
}
