#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Decoder fuzzing for attune-crypto: `unpad`, `open_keystore` and
//! `PairingCode::parse` are each fed at least 100,000 random and mutated inputs.
//! None may panic, and whatever they accept must be canonical:
//!
//! - `unpad(x) == Ok(p)` implies `pad(&p) == x`;
//! - an unprotected keystore that opens re-seals to exactly its input; a locked one
//!   that opens is exactly one of the files we sealed, with the same contents;
//! - `PairingCode::parse(s) == Ok(c)` implies `PairingCode::parse(&c.reveal()) == Ok(c)`.
//!
//! Deterministic: each test seeds a ChaCha20 generator from a base seed and its own
//! name, and prints both. Set `ATTUNE_FUZZ_SEED` (decimal or 0x-hex) to try another
//! base seed; run with `--nocapture` to see the seeds and per-decoder counts. (The
//! salts and nonces of locked keystores come from the OS, as `seal_keystore` draws
//! them itself; everything else is reproducible.)

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use attune_crypto::padding::{pad, unpad};
use attune_crypto::{
    keystore_is_locked, open_keystore, seal_keystore, DeviceIdentity, KdfParams, Keyring,
    KeystoreContents, KeystoreError, PairingCode, Protection, SymmetricKey,
};
use attune_proto::KeyId;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

/// The base seed; each test mixes in its own name.
const SEED: u64 = 0xa77e_5eed_0f00_d1e5;
/// Inputs per decoder.
const INPUTS: usize = 100_000;

/// Values a mutation writes into a length (or count, or cost) field.
const INTERESTING_U32: [u32; 34] = [
    0,
    1,
    2,
    3,
    8,
    16,
    17,
    64,
    252,
    253,
    256,
    508,
    509,
    1020,
    1021,
    4096,
    4097,
    65_532,
    65_533,
    65_536,
    1 << 20,
    (1 << 20) + 1,
    (1 << 20) + 16,
    (1 << 20) + 17,
    0x00ff_ffff,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
    63,
    65,
    128,
    1024,
    2048,
];

const INTERESTING_U8: [u8; 10] = [0, 1, 2, 3, 4, 5, 0x7f, 0x80, 0xfe, 0xff];

// ---------------------------------------------------------------------------
// The generator and the mutation engine.
// ---------------------------------------------------------------------------

fn base_seed() -> u64 {
    std::env::var("ATTUNE_FUZZ_SEED")
        .ok()
        .and_then(|s| {
            let s = s.trim();
            match s.strip_prefix("0x") {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse().ok(),
            }
        })
        .unwrap_or(SEED)
}

/// FNV-1a, to give every test its own stream from one base seed.
fn fnv1a(s: &str) -> u64 {
    s.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

struct Fuzz {
    rng: ChaCha20Rng,
}

impl Fuzz {
    fn new(test: &str) -> Self {
        let base = base_seed();
        let seed = base ^ fnv1a(test);
        println!("{test}: seed {seed:#018x} (base ATTUNE_FUZZ_SEED={base:#018x})");
        Self {
            rng: ChaCha20Rng::seed_from_u64(seed),
        }
    }

    /// Uniform in `0..n` (0 when `n == 0`).
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.rng.next_u64() % n as u64) as usize
        }
    }

    /// Uniform in `lo..=hi`.
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo + 1)
    }

    fn one_in(&mut self, n: usize) -> bool {
        self.below(n) == 0
    }

    fn u32(&mut self) -> u32 {
        self.rng.next_u32()
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        let mut v = vec![0u8; n];
        self.rng.fill_bytes(&mut v);
        v
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        let mut a = [0u8; N];
        self.rng.fill_bytes(&mut a);
        a
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }

    /// A purely random input: random length 0..=600 (or near a valid length),
    /// half of the time behind a short prefix of a valid encoding.
    fn random_input(&mut self, pool: &[Vec<u8>], prefix_max: usize) -> Vec<u8> {
        let len = match self.below(4) {
            0 => {
                let typical = self.pick(pool).len().min(4096);
                (typical + self.below(5)).saturating_sub(2)
            }
            1 => self.below(16),
            _ => self.below(601),
        };
        let mut v = self.bytes(len);
        if self.one_in(2) {
            let seed = self.pick(pool);
            let n = self.below(prefix_max + 1).min(seed.len()).min(v.len());
            v[..n].copy_from_slice(&seed[..n]);
        }
        v
    }

    /// `pool[i]`, mutated one or more times.
    fn mutated_input(&mut self, pool: &[Vec<u8>], i: usize, len_fields: &[usize]) -> Vec<u8> {
        let mut v = pool[i].clone();
        let rounds = match self.below(8) {
            0..=4 => 1,
            5 | 6 => 2,
            _ => self.range(3, 8),
        };
        for _ in 0..rounds {
            self.mutate_once(&mut v, len_fields, pool);
        }
        v
    }

    fn mutate_once(&mut self, v: &mut Vec<u8>, len_fields: &[usize], pool: &[Vec<u8>]) {
        match self.below(13) {
            // Flip one bit.
            0 | 1 => {
                if !v.is_empty() {
                    let i = self.below(v.len());
                    v[i] ^= 1 << self.below(8);
                }
            }
            // Overwrite a byte with a random or a boundary value.
            2 | 3 => {
                if !v.is_empty() {
                    let i = self.below(v.len());
                    v[i] = if self.one_in(2) {
                        self.u32() as u8
                    } else {
                        *self.pick(&INTERESTING_U8)
                    };
                }
            }
            // Truncate, often by just a few bytes.
            4 => {
                let cut = if self.one_in(2) {
                    self.range(1, 4)
                } else {
                    self.below(v.len() + 1)
                };
                v.truncate(v.len().saturating_sub(cut));
            }
            // Extend with random bytes.
            5 => {
                let n = if self.one_in(2) {
                    self.range(1, 4)
                } else {
                    self.range(1, 64)
                };
                let extra = self.bytes(n);
                v.extend_from_slice(&extra);
            }
            // Insert random bytes.
            6 => {
                let at = self.below(v.len() + 1);
                let n = self.range(1, 8);
                let extra = self.bytes(n);
                v.splice(at..at, extra);
            }
            // Delete a few bytes.
            7 => {
                if !v.is_empty() {
                    let at = self.below(v.len());
                    let n = self.range(1, 8).min(v.len() - at);
                    v.drain(at..at + n);
                }
            }
            // Splice: a prefix of this encoding, then a suffix of another
            // (at the same offset half of the time, so the structure lines up).
            8 => {
                let other = self.pick(pool).clone();
                let i = self.below(v.len() + 1);
                let j = if self.one_in(2) {
                    i.min(other.len())
                } else {
                    self.below(other.len() + 1)
                };
                v.truncate(i);
                v.extend_from_slice(&other[j..]);
            }
            // Set a length field (or, without one, any 4 bytes) to a boundary or
            // huge value, or to just off the true remaining length.
            9 | 10 => {
                let known: Vec<usize> = len_fields
                    .iter()
                    .copied()
                    .filter(|&o| o + 4 <= v.len())
                    .collect();
                let at = if !known.is_empty() && !self.one_in(4) {
                    *self.pick(&known)
                } else if v.len() >= 4 {
                    self.below(v.len() - 3)
                } else {
                    return;
                };
                let current = u32::from_be_bytes(v[at..at + 4].try_into().unwrap());
                let remaining = (v.len() - at - 4) as u32;
                let value = match self.below(5) {
                    0 => current.wrapping_add(1),
                    1 => current.wrapping_sub(1),
                    2 => remaining.wrapping_add(self.below(3) as u32).wrapping_sub(1),
                    // Half the remaining space, give or take: the previous bucket.
                    3 => (remaining / 2)
                        .wrapping_add(self.below(3) as u32)
                        .wrapping_sub(1),
                    _ => *self.pick(&INTERESTING_U32),
                };
                v[at..at + 4].copy_from_slice(&value.to_be_bytes());
            }
            // Duplicate a chunk in place.
            11 => {
                if !v.is_empty() {
                    let at = self.below(v.len());
                    let n = self.range(1, 16).min(v.len() - at);
                    let chunk = v[at..at + n].to_vec();
                    v.splice(at + n..at + n, chunk);
                }
            }
            // Swap two bytes.
            _ => {
                if v.len() >= 2 {
                    let i = self.below(v.len());
                    let j = self.below(v.len());
                    v.swap(i, j);
                }
            }
        }
    }
}

#[derive(Debug, Default)]
struct Stats {
    random: usize,
    random_ok: usize,
    mutated: usize,
    mutated_ok: usize,
    elapsed: Duration,
}

impl Stats {
    fn count(&mut self, random: bool, ok: bool) {
        if random {
            self.random += 1;
            self.random_ok += usize::from(ok);
        } else {
            self.mutated += 1;
            self.mutated_ok += usize::from(ok);
        }
    }

    fn inputs(&self) -> usize {
        self.random + self.mutated
    }

    fn report(&self, name: &str) {
        println!(
            "{name}: {} inputs ({} random, {} mutated), {} decoded OK ({} random, {} mutated), {:.2?}",
            self.inputs(),
            self.random,
            self.mutated,
            self.random_ok + self.mutated_ok,
            self.random_ok,
            self.mutated_ok,
            self.elapsed
        );
    }

    /// At least `per_mille` of the mutated inputs decode (the fuzzing reaches past
    /// the first checks), and not all of them (the decoder checks something).
    fn assert_reach(&self, name: &str, per_mille: usize) {
        assert!(self.inputs() >= INPUTS);
        assert!(
            self.mutated_ok * 1000 >= self.mutated * per_mille,
            "{name}: only {} of {} mutated inputs decoded",
            self.mutated_ok,
            self.mutated
        );
        assert!(self.mutated_ok < self.mutated);
    }
}

// ---------------------------------------------------------------------------
// unpad
// ---------------------------------------------------------------------------

/// Resizes to another small bucket, zero-filling or cutting.
fn rebucket(f: &mut Fuzz, v: &mut Vec<u8>) {
    let bucket = *f.pick(&[256usize, 512, 1024, 2048]);
    v.resize(bucket, 0);
}

#[test]
fn unpad_fuzz() {
    let name = "padding::unpad";
    let mut f = Fuzz::new(name);
    let mut pool = Vec::new();
    // Mostly small buckets; a few of the large ones (unpad is unoptimised here).
    for len in [
        0usize, 1, 252, 253, 508, 509, 1020, 1021, 2044, 65_532, 65_533,
    ] {
        pool.push(pad(&f.bytes(len)).unwrap().to_vec());
    }
    while pool.len() < 256 {
        let len = match f.below(10) {
            0..=3 => f.below(253),
            4..=6 => f.range(253, 508),
            7 | 8 => f.range(509, 1020),
            _ => f.range(1021, 2044),
        };
        // Zero-heavy plaintexts too: trailing zeros look like padding.
        let mut p = f.bytes(len);
        if f.one_in(3) {
            let from = f.below(len + 1);
            p[from..].fill(0);
        }
        pool.push(pad(&p).unwrap().to_vec());
    }
    for x in &pool {
        assert_eq!(pad(&unpad(x).unwrap()).unwrap().as_slice(), &x[..]);
    }

    let mut stats = Stats::default();
    let start = Instant::now();
    for _ in 0..INPUTS {
        let random = f.one_in(4);
        let input = if random {
            let mut v = f.random_input(&pool, 4);
            if f.one_in(4) {
                rebucket(&mut f, &mut v);
            }
            v
        } else {
            let i = f.below(pool.len());
            let mut v = f.mutated_input(&pool, i, &[0]);
            if f.one_in(8) {
                rebucket(&mut f, &mut v);
            }
            v
        };
        let ok = match unpad(&input) {
            Ok(p) => {
                let again = pad(&p).expect("an unpadded plaintext fits a bucket");
                assert!(
                    again.as_slice() == &input[..],
                    "{name}: accepted a non-canonical padding: {}",
                    hex::encode(&input)
                );
                true
            }
            Err(_) => false,
        };
        stats.count(random, ok);
    }
    stats.elapsed = start.elapsed();
    stats.report(name);
    stats.assert_reach(name, 100);
}

// ---------------------------------------------------------------------------
// open_keystore
// ---------------------------------------------------------------------------

const MAGIC_LEN: usize = 8;
/// magic | version | mode
const PREAMBLE_LEN: usize = MAGIC_LEN + 2;
/// In an unprotected file: the key count, after contents version, sign seed and kx secret.
const UNPROTECTED_COUNT_AT: usize = PREAMBLE_LEN + 1 + 32 + 32;
/// In a locked file: the three Argon2 costs, then salt and nonce, then the ciphertext length.
const LOCKED_COSTS_AT: usize = PREAMBLE_LEN;
const LOCKED_CT_LEN_AT: usize = PREAMBLE_LEN + 12 + 16 + 24;
const PASSPHRASE: &[u8] = b"x";
/// At most this many inputs are opened with a passphrase (the others with `None`,
/// which returns before Argon2).
const MAX_WITH_PASSPHRASE: usize = 2_000;

fn contents(f: &mut Fuzz) -> KeystoreContents {
    let identity = DeviceIdentity::from_secret_bytes(&f.array(), &f.array());
    let mut keys = Keyring::new();
    let count = match f.below(8) {
        0 => 0,
        1..=3 => 1,
        _ => f.range(2, 6),
    };
    for _ in 0..count {
        let n = if f.one_in(2) {
            f.below(4) as u32
        } else {
            f.u32()
        };
        let id = if f.one_in(2) {
            KeyId::Epoch(n)
        } else {
            KeyId::MemberPrivate(n)
        };
        keys.insert(id, SymmetricKey::from_bytes(f.array()));
    }
    KeystoreContents { identity, keys }
}

fn unprotected(c: &KeystoreContents) -> Vec<u8> {
    seal_keystore(c, Protection::Unprotected).unwrap()
}

/// Whether opening a locked file with a passphrase stays cheap: the Argon2 costs it
/// names are small, or out of the accepted range (rejected before any work).
fn cheap_to_open(file: &[u8]) -> bool {
    if file.len() < PREAMBLE_LEN || file[PREAMBLE_LEN - 1] != 1 {
        return true; // not a locked file: no Argon2
    }
    if file.len() < LOCKED_COSTS_AT + 12 {
        return true; // truncated before the costs: no Argon2
    }
    let cost = |i: usize| {
        let at = LOCKED_COSTS_AT + 4 * i;
        u32::from_be_bytes(file[at..at + 4].try_into().unwrap())
    };
    let (m, t, p) = (cost(0), cost(1), cost(2));
    let rejected = m > 1024 * 1024 || t > 64 || p > 16 || t == 0 || p == 0 || m < 8 * p;
    rejected || (u64::from(m) * u64::from(t) <= 4 * 1024)
}

#[test]
fn open_keystore_fuzz() {
    let name = "keystore::open_keystore";
    let mut f = Fuzz::new(name);

    // Unprotected seeds, and locked seeds (with the unprotected encoding of the
    // same contents, to compare what opens against).
    let mut open_pool = Vec::new();
    while open_pool.len() < 224 {
        let c = contents(&mut f);
        open_pool.push(unprotected(&c));
    }
    let mut locked_pool = Vec::new();
    let mut locked_plain = Vec::new();
    while locked_pool.len() < 32 {
        let c = contents(&mut f);
        let file = seal_keystore(
            &c,
            Protection::Passphrase(PASSPHRASE, KdfParams::INSECURE_FOR_TESTS),
        )
        .unwrap();
        locked_pool.push(file);
        locked_plain.push(unprotected(&c));
    }
    for file in &open_pool {
        let c = open_keystore(file, None).unwrap();
        assert_eq!(&unprotected(&c), file);
        assert!(!keystore_is_locked(file).unwrap());
    }
    for (file, plain) in locked_pool.iter().zip(&locked_plain) {
        assert!(matches!(
            open_keystore(file, None),
            Err(KeystoreError::PassphraseRequired)
        ));
        assert!(matches!(
            open_keystore(file, Some(b"y")),
            Err(KeystoreError::WrongPassphrase)
        ));
        let c = open_keystore(file, Some(PASSPHRASE)).unwrap();
        assert_eq!(&unprotected(&c), plain);
        assert!(keystore_is_locked(file).unwrap());
    }
    let mut all_pool = open_pool.clone();
    all_pool.extend(locked_pool.iter().cloned());
    let open_len_fields = [UNPROTECTED_COUNT_AT];
    let locked_len_fields = [
        LOCKED_COSTS_AT,
        LOCKED_COSTS_AT + 4,
        LOCKED_COSTS_AT + 8,
        LOCKED_CT_LEN_AT,
    ];

    let mut stats = Stats::default();
    let (mut with_passphrase, mut locked_inputs, mut locked_ok) = (0usize, 0usize, 0usize);
    let start = Instant::now();
    for _ in 0..INPUTS {
        let random = f.one_in(4);
        let (input, from_locked) = if random {
            (f.random_input(&all_pool, PREAMBLE_LEN + 6), false)
        } else if f.one_in(2) {
            let i = f.below(locked_pool.len());
            (f.mutated_input(&locked_pool, i, &locked_len_fields), true)
        } else {
            let i = f.below(open_pool.len());
            (f.mutated_input(&open_pool, i, &open_len_fields), false)
        };
        let passphrase = if with_passphrase < MAX_WITH_PASSPHRASE
            && (if from_locked {
                f.one_in(12)
            } else {
                f.one_in(100)
            })
            && cheap_to_open(&input)
        {
            with_passphrase += 1;
            Some(PASSPHRASE)
        } else {
            None
        };
        let locked = keystore_is_locked(&input);
        let opened = open_keystore(&input, passphrase);
        let is_locked_file = matches!(locked, Ok(true));
        locked_inputs += usize::from(is_locked_file);
        let ok = match opened {
            Ok(c) => {
                let reseal = unprotected(&c);
                if is_locked_file {
                    // Everything but the ciphertext is associated data, and the
                    // ciphertext is authenticated: only a sealed file opens.
                    let k = locked_pool
                        .iter()
                        .position(|s| *s == input)
                        .unwrap_or_else(|| {
                            panic!(
                                "{name}: a locked keystore that we never sealed opened: {}",
                                hex::encode(&input)
                            )
                        });
                    assert_eq!(reseal, locked_plain[k]);
                    locked_ok += 1;
                } else {
                    assert!(
                        matches!(locked, Ok(false)),
                        "{name}: opened, yet not an unprotected file?"
                    );
                    assert_eq!(
                        hex::encode(&reseal),
                        hex::encode(&input),
                        "{name}: accepted a non-canonical keystore"
                    );
                }
                true
            }
            Err(KeystoreError::PassphraseRequired) => {
                assert!(passphrase.is_none() && is_locked_file);
                false
            }
            Err(_) => false,
        };
        stats.count(random, ok);
    }
    stats.elapsed = start.elapsed();
    stats.report(name);
    println!(
        "{name}: {with_passphrase} opened with a passphrase; {locked_inputs} inputs were locked files, {locked_ok} of which opened"
    );
    assert!(with_passphrase > 500 && with_passphrase <= MAX_WITH_PASSPHRASE);
    stats.assert_reach(name, 100);
}

// ---------------------------------------------------------------------------
// PairingCode::parse
// ---------------------------------------------------------------------------

/// Every word a pairing code can use, in sorted order: harvested from `generate`,
/// which draws each of the 256 words with probability 1/256 per slot.
fn all_words() -> Vec<String> {
    let mut words = BTreeSet::new();
    for _ in 0..100_000 {
        let code = PairingCode::generate(0).reveal();
        let mut parts = code.split('-').skip(1);
        words.extend(parts.next().map(str::to_string));
        words.extend(parts.next().map(str::to_string));
        if words.len() == 256 {
            break;
        }
    }
    assert_eq!(words.len(), 256, "did not see all 256 words");
    words.into_iter().collect()
}

/// Characters for random and mutated codes: what users type, what they paste, and
/// what they should not.
const CODE_CHARS: [char; 32] = [
    '0', '1', '4', '7', '9', 'a', 'e', 'o', 'r', 't', 'A', 'O', 'T', '-', '-', ' ', ' ', '\t',
    '\n', '+', '_', '.', '\0', '\u{a0}', '\u{2009}', '\u{200b}', '\u{2212}', 'é', 'İ', 'K', '😀',
    '\u{ff11}',
];

fn mailbox(f: &mut Fuzz) -> u32 {
    match f.below(4) {
        0 => f.below(100) as u32,
        1 => u32::MAX - f.below(2) as u32,
        _ => f.u32(),
    }
}

/// A random token sequence: numbers, words and junk with random separators.
fn random_code(f: &mut Fuzz, words: &[String]) -> String {
    if f.one_in(2) {
        let n = f.below(40);
        return (0..n).map(|_| *f.pick(&CODE_CHARS)).collect();
    }
    let mut s = String::new();
    for i in 0..f.range(0, 5) {
        if i > 0 || f.one_in(4) {
            let sep: &&str = f.pick(&["-", " ", "--", " - ", "_", "", "\t", "\u{a0}"]);
            s.push_str(sep);
        }
        match f.below(5) {
            0 => s.push_str(&mailbox(f).to_string()),
            1 => {
                let odd: &&str = f.pick(&["00", "+7", "-1", "4294967296", "99999999999", "0x10"]);
                s.push_str(odd);
            }
            2 => {
                let n = f.below(4);
                s.extend((0..n).map(|_| *f.pick(&CODE_CHARS)));
            }
            _ => s.push_str(f.pick(words).as_str()),
        }
    }
    s
}

fn mutate_code(f: &mut Fuzz, code: &str, other: &str, words: &[String]) -> String {
    let mut chars: Vec<char> = code.chars().collect();
    for _ in 0..f.range(1, 3) {
        match f.below(12) {
            0 | 1 => {
                if !chars.is_empty() {
                    let i = f.below(chars.len());
                    chars[i] = *f.pick(&CODE_CHARS);
                }
            }
            2 => {
                let at = f.below(chars.len() + 1);
                chars.insert(at, *f.pick(&CODE_CHARS));
            }
            3 => {
                if !chars.is_empty() {
                    let at = f.below(chars.len());
                    chars.remove(at);
                }
            }
            // Change the case of one character or of everything.
            4 => {
                if f.one_in(2) {
                    chars.iter_mut().for_each(|c| *c = c.to_ascii_uppercase());
                } else if !chars.is_empty() {
                    let i = f.below(chars.len());
                    chars[i] = chars[i].to_ascii_uppercase();
                }
            }
            // Separators: dashes to spaces or runs, blanks around.
            5 => {
                let sep: Vec<char> = f
                    .pick(&[" ", "--", " - ", "  ", "", "_", "\t"])
                    .chars()
                    .collect();
                if let Some(i) = chars.iter().position(|c| *c == '-') {
                    chars.splice(i..=i, sep);
                }
            }
            6 => {
                let pad: Vec<char> = f
                    .pick(&[" ", "\n", "\t ", "\u{a0}", "-", "\u{3000}"])
                    .chars()
                    .collect();
                if f.one_in(2) {
                    chars.splice(0..0, pad);
                } else {
                    chars.extend(pad);
                }
            }
            // The number: prefix, or replaced by a boundary value.
            7 => {
                let end = chars
                    .iter()
                    .position(|c| !c.is_ascii_digit())
                    .unwrap_or(chars.len());
                let new: Vec<char> = match f.below(4) {
                    0 => "+".chars().chain(chars[..end].iter().copied()).collect(),
                    1 => "00".chars().chain(chars[..end].iter().copied()).collect(),
                    2 => f
                        .pick(&["4294967295", "4294967296", "0", "", "-0"])
                        .chars()
                        .collect(),
                    _ => mailbox(f).to_string().chars().collect(),
                };
                chars.splice(..end, new);
            }
            // A word: replaced by another, a prefix of one, or repeated.
            8 => {
                let s: String = chars.iter().collect();
                let mut parts: Vec<String> = s.split('-').map(str::to_string).collect();
                if parts.len() > 1 {
                    let i = f.range(1, parts.len() - 1);
                    let w = f.pick(words).clone();
                    parts[i] = match f.below(4) {
                        0 => w[..f.range(1, w.len())].to_string(),
                        1 => format!("{w}{w}"),
                        _ => w,
                    };
                    if f.one_in(4) {
                        let extra = f.pick(words).clone();
                        parts.push(extra);
                    }
                }
                chars = parts.join("-").chars().collect();
            }
            9 => {
                let keep = f.below(chars.len() + 1);
                chars.truncate(keep);
            }
            10 => {
                if chars.len() >= 2 {
                    let i = f.below(chars.len());
                    let j = f.below(chars.len());
                    chars.swap(i, j);
                }
            }
            _ => {
                let o: Vec<char> = other.chars().collect();
                let i = f.below(chars.len() + 1);
                let j = if f.one_in(2) {
                    i.min(o.len())
                } else {
                    f.below(o.len() + 1)
                };
                chars.truncate(i);
                chars.extend_from_slice(&o[j..]);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn pairing_code_parse_fuzz() {
    let name = "PairingCode::parse";
    let mut f = Fuzz::new(name);
    let words = all_words();
    let pool: Vec<String> = (0..256)
        .map(|_| {
            let s = format!("{}-{}-{}", mailbox(&mut f), f.pick(&words), f.pick(&words));
            assert_eq!(PairingCode::parse(&s).unwrap().reveal(), s);
            s
        })
        .collect();

    let mut stats = Stats::default();
    let mut forgiven = 0usize;
    let start = Instant::now();
    for _ in 0..INPUTS {
        let random = f.one_in(4);
        let input = if random {
            random_code(&mut f, &words)
        } else {
            let a = f.pick(&pool).clone();
            let b = f.pick(&pool).clone();
            mutate_code(&mut f, &a, &b, &words)
        };
        let ok = match PairingCode::parse(&input) {
            Ok(c) => {
                let text = c.reveal();
                assert_eq!(
                    PairingCode::parse(&text),
                    Ok(c.clone()),
                    "{name}: {input:?} parsed, but its canonical form {text:?} does not parse back to it"
                );
                assert_eq!(text.split('-').next(), Some(&*c.mailbox.to_string()));
                forgiven += usize::from(text != input);
                true
            }
            Err(_) => false,
        };
        stats.count(random, ok);
    }
    stats.elapsed = start.elapsed();
    stats.report(name);
    println!("{name}: {forgiven} accepted inputs differ from their canonical form (case, blanks, separators, number spelling)");
    stats.assert_reach(name, 100);
}

/// An unprotected keystore with all-zero secrets and the given key entries.
fn unprotected_file(entries: &[(KeyId, [u8; 32])]) -> Vec<u8> {
    let mut file = b"ATTUNEKS\x01\x00\x01".to_vec();
    file.extend_from_slice(&[0u8; 64]);
    file.extend_from_slice(&(entries.len() as u32).to_be_bytes());
    for (id, key) in entries {
        file.extend_from_slice(&id.encode());
        file.extend_from_slice(key);
    }
    file
}

/// Found by `open_keystore_fuzz`: the contents decoder accepts key entries in any
/// order and repeated ids (keeping the last), so one keyring has many encodings.
/// The encoder writes them sorted by id and unique; the decoder should insist.
#[test]
fn keystore_rejects_unsorted_or_duplicate_key_ids() {
    let sorted = unprotected_file(&[(KeyId::Epoch(0), [0; 32]), (KeyId::Epoch(1), [0; 32])]);
    assert!(open_keystore(&sorted, None).is_ok());
    let unsorted = unprotected_file(&[(KeyId::Epoch(1), [0; 32]), (KeyId::Epoch(0), [0; 32])]);
    let duplicate = unprotected_file(&[(KeyId::Epoch(0), [0; 32]), (KeyId::Epoch(0), [1; 32])]);
    for file in [unsorted, duplicate] {
        assert!(
            open_keystore(&file, None).is_err(),
            "accepted non-canonical keystore {}",
            hex::encode(&file)
        );
    }
}
