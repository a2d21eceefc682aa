//! atuin's sync server as the peer of `attune-bench peer`: started from its
//! binary on loopback with a SQLite database, loaded through its record API the
//! way its client uses it (a session token per user, records of one host and
//! tag with increasing `idx`, paged downloads with `/api/v0/record/next`).
//!
//! atuin's server checks nothing about a record but its size, so its records
//! here carry the shape of a real one: a PASETO `v4.local` token of the same
//! plaintext size attune seals (base64url of nonce, ciphertext and tag) and a
//! wrapped content key of a real one's length.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use base64::Engine as _;
use serde::Deserialize;
use tokio::time::Instant;

use crate::fixtures::random16;
use crate::load::RunResult;
use crate::stats::Latencies;

/// Length of a wrapped content key as atuin's client writes it (a JSON
/// `cek::Json` envelope around a PASERK `local-wrap.pie` key and its id).
const CEK_CHARS: usize = 180;

/// atuin's server, a child process with its own config dir and database.
#[derive(Debug)]
pub struct Server {
    child: Child,
    pub url: String,
    pub db: PathBuf,
    log: PathBuf,
}

impl Server {
    /// Starts `bin start` on a free loopback port with a SQLite database in `dir`.
    pub async fn start(bin: &Path, dir: &Path) -> anyhow::Result<Self> {
        if !bin.exists() {
            bail!(
                "{} does not exist: install atuin's server first with \
                 `cargo install atuin-server --version 18.24.4 --locked --root DIR`",
                bin.display()
            );
        }
        std::fs::create_dir_all(dir)?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let db = dir.join("atuin.db");
        let log = dir.join("atuin.log");
        let child = Command::new(bin)
            .args(["start", "--host", "127.0.0.1", "--port", &port.to_string()])
            .env("ATUIN_CONFIG_DIR", dir)
            .env(
                "ATUIN_DB_URI",
                format!("sqlite://{}?mode=rwc", db.display()),
            )
            .env("ATUIN_OPEN_REGISTRATION", "true")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(std::fs::File::create(&log)?))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let mut server = Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            db,
            log,
        };
        if let Err(e) = crate::target::wait_healthy(&server.url).await {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            server.kill();
            bail!("{e}; atuin's log:\n{text}");
        }
        Ok(server)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Stops the server (SIGKILL, as the relay is stopped) after checking it did
    /// not exit early.
    pub fn stop(mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "atuin's server exited early ({status}); see {}",
                self.log.display()
            );
        }
        self.kill();
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A logged-in atuin user and one of its hosts, writing the `history` series.
#[derive(Debug, Clone)]
pub struct Writer {
    http: reqwest::Client,
    url: String,
    token: String,
    pub host: String,
    pub next_idx: u64,
}

/// A UUID in its hyphenated text form, from random bytes (atuin's ids are UUIDs).
fn uuid() -> String {
    let h = hex::encode(random16());
    format!(
        "{}-{}-{}-{}-{}",
        &h[..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..]
    )
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut out = vec![0u8; n];
    for chunk in out.chunks_mut(16) {
        chunk.copy_from_slice(&random16()[..chunk.len()]);
    }
    out
}

/// Registers `users` users with `hosts` hosts each: `users * hosts` writers,
/// each with its own HTTP client (its own connection pool, as a separate
/// machine would have).
pub async fn writers(url: &str, users: usize, hosts: usize) -> anyhow::Result<Vec<Writer>> {
    let mut out = Vec::with_capacity(users * hosts);
    let setup = reqwest::Client::new();
    for _ in 0..users {
        let name = format!("bench-{}", hex::encode(&random16()[..6]));
        let r = setup
            .post(format!("{url}/register"))
            .json(&serde_json::json!({
                "email": format!("{name}@example.invalid"),
                "username": name,
                "password": hex::encode(random16()),
            }))
            .send()
            .await
            .context("registering an atuin user")?;
        ensure!(
            r.status().is_success(),
            "atuin refused a registration: {}",
            r.status()
        );
        #[derive(Deserialize)]
        struct Session {
            session: String,
        }
        let token = r.json::<Session>().await?.session;
        for _ in 0..hosts {
            out.push(Writer {
                http: reqwest::Client::new(),
                url: url.to_string(),
                token: token.clone(),
                host: uuid(),
                next_idx: 0,
            });
        }
    }
    Ok(out)
}

/// The record's payload: what atuin's client would send for `content_bytes` of
/// plaintext (the PASETO token and the wrapped key), the same for every record
/// of a run as attune's bench seals the same content.
#[derive(Debug, Clone)]
pub struct Payload {
    data: String,
    cek: String,
}

impl Payload {
    pub fn new(content_bytes: usize) -> Self {
        // v4.local: 32-byte nonce, the ciphertext, a 32-byte tag.
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let data = format!("v4.local.{}", b64.encode(random_bytes(content_bytes + 64)));
        let cek = b64
            .encode(random_bytes(CEK_CHARS))
            .chars()
            .take(CEK_CHARS)
            .collect();
        Self { data, cek }
    }

    /// Bytes of one record's payload as stored.
    pub fn len(&self) -> usize {
        self.data.len() + self.cek.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Why an upload failed.
#[derive(Debug)]
enum Upload {
    /// A 5xx answer: the records were not stored; sending them again is safe.
    ServerError,
    Other(String),
}

impl std::fmt::Display for Upload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::ServerError => {
                write!(f, "atuin answered a server error {MAX_RETRIES} times more")
            }
            Self::Other(e) => f.write_str(e),
        }
    }
}

impl Writer {
    fn body(&mut self, n: usize, payload: &Payload) -> anyhow::Result<Vec<u8>> {
        let timestamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos() as u64;
        let records: Vec<serde_json::Value> = (0..n)
            .map(|i| {
                serde_json::json!({
                    "id": uuid(),
                    "idx": self.next_idx + i as u64,
                    "host": { "id": self.host, "name": "" },
                    "timestamp": timestamp,
                    "version": "v0",
                    "tag": "history",
                    "data": { "data": payload.data, "content_encryption_key": payload.cek },
                })
            })
            .collect();
        self.next_idx += n as u64;
        Ok(serde_json::to_vec(&records)?)
    }

    async fn post(&self, body: Vec<u8>) -> Result<(), Upload> {
        let r = self
            .http
            .post(format!("{}/api/v0/record", self.url))
            .header("authorization", format!("Token {}", self.token))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .map_err(|e| Upload::Other(e.to_string()))?;
        match r.status() {
            s if s.is_success() => Ok(()),
            s if s.is_server_error() => Err(Upload::ServerError),
            s => Err(Upload::Other(format!("atuin answered {s} to an upload"))),
        }
    }
}

/// Most times one upload is sent again after a 500.
const MAX_RETRIES: usize = 10;

/// One closed-loop worker per writer: each builds its next request's records
/// (microseconds, against milliseconds for the request, so nothing is made
/// ahead) and sends them, until `max_requests` or the deadline. Returns the
/// writers, the run, and how many uploads were sent again after a 500.
pub async fn run_uploads(
    writers: Vec<Writer>,
    payload: &Payload,
    batch: usize,
    duration: Duration,
    max_requests: u64,
) -> anyhow::Result<(Vec<Writer>, RunResult, u64)> {
    let start = Instant::now();
    let deadline = start + duration;
    let mut set = tokio::task::JoinSet::new();
    for mut w in writers {
        let payload = payload.clone();
        set.spawn(async move {
            let mut out = RunResult {
                latencies: Latencies::with_capacity(4096),
                ..RunResult::default()
            };
            let mut retried = 0u64;
            while Instant::now() < deadline {
                if out.requests >= max_requests {
                    out.count_limited = 1;
                    break;
                }
                let body = match w.body(batch, &payload) {
                    Ok(b) => b,
                    Err(e) => {
                        out.errors += 1;
                        out.first_error = Some(e.to_string());
                        break;
                    }
                };
                let t = Instant::now();
                // Under concurrent uploads atuin's server sometimes answers 500
                // (SQLite busy): its client sends the same records again at the
                // next sync, so the bench does too, at once, and counts it.
                let mut outcome = w.post(body.clone()).await;
                for _ in 0..MAX_RETRIES {
                    match &outcome {
                        Err(Upload::ServerError) => {
                            retried += 1;
                            outcome = w.post(body.clone()).await;
                        }
                        _ => break,
                    }
                }
                match outcome {
                    Ok(()) => {
                        out.latencies.record(t.elapsed());
                        out.requests += 1;
                        out.envelopes += batch as u64;
                    }
                    Err(e) => {
                        out.errors += 1;
                        out.first_error = Some(e.to_string());
                        break;
                    }
                }
            }
            (w, out, retried)
        });
    }
    let mut total = RunResult::default();
    let mut retried = 0;
    let mut back = Vec::new();
    while let Some(r) = set.join_next().await {
        let (w, r, again) = r.context("an upload worker panicked")?;
        back.push(w);
        retried += again;
        total.absorb(r);
    }
    total.elapsed = start.elapsed();
    Ok((back, total, retried))
}

/// A new machine's download of everything `writer`'s user holds: the record
/// index, then every host's series in pages of `page`. Returns records and
/// payload bytes received.
pub async fn download(writer: &Writer, page: usize) -> anyhow::Result<(u64, u64)> {
    #[derive(Deserialize)]
    struct Status {
        hosts: std::collections::HashMap<String, std::collections::HashMap<String, u64>>,
    }
    #[derive(Deserialize)]
    struct Data {
        data: String,
    }
    #[derive(Deserialize)]
    struct Record {
        idx: u64,
        data: Data,
    }
    let http = reqwest::Client::new();
    let auth = format!("Token {}", writer.token);
    let get = |path: &str, query: Vec<(&str, String)>| {
        http.get(format!("{}{path}", writer.url))
            .query(&query)
            .header("authorization", &auth)
            .send()
    };
    let status: Status = get("/api/v0/record", Vec::new())
        .await?
        .error_for_status()?
        .json()
        .await
        .context("reading atuin's record index")?;
    let (mut records, mut bytes) = (0u64, 0u64);
    for (host, tags) in &status.hosts {
        for (tag, last) in tags {
            let mut start = 0u64;
            // Bounded: at most one page per record of the series, and then some.
            for _ in 0..=(last / page.max(1) as u64 + 2) {
                let query = vec![
                    ("host", host.clone()),
                    ("tag", tag.clone()),
                    ("start", start.to_string()),
                    ("count", page.to_string()),
                ];
                let got: Vec<Record> = get("/api/v0/record/next", query)
                    .await?
                    .error_for_status()?
                    .json()
                    .await
                    .context("reading a page of atuin records")?;
                records += got.len() as u64;
                bytes += got.iter().map(|r| r.data.data.len() as u64).sum::<u64>();
                match got.last() {
                    Some(r) if got.len() == page && r.idx < *last => start = r.idx + 1,
                    _ => break,
                }
            }
        }
    }
    Ok((records, bytes))
}
