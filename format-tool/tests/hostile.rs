//! Hostile images at the image layer (issue 15): the findings of the VHD/GPT fuzzing rebuilt
//! from their descriptions on images `cowfat create` made, with the checksums fixed up. Each
//! is exit 1 with one sentence naming the image and the damage, never a panic.

use std::path::{Path, PathBuf};
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_cowfat");

fn create(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let image = dir.join(name);
    let out = Command::new(BIN)
        .arg("create")
        .arg(&image)
        .args(["--size", "16M"])
        .args(extra)
        .output()
        .expect("cowfat runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    image
}

/// `cowfat ls IMAGE`: exit code and stderr.
fn ls(image: &Path) -> (i32, String) {
    let out = Command::new(BIN)
        .arg("ls")
        .arg(image)
        .output()
        .expect("cowfat runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn vhd_checksum(footer: &[u8]) -> u32 {
    let sum = footer
        .iter()
        .enumerate()
        .filter(|(i, _)| !(64..68).contains(i))
        .fold(0u32, |s, (_, &b)| s.wrapping_add(u32::from(b)));
    !sum
}

/// Finding 3, vhd.rs: a fixed VHD's `current_size` near u64::MAX was added to a sector.
#[test]
fn hostile_fixed_vhd_size_at_the_end_of_u64_is_a_length_error() {
    let dir = tempfile::tempdir().unwrap();
    let image = create(dir.path(), "fixed.vhd", &["--format", "vhd"]);
    let mut bytes = std::fs::read(&image).unwrap();
    let footer_at = bytes.len() - 512;
    for size in [u64::MAX - 511, u64::MAX - 1023] {
        let footer = &mut bytes[footer_at..];
        footer[40..48].copy_from_slice(&size.to_be_bytes()); // original size
        footer[48..56].copy_from_slice(&size.to_be_bytes()); // current size
        let sum = vhd_checksum(footer);
        footer[64..68].copy_from_slice(&sum.to_be_bytes());
        std::fs::write(&image, &bytes).unwrap();
        let (code, stderr) = ls(&image);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "cowfat: cannot open {}: the fixed VHD declares {size} bytes of data but the file holds {}; the file is truncated or damaged.",
                image.display(),
                footer_at
            )
        );
    }
}

/// Rewrites the primary GPT's header fields and its first entry's LBAs, fixing both CRCs.
fn edit_gpt(bytes: &mut [u8], last_usable: u64, entry_last: u64) {
    let h = 512;
    bytes[h + 48..h + 56].copy_from_slice(&last_usable.to_le_bytes());
    let entries_lba = u64::from_le_bytes(bytes[h + 72..h + 80].try_into().unwrap());
    let count = u32::from_le_bytes(bytes[h + 80..h + 84].try_into().unwrap()) as usize;
    let size = u32::from_le_bytes(bytes[h + 84..h + 88].try_into().unwrap()) as usize;
    let e = entries_lba as usize * 512;
    bytes[e + 40..e + 48].copy_from_slice(&entry_last.to_le_bytes());
    let array_crc = crc32fast::hash(&bytes[e..e + count * size]);
    bytes[h + 88..h + 92].copy_from_slice(&array_crc.to_le_bytes());
    let header_size = u32::from_le_bytes(bytes[h + 12..h + 16].try_into().unwrap()) as usize;
    bytes[h + 16..h + 20].fill(0);
    let header_crc = crc32fast::hash(&bytes[h..h + header_size]);
    bytes[h + 16..h + 20].copy_from_slice(&header_crc.to_le_bytes());
}

/// Finding 3, partition.rs: a GPT entry's LBAs were multiplied by the sector size, and the
/// header's last usable LBA (the only bound on them) was never checked against the disk.
#[test]
fn hostile_gpt_usable_range_beyond_the_disk_is_a_damaged_header() {
    let dir = tempfile::tempdir().unwrap();
    let image = create(
        dir.path(),
        "gpt.img",
        &["--format", "raw", "--partition", "gpt"],
    );
    let good = std::fs::read(&image).unwrap();
    let disk_lbas = good.len() as u64 / 512;
    // The product overflows; a range just past the disk; the largest u64.
    for last in [u64::MAX / 512 + 10, disk_lbas, u64::MAX] {
        let mut bytes = good.clone();
        edit_gpt(&mut bytes, last, last);
        std::fs::write(&image, &bytes).unwrap();
        let (code, stderr) = ls(&image);
        assert_eq!(code, 1, "{stderr}");
        assert_eq!(
            stderr.trim(),
            format!(
                "cowfat: cannot open {}: the GPT header in sector 1 is damaged: usable sectors outside the disk.",
                image.display()
            ),
            "last usable LBA {last:#x}"
        );
    }
    // The largest range that is on the disk still opens.
    let mut bytes = good.clone();
    let last_usable = u64::from_le_bytes(good[512 + 48..512 + 56].try_into().unwrap());
    edit_gpt(&mut bytes, disk_lbas - 1, last_usable);
    std::fs::write(&image, &bytes).unwrap();
    let (code, stderr) = ls(&image);
    assert_eq!(code, 0, "{stderr}");
}
