//! How items look: feed lines, JSON, Markdown. Practice-aware: a sealed answer
//! shows its content only where it is readable (one's own, or the partner's once
//! both have sealed and the partner's key has been revealed and verified).

use serde_json::{json, Value};

use crate::style::Style;
use crate::words::agree;
use attune_core::item::{Answer, Body, CheckIn, DeviceChange};
use attune_core::practice::{accuracy, Accuracy, Exchange, Practice, Response};
use attune_core::profile::now_ms;
use attune_core::profile::Entry;

/// Items the timeline shows (key material, folded edits and shared settings are
/// not items to read).
pub fn visible(e: &Entry) -> bool {
    !matches!(
        e.item.body,
        Body::AnswerKey { .. }
            | Body::Reveal { .. }
            | Body::Edit { .. }
            | Body::Delete { .. }
            | Body::Challenge { .. }
    )
}

pub fn when(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| {
            t.with_timezone(&chrono::Local)
                .format("%Y-%m-%d %H:%M")
                .to_string()
        })
        .unwrap_or_else(|| "?".into())
}

/// The exchange a sealed entry belongs to, and whether it is a day's check-in.
///
/// The exchange is returned only if this entry is the answer that counts: a later
/// answer by the same member is refused (answers cannot change once sealed) and
/// shows nothing. Exchanges without an exercise item are day check-ins.
fn sealed_context<'a>(e: &Entry, p: &'a Practice) -> (Option<&'a Exchange>, bool) {
    let Body::Sealed { exercise, .. } = &e.item.body else {
        return (None, false);
    };
    let Some(x) = p.exchange(exercise) else {
        return (None, false);
    };
    let side = if e.mine { &x.mine } else { &x.theirs };
    let counts = side.as_ref().is_some_and(|s| s.entry == e.id);
    (counts.then_some(x), x.exercise.is_none())
}

/// True for a sealed answer that was refused because one already counted.
fn refused(e: &Entry, p: &Practice) -> bool {
    matches!(&e.item.body, Body::Sealed { exercise, .. } if p.exchange(exercise).is_some())
        && sealed_context(e, p).0.is_none()
}

/// The readable answer of a sealed entry, with the other side's answer when visible.
fn readable<'a>(e: &Entry, x: &'a Exchange) -> (Option<&'a Answer>, Option<&'a Answer>) {
    let (mine, theirs) = (
        x.mine.as_ref().and_then(|s| s.answer.as_ref()),
        x.their_answer(),
    );
    if e.mine {
        (mine, theirs)
    } else {
        (theirs, mine)
    }
}

fn guess_accuracy(this: Option<&Answer>, other: Option<&Answer>) -> Option<Accuracy> {
    match (this, other) {
        (
            Some(Answer::CheckIn {
                guess: Some(guess), ..
            }),
            Some(Answer::CheckIn { checkin, .. }),
        ) => Some(accuracy(guess, checkin)),
        _ => None,
    }
}

pub fn entry_json(e: &Entry, p: &Practice) -> Value {
    let mut v = json!({
        "id": e.id.to_hex(),
        "author": if e.mine { "me" } else { "partner" },
        "device": e.author.to_hex(),
        "at": e.item.at,
        "kind": e.item.body.kind(),
        "private": e.private,
        "pending": e.pending,
        "edited": e.edited,
        "deleted": e.deleted,
    });
    if e.deleted {
        return v;
    }
    if let Some(t) = p.threads.iter().find(|t| t.root == e.id.to_hex()) {
        v["thread"] = thread_json(t);
    }
    match &e.item.body {
        Body::CheckIn(c) => v["checkin"] = json!(c),
        Body::Journal { text } | Body::Appreciation { text } => v["text"] = json!(text),
        Body::Device {
            change,
            device,
            name,
        } => {
            v["change"] = json!(change);
            v["device"] = json!(device);
            v["name"] = json!(name);
        }
        Body::Sealed { exercise, .. } => {
            let (x, is_checkin) = sealed_context(e, p);
            v["kind"] = json!(if is_checkin { "checkin" } else { "answer" });
            v["sealed"] = json!(true);
            v["exchange"] = json!(exercise);
            if refused(e, p) {
                v["refused"] = json!(true);
                v["revealed"] = json!(false);
            }
            if let Some(x) = x {
                let (this, other) = readable(e, x);
                v["revealed"] = json!(x.both_sealed() && x.their_answer().is_some());
                match this {
                    Some(Answer::CheckIn {
                        checkin,
                        guess,
                        day,
                    }) => {
                        v["checkin"] = json!(checkin);
                        v["day"] = json!(day);
                        if let Some(g) = guess {
                            v["guess"] = json!(g);
                        }
                    }
                    Some(Answer::Exercise { text }) => v["text"] = json!(text),
                    Some(Answer::Union(u)) => {
                        v["text"] = json!(u.as_text());
                        v["union"] = json!(u);
                    }
                    None => {}
                }
                if let Some(acc) = guess_accuracy(this, other) {
                    v["accuracy"] = json!(acc);
                }
                if let Some((kind, prompt)) = &x.exercise {
                    v["exercise"] = json!({ "kind": kind, "prompt": prompt });
                }
            }
        }
        Body::Exercise {
            exercise_kind,
            prompt,
        } => {
            v["exercise"] = json!({ "kind": exercise_kind, "prompt": prompt });
            if let Some(x) = p.exchange(&e.id.to_hex()) {
                v["answered_by_me"] = json!(x.mine.is_some());
                v["answered_by_partner"] = json!(x.theirs.is_some());
            }
        }
        Body::Mark {
            exercise,
            accurate,
            note,
        } => {
            v["exchange"] = json!(exercise);
            v["accurate"] = json!(accurate);
            v["note"] = json!(note);
            if p.ignored_marks.contains(&e.id) {
                v["ignored"] = json!(true);
            }
        }
        Body::Reflect { target, text } => {
            v["target"] = json!(target);
            v["text"] = json!(text);
            let round = p
                .threads
                .iter()
                .flat_map(|t| t.rounds.iter())
                .find(|r| r.id == e.id);
            v["response"] = match round.and_then(|r| r.response.as_ref()) {
                Some(Response::Confirmed { .. }) => json!("confirmed"),
                Some(Response::Corrected { .. }) => json!("corrected"),
                None => Value::Null,
            };
        }
        Body::Confirm { target } => v["target"] = json!(target),
        Body::Correct { target, text } => {
            v["target"] = json!(target);
            v["text"] = json!(text);
        }
        Body::Timeout { minutes, text } => {
            v["minutes"] = json!(minutes);
            v["until"] = json!(e
                .item
                .at
                .saturating_add(i64::from(*minutes).saturating_mul(60_000)));
            v["text"] = json!(text);
        }
        _ => {}
    }
    v
}

fn checkin_text(c: &CheckIn, s: &Style) -> String {
    let mut parts = vec![format!("mood {}/10", c.mood)];
    if !c.feelings.is_empty() {
        parts.push(s.text(&c.feelings.join(", ")));
    }
    if let Some(h) = &c.high {
        parts.push(format!("high: {}", s.text(h)));
    }
    if let Some(l) = &c.low {
        parts.push(format!("low: {}", s.text(l)));
    }
    if let Some(a) = &c.appreciate {
        parts.push(format!("appreciates: {}", s.text(a)));
    }
    if let Some(n) = c.need {
        parts.push(format!("needs {}", n.describe()));
    }
    parts.join(" · ")
}

fn accuracy_text(acc: &Accuracy, whose: &str) -> String {
    let mut parts = vec![];
    if let Some(err) = acc.mood_error {
        parts.push(match err {
            0 => "mood exactly right".to_string(),
            n => format!("mood off by {n}"),
        });
    }
    if acc.feelings_guessed > 0 {
        // Out of the feelings the guessed one named; "stats" counts out of guesses.
        let whom = if whose == "your" { "their" } else { "your" };
        parts.push(format!(
            "named {} of {whom} {} feelings",
            acc.feelings_hit, acc.feelings_actual
        ));
    }
    format!("{whose} guess: {}", parts.join(", "))
}

pub fn describe_entry(e: &Entry, p: &Practice, s: &Style, partner: &str) -> String {
    let who = if e.mine {
        s.me("you")
    } else {
        s.partner(partner)
    };
    let mut flags = String::new();
    if e.private {
        flags.push_str(" (private)");
    }
    if e.pending {
        flags.push_str(" (not sent yet)");
    }
    if e.edited {
        flags.push_str(" (edited)");
    }
    let (label, text) = if e.deleted {
        (e.item.body.kind().to_string(), s.dim("[deleted]"))
    } else {
        match &e.item.body {
            Body::CheckIn(c) => (
                "checkin".into(),
                format!("checked in · {}", checkin_text(c, s)),
            ),
            Body::Journal { text } => ("journal".into(), s.text(text)),
            Body::Appreciation { text } => (agree("appreciate", e.mine), s.text(text)),
            Body::Sealed { .. } => describe_sealed(e, p, s, partner),
            Body::Exercise {
                exercise_kind,
                prompt,
            } => {
                let id = e.id.to_hex();
                let answered = p
                    .exchange(&id)
                    .map(|x| (x.mine.is_some(), x.theirs.is_some()));
                let next = match answered {
                    Some((true, true)) => "both answered".to_string(),
                    Some((true, false)) => format!("you answered; waiting for {partner}"),
                    _ => format!("answer with `attune answer {}`", &id[..8]),
                };
                (
                    "exercise".into(),
                    format!(
                        "{}: {} — {next}",
                        attune_core::exercises::title(*exercise_kind),
                        s.text(prompt),
                    ),
                )
            }
            Body::Mark { accurate, note, .. } => (
                "mark".into(),
                format!(
                    "marked the answer {}{}",
                    if *accurate {
                        "accurate"
                    } else {
                        "not quite right"
                    },
                    note.as_ref()
                        .map(|n| format!(": {}", s.text(n)))
                        .unwrap_or_default()
                ) + &if p.ignored_marks.contains(&e.id) {
                    s.dim(" [ignored: only a first mark of an answer counts]")
                } else {
                    String::new()
                },
            ),
            Body::Reflect { text, .. } => {
                let round = p
                    .threads
                    .iter()
                    .flat_map(|t| t.rounds.iter())
                    .find(|r| r.id == e.id);
                let state = match round.and_then(|r| r.response.as_ref()) {
                    Some(Response::Confirmed { .. }) => s.dim(" [confirmed]"),
                    Some(Response::Corrected { .. }) => s.dim(" [corrected]"),
                    None => s.dim(" [waiting for an answer]"),
                };
                (
                    agree("reflect", e.mine),
                    format!("what I hear: {}{state}", s.text(text)),
                )
            }
            Body::Confirm { .. } => (agree("confirm", e.mine), "yes, that is what I meant".into()),
            Body::Correct { text, .. } => (
                agree("correct", e.mine),
                format!("not quite: {}", s.text(text)),
            ),
            Body::Timeout { minutes, text } => (
                "pause".into(),
                format!(
                    "asked for a {minutes}-minute pause{}",
                    text.as_ref()
                        .map(|t| format!(": {}", s.text(t)))
                        .unwrap_or_default()
                ),
            ),
            Body::Resume => ("resume".into(), "back from the pause".into()),
            Body::Device { change, name, .. } => (
                "device".into(),
                format!(
                    "{}{}",
                    change.describe(),
                    if name.is_empty() || matches!(change, DeviceChange::Recovery) {
                        String::new()
                    } else {
                        format!(" '{}'", s.text(name))
                    }
                ),
            ),
            _ => (e.item.body.kind().into(), String::new()),
        }
    };
    format!(
        "{}  {} {}{}  {}  {}",
        s.dim(&when(e.item.at)),
        who,
        label,
        s.dim(&flags),
        text,
        s.dim(&e.id.to_hex()[..8])
    )
}

/// One line for an exchange that just opened: the partner's answer, and how
/// close this member's guess was.
pub fn opened_line(x: &Exchange, partner: &str, s: &Style) -> String {
    let mine = x.mine.as_ref().and_then(|m| m.answer.as_ref());
    let theirs = x.their_answer();
    match theirs {
        Some(Answer::CheckIn { checkin, .. }) => {
            let mut line = format!("{partner}'s check-in is open: {}", checkin_text(checkin, s));
            if let Some(acc) = guess_accuracy(mine, theirs) {
                line.push_str(&format!(" — {}", accuracy_text(&acc, "your")));
            }
            line
        }
        Some(Answer::Exercise { text }) => {
            let prompt = x
                .exercise
                .as_ref()
                .map(|(_, p)| format!(" to \"{}\"", s.text(p)))
                .unwrap_or_default();
            format!("{partner}'s answer{prompt} is open: {}", s.text(text))
        }
        Some(Answer::Union(u)) => {
            format!(
                "{partner}'s state of the union is open: {}",
                s.text(&u.as_text())
            )
        }
        None => format!("{partner}'s answer is open"),
    }
}

fn describe_sealed(e: &Entry, p: &Practice, s: &Style, partner: &str) -> (String, String) {
    let (x, is_checkin) = sealed_context(e, p);
    let label = if is_checkin { "checkin" } else { "answer" }.to_string();
    if refused(e, p) {
        return (
            label,
            s.bad("[refused: a second answer cannot replace one already sealed]"),
        );
    }
    let Some(x) = x else {
        return (label, s.dim("sealed"));
    };
    let (this, other) = readable(e, x);
    let body = match this {
        Some(Answer::CheckIn { checkin, guess, .. }) => {
            let mut t = checkin_text(checkin, s);
            if let Some(g) = guess {
                let mut gp = vec![];
                if let Some(m) = g.mood {
                    gp.push(format!("mood {m}"));
                }
                if !g.feelings.is_empty() {
                    gp.push(s.text(&g.feelings.join(", ")));
                }
                if !gp.is_empty() {
                    t.push_str(&format!(" · guessed {}", gp.join(", ")));
                }
            }
            t
        }
        Some(Answer::Exercise { text }) => s.text(text),
        Some(Answer::Union(u)) => s.text(&u.as_text()),
        None => String::new(),
    };
    let state = if x.both_sealed() && x.their_answer().is_some() {
        match guess_accuracy(this, other) {
            Some(acc) => s.dim(&format!(
                " [revealed · {}]",
                accuracy_text(&acc, if e.mine { "your" } else { "their" })
            )),
            None => s.dim(" [revealed]"),
        }
    } else if x.moved_to.is_some() {
        s.dim(" [moved: paired with the check-in made at the same time]")
    } else if is_checkin && x.unanswered(now_ms()) {
        if e.mine {
            s.dim(&format!(
                " [unanswered: {partner} did not check in that evening]"
            ))
        } else {
            s.dim(" [unanswered: you did not check in that evening; it stays sealed]")
        }
    } else if e.mine && is_checkin {
        s.dim(&format!(" [sealed until {partner}'s next check-in]"))
    } else if e.mine {
        s.dim(&format!(" [sealed until {partner} answers too]"))
    } else if x.mine.is_some() {
        s.dim(" [sealed: opens when the relay releases both answers; `attune sync`]")
    } else if is_checkin {
        s.dim(" [sealed: your check-in opens it]")
    } else {
        s.dim(&format!(
            " [sealed: answer with `attune answer {}` to see it]",
            &x.id[..8]
        ))
    };
    let text = if body.is_empty() {
        state
    } else {
        format!("{body}{state}")
    };
    (label, text)
}

/// The rounds of a reflect-back loop, one line each, for the feed.
pub fn thread_lines(t: &attune_core::practice::Thread, s: &Style, partner: &str) -> Vec<String> {
    let mut out = vec![];
    for r in &t.rounds {
        let (who, other) = if r.by_me {
            (s.me("you"), s.partner(partner))
        } else {
            (s.partner(partner), s.me("you"))
        };
        out.push(format!(
            "↳ {who} reflected: {}  {}",
            s.text(&r.text),
            s.dim(&r.id.to_hex()[..8])
        ));
        match &r.response {
            Some(Response::Confirmed { .. }) => {
                out.push(format!("  ↳ {other} confirmed: that is it"))
            }
            Some(Response::Corrected { text, .. }) => {
                out.push(format!("  ↳ {other} corrected: {}", s.text(text)))
            }
            None => out.push(s.dim("  ↳ waiting for a confirmation or a correction")),
        }
    }
    if t.confirmed() {
        out.push(s.dim(&format!(
            "  heard{}",
            if t.rounds.len() == 1 {
                " on the first try"
            } else {
                ""
            }
        )));
    }
    out
}

/// A loop's rounds as JSON, attached to the item it is about.
pub fn thread_json(t: &attune_core::practice::Thread) -> Value {
    json!(t
        .rounds
        .iter()
        .map(|r| json!({
            "id": r.id.to_hex(),
            "by": if r.by_me { "me" } else { "partner" },
            "text": r.text,
            "response": match &r.response {
                Some(Response::Confirmed { .. }) => json!({ "confirmed": true }),
                Some(Response::Corrected { text, .. }) => json!({ "corrected": text }),
                None => Value::Null,
            },
        }))
        .collect::<Vec<_>>())
}
