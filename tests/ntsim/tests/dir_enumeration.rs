//! Directory enumeration (issue 7): every class's entry layout against the NT structures,
//! wildcards (DOS `*` `?` `<` `>` `"`), restart scan, single entry, index resume, `.` and
//! `..`, `STATUS_NO_SUCH_FILE` / `STATUS_NO_MORE_FILES`, short buffers, and a 10,000-entry
//! directory read in small buffers returning every name exactly once.

mod common;
use common::*;

use std::collections::BTreeSet;
use std::mem::{offset_of, size_of};

use ntsim::requests::dir_flags::{SL_INDEX_SPECIFIED, SL_RESTART_SCAN, SL_RETURN_SINGLE_ENTRY};
use windows_sys::Wdk::Storage::FileSystem::{
    FILE_BOTH_DIR_INFORMATION, FILE_DIRECTORY_INFORMATION, FILE_FULL_DIR_INFORMATION,
    FILE_ID_BOTH_DIR_INFORMATION, FILE_ID_EXTD_DIR_INFORMATION, FILE_ID_FULL_DIR_INFORMATION,
    FILE_NAMES_INFORMATION,
};
use windows_sys::Win32::Foundation::{
    STATUS_BUFFER_OVERFLOW, STATUS_INFO_LENGTH_MISMATCH, STATUS_NO_MORE_FILES, STATUS_NO_SUCH_FILE,
};

const DIRECTORY: i32 = 1;
const FULL: i32 = 2;
const BOTH: i32 = 3;
const NAMES: i32 = 12;
const ID_BOTH: i32 = 37;
const ID_FULL: i32 = 38;
const ID_EXTD: i32 = 60;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}
fn i64_at(b: &[u8], at: usize) -> i64 {
    i64::from_le_bytes(b[at..at + 8].try_into().unwrap())
}

/// Where the name length and name sit in an entry of `class`.
fn name_fields(class: i32) -> (usize, usize) {
    match class {
        DIRECTORY => (60, offset_of!(FILE_DIRECTORY_INFORMATION, FileName)),
        FULL => (60, offset_of!(FILE_FULL_DIR_INFORMATION, FileName)),
        BOTH => (60, offset_of!(FILE_BOTH_DIR_INFORMATION, FileName)),
        NAMES => (8, offset_of!(FILE_NAMES_INFORMATION, FileName)),
        ID_BOTH => (60, offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileName)),
        ID_FULL => (60, offset_of!(FILE_ID_FULL_DIR_INFORMATION, FileName)),
        ID_EXTD => (60, offset_of!(FILE_ID_EXTD_DIR_INFORMATION, FileName)),
        _ => unreachable!(),
    }
}

/// (name, entry offset) of every entry of a reply.
fn entries(class: i32, b: &[u8]) -> Vec<(String, usize)> {
    let (len_at, name_at) = name_fields(class);
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let n = u32_at(b, at + len_at) as usize;
        let units: Vec<u16> = b[at + name_at..at + name_at + n]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((String::from_utf16_lossy(&units), at));
        let next = u32_at(b, at) as usize;
        if next == 0 {
            return out;
        }
        assert_eq!(next % 8, 0, "entries are 8-byte aligned");
        at += next;
    }
}

fn names(class: i32, b: &[u8]) -> Vec<String> {
    entries(class, b).into_iter().map(|(n, _)| n).collect()
}

fn mkdir(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::read_write()
            .share(share::ALL)
            .options(options::FILE_DIRECTORY_FILE),
    )
    .unwrap_or_else(|s| panic!("mkdir {path}: {s:#x}"))
}

fn touch(sim: &mut Sim, path: &str, data: &[u8]) {
    let h = open_rw(sim, path);
    if !data.is_empty() {
        sim.write(h, Some(0), data).expect("write");
    }
    sim.close(h);
}

#[test]
fn dir_layouts_match_the_nt_structures() {
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, FileIndex), 4);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, CreationTime), 8);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, EndOfFile), 40);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, AllocationSize), 48);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, FileAttributes), 56);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, FileNameLength), 60);
    assert_eq!(offset_of!(FILE_DIRECTORY_INFORMATION, FileName), 64);
    assert_eq!(offset_of!(FILE_FULL_DIR_INFORMATION, EaSize), 64);
    assert_eq!(offset_of!(FILE_FULL_DIR_INFORMATION, FileName), 68);
    assert_eq!(offset_of!(FILE_BOTH_DIR_INFORMATION, ShortNameLength), 68);
    assert_eq!(offset_of!(FILE_BOTH_DIR_INFORMATION, ShortName), 70);
    assert_eq!(offset_of!(FILE_BOTH_DIR_INFORMATION, FileName), 94);
    assert_eq!(offset_of!(FILE_NAMES_INFORMATION, FileNameLength), 8);
    assert_eq!(offset_of!(FILE_NAMES_INFORMATION, FileName), 12);
    assert_eq!(offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileId), 96);
    assert_eq!(offset_of!(FILE_ID_BOTH_DIR_INFORMATION, FileName), 104);
    assert_eq!(offset_of!(FILE_ID_FULL_DIR_INFORMATION, FileId), 72);
    assert_eq!(offset_of!(FILE_ID_FULL_DIR_INFORMATION, FileName), 80);
    // The driver writes id-extd by constants (its windows-sys features lack the structure).
    assert_eq!(
        offset_of!(FILE_ID_EXTD_DIR_INFORMATION, EaSize),
        fs_driver::dispatch::dirctrl::extd::EA_SIZE
    );
    assert_eq!(
        offset_of!(FILE_ID_EXTD_DIR_INFORMATION, ReparsePointTag),
        fs_driver::dispatch::dirctrl::extd::REPARSE_POINT_TAG
    );
    assert_eq!(
        offset_of!(FILE_ID_EXTD_DIR_INFORMATION, FileId),
        fs_driver::dispatch::dirctrl::extd::FILE_ID
    );
    assert_eq!(
        offset_of!(FILE_ID_EXTD_DIR_INFORMATION, FileName),
        fs_driver::dispatch::dirctrl::extd::FILE_NAME
    );
    assert_eq!(size_of::<FILE_ID_EXTD_DIR_INFORMATION>(), 96);
}

#[test]
fn dir_every_class_lists_dot_dotdot_and_entries() {
    let mut sim = Sim::new();
    let d = mkdir(&mut sim, "\\d");
    touch(&mut sim, "\\d\\beta.txt", b"12345");
    touch(&mut sim, "\\d\\Alpha.txt", b"");
    let sub = mkdir(&mut sim, "\\d\\sub");
    sim.close(sub);
    for class in [DIRECTORY, FULL, BOTH, NAMES, ID_BOTH, ID_FULL, ID_EXTD] {
        let (s, b) = sim.query_directory(d, class, 4096, None, SL_RESTART_SCAN, 0);
        assert_eq!(s, status::STATUS_SUCCESS, "class {class}");
        let e = entries(class, &b);
        let n: Vec<&str> = e.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            n,
            [".", "..", "Alpha.txt", "beta.txt", "sub"],
            "class {class}"
        );
        for (i, (_, at)) in e.iter().enumerate() {
            assert_eq!(u32_at(&b, at + 4) as usize, i, "FileIndex");
        }
        if class != NAMES {
            let beta = e[3].1;
            assert_eq!(i64_at(&b, beta + 40), 5, "EndOfFile");
            assert_eq!(u32_at(&b, beta + 56), 0x20, "ARCHIVE");
            assert_eq!(u32_at(&b, e[4].1 + 56) & 0x10, 0x10, "sub is a directory");
        }
        if class == ID_BOTH {
            assert_ne!(i64_at(&b, e[3].1 + 96), 0, "FileId");
            assert_eq!(b[e[3].1 + 68], 0, "no short name");
        }
        let (s, _) = sim.query_directory(d, class, 4096, None, 0, 0);
        assert_eq!(s, STATUS_NO_MORE_FILES);
    }
    // The root has no `.` and `..`.
    let root = sim
        .create(
            "\\",
            &Open::new(access::GENERIC_READ).options(options::FILE_DIRECTORY_FILE),
        )
        .expect("root");
    let (_, b) = sim.query_directory(root, NAMES, 4096, None, 0, 0);
    assert_eq!(names(NAMES, &b), ["d"]);
    sim.close(root);
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn dir_wildcards_single_entry_restart_and_index() {
    let mut sim = Sim::new();
    let d = mkdir(&mut sim, "\\w");
    for n in ["a.txt", "b.txt", "c.doc", "noext", "ab.c.txt"] {
        touch(&mut sim, &format!("\\w\\{n}"), b"");
    }
    let q = |sim: &mut Sim, e: &str| {
        let (s, b) = sim.query_directory(d, NAMES, 4096, Some(e), SL_RESTART_SCAN, 0);
        if s == STATUS_NO_SUCH_FILE {
            return Vec::new();
        }
        assert_eq!(s, status::STATUS_SUCCESS, "{e}");
        names(NAMES, &b)
    };
    assert_eq!(q(&mut sim, "*.txt"), ["a.txt", "ab.c.txt", "b.txt"]);
    assert_eq!(q(&mut sim, "?.txt"), ["a.txt", "b.txt"]);
    assert_eq!(q(&mut sim, "B.TXT"), ["b.txt"], "case-insensitive");
    // DOS `*.*` arrives as `<"*`: everything, with or without a period.
    assert_eq!(
        q(&mut sim, "<\"*"),
        [".", "..", "a.txt", "ab.c.txt", "b.txt", "c.doc", "noext"]
    );
    // DOS `?.txt` arrives as `>.txt`; `"` matches a period (or nothing at the end).
    assert_eq!(q(&mut sim, ">\"TXT"), ["a.txt", "b.txt"]);
    assert_eq!(q(&mut sim, ">.TXT"), ["a.txt", "b.txt"]);
    assert_eq!(q(&mut sim, "NOEXT\""), ["noext"]);
    assert_eq!(q(&mut sim, "<.TXT"), ["a.txt", "ab.c.txt", "b.txt"]);
    assert_eq!(
        q(&mut sim, "zzz"),
        Vec::<String>::new(),
        "no match: STATUS_NO_SUCH_FILE"
    );
    // Single entries in turn, then restart.
    let (s, b) = sim.query_directory(
        d,
        NAMES,
        4096,
        Some("*.txt"),
        SL_RESTART_SCAN | SL_RETURN_SINGLE_ENTRY,
        0,
    );
    assert_eq!(
        (s, names(NAMES, &b)),
        (status::STATUS_SUCCESS, vec!["a.txt".to_string()])
    );
    let (_, b) = sim.query_directory(d, NAMES, 4096, None, SL_RETURN_SINGLE_ENTRY, 0);
    assert_eq!(names(NAMES, &b), ["ab.c.txt"]);
    let (_, b) = sim.query_directory(
        d,
        NAMES,
        4096,
        None,
        SL_RESTART_SCAN | SL_RETURN_SINGLE_ENTRY,
        0,
    );
    assert_eq!(
        names(NAMES, &b),
        ["."],
        "a restart without a name matches everything"
    );
    // Index resume: after the entry with FileIndex 3 (".", "..", "a.txt", "ab.c.txt").
    let (_, b) = sim.query_directory(d, NAMES, 4096, None, SL_INDEX_SPECIFIED, 3);
    assert_eq!(names(NAMES, &b), ["b.txt", "c.doc", "noext"]);
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn dir_short_buffers_split_entries_across_calls() {
    let mut sim = Sim::new();
    let d = mkdir(&mut sim, "\\s");
    for n in ["one", "two", "three"] {
        touch(&mut sim, &format!("\\s\\{n}"), b"");
    }
    // NAMES entries: 12 bytes + the name, each at an 8-byte boundary; 48 bytes hold
    // ".", ".." (32) but not "one" too (50); then "one", "three" (46) but not "two".
    let (s, b) = sim.query_directory(d, NAMES, 48, Some("*"), SL_RESTART_SCAN, 0);
    assert_eq!(s, status::STATUS_SUCCESS);
    assert_eq!(names(NAMES, &b), [".", ".."]);
    let (_, b) = sim.query_directory(d, NAMES, 48, None, 0, 0);
    assert_eq!(names(NAMES, &b), ["one", "three"]);
    let (_, b) = sim.query_directory(d, NAMES, 48, None, 0, 0);
    assert_eq!(names(NAMES, &b), ["two"]);
    assert_eq!(
        sim.query_directory(d, NAMES, 100, None, 0, 0).0,
        STATUS_NO_MORE_FILES
    );
    // A first entry longer than the buffer: its fixed part and what fits of the name.
    touch(&mut sim, "\\s\\a-rather-long-name", b"");
    let (s, b) = sim.query_directory(d, NAMES, 20, Some("A-*"), SL_RESTART_SCAN, 0);
    assert_eq!((s, b.len()), (STATUS_BUFFER_OVERFLOW, 20));
    assert_eq!(u32_at(&b, 8), 36, "the full name length is reported");
    assert_eq!(
        sim.query_directory(d, NAMES, 11, None, SL_RESTART_SCAN, 0)
            .0,
        STATUS_INFO_LENGTH_MISMATCH
    );
    sim.close(d);
    finish_clean(sim);
}

#[test]
fn dir_ten_thousand_entries_in_small_buffers_each_name_once() {
    let mut sim = Sim::new();
    let d = mkdir(&mut sim, "\\big");
    let mut expected = BTreeSet::new();
    for i in 0..10_000 {
        let name = format!("file-{i:05}");
        let h = sim
            .create_relative(
                d,
                &name,
                &Open::read_write().disposition(disposition::FILE_CREATE),
            )
            .expect("create");
        sim.close(h);
        expected.insert(name);
    }
    let mut seen = BTreeSet::new();
    let mut calls = 0;
    let mut flags = SL_RESTART_SCAN;
    loop {
        let (s, b) = sim.query_directory(d, ID_BOTH, 512, Some("FILE-*"), flags, 0);
        flags = 0;
        if s == STATUS_NO_MORE_FILES {
            break;
        }
        assert_eq!(s, status::STATUS_SUCCESS);
        calls += 1;
        for n in names(ID_BOTH, &b) {
            assert!(seen.insert(n.clone()), "{n} returned twice");
        }
    }
    assert_eq!(seen, expected);
    assert!(calls >= 10_000 / 4, "small buffers: {calls} calls");
    sim.close(d);
    finish_clean(sim);
}
