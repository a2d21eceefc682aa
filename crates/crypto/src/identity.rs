//! A device's identity: an Ed25519 signing key and an X25519 key-agreement key.

use std::fmt;

use attune_proto::{
    labels, DeviceId, DevicePublic, Envelope, EnvelopeHeader, RequestToSign, RosterEvent,
    SignedRosterEvent,
};
use ed25519_dalek::{Signer, SigningKey};
use rand_core::OsRng;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

/// One device's secret keys. Both halves zeroize on drop.
#[derive(Clone)]
pub struct DeviceIdentity {
    signing: SigningKey,
    kx: StaticSecret,
    /// Public keys and id, derived once: deriving the X25519 public key is a
    /// scalar multiplication, and views ask for the id once per item.
    public: DevicePublic,
    id: DeviceId,
}

// Both fields wipe themselves when dropped: SigningKey is ZeroizeOnDrop, and
// StaticSecret is built with `#[zeroize(drop)]`.
impl zeroize::ZeroizeOnDrop for DeviceIdentity {}

impl fmt::Debug for DeviceIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceIdentity({}, [redacted])", self.id())
    }
}

impl DeviceIdentity {
    pub fn generate() -> Self {
        Self::from_keys(
            SigningKey::generate(&mut OsRng),
            StaticSecret::random_from_rng(OsRng),
        )
    }

    /// Rebuilds an identity from its two 32-byte secrets (Ed25519 seed, X25519 scalar).
    pub fn from_secret_bytes(sign_seed: &[u8; 32], kx_secret: &[u8; 32]) -> Self {
        Self::from_keys(
            SigningKey::from_bytes(sign_seed),
            StaticSecret::from(*kx_secret),
        )
    }

    fn from_keys(signing: SigningKey, kx: StaticSecret) -> Self {
        let public = DevicePublic {
            sign: signing.verifying_key().to_bytes(),
            kx: PublicKey::from(&kx).to_bytes(),
        };
        Self {
            id: public.id(),
            public,
            signing,
            kx,
        }
    }

    /// The two secrets, for storing in the keystore.
    pub(crate) fn secret_bytes(&self) -> (Zeroizing<[u8; 32]>, Zeroizing<[u8; 32]>) {
        (
            Zeroizing::new(self.signing.to_bytes()),
            Zeroizing::new(self.kx.to_bytes()),
        )
    }

    pub fn public(&self) -> DevicePublic {
        self.public
    }

    pub fn id(&self) -> DeviceId {
        self.id
    }

    pub(crate) fn kx_secret(&self) -> &StaticSecret {
        &self.kx
    }

    fn sign(&self, label: &[u8], message: &[u8]) -> [u8; 64] {
        let mut signed = Vec::with_capacity(label.len() + message.len());
        signed.extend_from_slice(label);
        signed.extend_from_slice(message);
        self.signing.sign(&signed).to_bytes()
    }

    pub fn sign_envelope(&self, header: &EnvelopeHeader, body: &[u8]) -> [u8; 64] {
        self.sign(
            labels::ENVELOPE_SIG,
            &Envelope::signed_message(header, body),
        )
    }

    /// Signs a roster event. The event's `signer` should be this device's id, or
    /// verification will reject it.
    pub fn sign_roster_event(&self, event: RosterEvent) -> SignedRosterEvent {
        let signature = self.sign(labels::ROSTER_SIG, &event.encode());
        SignedRosterEvent { event, signature }
    }

    /// Signs a held reveal (everything before its signature).
    pub(crate) fn sign_held(&self, signed_part: &[u8]) -> [u8; 64] {
        self.sign(labels::HELD_REVEAL_SIG, signed_part)
    }

    /// Signs the canonical string of an HTTP request.
    pub fn sign_request(&self, request: &RequestToSign) -> [u8; 64] {
        self.sign(labels::REQUEST_SIG, &request.encode())
    }
}
