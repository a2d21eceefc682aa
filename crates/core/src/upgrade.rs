//! Envelopes a protocol 1 client wrote that were still waiting in the outbox
//! when attune was updated. The relay now stores protocol 2 envelopes only, so
//! they are sealed again in the new format before they are sent: the same item
//! under the same key, entry id and sequence number, chained anew. Nothing
//! written offline before an update is lost.

use attune_crypto::{decrypt_envelope, seal_envelope, seal_key_envelope, Content};
use attune_proto::{Envelope, KeyId, KeyWrap};
use rusqlite::{params, OptionalExtension};

use crate::db::Resealed;
use crate::item::{Body, Item};
use crate::profile::{chain_header, ClientError, Profile};

fn corrupt(what: &str) -> ClientError {
    ClientError::Corrupt(format!("an envelope waiting in the outbox {what}"))
}

impl Profile {
    /// Seals again, in protocol 2, every unsent own envelope from the first one
    /// written in protocol 1 on (the later ones chain to it, so they change
    /// too). One the relay already served back is stored there: it is
    /// acknowledged instead. Returns how many were sealed again.
    pub fn reseal_legacy_outbox(&mut self) -> Result<usize, ClientError> {
        let queued = self.db.outbox()?;
        let legacy =
            |bytes: &[u8]| Envelope::decode(bytes).is_ok_and(|e| e.header.legacy_key.is_some());
        let Some(first) = queued.iter().position(|q| legacy(&q.envelope)) else {
            return Ok(0);
        };
        let me = self.identity.id();
        // Stored by the relay already (its acknowledgement was lost): it served
        // them back. They stay as they are.
        let mut stored = Vec::new();
        for q in &queued[first..] {
            let cursor: Option<i64> = self
                .db
                .conn()
                .query_row(
                    "SELECT cursor FROM items WHERE own_seq = ?1 AND author = ?2",
                    params![q.seq as i64, me.0.to_vec()],
                    |r| r.get(0),
                )
                .optional()
                .map_err(crate::db::DbError::from)?
                .flatten();
            if cursor.is_some() {
                stored.push(q.seq);
            }
        }
        if !stored.is_empty() {
            let now = self.now();
            self.db.acknowledge(&stored, now)?;
        }
        let queued = self.db.outbox()?;
        let Some(first) = queued.iter().position(|q| legacy(&q.envelope)) else {
            return Ok(0);
        };
        let roster = self.roster()?;
        let space = self.space()?;
        let mut prev: Option<String> = match queued[first].seq {
            1 => None,
            s => self
                .db
                .own_envelope(s - 1)?
                .and_then(|b| Envelope::decode(&b).ok())
                .map(|e| e.hash().to_hex()),
        };
        let mut resealed: Vec<Resealed> = Vec::new();
        for q in &queued[first..] {
            let env = Envelope::decode(&q.envelope).map_err(|_| corrupt("does not decode"))?;
            let opened = decrypt_envelope(&env, &roster, &self.keys)
                .map_err(|_| corrupt("does not open with this device's keys"))?;
            let header = chain_header(space, me, env.header.entry, q.seq, prev.clone())?;
            let new = match opened.content {
                Content::Item(bytes) => {
                    let mut item =
                        Item::from_bytes(&bytes).map_err(|_| corrupt("is not an item"))?;
                    // A protocol 1 held reveal cannot go up any more: the key is
                    // revealed with a `reveal` item once both have sealed.
                    if let Body::AnswerKey { held, .. } = &mut item.body {
                        *held = false;
                    }
                    let key = self
                        .keys
                        .get(&opened.key)
                        .ok_or_else(|| corrupt("is under a key this device lacks"))?;
                    seal_envelope(&self.identity, header, opened.key, key, &item.to_bytes())
                }
                Content::KeyWraps(list) => {
                    // Sealed under the epoch before the one it hands out, which
                    // every remaining device holds.
                    let KeyId::KeyWraps(n) = opened.key else {
                        return Err(corrupt("holds key wraps under an item key"));
                    };
                    let under = KeyId::Epoch(n.saturating_sub(1));
                    let key = self
                        .keys
                        .get(&under)
                        .ok_or_else(|| corrupt("needs an epoch key this device lacks"))?;
                    let wraps =
                        KeyWrap::decode_list(&list).map_err(|_| corrupt("holds bad key wraps"))?;
                    seal_key_envelope(&self.identity, header, (under, key), &wraps)
                }
            }
            .map_err(|e| ClientError::Corrupt(format!("cannot seal it again: {e}")))?;
            let hash = new.hash();
            prev = Some(hash.to_hex());
            // A protocol 1 held reveal is not accepted any more; a protocol 2
            // slot (written after the update, chained to an old envelope) stays.
            let held = q
                .held
                .clone()
                .filter(|h| attune_proto::Hold::decode(h).is_ok());
            resealed.push(Resealed {
                seq: q.seq,
                envelope: new.encode(),
                hash,
                held,
            });
        }
        self.db.replace_unsent(&me, &resealed)?;
        Ok(resealed.len())
    }
}
