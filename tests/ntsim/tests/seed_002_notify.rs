//! Seed 002 and NT-22: directory change notification. A watcher pends; a change made through
//! another handle completes it with FILE_NOTIFY_INFORMATION records through a new system
//! buffer (`IRP_DEALLOCATE_BUFFER`) that the I/O manager copies back and frees; overflow gives
//! `STATUS_NOTIFY_ENUM_DIR`; cleanup of the watching handle completes it with
//! `STATUS_NOTIFY_CLEANUP`; every namespace, size, attribute and time change is reported;
//! deleting a watched directory completes its watchers.

mod common;
use common::*;

use std::mem::{offset_of, size_of};

use windows_sys::Win32::Foundation::{
    STATUS_DELETE_PENDING, STATUS_NOTIFY_CLEANUP, STATUS_NOTIFY_ENUM_DIR,
};
use windows_sys::Win32::Storage::FileSystem::FILE_NOTIFY_INFORMATION;

const FILE_NAME: u32 = 0x1;
const DIR_NAME: u32 = 0x2;
const ATTRIBUTES: u32 = 0x4;
const SIZE: u32 = 0x8;
const LAST_WRITE: u32 = 0x10;
const ADDED: u32 = 1;
const REMOVED: u32 = 2;
const MODIFIED: u32 = 3;
const RENAMED_OLD: u32 = 4;
const RENAMED_NEW: u32 = 5;

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().unwrap())
}

/// (action, name) of every FILE_NOTIFY_INFORMATION record.
fn records(b: &[u8]) -> Vec<(u32, String)> {
    let mut out = Vec::new();
    let mut at = 0;
    loop {
        let n = u32_at(b, at + 8) as usize;
        let units: Vec<u16> = b[at + 12..at + 12 + n]
            .chunks_exact(2)
            .map(|c| u16::from_le_bytes([c[0], c[1]]))
            .collect();
        out.push((u32_at(b, at + 4), String::from_utf16_lossy(&units)));
        let next = u32_at(b, at) as usize;
        if next == 0 {
            return out;
        }
        assert_eq!(next % 4, 0, "records are LONG aligned");
        at += next;
    }
}

/// A directory opened to watch it (`FILE_LIST_DIRECTORY`, sharing everything).
fn open_watch_dir(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::new(access::FILE_READ_DATA | access::SYNCHRONIZE)
            .share(share::ALL)
            .options(options::FILE_DIRECTORY_FILE),
    )
    .unwrap_or_else(|s| panic!("open dir {path}: {s:#x}"))
}

fn open_dir(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::new(access::GENERIC_READ | access::DELETE)
            .share(share::ALL)
            .options(options::FILE_DIRECTORY_FILE),
    )
    .unwrap_or_else(|s| panic!("open dir {path}: {s:#x}"))
}

fn mkdir(sim: &mut Sim, path: &str) {
    let h = sim
        .create(
            path,
            &Open::read_write()
                .options(options::FILE_DIRECTORY_FILE)
                .disposition(disposition::FILE_CREATE),
        )
        .unwrap_or_else(|s| panic!("mkdir {path}: {s:#x}"));
    sim.close(h);
}

#[test]
fn seed_002_notify_information_layout() {
    assert_eq!(offset_of!(FILE_NOTIFY_INFORMATION, NextEntryOffset), 0);
    assert_eq!(offset_of!(FILE_NOTIFY_INFORMATION, Action), 4);
    assert_eq!(offset_of!(FILE_NOTIFY_INFORMATION, FileNameLength), 8);
    assert_eq!(offset_of!(FILE_NOTIFY_INFORMATION, FileName), 12);
    assert_eq!(size_of::<FILE_NOTIFY_INFORMATION>(), 16);
}

#[test]
fn seed_002_watcher_completed_through_a_new_system_buffer() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\w");
    let watcher = open_dir(&mut sim, "\\w");
    let pending = sim
        .notify_change_directory(watcher, FILE_NAME, false, 1024)
        .expect("notify");
    assert!(sim.notify_result(pending).is_none(), "the watcher pends");
    // Another handle makes the change.
    let other = open_rw(&mut sim, "\\w\\new.txt");
    let result = sim.notify_result(pending).expect("completed by the change");
    assert_eq!(result.status, status::STATUS_SUCCESS);
    assert!(
        result.new_system_buffer,
        "completed through IRP_DEALLOCATE_BUFFER"
    );
    assert_eq!(result.data.len(), 12 + 14);
    assert_eq!(u32_at(&result.data, 0), 0, "one record");
    assert_eq!(records(&result.data), [(ADDED, "new.txt".to_string())]);
    assert_eq!(
        sim.pool_blocks_tagged(b"FsNb"),
        0,
        "the I/O manager freed the new buffer"
    );
    sim.close(other);
    sim.close(watcher);
    finish_clean(sim);
}

#[test]
fn seed_002_changes_between_requests_are_buffered_then_overflow() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\w");
    let watcher = open_dir(&mut sim, "\\w");
    let first = sim
        .notify_change_directory(watcher, FILE_NAME, false, 64)
        .expect("notify");
    let h = open_rw(&mut sim, "\\w\\a");
    sim.close(h);
    assert_eq!(
        sim.notify_result(first).map(|r| records(&r.data)),
        Some(vec![(ADDED, "a".to_string())])
    );
    // No request outstanding: two small changes are kept (they fit in 64 bytes) ...
    for n in ["b", "c"] {
        let h = open_rw(&mut sim, &format!("\\w\\{n}"));
        sim.close(h);
    }
    let second = sim
        .notify_change_directory(watcher, FILE_NAME, false, 64)
        .expect("notify");
    let r = sim
        .notify_result(second)
        .expect("completed at once with the buffered changes");
    assert_eq!(r.status, status::STATUS_SUCCESS);
    assert_eq!(
        records(&r.data),
        [(ADDED, "b".to_string()), (ADDED, "c".to_string())]
    );
    // ... more than the buffer holds: the next request learns only that it overflowed.
    for i in 0..10 {
        let h = open_rw(&mut sim, &format!("\\w\\overflow-{i}"));
        sim.close(h);
    }
    let third = sim
        .notify_change_directory(watcher, FILE_NAME, false, 64)
        .expect("notify");
    let r = sim.notify_result(third).expect("completed at once");
    assert_eq!((r.status, r.data.len()), (STATUS_NOTIFY_ENUM_DIR, 0));
    // A record larger than the waiting request's buffer also gives STATUS_NOTIFY_ENUM_DIR.
    let fourth = sim
        .notify_change_directory(watcher, FILE_NAME, false, 16)
        .expect("notify");
    let h = open_rw(&mut sim, "\\w\\a-name-longer-than-the-buffer");
    sim.close(h);
    assert_eq!(
        sim.notify_result(fourth).map(|r| r.status),
        Some(STATUS_NOTIFY_ENUM_DIR)
    );
    sim.close(watcher);
    finish_clean(sim);
}

#[test]
fn seed_002_cleanup_of_the_watching_handle_completes_it() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\w");
    let watcher = open_dir(&mut sim, "\\w");
    let pending = sim
        .notify_change_directory(watcher, FILE_NAME, false, 256)
        .expect("notify");
    sim.close(watcher);
    let r = sim.notify_result(pending).expect("completed at cleanup");
    assert_eq!((r.status, r.data.len()), (STATUS_NOTIFY_CLEANUP, 0));
    finish_clean(sim);
}

#[test]
fn nt_22_watch_tree_and_filters() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\a");
    mkdir(&mut sim, "\\a\\b");
    let root = open_dir(&mut sim, "\\");
    let flat = open_dir(&mut sim, "\\a");
    let tree = sim
        .notify_change_directory(root, FILE_NAME, true, 512)
        .expect("notify");
    let only_dirs = sim
        .notify_change_directory(flat, DIR_NAME, false, 512)
        .expect("notify");
    let h = open_rw(&mut sim, "\\a\\b\\deep.txt");
    sim.close(h);
    let r = sim
        .notify_result(tree)
        .expect("the subtree watcher hears of it");
    assert_eq!(records(&r.data), [(ADDED, "a\\b\\deep.txt".to_string())]);
    assert!(
        sim.notify_result(only_dirs).is_none(),
        "a file is not a DIR_NAME change, and not in \\a"
    );
    mkdir(&mut sim, "\\a\\sub");
    let r = sim
        .notify_result(only_dirs)
        .expect("a directory was added to \\a");
    assert_eq!(records(&r.data), [(ADDED, "sub".to_string())]);
    sim.close(flat);
    sim.close(root);
    finish_clean(sim);
}

#[test]
fn nt_22_rename_size_attributes_and_delete_are_reported() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\w");
    mkdir(&mut sim, "\\other");
    // As ReadDirectoryChangesW users open it: a watcher holding DELETE access would make the
    // rename into \w below fail on Windows (the target directory open shares no delete, NT-30).
    let watcher = open_watch_dir(&mut sim, "\\w");
    let all = FILE_NAME | ATTRIBUTES | SIZE | LAST_WRITE;
    // The watch exists from its first request on; later changes wait for the next one.
    let first = sim
        .notify_change_directory(watcher, all, false, 512)
        .expect("notify");
    let h = sim
        .create(
            "\\w\\f",
            &Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE)
                .share(share::ALL),
        )
        .expect("create");
    let next = |sim: &mut Sim| {
        let p = sim
            .notify_change_directory(watcher, all, false, 512)
            .expect("notify");
        sim.notify_result(p)
            .map(|r| records(&r.data))
            .unwrap_or_default()
    };
    let r = sim
        .notify_result(first)
        .expect("the create completed the first request");
    assert_eq!(records(&r.data), [(ADDED, "f".to_string())]);
    assert_eq!(sim.rename(h, 10, "g", 0), status::STATUS_SUCCESS);
    assert_eq!(
        next(&mut sim),
        [
            (RENAMED_OLD, "f".to_string()),
            (RENAMED_NEW, "g".to_string())
        ]
    );
    assert_eq!(
        sim.set_information(h, 20, &4096i64.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    assert_eq!(next(&mut sim), [(MODIFIED, "g".to_string())], "size");
    let mut basic = vec![0u8; 40];
    basic[32..36].copy_from_slice(&0x2u32.to_le_bytes());
    assert_eq!(sim.set_information(h, 4, &basic), status::STATUS_SUCCESS);
    assert_eq!(next(&mut sim), [(MODIFIED, "g".to_string())], "attributes");
    assert_eq!(sim.rename(h, 10, "\\other\\g", 0), status::STATUS_SUCCESS);
    assert_eq!(
        next(&mut sim),
        [(REMOVED, "g".to_string())],
        "moved out of the watched directory"
    );
    assert_eq!(sim.rename(h, 10, "\\w\\back", 0), status::STATUS_SUCCESS);
    assert_eq!(next(&mut sim), [(ADDED, "back".to_string())]);
    assert_eq!(sim.set_information(h, 13, &[1]), status::STATUS_SUCCESS);
    sim.close(h);
    assert_eq!(next(&mut sim), [(REMOVED, "back".to_string())], "delete");
    sim.close(watcher);
    finish_clean(sim);
}

#[test]
fn nt_22_deleting_a_watched_directory_completes_its_watchers() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\doomed");
    let watcher = open_dir(&mut sim, "\\doomed");
    let pending = sim
        .notify_change_directory(watcher, FILE_NAME, false, 256)
        .expect("notify");
    // POSIX delete: the name goes at the deleting handle's cleanup, the watcher still open.
    let killer = open_dir(&mut sim, "\\doomed");
    let flags: u32 = 0x1 | 0x2;
    assert_eq!(
        sim.set_information(killer, 64, &flags.to_le_bytes()),
        status::STATUS_SUCCESS
    );
    assert!(sim.notify_result(pending).is_none());
    sim.close(killer);
    let r = sim
        .notify_result(pending)
        .expect("completed when the directory went");
    assert_eq!((r.status, r.data.len()), (STATUS_DELETE_PENDING, 0));
    // Later requests on the deleted directory complete at once the same way.
    let again = sim
        .notify_change_directory(watcher, FILE_NAME, false, 256)
        .expect("notify");
    assert_eq!(
        sim.notify_result(again).map(|r| r.status),
        Some(STATUS_DELETE_PENDING)
    );
    sim.close(watcher);
    finish_clean(sim);
}

#[test]
fn nt_22_writes_are_reported_once_at_cleanup() {
    let mut sim = Sim::new();
    mkdir(&mut sim, "\\w");
    let h = open_rw(&mut sim, "\\w\\log");
    let watcher = open_dir(&mut sim, "\\w");
    let pending = sim
        .notify_change_directory(watcher, SIZE, false, 256)
        .expect("notify");
    sim.write(h, None, b"one").expect("append");
    sim.write(h, None, b"two").expect("append");
    assert!(
        sim.notify_result(pending).is_none(),
        "nothing until the handle's cleanup"
    );
    sim.close(h);
    let r = sim.notify_result(pending).expect("reported at cleanup");
    assert_eq!(records(&r.data), [(MODIFIED, "log".to_string())]);
    // A write that does not change the size is not a SIZE change, but a LAST_WRITE one.
    let h = open_rw(&mut sim, "\\w\\log");
    let size_only = sim
        .notify_change_directory(watcher, SIZE, false, 256)
        .expect("notify");
    sim.write(h, Some(0), b"ONE").expect("overwrite");
    sim.close(h);
    assert!(sim.notify_result(size_only).is_none());
    sim.close(watcher);
    let r = sim.notify_result(size_only).expect("cleanup");
    assert_eq!(r.status, STATUS_NOTIFY_CLEANUP);
    let w = open_dir(&mut sim, "\\w");
    let last_write = sim
        .notify_change_directory(w, LAST_WRITE, false, 256)
        .expect("notify");
    let h = open_rw(&mut sim, "\\w\\log");
    sim.write(h, Some(0), b"1").expect("overwrite");
    sim.close(h);
    let r = sim.notify_result(last_write).expect("last write reported");
    assert_eq!(records(&r.data), [(MODIFIED, "log".to_string())]);
    sim.close(w);
    finish_clean(sim);
}
