//! The relay under floods: bodies that nobody authenticated, connections that
//! stall, and more connections than it serves. Before a request's signature
//! verifies the relay reads none of its body; a route that needs no signature reads
//! at most its own small limit; connections are capped overall and per address,
//! and what is over a cap gets a JSON 503. Meanwhile an honest couple keeps
//! syncing.
//!
//! `ATTUNE_FLOOD_CONNS` sets the size of the flood (400 by default; BENCHMARKS.md
//! uses 1,000).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use attune_bench::procfs;
use attune_crypto::DeviceIdentity;
use attune_proto::api::{self, codes};
use attune_proto::{MemberId, RosterChange};
use attune_tests::{random16, Attune, Couple, Relay, TestSpace};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

const MIB: usize = 1024 * 1024;

/// What a flood connection announces: a body of the relay's default limit.
const ANNOUNCED: usize = 8 * MIB;

/// Peak RSS allowed to the relay during the flood (BENCHMARKS.md's target).
const RSS_BOUND_MIB: f64 = 64.0;

/// A TCP connection to `addr` from the loopback address `from` (127.0.0.0/8 is
/// all local on Linux, so a test can be many "addresses").
async fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((from, 0)))?;
    socket.connect(addr).await
}

/// A request head; `headers` are added as given.
fn head(method: &str, target: &str, addr: SocketAddr, headers: &[(&str, String)]) -> Vec<u8> {
    let mut h = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str("\r\n");
    h.into_bytes()
}

/// The authentication headers of `device` with a signature that does not verify
/// (well formed: 64 bytes), signed `age_ms` ago.
fn forged_auth(device: &DeviceIdentity, age_ms: i64) -> Vec<(&'static str, String)> {
    vec![
        (api::HEADER_DEVICE, device.id().to_hex()),
        (
            api::HEADER_TIMESTAMP,
            (attune_core::relay::now_ms() - age_ms).to_string(),
        ),
        (api::HEADER_NONCE, hex::encode(random16())),
        (api::HEADER_SIGNATURE, api::b64(&[7u8; 64])),
        ("x-attune-body-hash", hex::encode([9u8; 32])),
        (api::HEADER_PROTOCOL, attune_proto::PROTOCOL.to_string()),
    ]
}

/// A parsed answer: status and JSON body (Null when the body is not JSON).
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Reads one answer, or None if none came within `limit` (or the connection
/// closed without one).
async fn read_answer(stream: &mut TcpStream, limit: Duration) -> Option<Answer> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let text = String::from_utf8_lossy(&buf[..end]).to_string();
            let status: u16 = text.split_whitespace().nth(1)?.parse().ok()?;
            let length: usize = text
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                let body =
                    serde_json::from_slice(&buf[end + 4..end + 4 + length]).unwrap_or(Value::Null);
                return Some(Answer { status, body });
            }
        }
        match tokio::time::timeout_at(deadline, stream.read(&mut chunk)).await {
            Ok(Ok(n)) if n > 0 => buf.extend_from_slice(&chunk[..n]),
            _ => return None,
        }
    }
}

/// Sends `bytes` and reads the answer within `limit`.
async fn ask(addr: SocketAddr, from: Ipv4Addr, bytes: &[u8], limit: Duration) -> Option<Answer> {
    let mut s = connect_from(from, addr).await.ok()?;
    s.write_all(bytes).await.ok()?;
    read_answer(&mut s, limit).await
}

/// A space on the relay with two member devices, made with the harness's keys.
async fn space_with_two(relay: &Relay) -> (TestSpace, DeviceIdentity, DeviceIdentity) {
    let a = DeviceIdentity::generate();
    let b = DeviceIdentity::generate();
    let mut space = TestSpace::new(&a);
    let ca = relay.client(&a);
    ca.create_space(space.create_event()).await.unwrap();
    let join = space.next_event(
        &a,
        RosterChange::Join {
            member: MemberId(random16()),
            device: b.public(),
        },
    );
    ca.append_roster(space.space, vec![join.encode()])
        .await
        .unwrap();
    space.events.push(join);
    (space, a, b)
}

/// Each request announces a large body and sends none of it: the relay must answer
/// from the head alone, at once, without waiting for (or reading) the body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_refused_from_their_head_before_any_body_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let addr = relay.addr;
    let (space, _a, b) = space_with_two(&relay).await;
    let outsider = DeviceIdentity::generate();
    let envelopes = format!("/v1/spaces/{}/envelopes", space.space);
    let roster = format!("/v1/spaces/{}/roster", space.space);
    let length = ("content-length", ANNOUNCED.to_string());
    let with = |auth: Vec<(&'static str, String)>| {
        let mut h = auth;
        h.push(length.clone());
        h
    };
    // A request signed for real, whose body is larger than the relay accepts.
    let big = ANNOUNCED + 1;
    let nonce = random16();
    let now = attune_core::relay::now_ms();
    let mut over =
        attune_core::relay::sign_headers(&b, "POST", &envelopes, "", &vec![b' '; big], now, nonce);
    over.push(("content-length", big.to_string()));

    let cases: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        (
            "a member's device id with a signature that does not verify",
            head("POST", &envelopes, addr, &with(forged_auth(&b, 0))),
            401,
            codes::BAD_SIGNATURE,
        ),
        (
            "the same on the roster route",
            head("POST", &roster, addr, &with(forged_auth(&b, 0))),
            401,
            codes::BAD_SIGNATURE,
        ),
        (
            "a device that is not in the space",
            head("POST", &envelopes, addr, &with(forged_auth(&outsider, 0))),
            403,
            codes::FORBIDDEN,
        ),
        (
            "a timestamp ten minutes old",
            head("POST", &envelopes, addr, &with(forged_auth(&b, 600_000))),
            401,
            codes::STALE_TIMESTAMP,
        ),
        (
            "no authentication headers at all",
            head("POST", &envelopes, addr, std::slice::from_ref(&length)),
            401,
            codes::UNAUTHENTICATED,
        ),
        (
            "a really signed body over --max-body",
            head("POST", &envelopes, addr, &over),
            413,
            codes::BODY_TOO_LARGE,
        ),
        (
            "an 8 MiB pairing-mailbox post (no signature; its limit is small)",
            head(
                "POST",
                "/v1/mailboxes/1/messages",
                addr,
                std::slice::from_ref(&length),
            ),
            413,
            codes::BODY_TOO_LARGE,
        ),
        (
            "an 8 MiB space creation (its signer is in the body; its limit is small)",
            head("POST", "/v1/spaces", addr, &with(forged_auth(&outsider, 0))),
            413,
            codes::BODY_TOO_LARGE,
        ),
    ];
    let mut failures = Vec::new();
    for (name, bytes, status, code) in &cases {
        let started = Instant::now();
        let answer = ask(addr, Ipv4Addr::LOCALHOST, bytes, Duration::from_secs(3)).await;
        let took = started.elapsed();
        println!("{name}: {answer:?} in {took:.2?}");
        match answer {
            Some(a) if a.status == *status && a.code() == *code => {}
            Some(a) => failures.push(format!(
                "{name}: expected {status} {code}, got {} {}",
                a.status, a.body
            )),
            None => failures.push(format!(
                "{name}: no answer within 3 s (the relay waits for the body)"
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// One flood connection: the kinds a stranger can send without a key.
#[derive(Debug, Clone, Copy)]
enum Flood {
    /// A signed route claiming a member's device, a signature that does not verify,
    /// 8 MiB announced, 512 KiB sent, then silence.
    ForgedBody,
    /// A pairing-mailbox post in chunks, 8 KiB sent, then silence.
    MailboxDrip,
    /// A space creation in chunks, 8 KiB sent, then silence.
    CreateDrip,
    /// A request head that never ends: 4 KiB of one header, then silence.
    EndlessHead,
}

impl Flood {
    fn of(i: usize) -> Flood {
        match i % 8 {
            0..=4 => Flood::ForgedBody,
            5 => Flood::MailboxDrip,
            6 => Flood::CreateDrip,
            _ => Flood::EndlessHead,
        }
    }

    fn bytes(self, addr: SocketAddr, path: &str, device: &DeviceIdentity) -> Vec<u8> {
        let chunked = ("transfer-encoding", "chunked".to_string());
        let drip = |mut h: Vec<u8>| {
            h.extend_from_slice(format!("{:x}\r\n", 8192).as_bytes());
            h.extend(std::iter::repeat_n(b'{', 8192));
            h.extend_from_slice(b"\r\n");
            h
        };
        match self {
            Flood::ForgedBody => {
                let mut h = forged_auth(device, 0);
                h.push(("content-length", ANNOUNCED.to_string()));
                let mut bytes = head("POST", path, addr, &h);
                bytes.extend(std::iter::repeat_n(b'[', 512 * 1024));
                bytes
            }
            Flood::MailboxDrip => drip(head("POST", "/v1/mailboxes/1/messages", addr, &[chunked])),
            Flood::CreateDrip => {
                let mut h = forged_auth(device, 0);
                h.push(chunked);
                drip(head("POST", "/v1/spaces", addr, &h))
            }
            Flood::EndlessHead => {
                let mut h =
                    format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nx-pad: ").into_bytes();
                h.extend(std::iter::repeat_n(b'a', 4096));
                h
            }
        }
    }
}

/// Opens the flood: `n` connections over several source addresses (fewer than the
/// per-address cap each), every one sending its bytes and then holding still.
async fn open_flood(
    addr: SocketAddr,
    n: usize,
    path: String,
    device: DeviceIdentity,
) -> Vec<TcpStream> {
    let per_address = 100;
    let mut tasks = Vec::new();
    for i in 0..n {
        let from = Ipv4Addr::new(127, 0, 1, 1 + (i / per_address) as u8);
        let bytes = Flood::of(i).bytes(addr, &path, &device);
        tasks.push(tokio::spawn(async move {
            let mut s = connect_from(from, addr).await.ok()?;
            // A relay that stops reading (it refused) may reset the connection.
            let _ = s.write_all(&bytes).await;
            Some(s)
        }));
    }
    let mut held = Vec::new();
    for t in tasks {
        if let Ok(Some(s)) = t.await {
            held.push(s);
        }
    }
    held
}

/// The relay's `attune_connections_open` gauge ("?" if it has none).
async fn open_connections(addr: SocketAddr) -> String {
    let req = head("GET", "/metrics", addr, &[("connection", "close".into())]);
    let Ok(mut s) = connect_from(Ipv4Addr::LOCALHOST, addr).await else {
        return "?".into();
    };
    if s.write_all(&req).await.is_err() {
        return "?".into();
    }
    let mut text = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        let mut chunk = [0u8; 4096];
        while let Ok(n) = s.read(&mut chunk).await {
            if n == 0 {
                break;
            }
            text.extend_from_slice(&chunk[..n]);
        }
    })
    .await;
    String::from_utf8_lossy(&text)
        .lines()
        .find_map(|l| l.strip_prefix("attune_connections_open "))
        .unwrap_or("?")
        .to_string()
}

/// Raises the soft limit on open files if the flood needs more; the relay,
/// started afterwards, inherits it.
fn enough_open_files(n: usize) {
    let need = (2 * n + 1024) as u64;
    let soft = procfs::open_files_soft_limit().unwrap_or(0);
    if soft < need {
        let got = rlimit::increase_nofile_limit(need).unwrap_or(soft);
        assert!(
            got >= need,
            "the flood needs {need} open files; the limit is {got}"
        );
    }
}

fn flood_size() -> usize {
    std::env::var("ATTUNE_FLOOD_CONNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(400)
}

/// Runs `attune ARGS` on a thread, so the flood's runtime keeps going, and times it.
async fn timed_run(p: &Attune, args: &'static [&'static str]) -> (attune_tests::Run, Duration) {
    let p = p.clone();
    tokio::task::spawn_blocking(move || {
        let started = Instant::now();
        let run = p.run(args);
        (run, started.elapsed())
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_stalled_bodies_keeps_memory_bounded_and_the_couple_syncing() {
    let n = flood_size();
    enough_open_files(n);
    let couple = tokio::task::spawn_blocking(|| Couple::new(&[]))
        .await
        .unwrap();
    let relay = &couple.relay;
    let addr = relay.addr;
    let pid = relay.pid().unwrap();
    // The flood claims a member device of a real space: the worst case, since a
    // stranger's random device id is refused sooner still.
    let (space, _a, b) = space_with_two(relay).await;
    let path = format!("/v1/spaces/{}/envelopes", space.space);
    let (_, quiet_sync_took) = timed_run(&couple.b, &["sync"]).await;
    let rss_before = procfs::hwm_mib(pid).unwrap();

    let started = Instant::now();
    let held = open_flood(addr, n, path, b).await;
    let opened_in = started.elapsed();
    // Let the relay take in what the flood sent.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_flooded = procfs::hwm_mib(pid).unwrap();
    let open_now = open_connections(addr).await;

    // The couple keeps going meanwhile.
    let (write, write_took) =
        timed_run(&couple.a, &["journal", "-m", "written during the flood"]).await;
    let (sync_a, sync_a_took) = timed_run(&couple.a, &["sync"]).await;
    let (sync_b, sync_b_took) = timed_run(&couple.b, &["sync"]).await;
    let (feed, _) = timed_run(&couple.b, &["feed", "--json"]).await;
    let rss_peak = procfs::hwm_mib(pid).unwrap();
    let still_open = held.len();
    drop(held);

    println!(
        "flood of {n} connections ({still_open} connected; the relay holds {open_now} open) \
         opened in {opened_in:.1?}; relay peak RSS {rss_before:.1} MiB before, \
         {rss_flooded:.1} MiB flooded, {rss_peak:.1} MiB after the couple's sync \
         (bound {RSS_BOUND_MIB} MiB); sync B {quiet_sync_took:.2?} before the flood; during it: \
         journal {write_took:.2?}, sync A {sync_a_took:.2?}, sync B {sync_b_took:.2?}"
    );
    for (what, run) in [
        ("journal", &write),
        ("sync A", &sync_a),
        ("sync B", &sync_b),
        ("feed B", &feed),
    ] {
        assert_eq!(
            run.code, 0,
            "{what} failed during the flood\nstdout: {}\nstderr: {}",
            run.stdout, run.stderr
        );
    }
    assert!(
        feed.stdout.contains("written during the flood"),
        "B did not receive A's journal entry during the flood:\n{}",
        feed.stdout
    );
    assert!(
        rss_peak < RSS_BOUND_MIB,
        "the relay's peak RSS during a flood of {n} connections was {rss_peak:.1} MiB, over the {RSS_BOUND_MIB} MiB bound"
    );
    // Each command of the honest couple finishes promptly (a stalled relay would
    // make them wait for the 30 s request limit or the 60 s client timeout).
    for (what, took) in [
        ("journal", write_took),
        ("sync A", sync_a_took),
        ("sync B", sync_b_took),
    ] {
        assert!(
            took < Duration::from_secs(10),
            "{what} took {took:.1?} during the flood"
        );
    }
}

/// Connections over a cap get a JSON 503 with a stable code; one address cannot
/// take what is left for others; slots free up when connections close.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_caps_get_a_json_503() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let addr = relay.addr;
    let healthz = head("GET", "/healthz", addr, &[]);

    // The default per-address cap is 256: open that many idle connections from one
    // address (each sends a partial head, so the relay has surely accepted it).
    let from = Ipv4Addr::new(127, 0, 2, 1);
    let mut idle = Vec::new();
    for _ in 0..256 {
        let mut s = connect_from(from, addr).await.unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = ask(addr, from, &healthz, Duration::from_secs(5)).await;
    let elsewhere = ask(
        addr,
        Ipv4Addr::new(127, 0, 2, 2),
        &healthz,
        Duration::from_secs(5),
    )
    .await;
    drop(idle);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = ask(addr, from, &healthz, Duration::from_secs(5)).await;

    let over = over.expect("the connection over the per-address cap gets an answer");
    assert_eq!(
        (over.status, over.code()),
        (503, "too_many_connections"),
        "{over:?}"
    );
    assert!(
        over.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("connections"),
        "{over:?}"
    );
    assert_eq!(
        elsewhere.map(|a| a.status),
        Some(200),
        "another address is served"
    );
    assert_eq!(after.map(|a| a.status), Some(200), "a freed slot is served");

    // The overall cap, set small.
    let dir2 = tempfile::tempdir().unwrap();
    let small = Relay::start(
        dir2.path(),
        &["--max-connections", "6", "--max-connections-per-ip", "4"],
    );
    let addr = small.addr;
    let healthz = head("GET", "/healthz", addr, &[]);
    let mut idle = Vec::new();
    for i in 0..6u8 {
        let mut s = connect_from(Ipv4Addr::new(127, 0, 3, 1 + i % 2), addr)
            .await
            .unwrap();
        s.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        idle.push(s);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let over = ask(
        addr,
        Ipv4Addr::new(127, 0, 3, 9),
        &healthz,
        Duration::from_secs(5),
    )
    .await
    .expect("the connection over the overall cap gets an answer");
    assert_eq!(
        (over.status, over.code()),
        (503, "too_many_connections"),
        "{over:?}"
    );
    drop(idle);
}

/// The body must be the one the signature covers; a signed request with a body
/// must declare its hash.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_must_match_the_hash_its_signature_covers() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let addr = relay.addr;
    let (space, _a, b) = space_with_two(&relay).await;
    let roster = format!("/v1/spaces/{}/roster", space.space);
    let signed = br#"{"events":[]}"#.to_vec();
    let swapped = br#"{"events":["AAAA"]}"#.to_vec();
    let now = attune_core::relay::now_ms();
    let sign =
        || attune_core::relay::sign_headers(&b, "POST", &roster, "", &signed, now, random16());
    let request = |mut h: Vec<(&'static str, String)>, body: &[u8]| {
        h.push(("content-length", body.len().to_string()));
        let mut bytes = head("POST", &roster, addr, &h);
        bytes.extend_from_slice(body);
        bytes
    };
    let swapped_body = request(sign(), &swapped);
    let no_hash = request(
        sign()
            .into_iter()
            .filter(|(k, _)| *k != api::HEADER_BODY_HASH)
            .collect(),
        &signed,
    );
    let honest = request(sign(), &signed);
    let limit = Duration::from_secs(5);
    let got = |a: Option<Answer>| a.map(|a| (a.status, a.code().to_string()));
    assert_eq!(
        got(ask(addr, Ipv4Addr::LOCALHOST, &swapped_body, limit).await),
        Some((401, codes::BAD_SIGNATURE.to_string())),
        "a body other than the signed one"
    );
    assert_eq!(
        got(ask(addr, Ipv4Addr::LOCALHOST, &no_hash, limit).await),
        Some((401, codes::UNAUTHENTICATED.to_string())),
        "a signed body without x-attune-body-hash"
    );
    // The honest request: it gets as far as the roster rules.
    assert_eq!(
        got(ask(addr, Ipv4Addr::LOCALHOST, &honest, limit).await),
        Some((400, codes::BAD_REQUEST.to_string())),
        "the signed body itself"
    );
}

/// What the relay holds of bodies is bounded: unsigned ones by the pre-
/// authentication budget (full: 503 `overloaded` at once), signed ones by the body
/// budget (a request waits for room; the request time limit bounds the wait).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_budgets_bound_what_the_relay_holds() {
    let dir = tempfile::tempdir().unwrap();
    let budget = 64 * 1024;
    let relay = Relay::start(
        dir.path(),
        &[
            "--preauth-budget",
            &(24 * 1024).to_string(),
            "--max-body",
            &budget.to_string(),
            "--body-budget",
            &budget.to_string(),
        ],
    );
    let addr = relay.addr;
    let (space, a, b) = space_with_two(&relay).await;
    let limit = Duration::from_secs(5);

    // Unsigned: a pairing post dripping in chunks holds 16 KiB of the 24 KiB...
    let mut drip = head(
        "POST",
        "/v1/mailboxes/1/messages",
        addr,
        &[("transfer-encoding", "chunked".into())],
    );
    drip.extend_from_slice(format!("{:x}\r\n", 16 * 1024).as_bytes());
    drip.extend(std::iter::repeat_n(b'{', 16 * 1024));
    drip.extend_from_slice(b"\r\n");
    let mut dripping = connect_from(Ipv4Addr::LOCALHOST, addr).await.unwrap();
    dripping.write_all(&drip).await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // ...so one that declares 10 KiB more is refused at once.
    let mut post = head(
        "POST",
        "/v1/mailboxes/1/messages",
        addr,
        &[("content-length", (10 * 1024).to_string())],
    );
    post.extend(std::iter::repeat_n(b' ', 10 * 1024));
    let answer = ask(addr, Ipv4Addr::LOCALHOST, &post, limit).await.unwrap();
    assert_eq!(
        (answer.status, answer.code()),
        (503, codes::OVERLOADED),
        "{answer:?}"
    );
    drop(dripping);

    // Signed: B's valid request declares the whole budget and sends half of it.
    let path = format!("/v1/spaces/{}/envelopes", space.space);
    let big = vec![b' '; budget];
    let now = attune_core::relay::now_ms();
    let mut h = attune_core::relay::sign_headers(&b, "POST", &path, "", &big, now, random16());
    h.push(("content-length", budget.to_string()));
    let mut stall = head("POST", &path, addr, &h);
    stall.extend_from_slice(&big[..budget / 2]);
    let mut stalled = connect_from(Ipv4Addr::LOCALHOST, addr).await.unwrap();
    stalled.write_all(&stall).await.unwrap();
    let early = read_answer(&mut stalled, Duration::from_millis(300)).await;
    assert!(
        early.is_none(),
        "the stalled request was answered: {early:?}"
    );
    // A's small append waits for room while the stalled request holds all of it...
    let mut chain = attune_tests::Chain::new(&a);
    let env = chain.next(&space, b"waits for room").encode();
    let client = relay.client(&a);
    let space_id = space.space;
    let waiting = tokio::spawn(async move { client.append(space_id, vec![env]).await });
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "A's append did not wait for the room the stalled request holds"
    );
    // ...and goes through once that request is gone.
    drop(stalled);
    tokio::time::timeout(limit, waiting)
        .await
        .expect("A's append finishes once there is room")
        .unwrap()
        .expect("A's append is stored");
    // With room, no wait.
    let env = chain.next(&space, b"room to spare").encode();
    let started = Instant::now();
    relay
        .client(&a)
        .append(space.space, vec![env])
        .await
        .expect("with room, the append is stored");
    assert!(started.elapsed() < Duration::from_millis(1000));
}
