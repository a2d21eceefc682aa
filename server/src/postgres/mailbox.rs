//! Pairing mailboxes in the database, so that the two sides of a pairing may
//! reach different instances. The rules are `mailbox`'s; each operation runs in
//! one transaction on the quick pool (a mailbox lost in a crash of the database
//! server means pairing again), locking the mailbox's row. A reader waits for
//! a notice on [`MAILBOX_CHANNEL`](super::MAILBOX_CHANNEL) from whichever
//! instance took the post, and looks again every two seconds whatever happens.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use attune_proto::{Role, SpaceId};
use deadpool_postgres::Transaction;
use subtle::ConstantTimeEq;
use tokio::sync::broadcast;
use tokio::time::Instant;

use super::{db_error, pool_error, Pg, MAILBOX_CHANNEL};
use crate::auth::now_ms;
use crate::error::ApiError;
use crate::mailbox::{
    address_full, check_from, check_join, decode, full, new_token, pay, random_number, relay_full,
    space_full, unavailable, Bucket, MailboxLimits, Opened, Pairing, SideState, Token,
};
use crate::peer::ClientAddr;

/// Opening checks counts over all mailboxes: one open at a time, relay-wide.
const OPEN_LOCK: i64 = 0x006d_6169_6c62_6f78;
/// The budget key shared by every address.
const TOTAL: &str = "*";
/// A reader looks again at least this often, notice or not.
const POLL: Duration = Duration::from_secs(2);

fn side_no(role: Role) -> i16 {
    match role {
        Role::Inviter => 0,
        Role::Joiner => 1,
    }
}

fn to_row(s: SideState) -> Vec<i16> {
    vec![
        i16::from(s.pake),
        i16::from(s.confirm),
        s.sealed.min(i16::MAX as usize) as i16,
    ]
}

fn from_row(v: &[i16]) -> SideState {
    SideState {
        pake: v.first().is_some_and(|&x| x != 0),
        confirm: v.get(1).is_some_and(|&x| x != 0),
        sealed: v.get(2).map_or(0, |&x| x.max(0) as usize),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    tracing::error!(error = %e, "pairing mailbox storage failed");
    ApiError::internal()
}

fn pg_err(e: tokio_postgres::Error) -> ApiError {
    internal(db_error(&e))
}

/// A mailbox's row, as a side's token finds it.
struct Found {
    role: Role,
    inviter: SideState,
    joiner: SideState,
}

impl Found {
    fn side(&self, role: Role) -> SideState {
        match role {
            Role::Inviter => self.inviter,
            Role::Joiner => self.joiner,
        }
    }
}

#[derive(Debug)]
pub struct PgMailboxes {
    pg: Pg,
    limits: MailboxLimits,
    /// Numbers of mailboxes that changed, from every instance (see `listen`).
    changed: broadcast::Sender<u32>,
}

impl PgMailboxes {
    pub fn new(pg: Pg, limits: MailboxLimits) -> Self {
        Self {
            pg,
            limits,
            changed: broadcast::channel(1024).0,
        }
    }

    /// Where the listener announces changed mailboxes.
    pub fn notices(&self) -> broadcast::Sender<u32> {
        self.changed.clone()
    }

    /// Runs `f` in a transaction and commits whatever it returns: a refused
    /// attempt stays paid for.
    async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        F: for<'a> FnOnce(
                &'a Transaction<'a>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, ApiError>> + Send + 'a>,
            > + Send,
        T: Send,
    {
        let mut client = self
            .pg
            .quick
            .get()
            .await
            .map_err(|e| internal(pool_error(e)))?;
        let tx = client.transaction().await.map_err(pg_err)?;
        let out = f(&tx).await;
        tx.commit().await.map_err(pg_err)?;
        out
    }
}

/// Pays for one attempt without a token, from the address's budget and the
/// relay's, locked in one order (the total's key sorts first).
async fn attempt(
    tx: &Transaction<'_>,
    limits: &MailboxLimits,
    addr: IpAddr,
) -> Result<(), ApiError> {
    let now = now_ms();
    let key = addr.to_string();
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO pairing_budgets (key, tokens, at_ms) VALUES ($1, $2, $5), ($3, $4, $5)
         ON CONFLICT (key) DO NOTHING",
        )
        .await
        .map_err(pg_err)?,
        &[&TOTAL, &limits.total_per_min, &key, &limits.per_min, &now],
    )
    .await
    .map_err(pg_err)?;
    let rows = tx
        .query(
            &tx.prepare_cached(
                "SELECT key, tokens, at_ms FROM pairing_budgets WHERE key = $1 OR key = $2
             ORDER BY key FOR UPDATE",
            )
            .await
            .map_err(pg_err)?,
            &[&TOTAL, &key],
        )
        .await
        .map_err(pg_err)?;
    let bucket = |k: &str, per_min: f64| {
        rows.iter()
            .find(|r| r.get::<_, &str>(0) == k)
            .map_or(Bucket::full(per_min, now), |r| Bucket {
                tokens: r.get(1),
                at_ms: r.get(2),
            })
    };
    let mut total = bucket(TOTAL, limits.total_per_min);
    let mut address = bucket(&key, limits.per_min);
    let paid = pay(&mut total, &mut address, limits, now);
    for (k, b) in [(TOTAL, total), (key.as_str(), address)] {
        tx.execute(
            &tx.prepare_cached("UPDATE pairing_budgets SET tokens = $2, at_ms = $3 WHERE key = $1")
                .await
                .map_err(pg_err)?,
            &[&k, &b.tokens, &b.at_ms],
        )
        .await
        .map_err(pg_err)?;
    }
    paid
}

/// The side `token` speaks for in a live mailbox, its row locked; a miss is
/// paid for and answers the same whether the number or the token was wrong.
async fn role(
    tx: &Transaction<'_>,
    limits: &MailboxLimits,
    number: u32,
    token: &Token,
    from: ClientAddr,
) -> Result<Found, ApiError> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT inviter_token, joiner_token, inviter_state, joiner_state FROM mailboxes
             WHERE number = $1 AND expires_ms > $2 FOR UPDATE",
            )
            .await
            .map_err(pg_err)?,
            &[&(number as i32), &now_ms()],
        )
        .await
        .map_err(pg_err)?;
    let found = row.and_then(|r| {
        let holds = |t: Option<&[u8]>| t.is_some_and(|t| bool::from(t.ct_eq(&token[..])));
        let role = if holds(Some(r.get(0))) {
            Role::Inviter
        } else if holds(r.get(1)) {
            Role::Joiner
        } else {
            return None;
        };
        Some(Found {
            role,
            inviter: from_row(&r.get::<_, Vec<i16>>(2)),
            joiner: from_row(&r.get::<_, Vec<i16>>(3)),
        })
    });
    match found {
        Some(f) => Ok(f),
        None => {
            attempt(tx, limits, from.0).await?;
            Err(unavailable())
        }
    }
}

async fn notify(tx: &Transaction<'_>, number: u32) -> Result<(), ApiError> {
    tx.execute(
        &tx.prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .map_err(pg_err)?,
        &[&MAILBOX_CHANNEL, &number.to_string()],
    )
    .await
    .map_err(pg_err)?;
    Ok(())
}

#[async_trait]
impl Pairing for PgMailboxes {
    async fn open(&self, space: SpaceId, from: ClientAddr) -> Result<Opened, ApiError> {
        let limits = self.limits;
        self.run(move |tx| {
            Box::pin(async move {
                let now = now_ms();
                tx.execute(
                    &tx.prepare_cached("SELECT pg_advisory_xact_lock($1)")
                        .await
                        .map_err(pg_err)?,
                    &[&OPEN_LOCK],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    &tx.prepare_cached("DELETE FROM mailboxes WHERE expires_ms <= $1")
                        .await
                        .map_err(pg_err)?,
                    &[&now],
                )
                .await
                .map_err(pg_err)?;
                let opener = from.0.to_string();
                let counts = tx
                    .query_one(
                        &tx.prepare_cached(
                            "SELECT COUNT(*), COUNT(*) FILTER (WHERE space = $1),
                                COUNT(*) FILTER (WHERE opener = $2) FROM mailboxes",
                        )
                        .await
                        .map_err(pg_err)?,
                        &[&&space.0[..], &opener],
                    )
                    .await
                    .map_err(pg_err)?;
                let count = |i: usize| counts.get::<_, i64>(i).max(0) as usize;
                if count(0) >= limits.max {
                    return Err(relay_full());
                }
                if count(1) >= limits.per_space {
                    return Err(space_full());
                }
                if count(2) >= limits.per_address {
                    return Err(address_full());
                }
                let token = new_token();
                let expires = now + limits.ttl.as_millis().min(i64::MAX as u128) as i64;
                let empty = to_row(SideState::default());
                let number = loop {
                    let n = random_number();
                    let inserted = tx
                        .execute(
                            &tx.prepare_cached(
                                "INSERT INTO mailboxes (number, space, opener, expires_ms,
                                inviter_token, joiner_token, inviter_state, joiner_state)
                             VALUES ($1, $2, $3, $4, $5, NULL, $6, $6)
                             ON CONFLICT (number) DO NOTHING",
                            )
                            .await
                            .map_err(pg_err)?,
                            &[
                                &(n as i32),
                                &&space.0[..],
                                &opener,
                                &expires,
                                &&token[..],
                                &empty,
                            ],
                        )
                        .await
                        .map_err(pg_err)?;
                    if inserted == 1 {
                        break n;
                    }
                };
                Ok(Opened {
                    number,
                    token: hex::encode(token),
                    expires_in_secs: limits.ttl.as_secs(),
                })
            })
        })
        .await
    }

    async fn join(&self, number: u32, from: ClientAddr, raw: Vec<u8>) -> Result<String, ApiError> {
        check_join(&raw)?;
        let limits = self.limits;
        self.run(move |tx| {
            Box::pin(async move {
                // Every join pays, found or not: that is what makes scanning slow.
                attempt(tx, &limits, from.0).await?;
                let row = tx
                    .query_opt(
                        &tx.prepare_cached("SELECT joiner_token FROM mailboxes
                         WHERE number = $1 AND expires_ms > $2 FOR UPDATE").await.map_err(pg_err)?,
                        &[&(number as i32), &now_ms()],
                    )
                    .await
                    .map_err(pg_err)?
                    .ok_or_else(unavailable)?;
                if row.get::<_, Option<&[u8]>>(0).is_some() {
                    return Err(full());
                }
                let token = new_token();
                tx.execute(
                    &tx.prepare_cached("UPDATE mailboxes SET joiner_token = $2, joiner_state = $3 WHERE number = $1").await.map_err(pg_err)?,
                    &[&(number as i32), &&token[..], &to_row(SideState::JOINED)],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    &tx.prepare_cached("INSERT INTO mailbox_messages (number, side, idx, data) VALUES ($1, 1, 0, $2)").await.map_err(pg_err)?,
                    &[&(number as i32), &raw],
                )
                .await
                .map_err(pg_err)?;
                notify(tx, number).await?;
                Ok(hex::encode(token))
            })
        })
        .await
    }

    async fn post(
        &self,
        number: u32,
        token: &Token,
        from: ClientAddr,
        raw: Vec<u8>,
    ) -> Result<(), ApiError> {
        let msg = decode(&raw)?;
        let (limits, token) = (self.limits, *token);
        self.run(move |tx| {
            Box::pin(async move {
                let found = role(tx, &limits, number, &token, from).await?;
                check_from(&msg, found.role)?;
                let mut side = found.side(found.role);
                side.accept(&msg.payload)?;
                let column = match found.role {
                    Role::Inviter => "inviter_state",
                    Role::Joiner => "joiner_state",
                };
                tx.execute(
                    &format!("UPDATE mailboxes SET {column} = $2 WHERE number = $1"),
                    &[&(number as i32), &to_row(side)],
                )
                .await
                .map_err(pg_err)?;
                tx.execute(
                    &tx.prepare_cached(
                        "INSERT INTO mailbox_messages (number, side, idx, data)
                     SELECT $1, $2, COUNT(*), $3 FROM mailbox_messages
                     WHERE number = $1 AND side = $2",
                    )
                    .await
                    .map_err(pg_err)?,
                    &[&(number as i32), &side_no(found.role), &raw],
                )
                .await
                .map_err(pg_err)?;
                notify(tx, number).await
            })
        })
        .await
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
        let (limits, token) = (self.limits, *token);
        let after = after.min(i32::MAX as usize) as i32;
        loop {
            // Subscribed before looking, so a post in between still wakes us.
            let mut changed = self.changed.subscribe();
            let msgs = self
                .run(move |tx| {
                    Box::pin(async move {
                        let found = role(tx, &limits, number, &token, from).await?;
                        let rows = tx
                            .query(
                                &tx.prepare_cached(
                                    "SELECT data FROM mailbox_messages
                                 WHERE number = $1 AND side = $2 AND idx >= $3 ORDER BY idx",
                                )
                                .await
                                .map_err(pg_err)?,
                                &[&(number as i32), &side_no(found.role.other()), &after],
                            )
                            .await
                            .map_err(pg_err)?;
                        Ok(rows.into_iter().map(|r| r.get(0)).collect::<Vec<Vec<u8>>>())
                    })
                })
                .await?;
            if !msgs.is_empty() || Instant::now() >= deadline {
                return Ok(msgs);
            }
            let until = deadline.min(Instant::now() + POLL);
            let _ = tokio::time::timeout_at(until, async {
                loop {
                    match changed.recv().await {
                        Ok(n) if n == number => break,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => break,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await
                        }
                    }
                }
            })
            .await;
        }
    }

    async fn close(&self, number: u32, token: &Token, from: ClientAddr) -> Result<(), ApiError> {
        let (limits, token) = (self.limits, *token);
        self.run(move |tx| {
            Box::pin(async move {
                role(tx, &limits, number, &token, from).await?;
                tx.execute(
                    &tx.prepare_cached("DELETE FROM mailboxes WHERE number = $1")
                        .await
                        .map_err(pg_err)?,
                    &[&(number as i32)],
                )
                .await
                .map_err(pg_err)?;
                notify(tx, number).await
            })
        })
        .await
    }

    async fn count(&self) -> usize {
        let Ok(client) = self.pg.quick.get().await else {
            return 0;
        };
        client
            .query_one(
                "SELECT COUNT(*) FROM mailboxes WHERE expires_ms > $1",
                &[&now_ms()],
            )
            .await
            .map(|r| r.get::<_, i64>(0).max(0) as usize)
            .unwrap_or(0)
    }
}
