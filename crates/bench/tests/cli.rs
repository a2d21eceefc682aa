//! The `attune-bench` binary answers `--help` with its commands. Also, being an
//! integration test of this package, it makes `cargo test --workspace` build the
//! binary, which `tests/tests/history_gen.rs` runs.

use std::process::Command;

#[test]
fn the_binary_lists_its_commands() {
    let out = Command::new(env!("CARGO_BIN_EXE_attune-bench"))
        .arg("--help")
        .output()
        .expect("attune-bench runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for command in ["history", "client"] {
        assert!(text.contains(command), "{command} missing from:\n{text}");
    }
}
