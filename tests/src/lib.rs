//! The harness for attune's end-to-end tests: it starts the real `attune-relay`
//! binary on an ephemeral loopback port with a real database, and builds real
//! devices, spaces and envelopes with real keys.
//!
//! Relays use a SQLite file unless `ATTUNE_TEST_ENGINE=postgres`: then each
//! gets a new database on the PostgreSQL server `ATTUNE_TEST_POSTGRES` names
//! (`.ci/postgres` starts one), so the same suites run on both engines.
// A harness that cannot start the relay or build a fixture must fail the test.
#![allow(clippy::unwrap_used, clippy::expect_used)]

pub mod acked;
pub mod leaks;
pub mod pg;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use attune_core::relay::RelayClient;
use attune_crypto::{seal_envelope, DeviceIdentity, SymmetricKey};
use attune_proto::{
    EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, RosterChange, RosterEvent,
    SignedRosterEvent, SpaceId,
};

/// A workspace binary, built by `cargo test --workspace` next to the test executables.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test> -> target/<profile>/<name>
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo test --workspace` (or `cargo build --workspace --bins`) first",
        path.display()
    );
    path
}

/// A certificate authority and a relay certificate it signed, for 127.0.0.1 and
/// localhost, made for one test: PEM files in a directory.
#[derive(Debug, Clone)]
pub struct TestCerts {
    /// The CA's certificate: what `ATTUNE_CA_FILE` names to trust the relay.
    pub ca: PathBuf,
    /// The relay's certificate chain and key: `--tls-cert`, `--tls-key`.
    pub cert: PathBuf,
    pub key: PathBuf,
}

impl TestCerts {
    /// Makes a fresh CA named `name` and a relay certificate in `dir`.
    pub fn generate(dir: &Path, name: &str) -> TestCerts {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
        std::fs::create_dir_all(dir).expect("certificate directory");
        let ca_key = KeyPair::generate().expect("a CA key");
        let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(DnType::CommonName, format!("attune test CA {name}"));
        let ca = ca_params.self_signed(&ca_key).expect("a CA certificate");
        let key = KeyPair::generate().expect("a relay key");
        let params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .expect("relay certificate parameters");
        let cert = params
            .signed_by(&key, &ca, &ca_key)
            .expect("a relay certificate");
        let certs = TestCerts {
            ca: dir.join(format!("{name}-ca.pem")),
            cert: dir.join(format!("{name}-relay.pem")),
            key: dir.join(format!("{name}-relay.key")),
        };
        std::fs::write(&certs.ca, ca.pem()).expect("CA file written");
        std::fs::write(&certs.cert, cert.pem()).expect("certificate written");
        std::fs::write(&certs.key, key.serialize_pem()).expect("key written");
        certs
    }
}

/// A running `attune-relay` process on 127.0.0.1 with its own database file.
#[derive(Debug)]
pub struct Relay {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub url: String,
    /// The SQLite file (unused when the relay runs on PostgreSQL).
    pub db: PathBuf,
    /// The PostgreSQL database's URL, when the relay runs on one.
    pub pg: Option<String>,
    pub log: PathBuf,
    /// The test CA that signed the relay's certificate, when it serves HTTPS.
    pub ca: Option<PathBuf>,
    extra: Vec<String>,
}

impl Relay {
    /// Starts a relay whose database and log live in `dir`.
    pub fn start(dir: &Path, extra: &[&str]) -> Relay {
        Self::start_at(dir, "127.0.0.1:0", extra)
    }

    /// [`Relay::start`] listening on `listen` (a database made elsewhere may
    /// name the address its profiles point at).
    pub fn start_at(dir: &Path, listen: &str, extra: &[&str]) -> Relay {
        let pg = pg::engine_is_postgres().then(pg::fresh_database);
        Self::start_on(dir, listen, pg, extra)
    }

    /// Starts a relay on the PostgreSQL database `url` (another instance may
    /// share it), its log in `dir`.
    pub fn start_postgres(dir: &Path, url: &str, extra: &[&str]) -> Relay {
        Self::start_on(dir, "127.0.0.1:0", Some(url.to_string()), extra)
    }

    fn start_on(dir: &Path, listen: &str, pg: Option<String>, extra: &[&str]) -> Relay {
        std::fs::create_dir_all(dir).expect("relay directory");
        let db = dir.join("relay.sqlite3");
        let log = dir.join("relay.log");
        let mut extra: Vec<String> = extra.iter().map(|s| s.to_string()).collect();
        if pg.is_some() {
            // Many relays share one test server: a few connections each.
            extra.extend(["--pg-connections".to_string(), "4".to_string()]);
        }
        let db_arg = pg.clone().unwrap_or_else(|| db.display().to_string());
        let (child, addr) = Self::spawn(&db_arg, &log, &extra, listen);
        Relay {
            child: Some(child),
            addr,
            url: format!("http://{addr}"),
            db,
            pg,
            log,
            ca: None,
            extra,
        }
    }

    /// What `--db` is given: the PostgreSQL URL, or the SQLite file.
    fn db_arg(&self) -> String {
        self.pg
            .clone()
            .unwrap_or_else(|| self.db.display().to_string())
    }

    /// "ok" when the relay's database checks out: SQLite's integrity check; on
    /// PostgreSQL (which checks its own pages), that every envelope, release
    /// and hold belongs to a space and sits below its next cursor.
    pub fn integrity(&self) -> String {
        match &self.pg {
            None => rusqlite::Connection::open(&self.db)
                .expect("the relay database opens")
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .expect("integrity_check runs"),
            Some(url) => {
                let strays = pg::query_i64(
                    url,
                    "SELECT COUNT(*) FROM (
                       SELECT space, cursor FROM envelopes UNION ALL
                       SELECT space, cursor FROM releases UNION ALL
                       SELECT space, cursor FROM held) x
                     LEFT JOIN spaces s ON s.id = x.space
                     WHERE s.id IS NULL OR x.cursor >= s.next_cursor",
                );
                if strays == 0 {
                    "ok".into()
                } else {
                    format!("{strays} rows outside their space's cursors")
                }
            }
        }
    }

    /// The first column of the first row `sql` returns, as a number, asked of
    /// the relay's database whichever engine it is (SQL both understand).
    pub fn count(&self, sql: &str) -> i64 {
        match &self.pg {
            Some(url) => pg::query_i64(url, sql),
            None => rusqlite_count(&self.db, sql),
        }
    }

    /// Starts a relay that serves HTTPS and WSS with a certificate from a test CA
    /// made for it (in `dir/tls`); [`Relay::ca`] names the CA's file.
    pub fn start_tls(dir: &Path, extra: &[&str]) -> Relay {
        let certs = TestCerts::generate(&dir.join("tls"), "relay");
        Self::start_with_certs(dir, &certs, extra)
    }

    /// Starts a relay serving HTTPS with `certs`.
    pub fn start_with_certs(dir: &Path, certs: &TestCerts, extra: &[&str]) -> Relay {
        let cert = certs.cert.display().to_string();
        let key = certs.key.display().to_string();
        let mut args = vec!["--tls-cert", &cert, "--tls-key", &key];
        args.extend_from_slice(extra);
        let mut relay = Self::start(dir, &args);
        relay.url = format!("https://{}", relay.addr);
        relay.ca = Some(certs.ca.clone());
        relay
    }

    fn spawn(db: &str, log: &Path, extra: &[String], listen: &str) -> (Child, SocketAddr) {
        let log_file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("relay log file opens");
        let mut child = Command::new(bin("attune-relay"))
            .arg("--listen")
            .arg(listen)
            .arg("--db")
            .arg(db)
            .args(extra)
            .env("ATTUNE_RELAY_LOG", "info")
            .env_remove("ATTUNE_RELAY_CREATE_TOKEN")
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .expect("attune-relay starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the relay reports its address within 30 s");
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .and_then(|a| a.parse().ok())
            .unwrap_or_else(|| {
                let log_text = std::fs::read_to_string(log).unwrap_or_default();
                panic!("the relay did not start (first line {line:?}); its log:\n{log_text}")
            });
        (child, addr)
    }

    /// The relay process's id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// `kill -9`: no shutdown, no flush.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts again on the same database and the same port.
    pub fn restart(&mut self) {
        self.kill9();
        let listen = self.addr.to_string();
        let db = self.db_arg();
        let mut last = None;
        // The port can take a moment to be free again.
        for _ in 0..50 {
            match std::panic::catch_unwind(|| Self::spawn(&db, &self.log, &self.extra, &listen)) {
                Ok((child, addr)) => {
                    self.child = Some(child);
                    self.addr = addr;
                    return;
                }
                Err(e) => last = Some(e),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Some(e) = last {
            std::panic::resume_unwind(e);
        }
    }

    /// Asks for a graceful stop (SIGTERM) and waits for the exit status.
    pub fn terminate(&mut self) -> Option<std::process::ExitStatus> {
        let mut c = self.child.take()?;
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(c.id().to_string())
            .status();
        for _ in 0..200 {
            if let Ok(Some(status)) = c.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = c.kill();
        c.wait().ok()
    }

    /// A client of this relay (trusting its test CA when it serves HTTPS).
    pub fn client(&self, identity: &DeviceIdentity) -> RelayClient {
        RelayClient::with_ca_file(&self.url, identity.clone(), self.ca.as_deref())
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

fn rusqlite_count(db: &Path, sql: &str) -> i64 {
    rusqlite::Connection::open(db)
        .expect("the relay database opens")
        .query_row(sql, [], |r| r.get(0))
        .expect("the query runs")
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.kill9();
    }
}

pub fn random16() -> [u8; 16] {
    attune_crypto::secret::random_array()
}

/// A uniformly random number in `lo..=hi` (small ranges; the bias is irrelevant).
pub fn rand_in(lo: u64, hi: u64) -> u64 {
    let r = u64::from_le_bytes(random16()[..8].try_into().unwrap());
    lo + r % (hi - lo + 1)
}

/// A space with one member device (and optionally the partner's), with real keys.
#[derive(Debug)]
pub struct TestSpace {
    pub space: SpaceId,
    pub events: Vec<SignedRosterEvent>,
    pub epoch: SymmetricKey,
}

impl TestSpace {
    /// The creation event signed by `creator`.
    pub fn new(creator: &DeviceIdentity) -> Self {
        let space = SpaceId(random16());
        let create = creator.sign_roster_event(RosterEvent {
            space,
            seq: 1,
            prev: Hash32::ZERO,
            signer: creator.id(),
            legacy_at: None,
            change: RosterChange::Create {
                member: MemberId(random16()),
                device: creator.public(),
            },
        });
        Self {
            space,
            events: vec![create],
            epoch: SymmetricKey::generate(),
        }
    }

    /// The next roster event, signed by `signer`.
    pub fn next_event(&self, signer: &DeviceIdentity, change: RosterChange) -> SignedRosterEvent {
        let last = self.events.last().expect("a space has its creation event");
        signer.sign_roster_event(RosterEvent {
            space: self.space,
            seq: last.event.seq + 1,
            prev: last.hash(),
            signer: signer.id(),
            legacy_at: None,
            change,
        })
    }

    pub fn create_event(&self) -> Vec<u8> {
        self.events[0].encode()
    }
}

/// One device's outgoing chain of envelopes.
#[derive(Debug)]
pub struct Chain {
    pub identity: DeviceIdentity,
    pub seq: u64,
    pub prev: Hash32,
}

impl Chain {
    pub fn new(identity: &DeviceIdentity) -> Self {
        Self {
            identity: identity.clone(),
            seq: 0,
            prev: Hash32::ZERO,
        }
    }

    /// Seals the next envelope with `content` and advances the chain.
    pub fn next(&mut self, space: &TestSpace, content: &[u8]) -> Envelope {
        let header = EnvelopeHeader {
            space: space.space,
            author: self.identity.id(),
            seq: self.seq + 1,
            prev: self.prev,
            legacy_key: None,
            entry: EntryId(random16()),
        };
        let env = seal_envelope(
            &self.identity,
            header,
            KeyId::Epoch(0),
            &space.epoch,
            content,
        )
        .expect("sealing succeeds");
        self.seq += 1;
        self.prev = env.hash();
        env
    }
}

/// One `attune` profile (a device) with its own home directory, driven through the
/// real `attune` binary.
#[derive(Debug, Clone)]
pub struct Attune {
    pub home: PathBuf,
    pub env: Vec<(String, String)>,
}

/// What one `attune` run printed.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn ok(self) -> Run {
        assert_eq!(
            self.code, 0,
            "attune failed\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", self.stdout))
    }
}

impl Attune {
    pub fn new(home: &Path) -> Self {
        Self {
            home: home.to_path_buf(),
            env: vec![],
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(bin("attune"));
        c.arg("--home")
            .arg(&self.home)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("ATTUNE_PASSPHRASE")
            .env_remove("ATTUNE_HOME")
            .env_remove("ATTUNE_RELAY")
            .env_remove("ATTUNE_RELAY_TOKEN")
            .env_remove("ATTUNE_CA_FILE")
            .stdin(Stdio::null());
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs `attune ARGS` to completion (at most 120 s).
    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with_stdin(args, None)
    }

    pub fn run_with_stdin(&self, args: &[&str], stdin: Option<&str>) -> Run {
        let mut c = self.command(args);
        c.stdout(Stdio::piped()).stderr(Stdio::piped());
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("attune starts");
        if let Some(input) = stdin {
            use std::io::Write;
            let mut s = child.stdin.take().expect("stdin is piped");
            let _ = s.write_all(input.as_bytes());
        }
        // Read the output while waiting, so a large output cannot block the child.
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(child.wait_with_output());
        });
        let out = match rx.recv_timeout(Duration::from_secs(120)) {
            Ok(out) => out.expect("attune output"),
            Err(_) => {
                let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
                panic!("attune {args:?} did not finish within 120 s");
            }
        };
        Run {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// This profile trusts the CA in `ca` (`ATTUNE_CA_FILE`).
    pub fn trusting(mut self, ca: &Path) -> Self {
        self.env
            .push(("ATTUNE_CA_FILE".into(), ca.display().to_string()));
        self
    }

    pub fn init(&self, name: &str) {
        self.run(&["init", "--name", name, "--no-passphrase"]).ok();
    }
}

/// Runs `offer` (a command that prints `code: CODE` on its first stdout line and
/// then waits), gives the code to `take`, and checks both succeed.
fn exchange_code(offer: &Attune, args: &[&str], take: impl FnOnce(&str) -> Run) -> Run {
    let mut offering = offer
        .command(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the offering side starts");
    let stdout = offering.stdout.take().expect("stdout is piped");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let mut reader = BufReader::new(stdout);
        let _ = reader.read_line(&mut line);
        let _ = tx.send(line);
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut reader, &mut rest);
    });
    let line = rx
        .recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{args:?} prints its code"));
    let code = line
        .trim()
        .strip_prefix("code: ")
        .unwrap_or_else(|| panic!("unexpected first line from {args:?}: {line:?}"))
        .to_string();
    let taken = take(&code).ok();
    let status = offering.wait().expect("the offering side ends");
    assert!(status.success(), "{args:?} failed");
    taken
}

/// Pairs two initialised profiles through the real binaries: `a` invites and
/// prints the code on its first stdout line, `b` joins with it.
pub fn pair(a: &Attune, b: &Attune, relay_url: &str) {
    exchange_code(
        a,
        &["pair", "invite", "--relay", relay_url, "--timeout", "60"],
        |code| b.run(&["pair", "join", code, "--relay", relay_url]),
    );
}

/// [`pair`], each side through its own relay (two instances on one database):
/// `a` invites through `a_url`, `b` joins through `b_url`.
pub fn pair_across(a: &Attune, b: &Attune, a_url: &str, b_url: &str) {
    exchange_code(
        a,
        &["pair", "invite", "--relay", a_url, "--timeout", "60"],
        |code| b.run(&["pair", "join", code, "--relay", b_url]),
    );
}

/// Adds `new` (initialised, unpaired) as another device of `existing`'s member
/// through the real binaries: `device add` prints the code on its first stdout
/// line, `device join` uses it and fetches the history.
pub fn add_device(existing: &Attune, new: &Attune, relay_url: &str, name: &str) -> Run {
    exchange_code(existing, &["device", "add", "--timeout", "60"], |code| {
        new.run(&["device", "join", code, "--relay", relay_url, "--name", name])
    })
}

/// A relay and two paired partners: Alex (`a`, who invited) and Sam (`b`, who
/// joined), each with a home directory under `dir`.
#[derive(Debug)]
pub struct Couple {
    pub dir: tempfile::TempDir,
    pub relay: Relay,
    pub a: Attune,
    pub b: Attune,
}

impl Couple {
    pub fn new(relay_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let relay = Relay::start(&dir.path().join("relay"), relay_args);
        Self::with_relay(dir, relay)
    }

    /// A couple on a relay that serves HTTPS with a test CA both partners trust.
    pub fn new_tls(relay_args: &[&str]) -> Self {
        let dir = tempfile::tempdir().expect("temporary directory");
        let relay = Relay::start_tls(&dir.path().join("relay"), relay_args);
        Self::with_relay(dir, relay)
    }

    fn with_relay(dir: tempfile::TempDir, relay: Relay) -> Self {
        let mut a = Attune::new(&dir.path().join("a"));
        let mut b = Attune::new(&dir.path().join("b"));
        if let Some(ca) = &relay.ca {
            a = a.trusting(ca);
            b = b.trusting(ca);
        }
        a.init("Alex");
        b.init("Sam");
        pair(&a, &b, &relay.url);
        Couple { dir, relay, a, b }
    }
}

/// The JSON body of an append: the envelopes, each with a random hold slot
/// (PROTOCOL.md §9), as a client that seals no answer in the batch sends it.
pub fn append_body(envs: &[Envelope]) -> Vec<u8> {
    let list: Vec<String> = envs
        .iter()
        .map(|e| attune_proto::api::b64(&e.encode()))
        .collect();
    let holds: Vec<String> = envs
        .iter()
        .map(|_| attune_proto::api::b64(&attune_crypto::random_hold().encode()))
        .collect();
    serde_json::to_vec(&serde_json::json!({ "envelopes": list, "holds": holds }))
        .expect("JSON of strings")
}
