//! Query/set information classes (issue 7): every class's layout byte for byte against the
//! NT structure (sizes and offsets asserted), success and short-buffer answers, and the set
//! classes' effects (times/attributes, disposition and POSIX delete, rename and rename-ex,
//! link refused, position, end of file, allocation, valid data length).

mod common;
use common::*;

use std::mem::{offset_of, size_of};

use windows_sys::Wdk::Storage::FileSystem::{
    FILE_ALLOCATION_INFORMATION, FILE_ALL_INFORMATION, FILE_BASIC_INFORMATION,
    FILE_COMPRESSION_INFORMATION, FILE_DISPOSITION_INFORMATION_EX, FILE_EA_INFORMATION,
    FILE_INTERNAL_INFORMATION, FILE_NAME_INFORMATION, FILE_NETWORK_OPEN_INFORMATION,
    FILE_POSITION_INFORMATION, FILE_RENAME_INFORMATION, FILE_STANDARD_INFORMATION,
    FILE_STREAM_INFORMATION,
};
use windows_sys::Wdk::System::SystemServices::{
    FILE_ATTRIBUTE_TAG_INFORMATION, FILE_END_OF_FILE_INFORMATION,
    FILE_VALID_DATA_LENGTH_INFORMATION,
};
use windows_sys::Win32::Foundation::{
    STATUS_BUFFER_OVERFLOW, STATUS_DELETE_PENDING, STATUS_DIRECTORY_NOT_EMPTY,
    STATUS_INFO_LENGTH_MISMATCH, STATUS_INVALID_DEVICE_REQUEST,
};

/// The class numbers, from windows-sys (an outside reference, not the driver's own table).
mod class {
    use windows_sys::Wdk::Storage::FileSystem as fs;
    pub const BASIC: i32 = fs::FileBasicInformation;
    pub const STANDARD: i32 = fs::FileStandardInformation;
    pub const INTERNAL: i32 = fs::FileInternalInformation;
    pub const EA: i32 = fs::FileEaInformation;
    pub const NAME: i32 = fs::FileNameInformation;
    pub const RENAME: i32 = fs::FileRenameInformation;
    pub const LINK: i32 = fs::FileLinkInformation;
    pub const DISPOSITION: i32 = fs::FileDispositionInformation;
    pub const POSITION: i32 = fs::FilePositionInformation;
    pub const ALL: i32 = fs::FileAllInformation;
    pub const ALLOCATION: i32 = fs::FileAllocationInformation;
    pub const END_OF_FILE: i32 = fs::FileEndOfFileInformation;
    pub const STREAM: i32 = fs::FileStreamInformation;
    pub const COMPRESSION: i32 = fs::FileCompressionInformation;
    pub const NETWORK_OPEN: i32 = fs::FileNetworkOpenInformation;
    pub const ATTRIBUTE_TAG: i32 = fs::FileAttributeTagInformation;
    pub const VALID_DATA_LENGTH: i32 = fs::FileValidDataLengthInformation;
    pub const NORMALIZED_NAME: i32 = fs::FileNormalizedNameInformation;
    pub const DISPOSITION_EX: i32 = fs::FileDispositionInformationEx;
    pub const RENAME_EX: i32 = fs::FileRenameInformationEx;
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}
fn units(s: &str) -> Vec<u8> {
    s.encode_utf16().flat_map(u16::to_le_bytes).collect()
}

#[test]
fn info_layouts_match_the_nt_structures() {
    assert_eq!(size_of::<FILE_BASIC_INFORMATION>(), 40);
    assert_eq!(offset_of!(FILE_BASIC_INFORMATION, ChangeTime), 24);
    assert_eq!(offset_of!(FILE_BASIC_INFORMATION, FileAttributes), 32);
    assert_eq!(size_of::<FILE_STANDARD_INFORMATION>(), 24);
    assert_eq!(offset_of!(FILE_STANDARD_INFORMATION, NumberOfLinks), 16);
    assert_eq!(offset_of!(FILE_STANDARD_INFORMATION, DeletePending), 20);
    assert_eq!(offset_of!(FILE_STANDARD_INFORMATION, Directory), 21);
    assert_eq!(size_of::<FILE_INTERNAL_INFORMATION>(), 8);
    assert_eq!(size_of::<FILE_EA_INFORMATION>(), 4);
    assert_eq!(size_of::<FILE_POSITION_INFORMATION>(), 8);
    assert_eq!(offset_of!(FILE_NAME_INFORMATION, FileName), 4);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, StandardInformation), 40);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, InternalInformation), 64);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, EaInformation), 72);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, AccessInformation), 76);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, PositionInformation), 80);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, ModeInformation), 88);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, AlignmentInformation), 92);
    assert_eq!(offset_of!(FILE_ALL_INFORMATION, NameInformation), 96);
    assert_eq!(size_of::<FILE_NETWORK_OPEN_INFORMATION>(), 56);
    assert_eq!(
        offset_of!(FILE_NETWORK_OPEN_INFORMATION, FileAttributes),
        48
    );
    assert_eq!(size_of::<FILE_ATTRIBUTE_TAG_INFORMATION>(), 8);
    assert_eq!(offset_of!(FILE_STREAM_INFORMATION, StreamSize), 8);
    assert_eq!(offset_of!(FILE_STREAM_INFORMATION, StreamName), 24);
    assert_eq!(size_of::<FILE_COMPRESSION_INFORMATION>(), 16);
    assert_eq!(offset_of!(FILE_RENAME_INFORMATION, RootDirectory), 8);
    assert_eq!(offset_of!(FILE_RENAME_INFORMATION, FileNameLength), 16);
    assert_eq!(offset_of!(FILE_RENAME_INFORMATION, FileName), 20);
    assert_eq!(size_of::<FILE_DISPOSITION_INFORMATION_EX>(), 4);
    assert_eq!(size_of::<FILE_END_OF_FILE_INFORMATION>(), 8);
    assert_eq!(size_of::<FILE_ALLOCATION_INFORMATION>(), 8);
    assert_eq!(size_of::<FILE_VALID_DATA_LENGTH_INFORMATION>(), 8);
}

#[test]
fn info_basic_standard_internal_and_short_buffers() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\f.txt");
    sim.write(h, Some(0), &filled(b'x', 5000)).expect("write");
    let (s, b) = sim.query_information(h, class::BASIC, 40);
    assert_eq!((s, b.len()), (status::STATUS_SUCCESS, 40));
    assert_ne!(i64_at(&b, 0), 0, "creation time");
    assert_eq!(u32_at(&b, 32), 0x20, "a new file is ARCHIVE");
    assert_eq!(
        sim.query_information(h, class::BASIC, 39).0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    let (s, b) = sim.query_information(h, class::STANDARD, 24);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(i64_at(&b, 8), 5000, "EndOfFile");
    assert!(i64_at(&b, 0) >= 5000, "AllocationSize");
    assert_eq!((u32_at(&b, 16), b[20], b[21]), (1, 0, 0));
    let (s, b) = sim.query_information(h, class::INTERNAL, 8);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_ne!(i64_at(&b, 0), 0);
    assert_eq!(
        sim.query_information(h, class::EA, 4),
        (status::STATUS_SUCCESS, vec![0; 4])
    );
    assert_eq!(
        sim.query_information(h, class::EA, 3).0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    let (s, b) = sim.query_information(h, class::NETWORK_OPEN, 56);
    assert_eq!(
        (s, i64_at(&b, 40), u32_at(&b, 48)),
        (status::STATUS_SUCCESS, 5000, 0x20)
    );
    let (s, b) = sim.query_information(h, class::ATTRIBUTE_TAG, 8);
    assert_eq!(
        (s, u32_at(&b, 0), u32_at(&b, 4)),
        (status::STATUS_SUCCESS, 0x20, 0)
    );
    let (s, b) = sim.query_information(h, class::COMPRESSION, 16);
    assert_eq!((s, i64_at(&b, 0), b[8]), (status::STATUS_SUCCESS, 5000, 0));
    let (s, b) = sim.query_information(h, class::STREAM, 64);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!((u32_at(&b, 0), u32_at(&b, 4), i64_at(&b, 8)), (0, 14, 5000));
    assert_eq!(&b[24..38], &units("::$DATA")[..]);
    let (s, b) = sim.query_information(h, class::STREAM, 30);
    assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 30));
    // Access, mode and alignment are the I/O manager's on NT: no IRP reaches the FS.
    sim.take_trace();
    let (s, b) = sim.query_information(h, 8, 4);
    let granted = access::FILE_GENERIC_READ | access::FILE_GENERIC_WRITE;
    assert_eq!((s, u32_at(&b, 0)), (status::STATUS_SUCCESS, granted));
    assert_eq!(
        sim.query_information(h, 16, 4),
        (status::STATUS_SUCCESS, vec![0; 4])
    );
    assert_eq!(sim.query_information(h, 17, 4).0, status::STATUS_SUCCESS);
    assert_eq!(
        sim.query_information(h, 16, 3).0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    assert!(sim
        .trace()
        .iter()
        .all(|e| !matches!(e, Event::Irp { major: 5, .. })));
    let (s, b) = sim.query_information(h, class::ALL, 200);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(
        u32_at(&b, 76),
        granted,
        "the I/O manager fills AccessInformation"
    );
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn info_name_normalized_and_all_with_overflow() {
    let mut sim = Sim::new();
    let d = sim
        .create(
            "\\dir",
            &Open::read_write()
                .options(options::FILE_DIRECTORY_FILE)
                .disposition(disposition::FILE_CREATE),
        )
        .expect("mkdir");
    let h = open_rw(&mut sim, "\\dir\\name.txt");
    let expected = units("\\dir\\name.txt");
    for c in [class::NAME, class::NORMALIZED_NAME] {
        let (s, b) = sim.query_information(h, c, 100);
        assert_eq!(s, status::STATUS_SUCCESS);
        assert_eq!(u32_at(&b, 0) as usize, expected.len());
        assert_eq!(&b[4..], &expected[..]);
        let (s, b) = sim.query_information(h, c, 10);
        assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 10), "partial name");
        assert_eq!(
            u32_at(&b, 0) as usize,
            expected.len(),
            "the full length is reported"
        );
        assert_eq!(&b[4..10], &expected[..6]);
        assert_eq!(
            sim.query_information(h, c, 3).0,
            STATUS_INFO_LENGTH_MISMATCH
        );
    }
    let (s, b) = sim.query_information(d, class::NAME, 100);
    assert_eq!((s, &b[4..]), (status::STATUS_SUCCESS, &units("\\dir")[..]));
    let (s, b) = sim.query_information(h, class::ALL, 200);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(b.len(), 100 + expected.len());
    assert_eq!(u32_at(&b, 32), 0x20, "basic part");
    assert_eq!(u32_at(&b, 40 + 16), 1, "standard part: links");
    assert_eq!(u32_at(&b, 96) as usize, expected.len(), "name part");
    assert_eq!(&b[100..], &expected[..]);
    let (s, b) = sim.query_information(h, class::ALL, 104);
    assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 104));
    assert_eq!(
        sim.query_information(h, class::ALL, 99).0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    sim.close(h);
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn info_position_end_of_file_allocation_and_valid_data() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\sizes");
    sim.write(h, Some(0), &filled(b'a', 3000)).expect("write");
    assert_eq!(
        sim.set_information(h, class::POSITION, &77i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    let (s, b) = sim.query_information(h, class::POSITION, 8);
    assert_eq!((s, i64_at(&b, 0)), (status::STATUS_SUCCESS, 77));
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &1000i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(h, class::STANDARD, 24);
    assert_eq!(i64_at(&b, 8), 1000);
    assert_eq!(sim.read(h, 0, 2000).map(|v| v.len()), Ok(1000));
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &8192i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.read(h, 1000, 10),
        Ok(vec![0; 10]),
        "the extension reads as zeros"
    );
    assert_eq!(
        sim.set_information(h, class::ALLOCATION, &(1i64 << 20).to_le_bytes()),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(h, class::STANDARD, 24);
    assert!(i64_at(&b, 0) >= 1 << 20, "allocation grew");
    assert_eq!(i64_at(&b, 8), 8192, "EOF unchanged");
    assert_eq!(
        sim.set_information(h, class::ALLOCATION, &100i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(h, class::STANDARD, 24);
    assert_eq!(i64_at(&b, 8), 100, "allocation below EOF truncates");
    assert_eq!(
        sim.set_information(h, class::VALID_DATA_LENGTH, &50i64.to_le_bytes()),
        status::STATUS_INVALID_PARAMETER,
        "VDL only moves forward"
    );
    assert_eq!(
        sim.set_information(h, class::VALID_DATA_LENGTH, &200i64.to_le_bytes()),
        status::STATUS_INVALID_PARAMETER,
        "not past EOF"
    );
    assert_eq!(
        sim.set_information(h, class::VALID_DATA_LENGTH, &100i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &[0; 7]),
        STATUS_INFO_LENGTH_MISMATCH
    );
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_10_truncation_of_a_mapped_file_is_refused() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\m");
    sim.write(h, Some(0), &filled(b'm', 8192)).expect("write");
    let section = sim.create_section(h, false).expect("section");
    let view = sim.map_view(section, 0, 0).expect("view");
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &0i64.to_le_bytes()),
        status::STATUS_USER_MAPPED_FILE
    );
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &9000i64.to_le_bytes()),
        status::STATUS_SUCCESS,
        "growing is fine"
    );
    sim.unmap_view(view);
    sim.close_section(section);
    assert_eq!(
        sim.set_information(h, class::END_OF_FILE, &0i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn info_basic_set_times_and_attributes() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\t");
    let mut b = vec![0u8; 40];
    b[16..24].copy_from_slice(&133_000_000_000_000_000i64.to_le_bytes());
    b[32..36].copy_from_slice(&0x2u32.to_le_bytes());
    assert_eq!(
        sim.set_information(h, class::BASIC, &b),
        status::STATUS_SUCCESS
    );
    let (_, q) = sim.query_information(h, class::BASIC, 40);
    assert_eq!(i64_at(&q, 16), 133_000_000_000_000_000);
    assert_eq!(u32_at(&q, 32), 0x2, "HIDDEN");
    b[32..36].copy_from_slice(&0x10u32.to_le_bytes());
    assert_eq!(
        sim.set_information(h, class::BASIC, &b),
        status::STATUS_INVALID_PARAMETER,
        "a file cannot become a directory"
    );
    sim.close(h);
    finish_clean(sim);
}

fn mkdir(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::read_write()
            .share(share::ALL)
            .options(options::FILE_DIRECTORY_FILE)
            .disposition(disposition::FILE_OPEN_IF),
    )
    .unwrap_or_else(|s| panic!("mkdir {path}: {s:#x}"))
}

#[test]
fn info_disposition_and_posix_delete() {
    let mut sim = Sim::new();
    let open =
        Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE).share(share::ALL);
    let a = sim.create("\\gone", &open).expect("create");
    assert_eq!(
        sim.set_information(a, class::DISPOSITION, &[1]),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(a, class::STANDARD, 24);
    assert_eq!(b[20], 1, "DeletePending");
    assert_eq!(
        sim.create("\\gone", &open).err(),
        Some(STATUS_DELETE_PENDING)
    );
    assert_eq!(
        sim.set_information(a, class::DISPOSITION, &[0]),
        status::STATUS_SUCCESS,
        "undelete"
    );
    assert_eq!(
        sim.set_information(a, class::DISPOSITION, &[1]),
        status::STATUS_SUCCESS
    );
    sim.close(a);
    assert_eq!(
        sim.create("\\gone", &open.disposition(disposition::FILE_OPEN))
            .err(),
        Some(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    // A directory with an entry cannot be deleted; an empty one can.
    let d = mkdir(&mut sim, "\\d");
    let f = open_rw(&mut sim, "\\d\\x");
    let dd = sim
        .create("\\d", &open.options(options::FILE_DIRECTORY_FILE))
        .expect("open dir");
    assert_eq!(
        sim.set_information(dd, class::DISPOSITION, &[1]),
        STATUS_DIRECTORY_NOT_EMPTY
    );
    // POSIX semantics: the name goes at this handle's close while `f2` stays open.
    let p = sim.create("\\d\\x", &open).expect("open for delete");
    let flags: u32 = 0x1 | 0x2;
    assert_eq!(
        sim.set_information(p, class::DISPOSITION_EX, &flags.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    sim.close(p);
    assert_eq!(
        sim.create("\\d\\x", &open.disposition(disposition::FILE_OPEN))
            .err(),
        Some(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    assert_eq!(
        sim.write(f, Some(0), b"still works"),
        Ok(11),
        "the other handle still works"
    );
    let again = sim
        .create("\\d\\x", &open.disposition(disposition::FILE_CREATE))
        .expect("the name is free");
    sim.close(again);
    sim.close(f);
    // Read-only: refused unless ignored (disposition-ex).
    let ro = sim
        .create(
            "\\ro",
            &open.attributes(1).disposition(disposition::FILE_CREATE),
        )
        .expect("ro");
    assert_eq!(
        sim.set_information(ro, class::DISPOSITION, &[1]),
        status::STATUS_CANNOT_DELETE
    );
    let flags: u32 = 0x1 | 0x10;
    assert_eq!(
        sim.set_information(ro, class::DISPOSITION_EX, &flags.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    sim.close(ro);
    sim.close(dd);
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn info_rename_in_place_across_directories_and_replace() {
    let mut sim = Sim::new();
    let d = mkdir(&mut sim, "\\dst");
    let h = open_rw(&mut sim, "\\old");
    sim.write(h, Some(0), b"payload").expect("write");
    assert_eq!(
        sim.rename(h, class::RENAME, "new", 0),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(h, class::NAME, 100);
    assert_eq!(&b[4..], &units("\\new")[..]);
    assert_eq!(
        sim.rename(h, class::RENAME, "\\dst\\moved", 0),
        status::STATUS_SUCCESS
    );
    let (_, b) = sim.query_information(h, class::NAME, 100);
    assert_eq!(&b[4..], &units("\\dst\\moved")[..]);
    let other = open_rw(&mut sim, "\\other");
    sim.close(other);
    assert_eq!(
        sim.rename(h, class::RENAME, "\\other", 0),
        status::STATUS_OBJECT_NAME_COLLISION
    );
    assert_eq!(
        sim.rename(h, class::RENAME_EX, "\\other", 0x1),
        status::STATUS_SUCCESS,
        "replace-if-exists"
    );
    let (_, b) = sim.query_information(h, class::NAME, 100);
    assert_eq!(&b[4..], &units("\\other")[..]);
    // An open target is not replaced.
    let busy = open_rw(&mut sim, "\\busy");
    assert_eq!(
        sim.rename(h, class::RENAME, "busy", 1),
        status::STATUS_ACCESS_DENIED
    );
    sim.close(busy);
    // Links: one name per file.
    assert_eq!(
        sim.rename(h, class::LINK, "\\link", 0),
        STATUS_INVALID_DEVICE_REQUEST
    );
    sim.close(h);
    let r = sim
        .create(
            "\\other",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("renamed file");
    assert_eq!(sim.read(r, 0, 7).as_deref(), Ok(&b"payload"[..]));
    sim.close(r);
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn nt_09_delete_and_rename_over_refused_while_an_image_is_mapped() {
    let mut sim = Sim::new();
    let open =
        Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE).share(share::ALL);
    let exe = sim.create("\\app.exe", &open).expect("create");
    sim.write(exe, Some(0), &filled(b'M', 4096)).expect("write");
    let image = sim.create_image_section(exe).expect("image section");
    let view = sim.map_view(image, 0, 0).expect("image view");
    assert_eq!(
        sim.set_information(exe, class::DISPOSITION, &[1]),
        status::STATUS_CANNOT_DELETE
    );
    sim.close(exe);
    let other = sim.create("\\new.exe", &open).expect("create");
    assert_eq!(
        sim.rename(other, class::RENAME, "app.exe", 1),
        status::STATUS_ACCESS_DENIED,
        "the mapped image is not replaced"
    );
    sim.unmap_view(view);
    sim.close_section(image);
    sim.memory_pressure();
    assert_eq!(
        sim.rename(other, class::RENAME, "app.exe", 1),
        status::STATUS_SUCCESS
    );
    sim.close(other);
    finish_clean(sim);
}
