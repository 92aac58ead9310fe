//! Sizes on the command line: a number with an optional binary suffix (K, M, G, T; "64M",
//! "2G", "1T", "1.5G"; a trailing "B" or "iB" is accepted).

/// A size as the user typed it: the bytes, and the binary unit they wrote it in, so messages
/// can answer in the same unit ("99999 TiB", not 109950063265972224 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeArg {
    pub bytes: u64,
    /// log2 of the unit: 0 bytes, 10 KiB, 20 MiB, 30 GiB, 40 TiB.
    pub unit_shift: u32,
}

impl SizeArg {
    /// Another byte count in this argument's unit (for limits quoted next to it).
    pub fn same_unit(&self, bytes: u64) -> String {
        in_unit(bytes, self.unit_shift)
    }
}

impl std::fmt::Display for SizeArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&in_unit(self.bytes, self.unit_shift))
    }
}

/// Parses a size for an option whose value messages quote back (`--size`).
pub fn parse_size_arg(text: &str) -> Result<SizeArg, String> {
    let bytes = parse_size(text)?;
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let unit_shift = match t.chars().last() {
        Some(c) if c.is_ascii_alphabetic() => suffix_shift(c)?,
        _ => 0,
    };
    Ok(SizeArg { bytes, unit_shift })
}

/// `bytes` in the unit 2^`shift`: "99999 TiB", "1.5 GiB", "1536 bytes".
pub fn in_unit(bytes: u64, shift: u32) -> String {
    const NAMES: [(u32, &str); 4] = [(10, "KiB"), (20, "MiB"), (30, "GiB"), (40, "TiB")];
    let Some(&(_, name)) = NAMES.iter().find(|(s, _)| *s == shift) else {
        return format!("{bytes} bytes");
    };
    let unit = 1u64 << shift;
    if bytes % unit == 0 {
        return format!("{} {name}", bytes / unit);
    }
    let value = bytes as f64 / unit as f64;
    // Enough digits to tell the value from its neighbours, without a float tail.
    let text = format!("{value:.3}");
    format!(
        "{} {name}",
        text.trim_end_matches('0').trim_end_matches('.')
    )
}

/// Parses a size in bytes; the error is the reason, for clap to show.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let t = t
        .strip_suffix("iB")
        .or_else(|| t.strip_suffix('B'))
        .unwrap_or(t);
    let (number, shift) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => (&t[..i], suffix_shift(c)?),
        _ => (t, 0),
    };
    let bad = || format!("\"{text}\" is not a size (examples: 4096, 64M, 2G, 1T)");
    if number.is_empty() {
        return Err(bad());
    }
    let unit = 1u64 << shift;
    if let Ok(n) = number.parse::<u64>() {
        return n
            .checked_mul(unit)
            .ok_or_else(|| format!("\"{text}\" is too large"));
    }
    let x: f64 = number.parse().map_err(|_| bad())?;
    let bytes = x * unit as f64;
    if !(0.0..1.8e19).contains(&bytes) || bytes.fract() != 0.0 {
        return Err(format!("\"{text}\" is not a whole number of bytes"));
    }
    // Checked above: a non-negative whole number below u64::MAX.
    Ok(bytes as u64)
}

fn suffix_shift(c: char) -> Result<u32, String> {
    match c.to_ascii_uppercase() {
        'K' => Ok(10),
        'M' => Ok(20),
        'G' => Ok(30),
        'T' => Ok(40),
        other => Err(format!("unknown size suffix '{other}' (use K, M, G or T)")),
    }
}

/// Bytes in the largest fitting binary unit, for messages ("64 MiB", "1.5 GiB").
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if value.fract() == 0.0 {
        format!("{value} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffixes_are_binary() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("2G"), Ok(2 << 30));
        assert_eq!(parse_size("1T"), Ok(1 << 40));
        assert_eq!(parse_size("8k"), Ok(8192));
        assert_eq!(parse_size("1.5G"), Ok(3 << 29));
        assert_eq!(parse_size("16MiB"), Ok(16 << 20));
    }

    #[test]
    fn nonsense_is_refused_with_a_reason() {
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").unwrap_err().contains("suffix"));
        assert!(parse_size("-1G").is_err());
        assert!(parse_size("99999999999T")
            .unwrap_err()
            .contains("too large"));
    }

    #[test]
    fn a_size_argument_reads_back_in_the_unit_typed() {
        let big = parse_size_arg("99999T").unwrap();
        assert_eq!(big.bytes, 99999 << 40);
        assert_eq!(big.to_string(), "99999 TiB");
        assert_eq!(big.same_unit(2040 << 30), "1.992 TiB");
        assert_eq!(parse_size_arg("1K").unwrap().to_string(), "1 KiB");
        assert_eq!(parse_size_arg("1.5GiB").unwrap().to_string(), "1.5 GiB");
        assert_eq!(parse_size_arg("1536").unwrap().to_string(), "1536 bytes");
        assert_eq!(parse_size_arg("64m").unwrap().same_unit(1 << 20), "1 MiB");
    }

    #[test]
    fn human_picks_the_largest_unit() {
        assert_eq!(human(64 << 20), "64 MiB");
        assert_eq!(human(3 << 29), "1.5 GiB");
        assert_eq!(human(100), "100 B");
    }
}
