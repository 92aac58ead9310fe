//! `cowfat mount` through the real kernel: the mapped-file program and the exerciser on the
//! host's own file system (the reference) and on cowfat mounts (default and writeback
//! cache), the image checked with `cowfat fsck` and read back with `cowfat cat` afterwards,
//! seed 004 on a sealed file, overlay control through a mount (ioctls; xattrs refused once),
//! a mount killed mid-write, and `cowfat-stress` (several workers at once, online overlay
//! operations) on both mount modes.
//!
//! Needs Linux, root and /dev/fuse; without them every test fails and says so (a skipped
//! FUSE test would hide that CI never ran it). The test programs come from the
//! `cowfat-mapped-tests` package, built next to `cowfat` if they are not there yet.
#![cfg(target_os = "linux")]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

/// Mounts, cache drops and the exerciser's timing do not mix: one test at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const EXERCISER_OPS: &str = "20000";

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|p| p.into_inner())
}

fn require_fuse() {
    assert!(
        Path::new("/dev/fuse").exists(),
        "FUSE tests need /dev/fuse (and root): it is missing here, so cowfat mount cannot be tested; \
         load the fuse module or run the container with --device /dev/fuse"
    );
    assert!(
        nix::unistd::geteuid().is_root(),
        "FUSE tests need root (to mount without fusermount and to drop caches)"
    );
}

fn cowfat() -> Command {
    Command::new(env!("CARGO_BIN_EXE_cowfat"))
}

/// A program of the cowfat-mapped-tests package, built beside `cowfat` on first use.
fn mapped_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<bool> = Mutex::new(false);
    let dir = Path::new(env!("CARGO_BIN_EXE_cowfat"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = dir.join(name);
    let mut built = BUILT.lock().unwrap_or_else(|p| p.into_inner());
    if !*built && !path.exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-p", "cowfat-mapped-tests", "--bins"]);
        if dir.ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd
            .status()
            .expect("run cargo build for cowfat-mapped-tests");
        assert!(status.success(), "building cowfat-mapped-tests failed");
    }
    *built = true;
    assert!(path.exists(), "{} was not built", path.display());
    path
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("start a command");
    if !out.status.success() {
        eprintln!(
            "{cmd:?} -> {}\n{}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    out
}

fn ok(cmd: &mut Command) -> String {
    let out = run(cmd);
    assert!(out.status.success(), "{cmd:?} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn create_image(dir: &Path) -> PathBuf {
    let img = dir.join("disk.vhd");
    ok(cowfat().arg("create").arg(&img).args(["--size", "256M"]));
    img
}

fn put(img: &Path, name: &str, bytes: &[u8]) {
    let host = img.with_extension("put");
    std::fs::write(&host, bytes).unwrap();
    ok(cowfat().arg("put").arg(img).arg(&host).arg(name));
}

fn cat(img: &Path, name: &str) -> Vec<u8> {
    let out = run(cowfat().arg("cat").arg(img).arg(name));
    assert!(out.status.success(), "cowfat cat {name} failed");
    out.stdout
}

fn fsck_clean(img: &Path) {
    let out = run(cowfat().arg("fsck").arg(img));
    assert_eq!(out.status.code(), Some(0), "cowfat fsck is not clean");
}

fn is_mounted(dir: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let dir = dir.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&*dir))
}

/// A `cowfat mount --foreground` child process.
struct Mount {
    child: Child,
    dir: PathBuf,
}

impl Mount {
    fn start(img: &Path, dir: &Path, extra: &[&str]) -> Mount {
        std::fs::create_dir_all(dir).unwrap();
        let dir = dir.canonicalize().unwrap();
        let child = cowfat()
            .arg("mount")
            .arg(img)
            .arg(&dir)
            .arg("--foreground")
            .args(extra)
            .spawn()
            .expect("start cowfat mount");
        let mut m = Mount { child, dir };
        let start = Instant::now();
        while !is_mounted(&m.dir) {
            if let Ok(Some(status)) = m.child.try_wait() {
                panic!("cowfat mount ended before the mount was live: {status}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "mount did not come up"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        m
    }

    fn pid(&self) -> Pid {
        Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// SIGTERM, as a service manager would: the mount must unmount and exit 0.
    fn stop(mut self) {
        kill(self.pid(), Signal::SIGTERM).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "mount did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "cowfat mount exited with {status}");
        assert!(!is_mounted(&self.dir), "still mounted after SIGTERM");
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        // Only after a failed test: leave no mount behind.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if is_mounted(&self.dir) {
            let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
        }
    }
}

/// Runs a test program; a missing summary line or a death by signal is a failure.
fn program(cmd: &mut Command, summary_ok: &str) -> String {
    let out = run(cmd);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let last = stdout.lines().last().unwrap_or("").to_owned();
    eprintln!("{cmd:?}: {last}");
    assert!(
        out.status.code().is_some(),
        "{cmd:?} died by a signal ({})",
        out.status
    );
    assert!(out.status.success(), "{cmd:?} failed: {last}");
    assert!(
        last.ends_with(summary_ok),
        "{cmd:?}: unexpected summary {last:?}"
    );
    last
}

fn mapped_tests(dir: &Path) {
    program(
        Command::new(mapped_bin("cowfat-mapped-tests"))
            .arg(dir)
            .args(["--drop-caches", "--keep"]),
        " passed, 0 failed",
    );
}

fn exerciser(dir: &Path, seed: &str) {
    std::fs::create_dir_all(dir).unwrap();
    program(
        Command::new(mapped_bin("cowfat-exerciser")).arg(dir).args([
            "--ops",
            EXERCISER_OPS,
            "--seed",
            seed,
            "--drop-caches-every",
            "1000",
            "--keep",
        ]),
        " passed, 0 failed",
    );
}

/// Every file the programs left in `host` is in the image under `dir`, byte for byte.
fn image_matches_host(img: &Path, dir: &str, host: &Path) {
    let mut n = 0;
    for e in std::fs::read_dir(host).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().into_string().unwrap();
        let want = std::fs::read(e.path()).unwrap();
        let got = cat(img, &format!("{dir}/{name}"));
        assert!(
            got == want,
            "{dir}/{name} in the image differs from the reference"
        );
        n += 1;
    }
    assert!(
        n > 0,
        "the reference run left no files in {}",
        host.display()
    );
}

/// The same runs on the host's own file system: the reference, and the expected files.
fn reference(work: &Path, seed: &str) -> (PathBuf, PathBuf) {
    let (m, x) = (work.join("ref-mapped"), work.join("ref-exerciser"));
    std::fs::create_dir_all(&m).unwrap();
    mapped_tests(&m);
    exerciser(&x, seed);
    (m, x)
}

fn programs_pass_on_a_mount(extra: &[&str], seed: &str) {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let (ref_mapped, ref_ex) = reference(work.path(), seed);
    let img = create_image(work.path());
    let m = Mount::start(&img, &work.path().join("mnt"), extra);
    std::fs::create_dir(m.dir.join("mapped")).unwrap();
    mapped_tests(&m.dir.join("mapped"));
    exerciser(&m.dir.join("ex"), seed);
    m.stop();
    fsck_clean(&img);
    image_matches_host(&img, "mapped", &ref_mapped);
    image_matches_host(&img, "ex", &ref_ex);
}

#[test]
fn mapped_file_program_and_exerciser_pass_on_a_default_mount() {
    programs_pass_on_a_mount(&[], "4");
}

#[test]
fn mapped_file_program_and_exerciser_pass_with_writeback_cache() {
    programs_pass_on_a_mount(&["--writeback-cache"], "5");
}

#[test]
fn seed_004_on_a_sealed_file_changes_only_the_overlay() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "base.txt", b"aaaa");
    ok(cowfat().args(["overlay", "seal"]).arg(&img));
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    program(
        Command::new(mapped_bin("cowfat-mapped-tests"))
            .arg(&m.dir)
            .args(["--sealed-file", "base.txt", "--drop-caches"]),
        " passed, 0 failed",
    );
    m.stop();
    fsck_clean(&img);
    assert_eq!(cat(&img, "base.txt"), b"4321\0");
    let status = ok(cowfat()
        .args(["overlay", "status"])
        .arg(&img)
        .arg("base.txt"));
    assert!(status.contains("modified"), "{status}");
    ok(cowfat()
        .args(["overlay", "discard"])
        .arg(&img)
        .arg("base.txt"));
    assert_eq!(cat(&img, "base.txt"), b"aaaa");
    fsck_clean(&img);
}

fn overlay(args: &[&str], dir: &Path, path: Option<&str>) -> Output {
    let mut cmd = cowfat();
    cmd.arg("overlay").args(args).arg(dir);
    if let Some(p) = path {
        cmd.arg(p);
    }
    cmd.output().unwrap()
}

#[test]
fn overlay_control_through_the_mount_refuses_while_open() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "f.txt", b"aaaa");
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    let f = m.dir.join("f.txt");
    assert!(overlay(&["seal"], &m.dir, None).status.success());
    std::fs::write(&f, b"bbbbbb").unwrap();
    let st = overlay(&["status"], &m.dir, Some("f.txt"));
    assert!(String::from_utf8_lossy(&st.stdout).contains("modified"));

    // Open (and so possibly mapped): the discard is refused with one sentence.
    let held = std::fs::File::open(&f).unwrap();
    let busy = overlay(&["discard"], &m.dir, Some("f.txt"));
    let said = String::from_utf8_lossy(&busy.stderr).into_owned();
    assert_eq!(busy.status.code(), Some(1), "{said}");
    assert!(said.contains("is open (or mapped)"), "{said}");
    drop(held);

    // Read into the page cache, then discard: the kernel must drop the old pages and size.
    assert_eq!(std::fs::read(&f).unwrap(), b"bbbbbb");
    let done = overlay(&["discard"], &m.dir, Some("f.txt"));
    assert!(
        done.status.success(),
        "{}",
        String::from_utf8_lossy(&done.stderr)
    );
    // Within the attribute TTL: only the invalidation makes the kernel ask again.
    assert_eq!(std::fs::metadata(&f).unwrap().len(), 4);
    assert_eq!(std::fs::read(&f).unwrap(), b"aaaa");

    // The whole volume's discard is refused on a mount; commit and status work.
    let vol = overlay(&["discard"], &m.dir, None);
    assert_eq!(vol.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&vol.stderr).contains("unmount it and run"));
    std::fs::write(m.dir.join("new.txt"), b"new").unwrap();
    assert!(overlay(&["commit"], &m.dir, None).status.success());
    let st = overlay(&["status", "--json"], &m.dir, None);
    assert!(String::from_utf8_lossy(&st.stdout).contains("\"sealed\":true"));
    m.stop();
    fsck_clean(&img);
    assert_eq!(cat(&img, "new.txt"), b"new");
    assert_eq!(cat(&img, "f.txt"), b"aaaa");
}

/// The server's count of xattr requests (get, list, set, remove), read through its ioctl.
fn xattr_requests(dir: &Path) -> [u64; 4] {
    let root = std::fs::File::open(dir).unwrap();
    format_tool::mount::ioctl::xattr_requests(&root).unwrap()
}

#[test]
fn xattrs_are_refused_once_and_the_kernel_asks_no_more() {
    use rustix::fs::{getxattr, lgetxattr, listxattr, removexattr, setxattr, XattrFlags};
    use rustix::io::Errno;
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "a.txt", b"aaaa");
    put(&img, "b.txt", b"bbbb");
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    assert_eq!(xattr_requests(&m.dir), [0; 4]);
    let mut buf = [0u8; 64];
    // What `ls -l` asks for each file, twice over two files: the first request is answered
    // ENOSYS, which the kernel turns into EOPNOTSUPP and remembers for the mount; an ACL
    // then reads as absent (ENODATA) without asking.
    for _ in 0..2 {
        for f in ["a.txt", "b.txt"] {
            let p = m.dir.join(f);
            assert_eq!(
                lgetxattr(&p, "security.selinux", &mut buf[..]),
                Err(Errno::OPNOTSUPP)
            );
            assert_eq!(
                getxattr(&p, "system.posix_acl_access", &mut buf[..]),
                Err(Errno::NODATA)
            );
            assert_eq!(
                getxattr(&p, "user.cowfat.overlay", &mut buf[..]),
                Err(Errno::OPNOTSUPP)
            );
            assert_eq!(listxattr(&p, &mut buf[..]), Err(Errno::OPNOTSUPP));
            assert_eq!(
                setxattr(&p, "user.x", b"1", XattrFlags::empty()),
                Err(Errno::OPNOTSUPP)
            );
            assert_eq!(removexattr(&p, "user.x"), Err(Errno::OPNOTSUPP));
        }
    }
    assert_eq!(
        xattr_requests(&m.dir),
        [1, 1, 1, 1],
        "the server saw more than one request of a kind: the kernel did not stop asking"
    );
    // And the overlay control still works (it is not an xattr).
    assert_eq!(
        ok(cowfat().args(["overlay", "status"]).arg(&m.dir)).trim(),
        "not sealed"
    );
    m.stop();
    fsck_clean(&img);
}

/// The kernel starts a FUSE mount with 128 KiB of read-ahead and gives the server no way to
/// ask for more; the mount raises its own backing device's setting to one whole READ request
/// (1 MiB) once it is live, so a cold sequential read is not cut into 128 KiB round trips.
#[test]
fn a_mount_raises_its_read_ahead_to_one_whole_request() {
    use std::os::unix::fs::MetadataExt;
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    let big: Vec<u8> = (0..3u32 << 20).map(|i| (i % 251) as u8).collect();
    put(&img, "big.bin", &big);
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    let dev = std::fs::metadata(&m.dir).unwrap().dev();
    let setting = format!(
        "/sys/class/bdi/{}:{}/read_ahead_kb",
        rustix::fs::major(dev),
        rustix::fs::minor(dev)
    );
    // The raise happens on its own thread once INIT is answered: give it a moment.
    let start = Instant::now();
    let kib = loop {
        let kib = std::fs::read_to_string(&setting).unwrap();
        if kib.trim() == "1024" || start.elapsed() > Duration::from_secs(10) {
            break kib;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(kib.trim(), "1024", "{setting}");
    // And the bytes still read back whole through the larger window.
    std::fs::write("/proc/sys/vm/drop_caches", "3").unwrap();
    assert!(std::fs::read(m.dir.join("big.bin")).unwrap() == big);
    m.stop();
    fsck_clean(&img);
}

#[test]
fn killing_the_mount_mid_write_leaves_a_consistent_image() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    let mnt = work.path().join("mnt");
    let m = Mount::start(&img, &mnt, &[]);
    std::fs::write(m.dir.join("kept.txt"), b"synced before the crash").unwrap();
    let target = m.dir.join("big.dat");
    // The writer runs until the mount dies under it (its writes then fail). It cycles over
    // 32 MiB so the volume never fills: the kill must find it writing.
    let writer = std::thread::spawn(move || {
        use std::os::unix::fs::FileExt;
        const SPAN: u64 = 32 << 20;
        let chunk = vec![0x5a_u8; 64 << 10];
        let mut written = 0u64;
        let Ok(f) = std::fs::File::create(&target) else {
            return 0;
        };
        while f.write_all_at(&chunk, written % SPAN).is_ok() {
            written += chunk.len() as u64;
            if written % (4 << 20) == 0 && f.sync_data().is_err() {
                break;
            }
        }
        written
    });
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!writer.is_finished(), "the writer stopped before the kill");
    kill(m.pid(), Signal::SIGKILL).unwrap();
    let written = writer.join().unwrap();
    assert!(written > 0, "the writer wrote nothing before the kill");
    let status = Command::new("umount")
        .arg("-l")
        .arg(&m.dir)
        .status()
        .unwrap();
    assert!(status.success(), "umount -l failed");
    drop(m);
    fsck_clean(&img);
    assert_eq!(cat(&img, "kept.txt"), b"synced before the crash");
    // And it mounts again, serves, and unmounts clean.
    let m = Mount::start(&img, &mnt, &[]);
    assert_eq!(
        std::fs::read(m.dir.join("kept.txt")).unwrap(),
        b"synced before the crash"
    );
    m.stop();
    fsck_clean(&img);
}

#[test]
fn overlay_discard_is_refused_on_a_writeback_cache_mount() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "f.txt", b"aaaa");
    ok(cowfat().args(["overlay", "seal"]).arg(&img));
    let m = Mount::start(&img, &work.path().join("mnt"), &["--writeback-cache"]);
    let f = m.dir.join("f.txt");
    std::fs::write(&f, b"bbbbbb").unwrap();
    // The kernel would keep its size (6) over ours (4): the tool refuses in one sentence.
    let r = overlay(&["discard"], &m.dir, Some("f.txt"));
    let said = String::from_utf8_lossy(&r.stderr).into_owned();
    assert_eq!(r.status.code(), Some(1), "{said}");
    assert!(said.contains("--writeback-cache mount"), "{said}");
    assert_eq!(std::fs::read(&f).unwrap(), b"bbbbbb");
    assert!(overlay(&["commit"], &m.dir, Some("f.txt")).status.success());
    m.stop();
    fsck_clean(&img);
    assert_eq!(cat(&img, "f.txt"), b"bbbbbb");
}

#[test]
fn posix_operations_behave_on_a_mount() {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    use std::os::unix::fs::{FileExt, PermissionsExt};
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    let d = m.dir.clone();

    // Rename: no-replace refuses an existing target, replace replaces it.
    std::fs::write(d.join("a"), b"A").unwrap();
    std::fs::write(d.join("b"), b"B").unwrap();
    let e = renameat_with(CWD, d.join("a"), CWD, d.join("b"), RenameFlags::NOREPLACE);
    assert_eq!(e, Err(rustix::io::Errno::EXIST));
    std::fs::rename(d.join("a"), d.join("b")).unwrap();
    assert_eq!(std::fs::read(d.join("b")).unwrap(), b"A");
    assert!(!d.join("a").exists());

    // An unlinked open file stays usable until its last close, then is freed.
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(d.join("gone"))
        .unwrap();
    f.write_all_at(b"still here", 0).unwrap();
    std::fs::remove_file(d.join("gone")).unwrap();
    assert!(!d.join("gone").exists());
    f.write_all_at(b"STILL", 0).unwrap();
    let mut buf = [0u8; 10];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(&buf, b"STILL here");
    // A replaced open target lives on the same way.
    let held = std::fs::File::open(d.join("b")).unwrap();
    std::fs::write(d.join("c"), b"C").unwrap();
    std::fs::rename(d.join("c"), d.join("b")).unwrap();
    let mut one = [0u8; 1];
    held.read_exact_at(&mut one, 0).unwrap();
    assert_eq!(&one, b"A");
    drop((f, held));

    // Directories: mkdir, many entries listed, rmdir refuses a non-empty one.
    std::fs::create_dir(d.join("dir")).unwrap();
    for i in 0..600 {
        std::fs::write(d.join(format!("dir/file-{i:04}.txt")), i.to_string()).unwrap();
    }
    assert_eq!(std::fs::read_dir(d.join("dir")).unwrap().count(), 600);
    let e = std::fs::remove_dir(d.join("dir")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc_enotempty()));

    // Truncate, fallocate, times, the read-only attribute, statfs.
    let g = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(d.join("sized"))
        .unwrap();
    g.set_len(10_000).unwrap();
    rustix::fs::fallocate(&g, rustix::fs::FallocateFlags::KEEP_SIZE, 0, 1 << 20).unwrap();
    rustix::fs::fallocate(&g, rustix::fs::FallocateFlags::empty(), 0, 20_000).unwrap();
    let md = g.metadata().unwrap();
    assert_eq!(md.len(), 20_000);
    let when = std::time::UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    g.set_times(std::fs::FileTimes::new().set_modified(when))
        .unwrap();
    drop(g);
    assert_eq!(
        std::fs::metadata(d.join("sized"))
            .unwrap()
            .modified()
            .unwrap(),
        when
    );
    std::fs::set_permissions(d.join("sized"), std::fs::Permissions::from_mode(0o444)).unwrap();
    assert_eq!(
        std::fs::metadata(d.join("sized"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o444
    );
    let vfs = rustix::fs::statvfs(&d).unwrap();
    assert!(vfs.f_blocks > 0 && vfs.f_bfree <= vfs.f_blocks);

    m.stop();
    fsck_clean(&img);
    assert_eq!(cat(&img, "b"), b"C");
    assert_eq!(cat(&img, "dir/file-0599.txt"), b"599");
    let listing = ok(cowfat().arg("ls").arg(&img));
    assert!(!listing.contains("gone"), "{listing}");
}

fn libc_enotempty() -> i32 {
    rustix::io::Errno::NOTEMPTY.raw_os_error()
}

#[test]
fn read_only_mount_refuses_writes_and_detached_mount_returns_once_live() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "f.txt", b"aaaa");
    let m = Mount::start(&img, &work.path().join("ro"), &["-o", "ro"]);
    assert_eq!(std::fs::read(m.dir.join("f.txt")).unwrap(), b"aaaa");
    let e = std::fs::write(m.dir.join("f.txt"), b"x").unwrap_err();
    assert_eq!(
        e.raw_os_error(),
        Some(rustix::io::Errno::ROFS.raw_os_error())
    );
    m.stop();

    // Without --foreground the command returns once the mount is live.
    let dir = work.path().join("bg");
    std::fs::create_dir(&dir).unwrap();
    let dir = dir.canonicalize().unwrap();
    let said = ok(cowfat().arg("mount").arg(&img).arg(&dir));
    assert!(is_mounted(&dir), "{said}");
    std::fs::write(dir.join("g.txt"), b"detached").unwrap();
    let pid: i32 = said
        .split("(pid ")
        .nth(1)
        .and_then(|s| s.split(')').next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(Command::new("umount").arg(&dir).status().unwrap().success());
    // The process closes the volume after the kernel lets go; wait for it to exit.
    let start = Instant::now();
    while kill(Pid::from_raw(pid), None).is_ok() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "mount process did not exit"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fsck_clean(&img);
    assert_eq!(cat(&img, "g.txt"), b"detached");
}

/// A crash while an unlinked file is still open leaves an orphan: the image checks clean as
/// it is, and the next mount frees the orphan.
#[test]
fn a_crash_with_an_unlinked_open_file_is_cleaned_at_the_next_mount() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    let mnt = work.path().join("mnt");
    let m = Mount::start(&img, &mnt, &[]);
    let path = m.dir.join("orphan.dat");
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&[1u8; 100_000]).unwrap();
    f.sync_all().unwrap();
    std::fs::remove_file(&path).unwrap();
    f.sync_all().unwrap();
    kill(m.pid(), Signal::SIGKILL).unwrap();
    drop(f);
    assert!(Command::new("umount")
        .arg("-l")
        .arg(&m.dir)
        .status()
        .unwrap()
        .success());
    drop(m);
    fsck_clean(&img);
    let m = Mount::start(&img, &mnt, &[]);
    assert_eq!(std::fs::read_dir(&m.dir).unwrap().count(), 0);
    m.stop();
    fsck_clean(&img);
}

/// The stress run's size: operations per worker, workers and seed, from the environment for a
/// longer run (`COWFAT_STRESS_OPS=50000 cargo test -p format-tool --test fuse stress`).
fn stress_setting(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_string())
}

/// Runs `cowfat-stress` on a fresh mount with online overlay operations from another process,
/// then unmounts: fsck must be clean, and after a new mount every surviving file must match
/// the program's model (through its manifest).
fn stress_on_a_mount(extra: &[&str], default_seed: &str) {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = work.path().join("disk.vhd");
    ok(cowfat().arg("create").arg(&img).args(["--size", "1G"]));
    let mnt = work.path().join("mnt");
    let manifest = work.path().join("manifest");
    let m = Mount::start(&img, &mnt, extra);
    let seed = stress_setting("COWFAT_STRESS_SEED", default_seed);
    let started = Instant::now();
    let out = run(Command::new(mapped_bin("cowfat-stress"))
        .arg(&m.dir)
        .args(["--workers", &stress_setting("COWFAT_STRESS_WORKERS", "4")])
        .args(["--ops", &stress_setting("COWFAT_STRESS_OPS", "4000")])
        .args(["--seed", &seed, "--overlay-every-ms", "700"])
        .arg("--cowfat")
        .arg(env!("CARGO_BIN_EXE_cowfat"))
        .arg("--manifest")
        .arg(&manifest));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    // The seed, the operation counts and the summary, in the log of every run.
    for line in stdout.lines().filter(|l| {
        l.starts_with("cowfat-stress:") || l.starts_with("operations:") || l.contains(" passed, ")
    }) {
        eprintln!("{line}");
    }
    eprintln!("stress took {:.1} s", started.elapsed().as_secs_f64());
    assert!(
        out.status.success(),
        "cowfat-stress failed (seed {seed}):\n{stdout}"
    );
    for done in [
        "overlay:volume-seal 1",
        "overlay:volume-commit",
        "unlink-open",
        "mapped-write",
    ] {
        assert!(stdout.contains(done), "the run did no {done}:\n{stdout}");
    }
    m.stop();
    fsck_clean(&img);
    let m = Mount::start(&img, &mnt, extra);
    program(
        Command::new(mapped_bin("cowfat-stress"))
            .arg(&m.dir)
            .arg("--verify")
            .arg(&manifest),
        " passed, 0 failed",
    );
    m.stop();
    fsck_clean(&img);
}

#[test]
fn stress_with_online_overlay_operations_on_a_default_mount() {
    stress_on_a_mount(&[], "20");
}

#[test]
fn stress_with_online_overlay_operations_with_writeback_cache() {
    stress_on_a_mount(&["--writeback-cache"], "21");
}

/// The cause in `cowfat: cannot VERB TARGET: CAUSE.`, without the target (image or mount).
fn refusal_cause(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(1),
        "the overlay command did not refuse"
    );
    let said = String::from_utf8_lossy(&out.stderr).trim().to_string();
    let after_program = said.strip_prefix("cowfat: ").unwrap_or(&said);
    let (_, cause) = after_program.split_once(": ").unwrap_or_default();
    cause.to_string()
}

#[test]
fn mounted_overlay_commands_refuse_as_on_the_image() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "f.txt", b"base");
    let not_sealed = "the volume is not sealed, so there is no overlay.";
    let already = "the volume is already sealed.";
    let no_base = "the file was created after the seal, so it has no base version to return to.";
    let on_image =
        |args: &[&str]| refusal_cause(&cowfat().arg("overlay").args(args).output().unwrap());

    // Not sealed: a volume commit, a file's commit and discard.
    let img_s = img.to_str().unwrap();
    assert_eq!(on_image(&["commit", img_s]), not_sealed);
    assert_eq!(on_image(&["commit", img_s, "f.txt"]), not_sealed);
    assert_eq!(on_image(&["discard", img_s, "f.txt"]), not_sealed);
    let m = Mount::start(&img, &work.path().join("mnt"), &[]);
    assert_eq!(
        refusal_cause(&overlay(&["commit"], &m.dir, None)),
        not_sealed
    );
    assert_eq!(
        refusal_cause(&overlay(&["commit"], &m.dir, Some("f.txt"))),
        not_sealed
    );
    assert_eq!(
        refusal_cause(&overlay(&["discard"], &m.dir, Some("f.txt"))),
        not_sealed
    );

    // Sealed, then committed (the volume stays sealed): seal again is "already sealed".
    assert!(overlay(&["seal"], &m.dir, None).status.success());
    assert_eq!(refusal_cause(&overlay(&["seal"], &m.dir, None)), already);
    std::fs::write(m.dir.join("new.txt"), b"new").unwrap();
    assert!(overlay(&["commit"], &m.dir, None).status.success());
    assert_eq!(refusal_cause(&overlay(&["seal"], &m.dir, None)), already);

    // A directory's overlay changes only with the whole volume.
    std::fs::create_dir(m.dir.join("dir")).unwrap();
    let dir_refusal = "unsupported: a directory's overlay changes only with the whole volume.";
    assert!(overlay(&["commit"], &m.dir, None).status.success());
    assert_eq!(
        refusal_cause(&overlay(&["commit"], &m.dir, Some("dir"))),
        dir_refusal
    );
    assert_eq!(
        refusal_cause(&overlay(&["discard"], &m.dir, Some("dir"))),
        dir_refusal
    );

    // A file made after the last commit has no base version.
    std::fs::write(m.dir.join("newer.txt"), b"newer").unwrap();
    assert_eq!(
        refusal_cause(&overlay(&["commit"], &m.dir, Some("newer.txt"))),
        no_base
    );
    assert_eq!(
        refusal_cause(&overlay(&["discard"], &m.dir, Some("newer.txt"))),
        no_base
    );
    m.stop();
    fsck_clean(&img);
    assert_eq!(on_image(&["seal", img_s]), already);
    assert_eq!(on_image(&["commit", img_s, "dir"]), dir_refusal);
    assert_eq!(on_image(&["discard", img_s, "dir"]), dir_refusal);
    assert_eq!(on_image(&["commit", img_s, "newer.txt"]), no_base);
    assert_eq!(on_image(&["discard", img_s, "newer.txt"]), no_base);
}

#[test]
fn overlay_commit_through_a_writeback_cache_mount_takes_data_still_cached() {
    require_fuse();
    let _g = serial();
    let work = tempfile::tempdir().unwrap();
    let img = create_image(work.path());
    put(&img, "f.txt", b"base");
    ok(cowfat().args(["overlay", "seal"]).arg(&img));
    let m = Mount::start(&img, &work.path().join("mnt"), &["--writeback-cache"]);
    // Written and still open: the bytes sit dirty in the kernel's page cache.
    let held = std::fs::OpenOptions::new()
        .write(true)
        .open(m.dir.join("f.txt"))
        .unwrap();
    std::os::unix::fs::FileExt::write_all_at(&held, b"committed", 0).unwrap();
    assert!(overlay(&["commit"], &m.dir, None).status.success());
    std::os::unix::fs::FileExt::write_all_at(&held, b"LATER", 0).unwrap();
    drop(held);
    m.stop();
    fsck_clean(&img);
    // The volume discard drops what came after the commit, and only that.
    ok(cowfat().args(["overlay", "discard"]).arg(&img));
    assert_eq!(cat(&img, "f.txt"), b"committed");
}
