//! NT-28: the file position of a synchronous file object. `ReadFile`/`WriteFile` without
//! OVERLAPPED (so `copy`, `fread`, `fwrite`) send no byte offset: the I/O manager puts
//! `CurrentByteOffset` into the request and the file system moves it past what was
//! transferred, on the IRP path and in its fast I/O routines. Every scenario runs both ways:
//! with fast I/O (the I/O manager's first choice once the stream is cached) and with IRPs only.

mod common;
use common::*;
use ntsim::rw::{FILE_USE_FILE_POINTER_POSITION, FILE_WRITE_TO_END_OF_FILE};

const CHUNK: usize = 4096;
const MIB: usize = 1 << 20;

/// A handle as `CreateFile` without `FILE_FLAG_OVERLAPPED` opens it.
fn open_sync(sim: &mut Sim, path: &str, access: u32) -> Handle {
    let open = Open::new(access | access::SYNCHRONIZE)
        .share(share::ALL)
        .options(options::FILE_SYNCHRONOUS_IO_NONALERT);
    match sim.create(path, &open) {
        Ok(h) => h,
        Err(s) => panic!("open {path} synchronous: {s:#x}"),
    }
}

/// Bytes that differ from chunk to chunk, so a copy that reads or writes the wrong chunk shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i.wrapping_mul(7) ^ (i / CHUNK).wrapping_mul(131)) as u8)
        .collect()
}

/// The whole file, read through its own handle with explicit offsets.
fn contents(sim: &mut Sim, path: &str) -> Vec<u8> {
    let h = open_rw(sim, path);
    let mut out = Vec::new();
    loop {
        match sim.read(h, out.len() as u64, 64 * 1024) {
            Ok(chunk) if !chunk.is_empty() => out.extend(chunk),
            Ok(_) | Err(status::STATUS_END_OF_FILE) => break,
            Err(s) => panic!("read: {s:#x}"),
        }
    }
    sim.close(h);
    out
}

fn fast_io_calls(trace: &[Event], wanted: &str) -> usize {
    trace
        .iter()
        .filter(|e| matches!(e, Event::Callback { name, result: 1, .. } if *name == wanted))
        .count()
}

/// `copy src dst`: 4 KiB reads and writes, no offsets, synchronous handles.
fn copy_without_offsets(sim: &mut Sim, src: &str, dst: &str) -> u64 {
    let from = open_sync(sim, src, access::GENERIC_READ);
    let to = open_sync(sim, dst, access::GENERIC_WRITE);
    let mut copied = 0u64;
    // Bounded: a position that never moves would copy the first chunk forever.
    for _ in 0..=MIB / CHUNK {
        match sim.read_next(from, CHUNK) {
            Ok(chunk) => {
                assert!(!chunk.is_empty());
                assert_eq!(sim.write_next(to, &chunk), Ok(chunk.len()));
                copied += chunk.len() as u64;
            }
            Err(status::STATUS_END_OF_FILE) => break,
            Err(s) => panic!("read_next: {s:#x}"),
        }
    }
    assert_eq!(sim.file_pointer(from), Ok(copied as i64));
    assert_eq!(sim.file_pointer(to), Ok(copied as i64));
    sim.close(from);
    sim.close(to);
    copied
}

fn copy_scenario(fast_io: bool) -> Vec<Event> {
    let mut sim = Sim::new();
    sim.set_fast_io(fast_io);
    let data = pattern(MIB);
    let w = open_rw(&mut sim, "\\src.bin");
    for (i, part) in data.chunks(64 * 1024).enumerate() {
        let at = (i * 64 * 1024) as u64;
        assert_eq!(sim.write(w, Some(at), part), Ok(part.len()));
    }
    sim.close(w);
    sim.take_trace();
    assert_eq!(
        copy_without_offsets(&mut sim, "\\src.bin", "\\dst.bin"),
        MIB as u64
    );
    let trace = sim.take_trace();
    assert!(
        contents(&mut sim, "\\dst.bin") == data,
        "the copy differs from the source"
    );
    finish_clean(sim);
    trace
}

#[test]
fn nt_28_copy_of_1_mib_without_offsets_through_irps() {
    let trace = copy_scenario(false);
    assert_eq!(fast_io_calls(&trace, "FastIoRead"), 0);
    // The I/O manager put the file position into each read: 0, 4096, 8192, ...
    let offsets: Vec<i64> = trace
        .iter()
        .filter_map(|e| match e {
            Event::Irp {
                major: 3,
                offset,
                flags,
                ..
            } if flags & IRP_PAGING_IO == 0 => Some(*offset),
            _ => None,
        })
        .collect();
    let expected: Vec<i64> = (0..=MIB / CHUNK).map(|i| (i * CHUNK) as i64).collect();
    assert_eq!(offsets, expected, "the last read is the one at end of file");
}

#[test]
fn nt_28_copy_of_1_mib_without_offsets_through_fast_io() {
    let trace = copy_scenario(true);
    // The first read and write set up the cache maps through IRPs; the rest is fast I/O.
    assert!(
        fast_io_calls(&trace, "FastIoRead") >= MIB / CHUNK - 1,
        "{}",
        fast_io_calls(&trace, "FastIoRead")
    );
    assert!(fast_io_calls(&trace, "FastIoWrite") >= MIB / CHUNK - 1);
}

fn pointer_scenario(fast_io: bool) {
    let mut sim = Sim::new();
    sim.set_fast_io(fast_io);
    let h = open_sync(
        &mut sim,
        "\\p.txt",
        access::GENERIC_READ | access::GENERIC_WRITE,
    );
    assert_eq!(sim.write_next(h, b"hello world"), Ok(11));
    assert_eq!(sim.file_pointer(h), Ok(11));
    // SetFilePointer, then a read from there.
    assert_eq!(sim.set_file_pointer(h, 6), status::STATUS_SUCCESS);
    assert_eq!(sim.read_next(h, 5).as_deref(), Ok(&b"world"[..]));
    assert_eq!(sim.file_pointer(h), Ok(11));
    // Overwrite from the start.
    assert_eq!(sim.set_file_pointer(h, 0), status::STATUS_SUCCESS);
    assert_eq!(sim.write_next(h, b"J"), Ok(1));
    assert_eq!(sim.file_pointer(h), Ok(1));
    // FILE_USE_FILE_POINTER_POSITION is the same as no offset.
    let read = sim.nt_read(h, Some(FILE_USE_FILE_POINTER_POSITION), 4);
    assert_eq!(read.as_deref(), Ok(&b"ello"[..]));
    assert_eq!(sim.file_pointer(h), Ok(5));
    // An explicit offset on a synchronous handle moves the position too (as on Windows).
    assert_eq!(sim.read(h, 2, 3).as_deref(), Ok(&b"llo"[..]));
    assert_eq!(sim.file_pointer(h), Ok(5));
    // A short read at the tail advances by what it returned; at end of file nothing moves.
    assert_eq!(sim.set_file_pointer(h, 8), status::STATUS_SUCCESS);
    assert_eq!(sim.read_next(h, 100).as_deref(), Ok(&b"rld"[..]));
    assert_eq!(sim.file_pointer(h), Ok(11));
    assert_eq!(sim.read_next(h, 1), Err(status::STATUS_END_OF_FILE));
    assert_eq!(sim.file_pointer(h), Ok(11));
    // A position past the end is allowed; a write there extends the file with zeros.
    assert_eq!(sim.set_file_pointer(h, 13), status::STATUS_SUCCESS);
    assert_eq!(sim.write_next(h, b"!"), Ok(1));
    assert_eq!(sim.file_pointer(h), Ok(14));
    assert_eq!(
        sim.set_file_pointer(h, -1),
        status::STATUS_INVALID_PARAMETER
    );
    assert_eq!(sim.file_pointer(h), Ok(14));
    // The I/O manager keeps the position of a synchronous handle: no IRP for it.
    let trace = sim.trace();
    assert!(
        !trace.iter().any(|e| e.is_irp(0x05) || e.is_irp(0x06)),
        "{trace:#?}"
    );
    sim.close(h);
    assert_eq!(contents(&mut sim, "\\p.txt"), b"Jello world\0\0!".to_vec());
    finish_clean(sim);
}

#[test]
fn nt_28_set_file_pointer_then_read_and_write_through_irps() {
    pointer_scenario(false);
}

#[test]
fn nt_28_set_file_pointer_then_read_and_write_through_fast_io() {
    pointer_scenario(true);
}

fn append_scenario(fast_io: bool) {
    let mut sim = Sim::new();
    sim.set_fast_io(fast_io);
    let h = open_sync(
        &mut sim,
        "\\log.txt",
        access::GENERIC_READ | access::GENERIC_WRITE,
    );
    assert_eq!(sim.write_next(h, b"abc"), Ok(3));
    assert_eq!(sim.set_file_pointer(h, 1), status::STATUS_SUCCESS);
    // FILE_WRITE_TO_END_OF_FILE appends wherever the position is, and the position follows.
    assert_eq!(
        sim.nt_write(h, Some(FILE_WRITE_TO_END_OF_FILE), b"defg"),
        Ok(4)
    );
    assert_eq!(sim.file_pointer(h), Ok(7));
    // A handle with FILE_APPEND_DATA but not FILE_WRITE_DATA always appends, whatever the
    // position or offset says.
    let a = open_sync(
        &mut sim,
        "\\log.txt",
        access::FILE_APPEND_DATA | access::FILE_READ_DATA,
    );
    assert_eq!(sim.file_pointer(a), Ok(0));
    assert_eq!(sim.write_next(a, b"hi"), Ok(2));
    assert_eq!(sim.file_pointer(a), Ok(9));
    assert_eq!(sim.nt_write(a, Some(0), b"jk"), Ok(2));
    assert_eq!(sim.file_pointer(a), Ok(11));
    // The other handle's position is its own.
    assert_eq!(sim.file_pointer(h), Ok(7));
    assert_eq!(sim.read_next(h, 10).as_deref(), Ok(&b"hijk"[..]));
    sim.close(a);
    sim.close(h);
    assert_eq!(contents(&mut sim, "\\log.txt"), b"abcdefghijk".to_vec());
    finish_clean(sim);
}

#[test]
fn nt_28_appends_through_irps() {
    append_scenario(false);
}

#[test]
fn nt_28_appends_through_fast_io() {
    append_scenario(true);
}

#[test]
fn nt_28_non_synchronous_handles_need_an_offset() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\async.bin");
    assert_eq!(sim.write(h, Some(0), b"data"), Ok(4));
    sim.take_trace();
    // The I/O manager refuses before any IRP: there is no position to use.
    assert_eq!(sim.read_next(h, 4), Err(status::STATUS_INVALID_PARAMETER));
    assert_eq!(
        sim.write_next(h, b"xx"),
        Err(status::STATUS_INVALID_PARAMETER)
    );
    let trace = sim.take_trace();
    assert!(
        !trace
            .iter()
            .any(|e| e.is_irp(mj::READ) || e.is_irp(mj::WRITE)),
        "{trace:#?}"
    );
    // FILE_USE_FILE_POINTER_POSITION reaches the file system, which refuses it.
    let status = sim.nt_read(h, Some(FILE_USE_FILE_POINTER_POSITION), 4);
    assert_eq!(status, Err(status::STATUS_INVALID_PARAMETER));
    // Its position is the file system's, set through an IRP.
    assert_eq!(sim.set_file_pointer(h, 2), status::STATUS_SUCCESS);
    assert!(sim.take_trace().iter().any(|e| e.is_irp(0x06)));
    assert_eq!(sim.read(h, 0, 4).as_deref(), Ok(&b"data"[..]));
    // Synchronous options need SYNCHRONIZE, and only one of them.
    // (FILE_GENERIC_READ includes SYNCHRONIZE: ask for the specific right alone.)
    let no_sync = Open::new(access::FILE_READ_DATA).options(options::FILE_SYNCHRONOUS_IO_NONALERT);
    assert_eq!(
        sim.create("\\async.bin", &no_sync).err(),
        Some(status::STATUS_INVALID_PARAMETER)
    );
    let both = Open::new(access::GENERIC_READ | access::SYNCHRONIZE)
        .options(options::FILE_SYNCHRONOUS_IO_NONALERT | options::FILE_SYNCHRONOUS_IO_ALERT);
    assert_eq!(
        sim.create("\\async.bin", &both).err(),
        Some(status::STATUS_INVALID_PARAMETER)
    );
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_28_noncached_synchronous_handle_advances_its_position() {
    let mut sim = Sim::new();
    let open = Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::SYNCHRONIZE)
        .share(share::ALL)
        .no_buffering()
        .options(options::FILE_SYNCHRONOUS_IO_ALERT);
    let h = sim.create("\\nc.bin", &open).expect("open");
    let data = pattern(4 * CHUNK);
    for part in data.chunks(CHUNK) {
        assert_eq!(sim.write_next(h, part), Ok(CHUNK));
    }
    assert_eq!(sim.file_pointer(h), Ok((4 * CHUNK) as i64));
    // A non-cached handle's position must stay sector aligned.
    assert_eq!(
        sim.set_file_pointer(h, 100),
        status::STATUS_INVALID_PARAMETER
    );
    assert_eq!(
        sim.set_file_pointer(h, CHUNK as i64),
        status::STATUS_SUCCESS
    );
    assert_eq!(
        sim.read_next(h, CHUNK).as_deref(),
        Ok(&data[CHUNK..2 * CHUNK])
    );
    assert_eq!(
        sim.read_next(h, CHUNK).as_deref(),
        Ok(&data[2 * CHUNK..3 * CHUNK])
    );
    assert_eq!(sim.file_pointer(h), Ok((3 * CHUNK) as i64));
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_28_fast_io_leaves_a_locked_range_to_the_irp_path() {
    let mut sim = Sim::new();
    let h = open_sync(
        &mut sim,
        "\\locked.bin",
        access::GENERIC_READ | access::GENERIC_WRITE,
    );
    assert_eq!(sim.write_next(h, &pattern(2 * CHUNK)), Ok(2 * CHUNK));
    let other = open_rw(&mut sim, "\\locked.bin");
    assert_eq!(sim.lock(other, 0, 100, 0, true), status::STATUS_SUCCESS);
    assert_eq!(sim.set_file_pointer(h, 0), status::STATUS_SUCCESS);
    sim.take_trace();
    let conflict = windows_sys::Win32::Foundation::STATUS_FILE_LOCK_CONFLICT;
    assert_eq!(sim.read_next(h, 10), Err(conflict));
    assert_eq!(sim.write_next(h, b"x"), Err(conflict));
    assert_eq!(
        sim.file_pointer(h),
        Ok(0),
        "a refused transfer does not move the position"
    );
    let trace = sim.take_trace();
    assert_eq!(fast_io_calls(&trace, "FastIoRead"), 0);
    assert!(
        trace.iter().any(|e| e.is_irp(mj::READ)),
        "the IRP path gave the status"
    );
    // Past the locked range the fast path takes it.
    assert_eq!(sim.set_file_pointer(h, 100), status::STATUS_SUCCESS);
    assert_eq!(
        sim.read_next(h, 10).as_deref(),
        Ok(&pattern(2 * CHUNK)[100..110])
    );
    assert_eq!(fast_io_calls(&sim.take_trace(), "FastIoRead"), 1);
    assert_eq!(sim.unlock(other, 0, 100, 0), status::STATUS_SUCCESS);
    sim.close(other);
    sim.close(h);
    finish_clean(sim);
}
