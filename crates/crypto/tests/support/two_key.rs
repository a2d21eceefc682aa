//! Test support: craft an XChaCha20-Poly1305 ciphertext that is valid under
//! two different keys (a "multi-key collision", as used in partitioning-oracle
//! attacks, Len–Grubbs–Ristenpart 2021). This shows that ChaCha20-Poly1305 is
//! not key-committing, which is why our protocol adds its own key commitment.
//!
//! This is an *attack* written for tests; the arithmetic uses `num-bigint` and is
//! neither constant-time nor fast, and that is fine here.

use chacha20::cipher::{KeyIvInit, StreamCipher};
use chacha20::XChaCha20;
use num_bigint::{BigInt, BigUint};
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// Upper bound on re-randomisations (for `blocks >= 2`); each attempt succeeds
/// with probability ~63%, so hitting this means something is broken.
const MAX_ATTEMPTS: usize = 1000;

/// Poly1305 one-time key `(r, s)` for XChaCha20-Poly1305 as in the
/// `chacha20poly1305` crate: the first 32 bytes of the XChaCha20 keystream at
/// block counter 0 (the message itself is encrypted from block counter 1).
fn poly1305_key(key: &[u8; 32], nonce: &[u8; 24]) -> (BigUint, BigUint) {
    let mut otk = [0u8; 32];
    XChaCha20::new(key.into(), nonce.into()).apply_keystream(&mut otk);
    let clamp = BigUint::from(0x0fff_fffc_0fff_fffc_0fff_fffc_0fff_ffff_u128);
    let r = BigUint::from_bytes_le(&otk[..16]) & clamp;
    let s = BigUint::from_bytes_le(&otk[16..]);
    (r, s)
}

/// A 16-byte chunk (zero-padded if shorter) as a Poly1305 block integer:
/// `LE(m) + 2^128`.
fn block_int(chunk: &[u8], two128: &BigUint) -> BigUint {
    let mut block = [0u8; 16];
    block[..chunk.len()].copy_from_slice(chunk);
    BigUint::from_bytes_le(&block) + two128
}

/// The Poly1305 block integers of the RFC 8439 §2.8 MAC input:
/// `aad || pad16 || ct || pad16 || le64(aad.len()) || le64(ct.len())`.
fn mac_blocks(aad: &[u8], ct: &[u8], two128: &BigUint) -> Vec<BigUint> {
    let mut blocks: Vec<BigUint> = aad.chunks(16).map(|c| block_int(c, two128)).collect();
    blocks.extend(ct.chunks(16).map(|c| block_int(c, two128)));
    let mut lens = [0u8; 16];
    lens[..8].copy_from_slice(&(aad.len() as u64).to_le_bytes());
    lens[8..].copy_from_slice(&(ct.len() as u64).to_le_bytes());
    blocks.push(block_int(&lens, two128));
    blocks
}

/// Poly1305 polynomial `h = sum m_i r^(n-i+1) mod p` (Horner form).
fn poly(blocks: &[BigUint], r: &BigUint, p: &BigUint) -> BigUint {
    blocks
        .iter()
        .fold(BigUint::from(0u8), |h, m| ((h + m) * r) % p)
}

/// The 16-byte tag `(h + s) mod 2^128`, little-endian.
fn tag_bytes(h: &BigUint, s: &BigUint, two128: &BigUint) -> [u8; 16] {
    let t = ((h + s) % two128).to_bytes_le();
    let mut out = [0u8; 16];
    out[..t.len()].copy_from_slice(&t);
    out
}

/// Returns `ct || tag` (as produced by `chacha20poly1305::XChaCha20Poly1305::encrypt`
/// with `Payload { msg, aad }`) such that decrypting with `key1` and with `key2`
/// (same 24-byte `nonce`, same `aad`) both succeed.
/// `blocks` is the number of 16-byte ciphertext blocks (>= 1); total ciphertext
/// length = 16*blocks. Deterministic given `seed`.
///
/// Panics if no such ciphertext is found. With `blocks >= 2` that does not
/// happen in practice (a couple of attempts suffice). With `blocks == 1` there
/// are no free blocks to re-randomise: a 16-byte ciphertext valid under both
/// keys exists for only ~63% of `(key1, key2, nonce, aad)` inputs (the count of
/// solutions is ~Poisson(1)), and `seed` cannot help; see
/// [`try_craft_two_key_ciphertext`].
pub fn craft_two_key_ciphertext(
    key1: &[u8; 32],
    key2: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    blocks: usize,
    seed: u64,
) -> Vec<u8> {
    match try_craft_two_key_ciphertext(key1, key2, nonce, aad, blocks, seed) {
        Some((ct, _attempts)) => ct,
        None if blocks == 1 => {
            panic!("no 1-block two-key ciphertext exists for these keys/nonce/aad; use blocks >= 2")
        }
        None => panic!("no two-key ciphertext found in {MAX_ATTEMPTS} attempts"),
    }
}

/// Like [`craft_two_key_ciphertext`], but returns `None` instead of panicking,
/// and also returns the number of attempts (random fillings of the free
/// blocks) that were needed.
pub fn try_craft_two_key_ciphertext(
    key1: &[u8; 32],
    key2: &[u8; 32],
    nonce: &[u8; 24],
    aad: &[u8],
    blocks: usize,
    seed: u64,
) -> Option<(Vec<u8>, usize)> {
    assert!(
        blocks >= 1,
        "need at least one ciphertext block to solve for"
    );
    let two128 = BigUint::from(1u8) << 128;
    let p = (BigUint::from(1u8) << 130) - 5u8; // 2^130 - 5
    let (r1, s1) = poly1305_key(key1, nonce);
    let (r2, s2) = poly1305_key(key2, nonce);

    // We solve for the last ciphertext block. Its index among the MAC blocks
    // is `solved`, so it is multiplied by r^e with e = n - solved.
    let n = aad.len().div_ceil(16) + blocks + 1;
    let solved = aad.len().div_ceil(16) + blocks - 1;
    let e = BigUint::from(n - solved);
    // h_j(X) = C_j + X * r_j^e (mod p); we need the coefficient difference
    // r1^e - r2^e to be invertible mod p (it is, unless r1 == r2).
    let diff = (r1.modpow(&e, &p) + &p - r2.modpow(&e, &p)) % &p;
    assert!(diff != BigUint::from(0u8), "keys give identical Poly1305 r");
    let diff_inv = diff.modpow(&(&p - 2u8), &p); // Fermat inverse, p is prime
    let p_signed = BigInt::from(p.clone());

    // With a single block nothing is random, so one attempt is exhaustive.
    let max_attempts = if blocks == 1 { 1 } else { MAX_ATTEMPTS };
    let mut rng = ChaCha20Rng::seed_from_u64(seed);
    let mut ct = vec![0u8; 16 * blocks];
    for attempt in 1..=max_attempts {
        // Random free blocks; the solved block is a placeholder for now.
        rng.fill_bytes(&mut ct);
        // C_j: the polynomial with the solved block's integer set to 0.
        let mut mb = mac_blocks(aad, &ct, &two128);
        mb[solved] = BigUint::from(0u8);
        let c1 = BigInt::from(poly(&mb, &r1, &p));
        let c2 = BigInt::from(poly(&mb, &r2, &p));

        // Tags agree iff (h1 + s1) - (h2 + s2) = k * 2^128 for some integer k.
        // h_j in [0, p) and s_j in [0, 2^128), so |k| <= 5: trying every k
        // finds every solution for these free blocks.
        for k in -5i32..=5 {
            // Want h1 - h2 = D := s2 - s1 + k*2^128, i.e. (mod p)
            // X * (r1^e - r2^e) = D - (C1 - C2).
            let d = BigInt::from(s2.clone()) - BigInt::from(s1.clone())
                + BigInt::from(k) * BigInt::from(two128.clone());
            let rhs = ((d - &c1 + &c2) % &p_signed + &p_signed) % &p_signed;
            let Some(rhs) = rhs.to_biguint() else {
                continue;
            };
            let x = (rhs * &diff_inv) % &p;
            // X must be a genuine full-block value LE(m) + 2^128.
            if x < two128 || x >= (&two128 << 1) {
                continue;
            }
            let m = (x - &two128).to_bytes_le();
            let last = &mut ct[16 * (blocks - 1)..];
            last.fill(0);
            last[..m.len()].copy_from_slice(&m);

            // The congruence only fixes h1 - h2 mod p; check the real tags.
            let mb = mac_blocks(aad, &ct, &two128);
            let tag1 = tag_bytes(&poly(&mb, &r1, &p), &s1, &two128);
            let tag2 = tag_bytes(&poly(&mb, &r2, &p), &s2, &two128);
            if tag1 == tag2 {
                ct.extend_from_slice(&tag1);
                return Some((ct, attempt));
            }
        }
        // No k worked: re-randomise the free blocks and retry.
    }
    None
}
