//! Pairing mailboxes: short-lived, in-memory, single-use rendezvous points through
//! which two devices run SPAKE2 (PROTOCOL.md §8). The relay sees only the messages'
//! kinds, never the code or the keys; a lost mailbox just means pairing again.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use attune_proto::api::codes;
use attune_proto::{PairingMessage, PairingPayload, Role};
use axum::http::StatusCode;
use rand_core::{OsRng, RngCore};
use tokio::sync::watch;

use crate::config::Config;
use crate::error::ApiError;

/// Most sealed messages one side may post (the exchange needs two).
const MAX_SEALED_PER_SIDE: usize = 2;
/// Largest pairing message: a roster and a key fit many times over.
const MAX_MESSAGE: usize = 16 * 1024;

#[derive(Debug, Default)]
struct Side {
    messages: Vec<Vec<u8>>,
    pake: bool,
    confirm: bool,
    sealed: usize,
}

#[derive(Debug)]
struct Mailbox {
    expires: Instant,
    inviter: Side,
    joiner: Side,
    closed: bool,
    /// Bumped on every post and on close; readers wait for a change.
    version: watch::Sender<u64>,
}

#[derive(Debug)]
pub struct Mailboxes {
    boxes: Mutex<HashMap<u32, Mailbox>>,
    ttl: Duration,
    max: usize,
}

fn unavailable() -> ApiError {
    ApiError::new(
        StatusCode::GONE,
        codes::MAILBOX_UNAVAILABLE,
        "this pairing code is unknown, used or expired; ask your partner for a new one",
    )
}

impl Mailboxes {
    pub fn new(config: &Config) -> Self {
        Self {
            boxes: Mutex::new(HashMap::new()),
            ttl: Duration::from_secs(config.mailbox_ttl_secs),
            max: config.max_mailboxes,
        }
    }

    fn prune(boxes: &mut HashMap<u32, Mailbox>, now: Instant) {
        boxes.retain(|_, m| m.expires > now);
    }

    /// Opens a mailbox with a short number that is not in use.
    pub fn open(&self) -> Result<(u32, u64), ApiError> {
        let now = Instant::now();
        let mut boxes = self.boxes.lock().map_err(|_| ApiError::internal())?;
        Self::prune(&mut boxes, now);
        if boxes.len() >= self.max {
            let mut e = ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                codes::TOO_MANY_MAILBOXES,
                "the relay has too many pairings in progress; try again in a minute",
            );
            e.retry_after_secs = Some(60);
            return Err(e);
        }
        // Short numbers while few are open; the range grows with the load.
        let range = (boxes.len() as u32 + 1).saturating_mul(10).max(1000);
        let number = loop {
            let n = 1 + OsRng.next_u32() % range;
            if !boxes.contains_key(&n) {
                break n;
            }
        };
        boxes.insert(
            number,
            Mailbox {
                expires: now + self.ttl,
                inviter: Side::default(),
                joiner: Side::default(),
                closed: false,
                version: watch::channel(0).0,
            },
        );
        Ok((number, self.ttl.as_secs()))
    }

    pub fn count(&self) -> usize {
        self.boxes.lock().map(|b| b.len()).unwrap_or(0)
    }

    /// Posts one message; its role byte says which side it is from. Each side may
    /// post one key exchange, one confirmation and a few sealed messages.
    pub fn post(&self, number: u32, raw: Vec<u8>) -> Result<(), ApiError> {
        if raw.len() > MAX_MESSAGE {
            return Err(ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::BODY_TOO_LARGE,
                format!("a pairing message is at most {MAX_MESSAGE} bytes"),
            ));
        }
        let msg = PairingMessage::decode(&raw).map_err(|e| {
            ApiError::bad_request(codes::BAD_REQUEST, format!("not a pairing message: {e}"))
        })?;
        let now = Instant::now();
        let mut boxes = self.boxes.lock().map_err(|_| ApiError::internal())?;
        let mailbox = boxes
            .get_mut(&number)
            .filter(|m| m.expires > now && !m.closed)
            .ok_or_else(unavailable)?;
        let side = match msg.from {
            Role::Inviter => &mut mailbox.inviter,
            Role::Joiner => &mut mailbox.joiner,
        };
        let full = || {
            ApiError::conflict(
                codes::MAILBOX_FULL,
                "this pairing mailbox already has that message from this side: someone else may be using the code",
            )
        };
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
        reader: Role,
        after: usize,
        wait: Duration,
    ) -> Result<(Vec<Vec<u8>>, bool), ApiError> {
        let deadline = Instant::now() + wait;
        loop {
            let mut changed = {
                let now = Instant::now();
                let boxes = self.boxes.lock().map_err(|_| ApiError::internal())?;
                let mailbox = boxes
                    .get(&number)
                    .filter(|m| m.expires > now)
                    .ok_or_else(unavailable)?;
                let other = match reader {
                    Role::Inviter => &mailbox.joiner,
                    Role::Joiner => &mailbox.inviter,
                };
                let msgs: Vec<_> = other.messages.iter().skip(after).cloned().collect();
                if !msgs.is_empty() || mailbox.closed || now >= deadline {
                    return Ok((msgs, mailbox.closed));
                }
                // Subscribed under the lock: any later post or close wakes us.
                mailbox.version.subscribe()
            };
            let _ = tokio::time::timeout_at(deadline.into(), changed.changed()).await;
        }
    }

    /// Closes a mailbox: after a finished exchange or a failed confirmation.
    pub fn close(&self, number: u32) -> Result<(), ApiError> {
        let mut boxes = self.boxes.lock().map_err(|_| ApiError::internal())?;
        let mailbox = boxes.get_mut(&number).ok_or_else(unavailable)?;
        mailbox.closed = true;
        mailbox.version.send_modify(|v| *v += 1);
        Ok(())
    }
}
