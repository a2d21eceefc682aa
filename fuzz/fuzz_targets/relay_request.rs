//! The relay's request handling, in process: the real router, state and SQLite
//! store (on a temporary file), one fuzzer-made HTTP request at a time.
//!
//! Requests are built from fuzzer choices: any route of the API table or a raw
//! path, any method, a query, authentication headers that are absent, garbage,
//! or a real signature by a member or an outsider (fresh or stale), a content
//! type, and a body that is raw bytes or JSON carrying fuzzer-chosen envelopes
//! (really signed, chained or not) and roster events.
//!
//! Checks: nothing panics; no answer is a 500; every error answer is the
//! documented JSON error body; an outsider's or an unsigned request never
//! succeeds on a space route; the relay still answers `/healthz`.
#![no_main]

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::Arbitrary;
use attune_crypto::{seal_envelope, DeviceIdentity, SymmetricKey};
use attune_fuzz::device;
use attune_proto::api::{self, ErrorBody};
use attune_proto::{
    EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, RosterChange, RosterEvent, SpaceId,
};
use attune_relay::routes::ROUTES;
use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, StatusCode};
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt;

const SPACE: SpaceId = SpaceId([0x5A; 16]);

struct Relay {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    /// 0, 1: the two members' devices; 2: an outsider.
    devices: Vec<DeviceIdentity>,
    epoch0: SymmetricKey,
    /// The chain head the relay accepted last, per author: (seq, hash).
    chains: Mutex<HashMap<usize, (u64, Hash32)>>,
    /// The last pairing mailbox opened and its opener's token, to aim requests
    /// at a live one.
    mailbox: Mutex<Option<(u32, String)>>,
    nonce: Mutex<u128>,
    _stop: tokio::sync::watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

fn now_ms() -> i64 {
    attune_relay::auth::now_ms()
}

impl Relay {
    fn sign(
        &self,
        device: usize,
        method: &str,
        path: &str,
        query: &str,
        body: &[u8],
        at: i64,
    ) -> Vec<(&'static str, String)> {
        let nonce = {
            let Ok(mut n) = self.nonce.lock() else {
                panic!("nonce lock poisoned")
            };
            *n += 1;
            n.to_be_bytes()
        };
        attune_core::relay::sign_headers(
            &self.devices[device],
            method,
            path,
            query,
            body,
            at,
            nonce,
        )
    }

    fn send(&self, req: Request<Body>) -> (StatusCode, Vec<u8>) {
        self.rt.block_on(async {
            let Ok(resp) = self.app.clone().oneshot(req).await;
            let status = resp.status();
            let body = axum::body::to_bytes(resp.into_body(), 1 << 24).await;
            (status, body.map(|b| b.to_vec()).unwrap_or_default())
        })
    }
}

fn relay() -> &'static Relay {
    static RELAY: OnceLock<Relay> = OnceLock::new();
    RELAY.get_or_init(|| {
        // On tmpfs where there is one: the store syncs every commit.
        let shm = std::path::Path::new("/dev/shm");
        let mut builder = tempfile::Builder::new();
        builder.prefix("attune-fuzz-relay-");
        let dir = if shm.is_dir() {
            builder.tempdir_in(shm)
        } else {
            builder.tempdir()
        };
        let Ok(dir) = dir else {
            panic!("no temporary directory")
        };
        let db = dir.path().join("relay.sqlite3");
        let mut config = attune_relay::Config::for_tests(db.clone());
        config.rate_per_sec = 1e9;
        config.rate_burst = 1e9;
        config.request_timeout_secs = 2;
        // Every request comes from one (unknown) address: no per-address limits,
        // so that mailbox routes stay reachable for the whole run.
        config.max_mailboxes_per_space = usize::MAX;
        config.max_mailboxes_per_address = usize::MAX;
        config.pairing_attempts_per_min = u32::MAX;
        config.pairing_attempts_per_min_total = u32::MAX;
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            panic!("no tokio runtime")
        };
        let metrics = Arc::new(attune_relay::metrics::Metrics::default());
        let Ok(store) = attune_relay::store::sqlite::SqliteStore::open(&db, 2, metrics.clone())
        else {
            panic!("the store did not open")
        };
        // Held for the life of the process: a dropped sender reads as shutdown.
        let (stop, stop_rx) = tokio::sync::watch::channel(false);
        let state = Arc::new(attune_relay::state::AppState::new(
            config,
            Arc::new(store),
            metrics,
            stop_rx,
        ));
        let app = attune_relay::routes::router(state);
        let devices: Vec<DeviceIdentity> = (0..3).map(device).collect();
        let relay = Relay {
            rt,
            app,
            devices,
            epoch0: SymmetricKey::from_bytes([0x40; 32]),
            chains: Mutex::new(HashMap::new()),
            mailbox: Mutex::new(None),
            nonce: Mutex::new(0),
            _stop: stop,
            _dir: dir,
        };
        create_space(&relay);
        relay
    })
}

/// Creates the space both members' devices are in (again, after a fuzzer-made
/// request erased it).
fn create_space(relay: &Relay) {
    let (a, b) = (&relay.devices[0], &relay.devices[1]);
    let create = a.sign_roster_event(RosterEvent {
        space: SPACE,
        seq: 1,
        prev: Hash32::ZERO,
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Create {
            member: MemberId([0x0A; 16]),
            device: a.public(),
        },
    });
    let join = a.sign_roster_event(RosterEvent {
        space: SPACE,
        seq: 2,
        prev: create.hash(),
        signer: a.id(),
        legacy_at: None,
        change: RosterChange::Join {
            member: MemberId([0x0B; 16]),
            device: b.public(),
        },
    });
    let space_path = format!("/v1/spaces/{}", SPACE.to_hex());
    for (path, body) in [
        (
            "/v1/spaces".to_string(),
            serde_json::json!({ "create_event": api::b64(&create.encode()) }),
        ),
        (
            format!("{space_path}/roster"),
            serde_json::json!({ "events": [api::b64(&join.encode())] }),
        ),
    ] {
        let body = body.to_string().into_bytes();
        let mut req = Request::builder()
            .method("POST")
            .uri(&path)
            .header("content-type", "application/json");
        for (k, v) in relay.sign(0, "POST", &path, "", &body, now_ms()) {
            req = req.header(k, v);
        }
        let Ok(req) = req.body(Body::from(body)) else {
            panic!("setup request")
        };
        let (status, _) = relay.send(req);
        assert!(status.is_success(), "setup request {path} failed: {status}");
    }
}

#[derive(Debug, Arbitrary)]
enum SpaceSel {
    Ours,
    Other([u8; 16]),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum MailboxSel {
    LastOpened,
    Number(u32),
    Text(String),
}

#[derive(Debug, Arbitrary)]
enum Auth {
    None,
    /// A real signature by device `device % 3` (2 is an outsider).
    Signed {
        device: u8,
        skew_secs: i16,
        corrupt: bool,
    },
    Raw {
        device: String,
        timestamp: String,
        nonce: String,
        signature: String,
    },
}

#[derive(Debug, Arbitrary)]
struct EnvSpec {
    author: u8,
    /// Continue the author's accepted chain, or use the fields below.
    next: bool,
    seq: u64,
    prev: [u8; 32],
    key: u8,
    entry: [u8; 16],
    plaintext_len: u16,
    /// Flip one byte of the encoding (a tampered envelope).
    flip: Option<u16>,
}

#[derive(Debug, Arbitrary)]
enum BodySel {
    Raw(Vec<u8>),
    Envelopes(Vec<EnvSpec>),
    EnvelopeBytes(Vec<Vec<u8>>),
    RosterEvents(Vec<Vec<u8>>),
    CreateEvent(Vec<u8>),
    MailboxMessage(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    route: u8,
    raw_path: String,
    space: SpaceSel,
    mailbox: MailboxSel,
    query: String,
    auth: Auth,
    content_type: Option<String>,
    body: BodySel,
}

const METHODS: [&str; 7] = ["GET", "POST", "DELETE", "PUT", "PATCH", "HEAD", "OPTIONS"];

/// One hold slot per envelope (PROTOCOL.md §9): 104 bytes taken from the
/// envelope's own header, so they differ between envelopes (no two share a tag,
/// nothing is released) and a run replays the same way.
fn holds(envs: &[Vec<u8>]) -> Vec<String> {
    envs.iter()
        .map(|e| {
            let mut slot = [0u8; attune_proto::Hold::ENCODED_LEN];
            for (i, b) in slot.iter_mut().enumerate() {
                *b = e.get(1 + i).copied().unwrap_or(0);
            }
            api::b64(&slot)
        })
        .collect()
}

fn envelopes(r: &Relay, specs: &[EnvSpec]) -> Vec<Vec<u8>> {
    let Ok(chains) = r.chains.lock() else {
        panic!("chains lock poisoned")
    };
    let mut out = Vec::new();
    let mut heads: HashMap<usize, (u64, Hash32)> = chains.clone();
    for s in specs.iter().take(8) {
        let author = usize::from(s.author) % r.devices.len();
        let (seq, prev) = if s.next {
            let (seq, head) = heads.get(&author).copied().unwrap_or((0, Hash32::ZERO));
            (seq + 1, head)
        } else {
            (s.seq, Hash32(s.prev))
        };
        let header = EnvelopeHeader {
            space: SPACE,
            author: r.devices[author].id(),
            seq,
            prev,
            legacy_key: None,
            entry: EntryId(s.entry),
        };
        let key = if s.key % 2 == 0 {
            KeyId::Epoch(0)
        } else {
            KeyId::MemberPrivate(u32::from(s.key))
        };
        let plaintext = vec![0x61; usize::from(s.plaintext_len) % 2048];
        let Ok(env) = seal_envelope(&r.devices[author], header, key, &r.epoch0, &plaintext) else {
            continue;
        };
        heads.insert(author, (seq, env.hash()));
        let mut bytes = env.encode();
        if let Some(at) = s.flip {
            let at = usize::from(at) % bytes.len();
            bytes[at] ^= 0x20;
        }
        out.push(bytes);
    }
    out
}

/// After a successful append, remember the heads the relay now has.
fn record_chains(r: &Relay, sent: &[Vec<u8>]) {
    let Ok(mut chains) = r.chains.lock() else {
        panic!("chains lock poisoned")
    };
    for bytes in sent {
        if let Ok(env) = Envelope::decode(bytes) {
            if let Some(author) = r.devices.iter().position(|d| d.id() == env.header.author) {
                let known = chains.get(&author).map_or(0, |c| c.0);
                if env.header.seq > known {
                    chains.insert(author, (env.header.seq, env.hash()));
                }
            }
        }
    }
}

fn fill(template: &str, space: &str, mailbox: &str) -> String {
    template
        .replace("{space}", space)
        .replace("{mailbox}", mailbox)
}

fuzz_target!(|input: Input| {
    let r = relay();
    let space = match &input.space {
        SpaceSel::Ours => SPACE.to_hex(),
        SpaceSel::Other(b) => SpaceId(*b).to_hex(),
        SpaceSel::Text(t) => t.clone(),
    };
    let last = r.mailbox.lock().ok().and_then(|m| m.clone());
    // The last mailbox is addressed with its token; other numbers without one.
    let (mailbox, mailbox_token) = match &input.mailbox {
        MailboxSel::LastOpened => {
            last.map_or(("0".to_string(), None), |(n, t)| (n.to_string(), Some(t)))
        }
        MailboxSel::Number(n) => (n.to_string(), None),
        MailboxSel::Text(t) => (t.clone(), None),
    };
    let spec = ROUTES.get(usize::from(input.route));
    let path = match spec {
        Some(s) => fill(s.path, &space, &mailbox),
        None => input.raw_path.clone(),
    };
    let method = match (spec, input.method) {
        (Some(s), m) if m < 128 => s.method,
        (_, m) => METHODS[usize::from(m) % METHODS.len()],
    };
    // Long-poll waits are not parsing; leave them out so runs stay fast.
    let query: String = input
        .query
        .split('&')
        .filter(|kv| !kv.to_ascii_lowercase().contains("wait") && !kv.contains('%'))
        .collect::<Vec<_>>()
        .join("&");
    let (body, sent_envelopes) = match &input.body {
        BodySel::Raw(b) => (b.clone(), Vec::new()),
        BodySel::Envelopes(specs) => {
            let envs = envelopes(r, specs);
            let json = serde_json::json!({ "envelopes": envs.iter().map(|e| api::b64(e)).collect::<Vec<_>>(), "holds": holds(&envs) });
            (json.to_string().into_bytes(), envs)
        }
        BodySel::EnvelopeBytes(envs) => {
            let json = serde_json::json!({ "envelopes": envs.iter().map(|e| api::b64(e)).collect::<Vec<_>>(), "holds": holds(envs) });
            (json.to_string().into_bytes(), Vec::new())
        }
        BodySel::RosterEvents(evs) => {
            let json = serde_json::json!({ "events": evs.iter().map(|e| api::b64(e)).collect::<Vec<_>>() });
            (json.to_string().into_bytes(), Vec::new())
        }
        BodySel::CreateEvent(ev) => (
            serde_json::json!({ "create_event": api::b64(ev) })
                .to_string()
                .into_bytes(),
            Vec::new(),
        ),
        BodySel::MailboxMessage(m) => (
            serde_json::json!({ "message": api::b64(m) })
                .to_string()
                .into_bytes(),
            Vec::new(),
        ),
    };

    let uri = if query.is_empty() {
        path.clone()
    } else {
        format!("{path}?{query}")
    };
    let Ok(method_v) = Method::from_bytes(method.as_bytes()) else {
        return;
    };
    let mut builder = Request::builder().method(method_v).uri(uri.as_str());
    if let Some(ct) = &input.content_type {
        if let Ok(v) = HeaderValue::from_str(ct) {
            builder = builder.header("content-type", v);
        }
    }
    if let Some(token) = &mailbox_token {
        builder = builder.header(api::HEADER_MAILBOX_TOKEN, token.as_str());
    }
    let mut signer = None;
    match &input.auth {
        Auth::None => {}
        Auth::Signed {
            device,
            skew_secs,
            corrupt,
        } => {
            let device = usize::from(*device) % r.devices.len();
            signer = Some(device);
            let at = now_ms() + i64::from(*skew_secs) * 1000;
            // What a client signs: the path and query as sent.
            let (p, q) = uri.split_once('?').unwrap_or((uri.as_str(), ""));
            for (k, mut v) in r.sign(device, method, p, q, &body, at) {
                if *corrupt && k == api::HEADER_SIGNATURE {
                    v = v.chars().rev().collect();
                }
                builder = builder.header(k, v);
            }
        }
        Auth::Raw {
            device,
            timestamp,
            nonce,
            signature,
        } => {
            for (k, v) in [
                (api::HEADER_DEVICE, device),
                (api::HEADER_TIMESTAMP, timestamp),
                (api::HEADER_NONCE, nonce),
                (api::HEADER_SIGNATURE, signature),
            ] {
                if let Ok(v) = HeaderValue::from_str(v) {
                    builder = builder.header(k, v);
                }
            }
        }
    }
    let Ok(req) = builder.body(Body::from(body)) else {
        return;
    };
    let (status, resp) = r.send(req);
    if std::env::var_os("ATTUNE_FUZZ_VERBOSE").is_some() {
        // For checking how deep a corpus reaches: run it with `-runs=0`.
        eprintln!(
            "fuzz-status {status} {method} {}",
            spec.map_or("(raw path)", |s| s.path)
        );
    }

    assert!(
        status != StatusCode::INTERNAL_SERVER_ERROR,
        "500 for {method} {path}: {}",
        String::from_utf8_lossy(&resp)
    );
    if (status.is_client_error() || status.is_server_error()) && method != "HEAD" {
        assert!(
            serde_json::from_slice::<ErrorBody>(&resp).is_ok(),
            "{status} for {method} {path} without the JSON error body: {}",
            String::from_utf8_lossy(&resp)
        );
    }
    if status.is_success() && path.starts_with("/v1/spaces/") {
        assert!(
            matches!(signer, Some(0 | 1)),
            "{method} {path} succeeded for {signer:?}"
        );
    }
    if status.is_success() && method == "DELETE" && space == SPACE.to_hex() {
        if let Ok(mut chains) = r.chains.lock() {
            chains.clear();
        }
        create_space(r);
    }
    if status.is_success() && method == "POST" && path.ends_with("/envelopes") {
        record_chains(r, &sent_envelopes);
    }
    if status == StatusCode::CREATED && path.ends_with("/mailboxes") {
        if let Ok(opened) = serde_json::from_slice::<api::MailboxOpened>(&resp) {
            if let Ok(mut m) = r.mailbox.lock() {
                *m = Some((opened.mailbox, opened.token));
            }
        }
    }
});
