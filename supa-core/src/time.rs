//! Calendar time from Unix time, UTC, for the formats that need it
//! (SigV4's `X-Amz-Date`, the access log's `[02/Dec/2026:01:59:34 +0000]`)
//! without a date library.

/// A UTC date and time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CivilTime {
    /// Year (proleptic Gregorian).
    pub year: i64,
    /// 1 to 12.
    pub month: u32,
    /// 1 to 31.
    pub day: u32,
    /// 0 to 23.
    pub hour: u32,
    /// 0 to 59.
    pub minute: u32,
    /// 0 to 59.
    pub second: u32,
}

impl CivilTime {
    /// The calendar time of `unix_secs` seconds after 1970-01-01T00:00:00Z.
    pub fn from_unix(unix_secs: u64) -> Self {
        let days = (unix_secs / 86_400) as i64;
        let secs = (unix_secs % 86_400) as u32;
        // Days to civil date: the era-based algorithm of H. Hinnant's
        // "chrono-Compatible Low-Level Date Algorithms".
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
        Self {
            year: yoe + era * 400 + i64::from(month <= 2),
            month,
            day,
            hour: secs / 3_600,
            minute: secs % 3_600 / 60,
            second: secs % 60,
        }
    }

    /// Seconds since 1970-01-01T00:00:00Z; `None` for fields out of range.
    pub fn to_unix(&self) -> Option<i64> {
        if !(1..=12).contains(&self.month)
            || !(1..=31).contains(&self.day)
            || self.hour > 23
            || self.minute > 59
            || self.second > 60
        {
            return None;
        }
        // Civil date to days: the inverse of `from_unix`'s algorithm.
        let y = self.year - i64::from(self.month <= 2);
        let era = y.div_euclid(400);
        let yoe = y - era * 400;
        let m = i64::from(self.month);
        let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(self.day) - 1;
        let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
        let days = era * 146_097 + doe - 719_468;
        Some(
            days * 86_400
                + i64::from(self.hour) * 3_600
                + i64::from(self.minute) * 60
                + i64::from(self.second),
        )
    }
}

/// How long since 1970-01-01T00:00:00Z, now (zero on a clock set before).
pub fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Now, as [`iso8601_millis`] writes it.
pub fn now_iso8601() -> String {
    iso8601_millis(since_epoch().as_millis() as u64)
}

/// `unix_secs` as an HTTP date (RFC 9110 IMF-fixdate):
/// `Wed, 02 Dec 2026 08:57:38 GMT`.
pub fn http_date(unix_secs: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let t = CivilTime::from_unix(unix_secs);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} GMT",
        DAYS[(unix_secs / 86_400 % 7) as usize],
        t.day,
        MONTHS[t.month as usize - 1],
        t.year,
        t.hour,
        t.minute,
        t.second
    )
}

/// `unix_millis` as ISO 8601 with milliseconds, as JavaScript's
/// `toISOString` and S3's XML write it: `2026-12-02T08:57:38.123Z`.
pub fn iso8601_millis(unix_millis: u64) -> String {
    let t = CivilTime::from_unix(unix_millis / 1_000);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year,
        t.month,
        t.day,
        t.hour,
        t.minute,
        t.second,
        unix_millis % 1_000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn to_unix_inverts_from_unix() {
        for t in [
            0u64,
            951_782_400,
            1_796_201_858,
            4_102_444_799,
            253_402_300_799,
        ] {
            assert_eq!(CivilTime::from_unix(t).to_unix(), Some(t as i64));
        }
        let mut bad = CivilTime::from_unix(0);
        bad.month = 13;
        assert_eq!(bad.to_unix(), None);
    }

    #[test]
    fn http_and_iso_dates() {
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(1_796_201_858), "Wed, 02 Dec 2026 08:57:38 GMT");
        assert_eq!(
            iso8601_millis(1_796_201_858_123),
            "2026-12-02T08:57:38.123Z"
        );
    }

    #[test]
    fn known_instants() {
        let t = |y, mo, d, h, mi, s| CivilTime {
            year: y,
            month: mo,
            day: d,
            hour: h,
            minute: mi,
            second: s,
        };
        assert_eq!(CivilTime::from_unix(0), t(1970, 1, 1, 0, 0, 0));
        // 2000-02-29, a leap day of a century leap year.
        assert_eq!(CivilTime::from_unix(951_782_400), t(2000, 2, 29, 0, 0, 0));
        assert_eq!(
            CivilTime::from_unix(1_764_640_774),
            t(2025, 12, 2, 1, 59, 34)
        );
        assert_eq!(
            CivilTime::from_unix(253_402_300_799),
            t(9999, 12, 31, 23, 59, 59)
        );
    }
}
