//! Trends, streaks, rituals and nudges — all computed on the device from the
//! verified, readable items; nothing here ever reaches the relay.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use crate::item::{Answer, Body, ExerciseKind, Need};
use crate::practice::{accuracy, day_of, Practice};
use crate::profile::View;

/// Per day: (my mood, partner's mood), from readable check-ins (the last one of a day counts).
pub fn daily_moods(view: &View) -> BTreeMap<String, (Option<u8>, Option<u8>)> {
    let mut out: BTreeMap<String, (Option<u8>, Option<u8>)> = BTreeMap::new();
    let mut put = |day: String, mine: bool, mood: u8| {
        let slot = out.entry(day).or_default();
        if mine {
            slot.0 = Some(mood);
        } else {
            slot.1 = Some(mood);
        }
    };
    for e in view.entries.iter().filter(|e| !e.deleted) {
        if let Body::CheckIn(c) = &e.item.body {
            put(day_of(e.item.at), e.mine, c.mood);
        }
    }
    for x in &view.practice.exchanges {
        let sides = [
            (true, x.mine.as_ref().and_then(|s| s.answer.as_ref())),
            (false, x.their_answer()),
        ];
        for (mine, answer) in sides {
            if let Some(Answer::CheckIn { day, checkin, .. }) = answer {
                put(day.clone(), mine, checkin.mood);
            }
        }
    }
    out
}

/// The days on which one partner checked in, including sealed check-ins this
/// device cannot read yet (their existence is known; their content is not).
pub fn checkin_days(view: &View, mine: bool) -> BTreeSet<String> {
    let mut days: BTreeSet<String> = view
        .entries
        .iter()
        .filter(|e| !e.deleted && e.mine == mine && matches!(e.item.body, Body::CheckIn(_)))
        .map(|e| day_of(e.item.at))
        .collect();
    for x in view
        .practice
        .exchanges
        .iter()
        .filter(|x| x.exercise.is_none())
    {
        let side = if mine { &x.mine } else { &x.theirs };
        if let Some(s) = side {
            match &s.answer {
                Some(Answer::CheckIn { day, .. }) => days.insert(day.clone()),
                _ => days.insert(day_of(s.at)),
            };
        }
    }
    days
}

/// One day's guesses, once both check-ins of the day are revealed.
#[derive(Debug, Clone, Serialize)]
pub struct DayAccuracy {
    pub day: String,
    /// How far my guess of the partner's mood was.
    pub my_mood_error: Option<u8>,
    pub their_mood_error: Option<u8>,
    pub my_feelings_hit: usize,
    pub my_feelings_guessed: usize,
    pub their_feelings_hit: usize,
    pub their_feelings_guessed: usize,
}

pub fn guess_accuracy(p: &Practice) -> Vec<DayAccuracy> {
    let mut out = vec![];
    for x in &p.exchanges {
        let (
            Some(Answer::CheckIn {
                day,
                checkin: mine,
                guess: my_guess,
            }),
            Some(Answer::CheckIn {
                checkin: theirs,
                guess: their_guess,
                ..
            }),
        ) = (
            x.mine.as_ref().and_then(|s| s.answer.as_ref()),
            x.their_answer(),
        )
        else {
            continue;
        };
        let mine_acc = my_guess.as_ref().map(|g| accuracy(g, theirs));
        let theirs_acc = their_guess.as_ref().map(|g| accuracy(g, mine));
        out.push(DayAccuracy {
            day: day.clone(),
            my_mood_error: mine_acc.and_then(|a| a.mood_error),
            their_mood_error: theirs_acc.and_then(|a| a.mood_error),
            my_feelings_hit: mine_acc.map_or(0, |a| a.feelings_hit),
            my_feelings_guessed: mine_acc.map_or(0, |a| a.feelings_guessed),
            their_feelings_hit: theirs_acc.map_or(0, |a| a.feelings_hit),
            their_feelings_guessed: theirs_acc.map_or(0, |a| a.feelings_guessed),
        });
    }
    out.sort_by(|a, b| a.day.cmp(&b.day));
    out
}

fn date(day: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// Consecutive days with a check-in up to `today`, forgiving: one missed day does
/// not break a streak, two in a row do. Today not done yet does not break it.
pub fn streak(days: &BTreeSet<String>, today: &str) -> usize {
    streak_onto(days, today, None).0
}

/// [`streak`], continued onto a streak counted before: `known` is its most
/// recent day and how many days it had. A walk back from today that reaches
/// that day (without two missed days first) adds its count instead of walking
/// on, so `days` need only go back to it. Returns the count and the streak's
/// most recent day (none for no streak).
pub fn streak_onto(
    days: &BTreeSet<String>,
    today: &str,
    known: Option<(&str, usize)>,
) -> (usize, Option<String>) {
    let Some(mut d) = date(today) else {
        return (0, None);
    };
    let mut count = 0;
    let mut latest: Option<String> = None;
    let mut missed_in_a_row = 0;
    if !days.contains(today) {
        d = d.pred_opt().unwrap_or(d);
    }
    loop {
        let key = d.format("%Y-%m-%d").to_string();
        if let Some((last, known_count)) = known.filter(|(last, _)| *last == key) {
            // The stored streak's most recent day: it holds a check-in.
            latest.get_or_insert_with(|| last.to_string());
            count += known_count;
            break;
        }
        if days.contains(&key) {
            count += 1;
            missed_in_a_row = 0;
            latest.get_or_insert(key);
        } else {
            missed_in_a_row += 1;
            if missed_in_a_row >= 2 {
                break;
            }
        }
        match d.pred_opt() {
            Some(p) => d = p,
            None => break,
        }
    }
    (count, latest)
}

/// Who reflected whom, and how often the first reflection was confirmed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Balance {
    pub reflections_by_me: usize,
    pub reflections_by_partner: usize,
    pub threads_confirmed_first_try_by_me: usize,
    pub threads_by_me: usize,
    pub needs_support_me: usize,
    pub needs_support_partner: usize,
}

pub fn balance(view: &View) -> Balance {
    let mut b = Balance::default();
    for t in &view.practice.threads {
        let Some(first) = t.rounds.first() else {
            continue;
        };
        if first.by_me {
            b.threads_by_me += 1;
            if matches!(
                first.response,
                Some(crate::practice::Response::Confirmed { .. })
            ) {
                b.threads_confirmed_first_try_by_me += 1;
            }
        }
        for r in &t.rounds {
            if r.by_me {
                b.reflections_by_me += 1;
            } else {
                b.reflections_by_partner += 1;
            }
        }
    }
    let mut count_need = |mine: bool, need: Option<Need>| {
        if matches!(need, Some(Need::Listen | Need::Support)) {
            if mine {
                b.needs_support_me += 1;
            } else {
                b.needs_support_partner += 1;
            }
        }
    };
    for e in &view.entries {
        if let Body::CheckIn(c) = &e.item.body {
            count_need(e.mine, c.need);
        }
    }
    for x in &view.practice.exchanges {
        if let Some(Answer::CheckIn { checkin, .. }) =
            x.mine.as_ref().and_then(|s| s.answer.as_ref())
        {
            count_need(true, checkin.need);
        }
        if let Some(Answer::CheckIn { checkin, .. }) = x.their_answer() {
            count_need(false, checkin.need);
        }
    }
    b
}

/// The numbers behind `attune stats`, for the last `days` days up to `today`.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    pub days: Vec<(String, Option<u8>, Option<u8>)>,
    pub my_average_mood: Option<f64>,
    pub partner_average_mood: Option<f64>,
    pub accuracy: Vec<DayAccuracy>,
    pub my_mean_mood_error: Option<f64>,
    pub partner_mean_mood_error: Option<f64>,
    pub my_streak: usize,
    pub partner_streak: usize,
    pub balance: Balance,
}

fn mean(values: impl Iterator<Item = f64>) -> Option<f64> {
    let v: Vec<f64> = values.collect();
    (!v.is_empty()).then(|| v.iter().sum::<f64>() / v.len() as f64)
}

pub fn stats(view: &View, today: &str, days: u32) -> Stats {
    let moods = daily_moods(view);
    let end = date(today).unwrap_or_default();
    let start = end - chrono::Days::new(u64::from(days.saturating_sub(1)));
    let in_range = |d: &str| date(d).is_some_and(|d| d >= start && d <= end);
    let list: Vec<(String, Option<u8>, Option<u8>)> = (0..days)
        .filter_map(|i| start.checked_add_days(chrono::Days::new(u64::from(i))))
        .map(|d| {
            let key = d.format("%Y-%m-%d").to_string();
            let (m, t) = moods.get(&key).copied().unwrap_or_default();
            (key, m, t)
        })
        .collect();
    let accuracy: Vec<DayAccuracy> = guess_accuracy(&view.practice)
        .into_iter()
        .filter(|a| in_range(&a.day))
        .collect();
    let (my_streak, partner_streak) = view.streaks.unwrap_or_else(|| {
        (
            streak(&checkin_days(view, true), today),
            streak(&checkin_days(view, false), today),
        )
    });
    Stats {
        my_average_mood: mean(list.iter().filter_map(|d| d.1).map(f64::from)),
        partner_average_mood: mean(list.iter().filter_map(|d| d.2).map(f64::from)),
        my_mean_mood_error: mean(
            accuracy
                .iter()
                .filter_map(|a| a.my_mood_error)
                .map(f64::from),
        ),
        partner_mean_mood_error: mean(
            accuracy
                .iter()
                .filter_map(|a| a.their_mood_error)
                .map(f64::from),
        ),
        my_streak,
        partner_streak,
        balance: balance(view),
        days: list,
        accuracy,
    }
}

/// A suggestion with its reason and the command to act on it.
#[derive(Debug, Clone, Serialize)]
pub struct Nudge {
    pub reason: String,
    pub command: String,
}

/// Patterns worth a gentle word: a falling mood, an unanswered reflection,
/// one-way support, a long silence.
pub fn nudges(view: &View, partner: &str, now_ms: i64) -> Vec<Nudge> {
    let mut out = vec![];
    let moods = daily_moods(view);
    let recent: Vec<u8> = moods.values().rev().filter_map(|v| v.1).take(4).collect();
    if recent.len() >= 3 && recent.windows(2).all(|w| w[0] < w[1]) {
        out.push(Nudge {
            reason: format!(
                "{partner}'s mood has fallen {} check-ins in a row",
                recent.len() - 1
            ),
            command: "attune ask question \"How are you, really, this week?\"".into(),
        });
    }
    let b = balance(view);
    let (mine, theirs) = (b.reflections_by_me, b.reflections_by_partner);
    if mine + theirs >= 6 && (mine >= 3 * theirs.max(1) || theirs >= 3 * mine.max(1)) {
        out.push(Nudge {
            reason: format!("reflections have mostly flowed one way lately ({mine} by you, {theirs} by {partner})"),
            command: if mine > theirs {
                "attune journal -m \"…\" (share something of yours)".into()
            } else {
                "attune reflect ID -m \"…\" (reflect one of theirs)".into()
            },
        });
    }
    if let Some(last) = view
        .entries
        .iter()
        .filter(|e| !e.mine)
        .map(|e| e.item.at)
        .max()
    {
        let days = (now_ms - last) / 86_400_000;
        if days >= 3 {
            out.push(Nudge {
                reason: format!("nothing new from {partner} for {days} days"),
                command: "attune appreciate \"…\"".into(),
            });
        }
    }
    out
}

/// The evening's list: what is due from this member, and what they wait for.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Evening {
    pub due: Vec<Nudge>,
    /// What this member waits for from the partner, in plain words.
    pub waiting: Vec<String>,
}

/// What is due today, and what this member is waiting for.
pub fn due_today(
    view: &View,
    partner: &str,
    today: &str,
    now_ms: i64,
    challenge_start: Option<&str>,
) -> Evening {
    let mut out = vec![];
    let mut waiting = vec![];
    let clock = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.with_timezone(&chrono::Local).format("%H:%M").to_string())
            .unwrap_or_default()
    };
    // The evening check-in: the partner's waiting for mine, or mine waiting
    // for theirs, or none yet today.
    let checkins = view.practice.exchanges.iter().filter(|x| x.is_checkin());
    let theirs_open = checkins
        .clone()
        .filter(|x| x.joinable(now_ms) && x.mine.is_none() && x.theirs.is_some())
        .max_by_key(|x| x.started_at);
    let mine_open = checkins
        .clone()
        .filter(|x| x.joinable(now_ms) && x.mine.is_some() && x.theirs.is_none())
        .max_by_key(|x| x.started_at);
    let checked_in_today = view.entries.iter().any(|e| {
        e.mine
            && !e.deleted
            && crate::practice::day_of(e.item.at) == today
            && matches!(
                e.item.body,
                crate::item::Body::CheckIn(_) | crate::item::Body::Sealed { .. }
            )
            && match &e.item.body {
                crate::item::Body::Sealed { exercise, .. } => view
                    .practice
                    .exchange(exercise)
                    .is_some_and(|x| x.is_checkin()),
                _ => true,
            }
    });
    if let Some(x) = theirs_open {
        out.push(Nudge {
            reason: format!(
                "{partner} checked in at {}; yours opens both",
                clock(x.started_at)
            ),
            command: "attune checkin".into(),
        });
    } else if let Some(x) = mine_open {
        waiting.push(format!(
            "waiting for {partner}'s check-in (yours from {} opens when {partner} checks in)",
            clock(x.started_at)
        ));
    } else if !checked_in_today {
        out.push(Nudge {
            reason: "your daily check-in".into(),
            command: "attune checkin".into(),
        });
    }
    // Exercises: those waiting for my answer, and those waiting for theirs.
    for x in &view.practice.exchanges {
        let Some((kind, _)) = &x.exercise else {
            continue;
        };
        let title = crate::exercises::title(*kind);
        match (&x.mine, &x.theirs) {
            (None, Some(_)) => out.push(Nudge {
                reason: format!("{partner} answered the {title}; your answer opens both"),
                command: format!("attune answer {}", &x.id[..8]),
            }),
            (None, None) => out.push(Nudge {
                reason: if x.started_by_me {
                    format!("the {title} you started waits for your answer")
                } else {
                    format!("{partner} started a {title}; it waits for your answer")
                },
                command: format!("attune answer {}", &x.id[..8]),
            }),
            (Some(_), None) => {
                waiting.push(format!("waiting for {partner}'s answer to the {title}"))
            }
            (Some(_), Some(_)) => {}
        }
    }
    // Reflections of mine the partner made, waiting for me to confirm or correct.
    for t in &view.practice.threads {
        if let Some(r) = t.rounds.last() {
            let id = &r.id.to_hex()[..8];
            if !r.by_me && r.response.is_none() {
                out.push(Nudge {
                    reason: format!("{partner} reflected what they heard, and is waiting to know if they got it right"),
                    command: format!("attune confirm {id} (or attune correct {id} -m …)"),
                });
            } else if r.by_me && r.response.is_none() {
                waiting.push(format!(
                    "waiting for {partner} to confirm or correct your reflection"
                ));
            } else if r.by_me
                && matches!(
                    r.response,
                    Some(crate::practice::Response::Corrected { .. })
                )
            {
                // The loop goes on until they say it was heard.
                out.push(Nudge {
                    reason: format!(
                        "{partner} said your reflection was not quite it, and added more: reflect again"
                    ),
                    command: format!("attune reflect {}", t.root.get(..8).unwrap_or(&t.root)),
                });
            }
        }
    }
    if let Some(d) = date(today) {
        if d.weekday() == chrono::Weekday::Sun {
            out.push(Nudge {
                reason:
                    "weekly empathy swap: each shares a struggle; the other only listens and asks"
                        .into(),
                command: "attune ask high-low".into(),
            });
        }
        let last_month = (d - chrono::Months::new(1)).format("%Y-%m").to_string();
        let had_a_month = view
            .entries
            .iter()
            .any(|e| crate::practice::day_of(e.item.at).starts_with(&last_month));
        if d.day() <= 3 && had_a_month {
            let this_month = d.format("%Y-%m").to_string();
            let asked = view.practice.exchanges.iter().any(|x| {
                matches!(x.exercise, Some((ExerciseKind::StateOfTheUnion, _)))
                    && crate::practice::day_of(x.started_at).starts_with(&this_month)
            });
            out.push(if asked {
                Nudge {
                    reason: "monthly state of the union: last month's report shows your answers side by side, with moods and how you read each other".into(),
                    command: format!("attune report --month {last_month} --out state-of-the-union.html"),
                }
            } else {
                Nudge {
                    reason: "monthly state of the union: what you appreciated, what weighed on you and one thing to change, sealed until you have both answered".into(),
                    command: "attune ask state-of-the-union".into(),
                }
            });
        }
    }
    if let Some(start) = challenge_start.and_then(date) {
        if let Some(today_d) = date(today) {
            let day = (today_d - start).num_days() + 1;
            if (1..=30).contains(&day) {
                let kinds = [
                    "question",
                    "high-low",
                    "emotion-naming",
                    "perspective-swap",
                    "empathy-map",
                ];
                let kind = kinds[(day as usize - 1) % kinds.len()];
                out.push(Nudge {
                    reason: format!("30-day empathy challenge, day {day} of 30"),
                    command: format!("attune ask {kind}"),
                });
            }
        }
    }
    Evening { due: out, waiting }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stored_streak_is_continued_not_walked_again() {
        let days: BTreeSet<String> = ["2026-01-03", "2026-01-04", "2026-01-06"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // Without a stored count the walk ends where the data ends.
        assert_eq!(
            streak_onto(&days, "2026-01-06", None),
            (3, Some("2026-01-06".to_string()))
        );
        // A stored streak of 40 days whose most recent day was the 3rd.
        let known = Some(("2026-01-03", 40));
        assert_eq!(
            streak_onto(&days, "2026-01-06", known),
            (42, Some("2026-01-06".to_string()))
        );
        // Today not done yet, one missed day, then the stored day: still on.
        let early: BTreeSet<String> = ["2026-01-03"].iter().map(|s| s.to_string()).collect();
        assert_eq!(streak_onto(&early, "2026-01-05", known).0, 40);
        // Two missed days before reaching it: the streak is over.
        assert_eq!(streak_onto(&early, "2026-01-07", known), (0, None));
        assert_eq!(streak(&days, "2026-01-06"), 3);
    }

    #[test]
    fn streaks_forgive_one_missed_day() {
        let days: BTreeSet<String> = ["2026-01-01", "2026-01-02", "2026-01-04", "2026-01-05"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(streak(&days, "2026-01-05"), 4);
        assert_eq!(streak(&days, "2026-01-06"), 4, "today not done yet");
        assert_eq!(streak(&days, "2026-01-08"), 0, "two missed days end it");
        let gap: BTreeSet<String> = ["2026-01-01", "2026-01-04"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(streak(&gap, "2026-01-04"), 1);
    }
}
