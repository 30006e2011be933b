//! Calendar months in UTC: the quota window. Pure arithmetic on unix time (no clock read).

use std::fmt;

/// Seconds in a day.
const DAY_S: i64 = 86_400;

/// A calendar month in UTC, stored as `year * 12 + (month - 1)` so months order and step
/// as integers. Fits in 20 bits for every year up to 87 000.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Month(u32);

impl Month {
    /// The month that contains `unix_ms` (milliseconds since the epoch, UTC).
    pub fn of_unix_ms(unix_ms: u64) -> Month {
        let days = (unix_ms / 1000) as i64 / DAY_S;
        let (y, m, _) = civil_from_days(days);
        Month::new(y as u32, m)
    }

    /// A month from a year and a month number (1–12; other values are clamped).
    pub fn new(year: u32, month: u32) -> Month {
        Month(year * 12 + month.clamp(1, 12) - 1)
    }

    /// From the packed index (`year * 12 + month - 1`).
    pub fn from_index(index: u32) -> Month {
        Month(index)
    }

    /// The packed index (`year * 12 + month - 1`).
    pub fn index(self) -> u32 {
        self.0
    }

    /// The year.
    pub fn year(self) -> u32 {
        self.0 / 12
    }

    /// The month number, 1–12.
    pub fn month(self) -> u32 {
        self.0 % 12 + 1
    }

    /// The month after this one.
    pub fn next(self) -> Month {
        Month(self.0 + 1)
    }

    /// Unix seconds of the first instant of the month (00:00:00 UTC on day 1).
    pub fn start_unix_s(self) -> u64 {
        let days = days_from_civil(i64::from(self.year()), self.month(), 1);
        u64::try_from(days * DAY_S).unwrap_or(0)
    }

    /// RFC 3339 form of the month's first instant, e.g. `2026-12-01T00:00:00Z`.
    pub fn start_rfc3339(self) -> String {
        format!("{:04}-{:02}-01T00:00:00Z", self.year(), self.month())
    }

    /// Whole seconds from `now_ms` to the start of the next month, rounded up, at least 1.
    pub fn seconds_to_reset(self, now_ms: u64) -> u64 {
        let reset_ms = self.next().start_unix_s().saturating_mul(1000);
        reset_ms.saturating_sub(now_ms).div_ceil(1000).max(1)
    }

    /// Parses `YYYY-MM`.
    pub fn parse(s: &str) -> Option<Month> {
        let (y, m) = s.split_once('-')?;
        if y.len() != 4 || m.len() != 2 {
            return None;
        }
        let (y, m) = (y.parse::<u32>().ok()?, m.parse::<u32>().ok()?);
        (1..=12).contains(&m).then(|| Month::new(y, m))
    }
}

impl fmt::Display for Month {
    /// `YYYY-MM`, e.g. `2026-11`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04}-{:02}", self.year(), self.month())
    }
}

/// Days since 1970-01-01 → (year, month, day); Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// (year, month, day) → days since 1970-01-01; Howard Hinnant's `days_from_civil`.
fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = i64::from(if m > 2 { m - 3 } else { m + 9 });
    let doy = (153 * mp + 2) / 5 + i64::from(d) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-11-21T20:30:00Z.
    const NOV_21_2026_MS: u64 = 1_795_293_000_000;

    #[test]
    fn months_of_known_instants() {
        assert_eq!(Month::of_unix_ms(0).to_string(), "1970-01");
        assert_eq!(Month::of_unix_ms(NOV_21_2026_MS).to_string(), "2026-11");
        // 2024-02-29T23:59:59Z (leap day), then 2024-03-01T00:00:00Z.
        assert_eq!(Month::of_unix_ms(1_709_251_199_000).to_string(), "2024-02");
        assert_eq!(Month::of_unix_ms(1_709_251_200_000).to_string(), "2024-03");
        // 2026-12-31T23:59:59.999Z, then the new year.
        let nye = Month::new(2027, 1).start_unix_s() * 1000;
        assert_eq!(Month::of_unix_ms(nye - 1).to_string(), "2026-12");
        assert_eq!(Month::of_unix_ms(nye).to_string(), "2027-01");
    }

    #[test]
    fn starts_and_resets() {
        assert_eq!(Month::new(1970, 1).start_unix_s(), 0);
        assert_eq!(Month::new(2024, 3).start_unix_s(), 1_709_251_200);
        let nov = Month::of_unix_ms(NOV_21_2026_MS);
        assert_eq!(nov.next().start_rfc3339(), "2026-12-01T00:00:00Z");
        assert_eq!(Month::new(2026, 12).next().to_string(), "2027-01");
        // 9 days 3.5 hours to the reset.
        assert_eq!(
            nov.seconds_to_reset(NOV_21_2026_MS),
            9 * 86_400 + 3 * 3600 + 1800
        );
        let dec_ms = nov.next().start_unix_s() * 1000;
        assert_eq!(nov.seconds_to_reset(dec_ms - 1), 1);
        assert_eq!(nov.seconds_to_reset(dec_ms + 5_000), 1);
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        for days in (-1_000..146_097 * 2).step_by(7) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn parse_and_display() {
        assert_eq!(Month::parse("2026-11"), Some(Month::new(2026, 11)));
        assert_eq!(Month::parse("2026-13"), None);
        assert_eq!(Month::parse("26-11"), None);
        let m = Month::new(2026, 11);
        assert_eq!(Month::from_index(m.index()), m);
    }
}
