use super::*;
use crate::image::device::BlockDevice;
use std::io::{Seek, SeekFrom, Write};

fn temp_file() -> (tempfile::TempDir, std::path::PathBuf, File) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.vhd");
    let f = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .unwrap();
    (dir, path, f)
}

fn reopen(path: &std::path::Path) -> Result<VhdDisk, VhdError> {
    let f = File::options().read(true).write(true).open(path).unwrap();
    let len = f.metadata().unwrap().len();
    VhdDisk::open(HostFile::new(f, true), len)
}

#[test]
fn chs_matches_the_specification_examples() {
    // Small disks use 17 sectors per track and at least 4 heads.
    assert_eq!(chs_geometry(20 * 1024 * 2), (602, 4, 17));
    // Large disks hit the 65535 x 16 x 255 cap.
    assert_eq!(chs_geometry(u64::MAX), (65535, 16, 255));
    // 1 GiB: 2097152 sectors -> 63 spt, 16 heads.
    let (c, h, s) = chs_geometry(2 * 1024 * 1024);
    assert_eq!((h, s), (16, 63));
    assert_eq!(c, 2080);
}

#[test]
fn checksum_is_ones_complement_of_byte_sum() {
    assert_eq!(checksum(&[]), u32::MAX);
    assert_eq!(checksum(&[1, 2, 3]), !6);
}

#[test]
fn fixed_round_trip() {
    let (_d, path, f) = temp_file();
    let mut v = VhdDisk::create_fixed(f, 4 << 20).unwrap();
    v.write_at(4096, &[7u8; 512]).unwrap();
    drop(v);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), (4 << 20) + 512);
    let mut v = reopen(&path).unwrap();
    assert_eq!(v.kind(), VhdKind::Fixed);
    assert_eq!(v.size(), 4 << 20);
    let mut buf = [0u8; 1024];
    v.read_at(3584, &mut buf).unwrap();
    assert!(buf[..512].iter().all(|&b| b == 0));
    assert!(buf[512..].iter().all(|&b| b == 7));
}

#[test]
fn dynamic_allocates_only_on_nonzero_writes() {
    let (_d, path, f) = temp_file();
    let mut v = VhdDisk::create_dynamic(f, 64 << 20).unwrap();
    let empty_len = std::fs::metadata(&path).unwrap().len();
    v.write_at(0, &[0u8; 4096]).unwrap();
    v.write_zeroes(8 << 20, 4 << 20).unwrap();
    assert_eq!(v.block_usage(), Some((0, 32)));
    assert_eq!(std::fs::metadata(&path).unwrap().len(), empty_len);
    // A write that straddles blocks 2 and 3 allocates both.
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8).collect();
    let at = (6 << 20) - 4096;
    v.write_at(at, &data).unwrap();
    assert_eq!(v.block_usage(), Some((2, 32)));
    drop(v);
    let mut v = reopen(&path).unwrap();
    let mut back = vec![0u8; 8192];
    v.read_at(at, &mut back).unwrap();
    assert_eq!(back, data);
    let mut zeros = vec![1u8; 4096];
    v.read_at(40 << 20, &mut zeros).unwrap();
    assert!(zeros.iter().all(|&b| b == 0));
    // write_zeroes over allocated data really zeroes it.
    v.write_zeroes(at, 8192).unwrap();
    v.read_at(at, &mut back).unwrap();
    assert!(back.iter().all(|&b| b == 0));
}

#[test]
fn one_tib_dynamic_is_small() {
    let (_d, path, f) = temp_file();
    let v = VhdDisk::create_dynamic(f, 1 << 40).unwrap();
    assert_eq!(v.size(), 1 << 40);
    drop(v);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < 3 << 20, "1 TiB dynamic VHD takes {len} bytes");
    assert_eq!(reopen(&path).unwrap().block_usage(), Some((0, 1 << 19)));
}

#[test]
fn sizes_beyond_the_format_are_refused() {
    let (_d, _p, f) = temp_file();
    assert!(matches!(
        VhdDisk::create_dynamic(f, 4 << 40),
        Err(VhdError::TooLarge(_))
    ));
}

fn corrupt_byte(path: &std::path::Path, at: u64) {
    let mut f = File::options().read(true).write(true).open(path).unwrap();
    let mut b = [0u8; 1];
    f.seek(SeekFrom::Start(at)).unwrap();
    std::io::Read::read_exact(&mut f, &mut b).unwrap();
    f.seek(SeekFrom::Start(at)).unwrap();
    f.write_all(&[b[0] ^ 0x55]).unwrap();
}

#[test]
fn footer_checksum_mismatch_is_reported() {
    let (_d, path, f) = temp_file();
    drop(VhdDisk::create_fixed(f, 1 << 20).unwrap());
    corrupt_byte(&path, (1 << 20) + 48 + 7); // low byte of Current Size
    assert!(matches!(
        reopen(&path),
        Err(VhdError::FooterChecksum { .. })
    ));
}

#[test]
fn dynamic_header_checksum_mismatch_is_reported() {
    let (_d, path, f) = temp_file();
    drop(VhdDisk::create_dynamic(f, 8 << 20).unwrap());
    corrupt_byte(&path, 512 + 32 + 1);
    assert!(matches!(
        reopen(&path),
        Err(VhdError::HeaderChecksum { .. })
    ));
}

#[test]
fn fixed_with_wrong_length_is_reported() {
    let (_d, path, f) = temp_file();
    drop(VhdDisk::create_fixed(f, 2 << 20).unwrap());
    // Move the footer 1 MiB earlier: a fixed disk cut short but still ending in a footer.
    let bytes = std::fs::read(&path).unwrap();
    let footer = bytes[bytes.len() - 512..].to_vec();
    let mut cut = bytes[..1 << 20].to_vec();
    cut.extend_from_slice(&footer);
    std::fs::write(&path, cut).unwrap();
    assert!(matches!(reopen(&path), Err(VhdError::FixedLength { .. })));
}

#[test]
fn bat_entry_outside_the_file_is_reported() {
    let (_d, path, f) = temp_file();
    let mut v = VhdDisk::create_dynamic(f, 8 << 20).unwrap();
    v.write_at(0, &[1u8; 512]).unwrap();
    drop(v);
    // BAT entry 0 at byte 1536: point it far past the end.
    let mut f = File::options().write(true).open(&path).unwrap();
    f.seek(SeekFrom::Start(1536)).unwrap();
    f.write_all(&0x00FF_0000u32.to_be_bytes()).unwrap();
    drop(f);
    assert!(matches!(
        reopen(&path),
        Err(VhdError::BatOutOfRange { index: 0, .. })
    ));
}

#[test]
fn unaligned_and_out_of_range_access_is_refused() {
    let (_d, _p, f) = temp_file();
    let mut v = VhdDisk::create_dynamic(f, 4 << 20).unwrap();
    let mut buf = [0u8; 512];
    assert_eq!(
        v.read_at(100, &mut buf).unwrap_err().kind,
        crate::image::device::DeviceErrorKind::Misaligned
    );
    assert_eq!(
        v.read_at(4 << 20, &mut buf).unwrap_err().kind,
        crate::image::device::DeviceErrorKind::OutOfRange
    );
}
