//! FsRtl's name expression matching: `FsRtlIsNameInExpression` with the DOS wildcards
//! (`*`, `?`, and the `<` `>` `"` forms the I/O manager makes of `*` `?` `.` in DOS patterns).
//!
//! Stricter than Windows: ntsim has no upcase table of its own; with `IgnoreCase` the name is
//! upcased unit by unit with Unicode's simple uppercase mapping (the table a file system
//! passes is used when given), and, as the documentation requires, the expression must
//! already be upcased.
#![allow(unsafe_code, non_snake_case, clippy::missing_safety_doc)]

use windows_sys::core::PCWSTR;
use windows_sys::Win32::Foundation::UNICODE_STRING;

const STAR: u16 = b'*' as u16;
const QM: u16 = b'?' as u16;
const DOS_STAR: u16 = b'<' as u16;
const DOS_QM: u16 = b'>' as u16;
const DOS_DOT: u16 = b'"' as u16;
const DOT: u16 = b'.' as u16;

/// Simple uppercase of one UTF-16 unit (surrogates and multi-unit mappings stay).
#[must_use]
pub fn upcase_unit(unit: u16) -> u16 {
    let Some(c) = char::from_u32(u32::from(unit)) else {
        return unit;
    };
    let mut upper = c.to_uppercase();
    match (upper.next(), upper.next()) {
        (Some(u), None) => u16::try_from(u32::from(u)).unwrap_or(unit),
        _ => unit,
    }
}

/// Does `name` match `expression` (both already in the case to compare)?
#[must_use]
pub fn matches(expression: &[u16], name: &[u16]) -> bool {
    let mut memo = vec![None; (expression.len() + 1) * (name.len() + 1)];
    let last_dot = name.iter().rposition(|&u| u == DOT);
    step(expression, name, 0, 0, last_dot, &mut memo)
}

fn step(
    e: &[u16],
    n: &[u16],
    i: usize,
    j: usize,
    last_dot: Option<usize>,
    memo: &mut Vec<Option<bool>>,
) -> bool {
    let key = i * (n.len() + 1) + j;
    if let Some(v) = memo[key] {
        return v;
    }
    let more = j < n.len();
    let v = if i == e.len() {
        !more
    } else {
        match e[i] {
            STAR => {
                step(e, n, i + 1, j, last_dot, memo)
                    || (more && step(e, n, i, j + 1, last_dot, memo))
            }
            QM => more && step(e, n, i + 1, j + 1, last_dot, memo),
            DOS_STAR => {
                // Any units up to (not including) the name's last period.
                step(e, n, i + 1, j, last_dot, memo)
                    || (more && Some(j) != last_dot && step(e, n, i, j + 1, last_dot, memo))
            }
            DOS_QM => {
                if !more || n[j] == DOT {
                    step(e, n, i + 1, j, last_dot, memo)
                } else {
                    step(e, n, i + 1, j + 1, last_dot, memo)
                }
            }
            DOS_DOT => {
                if more {
                    n[j] == DOT && step(e, n, i + 1, j + 1, last_dot, memo)
                } else {
                    step(e, n, i + 1, j, last_dot, memo)
                }
            }
            c => more && c == n[j] && step(e, n, i + 1, j + 1, last_dot, memo),
        }
    };
    memo[key] = Some(v);
    v
}

unsafe fn units(s: *const UNICODE_STRING) -> Vec<u16> {
    // SAFETY: the caller's string.
    let s = unsafe { &*s };
    if s.Buffer.is_null() || s.Length == 0 {
        return Vec::new();
    }
    // SAFETY: `Length` bytes at `Buffer`.
    unsafe { std::slice::from_raw_parts(s.Buffer, usize::from(s.Length / 2)) }.to_vec()
}

#[no_mangle]
pub unsafe extern "system" fn FsRtlIsNameInExpression(
    expression: *const UNICODE_STRING,
    name: *const UNICODE_STRING,
    ignorecase: bool,
    upcasetable: PCWSTR,
) -> bool {
    let _kernel = crate::heap::KernelRegion::enter();
    // SAFETY: the caller's strings.
    let expression = unsafe { units(expression) };
    // SAFETY: as above.
    let mut name = unsafe { units(name) };
    if expression.is_empty() {
        crate::ex::bugcheck("FsRtlIsNameInExpression with an empty expression");
    }
    if ignorecase {
        for u in &mut name {
            *u = if upcasetable.is_null() {
                upcase_unit(*u)
            } else {
                // SAFETY: an upcase table has 65536 entries.
                let entry = unsafe { upcasetable.add(usize::from(*u)) };
                // SAFETY: as above.
                unsafe { *entry }
            };
        }
    }
    matches(&expression, &name)
}

#[cfg(test)]
mod tests {
    use super::matches;

    fn m(e: &str, n: &str) -> bool {
        let e: Vec<u16> = e.encode_utf16().collect();
        let n: Vec<u16> = n.encode_utf16().collect();
        matches(&e, &n)
    }

    #[test]
    fn dos_wildcards() {
        assert!(m("*", "anything.txt"));
        assert!(m("A?C", "ABC") && !m("A?C", "AC"));
        assert!(m("*.TXT", "A.TXT") && !m("*.TXT", "A.TXTX"));
        // `*.*` from DOS becomes `<"*`: matches names without a period too.
        assert!(m("<\"*", "NODOT") && m("<\"*", "A.B.C"));
        // `<` stops before the last period.
        assert!(m("<.C", "A.B.C") && !m("<", "A.B") && m("<", "AB"));
        // `>` matches one unit, or nothing at a period or the end.
        assert!(m("AB>>>", "AB") && m("AB>>>", "ABCDE") && !m("AB>>>", "ABCDEF"));
        assert!(m(">>>\">>>", "AB.C"));
    }
}
