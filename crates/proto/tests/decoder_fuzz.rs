#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Decoder fuzzing: every attune-proto decoder is fed at least 100,000 random and
//! mutated inputs. None may panic, and whatever a decoder accepts must be the one
//! canonical encoding of the value it returns: `encode(decode(x)) == x`, byte for byte.
//!
//! Inputs are (a) random byte strings of length 0..=600 (half of them starting with
//! a short prefix of a valid encoding, to get past the version and tag bytes) and
//! (b) valid encodings of random values, mutated: bit flips, overwritten bytes,
//! truncation, extension, insertion, deletion, duplication, splices of two valid
//! encodings, and length fields set to boundary or huge values (0xFFFFFFFF ...).
//! The generator and the mutation engine are in `support/mutation.rs`, shared with
//! attune-crypto's decoder fuzzing.
//!
//! Deterministic: each test seeds a ChaCha20 generator from a base seed and its own
//! name, and prints both. Set `ATTUNE_FUZZ_SEED` (decimal or 0x-hex) to try another
//! base seed; run with `--nocapture` to see the seeds and per-decoder counts.

#[path = "support/mutation.rs"]
mod mutation;

use std::time::Instant;

use attune_proto::codec::{DecodeError, Reader};
use attune_proto::{
    DeviceId, DevicePublic, EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, KeyWrap, MemberId,
    PairingMessage, PairingPayload, RequestToSign, Role, RosterChange, RosterEvent, SealedAnswer,
    SignedRosterEvent, SpaceId,
};
use mutation::{drive, Fuzz, Mutations, INPUTS, POOL};

/// Length values a mutation writes into a length (or count) field.
const INTERESTING_U32: [u32; 24] = [
    0,
    1,
    2,
    15,
    16,
    17,
    47,
    48,
    49,
    63,
    64,
    65,
    128,
    255,
    256,
    65_536,
    65_537,
    262_145,
    (1 << 20) + 40,
    (1 << 20) + 41,
    0x7fff_ffff,
    0x8000_0000,
    0xffff_fffe,
    0xffff_ffff,
];

const MUTATIONS: Mutations = Mutations {
    length_values: &INTERESTING_U32,
    half_remaining: false,
    max_typical_len: usize::MAX,
};

/// Random inputs start with at most this many bytes of a valid encoding.
const PREFIX_MAX: usize = 8;

// ---------------------------------------------------------------------------
// The driver.
// ---------------------------------------------------------------------------

/// A valid encoding and the offsets of its length (and count) fields.
struct Seed {
    bytes: Vec<u8>,
    len_fields: Vec<usize>,
}

/// Feeds `INPUTS` random and mutated inputs to `decode_reencode`, which decodes
/// its input and, on success, returns the re-encoding of the decoded value. Every
/// accepted input must be its own re-encoding.
///
/// `min_mutated_ok_per_mille`: at least this share of the mutated inputs must still
/// decode, so the test is known to reach past the first checks.
fn run(
    name: &str,
    mut make_seed: impl FnMut(&mut Fuzz) -> Seed,
    decode_reencode: impl Fn(&[u8]) -> Option<Vec<u8>>,
    min_mutated_ok_per_mille: usize,
) -> mutation::Stats {
    let mut fuzz = Fuzz::new(name, &MUTATIONS);
    let seeds: Vec<Seed> = (0..POOL).map(|_| make_seed(&mut fuzz)).collect();
    for seed in &seeds {
        let back = decode_reencode(&seed.bytes);
        assert_eq!(
            back.as_deref(),
            Some(&seed.bytes[..]),
            "{name}: a valid encoding does not round-trip: {}",
            hex::encode(&seed.bytes)
        );
    }
    let pool: Vec<Vec<u8>> = seeds.iter().map(|s| s.bytes.clone()).collect();
    let len_fields: Vec<Vec<usize>> = seeds.iter().map(|s| s.len_fields.clone()).collect();

    let stats = drive(name, &mut fuzz, |f, random| {
        let input = if random {
            f.random_input(&pool, PREFIX_MAX)
        } else {
            let i = f.below(pool.len());
            f.mutated_input(&pool, i, &len_fields[i])
        };
        match decode_reencode(&input) {
            Some(re) => {
                assert!(
                    re == input,
                    "{name}: accepted a non-canonical encoding\n input:      {}\n re-encoded: {}",
                    hex::encode(&input),
                    hex::encode(&re)
                );
                true
            }
            None => false,
        }
    });
    stats.assert_reach(name, min_mutated_ok_per_mille);
    stats
}

// ---------------------------------------------------------------------------
// Random valid values.
// ---------------------------------------------------------------------------

fn key_id(f: &mut Fuzz) -> KeyId {
    let n = match f.below(3) {
        0 => f.below(4) as u32,
        1 => u32::MAX - f.below(2) as u32,
        _ => f.u32(),
    };
    match f.below(3) {
        0 => KeyId::Epoch(n),
        1 => KeyId::MemberPrivate(n),
        _ => KeyId::KeyWraps(n),
    }
}

fn header(f: &mut Fuzz) -> EnvelopeHeader {
    let seq = match f.below(4) {
        0 => 1,
        1 => 2,
        2 => u64::MAX,
        _ => f.u64().max(2),
    };
    let prev = if seq == 1 {
        Hash32::ZERO
    } else {
        let mut p = f.array::<32>();
        p[0] |= 1; // never all zeros
        Hash32(p)
    };
    EnvelopeHeader {
        space: SpaceId(f.array()),
        author: DeviceId(f.array()),
        seq,
        prev,
        // Mostly protocol 2 headers; version 1 ones (with their key id) still decode.
        legacy_key: if f.one_in(4) { Some(key_id(f)) } else { None },
        entry: EntryId(f.array()),
    }
}

fn envelope(f: &mut Fuzz) -> Envelope {
    let body_len = if f.one_in(16) {
        f.range(1, 4096)
    } else {
        f.range(1, 300)
    };
    Envelope {
        header: header(f),
        body: f.bytes(body_len),
        signature: f.array(),
    }
}

fn roster_event(f: &mut Fuzz) -> SignedRosterEvent {
    let seq = match f.below(3) {
        0 => 1,
        1 => f.range(2, 10) as u64,
        _ => f.u64().max(2),
    };
    let prev = if seq == 1 {
        Hash32::ZERO
    } else {
        let mut p = f.array::<32>();
        p[31] |= 0x80;
        Hash32(p)
    };
    let member = MemberId(f.array());
    let device = DevicePublic {
        sign: f.array(),
        kx: f.array(),
    };
    let change = match f.below(5) {
        0 => RosterChange::Create { member, device },
        1 => RosterChange::Join { member, device },
        2 => RosterChange::Link { member, device },
        3 => RosterChange::Recovery { member, device },
        _ => RosterChange::Revoke {
            device: DeviceId(f.array()),
            last_seq: f.u64(),
        },
    };
    SignedRosterEvent {
        event: RosterEvent {
            space: SpaceId(f.array()),
            seq,
            prev,
            signer: DeviceId(f.array()),
            legacy_at: if f.one_in(4) {
                Some(f.u64() as i64)
            } else {
                None
            },
            change,
        },
        signature: f.array(),
    }
}

/// A random UTF-8 string of at most `max_bytes` bytes, with multi-byte characters.
fn text(f: &mut Fuzz, max_bytes: usize) -> String {
    const CHARS: [char; 16] = [
        'a', 'Z', '0', '/', '?', '=', '&', '%', '-', ' ', '\0', '\u{7f}', 'é', 'ß', '日', '😀',
    ];
    let target = f.len_up_to(max_bytes);
    let mut s = String::new();
    loop {
        let c = *f.pick(&CHARS);
        if s.len() + c.len_utf8() > target {
            return s;
        }
        s.push(c);
    }
}

fn request(f: &mut Fuzz) -> (RequestToSign, Vec<usize>) {
    const METHODS: [&str; 6] = ["GET", "POST", "PUT", "DELETE", "PATCH", ""];
    let method = if f.one_in(4) {
        text(f, attune_proto::request::MAX_METHOD_LEN)
    } else {
        (*f.pick(&METHODS)).to_string()
    };
    let path = match f.below(3) {
        0 => format!("/v1/spaces/{}/envelopes", hex::encode(f.array::<16>())),
        1 => text(f, 64),
        _ => text(f, attune_proto::request::MAX_PATH_LEN.min(300)),
    };
    let query = match f.below(3) {
        0 => String::new(),
        1 => format!("after={}&limit=100", f.u32()),
        _ => text(f, 200),
    };
    let len_fields = vec![1, 5 + method.len(), 9 + method.len() + path.len()];
    let req = RequestToSign {
        method,
        path,
        query,
        timestamp_ms: f.u64() as i64,
        nonce: f.array(),
        body_hash: Hash32(f.array()),
        device: DeviceId(f.array()),
    };
    (req, len_fields)
}

fn pairing_message(f: &mut Fuzz) -> (PairingMessage, Vec<usize>) {
    let from = if f.one_in(2) {
        Role::Inviter
    } else {
        Role::Joiner
    };
    let (payload, len_fields) = match f.below(3) {
        0 => {
            let n = if f.one_in(2) { 33 } else { f.range(1, 64) };
            (PairingPayload::Pake(f.bytes(n)), vec![3])
        }
        1 => (PairingPayload::Confirm(f.array()), vec![]),
        _ => {
            let n = if f.one_in(8) {
                f.range(16, 4096)
            } else {
                f.range(16, 300)
            };
            (
                PairingPayload::Sealed {
                    nonce: f.array(),
                    ciphertext: f.bytes(n),
                },
                vec![3 + 24],
            )
        }
    };
    (PairingMessage { from, payload }, len_fields)
}

fn sealed_answer(f: &mut Fuzz) -> SealedAnswer {
    let n = if f.one_in(16) {
        f.range(16, 4096)
    } else {
        f.range(16, 400)
    };
    SealedAnswer {
        commitment: f.array(),
        nonce: f.array(),
        ciphertext: f.bytes(n),
    }
}

const KEY_WRAP_LEN: usize = 1 + 32 + KeyId::ENCODED_LEN + 32 + 4 + 48;
const KEY_WRAP_CT_LEN_AT: usize = 1 + 32 + KeyId::ENCODED_LEN + 32;

fn key_wrap(f: &mut Fuzz) -> KeyWrap {
    KeyWrap {
        recipient: DeviceId(f.array()),
        key: key_id(f),
        enc: f.array(),
        ciphertext: f.bytes(48),
    }
}

// ---------------------------------------------------------------------------
// One test per decoder.
// ---------------------------------------------------------------------------

#[test]
fn key_id_decode() {
    run(
        "KeyId::decode",
        |f| Seed {
            bytes: key_id(f).encode().to_vec(),
            len_fields: vec![1],
        },
        |b| KeyId::decode(b).ok().map(|v| v.encode().to_vec()),
        100,
    );
}

#[test]
fn envelope_header_decode() {
    run(
        "EnvelopeHeader::decode",
        |f| Seed {
            bytes: header(f).encode(),
            len_fields: vec![],
        },
        |b| EnvelopeHeader::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn envelope_decode() {
    run(
        "Envelope::decode",
        |f| {
            let env = envelope(f);
            Seed {
                len_fields: vec![env.header.encode().len()],
                bytes: env.encode(),
            }
        },
        |b| Envelope::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn signed_roster_event_decode() {
    run(
        "SignedRosterEvent::decode",
        |f| Seed {
            bytes: roster_event(f).encode(),
            len_fields: vec![],
        },
        |b| SignedRosterEvent::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn request_to_sign_decode() {
    run(
        "RequestToSign::decode",
        |f| {
            let (req, len_fields) = request(f);
            Seed {
                bytes: req.encode(),
                len_fields,
            }
        },
        |b| RequestToSign::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn pairing_message_decode() {
    run(
        "PairingMessage::decode",
        |f| {
            let (msg, len_fields) = pairing_message(f);
            Seed {
                bytes: msg.encode(),
                len_fields,
            }
        },
        |b| PairingMessage::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn sealed_answer_decode() {
    run(
        "SealedAnswer::decode",
        |f| Seed {
            bytes: sealed_answer(f).encode(),
            len_fields: vec![1 + 32 + 24],
        },
        |b| SealedAnswer::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn key_wrap_decode() {
    run(
        "KeyWrap::decode",
        |f| Seed {
            bytes: key_wrap(f).encode(),
            len_fields: vec![KEY_WRAP_CT_LEN_AT],
        },
        |b| KeyWrap::decode(b).ok().map(|v| v.encode()),
        100,
    );
}

#[test]
fn key_wrap_decode_list() {
    run(
        "KeyWrap::decode_list",
        |f| {
            let count = match f.below(8) {
                0 => attune_proto::answer::MAX_WRAPS,
                1..=3 => 1,
                _ => f.range(2, 6),
            };
            let wraps: Vec<KeyWrap> = (0..count).map(|_| key_wrap(f)).collect();
            let mut len_fields = vec![1];
            len_fields.extend((0..count).map(|i| 5 + i * KEY_WRAP_LEN + KEY_WRAP_CT_LEN_AT));
            Seed {
                bytes: KeyWrap::encode_list(&wraps),
                len_fields,
            }
        },
        |b| {
            KeyWrap::decode_list(b)
                .ok()
                .map(|v| KeyWrap::encode_list(&v))
        },
        100,
    );
}

// ---------------------------------------------------------------------------
// The Reader itself: random programs of reads over random bytes.
// ---------------------------------------------------------------------------

#[test]
fn codec_reader() {
    let mut f = Fuzz::new("codec::Reader", &MUTATIONS);
    let start = Instant::now();
    let (mut reads, mut reads_ok) = (0usize, 0usize);
    for _ in 0..INPUTS {
        let len = if f.one_in(2) {
            f.below(24)
        } else {
            f.below(600)
        };
        let mut input = f.bytes(len);
        // Plant plausible lengths, so `var` reads succeed now and then.
        for _ in 0..f.below(3) {
            if input.len() >= 4 {
                let at = f.below(input.len() - 3);
                let v = if f.one_in(2) {
                    f.below(input.len() + 2) as u32
                } else {
                    *f.pick(&INTERESTING_U32)
                };
                input[at..at + 4].copy_from_slice(&v.to_be_bytes());
            }
        }
        let mut r = Reader::new(&input);
        for _ in 0..f.range(1, 12) {
            let before = r.remaining();
            let pos = input.len() - before;
            reads += 1;
            // Each read returns the bytes it consumed (or an error).
            let got: Result<Vec<u8>, DecodeError> = match f.below(10) {
                0 => r.u8("u8").map(|v| vec![v]),
                1 => r.u32("u32").map(|v| v.to_be_bytes().to_vec()),
                2 => r.u64("u64").map(|v| v.to_be_bytes().to_vec()),
                3 => r.i64("i64").map(|v| v.to_be_bytes().to_vec()),
                4 => r.array::<3>("array").map(|v| v.to_vec()),
                5 => r.array::<32>("array").map(|v| v.to_vec()),
                6 | 7 => {
                    let min = f.below(40);
                    let max = if f.one_in(8) {
                        usize::MAX
                    } else {
                        min + f.below(600)
                    };
                    r.var("var", min, max).map(|v| {
                        assert!((min..=max).contains(&v.len()));
                        let mut out = (v.len() as u32).to_be_bytes().to_vec();
                        out.extend_from_slice(v);
                        out
                    })
                }
                8 => {
                    let min = f.below(40);
                    let max = min + f.below(600);
                    r.rest("rest", min, max).map(|v| {
                        assert!((min..=max).contains(&v.len()));
                        v.to_vec()
                    })
                }
                _ => {
                    let done = Reader::new(&input[pos..]).finish("finish");
                    assert_eq!(done.is_ok(), before == 0);
                    done.map(|()| Vec::new())
                }
            };
            let after = r.remaining();
            assert!(after <= before, "the reader went backwards");
            if let Ok(bytes) = got {
                reads_ok += 1;
                assert_eq!(before - after, bytes.len(), "consumed != returned");
                assert_eq!(&input[pos..pos + bytes.len()], &bytes[..]);
            }
        }
        let left = r.remaining();
        assert_eq!(r.finish("end").is_ok(), left == 0);
    }
    println!(
        "codec::Reader: {INPUTS} inputs, {reads} reads, {reads_ok} OK, {:.2?}",
        start.elapsed()
    );
    assert!(reads_ok * 10 >= reads, "too few reads succeed");
    assert!(reads_ok < reads);
}

// ---------------------------------------------------------------------------
// Ids: `from_slice` and `from_hex` on each id type.
// ---------------------------------------------------------------------------

/// Characters for random and mutated hex strings: hex digits of both cases, other
/// ASCII, and multi-byte characters (including a full-width digit).
const HEX_ALPHABET: [char; 32] = [
    '0', '1', '2', '7', '9', 'a', 'b', 'c', 'e', 'f', 'A', 'B', 'C', 'E', 'F', '5', 'g', 'G', 'x',
    'z', ' ', '-', '\n', '\0', '+', '/', 'é', '日', '😀', '\u{ff10}', '\u{300}', '\u{7f}',
];

fn random_hex_string(f: &mut Fuzz, id_len: usize) -> String {
    let n = match f.below(3) {
        0 => (2 * id_len + f.below(5)).saturating_sub(2),
        1 => f.below(8),
        _ => f.below(200),
    };
    f.picks(n, &HEX_ALPHABET).into_iter().collect()
}

fn mutate_hex_string(f: &mut Fuzz, s: &str, other: &str) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for _ in 0..f.range(1, 3) {
        match f.below(8) {
            0 | 1 => f.replace_one(&mut chars, &HEX_ALPHABET),
            2 => {
                if !chars.is_empty() {
                    let i = f.below(chars.len());
                    chars[i] = if chars[i].is_ascii_lowercase() {
                        chars[i].to_ascii_uppercase()
                    } else {
                        chars[i].to_ascii_lowercase()
                    };
                }
            }
            3 => f.insert_one(&mut chars, &HEX_ALPHABET),
            4 => f.remove_one(&mut chars),
            5 => f.keep_prefix(&mut chars),
            6 => {
                let extra = f.range(1, 4);
                chars.extend(f.picks(extra, &HEX_ALPHABET));
            }
            _ => {
                let other: Vec<char> = other.chars().collect();
                f.splice(&mut chars, &other);
            }
        }
    }
    chars.into_iter().collect()
}

/// `from_hex` is documented to accept upper-case (and, as it turns out, mixed-case)
/// hex, so its input is canonical only up to ASCII case: `to_hex` must give back
/// exactly the lower-cased input, and exactly the input whenever it has no
/// upper-case letter.
fn fuzz_from_hex<T>(
    name: &str,
    id_len: usize,
    from_hex: impl Fn(&str) -> Result<T, DecodeError>,
    to_hex: impl Fn(&T) -> String,
) {
    let mut f = Fuzz::new(name, &MUTATIONS);
    let pool: Vec<String> = (0..POOL).map(|_| hex::encode(f.bytes(id_len))).collect();
    for s in &pool {
        assert_eq!(from_hex(s).map(|v| to_hex(&v)).as_deref(), Ok(&s[..]));
    }
    let mut ok_upper = 0usize;
    let stats = drive(name, &mut f, |f, random| {
        let input = if random {
            random_hex_string(f, id_len)
        } else {
            let a = f.pick(&pool);
            let b = f.pick(&pool);
            mutate_hex_string(f, a, b)
        };
        match from_hex(&input) {
            Ok(v) => {
                let back = to_hex(&v);
                assert_eq!(
                    back,
                    input.to_ascii_lowercase(),
                    "{name}: accepted {input:?} but it is not the hex of the decoded id"
                );
                if input.bytes().any(|b| b.is_ascii_uppercase()) {
                    ok_upper += 1;
                } else {
                    assert_eq!(back, input, "{name}: non-canonical hex {input:?}");
                }
                true
            }
            Err(_) => false,
        }
    });
    println!("{name}: {ok_upper} accepted inputs had upper-case hex digits");
    stats.assert_reach(name, 100);
}

macro_rules! id_tests {
    ($($hex_test:ident, $slice_test:ident: $ty:ident;)*) => {$(
        #[test]
        fn $hex_test() {
            fuzz_from_hex(
                concat!(stringify!($ty), "::from_hex"),
                $ty::LEN,
                $ty::from_hex,
                $ty::to_hex,
            );
        }

        #[test]
        fn $slice_test() {
            run(
                concat!(stringify!($ty), "::from_slice"),
                |f| Seed { bytes: f.bytes($ty::LEN), len_fields: vec![] },
                |b| $ty::from_slice(b).ok().map(|v| v.as_bytes().to_vec()),
                100,
            );
        }
    )*};
}

id_tests! {
    space_id_from_hex, space_id_from_slice: SpaceId;
    member_id_from_hex, member_id_from_slice: MemberId;
    device_id_from_hex, device_id_from_slice: DeviceId;
    entry_id_from_hex, entry_id_from_slice: EntryId;
    hash32_from_hex, hash32_from_slice: Hash32;
}
