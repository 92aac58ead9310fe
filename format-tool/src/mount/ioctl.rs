//! The mount's control channel: ioctls on an open file or directory of the mount, answered by
//! the server (FUSE_IOCTL). Both ends live here, so the numbers cannot drift apart.
//!
//! Every command is a "restricted" FUSE ioctl: its direction and size are encoded in the
//! number, so the kernel itself copies the bytes between the caller and the server and no
//! server-side pointer chasing (FUSE_IOCTL_UNRESTRICTED, allowed for CUSE only) is needed.
//! The kernel forwards ioctls on directories as well as files (FUSE_IOCTL_DIR), so the mount
//! root stands for the volume and any other path for its file.
//!
//! The only unsafe code of the `cowfat` command is here: an ioctl is a raw system call whose
//! argument the kernel writes through.
#![allow(unsafe_code)]

use std::os::fd::AsFd;

use rustix::ioctl::{opcode, Ioctl, IoctlOutput, Opcode};

/// The ioctl group: not one the VFS answers itself (those never reach a FUSE server).
const GROUP: u8 = 0xCF;

/// The largest status JSON the mount returns: the size encoded in [`STATUS`].
pub const STATUS_MAX: usize = 4096;

/// Status as JSON (the volume's on the root, a file's elsewhere); returns its length.
pub const STATUS: Opcode = opcode::read::<[u8; STATUS_MAX]>(GROUP, 1);
/// Seal the volume (root only).
pub const SEAL: Opcode = opcode::none(GROUP, 2);
/// Commit the volume's overlay (root) or one file's.
pub const COMMIT: Opcode = opcode::none(GROUP, 3);
/// Discard one file's overlay (the volume's is refused on a mount).
pub const DISCARD: Opcode = opcode::none(GROUP, 4);
/// How many getxattr, listxattr, setxattr and removexattr requests the server has seen
/// (four little-endian u64): the kernel stops asking after the first ENOSYS, which tests
/// check through this.
pub const XATTR_REQUESTS: Opcode = opcode::read::<[u8; XATTR_REQUESTS_LEN]>(GROUP, 5);
pub const XATTR_REQUESTS_LEN: usize = 32;

/// The opcode as the FUSE request carries it (32 bits; `Opcode` is wider with glibc).
pub fn wire(op: Opcode) -> u32 {
    #[allow(clippy::unnecessary_cast)]
    let op = op as u64;
    u32::try_from(op).unwrap_or(0)
}

/// An ioctl that the kernel answers into a zeroed buffer of `N` bytes; the call's return
/// value is how many of them the server filled.
struct Read<const OPCODE: Opcode, const N: usize> {
    buf: Box<[u8; N]>,
}

// SAFETY: OPCODE is one of this module's `opcode::read::<[u8; N]>` numbers, so the kernel
// writes at most N bytes at the pointer, which points into `buf` (N initialised bytes on the
// heap, alive until `ioctl` returns, after `output_from_ptr`).
unsafe impl<const OPCODE: Opcode, const N: usize> Ioctl for Read<OPCODE, N> {
    type Output = Vec<u8>;
    const IS_MUTATING: bool = true;

    fn opcode(&self) -> Opcode {
        OPCODE
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        self.buf.as_mut_ptr().cast()
    }

    unsafe fn output_from_ptr(
        out: IoctlOutput,
        ptr: *mut core::ffi::c_void,
    ) -> rustix::io::Result<Vec<u8>> {
        let len = usize::try_from(out).unwrap_or(0).min(N);
        // SAFETY: `ptr` is `as_ptr` of this call's buffer, N initialised bytes still alive.
        let filled = unsafe { core::slice::from_raw_parts(ptr.cast::<u8>(), len) };
        Ok(filled.to_vec())
    }
}

/// An ioctl without an argument.
struct Plain<const OPCODE: Opcode>;

// SAFETY: the numbers used here are `opcode::none`: the kernel reads and writes nothing
// through the (null) argument.
unsafe impl<const OPCODE: Opcode> Ioctl for Plain<OPCODE> {
    type Output = ();
    const IS_MUTATING: bool = false;

    fn opcode(&self) -> Opcode {
        OPCODE
    }

    fn as_ptr(&mut self) -> *mut core::ffi::c_void {
        core::ptr::null_mut()
    }

    unsafe fn output_from_ptr(_: IoctlOutput, _: *mut core::ffi::c_void) -> rustix::io::Result<()> {
        Ok(())
    }
}

/// The status JSON of the open file or directory.
pub fn status(fd: impl AsFd) -> rustix::io::Result<Vec<u8>> {
    let call = Read::<STATUS, STATUS_MAX> {
        buf: Box::new([0u8; STATUS_MAX]),
    };
    // SAFETY: `Read`'s contract above: the kernel writes at most STATUS_MAX bytes.
    unsafe { rustix::ioctl::ioctl(fd, call) }
}

/// The server's count of xattr requests: get, list, set, remove.
pub fn xattr_requests(fd: impl AsFd) -> rustix::io::Result<[u64; 4]> {
    let call = Read::<XATTR_REQUESTS, XATTR_REQUESTS_LEN> {
        buf: Box::new([0u8; XATTR_REQUESTS_LEN]),
    };
    // SAFETY: `Read`'s contract above: the kernel writes at most XATTR_REQUESTS_LEN bytes.
    let bytes = unsafe { rustix::ioctl::ioctl(fd, call) }?;
    let mut counts = [0u64; 4];
    for (c, chunk) in counts.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0u8; 8];
        b.copy_from_slice(chunk);
        *c = u64::from_le_bytes(b);
    }
    Ok(counts)
}

/// An overlay operation on the open file or directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Seal,
    Commit,
    Discard,
}

impl Action {
    /// The request number the server sees.
    pub fn wire(self) -> u32 {
        wire(match self {
            Action::Seal => SEAL,
            Action::Commit => COMMIT,
            Action::Discard => DISCARD,
        })
    }

    pub fn from_wire(cmd: u32) -> Option<Action> {
        [Action::Seal, Action::Commit, Action::Discard]
            .into_iter()
            .find(|a| a.wire() == cmd)
    }
}

/// Seal, commit or discard through the open file or directory.
pub fn act(fd: impl AsFd, action: Action) -> rustix::io::Result<()> {
    match action {
        // SAFETY: `Plain` with its `opcode::none` number.
        Action::Seal => unsafe { rustix::ioctl::ioctl(fd, Plain::<SEAL>) },
        // SAFETY: as above.
        Action::Commit => unsafe { rustix::ioctl::ioctl(fd, Plain::<COMMIT>) },
        // SAFETY: as above.
        Action::Discard => unsafe { rustix::ioctl::ioctl(fd, Plain::<DISCARD>) },
    }
}
