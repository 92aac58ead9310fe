//! The repository's own documentation, read as data, so CI notices when it drifts from the code.
//!
//! - The ntsim fidelity ledger (`docs/ntsim-ledger.md`): its routine table, one row per kernel
//!   routine, alphabetical; compared with ntsim's `#[no_mangle] extern "system"` definitions
//!   and with cowfat.sys's import table.
//! - The tests the docs name (the ledger's Tests column, the `Tests:` lines of
//!   `docs/nt-rules.md`): each must be a `#[test]` function somewhere in the workspace.
//! - Links in README.md and `docs/**/*.md`: each must resolve to a file of the repository (not
//!   a build output, not outside the checkout, no web address), a `#fragment` to a heading that
//!   exists, and a link whose text cites a Rust item (`` [`read::paging_read`](...read.rs) ``)
//!   to a file that defines that item.
//!
//! Every check returns all problems it finds, each naming the file and line.

use std::collections::BTreeSet;
use std::path::{Component, Path, PathBuf};

/// The ledger, relative to the workspace root.
pub const LEDGER: &str = "docs/ntsim-ledger.md";
/// The NT rules with their tests, relative to the workspace root.
pub const NT_RULES: &str = "docs/nt-rules.md";

/// The ledger's verdicts: how ntsim's routine compares with Windows'. `absent`: the image
/// imports it but ntsim does not define it (only code that never runs on the host calls it).
pub const FIDELITY: &[&str] = &["stricter", "equal", "looser", "absent"];

/// One row of the ledger's routine table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LedgerRow {
    /// 1-based line in the ledger.
    pub line: usize,
    /// The kernel routine (first column).
    pub routine: String,
    /// One of [`FIDELITY`] (first word of the fourth column).
    pub fidelity: String,
    /// The tests named in backticks in the last column.
    pub tests: Vec<String>,
}

/// Reads a file of the workspace as text, with a sentence naming it on failure.
///
/// # Errors
/// When the file cannot be read.
pub fn read(root: &Path, relative: &str) -> Result<String, String> {
    let path = root.join(relative);
    std::fs::read_to_string(&path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn cells(line: &str) -> Option<Vec<&str>> {
    let inner = line.trim().strip_prefix('|')?.strip_suffix('|')?;
    Some(inner.split('|').map(str::trim).collect())
}

/// Backticked spans of `text`, in order.
#[must_use]
pub fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The ledger's routine table: every table row whose first cell is one backticked identifier.
/// Header and separator rows are skipped.
///
/// # Errors
/// A row of five cells that is malformed (first cell not a routine, unknown fidelity), with
/// its line number; or a ledger without any row.
pub fn parse_ledger(text: &str) -> Result<Vec<LedgerRow>, String> {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let line_no = index + 1;
        let Some(cells) = cells(line) else { continue };
        if cells.len() != 5 || cells[0] == "routine" || cells[0].starts_with("---") {
            continue;
        }
        let routine = match cells[0].strip_prefix('`').and_then(|c| c.strip_suffix('`')) {
            Some(name) if is_identifier(name) => name.to_string(),
            _ => {
                problems.push(format!(
                    "{LEDGER}:{line_no}: first cell {:?} is not a `Routine`",
                    cells[0]
                ));
                continue;
            }
        };
        let fidelity = cells[3]
            .trim_start_matches('*')
            .split(|c: char| !c.is_ascii_alphabetic())
            .next()
            .unwrap_or("")
            .to_string();
        if !FIDELITY.contains(&fidelity.as_str()) {
            problems.push(format!(
                "{LEDGER}:{line_no}: {routine}: fidelity {:?} is not one of {FIDELITY:?}",
                cells[3]
            ));
        }
        let tests = code_spans(cells[4]).into_iter().map(String::from).collect();
        rows.push(LedgerRow {
            line: line_no,
            routine,
            fidelity,
            tests,
        });
    }
    if rows.is_empty() {
        problems.push(format!("{LEDGER}: no routine rows found"));
    }
    if problems.is_empty() {
        Ok(rows)
    } else {
        Err(problems.join("\n"))
    }
}

/// Rows out of alphabetical order or repeated. The order is plain ASCII (`IoUnregister...`
/// before `IofCallDriver`), the order of `LC_ALL=C sort` and of the image check's import list.
#[must_use]
pub fn ledger_order_problems(rows: &[LedgerRow]) -> Vec<String> {
    let mut problems = Vec::new();
    for pair in rows.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        let (ka, kb) = (&a.routine, &b.routine);
        if ka == kb {
            problems.push(format!("{LEDGER}:{}: {} has two rows", b.line, b.routine));
        } else if ka > kb {
            problems.push(format!(
                "{LEDGER}:{}: {} comes after {} (rows are alphabetical)",
                b.line, b.routine, a.routine
            ));
        }
    }
    problems
}

/// The kernel routines ntsim defines: every `extern "system" fn` (or `extern "system-unwind"
/// fn`, the ABI of the routines that raise, NT-24) right after `#[no_mangle]` in
/// `tests/ntsim/src/*.rs`.
///
/// # Errors
/// When the directory or a file cannot be read.
pub fn ntsim_exports(root: &Path) -> Result<BTreeSet<String>, String> {
    let dir = root.join("tests/ntsim/src");
    let mut names = BTreeSet::new();
    for path in rust_files(&dir)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        names.extend(exported_functions(&text));
    }
    Ok(names)
}

/// The `#[no_mangle]` functions of one Rust source with the `system` or `system-unwind` ABI.
#[must_use]
pub fn exported_functions(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut after_no_mangle = false;
    for line in text.lines() {
        let line = line.trim();
        if line == "#[no_mangle]" || line == "#[unsafe(no_mangle)]" {
            after_no_mangle = true;
            continue;
        }
        if after_no_mangle {
            let name = ["extern \"system\" fn ", "extern \"system-unwind\" fn "]
                .iter()
                .find_map(|abi| line.split_once(abi))
                .and_then(|(_, rest)| rest.split(['(', '<']).next())
                .map(str::trim)
                .filter(|name| is_identifier(name));
            if let Some(name) = name {
                names.insert(name.to_string());
            }
            after_no_mangle = line.starts_with("#[") || line.starts_with("///");
        }
    }
    names
}

/// `.rs` files under `dir`, recursively, skipping `target*` and hidden directories.
///
/// # Errors
/// When a directory cannot be listed.
pub fn rust_files(dir: &Path) -> Result<Vec<PathBuf>, String> {
    files_with(dir, "rs")
}

fn files_with(dir: &Path, extension: &str) -> Result<Vec<PathBuf>, String> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries =
            std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for entry in entries {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            if path.is_dir() {
                if !name.starts_with('.') && !name.starts_with("target") {
                    pending.push(path);
                }
            } else if path.extension().is_some_and(|e| e == extension) {
                out.push(path);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Names of every `#[test]` function in the workspace's Rust sources (the attribute, then
/// within a few lines `fn name`).
///
/// # Errors
/// When a source file cannot be read.
pub fn test_functions(root: &Path) -> Result<BTreeSet<String>, String> {
    let mut names = BTreeSet::new();
    for path in rust_files(root)? {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut armed = 0u8;
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with("#[test]") || line.starts_with("#[tokio::test") {
                armed = 4;
                continue;
            }
            if armed > 0 {
                armed -= 1;
                if let Some(name) = fn_name(line) {
                    names.insert(name.to_string());
                    armed = 0;
                }
            }
        }
    }
    Ok(names)
}

fn fn_name(line: &str) -> Option<&str> {
    let (_, rest) = line.split_once("fn ")?;
    let name = rest.split(['(', '<', ' ']).next()?;
    is_identifier(name).then_some(name)
}

/// The tests named on the `Tests:` lines of the NT rules page: (line, name).
#[must_use]
pub fn rule_tests(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start().trim_start_matches(['-', '*', ' ']);
        if let Some(rest) = trimmed.strip_prefix("Tests:") {
            out.extend(
                code_spans(rest)
                    .into_iter()
                    .map(|name| (index + 1, name.to_string())),
            );
        }
    }
    out
}

/// One link of a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    /// 1-based line.
    pub line: usize,
    /// The link text (or image alt text).
    pub text: String,
    /// The target as written (without a title).
    pub target: String,
}

/// Inline links and images (`[text](target)`), reference definitions (`[id]: target`),
/// autolinks (`<scheme:...>`), HTML `href`/`src` attributes and bare web addresses, outside
/// fenced and indented code blocks and code spans.
#[must_use]
pub fn links(markdown: &str) -> Vec<Link> {
    let mut out = Vec::new();
    let mut fenced = false;
    for (index, raw) in markdown.lines().enumerate() {
        let line_no = index + 1;
        let trimmed = raw.trim_start();
        if trimmed.starts_with("```") || trimmed.starts_with("~~~") {
            fenced = !fenced;
            continue;
        }
        if fenced || raw.starts_with("    ") || raw.starts_with('\t') {
            continue;
        }
        let line = without_code_spans(raw);
        let mut push = |text: &str, target: &str| {
            // A bare address inside an inline link's target is the same link once.
            if !out
                .iter()
                .any(|l: &Link| l.line == line_no && l.target == target)
            {
                out.push(Link {
                    line: line_no,
                    text: text.to_string(),
                    target: target.to_string(),
                });
            }
        };
        // `[id]: target`
        if let Some(rest) = line.trim_start().strip_prefix('[') {
            if let Some((id, target)) = rest.split_once("]:") {
                push(id, target.split_whitespace().next().unwrap_or(""));
                continue;
            }
        }
        inline_links(raw, &line, &mut push);
        for (open, close) in [("href=\"", '"'), ("src=\"", '"'), ("<", '>')] {
            let mut rest = line.as_str();
            while let Some(start) = rest.find(open) {
                rest = &rest[start + open.len()..];
                let target = rest.split(close).next().unwrap_or("");
                if open != "<" || target.contains(':') && !target.contains(' ') {
                    push("", target);
                }
            }
        }
        for word in line.split(|c: char| c.is_whitespace() || c == '(' || c == ')') {
            if word.starts_with("http://")
                || word.starts_with("https://")
                || word.starts_with("www.")
            {
                push("", word);
            }
        }
    }
    out
}

/// `line` with the contents of its code spans blanked (so `` `[a](b)` `` is not a link), the
/// same length in bytes.
fn without_code_spans(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for (i, part) in line.split('`').enumerate() {
        if i > 0 {
            out.push('`');
        }
        if i % 2 == 1 {
            // Byte for byte, so offsets in the result are offsets in `line`.
            out.extend(std::iter::repeat_n(' ', part.len()));
        } else {
            out.push_str(part);
        }
    }
    out
}

/// `[text](target)` and `![alt](target)`; nested brackets in the text are allowed. Found in
/// `blanked` (code spans blanked), taken from `line` (so a cited `` `item` `` keeps its text).
fn inline_links(line: &str, blanked: &str, push: &mut impl FnMut(&str, &str)) {
    let bytes = blanked.as_bytes();
    let mut i = 0;
    while let Some(found) = blanked[i..].find("](") {
        let close = i + found;
        // The text's opening bracket: walk back over nested pairs.
        let mut depth = 0i32;
        let mut open = None;
        for j in (0..close).rev() {
            match bytes[j] {
                b']' => depth += 1,
                b'[' if depth == 0 => {
                    open = Some(j);
                    break;
                }
                b'[' => depth -= 1,
                _ => {}
            }
        }
        // The target's closing parenthesis: balanced.
        let start = close + 2;
        let mut depth = 0i32;
        let mut end = None;
        for (j, &b) in bytes.iter().enumerate().skip(start) {
            match b {
                b'(' => depth += 1,
                b')' if depth == 0 => {
                    end = Some(j);
                    break;
                }
                b')' => depth -= 1,
                _ => {}
            }
        }
        let (Some(open), Some(end)) = (open, end) else {
            i = start;
            continue;
        };
        let target = line[start..end].split_whitespace().next().unwrap_or("");
        push(&line[open + 1..close], target.trim_matches(['<', '>']));
        i = end + 1;
    }
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens.
#[must_use]
pub fn heading_anchor(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| {
            if c.is_alphanumeric() || c == '-' || c == '_' {
                Some(c.to_lowercase().next().unwrap_or(c))
            } else if c == ' ' {
                Some('-')
            } else {
                None
            }
        })
        .collect()
}

/// The anchors of a Markdown file's headings (`#` lines outside code blocks), with GitHub's
/// `-1`, `-2` suffixes for repeats.
#[must_use]
pub fn anchors(markdown: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut fenced = false;
    for line in markdown.lines() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced || !line.starts_with('#') {
            continue;
        }
        let base = heading_anchor(line.trim_start_matches('#'));
        let mut anchor = base.clone();
        let mut n = 0;
        while out.contains(&anchor) {
            n += 1;
            anchor = format!("{base}-{n}");
        }
        out.insert(anchor);
    }
    out
}

/// Top-level paths the repository ignores (`/target`, `/target-*`, `/test-signing/`) and
/// ignored extensions (`*.vhd`), from its `.gitignore`: a link into them names a build output,
/// not a file of the repository.
#[derive(Debug, Default)]
pub struct Ignored {
    prefixes: Vec<(String, bool)>,
    extensions: Vec<String>,
}

impl Ignored {
    /// Reads `root/.gitignore` (none: nothing ignored).
    #[must_use]
    pub fn load(root: &Path) -> Self {
        let text = std::fs::read_to_string(root.join(".gitignore")).unwrap_or_default();
        let mut ignored = Self::default();
        for line in text.lines().map(str::trim) {
            if let Some(anchored) = line.strip_prefix('/') {
                let anchored = anchored.trim_end_matches('/');
                match anchored.strip_suffix('*') {
                    Some(prefix) => ignored.prefixes.push((prefix.to_string(), true)),
                    None => ignored.prefixes.push((anchored.to_string(), false)),
                }
            } else if let Some(extension) = line.strip_prefix("*.") {
                ignored.extensions.push(extension.to_string());
            }
        }
        ignored
    }

    /// Is `relative` (a path inside the repository) ignored?
    #[must_use]
    pub fn contains(&self, relative: &Path) -> bool {
        let first = relative
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        let by_prefix = self.prefixes.iter().any(|(p, glob)| {
            if *glob {
                first.starts_with(p.as_str())
            } else {
                first == *p
            }
        });
        by_prefix
            || relative
                .extension()
                .is_some_and(|e| self.extensions.iter().any(|x| e == x.as_str()))
    }
}

/// Resolves `target` against the directory of `from` (both relative to the repository root),
/// lexically; `None` when it climbs out of the repository.
#[must_use]
pub fn resolve(from: &Path, target: &str) -> Option<PathBuf> {
    let mut parts: Vec<String> = Vec::new();
    let base = from.parent().unwrap_or_else(|| Path::new(""));
    let joined = if let Some(absolute) = target.strip_prefix('/') {
        PathBuf::from(absolute)
    } else {
        base.join(target)
    };
    for component in joined.components() {
        match component {
            Component::Normal(p) => parts.push(p.to_string_lossy().into_owned()),
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.iter().collect())
}

/// Everything wrong with the links of the Markdown file `relative` (text `markdown`) in the
/// repository at `root`.
#[must_use]
pub fn link_problems(
    root: &Path,
    relative: &Path,
    markdown: &str,
    ignored: &Ignored,
) -> Vec<String> {
    let mut problems = Vec::new();
    for link in links(markdown) {
        let at = format!("{}:{}", relative.display(), link.line);
        let target = link.target.as_str();
        if target.is_empty() {
            problems.push(format!("{at}: a link with no target ({:?})", link.text));
            continue;
        }
        if target.contains("://") || target.starts_with("www.") || target.starts_with("mailto:") {
            problems.push(format!(
                "{at}: {target} is outside the repository (the docs link only to its files)"
            ));
            continue;
        }
        let (path_part, fragment) = match target.split_once('#') {
            Some((p, f)) => (p, Some(f)),
            None => (target, None),
        };
        let file = if path_part.is_empty() {
            relative.to_path_buf()
        } else {
            match resolve(relative, path_part) {
                Some(p) => p,
                None => {
                    problems.push(format!("{at}: {target} climbs out of the repository"));
                    continue;
                }
            }
        };
        let absolute = root.join(&file);
        if !absolute.exists() {
            problems.push(format!(
                "{at}: {target} does not exist ({})",
                file.display()
            ));
            continue;
        }
        if ignored.contains(&file) {
            problems.push(format!(
                "{at}: {target} is a build output the repository ignores, not one of its files"
            ));
            continue;
        }
        if let Some(fragment) = fragment {
            if file.extension().is_some_and(|e| e == "md") {
                let text = std::fs::read_to_string(&absolute).unwrap_or_default();
                if !anchors(&text).contains(fragment) {
                    problems.push(format!(
                        "{at}: {target}: no heading with the anchor #{fragment}"
                    ));
                }
            }
        }
        if let Some(problem) = citation_problem(&absolute, &link.text) {
            problems.push(format!("{at}: {problem}"));
        }
    }
    problems
}

/// A link whose text is a backticked Rust path (`` `module::item` ``) into a `.rs` file cites
/// that item: the file must define it.
fn citation_problem(file: &Path, text: &str) -> Option<String> {
    let cited = text.strip_prefix('`')?.strip_suffix('`')?;
    if !cited.contains("::") || file.extension().is_none_or(|e| e != "rs") {
        return None;
    }
    let item = cited.rsplit("::").next()?.trim_end_matches("()");
    let source = std::fs::read_to_string(file).unwrap_or_default();
    let defined = source.lines().any(|line| {
        let line = line.trim_start();
        [
            "fn ",
            "struct ",
            "enum ",
            "const ",
            "static ",
            "trait ",
            "type ",
            "mod ",
            "macro_rules! ",
        ]
        .iter()
        .any(|kind| {
            line.split_once(kind).is_some_and(|(before, after)| {
                let before_ok = before.is_empty() || before.ends_with(' ') || before.ends_with(')');
                let name = after
                    .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                    .next();
                before_ok && !before.contains("//") && name == Some(item)
            })
        })
    });
    (!defined).then(|| format!("`{cited}` is not defined in {}", file.display()))
}

/// The Markdown files the link check covers: README.md and every `.md` under `docs/`.
///
/// # Errors
/// When `docs/` cannot be listed.
pub fn documentation_files(root: &Path) -> Result<Vec<PathBuf>, String> {
    let mut files = vec![PathBuf::from("README.md")];
    for path in files_with(&root.join("docs"), "md")? {
        if let Ok(relative) = path.strip_prefix(root) {
            files.push(relative.to_path_buf());
        }
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_rows_parse_and_bad_rows_are_named() {
        let text = "| routine | Windows | ntsim | fidelity | tests |\n|---|---|---|---|---|\n\
                    | `CcCopyRead` | a | b | **stricter**: why | `t_one`, `t_two` |\n\
                    | `IoCreateDevice` | a | b | equal | every test |\n";
        let rows = parse_ledger(text).expect("parses");
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].routine, "CcCopyRead");
        assert_eq!(rows[0].fidelity, "stricter");
        assert_eq!(rows[0].tests, ["t_one", "t_two"]);
        assert_eq!(rows[1].line, 4);
        assert!(ledger_order_problems(&rows).is_empty());

        let bad = "| `X` | a | b | roughly | - |\n| Y | a | b | equal | - |\n";
        let e = parse_ledger(bad).expect_err("bad fidelity and bad routine");
        assert!(e.contains(":1: X: fidelity"), "{e}");
        assert!(e.contains(":2: first cell"), "{e}");
    }

    #[test]
    fn exported_functions_of_both_abis_are_found() {
        let src = "#[no_mangle]\npub extern \"system\" fn ExAllocatePool2(f: u64) {}\n\
                   #[no_mangle]\n/// Raises.\npub unsafe extern \"system-unwind\" fn CcCopyRead(\n\
                   #[no_mangle]\npub unsafe extern \"system-unwind\" fn cowfat_seh_try(\n    \
                   body: unsafe extern \"system-unwind\" fn(*mut c_void),\n\
                   pub extern \"system\" fn not_exported() {}\n";
        let names: Vec<_> = exported_functions(src).into_iter().collect();
        assert_eq!(names, ["CcCopyRead", "ExAllocatePool2", "cowfat_seh_try"]);
    }

    #[test]
    fn ledger_order_and_duplicates_are_refused() {
        let row = |line, routine: &str| LedgerRow {
            line,
            routine: routine.into(),
            fidelity: "equal".into(),
            tests: Vec::new(),
        };
        let rows = [row(1, "IoB"), row(2, "ExA"), row(3, "ExA")];
        let p = ledger_order_problems(&rows);
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(p[0].contains("ExA comes after IoB"));
        assert!(p[1].contains("ExA has two rows"));
    }

    #[test]
    fn links_are_found_outside_code() {
        let md = "See [the design](docs/a.md#top) and ![plot](p.svg).\n\
                  `[not](a-link.md)` and\n\n    [indented](code.md)\n```\n[fenced](x.md)\n```\n\
                  [ref]: ../outside.md\n<https://example.com> and https://bare.example\n\
                  [`a::b`](src/x.rs) [nested [brackets]](n.md)\n";
        let targets: Vec<_> = links(md).into_iter().map(|l| (l.line, l.target)).collect();
        assert_eq!(
            targets,
            [
                (1, "docs/a.md#top".to_string()),
                (1, "p.svg".into()),
                (8, "../outside.md".into()),
                (9, "https://example.com".into()),
                (9, "https://bare.example".into()),
                (10, "src/x.rs".into()),
                (10, "n.md".into()),
            ]
        );
    }

    #[test]
    fn anchors_follow_github() {
        let a = anchors(
            "# cowfat\n## How the driver is tested without Windows\n## Read more\n## Read more\n",
        );
        assert!(a.contains("how-the-driver-is-tested-without-windows"));
        assert!(a.contains("read-more") && a.contains("read-more-1"));
        assert_eq!(
            heading_anchor(" NT-01 FCB owns the stream state"),
            "nt-01-fcb-owns-the-stream-state"
        );
    }

    #[test]
    fn resolution_stays_inside_the_repository() {
        let from = Path::new("docs/a.md");
        assert_eq!(
            resolve(from, "../README.md"),
            Some(PathBuf::from("README.md"))
        );
        assert_eq!(
            resolve(from, "b/./c.md"),
            Some(PathBuf::from("docs/b/c.md"))
        );
        assert_eq!(resolve(from, "../../shared/design/X.md"), None);
        assert_eq!(
            resolve(Path::new("README.md"), "../shared/design/X.md"),
            None
        );
    }

    #[test]
    fn link_problems_name_each_bad_link() {
        let root = crate::workspace_root();
        let ignored = Ignored::load(&root);
        let md = "[a](../shared/design/ARCHITECTURE.md) [b](https://learn.microsoft.com/x)\n\
                  [c](docs/no-such-file.md) [d](target/cowfat-package/cowfat.sys)\n\
                  [e](README.md#no-such-heading) [`dispatch::read::no_such_fn`](fs-driver/src/dispatch/read.rs)\n\
                  [f](README.md#read-more) [`dispatch::read::paging_read`](fs-driver/src/dispatch/read.rs)\n";
        let p = link_problems(&root, Path::new("README.md"), md, &ignored);
        let joined = p.join("\n");
        assert_eq!(p.len(), 6, "{joined}");
        assert!(joined.contains("climbs out of the repository"));
        assert!(joined.contains("https://learn.microsoft.com/x is outside"));
        assert!(joined.contains("does not exist"));
        assert!(joined.contains("build output"));
        assert!(joined.contains("no heading with the anchor #no-such-heading"));
        assert!(joined.contains("`dispatch::read::no_such_fn` is not defined"));
    }

    #[test]
    fn rule_tests_come_from_tests_lines() {
        let md = "NT-01 ...\n\nTests: `nt_a`, `nt_b` (both)\n- Tests: `nt_c`\nnot `nt_d`\n";
        let names: Vec<_> = rule_tests(md).into_iter().map(|(_, n)| n).collect();
        assert_eq!(names, ["nt_a", "nt_b", "nt_c"]);
    }
}
