//! Pairing mailboxes: short-lived, in-memory, single-use rendezvous points through
//! which two devices run SPAKE2 (PROTOCOL.md §8). The relay sees only the messages'
//! kinds, never the code or the keys; a lost mailbox just means pairing again.
//!
//! Who may do what: opening needs a signed space device and returns the opener's
//! token; the first join (the joiner's key exchange) returns the joiner's token;
//! everything after that carries one of the two. Mailbox numbers are random among
//! 90 million, and what a stranger can try without a token (a join, or naming an
//! unknown mailbox or a wrong token) is paid for from a per-address and a
//! relay-wide budget, so finding a live mailbox by scanning takes years.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use attune_proto::api::codes;
use attune_proto::{PairingMessage, PairingPayload, Role, SpaceId};
use axum::http::StatusCode;
use rand_core::{OsRng, RngCore};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ApiError;
use crate::peer::ClientAddr;

/// Mailbox numbers: always eight digits.
const FIRST_NUMBER: u64 = 10_000_000;
const NUMBERS: u64 = 90_000_000;
/// Most sealed messages one side may post (the exchange needs two).
const MAX_SEALED_PER_SIDE: usize = 2;
/// Largest pairing message: a roster and a key fit many times over.
const MAX_MESSAGE: usize = 16 * 1024;
/// Past this many addresses with a budget, those back to a full one are forgotten.
const MAX_TRACKED: usize = 100_000;

/// A side's credential: 16 random bytes, sent as hex.
pub type Token = [u8; 16];

#[derive(Debug, Default)]
struct Side {
    token: Option<Token>,
    messages: Vec<Vec<u8>>,
    pake: bool,
    confirm: bool,
    sealed: usize,
}

#[derive(Debug)]
struct Mailbox {
    expires: Instant,
    space: SpaceId,
    opener: IpAddr,
    inviter: Side,
    joiner: Side,
    /// Bumped on every post; dropped on close. Readers wait for either.
    version: watch::Sender<u64>,
}

impl Mailbox {
    fn role_of(&self, token: &Token) -> Option<Role> {
        let holds = |side: &Side| side.token.is_some_and(|t| bool::from(t.ct_eq(token)));
        if holds(&self.inviter) {
            Some(Role::Inviter)
        } else if holds(&self.joiner) {
            Some(Role::Joiner)
        } else {
            None
        }
    }

    fn side(&mut self, role: Role) -> &mut Side {
        match role {
            Role::Inviter => &mut self.inviter,
            Role::Joiner => &mut self.joiner,
        }
    }
}

/// A token bucket holding up to `per_min` attempts, refilled at `per_min` a minute.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn refill(&mut self, now: Instant, per_min: f64) {
        let earned = now.duration_since(self.at).as_secs_f64() * per_min / 60.0;
        self.tokens = (self.tokens + earned).min(per_min);
        self.at = now;
    }

    fn wait_secs(&self, per_min: f64) -> u64 {
        ((1.0 - self.tokens) * 60.0 / per_min).ceil().max(1.0) as u64
    }
}

#[derive(Debug)]
struct Inner {
    boxes: HashMap<u32, Mailbox>,
    budgets: HashMap<IpAddr, Bucket>,
    total: Bucket,
}

#[derive(Debug)]
pub struct Mailboxes {
    inner: Mutex<Inner>,
    ttl: Duration,
    max: usize,
    per_space: usize,
    per_address: usize,
    per_min: f64,
    total_per_min: f64,
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::MAILBOX_UNAVAILABLE,
        "this pairing code is unknown, used or expired; ask your partner for a new one",
    )
}

fn full() -> ApiError {
    ApiError::conflict(
        codes::MAILBOX_FULL,
        "this pairing mailbox already has that message from this side: someone else may be using the code",
    )
}

fn too_many(status: StatusCode, message: &str) -> ApiError {
    let mut e = ApiError::new(status, codes::TOO_MANY_MAILBOXES, message);
    e.retry_after_secs = Some(60);
    e
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

fn decode(raw: &[u8]) -> Result<PairingMessage, ApiError> {
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

impl Mailboxes {
    pub fn new(config: &Config) -> Self {
        let total_per_min = f64::from(config.pairing_attempts_per_min_total);
        Self {
            inner: Mutex::new(Inner {
                boxes: HashMap::new(),
                budgets: HashMap::new(),
                total: Bucket {
                    tokens: total_per_min,
                    at: Instant::now(),
                },
            }),
            ttl: Duration::from_secs(config.mailbox_ttl_secs),
            max: config.max_mailboxes,
            per_space: config.max_mailboxes_per_space,
            per_address: config.max_mailboxes_per_address,
            per_min: f64::from(config.pairing_attempts_per_min),
            total_per_min,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, ApiError> {
        self.inner.lock().map_err(|_| ApiError::internal())
    }

    /// Pays for one attempt without a token, from `addr`'s budget and the relay's.
    /// Checked before the answer depends on any mailbox, so a refusal says nothing.
    fn attempt(&self, inner: &mut Inner, addr: IpAddr, now: Instant) -> Result<(), ApiError> {
        inner.total.refill(now, self.total_per_min);
        if inner.total.tokens < 1.0 {
            let secs = inner.total.wait_secs(self.total_per_min);
            return Err(limited(secs, "on this relay"));
        }
        if inner.budgets.len() >= MAX_TRACKED {
            inner.budgets.retain(|_, b| {
                b.refill(now, self.per_min);
                b.tokens < self.per_min
            });
        }
        let budget = inner.budgets.entry(addr).or_insert(Bucket {
            tokens: self.per_min,
            at: now,
        });
        budget.refill(now, self.per_min);
        if budget.tokens < 1.0 {
            return Err(limited(budget.wait_secs(self.per_min), "from your address"));
        }
        budget.tokens -= 1.0;
        inner.total.tokens -= 1.0;
        Ok(())
    }

    /// The side `token` speaks for in mailbox `number`. A miss is paid for like a
    /// join and answers the same whether the number or the token was wrong.
    fn role(
        &self,
        inner: &mut Inner,
        number: u32,
        token: &Token,
        from: ClientAddr,
        now: Instant,
    ) -> Result<Role, ApiError> {
        let role = inner
            .boxes
            .get(&number)
            .filter(|m| m.expires > now)
            .and_then(|m| m.role_of(token));
        match role {
            Some(role) => Ok(role),
            None => {
                self.attempt(inner, from.0, now)?;
                Err(unavailable())
            }
        }
    }

    /// Opens a mailbox for `space`: its number, the opener's token (hex) and its
    /// lifetime in seconds.
    pub fn open(&self, space: SpaceId, from: ClientAddr) -> Result<(u32, String, u64), ApiError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.boxes.retain(|_, m| m.expires > now);
        if inner.boxes.len() >= self.max {
            return Err(too_many(
                StatusCode::SERVICE_UNAVAILABLE,
                "the relay has too many pairings in progress; try again in a minute",
            ));
        }
        let open = inner.boxes.values();
        if open.clone().filter(|m| m.space == space).count() >= self.per_space {
            return Err(too_many(
                StatusCode::TOO_MANY_REQUESTS,
                "this space already has pairings in progress; finish them or wait until they expire",
            ));
        }
        if open.filter(|m| m.opener == from.0).count() >= self.per_address {
            return Err(too_many(
                StatusCode::TOO_MANY_REQUESTS,
                "too many pairings are in progress from your address; try again later",
            ));
        }
        let number = loop {
            let n = (FIRST_NUMBER + OsRng.next_u64() % NUMBERS) as u32;
            if !inner.boxes.contains_key(&n) {
                break n;
            }
        };
        let mut token = Token::default();
        OsRng.fill_bytes(&mut token);
        inner.boxes.insert(
            number,
            Mailbox {
                expires: now + self.ttl,
                space,
                opener: from.0,
                inviter: Side {
                    token: Some(token),
                    ..Side::default()
                },
                joiner: Side::default(),
                version: watch::channel(0).0,
            },
        );
        Ok((number, hex::encode(token), self.ttl.as_secs()))
    }

    pub fn count(&self) -> usize {
        self.inner.lock().map(|i| i.boxes.len()).unwrap_or(0)
    }

    /// The joiner's key exchange, which claims the joiner's side: the one guess at
    /// the code. Returns the joiner's token (hex).
    pub fn join(&self, number: u32, from: ClientAddr, raw: Vec<u8>) -> Result<String, ApiError> {
        let msg = decode(&raw)?;
        if !matches!(
            (msg.from, &msg.payload),
            (Role::Joiner, PairingPayload::Pake(_))
        ) {
            return Err(ApiError::bad_request(
                codes::BAD_REQUEST,
                "a join carries the joiner's key exchange",
            ));
        }
        let now = Instant::now();
        let mut inner = self.lock()?;
        // Every join pays, found or not: that is what makes scanning slow.
        self.attempt(&mut inner, from.0, now)?;
        let mailbox = inner
            .boxes
            .get_mut(&number)
            .filter(|m| m.expires > now)
            .ok_or_else(unavailable)?;
        if mailbox.joiner.token.is_some() {
            return Err(full());
        }
        let mut token = Token::default();
        OsRng.fill_bytes(&mut token);
        mailbox.joiner = Side {
            token: Some(token),
            messages: vec![raw],
            pake: true,
            ..Side::default()
        };
        mailbox.version.send_modify(|v| *v += 1);
        Ok(hex::encode(token))
    }

    /// Posts one message from the side `token` speaks for. Each side may post one
    /// key exchange, one confirmation and a few sealed messages.
    pub fn post(
        &self,
        number: u32,
        token: &Token,
        from: ClientAddr,
        raw: Vec<u8>,
    ) -> Result<(), ApiError> {
        let msg = decode(&raw)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        let role = self.role(&mut inner, number, token, from, now)?;
        if msg.from != role {
            return Err(ApiError::bad_request(
                codes::BAD_REQUEST,
                "this message's role is not the side this token is for",
            ));
        }
        let mailbox = inner.boxes.get_mut(&number).ok_or_else(unavailable)?;
        let side = mailbox.side(role);
        match msg.payload {
            PairingPayload::Pake(_) if side.pake => return Err(full()),
            PairingPayload::Pake(_) => side.pake = true,
            PairingPayload::Confirm(_) if side.confirm || !side.pake => return Err(full()),
            PairingPayload::Confirm(_) => side.confirm = true,
            PairingPayload::Sealed { .. }
                if !side.confirm || side.sealed >= MAX_SEALED_PER_SIDE =>
            {
                return Err(full())
            }
            PairingPayload::Sealed { .. } => side.sealed += 1,
        }
        side.messages.push(raw);
        mailbox.version.send_modify(|v| *v += 1);
        Ok(())
    }

    /// The other side's messages from index `after` on, waiting up to `wait` for one.
    pub async fn read(
        &self,
        number: u32,
        token: &Token,
        from: ClientAddr,
        after: usize,
        wait: Duration,
    ) -> Result<Vec<Vec<u8>>, ApiError> {
        let deadline = Instant::now() + wait;
        loop {
            let mut changed = {
                let now = Instant::now();
                let mut inner = self.lock()?;
                let role = self.role(&mut inner, number, token, from, now)?;
                let mailbox = inner.boxes.get_mut(&number).ok_or_else(unavailable)?;
                let other = mailbox.side(role.other());
                let msgs: Vec<_> = other.messages.iter().skip(after).cloned().collect();
                if !msgs.is_empty() || now >= deadline {
                    return Ok(msgs);
                }
                // Subscribed under the lock: any later post, or the close, wakes us.
                mailbox.version.subscribe()
            };
            let _ = tokio::time::timeout_at(deadline.into(), changed.changed()).await;
        }
    }

    /// Closes a mailbox, by either side: after a finished exchange or a failed
    /// confirmation. The code cannot be used again.
    pub fn close(&self, number: u32, token: &Token, from: ClientAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        self.role(&mut inner, number, token, from, now)?;
        // Dropping the mailbox drops its sender, which wakes its readers.
        inner.boxes.remove(&number);
        Ok(())
    }
}
