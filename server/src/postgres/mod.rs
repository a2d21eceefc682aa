//! The PostgreSQL engine, for a relay that outgrows one machine: any number of
//! stateless instances on one database. Everything correctness needs across
//! instances lives in the database — the envelopes and holds ([`store`]), the
//! replay cache and rate limits ([`limits`]), the pairing mailboxes
//! ([`mailbox`]) — and [`listen`] carries commits from one instance to the
//! WebSocket streams and mailbox readers of every other (LISTEN/NOTIFY).

use std::fmt;
use std::str::FromStr;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod};
use tokio_postgres::NoTls;

use crate::store::StoreError;

pub mod limits;
pub mod listen;
pub mod mailbox;
pub mod store;

/// The channel a commit of envelopes (or an erased space) is announced on:
/// `SPACE_HEX:CURSOR`.
pub const SPACES_CHANNEL: &str = "attune_spaces";
/// The channel a pairing mailbox's change is announced on: its number.
pub const MAILBOX_CHANNEL: &str = "attune_mailboxes";

/// A `postgres://` URL. Its password never reaches a log or an error message.
#[derive(Clone)]
pub struct PgUrl {
    url: String,
    config: tokio_postgres::Config,
}

impl PgUrl {
    pub fn is_postgres(s: &str) -> bool {
        s.starts_with("postgres://") || s.starts_with("postgresql://")
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// The URL as given, password included: only for handing to a child process.
    pub fn expose(&self) -> &str {
        &self.url
    }
}

impl FromStr for PgUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let config = tokio_postgres::Config::from_str(s).map_err(|_| {
            "not a PostgreSQL URL: use postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE".to_string()
        })?;
        Ok(Self {
            url: s.to_string(),
            config,
        })
    }
}

impl fmt::Display for PgUrl {
    /// `postgres://user@host:port/db`, without the password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let user = self.config.get_user().unwrap_or("");
        let host = match self.config.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
            None => "localhost".into(),
        };
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        let db = self.config.get_dbname().unwrap_or("");
        write!(f, "postgres://{user}@{host}:{port}/{db}")
    }
}

impl fmt::Debug for PgUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgUrl({self})")
    }
}

pub(crate) fn internal(e: impl fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

/// Words for a connection failure, without the URL (which may hold a password).
pub(crate) fn db_error(e: &tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(db) => StoreError::Internal(format!("PostgreSQL: {}", db.message())),
        None => StoreError::Internal(format!("PostgreSQL: {e}")),
    }
}

pub(crate) fn pool_error(e: deadpool_postgres::PoolError) -> StoreError {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(&e),
        e => StoreError::Internal(format!("PostgreSQL connection pool: {e}")),
    }
}

/// The two pools an instance keeps: `durable` for what is acknowledged
/// (envelopes, rosters, recovery: each commit waits for the WAL on disk), and
/// `quick` for what is short-lived and safe to lose in a crash of the database
/// server itself (replay entries and rate budgets, which only ever hold back,
/// and pairing mailboxes: a lost one means pairing again), whose commits do not
/// wait for the disk.
#[derive(Clone)]
pub struct Pg {
    pub durable: Pool,
    pub quick: Pool,
    pub url: PgUrl,
}

impl fmt::Debug for Pg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pg").field("url", &self.url).finish()
    }
}

fn pool(url: &PgUrl, size: usize, options: &str) -> Result<Pool, StoreError> {
    let mut config = url.config.clone();
    config.application_name("attune-relay");
    if !options.is_empty() {
        config.options(options);
    }
    let manager = Manager::from_config(
        config,
        NoTls,
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(size.max(1))
        .wait_timeout(Some(std::time::Duration::from_secs(30)))
        .runtime(deadpool_postgres::Runtime::Tokio1)
        .build()
        .map_err(internal)
}

impl Pg {
    /// Connects, checks the server answers, and runs the migrations not run yet.
    pub async fn connect(url: PgUrl, connections: usize) -> Result<Self, StoreError> {
        let pg = Self {
            durable: pool(&url, connections, "")?,
            quick: pool(&url, connections.div_ceil(2), "-c synchronous_commit=off")?,
            url,
        };
        store::migrate(&pg).await?;
        Ok(pg)
    }
}
