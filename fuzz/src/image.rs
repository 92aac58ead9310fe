//! The image layer on edited images: VHD and VHDX (fixed, dynamic), MBR and GPT, opened through
//! `format_tool::image::open` as the `cowfat` command opens them, then read through the
//! partition device and mounted read-only.
//!
//! A container format is one entry in [`FORMATS`] (how to create a base image of it) and the
//! [`Region`]s of its structures with their fix-ups.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use format_tool::image::partition::Scheme;
use format_tool::image::{self, ImageFormat};
use fs_core::time::{FixedClock, NtTime};
use fs_core::{BlockDevice, FormatOptions, MountOptions, Volume};
use libfuzzer_sys::arbitrary::Unstructured;

const SECTOR: usize = 512;
const DISK_SIZE: u64 = 4 << 20;

/// A structure in an image file that edits target: where it is and how its checksum is
/// fixed up after an edit.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    pub name: &'static str,
    /// Byte offset in the image file (found in the base image once).
    pub at: usize,
    /// (offset, width) of the numbers in it.
    pub fields: &'static [(usize, usize)],
    pub big_endian: bool,
    pub fixup: Fixup,
}

#[derive(Debug, Clone, Copy)]
pub enum Fixup {
    None,
    /// VHD footer (and dynamic header): ones' complement byte sum at `at`, over `len` bytes.
    VhdSum {
        at: usize,
        len: usize,
    },
    /// GPT header at this offset: entries CRC32 then header CRC32.
    Gpt,
    /// VHDX header or region table: CRC-32C of `len` bytes, stored at offset 4 (MS-VHDX).
    VhdxCrc {
        len: usize,
    },
}

/// A container format the target knows: how a base image is made.
pub struct Format {
    pub name: &'static str,
    pub format: ImageFormat,
    pub scheme: Scheme,
}

/// Every base image.
pub const FORMATS: &[Format] = &[
    Format {
        name: "dynamic VHDX, GPT",
        format: ImageFormat::VhdxDynamic,
        scheme: Scheme::Gpt,
    },
    Format {
        name: "dynamic VHDX, MBR",
        format: ImageFormat::VhdxDynamic,
        scheme: Scheme::Mbr,
    },
    Format {
        name: "fixed VHD, GPT",
        format: ImageFormat::Vhd,
        scheme: Scheme::Gpt,
    },
    Format {
        name: "dynamic VHD, MBR",
        format: ImageFormat::VhdDynamic,
        scheme: Scheme::Mbr,
    },
    Format {
        name: "dynamic VHD, GPT",
        format: ImageFormat::VhdDynamic,
        scheme: Scheme::Gpt,
    },
    Format {
        name: "raw, GPT",
        format: ImageFormat::Raw,
        scheme: Scheme::Gpt,
    },
    Format {
        name: "raw, MBR",
        format: ImageFormat::Raw,
        scheme: Scheme::Mbr,
    },
];

const VHD_FOOTER_FIELDS: &[(usize, usize)] = &[
    (8, 4),
    (12, 4),
    (16, 8),
    (40, 8),
    (48, 8),
    (56, 2),
    (58, 1),
    (59, 1),
    (60, 4),
    (84, 1),
];
const VHD_HEADER_FIELDS: &[(usize, usize)] = &[(8, 8), (16, 8), (24, 4), (28, 4), (32, 4)];
const BAT_FIELDS: &[(usize, usize)] = &[(0, 4), (4, 4), (8, 4), (12, 4)];
const MBR_FIELDS: &[(usize, usize)] = &[
    (446, 1),
    (450, 1),
    (454, 4),
    (458, 4),
    (462, 1),
    (466, 1),
    (470, 4),
    (474, 4),
    (510, 2),
];
const GPT_HEADER_FIELDS: &[(usize, usize)] = &[
    (8, 4),
    (12, 4),
    (24, 8),
    (32, 8),
    (40, 8),
    (48, 8),
    (72, 8),
    (80, 4),
    (84, 4),
];
const GPT_ENTRY_FIELDS: &[(usize, usize)] =
    &[(0, 8), (32, 8), (40, 8), (48, 8), (160, 8), (168, 8)];

/// VHDX (MS-VHDX): the headers at 64 and 128 KiB (sequence number, log version, version, log
/// length and offset), the region tables at 192 and 256 KiB (entry count, then each entry's
/// file offset, length and required flag), the metadata table (entry count, each item's
/// offset, length and flags) and the first BAT entries.
const VHDX_HEADER_FIELDS: &[(usize, usize)] = &[(8, 8), (64, 2), (66, 2), (68, 4), (72, 8)];
const VHDX_REGION_TABLE_FIELDS: &[(usize, usize)] =
    &[(8, 4), (32, 8), (40, 4), (44, 4), (64, 8), (72, 4), (76, 4)];
const VHDX_METADATA_FIELDS: &[(usize, usize)] = &[
    (10, 2),
    (48, 4),
    (52, 4),
    (56, 4),
    (80, 4),
    (84, 4),
    (88, 4),
    (112, 4),
    (116, 4),
    (144, 4),
    (148, 4),
    (176, 4),
    (180, 4),
];
const VHDX_BAT_FIELDS: &[(usize, usize)] = &[(0, 8), (8, 8), (16, 8), (24, 8)];
const KIB: usize = 1024;

/// The regions of a VHDX base image, found through its first region table.
fn vhdx_regions(bytes: &[u8]) -> Vec<Region> {
    let mut out = Vec::new();
    for at in [64 * KIB, 128 * KIB] {
        out.push(Region {
            name: "VHDX header",
            at,
            fields: VHDX_HEADER_FIELDS,
            big_endian: false,
            fixup: Fixup::VhdxCrc { len: 4 * KIB },
        });
    }
    for at in [192 * KIB, 256 * KIB] {
        out.push(Region {
            name: "VHDX region table",
            at,
            fields: VHDX_REGION_TABLE_FIELDS,
            big_endian: false,
            fixup: Fixup::VhdxCrc { len: 64 * KIB },
        });
    }
    let table = 192 * KIB;
    for i in 0..(le(bytes, table + 8, 4) as usize).min(2) {
        let entry = table + 16 + 32 * i;
        let Ok(at) = usize::try_from(le(bytes, entry + 16, 8)) else {
            continue;
        };
        let metadata = bytes.get(at..at + 8) == Some(b"metadata");
        out.push(Region {
            name: if metadata {
                "VHDX metadata table"
            } else {
                "VHDX BAT"
            },
            at,
            fields: if metadata {
                VHDX_METADATA_FIELDS
            } else {
                VHDX_BAT_FIELDS
            },
            big_endian: false,
            fixup: Fixup::None,
        });
    }
    out
}

struct Base {
    bytes: Vec<u8>,
    regions: Vec<Region>,
}

fn be(b: &[u8], at: usize, w: usize) -> u64 {
    b.get(at..at.saturating_add(w))
        .map_or(0, |s| s.iter().fold(0u64, |v, &x| v << 8 | u64::from(x)))
}

fn le(b: &[u8], at: usize, w: usize) -> u64 {
    b.get(at..at.saturating_add(w)).map_or(0, |s| {
        s.iter().rev().fold(0u64, |v, &x| v << 8 | u64::from(x))
    })
}

/// The file offset of disk offset `virt` (dynamic VHDs map it through the BAT).
fn file_offset(bytes: &[u8], virt: usize) -> Option<usize> {
    let footer = bytes.len() - SECTOR;
    if be(bytes, footer + 60, 4) != 3 {
        return Some(virt);
    }
    // Read from the base image only (regions are found once, before any edit).
    // Checked throughout: the GPT fix-up calls this on an edited image.
    let header = usize::try_from(be(bytes, footer + 16, 8)).ok()?;
    let bat = usize::try_from(be(bytes, header.checked_add(16)?, 8)).ok()?;
    let block = be(bytes, header.checked_add(32)?, 4) as usize;
    if block == 0 {
        return None;
    }
    let bitmap = (block / SECTOR).div_ceil(8).next_multiple_of(SECTOR);
    let entry = be(bytes, bat.checked_add(4 * (virt / block))?, 4);
    (entry != 0xFFFF_FFFF).then(|| entry as usize * SECTOR + bitmap + virt % block)
}

fn regions_of(bytes: &[u8]) -> Vec<Region> {
    if bytes.starts_with(b"vhdxfile") {
        return vhdx_regions(bytes);
    }
    let mut out = Vec::new();
    let footer = bytes.len() - SECTOR;
    let is_vhd = &bytes[footer..footer + 8] == b"conectix";
    if is_vhd {
        out.push(Region {
            name: "VHD footer",
            at: footer,
            fields: VHD_FOOTER_FIELDS,
            big_endian: true,
            fixup: Fixup::VhdSum { at: 64, len: 512 },
        });
        if be(bytes, footer + 60, 4) == 3 {
            out.push(Region {
                name: "VHD footer copy",
                at: 0,
                fields: VHD_FOOTER_FIELDS,
                big_endian: true,
                fixup: Fixup::VhdSum { at: 64, len: 512 },
            });
            let header = be(bytes, footer + 16, 8) as usize;
            out.push(Region {
                name: "VHD dynamic header",
                at: header,
                fields: VHD_HEADER_FIELDS,
                big_endian: true,
                fixup: Fixup::VhdSum { at: 36, len: 1024 },
            });
            out.push(Region {
                name: "VHD block table",
                at: be(bytes, header + 16, 8) as usize,
                fields: BAT_FIELDS,
                big_endian: true,
                fixup: Fixup::None,
            });
        }
    }
    let disk_len = if is_vhd {
        be(bytes, footer + 48, 8) as usize
    } else {
        bytes.len()
    };
    if let Some(mbr) = file_offset(bytes, 0) {
        out.push(Region {
            name: "MBR",
            at: mbr,
            fields: MBR_FIELDS,
            big_endian: false,
            fixup: Fixup::None,
        });
    }
    for (name, lba) in [
        ("GPT header", 1),
        ("backup GPT header", disk_len / SECTOR - 1),
    ] {
        let Some(at) = file_offset(bytes, lba * SECTOR) else {
            continue;
        };
        if &bytes[at..at + 8] != b"EFI PART" {
            continue;
        }
        out.push(Region {
            name,
            at,
            fields: GPT_HEADER_FIELDS,
            big_endian: false,
            fixup: Fixup::Gpt,
        });
        if let Some(entries) = file_offset(bytes, le(bytes, at + 72, 8) as usize * SECTOR) {
            out.push(Region {
                name: "GPT entries",
                at: entries,
                fields: GPT_ENTRY_FIELDS,
                big_endian: false,
                fixup: Fixup::None,
            });
        }
    }
    out
}

fn clock() -> MountOptions {
    MountOptions::new(Box::new(FixedClock(NtTime(0))))
}

fn build(dir: &Path, f: &Format) -> Base {
    let path = dir.join("base");
    let (mut dev, _) =
        image::create(&path, DISK_SIZE, f.format, f.scheme, true).expect("create the base image");
    fs_core::format(&mut dev, &FormatOptions::default()).expect("format");
    let mut vol = Volume::mount(dev, clock()).expect("mount");
    let root = vol.root().expect("root");
    let name = fs_core::Name::from_str("file").expect("name");
    let file = vol
        .create(
            root,
            &name,
            fs_core::FileKind::File,
            fs_core::FileAttributes::empty(),
        )
        .expect("create");
    vol.write(file, 0, &[7u8; 70_000]).expect("write");
    let mut dev = vol.unmount().expect("unmount");
    dev.flush().expect("flush");
    drop(dev);
    let bytes = crate::outside_the_cap(|| std::fs::read(&path)).expect("read the base image");
    let regions = regions_of(&bytes);
    Base { bytes, regions }
}

struct State {
    _dir: tempfile::TempDir,
    case_path: PathBuf,
    bases: Vec<Base>,
}

fn state() -> &'static State {
    static STATE: OnceLock<State> = OnceLock::new();
    STATE.get_or_init(|| {
        // tmpfs when there is one: every case writes its image file.
        let dir = tempfile::tempdir_in("/dev/shm")
            .or_else(|_| tempfile::tempdir())
            .expect("temporary directory");
        // Setup, not a case: building the bases is outside the per-case cap.
        let bases =
            crate::outside_the_cap(|| FORMATS.iter().map(|f| build(dir.path(), f)).collect());
        let case_path = dir.path().join("case.img");
        State {
            _dir: dir,
            case_path,
            bases,
        }
    })
}

fn put(bytes: &mut [u8], at: usize, w: usize, v: u64, big_endian: bool) {
    let Some(slot) = bytes.get_mut(at..at.saturating_add(w)) else {
        return;
    };
    let le = v.to_le_bytes();
    for (i, b) in slot.iter_mut().enumerate() {
        *b = if big_endian { le[w - 1 - i] } else { le[i] };
    }
}

fn fix(bytes: &mut [u8], r: &Region) {
    match r.fixup {
        Fixup::None => {}
        Fixup::VhdSum { at, len } => {
            let Some(s) = bytes.get(r.at..r.at + len) else {
                return;
            };
            let sum = s
                .iter()
                .enumerate()
                .filter(|(i, _)| !(at..at + 4).contains(i))
                .fold(0u32, |a, (_, &b)| a.wrapping_add(u32::from(b)));
            put(bytes, r.at + at, 4, u64::from(!sum), true);
        }
        Fixup::VhdxCrc { len } => {
            let Some(block) = bytes.get_mut(r.at..r.at + len) else {
                return;
            };
            block[4..8].fill(0);
            let crc = crc32c::crc32c(block);
            block[4..8].copy_from_slice(&crc.to_le_bytes());
        }
        Fixup::Gpt => {
            let h = r.at;
            let entries_at = le(bytes, h + 72, 8).saturating_mul(SECTOR as u64) as usize;
            let array = le(bytes, h + 80, 4).saturating_mul(le(bytes, h + 84, 4)) as usize;
            if let Some(e) = entries_at
                .checked_add(array)
                .filter(|&end| array <= 1 << 20 && end <= bytes.len())
                .and_then(|_| file_offset(bytes, entries_at))
            {
                if let Some(arr) = bytes.get(e..e + array) {
                    let crc = crc32fast::hash(arr);
                    put(bytes, h + 88, 4, u64::from(crc), false);
                }
            }
            let size = (le(bytes, h + 12, 4) as usize).clamp(92, 512);
            put(bytes, h + 16, 4, 0, false);
            let crc = crc32fast::hash(&bytes[h..h + size]);
            put(bytes, h + 16, 4, u64::from(crc), false);
        }
    }
}

/// One fuzz case.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let st = state();
    let base = &st.bases[u.choose_index(st.bases.len()).unwrap_or(0)];
    let mut bytes = crate::outside_the_cap(|| base.bytes.clone());
    let edges: [u64; 12] = [
        0,
        1,
        0xFF,
        0xFFFF,
        0xFFFF_FFFF,
        u64::MAX,
        u64::MAX - 511,
        u64::MAX / 512 + 1,
        DISK_SIZE,
        DISK_SIZE / 512,
        DISK_SIZE / 512 - 1,
        1 << 40,
    ];
    for _ in 0..u.int_in_range(0u8..=5).unwrap_or(0) {
        match u.int_in_range(0u8..=9).unwrap_or(0) {
            // Cut or grow the file (VHD footers are found from its end).
            0 => {
                let sectors = u.int_in_range(1usize..=2048).unwrap_or(1);
                let len = if u.arbitrary::<bool>().unwrap_or(false) {
                    bytes.len().saturating_sub(sectors * SECTOR)
                } else {
                    bytes.len() + sectors * SECTOR
                };
                crate::outside_the_cap(|| bytes.resize(len.max(SECTOR), 0));
            }
            // Any byte, no fix-up.
            1 => {
                if let Ok(at) = u.choose_index(bytes.len()) {
                    bytes[at] = u.arbitrary().unwrap_or(0);
                }
            }
            _ if !base.regions.is_empty() => {
                let r = base.regions[u.choose_index(base.regions.len()).unwrap_or(0)];
                let (off, w) = r.fields[u.choose_index(r.fields.len()).unwrap_or(0)];
                let at = r.at + off;
                let old = if r.big_endian {
                    be(&bytes, at, w)
                } else {
                    le(&bytes, at, w)
                };
                let v = crate::field_value(&mut u, old, w, &edges);
                put(&mut bytes, at, w, v, r.big_endian);
                if bytes.len() == base.bytes.len() {
                    fix(&mut bytes, &r);
                }
            }
            _ => {}
        }
    }
    if std::fs::write(&st.case_path, &bytes).is_err() {
        return;
    }
    exercise(&st.case_path);
}

fn exercise(path: &Path) {
    let Ok(mut img) = image::open(path, false, None) else {
        return;
    };
    let size = BlockDevice::size(&img.dev);
    let mut buf = vec![0u8; 64 << 10];
    for at in [0, size / 2, size.saturating_sub(buf.len() as u64)] {
        let at = at - at % 512;
        let n = (size - at).min(buf.len() as u64) as usize;
        let _ = img.dev.read_at(at, &mut buf[..n]);
    }
    let mut o = clock();
    o.read_only = true;
    if let Ok(mut vol) = Volume::mount(img.dev, o) {
        if let Ok(root) = vol.root() {
            let _ = vol.list(root);
        }
    }
}
