//! Envelope opening. The harness seals a real envelope from fuzzer-chosen header
//! fields and plaintext, with a fixed couple's keys, then applies fuzzer-chosen byte
//! edits to its encoding and opens it as a given reader.
//!
//! Checks: nothing panics; an unedited envelope opens exactly when the rules say
//! it should (space, author in the roster and not revoked before that sequence
//! number, a key the reader holds, another member's private entries closed), with
//! the expected error otherwise; opened content equals what was sealed; and any
//! edit that changes a byte makes decoding or opening fail. Raw fuzzer bytes never
//! open (they would be a forgery).
#![no_main]

use std::sync::OnceLock;

use arbitrary::Arbitrary;
use attune_crypto::{open_envelope, seal_envelope, DeviceIdentity, Keyring, OpenError};
use attune_crypto::{SealError, SymmetricKey};
use attune_fuzz::device;
use attune_proto::{
    EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, Roster, RosterChange, RosterEvent,
    SignedRosterEvent, SpaceId,
};
use libfuzzer_sys::fuzz_target;

const SPACE: SpaceId = SpaceId([0x5A; 16]);
const MEMBER_A: MemberId = MemberId([0x0A; 16]);
const MEMBER_B: MemberId = MemberId([0x0B; 16]);
/// Device 2 (member A's second device) is revoked after its envelope 5.
const REVOKED_AFTER: u64 = 5;

struct Couple {
    /// 0, 1: members A and B; 2: A's revoked second device; 3: an outsider.
    devices: Vec<DeviceIdentity>,
    roster: Roster,
    epoch0: SymmetricKey,
    /// The keyrings of a reader of member A and one of member B.
    readers: [Keyring; 2],
}

fn couple() -> &'static Couple {
    static COUPLE: OnceLock<Couple> = OnceLock::new();
    COUPLE.get_or_init(|| {
        let devices: Vec<DeviceIdentity> = (0..4).map(device).collect();
        let (a, b, c) = (&devices[0], &devices[1], &devices[2]);
        let mut events: Vec<SignedRosterEvent> = Vec::new();
        let changes = [
            RosterChange::Create {
                member: MEMBER_A,
                device: a.public(),
            },
            RosterChange::Join {
                member: MEMBER_B,
                device: b.public(),
            },
            RosterChange::Link {
                member: MEMBER_A,
                device: c.public(),
            },
            RosterChange::Revoke {
                device: c.id(),
                last_seq: REVOKED_AFTER,
            },
        ];
        for (i, change) in changes.into_iter().enumerate() {
            let prev = events.last().map_or(Hash32::ZERO, SignedRosterEvent::hash);
            events.push(a.sign_roster_event(RosterEvent {
                space: SPACE,
                seq: i as u64 + 1,
                prev,
                signer: a.id(),
                legacy_at: None,
                change,
            }));
        }
        let Ok(roster) = Roster::verify(SPACE, &events) else {
            panic!("the fixed roster must verify");
        };
        let epoch0 = SymmetricKey::from_bytes([0x40; 32]);
        let readers = [(MEMBER_A, 0x41), (MEMBER_B, 0x42)].map(|(member, private)| {
            let mut keys = Keyring::new();
            keys.set_member(member);
            keys.insert(KeyId::Epoch(0), epoch0.clone());
            keys.insert(
                KeyId::MemberPrivate(0),
                SymmetricKey::from_bytes([private; 32]),
            );
            keys
        });
        Couple {
            devices,
            roster,
            epoch0,
            readers,
        }
    })
}

#[derive(Debug, Arbitrary)]
enum Edit {
    Flip { at: u16, bit: u8 },
    Set { at: u16, byte: u8 },
    Truncate { len: u16 },
    Insert { at: u16, bytes: Vec<u8> },
    Remove { at: u16, len: u8 },
}

#[derive(Debug, Arbitrary)]
enum Input {
    /// Seal, edit, open.
    Sealed {
        author: u8,
        reader: bool,
        foreign_space: bool,
        seq: u64,
        prev: [u8; 32],
        key: u8,
        key_n: u8,
        entry: [u8; 16],
        plaintext: Vec<u8>,
        edits: Vec<Edit>,
    },
    /// Bytes from nowhere.
    Raw { reader: bool, bytes: Vec<u8> },
}

fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
    let at = |i: u16, len: usize| usize::from(i) % (len + 1);
    match *edit {
        Edit::Flip { at: i, bit } if !bytes.is_empty() => {
            let i = usize::from(i) % bytes.len();
            bytes[i] ^= 1 << (bit % 8);
        }
        Edit::Set { at: i, byte } if !bytes.is_empty() => {
            let i = usize::from(i) % bytes.len();
            bytes[i] = byte;
        }
        Edit::Truncate { len } => bytes.truncate(usize::from(len)),
        Edit::Insert {
            at: i,
            bytes: ref new,
        } => {
            let i = at(i, bytes.len());
            bytes.splice(i..i, new.iter().copied());
        }
        Edit::Remove { at: i, len } => {
            let i = at(i, bytes.len());
            let end = (i + usize::from(len)).min(bytes.len());
            bytes.drain(i..end);
        }
        _ => {}
    }
}

fn open_bytes(bytes: &[u8], keys: &Keyring) -> Result<Vec<u8>, OpenError> {
    let env = Envelope::decode(bytes)?;
    open_envelope(&env, &couple().roster, keys)
        .map(|p| p.item().map(<[u8]>::to_vec).unwrap_or_default())
}

/// What opening the unedited envelope must give, by the rules.
fn expected(
    author: usize,
    reader: usize,
    foreign: bool,
    seq: u64,
    key: KeyId,
) -> Option<&'static str> {
    let member_of = [Some(0), Some(1), Some(0), None];
    if foreign {
        return Some("ForeignSpace");
    }
    let Some(author_member) = member_of[author] else {
        return Some("UnknownAuthor");
    };
    if author == 2 && seq > REVOKED_AFTER {
        return Some("UnknownAuthor");
    }
    match key {
        KeyId::Epoch(0) => None,
        KeyId::MemberPrivate(0) if author_member == reader => None,
        _ => Some("MissingKey"),
    }
}

fn class(e: &OpenError) -> &'static str {
    match e {
        OpenError::Malformed(_) => "Malformed",
        OpenError::ForeignSpace => "ForeignSpace",
        OpenError::UnknownAuthor => "UnknownAuthor",
        OpenError::BadSignature(_) => "BadSignature",
        OpenError::MissingKey => "MissingKey",
        OpenError::UnknownContent => "UnknownContent",
        OpenError::Decrypt => "Decrypt",
        OpenError::Padding(_) => "Padding",
    }
}

fuzz_target!(|input: Input| {
    let c = couple();
    match input {
        Input::Raw { reader, bytes } => {
            let opened = open_bytes(&bytes, &c.readers[usize::from(reader)]);
            assert!(opened.is_err(), "bytes that nobody signed opened");
        }
        Input::Sealed {
            author,
            reader,
            foreign_space,
            seq,
            prev,
            key,
            key_n,
            entry,
            plaintext,
            edits,
        } => {
            let author = usize::from(author % 4);
            let reader = usize::from(reader);
            let key = match key % 3 {
                0 => KeyId::Epoch(u32::from(key_n % 2)),
                1 => KeyId::MemberPrivate(u32::from(key_n % 2)),
                _ => KeyId::KeyWraps(u32::from(key_n)),
            };
            let header = EnvelopeHeader {
                space: if foreign_space {
                    SpaceId([0x5B; 16])
                } else {
                    SPACE
                },
                author: c.devices[author].id(),
                seq,
                prev: Hash32(prev),
                legacy_key: None,
                entry: EntryId(entry),
            };
            // The author seals with the key it names (its own private key, for
            // private entries), as a real client would.
            let private_of_author = match author {
                1 => SymmetricKey::from_bytes([0x42; 32]),
                _ => SymmetricKey::from_bytes([0x41; 32]),
            };
            let seal_key = if matches!(key, KeyId::MemberPrivate(_)) {
                &private_of_author
            } else {
                &c.epoch0
            };
            let chain_ok = seq >= 1 && (seq == 1) == (prev == [0; 32]);
            let env = match seal_envelope(&c.devices[author], header, key, seal_key, &plaintext) {
                Ok(env) => env,
                Err(SealError::NotSealable) if matches!(key, KeyId::KeyWraps(_)) => return,
                Err(SealError::InvalidHeader(_)) if !chain_ok => return,
                Err(SealError::Padding(_)) => return,
                Err(e) => panic!("sealing failed unexpectedly: {e}"),
            };
            assert!(chain_ok, "sealed a header that breaks the chain rules");
            let genuine = env.encode();
            let keys = &c.readers[reader];
            match (
                open_bytes(&genuine, keys),
                expected(author, reader, foreign_space, seq, key),
            ) {
                (Ok(p), None) => assert!(
                    p == plaintext,
                    "opened content differs from what was sealed"
                ),
                (Ok(_), Some(want)) => panic!("opened, but the rules say {want}"),
                (Err(e), None) => panic!("a genuine envelope did not open: {}", class(&e)),
                (Err(e), Some(want)) => assert_eq!(class(&e), want, "wrong rejection"),
            }
            let mut edited = genuine.clone();
            for edit in &edits {
                apply(&mut edited, edit);
            }
            if edited != genuine {
                assert!(
                    open_bytes(&edited, keys).is_err(),
                    "an edited envelope opened"
                );
            }
        }
    }
});
