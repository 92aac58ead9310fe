//! External tools working on an image file: mtools (mcopy, mdir, mtype) on a FAT32 image
//! made by dosfstools' mkfs.fat.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::Result;

use crate::host;

/// Makes a FAT32 image of `size` bytes with 4 KiB clusters.
pub fn mkfs_fat(path: &Path, size: u64) -> Result<()> {
    let _ = std::fs::remove_file(path);
    host::run(
        Command::new("mkfs.fat")
            .args(["-F", "32", "-s", "8", "-C"])
            .arg(path)
            .arg((size / 1024).to_string()),
        Duration::from_secs(120),
    )?;
    Ok(())
}

/// An mtools command on `image` (`-i`), without the drive-geometry sanity check that
/// would refuse images not sized like a floppy or a disk.
pub fn mtools(prog: &str, image: &Path) -> Command {
    let mut c = Command::new(prog);
    c.env("MTOOLS_SKIP_CHECK", "1").arg("-i").arg(image);
    c
}
