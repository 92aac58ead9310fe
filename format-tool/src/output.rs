//! Shared pieces of what commands print: times, attribute letters, JSON to stdout.

use std::io::Write;

use fs_core::time::NtTime;
use fs_core::{FileAttributes, FileInfo, FileKind};

/// "YYYY-MM-DD HH:MM:SS" in UTC.
pub fn format_time(t: NtTime) -> String {
    let (secs, _) = t.to_unix();
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    let (hh, mm, ss) = (rem / 3600, rem % 3600 / 60, rem % 60);
    format!("{y:04}-{m:02}-{d:02} {hh:02}:{mm:02}:{ss:02}")
}

/// Proleptic Gregorian date of a day count from 1970-01-01 (the well-known era/day-of-era
/// decomposition: 400-year eras of 146097 days).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // d is 1..=31 and m 1..=12 by construction.
    (
        y,
        u32::try_from(m).unwrap_or(1),
        u32::try_from(d).unwrap_or(1),
    )
}

/// "dr-ahs" style letters: directory, read-only, archive, hidden, system.
pub fn attribute_letters(info: &FileInfo) -> String {
    let a = info.attributes;
    let flag = |set: bool, c: char| if set { c } else { '-' };
    [
        flag(info.kind == FileKind::Directory, 'd'),
        flag(a.contains(FileAttributes::READONLY), 'r'),
        flag(a.contains(FileAttributes::ARCHIVE), 'a'),
        flag(a.contains(FileAttributes::HIDDEN), 'h'),
        flag(a.contains(FileAttributes::SYSTEM), 's'),
    ]
    .iter()
    .collect()
}

pub fn kind_name(kind: FileKind) -> &'static str {
    match kind {
        FileKind::File => "file",
        FileKind::Directory => "directory",
    }
}

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: serde::Serialize>(value: &T) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::other)?;
    writeln!(out)
}

/// The command-line spelling of an option value ("vhd-dynamic", "gpt") for messages.
pub fn value_name(v: &impl clap::ValueEnum) -> String {
    v.to_possible_value()
        .map_or_else(String::new, |p| p.get_name().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_print_as_utc_dates() {
        assert_eq!(format_time(NtTime::from_unix(0, 0)), "1970-01-01 00:00:00");
        assert_eq!(
            format_time(NtTime::from_unix(951_782_400 + 3661, 0)),
            "2000-02-29 01:01:01"
        );
        assert_eq!(
            format_time(NtTime::from_unix(1_700_000_000, 0)),
            "2023-11-14 22:13:20"
        );
    }
}
