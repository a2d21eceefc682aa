//! Sealing and opening envelopes: XChaCha20-Poly1305 under a per-entry key, with the
//! canonical header as associated data, signed by the author device.

use attune_proto::{DecodeError, Envelope, EnvelopeHeader, KeyId, Roster, SignatureError};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::DeviceIdentity;
use crate::keys::{derive_entry_key, Keyring};
use crate::padding::{self, PaddingError};
use crate::secret::{random_array, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum SealError {
    #[error("the header names another device as author")]
    WrongAuthor,
    #[error("key-wrap envelopes carry HPKE wraps, not sealed content")]
    NotSealable,
    /// Signing it would make an envelope that no reader (nor the relay) decodes.
    #[error("the header breaks the chain rules: {0}")]
    InvalidHeader(DecodeError),
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
    #[error("this device does not hold the key the envelope is sealed under")]
    MissingKey(KeyId),
    #[error("the ciphertext does not decrypt under its key")]
    Decrypt,
    #[error("the decrypted content is malformed: {0}")]
    Padding(#[from] PaddingError),
}

const NONCE_LEN: usize = 24;

/// Seals `plaintext` into a signed envelope. `header.author` must be `identity`.
pub fn seal_envelope(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    key: &SymmetricKey,
    plaintext: &[u8],
) -> Result<Envelope, SealError> {
    seal_with_nonce(identity, header, key, plaintext, random_array())
}

/// [`seal_envelope`] with a chosen nonce: only for the fixed test vectors.
pub(crate) fn seal_with_nonce(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    key: &SymmetricKey,
    plaintext: &[u8],
    nonce: [u8; NONCE_LEN],
) -> Result<Envelope, SealError> {
    if header.author != identity.id() {
        return Err(SealError::WrongAuthor);
    }
    if matches!(header.key, KeyId::KeyWraps(_)) {
        return Err(SealError::NotSealable);
    }
    header.check().map_err(SealError::InvalidHeader)?;
    let padded = padding::pad(plaintext)?;
    let entry_key = derive_entry_key(key, &header.space, &header.key, &header.entry);
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
    let mut body = Vec::with_capacity(NONCE_LEN + ct.len());
    body.extend_from_slice(&nonce);
    body.extend_from_slice(&ct);
    let signature = identity.sign_envelope(&header, &body);
    Ok(Envelope {
        header,
        body,
        signature,
    })
}

/// Signs an envelope whose body is not sealed by the envelope layer (key wraps).
pub(crate) fn sign_plain_envelope(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    body: Vec<u8>,
) -> Result<Envelope, SealError> {
    if header.author != identity.id() {
        return Err(SealError::WrongAuthor);
    }
    header.check().map_err(SealError::InvalidHeader)?;
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
    envelope
        .verify_signature(&author.public.sign)
        .map_err(OpenError::BadSignature)
}

/// Verifies and decrypts an envelope. For key-wrap envelopes the verified body is
/// returned as is.
pub fn open_envelope(
    envelope: &Envelope,
    roster: &Roster,
    keys: &Keyring,
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
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
) -> Result<Zeroizing<Vec<u8>>, OpenError> {
    let h = &envelope.header;
    if matches!(h.key, KeyId::KeyWraps(_)) {
        return Ok(Zeroizing::new(envelope.body.clone()));
    }
    if let KeyId::MemberPrivate(_) = h.key {
        let author_member = roster.device(&h.author).map(|d| d.member);
        if keys.member().is_none() || author_member != keys.member() {
            // Another member's private entry: not ours to open.
            return Err(OpenError::MissingKey(h.key));
        }
    }
    let key = keys.get(&h.key).ok_or(OpenError::MissingKey(h.key))?;
    if envelope.body.len() < NONCE_LEN + 16 {
        return Err(OpenError::Decrypt);
    }
    let (nonce, ct) = envelope.body.split_at(NONCE_LEN);
    let entry_key = derive_entry_key(key, &h.space, &h.key, &h.entry);
    let aead = XChaCha20Poly1305::new(entry_key.expose().into());
    let aad = h.encode();
    let padded = Zeroizing::new(
        aead.decrypt(XNonce::from_slice(nonce), Payload { msg: ct, aad: &aad })
            .map_err(|_| OpenError::Decrypt)?,
    );
    Ok(padding::unpad(&padded)?)
}
