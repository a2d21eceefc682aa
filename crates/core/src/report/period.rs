//! The span of days a report (or `stats`) covers: a calendar month, a calendar
//! year, or the last N days up to today.

use chrono::{Datelike, Days, NaiveDate};
use serde::Serialize;

/// What kind of span, which decides the report's layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PeriodKind {
    Month,
    Year,
    /// The last N days (`attune stats`).
    Days,
}

/// A closed range of local calendar days.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Period {
    pub kind: PeriodKind,
    pub first: NaiveDate,
    pub last: NaiveDate,
}

/// A period that cannot be read from what was typed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeriodError {
    #[error("a month is written YYYY-MM, for example 2026-03; '{0}' is not one")]
    Month(String),
    #[error("a year is written YYYY, for example 2026; '{0}' is not one")]
    Year(String),
}

const DAY: &str = "%Y-%m-%d";

impl Period {
    /// `YYYY-MM`.
    pub fn month(text: &str) -> Result<Self, PeriodError> {
        let bad = || PeriodError::Month(crate::inert::line(text).into_owned());
        let (y, m) = text.split_once('-').ok_or_else(bad)?;
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        let year: i32 = y.parse().map_err(|_| bad())?;
        let month: u32 = m.parse().map_err(|_| bad())?;
        let first = NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        let next = first
            .checked_add_months(chrono::Months::new(1))
            .ok_or_else(bad)?;
        let last = next.pred_opt().ok_or_else(bad)?;
        Ok(Period {
            kind: PeriodKind::Month,
            first,
            last,
        })
    }

    /// `YYYY`.
    pub fn year(text: &str) -> Result<Self, PeriodError> {
        let bad = || PeriodError::Year(crate::inert::line(text).into_owned());
        if text.len() != 4 {
            return Err(bad());
        }
        let year: i32 = text.parse().map_err(|_| bad())?;
        let first = NaiveDate::from_ymd_opt(year, 1, 1).ok_or_else(bad)?;
        let last = NaiveDate::from_ymd_opt(year, 12, 31).ok_or_else(bad)?;
        Ok(Period {
            kind: PeriodKind::Year,
            first,
            last,
        })
    }

    /// The `n` days that end with `today` (at least one).
    pub fn last_days(today: NaiveDate, n: u32) -> Self {
        let first = today
            .checked_sub_days(Days::new(u64::from(n.max(1) - 1)))
            .unwrap_or(today);
        Period {
            kind: PeriodKind::Days,
            first,
            last: today,
        }
    }

    /// The month `today` is in.
    pub fn month_of(today: NaiveDate) -> Self {
        let first = today.with_day(1).unwrap_or(today);
        let last = first
            .checked_add_months(chrono::Months::new(1))
            .and_then(|d| d.pred_opt())
            .unwrap_or(today);
        Period {
            kind: PeriodKind::Month,
            first,
            last,
        }
    }

    /// Every day of the period, in order.
    pub fn days(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        self.first.iter_days().take_while(|d| *d <= self.last)
    }

    pub fn len(&self) -> usize {
        usize::try_from((self.last - self.first).num_days() + 1).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.last < self.first
    }

    /// Whether a `YYYY-MM-DD` day (as `practice::day_of` gives) is inside.
    pub fn contains_day(&self, day: &str) -> bool {
        NaiveDate::parse_from_str(day, DAY).is_ok_and(|d| d >= self.first && d <= self.last)
    }

    /// Whether a moment's local day is inside.
    pub fn contains_ms(&self, ms: i64) -> bool {
        self.contains_day(&crate::practice::day_of(ms))
    }

    /// "March 2026", "2026", or "2026-02-01 to 2026-03-02".
    pub fn label(&self) -> String {
        match self.kind {
            PeriodKind::Month => self.first.format("%B %Y").to_string(),
            PeriodKind::Year => self.first.format("%Y").to_string(),
            PeriodKind::Days => format!("{} to {}", self.first.format(DAY), self.last.format(DAY)),
        }
    }

    /// A moment safely before the period's first local day in any time zone,
    /// for reading the items that may belong to it.
    pub fn read_from_ms(&self) -> i64 {
        self.first
            .and_hms_opt(0, 0, 0)
            .map_or(0, |t| t.and_utc().timestamp_millis() - 2 * 86_400_000)
    }
}

/// `YYYY-MM-DD`.
pub fn day_key(d: NaiveDate) -> String {
    d.format(DAY).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn months_and_years_are_read_strictly() {
        let m = Period::month("2024-02").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (m.first.to_string(), m.last.to_string()),
            ("2024-02-01".into(), "2024-02-29".into())
        );
        assert_eq!(m.len(), 29);
        assert_eq!(m.label(), "February 2024");
        for bad in [
            "2024-2",
            "2024-13",
            "24-02",
            "2024/02",
            "",
            "2024-02-01",
            "abcd-ef",
        ] {
            assert!(Period::month(bad).is_err(), "{bad}");
        }
        let y = Period::year("2026").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(y.len(), 365);
        assert!(y.contains_day("2026-12-31") && !y.contains_day("2027-01-01"));
        assert!(Period::year("26").is_err() && Period::year("2026-01").is_err());
    }

    #[test]
    fn the_last_days_end_today() {
        let today = NaiveDate::from_ymd_opt(2026, 3, 2).unwrap_or_default();
        let p = Period::last_days(today, 30);
        assert_eq!(p.first.to_string(), "2026-02-01");
        assert_eq!(p.days().count(), 30);
        assert_eq!(Period::last_days(today, 0).len(), 1);
    }
}
