//! The next practice, picked from what the verified items show, with the reason
//! in one sentence. Patterns, in the order they are looked at:
//! - repeated timeouts → the repair conversation (a perspective swap);
//! - support flowing one way → the weekly empathy swap;
//! - guesses of each other's mood often off → the evening guessing game and
//!   naming emotions;
//! - a long silence from the partner → an appreciation.

use crate::insights::guess_accuracy;
use crate::profile::View;

/// What the last `days` days show.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Signs {
    pub days: u32,
    /// Timeouts either partner asked for.
    pub pauses: usize,
    pub reflections_by_me: usize,
    pub reflections_by_partner: usize,
    /// Mood guesses (both ways) of revealed check-ins, and how many were off
    /// by more than one point.
    pub guesses: usize,
    pub guesses_off: usize,
    /// Whole days since the partner's last item, if they wrote any.
    pub days_since_partner: Option<i64>,
}

const DAY_MS: i64 = 86_400_000;

/// Reads the signs from a view, up to `now_ms`.
pub fn signs(view: &View, now_ms: i64, days: u32) -> Signs {
    let since = now_ms - i64::from(days) * DAY_MS;
    let since_day = crate::practice::day_of(since);
    let practice = &view.practice;
    let pauses = practice.pauses.iter().filter(|p| p.at >= since).count();
    let (mut by_me, mut by_partner) = (0, 0);
    for t in &practice.threads {
        for r in t.rounds.iter().filter(|r| r.at >= since) {
            if r.by_me {
                by_me += 1;
            } else {
                by_partner += 1;
            }
        }
    }
    let (mut guesses, mut off) = (0, 0);
    for d in guess_accuracy(practice)
        .iter()
        .filter(|d| d.day.as_str() >= since_day.as_str())
    {
        for e in [d.my_mood_error, d.their_mood_error].into_iter().flatten() {
            guesses += 1;
            off += usize::from(e > 1);
        }
    }
    let days_since_partner = view
        .entries
        .iter()
        .filter(|e| !e.mine)
        .map(|e| e.item.at)
        .max()
        .map(|last| (now_ms - last).max(0) / DAY_MS);
    Signs {
        days,
        pauses,
        reflections_by_me: by_me,
        reflections_by_partner: by_partner,
        guesses,
        guesses_off: off,
        days_since_partner,
    }
}

/// Which pattern a pick answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pattern {
    RepeatedPauses,
    OneWaySupport,
    MissedGuesses,
    LongSilence,
}

/// The practice to try next, and why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pick {
    pub pattern: Pattern,
    /// The practice, by name.
    pub practice: &'static str,
    /// The command that starts it.
    pub command: String,
    /// Why, in one sentence.
    pub reason: String,
}

/// Timeouts in the window that make a pattern.
const PAUSES: usize = 3;
/// Reflections in all, and how lopsided, that make support one-way.
const REFLECTIONS: usize = 4;
/// Guesses, and the share of them off by more than a point.
const GUESSES: usize = 4;
/// Days without a word from the partner.
const SILENCE_DAYS: i64 = 4;

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Picks the next practice from `s`, or none when nothing stands out.
pub fn pick(s: &Signs, partner: &str) -> Option<Pick> {
    if s.pauses >= PAUSES {
        return Some(Pick {
            pattern: Pattern::RepeatedPauses,
            practice: "the repair conversation",
            command: "attune ask perspective-swap".into(),
            reason: format!(
                "You two needed {} in the last {} days; when things are calm again, \
                 each writing what the other felt helps you repair together.",
                plural(s.pauses, "timeout", "timeouts"),
                s.days
            ),
        });
    }
    let (mine, theirs) = (s.reflections_by_me, s.reflections_by_partner);
    if mine + theirs >= REFLECTIONS && (mine >= 3 * theirs.max(1) || theirs >= 3 * mine.max(1)) {
        let (giver, taker) = if mine > theirs {
            ("you", partner.to_string())
        } else {
            (partner, "you".to_string())
        };
        return Some(Pick {
            pattern: Pattern::OneWaySupport,
            practice: "the weekly empathy swap",
            command: "attune ask question \"One moment I felt seen this week, and one I missed you\"".into(),
            reason: format!(
                "Listening has gone mostly one way lately ({} by you, {} by {partner}): \
                 a swap where each shares a struggle gives {taker} a turn to listen to {giver} too.",
                plural(mine, "reflection", "reflections"),
                theirs,
            ),
        });
    }
    if s.guesses >= GUESSES && s.guesses_off * 2 >= s.guesses {
        return Some(Pick {
            pattern: Pattern::MissedGuesses,
            practice: "the guessing game and naming emotions",
            command: "attune checkin (guess first), then attune ask emotion-naming".into(),
            reason: format!(
                "{} of your last {} mood guesses were off by more than a point: \
                 guessing each evening, and naming three feelings each, tunes you in.",
                s.guesses_off, s.guesses
            ),
        });
    }
    if s.days_since_partner.is_some_and(|d| d >= SILENCE_DAYS) {
        let days = s.days_since_partner.unwrap_or_default();
        return Some(Pick {
            pattern: Pattern::LongSilence,
            practice: "an appreciation",
            command: "attune appreciate \"…\"".into(),
            reason: format!(
                "Nothing has come from {partner} for {days} days: a few words of \
                 appreciation are an easy way back in."
            ),
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_pick_per_pattern_in_order() {
        let calm = Signs {
            days: 14,
            ..Signs::default()
        };
        assert_eq!(pick(&calm, "Sam"), None);
        let pauses = Signs {
            pauses: 3,
            guesses: 6,
            guesses_off: 6,
            ..calm.clone()
        };
        assert_eq!(
            pick(&pauses, "Sam").map(|p| p.pattern),
            Some(Pattern::RepeatedPauses),
            "pauses come first"
        );
        let one_way = Signs {
            reflections_by_me: 5,
            reflections_by_partner: 1,
            ..calm.clone()
        };
        assert_eq!(
            pick(&one_way, "Sam").map(|p| p.pattern),
            Some(Pattern::OneWaySupport)
        );
        let balanced = Signs {
            reflections_by_me: 3,
            reflections_by_partner: 2,
            ..calm.clone()
        };
        assert_eq!(pick(&balanced, "Sam"), None);
    }
}
