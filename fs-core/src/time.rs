//! NT timestamps (100-ns intervals since 1601-01-01 UTC) and where "now" comes from.

/// An NT timestamp: 100-nanosecond intervals since 1601-01-01 UTC, as NT and exFAT keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct NtTime(pub u64);

/// Seconds between 1601-01-01 and 1970-01-01.
pub const UNIX_EPOCH_AS_NT_SECONDS: u64 = 11_644_473_600;

impl NtTime {
    /// From seconds and nanoseconds since the Unix epoch (times before 1970 clamp to it).
    pub fn from_unix(secs: i64, nanos: u32) -> NtTime {
        let secs = u64::try_from(secs).unwrap_or(0);
        NtTime((secs + UNIX_EPOCH_AS_NT_SECONDS) * 10_000_000 + u64::from(nanos / 100))
    }

    /// Seconds and nanoseconds since the Unix epoch (times before 1970 are negative).
    pub fn to_unix(self) -> (i64, u32) {
        let ticks = i128::from(self.0) - i128::from(UNIX_EPOCH_AS_NT_SECONDS) * 10_000_000;
        let secs = ticks.div_euclid(10_000_000);
        let nanos = (ticks.rem_euclid(10_000_000) * 100) as u32;
        (i64::try_from(secs).unwrap_or(i64::MAX), nanos)
    }
}

/// Where a volume gets the current time: the driver asks KeQuerySystemTime, the host the
/// system clock, tests a fixed or stepping clock.
pub trait Clock: Send {
    fn now(&self) -> NtTime;
}

/// A clock that always says the same time; for tests and reproducible images.
#[derive(Debug, Clone, Copy)]
pub struct FixedClock(pub NtTime);

impl Clock for FixedClock {
    fn now(&self) -> NtTime {
        self.0
    }
}

/// The host's system clock.
#[cfg(feature = "std")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

#[cfg(feature = "std")]
impl Clock for SystemClock {
    fn now(&self) -> NtTime {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        NtTime::from_unix(
            i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            d.subsec_nanos(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unix_round_trip() {
        let t = NtTime::from_unix(1_700_000_000, 123_456_700);
        assert_eq!(t.to_unix(), (1_700_000_000, 123_456_700));
        assert_eq!(NtTime::from_unix(0, 0).0, 116_444_736_000_000_000);
    }
}
