//! Sealed answers for blind exchanges (DESIGN.md §4).
//!
//! An answer is encrypted under its own one-time key and published with a
//! commitment to that key; the key is revealed only after the partner's sealed
//! answer has been seen. ChaCha20-Poly1305 is not key-committing (one ciphertext
//! can be crafted to open under two keys), so the revealed key must match the
//! commitment before anything is decrypted:
//!
//! `commitment = SHA-256(ANSWER_COMMIT || answer context || key)`
//! `ciphertext = XChaCha20-Poly1305(key, nonce, padded answer, aad = answer context)`

use attune_proto::{labels, AnswerContext, SealedAnswer};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::padding::{self, PaddingError};
use crate::secret::{random_array, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RevealError {
    #[error("the revealed key does not match the key the answer was sealed with")]
    CommitmentMismatch,
    #[error("the sealed answer does not decrypt under its committed key")]
    Decrypt,
    #[error("the answer is malformed: {0}")]
    Padding(#[from] PaddingError),
    #[error("sealing failed")]
    Seal,
}

/// `SHA-256(ANSWER_COMMIT || context || key)`.
pub fn answer_commitment(context: &AnswerContext, key: &SymmetricKey) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(labels::ANSWER_COMMIT);
    h.update(context.encode());
    h.update(key.expose());
    h.finalize().into()
}

/// Seals `answer` under a fresh key. Publish the [`SealedAnswer`]; keep the key
/// until it is time to reveal it.
pub fn seal_answer(
    context: &AnswerContext,
    answer: &[u8],
) -> Result<(SealedAnswer, SymmetricKey), RevealError> {
    let key = SymmetricKey::generate();
    let sealed = seal_answer_with(context, answer, &key, random_array())?;
    Ok((sealed, key))
}

/// Seals `answer` under `key` (protocol 2: the key the member's own devices
/// derive, [`crate::held::own_answer_key`]).
pub fn seal_answer_under(
    context: &AnswerContext,
    answer: &[u8],
    key: &SymmetricKey,
) -> Result<SealedAnswer, RevealError> {
    seal_answer_with(context, answer, key, random_array())
}

/// [`seal_answer`] with a chosen key and nonce: only for the fixed test vectors.
pub(crate) fn seal_answer_with(
    context: &AnswerContext,
    answer: &[u8],
    key: &SymmetricKey,
    nonce: [u8; 24],
) -> Result<SealedAnswer, RevealError> {
    let padded = padding::pad(padding::Buckets::Fine, answer)?;
    let aad = context.encode();
    let ciphertext = XChaCha20Poly1305::new(key.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &padded,
                aad: &aad,
            },
        )
        .map_err(|_| RevealError::Seal)?;
    Ok(SealedAnswer {
        commitment: answer_commitment(context, key),
        nonce,
        ciphertext,
    })
}

/// Opens a sealed answer with its revealed key, refusing any key other than the
/// committed one.
pub fn open_revealed(
    context: &AnswerContext,
    sealed: &SealedAnswer,
    key: &SymmetricKey,
) -> Result<Zeroizing<Vec<u8>>, RevealError> {
    let expected = answer_commitment(context, key);
    if !bool::from(expected.ct_eq(&sealed.commitment)) {
        return Err(RevealError::CommitmentMismatch);
    }
    let aad = context.encode();
    let padded = Zeroizing::new(
        XChaCha20Poly1305::new(key.expose().into())
            .decrypt(
                XNonce::from_slice(&sealed.nonce),
                Payload {
                    msg: &sealed.ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| RevealError::Decrypt)?,
    );
    Ok(padding::unpad(padding::Buckets::Fine, &padded)?)
}
