"use strict";
// A stand-in for WinDbg's JavaScript host (JsProvider), just the subset windbg/cowfat.js uses,
// backed by cowfat.pdb's type records (types.json) and a memory snapshot of the driver taken
// on ntsim (<scenario>.json), both written by tests/ntsim/tests/windbg_extension.rs.
//
// It is strict where the real host would fail: a read outside the snapshot's ranges throws
// (as a read of unmapped memory does), an unknown type or symbol is `undefined`, element
// sizes other than 1, 2, 4 and 8 throw.

const fs = require("node:fs");
const path = require("node:path");

// host.Int64: what the real host passes for 64-bit values.
class Int64 {
    constructor(value) { this.value = BigInt.asUintN(64, value); }
    toString(radix) { return radix === 16 ? "0x" + this.value.toString(16) : this.value.toString(radix); }
}

function dataDir() {
    const dir = process.env.COWFAT_WINDBG_DATA;
    if (!dir) { throw new Error("COWFAT_WINDBG_DATA is not set: run through cargo test -p ntsim --test windbg_extension"); }
    return dir;
}

function loadTypes(dir) { return JSON.parse(fs.readFileSync(path.join(dir || dataDir(), "types.json"), "utf8")); }

function loadScenario(name, dir) {
    return JSON.parse(fs.readFileSync(path.join(dir || dataDir(), name + ".json"), "utf8"));
}

function scenarioNames(dir) {
    return fs.readdirSync(dir || dataDir())
        .filter((f) => f.endsWith(".json") && f !== "types.json")
        .map((f) => f.slice(0, -5))
        .sort();
}

function toBig(location) {
    if (location instanceof Int64) { return location.value; }
    if (typeof location === "number" || typeof location === "bigint") { return BigInt(location); }
    throw new Error(`stand-in host: not a location: ${location}`);
}

// Builds the `host` object for one scenario.
function makeHost(types, scenario) {
    const ranges = scenario.ranges.map((r) => ({ start: BigInt(r.address), bytes: Buffer.from(r.bytes, "hex"), what: r.what }));
    const output = [];
    const registered = [];
    function bytesAt(address, length) {
        for (const r of ranges) {
            if (address >= r.start && address + BigInt(length) <= r.start + BigInt(r.bytes.length)) {
                const from = Number(address - r.start);
                return r.bytes.subarray(from, from + length);
            }
        }
        throw new Error(`stand-in host: memory at 0x${address.toString(16)} (${length} bytes) is not in the snapshot`);
    }
    const host = {
        Int64,
        parseInt64(text, radix) {
            if (radix !== 16) { throw new Error("stand-in host: parseInt64 supports radix 16 only"); }
            return new Int64(BigInt("0x" + String(text).replace(/^0x/, "")));
        },
        getModuleType(module, name) {
            if (module !== "cowfat" || !(name in types.types)) { return undefined; }
            const t = types.types[name];
            const fields = {};
            for (const f of t.fields) {
                fields[f.name] = { name: f.name, offset: f.offset, type: { name: f.type, size: f.size } };
            }
            return { name, size: t.size, fields };
        },
        getModuleSymbolAddress(module, symbol) {
            // The name must be a global of the PDB; the address is where the snapshot has it.
            if (module !== "cowfat" || !(symbol in types.globals) || !(symbol in scenario.symbols)) { return undefined; }
            return new Int64(BigInt(scenario.symbols[symbol]));
        },
        memory: {
            readMemoryValues(location, count, size) {
                const address = toBig(location);
                const n = size === undefined ? 1 : size;
                if ([1, 2, 4, 8].indexOf(n) < 0) { throw new Error(`stand-in host: element size ${n}`); }
                const bytes = bytesAt(address, n * count);
                const values = [];
                for (let i = 0; i < count; i++) {
                    values.push(readUnsigned(bytes, i * n, n));
                }
                return values;
            }
        },
        diagnostics: { debugLog(...parts) { output.push(parts.join("")); } },
        functionAlias: class { constructor(fn, name) { this.fn = fn; this.name = name; registered.push(this); } },
        typeSignatureRegistration: class { constructor(cls, signature, module) { this.cls = cls; this.signature = signature; this.module = module; registered.push(this); } },
        apiVersionSupport: class { constructor(major, minor) { this.major = major; this.minor = minor; } }
    };
    return { host, output, registered };
}

function readUnsigned(bytes, offset, size) {
    switch (size) {
        case 1: return bytes.readUInt8(offset);
        case 2: return bytes.readUInt16LE(offset);
        case 4: return bytes.readUInt32LE(offset);
        default: return new Int64(bytes.readBigUInt64LE(offset));
    }
}

module.exports = { Int64, makeHost, loadTypes, loadScenario, scenarioNames };
