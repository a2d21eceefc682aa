//! The stretched keystore key an unlocked session keeps: it opens and seals the
//! keystore without Argon2, only under the salt it was stretched with, and never
//! shows itself.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_crypto::{
    open_keystore, seal_keystore, DeviceIdentity, KdfParams, Keyring, KeystoreContents,
    KeystoreError, KeystoreKey, Protection, SymmetricKey, KEYSTORE_KEY_LEN,
};
use attune_proto::KeyId;

const PARAMS: KdfParams = KdfParams::INSECURE_FOR_TESTS;

fn contents() -> KeystoreContents {
    let mut keys = Keyring::new();
    keys.insert(KeyId::Epoch(0), SymmetricKey::from_bytes([7; 32]));
    KeystoreContents {
        identity: DeviceIdentity::generate(),
        keys,
    }
}

#[test]
fn derive_open_and_seal_under_the_same_salt() {
    let c = contents();
    let bytes = seal_keystore(&c, Protection::Passphrase(b"pass words", PARAMS)).unwrap();
    let (key, opened) = KeystoreKey::derive(&bytes, b"pass words").unwrap();
    assert_eq!(opened.identity.public(), c.identity.public());
    assert!(key.matches(&bytes));
    assert_eq!(
        key.open(&bytes).unwrap().identity.public(),
        c.identity.public()
    );

    // New contents sealed with the key: same salt, fresh nonce, and the
    // passphrase still opens them the ordinary way.
    let mut more = c.clone();
    more.keys
        .insert(KeyId::Epoch(1), SymmetricKey::from_bytes([9; 32]));
    let resealed = key.seal(&more).unwrap();
    assert_ne!(resealed, bytes);
    // magic 8 | version | mode | Argon2 settings 12 | salt 16 | nonce 24
    assert_eq!(
        resealed[..38],
        bytes[..38],
        "same preamble, settings and salt"
    );
    assert_ne!(resealed[38..62], bytes[38..62], "a fresh nonce");
    let via_key = key.open(&resealed).unwrap();
    assert!(via_key.keys.get(&KeyId::Epoch(1)).is_some());
    let via_pass = open_keystore(&resealed, Some(b"pass words")).unwrap();
    assert!(via_pass.keys.get(&KeyId::Epoch(1)).is_some());
    assert!(open_keystore(&resealed, Some(b"other")).is_err());
}

#[test]
fn a_wrong_passphrase_derives_nothing() {
    let bytes = seal_keystore(&contents(), Protection::Passphrase(b"right", PARAMS)).unwrap();
    assert!(matches!(
        KeystoreKey::derive(&bytes, b"wrong"),
        Err(KeystoreError::WrongPassphrase)
    ));
    let plain = seal_keystore(&contents(), Protection::Unprotected).unwrap();
    assert!(matches!(
        KeystoreKey::derive(&plain, b"right"),
        Err(KeystoreError::NotLocked)
    ));
}

#[test]
fn a_keystore_sealed_again_with_a_passphrase_is_not_opened_by_the_old_key() {
    let c = contents();
    let bytes = seal_keystore(&c, Protection::Passphrase(b"first", PARAMS)).unwrap();
    let (key, _) = KeystoreKey::derive(&bytes, b"first").unwrap();
    // Same passphrase, new salt; and another passphrase.
    for pass in [&b"first"[..], b"second"] {
        let again = seal_keystore(&c, Protection::Passphrase(pass, PARAMS)).unwrap();
        assert!(!key.matches(&again));
        assert!(matches!(key.open(&again), Err(KeystoreError::KeyChanged)));
    }
    let plain = seal_keystore(&c, Protection::Unprotected).unwrap();
    assert!(matches!(key.open(&plain), Err(KeystoreError::NotLocked)));
    // A tampered file under the same salt does not open.
    let mut bad = bytes.clone();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    assert!(matches!(
        key.open(&bad),
        Err(KeystoreError::WrongPassphrase)
    ));
}

#[test]
fn encoding_round_trips_and_debug_shows_no_secret() {
    let bytes = seal_keystore(&contents(), Protection::Passphrase(b"p", PARAMS)).unwrap();
    let (key, _) = KeystoreKey::derive(&bytes, b"p").unwrap();
    let enc = key.encode();
    assert_eq!(enc.len(), KEYSTORE_KEY_LEN);
    let back = KeystoreKey::decode(&enc).unwrap();
    assert!(back.open(&bytes).is_ok());
    assert!(KeystoreKey::decode(&enc[..KEYSTORE_KEY_LEN - 1]).is_err());
    let mut long = enc.to_vec();
    long.push(0);
    assert!(KeystoreKey::decode(&long).is_err());
    // Settings a crafted key asks for are bounded like a file's.
    let mut huge = enc.to_vec();
    huge[48..52].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        KeystoreKey::decode(&huge),
        Err(KeystoreError::BadKdfParams)
    ));
    let shown = format!("{key:?}");
    assert_eq!(shown, "KeystoreKey { .. }");
    assert!(!shown.contains(&hex::encode(&enc[..32])));
}
