//! Every number a report shows, computed from the verified, readable items of a
//! period, for both partners. Nothing here reads the clock, the disk or the
//! network: the report and `stats` are pure functions of a view.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{Datelike, NaiveDate};
use serde::Serialize;

use super::period::{day_key, Period, PeriodKind};
use crate::insights::{checkin_days, guess_accuracy, DayAccuracy};
use crate::item::{Answer, Body, CheckIn, ExerciseKind, Need, UnionAnswer};
use crate::practice::{day_of, Response};
use crate::profile::View;
use crate::vocab::{quadrant, Quadrant};

/// A reflection counts as answering a request for listening, support or
/// suggestions when it comes within this long after the check-in that asked.
pub const ANSWER_WITHIN_MS: i64 = 24 * 3_600_000;

/// One day of the period: each partner's mood (the day's last check-in) and how
/// far each one's guess of the other's mood was.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Day {
    pub day: String,
    pub me: Option<u8>,
    pub partner: Option<u8>,
    pub my_error: Option<u8>,
    pub partner_error: Option<u8>,
}

/// How many feeling words fell in each quadrant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Quadrants {
    pub pleasant_high: usize,
    pub pleasant_low: usize,
    pub unpleasant_high: usize,
    pub unpleasant_low: usize,
}

impl Quadrants {
    fn add(&mut self, q: Quadrant) {
        match q {
            Quadrant::PleasantHigh => self.pleasant_high += 1,
            Quadrant::PleasantLow => self.pleasant_low += 1,
            Quadrant::UnpleasantHigh => self.unpleasant_high += 1,
            Quadrant::UnpleasantLow => self.unpleasant_low += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.pleasant_high + self.pleasant_low + self.unpleasant_high + self.unpleasant_low
    }

    /// In the order pleasant-high, pleasant-low, unpleasant-high, unpleasant-low.
    pub fn each(&self) -> [(Quadrant, usize); 4] {
        [
            (Quadrant::PleasantHigh, self.pleasant_high),
            (Quadrant::PleasantLow, self.pleasant_low),
            (Quadrant::UnpleasantHigh, self.unpleasant_high),
            (Quadrant::UnpleasantLow, self.unpleasant_low),
        ]
    }
}

/// How well one partner read the other: their guesses on the days both
/// check-ins were revealed.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Reading {
    /// Days with a mood guess.
    pub days_guessed: usize,
    /// Of those, days the guess was off by at most one point.
    pub within_one: usize,
    pub mean_error: Option<f64>,
    /// Mean error in the first and the second half of the period's guesses.
    pub first_half_error: Option<f64>,
    pub second_half_error: Option<f64>,
    /// Guessed feelings the other named, of all guessed.
    pub feelings_hit: usize,
    pub feelings_guessed: usize,
}

/// What one partner asked for in check-ins, and how often the other answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Needs {
    pub listen: usize,
    pub support: usize,
    pub suggestions: usize,
    pub space: usize,
    pub distraction: usize,
    /// Requests for listening, support or suggestions ...
    pub answerable: usize,
    /// ... that the other answered with a reflection within a day.
    pub answered: usize,
}

impl Needs {
    fn add(&mut self, need: Need) {
        match need {
            Need::Listen => self.listen += 1,
            Need::Support => self.support += 1,
            Need::Suggestions => self.suggestions += 1,
            Need::Space => self.space += 1,
            Need::Distraction => self.distraction += 1,
        }
    }

    pub fn total(&self) -> usize {
        self.listen + self.support + self.suggestions + self.space + self.distraction
    }

    pub fn each(&self) -> [(Need, usize); 5] {
        [
            (Need::Listen, self.listen),
            (Need::Support, self.support),
            (Need::Suggestions, self.suggestions),
            (Need::Space, self.space),
            (Need::Distraction, self.distraction),
        ]
    }
}

/// The reflections one partner wrote on the other's words.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Listening {
    /// Every reflection written (a correction asks for another).
    pub reflections: usize,
    /// Conversations (threads) this partner started by reflecting ...
    pub threads: usize,
    /// ... confirmed at the first reflection,
    pub first_try: usize,
    /// ... confirmed after one or more corrections,
    pub after_corrections: usize,
    /// ... not confirmed (yet).
    pub open: usize,
}

/// One partner's numbers for the period.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Side {
    pub checkin_days: usize,
    pub average_mood: Option<f64>,
    pub quadrants: Quadrants,
    /// The feeling words named most, most first (ties alphabetical), up to five.
    pub top_words: Vec<(String, usize)>,
    pub reading: Reading,
    pub needs: Needs,
    pub listening: Listening,
    /// The forgiving streak (one missed day forgiven) as of the period's end (or
    /// today), counted back as far as it goes, before the period too.
    pub streak_at_end: usize,
    /// The longest run of consecutive days with a check-in inside the period.
    pub longest_run: usize,
    /// Exercises answered (sealed) inside the period.
    pub exercises_answered: usize,
}

/// A state-of-the-union exercise of the period and what each wrote.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Union {
    pub started: String,
    pub mine: Option<UnionAnswer>,
    /// Only once both answered and it opened.
    pub theirs: Option<UnionAnswer>,
    pub i_answered: bool,
    pub they_answered: bool,
}

/// An appreciation written inside the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Appreciation {
    pub by_me: bool,
    pub day: String,
    pub text: String,
}

/// The 30-day challenge, where it overlaps the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Challenge {
    pub start: String,
    /// The challenge's days inside the period (1-based day numbers).
    pub first_day: i64,
    pub last_day: i64,
    /// Of those days, the ones each partner answered an exercise on.
    pub my_days: usize,
    pub partner_days: usize,
}

/// One month of a year view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Month {
    pub month: String,
    pub my_average: Option<f64>,
    pub partner_average: Option<f64>,
    pub my_mean_error: Option<f64>,
    pub partner_mean_error: Option<f64>,
    pub my_mood_days: usize,
    pub partner_mood_days: usize,
}

/// Everything a report shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub period: Period,
    pub label: String,
    /// Whether anything at all was written in the period (else it says so).
    pub has_data: bool,
    pub days: Vec<Day>,
    pub me: Side,
    pub partner: Side,
    pub unions: Vec<Union>,
    pub appreciations: Vec<Appreciation>,
    pub challenge: Option<Challenge>,
    /// For a year: one row per month.
    pub months: Vec<Month>,
}

/// One readable check-in and who wrote it.
struct Seen<'a> {
    mine: bool,
    day: String,
    at: i64,
    checkin: &'a CheckIn,
}

/// Every readable check-in, the day's last per partner (as the moods count it).
fn checkins(view: &View) -> Vec<Seen<'_>> {
    let mut all: Vec<Seen<'_>> = vec![];
    for e in view.entries.iter().filter(|e| !e.deleted) {
        if let Body::CheckIn(c) = &e.item.body {
            all.push(Seen {
                mine: e.mine,
                day: day_of(e.item.at),
                at: e.item.at,
                checkin: c,
            });
        }
    }
    for x in &view.practice.exchanges {
        let sides = [
            (
                true,
                x.mine
                    .as_ref()
                    .and_then(|s| s.answer.as_ref().map(|a| (s.at, a))),
            ),
            (
                false,
                x.their_answer()
                    .zip(x.theirs.as_ref())
                    .map(|(a, s)| (s.at, a)),
            ),
        ];
        for (mine, found) in sides {
            if let Some((at, Answer::CheckIn { day, checkin, .. })) = found {
                all.push(Seen {
                    mine,
                    day: day.clone(),
                    at,
                    checkin,
                });
            }
        }
    }
    let mut last: BTreeMap<(bool, String), Seen<'_>> = BTreeMap::new();
    for s in all {
        let key = (s.mine, s.day.clone());
        if last.get(&key).is_none_or(|old| old.at <= s.at) {
            last.insert(key, s);
        }
    }
    last.into_values().collect()
}

fn mean(values: &[f64]) -> Option<f64> {
    (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
}

fn reading(days: &[&DayAccuracy], mine: bool) -> Reading {
    let errors: Vec<f64> = days
        .iter()
        .filter_map(|a| {
            if mine {
                a.my_mood_error
            } else {
                a.their_mood_error
            }
        })
        .map(f64::from)
        .collect();
    let half = errors.len() / 2;
    let (hit, guessed) = days.iter().fold((0, 0), |(h, g), a| {
        if mine {
            (h + a.my_feelings_hit, g + a.my_feelings_guessed)
        } else {
            (h + a.their_feelings_hit, g + a.their_feelings_guessed)
        }
    });
    Reading {
        days_guessed: errors.len(),
        within_one: errors.iter().filter(|e| **e <= 1.0).count(),
        mean_error: mean(&errors),
        first_half_error: if errors.len() >= 2 {
            mean(&errors[..half])
        } else {
            None
        },
        second_half_error: if errors.len() >= 2 {
            mean(&errors[half..])
        } else {
            None
        },
        feelings_hit: hit,
        feelings_guessed: guessed,
    }
}

/// The longest run of consecutive days in `days` (sorted, inside the period).
fn longest_run(days: &BTreeSet<NaiveDate>) -> usize {
    let (mut best, mut run, mut prev): (usize, usize, Option<NaiveDate>) = (0, 0, None);
    for d in days {
        run = if prev.and_then(|p| p.succ_opt()) == Some(*d) {
            run + 1
        } else {
            1
        };
        best = best.max(run);
        prev = Some(*d);
    }
    best
}

fn parse(day: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(day, "%Y-%m-%d").ok()
}

/// The report of `period` as of `today` (days after today are not counted as
/// missed), for the member whose view this is. `challenge_start` is the
/// member's 30-day challenge, if one was started. `streaks_at_end` are both
/// partners' streaks (mine, the partner's) at the period's end or today, whichever
/// is first (`Profile::streaks_at`): they may reach back before the period, past
/// the items of `view`.
pub fn compute(
    view: &View,
    period: Period,
    today: NaiveDate,
    challenge_start: Option<NaiveDate>,
    streaks_at_end: (usize, usize),
) -> Report {
    let seen: Vec<Seen<'_>> = checkins(view)
        .into_iter()
        .filter(|s| period.contains_day(&s.day))
        .collect();
    let accuracy = guess_accuracy(&view.practice);
    let accuracy: Vec<&DayAccuracy> = accuracy
        .iter()
        .filter(|a| period.contains_day(&a.day))
        .collect();
    let by_day: BTreeMap<&str, &&DayAccuracy> =
        accuracy.iter().map(|a| (a.day.as_str(), a)).collect();
    let mood = |mine: bool, day: &str| {
        seen.iter()
            .find(|s| s.mine == mine && s.day == day)
            .map(|s| s.checkin.mood)
    };
    let days: Vec<Day> = period
        .days()
        .map(|d| {
            let key = day_key(d);
            let acc = by_day.get(key.as_str());
            Day {
                me: mood(true, &key),
                partner: mood(false, &key),
                my_error: acc.and_then(|a| a.my_mood_error),
                partner_error: acc.and_then(|a| a.their_mood_error),
                day: key,
            }
        })
        .collect();
    let end = period.last.min(today);
    let mut sides = [true, false].map(|mine| {
        let own: Vec<&Seen<'_>> = seen.iter().filter(|s| s.mine == mine).collect();
        let mut quadrants = Quadrants::default();
        let mut words: BTreeMap<&str, usize> = BTreeMap::new();
        let mut needs = Needs::default();
        for s in &own {
            for w in &s.checkin.feelings {
                if let Some(q) = quadrant(w) {
                    quadrants.add(q);
                }
                *words.entry(w.as_str()).or_default() += 1;
            }
            if let Some(n) = s.checkin.need {
                needs.add(n);
            }
        }
        let mut top: Vec<(String, usize)> =
            words.into_iter().map(|(w, n)| (w.to_string(), n)).collect();
        top.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        top.truncate(5);
        let all_days = checkin_days(view, mine);
        let inside: BTreeSet<NaiveDate> = all_days
            .iter()
            .filter_map(|d| parse(d))
            // Up to the period's end, not today: a partner a time zone ahead may
            // already have checked in on what is tomorrow here, and their mood
            // that day counts above too.
            .filter(|d| *d >= period.first && *d <= period.last)
            .collect();
        let moods: Vec<f64> = own.iter().map(|s| f64::from(s.checkin.mood)).collect();
        Side {
            checkin_days: inside.len(),
            average_mood: mean(&moods),
            quadrants,
            top_words: top,
            reading: reading(&accuracy, mine),
            needs,
            listening: Listening::default(),
            streak_at_end: if end < period.first {
                0
            } else if mine {
                streaks_at_end.0
            } else {
                streaks_at_end.1
            },
            longest_run: longest_run(&inside),
            exercises_answered: 0,
        }
    });
    // Listening: threads started inside the period, by who reflected first.
    for t in &view.practice.threads {
        let Some(first) = t.rounds.first() else {
            continue;
        };
        for r in t.rounds.iter().filter(|r| period.contains_ms(r.at)) {
            sides[usize::from(!r.by_me)].listening.reflections += 1;
        }
        if !period.contains_ms(first.at) {
            continue;
        }
        let l = &mut sides[usize::from(!first.by_me)].listening;
        l.threads += 1;
        let confirmed_at = t
            .rounds
            .iter()
            .position(|r| matches!(r.response, Some(Response::Confirmed { .. })));
        match confirmed_at {
            Some(0) => l.first_try += 1,
            Some(_) => l.after_corrections += 1,
            None => l.open += 1,
        }
    }
    // Needs: did the other reflect within a day of the request?
    let reflections: Vec<(bool, i64)> = view
        .practice
        .threads
        .iter()
        .flat_map(|t| t.rounds.iter().map(|r| (r.by_me, r.at)))
        .collect();
    for s in &seen {
        if !matches!(
            s.checkin.need,
            Some(Need::Listen | Need::Support | Need::Suggestions)
        ) {
            continue;
        }
        let side = &mut sides[usize::from(!s.mine)].needs;
        side.answerable += 1;
        if reflections
            .iter()
            .any(|(by_me, at)| *by_me != s.mine && *at >= s.at && *at - s.at <= ANSWER_WITHIN_MS)
        {
            side.answered += 1;
        }
    }
    // Exercises answered, and the challenge's days.
    let mut exercise_days: [BTreeSet<NaiveDate>; 2] = [BTreeSet::new(), BTreeSet::new()];
    for x in view
        .practice
        .exchanges
        .iter()
        .filter(|x| x.exercise.is_some())
    {
        for (i, side) in [&x.mine, &x.theirs].into_iter().enumerate() {
            if let Some(s) = side {
                if let Some(d) = parse(&day_of(s.at)) {
                    exercise_days[i].insert(d);
                }
                if period.contains_ms(s.at) {
                    sides[i].exercises_answered += 1;
                }
            }
        }
    }
    let challenge = challenge_start.and_then(|start| {
        let last = start.checked_add_days(chrono::Days::new(29))?;
        let from = start.max(period.first);
        let to = last.min(period.last).min(today);
        if from > to {
            return None;
        }
        let count = |set: &BTreeSet<NaiveDate>| set.range(from..=to).count();
        Some(Challenge {
            start: day_key(start),
            first_day: (from - start).num_days() + 1,
            last_day: (to - start).num_days() + 1,
            my_days: count(&exercise_days[0]),
            partner_days: count(&exercise_days[1]),
        })
    });
    let unions: Vec<Union> = view
        .practice
        .exchanges
        .iter()
        .filter(|x| matches!(x.exercise, Some((ExerciseKind::StateOfTheUnion, _))))
        .filter(|x| period.contains_ms(x.started_at))
        .map(|x| {
            let union = |a: Option<&Answer>| match a {
                Some(Answer::Union(u)) => Some(u.clone()),
                _ => None,
            };
            Union {
                started: day_of(x.started_at),
                mine: union(x.mine.as_ref().and_then(|s| s.answer.as_ref())),
                theirs: union(x.their_answer()),
                i_answered: x.mine.is_some(),
                they_answered: x.theirs.is_some(),
            }
        })
        .collect();
    let appreciations: Vec<Appreciation> = view
        .practice
        .appreciations
        .iter()
        .filter(|(_, at, _)| period.contains_ms(*at))
        .map(|(by_me, at, text)| Appreciation {
            by_me: *by_me,
            day: day_of(*at),
            text: text.clone(),
        })
        .collect();
    let months = if period.kind == PeriodKind::Year {
        months(&days)
    } else {
        vec![]
    };
    let [me, partner] = sides;
    let has_data = days.iter().any(|d| d.me.is_some() || d.partner.is_some())
        || me.listening.reflections + partner.listening.reflections > 0
        || me.exercises_answered + partner.exercises_answered > 0
        || !appreciations.is_empty()
        || !unions.is_empty();
    Report {
        label: period.label(),
        period,
        has_data,
        days,
        me,
        partner,
        unions,
        appreciations,
        challenge,
        months,
    }
}

fn months(days: &[Day]) -> Vec<Month> {
    let mut by: BTreeMap<String, Vec<&Day>> = BTreeMap::new();
    for d in days {
        by.entry(d.day[..7].to_string()).or_default().push(d);
    }
    by.into_iter()
        .map(|(month, ds)| {
            let vals = |f: fn(&Day) -> Option<u8>| -> Vec<f64> {
                ds.iter().filter_map(|d| f(d)).map(f64::from).collect()
            };
            Month {
                my_average: mean(&vals(|d| d.me)),
                partner_average: mean(&vals(|d| d.partner)),
                my_mean_error: mean(&vals(|d| d.my_error)),
                partner_mean_error: mean(&vals(|d| d.partner_error)),
                my_mood_days: ds.iter().filter(|d| d.me.is_some()).count(),
                partner_mood_days: ds.iter().filter(|d| d.partner.is_some()).count(),
                month,
            }
        })
        .collect()
}

/// The month's name for a `YYYY-MM` key, short ("Mar").
pub fn short_month(key: &str) -> String {
    parse(&format!("{key}-01")).map_or_else(|| key.to_string(), |d| d.format("%b").to_string())
}

/// Weekday index (Monday 0) of a `YYYY-MM-DD` day.
pub fn weekday(day: &str) -> usize {
    parse(day).map_or(0, |d| d.weekday().num_days_from_monday() as usize)
}
