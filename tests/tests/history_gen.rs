//! `attune-bench history`: a generated history is served by the real relay
//! binary on its database, at the address the profiles point at, and both
//! partners' real `attune` binaries sync it cleanly and see what was planned.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use attune_tests::{bin, Attune, Relay};
use serde_json::Value;

const ENTRIES: usize = 240;

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port");
    l.local_addr().expect("its address").port()
}

fn count(db: &Path, sql: &str) -> i64 {
    let conn =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .expect("database opens");
    conn.query_row(sql, [], |r| r.get(0)).expect("count")
}

fn kind_count(map: &Value, kind: &str) -> usize {
    map[kind].as_u64().unwrap_or(0) as usize
}

/// Entries in a feed, by (author, kind), plus how many are revealed, deleted,
/// private, pending or refused.
fn tally(feed: &Value) -> BTreeMap<String, usize> {
    let mut t = BTreeMap::new();
    for e in feed["entries"].as_array().expect("entries") {
        let author = e["author"].as_str().unwrap_or("?");
        let kind = e["kind"].as_str().unwrap_or("?");
        *t.entry(format!("{author} {kind}")).or_default() += 1;
        for flag in ["revealed", "deleted", "private", "pending", "refused"] {
            if e[flag] == Value::Bool(true) {
                *t.entry(format!("{author} {flag}")).or_default() += 1;
                if flag == "private" {
                    *t.entry(format!("{author} {kind} private")).or_default() += 1;
                }
            }
        }
    }
    t
}

#[test]
fn a_generated_history_syncs_cleanly_on_the_real_relay() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("history");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let out = Command::new(bin("attune-bench"))
        .args([
            "history",
            "--entries",
            &ENTRIES.to_string(),
            "--relay",
            &url,
            "--quiet",
        ])
        .arg("--out")
        .arg(&dir)
        .output()
        .expect("attune-bench runs");
    assert!(
        out.status.success(),
        "attune-bench history failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: Value = serde_json::from_slice(
        &std::fs::read(dir.join("history.json")).expect("the manifest is written"),
    )
    .expect("the manifest is JSON");
    assert_eq!(manifest["entries"], ENTRIES);
    assert_eq!(manifest["relay"], url.as_str());
    // A second run refuses to write over it.
    let again = Command::new(bin("attune-bench"))
        .args(["history", "--entries", "10", "--quiet", "--out"])
        .arg(&dir)
        .output()
        .expect("attune-bench runs");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // The relay database holds exactly the history, and so does each profile.
    let relay_db = dir.join("relay.sqlite3");
    assert_eq!(
        count(&relay_db, "SELECT COUNT(*) FROM envelopes"),
        ENTRIES as i64
    );
    for name in ["alex", "sam"] {
        let db = dir.join(name).join("state.sqlite3");
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM received"),
            ENTRIES as i64,
            "{name}"
        );
        assert_eq!(
            count(&db, "SELECT COUNT(*) FROM outbox WHERE acked = 0"),
            0,
            "{name} has nothing waiting"
        );
    }

    let relay = Relay::start_at(&dir, &format!("127.0.0.1:{port}"), &[]);
    assert_eq!(relay.url, url);
    let alex = Attune::new(&dir.join("alex"));
    let sam = Attune::new(&dir.join("sam"));
    for (me, partner, who) in [(&alex, "Sam", "alex"), (&sam, "Alex", "sam")] {
        // Unlocked (no passphrase), paired, pointing at this relay, no problem.
        let status = me.run(&["status", "--json"]).ok().json();
        assert_eq!(status["paired"], true, "{who}");
        assert_eq!(status["partner"], partner, "{who}");
        assert_eq!(status["relay"], url.as_str(), "{who}");
        assert_eq!(status["waiting"], 0, "{who}");
        assert_eq!(status["problems"], Value::Array(vec![]), "{who}: {status}");
        assert!(status["last_sync"].as_i64().is_some(), "{who}");
        // Fully synced: nothing to send, nothing new, every envelope verifies.
        let sync = me.run(&["sync"]).ok();
        assert!(
            sync.stdout.contains("sent 0, received 0"),
            "{who}: {}",
            sync.stdout
        );
        assert!(sync.stderr.is_empty(), "{who}: {}", sync.stderr);
    }

    // Each partner sees what the plan wrote, with every sealed exchange of both
    // revealed.
    let by = &manifest["by_partner"];
    for (me, mine, theirs, who) in [
        (&alex, &by["alex"], &by["sam"], "alex"),
        (&sam, &by["sam"], &by["alex"], "sam"),
    ] {
        let feed = me.run(&["feed", "--json"]).ok().json();
        assert_eq!(feed["problems"], Value::Array(vec![]), "{who}");
        let t = tally(&feed);
        let n = |k: &str| t.get(k).copied().unwrap_or(0);
        let sealed_checkins = |m: &Value| kind_count(m, "check-in (sealed)");
        let open_checkins = |m: &Value| kind_count(m, "check-in (open)");
        let public = |m: &Value| kind_count(m, "journal");
        let private = |m: &Value| kind_count(m, "journal (private)");
        assert_eq!(
            n("me journal"),
            public(mine) + private(mine),
            "{who}: {t:?}"
        );
        assert_eq!(n("me journal private"), private(mine), "{who}: {t:?}");
        // The partner's private entries never reach this device readable.
        assert_eq!(n("partner journal"), public(theirs), "{who}: {t:?}");
        assert_eq!(n("partner private"), 0, "{who}: {t:?}");
        assert_eq!(
            n("me checkin"),
            sealed_checkins(mine) + open_checkins(mine),
            "{who}: {t:?}"
        );
        assert_eq!(
            n("partner checkin"),
            sealed_checkins(theirs) + open_checkins(theirs),
            "{who}: {t:?}"
        );
        assert_eq!(
            n("me answer"),
            kind_count(mine, "exercise answer (sealed)"),
            "{who}: {t:?}"
        );
        assert_eq!(
            n("me exercise") + n("partner exercise"),
            kind_count(mine, "exercise") + kind_count(theirs, "exercise"),
            "{who}: {t:?}"
        );
        assert_eq!(
            n("me appreciation"),
            kind_count(mine, "appreciation"),
            "{who}: {t:?}"
        );
        assert_eq!(n("me deleted"), kind_count(mine, "delete"), "{who}: {t:?}");
        // Each exchange both sealed has one reveal per partner and shows both
        // answers as revealed on both sides.
        let reveals = kind_count(mine, "reveal (released by the relay)");
        assert_eq!(
            reveals,
            kind_count(theirs, "reveal (released by the relay)")
        );
        assert_eq!(n("me revealed"), reveals, "{who}: {t:?}");
        assert_eq!(n("partner revealed"), reveals, "{who}: {t:?}");
        assert_eq!(n("me pending") + n("partner pending"), 0, "{who}: {t:?}");
        assert_eq!(n("me refused") + n("partner refused"), 0, "{who}: {t:?}");
        // A realistic mix: check-ins by both, journals, reveals.
        assert!(
            sealed_checkins(mine) > 0 && public(mine) > 0 && reveals > 0,
            "{who}: {t:?}"
        );
    }

    // The partner's journal the manifest names opens with `show`.
    let id = manifest["journals"]["alex"][0]
        .as_str()
        .expect("a journal id of Alex's");
    let shown = sam.run(&["show", id, "--json"]).ok().json();
    assert_eq!(shown["kind"], "journal");
    assert_eq!(shown["author"], "partner");
    assert!(shown["text"].as_str().is_some_and(|t| !t.is_empty()));

    // Everyday commands work on it and a new item goes through.
    sam.run(&["today"]).ok();
    sam.run(&["stats", "--days", "30"]).ok();
    sam.run(&["journal", "-m", "after the generated history"])
        .ok();
    let sync = alex.run(&["sync"]).ok();
    assert!(sync.stdout.contains("received 1"), "{}", sync.stdout);
    assert_eq!(
        count(&relay_db, "SELECT COUNT(*) FROM envelopes"),
        ENTRIES as i64 + 1
    );
}
