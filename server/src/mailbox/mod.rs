//! Pairing mailboxes: short-lived, single-use rendezvous points through which
//! two devices run SPAKE2 (PROTOCOL.md §8). The relay sees only the messages'
//! kinds, never the code or the keys; a lost mailbox just means pairing again.
//!
//! Who may do what: opening needs a signed space device and returns the opener's
//! token; the first join (the joiner's key exchange) returns the joiner's token;
//! everything after that carries one of the two. Mailbox numbers are random among
//! 90 million, and what a stranger can try without a token (a join, or naming an
//! unknown mailbox or a wrong token) is paid for from a per-address and a
//! relay-wide budget, so finding a live mailbox by scanning takes years.
//!
//! The rules live here; where mailboxes are kept is an engine's business: in
//! one process's memory ([`memory`]) or, for instances sharing a database, in
//! PostgreSQL (`postgres::mailbox`).

use std::time::Duration;

use async_trait::async_trait;
use attune_proto::api::codes;
use attune_proto::{PairingMessage, PairingPayload, Role, SpaceId};
use axum::http::StatusCode;
use rand_core::{OsRng, RngCore};

use crate::error::ApiError;
use crate::peer::ClientAddr;

pub mod memory;

/// Mailbox numbers: always eight digits.
const FIRST_NUMBER: u64 = 10_000_000;
const NUMBERS: u64 = 90_000_000;
/// Most sealed messages one side may post (the exchange needs two).
const MAX_SEALED_PER_SIDE: usize = 2;
/// Largest pairing message: a roster and a key fit many times over.
const MAX_MESSAGE: usize = 16 * 1024;

/// A side's credential: 16 random bytes, sent as hex.
pub type Token = [u8; 16];

/// A new mailbox: its number, the opener's token (hex) and its lifetime (s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opened {
    pub number: u32,
    pub token: String,
    pub expires_in_secs: u64,
}

/// The caps and budgets of pairing, from the relay's settings.
#[derive(Debug, Clone, Copy)]
pub struct MailboxLimits {
    pub ttl: Duration,
    pub max: usize,
    pub per_space: usize,
    pub per_address: usize,
    pub per_min: f64,
    pub total_per_min: f64,
}

impl MailboxLimits {
    pub fn from_config(config: &crate::config::Config) -> Self {
        Self {
            ttl: Duration::from_secs(config.mailbox_ttl_secs),
            max: config.max_mailboxes,
            per_space: config.max_mailboxes_per_space,
            per_address: config.max_mailboxes_per_address,
            per_min: f64::from(config.pairing_attempts_per_min),
            total_per_min: f64::from(config.pairing_attempts_per_min_total),
        }
    }
}

#[async_trait]
pub trait Pairing: Send + Sync + 'static {
    /// Opens a mailbox for `space`.
    async fn open(&self, space: SpaceId, from: ClientAddr) -> Result<Opened, ApiError>;

    /// The joiner's key exchange, which claims the joiner's side: the one guess
    /// at the code. Returns the joiner's token (hex).
    async fn join(&self, number: u32, from: ClientAddr, raw: Vec<u8>) -> Result<String, ApiError>;

    /// Posts one message from the side `token` speaks for. Each side may post
    /// one key exchange, one confirmation and a few sealed messages.
    async fn post(
        &self,
        number: u32,
        token: &Token,
        from: ClientAddr,
        raw: Vec<u8>,
    ) -> Result<(), ApiError>;

    /// The other side's messages from index `after` on, waiting up to `wait`
    /// for one.
    async fn read(
        &self,
        number: u32,
        token: &Token,
        from: ClientAddr,
        after: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, ApiError>;

    /// Closes a mailbox, by either side: after a finished exchange or a failed
    /// confirmation. The code cannot be used again.
    async fn close(&self, number: u32, token: &Token, from: ClientAddr) -> Result<(), ApiError>;

    /// Mailboxes open now (for the metrics).
    async fn count(&self) -> usize;
}

/// What one side has posted so far.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SideState {
    pub pake: bool,
    pub confirm: bool,
    pub sealed: usize,
}

impl SideState {
    /// The joiner's side as its join leaves it.
    pub const JOINED: Self = Self {
        pake: true,
        confirm: false,
        sealed: 0,
    };

    /// Takes one more message of this kind, or refuses it: one key exchange,
    /// then one confirmation, then at most two sealed messages.
    pub fn accept(&mut self, payload: &PairingPayload) -> Result<(), ApiError> {
        match payload {
            PairingPayload::Pake(_) if self.pake => return Err(full()),
            PairingPayload::Pake(_) => self.pake = true,
            PairingPayload::Confirm(_) if self.confirm || !self.pake => return Err(full()),
            PairingPayload::Confirm(_) => self.confirm = true,
            PairingPayload::Sealed { .. }
                if !self.confirm || self.sealed >= MAX_SEALED_PER_SIDE =>
            {
                return Err(full())
            }
            PairingPayload::Sealed { .. } => self.sealed += 1,
        }
        Ok(())
    }
}

/// A token bucket holding up to `per_min` attempts, refilled at `per_min` a
/// minute. Times in Unix ms, so a bucket can be stored.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub tokens: f64,
    pub at_ms: i64,
}

impl Bucket {
    pub fn full(per_min: f64, now_ms: i64) -> Self {
        Self {
            tokens: per_min,
            at_ms: now_ms,
        }
    }

    pub fn refill(&mut self, now_ms: i64, per_min: f64) {
        let earned = (now_ms - self.at_ms).max(0) as f64 / 1000.0 * per_min / 60.0;
        self.tokens = (self.tokens + earned).min(per_min);
        self.at_ms = self.at_ms.max(now_ms);
    }

    pub fn wait_secs(&self, per_min: f64) -> u64 {
        ((1.0 - self.tokens) * 60.0 / per_min).ceil().max(1.0) as u64
    }
}

/// Pays for one attempt without a token from the relay's budget and the
/// address's (both refilled to `now_ms` first); nothing is taken on refusal.
pub fn pay(
    total: &mut Bucket,
    address: &mut Bucket,
    limits: &MailboxLimits,
    now_ms: i64,
) -> Result<(), ApiError> {
    total.refill(now_ms, limits.total_per_min);
    if total.tokens < 1.0 {
        return Err(limited(
            total.wait_secs(limits.total_per_min),
            "on this relay",
        ));
    }
    address.refill(now_ms, limits.per_min);
    if address.tokens < 1.0 {
        return Err(limited(
            address.wait_secs(limits.per_min),
            "from your address",
        ));
    }
    address.tokens -= 1.0;
    total.tokens -= 1.0;
    Ok(())
}

/// A random mailbox number (eight digits).
pub fn random_number() -> u32 {
    (FIRST_NUMBER + OsRng.next_u64() % NUMBERS) as u32
}

pub fn new_token() -> Token {
    let mut token = Token::default();
    OsRng.fill_bytes(&mut token);
    token
}

pub fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::MAILBOX_UNAVAILABLE,
        "this pairing code is unknown, used or expired; ask your partner for a new one",
    )
}

pub fn full() -> ApiError {
    ApiError::conflict(
        codes::MAILBOX_FULL,
        "this pairing mailbox already has that message from this side: someone else may be using the code",
    )
}

pub fn too_many(status: StatusCode, message: &str) -> ApiError {
    let mut e = ApiError::new(status, codes::TOO_MANY_MAILBOXES, message);
    e.retry_after_secs = Some(60);
    e
}

pub fn relay_full() -> ApiError {
    too_many(
        StatusCode::SERVICE_UNAVAILABLE,
        "the relay has too many pairings in progress; try again in a minute",
    )
}

pub fn space_full() -> ApiError {
    too_many(
        StatusCode::TOO_MANY_REQUESTS,
        "this space already has pairings in progress; finish them or wait until they expire",
    )
}

pub fn address_full() -> ApiError {
    too_many(
        StatusCode::TOO_MANY_REQUESTS,
        "too many pairings are in progress from your address; try again later",
    )
}

fn limited(secs: u64, whose: &str) -> ApiError {
    let mut e = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        codes::RATE_LIMITED,
        format!("too many pairing attempts {whose}; try again in {secs} s"),
    );
    e.retry_after_secs = Some(secs);
    e
}

pub fn decode(raw: &[u8]) -> Result<PairingMessage, ApiError> {
    if raw.len() > MAX_MESSAGE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("a pairing message is at most {MAX_MESSAGE} bytes"),
        ));
    }
    PairingMessage::decode(raw).map_err(|e| {
        ApiError::bad_request(codes::BAD_REQUEST, format!("not a pairing message: {e}"))
    })
}

/// A join carries the joiner's key exchange and nothing else.
pub fn check_join(raw: &[u8]) -> Result<(), ApiError> {
    let msg = decode(raw)?;
    if !matches!(
        (msg.from, &msg.payload),
        (Role::Joiner, PairingPayload::Pake(_))
    ) {
        return Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "a join carries the joiner's key exchange",
        ));
    }
    Ok(())
}

/// A post's message must come from the side its token is for.
pub fn check_from(msg: &PairingMessage, role: Role) -> Result<(), ApiError> {
    if msg.from != role {
        return Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "this message's role is not the side this token is for",
        ));
    }
    Ok(())
}
