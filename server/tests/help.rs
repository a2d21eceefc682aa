//! `attune-relay --help` documents every setting, each with its environment variable.
//! (Being an integration test of this package also makes `cargo test --workspace`
//! build the binary that the end-to-end tests in `tests/` start.)

use std::process::Command;

#[test]
fn help_documents_every_setting() {
    let out = Command::new(env!("CARGO_BIN_EXE_attune-relay"))
        .arg("--help")
        .output()
        .expect("attune-relay runs");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for (flag, env) in [
        ("--listen", "ATTUNE_RELAY_LISTEN"),
        ("--db", "ATTUNE_RELAY_DB"),
        ("--max-body", "ATTUNE_RELAY_MAX_BODY"),
        ("--max-envelope", "ATTUNE_RELAY_MAX_ENVELOPE"),
        ("--max-batch", "ATTUNE_RELAY_MAX_BATCH"),
        ("--space-quota", "ATTUNE_RELAY_SPACE_QUOTA"),
        ("--rate", "ATTUNE_RELAY_RATE"),
        ("--burst", "ATTUNE_RELAY_BURST"),
        ("--max-skew-secs", "ATTUNE_RELAY_MAX_SKEW"),
        ("--page-limit", "ATTUNE_RELAY_PAGE"),
        ("--request-timeout-secs", "ATTUNE_RELAY_REQUEST_TIMEOUT"),
        ("--mailbox-ttl-secs", "ATTUNE_RELAY_MAILBOX_TTL"),
        ("--max-mailboxes", "ATTUNE_RELAY_MAX_MAILBOXES"),
        (
            "--max-mailboxes-per-space",
            "ATTUNE_RELAY_MAX_MAILBOXES_PER_SPACE",
        ),
        (
            "--max-mailboxes-per-address",
            "ATTUNE_RELAY_MAX_MAILBOXES_PER_ADDRESS",
        ),
        (
            "--pairing-attempts-per-min",
            "ATTUNE_RELAY_PAIRING_ATTEMPTS_PER_MIN",
        ),
        (
            "--pairing-attempts-per-min-total",
            "ATTUNE_RELAY_PAIRING_ATTEMPTS_PER_MIN_TOTAL",
        ),
        ("--trusted-proxy", "ATTUNE_RELAY_TRUSTED_PROXY"),
        ("--readers", "ATTUNE_RELAY_READERS"),
        ("--log", "ATTUNE_RELAY_LOG"),
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
        assert!(help.contains(env), "--help lacks {env}:\n{help}");
    }
}

#[test]
fn a_bad_setting_is_one_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_attune-relay"))
        .args(["--listen", "not-an-address"])
        .output()
        .expect("attune-relay runs");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen"), "{err}");
}
