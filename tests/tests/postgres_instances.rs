//! Several stateless relay instances on one PostgreSQL database: partners
//! reach different instances, and nothing that one instance accepted or
//! refused depends on which one a request reached. Skipped without a test
//! server (`ATTUNE_TEST_POSTGRES`), except under CI, which starts one.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Stdio;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use attune_core::relay::{now_ms, sign_headers};
use attune_crypto::DeviceIdentity;
use attune_proto::api::codes;
use attune_proto::RosterChange;
use attune_tests::{pair_across, pg, random16, Attune, Chain, Relay, TestSpace};

/// Lines a child prints, as they come, each with when it arrived.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> Receiver<(Instant, String)> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    rx
}

/// When the first line containing `needle` arrived (bounded wait).
fn wait_for(rx: &Receiver<(Instant, String)>, needle: &str, within: Duration) -> Instant {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok((at, line)) if line.contains(needle) => return at,
            Ok((_, line)) => seen.push(line),
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {within:?}; got {seen:?}");
}

fn feed_text(who: &Attune) -> String {
    who.run(&["feed", "--json"]).ok().stdout
}

/// Alex uses one instance, Sam the other: they pair through the mailbox
/// across instances, exchange entries both ways, and Sam's `watch` on the
/// second instance shows what Alex sent through the first within a second.
#[test]
fn partners_on_two_instances_pair_exchange_and_watch_each_other() {
    let Some(_) = pg::server() else { return };
    let url = pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let one = Relay::start_postgres(&dir.path().join("one"), &url, &[]);
    let two = Relay::start_postgres(&dir.path().join("two"), &url, &[]);
    let a = Attune::new(&dir.path().join("a"));
    let b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair_across(&a, &b, &one.url, &two.url);

    a.run(&["journal", "-m", "sent through the first instance"])
        .ok();
    b.run(&["sync"]).ok();
    assert!(feed_text(&b).contains("sent through the first instance"));
    b.run(&["journal", "-m", "sent through the second instance"])
        .ok();
    a.run(&["sync"]).ok();
    assert!(feed_text(&a).contains("sent through the second instance"));

    let mut watch = b
        .command(&["watch", "--seconds", "60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(watch.stdout.take().unwrap());
    let err = lines_of(watch.stderr.take().unwrap());
    wait_for(&err, "watching", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(300));
    let mut delays = Vec::new();
    for i in 0..3 {
        let text = format!("streamed across instances {i}");
        // From before Alex's command starts: an upper bound that includes
        // sealing and sending, not only the hop between instances.
        let started = Instant::now();
        a.run(&["journal", "-m", &text]).ok();
        let shown = wait_for(&out, &text, Duration::from_secs(10));
        delays.push(shown.saturating_duration_since(started));
    }
    let _ = watch.kill();
    let _ = watch.wait();
    println!("watch on the other instance showed each entry after {delays:?}");
    for d in &delays {
        assert!(
            *d < Duration::from_secs(1),
            "an entry took {d:?} to reach a watch on the other instance"
        );
    }
}

/// What one instance learnt holds on the other at once: a revocation taken by
/// the first is enforced by the second, a request delivered to one is a
/// replay on the other, and a device's rate budget is one budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revocation_a_replay_and_a_rate_budget_hold_across_instances() {
    let Some(_) = pg::server() else { return };
    let url = pg::fresh_database();
    let dir = tempfile::tempdir().unwrap();
    let limits = ["--rate", "0.2", "--burst", "6"];
    let one = Relay::start_postgres(&dir.path().join("one"), &url, &limits);
    let two = Relay::start_postgres(&dir.path().join("two"), &url, &limits);

    let a = DeviceIdentity::generate();
    let laptop = DeviceIdentity::generate();
    let mut space = TestSpace::new(&a);
    let member = match space.events[0].event.change {
        RosterChange::Create { member, .. } => member,
        _ => unreachable!(),
    };
    one.client(&a)
        .create_space(space.create_event())
        .await
        .unwrap();
    let link = space.next_event(
        &a,
        RosterChange::Link {
            member,
            device: laptop.public(),
        },
    );
    one.client(&a)
        .append_roster(space.space, vec![link.encode()])
        .await
        .unwrap();
    space.events.push(link);

    // The laptop writes through the second instance (which caches the roster).
    let mut chain = Chain::new(&laptop);
    two.client(&laptop)
        .append(space.space, vec![chain.next(&space, b"one").encode()])
        .await
        .unwrap();
    // Revoked through the first instance ...
    let revoke = space.next_event(
        &a,
        RosterChange::Revoke {
            device: laptop.id(),
            last_seq: 1,
        },
    );
    one.client(&a)
        .append_roster(space.space, vec![revoke.encode()])
        .await
        .unwrap();
    // ... it is refused by the second at once.
    let err = two
        .client(&laptop)
        .append(space.space, vec![chain.next(&space, b"two").encode()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::DEVICE_REVOKED));
    let err = two
        .client(&laptop)
        .pull(space.space, 0, 10)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::DEVICE_REVOKED));

    // A request delivered to one instance is a replay on the other.
    let path = format!("/v1/spaces/{}/roster", space.space);
    let headers = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
    let get = |relay: &Relay| {
        let mut req = reqwest::Client::new().get(format!("{}{path}", relay.url));
        for (k, v) in &headers {
            req = req.header(*k, v.clone());
        }
        req.send()
    };
    assert_eq!(get(&one).await.unwrap().status(), 200);
    let replayed = get(&two).await.unwrap();
    assert_eq!(replayed.status(), 401);
    let body: serde_json::Value = replayed.json().await.unwrap();
    assert_eq!(body["error"]["code"], codes::REPLAYED_REQUEST);

    // One budget: a burst of 6, of which a's requests above used 4 (creation,
    // link, revocation, the delivered GET; the replay was refused before it
    // paid). Per-instance budgets would let the second instance take 3 more.
    let mut statuses = Vec::new();
    for i in 0..6 {
        let relay = if i % 2 == 0 { &one } else { &two };
        let headers = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
        let mut req = reqwest::Client::new().get(format!("{}{path}", relay.url));
        for (k, v) in &headers {
            req = req.header(*k, v.clone());
        }
        statuses.push(req.send().await.unwrap().status().as_u16());
    }
    assert_eq!(statuses, [200, 200, 429, 429, 429, 429]);
}
