//! Names the NT file system accepts but Win32 programs cannot open: the tool refuses to make
//! them unless asked (`--allow-nt-names`), since Explorer and `copy` would fail on the files.
//!
//! Win32 turns a path into an NT path before it reaches the file system, and two of its rules
//! lose names: a final component that is a DOS device name (`CON`, `NUL.txt`, `com1 .log`)
//! becomes the device `\\.\CON`, and trailing dots and spaces are stripped (`a.` opens `a`).
//! The file system itself never sees those rules (see docs/win32-names.md).

/// Device names with no number.
const DEVICES: [&str; 4] = ["CON", "PRN", "AUX", "NUL"];
/// Device names that take one digit 1-9, or a superscript 1, 2 or 3 as Windows also matches.
const NUMBERED: [&str; 2] = ["COM", "LPT"];
const SUPERSCRIPT_DIGITS: [char; 3] = ['\u{b9}', '\u{b2}', '\u{b3}'];

/// Why Win32 programs cannot open a file of this name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Win32Problem {
    /// The name (before its first dot, trailing spaces ignored) is this device.
    DeviceName(String),
    EndsInDot,
    EndsInSpace,
}

impl std::fmt::Display for Win32Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::DeviceName(device) => write!(
                f,
                "{device} is a reserved device name on Windows (with any extension): Win32 programs would open the device, not the file"
            ),
            Self::EndsInDot => write!(
                f,
                "it ends in a dot, which Win32 strips from names, so Win32 programs cannot open the file"
            ),
            Self::EndsInSpace => write!(
                f,
                "it ends in a space, which Win32 strips from names, so Win32 programs cannot open the file"
            ),
        }
    }
}

/// The reason a Win32 program could not open a file called `name`, if there is one.
pub fn win32_problem(name: &str) -> Option<Win32Problem> {
    if name.ends_with('.') {
        return Some(Win32Problem::EndsInDot);
    }
    if name.ends_with(' ') {
        return Some(Win32Problem::EndsInSpace);
    }
    device_name(name).map(Win32Problem::DeviceName)
}

/// The device a name stands for in Win32: the part before the first dot (or colon), without
/// trailing spaces, compared without case.
fn device_name(name: &str) -> Option<String> {
    let stem = name.split(['.', ':']).next().unwrap_or(name);
    let stem = stem.trim_end_matches(' ');
    let upper = stem.to_ascii_uppercase();
    if DEVICES.contains(&upper.as_str()) {
        return Some(upper);
    }
    let mut chars = upper.chars();
    let prefix: String = chars.by_ref().take(3).collect();
    let digit = chars.next()?;
    let numbered = NUMBERED.contains(&prefix.as_str())
        && chars.next().is_none()
        && (('1'..='9').contains(&digit) || SUPERSCRIPT_DIGITS.contains(&digit));
    numbered.then_some(upper)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_with_any_extension_and_case() {
        for name in [
            "CON",
            "con",
            "Prn",
            "aux.txt",
            "NUL.tar.gz",
            "com1",
            "COM9.log",
            "lpt5",
            "LPT9",
            "com\u{b9}",
            "LPT\u{b3}.txt",
            "con .txt",
            "nul  ",
        ] {
            assert!(
                matches!(
                    win32_problem(name),
                    Some(Win32Problem::DeviceName(_) | Win32Problem::EndsInSpace)
                ),
                "{name:?}"
            );
        }
        assert_eq!(
            win32_problem("Com\u{b2}.x"),
            Some(Win32Problem::DeviceName("COM\u{b2}".into()))
        );
    }

    #[test]
    fn near_misses_are_ordinary_names() {
        for name in [
            "console",
            "com10",
            "com0",
            "lpt0",
            "lpt",
            "com",
            "xcon",
            "con-1",
            "auxiliary.txt",
            "com\u{b4}",
            ".con",
            "a.b",
            "COM1x",
        ] {
            assert_eq!(win32_problem(name), None, "{name:?}");
        }
    }

    #[test]
    fn trailing_dots_and_spaces() {
        assert_eq!(win32_problem("trail."), Some(Win32Problem::EndsInDot));
        assert_eq!(win32_problem("a.b.."), Some(Win32Problem::EndsInDot));
        assert_eq!(win32_problem("trailing "), Some(Win32Problem::EndsInSpace));
        assert_eq!(win32_problem(" lead"), None);
    }
}
