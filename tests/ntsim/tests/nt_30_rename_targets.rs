//! NT-30: rename and link targets. `MoveFileEx` sends `FileRenameInformation` with the full
//! target path; the I/O manager opens the target with `SL_OPEN_TARGET_DIRECTORY` and the file
//! system opens the parent directory, leaves the final component in the file object's name and
//! says whether it exists. ntsim only sends that create; everything about the name is the
//! driver's.

mod common;
use common::*;

const RENAME: i32 = 10;
const LINK: i32 = 11;
const RENAME_EX: i32 = 65;
const NAME_CLASS: i32 = 9;
const REPLACE: u32 = 1;
const SET_INFORMATION: u32 = 0x06;

fn mkdir(sim: &mut Sim, path: &str) {
    let open = Open::new(access::GENERIC_READ)
        .share(share::ALL)
        .disposition(disposition::FILE_CREATE)
        .options(options::FILE_DIRECTORY_FILE);
    let h = sim
        .create(path, &open)
        .unwrap_or_else(|s| panic!("mkdir {path}: {s:#x}"));
    sim.close(h);
}

/// A file with `data`, closed, and nothing left referring to it: cowfat does not replace a
/// file whose FCB Cc or Mm still keep alive after the last close (set_rename), so the cached
/// write's section goes here.
fn put(sim: &mut Sim, path: &str, data: &[u8]) {
    let h = open_rw(sim, path);
    assert_eq!(sim.write(h, Some(0), data), Ok(data.len()));
    sim.close(h);
    sim.memory_pressure();
}

/// The whole content of `path`, or the open's status.
fn get(sim: &mut Sim, path: &str) -> Result<Vec<u8>, i32> {
    let open = Open::new(access::GENERIC_READ)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    let h = sim.create(path, &open)?;
    let data = match sim.read(h, 0, 4096) {
        Ok(d) => d,
        Err(status::STATUS_END_OF_FILE) => Vec::new(),
        Err(s) => panic!("read {path}: {s:#x}"),
    };
    sim.close(h);
    sim.memory_pressure();
    Ok(data)
}

/// `FileNameInformation` of a handle, as a string.
fn name_of(sim: &mut Sim, h: Handle) -> String {
    let (s, b) = sim.query_information(h, NAME_CLASS, 512);
    assert_eq!(s, status::STATUS_SUCCESS);
    let units: Vec<u16> = b[4..]
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// Dismount, unload, no leak, fsck clean.
fn finish_checked(sim: Sim) {
    let (leaks, medium) = sim.finish_keeping_medium();
    assert!(leaks.is_empty(), "leaked: {leaks:?}");
    let (report, _) = fs_core::fsck::check(medium, false, &mut |_, _| {}).expect("fsck runs");
    assert!(report.is_clean(), "fsck: {:#?}", report.problems);
}

#[test]
fn nt_30_move_file_ex_with_full_paths_across_directories() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\a");
    mkdir(&mut sim, "\\b");
    put(&mut sim, "\\a\\x", b"payload");
    let h = open_rw(&mut sim, "\\a\\x");
    sim.take_trace();
    // MoveFileEx(\a\x, \b\y, 0): the target does not exist.
    assert_eq!(sim.rename(h, RENAME, "\\b\\y", 0), status::STATUS_SUCCESS);
    assert_eq!(name_of(&mut sim, h), "\\b\\y");
    // The target was opened (a create) before the rename IRP went down.
    let trace = sim.take_trace();
    let create = position(&trace, |e| e.is_irp(mj::CREATE)).expect("target open");
    let set = position(&trace, |e| e.is_irp(SET_INFORMATION)).expect("rename IRP");
    assert!(create < set, "{trace:#?}");
    // No replace onto an existing file: refused, both files as they were.
    put(&mut sim, "\\b\\z", b"old z");
    assert_eq!(
        sim.rename(h, RENAME, "\\b\\z", 0),
        status::STATUS_OBJECT_NAME_COLLISION
    );
    assert_eq!(name_of(&mut sim, h), "\\b\\y");
    assert_eq!(get(&mut sim, "\\b\\z"), Ok(b"old z".to_vec()));
    // MOVEFILE_REPLACE_EXISTING: replaced.
    assert_eq!(
        sim.rename(h, RENAME, "\\b\\z", REPLACE),
        status::STATUS_SUCCESS
    );
    assert_eq!(get(&mut sim, "\\b\\z"), Ok(b"payload".to_vec()));
    assert_eq!(
        get(&mut sim, "\\b\\y"),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    // FileRenameInformationEx with FILE_RENAME_REPLACE_IF_EXISTS, back across directories.
    put(&mut sim, "\\a\\w", b"old w");
    assert_eq!(
        sim.rename(h, RENAME_EX, "\\a\\w", REPLACE),
        status::STATUS_SUCCESS
    );
    assert_eq!(name_of(&mut sim, h), "\\a\\w");
    // To the root.
    assert_eq!(sim.rename(h, RENAME, "\\top", 0), status::STATUS_SUCCESS);
    assert_eq!(name_of(&mut sim, h), "\\top");
    sim.close(h);
    assert_eq!(get(&mut sim, "\\top"), Ok(b"payload".to_vec()));
    assert_eq!(
        get(&mut sim, "\\a\\x"),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    // A directory moves the same way (the target open asks FILE_ADD_SUBDIRECTORY).
    mkdir(&mut sim, "\\a\\sub");
    put(&mut sim, "\\a\\sub\\inner", b"in");
    let d = sim
        .create(
            "\\a\\sub",
            &Open::new(access::DELETE | access::SYNCHRONIZE)
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN),
        )
        .expect("open dir");
    assert_eq!(
        sim.rename(d, RENAME, "\\b\\moved", 0),
        status::STATUS_SUCCESS
    );
    sim.close(d);
    assert_eq!(get(&mut sim, "\\b\\moved\\inner"), Ok(b"in".to_vec()));
    finish_checked(sim);
}

#[test]
fn nt_30_target_paths_that_do_not_lead_to_a_directory() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\b");
    put(&mut sim, "\\b\\file", b"f");
    put(&mut sim, "\\src", b"s");
    let h = open_rw(&mut sim, "\\src");
    for (target, expected) in [
        ("\\missing\\q", status::STATUS_OBJECT_PATH_NOT_FOUND),
        ("\\b\\missing\\q", status::STATUS_OBJECT_PATH_NOT_FOUND),
        ("\\b\\file\\q", status::STATUS_OBJECT_PATH_NOT_FOUND),
    ] {
        sim.take_trace();
        assert_eq!(sim.rename(h, RENAME, target, 0), expected, "{target}");
        let trace = sim.take_trace();
        assert!(
            !trace.iter().any(|e| e.is_irp(SET_INFORMATION)),
            "{target}: {trace:#?}"
        );
    }
    assert_eq!(name_of(&mut sim, h), "\\src");
    sim.close(h);
    finish_checked(sim);
}

#[test]
fn nt_30_an_open_target_is_not_replaced() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\d");
    put(&mut sim, "\\d\\busy", b"busy");
    put(&mut sim, "\\src", b"src");
    let busy = open_rw(&mut sim, "\\d\\busy");
    let h = open_rw(&mut sim, "\\src");
    assert_eq!(
        sim.rename(h, RENAME, "\\d\\busy", REPLACE),
        status::STATUS_ACCESS_DENIED
    );
    assert_eq!(
        sim.rename(h, RENAME, "\\d\\busy", 0),
        status::STATUS_OBJECT_NAME_COLLISION
    );
    sim.close(busy);
    sim.memory_pressure();
    assert_eq!(get(&mut sim, "\\d\\busy"), Ok(b"busy".to_vec()));
    // Once it is closed the replace goes through.
    assert_eq!(
        sim.rename(h, RENAME, "\\d\\busy", REPLACE),
        status::STATUS_SUCCESS
    );
    sim.close(h);
    assert_eq!(get(&mut sim, "\\d\\busy"), Ok(b"src".to_vec()));
    finish_checked(sim);
}

#[test]
fn nt_30_the_target_directory_open_checks_sharing() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\locked");
    put(&mut sim, "\\src", b"src");
    // Someone holds the directory with DELETE access and shares no delete: the I/O manager's
    // target open (which shares read and write only) conflicts, as on Windows.
    let holder = sim
        .create(
            "\\locked",
            &Open::new(access::DELETE | access::SYNCHRONIZE)
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN),
        )
        .expect("open dir");
    let h = open_rw(&mut sim, "\\src");
    assert_eq!(
        sim.rename(h, RENAME, "\\locked\\x", 0),
        status::STATUS_SHARING_VIOLATION
    );
    sim.close(holder);
    assert_eq!(
        sim.rename(h, RENAME, "\\locked\\x", 0),
        status::STATUS_SUCCESS
    );
    sim.close(h);
    assert_eq!(get(&mut sim, "\\locked\\x"), Ok(b"src".to_vec()));
    finish_checked(sim);
}

#[test]
fn nt_30_hostile_target_names_are_rejected_before_any_rename() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\b");
    put(&mut sim, "\\src", b"src");
    let h = open_rw(&mut sim, "\\src");
    for target in [
        "\\",
        "\\b\\",
        "\\b\\..",
        "\\b\\.",
        "\\b\\..\\src2",
        "\\b\\\\x",
        "\\b\\x:stream",
        "\\b\\a*b",
        "\\b\\a?b",
        "\\b\\a|b",
        "\\b\\a\u{1}b",
        "\\b\\a\"b",
        "\\b\\a<b",
    ] {
        sim.take_trace();
        assert_eq!(
            sim.rename(h, RENAME, target, 0),
            status::STATUS_OBJECT_NAME_INVALID,
            "{target:?}"
        );
        let trace = sim.take_trace();
        assert!(
            !trace.iter().any(|e| e.is_irp(SET_INFORMATION)),
            "{target:?}: {trace:#?}"
        );
    }
    let long = format!("\\b\\{}", "n".repeat(256));
    assert_ne!(sim.rename(h, RENAME, &long, 0), status::STATUS_SUCCESS);
    // No name at all is the I/O manager's STATUS_INVALID_PARAMETER.
    assert_eq!(
        sim.rename(h, RENAME, "", 0),
        status::STATUS_INVALID_PARAMETER
    );
    assert_eq!(name_of(&mut sim, h), "\\src");
    sim.close(h);
    assert_eq!(get(&mut sim, "\\src"), Ok(b"src".to_vec()));
    finish_checked(sim);
}

#[test]
fn nt_30_relative_renames_root_directory_and_bare_names() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\b");
    mkdir(&mut sim, "\\b\\sub");
    put(&mut sim, "\\src", b"src");
    let dir = sim
        .create(
            "\\b",
            &Open::new(access::FILE_READ_DATA | access::SYNCHRONIZE)
                .share(share::ALL)
                .disposition(disposition::FILE_OPEN)
                .options(options::FILE_DIRECTORY_FILE),
        )
        .expect("open dir");
    let h = open_rw(&mut sim, "\\src");
    // RootDirectory + a name: the target is opened relative to that directory.
    assert_eq!(
        sim.rename_relative(h, RENAME, dir, "rel", 0),
        status::STATUS_SUCCESS
    );
    assert_eq!(name_of(&mut sim, h), "\\b\\rel");
    // RootDirectory + a path below it.
    assert_eq!(
        sim.rename_relative(h, RENAME, dir, "sub\\deeper", 0),
        status::STATUS_SUCCESS
    );
    assert_eq!(name_of(&mut sim, h), "\\b\\sub\\deeper");
    // RootDirectory with a name that exists and no replace.
    put(&mut sim, "\\b\\taken", b"t");
    assert_eq!(
        sim.rename_relative(h, RENAME, dir, "taken", 0),
        status::STATUS_OBJECT_NAME_COLLISION
    );
    // A bare name renames in the file's own directory, with no target open.
    sim.take_trace();
    assert_eq!(sim.rename(h, RENAME, "bare", 0), status::STATUS_SUCCESS);
    assert_eq!(name_of(&mut sim, h), "\\b\\sub\\bare");
    let trace = sim.take_trace();
    assert!(!trace.iter().any(|e| e.is_irp(mj::CREATE)), "{trace:#?}");
    sim.close(h);
    sim.close(dir);
    assert_eq!(get(&mut sim, "\\b\\sub\\bare"), Ok(b"src".to_vec()));
    finish_checked(sim);
}

#[test]
fn nt_30_link_onto_an_existing_name_without_replace_fails_in_the_io_manager() {
    let mut sim = Sim::new();
    put(&mut sim, "\\exists", b"e");
    put(&mut sim, "\\src", b"s");
    let h = open_rw(&mut sim, "\\src");
    sim.take_trace();
    assert_eq!(
        sim.rename(h, LINK, "\\exists", 0),
        status::STATUS_OBJECT_NAME_COLLISION
    );
    let trace = sim.take_trace();
    assert!(
        !trace.iter().any(|e| e.is_irp(SET_INFORMATION)),
        "{trace:#?}"
    );
    // A link to a new name reaches the file system, which keeps one name per file.
    assert_eq!(
        sim.rename(h, LINK, "\\new", 0),
        windows_sys::Win32::Foundation::STATUS_INVALID_DEVICE_REQUEST
    );
    sim.close(h);
    finish_checked(sim);
}
