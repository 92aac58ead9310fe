//! x64 unwind information (`.pdata` / `.xdata`): how many bytes of stack a function's prologue
//! takes. The unwind codes are exact where a disassembled prologue is a guess: the kernel's own
//! unwinder reads them, so they must describe every push and every `sub rsp` (including the
//! size handed to `__chkstk`).

/// `UNW_FLAG_CHAININFO`: this entry continues another function's unwind information.
const UNW_FLAG_CHAININFO: u8 = 0x4;

/// The stack a function's prologue takes, by kind.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Prologue {
    /// Non-volatile registers pushed (`UWOP_PUSH_NONVOL`), 8 bytes each.
    pub pushes: u32,
    /// Bytes allocated with `sub rsp` (`UWOP_ALLOC_SMALL` / `UWOP_ALLOC_LARGE`).
    pub allocation: u32,
    /// Bytes of a machine frame (`UWOP_PUSH_MACHFRAME`), only in interrupt/trap handlers.
    pub machine_frame: u32,
}

impl Prologue {
    /// Bytes below the caller's stack pointer while the body runs: the return address, the
    /// pushes and the allocation.
    #[must_use]
    pub fn frame_bytes(&self) -> u32 {
        8 + self.pushes * 8 + self.allocation + self.machine_frame
    }

    fn add(&mut self, other: Prologue) {
        self.pushes += other.pushes;
        self.allocation += other.allocation;
        self.machine_frame += other.machine_frame;
    }
}

/// One `.pdata` entry: a function (or a chained fragment of one) and its unwind codes.
#[derive(Debug, Clone, Copy)]
pub struct RuntimeFunction {
    /// RVA of the first byte.
    pub begin: u32,
    /// RVA one past the last byte.
    pub end: u32,
    /// RVA of its UNWIND_INFO.
    pub unwind: u32,
}

/// Reads the `.pdata` table (RUNTIME_FUNCTION, 12 bytes each).
#[must_use]
pub fn runtime_functions(pdata: &[u8]) -> Vec<RuntimeFunction> {
    pdata
        .chunks_exact(12)
        .map(|e| RuntimeFunction {
            begin: le32(e, 0),
            end: le32(e, 4),
            unwind: le32(e, 8),
        })
        .filter(|f| f.begin != 0 || f.end != 0)
        .collect()
}

/// What an UNWIND_INFO says: the prologue's stack use and, for a chained fragment, the
/// function it belongs to, and the exception handler's RVA when there is one.
#[derive(Debug, Clone, Copy)]
pub struct UnwindInfo {
    /// Stack taken by this entry's own codes.
    pub prologue: Prologue,
    /// For `UNW_FLAG_CHAININFO`: the parent entry.
    pub chained_to: Option<RuntimeFunction>,
    /// For `UNW_FLAG_EHANDLER` / `UNW_FLAG_UHANDLER`: the language handler's RVA.
    pub handler: Option<u32>,
}

/// Parses the UNWIND_INFO at `rva`; `read(rva, len)` returns image bytes.
///
/// # Errors
/// A sentence when the structure is truncated or uses a version or code this parser does not
/// know (the report must not guess a frame size).
pub fn parse_unwind_info(
    rva: u32,
    read: &dyn Fn(u32, usize) -> Option<Vec<u8>>,
) -> Result<UnwindInfo, String> {
    let header =
        read(rva, 4).ok_or_else(|| format!("UNWIND_INFO at {rva:#x} is outside the image"))?;
    let version = header[0] & 0x7;
    let flags = header[0] >> 3;
    if version != 1 && version != 2 {
        return Err(format!("UNWIND_INFO at {rva:#x} has version {version}"));
    }
    let count = usize::from(header[2]);
    let codes = read(rva + 4, count * 2)
        .ok_or_else(|| format!("unwind codes at {rva:#x} run past the image"))?;
    let mut prologue = Prologue::default();
    let slot = |i: usize| -> Result<u32, String> {
        if i >= count {
            return Err(format!(
                "UNWIND_INFO at {rva:#x}: an allocation code is cut short"
            ));
        }
        Ok(u32::from(u16::from_le_bytes([
            codes[2 * i],
            codes[2 * i + 1],
        ])))
    };
    let mut i = 0;
    while i < count {
        let op = codes[2 * i + 1] & 0xF;
        let info = u32::from(codes[2 * i + 1] >> 4);
        let slots = match op {
            0 => {
                prologue.pushes += 1;
                1
            }
            1 if info == 0 => {
                prologue.allocation += slot(i + 1)? * 8;
                2
            }
            1 => {
                prologue.allocation += slot(i + 1)? | (slot(i + 2)? << 16);
                3
            }
            2 => {
                prologue.allocation += info * 8 + 8;
                1
            }
            3 => 1,                 // UWOP_SET_FPREG: no stack of its own
            4 | 8 => 2,             // UWOP_SAVE_NONVOL / SAVE_XMM128: into the allocation
            5 | 9 => 3,             // the _FAR forms
            6 if version == 2 => 2, // UWOP_EPILOG (version 2 epilog descriptions)
            10 => {
                prologue.machine_frame += if info == 0 { 40 } else { 48 };
                1
            }
            _ => {
                return Err(format!(
                    "UNWIND_INFO at {rva:#x}: unknown unwind operation {op}"
                ))
            }
        };
        i += slots;
    }
    // Codes are padded to an even number of slots; the chained entry or handler follows.
    let tail = rva + 4 + 2 * (((count + 1) & !1) as u32);
    let mut chained_to = None;
    let mut handler = None;
    if flags & UNW_FLAG_CHAININFO != 0 {
        let e = read(tail, 12)
            .ok_or_else(|| format!("chained entry at {tail:#x} is outside the image"))?;
        chained_to = Some(RuntimeFunction {
            begin: le32(&e, 0),
            end: le32(&e, 4),
            unwind: le32(&e, 8),
        });
    } else if flags & 0x3 != 0 {
        let h = read(tail, 4)
            .ok_or_else(|| format!("handler RVA at {tail:#x} is outside the image"))?;
        handler = Some(le32(&h, 0));
    }
    Ok(UnwindInfo {
        prologue,
        chained_to,
        handler,
    })
}

/// The whole prologue of a function entry: its own codes plus those of every entry it is
/// chained to (a fragment runs on its parent's frame).
///
/// # Errors
/// As [`parse_unwind_info`], or a chain longer than any compiler emits.
pub fn total_prologue(
    entry: RuntimeFunction,
    read: &dyn Fn(u32, usize) -> Option<Vec<u8>>,
) -> Result<(Prologue, u32), String> {
    let mut total = Prologue::default();
    let mut current = entry;
    for _ in 0..32 {
        let info = parse_unwind_info(current.unwind, read)?;
        total.add(info.prologue);
        match info.chained_to {
            Some(parent) => current = parent,
            None => return Ok((total, current.begin)),
        }
    }
    Err(format!("unwind chain from {:#x} does not end", entry.begin))
}

fn le32(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(bytes: Vec<u8>) -> Result<UnwindInfo, String> {
        parse_unwind_info(0x1000, &move |rva, len| {
            let start = (rva - 0x1000) as usize;
            bytes.get(start..start + len).map(<[u8]>::to_vec)
        })
    }

    #[test]
    fn pushes_and_small_and_large_allocations_add_up() {
        // push rbx; push rsi; sub rsp, 0x28 (ALLOC_SMALL info 4); then ALLOC_LARGE 0x2000/8.
        let bytes = vec![
            0x01, 0x0A, 5, 0x00, // version 1, prolog of 10 bytes, 5 slots
            0x0A, 0x01, // ALLOC_LARGE, info 0: the next slot is the size / 8
            0x00, 0x04, // 0x0400 * 8 = 0x2000
            0x06, 0x42, // ALLOC_SMALL, info 4: 4 * 8 + 8 = 40
            0x02, 0x60, // PUSH_NONVOL rsi
            0x01, 0x30, // PUSH_NONVOL rbx
            0x00, 0x00, // padding to an even count
        ];
        let parsed = info(bytes).expect("parses");
        assert_eq!(parsed.prologue.pushes, 2);
        assert_eq!(parsed.prologue.allocation, 0x2000 + 40);
        assert_eq!(parsed.prologue.frame_bytes(), 8 + 16 + 0x2000 + 40);
    }

    #[test]
    fn an_unknown_operation_is_an_error_not_a_guess() {
        let bytes = vec![0x01, 0x00, 2, 0x00, 0x00, 0x0F, 0, 0];
        assert!(info(bytes)
            .unwrap_err()
            .contains("unknown unwind operation 15"));
    }
}
