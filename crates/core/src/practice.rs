//! The empathy practices, computed on the device from verified items: blind
//! exchanges (sealed check-ins with guesses, exercises) and their reveals, the
//! reflect-back loop, timeouts and appreciations.

use std::collections::BTreeMap;

use attune_crypto::{open_revealed, RevealError, SymmetricKey};
use attune_proto::api::from_b64;
use attune_proto::{AnswerContext, DeviceId, EntryId, SealedAnswer, SpaceId};
use serde::Serialize;

use crate::entry::{Entry, Problem};
use crate::item::{Answer, Body, CheckIn, ExerciseKind, Guess};

/// How long a check-in waits for the partner's: the partner's next evening,
/// wherever either of them lives, falls inside it (PRACTICES.md, "the evening
/// exchange").
pub const JOIN_WINDOW_MS: i64 = 20 * 60 * 60 * 1000;

/// The exercise id of a calendar day's check-in, as clients before the evening
/// exchange derived it (both partners the same one); still read.
pub fn day_exercise(day: &str) -> String {
    let h = attune_proto::ids::hash_labelled(b"attune/v1/checkin-day", &[day.as_bytes()]);
    hex::encode(&h.0[..16])
}

/// The local calendar day of a Unix-millisecond time.
pub fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d")
                .to_string()
        })
        .unwrap_or_default()
}

pub fn parse_id(hex: &str) -> Option<EntryId> {
    EntryId::from_hex(hex).ok()
}

/// One partner's side of a blind exchange.
#[derive(Debug, Clone)]
pub struct Side {
    pub entry: EntryId,
    pub author: DeviceId,
    pub at: i64,
    pub sealed: SealedAnswer,
    /// The answer, once readable here (always for one's own, after reveal for the partner's).
    pub answer: Option<Answer>,
    pub revealed: bool,
}

/// A blind exchange: a day's check-in or an exercise.
#[derive(Debug, Clone, Default)]
pub struct Exchange {
    pub id: String,
    pub day: Option<String>,
    pub exercise: Option<(ExerciseKind, String)>,
    pub started_by_me: bool,
    pub started_at: i64,
    pub mine: Option<Side>,
    pub theirs: Option<Side>,
    /// (marked by me, accurate, note)
    pub marks: Vec<(bool, bool, Option<String>)>,
    /// A check-in exchange's opener (true: this member): the member whose sealed
    /// check-in is named after itself. `None` for exercises and day exchanges.
    pub opened_by_me: Option<bool>,
    /// The exchange this one's opener moved their answer to (two check-ins
    /// opened at once pair in the earlier exchange).
    pub moved_to: Option<String>,
}

impl Exchange {
    pub fn both_sealed(&self) -> bool {
        self.mine.is_some() && self.theirs.is_some()
    }

    /// A check-in exchange (not an exercise).
    pub fn is_checkin(&self) -> bool {
        self.exercise.is_none()
    }

    /// A check-in exchange only one partner answered, whose time to answer has
    /// passed (it stays sealed: nobody can answer it any more).
    pub fn unanswered(&self, now_ms: i64) -> bool {
        self.is_checkin()
            && !self.both_sealed()
            && self.moved_to.is_none()
            && now_ms.saturating_sub(self.started_at) > JOIN_WINDOW_MS
    }

    /// Still open for the other partner's check-in.
    pub fn joinable(&self, now_ms: i64) -> bool {
        self.is_checkin()
            && !self.both_sealed()
            && self.moved_to.is_none()
            && now_ms.saturating_sub(self.started_at) <= JOIN_WINDOW_MS
    }

    /// The partner's answer: shown only once both have sealed and it verified.
    pub fn their_answer(&self) -> Option<&Answer> {
        if !self.both_sealed() {
            return None;
        }
        self.theirs.as_ref().and_then(|s| s.answer.as_ref())
    }
}

/// How close a guess was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Accuracy {
    /// |guessed mood - actual mood|, if a mood was guessed.
    pub mood_error: Option<u8>,
    /// Guessed feelings that the partner named.
    pub feelings_hit: usize,
    pub feelings_guessed: usize,
    pub feelings_actual: usize,
}

pub fn accuracy(guess: &Guess, actual: &CheckIn) -> Accuracy {
    Accuracy {
        mood_error: guess.mood.map(|m| m.abs_diff(actual.mood)),
        feelings_hit: guess
            .feelings
            .iter()
            .filter(|f| actual.feelings.contains(f))
            .count(),
        feelings_guessed: guess.feelings.len(),
        feelings_actual: actual.feelings.len(),
    }
}

/// One reflect-back loop around a partner's item.
#[derive(Debug, Clone, Default)]
pub struct Thread {
    pub root: String,
    /// (reflection entry id, by me, text, response) in order.
    pub rounds: Vec<Round>,
}

#[derive(Debug, Clone)]
pub struct Round {
    pub id: EntryId,
    pub by_me: bool,
    pub at: i64,
    pub text: String,
    pub response: Option<Response>,
}

#[derive(Debug, Clone)]
pub enum Response {
    Confirmed { at: i64 },
    Corrected { at: i64, text: String },
}

impl Thread {
    pub fn confirmed(&self) -> bool {
        self.rounds
            .iter()
            .any(|r| matches!(r.response, Some(Response::Confirmed { .. })))
    }
}

/// A pause one partner asked for.
#[derive(Debug, Clone)]
pub struct Pause {
    pub by_me: bool,
    pub at: i64,
    pub until: i64,
    pub text: Option<String>,
    pub ended_early: bool,
}

/// Everything the practices derive from the verified items.
#[derive(Debug, Default)]
pub struct Practice {
    pub exchanges: Vec<Exchange>,
    pub threads: Vec<Thread>,
    pub pauses: Vec<Pause>,
    /// (by me, at, text)
    pub appreciations: Vec<(bool, i64, String)>,
    pub problems: Vec<Problem>,
    /// Exercises whose key this member should reveal now: (exercise, key).
    pub reveals_due: Vec<(String, String)>,
    /// Marks that do not count: a member's second mark of one answer (the
    /// first counts), or a mark of an answer that is not there.
    pub ignored_marks: Vec<EntryId>,
}

impl Practice {
    pub fn exchange(&self, id: &str) -> Option<&Exchange> {
        self.exchanges.iter().find(|e| e.id == id)
    }

    /// The pause in force at `now`, if any.
    pub fn active_pause(&self, now: i64) -> Option<&Pause> {
        self.pauses
            .iter()
            .rev()
            .find(|p| !p.ended_early && p.at <= now && now < p.until)
    }
}

fn key_from(b64: &str) -> Option<SymmetricKey> {
    let bytes: [u8; 32] = from_b64(b64)?.try_into().ok()?;
    Some(SymmetricKey::from_bytes(bytes))
}

fn open_side(space: SpaceId, id: &str, side: &Side, key: &SymmetricKey) -> Result<Answer, String> {
    let exercise = parse_id(id).ok_or("bad exercise id")?;
    let ctx = AnswerContext {
        space,
        exercise,
        author: side.author,
    };
    match open_revealed(&ctx, &side.sealed, key) {
        Ok(plain) => serde_json::from_slice(&plain).map_err(|_| "unreadable answer".to_string()),
        Err(RevealError::CommitmentMismatch) => {
            Err("the revealed key does not match the key the answer was sealed with".into())
        }
        Err(e) => Err(e.to_string()),
    }
}

/// Folds verified entries (in the order they were received) into the practices.
pub fn fold(entries: &[Entry], space: SpaceId) -> Practice {
    let mut p = Practice::default();
    let mut index: BTreeMap<String, usize> = BTreeMap::new();
    // (key, sent to the relay as a held reveal)
    let mut my_keys: BTreeMap<String, (String, bool)> = BTreeMap::new();
    // Every key revealed per (exchange, by this member): the one that matches
    // the counted answer's commitment opens it, whatever came first.
    let mut reveals: BTreeMap<(String, bool), Vec<String>> = BTreeMap::new();
    // Second answers refused as changed, per (exchange, by this member).
    let mut refused_answers: BTreeMap<(String, bool), Vec<Side>> = BTreeMap::new();
    let mut threads: BTreeMap<String, usize> = BTreeMap::new();
    // Each reflection's place (thread, round), by its id.
    let mut rounds: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    let problem = |kind: &str, detail: String| Problem {
        kind: kind.into(),
        detail,
        cursor: None,
    };
    fn slot(p: &mut Practice, index: &mut BTreeMap<String, usize>, id: &str, at: i64) -> usize {
        *index.entry(id.to_string()).or_insert_with(|| {
            p.exchanges.push(Exchange {
                id: id.to_string(),
                started_at: at,
                ..Exchange::default()
            });
            p.exchanges.len() - 1
        })
    }
    for e in entries.iter().filter(|e| !e.deleted) {
        match &e.item.body {
            Body::Exercise {
                exercise_kind,
                prompt,
            } => {
                let i = slot(&mut p, &mut index, &e.id.to_hex(), e.item.at);
                let x = &mut p.exchanges[i];
                x.exercise = Some((*exercise_kind, prompt.clone()));
                x.started_by_me = e.mine;
                x.started_at = e.item.at;
            }
            Body::Sealed {
                exercise,
                sealed,
                moved_from,
                ..
            } => {
                let Some(sealed) = from_b64(sealed).and_then(|b| SealedAnswer::decode(&b).ok())
                else {
                    p.problems.push(problem(
                        "unreadable",
                        format!("a sealed answer ({}) is malformed", e.id),
                    ));
                    continue;
                };
                let i = slot(&mut p, &mut index, exercise, e.item.at);
                let x = &mut p.exchanges[i];
                if *exercise == e.id.to_hex() {
                    // Named after itself: it opened a check-in exchange.
                    x.opened_by_me = Some(e.mine);
                    x.started_at = e.item.at;
                }
                if let Some(from) = moved_from {
                    let target = exercise.clone();
                    if let Some(&j) = index.get(from) {
                        let old = &mut p.exchanges[j];
                        // Only one's own exchange, only one nobody else answered.
                        if old.opened_by_me == Some(e.mine)
                            && old.is_checkin()
                            && !old.both_sealed()
                        {
                            old.moved_to = Some(target);
                        }
                    }
                }
                let x = &mut p.exchanges[i];
                let side = if e.mine { &mut x.mine } else { &mut x.theirs };
                let new = Side {
                    entry: e.id,
                    author: e.author,
                    at: e.item.at,
                    sealed,
                    answer: None,
                    revealed: false,
                };
                if side.is_some() {
                    p.problems.push(problem(
                        "changed",
                        format!(
                            "{} sealed a second answer for the same exchange; answers cannot change once sealed, so it is refused",
                            if e.mine { "you" } else { "your partner" }
                        ),
                    ));
                    refused_answers
                        .entry((exercise.clone(), e.mine))
                        .or_default()
                        .push(new);
                    continue;
                }
                *side = Some(new);
            }
            Body::AnswerKey {
                exercise,
                key,
                held,
            } if e.mine => {
                my_keys
                    .entry(exercise.clone())
                    .or_insert_with(|| (key.clone(), *held));
            }
            Body::Reveal { exercise, key } => {
                reveals
                    .entry((exercise.clone(), e.mine))
                    .or_default()
                    .push(key.clone());
            }
            Body::Mark {
                exercise,
                accurate,
                note,
            } => {
                // One mark per member and answer: the first counts. A member
                // marks the other member's answer, which must be there.
                let counts = index.get(exercise).copied().filter(|&i| {
                    let x = &p.exchanges[i];
                    let marked = if e.mine { &x.theirs } else { &x.mine };
                    marked.is_some() && !x.marks.iter().any(|m| m.0 == e.mine)
                });
                match counts {
                    Some(i) => p.exchanges[i].marks.push((e.mine, *accurate, note.clone())),
                    None => p.ignored_marks.push(e.id),
                }
            }
            Body::Reflect { target, text } => {
                let t = *threads.entry(target.clone()).or_insert_with(|| {
                    p.threads.push(Thread {
                        root: target.clone(),
                        rounds: vec![],
                    });
                    p.threads.len() - 1
                });
                rounds
                    .entry(e.id.to_hex())
                    .or_insert((t, p.threads[t].rounds.len()));
                p.threads[t].rounds.push(Round {
                    id: e.id,
                    by_me: e.mine,
                    at: e.item.at,
                    text: text.clone(),
                    response: None,
                });
            }
            Body::Confirm { target } | Body::Correct { target, .. } => {
                let response = match &e.item.body {
                    Body::Correct { text, .. } => Response::Corrected {
                        at: e.item.at,
                        text: text.clone(),
                    },
                    _ => Response::Confirmed { at: e.item.at },
                };
                // Only the author of the reflected item answers, and only once.
                if let Some(&(t, r)) = rounds.get(target) {
                    let round = &mut p.threads[t].rounds[r];
                    if round.by_me != e.mine && round.response.is_none() {
                        round.response = Some(response);
                    }
                }
            }
            Body::Timeout { minutes, text } => p.pauses.push(Pause {
                by_me: e.mine,
                at: e.item.at,
                until: e
                    .item
                    .at
                    .saturating_add(i64::from(*minutes).saturating_mul(60_000)),
                text: text.clone(),
                ended_early: false,
            }),
            Body::Resume => {
                // Ends every pause of the author still in force, not only the newest.
                for pause in p.pauses.iter_mut().filter(|x| {
                    x.by_me == e.mine && !x.ended_early && x.at <= e.item.at && e.item.at < x.until
                }) {
                    pause.ended_early = true;
                    pause.until = e.item.at;
                }
            }
            Body::Appreciation { text } => p.appreciations.push((e.mine, e.item.at, text.clone())),
            Body::CheckIn(c) => {
                if let Some(a) = &c.appreciate {
                    p.appreciations.push((e.mine, e.item.at, a.clone()));
                }
            }
            _ => {}
        }
    }
    // Open what can be opened: one's own answers with one's own keys, the
    // partner's with their revealed key, each checked against its commitment.
    for x in &mut p.exchanges {
        if let (Some(side), Some(key)) = (
            &mut x.mine,
            my_keys.get(&x.id).and_then(|(k, _)| key_from(k)),
        ) {
            side.answer = open_side(space, &x.id, side, &key).ok();
            side.revealed = reveals.contains_key(&(x.id.clone(), true));
        }
        if let Some(side) = &mut x.theirs {
            if let Some(keys) = reveals.get(&(x.id.clone(), false)) {
                let mut refused = None;
                for k in keys {
                    match key_from(k)
                        .ok_or_else(|| "malformed key".to_string())
                        .and_then(|key| open_side(space, &x.id, side, &key))
                    {
                        // Every key is tried, so that one opening nothing is
                        // reported even after the genuine one; the first that
                        // opens the answer counts.
                        Ok(answer) => {
                            side.answer.get_or_insert(answer);
                            side.revealed = true;
                        }
                        Err(why) => {
                            // The relay releases a refused second answer's key
                            // too: it opens that answer (reported as changed),
                            // so it is no bad reveal.
                            let opens_refused = key_from(k).is_some_and(|key| {
                                refused_answers
                                    .get(&(x.id.clone(), false))
                                    .into_iter()
                                    .flatten()
                                    .any(|r| open_side(space, &x.id, r, &key).is_ok())
                            });
                            if !opens_refused {
                                refused = refused.or(Some(why));
                            }
                        }
                    }
                }
                // A key that opens nothing is reported, even when another opened it.
                if let Some(why) = refused {
                    p.problems.push(Problem {
                        kind: "bad_reveal".into(),
                        detail: format!("your partner's reveal was refused: {why}"),
                        cursor: None,
                    });
                }
            }
        }
        if x.both_sealed() && !reveals.contains_key(&(x.id.clone(), true)) {
            // A held reveal is released by the relay; only older answers owe one.
            if let Some((k, false)) = my_keys.get(&x.id) {
                p.reveals_due.push((x.id.clone(), k.clone()));
            }
        }
        // Appreciations inside revealed check-ins.
        for (mine, side) in [(true, &x.mine), (false, &x.theirs)] {
            let readable = if mine {
                side.as_ref().and_then(|s| s.answer.as_ref())
            } else {
                x.their_answer()
            };
            if let (Some(Answer::CheckIn { checkin, .. }), Some(s)) = (readable, side) {
                if let Some(a) = &checkin.appreciate {
                    p.appreciations.push((mine, s.at, a.clone()));
                }
            }
        }
    }
    p.appreciations.sort_by_key(|a| a.1);
    p
}

#[cfg(test)]
mod tests {
    use attune_proto::api::b64;
    use attune_proto::{AnswerContext, DeviceId, EntryId, SpaceId};

    use super::{day_exercise, fold};
    use crate::entry::Entry;
    use crate::item::{Answer, Body, CheckIn, Item};

    fn sealed_by(space: SpaceId, exercise: &str, author: DeviceId, mood: u8) -> Entry {
        sealed_with_key(space, exercise, author, mood).0
    }

    /// A partner's sealed check-in answer and the key that opens it.
    fn sealed_with_key(
        space: SpaceId,
        exercise: &str,
        author: DeviceId,
        mood: u8,
    ) -> (Entry, attune_crypto::SymmetricKey) {
        let ctx = AnswerContext {
            space,
            exercise: EntryId::from_hex(exercise).unwrap_or(EntryId([0; 16])),
            author,
        };
        let answer = Answer::CheckIn {
            day: "2026-12-02".into(),
            checkin: CheckIn {
                mood,
                feelings: vec![],
                high: None,
                low: None,
                appreciate: None,
                need: None,
            },
            guess: None,
        };
        let (sealed, key) = attune_crypto::seal_answer(&ctx, &answer.to_bytes()).unwrap();
        let sealed = b64(&sealed.encode());
        (
            Entry {
                id: EntryId(attune_crypto::secret::random_array()),
                cursor: None,
                author,
                mine: false,
                private: false,
                pending: false,
                item: Item {
                    v: 1,
                    at: 0,
                    body: Body::Sealed {
                        exercise: exercise.to_string(),
                        sealed,
                        moved_from: None,
                        gen: None,
                    },
                    heads: vec![],
                    seen_at: None,
                    roster: None,
                },
                edited: false,
                deleted: false,
            },
            key,
        )
    }

    fn item_by(mine: bool, at: i64, body: Body) -> Entry {
        Entry {
            id: EntryId(attune_crypto::secret::random_array()),
            cursor: None,
            author: DeviceId([if mine { 1 } else { 2 }; 32]),
            mine,
            private: false,
            pending: false,
            item: Item {
                v: 1,
                at,
                body,
                heads: vec![],
                seen_at: None,
                roster: None,
            },
            edited: false,
            deleted: false,
        }
    }

    #[test]
    fn resume_ends_every_pause_of_its_author_still_in_force() {
        let space = SpaceId([7; 16]);
        let min = 60_000;
        let timeout = |mine, at, minutes| {
            item_by(
                mine,
                at,
                Body::Timeout {
                    minutes,
                    text: None,
                },
            )
        };
        let entries = [
            timeout(true, 0, 60),
            timeout(true, 10 * min, 20),
            // The partner's pause is theirs to end.
            timeout(false, 12 * min, 60),
            item_by(true, 15 * min, Body::Resume),
        ];
        let p = fold(&entries, space);
        let mine: Vec<_> = p.pauses.iter().filter(|x| x.by_me).collect();
        assert_eq!(mine.len(), 2);
        for pause in mine {
            assert!(pause.ended_early, "{pause:?}");
            assert_eq!(pause.until, 15 * min);
        }
        let now = 16 * min;
        assert!(p.active_pause(now).is_some_and(|x| !x.by_me));
        assert!(!p
            .pauses
            .iter()
            .any(|x| x.by_me && x.at <= now && now < x.until));
    }

    #[test]
    fn one_mark_per_member_and_answer_counts_the_first() {
        let space = SpaceId([7; 16]);
        let exercise = day_exercise("2026-12-02");
        let mark = |mine, at, accurate| {
            item_by(
                mine,
                at,
                Body::Mark {
                    exercise: exercise.clone(),
                    accurate,
                    note: None,
                },
            )
        };
        let mut mine = sealed_by(space, &exercise, DeviceId([1; 32]), 4);
        mine.mine = true;
        let theirs = sealed_by(space, &exercise, DeviceId([2; 32]), 6);
        // A mark before the other side's answer exists marks nothing.
        let early = mark(true, 1, false);
        let entries = [
            mine,
            early.clone(),
            theirs,
            mark(true, 2, true),
            mark(true, 3, false),
            mark(false, 4, false),
            mark(false, 5, true),
        ];
        let p = fold(&entries, space);
        let x = p.exchange(&exercise).map(|x| x.marks.clone());
        assert_eq!(
            x,
            Some(vec![(true, true, None), (false, false, None)]),
            "the first mark of each member counts"
        );
        let ignored: Vec<_> = [1, 4, 6].iter().map(|&i| entries[i].id).collect();
        assert_eq!(p.ignored_marks, ignored);
        assert_eq!(early.id, ignored[0]);
    }

    #[test]
    fn one_sealed_answer_per_member_counts_across_their_devices() {
        let space = SpaceId([7; 16]);
        let exercise = day_exercise("2026-12-02");
        let first = sealed_by(space, &exercise, DeviceId([1; 32]), 4);
        let second = sealed_by(space, &exercise, DeviceId([2; 32]), 1);
        let p = fold(&[first.clone(), second], space);
        let x = p
            .exchange(&exercise)
            .map(|x| x.theirs.as_ref().map(|s| s.entry));
        assert_eq!(x, Some(Some(first.id)));
        assert!(p.problems.iter().any(|q| q.kind == "changed"));
    }

    /// Regression: the relay releases the key of a refused second answer too,
    /// and released keys come in the order of their answers' random ids; that
    /// key came first half the time and was reported as a bad reveal.
    #[test]
    fn a_refused_second_answers_key_is_no_bad_reveal_in_either_order() {
        let space = SpaceId([7; 16]);
        let exercise = day_exercise("2026-12-02");
        let author = DeviceId([2; 32]);
        let sealed_with_reveal = |mood| {
            let (e, key) = sealed_with_key(space, &exercise, author, mood);
            let reveal = item_by(
                false,
                0,
                Body::Reveal {
                    exercise: exercise.clone(),
                    key: b64(key.expose()),
                },
            );
            (e, reveal)
        };
        let (first, first_key) = sealed_with_reveal(4);
        let (second, second_key) = sealed_with_reveal(10);
        for keys in [
            [first_key.clone(), second_key.clone()],
            [second_key, first_key],
        ] {
            let mut entries = vec![first.clone(), second.clone()];
            entries.extend(keys);
            let p = fold(&entries, space);
            let kinds: Vec<_> = p.problems.iter().map(|q| q.kind.as_str()).collect();
            assert_eq!(kinds, ["changed"], "{:?}", p.problems);
            let opened = p.exchange(&exercise).and_then(|x| {
                x.theirs.as_ref().and_then(|s| match &s.answer {
                    Some(Answer::CheckIn { checkin, .. }) => Some(checkin.mood),
                    _ => None,
                })
            });
            assert_eq!(opened, Some(4), "the first answer counts");
        }
    }

    /// A released key that opens nothing is reported whether it comes before
    /// or after the key that opens the answer.
    #[test]
    fn a_key_that_opens_nothing_is_a_bad_reveal_before_or_after_the_genuine_one() {
        let space = SpaceId([7; 16]);
        let exercise = day_exercise("2026-12-02");
        let (answer, key) = sealed_with_key(space, &exercise, DeviceId([2; 32]), 4);
        let reveal = |key: String| {
            item_by(
                false,
                0,
                Body::Reveal {
                    exercise: exercise.clone(),
                    key,
                },
            )
        };
        let genuine = reveal(b64(key.expose()));
        let bogus = reveal(b64(&[9u8; 32]));
        for keys in [
            [genuine.clone(), bogus.clone()],
            [bogus.clone(), genuine.clone()],
        ] {
            let mut entries = vec![answer.clone()];
            entries.extend(keys);
            let p = fold(&entries, space);
            let kinds: Vec<_> = p.problems.iter().map(|q| q.kind.as_str()).collect();
            assert_eq!(kinds, ["bad_reveal"], "{:?}", p.problems);
            assert!(
                p.exchange(&exercise)
                    .and_then(|x| x.theirs.as_ref())
                    .is_some_and(|s| s.answer.is_some()),
                "the genuine key still opens the answer"
            );
        }
    }
}
