//! "The relay cannot read" as a fact about the build: attune-relay links neither
//! attune-crypto nor any AEAD or decryption crate (DESIGN.md §1).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Crates that can decrypt content (or wrap keys), none of which the relay may link.
const FORBIDDEN: &[&str] = &[
    "attune-crypto",
    "aead",
    "chacha20poly1305",
    "chacha20",
    "poly1305",
    "xsalsa20poly1305",
    "aes-gcm",
    "aes-gcm-siv",
    "aes",
    "crypto_box",
    "hpke",
    "x25519-dalek",
    "ring",
    "aws-lc-rs",
    "orion",
    "sodiumoxide",
    "libsodium-sys",
    "openssl",
];

fn packages(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args([
            "tree",
            "-p",
            package,
            "-e",
            "normal,build",
            "--prefix",
            "none",
            "--format",
            "{p}",
        ])
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    assert!(
        out.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

#[test]
fn relay_links_no_decryption_code() {
    let relay = packages("attune-relay");
    assert!(relay.iter().any(|p| p == "attune-proto"), "{relay:?}");
    let bad: Vec<_> = relay
        .iter()
        .filter(|p| FORBIDDEN.contains(&p.as_str()))
        .collect();
    assert!(bad.is_empty(), "attune-relay links {bad:?}");
}

#[test]
fn the_check_can_fail() {
    // The same query on the client finds what the relay must not have.
    let client = packages("attune");
    assert!(client.iter().any(|p| p == "attune-crypto"));
    assert!(client.iter().any(|p| p == "chacha20poly1305"));
}
