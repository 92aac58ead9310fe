//! cowfat's own bug checks, for states no request can safely continue from. Each has its own
//! code (and the facts that explain it in the parameters), so a crash dump names the rule that
//! broke without symbols; a Rust panic is `0xC0FA7001` with the source line instead.

use crate::nt;

/// An exception no request may complete with came out of a kernel routine (NT-24).
/// Parameter 1: the exception code.
pub const COWFAT_BUGCHECK_UNEXPECTED_EXCEPTION: u32 = 0xC0FA_7002;
/// fs-core was entered again on a thread that already holds the volume (NT-25: a user buffer
/// that maps a file of the same volume was touched under the volume lock). Parameter 1: the VCB.
pub const COWFAT_BUGCHECK_VOLUME_REENTERED: u32 = 0xC0FA_7003;

/// Stops the machine with `code` and two parameters.
#[cold]
#[inline(never)]
pub fn bug_check(code: u32, p1: usize, p2: usize) -> ! {
    // SAFETY: KeBugCheckEx may be called at any IRQL and does not return.
    unsafe { nt::KeBugCheckEx(code, p1, p2, 0, 0) };
    // KeBugCheckEx does not return; its declaration does not say so.
    #[allow(clippy::empty_loop)]
    loop {}
}
