//! Names Win32 cannot open (DOS device names, trailing dots and spaces) reach the driver only
//! through the native API (NtCreateFile with an NT path). The driver treats them as NT and
//! NTFS do: ordinary names, created, opened and kept distinct from their stripped forms. Only
//! components made of dots alone are invalid (docs/win32-names.md).

mod common;
use common::*;

fn create_new() -> Open {
    Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_CREATE)
}

fn open_existing() -> Open {
    Open::read_write()
        .share(share::ALL)
        .disposition(disposition::FILE_OPEN)
}

#[test]
fn nt_device_names_and_trailing_dots_and_spaces_are_ordinary_names() {
    let mut sim = Sim::new();
    let names = [
        "CON",
        "nul.txt",
        "COM1",
        "LPT\u{b9}",
        "trail.",
        "trail ",
        "trail",
    ];
    for (i, name) in names.iter().enumerate() {
        let h = sim
            .create(&format!("\\{name}"), &create_new())
            .unwrap_or_else(|s| panic!("create {name:?}: {s:#x}"));
        sim.write(h, Some(0), &[i as u8; 3]).expect("write");
        sim.close(h);
    }
    // Each is its own file: "trail.", "trail " and "trail" are not folded together.
    for (i, name) in names.iter().enumerate() {
        let h = sim
            .create(&format!("\\{name}"), &open_existing())
            .expect("open");
        assert_eq!(
            sim.read(h, 0, 3).as_deref(),
            Ok(&[i as u8; 3][..]),
            "{name:?}"
        );
        sim.close(h);
    }
}

#[test]
fn nt_components_of_dots_alone_are_invalid() {
    let mut sim = Sim::new();
    for path in ["\\.", "\\..", "\\...", "\\a\\..."] {
        assert_eq!(
            sim.create(path, &create_new()),
            Err(status::STATUS_OBJECT_NAME_INVALID),
            "{path}"
        );
    }
}
