//! `attune-relay backup --out FILE`: a consistent copy of the database while the
//! relay serves, and a restore from it that the couple's devices carry on with.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use attune_tests::{bin, Couple};

fn count(db: &std::path::Path, table: &str) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn backup(db: &std::path::Path, out: &std::path::Path) -> std::process::Output {
    Command::new(bin("attune-relay"))
        .args(["--db"])
        .arg(db)
        .args(["backup", "--out"])
        .arg(out)
        .output()
        .unwrap()
}

#[test]
fn a_backup_taken_while_serving_restores_the_couples_history() {
    let mut c = Couple::new(&[]);
    for i in 0..5 {
        c.a.run(&["journal", "-m", &format!("before the backup {i}")])
            .ok();
    }
    c.b.run(&["sync"]).ok();
    let out = c.dir.path().join("backup.sqlite3");
    let done = backup(&c.relay.db, &out);
    assert!(done.status.success(), "{done:?}");
    assert!(String::from_utf8_lossy(&done.stdout).contains("backed up"));
    for table in ["envelopes", "roster", "spaces"] {
        assert_eq!(count(&out, table), count(&c.relay.db, table), "{table}");
    }
    // An existing file is never overwritten.
    let again = backup(&c.relay.db, &out);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    // Restore: stop the relay, put the copy in place, start it again.
    c.relay.kill9();
    for suffix in ["", "-wal", "-shm"] {
        let f = format!("{}{suffix}", c.relay.db.display());
        let _ = std::fs::remove_file(&f);
    }
    std::fs::copy(&out, &c.relay.db).unwrap();
    c.relay.restart();
    // Both carry on: chains continue where the copy left them.
    c.a.run(&["journal", "-m", "after the restore"]).ok();
    let synced = c.b.run(&["sync"]).ok();
    assert!(synced.stdout.contains("received 1"), "{synced:?}");
    let feed = c.b.run(&["feed", "--json"]).ok().json();
    assert_eq!(feed["problems"], serde_json::json!([]), "{feed:#}");
    assert_eq!(feed["entries"].as_array().unwrap().len(), 6);
}
