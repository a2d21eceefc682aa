//! The tone check: does a draft read as written in the heat of a fight? A
//! lexicon sentiment score (VADER) says how negative the words are; that alone
//! would tell a partner sharing pain to calm down, so the verdict rests on the
//! patterns couples therapists name instead: blame framed as "you …", absolutes
//! ("always", "never"), contempt and insults, sarcasm, demands and shouting. A
//! very negative score only counts when the draft also points at the partner;
//! sadness in the first person ("I felt so alone") is never heated, a feeling
//! the writer names ("I feel hurt when you …") halves the weight of what follows
//! about the partner, and warm words ("you always make me laugh") are not heated
//! without a jab, contempt or a threat beside them.

use std::sync::OnceLock;

/// What the check concluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Nothing to say.
    Calm,
    /// Hurting, not attacking: the coach stays quiet.
    Sad,
    /// Worth a pause before sending.
    Heated,
}

/// A pattern found in the draft.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "words")]
pub enum Signal {
    /// "you always", "you never", "every time you".
    Absolute(String),
    /// "your fault", "you made me", "you don't care".
    Blame(String),
    /// An insult or words of contempt.
    Contempt(String),
    /// "oh great", "thanks so much", "must be nice".
    Sarcasm(String),
    /// "you need to", "stop", "you'd better".
    Demand(String),
    /// Words in capitals, or "!!".
    Shouting,
    /// "I'm done", "I'm leaving".
    Threat(String),
}

/// The check's result.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Tone {
    pub verdict: Verdict,
    /// VADER's compound score, -1 (most negative) to 1.
    pub compound: f64,
    pub signals: Vec<Signal>,
}

fn analyzer() -> &'static vader_sentiment::SentimentIntensityAnalyzer<'static> {
    static ANALYZER: OnceLock<vader_sentiment::SentimentIntensityAnalyzer<'static>> =
        OnceLock::new();
    ANALYZER.get_or_init(vader_sentiment::SentimentIntensityAnalyzer::new)
}

const ABSOLUTES: &[&str] = &[
    "you always",
    "you never",
    "you're always",
    "you are always",
    "you're never",
    "you are never",
    "every time you",
    "every single time",
    "you constantly",
    "you still haven't",
    "as usual",
    "you do this every",
    "this always happens",
    "never once",
];

const BLAME: &[&str] = &[
    "your fault",
    "because of you",
    "you made me",
    "you make me",
    "you don't care",
    "you do not care",
    "you didn't care",
    "you don't even",
    "you didn't even",
    "you only care",
    "you only think",
    "you only remember",
    "you ruined",
    "you ruin",
    "you lied",
    "you promised",
    "you forgot",
    "you broke",
    "you embarrassed",
    "you humiliated",
    "you ignored",
    "you ignore",
    "you let me down",
    "you don't listen",
    "you never listen",
    "you didn't listen",
    "you don't respect",
    "you can't even",
    "you couldn't even",
    "you chose",
    "you care more about",
    "thanks to you",
    "blame you",
    "what is wrong with you",
    "what's wrong with you",
    "how dare you",
    "how could you",
    "who does that",
    "what kind of person",
    "typical of you",
    "so typical",
    "you're just like",
    "you are just like",
    "you went behind my back",
    "behind my back",
    "you told your",
    "you'd rather",
    "you would rather",
    "you just stand",
    "you just sit",
    "you sit on",
    "all you do",
    "you don't get to",
    "if you cared",
    "couldn't be bothered",
    "can't be bothered",
    "nothing i do",
    "you're so ",
    "you are so ",
    "you're impossible",
    "you are impossible",
    "you're the worst",
    "you laughed",
    "you expect me",
    "act shocked",
    "i married someone",
    "you walk all over",
    "walks all over",
    "you never help",
    "you won't even",
    "you wouldn't even",
    "you keep",
    "you spent",
    "who do you think",
    "lying to me",
    "lie to me",
    "typical",
];

const CONTEMPT: &[&str] = &[
    "idiot",
    "stupid",
    "pathetic",
    "useless",
    "selfish",
    "lazy",
    "ridiculous",
    "disgusting",
    "liar",
    "grow up",
    "shut up",
    "whatever",
    "moron",
    "jerk",
    "loser",
    "childish",
    "immature",
    "spoiled",
    "worthless",
    "incompetent",
    "clueless",
    "hypocrite",
    "unbelievable",
    "sick and tired",
    "fed up",
    "can't stand",
    "cannot stand",
    "hate you",
    "hate it when you",
    "embarrassing",
    "joke",
    "bullshit",
    "damn",
    "hell",
    "crap",
    "fuck",
    "wtf",
    "screw",
    "furious",
    "livid",
    "pissed",
    "infuriating",
    "don't bother",
    "get over it",
    "sick of",
    "coward",
    "laziest",
    "careless",
    "cold",
    "impossible",
    "complain",
    "embarrassment",
    "disgrace",
    "nag",
];

const SARCASM: &[&str] = &[
    "oh great",
    "oh good",
    "oh wonderful",
    "oh sure",
    "oh right",
    "oh perfect",
    "great job",
    "nice job",
    "well done",
    "thanks so much",
    "thanks a lot",
    "thank you so much for",
    "thanks for nothing",
    "love that for us",
    "love that",
    "must be nice",
    "sure, because",
    "of course you",
    "of course it",
    "yeah right",
    "how nice of you",
    "how thoughtful",
    "how generous",
    "good to know",
    "glad to know",
    "so glad",
    "real nice",
    "what a surprise",
    "shocking",
    "as if",
    "no, really",
    "totally fine",
    "it's fine.",
    "it's fine, ",
    "clearly",
    "obviously",
    "apparently",
    "i guess",
    "my mistake for",
    "silly me",
    "heaven forbid",
    "god forbid",
    "for once",
    "wow",
    "nice of you",
    "oh wait",
    "it's fine",
    "how fun",
    "nice to know",
    "brilliant",
    "what a shock",
    "impressive",
    "i'm honored",
    "should i throw",
    "truly.",
    "really.",
    "i'm thrilled",
    "best night ever",
    "don't mind me",
    "so thoughtful",
    "so lucky",
    "perfect timing",
    "oh look",
    "oh no, don't",
    "how sweet",
    "love how",
    "i love guessing",
    "must be exhausting",
    "amazing how",
    "glad your",
    "cool, i guess",
    "finally",
    "🙃",
    "🙄",
    "only a day late",
    "never get tired of",
    "sorry, did i",
    "totally don't",
];

const DEMANDS: &[&str] = &[
    "you need to",
    "you have to",
    "you'd better",
    "you better",
    "you will ",
    "don't you dare",
    "don't ever",
    "do not ever",
    "stop ",
    "just stop",
    "fix it",
    "i demand",
    "answer me",
    "explain yourself",
    "get your",
    "figure it out",
    "get off",
    "get out",
    "don't touch",
    "keep rolling",
    "cancel the",
    "look at me",
    "leave me alone",
    "go away",
    "i'm telling you",
    "i'm not asking",
];

const THREATS: &[&str] = &[
    "i'm done",
    "i am done",
    "i'm leaving",
    "i am leaving",
    "i'm out",
    "divorce",
    "break up",
    "leave you",
    "we're through",
    "we are through",
    "last chance",
    "i'm so done",
    "should just leave",
    "i should leave",
    "see what happens",
    "i'm finished",
    "find someone else",
];

/// Sarcasm that needs nothing else to read as a jab.
const POINTED: &[&str] = &[
    "must be nice",
    "nice to know",
    "don't mind me",
    "that'll help",
    "that will help",
    "it's not like i matter",
    "thanks for nothing",
    "love that for us",
    "yeah right",
    "what a shock",
    "best night ever",
    "should i throw",
    "i'm honored",
    "brilliant plan",
    "only a day late",
];

/// Feelings said in the first person: the form a therapist would suggest.
const I_STATEMENTS: &[&str] = &[
    "i feel",
    "i felt",
    "i was",
    "i'm scared",
    "i am scared",
    "i'm afraid",
    "i am afraid",
    "i'm worried",
    "i am worried",
    "i miss",
    "i missed",
    "i hope",
    "i'm sad",
    "i am sad",
    "i'm hurt",
    "i am hurt",
    "i'm lonely",
    "it hurt",
    "i wish",
];

/// Whether the writer names a feeling of their own ("I feel hurt when …",
/// "I'm really lonely", "I miss you": the form the note itself suggests) or
/// says back the partner's. Not "I feel like you …" or "I feel that you …",
/// which are blame in its clothes.
fn owns_feeling(lower: &str) -> bool {
    if reflecting(lower) {
        return true;
    }
    // Anger named is still heat ("I'm so angry I can't look at you").
    let hurt = |w: &str| crate::vocab::quadrant(w).is_some() && !ANGER.contains(&w);
    let blame_dressed = [
        "i feel like",
        "i feel that",
        "i feel as if",
        "i feel you",
        "i felt like",
    ]
    .iter()
    .any(|p| has(lower, p));
    if blame_dressed {
        return false;
    }
    if VULNERABLE.iter().any(|p| has(lower, p)) {
        return true;
    }
    let w: Vec<&str> = words(lower).collect();
    w.windows(2).enumerate().any(|(i, pair)| {
        let opens = matches!(pair, ["i", "am" | "feel" | "felt"] | ["i'm", _]);
        opens && w[i + 1..].iter().take(3).any(|x| hurt(x))
    })
}

/// Feelings named in the first person that open up rather than attack.
const VULNERABLE: &[&str] = &[
    "i feel hurt",
    "i felt hurt",
    "i'm hurt",
    "i am hurt",
    "i'm scared",
    "i am scared",
    "i'm afraid",
    "i am afraid",
    "i'm worried",
    "i am worried",
    "i miss",
    "i missed",
    "i'm sad",
    "i am sad",
    "i'm lonely",
    "it hurt",
    "i feel alone",
    "i feel so alone",
    "i cry",
    "i cried",
];

/// Anger and its kin: named in the first person, still heat.
const ANGER: &[&str] = &[
    "angry",
    "furious",
    "mad",
    "annoyed",
    "irritated",
    "frustrated",
    "livid",
    "resentful",
    "disgusted",
    "enraged",
    "bitter",
    "outraged",
];

/// Words of affection: "you always make me laugh", "I MISS YOU" are warm.
const AFFECTION: &[&str] = &[
    "love you",
    "miss you",
    "make me laugh",
    "makes me laugh",
    "make me happy",
    "makes me happy",
    "proud of you",
    "love of my life",
    "lucky to have you",
    "never change",
    "think of you",
    "thinking of you",
    "adore you",
    "grateful for you",
];

/// Whether the draft says the partner's words back: "it sounds like you're so
/// tired and you need to sleep" is listening, not blame or a command.
fn reflecting(lower: &str) -> bool {
    [
        "it sounds like you",
        "sounds like you",
        "what i hear",
        "what i'm hearing",
        "if i understand",
        "did i get that right",
    ]
    .iter()
    .any(|p| has(lower, p))
}

/// Whether a command opens one of the draft's sentences.
fn opens_a_sentence(lower: &str, phrase: &str) -> bool {
    lower
        .split_inclusive(['.', '!', '?', '\n'])
        .any(|s| s.trim_start().starts_with(phrase.trim_end()))
}

/// Words that say the draft is about the partner.
fn aims_at_partner(lower: &str) -> bool {
    words(lower).any(|w| {
        matches!(
            w,
            "you" | "your" | "you're" | "yours" | "yourself" | "you've" | "you'd" | "you'll"
        )
    })
}

fn words(lower: &str) -> impl Iterator<Item = &str> {
    lower
        .split(|c: char| !(c.is_alphanumeric() || c == '\'' || c == '\u{2019}'))
        .filter(|w| !w.is_empty())
}

/// Whether `phrase` occurs in `lower` starting at a word boundary (so "hell"
/// is not found in "hello", nor "joke" in "jokes" … it is: a prefix match at
/// a word start keeps plural and tense forms).
fn has(lower: &str, phrase: &str) -> bool {
    let mut from = 0;
    while let Some(at) = lower[from..].find(phrase) {
        let start = from + at;
        let before_ok = lower[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let end = start + phrase.len();
        let after_ok = phrase.ends_with(' ')
            || lower[end..]
                .chars()
                .next()
                .is_none_or(|c| !c.is_alphanumeric() || c == 's');
        if before_ok && after_ok {
            return true;
        }
        from = start + phrase.len().max(1);
    }
    false
}

fn found(lower: &str, list: &[&str]) -> Option<String> {
    list.iter()
        .find(|p| has(lower, p))
        .map(|p| p.trim().to_string())
}

/// Two or more words of three letters or more in capitals, one of five or
/// more, or "!!" / "?!".
fn shouting(text: &str) -> bool {
    let caps: Vec<usize> = text
        .split(|c: char| !c.is_alphabetic())
        .map(|w| w.chars().count())
        .zip(text.split(|c: char| !c.is_alphabetic()))
        .filter(|(n, w)| *n >= 3 && w.chars().all(|c| c.is_uppercase()))
        .map(|(n, _)| n)
        .collect();
    caps.len() >= 2 || caps.iter().any(|&n| n >= 5) || text.contains("!!") || text.contains("?!")
}

/// Normalises typographic apostrophes, so "you’re" reads like "you're".
fn lowered(text: &str) -> String {
    text.to_lowercase().replace('\u{2019}', "'")
}

/// Checks one draft.
pub fn check(text: &str) -> Tone {
    let lower = lowered(text);
    let compound = analyzer()
        .polarity_scores(text)
        .get("compound")
        .copied()
        .unwrap_or(0.0);
    let mut signals = Vec::new();
    if let Some(w) = found(&lower, ABSOLUTES) {
        signals.push(Signal::Absolute(w));
    }
    if let Some(w) = found(&lower, BLAME) {
        signals.push(Signal::Blame(w));
    }
    if let Some(w) = found(&lower, CONTEMPT) {
        signals.push(Signal::Contempt(w));
    }
    if let Some(w) = found(&lower, SARCASM) {
        signals.push(Signal::Sarcasm(w));
    }
    if let Some(w) = found(&lower, DEMANDS) {
        signals.push(Signal::Demand(w));
    }
    if shouting(text) {
        signals.push(Signal::Shouting);
    }
    if let Some(w) = found(&lower, THREATS) {
        signals.push(Signal::Threat(w));
    }
    let verdict = verdict(&lower, text, &signals);
    Tone {
        verdict,
        compound,
        signals,
    }
}

fn verdict(lower: &str, text: &str, signals: &[Signal]) -> Verdict {
    let at_partner = aims_at_partner(lower);
    let sarcasm_cues = SARCASM.iter().filter(|p| has(lower, p)).count();
    let compound = analyzer()
        .polarity_scores(text)
        .get("compound")
        .copied()
        .unwrap_or(0.0);
    // "I feel hurt when you ignore me" names the writer's feeling first: what
    // it says of the partner weighs half.
    let owned = owns_feeling(lower);
    let said_back = reflecting(lower);
    let warm = AFFECTION.iter().any(|p| has(lower, p));
    let weight: u32 = signals
        .iter()
        .map(|s| match s {
            // Said back, the partner's words are listening, not an attack.
            Signal::Blame(_) | Signal::Absolute(_) | Signal::Demand(_) if said_back => 0,
            // "You always make me laugh", "I MISS YOU": warmth, not heat.
            Signal::Absolute(_) | Signal::Shouting if warm => 0,
            Signal::Blame(_) if warm => 1,
            Signal::Blame(_) | Signal::Absolute(_) if owned => 1,
            // Each of these alone reads as an attack.
            Signal::Blame(_) | Signal::Absolute(_) | Signal::Threat(_) | Signal::Shouting => 2,
            // Harsh words about oneself ("I feel useless") are pain, not contempt;
            // a command or sarcasm needs the partner in view, or more of it.
            Signal::Contempt(_) => {
                if at_partner {
                    2
                } else {
                    1
                }
            }
            // A command said to someone: "you need to …", or one that opens a
            // sentence ("Stop …"), not "the way you used to look at me".
            Signal::Demand(d) => {
                if d.contains("you") || opens_a_sentence(lower, d) {
                    2
                } else {
                    1
                }
            }
            Signal::Sarcasm(_) => {
                let pointed = POINTED.iter().any(|p| has(lower, p));
                // One cue among words of affection ("so lucky to have you") is
                // not a jab; two cues, or a pointed one, are.
                if pointed || sarcasm_cues >= 2 || (at_partner && !warm) {
                    2
                } else {
                    1
                }
            }
        })
        .sum();
    if weight >= 2 || negative_at_partner(text) {
        Verdict::Heated
    } else if compound <= -0.3 {
        Verdict::Sad
    } else {
        Verdict::Calm
    }
}

/// A sentence that speaks to or about the partner in strongly negative words
/// (not one that says how the writer feels: "I was hurt when you …").
fn negative_at_partner(text: &str) -> bool {
    text.split_inclusive(['.', '!', '?', '\n'])
        .filter(|s| {
            let lower = lowered(s);
            aims_at_partner(&lower)
                && !I_STATEMENTS.iter().any(|p| has(&lower, p))
                && !owns_feeling(&lower)
        })
        .any(|s| {
            analyzer()
                .polarity_scores(s)
                .get("compound")
                .is_some_and(|c| *c <= -0.5)
        })
}

/// The one suggestion a heated draft gets: the feeling that may sit under
/// what it found, and an I-statement to start again from.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Suggestion {
    /// "hurt or unseen", "let down", …
    pub feeling: &'static str,
    /// What the draft does that makes it hard to hear, in a few words.
    pub because: &'static str,
}

impl Tone {
    /// What to suggest, for a heated draft (none otherwise).
    pub fn suggestion(&self) -> Option<Suggestion> {
        if self.verdict != Verdict::Heated {
            return None;
        }
        let first = self.signals.first();
        let (feeling, because) = match first {
            Some(Signal::Blame(_)) => ("hurt, or unseen", "it says what they did wrong"),
            Some(Signal::Absolute(_)) => (
                "worn out by something that keeps happening",
                "\"always\" and \"never\" leave no way to agree",
            ),
            Some(Signal::Contempt(_)) => (
                "frustrated, or exhausted",
                "words of contempt are the hardest to hear",
            ),
            Some(Signal::Sarcasm(_)) => ("let down", "sarcasm hides what you want from them"),
            Some(Signal::Demand(_)) => {
                ("worried, or not listened to", "an order invites a refusal")
            }
            Some(Signal::Shouting) => ("overwhelmed", "capitals read as shouting"),
            Some(Signal::Threat(_)) => ("scared, or out of hope", "a threat ends the conversation"),
            None => ("hurt", "it is aimed at them"),
        };
        Some(Suggestion { feeling, because })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blame_and_absolutes_are_heated_and_first_person_pain_is_not() {
        assert_eq!(
            check("You never listen to me and it's always your fault!").verdict,
            Verdict::Heated
        );
        assert_eq!(
            check("I felt so alone tonight, and I cried in the car.").verdict,
            Verdict::Sad
        );
        assert_eq!(
            check("Dinner with your parents was lovely, thank you.").verdict,
            Verdict::Calm
        );
    }

    #[test]
    fn a_reflection_said_back_and_a_named_feeling_are_not_blame() {
        for listening in [
            "It sounds like you're so tired of this week and you need to sleep — did I get that right?",
            "I feel hurt when you ignore me.",
            "I'm really hurt that you forgot my birthday.",
        ] {
            assert_ne!(check(listening).verdict, Verdict::Heated, "{listening}");
        }
        // Blame wearing a feeling's clothes is still blame.
        assert_eq!(
            check("I feel like you never listen and you always make it about you.").verdict,
            Verdict::Heated
        );
    }

    #[test]
    fn word_boundaries_hold() {
        assert!(!has("hello there", "hell"));
        assert!(has("what the hell", "hell"));
        assert!(has("such jokes", "joke"));
        assert!(!has("shellfish", "hell"));
    }

    #[test]
    fn shouting_needs_two_capital_words_or_double_bangs() {
        assert!(shouting("I SAID STOP"));
        assert!(!shouting("I SAID NO"));
        assert!(!shouting("I went to the USA"));
        assert!(shouting("You LAUGHED."));
        assert!(shouting("again!!"));
    }
}
