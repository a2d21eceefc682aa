//! What front-ends ask the engine for: the timeline filtered and cut to the
//! newest items, one item by id, in typed terms rather than strings.

use crate::entry::Entry;
use crate::error::ClientError;
use crate::item::Body;
use crate::practice::Practice;
use crate::profile::{Profile, View};

/// Whose items a filter keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Author {
    Me,
    Partner,
}

/// The kinds of items the timeline shows. Keys, reveals, edits and tombstones
/// are folded into the items they belong to and are not shown on their own;
/// settings shared between one's devices (the challenge) are not items to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FeedKind {
    CheckIn,
    Journal,
    Answer,
    Exercise,
    Mark,
    Reflect,
    Confirm,
    Correct,
    Timeout,
    Resume,
    Appreciation,
    /// A device added, removed or restored, or a recovery code set up.
    Device,
}

impl FeedKind {
    pub const ALL: [FeedKind; 12] = [
        FeedKind::CheckIn,
        FeedKind::Journal,
        FeedKind::Answer,
        FeedKind::Exercise,
        FeedKind::Mark,
        FeedKind::Reflect,
        FeedKind::Confirm,
        FeedKind::Correct,
        FeedKind::Timeout,
        FeedKind::Resume,
        FeedKind::Appreciation,
        FeedKind::Device,
    ];

    /// The word for this kind in filters and JSON.
    pub fn name(self) -> &'static str {
        match self {
            FeedKind::CheckIn => "checkin",
            FeedKind::Journal => "journal",
            FeedKind::Answer => "answer",
            FeedKind::Exercise => "exercise",
            FeedKind::Mark => "mark",
            FeedKind::Reflect => "reflect",
            FeedKind::Confirm => "confirm",
            FeedKind::Correct => "correct",
            FeedKind::Timeout => "timeout",
            FeedKind::Resume => "resume",
            FeedKind::Appreciation => "appreciation",
            FeedKind::Device => "device",
        }
    }

    /// Parses a kind's word, ignoring case (`CheckIn`, `check-in` and `checkin`).
    pub fn parse(s: &str) -> Option<FeedKind> {
        let word: String = s
            .chars()
            .filter(|c| c.is_alphanumeric())
            .flat_map(char::to_lowercase)
            .collect();
        Self::ALL.into_iter().find(|k| k.name() == word)
    }

    /// The kind an entry shows as, or `None` for what the timeline folds away.
    pub fn of(e: &Entry, practice: &Practice) -> Option<FeedKind> {
        Some(match &e.item.body {
            Body::CheckIn(_) => FeedKind::CheckIn,
            Body::Journal { .. } => FeedKind::Journal,
            Body::Sealed { exercise, .. } => {
                // A day's check-in is an exchange nobody started as an exercise.
                let day = practice
                    .exchange(exercise)
                    .is_none_or(|x| x.exercise.is_none());
                if day {
                    FeedKind::CheckIn
                } else {
                    FeedKind::Answer
                }
            }
            Body::Exercise { .. } => FeedKind::Exercise,
            Body::Mark { .. } => FeedKind::Mark,
            Body::Reflect { .. } => FeedKind::Reflect,
            Body::Confirm { .. } => FeedKind::Confirm,
            Body::Correct { .. } => FeedKind::Correct,
            Body::Timeout { .. } => FeedKind::Timeout,
            Body::Resume => FeedKind::Resume,
            Body::Appreciation { .. } => FeedKind::Appreciation,
            Body::Device { .. } => FeedKind::Device,
            Body::AnswerKey { .. }
            | Body::Reveal { .. }
            | Body::Edit { .. }
            | Body::Delete { .. }
            | Body::Challenge { .. } => return None,
        })
    }
}

/// A timeline filter. Empty `kinds` keeps every kind.
#[derive(Debug, Clone, Default)]
pub struct FeedQuery {
    /// Only items written at or after this time (Unix ms).
    pub since_ms: Option<i64>,
    pub from: Option<Author>,
    pub kinds: Vec<FeedKind>,
    /// Only the newest N of what matches.
    pub newest: Option<usize>,
}

impl FeedQuery {
    /// True if the query narrows the timeline at all (an empty answer then means
    /// "nothing matched", not "nothing yet").
    pub fn is_filtered(&self) -> bool {
        self.since_ms.is_some() || self.from.is_some() || !self.kinds.is_empty()
    }

    fn keeps(&self, e: &Entry, practice: &Practice) -> bool {
        let Some(kind) = FeedKind::of(e, practice) else {
            return false;
        };
        self.since_ms.is_none_or(|s| e.item.at >= s)
            && match self.from {
                Some(Author::Me) => e.mine,
                Some(Author::Partner) => !e.mine,
                None => true,
            }
            && (self.kinds.is_empty() || self.kinds.contains(&kind))
    }
}

/// The timeline's answer: the matching items, oldest first, and the verified
/// context they are rendered with (their exchanges, threads and problems).
#[derive(Debug)]
pub struct Feed {
    pub items: Vec<Entry>,
    pub view: View,
}

/// One item found by its id, with its context.
#[derive(Debug)]
pub struct Found {
    pub entry: Entry,
    pub view: View,
}

impl Profile {
    /// The timeline as `query` asks for it: the store picks the matching items
    /// (the newest N first when asked), and only those and their context are
    /// opened.
    pub fn feed(&self, query: &FeedQuery) -> Result<Feed, ClientError> {
        // Check-ins are open ones and sealed answers to a day's exchange;
        // answers are sealed answers to an exercise.
        let mut kinds: Vec<&'static str> = query
            .kinds
            .iter()
            .filter(|k| **k != FeedKind::Answer)
            .map(|k| k.name())
            .collect();
        let sealed = match (
            query.kinds.contains(&FeedKind::CheckIn),
            query.kinds.contains(&FeedKind::Answer),
        ) {
            (true, true) => {
                kinds.push("sealed");
                None
            }
            (true, false) => Some(true),
            (false, true) => Some(false),
            (false, false) => None,
        };
        let mine = query.from.map(|a| a == Author::Me);
        let (ids, view) = self.feed_rows(query.since_ms, mine, &kinds, sealed, query.newest)?;
        let wanted: std::collections::HashSet<&String> = ids.iter().collect();
        let mut items: Vec<Entry> = view
            .entries
            .iter()
            .filter(|e| wanted.contains(&e.id.to_hex()) && query.keeps(e, &view.practice))
            .cloned()
            .collect();
        items.sort_by_key(|e| (e.item.at, e.cursor.unwrap_or(u64::MAX)));
        Ok(Feed { items, view })
    }

    /// The item whose id starts with `prefix` (at least 4 hex digits).
    pub fn find(&self, prefix: &str) -> Result<Found, ClientError> {
        let id = prefix.trim().to_lowercase();
        if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(ClientError::Input(format!(
                "no item has the id '{}': an id is hex digits, give at least 4 of them (`attune feed` shows them)",
                crate::inert::line(prefix.trim())
            )));
        }
        let ids = self.ids_with_prefix(&id, 2)?;
        match ids.as_slice() {
            [one] => {
                let view = self.view_around(std::slice::from_ref(one), true)?;
                let entry = view
                    .entries
                    .iter()
                    .find(|e| e.id.to_hex() == *one)
                    .cloned()
                    .ok_or_else(|| {
                        ClientError::Input(format!(
                            "item {id} was folded into another (an edit or a removal); `attune feed` shows the ids"
                        ))
                    })?;
                Ok(Found { entry, view })
            }
            [] => Err(ClientError::Input(format!(
                "no item with id {id}; `attune feed` shows the ids"
            ))),
            _ => Err(ClientError::Input(format!(
                "{id} matches several items; give more of the id"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FeedKind;

    #[test]
    fn kinds_parse_whatever_the_case_and_punctuation() {
        assert_eq!(FeedKind::parse("CheckIn"), Some(FeedKind::CheckIn));
        assert_eq!(FeedKind::parse("check-in"), Some(FeedKind::CheckIn));
        assert_eq!(FeedKind::parse("JOURNAL"), Some(FeedKind::Journal));
        assert_eq!(FeedKind::parse("answer_key"), None);
        for k in FeedKind::ALL {
            assert_eq!(FeedKind::parse(k.name()), Some(k));
        }
    }
}
