"use strict";
// cowfat.js - WinDbg JavaScript extension for cowfat.sys (README.md, "Debugging").
//
//   .scriptload C:\path\to\windbg\cowfat.js
//   !cfvcbs                 mounted volumes
//   !cffcbs [vcb]           FCBs of every volume (or one)
//   !cffcb <fcb>            one FCB and its non-paged part
//   !cffo <file object>     file object -> FCB/VCB and CCB
//   !cfwhyclose <fcb|fo>    cleanup done, close owed: who still holds a reference, and the
//                           file object each control area holds (seeds 000 and 003)
//   !cfmapped <fcb>         the mapped-state facts as the driver computes them
//   !cfoverlay <fcb>        base vs overlay clusters of a file, as far as the driver loaded them
//   !cftrace [n]            the last n records of the driver's trace ring
//   !cfpool                 cowfat's pool tags, with the structure counts to expect
//   !cflocks                the VCB and FCB resources held now, by whom
//
// It reads memory only through the driver's debugger anchors (CFAT_DATA's VCB chain, each
// VCB's FCB chain, the trace ring: fs-driver/src/debugger.rs) and the PDB's type records, and
// uses this subset of the JsProvider host API, so the stand-in host in windbg/test can run it
// on Linux: initializeScript, host.functionAlias, host.typeSignatureRegistration,
// host.getModuleType (.size, .fields[name].offset, .fields[name].type.size),
// host.getModuleSymbolAddress, host.memory.readMemoryValues, host.parseInt64,
// host.diagnostics.debugLog.
//
// Every (type, field) the script reads is listed in LAYOUT; `field()` refuses anything else.
// The layout test (tests/ntsim/tests/windbg_extension.rs) checks each entry against the PDB
// and the host build, so a renamed or moved field fails there, not in a debugging session.

// cowfat-layout-begin
const LAYOUT = {
    "fs_driver::global::CfatData": ["node", "vcb_list", "trace"],
    "fs_driver::strucsup::NodeHeader": ["node_type_code", "node_byte_size"],
    "fs_driver::debugger::TraceRing": ["next", "capacity", "records"],
    "fs_driver::debugger::TraceRecord": ["sequence", "kind", "major", "minor", "fcb", "status", "thread", "time"],
    "fs_driver::vcb::Vcb": ["header", "vdo", "vpb", "target", "serial", "resource", "volume_lock", "volume_opens", "dismounted", "locked_by", "overlay", "volume_links", "fcb_list"],
    "fs_driver::fcb::Fcb": ["header", "nonpaged", "vcb", "id", "is_directory", "open_count", "reference_count", "delete_pending", "unlinked", "purge_failures", "sections", "section_creators", "overlay", "vcb_links"],
    "fs_driver::debugger::OverlayAnchor": ["refreshes", "sealed", "total_clusters", "free_clusters", "overlay_clusters", "base_only_clusters", "reserved_clusters"],
    "fs_driver::debugger::FileOverlayAnchor": ["queries", "flags", "base_clusters", "overlay_clusters", "reserved_clusters", "run_count", "runs"],
    "fs_driver::debugger::RunAnchor": ["vcn", "lcn", "len", "base"],
    "fs_driver::debugger::SectionCreators": ["data", "image"],
    "fs_driver::fcb::NonPagedFcb": ["node", "section_object_pointers"],
    "fs_driver::fcb::Ccb": ["node", "delete_on_close"],
    "fs_driver::section::SectionTracking": ["data_sections", "writable_sections", "image_sections", "last_protection", "purge_failure_mode"],
    "windows_sys::Win32::System::Kernel::LIST_ENTRY": ["Flink", "Blink"],
    "windows_sys::Wdk::Foundation::SECTION_OBJECT_POINTERS": ["DataSectionObject", "SharedCacheMap", "ImageSectionObject"],
    "windows_sys::Wdk::Foundation::FILE_OBJECT": ["DeviceObject", "FsContext", "FsContext2", "SectionObjectPointer"],
    "windows_sys::Wdk::Storage::FileSystem::FSRTL_ADVANCED_FCB_HEADER": ["Base"],
    "windows_sys::Wdk::Storage::FileSystem::FSRTL_COMMON_FCB_HEADER": ["NodeTypeCode", "Resource", "PagingIoResource", "AllocationSize", "FileSize", "ValidDataLength"],
    "windows_sys::Wdk::Foundation::ERESOURCE": ["OwnerTable", "ActiveCount", "Anonymous1", "OwnerEntry", "ActiveEntries", "NumberOfSharedWaiters", "NumberOfExclusiveWaiters"],
    "windows_sys::Wdk::Foundation::OWNER_ENTRY": ["OwnerThread", "Anonymous"]
};
// cowfat-layout-end

const MODULE = "cowfat";
const T = {
    data: "fs_driver::global::CfatData",
    node: "fs_driver::strucsup::NodeHeader",
    ring: "fs_driver::debugger::TraceRing",
    volumeOverlay: "fs_driver::debugger::OverlayAnchor",
    fileOverlay: "fs_driver::debugger::FileOverlayAnchor",
    run: "fs_driver::debugger::RunAnchor",
    creators: "fs_driver::debugger::SectionCreators",
    record: "fs_driver::debugger::TraceRecord",
    vcb: "fs_driver::vcb::Vcb",
    fcb: "fs_driver::fcb::Fcb",
    nonpaged: "fs_driver::fcb::NonPagedFcb",
    ccb: "fs_driver::fcb::Ccb",
    sections: "fs_driver::section::SectionTracking",
    list: "windows_sys::Win32::System::Kernel::LIST_ENTRY",
    sop: "windows_sys::Wdk::Foundation::SECTION_OBJECT_POINTERS",
    fo: "windows_sys::Wdk::Foundation::FILE_OBJECT",
    advanced: "windows_sys::Wdk::Storage::FileSystem::FSRTL_ADVANCED_FCB_HEADER",
    common: "windows_sys::Wdk::Storage::FileSystem::FSRTL_COMMON_FCB_HEADER",
    resource: "windows_sys::Wdk::Foundation::ERESOURCE",
    owner: "windows_sys::Wdk::Foundation::OWNER_ENTRY"
};

// Node type codes (fs-driver/src/strucsup.rs, `ntc`).
const NTC = { data: 0x0C00, vcb: 0x0C01, fcb: 0x0C02, dcb: 0x0C03, rootDcb: 0x0C04, nonpaged: 0x0C05, ccb: 0x0C07 };
const FCB_CODES = [NTC.fcb, NTC.dcb, NTC.rootDcb];
// A corrupt chain must not loop forever.
const MAX_WALK = 100000;

const MAJOR = ["CREATE", "CREATE_NAMED_PIPE", "CLOSE", "READ", "WRITE", "QUERY_INFORMATION",
    "SET_INFORMATION", "QUERY_EA", "SET_EA", "FLUSH_BUFFERS", "QUERY_VOLUME_INFORMATION",
    "SET_VOLUME_INFORMATION", "DIRECTORY_CONTROL", "FILE_SYSTEM_CONTROL", "DEVICE_CONTROL",
    "INTERNAL_DEVICE_CONTROL", "SHUTDOWN", "LOCK_CONTROL", "CLEANUP", "CREATE_MAILSLOT",
    "QUERY_SECURITY", "SET_SECURITY", "POWER", "SYSTEM_CONTROL", "DEVICE_CHANGE", "QUERY_QUOTA",
    "SET_QUOTA", "PNP"];
// FS_FILTER_CALLBACK_DATA.Operation (the pseudo-IRPs of FsRtl's filter callbacks).
const FILTER_OPERATION = { 255: "ACQUIRE_FOR_SECTION_SYNCHRONIZATION", 254: "RELEASE_FOR_SECTION_SYNCHRONIZATION",
    253: "ACQUIRE_FOR_MOD_WRITE", 252: "RELEASE_FOR_MOD_WRITE", 251: "ACQUIRE_FOR_CC_FLUSH", 250: "RELEASE_FOR_CC_FLUSH" };
const CC_CALLBACK = { 1: "AcquireForLazyWrite", 2: "ReleaseFromLazyWrite", 3: "AcquireForReadAhead", 4: "ReleaseFromReadAhead" };

// ---- values --------------------------------------------------------------------------------

// A debugger value (number, Int64-like object or string) as a BigInt.
function big(value) {
    if (typeof value === "bigint") { return value; }
    if (typeof value === "number") { return BigInt(value); }
    if (value === undefined || value === null) { throw new Error("cowfat.js: an address is required"); }
    let text = value.toString(16).toLowerCase();
    if (text.startsWith("0x")) { text = text.slice(2); }
    return BigInt("0x" + text.replace(/`/g, ""));
}

function hex(value) { return "0x" + big(value).toString(16); }

function location(address) { return host.parseInt64(address.toString(16), 16); }

// Type objects, per host (the stand-in host in windbg/test changes it between scenarios).
const typeCache = new Map();
let typeCacheHost = null;
function typeOf(name) {
    if (typeCacheHost !== host) {
        typeCache.clear();
        typeCacheHost = host;
    }
    if (!typeCache.has(name)) {
        const type = host.getModuleType(MODULE, name);
        if (!type) { throw new Error(`cowfat.js: no type ${name} in ${MODULE}'s PDB`); }
        typeCache.set(name, type);
    }
    return typeCache.get(name);
}

function fieldInfo(type, name) {
    if (!(type in LAYOUT) || LAYOUT[type].indexOf(name) < 0) {
        throw new Error(`cowfat.js: ${type}.${name} is not declared in LAYOUT`);
    }
    const field = typeOf(type).fields[name];
    if (!field) { throw new Error(`cowfat.js: the PDB has no field ${name} in ${type} (renamed in the driver?)`); }
    return { offset: BigInt(field.offset), size: Number(field.type.size) };
}

// Address of a field of the structure at `address`.
function at(address, type, name) { return big(address) + fieldInfo(type, name).offset; }

// Little-endian unsigned integer of `size` bytes (1, 2, 4 or 8).
function readUnsigned(address, size) {
    if (size === 8) {
        const words = host.memory.readMemoryValues(location(address), 2, 4);
        return (BigInt(words[1]) << 32n) | BigInt(words[0]);
    }
    const values = host.memory.readMemoryValues(location(address), 1, size);
    return BigInt(values[0]);
}

// A field's value as a BigInt, read with the field's size from the PDB.
function field(address, type, name) {
    const info = fieldInfo(type, name);
    return readUnsigned(big(address) + info.offset, info.size);
}

function num(value) { return Number(value); }
function signed32(value) { return Number(BigInt.asIntN(32, value)); }
function statusHex(status) { return "0x" + (status >>> 0).toString(16).padStart(8, "0"); }

function nodeType(address) { return num(field(address, T.node, "node_type_code")); }

function log(text) { host.diagnostics.debugLog(text + "\n"); }

// ---- chains --------------------------------------------------------------------------------

// Entries of a LIST_ENTRY chain, as the addresses of their LIST_ENTRY.
function walk(head) {
    const entries = [];
    const first = field(head, T.list, "Flink");
    if (first === 0n) { return entries; }
    for (let entry = first; entry !== big(head); entry = field(entry, T.list, "Flink")) {
        if (entry === 0n || entries.length >= MAX_WALK) { throw new Error(`cowfat.js: broken chain at ${hex(head)}`); }
        entries.push(entry);
    }
    return entries;
}

function cfatData() {
    // The PDB names the global by its Rust path (`x cowfat!*CFAT_DATA` finds it).
    const address = host.getModuleSymbolAddress(MODULE, "fs_driver::global::CFAT_DATA");
    if (address === undefined || address === null) { throw new Error("cowfat.js: no CFAT_DATA (is cowfat loaded and its PDB found?)"); }
    const data = big(address);
    if (nodeType(at(data, T.data, "node")) !== NTC.data) { throw new Error(`cowfat.js: ${hex(data)} is not CFAT_DATA (node type)`); }
    return data;
}

function vcbAddresses() {
    return walk(at(cfatData(), T.data, "vcb_list")).map((links) => links - fieldInfo(T.vcb, "volume_links").offset);
}

function fcbAddresses(vcb) {
    return walk(at(vcb, T.vcb, "fcb_list")).map((links) => links - fieldInfo(T.fcb, "vcb_links").offset);
}

function checkNode(address, codes, what) {
    const code = nodeType(address);
    if (codes.indexOf(code) < 0) {
        throw new Error(`cowfat.js: ${hex(address)} is not ${what} (node type 0x${code.toString(16)})`);
    }
    return code;
}

// ---- structures ----------------------------------------------------------------------------

// The volume's overlay figures as the driver last had them from fs-core (after every volume
// call); null before the first.
function describeVolumeOverlay(vcb) {
    const o = at(vcb, T.vcb, "overlay");
    if (field(o, T.volumeOverlay, "refreshes") === 0n) { return null; }
    return {
        sealed: field(o, T.volumeOverlay, "sealed") !== 0n,
        totalClusters: num(field(o, T.volumeOverlay, "total_clusters")),
        freeClusters: num(field(o, T.volumeOverlay, "free_clusters")),
        overlayClusters: num(field(o, T.volumeOverlay, "overlay_clusters")),
        baseOnlyClusters: num(field(o, T.volumeOverlay, "base_only_clusters")),
        reservedClusters: num(field(o, T.volumeOverlay, "reserved_clusters"))
    };
}

function overlayText(o) {
    if (o === null) { return "overlay not yet known"; }
    return (o.sealed ? `sealed, overlay ${o.overlayClusters} cluster(s), base-only ${o.baseOnlyClusters}` : "not sealed") +
        `, free ${o.freeClusters} of ${o.totalClusters}, reserved ${o.reservedClusters}`;
}

function describeVcb(vcb) {
    checkNode(at(vcb, T.vcb, "header"), [NTC.vcb], "a VCB");
    return {
        overlay: describeVolumeOverlay(vcb),
        address: hex(vcb),
        vdo: hex(field(vcb, T.vcb, "vdo")),
        vpb: hex(field(vcb, T.vcb, "vpb")),
        target: hex(field(vcb, T.vcb, "target")),
        serial: hex(field(vcb, T.vcb, "serial")),
        volumeOpens: num(field(vcb, T.vcb, "volume_opens")),
        dismounted: field(vcb, T.vcb, "dismounted") !== 0n,
        lockedBy: hex(field(vcb, T.vcb, "locked_by")),
        fcbs: fcbAddresses(vcb).length
    };
}

function describeFcb(fcb) {
    const code = checkNode(fcb, FCB_CODES, "an FCB");
    const nonpaged = field(fcb, T.fcb, "nonpaged");
    checkNode(at(nonpaged, T.nonpaged, "node"), [NTC.nonpaged], "a non-paged FCB");
    const sop = at(nonpaged, T.nonpaged, "section_object_pointers");
    const header = at(at(fcb, T.fcb, "header"), T.advanced, "Base");
    const sections = at(fcb, T.fcb, "sections");
    return {
        address: hex(fcb),
        kind: code === NTC.fcb ? "file" : code === NTC.dcb ? "directory" : "root directory",
        id: num(field(fcb, T.fcb, "id")),
        vcb: hex(field(fcb, T.fcb, "vcb")),
        nonpaged: hex(nonpaged),
        openCount: num(field(fcb, T.fcb, "open_count")),
        referenceCount: num(field(fcb, T.fcb, "reference_count")),
        fileSize: num(field(header, T.common, "FileSize")),
        validDataLength: num(field(header, T.common, "ValidDataLength")),
        allocationSize: num(field(header, T.common, "AllocationSize")),
        sectionObjectPointers: hex(sop),
        dataSectionObject: hex(field(sop, T.sop, "DataSectionObject")),
        sharedCacheMap: hex(field(sop, T.sop, "SharedCacheMap")),
        imageSectionObject: hex(field(sop, T.sop, "ImageSectionObject")),
        dataSections: num(field(sections, T.sections, "data_sections")),
        writableSections: num(field(sections, T.sections, "writable_sections")),
        imageSections: num(field(sections, T.sections, "image_sections")),
        purgeFailureMode: num(field(sections, T.sections, "purge_failure_mode")),
        purgeFailures: num(field(fcb, T.fcb, "purge_failures")),
        deletePending: field(fcb, T.fcb, "delete_pending") !== 0n,
        unlinked: field(fcb, T.fcb, "unlinked") !== 0n
    };
}

function fcbLine(f) {
    return `${f.address} ${f.kind.padEnd(9)} id ${String(f.id).padEnd(5)} open ${f.openCount} refs ${f.referenceCount}` +
        ` size ${f.fileSize} Data ${f.dataSectionObject} Image ${f.imageSectionObject} Cache ${f.sharedCacheMap}` +
        ` sections ${f.dataSections}/${f.writableSections}w/${f.imageSections}i purge-failures ${f.purgeFailures}` +
        (f.purgeFailureMode ? " purge-failure-mode" : "");
}

// ---- commands ------------------------------------------------------------------------------

function cfvcbs() {
    const vcbs = vcbAddresses().map(describeVcb);
    log(`cowfat: ${vcbs.length} volume(s)`);
    for (const v of vcbs) {
        log(`VCB ${v.address} vdo ${v.vdo} vpb ${v.vpb} serial ${v.serial} fcbs ${v.fcbs} volume-opens ${v.volumeOpens}` +
            (v.dismounted ? " DISMOUNTED" : "") + (big(v.lockedBy) !== 0n ? ` locked-by ${v.lockedBy}` : ""));
        log(`    ${overlayText(v.overlay)}`);
    }
    return vcbs;
}

function cffcbs(vcb) {
    const vcbs = vcb === undefined ? vcbAddresses() : [big(vcb)];
    const fcbs = [];
    for (const v of vcbs) {
        checkNode(at(v, T.vcb, "header"), [NTC.vcb], "a VCB");
        log(`VCB ${hex(v)}:`);
        for (const f of fcbAddresses(v)) {
            const d = describeFcb(f);
            fcbs.push(d);
            log("  " + fcbLine(d));
        }
    }
    return fcbs;
}

function cffcb(address) {
    const d = describeFcb(big(address));
    log(fcbLine(d));
    log(`  VCB ${d.vcb} non-paged ${d.nonpaged} SOP ${d.sectionObjectPointers} VDL ${d.validDataLength} allocation ${d.allocationSize}` +
        (d.deletePending ? " delete-pending" : "") + (d.unlinked ? " unlinked" : ""));
    return d;
}

function describeFileObject(fo) {
    const context = field(fo, T.fo, "FsContext");
    const context2 = field(fo, T.fo, "FsContext2");
    const result = { address: hex(fo), fsContext: hex(context), fsContext2: hex(context2), kind: "not cowfat's", fcb: null, vcb: null, ccb: null };
    if (context === 0n) { return result; }
    const code = nodeType(context);
    if (FCB_CODES.indexOf(code) >= 0) {
        result.kind = "file";
        result.fcb = describeFcb(context);
    } else if (code === NTC.vcb) {
        result.kind = "volume";
        result.vcb = hex(context);
    } else {
        return result;
    }
    if (context2 !== 0n) {
        checkNode(at(context2, T.ccb, "node"), [NTC.ccb], "a CCB");
        result.ccb = { address: hex(context2), deleteOnClose: field(context2, T.ccb, "delete_on_close") !== 0n };
    }
    return result;
}

function cffo(fileObject) {
    const d = describeFileObject(big(fileObject));
    log(`FILE_OBJECT ${d.address}: ${d.kind} FsContext ${d.fsContext} FsContext2 ${d.fsContext2}`);
    if (d.fcb) { log("  FCB " + fcbLine(d.fcb)); }
    if (d.vcb) { log(`  VCB ${d.vcb} (volume open)`); }
    return d;
}

// seed 000 / seed 003: the handle is gone (cleanup came) but IRP_MJ_CLOSE has not.
function cfwhyclose(address) {
    let fcb = big(address);
    let fileObject = null;
    if (FCB_CODES.indexOf(nodeType(fcb)) < 0) {
        fileObject = fcb;
        fcb = field(fileObject, T.fo, "FsContext");
    }
    const f = describeFcb(fcb);
    const holders = [];
    const holderKinds = [];
    const next = [];
    if (big(f.dataSectionObject) !== 0n) {
        holderKinds.push("Mm data section");
        holders.push("Mm: the data section's control area (segment) references a file object of the stream; " +
            "it is released when the segment is deleted (last view unmapped and a purge, or memory pressure)");
        next.push(`!ca ${f.dataSectionObject}`);
    }
    if (big(f.imageSectionObject) !== 0n) {
        holderKinds.push("Mm image section");
        holders.push("Mm: the image section's control area references a file object; it goes when the image is unloaded and the section trimmed");
        next.push(`!ca ${f.imageSectionObject}`);
    }
    if (big(f.sharedCacheMap) !== 0n) {
        holderKinds.push("Cc cache map");
        holders.push("Cc: a shared cache map exists; the stream stays referenced until CcUninitializeCacheMap and the lazy writer let go");
    }
    // Seed 003: the SOP's DataSectionObject/ImageSectionObject are Mm's control areas; each
    // holds the file object it was created through (`!ca`'s "File Object"), whose
    // IRP_MJ_CLOSE comes only when the control area is deleted.
    const creators = at(fcb, T.fcb, "section_creators");
    const controlAreas = [];
    for (const [kind, sopField, creatorField] of [["data", "dataSectionObject", "data"], ["image", "imageSectionObject", "image"]]) {
        if (big(f[sopField]) === 0n) { continue; }
        const creator = field(creators, T.creators, creatorField);
        controlAreas.push({ kind: kind, controlArea: f[sopField], fileObject: creator === 0n ? null : hex(creator) });
        if (creator !== 0n) { next.push(`!fileobj ${hex(creator)}`); }
    }
    if (fileObject !== null && !controlAreas.some((c) => c.fileObject === hex(fileObject))) { next.push(`!fileobj ${hex(fileObject)}`); }
    if (big(f.sharedCacheMap) !== 0n) { next.push(`dt nt!_SHARED_CACHE_MAP ${f.sharedCacheMap}`); }
    const result = {
        fcb: f.address,
        fileObject: fileObject === null ? null : hex(fileObject),
        cleanupDone: f.openCount === 0,
        handles: f.openCount,
        closesOwed: f.referenceCount,
        holderKinds: holderKinds,
        holders: holders,
        sectionObjectPointers: f.sectionObjectPointers,
        controlAreas: controlAreas,
        next: next
    };
    log(`FCB ${f.address}: ${f.openCount} handle(s) open, ${f.referenceCount} file object(s) not yet closed`);
    if (result.cleanupDone && f.referenceCount > 0) { log("  cleanup done, close owed:"); }
    for (const h of holders) { log("  - " + h); }
    log(`  SectionObjectPointer ${f.sectionObjectPointers} (dt nt!_SECTION_OBJECT_POINTERS): DataSectionObject ${f.dataSectionObject}` +
        ` SharedCacheMap ${f.sharedCacheMap} ImageSectionObject ${f.imageSectionObject} (NULL: not in memory)`);
    for (const c of controlAreas) {
        log(`  ${c.kind} control area ${c.controlArea}: created through file object ` +
            (c.fileObject === null ? "unknown (not seen by cowfat; !ca shows it)" : `${c.fileObject}, the one whose close waits for it`));
    }
    if (holders.length === 0 && f.referenceCount > 0 && f.openCount > 0) { log("  - open handles: the close comes after their cleanup"); }
    for (const n of next) { log("  next: " + n); }
    return result;
}

// Mapped-state flags and summary as the driver's FSCTL_COWFAT_QUERY_MAPPED_STATE computes
// them without a purge probe (fs-driver/src/section.rs), less Mm's writable-reference count,
// which only a live query can ask (run the FSCTL, or !ca on the data section).
const MAPPED_DATA_SECTION = 0x1, MAPPED_IMAGE_SECTION = 0x2, MAPPED_CACHED = 0x4;
function cfmapped(address) {
    const f = describeFcb(big(address));
    const data = big(f.dataSectionObject) !== 0n;
    const image = big(f.imageSectionObject) !== 0n;
    const cached = big(f.sharedCacheMap) !== 0n;
    const flags = (data ? MAPPED_DATA_SECTION : 0) | (image ? MAPPED_IMAGE_SECTION : 0) | (cached ? MAPPED_CACHED : 0);
    const dataSections = data ? f.dataSections : 0;
    const summary = dataSections !== 0 ? "maybe mapped" : (data || cached) ? "cached only" : "not mapped";
    const result = { fcb: f.address, flags: flags, summary: summary, dataSections: dataSections,
        writableSections: data ? f.writableSections : 0, imageSections: image ? f.imageSections : 0,
        purgeFailureMode: f.purgeFailureMode, purgeFailures: f.purgeFailures };
    log(`FCB ${f.address}: ${summary} (flags 0x${flags.toString(16)}: ${data ? "data-section " : ""}${image ? "image-section " : ""}${cached ? "cached" : ""})`);
    log(`  sections created ${result.dataSections} (${result.writableSections} writable), image ${result.imageSections}, ` +
        `purge-failure mode ${result.purgeFailureMode}, purge failures ${result.purgeFailures}`);
    if (result.writableSections > 0) { log(`  writable sections were created: !ca ${f.dataSectionObject} shows whether writable views remain`); }
    return result;
}

// FSCTL_COWFAT_QUERY_OVERLAY's flags (fsctl-api).
const OVERLAY_IN_BASE = 0x1, OVERLAY_MODIFIED = 0x2, OVERLAY_SEALED = 0x4;
// A file's base and overlay clusters as far as loaded: what the driver last computed for it
// (FSCTL_COWFAT_QUERY_OVERLAY, `cowfat overlay status`); the volume's figures beside them.
function cfoverlay(address) {
    const fcb = big(address);
    checkNode(fcb, FCB_CODES, "an FCB");
    const o = at(fcb, T.fcb, "overlay");
    const queries = num(field(o, T.fileOverlay, "queries"));
    const vcb = field(fcb, T.fcb, "vcb");
    const result = { fcb: hex(fcb), id: num(field(fcb, T.fcb, "id")), loaded: queries > 0, queries: queries, file: null, volume: describeVolumeOverlay(vcb) };
    if (queries > 0) {
        const flags = num(field(o, T.fileOverlay, "flags"));
        result.file = {
            flags: flags,
            inBase: (flags & OVERLAY_IN_BASE) !== 0,
            modified: (flags & OVERLAY_MODIFIED) !== 0,
            sealed: (flags & OVERLAY_SEALED) !== 0,
            baseClusters: num(field(o, T.fileOverlay, "base_clusters")),
            overlayClusters: num(field(o, T.fileOverlay, "overlay_clusters")),
            reservedClusters: num(field(o, T.fileOverlay, "reserved_clusters")),
            runs: []
        };
        const runSize = BigInt(typeOf(T.run).size);
        const runCount = num(field(o, T.fileOverlay, "run_count"));
        for (let i = 0; i < runCount; i++) {
            const r = at(o, T.fileOverlay, "runs") + BigInt(i) * runSize;
            result.file.runs.push({ vcn: num(field(r, T.run, "vcn")), lcn: num(field(r, T.run, "lcn")),
                length: num(field(r, T.run, "len")), base: field(r, T.run, "base") !== 0n });
        }
    }
    log(`FCB ${result.fcb} id ${result.id}: ` + (result.file === null
        ? "overlay state not loaded (no FSCTL_COWFAT_QUERY_OVERLAY since the FCB was built: run `cowfat overlay status` on the file)"
        : `${result.file.baseClusters} base cluster(s), ${result.file.overlayClusters} overlay cluster(s), ${result.file.reservedClusters} reserved` +
          `${result.file.inBase ? ", in base" : ", not in base"}${result.file.modified ? ", modified" : ", unchanged"} (as of query ${queries})`));
    if (result.file !== null) {
        for (const r of result.file.runs) {
            log(`  vcn ${String(r.vcn).padStart(8)} lcn ${String(r.lcn).padStart(8)} clusters ${String(r.length).padStart(6)} ${r.base ? "base" : "overlay"}`);
        }
    }
    log(`  volume ${hex(vcb)}: ${overlayText(result.volume)}`);
    return result;
}

function recordName(kind, major, minor) {
    if (kind === 1) { return "IRP_MJ_" + (MAJOR[major] || major) + (minor ? ` minor ${minor}` : ""); }
    if (kind === 2) { return (FILTER_OPERATION[major] || `filter ${major}`) + ` sync ${minor}`; }
    if (kind === 3) { return CC_CALLBACK[minor] || `Cc callback ${minor}`; }
    return `kind ${kind}`;
}

function cftrace(count) {
    const ring = at(cfatData(), T.data, "trace");
    const capacity = num(field(ring, T.ring, "capacity"));
    const recordSize = BigInt(typeOf(T.record).size);
    const records = [];
    for (let i = 0; i < capacity; i++) {
        const r = at(ring, T.ring, "records") + BigInt(i) * recordSize;
        const sequence = num(field(r, T.record, "sequence"));
        if (sequence === 0) { continue; }
        const kind = num(field(r, T.record, "kind"));
        const major = num(field(r, T.record, "major"));
        const minor = num(field(r, T.record, "minor"));
        records.push({
            sequence: sequence,
            what: recordName(kind, major, minor),
            kind: kind, major: major, minor: minor,
            fcb: hex(field(r, T.record, "fcb")),
            status: statusHex(signed32(field(r, T.record, "status"))),
            thread: hex(field(r, T.record, "thread")),
            time: num(field(r, T.record, "time"))
        });
    }
    records.sort((a, b) => a.sequence - b.sequence);
    const n = count === undefined ? records.length : Math.min(num(big(count)), records.length);
    const shown = records.slice(records.length - n);
    log(`cowfat trace: ${shown.length} of ${num(field(ring, T.ring, "next"))} record(s)`);
    for (const r of shown) {
        log(`${String(r.sequence).padStart(6)} ${r.time} thread ${r.thread} ${r.what.padEnd(40)} ${r.fcb} ${r.status}`);
    }
    return shown;
}

// cowfat's pool tags (fs-driver/src/strucsup.rs, `tags`).
const POOL_TAGS = [
    ["CfFc", "FCB and DCB"],
    ["CfNf", "non-paged FCB part (one per FCB)"],
    ["CfCc", "CCB (one per file object)"],
    ["CfIc", "IRP context of a posted request"],
    ["CfNm", "file name buffers"],
    ["CfIo", "I/O buffers (sector and cluster transfers)"],
    ["CfEr", "ERESOURCEs"],
    ["CfVc", "VCB (today in the volume device's extension, not in pool)"],
    ["CfRs", "Rust heap (the image's global allocator)"],
    ["CfGd", "allocated global data"]
];

// What each tag should count, from the structures reachable through CFAT_DATA; `!poolused 2
// Cf` gives the pool's side (more blocks than structures under CfFc/CfNf: a leaked FCB).
function cfpool() {
    let fcbs = 0;
    let nonpaged = 0;
    const vcbs = vcbAddresses();
    for (const v of vcbs) {
        for (const f of fcbAddresses(v)) {
            checkNode(f, FCB_CODES, "an FCB");
            fcbs += 1;
            if (nodeType(at(field(f, T.fcb, "nonpaged"), T.nonpaged, "node")) === NTC.nonpaged) { nonpaged += 1; }
        }
    }
    const counts = { CfFc: fcbs, CfNf: nonpaged };
    const result = POOL_TAGS.map(([tag, what]) => ({ tag: tag, what: what, structures: tag in counts ? counts[tag] : null }));
    log(`cowfat pool tags (${vcbs.length} volume(s)); compare with !poolused 2 Cf`);
    for (const r of result) {
        log(`  ${r.tag}  ${r.structures === null ? "   -" : String(r.structures).padStart(4)}  ${r.what}`);
    }
    return result;
}

// ERESOURCE's Flag bit for an exclusive owner (ResourceOwnedExclusive); OWNER_ENTRY's
// OwnerCount is bits 3..31 of the word after OwnerThread (Windows 8 and later).
const RESOURCE_OWNED_EXCLUSIVE = 0x80n;
const OWNER_COUNT_SHIFT = 3n;

// One ERESOURCE's public state, as ntoskrnl keeps it (and `!locks` reads it).
function describeResource(address) {
    const owner = at(address, T.resource, "OwnerEntry");
    const activeEntries = num(field(address, T.resource, "ActiveEntries"));
    const exclusive = (field(address, T.resource, "Anonymous1") & RESOURCE_OWNED_EXCLUSIVE) !== 0n;
    return {
        resource: hex(address),
        held: num(field(address, T.resource, "ActiveCount")) !== 0,
        exclusive: exclusive,
        owners: activeEntries,
        ownerThread: hex(field(owner, T.owner, "OwnerThread")),
        ownerCount: num(field(owner, T.owner, "Anonymous") >> OWNER_COUNT_SHIFT),
        ownerTable: hex(field(address, T.resource, "OwnerTable")),
        sharedWaiters: num(field(address, T.resource, "NumberOfSharedWaiters")),
        exclusiveWaiters: num(field(address, T.resource, "NumberOfExclusiveWaiters"))
    };
}

// Every resource cowfat owns (each VCB's resource and volume lock, each FCB's main and paging
// I/O resource through its header), held ones only.
function cflocks() {
    const candidates = [];
    for (const v of vcbAddresses()) {
        checkNode(at(v, T.vcb, "header"), [NTC.vcb], "a VCB");
        candidates.push({ what: "VCB resource", structure: v, address: at(v, T.vcb, "resource") });
        candidates.push({ what: "VCB volume lock", structure: v, address: at(v, T.vcb, "volume_lock") });
        for (const f of fcbAddresses(v)) {
            checkNode(f, FCB_CODES, "an FCB");
            const header = at(at(f, T.fcb, "header"), T.advanced, "Base");
            candidates.push({ what: "FCB main resource", structure: f, address: field(header, T.common, "Resource") });
            candidates.push({ what: "FCB paging I/O resource", structure: f, address: field(header, T.common, "PagingIoResource") });
        }
    }
    const held = [];
    for (const c of candidates) {
        if (c.address === 0n) { continue; }
        const r = describeResource(c.address);
        if (!r.held) { continue; }
        r.what = c.what;
        r.owner = hex(c.structure);
        held.push(r);
    }
    log(`cowfat: ${held.length} of ${candidates.length} resource(s) held`);
    for (const r of held) {
        const mode = r.exclusive ? "exclusive" : `shared by ${r.owners} thread(s)`;
        log(`  ${r.what.padEnd(24)} ${r.resource} of ${r.owner} ${mode}, owner thread ${r.ownerThread} (count ${r.ownerCount})` +
            (r.sharedWaiters || r.exclusiveWaiters ? `, waiters ${r.sharedWaiters} shared ${r.exclusiveWaiters} exclusive` : ""));
        log(`    next: !locks ${r.resource}; !thread ${r.ownerThread}`);
    }
    return held;
}

// `dx` shows an FCB through describeFcb: dx (fs_driver::fcb::Fcb*)0x...
class FcbVisualizer {
    get cowfat() { return describeFcb(big(this.targetLocation.toString())); }
}

function initializeScript() {
    return [
        new host.apiVersionSupport(1, 7),
        new host.functionAlias(cfvcbs, "cfvcbs"),
        new host.functionAlias(cffcbs, "cffcbs"),
        new host.functionAlias(cffcb, "cffcb"),
        new host.functionAlias(cffo, "cffo"),
        new host.functionAlias(cfwhyclose, "cfwhyclose"),
        new host.functionAlias(cfmapped, "cfmapped"),
        new host.functionAlias(cftrace, "cftrace"),
        new host.functionAlias(cfpool, "cfpool"),
        new host.functionAlias(cflocks, "cflocks"),
        new host.functionAlias(cfoverlay, "cfoverlay"),
        new host.typeSignatureRegistration(FcbVisualizer, T.fcb, MODULE)
    ];
}

// The stand-in host (windbg/test) loads the script as a CommonJS module; WinDbg ignores this.
if (typeof module !== "undefined") {
    module.exports = { initializeScript, LAYOUT, cfvcbs, cffcbs, cffcb, cffo, cfwhyclose, cfmapped, cftrace, cfpool, cflocks, cfoverlay };
}
