//! Sealing and opening envelopes (PROTOCOL.md §4): XChaCha20-Poly1305 under a
//! per-entry key, with the canonical header as associated data, signed by the
//! author device.
//!
//! Protocol 2 names no key in the clear. The body starts with a commitment the
//! per-entry key schedule yields next to the key, so a reader finds the key by
//! deriving candidates (a hash each, no decryption) and the ciphertext opens
//! under exactly one key: nobody can craft one that reads differently to the
//! partner and to the author's own devices.

use attune_proto::{DecodeError, Envelope, EnvelopeHeader, KeyId, Roster, SignatureError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::DeviceIdentity;
use crate::keys::{derive_entry_key, derive_entry_key_v2, Keyring};
use crate::padding::{self, Buckets, PaddingError};
use crate::secret::{random_array, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("the header names another device as author")]
    WrongAuthor,
    #[error("items are sealed under an epoch or member-private key")]
    NotSealable,
    /// Signing it would make an envelope that no reader (nor the relay) decodes.
    #[error("the header breaks the chain rules: {0}")]
    InvalidHeader(DecodeError),
    #[error("new envelopes are written in protocol 2, which names no key in the header")]
    LegacyHeader,
    #[error(transparent)]
    Padding(#[from] PaddingError),
    #[error("encryption failed")]
    Encrypt,
}

/// Why an envelope was not opened. The variants map onto the integrity classes
/// of [`crate::chain`].
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum OpenError {
    #[error("the envelope is malformed: {0}")]
    Malformed(#[from] DecodeError),
    #[error("the envelope belongs to another space")]
    ForeignSpace,
    #[error("the author is not a device of this space, or was revoked before writing this")]
    UnknownAuthor,
    #[error("the author's signature does not verify: {0}")]
    BadSignature(SignatureError),
    /// Not one of this device's keys opens it (the partner's private entry, or
    /// an epoch this device was not given).
    #[error("this device does not hold the key the envelope is sealed under")]
    MissingKey,
    #[error("the ciphertext does not decrypt under its key")]
    Decrypt,
    #[error("the decrypted content is malformed: {0}")]
    Padding(#[from] PaddingError),
    #[error("the decrypted content is of an unknown type")]
    UnknownContent,
}

/// What an opened envelope holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// An item (JSON, PROTOCOL.md §14).
    Item(Zeroizing<Vec<u8>>),
    /// A key-wrap list (PROTOCOL.md §16): new keys, each for one device.
    KeyWraps(Vec<u8>),
}

/// An opened envelope: the key that opened it and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    /// The key it was sealed under (`KeyWraps(n)` only for a version 1 key-wrap
    /// envelope, which was not sealed).
    pub key: KeyId,
    pub content: Content,
}

impl Opened {
    /// The item bytes, if it holds an item.
    pub fn item(&self) -> Option<&[u8]> {
        match &self.content {
            Content::Item(b) => Some(b),
            Content::KeyWraps(_) => None,
        }
    }

    /// True when it was sealed under a member-private key.
    pub fn is_private(&self) -> bool {
        matches!(self.key, KeyId::MemberPrivate(_))
    }
}

const NONCE_LEN: usize = 24;
const COMMIT_LEN: usize = 32;
const TAG_LEN: usize = 16;
/// The content type byte in front of what a protocol 2 envelope seals.
const CONTENT_ITEM: u8 = 1;
const CONTENT_KEY_WRAPS: u8 = 2;

/// Seals an item's `plaintext` under `key_id` into a signed envelope.
/// `header.author` must be `identity`.
pub fn seal_envelope(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    key_id: KeyId,
    key: &SymmetricKey,
    plaintext: &[u8],
) -> Result<Envelope, SealError> {
    seal_with_nonce(
        identity,
        header,
        (key_id, key),
        CONTENT_ITEM,
        plaintext,
        random_array(),
    )
}

/// Seals a key-wrap list under the epoch key `key_id` (the one every
/// remaining device already holds).
pub(crate) fn seal_wraps(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    key_id: KeyId,
    key: &SymmetricKey,
    list: &[u8],
) -> Result<Envelope, SealError> {
    if !matches!(key_id, KeyId::Epoch(_)) {
        return Err(SealError::NotSealable);
    }
    seal_with_nonce(
        identity,
        header,
        (key_id, key),
        CONTENT_KEY_WRAPS,
        list,
        random_array(),
    )
}

/// [`seal_envelope`] with a chosen nonce: only for the fixed test vectors.
pub(crate) fn seal_with_nonce(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    (key_id, key): (KeyId, &SymmetricKey),
    content_type: u8,
    data: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Envelope, SealError> {
    if header.author != identity.id() {
        return Err(SealError::WrongAuthor);
    }
    if header.legacy_key.is_some() {
        return Err(SealError::LegacyHeader);
    }
    if matches!(key_id, KeyId::KeyWraps(_)) {
        return Err(SealError::NotSealable);
    }
    header.check().map_err(SealError::InvalidHeader)?;
    let mut inner = Zeroizing::new(Vec::with_capacity(data.len() + 1));
    inner.push(content_type);
    inner.extend_from_slice(data);
    let padded = padding::pad(Buckets::Envelope, &inner)?;
    let (entry_key, commitment) = derive_entry_key_v2(key, &header.space, &key_id, &header.entry);
    let aead = XChaCha20Poly1305::new(entry_key.expose().into());
    let aad = header.encode();
    let ct = aead
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &padded,
                aad: &aad,
            },
        )
        .map_err(|_| SealError::Encrypt)?;
    let mut body = Vec::with_capacity(NONCE_LEN + COMMIT_LEN + ct.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&commitment);
    body.extend_from_slice(&ct);
    let signature = identity.sign_envelope(&header, &body);
    Ok(Envelope {
        header,
        body,
        signature,
    })
}

/// Checks that the envelope is this space's, written by a device the roster lets
/// write it, and signed by that device. Needs no secret.
pub fn verify_envelope(envelope: &Envelope, roster: &Roster) -> Result<(), OpenError> {
    let h = &envelope.header;
    if h.space != roster.space() {
        return Err(OpenError::ForeignSpace);
    }
    if !roster.may_author(&h.author, h.seq) {
        return Err(OpenError::UnknownAuthor);
    }
    let author = roster.device(&h.author).ok_or(OpenError::UnknownAuthor)?;
    // The roster decoded the author's key once; not again per envelope.
    envelope
        .verify_with(&author.verifier)
        .map_err(OpenError::BadSignature)
}

/// Verifies and decrypts an envelope.
pub fn open_envelope(
    envelope: &Envelope,
    roster: &Roster,
    keys: &Keyring,
) -> Result<Opened, OpenError> {
    verify_envelope(envelope, roster)?;
    decrypt_envelope(envelope, roster, keys)
}

/// Decrypts an envelope whose signature this device already verified (when it
/// arrived): the AEAD still authenticates every byte of header and body under
/// the content key, so nothing without that key can pass; only the signature
/// check, the costly part, is not repeated.
pub fn decrypt_envelope(
    envelope: &Envelope,
    roster: &Roster,
    keys: &Keyring,
) -> Result<Opened, OpenError> {
    let h = &envelope.header;
    let author_member = roster.device(&h.author).map(|d| d.member);
    // Member-private keys open only their own member's envelopes (each member's
    // generations have the same key ids).
    let own_member = keys.member().is_some() && author_member == keys.member();
    if let Some(named) = h.legacy_key {
        return decrypt_v1(envelope, named, own_member, keys);
    }
    if envelope.body.len() < NONCE_LEN + COMMIT_LEN + TAG_LEN {
        return Err(OpenError::Decrypt);
    }
    let (nonce, rest) = envelope.body.split_at(NONCE_LEN);
    let (commitment, ct) = rest.split_at(COMMIT_LEN);
    for (key_id, key) in keys.candidates(own_member) {
        let (entry_key, expected) = derive_entry_key_v2(key, &h.space, &key_id, &h.entry);
        if !bool::from(expected.ct_eq(commitment)) {
            continue;
        }
        let aead = XChaCha20Poly1305::new(entry_key.expose().into());
        let aad = h.encode();
        let padded = Zeroizing::new(
            aead.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
                .map_err(|_| OpenError::Decrypt)?,
        );
        let inner = padding::unpad(Buckets::Envelope, &padded)?;
        let content = match inner.split_first() {
            Some((&CONTENT_ITEM, rest)) => Content::Item(Zeroizing::new(rest.to_vec())),
            Some((&CONTENT_KEY_WRAPS, rest)) => Content::KeyWraps(rest.to_vec()),
            _ => return Err(OpenError::UnknownContent),
        };
        return Ok(Opened {
            key: key_id,
            content,
        });
    }
    Err(OpenError::MissingKey)
}

/// A version 1 envelope: its header names the key; key wraps were not sealed.
fn decrypt_v1(
    envelope: &Envelope,
    named: KeyId,
    own_member: bool,
    keys: &Keyring,
) -> Result<Opened, OpenError> {
    let h = &envelope.header;
    if let KeyId::KeyWraps(_) = named {
        return Ok(Opened {
            key: named,
            content: Content::KeyWraps(envelope.body.clone()),
        });
    }
    if matches!(named, KeyId::MemberPrivate(_)) && !own_member {
        return Err(OpenError::MissingKey);
    }
    let key = keys.get(&named).ok_or(OpenError::MissingKey)?;
    if envelope.body.len() < NONCE_LEN + TAG_LEN {
        return Err(OpenError::Decrypt);
    }
    let (nonce, ct) = envelope.body.split_at(NONCE_LEN);
    let entry_key = derive_entry_key(key, &h.space, &named, &h.entry);
    let aead = XChaCha20Poly1305::new(entry_key.expose().into());
    let aad = h.encode();
    let padded = Zeroizing::new(
        aead.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| OpenError::Decrypt)?,
    );
    Ok(Opened {
        key: named,
        content: Content::Item(padding::unpad(Buckets::Fine, &padded)?),
    })
}
