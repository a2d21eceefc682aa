//! Writing the store's index rows (store.rs reads them): what the index keeps
//! of an item — never its content.

use attune_proto::Envelope;
use rusqlite::params;

use crate::db::DbError;
use crate::error::ClientError;
use crate::item::{Body, Item};

fn db(e: rusqlite::Error) -> ClientError {
    ClientError::Db(DbError::from(e))
}

/// The fields of an item that the index keeps (none of its content).
#[derive(Debug, Clone)]
pub(crate) struct IndexFields {
    pub at: i64,
    pub kind: &'static str,
    pub link: Option<String>,
}

impl IndexFields {
    pub fn of(item: &Item) -> Self {
        let link = match &item.body {
            Body::Edit { target, .. }
            | Body::Delete { target }
            | Body::Reflect { target, .. }
            | Body::Confirm { target }
            | Body::Correct { target, .. } => Some(target.clone()),
            Body::Sealed { exercise, .. }
            | Body::AnswerKey { exercise, .. }
            | Body::Reveal { exercise, .. }
            | Body::Mark { exercise, .. } => Some(exercise.clone()),
            _ => None,
        };
        Self {
            at: item.at,
            kind: item.body.kind(),
            link: link.map(|l| l.to_ascii_lowercase()),
        }
    }
}

/// Adds or completes an item's row. An own item written here first gets its row
/// when written (no cursor); the relay serving it back adds the cursor.
pub(crate) fn insert_item(
    tx: &rusqlite::Transaction<'_>,
    env: &Envelope,
    cursor: Option<u64>,
    own_seq: Option<u64>,
    mine: bool,
    private: bool,
    fields: Option<&IndexFields>,
) -> Result<(), ClientError> {
    let h = &env.header;
    // Cached: a sync inserts thousands of rows with this one statement.
    tx.prepare_cached(
        "INSERT INTO items (entry, author, seq, hash, cursor, own_seq, mine, private, readable, at, kind, link)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)
         ON CONFLICT(entry) DO UPDATE SET cursor = COALESCE(items.cursor, excluded.cursor)",
    )
    .map_err(db)?
    .execute(params![
            h.entry.to_hex(),
            h.author.0.to_vec(),
            h.seq as i64,
            env.hash().0.to_vec(),
            cursor.map(|c| c as i64),
            own_seq.map(|s| s as i64),
            mine as i64,
            private as i64,
            fields.is_some() as i64,
            fields.map(|f| f.at),
            fields.map(|f| f.kind),
            fields.and_then(|f| f.link.clone()),
    ])
    .map_err(db)?;
    Ok(())
}

/// Notes that an exchange or thread changed, so the next sync looks at it for
/// reveals due and practice problems.
pub(crate) fn mark_dirty(tx: &rusqlite::Transaction<'_>, link: &str) -> Result<(), ClientError> {
    tx.prepare_cached("INSERT OR IGNORE INTO dirty_links (link) VALUES (?1)")
        .map_err(db)?
        .execute([link])
        .map_err(db)?;
    Ok(())
}

/// Indexes an own envelope that carries no item (key wraps) in the transaction
/// that queues it.
pub(crate) fn index_written_plain(
    tx: &rusqlite::Transaction<'_>,
    env: &Envelope,
    own_seq: u64,
) -> Result<(), ClientError> {
    insert_item(tx, env, None, Some(own_seq), true, false, None)?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('indexed_own_seq', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value
         WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
        [own_seq.to_string()],
    )
    .map_err(db)?;
    Ok(())
}

/// Indexes an own item in the transaction that queues it.
pub(crate) fn index_written(
    tx: &rusqlite::Transaction<'_>,
    env: &Envelope,
    own_seq: u64,
    item: &Item,
    private: bool,
) -> Result<(), ClientError> {
    let fields = IndexFields::of(item);
    insert_item(tx, env, None, Some(own_seq), true, private, Some(&fields))?;
    mark_dirty(
        tx,
        fields.link.as_deref().unwrap_or(&env.header.entry.to_hex()),
    )?;
    tx.execute(
        "INSERT INTO meta (key, value) VALUES ('indexed_own_seq', ?1)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value
         WHERE CAST(meta.value AS INTEGER) < CAST(excluded.value AS INTEGER)",
        [own_seq.to_string()],
    )
    .map_err(db)?;
    Ok(())
}
