//! What the coach says at the terminal. The engine's `coach` decides; this
//! only words it and asks. Said on standard error, once per draft.

use std::io::{BufRead, IsTerminal, Write};

use attune_core::coach::Tone;

/// How long a heated draft is held when the writer takes the offer.
pub const COOL_OFF: &str = "30m";

/// The note for a heated draft, or `None`.
pub fn note(tone: &Tone, partner: &str) -> Option<String> {
    let s = tone.suggestion()?;
    Some(format!(
        "coach: this sounds like it was written in the heat of the moment ({because}).\n\
         \x20 Underneath it you may be feeling {feeling}. {partner} may hear it better as\n\
         \x20 \"I feel … when … ; what I need is …\".\n\
         \x20 To let it cool off first: `attune journal --send-after {COOL_OFF}` keeps it on\n\
         \x20 this device for {COOL_OFF} (`attune withdraw ID` cancels it).\n\
         \x20 (Checked on this device: nothing about this was sent anywhere. \
         `attune config coach off` turns these notes off.)",
        because = s.because,
        feeling = s.feeling,
    ))
}

/// At a terminal: send now (Enter), or hold for the cool-off (`h`)? Anything
/// but `h` sends: the coach never stands in the way.
pub fn wants_hold() -> bool {
    if !(std::io::stdin().is_terminal() && std::io::stderr().is_terminal()) {
        return false;
    }
    eprint!("Send it now? [Enter: send · h: hold it {COOL_OFF}] ");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return false;
    }
    line.trim().eq_ignore_ascii_case("h")
}
