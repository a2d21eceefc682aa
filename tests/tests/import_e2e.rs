//! `attune import` end to end, with the real `attune` and `attune-relay`
//! binaries: a jrnl file and a Day One file imported into Alex's profile reach
//! the feed with their original dates, private ones never readable by Sam and
//! shared ones readable; importing again adds nothing; attune's own export
//! imported into the same profile adds nothing and skips the partner's
//! entries; another device of the same member recognises an import once it
//! has synced it, and two devices importing the same file unsynced never
//! collide at the relay; offline, entries wait in the outbox; files that
//! cannot be imported say why and change nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use attune_tests::{add_device, Attune, Couple, Run};
use serde_json::{json, Value};

/// Unix milliseconds of a UTC date and time (days from the civil calendar).
fn utc_ms(y: i64, m: i64, d: i64, h: i64, min: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    ((days * 24 + h) * 60 + min) * 60_000
}

fn write(dir: &Path, name: &str, v: &Value) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, serde_json::to_vec_pretty(v).unwrap()).unwrap();
    path
}

fn import(who: &Attune, file: &Path, extra: &[&str]) -> Run {
    let mut args = vec!["import", file.to_str().unwrap()];
    args.extend_from_slice(extra);
    who.run(&args)
}

fn import_json(who: &Attune, file: &Path, extra: &[&str]) -> Value {
    let mut extra = extra.to_vec();
    extra.push("--json");
    import(who, file, &extra).ok().json()
}

/// The journal entries in `feed --json`, after checking there is no problem.
fn journals(who: &Attune) -> Vec<Value> {
    let v = who.run(&["feed", "--json"]).ok().json();
    assert_eq!(v["problems"], json!([]), "integrity problems: {v:#}");
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["kind"] == "journal")
        .cloned()
        .collect()
}

fn with_text<'a>(entries: &'a [Value], text: &str) -> Vec<&'a Value> {
    entries.iter().filter(|e| e["text"] == text).collect()
}

/// Alex's clock and time zone: Tokyo's offset, so jrnl's wall-clock times
/// are visibly read in it.
fn in_tokyo(who: &Attune) -> Attune {
    let mut w = who.clone();
    w.env.push(("TZ".into(), "<+09>-9".into()));
    w
}

const JRNL_FIRST: &str = "Called in sick.\nUsed the time to clean the house. @home";
const JRNL_ESCAPE: &str = "Red \u{1b}[31mletters\u{1b}[0m and a bell \u{7}.";
const DAYONE_FIRST: &str =
    "# Christmas in Bangkok\n\n[photo]\n\nSo warm! We ate at 7.30.\n\ntags: travel, family";
const DAYONE_SECOND: &str = "New year, quiet morning.";

fn jrnl_file() -> Value {
    json!({
        "tags": {"@home": 1},
        "entries": [
            {"title": "Called in sick.", "body": "Used the time to clean the house. @home\n",
             "date": "2013-06-03", "time": "09:00", "tags": ["@home"], "starred": false},
            {"title": JRNL_ESCAPE, "body": "", "date": "2013-06-07", "time": "20:30",
             "tags": [], "starred": true},
            {"title": "", "body": "  ", "date": "2013-06-08", "time": "07:15", "tags": [],
             "starred": false}
        ]
    })
}

fn dayone_file() -> Value {
    json!({
        "metadata": {"version": "1.0"},
        "entries": [
            {"uuid": "81F0F3CA693F484792F76359E9E2ACE8", "creationDate": "2017-12-25T03:04:32Z",
             "timeZone": "Asia/Bangkok", "starred": false, "tags": ["travel", "family"],
             "text": "# Christmas in Bangkok\n\n![](dayone-moment://68D729369ED84A8B91B5D348E4592EFE)\n\nSo warm\\! We ate at 7\\.30\\."},
            {"uuid": "9A8B", "creationDate": "2018-01-01T01:00:00Z", "timeZone": "Europe/Paris",
             "text": DAYONE_SECOND, "tags": []},
            {"uuid": "PHOTO", "creationDate": "2018-01-02T10:00:00Z",
             "text": "![](dayone-moment://1111)"}
        ]
    })
}

#[test]
fn jrnl_and_day_one_entries_arrive_with_their_dates_and_privacy_once() {
    let mut c = Couple::new(&[]);
    let alex = in_tokyo(&c.a);
    let sam = c.b.clone();
    let dir = c.dir.path().to_path_buf();
    let jrnl = write(&dir, "jrnl.json", &jrnl_file());
    let dayone = write(&dir, "Journal.json", &dayone_file());

    // jrnl: private by default; the empty entry skipped.
    let report = import_json(&alex, &jrnl, &[]);
    assert_eq!(report["format"], "jrnl", "{report:#}");
    assert_eq!(report["dry_run"], false);
    assert_eq!(report["imported"], 2, "{report:#}");
    assert_eq!(report["already_here"], 0);
    assert_eq!(report["private"], 2);
    assert_eq!(report["shared"], 0);
    assert_eq!(report["skipped"]["without_text"], 1);
    let ids: Vec<String> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            assert_eq!(e["status"], "imported");
            e["id"].as_str().unwrap().to_string()
        })
        .collect();
    // Again: nothing new.
    let again = import(&alex, &jrnl, &[]).ok();
    assert_eq!(
        again.stdout.trim(),
        "0 imported, 2 already here (jrnl); skipped 1 without text"
    );

    // Day One, shared; the photo-only entry skipped.
    let run = import(&alex, &dayone, &["--shared"]).ok();
    assert_eq!(
        run.stdout.trim(),
        "2 imported, 0 already here (Day One, shared with Sam); skipped 1 without text"
    );
    let run = import(&alex, &dayone, &["--shared"]).ok();
    assert!(
        run.stdout
            .starts_with("0 imported, 2 already here (Day One)"),
        "{}",
        run.stdout
    );
    // Asked private this time: still the same entries, so still nothing new.
    let report = import_json(&alex, &dayone, &["--private"]);
    assert_eq!(report["format"], "dayone");
    assert_eq!(report["imported"], 0, "{report:#}");
    assert_eq!(report["already_here"], 2);

    alex.run(&["sync"]).ok();
    sam.run(&["sync"]).ok();
    alex.run(&["sync"]).ok();

    // Alex sees each once, at its original time, with its privacy, as typed.
    let mine = journals(&alex);
    assert_eq!(mine.len(), 4, "{mine:#?}");
    let first = with_text(&mine, JRNL_FIRST);
    assert_eq!(first.len(), 1, "{mine:#?}");
    // 09:00 in Tokyo (UTC+9) is midnight UTC.
    assert_eq!(first[0]["at"], utc_ms(2013, 6, 3, 0, 0));
    assert_eq!(first[0]["private"], true);
    assert_eq!(first[0]["author"], "me");
    assert!(ids.contains(&first[0]["id"].as_str().unwrap().to_string()));
    let escape = with_text(&mine, JRNL_ESCAPE);
    assert_eq!(escape.len(), 1, "stored as typed: {mine:#?}");
    assert_eq!(escape[0]["at"], utc_ms(2013, 6, 7, 11, 30));
    let christmas = with_text(&mine, DAYONE_FIRST);
    assert_eq!(christmas.len(), 1, "{mine:#?}");
    assert_eq!(christmas[0]["at"], utc_ms(2017, 12, 25, 3, 4) + 32_000);
    assert_eq!(christmas[0]["private"], false);
    let second = with_text(&mine, DAYONE_SECOND);
    assert_eq!(second[0]["at"], utc_ms(2018, 1, 1, 1, 0));
    for e in &mine {
        assert_eq!(e["pending"], false, "sent: {e:#}");
    }

    // Sam reads the shared ones, at their dates, and nothing of the private ones.
    let theirs = journals(&sam);
    assert_eq!(theirs.len(), 2, "{theirs:#?}");
    for (text, at) in [
        (DAYONE_FIRST, utc_ms(2017, 12, 25, 3, 4) + 32_000),
        (DAYONE_SECOND, utc_ms(2018, 1, 1, 1, 0)),
    ] {
        let e = with_text(&theirs, text);
        assert_eq!(e.len(), 1, "{theirs:#?}");
        assert_eq!(e[0]["at"], at);
        assert_eq!(e[0]["author"], "partner");
    }
    let sam_feed = sam.run(&["feed", "--json"]).ok().stdout;
    let sam_export = sam.run(&["export", "--format", "markdown"]).ok().stdout;
    for secret in ["Called in sick", "Red ", "clean the house"] {
        assert!(!sam_feed.contains(secret), "{secret} reached Sam's feed");
        assert!(
            !sam_export.contains(secret),
            "{secret} reached Sam's export"
        );
    }

    // Shown inert: the escape sequence and the bell never reach the terminal raw.
    let feed = alex.run(&["feed"]).ok().stdout;
    assert!(feed.contains("Red \\u{1b}[31mletters"), "{feed}");
    assert!(
        !feed.contains('\u{1b}') && !feed.contains('\u{7}'),
        "{feed:?}"
    );
    let json_feed = alex.run(&["feed", "--json"]).ok().stdout;
    assert!(!json_feed.contains('\u{1b}'), "{json_feed:?}");

    // A dry run lists what it would import and writes nothing.
    let more = write(
        &dir,
        "more.json",
        &json!({"tags": {}, "entries": [
            {"title": "One more day.", "body": "Quiet.", "date": "2014-01-02", "time": "08:00", "tags": [], "starred": false},
            {"title": "Called in sick.", "body": "Used the time to clean the house. @home", "date": "2013-06-03", "time": "09:00", "tags": [], "starred": false}
        ]}),
    );
    let dry = import(&alex, &more, &["--dry-run"]).ok();
    let lines: Vec<&str> = dry.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", dry.stdout);
    assert!(
        lines[0].contains("private") && lines[0].contains("One more day.…"),
        "{}",
        dry.stdout
    );
    assert_eq!(
        lines[1],
        "dry run: 1 would be imported, 1 already here (jrnl, private); nothing was written"
    );
    let report = import_json(&alex, &more, &["--dry-run"]);
    assert_eq!(report["dry_run"], true);
    assert_eq!(report["entries"][0]["status"], "would_import");
    assert_eq!(report["entries"][1]["status"], "already_here");
    assert_eq!(journals(&alex).len(), 4, "a dry run wrote something");

    // Offline first: with the relay down, the import waits in the outbox and
    // goes with the next sync.
    c.relay.kill9();
    let offline = import(&alex, &more, &["--shared"]).ok();
    assert!(
        offline.stdout.starts_with("1 imported, 1 already here"),
        "{}",
        offline.stdout
    );
    assert!(offline.stderr.contains("outbox"), "{}", offline.stderr);
    c.relay.restart();
    alex.run(&["sync"]).ok();
    sam.run(&["sync"]).ok();
    let theirs = journals(&sam);
    let one_more = with_text(&theirs, "One more day.\nQuiet.");
    assert_eq!(one_more.len(), 1, "{theirs:#?}");
    assert_eq!(one_more[0]["at"], utc_ms(2014, 1, 1, 23, 0));
    assert_eq!(journals(&alex).len(), 5);
}

#[test]
fn attune_exports_restore_own_entries_once_and_skip_the_partners() {
    let c = Couple::new(&[]);
    let (alex, sam) = (&c.a, &c.b);
    let dir = c.dir.path();
    alex.run(&["journal", "-m", "Alex, shared"]).ok();
    alex.run(&["journal", "--private", "-m", "Alex, private"])
        .ok();
    sam.run(&["journal", "-m", "Sam, shared"]).ok();
    alex.run(&["appreciate", "your", "laugh"]).ok();
    for who in [alex, sam, alex] {
        who.run(&["sync"]).ok();
    }
    let export = dir.join("alex.json");
    alex.run(&[
        "export",
        "--format",
        "json",
        "--out",
        export.to_str().unwrap(),
    ])
    .ok();
    let before = journals(alex);
    assert_eq!(before.len(), 3);

    // Into the same profile: Alex's entries are here, Sam's cannot become Alex's.
    let run = import(alex, &export, &[]).ok();
    assert_eq!(
        run.stdout.trim(),
        "0 imported, 2 already here (attune); skipped 1 entry by Sam (only the one who wrote an entry can import it), 1 item that is not a journal entry"
    );
    let report = import_json(alex, &export, &[]);
    assert_eq!(report["format"], "attune");
    assert_eq!(report["already_here"], 2);
    assert_eq!(report["skipped"]["partner"], 1);
    assert_eq!(report["skipped"]["not_journal"], 1);
    let mut here: Vec<&str> = report["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    here.sort_unstable();
    let mut own: Vec<&str> = before
        .iter()
        .filter(|e| e["author"] == "me")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    own.sort_unstable();
    assert_eq!(here, own, "the very entries are found");
    assert_eq!(journals(alex).len(), 3, "no duplicates");

    // Alex's export into Sam's profile: Alex's entries are by Alex's device,
    // whatever "author" says; Sam's own entry is here already.
    let report = import_json(sam, &export, &[]);
    assert_eq!(report["imported"], 0, "{report:#}");
    assert_eq!(report["already_here"], 1);
    assert_eq!(report["skipped"]["partner"], 2);
    assert_eq!(journals(sam).len(), 2);

    // --shared would publish private entries: refused.
    let refused = import(alex, &export, &["--shared"]);
    assert_eq!(refused.code, 1);
    assert!(
        refused
            .stderr
            .contains("--shared is for jrnl and Day One files"),
        "{}",
        refused.stderr
    );

    // An export from elsewhere (another profile of Alex's: ids and a device
    // this space does not know): restored with each entry's time and privacy,
    // once.
    let mut doc: Value = serde_json::from_slice(&std::fs::read(&export).unwrap()).unwrap();
    for e in doc["entries"].as_array_mut().unwrap() {
        if e["author"] == "me" {
            let id = e["id"].as_str().unwrap().to_string();
            e["id"] = json!(format!("ff{}", &id[2..]));
            e["device"] = json!("ee".repeat(32));
            e["at"] = json!(e["at"].as_i64().unwrap() - 86_400_000);
        }
    }
    let elsewhere = write(dir, "elsewhere.json", &doc);
    let report = import_json(alex, &elsewhere, &[]);
    assert_eq!(report["imported"], 2, "{report:#}");
    assert_eq!(report["private"], 1);
    assert_eq!(report["shared"], 1);
    let report = import_json(alex, &elsewhere, &[]);
    assert_eq!(report["imported"], 0, "{report:#}");
    assert_eq!(report["already_here"], 2);
    alex.run(&["sync"]).ok();
    sam.run(&["sync"]).ok();
    let after = journals(alex);
    assert_eq!(after.len(), 5, "{after:#?}");
    for original in before.iter().filter(|e| e["author"] == "me") {
        let copies = with_text(&after, original["text"].as_str().unwrap());
        assert_eq!(copies.len(), 2, "{after:#?}");
        let copy = copies.iter().find(|e| e["id"] != original["id"]).unwrap();
        assert_eq!(copy["private"], original["private"]);
        assert_eq!(
            copy["at"].as_i64().unwrap(),
            original["at"].as_i64().unwrap() - 86_400_000
        );
    }
    // Sam receives the shared copy only.
    let theirs = journals(sam);
    assert_eq!(with_text(&theirs, "Alex, shared").len(), 2, "{theirs:#?}");
    assert!(with_text(&theirs, "Alex, private").is_empty());
}

#[test]
fn another_device_recognises_an_import_once_it_has_synced_it() {
    let c = Couple::new(&[]);
    let utc = |who: &Attune| {
        let mut w = who.clone();
        w.env.push(("TZ".into(), "UTC".into()));
        w
    };
    let phone = utc(&c.a);
    let laptop = utc(&Attune::new(&c.dir.path().join("a-laptop")));
    laptop.init("Alex");
    add_device(&phone, &laptop, &c.relay.url, "laptop");
    let dir = c.dir.path();
    let jrnl = write(dir, "jrnl.json", &jrnl_file());
    let dayone = write(dir, "Journal.json", &dayone_file());

    // Imported on the phone and synced: the laptop has it already.
    assert_eq!(import_json(&phone, &jrnl, &[])["imported"], 2);
    phone.run(&["sync"]).ok();
    laptop.run(&["sync"]).ok();
    let report = import_json(&laptop, &jrnl, &[]);
    assert_eq!(report["imported"], 0, "{report:#}");
    assert_eq!(report["already_here"], 2);
    assert_eq!(journals(&laptop).len(), 2);

    // Both import the same file before syncing: each writes its own copies,
    // under ids of its own, so the relay takes both and nothing is stuck.
    assert_eq!(import_json(&phone, &dayone, &[])["imported"], 2);
    assert_eq!(import_json(&laptop, &dayone, &[])["imported"], 2);
    for who in [&phone, &laptop, &phone] {
        who.run(&["sync"]).ok();
        assert_eq!(who.run(&["status", "--json"]).ok().json()["waiting"], 0);
    }
    assert_eq!(journals(&phone).len(), 6);
    assert_eq!(journals(&laptop).len(), 6);
    // From then on each device finds the entries: nothing more is written.
    for who in [&phone, &laptop] {
        let report = import_json(who, &dayone, &[]);
        assert_eq!(report["imported"], 0, "{report:#}");
        assert_eq!(report["already_here"], 2);
    }
}

#[test]
fn files_that_cannot_be_imported_say_why_and_change_nothing() {
    let c = Couple::new(&[]);
    let alex = &c.a;
    let dir = c.dir.path();
    let raw = |name: &str, bytes: &[u8]| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    };
    let huge = "x".repeat(1_100_000);
    let cases: Vec<(PathBuf, Vec<&str>, Vec<&str>)> = vec![
        (
            raw("notes.txt", b"Dear diary,\nno JSON here.\n"),
            vec![],
            vec![
                "is not JSON (it stops making sense at line 1, column 1)",
                "jrnl --export json",
            ],
        ),
        (
            raw("export.zip", b"PK\x03\x04\x14\x00rest of a zip"),
            vec![],
            vec!["zip archive", "unzip it"],
        ),
        (
            raw(
                "cut.json",
                b"{\"tags\": {}, \"entries\": [{\"title\": \"a\"",
            ),
            vec![],
            vec!["ends before its JSON does"],
        ),
        (
            write(dir, "other.json", &json!({"notes": [], "version": 3})),
            vec![],
            vec!["cannot tell what wrote it", "\"notes\"", "--format"],
        ),
        (
            write(dir, "list.json", &json!([{"title": "a"}])),
            vec![],
            vec!["holds a list, not an export"],
        ),
        (
            write(dir, "nodates.json", &json!({"entries": [{"title": "a"}]})),
            vec!["--format", "jrnl"],
            vec!["entry 1: it has no \"date\" (YYYY-MM-DD)"],
        ),
        (
            write(
                dir,
                "baddate.json",
                &json!({"tags": {}, "entries": [
                    {"title": "Fine.", "body": "", "date": "2021-02-28", "time": "10:00", "tags": [], "starred": false},
                    {"title": "Not a day.", "body": "", "date": "2021-02-30", "time": "10:00", "tags": [], "starred": false},
                    {"title": "Hostile \u{1b}[2J", "body": "", "date": "\u{1b}]52;c;eA==\u{7}", "time": "10:00", "tags": [], "starred": false}
                ]}),
            ),
            vec![],
            vec![
                "2 of its 3 jrnl entries cannot be imported, so nothing was imported",
                "entry 2: its \"date\" is \"2021-02-30\", not a date of the form YYYY-MM-DD",
                "entry 3: its \"date\" is \"\\u{1b}]52;c;eA==\\u{7}\"",
                "Correct or remove those entries",
            ],
        ),
        (
            write(
                dir,
                "huge.json",
                &json!({"metadata": {}, "entries": [
                    {"creationDate": "2020-01-01T10:00:00Z", "text": "small"},
                    {"creationDate": "2020-01-02T10:00:00Z", "text": huge}
                ]}),
            ),
            vec![],
            vec![
                "1 of its 2 Day One entries cannot be imported, so nothing was imported",
                "entry 2: its text is 1100000 bytes, more than one journal entry holds",
            ],
        ),
        (
            dir.join("missing.json"),
            vec![],
            vec!["there is no file", "missing.json"],
        ),
    ];
    for (file, extra, expected) in cases {
        let run = import(alex, &file, &extra);
        assert_eq!(run.code, 1, "{}: {run:?}", file.display());
        for e in expected {
            assert!(
                run.stderr.contains(e),
                "{}: expected {e:?} in\n{}",
                file.display(),
                run.stderr
            );
        }
        for word in ["serde", "invalid type", "expected value", "EOF"] {
            assert!(
                !run.stderr.contains(word),
                "{}: {}",
                file.display(),
                run.stderr
            );
        }
        assert!(!run.stderr.contains('\u{1b}'), "{:?}", run.stderr);
        assert!(run.stdout.is_empty(), "{}", run.stdout);
    }
    assert!(journals(alex).is_empty(), "nothing was imported");
    assert_eq!(
        alex.run(&["status", "--json"]).ok().json()["waiting"],
        json!(0),
        "nothing waits to be sent"
    );
}
