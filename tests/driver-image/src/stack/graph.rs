//! The call graph of a driver image, from the image itself and its PDB: every function with
//! its frame (from the unwind codes) and what it calls.
//!
//! - Functions: `.pdata` entries (chained fragments folded into their parent), plus the PDB's
//!   procedure and public symbols for leaf functions that have no unwind entry.
//! - Edges, found by decoding each function with iced-x86: direct calls, jumps to another
//!   function (tail calls), calls through the import address table (ntoskrnl routines), and
//!   every function whose address the code takes (`lea reg, [rip+f]`), directly or through a
//!   table in data (a vtable, the fast I/O dispatch table): such a function is counted as
//!   callable from where its address is taken, and as an entry point the kernel may call.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

use iced_x86::{Decoder, DecoderOptions, FlowControl, Instruction};
use object::pe::{
    ImageNtHeaders64, IMAGE_DIRECTORY_ENTRY_EXCEPTION, IMAGE_REL_BASED_DIR64, IMAGE_SCN_MEM_EXECUTE,
};
use object::read::pe::{ImageNtHeaders, ImageOptionalHeader, PeFile64};
use object::LittleEndian as LE;
use pdb::FallibleIterator;

use super::unwind::{runtime_functions, total_prologue, Prologue, RuntimeFunction};

/// What a function reaches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Callee {
    /// A function of the image (index into [`CallGraph::functions`]).
    Function(usize),
    /// An imported routine (`ntoskrnl.exe!Name`): its stack is the kernel's, not counted.
    Import(String),
}

/// How it is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// `call`.
    Call,
    /// A jump into another function: counted like a call (an upper bound).
    TailJump,
    /// Its address is taken here: counted as if called from here.
    AddressTaken,
}

/// One edge of the graph.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Edge {
    /// The function or import reached.
    pub callee: Callee,
    /// Call, tail jump or address taken.
    pub kind: EdgeKind,
}

/// One function of the image.
#[derive(Debug, Clone)]
pub struct Function {
    /// RVA of its entry.
    pub start: u32,
    /// Its code: the main range and any chained fragments.
    pub ranges: Vec<(u32, u32)>,
    /// Its name from the PDB (demangled), or `sub_<rva>`.
    pub name: String,
    /// Other names folded onto the same code by the linker (`/OPT:ICF`).
    pub folded: usize,
    /// The prologue's stack use (the largest of its fragments).
    pub prologue: Prologue,
    /// What it calls, jumps to or takes the address of (deduplicated, in order found).
    pub edges: Vec<Edge>,
}

impl Function {
    /// Stack bytes this function's own frame takes, return address included.
    #[must_use]
    pub fn frame(&self) -> u32 {
        self.prologue.frame_bytes()
    }
}

/// The whole graph.
#[derive(Debug, Clone)]
pub struct CallGraph {
    /// Every function, sorted by start.
    pub functions: Vec<Function>,
    /// Entry points the kernel can call, with why: the image entry point, exports, and every
    /// function whose address is taken.
    pub roots: Vec<(usize, &'static str)>,
    image: Image,
    /// The `.pdata` entries, as read.
    pdata: Vec<RuntimeFunction>,
    /// IAT slot RVA -> imported routine name.
    import_slots: HashMap<u32, String>,
}

/// A `.pdata` entry with a language-specific exception handler (NT-24's SEH frames).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerEntry {
    /// The function (or fragment) it covers: RVAs `[begin, end)`.
    pub begin: u32,
    /// One past its last byte.
    pub end: u32,
    /// RVA of the handler.
    pub handler: u32,
    /// The imported routine the handler is a thunk of (`jmp [iat slot]`), if it is one.
    pub handler_import: Option<String>,
    /// The C scope table that follows (`__C_specific_handler`'s language data): (begin, end,
    /// filter or 1, jump target) RVAs per scope; empty when the count is implausible.
    pub scopes: Vec<[u32; 4]>,
}

impl CallGraph {
    /// Every `.pdata` entry with an exception handler, the handler resolved to its import
    /// and its scope table read.
    ///
    /// # Errors
    /// A sentence when an entry's unwind information cannot be read.
    pub fn exception_handlers(&self) -> Result<Vec<HandlerEntry>, String> {
        let read = |rva: u32, len: usize| self.image.read(rva, len);
        let mut out = Vec::new();
        for entry in &self.pdata {
            let info = super::unwind::parse_unwind_info(entry.unwind, &read)?;
            let Some(handler) = info.handler else {
                continue;
            };
            // A thunk is `jmp qword ptr [rip + disp32]` (FF 25).
            let handler_import = self
                .image
                .read(handler, 6)
                .filter(|b| b[0] == 0xFF && b[1] == 0x25)
                .and_then(|b| {
                    let disp = i32::from_le_bytes([b[2], b[3], b[4], b[5]]);
                    let slot = handler.checked_add(6)?.checked_add_signed(disp)?;
                    self.import_slots.get(&slot).cloned()
                });
            // The language data follows the codes (padded to even) and the handler RVA.
            let count = self
                .image
                .read(entry.unwind + 2, 1)
                .map_or(0, |b| u32::from(b[0]));
            let data = entry.unwind + 4 + 2 * ((count + 1) & !1) + 4;
            let scope_count = self
                .image
                .read(data, 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
            let mut scopes = Vec::new();
            if scope_count <= 64 {
                for i in 0..scope_count {
                    let Some(b) = self.image.read(data + 4 + 16 * i, 16) else {
                        break;
                    };
                    let word = |k: usize| u32::from_le_bytes([b[k], b[k + 1], b[k + 2], b[k + 3]]);
                    scopes.push([word(0), word(4), word(8), word(12)]);
                }
            }
            out.push(HandlerEntry {
                begin: entry.begin,
                end: entry.end,
                handler,
                handler_import,
                scopes,
            });
        }
        Ok(out)
    }

    /// Is `rva` in an executable section?
    #[must_use]
    pub fn is_code(&self, rva: u32) -> bool {
        self.image.is_code(rva)
    }

    /// The instructions of the function named `name` (its first range), decoded.
    #[must_use]
    pub fn instructions_of(&self, name: &str) -> Option<Vec<Instruction>> {
        let function = self.functions.iter().find(|f| f.name == name)?;
        let mut out = Vec::new();
        for_each_instruction(function, &self.image, |i| out.push(*i));
        Some(out)
    }
}

#[derive(Debug, Clone)]
struct Section {
    rva: u32,
    virtual_size: u32,
    data: Vec<u8>,
    executable: bool,
}

/// The image's bytes by RVA, and its sections.
#[derive(Debug, Clone)]
struct Image {
    base: u64,
    sections: Vec<Section>,
}

impl Image {
    fn read(&self, rva: u32, len: usize) -> Option<Vec<u8>> {
        let section = self.section(rva)?;
        let start = (rva - section.rva) as usize;
        let end = start.checked_add(len)?;
        if end > section.virtual_size.max(section.data.len() as u32) as usize {
            return None;
        }
        // Bytes past the raw data are zero-filled by the loader.
        let mut out = vec![0; len];
        let available = section.data.len().saturating_sub(start).min(len);
        out[..available].copy_from_slice(&section.data[start..start + available]);
        Some(out)
    }

    fn section(&self, rva: u32) -> Option<&Section> {
        self.sections
            .iter()
            .find(|s| rva >= s.rva && rva < s.rva + s.virtual_size.max(s.data.len() as u32))
    }

    fn is_code(&self, rva: u32) -> bool {
        self.section(rva).is_some_and(|s| s.executable)
    }
}

/// Reads `image` and `pdb` and builds the graph.
///
/// # Errors
/// A sentence naming the file when either cannot be read or parsed, or when the unwind data
/// has something the parser must not guess about.
pub fn build(image_path: &Path, pdb_path: &Path) -> Result<CallGraph, String> {
    let data = std::fs::read(image_path)
        .map_err(|e| format!("cannot read {}: {e}", image_path.display()))?;
    let file = PeFile64::parse(&*data)
        .map_err(|e| format!("{}: not a PE32+ image: {e}", image_path.display()))?;
    let image = load_sections(&file, &data)?;
    let symbols = read_pdb(pdb_path, &image)?;
    let imports = import_slots(&file)?;
    let pointers = pointers_in_data(&file, &data, &image)?;
    let entry = file.nt_headers().optional_header().address_of_entry_point();

    let mut functions = discover_functions(&file, &image, &symbols)?;
    let index: BTreeMap<u32, usize> = functions
        .iter()
        .enumerate()
        .map(|(i, f)| (f.start, i))
        .collect();
    let object_starts = data_object_starts(&functions, &image, &pointers);
    let mut taken = BTreeSet::new();
    for function in &mut functions {
        function.edges = decode_edges(
            function,
            &image,
            &index,
            &imports,
            &pointers,
            &object_starts,
        );
        for edge in &function.edges {
            if let (Callee::Function(i), EdgeKind::AddressTaken) = (&edge.callee, edge.kind) {
                taken.insert(*i);
            }
        }
    }
    let mut roots = Vec::new();
    if let Some(&i) = index.get(&entry) {
        roots.push((i, "image entry point"));
    }
    for i in taken {
        roots.push((i, "address taken"));
    }
    let pdata = read_pdata(&file, &image)?;
    Ok(CallGraph {
        functions,
        roots,
        image,
        pdata,
        import_slots: imports,
    })
}

fn load_sections(file: &PeFile64<'_>, data: &[u8]) -> Result<Image, String> {
    let base = file.nt_headers().optional_header().image_base();
    let mut sections = Vec::new();
    for section in file.section_table().iter() {
        let raw = section
            .pe_data(data)
            .map_err(|e| format!("section data: {e}"))?;
        sections.push(Section {
            rva: section.virtual_address.get(LE),
            virtual_size: section.virtual_size.get(LE),
            data: raw.to_vec(),
            executable: section.characteristics.get(LE) & IMAGE_SCN_MEM_EXECUTE != 0,
        });
    }
    Ok(Image { base, sections })
}

/// Names by RVA: procedure symbols first (they carry lengths), then publics (assembly
/// symbols such as `__chkstk` have only those).
struct Symbols {
    procedures: BTreeMap<u32, (String, u32, usize)>,
}

fn read_pdb(path: &Path, image: &Image) -> Result<Symbols, String> {
    let fail = |e: pdb::Error| format!("{}: {e}", path.display());
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut pdb = pdb::PDB::open(file).map_err(fail)?;
    let address_map = pdb.address_map().map_err(fail)?;
    let mut procedures: BTreeMap<u32, (String, u32, usize)> = BTreeMap::new();
    let add =
        |procedures: &mut BTreeMap<u32, (String, u32, usize)>, rva: u32, name: String, len: u32| {
            procedures
                .entry(rva)
                .and_modify(|(_, l, folded)| {
                    *folded += 1;
                    *l = (*l).max(len);
                })
                .or_insert((name, len, 0));
        };
    let dbi = pdb.debug_information().map_err(fail)?;
    let mut modules = dbi.modules().map_err(fail)?;
    while let Some(module) = modules.next().map_err(fail)? {
        let Some(info) = pdb.module_info(&module).map_err(fail)? else {
            continue;
        };
        let mut symbols = info.symbols().map_err(fail)?;
        while let Some(symbol) = symbols.next().map_err(fail)? {
            if let Ok(pdb::SymbolData::Procedure(p)) = symbol.parse() {
                if let Some(rva) = p.offset.to_rva(&address_map) {
                    add(
                        &mut procedures,
                        rva.0,
                        p.name.to_string().into_owned(),
                        p.len,
                    );
                }
            }
        }
    }
    let globals = pdb.global_symbols().map_err(fail)?;
    let mut publics = globals.iter();
    while let Some(symbol) = publics.next().map_err(fail)? {
        if let Ok(pdb::SymbolData::Public(p)) = symbol.parse() {
            let Some(rva) = p.offset.to_rva(&address_map) else {
                continue;
            };
            if image.is_code(rva.0) && !procedures.contains_key(&rva.0) {
                let raw = p.name.to_string();
                add(
                    &mut procedures,
                    rva.0,
                    format!("{:#}", rustc_demangle::demangle(&raw)),
                    0,
                );
            }
        }
    }
    Ok(Symbols { procedures })
}

/// IAT slot RVA → imported routine name.
fn import_slots(file: &PeFile64<'_>) -> Result<HashMap<u32, String>, String> {
    let mut slots = HashMap::new();
    let Some(table) = file.import_table().map_err(|e| e.to_string())? else {
        return Ok(slots);
    };
    let mut descriptors = table.descriptors().map_err(|e| e.to_string())?;
    while let Some(descriptor) = descriptors.next().map_err(|e| e.to_string())? {
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            rva => rva,
        };
        let mut thunks = table.thunks(lookup).map_err(|e| e.to_string())?;
        let mut slot = descriptor.first_thunk.get(LE);
        while let Some(thunk) = thunks
            .next::<ImageNtHeaders64>()
            .map_err(|e| e.to_string())?
        {
            let name = match table
                .import::<ImageNtHeaders64>(thunk)
                .map_err(|e| e.to_string())?
            {
                object::read::pe::Import::Name(_, name) => {
                    String::from_utf8_lossy(name).into_owned()
                }
                object::read::pe::Import::Ordinal(n) => format!("#{n}"),
            };
            slots.insert(slot, name);
            slot += 8;
        }
    }
    Ok(slots)
}

/// Every absolute pointer the loader relocates: location RVA → target RVA.
fn pointers_in_data(
    file: &PeFile64<'_>,
    data: &[u8],
    image: &Image,
) -> Result<BTreeMap<u32, u32>, String> {
    let mut pointers = BTreeMap::new();
    let sections = file.section_table();
    let Some(mut blocks) = file
        .data_directories()
        .relocation_blocks(data, &sections)
        .map_err(|e| e.to_string())?
    else {
        return Ok(pointers);
    };
    while let Some(block) = blocks.next().map_err(|e| e.to_string())? {
        for relocation in block {
            if relocation.typ != IMAGE_REL_BASED_DIR64 {
                continue;
            }
            let Some(bytes) = image.read(relocation.virtual_address, 8) else {
                continue;
            };
            let mut word = [0; 8];
            word.copy_from_slice(&bytes);
            let target = u64::from_le_bytes(word).wrapping_sub(image.base);
            if let Ok(target) = u32::try_from(target) {
                pointers.insert(relocation.virtual_address, target);
            }
        }
    }
    Ok(pointers)
}

fn read_pdata(file: &PeFile64<'_>, image: &Image) -> Result<Vec<RuntimeFunction>, String> {
    let directory = file
        .data_directories()
        .get(IMAGE_DIRECTORY_ENTRY_EXCEPTION)
        .ok_or("the image has no exception directory (.pdata)")?;
    let pdata = image
        .read(
            directory.virtual_address.get(LE),
            directory.size.get(LE) as usize,
        )
        .ok_or(".pdata is outside the image")?;
    Ok(runtime_functions(&pdata))
}

fn discover_functions(
    file: &PeFile64<'_>,
    image: &Image,
    symbols: &Symbols,
) -> Result<Vec<Function>, String> {
    let read = |rva: u32, len: usize| image.read(rva, len);
    let mut by_start: BTreeMap<u32, Function> = BTreeMap::new();
    for entry in read_pdata(file, image)? {
        let (prologue, owner) = total_prologue(entry, &read)?;
        let function = by_start.entry(owner).or_insert_with(|| Function {
            start: owner,
            ranges: Vec::new(),
            name: String::new(),
            folded: 0,
            prologue: Prologue::default(),
            edges: Vec::new(),
        });
        function.ranges.push((entry.begin, entry.end));
        if prologue.frame_bytes() > function.prologue.frame_bytes() {
            function.prologue = prologue;
        }
    }
    // Leaf functions (no unwind entry): they take no stack but the return address, yet may
    // jump on to others, so they are decoded too, up to their symbol's length or the next
    // function.
    for (&rva, (_, len, _)) in &symbols.procedures {
        if by_start.contains_key(&rva) || inside_any(&by_start, rva) {
            continue;
        }
        let end = if *len > 0 { rva + len } else { rva };
        by_start.insert(
            rva,
            Function {
                start: rva,
                ranges: vec![(rva, end)],
                name: String::new(),
                folded: 0,
                prologue: Prologue::default(),
                edges: Vec::new(),
            },
        );
    }
    let starts: Vec<u32> = by_start.keys().copied().collect();
    let mut functions: Vec<Function> = by_start.into_values().collect();
    for (i, function) in functions.iter_mut().enumerate() {
        let next = starts.get(i + 1).copied().unwrap_or(u32::MAX);
        for range in &mut function.ranges {
            if range.1 <= range.0 {
                range.1 = next.min(range.0 + 4096);
            }
        }
        match symbols.procedures.get(&function.start) {
            Some((name, _, folded)) => {
                function.name.clone_from(name);
                function.folded = *folded;
            }
            None => function.name = format!("sub_{:x}", function.start),
        }
    }
    Ok(functions)
}

fn inside_any(by_start: &BTreeMap<u32, Function>, rva: u32) -> bool {
    by_start
        .range(..rva)
        .next_back()
        .is_some_and(|(_, f)| f.ranges.iter().any(|&(b, e)| rva >= b && rva < e))
}

/// Where data objects start: addresses the code refers to and pointer targets in data. A
/// table is scanned for function pointers only up to the next such start.
fn data_object_starts(
    functions: &[Function],
    image: &Image,
    pointers: &BTreeMap<u32, u32>,
) -> BTreeSet<u32> {
    let mut starts: BTreeSet<u32> = pointers
        .values()
        .copied()
        .filter(|&t| !image.is_code(t))
        .collect();
    for function in functions {
        for_each_instruction(function, image, |instruction| {
            if instruction.is_ip_rel_memory_operand() {
                if let Ok(rva) =
                    u32::try_from(instruction.ip_rel_memory_address().wrapping_sub(image.base))
                {
                    if !image.is_code(rva) {
                        starts.insert(rva);
                    }
                }
            }
        });
    }
    starts
}

fn for_each_instruction(function: &Function, image: &Image, mut visit: impl FnMut(&Instruction)) {
    for &(begin, end) in &function.ranges {
        let Some(code) = image.read(begin, (end - begin) as usize) else {
            continue;
        };
        let mut decoder = Decoder::with_ip(
            64,
            &code,
            image.base + u64::from(begin),
            DecoderOptions::NONE,
        );
        let mut instruction = Instruction::default();
        while decoder.can_decode() {
            decoder.decode_out(&mut instruction);
            visit(&instruction);
        }
    }
}

fn decode_edges(
    function: &Function,
    image: &Image,
    index: &BTreeMap<u32, usize>,
    imports: &HashMap<u32, String>,
    pointers: &BTreeMap<u32, u32>,
    object_starts: &BTreeSet<u32>,
) -> Vec<Edge> {
    let mut edges: Vec<Edge> = Vec::new();
    let mut push = |edge: Edge| {
        if !edges.contains(&edge) {
            edges.push(edge);
        }
    };
    let to_rva = |va: u64| u32::try_from(va.wrapping_sub(image.base)).ok();
    let own = |rva: u32| function.ranges.iter().any(|&(b, e)| rva >= b && rva < e);
    for_each_instruction(function, image, |instruction| {
        match instruction.flow_control() {
            FlowControl::Call
            | FlowControl::UnconditionalBranch
            | FlowControl::ConditionalBranch => {
                let Some(target) = to_rva(instruction.near_branch_target()) else {
                    return;
                };
                let kind = if instruction.flow_control() == FlowControl::Call {
                    EdgeKind::Call
                } else {
                    EdgeKind::TailJump
                };
                if own(target) && kind != EdgeKind::Call {
                    return;
                }
                if let Some(&callee) = index.get(&target) {
                    push(Edge {
                        callee: Callee::Function(callee),
                        kind,
                    });
                }
                return;
            }
            FlowControl::IndirectCall | FlowControl::IndirectBranch
                if instruction.is_ip_rel_memory_operand() =>
            {
                if let Some(name) =
                    to_rva(instruction.ip_rel_memory_address()).and_then(|slot| imports.get(&slot))
                {
                    push(Edge {
                        callee: Callee::Import(name.clone()),
                        kind: EdgeKind::Call,
                    });
                    return;
                }
            }
            _ => {}
        }
        if !instruction.is_ip_rel_memory_operand() {
            return;
        }
        let Some(target) = to_rva(instruction.ip_rel_memory_address()) else {
            return;
        };
        if let Some(&callee) = index.get(&target) {
            push(Edge {
                callee: Callee::Function(callee),
                kind: EdgeKind::AddressTaken,
            });
        } else if !image.is_code(target) {
            for callee in functions_in_table(target, index, pointers, object_starts, image) {
                push(Edge {
                    callee: Callee::Function(callee),
                    kind: EdgeKind::AddressTaken,
                });
            }
        }
    });
    edges
}

/// Functions whose addresses sit in the data object at `start` (a vtable, a dispatch table),
/// following pointers to other data objects a few levels deep.
fn functions_in_table(
    start: u32,
    index: &BTreeMap<u32, usize>,
    pointers: &BTreeMap<u32, u32>,
    object_starts: &BTreeSet<u32>,
    image: &Image,
) -> Vec<usize> {
    const MAX_OBJECT: u32 = 1024;
    const MAX_DEPTH: usize = 3;
    let mut found = Vec::new();
    let mut seen = BTreeSet::new();
    let mut pending = vec![(start, 0)];
    while let Some((object, depth)) = pending.pop() {
        if !seen.insert(object) {
            continue;
        }
        let end = object_starts
            .range(object + 1..)
            .next()
            .copied()
            .unwrap_or(u32::MAX)
            .min(object.saturating_add(MAX_OBJECT));
        for (_, &target) in pointers.range(object..end) {
            if let Some(&callee) = index.get(&target) {
                if !found.contains(&callee) {
                    found.push(callee);
                }
            } else if depth < MAX_DEPTH && !image.is_code(target) {
                pending.push((target, depth + 1));
            }
        }
    }
    found
}
