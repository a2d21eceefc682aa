//! A hostile relay: the real relay binary, with its SQLite database edited between
//! syncs the way a malicious operator could. For each attack the client must report
//! the specific problem, exit non-zero from `sync`, never show altered or forged
//! content as genuine, and keep what it had already verified.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_crypto::{open_keystore, seal_envelope, DeviceIdentity};
use attune_proto::{EntryId, Envelope, EnvelopeHeader, KeyId, RosterChange, RosterEvent};
use attune_tests::{add_device, pair, Attune, Couple, Relay};
use rusqlite::{params, Connection};
use serde_json::Value;

fn db(relay: &Relay) -> Connection {
    Connection::open(&relay.db).unwrap()
}

/// The relay's rows, in cursor order: (cursor, data).
fn rows(relay: &Relay) -> Vec<(i64, Vec<u8>)> {
    let conn = db(relay);
    let mut stmt = conn
        .prepare("SELECT cursor, data FROM envelopes ORDER BY cursor")
        .unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap()
}

fn set_data(relay: &Relay, cursor: i64, data: &[u8]) {
    db(relay)
        .execute(
            "UPDATE envelopes SET data = ?2 WHERE cursor = ?1",
            params![cursor, data],
        )
        .unwrap();
}

/// A's journal entries "entry 1..=n", synced; returns the cursors of A's rows.
fn alex_writes(c: &Couple, n: usize) -> Vec<i64> {
    for i in 1..=n {
        c.a.run(&["journal", "-m", &format!("Alex entry {i}")]).ok();
    }
    let me = device_of(&c.a);
    rows(&c.relay)
        .into_iter()
        .filter(|(_, d)| Envelope::decode(d).unwrap().header.author == me)
        .map(|(cursor, _)| cursor)
        .collect()
}

fn device_of(who: &Attune) -> attune_proto::DeviceId {
    identity_of(who).id()
}

fn identity_of(who: &Attune) -> DeviceIdentity {
    let bytes = std::fs::read(who.home.join("keystore.attune")).unwrap();
    open_keystore(&bytes, None).unwrap().identity
}

fn feed(who: &Attune) -> Value {
    who.run(&["feed", "--json"]).json()
}

fn texts(feed: &Value) -> Vec<String> {
    feed["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

fn kinds(feed: &Value) -> Vec<String> {
    feed["problems"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["kind"].as_str().unwrap().to_string())
        .collect()
}

/// B syncs: the sync must fail with the integrity exit code and name `kind`.
fn sync_reports(who: &Attune, kind: &str) {
    let run = who.run(&["sync"]);
    assert_eq!(
        run.code, 3,
        "sync must exit 3 on an integrity problem: {run:?}"
    );
    assert!(
        run.stderr.contains(&format!("[{kind}]")),
        "sync names the problem {kind}: {run:?}"
    );
    let status = who.run(&["status", "--json"]);
    assert_eq!(status.code, 3, "{status:?}");
    assert!(
        status.json()["problems"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["kind"] == kind),
        "status lists {kind}"
    );
}

#[test]
fn flipped_bytes_in_header_body_or_signature_are_reported_as_altered() {
    let c = Couple::new(&[]);
    let cursors = alex_writes(&c, 3);
    c.b.run(&["sync"]).ok();
    assert_eq!(texts(&feed(&c.b)).len(), 3);
    // New entries, then the relay flips one byte in each region of one of them.
    let more = alex_writes(&c, 3);
    let fresh: Vec<i64> = more.into_iter().filter(|x| !cursors.contains(x)).collect();
    let all = rows(&c.relay);
    let data = |cursor: i64| all.iter().find(|r| r.0 == cursor).unwrap().1.clone();
    for (cursor, offset) in [
        (fresh[0], 100usize),                 // header: the entry id
        (fresh[1], 200),                      // body: the ciphertext
        (fresh[2], data(fresh[2]).len() - 1), // signature
    ] {
        let mut d = data(cursor);
        d[offset] ^= 0x01;
        set_data(&c.relay, cursor, &d);
    }
    sync_reports(&c.b, "altered");
    let f = feed(&c.b);
    let shown = texts(&f);
    // What was verified before stays; nothing altered is shown.
    for i in 1..=3 {
        assert!(shown.contains(&format!("Alex entry {i}")), "{shown:?}");
    }
    assert_eq!(shown.len(), 3, "altered entries are not shown: {shown:?}");
    assert!(
        kinds(&f).iter().filter(|k| *k == "altered").count() >= 3,
        "{f:#}"
    );
}

#[test]
fn a_dropped_envelope_is_a_gap_and_what_follows_is_held() {
    let c = Couple::new(&[]);
    let cursors = alex_writes(&c, 3);
    db(&c.relay)
        .execute("DELETE FROM envelopes WHERE cursor = ?1", [cursors[1]])
        .unwrap();
    sync_reports(&c.b, "gap");
    let shown = texts(&feed(&c.b));
    assert_eq!(
        shown,
        vec!["Alex entry 1".to_string()],
        "entry 3 is held, not shown"
    );
}

#[test]
fn swapped_envelopes_are_reported_as_reordered() {
    let c = Couple::new(&[]);
    let cursors = alex_writes(&c, 3);
    let all = rows(&c.relay);
    let d1 = all.iter().find(|r| r.0 == cursors[1]).unwrap().1.clone();
    let d2 = all.iter().find(|r| r.0 == cursors[2]).unwrap().1.clone();
    set_data(&c.relay, cursors[1], &d2);
    set_data(&c.relay, cursors[2], &d1);
    sync_reports(&c.b, "reordered");
    let mut shown = texts(&feed(&c.b));
    shown.sort();
    assert_eq!(
        shown.len(),
        3,
        "genuine entries served out of order are still genuine"
    );
}

#[test]
fn a_replayed_envelope_under_a_new_cursor_is_reported() {
    let c = Couple::new(&[]);
    let cursors = alex_writes(&c, 2);
    let all = rows(&c.relay);
    let first = all.iter().find(|r| r.0 == cursors[0]).unwrap().1.clone();
    let next = all.last().unwrap().0 + 1;
    // The relay serves an old envelope again, under a fresh cursor.
    let conn = db(&c.relay);
    conn.execute(
        "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
         SELECT space, ?1, author, seq + 1000, hash, randomblob(16), data FROM envelopes WHERE cursor = ?2",
        params![next, cursors[0]],
    )
    .unwrap();
    let _ = first;
    sync_reports(&c.b, "replayed");
    let shown = texts(&feed(&c.b));
    assert_eq!(
        shown.iter().filter(|t| *t == "Alex entry 1").count(),
        1,
        "a replay is not shown twice: {shown:?}"
    );
}

#[test]
fn an_envelope_copied_from_another_space_is_reported() {
    let c = Couple::new(&[]);
    alex_writes(&c, 1);
    // A second couple on the same relay.
    let dir = tempfile::tempdir().unwrap();
    let x = Attune::new(&dir.path().join("x"));
    let y = Attune::new(&dir.path().join("y"));
    x.init("Xan");
    y.init("Yu");
    pair(&x, &y, &c.relay.url);
    x.run(&["journal", "-m", "from another couple"]).ok();
    let all = rows(&c.relay);
    let xd = device_of(&x);
    let foreign = all
        .iter()
        .find(|r| Envelope::decode(&r.1).unwrap().header.author == xd)
        .unwrap()
        .1
        .clone();
    let ours = all
        .iter()
        .find(|r| Envelope::decode(&r.1).unwrap().header.author == device_of(&c.a))
        .unwrap()
        .0;
    let space: Vec<u8> = db(&c.relay)
        .query_row(
            "SELECT space FROM envelopes WHERE cursor = ?1 AND author = ?2",
            params![ours, &device_of(&c.a).0[..]],
            |r| r.get(0),
        )
        .unwrap();
    let next: i64 = db(&c.relay)
        .query_row(
            "SELECT MAX(cursor) + 1 FROM envelopes WHERE space = ?1",
            [&space],
            |r| r.get(0),
        )
        .unwrap();
    db(&c.relay)
        .execute(
            "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
             VALUES (?1, ?2, randomblob(32), 1, randomblob(32), randomblob(16), ?3)",
            params![space, next, foreign],
        )
        .unwrap();
    sync_reports(&c.b, "foreign");
    assert!(!texts(&feed(&c.b))
        .iter()
        .any(|t| t.contains("another couple")));
}

#[test]
fn a_forged_envelope_from_an_outsider_is_reported() {
    let c = Couple::new(&[]);
    alex_writes(&c, 1);
    // The relay makes up an author and signs with its own key.
    let outsider = DeviceIdentity::generate();
    let row = rows(&c.relay).pop().unwrap();
    let real = Envelope::decode(&row.1).unwrap();
    let header = EnvelopeHeader {
        author: outsider.id(),
        seq: 1,
        prev: attune_proto::Hash32::ZERO,
        entry: EntryId([7; 16]),
        ..real.header
    };
    let key = attune_crypto::SymmetricKey::generate();
    let forged = seal_envelope(&outsider, header, KeyId::Epoch(0), &key, b"{\"v\":1}").unwrap();
    let next = row.0 + 1;
    db(&c.relay)
        .execute(
            "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
             SELECT space, ?1, ?2, 1, randomblob(32), randomblob(16), ?3 FROM envelopes WHERE cursor = ?4",
            params![next, &outsider.id().0[..], forged.encode(), row.0],
        )
        .unwrap();
    sync_reports(&c.b, "forged");
}

#[test]
fn a_forked_history_shown_to_two_readers_is_detected() {
    let c = Couple::new(&[]);
    let cursors = alex_writes(&c, 1);
    c.b.run(&["sync"]).ok();
    // Alex writes entry 2; Sam is served it as written.
    c.a.run(&["journal", "-m", "what Sam is shown"]).ok();
    c.b.run(&["sync"]).ok();
    // The relay now serves Alex a different envelope 2 (signed with Alex's own key,
    // as a relay that stole it could): Alex's own device must notice.
    let alex = identity_of(&c.a);
    let all = rows(&c.relay);
    let (cursor2, data2) = all
        .iter()
        .filter(|r| !cursors.contains(&r.0))
        .find(|r| Envelope::decode(&r.1).unwrap().header.author == alex.id())
        .cloned()
        .unwrap();
    let genuine = Envelope::decode(&data2).unwrap();
    let epoch = {
        let bytes = std::fs::read(c.a.home.join("keystore.attune")).unwrap();
        open_keystore(&bytes, None).unwrap().keys
    };
    let key = epoch.get(&KeyId::Epoch(0)).unwrap();
    let other = seal_envelope(
        &alex,
        EnvelopeHeader {
            entry: EntryId([9; 16]),
            ..genuine.header
        },
        KeyId::Epoch(0),
        key,
        br#"{"v":1,"at":0,"kind":"journal","text":"what Alex is shown","heads":[]}"#,
    )
    .unwrap();
    // Alex pulled its envelope 2 back right after writing it, so the relay serves
    // the other one at a new position (its own columns made up, so its indexes
    // do not object); Alex's device compares it with what it wrote.
    let _ = cursor2;
    db(&c.relay)
        .execute(
            "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
             SELECT space, (SELECT MAX(cursor) + 1 FROM envelopes), randomblob(32), 1,
                    randomblob(32), randomblob(16), ?1 FROM envelopes LIMIT 1",
            params![other.encode()],
        )
        .unwrap();
    db(&c.relay)
        .execute("UPDATE spaces SET next_cursor = next_cursor + 1", [])
        .unwrap();
    sync_reports(&c.a, "fork");
    assert!(!texts(&feed(&c.a)).iter().any(|t| t == "what Alex is shown"));
    // Sam's next item carries the head Sam saw (the genuine envelope 2): once the
    // relay serves Sam's item, the disagreement shows there too.
    c.b.run(&["journal", "-m", "Sam writes after seeing entry 2"])
        .ok();
    let run = c.a.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
}

#[test]
fn a_device_injected_into_the_roster_is_refused() {
    let c = Couple::new(&[]);
    alex_writes(&c, 1);
    c.b.run(&["sync"]).ok();
    // The relay appends a roster event adding its own device, signed by itself.
    let intruder = DeviceIdentity::generate();
    let conn = db(&c.relay);
    let (space, last): (Vec<u8>, Vec<u8>) = conn
        .query_row(
            "SELECT space, event FROM roster ORDER BY seq DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let last = attune_proto::SignedRosterEvent::decode(&last).unwrap();
    let event = intruder.sign_roster_event(RosterEvent {
        space: last.event.space,
        seq: last.event.seq + 1,
        prev: last.hash(),
        signer: intruder.id(),
        legacy_at: None,
        change: RosterChange::Link {
            member: attune_proto::MemberId([1; 16]),
            device: intruder.public(),
        },
    });
    conn.execute(
        "INSERT INTO roster (space, seq, event) VALUES (?1, ?2, ?3)",
        params![space, (last.event.seq + 1) as i64, event.encode()],
    )
    .unwrap();
    let run = c.b.run(&["sync"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(run.stderr.contains("roster"), "{run:?}");
    // Sam still reads what was verified before.
    assert_eq!(texts(&feed(&c.b)), vec!["Alex entry 1".to_string()]);
}

#[test]
fn a_freeze_shows_the_silence_and_is_detected_when_later_envelopes_arrive() {
    let c = Couple::new(&[]);
    let day = 86_400_000i64;
    let now = attune_core::relay::now_ms();
    let at = |d: i64| {
        (
            "ATTUNE_TEST_NOW_MS".to_string(),
            (now + d * day).to_string(),
        )
    };
    let mut a = c.a.clone();
    let mut b = c.b.clone();
    a.env = vec![at(0)];
    a.run(&["journal", "-m", "day 0"]).ok();
    b.env = vec![at(0)];
    b.run(&["sync"]).ok();
    // Alex keeps writing; the relay withholds all of it from Sam.
    a.env = vec![at(1)];
    a.run(&["journal", "-m", "day 1, withheld"]).ok();
    a.run(&["journal", "-m", "day 1 again, withheld"]).ok();
    let withheld: Vec<(i64, Vec<u8>)> = rows(&c.relay).into_iter().skip(1).collect();
    let conn = db(&c.relay);
    conn.execute(
        "CREATE TABLE hidden AS SELECT * FROM envelopes WHERE cursor > ?1",
        [withheld[0].0 - 1],
    )
    .unwrap();
    conn.execute("DELETE FROM envelopes WHERE cursor >= ?1", [withheld[0].0])
        .unwrap();
    b.env = vec![at(4)];
    b.run(&["sync"]).ok();
    let status = b.run(&["status"]).ok();
    assert!(
        status.stdout.contains("nothing new from Alex for 4 days"),
        "the silence shows: {status:?}"
    );
    // Later, the relay serves only Alex's newest envelope: the gap gives it away.
    // (The relay itself checks chains on upload, so it keeps the hidden rows for
    // Alex's next append and hides them again from what it serves.)
    conn.execute("INSERT INTO envelopes SELECT * FROM hidden", [])
        .unwrap();
    a.env = vec![at(4)];
    let w = a.run(&["journal", "-m", "day 4"]).ok();
    assert!(w.stderr.is_empty(), "Alex's entry reached the relay: {w:?}");
    conn.execute(
        "DELETE FROM envelopes WHERE cursor IN (SELECT cursor FROM hidden)",
        [],
    )
    .unwrap();
    sync_reports(&b, "gap");
    assert!(
        !texts(&feed(&b)).contains(&"day 4".to_string()),
        "held until the gap fills"
    );
}

/// Alex with a phone (`c.a`) and a laptop, Sam with a phone (`c.b`) and a tablet.
fn two_devices_each(c: &Couple) -> (Attune, Attune) {
    let laptop = Attune::new(&c.dir.path().join("a-laptop"));
    laptop.init("Alex");
    add_device(&c.a, &laptop, &c.relay.url, "laptop");
    let tablet = Attune::new(&c.dir.path().join("b-tablet"));
    tablet.init("Sam");
    add_device(&c.b, &tablet, &c.relay.url, "tablet");
    for p in [&c.a, &laptop, &c.b, &tablet] {
        p.run(&["sync"]).ok();
    }
    (laptop, tablet)
}

#[test]
fn with_two_devices_each_an_envelope_hidden_from_the_partner_is_detected() {
    let c = Couple::new(&[]);
    let (laptop, tablet) = two_devices_each(&c);
    laptop.run(&["journal", "-m", "written on the laptop"]).ok();
    // Alex's phone receives it, and what it writes next says so (its heads).
    c.a.run(&["sync"]).ok();
    assert!(texts(&feed(&c.a)).contains(&"written on the laptop".to_string()));
    // The relay hides the laptop's envelope from everyone who has not pulled it.
    let lap = device_of(&laptop);
    let hidden: Vec<i64> = rows(&c.relay)
        .into_iter()
        .filter(|(_, d)| Envelope::decode(d).unwrap().header.author == lap)
        .map(|(cursor, _)| cursor)
        .collect();
    assert!(!hidden.is_empty());
    for cursor in &hidden {
        db(&c.relay)
            .execute("DELETE FROM envelopes WHERE cursor = ?1", [cursor])
            .unwrap();
    }
    c.a.run(&["journal", "-m", "phone writes after the laptop"])
        .ok();
    // Sam's tablet (and phone) learn from the phone's item that the laptop's was withheld.
    sync_reports(&tablet, "withheld");
    sync_reports(&c.b, "withheld");
    assert!(!texts(&feed(&tablet)).contains(&"written on the laptop".to_string()));
}

#[test]
fn with_two_devices_each_a_roster_split_between_the_partners_is_detected() {
    let c = Couple::new(&[]);
    let (laptop, _tablet) = two_devices_each(&c);
    // Alex adds a third device; the relay then hides that change from Sam
    // (drops the roster event from what it serves), showing the partners
    // different rosters.
    let desk = Attune::new(&c.dir.path().join("a-desk"));
    desk.init("Alex");
    add_device(&laptop, &desk, &c.relay.url, "desk");
    c.a.run(&["sync"]).ok();
    c.a.run(&["journal", "-m", "written with three devices"])
        .ok();
    let conn = db(&c.relay);
    let last: i64 = conn
        .query_row("SELECT MAX(seq) FROM roster", [], |r| r.get(0))
        .unwrap();
    conn.execute("DELETE FROM roster WHERE seq = ?1", [last])
        .unwrap();
    let run = c.b.run(&["sync"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stderr.contains("[roster_withheld]"), "{run:?}");
}
