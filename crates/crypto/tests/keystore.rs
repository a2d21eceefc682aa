//! The keystore: locked with a passphrase, it opens only with that passphrase.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_crypto::{
    keystore_is_locked, open_keystore, seal_keystore, write_keystore_file, DeviceIdentity,
    KdfParams, Keyring, KeystoreContents, KeystoreError, Protection, SymmetricKey,
};
use attune_proto::KeyId;

fn contents() -> KeystoreContents {
    let mut keys = Keyring::new();
    keys.insert(KeyId::Epoch(0), SymmetricKey::from_bytes([7; 32]));
    keys.insert(KeyId::MemberPrivate(0), SymmetricKey::from_bytes([8; 32]));
    KeystoreContents {
        identity: DeviceIdentity::generate(),
        keys,
    }
}

const PARAMS: KdfParams = KdfParams::INSECURE_FOR_TESTS;

#[test]
fn passphrase_round_trip() {
    let c = contents();
    let bytes = seal_keystore(&c, Protection::Passphrase(b"correct horse", PARAMS)).unwrap();
    assert!(keystore_is_locked(&bytes).unwrap());
    let opened = open_keystore(&bytes, Some(b"correct horse")).unwrap();
    assert_eq!(opened.identity.public(), c.identity.public());
    assert_eq!(
        opened.keys.get(&KeyId::Epoch(0)),
        c.keys.get(&KeyId::Epoch(0))
    );
    assert_eq!(
        opened.keys.get(&KeyId::MemberPrivate(0)),
        c.keys.get(&KeyId::MemberPrivate(0))
    );
}

#[test]
fn wrong_or_missing_passphrase_is_refused() {
    let bytes = seal_keystore(
        &contents(),
        Protection::Passphrase(b"correct horse", PARAMS),
    )
    .unwrap();
    assert!(matches!(
        open_keystore(&bytes, Some(b"correct hors")),
        Err(KeystoreError::WrongPassphrase)
    ));
    assert!(matches!(
        open_keystore(&bytes, Some(b"")),
        Err(KeystoreError::WrongPassphrase)
    ));
    assert!(matches!(
        open_keystore(&bytes, None),
        Err(KeystoreError::PassphraseRequired)
    ));
}

#[test]
fn the_secret_part_is_not_on_disk_in_clear() {
    let c = contents();
    let bytes = seal_keystore(&c, Protection::Passphrase(b"pw", PARAMS)).unwrap();
    assert!(!bytes.windows(32).any(|w| w == [7u8; 32]));
    // The unprotected form does hold it: it exists only when asked for explicitly.
    let plain = seal_keystore(&c, Protection::Unprotected).unwrap();
    assert!(!keystore_is_locked(&plain).unwrap());
    assert!(plain.windows(32).any(|w| w == [7u8; 32]));
    let opened = open_keystore(&plain, None).unwrap();
    assert_eq!(opened.identity.id(), c.identity.id());
}

#[test]
fn altered_header_or_cost_settings_are_refused() {
    let bytes = seal_keystore(&contents(), Protection::Passphrase(b"pw", PARAMS)).unwrap();
    // Byte 10..14 is the memory cost: lowering it must not open the file.
    let mut weaker = bytes.clone();
    weaker[13] ^= 1;
    assert!(open_keystore(&weaker, Some(b"pw")).is_err());
    // A file asking for absurd memory is refused before any work.
    let mut greedy = bytes.clone();
    greedy[10..14].copy_from_slice(&u32::MAX.to_be_bytes());
    assert!(matches!(
        open_keystore(&greedy, Some(b"pw")),
        Err(KeystoreError::BadKdfParams)
    ));
    assert!(matches!(
        open_keystore(b"not a keystore", None),
        Err(KeystoreError::NotAKeystore)
    ));
}

#[test]
fn default_cost_round_trips_and_is_recorded_in_the_file() {
    let bytes = seal_keystore(
        &contents(),
        Protection::Passphrase(b"pw", KdfParams::DEFAULT),
    )
    .unwrap();
    // m_cost (KiB), t_cost, p_cost follow the 10-byte preamble.
    assert_eq!(&bytes[10..14], &65_536u32.to_be_bytes());
    assert_eq!(&bytes[14..18], &3u32.to_be_bytes());
    assert!(open_keystore(&bytes, Some(b"pw")).is_ok());
}

#[test]
fn file_is_written_atomically_and_privately() {
    let dir = std::env::temp_dir().join(format!("attune-ks-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keystore");
    let bytes = seal_keystore(&contents(), Protection::Passphrase(b"pw", PARAMS)).unwrap();
    write_keystore_file(&path, &bytes).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "keystore readable by others: {mode:o}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
