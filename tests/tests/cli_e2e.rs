//! End-to-end tests of the real `attune` binary against the real `attune-relay`
//! binary, two homes (two partners) on 127.0.0.1:
//!
//! - the whole exchange: invite, join, check-ins, shared and private journal
//!   entries, sync, feed, verify, show, export (JSON and Markdown), edit, delete;
//! - markers written through every content-bearing command never reach the relay's
//!   database, WAL or log, nor the clients' local files (only ciphertext does);
//! - offline writes are queued and delivered exactly once, and a `sync` killed with
//!   SIGKILL at many points loses nothing and duplicates nothing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use attune_tests::leaks::{contains, files_in, leak_forms};
use attune_tests::{random16, Attune, Couple, Run};
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// helpers

/// A string that occurs nowhere by chance.
fn marker(label: &str) -> String {
    format!("MRK{label}x{}", hex::encode(random16()))
}

/// A random number in `lo..=hi`.
fn rand_in(lo: u64, hi: u64) -> u64 {
    let r = u64::from_le_bytes(random16()[..8].try_into().unwrap());
    lo + r % (hi - lo + 1)
}

/// The item id a writing command prints: `written (ID)`, `checked in (ID)`, ...
fn printed_id(run: &Run) -> String {
    let out = run.stdout.trim();
    let open = out.rfind('(').unwrap_or_else(|| panic!("no id in {out:?}"));
    let id = out[open + 1..].trim_end_matches(')').to_string();
    assert_eq!(id.len(), 32, "an id is 16 bytes of hex: {out:?}");
    assert!(id.bytes().all(|c| c.is_ascii_hexdigit()), "{out:?}");
    id
}

/// `feed --json`: the entries, after checking there is no integrity problem.
fn feed(who: &Attune) -> Vec<Value> {
    let v = who.run(&["feed", "--json"]).ok().json();
    assert_eq!(v["problems"], json!([]), "integrity problems: {v:#}");
    v["entries"].as_array().unwrap().clone()
}

fn by_id(entries: &[Value]) -> BTreeMap<String, Value> {
    let mut map = BTreeMap::new();
    for e in entries {
        let id = e["id"].as_str().unwrap().to_string();
        assert!(
            map.insert(id.clone(), e.clone()).is_none(),
            "id {id} appears twice: {entries:#?}"
        );
    }
    map
}

fn status(who: &Attune) -> Value {
    who.run(&["status", "--json"]).ok().json()
}

fn waiting(who: &Attune) -> u64 {
    status(who)["waiting"].as_u64().unwrap()
}

/// `sync`, which must succeed; returns (sent, received).
fn sync(who: &Attune) -> (u64, u64) {
    let run = who.run(&["sync"]).ok();
    let line = run.stdout.trim();
    let parse = |s: &str| -> Option<(u64, u64)> {
        let rest = s.strip_prefix("sent ")?;
        let (sent, received) = rest.split_once(", received ")?;
        Some((sent.parse().ok()?, received.parse().ok()?))
    };
    parse(line).unwrap_or_else(|| panic!("unexpected sync output {line:?}"))
}

/// Panics if any marker, in any form, is in any of the files.
fn assert_no_marker(what: &str, files: &[(PathBuf, Vec<u8>)], markers: &[String]) {
    assert!(!files.is_empty(), "{what}: no files to search");
    for (path, bytes) in files {
        for m in markers {
            for (form, needle) in leak_forms(m) {
                assert!(
                    !contains(bytes, &needle),
                    "{what}: marker {m} ({form}) found in {}",
                    path.display()
                );
            }
        }
    }
}

fn is_safety_number(s: &str) -> bool {
    let groups: Vec<&str> = s.split(' ').collect();
    groups.len() == 6
        && groups
            .iter()
            .all(|g| g.len() == 5 && g.bytes().all(|c| c.is_ascii_digit()))
}

// ---------------------------------------------------------------------------
// 1. the whole exchange

/// What one partner writes in the exchange test.
struct Writes {
    mood: u64,
    feel: &'static str,
    feelings: Value,
    need: &'static str,
    high: String,
    low: String,
    appreciate: String,
    journal: String,
    private: String,
    checkin_id: String,
    journal_id: String,
    private_id: String,
}

impl Writes {
    fn write(who: &Attune, label: &str, mood: u64, feel: &'static str, need: &'static str) -> Self {
        let high = marker(&format!("{label}high"));
        let low = marker(&format!("{label}low"));
        let appreciate = marker(&format!("{label}appreciate"));
        let journal = format!(
            "{} shared journal, with ünïcödé and \"quotes\"",
            marker(label)
        );
        let private = marker(&format!("{label}private"));
        let mood_arg = mood.to_string();
        let checkin = who
            .run(&[
                "checkin",
                "--open",
                "--mood",
                &mood_arg,
                "--feel",
                feel,
                "--high",
                &high,
                "--low",
                &low,
                "--appreciate",
                &appreciate,
                "--need",
                need,
            ])
            .ok();
        assert!(
            checkin.stdout.starts_with("checked in, shared now ("),
            "{checkin:?}"
        );
        let j = who.run(&["journal", "-m", &journal]).ok();
        assert!(j.stdout.starts_with("written ("), "{j:?}");
        let p = who.run(&["journal", "--private", "-m", &private]).ok();
        assert!(p.stdout.starts_with("kept privately ("), "{p:?}");
        for run in [&checkin, &j, &p] {
            assert!(
                !run.stderr.contains("warning"),
                "the relay is up, yet: {}",
                run.stderr
            );
        }
        Writes {
            mood,
            feel,
            feelings: json!(feel.split(',').collect::<Vec<_>>()),
            need,
            high,
            low,
            appreciate,
            journal,
            private,
            checkin_id: printed_id(&checkin),
            journal_id: printed_id(&j),
            private_id: printed_id(&p),
        }
    }

    fn checkin_json(&self) -> Value {
        json!({
            "mood": self.mood,
            "feelings": self.feelings,
            "high": self.high,
            "low": self.low,
            "appreciate": self.appreciate,
            "need": self.need,
        })
    }

    /// Every text a reader of this partner's shared items must see.
    fn shared_texts(&self) -> Vec<&str> {
        vec![&self.high, &self.low, &self.appreciate, &self.journal]
    }
}

/// Checks one feed entry: author, kind, flags and exact content.
fn assert_entry(e: &Value, author: &str, kind: &str, private: bool) {
    assert_eq!(e["author"], author, "{e:#}");
    assert_eq!(e["kind"], kind, "{e:#}");
    assert_eq!(e["private"], private, "{e:#}");
    assert_eq!(e["pending"], false, "{e:#}");
    assert_eq!(e["edited"], false, "{e:#}");
    assert_eq!(e["deleted"], false, "{e:#}");
    assert!(e["at"].as_i64().unwrap() > 1_600_000_000_000, "{e:#}");
    let device = e["device"].as_str().unwrap();
    assert_eq!(device.len(), 64, "{e:#}");
}

/// What `who` (whose own writes are `mine`) must see, given the partner's `theirs`.
fn assert_view(who: &Attune, mine: &Writes, theirs: &Writes) -> BTreeMap<String, Value> {
    let entries = feed(who);
    let map = by_id(&entries);
    assert_eq!(
        map.keys().cloned().collect::<BTreeSet<_>>(),
        [
            &mine.checkin_id,
            &mine.journal_id,
            &mine.private_id,
            &theirs.checkin_id,
            &theirs.journal_id
        ]
        .into_iter()
        .cloned()
        .collect::<BTreeSet<_>>(),
        "exactly own three items and the partner's two shared ones: {entries:#?}"
    );
    let e = &map[&mine.checkin_id];
    assert_entry(e, "me", "checkin", false);
    assert_eq!(e["checkin"], mine.checkin_json());
    assert!(e.get("text").is_none());
    let e = &map[&mine.journal_id];
    assert_entry(e, "me", "journal", false);
    assert_eq!(e["text"], mine.journal.as_str());
    assert!(e.get("checkin").is_none());
    let e = &map[&mine.private_id];
    assert_entry(e, "me", "journal", true);
    assert_eq!(e["text"], mine.private.as_str());
    let e = &map[&theirs.checkin_id];
    assert_entry(e, "partner", "checkin", false);
    assert_eq!(e["checkin"], theirs.checkin_json());
    let e = &map[&theirs.journal_id];
    assert_entry(e, "partner", "journal", false);
    assert_eq!(e["text"], theirs.journal.as_str());
    // One device per partner: all own items share a device id, the partner's another.
    let dev = |id: &String| map[id]["device"].as_str().unwrap().to_string();
    assert_eq!(dev(&mine.checkin_id), dev(&mine.journal_id));
    assert_eq!(dev(&mine.checkin_id), dev(&mine.private_id));
    assert_eq!(dev(&theirs.checkin_id), dev(&theirs.journal_id));
    assert_ne!(dev(&mine.checkin_id), dev(&theirs.checkin_id));
    // The feed is oldest first.
    let times: Vec<i64> = entries.iter().map(|e| e["at"].as_i64().unwrap()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    map
}

#[test]
fn two_partners_exchange_and_never_see_each_others_private_entries() {
    let started = Instant::now();
    let c = Couple::new(&[]);
    let (a, b) = (&c.a, &c.b);

    let wa = Writes::write(a, "alex", 7, "calm,hopeful", "listen");
    let wb = Writes::write(b, "sam", 3, "tired,anxious", "support");
    // Everything was pushed when written (check-ins also synced before and
    // after); the partner's private entry arrives unreadable.
    assert_eq!(sync(a).0, 0, "everything was pushed when written");
    assert_eq!(sync(b).0, 0);

    let fa = assert_view(a, &wa, &wb);
    let fb = assert_view(b, &wb, &wa);
    // Each side's device ids agree with the other side's.
    assert_eq!(
        fa[&wa.checkin_id]["device"], fb[&wa.checkin_id]["device"],
        "Alex's device as seen by both"
    );
    assert_eq!(fa[&wb.journal_id]["device"], fb[&wb.journal_id]["device"]);
    // The shared items are the same for both, byte for byte.
    for id in [
        &wa.checkin_id,
        &wa.journal_id,
        &wb.checkin_id,
        &wb.journal_id,
    ] {
        let (mut x, mut y) = (fa[id].clone(), fb[id].clone());
        x["author"] = json!(null);
        y["author"] = json!(null);
        assert_eq!(x, y, "item {id} differs between the partners");
    }

    // The safety numbers.
    // The number is the first line; the devices it covers follow.
    let first = |run: attune_tests::Run| run.stdout.lines().next().unwrap_or("").to_string();
    let va = first(a.run(&["verify"]).ok());
    let vb = first(b.run(&["verify"]).ok());
    assert_eq!(va, vb, "both partners see the same safety number");
    assert!(is_safety_number(&va), "six groups of five digits: {va:?}");

    for (who, mine, theirs, map) in [(a, &wa, &wb, &fa), (b, &wb, &wa, &fb)] {
        let mut everything = String::new();
        // Text feed, `show` (text and JSON) of every readable item.
        let text_feed = who.run(&["feed"]).ok().stdout;
        for t in mine.shared_texts().into_iter().chain(theirs.shared_texts()) {
            assert!(text_feed.contains(t), "feed lacks {t}:\n{text_feed}");
        }
        assert!(text_feed.contains(&mine.private), "{text_feed}");
        everything.push_str(&text_feed);
        for (id, entry) in map {
            let shown = who.run(&["show", &id[..10], "--json"]).ok();
            assert_eq!(&shown.json(), entry, "show --json equals the feed entry");
            everything.push_str(&shown.stdout);
            let shown = who.run(&["show", id]).ok();
            assert!(shown.stdout.contains(id.as_str()), "{}", shown.stdout);
            everything.push_str(&shown.stdout);
        }
        // The partner's private item is not there at all, not even by id.
        let hidden = who.run(&["show", &theirs.private_id]);
        assert_ne!(hidden.code, 0, "{hidden:?}");
        assert!(hidden.stderr.contains("no item with id"), "{hidden:?}");
        everything.push_str(&hidden.stdout);

        // Export as JSON to a file: exactly the feed's entries.
        let out = who.home.with_extension("export.json");
        let run = who
            .run(&["export", "--format", "json", "--out", out.to_str().unwrap()])
            .ok();
        assert!(run.stderr.contains("wrote 5 items"), "{}", run.stderr);
        let exported: Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
        let names = if std::ptr::eq(who, a) {
            ("Alex", "Sam")
        } else {
            ("Sam", "Alex")
        };
        assert_eq!(exported["me"], names.0);
        assert_eq!(exported["partner"], names.1);
        assert!(exported["exported_at"].as_i64().unwrap() > 1_600_000_000_000);
        let exported_entries = by_id(exported["entries"].as_array().unwrap());
        assert_eq!(
            &exported_entries, map,
            "export round-trips every readable item"
        );
        everything.push_str(&String::from_utf8_lossy(&std::fs::read(&out).unwrap()));
        // Export as JSON on stdout, same entries.
        let stdout_json = who.run(&["export"]).ok();
        assert_eq!(
            &by_id(stdout_json.json()["entries"].as_array().unwrap()),
            map
        );
        everything.push_str(&stdout_json.stdout);
        // Markdown: every readable text.
        let md = who.run(&["export", "--format", "markdown"]).ok().stdout;
        for t in mine.shared_texts().into_iter().chain(theirs.shared_texts()) {
            assert!(md.contains(t), "markdown lacks {t}:\n{md}");
        }
        assert!(md.contains(&mine.private), "{md}");
        assert!(md.contains(&format!("- mood: {}/10", theirs.mood)), "{md}");
        assert!(md.contains(&theirs.feel.replace(',', ", ")), "{md}");
        everything.push_str(&md);
        let md_file = who.home.with_extension("export.md");
        who.run(&[
            "export",
            "--format",
            "markdown",
            "--out",
            md_file.to_str().unwrap(),
        ])
        .ok();
        assert_eq!(std::fs::read_to_string(&md_file).unwrap().trim(), md.trim());
        // Status and the feed in JSON, for completeness.
        let st = who.run(&["status", "--json"]).ok();
        assert_eq!(
            st.json()["partner_last_checkin"]["id"],
            theirs.checkin_id.as_str()
        );
        everything.push_str(&st.stdout);
        everything.push_str(&who.run(&["feed", "--json"]).ok().stdout);
        everything.push_str(&who.run(&["status"]).ok().stdout);

        assert!(
            !everything.contains(&theirs.private),
            "the partner's private text leaked into this device's output"
        );
    }
    eprintln!("exchange test: {:?}", started.elapsed());
}

/// The ids of `who`'s feed entries whose text is `text`.
/// The permission bits of a file.
#[cfg(unix)]
fn mode_of(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// `export --out` and `report --out` write decrypted text: owner-only, whether the
/// file is new or already there with wider permissions, and whatever the umask.
#[cfg(unix)]
#[test]
fn decrypted_files_are_written_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let c = Couple::new(&[]);
    let text = marker("private-file");
    c.a.run(&["journal", "-m", &text]).ok();
    c.a.run(&["appreciate", &text]).ok();
    let dir = c.dir.path();
    let existing = |name: &str| {
        let path = dir.join(name);
        std::fs::write(&path, "old").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        path
    };
    for (path, fresh) in [
        (dir.join("new.json"), true),
        (existing("old.md"), false),
        (dir.join("report.html"), true),
        (existing("old-report.html"), false),
    ] {
        let p = path.to_str().unwrap();
        let args: Vec<&str> = match path.extension().and_then(|e| e.to_str()) {
            Some("json") => vec!["export", "--out", p],
            Some("md") => vec!["export", "--format", "markdown", "--out", p],
            _ => vec!["report", "--out", p],
        };
        c.a.run(&args).ok();
        assert_eq!(
            format!("{:o}", mode_of(&path)),
            "600",
            "{args:?} ({}) left {} readable by others",
            if fresh {
                "new file"
            } else {
                "existing 0644 file"
            },
            path.display()
        );
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.contains(&text), "{args:?} wrote {written}");
    }
    // Through a symlink, the target is written (and made private); a stream
    // that is not a file is written as it is.
    let link = dir.join("link.json");
    std::os::unix::fs::symlink(dir.join("new.json"), &link).unwrap();
    c.a.run(&[
        "export",
        "--format",
        "markdown",
        "--out",
        link.to_str().unwrap(),
    ])
    .ok();
    assert!(std::fs::symlink_metadata(&link).unwrap().is_symlink());
    assert!(std::fs::read_to_string(dir.join("new.json"))
        .unwrap()
        .starts_with("# attune"));
    assert_eq!(format!("{:o}", mode_of(&dir.join("new.json"))), "600");
    let piped = c.a.run(&["export", "--out", "/dev/stdout"]).ok();
    assert!(piped.stdout.contains(&text), "{piped:?}");
    // Nothing else was left next to them (no temporary files).
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains('.'))
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "link.json",
            "new.json",
            "old-report.html",
            "old.md",
            "report.html"
        ]
    );
}

fn ids_with_text(entries: &[Value], text: &str) -> Vec<String> {
    entries
        .iter()
        .filter(|e| e["text"] == text)
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn edits_and_deletions_reach_the_partner() {
    let started = Instant::now();
    let c = Couple::new(&[]);
    let (a, b) = (&c.a, &c.b);

    let original = marker("original");
    let edited = marker("edited");
    let kept = marker("kept");
    let id1 = printed_id(&a.run(&["journal", "-m", &original]).ok());
    let id2 = printed_id(&a.run(&["journal", "-m", &kept]).ok());
    let id3 = printed_id(
        &a.run(&["checkin", "--open", "--mood", "5", "--high", &kept])
            .ok(),
    );
    let idb = printed_id(&b.run(&["journal", "-m", "Sam's own"]).ok());
    sync(a);
    sync(b);

    // Only journal entries can be edited, only one's own, and only by a known id.
    let r = a.run(&["edit", &id3, "-m", "x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("only journal entries"), "{r:?}");
    let r = b.run(&["edit", &id1, "-m", "x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("only change your own"), "{r:?}");
    let r = b.run(&["delete", &id1]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("only change your own"), "{r:?}");
    let r = a.run(&["edit", "ffffffffffff", "-m", "x"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("no item with id"), "{r:?}");

    // Edit by an id prefix.
    let r = a.run(&["edit", &id1[..8], "-m", &edited]).ok();
    assert_eq!(r.stdout.trim(), format!("edited {id1}"));
    sync(b);
    let fb = b.run(&["feed", "--json"]).ok();
    assert!(
        !fb.stdout.contains(&original),
        "the old text is gone: {}",
        fb.stdout
    );
    let fb = by_id(fb.json()["entries"].as_array().unwrap());
    assert_eq!(fb.len(), 4, "an edit is not a new item: {fb:#?}");
    assert_eq!(fb[&id1]["edited"], true);
    assert_eq!(fb[&id1]["deleted"], false);
    assert_eq!(fb[&id1]["text"], edited.as_str());
    assert_eq!(fb[&id1]["author"], "partner");
    assert_eq!(fb[&id2]["edited"], false);
    assert_eq!(fb[&id2]["text"], kept.as_str());
    sync(a);
    let fa = by_id(&feed(a));
    assert_eq!(fa[&id1]["edited"], true);
    assert_eq!(fa[&id1]["text"], edited.as_str());

    // Delete a journal entry and a check-in.
    let r = a.run(&["delete", &id1]).ok();
    assert_eq!(r.stdout.trim(), format!("deleted {id1}"));
    a.run(&["delete", &id3]).ok();
    let r = a.run(&["edit", &id1, "-m", "again"]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already deleted"), "{r:?}");
    let r = a.run(&["delete", &id1]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("already deleted"), "{r:?}");
    sync(b);
    let raw = b.run(&["feed", "--json"]).ok();
    assert!(!raw.stdout.contains(&edited), "{}", raw.stdout);
    let entries = raw.json()["entries"].as_array().unwrap().clone();
    let fb = by_id(&entries);
    assert_eq!(fb.len(), 4, "tombstones are not new items: {fb:#?}");
    assert_eq!(fb[&id1]["deleted"], true);
    assert!(fb[&id1].get("text").is_none(), "{:#}", fb[&id1]);
    assert_eq!(fb[&id3]["deleted"], true);
    assert!(fb[&id3].get("checkin").is_none(), "{:#}", fb[&id3]);
    assert_eq!(fb[&id2]["deleted"], false);
    assert_eq!(ids_with_text(&entries, &kept), vec![id2.clone()]);
    assert_eq!(fb[&idb]["author"], "me");
    for who in [a, b] {
        let md = who.run(&["export", "--format", "markdown"]).ok().stdout;
        assert_eq!(md.matches("_deleted_").count(), 2, "{md}");
        assert!(!md.contains(&edited) && !md.contains(&original), "{md}");
        let text = who.run(&["feed"]).ok().stdout;
        assert!(text.contains("[deleted]"), "{text}");
        assert!(
            !text.contains(&edited) && !text.contains(&original),
            "{text}"
        );
    }
    sync(a);
    let fa = by_id(&feed(a));
    assert_eq!(fa[&id1]["deleted"], true);
    assert_eq!(fa[&id3]["deleted"], true);
    eprintln!("edit/delete test: {:?}", started.elapsed());
}

/// An item written while the relay is up is pushed at once; it must stay visible
/// (and editable) on its own device before the next pull, and must not count as
/// waiting.
#[test]
fn own_items_stay_visible_and_are_not_waiting_after_an_immediate_push() {
    let c = Couple::new(&[]);
    let a = &c.a;
    let text = marker("fresh");
    let run = a.run(&["journal", "-m", &text]).ok();
    assert!(!run.stderr.contains("warning"), "pushed at once: {run:?}");
    let id = printed_id(&run);
    let fa = by_id(&feed(a));
    assert_eq!(fa.len(), 1, "{fa:#?}");
    assert_eq!(fa[&id]["text"], text.as_str());
    assert_eq!(fa[&id]["pending"], false, "the relay has acknowledged it");
    a.run(&["show", &id]).ok();
    let edited = marker("fresh-edit");
    a.run(&["edit", &id, "-m", &edited]).ok();
    let fa = by_id(&feed(a));
    assert_eq!(fa[&id]["text"], edited.as_str());
    assert_eq!(fa[&id]["edited"], true);
    assert_eq!(
        waiting(a),
        0,
        "both envelopes were acknowledged by the relay, yet `status` says they wait"
    );
    let (sent, _) = sync(a);
    assert_eq!(sent, 0);
    assert_eq!(waiting(a), 0, "after a sync nothing waits");
}

// ---------------------------------------------------------------------------
// 2. markers

#[test]
fn content_markers_never_reach_the_relay_or_the_clients_files() {
    let started = Instant::now();
    // The most verbose relay logging there is.
    let mut c = Couple::new(&["--log", "trace"]);
    let (a, b) = (&c.a, &c.b);
    let mut markers: Vec<String> = Vec::new();
    // Visible through `feed --json` to the author (1) and partner (2): (marker, author, partner).
    let mut visible: Vec<(String, bool, bool)> = Vec::new();
    for (who, label) in [(a, "A"), (b, "B")] {
        let [high, low, appreciate, journal, private, original, edit, private_original, private_edit] =
            [
                "high", "low", "appr", "journal", "private", "orig", "edit", "privorig", "privedit",
            ]
            .map(|k| marker(&format!("{label}{k}")));
        who.run(&[
            "checkin",
            "--open",
            "--mood",
            "6",
            "--feel",
            "grateful",
            "--high",
            &high,
            "--low",
            &low,
            "--appreciate",
            &appreciate,
            "--need",
            "space",
        ])
        .ok();
        who.run(&["journal", "-m", &journal]).ok();
        who.run(&["journal", "--private", "-m", &private]).ok();
        let id = printed_id(&who.run(&["journal", "-m", &original]).ok());
        let pid = printed_id(
            &who.run(&["journal", "--private", "-m", &private_original])
                .ok(),
        );
        sync(who);
        who.run(&["edit", &id, "-m", &edit]).ok();
        who.run(&["edit", &pid, "-m", &private_edit]).ok();
        for m in [&high, &low, &appreciate, &journal, &edit] {
            visible.push((m.clone(), true, true));
        }
        visible.push((private.clone(), true, false));
        visible.push((private_edit.clone(), true, false));
        markers.extend([
            high,
            low,
            appreciate,
            journal,
            private,
            original,
            edit,
            private_original,
            private_edit,
        ]);
    }
    let (sent, _) = sync(a);
    assert_eq!(sent, 0, "everything went when it was written");
    sync(b);
    sync(a);

    // The markers are really there to be found: the test can fail.
    let feeds: HashMap<bool, String> = [
        (true, a.run(&["feed", "--json"]).ok().stdout),
        (false, b.run(&["feed", "--json"]).ok().stdout),
    ]
    .into();
    for (i, (m, to_author, to_partner)) in visible.iter().enumerate() {
        let author_is_a = i < visible.len() / 2;
        assert_eq!(feeds[&author_is_a].contains(m.as_str()), *to_author, "{m}");
        assert_eq!(
            feeds[&!author_is_a].contains(m.as_str()),
            *to_partner,
            "{m}"
        );
    }

    // The relay while it runs: database, WAL, shared memory, log.
    let relay_dir = c.relay.db.parent().unwrap().to_path_buf();
    let running = files_in(&relay_dir);
    let names: Vec<String> = running
        .iter()
        .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    for f in ["relay.sqlite3", "relay.sqlite3-wal", "relay.log"] {
        assert!(names.iter().any(|n| n == f), "{f} missing: {names:?}");
    }
    let wal = &running
        .iter()
        .find(|(p, _)| p.ends_with("relay.sqlite3-wal"))
        .unwrap()
        .1;
    let db = &running
        .iter()
        .find(|(p, _)| p.ends_with("relay.sqlite3"))
        .unwrap()
        .1;
    assert!(
        wal.len() + db.len() > 30 * 1024,
        "the relay holds the envelopes somewhere (wal {} bytes, db {} bytes)",
        wal.len(),
        db.len()
    );
    let log_len = running
        .iter()
        .find(|(p, _)| p.ends_with("relay.log"))
        .unwrap()
        .1
        .len();
    assert!(
        log_len > 1000,
        "the trace log has content ({log_len} bytes)"
    );
    assert_no_marker("running relay", &running, &markers);
    // The envelopes on the relay are all there.
    let conn = rusqlite::Connection::open(&c.relay.db).unwrap();
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 2 * 7, "seven envelopes per partner");
    drop(conn);

    // The relay after a graceful stop (which checkpoints the WAL).
    let status = c.relay.terminate().expect("the relay stops");
    assert!(status.success(), "graceful stop: {status:?}");
    let stopped = files_in(&relay_dir);
    assert_no_marker("stopped relay", &stopped, &markers);
    let log = c.relay.log_text();
    assert!(log.contains("stopped"), "{log}");

    // The clients' own files: keystore, database, WAL.
    for who in [a, b] {
        let files = files_in(&who.home);
        let names: Vec<String> = files
            .iter()
            .map(|(p, _)| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        for f in ["keystore.attune", "state.sqlite3"] {
            assert!(names.iter().any(|n| n == f), "{f} missing: {names:?}");
        }
        assert_no_marker("client home", &files, &markers);
    }
    eprintln!("marker test: {:?}", started.elapsed());
}

// ---------------------------------------------------------------------------
// 3. offline, and SIGKILL in the middle of a sync

#[test]
fn offline_writes_are_queued_and_delivered_exactly_once() {
    let started = Instant::now();
    let mut c = Couple::new(&[]);
    let (a, b) = (c.a.clone(), c.b.clone());
    c.relay.kill9();

    let high = marker("offline-high");
    let text = marker("offline-journal");
    let bt = marker("offline-sam");
    let r1 = a
        .run(&["checkin", "--open", "--mood", "4", "--high", &high])
        .ok();
    let r2 = a.run(&["journal", "-m", &text]).ok();
    let r3 = b.run(&["journal", "-m", &bt]).ok();
    for r in [&r1, &r2, &r3] {
        assert!(
            r.stderr.contains("not sent yet") && r.stderr.contains("waits in the outbox"),
            "{r:?}"
        );
    }
    let (id1, id2, id3) = (printed_id(&r1), printed_id(&r2), printed_id(&r3));
    assert_eq!(waiting(&a), 2);
    assert_eq!(waiting(&b), 1);
    let fa = by_id(&feed(&a));
    assert_eq!(fa.len(), 2);
    assert_eq!(fa[&id1]["pending"], true);
    assert_eq!(fa[&id1]["checkin"]["high"], high.as_str());
    assert_eq!(fa[&id2]["pending"], true);
    assert_eq!(fa[&id2]["text"], text.as_str());
    let text_feed = a.run(&["feed"]).ok().stdout;
    assert!(text_feed.contains("not sent yet"), "{text_feed}");

    // A sync against a relay that is down fails clearly and keeps everything.
    let r = a.run(&["sync"]);
    assert_eq!(r.code, 1, "{r:?}");
    assert!(r.stderr.contains("2 items wait in the outbox"), "{r:?}");
    assert_eq!(waiting(&a), 2);

    c.relay.restart();
    let (sent, received) = sync(&a);
    assert_eq!((sent, received), (2, 2), "sends its two, gets them back");
    let (sent, received) = sync(&b);
    assert_eq!((sent, received), (1, 3));
    let (sent, received) = sync(&a);
    assert_eq!((sent, received), (0, 1));
    let (sent, received) = sync(&b);
    assert_eq!((sent, received), (0, 0));

    let entries = feed(&b);
    let fb = by_id(&entries);
    assert_eq!(fb.len(), 3, "each item exactly once: {entries:#?}");
    assert_eq!(fb[&id1]["checkin"]["high"], high.as_str());
    assert_eq!(fb[&id1]["author"], "partner");
    assert_eq!(ids_with_text(&entries, &text), vec![id2.clone()]);
    assert_eq!(ids_with_text(&entries, &bt), vec![id3.clone()]);
    assert!(entries.iter().all(|e| e["pending"] == false));
    let fa = by_id(&feed(&a));
    assert_eq!(fa.len(), 3);
    assert!(fa.values().all(|e| e["pending"] == false), "{fa:#?}");

    let conn = rusqlite::Connection::open(&c.relay.db).unwrap();
    let (n, distinct): (i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT entry) FROM envelopes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((n, distinct), (3, 3));
    assert_eq!(waiting(&a), 0, "nothing waits after the sync");
    assert_eq!(waiting(&b), 0, "nothing waits after the sync");
    eprintln!("offline test: {:?}", started.elapsed());
}

/// Entries written while the relay is down before the killed syncs.
const QUEUED: usize = 300;

#[test]
fn a_sync_killed_with_sigkill_loses_nothing_and_duplicates_nothing() {
    let started = Instant::now();
    let mut c = Couple::new(&[]);
    let (a, b) = (c.a.clone(), c.b.clone());
    c.relay.kill9();
    let tag = hex::encode(&random16()[..4]);
    let texts: Vec<String> = (0..QUEUED).map(|i| format!("bulk-{tag}-{i:04}")).collect();
    for t in &texts {
        a.run(&["journal", "-m", t]).ok();
    }
    assert_eq!(waiting(&a), QUEUED as u64);
    let queued_at = started.elapsed();
    c.relay.restart();

    let relay_count = |db: &Path| -> i64 {
        let conn = rusqlite::Connection::open(db).unwrap();
        conn.query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get(0))
            .unwrap()
    };
    // Kill `attune sync` after a random delay, growing, until one finishes by itself.
    let mut log = Vec::new();
    let mut killed_mid_sync = 0;
    for round in 0..12u64 {
        let delay = Duration::from_millis(rand_in(2 + round * 12, 15 + round * 15));
        let mut child = a
            .command(&["sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(delay);
        let finished = child.try_wait().unwrap().is_some();
        let _ = child.kill();
        let status = child.wait().unwrap();
        let on_relay = relay_count(&c.relay.db);
        log.push(format!(
            "round {round}: {delay:?}, {} with {status}, relay holds {on_relay}",
            if finished { "finished" } else { "killed" }
        ));
        if !finished {
            killed_mid_sync += 1;
        }
        // Once a sync completed by itself, everything is already there.
        if finished && status.success() {
            break;
        }
    }
    eprintln!("killed syncs:\n  {}", log.join("\n  "));
    assert!(
        killed_mid_sync >= 2,
        "the test must really kill syncs in flight: {log:#?}"
    );

    // The next sync completes and leaves everything consistent.
    sync(&a);
    let integrity: String = rusqlite::Connection::open(a.home.join("state.sqlite3"))
        .unwrap()
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");

    // The relay holds every entry exactly once, in one gapless chain.
    let conn = rusqlite::Connection::open(&c.relay.db).unwrap();
    let (n, distinct, seqs, lo, hi): (i64, i64, i64, i64, i64) = conn
        .query_row(
            "SELECT COUNT(*), COUNT(DISTINCT entry), COUNT(DISTINCT seq), MIN(seq), MAX(seq)
             FROM envelopes",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
        )
        .unwrap();
    assert_eq!(
        (n, distinct, seqs, lo, hi),
        (
            QUEUED as i64,
            QUEUED as i64,
            QUEUED as i64,
            1,
            QUEUED as i64
        )
    );
    drop(conn);

    // The partner reads each text exactly once; so does the author.
    sync(&b);
    for who in [&b, &a] {
        let entries = feed(who);
        assert_eq!(entries.len(), QUEUED);
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for e in &entries {
            *seen.entry(e["text"].as_str().unwrap()).or_default() += 1;
            assert_eq!(e["pending"], false, "{e:#}");
        }
        for t in &texts {
            assert_eq!(seen.get(t.as_str()), Some(&1), "{t}");
        }
        by_id(&entries);
    }
    let (sent, received) = sync(&a);
    assert_eq!((sent, received), (0, 0));
    assert_eq!(waiting(&a), 0, "nothing waits after the sync");
    eprintln!(
        "kill test: queued {QUEUED} in {queued_at:?}, total {:?}",
        started.elapsed()
    );
}

/// Two `attune journal` at once on one profile (two terminals, a script): both
/// are kept.
#[test]
fn concurrent_writes_on_one_profile_are_all_kept() {
    let c = Couple::new(&[]);
    let a = &c.a;
    let texts: Vec<String> = (0..6).map(|i| marker(&format!("concurrent{i}"))).collect();
    let children: Vec<_> = texts
        .iter()
        .map(|t| {
            a.command(&["journal", "-m", t])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    for child in children {
        let out = child.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(String::from_utf8_lossy(&out.stderr).into_owned());
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} concurrent writes failed: {failures:?}",
        failures.len(),
        texts.len()
    );
    sync(a);
    let entries = feed(a);
    for t in &texts {
        assert_eq!(ids_with_text(&entries, t).len(), 1, "{t}");
    }
}

/// Lines a child prints, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> std::sync::mpsc::Receiver<String> {
    use std::io::BufRead;
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Waits (bounded) for a line containing `needle`; returns every line read.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match rx.recv_timeout(left) {
            Ok(line) => {
                let done = line.contains(needle);
                seen.push(line);
                if done {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {within:?}; got {seen:?}");
}

/// `watch` outlives a relay restart: it reconnects after the last cursor it
/// stored, so it shows what came after and nothing twice.
#[test]
fn watch_resumes_from_its_cursor_after_the_relay_is_killed() {
    let mut c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "written before watching"]).ok();
    let mut watch =
        c.b.command(&["watch", "--seconds", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let out = lines_of(watch.stdout.take().unwrap());
    let err = lines_of(watch.stderr.take().unwrap());
    let mut printed = Vec::new();
    wait_for(&err, "watching", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));

    c.a.run(&["journal", "-m", "streamed before the kill"]).ok();
    printed.extend(wait_for(
        &out,
        "streamed before the kill",
        Duration::from_secs(15),
    ));

    c.relay.kill9();
    wait_for(&err, "lost the connection", Duration::from_secs(15));
    c.relay.restart();
    c.a.run(&["journal", "-m", "written after the restart"])
        .ok();
    printed.extend(wait_for(
        &out,
        "written after the restart",
        Duration::from_secs(30),
    ));
    wait_for(&err, "reconnected", Duration::from_secs(30));

    let _ = watch.kill();
    let _ = watch.wait();
    printed.extend(out.try_iter());
    let count = |text: &str| printed.iter().filter(|l| l.contains(text)).count();
    assert_eq!(count("written before watching"), 0, "{printed:?}");
    assert_eq!(count("streamed before the kill"), 1, "{printed:?}");
    assert_eq!(count("written after the restart"), 1, "{printed:?}");
}

/// Large entries written offline go up in batches that fit the relay's body
/// limit, and come down in pages that fit the client's answer limit (32 MiB):
/// 30 journal entries of ~900 KB each (about 37 MB once base64-encoded).
#[test]
fn many_large_entries_written_offline_go_up_and_come_down() {
    let mut c = Couple::new(&[]);
    c.relay.kill9();
    let n = 30;
    for i in 0..n {
        let text = format!("large entry {i:02} ") + &"x".repeat(900_000);
        let run = c.a.run_with_stdin(&["journal"], Some(&text));
        assert_eq!(run.code, 0, "writing offline works: {}", run.stderr);
    }
    c.relay.restart();
    let run = c.a.run(&["sync"]);
    assert_eq!(run.code, 0, "the outbox goes up: {run:?}");
    assert_eq!(waiting(&c.a), 0, "nothing left in the outbox");
    let run = c.b.run(&["sync"]);
    assert_eq!(run.code, 0, "the partner receives it: {run:?}");
    let got: BTreeSet<String> = feed(&c.b)
        .iter()
        .filter_map(|e| e["text"].as_str())
        .filter_map(|t| t.strip_prefix("large entry "))
        .map(|t| t[..2].to_string())
        .collect();
    assert_eq!(got.len(), n, "every large entry arrives once: {got:?}");
}
