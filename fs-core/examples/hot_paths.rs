//! fs-core's hot paths in memory, timed: creating small files, sequential write and read of
//! a large file, copy-on-write after a seal, a check. docs/hostile-images.md compares a
//! release build with overflow checks and one without:
//!
//! ```text
//! CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=true  cargo run --release -p fs-core --example hot_paths
//! CARGO_PROFILE_RELEASE_OVERFLOW_CHECKS=false cargo run --release -p fs-core --example hot_paths
//! ```
//!
//! Each line is the best of `ROUNDS` runs (the least disturbed by other work on the machine).

use std::time::{Duration, Instant};

use fs_core::time::{FixedClock, NtTime};
use fs_core::{
    format, FileAttributes, FileKind, FormatOptions, MemDevice, MountOptions, Name, Volume,
};

const ROUNDS: usize = 5;
const MIB: usize = 1 << 20;

fn mounted(size: u64) -> Volume<MemDevice> {
    let mut dev = MemDevice::new(size);
    format(&mut dev, &FormatOptions::default()).expect("format");
    Volume::mount(dev, MountOptions::new(Box::new(FixedClock(NtTime(0))))).expect("mount")
}

fn best(mut f: impl FnMut() -> Duration) -> Duration {
    (0..ROUNDS).map(|_| f()).min().unwrap_or_default()
}

fn main() {
    let small = best(|| {
        let mut vol = mounted(256 << 20);
        let root = vol.root().expect("root");
        let t = Instant::now();
        for i in 0..5000 {
            let name = Name::from_str(&format!("file-{i}.txt")).expect("name");
            let f = vol
                .create(root, &name, FileKind::File, FileAttributes::empty())
                .expect("create");
            vol.write(f, 0, b"small file contents").expect("write");
        }
        vol.sync().expect("sync");
        t.elapsed()
    });
    println!(
        "create+write 5000 small files: {:8.1} ms",
        small.as_secs_f64() * 1e3
    );

    let data = vec![0x5Au8; 256 * MIB];
    let mut read_back = vec![0u8; data.len()];
    let (mut write, mut read, mut cow, mut check) =
        (Duration::MAX, Duration::MAX, Duration::MAX, Duration::MAX);
    for _ in 0..ROUNDS {
        let mut vol = mounted(1 << 30);
        let root = vol.root().expect("root");
        let name = Name::from_str("big").expect("name");
        let f = vol
            .create(root, &name, FileKind::File, FileAttributes::empty())
            .expect("create");
        let t = Instant::now();
        for chunk in 0..data.len() / MIB {
            vol.write(
                f,
                (chunk * MIB) as u64,
                &data[chunk * MIB..(chunk + 1) * MIB],
            )
            .expect("write");
        }
        vol.sync().expect("sync");
        write = write.min(t.elapsed());
        let t = Instant::now();
        for chunk in 0..data.len() / MIB {
            vol.read(
                f,
                (chunk * MIB) as u64,
                &mut read_back[chunk * MIB..(chunk + 1) * MIB],
            )
            .expect("read");
        }
        read = read.min(t.elapsed());
        assert!(read_back == data);
        vol.seal().expect("seal");
        let t = Instant::now();
        for chunk in 0..64 {
            vol.write(f, (chunk * MIB) as u64, &data[..MIB])
                .expect("write");
        }
        vol.sync().expect("sync");
        cow = cow.min(t.elapsed());
        let dev = vol.unmount().expect("unmount");
        let t = Instant::now();
        let (report, _) = fs_core::fsck::check(dev, false, &mut |_, _| {}).expect("check");
        check = check.min(t.elapsed());
        assert!(report.is_clean());
    }
    let mbps = |d: Duration, mib: f64| mib / d.as_secs_f64();
    println!(
        "sequential write 256 MiB:      {:8.1} MiB/s",
        mbps(write, 256.0)
    );
    println!(
        "sequential read 256 MiB:       {:8.1} MiB/s",
        mbps(read, 256.0)
    );
    println!(
        "copy-on-write 64 MiB:          {:8.1} MiB/s",
        mbps(cow, 64.0)
    );
    println!(
        "fsck of the 1 GiB volume:      {:8.1} ms",
        check.as_secs_f64() * 1e3
    );
}
