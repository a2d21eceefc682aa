//! What was accepted stays accepted, and what the relay holds back is noticed:
//! - a backdated revocation is refused by the relay, and a client served one by a
//!   hostile relay refuses it and never shows the answer it was meant to replace;
//! - the positions (cursors) a relay serves must only grow;
//! - a writer learns when the relay kept its item from the partner, and either
//!   partner learns when the relay shows them different memberships.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use attune_core::item::{Answer, Body, CheckIn, Item};
use attune_core::relay::RelayError;
use attune_crypto::{open_envelope, open_keystore, seal_answer, seal_envelope, DeviceIdentity};
use attune_proto::api::{b64, codes};
use attune_proto::{
    AnswerContext, EntryId, Envelope, EnvelopeHeader, Hash32, Roster, RosterChange, RosterEvent,
    SignedRosterEvent,
};
use attune_tests::{Attune, Couple, Run};
use rusqlite::{params, Connection};
use serde_json::Value;

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

fn feed(who: &Attune) -> (i32, Value) {
    let run = who.run(&["feed", "--json"]);
    (run.code, run.json())
}

fn problem_kinds(doc: &Value) -> Vec<String> {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

fn problem_text(doc: &Value) -> String {
    doc["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["detail"].as_str().unwrap().to_string())
        .collect::<Vec<_>>()
        .join("\n")
}

fn sync_ok(who: &Attune) {
    let run = who.run(&["sync"]);
    assert_eq!(run.code, 0, "{run:?}");
}

/// Sam's keys, read from his keystore the way a partner with his device could.
struct Keys {
    identity: DeviceIdentity,
    keys: attune_crypto::Keyring,
}

fn keys_of(who: &Attune) -> Keys {
    let bytes = std::fs::read(who.home.join("keystore.attune")).unwrap();
    let c = open_keystore(&bytes, None).unwrap();
    Keys {
        identity: c.identity,
        keys: c.keys,
    }
}

fn roster_events(
    relay: &attune_core::relay::RelayClient,
    space: attune_proto::SpaceId,
) -> Vec<SignedRosterEvent> {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(relay.roster(space))
        .unwrap()
        .iter()
        .map(|e| SignedRosterEvent::decode(e).unwrap())
        .collect()
}

fn next_event(
    roster: &[SignedRosterEvent],
    extra: &[&SignedRosterEvent],
    signer: &DeviceIdentity,
    change: RosterChange,
) -> SignedRosterEvent {
    let last = extra.last().copied().or(roster.last()).unwrap();
    signer.sign_roster_event(RosterEvent {
        space: last.event.space,
        seq: last.event.seq + 1,
        prev: last.hash(),
        signer: signer.id(),
        legacy_at: None,
        change,
    })
}

/// The relay's rows of one author: (cursor, envelope).
fn rows_of(c: &Couple, author: &attune_proto::DeviceId) -> Vec<(i64, Envelope)> {
    let conn = Connection::open(&c.relay.db).unwrap();
    let mut stmt = conn
        .prepare("SELECT cursor, data FROM envelopes ORDER BY cursor")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)))
        .unwrap()
        .map(|r| {
            let (c, d) = r.unwrap();
            (c, Envelope::decode(&d).unwrap())
        })
        .filter(|(_, e)| e.header.author == *author)
        .collect()
}

/// Both check in, sealed with a guess, and both sync until revealed. Sam's mood is 4.
fn both_check_in_and_reveal(c: &Couple) {
    c.a.run(&[
        "checkin",
        "--mood",
        "7",
        "--feel",
        "calm",
        "--guess-mood",
        "5",
    ])
    .ok();
    c.b.run(&[
        "checkin",
        "--mood",
        "4",
        "--feel",
        "tired",
        "--guess-mood",
        "6",
    ])
    .ok();
    for _ in 0..2 {
        sync_ok(&c.a);
        sync_ok(&c.b);
    }
}

/// Sam's check-in as Alex's feed shows it.
fn sams_checkins(doc: &Value) -> Vec<Value> {
    doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["author"] == "partner" && e["kind"] == "checkin")
        .cloned()
        .collect()
}

#[test]
fn a_backdated_revocation_is_refused_by_the_relay_and_by_a_client_served_one() {
    let c = Couple::new(&[]);
    both_check_in_and_reveal(&c);
    let (_, doc) = feed(&c.a);
    let seen = sams_checkins(&doc);
    assert_eq!(seen.len(), 1, "{doc:#}");
    assert_eq!(seen[0]["checkin"]["mood"], 4, "{doc:#}");

    // Sam, having read Alex's answer, tries to take his own back: he links a
    // second device and has it revoke the first as of before his sealed answer.
    let mut sam = keys_of(&c.b);
    let relay = c.relay.client(&sam.identity);
    let roster = roster_events(&relay, doc_space(&c));
    let space = roster[0].event.space;
    let verified = Roster::verify(space, &roster).unwrap();
    let member = verified.device(&sam.identity.id()).unwrap().member;
    sam.keys.set_member(member);
    let sam_rows = rows_of(&c, &sam.identity.id());
    let sealed_at = sam_rows
        .iter()
        .find(|(_, e)| {
            let plain = open_envelope(e, &verified, &sam.keys).unwrap();
            let Some(item) = plain.item() else {
                return false;
            };
            matches!(Item::from_bytes(item).unwrap().body, Body::Sealed { .. })
        })
        .map(|(_, e)| e.header.seq)
        .expect("Sam's sealed answer");
    let second = DeviceIdentity::generate();
    let link = next_event(
        &roster,
        &[],
        &sam.identity,
        RosterChange::Link {
            member,
            device: second.public(),
        },
    );
    let revoke = next_event(
        &roster,
        &[&link],
        &second,
        RosterChange::Revoke {
            device: sam.identity.id(),
            last_seq: sealed_at - 1,
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    // In one request: refused as a whole, nothing stored.
    let both = rt.block_on(relay.append_roster(space, vec![link.encode(), revoke.encode()]));
    match both {
        Err(RelayError::Refused { code, message, .. }) => {
            assert_eq!(code, codes::REVOKE_BACKDATED, "{message}");
            assert!(message.contains("cannot be retracted"), "{message}");
        }
        other => panic!("the relay accepted a backdated revocation: {other:?}"),
    }
    assert_eq!(roster_events(&relay, space).len(), roster.len());
    // The link alone is fine; the revocation after it is still refused.
    rt.block_on(relay.append_roster(space, vec![link.encode()]))
        .unwrap();
    let refused = rt.block_on(relay.append_roster(space, vec![revoke.encode()]));
    assert_eq!(
        refused.as_ref().err().and_then(|e| e.code()),
        Some(codes::REVOKE_BACKDATED),
        "{refused:?}"
    );
    // Revoking at the head (nothing retracted) is accepted.
    let honest = next_event(
        &roster,
        &[&link],
        &second,
        RosterChange::Revoke {
            device: sam.identity.id(),
            last_seq: sam_rows.last().unwrap().1.header.seq,
        },
    );
    // (not sent: the hostile relay below stores the backdated one instead)
    assert!(honest.event.seq == revoke.event.seq);

    // A hostile relay stores the backdated revocation anyway, and the second
    // device seals a different answer (mood 1) for the same exchange and reveals it.
    let conn = Connection::open(&c.relay.db).unwrap();
    conn.execute(
        "INSERT INTO roster (space, seq, event) VALUES (?1, ?2, ?3)",
        params![&space.0[..], revoke.event.seq as i64, revoke.encode()],
    )
    .unwrap();
    let exercise = sam_rows
        .iter()
        .find_map(|(_, e)| {
            let plain = open_envelope(e, &verified, &sam.keys).unwrap();
            match Item::from_bytes(plain.item()?).unwrap().body {
                Body::Sealed { exercise, .. } => Some(exercise),
                _ => None,
            }
        })
        .unwrap();
    let day = seen[0]["day"].as_str().unwrap_or_default().to_string();
    let ctx = AnswerContext {
        space,
        exercise: EntryId::from_hex(&exercise).unwrap(),
        author: second.id(),
    };
    let answer = Answer::CheckIn {
        day,
        checkin: CheckIn {
            mood: 1,
            feelings: vec!["hurt".into()],
            high: None,
            low: None,
            appreciate: None,
            need: None,
        },
        guess: None,
    };
    let (sealed, key) = seal_answer(&ctx, &answer.to_bytes()).unwrap();
    let epoch = sam.keys.current_epoch().unwrap();
    let epoch_key = sam.keys.get(&epoch).unwrap();
    let mut prev = Hash32::ZERO;
    let mut envelopes = Vec::new();
    for (seq, body) in [
        (
            1,
            Body::Sealed {
                exercise: exercise.clone(),
                sealed: b64(&sealed.encode()),
                moved_from: None,
                gen: None,
            },
        ),
        (
            2,
            Body::Reveal {
                exercise: exercise.clone(),
                key: b64(key.expose()),
            },
        ),
    ] {
        let item = Item {
            v: 1,
            at: now_ms(),
            body,
            heads: vec![],
            seen_at: None,
            roster: None,
        };
        let header = EnvelopeHeader {
            space,
            author: second.id(),
            seq,
            prev,
            legacy_key: None,
            entry: EntryId(attune_tests::random16()),
        };
        let env = seal_envelope(&second, header, epoch, epoch_key, &item.to_bytes()).unwrap();
        prev = env.hash();
        envelopes.push(env.encode());
    }
    rt.block_on(c.relay.client(&second).append(space, envelopes))
        .unwrap();

    // Alex's client refuses the revocation, names Sam, and keeps Sam's first answer.
    let run: Run = c.a.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    let (code, doc) = feed(&c.a);
    assert_eq!(code, 3, "{doc:#}");
    let kinds = problem_kinds(&doc);
    assert!(kinds.contains(&"retraction".to_string()), "{doc:#}");
    assert!(kinds.contains(&"changed".to_string()), "{doc:#}");
    let text = problem_text(&doc);
    assert!(text.contains("Sam's device signed a removal"), "{text}");
    assert!(text.contains("cannot be taken back"), "{text}");
    let now = sams_checkins(&doc);
    assert!(
        now.iter().all(|e| e["checkin"]["mood"] != 1),
        "the changed answer is shown as genuine: {doc:#}"
    );
    // The second answer is listed as refused, with no content; the first stands.
    let (refused, genuine): (Vec<&Value>, Vec<&Value>) =
        now.iter().partition(|e| e["refused"] == true);
    assert!(
        refused.iter().all(|e| e.get("checkin").is_none()),
        "{doc:#}"
    );
    assert_eq!(genuine.len(), 1, "{doc:#}");
    assert_eq!(genuine[0]["checkin"]["mood"], 4, "{doc:#}");
    // The refusal stays: a later sync and feed still report it.
    let run = c.a.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(problem_kinds(&feed(&c.a).1).contains(&"retraction".to_string()));
}

fn doc_space(c: &Couple) -> attune_proto::SpaceId {
    let status = c.a.run(&["status", "--json"]).json();
    let hex = status["space"]
        .as_str()
        .expect("status --json names the space");
    attune_proto::SpaceId::from_hex(hex).unwrap()
}

/// A forwarding proxy that rewrites the cursors of pull answers once `armed`:
/// every served position becomes 1, below what the reader already has.
struct CursorProxy {
    url: String,
    armed: Arc<AtomicBool>,
}

fn cursor_proxy(upstream: std::net::SocketAddr) -> CursorProxy {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let armed = Arc::new(AtomicBool::new(false));
    let flag = armed.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(client) = conn else { continue };
            let flag = flag.clone();
            std::thread::spawn(move || {
                let _ = forward(client, upstream, &flag);
            });
        }
    });
    CursorProxy { url, armed }
}

/// Reads one HTTP/1.1 message (headers and a Content-Length body).
fn read_message(s: &mut TcpStream) -> std::io::Result<(String, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte)? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        buf.push(byte[0]);
    }
    let head = String::from_utf8_lossy(&buf).into_owned();
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut body = vec![0u8; len];
    s.read_exact(&mut body)?;
    Ok((head, body))
}

fn forward(
    mut client: TcpStream,
    upstream: std::net::SocketAddr,
    armed: &AtomicBool,
) -> std::io::Result<()> {
    loop {
        let (head, body) = read_message(&mut client)?;
        let is_pull = head.starts_with("GET ") && head.contains("/envelopes");
        // One request per upstream connection, without keep-alive.
        let head = head.replacen("\r\n", "\r\nConnection: close\r\n", 1);
        let mut up = TcpStream::connect(upstream)?;
        up.write_all(head.as_bytes())?;
        up.write_all(&body)?;
        let (rhead, mut rbody) = read_message(&mut up)?;
        if is_pull && armed.load(Ordering::SeqCst) {
            if let Ok(mut page) = serde_json::from_slice::<Value>(&rbody) {
                if let Some(list) = page["envelopes"].as_array_mut() {
                    for e in list.iter_mut() {
                        e["cursor"] = Value::from(1);
                    }
                    if !list.is_empty() {
                        page["next"] = Value::from(1);
                    }
                }
                rbody = serde_json::to_vec(&page).unwrap();
            }
        }
        let rhead: String = rhead
            .lines()
            .filter(|l| !l.to_ascii_lowercase().starts_with("content-length"))
            .filter(|l| !l.is_empty())
            .map(|l| format!("{l}\r\n"))
            .collect();
        client.write_all(rhead.as_bytes())?;
        client.write_all(format!("content-length: {}\r\n\r\n", rbody.len()).as_bytes())?;
        client.write_all(&rbody)?;
    }
}

/// The resume point a client's local database holds.
fn last_cursor(db: &Connection) -> i64 {
    db.query_row(
        "SELECT value FROM meta WHERE key = 'last_cursor'",
        [],
        |r| r.get::<_, String>(0),
    )
    .unwrap()
    .parse()
    .unwrap()
}

#[test]
fn served_positions_must_grow_or_nothing_is_kept() {
    let c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "first from Alex"]).ok();
    c.a.run(&["journal", "-m", "second from Alex"]).ok();
    sync_ok(&c.a);
    sync_ok(&c.b);
    // Sam now reads through a relay that serves a new envelope at position 1,
    // into the past he already holds.
    let proxy = cursor_proxy(c.relay.addr);
    let db = Connection::open(c.b.home.join("state.sqlite3")).unwrap();
    db.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'relay'",
        [&proxy.url],
    )
    .unwrap();
    let before = last_cursor(&db);
    proxy.armed.store(true, Ordering::SeqCst);
    c.a.run(&["journal", "-m", "third from Alex"]).ok();
    sync_ok(&c.a);
    let run = c.b.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("positions must only grow"), "{run:?}");
    let after = last_cursor(&db);
    assert_eq!(after, before, "the resume point moved back");
    let kept: i64 = db
        .query_row("SELECT COUNT(*) FROM received WHERE cursor <= 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(kept, 1, "an envelope was slotted into the past");
    // An honest relay again: the third entry arrives in its place.
    proxy.armed.store(false, Ordering::SeqCst);
    sync_ok(&c.b);
    let (code, doc) = feed(&c.b);
    assert_eq!(code, 0, "{doc:#}");
    let texts: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str())
        .collect();
    assert_eq!(
        texts,
        ["first from Alex", "second from Alex", "third from Alex"],
        "{doc:#}"
    );
}

#[test]
fn the_writer_learns_when_the_relay_keeps_its_item_from_the_partner() {
    let c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "for Sam"]).ok();
    sync_ok(&c.a);
    sync_ok(&c.b);
    // Alex writes again; the relay acknowledges it, then keeps it from Sam.
    c.a.run(&["journal", "-m", "kept from Sam"]).ok();
    sync_ok(&c.a);
    let alex = keys_of(&c.a).identity.id();
    let (cursor, _) = rows_of(&c, &alex).pop().unwrap();
    Connection::open(&c.relay.db)
        .unwrap()
        .execute("DELETE FROM envelopes WHERE cursor = ?1", [cursor])
        .unwrap();
    // Sam syncs well after (his clock an hour on) and writes: his item carries
    // what he had received of Alex's chain.
    let mut sam = c.b.clone();
    let later = (now_ms() + 60 * 60 * 1000).to_string();
    sam.env.push(("ATTUNE_TEST_NOW_MS".into(), later));
    sync_ok(&sam);
    sam.run(&["journal", "-m", "from Sam"]).ok();
    sync_ok(&sam);
    // Alex is told, naming Sam; his own entry is still his.
    let run = c.a.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    let (_, doc) = feed(&c.a);
    assert!(
        problem_kinds(&doc).contains(&"withheld_from_partner".to_string()),
        "{doc:#}"
    );
    let text = problem_text(&doc);
    assert!(
        text.contains("Sam's devices have not received your envelope"),
        "{text}"
    );
    assert!(text.contains("withholding"), "{text}");
}

#[test]
fn an_honest_week_reports_nothing_withheld() {
    // Partners who sync at different times, hours apart, see no false alarm.
    let c = Couple::new(&[]);
    let base = now_ms();
    for day in 0..3i64 {
        let mut a = c.a.clone();
        let mut b = c.b.clone();
        let t = |h: i64| (base + day * 86_400_000 + h * 3_600_000).to_string();
        a.env.push(("ATTUNE_TEST_NOW_MS".into(), t(1)));
        a.run(&["journal", "-m", &format!("Alex day {day}")]).ok();
        sync_ok(&a);
        b.env.push(("ATTUNE_TEST_NOW_MS".into(), t(5)));
        sync_ok(&b);
        b.run(&["journal", "-m", &format!("Sam day {day}")]).ok();
        sync_ok(&b);
        a.env.push(("ATTUNE_TEST_NOW_MS".into(), t(9)));
        sync_ok(&a);
    }
    for who in [&c.a, &c.b] {
        let (code, doc) = feed(who);
        assert_eq!(code, 0, "{doc:#}");
    }
}

#[test]
fn a_device_change_shown_to_one_partner_only_is_noticed() {
    let c = Couple::new(&[]);
    sync_ok(&c.a);
    sync_ok(&c.b);
    // Sam links a second device; the relay then hides that roster event from Alex.
    let sam = keys_of(&c.b);
    let relay = c.relay.client(&sam.identity);
    let space = doc_space(&c);
    let roster = roster_events(&relay, space);
    let verified = Roster::verify(space, &roster).unwrap();
    let member = verified.device(&sam.identity.id()).unwrap().member;
    let link = next_event(
        &roster,
        &[],
        &sam.identity,
        RosterChange::Link {
            member,
            device: DeviceIdentity::generate().public(),
        },
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(relay.append_roster(space, vec![link.encode()]))
        .unwrap();
    sync_ok(&c.b);
    c.b.run(&["journal", "-m", "after my new laptop"]).ok();
    sync_ok(&c.b);
    Connection::open(&c.relay.db)
        .unwrap()
        .execute("DELETE FROM roster WHERE seq = ?1", [link.event.seq as i64])
        .unwrap();
    let run = c.a.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    let (_, doc) = feed(&c.a);
    assert!(
        problem_kinds(&doc).contains(&"roster_withheld".to_string()),
        "{doc:#}"
    );
    assert!(problem_text(&doc).contains("Sam's device had seen 3 membership events"));
}
