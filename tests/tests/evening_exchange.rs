//! The evening ritual with the real binaries: check-ins pair by exchange, not by
//! calendar day, so partners in Tokyo and Los Angeles meet every evening; a
//! skipped evening leaves one check-in unanswered, not stuck; the second
//! partner's own `checkin` opens both; an `--open` check-in answers a sealed
//! one; two check-ins made offline at once pair; and the relay holds each
//! sealed answer's key until the partner's own sealed answer is in, so nobody
//! can read and withhold.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_core::item::{Answer, CheckIn};
use attune_core::profile::Profile;
use attune_crypto::{DeviceIdentity, Keyring, SymmetricKey};
use attune_proto::{EntryId, KeyId, MemberId, RosterChange};
use attune_tests::{random16, Attune, Chain, Couple, Relay, Run};

const HOUR: i64 = 60 * 60 * 1000;

/// The start of a day `days` before today, UTC midnight.
fn utc_midnight(days_back: i64) -> i64 {
    let now = attune_core::relay::now_ms();
    now - now.rem_euclid(24 * HOUR) - days_back * 24 * HOUR
}

/// `who` in time zone `tz`, at `at` (Unix ms).
fn at(who: &Attune, tz: &str, at: i64) -> Attune {
    let mut w = who.clone();
    w.env
        .retain(|(k, _)| k != "ATTUNE_TEST_NOW_MS" && k != "TZ");
    w.env.push(("ATTUNE_TEST_NOW_MS".into(), at.to_string()));
    w.env.push(("TZ".into(), tz.into()));
    w
}

fn checkin(who: &Attune, mood: u8, guess: u8) -> Run {
    who.run(&[
        "checkin",
        "--mood",
        &mood.to_string(),
        "--feel",
        "calm",
        "--guess-mood",
        &guess.to_string(),
    ])
    .ok()
}

const TOKYO: &str = "Asia/Tokyo";
const LOS_ANGELES: &str = "America/Los_Angeles";

#[test]
fn tokyo_and_los_angeles_meet_every_evening_and_a_skipped_one_is_unanswered() {
    let c = Couple::new(&[]);
    // Alex in Tokyo checks in at 21:00 JST (12:00 UTC); Sam in Los Angeles at
    // 21:00 PST, 05:00 UTC the next UTC day: by local date they are a day apart.
    let start = utc_midnight(9);
    let skipped = 4;
    for day in 0..7i64 {
        let alex_evening = start + day * 24 * HOUR + 12 * HOUR;
        let sam_evening = alex_evening + 17 * HOUR;
        let alex = at(&c.a, TOKYO, alex_evening);
        let sam = at(&c.b, LOS_ANGELES, sam_evening);
        let alex_mood = (3 + day % 5) as u8;
        let sam_mood = (4 + day % 4) as u8;
        let run = checkin(&alex, alex_mood, sam_mood + 1);
        assert!(
            run.stdout.contains("sealed until Sam's next check-in"),
            "day {day}: {run:?}"
        );
        if day == skipped {
            continue;
        }
        // Sam's own check-in opens both, with no separate sync.
        let run = checkin(&sam, sam_mood, alex_mood);
        assert!(
            run.stdout.contains("it answers Alex's check-in")
                && run
                    .stdout
                    .contains(&format!("Alex's check-in is open: mood {alex_mood}/10"))
                && run.stdout.contains("your guess: mood exactly right"),
            "day {day}: {run:?}"
        );
        // Alex sees Sam's after one sync, though Sam never runs attune again
        // that day.
        let run = at(&c.a, TOKYO, sam_evening + HOUR).run(&["sync"]).ok();
        assert!(
            run.stdout
                .contains(&format!("Sam's check-in is open: mood {sam_mood}/10"))
                && run.stdout.contains("your guess: mood off by 1"),
            "day {day}: {run:?}"
        );
    }
    // Every exchange opened for both except the skipped evening's, which is
    // unanswered for both, not waiting for a check-in that can no longer come.
    let end = start + 8 * 24 * HOUR;
    for (who, tz, alex_is) in [(&c.a, TOKYO, "me"), (&c.b, LOS_ANGELES, "partner")] {
        let w = at(who, tz, end);
        w.run(&["sync"]).ok();
        let doc = w.run(&["feed", "--json"]).ok().json();
        let checkins: Vec<&serde_json::Value> = doc["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "checkin")
            .collect();
        let alex: Vec<_> = checkins.iter().filter(|e| e["author"] == alex_is).collect();
        assert_eq!(alex.len(), 7, "{checkins:#?}");
        let open = checkins.iter().filter(|e| e["revealed"] == true).count();
        assert_eq!(open, 12, "six evenings open for both: {checkins:#?}");
        let text = w.run(&["feed"]).ok().stdout;
        let unanswered = if alex_is == "me" {
            "[unanswered: Sam did not check in that evening]"
        } else {
            "[unanswered: you did not check in that evening; it stays sealed]"
        };
        assert_eq!(text.matches(unanswered).count(), 1, "{text}");
        assert!(!text.contains("check in today"), "{text}");
    }
}

#[test]
fn an_open_check_in_answers_a_sealed_one_and_a_second_needs_again() {
    let c = Couple::new(&[]);
    // 19:00 in Tokyo, so the second check-in two hours later is on the same
    // local day whatever the hour the test runs (the real clock made it flaky).
    let now = utc_midnight(1) + 10 * HOUR;
    let alex = at(&c.a, TOKYO, now);
    let sam = at(&c.b, LOS_ANGELES, now + HOUR);
    checkin(&alex, 6, 5);
    let run = sam
        .run(&["checkin", "--open", "--mood", "4", "--feel", "tired"])
        .ok();
    assert!(
        run.stdout.contains("it answers Alex's check-in")
            && run.stdout.contains("Alex's check-in is open: mood 6/10"),
        "{run:?}"
    );
    let run = alex.run(&["sync"]).ok();
    assert!(
        run.stdout.contains("Sam's check-in is open: mood 4/10"),
        "{run:?}"
    );
    // A second check-in the same evening is refused, unless asked for.
    let again = at(&c.a, TOKYO, now + 2 * HOUR).run(&["checkin", "--mood", "7"]);
    assert_eq!(again.code, 1, "{again:?}");
    assert!(
        again.stderr.contains("already checked in today") && again.stderr.contains("--again"),
        "{again:?}"
    );
    at(&c.a, TOKYO, now + 2 * HOUR)
        .run(&["checkin", "--again", "--mood", "7"])
        .ok();
}

#[test]
fn two_check_ins_made_offline_at_once_pair_in_one_exchange() {
    let mut c = Couple::new(&[]);
    let start = attune_core::relay::now_ms() - 8 * 24 * HOUR;
    // Which of the two exchanges wins is chance (the same time, then the lower
    // id); who syncs first alternates. Four evenings cover the partner who
    // must move syncing both before and after the other has sent theirs.
    for round in 0..4i64 {
        let now = start + round * 2 * 24 * HOUR;
        c.relay.terminate();
        let alex = at(&c.a, TOKYO, now);
        let sam = at(&c.b, LOS_ANGELES, now);
        let (mood_a, mood_b) = (2 + round as u8, 8 - round as u8);
        for (who, mood) in [(&alex, mood_a), (&sam, mood_b)] {
            let run = checkin(who, mood, 5);
            assert!(run.stderr.contains("working offline"), "{run:?}");
        }
        c.relay.restart();
        let order = if round % 2 == 0 {
            [&alex, &sam, &alex, &sam]
        } else {
            [&sam, &alex, &sam, &alex]
        };
        for who in order {
            who.run(&["sync"]).ok();
        }
        for (who, me, partner) in [(&alex, mood_a, mood_b), (&sam, mood_b, mood_a)] {
            let doc = who.run(&["feed", "--json"]).ok().json();
            let checkins: Vec<&serde_json::Value> = doc["entries"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|e| e["kind"] == "checkin" && e["revealed"] == true && e["at"] == now)
                .collect();
            assert_eq!(checkins.len(), 2, "round {round}: {doc:#}");
            let exchange = &checkins[0]["exchange"];
            assert!(checkins.iter().all(|e| &e["exchange"] == exchange));
            let mood = |author: &str| {
                checkins
                    .iter()
                    .find(|e| e["author"] == author)
                    .map(|e| e["checkin"]["mood"].clone())
            };
            assert_eq!(mood("me"), Some(me.into()), "round {round}: {doc:#}");
            assert_eq!(
                mood("partner"),
                Some(partner.into()),
                "round {round}: {doc:#}"
            );
            assert!(doc["problems"].as_array().unwrap().is_empty(), "{doc:#}");
            let text = who.run(&["feed"]).ok().stdout;
            assert_eq!(
                text.matches("[moved: paired with the check-in made at the same time]")
                    .count(),
                round as usize + 1,
                "round {round}: {text}"
            );
        }
    }
}

fn plain_checkin(mood: u8) -> Answer {
    Answer::CheckIn {
        day: "2026-12-02".into(),
        checkin: CheckIn {
            mood,
            feelings: vec![],
            high: None,
            low: None,
            appreciate: None,
            need: None,
        },
        guess: None,
    }
}

/// A modified client of Sam's that seals an answer but keeps its held reveal
/// back cannot read Alex's: the relay releases nothing. A client that sends
/// its held reveal (it must, to read Alex's) and then never runs again still
/// has its key delivered to Alex by the relay.
#[test]
fn a_partner_cannot_read_and_withhold() {
    let c = Couple::new(&[]);
    // Exchange 1: Alex checks in; Sam's modified client seals an answer without
    // its held reveal.
    let run = c.a.run(&["checkin", "--mood", "6"]).ok();
    assert!(run.stdout.contains("sealed until Sam"), "{run:?}");
    c.b.run(&["sync"]).ok();
    {
        let mut p = Profile::open(&c.b.home).unwrap();
        let view = p.view_since(0).unwrap();
        let now = attune_core::profile::now_ms();
        let attune_core::evening::Target::Join(x) =
            attune_core::evening::target(&view.practice, now)
        else {
            panic!("Alex's check-in waits for Sam's");
        };
        p.seal_answer(&x, &plain_checkin(2)).unwrap();
        let conn = rusqlite::Connection::open(c.b.home.join("state.sqlite3")).unwrap();
        let stripped = conn
            .execute("UPDATE outbox SET held = NULL WHERE held IS NOT NULL", [])
            .unwrap();
        assert_eq!(stripped, 1);
        drop(p);
    }
    let run = c.b.run(&["sync"]).ok();
    assert!(!run.stdout.contains("is open"), "{run:?}");
    let doc = c.b.run(&["feed", "--json"]).ok().json();
    let theirs = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "checkin" && e["author"] == "partner")
        .cloned()
        .unwrap();
    assert_eq!(theirs["revealed"], false, "{theirs:#}");
    assert!(theirs.get("checkin").is_none(), "{theirs:#}");

    // Exchange 2 (an exercise): Alex answers; Sam's client seals with its held
    // reveal, reads Alex's answer, and never runs again nor sends a reveal.
    let ask = c.a.run(&["ask", "question", "What made you laugh?"]).ok();
    let id = ask
        .stdout
        .split("attune answer ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .trim_matches('`')
        .to_string();
    c.a.run(&["answer", &id, "-m", "the cat on the stairs"])
        .ok();
    let run = c.b.run(&["answer", &id, "-m", "your terrible pun"]).ok();
    assert!(run.stdout.contains("the cat on the stairs"), "{run:?}");
    // One sync of Alex's: Sam's answer opens, delivered by the relay.
    let run = c.a.run(&["sync"]).ok();
    assert!(
        run.stdout.contains("Sam's answer") && run.stdout.contains("your terrible pun"),
        "{run:?}"
    );
    // No reveal item of Sam's exists in any chain: only the relay's release.
    let p = Profile::open(&c.a.home).unwrap();
    let view = p.view().unwrap();
    assert!(!view
        .entries
        .iter()
        .any(|e| !e.mine && matches!(e.item.body, attune_core::item::Body::Reveal { .. })));
}

/// The relay serves a held reveal only after the other member's sealed answer
/// to the same exchange (with its own held reveal) has arrived, then both,
/// after both sealed answers; one member's second device does not count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_holds_a_reveal_until_the_other_member_has_answered() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let (a, a2, b) = (
        DeviceIdentity::generate(),
        DeviceIdentity::generate(),
        DeviceIdentity::generate(),
    );
    let mut space = attune_tests::TestSpace::new(&a);
    let (ca, ca2, cb) = (relay.client(&a), relay.client(&a2), relay.client(&b));
    ca.create_space(space.create_event()).await.unwrap();
    let member_a = match space.events[0].event.change {
        RosterChange::Create { member, .. } => member,
        _ => unreachable!(),
    };
    for (signer, change) in [
        (
            &a,
            RosterChange::Join {
                member: MemberId(random16()),
                device: b.public(),
            },
        ),
        (
            &a,
            RosterChange::Link {
                member: member_a,
                device: a2.public(),
            },
        ),
    ] {
        let ev = space.next_event(signer, change);
        ca.append_roster(space.space, vec![ev.encode()])
            .await
            .unwrap();
        space.events.push(ev);
    }
    let mut keys = Keyring::new();
    keys.insert(KeyId::Epoch(0), space.epoch.clone());
    let exchange = EntryId(random16());
    let sealed = |chain: &mut Chain| {
        let env = chain.next(&space, b"a sealed answer, opaque to the relay");
        let hold = attune_crypto::seal_hold(
            &keys,
            &space.space,
            &exchange,
            &env.header.entry,
            &SymmetricKey::generate(),
        )
        .unwrap();
        (env.encode(), hold.encode())
    };
    let served = |page: &attune_proto::api::Page| -> (usize, usize) {
        let reveals = page.envelopes.iter().filter(|e| e.is_reveal()).count();
        (page.envelopes.len() - reveals, reveals)
    };
    // Alex's answer with its hold slot: stored, nothing released.
    let (mut chain_a, mut chain_a2, mut chain_b) =
        (Chain::new(&a), Chain::new(&a2), Chain::new(&b));
    let (env, hold) = sealed(&mut chain_a);
    ca.append_with_holds(space.space, vec![env], vec![hold])
        .await
        .unwrap();
    assert_eq!(served(&cb.pull(space.space, 0, 100).await.unwrap()), (1, 0));
    // Alex's other device answering too is the same member: still held.
    let (env, hold) = sealed(&mut chain_a2);
    ca2.append_with_holds(space.space, vec![env], vec![hold])
        .await
        .unwrap();
    assert_eq!(served(&cb.pull(space.space, 0, 100).await.unwrap()), (2, 0));
    // Sam's envelope with a random slot (any other item) releases nothing.
    let plain = chain_b.next(&space, b"an answer with no held reveal");
    cb.append(space.space, vec![plain.encode()]).await.unwrap();
    assert_eq!(served(&cb.pull(space.space, 0, 100).await.unwrap()), (3, 0));
    // Every envelope comes with exactly one slot of 104 bytes.
    let (_, stray) = sealed(&mut Chain::new(&b));
    let other = chain_b.next(&space, b"another envelope");
    for holds in [
        vec![],
        vec![stray.clone(), stray.clone()],
        vec![stray[1..].to_vec()],
    ] {
        let err = cb
            .append_with_holds(space.space, vec![other.encode()], holds)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(attune_proto::api::codes::BAD_REQUEST));
    }
    // Sam's sealed answer with its slot: all three are released, after every
    // sealed answer, in the same pull for both.
    chain_b.seq -= 1;
    chain_b.prev = plain.hash();
    let (env, hold) = sealed(&mut chain_b);
    cb.append_with_holds(space.space, vec![env], vec![hold])
        .await
        .unwrap();
    for client in [&ca, &cb] {
        let page = client.pull(space.space, 0, 100).await.unwrap();
        assert_eq!(served(&page), (4, 3));
        let first_reveal = page.envelopes.iter().position(|e| e.is_reveal()).unwrap();
        assert_eq!(first_reveal, 4, "reveals come after the sealed answers");
    }
}

fn today(who: &Attune) -> serde_json::Value {
    who.run(&["today", "--json"]).ok().json()
}

fn reasons(v: &serde_json::Value) -> Vec<String> {
    v["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["reason"].as_str().unwrap().to_string())
        .collect()
}

/// `today` lists exercises waiting for one's answer, says what one waits for,
/// and on the first day of a month with no history suggests no report of it.
#[test]
fn today_is_the_evenings_list() {
    let c = Couple::new(&[]);
    // 2026-07-01T10:00Z: the first of the month, and nothing happened in June.
    let t: i64 = 1_782_900_000_000;
    let alex = at(&c.a, "UTC", t);
    let sam = at(&c.b, "UTC", t + HOUR);
    let v = today(&alex);
    assert_eq!(v["today"], "2026-07-01", "{v:#}");
    let due = reasons(&v);
    assert!(due.contains(&"your daily check-in".to_string()), "{v:#}");
    assert!(
        !due.iter().any(|r| r.contains("state of the union")),
        "no report for an empty month: {v:#}"
    );
    let ask = alex.run(&["ask", "question", "What felt easy today?"]).ok();
    let id = ask
        .stdout
        .split("attune answer ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .unwrap()
        .trim_matches('`')
        .to_string();
    assert!(reasons(&today(&alex))
        .contains(&"the question of the day you started waits for your answer".to_string()));
    sam.run(&["sync"]).ok();
    let v = today(&sam);
    assert!(
        reasons(&v)
            .contains(&"Alex started a question of the day; it waits for your answer".to_string()),
        "{v:#}"
    );
    alex.run(&["answer", &id, "-m", "the walk home"]).ok();
    let v = today(&alex);
    assert!(!reasons(&v).iter().any(|r| r.contains("question")), "{v:#}");
    assert!(
        v["waiting"]
            .as_array()
            .unwrap()
            .iter()
            .any(|w| w == "waiting for Sam's answer to the question of the day"),
        "{v:#}"
    );
    let text = alex.run(&["today"]).ok().stdout;
    assert!(
        text.contains("waiting for Sam's answer to the question of the day"),
        "{text}"
    );
    sam.run(&["sync"]).ok();
    assert!(reasons(&today(&sam))
        .contains(&"Alex answered the question of the day; your answer opens both".to_string()));
}
