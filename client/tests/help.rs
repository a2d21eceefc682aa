//! `attune --help` lists every command and `--version` prints the version.
//! (Being an integration test of this package also makes `cargo test --workspace`
//! build the binary that the end-to-end tests in `tests/` drive.)
#![allow(clippy::expect_used)]

use std::process::Command;

fn attune(args: &[&str]) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_attune"))
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("attune runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn help_lists_every_command() {
    let (ok, help) = attune(&["--help"]);
    assert!(ok);
    for command in [
        "init",
        "pair",
        "verify",
        "checkin",
        "journal",
        "withdraw",
        "edit",
        "delete",
        "sync",
        "feed",
        "show",
        "status",
        "watch",
        "export",
        "leave",
        "ask",
        "answer",
        "mark",
        "reflect",
        "confirm",
        "correct",
        "timeout",
        "resume",
        "appreciate",
        "gratitude",
        "today",
        "stats",
        "report",
        "challenge",
        "feelings",
        "completions",
        "demo",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{command} "))),
            "--help lacks {command}:\n{help}"
        );
    }
}

#[test]
fn version_and_completions() {
    let (ok, version) = attune(&["--version"]);
    assert!(ok);
    assert_eq!(
        version.trim(),
        format!("attune {}", env!("CARGO_PKG_VERSION"))
    );
    let (ok, script) = attune(&["completions", "bash"]);
    assert!(ok);
    assert!(script.contains("attune"), "{script}");
}

#[test]
fn the_demo_runs_the_whole_exchange() {
    let (ok, out) = attune(&["demo"]);
    assert!(ok, "{out}");
    for expected in [
        "code: ",
        "safety number",
        "[revealed · your guess: mood off by 1, named 1 of their 2 feelings]",
        "Private note",
        "what the relay stored: ciphertext",
    ] {
        assert!(
            out.contains(expected),
            "the demo lacks {expected:?}:\n{out}"
        );
    }
    // The private note appears once: on Alex's feed, not Sam's.
    assert_eq!(out.matches("Private note: remember").count(), 1, "{out}");
}
