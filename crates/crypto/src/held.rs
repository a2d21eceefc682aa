//! Held reveals (PROTOCOL.md §9): an answer key sealed for the partner under the
//! space's epoch key and signed by its author, which the relay keeps back until
//! the partner has sealed an answer to the same exchange.
//!
//! `k = HKDF-SHA256(salt = space, ikm = epoch key, info = HELD_REVEAL_KEY || key_id || entry)`
//! `ciphertext = XChaCha20-Poly1305(k, nonce, answer key, aad = held header)`

use attune_proto::held::HELD_KEY_CT;
use attune_proto::{labels, EntryId, HeldHeader, HeldReveal, Hold, KeyId, Released, SpaceId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::DeviceIdentity;
use crate::keys::{expand, Keyring};
use crate::secret::{random_array, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum HeldError {
    #[error("no epoch key to seal or open the held reveal with")]
    NoKey,
    #[error("a held reveal is sealed under an epoch key, never a private one")]
    NotEpoch,
    #[error("the held reveal's signature does not verify")]
    Signature,
    #[error("the held reveal does not decrypt: altered, or sealed under another key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

fn derive(epoch: &SymmetricKey, header: &HeldHeader) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(Some(&header.space.0), epoch.expose());
    let info = [
        labels::HELD_REVEAL_KEY,
        &header.key.encode()[..],
        &header.entry.0[..],
    ]
    .concat();
    let mut out = Zeroizing::new([0u8; 32]);
    if hk.expand(&info, &mut out[..]).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    SymmetricKey::from_bytes(*out)
}

/// Seals `answer_key` for the partner and signs it as `identity` (the header's
/// author).
pub fn seal_held(
    identity: &DeviceIdentity,
    keys: &Keyring,
    header: HeldHeader,
    answer_key: &SymmetricKey,
) -> Result<HeldReveal, HeldError> {
    if !matches!(header.key, KeyId::Epoch(_)) {
        return Err(HeldError::NotEpoch);
    }
    let epoch = keys.get(&header.key).ok_or(HeldError::NoKey)?;
    let nonce: [u8; 24] = random_array();
    let k = derive(epoch, &header);
    let ct = XChaCha20Poly1305::new(k.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: answer_key.expose(),
                aad: &header.encode(),
            },
        )
        .map_err(|_| HeldError::Seal)?;
    let ciphertext: [u8; HELD_KEY_CT] = ct.try_into().map_err(|_| HeldError::Seal)?;
    let signature = identity.sign_held(&HeldReveal::signed_part(&header, &nonce, &ciphertext));
    Ok(HeldReveal {
        header,
        nonce,
        ciphertext,
        signature,
    })
}

/// Checks a released reveal's signature with its author's signing key, then
/// opens the answer key.
pub fn open_held(
    held: &HeldReveal,
    author: &attune_proto::sig::Verifier,
    keys: &Keyring,
) -> Result<SymmetricKey, HeldError> {
    held.verify_with(author).map_err(|_| HeldError::Signature)?;
    if !matches!(held.header.key, KeyId::Epoch(_)) {
        return Err(HeldError::NotEpoch);
    }
    let epoch = keys.get(&held.header.key).ok_or(HeldError::NoKey)?;
    let k = derive(epoch, &held.header);
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(k.expose().into())
            .decrypt(
                XNonce::from_slice(&held.nonce),
                Payload {
                    msg: &held.ciphertext,
                    aad: &held.header.encode(),
                },
            )
            .map_err(|_| HeldError::Open)?,
    );
    let bytes: [u8; 32] = plain[..].try_into().map_err(|_| HeldError::Open)?;
    Ok(SymmetricKey::from_bytes(bytes))
}

// Protocol 2 (PROTOCOL.md §9): hold slots. Both members derive one opaque tag
// per exchange from epoch key 0 (which every device of the space holds), so the
// relay can match the two answers of an exchange without learning which
// envelopes are answers until it releases them.

/// `HKDF(salt = space, ikm = epoch key 0, info = EXCHANGE_TAG || exchange)`.
pub fn exchange_tag(
    keys: &Keyring,
    space: &SpaceId,
    exchange: &EntryId,
) -> Result<[u8; 32], HeldError> {
    let epoch0 = keys.get(&KeyId::Epoch(0)).ok_or(HeldError::NoKey)?;
    Ok(*expand::<32>(
        epoch0,
        space,
        &[labels::EXCHANGE_TAG, &exchange.0],
    ))
}

fn hold_key(keys: &Keyring, space: &SpaceId, entry: &EntryId) -> Result<SymmetricKey, HeldError> {
    let epoch0 = keys.get(&KeyId::Epoch(0)).ok_or(HeldError::NoKey)?;
    Ok(SymmetricKey::from_bytes(*expand::<32>(
        epoch0,
        space,
        &[labels::HOLD_KEY, &entry.0],
    )))
}

fn hold_aad(entry: &EntryId, tag: &[u8; 32]) -> Vec<u8> {
    [&[2u8][..], &entry.0, tag].concat()
}

/// The hold slot of the sealed answer `entry` to `exchange`: its answer key,
/// for the relay to keep back until the partner's answer comes.
pub fn seal_hold(
    keys: &Keyring,
    space: &SpaceId,
    exchange: &EntryId,
    entry: &EntryId,
    answer_key: &SymmetricKey,
) -> Result<Hold, HeldError> {
    let tag = exchange_tag(keys, space, exchange)?;
    let k = hold_key(keys, space, entry)?;
    let nonce: [u8; 24] = random_array();
    let ct = XChaCha20Poly1305::new(k.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: answer_key.expose(),
                aad: &hold_aad(entry, &tag),
            },
        )
        .map_err(|_| HeldError::Seal)?;
    let ciphertext: [u8; HELD_KEY_CT] = ct.as_slice().try_into().map_err(|_| HeldError::Seal)?;
    Ok(Hold {
        tag,
        nonce,
        ciphertext,
    })
}

/// The slot of an envelope that is not a sealed answer: random bytes, which the
/// relay cannot tell from a real one.
pub fn random_hold() -> Hold {
    Hold {
        tag: random_array(),
        nonce: random_array(),
        ciphertext: random_array(),
    }
}

/// Opens a released hold of the sealed answer `released.entry`, which this
/// device read as an answer to `exchange`. The caller still checks the key
/// against the answer's commitment.
pub fn open_released(
    keys: &Keyring,
    space: &SpaceId,
    exchange: &EntryId,
    released: &Released,
) -> Result<SymmetricKey, HeldError> {
    let tag = exchange_tag(keys, space, exchange)?;
    let k = hold_key(keys, space, &released.entry)?;
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(k.expose().into())
            .decrypt(
                XNonce::from_slice(&released.nonce),
                Payload {
                    msg: &released.ciphertext,
                    aad: &hold_aad(&released.entry, &tag),
                },
            )
            .map_err(|_| HeldError::Open)?,
    );
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| HeldError::Open)?;
    Ok(SymmetricKey::from_bytes(bytes))
}

/// The key of an own sealed answer (protocol 2), which every device of the
/// member derives from the member-private key generation `gen`:
/// `HKDF(salt = space, ikm = member key gen, info = ANSWER_KEY || entry)`. So the
/// answer and what its own devices need to read it travel in one envelope.
pub fn own_answer_key(
    keys: &Keyring,
    space: &SpaceId,
    gen: u32,
    entry: &EntryId,
) -> Result<SymmetricKey, HeldError> {
    let private = keys
        .get(&KeyId::MemberPrivate(gen))
        .ok_or(HeldError::NoKey)?;
    Ok(SymmetricKey::from_bytes(*expand::<32>(
        private,
        space,
        &[labels::ANSWER_KEY, &entry.0],
    )))
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_proto::{DeviceId, EntryId, SpaceId};

    fn setup() -> (DeviceIdentity, Keyring, HeldHeader) {
        let id = DeviceIdentity::generate();
        let mut keys = Keyring::new();
        keys.insert(KeyId::Epoch(1), SymmetricKey::generate());
        let header = HeldHeader {
            space: SpaceId([1; 16]),
            exchange: EntryId([2; 16]),
            entry: EntryId([3; 16]),
            author: id.id(),
            key: KeyId::Epoch(1),
        };
        (id, keys, header)
    }

    #[test]
    fn the_partner_opens_what_the_author_sealed() {
        let (id, keys, header) = setup();
        let key = SymmetricKey::generate();
        let held = seal_held(&id, &keys, header, &key).unwrap();
        let decoded = HeldReveal::decode(&held.encode()).unwrap();
        let opened = open_held(
            &decoded,
            &attune_proto::sig::Verifier::new(&id.public().sign).unwrap(),
            &keys,
        )
        .unwrap();
        assert_eq!(opened.expose(), key.expose());
    }

    #[test]
    fn altered_forged_or_foreign_reveals_are_refused() {
        let (id, keys, header) = setup();
        let key = SymmetricKey::generate();
        let held = seal_held(&id, &keys, header, &key).unwrap();
        // Another device's key does not verify it.
        let other = DeviceIdentity::generate();
        assert_eq!(
            open_held(
                &held,
                &attune_proto::sig::Verifier::new(&other.public().sign).unwrap(),
                &keys
            ),
            Err(HeldError::Signature)
        );
        // Moved to another exchange: the signature no longer covers it.
        let mut moved = held.clone();
        moved.header.exchange = EntryId([9; 16]);
        assert_eq!(
            open_held(
                &moved,
                &attune_proto::sig::Verifier::new(&id.public().sign).unwrap(),
                &keys
            ),
            Err(HeldError::Signature)
        );
        // Signed correctly but under an epoch key this device does not hold.
        let mut other_keys = Keyring::new();
        other_keys.insert(KeyId::Epoch(1), SymmetricKey::generate());
        assert_eq!(
            open_held(
                &held,
                &attune_proto::sig::Verifier::new(&id.public().sign).unwrap(),
                &other_keys
            ),
            Err(HeldError::Open)
        );
        // A private key id is never used for a held reveal.
        let mut private = header;
        private.key = KeyId::MemberPrivate(0);
        private.author = DeviceId(id.id().0);
        assert_eq!(
            seal_held(&id, &keys, private, &key).err(),
            Some(HeldError::NotEpoch)
        );
    }
}
