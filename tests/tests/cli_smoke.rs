//! The smallest end-to-end run of the real binaries: init, pair, check in, sync, feed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_tests::{pair, Attune, Relay};

#[test]
fn pair_checkin_sync_feed() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = Attune::new(&dir.path().join("a"));
    let b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &relay.url);
    a.run(&["checkin", "--open", "--mood", "7", "--feel", "calm,hopeful"])
        .ok();
    b.run(&["sync"]).ok();
    let feed = b.run(&["feed", "--json"]).ok().json();
    let entries = feed["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["author"], "partner");
    assert_eq!(entries[0]["checkin"]["mood"], 7);
}
