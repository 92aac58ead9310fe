//! The workloads of issues 9 and 21, one module each.

pub mod first_write;
pub mod ls_long;
pub mod mount_scale;
pub mod small_files;
pub mod throughput;

use anyhow::Result;

use crate::cap::Sample;
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

/// A peer's samples with the options it ran with in the note column (a peer is measured at
/// its best, and the reader sees how).
pub fn with_options(samples: Result<Vec<Sample>>, options: &str) -> Result<Vec<Sample>> {
    samples.map(|v| {
        v.into_iter()
            .map(|mut s| {
                s.note = Some(match s.note.take() {
                    Some(n) => format!("{n}; options: {options}"),
                    None => format!("options: {options}"),
                });
                s
            })
            .collect()
    })
}
