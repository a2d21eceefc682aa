//! The practice commands: sealed check-ins with guesses, blind exercises, marks,
//! the reflect-back loop, pauses and appreciations.

use std::io::IsTerminal;
use std::path::Path;

use serde_json::json;

use crate::cli::{
    find_entry, json_text, nonempty, paired, parse_mood, partner_name, prompt, read_checkin,
    read_text, try_push, CheckinArgs,
};
use crate::exercises;
use crate::inert;
use crate::item::{Answer, Body, ExerciseKind, Guess};
use crate::practice::{day_exercise, day_of};
use crate::profile::{now_ms, ClientError};
use crate::render::when;
use crate::style::Style;
use crate::vocab;

fn read_guess(args: &CheckinArgs, partner: &str) -> Result<Option<Guess>, ClientError> {
    let interactive = args.mood.is_none() && std::io::stdin().is_terminal();
    let (mood, feel) = if interactive {
        eprintln!("Before you see {partner}'s check-in: how do you think {partner} is today?");
        let m = prompt(&format!("{partner}'s mood, 1-10 (Enter to skip): "))?;
        let f = prompt(&format!("{partner}'s feelings (Enter to skip): "))?;
        (nonempty(Some(m)), nonempty(Some(f)))
    } else {
        (args.guess_mood.clone(), args.guess_feel.clone())
    };
    let mood = mood.map(|m| parse_mood(&m)).transpose().map_err(|_| {
        ClientError::Input("--guess-mood must be a whole number from 1 to 10".into())
    })?;
    let feelings = match feel {
        Some(f) => vocab::parse_feelings(&f).map_err(ClientError::Input)?,
        None => vec![],
    };
    Ok((mood.is_some() || !feelings.is_empty()).then_some(Guess { mood, feelings }))
}

/// `attune checkin`: sealed until the partner checks in the same day (with an
/// optional guess of the partner), or `--open` at once.
pub async fn checkin(home: &Path, args: CheckinArgs) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let partner = partner_name(&p);
    if args.open && (args.guess_mood.is_some() || args.guess_feel.is_some()) {
        return Err(ClientError::Input(
            "an open check-in carries no guess: leave out --open to guess".into(),
        ));
    }
    let checkin = read_checkin(&args)?;
    if args.open {
        let id = p.write(Body::CheckIn(checkin), false)?;
        outln!("checked in, shared now ({})", id.to_hex());
        try_push(&mut p).await;
        return Ok(0);
    }
    let day = day_of(now_ms());
    let exercise = day_exercise(&day);
    let view = p.view()?;
    if view
        .practice
        .exchange(&exercise)
        .is_some_and(|x| x.mine.is_some())
    {
        return Err(ClientError::Input(format!(
            "you already checked in today ({day}); a sealed check-in cannot be changed. `attune checkin --open` shares another one at once"
        )));
    }
    let guess = read_guess(&args, &partner)?;
    let id = p.seal_answer(
        &exercise,
        &Answer::CheckIn {
            day: day.clone(),
            checkin,
            guess,
        },
    )?;
    outln!(
        "checked in for {day}, sealed until {partner} checks in today too ({})",
        id.to_hex()
    );
    try_push(&mut p).await;
    Ok(0)
}

pub async fn ask(
    home: &Path,
    kind: ExerciseKind,
    prompt_text: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let day_index = (now_ms() / 86_400_000) as usize;
    let prompt_text =
        nonempty(prompt_text).unwrap_or_else(|| exercises::default_prompt(kind, day_index));
    let id = p.write(
        Body::Exercise {
            exercise_kind: kind,
            prompt: prompt_text.clone(),
        },
        false,
    )?;
    let short = &id.to_hex()[..8];
    outln!("{}: {}", exercises::title(kind), inert::text(&prompt_text));
    outln!("started ({short}); both answer with `attune answer {short}` — answers open when both have answered");
    try_push(&mut p).await;
    Ok(0)
}

pub async fn answer(home: &Path, id: &str, message: Option<String>) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    let Body::Exercise { prompt, .. } = &e.item.body else {
        return Err(ClientError::Input(format!(
            "{id} is not an exercise; `attune feed --kind exercise` lists them"
        )));
    };
    let exercise = e.id.to_hex();
    if view
        .practice
        .exchange(&exercise)
        .is_some_and(|x| x.mine.is_some())
    {
        return Err(ClientError::Input(
            "you already answered this exercise; sealed answers cannot be changed".into(),
        ));
    }
    if message.is_none() && std::io::stdin().is_terminal() {
        // The partner may have written the prompt.
        eprintln!("{}", inert::text(prompt));
    }
    let text = read_text(message, "answer")?;
    p.seal_answer(&exercise, &Answer::Exercise { text })?;
    outln!(
        "answer sealed; it opens when {} has answered too",
        partner_name(&p)
    );
    try_push(&mut p).await;
    Ok(0)
}

pub async fn mark(
    home: &Path,
    id: &str,
    accurate: bool,
    note: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    let exercise = match &e.item.body {
        Body::Exercise { .. } => e.id.to_hex(),
        Body::Sealed { exercise, .. } => exercise.clone(),
        _ => {
            return Err(ClientError::Input(format!(
                "{id} is not an exercise or an answer"
            )))
        }
    };
    if view
        .practice
        .exchange(&exercise)
        .and_then(|x| x.their_answer())
        .is_none()
    {
        return Err(ClientError::Input(
            "your partner's answer is not revealed yet: both must answer, then sync".into(),
        ));
    }
    p.write(
        Body::Mark {
            exercise,
            accurate,
            note: nonempty(note),
        },
        false,
    )?;
    outln!("marked");
    try_push(&mut p).await;
    Ok(0)
}

pub async fn reflect(home: &Path, id: &str, message: Option<String>) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    if e.mine {
        return Err(ClientError::Input(
            "reflect on your partner's items: say back what you heard them say".into(),
        ));
    }
    if !matches!(
        e.item.body,
        Body::Journal { .. } | Body::CheckIn(_) | Body::Sealed { .. } | Body::Correct { .. }
    ) {
        return Err(ClientError::Input(
            "reflect on a journal entry, a check-in or a correction".into(),
        ));
    }
    if let Body::Sealed { exercise, .. } = &e.item.body {
        let readable = view.practice.exchange(exercise).is_some_and(|x| {
            x.theirs.as_ref().is_some_and(|s| s.entry == e.id) && x.their_answer().is_some()
        });
        if !readable {
            return Err(ClientError::Input(
                "you cannot read that yet: it opens when you have answered too and both have synced".into(),
            ));
        }
    }
    // A reflection on a correction continues the loop around the original item.
    let root = match &e.item.body {
        Body::Correct { target, .. } => view
            .practice
            .threads
            .iter()
            .find(|t| t.rounds.iter().any(|r| r.id.to_hex() == *target))
            .map(|t| t.root.clone())
            .unwrap_or_else(|| e.id.to_hex()),
        _ => e.id.to_hex(),
    };
    if message.is_none() && std::io::stdin().is_terminal() {
        eprintln!(
            "In your own words, without advice: what did you hear, and what might they feel?"
        );
    }
    let text = read_text(message, "reflection")?;
    let rid = p.write(Body::Reflect { target: root, text }, false)?;
    outln!(
        "reflected ({}); {} can answer `attune confirm {}` or `attune correct {} -m …`",
        &rid.to_hex()[..8],
        partner_name(&p),
        &rid.to_hex()[..8],
        &rid.to_hex()[..8]
    );
    try_push(&mut p).await;
    Ok(0)
}

/// `confirm` (no text) or `correct` (text) a reflection on one's own item.
pub async fn respond(
    home: &Path,
    id: &str,
    correction: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let view = p.view()?;
    let e = find_entry(&view, id)?;
    if !matches!(e.item.body, Body::Reflect { .. }) || e.mine {
        return Err(ClientError::Input(format!(
            "{id} is not your partner's reflection; `attune feed` shows them"
        )));
    }
    let answered = view
        .practice
        .threads
        .iter()
        .flat_map(|t| t.rounds.iter())
        .any(|r| r.id == e.id && r.response.is_some());
    if answered {
        return Err(ClientError::Input(
            "you already answered this reflection".into(),
        ));
    }
    let target = e.id.to_hex();
    let confirmed = correction.is_none();
    match correction {
        None => p.write(Body::Confirm { target }, false)?,
        Some(text) => p.write(Body::Correct { target, text }, false)?,
    };
    outln!(
        "{}",
        if confirmed {
            "confirmed: you felt heard"
        } else {
            "correction sent; your partner can reflect again"
        }
    );
    try_push(&mut p).await;
    Ok(0)
}

/// Parses `20m`, `1h`, `90s`, `45` (minutes).
pub fn parse_duration_minutes(s: &str) -> Result<u32, ClientError> {
    let s = s.trim().to_lowercase();
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u32 = num
        .parse()
        .map_err(|_| ClientError::Input(format!("'{s}' is not a duration like 20m or 1h")))?;
    let minutes = match unit {
        "" | "m" | "min" | "mins" | "minutes" => n,
        "h" | "hr" | "hours" => n.saturating_mul(60),
        _ => {
            return Err(ClientError::Input(format!(
                "'{s}' is not a duration like 20m or 1h"
            )))
        }
    };
    Ok(minutes)
}

pub async fn timeout(
    home: &Path,
    duration: &str,
    message: Option<String>,
) -> Result<i32, ClientError> {
    let minutes = parse_duration_minutes(duration)?;
    if !(5..=120).contains(&minutes) {
        return Err(ClientError::Input(
            "a pause lasts from 5 to 120 minutes (10 to 30 is usual)".into(),
        ));
    }
    let mut p = paired(home)?;
    p.write(
        Body::Timeout {
            minutes,
            text: nonempty(message),
        },
        false,
    )?;
    outln!(
        "pause of {minutes} minutes asked; {} sees it at their next sync or at once in `attune watch`",
        partner_name(&p)
    );
    try_push(&mut p).await;
    Ok(0)
}

pub async fn resume(home: &Path) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let view = p.view()?;
    match view.practice.active_pause(now_ms()) {
        Some(pause) if pause.by_me => {}
        _ => return Err(ClientError::Input("you have no pause in progress".into())),
    }
    p.write(Body::Resume, false)?;
    outln!("you are back; when you are ready, start by asking what your partner felt");
    try_push(&mut p).await;
    Ok(0)
}

pub async fn appreciate(home: &Path, text: &str) -> Result<i32, ClientError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ClientError::Input(
            "say what you appreciate: `attune appreciate \"…\"`".into(),
        ));
    }
    let mut p = paired(home)?;
    p.write(
        Body::Appreciation {
            text: text.to_string(),
        },
        false,
    )?;
    outln!("added to your gratitude list");
    try_push(&mut p).await;
    Ok(0)
}

pub fn gratitude(home: &Path, json_out: bool) -> Result<i32, ClientError> {
    let p = paired(home)?;
    let view = p.view()?;
    let partner = partner_name(&p);
    if json_out {
        let list: Vec<_> = view
            .practice
            .appreciations
            .iter()
            .map(|(mine, at, text)| json!({ "author": if *mine { "me" } else { "partner" }, "at": at, "text": text }))
            .collect();
        outln!("{}", json_text(&json!({ "appreciations": list })));
        return Ok(0);
    }
    let s = Style::stdout();
    if view.practice.appreciations.is_empty() {
        outln!(
            "{}",
            s.dim("no appreciations yet: `attune appreciate \"…\"`")
        );
    }
    for (mine, at, text) in &view.practice.appreciations {
        let who = if *mine {
            s.me("you")
        } else {
            s.partner(&partner)
        };
        outln!(
            "{}  {who} appreciate{}: {}",
            s.dim(&when(*at)),
            if *mine { "" } else { "s" },
            s.text(text)
        );
    }
    Ok(0)
}
