//! Text attune did not write never drives the reader's terminal: a partner's
//! journal, check-in, appreciation, exercise prompt and answer, reflection,
//! correction, mark and pause carry escape sequences (colours, `ESC[8m` that hides
//! what follows, an OSC 52 clipboard write, a screen clear, BEL, C1 controls, a
//! bidi override); the reader's `feed`, `show`, `status`, `today`, `stats`,
//! `gratitude`, `watch`, `--json` and exports contain none of them raw, show the
//! text escaped (`\u{1b}`), keep continuation lines marked so no line can pose as
//! attune's own, and the integrity warnings printed after it stay visible. Names
//! with control characters are refused at `init` and in pairing, and a stored one
//! is shown escaped. A relay's error message is shown escaped too.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use attune_proto::Envelope;
use attune_tests::{random16, Attune, Couple, Relay, Run};
use serde_json::Value;

/// Colours, `ESC[8m` (hidden), an OSC 52 clipboard write ended by BEL, a screen
/// clear, a lone BEL, a C1 CSI (U+009B), a right-to-left override, DEL, and a
/// carriage return that would let the rest overwrite the line.
const ESCAPES: &str = "\u{1b}[31mred\u{1b}[0m \u{1b}[8mHIDDEN \u{1b}]52;c;cHduZWQ=\u{7} \u{1b}[2J \u{7} \u{9b}2J \u{202e}desrever\u{202c} \u{7f} \rover";

/// How `ESC[8m` must look once inert: visible, escaped.
const ESCAPED_HIDE: &str = "\\u{1b}[8mHIDDEN";

/// How attune marks a continuation line of multi-line text in a terminal.
const CONTINUATION: &str = "  │ ";

/// A line a hostile partner would like to pass for attune's own warning.
const FAKE_LINE: &str = "[forged] envelope 9 of device 0badc0de does not verify";
/// A line that would pass for an entry heading in the Markdown export.
const FAKE_HEADING: &str = "## 1999-01-01 00:00 — Sam (journal)";

fn marker(label: &str) -> String {
    format!("MRK{label}x{}", hex::encode(random16()))
}

fn hostile(label: &str) -> String {
    format!("{} {ESCAPES}", marker(label))
}

/// Characters a terminal acts on: C0 controls (newline aside), DEL, C1 controls,
/// bidi embeddings, overrides and isolates, line and paragraph separators.
fn is_active(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{9}' | '\u{b}'..='\u{1f}'
        | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}'
        | '\u{2066}'..='\u{2069}'
        | '\u{2028}' | '\u{2029}')
}

fn assert_inert(what: &str, out: &str) {
    if let Some((i, c)) = out.char_indices().find(|(_, c)| is_active(*c)) {
        panic!(
            "{what}: raw {c:?} at byte {i} reaches the terminal:\n{}",
            out.escape_debug()
        );
    }
}

/// Text output: inert, and every hostile text visible in its escaped form.
fn assert_shown_inert(what: &str, run: &Run, texts: &[&str]) {
    assert_inert(&format!("{what} (stdout)"), &run.stdout);
    assert_inert(&format!("{what} (stderr)"), &run.stderr);
    for t in texts {
        let label = t.split(' ').next().unwrap();
        assert!(
            run.stdout.contains(label),
            "{what} does not show {label}:\n{}",
            run.stdout
        );
    }
    if !texts.is_empty() {
        assert!(
            run.stdout.contains(ESCAPED_HIDE),
            "{what} does not show the escape visibly:\n{}",
            run.stdout
        );
    }
}

/// JSON output: inert bytes, and the exact text once decoded (the escape is lossless).
fn assert_json_exact(what: &str, run: &Run, texts: &[&str]) -> Value {
    assert_inert(&format!("{what} (stdout)"), &run.stdout);
    assert_inert(&format!("{what} (stderr)"), &run.stderr);
    let doc = run.json();
    let all = doc.to_string();
    for t in texts {
        let encoded = serde_json::to_string(t).unwrap();
        assert!(
            all.contains(encoded.trim_matches('"')),
            "{what} lacks the exact text {t:?}:\n{doc:#}"
        );
    }
    doc
}

fn printed_id(run: &Run) -> String {
    let out = run.stdout.trim();
    let open = out.rfind('(').unwrap_or_else(|| panic!("no id in {out:?}"));
    out[open + 1..].trim_end_matches(')').to_string()
}

fn started_id(run: &Run) -> String {
    let start = run.stdout.find("started (").expect("an exercise id") + "started (".len();
    run.stdout[start..].split(')').next().unwrap().to_string()
}

fn sync(who: &Attune) {
    let run = who.run(&["sync"]);
    assert_eq!(run.code, 0, "{run:?}");
}

fn pin_clock(c: &mut Couple) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis()
        .to_string();
    for who in [&mut c.a, &mut c.b] {
        who.env.push(("ATTUNE_TEST_NOW_MS".into(), now.clone()));
    }
}

fn set_meta(who: &Attune, key: &str, value: &str) {
    let db = rusqlite::Connection::open(who.home.join("state.sqlite3")).unwrap();
    db.execute(
        "INSERT INTO meta (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        rusqlite::params![key, value],
    )
    .unwrap();
}

/// `watch` until a line with `wanted` arrives (or 15 s pass), while `act` runs.
fn watch_for(who: &Attune, wanted: &str, act: impl FnOnce()) -> (Vec<String>, Vec<String>) {
    let mut watch = who
        .command(&["watch", "--seconds", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (out_tx, out_rx) = mpsc::channel::<String>();
    let stdout = watch.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if out_tx.send(line).is_err() {
                break;
            }
        }
    });
    let (err_tx, err_rx) = mpsc::channel::<String>();
    let stderr = watch.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if err_tx.send(line).is_err() {
                break;
            }
        }
    });
    let ready = err_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("watch says it is watching");
    assert!(ready.contains("watching"), "{ready:?}");
    std::thread::sleep(Duration::from_millis(300));
    act();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut lines = vec![];
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match out_rx.recv_timeout(left) {
            Ok(l) => {
                let done = l.contains(wanted);
                lines.push(l);
                if done {
                    // The rest of a multi-line item follows at once.
                    std::thread::sleep(Duration::from_millis(200));
                    lines.extend(out_rx.try_iter());
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let _ = watch.kill();
    let _ = watch.wait();
    let errs = std::iter::once(ready).chain(err_rx.try_iter()).collect();
    (lines, errs)
}

#[test]
fn a_partners_escape_sequences_never_reach_the_readers_terminal() {
    let started = Instant::now();
    let mut c = Couple::new(&[]);
    pin_clock(&mut c);
    let (a, b) = (&c.a, &c.b);

    // Alex (a hostile or careless partner) writes escape sequences everywhere.
    let journal = format!(
        "{} {ESCAPES}\n{FAKE_LINE}\n{FAKE_HEADING}\n<img src=\"http://127.0.0.1:9/pixel\">",
        marker("journal")
    );
    let journal_id = printed_id(&a.run(&["journal", "-m", &journal]).ok());
    let (high, low, appreciate) = (hostile("high"), hostile("low"), hostile("appr"));
    a.run(&[
        "checkin",
        "--open",
        "--mood",
        "6",
        "--high",
        &high,
        "--low",
        &low,
        "--appreciate",
        &appreciate,
    ])
    .ok();
    let sealed_high = hostile("sealedhigh");
    a.run(&["checkin", "--again", "--mood", "4", "--high", &sealed_high])
        .ok();
    let thanks = hostile("thanks");
    a.run(&["appreciate", &thanks]).ok();
    let prompt = hostile("prompt");
    let exercise = started_id(&a.run(&["ask", "question", &prompt]).ok());
    let answer = hostile("answer");
    a.run(&["answer", &exercise, "-m", &answer]).ok();
    // Sam writes plainly, Alex reflects with escapes and corrects Sam's reflection.
    sync(b);
    let sams = printed_id(&b.run(&["journal", "-m", "a quiet day"]).ok());
    b.run(&["reflect", &journal_id, "-m", "you feel unseen"])
        .ok();
    b.run(&["answer", &exercise, "-m", "Sam's answer"]).ok();
    b.run(&["checkin", "--mood", "7"]).ok();
    sync(a);
    let reflection = hostile("reflect");
    a.run(&["reflect", &sams, "-m", &reflection]).ok();
    let sam_reflection = a.run(&["feed", "--json"]).ok().json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "reflect" && e["author"] == "partner")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap();
    let correction = hostile("correct");
    a.run(&["correct", &sam_reflection, "-m", &correction]).ok();
    for _ in 0..2 {
        sync(b);
        sync(a);
    }
    let note = hostile("note");
    // A mark is of the partner's answer.
    let sams_answer = a.run(&["feed", "--json"]).ok().json()["entries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["kind"] == "answer" && e["author"] == "partner")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .unwrap();
    a.run(&["mark", &sams_answer, "accurate", "-m", &note]).ok();
    let pause = hostile("pause");
    a.run(&["timeout", "20m", "-m", &pause]).ok();
    sync(b);

    // `watch` shows a new hostile item inert.
    let live = format!("{} {ESCAPES}\n{FAKE_LINE}", marker("live"));
    let live_label = live.split(' ').next().unwrap().to_string();
    let (lines, errs) = watch_for(b, &live_label, || {
        a.run(&["journal", "-m", &live]).ok();
    });
    let shown = lines.join("\n");
    assert!(shown.contains(&live_label), "watch: {lines:?} / {errs:?}");
    assert_inert("watch (stdout)", &shown);
    assert_inert("watch (stderr)", &errs.join("\n"));
    assert!(shown.contains(ESCAPED_HIDE), "{shown}");
    for l in lines.iter().filter(|l| l.contains(FAKE_LINE)) {
        assert!(
            l.starts_with(CONTINUATION),
            "watch: {l:?} poses as attune's line"
        );
    }

    // Then the relay alters Alex's next envelope: Sam's commands must report it,
    // and nothing printed before the report may hide it.
    let alex = {
        let rows: Vec<(i64, Vec<u8>)> = {
            let db = rusqlite::Connection::open(&c.relay.db).unwrap();
            let mut st = db
                .prepare("SELECT cursor, data FROM envelopes ORDER BY cursor")
                .unwrap();
            st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .unwrap()
                .collect::<Result<_, _>>()
                .unwrap()
        };
        Envelope::decode(&rows[rows.len() - 1].1)
            .unwrap()
            .header
            .author
    };
    a.run(&["journal", "-m", "one more"]).ok();
    {
        let db = rusqlite::Connection::open(&c.relay.db).unwrap();
        let (cursor, mut data): (i64, Vec<u8>) = db
            .query_row(
                "SELECT cursor, data FROM envelopes ORDER BY cursor DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap();
        assert_eq!(Envelope::decode(&data).unwrap().header.author, alex);
        let last = data.len() - 1;
        data[last] ^= 1;
        db.execute(
            "UPDATE envelopes SET data = ?2 WHERE cursor = ?1",
            rusqlite::params![cursor, data],
        )
        .unwrap();
    }
    let synced = b.run(&["sync"]);
    assert_eq!(synced.code, 3, "{synced:?}");
    assert_inert("sync", &format!("{}{}", synced.stdout, synced.stderr));
    // A name stored by an older version, or by a pairing that did not check it.
    let bad_name = "Al\u{1b}[2Jex\u{7}\u{9b}8m";
    set_meta(b, "partner_name", bad_name);

    let everything = [
        journal.as_str(),
        &high,
        &low,
        &appreciate,
        &sealed_high,
        &thanks,
        &prompt,
        &answer,
        &reflection,
        &correction,
        &note,
        &live,
    ];
    let feed = b.run(&["feed"]);
    assert_eq!(feed.code, 3, "{feed:?}");
    assert_shown_inert("feed", &feed, &everything);
    assert!(
        feed.stderr.contains("integrity problem") && feed.stderr.contains("[altered]"),
        "{feed:?}"
    );
    assert!(feed.stdout.contains("Al\\u{1b}[2Jex"), "{}", feed.stdout);
    for l in feed.stdout.lines().filter(|l| l.contains(FAKE_LINE)) {
        assert!(
            l.starts_with(CONTINUATION),
            "feed: {l:?} poses as attune's line"
        );
    }
    let doc = assert_json_exact("feed --json", &b.run(&["feed", "--json"]), &everything);
    assert!(!doc["problems"].as_array().unwrap().is_empty(), "{doc:#}");

    let show = b.run(&["show", &journal_id]).ok();
    assert_shown_inert("show", &show, &[&journal]);
    assert_json_exact(
        "show --json",
        &b.run(&["show", &journal_id, "--json"]).ok(),
        &[&journal],
    );

    let status = b.run(&["status"]);
    assert_eq!(status.code, 3, "{status:?}");
    assert_shown_inert("status", &status, &[&pause]);
    assert!(status.stderr.contains("[altered]"), "{status:?}");
    assert!(
        status.stdout.contains("Al\\u{1b}[2Jex"),
        "{}",
        status.stdout
    );
    assert_json_exact("status --json", &b.run(&["status", "--json"]), &[&pause]);

    for args in [
        &["today"][..],
        &["today", "--json"],
        &["stats"],
        &["stats", "--json"],
    ] {
        let run = b.run(args).ok();
        assert_inert(
            &format!("{args:?}"),
            &format!("{}{}", run.stdout, run.stderr),
        );
    }
    let today = b.run(&["today"]).ok();
    assert!(today.stdout.contains("Al\\u{1b}[2Jex"), "{}", today.stdout);

    let gratitude = b.run(&["gratitude"]).ok();
    assert_shown_inert("gratitude", &gratitude, &[&thanks, &appreciate]);
    assert_json_exact(
        "gratitude --json",
        &b.run(&["gratitude", "--json"]).ok(),
        &[&thanks],
    );

    assert_json_exact("export", &b.run(&["export"]).ok(), &everything);
    let md = b.run(&["export", "--format", "markdown"]).ok();
    assert_shown_inert("export --format markdown", &md, &[]);
    for t in everything {
        let label = t.split(' ').next().unwrap();
        assert!(md.stdout.contains(label), "the export lacks {label}");
    }
    // Markdown shows `\u{1b}[8m` as written: its backslash and bracket are escaped.
    assert!(md.stdout.contains("\\\\u{1b}\\[8mHIDDEN"), "{}", md.stdout);
    for l in md.stdout.lines() {
        assert_ne!(
            l, FAKE_HEADING,
            "the export shows a partner's line as a heading"
        );
        // `\<` is a literal `<` in Markdown; a bare one starts HTML.
        assert!(
            l.match_indices("<img").all(|(i, _)| l[..i].ends_with('\\')),
            "raw HTML in the Markdown export: {l:?}"
        );
    }
    // The HTML report: escaped for HTML, and no raw control either (`cat` it).
    let html_path = c.dir.path().join("report.html");
    b.run(&["report", "--out", html_path.to_str().unwrap()])
        .ok();
    let html = std::fs::read_to_string(&html_path).unwrap();
    assert_inert("report", &html);
    assert!(html.contains(thanks.split(' ').next().unwrap()), "{html}");
    assert!(html.contains(ESCAPED_HIDE), "{html}");
    eprintln!("inert outputs: {:?}", started.elapsed());
}

/// A relay that answers every request with a refusal whose message and code carry
/// escape sequences; it runs until the test ends.
fn hostile_relay() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let body = serde_json::json!({
        "error": {
            "code": "nope\u{1b}]52;c;cHduZWQ=\u{7}",
            "message": format!("refused {ESCAPES}\n{FAKE_LINE}"),
        }
    })
    .to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { break };
            let body = body.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut buf = vec![0u8; 65536];
                let mut got = Vec::new();
                // Read the whole request (closing with unread bytes would reset
                // the connection); the answer does not depend on it.
                let wanted = loop {
                    if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&got[..end]).to_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse().ok())
                            .unwrap_or(0);
                        break end + 4 + len;
                    }
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                };
                while got.len() < wanted {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(n) => got.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = write!(
                    conn,
                    "HTTP/1.1 403 Forbidden\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    url
}

#[test]
fn a_relays_error_message_is_shown_escaped() {
    let dir = tempfile::tempdir().unwrap();
    let relay = hostile_relay();
    let fresh = Attune::new(&dir.path().join("fresh"));
    fresh.init("Alex");
    let run = fresh.run(&["pair", "invite", "--relay", &relay, "--timeout", "5"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_inert("pair invite", &format!("{}{}", run.stdout, run.stderr));
    assert!(run.stderr.contains("refused \\u{1b}[31mred"), "{run:?}");

    // A paired profile whose relay turned hostile: sync, a write's push, watch.
    let c = Couple::new(&[]);
    set_meta(&c.b, "relay", &relay);
    let sync = c.b.run(&["sync"]);
    assert_eq!(sync.code, 1, "{sync:?}");
    let journal = c.b.run(&["journal", "-m", "still here"]).ok();
    let watch = c.b.run(&["watch", "--seconds", "2"]);
    assert_ne!(watch.code, 0, "{watch:?}");
    for (what, run) in [("sync", &sync), ("journal", &journal), ("watch", &watch)] {
        assert_inert(what, &format!("{}{}", run.stdout, run.stderr));
        assert!(run.stderr.contains(ESCAPED_HIDE), "{what}: {run:?}");
        for l in run.stderr.lines() {
            assert!(!l.starts_with("[forged]"), "{what}: {l:?}");
        }
    }
    drop(c);
}

/// Pairs `inviter` and `joiner`; returns both runs (either may fail).
fn try_pair(inviter: &Attune, joiner: &Attune, relay: &str) -> (Run, Run) {
    let mut inv = inviter
        .command(&["pair", "invite", "--relay", relay, "--timeout", "30"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(inv.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let code = first.trim().strip_prefix("code: ").unwrap().to_string();
    let joined = joiner.run(&["pair", "join", &code, "--relay", relay, "--timeout", "30"]);
    let mut rest = String::new();
    stdout.read_to_string(&mut rest).unwrap();
    let mut err = String::new();
    inv.stderr.take().unwrap().read_to_string(&mut err).unwrap();
    let status = inv.wait().unwrap();
    let invited = Run {
        code: status.code().unwrap_or(-1),
        stdout: first + &rest,
        stderr: err,
    };
    (invited, joined)
}

#[test]
fn names_with_control_characters_are_refused_at_init_and_in_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let bad = "Mal\u{1b}[2J\u{1b}]52;c;cHduZWQ=\u{7}lory";
    for name in [
        bad,
        "Mal\nlory",
        "Mal\u{9b}8mlory",
        "\u{202e}yrollaM",
        &"x".repeat(65),
    ] {
        let who = Attune::new(&dir.path().join(format!("init{}", name.len())));
        let run = who.run(&["init", "--name", name, "--no-passphrase"]);
        assert_eq!(run.code, 1, "init --name {name:?} was accepted: {run:?}");
        assert!(run.stderr.contains("--name"), "{run:?}");
        assert_inert("init", &format!("{}{}", run.stdout, run.stderr));
    }
    // A name that is only long in bytes is fine.
    Attune::new(&dir.path().join("wide")).init(&"é".repeat(64));

    // A modified client that sends a hostile name: refused on both sides of pairing.
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    for mallory_invites in [true, false] {
        let tag = if mallory_invites { "inv" } else { "join" };
        let mallory = Attune::new(&dir.path().join(format!("mallory-{tag}")));
        let honest = Attune::new(&dir.path().join(format!("honest-{tag}")));
        mallory.init("Mallory");
        honest.init("Sam");
        set_meta(&mallory, "device_name", bad);
        let (invited, joined) = if mallory_invites {
            let (i, j) = try_pair(&mallory, &honest, &relay.url);
            (i, j)
        } else {
            try_pair(&honest, &mallory, &relay.url)
        };
        let honest_run = if mallory_invites { &joined } else { &invited };
        assert_ne!(
            honest_run.code, 0,
            "{tag}: pairing with a hostile name succeeded: {honest_run:?}"
        );
        assert!(
            honest_run.stderr.contains("name"),
            "{tag}: the refusal does not say why: {honest_run:?}"
        );
        for run in [&invited, &joined] {
            assert_inert(tag, &format!("{}{}", run.stdout, run.stderr));
        }
        let st = honest.run(&["status", "--json"]).ok().json();
        assert_eq!(st["paired"], false, "{tag}: {st:#}");
    }
}
