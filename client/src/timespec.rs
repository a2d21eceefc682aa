//! Times and durations as people type them: `--since yesterday|today|monday|7d|2w|2026-01-31`
//! (days start at local midnight) and durations like `20m`, `1h30m`, `2h` (humantime).

use std::time::Duration;

use chrono::{DateTime, Datelike, Days, NaiveDate, TimeZone, Weekday};

/// What `--since` accepts, for help and errors.
pub const SINCE_FORMS: &str =
    "today, yesterday, a weekday (monday … sunday: the last one, today included), a span back from now (36h, 7d, 2w) or a date (2026-01-31)";

/// The start (Unix ms) of what `--since SPEC` keeps, relative to `now` in its
/// time zone: days start at midnight there.
pub fn parse_since<Tz: TimeZone>(spec: &str, now: &DateTime<Tz>) -> Result<i64, String> {
    let word = spec.trim().to_lowercase();
    let today = now.date_naive();
    let day = match word.as_str() {
        "" => return Err(format!("--since needs a value: {SINCE_FORMS}")),
        "today" => Some(today),
        "yesterday" => today.checked_sub_days(Days::new(1)),
        _ => match weekday(&word) {
            Some(w) => {
                let back =
                    (7 + today.weekday().num_days_from_monday() - w.num_days_from_monday()) % 7;
                today.checked_sub_days(Days::new(u64::from(back)))
            }
            None => None,
        },
    };
    if let Some(day) = day {
        return start_of(day, now);
    }
    if let Ok(date) = NaiveDate::parse_from_str(&word, "%Y-%m-%d") {
        return start_of(date, now);
    }
    if word.starts_with(|c: char| c.is_ascii_digit()) {
        if let Ok(span) = humantime::parse_duration(&word) {
            let span = chrono::Duration::from_std(span)
                .map_err(|_| format!("--since {word} reaches too far back"))?;
            return now
                .clone()
                .checked_sub_signed(span)
                .map(|t| t.timestamp_millis())
                .ok_or_else(|| format!("--since {word} reaches too far back"));
        }
    }
    Err(format!(
        "--since takes {SINCE_FORMS}, not '{}'",
        attune_core::inert::line(spec.trim())
    ))
}

fn weekday(word: &str) -> Option<Weekday> {
    // "mon", "monday", "Mon." — chrono parses the English names and their
    // three-letter forms.
    word.trim_end_matches('.').parse::<Weekday>().ok()
}

/// Midnight at the start of `day` in `now`'s time zone (the first such instant
/// if a clock change repeats it; the first instant of the day if it skips it).
fn start_of<Tz: TimeZone>(day: NaiveDate, now: &DateTime<Tz>) -> Result<i64, String> {
    let zone = now.timezone();
    for minutes in [0u32, 30, 60, 90, 120] {
        let Some(t) = day.and_hms_opt(minutes / 60, minutes % 60, 0) else {
            continue;
        };
        if let Some(t) = zone.from_local_datetime(&t).earliest() {
            return Ok(t.timestamp_millis());
        }
    }
    Err(format!("{day} has no midnight in this time zone"))
}

/// A duration like `20m`, `1h30m`, `90s`, `2h` (humantime), or a bare number of
/// minutes (`45`).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let word = s.trim();
    if !word.is_empty() && word.chars().all(|c| c.is_ascii_digit()) {
        let minutes: u64 = word
            .parse()
            .map_err(|_| format!("'{word}' minutes is too long"))?;
        return Ok(Duration::from_secs(minutes.saturating_mul(60)));
    }
    humantime::parse_duration(word).map_err(|e| {
        format!(
            "'{}' is not a duration like 20m, 1h30m or 2h ({e})",
            attune_core::inert::line(word)
        )
    })
}

/// A duration in whole minutes, rounded up (`90s` is 2 minutes).
pub fn whole_minutes(d: Duration) -> u64 {
    d.as_secs().div_ceil(60)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use chrono::{FixedOffset, Utc};

    /// Wednesday 2026-03-11, 15:30 at UTC+2.
    fn now() -> DateTime<FixedOffset> {
        FixedOffset::east_opt(2 * 3600)
            .unwrap()
            .with_ymd_and_hms(2026, 3, 11, 15, 30, 0)
            .unwrap()
    }

    fn local_midnight(y: i32, m: u32, d: u32) -> i64 {
        FixedOffset::east_opt(2 * 3600)
            .unwrap()
            .with_ymd_and_hms(y, m, d, 0, 0, 0)
            .unwrap()
            .timestamp_millis()
    }

    #[test]
    fn days_start_at_local_midnight() {
        assert_eq!(
            parse_since("today", &now()),
            Ok(local_midnight(2026, 3, 11))
        );
        assert_eq!(
            parse_since("Yesterday", &now()),
            Ok(local_midnight(2026, 3, 10))
        );
        assert_eq!(
            parse_since("2026-01-31", &now()),
            Ok(local_midnight(2026, 1, 31))
        );
        // Local midnight, not UTC's.
        assert_ne!(
            parse_since("today", &now()),
            Ok(Utc
                .with_ymd_and_hms(2026, 3, 11, 0, 0, 0)
                .unwrap()
                .timestamp_millis())
        );
    }

    #[test]
    fn weekdays_mean_the_last_one_today_included() {
        assert_eq!(
            parse_since("monday", &now()),
            Ok(local_midnight(2026, 3, 9))
        );
        assert_eq!(parse_since("MON", &now()), Ok(local_midnight(2026, 3, 9)));
        assert_eq!(
            parse_since("wednesday", &now()),
            Ok(local_midnight(2026, 3, 11))
        );
        assert_eq!(
            parse_since("thursday", &now()),
            Ok(local_midnight(2026, 3, 5))
        );
        assert_eq!(
            parse_since("sunday", &now()),
            Ok(local_midnight(2026, 3, 8))
        );
    }

    #[test]
    fn spans_count_back_from_now() {
        let now_ms = now().timestamp_millis();
        assert_eq!(parse_since("7d", &now()), Ok(now_ms - 7 * 86_400_000));
        assert_eq!(parse_since("2w", &now()), Ok(now_ms - 14 * 86_400_000));
        assert_eq!(parse_since("36h", &now()), Ok(now_ms - 36 * 3_600_000));
        assert_eq!(parse_since("1h 30m", &now()), Ok(now_ms - 90 * 60_000));
    }

    #[test]
    fn nonsense_is_refused_with_the_forms_it_takes() {
        for bad in ["", "someday", "2026-13-01", "7", "-3d", "d7", "\u{1b}[2J"] {
            let err = parse_since(bad, &now()).unwrap_err();
            assert!(err.contains("--since"), "{bad}: {err}");
            assert!(!err.contains('\u{1b}'), "the error is inert: {err:?}");
        }
        assert!(parse_since("9999999999d", &now()).is_err());
    }

    #[test]
    fn durations_take_units_or_minutes() {
        assert_eq!(parse_duration("20m"), Ok(Duration::from_secs(1200)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("45"), Ok(Duration::from_secs(2700)));
        assert_eq!(whole_minutes(parse_duration("90s").unwrap()), 2);
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("").is_err());
    }
}
