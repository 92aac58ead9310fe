//! The type records of cowfat.pdb as data: for each structure or union, its size and every
//! named field's offset, size and type name; and the type of each global data symbol. The
//! WinDbg extension's stand-in host (windbg/test) answers `host.getModuleType` from this, and
//! the layout test compares it with the host build's layout.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::Path;

use pdb::{FallibleIterator, PrimitiveKind, SymbolData, TypeData, TypeFinder, TypeIndex};

/// One field of a structure.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    /// Its name.
    pub name: String,
    /// Byte offset in the structure.
    pub offset: u64,
    /// Size of its type in bytes.
    pub size: u64,
    /// Name of its type when that is a structure, union or enumeration, else a short kind
    /// (`pointer`, `u32`, `array`, ...).
    pub type_name: String,
}

/// A structure or union.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Type {
    /// `sizeof`.
    pub size: u64,
    /// Named fields in declaration order.
    pub fields: Vec<Field>,
}

/// What the PDB says.
#[derive(Clone, Debug, Default)]
pub struct PdbTypes {
    /// Complete structures and unions by name (the first definition of a name).
    pub types: BTreeMap<String, Type>,
    /// Global data symbols by name, with their type's name.
    pub globals: BTreeMap<String, String>,
}

impl PdbTypes {
    /// Reads every structure, union and global data symbol of `path`.
    ///
    /// # Errors
    /// The file cannot be read or is not a PDB.
    pub fn read(path: &Path) -> Result<Self, String> {
        let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut pdb = pdb::PDB::open(file).map_err(|e| format!("{}: {e}", path.display()))?;
        let info = pdb.type_information().map_err(|e| e.to_string())?;
        let mut finder = info.finder();
        let mut iter = info.iter();
        let mut records = Vec::new();
        while let Some(item) = iter.next().map_err(|e| e.to_string())? {
            finder.update(&iter);
            records.push(item.index());
        }
        // Sizes of forward references come from the definition of the same name.
        let mut sizes_by_name = BTreeMap::new();
        for &index in &records {
            if let Some((name, size, false)) = udt_header(&finder, index) {
                sizes_by_name.entry(name).or_insert(size);
            }
        }
        let mut out = PdbTypes::default();
        for &index in &records {
            let Some((name, size, false)) = udt_header(&finder, index) else {
                continue;
            };
            if out.types.contains_key(&name) {
                continue;
            }
            let fields = fields_of(&finder, index, &sizes_by_name)?;
            out.types.insert(name, Type { size, fields });
        }
        let symbols = pdb.global_symbols().map_err(|e| e.to_string())?;
        let mut symbols = symbols.iter();
        while let Some(symbol) = symbols.next().map_err(|e| e.to_string())? {
            if let Ok(SymbolData::Data(data)) = symbol.parse() {
                let type_name = describe(&finder, data.type_index, &sizes_by_name).1;
                out.globals
                    .insert(data.name.to_string().into_owned(), type_name);
            }
        }
        Ok(out)
    }
}

/// Name, size and forward-reference flag of a structure or union record.
fn udt_header(finder: &TypeFinder<'_>, index: TypeIndex) -> Option<(String, u64, bool)> {
    match finder.find(index).ok()?.parse().ok()? {
        TypeData::Class(c) => Some((
            c.name.to_string().into_owned(),
            c.size,
            c.properties.forward_reference(),
        )),
        TypeData::Union(u) => Some((
            u.name.to_string().into_owned(),
            u.size,
            u.properties.forward_reference(),
        )),
        _ => None,
    }
}

fn fields_of(
    finder: &TypeFinder<'_>,
    index: TypeIndex,
    sizes: &BTreeMap<String, u64>,
) -> Result<Vec<Field>, String> {
    let list = match finder.find(index).and_then(|t| t.parse()) {
        Ok(TypeData::Class(c)) => c.fields,
        Ok(TypeData::Union(u)) => Some(u.fields),
        _ => None,
    };
    let mut fields = Vec::new();
    let mut next = list;
    while let Some(list) = next {
        let Ok(TypeData::FieldList(list)) = finder.find(list).and_then(|t| t.parse()) else {
            break;
        };
        for field in list.fields {
            if let TypeData::Member(m) = field {
                let (size, type_name) = describe(finder, m.field_type, sizes);
                fields.push(Field {
                    name: m.name.to_string().into_owned(),
                    offset: m.offset,
                    size,
                    type_name,
                });
            }
        }
        next = list.continuation;
    }
    Ok(fields)
}

/// Size and a name of a type (iterative: modifiers and bit fields are unwrapped in a loop).
fn describe(
    finder: &TypeFinder<'_>,
    index: TypeIndex,
    sizes: &BTreeMap<String, u64>,
) -> (u64, String) {
    let mut index = index;
    for _ in 0..16 {
        let Ok(data) = finder.find(index).and_then(|t| t.parse()) else {
            return (0, "unknown".into());
        };
        match data {
            TypeData::Primitive(p) => {
                if p.indirection.is_some() {
                    return (8, "pointer".into());
                }
                return (
                    primitive_size(p.kind),
                    format!("{:?}", p.kind).to_lowercase(),
                );
            }
            TypeData::Class(c) => {
                let name = c.name.to_string().into_owned();
                let size = sizes.get(&name).copied().unwrap_or(c.size);
                return (size, name);
            }
            TypeData::Union(u) => {
                let name = u.name.to_string().into_owned();
                let size = sizes.get(&name).copied().unwrap_or(u.size);
                return (size, name);
            }
            TypeData::Pointer(p) => return (u64::from(p.attributes.size()), "pointer".into()),
            TypeData::Array(a) => {
                return (
                    u64::from(a.dimensions.last().copied().unwrap_or(0)),
                    "array".into(),
                )
            }
            TypeData::Enumeration(e) => {
                let name = e.name.to_string().into_owned();
                let size = describe_primitive_only(finder, e.underlying_type);
                return (size, name);
            }
            TypeData::Modifier(m) => index = m.underlying_type,
            TypeData::Bitfield(b) => index = b.underlying_type,
            _ => return (0, "other".into()),
        }
    }
    (0, "unknown".into())
}

fn describe_primitive_only(finder: &TypeFinder<'_>, index: TypeIndex) -> u64 {
    match finder.find(index).and_then(|t| t.parse()) {
        Ok(TypeData::Primitive(p)) => primitive_size(p.kind),
        _ => 0,
    }
}

fn primitive_size(kind: PrimitiveKind) -> u64 {
    use PrimitiveKind as K;
    match kind {
        K::NoType | K::Void => 0,
        K::Char | K::UChar | K::RChar | K::I8 | K::U8 | K::Bool8 => 1,
        K::WChar | K::RChar16 | K::Short | K::UShort | K::I16 | K::U16 | K::Bool16 | K::F16 => 2,
        K::RChar32
        | K::Long
        | K::ULong
        | K::I32
        | K::U32
        | K::Bool32
        | K::F32
        | K::F32PP
        | K::HRESULT => 4,
        K::F48 => 6,
        K::Quad | K::UQuad | K::I64 | K::U64 | K::Bool64 | K::F64 | K::Complex32 => 8,
        K::F80 => 10,
        K::Octa | K::UOcta | K::I128 | K::U128 | K::F128 | K::Complex64 => 16,
        K::Complex80 => 20,
        K::Complex128 => 32,
        _ => 0,
    }
}
