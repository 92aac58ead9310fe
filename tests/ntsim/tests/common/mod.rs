//! Helpers shared by the scenario tests.
#![allow(dead_code, unused_imports)]

pub use ntsim::api::{access, disposition, options, share, Open};
pub use ntsim::{Event, FoId, Handle, Sim};

/// NTSTATUS codes the tests expect.
pub mod status {
    pub use windows_sys::Win32::Foundation::{
        STATUS_ACCESS_DENIED, STATUS_CANNOT_DELETE, STATUS_DELETE_PENDING, STATUS_DISK_FULL,
        STATUS_END_OF_FILE, STATUS_FILE_IS_A_DIRECTORY, STATUS_FILE_LOCKED_WITH_ONLY_READERS,
        STATUS_FILE_LOCKED_WITH_WRITERS, STATUS_INVALID_PARAMETER, STATUS_MAPPED_FILE_SIZE_ZERO,
        STATUS_NOT_A_DIRECTORY, STATUS_OBJECT_NAME_COLLISION, STATUS_OBJECT_NAME_INVALID,
        STATUS_OBJECT_NAME_NOT_FOUND, STATUS_OBJECT_PATH_NOT_FOUND, STATUS_SHARING_VIOLATION,
        STATUS_SUCCESS, STATUS_UNRECOGNIZED_VOLUME, STATUS_USER_MAPPED_FILE,
    };
}

/// IRP major codes.
pub mod mj {
    pub const CREATE: u32 = 0x00;
    pub const CLOSE: u32 = 0x02;
    pub const READ: u32 = 0x03;
    pub const WRITE: u32 = 0x04;
    pub const FILE_SYSTEM_CONTROL: u32 = 0x0d;
    pub const CLEANUP: u32 = 0x12;
}

/// IRP flags.
pub const IRP_NOCACHE: u32 = 0x1;
pub const IRP_PAGING_IO: u32 = 0x2;

/// The end of every test: dismount, unload, nothing leaked.
pub fn finish_clean(sim: Sim) {
    let leaks = sim.finish();
    assert!(leaks.is_empty(), "leaked: {leaks:?}");
}

/// Creates (or opens) `path` for read/write with full sharing.
pub fn open_rw(sim: &mut Sim, path: &str) -> Handle {
    match sim.create(path, &Open::read_write().share(share::ALL)) {
        Ok(h) => h,
        Err(s) => panic!("open {path}: {s:#x}"),
    }
}

/// A non-cached read/write handle.
pub fn open_nc(sim: &mut Sim, path: &str) -> Handle {
    match sim.create(path, &Open::read_write().share(share::ALL).no_buffering()) {
        Ok(h) => h,
        Err(s) => panic!("open {path} non-cached: {s:#x}"),
    }
}

/// The position of the first event matching `f`.
pub fn position(trace: &[Event], f: impl Fn(&Event) -> bool) -> Option<usize> {
    trace.iter().position(f)
}

/// Paging I/O IRPs of `major` in the trace.
pub fn paging_irps(trace: &[Event], major: u32) -> Vec<(i64, u32)> {
    trace
        .iter()
        .filter_map(|e| match e {
            Event::Irp {
                major: m,
                flags,
                offset,
                length,
                ..
            } if u32::from(*m) == major && flags & IRP_PAGING_IO != 0 => Some((*offset, *length)),
            _ => None,
        })
        .collect()
}

/// A page of one byte value.
pub fn filled(byte: u8, len: usize) -> Vec<u8> {
    vec![byte; len]
}
