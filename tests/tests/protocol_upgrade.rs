//! Updating attune to protocol 2 loses nothing written offline before: entries
//! a protocol 1 client sealed and had not sent yet are sealed again in the new
//! format (same item, id and position) and go up on the next sync, although
//! the relay now refuses protocol 1 envelopes (PROTOCOL.md §4, §13).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_core::profile::{DB_FILE, KEYSTORE_FILE};
use attune_crypto::padding::{pad, Buckets};
use attune_crypto::{decrypt_envelope, derive_entry_key, open_keystore};
use attune_proto::{Envelope, Hash32, KeyId, Roster, SignedRosterEvent};
use attune_tests::Couple;
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use rusqlite::{params, Connection};

/// Rewrites Alex's unsent envelopes as a protocol 1 client had sealed them:
/// the key named in the header, no commitment, the fine padding ladder.
fn downgrade_outbox(home: &std::path::Path) -> usize {
    let ks = open_keystore(&std::fs::read(home.join(KEYSTORE_FILE)).unwrap(), None).unwrap();
    let db = Connection::open(home.join(DB_FILE)).unwrap();
    let events: Vec<SignedRosterEvent> = db
        .prepare("SELECT event FROM roster ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| SignedRosterEvent::decode(&e.unwrap()).unwrap())
        .collect();
    let roster = Roster::verify(events[0].event.space, &events).unwrap();
    let mut keys = ks.keys.clone();
    keys.set_member(roster.device(&ks.identity.id()).unwrap().member);
    let rows: Vec<(i64, Vec<u8>)> = db
        .prepare("SELECT seq, envelope FROM outbox WHERE acked = 0 ORDER BY seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut prev: Option<Hash32> = None;
    for (seq, bytes) in &rows {
        let env = Envelope::decode(bytes).unwrap();
        let opened = decrypt_envelope(&env, &roster, &keys).unwrap();
        let item = opened.item().unwrap().to_vec();
        let mut header = env.header;
        header.legacy_key = Some(opened.key);
        if let Some(p) = prev {
            header.prev = p;
        }
        let key = keys.get(&opened.key).unwrap();
        let entry_key = derive_entry_key(key, &header.space, &opened.key, &header.entry);
        let nonce = [0x24u8; 24];
        let ct = XChaCha20Poly1305::new(entry_key.expose().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: &pad(Buckets::Fine, &item).unwrap(),
                    aad: &header.encode(),
                },
            )
            .unwrap();
        let body = [&nonce[..], &ct].concat();
        let v1 = Envelope {
            header,
            signature: ks.identity.sign_envelope(&header, &body),
            body,
        };
        assert_eq!(v1.encode()[0], 1, "a version 1 envelope");
        assert!(matches!(
            opened.key,
            KeyId::Epoch(_) | KeyId::MemberPrivate(_)
        ));
        db.execute(
            "UPDATE outbox SET envelope = ?2 WHERE seq = ?1",
            params![seq, v1.encode()],
        )
        .unwrap();
        prev = Some(v1.hash());
    }
    if let Some(p) = prev {
        db.execute(
            "UPDATE meta SET value = ?1 WHERE key = 'own_prev'",
            [p.to_hex()],
        )
        .unwrap();
    }
    rows.len()
}

fn journal_texts(who: &attune_tests::Attune) -> Vec<String> {
    let feed = who.run(&["feed", "--json"]).ok().json();
    assert_eq!(feed["problems"], serde_json::json!([]), "{feed:#}");
    feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "journal")
        .map(|e| e["text"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn entries_sealed_by_an_older_attune_and_not_sent_yet_go_up_after_the_update() {
    let mut c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "sent before the update"]).ok();
    c.relay.kill9();
    c.a.run(&["journal", "-m", "written offline, shared"]).ok();
    c.a.run(&["journal", "--private", "-m", "written offline, private"])
        .ok();
    assert_eq!(downgrade_outbox(&c.a.home), 2);
    c.relay.restart();

    let sync = c.a.run(&["sync"]);
    assert_eq!(sync.code, 0, "{sync:?}");
    let status = c.a.run(&["status", "--json"]).ok().json();
    assert_eq!(status["waiting"], 0, "{status:#}");
    // The relay holds protocol 2 envelopes only.
    let db = Connection::open(&c.relay.db).unwrap();
    let versions: Vec<Vec<u8>> = db
        .prepare("SELECT substr(data, 1, 1) FROM envelopes")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(versions.iter().all(|v| v == &[2u8]), "{versions:?}");
    // Both partners read what was written offline; the private entry only its author.
    c.b.run(&["sync"]).ok();
    let sam = journal_texts(&c.b);
    assert!(
        sam.contains(&"written offline, shared".to_string()),
        "{sam:?}"
    );
    assert!(!sam.iter().any(|t| t.contains("private")), "{sam:?}");
    let alex = journal_texts(&c.a);
    for t in [
        "sent before the update",
        "written offline, shared",
        "written offline, private",
    ] {
        assert!(alex.contains(&t.to_string()), "{t}: {alex:?}");
    }
}
