//! The shape of a history, planned before anything is sealed: which partner does
//! what on which simulated day, at what minute, and when each device sends,
//! receives and fully syncs. Planning is pure (no keys, no I/O), so the number of
//! envelopes comes out exact and the first day can be chosen so the last one is
//! yesterday.
//!
//! Every step is one a partner could take with the real CLI at that moment,
//! given what their device has received by then:
//!
//! * on contact days (every `contact_every` days: daily, unless the history is
//!   long) each device receives (pulls) in the morning and sends (pushes) in the
//!   evening, as a partner who opens attune and writes would;
//! * every `sync_every` days both run a full `attune sync` in the evening (Alex,
//!   then Sam; both send first). The relay releases the held reveals of an
//!   exchange as soon as both sealed answers are in; the planner counts the two
//!   reveals of every exchange both partners sealed (released reveals are not
//!   envelopes) and, to be safe, lets a partner act on an answer only after the
//!   full sync that follows;
//! * one reacts only to what one's device has received: a reflection to the
//!   partner's item, a confirm or correct to a reflection, a mark to an answer
//!   whose reveal arrived, an answer to an exercise the partner asked (the test
//!   replays the sends and receives to check this);
//! * one sealed check-in per partner and day; only journal entries are edited;
//!   only journals and appreciations are deleted, never twice; a resume only
//!   inside one's own pause.

use std::collections::{BTreeMap, HashSet};

use attune_core::item::{Answer, CheckIn, ExerciseKind, Guess, Need};
use attune_core::vocab::{Quadrant, EMOTIONS};

use super::rng::Rng;
use super::text;

/// Index of a planned item; execution maps it to the entry id it got.
pub type Handle = usize;

pub const ALEX: usize = 0;
pub const SAM: usize = 1;

/// A blind exchange: the day's check-ins, or an exercise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Exchange {
    Day(u32),
    Exercise(Handle),
}

/// What one step does.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    Journal {
        text: String,
        private: bool,
    },
    Edit {
        target: Handle,
        text: String,
        private: bool,
    },
    Delete {
        target: Handle,
        private: bool,
    },
    Appreciation {
        text: String,
    },
    /// `checkin --open`: shared at once.
    OpenCheckIn(CheckIn),
    /// The day's sealed check-in (its `day` is filled in when the date is known).
    SealCheckIn {
        checkin: CheckIn,
        guess: Option<Guess>,
    },
    Ask {
        kind: ExerciseKind,
        prompt: String,
    },
    Answer {
        exercise: Handle,
        text: String,
    },
    Mark {
        exchange: Exchange,
        accurate: bool,
        note: Option<String>,
    },
    Reflect {
        root: Handle,
        text: String,
    },
    Confirm {
        reflection: Handle,
    },
    Correct {
        reflection: Handle,
        text: String,
    },
    Timeout {
        minutes: u32,
        text: Option<String>,
    },
    Resume,
    /// Send the outbox (no view).
    Push,
    /// Receive what is new (no view).
    Pull,
    /// A full `attune sync`: send, receive, verify everything, reveal.
    Sync,
}

impl Op {
    /// Envelopes this step writes itself (a sync's reveals are counted apart).
    pub fn envelopes(&self) -> usize {
        match self {
            Op::Push | Op::Pull | Op::Sync => 0,
            _ => 1,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Op::Journal { private: false, .. } => "journal",
            Op::Journal { private: true, .. } => "journal (private)",
            Op::Edit { .. } => "edit",
            Op::Delete { .. } => "delete",
            Op::Appreciation { .. } => "appreciation",
            Op::OpenCheckIn(_) => "check-in (open)",
            Op::SealCheckIn { .. } => "check-in (sealed)",
            Op::Ask { .. } => "exercise",
            Op::Answer { .. } => "exercise answer (sealed)",
            Op::Mark { .. } => "mark",
            Op::Reflect { .. } => "reflect",
            Op::Confirm { .. } => "confirm",
            Op::Correct { .. } => "correct",
            Op::Timeout { .. } => "timeout",
            Op::Resume => "resume",
            Op::Push => "push",
            Op::Pull => "pull",
            Op::Sync => "sync",
        }
    }
}

/// One step: on `day` (0 = the first), at `second` of that local day, by `who`.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub day: u32,
    pub second: u32,
    pub who: usize,
    pub op: Op,
    /// The handle of the item this step writes, if it writes one that later
    /// steps refer to (for a sealed answer: the sealed entry).
    pub item: Option<Handle>,
}

#[derive(Debug, Default)]
pub struct Plan {
    pub steps: Vec<Step>,
    pub days: u32,
    /// Envelopes in the space at the end, both partners (released reveals are not envelopes).
    pub envelopes: usize,
    /// Reveals the syncs write (two per exchange both partners sealed).
    pub reveals: usize,
    pub handles: usize,
    pub by_kind: BTreeMap<&'static str, usize>,
    /// The same, per partner (`[ALEX, SAM]`), reveals included.
    pub by_who: [BTreeMap<&'static str, usize>; 2],
    pub syncs: usize,
}

/// The kind name of the reveals the relay releases (PROTOCOL.md §9): counted
/// apart, they are not envelopes.
pub const REVEAL: &str = "reveal (released by the relay)";

/// The envelopes of a history's last weeks (about 90 days), written with daily
/// contact whatever the history's length.
const RECENT_ENVELOPES: usize = 650;

/// Roughly how many envelopes a day brings: used to choose the sync interval.
pub const TYPICAL_PER_DAY: usize = 12;

#[derive(Debug, Default, Clone)]
struct Own {
    item: Handle,
    private: bool,
    text: String,
    deleted: bool,
}

#[derive(Debug, Default, Clone)]
struct Person {
    /// The slowly moving baseline of this person's mood.
    baseline: i64,
    journals: Vec<Own>,
    appreciations: Vec<Own>,
    /// This person's last pause: (day, start second, end second).
    pause: Option<(u32, u32, u32)>,
    /// Today's mood and feelings, for the partner's guess.
    today: Option<(u8, Vec<String>)>,
}

#[derive(Debug, Default, Clone)]
struct Blind {
    asked_day: u32,
    /// The first day each partner can answer.
    opens: [u32; 2],
    sealed: [Option<Handle>; 2],
    /// The first day both can read both answers (after the sync that revealed them).
    readable: Option<u32>,
    marked: [bool; 2],
    reflected: [bool; 2],
}

/// An item of `who`'s partner that `who` may reflect on from day `from`.
#[derive(Debug, Clone, Copy)]
struct Reflectable {
    item: Handle,
    from: u32,
}

/// A reflection on `who`'s item waiting for `who`'s confirm or correct.
#[derive(Debug, Clone, Copy)]
struct Pending {
    reflection: Handle,
    root: Handle,
    from: u32,
}

/// What one partner might do in a day, before deciding the details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    SealCheckIn,
    OpenCheckIn,
    Journal,
    Private,
    Edit,
    DeleteJournal,
    DeleteAppreciation,
    Appreciate,
    Reflect,
    Respond,
    ReReflect,
    Ask,
    Answer,
    Mark,
    Timeout,
    Resume(u32),
}

struct Planner {
    rng: Rng,
    target: usize,
    sync_every: u32,
    contact_every: u32,
    /// The day from which both are in contact daily: the last weeks of any
    /// history look like a couple's ordinary life, however sparse the long past
    /// was made to keep a long history quick to generate.
    daily_from: Option<u32>,
    plan: Plan,
    people: [Person; 2],
    blind: BTreeMap<Exchange, Blind>,
    /// Exchanges both sealed since the last full sync.
    awaiting_reveal: Vec<Exchange>,
    reflectable: [Vec<Reflectable>; 2],
    pending: [Vec<Pending>; 2],
    /// Corrections of `who`'s reflections: `who` may reflect again on the root.
    again: [Vec<Reflectable>; 2],
    reflected: HashSet<Handle>,
    deleted: HashSet<Handle>,
    /// Written since the last push, per partner.
    dirty: [bool; 2],
}

/// Plans a history of exactly `target` envelopes.
pub fn plan(target: usize, seed: u64, sync_every: u32, contact_every: u32) -> Plan {
    let mut p = Planner {
        rng: Rng::new(seed),
        target,
        sync_every: sync_every.max(1),
        contact_every: contact_every.max(1),
        daily_from: None,
        plan: Plan::default(),
        people: [
            Person {
                baseline: 6,
                ..Person::default()
            },
            Person {
                baseline: 7,
                ..Person::default()
            },
        ],
        blind: BTreeMap::new(),
        awaiting_reveal: Vec::new(),
        reflectable: [Vec::new(), Vec::new()],
        pending: [Vec::new(), Vec::new()],
        again: [Vec::new(), Vec::new()],
        reflected: HashSet::new(),
        deleted: HashSet::new(),
        dirty: [false; 2],
    };
    let mut day = 0;
    while p.left() > 0 {
        if p.daily_from.is_none() && p.left() <= RECENT_ENVELOPES {
            p.daily_from = Some(day);
        }
        p.day(day);
        day += 1;
    }
    p.plan.days = day;
    p.plan
}

impl Planner {
    /// Devices send and receive (push, pull) on contact days only.
    fn contact(&self, day: u32) -> bool {
        self.daily_from.is_some_and(|d| day >= d) || day.is_multiple_of(self.contact_every)
    }

    /// The first contact day after `day`. (Computed before daily contact
    /// starts, it may name a later day than the real one: every use of it is a
    /// "not before", so that only ever makes a partner react later.)
    fn next_contact_after(&self, day: u32) -> u32 {
        let periodic = (day / self.contact_every + 1) * self.contact_every;
        match self.daily_from {
            Some(d) if day + 1 >= d => day + 1,
            Some(d) => periodic.min(d),
            None => periodic,
        }
    }

    /// The first day the partner can have received an item written on `day`:
    /// sent on the first contact day from `day` on (in the evening), received on
    /// the contact day after that (in the morning). Full syncs may deliver it
    /// sooner; this never assumes it arrived before it did.
    fn seen_from(&self, day: u32) -> u32 {
        let sent = if self.contact(day) {
            day
        } else {
            self.next_contact_after(day)
        };
        self.next_contact_after(sent)
    }

    fn left(&self) -> usize {
        self.target - self.plan.envelopes
    }

    fn emit(&mut self, day: u32, second: u32, who: usize, op: Op) -> Option<Handle> {
        let item = match op {
            Op::Push | Op::Pull | Op::Sync => None,
            _ => {
                self.plan.handles += 1;
                Some(self.plan.handles - 1)
            }
        };
        let n = op.envelopes();
        if n > 0 {
            self.plan.envelopes += n;
            *self.plan.by_kind.entry(op.kind()).or_default() += 1;
            *self.plan.by_who[who].entry(op.kind()).or_default() += 1;
            self.dirty[who] = true;
        }
        if op == Op::Sync {
            self.plan.syncs += 1;
        }
        self.plan.steps.push(Step {
            day,
            second,
            who,
            op,
            item,
        });
        item
    }

    fn day(&mut self, day: u32) {
        let first_step = self.plan.steps.len();
        // Morning of a contact day: each device receives what came in.
        if day > 0 && self.contact(day) {
            for who in [ALEX, SAM] {
                let s = 6 * 3600 + self.rng.below(3600) as u32;
                self.emit(day, s, who, Op::Pull);
            }
        }
        self.forget_old(day);
        for who in [ALEX, SAM] {
            let b = &mut self.people[who].baseline;
            *b = (*b + self.rng.between(-1, 1)).clamp(3, 9);
            self.people[who].today = None;
        }
        let mut wants: Vec<(u32, usize, Want)> = Vec::new();
        for who in [ALEX, SAM] {
            self.wants(day, who, &mut wants);
        }
        wants.sort_by_key(|w| (w.0, w.1));
        for (second, who, want) in wants {
            if self.left() == 0 {
                break;
            }
            self.act(day, second, who, want);
        }
        let last_day = self.left() == 0;
        let round = last_day || (day + 1).is_multiple_of(self.sync_every);
        // Evening of a contact day (or before a full sync, so that it finds both
        // partners' answers on the relay): each device sends what it wrote.
        if self.contact(day) || round {
            for who in [ALEX, SAM] {
                if self.dirty[who] {
                    self.emit(day, 23 * 3600 + 600 + who as u32 * 10, who, Op::Push);
                    self.dirty[who] = false;
                }
            }
        }
        // Keep time order (the wants were sorted; this is cheap insurance).
        self.plan.steps[first_step..].sort_by_key(|s| s.second);
        if round {
            self.round(day, last_day);
        }
    }

    /// The evening full syncs: Alex, then Sam (and Alex again at the very end, so
    /// both hold everything). Both reveal every exchange both have sealed.
    fn round(&mut self, day: u32, last: bool) {
        let s = 23 * 3600 + 30 * 60;
        self.emit(day, s, ALEX, Op::Sync);
        self.emit(day, s + 60, SAM, Op::Sync);
        if last {
            self.emit(day, s + 120, ALEX, Op::Sync);
        }
        self.dirty = [false; 2];
        // Alex reads Sam's reveal at the next contact day; Sam read Alex's tonight.
        let readable = self.next_contact_after(day);
        for x in std::mem::take(&mut self.awaiting_reveal) {
            if let Some(b) = self.blind.get_mut(&x) {
                b.readable = Some(readable);
            }
        }
    }

    fn wants(&mut self, day: u32, who: usize, out: &mut Vec<(u32, usize, Want)>) {
        let r = &mut self.rng;
        let at = |r: &mut Rng, from_h: u32, to_h: u32| {
            (from_h * 3600) as i64 + r.between(0, ((to_h - from_h) * 3600) as i64 - 1)
        };
        let mut add = |w: Want, s: i64| out.push((s as u32, who, w));
        if r.chance(0.85) {
            let s = at(r, 19, 23);
            add(Want::SealCheckIn, s);
        }
        if r.chance(0.04) {
            let s = at(r, 8, 22);
            add(Want::OpenCheckIn, s);
        }
        let journals = match r.below(20) {
            0..=8 => 0,
            9..=15 => 1,
            16..=18 => 2,
            _ => 3,
        };
        for _ in 0..journals {
            let s = at(r, 7, 23);
            add(Want::Journal, s);
        }
        for (p, w, from, to) in [
            (0.2, Want::Private, 7, 23),
            (0.1, Want::Edit, 8, 23),
            (0.02, Want::DeleteJournal, 8, 23),
            (0.005, Want::DeleteAppreciation, 8, 23),
            (0.35, Want::Appreciate, 7, 23),
            (0.3, Want::Reflect, 7, 23),
            (0.07, Want::Ask, 8, 21),
            (0.1, Want::Mark, 8, 23),
        ] {
            if r.chance(p) {
                let s = at(r, from, to);
                add(w, s);
            }
        }
        // Answer what waits: reflections on one's items, corrections, exercises.
        let open_reflections = self.pending[who].iter().filter(|x| x.from <= day).count();
        for _ in 0..open_reflections {
            if r.chance(0.8) {
                let s = at(r, 7, 23);
                add(Want::Respond, s);
            }
        }
        let corrections = self.again[who].iter().filter(|x| x.from <= day).count();
        for _ in 0..corrections {
            if r.chance(0.5) {
                let s = at(r, 7, 23);
                add(Want::ReReflect, s);
            }
        }
        let exercises = self
            .blind
            .iter()
            .filter(|(k, b)| {
                matches!(k, Exchange::Exercise(_)) && b.sealed[who].is_none() && b.opens[who] <= day
            })
            .count();
        for _ in 0..exercises {
            if r.chance(0.45) {
                let s = at(r, 8, 23);
                add(Want::Answer, s);
            }
        }
        if r.chance(0.02) {
            let s = at(r, 9, 21);
            add(Want::Timeout, s);
            if r.chance(0.5) {
                // Back before the pause ends (at least 10 minutes, see `act`).
                add(Want::Resume(s as u32), s + r.between(120, 540));
            }
        }
    }

    /// Plans one wanted action if it is possible now and fits; true if it wrote.
    fn act(&mut self, day: u32, second: u32, who: usize, want: Want) -> bool {
        let partner = 1 - who;
        let fits = |p: &Planner, n: usize| p.left() >= n;
        match want {
            Want::Journal | Want::Private => {
                let private = want == Want::Private;
                let text = if private {
                    text::private_note(&mut self.rng)
                } else {
                    text::journal(&mut self.rng)
                };
                let Some(item) = self.write(
                    day,
                    second,
                    who,
                    Op::Journal {
                        text: text.clone(),
                        private,
                    },
                ) else {
                    return false;
                };
                self.people[who].journals.push(Own {
                    item,
                    private,
                    text,
                    deleted: false,
                });
                if !private {
                    self.reflectable[partner].push(Reflectable {
                        item,
                        from: self.seen_from(day),
                    });
                }
                true
            }
            Want::Edit => {
                let Some(i) = self.recent_own(who, true) else {
                    return false;
                };
                let j = self.people[who].journals[i].clone();
                let text = text::edited(&mut self.rng, &j.text);
                let op = Op::Edit {
                    target: j.item,
                    text: text.clone(),
                    private: j.private,
                };
                if self.write(day, second, who, op).is_none() {
                    return false;
                }
                self.people[who].journals[i].text = text;
                true
            }
            Want::DeleteJournal | Want::DeleteAppreciation => {
                let journal = want == Want::DeleteJournal;
                let Some(i) = self.recent_own(who, journal) else {
                    return false;
                };
                let list = if journal {
                    &self.people[who].journals
                } else {
                    &self.people[who].appreciations
                };
                let (target, private) = (list[i].item, list[i].private);
                if self
                    .write(day, second, who, Op::Delete { target, private })
                    .is_none()
                {
                    return false;
                }
                let list = if journal {
                    &mut self.people[who].journals
                } else {
                    &mut self.people[who].appreciations
                };
                list[i].deleted = true;
                self.deleted.insert(target);
                true
            }
            Want::Appreciate => {
                let text = text::appreciation(&mut self.rng);
                let Some(item) = self.write(day, second, who, Op::Appreciation { text }) else {
                    return false;
                };
                self.people[who].appreciations.push(Own {
                    item,
                    ..Own::default()
                });
                true
            }
            Want::OpenCheckIn => {
                let c = self.checkin(who);
                let Some(item) = self.write(day, second, who, Op::OpenCheckIn(c)) else {
                    return false;
                };
                self.reflectable[partner].push(Reflectable {
                    item,
                    from: self.seen_from(day),
                });
                true
            }
            Want::SealCheckIn => {
                let x = Exchange::Day(day);
                let second_seal = self
                    .blind
                    .get(&x)
                    .is_some_and(|b| b.sealed[partner].is_some());
                if !fits(self, if second_seal { 4 } else { 2 }) {
                    return false;
                }
                let checkin = self.checkin(who);
                let guess = self.guess(partner);
                let item = self.emit(day, second, who, Op::SealCheckIn { checkin, guess });
                self.sealed(x, who, item, day);
                true
            }
            Want::Ask => {
                let kinds = [
                    ExerciseKind::PerspectiveSwap,
                    ExerciseKind::EmpathyMap,
                    ExerciseKind::EmotionNaming,
                    ExerciseKind::HighLow,
                    ExerciseKind::Question,
                ];
                let kind = *self.rng.pick(&kinds);
                let prompt = attune_core::exercises::default_prompt(kind, day as usize);
                let Some(item) = self.write(day, second, who, Op::Ask { kind, prompt }) else {
                    return false;
                };
                let mut opens = [day; 2];
                opens[partner] = self.seen_from(day);
                self.blind.insert(
                    Exchange::Exercise(item),
                    Blind {
                        asked_day: day,
                        opens,
                        ..Blind::default()
                    },
                );
                true
            }
            Want::Answer => {
                let Some((x, second_seal)) = self
                    .blind
                    .iter()
                    .find(|(k, b)| {
                        matches!(k, Exchange::Exercise(_))
                            && b.sealed[who].is_none()
                            && b.opens[who] <= day
                    })
                    .map(|(k, b)| (*k, b.sealed[partner].is_some()))
                else {
                    return false;
                };
                let Exchange::Exercise(exercise) = x else {
                    return false;
                };
                if !fits(self, if second_seal { 4 } else { 2 }) {
                    return false;
                }
                let text = text::answer(&mut self.rng);
                let item = self.emit(day, second, who, Op::Answer { exercise, text });
                self.sealed(x, who, item, day);
                true
            }
            Want::Mark => {
                let Some(x) = self
                    .blind
                    .iter()
                    .rev()
                    .find(|(k, b)| {
                        !b.marked[who]
                            && b.readable.is_some_and(|d| d <= day)
                            // Exercises are marked often, a day's check-in now and then.
                            && (matches!(k, Exchange::Exercise(_)) || b.asked_day % 9 == 0)
                    })
                    .map(|(k, _)| *k)
                else {
                    return false;
                };
                let accurate = self.rng.chance(0.7);
                let note = self.rng.chance(0.4).then(|| text::mark_note(&mut self.rng));
                let op = Op::Mark {
                    exchange: x,
                    accurate,
                    note,
                };
                if self.write(day, second, who, op).is_none() {
                    return false;
                }
                if let Some(b) = self.blind.get_mut(&x) {
                    b.marked[who] = true;
                }
                true
            }
            Want::Reflect => {
                // The partner's revealed check-in, or a recent item of theirs.
                let revealed = self
                    .blind
                    .range(..Exchange::Exercise(0))
                    .rev()
                    .take(20)
                    .find(|(_, b)| {
                        !b.reflected[who]
                            && b.readable.is_some_and(|d| d <= day)
                            && b.sealed[partner].is_some()
                    })
                    .map(|(k, b)| (*k, b.sealed[partner]));
                let root = match revealed {
                    Some((x, Some(sealed))) if self.rng.chance(0.3) => {
                        if let Some(b) = self.blind.get_mut(&x) {
                            b.reflected[who] = true;
                        }
                        Some(sealed)
                    }
                    _ => self.reflectable_item(who, day),
                };
                let Some(root) = root else {
                    return false;
                };
                self.reflect(day, second, who, root)
            }
            Want::ReReflect => {
                let Some(i) = self.again[who].iter().position(|x| x.from <= day) else {
                    return false;
                };
                let root = self.again[who][i].item;
                if self.deleted.contains(&root) || !fits(self, 1) {
                    return false;
                }
                self.again[who].remove(i);
                self.reflect(day, second, who, root)
            }
            Want::Respond => {
                let Some(i) = self.pending[who].iter().position(|x| x.from <= day) else {
                    return false;
                };
                if !fits(self, 1) {
                    return false;
                }
                let p = self.pending[who].remove(i);
                let op = if self.rng.chance(0.65) {
                    Op::Confirm {
                        reflection: p.reflection,
                    }
                } else {
                    Op::Correct {
                        reflection: p.reflection,
                        text: text::correction(&mut self.rng),
                    }
                };
                let corrected = matches!(op, Op::Correct { .. });
                self.write(day, second, who, op);
                if corrected {
                    self.again[partner].push(Reflectable {
                        item: p.root,
                        from: self.seen_from(day),
                    });
                }
                true
            }
            Want::Timeout => {
                if self.people[who]
                    .pause
                    .is_some_and(|(d, _, until)| d == day && second < until)
                {
                    return false;
                }
                let minutes = *self.rng.pick(&[10u32, 15, 20, 30, 45, 60]);
                let text = self.rng.chance(0.5).then(|| text::timeout(&mut self.rng));
                if self
                    .write(day, second, who, Op::Timeout { minutes, text })
                    .is_none()
                {
                    return false;
                }
                self.people[who].pause = Some((day, second, second + minutes * 60));
                true
            }
            Want::Resume(since) => {
                // Only inside one's own pause, and only if it is the latest one in
                // force (`attune resume` refuses otherwise).
                let active = self.people[who].pause.is_some_and(|(d, start, until)| {
                    d == day && start == since && since < second && second < until
                });
                let partner_later = self.people[partner]
                    .pause
                    .is_some_and(|(d, start, until)| d == day && start >= since && second < until);
                if !active || partner_later || self.write(day, second, who, Op::Resume).is_none() {
                    return false;
                }
                self.people[who].pause = None;
                true
            }
        }
    }

    /// Emits a one-envelope step if it fits.
    fn write(&mut self, day: u32, second: u32, who: usize, op: Op) -> Option<Handle> {
        if self.left() < op.envelopes() {
            return None;
        }
        self.emit(day, second, who, op)
    }

    fn reflect(&mut self, day: u32, second: u32, who: usize, root: Handle) -> bool {
        let text = text::reflection(&mut self.rng);
        let Some(reflection) = self.write(day, second, who, Op::Reflect { root, text }) else {
            return false;
        };
        self.reflected.insert(root);
        self.pending[1 - who].push(Pending {
            reflection,
            root,
            from: self.seen_from(day),
        });
        true
    }

    /// A recent item of the partner, received by now, not deleted, not yet reflected on.
    fn reflectable_item(&mut self, who: usize, day: u32) -> Option<Handle> {
        let list = &mut self.reflectable[who];
        // Only the last few weeks matter; drop the rest as it ages.
        if list.len() > 64 {
            list.drain(..list.len() - 64);
        }
        let i = list.iter().rposition(|x| {
            x.from <= day && !self.deleted.contains(&x.item) && !self.reflected.contains(&x.item)
        })?;
        Some(list.remove(i).item)
    }

    /// A recent own journal (or appreciation) that is not deleted.
    fn recent_own(&mut self, who: usize, journal: bool) -> Option<usize> {
        let list = if journal {
            &self.people[who].journals
        } else {
            &self.people[who].appreciations
        };
        let live: Vec<usize> = (list.len().saturating_sub(10)..list.len())
            .filter(|&i| !list[i].deleted)
            .collect();
        if live.is_empty() {
            return None;
        }
        Some(*self.rng.pick(&live))
    }

    fn sealed(&mut self, x: Exchange, who: usize, item: Option<Handle>, day: u32) {
        let b = self.blind.entry(x).or_insert_with(|| Blind {
            asked_day: day,
            opens: [day; 2],
            ..Blind::default()
        });
        b.sealed[who] = item;
        if b.sealed[1 - who].is_some() {
            self.awaiting_reveal.push(x);
            // Released by the relay (held reveals): not envelopes of the space.
            self.plan.reveals += 2;
            *self.plan.by_kind.entry(REVEAL).or_default() += 2;
            for w in [ALEX, SAM] {
                *self.plan.by_who[w].entry(REVEAL).or_default() += 1;
            }
        }
    }

    /// Forgets exchanges nobody will act on any more: an exercise left
    /// unanswered for two weeks; anything else a month after the full sync that
    /// could reveal it.
    fn forget_old(&mut self, day: u32) {
        let horizon = 30 + self.sync_every + self.contact_every;
        self.blind.retain(|k, b| {
            let age = day.saturating_sub(b.asked_day);
            match k {
                Exchange::Exercise(_) if b.sealed.iter().any(Option::is_none) => age <= 14,
                _ => age <= horizon,
            }
        });
    }

    fn checkin(&mut self, who: usize) -> CheckIn {
        let r = &mut self.rng;
        let mood = (self.people[who].baseline + r.between(-2, 2)).clamp(1, 10) as u8;
        let quadrant = match mood {
            7.. => [Quadrant::PleasantHigh, Quadrant::PleasantLow],
            5..=6 => [Quadrant::PleasantLow, Quadrant::UnpleasantLow],
            _ => [Quadrant::UnpleasantHigh, Quadrant::UnpleasantLow],
        };
        let n = 1 + r.below(3);
        let mut feelings: Vec<String> = Vec::new();
        for _ in 0..n {
            let q = *r.pick(&quadrant);
            let words = EMOTIONS
                .iter()
                .find(|(k, _)| *k == q)
                .map(|(_, w)| *w)
                .unwrap_or(&[]);
            if let Some(w) = (!words.is_empty()).then(|| r.pick(words)) {
                if !feelings.iter().any(|f| f == w) {
                    feelings.push((*w).to_string());
                }
            }
        }
        let needs = [
            Need::Listen,
            Need::Support,
            Need::Suggestions,
            Need::Space,
            Need::Distraction,
        ];
        let c = CheckIn {
            mood,
            feelings: feelings.clone(),
            high: r.chance(0.7).then(|| text::high(r)),
            low: r.chance(0.6).then(|| text::low(r)),
            appreciate: r.chance(0.3).then(|| text::appreciation(r)),
            need: r.chance(0.5).then(|| *r.pick(&needs)),
        };
        self.people[who].today = Some((mood, feelings));
        c
    }

    /// A guess of the partner's day: near their mood if they have checked in
    /// already (people read each other), else near their usual.
    fn guess(&mut self, partner: usize) -> Option<Guess> {
        let r = &mut self.rng;
        if !r.chance(0.7) {
            return None;
        }
        let p = &self.people[partner];
        let (mood, feelings) = p
            .today
            .clone()
            .unwrap_or((p.baseline.clamp(1, 10) as u8, Vec::new()));
        let guessed = (i64::from(mood) + r.between(-2, 2)).clamp(1, 10) as u8;
        let mut words: Vec<String> = feelings.into_iter().filter(|_| r.chance(0.5)).collect();
        if words.is_empty() || r.chance(0.3) {
            let all: Vec<&str> = attune_core::vocab::all_words().collect();
            let w = r.pick(&all).to_string();
            if !words.contains(&w) {
                words.push(w);
            }
        }
        Some(Guess {
            mood: Some(guessed),
            feelings: words,
        })
    }
}

/// `target` more items by one partner alone, each one envelope, in order: what
/// one writes while the other is away (journals, private notes, edits and
/// deletes of them, appreciations, open check-ins, exercises asked, pauses).
/// Targets of edits and deletes are handles of journals in this same list.
pub fn solo(target: usize, seed: u64) -> Vec<(Op, Option<Handle>)> {
    let mut r = Rng::new(seed);
    let mut out: Vec<(Op, Option<Handle>)> = Vec::with_capacity(target);
    let mut journals: Vec<(Handle, bool)> = Vec::new();
    let mut deleted: HashSet<Handle> = HashSet::new();
    let mut person = Person {
        baseline: 6,
        ..Person::default()
    };
    while out.len() < target {
        let h = out.len();
        let live: Vec<(Handle, bool)> = journals
            .iter()
            .rev()
            .take(10)
            .filter(|(j, _)| !deleted.contains(j))
            .copied()
            .collect();
        let op = match r.below(100) {
            0..=39 => Op::Journal {
                text: text::journal(&mut r),
                private: false,
            },
            40..=49 => Op::Journal {
                text: text::private_note(&mut r),
                private: true,
            },
            50..=64 => Op::Appreciation {
                text: text::appreciation(&mut r),
            },
            65..=74 if !live.is_empty() => {
                let (t, private) = *r.pick(&live);
                Op::Edit {
                    target: t,
                    text: text::journal(&mut r),
                    private,
                }
            }
            75..=77 if !live.is_empty() => {
                let (t, private) = *r.pick(&live);
                deleted.insert(t);
                Op::Delete { target: t, private }
            }
            78..=89 => {
                person.baseline = (person.baseline + r.between(-1, 1)).clamp(3, 9);
                Op::OpenCheckIn(open_checkin(&mut r, &person))
            }
            90..=95 => {
                let kind = *r.pick(&[
                    ExerciseKind::PerspectiveSwap,
                    ExerciseKind::EmpathyMap,
                    ExerciseKind::EmotionNaming,
                    ExerciseKind::HighLow,
                    ExerciseKind::Question,
                ]);
                Op::Ask {
                    kind,
                    prompt: attune_core::exercises::default_prompt(kind, h),
                }
            }
            96..=99 if out.len() + 2 <= target => {
                // A pause, ended early by the next item.
                out.push((
                    Op::Timeout {
                        minutes: 20,
                        text: Some(text::timeout(&mut r)),
                    },
                    Some(h),
                ));
                Op::Resume
            }
            _ => Op::Journal {
                text: text::journal(&mut r),
                private: false,
            },
        };
        let h = out.len();
        if let Op::Journal { private, .. } = op {
            journals.push((h, private));
        }
        out.push((op, Some(h)));
    }
    out
}

/// An open check-in near `p`'s usual mood.
fn open_checkin(r: &mut Rng, p: &Person) -> CheckIn {
    let mood = (p.baseline + r.between(-2, 2)).clamp(1, 10) as u8;
    let words: Vec<&str> = attune_core::vocab::all_words().collect();
    CheckIn {
        mood,
        feelings: vec![r.pick(&words).to_string()],
        high: r.chance(0.5).then(|| text::high(r)),
        low: r.chance(0.5).then(|| text::low(r)),
        appreciate: None,
        need: None,
    }
}

/// The answer a sealed check-in step seals, once its date is known.
pub fn checkin_answer(day: &str, checkin: &CheckIn, guess: &Option<Guess>) -> Answer {
    Answer::CheckIn {
        day: day.to_string(),
        checkin: checkin.clone(),
        guess: guess.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_plan_has_exactly_the_envelopes_asked_for() {
        for n in [1, 2, 3, 7, 200, 5_000] {
            let p = plan(n, 3, 7, 1);
            let written: usize = p.steps.iter().map(|s| s.op.envelopes()).sum();
            assert_eq!(written, n, "n = {n}");
            assert_eq!(p.envelopes, n);
        }
    }

    #[test]
    fn the_mix_is_realistic() {
        // Weekly syncs and daily contact, and the sparse ones of a long history.
        for p in [plan(20_000, 1, 7, 1), plan(30_000, 2, 60, 8)] {
            mix_is_realistic(&p);
        }
    }

    fn mix_is_realistic(p: &Plan) {
        let k = |name: &str| p.by_kind.get(name).copied().unwrap_or(0);
        // Sealed check-ins most days, by both.
        let days = p.days as usize;
        assert!(k("check-in (sealed)") > days * 3 / 2, "{:?}", p.by_kind);
        for kind in [
            "journal",
            "journal (private)",
            "edit",
            "delete",
            "appreciation",
            "check-in (open)",
            "exercise",
            "exercise answer (sealed)",
            "mark",
            "reflect",
            "confirm",
            "correct",
            "timeout",
            "resume",
            REVEAL,
        ] {
            assert!(k(kind) > 0, "no {kind} in {:?}", p.by_kind);
        }
        // A sealed answer is one envelope (protocol 2): two check-ins and a
        // few more items a day.
        let per_day = p.envelopes as f64 / days as f64;
        assert!((6.0..20.0).contains(&per_day), "{per_day} per day");
        // Most exercises both answered get marked, now and then a check-in.
        assert!(k("mark") * 3 > k("exercise"), "{:?}", p.by_kind);
    }

    /// Replays a plan's sends and receives (and the reveals full syncs write)
    /// and checks that every step reacts only to what its device had received.
    fn replay(p: &Plan) {
        #[derive(Default)]
        struct Device {
            unsent: Vec<Handle>,
            received: HashSet<Handle>,
            reveals: HashSet<(Exchange, usize)>,
        }
        let mut relay: HashSet<Handle> = HashSet::new();
        let mut relay_reveals: HashSet<(Exchange, usize)> = HashSet::new();
        let mut dev = [Device::default(), Device::default()];
        let mut author: BTreeMap<Handle, usize> = BTreeMap::new();
        // Sealed answers: handle -> exchange, and exchange -> sealed by whom.
        let mut exchange_of: BTreeMap<Handle, Exchange> = BTreeMap::new();
        let mut seals: BTreeMap<Exchange, [Option<Handle>; 2]> = BTreeMap::new();
        let mut last = (0, 0);
        for s in &p.steps {
            assert!((s.day, s.second) >= last, "{s:?} after {last:?}");
            last = (s.day, s.second);
            let w = s.who;
            let has = |dev: &[Device; 2], h: &Handle| {
                author.get(h) == Some(&w) || dev[w].received.contains(h)
            };
            let readable = |dev: &[Device; 2], x: &Exchange| {
                dev[w].reveals.contains(&(*x, 1 - w)) && relay_reveals.contains(&(*x, w))
            };
            match &s.op {
                Op::Edit { target, .. } | Op::Delete { target, .. } => {
                    assert_eq!(author.get(target), Some(&w), "{s:?}: not one's own item")
                }
                Op::Answer { exercise, .. } => assert!(has(&dev, exercise), "{s:?}"),
                Op::Reflect { root, .. } => {
                    assert!(
                        has(&dev, root),
                        "{s:?}: reflects on what it has not received"
                    );
                    assert_ne!(
                        author.get(root),
                        Some(&w),
                        "{s:?}: reflects on its own item"
                    );
                    if let Some(x) = exchange_of.get(root) {
                        assert!(readable(&dev, x), "{s:?}: reflects on a sealed answer");
                    }
                }
                Op::Confirm { reflection } | Op::Correct { reflection, .. } => {
                    assert!(has(&dev, reflection), "{s:?}");
                    assert_ne!(author.get(reflection), Some(&w), "{s:?}");
                }
                Op::Mark { exchange, .. } => {
                    assert!(
                        readable(&dev, exchange),
                        "{s:?}: marks an unrevealed answer"
                    )
                }
                _ => {}
            }
            match &s.op {
                Op::Push => relay.extend(dev[w].unsent.drain(..)),
                Op::Pull => {
                    dev[w].received = relay.clone();
                    dev[w].reveals = relay_reveals.clone();
                }
                Op::Sync => {
                    relay.extend(dev[w].unsent.drain(..));
                    dev[w].received = relay.clone();
                    // Reveal every exchange both sealed that this device sees.
                    for (x, sealed) in &seals {
                        if let (Some(mine), Some(theirs)) = (sealed[w], sealed[1 - w]) {
                            if author.get(&mine) == Some(&w) && dev[w].received.contains(&theirs) {
                                relay_reveals.insert((*x, w));
                            }
                        }
                    }
                    dev[w].reveals = relay_reveals.clone();
                }
                _ => {}
            }
            if let Some(h) = s.item {
                author.insert(h, w);
                dev[w].unsent.push(h);
                let x = match &s.op {
                    Op::SealCheckIn { .. } => Some(Exchange::Day(s.day)),
                    Op::Answer { exercise, .. } => Some(Exchange::Exercise(*exercise)),
                    _ => None,
                };
                if let Some(x) = x {
                    exchange_of.insert(h, x);
                    let e = seals.entry(x).or_default();
                    assert!(e[w].is_none(), "{s:?}: a second answer to one exchange");
                    e[w] = Some(h);
                }
            }
        }
        assert_eq!(p.steps.last().map(|s| &s.op), Some(&Op::Sync));
        // Everything was delivered, and the reveals are the ones counted.
        assert_eq!(relay.len(), p.handles);
        assert_eq!(relay_reveals.len(), p.reveals);
        for d in &dev {
            assert!(d.unsent.is_empty());
            assert_eq!(d.received, relay);
            assert_eq!(d.reveals, relay_reveals);
        }
    }

    #[test]
    fn steps_react_only_to_what_the_device_received() {
        for (n, seed, sync_every, contact_every) in [
            (3_000, 5, 3, 1),
            (3_000, 6, 7, 1),
            (6_000, 7, 20, 4),
            (6_000, 8, 9, 3),
        ] {
            replay(&plan(n, seed, sync_every, contact_every));
        }
    }

    #[test]
    fn a_solo_run_has_the_items_asked_for_and_refers_only_backwards() {
        for n in [1, 2, 10_000] {
            let ops = solo(n, 4);
            assert_eq!(ops.len(), n);
            for (i, (op, h)) in ops.iter().enumerate() {
                assert_eq!(*h, Some(i));
                assert_eq!(op.envelopes(), 1);
                if let Op::Edit { target, .. } | Op::Delete { target, .. } = op {
                    assert!(*target < i);
                    assert!(matches!(ops[*target].0, Op::Journal { .. }));
                }
                if *op == Op::Resume {
                    assert!(matches!(ops[i - 1].0, Op::Timeout { .. }));
                }
            }
        }
    }

    #[test]
    fn the_same_seed_plans_the_same_history() {
        assert_eq!(plan(2_000, 9, 5, 2).steps, plan(2_000, 9, 5, 2).steps);
        assert_ne!(plan(2_000, 9, 5, 2).steps, plan(2_000, 10, 5, 2).steps);
    }
}
