//! "The relay cannot read" as a fact about the build: attune-relay links neither
//! attune-crypto nor any crate that implements attune's envelopes or key wraps
//! (DESIGN.md §1). Its one cryptographic library beyond signature checks is the
//! TLS provider, ring, which only rustls may use (ARCHITECTURE.md says why); and
//! the PostgreSQL driver's random numbers come from `rand`, whose generator is
//! the ChaCha block function (the `chacha20` crate with only its `rng` feature:
//! no cipher), which only `rand` may use.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

/// Crates that can decrypt content (or wrap keys), none of which the relay may link.
const FORBIDDEN: &[&str] = &[
    "attune-crypto",
    "aead",
    "chacha20poly1305",
    "poly1305",
    "xsalsa20poly1305",
    "aes-gcm",
    "aes-gcm-siv",
    "aes",
    "crypto_box",
    "hpke",
    "x25519-dalek",
    "aws-lc-rs",
    "orion",
    "sodiumoxide",
    "libsodium-sys",
    "openssl",
];

/// The TLS provider, and the only crates that may use it.
const TLS_PROVIDER: &str = "ring";
const TLS_PROVIDER_USERS: &[&str] = &["rustls", "rustls-webpki"];

/// `chacha20` as a random number generator only: the crate that may use it, and
/// the only feature it may have (its cipher interface stays out of the build).
const RNG_CIPHER: &str = "chacha20";
const RNG_CIPHER_USERS: &[&str] = &["rand"];
const RNG_CIPHER_FEATURES: &[&str] = &["rng"];

/// The features `dependency` is built with in `package`'s tree, if it is there.
fn features_of(package: &str, dependency: &str) -> Option<Vec<String>> {
    let line = tree_lines(package, &["-i", dependency], "none", "{p} [{f}]")
        .into_iter()
        .next()?;
    let inside = line.split_once('[')?.1.trim_end_matches(']');
    Some(
        inside
            .split(',')
            .filter(|f| !f.is_empty())
            .map(str::to_string)
            .collect(),
    )
}

fn tree_lines(package: &str, extra: &[&str], prefix: &str, format: &str) -> Vec<String> {
    let mut args = vec![
        "tree",
        "-p",
        package,
        "-e",
        "normal,build",
        "--prefix",
        prefix,
        "--format",
        format,
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."))
        .output()
        .expect("cargo tree runs");
    if !out.status.success() {
        // `-i` of a crate the tree does not have.
        return Vec::new();
    }
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn tree(package: &str, extra: &[&str], prefix: &str) -> Vec<String> {
    let mut args = vec![
        "tree",
        "-p",
        package,
        "-e",
        "normal,build",
        "--prefix",
        prefix,
        "--format",
        "{p}",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(env!("CARGO"))
        .args(&args)
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

fn packages(package: &str) -> Vec<String> {
    tree(package, &[], "none")
}

/// The crates that depend on `dependency` directly, in `package`'s tree.
fn direct_users(package: &str, dependency: &str) -> Vec<String> {
    tree(package, &["-i", dependency], "depth")
        .into_iter()
        .filter_map(|l| l.strip_prefix('1').map(str::to_string))
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
    let users = direct_users("attune-relay", TLS_PROVIDER);
    let others: Vec<_> = users
        .iter()
        .filter(|u| !TLS_PROVIDER_USERS.contains(&u.as_str()))
        .collect();
    assert!(
        others.is_empty(),
        "in attune-relay, {others:?} use {TLS_PROVIDER}: only {TLS_PROVIDER_USERS:?} may"
    );
    if relay.iter().any(|p| p == RNG_CIPHER) {
        let users = direct_users("attune-relay", RNG_CIPHER);
        let others: Vec<_> = users
            .iter()
            .filter(|u| !RNG_CIPHER_USERS.contains(&u.as_str()))
            .collect();
        assert!(
            others.is_empty(),
            "in attune-relay, {others:?} use {RNG_CIPHER}: only {RNG_CIPHER_USERS:?} may"
        );
        let features = features_of("attune-relay", RNG_CIPHER).expect("its features");
        let extra: Vec<_> = features
            .iter()
            .filter(|f| !RNG_CIPHER_FEATURES.contains(&f.as_str()))
            .collect();
        assert!(
            extra.is_empty(),
            "{RNG_CIPHER} is built with {extra:?} in attune-relay: only {RNG_CIPHER_FEATURES:?} (no cipher)"
        );
    }
}

#[test]
fn the_check_can_fail() {
    // The same query on the client finds what the relay must not have.
    let client = packages("attune");
    assert!(client.iter().any(|p| p == "attune-crypto"));
    assert!(client.iter().any(|p| p == "chacha20poly1305"));
    // And the provider check sees who uses ring.
    let users = direct_users("attune-relay", TLS_PROVIDER);
    assert!(users.iter().any(|u| u == "rustls"), "{users:?}");
    // And the feature check reads features: the client builds chacha20 as a
    // cipher (it may link more than one version of it).
    let versions: Vec<String> = tree_lines("attune", &[], "none", "{p}")
        .into_iter()
        .filter_map(|l| {
            let v = l.strip_prefix("chacha20 v")?.split_whitespace().next()?;
            Some(format!("{RNG_CIPHER}@{v}"))
        })
        .collect();
    let as_cipher = versions.iter().any(|spec| {
        features_of("attune", spec)
            .is_some_and(|f| f.iter().any(|f| !RNG_CIPHER_FEATURES.contains(&f.as_str())))
    });
    assert!(as_cipher, "{versions:?}");
}
