//! The driver's input decoding on ntsim: FSCTLs (buffered and METHOD_NEITHER), query/set
//! information classes, volume information classes, directory queries and renames, with
//! buffers and lengths from the input, on a mounted volume with a file, a directory and a
//! volume handle open. The requests go through the I/O manager model as a caller's would.

use std::sync::OnceLock;

use cowfat_fsctl as fsctl;
use fs_core::MemDevice;
use libfuzzer_sys::arbitrary::Unstructured;
use ntsim::api::{options, share, Open};
use ntsim::{Handle, Sim};

/// Codes the driver handles, and their neighbours (a wrong method or access bit).
const FSCTLS: &[u32] = &[
    fsctl::FSCTL_COWFAT_QUERY_MAPPED_STATE,
    fsctl::FSCTL_COWFAT_QUERY_OVERLAY,
    fsctl::FSCTL_COWFAT_COMMIT_FILE,
    fsctl::FSCTL_COWFAT_DISCARD_FILE,
    fsctl::FSCTL_COWFAT_SEAL_VOLUME,
    fsctl::FSCTL_COWFAT_COMMIT_VOLUME,
    fsctl::FSCTL_COWFAT_DISCARD_VOLUME,
    fs_driver::nt::FSCTL_SET_PURGE_FAILURE_MODE,
    fs_driver::nt::FSCTL_GET_VOLUME_BITMAP,
    windows_sys::Win32::System::Ioctl::FSCTL_GET_RETRIEVAL_POINTERS,
    0x0009_0018, // FSCTL_LOCK_VOLUME
    0x0009_001C, // FSCTL_UNLOCK_VOLUME
    0x0009_0028, // FSCTL_IS_VOLUME_MOUNTED
    0x0009_0020, // FSCTL_DISMOUNT_VOLUME
];

fn medium() -> MemDevice {
    static MEDIUM: OnceLock<MemDevice> = OnceLock::new();
    MEDIUM
        .get_or_init(|| ntsim::api::formatted(8 << 20))
        .clone()
}

fn name_from(u: &mut Unstructured<'_>) -> String {
    let names = [
        "\\a.txt",
        "\\d",
        "\\d\\b",
        "\\new",
        "\\d\\..",
        "\\a.txt:s",
        "\\*",
        "",
    ];
    if u.arbitrary::<bool>().unwrap_or(true) {
        names[u.choose_index(names.len()).unwrap_or(0)].to_string()
    } else {
        let len = u.int_in_range(0usize..=40).unwrap_or(0);
        let units: Vec<u16> = (0..len)
            .map(|_| u.arbitrary::<u16>().unwrap_or(0x41))
            .collect();
        format!("\\{}", String::from_utf16_lossy(&units))
    }
}

fn bytes(u: &mut Unstructured<'_>, max: usize) -> Vec<u8> {
    let len = u.int_in_range(0..=max).unwrap_or(0);
    u.bytes(len).map_or_else(|_| vec![0; len], <[u8]>::to_vec)
}

/// One fuzz case.
pub fn run(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let mut sim = Sim::with_medium(medium());
    let rw = Open::read_write().share(share::ALL);
    let (Ok(file), Ok(dir)) = (
        sim.create("\\a.txt", &rw),
        sim.create("\\d", &rw.options(options::FILE_DIRECTORY_FILE)),
    ) else {
        panic!("the base files cannot be made");
    };
    let _ = sim.write(file, Some(0), &[5u8; 10_000]);
    let mut handles: Vec<Handle> = vec![file, dir];
    if let Ok(v) = sim.open_volume() {
        handles.push(v);
    }
    for _ in 0..u.int_in_range(1u8..=8).unwrap_or(1) {
        let h = handles[u.choose_index(handles.len()).unwrap_or(0)];
        match u.int_in_range(0u8..=8).unwrap_or(0) {
            0 | 1 => {
                let code = if u.int_in_range(0u8..=7).unwrap_or(0) == 0 {
                    u.arbitrary().unwrap_or(0)
                } else {
                    let c = FSCTLS[u.choose_index(FSCTLS.len()).unwrap_or(0)];
                    c ^ u
                        .choose(&[0u32, 0, 0, 1, 2, 3, 0x4000, 0x8000])
                        .copied()
                        .unwrap_or(0)
                };
                let input = bytes(&mut u, 96);
                let out = u.int_in_range(0usize..=4096).unwrap_or(0);
                let _ = sim.fsctl(h, code, &input, out);
            }
            2 => {
                let class = u.int_in_range(0i32..=80).unwrap_or(0);
                let len = u.int_in_range(0usize..=1024).unwrap_or(0);
                let _ = sim.query_information(h, class, len);
            }
            3 => {
                let class = u.int_in_range(0i32..=80).unwrap_or(0);
                let data = bytes(&mut u, 128);
                let _ = sim.set_information(h, class, &data);
            }
            4 => {
                let class = u.int_in_range(0i32..=16).unwrap_or(0);
                let len = u.int_in_range(0usize..=1024).unwrap_or(0);
                let _ = sim.query_volume_information(h, class, len);
            }
            5 => {
                let class = u.int_in_range(0i32..=16).unwrap_or(0);
                let data = bytes(&mut u, 128);
                let _ = sim.set_volume_information(h, class, &data);
            }
            6 => {
                let class = u.int_in_range(0i32..=80).unwrap_or(0);
                let len = u.int_in_range(0usize..=2048).unwrap_or(0);
                let expr = u
                    .arbitrary::<bool>()
                    .unwrap_or(false)
                    .then(|| name_from(&mut u));
                let flags = u.arbitrary().unwrap_or(0);
                let index = u.arbitrary().unwrap_or(0);
                let _ = sim.query_directory(h, class, len, expr.as_deref(), flags, index);
            }
            7 => {
                let class = u.int_in_range(0i32..=80).unwrap_or(0);
                let target = name_from(&mut u);
                let flags = u.arbitrary().unwrap_or(0);
                let _ = sim.rename(h, class, &target, flags);
            }
            _ => {
                let path = name_from(&mut u);
                if let Ok(h) = sim.create(&path, &rw) {
                    handles.push(h);
                }
            }
        }
    }
    for h in handles {
        sim.close(h);
    }
    let _ = sim.finish();
}
