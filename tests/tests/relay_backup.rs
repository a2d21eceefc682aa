//! The relay's operator commands: `attune-relay backup --out FILE` (a consistent
//! copy of the database while the relay serves, and a restore from it that the
//! couple's devices carry on with) and `attune-relay health` (what a container's
//! health check runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

use attune_tests::{bin, Couple, Relay, TestCerts};

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

fn health(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(bin("attune-relay"))
        .args(args)
        .arg("health")
        .env_remove("ATTUNE_RELAY_LISTEN")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn health_says_whether_the_relay_with_the_same_settings_answers() {
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(&dir.path().join("plain"), &[]);
    let listen = relay.addr.to_string();
    let (ok, out, err) = health(&["--listen", &listen]);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("the relay on {listen} answered")),
        "{out}"
    );
    // Listening on every address, it is asked on loopback.
    let any = format!("0.0.0.0:{}", relay.addr.port());
    let (ok, out, err) = health(&["--listen", &any]);
    assert!(ok, "{out}{err}");

    // With TLS it can only see the port accept a connection, and says so.
    let certs = TestCerts::generate(&dir.path().join("certs"), "health");
    let tls = Relay::start_with_certs(&dir.path().join("tls"), &certs, &[]);
    let tls_listen = tls.addr.to_string();
    let (ok, out, err) = health(&[
        "--listen",
        &tls_listen,
        "--tls-cert",
        certs.cert.to_str().unwrap(),
        "--tls-key",
        certs.key.to_str().unwrap(),
    ]);
    assert!(ok, "{out}{err}");
    assert!(out.contains("accepts connections"), "{out}");

    // Something that is not a relay on the port: unhealthy, exit 1.
    let not_http = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let not_http_addr = not_http.local_addr().unwrap().to_string();
    let closer = std::thread::spawn(move || {
        if let Ok((stream, _)) = not_http.accept() {
            drop(stream);
        }
    });
    let (ok, out, err) = health(&["--listen", &not_http_addr]);
    closer.join().unwrap();
    assert!(!ok, "{out}");
    assert!(
        err.contains("closed the connection without answering /healthz"),
        "{err}"
    );

    // The relay stopped: unhealthy, with what to check.
    relay.terminate();
    let (ok, out, err) = health(&["--listen", &listen]);
    assert!(!ok, "{out}");
    assert!(
        err.starts_with("unhealthy: nothing accepts connections on"),
        "{err}"
    );
    assert!(err.contains("is the relay running"), "{err}");
}
