//! Facts of a driver image that decide whether Windows loads it, read with `object`.

use std::path::Path;

use object::pe::{
    ImageNtHeaders64, IMAGE_DIRECTORY_ENTRY_BASERELOC, IMAGE_DIRECTORY_ENTRY_SECURITY,
    IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY, IMAGE_DLLCHARACTERISTICS_NX_COMPAT,
    IMAGE_FILE_MACHINE_AMD64, IMAGE_NT_OPTIONAL_HDR64_MAGIC, IMAGE_SUBSYSTEM_NATIVE,
};
use object::read::pe::{ExportTarget, ImageNtHeaders, ImageOptionalHeader, Import, PeFile64};
use object::LittleEndian as LE;

use crate::exports::{KernelExports, Provenance, REQUIRED_IMPORTS};

/// One imported routine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedName {
    /// The DLL named in the import descriptor (`ntoskrnl.exe`).
    pub dll: String,
    /// The routine's name (`#N` for an import by ordinal).
    pub name: String,
}

/// What the checks need to know about an image.
#[derive(Debug, Clone)]
pub struct ImageFacts {
    /// Optional header magic is PE32+ (0x20b).
    pub pe32_plus: bool,
    /// COFF machine.
    pub machine: u16,
    /// Optional header subsystem.
    pub subsystem: u16,
    /// DllCharacteristics.
    pub dll_characteristics: u16,
    /// AddressOfEntryPoint (RVA).
    pub entry_point: u32,
    /// Optional header CheckSum (the kernel loader checks it for drivers).
    pub checksum: u32,
    /// RVA of the export `DriverEntry`, if exported.
    pub driver_entry: Option<u32>,
    /// Every exported name.
    pub exports: Vec<String>,
    /// Section names in order.
    pub sections: Vec<String>,
    /// Base relocation directory size.
    pub reloc_size: u32,
    /// Certificate table (Authenticode signature) size.
    pub certificate_size: u32,
    /// Every imported routine.
    pub imports: Vec<ImportedName>,
}

fn err(path: &Path, what: &str, e: impl std::fmt::Display) -> String {
    format!("{}: {what}: {e}", path.display())
}

impl ImageFacts {
    /// Reads the image at `path`.
    ///
    /// # Errors
    /// A sentence naming the file when it is missing (with how to build it) or not a PE32+.
    pub fn read(path: &Path) -> Result<Self, String> {
        let data = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read the driver image {} ({e}); build it with scripts/build-driver",
                path.display()
            )
        })?;
        Self::parse(path, &data)
    }

    /// Parses image bytes; `path` only names them in errors.
    ///
    /// # Errors
    /// When the bytes are not a PE32+ image this parser can read.
    pub fn parse(path: &Path, data: &[u8]) -> Result<Self, String> {
        let file = PeFile64::parse(data).map_err(|e| err(path, "not a PE32+ image", e))?;
        let nt = file.nt_headers();
        let optional = nt.optional_header();
        let directories = file.data_directories();
        let dir_size = |index: usize| directories.get(index).map_or(0, |d| d.size.get(LE));
        let mut sections = Vec::new();
        for section in file.section_table().iter() {
            sections.push(String::from_utf8_lossy(section.raw_name()).into_owned());
        }
        let exported = match file
            .export_table()
            .map_err(|e| err(path, "export table", e))?
        {
            Some(table) => table.exports().map_err(|e| err(path, "exports", e))?,
            None => Vec::new(),
        };
        let driver_entry = exported
            .iter()
            .find(|e| e.name == Some(&b"DriverEntry"[..]))
            .and_then(|e| match e.target {
                ExportTarget::Address(rva) => Some(rva),
                _ => None,
            });
        let exports = exported
            .iter()
            .map(|e| {
                e.name.map_or_else(
                    || format!("#{}", e.ordinal),
                    |n| String::from_utf8_lossy(n).into_owned(),
                )
            })
            .collect();
        Ok(Self {
            pe32_plus: optional.magic() == IMAGE_NT_OPTIONAL_HDR64_MAGIC,
            machine: nt.file_header().machine.get(LE),
            subsystem: optional.subsystem(),
            dll_characteristics: optional.dll_characteristics(),
            entry_point: optional.address_of_entry_point(),
            checksum: optional.check_sum(),
            driver_entry,
            exports,
            sections,
            reloc_size: dir_size(IMAGE_DIRECTORY_ENTRY_BASERELOC),
            certificate_size: dir_size(IMAGE_DIRECTORY_ENTRY_SECURITY),
            imports: read_imports(path, &file)?,
        })
    }

    /// Has a `.reloc` section with base relocations (drivers are always relocated).
    #[must_use]
    pub fn has_relocations(&self) -> bool {
        self.sections.iter().any(|s| s == ".reloc") && self.reloc_size > 0
    }
}

fn read_imports(path: &Path, file: &PeFile64<'_>) -> Result<Vec<ImportedName>, String> {
    let mut out = Vec::new();
    let Some(table) = file
        .import_table()
        .map_err(|e| err(path, "import table", e))?
    else {
        return Ok(out);
    };
    let mut descriptors = table
        .descriptors()
        .map_err(|e| err(path, "import descriptors", e))?;
    while let Some(descriptor) = descriptors
        .next()
        .map_err(|e| err(path, "import descriptor", e))?
    {
        let dll = table
            .name(descriptor.name.get(LE))
            .map_err(|e| err(path, "import DLL name", e))?;
        let dll = String::from_utf8_lossy(dll).into_owned();
        // The lookup table (OriginalFirstThunk) keeps names after binding; fall back to the
        // address table for images without one.
        let lookup = match descriptor.original_first_thunk.get(LE) {
            0 => descriptor.first_thunk.get(LE),
            rva => rva,
        };
        let mut thunks = table
            .thunks(lookup)
            .map_err(|e| err(path, "import thunks", e))?;
        while let Some(thunk) = thunks
            .next::<ImageNtHeaders64>()
            .map_err(|e| err(path, "import thunk", e))?
        {
            let name = match table
                .import::<ImageNtHeaders64>(thunk)
                .map_err(|e| err(path, "import", e))?
            {
                Import::Name(_hint, name) => String::from_utf8_lossy(name).into_owned(),
                Import::Ordinal(ordinal) => format!("#{ordinal}"),
            };
            out.push(ImportedName {
                dll: dll.clone(),
                name,
            });
        }
    }
    Ok(out)
}

/// Every way `facts` falls short of a loadable, signed cowfat.sys; empty when it is fine.
/// `require_signature` is false for the unsigned link output.
#[must_use]
pub fn check_image(
    facts: &ImageFacts,
    exports: &KernelExports,
    require_signature: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    expect(facts.pe32_plus, "optional header is not PE32+".into());
    expect(
        facts.machine == IMAGE_FILE_MACHINE_AMD64,
        format!("machine is {:#06x}, expected AMD64 (0x8664)", facts.machine),
    );
    expect(
        facts.subsystem == IMAGE_SUBSYSTEM_NATIVE,
        format!("subsystem is {}, expected NATIVE (1)", facts.subsystem),
    );
    match facts.driver_entry {
        Some(rva) => expect(
            rva == facts.entry_point,
            format!(
                "entry point {:#x} is not DriverEntry ({rva:#x})",
                facts.entry_point
            ),
        ),
        None => expect(false, "DriverEntry is not exported".into()),
    }
    expect(
        facts.exports == ["DriverEntry"],
        format!("exports are {:?}, expected only DriverEntry", facts.exports),
    );
    expect(
        facts.has_relocations(),
        format!(
            "no .reloc section with base relocations (sections: {:?})",
            facts.sections
        ),
    );
    expect(
        facts.checksum != 0,
        "PE checksum is 0 (link with /RELEASE)".into(),
    );
    expect(
        facts.dll_characteristics & IMAGE_DLLCHARACTERISTICS_NX_COMPAT != 0,
        "not NX_COMPAT".into(),
    );
    expect(
        facts.dll_characteristics & IMAGE_DLLCHARACTERISTICS_FORCE_INTEGRITY != 0,
        "FORCE_INTEGRITY not set (link with /INTEGRITYCHECK)".into(),
    );
    if require_signature {
        expect(
            facts.certificate_size > 0,
            "image is not signed (no certificate table)".into(),
        );
    }
    for required in REQUIRED_IMPORTS {
        expect(
            facts.imports.iter().any(|i| i.name == *required),
            format!("required import {required} is missing"),
        );
    }
    for import in &facts.imports {
        if let Err(why) = exports.check(&import.dll, &import.name) {
            problems.push(why);
        }
    }
    problems
}

/// One line per import with where its legitimacy comes from, for the report.
#[must_use]
pub fn describe_imports(facts: &ImageFacts, exports: &KernelExports) -> Vec<String> {
    facts
        .imports
        .iter()
        .map(|i| match exports.check(&i.dll, &i.name) {
            Ok(Provenance::Reference) => format!("{}!{}", i.dll, i.name),
            Ok(Provenance::Allowlist(since)) => {
                format!("{}!{} (allowlist: {since})", i.dll, i.name)
            }
            Err(why) => format!("{}!{} <- {why}", i.dll, i.name),
        })
        .collect()
}
