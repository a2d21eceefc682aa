//! What travels inside an envelope's ciphertext: one item, as JSON. The relay never
//! sees any of it — kinds, times and content are all inside.

use serde::{Deserialize, Serialize};

/// What one needs right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// To be listened to, without advice.
    Listen,
    Support,
    Suggestions,
    Space,
    Distraction,
}

impl Need {
    pub fn describe(self) -> &'static str {
        match self {
            Need::Listen => "to be listened to",
            Need::Support => "support",
            Need::Suggestions => "suggestions",
            Need::Space => "some space",
            Need::Distraction => "a distraction",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckIn {
    pub mood: u8,
    #[serde(default)]
    pub feelings: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub high: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub low: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub appreciate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub need: Option<Need>,
}

/// A guess of the partner's state, made before seeing their check-in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Guess {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mood: Option<u8>,
    #[serde(default)]
    pub feelings: Vec<String>,
}

/// What a sealed answer contains (encrypted under its own key until revealed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum Answer {
    /// The day's check-in, with a guess of the partner's.
    CheckIn {
        day: String,
        checkin: CheckIn,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        guess: Option<Guess>,
    },
    /// An answer to a blind exercise.
    Exercise { text: String },
    /// An answer to the monthly state of the union, in its three parts.
    Union(UnionAnswer),
}

/// The monthly state of the union: what one appreciated, what weighed on one,
/// and one thing to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnionAnswer {
    pub appreciated: String,
    pub grievance: String,
    pub change: String,
}

impl UnionAnswer {
    /// The three headings an answer is written under, in order.
    pub const HEADINGS: [&'static str; 3] =
        ["Appreciated:", "Weighed on me:", "One thing to change:"];

    /// The blank form an editor opens with.
    pub fn form() -> String {
        Self::HEADINGS.map(|h| format!("{h}\n\n")).concat()
    }

    /// Reads the three parts from text written under [`Self::HEADINGS`] (each
    /// heading at the start of a line, in any case; text may follow it on the
    /// same line). Returns the first heading that is missing or has no text.
    pub fn parse(text: &str) -> Result<Self, &'static str> {
        let mut parts: [Option<String>; 3] = [None, None, None];
        let mut current: Option<usize> = None;
        for line in text.lines() {
            let lower = line.trim_start().to_lowercase();
            let heading = Self::HEADINGS
                .iter()
                .position(|h| lower.starts_with(&h.to_lowercase()));
            let rest = match heading {
                Some(i) => {
                    current = Some(i);
                    let start = line.len() - line.trim_start().len() + Self::HEADINGS[i].len();
                    line.get(start..).unwrap_or("")
                }
                None => line,
            };
            if let Some(i) = current {
                let part = parts[i].get_or_insert_with(String::new);
                if !part.is_empty() || !rest.trim().is_empty() {
                    if !part.is_empty() {
                        part.push('\n');
                    }
                    part.push_str(rest.trim_end());
                }
            }
        }
        let mut out = parts.map(|p| p.map(|t| t.trim().to_string()).unwrap_or_default());
        if let Some(i) = out.iter().position(String::is_empty) {
            return Err(Self::HEADINGS[i]);
        }
        let [appreciated, grievance, change] = std::mem::take(&mut out);
        Ok(UnionAnswer {
            appreciated,
            grievance,
            change,
        })
    }

    /// The three parts on one line each, labelled, for the feed and exports.
    pub fn as_text(&self) -> String {
        format!(
            "Appreciated: {}\nWeighed on me: {}\nOne thing to change: {}",
            self.appreciated, self.grievance, self.change
        )
    }
}

impl Answer {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The blind exercises both partners answer before seeing each other's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ExerciseKind {
    /// What you believe your partner felt during a recent disagreement.
    PerspectiveSwap,
    /// What your partner thinks, feels, says and does about something.
    EmpathyMap,
    /// Three emotions you felt, after a conflict.
    EmotionNaming,
    /// The high and the low of your week.
    HighLow,
    /// An open question for both of you.
    Question,
    /// The monthly state of the union: appreciations, a grievance, one change.
    StateOfTheUnion,
}

/// A change to a member's devices, told to both partners in a `Device` item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceChange {
    Added,
    Revoked,
    /// A device restored from the recovery code.
    Restored,
    /// A recovery key set up (or replaced).
    Recovery,
}

impl DeviceChange {
    /// "added a device", as a sentence's verb phrase.
    pub fn describe(self) -> &'static str {
        match self {
            DeviceChange::Added => "added a device",
            DeviceChange::Revoked => "removed a device",
            DeviceChange::Restored => "restored everything with the recovery code on a new device",
            DeviceChange::Recovery => "set up a recovery code",
        }
    }
}

/// The content kinds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Body {
    CheckIn(CheckIn),
    Journal {
        text: String,
    },
    /// A new version of an earlier item of the same author.
    Edit {
        target: String,
        text: String,
    },
    /// A tombstone for an earlier item of the same author.
    Delete {
        target: String,
    },
    /// A sealed answer (a day's check-in or an exercise answer): readable only once
    /// its key is revealed, which happens after the partner has sealed theirs.
    Sealed {
        exercise: String,
        sealed: String,
        /// The author's own check-in exchange this answer moves from: two
        /// check-ins opened at once pair in the earlier exchange (PRACTICES.md).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        moved_from: Option<String>,
        /// Protocol 2: the member-private key generation the answer's key is
        /// derived from (PROTOCOL.md §9), so the author's own devices read it
        /// from this one envelope. Absent in answers whose key came as an
        /// `answer_key` item.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        gen: Option<u32>,
    },
    /// This member's own key to one of its sealed answers (sent privately, so each
    /// of the member's devices can read and reveal it).
    AnswerKey {
        exercise: String,
        key: String,
        /// The key also went to the relay as a held reveal (PROTOCOL.md §9), which
        /// the relay releases: no `reveal` item is owed.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        held: bool,
    },
    /// Reveals the author's answer key for an exercise both have answered.
    Reveal {
        exercise: String,
        key: String,
    },
    /// Starts a blind exercise; its entry id is the exercise id.
    Exercise {
        exercise_kind: ExerciseKind,
        prompt: String,
    },
    /// Marks the partner's revealed answer as accurate or not.
    Mark {
        exercise: String,
        accurate: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        note: Option<String>,
    },
    /// Reflects back, in one's own words, what one heard in the partner's item.
    Reflect {
        target: String,
        text: String,
    },
    /// The author of the reflected item: "yes, that is it".
    Confirm {
        target: String,
    },
    /// The author of the reflected item: "not quite — here is what you missed".
    Correct {
        target: String,
        text: String,
    },
    /// A pause in a difficult conversation.
    Timeout {
        minutes: u32,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        text: Option<String>,
    },
    /// Ends one's own pause early.
    Resume,
    /// Something one appreciates about the partner.
    Appreciation {
        text: String,
    },
    /// Starts (`start`: the first day, `YYYY-MM-DD`) or stops (`None`) the
    /// member's 30-day challenge. Private: it reaches the member's own devices.
    Challenge {
        #[serde(default)]
        start: Option<String>,
    },
    /// A change to the author's devices, with the device's name (names never
    /// travel in the clear roster).
    Device {
        change: DeviceChange,
        device: String,
        #[serde(default)]
        name: String,
    },
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::CheckIn(_) => "checkin",
            Body::Journal { .. } => "journal",
            Body::Edit { .. } => "edit",
            Body::Delete { .. } => "delete",
            Body::Sealed { .. } => "sealed",
            Body::AnswerKey { .. } => "answer_key",
            Body::Reveal { .. } => "reveal",
            Body::Exercise { .. } => "exercise",
            Body::Mark { .. } => "mark",
            Body::Reflect { .. } => "reflect",
            Body::Confirm { .. } => "confirm",
            Body::Correct { .. } => "correct",
            Body::Timeout { .. } => "timeout",
            Body::Resume => "resume",
            Body::Appreciation { .. } => "appreciation",
            Body::Challenge { .. } => "challenge",
            Body::Device { .. } => "device",
        }
    }
}

/// A head of another device's chain the author had seen when writing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Head {
    pub device: String,
    pub seq: u64,
    pub hash: String,
}

/// The plaintext of one envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    /// Format version of this JSON.
    pub v: u8,
    /// When the author wrote it, in Unix milliseconds (the author's clock).
    pub at: i64,
    #[serde(flatten)]
    pub body: Body,
    #[serde(default)]
    pub heads: Vec<Head>,
    /// When the author's device last synced, which is when it saw `heads` and
    /// `roster` (the author's clock). A reader whose own item was acknowledged
    /// well before this, yet is missing from `heads`, learns that the relay
    /// withheld it from the partner.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seen_at: Option<i64>,
    /// The roster the author had verified then: its length and the hash of its
    /// last event, so a device change shown to one partner only is noticed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub roster: Option<RosterHead>,
}

/// The head of a roster as one device verified it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RosterHead {
    pub len: u64,
    pub hash: String,
}

impl Item {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::UnionAnswer;

    #[test]
    fn a_union_answer_is_read_from_its_three_headings() {
        let text = "Appreciated: the soup you made\non Sunday\n\nweighed on me:\nthe late nights\nOne thing to change: walk together\n";
        let a = UnionAnswer::parse(text).unwrap_or_else(|h| panic!("missing {h}"));
        assert_eq!(a.appreciated, "the soup you made\non Sunday");
        assert_eq!(a.grievance, "the late nights");
        assert_eq!(a.change, "walk together");
        assert_eq!(
            UnionAnswer::parse(&UnionAnswer::form()),
            Err("Appreciated:")
        );
        assert_eq!(
            UnionAnswer::parse("Appreciated: a\nWeighed on me: b\n"),
            Err("One thing to change:")
        );
        assert_eq!(UnionAnswer::parse("just some words"), Err("Appreciated:"));
        let round = UnionAnswer::parse(&a.as_text()).unwrap_or_else(|h| panic!("missing {h}"));
        assert_eq!(round, a);
    }
}
