//! Hostile callers and failing machines (NT-24, NT-25, NT-26): requests whose buffers are
//! unmapped user addresses or kernel addresses, an injected disk error, pool that runs out.
//! The address space and raising are [`crate::seh`]'s; pool failure is [`crate::ex`]'s.
#![allow(unsafe_code)]

use windows_sys::Win32::Foundation::{NTSTATUS, STATUS_INVALID_HANDLE};

use crate::api::{Handle, Sim};
use crate::io;
use crate::kernel;
use crate::seh::{self, UserMemory, UNMAPPED_USER_ADDRESS};

/// Where a hostile caller's buffer points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hostile {
    /// A user address with nothing behind it.
    Unmapped,
    /// Kernel memory (ntsim watches it: not one byte may change).
    Kernel,
}

/// `METHOD_BUFFERED` (devioctl.h).
const METHOD_BUFFERED: u32 = 0;

/// The byte a watched kernel buffer is filled with.
const WATCH: u8 = 0x5A;

impl Sim {
    /// `NtReadFile` of `len` bytes into an unmapped user buffer (cached or non-cached by the
    /// handle): the status.
    pub fn read_unmapped(&mut self, handle: Handle, offset: u64, len: u32) -> NTSTATUS {
        self.transfer_unmapped(handle, 0x03, offset, len)
    }

    /// `NtWriteFile` of `len` bytes from an unmapped user buffer: the status.
    pub fn write_unmapped(&mut self, handle: Handle, offset: u64, len: u32) -> NTSTATUS {
        self.transfer_unmapped(handle, 0x04, offset, len)
    }

    fn transfer_unmapped(&mut self, handle: Handle, major: u8, offset: u64, len: u32) -> NTSTATUS {
        let Ok(fo) = self.fo(handle) else {
            return STATUS_INVALID_HANDLE;
        };
        let address = UNMAPPED_USER_ADDRESS;
        seh::register(address, len as usize, UserMemory::Unmapped);
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        // SAFETY: the file object is open; the buffer is registered unmapped, so ntsim never
        // dereferences it and the driver may only reach it through probes and Cc.
        let (status, _) = unsafe {
            io::send_read_write(
                fo,
                major,
                offset,
                std::ptr::with_exposed_provenance_mut(address),
                len,
                io_flags(fo),
                false,
            )
        };
        seh::unregister(address);
        status
    }

    /// `NtQueryDirectoryFile` (restart scan) of `class` into an unmapped `len`-byte buffer:
    /// the status.
    pub fn query_directory_unmapped(&mut self, handle: Handle, class: i32, len: usize) -> NTSTATUS {
        self.query_directory_unmapped_from(handle, class, len, 0x01)
    }

    /// [`Sim::query_directory_unmapped`] with the request's `flags` (0: continue the scan).
    pub fn query_directory_unmapped_from(
        &mut self,
        handle: Handle,
        class: i32,
        len: usize,
        flags: u8,
    ) -> NTSTATUS {
        kernel::with(|k| k.unmapped_user_buffer_next = true);
        let (status, _) = self.query_directory(handle, class, len, None, flags, 0);
        kernel::with(|k| k.unmapped_user_buffer_next = false);
        status
    }

    /// A user-mode FSCTL whose input (`input`'s bytes) and output
    /// (`output_len` bytes) are placed as asked (`None`: the caller's own valid memory). The
    /// status, and whether every watched kernel byte is unchanged. `METHOD_NEITHER` buffers go
    /// to the file system as they are; `METHOD_BUFFERED` ones are the I/O manager's to probe.
    pub fn fsctl_hostile(
        &mut self,
        handle: Handle,
        code: u32,
        input: &[u8],
        input_at: Option<Hostile>,
        output_len: usize,
        output_at: Option<Hostile>,
    ) -> (NTSTATUS, bool) {
        let Ok(fo) = self.fo(handle) else {
            return (STATUS_INVALID_HANDLE, true);
        };
        let Some(device) = crate::io::related_device(fo) else {
            return (STATUS_INVALID_HANDLE, true);
        };
        if code & 3 == METHOD_BUFFERED {
            // NtFsControlFile probes a buffered request's buffers and copies them itself: a
            // bad one fails there, and the file system never sees an IRP.
            if input_at.is_some() || output_at.is_some() {
                kernel::with(|k| {
                    k.trace.push(crate::trace::Event::Kernel {
                        name: "NtFsControlFile refused a buffer",
                        file: None,
                    });
                });
                return (
                    windows_sys::Win32::Foundation::STATUS_ACCESS_VIOLATION,
                    true,
                );
            }
            let (status, _) = self.fsctl(handle, code, input, output_len);
            return (status, true);
        }
        let mut input_buf = input.to_vec();
        let mut output_buf = vec![WATCH; output_len];
        let place = |buf: &mut Vec<u8>, at: Option<Hostile>, offset: usize| match at {
            None => {
                seh::register(buf.as_mut_ptr().addr(), buf.len(), UserMemory::Mapped);
                (buf.as_mut_ptr(), Some(buf.as_mut_ptr().addr()))
            }
            Some(Hostile::Kernel) => (buf.as_mut_ptr(), None),
            Some(Hostile::Unmapped) => {
                let address = UNMAPPED_USER_ADDRESS + offset;
                seh::register(address, buf.len(), UserMemory::Unmapped);
                (
                    std::ptr::with_exposed_provenance_mut(address),
                    Some(address),
                )
            }
        };
        let input_before = input_buf.clone();
        let (input_ptr, input_reg) = place(&mut input_buf, input_at, 0);
        let (output_ptr, output_reg) = place(&mut output_buf, output_at, 0x10_0000);
        // SAFETY: live file object and device; the buffers outlive the request.
        let (status, _) = unsafe {
            crate::api::fsctl_neither_at(
                fo,
                device,
                code,
                (input_ptr, input.len()),
                (output_ptr, output_len),
            )
        };
        for address in [input_reg, output_reg].into_iter().flatten() {
            seh::unregister(address);
        }
        let output_intact =
            output_at != Some(Hostile::Kernel) || output_buf.iter().all(|b| *b == WATCH);
        let input_intact = input_at != Some(Hostile::Kernel) || input_buf == input_before;
        (status, output_intact && input_intact)
    }

    /// `NtReadFile` of `len` bytes at `offset` into a buffer that is `view` (of another file
    /// on the volume) from `view_offset`: the status. On Windows the driver's first touch of
    /// such a buffer faults into its own paging read; one that touches it while holding its
    /// locks re-enters itself. ntsim cannot fault on a touch, so it checks the result: bytes
    /// that changed without the pages being locked first are that re-entry (a bug check).
    pub fn read_into_view(
        &mut self,
        handle: Handle,
        offset: u64,
        len: u32,
        view: crate::api::View,
        view_offset: u64,
    ) -> NTSTATUS {
        let Ok(fo) = self.fo(handle) else {
            return STATUS_INVALID_HANDLE;
        };
        const CANARY: u8 = 0xA5;
        let mut stand_in = vec![CANARY; len as usize];
        let address = stand_in.as_mut_ptr();
        let locks_before = kernel::with(|k| k.view_locks);
        seh::register(
            address.addr(),
            stand_in.len(),
            UserMemory::View(view.0, view_offset),
        );
        let offset = i64::try_from(offset).unwrap_or(i64::MAX);
        // SAFETY: the file object is open; the stand-in outlives the request.
        let (status, _) =
            unsafe { io::send_read_write(fo, 0x03, offset, address, len, io_flags(fo), false) };
        seh::unregister(address.addr());
        let locked = kernel::with(|k| k.view_locks) > locks_before;
        if !locked && stand_in.iter().any(|b| *b != CANARY) {
            crate::ex::bugcheck(
                "the driver wrote a user buffer that maps a file on the volume without locking it \
                 first: on Windows that faults into its own paging read under its locks (re-entry)",
            );
        }
        status
    }

    /// Every disk read fails with `STATUS_DEVICE_DATA_ERROR` while `on`.
    pub fn set_disk_read_error(&mut self, on: bool) {
        kernel::with(|k| k.disk_read_error = on);
    }

    /// Fail the `n`th pool allocation the driver asks for from now (1-based; `None`: stop).
    pub fn fail_pool_allocation(&mut self, n: Option<u64>) {
        kernel::with(|k| {
            k.pool_faults.fail_nth = n;
            k.pool_faults.attempts = 0;
            k.pool_faults.failed = 0;
        });
    }

    /// Fail each pool allocation with probability `ppm` per million, from `seed`.
    pub fn fail_pool_randomly(&mut self, ppm: u32, seed: u64) {
        kernel::with(|k| {
            k.pool_faults.rate_ppm = ppm;
            k.pool_faults.seed = seed;
        });
    }

    /// Pool allocations asked for and failed since the last arming.
    #[must_use]
    pub fn pool_fault_counts(&self) -> (u64, u64) {
        kernel::with(|k| (k.pool_faults.attempts, k.pool_faults.failed))
    }

    /// Fail the driver's Rust heap allocation `n` (1-based) from now, or none (crate::heap).
    pub fn fail_heap_allocation(&mut self, n: Option<u64>) {
        crate::heap::fail_allocation(n);
    }

    /// Fail every heap allocation the driver makes from now on, or stop.
    pub fn fail_every_heap_allocation(&mut self, on: bool) {
        crate::heap::fail_every_allocation(on);
    }

    /// The driver's heap allocations asked for and failed since the last arming.
    #[must_use]
    pub fn heap_fault_counts(&self) -> (u64, u64) {
        crate::heap::counts()
    }

    /// Exceptions raised so far.
    #[must_use]
    pub fn exceptions_raised(&self) -> u64 {
        kernel::with(|k| k.raised)
    }
}

fn io_flags(fo: *mut windows_sys::Wdk::Foundation::FILE_OBJECT) -> u32 {
    // SAFETY: a live file object.
    let flags = unsafe { (*fo).Flags };
    if flags & fs_driver::nt::FO_NO_INTERMEDIATE_BUFFERING != 0 {
        fs_driver::nt::IRP_NOCACHE
    } else {
        0
    }
}
