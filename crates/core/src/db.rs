//! The device's local state, in SQLite: the roster, the outbox of sealed envelopes
//! waiting to be sent, and every envelope received, all as ciphertext. Content is
//! decrypted only when read, and never written back in the clear.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use thiserror::Error;

#[derive(Debug, Error)]
#[error("local database: {0}")]
pub struct DbError(#[from] rusqlite::Error);

const MIGRATIONS: &[&str] = &[
    // 1: the first schema.
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
     CREATE TABLE roster (seq INTEGER PRIMARY KEY, event BLOB NOT NULL);
     CREATE TABLE outbox (
        seq INTEGER PRIMARY KEY,
        entry BLOB NOT NULL UNIQUE,
        envelope BLOB NOT NULL,
        queued_at INTEGER NOT NULL
     );
     CREATE TABLE received (
        cursor INTEGER PRIMARY KEY,
        envelope BLOB NOT NULL,
        received_at INTEGER NOT NULL
     );",
    // 2: own envelopes stay after the relay's ack, so they stay readable here.
    "ALTER TABLE outbox ADD COLUMN acked INTEGER NOT NULL DEFAULT 0;",
    // 3: items held back for a cool-off, sealed under the member-private key.
    "CREATE TABLE later (
        id TEXT PRIMARY KEY,
        send_at INTEGER NOT NULL,
        private INTEGER NOT NULL,
        blob BLOB NOT NULL
     );",
    // 4: when the relay acknowledged each own envelope (to tell the writer when the
    // partner synced after it and still had not received it).
    "ALTER TABLE outbox ADD COLUMN acked_at INTEGER;",
    // 5: the incremental verified store (store.rs): each envelope verified once, on
    // arrival; what commands need to find items, never their content.
    "CREATE TABLE items (
        entry TEXT PRIMARY KEY,
        author BLOB NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        cursor INTEGER,
        own_seq INTEGER,
        mine INTEGER NOT NULL,
        private INTEGER NOT NULL,
        readable INTEGER NOT NULL,
        at INTEGER,
        kind TEXT,
        link TEXT
     );
     CREATE UNIQUE INDEX items_chain ON items (author, seq);
     CREATE INDEX items_at ON items (at);
     CREATE INDEX items_link ON items (link);
     CREATE INDEX items_kind ON items (kind, mine);
     CREATE INDEX items_cursor ON items (cursor);
     CREATE TABLE chains (
        device BLOB PRIMARY KEY,
        head_seq INTEGER NOT NULL,
        head_hash BLOB NOT NULL,
        max_seen INTEGER NOT NULL
     );
     CREATE TABLE chain_pending (
        device BLOB NOT NULL,
        seq INTEGER NOT NULL,
        cursor INTEGER NOT NULL,
        PRIMARY KEY (device, seq)
     );
     CREATE TABLE problems (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        detail TEXT NOT NULL,
        cursor INTEGER
     );
     CREATE TABLE roster_claims (
        len INTEGER NOT NULL,
        hash TEXT NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (len, hash)
     );
     CREATE TABLE dirty_links (link TEXT PRIMARY KEY);",
    // 6: held reveals (PROTOCOL.md §9): the one sent with an own sealed answer,
    // and those the relay released (they share cursors with envelopes).
    "ALTER TABLE outbox ADD COLUMN held BLOB;
     CREATE TABLE released (
        cursor INTEGER PRIMARY KEY,
        exchange TEXT,
        blob BLOB NOT NULL
     );
     CREATE INDEX released_exchange ON released (exchange);",
    // 7: indexes that keep commands independent of the history's size: own
    // envelopes not acknowledged yet, and items by kind and time.
    "CREATE INDEX outbox_unacked ON outbox (seq) WHERE acked = 0;
     DROP INDEX items_kind;
     CREATE INDEX items_kind ON items (kind, mine, at);",
    // 8: when this device first stored each roster event (protocol 2 events
    // carry no time of their own; the relay does not learn the signer's clock).
    "ALTER TABLE roster ADD COLUMN stored_at INTEGER;",
];

/// A roster event as stored, with when this device first stored it (`None`
/// for events stored before that was recorded).
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub event: Vec<u8>,
    pub stored_at: Option<i64>,
}

/// An unsent own envelope sealed again (`upgrade.rs`): its new bytes and hash,
/// and the hold slot that goes with it.
#[derive(Debug, Clone)]
pub struct Resealed {
    pub seq: u64,
    pub envelope: Vec<u8>,
    pub hash: attune_proto::Hash32,
    pub held: Option<Vec<u8>>,
}

/// An item held back for a cool-off: (id, send_at, private, sealed blob).
pub type Held = (String, i64, bool, Vec<u8>);

#[derive(Debug)]
pub struct LocalDb {
    conn: Connection,
}

/// One outbox row: an own envelope, sealed; kept after the relay's ack so it stays
/// readable here before it comes back in a pull.
#[derive(Debug, Clone)]
pub struct Queued {
    pub seq: u64,
    pub envelope: Vec<u8>,
    /// The held reveal that goes with it (a sealed answer's), if any.
    pub held: Option<Vec<u8>>,
}

/// What a pull brought at one cursor.
#[derive(Debug, Clone)]
pub enum Incoming {
    Envelope(Vec<u8>),
    /// A held reveal the relay released.
    Reveal(Vec<u8>),
}

impl LocalDb {
    pub fn open(path: &Path) -> Result<Self, DbError> {
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // A larger page cache (grown only as used) and reads through a memory
        // map: commands touch index pages all over a large history. A device's
        // first sync turns both down (`Self::lean`).
        conn.execute_batch(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA cache_size=-32768; PRAGMA mmap_size=1073741824;",
        )?;
        let done: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
        for (i, sql) in MIGRATIONS.iter().enumerate().skip(done as usize) {
            let tx = conn.transaction()?;
            tx.execute_batch(sql)?;
            tx.pragma_update(None, "user_version", (i + 1) as i64)?;
            tx.commit()?;
        }
        Ok(Self { conn })
    }

    /// Stops commits on this connection from waiting for the disk (`PRAGMA
    /// synchronous=OFF`; the setting is not stored). Only for writing a
    /// throwaway profile in bulk, as the history generator does: a crash may
    /// then lose or corrupt the profile. Never for a real one.
    pub fn without_durability(&self) -> Result<(), DbError> {
        self.conn.execute_batch("PRAGMA synchronous=OFF;")?;
        Ok(())
    }

    /// No memory map and a page cache of at most 8 MiB (`lean`), or the
    /// settings the connection was opened with: a device's first sync writes
    /// and reads back the whole history, hundreds of MB, and mapped pages (or
    /// a large cache) would all count in its resident memory. What the cache
    /// misses is read from the kernel's page cache, which is cheap.
    pub(crate) fn lean(&self, lean: bool) -> Result<(), DbError> {
        self.conn.execute_batch(if lean {
            "PRAGMA cache_size=-8192; PRAGMA mmap_size=0;"
        } else {
            "PRAGMA cache_size=-32768; PRAGMA mmap_size=1073741824;"
        })?;
        Ok(())
    }

    /// Lets commits on this connection return before the disk has them
    /// (`PRAGMA synchronous=NORMAL`; the setting is not stored). Under WAL a
    /// power loss may then roll back the last commits, whole and in commit
    /// order, never corrupt the database: only for what can be fetched again
    /// and is stored with its resume point in the same transaction (a pull).
    /// The next commit at full durability makes them durable too.
    pub(crate) fn relax_durability(&self) -> Result<(), DbError> {
        self.conn.execute_batch("PRAGMA synchronous=NORMAL;")?;
        Ok(())
    }

    /// Commits wait for the disk again (`PRAGMA synchronous=FULL`, as opened).
    pub(crate) fn full_durability(&self) -> Result<(), DbError> {
        self.conn.execute_batch("PRAGMA synchronous=FULL;")?;
        Ok(())
    }

    /// Whether commits on this connection wait for the disk (`FULL` or `EXTRA`).
    pub fn fully_durable(&self) -> Result<bool, DbError> {
        let level: i64 = self
            .conn
            .query_row("PRAGMA synchronous", [], |r| r.get(0))?;
        Ok(level >= 2)
    }

    /// The connection, for the store's own queries (store.rs).
    pub(crate) fn conn(&self) -> &Connection {
        &self.conn
    }

    /// Own envelopes after sequence number `seq`, in order.
    pub fn own_after(&self, seq: u64) -> Result<Vec<Queued>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT seq, envelope, held FROM outbox WHERE seq > ?1 ORDER BY seq")?;
        let rows = stmt
            .query_map([seq as i64], |r| {
                Ok(Queued {
                    seq: r.get::<_, i64>(0)? as u64,
                    envelope: r.get(1)?,
                    held: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// The highest own sequence number written (0 before any).
    pub fn own_max_seq(&self) -> Result<u64, DbError> {
        let m: Option<i64> = self
            .conn
            .query_row("SELECT MAX(seq) FROM outbox", [], |r| r.get(0))?;
        Ok(m.unwrap_or(0) as u64)
    }

    /// One own envelope by sequence number.
    pub fn own_envelope(&self, seq: u64) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .conn
            .prepare_cached("SELECT envelope FROM outbox WHERE seq = ?1")?
            .query_row([seq as i64], |r| r.get(0))
            .optional()?)
    }

    /// One received envelope by cursor.
    pub fn received_at(&self, cursor: u64) -> Result<Option<Vec<u8>>, DbError> {
        Ok(self
            .conn
            .prepare_cached("SELECT envelope FROM received WHERE cursor = ?1")?
            .query_row([cursor as i64], |r| r.get(0))
            .optional()?)
    }

    /// Up to `limit` received envelopes after `cursor`, in cursor order, and no
    /// more than `max_bytes` of them (but at least one).
    pub fn received_after(
        &self,
        cursor: u64,
        limit: i64,
        max_bytes: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cursor, envelope FROM received WHERE cursor > ?1 ORDER BY cursor LIMIT ?2",
        )?;
        let mut rows = stmt.query(params![cursor as i64, limit])?;
        let mut out: Vec<(u64, Vec<u8>)> = Vec::new();
        let mut bytes = 0;
        while let Some(r) = rows.next()? {
            let env: Vec<u8> = r.get(1)?;
            bytes += env.len();
            if bytes > max_bytes && !out.is_empty() {
                break;
            }
            out.push((r.get::<_, i64>(0)? as u64, env));
        }
        Ok(out)
    }

    /// The released held reveals filed under these exchanges (version 1) or
    /// sealed answers (version 2): (cursor, blob).
    pub fn released_for(&self, exchanges: &[String]) -> Result<Vec<(u64, Vec<u8>)>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT cursor, blob FROM released WHERE exchange = ?1 ORDER BY cursor",
        )?;
        let mut out = Vec::new();
        for x in exchanges {
            let rows = stmt
                .query_map([x], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
                .collect::<Result<Vec<_>, _>>()?;
            out.extend(rows);
        }
        // In the order the relay released them, whatever the ids they are
        // filed under: the counted answer's key comes before the key of a
        // second answer sealed later (which the view then never tries).
        out.sort_by_key(|(cursor, _)| *cursor);
        Ok(out)
    }

    /// The exchanges of the held reveals released after `cursor`.
    pub fn released_after(&self, cursor: u64) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT exchange FROM released WHERE cursor > ?1 AND exchange IS NOT NULL",
        )?;
        let rows = stmt
            .query_map([cursor as i64], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    /// Exchanges and threads changed since the last sync looked at them.
    pub fn dirty_links(&self) -> Result<Vec<String>, DbError> {
        let mut stmt = self.conn.prepare_cached("SELECT link FROM dirty_links")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<String>, _>>()?;
        Ok(rows)
    }

    pub fn clear_dirty_links(&self) -> Result<(), DbError> {
        self.conn.execute("DELETE FROM dirty_links", [])?;
        Ok(())
    }

    /// The first own envelope after `seq` that the relay acknowledged before
    /// `before_ms` (what the partner should have had by then).
    pub fn first_acked_after(&self, seq: u64, before_ms: i64) -> Result<Option<u64>, DbError> {
        let found: Option<i64> = self
            .conn
            .query_row(
                "SELECT seq FROM outbox WHERE acked = 1 AND seq > ?1 AND acked_at IS NOT NULL
                 AND acked_at < ?2 ORDER BY seq LIMIT 1",
                params![seq as i64, before_ms],
                |r| r.get(0),
            )
            .optional()?;
        Ok(found.map(|s| s as u64))
    }

    pub fn get(&self, key: &str) -> Result<Option<String>, DbError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Whether the store holds an item with this entry id (lowercase hex),
    /// written here or received, readable or not.
    pub fn has_item(&self, entry: &str) -> Result<bool, DbError> {
        Ok(self
            .conn
            .prepare_cached("SELECT 1 FROM items WHERE entry = ?1")?
            .query_row([entry], |_| Ok(()))
            .optional()?
            .is_some())
    }

    /// The cursor of the last envelope received (0 before any); pulls and
    /// streams resume after it.
    pub fn last_cursor(&self) -> Result<u64, DbError> {
        Ok(self
            .get("last_cursor")?
            .and_then(|c| c.parse().ok())
            .unwrap_or(0))
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO meta (key, value) VALUES (?1, ?2)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            params![key, value],
        )?;
        Ok(())
    }

    pub fn roster(&self) -> Result<Vec<Vec<u8>>, DbError> {
        let mut stmt = self.conn.prepare("SELECT event FROM roster ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| r.get(0))?
            .collect::<Result<Vec<Vec<u8>>, _>>()?;
        Ok(rows)
    }

    /// The stored roster events, each with when this device first stored it.
    pub fn roster_with_times(&self) -> Result<Vec<StoredEvent>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT event, stored_at FROM roster ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredEvent {
                    event: r.get(0)?,
                    stored_at: r.get(1)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Replaces the stored roster with a newer verified one; an event already
    /// stored keeps the time it was first stored, a new one is stamped `now_ms`.
    pub fn set_roster(&mut self, events: &[Vec<u8>], now_ms: i64) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        tx.execute("DELETE FROM roster WHERE seq > ?1", [events.len() as i64])?;
        for (i, e) in events.iter().enumerate() {
            tx.execute(
                "INSERT INTO roster (seq, event, stored_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(seq) DO UPDATE SET event = excluded.event,
                   stored_at = CASE WHEN roster.event = excluded.event THEN roster.stored_at
                                    ELSE excluded.stored_at END",
                params![(i + 1) as i64, e, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Seals and queues the next own envelope in one immediate transaction: the
    /// chain position is read and advanced atomically, so two commands writing at
    /// once get consecutive numbers, and a crash leaves all or nothing.
    ///
    /// `seal(next_seq, prev_hash_hex)` returns `(entry id, envelope bytes, envelope hash hex)`;
    /// `index(tx, seq, envelope)` records it in the store in the same transaction.
    pub fn enqueue_next<T, E: From<DbError>>(
        &mut self,
        now_ms: i64,
        consume_later: Option<&str>,
        held: Option<&[u8]>,
        seal: impl FnOnce(u64, Option<String>) -> Result<(Vec<u8>, Vec<u8>, String, T), E>,
        index: impl FnOnce(&rusqlite::Transaction<'_>, u64, &[u8]) -> Result<(), E>,
    ) -> Result<T, E> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(DbError::from)?;
        let get = |k: &str| -> Result<Option<String>, DbError> {
            Ok(tx
                .query_row("SELECT value FROM meta WHERE key = ?1", [k], |r| r.get(0))
                .optional()?)
        };
        let seq: u64 = get("own_seq")?.and_then(|s| s.parse().ok()).unwrap_or(0);
        let prev = get("own_prev")?;
        let (entry, envelope, hash, out) = seal(seq + 1, prev)?;
        tx.execute(
            "INSERT INTO outbox (seq, entry, envelope, queued_at, held) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![(seq + 1) as i64, entry, envelope, now_ms, held],
        )
        .map_err(DbError::from)?;
        index(&tx, seq + 1, &envelope)?;
        for (k, v) in [("own_seq", (seq + 1).to_string()), ("own_prev", hash)] {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES (?1, ?2)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                params![k, v],
            )
            .map_err(DbError::from)?;
        }
        if let Some(id) = consume_later {
            // Releasing a held item and queueing it happen together or not at all.
            tx.execute("DELETE FROM later WHERE id = ?1", [id])
                .map_err(DbError::from)?;
        }
        tx.commit().map_err(DbError::from)?;
        Ok(out)
    }

    pub fn add_later(
        &self,
        id: &str,
        send_at: i64,
        private: bool,
        blob: &[u8],
    ) -> Result<(), DbError> {
        self.conn.execute(
            "INSERT INTO later (id, send_at, private, blob) VALUES (?1, ?2, ?3, ?4)",
            params![id, send_at, private as i64, blob],
        )?;
        Ok(())
    }

    /// Held items, soonest first.
    pub fn later(&self) -> Result<Vec<Held>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, send_at, private, blob FROM later ORDER BY send_at, id")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? != 0, r.get(3)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Replaces a held item's sealed content (an edit before it is sent); false
    /// if there was none with that id (it was sent or withdrawn meanwhile).
    pub fn replace_later(&self, id: &str, blob: &[u8]) -> Result<bool, DbError> {
        Ok(self.conn.execute(
            "UPDATE later SET blob = ?2 WHERE id = ?1",
            params![id, blob],
        )? > 0)
    }

    /// Withdraws a held item; false if there was none with that id.
    pub fn remove_later(&self, id: &str) -> Result<bool, DbError> {
        Ok(self.conn.execute("DELETE FROM later WHERE id = ?1", [id])? > 0)
    }

    /// The sequence numbers of own envelopes not acknowledged yet.
    pub fn unacked_seqs(&self) -> Result<Vec<u64>, DbError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq FROM outbox WHERE acked = 0 ORDER BY seq")?;
        let rows = stmt
            .query_map([], |r| Ok(r.get::<_, i64>(0)? as u64))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// Own envelopes the relay has not acknowledged yet, in sequence order.
    pub fn outbox(&self) -> Result<Vec<Queued>, DbError> {
        self.own(false)
    }

    /// Every own envelope written on this device, acknowledged or not.
    pub fn own_envelopes(&self) -> Result<Vec<Queued>, DbError> {
        self.own(true)
    }

    fn own(&self, include_acked: bool) -> Result<Vec<Queued>, DbError> {
        let sql = if include_acked {
            "SELECT seq, envelope, held FROM outbox ORDER BY seq"
        } else {
            "SELECT seq, envelope, held FROM outbox WHERE acked = 0 ORDER BY seq"
        };
        let mut stmt = self.conn.prepare(sql)?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Queued {
                    seq: r.get::<_, i64>(0)? as u64,
                    envelope: r.get(1)?,
                    held: r.get(2)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    /// `(seq, acknowledged at)` of own envelopes whose acknowledgement time is known.
    pub fn acked_times(&self) -> Result<Vec<(u64, i64)>, DbError> {
        let mut stmt = self.conn.prepare(
            "SELECT seq, acked_at FROM outbox WHERE acked = 1 AND acked_at IS NOT NULL ORDER BY seq",
        )?;
        let rows = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    pub fn outbox_len(&self) -> Result<u64, DbError> {
        Ok(self
            .conn
            .query_row("SELECT COUNT(*) FROM outbox WHERE acked = 0", [], |r| {
                r.get::<_, i64>(0)
            })? as u64)
    }

    /// Replaces unsent own envelopes (sealed again: `upgrade.rs`) with their new
    /// bytes, hash and hold slot, in one transaction; the chain continues from
    /// the last one.
    pub fn replace_unsent(
        &mut self,
        author: &attune_proto::DeviceId,
        envelopes: &[Resealed],
    ) -> Result<(), DbError> {
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        for r in envelopes {
            tx.execute(
                "UPDATE outbox SET envelope = ?2, held = ?3 WHERE seq = ?1 AND acked = 0",
                params![r.seq as i64, r.envelope, r.held],
            )?;
            tx.execute(
                "UPDATE items SET hash = ?3 WHERE own_seq = ?1 AND author = ?2",
                params![r.seq as i64, author.0.to_vec(), r.hash.0.to_vec()],
            )?;
        }
        if let Some(Resealed { seq, hash, .. }) = envelopes.last() {
            let own: Option<String> = tx
                .query_row("SELECT value FROM meta WHERE key = 'own_seq'", [], |r| {
                    r.get(0)
                })
                .optional()?;
            if own.as_deref() == Some(seq.to_string().as_str()) {
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'own_prev'",
                    [hash.to_hex()],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks envelopes as stored by the relay at `now_ms`; they are not sent again.
    pub fn acknowledge(&mut self, seqs: &[u64], now_ms: i64) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        for s in seqs {
            tx.execute(
                "UPDATE outbox SET acked = 1, acked_at = COALESCE(acked_at, ?2) WHERE seq = ?1",
                params![*s as i64, now_ms],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores served envelopes; a cursor already stored is left as it was.
    pub fn store_received(&mut self, rows: &[(u64, Incoming)], now_ms: i64) -> Result<(), DbError> {
        let tx = self.conn.transaction()?;
        for (cursor, what) in rows {
            // Callers check cursors first (sync::check_cursors); never wrap one.
            let Ok(cursor) = i64::try_from(*cursor) else {
                continue;
            };
            match what {
                Incoming::Envelope(env) => {
                    tx.prepare_cached(
                        "INSERT OR IGNORE INTO received (cursor, envelope, received_at) VALUES (?1, ?2, ?3)",
                    )?
                    .execute(params![cursor, env, now_ms])?;
                }
                Incoming::Reveal(blob) => {
                    // Filed under its exchange (version 1) or its sealed answer
                    // (version 2), unchecked yet (views check it), which changed:
                    // the next settle looks at it again.
                    let exchange = attune_proto::Released::decode(blob)
                        .map(|r| r.entry.to_hex())
                        .or_else(|_| {
                            attune_proto::HeldReveal::decode(blob)
                                .map(|h| h.header.exchange.to_hex())
                        })
                        .ok();
                    tx.execute(
                        "INSERT OR IGNORE INTO released (cursor, exchange, blob) VALUES (?1, ?2, ?3)",
                        params![cursor, exchange, blob],
                    )?;
                    if let Some(x) = exchange {
                        tx.execute("INSERT OR IGNORE INTO dirty_links (link) VALUES (?1)", [x])?;
                    }
                }
            }
        }
        // The highest cursor, never lowered: pulls resume after it.
        if let Some(last) = rows.iter().map(|(c, _)| *c).max() {
            tx.execute(
                "INSERT INTO meta (key, value) VALUES ('last_cursor', ?1)
                 ON CONFLICT(key) DO UPDATE SET value = excluded.value
                 WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
                [last.to_string()],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    pub fn received(&self) -> Result<Vec<(u64, Vec<u8>, i64)>, DbError> {
        let mut stmt = self
            .conn
            .prepare("SELECT cursor, envelope, received_at FROM received ORDER BY cursor")?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as u64, r.get(1)?, r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }
}
