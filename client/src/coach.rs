//! What the coach says at the terminal. The engine's `coach` decides; this
//! only words it and asks. Said on standard error, once per draft.

use std::io::{BufRead, IsTerminal, Write};

use attune_core::coach::Tone;
use attune_core::profile::{ClientError, Profile};

/// How long a heated draft is held when the writer takes the offer.
pub const COOL_OFF: &str = "30m";

/// What the writer chose after the note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    /// Send it as it is (the default: the coach never stands in the way).
    Send,
    /// Keep it on this device for the cool-off (journal entries).
    Hold,
    /// Not now: nothing is written (answers, reflections, corrections).
    Drop,
}

/// Whether the draft can wait on this device (`--send-after`), or only be
/// sent or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Draft {
    Journal,
    Other,
}

/// The note for a heated draft, or `None`.
pub fn note(tone: &Tone, partner: &str, draft: Draft) -> Option<String> {
    let s = tone.suggestion()?;
    let offer = match draft {
        Draft::Journal => format!(
            "To let it cool off first: `attune journal --send-after {COOL_OFF}` keeps it on\n\
             \x20 this device for {COOL_OFF} (`attune withdraw ID` cancels it)."
        ),
        Draft::Other => "It may read better after a pause and a second look.".to_string(),
    };
    Some(format!(
        "coach: this sounds like it was written in the heat of the moment ({because}).\n\
         \x20 Underneath it you may be feeling {feeling}. {partner} may hear it better as\n\
         \x20 \"I feel … when … ; what I need is …\".\n\
         \x20 {offer}\n\
         \x20 (Checked on this device: nothing about this was sent anywhere. \
         `attune config coach off` turns these notes off.)",
        because = s.because,
        feeling = s.feeling,
    ))
}

/// Checks a draft the partner will read, once: prints the note if it sounds
/// heated and, at a terminal, asks once what to do (Enter sends).
pub fn review(p: &Profile, text: &str, partner: &str, draft: Draft) -> Result<Choice, ClientError> {
    if !p.coach_on()? {
        return Ok(Choice::Send);
    }
    let tone = attune_core::coach::check(text);
    let Some(note) = note(&tone, partner, draft) else {
        return Ok(Choice::Send);
    };
    eprintln!("{note}");
    Ok(ask(draft))
}

fn ask(draft: Draft) -> Choice {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return Choice::Send;
    }
    let (question, other, choice) = match draft {
        Draft::Journal => (
            format!("Send it now? [Enter: send · h: hold it {COOL_OFF}] "),
            "h",
            Choice::Hold,
        ),
        Draft::Other => (
            "Send it now? [Enter: send · n: not now, nothing is sent] ".to_string(),
            "n",
            Choice::Drop,
        ),
    };
    eprint!("{question}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return Choice::Send;
    }
    if line.trim().eq_ignore_ascii_case(other) {
        choice
    } else {
        Choice::Send
    }
}

/// For a choice of `Drop`: the error that says nothing was written.
pub fn dropped(what: &str) -> ClientError {
    ClientError::Input(format!(
        "not sent: nothing was written; write your {what} again when you are ready"
    ))
}
