//! What ntoskrnl.exe (and hal.dll) export, from an outside reference.
//!
//! The reference is the symbol index of mingw-w64's import libraries as Debian ships them
//! (`mingw-w64-x86-64-dev`: `/usr/x86_64-w64-mingw32/lib/libntoskrnl.a`, `libhal.a`): every
//! export `X` appears there as the import symbol `__imp_X`. It is written from Microsoft's
//! export lists by people who are not us, so an import we invent by mistake (a WDK macro such
//! as `CcIsFileCached`) is caught. It lags Windows: exports newer than it are in
//! [`NEWER_EXPORTS`] with the version that introduced them.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use object::read::archive::ArchiveFile;

/// Exports missing from mingw-w64 10's lists, each with the first Windows that has it. Adding
/// one here raises the minimum Windows version of cowfat.sys; the INF and INSTALL.txt say
/// which version that is.
pub const NEWER_EXPORTS: &[(&str, &str)] = &[
    ("ExAllocatePool2", "Windows 10 version 2004 (build 19041)"),
    ("KeQuerySystemTimePrecise", "Windows 8"),
];

/// Imports cowfat.sys must have: proof that the code behind them is linked in (LTO drops
/// what nothing reaches). DriverEntry's body brings the first ones; later work adds its own
/// (`CcInitializeCacheMap`, `CcPurgeCacheSection`, `MmDoesFileHaveUserWritableReferences`,
/// ... and `ExAllocatePool2` once fs-core allocates).
pub const REQUIRED_IMPORTS: &[&str] = &[
    // DriverEntry.
    "FsRtlRegisterFileSystemFilterCallbacks",
    "IoRegisterFileSystem",
    "IoCreateDevice",
    "IofCompleteRequest",
    // Pool and resources (FCBs, VCB, fs-core's heap).
    "ExAllocatePool2",
    "ExFreePoolWithTag",
    "ExInitializeResourceLite",
    "ExDeleteResourceLite",
    "ExAcquireResourceExclusiveLite",
    "ExAcquireResourceSharedLite",
    "ExReleaseResourceLite",
    // Mount, sector I/O to the target device on our own IRPs (NT-27), dismount.
    "IoBuildDeviceIoControlRequest",
    "IoAllocateIrp",
    "IoFreeIrp",
    "IoReuseIrp",
    "IoBuildPartialMdl",
    "MmBuildMdlForNonPagedPool",
    "KeSetEvent",
    "IofCallDriver",
    "KeWaitForSingleObject",
    "IoDeleteDevice",
    "KeQuerySystemTimePrecise",
    // Create and cleanup: share access.
    "IoCheckShareAccess",
    "IoRemoveShareAccess",
    // Cached, non-cached and paging I/O (NT-13, NT-16, NT-17).
    "CcInitializeCacheMap",
    "CcCopyRead",
    "CcCopyWrite",
    "CcSetFileSizes",
    "CcFlushCache",
    "CcPurgeCacheSection",
    "CcCoherencyFlushAndPurgeCache",
    "CcUninitializeCacheMap",
    "MmMapLockedPagesSpecifyCache",
    // Mapped-file rules in create (NT-09, NT-10, NT-11).
    "MmFlushImageSection",
    "MmCanFileBeTruncated",
    "MmDoesFileHaveUserWritableReferences",
    // Change notification (NT-22), byte-range locks and name expressions (issue 7).
    "FsRtlNotifyInitializeSync",
    "FsRtlNotifyUninitializeSync",
    "FsRtlNotifyFullChangeDirectory",
    "FsRtlNotifyFullReportChange",
    "FsRtlNotifyCleanup",
    "FsRtlIsNameInExpression",
    "FsRtlInitializeFileLock",
    "FsRtlUninitializeFileLock",
    "FsRtlProcessFileLock",
    "FsRtlCheckLockForReadAccess",
    "FsRtlCheckLockForWriteAccess",
    "FsRtlFastUnlockAll",
    "FsRtlPrivateLock",
    "FsRtlFastUnlockSingle",
    "FsRtlFastUnlockAllByKey",
    "IoGetRequestorProcess",
    // File position through the fast I/O read and write paths (NT-28).
    "FsRtlFastCheckLockForRead",
    "FsRtlFastCheckLockForWrite",
    "IoGetCurrentProcess",
    // Exceptions and hostile callers (NT-24, NT-25): the SEH frame's language handler, the
    // expected-status split, probes and locked user buffers.
    "__C_specific_handler",
    "FsRtlIsNtstatusExpected",
    "ProbeForRead",
    "ProbeForWrite",
    "IoAllocateMdl",
    "MmProbeAndLockPages",
    "MmUnlockPages",
    "IoFreeMdl",
    // Background work: the deferred close worker (NT-32) and the lazy commit's timer, DPC and
    // work item (NT-33).
    "IoAllocateWorkItem",
    "IoQueueWorkItem",
    "IoFreeWorkItem",
    "KeInitializeTimerEx",
    "KeInitializeDpc",
    "KeSetTimerEx",
    "KeCancelTimer",
    "KeFlushQueuedDpcs",
    // Volume lifetime (NT-29): the target device referenced for the VCB's life, the swapped
    // out VPB freed, PnP passed down and waited for.
    "ObfReferenceObject",
    "ObfDereferenceObject",
    "ExFreePool",
    "KeSetEvent",
    // Filter contexts (NT-31).
    "FsRtlTeardownPerStreamContexts",
];

/// WDK inline helpers and macros that ntoskrnl does not export: importing one makes the image
/// fail to load. They are written out in `fs-driver/src/wdk_inline.rs` instead.
pub const FORBIDDEN_IMPORTS: &[&str] = &[
    "CcIsFileCached",
    "IoGetCurrentIrpStackLocation",
    "IoGetNextIrpStackLocation",
    "IoMarkIrpPending",
    "IoCompleteRequest",
    "FsRtlSetupAdvancedFcbHeader",
    "FsRtlEnterFileSystem",
    "FsRtlExitFileSystem",
    "ExInitializeFastMutex",
    "InitializeListHead",
    "IoSkipCurrentIrpStackLocation",
    "IoCopyCurrentIrpStackLocationToNext",
    "IoSetCompletionRoutine",
];

/// The directory of mingw-w64's x86_64 import libraries (`$COWFAT_MINGW_LIB_DIR` overrides).
#[must_use]
pub fn mingw_lib_dir() -> PathBuf {
    std::env::var_os("COWFAT_MINGW_LIB_DIR").map_or_else(
        || PathBuf::from("/usr/x86_64-w64-mingw32/lib"),
        PathBuf::from,
    )
}

/// The names an import library says its DLL exports (`__imp_X` -> `X`).
///
/// # Errors
/// A sentence naming the file when it is missing or not an archive with a symbol index.
pub fn import_library_exports(path: &Path) -> Result<BTreeSet<String>, String> {
    let data = std::fs::read(path).map_err(|e| {
        format!(
            "cannot read {} ({e}); install Debian's mingw-w64-x86-64-dev (scripts/build-driver does)",
            path.display()
        )
    })?;
    let archive = ArchiveFile::parse(&*data)
        .map_err(|e| format!("{} is not an ar archive: {e}", path.display()))?;
    let symbols = archive
        .symbols()
        .map_err(|e| format!("{}: bad symbol index: {e}", path.display()))?
        .ok_or_else(|| format!("{} has no symbol index", path.display()))?;
    let mut names = BTreeSet::new();
    for symbol in symbols {
        let symbol = symbol.map_err(|e| format!("{}: bad symbol: {e}", path.display()))?;
        if let Some(name) = symbol.name().strip_prefix(b"__imp_") {
            names.insert(String::from_utf8_lossy(name).into_owned());
        }
    }
    if names.is_empty() {
        return Err(format!("{} lists no __imp_ symbols", path.display()));
    }
    Ok(names)
}

/// The exports of one kernel module, from the reference plus [`NEWER_EXPORTS`] for ntoskrnl.
#[derive(Debug, Clone)]
pub struct KernelExports {
    /// ntoskrnl.exe exports known to mingw-w64.
    pub ntoskrnl: BTreeSet<String>,
    /// hal.dll exports known to mingw-w64.
    pub hal: BTreeSet<String>,
}

impl KernelExports {
    /// Loads `libntoskrnl.a` and `libhal.a` from [`mingw_lib_dir`].
    ///
    /// # Errors
    /// As [`import_library_exports`].
    pub fn load() -> Result<Self, String> {
        let dir = mingw_lib_dir();
        Ok(Self {
            ntoskrnl: import_library_exports(&dir.join("libntoskrnl.a"))?,
            hal: import_library_exports(&dir.join("libhal.a"))?,
        })
    }

    /// Why `name` imported from `dll` is acceptable, or why not.
    ///
    /// # Errors
    /// A sentence saying that `dll` does not export `name` according to the reference.
    pub fn check(&self, dll: &str, name: &str) -> Result<Provenance, String> {
        let (set, label) = if dll.eq_ignore_ascii_case("ntoskrnl.exe") {
            (&self.ntoskrnl, "libntoskrnl.a")
        } else if dll.eq_ignore_ascii_case("hal.dll") {
            (&self.hal, "libhal.a")
        } else {
            return Err(format!(
                "{name} is imported from {dll}; only ntoskrnl.exe and HAL.dll are allowed"
            ));
        };
        if FORBIDDEN_IMPORTS.contains(&name) {
            return Err(format!("{name} is a WDK inline helper/macro, not a kernel export; use fs-driver's wdk_inline"));
        }
        if set.contains(name) {
            return Ok(Provenance::Reference);
        }
        if dll.eq_ignore_ascii_case("ntoskrnl.exe") {
            if let Some((_, since)) = NEWER_EXPORTS.iter().find(|(n, _)| *n == name) {
                return Ok(Provenance::Allowlist(since));
            }
        }
        Err(format!(
            "{name} (from {dll}) is not exported according to mingw-w64's {label} nor in the allowlist of newer exports"
        ))
    }
}

/// Where an import's legitimacy comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Provenance {
    /// Listed in mingw-w64's import library.
    Reference,
    /// In [`NEWER_EXPORTS`], exported since the given Windows version.
    Allowlist(&'static str),
}
