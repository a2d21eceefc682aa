//! End-to-end tests of attune's insights through the real `attune` binary and the
//! real `attune-relay` on 127.0.0.1, with the clock injected by the test-only
//! `ATTUNE_TEST_NOW_MS` and `TZ=UTC`:
//!
//! - a 60-day history of sealed check-ins with guesses, written by both partners
//!   through `checkin` and `sync`, gives `stats --days 60 --json` values that match
//!   values computed by hand here: per-day moods, averages, per-day accuracy, mean
//!   mood errors and the forgiving streaks;
//! - `report --month` draws one point per day with data in its SVG charts, and the
//!   page renders in real headless Chromium (Debian's `chromium`) to a PNG that is
//!   decoded here and shows both chart colours;
//! - `journal --send-after` holds an entry on the device, sealed; `withdraw` means
//!   it is never sent; a held entry whose time has come goes exactly once, dated at
//!   its scheduled time;
//! - `today --json` lists the check-in when the partner's sealed one waits, and the
//!   30-day challenge's day.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use attune_tests::{pair, Attune, Relay, Run};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// clock and calendar

const DAY_MS: i64 = 86_400_000;
const HOUR_MS: i64 = 3_600_000;
/// 2026-03-01T12:00:00Z: the first day of the seeded history.
const START_MS: i64 = 1_772_366_400_000;
/// Days in the seeded history: 2026-03-01 ..= 2026-05-29.
const DAYS: usize = 90;
/// The last day of the history: "today" when stats and reports are read.
const LAST: usize = DAYS - 1;

/// The UTC calendar day of a Unix-millisecond time (Howard Hinnant's
/// civil-from-days), computed here without the client's code.
fn day_string(ms: i64) -> String {
    let z = ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn day(i: usize) -> String {
    day_string(START_MS + i as i64 * DAY_MS)
}

/// A profile with `TZ=UTC`, so that local days are UTC days.
fn profile(home: &Path) -> Attune {
    let mut a = Attune::new(home);
    a.env.push(("TZ".into(), "UTC".into()));
    a
}

/// The same profile with the test-only clock at `ms`.
fn at(who: &Attune, ms: i64) -> Attune {
    let mut w = who.clone();
    w.env.retain(|(k, _)| k != "ATTUNE_TEST_NOW_MS");
    w.env.push(("ATTUNE_TEST_NOW_MS".into(), ms.to_string()));
    w
}

/// A relay and two paired partners, Alex (a) and Sam (b).
struct Couple {
    dir: tempfile::TempDir,
    relay: Relay,
    a: Attune,
    b: Attune,
}

fn couple() -> Couple {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = profile(&dir.path().join("a"));
    let b = profile(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &relay.url);
    Couple { dir, relay, a, b }
}

fn sync(who: &Attune) -> Run {
    who.run(&["sync"]).ok()
}

/// `feed --json`: the entries, after checking there is no integrity problem.
fn feed(who: &Attune) -> Vec<Value> {
    let v = who.run(&["feed", "--json"]).ok().json();
    assert_eq!(v["problems"], json!([]), "integrity problems: {v:#}");
    v["entries"].as_array().unwrap().clone()
}

// ---------------------------------------------------------------------------
// the seeded history: who checks in when, with which mood, feelings and guesses

/// One partner's sealed check-in of one day.
#[derive(Debug, Clone, Copy)]
struct Plan {
    mood: u8,
    feel: &'static str,
    guess_mood: Option<u8>,
    guess_feel: Option<&'static str>,
}

/// Alex misses 10 and 11 (two in a row: a streak ends), 20, 45 and 57 (single
/// days: forgiven).
const A_MISSES: [usize; 5] = [10, 11, 20, 45, 57];
/// Sam misses 5 and 6 (two in a row), 30 and 59 (single), and 89, the last day,
/// which is "today" when the stats are read (today not done yet does not break a
/// streak).
const B_MISSES: [usize; 5] = [5, 6, 30, 59, 89];

const A_FEEL: [&str; 5] = [
    "calm,hopeful",
    "tired,stressed",
    "happy",
    "anxious,tired",
    "content,grateful",
];
const B_FEEL: [&str; 4] = ["happy,calm", "worried", "tired,sad", "grateful,close"];
/// Alex's guesses of Sam's feelings.
const A_GUESS_FEEL: [&str; 3] = ["calm", "tired,happy", "worried,sad,grateful"];
/// Sam's guesses of Alex's feelings.
const B_GUESS_FEEL: [&str; 3] = ["hopeful,calm", "stressed", "content,tired"];

/// Alex: no guess at all on days ≡ 5 (mod 11); feelings only on days ≡ 3 (mod 7);
/// mood only on days ≡ 1 (mod 4); otherwise both.
fn plan_a(i: usize) -> Option<Plan> {
    if A_MISSES.contains(&i) {
        return None;
    }
    let no_guess = i % 11 == 5;
    Some(Plan {
        mood: 1 + ((3 * i + 2) % 10) as u8,
        feel: A_FEEL[i % 5],
        guess_mood: (!no_guess && i % 7 != 3).then_some(1 + ((5 * i + 1) % 10) as u8),
        guess_feel: (!no_guess && i % 4 != 1).then_some(A_GUESS_FEEL[i % 3]),
    })
}

/// Sam: no mood guess on days ≡ 4 (mod 6), no feelings guess on days ≡ 2 (mod 9).
fn plan_b(i: usize) -> Option<Plan> {
    if B_MISSES.contains(&i) {
        return None;
    }
    Some(Plan {
        mood: 1 + ((7 * i + 4) % 10) as u8,
        feel: B_FEEL[i % 4],
        guess_mood: (i % 6 != 4).then_some(1 + ((2 * i + 7) % 10) as u8),
        guess_feel: (i % 9 != 2).then_some(B_GUESS_FEEL[i % 3]),
    })
}

fn words(list: &str) -> Vec<&str> {
    list.split(',').collect()
}

fn checkin_args(p: &Plan) -> Vec<String> {
    let mut args = vec![
        "checkin".to_string(),
        "--mood".into(),
        p.mood.to_string(),
        "--feel".into(),
        p.feel.into(),
    ];
    if let Some(m) = p.guess_mood {
        args.extend(["--guess-mood".into(), m.to_string()]);
    }
    if let Some(f) = p.guess_feel {
        args.extend(["--guess-feel".into(), f.into()]);
    }
    args
}

/// Both devices after the 60 days, shared by the tests that read the history (the
/// first to ask builds it; it is removed when the last one is done).
struct Seeded {
    _dir: tempfile::TempDir,
    a: Attune,
    b: Attune,
}

static SEEDED: Mutex<Weak<Seeded>> = Mutex::new(Weak::new());

fn seeded() -> Arc<Seeded> {
    let mut slot = SEEDED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(s) = slot.upgrade() {
        return s;
    }
    let s = Arc::new(seed());
    *slot = Arc::downgrade(&s);
    s
}

/// Writes the history through the real commands: per day, Alex's and Sam's sealed
/// check-ins (each pushes at once), then `sync` by Alex (sees both sealed: reveals)
/// and by Sam (receives Alex's reveal, reveals). Alex receives Sam's reveal at
/// the next day's sync, and at one last sync after the last day.
fn seed() -> Seeded {
    assert_eq!(day(0), "2026-03-01");
    assert_eq!(day(30), "2026-03-31");
    assert_eq!(day(LAST), "2026-05-29");
    let started = Instant::now();
    let c = couple();
    let paired = started.elapsed();
    let mut commands = 0;
    for i in 0..DAYS {
        let now = START_MS + i as i64 * DAY_MS;
        let (a, b) = (at(&c.a, now), at(&c.b, now));
        for (who, plan, other) in [(&a, plan_a(i), None), (&b, plan_b(i), Some(plan_a(i)))] {
            if let Some(p) = plan {
                let args = checkin_args(&p);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                let out = who.run(&args).ok();
                commands += 1;
                // Sam's check-in answers Alex's exactly on the days Alex checked
                // in: yesterday's is past its time.
                let answers = matches!(other, Some(Some(_)));
                assert_eq!(
                    out.stdout.contains("it answers Alex's check-in"),
                    answers,
                    "day {}: {}",
                    day(i),
                    out.stdout
                );
                assert!(
                    answers || out.stdout.contains("sealed until"),
                    "day {}: {}",
                    day(i),
                    out.stdout
                );
                assert!(
                    !out.stderr.contains("warning"),
                    "sent at once: {}",
                    out.stderr
                );
            }
        }
        sync(&a);
        sync(&b);
        commands += 2;
    }
    sync(&at(&c.a, START_MS + (DAYS as i64 - 1) * DAY_MS));
    commands += 1;
    let total = started.elapsed();
    println!(
        "seeded {DAYS} days with {commands} attune commands in {:.1} s ({:.1} s of it init and pairing; {:.0} ms per command)",
        total.as_secs_f64(),
        paired.as_secs_f64(),
        (total - paired).as_secs_f64() * 1000.0 / f64::from(commands)
    );
    let Couple { dir, relay, a, b } = c;
    // `stats` and `report` read only the device: the relay is no longer needed.
    drop(relay);
    Seeded { _dir: dir, a, b }
}

// ---------------------------------------------------------------------------
// the values computed by hand

/// |guess - actual|, and the guessed feelings the partner named.
fn guess_vs(guess: &Plan, actual: &Plan) -> (Option<u8>, usize, usize) {
    let actual_feel = words(actual.feel);
    let guessed = guess.guess_feel.map(words).unwrap_or_default();
    let hit = guessed.iter().filter(|w| actual_feel.contains(w)).count();
    (
        guess.guess_mood.map(|g| g.abs_diff(actual.mood)),
        hit,
        guessed.len(),
    )
}

/// (numerator, denominator) of a mean of small integers, and its value.
fn mean(values: &[u8]) -> Option<(u32, usize, f64)> {
    if values.is_empty() {
        return None;
    }
    let sum: u32 = values.iter().map(|&v| u32::from(v)).sum();
    Some((sum, values.len(), f64::from(sum) / values.len() as f64))
}

struct Expected {
    days: Value,
    my_average: Option<(u32, usize, f64)>,
    partner_average: Option<(u32, usize, f64)>,
    accuracy: Value,
    my_mean_error: Option<(u32, usize, f64)>,
    partner_mean_error: Option<(u32, usize, f64)>,
}

/// What `me` reads: its own check-ins every day it checked in; the partner's only
/// on days both checked in (a sealed check-in opens only when both sealed the same
/// day), and the guesses of those days.
fn expected(
    me: fn(usize) -> Option<Plan>,
    them: fn(usize) -> Option<Plan>,
    range: std::ops::Range<usize>,
) -> Expected {
    let mut days = vec![];
    let (mut mine, mut theirs) = (vec![], vec![]);
    let mut accuracy = vec![];
    let (mut my_errors, mut their_errors) = (vec![], vec![]);
    for i in range {
        let (m, t) = (me(i), them(i));
        let both = m.is_some() && t.is_some();
        let my_mood = m.map(|p| p.mood);
        let their_mood = if both { t.map(|p| p.mood) } else { None };
        days.push(json!([day(i), my_mood, their_mood]));
        mine.extend(my_mood);
        theirs.extend(their_mood);
        if let (Some(m), Some(t)) = (m, t) {
            let (my_err, my_hit, my_guessed) = guess_vs(&m, &t);
            let (their_err, their_hit, their_guessed) = guess_vs(&t, &m);
            my_errors.extend(my_err);
            their_errors.extend(their_err);
            accuracy.push(json!({
                "day": day(i),
                "my_mood_error": my_err,
                "their_mood_error": their_err,
                "my_feelings_hit": my_hit,
                "my_feelings_guessed": my_guessed,
                "their_feelings_hit": their_hit,
                "their_feelings_guessed": their_guessed,
            }));
        }
    }
    Expected {
        days: Value::Array(days),
        my_average: mean(&mine),
        partner_average: mean(&theirs),
        accuracy: Value::Array(accuracy),
        my_mean_error: mean(&my_errors),
        partner_mean_error: mean(&their_errors),
    }
}

fn assert_mean(stats: &Value, field: &str, want: Option<(u32, usize, f64)>) {
    match want {
        None => assert_eq!(stats[field], Value::Null, "{field}"),
        Some((num, den, v)) => {
            let got = stats[field]
                .as_f64()
                .unwrap_or_else(|| panic!("{field} is not a number: {}", stats[field]));
            // JSON parsing of floats is best-effort to the last bit; the means are
            // sums of small integers over a count, so equal to 1e-12 means equal.
            assert!(
                (got - v).abs() < 1e-12,
                "{field}: got {got}, computed {num}/{den} = {v}"
            );
            println!("  {field}: {num}/{den} = {v:.6} (attune says {got})");
        }
    }
}

// ---------------------------------------------------------------------------
// 1. stats of the last 60 days of the 90-day history

#[test]
fn stats_from_a_90_day_seeded_history_match_values_computed_by_hand() {
    let s = seeded();
    let today = START_MS + LAST as i64 * DAY_MS;
    // The forgiving streaks, by hand, with today = day 89 (2026-05-29):
    //
    // Alex checked in on every day but 10, 11, 20, 45, 57.
    //   89..=58 | 57 missed, forgiven | 56..=46 | 45 forgiven | 44..=21 | 20 forgiven
    //   | 19..=12 | 11, 10: two missed in a row, the streak ends there.
    //   = 32 + 11 + 24 + 8 = 75.
    // Sam checked in on every day but 5, 6, 30, 59, 89; today (89) is not done
    // yet, so the count starts yesterday: 88..=60 | 59 forgiven | 58..=31 | 30
    // forgiven | 29..=7 | 6, 5 end it.
    //   = 29 + 28 + 23 = 80.
    // The stats read only the last 60 days; the streaks reach further back.
    // Each device knows every day the other checked in, even where the check-in
    // stays sealed (its envelope arrived; its content did not), so each reads the
    // other's streak exactly as the other does: Alex sees Sam's 80, Sam sees Alex's 75.
    let window = DAYS - 60..DAYS;
    let views = [
        (
            "Alex",
            &s.a,
            expected(plan_a, plan_b, window.clone()),
            75,
            80,
        ),
        ("Sam", &s.b, expected(plan_b, plan_a, window), 80, 75),
    ];
    for (name, who, want, my_streak, partner_streak) in views {
        let started = Instant::now();
        let stats = at(who, today)
            .run(&["stats", "--days", "60", "--json"])
            .ok()
            .json();
        println!(
            "{name}'s stats (read in {} ms):",
            started.elapsed().as_millis()
        );
        assert_eq!(stats["days"], want.days, "{name}: per-day moods");
        assert_eq!(stats["accuracy"], want.accuracy, "{name}: per-day accuracy");
        assert_mean(&stats, "my_average_mood", want.my_average);
        assert_mean(&stats, "partner_average_mood", want.partner_average);
        assert_mean(&stats, "my_mean_mood_error", want.my_mean_error);
        assert_mean(&stats, "partner_mean_mood_error", want.partner_mean_error);
        assert_eq!(stats["my_streak"], json!(my_streak), "{name}: own streak");
        assert_eq!(
            stats["partner_streak"],
            json!(partner_streak),
            "{name}: partner's streak"
        );
        println!("  my_streak: {my_streak}, partner_streak: {partner_streak}");
        assert_eq!(
            stats["balance"],
            json!({
                "reflections_by_me": 0,
                "reflections_by_partner": 0,
                "threads_confirmed_first_try_by_me": 0,
                "threads_by_me": 0,
                "needs_support_me": 0,
                "needs_support_partner": 0,
            }),
            "{name}: balance"
        );
        let days_with_data = want.days.as_array().unwrap().len();
        assert_eq!(days_with_data, 60);
        println!(
            "  {} revealed days with accuracy",
            want.accuracy.as_array().unwrap().len()
        );
    }
    // Every both-sealed day was revealed on both devices, and nothing was refused.
    for who in [&s.a, &s.b] {
        let v = who.run(&["status", "--json"]).ok().json();
        assert_eq!(v["problems"], json!([]), "{v:#}");
        assert_eq!(v["waiting"], json!(0), "{v:#}");
    }
}

// ---------------------------------------------------------------------------
// 1b. the report's numbers for a month and for the year

/// The quadrant of each word the plans use (`attune feelings`, by hand).
fn quadrant_of(w: &str) -> &'static str {
    match w {
        "happy" | "hopeful" | "grateful" => "pleasant_high",
        "calm" | "content" | "close" => "pleasant_low",
        "anxious" | "stressed" | "worried" => "unpleasant_high",
        "sad" | "tired" => "unpleasant_low",
        other => panic!("{other} is not in the hand table"),
    }
}

fn mean_of(v: &[f64]) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v.iter().sum::<f64>() / v.len() as f64)
    }
}

/// One side of the report as the reader (whose plan is `reader`) sees it, for
/// the days in `range`: `own` is this side's plan, `other` the other side's.
/// The reader's own side counts every check-in; the other side's moods and
/// feelings count only where both checked in (the rest stays sealed), while its
/// check-in days count every day (a sealed check-in still shows it was there).
fn expected_side(
    own: fn(usize) -> Option<Plan>,
    other: fn(usize) -> Option<Plan>,
    readable_alone: bool,
    range: std::ops::Range<usize>,
    longest_run: usize,
    streak_at_end: usize,
) -> Value {
    let mut checkin_days = 0;
    let mut moods = vec![];
    let mut quadrants = std::collections::BTreeMap::from([
        ("pleasant_high", 0),
        ("pleasant_low", 0),
        ("unpleasant_high", 0),
        ("unpleasant_low", 0),
    ]);
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    let mut errors = vec![];
    let (mut hit, mut guessed) = (0, 0);
    for i in range {
        let Some(p) = own(i) else { continue };
        checkin_days += 1;
        let both = other(i);
        if readable_alone || both.is_some() {
            moods.push(f64::from(p.mood));
            for w in words(p.feel) {
                *quadrants.get_mut(quadrant_of(w)).unwrap() += 1;
                *counts.entry(w).or_default() += 1;
            }
        }
        if let Some(o) = both {
            let (e, h, g) = guess_vs(&p, &o);
            errors.extend(e.map(f64::from));
            hit += h;
            guessed += g;
        }
    }
    let mut top: Vec<(&str, usize)> = counts.into_iter().collect();
    top.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    top.truncate(5);
    let half = errors.len() / 2;
    let halves = errors.len() >= 2;
    json!({
        "checkin_days": checkin_days,
        "average_mood": mean_of(&moods),
        "quadrants": quadrants,
        "top_words": top,
        "reading": {
            "days_guessed": errors.len(),
            "within_one": errors.iter().filter(|e| **e <= 1.0).count(),
            "mean_error": mean_of(&errors),
            "first_half_error": if halves { mean_of(&errors[..half]) } else { Value::Null },
            "second_half_error": if halves { mean_of(&errors[half..]) } else { Value::Null },
            "feelings_hit": hit,
            "feelings_guessed": guessed,
        },
        "needs": { "listen": 0, "support": 0, "suggestions": 0, "space": 0, "distraction": 0, "answerable": 0, "answered": 0 },
        "listening": { "reflections": 0, "threads": 0, "first_try": 0, "after_corrections": 0, "open": 0 },
        "streak_at_end": streak_at_end,
        "longest_run": longest_run,
        "exercises_answered": 0,
    })
}

/// The report's per-day rows as Alex reads them, for day indices `range`.
fn expected_days(range: std::ops::Range<usize>) -> Vec<Value> {
    range
        .map(|i| {
            let (m, t) = (plan_a(i), plan_b(i));
            let both = m.zip(t);
            json!({
                "day": day(i),
                "me": m.map(|p| p.mood),
                "partner": both.map(|(_, t)| t.mood),
                "my_error": both.and_then(|(m, t)| guess_vs(&m, &t).0),
                "partner_error": both.and_then(|(m, t)| guess_vs(&t, &m).0),
            })
        })
        .collect()
}

/// Equal JSON, except that floats may differ in the last bits: serde_json reads
/// floats to within one ulp or so, and these are means of small integers.
fn assert_json_near(got: &Value, want: &Value, what: &str) {
    fn near(a: &Value, b: &Value) -> bool {
        match (a, b) {
            (Value::Number(x), Value::Number(y)) if x.is_f64() || y.is_f64() => {
                (x.as_f64().unwrap() - y.as_f64().unwrap()).abs() < 1e-12
            }
            (Value::Array(x), Value::Array(y)) => {
                x.len() == y.len() && x.iter().zip(y).all(|(a, b)| near(a, b))
            }
            (Value::Object(x), Value::Object(y)) => {
                x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| near(v, w)))
            }
            _ => a == b,
        }
    }
    assert!(near(got, want), "{what}:\n  got  {got}\n  want {want}");
}

#[test]
fn report_numbers_for_a_month_and_the_year_match_values_computed_by_hand() {
    let s = seeded();
    let a = at(&s.a, START_MS + LAST as i64 * DAY_MS);
    // March 2026 = days 0..=30. By hand, from the misses:
    //   Alex (10, 11, 20): runs 0..=9, 12..=19, 21..=30: longest 10; the streak at
    //   March 31 counts back 30..=21, forgives 20, 19..=12, stops at 11, 10: 18.
    //   Sam (5, 6, 30): runs 0..=4, 7..=29: longest 23; March 31 (30) missed, the
    //   last day is not yet counted as missed: 29..=7, stops at 6, 5: 23.
    let month = a
        .run(&["report", "--month", "2026-03", "--json"])
        .ok()
        .json();
    assert_eq!(month["has_data"], json!(true));
    assert_eq!(month["label"], json!("March 2026"));
    assert_eq!(
        month["days"],
        Value::Array(expected_days(0..31)),
        "March, per day"
    );
    assert_json_near(
        &month["me"],
        &expected_side(plan_a, plan_b, true, 0..31, 10, 18),
        "March, Alex",
    );
    assert_json_near(
        &month["partner"],
        &expected_side(plan_b, plan_a, false, 0..31, 23, 23),
        "March, Sam",
    );
    assert_eq!(month["months"], json!([]));
    println!("March: {}", month["me"]["reading"]);

    // April (days 31..=60): both streaks at April 30 began in March, and count
    // from where they began. Alex: 60..=58, forgives 57, 56..=46, forgives 45,
    // 44..=21, forgives 20, 19..=12, stops at 11, 10: 46. Sam: 60, forgives 59,
    // 58..=31, forgives 30, 29..=7, stops at 6, 5: 52.
    let april = a
        .run(&["report", "--month", "2026-04", "--json"])
        .ok()
        .json();
    assert_eq!(april["label"], json!("April 2026"));
    assert_eq!(
        (
            &april["me"]["streak_at_end"],
            &april["partner"]["streak_at_end"]
        ),
        (&json!(46), &json!(52)),
        "streaks at April 30"
    );

    // 2026: the whole history (days 0..=89), today 2026-05-29. Longest runs: Alex
    // 58..=89 (32; 21..=44 has 24), Sam 60..=88 (29; 31..=58 has 28). Streaks at today: the
    // stats test's 75 and 80.
    let year = a.run(&["report", "--year", "2026", "--json"]).ok().json();
    assert_eq!(year["label"], json!("2026"));
    let days = year["days"].as_array().unwrap();
    assert_eq!(days.len(), 365);
    // Jan 1 + 59 days = Mar 1.
    assert_eq!(
        days[59..149].to_vec(),
        expected_days(0..DAYS),
        "2026, the 90 days"
    );
    for d in days[..59].iter().chain(&days[149..]) {
        assert_eq!(
            (&d["me"], &d["partner"]),
            (&Value::Null, &Value::Null),
            "{d}"
        );
    }
    assert_json_near(
        &year["me"],
        &expected_side(plan_a, plan_b, true, 0..DAYS, 32, 75),
        "2026, Alex",
    );
    assert_json_near(
        &year["partner"],
        &expected_side(plan_b, plan_a, false, 0..DAYS, 29, 80),
        "2026, Sam",
    );
    let months = year["months"].as_array().unwrap();
    assert_eq!(months.len(), 12);
    for (k, range) in [(2, 0..31), (3, 31..61), (4, 61..DAYS)] {
        let rows = expected_days(range);
        let col = |f: &str| -> Vec<f64> {
            rows.iter()
                .filter_map(|r| r[f].as_u64())
                .map(|v| v as f64)
                .collect()
        };
        let want = json!({
            "month": format!("2026-{:02}", k + 1),
            "my_average": mean_of(&col("me")),
            "partner_average": mean_of(&col("partner")),
            "my_mean_error": mean_of(&col("my_error")),
            "partner_mean_error": mean_of(&col("partner_error")),
            "my_mood_days": col("me").len(),
            "partner_mood_days": col("partner").len(),
        });
        assert_json_near(&months[k], &want, &format!("2026, month {}", k + 1));
    }
    assert_eq!(months[0]["my_average"], Value::Null);
    assert_eq!(months[0]["my_mood_days"], json!(0));
    println!("2026 months: {}", Value::Array(months[2..5].to_vec()));
}

// ---------------------------------------------------------------------------
// 2. the HTML report, in real headless Chromium

/// One `<circle>` of a chart: its day, value and centre in the SVG's coordinates.
#[derive(Debug, Clone)]
struct Point {
    day: String,
    value: String,
    cx: f64,
    cy: f64,
}

/// The `<circle class="pt-CLASS">` of the one `<svg id=ID>` of the report.
fn chart_points(html: &str, id: &str, class: &str) -> Vec<Point> {
    let open = format!("<svg id=\"{id}\"");
    let start = html
        .find(&open)
        .unwrap_or_else(|| panic!("no {open} in the report"));
    assert_eq!(html.matches(&open).count(), 1, "one {open}");
    let end = start + html[start..].find("</svg>").expect("the svg closes");
    let svg = &html[start..end];
    let needle = format!("<circle class=\"pt-{class}\" ");
    let attr = |tag: &str, name: &str| -> String {
        let key = format!(" {name}=\"");
        let from = tag
            .find(&key)
            .unwrap_or_else(|| panic!("no {name} in {tag}"))
            + key.len();
        tag[from..from + tag[from..].find('"').unwrap()].to_string()
    };
    svg.match_indices(&needle)
        .map(|(i, _)| {
            let tag = &svg[i..i + svg[i..].find('>').unwrap()];
            Point {
                day: attr(tag, "data-day"),
                value: attr(tag, "data-value"),
                cx: attr(tag, "cx").parse().unwrap(),
                cy: attr(tag, "cy").parse().unwrap(),
            }
        })
        .collect()
}

/// Debian's `chromium` on the PATH.
fn find_chromium() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("chromium"))
        .find(|p| p.is_file())
}

/// Renders `html` to `png` in headless Chromium, as root-safe and offline as the
/// machine needs, within 90 s.
fn screenshot(chromium: &Path, html: &Path, png: &Path, work: &Path) {
    use std::os::unix::process::CommandExt;
    let profile = tempfile::tempdir_in(work).unwrap();
    let log = std::fs::File::create(png.with_extension("log")).unwrap();
    let mut child = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=900,3600",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", html.display()))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, so that a hung Chromium and its helpers can be
        // stopped together.
        .process_group(0)
        .spawn()
        .expect("chromium starts");
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    let status = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(s) => s.unwrap(),
        Err(_) => {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
            panic!("chromium did not finish within 90 s");
        }
    };
    let log_text = std::fs::read_to_string(png.with_extension("log")).unwrap_or_default();
    assert!(
        status.success() && png.exists(),
        "chromium failed ({status}); its output:\n{log_text}"
    );
}

#[test]
fn html_report_renders_in_headless_chromium_with_one_point_per_day() {
    let s = seeded();
    let work = tempfile::tempdir().unwrap();
    let html_path = work.path().join("report.html");
    let a = at(&s.a, START_MS + LAST as i64 * DAY_MS);
    let out = a
        .run(&[
            "report",
            "--month",
            "2026-03",
            "--out",
            html_path.to_str().unwrap(),
        ])
        .ok();
    assert!(out.stdout.contains("March 2026"), "{}", out.stdout);
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert!(
        html.to_ascii_lowercase().starts_with("<!doctype html>"),
        "{}",
        &html[..80]
    );
    for fetches in ["<script", "src=", "href=", "url(", "@import", "<link"] {
        assert!(
            !html.contains(fetches),
            "self-contained: no script, nothing fetched ({fetches})"
        );
    }

    assert_month_page(&html);
    // Alex's view of March, by hand: days 0..=30.
    let march = 0..31;
    let (mut me, mut partner, mut my_err, mut their_err) = (vec![], vec![], vec![], vec![]);
    for i in march {
        let (m, t) = (plan_a(i), plan_b(i));
        if let Some(m) = m {
            me.push((day(i), m.mood.to_string()));
        }
        if let (Some(m), Some(t)) = (m, t) {
            partner.push((day(i), t.mood.to_string()));
            if let (Some(e), _, _) = guess_vs(&m, &t) {
                my_err.push((day(i), e.to_string()));
            }
            if let (Some(e), _, _) = guess_vs(&t, &m) {
                their_err.push((day(i), e.to_string()));
            }
        }
    }
    // Alex missed 10, 11, 20; Sam 5, 6, 30 (Sam's 30 and the days Alex missed stay
    // sealed on Alex's device).
    assert_eq!(me.len(), 28);
    assert_eq!(partner.len(), 25);
    let charts = [
        ("moods", "me", &me),
        ("moods", "partner", &partner),
        ("accuracy", "me", &my_err),
        ("accuracy", "partner", &their_err),
    ];
    let mut drawn = vec![];
    for (id, class, want) in charts {
        let got = chart_points(&html, id, class);
        let pairs: Vec<(String, String)> = got
            .iter()
            .map(|p| (p.day.clone(), p.value.clone()))
            .collect();
        assert_eq!(&pairs, want, "the points of svg#{id} .pt-{class}");
        println!(
            "svg#{id}: {} circles .pt-{class} (expected {})",
            got.len(),
            want.len()
        );
        drawn.push((id, class, got));
    }
    // One line per run of two or more consecutive days with data: gaps are not drawn over.
    for class in ["me", "partner"] {
        let mut runs = 0;
        for (_, c, points) in drawn.iter().filter(|(_, c, _)| *c == class) {
            let _ = c;
            let days: Vec<u32> = points
                .iter()
                .map(|p| p.day[8..10].parse::<u32>().unwrap())
                .collect();
            let mut len = 1;
            for w in days.windows(2) {
                if w[1] == w[0] + 1 {
                    len += 1;
                } else {
                    runs += usize::from(len >= 2);
                    len = 1;
                }
            }
            runs += usize::from(!days.is_empty() && len >= 2);
        }
        assert_eq!(
            html.matches(&format!("class=\"line-{class}\"")).count(),
            runs,
            "line segments of {class}"
        );
    }

    let Some(chromium) = find_chromium() else {
        let ci = std::env::var("CI").unwrap_or_default();
        if !ci.is_empty() && ci != "false" && ci != "0" {
            panic!("chromium is not installed, and CI is set: `bash .ci/run` installs Debian's chromium");
        }
        eprintln!("\n*** SKIPPED: chromium not installed (bash .ci/run installs it) ***\n");
        return;
    };
    let blank_path = work.path().join("blank.html");
    std::fs::write(
        &blank_path,
        "<!doctype html><html><head><meta charset=\"utf-8\"></head><body style=\"background:#fff\"></body></html>\n",
    )
    .unwrap();
    let started = Instant::now();
    let report_png = work.path().join("report.png");
    let blank_png = work.path().join("blank.png");
    screenshot(&chromium, &html_path, &report_png, work.path());
    screenshot(&chromium, &blank_path, &blank_png, work.path());
    println!(
        "chromium rendered both pages in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let report = std::fs::read(&report_png).unwrap();
    let blank = std::fs::read(&blank_png).unwrap();
    let report_img = decode_png(&report);
    let blank_img = decode_png(&blank);
    assert_eq!((report_img.width, report_img.height), (900, 3600));
    assert_eq!((blank_img.width, blank_img.height), (900, 3600));
    println!(
        "PNG sizes: report {} bytes, blank page {} bytes",
        report.len(),
        blank.len()
    );
    assert!(
        report.len() >= 3 * blank.len(),
        "the report's PNG ({} bytes) is not much larger than a blank page's ({} bytes)",
        report.len(),
        blank.len()
    );
    // The charts' colours: #1f7a8c for Alex, #a23b72 for Sam.
    let teal = [0x1f, 0x7a, 0x8c];
    let magenta = [0xa2, 0x3b, 0x72];
    let (r_teal, r_magenta, r_other) = (
        report_img.count_near(teal),
        report_img.count_near(magenta),
        report_img.count_not_white(),
    );
    let blank_other = blank_img.count_not_white();
    println!(
        "pixels: report {r_teal} teal, {r_magenta} magenta, {r_other} not white; blank page {blank_other} not white"
    );
    assert_eq!(blank_other, 0, "the blank baseline is blank");
    // Two charts, each with a 2-px line across the month and 3.5-px-radius points:
    // hundreds of pixels of each colour.
    assert!(
        r_teal >= 300 && r_magenta >= 300,
        "the charts drew: {r_teal} teal, {r_magenta} magenta pixels"
    );
    // Each point is where the SVG says: find the two charts' backgrounds (#fffdf8,
    // 720x260) in the screenshot, and look around each circle's centre there.
    let boxes = report_img.boxes_of([0xff, 0xfd, 0xf8]);
    assert_eq!(boxes.len(), 2, "two chart backgrounds: {boxes:?}");
    for (x0, y0, x1, y1) in &boxes {
        assert!(
            (x1 - x0 + 1).abs_diff(720) <= 2 && (y1 - y0 + 1).abs_diff(260) <= 2,
            "a chart of 720x260: {boxes:?}"
        );
    }
    for (id, class, points) in &drawn {
        let (x0, y0, _, _) = boxes[usize::from(*id == "accuracy")];
        for p in points {
            // Sam's points are drawn after Alex's: where both have the same value
            // on a day, Sam's covers Alex's.
            let covered = drawn.iter().any(|(other_id, other_class, others)| {
                other_id == id
                    && *other_class == "partner"
                    && others.iter().any(|o| o.day == p.day && o.value == p.value)
            });
            let colour = if *class == "me" && !covered {
                teal
            } else {
                magenta
            };
            let (x, y) = (x0 + p.cx as usize, y0 + p.cy as usize);
            let around = report_img.count_near_in(colour, x, y, 3);
            assert!(
                around >= 6,
                "svg#{id} .pt-{class} {} = {}: only {around} pixels of its colour around ({x}, {y})",
                p.day,
                p.value
            );
        }
    }
    println!("every point is drawn in its colour where the SVG puts it");

    // The year: month axis, the year in pixels, both colours on the page.
    let year_path = work.path().join("year.html");
    a.run(&[
        "report",
        "--year",
        "2026",
        "--out",
        year_path.to_str().unwrap(),
    ])
    .ok();
    let year = std::fs::read_to_string(&year_path).unwrap();
    assert_year_page(&year);
    let year_png = work.path().join("year.png");
    screenshot(&chromium, &year_path, &year_png, work.path());
    let year_img = decode_png(&std::fs::read(&year_png).unwrap());
    let (y_teal, y_magenta) = (year_img.count_near(teal), year_img.count_near(magenta));
    // Mood 1 and mood 10 of the scale, in the pixels and its legend.
    let (darkest, greenest) = (
        year_img.count_near([0xa5, 0x00, 0x26]),
        year_img.count_near([0x00, 0x68, 0x37]),
    );
    println!(
        "year pixels: {y_teal} teal, {y_magenta} magenta, mood 1 {darkest}, mood 10 {greenest}"
    );
    assert!(y_teal >= 300 && y_magenta >= 300, "the year's charts drew");
    assert!(
        darkest >= 100 && greenest >= 100,
        "the year in pixels drew its colours"
    );
    if let Ok(dir) = std::env::var("ATTUNE_KEEP_SCREENSHOT") {
        std::fs::copy(&report_png, Path::new(&dir).join("report-month.png")).unwrap();
        std::fs::copy(&year_png, Path::new(&dir).join("report-year.png")).unwrap();
    }
}

/// What the month page must show besides its points: a legend with both names,
/// dated x axes, a whole calendar.
fn assert_month_page(html: &str) {
    let legend = &html[html.find("id=\"legend\"").expect("a legend")..];
    let legend = &legend[..legend.find("</p>").unwrap()];
    assert!(
        legend.contains("Alex") && legend.contains("Sam"),
        "{legend}"
    );
    for chart in ["moods", "accuracy"] {
        let svg = &html[html.find(&format!("<svg id=\"{chart}\"")).unwrap()..];
        let svg = &svg[..svg.find("</svg>").unwrap()];
        for tick in ["Mar 1<", "Mar 8<", "Mar 15<", "Mar 22<", "Mar 29<"] {
            assert!(svg.contains(tick), "svg#{chart} has the date {tick}");
        }
        assert!(svg.contains("class=\"legend\""), "svg#{chart} has a legend");
    }
    let calendar = &html[html.find("<svg id=\"calendar\"").expect("a calendar")..];
    let calendar = &calendar[..calendar.find("</svg>").unwrap()];
    assert_eq!(calendar.matches("<g class=\"day\"").count(), 31);
}

fn assert_year_page(html: &str) {
    let svg = &html[html.find("<svg id=\"moods\"").expect("the moods chart")..];
    let svg = &svg[..svg.find("</svg>").unwrap()];
    for m in ["Jan", "Apr", "Jul", "Dec"] {
        assert!(svg.contains(&format!(">{m}<")), "the year's axis has {m}");
    }
    let pixels = &html[html.find("<svg id=\"pixels\"").expect("the year in pixels")..];
    let pixels = &pixels[..pixels.find("</svg>").unwrap()];
    assert_eq!(pixels.matches("<g class=\"day\"").count(), 365);
    assert!(html.contains("<table id=\"months\""));
    assert!(html.contains("The year 2026"));
}

// ---------------------------------------------------------------------------
// 3. send later and withdraw

fn held(who: &Attune) -> Vec<Value> {
    let v = who.run(&["status", "--json"]).ok().json();
    v["held"].as_array().unwrap().clone()
}

fn journal_texts(entries: &[Value], author: &str) -> Vec<(String, i64)> {
    entries
        .iter()
        .filter(|e| e["kind"] == "journal" && e["author"] == author)
        .map(|e| {
            (
                e["text"].as_str().unwrap_or_default().to_string(),
                e["at"].as_i64().unwrap(),
            )
        })
        .collect()
}

fn file_contains(path: &Path, needle: &[u8]) -> bool {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn send_later_holds_sealed_withdraw_never_sends_and_due_entries_go_once() {
    let c = couple();
    // 2026-05-12T09:00Z
    let t0: i64 = 1_778_576_400_000;
    assert_eq!(day_string(t0), "2026-05-12");
    let a = at(&c.a, t0);
    let b = at(&c.b, t0);
    let x1 = format!("WITHDRAWNx{}", hex::encode(attune_tests::random16()));
    let x2 = format!("LATERx{}", hex::encode(attune_tests::random16()));

    let out1 = a.run(&["journal", "-m", &x1, "--send-after", "2h"]).ok();
    let h1 = held(&a);
    assert_eq!(h1.len(), 1, "{h1:#?}");
    let id1 = h1[0]["id"].as_str().unwrap().to_string();
    assert!(out1.stdout.contains(&id1), "{}", out1.stdout);
    assert!(
        out1.stdout
            .contains("held on this device until 2026-05-12 11:00"),
        "{}",
        out1.stdout
    );
    a.run(&["journal", "-m", &x2, "--send-after", "2h"]).ok();
    let h2 = held(&a);
    assert_eq!(h2.len(), 2, "{h2:#?}");
    let id2 = h2
        .iter()
        .map(|h| h["id"].as_str().unwrap().to_string())
        .find(|id| *id != id1)
        .unwrap();
    for h in &h2 {
        assert_eq!(h["send_at"], json!(t0 + 2 * HOUR_MS), "{h}");
        assert_eq!(h["private"], json!(false), "{h}");
    }
    // Held sealed under the member key: the text is nowhere in the device's files.
    for f in ["state.sqlite3", "state.sqlite3-wal", "state.sqlite3-shm"] {
        let path = c.a.home.join(f);
        for x in [&x1, &x2] {
            assert!(
                !file_contains(&path, x.as_bytes()),
                "{x} in plain text in {}",
                path.display()
            );
        }
    }
    assert!(c.a.home.join("state.sqlite3").exists());

    // Not due yet: a sync sends nothing of it; the partner sees nothing.
    sync(&a);
    sync(&b);
    assert_eq!(journal_texts(&feed(&b), "partner"), vec![]);
    assert_eq!(held(&a).len(), 2);
    // An hour later: still held.
    sync(&at(&c.a, t0 + HOUR_MS));
    sync(&at(&c.b, t0 + HOUR_MS));
    assert_eq!(journal_texts(&feed(&b), "partner"), vec![]);

    // Withdraw the first by its short id: it is never sent.
    let w = a.run(&["withdraw", &id1[..8]]).ok();
    assert!(w.stdout.contains("withdrawn"), "{}", w.stdout);
    let again = a.run(&["withdraw", &id1[..8]]);
    assert_ne!(again.code, 0, "a withdrawn entry cannot be withdrawn twice");
    let h3 = held(&a);
    assert_eq!(h3.len(), 1, "{h3:#?}");
    assert_eq!(h3[0]["id"], json!(id2));

    // Three hours later the second is due: the next sync releases it, dated at its
    // scheduled time, and the partner receives it exactly once.
    let later_a = at(&c.a, t0 + 3 * HOUR_MS);
    let later_b = at(&c.b, t0 + 3 * HOUR_MS);
    sync(&later_a);
    assert_eq!(held(&later_a), Vec::<Value>::new());
    for _ in 0..2 {
        sync(&later_b);
        sync(&later_a);
    }
    let got = journal_texts(&feed(&later_b), "partner");
    assert_eq!(got, vec![(x2.clone(), t0 + 2 * HOUR_MS)], "Sam's feed");
    let mine = journal_texts(&feed(&later_a), "me");
    assert_eq!(mine, vec![(x2.clone(), t0 + 2 * HOUR_MS)], "Alex's feed");
    // The withdrawn text reached nobody: neither feed, nor the relay's files.
    for f in ["relay.sqlite3", "relay.sqlite3-wal", "relay.log"] {
        let path = c.relay.db.with_file_name(f);
        for x in [&x1, &x2] {
            assert!(!file_contains(&path, x.as_bytes()), "{x} in {f}");
        }
    }
    let relay_dir = c.dir.path().join("relay");
    assert!(relay_dir.join("relay.sqlite3").exists());
}

// ---------------------------------------------------------------------------
// 4. today

fn due(who: &Attune) -> Vec<(String, String)> {
    let v = who.run(&["today", "--json"]).ok().json();
    v["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            (
                d["reason"].as_str().unwrap().to_string(),
                d["command"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn today_lists_the_checkin_a_partner_waits_for_and_the_challenge_day() {
    let c = couple();
    // 2026-06-10T10:00Z, a Wednesday past the 3rd: no weekly or monthly ritual.
    let t: i64 = 1_781_085_600_000;
    assert_eq!(day_string(t), "2026-06-10");
    let a = at(&c.a, t);
    let b = at(&c.b, t);
    let v = a.run(&["today", "--json"]).ok().json();
    assert_eq!(v["today"], json!("2026-06-10"));
    assert_eq!(
        due(&a),
        vec![(
            "your daily check-in".to_string(),
            "attune checkin".to_string()
        )]
    );

    b.run(&["checkin", "--mood", "6", "--guess-mood", "5"]).ok();
    // Sam waits for Alex, and says so; nothing is due for Sam.
    let v = b.run(&["today", "--json"]).ok().json();
    assert_eq!(v["due"], json!([]), "{v:#}");
    assert!(
        v["waiting"][0]
            .as_str()
            .unwrap()
            .starts_with("waiting for Alex's check-in"),
        "{v:#}"
    );
    assert!(b
        .run(&["today"])
        .ok()
        .stdout
        .contains("waiting for Alex's check-in"));
    sync(&a);
    let d = due(&a);
    assert_eq!(d.len(), 1, "Sam's sealed check-in waits for Alex's: {d:#?}");
    assert!(
        d[0].0.starts_with("Sam checked in at ")
            && d[0].0.ends_with("; yours opens both")
            && d[0].1 == "attune checkin",
        "{d:#?}"
    );

    a.run(&["challenge", "start"]).ok();
    let d = due(&a);
    assert!(
        d.iter().any(
            |(r, c)| r == "30-day empathy challenge, day 1 of 30" && c == "attune ask question"
        ),
        "{d:#?}"
    );
    assert!(d.iter().any(|(_, c)| c == "attune checkin"), "{d:#?}");

    // Alex checks in: both sealed, nothing about the check-in is due any more.
    a.run(&["checkin", "--mood", "7"]).ok();
    let d = due(&a);
    assert!(!d.iter().any(|(_, c)| c == "attune checkin"), "{d:#?}");

    // The next day is day 2, with the next exercise.
    let d = due(&at(&c.a, t + DAY_MS));
    assert!(
        d.iter().any(
            |(r, c)| r == "30-day empathy challenge, day 2 of 30" && c == "attune ask high-low"
        ),
        "{d:#?}"
    );
}

// ---------------------------------------------------------------------------
// the forgiving streak, where the missed day is yesterday

/// One missed day does not break a streak and today not done yet does not either;
/// so with check-ins on days 0, 1, 2, nothing on day 3, and day 4 not done yet,
/// the streak is 3. (Checking in on day 4 makes it 4; two missed days end it.)
#[test]
fn streak_forgives_a_missed_yesterday_while_today_is_not_done() {
    let c = couple();
    // 2026-07-01T12:00Z
    let t: i64 = 1_782_907_200_000;
    assert_eq!(day_string(t), "2026-07-01");
    for i in 0..3 {
        at(&c.a, t + i * DAY_MS)
            .run(&["checkin", "--open", "--mood", "6"])
            .ok();
    }
    let streak = |d: i64| {
        at(&c.a, t + d * DAY_MS)
            .run(&["stats", "--days", "7", "--json"])
            .ok()
            .json()["my_streak"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(streak(2), 3, "today done");
    assert_eq!(streak(3), 3, "today not done yet");
    assert_eq!(streak(5), 0, "days 3 and 4 missed: two in a row end it");
    // Day 3 missed (one day, forgiven), day 4 not done yet (does not break).
    let not_done = streak(4);
    at(&c.a, t + 4 * DAY_MS)
        .run(&["checkin", "--open", "--mood", "6"])
        .ok();
    let done = streak(4);
    assert_eq!(done, 4, "day 3 forgiven once day 4 is done");
    assert_eq!(
        not_done, 3,
        "one missed day (yesterday) and today not done yet: the streak is {not_done}, and checking in today makes it {done}"
    );
}

/// A streak is counted once and then continued (the count is stored), but a
/// check-in that arrives later dated inside it is not missed: written on days 0
/// and 1, and 4, the streak on day 4 is 1; a check-in dated day 2 written after
/// that makes it 4.
#[test]
fn a_stored_streak_is_recounted_when_an_earlier_check_in_arrives() {
    let c = couple();
    let t: i64 = 1_782_907_200_000;
    let checkin = |d: i64| {
        at(&c.a, t + d * DAY_MS)
            .run(&["checkin", "--open", "--mood", "6", "--again"])
            .ok();
    };
    let streak = || {
        at(&c.a, t + 4 * DAY_MS)
            .run(&["stats", "--days", "7", "--json"])
            .ok()
            .json()["my_streak"]
            .as_u64()
            .unwrap()
    };
    for d in [0, 1, 4] {
        checkin(d);
    }
    assert_eq!(streak(), 1, "days 2 and 3 missed");
    assert_eq!(streak(), 1, "the same from the stored count");
    checkin(2);
    assert_eq!(streak(), 4, "day 2 arrived: 0, 1, 2, (3 forgiven), 4");
    assert_eq!(streak(), 4);
}

// ---------------------------------------------------------------------------
// a minimal PNG decoder (zlib inflate and the PNG filters), so that the test can
// look at the pixels without an image crate

struct Image {
    width: usize,
    height: usize,
    /// RGB(A) samples, `channels` per pixel, row by row.
    data: Vec<u8>,
    channels: usize,
}

impl Image {
    fn pixels(&self) -> impl Iterator<Item = &[u8]> {
        self.data.chunks_exact(self.channels)
    }

    fn count_near(&self, rgb: [u8; 3]) -> usize {
        self.pixels()
            .filter(|p| (0..3).all(|k| p[k].abs_diff(rgb[k]) <= 8))
            .count()
    }

    fn pixel(&self, x: usize, y: usize) -> &[u8] {
        let i = (y * self.width + x) * self.channels;
        &self.data[i..i + self.channels]
    }

    /// Pixels near `rgb` in the square of half-side `r` around (x, y).
    fn count_near_in(&self, rgb: [u8; 3], x: usize, y: usize, r: usize) -> usize {
        let near = |p: &[u8]| (0..3).all(|k| p[k].abs_diff(rgb[k]) <= 8);
        let (xs, ys) = (x.saturating_sub(r)..=x + r, y.saturating_sub(r)..=y + r);
        ys.flat_map(|j| xs.clone().map(move |i| (i, j)))
            .filter(|&(i, j)| i < self.width && j < self.height && near(self.pixel(i, j)))
            .count()
    }

    /// The bounding boxes (x0, y0, x1, y1) of the bands of rows that have at least
    /// 30 pixels of exactly `rgb` (a band may skip a few rows: a grid line).
    fn boxes_of(&self, rgb: [u8; 3]) -> Vec<(usize, usize, usize, usize)> {
        let mut out: Vec<(usize, usize, usize, usize)> = vec![];
        for y in 0..self.height {
            let xs: Vec<usize> = (0..self.width)
                .filter(|&x| self.pixel(x, y)[..3] == rgb)
                .collect();
            if xs.len() < 30 {
                continue;
            }
            let (lo, hi) = (xs[0], xs[xs.len() - 1]);
            match out.last_mut() {
                Some(b) if y - b.3 <= 4 => {
                    b.0 = b.0.min(lo);
                    b.2 = b.2.max(hi);
                    b.3 = y;
                }
                _ => out.push((lo, y, hi, y)),
            }
        }
        out
    }

    fn count_not_white(&self) -> usize {
        self.pixels().filter(|p| p[..3] != [255, 255, 255]).count()
    }
}

fn decode_png(bytes: &[u8]) -> Image {
    const SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n'];
    assert!(bytes.starts_with(&SIGNATURE), "not a PNG");
    let mut pos = 8;
    let (mut width, mut height, mut channels) = (0, 0, 0);
    let mut idat = vec![];
    loop {
        let len = u32::from_be_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        let kind = &bytes[pos + 4..pos + 8];
        let data = &bytes[pos + 8..pos + 8 + len];
        match kind {
            b"IHDR" => {
                width = u32::from_be_bytes(data[0..4].try_into().unwrap()) as usize;
                height = u32::from_be_bytes(data[4..8].try_into().unwrap()) as usize;
                let (depth, color, interlace) = (data[8], data[9], data[12]);
                assert_eq!(depth, 8, "8-bit samples");
                assert_eq!(interlace, 0, "not interlaced");
                channels = match color {
                    2 => 3,
                    6 => 4,
                    other => panic!("PNG colour type {other} is not handled here"),
                };
            }
            b"IDAT" => idat.extend_from_slice(data),
            b"IEND" => break,
            _ => {}
        }
        pos += 12 + len;
    }
    assert!(width > 0 && height > 0 && !idat.is_empty());
    // zlib: a 2-byte header (no preset dictionary), deflate, a 4-byte checksum.
    assert_eq!(idat[0] & 0x0f, 8, "deflate");
    assert_eq!(idat[1] & 0x20, 0, "no preset dictionary");
    let raw = inflate(&idat[2..]);
    let stride = width * channels;
    assert_eq!(raw.len(), height * (stride + 1), "the image data's length");
    let mut data = Vec::with_capacity(height * stride);
    let mut prev = vec![0u8; stride];
    for y in 0..height {
        let row = &raw[y * (stride + 1)..(y + 1) * (stride + 1)];
        let filter = row[0];
        let mut cur = row[1..].to_vec();
        for x in 0..stride {
            let a = if x >= channels { cur[x - channels] } else { 0 };
            let b = prev[x];
            let c = if x >= channels { prev[x - channels] } else { 0 };
            let predicted = match filter {
                0 => 0,
                1 => a,
                2 => b,
                3 => ((u16::from(a) + u16::from(b)) / 2) as u8,
                4 => {
                    let p = i16::from(a) + i16::from(b) - i16::from(c);
                    let pa = (p - i16::from(a)).abs();
                    let pb = (p - i16::from(b)).abs();
                    let pc = (p - i16::from(c)).abs();
                    if pa <= pb && pa <= pc {
                        a
                    } else if pb <= pc {
                        b
                    } else {
                        c
                    }
                }
                other => panic!("PNG filter {other}"),
            };
            cur[x] = cur[x].wrapping_add(predicted);
        }
        data.extend_from_slice(&cur);
        prev = cur;
    }
    Image {
        width,
        height,
        data,
        channels,
    }
}

struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    buf: u32,
    count: u32,
}

impl Bits<'_> {
    fn bits(&mut self, n: u32) -> u32 {
        while self.count < n {
            let byte = *self.data.get(self.pos).expect("truncated deflate stream");
            self.pos += 1;
            self.buf |= u32::from(byte) << self.count;
            self.count += 8;
        }
        let v = self.buf & ((1u32 << n) - 1);
        self.buf >>= n;
        self.count -= n;
        v
    }
}

/// A canonical Huffman code: how many codes of each length, and the symbols in
/// code order.
struct Huffman {
    counts: [u16; 16],
    symbols: Vec<u16>,
}

fn huffman(lengths: &[u8]) -> Huffman {
    let mut counts = [0u16; 16];
    for &l in lengths {
        counts[usize::from(l)] += 1;
    }
    counts[0] = 0;
    let mut offsets = [0u16; 16];
    for len in 1..16 {
        offsets[len] = offsets[len - 1] + counts[len - 1];
    }
    let mut symbols = vec![0u16; lengths.len()];
    for (sym, &l) in lengths.iter().enumerate() {
        if l != 0 {
            symbols[usize::from(offsets[usize::from(l)])] = sym as u16;
            offsets[usize::from(l)] += 1;
        }
    }
    Huffman { counts, symbols }
}

fn decode_symbol(r: &mut Bits<'_>, h: &Huffman) -> usize {
    let (mut code, mut first, mut index) = (0i32, 0i32, 0i32);
    for len in 1..16 {
        code |= r.bits(1) as i32;
        let count = i32::from(h.counts[len]);
        if code - first < count {
            return usize::from(h.symbols[(index + code - first) as usize]);
        }
        index += count;
        first = (first + count) << 1;
        code <<= 1;
    }
    panic!("invalid Huffman code in the deflate stream");
}

fn inflate(data: &[u8]) -> Vec<u8> {
    const LBASE: [u16; 29] = [
        3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115,
        131, 163, 195, 227, 258,
    ];
    const LEXT: [u32; 29] = [
        0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
    ];
    const DBASE: [u16; 30] = [
        1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
        2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
    ];
    const DEXT: [u32; 30] = [
        0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12,
        13, 13,
    ];
    const ORDER: [usize; 19] = [
        16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
    ];
    let mut r = Bits {
        data,
        pos: 0,
        buf: 0,
        count: 0,
    };
    let mut out: Vec<u8> = vec![];
    loop {
        let last = r.bits(1) == 1;
        let (lit, dist) = match r.bits(2) {
            0 => {
                // Stored: skip to the byte boundary (the reader holds < 8 bits).
                r.buf = 0;
                r.count = 0;
                let p = r.pos;
                let len = usize::from(u16::from_le_bytes([data[p], data[p + 1]]));
                out.extend_from_slice(&data[p + 4..p + 4 + len]);
                r.pos = p + 4 + len;
                if last {
                    break;
                }
                continue;
            }
            1 => {
                let mut l = [8u8; 288];
                l[144..256].fill(9);
                l[256..280].fill(7);
                (huffman(&l), huffman(&[5u8; 30]))
            }
            2 => {
                let nlen = r.bits(5) as usize + 257;
                let ndist = r.bits(5) as usize + 1;
                let ncode = r.bits(4) as usize + 4;
                let mut cl = [0u8; 19];
                for &i in &ORDER[..ncode] {
                    cl[i] = r.bits(3) as u8;
                }
                let clh = huffman(&cl);
                let mut lengths: Vec<u8> = Vec::with_capacity(nlen + ndist);
                while lengths.len() < nlen + ndist {
                    let (value, times) = match decode_symbol(&mut r, &clh) {
                        sym @ 0..=15 => (sym as u8, 1),
                        16 => (
                            *lengths.last().expect("a repeat needs a length before it"),
                            3 + r.bits(2),
                        ),
                        17 => (0, 3 + r.bits(3)),
                        18 => (0, 11 + r.bits(7)),
                        other => panic!("code length symbol {other}"),
                    };
                    lengths.extend(std::iter::repeat_n(value, times as usize));
                }
                (huffman(&lengths[..nlen]), huffman(&lengths[nlen..]))
            }
            _ => panic!("reserved deflate block type"),
        };
        loop {
            let sym = decode_symbol(&mut r, &lit);
            match sym {
                0..=255 => out.push(sym as u8),
                256 => break,
                _ => {
                    let s = sym - 257;
                    let len = usize::from(LBASE[s]) + r.bits(LEXT[s]) as usize;
                    let ds = decode_symbol(&mut r, &dist);
                    let d = usize::from(DBASE[ds]) + r.bits(DEXT[ds]) as usize;
                    let start = out.len() - d;
                    for k in 0..len {
                        out.push(out[start + k]);
                    }
                }
            }
        }
        if last {
            break;
        }
    }
    out
}

// ---------------------------------------------------------------------------
// 4. the report: only its own month, the partner's text inert, a month with nothing

/// The id a command prints in parentheses, "… (ID) …" (whole or its first 8
/// hex digits).
fn printed_id(run: &Run) -> String {
    let out = run.stdout.trim();
    out.split('(')
        .skip(1)
        .filter_map(|rest| rest.split_once(')').map(|(id, _)| id))
        .find(|id| id.len() >= 8 && id.chars().all(|c| c.is_ascii_hexdigit()))
        .unwrap_or_else(|| panic!("no id in {out:?}"))
        .to_string()
}

#[test]
fn a_report_counts_only_its_month_shows_partner_text_as_text_and_says_when_empty() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = profile(&dir.path().join("a"));
    let b = profile(&dir.path().join("b"));
    // The partner's name, and every text of theirs the report shows, carry HTML.
    let evil = "<script>alert(1)</script><img src=x onerror=alert(2)>";
    let sam = "<i>Sam</i>&";
    a.init("Alex");
    b.init(sam);
    pair(&a, &b, &relay.url);
    // 2026-01-31T10:00Z
    let jan31: i64 = 1_769_853_600_000;
    assert_eq!(day_string(jan31), "2026-01-31");
    let feb2 = jan31 + 2 * DAY_MS;
    let feb3 = jan31 + 3 * DAY_MS;

    // January: Sam shares, Alex reflects, Sam confirms at once.
    let j = at(&b, jan31)
        .run(&["journal", "-m", "a rough week at work"])
        .ok();
    let shared = printed_id(&j);
    sync(&at(&a, jan31 + HOUR_MS));
    let r = at(&a, jan31 + HOUR_MS)
        .run(&["reflect", &shared, "-m", "work wore you down this week"])
        .ok();
    let first = printed_id(&r);
    sync(&at(&b, jan31 + 2 * HOUR_MS));
    at(&b, jan31 + 2 * HOUR_MS).run(&["confirm", &first]).ok();

    // February 2: both check in (Sam asks to be listened to), Sam shares again;
    // Alex reflects within the day, Sam corrects, Alex reflects again, confirmed.
    at(&a, feb2)
        .run(&["checkin", "--mood", "6", "--feel", "calm"])
        .ok();
    at(&b, feb2 + HOUR_MS)
        .run(&[
            "checkin", "--mood", "3", "--feel", "sad", "--need", "listen",
        ])
        .ok();
    let j2 = at(&b, feb2 + HOUR_MS)
        .run(&["journal", "-m", "my sister is ill"])
        .ok();
    let shared2 = printed_id(&j2);
    at(&b, feb2 + HOUR_MS).run(&["appreciate", evil]).ok();
    sync(&at(&a, feb2 + 2 * HOUR_MS));
    sync(&at(&b, feb2 + 2 * HOUR_MS));
    sync(&at(&a, feb2 + 2 * HOUR_MS));
    let r1 = at(&a, feb2 + 3 * HOUR_MS)
        .run(&[
            "reflect",
            &shared2,
            "-m",
            "you are worried about your sister",
        ])
        .ok();
    let r1 = printed_id(&r1);
    sync(&at(&b, feb2 + 4 * HOUR_MS));
    at(&b, feb2 + 4 * HOUR_MS)
        .run(&["correct", &r1, "-m", evil])
        .ok();
    sync(&at(&a, feb2 + 5 * HOUR_MS));
    let r2 = at(&a, feb2 + 5 * HOUR_MS)
        .run(&["reflect", &shared2, "-m", "you feel alone with it"])
        .ok();
    let r2 = printed_id(&r2);
    sync(&at(&b, feb2 + 6 * HOUR_MS));
    at(&b, feb2 + 6 * HOUR_MS).run(&["confirm", &r2]).ok();

    // February 3: the state of the union, answered by both, sealed until both did.
    let ask = at(&a, feb3).run(&["ask", "state-of-the-union"]).ok();
    let union = printed_id(&ask);
    at(&a, feb3)
        .run(&[
            "answer",
            &union,
            "-m",
            "Appreciated: the soup\nWeighed on me: the late nights\nOne thing to change: walk on Sundays",
        ])
        .ok();
    sync(&at(&b, feb3 + HOUR_MS));
    let half = at(&b, feb3 + HOUR_MS).run(&["answer", &union, "-m", "Appreciated: only this"]);
    assert_ne!(half.code, 0, "an answer without its three parts is refused");
    assert!(
        half.stderr.contains("One thing to change:") || half.stderr.contains("Weighed on me:"),
        "{}",
        half.stderr
    );
    at(&b, feb3 + HOUR_MS)
        .run(&[
            "answer",
            &union,
            "-m",
            &format!("Appreciated: {evil}\nWeighed on me: {evil}\nOne thing to change: \" onload=\"x {evil}"),
        ])
        .ok();
    sync(&at(&a, feb3 + 2 * HOUR_MS));
    sync(&at(&b, feb3 + 2 * HOUR_MS));

    let later = at(&a, feb3 + 2 * DAY_MS);
    // January holds only January's conversation.
    let jan = later
        .run(&["report", "--month", "2026-01", "--json"])
        .ok()
        .json();
    assert_eq!(
        jan["me"]["listening"],
        json!({ "reflections": 1, "threads": 1, "first_try": 1, "after_corrections": 0, "open": 0 })
    );
    // February: two reflections in one conversation, confirmed after a
    // correction; January's is not counted again.
    let page = dir.path().join("feb.html");
    let feb = later
        .run(&[
            "report",
            "--month",
            "2026-02",
            "--json",
            "--out",
            page.to_str().unwrap(),
        ])
        .ok()
        .json();
    assert_eq!(
        feb["me"]["listening"],
        json!({ "reflections": 2, "threads": 1, "first_try": 0, "after_corrections": 1, "open": 0 })
    );
    assert_eq!(feb["partner"]["listening"]["reflections"], json!(0));
    // Sam asked to be listened to, and Alex reflected within a day.
    assert_eq!(
        feb["partner"]["needs"],
        json!({ "listen": 1, "support": 0, "suggestions": 0, "space": 0, "distraction": 0, "answerable": 1, "answered": 1 })
    );
    assert_eq!(feb["me"]["needs"]["answerable"], json!(0));
    let unions = feb["unions"].as_array().unwrap();
    assert_eq!(unions.len(), 1, "{feb:#}");
    assert_eq!(unions[0]["mine"]["change"], json!("walk on Sundays"));
    assert_eq!(unions[0]["theirs"]["appreciated"], json!(evil));
    assert_eq!(feb["appreciations"][0]["text"], json!(evil));

    // Every text of Sam's on the page is text, not markup.
    let html = std::fs::read_to_string(&page).unwrap();
    for active in ["<script", "<img", "<i>", "\" onload"] {
        assert!(!html.contains(active), "{active} is on the page as markup");
    }
    let escaped = "&lt;script&gt;alert(1)&lt;/script&gt;&lt;img src=x onerror=alert(2)&gt;";
    // The appreciation and the three parts of Sam's answer.
    assert!(
        html.matches(escaped).count() >= 4,
        "escaped text: {}",
        html.matches(escaped).count()
    );
    assert!(
        html.contains("&lt;i&gt;Sam&lt;/i&gt;&amp;"),
        "the name is escaped"
    );
    assert!(html.contains("walk on Sundays"));

    // A month without anything: a plain sentence, no charts.
    let empty_page = dir.path().join("empty.html");
    let empty = later
        .run(&[
            "report",
            "--month",
            "2025-06",
            "--out",
            empty_page.to_str().unwrap(),
        ])
        .ok();
    assert!(
        empty.stdout.contains("nothing was written in June 2025"),
        "{}",
        empty.stdout
    );
    let empty_html = std::fs::read_to_string(&empty_page).unwrap();
    assert!(
        empty_html.contains("id=\"no-data\"")
            && empty_html.contains("Nothing was written in June 2025")
    );
    assert!(!empty_html.contains("<svg"), "no empty charts");
    let none = later
        .run(&["report", "--year", "2024", "--json"])
        .ok()
        .json();
    assert_eq!(none["has_data"], json!(false));
    // A month that is not one is refused plainly.
    let bad = later.run(&["report", "--month", "2026-13", "--json"]);
    assert_ne!(bad.code, 0);
    assert!(bad.stderr.contains("YYYY-MM"), "{}", bad.stderr);
}
