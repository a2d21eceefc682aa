//! The embedded SQLite engine: WAL mode, `synchronous=FULL`, one writer thread that
//! group-commits whatever is queued and acknowledges only after the commit, and a
//! small pool of read connections. All SQLite work runs off the async executor.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;

use async_trait::async_trait;
use attune_proto::{DeviceId, Hash32, SpaceId};
use crossbeam_channel::{Receiver, Sender};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use tokio::sync::oneshot;

use super::{
    FoundRecovery, NewEnvelope, Placed, Pulled, RecoveryBundle, RosterAppend, Store, StoreError,
};

/// Numbered migrations; `PRAGMA user_version` records how many have run.
const MIGRATIONS: &[&str] = &[
    // 1: spaces, roster events, envelopes.
    "CREATE TABLE spaces (
        id BLOB PRIMARY KEY,
        next_cursor INTEGER NOT NULL,
        bytes_used INTEGER NOT NULL
     ) WITHOUT ROWID;
     CREATE TABLE roster (
        space BLOB NOT NULL,
        seq INTEGER NOT NULL,
        event BLOB NOT NULL,
        PRIMARY KEY (space, seq)
     ) WITHOUT ROWID;
     CREATE TABLE envelopes (
        space BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        author BLOB NOT NULL,
        seq INTEGER NOT NULL,
        hash BLOB NOT NULL,
        entry BLOB NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (space, cursor)
     );
     CREATE UNIQUE INDEX envelopes_entry ON envelopes (space, entry);
     CREATE UNIQUE INDEX envelopes_chain ON envelopes (space, author, seq);",
    // 2: revoked devices and the last envelope each may still have, so that the
    // writer refuses a later one even if it was checked before the revocation.
    "CREATE TABLE revoked (
        space BLOB NOT NULL,
        device BLOB NOT NULL,
        last_seq INTEGER NOT NULL,
        PRIMARY KEY (space, device)
     ) WITHOUT ROWID;",
    // 3: held reveals, kept back until both members have answered an exchange,
    // and the released ones, which share the space's cursors with envelopes.
    "CREATE TABLE held (
        space BLOB NOT NULL,
        entry BLOB NOT NULL,
        exchange BLOB NOT NULL,
        member BLOB NOT NULL,
        data BLOB NOT NULL,
        released INTEGER,
        PRIMARY KEY (space, entry)
     ) WITHOUT ROWID;
     CREATE INDEX held_exchange ON held (space, exchange);
     CREATE TABLE releases (
        space BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        data BLOB NOT NULL,
        PRIMARY KEY (space, cursor)
     ) WITHOUT ROWID;",
    // 4: recovery bundles (PROTOCOL.md §16), one per recovery key, filed under a
    // lookup id derived from the recovery code.
    "CREATE TABLE recovery (
        lookup BLOB PRIMARY KEY,
        space BLOB NOT NULL,
        device BLOB NOT NULL,
        bundle BLOB NOT NULL
     ) WITHOUT ROWID;
     CREATE UNIQUE INDEX recovery_device ON recovery (space, device);",
    // 5: hold slots filed under their envelope's cursor, which grows, instead of
    // the random entry id: a batch's slots then fill the end of the table
    // instead of dirtying a page each at random places (every one rewritten in
    // the WAL at each commit).
    "CREATE TABLE held_by_cursor (
        space BLOB NOT NULL,
        cursor INTEGER NOT NULL,
        entry BLOB NOT NULL,
        exchange BLOB NOT NULL,
        member BLOB NOT NULL,
        data BLOB NOT NULL,
        released INTEGER,
        PRIMARY KEY (space, cursor)
     ) WITHOUT ROWID;
     -- Every slot has its envelope: both are written in one transaction and
     -- deleted with their space, so the join leaves none behind.
     INSERT INTO held_by_cursor (space, cursor, entry, exchange, member, data, released)
        SELECT h.space, e.cursor, h.entry, h.exchange, h.member, h.data, h.released
        FROM held h JOIN envelopes e ON e.space = h.space AND e.entry = h.entry;
     DROP TABLE held;
     ALTER TABLE held_by_cursor RENAME TO held;
     CREATE INDEX held_exchange ON held (space, exchange);",
];

/// Writes a consistent copy of the database at `db` to `out` (which must not
/// exist), while a relay may be writing to it: `VACUUM INTO` reads one snapshot
/// (WAL readers never block the writer) and writes a compact, self-contained
/// file. Written next to `out` and renamed into place, so a partial copy is
/// never left under the name.
pub fn backup(db: &Path, out: &Path) -> Result<u64, StoreError> {
    if out.exists() {
        return Err(StoreError::Internal(format!(
            "{} already exists; choose a new file name",
            out.display()
        )));
    }
    if !db.exists() {
        return Err(StoreError::Internal(format!(
            "there is no database at {}",
            db.display()
        )));
    }
    let conn = Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(internal)?;
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "backup".into());
    let partial = out.with_file_name(format!(".{name}.partial"));
    let _ = std::fs::remove_file(&partial);
    conn.execute("VACUUM INTO ?1", [partial.to_string_lossy().as_ref()])
        .map_err(internal)?;
    // The copy must open and check out before it takes the name.
    let copy = Connection::open(&partial).map_err(internal)?;
    let check: String = copy
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(internal)?;
    drop(copy);
    if check != "ok" {
        let _ = std::fs::remove_file(&partial);
        return Err(StoreError::Internal(format!(
            "the copy does not check out: {check}"
        )));
    }
    std::fs::rename(&partial, out).map_err(internal)?;
    Ok(std::fs::metadata(out).map(|m| m.len()).unwrap_or(0))
}

/// Most jobs folded into one transaction.
const MAX_GROUP: usize = 256;

fn internal(e: impl std::fmt::Display) -> StoreError {
    StoreError::Internal(e.to_string())
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let conn = Connection::open(path).map_err(internal)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(internal)?;
    // 8 KiB pages hold three padded envelopes (2.3 KB each) where 4 KiB pages
    // held one. Only a new database takes it (before its first table; a WAL
    // database keeps the page size it was made with).
    conn.execute_batch(
        "PRAGMA page_size=8192; PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON;",
    )
    .map_err(internal)?;
    Ok(conn)
}

fn migrate(conn: &mut Connection) -> Result<(), StoreError> {
    let done: usize = conn
        .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))
        .map_err(internal)? as usize;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(done) {
        let tx = conn.transaction().map_err(internal)?;
        tx.execute_batch(sql).map_err(internal)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64)
            .map_err(internal)?;
        tx.commit().map_err(internal)?;
    }
    Ok(())
}

enum Job {
    CreateSpace {
        space: SpaceId,
        event: Vec<u8>,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    AppendRoster {
        space: SpaceId,
        append: RosterAppend,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
    Append {
        space: SpaceId,
        envelopes: Vec<NewEnvelope>,
        quota: u64,
        reply: oneshot::Sender<Result<Vec<Placed>, StoreError>>,
    },
    Delete {
        space: SpaceId,
        reply: oneshot::Sender<Result<bool, StoreError>>,
    },
    PutRecovery {
        space: SpaceId,
        bundle: RecoveryBundle,
        reply: oneshot::Sender<Result<(), StoreError>>,
    },
}

/// A job's result, held until the group's transaction has committed.
enum Done {
    Unit(
        oneshot::Sender<Result<(), StoreError>>,
        Result<(), StoreError>,
    ),
    Placed(
        oneshot::Sender<Result<Vec<Placed>, StoreError>>,
        Result<Vec<Placed>, StoreError>,
    ),
    Bool(
        oneshot::Sender<Result<bool, StoreError>>,
        Result<bool, StoreError>,
    ),
}

impl Done {
    fn fail(self, err: StoreError) {
        // A dropped receiver means the request is gone; nothing to tell.
        let _ = match self {
            Done::Unit(tx, _) => tx.send(Err(err)).map_err(|_| ()),
            Done::Placed(tx, _) => tx.send(Err(err)).map_err(|_| ()),
            Done::Bool(tx, _) => tx.send(Err(err)).map_err(|_| ()),
        };
    }

    fn send(self) {
        let _ = match self {
            Done::Unit(tx, r) => tx.send(r).map_err(|_| ()),
            Done::Placed(tx, r) => tx.send(r).map_err(|_| ()),
            Done::Bool(tx, r) => tx.send(r).map_err(|_| ()),
        };
    }
}

/// Runs one job inside its own savepoint, so a failing job leaves the rest of the
/// group untouched.
fn run_job(tx: &rusqlite::Transaction<'_>, job: Job) -> Done {
    fn in_savepoint<T>(
        tx: &rusqlite::Transaction<'_>,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        tx.execute_batch("SAVEPOINT job").map_err(internal)?;
        match f(tx) {
            Ok(v) => {
                tx.execute_batch("RELEASE job").map_err(internal)?;
                Ok(v)
            }
            Err(e) => {
                tx.execute_batch("ROLLBACK TO job; RELEASE job")
                    .map_err(internal)?;
                Err(e)
            }
        }
    }
    match job {
        Job::CreateSpace {
            space,
            event,
            reply,
        } => Done::Unit(
            reply,
            in_savepoint(tx, |tx| create_space(tx, space, &event)),
        ),
        Job::AppendRoster {
            space,
            append,
            reply,
        } => Done::Unit(
            reply,
            in_savepoint(tx, |tx| append_roster(tx, space, &append)),
        ),
        Job::Append {
            space,
            envelopes,
            quota,
            reply,
        } => Done::Placed(
            reply,
            in_savepoint(tx, |tx| append(tx, space, &envelopes, quota)),
        ),
        Job::Delete { space, reply } => {
            Done::Bool(reply, in_savepoint(tx, |tx| delete_space(tx, space)))
        }
        Job::PutRecovery {
            space,
            bundle,
            reply,
        } => Done::Unit(
            reply,
            in_savepoint(tx, |tx| put_recovery(tx, space, &bundle)),
        ),
    }
}

fn put_recovery(tx: &Connection, space: SpaceId, b: &RecoveryBundle) -> Result<(), StoreError> {
    let revoked: Option<i64> = tx
        .query_row(
            "SELECT 1 FROM revoked WHERE space = ?1 AND device = ?2",
            params![&space.0[..], &b.device.0[..]],
            |r| r.get(0),
        )
        .optional()
        .map_err(internal)?;
    if revoked.is_some() {
        return Err(StoreError::Revoked { index: 0 });
    }
    tx.execute(
        "DELETE FROM recovery WHERE space = ?1 AND device = ?2",
        params![&space.0[..], &b.device.0[..]],
    )
    .map_err(internal)?;
    tx.execute(
        "INSERT INTO recovery (lookup, space, device, bundle) VALUES (?1, ?2, ?3, ?4)",
        params![&b.lookup.0[..], &space.0[..], &b.device.0[..], &b.bundle],
    )
    .map_err(|e| match e {
        rusqlite::Error::SqliteFailure(f, _)
            if f.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            StoreError::RecoveryExists
        }
        e => internal(e),
    })?;
    Ok(())
}

fn create_space(tx: &Connection, space: SpaceId, event: &[u8]) -> Result<(), StoreError> {
    let exists: Option<i64> = tx
        .query_row("SELECT 1 FROM spaces WHERE id = ?1", [&space.0[..]], |r| {
            r.get(0)
        })
        .optional()
        .map_err(internal)?;
    if exists.is_some() {
        return Err(StoreError::SpaceExists);
    }
    tx.execute(
        "INSERT INTO spaces (id, next_cursor, bytes_used) VALUES (?1, 1, ?2)",
        params![&space.0[..], event.len() as i64],
    )
    .map_err(internal)?;
    tx.execute(
        "INSERT INTO roster (space, seq, event) VALUES (?1, 1, ?2)",
        params![&space.0[..], event],
    )
    .map_err(internal)?;
    Ok(())
}

fn append_roster(tx: &Connection, space: SpaceId, append: &RosterAppend) -> Result<(), StoreError> {
    let first_seq = append.first_seq;
    let last: Option<i64> = tx
        .query_row(
            "SELECT MAX(seq) FROM roster WHERE space = ?1",
            [&space.0[..]],
            |r| r.get(0),
        )
        .map_err(internal)?;
    let last = last.ok_or(StoreError::NoSpace)? as u64;
    if last + 1 != first_seq {
        return Err(StoreError::RosterConflict { seq: first_seq });
    }
    // A revocation keeps everything the device already had accepted: it may not
    // end the device's chain before an envelope stored here.
    for &(device, last_seq) in &append.revokes {
        let head: Option<i64> = tx
            .query_row(
                "SELECT MAX(seq) FROM envelopes WHERE space = ?1 AND author = ?2",
                params![&space.0[..], &device.0[..]],
                |r| r.get(0),
            )
            .map_err(internal)?;
        let head = head.unwrap_or(0) as u64;
        if last_seq < head {
            return Err(StoreError::RevokeBelowHead {
                device,
                head,
                last_seq,
            });
        }
        tx.execute(
            "INSERT INTO revoked (space, device, last_seq) VALUES (?1, ?2, ?3)",
            params![&space.0[..], &device.0[..], last_seq as i64],
        )
        .map_err(internal)?;
        // A revoked recovery key's bundle is of no use to anyone any more.
        tx.execute(
            "DELETE FROM recovery WHERE space = ?1 AND device = ?2",
            params![&space.0[..], &device.0[..]],
        )
        .map_err(internal)?;
    }
    let added: i64 = append.events.iter().map(|e| e.len() as i64).sum();
    let used: i64 = tx
        .query_row(
            "SELECT bytes_used FROM spaces WHERE id = ?1",
            [&space.0[..]],
            |r| r.get(0),
        )
        .map_err(internal)?;
    if (used + added) as u64 > append.quota {
        return Err(StoreError::Quota {
            quota: append.quota,
        });
    }
    tx.execute(
        "UPDATE spaces SET bytes_used = ?2 WHERE id = ?1",
        params![&space.0[..], used + added],
    )
    .map_err(internal)?;
    for (i, ev) in append.events.iter().enumerate() {
        tx.execute(
            "INSERT INTO roster (space, seq, event) VALUES (?1, ?2, ?3)",
            params![&space.0[..], (first_seq + i as u64) as i64, ev],
        )
        .map_err(internal)?;
    }
    Ok(())
}

fn append(
    tx: &Connection,
    space: SpaceId,
    envelopes: &[NewEnvelope],
    quota: u64,
) -> Result<Vec<Placed>, StoreError> {
    let (mut next_cursor, mut used): (i64, i64) = tx
        .query_row(
            "SELECT next_cursor, bytes_used FROM spaces WHERE id = ?1",
            [&space.0[..]],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()
        .map_err(internal)?
        .ok_or(StoreError::NoSpace)?;
    let mut out = Vec::with_capacity(envelopes.len());
    let mut by_entry = tx
        .prepare_cached("SELECT cursor, data FROM envelopes WHERE space = ?1 AND entry = ?2")
        .map_err(internal)?;
    let mut last_of_author = tx
        .prepare_cached(
            "SELECT seq, hash FROM envelopes WHERE space = ?1 AND author = ?2
             ORDER BY seq DESC LIMIT 1",
        )
        .map_err(internal)?;
    let mut revoked_after = tx
        .prepare_cached("SELECT last_seq FROM revoked WHERE space = ?1 AND device = ?2")
        .map_err(internal)?;
    let mut insert = tx
        .prepare_cached(
            "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .map_err(internal)?;
    for (index, env) in envelopes.iter().enumerate() {
        let existing: Option<(i64, Vec<u8>)> = by_entry
            .query_row(params![&space.0[..], &env.entry.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(internal)?;
        if let Some((cursor, data)) = existing {
            if data != env.bytes {
                return Err(StoreError::EntryReused { index });
            }
            out.push(Placed {
                cursor: cursor as u64,
                duplicate: true,
            });
            continue;
        }
        let last: Option<(i64, Vec<u8>)> = last_of_author
            .query_row(params![&space.0[..], &env.author.0[..]], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
            .map_err(internal)?;
        let (last_seq, last_hash) = match last {
            Some((s, h)) => (s as u64, h),
            None => (0, vec![0u8; 32]),
        };
        if env.seq != last_seq + 1 {
            return Err(StoreError::Sequence {
                index,
                expected: last_seq + 1,
                found: env.seq,
            });
        }
        if env.prev.0[..] != last_hash[..] {
            return Err(StoreError::Chain { index });
        }
        let revoked: Option<i64> = revoked_after
            .query_row(params![&space.0[..], &env.author.0[..]], |r| r.get(0))
            .optional()
            .map_err(internal)?;
        if revoked.is_some_and(|last| env.seq > last as u64) {
            return Err(StoreError::Revoked { index });
        }
        used += env.bytes.len() as i64;
        if used as u64 > quota {
            return Err(StoreError::Quota { quota });
        }
        insert
            .execute(params![
                &space.0[..],
                next_cursor,
                &env.author.0[..],
                env.seq as i64,
                &env.hash.0[..],
                &env.entry.0[..],
                &env.bytes
            ])
            .map_err(internal)?;
        out.push(Placed {
            cursor: next_cursor as u64,
            duplicate: false,
        });
        next_cursor += 1;
    }
    drop((by_entry, last_of_author, revoked_after, insert));
    // Held reveals: kept (once per sealed answer, so a retried batch adds
    // nothing), then released where both members have answered.
    let mut exchanges = Vec::new();
    for (env, placed) in envelopes.iter().zip(&out) {
        let Some(h) = &env.held else { continue };
        let n = tx
            .execute(
                "INSERT OR IGNORE INTO held (space, cursor, entry, exchange, member, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &space.0[..],
                    placed.cursor as i64,
                    &env.entry.0[..],
                    &h.tag[..],
                    &h.member.0[..],
                    &h.bytes
                ],
            )
            .map_err(internal)?;
        if n > 0 {
            used += h.bytes.len() as i64;
            if used as u64 > quota {
                return Err(StoreError::Quota { quota });
            }
            exchanges.push(h.tag);
        }
    }
    for exchange in exchanges {
        next_cursor = release(tx, space, &exchange, next_cursor)?;
    }
    tx.execute(
        "UPDATE spaces SET next_cursor = ?2, bytes_used = ?3 WHERE id = ?1",
        params![&space.0[..], next_cursor, used],
    )
    .map_err(internal)?;
    Ok(out)
}

// Both name their index: without it SQLite's planner searched `held` by the
// space alone (its primary key's first column), reading every slot of the
// space for every appended envelope.
/// The members with a hold slot under an exchange's tag.
const HELD_MEMBERS: &str = "SELECT COUNT(DISTINCT member) FROM held INDEXED BY held_exchange
     WHERE space = ?1 AND exchange = ?2";
/// An exchange's slots not released yet, in the order of their random entry
/// ids (as before migration 5), not in the order the members answered.
const HELD_WAITING: &str = "SELECT cursor, data FROM held INDEXED BY held_exchange
     WHERE space = ?1 AND exchange = ?2 AND released IS NULL ORDER BY entry";

/// Releases the held reveals of `exchange` once two members have one there:
/// each gets the next cursor. Returns the next free cursor.
fn release(
    tx: &Connection,
    space: SpaceId,
    exchange: &[u8],
    mut next_cursor: i64,
) -> Result<i64, StoreError> {
    let members: i64 = tx
        .query_row(HELD_MEMBERS, params![&space.0[..], exchange], |r| r.get(0))
        .map_err(internal)?;
    if members < 2 {
        return Ok(next_cursor);
    }
    let waiting: Vec<(i64, Vec<u8>)> = tx
        .prepare_cached(HELD_WAITING)
        .map_err(internal)?
        .query_map(params![&space.0[..], exchange], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .map_err(internal)?
        .collect::<Result<_, _>>()
        .map_err(internal)?;
    for (cursor, data) in waiting {
        tx.execute(
            "INSERT INTO releases (space, cursor, data) VALUES (?1, ?2, ?3)",
            params![&space.0[..], next_cursor, data],
        )
        .map_err(internal)?;
        tx.execute(
            "UPDATE held SET released = ?3 WHERE space = ?1 AND cursor = ?2",
            params![&space.0[..], cursor, next_cursor],
        )
        .map_err(internal)?;
        next_cursor += 1;
    }
    Ok(next_cursor)
}

fn delete_space(tx: &Connection, space: SpaceId) -> Result<bool, StoreError> {
    let n = tx
        .execute("DELETE FROM spaces WHERE id = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM roster WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM revoked WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM envelopes WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM held WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM releases WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    tx.execute("DELETE FROM recovery WHERE space = ?1", [&space.0[..]])
        .map_err(internal)?;
    Ok(n > 0)
}

/// Group commit: block for one job, take whatever else is queued, run them all in
/// one transaction, commit, and only then answer each.
fn writer_loop(mut conn: Connection, jobs: Receiver<Job>, metrics: Arc<crate::metrics::Metrics>) {
    while let Ok(first) = jobs.recv() {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match jobs.try_recv() {
                Ok(job) => group.push(job),
                Err(_) => break,
            }
        }
        let size = group.len();
        let tx = match conn.transaction_with_behavior(TransactionBehavior::Immediate) {
            Ok(tx) => tx,
            Err(e) => {
                tracing::error!(error = %e, "could not begin a write transaction");
                for job in group {
                    fail_job(job, internal(&e));
                }
                continue;
            }
        };
        let done: Vec<Done> = group.into_iter().map(|job| run_job(&tx, job)).collect();
        match tx.commit() {
            Ok(()) => {
                metrics.record_commit(size);
                done.into_iter().for_each(Done::send);
            }
            Err(e) => {
                tracing::error!(error = %e, "group commit failed");
                for d in done {
                    d.fail(internal(&e));
                }
            }
        }
    }
}

fn fail_job(job: Job, err: StoreError) {
    let _ = match job {
        Job::CreateSpace { reply, .. } | Job::AppendRoster { reply, .. } => {
            reply.send(Err(err)).map_err(|_| ())
        }
        Job::Append { reply, .. } => reply.send(Err(err)).map_err(|_| ()),
        Job::Delete { reply, .. } => reply.send(Err(err)).map_err(|_| ()),
        Job::PutRecovery { reply, .. } => reply.send(Err(err)).map_err(|_| ()),
    };
}

/// The SQLite store. Dropping it closes the queue; the writer finishes what was
/// queued and exits.
pub struct SqliteStore {
    jobs: Sender<Job>,
    /// At most `--readers` connections (deadpool-sqlite): reads beyond that wait
    /// for one instead of opening connections (and blocking threads) of their own,
    /// so the pool stays as small as configured however many streams catch up.
    readers: deadpool_sqlite::Pool,
    path: PathBuf,
    writer: Mutex<Option<thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteStore {
    pub fn open(
        path: &Path,
        readers: usize,
        metrics: Arc<crate::metrics::Metrics>,
    ) -> Result<Self, StoreError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(internal)?;
        }
        let mut conn = open(path)?;
        migrate(&mut conn)?;
        let pool = deadpool_sqlite::Config::new(path)
            .builder(deadpool_sqlite::Runtime::Tokio1)
            .map_err(internal)?
            .max_size(readers.max(1))
            .post_create(deadpool_sqlite::Hook::async_fn(|conn, _| {
                Box::pin(async move {
                    conn.interact(|c| c.busy_timeout(std::time::Duration::from_secs(10)))
                        .await
                        .map_err(|e| deadpool_sqlite::HookError::message(e.to_string()))?
                        .map_err(|e| deadpool_sqlite::HookError::message(e.to_string()))
                })
            }))
            .build()
            .map_err(internal)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        let writer = thread::Builder::new()
            .name("attune-writer".into())
            .spawn(move || writer_loop(conn, rx, metrics))
            .map_err(internal)?;
        Ok(Self {
            jobs: tx,
            readers: pool,
            path: path.to_path_buf(),
            writer: Mutex::new(Some(writer)),
        })
    }

    async fn submit<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(make(tx))
            .map_err(|_| internal("the writer has stopped"))?;
        rx.await
            .map_err(|_| internal("the writer dropped the job"))?
    }

    /// Runs a read on a pooled connection, on the blocking thread pool, once one
    /// is free (at most as many reads at once as connections).
    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = self.readers.get().await.map_err(internal)?;
        conn.interact(move |c| f(c)).await.map_err(internal)?
    }
}

impl Drop for SqliteStore {
    /// Closes the queue and waits until the writer has committed every queued job.
    fn drop(&mut self) {
        let (dummy, _) = crossbeam_channel::unbounded();
        drop(std::mem::replace(&mut self.jobs, dummy));
        if let Some(handle) = self.writer.lock().ok().and_then(|mut w| w.take()) {
            let _ = handle.join();
        }
    }
}

#[async_trait]
impl Store for SqliteStore {
    async fn create_space(&self, space: SpaceId, event: Vec<u8>) -> Result<(), StoreError> {
        self.submit(|reply| Job::CreateSpace {
            space,
            event,
            reply,
        })
        .await
    }

    async fn append_roster(&self, space: SpaceId, append: RosterAppend) -> Result<(), StoreError> {
        self.submit(|reply| Job::AppendRoster {
            space,
            append,
            reply,
        })
        .await
    }

    async fn roster(&self, space: SpaceId) -> Result<Option<Vec<Vec<u8>>>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached("SELECT event FROM roster WHERE space = ?1 ORDER BY seq")
                .map_err(internal)?;
            let events = stmt
                .query_map([&space.0[..]], |r| r.get::<_, Vec<u8>>(0))
                .map_err(internal)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            Ok((!events.is_empty()).then_some(events))
        })
        .await
    }

    async fn append_envelopes(
        &self,
        space: SpaceId,
        envelopes: Vec<NewEnvelope>,
        quota: u64,
    ) -> Result<Vec<Placed>, StoreError> {
        self.submit(|reply| Job::Append {
            space,
            envelopes,
            quota,
            reply,
        })
        .await
    }

    async fn pull(
        &self,
        space: SpaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Pulled>, StoreError> {
        self.read(move |conn| {
            let mut stmt = conn
                .prepare_cached(
                    "SELECT cursor, data, 0 FROM envelopes WHERE space = ?1 AND cursor > ?2
                     UNION ALL
                     SELECT cursor, data, 1 FROM releases WHERE space = ?1 AND cursor > ?2
                     ORDER BY 1 LIMIT ?3",
                )
                .map_err(internal)?;
            let rows = stmt
                .query_map(
                    params![
                        &space.0[..],
                        after.min(i64::MAX as u64) as i64,
                        limit as i64
                    ],
                    |r| {
                        Ok(Pulled {
                            cursor: r.get::<_, i64>(0)? as u64,
                            bytes: r.get(1)?,
                            reveal: r.get::<_, i64>(2)? != 0,
                        })
                    },
                )
                .map_err(internal)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(internal)?;
            Ok(rows)
        })
        .await
    }

    async fn delete_space(&self, space: SpaceId) -> Result<bool, StoreError> {
        self.submit(|reply| Job::Delete { space, reply }).await
    }

    async fn put_recovery(&self, space: SpaceId, bundle: RecoveryBundle) -> Result<(), StoreError> {
        self.submit(|reply| Job::PutRecovery {
            space,
            bundle,
            reply,
        })
        .await
    }

    async fn recovery(&self, lookup: Hash32) -> Result<Option<FoundRecovery>, StoreError> {
        self.read(move |conn| {
            conn.query_row(
                "SELECT r.space, r.device, r.bundle FROM recovery r
                 WHERE r.lookup = ?1 AND NOT EXISTS
                   (SELECT 1 FROM revoked v WHERE v.space = r.space AND v.device = r.device)",
                [&lookup.0[..]],
                |r| {
                    Ok((
                        r.get::<_, Vec<u8>>(0)?,
                        r.get::<_, Vec<u8>>(1)?,
                        r.get::<_, Vec<u8>>(2)?,
                    ))
                },
            )
            .optional()
            .map_err(internal)?
            .map(|(space, device, bundle)| {
                Ok(FoundRecovery {
                    space: SpaceId(space.try_into().map_err(|_| internal("space id"))?),
                    device: DeviceId(device.try_into().map_err(|_| internal("device id"))?),
                    bundle,
                })
            })
            .transpose()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Every lookup the writer runs per appended envelope finds its rows through
    /// an index on all its key columns: a search by the space alone reads every
    /// row of the space, so each append would cost as much as the history.
    #[test]
    fn the_writers_lookups_search_by_their_whole_key() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("r.sqlite3")).unwrap();
        migrate(&mut conn).unwrap();
        for (sql, index) in [
            (HELD_MEMBERS, "held_exchange (space=? AND exchange=?)"),
            (HELD_WAITING, "held_exchange (space=? AND exchange=?)"),
        ] {
            let plan: Vec<String> = conn
                .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
                .unwrap()
                .query_map(params![&[0u8; 16][..], &[0u8; 32][..]], |r| {
                    r.get::<_, String>(3)
                })
                .unwrap()
                .map(Result::unwrap)
                .collect();
            assert!(
                plan.iter().any(|step| step.contains(index)),
                "{sql}: {plan:?}"
            );
        }
    }

    /// A relay database from before migration 5 keeps its hold slots, each now
    /// filed under its envelope's cursor, released or not.
    #[test]
    fn hold_slots_move_under_their_envelopes_cursor() {
        let dir = tempfile::tempdir().unwrap();
        let mut conn = open(&dir.path().join("r.sqlite3")).unwrap();
        for sql in &MIGRATIONS[..4] {
            conn.execute_batch(sql).unwrap();
        }
        conn.pragma_update(None, "user_version", 4).unwrap();
        let space = [7u8; 16];
        for (cursor, entry, released) in [(1i64, [1u8; 16], Some(9i64)), (2, [2u8; 16], None)] {
            conn.execute(
                "INSERT INTO envelopes (space, cursor, author, seq, hash, entry, data)
                 VALUES (?1, ?2, ?3, ?2, ?4, ?5, ?6)",
                params![
                    &space[..],
                    cursor,
                    &[3u8; 32][..],
                    &[4u8; 32][..],
                    &entry[..],
                    b"env"
                ],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO held (space, entry, exchange, member, data, released)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![
                    &space[..],
                    &entry[..],
                    &[5u8; 32][..],
                    &[6u8; 16][..],
                    &[cursor as u8; 89][..],
                    released
                ],
            )
            .unwrap();
        }
        migrate(&mut conn).unwrap();
        /// cursor, entry, data, released
        type Slot = (i64, Vec<u8>, Vec<u8>, Option<i64>);
        let held: Vec<Slot> = conn
            .prepare("SELECT cursor, entry, data, released FROM held ORDER BY cursor")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        assert_eq!(
            held,
            vec![
                (1, vec![1u8; 16], vec![1u8; 89], Some(9)),
                (2, vec![2u8; 16], vec![2u8; 89], None)
            ]
        );
    }

    /// However many reads are asked for at once, at most the pool's size run at a
    /// time and the pool keeps its configured connections (each caches pages, so
    /// more would cost memory for good).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_reads_share_the_pool() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let store = Arc::new(SqliteStore::open(&dir.path().join("r.sqlite3"), 2, metrics).unwrap());
        let running = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let reads: Vec<_> = (0..16)
            .map(|_| {
                let (store, running, most) = (store.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    store
                        .read(move |_| {
                            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                            most.fetch_max(now, Ordering::SeqCst);
                            thread::sleep(std::time::Duration::from_millis(20));
                            running.fetch_sub(1, Ordering::SeqCst);
                            Ok(())
                        })
                        .await
                })
            })
            .collect();
        for r in reads {
            r.await.unwrap().unwrap();
        }
        assert!(most.load(Ordering::SeqCst) <= 2, "at most 2 reads at once");
        assert_eq!(store.readers.status().size, 2);
    }

    /// A new database takes 8 KiB pages; an existing one keeps what it has.
    #[test]
    fn new_databases_take_eight_kib_pages_and_old_ones_keep_theirs() {
        let dir = tempfile::tempdir().unwrap();
        let page = |c: &Connection| {
            c.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))
                .unwrap()
        };
        let fresh = dir.path().join("new.sqlite3");
        assert_eq!(page(&open(&fresh).unwrap()), 8192);
        let old = dir.path().join("old.sqlite3");
        let c = Connection::open(&old).unwrap();
        c.execute_batch("PRAGMA page_size=4096; PRAGMA journal_mode=WAL; CREATE TABLE t (x);")
            .unwrap();
        drop(c);
        assert_eq!(page(&open(&old).unwrap()), 4096);
    }
}
