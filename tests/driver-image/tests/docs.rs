//! The documentation checks, against the real files: the ntsim fidelity ledger covers every
//! routine ntsim defines and every import of cowfat.sys, the tests the docs cite exist, and
//! README.md and docs/ link only to files of the repository.
//!
//! `ntsim_ledger_covers_every_import_of_cowfat_sys` needs the package `scripts/build-driver`
//! writes and FAILS without it, like the other package checks; the rest read only the sources.

use std::collections::BTreeSet;
use std::path::Path;

use driver_image::docs::{self, LedgerRow};
use driver_image::pe::ImageFacts;

fn ledger() -> Vec<LedgerRow> {
    let root = driver_image::workspace_root();
    let text = docs::read(&root, docs::LEDGER).unwrap_or_else(|e| panic!("{e}"));
    docs::parse_ledger(&text).unwrap_or_else(|e| panic!("{e}"))
}

fn routines(rows: &[LedgerRow]) -> BTreeSet<String> {
    rows.iter().map(|r| r.routine.clone()).collect()
}

/// One row per routine, alphabetical; every routine ntsim defines has a row, and every row
/// that says ntsim defines it (any verdict but `absent`) names a routine ntsim defines.
#[test]
fn ntsim_ledger_has_one_row_per_ntsim_routine() {
    let root = driver_image::workspace_root();
    let rows = ledger();
    let mut problems = docs::ledger_order_problems(&rows);
    let defined = docs::ntsim_exports(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        defined.len() > 40 && defined.contains("CcCopyRead"),
        "ntsim's routines were not found (only {defined:?})"
    );
    let listed = routines(&rows);
    for missing in defined.difference(&listed) {
        problems.push(format!(
            "ntsim defines {missing} but {} has no row for it (add one, in alphabetical order)",
            docs::LEDGER
        ));
    }
    for row in &rows {
        let in_ntsim = defined.contains(&row.routine);
        if row.fidelity == "absent" && in_ntsim {
            problems.push(format!(
                "{}:{}: {} is marked absent but ntsim defines it",
                docs::LEDGER,
                row.line,
                row.routine
            ));
        } else if row.fidelity != "absent" && !in_ntsim {
            problems.push(format!(
                "{}:{}: ntsim does not define {} (mark it absent or remove the row)",
                docs::LEDGER,
                row.line,
                row.routine
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A new import of cowfat.sys without a ledger row fails here; so does an `absent` row the
/// image no longer imports.
#[test]
fn ntsim_ledger_covers_every_import_of_cowfat_sys() {
    let image = driver_image::image_path();
    let facts = ImageFacts::read(&image).unwrap_or_else(|e| panic!("{e}"));
    let imports: BTreeSet<String> = facts.imports.iter().map(|i| i.name.clone()).collect();
    assert!(
        imports.contains("IoCreateDevice"),
        "{} has an unexpected import table: {imports:?}",
        image.display()
    );
    let rows = ledger();
    let listed = routines(&rows);
    let mut problems: Vec<String> = imports
        .difference(&listed)
        .map(|name| {
            format!(
                "{} imports {name}, which has no row in {} (what Windows does, what ntsim does, \
                 which tests depend on it)",
                image.display(),
                docs::LEDGER
            )
        })
        .collect();
    for row in rows.iter().filter(|r| r.fidelity == "absent") {
        if !imports.contains(&row.routine) {
            problems.push(format!(
                "{}:{}: {} is marked absent from ntsim but the image does not import it either",
                docs::LEDGER,
                row.line,
                row.routine
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// Every test the ledger and the NT rules page name is a `#[test]` function of the workspace.
#[test]
fn tests_named_in_the_docs_exist() {
    let root = driver_image::workspace_root();
    let known = docs::test_functions(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(
        // This very test is one of them: the scan must at least see it.
        known.contains("tests_named_in_the_docs_exist") && known.len() > 200,
        "the scan of #[test] functions found too little ({} names)",
        known.len()
    );
    let mut problems = Vec::new();
    for row in ledger() {
        for test in &row.tests {
            if !known.contains(test) {
                problems.push(format!(
                    "{}:{}: {}: no test named {test}",
                    docs::LEDGER,
                    row.line,
                    row.routine
                ));
            }
        }
    }
    let rules = docs::read(&root, docs::NT_RULES).unwrap_or_else(|e| panic!("{e}"));
    let cited = docs::rule_tests(&rules);
    assert!(cited.len() > 30, "{} cites too few tests", docs::NT_RULES);
    for (line, test) in cited {
        if !known.contains(&test) {
            problems.push(format!("{}:{line}: no test named {test}", docs::NT_RULES));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// README.md and docs/**/*.md link only to files of the repository: no web addresses, nothing
/// above the checkout (`../shared/...`), no build outputs, anchors that exist, cited Rust
/// items that exist.
#[test]
fn readme_and_docs_link_only_to_files_in_the_repository() {
    let root = driver_image::workspace_root();
    let ignored = docs::Ignored::load(&root);
    let files = docs::documentation_files(&root).unwrap_or_else(|e| panic!("{e}"));
    assert!(files.iter().any(|f| f == Path::new(docs::LEDGER)));
    let mut problems = Vec::new();
    let mut count = 0;
    for file in &files {
        let text = std::fs::read_to_string(root.join(file))
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
        count += docs::links(&text).len();
        problems.extend(docs::link_problems(&root, file, &text, &ignored));
    }
    assert!(count > 50, "only {count} links found: the scan is broken");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The design used to live outside the repository (`../shared/design`); nothing shipped may
/// point there, link or not.
#[test]
fn nothing_points_at_the_design_outside_the_repository() {
    let root = driver_image::workspace_root();
    let mut files = docs::documentation_files(&root).unwrap_or_else(|e| panic!("{e}"));
    for entry in std::fs::read_dir(root.join("inf")).unwrap_or_else(|e| panic!("inf/: {e}")) {
        let entry = entry.unwrap_or_else(|e| panic!("inf/: {e}"));
        files.push(Path::new("inf").join(entry.file_name()));
    }
    let offenders: Vec<String> = files
        .iter()
        .filter_map(|f| {
            let text = std::fs::read_to_string(root.join(f)).ok()?;
            let lines: Vec<String> = text
                .lines()
                .enumerate()
                .filter(|(_, l)| l.contains("../shared"))
                .map(|(n, _)| format!("{}:{}", f.display(), n + 1))
                .collect();
            (!lines.is_empty()).then(|| lines.join(" "))
        })
        .collect();
    assert!(offenders.is_empty(), "../shared in {}", offenders.join(" "));
}
