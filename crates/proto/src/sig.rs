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

/// A public key decoded and checked once (decompressing an Ed25519 point is a
/// good share of a verification), for checking many signatures by one signer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verifier(VerifyingKey);

impl Verifier {
    /// Decodes `public_key`, refusing invalid and small-order keys.
    pub fn new(public_key: &[u8; 32]) -> Result<Self, SignatureError> {
        let key = VerifyingKey::from_bytes(public_key).map_err(|_| SignatureError::BadPublicKey)?;
        if key.is_weak() {
            return Err(SignatureError::WeakPublicKey);
        }
        Ok(Self(key))
    }

    /// The key's 32-byte encoding.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// Verifies `signature` over `label || message`, strictly: non-canonical
    /// encodings are rejected, so a signature cannot be malleated into a second
    /// valid one.
    pub fn verify(
        &self,
        label: &[u8],
        message: &[u8],
        signature: &[u8; 64],
    ) -> Result<(), SignatureError> {
        let sig = Signature::from_bytes(signature);
        let mut signed = Vec::with_capacity(label.len() + message.len());
        signed.extend_from_slice(label);
        signed.extend_from_slice(message);
        self.0
            .verify_strict(&signed, &sig)
            .map_err(|_| SignatureError::Invalid)
    }
}

/// Verifies `signature` over `label || message` under `public_key`, strictly
/// (see [`Verifier`]); small-order keys are rejected.
pub fn verify(
    public_key: &[u8; 32],
    label: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> Result<(), SignatureError> {
    Verifier::new(public_key)?.verify(label, message, signature)
}
