//! What the engine hands its front-ends: verified, readable items and the
//! integrity problems found on the way.

use attune_proto::{DeviceId, EntryId, Roster};

use crate::item::{Body, Item};

/// A verified, readable item.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub cursor: Option<u64>,
    pub author: DeviceId,
    pub mine: bool,
    pub private: bool,
    pub pending: bool,
    pub item: Item,
    /// The latest text after edits, and whether it was deleted.
    pub edited: bool,
    pub deleted: bool,
}

/// An integrity problem found in what the relay served.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub kind: String,
    pub detail: String,
    pub cursor: Option<u64>,
}

/// Folds edits and tombstones into the items they target. Only the target's own
/// member may change it; anything else is ignored.
pub(crate) fn apply_edits(raw: Vec<Entry>, roster: &Roster) -> Vec<Entry> {
    let member = |d: &DeviceId| roster.device(d).map(|x| x.member);
    let mut out: Vec<Entry> = Vec::with_capacity(raw.len());
    // Where each item landed, by id: edits find their target without a scan.
    let mut at: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for e in raw {
        match &e.item.body {
            Body::Edit { target, text } => {
                if let Some(t) = at
                    .get(target)
                    .map(|&i| &mut out[i])
                    .filter(|t| member(&t.author) == member(&e.author))
                {
                    // Only journal entries are edited; a new check-in says how things are now.
                    if let Body::Journal { text: old } = &mut t.item.body {
                        *old = text.clone();
                        t.edited = true;
                    }
                }
            }
            Body::Delete { target } => {
                if let Some(t) = at
                    .get(target)
                    .map(|&i| &mut out[i])
                    .filter(|t| member(&t.author) == member(&e.author))
                {
                    // The commitments of blind exchanges cannot be withdrawn: deleting a
                    // sealed answer, a key or a reveal would let one answer again after
                    // seeing the partner's.
                    if deletable(&t.item.body) {
                        t.deleted = true;
                    }
                }
            }
            _ => {
                // The first item with an id counts, as a scan from the start found it.
                at.entry(e.id.to_hex()).or_insert(out.len());
                out.push(e);
            }
        }
    }
    out
}

/// What a tombstone may remove: one's own writing, never the parts of an exchange.
pub fn deletable(body: &Body) -> bool {
    matches!(
        body,
        Body::CheckIn(_) | Body::Journal { .. } | Body::Appreciation { .. }
    )
}
