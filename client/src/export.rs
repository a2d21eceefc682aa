//! `attune export --format markdown`: what a person keeps, in words. Check-ins
//! (with one's guesses and how close they were), journal entries (private ones
//! labelled), exercises with both answers and their marks, reflections with how
//! they were answered, pauses and appreciations — and none of the records that
//! only make the practices work (keys, reveals, edits, tombstones, settings),
//! nor the feed's hints of what to type next.
//!
//! Every body is quoted (`> ` on every line), so nothing in it can pass for a
//! heading; untrusted text is escaped (`inert::markdown_inline`,
//! `inert::markdown_block`).

use attune_core::exercises;
use attune_core::inert;
use attune_core::item::{Answer, Body, CheckIn, Guess};
use attune_core::practice::{accuracy, Exchange, Practice, Response};
use attune_core::profile::{Entry, View};

use crate::render::when;

/// The document, and how many items it holds.
#[derive(Debug)]
pub struct Markdown {
    pub text: String,
    pub items: usize,
}

/// Names as they are written into the document (escaped for Markdown).
struct Names {
    me: String,
    partner: String,
}

impl Names {
    fn of(&self, mine: bool) -> &str {
        if mine {
            &self.me
        } else {
            &self.partner
        }
    }
}

fn checkin_lines(c: &CheckIn) -> Vec<String> {
    let mut lines = vec![format!("- mood: {}/10", c.mood)];
    if !c.feelings.is_empty() {
        lines.push(format!(
            "- feelings: {}",
            inert::markdown_inline(&c.feelings.join(", "))
        ));
    }
    for (label, v) in [
        ("high", &c.high),
        ("low", &c.low),
        ("appreciates", &c.appreciate),
    ] {
        if let Some(v) = v {
            lines.push(format!("- {label}: {}", inert::markdown_inline(v)));
        }
    }
    if let Some(n) = c.need {
        lines.push(format!("- needs: {}", n.describe()));
    }
    lines
}

fn guess_lines(guess: &Guess, of: &str, actual: Option<&CheckIn>) -> Vec<String> {
    let mut said = vec![];
    if let Some(m) = guess.mood {
        said.push(format!("mood {m}"));
    }
    if !guess.feelings.is_empty() {
        said.push(inert::markdown_inline(&guess.feelings.join(", ")));
    }
    if said.is_empty() {
        return vec![];
    }
    let mut lines = vec![format!("- guessed {of}: {}", said.join(", "))];
    if let Some(actual) = actual {
        let acc = accuracy(guess, actual);
        let mut close = vec![];
        match acc.mood_error {
            Some(0) => close.push("mood exactly right".to_string()),
            Some(n) => close.push(format!("mood off by {n}")),
            None => {}
        }
        if acc.feelings_guessed > 0 {
            close.push(format!(
                "named {} of {} feelings",
                acc.feelings_hit, acc.feelings_actual
            ));
        }
        if !close.is_empty() {
            lines.push(format!("- how close: {}", close.join(", ")));
        }
    }
    lines
}

/// The exchange a sealed entry counts in (a refused second answer counts in none).
fn exchange_of<'a>(e: &Entry, p: &'a Practice) -> Option<&'a Exchange> {
    let Body::Sealed { exercise, .. } = &e.item.body else {
        return None;
    };
    let x = p.exchange(exercise)?;
    let side = if e.mine { &x.mine } else { &x.theirs };
    side.as_ref().is_some_and(|s| s.entry == e.id).then_some(x)
}

/// The readable answer of each side of an exchange: (mine, theirs).
fn answers(x: &Exchange) -> (Option<&Answer>, Option<&Answer>) {
    (
        x.mine.as_ref().and_then(|s| s.answer.as_ref()),
        x.their_answer(),
    )
}

fn checkin_of(a: Option<&Answer>) -> Option<&CheckIn> {
    match a {
        Some(Answer::CheckIn { checkin, .. }) => Some(checkin),
        _ => None,
    }
}

/// A sealed check-in: its content when readable here, the author's guess of the
/// other and how close it was when the other's check-in is readable too.
fn sealed_checkin(e: &Entry, x: &Exchange, names: &Names) -> Vec<String> {
    let (mine, theirs) = answers(x);
    let (this, other) = if e.mine {
        (mine, theirs)
    } else {
        (theirs, mine)
    };
    let unanswered = x.unanswered(attune_core::profile::now_ms());
    let Some(Answer::CheckIn { checkin, guess, .. }) = this else {
        return vec![if unanswered {
            "_sealed; unanswered that evening, so it was never opened_".into()
        } else {
            "_sealed; it was not opened_".into()
        }];
    };
    let mut lines = checkin_lines(checkin);
    if let Some(g) = guess {
        lines.extend(guess_lines(g, names.of(!e.mine), checkin_of(other)));
    }
    if unanswered {
        lines.push(format!(
            "- unanswered: {} did not check in that evening",
            names.of(!e.mine)
        ));
    }
    lines
}

fn exercise(e: &Entry, prompt: &str, p: &Practice, names: &Names) -> Vec<String> {
    let mut lines = vec![inert::markdown_block(prompt), String::new()];
    let Some(x) = p.exchange(&e.id.to_hex()) else {
        return lines;
    };
    let (mine, theirs) = answers(x);
    for (by_me, side, answer) in [(true, &x.mine, mine), (false, &x.theirs, theirs)] {
        let who = names.of(by_me);
        lines.push(match (side, answer) {
            (_, Some(Answer::Exercise { text })) => {
                format!("- {who} answered: {}", inert::markdown_block(text))
            }
            (_, Some(Answer::Union(u))) => {
                format!("- {who} answered: {}", inert::markdown_block(&u.as_text()))
            }
            (Some(_), _) => format!("- {who} answered; the answer was not opened"),
            (None, _) => format!("- {who} did not answer"),
        });
    }
    for (by_me, accurate, note) in &x.marks {
        lines.push(format!(
            "- {} marked {}'s answer {}{}",
            names.of(*by_me),
            names.of(!*by_me),
            if *accurate {
                "accurate"
            } else {
                "not quite right"
            },
            note.as_ref()
                .map(|n| format!(": {}", inert::markdown_inline(n)))
                .unwrap_or_default()
        ));
    }
    lines
}

/// What a reflection is about, in words: "Alex's journal entry of 2026-03-03 21:00".
fn about(target: &str, view: &View, names: &Names) -> String {
    let Some(t) = view.entries.iter().find(|t| t.id.to_hex() == target) else {
        return "an earlier item".into();
    };
    let what = match &t.item.body {
        Body::Journal { .. } => "journal entry",
        Body::CheckIn(_) | Body::Sealed { .. } => "check-in",
        Body::Correct { .. } => "correction",
        _ => "item",
    };
    format!("{}'s {what} of {}", names.of(t.mine), when(t.item.at))
}

fn reflection(e: &Entry, target: &str, text: &str, view: &View, names: &Names) -> Vec<String> {
    let mut lines = vec![
        format!("On {}:", about(target, view, names)),
        String::new(),
        inert::markdown_block(text),
        String::new(),
    ];
    let response = view
        .practice
        .threads
        .iter()
        .flat_map(|t| t.rounds.iter())
        .find(|r| r.id == e.id)
        .and_then(|r| r.response.as_ref());
    let other = names.of(!e.mine);
    lines.push(match response {
        Some(Response::Confirmed { .. }) => format!("- {other} confirmed: that is it"),
        Some(Response::Corrected { text, .. }) => {
            format!("- {other} corrected: {}", inert::markdown_block(text))
        }
        None => format!("- {other} has not answered it"),
    });
    lines
}

/// One entry as a section (heading label, body lines), or `None` for what is
/// not kept as an item of its own.
fn section(e: &Entry, view: &View, names: &Names) -> Option<(String, Vec<String>)> {
    let p = &view.practice;
    if e.deleted {
        return Some((e.item.body.kind().into(), vec!["_deleted_".into()]));
    }
    Some(match &e.item.body {
        Body::CheckIn(c) => ("check-in".into(), checkin_lines(c)),
        Body::Sealed { .. } => {
            // Answers to an exercise are shown with it; a refused one not at all.
            let x = exchange_of(e, p)?;
            if x.exercise.is_some() {
                return None;
            }
            ("check-in".into(), sealed_checkin(e, x, names))
        }
        Body::Journal { text } => ("journal".into(), vec![inert::markdown_block(text)]),
        Body::Exercise {
            exercise_kind,
            prompt,
        } => (
            format!("exercise, {}", exercises::title(*exercise_kind)),
            exercise(e, prompt, p, names),
        ),
        Body::Reflect { target, text } => (
            "reflection".into(),
            reflection(e, target, text, view, names),
        ),
        Body::Timeout { minutes, text } => (
            "pause".into(),
            vec![format!(
                "asked for a {minutes}-minute pause{}",
                text.as_ref()
                    .map(|t| format!(": {}", inert::markdown_inline(t)))
                    .unwrap_or_default()
            )],
        ),
        Body::Resume => ("pause".into(), vec!["came back from the pause".into()]),
        Body::Appreciation { text } => ("appreciation".into(), vec![inert::markdown_block(text)]),
        Body::Device { change, name, .. } => (
            "devices".into(),
            vec![if name.is_empty() {
                change.describe().to_string()
            } else {
                format!("{} ({})", change.describe(), inert::markdown_inline(name))
            }],
        ),
        // Folded into the items they belong to, or records of the practices.
        Body::Mark { .. }
        | Body::Confirm { .. }
        | Body::Correct { .. }
        | Body::AnswerKey { .. }
        | Body::Reveal { .. }
        | Body::Edit { .. }
        | Body::Delete { .. }
        | Body::Challenge { .. } => return None,
    })
}

/// The export of everything readable in `view`, oldest first.
pub fn markdown(view: &View, me: &str, partner: &str) -> Markdown {
    let names = Names {
        me: inert::markdown_inline(me),
        partner: inert::markdown_inline(partner),
    };
    let mut entries: Vec<&Entry> = view.entries.iter().collect();
    entries.sort_by_key(|e| (e.item.at, e.cursor.unwrap_or(u64::MAX)));
    let mut text = format!("# attune: {} and {}\n\n", names.me, names.partner);
    let mut items = 0;
    for e in entries {
        let Some((label, body)) = section(e, view, &names) else {
            continue;
        };
        let mut flags = String::new();
        if e.private {
            flags.push_str(" (private)");
        }
        if e.edited {
            flags.push_str(" (edited)");
        }
        let quoted = body
            .join("\n")
            .lines()
            .map(|l| {
                if l.is_empty() {
                    ">".to_string()
                } else {
                    format!("> {l}")
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        text.push_str(&format!(
            "## {} — {}: {label}{flags}\n\n{quoted}\n\n",
            when(e.item.at),
            names.of(e.mine),
        ));
        items += 1;
    }
    Markdown { text, items }
}
