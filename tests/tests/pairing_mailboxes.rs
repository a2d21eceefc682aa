//! Strangers against pairing mailboxes, over real HTTP against the real relay:
//! a scanner enumerating mailbox numbers, a stranger closing, posting into or
//! reading someone else's pairing, one space or address holding many mailboxes,
//! many addresses scanning at once, and which address a limit counts.
//!
//! Raw HTTP only (no typed client), so that the same requests can be sent to any
//! relay version.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use attune_core::relay::{now_ms, sign_headers};
use attune_crypto::DeviceIdentity;
use attune_proto::api::{self, codes};
use attune_proto::{PairingMessage, PairingPayload, Role};
use attune_tests::{random16, Relay, TestSpace};
use serde_json::{json, Value};

const TOKEN: &str = "x-attune-mailbox-token";
/// The relay's default budget of credential-less mailbox attempts per address
/// and minute (`--pairing-attempts-per-min`).
const PER_ADDRESS: usize = 10;

#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    retry_after: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.status, self.code())
    }
}

/// One HTTP client (one connection pool) per caller, like a real script.
struct Http {
    url: String,
    client: reqwest::Client,
}

impl Http {
    fn new(relay: &Relay) -> Self {
        Self {
            url: relay.url.clone(),
            client: reqwest::Client::new(),
        }
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self.client.request(
            reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
            format!("{}{path}", self.url),
        );
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        if !body.is_empty() {
            req = req.header("content-type", "application/json");
        }
        let resp = req.body(body).send().await.expect("the relay answers");
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let bytes = resp.bytes().await.unwrap_or_default();
        Answer {
            status,
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            retry_after,
        }
    }

    async fn signed(
        &self,
        who: &DeviceIdentity,
        path: &str,
        body: Vec<u8>,
        extra: &[(&str, String)],
    ) -> Answer {
        let mut headers = sign_headers(who, "POST", path, "", &body, now_ms(), random16());
        headers.extend(extra.iter().cloned());
        self.send("POST", path, &headers, body).await
    }
}

fn pake(from: Role) -> Vec<u8> {
    PairingMessage {
        from,
        payload: PairingPayload::Pake(vec![1; 33]),
    }
    .encode()
}

fn confirm(from: Role) -> Vec<u8> {
    PairingMessage {
        from,
        payload: PairingPayload::Confirm([7; 32]),
    }
    .encode()
}

fn post_body(message: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "message": api::b64(message) })).unwrap()
}

fn forwarded(addr: &str) -> Vec<(&'static str, String)> {
    vec![("x-forwarded-for", addr.to_string())]
}

/// A fresh device and its space on the relay, created from `extra` headers' address.
async fn space(http: &Http, extra: &[(&str, String)]) -> (DeviceIdentity, TestSpace) {
    let device = DeviceIdentity::generate();
    let space = TestSpace::new(&device);
    let body =
        serde_json::to_vec(&json!({ "create_event": api::b64(&space.create_event()) })).unwrap();
    let created = http.signed(&device, "/v1/spaces", body, extra).await;
    assert_eq!(created.status, 201, "space created: {created}");
    (device, space)
}

/// Opens a mailbox: its number and, where the relay gives one, its token.
async fn open(
    http: &Http,
    who: &DeviceIdentity,
    space: &TestSpace,
    extra: &[(&str, String)],
) -> Answer {
    http.signed(
        who,
        &format!("/v1/spaces/{}/mailboxes", space.space),
        vec![],
        extra,
    )
    .await
}

fn number_and_token(opened: &Answer) -> (u64, Vec<(&'static str, String)>) {
    assert_eq!(opened.status, 201, "mailbox opened: {opened}");
    let number = opened.body["mailbox"].as_u64().expect("a mailbox number");
    let token = opened.body["token"]
        .as_str()
        .map(|t| vec![(TOKEN, t.to_string())])
        .unwrap_or_default();
    (number, token)
}

/// A join attempt (the joiner's key exchange) on mailbox `n`.
async fn join(http: &Http, n: u64, extra: &[(&str, String)]) -> Answer {
    http.send(
        "POST",
        &format!("/v1/mailboxes/{n}/join"),
        extra,
        post_body(&pake(Role::Joiner)),
    )
    .await
}

#[tokio::test]
async fn a_scanner_cannot_find_a_live_mailbox() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let http = Http::new(&relay);
    let (inviter, sp) = space(&http, &[]).await;
    let (live, inviter_token) = number_and_token(&open(&http, &inviter, &sp, &[]).await);

    // Every number a relay with few pairings used to give out, and the live one
    // in the middle (as if the scanner had guessed it): each probed both ways a
    // stranger can name a mailbox without credentials.
    let mut numbers: Vec<u64> = (1..=1000).collect();
    numbers.insert(500, live);
    let scanner = Http::new(&relay);
    let started = Instant::now();
    let mut admitted = 0;
    let mut limited_without_retry_after = 0;
    for (i, &n) in numbers.iter().enumerate() {
        let probes = [
            join(&scanner, n, &[]).await,
            scanner
                .send(
                    "GET",
                    &format!("/v1/mailboxes/{n}/messages?role=joiner"),
                    &[],
                    vec![],
                )
                .await,
        ];
        for answer in &probes {
            // A success or "already taken" tells the scanner the number is live.
            assert!(
                !(200..300).contains(&answer.status) && answer.code() != codes::MAILBOX_FULL,
                "the scanner found live mailbox {live} (probing {n}) after {} requests in {:.2?}: {answer}",
                2 * i + 1,
                started.elapsed()
            );
        }
        if probes[0].status == 429 {
            limited_without_retry_after += usize::from(probes[0].retry_after.is_none());
        } else {
            admitted += 1;
        }
    }
    let elapsed = started.elapsed();
    println!(
        "scanner: {} numbers in {elapsed:.2?}, {admitted} join attempts admitted, live mailbox not found",
        numbers.len()
    );
    assert!(
        admitted <= PER_ADDRESS + 1 + elapsed.as_secs() as usize * PER_ADDRESS / 60,
        "one address made {admitted} join attempts in {elapsed:.2?}"
    );
    assert_eq!(limited_without_retry_after, 0, "429s carry Retry-After");
    // The live pairing is untouched: nothing arrived on the joiner's side.
    let read = http
        .send(
            "GET",
            &format!("/v1/mailboxes/{live}/messages?role=inviter"),
            &inviter_token,
            vec![],
        )
        .await;
    assert_eq!(read.status, 200, "the inviter reads its mailbox: {read}");
    assert_eq!(read.body["messages"], json!([]), "no stranger's message");
}

#[tokio::test]
async fn a_stranger_cannot_close_post_into_or_read_a_pairing() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let http = Http::new(&relay);
    let (inviter, sp) = space(&http, &[]).await;
    let (n, inviter_token) = number_and_token(&open(&http, &inviter, &sp, &[]).await);
    let messages = format!("/v1/mailboxes/{n}/messages");
    let posted = http
        .send(
            "POST",
            &messages,
            &inviter_token,
            post_body(&pake(Role::Inviter)),
        )
        .await;
    assert_eq!(posted.status, 204, "the inviter posts its key exchange");

    // A stranger who knows the number, without a token or with a made-up one.
    let stranger = Http::new(&relay);
    let wrong = vec![(TOKEN, hex::encode(random16()))];
    let close = format!("/v1/mailboxes/{n}/close");
    for (what, headers, expected) in [
        ("without a token", vec![], (401, codes::UNAUTHENTICATED)),
        (
            "with a wrong token",
            wrong.clone(),
            (410, codes::MAILBOX_UNAVAILABLE),
        ),
    ] {
        let tries = [
            (
                "closes it",
                stranger.send("POST", &close, &headers, vec![]).await,
            ),
            (
                "posts the inviter's confirmation",
                stranger
                    .send(
                        "POST",
                        &messages,
                        &headers,
                        post_body(&confirm(Role::Inviter)),
                    )
                    .await,
            ),
            (
                "posts a joiner's key exchange as a message",
                stranger
                    .send("POST", &messages, &headers, post_body(&pake(Role::Joiner)))
                    .await,
            ),
            (
                "reads the inviter's side",
                stranger
                    .send("GET", &format!("{messages}?role=inviter"), &headers, vec![])
                    .await,
            ),
            (
                "reads the joiner's side",
                stranger
                    .send("GET", &format!("{messages}?role=joiner"), &headers, vec![])
                    .await,
            ),
        ];
        for (action, answer) in tries {
            assert_eq!(
                (answer.status, answer.code()),
                expected,
                "a stranger {what} {action}: {answer}"
            );
        }
    }

    // The joiner joins with its key exchange and gets its own token.
    let joined = join(&http, n, &[]).await;
    assert_eq!(joined.status, 201, "the joiner joins: {joined}");
    let joiner_token = vec![(
        TOKEN,
        joined.body["token"]
            .as_str()
            .expect("a joiner token")
            .to_string(),
    )];
    // The one guess is spent: nobody else can join, nor post as the joiner.
    let again = join(&stranger, n, &[]).await;
    assert_eq!((again.status, again.code()), (409, codes::MAILBOX_FULL));
    for headers in [vec![], wrong.clone(), inviter_token.clone()] {
        let answer = stranger
            .send(
                "POST",
                &messages,
                &headers,
                post_body(&confirm(Role::Joiner)),
            )
            .await;
        assert!(
            answer.status >= 400,
            "a joiner's confirmation posted with {headers:?}: {answer}"
        );
    }

    // Both sides see exactly each other's messages, and carry on.
    let read = |token: Vec<(&'static str, String)>, after: usize| {
        let http = &http;
        let path = format!("{messages}?after={after}");
        async move { http.send("GET", &path, &token, vec![]).await }
    };
    let got = read(joiner_token.clone(), 0).await;
    assert_eq!(
        got.body["messages"],
        json!([api::b64(&pake(Role::Inviter))])
    );
    let got = read(inviter_token.clone(), 0).await;
    assert_eq!(got.body["messages"], json!([api::b64(&pake(Role::Joiner))]));
    let posted = http
        .send(
            "POST",
            &messages,
            &joiner_token,
            post_body(&confirm(Role::Joiner)),
        )
        .await;
    assert_eq!(posted.status, 204, "the joiner confirms: {posted}");
    let got = read(inviter_token.clone(), 1).await;
    assert_eq!(
        got.body["messages"],
        json!([api::b64(&confirm(Role::Joiner))])
    );
    let closed = http.send("POST", &close, &inviter_token, vec![]).await;
    assert_eq!(closed.status, 204, "the inviter closes: {closed}");
    let after = read(joiner_token, 0).await;
    assert_eq!(
        (after.status, after.code()),
        (410, codes::MAILBOX_UNAVAILABLE)
    );
}

#[tokio::test]
async fn one_space_cannot_hold_many_mailboxes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let http = Http::new(&relay);
    let (device, sp) = space(&http, &[]).await;
    let mut opened = vec![];
    let mut refused = None;
    for _ in 0..20 {
        let answer = open(&http, &device, &sp, &[]).await;
        if answer.status == 201 {
            opened.push(number_and_token(&answer));
        } else {
            refused = Some(answer);
            break;
        }
    }
    let refused = refused.unwrap_or_else(|| panic!("one space opened {} mailboxes", opened.len()));
    assert_eq!(opened.len(), 2, "a space may have two pairings in progress");
    assert_eq!(
        (refused.status, refused.code()),
        (429, codes::TOO_MANY_MAILBOXES)
    );
    assert!(refused.retry_after.is_some(), "with Retry-After");
    // Closing one makes room again; another space is not affected.
    let (n, token) = &opened[0];
    let closed = http
        .send("POST", &format!("/v1/mailboxes/{n}/close"), token, vec![])
        .await;
    assert_eq!(closed.status, 204);
    assert_eq!(open(&http, &device, &sp, &[]).await.status, 201);
    let (other, other_space) = space(&http, &[]).await;
    assert_eq!(open(&http, &other, &other_space, &[]).await.status, 201);
}

#[tokio::test]
async fn one_address_cannot_hold_many_mailboxes_and_others_still_pair() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--max-mailboxes-per-address",
            "3",
        ],
    );
    let http = Http::new(&relay);
    let holder = forwarded("203.0.113.7");
    for i in 0..3 {
        let (device, sp) = space(&http, &holder).await;
        let answer = open(&http, &device, &sp, &holder).await;
        assert_eq!(answer.status, 201, "mailbox {i} from one address: {answer}");
    }
    let (device, sp) = space(&http, &holder).await;
    let refused = open(&http, &device, &sp, &holder).await;
    assert_eq!(
        (refused.status, refused.code()),
        (429, codes::TOO_MANY_MAILBOXES),
        "a fourth mailbox from one address"
    );
    assert!(refused.retry_after.is_some(), "with Retry-After");

    // Another couple, elsewhere, pairs as usual.
    let elsewhere = forwarded("198.51.100.2");
    let (device, sp) = space(&http, &elsewhere).await;
    let (n, _token) = number_and_token(&open(&http, &device, &sp, &elsewhere).await);
    let joined = join(&http, n, &forwarded("198.51.100.3")).await;
    assert_eq!(joined.status, 201, "their partner joins: {joined}");
}

#[tokio::test]
async fn many_addresses_scanning_are_held_to_the_relay_wide_budget() {
    let dir = tempfile::tempdir().unwrap();
    let total = 30;
    let relay = Relay::start(
        dir.path(),
        &[
            "--trusted-proxy",
            "127.0.0.1",
            "--pairing-attempts-per-min-total",
            &total.to_string(),
        ],
    );
    let http = Http::new(&relay);
    let (inviter, sp) = space(&http, &[]).await;
    let (live, _token) = number_and_token(&open(&http, &inviter, &sp, &[]).await);

    // 200 addresses, each well within its own budget, each trying one number.
    let started = Instant::now();
    let mut admitted = 0;
    for i in 0..200u32 {
        let addr = format!("10.{}.{}.{}", i / 65536, (i / 256) % 256, i % 256);
        let answer = join(&http, 1 + u64::from(i), &forwarded(&addr)).await;
        match answer.status {
            429 => assert!(answer.retry_after.is_some(), "429 with Retry-After"),
            _ => {
                assert_eq!(answer.code(), codes::MAILBOX_UNAVAILABLE, "{answer}");
                admitted += 1;
            }
        }
    }
    let elapsed = started.elapsed();
    println!("200 addresses: {admitted} attempts admitted in {elapsed:.2?}");
    assert!(
        admitted <= total + 1 + elapsed.as_secs() as usize * total / 60,
        "{admitted} attempts admitted from 200 addresses in {elapsed:.2?}"
    );
    // While the budget is spent, even the right number is refused: the scanner
    // cannot tell it apart.
    let answer = join(&http, live, &forwarded("192.0.2.200")).await;
    assert_eq!((answer.status, answer.code()), (429, codes::RATE_LIMITED));
}

/// Join attempts on unknown numbers with each of `addrs` as X-Forwarded-For:
/// how many the relay admitted (did not answer 429).
async fn admitted(relay: &Relay, addrs: &[String]) -> usize {
    let http = Http::new(relay);
    let mut admitted = 0;
    for (i, addr) in addrs.iter().enumerate() {
        let answer = join(&http, 1 + i as u64, &forwarded(addr)).await;
        if answer.status != 429 {
            admitted += 1;
        }
    }
    admitted
}

#[tokio::test]
async fn limits_count_the_peer_unless_it_is_the_trusted_proxy() {
    let dir = tempfile::tempdir().unwrap();
    let distinct: Vec<String> = (0..30).map(|i| format!("198.51.100.{i}")).collect();
    // A client prepending addresses of its own: the proxy appends the real one last.
    let spoofed: Vec<String> = (0..30)
        .map(|i| format!("198.51.100.{i}, 203.0.113.9"))
        .collect();
    let within = PER_ADDRESS + 1; // one more may refill while the test runs

    // No trusted proxy: X-Forwarded-For is the client's own claim, ignored.
    let relay = Relay::start(&dir.path().join("none"), &[]);
    let n = admitted(&relay, &distinct).await;
    assert!(n <= within, "no proxy: {n} of 30 admitted");
    drop(relay);

    // A trusted proxy that is not the peer: still ignored.
    let relay = Relay::start(&dir.path().join("other"), &["--trusted-proxy", "192.0.2.1"]);
    let n = admitted(&relay, &distinct).await;
    assert!(n <= within, "another proxy: {n} of 30 admitted");
    drop(relay);

    // The peer is the trusted proxy: each forwarded address has its own budget,
    // and only the address the proxy appended counts.
    let relay = Relay::start(&dir.path().join("proxy"), &["--trusted-proxy", "127.0.0.1"]);
    let n = admitted(&relay, &distinct).await;
    assert_eq!(n, 30, "30 addresses behind the proxy");
    let n = admitted(&relay, &spoofed).await;
    assert!(
        n <= within,
        "one address behind the proxy: {n} of 30 admitted"
    );
}
