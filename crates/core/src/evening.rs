//! The evening exchange: how two sealed check-ins become one exchange without
//! calendars (PRACTICES.md). A check-in answers the partner's check-in exchange
//! still open (opened less than `JOIN_WINDOW_MS` ago, not answered by this
//! member); otherwise it opens a new one, named after itself. Two check-ins
//! opened before either saw the other pair in the earlier one: the later
//! opener's device moves its answer there at its next sync.

use crate::entry::Entry;
use crate::error::ClientError;
use crate::item::{Answer, Body};
use crate::practice::{Exchange, Practice, JOIN_WINDOW_MS};
use crate::profile::Profile;

/// Where a new sealed check-in goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Answer the partner's open exchange (its id).
    Join(String),
    /// Open a new exchange.
    Open,
}

/// The partner's newest check-in exchange still open for this member's answer.
pub fn target(practice: &Practice, now_ms: i64) -> Target {
    practice
        .exchanges
        .iter()
        .filter(|x| x.joinable(now_ms) && x.mine.is_none() && x.theirs.is_some())
        .max_by_key(|x| (x.started_at, x.id.clone()))
        .map_or(Target::Open, |x| Target::Join(x.id.clone()))
}

/// The order two crossed exchanges pair in: the earlier one wins, ties by id.
fn earlier(a: &Exchange, b: &Exchange) -> bool {
    (a.started_at, &a.id) < (b.started_at, &b.id)
}

/// This member's open exchanges that crossed an earlier one of the partner's
/// (neither partner had seen the other's): (own exchange, the one to move to).
pub fn crossed(practice: &Practice) -> Vec<(String, String)> {
    let open = |mine: bool| {
        practice.exchanges.iter().filter(move |x| {
            x.is_checkin()
                && x.moved_to.is_none()
                && x.opened_by_me == Some(mine)
                && if mine {
                    x.theirs.is_none()
                } else {
                    x.mine.is_none()
                }
        })
    };
    let mut out = Vec::new();
    for own in open(true) {
        let winner = open(false)
            .filter(|theirs| {
                (own.started_at - theirs.started_at).abs() < JOIN_WINDOW_MS && earlier(theirs, own)
            })
            .min_by(|a, b| (a.started_at, &a.id).cmp(&(b.started_at, &b.id)));
        if let Some(w) = winner {
            out.push((own.id.clone(), w.id.clone()));
        }
    }
    out
}

/// The entries in view that are this member's readable answer in `exchange`.
fn own_answer(practice: &Practice, exchange: &str) -> Option<Answer> {
    practice
        .exchange(exchange)
        .and_then(|x| x.mine.as_ref())
        .and_then(|s| s.answer.clone())
}

impl Profile {
    /// The exchanges whose reveals the relay released after `cursor` and that
    /// are now open here (both answers readable), oldest first.
    pub fn opened_after(&self, cursor: u64) -> Result<Vec<Exchange>, ClientError> {
        let released = self.db.released_after(cursor)?;
        if released.is_empty() {
            return Ok(vec![]);
        }
        let view = self.view_around(&released, false)?;
        // A new device's first sync releases every exchange of the history.
        let released: std::collections::HashSet<&str> =
            released.iter().map(String::as_str).collect();
        let mut out: Vec<Exchange> = view
            .practice
            .exchanges
            .into_iter()
            .filter(|x| {
                // Version 1 reveals are filed by exchange, version 2 by answer.
                let named = released.contains(x.id.as_str())
                    || [&x.mine, &x.theirs]
                        .into_iter()
                        .flatten()
                        .any(|s| released.contains(s.entry.to_hex().as_str()));
                named && x.their_answer().is_some()
            })
            .collect();
        out.sort_by_key(|x| x.started_at);
        Ok(out)
    }

    /// Moves this member's check-ins from exchanges that crossed the partner's
    /// into the partner's (the same answer, sealed again there). Returns how
    /// many moved.
    pub fn move_crossed(&mut self, crossed: &[(String, String)]) -> Result<usize, ClientError> {
        if crossed.is_empty() {
            return Ok(0);
        }
        let seeds: Vec<String> = crossed.iter().map(|(own, _)| own.clone()).collect();
        let view = self.view_around(&seeds, false)?;
        let mut moved = 0;
        for (own, winner) in crossed.iter().cloned() {
            let Some(answer) = own_answer(&view.practice, &own) else {
                continue;
            };
            self.seal_into(Some(&winner), &answer, Some(own))?;
            moved += 1;
        }
        Ok(moved)
    }
}

/// Whether an entry is a sealed check-in this member could still answer.
pub fn waits_for_me(e: &Entry, practice: &Practice, now_ms: i64) -> bool {
    match &e.item.body {
        Body::Sealed { exercise, .. } => practice
            .exchange(exercise)
            .is_some_and(|x| !e.mine && x.mine.is_none() && x.joinable(now_ms)),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn x(id: &str, at: i64, opened_by_me: Option<bool>, mine: bool, theirs: bool) -> Exchange {
        use crate::practice::Side;
        use attune_proto::{DeviceId, EntryId, SealedAnswer};
        let side = || Side {
            entry: EntryId([0; 16]),
            author: DeviceId([0; 32]),
            at,
            sealed: SealedAnswer {
                commitment: [0; 32],
                nonce: [0; 24],
                ciphertext: vec![0; 16],
            },
            answer: None,
            revealed: false,
        };
        Exchange {
            id: id.into(),
            started_at: at,
            opened_by_me,
            mine: mine.then(side),
            theirs: theirs.then(side),
            ..Exchange::default()
        }
    }

    const H: i64 = 60 * 60 * 1000;

    #[test]
    fn a_check_in_answers_the_partners_open_exchange_within_the_window() {
        let now = 100 * H;
        let p = Practice {
            exchanges: vec![x("aa", now - 17 * H, Some(false), false, true)],
            ..Practice::default()
        };
        assert_eq!(target(&p, now), Target::Join("aa".into()));
        // Past the window it is unanswered, and a new exchange opens.
        assert_eq!(target(&p, now + 4 * H), Target::Open);
        assert!(p.exchanges[0].unanswered(now + 4 * H));
        // Already answered, or one's own: open a new one.
        let p = Practice {
            exchanges: vec![
                x("aa", now - H, Some(false), true, true),
                x("bb", now - H, Some(true), true, false),
            ],
            ..Practice::default()
        };
        assert_eq!(target(&p, now), Target::Open);
    }

    #[test]
    fn crossed_exchanges_pair_in_the_earlier_one_for_both() {
        let now = 100 * H;
        // Mine opened later: I move. Seen from the partner's side, nothing moves.
        let me = Practice {
            exchanges: vec![
                x("mine", now - H, Some(true), true, false),
                x("theirs", now - 2 * H, Some(false), false, true),
            ],
            ..Practice::default()
        };
        assert_eq!(crossed(&me), vec![("mine".into(), "theirs".into())]);
        let them = Practice {
            exchanges: vec![
                x("mine", now - H, Some(false), false, true),
                x("theirs", now - 2 * H, Some(true), true, false),
            ],
            ..Practice::default()
        };
        assert!(crossed(&them).is_empty());
        // The same time: the lower id wins, for both.
        let tie = Practice {
            exchanges: vec![
                x("b", now, Some(true), true, false),
                x("a", now, Some(false), false, true),
            ],
            ..Practice::default()
        };
        assert_eq!(crossed(&tie), vec![("b".into(), "a".into())]);
        // A day apart: no crossing, two separate evenings.
        let apart = Practice {
            exchanges: vec![
                x("mine", now, Some(true), true, false),
                x("theirs", now - 21 * H, Some(false), false, true),
            ],
            ..Practice::default()
        };
        assert!(crossed(&apart).is_empty());
    }
}
