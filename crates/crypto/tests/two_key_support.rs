//! Checks for the multi-key-collision test helper in `support::two_key`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod support {
    pub mod two_key;
}

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::XChaCha20Poly1305;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;
use support::two_key::{craft_two_key_ciphertext, try_craft_two_key_ciphertext};

fn decrypt(key: &[u8; 32], nonce: &[u8; 24], aad: &[u8], ct: &[u8]) -> Option<Vec<u8>> {
    XChaCha20Poly1305::new(key.into())
        .decrypt(nonce.into(), Payload { msg: ct, aad })
        .ok()
}

fn keys_and_nonce(seed: u64) -> ([u8; 32], [u8; 32], [u8; 24]) {
    let mut rng = ChaCha20Rng::seed_from_u64(seed ^ 0x5eed);
    let (mut k1, mut k2, mut nonce) = ([0u8; 32], [0u8; 32], [0u8; 24]);
    rng.fill_bytes(&mut k1);
    rng.fill_bytes(&mut k2);
    rng.fill_bytes(&mut nonce);
    (k1, k2, nonce)
}

/// Checks `ct` is a valid two-key ciphertext with `blocks` blocks.
fn assert_opens_under_both(
    k1: &[u8; 32],
    k2: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    ct: &[u8],
    blocks: usize,
) {
    assert_eq!(ct.len(), 16 * blocks + 16);
    let p1 = decrypt(k1, nonce, aad, ct).expect("crafted ct must open under key1");
    let p2 = decrypt(k2, nonce, aad, ct).expect("crafted ct must open under key2");
    assert_eq!(p1.len(), 16 * blocks);
    assert_ne!(p1, p2, "different keys should yield different plaintexts");
    // Changing the AAD breaks it, as it should.
    assert!(decrypt(k1, nonce, b"other aad", ct).is_none());
}

// 21-byte AAD exercises the zero padding of a partial AAD block.
const AAD: &[u8] = b"attune/test/two-key/1";

#[test]
fn crafted_ciphertext_decrypts_under_both_keys() {
    for seed in 0..4u64 {
        for blocks in [2usize, 4] {
            let (k1, k2, nonce) = keys_and_nonce(seed);
            let ct = craft_two_key_ciphertext(&k1, &k2, &nonce, AAD, blocks, seed);
            assert_opens_under_both(&k1, &k2, &nonce, AAD, &ct, blocks);
            // Deterministic in the seed.
            assert_eq!(
                ct,
                craft_two_key_ciphertext(&k1, &k2, &nonce, AAD, blocks, seed)
            );
        }
    }
}

#[test]
fn single_block_two_key_ciphertexts() {
    // With one block there is nothing to re-randomise, so a solution exists
    // only for ~63% of key pairs. Whenever one is found it must be valid.
    let mut found = 0;
    for seed in 0..16u64 {
        let (k1, k2, nonce) = keys_and_nonce(seed);
        if let Some((ct, attempts)) = try_craft_two_key_ciphertext(&k1, &k2, &nonce, AAD, 1, seed) {
            assert_eq!(attempts, 1);
            assert_opens_under_both(&k1, &k2, &nonce, AAD, &ct, 1);
            assert_eq!(ct, craft_two_key_ciphertext(&k1, &k2, &nonce, AAD, 1, seed));
            found += 1;
        }
    }
    assert!(
        found >= 4,
        "only {found}/16 key pairs had a 1-block solution"
    );
}

#[test]
fn crafting_needs_few_attempts() {
    for blocks in [2usize, 4] {
        let mut total = 0;
        let mut worst = 0;
        for seed in 0..64u64 {
            let (k1, k2, nonce) = keys_and_nonce(seed);
            let (_, attempts) = try_craft_two_key_ciphertext(&k1, &k2, &nonce, AAD, blocks, seed)
                .expect("blocks >= 2 must always succeed");
            total += attempts;
            worst = worst.max(attempts);
        }
        eprintln!(
            "blocks={blocks}: mean attempts {:.2}, max {worst} over 64 seeds",
            total as f64 / 64.0
        );
        assert!(worst <= 20, "unexpectedly many attempts: {worst}");
    }
}

#[test]
fn crafted_ciphertext_with_empty_aad() {
    let (k1, k2, nonce) = keys_and_nonce(99);
    let ct = craft_two_key_ciphertext(&k1, &k2, &nonce, b"", 3, 99);
    assert!(decrypt(&k1, &nonce, b"", &ct).is_some());
    assert!(decrypt(&k2, &nonce, b"", &ct).is_some());
}

#[test]
fn random_ciphertext_does_not_decrypt() {
    let aad = AAD;
    let (k1, k2, nonce) = keys_and_nonce(7);
    // An honest encryption under key1 opens only under key1 ...
    let honest = XChaCha20Poly1305::new((&k1).into())
        .encrypt(
            (&nonce).into(),
            Payload {
                msg: &[0x42u8; 48][..],
                aad,
            },
        )
        .expect("encryption cannot fail");
    assert!(decrypt(&k1, &nonce, aad, &honest).is_some());
    assert!(decrypt(&k2, &nonce, aad, &honest).is_none());
    // ... and random bytes open under neither.
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    for len in [16usize, 32, 80] {
        let mut junk = vec![0u8; len];
        rng.fill_bytes(&mut junk);
        assert!(decrypt(&k2, &nonce, aad, &junk).is_none());
        assert!(decrypt(&k1, &nonce, aad, &junk).is_none());
    }
}
