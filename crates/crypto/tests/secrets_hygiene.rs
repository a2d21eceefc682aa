//! No secret type prints its value through Debug; secrets zeroize on drop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_crypto::{
    seal_answer, DeviceIdentity, Keyring, KeystoreContents, PairingCode, SymmetricKey,
};
use attune_proto::{AnswerContext, DeviceId, EntryId, KeyId, SpaceId};
use zeroize::ZeroizeOnDrop;

fn assert_zeroize_on_drop<T: ZeroizeOnDrop>() {}

#[test]
fn secret_types_zeroize_on_drop() {
    assert_zeroize_on_drop::<SymmetricKey>();
    assert_zeroize_on_drop::<ed25519_dalek::SigningKey>();
    assert_zeroize_on_drop::<DeviceIdentity>();
    // StaticSecret zeroizes in its Drop (`#[zeroize(drop)]`) without the marker trait.
    fn assert_zeroize<T: zeroize::Zeroize>() {}
    assert_zeroize::<x25519_dalek::StaticSecret>();
}

fn hex_and_bytes(bytes: &[u8]) -> [String; 2] {
    [hex::encode(bytes), format!("{bytes:?}")]
}

#[test]
fn debug_never_prints_key_bytes() {
    let key = SymmetricKey::from_bytes([0xAB; 32]);
    let mut ring = Keyring::new();
    ring.insert(KeyId::Epoch(0), key.clone());
    let identity = DeviceIdentity::from_secret_bytes(&[0xCD; 32], &[0xEF; 32]);
    let contents = KeystoreContents {
        identity: identity.clone(),
        keys: ring.clone(),
    };
    let ctx = AnswerContext {
        space: SpaceId([0; 16]),
        exercise: EntryId([0; 16]),
        author: DeviceId([0; 32]),
    };
    let (_, answer_key) = seal_answer(&ctx, b"x").unwrap();
    let code = PairingCode::generate(1);
    let printed = [
        format!("{key:?}"),
        format!("{ring:?}"),
        format!("{identity:?}"),
        format!("{contents:?}"),
        format!("{answer_key:?}"),
        format!("{code:?}"),
    ]
    .join("\n");
    for secret in [
        &[0xAB; 32][..],
        &[0xCD; 32][..],
        &[0xEF; 32][..],
        &answer_key.expose()[..],
    ] {
        for form in hex_and_bytes(secret) {
            assert!(!printed.contains(&form), "secret printed: {printed}");
        }
    }
    assert!(!printed.contains(&code.reveal()));
    assert!(printed.contains("redacted"));
}
