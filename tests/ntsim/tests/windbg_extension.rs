//! The WinDbg extension (windbg/cowfat.js), tested on Linux.
//!
//! 1. Layout: every (type, field) the extension declares in its `LAYOUT` has the same size and
//!    offset in cowfat.pdb (the Windows build, `scripts/build-driver`) and in this host build,
//!    whose memory the snapshots below are made of. A field renamed in the driver fails here
//!    (the host table stops compiling, the PDB loses the name the script reads).
//! 2. Scenarios on ntsim (a mapped file with a late close, an image section, purge-failure
//!    mode, a sealed volume with overlay changes, a dismount, a volume held by another thread,
//!    a section created through a second handle) write a snapshot of the driver's live memory
//!    and the answers expected from the driver's own types, fs-core and the model's state
//!    (held ERESOURCEs, control areas' file objects) to `target/windbg/<scenario>.json`, next
//!    to the PDB's records (`types.json`).
//! 3. `node --test windbg/test` runs every command of the script in a stand-in for WinDbg's
//!    JavaScript host over those files, one test per command per scenario.
//!
//! Needs the package from `scripts/build-driver` (the PDB) and `node` (Debian's nodejs);
//! without them the tests FAIL, as the package tests do.

mod common;
use common::*;

use std::collections::BTreeMap;
use std::mem::offset_of;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, OnceLock};

use driver_image::pdbtypes::PdbTypes;
use fs_driver::debugger::{
    FileOverlayAnchor, OverlayAnchor, RunAnchor, SectionCreators, TraceRecord, TraceRing,
};
use fs_driver::fcb::{Ccb, Fcb, NonPagedFcb};
use fs_driver::global::CfatData;
use fs_driver::section::SectionTracking;
use fs_driver::strucsup::NodeHeader;
use fs_driver::vcb::Vcb;
use ntsim::snapshot;
use serde_json::{json, Value};
use windows_sys::Wdk::Foundation::{ERESOURCE, FILE_OBJECT, OWNER_ENTRY, SECTION_OBJECT_POINTERS};
use windows_sys::Wdk::Storage::FileSystem::{FSRTL_ADVANCED_FCB_HEADER, FSRTL_COMMON_FCB_HEADER};
use windows_sys::Win32::System::Kernel::LIST_ENTRY;

fn root() -> PathBuf {
    driver_image::workspace_root()
}

fn out_dir() -> PathBuf {
    root().join("target/windbg")
}

// ---- the script's LAYOUT -------------------------------------------------------------------

/// `LAYOUT` of windbg/cowfat.js: type name -> the fields the script reads.
fn script_layout() -> BTreeMap<String, Vec<String>> {
    let path = root().join("windbg/cowfat.js");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let begin = text
        .find("// cowfat-layout-begin")
        .expect("layout begin marker");
    let end = text
        .find("// cowfat-layout-end")
        .expect("layout end marker");
    let block = &text[begin..end];
    let open = block.find('{').expect("LAYOUT object");
    let close = block.rfind('}').expect("LAYOUT object end");
    serde_json::from_str(&block[open..=close]).expect("LAYOUT is JSON")
}

// ---- the host build's layout ---------------------------------------------------------------

struct HostType {
    size: usize,
    fields: BTreeMap<&'static str, (usize, usize)>,
}

fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
    size_of::<F>()
}

/// `host_type!(T { a, b })`: T's size, and each field's offset and size, as this build has them.
macro_rules! host_type {
    ($t:ty { $($f:ident),* $(,)? }) => {
        (
            std::any::type_name::<$t>().to_string(),
            HostType {
                size: size_of::<$t>(),
                fields: [$((stringify!($f), (offset_of!($t, $f), field_size(|v: &$t| &v.$f)))),*]
                    .into_iter()
                    .collect(),
            },
        )
    };
}

/// The host build's layout of every field the script may read. Naming a field that the driver
/// renamed stops this from compiling.
fn host_layout() -> BTreeMap<String, HostType> {
    [
        host_type!(CfatData {
            node,
            vcb_list,
            trace
        }),
        host_type!(NodeHeader {
            node_type_code,
            node_byte_size
        }),
        host_type!(TraceRing {
            next,
            capacity,
            records
        }),
        host_type!(TraceRecord {
            sequence,
            kind,
            major,
            minor,
            fcb,
            status,
            thread,
            time
        }),
        host_type!(Vcb {
            header,
            vdo,
            vpb,
            target,
            serial,
            resource,
            volume_lock,
            volume_opens,
            dismounted,
            locked_by,
            overlay,
            volume_links,
            fcb_list
        }),
        host_type!(Fcb {
            header,
            nonpaged,
            vcb,
            id,
            is_directory,
            open_count,
            reference_count,
            delete_pending,
            unlinked,
            purge_failures,
            sections,
            section_creators,
            overlay,
            vcb_links
        }),
        host_type!(OverlayAnchor {
            refreshes,
            sealed,
            total_clusters,
            free_clusters,
            overlay_clusters,
            base_only_clusters,
            reserved_clusters
        }),
        host_type!(FileOverlayAnchor {
            queries,
            flags,
            base_clusters,
            overlay_clusters,
            reserved_clusters,
            run_count,
            runs
        }),
        host_type!(RunAnchor {
            vcn,
            lcn,
            len,
            base
        }),
        host_type!(SectionCreators { data, image }),
        host_type!(NonPagedFcb {
            node,
            section_object_pointers
        }),
        host_type!(Ccb {
            node,
            delete_on_close
        }),
        host_type!(SectionTracking {
            data_sections,
            writable_sections,
            image_sections,
            last_protection,
            purge_failure_mode
        }),
        host_type!(LIST_ENTRY { Flink, Blink }),
        host_type!(SECTION_OBJECT_POINTERS {
            DataSectionObject,
            SharedCacheMap,
            ImageSectionObject
        }),
        host_type!(FILE_OBJECT {
            DeviceObject,
            FsContext,
            FsContext2,
            SectionObjectPointer
        }),
        host_type!(FSRTL_ADVANCED_FCB_HEADER { Base }),
        host_type!(ERESOURCE {
            OwnerTable,
            ActiveCount,
            Anonymous1,
            OwnerEntry,
            ActiveEntries,
            NumberOfSharedWaiters,
            NumberOfExclusiveWaiters
        }),
        host_type!(OWNER_ENTRY {
            OwnerThread,
            Anonymous
        }),
        host_type!(FSRTL_COMMON_FCB_HEADER {
            NodeTypeCode,
            Resource,
            PagingIoResource,
            AllocationSize,
            FileSize,
            ValidDataLength
        }),
    ]
    .into_iter()
    .collect()
}

// ---- the PDB -------------------------------------------------------------------------------

fn pdb() -> &'static PdbTypes {
    static PDB: OnceLock<PdbTypes> = OnceLock::new();
    PDB.get_or_init(|| {
        let path = driver_image::package_dir().join("cowfat.pdb");
        PdbTypes::read(&path).unwrap_or_else(|e| {
            panic!("{e}: the layout and extension tests need the package (scripts/build-driver)")
        })
    })
}

/// Every difference between the PDB, the host build and the script's LAYOUT.
fn layout_problems() -> Vec<String> {
    let pdb = pdb();
    let host = host_layout();
    let mut problems = Vec::new();
    for (type_name, fields) in script_layout() {
        let Some(h) = host.get(&type_name) else {
            problems.push(format!(
                "{type_name}: no host layout (add it to host_layout())"
            ));
            continue;
        };
        let Some(p) = pdb.types.get(&type_name) else {
            problems.push(format!("{type_name}: not in cowfat.pdb"));
            continue;
        };
        if p.size != h.size as u64 {
            problems.push(format!(
                "{type_name}: size {} in the PDB, {} here",
                p.size, h.size
            ));
        }
        for field in fields {
            let Some(&(offset, size)) = h.fields.get(field.as_str()) else {
                problems.push(format!("{type_name}.{field}: no host layout"));
                continue;
            };
            let Some(pf) = p.fields.iter().find(|f| f.name == field) else {
                problems.push(format!("{type_name}.{field}: not in cowfat.pdb (renamed?)"));
                continue;
            };
            if (pf.offset, pf.size) != (offset as u64, size as u64) {
                problems.push(format!(
                    "{type_name}.{field}: offset {} size {} in the PDB, offset {offset} size {size} here",
                    pf.offset, pf.size
                ));
            }
        }
    }
    if pdb
        .globals
        .get("fs_driver::global::CFAT_DATA")
        .map(String::as_str)
        != Some("fs_driver::global::CfatData")
    {
        problems.push("CFAT_DATA is not a typed global of type CfatData in the PDB".into());
    }
    problems
}

/// Runs `f` on a thread with an ordinary stack: reading the PDB and writing the snapshots'
/// JSON are test tooling, not driver code, and need more than ntsim's 32 KiB test threads.
fn on_big_stack<R: Send + 'static>(f: impl FnOnce() -> R + Send + 'static) -> R {
    std::thread::Builder::new()
        .stack_size(16 << 20)
        .spawn(f)
        .expect("spawn")
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
}

#[test]
fn every_field_the_extension_reads_has_one_layout_in_the_pdb_and_the_host_build() {
    let problems = on_big_stack(layout_problems);
    assert!(
        problems.is_empty(),
        "layout differences:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_pdb_embeds_cowfats_natvis_and_cores() {
    let path = driver_image::package_dir().join("cowfat.pdb");
    let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let has = |needle: &str| bytes.windows(needle.len()).any(|w| w == needle.as_bytes());
    assert!(
        has("<Type Name=\"fs_driver::strucsup::Counter\">"),
        "windbg/cowfat.natvis is not in {}",
        path.display()
    );
    assert!(
        has("<Type Name=\"core::sync::atomic::Atomic&lt;u32&gt;\">"),
        "core's natvis (rust-web-src, build.rs) is not in {}",
        path.display()
    );
}

/// The PDB's records of the script's types, for the stand-in host's `getModuleType`.
fn write_types() {
    let pdb = pdb();
    let mut types = serde_json::Map::new();
    for type_name in script_layout().keys() {
        if let Some(t) = pdb.types.get(type_name) {
            let fields: Vec<Value> = t
                .fields
                .iter()
                .map(|f| json!({"name": f.name, "offset": f.offset, "size": f.size, "type": f.type_name}))
                .collect();
            types.insert(type_name.clone(), json!({"size": t.size, "fields": fields}));
        }
    }
    let globals: serde_json::Map<String, Value> = pdb
        .globals
        .iter()
        .filter(|(name, _)| name.starts_with("fs_driver::"))
        .map(|(n, t)| (n.clone(), json!(t)))
        .collect();
    write_json(
        &out_dir().join("types.json"),
        &json!({"types": types, "globals": globals}),
    );
}

fn write_json(path: &Path, value: &Value) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("create target/windbg");
    std::fs::write(path, serde_json::to_vec_pretty(value).expect("json")).expect("write json");
}

// ---- snapshots -----------------------------------------------------------------------------

fn hex(v: usize) -> String {
    format!("{v:#x}")
}

fn summary_name(summary: u32) -> &'static str {
    match summary {
        cowfat_fsctl::SUMMARY_NOT_MAPPED => "not mapped",
        cowfat_fsctl::SUMMARY_CACHED_ONLY => "cached only",
        cowfat_fsctl::SUMMARY_MAYBE_MAPPED => "maybe mapped",
        cowfat_fsctl::SUMMARY_MAPPED_READ_ONLY => "mapped read-only",
        _ => "mapped writable",
    }
}

/// The FCB (the file object's FsContext) behind a handle, as the debugger snapshot sees it.
fn fcb_of(sim: &mut Sim, h: Handle) -> usize {
    let fo = sim.fo_address(h);
    snapshot::file_objects()
        .into_iter()
        .find(|f| f.address == fo)
        .expect("file object")
        .fs_context
}

/// What `!cfmapped` must say of a handle's stream: the driver's own FSCTL answer (no probe).
fn mapped_expectation(sim: &mut Sim, h: Handle) -> Value {
    let fcb = fcb_of(sim, h);
    let st = sim.mapped_state(h, false).expect("mapped state");
    assert_eq!(
        st.writable_user_references.get(),
        0,
        "scenarios map read-only for !cfmapped"
    );
    json!({
        "fcb": hex(fcb),
        "flags": st.flags.get(),
        "summary": summary_name(st.summary.get()),
        "dataSections": st.data_sections.get(),
        "writableSections": st.writable_sections.get(),
        "imageSections": st.image_sections.get(),
        "purgeFailureMode": st.purge_failure_mode.get(),
        "purgeFailures": st.purge_failures.get(),
    })
}

/// What `!cfoverlay` must say of a handle's file: the driver's FSCTL_COWFAT_QUERY_OVERLAY
/// answer (the query is what loads it).
fn overlay_expectation(sim: &mut Sim, h: Handle) -> Value {
    let fcb = fcb_of(sim, h);
    let st = sim.overlay_state(h).expect("overlay state");
    // The runs from fs-core itself, on a system thread under the volume lock.
    // SAFETY: the open file's live FCB.
    let fcb_ref = unsafe { &*(fcb as *const Fcb) };
    // SAFETY: an FCB's VCB outlives it.
    let vcb = unsafe { &*fcb_ref.vcb };
    let id = fcb_ref.id;
    let mut runs = [fs_core::OverlayRun::default(); fs_driver::debugger::OVERLAY_RUNS];
    let n = ntsim::mm::as_thread(3, || vcb.with_volume(|v| v.overlay_runs(id, &mut runs)))
        .expect("overlay runs");
    let runs: Vec<Value> = runs[..n]
        .iter()
        .map(|r| json!({"vcn": r.vcn, "lcn": r.lcn, "length": r.len, "base": r.base}))
        .collect();
    json!({
        "runs": runs,
        "fcb": hex(fcb),
        "flags": st.flags.get(),
        "baseClusters": st.base_clusters.get(),
        "overlayClusters": st.overlay_clusters.get(),
        "reservedClusters": st.reserved_clusters.get(),
    })
}

/// The snapshot and the expected answers of the current state.
fn take_snapshot(sim: &Sim, name: &str, mapped: Vec<Value>) {
    take_snapshot_with(sim, name, mapped, Vec::new());
}

/// [`take_snapshot`] with the files whose overlay state a query loaded.
fn take_snapshot_with(sim: &Sim, name: &str, mapped: Vec<Value>, overlays: Vec<Value>) {
    // The bytes first: the facts below go through the volume lock (fs-core's figures), and
    // the debugger must have seen them without that help.
    let memory = snapshot::memory();
    let fcbs = snapshot::fcbs();
    let vcbs = snapshot::vcbs();
    let fos = snapshot::file_objects();
    let ring = snapshot::trace_ring();

    // The ring's IRP records are the file system's completions, in order (ntsim's trace).
    let completions: Vec<(u8, i32)> = sim
        .trace()
        .iter()
        .filter_map(|e| match e {
            Event::Completed { major, status, .. } => Some((*major, *status)),
            _ => None,
        })
        .collect();
    let irps: Vec<(u8, i32)> = ring
        .iter()
        .filter(|r| r.kind == fs_driver::debugger::trace_kind::IRP)
        .map(|r| (r.major, r.status))
        .collect();
    if completions.len() >= irps.len() {
        assert_eq!(
            irps,
            completions[completions.len() - irps.len()..],
            "{name}: the trace ring's IRPs differ from the completions ntsim saw"
        );
    }

    let fcb_json: Vec<Value> = fcbs
        .iter()
        .map(|f| {
            json!({
                "address": hex(f.address), "id": f.id, "vcb": hex(f.vcb),
                "openCount": f.open_count, "referenceCount": f.reference_count,
                "fileSize": f.file_size, "validDataLength": f.valid_data_length,
                "dataSectionObject": hex(f.data_section_object),
                "sharedCacheMap": hex(f.shared_cache_map),
                "imageSectionObject": hex(f.image_section_object),
                "dataSections": f.data_sections, "writableSections": f.writable_sections,
                "imageSections": f.image_sections, "purgeFailureMode": f.purge_failure_mode,
                "purgeFailures": f.purge_failures, "deletePending": f.delete_pending,
            })
        })
        .collect();
    // Cleanup done, close owed: who holds the stream, from the model's state.
    let whyclose: Vec<Value> = fcbs
        .iter()
        .filter(|f| f.open_count == 0 && f.reference_count > 0)
        .map(|f| {
            let mut holders = Vec::new();
            if f.model_data_section {
                holders.push("Mm data section");
            }
            if f.model_image_section {
                holders.push("Mm image section");
            }
            if f.shared_cache_map != 0 {
                holders.push("Cc cache map");
            }
            // Seed 003: the control areas and the file objects they reference, from the model.
            let mut control_areas = Vec::new();
            if let Some(fo) = f.model_data_file_object {
                control_areas.push(json!({"kind": "data", "controlArea": hex(f.data_section_object), "fileObject": hex(fo)}));
            }
            if let Some(fo) = f.model_image_file_object {
                control_areas.push(json!({"kind": "image", "controlArea": hex(f.image_section_object), "fileObject": hex(fo)}));
            }
            json!({"fcb": hex(f.address), "cleanupDone": true, "handles": 0,
                   "closesOwed": f.reference_count, "holderKinds": holders,
                   "controlAreas": control_areas})
        })
        .collect();
    let fcb_addresses: Vec<usize> = fcbs.iter().map(|f| f.address).collect();
    let vcb_addresses: Vec<usize> = vcbs.iter().map(|v| v.address).collect();
    let fo_json: Vec<Value> = fos
        .iter()
        .filter(|f| f.opened)
        .map(|f| {
            let kind = if fcb_addresses.contains(&f.fs_context) {
                "file"
            } else if vcb_addresses.contains(&f.fs_context) {
                "volume"
            } else {
                "not cowfat's"
            };
            json!({"address": hex(f.address), "fsContext": hex(f.fs_context),
                   "fsContext2": hex(f.fs_context2), "kind": kind,
                   "handles": f.handles, "refs": f.refs})
        })
        .collect();
    let vcb_json: Vec<Value> = vcbs
        .iter()
        .map(|v| {
            let overlay = v.overlay.map(|o| {
                json!({"sealed": o.sealed, "totalClusters": o.total_clusters,
                       "freeClusters": o.free_clusters, "overlayClusters": o.overlay_clusters,
                       "baseOnlyClusters": o.base_only_clusters,
                       "reservedClusters": o.reserved_clusters})
            });
            json!({"address": hex(v.address), "vdo": hex(v.vdo), "serial": format!("{:#x}", v.serial),
                   "volumeOpens": v.volume_opens, "dismounted": v.dismounted, "fcbs": v.fcbs,
                   "overlay": overlay})
        })
        .collect();
    let trace_json: Vec<Value> = ring
        .iter()
        .map(|r| {
            json!({"sequence": r.sequence, "kind": r.kind, "major": r.major, "minor": r.minor,
                   "fcb": hex(r.fcb), "status": format!("{:#010x}", r.status as u32),
                   "thread": hex(r.thread), "time": r.time})
        })
        .collect();
    // Held resources, from ntsim's ownership records (!cflocks reads the ERESOURCEs' fields).
    let locks: Vec<Value> = snapshot::held_resources()
        .iter()
        .map(|r| {
            json!({"resource": hex(r.address), "exclusive": r.exclusive, "owners": r.owners,
                   "ownerThread": hex(r.owner_thread), "ownerCount": r.owner_count})
        })
        .collect();
    let mut pool = BTreeMap::<String, u32>::new();
    for r in &memory {
        if let Some(tag) = r.what.strip_prefix("pool ") {
            *pool.entry(tag.to_string()).or_default() += 1;
        }
    }
    let ranges: Vec<Value> = memory
        .into_iter()
        .map(|r| {
            let bytes: String = r.bytes.iter().map(|b| format!("{b:02x}")).collect();
            json!({"address": hex(r.address), "what": r.what, "bytes": bytes})
        })
        .collect();
    let cfat_data = std::ptr::from_ref(&fs_driver::global::CFAT_DATA) as usize;
    let value = json!({
        "scenario": name,
        "symbols": {"fs_driver::global::CFAT_DATA": hex(cfat_data)},
        "ranges": ranges,
        "expected": {
            "vcbs": vcb_json, "fcbs": fcb_json, "fileObjects": fo_json,
            "whyclose": whyclose, "mapped": mapped, "trace": trace_json, "pool": pool,
            "locks": locks, "overlays": overlays,
        },
    });
    write_json(&out_dir().join(format!("{name}.json")), &value);
}

/// Writes `content` to a new file `path`, closes it, and opens it again for reading.
fn written_then_read(sim: &mut Sim, path: &str, content: &[u8]) -> Handle {
    let w = open_rw(sim, path);
    sim.write(w, Some(0), content).expect("write");
    sim.close(w);
    reader(sim, path)
}

fn reader(sim: &mut Sim, path: &str) -> Handle {
    sim.create(
        path,
        &Open::new(access::GENERIC_READ)
            .share(share::ALL)
            .disposition(disposition::FILE_OPEN),
    )
    .expect("reader")
}

/// Seed 000: notepad maps the file and closes its handle; the view (and Mm's file object)
/// stays, so IRP_MJ_CLOSE is owed. A second reader stays open for !cfmapped.
fn scenario_late_close() {
    let mut sim = Sim::new();
    let h = written_then_read(&mut sim, "\\notes.txt", b"hello notepad");
    let s = sim.create_section(h, false).expect("section");
    let _view = sim.map_view(s, 0, 0).expect("view");
    sim.close_section(s);
    sim.close(h);
    let other = open_rw(&mut sim, "\\other.txt");
    let mapped = vec![mapped_expectation(&mut sim, other)];
    take_snapshot(&sim, "late_close", mapped);
}

/// A mapped file whose handle is still open (read-only view), for !cfmapped's "maybe mapped".
fn scenario_mapped_file() {
    let mut sim = Sim::new();
    let h = written_then_read(&mut sim, "\\data.bin", &filled(0x5a, 8192));
    let s = sim.create_section(h, false).expect("section");
    let _view = sim.map_view(s, 0, 0).expect("view");
    let mapped = vec![mapped_expectation(&mut sim, h)];
    take_snapshot(&sim, "mapped_file", mapped);
}

/// An image section: the image's control area holds a file object after the handle closed.
fn scenario_image_section() {
    let mut sim = Sim::new();
    let h = written_then_read(&mut sim, "\\tool.exe", &filled(0x4d, 4096));
    let s = sim.create_image_section(h).expect("image section");
    let mapped = vec![mapped_expectation(&mut sim, h)];
    sim.close_section(s);
    sim.close(h);
    take_snapshot(&sim, "image_section", mapped);
}

/// Purge-failure mode on a stream with a user view: the probe's purge fails and is counted.
fn scenario_purge_failure_mode() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\scan.dat");
    sim.write(h, Some(0), &filled(0x11, 4096)).expect("write");
    assert_eq!(
        sim.set_purge_failure_mode(h, true),
        0,
        "purge-failure mode on"
    );
    let s = sim.create_section(h, false).expect("section");
    let _view = sim.map_view(s, 0, 0).expect("view");
    let _ = sim.mapped_state(h, true).expect("probe");
    let mapped = vec![mapped_expectation(&mut sim, h)];
    take_snapshot(&sim, "purge_failure_mode", mapped);
}

fn sealed_volume_with(path: &str, content: &[u8]) -> fs_core::MemDevice {
    use fs_core::time::{FixedClock, NtTime};
    use fs_core::{FileAttributes, FileKind, MountOptions, Name, Volume};
    let medium = ntsim::api::formatted(16 << 20);
    let clock = Box::new(FixedClock(NtTime(0)));
    let mut volume = Volume::mount(medium, MountOptions::new(clock)).expect("mount");
    let root = volume.root().expect("root");
    let name = Name::from_str(path.trim_start_matches('\\')).expect("name");
    let id = volume
        .create(root, &name, FileKind::File, FileAttributes::empty())
        .expect("create");
    volume.write(id, 0, content).expect("write");
    volume.seal().expect("seal");
    volume.unmount().expect("unmount")
}

/// A sealed volume with overlay changes to an open file, flushed, its overlay state queried
/// (loaded; no FCB of the other scenarios was queried, so theirs say "not loaded").
fn scenario_sealed_overlay() {
    let mut sim = Sim::with_medium(sealed_volume_with("\\seed.txt", &filled(0x61, 8192)));
    let h = open_rw(&mut sim, "\\seed.txt");
    sim.write(h, Some(0), b"bbbbbbbb").expect("overlay write");
    assert_eq!(sim.flush(h), 0, "flush");
    let mapped = vec![mapped_expectation(&mut sim, h)];
    let overlays = vec![overlay_expectation(&mut sim, h)];
    take_snapshot_with(&sim, "sealed_overlay", mapped, overlays);
}

/// Seed 003: which file object does the data section's control area hold? The first handle
/// opens the file and stays uncached; a second handle creates the section and maps it, then
/// both handles close. The control area keeps the second handle's file object, whose
/// IRP_MJ_CLOSE is owed; the first one's close came at once.
fn scenario_section_creator() {
    // The content comes with the disk: no cached write makes Cc create the section first.
    let mut sim = Sim::with_medium(sealed_volume_with("\\shared.dll", &filled(0x33, 4096)));
    let first = reader(&mut sim, "\\shared.dll");
    let second = reader(&mut sim, "\\shared.dll");
    let s = sim.create_section(second, false).expect("section");
    let _view = sim.map_view(s, 0, 0).expect("view");
    let mapped = vec![mapped_expectation(&mut sim, first)];
    sim.close_section(s);
    sim.close(second);
    sim.close(first);
    take_snapshot(&sim, "section_creator", mapped);
}

/// A dismount with a file still open: the VCB stays, dismounted, until its last close.
fn scenario_dismount() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\open.txt");
    sim.write(h, Some(0), b"still open").expect("write");
    assert_eq!(sim.dismount(), 0, "dismount");
    // No FSCTL reaches a dismounted volume: !cfmapped is checked against the FCB's facts.
    take_snapshot(&sim, "dismount", Vec::new());
    sim.close(h);
}

/// Seed-style hang: another thread holds the VCB resource exclusive (a create waits behind it)
/// while a third holds a file's main resource shared, as Cc's lazy writer would.
fn scenario_volume_held() {
    let mut sim = Sim::new();
    let h = open_rw(&mut sim, "\\busy.txt");
    sim.write(h, Some(0), b"busy").expect("write");
    let fcb = fcb_of(&mut sim, h);
    // The FSCTL behind !cfmapped's answer needs the resources: ask before they are taken.
    let mapped = vec![mapped_expectation(&mut sim, h)];
    // SAFETY: the open file's live FCB.
    let fcb = unsafe { &*(fcb as *const Fcb) };
    // SAFETY: its header, read on this thread while no request runs; `Resource` is the main
    // resource.
    let main = unsafe { (*fcb.header.get()).Base.Resource };
    assert!(ntsim::mm::as_thread(2, || {
        ntsim::ex::ExAcquireResourceSharedLite(main, false)
    }));
    sim.hold_volume_exclusive(1);
    take_snapshot(&sim, "volume_held", mapped);
    sim.release_volume();
    ntsim::mm::as_thread(2, || ntsim::ex::ExReleaseResourceLite(main));
    sim.close(h);
}

/// Runs every scenario once per test binary.
fn generate() {
    static DONE: Mutex<bool> = Mutex::new(false);
    let mut done = DONE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if *done {
        return;
    }
    write_types();
    scenario_late_close();
    scenario_mapped_file();
    scenario_image_section();
    scenario_purge_failure_mode();
    scenario_sealed_overlay();
    scenario_dismount();
    scenario_volume_held();
    scenario_section_creator();
    *done = true;
}

#[test]
fn the_extension_answers_like_the_driver_in_every_scenario() {
    on_big_stack(generate);
    let node = std::env::var("COWFAT_NODE").unwrap_or_else(|_| "node".into());
    let output = Command::new(&node)
        .arg("--test")
        .arg(root().join("windbg/test/cowfat.test.js"))
        .env("COWFAT_WINDBG_DATA", out_dir())
        .output()
        .unwrap_or_else(|e| panic!("{node}: {e} (scripts/test installs Debian's nodejs)"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "node --test windbg/test failed:\n{stdout}\n{stderr}"
    );
    // One test per command (10) per scenario (8), plus the checks of the stand-in itself.
    let passed = stdout
        .lines()
        .find_map(|l| l.strip_prefix("# pass "))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    assert!(
        passed >= 8 * 10,
        "only {passed} node tests passed:\n{stdout}"
    );
}
