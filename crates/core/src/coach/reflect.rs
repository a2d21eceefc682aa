//! Reflection help: a first sentence for `reflect`, built from the partner's own
//! words and the feelings they named (or that their words name), to be put in
//! one's own words. It is a start, never a reply: the front-end refuses it
//! unchanged.

/// Where the starter leaves the feeling to the writer (none was named).
pub const BLANK: &str = "[the feeling you heard]";

/// Words after which "you" is the one doing something ("I"), not the one it
/// is done to ("me").
const CLAUSE_STARTS: &[&str] = &[
    "and", "but", "or", "so", "when", "that", "because", "if", "then", "since", "while", "after",
    "before", "until", "unless", "though", "although", "whenever",
];

/// The speaker and the listener change places, so the partner hears their own
/// words said back: "I miss you" becomes "you miss me". `subject` says whether
/// a "you" here is the one doing something.
fn mirrored(word: &str, subject: bool) -> Option<&'static str> {
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
        "you" if subject => "I",
        "you" => "me",
        "you're" | "youre" => "I'm",
        "you've" => "I've",
        "you'd" => "I'd",
        "you'll" => "I'll",
        "your" => "my",
        "yours" => "mine",
        "yourself" => "myself",
        _ => return None,
    })
}

/// The verb after a mirrored subject: "I was" becomes "you were", "you are"
/// "I am"; "work was" stays.
fn agreeing(verb: &str, subject: Option<&str>) -> Option<&'static str> {
    match (subject?, verb) {
        ("you", "was") => Some("were"),
        ("you", "am") => Some("are"),
        ("I", "are") => Some("am"),
        ("I", "were") => Some("was"),
        _ => None,
    }
}

/// The first sentence (or clause) of `text`, at most `max` words, said back.
fn gist(text: &str, max: usize) -> String {
    let first = text
        .split(['.', '!', '?', '\n', ';'])
        .map(str::trim)
        .find(|s| !s.is_empty())
        .unwrap_or("");
    let mut previous: Option<String> = None;
    let mut subject: Option<&'static str> = None;
    let words: Vec<String> = first
        .split_whitespace()
        .take(max)
        .map(|w| {
            let lower = w.to_lowercase().replace('\u{2019}', "'");
            let bare = lower.trim_matches(|c: char| !c.is_alphanumeric() && c != '\'');
            let starts_clause = previous
                .as_deref()
                .is_none_or(|p| CLAUSE_STARTS.contains(&p) || p.ends_with(','));
            let out = agreeing(bare, subject).or_else(|| mirrored(bare, starts_clause));
            // Only a bare "I" / "you" as a subject takes the verb after it.
            subject = match out {
                Some("you") if bare == "i" => Some("you"),
                Some("I") => Some("I"),
                _ => None,
            };
            previous = Some(lower.clone());
            match out {
                // Keep what surrounded the word ("me," stays "you,").
                Some(m) => lower.replacen(bare, m, 1),
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
    let mut negated = false;
    for w in lower.split(|c: char| !c.is_alphabetic() && c != '\'') {
        // "not angry", "never happy", "isn't sad": not a feeling they named.
        let denies = matches!(w, "not" | "never" | "no" | "hardly") || w.ends_with("n't");
        if !negated && crate::vocab::quadrant(w).is_some() && !out.iter().any(|o| o == w) {
            out.push(w.to_string());
        }
        if !w.is_empty() {
            negated = denies;
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
    // A word or two ("fine", "long day") is not a situation to say back.
    let what = if what.split_whitespace().count() < 3 {
        String::new()
    } else {
        what
    };
    let felt = if feelings.is_empty() {
        BLANK.to_string()
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

    #[test]
    fn speaker_and_listener_change_places() {
        for (said, back) in [
            ("I miss you so much", "you miss me so much"),
            (
                "I'm really hurt that you forgot my birthday",
                "you're really hurt that I forgot your birthday",
            ),
            (
                "You are so selfish and you don't care about me",
                "I am so selfish and I don't care about you",
            ),
            (
                "You never call me, I cry every night",
                "I never call you, you cry every night",
            ),
            (
                "I was alone and you were out",
                "you were alone and I was out",
            ),
            (
                "Work was a lot and my boss yelled",
                "work was a lot and your boss yelled",
            ),
        ] {
            assert_eq!(gist(said, 14), back, "{said}");
        }
    }

    #[test]
    fn a_feeling_they_deny_is_not_one_they_named() {
        assert_eq!(
            named_in("I am not angry, just sad and tired"),
            ["sad", "tired"]
        );
        assert_eq!(named_in("I wasn't happy, I was lonely"), ["lonely"]);
        assert!(!starter("Fine.", &[]).contains(" when "));
    }
}
