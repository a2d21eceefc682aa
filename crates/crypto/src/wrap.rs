//! Wrapping a symmetric key to one device with HPKE (RFC 9180, base mode,
//! DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305).
//!
//! `info = KEY_WRAP || space`, `aad = KeyWrap::aad(recipient, key_id)`: a wrap
//! opens only for its space, its recipient and the key id it claims.

use attune_proto::{labels, DevicePublic, Envelope, EnvelopeHeader, KeyId, KeyWrap, SpaceId};
use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, OpModeR, OpModeS, Serializable};
use rand_core::{CryptoRng, OsRng, RngCore};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::envelope::{seal_wraps, SealError};
use crate::identity::DeviceIdentity;
use crate::secret::SymmetricKey;

type Kem = X25519HkdfSha256;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum WrapError {
    #[error("the recipient's exchange key is not a valid X25519 key")]
    BadRecipientKey,
    #[error("this wrap is addressed to another device")]
    NotForThisDevice,
    #[error("the wrapped key does not open: it was altered or wrapped for another space or key")]
    Open,
    #[error("wrapping failed")]
    Seal,
}

fn info(space: &SpaceId) -> Vec<u8> {
    [labels::KEY_WRAP, &space.0[..]].concat()
}

/// Wraps `key` (known as `key_id`) to `recipient`.
pub fn wrap_key(
    space: &SpaceId,
    recipient: &DevicePublic,
    key_id: KeyId,
    key: &SymmetricKey,
) -> Result<KeyWrap, WrapError> {
    wrap_key_with_rng(space, recipient, key_id, key, &mut OsRng)
}

/// [`wrap_key`] with a chosen randomness source: only for the fixed test vectors.
pub(crate) fn wrap_key_with_rng<R: RngCore + CryptoRng>(
    space: &SpaceId,
    recipient: &DevicePublic,
    key_id: KeyId,
    key: &SymmetricKey,
    rng: &mut R,
) -> Result<KeyWrap, WrapError> {
    let pk = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.kx)
        .map_err(|_| WrapError::BadRecipientKey)?;
    let recipient_id = recipient.id();
    let (enc, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem, _>(
        &OpModeS::Base,
        &pk,
        &info(space),
        key.expose(),
        &KeyWrap::aad(&recipient_id, &key_id),
        rng,
    )
    .map_err(|_| WrapError::Seal)?;
    let mut enc_bytes = [0u8; 32];
    enc_bytes.copy_from_slice(&enc.to_bytes());
    Ok(KeyWrap {
        recipient: recipient_id,
        key: key_id,
        enc: enc_bytes,
        ciphertext,
    })
}

/// Opens a wrap addressed to `identity`.
pub fn unwrap_key(
    space: &SpaceId,
    identity: &DeviceIdentity,
    wrap: &KeyWrap,
) -> Result<SymmetricKey, WrapError> {
    if wrap.recipient != identity.id() {
        return Err(WrapError::NotForThisDevice);
    }
    let secret = Zeroizing::new(identity.kx_secret().to_bytes());
    let sk =
        <Kem as hpke::Kem>::PrivateKey::from_bytes(&secret[..]).map_err(|_| WrapError::Open)?;
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&wrap.enc).map_err(|_| WrapError::Open)?;
    let plain = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &sk,
            &enc,
            &info(space),
            &wrap.ciphertext,
            &KeyWrap::aad(&wrap.recipient, &wrap.key),
        )
        .map_err(|_| WrapError::Open)?,
    );
    let bytes: [u8; 32] = plain.as_slice().try_into().map_err(|_| WrapError::Open)?;
    Ok(SymmetricKey::from_bytes(bytes))
}

/// A signed key-wrap envelope carrying `wraps`, sealed under the epoch key
/// `sealed_under` (the newest one the remaining devices already hold), so the
/// relay cannot tell it from any other envelope.
pub fn seal_key_envelope(
    identity: &DeviceIdentity,
    header: EnvelopeHeader,
    sealed_under: (KeyId, &SymmetricKey),
    wraps: &[KeyWrap],
) -> Result<Envelope, SealError> {
    seal_wraps(
        identity,
        header,
        sealed_under.0,
        sealed_under.1,
        &KeyWrap::encode_list(wraps),
    )
}
