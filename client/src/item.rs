//! What travels inside an envelope's ciphertext: one item, as JSON. The relay never
//! sees any of it — kinds, times and content are all inside.

use serde::{Deserialize, Serialize};

/// What one needs right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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
}

impl Body {
    pub fn kind(&self) -> &'static str {
        match self {
            Body::CheckIn(_) => "checkin",
            Body::Journal { .. } => "journal",
            Body::Edit { .. } => "edit",
            Body::Delete { .. } => "delete",
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
}

impl Item {
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }
}
