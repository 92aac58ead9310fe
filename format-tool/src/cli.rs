//! The command line: one subcommand per job, in the style of `git` and `btrfs`.
//!
//! Adding a subcommand (the FUSE `mount` is next): a variant here, a module under
//! `commands/`, one arm in `commands::run`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::image::partition::Scheme;
use crate::image::ImageFormat;
use crate::size::{parse_size, parse_size_arg, SizeArg};

#[derive(Debug, Parser)]
#[command(
    name = "cowfat",
    version,
    about = "Make, inspect and change cowfat disk images"
)]
pub struct Cli {
    /// Use partition N (1-based) instead of the first cowfat partition.
    #[arg(long, global = true, value_name = "N")]
    pub partition_index: Option<u32>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create an image and format a cowfat volume in it.
    Create(CreateArgs),
    /// Partition and format an existing disk image (e.g. one `qemu-img create` or Hyper-V made).
    Format(FormatArgs),
    /// Show the image, its partition and the volume.
    Info(InfoArgs),
    /// List a directory (or show one file).
    Ls(LsArgs),
    /// Write a file's contents to standard output.
    Cat(ImagePath),
    /// Copy a host file into the image.
    Put(PutArgs),
    /// Copy a file out of the image.
    Get(GetArgs),
    /// Make a directory.
    Mkdir(MkdirArgs),
    /// Remove a file or (with -r) a directory tree.
    Rm(RmArgs),
    /// Rename or move a file or directory.
    Mv(MvArgs),
    /// Copy a host directory tree into the image.
    Import(ImportArgs),
    /// Copy a directory tree out of the image.
    Export(ExportArgs),
    /// Copy-on-write overlay: seal, commit, discard, status (volume or one file).
    ///
    /// IMAGE may also be a mounted volume (`cowfat mount`): the mount point for the volume,
    /// or a path inside it. The command then asks the mount (an ioctl on the opened path).
    Overlay(OverlayArgs),
    /// Check the volume and optionally repair it.
    Fsck(FsckArgs),
    /// Serve the volume at DIR through FUSE (Linux) until unmounted or interrupted.
    ///
    /// cowfat stores no extended attributes: getxattr, listxattr, setxattr and removexattr on
    /// the mount fail with EOPNOTSUPP (ENODATA for an ACL), answered by the kernel after the
    /// mount's first refusal. `cowfat overlay ACTION DIR [PATH]` controls the mounted
    /// volume's overlay. As root, the mount raises its read-ahead
    /// (/sys/class/bdi/0:N/read_ahead_kb) from the kernel's 128 KiB to 1 MiB once it is live.
    Mount(MountArgs),
}

#[derive(Debug, Args)]
pub struct CreateArgs {
    pub image: PathBuf,
    /// Disk size: bytes or with a binary suffix (64M, 2G, 1T).
    #[arg(long, value_parser = parse_size_arg)]
    pub size: SizeArg,
    /// Image format; by default vhdx for a .vhdx name, else vhd.
    #[arg(long, value_enum)]
    pub format: Option<ImageFormat>,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Overwrite IMAGE if it exists.
    #[arg(long)]
    pub force: bool,
}

/// The partition table and volume layout, shared by `create` and `format`.
#[derive(Debug, Args)]
pub struct LayoutArgs {
    #[arg(long, value_enum, default_value = "gpt")]
    pub partition: Scheme,
    /// Cluster size, 512 to 64K, a power of two.
    #[arg(long, value_parser = parse_size, default_value = "4096")]
    pub cluster_size: u64,
    #[arg(long, default_value = "")]
    pub label: String,
}

#[derive(Debug, Args)]
pub struct FormatArgs {
    pub image: PathBuf,
    #[command(flatten)]
    pub layout: LayoutArgs,
    /// Replace an existing partition table or volume (everything on the disk is lost).
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InfoArgs {
    pub image: PathBuf,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct LsArgs {
    pub image: PathBuf,
    #[arg(default_value = "/")]
    pub path: String,
    /// Long listing: kind, size, modification time, attributes.
    #[arg(short = 'l')]
    pub long: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ImagePath {
    pub image: PathBuf,
    pub path: String,
}

/// For commands that make new names in the image.
#[derive(Debug, Args)]
pub struct NameArgs {
    /// Allow names Win32 programs cannot open (CON, NUL.txt, COM1..., names ending in a dot or
    /// a space); the NT file system and the driver accept them.
    #[arg(long)]
    pub allow_nt_names: bool,
}

#[derive(Debug, Args)]
pub struct PutArgs {
    pub image: PathBuf,
    pub host_file: PathBuf,
    pub path: String,
    #[command(flatten)]
    pub names: NameArgs,
}

#[derive(Debug, Args)]
pub struct GetArgs {
    pub image: PathBuf,
    pub path: String,
    pub host_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct MkdirArgs {
    pub image: PathBuf,
    pub path: String,
    /// Make missing parents too; an existing directory is not an error.
    #[arg(short = 'p', long)]
    pub parents: bool,
    #[command(flatten)]
    pub names: NameArgs,
}

#[derive(Debug, Args)]
pub struct RmArgs {
    pub image: PathBuf,
    pub path: String,
    /// Remove directories and their contents.
    #[arg(short = 'r', long)]
    pub recursive: bool,
}

#[derive(Debug, Args)]
pub struct MvArgs {
    pub image: PathBuf,
    pub from: String,
    pub to: String,
    #[command(flatten)]
    pub names: NameArgs,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    pub image: PathBuf,
    pub host_dir: PathBuf,
    /// Directory in the image that receives HOSTDIR's contents.
    #[arg(default_value = "/")]
    pub path: String,
    #[command(flatten)]
    pub names: NameArgs,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    pub image: PathBuf,
    pub path: String,
    /// Receives PATH's contents (created if missing).
    pub host_dir: PathBuf,
}

#[derive(Debug, Args)]
pub struct OverlayArgs {
    #[arg(value_enum)]
    pub action: OverlayAction,
    pub image: PathBuf,
    /// One file or directory (commit, discard, status); the whole volume if absent.
    pub path: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OverlayAction {
    Seal,
    Commit,
    Discard,
    Status,
}

#[derive(Debug, Args)]
pub struct FsckArgs {
    pub image: PathBuf,
    #[arg(long)]
    pub repair: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct MountArgs {
    pub image: PathBuf,
    /// An existing directory to mount on.
    pub dir: PathBuf,
    /// Mount options, comma-separated: ro, rw.
    #[arg(short = 'o', value_delimiter = ',', value_name = "OPTIONS")]
    pub options: Vec<String>,
    /// Let the kernel cache writes (FUSE writeback cache).
    #[arg(long)]
    pub writeback_cache: bool,
    /// Stay attached to the terminal (otherwise the mount detaches once it is live).
    #[arg(long)]
    pub foreground: bool,
    /// Internal: the process a detaching `mount` started (its stderr is a pipe to it).
    #[arg(long, hide = true)]
    pub detached_child: bool,
}
