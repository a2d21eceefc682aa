//! attune-crypto: every use of key material in attune lives here and nowhere else.
//!
//! - [`identity`]: device identities (Ed25519 + X25519) and signing;
//! - [`keys`]: epoch and member-private keys, the per-entry key schedule;
//! - [`envelope`] and [`padding`]: sealing and opening envelopes;
//! - [`wrap`]: HPKE wrapping of a key to a device;
//! - [`pairing`]: the SPAKE2 pairing state machine with key confirmation;
//! - [`answer`]: key-committed sealed answers for blind exchanges;
//! - [`chain`]: classifying what the relay serves (forged, altered, replayed, ...);
//! - [`safety`]: the safety number; [`keystore`]: the passphrase-locked key file;
//! - [`recovery`]: recovery codes and the bundle they open.
//!
//! Roster verification needs no secret, so it lives in attune-proto (the relay
//! enforces it too) and is re-exported here.

pub mod answer;
pub mod chain;
pub mod envelope;
pub mod held;
pub mod identity;
pub mod keys;
pub mod keystore;
pub mod local;
pub mod padding;
pub mod pairing;
pub mod recovery;
pub mod safety;
pub mod secret;
mod words;
pub mod wrap;

#[cfg(test)]
mod vectors;

pub use answer::{answer_commitment, open_revealed, seal_answer, seal_answer_under, RevealError};
pub use attune_proto::{Roster, RosterError};
pub use chain::{ChainSnapshot, ChainVerifier, Checked, Class, HeadsProblem, SeenHead, Signed};
pub use envelope::{
    decrypt_envelope, open_envelope, seal_envelope, verify_envelope, Content, OpenError, Opened,
    SealError,
};
pub use held::{
    exchange_tag, open_held, open_released, own_answer_key, random_hold, seal_held, seal_hold,
    HeldError,
};
pub use identity::DeviceIdentity;
pub use keys::{derive_entry_key, derive_entry_key_v2, derive_import_id, Keyring};
pub use keystore::{
    keystore_is_locked, open_keystore, seal_keystore, write_keystore_file, KdfParams,
    KeystoreContents, KeystoreError, KeystoreKey, Protection, KEYSTORE_KEY_LEN,
};
pub use pairing::{Pairing, PairingCode, PairingError, PairingSession};
pub use recovery::{open_recovery, seal_recovery, RecoveryCode, RecoveryContents, RecoveryError};
pub use safety::safety_number;
pub use secret::SymmetricKey;
pub use wrap::{seal_key_envelope, unwrap_key, wrap_key, WrapError};
