//! The test vectors of PROTOCOL.md, re-derived from fixed keys and nonces.
//!
//! `compare_with_protocol_md` fails if any vector in the document differs from what
//! the code computes, or if one is missing on either side. To regenerate the block
//! after an intended format change:
//! `cargo test -p attune-crypto print_vectors -- --ignored --nocapture`.

use attune_proto::{
    request, AnswerContext, EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId,
    PairingMessage, RequestToSign, Role, RosterChange, RosterEvent, SpaceId,
};
use rand_chacha::rand_core::SeedableRng;
use rand_chacha::ChaCha20Rng;

use crate::answer::{answer_commitment, seal_answer_with};
use crate::envelope::seal_with_nonce;
use crate::identity::DeviceIdentity;
use crate::keys::{derive_entry_key_v2, derive_import_id, Keyring};
use crate::keystore::{seal_keystore_with, KdfParams, KeystoreContents, Protection};
use crate::padding::{pad, Buckets};
use crate::pairing::{Pairing, PairingCode};
use crate::safety::safety_number;
use crate::secret::SymmetricKey;
use crate::wrap::wrap_key_with_rng;

const PROTOCOL_MD: &str = include_str!("../../../PROTOCOL.md");
const RECOVERY_CODE: &str = "0123-4567-89AB-CDEF-GHJKM-NPQRS";

fn hex(b: impl AsRef<[u8]>) -> String {
    hex::encode(b)
}

fn msg_bytes(m: &PairingMessage) -> String {
    hex(m.encode())
}

/// Every vector, in the order PROTOCOL.md lists them.
fn compute() -> Vec<(&'static str, String)> {
    let mut v: Vec<(&'static str, String)> = Vec::new();
    let a = DeviceIdentity::from_secret_bytes(&[0x01; 32], &[0x02; 32]);
    let b = DeviceIdentity::from_secret_bytes(&[0x03; 32], &[0x04; 32]);
    let space = SpaceId([0x10; 16]);
    let entry = EntryId([0x30; 16]);
    let epoch_key = SymmetricKey::from_bytes([0x40; 32]);

    v.push(("device_a.sign_pk", hex(a.public().sign)));
    v.push(("device_a.kx_pk", hex(a.public().kx)));
    v.push(("device_a.id", a.id().to_hex()));
    v.push(("device_b.sign_pk", hex(b.public().sign)));
    v.push(("device_b.kx_pk", hex(b.public().kx)));
    v.push(("device_b.id", b.id().to_hex()));

    let (entry_key, commitment) = derive_entry_key_v2(&epoch_key, &space, &KeyId::Epoch(0), &entry);
    v.push(("entry_key", hex(entry_key.expose())));
    v.push(("entry_commitment", hex(commitment)));
    let mut ring = Keyring::new();
    ring.insert(KeyId::Epoch(0), epoch_key.clone());
    ring.insert(
        KeyId::MemberPrivate(0),
        SymmetricKey::from_bytes([0x41; 32]),
    );
    match crate::held::exchange_tag(&ring, &space, &EntryId([0x31; 16])) {
        Ok(tag) => v.push(("exchange_tag", hex(tag))),
        Err(e) => v.push(("exchange_tag", format!("error: {e}"))),
    }
    match crate::held::own_answer_key(&ring, &space, 0, &entry) {
        Ok(k) => v.push(("own_answer_key", hex(k.expose()))),
        Err(e) => v.push(("own_answer_key", format!("error: {e}"))),
    }
    let member_key = SymmetricKey::from_bytes([0x41; 32]);
    let import_id = derive_import_id(&member_key, &space, &a.id(), b"hello");
    v.push(("import_id", import_id.to_hex()));
    let padded = pad(Buckets::Fine, b"hello")
        .map(|p| hex(&*p))
        .unwrap_or_else(|e| format!("error: {e}"));
    v.push(("padded_hello", padded));

    let header = EnvelopeHeader {
        space,
        author: a.id(),
        seq: 1,
        prev: Hash32::ZERO,
        legacy_key: None,
        entry,
    };
    v.push(("envelope.header", hex(header.encode())));
    match seal_with_nonce(
        &a,
        header,
        (KeyId::Epoch(0), &epoch_key),
        1,
        b"hello",
        [0x50; 24],
    ) {
        Ok(env) => {
            v.push(("envelope.full", hex(env.encode())));
            v.push(("envelope.hash", env.hash().to_hex()));
        }
        Err(e) => v.push(("envelope.full", format!("error: {e}"))),
    }

    let create = a.sign_roster_event(RosterEvent {
        space,
        seq: 1,
        prev: Hash32::ZERO,
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Create {
            member: MemberId([0x20; 16]),
            device: a.public(),
        },
    });
    v.push(("roster.create", hex(create.encode())));
    v.push(("roster.create.hash", create.hash().to_hex()));
    let join = a.sign_roster_event(RosterEvent {
        space,
        seq: 2,
        prev: create.hash(),
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Join {
            member: MemberId([0x21; 16]),
            device: b.public(),
        },
    });
    v.push(("roster.join", hex(join.encode())));
    // Device C (seeds 05, 06): A links it to member 20, then authorises it as
    // a recovery key would be (a second device id may not repeat, so the
    // recovery vector is C's own event on a roster without the link).
    let c = DeviceIdentity::from_secret_bytes(&[0x05; 32], &[0x06; 32]);
    let link = a.sign_roster_event(RosterEvent {
        space,
        seq: 3,
        prev: join.hash(),
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Link {
            member: MemberId([0x20; 16]),
            device: c.public(),
        },
    });
    v.push(("roster.link", hex(link.encode())));
    let recovery_event = a.sign_roster_event(RosterEvent {
        space,
        seq: 3,
        prev: join.hash(),
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Recovery {
            member: MemberId([0x20; 16]),
            device: c.public(),
        },
    });
    v.push(("roster.recovery", hex(recovery_event.encode())));
    let revoke = a.sign_roster_event(RosterEvent {
        space,
        seq: 4,
        prev: recovery_event.hash(),
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Revoke {
            device: c.id(),
            last_seq: 0,
        },
    });
    v.push(("roster.revoke", hex(revoke.encode())));

    let req = RequestToSign {
        method: "POST".into(),
        path: "/v1/spaces/10101010101010101010101010101010/envelopes".into(),
        query: String::new(),
        timestamp_ms: 1_767_225_600_000,
        nonce: [0x55; 16],
        body_hash: request::body_hash(b"{}"),
        device: a.id(),
    };
    v.push(("request.string", hex(req.encode())));
    v.push(("request.signature", hex(a.sign_request(&req))));

    let ctx = AnswerContext {
        space,
        exercise: EntryId([0x31; 16]),
        author: a.id(),
    };
    let answer_key = SymmetricKey::from_bytes([0x60; 32]);
    v.push(("answer.context", hex(ctx.encode())));
    v.push((
        "answer.commitment",
        hex(answer_commitment(&ctx, &answer_key)),
    ));
    match seal_answer_with(&ctx, b"7", &answer_key, [0x61; 24]) {
        Ok(sealed) => v.push(("answer.sealed", hex(sealed.encode()))),
        Err(e) => v.push(("answer.sealed", format!("error: {e}"))),
    }

    v.push((
        "safety_number",
        safety_number(&a.public().sign, &b.public().sign),
    ));

    let mut rng = ChaCha20Rng::from_seed([0x70; 32]);
    match wrap_key_with_rng(&space, &b.public(), KeyId::Epoch(0), &epoch_key, &mut rng) {
        Ok(wrap) => v.push(("key_wrap", hex(wrap.encode()))),
        Err(e) => v.push(("key_wrap", format!("error: {e}"))),
    }

    let mut keys = Keyring::new();
    keys.insert(KeyId::Epoch(0), epoch_key.clone());
    let contents = KeystoreContents {
        identity: a.clone(),
        keys,
    };
    let locked = seal_keystore_with(
        &contents,
        Protection::Passphrase(b"attune", KdfParams::INSECURE_FOR_TESTS),
        [0x80; 16],
        [0x81; 24],
    );
    v.push((
        "keystore.locked",
        locked.map(hex).unwrap_or_else(|e| format!("error: {e}")),
    ));

    match crate::recovery::RecoveryCode::parse(RECOVERY_CODE) {
        Ok(code) => {
            v.push(("recovery.lookup", code.lookup().to_hex()));
            let mut keys = Keyring::new();
            keys.insert(KeyId::Epoch(0), epoch_key.clone());
            keys.insert(
                KeyId::MemberPrivate(0),
                SymmetricKey::from_bytes([0x41; 32]),
            );
            let contents = crate::recovery::RecoveryContents {
                space,
                member: MemberId([0x20; 16]),
                partner_name: "Sam".into(),
                keystore: KeystoreContents {
                    identity: DeviceIdentity::from_secret_bytes(&[0x05; 32], &[0x06; 32]),
                    keys,
                },
            };
            let sealed = crate::recovery::seal_recovery_with(
                &code,
                &contents,
                KdfParams::INSECURE_FOR_TESTS,
                [0x82; 16],
                [0x83; 24],
            );
            v.push((
                "recovery.bundle",
                sealed.map(hex).unwrap_or_else(|e| format!("error: {e}")),
            ));
        }
        Err(e) => v.push(("recovery.lookup", format!("error: {e}"))),
    }

    match PairingCode::parse("7-otter-maple") {
        Ok(code) => {
            let (inv, pake_i) =
                Pairing::start_with_rng(Role::Inviter, &code, ChaCha20Rng::from_seed([0x90; 32]));
            let (join, pake_j) =
                Pairing::start_with_rng(Role::Joiner, &code, ChaCha20Rng::from_seed([0x91; 32]));
            v.push(("pairing.pake_inviter", msg_bytes(&pake_i)));
            v.push(("pairing.pake_joiner", msg_bytes(&pake_j)));
            match (inv.receive_pake(&pake_j), join.receive_pake(&pake_i)) {
                (Ok((_, ci)), Ok((_, cj))) => {
                    v.push(("pairing.confirm_inviter", msg_bytes(&ci)));
                    v.push(("pairing.confirm_joiner", msg_bytes(&cj)));
                }
                _ => v.push(("pairing.confirm_inviter", "error".into())),
            }
        }
        Err(e) => v.push(("pairing.pake_inviter", format!("error: {e}"))),
    }
    v
}

/// `name = hex` lines of the ```vectors block in PROTOCOL.md.
fn documented() -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in PROTOCOL_MD.lines() {
        let line = line.trim();
        if line == "```vectors" {
            inside = true;
        } else if inside && line == "```" {
            inside = false;
        } else if inside && !line.is_empty() {
            if let Some((k, val)) = line.split_once('=') {
                out.push((k.trim().to_string(), val.trim().to_string()));
            }
        }
    }
    out
}

#[test]
fn compare_with_protocol_md() {
    let computed = compute();
    let doc = documented();
    assert!(!doc.is_empty(), "PROTOCOL.md has no ```vectors block");
    for (name, value) in &computed {
        let found = doc.iter().find(|(k, _)| k == name);
        assert!(found.is_some(), "vector {name} missing from PROTOCOL.md");
        assert_eq!(
            found.map(|(_, v)| v.as_str()),
            Some(value.as_str()),
            "vector {name} in PROTOCOL.md differs from the code"
        );
    }
    for (name, _) in &doc {
        assert!(
            computed.iter().any(|(k, _)| k == name),
            "PROTOCOL.md lists {name}, which the code does not derive"
        );
    }
}

#[test]
fn vectors_are_self_consistent() {
    // The documented envelope decodes, verifies and opens with the documented keys.
    let a = DeviceIdentity::from_secret_bytes(&[0x01; 32], &[0x02; 32]);
    let doc = documented();
    let get = |n: &str| {
        doc.iter()
            .find(|(k, _)| k == n)
            .and_then(|(_, v)| hex::decode(v).ok())
            .unwrap_or_default()
    };
    let env = Envelope::decode(&get("envelope.full")).expect("documented envelope decodes");
    assert_eq!(env.verify_signature(&a.public().sign), Ok(()));
    let create = attune_proto::SignedRosterEvent::decode(&get("roster.create")).expect("decodes");
    let join = attune_proto::SignedRosterEvent::decode(&get("roster.join")).expect("decodes");
    let roster = attune_proto::Roster::verify(SpaceId([0x10; 16]), &[create, join])
        .expect("documented roster verifies");
    let mut keys = Keyring::new();
    keys.insert(KeyId::Epoch(0), SymmetricKey::from_bytes([0x40; 32]));
    let opened = crate::envelope::open_envelope(&env, &roster, &keys).expect("opens");
    assert_eq!(opened.item(), Some(&b"hello"[..]));
    let ks = crate::keystore::open_keystore(&get("keystore.locked"), Some(b"attune"))
        .expect("documented keystore opens");
    assert_eq!(ks.identity.id(), a.id());
    let code = crate::recovery::RecoveryCode::parse(RECOVERY_CODE).expect("parses");
    let bundle = crate::recovery::open_recovery(&code, &get("recovery.bundle"))
        .expect("documented recovery bundle opens with its code");
    assert_eq!(bundle.partner_name, "Sam");
    assert_eq!(
        bundle.keystore.identity.id(),
        DeviceIdentity::from_secret_bytes(&[0x05; 32], &[0x06; 32]).id()
    );
    let recovery =
        attune_proto::SignedRosterEvent::decode(&get("roster.recovery")).expect("decodes");
    let revoke = attune_proto::SignedRosterEvent::decode(&get("roster.revoke")).expect("decodes");
    let mut with_recovery = roster.clone();
    with_recovery
        .apply(&recovery)
        .expect("the recovery event applies");
    with_recovery
        .apply(&revoke)
        .expect("the revocation applies");
    let link = attune_proto::SignedRosterEvent::decode(&get("roster.link")).expect("decodes");
    let mut linked = roster.clone();
    linked.apply(&link).expect("the link applies");
}

#[test]
#[ignore = "prints the vectors block for PROTOCOL.md"]
fn print_vectors() {
    println!("```vectors");
    for (name, value) in compute() {
        println!("{name} = {value}");
    }
    println!("```");
}
