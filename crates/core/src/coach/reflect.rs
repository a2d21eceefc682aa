//! Reflection help: a first sentence for `reflect`, built from the partner's own
//! words and the feelings they named (or that their words name), to be put in
//! one's own words. It is a start, never a reply: the front-end refuses it
//! unchanged.

/// "I" becomes "you", so the partner hears their own words said back.
fn mirrored(word: &str) -> Option<&'static str> {
    Some(match word {
        "i" => "you",
        "i'm" | "im" => "you're",
        "i've" => "you've",
        "i'd" => "you'd",
        "i'll" => "you'll",
        "me" => "you",
        "my" => "your",
        "mine" => "yours",
        "myself" => "yourself",
        "we" => "you two",
        _ => return None,
    })
}

/// The first sentence (or clause) of `text`, at most `max` words, said back.
fn gist(text: &str, max: usize) -> String {
    let first = text
        .split(['.', '!', '?', '\n', ';'])
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let mut after_i = false;
    let words: Vec<String> = first
        .split_whitespace()
        .take(max)
        .map(|w| {
            let lower = w.to_lowercase().replace('\u{2019}', "'");
            let bare = lower.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
            // "I was" becomes "you were", "I am" "you are"; "work was" stays.
            let verb = match bare {
                "was" if after_i => Some("were"),
                "am" if after_i => Some("are"),
                _ => None,
            };
            after_i = bare == "i";
            match verb.or_else(|| mirrored(bare)) {
                Some(m) => m.to_string(),
                None => lower,
            }
        })
        .collect();
    let mut s = words.join(" ");
    s = s.trim_end_matches([',', ':', '-']).to_string();
    if first.split_whitespace().count() > max {
        s.push('…');
    }
    s
}

/// Feelings from the emotion vocabulary that `text` names, in order, at most two.
fn named_in(text: &str) -> Vec<String> {
    let lower = text.to_lowercase();
    let mut out: Vec<String> = Vec::new();
    for w in lower.split(|c: char| !c.is_alphabetic()) {
        if crate::vocab::quadrant(w).is_some() && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
        if out.len() == 2 {
            break;
        }
    }
    out
}

fn and(words: &[String]) -> String {
    match words {
        [] => String::new(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} and {}", rest.join(" and ")),
    }
}

/// The starting sentence for a reflection on `their_text`, with the feelings
/// they named (a check-in's), or else those their words name.
pub fn starter(their_text: &str, named: &[String]) -> String {
    let feelings: Vec<String> = if named.is_empty() {
        named_in(their_text)
    } else {
        named.iter().take(2).cloned().collect()
    };
    let what = gist(their_text, 14);
    let felt = if feelings.is_empty() {
        "[the feeling you heard]".to_string()
    } else {
        and(&feelings)
    };
    if what.is_empty() {
        format!("It sounds like you felt {felt} — did I get that right?")
    } else {
        format!("It sounds like you felt {felt} when {what} — did I get that right?")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn their_words_come_back_in_the_second_person_with_their_feelings() {
        assert_eq!(
            starter("I was so tired after my shift and nobody asked how I was.", &[]),
            "It sounds like you felt tired when you were so tired after your shift and nobody asked how you were — did I get that right?"
        );
        assert_eq!(
            starter(
                "Work was a lot today.",
                &["anxious".to_string(), "drained".to_string(), "hopeful".to_string()]
            ),
            "It sounds like you felt anxious and drained when work was a lot today — did I get that right?"
        );
        assert!(starter("Long day.", &[]).contains("[the feeling you heard]"));
    }
}
