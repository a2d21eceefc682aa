//! Asking the person at the terminal: answers, check-ins, text in `$EDITOR`,
//! and the keystore passphrase.

use std::io::{BufRead, IsTerminal, Read, Write};

use clap::ValueEnum;
use dialoguer::theme::Theme;
use dialoguer::{BasicHistory, Input};
use zeroize::Zeroizing;

use attune_core::item::{CheckIn, Need};
use attune_core::profile::ClientError;
use attune_core::vocab;

use attune_core::ui::PassphraseSource;

use crate::args::{CheckinArgs, NeedArg};
use crate::editor::Draft;

/// How the passphrase is obtained: `ATTUNE_PASSPHRASE`, else a prompt on a terminal.
pub fn read_passphrase(prompt: &str) -> Result<Zeroizing<String>, ClientError> {
    if let Ok(p) = std::env::var("ATTUNE_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::PassphraseNeeded);
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|_| ClientError::PassphraseNeeded)
}

/// The keystore passphrase from `ATTUNE_PASSPHRASE`, else asked at the terminal,
/// with three tries there.
#[derive(Debug, Default, Clone, Copy)]
pub struct Terminal;

impl PassphraseSource for Terminal {
    fn passphrase(&mut self, attempt: u32) -> Result<Zeroizing<String>, ClientError> {
        if attempt > 1 {
            eprintln!("wrong passphrase; try again");
        }
        read_passphrase("attune passphrase: ")
    }

    fn attempts(&self) -> u32 {
        if std::env::var_os("ATTUNE_PASSPHRASE").is_none() && std::io::stdin().is_terminal() {
            3
        } else {
            1
        }
    }
}

/// Asks one question and returns the answer, trimmed. At a terminal the line
/// can be edited (arrow keys, Home/End, Backspace) and Up/Down recall `history`;
/// otherwise (input or messages redirected) a plain line is read from standard input.
pub fn ask(label: &str, history: &mut BasicHistory) -> Result<String, ClientError> {
    if std::io::stdin().is_terminal() && std::io::stderr().is_terminal() {
        let answer = Input::<String>::with_theme(&AsWritten)
            .with_prompt(label)
            .allow_empty(true)
            .history_with(history)
            .interact_text()
            .map_err(|e| match e {
                dialoguer::Error::IO(e) if e.kind() == std::io::ErrorKind::Interrupted => {
                    ClientError::Input("stopped; nothing was saved".into())
                }
                dialoguer::Error::IO(e) => {
                    ClientError::Input(format!("could not read the answer: {e}"))
                }
            })?;
        return Ok(answer.trim().to_string());
    }
    eprint!("{label}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::Input(format!("could not read the answer: {e}")))?;
    Ok(line.trim().to_string())
}

/// Asks one question with a history of its own (see [`ask`]).
pub fn prompt(label: &str) -> Result<String, ClientError> {
    ask(label, &mut new_history())
}

/// A history for one question: the last answers, newest first, no repeats.
pub fn new_history() -> BasicHistory {
    BasicHistory::new().max_entries(16).no_duplicates(true)
}

/// Questions shown exactly as attune writes them (they end in `? ` or `: `).
#[derive(Debug, Clone, Copy)]
struct AsWritten;

impl Theme for AsWritten {
    fn format_input_prompt(
        &self,
        f: &mut dyn std::fmt::Write,
        prompt: &str,
        _default: Option<&str>,
    ) -> std::fmt::Result {
        write!(f, "{prompt}")
    }

    fn format_input_prompt_selection(
        &self,
        f: &mut dyn std::fmt::Write,
        prompt: &str,
        sel: &str,
    ) -> std::fmt::Result {
        write!(f, "{prompt}{sel}")
    }
}

pub fn nonempty(s: Option<String>) -> Option<String> {
    s.map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

pub fn parse_mood(s: &str) -> Result<u8, ClientError> {
    match s.trim().parse::<u8>() {
        Ok(m) if (1..=10).contains(&m) => Ok(m),
        _ => Err(ClientError::Input(format!(
            "mood must be a whole number from 1 to 10, not '{}'",
            s.trim()
        ))),
    }
}

/// One history per check-in question, seeded with this member's recent
/// check-ins (oldest first), so Up recalls what one answered before. It lives
/// in memory only: nothing typed is written to disk in the clear.
pub struct CheckinHistory {
    pub mood: BasicHistory,
    pub feelings: BasicHistory,
    pub high: BasicHistory,
    pub low: BasicHistory,
    pub appreciate: BasicHistory,
    pub need: BasicHistory,
}

impl std::fmt::Debug for CheckinHistory {
    // What was answered before stays out of debug output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CheckinHistory { .. }")
    }
}

impl CheckinHistory {
    pub fn from_checkins(recent: &[CheckIn]) -> Self {
        use dialoguer::History;
        let mut h = CheckinHistory {
            mood: new_history(),
            feelings: new_history(),
            high: new_history(),
            low: new_history(),
            appreciate: new_history(),
            need: new_history(),
        };
        for c in recent {
            h.mood.write(&c.mood.to_string());
            if !c.feelings.is_empty() {
                h.feelings.write(&c.feelings.join(", "));
            }
            for (history, text) in [
                (&mut h.high, &c.high),
                (&mut h.low, &c.low),
                (&mut h.appreciate, &c.appreciate),
            ] {
                if let Some(t) = text {
                    // Recalled onto the prompt line: one line, inert.
                    history.write(&attune_core::inert::line(t).into_owned());
                }
            }
            if let Some(n) = c.need {
                if let Some(word) = NeedArg::value_variants()
                    .iter()
                    .find(|a| Need::from(**a) == n)
                    .and_then(|a| a.to_possible_value())
                {
                    h.need.write(&word.get_name().to_string());
                }
            }
        }
        h
    }
}

/// True when `checkin` will ask its questions at the terminal.
pub fn checkin_is_interactive(args: &CheckinArgs) -> bool {
    args.mood.is_none() && std::io::stdin().is_terminal()
}

/// The check-in from the flags, or asked at the terminal (Up recalls `recent`
/// answers, oldest first).
pub fn read_checkin(args: &CheckinArgs, recent: &[CheckIn]) -> Result<CheckIn, ClientError> {
    if !checkin_is_interactive(args) {
        let mood = args.mood.clone().ok_or_else(|| {
            ClientError::Input(
                "give --mood 1..10 (or run `attune checkin` in a terminal to be asked)".into(),
            )
        })?;
        let mood = parse_mood(&mood)?;
        let feelings = match &args.feel {
            Some(f) => vocab::parse_feelings(f).map_err(ClientError::Input)?,
            None => vec![],
        };
        return Ok(CheckIn {
            mood,
            feelings,
            high: nonempty(args.high.clone()),
            low: nonempty(args.low.clone()),
            appreciate: nonempty(args.appreciate.clone()),
            need: args.need.map(Need::from),
        });
    }
    let mut h = CheckinHistory::from_checkins(recent);
    eprintln!("A short check-in. Press Enter to skip any question but the first; Up recalls earlier answers.");
    let mood = loop {
        match parse_mood(&ask(
            "How are you, from 1 (very low) to 10 (very good)? ",
            &mut h.mood,
        )?) {
            Ok(m) => break m,
            Err(e) => eprintln!("{e}"),
        }
    };
    let feelings = loop {
        let answer = ask(
            "Two or three words for what you feel (`attune feelings` lists them): ",
            &mut h.feelings,
        )?;
        match vocab::parse_feelings(&answer) {
            Ok(f) => break f,
            Err(e) => eprintln!("{e}"),
        }
    };
    let high = nonempty(Some(ask("The best moment today: ", &mut h.high)?));
    let low = nonempty(Some(ask("The hardest moment today: ", &mut h.low)?));
    let appreciate = nonempty(Some(ask(
        "One thing you appreciate about your partner: ",
        &mut h.appreciate,
    )?));
    let need = loop {
        let answer = ask(
            "What do you need now? listen, support, suggestions, space, distraction: ",
            &mut h.need,
        )?;
        if answer.is_empty() {
            break None;
        }
        match NeedArg::from_str(&answer, true) {
            Ok(n) => break Some(n.into()),
            Err(_) => eprintln!("please answer with one of the five words, or press Enter"),
        }
    };
    Ok(CheckIn {
        mood,
        feelings,
        high,
        low,
        appreciate,
        need,
    })
}

/// Text from -m, else `$EDITOR` on a terminal, else standard input.
pub fn read_text(message: Option<String>, what: &str) -> Result<String, ClientError> {
    read_text_with(message, what, &Draft::default())
}

/// Like [`read_text`], with the editor opening on `draft` (text to start from,
/// context below a scissors line).
pub fn read_text_with(
    message: Option<String>,
    what: &str,
    draft: &Draft,
) -> Result<String, ClientError> {
    let text = if let Some(m) = message {
        m
    } else if std::io::stdin().is_terminal() {
        crate::editor::edit(draft)?
    } else {
        let mut s = String::new();
        std::io::stdin()
            .read_to_string(&mut s)
            .map_err(|e| ClientError::Input(format!("could not read standard input: {e}")))?;
        s
    };
    let text = text.trim().to_string();
    if text.is_empty() {
        return Err(ClientError::Input(format!(
            "the {what} is empty; nothing was saved"
        )));
    }
    Ok(text)
}
