//! Pairing mailboxes in one relay process's memory, with long-poll reads woken
//! by a watch channel per mailbox.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use attune_proto::{Role, SpaceId};
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use super::{
    address_full, check_from, check_join, decode, new_token, pay, random_number, relay_full,
    space_full, unavailable, Bucket, MailboxLimits, Opened, Pairing, SideState, Token,
};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::peer::ClientAddr;

/// Past this many addresses with a budget, those back to a full one are forgotten.
const MAX_TRACKED: usize = 100_000;

#[derive(Debug, Default)]
struct Side {
    token: Option<Token>,
    messages: Vec<Vec<u8>>,
    state: SideState,
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

#[derive(Debug)]
struct Inner {
    boxes: HashMap<u32, Mailbox>,
    budgets: HashMap<IpAddr, Bucket>,
    total: Bucket,
}

#[derive(Debug)]
pub struct Mailboxes {
    inner: Mutex<Inner>,
    limits: MailboxLimits,
}

impl Mailboxes {
    pub fn new(limits: MailboxLimits) -> Self {
        Self {
            inner: Mutex::new(Inner {
                boxes: HashMap::new(),
                budgets: HashMap::new(),
                total: Bucket::full(limits.total_per_min, now_ms()),
            }),
            limits,
        }
    }

    fn lock(&self) -> Result<MutexGuard<'_, Inner>, ApiError> {
        self.inner.lock().map_err(|_| ApiError::internal())
    }

    /// Pays for one attempt without a token, from `addr`'s budget and the relay's.
    /// Checked before the answer depends on any mailbox, so a refusal says nothing.
    fn attempt(&self, inner: &mut Inner, addr: IpAddr) -> Result<(), ApiError> {
        let now = now_ms();
        let per_min = self.limits.per_min;
        if inner.budgets.len() >= MAX_TRACKED {
            inner.budgets.retain(|_, b| {
                b.refill(now, per_min);
                b.tokens < per_min
            });
        }
        let Inner { budgets, total, .. } = inner;
        let budget = budgets.entry(addr).or_insert(Bucket::full(per_min, now));
        pay(total, budget, &self.limits, now)
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
                self.attempt(inner, from.0)?;
                Err(unavailable())
            }
        }
    }
}

#[async_trait]
impl Pairing for Mailboxes {
    async fn open(&self, space: SpaceId, from: ClientAddr) -> Result<Opened, ApiError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        inner.boxes.retain(|_, m| m.expires > now);
        if inner.boxes.len() >= self.limits.max {
            return Err(relay_full());
        }
        let open = inner.boxes.values();
        if open.clone().filter(|m| m.space == space).count() >= self.limits.per_space {
            return Err(space_full());
        }
        if open.filter(|m| m.opener == from.0).count() >= self.limits.per_address {
            return Err(address_full());
        }
        let number = loop {
            let n = random_number();
            if !inner.boxes.contains_key(&n) {
                break n;
            }
        };
        let token = new_token();
        inner.boxes.insert(
            number,
            Mailbox {
                expires: now + self.limits.ttl,
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
        Ok(Opened {
            number,
            token: hex::encode(token),
            expires_in_secs: self.limits.ttl.as_secs(),
        })
    }

    async fn count(&self) -> usize {
        self.inner.lock().map(|i| i.boxes.len()).unwrap_or(0)
    }

    async fn join(&self, number: u32, from: ClientAddr, raw: Vec<u8>) -> Result<String, ApiError> {
        check_join(&raw)?;
        let now = Instant::now();
        let mut inner = self.lock()?;
        // Every join pays, found or not: that is what makes scanning slow.
        self.attempt(&mut inner, from.0)?;
        let mailbox = inner
            .boxes
            .get_mut(&number)
            .filter(|m| m.expires > now)
            .ok_or_else(unavailable)?;
        if mailbox.joiner.token.is_some() {
            return Err(super::full());
        }
        let token = new_token();
        mailbox.joiner = Side {
            token: Some(token),
            messages: vec![raw],
            state: SideState::JOINED,
        };
        mailbox.version.send_modify(|v| *v += 1);
        Ok(hex::encode(token))
    }

    async fn post(
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
        check_from(&msg, role)?;
        let mailbox = inner.boxes.get_mut(&number).ok_or_else(unavailable)?;
        let side = mailbox.side(role);
        side.state.accept(&msg.payload)?;
        side.messages.push(raw);
        mailbox.version.send_modify(|v| *v += 1);
        Ok(())
    }

    async fn read(
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

    async fn close(&self, number: u32, token: &Token, from: ClientAddr) -> Result<(), ApiError> {
        let now = Instant::now();
        let mut inner = self.lock()?;
        self.role(&mut inner, number, token, from, now)?;
        // Dropping the mailbox drops its sender, which wakes its readers.
        inner.boxes.remove(&number);
        Ok(())
    }
}
