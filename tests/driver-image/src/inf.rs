//! A parser and checker for cowfat.inf.
//!
//! The parser follows the INF syntax rules of the Windows Driver Kit documentation ("General
//! Syntax Rules for INF Files"): `[section]` headers, case-insensitive section and key names,
//! `;` comments outside double quotes, `\` at the end of a line continues it, `%token%`
//! substitution from `[Strings]` (`%%` is a literal percent, `%<number>%` a directory id).
//!
//! [`check`] returns every problem found: missing or dangling sections, the service that
//! must be a file system driver running cowfat.sys, primitive-driver rules (Windows 10 1903),
//! and directives that are obsolete or not allowed in a driver package.

use std::collections::BTreeMap;

/// One line of a section: `key = v1, v2` or a bare `v1, v2`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The key, if the line has one (case preserved).
    pub key: Option<String>,
    /// Comma-separated values, quotes removed, tokens not yet substituted.
    pub values: Vec<String>,
    /// 1-based line number where the entry starts.
    pub line: usize,
}

/// A parsed INF: sections by lower-case name, in file order of entries.
#[derive(Debug, Clone, Default)]
pub struct Inf {
    sections: BTreeMap<String, Section>,
}

/// One section.
#[derive(Debug, Clone, Default)]
pub struct Section {
    /// The name as written.
    pub name: String,
    /// Its entries.
    pub entries: Vec<Entry>,
}

impl Section {
    /// Values of the first entry whose key is `key` (case-insensitive).
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&[String]> {
        self.entries
            .iter()
            .find(|e| {
                e.key
                    .as_deref()
                    .is_some_and(|k| k.eq_ignore_ascii_case(key))
            })
            .map(|e| e.values.as_slice())
    }

    /// All entries with key `key`.
    pub fn all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a Entry> + 'a {
        self.entries.iter().filter(move |e| {
            e.key
                .as_deref()
                .is_some_and(|k| k.eq_ignore_ascii_case(key))
        })
    }
}

/// Removes a `;` comment that is not inside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

/// Splits on commas outside quotes; trims and unquotes each value (`""` inside quotes is `"`).
fn split_values(text: &str) -> Vec<String> {
    let mut values = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                current.push('"');
            }
            '"' => quoted = !quoted,
            ',' if !quoted => values.push(std::mem::take(&mut current).trim().to_string()),
            _ => current.push(c),
        }
    }
    values.push(current.trim().to_string());
    values
}

/// Splits `key = values` at the first `=` outside quotes.
fn split_key(text: &str) -> (Option<String>, &str) {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return (Some(text[..i].trim().to_string()), &text[i + 1..]),
            _ => {}
        }
    }
    (None, text)
}

impl Inf {
    /// Parses INF text.
    ///
    /// # Errors
    /// A sentence with the line number for an entry outside any section or a malformed
    /// section header.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut inf = Self::default();
        let mut current: Option<String> = None;
        let mut pending = String::new();
        let mut pending_line = 0;
        for (index, raw) in text.lines().enumerate() {
            let number = index + 1;
            let line = strip_comment(raw).trim_end();
            if pending.is_empty() {
                pending_line = number;
            }
            if let Some(continued) = line.strip_suffix('\\') {
                pending.push_str(continued);
                continue;
            }
            pending.push_str(line);
            let logical = std::mem::take(&mut pending);
            let logical = logical.trim();
            if logical.is_empty() {
                continue;
            }
            if let Some(rest) = logical.strip_prefix('[') {
                let name = rest
                    .strip_suffix(']')
                    .ok_or_else(|| format!("line {pending_line}: section header without ']'"))?
                    .trim();
                if name.is_empty() {
                    return Err(format!("line {pending_line}: empty section name"));
                }
                let key = name.to_ascii_lowercase();
                inf.sections.entry(key.clone()).or_insert_with(|| Section {
                    name: name.to_string(),
                    entries: Vec::new(),
                });
                current = Some(key);
                continue;
            }
            let Some(section) = current.as_ref().and_then(|k| inf.sections.get_mut(k)) else {
                return Err(format!("line {pending_line}: entry outside any section"));
            };
            let (key, values) = split_key(logical);
            section.entries.push(Entry {
                key,
                values: split_values(values),
                line: pending_line,
            });
        }
        Ok(inf)
    }

    /// The section named `name` (case-insensitive).
    #[must_use]
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.get(&name.to_ascii_lowercase())
    }

    /// Every section.
    pub fn sections(&self) -> impl Iterator<Item = &Section> {
        self.sections.values()
    }

    /// Substitutes `%token%`s from `[Strings]`; `%%` is `%`, `%<digits>%` stays as a dirid.
    ///
    /// # Errors
    /// The name of the first token that `[Strings]` does not define.
    pub fn expand(&self, value: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut rest = value;
        while let Some(start) = rest.find('%') {
            out.push_str(&rest[..start]);
            let after = &rest[start + 1..];
            let Some(end) = after.find('%') else {
                return Err(format!("unterminated %token in {value:?}"));
            };
            let token = &after[..end];
            if token.is_empty() {
                out.push('%');
            } else if token.bytes().all(|b| b.is_ascii_digit()) {
                out.push('%');
                out.push_str(token);
                out.push('%');
            } else {
                let replacement = self
                    .section("Strings")
                    .and_then(|s| s.get(token))
                    .and_then(|v| v.first())
                    .ok_or_else(|| format!("%{token}% is not defined in [Strings]"))?;
                out.push_str(replacement);
            }
            rest = &after[end + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

/// Directives that are obsolete, or not allowed in a DCH/primitive driver package.
pub const OBSOLETE_DIRECTIVES: &[(&str, &str)] = &[
    ("DriverPackageType", "DIFx directive; DIFx is deprecated"),
    (
        "DriverPackageDisplayName",
        "DIFx directive; DIFx is deprecated",
    ),
    ("LayoutFile", "reserved for inbox INFs"),
    ("UpdateInis", "INI file updates are obsolete"),
    ("UpdateIniFields", "INI file updates are obsolete"),
    ("Ini2Reg", "INI file updates are obsolete"),
    (
        "ProfileItems",
        "Start menu items are not allowed in driver packages",
    ),
    ("LogConfig", "resource configuration is for legacy devices"),
    ("RenFiles", "not allowed in a DCH package"),
    ("DelFiles", "not allowed in a DCH package"),
];

/// What the service must be.
pub const SERVICE_BINARY: &str = "cowfat.sys";
/// `SERVICE_FILE_SYSTEM_DRIVER`.
pub const SERVICE_TYPE_FILE_SYSTEM: &str = "2";
/// `SERVICE_DEMAND_START`.
pub const START_DEMAND: &str = "3";
/// The load order group of file systems.
pub const LOAD_ORDER_GROUP: &str = "File System";

/// Directives whose values name other sections.
const SECTION_LIST_DIRECTIVES: &[&str] = &["CopyFiles", "AddReg", "DelReg", "BitReg", "CopyINF"];

/// Every problem with `inf` as cowfat's driver INF; empty when it passes.
#[must_use]
pub fn check(inf: &Inf) -> Vec<String> {
    let mut problems = Vec::new();
    check_version(inf, &mut problems);
    check_primitive_layout(inf, &mut problems);
    check_references(inf, &mut problems);
    check_service(inf, &mut problems);
    check_files(inf, &mut problems);
    check_obsolete(inf, &mut problems);
    check_strings(inf, &mut problems);
    problems
}

fn first_value(section: &Section, key: &str) -> Option<String> {
    section.get(key).and_then(|v| v.first()).cloned()
}

fn check_version(inf: &Inf, problems: &mut Vec<String>) {
    let Some(version) = inf.section("Version") else {
        problems.push("[Version] is missing".into());
        return;
    };
    match first_value(version, "Signature") {
        Some(s) if s.eq_ignore_ascii_case("$Windows NT$") => {}
        Some(s) => problems.push(format!(
            "[Version] Signature is {s:?}, expected \"$WINDOWS NT$\""
        )),
        None => problems.push("[Version] has no Signature".into()),
    }
    for key in ["Class", "ClassGuid", "Provider", "DriverVer", "CatalogFile"] {
        if first_value(version, key).is_none_or(|v| v.is_empty()) {
            problems.push(format!("[Version] has no {key}"));
        }
    }
    if let Some(values) = version.get("DriverVer") {
        if !driver_ver_is_valid(values) {
            problems.push(format!(
                "[Version] DriverVer {values:?} is not mm/dd/yyyy,w.x.y.z"
            ));
        }
    }
    if let Some(catalog) = first_value(version, "CatalogFile") {
        if !catalog.eq_ignore_ascii_case("cowfat.cat") {
            problems.push(format!(
                "[Version] CatalogFile is {catalog:?}, expected cowfat.cat"
            ));
        }
    }
}

fn driver_ver_is_valid(values: &[String]) -> bool {
    let [date, version] = values else {
        return false;
    };
    let date: Vec<&str> = date.split('/').collect();
    let date_ok = matches!(date.as_slice(), [m, d, y]
        if m.len() == 2 && d.len() == 2 && y.len() == 4
            && [m, d, y].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()))
            && m.parse::<u32>().is_ok_and(|m| (1..=12).contains(&m))
            && d.parse::<u32>().is_ok_and(|d| (1..=31).contains(&d)));
    let parts: Vec<&str> = version.split('.').collect();
    let version_ok = parts.len() == 4 && parts.iter().all(|p| p.parse::<u16>().is_ok());
    date_ok && version_ok
}

fn check_primitive_layout(inf: &Inf, problems: &mut Vec<String>) {
    for name in ["DefaultInstall.NTamd64", "DefaultInstall.NTamd64.Services"] {
        if inf.section(name).is_none() {
            problems.push(format!("[{name}] is missing"));
        }
    }
    for name in [
        "DefaultUninstall.NTamd64",
        "DefaultUninstall.NTamd64.Services",
    ] {
        if inf.section(name).is_none() {
            problems.push(format!("[{name}] is missing"));
        }
    }
    for name in ["DefaultInstall", "DefaultUninstall"] {
        if inf.section(name).is_some() {
            problems.push(format!(
                "[{name}] must be architecture-decorated ([{name}.NTamd64]) in a primitive driver"
            ));
        }
    }
    if inf.section("Manufacturer").is_some() {
        problems.push("[Manufacturer] is not allowed in a primitive driver package".into());
    }
    if let Some(uninstall) = inf.section("DefaultUninstall.NTamd64") {
        if first_value(uninstall, "LegacyUninstall").as_deref() != Some("1") {
            problems.push("[DefaultUninstall.NTamd64] needs LegacyUninstall = 1".into());
        }
    }
}

fn check_references(inf: &Inf, problems: &mut Vec<String>) {
    for section in inf.sections() {
        for entry in &section.entries {
            let Some(key) = entry.key.as_deref() else {
                continue;
            };
            if SECTION_LIST_DIRECTIVES
                .iter()
                .any(|d| d.eq_ignore_ascii_case(key))
            {
                for target in entry.values.iter().filter(|v| !v.is_empty()) {
                    // `CopyFiles = @file` copies one file directly.
                    if !target.starts_with('@') && inf.section(target).is_none() {
                        problems.push(format!(
                            "[{}] line {}: {key} names [{target}], which does not exist",
                            section.name, entry.line
                        ));
                    }
                }
            }
            if key.eq_ignore_ascii_case("AddService") {
                for target in entry
                    .values
                    .iter()
                    .skip(2)
                    .take(2)
                    .filter(|v| !v.is_empty())
                {
                    if inf.section(target).is_none() {
                        problems.push(format!(
                            "[{}] line {}: AddService names [{target}], which does not exist",
                            section.name, entry.line
                        ));
                    }
                }
            }
        }
    }
}

fn check_service(inf: &Inf, problems: &mut Vec<String>) {
    let Some(services) = inf.section("DefaultInstall.NTamd64.Services") else {
        return;
    };
    let adds: Vec<&Entry> = services.all("AddService").collect();
    if adds.len() != 1 {
        problems.push(format!(
            "expected exactly one AddService, found {}",
            adds.len()
        ));
    }
    let Some(add) = adds.first() else {
        return;
    };
    let name = add.values.first().map(|n| inf.expand(n));
    if !matches!(&name, Some(Ok(n)) if n == "cowfat") {
        problems.push(format!(
            "AddService installs {name:?}, expected the service \"cowfat\""
        ));
    }
    let Some(install) = add.values.get(2).and_then(|s| inf.section(s)) else {
        problems.push("AddService has no service-install section".into());
        return;
    };
    let expect = |key: &str, wanted: &str, problems: &mut Vec<String>| {
        let value = first_value(install, key).map(|v| inf.expand(&v));
        match value {
            Some(Ok(v)) if v.eq_ignore_ascii_case(wanted) => {}
            other => problems.push(format!(
                "[{}] {key} is {other:?}, expected {wanted:?}",
                install.name
            )),
        }
    };
    expect("ServiceType", SERVICE_TYPE_FILE_SYSTEM, problems);
    expect("StartType", START_DEMAND, problems);
    expect("LoadOrderGroup", LOAD_ORDER_GROUP, problems);
    if first_value(install, "ErrorControl").is_none() {
        problems.push(format!("[{}] has no ErrorControl", install.name));
    }
    match first_value(install, "ServiceBinary").map(|v| inf.expand(&v)) {
        Some(Ok(binary)) => {
            let file = binary.rsplit(['\\', '/']).next().unwrap_or(&binary);
            if !file.eq_ignore_ascii_case(SERVICE_BINARY) {
                problems.push(format!(
                    "ServiceBinary is {binary:?}, expected ...\\{SERVICE_BINARY}"
                ));
            }
        }
        other => problems.push(format!("[{}] ServiceBinary is {other:?}", install.name)),
    }
}

fn check_files(inf: &Inf, problems: &mut Vec<String>) {
    let source_files = inf.section("SourceDisksFiles");
    let disks = inf.section("SourceDisksNames");
    let destinations = inf.section("DestinationDirs");
    let Some(install) = inf.section("DefaultInstall.NTamd64") else {
        return;
    };
    let copy_sections: Vec<&String> = install.all("CopyFiles").flat_map(|e| &e.values).collect();
    let mut copied = Vec::new();
    for name in copy_sections {
        if let Some(file) = name.strip_prefix('@') {
            copied.push(file.to_string());
            continue;
        }
        let Some(section) = inf.section(name) else {
            continue; // reported by check_references
        };
        let has_destination = destinations
            .is_some_and(|d| d.get(name).is_some() || d.get("DefaultDestDir").is_some());
        if !has_destination {
            problems.push(format!(
                "[DestinationDirs] has no entry for [{name}] and no DefaultDestDir"
            ));
        }
        copied.extend(
            section
                .entries
                .iter()
                .filter_map(|e| e.values.first().cloned()),
        );
    }
    if !copied
        .iter()
        .any(|f| f.eq_ignore_ascii_case(SERVICE_BINARY))
    {
        problems.push(format!(
            "DefaultInstall.NTamd64 does not copy {SERVICE_BINARY}"
        ));
    }
    for file in &copied {
        let Some(disk) = source_files
            .and_then(|s| s.get(file))
            .and_then(|v| v.first())
        else {
            problems.push(format!(
                "{file} is copied but not listed in [SourceDisksFiles]"
            ));
            continue;
        };
        if disks.and_then(|d| d.get(disk)).is_none() {
            problems.push(format!(
                "{file} is on disk {disk}, which [SourceDisksNames] does not define"
            ));
        }
    }
}

fn check_obsolete(inf: &Inf, problems: &mut Vec<String>) {
    for section in inf.sections() {
        for entry in &section.entries {
            let Some(key) = entry.key.as_deref() else {
                continue;
            };
            if let Some((name, why)) = OBSOLETE_DIRECTIVES
                .iter()
                .find(|(d, _)| d.eq_ignore_ascii_case(key))
            {
                problems.push(format!(
                    "[{}] line {}: {name}: {why}",
                    section.name, entry.line
                ));
            }
        }
    }
}

fn check_strings(inf: &Inf, problems: &mut Vec<String>) {
    for section in inf
        .sections()
        .filter(|s| !s.name.eq_ignore_ascii_case("Strings"))
    {
        for entry in &section.entries {
            for value in entry.key.iter().chain(&entry.values) {
                if let Err(why) = inf.expand(value) {
                    problems.push(format!("[{}] line {}: {why}", section.name, entry.line));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = include_str!("../../../inf/cowfat.inf");

    fn problems_of(text: &str) -> Vec<String> {
        match Inf::parse(text) {
            Ok(inf) => check(&inf),
            Err(e) => vec![e],
        }
    }

    /// The INF with `from` replaced by `to`, which must occur.
    fn broken(from: &str, to: &str) -> String {
        assert!(
            GOOD.contains(from),
            "fixture drifted: {from:?} not in cowfat.inf"
        );
        GOOD.replacen(from, to, 1)
    }

    fn assert_fails(text: &str, expected: &str) {
        let problems = problems_of(text);
        assert!(
            problems.iter().any(|p| p.contains(expected)),
            "expected a problem mentioning {expected:?}, got {problems:#?}"
        );
    }

    #[test]
    fn cowfat_inf_passes() {
        let problems = problems_of(GOOD);
        assert!(problems.is_empty(), "{problems:#?}");
    }

    #[test]
    fn syntax_comments_quotes_continuations() {
        let inf =
            Inf::parse("[A]\nk = \"x;y\", z ; comment\nl = a,\\\n b\n[Strings]\nS=\"q\"\"r\"\n")
                .unwrap_or_default();
        let a = inf
            .section("a")
            .map(|s| s.entries.clone())
            .unwrap_or_default();
        assert_eq!(a[0].values, ["x;y", "z"]);
        assert_eq!(a[1].values, ["a", "b"]);
        assert_eq!(inf.expand("%s%-%13%-%%").as_deref(), Ok("q\"r-%13%-%"));
    }

    #[test]
    fn missing_service_section_fails() {
        assert_fails(
            &broken(
                "AddService = %ServiceName%,,Cowfat.Service",
                "AddService = %ServiceName%,,Cowfat.Missing",
            ),
            "[Cowfat.Missing], which does not exist",
        );
    }

    #[test]
    fn missing_copyfiles_section_fails() {
        assert_fails(
            &broken("[Cowfat.DriverFiles]", "[Cowfat.Other]"),
            "[Cowfat.DriverFiles], which does not exist",
        );
    }

    #[test]
    fn wrong_service_binary_fails() {
        assert_fails(
            &broken(
                "ServiceBinary  = %13%\\cowfat.sys",
                "ServiceBinary  = %13%\\fastfat.sys",
            ),
            "ServiceBinary",
        );
    }

    #[test]
    fn wrong_service_type_fails() {
        assert_fails(
            &broken("ServiceType    = 2", "ServiceType    = 1"),
            "ServiceType",
        );
    }

    #[test]
    fn obsolete_directive_fails() {
        assert_fails(
            &broken(
                "PnpLockdown = 1",
                "PnpLockdown = 1\nDriverPackageType = FileSystem",
            ),
            "DIFx",
        );
    }

    #[test]
    fn undecorated_default_install_fails() {
        assert_fails(
            &broken("[DefaultInstall.NTamd64]\n", "[DefaultInstall]\n"),
            "architecture-decorated",
        );
    }

    #[test]
    fn undefined_string_fails() {
        assert_fails(
            &broken("ProviderName       = ", "Provider_Name      = "),
            "%ProviderName% is not defined",
        );
    }

    #[test]
    fn bad_driver_ver_fails() {
        assert_fails(
            &broken(
                "DriverVer   = 11/21/2026,0.1.0.0",
                "DriverVer   = 2026-11-21",
            ),
            "DriverVer",
        );
    }
}
