//! The `cowfat` binary, run as a user runs it: round trips, overlay semantics, and bad input
//! with its exact exit code and message (and nothing lost in the image afterwards).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const BIN: &str = env!("CARGO_BIN_EXE_cowfat");

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

fn cowfat<I, S>(args: I) -> Run
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new(BIN).args(args).output().expect("cowfat runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Runs and insists on exit 0.
fn ok<I, S>(args: I) -> Vec<u8>
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let r = cowfat(args);
    assert_eq!(r.code, 0, "cowfat failed: {}", r.stderr);
    r.stdout
}

/// A scratch directory with one image in it.
struct Scratch {
    dir: tempfile::TempDir,
    image: PathBuf,
}

impl Scratch {
    fn new(name: &str, extra: &[&str]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join(name);
        let mut args: Vec<&std::ffi::OsStr> = vec![
            "create".as_ref(),
            image.as_os_str(),
            "--size".as_ref(),
            "64M".as_ref(),
        ];
        args.extend(extra.iter().map(std::ffi::OsStr::new));
        ok(args);
        Self { dir, image }
    }
    fn img(&self) -> &str {
        self.image.to_str().unwrap()
    }
    fn host(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        p
    }
    fn put(&self, bytes: &[u8], path: &str) {
        let host = self.host("put.tmp", bytes);
        ok(["put", self.img(), host.to_str().unwrap(), path]);
    }
    fn cat(&self, path: &str) -> Vec<u8> {
        ok(["cat", self.img(), path])
    }
}

/// Deterministic, non-repeating test data.
fn data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x.to_le_bytes()[0]
        })
        .collect()
}

#[test]
fn put_ls_cat_get_round_trip_is_byte_exact_on_every_image_kind() {
    let kinds: [&[&str]; 4] = [
        &[],
        &["--format", "vhd-dynamic", "--partition", "mbr"],
        &["--format", "raw", "--partition", "none"],
        &[
            "--format",
            "raw",
            "--partition",
            "gpt",
            "--cluster-size",
            "16K",
        ],
    ];
    for (i, extra) in kinds.into_iter().enumerate() {
        let s = Scratch::new(&format!("k{i}.img"), extra);
        let content = data(3 << 20 | 123, 7);
        ok(["mkdir", s.img(), "/docs"]);
        s.put(&content, "/docs/big.bin");
        let listing = String::from_utf8(ok(["ls", s.img(), "/docs"])).unwrap();
        assert_eq!(listing.trim(), "big.bin", "{extra:?}");
        assert!(s.cat("/docs/big.bin") == content, "{extra:?}: cat differs");
        let out = s.dir.path().join("back.bin");
        ok(["get", s.img(), "\\docs\\big.bin", out.to_str().unwrap()]);
        assert!(
            std::fs::read(&out).unwrap() == content,
            "{extra:?}: get differs"
        );
    }
}

fn write_tree(root: &Path) {
    std::fs::create_dir_all(root.join("a/b/c")).unwrap();
    std::fs::create_dir_all(root.join("empty")).unwrap();
    std::fs::write(root.join("top.txt"), b"top level\n").unwrap();
    std::fs::write(root.join("a/one.bin"), data(70_000, 1)).unwrap();
    std::fs::write(root.join("a/b/two.bin"), data(2 << 20, 2)).unwrap();
    std::fs::write(root.join("a/b/c/zero.bin"), b"").unwrap();
}

fn assert_same_tree(a: &Path, b: &Path) {
    let mut names: Vec<_> = std::fs::read_dir(a)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    let mut other: Vec<_> = std::fs::read_dir(b)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    other.sort();
    assert_eq!(names, other, "{} vs {}", a.display(), b.display());
    for n in names {
        let (x, y) = (a.join(&n), b.join(&n));
        if x.is_dir() {
            assert_same_tree(&x, &y);
        } else {
            assert!(
                std::fs::read(&x).unwrap() == std::fs::read(&y).unwrap(),
                "{} differs",
                x.display()
            );
        }
    }
}

#[test]
fn import_then_export_round_trips_a_tree() {
    let s = Scratch::new("tree.vhd", &[]);
    let src = s.dir.path().join("src");
    write_tree(&src);
    ok(["import", s.img(), src.to_str().unwrap(), "/in"]);
    assert_eq!(s.cat("/in/top.txt"), b"top level\n");
    let dst = s.dir.path().join("dst");
    ok(["export", s.img(), "/in", dst.to_str().unwrap()]);
    assert_same_tree(&src, &dst);
}

#[test]
fn ls_long_and_json_describe_files() {
    let s = Scratch::new("ls.vhd", &["--label", "DATA"]);
    s.put(b"hello", "/h.txt");
    ok(["mkdir", s.img(), "/d"]);
    let long = String::from_utf8(ok(["ls", s.img(), "-l"])).unwrap();
    assert!(
        long.lines()
            .any(|l| l.contains(" 5 ") && l.ends_with("h.txt")),
        "{long}"
    );
    assert!(
        long.lines()
            .any(|l| l.starts_with('d') && l.ends_with("d/")),
        "{long}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&ok(["ls", s.img(), "/", "--json"])).unwrap();
    let h = json
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "h.txt")
        .unwrap();
    assert_eq!(
        (h["kind"].as_str(), h["size"].as_u64()),
        (Some("file"), Some(5))
    );
    let info: serde_json::Value = serde_json::from_slice(&ok(["info", s.img(), "--json"])).unwrap();
    assert_eq!(info["format"], "vhd");
    assert_eq!(info["partition_table"], "gpt");
    assert_eq!(info["partition"]["start"], 1 << 20);
    assert_eq!(info["volume"]["label"], "DATA");
    assert_eq!(info["volume"]["cluster_size"], 4096);
}

#[test]
fn mv_and_rm_change_the_tree() {
    let s = Scratch::new("mv.vhd", &[]);
    ok(["mkdir", s.img(), "-p", "/x/y"]);
    s.put(b"1", "/x/y/f");
    ok(["mv", s.img(), "/x/y/f", "/x/g"]);
    assert_eq!(s.cat("/x/g"), b"1");
    let r = cowfat(["rm", s.img(), "/x"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("not empty"), "{}", r.stderr);
    ok(["rm", s.img(), "-r", "/x"]);
    assert_eq!(ok(["ls", s.img()]), b"");
}

#[test]
fn discard_after_seal_brings_back_the_original() {
    let s = Scratch::new("seal.vhd", &[]);
    s.put(b"original", "/f.txt");
    ok(["overlay", "seal", s.img()]);
    s.put(b"changed!", "/f.txt");
    assert_eq!(s.cat("/f.txt"), b"changed!");
    let st: serde_json::Value =
        serde_json::from_slice(&ok(["overlay", "status", s.img(), "/f.txt", "--json"])).unwrap();
    assert_eq!(st["modified"], true, "{st}");
    ok(["overlay", "discard", s.img()]);
    assert_eq!(s.cat("/f.txt"), b"original");
}

#[test]
fn commit_then_discard_changes_nothing() {
    let s = Scratch::new("commit.vhd", &[]);
    s.put(b"v1", "/f.txt");
    ok(["overlay", "seal", s.img()]);
    s.put(b"version two", "/f.txt");
    s.put(b"new file", "/n.txt");
    ok(["overlay", "commit", s.img()]);
    ok(["overlay", "discard", s.img()]);
    assert_eq!(s.cat("/f.txt"), b"version two");
    assert_eq!(s.cat("/n.txt"), b"new file");
}

#[test]
fn per_file_discard_leaves_other_files_changes_in_place() {
    let s = Scratch::new("perfile.vhd", &[]);
    s.put(b"a-base", "/a.txt");
    s.put(b"b-base", "/b.txt");
    ok(["overlay", "seal", s.img()]);
    s.put(b"a-changed", "/a.txt");
    s.put(b"b-changed", "/b.txt");
    ok(["overlay", "discard", s.img(), "/a.txt"]);
    assert_eq!(s.cat("/a.txt"), b"a-base");
    assert_eq!(s.cat("/b.txt"), b"b-changed");
}

#[test]
fn fsck_of_a_fresh_volume_is_clean() {
    let s = Scratch::new("fsck.vhd", &[]);
    s.put(&data(100_000, 3), "/f");
    let r = cowfat(["fsck", s.img(), "--json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_slice(&r.stdout).unwrap();
    assert_eq!(report["problems"].as_array().map(Vec::len), Some(0));
}

// ---- bad input: message, exit code, and nothing already in the image lost ----

/// An image with one known file, to check after each failure.
fn with_keeper(name: &str, extra: &[&str]) -> (Scratch, Vec<u8>) {
    let s = Scratch::new(name, extra);
    let keep = data(50_000, 9);
    s.put(&keep, "/keep.bin");
    (s, keep)
}

#[test]
fn missing_path_names_image_path_and_cause() {
    let (s, keep) = with_keeper("missing.vhd", &[]);
    let r = cowfat(["cat", s.img(), "/no/such.txt"]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "cowfat: cannot read /no/such.txt in {}: no such file or directory.",
            s.img()
        )
    );
    assert_eq!(s.cat("/keep.bin"), keep);
}

#[test]
fn full_volume_is_refused_and_loses_nothing() {
    let (s, keep) = with_keeper("full.vhd", &[]);
    let huge = s.host("huge.bin", &data(80 << 20, 4));
    let r = cowfat(["put", s.img(), huge.to_str().unwrap(), "/huge.bin"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.contains(&format!(
            "cannot write /huge.bin in {}: the volume is full",
            s.img()
        )),
        "{}",
        r.stderr
    );
    assert_eq!(s.cat("/keep.bin"), keep);
    let ls = String::from_utf8(ok(["ls", s.img()])).unwrap();
    assert_eq!(ls.trim(), "keep.bin", "no partial file is left");
}

#[test]
fn truncated_vhd_is_reported() {
    let (s, _) = with_keeper("trunc.vhd", &["--format", "vhd-dynamic"]);
    let len = std::fs::metadata(&s.image).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&s.image)
        .unwrap()
        .set_len(len - 1024)
        .unwrap();
    let r = cowfat(["ls", s.img()]);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.starts_with(&format!(
            "cowfat: cannot open {}: the VHD is truncated",
            s.img()
        )),
        "{}",
        r.stderr
    );
}

#[test]
fn wrong_footer_checksum_is_reported_and_the_file_is_untouched() {
    let (s, _) = with_keeper("sum.vhd", &[]);
    let mut bytes = std::fs::read(&s.image).unwrap();
    let n = bytes.len();
    bytes[n - 512 + 64] ^= 0xFF; // the checksum field itself
    std::fs::write(&s.image, &bytes).unwrap();
    for cmd in ["ls", "info"] {
        let r = cowfat([cmd, s.img()]);
        assert_eq!(r.code, 1);
        assert!(r.stderr.contains("VHD footer checksum"), "{}", r.stderr);
        assert!(r.stderr.contains(s.img()), "{}", r.stderr);
    }
    let r = cowfat(["put", s.img(), s.host("x", b"x").to_str().unwrap(), "/x"]);
    assert_eq!(r.code, 1);
    assert!(
        std::fs::read(&s.image).unwrap() == bytes,
        "a failed open wrote to the image"
    );
}

#[test]
fn non_cowfat_partition_is_reported() {
    let (s, _) = with_keeper("other.img", &["--format", "raw", "--partition", "mbr"]);
    let mut bytes = std::fs::read(&s.image).unwrap();
    bytes[446 + 4] = 0x83;
    bytes[(1 << 20) + 3..(1 << 20) + 11].copy_from_slice(b"EXT4SIGN");
    std::fs::write(&s.image, &bytes).unwrap();
    let r = cowfat(["ls", s.img()]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("cowfat: cannot open {}: it has a MBR partition table but no cowfat partition (found: 1 of type 0x83).", s.img())
    );
}

#[test]
fn corrupt_directory_is_reported_with_fsck_advice() {
    let (s, _) = with_keeper("corrupt.img", &["--format", "raw"]);
    s.put(b"x", "/MARKERNAMEXYZ.txt");
    let mut bytes = std::fs::read(&s.image).unwrap();
    // The entry's primary slot holds the name's first 7 UTF-16 units; flipping one breaks the
    // entry set's CRC-32C (every copy, in case the journal holds one too).
    let marker: Vec<u8> = "MARKERN"
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    let hits: Vec<usize> = (0..bytes.len() - marker.len())
        .filter(|&i| bytes[i..].starts_with(&marker))
        .collect();
    assert!(!hits.is_empty(), "the directory entry is on disk");
    for at in hits {
        bytes[at] ^= 0x01;
    }
    std::fs::write(&s.image, &bytes).unwrap();
    let r = cowfat(["ls", s.img(), "/"]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(r.stderr.contains("the volume is corrupt"), "{}", r.stderr);
    assert!(r.stderr.contains("cowfat fsck"), "{}", r.stderr);
    let f = cowfat(["fsck", s.img()]);
    assert!(
        f.code == 4 || f.code == 1,
        "fsck exit {}: {}",
        f.code,
        f.stderr
    );
}

#[test]
fn fsck_of_something_that_is_no_image_is_an_operational_error() {
    let dir = tempfile::tempdir().unwrap();
    let r = cowfat(["fsck", dir.path().join("absent.vhd").to_str().unwrap()]);
    assert_eq!(r.code, 8, "{}", r.stderr);
    assert!(r.stderr.contains("cannot check"), "{}", r.stderr);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(cowfat(["frobnicate"]).code, 2);
    assert_eq!(cowfat(["create", "x.vhd"]).code, 2, "missing --size");
    assert_eq!(cowfat(["create", "x.vhd", "--size", "12Q"]).code, 2);
    let s = Scratch::new("u.vhd", &[]);
    let r = cowfat(["overlay", "seal", s.img(), "/f"]);
    assert_eq!(r.code, 2);
    assert!(r.stderr.contains("takes no path"), "{}", r.stderr);
}

#[test]
fn create_refuses_to_overwrite() {
    let s = Scratch::new("exists.vhd", &[]);
    let r = cowfat(["create", s.img(), "--size", "64M"]);
    assert_eq!(r.code, 1);
    assert!(r.stderr.contains("already exists"), "{}", r.stderr);
}

// ---- outside programs on images the command made ----

#[test]
fn qemu_img_convert_of_a_cowfat_vhd_holds_the_same_files() {
    let (s, keep) = with_keeper("conv.vhd", &["--format", "vhd-dynamic"]);
    let raw = s.dir.path().join("conv.raw");
    let st = Command::new("qemu-img")
        .args([
            "convert",
            "-f",
            "vpc",
            "-O",
            "raw",
            s.img(),
            raw.to_str().unwrap(),
        ])
        .status()
        .expect("qemu-img is installed (apt-get install qemu-utils)");
    assert!(st.success());
    assert_eq!(ok(["cat", raw.to_str().unwrap(), "/keep.bin"]), keep);
}

#[test]
fn sfdisk_finds_the_partition_create_made() {
    let s = Scratch::new("sf.img", &["--format", "raw", "--partition", "mbr"]);
    let out = Command::new("sfdisk")
        .args(["--json", s.img()])
        .output()
        .expect("sfdisk is installed (apt-get install fdisk)");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["partitiontable"]["partitions"][0]["start"], 2048);
    assert_eq!(json["partitiontable"]["partitions"][0]["type"], "7");
}

// ---- failed commands leave nothing behind ----

/// Runs cowfat with the host refusing to let any file grow past `limit_kib` KiB (RLIMIT_FSIZE,
/// with SIGXFSZ ignored so the write fails with EFBIG instead of killing the process): a real
/// mid-command write failure.
fn cowfat_limited(limit_kib: u64, args: &[&str]) -> Run {
    let mut script = format!("trap '' XFSZ; ulimit -f {}; exec \"$0\"", limit_kib * 2);
    for i in 1..=args.len() {
        script.push_str(&format!(" \"${{{i}}}\""));
    }
    let Output {
        status,
        stdout,
        stderr,
    } = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(BIN)
        .args(args)
        .output()
        .expect("sh runs");
    Run {
        code: status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&stderr).into_owned(),
    }
}

/// Names in a directory, sorted.
fn names_in(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_create_refused_for_its_size_leaves_nothing_and_says_the_size_as_typed() {
    let dir = tempfile::tempdir().unwrap();
    let w = dir.path().join("w.vhd");
    let w = w.to_str().unwrap();
    let r = cowfat(["create", w, "--size", "1K"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!("cowfat: cannot create {w}: the disk (1 KiB) is too small for a 1 MiB-aligned partition.")
    );
    let z = dir.path().join("z.vhd");
    let z = z.to_str().unwrap();
    let r = cowfat(["create", z, "--size", "99999T"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "cowfat: cannot create {z}: a VHD is limited to 2040 GiB; 99999 TiB was asked for (--format vhdx allows up to 64 TiB)."
        )
    );
    let x = dir.path().join("x.vhdx");
    let x = x.to_str().unwrap();
    let r = cowfat(["create", x, "--size", "65T"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!("cowfat: cannot create {x}: a VHDX is limited to 64 TiB; 65 TiB was asked for.")
    );
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
    // The next try is not told "it already exists".
    ok(["create", w, "--size", "4M"]);
    assert_eq!(names_in(dir.path()), ["w.vhd"]);
}

#[test]
fn the_format_follows_the_name_and_a_mismatch_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let vhdx = dir.path().join("d.vhdx");
    let vhdx = vhdx.to_str().unwrap();
    let out = String::from_utf8(ok(["create", vhdx, "--size", "8M"])).unwrap();
    assert!(
        out.starts_with(&format!("created {vhdx}: vhdx disk of 8 MiB")),
        "{out}"
    );
    let info: serde_json::Value = serde_json::from_slice(&ok(["info", vhdx, "--json"])).unwrap();
    assert_eq!(info["format"], "vhdx");
    for (name, format, ext) in [
        ("e.vhdx", "vhd", "vhdx"),
        ("e.vhd", "vhdx-dynamic", "vhd"),
        ("e.vhd", "raw", "vhd"),
    ] {
        let path = dir.path().join(name);
        let p = path.to_str().unwrap();
        let r = cowfat(["create", p, "--size", "8M", "--format", format]);
        assert_eq!(r.code, 2, "{}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            format!("cowfat: cannot create {p}: --format {format} does not match the name's .{ext} extension (Windows opens the image by its extension).")
        );
    }
    assert_eq!(names_in(dir.path()), ["d.vhdx"]);
}

#[test]
fn a_create_that_fails_while_writing_leaves_nothing_and_keeps_the_old_image() {
    let dir = tempfile::tempdir().unwrap();
    let img = dir.path().join("d.vhd");
    let img = img.to_str().unwrap();
    let r = cowfat_limited(
        1024,
        &["create", img, "--size", "64M", "--format", "vhd-dynamic"],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("cowfat: cannot create {img}: I/O error at byte")),
        "{}",
        r.stderr
    );
    assert!(r.stderr.contains("File too large"), "{}", r.stderr);
    assert!(
        names_in(dir.path()).is_empty(),
        "{:?}",
        names_in(dir.path())
    );
    // --force over an existing image: the old one stays whole until the new one is complete.
    ok(["create", img, "--size", "4M"]);
    let before = std::fs::read(img).unwrap();
    let r = cowfat_limited(
        1024,
        &[
            "create",
            img,
            "--size",
            "64M",
            "--format",
            "vhd-dynamic",
            "--force",
        ],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(names_in(dir.path()), ["d.vhd"]);
    assert!(
        std::fs::read(img).unwrap() == before,
        "the old image changed"
    );
}

#[test]
fn a_failed_get_leaves_no_partial_copy_and_keeps_an_existing_file() {
    let (s, _) = with_keeper("g.vhd", &[]);
    let big = data(3 << 20, 5);
    s.put(&big, "/big.bin");
    let out_dir = tempfile::tempdir().unwrap();
    let out = out_dir.path().join("big.bin");
    let out = out.to_str().unwrap();
    let r = cowfat_limited(1024, &["get", s.img(), "/big.bin", out]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "cowfat: cannot read /big.bin in {}: writing the output failed: File too large (os error 27).",
            s.img()
        )
    );
    assert!(
        names_in(out_dir.path()).is_empty(),
        "{:?}",
        names_in(out_dir.path())
    );
    std::fs::write(out, b"older copy").unwrap();
    assert_eq!(
        cowfat_limited(1024, &["get", s.img(), "/big.bin", out]).code,
        1
    );
    assert_eq!(std::fs::read(out).unwrap(), b"older copy");
    assert_eq!(names_in(out_dir.path()), ["big.bin"]);
    ok(["get", s.img(), "/big.bin", out]);
    assert!(std::fs::read(out).unwrap() == big);
}

#[test]
fn a_failed_export_removes_what_it_made_and_only_that() {
    let s = Scratch::new("e.vhd", &[]);
    ok(["mkdir", s.img(), "/tree"]);
    s.put(b"small and first", "/tree/a.txt");
    ok(["mkdir", s.img(), "/tree/sub"]);
    s.put(&data(2 << 20, 3), "/tree/sub/big.bin");
    let host = tempfile::tempdir().unwrap();
    let fresh = host.path().join("new/out");
    let r = cowfat_limited(1024, &["export", s.img(), "/tree", fresh.to_str().unwrap()]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert!(
        r.stderr.starts_with(&format!(
            "cowfat: cannot export /tree/sub/big.bin in {}: writing the output failed: File too large",
            s.img()
        )),
        "{}",
        r.stderr
    );
    assert!(
        names_in(host.path()).is_empty(),
        "{:?}",
        names_in(host.path())
    );
    // Into an existing directory: what was there stays, what the export made goes.
    let existing = host.path().join("keep");
    std::fs::create_dir(&existing).unwrap();
    std::fs::write(existing.join("mine.txt"), b"mine").unwrap();
    let r = cowfat_limited(
        1024,
        &["export", s.img(), "/tree", existing.to_str().unwrap()],
    );
    assert_eq!(r.code, 1, "{}", r.stderr);
    assert_eq!(names_in(&existing), ["mine.txt"]);
    assert_eq!(std::fs::read(existing.join("mine.txt")).unwrap(), b"mine");
    ok(["export", s.img(), "/tree", existing.to_str().unwrap()]);
    assert_eq!(names_in(&existing), ["a.txt", "mine.txt", "sub"]);
}

// ---- names Win32 programs cannot open ----

fn device_message(image: &str, path: &str, name: &str, device: &str) -> String {
    format!(
        "cowfat: cannot write {path} in {image}: the name \"{name}\" is refused: {device} is a reserved device name on Windows (with any extension): Win32 programs would open the device, not the file (pass --allow-nt-names to create it anyway)."
    )
}

#[test]
fn every_reserved_device_name_is_refused_with_its_reason_and_exit_2() {
    let s = Scratch::new("names.vhd", &[]);
    let host = s.host("x.txt", b"x");
    let host = host.to_str().unwrap();
    let mut names: Vec<(String, String)> = ["CON", "PRN", "AUX", "NUL"]
        .iter()
        .map(|d| (d.to_string(), d.to_string()))
        .collect();
    for prefix in ["COM", "LPT"] {
        for digit in [
            "1", "2", "3", "4", "5", "6", "7", "8", "9", "\u{b9}", "\u{b2}", "\u{b3}",
        ] {
            names.push((format!("{prefix}{digit}"), format!("{prefix}{digit}")));
        }
    }
    // Any case, any extension, spaces before the extension.
    for (name, device) in [
        ("con", "CON"),
        ("Nul.txt", "NUL"),
        ("aux.tar.gz", "AUX"),
        ("com7.log", "COM7"),
        ("lPt\u{b2}.dat", "LPT\u{b2}"),
        ("prn .txt", "PRN"),
    ] {
        names.push((name.into(), device.into()));
    }
    for (name, device) in &names {
        let path = format!("/{name}");
        let r = cowfat(["put", s.img(), host, &path]);
        assert_eq!(r.code, 2, "{name}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            device_message(s.img(), &path, name, device),
            "{name}"
        );
    }
    let ls = String::from_utf8(ok(["ls", s.img()])).unwrap();
    assert_eq!(ls.trim(), "", "nothing was created");
}

#[test]
fn names_ending_in_a_dot_or_a_space_are_refused() {
    let s = Scratch::new("trail.vhd", &[]);
    let host = s.host("x.txt", b"x");
    let host = host.to_str().unwrap();
    for (name, end) in [
        ("trail.", "a dot"),
        ("trailing ", "a space"),
        ("a..", "a dot"),
    ] {
        let path = format!("/{name}");
        let r = cowfat(["put", s.img(), host, &path]);
        assert_eq!(r.code, 2, "{name:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim_end_matches('\n'),
            format!(
                "cowfat: cannot write {path} in {}: the name \"{name}\" is refused: it ends in {end}, which Win32 strips from names, so Win32 programs cannot open the file (pass --allow-nt-names to create it anyway).",
                s.img()
            )
        );
    }
    // Names that only look close are ordinary.
    for name in ["console", "com10", "lpt0", ".con", "a.b"] {
        ok(["put", s.img(), host, &format!("/{name}")]);
    }
    let mut ls: Vec<String> = String::from_utf8(ok(["ls", s.img()]))
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    ls.sort();
    assert_eq!(ls, [".con", "a.b", "com10", "console", "lpt0"]);
}

#[test]
fn mkdir_mv_and_import_refuse_them_too_and_allow_nt_names_lets_them_through() {
    let s = Scratch::new("nt.vhd", &[]);
    s.put(b"data", "/f.txt");
    let r = cowfat(["mkdir", s.img(), "/NUL"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("NUL is a reserved device name"),
        "{}",
        r.stderr
    );
    let r = cowfat(["mkdir", "-p", s.img(), "/ok/dir."]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("it ends in a dot"), "{}", r.stderr);
    let r = cowfat(["mv", s.img(), "/f.txt", "/lpt1.txt"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("LPT1 is a reserved device name"),
        "{}",
        r.stderr
    );
    let tree = s.dir.path().join("tree");
    std::fs::create_dir(&tree).unwrap();
    std::fs::write(tree.join("aux.c"), b"int main;").unwrap();
    let r = cowfat(["import", s.img(), tree.to_str().unwrap(), "/in"]);
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(
        r.stderr.contains("AUX is a reserved device name"),
        "{}",
        r.stderr
    );
    assert_eq!(s.cat("/f.txt"), b"data", "the refused mv left the file");
    // With the option, NT-only names are made and read back.
    ok(["mkdir", s.img(), "/NUL", "--allow-nt-names"]);
    ok(["mv", s.img(), "/f.txt", "/NUL/con.txt", "--allow-nt-names"]);
    let host = s.host("t", b"trailing");
    ok([
        "put",
        "--allow-nt-names",
        s.img(),
        host.to_str().unwrap(),
        "/trail. ",
    ]);
    ok([
        "import",
        s.img(),
        tree.to_str().unwrap(),
        "/in",
        "--allow-nt-names",
    ]);
    assert_eq!(s.cat("/NUL/con.txt"), b"data");
    assert_eq!(s.cat("/trail. "), b"trailing");
    assert_eq!(s.cat("/in/aux.c"), b"int main;");
}

// ---- VHDX ----

/// `qemu-img check` finds nothing wrong with the image.
fn qemu_check_clean(image: &str, step: &str) {
    let out = Command::new("qemu-img")
        .args(["check", "-f", "vhdx", image])
        .output()
        .expect("qemu-img is installed (apt-get install qemu-utils)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && text.contains("No errors were found"),
        "after {step}: {text}"
    );
}

#[test]
fn vhdx_round_trip_with_overlay_stays_clean_for_qemu_after_every_step() {
    for format in ["vhdx", "vhdx-dynamic"] {
        let s = Scratch::new(&format!("{format}.vhdx"), &["--format", format]);
        let img = s.img();
        qemu_check_clean(img, "create");
        let info: serde_json::Value = serde_json::from_slice(&ok(["info", img, "--json"])).unwrap();
        assert_eq!(info["format"], format);
        assert_eq!(info["disk_size"], 64 << 20);
        let qemu = Command::new("qemu-img")
            .args(["info", "--output=json", img])
            .output()
            .unwrap();
        let qemu: serde_json::Value = serde_json::from_slice(&qemu.stdout).unwrap();
        assert_eq!(qemu["format"], "vhdx");
        assert_eq!(qemu["virtual-size"], 64 << 20);

        let base = data(5 << 20, 11);
        s.put(&base, "/base.bin");
        qemu_check_clean(img, "put");
        ok(["overlay", "seal", img]);
        qemu_check_clean(img, "seal");
        let changed = data(3 << 20, 12);
        s.put(&changed, "/base.bin");
        s.put(b"made after the seal", "/new.txt");
        qemu_check_clean(img, "change");
        assert!(s.cat("/base.bin") == changed);
        ok(["overlay", "discard", img]);
        qemu_check_clean(img, "discard");
        assert!(
            s.cat("/base.bin") == base,
            "{format}: discard brings back the base"
        );
        assert_eq!(cowfat(["cat", img, "/new.txt"]).code, 1);
        let fsck = cowfat(["fsck", img]);
        assert_eq!(fsck.code, 0, "{format}: {}", fsck.stderr);
        qemu_check_clean(img, "fsck");
        // What qemu reads is what the tool wrote.
        let raw = s.dir.path().join("conv.raw");
        let st = Command::new("qemu-img")
            .args([
                "convert",
                "-f",
                "vhdx",
                "-O",
                "raw",
                img,
                raw.to_str().unwrap(),
            ])
            .status()
            .unwrap();
        assert!(st.success());
        assert!(ok(["cat", raw.to_str().unwrap(), "/base.bin"]) == base);
    }
}

#[test]
fn vhdx_images_qemu_img_creates_are_formatted_and_used() {
    for extra in [&[][..], &["-o", "subformat=fixed"][..]] {
        let dir = tempfile::tempdir().unwrap();
        let image = dir.path().join("q.vhdx");
        let img = image.to_str().unwrap();
        let st = Command::new("qemu-img")
            .args(["create", "-q", "-f", "vhdx"])
            .args(extra)
            .args([img, "64M"])
            .status()
            .expect("qemu-img is installed");
        assert!(st.success());
        let out = String::from_utf8(ok(["format", img, "--label", "QEMU"])).unwrap();
        assert!(out.starts_with(&format!("formatted {img}: vhdx")), "{out}");
        let content = data(2 << 20, 13);
        let host = dir.path().join("in.bin");
        std::fs::write(&host, &content).unwrap();
        ok(["put", img, host.to_str().unwrap(), "/in.bin"]);
        let back = dir.path().join("back.bin");
        ok(["get", img, "/in.bin", back.to_str().unwrap()]);
        assert!(std::fs::read(&back).unwrap() == content);
        qemu_check_clean(img, "put into a qemu-made image");
        // A second format would destroy the volume: refused without --force.
        let r = cowfat(["format", img]);
        assert_eq!(r.code, 1);
        assert_eq!(
            r.stderr.trim(),
            format!("cowfat: cannot format {img}: it already holds a GPT partition table (pass --force to replace it; everything on the disk is lost).")
        );
        assert!(ok(["cat", img, "/in.bin"]) == content);
    }
}

#[test]
fn a_damaged_vhdx_is_reported_and_left_alone() {
    let s = Scratch::new("bad.vhdx", &["--format", "vhdx-dynamic"]);
    let mut bytes = std::fs::read(&s.image).unwrap();
    // Both headers' checksums.
    bytes[64 * 1024 + 4] ^= 1;
    bytes[128 * 1024 + 4] ^= 1;
    std::fs::write(&s.image, &bytes).unwrap();
    let r = cowfat(["ls", s.img()]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!(
            "cowfat: cannot open {}: neither VHDX header is valid (signature, CRC-32C or version).",
            s.img()
        )
    );
    let r = cowfat(["put", s.img(), s.host("x", b"x").to_str().unwrap(), "/x"]);
    assert_eq!(r.code, 1);
    assert!(
        std::fs::read(&s.image).unwrap() == bytes,
        "a failed open wrote"
    );
    std::fs::write(&s.image, vec![0u8; 2 << 20]).unwrap();
    let r = cowfat(["ls", s.img()]);
    assert_eq!(r.code, 1);
    assert_eq!(
        r.stderr.trim(),
        format!("cowfat: cannot open {}: it is named like a VHDX but does not start with the \"vhdxfile\" signature; the file is damaged or not a VHDX.", s.img())
    );
}
