//! Sealing data that stays on this member's devices (drafts waiting to be sent):
//! XChaCha20-Poly1305 under a key derived from the member-private key.
//!
//! `key = HKDF-SHA256(salt = none, ikm = member key, info = "attune/v1/local" || purpose)`,
//! `blob = nonce 24 || ciphertext`, `aad = purpose`.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use sha2::Sha256;
use thiserror::Error;
use zeroize::Zeroizing;

use crate::secret::{random_array, SymmetricKey};

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum LocalError {
    #[error("the local data does not decrypt: it was altered or belongs to another key")]
    Open,
    #[error("sealing failed")]
    Seal,
}

fn derive(key: &SymmetricKey, purpose: &[u8]) -> SymmetricKey {
    let hk = Hkdf::<Sha256>::new(None, key.expose());
    let mut out = Zeroizing::new([0u8; 32]);
    let info = [&b"attune/v1/local"[..], purpose].concat();
    if hk.expand(&info, &mut out[..]).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    SymmetricKey::from_bytes(*out)
}

pub fn seal_local(
    key: &SymmetricKey,
    purpose: &[u8],
    plaintext: &[u8],
) -> Result<Vec<u8>, LocalError> {
    let nonce: [u8; 24] = random_array();
    let k = derive(key, purpose);
    let ct = XChaCha20Poly1305::new(k.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: plaintext,
                aad: purpose,
            },
        )
        .map_err(|_| LocalError::Seal)?;
    Ok([&nonce[..], &ct].concat())
}

pub fn open_local(
    key: &SymmetricKey,
    purpose: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, LocalError> {
    if blob.len() < 24 + 16 {
        return Err(LocalError::Open);
    }
    let (nonce, ct) = blob.split_at(24);
    let k = derive(key, purpose);
    XChaCha20Poly1305::new(k.expose().into())
        .decrypt(
            XNonce::from_slice(nonce),
            Payload {
                msg: ct,
                aad: purpose,
            },
        )
        .map(Zeroizing::new)
        .map_err(|_| LocalError::Open)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_binding() {
        let key = SymmetricKey::generate();
        let blob = seal_local(&key, b"draft", b"angry words").expect("seals");
        assert_eq!(
            open_local(&key, b"draft", &blob).expect("opens").as_slice(),
            b"angry words"
        );
        assert_eq!(open_local(&key, b"other", &blob), Err(LocalError::Open));
        assert_eq!(
            open_local(&SymmetricKey::generate(), b"draft", &blob),
            Err(LocalError::Open)
        );
        let mut bad = blob.clone();
        bad[30] ^= 1;
        assert_eq!(open_local(&key, b"draft", &bad), Err(LocalError::Open));
    }
}
