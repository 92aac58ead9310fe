use super::*;

/// A sector that carries the cowfat signature, as a formatted volume's first sector does.
fn boot_sector() -> Vec<u8> {
    let mut s = vec![0u8; 512];
    s[3..11].copy_from_slice(probe::SIGNATURE);
    s[510..].copy_from_slice(&[0x55, 0xAA]);
    s
}

fn make(
    dir: &tempfile::TempDir,
    name: &str,
    format: ImageFormat,
    scheme: Scheme,
) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let (mut dev, _) = create(&path, 16 << 20, format, scheme, false).unwrap();
    dev.write_at(0, &boot_sector()).unwrap();
    dev.write_at(4096, &[0xC0; 4096]).unwrap();
    dev.flush().unwrap();
    path
}

#[test]
fn every_format_and_scheme_opens_to_its_partition() {
    let dir = tempfile::tempdir().unwrap();
    for format in [ImageFormat::Vhd, ImageFormat::VhdDynamic, ImageFormat::Raw] {
        for scheme in [Scheme::Gpt, Scheme::Mbr, Scheme::None] {
            let name = format!("{format:?}-{scheme:?}.img");
            let path = make(&dir, &name, format, scheme);
            let mut img = open(&path, false, None).unwrap();
            assert_eq!(img.format, format, "{name}");
            assert_eq!(img.table.scheme, scheme, "{name}");
            let start = if scheme == Scheme::None { 0 } else { 1 << 20 };
            assert_eq!(img.partition.start, start, "{name}");
            let mut buf = [0u8; 4096];
            img.dev.read_at(4096, &mut buf).unwrap();
            assert!(buf.iter().all(|&b| b == 0xC0), "{name}");
        }
    }
}

#[test]
fn read_only_images_refuse_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "ro.vhd", ImageFormat::VhdDynamic, Scheme::Gpt);
    let mut img = open(&path, false, None).unwrap();
    let err = img.dev.write_at(0, &[1u8; 512]).unwrap_err();
    assert_eq!(err.kind, DeviceErrorKind::ReadOnly);
}

#[test]
fn existing_files_are_not_overwritten_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "a.vhd", ImageFormat::Vhd, Scheme::Gpt);
    assert!(matches!(
        create(&path, 8 << 20, ImageFormat::Vhd, Scheme::Gpt, false),
        Err(ImageError::Exists)
    ));
    assert!(create(&path, 8 << 20, ImageFormat::Vhd, Scheme::Gpt, true).is_ok());
}

#[test]
fn truncated_dynamic_vhd_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "t.vhd", ImageFormat::VhdDynamic, Scheme::Gpt);
    let len = std::fs::metadata(&path).unwrap().len();
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_len(len - 4096).unwrap();
    assert!(matches!(
        open(&path, false, None),
        Err(ImageError::Vhd(VhdError::Truncated))
    ));
}

#[test]
fn truncated_fixed_vhd_is_reported_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "t.vhd", ImageFormat::Vhd, Scheme::Gpt);
    let f = std::fs::File::options().write(true).open(&path).unwrap();
    f.set_len(8 << 20).unwrap();
    assert!(matches!(
        open(&path, false, None),
        Err(ImageError::MissingFooter)
    ));
}

#[test]
fn non_cowfat_partition_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "linux.img", ImageFormat::Raw, Scheme::Mbr);
    let mut bytes = std::fs::read(&path).unwrap();
    bytes[446 + 4] = 0x83;
    bytes[(1 << 20)..(1 << 20) + 512].fill(0); // an ext4-like partition: no cowfat signature
    std::fs::write(&path, bytes).unwrap();
    let err = open(&path, false, None).unwrap_err();
    assert!(matches!(err, ImageError::NoCowfatPartition { .. }));
    assert!(err.to_string().contains("1 of type 0x83"), "{err}");
    // Naming the partition explicitly still opens it.
    assert_eq!(open(&path, false, Some(1)).unwrap().partition.index, 1);
    assert!(matches!(
        open(&path, false, Some(3)),
        Err(ImageError::NoSuchPartition { index: 3, .. })
    ));
}

#[test]
fn tiny_files_are_not_images() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tiny.img");
    std::fs::write(&path, [0u8; 100]).unwrap();
    assert!(matches!(
        open(&path, false, None),
        Err(ImageError::TooShort(100))
    ));
}

#[test]
fn the_first_partition_with_the_signature_is_chosen() {
    let dir = tempfile::tempdir().unwrap();
    // A basic data partition without the signature (another file system's) is passed over.
    let path = dir.path().join("other.img");
    let (mut dev, _) = create(&path, 16 << 20, ImageFormat::Raw, Scheme::Gpt, false).unwrap();
    dev.write_at(0, &[0u8; 512]).unwrap();
    dev.flush().unwrap();
    let err = open(&path, false, None).unwrap_err();
    assert!(matches!(err, ImageError::NoCowfatPartition { .. }), "{err}");
    assert!(err.to_string().contains("basic data"), "{err}");
}

#[test]
fn a_whole_disk_volume_with_a_boot_signature_is_not_taken_for_an_mbr() {
    let dir = tempfile::tempdir().unwrap();
    let path = make(&dir, "whole.img", ImageFormat::Raw, Scheme::None);
    let img = open(&path, false, None).unwrap();
    assert_eq!((img.table.scheme, img.partition.start), (Scheme::None, 0));
}
