//! Ed25519 verification: the public half of signatures, usable without any secret.

use ed25519_dalek::{Signature, VerifyingKey};
use thiserror::Error;

/// Why a signature was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    #[error("the public key is not a valid Ed25519 key")]
    BadPublicKey,
    #[error("the public key is a weak (small-order) key")]
    WeakPublicKey,
    #[error("the signature does not verify")]
    Invalid,
}

/// Verifies `signature` over `label || message` under `public_key`, strictly:
/// non-canonical encodings and small-order keys are rejected, so a signature cannot
/// be malleated into a second valid one.
pub fn verify(
    public_key: &[u8; 32],
    label: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    let key = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::BadPublicKey)?;
    if key.is_weak() {
        return Err(SignatureError::WeakPublicKey);
    }
    let sig = Signature::from_bytes(signature);
    let mut signed = Vec::with_capacity(label.len() + message.len());
    signed.extend_from_slice(label);
    signed.extend_from_slice(message);
    key.verify_strict(&signed, &sig)
        .map_err(|_| SignatureError::Invalid)
}
