//! End-to-end tests of the smaller breaks of the evening ritual (issue 12, item 6),
//! with the real `attune` binary against the real `attune-relay` binary, homes on
//! 127.0.0.1:
//!
//! 1. a held (`journal --send-after`) entry keeps one id from the moment it is
//!    written: `show`, `edit` and `delete` find it while it is held, and it is
//!    sent under that id;
//! 2. `mark` takes only the partner's revealed answer, once;
//! 3. the 30-day challenge started on one device shows on the member's other device;
//! 4. after the partner's `leave`, `sync` and `watch` say so plainly, offer the
//!    export, and stop;
//! 5. the Markdown export of a week of use, against a golden file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use attune_tests::{Attune, Couple, Run};
use serde_json::Value;

// ---------------------------------------------------------------------------
// helpers

/// A fixed moment: 2026-03-02 08:00 UTC (a Monday).
const T0: i64 = 1_772_438_400_000;
const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;

/// `who` with its clock set to `ms` (the `ATTUNE_TEST_NOW_MS` clock) and UTC as
/// the local time zone.
fn at(who: &Attune, ms: i64) -> Attune {
    let mut w = who.clone();
    w.env
        .retain(|(k, _)| k != "ATTUNE_TEST_NOW_MS" && k != "TZ");
    w.env.push(("ATTUNE_TEST_NOW_MS".into(), ms.to_string()));
    w.env.push(("TZ".into(), "UTC".into()));
    w
}

fn sync(who: &Attune) {
    let run = who.run(&["sync"]);
    assert_eq!(run.code, 0, "sync failed: {run:?}");
}

/// `feed --json` entries, after checking there is no integrity problem.
fn feed(who: &Attune) -> Vec<Value> {
    let run = who.run(&["feed", "--json"]).ok();
    let doc = run.json();
    assert_eq!(doc["problems"], serde_json::json!([]), "{doc:#}");
    doc["entries"].as_array().unwrap().clone()
}

/// The id of the one feed entry of `author` ("me" or "partner") and `kind`.
fn id_of(who: &Attune, author: &str, kind: &str) -> String {
    let entries = feed(who);
    let found: Vec<&Value> = entries
        .iter()
        .filter(|e| e["author"] == author && e["kind"] == kind)
        .collect();
    assert_eq!(found.len(), 1, "one {author} {kind} in {entries:#?}");
    found[0]["id"].as_str().unwrap().to_string()
}

/// A refusal: non-zero status, and stderr says `why`.
fn refused(run: Run, why: &str) {
    assert_ne!(run.code, 0, "expected a refusal ({why}): {run:?}");
    assert!(
        run.stderr.contains(why),
        "expected {why:?} in stderr: {run:?}"
    );
}

/// The short id `ask` prints: `started (abcd1234); ...`.
fn started_id(run: &Run) -> String {
    let start = run.stdout.find("started (").expect("an exercise id") + "started (".len();
    run.stdout[start..].split(')').next().unwrap().to_string()
}

/// The id a `journal` run prints last, in parentheses.
fn printed_id(run: &Run) -> String {
    let out = run.stdout.trim();
    let open = out.rfind('(').unwrap_or_else(|| panic!("no id in {out:?}"));
    let id: String = out[open + 1..]
        .chars()
        .take_while(char::is_ascii_hexdigit)
        .collect();
    assert_eq!(id.len(), 32, "an id is 16 bytes of hex: {out:?}");
    id
}

// ---------------------------------------------------------------------------
// 1. held entries

#[test]
fn a_held_entry_keeps_its_id_and_can_be_shown_edited_and_deleted_while_held() {
    let c = Couple::new(&[]);
    let a = at(&c.a, T0);
    let held = a
        .run(&[
            "journal",
            "--send-after",
            "2h",
            "-m",
            "I was hurt when you left early",
        ])
        .ok();
    assert!(held.stdout.contains("held on this device"), "{held:?}");
    let id = printed_id(&held);
    let short = &id[..8];

    // While held: shown by its id (or a prefix), marked as held.
    let shown = a.run(&["show", short]).ok();
    assert!(shown.stdout.contains("I was hurt"), "{shown:?}");
    assert!(shown.stdout.contains("held here until"), "{shown:?}");
    assert!(shown.stdout.contains(&id), "{shown:?}");
    let doc = a.run(&["show", &id, "--json"]).ok().json();
    assert_eq!(doc["id"], id.as_str());
    assert_eq!(doc["held"], true);
    assert_eq!(doc["send_at"], T0 + 2 * HOUR);
    // Edited while held: the new text waits in its place, under the same id.
    let edited = a
        .run(&["edit", short, "-m", "I felt alone when you left early"])
        .ok();
    assert!(edited.stdout.contains("still held"), "{edited:?}");
    let doc = a.run(&["show", short, "--json"]).ok().json();
    assert_eq!(doc["text"], "I felt alone when you left early");
    assert_eq!(doc["send_at"], T0 + 2 * HOUR, "an edit keeps the time");

    // A second held entry, deleted while held: never sent.
    let other = printed_id(
        &a.run(&[
            "journal",
            "--send-after",
            "1h",
            "-m",
            "never mind, forget it",
        ])
        .ok(),
    );
    let deleted = a.run(&["delete", &other[..8]]).ok();
    assert!(deleted.stdout.contains("never sent"), "{deleted:?}");
    refused(a.run(&["show", &other[..8]]), "no item with id");
    let status = a.run(&["status", "--json"]).ok().json();
    let held_ids: Vec<&str> = status["held"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["id"].as_str().unwrap())
        .collect();
    assert_eq!(held_ids, vec![id.as_str()]);

    // Its time comes: it is sent under the id it was held as, with the edit.
    let later = at(&c.a, T0 + 3 * HOUR);
    sync(&later);
    let mine = feed(&later);
    assert_eq!(mine.len(), 1, "{mine:#?}");
    assert_eq!(mine[0]["id"], id.as_str());
    assert_eq!(mine[0]["text"], "I felt alone when you left early");
    assert_eq!(mine[0]["at"], T0 + 2 * HOUR);
    let shown = later.run(&["show", short, "--json"]).ok().json();
    assert_eq!(shown["id"], id.as_str());
    assert!(shown.get("held").is_none(), "{shown:#}");
    let b = at(&c.b, T0 + 3 * HOUR);
    sync(&b);
    let theirs = feed(&b);
    assert_eq!(
        theirs.len(),
        1,
        "only the entry that was not deleted: {theirs:#?}"
    );
    assert_eq!(theirs[0]["id"], id.as_str());
    assert_eq!(theirs[0]["text"], "I felt alone when you left early");
}

// ---------------------------------------------------------------------------
// 2. marks

#[test]
fn mark_takes_only_the_partners_revealed_answer_and_only_once() {
    let c = Couple::new(&[]);
    let (a, b) = (at(&c.a, T0), at(&c.b, T0 + MIN));
    let id = started_id(
        &a.run(&["ask", "question", "What made you laugh this week?"])
            .ok(),
    );
    a.run(&["answer", &id, "-m", "your impression of the cat"])
        .ok();
    sync(&b);
    b.run(&["answer", &id, "-m", "the cat's face"]).ok();
    // Sealed check-ins of the same moment, with a guess.
    a.run(&["checkin", "--mood", "6", "--guess-mood", "5"]).ok();
    b.run(&["checkin", "--mood", "5", "--guess-mood", "7"]).ok();
    for _ in 0..2 {
        sync(&a);
        sync(&b);
    }
    let entries = feed(&a);
    let sams = entries
        .iter()
        .find(|e| e["author"] == "partner" && e["kind"] == "answer")
        .unwrap();
    assert_eq!(sams["revealed"], true, "{sams:#}");

    refused(
        a.run(&["mark", &id, "accurate"]),
        "that is the exercise itself",
    );
    refused(
        a.run(&["mark", &id_of(&a, "me", "answer"), "accurate"]),
        "that is your own answer",
    );
    refused(
        a.run(&["mark", &id_of(&a, "me", "checkin"), "accurate"]),
        "that is your own check-in",
    );
    // The refusals name the answer that can be marked.
    let sams_id = sams["id"].as_str().unwrap().to_string();
    let hint = a.run(&["mark", &id, "accurate"]);
    assert!(
        hint.stderr
            .contains(&format!("attune mark {}", &sams_id[..8])),
        "{hint:?}"
    );

    let marked = a
        .run(&["mark", &sams_id[..8], "accurate", "-m", "yes"])
        .ok();
    assert!(
        marked.stdout.contains("marked Sam's answer accurate"),
        "{marked:?}"
    );
    refused(
        a.run(&["mark", &sams_id, "inaccurate"]),
        "you already marked Sam's answer accurate",
    );
    // Nothing but the one mark was written, and Sam sees it.
    let marks: Vec<Value> = feed(&a)
        .into_iter()
        .filter(|e| e["kind"] == "mark")
        .collect();
    assert_eq!(marks.len(), 1, "{marks:#?}");
    sync(&a);
    sync(&b);
    let seen: Vec<Value> = feed(&b)
        .into_iter()
        .filter(|e| e["kind"] == "mark")
        .collect();
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["accurate"], true);
    assert_eq!(seen[0]["author"], "partner");
    assert!(seen[0].get("ignored").is_none(), "{seen:#?}");

    // The Markdown export keeps the check-ins with both guesses and how close
    // they were, and the mark with the answer it marks.
    let md = a.run(&["export", "--format", "markdown"]).ok().stdout;
    for line in [
        "> - guessed Sam: mood 5\n> - how close: mood exactly right",
        "> - guessed Alex: mood 7\n> - how close: mood off by 1",
        "> - Alex marked Sam's answer accurate: yes",
    ] {
        assert!(md.contains(line), "{line:?} is not in:\n{md}");
    }
}

// ---------------------------------------------------------------------------
// 3. the challenge on each of one's devices

/// Links a second device for the member of `first` (as linking by code does):
/// a new identity in `home`, a `Link` roster event signed by `first`, and the
/// member's keys (epoch and member-private) on the new device.
fn link_device(first: &Attune, home: &std::path::Path, name: &str) -> Attune {
    use attune_core::profile::Profile;
    use attune_proto::{KeyId, RosterChange, RosterEvent, SignedRosterEvent};
    let second = Attune {
        home: home.to_path_buf(),
        env: first.env.clone(),
    };
    second.init(name);
    let one = Profile::open(&first.home).unwrap();
    let mut two = Profile::open(&second.home).unwrap();
    let space = one.space().unwrap();
    let member = one.member().unwrap();
    let relay = one.relay().unwrap();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut events = rt.block_on(relay.roster(space)).unwrap();
    let last = SignedRosterEvent::decode(events.last().unwrap()).unwrap();
    let link = one.identity.sign_roster_event(RosterEvent {
        space,
        seq: last.event.seq + 1,
        prev: last.hash(),
        signer: one.identity.id(),
        legacy_at: None,
        change: RosterChange::Link {
            member,
            device: two.identity.public(),
        },
    });
    rt.block_on(relay.append_roster(space, vec![link.encode()]))
        .unwrap();
    events.push(link.encode());
    let ids: Vec<KeyId> = one.keys.ids().copied().collect();
    for id in ids {
        if matches!(id, KeyId::Epoch(_) | KeyId::MemberPrivate(_)) {
            two.keys.insert(id, one.keys.get(&id).unwrap().clone());
        }
    }
    two.keys.set_member(member);
    two.save_keys().unwrap();
    two.db.set_roster(&events, two.now()).unwrap();
    two.db
        .set("relay", &one.relay_url().unwrap().unwrap())
        .unwrap();
    two.db.set("member", &hex::encode(member.0)).unwrap();
    two.db
        .set("partner_name", &one.partner_name().unwrap().unwrap())
        .unwrap();
    two.db.set("space", &space.to_hex()).unwrap();
    second
}

/// The challenge's first day as `who`'s profile reads it.
fn challenge_start(who: &Attune) -> Option<String> {
    let p = attune_core::profile::Profile::open(&who.home).unwrap();
    p.challenge_start()
        .unwrap()
        .map(|d| d.format("%Y-%m-%d").to_string())
}

/// The `today --json` steps that belong to the challenge.
fn challenge_steps(who: &Attune) -> Vec<String> {
    let doc = who.run(&["today", "--json"]).ok().json();
    doc["due"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.to_string())
        .filter(|d| d.contains("30-day empathy challenge"))
        .collect()
}

#[test]
fn the_challenge_started_on_one_device_runs_on_the_members_other_device() {
    let c = Couple::new(&[]);
    let a = at(&c.a, T0);
    let laptop = at(&link_device(&c.a, &c.dir.path().join("a2"), "Alex"), T0);
    sync(&a);
    sync(&laptop);
    assert_eq!(challenge_start(&laptop), None);
    assert!(challenge_steps(&laptop).is_empty());

    let started = a.run(&["challenge", "start"]).ok();
    assert!(
        !started.stderr.contains("warning"),
        "sent at once: {started:?}"
    );
    assert_eq!(challenge_start(&a).as_deref(), Some("2026-03-02"));
    // Alex's other device learns of it at its next sync, and shows the same day.
    let next_day = at(&laptop.clone(), T0 + 24 * HOUR);
    sync(&next_day);
    assert_eq!(challenge_start(&next_day).as_deref(), Some("2026-03-02"));
    let steps = challenge_steps(&next_day);
    assert_eq!(steps.len(), 1, "{steps:?}");
    assert!(steps[0].contains("day 2 of 30"), "{steps:?}");
    // Sam's device holds the item but cannot read it, and has no challenge.
    let b = at(&c.b, T0 + 24 * HOUR);
    sync(&b);
    assert_eq!(challenge_start(&b), None);
    assert!(feed(&b).is_empty(), "nothing of it shows to Sam");
    assert!(feed(&next_day).is_empty(), "nor in Alex's own timeline");

    // Stopped on the second device: stopped on the first too.
    next_day.run(&["challenge", "stop"]).ok();
    sync(&a);
    assert_eq!(challenge_start(&a), None);
    assert!(challenge_steps(&a).is_empty());
}

// ---------------------------------------------------------------------------
// 4. a partner who left

/// A running `attune watch`: its stderr lines as they come, and the process.
struct Watch {
    child: std::process::Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watch {
    fn start(who: &Attune) -> Watch {
        let mut child = who
            .command(&["watch"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("attune watch starts");
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Watch {
            child,
            lines,
            seen: vec![],
        }
    }

    /// Waits up to `limit` for a stderr line containing `text`.
    fn wait_for(&mut self, text: &str, limit: Duration) -> bool {
        let end = Instant::now() + limit;
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return true;
                    }
                }
                Err(_) => return false,
            }
        }
        false
    }

    /// Waits up to `limit` for the process to end; its status code.
    fn exit_within(&mut self, limit: Duration) -> Option<i32> {
        let end = Instant::now() + limit;
        while Instant::now() < end {
            if let Ok(Some(status)) = self.child.try_wait() {
                while let Ok(line) = self.lines.recv_timeout(Duration::from_millis(200)) {
                    self.seen.push(line);
                }
                return Some(status.code().unwrap_or(-1));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What the remaining partner is told: who erased the space, the export, no retry.
fn says_erased(text: &str) {
    assert!(
        text.contains("the relay no longer has your shared space: Sam erased it"),
        "{text}"
    );
    assert!(
        text.contains("attune export --format markdown --out attune.md"),
        "{text}"
    );
    assert!(!text.contains("again later"), "{text}");
}

#[test]
fn after_the_partner_leaves_sync_and_watch_say_so_offer_the_export_and_stop() {
    let c = Couple::new(&[]);
    let (a, b) = (&c.a, &c.b);
    a.run(&["journal", "-m", "our first week"]).ok();
    sync(a);
    sync(b);
    let mut watching = Watch::start(a);
    assert!(
        watching.wait_for("watching for", Duration::from_secs(30)),
        "{:?}",
        watching.seen
    );

    b.run(&["leave", "--yes"]).ok();

    // The running watch notices, says so and ends, with a failure status.
    let code = watching.exit_within(Duration::from_secs(20));
    let said = watching.seen.join("\n");
    assert!(
        code.is_some_and(|c| c != 0),
        "watch kept going: {code:?}\n{said}"
    );
    says_erased(&said);
    assert!(!said.contains("trying again"), "{said}");

    // `sync` fails with the same words, at once, every time.
    for _ in 0..2 {
        let started = Instant::now();
        let run = a.run(&["sync"]);
        assert_ne!(run.code, 0, "{run:?}");
        says_erased(&run.stderr);
        assert!(started.elapsed() < Duration::from_secs(10), "{run:?}");
    }
    // A new `watch` does not start retrying either.
    let run = a.run(&["watch", "--seconds", "60"]);
    assert_ne!(run.code, 0, "{run:?}");
    says_erased(&run.stderr);
    // Writing still works here, and says it stays here.
    let run = a.run(&["journal", "-m", "written after"]).ok();
    assert!(run.stderr.contains("kept on this device only"), "{run:?}");
    says_erased(&run.stderr);
    // The export it offers holds what this device has.
    let md = a.run(&["export", "--format", "markdown"]).ok().stdout;
    assert!(md.contains("our first week"), "{md}");
    // And `leave` clears this device too.
    a.run(&["leave", "--yes"]).ok();
    let run = a.run(&["sync"]);
    assert!(run.stderr.contains("not paired"), "{run:?}");
}

// ---------------------------------------------------------------------------
// 5. the Markdown export of a week, against a golden file

/// Where the golden files live.
fn golden(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("golden")
        .join(name)
}

/// Replaces what changes from run to run (32-digit hex ids) with `<id>`.
fn normalised(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    for ch in text.chars().chain(std::iter::once('\n')) {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
            continue;
        }
        out.push_str(if run.len() == 32 { "<id>" } else { &run });
        run.clear();
        out.push(ch);
    }
    out.pop();
    out
}

/// One step of the week: `who` runs `args` at `ms`, then both partners sync.
fn step(c: &Couple, alex: bool, ms: i64, args: &[&str]) -> Run {
    let (who, other) = if alex { (&c.a, &c.b) } else { (&c.b, &c.a) };
    let run = at(who, ms).run(args).ok();
    sync(&at(who, ms + 1000));
    sync(&at(other, ms + 2000));
    run
}

/// The id of the newest feed entry of `kind` by `author`, as `who` sees it.
fn newest_id(who: &Attune, author: &str, kind: &str) -> String {
    feed(who)
        .iter()
        .rev()
        .find(|e| e["author"] == author && e["kind"] == kind)
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap_or_else(|| panic!("no {author} {kind}"))
}

#[test]
fn the_markdown_export_of_a_week_matches_the_golden_file() {
    let c = Couple::new(&[]);
    let day = |n: i64, hour: i64, min: i64| T0 - 8 * HOUR + n * 24 * HOUR + hour * HOUR + min * MIN;
    // Monday: open check-ins, a journal entry.
    step(
        &c,
        true,
        day(0, 20, 0),
        &[
            "checkin",
            "--open",
            "--mood",
            "7",
            "--feel",
            "calm,hopeful",
            "--high",
            "the long walk",
            "--low",
            "traffic",
            "--need",
            "listen",
        ],
    );
    step(
        &c,
        false,
        day(0, 20, 30),
        &["checkin", "--open", "--mood", "5", "--feel", "tired"],
    );
    step(
        &c,
        true,
        day(0, 21, 0),
        &[
            "journal",
            "-m",
            "Dinner was quiet. I want to ask about Sam's week.",
        ],
    );
    // Tuesday: a reflect-back loop, corrected once, then confirmed.
    step(
        &c,
        false,
        day(1, 9, 0),
        &[
            "journal",
            "-m",
            "Work was heavy today.\nI did not say much at dinner.",
        ],
    );
    let sams = newest_id(&c.a, "partner", "journal");
    step(
        &c,
        true,
        day(1, 12, 0),
        &[
            "reflect",
            &sams,
            "-m",
            "It sounds like work weighed on you and you needed quiet.",
        ],
    );
    let reflection = newest_id(&c.b, "partner", "reflect");
    step(
        &c,
        false,
        day(1, 13, 0),
        &[
            "correct",
            &reflection,
            "-m",
            "Not only quiet: I wanted you to ask.",
        ],
    );
    let correction = newest_id(&c.a, "partner", "correct");
    step(
        &c,
        true,
        day(1, 14, 0),
        &[
            "reflect",
            &correction,
            "-m",
            "You wanted me to ask how you were.",
        ],
    );
    let again = newest_id(&c.b, "partner", "reflect");
    step(&c, false, day(1, 15, 0), &["confirm", &again]);
    // Wednesday: an exercise both answer, and each marks the other's answer.
    let asked = step(
        &c,
        true,
        day(2, 19, 0),
        &[
            "ask",
            "perspective-swap",
            "Our talk about the holidays: what did the other feel?",
        ],
    );
    let exercise = started_id(&asked);
    step(
        &c,
        true,
        day(2, 19, 30),
        &[
            "answer",
            &exercise,
            "-m",
            "Worried about money, and unheard.",
        ],
    );
    step(
        &c,
        false,
        day(2, 20, 0),
        &["answer", &exercise, "-m", "Left out of the plans."],
    );
    for i in 0..2 {
        sync(&at(&c.a, day(2, 20, 10 + i)));
        sync(&at(&c.b, day(2, 20, 15 + i)));
    }
    let alexs = newest_id(&c.b, "partner", "answer");
    step(
        &c,
        false,
        day(2, 21, 0),
        &["mark", &alexs, "accurate", "-m", "yes, that was it"],
    );
    let sams_answer = newest_id(&c.a, "partner", "answer");
    step(
        &c,
        true,
        day(2, 21, 5),
        &[
            "mark",
            &sams_answer,
            "inaccurate",
            "-m",
            "more tired than left out",
        ],
    );
    // Thursday: a pause, and back early.
    step(
        &c,
        true,
        day(3, 20, 0),
        &[
            "timeout",
            "20m",
            "-m",
            "I need a short break; I'm coming back",
        ],
    );
    step(&c, true, day(3, 20, 10), &["resume"]);
    // Thursday evening: sealed check-ins, each guessing the other first; the
    // second opens both.
    step(
        &c,
        true,
        day(3, 21, 0),
        &[
            "checkin",
            "--mood",
            "4",
            "--feel",
            "anxious,tired",
            "--guess-mood",
            "6",
            "--guess-feel",
            "tired",
        ],
    );
    step(
        &c,
        false,
        day(3, 21, 30),
        &[
            "checkin",
            "--mood",
            "6",
            "--feel",
            "calm",
            "--low",
            "a long meeting",
            "--guess-mood",
            "5",
            "--guess-feel",
            "anxious",
        ],
    );
    // Friday: appreciations, and a private note.
    step(
        &c,
        false,
        day(4, 10, 0),
        &["appreciate", "the way you listened on Tuesday"],
    );
    step(
        &c,
        true,
        day(4, 11, 0),
        &[
            "journal",
            "--private",
            "-m",
            "Note to self: ask before advising.",
        ],
    );
    step(
        &c,
        true,
        day(4, 12, 0),
        &["appreciate", "you made tea without asking"],
    );
    // Friday evening: Alex's sealed check-in, which Sam never answers.
    step(
        &c,
        true,
        day(4, 22, 0),
        &["checkin", "--mood", "3", "--guess-mood", "5"],
    );
    // Saturday: a journal entry, edited.
    step(&c, true, day(5, 18, 0), &["journal", "-m", "A draft"]);
    let draft = newest_id(&c.a, "me", "journal");
    step(
        &c,
        true,
        day(5, 18, 30),
        &["edit", &draft, "-m", "We laughed a lot at the market."],
    );
    // Sunday: Sam's check-in.
    step(
        &c,
        false,
        day(6, 21, 0),
        &[
            "checkin",
            "--open",
            "--mood",
            "8",
            "--feel",
            "grateful",
            "--appreciate",
            "a calm weekend",
        ],
    );

    let alex = at(&c.a, day(7, 8, 0));
    let md = alex.run(&["export", "--format", "markdown"]).ok().stdout;
    // What must never be there, whatever the golden file says.
    for internal in ["answer_key", "reveal", "sealed", "`attune", "answer with"] {
        assert!(
            !md.contains(internal),
            "the export shows {internal:?}:\n{md}"
        );
    }
    assert!(md.contains("— Alex: journal (private)"), "{md}");
    // Both guesses of the sealed evening, and how close each was.
    assert!(md.contains("- how close: mood exactly right"), "{md}");
    assert!(md.contains("- how close: mood off by 1"), "{md}");
    let path = golden("export_week.md");
    let got = normalised(&md);
    if std::env::var_os("ATTUNE_UPDATE_GOLDEN").is_some() {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, &got).unwrap();
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (ATTUNE_UPDATE_GOLDEN=1 writes it)", path.display()));
    assert_eq!(
        got,
        want,
        "the export differs from {} (ATTUNE_UPDATE_GOLDEN=1 rewrites it; review the diff)",
        path.display()
    );
    // The JSON export says how many items it wrote, and wrote that many.
    let out = c.dir.path().join("week.json");
    let run = alex.run(&["export", "--out", out.to_str().unwrap()]).ok();
    let doc: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    let n = doc["entries"].as_array().unwrap().len();
    assert!(
        run.stderr.contains(&format!("wrote {n} items")),
        "{n} entries: {run:?}"
    );
    let kinds: Vec<&str> = doc["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    for internal in ["answer_key", "reveal", "edit", "delete", "challenge"] {
        assert!(!kinds.contains(&internal), "{kinds:?}");
    }
}
