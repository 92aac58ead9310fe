//! A memory snapshot of the driver's live structures, for the WinDbg extension's stand-in host
//! (windbg/test): the bytes at their real addresses of `CFAT_DATA`, every pool block the
//! driver allocated, every device object with its extension (the VCBs) and every file object,
//! plus the facts a debugger session would be checked against, read through the driver's own
//! types and the model's state (never through the debugger anchors the extension walks).
#![allow(unsafe_code)]

use fs_driver::fcb::Fcb;
use fs_driver::global::CFAT_DATA;
use fs_driver::strucsup::tags;
use fs_driver::vcb::Vcb;
use windows_sys::Wdk::Foundation::{DEVICE_OBJECT, FILE_OBJECT};

use crate::kernel;

/// Bytes of memory at an address.
#[derive(Clone, Debug)]
pub struct Range {
    /// Where they live.
    pub address: usize,
    /// What they are (pool tag, `DEVICE_OBJECT`, ...), for a reader of the snapshot.
    pub what: String,
    /// Their contents.
    pub bytes: Vec<u8>,
}

/// Copies `len` bytes at `address`.
///
/// # Safety
/// The range is live, initialised memory of the model or the driver.
unsafe fn copy(address: usize, len: usize) -> Vec<u8> {
    // SAFETY: the caller's contract.
    unsafe { std::slice::from_raw_parts(address as *const u8, len) }.to_vec()
}

/// Every range the extension may read, as it is now.
#[must_use]
pub fn memory() -> Vec<Range> {
    let mut ranges = vec![Range {
        address: std::ptr::from_ref(&CFAT_DATA) as usize,
        what: "CFAT_DATA".into(),
        // SAFETY: a live static.
        bytes: unsafe {
            copy(
                std::ptr::from_ref(&CFAT_DATA) as usize,
                size_of_val(&CFAT_DATA),
            )
        },
    }];
    kernel::with(|k| {
        for (&address, block) in &k.pool {
            let tag = String::from_utf8_lossy(&block.tag.to_le_bytes()).into_owned();
            ranges.push(Range {
                address,
                what: format!("pool {tag}"),
                // SAFETY: a live pool block of `size` bytes (pool is initialised or 0xCD-filled).
                bytes: unsafe { copy(address, block.size) },
            });
        }
        for (&device, record) in &k.devices {
            if record.deleted {
                continue;
            }
            ranges.push(Range {
                address: device as usize,
                what: "DEVICE_OBJECT".into(),
                // SAFETY: a live device object.
                bytes: unsafe { copy(device as usize, size_of::<DEVICE_OBJECT>()) },
            });
            if let Some(extension) = &record.extension {
                ranges.push(Range {
                    address: extension.as_ptr() as usize,
                    what: "device extension".into(),
                    // SAFETY: the live extension allocation.
                    bytes: unsafe { copy(extension.as_ptr() as usize, size_of_val(&**extension)) },
                });
            }
        }
        for &fo in k.file_objects.keys() {
            ranges.push(Range {
                address: fo as usize,
                what: "FILE_OBJECT".into(),
                // SAFETY: a live file object.
                bytes: unsafe { copy(fo as usize, size_of::<FILE_OBJECT>()) },
            });
        }
    });
    ranges
}

/// An FCB as the driver sees it.
#[derive(Clone, Debug)]
pub struct FcbFacts {
    /// Its address.
    pub address: usize,
    /// Its VCB.
    pub vcb: usize,
    /// fs-core's file id.
    pub id: u64,
    /// A directory.
    pub is_directory: bool,
    /// Handles open.
    pub open_count: u32,
    /// File objects pointing at it.
    pub reference_count: u32,
    /// `FileSize` of its header.
    pub file_size: u64,
    /// `ValidDataLength` of its header.
    pub valid_data_length: u64,
    /// The section object pointers' three fields.
    pub data_section_object: usize,
    /// `SharedCacheMap`.
    pub shared_cache_map: usize,
    /// `ImageSectionObject`.
    pub image_section_object: usize,
    /// Section tracking: data, writable and image sections counted, purge-failure mode.
    pub data_sections: u32,
    /// Writable sections counted.
    pub writable_sections: u32,
    /// Image sections counted.
    pub image_sections: u32,
    /// Purge-failure mode count.
    pub purge_failure_mode: u32,
    /// Purges that failed.
    pub purge_failures: u32,
    /// Delete pending.
    pub delete_pending: bool,
    /// The model holds a data control area for its SOP (Mm's reference on a file object).
    pub model_data_section: bool,
    /// The model holds an image section for its SOP.
    pub model_image_section: bool,
    /// The file object the model's data control area references (Mm's, seed 003).
    pub model_data_file_object: Option<usize>,
    /// The file object the model's image section references.
    pub model_image_file_object: Option<usize>,
}

/// Every live FCB (pool blocks under the FCB tag), read through the driver's types.
#[must_use]
pub fn fcbs() -> Vec<FcbFacts> {
    let blocks: Vec<usize> = kernel::with(|k| {
        k.pool
            .iter()
            .filter(|(_, b)| b.tag == tags::TAG_FCB)
            .map(|(&a, _)| a)
            .collect()
    });
    blocks
        .into_iter()
        .map(|address| {
            // SAFETY: a live FCB pool block.
            let fcb = unsafe { &*(address as *const Fcb) };
            let sop = fcb.section_object_pointers();
            // SAFETY: the FCB's non-paged SOP.
            let s = unsafe { &*sop };
            let (model_data_file_object, model_image_file_object) = kernel::with(|k| {
                (
                    k.control_areas.get(&sop).map(|c| c.file_object as usize),
                    k.images.get(&sop).map(|i| i.file_object as usize),
                )
            });
            let model_data_section = model_data_file_object.is_some();
            let model_image_section = model_image_file_object.is_some();
            FcbFacts {
                address,
                vcb: fcb.vcb as usize,
                id: fcb.id.0,
                is_directory: fcb.is_directory,
                open_count: fcb.open_count.get(),
                reference_count: fcb.reference_count.get(),
                file_size: fcb.file_size(),
                valid_data_length: fcb.valid_data_length(),
                data_section_object: s.DataSectionObject as usize,
                shared_cache_map: s.SharedCacheMap as usize,
                image_section_object: s.ImageSectionObject as usize,
                data_sections: fcb.sections.data_sections.get(),
                writable_sections: fcb.sections.writable_sections.get(),
                image_sections: fcb.sections.image_sections.get(),
                purge_failure_mode: fcb.sections.purge_failure_mode.get(),
                purge_failures: fcb.purge_failures.get(),
                delete_pending: fcb.delete_pending.get(),
                model_data_section,
                model_image_section,
                model_data_file_object,
                model_image_file_object,
            }
        })
        .collect()
}

/// A VCB as the driver sees it.
#[derive(Clone, Debug)]
pub struct VcbFacts {
    /// Its address (the volume device's extension).
    pub address: usize,
    /// The volume device object.
    pub vdo: usize,
    /// Serial number.
    pub serial: u64,
    /// Volume opens not yet closed.
    pub volume_opens: u32,
    /// Dismounted.
    pub dismounted: bool,
    /// FCBs in the pool that name this VCB.
    pub fcbs: usize,
    /// fs-core's overlay figures now (None once dismounted), asked through the volume lock on
    /// a system thread.
    pub overlay: Option<fs_core::OverlaySummary>,
}

/// Every VCB: the extensions of the model's live volume devices that hold one.
#[must_use]
pub fn vcbs() -> Vec<VcbFacts> {
    let control = CFAT_DATA.control_device() as usize;
    let extensions: Vec<(usize, usize)> = kernel::with(|k| {
        k.devices
            .iter()
            .filter(|(&d, r)| !r.deleted && d as usize != control && r.extension.is_some())
            .filter(|(_, r)| std::ptr::eq(r.driver, CFAT_DATA.driver_object()))
            // SAFETY: a live device object.
            .map(|(&d, _)| (d as usize, unsafe { (*d).DeviceExtension } as usize))
            .collect()
    });
    let fcbs = fcbs();
    extensions
        .into_iter()
        .map(|(vdo, address)| {
            // SAFETY: the extension of one of our volume devices holds its VCB.
            let vcb = unsafe { &*(address as *const Vcb) };
            VcbFacts {
                address,
                vdo,
                serial: vcb.serial,
                volume_opens: vcb.volume_opens.get(),
                dismounted: vcb.dismounted.get(),
                fcbs: fcbs.iter().filter(|f| f.vcb == address).count(),
                overlay: crate::mm::as_thread(3, || {
                    vcb.with_volume(|v| Ok(v.overlay_summary())).ok()
                }),
            }
        })
        .collect()
}

/// A file object as the model and the driver see it.
#[derive(Clone, Debug)]
pub struct FileObjectFacts {
    /// Its address.
    pub address: usize,
    /// `FsContext`.
    pub fs_context: usize,
    /// `FsContext2`.
    pub fs_context2: usize,
    /// Handles to it.
    pub handles: u32,
    /// Object references.
    pub refs: u32,
    /// Create succeeded (cleanup and close are owed to the file system).
    pub opened: bool,
}

/// Every live file object.
#[must_use]
pub fn file_objects() -> Vec<FileObjectFacts> {
    kernel::with(|k| {
        k.file_objects
            .iter()
            .map(|(&fo, r)| {
                // SAFETY: a live file object.
                let f = unsafe { &*fo };
                FileObjectFacts {
                    address: fo as usize,
                    fs_context: f.FsContext as usize,
                    fs_context2: f.FsContext2 as usize,
                    handles: r.handles,
                    refs: r.refs,
                    opened: r.opened,
                }
            })
            .collect()
    })
}

/// One record of the driver's trace ring.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RingRecord {
    /// Index plus one.
    pub sequence: u32,
    /// Record kind.
    pub kind: u8,
    /// Major (or filter operation).
    pub major: u8,
    /// Minor (or callback id).
    pub minor: u8,
    /// `FsContext`.
    pub fcb: usize,
    /// Status.
    pub status: i32,
    /// Thread id.
    pub thread: usize,
    /// Interrupt time.
    pub time: u64,
}

/// The ring's complete records, oldest first, through the driver's own type.
#[must_use]
pub fn trace_ring() -> Vec<RingRecord> {
    use std::sync::atomic::Ordering::Acquire;
    let mut records: Vec<RingRecord> = CFAT_DATA
        .trace
        .records
        .iter()
        .filter(|r| r.sequence.load(Acquire) != 0)
        .map(|r| RingRecord {
            sequence: r.sequence.load(Acquire),
            kind: r.kind.load(Acquire),
            major: r.major.load(Acquire),
            minor: r.minor.load(Acquire),
            fcb: r.fcb.load(Acquire) as usize,
            status: r.status.load(Acquire),
            thread: r.thread.load(Acquire),
            time: r.time.load(Acquire),
        })
        .collect();
    records.sort_by_key(|r| r.sequence);
    records
}

/// `SECTION_OBJECT_POINTERS` of a file object (NULL if none).
#[must_use]
pub fn section_object_pointers(fo: usize) -> usize {
    // SAFETY: the caller passes a live file object of the model.
    unsafe { (*(fo as *const FILE_OBJECT)).SectionObjectPointer as usize }
}

/// A held ERESOURCE as ntsim's ownership records have it (not its published fields, which are
/// what the extension reads).
#[derive(Clone, Debug)]
pub struct ResourceFacts {
    /// The ERESOURCE's address.
    pub address: usize,
    /// Held exclusive.
    pub exclusive: bool,
    /// Threads holding it.
    pub owners: usize,
    /// The owner `OwnerEntry` names (exclusive owner, or the first shared one), as a resource
    /// thread value.
    pub owner_thread: usize,
    /// That owner's recursion count.
    pub owner_count: u32,
}

/// Every ERESOURCE held now.
#[must_use]
pub fn held_resources() -> Vec<ResourceFacts> {
    kernel::with(|k| {
        k.resources
            .iter()
            .filter_map(|(&address, s)| {
                let owners = usize::from(s.exclusive.is_some()) + s.shared.len();
                if owners == 0 {
                    return None;
                }
                // OwnerEntry is empty when its shared owner left before the others (they are
                // in the owner table, which ntsim does not model).
                let (owner_thread, owner_count) = match (s.exclusive, s.first_shared) {
                    (Some((t, n)), _) => (crate::ex::resource_thread(t), n),
                    (None, Some(t)) => (
                        crate::ex::resource_thread(t),
                        s.shared.get(&t).copied().unwrap_or(0),
                    ),
                    (None, None) => (0, 0),
                };
                Some(ResourceFacts {
                    address,
                    exclusive: s.exclusive.is_some(),
                    owners,
                    owner_thread,
                    owner_count,
                })
            })
            .collect()
    })
}
