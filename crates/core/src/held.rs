//! Items held back on this device for a cool-off (`journal --send-after`): sealed
//! under the member key in the local database until their time comes. A held
//! item's id is the entry id it is sent under, so one id names it from the moment
//! it is written: it can be shown, edited or deleted by that id while held.

use attune_proto::KeyId;
use zeroize::Zeroizing;

use crate::error::ClientError;
use crate::item::Body;
use crate::profile::Profile;

/// What a held item's sealed content is bound to (as `Profile::open_held` reads it).
const HELD_LABEL: &[u8] = b"later";

/// A held item, opened.
#[derive(Debug, Clone)]
pub struct HeldItem {
    /// The entry id it will be sent under (32 hex digits).
    pub id: String,
    /// When it is sent (Unix ms), at the first sync from then on.
    pub send_at: i64,
    pub private: bool,
    pub body: Body,
}

impl Profile {
    /// Seals a held item's content under the member key, for this device only.
    pub(crate) fn seal_held(&self, body: &Body) -> Result<Vec<u8>, ClientError> {
        let key = self
            .keys
            .get(&KeyId::MemberPrivate(0))
            .ok_or_else(|| ClientError::Corrupt("missing member key".into()))?;
        let plain = Zeroizing::new(serde_json::to_vec(body).unwrap_or_default());
        attune_crypto::local::seal_local(key, HELD_LABEL, &plain)
            .map_err(|e| ClientError::Corrupt(e.to_string()))
    }

    /// Every item held on this device, soonest first.
    pub fn held_items(&self) -> Result<Vec<HeldItem>, ClientError> {
        self.db
            .later()?
            .into_iter()
            .map(|(id, send_at, private, blob)| {
                Ok(HeldItem {
                    body: self.open_held(&blob)?,
                    id,
                    send_at,
                    private,
                })
            })
            .collect()
    }

    /// The held item whose id starts with `prefix` (at least 4 hex digits), if
    /// one does. `None` when none does (the id may name a sent item: ask
    /// [`Profile::find`]); an error when the prefix is ambiguous.
    pub fn find_held(&self, prefix: &str) -> Result<Option<HeldItem>, ClientError> {
        let id = prefix.trim().to_lowercase();
        if id.len() < 4 || !id.chars().all(|c| c.is_ascii_hexdigit()) {
            return Ok(None);
        }
        let mut found: Vec<HeldItem> = self
            .held_items()?
            .into_iter()
            .filter(|h| h.id.starts_with(&id))
            .collect();
        let ambiguous =
            || ClientError::Input(format!("{id} matches several items; give more of the id"));
        match found.len() {
            0 => Ok(None),
            1 if self.ids_with_prefix(&id, 1)?.is_empty() => Ok(found.pop()),
            _ => Err(ambiguous()),
        }
    }

    /// Replaces the content of a held item (an edit before it is sent). Fails if
    /// it is no longer held: sent or withdrawn meanwhile.
    pub fn replace_held(&mut self, id: &str, body: &Body) -> Result<(), ClientError> {
        let blob = self.seal_held(body)?;
        if self.db.replace_later(id, &blob)? {
            Ok(())
        } else {
            Err(ClientError::Input(format!(
                "{id} is no longer held: it was sent or withdrawn meanwhile; `attune show {}` shows it if it was sent",
                &id[..id.len().min(8)]
            )))
        }
    }

    /// Withdraws a held item: it is never sent. False if it was not held (any more).
    pub fn withdraw_held(&self, id: &str) -> Result<bool, ClientError> {
        Ok(self.db.remove_later(id)?)
    }
}
