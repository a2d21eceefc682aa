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

/// The note for a heated draft, or `None`. `asking` says whether the writer
/// is asked next what to do (at a terminal); otherwise it is sent as it is.
pub fn note(tone: &Tone, partner: &str, draft: Draft, asking: bool) -> Option<String> {
    let s = tone.suggestion()?;
    let offer = match (draft, asking) {
        (Draft::Journal, true) => {
            format!("It can wait on this device for {COOL_OFF} first, to let it cool off.")
        }
        (Draft::Journal, false) => format!(
            "It is sent as it is; next time `attune journal --send-after {COOL_OFF}` keeps\n\
             \x20 a draft on this device to cool off first (`attune withdraw ID` cancels it)."
        ),
        (Draft::Other, true) => "It may read better after a pause and a second look.".to_string(),
        (Draft::Other, false) => {
            "It is sent as it is; next time it may read better after a pause and a second look."
                .to_string()
        }
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
/// heated and, at a terminal, asks what to do (Enter sends).
pub fn review(p: &Profile, text: &str, partner: &str, draft: Draft) -> Result<Choice, ClientError> {
    // A setting that cannot be read must not stop the writing: the coach is off then.
    if !p.coach_on().unwrap_or(false) {
        return Ok(Choice::Send);
    }
    let tone = attune_core::coach::check(text);
    let asking = std::io::stdin().is_terminal() && std::io::stderr().is_terminal();
    let Some(note) = note(&tone, partner, draft, asking) else {
        return Ok(Choice::Send);
    };
    eprintln!("{note}");
    Ok(if asking { ask(draft) } else { Choice::Send })
}

fn ask(draft: Draft) -> Choice {
    let question = match draft {
        Draft::Journal => format!("Send it now? [Enter or y: send · h or n: hold it {COOL_OFF}] "),
        Draft::Other => {
            "Send it now? [Enter or y: send · n: not now, nothing is sent] ".to_string()
        }
    };
    loop {
        eprint!("{question}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        match std::io::stdin().lock().read_line(&mut line) {
            // End of input: no answer is coming; the coach never stands in the way.
            Ok(0) | Err(_) => {
                eprintln!();
                return Choice::Send;
            }
            Ok(_) => {}
        }
        match choice(draft, &line) {
            Some(c) => return c,
            None => eprintln!(
                "  (answer y or press Enter to send it, or n to {})",
                match draft {
                    Draft::Journal => "hold it",
                    Draft::Other => "not send it",
                }
            ),
        }
    }
}

/// What an answer to "Send it now?" means, or `None` to ask again. "No" never
/// sends: for a journal entry it holds it, for anything else nothing is written.
fn choice(draft: Draft, answer: &str) -> Option<Choice> {
    let not_now = match draft {
        Draft::Journal => Choice::Hold,
        Draft::Other => Choice::Drop,
    };
    match answer.trim().to_lowercase().as_str() {
        "" | "y" | "yes" | "s" | "send" => Some(Choice::Send),
        "n" | "no" | "not now" => Some(not_now),
        "h" | "hold" if draft == Draft::Journal => Some(Choice::Hold),
        _ => None,
    }
}

/// For a choice of `Drop`: the error that says nothing was written.
pub fn dropped(what: &str) -> ClientError {
    ClientError::Input(format!(
        "not sent: nothing was written; write your {what} again when you are ready"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_never_sends_and_unknown_answers_ask_again() {
        for (draft, not_now) in [(Draft::Journal, Choice::Hold), (Draft::Other, Choice::Drop)] {
            for yes in ["", "\n", "y", "Yes", " send "] {
                assert_eq!(choice(draft, yes), Some(Choice::Send), "{yes:?}");
            }
            for no in ["n", "N", "no", "NO\n", "not now"] {
                assert_eq!(choice(draft, no), Some(not_now), "{no:?}");
            }
            for unclear in ["maybe", "x", "nope!", "yy"] {
                assert_eq!(choice(draft, unclear), None, "{unclear:?}");
            }
        }
        assert_eq!(choice(Draft::Journal, "h"), Some(Choice::Hold));
        assert_eq!(
            choice(Draft::Other, "h"),
            None,
            "only a journal entry can be held"
        );
    }
}
