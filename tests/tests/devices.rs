//! Devices and recovery end to end, with the real binaries: a second device that
//! reads the whole history, lists on both sides, revoking a device (it reads
//! nothing new, is told, cannot erase the space), and losing every device and
//! coming back with the recovery code.

use attune_tests::{add_device, Attune, Couple, Run};

fn feed_texts(p: &Attune) -> Vec<String> {
    let feed = p.run(&["feed", "--json"]).ok().json();
    assert_eq!(
        feed["problems"],
        serde_json::json!([]),
        "integrity problems: {feed:#}"
    );
    feed["entries"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .filter_map(|i| i["text"].as_str().map(str::to_string))
        .collect()
}

fn devices(p: &Attune) -> Vec<serde_json::Value> {
    p.run(&["device", "list", "--json"]).ok().json()["devices"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn code_of(run: &Run) -> String {
    run.stdout
        .lines()
        .find_map(|l| l.strip_prefix("recovery code: "))
        .unwrap_or_else(|| panic!("no recovery code line:\n{}", run.stdout))
        .trim()
        .to_string()
}

#[test]
fn a_second_device_reads_everything_and_both_partners_see_it() {
    let c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "private-before-laptop", "--private"])
        .ok();
    c.a.run(&["journal", "-m", "shared-before-laptop"]).ok();
    c.b.run(&["journal", "-m", "from-sam-before"]).ok();
    c.a.run(&["sync"]).ok();
    c.b.run(&["sync"]).ok();

    let laptop = Attune::new(&c.dir.path().join("a-laptop"));
    laptop.init("Alex");
    add_device(&c.a, &laptop, &c.relay.url, "laptop");

    let texts = feed_texts(&laptop);
    for t in [
        "private-before-laptop",
        "shared-before-laptop",
        "from-sam-before",
    ] {
        assert!(
            texts.iter().any(|x| x == t),
            "{t} missing on the laptop: {texts:?}"
        );
    }
    // What the laptop writes, privately or not, reaches the phone; Sam gets the shared one only.
    laptop
        .run(&["journal", "-m", "laptop-private", "--private"])
        .ok();
    laptop.run(&["journal", "-m", "laptop-shared"]).ok();
    c.a.run(&["sync"]).ok();
    c.b.run(&["sync"]).ok();
    let on_phone = feed_texts(&c.a);
    assert!(
        on_phone.iter().any(|t| t == "laptop-private"),
        "{on_phone:?}"
    );
    assert!(on_phone.iter().any(|t| t == "laptop-shared"));
    let on_sam = feed_texts(&c.b);
    assert!(on_sam.iter().any(|t| t == "laptop-shared"));
    assert!(!on_sam
        .iter()
        .any(|t| t == "laptop-private" || t == "private-before-laptop"));

    // Both partners list three devices, two of Alex's; each marks its own.
    for (p, mine) in [(&c.a, 2), (&laptop, 2), (&c.b, 1)] {
        let list = devices(p);
        assert_eq!(list.len(), 3, "{list:?}");
        assert_eq!(list.iter().filter(|d| d["member"] == "me").count(), mine);
        assert_eq!(list.iter().filter(|d| d["this_device"] == true).count(), 1);
    }
    let sam_view = devices(&c.b);
    assert!(sam_view
        .iter()
        .any(|d| d["name"] == "laptop" && d["member"] == "partner"));
    // Sam is told, in the feed and in status.
    let feed = c.b.run(&["feed"]).ok().stdout;
    assert!(feed.contains("added a device 'laptop'"), "{feed}");
    let status = c.b.run(&["status"]).ok().stdout;
    assert!(status.contains("Alex added a device 'laptop'"), "{status}");
    // The safety number says which devices it covers, the same for both.
    let va = c.a.run(&["verify"]).ok().stdout;
    let vb = c.b.run(&["verify"]).ok().stdout;
    assert_eq!(va.lines().next(), vb.lines().next());
    assert!(vb.contains("laptop") && va.contains("laptop"), "{va}\n{vb}");
    let today = c.b.run(&["today"]).ok().stdout;
    assert!(today.contains("Alex added a device"), "{today}");
}

#[test]
fn a_revoked_device_reads_nothing_new_is_told_and_cannot_erase_the_space() {
    let c = Couple::new(&[]);
    let laptop = Attune::new(&c.dir.path().join("a-laptop"));
    laptop.init("Alex");
    add_device(&c.a, &laptop, &c.relay.url, "laptop");
    let id = devices(&c.a)
        .into_iter()
        .find(|d| d["name"] == "laptop")
        .and_then(|d| d["id"].as_str().map(str::to_string))
        .expect("the laptop is listed");

    // Sam cannot revoke Alex's device.
    let refused = c.b.run(&["device", "revoke", &id, "--yes"]);
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("your partner's device"),
        "{}",
        refused.stderr
    );

    let out = c.a.run(&["device", "revoke", &id[..8], "--yes"]).ok();
    assert!(out.stdout.contains("revoked"), "{}", out.stdout);
    c.a.run(&["journal", "-m", "after-revoke-alex", "--private"])
        .ok();
    c.a.run(&["journal", "-m", "after-revoke-shared"]).ok();
    c.b.run(&["sync"]).ok();
    c.b.run(&["journal", "-m", "after-revoke-sam"]).ok();
    c.a.run(&["sync"]).ok();

    // The laptop is refused and says so plainly.
    let sync = laptop.run(&["sync"]);
    assert_ne!(sync.code, 0);
    assert!(sync.stderr.contains("removed"), "{}", sync.stderr);
    let texts = feed_texts(&laptop);
    assert!(
        !texts.iter().any(|t| t.starts_with("after-revoke")),
        "{texts:?}"
    );
    // Sam is unaffected, and reads Alex's new shared entry (new epoch).
    let sam = feed_texts(&c.b);
    assert!(sam.iter().any(|t| t == "after-revoke-shared"), "{sam:?}");
    let alex = feed_texts(&c.a);
    assert!(alex.iter().any(|t| t == "after-revoke-sam"), "{alex:?}");
    assert!(c.b.run(&["feed"]).ok().stdout.contains("removed a device"));
    let listed = devices(&c.b);
    assert!(listed
        .iter()
        .any(|d| d["name"] == "laptop" && d["revoked"] == true));

    // A revoked device cannot erase the space: both partners go on.
    let leave = laptop.run(&["leave", "--yes"]);
    assert_ne!(leave.code, 0);
    assert!(leave.stdout.contains("could not erase"), "{}", leave.stdout);
    c.a.run(&["journal", "-m", "still-here"]).ok();
    c.b.run(&["sync"]).ok();
    assert!(feed_texts(&c.b).iter().any(|t| t == "still-here"));
}

#[test]
fn losing_every_device_and_restoring_from_the_recovery_code() {
    let mut c = Couple::new(&[]);
    for p in [&mut c.a, &mut c.b] {
        p.env
            .push(("ATTUNE_TEST_RECOVERY_KDF".into(), "insecure".into()));
    }
    c.a.run(&["journal", "-m", "private-before-setup", "--private"])
        .ok();
    let setup = c.a.run(&["recovery", "setup"]).ok();
    let first = code_of(&setup);
    assert_eq!(first.replace('-', "").len(), 26, "{first}");
    // A second setup is refused; rotate replaces the code.
    assert_ne!(c.a.run(&["recovery", "setup"]).code, 0);
    let rotated = c.a.run(&["recovery", "rotate"]).ok();
    let code = code_of(&rotated);
    assert_ne!(code, first);
    // Keys made after the setup must come back too: a revocation makes a new epoch.
    let laptop = Attune::new(&c.dir.path().join("a-laptop"));
    laptop.init("Alex");
    add_device(&c.a, &laptop, &c.relay.url, "laptop");
    let laptop_id = devices(&c.a)
        .into_iter()
        .find(|d| d["name"] == "laptop")
        .and_then(|d| d["id"].as_str().map(str::to_string))
        .expect("listed");
    c.a.run(&["device", "revoke", &laptop_id, "--yes"]).ok();
    c.a.run(&["journal", "-m", "private-after-rotation", "--private"])
        .ok();
    c.a.run(&["journal", "-m", "shared-after-rotation"]).ok();
    c.a.run(&["sync"]).ok();
    c.b.run(&["journal", "-m", "sam-writes"]).ok();

    // Alex loses the phone. A blank device with the old code gets nothing.
    let new = Attune::new(&c.dir.path().join("a-new"));
    new.init("Alex");
    let mut with_old = Attune::new(&new.home);
    with_old
        .env
        .push(("ATTUNE_RECOVERY_CODE".into(), first.clone()));
    let refused = with_old.run(&["recovery", "restore", "--relay", &c.relay.url]);
    assert_ne!(refused.code, 0, "{}", refused.stdout);
    let mut typo = Attune::new(&new.home);
    typo.env.push((
        "ATTUNE_RECOVERY_CODE".into(),
        "0000-0000-0000-0000-00000-00000".into(),
    ));
    assert_ne!(
        typo.run(&["recovery", "restore", "--relay", &c.relay.url])
            .code,
        0
    );

    let mut restoring = Attune::new(&new.home);
    restoring
        .env
        .push(("ATTUNE_RECOVERY_CODE".into(), code.clone()));
    restoring
        .run(&[
            "recovery",
            "restore",
            "--relay",
            &c.relay.url,
            "--name",
            "new phone",
            "--revoke-others",
        ])
        .ok();
    let texts = feed_texts(&new);
    for t in [
        "private-before-setup",
        "private-after-rotation",
        "shared-after-rotation",
        "sam-writes",
    ] {
        assert!(
            texts.iter().any(|x| x == t),
            "{t} missing after restore: {texts:?}"
        );
    }
    // Later entries flow both ways.
    new.run(&["journal", "-m", "after-restore"]).ok();
    c.b.run(&["sync"]).ok();
    let sam = c.b.run(&["feed"]).ok().stdout;
    assert!(sam.contains("after-restore"), "{sam}");
    assert!(sam.contains("recovery code"), "{sam}");
    // The old phone was revoked by the restore.
    let old = c.a.run(&["sync"]);
    assert_ne!(old.code, 0);
    assert!(old.stderr.contains("removed"), "{}", old.stderr);
}

/// The revoked device's own keys, used directly on the relay's stored
/// envelopes (as a relay that kept serving it could): nothing written after the
/// revocation opens, while what was written before does.
#[test]
fn a_revoked_devices_keys_open_nothing_written_after_the_revocation() {
    use attune_crypto::{decrypt_envelope, open_keystore, unwrap_key};
    use attune_proto::{Envelope, KeyWrap, Roster, SignedRosterEvent};

    let c = Couple::new(&[]);
    let laptop = Attune::new(&c.dir.path().join("a-laptop"));
    laptop.init("Alex");
    add_device(&c.a, &laptop, &c.relay.url, "laptop");
    c.a.run(&["journal", "-m", "before", "--private"]).ok();
    c.b.run(&["journal", "-m", "before from Sam"]).ok();
    laptop.run(&["sync"]).ok();
    let conn = rusqlite::Connection::open(&c.relay.db).unwrap();
    let last_before: i64 = conn
        .query_row("SELECT MAX(cursor) FROM envelopes", [], |r| r.get(0))
        .unwrap();
    let id = devices(&c.a)
        .into_iter()
        .find(|d| d["name"] == "laptop")
        .and_then(|d| d["id"].as_str().map(str::to_string))
        .unwrap();
    c.a.run(&["device", "revoke", &id, "--yes"]).ok();
    c.a.run(&["journal", "-m", "after, private", "--private"])
        .ok();
    c.a.run(&["journal", "-m", "after, shared"]).ok();
    c.b.run(&["sync"]).ok();
    c.b.run(&["journal", "-m", "after, from Sam"]).ok();
    c.b.run(&["checkin", "--mood", "6", "--open"]).ok();

    let mut stolen = open_keystore(
        &std::fs::read(laptop.home.join("keystore.attune")).unwrap(),
        None,
    )
    .unwrap();
    let events: Vec<SignedRosterEvent> = conn
        .prepare("SELECT event FROM roster ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get::<_, Vec<u8>>(0))
        .unwrap()
        .map(|e| SignedRosterEvent::decode(&e.unwrap()).unwrap())
        .collect();
    let space = events[0].event.space;
    let roster = Roster::verify(space, &events).unwrap();
    // As the thief's copy of attune would: its private keys are Alex's.
    stolen
        .keys
        .set_member(roster.device(&stolen.identity.id()).unwrap().member);
    let rows: Vec<(i64, Vec<u8>)> = conn
        .prepare("SELECT cursor, data FROM envelopes ORDER BY cursor")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let (mut opened_before, mut after) = (0, 0);
    for (cursor, data) in rows {
        let env = Envelope::decode(&data).unwrap();
        let opened = decrypt_envelope(&env, &roster, &stolen.keys);
        // The wraps of the new epoch are sealed under the old one, which the
        // thief holds: it finds only wraps it cannot open inside.
        if let Ok(attune_crypto::Opened {
            content: attune_crypto::Content::KeyWraps(list),
            ..
        }) = &opened
        {
            for wrap in KeyWrap::decode_list(list).unwrap() {
                assert!(
                    unwrap_key(&space, &stolen.identity, &wrap).is_err(),
                    "a key wrap at {cursor} opened with the revoked device's key"
                );
            }
            continue;
        }
        let opened = opened.is_ok();
        if cursor <= last_before {
            opened_before += opened as usize;
        } else {
            after += 1;
            assert!(
                !opened,
                "envelope {cursor}, written after the revocation, opened"
            );
        }
    }
    assert!(
        opened_before >= 3,
        "the laptop could read the history before: {opened_before}"
    );
    assert!(
        after >= 4,
        "enough was written after the revocation to test: {after}"
    );
}
