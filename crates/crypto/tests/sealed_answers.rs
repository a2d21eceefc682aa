//! Key-committed sealed answers: a revealed key that does not match its commitment
//! is rejected, including for a ciphertext crafted to open under two keys.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support {
    pub mod two_key;
}

use attune_crypto::{answer_commitment, open_revealed, seal_answer, RevealError, SymmetricKey};
use attune_proto::{AnswerContext, DeviceId, EntryId, SealedAnswer, SpaceId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

fn context() -> AnswerContext {
    AnswerContext {
        space: SpaceId([1; 16]),
        exercise: EntryId([2; 16]),
        author: DeviceId([3; 32]),
    }
}

#[test]
fn honest_reveal_opens() {
    let ctx = context();
    let (sealed, key) = seal_answer(&ctx, b"I guessed 6, tired and hopeful").unwrap();
    let sealed = SealedAnswer::decode(&sealed.encode()).unwrap();
    assert_eq!(
        open_revealed(&ctx, &sealed, &key).unwrap().as_slice(),
        b"I guessed 6, tired and hopeful"
    );
}

#[test]
fn another_key_is_refused_before_decryption() {
    let ctx = context();
    let (sealed, _key) = seal_answer(&ctx, b"answer").unwrap();
    assert_eq!(
        open_revealed(&ctx, &sealed, &SymmetricKey::generate()),
        Err(RevealError::CommitmentMismatch)
    );
}

#[test]
fn the_answer_is_bound_to_its_exercise_and_author() {
    let ctx = context();
    let (sealed, key) = seal_answer(&ctx, b"answer").unwrap();
    let mut other = ctx;
    other.exercise = EntryId([9; 16]);
    assert_eq!(
        open_revealed(&other, &sealed, &key),
        Err(RevealError::CommitmentMismatch)
    );
    let mut other = ctx;
    other.author = DeviceId([9; 32]);
    assert_eq!(
        open_revealed(&other, &sealed, &key),
        Err(RevealError::CommitmentMismatch)
    );
}

#[test]
fn altered_ciphertext_under_the_right_key_is_refused() {
    let ctx = context();
    let (mut sealed, key) = seal_answer(&ctx, b"answer").unwrap();
    sealed.ciphertext[3] ^= 4;
    assert_eq!(
        open_revealed(&ctx, &sealed, &key),
        Err(RevealError::Decrypt)
    );
}

/// An author who wants to choose their answer after seeing the partner's crafts one
/// ciphertext that opens under two keys, commits to one, and reveals the other.
#[test]
fn a_ciphertext_crafted_to_open_under_two_keys_is_refused() {
    let ctx = context();
    let aad = ctx.encode();
    let k1 = [0x11u8; 32];
    let k2 = [0x22u8; 32];
    let nonce = [0x33u8; 24];
    let ct = support::two_key::craft_two_key_ciphertext(&k1, &k2, &nonce, &aad, 4, 7);

    // The AEAD alone is fooled: both keys authenticate and give different plaintexts.
    let open_raw = |k: &[u8; 32]| {
        XChaCha20Poly1305::new(k.into())
            .decrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &ct,
                    aad: &aad,
                },
            )
            .expect("the crafted ciphertext authenticates under this key")
    };
    assert_ne!(open_raw(&k1), open_raw(&k2));

    // Committed to k1, revealing k2 is caught by the commitment, whatever the AEAD says.
    let key1 = SymmetricKey::from_bytes(k1);
    let key2 = SymmetricKey::from_bytes(k2);
    let sealed = SealedAnswer {
        commitment: answer_commitment(&ctx, &key1),
        nonce,
        ciphertext: ct.clone(),
    };
    assert_eq!(
        open_revealed(&ctx, &sealed, &key2),
        Err(RevealError::CommitmentMismatch)
    );
    // And the same holds the other way round.
    let sealed2 = SealedAnswer {
        commitment: answer_commitment(&ctx, &key2),
        ..sealed.clone()
    };
    assert_eq!(
        open_revealed(&ctx, &sealed2, &key1),
        Err(RevealError::CommitmentMismatch)
    );
    // Under the committed key it passes the commitment and the AEAD; its content is
    // random bytes, not a padded answer, so it is still refused.
    assert!(matches!(
        open_revealed(&ctx, &sealed, &key1),
        Err(RevealError::Padding(_))
    ));
}
