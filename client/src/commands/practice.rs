//! The practice commands: sealed check-ins with guesses, blind exercises, marks,
//! the reflect-back loop, pauses and appreciations.

use std::path::Path;

use serde_json::json;

use crate::args::CheckinArgs;
use crate::common::{
    json_text, paired, partner_name, print_opened, report_problems, send, try_sync, writing,
};
use crate::editor::Draft;
use crate::prompts::{
    checkin_is_interactive, nonempty, parse_mood, prompt, read_checkin, read_text_with,
};
use crate::render::when;
use crate::style::Style;
use attune_core::evening::{self, Target};
use attune_core::exercises;
use attune_core::inert;
use attune_core::item::{Answer, Body, CheckIn, ExerciseKind, Guess, UnionAnswer};
use attune_core::practice::{day_of, JOIN_WINDOW_MS};
use attune_core::profile::{now_ms, ClientError, Problem};
use attune_core::query::{Author, FeedKind, FeedQuery};
use attune_core::vocab;

fn read_guess(args: &CheckinArgs, partner: &str) -> Result<Option<Guess>, ClientError> {
    if checkin_is_interactive(args) {
        return ask_guess(partner);
    }
    let mood = args
        .guess_mood
        .as_deref()
        .map(parse_mood)
        .transpose()
        .map_err(|_| {
            ClientError::Input("--guess-mood must be a whole number from 1 to 10".into())
        })?;
    let feelings = match &args.guess_feel {
        Some(f) => vocab::parse_feelings(f).map_err(ClientError::Input)?,
        None => vec![],
    };
    Ok((mood.is_some() || !feelings.is_empty()).then_some(Guess { mood, feelings }))
}

/// The guess asked at the terminal: an answer that cannot be read is asked
/// again (with what was wrong), so the check-in typed before it is never lost.
fn ask_guess(partner: &str) -> Result<Option<Guess>, ClientError> {
    eprintln!("Before you see {partner}'s check-in: how do you think {partner} is today?");
    let mood = loop {
        let answer = prompt(&format!("{partner}'s mood, 1-10 (Enter to skip): "))?;
        if answer.is_empty() {
            break None;
        }
        match parse_mood(&answer) {
            Ok(m) => break Some(m),
            Err(e) => eprintln!("{e}"),
        }
    };
    let feelings = loop {
        let answer = prompt(&format!(
            "{partner}'s feelings, two or three words (Enter to skip): "
        ))?;
        match vocab::parse_feelings(&answer) {
            Ok(f) => break f,
            Err(e) => eprintln!("{e}"),
        }
    };
    Ok((mood.is_some() || !feelings.is_empty()).then_some(Guess { mood, feelings }))
}

/// This member's last few check-ins, oldest first, for the prompts' history
/// (none if they cannot be read: the history is a convenience).
fn recent_checkins(p: &attune_core::profile::Profile) -> Vec<CheckIn> {
    let query = FeedQuery {
        from: Some(Author::Me),
        kinds: vec![FeedKind::CheckIn],
        newest: Some(10),
        ..FeedQuery::default()
    };
    let Ok(feed) = p.feed(&query) else {
        return vec![];
    };
    feed.items
        .iter()
        .filter(|e| !e.deleted)
        .filter_map(|e| match &e.item.body {
            Body::CheckIn(c) => Some(c.clone()),
            Body::Sealed { exercise, .. } => feed
                .view
                .practice
                .exchange(exercise)
                .and_then(|x| x.mine.as_ref())
                .filter(|side| side.entry == e.id)
                .and_then(|side| match &side.answer {
                    Some(Answer::CheckIn { checkin, .. }) => Some(checkin.clone()),
                    _ => None,
                }),
            _ => None,
        })
        .collect()
}

/// `attune checkin`: syncs first, so it answers the partner's check-in still
/// open (or opens a new exchange), seals (with an optional guess of the
/// partner) or shares at once with `--open`, then syncs again: if the partner
/// had checked in, both open now.
pub async fn checkin(home: &Path, args: CheckinArgs) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let partner = partner_name(&p);
    if args.open && (args.guess_mood.is_some() || args.guess_feel.is_some()) {
        return Err(ClientError::Input(
            "an open check-in carries no guess: leave out --open to guess".into(),
        ));
    }
    let known = p.known_problems()?;
    let online = try_sync(&mut p).await.is_some();
    let now = now_ms();
    let view = p.view_recent(now.saturating_sub(2 * JOIN_WINDOW_MS))?;
    if !args.again {
        if let Some(at) = own_checkin_today(&view, now) {
            return Err(ClientError::Input(format!(
                "you already checked in today (at {}); a sealed check-in cannot be changed. `attune checkin --again` adds another",
                when(at)
            )));
        }
    }
    let target = evening::target(&view.practice, now);
    let recent = if checkin_is_interactive(&args) {
        recent_checkins(&p)
    } else {
        vec![]
    };
    let checkin = read_checkin(&args, &recent)?;
    let day = day_of(now);
    let id = match (&target, args.open) {
        (Target::Open, true) => {
            let id = p.write(Body::CheckIn(checkin), false)?;
            outln!("checked in, shared now ({})", id.to_hex());
            id
        }
        (Target::Join(exchange), open) => {
            let guess = if open {
                None
            } else {
                read_guess(&args, &partner)?
            };
            let id = p.seal_answer(
                exchange,
                &Answer::CheckIn {
                    day: day.clone(),
                    checkin,
                    guess,
                },
            )?;
            outln!(
                "checked in ({}); it answers {partner}'s check-in, so both open now",
                id.to_hex()
            );
            id
        }
        (Target::Open, false) => {
            let guess = read_guess(&args, &partner)?;
            let id = p.open_exchange(&Answer::CheckIn {
                day: day.clone(),
                checkin,
                guess,
            })?;
            outln!(
                "checked in, sealed until {partner}'s next check-in ({})",
                id.to_hex()
            );
            id
        }
    };
    let _ = id;
    if online {
        if let Some(report) = try_sync(&mut p).await {
            print_opened(&report, &partner);
            return Ok(report_new_problems(&report, &known));
        }
    }
    Ok(0)
}

/// Reports the integrity problems a command's sync found that were not known
/// before it (those are `sync`'s and `feed`'s to tell).
fn report_new_problems(report: &attune_core::sync::SyncReport, known: &[Problem]) -> i32 {
    let new: Vec<Problem> = report
        .problems
        .iter()
        .filter(|p| {
            !known
                .iter()
                .any(|k| k.kind == p.kind && k.detail == p.detail)
        })
        .cloned()
        .collect();
    report_problems(&new)
}

/// When this member last checked in today (local time), if they did.
fn own_checkin_today(view: &attune_core::profile::View, now: i64) -> Option<i64> {
    let today = day_of(now);
    view.entries
        .iter()
        .filter(|e| e.mine && !e.deleted && day_of(e.item.at) == today)
        .filter(|e| match &e.item.body {
            Body::CheckIn(_) => true,
            Body::Sealed { exercise, .. } => view.practice.exchange(exercise).is_some_and(|x| {
                x.is_checkin() && x.mine.as_ref().is_some_and(|s| s.entry == e.id)
            }),
            _ => false,
        })
        .map(|e| e.item.at)
        .max()
}

pub async fn ask(
    home: &Path,
    kind: ExerciseKind,
    prompt_text: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = writing(home).await?;
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
    send(&mut p).await;
    Ok(0)
}

/// `attune answer`: syncs first (to see whether the partner answered), seals,
/// then syncs again: if the partner had answered, both open now.
pub async fn answer(home: &Path, id: &str, message: Option<String>) -> Result<i32, ClientError> {
    let mut p = paired(home)?;
    let known = p.known_problems()?;
    try_sync(&mut p).await;
    let attune_core::query::Found { entry, view } = p.find(id)?;
    let e = &entry;
    let Body::Exercise {
        prompt,
        exercise_kind,
    } = &e.item.body
    else {
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
    // The partner may have written the prompt: the editor's context is inert.
    let draft = Draft::with_context(format!(
        "{}: {prompt}\n\nYour answer is sealed: {} sees it only after answering too, and it cannot be changed afterwards.",
        exercises::title(*exercise_kind),
        partner_name(&p)
    ));
    let answer = if *exercise_kind == ExerciseKind::StateOfTheUnion {
        // Three parts, each under its heading (the editor opens with them).
        let draft = Draft {
            initial: UnionAnswer::form(),
            ..draft
        };
        let text = read_text_with(message, "answer", &draft)?;
        let union = UnionAnswer::parse(&text).map_err(|heading| {
            ClientError::Input(format!(
                "a state of the union answer has three parts, each under its heading ({}); '{heading}' has no text. Nothing was sealed",
                UnionAnswer::HEADINGS.join(" ")
            ))
        })?;
        Answer::Union(union)
    } else {
        Answer::Exercise {
            text: read_text_with(message, "answer", &draft)?,
        }
    };
    let said = match &answer {
        Answer::Union(u) => u.as_text(),
        Answer::Exercise { text } => text.clone(),
        _ => String::new(),
    };
    if crate::coach::review(&p, &said, &partner_name(&p), crate::coach::Draft::Other)?
        == crate::coach::Choice::Drop
    {
        return Err(crate::coach::dropped("answer"));
    }
    p.seal_answer(&exercise, &answer)?;
    let partner = partner_name(&p);
    let theirs_sealed = view
        .practice
        .exchange(&exercise)
        .is_some_and(|x| x.theirs.is_some());
    if theirs_sealed {
        outln!("answer sealed; {partner} has answered, so both open now");
    } else {
        outln!("answer sealed; it opens when {partner} has answered too");
    }
    if let Some(report) = try_sync(&mut p).await {
        print_opened(&report, &partner);
        return Ok(report_new_problems(&report, &known));
    }
    Ok(0)
}

pub async fn mark(
    home: &Path,
    id: &str,
    accurate: bool,
    note: Option<String>,
) -> Result<i32, ClientError> {
    let mut p = writing(home).await?;
    let partner = partner_name(&p);
    let attune_core::query::Found { entry: e, view } = p.find(id)?;
    // Only the partner's revealed answer can be marked: did they read you right?
    let exchange = match &e.item.body {
        Body::Sealed { exercise, .. } | Body::Mark { exercise, .. } => Some(exercise.clone()),
        Body::Exercise { .. } => Some(e.id.to_hex()),
        _ => None,
    };
    let x = exchange.as_deref().and_then(|x| view.practice.exchange(x));
    let theirs = x.and_then(|x| x.theirs.as_ref().map(|s| s.entry));
    let instead = match theirs {
        Some(t) => format!(
            ": `attune mark {} accurate` (or `inaccurate`)",
            &t.to_hex()[..8]
        ),
        None => " once they have answered and it is revealed".to_string(),
    };
    let what = match &e.item.body {
        Body::Sealed { .. } if !e.mine => None,
        Body::Sealed { .. } | Body::CheckIn(_) if e.mine => Some(match x {
            Some(x) if x.exercise.is_some() => "that is your own answer",
            _ => "that is your own check-in",
        }),
        Body::Exercise { .. } => Some("that is the exercise itself"),
        Body::Mark { .. } => Some("that is a mark"),
        _ => Some("that is not an answer"),
    };
    if let Some(what) = what {
        return Err(ClientError::Input(format!(
            "{what}; a mark says whether {partner} read you right, so it marks {partner}'s answer{instead}"
        )));
    }
    let Some(x) = x.filter(|_| theirs == Some(e.id)) else {
        return Err(ClientError::Input(format!(
            "that answer of {partner}'s does not count (a second answer to one exchange is refused), so it cannot be marked"
        )));
    };
    if x.their_answer().is_none() {
        return Err(ClientError::Input(format!(
            "{partner}'s answer is not revealed yet: both must answer, then sync"
        )));
    }
    if let Some((_, was, _)) = x.marks.iter().find(|m| m.0) {
        return Err(ClientError::Input(format!(
            "you already marked {partner}'s answer {}; a mark cannot be changed (write to {partner} with `attune journal` to say more)",
            if *was { "accurate" } else { "not quite right" }
        )));
    }
    p.write(
        Body::Mark {
            exercise: x.id.clone(),
            accurate,
            note: nonempty(note),
        },
        false,
    )?;
    outln!(
        "marked {partner}'s answer {}",
        if accurate {
            "accurate"
        } else {
            "not quite right"
        }
    );
    send(&mut p).await;
    Ok(0)
}

pub async fn reflect(
    home: &Path,
    id: &str,
    message: Option<String>,
    starter_only: bool,
) -> Result<i32, ClientError> {
    let mut p = writing(home).await?;
    let attune_core::query::Found { entry, view } = p.find(id)?;
    let e = &entry;
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
    let partner = partner_name(&p);
    // The coach's first sentence, from their words and feelings: a start to
    // put in one's own words, never sent as it is.
    let starter = match &e.item.body {
        Body::CheckIn(c) => attune_core::coach::reflect::starter(
            c.low.as_deref().or(c.high.as_deref()).unwrap_or(""),
            &c.feelings,
        ),
        Body::Journal { text } | Body::Correct { text, .. } => {
            attune_core::coach::reflect::starter(text, &[])
        }
        _ => {
            attune_core::coach::reflect::starter(&crate::words::plain_words(e, &view.practice), &[])
        }
    };
    if starter_only {
        outln!("{}", inert::line(&starter));
        return Ok(0);
    }
    let coach = p.coach_on()?;
    let mut draft = Draft::with_context(format!(
        "In your own words, without advice: what did you hear, and what might {partner} feel?\n\n{partner} wrote:\n{}",
        crate::words::plain_words(e, &view.practice)
    ));
    // Built from the partner's words: made inert like them.
    let starter = inert::line(&starter).into_owned();
    if coach {
        draft.initial = format!("{starter}\n");
    }
    let text = read_text_with(message, "reflection", &draft)?;
    // The starter is a start: left in as it was (alone or beside other
    // words), or with its blank unfilled, it would be the coach talking.
    if coach && (text.contains(starter.trim()) || text.contains(attune_core::coach::reflect::BLANK))
    {
        return Err(ClientError::Input(
            "the coach's starting sentence is still there as it was: put it in your own words or delete it (nothing was sent)".into(),
        ));
    }
    if crate::coach::review(&p, &text, &partner, crate::coach::Draft::Other)?
        == crate::coach::Choice::Drop
    {
        return Err(crate::coach::dropped("reflection"));
    }
    let rid = p.write(Body::Reflect { target: root, text }, false)?;
    outln!(
        "reflected ({}); {} can answer `attune confirm {}` or `attune correct {} -m …`",
        &rid.to_hex()[..8],
        partner_name(&p),
        &rid.to_hex()[..8],
        &rid.to_hex()[..8]
    );
    send(&mut p).await;
    Ok(0)
}

/// `confirm` (no text) or `correct` (text) a reflection on one's own item.
pub async fn respond(
    home: &Path,
    id: &str,
    correct: Option<Option<String>>,
) -> Result<i32, ClientError> {
    let mut p = writing(home).await?;
    let attune_core::query::Found { entry, view } = p.find(id)?;
    let e = &entry;
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
    let correction = match correct {
        None => None,
        Some(message) => {
            let partner = partner_name(&p);
            let said = match &e.item.body {
                Body::Reflect { text, .. } => text.as_str(),
                _ => "",
            };
            let draft = Draft::with_context(format!(
                "What did {partner}'s reflection miss? Say what you meant, kindly.\n\n{partner} reflected:\n{said}"
            ));
            Some(read_text_with(message, "correction", &draft)?)
        }
    };
    let target = e.id.to_hex();
    let confirmed = correction.is_none();
    if let Some(text) = &correction {
        if crate::coach::review(&p, text, &partner_name(&p), crate::coach::Draft::Other)?
            == crate::coach::Choice::Drop
        {
            return Err(crate::coach::dropped("correction"));
        }
    }
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
    send(&mut p).await;
    Ok(0)
}

/// Parses a duration (`20m`, `1h30m`, `90s`, `45` for minutes) into whole
/// minutes, rounded up.
pub fn parse_duration_minutes(s: &str) -> Result<u32, ClientError> {
    let d = crate::timespec::parse_duration(s).map_err(ClientError::Input)?;
    Ok(u32::try_from(crate::timespec::whole_minutes(d)).unwrap_or(u32::MAX))
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
    let mut p = writing(home).await?;
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
    if p.coach_on()? {
        for line in super::insights::PAUSE_HELP {
            outln!("  {line}");
        }
    }
    send(&mut p).await;
    Ok(0)
}

pub async fn resume(home: &Path) -> Result<i32, ClientError> {
    let mut p = writing(home).await?;
    let view = p.view_since(now_ms() - 2 * crate::common::DAY_MS)?;
    match view.practice.active_pause(now_ms()) {
        Some(pause) if pause.by_me => {}
        _ => return Err(ClientError::Input("you have no pause in progress".into())),
    }
    p.write(Body::Resume, false)?;
    outln!("you are back; when you are ready, start by asking what your partner felt");
    send(&mut p).await;
    Ok(0)
}

pub async fn appreciate(home: &Path, text: &str) -> Result<i32, ClientError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(ClientError::Input(
            "say what you appreciate: `attune appreciate \"…\"`".into(),
        ));
    }
    let mut p = writing(home).await?;
    p.write(
        Body::Appreciation {
            text: text.to_string(),
        },
        false,
    )?;
    outln!("added to your gratitude list");
    send(&mut p).await;
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
