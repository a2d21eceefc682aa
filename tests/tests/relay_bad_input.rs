//! The relay under hostile input: a table of truncated, oversized, malformed and
//! abusive requests sent over raw TCP to the real binary, each with its expected
//! status and stable error code, plus a slow-drip body, WebSocket floods and
//! thousands of pairing mailboxes. Throughout, an honest device appends, pulls and
//! streams without a single error, and nothing it was acknowledged is lost.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attune_core::relay::{now_ms, sign_headers, RelayClient};
use attune_crypto::DeviceIdentity;
use attune_proto::api::{self, codes};
use attune_proto::{Envelope, MemberId, PairingMessage, PairingPayload, Role, RosterChange};
use attune_tests::{random16, Chain, Relay, TestSpace};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MAX_BODY: usize = 65_536;
const MAX_ENVELOPE: usize = 8_192;
const MAX_BATCH: usize = 10;
const MAX_MAILBOXES: usize = 2_000;
const REQUEST_TIMEOUT_SECS: u64 = 5;

// ---------------------------------------------------------------------------
// A raw HTTP/1.1 client: full control over the request line, headers and body.
// ---------------------------------------------------------------------------

/// What came back on the wire.
#[derive(Debug, Default)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Option<Value> {
        serde_json::from_slice(&self.body).ok()
    }

    /// The stable error code, or a description of what came instead.
    fn code(&self) -> String {
        if self.body.is_empty() {
            return if self.status < 400 {
                String::new()
            } else {
                "<empty body>".into()
            };
        }
        match self.json() {
            Some(v) => match (v["error"]["code"].as_str(), v["error"]["message"].as_str()) {
                (Some(code), Some(message)) if !message.is_empty() => code.to_string(),
                (Some(code), _) => format!("{code} <without a message>"),
                _ if self.status < 400 => String::new(),
                _ => "<JSON without error.code>".into(),
            },
            None => {
                let text = String::from_utf8_lossy(&self.body);
                let short: String = text.chars().take(70).collect();
                format!("<non-JSON: {short:?}>")
            }
        }
    }
}

#[derive(Debug)]
enum Outcome {
    Answer(Answer),
    /// The connection ended without a complete response.
    Closed(String),
    /// Nothing within the time limit: a hang.
    Hang,
}

/// How the body goes out after the head.
#[derive(Debug, Clone, Copy)]
enum Delivery {
    /// All at once; the write side stays open until the answer is read.
    All,
    /// All at once, then the write side is shut down (FIN).
    ThenHalfClose,
    /// One byte at a time.
    Drip(Duration),
}

/// Parses a complete response from `buf`, if there is one. `eof`: the connection
/// ended, so a response without a length ends here.
fn parse_response(buf: &[u8], head_only: bool, eof: bool) -> Option<Answer> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &buf[end + 4..];
    let mut answer = Answer {
        status,
        headers,
        body: vec![],
    };
    if head_only || status == 101 || status == 204 || status == 304 || status < 200 {
        return Some(answer);
    }
    if let Some(len) = answer.header("content-length") {
        let len: usize = len.parse().ok()?;
        if rest.len() < len {
            return None;
        }
        answer.body = rest[..len].to_vec();
        return Some(answer);
    }
    if answer
        .header("transfer-encoding")
        .is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    {
        let mut body = vec![];
        let mut at = 0;
        loop {
            let line_end = rest[at..].windows(2).position(|w| w == b"\r\n")? + at;
            let size_text = String::from_utf8_lossy(&rest[at..line_end]).to_string();
            let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
            at = line_end + 2;
            if size == 0 {
                answer.body = body;
                return Some(answer);
            }
            if rest.len() < at + size + 2 {
                return None;
            }
            body.extend_from_slice(&rest[at..at + size]);
            at += size + 2;
        }
    }
    if eof {
        answer.body = rest.to_vec();
        return Some(answer);
    }
    None
}

/// Sends `head` then `body` over a fresh connection and reads one response.
async fn exchange(
    addr: SocketAddr,
    head: Vec<u8>,
    body: Vec<u8>,
    delivery: Delivery,
    head_only: bool,
    limit: Duration,
) -> Outcome {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::Closed(format!("connect: {e}")),
    };
    let (mut rd, mut wr) = stream.into_split();
    let writer = tokio::spawn(async move {
        let _ = wr.write_all(&head).await;
        match delivery {
            Delivery::All => {
                let _ = wr.write_all(&body).await;
            }
            Delivery::ThenHalfClose => {
                let _ = wr.write_all(&body).await;
                let _ = wr.shutdown().await;
            }
            Delivery::Drip(every) => {
                for b in body {
                    if wr.write_all(&[b]).await.is_err() {
                        break;
                    }
                    tokio::time::sleep(every).await;
                }
            }
        }
        // Keeps the write half (and so the connection) open until aborted.
        std::future::pending::<()>().await;
        drop(wr);
    });
    let read = async {
        let mut buf = Vec::new();
        let mut chunk = vec![0u8; 64 * 1024];
        loop {
            if let Some(a) = parse_response(&buf, head_only, false) {
                return Outcome::Answer(a);
            }
            match rd.read(&mut chunk).await {
                Ok(0) => {
                    return match parse_response(&buf, head_only, true) {
                        Some(a) => Outcome::Answer(a),
                        None => Outcome::Closed(format!("EOF after {} bytes", buf.len())),
                    }
                }
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e) => {
                    return match parse_response(&buf, head_only, true) {
                        Some(a) => Outcome::Answer(a),
                        None => Outcome::Closed(format!("{e} after {} bytes", buf.len())),
                    }
                }
            }
        }
    };
    let outcome = tokio::time::timeout(limit, read)
        .await
        .unwrap_or(Outcome::Hang);
    writer.abort();
    outcome
}

// ---------------------------------------------------------------------------
// Requests and the table's rows.
// ---------------------------------------------------------------------------

/// How a request is authenticated.
#[derive(Clone)]
enum Sign {
    None,
    /// Correctly signed by this device.
    As(DeviceIdentity),
    /// Signed with this timestamp.
    At(DeviceIdentity, i64),
    /// Correctly signed, then one header's value replaced by these raw bytes.
    Edit(DeviceIdentity, &'static str, Vec<u8>),
    /// These exact headers (to send one signed request twice).
    Fixed(Vec<(&'static str, String)>),
}

/// How the body is framed on the wire.
#[derive(Clone)]
enum Framing {
    /// `Content-Length` of the body.
    Length,
    /// `Content-Length: n` whatever the body's length.
    Declared(usize),
    /// `Transfer-Encoding: chunked` with these exact wire bytes.
    ChunkedWire(Vec<u8>),
    /// No framing header (the row sets its own).
    Omit,
}

#[derive(Clone)]
struct Req {
    method: String,
    target: Vec<u8>,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
    framing: Framing,
    sign: Sign,
    delivery: Delivery,
}

impl Req {
    fn new(method: &str, target: impl Into<Vec<u8>>) -> Self {
        Self {
            method: method.to_string(),
            target: target.into(),
            headers: vec![],
            body: vec![],
            framing: Framing::Length,
            sign: Sign::None,
            delivery: Delivery::All,
        }
    }
    fn get(target: impl Into<Vec<u8>>) -> Self {
        Self::new("GET", target)
    }
    fn post(target: impl Into<Vec<u8>>, body: impl Into<Vec<u8>>) -> Self {
        let mut r = Self::new("POST", target);
        r.body = body.into();
        r.headers
            .push(("content-type".into(), b"application/json".to_vec()));
        r
    }
    fn by(mut self, who: &DeviceIdentity) -> Self {
        self.sign = Sign::As(who.clone());
        self
    }
    fn signed(mut self, sign: Sign) -> Self {
        self.sign = sign;
        self
    }
    fn header(mut self, name: &str, value: impl Into<Vec<u8>>) -> Self {
        let name = name.to_ascii_lowercase();
        self.headers.retain(|(k, _)| *k != name);
        self.headers.push((name, value.into()));
        self
    }
    fn no_content_type(mut self) -> Self {
        self.headers.retain(|(k, _)| k != "content-type");
        self
    }
    fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }
    fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
    }
    fn websocket(self) -> Self {
        self.header("connection", "Upgrade")
            .header("upgrade", "websocket")
            .header("sec-websocket-version", "13")
            .header("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ==")
    }

    /// The bytes of the request line and headers.
    fn head(&self, addr: SocketAddr) -> Vec<u8> {
        let mut headers = self.headers.clone();
        let target = String::from_utf8_lossy(&self.target).to_string();
        let (path, query) = target.split_once('?').unwrap_or((&target, ""));
        let signature = |who: &DeviceIdentity, ts: i64| {
            sign_headers(who, &self.method, path, query, &self.body, ts, random16())
        };
        let auth: Vec<(&str, Vec<u8>)> = match &self.sign {
            Sign::None => vec![],
            Sign::As(who) => bytes_headers(signature(who, now_ms())),
            Sign::At(who, ts) => bytes_headers(signature(who, *ts)),
            Sign::Edit(who, name, value) => {
                let mut h = bytes_headers(signature(who, now_ms()));
                for (k, v) in h.iter_mut() {
                    if k == name {
                        *v = value.clone();
                    }
                }
                h
            }
            Sign::Fixed(h) => bytes_headers(h.clone()),
        };
        headers.extend(auth.into_iter().map(|(k, v)| (k.to_string(), v)));
        let mut out = Vec::new();
        out.extend_from_slice(self.method.as_bytes());
        out.push(b' ');
        out.extend_from_slice(&self.target);
        out.extend_from_slice(format!(" HTTP/1.1\r\nhost: {addr}\r\n").as_bytes());
        if !self.headers.iter().any(|(k, _)| k == "connection") {
            out.extend_from_slice(b"connection: close\r\n");
        }
        match &self.framing {
            Framing::Length => {
                if !self.body.is_empty() || self.method == "POST" {
                    out.extend_from_slice(
                        format!("content-length: {}\r\n", self.body.len()).as_bytes(),
                    );
                }
            }
            Framing::Declared(n) => {
                out.extend_from_slice(format!("content-length: {n}\r\n").as_bytes());
            }
            Framing::ChunkedWire(_) => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
            Framing::Omit => {}
        }
        for (k, v) in headers {
            out.extend_from_slice(k.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(&v);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out
    }

    fn wire_body(&self) -> Vec<u8> {
        match &self.framing {
            Framing::ChunkedWire(wire) => wire.clone(),
            _ => self.body.clone(),
        }
    }

    async fn send(&self, addr: SocketAddr, limit: Duration) -> Outcome {
        exchange(
            addr,
            self.head(addr),
            self.wire_body(),
            self.delivery,
            self.method == "HEAD",
            limit,
        )
        .await
    }
}

fn bytes_headers(h: Vec<(&'static str, String)>) -> Vec<(&'static str, Vec<u8>)> {
    h.into_iter().map(|(k, v)| (k, v.into_bytes())).collect()
}

/// A body's chunked encoding, in chunks of `size`.
fn chunked(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(size) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// What a row must get back.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The relay's own answer: this status and, for errors, this stable code in a
    /// `{"error":{"code","message"}}` body (for successes, code is "").
    Api(u16, &'static str),
    /// This status with one of these codes, or the connection closed without an
    /// answer (e.g. the client already half-closed, or the relay gave up on it).
    ApiOrClosed(u16, &'static [&'static str]),
    /// Refused by the HTTP layer before any route runs: one of these 4xx statuses,
    /// whatever the body.
    Http(&'static [u16]),
}

struct Row {
    name: String,
    req: Req,
    expect: Expect,
}

fn row(name: impl Into<String>, req: Req, expect: Expect) -> Row {
    Row {
        name: name.into(),
        req,
        expect,
    }
}

/// Checks an outcome against the expectation; `Err` says what was wrong.
fn judge(outcome: &Outcome, expect: Expect) -> Result<(), String> {
    match (outcome, expect) {
        (Outcome::Closed(_), Expect::ApiOrClosed(..)) => Ok(()),
        (Outcome::Answer(a), Expect::Api(..) | Expect::ApiOrClosed(..)) => {
            let (status, codes): (u16, &[&str]) = match &expect {
                Expect::Api(status, code) => (*status, std::slice::from_ref(code)),
                Expect::ApiOrClosed(status, codes) => (*status, codes),
                Expect::Http(_) => unreachable!(),
            };
            if a.status != status || !codes.contains(&a.code().as_str()) {
                return Err(format!(
                    "got {} {}, expected {status} {}",
                    a.status,
                    a.code(),
                    codes.join(" or ")
                ));
            }
            if a.status >= 400 && a.json().is_none() {
                return Err(format!("{} without a JSON error body", a.status));
            }
            Ok(())
        }
        (Outcome::Answer(a), Expect::Http(statuses)) => {
            if statuses.contains(&a.status) {
                Ok(())
            } else {
                Err(format!(
                    "got {} {}, expected one of {statuses:?}",
                    a.status,
                    a.code()
                ))
            }
        }
        (Outcome::Hang, _) => Err("no answer within the time limit (a hang)".into()),
        (Outcome::Closed(why), _) => Err(format!("the connection closed without an answer: {why}")),
    }
}

/// An outcome and how long it took.
async fn timed(fut: impl std::future::Future<Output = Outcome>) -> (Outcome, Duration) {
    let t0 = Instant::now();
    let outcome = fut.await;
    (outcome, t0.elapsed())
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Answer(a) => format!("{} {}", a.status, a.code()),
        Outcome::Closed(why) => format!("closed ({why})"),
        Outcome::Hang => "hang".into(),
    }
}

// ---------------------------------------------------------------------------
// Fixtures.
// ---------------------------------------------------------------------------

fn envelopes_json<T: AsRef<[u8]>>(list: &[T]) -> Vec<u8> {
    let list: Vec<String> = list.iter().map(|e| api::b64(e.as_ref())).collect();
    let holds: Vec<String> = list
        .iter()
        .map(|_| api::b64(&attune_crypto::random_hold().encode()))
        .collect();
    serde_json::to_vec(&json!({ "envelopes": list, "holds": holds })).unwrap()
}

fn pake(from: Role) -> Vec<u8> {
    PairingMessage {
        from,
        payload: PairingPayload::Pake(vec![1; 33]),
    }
    .encode()
}

fn mailbox_post_json(message: &[u8]) -> Vec<u8> {
    serde_json::to_vec(&json!({ "message": api::b64(message) })).unwrap()
}

/// The relay answers `/healthz` promptly.
async fn healthy(http: &reqwest::Client, relay: &Relay) -> Result<(), String> {
    let resp = http
        .get(format!("{}/healthz", relay.url))
        .timeout(Duration::from_secs(3))
        .send()
        .await
        .map_err(|e| format!("/healthz: {e}"))?;
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.map_err(|e| format!("/healthz: {e}"))?;
    if status == 200 && body["status"] == "ok" {
        Ok(())
    } else {
        Err(format!("/healthz answered {status} {body}"))
    }
}

// ---------------------------------------------------------------------------
// The honest client: appends, pulls and streams throughout.
// ---------------------------------------------------------------------------

#[derive(Debug, Default)]
struct HonestReport {
    /// Acknowledged envelopes: bytes -> cursor.
    acked: Vec<(u64, Vec<u8>)>,
    /// Every envelope of this device the incremental pulls returned.
    pulled: Vec<(u64, Vec<u8>)>,
    requests: usize,
}

async fn honest_writer(
    client: RelayClient,
    space: Arc<TestSpace>,
    identity: DeviceIdentity,
    stop: Arc<AtomicBool>,
) -> Result<HonestReport, String> {
    let mut chain = Chain::new(&identity);
    let mut report = HonestReport::default();
    let mut mine: HashMap<Vec<u8>, u64> = HashMap::new();
    let mut after = 0u64;
    let mut i = 0u64;
    let pull = |report: &mut HonestReport,
                page: attune_proto::api::Page,
                after: &mut u64|
     -> Result<(), String> {
        for e in page.envelopes {
            if e.cursor <= *after {
                return Err(format!(
                    "pull after {after} returned cursor {}",
                    e.cursor,
                    after = *after
                ));
            }
            *after = e.cursor;
            if let Ok(env) = Envelope::decode(e.bytes()) {
                if env.header.author == identity.id() {
                    report.pulled.push((e.cursor, e.bytes().to_vec()));
                }
            }
        }
        Ok(())
    };
    while !stop.load(Ordering::SeqCst) {
        i += 1;
        let env = chain.next(&space, format!("honest entry {i}").as_bytes());
        let bytes = env.encode();
        let r = client
            .append(space.space, vec![bytes.clone()])
            .await
            .map_err(|e| format!("honest append {i}: {e}"))?;
        report.requests += 1;
        let [placed] = r.results[..] else {
            return Err(format!("honest append {i}: {} results", r.results.len()));
        };
        if placed.duplicate {
            return Err(format!("honest append {i} was called a duplicate"));
        }
        mine.insert(bytes.clone(), placed.cursor);
        report.acked.push((placed.cursor, bytes));
        let page = client
            .pull(space.space, after, 1000)
            .await
            .map_err(|e| format!("honest pull after {after}: {e}"))?;
        report.requests += 1;
        pull(&mut report, page, &mut after)?;
        tokio::time::sleep(Duration::from_millis(15)).await;
    }
    // Catch up to the end.
    loop {
        let page = client
            .pull(space.space, after, 1000)
            .await
            .map_err(|e| format!("honest final pull after {after}: {e}"))?;
        report.requests += 1;
        let more = page.more;
        pull(&mut report, page, &mut after)?;
        if !more {
            break;
        }
    }
    for (cursor, bytes) in &report.pulled {
        if mine.get(bytes) != Some(cursor) {
            return Err(format!(
                "pulled an envelope of this device at cursor {cursor} that was not acknowledged there"
            ));
        }
    }
    Ok(report)
}

/// Reads the honest device's WebSocket stream until it has reached `target`.
async fn honest_stream(
    client: RelayClient,
    space: Arc<TestSpace>,
    target: Arc<AtomicU64>,
) -> Result<Vec<(u64, Vec<u8>)>, String> {
    let mut stream = client
        .stream(space.space, 0)
        .await
        .map_err(|e| format!("honest stream: {e}"))?;
    let mut got = Vec::new();
    let mut last = 0u64;
    let mut deadline: Option<Instant> = None;
    loop {
        let t = target.load(Ordering::SeqCst);
        if t > 0 {
            if last >= t {
                break;
            }
            let d = *deadline.get_or_insert_with(|| Instant::now() + Duration::from_secs(10));
            if Instant::now() > d {
                return Err(format!("the stream stopped at cursor {last}, expected {t}"));
            }
        }
        match tokio::time::timeout(Duration::from_millis(200), stream.next()).await {
            Err(_) => continue,
            Ok(None) => return Err(format!("the relay closed the honest stream at {last}")),
            Ok(Some(Err(e))) => return Err(format!("honest stream: {e}")),
            Ok(Some(Ok(item))) => {
                if item.cursor != last + 1 {
                    return Err(format!(
                        "the stream jumped from cursor {last} to {}",
                        item.cursor
                    ));
                }
                last = item.cursor;
                got.push((item.cursor, item.bytes().to_vec()));
            }
        }
    }
    stream.close().await;
    Ok(got)
}

// ---------------------------------------------------------------------------
// WebSocket over raw TCP.
// ---------------------------------------------------------------------------

/// A masked client frame.
fn ws_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut f = vec![0x80 | opcode];
    let len = payload.len();
    if len < 126 {
        f.push(0x80 | len as u8);
    } else if len <= 0xFFFF {
        f.push(0x80 | 126);
        f.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        f.push(0x80 | 127);
        f.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let mask = [0x37, 0xfa, 0x21, 0x3d];
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    f
}

/// What the relay sent on a WebSocket until it ended or `limit` passed.
#[derive(Debug, Default)]
struct WsTranscript {
    text_frames: usize,
    close_frame: bool,
    ended: bool,
}

/// Opens a signed stream over raw TCP; the 101 head is consumed.
async fn ws_open(
    addr: SocketAddr,
    who: &DeviceIdentity,
    space: &TestSpace,
) -> Result<(TcpStream, Vec<u8>), String> {
    let req = Req::get(format!("/v1/spaces/{}/stream?after=0", space.space))
        .websocket()
        .by(who);
    let mut s = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    s.write_all(&req.head(addr))
        .await
        .map_err(|e| format!("handshake write: {e}"))?;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .map_err(|_| "no handshake answer".to_string())?
            .map_err(|e| format!("handshake read: {e}"))?;
        if n == 0 {
            return Err("closed during the handshake".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    if !head.starts_with("HTTP/1.1 101") {
        return Err(format!("no upgrade: {head}"));
    }
    Ok((s, buf[end + 4..].to_vec()))
}

/// Reads server frames until the connection ends or `limit` passes.
async fn ws_drain(
    mut rd: tokio::net::tcp::OwnedReadHalf,
    mut buf: Vec<u8>,
    limit: Duration,
    texts: Arc<AtomicUsize>,
) -> WsTranscript {
    let mut t = WsTranscript::default();
    let deadline = tokio::time::Instant::now() + limit;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        // Parse whole frames (server frames are not masked).
        loop {
            if buf.len() < 2 {
                break;
            }
            let opcode = buf[0] & 0x0f;
            let (len, at) = match buf[1] & 0x7f {
                126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
                127 if buf.len() >= 10 => (
                    u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
                    10,
                ),
                126 | 127 => break,
                n => (n as usize, 2),
            };
            if buf.len() < at + len {
                break;
            }
            match opcode {
                0x1 => {
                    t.text_frames += 1;
                    texts.store(t.text_frames, Ordering::SeqCst);
                }
                0x8 => t.close_frame = true,
                _ => {}
            }
            buf.drain(..at + len);
        }
        match tokio::time::timeout_at(deadline, rd.read(&mut chunk)).await {
            Err(_) => return t,
            Ok(Ok(0)) | Ok(Err(_)) => {
                t.ended = true;
                return t;
            }
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

// ---------------------------------------------------------------------------
// The test.
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_requests_do_not_disturb_an_honest_client() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(
        dir.path(),
        &[
            "--max-body",
            &MAX_BODY.to_string(),
            "--max-envelope",
            &MAX_ENVELOPE.to_string(),
            "--max-batch",
            &MAX_BATCH.to_string(),
            "--max-mailboxes",
            &MAX_MAILBOXES.to_string(),
            // The flood below is about the relay-wide cap, from one space.
            "--max-mailboxes-per-space",
            &MAX_MAILBOXES.to_string(),
            "--max-mailboxes-per-address",
            &MAX_MAILBOXES.to_string(),
            "--request-timeout-secs",
            &REQUEST_TIMEOUT_SECS.to_string(),
            "--rate",
            "100000",
            "--burst",
            "100000",
        ],
    );
    let addr = relay.addr;
    let http = reqwest::Client::new();

    // The space: A (the honest device) created it, B (the partner) writes the
    // hostile requests that need a member.
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
    let space = Arc::new(space);
    let cb = relay.client(&b);
    let opened = cb.open_mailbox(space.space).await.unwrap();
    let (mailbox, mb_token) = (opened.mailbox, opened.token);

    // The honest client runs for the whole table.
    let stop = Arc::new(AtomicBool::new(false));
    let target = Arc::new(AtomicU64::new(0));
    let stream_task = tokio::spawn(honest_stream(
        relay.client(&a),
        space.clone(),
        target.clone(),
    ));
    let writer_task = tokio::spawn(honest_writer(
        relay.client(&a),
        space.clone(),
        a.clone(),
        stop.clone(),
    ));

    // Fixtures for the rows.
    let s = space.space;
    let env_path = format!("/v1/spaces/{s}/envelopes");
    let roster_path = format!("/v1/spaces/{s}/roster");
    let stream_path = format!("/v1/spaces/{s}/stream");
    let open_path = format!("/v1/spaces/{s}/mailboxes");
    let mb_msgs = format!("/v1/mailboxes/{mailbox}/messages");
    let mb_join = format!("/v1/mailboxes/{mailbox}/join");
    let tk = api::HEADER_MAILBOX_TOKEN;
    let outsider = DeviceIdentity::generate();
    let creator = DeviceIdentity::generate();
    let creator_space = TestSpace::new(&creator);
    let mut b_chain = Chain::new(&b);
    let b1 = b_chain.next(&space, b"b1: sent as text/plain").encode();
    let b2 = b_chain
        .next(&space, b"b2: sent without a content type")
        .encode();
    // Envelopes that must be refused before they reach the store.
    let mut probe_chain = Chain::new(&b);
    probe_chain.seq = 2;
    probe_chain.prev = Envelope::decode(&b2).unwrap().hash();
    let probe = probe_chain.next(&space, b"probe");
    let probe_bytes = probe.encode();
    let mut broken = probe.clone();
    broken.signature[0] ^= 1;
    let oversized = probe_chain
        .next(&space, &vec![7u8; MAX_ENVELOPE + 500])
        .encode();
    let by_a = Chain::new(&a).next(&space, b"A's, uploaded by B").encode();
    let elsewhere = Chain::new(&b)
        .next(&TestSpace::new(&b), b"another space")
        .encode();
    let mut huge_len = probe_bytes.clone();
    let len_at = probe_bytes.len() - 64 - probe.body.len() - 4;
    assert_eq!(
        u32::from_be_bytes(huge_len[len_at..len_at + 4].try_into().unwrap()) as usize,
        probe.body.len(),
        "the body length field is where this test expects it"
    );
    huge_len[len_at..len_at + 4].copy_from_slice(&[0xff; 4]);
    let mut trailing = probe_bytes.clone();
    trailing.push(0);
    let probe_b64 = api::b64(&probe_bytes);
    let padded = {
        let mut p = probe_b64.clone();
        while !p.len().is_multiple_of(4) {
            p.push('=');
        }
        if p == probe_b64 {
            p.push_str("====");
        }
        p
    };
    let deep_array = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_open_only = "[".repeat(10_000);
    let deep_in_field = format!(
        "{{\"envelopes\":{}{}}}",
        "[".repeat(5_000),
        "]".repeat(5_000)
    );
    let over_limit = vec![b' '; MAX_BODY + 10];
    let mut over_limit_json = br#"{"envelopes":[""#.to_vec();
    over_limit_json.extend(std::iter::repeat_n(b'A', 1024 * 1024));
    over_limit_json.extend_from_slice(br#""]}"#);
    let replayed = sign_headers(&b, "GET", &roster_path, "", b"", now_ms(), random16());
    let create_body =
        serde_json::to_vec(&json!({ "create_event": api::b64(&creator_space.create_event()) }))
            .unwrap();

    use Expect::{Api, ApiOrClosed, Http};
    let rows: Vec<Row> = vec![
        // --- bodies: truncated, empty, oversized ---------------------------------
        row("truncated JSON", Req::post(&*env_path, &br#"{"envelopes":["AAAA"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("empty body", Req::post(&*env_path, vec![]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("whitespace-only body", Req::post(&*env_path, &b"   \r\n\t "[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("body 10 bytes over the limit", Req::post(&*env_path, over_limit.clone()).by(&b), Api(413, codes::BODY_TOO_LARGE)),
        row("1 MB JSON body", Req::post(&*env_path, over_limit_json.clone()).by(&b), Api(413, codes::BODY_TOO_LARGE)),
        row("chunked body over the limit", Req::post(&*env_path, over_limit.clone()).by(&b).framing(Framing::ChunkedWire(chunked(&over_limit, 4096))), Api(413, codes::BODY_TOO_LARGE)),
        row("unsigned 1 MB mailbox join", Req::post(&*mb_join, over_limit_json.clone()), Api(413, codes::BODY_TOO_LARGE)),
        row("body shorter than Content-Length, then FIN", Req::post(&*env_path, envelopes_json(&[&probe_bytes])).by(&b).framing(Framing::Declared(4096)).delivery(Delivery::ThenHalfClose), ApiOrClosed(400, &[codes::BAD_REQUEST, codes::MALFORMED_JSON])),
        row("chunked body with an invalid chunk size", Req::post(&*env_path, envelopes_json(&[&probe_bytes])).by(&b).framing(Framing::ChunkedWire(b"zz\r\nabc\r\n0\r\n\r\n".to_vec())), ApiOrClosed(400, &[codes::BAD_REQUEST, codes::MALFORMED_JSON])),
        row("chunked body in 3-byte chunks is read whole", Req::post(&*env_path, envelopes_json::<Vec<u8>>(&[])).by(&b).framing(Framing::ChunkedWire(chunked(&envelopes_json::<Vec<u8>>(&[]), 3))), Api(413, codes::BATCH_TOO_LARGE)),
        // --- content types ----------------------------------------------------------
        row("text/plain create (the relay parses JSON whatever the type)", Req::post("/v1/spaces", create_body.clone()).header("content-type", "text/plain").by(&creator), Api(201, "")),
        row("application/xml append is accepted", Req::post(&*env_path, envelopes_json(&[&b1])).header("content-type", "application/xml").by(&b), Api(200, "")),
        row("append without a content type is accepted", Req::post(&*env_path, envelopes_json(&[&b2])).no_content_type().by(&b), Api(200, "")),
        row("form-encoded mailbox post", Req::post(&*mb_msgs, &b"message=AQE"[..]).header("content-type", "application/x-www-form-urlencoded").header(tk, &*mb_token), Api(400, codes::MALFORMED_JSON)),
        row("multipart append", Req::post(&*env_path, &b"--x\r\nContent-Disposition: form-data; name=\"envelopes\"\r\n\r\nAAAA\r\n--x--\r\n"[..]).header("content-type", "multipart/form-data; boundary=x").by(&b), Api(400, codes::MALFORMED_JSON)),
        // --- JSON that is not the expected JSON -------------------------------------
        row("invalid UTF-8 in a JSON string", Req::post(&*env_path, &b"{\"envelopes\":[\"\xff\xfe\"]}"[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("UTF-8 byte-order mark before the JSON", Req::post(&*env_path, [&b"\xef\xbb\xbf"[..], &envelopes_json(&[&probe_bytes])].concat()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("NUL bytes", Req::post(&*env_path, vec![0u8; 64]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("trailing garbage after the JSON", Req::post(&*env_path, &br#"{"envelopes":[]} x"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("invalid base64url", Req::post(&*env_path, &br#"{"envelopes":["!!!*"]}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("base64 with padding", Req::post(&*env_path, serde_json::to_vec(&json!({"envelopes": [padded]})).unwrap()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("standard (not url) base64 alphabet", Req::post(&*env_path, &br#"{"envelopes":["ab+/ab+/"]}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("10,000 nested arrays", Req::post(&*env_path, deep_array.clone()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("10,000 unclosed brackets", Req::post(&*env_path, deep_open_only.clone()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("5,000 nested arrays inside a field", Req::post(&*env_path, deep_in_field.clone()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("deep nesting in an unsigned mailbox join", Req::post(&*mb_join, deep_array.clone()), Api(400, codes::MALFORMED_JSON)),
        row("unknown JSON field", Req::post(&*env_path, serde_json::to_vec(&json!({"envelopes": [probe_b64], "priority": 1})).unwrap()).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("duplicate JSON keys", Req::post(&*env_path, format!(r#"{{"envelopes":["{probe_b64}"],"envelopes":[]}}"#)).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("null field", Req::post(&*env_path, &br#"{"envelopes":null}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("null element", Req::post(&*env_path, &br#"{"envelopes":[null]}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("wrong type: string for list", Req::post(&*env_path, &br#"{"envelopes":"AAAA"}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("wrong type: number element", Req::post(&*env_path, &br#"{"envelopes":[5]}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("huge number literal", Req::post(&*env_path, &br#"{"envelopes":1e999999}"#[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("JSON array instead of an object", Req::post(&*env_path, &b"[]"[..]).by(&b), Api(400, codes::MALFORMED_JSON)),
        row("missing field in create", Req::post("/v1/spaces", &b"{}"[..]).by(&outsider), Api(400, codes::MALFORMED_JSON)),
        // --- envelopes ----------------------------------------------------------------
        row("envelope truncated", Req::post(&*env_path, envelopes_json(&[probe_bytes[..probe_bytes.len() - 10].to_vec()])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("envelope with a trailing byte", Req::post(&*env_path, envelopes_json(&[&trailing])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("envelope body length 0xFFFFFFFF", Req::post(&*env_path, envelopes_json(&[&huge_len])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("garbage envelope", Req::post(&*env_path, envelopes_json(&[b"garbage".to_vec()])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("empty envelope", Req::post(&*env_path, envelopes_json(&[vec![]])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("envelope over --max-envelope", Req::post(&*env_path, envelopes_json(&[&oversized])).by(&b), Api(413, codes::ENVELOPE_TOO_LARGE)),
        row("batch of 0", Req::post(&*env_path, envelopes_json::<Vec<u8>>(&[])).by(&b), Api(413, codes::BATCH_TOO_LARGE)),
        row("batch over --max-batch", Req::post(&*env_path, envelopes_json(&vec![probe_bytes.clone(); MAX_BATCH + 1])).by(&b), Api(413, codes::BATCH_TOO_LARGE)),
        row("envelope for another space", Req::post(&*env_path, envelopes_json(&[&elsewhere])).by(&b), Api(400, codes::MALFORMED_ENVELOPE)),
        row("partner's envelope uploaded by B", Req::post(&*env_path, envelopes_json(&[&by_a])).by(&b), Api(403, codes::FORBIDDEN)),
        row("envelope with a broken signature", Req::post(&*env_path, envelopes_json(&[broken.encode()])).by(&b), Api(400, codes::BAD_SIGNATURE)),
        // --- query parameters ---------------------------------------------------------
        row("after=-1", Req::get(format!("{env_path}?after=-1")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("after=1e30", Req::get(format!("{env_path}?after=1e30")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("after=1.5", Req::get(format!("{env_path}?after=1.5")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("after=18446744073709551616 (u64 overflow)", Req::get(format!("{env_path}?after=18446744073709551616")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("after=18446744073709551615 (u64::MAX)", Req::get(format!("{env_path}?after=18446744073709551615")).by(&b), Api(200, "")),
        row("limit=99999999999999999999", Req::get(format!("{env_path}?limit=99999999999999999999")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("limit=0 (clamped)", Req::get(format!("{env_path}?limit=0")).by(&b), Api(200, "")),
        row("after given twice", Req::get(format!("{env_path}?after=1&after=2")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("stream after=-1", Req::get(format!("{stream_path}?after=-1")).websocket().by(&b), Api(400, codes::BAD_REQUEST)),
        // --- authentication headers ---------------------------------------------------
        row("no authentication headers", Req::get(&*roster_path), Api(401, codes::UNAUTHENTICATED)),
        row("signature not base64", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_SIGNATURE, b"***".to_vec())), Api(401, codes::UNAUTHENTICATED)),
        row("signature 10 KB long", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_SIGNATURE, api::b64(&[1u8; 7_500]).into_bytes())), Api(401, codes::UNAUTHENTICATED)),
        row("signature 63 bytes", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_SIGNATURE, api::b64(&[1u8; 63]).into_bytes())), Api(401, codes::UNAUTHENTICATED)),
        row("signature non-ASCII", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_SIGNATURE, "sïgnätürë".as_bytes().to_vec())), Api(401, codes::UNAUTHENTICATED)),
        row("signature of the right size that does not verify", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_SIGNATURE, api::b64(&[1u8; 64]).into_bytes())), Api(401, codes::BAD_SIGNATURE)),
        row("device header 31 bytes", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_DEVICE, hex::encode([7u8; 31]).into_bytes())), Api(401, codes::UNAUTHENTICATED)),
        row("device header not hex", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_DEVICE, vec![b'z'; 64])), Api(401, codes::UNAUTHENTICATED)),
        row("device not in the space", Req::get(&*roster_path).by(&outsider), Api(403, codes::FORBIDDEN)),
        row("timestamp not a number", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_TIMESTAMP, b"yesterday".to_vec())), Api(401, codes::UNAUTHENTICATED)),
        row("timestamp 99999999999999999999 (i64 overflow)", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_TIMESTAMP, b"99999999999999999999".to_vec())), Api(401, codes::UNAUTHENTICATED)),
        row("timestamp as a float", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_TIMESTAMP, b"1.7e12".to_vec())), Api(401, codes::UNAUTHENTICATED)),
        row("timestamp i64::MAX", Req::get(&*roster_path).signed(Sign::At(b.clone(), i64::MAX)), Api(401, codes::STALE_TIMESTAMP)),
        row("timestamp -1", Req::get(&*roster_path).signed(Sign::At(b.clone(), -1)), Api(401, codes::STALE_TIMESTAMP)),
        row("timestamp i64::MIN", Req::get(&*roster_path).signed(Sign::At(b.clone(), i64::MIN)), Api(401, codes::STALE_TIMESTAMP)),
        row("nonce 15 bytes", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_NONCE, hex::encode([1u8; 15]).into_bytes())), Api(401, codes::UNAUTHENTICATED)),
        row("nonce not hex", Req::get(&*roster_path).signed(Sign::Edit(b.clone(), api::HEADER_NONCE, vec![b'g'; 32])), Api(401, codes::UNAUTHENTICATED)),
        row("a signed request, first use", Req::get(&*roster_path).signed(Sign::Fixed(replayed.clone())), Api(200, "")),
        row("the same signed request replayed", Req::get(&*roster_path).signed(Sign::Fixed(replayed.clone())), Api(401, codes::REPLAYED_REQUEST)),
        // --- paths and methods --------------------------------------------------------
        row("path traversal /v1/spaces/../../etc/passwd", Req::get("/v1/spaces/../../etc/passwd"), Api(404, codes::UNKNOWN_ROUTE)),
        row("encoded traversal as the space id", Req::get("/v1/spaces/..%2F..%2Fetc%2Fpasswd/roster").by(&b), Api(400, codes::BAD_REQUEST)),
        row("space id that is not hex", Req::get("/v1/spaces/not-a-space/roster").by(&b), Api(400, codes::BAD_REQUEST)),
        row("space that does not exist", Req::get("/v1/spaces/00000000000000000000000000000000/roster").by(&b), Api(404, codes::NOT_FOUND)),
        row("percent-encoded invalid UTF-8 space id", Req::get("/v1/spaces/%FF%FE/roster").by(&b), Api(400, codes::BAD_REQUEST)),
        row("percent-encoded invalid UTF-8 mailbox number", Req::get("/v1/mailboxes/%C3%28/messages").header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("10 KB path", Req::get(format!("/v1/{}", "a".repeat(10 * 1024))), Api(404, codes::UNKNOWN_ROUTE)),
        row("10 KB space id", Req::get(format!("/v1/spaces/{}/roster", "0".repeat(10 * 1024))).by(&b), Api(400, codes::BAD_REQUEST)),
        row("70 KB path (over the URI limit)", Req::get(format!("/v1/{}", "a".repeat(70 * 1024))), Http(&[400, 414, 431])),
        row("1 MB header", Req::get("/healthz").header("x-filler", vec![b'a'; 1024 * 1024]), Http(&[400, 431])),
        row("300 headers", (0..300).fold(Req::get("/healthz"), |r, i| r.header(&format!("x-h{i}"), "1")), Http(&[400, 431])),
        row("Content-Length not a number", Req::post(&*mb_msgs, vec![]).framing(Framing::Omit).header("content-length", "ten"), Http(&[400])),
        row("unknown method BREW", Req::new("BREW", "/v1/spaces"), Api(405, codes::METHOD_NOT_ALLOWED)),
        row("PUT on the envelopes route", Req::new("PUT", &*env_path).by(&b), Api(405, codes::METHOD_NOT_ALLOWED)),
        row("HEAD /healthz", Req::new("HEAD", "/healthz"), Api(200, "")),
        row("OPTIONS /v1/spaces", Req::new("OPTIONS", "/v1/spaces"), Api(405, codes::METHOD_NOT_ALLOWED)),
        row("signed GET on the stream without an upgrade", Req::get(format!("{stream_path}?after=0")).by(&b), Api(400, codes::BAD_REQUEST)),
        row("unauthenticated WebSocket upgrade", Req::get(format!("{stream_path}?after=0")).websocket(), Api(401, codes::UNAUTHENTICATED)),
        row("WebSocket upgrade by a non-member", Req::get(format!("{stream_path}?after=0")).websocket().by(&outsider), Api(403, codes::FORBIDDEN)),
        // --- mailboxes ----------------------------------------------------------------
        row("mailbox number over u32", Req::get("/v1/mailboxes/4294967296/messages").header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("mailbox number negative", Req::post("/v1/mailboxes/-1/close", vec![]).header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("mailbox number 0", Req::get("/v1/mailboxes/0/messages").header(tk, &*mb_token), Api(410, codes::MAILBOX_UNAVAILABLE)),
        row("mailbox read without a token", Req::get(&*mb_msgs), Api(401, codes::UNAUTHENTICATED)),
        row("mailbox read with a malformed token", Req::get(&*mb_msgs).header(tk, "zz"), Api(401, codes::UNAUTHENTICATED)),
        row("mailbox read with a wrong token", Req::get(&*mb_msgs).header(tk, hex::encode(random16())), Api(410, codes::MAILBOX_UNAVAILABLE)),
        row("mailbox close without a token", Req::post(format!("/v1/mailboxes/{mailbox}/close"), vec![]), Api(401, codes::UNAUTHENTICATED)),
        row("mailbox wait overflowing u64", Req::get(format!("{mb_msgs}?wait=99999999999999999999")).header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("mailbox after=usize::MAX", Req::get(format!("{mb_msgs}?after=18446744073709551615")).header(tk, &*mb_token), Api(200, "")),
        row("mailbox post: not a pairing message", Req::post(&*mb_msgs, mailbox_post_json(b"hello")).header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("mailbox post: empty message", Req::post(&*mb_msgs, mailbox_post_json(b"")).header(tk, &*mb_token), Api(400, codes::BAD_REQUEST)),
        row("mailbox join: a real key exchange", Req::post(&*mb_join, mailbox_post_json(&pake(Role::Joiner))), Api(201, "")),
        row("mailbox join: a second key exchange", Req::post(&*mb_join, mailbox_post_json(&pake(Role::Joiner))), Api(409, codes::MAILBOX_FULL)),
        row("mailbox join on an unknown number", Req::post("/v1/mailboxes/4294967295/join", mailbox_post_json(&pake(Role::Joiner))), Api(410, codes::MAILBOX_UNAVAILABLE)),
        // --- roster and spaces ------------------------------------------------------------
        row("roster append of 0 events", Req::post(&*roster_path, &br#"{"events":[]}"#[..]).by(&b), Api(400, codes::BAD_REQUEST)),
        row("roster append of 65 events", Req::post(&*roster_path, serde_json::to_vec(&json!({"events": vec!["AAAA"; 65]})).unwrap()).by(&b), Api(400, codes::BAD_REQUEST)),
        row("garbage roster event", Req::post(&*roster_path, &br#"{"events":["AAAA"]}"#[..]).by(&b), Api(400, codes::ROSTER_REJECTED)),
        row("garbage create event", Req::post("/v1/spaces", &br#"{"create_event":"AAAA"}"#[..]).by(&outsider), Api(400, codes::ROSTER_REJECTED)),
        row("mailbox open by a non-member", Req::post(&*open_path, vec![]).by(&outsider), Api(403, codes::FORBIDDEN)),
    ];

    let mut failures: Vec<String> = Vec::new();
    let mut count = 0usize;
    for (i, r) in rows.iter().enumerate() {
        let outcome = r.req.send(addr, Duration::from_secs(10)).await;
        count += 1;
        let verdict = judge(&outcome, r.expect);
        println!(
            "[{:>3}] {:<60} -> {:<40} {}",
            i + 1,
            r.name,
            describe(&outcome),
            if verdict.is_ok() { "ok" } else { "FAIL" }
        );
        if let Err(why) = verdict {
            failures.push(format!("{}: {why}", r.name));
        }
        if let Err(why) = healthy(&http, &relay).await {
            failures.push(format!("after {}: {why}", r.name));
        }
    }

    // --- the special rows ----------------------------------------------------------

    // Slow drips, side by side: a body promised by Content-Length then sent one
    // byte every 300 ms, and a request head that never ends (one header byte every
    // 300 ms). Both must be cut off once the request time limit has passed: 503
    // timeout, or the connection closed.
    {
        let limit = Duration::from_secs(REQUEST_TIMEOUT_SECS + 5);
        let drip_body = Req::post(&*env_path, envelopes_json(&[&probe_bytes]))
            .by(&b)
            .delivery(Delivery::Drip(Duration::from_millis(300)));
        let drip_head = exchange(
            addr,
            format!("GET /healthz HTTP/1.1\r\nhost: {addr}\r\nx-drip: ").into_bytes(),
            vec![b'a'; 200],
            Delivery::Drip(Duration::from_millis(300)),
            false,
            limit,
        );
        let ((body_outcome, body_took), (head_outcome, head_took)) =
            tokio::join!(timed(drip_body.send(addr, limit)), timed(drip_head));
        for (name, outcome, took) in [
            (
                "slow-drip body past the request timeout",
                body_outcome,
                body_took,
            ),
            (
                "slow-drip request head past the request timeout",
                head_outcome,
                head_took,
            ),
        ] {
            count += 1;
            let verdict = match &outcome {
                Outcome::Hang => Err(format!(
                    "the relay still held the connection open after {took:.1?}"
                )),
                _ => judge(&outcome, ApiOrClosed(503, &[codes::TIMEOUT])),
            };
            println!(
                "[{count:>3}] {name:<60} -> {:<40} {} ({took:.1?})",
                describe(&outcome),
                if verdict.is_ok() { "ok" } else { "FAIL" }
            );
            if let Err(why) = verdict {
                failures.push(format!("{name}: {why}"));
            }
        }
        if let Err(e) = healthy(&http, &relay).await {
            failures.push(format!("after the slow drips: {e}"));
        }
    }

    // WebSocket floods on a valid stream. Client messages are ignored: after a
    // flood of ordinary messages the stream still delivers new envelopes (or the
    // relay has closed it); a protocol violation or an oversized message closes
    // it. Either way, within seconds, and the relay stays healthy.
    let close_frame = ws_frame(0x8, &1000u16.to_be_bytes());
    let floods: Vec<(&str, Vec<u8>, bool)> = vec![
        (
            "WebSocket flood: 5,000 text, 1,000 binary, 1,000 pings",
            {
                let mut f = Vec::new();
                for i in 0..5_000 {
                    let text = format!("{{\"hello\":{i},\"pad\":\"{}\"}}", "x".repeat(40));
                    f.extend(ws_frame(0x1, text.as_bytes()));
                    if i % 5 == 0 {
                        f.extend(ws_frame(0x2, &[0xAB; 100]));
                        f.extend(ws_frame(0x9, b"ping"));
                    }
                }
                f
            },
            false,
        ),
        (
            "WebSocket: one 1 MB message (over the 64 KB limit)",
            ws_frame(0x2, &vec![0u8; 1024 * 1024]),
            true,
        ),
        (
            "WebSocket: unmasked frame and garbage",
            {
                let mut f = vec![0x81, 0x05];
                f.extend_from_slice(b"hello");
                f.extend(vec![0xFF; 4096]);
                f
            },
            true,
        ),
        (
            "WebSocket: frame claiming 2^63 bytes",
            {
                let mut f = vec![0x82, 0x80 | 127];
                f.extend_from_slice(&(1u64 << 63).to_be_bytes());
                f.extend_from_slice(&[1, 2, 3, 4]);
                f.extend(vec![0u8; 1024]);
                f
            },
            true,
        ),
    ];
    for (name, bytes, must_close) in floods {
        count += 1;
        let t0 = Instant::now();
        let result: Result<String, String> = match ws_open(addr, &b, &space).await {
            Err(e) => Err(format!("handshake: {e}")),
            Ok((s, leftover)) => {
                let (rd, mut wr) = s.into_split();
                let texts = Arc::new(AtomicUsize::new(0));
                let drain = tokio::spawn(ws_drain(
                    rd,
                    leftover,
                    Duration::from_secs(10),
                    texts.clone(),
                ));
                let _ = wr.write_all(&bytes).await;
                if must_close {
                    // The relay must end the stream by itself.
                    let t = drain.await.unwrap();
                    let what = format!(
                        "sent {} B; {} envelopes streamed, then {}",
                        bytes.len(),
                        t.text_frames,
                        if t.ended {
                            "closed by the relay"
                        } else {
                            "still open"
                        }
                    );
                    if t.ended {
                        Ok(what)
                    } else {
                        Err(format!("{what}: expected the relay to close it"))
                    }
                } else {
                    // The honest writer appends every few ms: a live stream delivers.
                    let before = texts.load(Ordering::SeqCst);
                    let wait_until = Instant::now() + Duration::from_secs(3);
                    while !drain.is_finished()
                        && texts.load(Ordering::SeqCst) == before
                        && Instant::now() < wait_until
                    {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    let live = texts.load(Ordering::SeqCst) > before;
                    let closed = drain.is_finished();
                    let _ = wr.write_all(&close_frame).await;
                    let t = drain.await.unwrap();
                    let what = format!(
                        "sent {} B; {} envelopes streamed, {}",
                        bytes.len(),
                        t.text_frames,
                        if live {
                            "still streaming after it"
                        } else if closed {
                            "closed by the relay"
                        } else {
                            "silent"
                        }
                    );
                    if !(live || closed) {
                        Err(format!("{what}: neither streaming nor closed"))
                    } else if !t.ended {
                        Err(format!("{what}: did not end after a close frame"))
                    } else {
                        Ok(what)
                    }
                }
            }
        };
        let health = healthy(&http, &relay).await;
        let ok = result.is_ok() && health.is_ok();
        println!(
            "[{count:>3}] {name:<60} -> {} {} ({:.1?})",
            result.as_ref().map_or_else(|e| e.clone(), |s| s.clone()),
            if ok { "ok" } else { "FAIL" },
            t0.elapsed()
        );
        if let Err(e) = result {
            failures.push(format!("{name}: {e}"));
        }
        if let Err(e) = health {
            failures.push(format!("after {name}: {e}"));
        }
    }

    // Thousands of pairing mailboxes: the relay opens up to its cap, then answers
    // 503 too_many_mailboxes with Retry-After, and keeps serving.
    {
        count += 1;
        let t0 = Instant::now();
        let attempts = 3_000usize;
        let workers = 24usize;
        let mut set = tokio::task::JoinSet::new();
        for w in 0..workers {
            let http = http.clone();
            let b = b.clone();
            let url = relay.url.clone();
            let path = open_path.clone();
            set.spawn(async move {
                let mut out = Vec::new();
                for _ in (w..attempts).step_by(workers) {
                    let mut req = http.post(format!("{url}{path}"));
                    for (k, v) in sign_headers(&b, "POST", &path, "", b"", now_ms(), random16()) {
                        req = req.header(k, v);
                    }
                    let answer = match req.send().await {
                        Err(e) => (0u16, format!("transport: {e}"), None),
                        Ok(resp) => {
                            let status = resp.status().as_u16();
                            let retry = resp
                                .headers()
                                .get("retry-after")
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body: Value = resp.json().await.unwrap_or(Value::Null);
                            let code = body["error"]["code"].as_str().unwrap_or("").to_string();
                            (status, code, retry)
                        }
                    };
                    out.push(answer);
                }
                out
            });
        }
        let mut tally: HashMap<(u16, String), usize> = HashMap::new();
        let mut missing_retry_after = 0;
        while let Some(r) = set.join_next().await {
            for (status, code, retry) in r.unwrap() {
                if status == 503 && retry.is_none() {
                    missing_retry_after += 1;
                }
                *tally.entry((status, code)).or_default() += 1;
            }
        }
        let opened = tally.get(&(201, String::new())).copied().unwrap_or(0);
        let refused = tally
            .get(&(503, codes::TOO_MANY_MAILBOXES.to_string()))
            .copied()
            .unwrap_or(0);
        // One mailbox was opened during setup.
        let ok =
            opened == MAX_MAILBOXES - 1 && refused == attempts - opened && missing_retry_after == 0;
        println!(
            "[{count:>3}] {:<60} -> {opened} x 201, {refused} x 503 too_many_mailboxes {} ({:.1?})",
            "3,000 mailbox opens",
            if ok { "ok" } else { "FAIL" },
            t0.elapsed()
        );
        if !ok {
            failures.push(format!(
                "3,000 mailbox opens: {tally:?}, {missing_retry_after} 503s without Retry-After"
            ));
        }
        // Pairing still works on a mailbox opened before the flood.
        count += 1;
        let inviter = RelayClient::new(&relay.url, DeviceIdentity::generate());
        let post = inviter
            .mailbox_post(mailbox, &mb_token, pake(Role::Inviter))
            .await;
        let read = inviter.mailbox_read(mailbox, &mb_token, 0, 0).await;
        let ok = post.is_ok() && read.as_ref().is_ok_and(|m| m.messages.len() == 1);
        println!(
            "[{count:>3}] {:<60} -> post {:?}, read {} {}",
            "pairing on an existing mailbox while at the cap",
            post.as_ref().map(|_| "204").map_err(|e| e.to_string()),
            read.as_ref().map_or_else(
                |e| e.to_string(),
                |m| format!("{} message(s)", m.messages.len())
            ),
            if ok { "ok" } else { "FAIL" }
        );
        if !ok {
            failures.push(format!("pairing at the cap: post {post:?}, read {read:?}"));
        }
        if let Err(e) = healthy(&http, &relay).await {
            failures.push(format!("after the mailbox flood: {e}"));
        }
    }

    // --- the honest client's verdict ------------------------------------------------
    stop.store(true, Ordering::SeqCst);
    let honest = writer_task.await.unwrap();
    let honest = match honest {
        Ok(h) => h,
        Err(e) => panic!(
            "the honest client saw an error during the table: {e}\nrow failures: {failures:#?}"
        ),
    };
    let max_cursor = {
        // Everything stored, whoever wrote it: the stream must reach the last cursor.
        let page = ca.pull(s, 0, 1000).await.unwrap();
        let mut last = page.next;
        let mut more = page.more;
        while more {
            let p = ca.pull(s, last, 1000).await.unwrap();
            last = p.next;
            more = p.more;
        }
        last
    };
    target.store(max_cursor.max(1), Ordering::SeqCst);
    let streamed = stream_task.await.unwrap();

    println!(
        "honest client: {} envelopes acknowledged, {} requests, 0 errors; {count} hostile rows in {:.1?}",
        honest.acked.len(),
        honest.requests,
        started.elapsed()
    );
    assert!(
        honest.acked.len() >= 20,
        "the honest client ran during the table"
    );
    // Every acknowledged envelope pulled back exactly once, at its cursor.
    let mut pulled: HashMap<&[u8], Vec<u64>> = HashMap::new();
    for (cursor, bytes) in &honest.pulled {
        pulled.entry(bytes).or_default().push(*cursor);
    }
    for (cursor, bytes) in &honest.acked {
        assert_eq!(
            pulled.get(bytes.as_slice()),
            Some(&vec![*cursor]),
            "acknowledged envelope at cursor {cursor} pulled back exactly once"
        );
    }
    assert_eq!(honest.pulled.len(), honest.acked.len());
    // ... and streamed exactly once, in order.
    let streamed = streamed.unwrap_or_else(|e| panic!("the honest stream failed: {e}"));
    let mut in_stream: HashMap<&[u8], Vec<u64>> = HashMap::new();
    for (cursor, bytes) in &streamed {
        in_stream.entry(bytes).or_default().push(*cursor);
    }
    for (cursor, bytes) in &honest.acked {
        assert_eq!(
            in_stream.get(bytes.as_slice()),
            Some(&vec![*cursor]),
            "acknowledged envelope at cursor {cursor} streamed exactly once"
        );
    }
    // A fresh full pull agrees, and holds B's two accepted envelopes and nothing
    // refused.
    let mut all: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut after = 0;
    loop {
        let p = ca.pull(s, after, 1000).await.unwrap();
        all.extend(
            p.envelopes
                .into_iter()
                .map(|e| (e.cursor, e.bytes().to_vec())),
        );
        after = p.next;
        if !p.more {
            break;
        }
    }
    assert_eq!(
        all.iter().map(|e| e.0).collect::<Vec<_>>(),
        (1..=all.len() as u64).collect::<Vec<_>>(),
        "cursors are dense"
    );
    let b_stored: Vec<&Vec<u8>> = all
        .iter()
        .map(|e| &e.1)
        .filter(|bytes| Envelope::decode(bytes).unwrap().header.author == b.id())
        .collect();
    assert_eq!(
        b_stored,
        vec![&b1, &b2],
        "B's accepted envelopes, and only those"
    );
    assert_eq!(all.len(), honest.acked.len() + 2);

    // --- the relay afterwards -------------------------------------------------------
    healthy(&http, &relay).await.expect("the relay is healthy");
    let log = relay.log_text();
    // Each panic with the line after it (the message).
    let lines: Vec<&str> = log.lines().collect();
    let panics: Vec<String> = lines
        .iter()
        .enumerate()
        .filter(|(_, l)| l.contains("panicked"))
        .map(|(i, l)| format!("{l} {}", lines.get(i + 1).unwrap_or(&"")))
        .collect();
    assert_eq!(relay.integrity(), "ok");
    assert!(
        failures.is_empty() && panics.is_empty(),
        "{} of {count} hostile rows failed:\n{}\nrelay panics:\n{}",
        failures.len(),
        failures.join("\n"),
        panics.join("\n")
    );
    assert!(count >= 40);
    assert!(
        started.elapsed() < Duration::from_secs(90),
        "bounded: {:?}",
        started.elapsed()
    );
}
