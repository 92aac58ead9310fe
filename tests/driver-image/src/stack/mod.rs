//! The stack report of cowfat.sys (NT-23): every function's frame, read from its unwind codes,
//! and the deepest call path from every entry point the kernel can call, checked against the
//! budgets. The x64 kernel stack is 24 KiB for the I/O manager, the filters above, the file
//! system, Cc and Mm, and the storage stack below; a file system is re-entered on the same stack
//! through page faults, so its own share must stay small.

pub mod graph;
pub mod report;
pub mod unwind;

pub use graph::{build, CallGraph};
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
