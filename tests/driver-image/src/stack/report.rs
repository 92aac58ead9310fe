//! Deepest paths and budgets over a [`CallGraph`].

use std::fmt::Write as _;

use super::graph::{CallGraph, Callee, EdgeKind};

/// NT-23's budgets for cowfat.sys.
#[derive(Debug, Clone, Copy)]
pub struct Budgets {
    /// A frame over this needs a named reason ([`LARGE_FRAME_REASONS`]).
    pub frame_warning: u32,
    /// No frame may be over this.
    pub frame_limit: u32,
    /// No path from an entry point may be over this.
    pub path_limit: u32,
    /// What the project aims at (reported, not enforced).
    pub path_goal: u32,
}

/// The budgets of NT-23: 1 KiB / 2 KiB per frame, 6 KiB per path (goal 4 KiB).
pub const NT23: Budgets = Budgets {
    frame_warning: 1024,
    frame_limit: 2048,
    path_limit: 6 * 1024,
    path_goal: 4 * 1024,
};

/// Functions allowed a frame between the warning and the limit, and why. A name matches when
/// the function's name starts with it.
pub const LARGE_FRAME_REASONS: &[(&str, &str)] = &[(
    "fs_core::volume::Volume<fs_driver::blockdev::TargetDevice>::open_boxed",
    "mount only: the Volume value (with the target device and its transfer reserve) is built \
     once in this frame and moved into its box; it runs on the shallow mount path, out of line \
     from the deep part of mount",
)];

/// One step of a path.
#[derive(Debug, Clone)]
pub struct Step {
    /// The function's name (or `ntoskrnl.exe!Routine` for an import at the end).
    pub name: String,
    /// Its frame in bytes (0 for an import: that stack is the kernel's).
    pub frame: u32,
    /// How it was reached from the step before.
    pub via: Option<EdgeKind>,
}

/// The deepest path from one entry point.
#[derive(Debug, Clone)]
pub struct Path {
    /// Why the first step is an entry point.
    pub why: &'static str,
    /// Total bytes of our frames on the path.
    pub total: u32,
    /// Entry point first.
    pub steps: Vec<Step>,
}

/// The report: the largest frames, the deepest paths, recursion, and what breaks a budget.
#[derive(Debug, Clone)]
pub struct StackReport {
    /// Functions in the image.
    pub functions: usize,
    /// Entry points examined.
    pub entry_points: usize,
    /// (frame, name), largest first.
    pub largest_frames: Vec<(u32, String)>,
    /// One path per entry point, deepest first.
    pub paths: Vec<Path>,
    /// Cycles in the graph (recursion), each as the names around it.
    pub cycles: Vec<Vec<String>>,
    /// Every budget broken, one sentence each.
    pub problems: Vec<String>,
}

/// Works out the report for `graph` under `budgets`.
#[must_use]
pub fn analyse(graph: &CallGraph, budgets: Budgets) -> StackReport {
    let n = graph.functions.len();
    // deepest[i]: bytes of the deepest path starting in i; next[i]: the edge it takes.
    let mut deepest: Vec<Option<u32>> = vec![None; n];
    let mut next: Vec<Option<usize>> = vec![None; n];
    let mut on_stack = vec![false; n];
    let mut cycles = Vec::new();
    for start in 0..n {
        visit(
            graph,
            start,
            &mut deepest,
            &mut next,
            &mut on_stack,
            &mut cycles,
        );
    }
    let mut paths: Vec<Path> = graph
        .roots
        .iter()
        .map(|&(root, why)| path_from(graph, root, why, &deepest, &next))
        .collect();
    paths.sort_by(|a, b| {
        b.total
            .cmp(&a.total)
            .then_with(|| a.steps[0].name.cmp(&b.steps[0].name))
    });
    let mut largest_frames: Vec<(u32, String)> = graph
        .functions
        .iter()
        .map(|f| (f.frame(), f.name.clone()))
        .collect();
    largest_frames.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));

    let mut problems = Vec::new();
    for (frame, name) in &largest_frames {
        if *frame > budgets.frame_limit {
            problems.push(format!(
                "{name}: a {frame}-byte frame, over the {}-byte limit",
                budgets.frame_limit
            ));
        } else if *frame > budgets.frame_warning && reason_for(name).is_none() {
            problems.push(format!(
                "{name}: a {frame}-byte frame, over {} bytes without a reason in LARGE_FRAME_REASONS",
                budgets.frame_warning
            ));
        }
    }
    for path in paths.iter().filter(|p| p.total > budgets.path_limit) {
        problems.push(format!(
            "{}: a {}-byte path, over the {}-byte limit",
            path.steps[0].name, path.total, budgets.path_limit
        ));
    }
    for cycle in &cycles {
        problems.push(format!("recursion: {}", cycle.join(" -> ")));
    }
    StackReport {
        functions: n,
        entry_points: graph.roots.len(),
        largest_frames,
        paths,
        cycles,
        problems,
    }
}

/// Why `name` may have a frame over the warning size, if it may.
#[must_use]
pub fn reason_for(name: &str) -> Option<&'static str> {
    LARGE_FRAME_REASONS
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, why)| *why)
}

fn visit(
    graph: &CallGraph,
    node: usize,
    deepest: &mut [Option<u32>],
    next: &mut [Option<usize>],
    on_stack: &mut [bool],
    cycles: &mut Vec<Vec<String>>,
) -> u32 {
    if let Some(depth) = deepest[node] {
        return depth;
    }
    on_stack[node] = true;
    let mut best = 0;
    let mut best_edge = None;
    for (e, edge) in graph.functions[node].edges.iter().enumerate() {
        let Callee::Function(callee) = edge.callee else {
            continue;
        };
        if on_stack[callee] {
            if callee != node || edge.kind != EdgeKind::AddressTaken {
                cycles.push(vec![
                    graph.functions[callee].name.clone(),
                    graph.functions[node].name.clone(),
                ]);
            }
            continue;
        }
        let depth = visit(graph, callee, deepest, next, on_stack, cycles);
        if depth > best {
            best = depth;
            best_edge = Some(e);
        }
    }
    on_stack[node] = false;
    let total = graph.functions[node].frame() + best;
    deepest[node] = Some(total);
    next[node] = best_edge;
    total
}

fn path_from(
    graph: &CallGraph,
    root: usize,
    why: &'static str,
    deepest: &[Option<u32>],
    next: &[Option<usize>],
) -> Path {
    let mut steps = Vec::new();
    let mut node = root;
    let mut via = None;
    loop {
        let function = &graph.functions[node];
        steps.push(Step {
            name: function.name.clone(),
            frame: function.frame(),
            via,
        });
        let Some(e) = next[node] else {
            break;
        };
        let edge = &function.edges[e];
        let Callee::Function(callee) = edge.callee else {
            break;
        };
        via = Some(edge.kind);
        node = callee;
        if steps.len() > graph.functions.len() {
            break;
        }
    }
    Path {
        why,
        total: deepest[root].unwrap_or(0),
        steps,
    }
}

impl StackReport {
    /// The report as the build log shows it: the largest frames, then the `worst` deepest
    /// paths frame by frame, then every problem.
    #[must_use]
    pub fn render(&self, budgets: Budgets, frames: usize, worst: usize) -> String {
        let mut out = String::new();
        let deepest = self.paths.first().map_or(0, |p| p.total);
        let _ = writeln!(
            out,
            "stack report: {} functions, {} entry points; largest frame {} bytes (limit {}), deepest path {} bytes (limit {}, goal {})",
            self.functions,
            self.entry_points,
            self.largest_frames.first().map_or(0, |f| f.0),
            budgets.frame_limit,
            deepest,
            budgets.path_limit,
            budgets.path_goal
        );
        let _ = writeln!(out, "largest frames:");
        for (frame, name) in self.largest_frames.iter().take(frames) {
            let why = reason_for(name).map_or(String::new(), |r| format!("  ({r})"));
            let _ = writeln!(out, "  {frame:>6}  {name}{why}");
        }
        let _ = writeln!(out, "deepest paths from entry points (an entry point already shown inside a deeper path is left out):");
        let mut shown: Vec<&str> = Vec::new();
        let distinct = self.paths.iter().filter(|path| {
            let new = !shown.contains(&path.steps[0].name.as_str());
            shown.extend(path.steps.iter().map(|s| s.name.as_str()));
            new
        });
        for (i, path) in distinct.take(worst).enumerate() {
            let _ = writeln!(
                out,
                "  #{:<2} {:>6} bytes from {} ({})",
                i + 1,
                path.total,
                path.steps[0].name,
                path.why
            );
            for step in &path.steps {
                let via = match step.via {
                    None | Some(EdgeKind::Call) => "",
                    Some(EdgeKind::TailJump) => " [tail jump]",
                    Some(EdgeKind::AddressTaken) => " [address taken]",
                };
                let _ = writeln!(out, "        {:>6}  {}{via}", step.frame, step.name);
            }
        }
        if self.problems.is_empty() {
            let _ = writeln!(out, "stack budgets: ok");
        } else {
            let _ = writeln!(out, "stack budgets BROKEN:");
            for problem in &self.problems {
                let _ = writeln!(out, "  {problem}");
            }
        }
        out
    }
}
