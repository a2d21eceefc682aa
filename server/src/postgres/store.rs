//! The envelope store on PostgreSQL. Every change to a space first locks the
//! space's row, so appends, roster changes, recovery filings and erasure of one
//! space run one at a time whichever instance takes them: cursors grow strictly
//! and commit in order (a pull never sees cursor 10 without 9), duplicates by
//! entry id find the first one, and a revocation and an envelope past it never
//! both land. Different spaces never wait for each other. A request is answered
//! only after its transaction committed on the durable pool (the WAL flushed);
//! PostgreSQL already groups the flushes of commits that arrive together.

use async_trait::async_trait;
use attune_proto::{DeviceId, Hash32, SpaceId};
use deadpool_postgres::Transaction;
use tokio_postgres::error::SqlState;

use super::{db_error, internal, pool_error, Pg, SPACES_CHANNEL};
use crate::store::{
    FoundRecovery, NewEnvelope, NewHeld, Placed, Pulled, RecoveryBundle, RosterAppend, Store,
    StoreError,
};

/// Numbered migrations; `attune_schema` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: everything the SQLite engine keeps, in one go.
    "CREATE TABLE spaces (
        id BYTEA PRIMARY KEY,
        next_cursor BIGINT NOT NULL,
        bytes_used BIGINT NOT NULL
     );
     CREATE TABLE roster (
        space BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        event BYTEA NOT NULL,
        PRIMARY KEY (space, seq)
     );
     -- Envelopes (2.3 KB padded) stay in the table's own pages instead of
     -- TOAST, and nobody tries to compress ciphertext.
     CREATE TABLE envelopes (
        space BYTEA NOT NULL,
        cursor BIGINT NOT NULL,
        author BYTEA NOT NULL,
        seq BIGINT NOT NULL,
        hash BYTEA NOT NULL,
        entry BYTEA NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (space, cursor)
     ) WITH (toast_tuple_target = 8160);
     ALTER TABLE envelopes ALTER COLUMN data SET STORAGE EXTERNAL;
     CREATE UNIQUE INDEX envelopes_entry ON envelopes (space, entry);
     CREATE UNIQUE INDEX envelopes_chain ON envelopes (space, author, seq);
     CREATE TABLE revoked (
        space BYTEA NOT NULL,
        device BYTEA NOT NULL,
        last_seq BIGINT NOT NULL,
        PRIMARY KEY (space, device)
     );
     CREATE TABLE held (
        space BYTEA NOT NULL,
        cursor BIGINT NOT NULL,
        entry BYTEA NOT NULL,
        exchange BYTEA NOT NULL,
        member BYTEA NOT NULL,
        data BYTEA NOT NULL,
        released BIGINT,
        PRIMARY KEY (space, cursor)
     );
     CREATE INDEX held_exchange ON held (space, exchange);
     CREATE TABLE releases (
        space BYTEA NOT NULL,
        cursor BIGINT NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (space, cursor)
     );
     CREATE TABLE recovery (
        lookup BYTEA PRIMARY KEY,
        space BYTEA NOT NULL,
        device BYTEA NOT NULL,
        bundle BYTEA NOT NULL
     );
     CREATE UNIQUE INDEX recovery_device ON recovery (space, device);",
    // 2: what one process used to keep in memory, shared by every instance.
    "CREATE TABLE replay (
        signature BYTEA PRIMARY KEY,
        expires_ms BIGINT NOT NULL
     );
     CREATE INDEX replay_expires ON replay (expires_ms);
     CREATE TABLE rate_limits (
        key BYTEA PRIMARY KEY,
        tat_ms DOUBLE PRECISION NOT NULL
     );
     CREATE TABLE mailboxes (
        number INTEGER PRIMARY KEY,
        space BYTEA NOT NULL,
        opener TEXT NOT NULL,
        expires_ms BIGINT NOT NULL,
        inviter_token BYTEA NOT NULL,
        joiner_token BYTEA,
        inviter_state SMALLINT[] NOT NULL,
        joiner_state SMALLINT[] NOT NULL
     );
     CREATE TABLE mailbox_messages (
        number INTEGER NOT NULL REFERENCES mailboxes ON DELETE CASCADE,
        side SMALLINT NOT NULL,
        idx INTEGER NOT NULL,
        data BYTEA NOT NULL,
        PRIMARY KEY (number, side, idx)
     );
     CREATE TABLE pairing_budgets (
        key TEXT PRIMARY KEY,
        tokens DOUBLE PRECISION NOT NULL,
        at_ms BIGINT NOT NULL
     );",
];

/// Taken while migrating, so instances starting together migrate once.
const MIGRATION_LOCK: i64 = 0x6174_7475_6e65;

pub(crate) async fn migrate(pg: &Pg) -> Result<(), StoreError> {
    let mut client = pg.durable.get().await.map_err(pool_error)?;
    let tx = client.transaction().await.map_err(|e| db_error(&e))?;
    tx.execute(
        &tx.prepare_cached("SELECT pg_advisory_xact_lock($1)")
            .await
            .map_err(err)?,
        &[&MIGRATION_LOCK],
    )
    .await
    .map_err(|e| db_error(&e))?;
    // Looked up rather than `IF NOT EXISTS`, whose notice the driver would log.
    let exists: bool = tx
        .query_one("SELECT to_regclass('attune_schema') IS NOT NULL", &[])
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    if !exists {
        tx.batch_execute("CREATE TABLE attune_schema (version INTEGER NOT NULL)")
            .await
            .map_err(|e| db_error(&e))?;
    }
    let done: i32 = tx
        .query_one(
            &tx.prepare_cached("SELECT COALESCE(MAX(version), 0) FROM attune_schema")
                .await
                .map_err(err)?,
            &[],
        )
        .await
        .map_err(|e| db_error(&e))?
        .get(0);
    if done as usize > MIGRATIONS.len() {
        return Err(StoreError::Internal(format!(
            "the database was made by a newer attune-relay (schema {done}; this one knows {})",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
        tx.batch_execute(sql).await.map_err(|e| db_error(&e))?;
        tx.execute(
            &tx.prepare_cached("INSERT INTO attune_schema (version) VALUES ($1)")
                .await
                .map_err(err)?,
            &[&(i as i32 + 1)],
        )
        .await
        .map_err(|e| db_error(&e))?;
    }
    tx.commit().await.map_err(|e| db_error(&e))
}

fn err(e: tokio_postgres::Error) -> StoreError {
    db_error(&e)
}

/// The PostgreSQL store: the durable pool of a [`Pg`].
#[derive(Debug, Clone)]
pub struct PgStore {
    pg: Pg,
}

impl PgStore {
    pub fn new(pg: Pg) -> Self {
        Self { pg }
    }

    /// Runs `f` in a transaction on the durable pool and commits it.
    async fn write<T, F>(&self, f: F) -> Result<T, StoreError>
    where
        F: for<'a> FnOnce(
                &'a Transaction<'a>,
            ) -> std::pin::Pin<
                Box<dyn std::future::Future<Output = Result<T, StoreError>> + Send + 'a>,
            > + Send,
        T: Send,
    {
        let mut client = self.pg.durable.get().await.map_err(pool_error)?;
        let tx = client.transaction().await.map_err(err)?;
        let out = f(&tx).await?;
        tx.commit().await.map_err(err)?;
        Ok(out)
    }
}

/// Locks the space's row for the rest of the transaction: `(next_cursor,
/// bytes_used)`, or `NoSpace`.
async fn lock_space(tx: &Transaction<'_>, space: &SpaceId) -> Result<(i64, i64), StoreError> {
    let row = tx
        .query_opt(
            &tx.prepare_cached(
                "SELECT next_cursor, bytes_used FROM spaces WHERE id = $1 FOR UPDATE",
            )
            .await
            .map_err(err)?,
            &[&&space.0[..]],
        )
        .await
        .map_err(err)?
        .ok_or(StoreError::NoSpace)?;
    Ok((row.get(0), row.get(1)))
}

async fn append_roster(
    tx: &Transaction<'_>,
    space: SpaceId,
    append: &RosterAppend,
) -> Result<(), StoreError> {
    let s = &space.0[..];
    let (_, used) = lock_space(tx, &space).await?;
    let last: Option<i64> = tx
        .query_one(
            &tx.prepare_cached("SELECT MAX(seq) FROM roster WHERE space = $1")
                .await
                .map_err(err)?,
            &[&s],
        )
        .await
        .map_err(err)?
        .get(0);
    let last = last.ok_or(StoreError::NoSpace)? as u64;
    if last + 1 != append.first_seq {
        return Err(StoreError::RosterConflict {
            seq: append.first_seq,
        });
    }
    for &(device, last_seq) in &append.revokes {
        let d = &device.0[..];
        let head: Option<i64> = tx
            .query_one(
                &tx.prepare_cached(
                    "SELECT MAX(seq) FROM envelopes WHERE space = $1 AND author = $2",
                )
                .await
                .map_err(err)?,
                &[&s, &d],
            )
            .await
            .map_err(err)?
            .get(0);
        let head = head.unwrap_or(0) as u64;
        if last_seq < head {
            return Err(StoreError::RevokeBelowHead {
                device,
                head,
                last_seq,
            });
        }
        tx.execute(
            &tx.prepare_cached("INSERT INTO revoked (space, device, last_seq) VALUES ($1, $2, $3)")
                .await
                .map_err(err)?,
            &[&s, &d, &(last_seq as i64)],
        )
        .await
        .map_err(err)?;
        tx.execute(
            &tx.prepare_cached("DELETE FROM recovery WHERE space = $1 AND device = $2")
                .await
                .map_err(err)?,
            &[&s, &d],
        )
        .await
        .map_err(err)?;
    }
    let added: i64 = append.events.iter().map(|e| e.len() as i64).sum();
    if (used + added) as u64 > append.quota {
        return Err(StoreError::Quota {
            quota: append.quota,
        });
    }
    tx.execute(
        &tx.prepare_cached("UPDATE spaces SET bytes_used = $2 WHERE id = $1")
            .await
            .map_err(err)?,
        &[&s, &(used + added)],
    )
    .await
    .map_err(err)?;
    for (i, ev) in append.events.iter().enumerate() {
        tx.execute(
            &tx.prepare_cached("INSERT INTO roster (space, seq, event) VALUES ($1, $2, $3)")
                .await
                .map_err(err)?,
            &[&s, &((append.first_seq + i as u64) as i64), &&ev[..]],
        )
        .await
        .map_err(err)?;
    }
    Ok(())
}

async fn append(
    tx: &Transaction<'_>,
    space: SpaceId,
    envelopes: &[NewEnvelope],
    quota: u64,
) -> Result<Vec<Placed>, StoreError> {
    use std::collections::HashMap;
    let s = &space.0[..];
    let (mut next_cursor, mut used) = lock_space(tx, &space).await?;
    // What the batch's entry ids already hold, in one round trip.
    let entries: Vec<&[u8]> = envelopes.iter().map(|e| &e.entry.0[..]).collect();
    let stored: HashMap<Vec<u8>, (i64, Vec<u8>)> = tx
        .query(
            &tx.prepare_cached(
                "SELECT entry, cursor, data FROM envelopes WHERE space = $1 AND entry = ANY($2)",
            )
            .await
            .map_err(err)?,
            &[&s, &entries],
        )
        .await
        .map_err(err)?
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect();
    let last_of_author = tx
        .prepare_cached(
            "SELECT seq, hash FROM envelopes WHERE space = $1 AND author = $2
             ORDER BY seq DESC LIMIT 1",
        )
        .await
        .map_err(err)?;
    let revoked_after = tx
        .prepare_cached("SELECT last_seq FROM revoked WHERE space = $1 AND device = $2")
        .await
        .map_err(err)?;
    // Per author, read once a batch: the chain's head (updated as the batch
    // goes) and where a revocation ends it.
    let mut heads: HashMap<DeviceId, (u64, Hash32, Option<u64>)> = HashMap::new();
    let mut new_entries: HashMap<&[u8], usize> = HashMap::new();
    let mut out = Vec::with_capacity(envelopes.len());
    let mut rows: Vec<(i64, &NewEnvelope)> = Vec::with_capacity(envelopes.len());
    for (index, env) in envelopes.iter().enumerate() {
        let entry = &env.entry.0[..];
        if let Some((cursor, data)) = stored.get(entry) {
            if *data != env.bytes {
                return Err(StoreError::EntryReused { index });
            }
            out.push(Placed {
                cursor: *cursor as u64,
                duplicate: true,
            });
            continue;
        }
        if let Some(&earlier) = new_entries.get(entry) {
            // The same entry twice in one batch: the first one stands.
            let (cursor, first) = rows[earlier];
            if first.bytes != env.bytes {
                return Err(StoreError::EntryReused { index });
            }
            out.push(Placed {
                cursor: cursor as u64,
                duplicate: true,
            });
            continue;
        }
        let (last_seq, last_hash, revoked) = match heads.get(&env.author) {
            Some(h) => *h,
            None => {
                let d = &env.author.0[..];
                let (seq, hash) = match tx
                    .query_opt(&last_of_author, &[&s, &d])
                    .await
                    .map_err(err)?
                {
                    Some(row) => {
                        let hash: &[u8] = row.get(1);
                        let hash = Hash32(hash.try_into().map_err(|_| internal("chain hash"))?);
                        (row.get::<_, i64>(0) as u64, hash)
                    }
                    None => (0, Hash32::ZERO),
                };
                let revoked: Option<i64> = tx
                    .query_opt(&revoked_after, &[&s, &d])
                    .await
                    .map_err(err)?
                    .map(|r| r.get(0));
                (seq, hash, revoked.map(|l| l as u64))
            }
        };
        if env.seq != last_seq + 1 {
            return Err(StoreError::Sequence {
                index,
                expected: last_seq + 1,
                found: env.seq,
            });
        }
        if env.prev != last_hash {
            return Err(StoreError::Chain { index });
        }
        if revoked.is_some_and(|last| env.seq > last) {
            return Err(StoreError::Revoked { index });
        }
        used += env.bytes.len() as i64;
        if used as u64 > quota {
            return Err(StoreError::Quota { quota });
        }
        heads.insert(env.author, (env.seq, env.hash, revoked));
        new_entries.insert(entry, rows.len());
        rows.push((next_cursor, env));
        out.push(Placed {
            cursor: next_cursor as u64,
            duplicate: false,
        });
        next_cursor += 1;
    }
    insert_envelopes(tx, s, &rows).await?;
    // Hold slots: kept once per envelope (a retried batch adds nothing), then
    // released where two members have one under the same tag.
    // One slot per cursor: an entry sent twice in a batch keeps its first.
    let mut seen = std::collections::HashSet::new();
    let holds: Vec<(i64, &NewEnvelope, &NewHeld)> = envelopes
        .iter()
        .zip(&out)
        .filter_map(|(env, placed)| env.held.as_ref().map(|h| (placed.cursor as i64, env, h)))
        .filter(|(cursor, _, _)| seen.insert(*cursor))
        .collect();
    let kept = insert_holds(tx, s, &holds).await?;
    let mut exchanges = Vec::new();
    for (cursor, _, h) in &holds {
        if kept.contains(cursor) {
            used += h.bytes.len() as i64;
            if used as u64 > quota {
                return Err(StoreError::Quota { quota });
            }
            exchanges.push(h.tag);
        }
    }
    for exchange in exchanges {
        next_cursor = release(tx, s, &exchange, next_cursor).await?;
    }
    tx.execute(
        &tx.prepare_cached("UPDATE spaces SET next_cursor = $2, bytes_used = $3 WHERE id = $1")
            .await
            .map_err(err)?,
        &[&s, &next_cursor, &used],
    )
    .await
    .map_err(err)?;
    if out.iter().any(|p| !p.duplicate) {
        // Delivered to every instance's listener when (and only if) this commits.
        tx.execute(
            &tx.prepare_cached("SELECT pg_notify($1, $2)")
                .await
                .map_err(err)?,
            &[
                &SPACES_CHANNEL,
                &format!("{}:{}", hex::encode(s), next_cursor - 1),
            ],
        )
        .await
        .map_err(err)?;
    }
    Ok(out)
}

/// A batch's new envelopes in one statement (arrays unnested), whatever its size.
async fn insert_envelopes(
    tx: &Transaction<'_>,
    space: &[u8],
    rows: &[(i64, &NewEnvelope)],
) -> Result<(), StoreError> {
    if rows.is_empty() {
        return Ok(());
    }
    let cursors: Vec<i64> = rows.iter().map(|(c, _)| *c).collect();
    let authors: Vec<&[u8]> = rows.iter().map(|(_, e)| &e.author.0[..]).collect();
    let seqs: Vec<i64> = rows.iter().map(|(_, e)| e.seq as i64).collect();
    let hashes: Vec<&[u8]> = rows.iter().map(|(_, e)| &e.hash.0[..]).collect();
    let entries: Vec<&[u8]> = rows.iter().map(|(_, e)| &e.entry.0[..]).collect();
    let data: Vec<&[u8]> = rows.iter().map(|(_, e)| &e.bytes[..]).collect();
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
             SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BIGINT[], $5::BYTEA[],
                                      $6::BYTEA[], $7::BYTEA[])",
        )
        .await
        .map_err(err)?,
        &[&space, &cursors, &authors, &seqs, &hashes, &entries, &data],
    )
    .await
    .map_err(err)?;
    Ok(())
}

/// A batch's hold slots in one statement; the cursors of those newly kept (a
/// retried envelope's slot is there already).
async fn insert_holds(
    tx: &Transaction<'_>,
    space: &[u8],
    holds: &[(i64, &NewEnvelope, &NewHeld)],
) -> Result<std::collections::HashSet<i64>, StoreError> {
    if holds.is_empty() {
        return Ok(Default::default());
    }
    let cursors: Vec<i64> = holds.iter().map(|(c, _, _)| *c).collect();
    let entries: Vec<&[u8]> = holds.iter().map(|(_, e, _)| &e.entry.0[..]).collect();
    let tags: Vec<&[u8]> = holds.iter().map(|(_, _, h)| &h.tag[..]).collect();
    let members: Vec<&[u8]> = holds.iter().map(|(_, _, h)| &h.member.0[..]).collect();
    let data: Vec<&[u8]> = holds.iter().map(|(_, _, h)| &h.bytes[..]).collect();
    let kept = tx
        .query(
            &tx.prepare_cached(
                "INSERT INTO held (space, cursor, entry, exchange, member, data)
                 SELECT $1, * FROM UNNEST($2::BIGINT[], $3::BYTEA[], $4::BYTEA[], $5::BYTEA[],
                                          $6::BYTEA[])
                 ON CONFLICT (space, cursor) DO NOTHING RETURNING cursor",
            )
            .await
            .map_err(err)?,
            &[&space, &cursors, &entries, &tags, &members, &data],
        )
        .await
        .map_err(err)?;
    Ok(kept.into_iter().map(|r| r.get(0)).collect())
}

/// Releases an exchange's slots once two members have one there, each at the
/// next cursor (in the order of their random entry ids, as the SQLite engine
/// does). Returns the next free cursor.
async fn release(
    tx: &Transaction<'_>,
    space: &[u8],
    exchange: &[u8],
    mut next_cursor: i64,
) -> Result<i64, StoreError> {
    let members: i64 = tx
        .query_one(
            &tx.prepare_cached(
                "SELECT COUNT(DISTINCT member) FROM held WHERE space = $1 AND exchange = $2",
            )
            .await
            .map_err(err)?,
            &[&space, &exchange],
        )
        .await
        .map_err(err)?
        .get(0);
    if members < 2 {
        return Ok(next_cursor);
    }
    let waiting = tx
        .query(
            &tx.prepare_cached(
                "SELECT cursor, data FROM held
             WHERE space = $1 AND exchange = $2 AND released IS NULL ORDER BY entry",
            )
            .await
            .map_err(err)?,
            &[&space, &exchange],
        )
        .await
        .map_err(err)?;
    for row in waiting {
        let cursor: i64 = row.get(0);
        let data: &[u8] = row.get(1);
        tx.execute(
            &tx.prepare_cached("INSERT INTO releases (space, cursor, data) VALUES ($1, $2, $3)")
                .await
                .map_err(err)?,
            &[&space, &next_cursor, &data],
        )
        .await
        .map_err(err)?;
        tx.execute(
            &tx.prepare_cached("UPDATE held SET released = $3 WHERE space = $1 AND cursor = $2")
                .await
                .map_err(err)?,
            &[&space, &cursor, &next_cursor],
        )
        .await
        .map_err(err)?;
        next_cursor += 1;
    }
    Ok(next_cursor)
}

async fn put_recovery(
    tx: &Transaction<'_>,
    space: SpaceId,
    b: &RecoveryBundle,
) -> Result<(), StoreError> {
    let (s, d) = (&space.0[..], &b.device.0[..]);
    lock_space(tx, &space).await?;
    let revoked = tx
        .query_opt(
            &tx.prepare_cached("SELECT 1 FROM revoked WHERE space = $1 AND device = $2")
                .await
                .map_err(err)?,
            &[&s, &d],
        )
        .await
        .map_err(err)?;
    if revoked.is_some() {
        return Err(StoreError::Revoked { index: 0 });
    }
    tx.execute(
        &tx.prepare_cached("DELETE FROM recovery WHERE space = $1 AND device = $2")
            .await
            .map_err(err)?,
        &[&s, &d],
    )
    .await
    .map_err(err)?;
    tx.execute(
        &tx.prepare_cached(
            "INSERT INTO recovery (lookup, space, device, bundle) VALUES ($1, $2, $3, $4)",
        )
        .await
        .map_err(err)?,
        &[&&b.lookup.0[..], &s, &d, &&b.bundle[..]],
    )
    .await
    .map_err(|e| {
        if e.code() == Some(&SqlState::UNIQUE_VIOLATION) {
            StoreError::RecoveryExists
        } else {
            err(e)
        }
    })?;
    Ok(())
}

async fn delete_space(tx: &Transaction<'_>, space: SpaceId) -> Result<bool, StoreError> {
    let s = &space.0[..];
    match lock_space(tx, &space).await {
        Ok(_) => {}
        Err(StoreError::NoSpace) => return Ok(false),
        Err(e) => return Err(e),
    }
    for table in [
        "roster",
        "revoked",
        "envelopes",
        "held",
        "releases",
        "recovery",
    ] {
        tx.execute(&format!("DELETE FROM {table} WHERE space = $1"), &[&s])
            .await
            .map_err(err)?;
    }
    tx.execute(
        &tx.prepare_cached("DELETE FROM spaces WHERE id = $1")
            .await
            .map_err(err)?,
        &[&s],
    )
    .await
    .map_err(err)?;
    // Streams on every instance look again, and end: the space is gone.
    tx.execute(
        &tx.prepare_cached("SELECT pg_notify($1, $2)")
            .await
            .map_err(err)?,
        &[&SPACES_CHANNEL, &format!("{}:0", hex::encode(s))],
    )
    .await
    .map_err(err)?;
    Ok(true)
}

#[async_trait]
impl Store for PgStore {
    async fn create_space(&self, space: SpaceId, event: Vec<u8>) -> Result<(), StoreError> {
        self.write(move |tx| {
            Box::pin(async move {
                let s = &space.0[..];
                let n = tx
                    .execute(
                        &tx.prepare_cached(
                            "INSERT INTO spaces (id, next_cursor, bytes_used) VALUES ($1, 1, $2)
                         ON CONFLICT (id) DO NOTHING",
                        )
                        .await
                        .map_err(err)?,
                        &[&s, &(event.len() as i64)],
                    )
                    .await
                    .map_err(err)?;
                if n == 0 {
                    return Err(StoreError::SpaceExists);
                }
                tx.execute(
                    &tx.prepare_cached("INSERT INTO roster (space, seq, event) VALUES ($1, 1, $2)")
                        .await
                        .map_err(err)?,
                    &[&s, &&event[..]],
                )
                .await
                .map_err(err)?;
                Ok(())
            })
        })
        .await
    }

    async fn append_roster(&self, space: SpaceId, append: RosterAppend) -> Result<(), StoreError> {
        self.write(move |tx| Box::pin(async move { append_roster(tx, space, &append).await }))
            .await
    }

    async fn roster(&self, space: SpaceId) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        let client = self.pg.durable.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &client
                    .prepare_cached("SELECT event FROM roster WHERE space = $1 ORDER BY seq")
                    .await
                    .map_err(err)?,
                &[&&space.0[..]],
            )
            .await
            .map_err(err)?;
        let events: Vec<Vec<u8>> = rows.iter().map(|r| r.get(0)).collect();
        Ok((!events.is_empty()).then_some(events))
    }

    async fn roster_len(&self, space: SpaceId) -> Result<Option<usize>, StoreError> {
        let client = self.pg.durable.get().await.map_err(pool_error)?;
        let n: i64 = client
            .query_one(
                &client
                    .prepare_cached("SELECT COUNT(*) FROM roster WHERE space = $1")
                    .await
                    .map_err(err)?,
                &[&&space.0[..]],
            )
            .await
            .map_err(err)?
            .get(0);
        Ok((n > 0).then_some(n as usize))
    }

    fn shared(&self) -> bool {
        true
    }

    async fn append_envelopes(
        &self,
        space: SpaceId,
        envelopes: Vec<NewEnvelope>,
        quota: u64,
    ) -> Result<Vec<Placed>, StoreError> {
        self.write(move |tx| Box::pin(async move { append(tx, space, &envelopes, quota).await }))
            .await
    }

    async fn pull(
        &self,
        space: SpaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Pulled>, StoreError> {
        let client = self.pg.durable.get().await.map_err(pool_error)?;
        let rows = client
            .query(
                &client
                    .prepare_cached(
                        "(SELECT cursor, data, false FROM envelopes WHERE space = $1 AND cursor > $2
                   ORDER BY cursor LIMIT $3)
                 UNION ALL
                 (SELECT cursor, data, true FROM releases WHERE space = $1 AND cursor > $2
                   ORDER BY cursor LIMIT $3)
                 ORDER BY 1 LIMIT $3",
                    )
                    .await
                    .map_err(err)?,
                &[
                    &&space.0[..],
                    &(after.min(i64::MAX as u64) as i64),
                    &(limit.min(i64::MAX as usize) as i64),
                ],
            )
            .await
            .map_err(err)?;
        Ok(rows
            .into_iter()
            .map(|r| Pulled {
                cursor: r.get::<_, i64>(0) as u64,
                bytes: r.get(1),
                reveal: r.get(2),
            })
            .collect())
    }

    async fn delete_space(&self, space: SpaceId) -> Result<bool, StoreError> {
        self.write(move |tx| Box::pin(async move { delete_space(tx, space).await }))
            .await
    }

    async fn put_recovery(&self, space: SpaceId, bundle: RecoveryBundle) -> Result<(), StoreError> {
        self.write(move |tx| Box::pin(async move { put_recovery(tx, space, &bundle).await }))
            .await
    }

    async fn recovery(&self, lookup: Hash32) -> Result<Option<FoundRecovery>, StoreError> {
        let client = self.pg.durable.get().await.map_err(pool_error)?;
        let row = client
            .query_opt(
                &client
                    .prepare_cached(
                        "SELECT r.space, r.device, r.bundle FROM recovery r
                 WHERE r.lookup = $1 AND NOT EXISTS
                   (SELECT 1 FROM revoked v WHERE v.space = r.space AND v.device = r.device)",
                    )
                    .await
                    .map_err(err)?,
                &[&&lookup.0[..]],
            )
            .await
            .map_err(err)?;
        row.map(|r| {
            let space: Vec<u8> = r.get(0);
            let device: Vec<u8> = r.get(1);
            Ok(FoundRecovery {
                space: SpaceId(space.try_into().map_err(|_| internal("space id"))?),
                device: DeviceId(device.try_into().map_err(|_| internal("device id"))?),
                bundle: r.get(2),
            })
        })
        .transpose()
    }
}
