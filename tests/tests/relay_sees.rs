//! What the relay sees (PROTOCOL.md §4, §9, §13; SECURITY.md "What the relay
//! sees"): every kind of item, written through the real CLI, looks the same in
//! what the relay stores and in the requests it receives. Each partner talks to
//! the relay through a SOCKS5 proxy this test runs, which records every HTTP
//! request (method, path, body size) on its way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use attune_tests::{add_device, Attune, Relay};
use rusqlite::Connection;
use serde_json::Value;

/// One request as the relay receives it, with the parts that differ between
/// any two requests (space id, cursors, device ids) normalised away.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Req {
    method: String,
    path: String,
    body: usize,
}

type Log = Arc<Mutex<Vec<Req>>>;

/// Replaces every run of 16+ hex digits (ids) and every number after `=` (cursors,
/// limits) so two requests of one shape compare equal.
fn normalise(path: &str) -> String {
    let mut out = String::new();
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 16 {
            out.push_str("{id}");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for ch in path.chars() {
        if ch.is_ascii_hexdigit() {
            run.push(ch);
        } else {
            flush(&mut run, &mut out);
            out.push(ch);
        }
    }
    flush(&mut run, &mut out);
    let mut parts = out.splitn(2, '?');
    let base = parts.next().unwrap_or_default().to_string();
    match parts.next() {
        Some(q) => {
            let q: Vec<String> = q
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) => format!("{k}=N"),
                    None => kv.to_string(),
                })
                .collect();
            format!("{base}?{}", q.join("&"))
        }
        None => base,
    }
}

/// Reads HTTP/1.1 requests off the client's side of a connection as they pass.
fn record_requests(mut from: TcpStream, mut to: TcpStream, log: Log) {
    let mut buf: Vec<u8> = Vec::new();
    let mut body_left = 0usize;
    let mut chunk = [0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&chunk[..n]).is_err() {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
        loop {
            if body_left > 0 {
                let take = body_left.min(buf.len());
                buf.drain(..take);
                body_left -= take;
                if body_left > 0 {
                    break;
                }
            }
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            buf.drain(..end + 4);
            let mut lines = head.lines();
            let first: Vec<&str> = lines.next().unwrap_or_default().split(' ').collect();
            let len = lines
                .filter_map(|l| l.split_once(':'))
                .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
                .and_then(|(_, v)| v.trim().parse().ok())
                .unwrap_or(0);
            log.lock().unwrap().push(Req {
                method: first.first().unwrap_or(&"").to_string(),
                path: normalise(first.get(1).unwrap_or(&"")),
                body: len,
            });
            body_left = len;
        }
    }
    let _ = to.shutdown(std::net::Shutdown::Write);
}

fn socks5(mut client: TcpStream, log: Log) -> std::io::Result<()> {
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods)?;
    client.write_all(&[5, 0])?;
    let mut req = [0u8; 4];
    client.read_exact(&mut req)?;
    let target = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            let mut port = [0u8; 2];
            client.read_exact(&mut port)?;
            format!(
                "{}.{}.{}.{}:{}",
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                u16::from_be_bytes(port)
            )
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut host = vec![0u8; len[0] as usize];
            client.read_exact(&mut host)?;
            let mut port = [0u8; 2];
            client.read_exact(&mut port)?;
            format!(
                "{}:{}",
                String::from_utf8_lossy(&host),
                u16::from_be_bytes(port)
            )
        }
        _ => return Ok(()),
    };
    // Loopback only: this proxy never reaches out.
    if !(target.starts_with("127.0.0.1:") || target.starts_with("localhost:")) {
        client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0])?;
        return Ok(());
    }
    let upstream = TcpStream::connect(target.replacen("localhost", "127.0.0.1", 1))?;
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0])?;
    let (c2, u2) = (client.try_clone()?, upstream.try_clone()?);
    std::thread::spawn(move || {
        let (mut u2, mut c2) = (u2, c2);
        let _ = std::io::copy(&mut u2, &mut c2);
        let _ = c2.shutdown(std::net::Shutdown::Write);
    });
    record_requests(client, upstream, log);
    Ok(())
}

/// A recording SOCKS5 proxy on a free loopback port.
fn recorder() -> (String, Log) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let log: Log = Arc::new(Mutex::new(Vec::new()));
    let l = log.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let l = l.clone();
            std::thread::spawn(move || {
                let _ = conn.set_read_timeout(Some(Duration::from_secs(120)));
                let _ = socks5(conn, l);
            });
        }
    });
    (format!("socks5://127.0.0.1:{port}"), log)
}

/// Runs one command and returns what it asked of the relay.
fn step(who: &Attune, log: &Log, args: &[&str]) -> (attune_tests::Run, Vec<Req>) {
    log.lock().unwrap().clear();
    let run = who.run(args).ok();
    // The proxy thread may still be logging the last request of the process.
    std::thread::sleep(Duration::from_millis(50));
    let reqs = log.lock().unwrap().clone();
    (run, reqs)
}

fn feed(who: &Attune) -> Vec<Value> {
    let run = who.run(&["feed", "--json"]);
    run.json()["entries"].as_array().unwrap().clone()
}

/// The id of the newest entry of `kind` by `author` ("me" or "partner").
fn newest(who: &Attune, author: &str, kind: &str) -> String {
    feed(who)
        .iter()
        .filter(|e| e["author"] == author && e["kind"] == kind)
        .max_by_key(|e| e["at"].as_i64().unwrap_or(0))
        .unwrap_or_else(|| panic!("no {kind} by {author}"))["id"]
        .as_str()
        .unwrap()
        .to_string()
}

fn posts(reqs: &[Req]) -> Vec<&Req> {
    reqs.iter().filter(|r| r.method == "POST").collect()
}

#[test]
fn every_kind_looks_the_same_to_the_relay() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let (proxy_a, log_a) = recorder();
    let (proxy_b, log_b) = recorder();
    let mut a = Attune::new(&dir.path().join("a"));
    let mut b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    attune_tests::pair(&a, &b, &relay.url);
    a.env.push(("ATTUNE_PROXY".into(), proxy_a));
    b.env.push(("ATTUNE_PROXY".into(), proxy_b));
    let first_cursor: i64 = Connection::open(&relay.db)
        .unwrap()
        .query_row("SELECT COALESCE(MAX(cursor), 0) FROM envelopes", [], |r| {
            r.get(0)
        })
        .unwrap();

    // (what, requests) for every command that writes one item.
    let mut writes: Vec<(String, Vec<Req>)> = Vec::new();
    let mut w = |what: &str, who: &Attune, log: &Log, args: &[&str]| {
        let (run, reqs) = step(who, log, args);
        writes.push((what.to_string(), reqs));
        run
    };
    let (la, lb) = (&log_a, &log_b);
    w(
        "open check-in",
        &a,
        la,
        &["checkin", "--open", "--mood", "6", "--feel", "calm"],
    );
    w(
        "sealed check-in with a guess",
        &a,
        la,
        &[
            "checkin",
            "--again",
            "--mood",
            "4",
            "--feel",
            "tired",
            "--guess-mood",
            "6",
        ],
    );
    // Sam's answer to Alex's exchange: the relay releases both keys (the reveal)
    // in the same transaction; no client uploads anything more for it.
    w(
        "sealed check-in that opens an exchange (reveal)",
        &b,
        lb,
        &[
            "checkin",
            "--mood",
            "7",
            "--feel",
            "content",
            "--guess-mood",
            "5",
        ],
    );
    w(
        "private journal",
        &a,
        la,
        &["journal", "--private", "-m", "only mine"],
    );
    w(
        "shared journal",
        &a,
        la,
        &["journal", "-m", "a long day, and a good one"],
    );
    let ask = w(
        "exercise",
        &a,
        la,
        &["ask", "question", "What felt easy today?"],
    );
    let x = ask.stdout.split("started (").nth(1).unwrap()[..8].to_string();
    w("exercise answer", &a, la, &["answer", &x, "-m", "the walk"]);
    b.run(&["sync"]).ok();
    w(
        "exercise answer (reveal)",
        &b,
        lb,
        &["answer", &x, "-m", "dinner"],
    );
    a.run(&["sync"]).ok();
    let theirs = newest(&a, "partner", "answer");
    w("mark", &a, la, &["mark", &theirs, "accurate", "-m", "yes"]);
    w(
        "journal to reflect on",
        &b,
        lb,
        &["journal", "-m", "work was heavy"],
    );
    a.run(&["sync"]).ok();
    let jid = newest(&a, "partner", "journal");
    w(
        "reflection",
        &a,
        la,
        &["reflect", &jid, "-m", "work wore you out"],
    );
    b.run(&["sync"]).ok();
    let r1 = newest(&b, "partner", "reflect");
    w(
        "correction",
        &b,
        lb,
        &["correct", &r1, "-m", "more lonely than tired"],
    );
    a.run(&["sync"]).ok();
    w(
        "second reflection",
        &a,
        la,
        &["reflect", &jid, "-m", "you felt alone"],
    );
    b.run(&["sync"]).ok();
    let r2 = newest(&b, "partner", "reflect");
    w("confirmation", &b, lb, &["confirm", &r2]);
    w("timeout", &a, la, &["timeout", "20m", "-m", "back soon"]);
    w("resume", &a, la, &["resume"]);
    w("appreciation", &a, la, &["appreciate", "the", "tea"]);
    let own = newest(&a, "me", "journal");
    w(
        "edit",
        &a,
        la,
        &["edit", &own, "-m", "a long day, and a very good one"],
    );
    w("delete", &a, la, &["delete", &own]);
    w("challenge (private)", &a, la, &["challenge", "start"]);

    // Every writing command asks the same of the relay: the same requests in the
    // same order, one upload of one envelope of one size.
    let (first_what, shape) = writes[0].clone();
    // A sync (pull, roster), the write, a sync that sends it (pull, roster, one
    // upload, a pull for what the upload released).
    let methods: Vec<&str> = shape.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(
        methods,
        ["GET", "GET", "GET", "GET", "POST", "GET"],
        "{first_what}: {shape:#?}"
    );
    for (what, reqs) in &writes {
        assert_eq!(
            reqs, &shape,
            "{what} asked the relay something else than {first_what}"
        );
    }

    // A held entry goes out later with an ordinary sync, as one envelope of the
    // same upload size.
    a.run(&["journal", "-m", "said later", "--send-after", "1s"])
        .ok();
    std::thread::sleep(Duration::from_millis(1200));
    let (_, held) = step(&a, la, &["sync"]);
    assert_eq!(posts(&held), posts(&shape), "held entry: {held:#?}");

    // A device change: the roster grows (the relay must check it), and the
    // device item is an envelope like any other.
    let laptop = Attune::new(&dir.path().join("a-laptop"));
    laptop.init("Alex");
    log_a.lock().unwrap().clear();
    add_device(&a, &laptop, &relay.url, "laptop").ok();
    let added = log_a.lock().unwrap().clone();
    let envelope_posts: Vec<&Req> = added
        .iter()
        .filter(|r| r.method == "POST" && r.path.ends_with("/envelopes"))
        .collect();
    assert_eq!(envelope_posts, posts(&shape), "device add: {added:#?}");
    let laptop_id = {
        let list = a.run(&["device", "list", "--json"]).ok().json();
        let mine = list["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "laptop")
            .unwrap_or_else(|| panic!("the laptop in {list:#}"))
            .clone();
        mine["id"].as_str().unwrap().to_string()
    };
    a.run(&["device", "revoke", &laptop_id, "--yes"]).ok();
    a.run(&["sync"]).ok();
    b.run(&["sync"]).ok();

    // What the relay stores: every envelope written here has the same size (one
    // bucket for small items) and the same clear fields, and every one came
    // with a hold slot of the same size; only the two exchanges' slots were
    // ever released.
    let db = Connection::open(&relay.db).unwrap();
    let rows: Vec<(i64, i64, i64, i64)> = db
        .prepare(
            "SELECT cursor, length(author), length(entry), length(data) FROM envelopes
             WHERE cursor > ?1 ORDER BY cursor",
        )
        .unwrap()
        .query_map([first_cursor], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert!(rows.len() >= writes.len() + 3, "{rows:?}");
    let sizes: BTreeSet<(i64, i64, i64)> = rows.iter().map(|r| (r.1, r.2, r.3)).collect();
    assert_eq!(
        sizes.len(),
        1,
        "envelopes of different shapes at the relay: {sizes:?}"
    );
    let holds: Vec<(i64, i64, Option<i64>)> = db
        .prepare("SELECT length(exchange), length(data), released FROM held")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let total: i64 = db
        .query_row("SELECT COUNT(*) FROM envelopes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(holds.len() as i64, total, "one hold slot per envelope");
    assert!(holds.iter().all(|h| h.0 == 32 && h.1 == 89), "{holds:?}");
    let released = holds.iter().filter(|h| h.2.is_some()).count();
    assert_eq!(released, 4, "two exchanges, two answers each: {holds:?}");

    // The roster keeps only what the relay checks: version 2 events, without
    // the signer's clock, for the pairing and both device changes.
    let events: Vec<Vec<u8>> = db
        .prepare("SELECT event FROM roster ORDER BY seq")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(events.len(), 4, "create, join, link, revoke");
    for e in &events {
        let decoded = attune_proto::SignedRosterEvent::decode(e).unwrap();
        assert_eq!(e[0], 2, "{decoded:?}");
        assert_eq!(decoded.event.legacy_at, None);
    }
}
