//! IRP_MJ_CREATE: every disposition, directory/non-directory options, delete-on-close,
//! read-only files, desired access and share access, relative opens, the volume open, and the
//! mapped-file rules of create (NT-09 image sections, NT-10 truncation, NT-11 writable
//! mappings).

mod common;
use common::*;

const FILE_OPENED: usize = 1;

fn dispose(d: u32) -> Open {
    Open::read_write().share(share::ALL).disposition(d)
}

#[test]
fn nt_create_disposition_table() {
    let mut sim = Sim::new();
    use disposition::*;
    // Missing file.
    assert_eq!(
        sim.create("\\f", &dispose(FILE_OPEN)),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    assert_eq!(
        sim.create("\\f", &dispose(FILE_OVERWRITE)),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    let h = sim.create("\\f", &dispose(FILE_CREATE)).expect("create");
    sim.write(h, Some(0), b"hello").expect("write");
    sim.close(h);
    // Existing file.
    assert_eq!(
        sim.create("\\f", &dispose(FILE_CREATE)),
        Err(status::STATUS_OBJECT_NAME_COLLISION)
    );
    for d in [FILE_OPEN, FILE_OPEN_IF] {
        let h = sim.create("\\f", &dispose(d)).expect("open");
        assert_eq!(sim.read(h, 0, 10).as_deref(), Ok(&b"hello"[..]));
        sim.close(h);
    }
    for d in [FILE_OVERWRITE, FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
        let h = sim.create("\\f", &dispose(d)).expect("overwrite");
        assert_eq!(
            sim.read(h, 0, 10),
            Err(status::STATUS_END_OF_FILE),
            "disposition {d}"
        );
        sim.write(h, Some(0), b"again").expect("write");
        sim.close(h);
    }
    // The create's Information is what the I/O manager hands back.
    let trace = sim.take_trace();
    assert!(
        trace.is_empty()
            || trace.iter().any(|e| matches!(
                e,
                Event::Completed {
                    major: 0,
                    information: FILE_OPENED,
                    ..
                }
            ))
    );
    for d in [FILE_OPEN_IF, FILE_OVERWRITE_IF, FILE_SUPERSEDE] {
        let name = format!("\\new{d}");
        let h = sim
            .create(&name, &dispose(d))
            .expect("create by disposition");
        sim.close(h);
    }
    finish_clean(sim);
}

#[test]
fn nt_create_create_information_codes() {
    let mut sim = Sim::new();
    use disposition::*;
    let info_of = |sim: &mut Sim, d: u32| {
        sim.take_trace();
        let h = sim.create("\\i", &dispose(d)).expect("create");
        sim.close(h);
        sim.trace().iter().find_map(|e| match e {
            Event::Completed {
                major: 0,
                information,
                ..
            } => Some(*information),
            _ => None,
        })
    };
    assert_eq!(info_of(&mut sim, FILE_CREATE), Some(2));
    assert_eq!(info_of(&mut sim, FILE_OPEN), Some(1));
    assert_eq!(info_of(&mut sim, FILE_OVERWRITE), Some(3));
    assert_eq!(info_of(&mut sim, FILE_SUPERSEDE), Some(0));
    finish_clean(sim);
}

#[test]
fn nt_create_directories_and_paths() {
    let mut sim = Sim::new();
    let dir = Open::new(access::GENERIC_READ)
        .disposition(disposition::FILE_CREATE)
        .options(options::FILE_DIRECTORY_FILE);
    let d = sim.create("\\d", &dir).expect("mkdir");
    let f = sim
        .create(
            "\\d\\f.txt",
            &Open::read_write().disposition(disposition::FILE_CREATE),
        )
        .expect("file in dir");
    sim.close(f);
    // Relative to the directory handle.
    let r = sim
        .create_relative(
            d,
            "f.txt",
            &Open::read_write().disposition(disposition::FILE_OPEN),
        )
        .expect("relative");
    sim.close(r);
    sim.close(d);
    assert_eq!(
        sim.create(
            "\\d",
            &Open::read_write()
                .disposition(disposition::FILE_OPEN)
                .options(options::FILE_NON_DIRECTORY_FILE)
        ),
        Err(status::STATUS_FILE_IS_A_DIRECTORY)
    );
    assert_eq!(
        sim.create(
            "\\d\\f.txt",
            &Open::read_write()
                .disposition(disposition::FILE_OPEN)
                .options(options::FILE_DIRECTORY_FILE)
        ),
        Err(status::STATUS_NOT_A_DIRECTORY)
    );
    assert_eq!(
        sim.create("\\nope\\f.txt", &Open::read_write()),
        Err(status::STATUS_OBJECT_PATH_NOT_FOUND)
    );
    assert_eq!(
        sim.create("\\d\\f.txt\\x", &Open::read_write()),
        Err(status::STATUS_OBJECT_PATH_NOT_FOUND)
    );
    assert_eq!(
        sim.create("\\d\\..", &Open::read_write()),
        Err(status::STATUS_OBJECT_NAME_INVALID)
    );
    assert_eq!(
        sim.create("\\d\\\\f", &Open::read_write()),
        Err(status::STATUS_OBJECT_NAME_INVALID)
    );
    assert_eq!(
        sim.create(
            "\\d\\f.txt\\",
            &Open::read_write().disposition(disposition::FILE_OPEN)
        ),
        Err(status::STATUS_OBJECT_NAME_INVALID)
    );
    // Reads of a directory are refused.
    let d = sim
        .create(
            "\\d",
            &Open::new(access::GENERIC_READ).disposition(disposition::FILE_OPEN),
        )
        .expect("open dir");
    assert!(sim.read(d, 0, 10).is_err());
    sim.close(d);
    // The volume open and the root.
    let v = sim.open_volume().expect("volume");
    sim.close(v);
    let root = sim
        .create(
            "\\",
            &Open::new(access::GENERIC_READ).disposition(disposition::FILE_OPEN),
        )
        .expect("root");
    sim.close(root);
    finish_clean(sim);
}

#[test]
fn nt_create_share_access() {
    let mut sim = Sim::new();
    let a = sim
        .create("\\s", &Open::read_write().share(share::READ))
        .expect("first");
    // A writer conflicts with the first open's share mode.
    assert_eq!(
        sim.create("\\s", &Open::read_write().share(share::ALL)),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    // A reader that shares read and write is fine.
    let b = sim
        .create(
            "\\s",
            &Open::new(access::GENERIC_READ).share(share::READ | share::WRITE),
        )
        .expect("reader");
    // A reader that does not share write conflicts with the first open's write access.
    assert_eq!(
        sim.create("\\s", &Open::new(access::GENERIC_READ).share(share::READ)),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    sim.close(a);
    sim.close(b);
    // Once both are closed, an exclusive open works.
    let c = sim
        .create("\\s", &Open::read_write().share(share::NONE))
        .expect("exclusive");
    assert_eq!(
        sim.create("\\s", &Open::new(access::GENERIC_READ).share(share::ALL)),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    sim.close(c);
    finish_clean(sim);
}

#[test]
fn nt_create_access_checks_and_read_only() {
    let mut sim = Sim::new();
    let ro = Open::read_write()
        .disposition(disposition::FILE_CREATE)
        .attributes(0x1);
    let h = sim.create("\\ro", &ro).expect("create read-only");
    sim.close(h);
    assert_eq!(
        sim.create(
            "\\ro",
            &Open::read_write().disposition(disposition::FILE_OPEN)
        ),
        Err(status::STATUS_ACCESS_DENIED)
    );
    let r = sim
        .create(
            "\\ro",
            &Open::new(access::GENERIC_READ).disposition(disposition::FILE_OPEN),
        )
        .expect("read-only open");
    // The handle has no write access: the I/O manager refuses before any IRP.
    assert_eq!(
        sim.write(r, Some(0), b"x"),
        Err(status::STATUS_ACCESS_DENIED)
    );
    sim.close(r);
    let del = Open::new(access::GENERIC_READ | access::DELETE)
        .disposition(disposition::FILE_OPEN)
        .options(options::FILE_DELETE_ON_CLOSE);
    assert_eq!(sim.create("\\ro", &del), Err(status::STATUS_CANNOT_DELETE));
    // Delete-on-close needs DELETE access.
    let h = sim.create("\\w", &Open::read_write()).expect("create");
    sim.close(h);
    let no_delete = Open::read_write()
        .disposition(disposition::FILE_OPEN)
        .options(options::FILE_DELETE_ON_CLOSE);
    assert_eq!(
        sim.create("\\w", &no_delete),
        Err(status::STATUS_ACCESS_DENIED)
    );
    finish_clean(sim);
}

#[test]
fn nt_05_delete_on_close_removes_the_file_at_last_cleanup() {
    let mut sim = Sim::new();
    let doc = Open::new(access::GENERIC_READ | access::GENERIC_WRITE | access::DELETE)
        .share(share::ALL)
        .options(options::FILE_DELETE_ON_CLOSE);
    let a = sim.create("\\tmp", &doc).expect("create delete-on-close");
    sim.write(a, Some(0), b"scratch").expect("write");
    let b = open_rw(&mut sim, "\\tmp");
    sim.close(a);
    // Still there while another handle is open.
    let c = sim.create(
        "\\tmp",
        &Open::new(access::GENERIC_READ)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN),
    );
    assert_eq!(c, Err(status::STATUS_DELETE_PENDING));
    sim.close(b);
    assert_eq!(
        sim.create(
            "\\tmp",
            &Open::read_write().disposition(disposition::FILE_OPEN)
        ),
        Err(status::STATUS_OBJECT_NAME_NOT_FOUND)
    );
    finish_clean(sim);
}

#[test]
fn nt_11_deny_write_fails_while_writably_mapped_without_handles() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\m");
    sim.write(h, Some(0), &filled(1, 4096)).expect("write");
    let s = sim.create_section(h, true).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    sim.close_section(s);
    sim.close(h);
    // No handle is open, but the writable view is.
    let deny_write = Open::new(access::GENERIC_READ)
        .share(share::READ)
        .disposition(disposition::FILE_OPEN);
    assert_eq!(
        sim.create("\\m", &deny_write),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    let shares_write = Open::new(access::GENERIC_READ)
        .share(share::READ | share::WRITE)
        .disposition(disposition::FILE_OPEN);
    let r = sim
        .create("\\m", &shares_write)
        .expect("open sharing write");
    sim.close(r);
    sim.unmap_view(v);
    let r = sim.create("\\m", &deny_write).expect("open after unmap");
    sim.close(r);
    finish_clean(sim);
}

#[test]
fn nt_10_overwrite_of_a_mapped_file_fails() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\t");
    sim.write(h, Some(0), &filled(7, 5000)).expect("write");
    let s = sim.create_section(h, false).expect("section");
    let v = sim.map_view(s, 0, 0).expect("view");
    let over = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OVERWRITE);
    assert_eq!(
        sim.create("\\t", &over),
        Err(status::STATUS_USER_MAPPED_FILE)
    );
    sim.unmap_view(v);
    sim.close_section(s);
    let o = sim.create("\\t", &over).expect("overwrite once unmapped");
    assert_eq!(sim.read(o, 0, 1), Err(status::STATUS_END_OF_FILE));
    sim.close(o);
    sim.close(h);
    finish_clean(sim);
}

#[test]
fn nt_09_write_open_fails_while_an_image_section_exists() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\app.exe");
    sim.write(h, Some(0), &filled(0x90, 4096)).expect("write");
    sim.close(h);
    let exec = Open::new(access::GENERIC_READ | access::GENERIC_EXECUTE)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    let r = sim.create("\\app.exe", &exec).expect("open for exec");
    let image = sim.create_image_section(r).expect("image section");
    let v = sim.map_view(image, 0, 0).expect("image view");
    let w = Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN);
    assert_eq!(
        sim.create("\\app.exe", &w),
        Err(status::STATUS_SHARING_VIOLATION)
    );
    let del = Open::new(access::GENERIC_READ | access::DELETE)
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN)
        .options(options::FILE_DELETE_ON_CLOSE);
    assert_eq!(
        sim.create("\\app.exe", &del),
        Err(status::STATUS_CANNOT_DELETE)
    );
    sim.unmap_view(v);
    sim.close_section(image);
    sim.close(r);
    // The image section goes when the FS asks (MmFlushImageSection) and nothing maps it.
    let ok = sim
        .create("\\app.exe", &w)
        .expect("write open after the image is gone");
    sim.close(ok);
    finish_clean(sim);
}
