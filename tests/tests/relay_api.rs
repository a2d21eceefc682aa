//! The relay's HTTP API over real HTTP against the real binary: every route's
//! success path and its error paths, each with its status and stable code.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use attune_core::relay::{now_ms, sign_headers, RelayClient};
use attune_crypto::DeviceIdentity;
use attune_proto::api::{self, codes};
use attune_proto::{KeyId, MemberId, PairingMessage, PairingPayload, Role, RosterChange};
use attune_tests::{random16, Chain, Relay, TestSpace};
use serde_json::{json, Value};

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

/// A request with full control over headers and body.
async fn raw(
    relay: &Relay,
    method: &str,
    path_and_query: &str,
    headers: Vec<(&str, String)>,
    body: Vec<u8>,
) -> Answer {
    let client = reqwest::Client::new();
    let mut req = client.request(
        reqwest::Method::from_bytes(method.as_bytes()).unwrap(),
        format!("{}{path_and_query}", relay.url),
    );
    for (k, v) in headers {
        req = req.header(k, v);
    }
    let resp = req.body(body).send().await.expect("relay answers");
    let status = resp.status().as_u16();
    let retry_after = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let bytes = resp.bytes().await.unwrap_or_default();
    let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
    Answer {
        status,
        body,
        retry_after,
    }
}

/// A correctly signed request by `who`, with the given timestamp.
async fn signed_at(
    relay: &Relay,
    who: &DeviceIdentity,
    method: &str,
    path: &str,
    query: &str,
    body: Vec<u8>,
    ts: i64,
) -> Answer {
    let headers = sign_headers(who, method, path, query, &body, ts, random16());
    let pq = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{query}")
    };
    raw(relay, method, &pq, headers, body).await
}

async fn signed(
    relay: &Relay,
    who: &DeviceIdentity,
    method: &str,
    path: &str,
    body: Vec<u8>,
) -> Answer {
    signed_at(relay, who, method, path, "", body, now_ms()).await
}

fn envelopes_body(envs: &[attune_proto::Envelope]) -> Vec<u8> {
    attune_tests::append_body(envs)
}

fn creator_member(space: &TestSpace) -> MemberId {
    match space.events[0].event.change {
        RosterChange::Create { member, .. } => member,
        _ => unreachable!(),
    }
}

/// A relay, a space created by `a`, with `b` joined as the partner.
async fn setup(
    extra: &[&str],
) -> (
    tempfile::TempDir,
    Relay,
    TestSpace,
    DeviceIdentity,
    DeviceIdentity,
) {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), extra);
    let a = DeviceIdentity::generate();
    let b = DeviceIdentity::generate();
    let mut space = TestSpace::new(&a);
    let ca = relay.client(&a);
    ca.create_space(space.create_event())
        .await
        .expect("space created");
    let join = space.next_event(
        &a,
        RosterChange::Join {
            member: MemberId(random16()),
            device: b.public(),
        },
    );
    ca.append_roster(space.space, vec![join.encode()])
        .await
        .expect("partner joins");
    space.events.push(join);
    (dir, relay, space, a, b)
}

#[tokio::test]
async fn health_metrics_and_unknown_routes() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let h = raw(&relay, "GET", "/healthz", vec![], vec![]).await;
    assert_eq!((h.status, h.body["status"].as_str()), (200, Some("ok")));
    let resp = reqwest::get(format!("{}/metrics", relay.url))
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        text.contains("attune_requests_total{route=\"/healthz\",status=\"200\"} 1"),
        "{text}"
    );
    assert!(text.contains("# TYPE attune_commits counter"), "{text}");
    assert!(
        text.contains("attune_request_duration_seconds_count{route=\"/healthz\"} 1"),
        "{text}"
    );

    let unknown = raw(&relay, "GET", "/v1/nothing-here", vec![], vec![]).await;
    assert_eq!(
        (unknown.status, unknown.code()),
        (404, codes::UNKNOWN_ROUTE)
    );
    let wrong_method = raw(&relay, "PUT", "/v1/spaces", vec![], vec![]).await;
    assert_eq!(
        (wrong_method.status, wrong_method.code()),
        (405, codes::METHOD_NOT_ALLOWED)
    );
}

#[tokio::test]
async fn create_space_paths() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let a = DeviceIdentity::generate();
    let space = TestSpace::new(&a);
    let body =
        serde_json::to_vec(&json!({ "create_event": api::b64(&space.create_event()) })).unwrap();

    // Signed by a device other than the one the event creates.
    let other = DeviceIdentity::generate();
    let r = signed(&relay, &other, "POST", "/v1/spaces", body.clone()).await;
    assert_eq!((r.status, r.code()), (403, codes::FORBIDDEN));

    let r = signed(&relay, &a, "POST", "/v1/spaces", body.clone()).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(
        r.body["space"].as_str(),
        Some(space.space.to_hex().as_str())
    );

    let r = signed(&relay, &a, "POST", "/v1/spaces", body.clone()).await;
    assert_eq!((r.status, r.code()), (409, codes::SPACE_EXISTS));

    let r = signed(&relay, &a, "POST", "/v1/spaces", b"{not json".to_vec()).await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_JSON));
    let r = signed(
        &relay,
        &a,
        "POST",
        "/v1/spaces",
        br#"{"create_event":"!!!"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_JSON));
    let r = signed(
        &relay,
        &a,
        "POST",
        "/v1/spaces",
        br#"{"create_event":"AAAA"}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, codes::ROSTER_REJECTED));
    let r = signed(
        &relay,
        &a,
        "POST",
        "/v1/spaces",
        br#"{"create_event":"AAAA","extra":1}"#.to_vec(),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_JSON));
}

#[tokio::test]
async fn authentication_errors() {
    let (_dir, relay, space, a, _b) = setup(&[]).await;
    let path = format!("/v1/spaces/{}/roster", space.space);

    let ok = signed(&relay, &a, "GET", &path, vec![]).await;
    assert_eq!(ok.status, 200);
    assert_eq!(ok.body["events"].as_array().map(Vec::len), Some(2));

    // No signature at all.
    let r = raw(&relay, "GET", &path, vec![], vec![]).await;
    assert_eq!((r.status, r.code()), (401, codes::UNAUTHENTICATED));

    // A signature over another path.
    let mut headers = sign_headers(
        &a,
        "GET",
        "/v1/spaces/x/roster",
        "",
        b"",
        now_ms(),
        random16(),
    );
    let r = raw(&relay, "GET", &path, headers.clone(), vec![]).await;
    assert_eq!((r.status, r.code()), (401, codes::BAD_SIGNATURE));
    // A signature that is not base64.
    headers[3].1 = "***".into();
    let r = raw(&relay, "GET", &path, headers, vec![]).await;
    assert_eq!((r.status, r.code()), (401, codes::UNAUTHENTICATED));

    // A client of protocol 1 (no protocol header) or of another protocol: told
    // plainly to update, before anything is read.
    for protocol in [None, Some("1"), Some("3")] {
        let mut headers = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
        headers.retain(|(k, _)| *k != api::HEADER_PROTOCOL);
        if let Some(p) = protocol {
            headers.push((api::HEADER_PROTOCOL, p.to_string()));
        }
        let r = raw(&relay, "GET", &path, headers, vec![]).await;
        assert_eq!((r.status, r.code()), (400, codes::UNSUPPORTED_VERSION));
        let message = r.body["error"]["message"].as_str().unwrap_or_default();
        assert!(message.contains("update attune"), "{message}");
    }

    // A timestamp ten minutes old, and one ten minutes ahead.
    for skew in [-600_000, 600_000] {
        let r = signed_at(&relay, &a, "GET", &path, "", vec![], now_ms() + skew).await;
        assert_eq!((r.status, r.code()), (401, codes::STALE_TIMESTAMP));
    }

    // The same signed request twice.
    let headers = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
    assert_eq!(
        raw(&relay, "GET", &path, headers.clone(), vec![])
            .await
            .status,
        200
    );
    let r = raw(&relay, "GET", &path, headers, vec![]).await;
    assert_eq!((r.status, r.code()), (401, codes::REPLAYED_REQUEST));

    // A device of another space.
    let c = DeviceIdentity::generate();
    let other = TestSpace::new(&c);
    relay
        .client(&c)
        .create_space(other.create_event())
        .await
        .unwrap();
    let r = signed(&relay, &c, "GET", &path, vec![]).await;
    assert_eq!((r.status, r.code()), (403, codes::FORBIDDEN));

    // A space that does not exist.
    let r = signed(
        &relay,
        &a,
        "GET",
        "/v1/spaces/00000000000000000000000000000000/roster",
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code()), (404, codes::NOT_FOUND));
}

#[tokio::test]
async fn roster_append_and_revocation() {
    let (_dir, relay, mut space, a, b) = setup(&[]).await;
    let ca = relay.client(&a);
    let laptop = DeviceIdentity::generate();
    let link = space.next_event(
        &a,
        RosterChange::Link {
            member: creator_member(&space),
            device: laptop.public(),
        },
    );
    let events = ca
        .append_roster(space.space, vec![link.encode()])
        .await
        .unwrap();
    assert_eq!(events.len(), 3);
    space.events.push(link);

    // Breaking a rule: a third member.
    let third = space.next_event(
        &a,
        RosterChange::Join {
            member: MemberId(random16()),
            device: DeviceIdentity::generate().public(),
        },
    );
    let err = ca
        .append_roster(space.space, vec![third.encode()])
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::ROSTER_REJECTED));
    // A stale event (sequence already taken) conflicts.
    let mut stale = space.events[2];
    stale.event.seq = 3;
    let stale = a.sign_roster_event(stale.event);
    let r = signed(
        &relay,
        &a,
        "POST",
        &format!("/v1/spaces/{}/roster", space.space),
        serde_json::to_vec(&json!({ "events": [api::b64(&stale.encode())] })).unwrap(),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, codes::ROSTER_REJECTED));

    // The laptop writes, then is revoked: its requests are refused from then on.
    let mut chain = Chain::new(&laptop);
    let cl = relay.client(&laptop);
    cl.append(
        space.space,
        vec![chain.next(&space, b"from the laptop").encode()],
    )
    .await
    .unwrap();
    let revoke = space.next_event(
        &a,
        RosterChange::Revoke {
            device: laptop.id(),
            last_seq: 1,
        },
    );
    ca.append_roster(space.space, vec![revoke.encode()])
        .await
        .unwrap();
    let r = signed(
        &relay,
        &laptop,
        "GET",
        &format!("/v1/spaces/{}/roster", space.space),
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code()), (403, codes::DEVICE_REVOKED));
    assert!(r.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("revoked"));
    let err = cl
        .append(
            space.space,
            vec![chain.next(&space, b"after revocation").encode()],
        )
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::DEVICE_REVOKED));
    // The partner cannot revoke A's devices.
    let _ = b;
}

#[tokio::test]
async fn envelope_append_and_pull() {
    let (_dir, relay, space, a, b) = setup(&[
        "--max-envelope",
        "4096",
        "--max-body",
        "65536",
        "--max-batch",
        "10",
    ])
    .await;
    let ca = relay.client(&a);
    let cb = relay.client(&b);
    let path = format!("/v1/spaces/{}/envelopes", space.space);
    let mut chain_a = Chain::new(&a);
    let mut chain_b = Chain::new(&b);

    let e1 = chain_a.next(&space, b"a1");
    let e2 = chain_a.next(&space, b"a2");
    let r = ca
        .append(space.space, vec![e1.encode(), e2.encode()])
        .await
        .unwrap();
    assert_eq!(
        r.results
            .iter()
            .map(|x| (x.cursor, x.duplicate))
            .collect::<Vec<_>>(),
        vec![(1, false), (2, false)]
    );
    let f1 = chain_b.next(&space, b"b1");
    assert_eq!(
        cb.append(space.space, vec![f1.encode()])
            .await
            .unwrap()
            .results[0]
            .cursor,
        3
    );

    // Duplicate entry id: the same cursor back.
    let again = ca.append(space.space, vec![e2.encode()]).await.unwrap();
    assert_eq!(
        (again.results[0].cursor, again.results[0].duplicate),
        (2, true)
    );

    // A gap in the author's sequence.
    let _skipped = chain_a.next(&space, b"a3 never sent");
    let e4 = chain_a.next(&space, b"a4");
    let r = signed(&relay, &a, "POST", &path, envelopes_body(&[e4])).await;
    assert_eq!((r.status, r.code()), (409, codes::SEQUENCE_CONFLICT));
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("expects 3"),
        "{:?}",
        r.body
    );

    // Right number, wrong predecessor.
    let mut fork = Chain::new(&a);
    fork.seq = 2;
    fork.prev = attune_proto::Hash32([9; 32]);
    let r = signed(
        &relay,
        &a,
        "POST",
        &path,
        envelopes_body(&[fork.next(&space, b"fork")]),
    )
    .await;
    assert_eq!((r.status, r.code()), (409, codes::CHAIN_CONFLICT));

    // The same entry id with other content.
    let mut reused = chain_b.next(&space, b"b2");
    reused.header.entry = e1.header.entry;
    let reused =
        attune_crypto::seal_envelope(&b, reused.header, KeyId::Epoch(0), &space.epoch, b"b2")
            .unwrap();
    let r = signed(&relay, &b, "POST", &path, envelopes_body(&[reused])).await;
    assert_eq!((r.status, r.code()), (409, codes::ENTRY_ID_REUSED));

    // Uploading another device's envelope, or one whose signature is broken.
    let mut chain_b2 = Chain::new(&b);
    chain_b2.seq = 1;
    chain_b2.prev = f1.hash();
    let theirs = chain_b2.next(&space, b"b2");
    let r = signed(
        &relay,
        &a,
        "POST",
        &path,
        envelopes_body(std::slice::from_ref(&theirs)),
    )
    .await;
    assert_eq!((r.status, r.code()), (403, codes::FORBIDDEN));
    let mut broken = theirs.clone();
    broken.signature[0] ^= 1;
    let r = signed(&relay, &b, "POST", &path, envelopes_body(&[broken])).await;
    assert_eq!((r.status, r.code()), (400, codes::BAD_SIGNATURE));

    // A version 1 envelope (its key named in the clear), correctly signed: the
    // relay stores protocol 2 only, and says so.
    let mut v1 = chain_b2.next(&space, b"v1");
    v1.header.legacy_key = Some(KeyId::Epoch(0));
    v1.signature = b.sign_envelope(&v1.header, &v1.body);
    let r = signed(&relay, &b, "POST", &path, envelopes_body(&[v1])).await;
    assert_eq!((r.status, r.code()), (400, codes::UNSUPPORTED_VERSION));
    chain_b2.seq -= 1;
    chain_b2.prev = f1.hash();

    // Garbage bytes, an envelope for another space, too large, too many, too much.
    let hold = api::b64(&attune_crypto::random_hold().encode());
    let garbage =
        serde_json::to_vec(&json!({ "envelopes": [api::b64(b"garbage")], "holds": [hold] }))
            .unwrap();
    let r = signed(&relay, &b, "POST", &path, garbage).await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_ENVELOPE));
    let elsewhere = TestSpace::new(&b);
    let r = signed(
        &relay,
        &b,
        "POST",
        &path,
        envelopes_body(&[Chain::new(&b).next(&elsewhere, b"x")]),
    )
    .await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_ENVELOPE));
    let big = chain_b2.next(&space, &vec![7u8; 5000]);
    let r = signed(&relay, &b, "POST", &path, envelopes_body(&[big])).await;
    assert_eq!((r.status, r.code()), (413, codes::ENVELOPE_TOO_LARGE));
    let many: Vec<_> = (0..11).map(|_| theirs.clone()).collect();
    let r = signed(&relay, &b, "POST", &path, envelopes_body(&many)).await;
    assert_eq!((r.status, r.code()), (413, codes::BATCH_TOO_LARGE));
    let r = signed(&relay, &b, "POST", &path, vec![b' '; 70_000]).await;
    assert_eq!((r.status, r.code()), (413, codes::BODY_TOO_LARGE));
    let r = signed(&relay, &b, "POST", &path, br#"{"envelopes": 5}"#.to_vec()).await;
    assert_eq!((r.status, r.code()), (400, codes::MALFORMED_JSON));

    // Nothing refused was stored: exactly the three accepted envelopes, paged.
    let p1 = cb.pull(space.space, 0, 2).await.unwrap();
    assert_eq!(
        p1.envelopes.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![1, 2]
    );
    assert!(p1.more);
    assert_eq!(p1.envelopes[0].bytes().to_vec(), e1.encode());
    let p2 = cb.pull(space.space, p1.next, 2).await.unwrap();
    assert_eq!(
        p2.envelopes.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(!p2.more);
    let r = signed_at(&relay, &b, "GET", &path, "after=-1", vec![], now_ms()).await;
    assert_eq!((r.status, r.code()), (400, codes::BAD_REQUEST));
}

/// A large batch is checked on several threads; one bad signature anywhere in it
/// still refuses all of it, and the error names the first bad envelope.
#[tokio::test]
async fn a_batch_with_one_bad_signature_is_refused_whole_and_names_it() {
    let (_dir, relay, space, a, b) = setup(&[]).await;
    let path = format!("/v1/spaces/{}/envelopes", space.space);
    let mut chain = Chain::new(&a);
    let mut batch: Vec<_> = (0..64)
        .map(|i| chain.next(&space, format!("a{i}").as_bytes()))
        .collect();
    batch[41].signature[17] ^= 0x20;
    batch[58].signature[3] ^= 0x01;
    let r = signed(&relay, &a, "POST", &path, envelopes_body(&batch)).await;
    assert_eq!((r.status, r.code()), (400, codes::BAD_SIGNATURE));
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.starts_with("envelope 41:"), "{message}");
    // Nothing of it was stored, the good envelopes before the bad one included.
    let page = relay.client(&b).pull(space.space, 0, 100).await.unwrap();
    assert!(page.envelopes.is_empty(), "{} stored", page.envelopes.len());

    // The same batch, mended, goes in whole and in order.
    batch[41].signature[17] ^= 0x20;
    batch[58].signature[3] ^= 0x01;
    let r = relay
        .client(&a)
        .append(space.space, batch.iter().map(|e| e.encode()).collect())
        .await
        .unwrap();
    let cursors: Vec<u64> = r.results.iter().map(|x| x.cursor).collect();
    assert_eq!(cursors, (1..=64).collect::<Vec<u64>>());
}

#[tokio::test]
async fn websocket_stream_catches_up_then_follows() {
    let (_dir, relay, space, a, b) = setup(&[]).await;
    let ca = relay.client(&a);
    let mut chain = Chain::new(&a);
    let first = chain.next(&space, b"before the stream");
    ca.append(space.space, vec![first.encode()]).await.unwrap();
    let mut stream = relay.client(&b).stream(space.space, 0).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((got.cursor, got.bytes().to_vec()), (1, first.encode()));
    let second = chain.next(&space, b"while streaming");
    ca.append(space.space, vec![second.encode()]).await.unwrap();
    let got = tokio::time::timeout(std::time::Duration::from_secs(5), stream.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!((got.cursor, got.bytes().to_vec()), (2, second.encode()));
    stream.close().await;

    // Without a signature the upgrade is refused with the usual error.
    let outsider = DeviceIdentity::generate();
    let err = relay
        .client(&outsider)
        .stream(space.space, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::FORBIDDEN));
}

#[tokio::test]
async fn delete_space_erases_it() {
    let (_dir, relay, space, a, b) = setup(&[]).await;
    let mut chain = Chain::new(&b);
    relay
        .client(&b)
        .append(space.space, vec![chain.next(&space, b"soon gone").encode()])
        .await
        .unwrap();
    let outsider = DeviceIdentity::generate();
    let r = signed(
        &relay,
        &outsider,
        "DELETE",
        &format!("/v1/spaces/{}", space.space),
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code()), (403, codes::FORBIDDEN));
    let deleted = relay.client(&a).delete_space(space.space).await.unwrap();
    assert_eq!(deleted["deleted"], json!(true));
    let err = relay.client(&b).pull(space.space, 0, 10).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::NOT_FOUND));
    assert_eq!(relay.count("SELECT COUNT(*) FROM envelopes"), 0);
    assert_eq!(relay.count("SELECT COUNT(*) FROM spaces"), 0);
}

fn pake(from: Role) -> Vec<u8> {
    PairingMessage {
        from,
        payload: PairingPayload::Pake(vec![1; 33]),
    }
    .encode()
}

#[tokio::test]
async fn pairing_mailbox() {
    let (_dir, relay, space, a, _b) = setup(&["--max-mailboxes", "2"]).await;
    let ca = relay.client(&a);
    let opened = ca.open_mailbox(space.space).await.unwrap();
    let (n, inviter) = (opened.mailbox, opened.token);
    assert!(opened.expires_in_secs > 0);
    assert!((10_000_000..100_000_000).contains(&n), "eight digits: {n}");
    let joiner = RelayClient::new(&relay.url, DeviceIdentity::generate());
    let joined = joiner.mailbox_join(n, pake(Role::Joiner)).await.unwrap();

    // A long poll wakes as soon as the other side posts.
    let waiting = {
        let (joiner, joined) = (joiner.clone(), joined.clone());
        tokio::spawn(async move { joiner.mailbox_read(n, &joined, 0, 20).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let start = std::time::Instant::now();
    ca.mailbox_post(n, &inviter, pake(Role::Inviter))
        .await
        .unwrap();
    let got = waiting.await.unwrap().unwrap();
    assert!(start.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].0, pake(Role::Inviter));
    let got = ca.mailbox_read(n, &inviter, 0, 0).await.unwrap();
    assert_eq!(got.messages.len(), 1);
    assert_eq!(got.messages[0].0, pake(Role::Joiner));

    // One key exchange per side: a second joiner is refused, and so is a second
    // key exchange from either side.
    let err = joiner
        .mailbox_join(n, pake(Role::Joiner))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::MAILBOX_FULL));
    for (token, from) in [(&joined, Role::Joiner), (&inviter, Role::Inviter)] {
        let err = joiner.mailbox_post(n, token, pake(from)).await.unwrap_err();
        assert_eq!(err.code(), Some(codes::MAILBOX_FULL));
    }
    // Not a pairing message; a message from the other side than the token's;
    // a join that is not the joiner's key exchange; bad number.
    let err = joiner
        .mailbox_post(n, &joined, b"hello".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::BAD_REQUEST));
    let err = joiner
        .mailbox_post(n, &joined, pake(Role::Inviter))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::BAD_REQUEST));
    let err = joiner
        .mailbox_join(n, pake(Role::Inviter))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::BAD_REQUEST));
    let r = raw(
        &relay,
        "GET",
        "/v1/mailboxes/abc/messages",
        vec![(api::HEADER_MAILBOX_TOKEN, joined.clone())],
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code()), (400, codes::BAD_REQUEST));

    // Closed (by either side): single use.
    joiner.mailbox_close(n, &joined).await.unwrap();
    let err = joiner
        .mailbox_post(n, &joined, pake(Role::Joiner))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::MAILBOX_UNAVAILABLE));
    let err = ca.mailbox_read(n, &inviter, 0, 0).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::MAILBOX_UNAVAILABLE));
    let err = joiner
        .mailbox_read(9_999_999, &joined, 0, 0)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::MAILBOX_UNAVAILABLE));

    // The relay bounds how many are open at once (closed ones are gone).
    ca.open_mailbox(space.space).await.unwrap();
    ca.open_mailbox(space.space).await.unwrap();
    let r = signed(
        &relay,
        &a,
        "POST",
        &format!("/v1/spaces/{}/mailboxes", space.space),
        vec![],
    )
    .await;
    assert_eq!((r.status, r.code()), (503, codes::TOO_MANY_MAILBOXES));
}

#[tokio::test]
async fn rate_limit_and_quota() {
    let (_dir, relay, space, a, _b) =
        setup(&["--rate", "1", "--burst", "3", "--space-quota", "3000"]).await;
    let path = format!("/v1/spaces/{}/roster", space.space);
    let mut last = None;
    for _ in 0..6 {
        last = Some(signed(&relay, &a, "GET", &path, vec![]).await);
    }
    let r = last.unwrap();
    assert_eq!((r.status, r.code()), (429, codes::RATE_LIMITED));
    assert!(r.retry_after.is_some(), "429 carries Retry-After");

    // The quota: a second device so the first one's rate limit does not interfere.
    let (_dir2, relay2, space2, _a2, b2) = setup(&["--space-quota", "6000"]).await;
    let mut chain = Chain::new(&b2);
    let cb = relay2.client(&b2);
    cb.append(space2.space, vec![chain.next(&space2, b"fits").encode()])
        .await
        .unwrap();
    let mut refused = None;
    for i in 0..10 {
        let env = chain.next(&space2, format!("more {i}").as_bytes());
        if let Err(e) = cb.append(space2.space, vec![env.encode()]).await {
            refused = Some(e);
            break;
        }
    }
    let err = refused.expect("the quota is reached");
    assert_eq!(err.code(), Some(codes::QUOTA_EXCEEDED));
    assert!(matches!(
        err,
        attune_core::relay::RelayError::Refused { status: 507, .. }
    ));
    let _ = space;
}

#[tokio::test]
async fn openapi_lists_every_route_and_is_valid() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &[]);
    let r = raw(&relay, "GET", "/v1/openapi.json", vec![], vec![]).await;
    assert_eq!(r.status, 200);
    let doc: openapiv3::OpenAPI =
        serde_json::from_value(r.body.clone()).expect("the document is valid OpenAPI 3");
    assert!(doc.openapi.starts_with("3."));
    // Every reference resolves: the schemas derived from the API types are there.
    fn refs(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(m) => {
                if let Some(Value::String(r)) = m.get("$ref") {
                    out.push(r.clone());
                }
                m.values().for_each(|v| refs(v, out));
            }
            Value::Array(a) => a.iter().for_each(|v| refs(v, out)),
            _ => {}
        }
    }
    let mut all = Vec::new();
    refs(&r.body, &mut all);
    assert!(all.len() > 20, "{all:?}");
    for r in &all {
        let name = r
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("unexpected reference {r}"));
        assert!(
            doc.components
                .as_ref()
                .is_some_and(|c| c.schemas.contains_key(name)),
            "{r} does not resolve"
        );
    }
    let page = &r.body["components"]["schemas"]["Page"]["properties"];
    assert!(
        page["envelopes"].is_object() && page["next"].is_object(),
        "{page}"
    );
    let mut documented = 0;
    for spec in attune_relay::routes::ROUTES {
        let item = doc
            .paths
            .paths
            .get(spec.path)
            .and_then(|p| p.as_item())
            .unwrap_or_else(|| panic!("{} missing from openapi.json", spec.path));
        let op = match spec.method {
            "GET" => &item.get,
            "POST" => &item.post,
            "DELETE" => &item.delete,
            "PUT" => &item.put,
            m => panic!("unexpected method {m}"),
        };
        assert!(op.is_some(), "{} {} missing", spec.method, spec.path);
        documented += 1;
        // And the router serves it: never unknown_route or method_not_allowed.
        let path = spec
            .path
            .replace("{space}", "00000000000000000000000000000000")
            .replace("{mailbox}", "1")
            .replace("{lookup}", &"00".repeat(32));
        let answer = raw(&relay, spec.method, &path, vec![], vec![]).await;
        assert!(
            answer.code() != codes::UNKNOWN_ROUTE && answer.code() != codes::METHOD_NOT_ALLOWED,
            "{} {} is documented but not served",
            spec.method,
            spec.path
        );
    }
    let operations: usize = doc
        .paths
        .paths
        .values()
        .filter_map(|p| p.as_item())
        .map(|i| i.iter().count())
        .sum();
    assert_eq!(
        operations, documented,
        "the document lists routes the table does not"
    );
}

#[tokio::test]
async fn graceful_shutdown_keeps_writes_and_logs_hold_no_content() {
    let (_dir, mut relay, space, a, _b) = setup(&[]).await;
    let marker = b"MARKER-relay-log-7f3a91";
    let mut chain = Chain::new(&a);
    let env = chain.next(&space, marker);
    let ack = relay
        .client(&a)
        .append(space.space, vec![env.encode()])
        .await
        .unwrap();
    let status = relay.terminate().expect("the relay was running");
    assert!(
        status.success(),
        "SIGTERM ends the relay cleanly: {status:?}"
    );
    let log = relay.log_text();
    assert!(
        log.contains("shutting down") && log.contains("stopped"),
        "{log}"
    );
    assert!(
        log.contains("route=/v1/spaces/{space}/envelopes"),
        "spans name route templates: {log}"
    );
    // No content, no signatures, no ids of spaces in the log.
    let body = env.encode();
    for needle in [
        api::b64(&body),
        api::b64(&env.signature),
        hex::encode(env.signature),
        space.space.to_hex(),
        String::from_utf8_lossy(marker).to_string(),
    ] {
        assert!(!log.contains(&needle), "the log contains {needle}");
    }
    // The acknowledged write is there after a restart.
    relay.restart();
    let page = relay.client(&a).pull(space.space, 0, 10).await.unwrap();
    assert_eq!(page.envelopes.len(), 1);
    assert_eq!(page.envelopes[0].cursor, ack.results[0].cursor);
}

/// The replay cache lives in memory; a request signed before a restart, whether
/// it was delivered then or only captured, is refused after the restart.
#[tokio::test]
async fn a_request_captured_before_a_restart_cannot_be_replayed_after_it() {
    let (_dir, mut relay, space, a, _b) = setup(&[]).await;
    let path = format!("/v1/spaces/{}/roster", space.space);
    let delivered = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
    let captured = sign_headers(&a, "GET", &path, "", b"", now_ms(), random16());
    let r = raw(&relay, "GET", &path, delivered.clone(), vec![]).await;
    assert_eq!(r.status, 200);
    relay.restart();
    for headers in [delivered, captured] {
        let r = raw(&relay, "GET", &path, headers, vec![]).await;
        assert_eq!((r.status, r.code()), (401, codes::STALE_TIMESTAMP));
    }
    // Requests signed now are served.
    assert_eq!(signed(&relay, &a, "GET", &path, vec![]).await.status, 200);
}

#[tokio::test]
async fn a_relay_with_a_creation_token_creates_spaces_only_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(dir.path(), &["--create-token", "s3cret-token"]);
    let a = DeviceIdentity::generate();
    let space = TestSpace::new(&a);
    let body =
        serde_json::to_vec(&json!({ "create_event": api::b64(&space.create_event()) })).unwrap();
    for token in [
        None,
        Some("wrong"),
        Some("s3cret-toke"),
        Some("s3cret-token2"),
    ] {
        let mut headers = sign_headers(&a, "POST", "/v1/spaces", "", &body, now_ms(), random16());
        if let Some(t) = token {
            headers.push((api::HEADER_CREATE_TOKEN, t.to_string()));
        }
        let r = raw(&relay, "POST", "/v1/spaces", headers, body.clone()).await;
        assert_eq!(
            (r.status, r.code()),
            (403, codes::CREATION_NOT_ALLOWED),
            "{token:?}"
        );
    }
    relay
        .client(&a)
        .with_create_token(Some("s3cret-token".into()))
        .create_space(space.create_event())
        .await
        .expect("created with the operator's token");
}

/// A space cannot grow its roster without bound: roster events count toward the
/// space's quota, and the relay caps how many a roster may hold (every client
/// reads the whole roster in one answer).
#[tokio::test]
async fn roster_events_count_toward_the_quota_and_are_capped() {
    // Room for the two events of `setup` and a few more, but not for 64.
    let (_dir, relay, mut space, a, _b) = setup(&["--space-quota", "2000"]).await;
    let ca = relay.client(&a);
    let id = space.space;
    let member = creator_member(&space);
    let mut link = || link_new_device(&mut space, &a, member);
    let many: Vec<Vec<u8>> = (0..64).map(|_| link()).collect();
    let err = ca.append_roster(id, many).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::QUOTA_EXCEEDED), "{err}");

    let (_dir, relay, mut space, a, _b) = setup(&["--max-roster-events", "4"]).await;
    let ca = relay.client(&a);
    let id = space.space;
    let member = creator_member(&space);
    let mut link = || link_new_device(&mut space, &a, member);
    let two = vec![link(), link()];
    assert_eq!(ca.append_roster(id, two).await.unwrap().len(), 4);
    let err = ca.append_roster(id, vec![link()]).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::ROSTER_FULL), "{err}");
    assert!(err.to_string().contains("limited to 4 events"), "{err}");
}

/// A `Link` of a fresh device to `member`, signed by `signer`, appended to `space`.
fn link_new_device(space: &mut TestSpace, signer: &DeviceIdentity, member: MemberId) -> Vec<u8> {
    let e = space.next_event(
        signer,
        RosterChange::Link {
            member,
            device: DeviceIdentity::generate().public(),
        },
    );
    space.events.push(e);
    e.encode()
}

/// Recovery bundles: filed only for an active recovery key of the signer's own
/// member, fetched by lookup without a signature, gone once the key is revoked;
/// a revoked device is refused with `device_revoked`, erasing included.
#[tokio::test]
async fn recovery_bundles_and_revoked_devices() {
    let (_dir, relay, mut space, a, b) = setup(&[]).await;
    let member = creator_member(&space);
    let id = space.space;
    let ca = relay.client(&a);
    let recovery = DeviceIdentity::generate();
    let event = space.next_event(
        &a,
        RosterChange::Recovery {
            member,
            device: recovery.public(),
        },
    );
    space.events.push(event);
    ca.append_roster(id, vec![event.encode()]).await.unwrap();
    let lookup = attune_proto::Hash32([0x42; 32]);

    // Not a recovery key, or another member's: refused.
    let err = ca
        .put_recovery(id, a.id(), lookup, b"bundle".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::FORBIDDEN), "{err}");
    let err = relay
        .client(&b)
        .put_recovery(id, recovery.id(), lookup, b"bundle".to_vec())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::FORBIDDEN), "{err}");
    // Filed by the member's device; anyone with the lookup reads it back.
    ca.put_recovery(id, recovery.id(), lookup, b"bundle v1".to_vec())
        .await
        .unwrap();
    ca.put_recovery(id, recovery.id(), lookup, b"bundle v2".to_vec())
        .await
        .unwrap();
    let stranger = relay.client(&DeviceIdentity::generate());
    let found = stranger.recovery(lookup).await.unwrap();
    assert_eq!(found.space, id.to_hex());
    assert_eq!(found.bundle.0, b"bundle v2");
    let err = stranger
        .recovery(attune_proto::Hash32([0x43; 32]))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some(codes::NOT_FOUND), "{err}");
    let bad = raw(&relay, "GET", "/v1/recovery/zz", vec![], vec![]).await;
    assert_eq!((bad.status, bad.code()), (400, codes::BAD_REQUEST));

    // The recovery key signs for a new device of its member (as a restore does).
    let cr = relay.client(&recovery);
    let restored = DeviceIdentity::generate();
    let link = space.next_event(
        &recovery,
        RosterChange::Link {
            member,
            device: restored.public(),
        },
    );
    space.events.push(link);
    cr.append_roster(id, vec![link.encode()]).await.unwrap();

    // Revoking the recovery key removes its bundle and refuses it from then on.
    let revoke = space.next_event(
        &restored,
        RosterChange::Revoke {
            device: recovery.id(),
            last_seq: 0,
        },
    );
    space.events.push(revoke);
    relay
        .client(&restored)
        .append_roster(id, vec![revoke.encode()])
        .await
        .unwrap();
    let err = stranger.recovery(lookup).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::NOT_FOUND), "{err}");
    let err = cr.roster(id).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::DEVICE_REVOKED), "{err}");
    let err = cr.delete_space(id).await.unwrap_err();
    assert_eq!(err.code(), Some(codes::DEVICE_REVOKED), "{err}");
    assert!(ca.roster(id).await.is_ok(), "the space is still there");

    // Lookups need no key, so an address gets ten a minute, then 429.
    let mut limited = None;
    for _ in 0..12 {
        let r = raw(
            &relay,
            "GET",
            &format!("/v1/recovery/{}", "ab".repeat(32)),
            vec![],
            vec![],
        )
        .await;
        if r.status == 429 {
            limited = Some(r);
            break;
        }
        assert_eq!((r.status, r.code()), (404, codes::NOT_FOUND));
    }
    let r = limited.expect("scanning lookups is limited");
    assert_eq!(r.code(), codes::RATE_LIMITED);
    assert!(r.retry_after.is_some(), "429 carries Retry-After");
}
