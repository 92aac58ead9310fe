//! The workloads of issues 9 and 21, one module each.

pub mod first_write;
pub mod ls_long;
pub mod mount_scale;
pub mod small_files;
pub mod throughput;

use crate::system::MIB;

pub fn size_label(bytes: u64) -> String {
    if bytes >= 1 << 40 && bytes % (1 << 40) == 0 {
        format!("{} TiB", bytes >> 40)
    } else if bytes >= 1 << 30 && bytes % (1 << 30) == 0 {
        format!("{} GiB", bytes >> 30)
    } else {
        format!("{} MiB", bytes / MIB)
    }
}
