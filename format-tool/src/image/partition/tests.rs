use super::*;
use crate::image::device::MemDevice;

fn disk(mib: usize) -> MemDevice {
    MemDevice(vec![0u8; mib << 20])
}

#[test]
fn gpt_partition_is_aligned_and_read_back() {
    let mut d = disk(16);
    let made = write_table(&mut d, Scheme::Gpt).unwrap();
    assert_eq!(made.start, 1 << 20);
    assert_eq!(made.len % (1 << 20), 0);
    let t = read_table(&mut d).unwrap();
    assert_eq!(t.scheme, Scheme::Gpt);
    assert_eq!(t.partitions, vec![made]);
    assert_eq!(t.partitions[0].name, "cowfat");
    assert_eq!(d.0[450], 0xEE);
    assert_eq!(&d.0[512..520], b"EFI PART");
    let last = d.0.len() - 512;
    assert_eq!(&d.0[last..last + 8], b"EFI PART");
}

#[test]
fn gpt_backup_is_used_when_the_primary_is_damaged() {
    let mut d = disk(8);
    let made = write_table(&mut d, Scheme::Gpt).unwrap();
    d.0[512 + 30] ^= 1; // inside MyLBA/AlternateLBA: header CRC no longer matches
    let t = read_table(&mut d).unwrap();
    assert_eq!(t.partitions, vec![made]);
    let last = d.0.len() - 512;
    d.0[last + 30] ^= 1;
    assert!(matches!(
        read_table(&mut d),
        Err(PartitionError::GptHeader { lba: 1, .. })
    ));
}

#[test]
fn gpt_entry_crc_is_checked() {
    let mut d = disk(8);
    write_table(&mut d, Scheme::Gpt).unwrap();
    d.0[1024 + 60] ^= 1;
    assert!(matches!(
        read_table(&mut d),
        Err(PartitionError::GptEntriesCrc)
    ));
}

#[test]
fn mbr_partition_is_type_7_at_1_mib() {
    let mut d = disk(8);
    let made = write_table(&mut d, Scheme::Mbr).unwrap();
    assert_eq!((made.start, made.len), (1 << 20, 7 << 20));
    let t = read_table(&mut d).unwrap();
    assert_eq!(t.scheme, Scheme::Mbr);
    assert_eq!(
        t.partitions,
        vec![Partition {
            name: String::new(),
            ..made
        }]
    );
    assert_eq!(t.partitions[0].kind, PartitionType::Mbr(0x07));
}

#[test]
fn none_and_boot_sectors_read_as_no_table() {
    let mut d = disk(4);
    let whole = write_table(&mut d, Scheme::None).unwrap();
    assert_eq!((whole.start, whole.len), (0, 4 << 20));
    assert_eq!(read_table(&mut d).unwrap().scheme, Scheme::None);
    // A volume boot sector: 0x55AA but partition "entries" made of code bytes.
    d.0[446..510].fill(0x90);
    d.0[510] = 0x55;
    d.0[511] = 0xAA;
    assert_eq!(read_table(&mut d).unwrap().scheme, Scheme::None);
}

#[test]
fn tiny_disks_are_refused() {
    let mut d = disk(1);
    assert!(matches!(
        write_table(&mut d, Scheme::Gpt),
        Err(PartitionError::TooSmall { .. })
    ));
}

#[test]
fn chs_of_small_and_large_lbas() {
    assert_eq!(lba_to_chs(2048), [32, 33, 0]);
    assert_eq!(lba_to_chs(1 << 32), [0xFE, 0xFF, 0xFF]);
}
