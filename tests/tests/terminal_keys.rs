//! At the keyboard, through a real pseudo-terminal: the interactive check-in
//! edited with the arrow keys (and Up recalling an answer, and a guess that
//! cannot be read asked again), the coach's "Send it now?" (no never sends), `edit ID` opening the
//! editor on the entry's current text, `$EDITOR` with arguments, the question in
//! `answer` and the partner's words in `reflect` as comment lines below a
//! scissors line that are left out, a missing editor named in the error, and the
//! feed's pager (only on a terminal, only when taller than the screen) and filters.
//!
//! Each session has a time limit on every wait and is killed when dropped.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use attune_tests::{Attune, Couple};
use expectrl::process::unix::WaitStatus;
use expectrl::session::OsSession;
use expectrl::Expect;

const LEFT: &str = "\x1b[D";
const UP: &str = "\x1b[A";
const BACKSPACE: &str = "\x7f";
const ENTER: &str = "\r";

/// `attune ARGS` for `who`, on a fresh pseudo-terminal of 120 columns and
/// `rows` rows, with `env` added.
fn on_terminal(who: &Attune, args: &[&str], env: &[(&str, &str)], rows: u16) -> OsSession {
    let mut cmd = who.command(args);
    // The pseudo-terminal is standard input, output and error.
    cmd.stdin(Stdio::inherit())
        .stdout(Stdio::inherit())
        .stderr(Stdio::inherit())
        .env("TERM", "xterm")
        .env_remove("VISUAL")
        .env_remove("EDITOR")
        .env_remove("PAGER")
        .env_remove("LESS");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut s = expectrl::Session::spawn(cmd).expect("attune starts on a pseudo-terminal");
    s.get_process_mut()
        .set_window_size(120, rows)
        .expect("window size");
    s.set_expect_timeout(Some(Duration::from_secs(60)));
    s
}

/// Types `keys` as separate keystrokes (each escape sequence is one key).
fn keys(s: &mut OsSession, keys: &[&str]) {
    for k in keys {
        s.send(k).unwrap();
        std::thread::sleep(Duration::from_millis(40));
    }
}

/// Waits for `text` on the terminal (panics after the session's time limit).
fn wait_for(s: &mut OsSession, text: &str) {
    if let Err(e) = s.expect(text) {
        panic!("waited for {text:?} on the terminal: {e}");
    }
}

/// Waits for the process to end and returns its exit code.
fn exit_code(mut s: OsSession) -> i32 {
    let _ = s.expect(expectrl::Eof);
    for _ in 0..600 {
        match s.get_process().status() {
            Ok(WaitStatus::Exited(_, code)) => return code,
            Ok(WaitStatus::Signaled(_, sig, _)) => panic!("attune was killed by {sig:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
    panic!("attune did not end within 60 s");
}

/// An editor: a shell script that checks its flag, keeps a copy of the file
/// it was given (as `seen`), then runs `then` on the file (`$F`).
fn editor_script(dir: &Path, name: &str, then: &str) -> (PathBuf, PathBuf) {
    let script = dir.join(format!("{name}.sh"));
    let seen = dir.join(format!("{name}.seen"));
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\n\
             [ \"$1\" = \"--flag\" ] || {{ echo \"editor: expected --flag first, got $1\" >&2; exit 9; }}\n\
             [ \"$2\" = \"two words\" ] || {{ echo \"editor: expected 'two words', got $2\" >&2; exit 9; }}\n\
             F=\"$3\"\n\
             cp \"$F\" '{seen}'\n\
             {then}\n",
            seen = seen.display()
        ),
    )
    .unwrap();
    (script, seen)
}

/// The value of `$EDITOR` that runs `script` with two arguments, one quoted.
fn editor_line(script: &Path) -> String {
    format!("sh '{}' --flag 'two words'", script.display())
}

fn entries(who: &Attune) -> Vec<serde_json::Value> {
    who.run(&["feed", "--json"]).ok().json()["entries"]
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn the_interactive_checkin_is_edited_with_the_arrow_keys() {
    let c = Couple::new(&[]);
    let mut s = on_terminal(&c.a, &["checkin"], &[], 40);
    wait_for(&mut s, "How are you");
    // "5", Left, "1": the line reads "15", which is refused.
    keys(&mut s, &["5", LEFT, "1", ENTER]);
    wait_for(&mut s, "not '15'");
    wait_for(&mut s, "How are you");
    // Up recalls "15"; Left, Backspace removes the "1".
    keys(&mut s, &[UP, LEFT, BACKSPACE, ENTER]);
    wait_for(&mut s, "what you feel");
    // "hopefl", Left, "u": "hopeful".
    keys(&mut s, &["h", "o", "p", "e", "f", "l", LEFT, "u", ENTER]);
    wait_for(&mut s, "best moment");
    // "a walk", then three Lefts and "slow ": "a slow walk".
    keys(
        &mut s,
        &[
            "a", " ", "w", "a", "l", "k", LEFT, LEFT, LEFT, LEFT, "s", "l", "o", "w", " ", ENTER,
        ],
    );
    wait_for(&mut s, "hardest moment");
    // "trafic", Left, Left, "f": "traffic".
    keys(
        &mut s,
        &["t", "r", "a", "f", "i", "c", LEFT, LEFT, "f", ENTER],
    );
    wait_for(&mut s, "appreciate about your partner");
    keys(&mut s, &[ENTER]);
    wait_for(&mut s, "What do you need now");
    // "listn", Left, "e": "listen".
    keys(&mut s, &["l", "i", "s", "t", "n", LEFT, "e", ENTER]);
    wait_for(&mut s, "mood, 1-10");
    // A guess that cannot be read is asked again; nothing typed so far is lost.
    keys(&mut s, &["s", "e", "v", "e", "n", ENTER]);
    wait_for(&mut s, "not 'seven'");
    wait_for(&mut s, "mood, 1-10");
    // The guess of Sam's mood: "9", Backspace, "7".
    keys(&mut s, &["9", BACKSPACE, "7", ENTER]);
    wait_for(&mut s, "feelings, two or three words");
    keys(&mut s, &["b", "u", "s", "y", ENTER]);
    wait_for(&mut s, "'busy' is not in the emotion vocabulary");
    wait_for(&mut s, "feelings, two or three words");
    keys(&mut s, &[ENTER]);
    wait_for(&mut s, "checked in, sealed until");
    assert_eq!(exit_code(s), 0);

    let all = entries(&c.a);
    let mine: Vec<_> = all.iter().filter(|e| e["kind"] == "checkin").collect();
    assert_eq!(mine.len(), 1, "{all:#?}");
    let e = mine[0];
    assert_eq!(e["checkin"]["mood"], 5, "{e:#}");
    assert_eq!(
        e["checkin"]["feelings"],
        serde_json::json!(["hopeful"]),
        "{e:#}"
    );
    assert_eq!(e["checkin"]["high"], "a slow walk", "{e:#}");
    assert_eq!(e["checkin"]["low"], "traffic", "{e:#}");
    assert_eq!(e["checkin"]["appreciate"], serde_json::Value::Null, "{e:#}");
    assert_eq!(e["checkin"]["need"], "listen", "{e:#}");
    assert_eq!(e["guess"]["mood"], 7, "{e:#}");
}

#[test]
fn the_coachs_send_it_now_never_sends_on_no_and_asks_again_when_unclear() {
    let c = Couple::new(&[]);
    let heated = "You ALWAYS ignore me and you never listen, whatever.";
    // A journal entry: "maybe" is asked again, "no" holds it on this device.
    let mut s = on_terminal(&c.a, &["journal", "-m", heated], &[], 40);
    wait_for(&mut s, "heat of the moment");
    wait_for(&mut s, "Send it now?");
    keys(&mut s, &["m", "a", "y", "b", "e", ENTER]);
    wait_for(
        &mut s,
        "answer y or press Enter to send it, or n to hold it",
    );
    wait_for(&mut s, "Send it now?");
    keys(&mut s, &["n", "o", ENTER]);
    wait_for(&mut s, "held on this device until");
    assert_eq!(exit_code(s), 0);
    c.b.run(&["sync"]).ok();
    assert!(
        entries(&c.b).iter().all(|e| e["kind"] != "journal"),
        "a held entry reached the partner: {:#?}",
        entries(&c.b)
    );

    // A reflection: "no" writes nothing at all.
    let id =
        c.b.run(&["journal", "-m", "I had a long day at work."])
            .ok();
    let id = id.stdout.split(['(', ')']).nth(1).unwrap().to_string();
    c.a.run(&["sync"]).ok();
    let said = "You never listen, you always make it about you.";
    let mut s = on_terminal(&c.a, &["reflect", &id[..8], "-m", said], &[], 40);
    wait_for(&mut s, "Send it now?");
    keys(&mut s, &["n", ENTER]);
    wait_for(&mut s, "not sent: nothing was written");
    assert_ne!(exit_code(s), 0);
    assert!(
        entries(&c.a).iter().all(|e| e["kind"] != "reflect"),
        "{:#?}",
        entries(&c.a)
    );

    // Enter sends.
    let mut s = on_terminal(&c.a, &["reflect", &id[..8], "-m", said], &[], 40);
    wait_for(&mut s, "Send it now?");
    keys(&mut s, &[ENTER]);
    assert_eq!(exit_code(s), 0);
    assert!(entries(&c.a).iter().any(|e| e["kind"] == "reflect"));
}

#[test]
fn edit_opens_the_editor_on_the_current_text_and_editor_takes_arguments() {
    let c = Couple::new(&[]);
    let id =
        c.a.run(&["journal", "-m", "first line\n\n# A heading\nsecond line"])
            .ok();
    let id = id
        .stdout
        .trim()
        .rsplit('(')
        .next()
        .unwrap()
        .trim_end_matches(')')
        .to_string();
    let (script, seen) = editor_script(
        c.dir.path(),
        "append",
        "printf 'appended line\\n' >> \"$F\"",
    );
    let editor = editor_line(&script);
    let s = on_terminal(
        &c.a,
        &["edit", &id[..8]],
        &[("EDITOR", editor.as_str())],
        40,
    );
    assert_eq!(exit_code(s), 0);
    // The editor was handed the entry's current text, and nothing else.
    assert_eq!(
        std::fs::read_to_string(&seen).unwrap(),
        "first line\n\n# A heading\nsecond line\n"
    );
    let all = entries(&c.a);
    let e = all.iter().find(|e| e["id"] == id.as_str()).unwrap();
    assert_eq!(
        e["text"],
        "first line\n\n# A heading\nsecond line\nappended line"
    );
    assert_eq!(e["edited"], true);

    // $VISUAL comes before $EDITOR; an editor that is not installed is named.
    let s = on_terminal(
        &c.a,
        &["edit", &id[..8]],
        &[
            ("VISUAL", "no-such-editor-here --wait"),
            ("EDITOR", editor.as_str()),
        ],
        40,
    );
    let mut s = s;
    wait_for(
        &mut s,
        "could not start the editor 'no-such-editor-here --wait' ($VISUAL)",
    );
    wait_for(
        &mut s,
        "'no-such-editor-here' is not installed here or not on your PATH",
    );
    assert_eq!(exit_code(s), 1);
    let e = entries(&c.a)
        .into_iter()
        .find(|e| e["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        e["text"],
        "first line\n\n# A heading\nsecond line\nappended line"
    );

    // Saving the text unchanged writes no edit.
    let (same, _) = editor_script(c.dir.path(), "same", "true");
    let same = editor_line(&same);
    let mut s = on_terminal(&c.a, &["edit", &id[..8]], &[("EDITOR", same.as_str())], 40);
    wait_for(&mut s, "unchanged: nothing to save");
    assert_eq!(exit_code(s), 0);
}

#[test]
fn answer_and_reflect_show_their_context_below_a_scissors_line_that_is_left_out() {
    let c = Couple::new(&[]);
    let asked =
        c.a.run(&["ask", "question", "What made you laugh this week?"])
            .ok();
    let exercise = asked
        .stdout
        .split("started (")
        .nth(1)
        .unwrap()
        .split(')')
        .next()
        .unwrap()
        .to_string();
    c.a.run(&["journal", "-m", "I felt \u{1b}[31mtired\u{1b}[0m today"])
        .ok();
    c.b.run(&["sync"]).ok();

    // The answer: Markdown headings of one's own survive; the question does not.
    let (script, seen) = editor_script(
        c.dir.path(),
        "answer",
        "{ printf '# My heading\\nThe cat, again.\\n'; cat \"$F\"; } > \"$F.new\" && mv \"$F.new\" \"$F\"",
    );
    let editor = editor_line(&script);
    let s = on_terminal(
        &c.b,
        &["answer", &exercise],
        &[("EDITOR", editor.as_str())],
        40,
    );
    assert_eq!(exit_code(s), 0);
    let opened = std::fs::read_to_string(&seen).unwrap();
    let scissors = "# ------------------------ >8 ------------------------\n";
    assert!(opened.starts_with('\n'), "{opened:?}");
    assert!(opened.contains(scissors), "{opened}");
    let below = opened.split(scissors).nth(1).unwrap();
    assert!(
        below.contains("\n# question of the day: What made you laugh this week?\n"),
        "{opened}"
    );
    assert!(below.lines().all(|l| l.starts_with('#')), "{opened}");
    let answers: Vec<_> = entries(&c.b)
        .into_iter()
        .filter(|e| e["kind"] == "answer")
        .collect();
    assert_eq!(answers.len(), 1, "{answers:#?}");
    assert_eq!(answers[0]["text"], "# My heading\nThe cat, again.");

    // The reflection: the partner's words are there, inert, and left out.
    let journal = entries(&c.b)
        .into_iter()
        .find(|e| e["kind"] == "journal")
        .unwrap();
    let jid = journal["id"].as_str().unwrap().to_string();
    let (script, seen) = editor_script(
        c.dir.path(),
        "reflect",
        "{ printf 'You sound worn out.\\n'; tail -n +2 \"$F\"; } > \"$F.new\" && mv \"$F.new\" \"$F\"",
    );
    // An editor that keeps the coach's sentence as it was, below its own line:
    // refused, nothing written.
    let (keeps, _) = editor_script(
        c.dir.path(),
        "keeps",
        "{ printf 'You sound worn out.\\n'; cat \"$F\"; } > \"$F.new\" && mv \"$F.new\" \"$F\"",
    );
    let keeps = editor_line(&keeps);
    let mut s = on_terminal(
        &c.b,
        &["reflect", &jid[..8]],
        &[("EDITOR", keeps.as_str())],
        40,
    );
    wait_for(&mut s, "starting sentence is still there as it was");
    assert_ne!(exit_code(s), 0);
    let editor = editor_line(&script);
    let s = on_terminal(
        &c.b,
        &["reflect", &jid[..8]],
        &[("EDITOR", editor.as_str())],
        40,
    );
    assert_eq!(exit_code(s), 0);
    let opened = std::fs::read_to_string(&seen).unwrap();
    let below = opened.split(scissors).nth(1).unwrap();
    assert!(below.contains("Alex wrote:"), "{opened}");
    assert!(
        below.contains("# I felt \\u{1b}[31mtired\\u{1b}[0m today"),
        "{opened}"
    );
    assert!(
        !opened.contains('\u{1b}'),
        "the partner's escapes reach the editor inert: {opened:?}"
    );
    let reflections: Vec<_> = entries(&c.b)
        .into_iter()
        .filter(|e| e["kind"] == "reflect")
        .collect();
    assert_eq!(reflections.len(), 1, "{reflections:#?}");
    // The editor opened on the coach's first sentence, built from Alex's words
    // (inert too), which this editor replaced with its own.
    assert!(opened.starts_with("It sounds like you felt "), "{opened}");
    assert_eq!(reflections[0]["text"], "You sound worn out.");
}

#[test]
fn the_feed_pages_only_on_a_terminal_and_only_when_taller_than_the_screen() {
    let c = Couple::new(&[]);
    for i in 1..=12 {
        c.a.run(&["journal", "-m", &format!("entry number {i}")])
            .ok();
    }
    let pager = c.dir.path().join("pager.sh");
    let paged = c.dir.path().join("paged.txt");
    std::fs::write(
        &pager,
        format!(
            "#!/bin/sh\necho \"LESS=$LESS\" > '{0}'\ncat >> '{0}'\n",
            paged.display()
        ),
    )
    .unwrap();
    let pager_line = format!("sh '{}'", pager.display());

    // A screen of 40 rows holds 12 entries: no pager.
    let mut s = on_terminal(&c.a, &["feed"], &[("PAGER", pager_line.as_str())], 40);
    wait_for(&mut s, "entry number 12");
    assert_eq!(exit_code(s), 0);
    assert!(!paged.exists(), "paged although it fit");

    // A screen of 8 rows does not: the pager gets all of it, with LESS=FRX.
    let s = on_terminal(&c.a, &["feed"], &[("PAGER", pager_line.as_str())], 8);
    assert_eq!(exit_code(s), 0);
    let text = std::fs::read_to_string(&paged).unwrap();
    assert!(text.starts_with("LESS=FRX\n"), "{text}");
    for i in 1..=12 {
        assert!(text.contains(&format!("entry number {i}  ")), "{text}");
    }

    // A pipe is never paged, and neither is JSON.
    std::fs::remove_file(&paged).unwrap();
    let mut piped = c.a.clone();
    piped.env.push(("PAGER".into(), pager_line.clone()));
    let out = piped.run(&["feed"]).ok();
    assert!(out.stdout.contains("entry number 12"), "{}", out.stdout);
    let mut s = on_terminal(
        &c.a,
        &["feed", "--json"],
        &[("PAGER", pager_line.as_str())],
        8,
    );
    wait_for(&mut s, "\"entries\"");
    assert_eq!(exit_code(s), 0);
    assert!(!paged.exists(), "a pipe or JSON was paged");
}

#[test]
fn feed_filters_take_the_words_people_use() {
    let c = Couple::new(&[]);
    c.a.run(&["journal", "-m", "alex one"]).ok();
    c.a.run(&["checkin", "--open", "--mood", "6"]).ok();
    c.b.run(&["journal", "-m", "sam one"]).ok();
    c.b.run(&[
        "journal",
        "-m",
        &format!("sam long\n{}", "a line\n".repeat(40)),
    ])
    .ok();
    c.a.run(&["sync"]).ok();

    // -n: the newest N.
    let out = c.a.run(&["feed", "-n", "2"]).ok().stdout;
    assert!(
        !out.contains("alex one") && !out.contains("mood 6"),
        "{out}"
    );
    assert!(out.contains("sam one") && out.contains("sam long"), "{out}");
    let json = c.a.run(&["feed", "-n", "1", "--json"]).ok().json();
    assert_eq!(json["entries"].as_array().unwrap().len(), 1);
    assert!(json["entries"][0]["text"]
        .as_str()
        .unwrap()
        .starts_with("sam long"));

    // --from NAME in any case, me, partner; an unknown name is a clear error.
    let out = c.a.run(&["feed", "--from", "SAM"]).ok().stdout;
    assert!(
        out.contains("sam one") && !out.contains("alex one"),
        "{out}"
    );
    let out = c.a.run(&["feed", "--from", "alex"]).ok().stdout;
    assert!(
        out.contains("alex one") && !out.contains("sam one"),
        "{out}"
    );
    let bad = c.a.run(&["feed", "--from", "Jo"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr
            .contains("--from takes me, partner, Alex (you) or Sam (your partner), not 'Jo'"),
        "{}",
        bad.stderr
    );

    // --kind in any case, several at once; every kind is listed in the help.
    let out = c.a.run(&["feed", "--kind", "CheckIn"]).ok().stdout;
    assert!(out.contains("mood 6") && !out.contains("alex one"), "{out}");
    let out = c.a.run(&["feed", "--kind", "journal,CHECKIN"]).ok().stdout;
    assert!(out.contains("mood 6") && out.contains("alex one"), "{out}");
    let help = c.a.run(&["feed", "--help"]).ok().stdout;
    for kind in attune_core::query::FeedKind::ALL {
        assert!(
            help.contains(kind.name()),
            "{} missing from:\n{help}",
            kind.name()
        );
    }

    // --since: words, spans and dates; a filter that matches nothing says so.
    for since in ["today", "yesterday", "7d", "2w", "monday", "Sunday"] {
        let out = c.a.run(&["feed", "--since", since]).ok().stdout;
        assert!(out.contains("alex one"), "--since {since}: {out}");
    }
    let out = c.a.run(&["feed", "--since", "2999-01-01"]).ok().stdout;
    assert!(out.contains("nothing matches --since 2999-01-01"), "{out}");
    assert!(!out.contains("to begin"), "{out}");
    let bad = c.a.run(&["feed", "--since", "someday"]);
    assert_eq!(bad.code, 1, "{bad:?}");
    assert!(
        bad.stderr.contains("yesterday") && bad.stderr.contains("7d"),
        "{}",
        bad.stderr
    );

    // A long entry is cut in the listing, with the way to see all of it.
    let out = c.a.run(&["feed", "--from", "partner"]).ok().stdout;
    let id = entries(&c.a)
        .into_iter()
        .find(|e| {
            e["text"]
                .as_str()
                .is_some_and(|t| t.starts_with("sam long"))
        })
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        out.contains(&format!("`attune show {}` shows all of it", &id[..8])),
        "{out}"
    );
    assert!(out.matches("a line").count() < 15, "{out}");
    let all = c.a.run(&["show", &id[..8]]).ok().stdout;
    assert_eq!(all.matches("a line").count(), 40, "{all}");
}
