"use strict";
// node --test windbg/test: every command of windbg/cowfat.js in every scenario snapshot,
// against the answers taken from the driver's own types and ntsim's state
// (tests/ntsim/tests/windbg_extension.rs writes both and runs this).

const test = require("node:test");
const assert = require("node:assert/strict");
const path = require("node:path");
const { makeHost, loadTypes, loadScenario, scenarioNames } = require("./host.js");

const script = require(path.join(__dirname, "..", "cowfat.js"));
const types = loadTypes();

// Runs `fn` with the scenario's host installed as the script's global `host`.
function withHost(scenario, fn, typeTable) {
    const h = makeHost(typeTable || types, scenario);
    globalThis.host = h.host;
    try {
        return { result: fn(), output: h.output.join("") };
    } finally {
        delete globalThis.host;
    }
}

function pick(object, keys) {
    const out = {};
    for (const k of keys) { out[k] = object[k]; }
    return out;
}

const byAddress = (a, b) => (BigInt(a.address) < BigInt(b.address) ? -1 : 1);
const FCB_KEYS = ["address", "id", "vcb", "openCount", "referenceCount", "fileSize", "validDataLength",
    "dataSectionObject", "sharedCacheMap", "imageSectionObject", "dataSections", "writableSections",
    "imageSections", "purgeFailureMode", "purgeFailures", "deletePending"];

const names = scenarioNames();
test("the scenarios are all there", () => {
    assert.deepEqual(names, ["dismount", "image_section", "late_close", "mapped_file", "purge_failure_mode", "sealed_overlay", "section_creator", "volume_held"]);
});

test("initializeScript registers every command and the FCB visualizer", () => {
    const s = loadScenario(names[0]);
    const { result } = withHost(s, () => script.initializeScript());
    const aliases = result.filter((r) => r.name).map((r) => r.name).sort();
    assert.deepEqual(aliases, ["cffcb", "cffcbs", "cffo", "cflocks", "cfmapped", "cfoverlay", "cfpool", "cftrace", "cfvcbs", "cfwhyclose"]);
    assert.ok(result.some((r) => r.signature === "fs_driver::fcb::Fcb" && r.module === "cowfat"));
});

for (const name of names) {
    const s = loadScenario(name);
    const expected = s.expected;

    test(`${name}: !cfvcbs`, () => {
        const { result, output } = withHost(s, () => script.cfvcbs());
        const got = result.map((v) => pick(v, ["address", "vdo", "serial", "volumeOpens", "dismounted", "fcbs", "overlay"])).sort(byAddress);
        // The overlay figures: the VCB's copy, refreshed after every fs-core call, equals what
        // fs-core says now (none once dismounted: the driver's last copy stays, unchecked).
        const want = expected.vcbs.slice().sort(byAddress).map((v) => v.overlay === null ? { ...v, overlay: got.find((g) => g.address === v.address).overlay } : v);
        assert.deepEqual(got, want);
        for (const v of got) { assert.ok(v.overlay !== null, `${v.address}: overlay figures never filled`); }
        if (name === "sealed_overlay") {
            assert.ok(got[0].overlay.sealed && got[0].overlay.overlayClusters > 0, JSON.stringify(got[0].overlay));
            assert.match(output, /sealed, overlay [1-9][0-9]* cluster\(s\)/);
        } else if (!got.some((v) => v.dismounted)) {
            assert.match(output, /(not sealed|sealed, overlay [0-9]+ cluster\(s\), base-only [0-9]+), free [0-9]+ of [0-9]+, reserved [0-9]+/);
        }
        assert.match(output, new RegExp(`cowfat: ${expected.vcbs.length} volume\\(s\\)`));
    });

    test(`${name}: !cffcbs`, () => {
        const { result } = withHost(s, () => script.cffcbs());
        const got = result.map((f) => pick(f, FCB_KEYS)).sort(byAddress);
        assert.deepEqual(got, expected.fcbs.slice().sort(byAddress));
        for (const v of expected.vcbs) {
            const one = withHost(s, () => script.cffcbs(v.address)).result;
            assert.equal(one.length, v.fcbs, `!cffcbs ${v.address}`);
        }
    });

    test(`${name}: !cffcb`, () => {
        for (const f of expected.fcbs) {
            const { result, output } = withHost(s, () => script.cffcb(f.address));
            assert.deepEqual(pick(result, FCB_KEYS), f);
            assert.ok(output.startsWith(f.address), output);
        }
        // A VCB is not an FCB: the node type is checked.
        if (expected.vcbs.length > 0) {
            assert.throws(() => withHost(s, () => script.cffcb(expected.vcbs[0].address)), /is not an FCB/);
        }
    });

    test(`${name}: !cffo`, () => {
        for (const fo of expected.fileObjects) {
            const { result } = withHost(s, () => script.cffo(fo.address));
            assert.equal(result.fsContext, fo.fsContext);
            assert.equal(result.fsContext2, fo.fsContext2);
            assert.equal(result.kind, fo.kind, `${fo.address}`);
            if (fo.kind === "file") {
                assert.equal(result.fcb.address, fo.fsContext);
                assert.ok(result.ccb === null || result.ccb.address === fo.fsContext2);
            }
        }
    });

    test(`${name}: !cfwhyclose`, () => {
        for (const w of expected.whyclose) {
            const { result, output } = withHost(s, () => script.cfwhyclose(w.fcb));
            assert.deepEqual(pick(result, ["fcb", "cleanupDone", "handles", "closesOwed", "holderKinds", "controlAreas"]), w);
            assert.match(output, /cleanup done, close owed/);
            // Seed 003: each control area with the file object it holds, and !fileobj on it.
            for (const c of w.controlAreas) {
                assert.match(output, new RegExp(`${c.kind} control area ${c.controlArea}: created through file object ${c.fileObject}`));
                assert.ok(result.next.includes(`!ca ${c.controlArea}`) && result.next.includes(`!fileobj ${c.fileObject}`), result.next.join("; "));
            }
            assert.match(output, /SectionObjectPointer 0x[0-9a-f]+ \(dt nt!_SECTION_OBJECT_POINTERS\)/);
            if (w.holderKinds.includes("Mm data section")) { assert.match(output, /next: !ca 0x[0-9a-f]+/); }
        }
        // Through a file object of the stream: the same answer plus !fileobj.
        for (const fo of expected.fileObjects.filter((f) => expected.whyclose.some((w) => w.fcb === f.fsContext))) {
            const { result } = withHost(s, () => script.cfwhyclose(fo.address));
            assert.equal(result.fcb, fo.fsContext);
            assert.ok(result.next.includes(`!fileobj ${fo.address}`));
        }
    });

    test(`${name}: !cfmapped`, () => {
        // The driver's own answer (FSCTL_COWFAT_QUERY_MAPPED_STATE without a probe), except on a
        // dismounted volume, where no FSCTL gets through: there the flags follow the FCB's SOP.
        assert.ok(expected.mapped.length > 0 || name === "dismount");
        for (const f of expected.fcbs) {
            const { result } = withHost(s, () => script.cfmapped(f.address));
            const flags = (f.dataSectionObject !== "0x0" ? 1 : 0) | (f.imageSectionObject !== "0x0" ? 2 : 0) |
                (f.sharedCacheMap !== "0x0" ? 4 : 0);
            assert.equal(result.flags, flags, f.address);
        }
        for (const m of expected.mapped) {
            const { result } = withHost(s, () => script.cfmapped(m.fcb));
            assert.deepEqual(result, m);
        }
    });

    test(`${name}: !cfpool`, () => {
        const { result, output } = withHost(s, () => script.cfpool());
        const count = (tag) => result.find((r) => r.tag === tag).structures;
        // The chains and the pool agree: every FCB block is on a VCB's chain.
        assert.equal(count("CfFc"), expected.pool.CfFc || 0);
        assert.equal(count("CfNf"), expected.pool.CfNf || 0);
        assert.equal(count("CfCc"), null);
        assert.match(output, /CfFc/);
    });

    test(`${name}: !cflocks`, () => {
        // The ERESOURCEs' own fields, as ntsim's ExAcquire/ExRelease keep them, against
        // ntsim's ownership records: every held resource is cowfat's and found.
        const { result, output } = withHost(s, () => script.cflocks());
        const got = result.map((r) => pick(r, ["resource", "exclusive", "owners", "ownerThread", "ownerCount"]))
            .sort((a, b) => (BigInt(a.resource) < BigInt(b.resource) ? -1 : 1));
        const want = expected.locks.slice().sort((a, b) => (BigInt(a.resource) < BigInt(b.resource) ? -1 : 1));
        assert.deepEqual(got, want);
        assert.match(output, new RegExp(`cowfat: ${want.length} of \\d+ resource\\(s\\) held`));
        for (const r of result) {
            assert.ok(expected.vcbs.some((v) => v.address === r.owner) || expected.fcbs.some((f) => f.address === r.owner), r.owner);
            assert.match(output, new RegExp(`next: !locks ${r.resource}; !thread ${r.ownerThread}`));
        }
        if (name === "volume_held") {
            const vcb = result.find((r) => r.what === "VCB resource");
            assert.ok(vcb && vcb.exclusive && vcb.ownerThread === "0x8", JSON.stringify(result));
            const fcb = result.find((r) => r.what === "FCB main resource");
            assert.ok(fcb && !fcb.exclusive && fcb.ownerThread === "0xc", JSON.stringify(result));
        } else {
            assert.deepEqual(result, [], "nothing is held between requests");
        }
    });

    test(`${name}: !cfoverlay`, () => {
        // Loaded only for files whose overlay state the driver computed (the FSCTL's answer);
        // every other FCB says it is not loaded.
        for (const f of expected.fcbs) {
            const { result, output } = withHost(s, () => script.cfoverlay(f.address));
            const want = expected.overlays.find((o) => o.fcb === f.address);
            if (want) {
                assert.equal(result.loaded, true, f.address);
                assert.deepEqual({ fcb: result.fcb, flags: result.file.flags, baseClusters: result.file.baseClusters,
                    overlayClusters: result.file.overlayClusters, reservedClusters: result.file.reservedClusters,
                    runs: result.file.runs }, want);
                assert.match(output, new RegExp(`${want.baseClusters} base cluster\\(s\\), ${want.overlayClusters} overlay cluster`));
            } else {
                assert.equal(result.loaded, false, f.address);
                assert.match(output, /overlay state not loaded/);
            }
        }
        if (name === "sealed_overlay") {
            const o = expected.overlays[0];
            assert.ok(o.flags === 7 && o.baseClusters > 0 && o.overlayClusters > 0, JSON.stringify(o));
            // The write moved the first cluster into the overlay; the second is still the base's.
            assert.deepEqual(o.runs.map((r) => [r.vcn, r.length, r.base]), [[0, 1, false], [1, 1, true]]);
        }
        assert.throws(() => withHost(s, () => script.cfoverlay(expected.vcbs[0].address)), /is not an FCB/);
    });

    test(`${name}: !cftrace`, () => {
        const { result, output } = withHost(s, () => script.cftrace());
        const got = result.map((r) => pick(r, ["sequence", "kind", "major", "minor", "fcb", "status", "thread", "time"]));
        assert.deepEqual(got, expected.trace);
        assert.ok(expected.trace.length > 0);
        const last = withHost(s, () => script.cftrace(3)).result;
        assert.deepEqual(last.map((r) => r.sequence), expected.trace.slice(-3).map((r) => r.sequence));
        assert.match(output, /IRP_MJ_/);
    });
}

// A field the script reads, renamed in the driver: the PDB no longer has it, and the command
// says so instead of reading the wrong bytes.
test("a renamed driver field breaks the command that reads it", () => {
    const s = loadScenario(names[0]);
    const renamed = JSON.parse(JSON.stringify(types));
    for (const f of renamed.types["fs_driver::fcb::Fcb"].fields) {
        if (f.name === "open_count") { f.name = "handle_count"; }
    }
    assert.throws(() => withHost(s, () => script.cffcbs(), renamed), /no field open_count in fs_driver::fcb::Fcb/);
});

test("memory outside the snapshot is an error, not a zero", () => {
    const s = loadScenario(names[0]);
    assert.throws(() => withHost(s, () => script.cffcb("0x10")), /not in the snapshot/);
});

test("without CFAT_DATA in the PDB's globals the commands say so", () => {
    const s = loadScenario(names[0]);
    const stripped = JSON.parse(JSON.stringify(types));
    delete stripped.globals["fs_driver::global::CFAT_DATA"];
    assert.throws(() => withHost(s, () => script.cfvcbs(), stripped), /no CFAT_DATA/);
});
