//! Outcomes, checks and the summary line.
//!
//! Every check says what was expected and what was seen, so a `FAIL` line is enough to start
//! debugging without re-running. The last line of every program here is
//! `N passed, M failed`, the form CI reads.

use std::fmt::{self, Debug};
use std::io;

/// Why a scenario failed: one sentence, "step: expected X, saw Y".
#[derive(Debug)]
pub struct Failure(pub String);

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

pub type Outcome = Result<(), Failure>;

/// Attaches the step name to an I/O error, so `?` in a scenario still tells where it broke.
pub trait Step<T> {
    fn step(self, what: &str) -> Result<T, Failure>;
}

impl<T> Step<T> for io::Result<T> {
    fn step(self, what: &str) -> Result<T, Failure> {
        self.map_err(|e| Failure(format!("{what}: expected success, saw error: {e}")))
    }
}

/// Byte buffers compared: short ones printed whole, long ones around the first difference.
pub fn expect_bytes(what: &str, expected: &[u8], seen: &[u8]) -> Outcome {
    if expected == seen {
        return Ok(());
    }
    Err(Failure(format!(
        "{what}: {}",
        describe_difference(expected, seen)
    )))
}

pub fn expect_eq<T: PartialEq + Debug>(what: &str, expected: T, seen: T) -> Outcome {
    if expected == seen {
        return Ok(());
    }
    Err(Failure(format!(
        "{what}: expected {expected:?}, saw {seen:?}"
    )))
}

pub fn expect(what: &str, condition: bool, detail: impl FnOnce() -> String) -> Outcome {
    if condition {
        return Ok(());
    }
    Err(Failure(format!("{what}: {}", detail())))
}

/// "expected "x234\0", saw "1234\0"" for short buffers; for long ones the first differing
/// offset, the lengths and 16 bytes of each from there.
pub fn describe_difference(expected: &[u8], seen: &[u8]) -> String {
    if expected.len() <= 32 && seen.len() <= 32 {
        return format!("expected \"{}\", saw \"{}\"", show(expected), show(seen));
    }
    let at = first_difference(expected, seen);
    let window = |b: &[u8]| show(&b[at.min(b.len())..(at + 16).min(b.len())]);
    format!(
        "first difference at byte {at} (expected {} bytes, saw {}): expected \"{}\", saw \"{}\"",
        expected.len(),
        seen.len(),
        window(expected),
        window(seen)
    )
}

pub fn first_difference(a: &[u8], b: &[u8]) -> usize {
    a.iter()
        .zip(b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()))
}

/// Bytes as an escaped ASCII string: `x234\x00`.
pub fn show(bytes: &[u8]) -> String {
    bytes.escape_ascii().to_string()
}

/// Counts of passed and failed scenarios (or checked operations, for the exerciser).
#[derive(Debug, Default)]
pub struct Tally {
    pub passed: u64,
    pub failed: u64,
}

impl Tally {
    /// Prints the scenario's line and counts it.
    pub fn record(&mut self, name: &str, outcome: &Outcome) {
        match outcome {
            Ok(()) => {
                self.passed += 1;
                println!("PASS {name}");
            }
            Err(failure) => {
                self.failed += 1;
                println!("FAIL {name}: {failure}");
            }
        }
    }

    pub fn summary_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }

    /// 0 when nothing failed, 1 otherwise (2 is kept for usage errors).
    pub fn exit_code(&self) -> i32 {
        i32::from(self.failed != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_buffers_are_shown_whole() {
        let text = describe_difference(b"x234\0", b"1234\0");
        assert_eq!(text, r#"expected "x234\x00", saw "1234\x00""#);
    }

    #[test]
    fn long_buffers_show_the_first_difference() {
        let a = vec![0u8; 100];
        let mut b = a.clone();
        b[70] = b'Z';
        let text = describe_difference(&a, &b);
        assert!(text.starts_with("first difference at byte 70 "), "{text}");
    }

    #[test]
    fn tally_summary() {
        let mut t = Tally::default();
        t.record("a", &Ok(()));
        t.record("b", &Err(Failure("x".into())));
        assert_eq!(t.summary_line(), "1 passed, 1 failed");
        assert_eq!(t.exit_code(), 1);
    }
}
