//! Domain-separation labels. Every hash, signature and key derivation starts from
//! its own versioned label, so no value made for one purpose verifies for another.

pub const DEVICE_ID: &[u8] = b"attune/v1/device-id";
pub const ENVELOPE_SIG: &[u8] = b"attune/v1/envelope-sig";
pub const ENVELOPE_HASH: &[u8] = b"attune/v1/envelope-hash";
pub const ROSTER_SIG: &[u8] = b"attune/v1/roster-sig";
pub const ROSTER_HASH: &[u8] = b"attune/v1/roster-hash";
pub const REQUEST_SIG: &[u8] = b"attune/v1/request-sig";
pub const REQUEST_BODY: &[u8] = b"attune/v1/request-body";
pub const ENTRY_KEY: &[u8] = b"attune/v1/entry-key";
pub const KEY_WRAP: &[u8] = b"attune/v1/key-wrap";
pub const ANSWER_COMMIT: &[u8] = b"attune/v1/answer-commit";
pub const SAFETY_NUMBER: &[u8] = b"attune/v1/safety-number";
pub const PAIRING_IDENTITY_INVITER: &[u8] = b"attune/v1/pairing/inviter";
pub const PAIRING_IDENTITY_JOINER: &[u8] = b"attune/v1/pairing/joiner";
pub const PAIRING_CONFIRM_INVITER: &[u8] = b"attune/v1/pairing/confirm-inviter";
pub const PAIRING_CONFIRM_JOINER: &[u8] = b"attune/v1/pairing/confirm-joiner";
pub const PAIRING_SEAL_INVITER: &[u8] = b"attune/v1/pairing/seal-inviter";
pub const PAIRING_SEAL_JOINER: &[u8] = b"attune/v1/pairing/seal-joiner";
pub const KEYSTORE_MAGIC: &[u8; 8] = b"ATTUNEKS";
pub const HELD_REVEAL_SIG: &[u8] = b"attune/v1/held-reveal-sig";
pub const HELD_REVEAL_KEY: &[u8] = b"attune/v1/held-reveal";
/// `SHA-256(RECOVERY_LOOKUP || code)`: where the relay files a recovery bundle.
pub const RECOVERY_LOOKUP: &[u8] = b"attune/v1/recovery-lookup";
pub const RECOVERY_MAGIC: &[u8; 8] = b"ATTUNERB";
pub const IMPORT_ID: &[u8] = b"attune/v1/import-id";
/// Protocol 2: a per-entry key schedule that also yields the key commitment.
pub const ENTRY_KEY_V2: &[u8] = b"attune/v2/entry-key";
/// The opaque value both members derive for an exchange's hold slots.
pub const EXCHANGE_TAG: &[u8] = b"attune/v2/exchange-tag";
/// The key a hold slot's answer key is sealed under.
pub const HOLD_KEY: &[u8] = b"attune/v2/hold-key";
/// An own sealed answer's key, derived from the member-private key.
pub const ANSWER_KEY: &[u8] = b"attune/v2/answer-key";
