//! The stack report of cowfat.sys (NT-23): every function's frame, read from its unwind codes,
//! and the deepest call path from every entry point the kernel can call, checked against the
//! budgets. The x64 kernel stack is 24 KiB for the I/O manager, the filters above, the file
//! system, Cc and Mm, and the storage stack below; a file system is re-entered on the same stack
//! through page faults, so its own share must stay small.

pub mod graph;
pub mod report;
pub mod unwind;

pub use graph::{build, CallGraph, HandlerEntry};
pub use report::{analyse, Budgets, StackReport, NT23};

use iced_x86::{FlowControl, Mnemonic, OpKind, Register};

/// Checks that the image's `__chkstk` really probes: a loop that steps down a page at a time
/// (`sub reg, 0x1000` and a backward jump) touching memory through a register as it goes, and
/// that it restores every register it pushes. A bare `ret` (what the image had before) fails.
///
/// # Errors
/// A sentence naming what is missing.
pub fn check_chkstk(graph: &CallGraph) -> Result<(), String> {
    let code = graph
        .instructions_of("__chkstk")
        .ok_or("the image has no __chkstk (the PDB names none)")?;
    let steps_a_page = code.iter().any(|i| {
        i.mnemonic() == Mnemonic::Sub
            && i.op0_kind() == OpKind::Register
            && matches!(
                i.op1_kind(),
                OpKind::Immediate32to64 | OpKind::Immediate32 | OpKind::Immediate8to64
            )
            && i.immediate(1) == 0x1000
    });
    let touches_memory = code.iter().any(|i| {
        i.op_count() > 0
            && (0..i.op_count()).any(|n| i.op_kind(n) == OpKind::Memory)
            && i.memory_base() != Register::None
            && i.memory_base() != Register::RSP
            && i.memory_base() != Register::RIP
    });
    let loops_back = code.iter().any(|i| {
        matches!(
            i.flow_control(),
            FlowControl::UnconditionalBranch | FlowControl::ConditionalBranch
        ) && i.near_branch_target() < i.ip()
    });
    let pushes: Vec<Register> = code
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Push)
        .map(|i| i.op0_register())
        .collect();
    let pops: Vec<Register> = code
        .iter()
        .filter(|i| i.mnemonic() == Mnemonic::Pop)
        .map(|i| i.op0_register())
        .collect();
    let balanced = pushes.iter().rev().eq(pops.iter());
    let mut missing = Vec::new();
    if !steps_a_page {
        missing.push("no `sub reg, 0x1000` page step");
    }
    if !touches_memory {
        missing.push("no memory touch through a register");
    }
    if !loops_back {
        missing.push("no loop (backward jump)");
    }
    if !balanced {
        missing.push("pushes and pops do not match (a register is not preserved)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "__chkstk does not probe the stack: {}",
            missing.join(", ")
        ))
    }
}

/// The name of fs-driver's SEH frame (`fs-driver/src/seh.rs`).
pub const SEH_TRAMPOLINE: &str = "cowfat_seh_try";

/// NT-24: the SEH frame is really there. The trampoline has a `.pdata` entry whose exception
/// handler is a thunk of `__C_specific_handler` from the import table, with one scope that lies
/// inside it and covers its call, a filter in code and a jump target inside it; and it is the
/// only function with a handler (nothing else may claim to catch).
///
/// # Errors
/// A sentence naming what is missing.
pub fn check_seh(graph: &CallGraph) -> Result<(), String> {
    let start = graph
        .functions
        .iter()
        .find(|f| f.name == SEH_TRAMPOLINE)
        .map(|f| f.start)
        .ok_or("the image has no cowfat_seh_try (the PDB names none): no SEH frame")?;
    let handlers = graph.exception_handlers()?;
    let entry = handlers
        .iter()
        .find(|h| h.begin == start)
        .ok_or("cowfat_seh_try's .pdata entry has no exception handler (UNW_FLAG_EHANDLER)")?;
    if entry.handler_import.as_deref() != Some("__C_specific_handler") {
        return Err(format!(
            "cowfat_seh_try's exception handler at {:#x} is {:?}, not the import __C_specific_handler",
            entry.handler, entry.handler_import
        ));
    }
    let [begin, end, filter, target] = match entry.scopes.as_slice() {
        [scope] => *scope,
        other => return Err(format!("cowfat_seh_try has {} scopes, not 1", other.len())),
    };
    let inside = |rva: u32| rva >= entry.begin && rva < entry.end;
    if !(inside(begin) && begin < end && end <= entry.end) {
        return Err(format!(
            "cowfat_seh_try's scope [{begin:#x}, {end:#x}) is not inside it"
        ));
    }
    if filter != 1 && !graph.is_code(filter) {
        return Err(format!("cowfat_seh_try's filter {filter:#x} is not code"));
    }
    if !inside(target) {
        return Err(format!(
            "cowfat_seh_try's handler target {target:#x} is not inside it"
        ));
    }
    let others: Vec<u32> = handlers
        .iter()
        .filter(|h| h.begin != start)
        .map(|h| h.begin)
        .collect();
    if !others.is_empty() {
        return Err(format!(
            "functions other than cowfat_seh_try have exception handlers: {others:#x?}"
        ));
    }
    Ok(())
}
