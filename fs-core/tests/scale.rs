//! Scale: 10,000 files in one directory — create, look up every one, enumerate, delete.

mod common;
use common::*;
use fs_core::{DirCursor, FileAttributes, FileKind};

#[test]
fn ten_thousand_files_in_one_directory() {
    const N: usize = 10_000;
    let mut vol = mount(formatted(128 << 20, 4096));
    let dir = mkdir(&mut vol, "/many");
    let mut ids = Vec::with_capacity(N);
    for i in 0..N {
        let id = vol
            .create(
                dir,
                &name(&format!("File-{i:05}.dat")),
                FileKind::File,
                FileAttributes::empty(),
            )
            .unwrap();
        vol.write(id, 0, format!("content {i}").as_bytes()).unwrap();
        ids.push(id);
    }
    let dev = vol.unmount().unwrap();
    let mut vol = mount(dev);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            vol.lookup(dir, &name(&format!("FILE-{i:05}.DAT"))).unwrap(),
            *id
        );
    }
    let mut cursor = DirCursor::start();
    let mut seen = 0;
    loop {
        let (batch, next) = vol.read_dir(dir, &cursor, 333).unwrap();
        for e in &batch {
            assert_eq!(e.name.to_string(), format!("File-{seen:05}.dat"));
            seen += 1;
        }
        match next {
            Some(c) => cursor = c,
            None => break,
        }
    }
    assert_eq!(seen, N);
    assert_eq!(cat(&mut vol, "/many/File-04321.dat"), b"content 4321");
    for i in (0..N).rev() {
        vol.delete(dir, &name(&format!("file-{i:05}.dat"))).unwrap();
    }
    assert!(vol.list(dir).unwrap().is_empty());
    let dev = vol.unmount().unwrap();
    assert_clean(dev);
}
