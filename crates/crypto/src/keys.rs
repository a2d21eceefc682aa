//! The symmetric keys of a space (epoch keys, member-private keys) and the
//! per-entry key schedule.

use std::collections::BTreeMap;
use std::fmt;

use attune_proto::{labels, DeviceId, EntryId, KeyId, MemberId, SpaceId};
use hkdf::Hkdf;
use sha2::{Digest, Sha256};

use crate::secret::SymmetricKey;

/// The keys one device holds, by key id. Old epoch keys stay so history stays readable.
#[derive(Clone, Default)]
pub struct Keyring {
    keys: BTreeMap<KeyId, SymmetricKey>,
    /// Whose member-private keys these are: they open only that member's envelopes.
    member: Option<MemberId>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("key_ids", &self.keys.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl Keyring {
    pub fn new() -> Self {
        Self::default()
    }

    /// Says which member this device belongs to, so `MemberPrivate` keys are used
    /// only for that member's envelopes (each member's key has the same key ids).
    pub fn set_member(&mut self, member: MemberId) {
        self.member = Some(member);
    }

    pub fn member(&self) -> Option<MemberId> {
        self.member
    }

    pub fn insert(&mut self, id: KeyId, key: SymmetricKey) {
        self.keys.insert(id, key);
    }

    pub fn get(&self, id: &KeyId) -> Option<&SymmetricKey> {
        self.keys.get(id)
    }

    pub fn ids(&self) -> impl Iterator<Item = &KeyId> {
        self.keys.keys()
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&KeyId, &SymmetricKey)> {
        self.keys.iter()
    }

    /// The newest member-private key id, which new private items are sealed under.
    pub fn current_private(&self) -> Option<KeyId> {
        self.keys
            .keys()
            .filter(|k| matches!(k, KeyId::MemberPrivate(_)))
            .max()
            .copied()
    }

    /// Adds a key unless one with this id is already held: a key once used is
    /// never replaced (what was sealed under it must stay readable).
    pub fn insert_new(&mut self, id: KeyId, key: SymmetricKey) -> bool {
        if self.keys.contains_key(&id) || matches!(id, KeyId::KeyWraps(_)) {
            return false;
        }
        self.keys.insert(id, key);
        true
    }

    /// The keys to try on a protocol 2 envelope, most likely first: epoch keys
    /// newest first, then (for an envelope of this device's own member) the
    /// member-private generations newest first. Trying one costs a key
    /// derivation and a comparison, no decryption.
    pub(crate) fn candidates(&self, own_member: bool) -> Vec<(KeyId, &SymmetricKey)> {
        let mut epochs: Vec<(KeyId, &SymmetricKey)> = Vec::new();
        let mut private: Vec<(KeyId, &SymmetricKey)> = Vec::new();
        for (id, key) in self.keys.iter().rev() {
            match id {
                KeyId::Epoch(_) => epochs.push((*id, key)),
                KeyId::MemberPrivate(_) if own_member => private.push((*id, key)),
                _ => {}
            }
        }
        epochs.extend(private);
        epochs
    }

    /// The newest epoch key id, which new shared items are sealed under.
    pub fn current_epoch(&self) -> Option<KeyId> {
        self.keys
            .keys()
            .filter(|k| matches!(k, KeyId::Epoch(_)))
            .max()
            .copied()
    }
}

/// `HKDF-SHA256(salt = space, ikm = key, info = ENTRY_KEY || key_id || entry)`:
/// every item is sealed under its own key, so nonce reuse across items is harmless
/// and one item's key says nothing about another's.
pub fn derive_entry_key(
    key: &SymmetricKey,
    space: &SpaceId,
    key_id: &KeyId,
    entry: &EntryId,
) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(Some(&space.0), key.expose());
    let mut info = Vec::with_capacity(labels::ENTRY_KEY.len() + 5 + 16);
    info.extend_from_slice(labels::ENTRY_KEY);
    info.extend_from_slice(&key_id.encode());
    info.extend_from_slice(&entry.0);
    let mut out = [0u8; 32];
    // 32 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
    if hk.expand(&info, &mut out).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    let key = SymmetricKey::from_bytes(out);
    zeroize::Zeroize::zeroize(&mut out);
    key
}

/// Protocol 2's per-entry key schedule: `HKDF-SHA256(salt = space, ikm = key,
/// info = ENTRY_KEY_V2 || key_id || entry)`, 64 bytes: the AEAD key, then the
/// commitment the envelope carries in the clear. The commitment is a PRF output
/// under the key, so it says nothing of the key to the relay, and a reader who
/// derives it for a candidate key knows at once whether that is the one.
pub fn derive_entry_key_v2(
    key: &SymmetricKey,
    space: &SpaceId,
    key_id: &KeyId,
    entry: &EntryId,
) -> (SymmetricKey, [u8; 32]) {
    let okm = expand::<64>(
        key,
        space,
        &[labels::ENTRY_KEY_V2, &key_id.encode(), &entry.0],
    );
    let mut aead = [0u8; 32];
    let mut commitment = [0u8; 32];
    aead.copy_from_slice(&okm[..32]);
    commitment.copy_from_slice(&okm[32..]);
    let out = SymmetricKey::from_bytes(aead);
    zeroize::Zeroize::zeroize(&mut aead);
    (out, commitment)
}

/// `HKDF-SHA256(salt = space, ikm = key, info = parts…)` to `N` bytes.
pub(crate) fn expand<const N: usize>(
    key: &SymmetricKey,
    space: &SpaceId,
    info: &[&[u8]],
) -> zeroize::Zeroizing<[u8; N]> {
    let hk = Hkdf::<Sha256>::new(Some(&space.0), key.expose());
    let mut out = zeroize::Zeroizing::new([0u8; N]);
    // The lengths used (at most 64 bytes) are far below HKDF-SHA256's limit.
    if hk.expand_multi_info(info, &mut out[..]).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    out
}

/// The entry id of an imported item (`attune import`):
/// `HKDF-SHA256(salt = space, ikm = member key, info = IMPORT_ID || device ||
/// SHA-256(source))`, 16 bytes. The same source imported again on the same
/// device gets the same id, so it is found and not written twice; another of
/// the member's devices derives its own (two devices never send one id for two
/// envelopes, which the relay refuses), and the member's devices can recompute
/// each other's. Keyed by the member key, the id says nothing about the source
/// to the relay or the partner.
pub fn derive_import_id(
    member_key: &SymmetricKey,
    space: &SpaceId,
    device: &DeviceId,
    source: &[u8],
) -> EntryId {
    let hk = Hkdf::<Sha256>::new(Some(&space.0), member_key.expose());
    let mut info = Vec::with_capacity(labels::IMPORT_ID.len() + 32 + 32);
    info.extend_from_slice(labels::IMPORT_ID);
    info.extend_from_slice(&device.0);
    info.extend_from_slice(&Sha256::digest(source));
    let mut out = [0u8; 16];
    // 16 bytes is far below HKDF-SHA256's 8160-byte limit, so this cannot fail.
    if hk.expand(&info, &mut out).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    EntryId(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_import_id_depends_on_every_input_and_only_on_them() {
        let key = SymmetricKey::from_bytes([1; 32]);
        let other_key = SymmetricKey::from_bytes([2; 32]);
        let space = SpaceId([3; 16]);
        let device = DeviceId([4; 32]);
        let id = derive_import_id(&key, &space, &device, b"jrnl entry");
        assert_eq!(id, derive_import_id(&key, &space, &device, b"jrnl entry"));
        for other in [
            derive_import_id(&other_key, &space, &device, b"jrnl entry"),
            derive_import_id(&key, &SpaceId([5; 16]), &device, b"jrnl entry"),
            derive_import_id(&key, &space, &DeviceId([6; 32]), b"jrnl entry"),
            derive_import_id(&key, &space, &device, b"jrnl entry."),
        ] {
            assert_ne!(id, other);
        }
    }
}
