//! The emotion vocabulary: richer than "fine", grouped by how pleasant a feeling is
//! and how much energy it carries, so a check-in can say something precise.

/// Pleasantness and energy of an emotion word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quadrant {
    PleasantHigh,
    PleasantLow,
    UnpleasantHigh,
    UnpleasantLow,
}

impl Quadrant {
    pub fn label(self) -> &'static str {
        match self {
            Quadrant::PleasantHigh => "pleasant, high energy",
            Quadrant::PleasantLow => "pleasant, low energy",
            Quadrant::UnpleasantHigh => "unpleasant, high energy",
            Quadrant::UnpleasantLow => "unpleasant, low energy",
        }
    }
}

pub const EMOTIONS: &[(Quadrant, &[&str])] = &[
    (
        Quadrant::PleasantHigh,
        &[
            "happy",
            "excited",
            "joyful",
            "playful",
            "hopeful",
            "proud",
            "inspired",
            "energized",
            "delighted",
            "confident",
            "curious",
            "amused",
            "eager",
            "grateful",
            "loving",
            "optimistic",
            "affectionate",
        ],
    ),
    (
        Quadrant::PleasantLow,
        &[
            "calm",
            "content",
            "relaxed",
            "peaceful",
            "safe",
            "cozy",
            "tender",
            "relieved",
            "satisfied",
            "serene",
            "thankful",
            "balanced",
            "close",
            "understood",
            "gentle",
            "rested",
        ],
    ),
    (
        Quadrant::UnpleasantHigh,
        &[
            "angry",
            "anxious",
            "frustrated",
            "stressed",
            "irritated",
            "overwhelmed",
            "jealous",
            "defensive",
            "worried",
            "panicked",
            "resentful",
            "restless",
            "tense",
            "annoyed",
            "nervous",
            "hurt",
        ],
    ),
    (
        Quadrant::UnpleasantLow,
        &[
            "sad",
            "tired",
            "lonely",
            "disappointed",
            "bored",
            "numb",
            "discouraged",
            "ashamed",
            "drained",
            "hopeless",
            "guilty",
            "insecure",
            "ignored",
            "homesick",
            "melancholy",
            "exhausted",
        ],
    ),
];

/// The quadrant of a known word.
pub fn quadrant(word: &str) -> Option<Quadrant> {
    EMOTIONS
        .iter()
        .find(|(_, words)| words.contains(&word))
        .map(|(q, _)| *q)
}

pub fn all_words() -> impl Iterator<Item = &'static str> {
    EMOTIONS.iter().flat_map(|(_, w)| w.iter().copied())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The closest known words to an unknown one, for a "did you mean" hint.
pub fn suggest(word: &str) -> Vec<&'static str> {
    let mut scored: Vec<(usize, &'static str)> = all_words()
        .map(|w| (edit_distance(word, w), w))
        .filter(|(d, w)| *d <= 2.max(w.len() / 3) || w.starts_with(word))
        .collect();
    scored.sort();
    scored.into_iter().take(3).map(|(_, w)| w).collect()
}

/// Normalises and checks a list of emotion words.
pub fn parse_feelings(input: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for raw in input.split([',', ' ']).filter(|w| !w.trim().is_empty()) {
        let word = raw.trim().to_lowercase();
        if quadrant(&word).is_none() {
            let hints = suggest(&word);
            return Err(if hints.is_empty() {
                format!(
                    "'{word}' is not in the emotion vocabulary; `attune feelings` lists the words"
                )
            } else {
                format!(
                    "'{word}' is not in the emotion vocabulary; did you mean {}?",
                    hints.join(", ")
                )
            });
        }
        if !out.contains(&word) {
            out.push(word);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vocabulary_is_rich_and_unique() {
        let words: Vec<_> = all_words().collect();
        assert!(words.len() >= 60);
        let mut sorted = words.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), words.len());
    }

    #[test]
    fn suggestions_and_parsing() {
        assert_eq!(
            parse_feelings("Calm, hopeful"),
            Ok(vec!["calm".into(), "hopeful".into()])
        );
        let err = parse_feelings("calm,hapy").unwrap_err();
        assert!(err.contains("did you mean"), "{err}");
        assert!(suggest("anxous").contains(&"anxious"));
    }
}
