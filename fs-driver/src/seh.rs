//! Structured exception handling at the call site (NT-24).
//!
//! Kernel routines such as `CcCopyRead`, `ProbeForWrite` and `MmProbeAndLockPages` raise
//! exceptions (invalid user buffer, in-page I/O error, no resources), and so does any touch of
//! a user address. Rust has no `__try`, so each raising call or user-buffer access runs as a
//! closure inside a small SEH frame, [`cowfat_seh_try`], whose handler turns the exception into
//! `Err(NTSTATUS)`. The closure must not hold a lock or guard: when an exception unwinds it, no
//! Rust destructor runs between the raise and the handler. Guards belong to the caller, which
//! gets the error back and lets them drop through ordinary `?`.
//!
//! - On the image, `cowfat_seh_try` is the `global_asm!` trampoline below: one `.pdata` entry
//!   with `__C_specific_handler` (imported from ntoskrnl) as its language handler and a
//!   one-entry scope table around the call of the body. The filter ([`seh_filter`]) accepts
//!   every exception and records its code (an in-page error's real I/O status, as fastfat's
//!   `FatExceptionFilter` does) in the trampoline's frame; the handler returns it. Written in
//!   assembly rather than in a C file built with clang for `x86_64-pc-windows-msvc`: clang is
//!   not installed by `scripts/build-driver` (Debian 12's clang-14 would be a second compiler
//!   and a build step for one function), while the assembly is built by rustc with the rest
//!   and links with `lld-link-22` as before; `tests/driver-image` checks the result.
//! - On the host, `ntsim` defines `cowfat_seh_try`: it runs the body under `catch_unwind`,
//!   where ntsim's raising routines unwind with the NTSTATUS as payload. The routines that
//!   raise are therefore declared `extern "system-unwind"` on the host ([`crate::nt`]).
//!
//! What an exception becomes follows fastfat: an expected code (`FsRtlIsNtstatusExpected`)
//! completes the IRP with that code; an unexpected one from a user-buffer access is
//! `STATUS_INVALID_USER_BUFFER` ([`user_buffer`]), and from anything else a bug check
//! ([`kernel_call`]).

use core::ffi::c_void;

use crate::nt::{self, NTSTATUS};

/// Declares the SEH frame and defines the body runner with the ABI of the build: `system` on
/// the image (SEH unwinds through frames by their unwind tables; a Rust `-unwind` ABI there
/// would add landing pads and a C++ personality routine the image must not have), and
/// `system-unwind` on the host, where ntsim's raise is a Rust unwind.
macro_rules! seh_frame_abi {
    ($abi:literal) => {
        /// The body an SEH frame runs: `context` is the [`Frame`] of [`try_except`].
        type Body = unsafe extern $abi fn(context: *mut c_void);

        extern $abi {
            /// Calls `body(context)` inside an SEH frame that accepts every exception. Returns
            /// 0 when the body returned, else the exception code.
            fn cowfat_seh_try(body: Body, context: *mut c_void) -> NTSTATUS;
        }

        /// Runs the frame's closure and stores its result.
        ///
        /// # Safety
        /// `context` points to a live `Frame<F, R>`.
        unsafe extern $abi fn run_body<F: FnOnce() -> R, R>(context: *mut c_void) {
            // SAFETY: the caller's contract: `try_except` passes its own frame.
            let frame = unsafe { &mut *context.cast::<Frame<F, R>>() };
            if let Some(body) = frame.body.take() {
                frame.result = Some(body());
            }
        }
    };
}

#[cfg(windows)]
seh_frame_abi!("system");
#[cfg(not(windows))]
seh_frame_abi!("system-unwind");

/// The closure and its result, on the caller's stack while the frame runs.
struct Frame<F, R> {
    body: Option<F>,
    result: Option<R>,
}

/// Runs `body` in an SEH frame: its result, or the code of the exception raised inside it.
/// `body` must hold no lock or guard (its destructors do not run on an exception).
///
/// # Errors
/// The exception's code, unfiltered.
pub fn try_except<R>(body: impl FnOnce() -> R) -> Result<R, NTSTATUS> {
    fn frame_of<F: FnOnce() -> R, R>(body: F) -> (Frame<F, R>, Body) {
        (
            Frame {
                body: Some(body),
                result: None,
            },
            run_body::<F, R>,
        )
    }
    let (mut frame, run) = frame_of(body);
    // SAFETY: `run` is the body runner of this frame's type and the frame outlives the call.
    let code = unsafe { cowfat_seh_try(run, (&raw mut frame).cast()) };
    match frame.result {
        Some(result) if code == 0 => Ok(result),
        // An exception whose code is 0 is not an NTSTATUS anyone raises; still an error.
        _ => Err(if code == 0 {
            nt::STATUS_UNSUCCESSFUL
        } else {
            code
        }),
    }
}

/// Is `status` one the file system completes a request with (`FsRtlIsNtstatusExpected`:
/// everything but access violations, misalignment and illegal instructions)?
#[must_use]
pub fn is_expected(status: NTSTATUS) -> bool {
    // SAFETY: a pure function of its argument, callable at any IRQL.
    unsafe { nt::FsRtlIsNtstatusExpected(status) }
}

/// An access to a caller's buffer (probe, copy, lock): an expected exception is the error;
/// any other (an access violation) is `STATUS_INVALID_USER_BUFFER` (fastfat
/// `FatLockUserBuffer`, its FSCTL probes).
///
/// # Errors
/// The exception's status as above.
pub fn user_buffer<R>(body: impl FnOnce() -> R) -> Result<R, NTSTATUS> {
    try_except(body).map_err(|code| {
        if is_expected(code) {
            code
        } else {
            nt::STATUS_INVALID_USER_BUFFER
        }
    })
}

/// A call of a kernel routine that may raise (`CcCopyRead`, `CcCopyWrite`, ...): an expected
/// exception is the error; any other is a bug in us or in the kernel, and bug-checks (fastfat
/// `FatExceptionFilter` -> `FatBugCheck`).
///
/// # Errors
/// The expected exception's status.
pub fn kernel_call<R>(body: impl FnOnce() -> R) -> Result<R, NTSTATUS> {
    try_except(body).inspect_err(|&code| {
        if !is_expected(code) {
            unexpected_exception(code);
        }
    })
}

/// The bug check for an exception no request may complete with (NT-24).
#[cold]
#[inline(never)]
fn unexpected_exception(code: NTSTATUS) -> ! {
    crate::bugcheck::bug_check(
        crate::bugcheck::COWFAT_BUGCHECK_UNEXPECTED_EXCEPTION,
        code as u32 as usize,
        0,
    )
}

#[cfg(all(windows, target_arch = "x86_64"))]
mod image {
    //! The image's SEH frame: a trampoline with unwind information whose language handler is
    //! ntoskrnl's `__C_specific_handler` and whose scope table covers the call of the body.

    use windows_sys::Win32::System::Diagnostics::Debug::EXCEPTION_POINTERS;

    /// `EXCEPTION_EXECUTE_HANDLER`.
    const EXECUTE_HANDLER: i32 = 1;
    /// `STATUS_IN_PAGE_ERROR`: the real I/O status is `ExceptionInformation[2]`.
    const STATUS_IN_PAGE_ERROR: i32 = 0xC000_0006_u32 as i32;
    /// Where the trampoline keeps the exception code, above the body's home area.
    const CODE_SLOT: usize = 32;

    #[link(name = "ntoskrnl.exe", kind = "raw-dylib", modifiers = "+verbatim")]
    extern "system" {
        /// The C language handler of ntoskrnl: walks the scope table, calls the filter,
        /// unwinds to the jump target with the exception code in `rax`.
        fn __C_specific_handler();
    }

    /// Used by the assembly only; referenced here so the import is declared.
    #[used]
    static C_SPECIFIC_HANDLER: unsafe extern "system" fn() = __C_specific_handler;

    /// The scope's filter, called by `__C_specific_handler` with the exception and the
    /// trampoline's frame: records the code (an in-page error's I/O status, fastfat's
    /// `FatExceptionFilter`) in the frame and accepts the exception.
    ///
    /// # Safety
    /// Called by `__C_specific_handler` with valid pointers and the trampoline's frame.
    unsafe extern "system" fn seh_filter(pointers: *const EXCEPTION_POINTERS, frame: usize) -> i32 {
        // SAFETY: the dispatcher's exception pointers.
        let record = unsafe { (*pointers).ExceptionRecord };
        // SAFETY: the dispatcher's exception record.
        let record = unsafe { &*record };
        let mut code = record.ExceptionCode;
        if code == STATUS_IN_PAGE_ERROR && record.NumberParameters >= 3 {
            #[allow(clippy::cast_possible_truncation)] // an NTSTATUS in a ULONG_PTR
            {
                code = record.ExceptionInformation[2] as i32;
            }
        }
        // SAFETY: the trampoline's frame keeps this slot for the code.
        unsafe { ((frame + CODE_SLOT) as *mut i32).write(code) };
        EXECUTE_HANDLER
    }

    core::arch::global_asm!(
        ".section .text$cowfat_seh,\"xr\"",
        ".globl cowfat_seh_try",
        ".p2align 4",
        ".def cowfat_seh_try",
        ".scl 2",
        ".type 32",
        ".endef",
        "cowfat_seh_try:",
        ".seh_proc cowfat_seh_try",
        ".seh_handler __C_specific_handler, @except",
        "sub rsp, 40",
        ".seh_stackalloc 40",
        ".seh_endprologue",
        "mov rax, rcx",
        "mov rcx, rdx",
        "2:",
        "call rax",
        // The return address must lie inside the scope.
        "nop",
        "3:",
        "xor eax, eax",
        "add rsp, 40",
        "ret",
        "4:",
        // The handler: `rsp` is this frame's again; the filter left the code in the slot.
        "mov eax, dword ptr [rsp + {slot}]",
        "add rsp, 40",
        "ret",
        ".seh_handlerdata",
        ".long 1",
        ".long 2b@IMGREL",
        ".long 3b@IMGREL",
        ".long {filter}@IMGREL",
        ".long 4b@IMGREL",
        ".section .text$cowfat_seh,\"xr\"",
        ".seh_endproc",
        slot = const CODE_SLOT,
        filter = sym seh_filter,
    );
}
