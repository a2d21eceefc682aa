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
//!
//! The generator and the mutation engine are attune-proto's, shared by path.

#[path = "../../proto/tests/support/mutation.rs"]
mod mutation;

use std::collections::BTreeSet;

use attune_crypto::padding::{self, Buckets};
use attune_crypto::{
    keystore_is_locked, open_keystore, seal_keystore, DeviceIdentity, KdfParams, Keyring,
    KeystoreContents, KeystoreError, PairingCode, Protection, SymmetricKey,
};
use attune_proto::KeyId;
use mutation::{drive, Fuzz, Mutations, POOL};

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

/// Padded plaintexts come in buckets, so a length field is also set to about half
/// the remaining space; random inputs stay at most 4 KiB long.
const MUTATIONS: Mutations = Mutations {
    length_values: &INTERESTING_U32,
    half_remaining: true,
    max_typical_len: 4096,
};

// ---------------------------------------------------------------------------
// unpad
// ---------------------------------------------------------------------------

/// Resizes to another small bucket (of either ladder), zero-filling or cutting.
fn rebucket(f: &mut Fuzz, v: &mut Vec<u8>) {
    let bucket = *f.pick(&[256usize, 512, 1024, 2048, 8192]);
    v.resize(bucket, 0);
}

#[test]
fn unpad_fuzz_fine() {
    unpad_fuzz(Buckets::Fine, "padding::unpad (fine)");
}

#[test]
fn unpad_fuzz_envelope() {
    unpad_fuzz(Buckets::Envelope, "padding::unpad (envelope)");
}

fn unpad_fuzz(ladder: Buckets, name: &'static str) {
    let pad = |p: &[u8]| padding::pad(ladder, p);
    let unpad = |p: &[u8]| padding::unpad(ladder, p);
    let mut f = Fuzz::new(name, &MUTATIONS);
    let mut pool = Vec::new();
    // Mostly small buckets; a few of the large ones (unpad is unoptimised here).
    for len in [
        0usize, 1, 252, 253, 508, 509, 1020, 1021, 2044, 65_532, 65_533,
    ] {
        pool.push(pad(&f.bytes(len)).unwrap().to_vec());
    }
    while pool.len() < POOL {
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

    let stats = drive(name, &mut f, |f, random| {
        let input = if random {
            let mut v = f.random_input(&pool, 4);
            if f.one_in(4) {
                rebucket(f, &mut v);
            }
            v
        } else {
            let i = f.below(pool.len());
            let mut v = f.mutated_input(&pool, i, &[0]);
            if f.one_in(8) {
                rebucket(f, &mut v);
            }
            v
        };
        match unpad(&input) {
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
        }
    });
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
    let mut f = Fuzz::new(name, &MUTATIONS);

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

    let (mut with_passphrase, mut locked_inputs, mut locked_ok) = (0usize, 0usize, 0usize);
    let stats = drive(name, &mut f, |f, random| {
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
        match opened {
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
        }
    });
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
        return f.picks(n, &CODE_CHARS).into_iter().collect();
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
                s.extend(f.picks(n, &CODE_CHARS));
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
            0 | 1 => f.replace_one(&mut chars, &CODE_CHARS),
            2 => f.insert_one(&mut chars, &CODE_CHARS),
            3 => f.remove_one(&mut chars),
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
            9 => f.keep_prefix(&mut chars),
            10 => f.swap_two(&mut chars),
            _ => {
                let other: Vec<char> = other.chars().collect();
                f.splice(&mut chars, &other);
            }
        }
    }
    chars.into_iter().collect()
}

#[test]
fn pairing_code_parse_fuzz() {
    let name = "PairingCode::parse";
    let mut f = Fuzz::new(name, &MUTATIONS);
    let words = all_words();
    let pool: Vec<String> = (0..POOL)
        .map(|_| {
            let s = format!("{}-{}-{}", mailbox(&mut f), f.pick(&words), f.pick(&words));
            assert_eq!(PairingCode::parse(&s).unwrap().reveal(), s);
            s
        })
        .collect();

    let mut forgiven = 0usize;
    let stats = drive(name, &mut f, |f, random| {
        let input = if random {
            random_code(f, &words)
        } else {
            let a = f.pick(&pool);
            let b = f.pick(&pool);
            mutate_code(f, a, b, &words)
        };
        match PairingCode::parse(&input) {
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
        }
    });
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
