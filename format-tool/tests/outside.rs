//! Outside checks: programs that share no code with cowfat read the images it makes.
//! `qemu-img` (package qemu-utils) must see a `vpc` image of the right size with the same
//! bytes our reader returns; `sfdisk` (package fdisk) and `sgdisk` (package gdisk) must find
//! the partition we made. A missing program fails the test with the package to install.

use std::path::{Path, PathBuf};
use std::process::Command;

use format_tool::image::device::BlockDevice;
use format_tool::image::partition::Scheme;
use format_tool::image::{self, ImageFormat};

/// Finds an outside program or fails loudly: these tests must never pass by not running.
fn program(name: &str, package: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(name);
        if candidate.is_file() {
            return candidate;
        }
    }
    panic!("`{name}` is not installed; this test needs it (apt-get install {package})");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().expect("the program could not be started");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("output is UTF-8")
}

/// `qemu-img info`, probing the format itself unless `format` names it. qemu recognises a VHD
/// by the footer copy at the start of the file, which only dynamic VHDs have (a fixed VHD
/// starts with the disk's own bytes), so fixed images are checked with `-f vpc`: qemu then
/// validates the footer at the end and takes the size from it.
fn qemu_img_info(path: &Path, format: Option<&str>) -> serde_json::Value {
    let qemu = program("qemu-img", "qemu-utils");
    let mut cmd = Command::new(qemu);
    cmd.args(["info", "--output=json"]);
    if let Some(f) = format {
        cmd.args(["-f", f]);
    }
    let out = run(cmd.arg(path));
    serde_json::from_str(&out).expect("qemu-img printed JSON")
}

/// Makes an image and scatters recognisable data over it, inside the partition (so the table
/// stays intact): in the first VHD block, across a 2 MiB block boundary, mid-disk, and in the
/// last megabytes.
fn make_image(dir: &Path, name: &str, size: u64, format: ImageFormat, scheme: Scheme) -> PathBuf {
    let path = dir.join(name);
    let (dev, _) = image::create(&path, size, format, scheme, false).expect("create");
    let mut disk = dev.into_inner();
    let size = disk.size();
    for (i, at) in [
        (1 << 20) + 4096,
        (2 << 20) - 4096,
        size / 2,
        size - (2 << 20) + 4096,
    ]
    .into_iter()
    .enumerate()
    {
        let byte = u8::try_from(i + 1).unwrap();
        disk.write_at(at, &[byte; 8192]).expect("write");
    }
    disk.flush().expect("flush");
    path
}

fn read_whole_disk(path: &Path) -> Vec<u8> {
    let mut disk = image::open_disk(path, false).expect("open");
    let mut bytes = vec![0u8; usize::try_from(disk.size()).unwrap()];
    disk.read_at(0, &mut bytes).expect("read");
    bytes
}

#[test]
fn qemu_img_sees_a_fixed_vhd_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(dir.path(), "f.vhd", 64 << 20, ImageFormat::Vhd, Scheme::Gpt);
    let info = qemu_img_info(&path, Some("vpc"));
    assert_eq!(info["format"], "vpc", "{info}");
    assert_eq!(info["virtual-size"], 64u64 << 20, "{info}");
}

#[test]
fn qemu_img_sees_a_dynamic_vhd_of_the_right_size() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(
        dir.path(),
        "d.vhd",
        100 << 20,
        ImageFormat::VhdDynamic,
        Scheme::Mbr,
    );
    let info = qemu_img_info(&path, None);
    assert_eq!(info["format"], "vpc", "{info}");
    assert_eq!(info["virtual-size"], 100u64 << 20, "{info}");
}

#[test]
fn qemu_img_sees_a_one_tib_dynamic_vhd_that_stays_small() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("big.vhd");
    let started = std::time::Instant::now();
    image::create(&path, 1 << 40, ImageFormat::VhdDynamic, Scheme::Gpt, false).expect("create");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    let info = qemu_img_info(&path, None);
    assert_eq!(info["format"], "vpc", "{info}");
    assert_eq!(info["virtual-size"], 1u64 << 40, "{info}");
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < 16 << 20, "the 1 TiB image takes {len} bytes");
}

fn assert_qemu_convert_matches(format: ImageFormat, name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(dir.path(), name, 24 << 20, format, Scheme::Gpt);
    let raw = dir.path().join("converted.raw");
    let qemu = program("qemu-img", "qemu-utils");
    run(Command::new(qemu)
        .args(["convert", "-f", "vpc", "-O", "raw"])
        .arg(&path)
        .arg(&raw));
    let theirs = std::fs::read(&raw).unwrap();
    let ours = read_whole_disk(&path);
    assert_eq!(theirs.len(), ours.len(), "disk sizes differ");
    let first_diff = theirs.iter().zip(&ours).position(|(a, b)| a != b);
    assert_eq!(
        first_diff, None,
        "qemu-img and cowfat disagree from byte {first_diff:?}"
    );
    assert!(ours.contains(&4), "the scattered data is there");
}

#[test]
fn qemu_img_convert_of_a_fixed_vhd_gives_our_bytes() {
    assert_qemu_convert_matches(ImageFormat::Vhd, "f.vhd");
}

#[test]
fn qemu_img_convert_of_a_dynamic_vhd_gives_our_bytes() {
    assert_qemu_convert_matches(ImageFormat::VhdDynamic, "d.vhd");
}

fn sfdisk_table(path: &Path) -> serde_json::Value {
    let sfdisk = program("sfdisk", "fdisk");
    let out = run(Command::new(sfdisk).arg("--json").arg(path));
    let json: serde_json::Value = serde_json::from_str(&out).expect("sfdisk printed JSON");
    json["partitiontable"].clone()
}

#[test]
fn sfdisk_finds_our_gpt_partition_at_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(dir.path(), "g.img", 32 << 20, ImageFormat::Raw, Scheme::Gpt);
    let table = sfdisk_table(&path);
    assert_eq!(table["label"], "gpt", "{table}");
    let parts = table["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 1, "{table}");
    assert_eq!(parts[0]["start"], 2048, "{table}");
    assert_eq!(
        parts[0]["type"], "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7",
        "{table}"
    );
    assert_eq!(parts[0]["name"], "cowfat", "{table}");
}

#[test]
fn sfdisk_finds_our_mbr_partition_at_1_mib() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(dir.path(), "m.img", 32 << 20, ImageFormat::Raw, Scheme::Mbr);
    let table = sfdisk_table(&path);
    assert_eq!(table["label"], "dos", "{table}");
    let parts = table["partitions"].as_array().expect("partitions");
    assert_eq!(parts.len(), 1, "{table}");
    assert_eq!(parts[0]["start"], 2048, "{table}");
    assert_eq!(parts[0]["size"], 31 * 2048, "{table}");
    assert_eq!(parts[0]["type"], "7", "{table}");
}

#[test]
fn sgdisk_verifies_our_gpt() {
    let dir = tempfile::tempdir().unwrap();
    let path = make_image(dir.path(), "v.img", 32 << 20, ImageFormat::Raw, Scheme::Gpt);
    let sgdisk = program("sgdisk", "gdisk");
    let out = run(Command::new(sgdisk).arg("-v").arg(&path));
    assert!(out.contains("No problems found"), "sgdisk -v said:\n{out}");
}

/// The other direction: VHDs that qemu-img writes (dynamic and fixed) read back through our
/// reader with the bytes they were made from.
#[test]
fn our_reader_reads_vhds_made_by_qemu_img() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("source.raw");
    let mut bytes = vec![0u8; 24 << 20];
    for (i, chunk) in bytes
        .chunks_mut(1 << 20)
        .enumerate()
        .filter(|(i, _)| i % 3 == 0)
    {
        chunk[..4096].fill(u8::try_from(i + 1).unwrap());
    }
    std::fs::write(&source, &bytes).unwrap();
    let qemu = program("qemu-img", "qemu-utils");
    for subformat in ["dynamic", "fixed"] {
        let vhd = dir.path().join(format!("{subformat}.vhd"));
        run(Command::new(&qemu)
            .args(["convert", "-f", "raw", "-O", "vpc", "-o"])
            .arg(format!("subformat={subformat}"))
            .arg(&source)
            .arg(&vhd));
        let ours = read_whole_disk(&vhd);
        // qemu rounds the disk up to its CHS geometry; the extra tail reads as zeros.
        assert!(ours.len() >= bytes.len(), "{subformat}: disk shrank");
        assert!(
            ours[..bytes.len()] == bytes[..],
            "{subformat}: bytes differ"
        );
        assert!(
            ours[bytes.len()..].iter().all(|&b| b == 0),
            "{subformat}: tail not zero"
        );
    }
}
