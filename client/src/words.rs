//! Words as a person reads them: counts with the right plural, verbs that agree
//! with their subject ("you reflect", "Sam reflects"), and an item's content as
//! plain words (for the editor's context lines).

use attune_core::item::{Answer, Body, CheckIn};
use attune_core::practice::Practice;
use attune_core::profile::Entry;

/// `n` and the noun in the right number, thousands grouped: "1 item",
/// "0 items", "120,651 items".
pub fn count(n: impl TryInto<u64>, one: &str, many: &str) -> String {
    let n: u64 = n.try_into().unwrap_or(u64::MAX);
    format!("{} {}", grouped(n), if n == 1 { one } else { many })
}

/// `n` with its thousands grouped by commas: "999", "1,000", "120,651".
pub fn grouped(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// A verb in the present tense for "you" or for the partner (third person):
/// `agree("reflect", true)` is "reflect", `agree("reflect", false)` "reflects".
pub fn agree(verb: &str, you: bool) -> String {
    if you {
        verb.to_string()
    } else if verb.ends_with("ss") || verb.ends_with("sh") || verb.ends_with("ch") {
        format!("{verb}es")
    } else {
        format!("{verb}s")
    }
}

/// A check-in as plain lines.
pub fn checkin_words(c: &CheckIn) -> String {
    let mut lines = vec![format!("mood {}/10", c.mood)];
    if !c.feelings.is_empty() {
        lines.push(format!("feelings: {}", c.feelings.join(", ")));
    }
    for (label, v) in [
        ("high", &c.high),
        ("low", &c.low),
        ("appreciates", &c.appreciate),
    ] {
        if let Some(v) = v {
            lines.push(format!("{label}: {v}"));
        }
    }
    if let Some(n) = c.need {
        lines.push(format!("needs {}", n.describe()));
    }
    lines.join("\n")
}

/// What an item says, as plain words (not yet inert: the caller makes it so
/// for its medium). A sealed answer says something only where it is readable.
pub fn plain_words(e: &Entry, practice: &Practice) -> String {
    match &e.item.body {
        Body::Journal { text }
        | Body::Appreciation { text }
        | Body::Correct { text, .. }
        | Body::Reflect { text, .. } => text.clone(),
        Body::CheckIn(c) => checkin_words(c),
        Body::Sealed { exercise, .. } => {
            let answer = practice.exchange(exercise).and_then(|x| {
                if e.mine {
                    x.mine.as_ref().and_then(|s| s.answer.as_ref())
                } else {
                    x.their_answer()
                }
            });
            match answer {
                Some(Answer::CheckIn { checkin, .. }) => checkin_words(checkin),
                Some(Answer::Exercise { text }) => text.clone(),
                Some(Answer::Union(u)) => u.as_text(),
                None => "(sealed)".into(),
            }
        }
        Body::Exercise { prompt, .. } => prompt.clone(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_take_the_right_plural() {
        assert_eq!(count(0u32, "item", "items"), "0 items");
        assert_eq!(count(1u32, "item", "items"), "1 item");
        assert_eq!(count(2u64, "day", "days"), "2 days");
        assert_eq!(
            count(1usize, "integrity problem", "integrity problems"),
            "1 integrity problem"
        );
        assert_eq!(count(120_651u64, "item", "items"), "120,651 items");
    }

    #[test]
    fn thousands_are_grouped() {
        for (n, text) in [
            (0, "0"),
            (999, "999"),
            (1_000, "1,000"),
            (12_345, "12,345"),
            (120_651, "120,651"),
            (u64::MAX, "18,446,744,073,709,551,615"),
        ] {
            assert_eq!(grouped(n), text);
        }
    }

    #[test]
    fn verbs_agree_with_their_subject() {
        assert_eq!(agree("reflect", true), "reflect");
        assert_eq!(agree("reflect", false), "reflects");
        assert_eq!(agree("appreciate", false), "appreciates");
        assert_eq!(agree("watch", false), "watches");
    }
}
