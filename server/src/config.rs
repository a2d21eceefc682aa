//! The relay's settings: flags, each with an `ATTUNE_RELAY_*` environment variable.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// attune-relay: the blind relay for attune. It stores and forwards signed,
/// encrypted envelopes for couples, and can read none of them.
#[derive(Debug, Clone, Parser)]
#[command(name = "attune-relay", version, about, long_about = None)]
pub struct Config {
    /// Address to listen on.
    #[arg(long, env = "ATTUNE_RELAY_LISTEN", default_value = "127.0.0.1:8733")]
    pub listen: SocketAddr,

    /// Where to keep everything: a SQLite database file [default: relay.sqlite3
    /// in the platform data directory], or a postgres:// URL, for several relay
    /// instances on one PostgreSQL database.
    #[arg(
        long,
        env = "ATTUNE_RELAY_DB",
        value_name = "FILE|URL",
        hide_env_values = true
    )]
    pub db: Option<Database>,

    /// Connections each instance keeps to PostgreSQL (with --db postgres://…).
    #[arg(long, env = "ATTUNE_RELAY_PG_CONNECTIONS", default_value_t = 16)]
    pub pg_connections: usize,

    /// Largest accepted request body, in bytes.
    #[arg(long, env = "ATTUNE_RELAY_MAX_BODY", default_value_t = 8 * 1024 * 1024)]
    pub max_body: usize,

    /// Largest accepted single envelope, in bytes (encoded).
    #[arg(long, env = "ATTUNE_RELAY_MAX_ENVELOPE", default_value_t = 1024 * 1024 + 4096)]
    pub max_envelope: usize,

    /// Most envelopes in one append request.
    #[arg(long, env = "ATTUNE_RELAY_MAX_BATCH", default_value_t = 500)]
    pub max_batch: usize,

    /// Most envelope bytes stored for one space.
    #[arg(long, env = "ATTUNE_RELAY_SPACE_QUOTA", default_value_t = 1024 * 1024 * 1024)]
    pub space_quota: u64,

    /// Most roster events one space may have (devices added and revoked); every
    /// client reads the whole roster in one answer.
    #[arg(long, env = "ATTUNE_RELAY_MAX_ROSTER_EVENTS", default_value_t = 1000)]
    pub max_roster_events: u64,

    /// Requests per second each device may make on average.
    #[arg(long = "rate", env = "ATTUNE_RELAY_RATE", default_value_t = 200.0)]
    pub rate_per_sec: f64,

    /// Requests a device may make in a burst above the average rate.
    #[arg(long = "burst", env = "ATTUNE_RELAY_BURST", default_value_t = 400.0)]
    pub rate_burst: f64,

    /// Accepted clock difference for signed requests, in seconds.
    #[arg(long, env = "ATTUNE_RELAY_MAX_SKEW", default_value_t = 300)]
    pub max_skew_secs: u64,

    /// Most envelopes returned by one pull.
    #[arg(long, env = "ATTUNE_RELAY_PAGE", default_value_t = 1000)]
    pub page_limit: usize,

    /// Time limit for one request (not for WebSocket streams), in seconds.
    #[arg(long, env = "ATTUNE_RELAY_REQUEST_TIMEOUT", default_value_t = 30)]
    pub request_timeout_secs: u64,

    /// How long a pairing mailbox stays open, in seconds.
    #[arg(long, env = "ATTUNE_RELAY_MAILBOX_TTL", default_value_t = 600)]
    pub mailbox_ttl_secs: u64,

    /// Most pairing mailboxes open at once.
    #[arg(long, env = "ATTUNE_RELAY_MAX_MAILBOXES", default_value_t = 10_000)]
    pub max_mailboxes: usize,

    /// Most pairing mailboxes one space may have open at once.
    #[arg(
        long,
        env = "ATTUNE_RELAY_MAX_MAILBOXES_PER_SPACE",
        default_value_t = 2
    )]
    pub max_mailboxes_per_space: usize,

    /// Most pairing mailboxes opened from one address (IPv6: one /64) open at once.
    #[arg(
        long,
        env = "ATTUNE_RELAY_MAX_MAILBOXES_PER_ADDRESS",
        default_value_t = 16
    )]
    pub max_mailboxes_per_address: usize,

    /// Pairing attempts without a mailbox token (joins, and requests naming an
    /// unknown mailbox or a wrong token) one address may make per minute.
    #[arg(long, env = "ATTUNE_RELAY_PAIRING_ATTEMPTS_PER_MIN", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pairing_attempts_per_min: u32,

    /// The same, from all addresses together: what bounds a scan from many
    /// addresses (it also bounds honest joins, one per pairing).
    #[arg(long, env = "ATTUNE_RELAY_PAIRING_ATTEMPTS_PER_MIN_TOTAL", default_value_t = 60,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub pairing_attempts_per_min_total: u32,

    /// The address of a reverse proxy in front of the relay. Only for requests
    /// from this address does the relay take the client's address from the last
    /// entry of `X-Forwarded-For` (for per-address limits); otherwise that header
    /// is ignored.
    #[arg(long, env = "ATTUNE_RELAY_TRUSTED_PROXY")]
    pub trusted_proxy: Option<IpAddr>,

    /// Connections in the read pool: also the most reads run at once.
    #[arg(long, env = "ATTUNE_RELAY_READERS", default_value_t = 4)]
    pub readers: usize,

    /// Most connections open at once; over it, a new connection gets a JSON 503
    /// (`too_many_connections`). The process needs more open files than this.
    #[arg(long, env = "ATTUNE_RELAY_MAX_CONNECTIONS", default_value_t = 2048)]
    pub max_connections: usize,

    /// Most connections open at once from one address (an IPv6 /64 counts as one);
    /// 0 for no per-address cap. Behind a reverse proxy every connection comes from
    /// the proxy: set this to 0 there and cap per address in the proxy.
    #[arg(
        long,
        env = "ATTUNE_RELAY_MAX_CONNECTIONS_PER_IP",
        default_value_t = 256
    )]
    pub max_connections_per_ip: usize,

    /// Most bytes of authenticated request bodies held at once; a request waits
    /// for room (503 `timeout` after the request time limit). At least --max-body.
    #[arg(long, env = "ATTUNE_RELAY_BODY_BUDGET", default_value_t = 32 * 1024 * 1024)]
    pub body_budget: usize,

    /// Most bytes held at once of the bodies read before any signature can be
    /// checked (space creation, pairing posts; each at most 24 KiB); over it the
    /// relay answers 503 `overloaded` at once.
    #[arg(long, env = "ATTUNE_RELAY_PREAUTH_BUDGET", default_value_t = 2 * 1024 * 1024)]
    pub preauth_budget: usize,

    /// PEM certificate chain: serve HTTPS and WSS with it (with --tls-key). Sent
    /// SIGHUP, the relay reads it and the key again, so a renewed certificate
    /// needs no restart.
    #[arg(long, env = "ATTUNE_RELAY_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,

    /// PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, env = "ATTUNE_RELAY_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,

    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `attune_relay=debug`.
    #[arg(long, env = "ATTUNE_RELAY_LOG", default_value = "info")]
    pub log: String,

    /// Create spaces only for requests that carry this token (header
    /// `x-attune-create-token`; clients pass it with `--relay-token`). Without
    /// one, anyone who can reach the relay can create spaces.
    #[arg(long, env = "ATTUNE_RELAY_CREATE_TOKEN", hide_env_values = true)]
    pub create_token: Option<String>,

    /// When this relay started, in Unix ms; set before it listens. Requests
    /// signed earlier are refused: the replay cache starts empty, so this stops a
    /// request captured before a restart from being replayed after it.
    #[arg(skip)]
    pub started_ms: Option<i64>,

    /// Instead of serving: another task.
    #[command(subcommand)]
    pub command: Option<RelayCommand>,
}

/// What the relay binary can do besides serving.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum RelayCommand {
    /// Write a consistent copy of the database (--db) to FILE, also while a relay
    /// serves it. To restore: stop the relay, put FILE in place of the database
    /// (its -wal and -shm files removed), start the relay.
    Backup {
        /// The file to write; it must not exist yet.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Check that the relay serving with these settings (--listen, TLS) answers:
    /// exit 0 if it does, 1 if not. For container and service health checks.
    Health,
}

/// Where a relay keeps its data: the embedded default, or PostgreSQL.
#[derive(Debug, Clone)]
pub enum Database {
    Sqlite(PathBuf),
    Postgres(Box<crate::postgres::PgUrl>),
}

impl std::str::FromStr for Database {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if crate::postgres::PgUrl::is_postgres(s) {
            Ok(Self::Postgres(Box::new(s.parse()?)))
        } else if s.is_empty() {
            Err("give a database file or a postgres:// URL".into())
        } else {
            Ok(Self::Sqlite(PathBuf::from(s)))
        }
    }
}

impl std::fmt::Display for Database {
    /// The file, or the URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "{}", path.display()),
            Self::Postgres(url) => write!(f, "{url}"),
        }
    }
}

impl Config {
    /// The database: `--db`, or a SQLite file in the platform data directory.
    pub fn database(&self) -> Option<Database> {
        self.db.clone().or_else(|| {
            directories::ProjectDirs::from("org", "attune", "attune-relay")
                .map(|d| Database::Sqlite(d.data_dir().join("relay.sqlite3")))
        })
    }

    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// Settings for tests: everything default, this database.
    pub fn for_tests(db: PathBuf) -> Self {
        let mut c = Self::parse_from(["attune-relay"]);
        c.db = Some(Database::Sqlite(db));
        c.started_ms = Some(crate::auth::now_ms());
        c
    }
}
