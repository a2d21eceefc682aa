//! The incremental verified store: each envelope is verified and classified once,
//! when it arrives, and what later commands need to find it is kept in the local
//! database — its chain position, who wrote it, when, its kind and the item it
//! refers to — never its content. A command then reads and decrypts only the items
//! it shows (and the few they depend on), so its cost follows what it shows, not
//! the size of the history.
//!
//! Kept per accepted envelope (`items`): entry id, author device and chain
//! position, envelope hash, relay cursor, whether this member wrote it, whether it
//! is private and readable here, and for readable items the item's time, kind and
//! link (the entry it edits, reflects or answers). Kept per author (`chains`): the
//! accepted head and the envelopes held past a gap. Problems found on arrival are
//! kept (`problems`) and shown until the profile is reset.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use attune_crypto::Content;
use attune_crypto::{ChainSnapshot, ChainVerifier, Class, SeenHead};
use attune_proto::{DeviceId, EntryId, Envelope, Hash32, Roster};
use rusqlite::{params, OptionalExtension};

use crate::db::DbError;
use crate::entry::{Entry, Problem};
use crate::error::ClientError;
use crate::index::{insert_item, mark_dirty, IndexFields};
use crate::item::{Body, Item, RosterHead};
use crate::practice::day_of;
use crate::problems::{describe, heads_problem, HeadsContext, WITHHELD_MARGIN_MS};
use crate::profile::{Profile, View};

/// A partner's streak as last counted (`Profile::streak`), kept between
/// commands: its most recent day, how many days it had, and the newest index
/// row then. Stored as "YYYY-MM-DD COUNT ROW"; anything else reads as absent
/// (it is only a shortcut, counted afresh when missing).
#[derive(Debug, Clone, PartialEq, Eq)]
struct StreakMark {
    last: String,
    count: usize,
    row: i64,
}

impl StreakMark {
    fn encode(&self) -> String {
        format!("{} {} {}", self.last, self.count, self.row)
    }

    fn decode(v: &str) -> Option<Self> {
        let mut parts = v.split(' ');
        let last = parts.next()?;
        chrono::NaiveDate::parse_from_str(last, "%Y-%m-%d").ok()?;
        let mark = Self {
            last: last.to_string(),
            count: parts.next()?.parse().ok()?,
            row: parts.next()?.parse().ok()?,
        };
        parts.next().is_none().then_some(mark)
    }
}

/// Received envelopes verified per transaction: enough that signatures are
/// checked in large batches on all cores and commits are few, and at most
/// `INDEX_CHUNK_BYTES` of them held at once (envelopes reach 1 MiB; two chunks
/// are in memory, one indexed while the next is checked).
const INDEX_CHUNK: i64 = 5_000;
const INDEX_CHUNK_BYTES: usize = 8 * 1024 * 1024;

/// A chunk of received envelopes, decoded, with every signature checked (on
/// all cores) against `roster`: what [`Profile::index_chunk`] needs besides the
/// store. Made on another thread for the next chunk while one is indexed.
/// Only the decoded envelopes are kept, not their bytes as well.
struct Checking {
    /// The cursor the chunk follows.
    after: u64,
    /// Each envelope's cursor, and the envelope or why its bytes did not decode.
    rows: Vec<(u64, Result<Envelope, attune_proto::DecodeError>)>,
    roster: Roster,
    /// One per envelope that decoded, in order.
    verdicts: Vec<attune_crypto::Signed>,
}

impl Checking {
    fn new(after: u64, rows: Vec<(u64, Vec<u8>)>, roster: Roster) -> Self {
        let rows: Vec<_> = rows
            .into_iter()
            .map(|(c, b)| (c, Envelope::decode(&b)))
            .collect();
        let present: Vec<&Envelope> = rows.iter().filter_map(|(_, e)| e.as_ref().ok()).collect();
        let verdicts = ChainVerifier::new(roster.clone()).verify_all(&present);
        Self {
            after,
            rows,
            roster,
            verdicts,
        }
    }
}

/// A sealed answer in a view: its exchange, its entry and its key generation.
type SealedRef<'a> = (&'a str, &'a Entry, Option<u32>);

/// Items from this many on are opened on all cores, this many read at a time.
const PARALLEL_OPEN: usize = 256;
const OPEN_BATCH: usize = 1_024;

/// Released reveals from this many on are checked on all cores.
const PARALLEL_REVEALS: usize = 256;

/// A released reveal that opened: its cursor, the answer's key, the answer and
/// its exchange; `None` for one that is skipped.
type Opened<'a> = Option<(u64, attune_crypto::SymmetricKey, &'a Entry, String)>;

/// One row of `items`.
#[derive(Debug, Clone)]
pub(crate) struct ItemRow {
    pub entry: String,
    pub author: DeviceId,
    pub cursor: Option<u64>,
    pub own_seq: Option<u64>,
    pub mine: bool,
    pub readable: bool,
}

fn db(e: rusqlite::Error) -> ClientError {
    ClientError::Db(DbError::from(e))
}

fn device_of(bytes: Vec<u8>) -> Result<DeviceId, rusqlite::Error> {
    let arr: [u8; 32] = bytes
        .try_into()
        .map_err(|_| rusqlite::Error::InvalidQuery)?;
    Ok(DeviceId(arr))
}

fn hash_of(bytes: Vec<u8>) -> Option<Hash32> {
    let arr: [u8; 32] = bytes.try_into().ok()?;
    Some(Hash32(arr))
}

const ROW_COLUMNS: &str = "entry, author, cursor, own_seq, mine, readable";

fn row(r: &rusqlite::Row<'_>) -> Result<ItemRow, rusqlite::Error> {
    Ok(ItemRow {
        entry: r.get(0)?,
        author: device_of(r.get(1)?)?,
        cursor: r.get::<_, Option<i64>>(2)?.map(|c| c as u64),
        own_seq: r.get::<_, Option<i64>>(3)?.map(|c| c as u64),
        mine: r.get::<_, i64>(4)? != 0,
        readable: r.get::<_, i64>(5)? != 0,
    })
}

/// What a sync owes after looking at the exchanges that changed.
#[derive(Debug, Default)]
pub struct Settled {
    /// Keys to reveal (answers sealed before held reveals): (exchange, key).
    pub reveals_due: Vec<(String, String)>,
    /// Own check-in exchanges that crossed the partner's earlier one: (own, the
    /// one to move to).
    pub crossed: Vec<(String, String)>,
}

impl Settled {
    pub fn is_empty(&self) -> bool {
        self.reveals_due.is_empty() && self.crossed.is_empty()
    }
}

/// Changed links a settle looks at in one view, when there are many.
const SETTLE_WINDOW: usize = 1_000;

/// What a settle counts as recent: crossings involve check-ins from the last
/// three join windows; one more is margin.
const RECENT_SPAN_MS: i64 = 4 * crate::practice::JOIN_WINDOW_MS;

/// How far back an unanswered exercise or reflection still counts as waiting.
const WAITING_SPAN_MS: i64 = 92 * 24 * 60 * 60 * 1000;

impl Profile {
    /// Opens the profile in `home`; a locked keystore takes `ATTUNE_PASSPHRASE`
    /// (scripts and tests).
    pub fn open(home: &std::path::Path) -> Result<Self, ClientError> {
        Self::open_with(home, &mut crate::ui::EnvPassphrase)
    }

    /// Opens the profile in `home`, asking `source` for the passphrase if the
    /// keystore is locked, and verifies into the store anything received but
    /// not yet verified (a sync that was interrupted, or a profile from before
    /// the store).
    pub fn open_with(
        home: &std::path::Path,
        source: &mut dyn crate::ui::PassphraseSource,
    ) -> Result<Self, ClientError> {
        let mut profile = Self::load(home, source)?;
        if profile.is_paired() {
            profile.index_known_authors()?;
        }
        Ok(profile)
    }

    /// Everything readable on this device, verified, with the problems found
    /// (the whole history: for export; commands ask for what they show).
    pub fn view(&self) -> Result<View, ClientError> {
        self.view_all()
    }

    /// Verifies and indexes everything received since the last run, and own
    /// envelopes written before the index existed. Returns how many envelopes
    /// were new. Safe to interrupt: each chunk commits with its resume point.
    pub fn index_new(&mut self) -> Result<usize, ClientError> {
        self.index(false)
    }

    /// Like [`Profile::index_new`], but stops before an envelope whose author the
    /// stored roster does not know yet: a sync reads the roster first, so the
    /// envelope of a newly added device is not taken for a forgery.
    pub fn index_known_authors(&mut self) -> Result<usize, ClientError> {
        self.index(true)
    }

    fn index(&mut self, stop_at_unknown: bool) -> Result<usize, ClientError> {
        let mut total = self.index_own_backlog()?;
        let mut ahead: Option<Checking> = None;
        loop {
            let after: u64 = self
                .db
                .get("indexed_cursor")?
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let roster = self.roster()?;
            // Checked ahead from where this chunk starts, against this roster:
            // else read and check it now.
            let chunk = match ahead.take() {
                Some(c) if c.after == after && c.roster == roster => c,
                _ => {
                    let rows = self
                        .db
                        .received_after(after, INDEX_CHUNK, INDEX_CHUNK_BYTES)?;
                    Checking::new(after, rows, roster)
                }
            };
            if chunk.rows.is_empty() {
                break;
            }
            // The next chunk's signatures are checked on other threads while
            // this one's chain rules, decryption and index rows run here.
            let following = chunk.rows.last().map(|(c, _)| *c).unwrap_or(after);
            let next_rows = self
                .db
                .received_after(following, INDEX_CHUNK, INDEX_CHUNK_BYTES)?;
            let next_roster = chunk.roster.clone();
            let (n, next) = std::thread::scope(|s| {
                let checker = (!next_rows.is_empty())
                    .then(|| s.spawn(move || Checking::new(following, next_rows, next_roster)));
                let n = self.index_chunk(chunk, stop_at_unknown);
                // A checker that could not finish: the next chunk is read again.
                (n, checker.and_then(|h| h.join().ok()))
            });
            let n = n?;
            total += n;
            if n == 0 {
                break;
            }
            ahead = next;
        }
        Ok(total)
    }

    /// Own envelopes that exist only in the outbox table (written before the
    /// index existed) get their rows, so they show before the relay serves them.
    fn index_own_backlog(&mut self) -> Result<usize, ClientError> {
        let done: u64 = self
            .db
            .get("indexed_own_seq")?
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        let roster = self.roster()?;
        let own = self.db.own_after(done)?;
        let Some(last) = own.last().map(|q| q.seq) else {
            return Ok(0);
        };
        let conn = self.db.conn();
        let tx = conn.unchecked_transaction().map_err(db)?;
        for q in &own {
            let Ok(env) = Envelope::decode(&q.envelope) else {
                continue;
            };
            let opened = attune_crypto::open_envelope(&env, &roster, &self.keys).ok();
            let item = opened
                .as_ref()
                .and_then(|o| o.item())
                .and_then(|p| Item::from_bytes(p).ok());
            let private = opened.as_ref().is_some_and(|o| o.is_private());
            let fields = item.as_ref().map(IndexFields::of);
            insert_item(&tx, &env, None, Some(q.seq), true, private, fields.as_ref())?;
            if let Some(f) = &fields {
                mark_dirty(&tx, f.link.as_deref().unwrap_or(&env.header.entry.to_hex()))?;
            }
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('indexed_own_seq', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [last.to_string()],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        Ok(own.len())
    }

    fn load_verifier(&self, roster: Roster) -> Result<ChainVerifier, ClientError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare("SELECT device, head_seq, head_hash, max_seen FROM chains")
            .map_err(db)?;
        let heads = stmt
            .query_map([], |r| {
                Ok((
                    device_of(r.get(0)?)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, Vec<u8>>(2)?,
                    r.get::<_, i64>(3)? as u64,
                ))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        let mut pending_stmt = conn
            .prepare(
                "SELECT r.envelope FROM chain_pending p JOIN received r ON r.cursor = p.cursor
                 WHERE p.device = ?1 ORDER BY p.seq",
            )
            .map_err(db)?;
        let mut snapshots = Vec::new();
        for (device, head_seq, hash, max_seen) in heads {
            let pending = pending_stmt
                .query_map([device.0.to_vec()], |r| r.get::<_, Vec<u8>>(0))
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?
                .iter()
                .filter_map(|b| Envelope::decode(b).ok())
                .collect();
            snapshots.push(ChainSnapshot {
                device,
                head_seq,
                head_hash: hash_of(hash).unwrap_or(Hash32::ZERO),
                max_seen,
                pending,
            });
        }
        Ok(ChainVerifier::resume(roster, snapshots))
    }

    /// Verifies a chunk of received envelopes, in cursor order, whose
    /// signatures were checked against the roster held now.
    fn index_chunk(
        &mut self,
        chunk: Checking,
        stop_at_unknown: bool,
    ) -> Result<usize, ClientError> {
        let Checking {
            after,
            rows,
            roster,
            verdicts,
        } = chunk;
        if rows.is_empty() {
            return Ok(0);
        }
        let after = after as i64;
        let mut last_cursor = after as u64;
        let mut done = 0;
        let my_member = roster.device(&self.identity.id()).map(|d| d.member);
        let me = self.identity.id();
        let partner = self
            .db
            .get("partner_name")?
            .unwrap_or_else(|| "your partner".into());
        let own_max = self.db.own_max_seq()?;
        let mut verifier = self.load_verifier(roster.clone())?;
        let conn = self.db.conn();
        let tx = conn.unchecked_transaction().map_err(db)?;
        let mut problems: Vec<Problem> = Vec::new();
        let mut keys_changed = false;
        let mut latest_claim: Option<(i64, u64)> = None;
        let mut roster_claims: Vec<(RosterHead, i64)> = Vec::new();
        // The signatures, the costly part, were checked for the whole chunk on
        // all cores (`Checking`); the chain rules run here, in order.
        let mut verdicts = verdicts.into_iter();
        for (cursor, served) in rows {
            let verdict = served.as_ref().ok().and_then(|_| verdicts.next());
            if stop_at_unknown {
                if let Ok(e) = &served {
                    if e.header.space == roster.space() && roster.device(&e.header.author).is_none()
                    {
                        break;
                    }
                }
            }
            last_cursor = cursor;
            done += 1;
            let mut forked = false;
            let mut env = match served {
                Ok(e) => e,
                Err(e) => {
                    problems.push(Problem {
                        kind: "malformed".into(),
                        detail: format!("the relay served bytes that are not an envelope: {e}"),
                        cursor: Some(cursor),
                    });
                    continue;
                }
            };
            if env.header.author == me {
                if let Some(mine) = own_envelope(&tx, env.header.seq)? {
                    if mine != env {
                        problems.push(Problem {
                            kind: "fork".into(),
                            detail: format!(
                                "the relay serves a different envelope {} for this device than the one it wrote: a forged or forked history",
                                env.header.seq
                            ),
                            cursor: Some(cursor),
                        });
                        // Keep verifying with what this device actually wrote.
                        env = mine;
                        // (whose signature is checked below, not the served one's)
                        forked = true;
                    }
                }
            }
            // A resumed verifier knows only heads: tell it the hash it accepted
            // before at this position, so a replay or fork is recognised.
            if let Some(h) = stored_hash(&tx, &env.header.author, env.header.seq)? {
                verifier.remember(env.header.author, env.header.seq, h);
            }
            let checks = match verdict {
                Some(signed) if !forked => verifier.check_signed(&env, signed, &self.keys),
                _ => verifier.check(&env, &self.keys),
            };
            for checked in checks {
                let h = checked.envelope.header;
                if !checked.class.is_accepted() {
                    problems.push(describe(checked.class, &h, cursor, &roster));
                    if let Class::Gap { .. } = checked.class {
                        tx.execute(
                            "INSERT OR IGNORE INTO chain_pending (device, seq, cursor) VALUES (?1, ?2, ?3)",
                            params![h.author.0.to_vec(), h.seq as i64, cursor as i64],
                        )
                        .map_err(db)?;
                    }
                    continue;
                }
                if checked.class == Class::Reordered {
                    problems.push(describe(checked.class, &h, cursor, &roster));
                }
                let author_member = roster.device(&h.author).map(|d| d.member);
                let mine = author_member.is_some() && author_member == my_member;
                let item = match checked.opened.as_ref().and_then(|o| o.item()) {
                    // Unreadable here, or a list of key wraps, not an item.
                    None => None,
                    Some(plain) => match Item::from_bytes(plain) {
                        Ok(item) => Some(item),
                        Err(_) => {
                            problems.push(Problem {
                                kind: "unreadable".into(),
                                detail: format!(
                                    "item {} decrypted but is not a known format",
                                    h.entry
                                ),
                                cursor: Some(cursor),
                            });
                            None
                        }
                    },
                };
                // The envelope the relay served back may be a released one held
                // past a gap: its cursor is where it was stored.
                let at_cursor = if checked.envelope == env {
                    cursor
                } else {
                    pending_cursor(&tx, &checked.envelope)?.unwrap_or(cursor)
                };
                tx.prepare_cached("DELETE FROM chain_pending WHERE device = ?1 AND seq = ?2")
                    .map_err(db)?
                    .execute(params![h.author.0.to_vec(), h.seq as i64])
                    .map_err(db)?;
                if let Some(Content::KeyWraps(list)) = checked.opened.as_ref().map(|o| &o.content) {
                    // Keys for this device (a new epoch after a revocation, a
                    // new member-private key): taken before anything sealed
                    // under them, which comes later in the history.
                    let mut ids: Vec<&attune_crypto::DeviceIdentity> = vec![&self.identity];
                    ids.extend(self.recovery_identity.as_ref());
                    if crate::device::absorb_wraps(
                        &mut self.keys,
                        &ids,
                        &roster,
                        &checked.envelope,
                        list,
                    ) > 0
                    {
                        keys_changed = true;
                    }
                }
                let private = checked.opened.as_ref().is_some_and(|o| o.is_private());
                let fields = item.as_ref().map(IndexFields::of);
                let own_seq = (h.author == me).then_some(h.seq);
                insert_item(
                    &tx,
                    &checked.envelope,
                    Some(at_cursor),
                    own_seq,
                    mine,
                    private,
                    fields.as_ref(),
                )?;
                let Some(item) = item else { continue };
                let heads: Vec<SeenHead> = item
                    .heads
                    .iter()
                    .filter_map(|hd| {
                        Some(SeenHead {
                            device: DeviceId::from_hex(&hd.device).ok()?,
                            seq: hd.seq,
                            hash: Hash32::from_hex(&hd.hash).ok()?,
                        })
                    })
                    .filter(|s| s.device != h.author)
                    .collect();
                for s in &heads {
                    if let Some(hash) = stored_hash(&tx, &s.device, s.seq)? {
                        verifier.remember(s.device, s.seq, hash);
                    }
                }
                let author_name = if author_member.is_some() && author_member != my_member {
                    format!("{partner}'s")
                } else {
                    "your other device's".to_string()
                };
                for p in verifier.check_heads(&heads) {
                    let own_at = |seq: u64| own_envelope(&tx, seq).ok().flatten().is_some();
                    problems.push(heads_problem(
                        p,
                        &HeadsContext {
                            me,
                            own_max,
                            own_has: &own_at,
                            author_name: &author_name,
                            cursor: at_cursor,
                        },
                    ));
                }
                if author_member.is_some() && author_member != my_member {
                    if let Some(seen_at) = item.seen_at {
                        let of_me = heads.iter().find(|s| s.device == me).map_or(0, |s| s.seq);
                        if latest_claim.is_none_or(|c| (seen_at, of_me) > c) {
                            latest_claim = Some((seen_at, of_me));
                        }
                        if let Some(r) = &item.roster {
                            roster_claims.push((r.clone(), seen_at));
                        }
                    }
                }
            }
        }
        for s in verifier.snapshot() {
            tx.execute(
                "INSERT INTO chains (device, head_seq, head_hash, max_seen) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(device) DO UPDATE SET head_seq = excluded.head_seq,
                    head_hash = excluded.head_hash, max_seen = excluded.max_seen",
                params![
                    s.device.0.to_vec(),
                    s.head_seq as i64,
                    s.head_hash.0.to_vec(),
                    s.max_seen as i64
                ],
            )
            .map_err(db)?;
        }
        for p in &problems {
            tx.execute(
                "INSERT INTO problems (kind, detail, cursor) VALUES (?1, ?2, ?3)",
                params![p.kind, p.detail, p.cursor.map(|c| c as i64)],
            )
            .map_err(db)?;
        }
        if let Some((seen_at, of_me)) = latest_claim {
            let held: Option<(i64, u64)> = tx
                .query_row(
                    "SELECT value FROM meta WHERE key = 'latest_claim'",
                    [],
                    |r| r.get::<_, String>(0),
                )
                .optional()
                .map_err(db)?
                .and_then(|v| {
                    let (a, b) = v.split_once(':')?;
                    Some((a.parse().ok()?, b.parse().ok()?))
                });
            if held.is_none_or(|h| (seen_at, of_me) > h) {
                tx.execute(
                    "INSERT INTO meta (key, value) VALUES ('latest_claim', ?1)
                     ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                    [format!("{seen_at}:{of_me}")],
                )
                .map_err(db)?;
            }
        }
        for (r, seen_at) in roster_claims {
            tx.execute(
                "INSERT INTO roster_claims (len, hash, seen_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT(len, hash) DO UPDATE SET seen_at = MAX(seen_at, excluded.seen_at)",
                params![r.len as i64, r.hash, seen_at],
            )
            .map_err(db)?;
        }
        tx.execute(
            "INSERT INTO meta (key, value) VALUES ('indexed_cursor', ?1)
             ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            [last_cursor.to_string()],
        )
        .map_err(db)?;
        tx.execute(
            // Only what settle looks at: exchanges (answers, keys, reveals,
            // marks) and reflect-back threads; journals and check-ins need none.
            "INSERT OR IGNORE INTO dirty_links (link)
             SELECT DISTINCT COALESCE(link, entry) FROM items WHERE cursor > ?1
             AND kind IN ('sealed', 'exercise', 'answer_key', 'reveal', 'mark',
                          'reflect', 'confirm', 'correct')",
            [after],
        )
        .map_err(db)?;
        tx.commit().map_err(db)?;
        if keys_changed {
            self.save_keys()?;
        }
        Ok(done)
    }

    /// Folds the exchanges and threads that changed since the last sync (what
    /// arrived and what this device wrote), keeps the practice problems found
    /// there (a second sealed answer, a bad reveal), and returns the reveals
    /// this member owes: exchanges where both have sealed and this member's key
    /// is not revealed yet. `clear_dirty` ends the round.
    pub fn settle(&mut self) -> Result<Settled, ClientError> {
        let links = self.db.dirty_links()?;
        if links.is_empty() {
            return Ok(Settled::default());
        }
        // A partner's check-in that arrived may cross one of this member's
        // own still open (settled in an earlier sync): look at those too.
        let own_open = self.own_open_checkins()?;
        // A new device's first sync changed every exchange of the history: one
        // view of them all would hold every answer at once. Older links are
        // looked at in windows of bounded size; crossing check-ins (and the
        // moves between them) only involve recent exchanges, which are all
        // looked at together, with this member's open ones.
        let (recent, older) = if links.len() + own_open.len() <= SETTLE_WINDOW {
            (links, Vec::new())
        } else {
            self.split_recent(links)?
        };
        let mut problems = Vec::new();
        let mut reveals_due = Vec::new();
        for window in older.chunks(SETTLE_WINDOW) {
            let view = self.view_around(window, false)?;
            problems.extend(view.practice.problems);
            reveals_due.extend(view.practice.reveals_due);
        }
        let mut seeds = recent;
        seeds.extend(own_open);
        let view = self.view_around(&seeds, false)?;
        let crossed = crate::evening::crossed(&view.practice);
        problems.extend(view.practice.problems);
        reveals_due.extend(view.practice.reveals_due);
        // An exchange reached from two windows is due once.
        let mut seen = HashSet::new();
        reveals_due.retain(|(exchange, _)| seen.insert(exchange.clone()));
        let conn = self.db.conn();
        let tx = conn.unchecked_transaction().map_err(db)?;
        for p in &problems {
            let known: bool = tx
                .query_row(
                    "SELECT 1 FROM problems WHERE kind = ?1 AND detail = ?2",
                    params![p.kind, p.detail],
                    |_| Ok(true),
                )
                .optional()
                .map_err(db)?
                .unwrap_or(false);
            if !known {
                tx.execute(
                    "INSERT INTO problems (kind, detail, cursor) VALUES (?1, ?2, NULL)",
                    params![p.kind, p.detail],
                )
                .map_err(db)?;
            }
        }
        tx.commit().map_err(db)?;
        Ok(Settled {
            crossed,
            reveals_due,
        })
    }

    /// Splits changed links into those with an item from the last
    /// [`RECENT_SPAN_MS`] (or dated later) and the rest. A crossing needs an
    /// own open check-in (from the last two join windows) and a partner's
    /// exchange opened within a join window of it; a move is written after
    /// the check-in it moves: all of them are recent.
    fn split_recent(&self, links: Vec<String>) -> Result<(Vec<String>, Vec<String>), ClientError> {
        let cutoff = self.now().saturating_sub(RECENT_SPAN_MS);
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT EXISTS (SELECT 1 FROM items WHERE entry = ?1 AND at >= ?2)
                     OR EXISTS (SELECT 1 FROM items INDEXED BY items_link WHERE link = ?1 AND at >= ?2)",
            )
            .map_err(db)?;
        let mut recent = Vec::new();
        let mut older = Vec::new();
        for link in links {
            let is_recent: bool = stmt
                .query_row(params![link, cutoff], |r| r.get(0))
                .map_err(db)?;
            if is_recent {
                recent.push(link);
            } else {
                older.push(link);
            }
        }
        Ok((recent, older))
    }

    /// This member's check-in exchanges opened within the join window (their
    /// sealed answer is named after itself).
    fn own_open_checkins(&self) -> Result<Vec<String>, ClientError> {
        let since = self
            .now()
            .saturating_sub(2 * crate::practice::JOIN_WINDOW_MS);
        let mut stmt = self
            .db
            .conn()
            .prepare_cached(
                "SELECT entry FROM items WHERE mine = 1 AND kind = 'sealed' AND link = entry AND at >= ?1",
            )
            .map_err(db)?;
        let rows = stmt
            .query_map([since], |r| r.get(0))
            .map_err(db)?
            .collect::<Result<Vec<String>, _>>()
            .map_err(db)?;
        Ok(rows)
    }

    /// Forgets which exchanges changed (after their reveals were written).
    pub fn clear_dirty(&self) -> Result<(), ClientError> {
        self.db.clear_dirty_links()?;
        Ok(())
    }

    /// The rows of `seeds` (entry ids or links) and of everything that refers to
    /// them, two steps out: an exchange's answers, keys, reveals and marks; a
    /// thread's reflections and their answers; an item's edits.
    fn closure(&self, seeds: &[String]) -> Result<Vec<ItemRow>, ClientError> {
        let conn = self.db.conn();
        let mut ids: BTreeSet<String> = BTreeSet::new();
        let mut frontier: Vec<String> = seeds.to_vec();
        let mut by_id = conn
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, link FROM items WHERE entry = ?1"
            ))
            .map_err(db)?;
        let mut by_link = conn
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS}, link FROM items WHERE link = ?1"
            ))
            .map_err(db)?;
        let mut rows: BTreeMap<String, ItemRow> = BTreeMap::new();
        for _ in 0..3 {
            let mut next = Vec::new();
            for key in frontier.drain(..) {
                if !ids.insert(key.clone()) {
                    continue;
                }
                for stmt in [&mut by_id, &mut by_link] {
                    let found = stmt
                        .query_map([&key], |r| Ok((row(r)?, r.get::<_, Option<String>>(6)?)))
                        .map_err(db)?
                        .collect::<Result<Vec<_>, _>>()
                        .map_err(db)?;
                    for (r, link) in found {
                        if let Some(l) = link {
                            next.push(l);
                        }
                        next.push(r.entry.clone());
                        rows.entry(r.entry.clone()).or_insert(r);
                    }
                }
            }
            frontier = next;
        }
        Ok(rows.into_values().collect())
    }

    /// Opens the items of `rows`, in the order the relay served them (own items
    /// not served back yet last, in the order written).
    fn open_rows(
        &self,
        mut rows: Vec<ItemRow>,
        roster: &Roster,
    ) -> Result<Vec<Entry>, ClientError> {
        rows.retain(|r| r.readable);
        rows.sort_by_key(|r| (r.cursor.is_none(), r.cursor, r.own_seq));
        let unacked: HashSet<u64> = self.db.unacked_seqs()?.into_iter().collect();
        // Not the profile: its connection cannot be shared across threads.
        let keys = &self.keys;
        let open = |(r, bytes): &(&ItemRow, Vec<u8>)| -> Option<Entry> {
            let env = Envelope::decode(bytes).ok()?;
            // Its signature was checked when it arrived (or it was written here).
            let opened = attune_crypto::decrypt_envelope(&env, roster, keys).ok()?;
            let item = opened.item().map(Item::from_bytes)?.ok()?;
            Some(Entry {
                id: env.header.entry,
                cursor: r.cursor,
                author: env.header.author,
                mine: r.mine,
                private: opened.is_private(),
                pending: r.cursor.is_none() && r.own_seq.is_some_and(|s| unacked.contains(&s)),
                item,
                edited: false,
                deleted: false,
            })
        };
        // Many (a settle after a first sync, an export): on all cores, in
        // order, a batch of envelopes read at a time.
        let mut out = Vec::with_capacity(rows.len());
        for batch in rows.chunks(OPEN_BATCH) {
            let mut sealed = Vec::with_capacity(batch.len());
            for r in batch {
                let bytes = match (r.cursor, r.own_seq) {
                    // Own envelopes are read from what this device wrote.
                    (_, Some(seq)) if r.author == self.identity.id() => {
                        self.db.own_envelope(seq)?
                    }
                    (Some(c), _) => self.db.received_at(c)?,
                    _ => None,
                };
                if let Some(b) = bytes {
                    sealed.push((r, b));
                }
            }
            if sealed.len() >= PARALLEL_OPEN {
                use rayon::prelude::*;
                out.par_extend(sealed.par_iter().filter_map(open));
            } else {
                out.extend(sealed.iter().filter_map(open));
            }
        }
        Ok(out)
    }

    /// The answer keys this device can read for these entries: its member's
    /// own protocol 2 answers (derived from the member-private key), and the
    /// partner's whose hold slots the relay released, each checked (a sealed
    /// answer of this view, a slot that opens for that answer's exchange;
    /// version 1 reveals also by their author's signature) and turned into
    /// the `answer_key` and `reveal` items the fold reads. Refused ones are
    /// problems.
    fn released_reveals(
        &self,
        entries: &[Entry],
        roster: &Roster,
    ) -> Result<(Vec<Entry>, Vec<Problem>), ClientError> {
        let space = roster.space();
        let sealed: Vec<SealedRef<'_>> = entries
            .iter()
            .filter_map(|e| match &e.item.body {
                Body::Sealed { exercise, gen, .. } => Some((exercise.as_str(), e, *gen)),
                _ => None,
            })
            .collect();
        let my_member = roster.device(&self.identity.id()).map(|d| d.member);
        let synthetic = |of: &Entry, label: &[u8], body: Body, author, mine| Entry {
            id: EntryId(
                attune_proto::ids::hash_labelled(label, &[&of.id.0]).0[..16]
                    .try_into()
                    .unwrap_or([0; 16]),
            ),
            cursor: of.cursor,
            author,
            mine,
            private: false,
            pending: false,
            item: Item {
                v: 1,
                at: of.item.at,
                body,
                heads: vec![],
                seen_at: None,
                roster: None,
            },
            edited: false,
            deleted: false,
        };
        let mut out = Vec::new();
        for (exercise, e, gen) in &sealed {
            let Some(gen) = gen.filter(|_| e.mine) else {
                continue;
            };
            if let Ok(key) = attune_crypto::own_answer_key(&self.keys, &space, gen, &e.id) {
                let body = Body::AnswerKey {
                    exercise: exercise.to_string(),
                    key: attune_proto::api::b64(key.expose()),
                    held: true,
                };
                out.push(synthetic(e, b"attune/v2/own-key", body, e.author, true));
            }
        }
        let mut filed: Vec<String> = sealed.iter().map(|(x, _, _)| x.to_string()).collect();
        filed.extend(sealed.iter().map(|(_, e, _)| e.id.to_hex()));
        filed.sort();
        filed.dedup();
        // By answer id: a new device's first view has every sealed answer and
        // every reveal of the history (a search per reveal was quadratic).
        // One id can name several sealed answers (a modified client's second
        // one): each keeps its order, and the first that fits is taken.
        let mut by_entry: std::collections::HashMap<EntryId, Vec<&SealedRef<'_>>> =
            std::collections::HashMap::new();
        for s in &sealed {
            by_entry.entry(s.1.id).or_default().push(s);
        }
        let keys = &self.keys;
        let by_entry = &by_entry;
        // Each reveal is checked on its own (a held one's signature is the
        // costly part): on all cores when there are many, as on a new device.
        let open_one = |(cursor, blob): &(u64, Vec<u8>)| -> Result<Opened<'_>, Problem> {
            let refuse = |why: &str| Problem {
                kind: "bad_reveal".into(),
                detail: format!("the relay released a reveal that was refused: {why}"),
                cursor: Some(*cursor),
            };
            let (key, answer, exercise) = if let Ok(released) = attune_proto::Released::decode(blob)
            {
                // The sealed answer it reveals, and the exchange this device
                // read that answer in: the slot opens only for that one.
                let Some((exercise, answer, _)) = by_entry
                    .get(&released.entry)
                    .and_then(|v| v.first())
                    .copied()
                else {
                    return Err(refuse("it names no sealed answer here"));
                };
                let Ok(exchange) = EntryId::from_hex(exercise) else {
                    return Ok(None);
                };
                attune_crypto::open_released(keys, &space, &exchange, &released)
                    .map(|key| (key, *answer, exercise.to_string()))
                    .map_err(|e| refuse(&e.to_string()))?
            } else if let Ok(held) = attune_proto::HeldReveal::decode(blob) {
                let h = held.header;
                let Some(device) = roster.device(&h.author) else {
                    return Err(refuse("its author is not in the roster"));
                };
                let exchange = h.exchange.to_hex();
                let Some((_, answer, _)) = by_entry.get(&h.entry).and_then(|v| {
                    v.iter()
                        .find(|(x, e, _)| e.author == h.author && *x == exchange)
                        .copied()
                }) else {
                    return Err(refuse("it names no sealed answer of its author here"));
                };
                if h.space != space {
                    return Err(refuse("it belongs to another space"));
                }
                attune_crypto::open_held(&held, &device.verifier, keys)
                    .map(|key| (key, *answer, h.exchange.to_hex()))
                    .map_err(|e| refuse(&e.to_string()))?
            } else {
                return Err(refuse("it is malformed"));
            };
            Ok(Some((*cursor, key, answer, exercise)))
        };
        let blobs = self.db.released_for(&filed)?;
        let outcomes: Vec<Result<Opened<'_>, Problem>> = if blobs.len() >= PARALLEL_REVEALS {
            use rayon::prelude::*;
            blobs.par_iter().map(open_one).collect()
        } else {
            blobs.iter().map(open_one).collect()
        };
        let mut problems = Vec::new();
        for outcome in outcomes {
            let (cursor, key, answer, exercise) = match outcome {
                Ok(Some(o)) => o,
                Ok(None) => continue,
                Err(p) => {
                    problems.push(p);
                    continue;
                }
            };
            let mine =
                my_member.is_some() && roster.device(&answer.author).map(|d| d.member) == my_member;
            let body = Body::Reveal {
                exercise,
                key: attune_proto::api::b64(key.expose()),
            };
            let mut reveal = synthetic(answer, b"attune/v1/released", body, answer.author, mine);
            reveal.cursor = Some(cursor);
            out.push(reveal);
        }
        Ok((out, problems))
    }

    /// A verified view of the items `seeds` name (entry ids, or exchange ids) and
    /// what they depend on, with the problems this device knows of
    /// (`with_problems`).
    pub fn view_around(&self, seeds: &[String], with_problems: bool) -> Result<View, ClientError> {
        let roster = self.roster()?;
        let rows = self.closure(seeds)?;
        self.view_from_rows(rows, &roster, with_problems)
    }

    fn view_from_rows(
        &self,
        rows: Vec<ItemRow>,
        roster: &Roster,
        with_problems: bool,
    ) -> Result<View, ClientError> {
        let raw = self.open_rows(rows, roster)?;
        let mut view = View {
            entries: crate::entry::apply_edits(raw, roster),
            ..View::default()
        };
        let (released, mut release_problems) = self.released_reveals(&view.entries, roster)?;
        let mut all = view.entries.clone();
        all.extend(released);
        view.practice = crate::practice::fold(&all, roster.space());
        view.practice.problems.append(&mut release_problems);
        view.heads = self.stored_heads()?;
        if with_problems {
            view.problems = self.known_problems()?;
            let mut practice_problems = std::mem::take(&mut view.practice.problems);
            practice_problems.retain(|p| {
                !view
                    .problems
                    .iter()
                    .any(|q| q.kind == p.kind && q.detail == p.detail)
            });
            view.problems.append(&mut practice_problems);
        }
        Ok(view)
    }

    /// Everything readable here: the whole history (for export and the full view).
    pub fn view_all(&self) -> Result<View, ClientError> {
        let roster = self.roster()?;
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare(&format!("SELECT {ROW_COLUMNS} FROM items"))
            .map_err(db)?;
        let rows = stmt
            .query_map([], row)
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        drop(stmt);
        self.view_from_rows(rows, &roster, true)
    }

    /// The items written since `since_ms`, the practice items still waiting for
    /// this member (an exercise or a reflection to answer), and what they depend
    /// on; with the days each partner checked in, back as far as a streak reaches.
    pub fn view_since(&self, since_ms: i64) -> Result<View, ClientError> {
        let conn = self.db.conn();
        let mut seeds: Vec<String> = Vec::new();
        let mut collect = |sql: &str, p: &[&dyn rusqlite::ToSql]| -> Result<(), ClientError> {
            let mut stmt = conn.prepare_cached(sql).map_err(db)?;
            let found = stmt
                .query_map(p, |r| r.get::<_, String>(0))
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            seeds.extend(found);
            Ok(())
        };
        collect("SELECT entry FROM items WHERE at >= ?1", &[&since_ms])?;
        // The partner's newest item, however old (a long silence is worth a word).
        collect(
            "SELECT entry FROM items WHERE mine = 0 AND readable = 1 ORDER BY at DESC LIMIT 1",
            &[],
        )?;
        // Exercises this member has not answered, and the partner's reflections
        // waiting for an answer, from the last quarter (older ones are history,
        // not something due today).
        let quarter = crate::profile::now_ms().saturating_sub(WAITING_SPAN_MS);
        collect(
            "SELECT x.entry FROM items x WHERE x.at >= ?1 AND x.kind = 'exercise'
             AND NOT EXISTS (SELECT 1 FROM items m INDEXED BY items_link
                WHERE m.link = x.entry AND m.kind = 'sealed' AND m.mine = 1)",
            &[&quarter],
        )?;
        collect(
            "SELECT r.entry FROM items r WHERE r.at >= ?1 AND r.kind = 'reflect' AND r.mine = 0
             AND NOT EXISTS (SELECT 1 FROM items a INDEXED BY items_link
                WHERE a.link = r.entry AND a.kind IN ('confirm', 'correct'))",
            &[&quarter],
        )?;
        let mut view = self.view_around(&seeds, true)?;
        view.streaks = Some((self.streak(true)?, self.streak(false)?));
        Ok(view)
    }

    /// Only the items written since `since_ms`, the partner's newest item
    /// however old (a long silence is worth a word), and what they depend on (no
    /// waiting practices, no streaks): for commands that look at the last hours.
    pub fn view_recent(&self, since_ms: i64) -> Result<View, ClientError> {
        let mut stmt = self
            .db
            .conn()
            .prepare_cached(
                "SELECT entry FROM items WHERE at >= ?1
                 UNION SELECT * FROM (SELECT entry FROM items WHERE mine = 0 AND readable = 1
                                      ORDER BY at DESC LIMIT 1)",
            )
            .map_err(db)?;
        let seeds = stmt
            .query_map([since_ms], |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        drop(stmt);
        self.view_around(&seeds, true)
    }

    /// One partner's check-in streak (`insights::streak`), counted from the
    /// index. A long streak is not counted day by day again on every command:
    /// the last count is kept (`streak:me`, `streak:partner`: its most recent
    /// day, how many days it had, and the newest index row then), and a walk
    /// back from today that reaches that day adds it. Rows only ever join the
    /// index, so a stored count stays true unless a check-in dated before its
    /// last days was indexed since; then it is counted afresh.
    fn streak(&self, mine: bool) -> Result<usize, ClientError> {
        let key = if mine { "streak:me" } else { "streak:partner" };
        let now = crate::profile::now_ms();
        let today = day_of(now);
        let newest_row: i64 = self
            .db
            .conn()
            .query_row("SELECT COALESCE(MAX(rowid), 0) FROM items", [], |r| {
                r.get(0)
            })
            .map_err(db)?;
        let stored = self
            .db
            .get(key)?
            .as_deref()
            .and_then(StreakMark::decode)
            .map(|m| (m.last, m.count, m.row));
        let usable = match &stored {
            Some((last, _, row)) if last.as_str() <= today.as_str() => {
                let back = days_between(last, &today);
                // The walk needs the days from the stored one to today (a margin
                // either side for clock changes); a check-in indexed since then
                // and dated up to a day after the stored one may change its count.
                let since = now.saturating_sub((back + 2) * 86_400_000);
                let changed_before = now.saturating_sub((back - 2).max(0) * 86_400_000);
                let late: bool = self
                    .db
                    .conn()
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM items NOT INDEXED WHERE rowid > ?1 AND at < ?2
                         AND kind IN ('checkin', 'sealed'))",
                        params![row, changed_before],
                        |r| r.get(0),
                    )
                    .map_err(db)?;
                (!late).then_some(since)
            }
            _ => None,
        };
        let (count, last) = match (stored, usable) {
            (Some((last, count, _)), Some(since)) => {
                let days = self.checkin_days_since(mine, since)?;
                crate::insights::streak_onto(&days, &today, Some((&last, count)))
            }
            _ => {
                let days = self.checkin_days(mine)?;
                crate::insights::streak_onto(&days, &today, None)
            }
        };
        if let Some(last) = last {
            // Only a shortcut for next time: a failure to store it changes nothing.
            let mark = StreakMark {
                last,
                count,
                row: newest_row,
            };
            let _ = self.db.set(key, &mark.encode());
        }
        Ok(count)
    }

    /// The days one partner checked in since `since_ms` (see [`Self::checkin_days`]).
    fn checkin_days_since(
        &self,
        mine: bool,
        since_ms: i64,
    ) -> Result<BTreeSet<String>, ClientError> {
        self.checkin_days_between(mine, since_ms, i64::MAX)
    }

    /// The days one partner checked in from `since_ms` to before `until_ms`.
    fn checkin_days_between(
        &self,
        mine: bool,
        since_ms: i64,
        until_ms: i64,
    ) -> Result<BTreeSet<String>, ClientError> {
        let mut stmt = self
            .db
            .conn()
            .prepare_cached(
                "SELECT at FROM items i WHERE at >= ?2 AND at < ?3 AND mine = ?1 AND (kind = 'checkin'
                 OR (kind = 'sealed' AND NOT EXISTS
                    (SELECT 1 FROM items x WHERE x.entry = i.link AND x.kind = 'exercise')))",
            )
            .map_err(db)?;
        let days = stmt
            .query_map(params![mine as i64, since_ms, until_ms], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?
            .into_iter()
            .map(day_of)
            .collect();
        Ok(days)
    }

    /// The days one partner checked in, from the index: open check-ins and sealed
    /// answers to a day's exchange. Read back from today only as far as a
    /// forgiving streak could reach, widening the span fourfold while it does.
    fn checkin_days(&self, mine: bool) -> Result<BTreeSet<String>, ClientError> {
        let now = crate::profile::now_ms();
        let mut span_days: i64 = 64;
        loop {
            let since = now.saturating_sub(span_days * 86_400_000);
            let days = self.checkin_days_since(mine, since)?;
            let today = day_of(now);
            let streak = crate::insights::streak(&days, &today) as i64;
            // A streak that reaches back near the span's start may go further.
            if streak * 2 + 4 < span_days || span_days > 365 * 100 {
                return Ok(days);
            }
            span_days *= 4;
        }
    }

    /// Both partners' streaks (mine, the partner's) as they stood at the end of
    /// `end`, a past or present local day: a report's period may end long
    /// after its streaks began, so this reads back before the period as far as
    /// they reach, widening the span fourfold while they do.
    pub fn streaks_at(&self, end: chrono::NaiveDate) -> Result<(usize, usize), ClientError> {
        const DAY_MS: i64 = 86_400_000;
        let end_key = crate::report::period::day_key(end);
        // The local end of `end` is within a day of its UTC midnight either way.
        let until = end
            .succ_opt()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map_or(i64::MAX, |t| {
                t.and_utc().timestamp_millis().saturating_add(DAY_MS)
            });
        let streak = |mine: bool| -> Result<usize, ClientError> {
            let mut span_days: i64 = 64;
            loop {
                let since = until.saturating_sub(span_days * DAY_MS);
                let mut days = self.checkin_days_between(mine, since, until)?;
                days.retain(|d| d.as_str() <= end_key.as_str());
                let streak = crate::insights::streak(&days, &end_key);
                if (streak as i64) * 2 + 4 < span_days || span_days > 365 * 100 {
                    return Ok(streak);
                }
                span_days *= 4;
            }
        };
        Ok((streak(true)?, streak(false)?))
    }

    /// The newest `limit` visible items matching the filter, oldest first, with
    /// their context; `None` means all of them.
    pub(crate) fn feed_rows(
        &self,
        since_ms: Option<i64>,
        mine: Option<bool>,
        kinds: &[&'static str],
        checkin: Option<bool>,
        limit: Option<usize>,
    ) -> Result<(Vec<String>, View), ClientError> {
        let conn = self.db.conn();
        // The newest N: walk the time index from the newest and stop at N (the
        // planner would otherwise gather every item of the kinds, then sort).
        let mut sql = String::from(if limit.is_some() {
            "SELECT entry FROM items i INDEXED BY items_at WHERE readable = 1
             AND kind NOT IN ('answer_key', 'reveal', 'edit', 'delete', 'challenge')"
        } else {
            "SELECT entry FROM items i WHERE readable = 1
             AND kind NOT IN ('answer_key', 'reveal', 'edit', 'delete', 'challenge')"
        });
        let mut args: Vec<Box<dyn rusqlite::ToSql>> = Vec::new();
        if let Some(s) = since_ms {
            args.push(Box::new(s));
            sql.push_str(&format!(" AND at >= ?{}", args.len()));
        }
        if let Some(m) = mine {
            args.push(Box::new(m as i64));
            sql.push_str(&format!(" AND mine = ?{}", args.len()));
        }
        let mut alternatives: Vec<String> = kinds.iter().map(|k| format!("kind = '{k}'")).collect();
        match checkin {
            Some(true) => alternatives.push(
                "(kind = 'sealed' AND NOT EXISTS
                    (SELECT 1 FROM items x WHERE x.entry = i.link AND x.kind = 'exercise'))"
                    .into(),
            ),
            Some(false) => alternatives.push(
                "(kind = 'sealed' AND EXISTS
                    (SELECT 1 FROM items x WHERE x.entry = i.link AND x.kind = 'exercise'))"
                    .into(),
            ),
            None => {}
        }
        if !alternatives.is_empty() {
            sql.push_str(&format!(" AND ({})", alternatives.join(" OR ")));
        }
        sql.push_str(" ORDER BY at DESC, cursor IS NULL DESC, cursor DESC");
        if let Some(n) = limit {
            sql.push_str(&format!(" LIMIT {n}"));
        }
        let mut stmt = conn.prepare(&sql).map_err(db)?;
        let params: Vec<&dyn rusqlite::ToSql> = args.iter().map(|b| b.as_ref()).collect();
        let ids = stmt
            .query_map(params.as_slice(), |r| r.get::<_, String>(0))
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        drop(stmt);
        let view = self.view_around(&ids, true)?;
        Ok((ids, view))
    }

    /// Entry ids starting with `prefix` (lowercase hex), at most `limit`.
    pub(crate) fn ids_with_prefix(
        &self,
        prefix: &str,
        limit: usize,
    ) -> Result<Vec<String>, ClientError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached(
                "SELECT entry FROM items WHERE entry >= ?1 AND entry < ?2 AND readable = 1 LIMIT ?3",
            )
            .map_err(db)?;
        let upper = format!("{prefix}g");
        let ids = stmt
            .query_map(params![prefix, upper, limit as i64], |r| {
                r.get::<_, String>(0)
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        Ok(ids)
    }

    /// The heads of every chain this device accepted.
    pub fn stored_heads(&self) -> Result<Vec<SeenHead>, ClientError> {
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached("SELECT device, head_seq, head_hash FROM chains WHERE head_seq > 0")
            .map_err(db)?;
        let heads = stmt
            .query_map([], |r| {
                Ok((device_of(r.get(0)?)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?
            .into_iter()
            .filter_map(|(device, seq, hash): (DeviceId, u64, Vec<u8>)| {
                Some(SeenHead {
                    device,
                    seq,
                    hash: hash_of(hash)?,
                })
            })
            .collect();
        Ok(heads)
    }

    /// The problems kept from arrival, plus the ones that depend on what the
    /// partner's latest items say (withheld from them, roster disagreements).
    pub fn known_problems(&self) -> Result<Vec<Problem>, ClientError> {
        let mut out = Vec::new();
        if let Some(p) = self
            .db
            .get(crate::profile::RETRACTION_KEY)?
            .and_then(|j| serde_json::from_str::<Problem>(&j).ok())
        {
            out.push(p);
        }
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached("SELECT kind, detail, cursor FROM problems ORDER BY id")
            .map_err(db)?;
        let stored = stmt
            .query_map([], |r| {
                Ok(Problem {
                    kind: r.get(0)?,
                    detail: r.get(1)?,
                    cursor: r.get::<_, Option<i64>>(2)?.map(|c| c as u64),
                })
            })
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        out.extend(stored);
        let partner = self
            .db
            .get("partner_name")?
            .unwrap_or_else(|| "your partner".into());
        let claim: Option<(i64, u64)> = self.db.get("latest_claim")?.and_then(|v| {
            let (a, b) = v.split_once(':')?;
            Some((a.parse().ok()?, b.parse().ok()?))
        });
        if let Some((seen_at, of_me)) = claim {
            if let Some(seq) = self
                .db
                .first_acked_after(of_me, seen_at - WITHHELD_MARGIN_MS)?
            {
                out.push(Problem {
                    kind: "withheld_from_partner".into(),
                    detail: format!(
                        "{partner}'s devices have not received your envelope {seq}, although they synced well after the relay accepted it: the relay may be withholding it from {partner}"
                    ),
                    cursor: None,
                });
            }
        }
        if self.db.get(crate::profile::RETRACTION_KEY)?.is_none() {
            let events = self.db.roster_with_times()?;
            let mut stmt = conn
                .prepare_cached("SELECT len, hash, seen_at FROM roster_claims")
                .map_err(db)?;
            let claims = stmt
                .query_map([], |r| {
                    Ok((
                        RosterHead {
                            len: r.get::<_, i64>(0)? as u64,
                            hash: r.get(1)?,
                        },
                        r.get::<_, i64>(2)?,
                    ))
                })
                .map_err(db)?
                .collect::<Result<Vec<_>, _>>()
                .map_err(db)?;
            out.extend(crate::problems::roster_disagreements(
                &claims, &events, &partner,
            ));
        }
        Ok(out)
    }

    /// The readable entries of one kind (few: device changes, settings).
    pub(crate) fn entries_of_kind(&self, kind: &str) -> Result<Vec<Entry>, ClientError> {
        let roster = self.roster()?;
        let conn = self.db.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {ROW_COLUMNS} FROM items WHERE kind = ?1 AND readable = 1"
            ))
            .map_err(db)?;
        let rows = stmt
            .query_map([kind], row)
            .map_err(db)?
            .collect::<Result<Vec<_>, _>>()
            .map_err(db)?;
        self.open_rows(rows, &roster)
    }

    /// When `device` last wrote an item this device could read.
    pub(crate) fn last_item_at(&self, device: &DeviceId) -> Result<Option<i64>, ClientError> {
        self.db
            .conn()
            .query_row(
                "SELECT MAX(at) FROM items WHERE author = ?1",
                [device.0.to_vec()],
                |r| r.get(0),
            )
            .map_err(db)
    }

    /// The highest envelope number of `device` that this device holds with a
    /// valid signature (0 if none): what a revocation of it may not retract.
    pub fn highest_signed_seq(&self, device: &DeviceId) -> Result<u64, ClientError> {
        let mut best = 0;
        if *device == self.identity.id() {
            best = self.db.acked_times()?.last().map_or(0, |(seq, _)| *seq);
        }
        let conn = self.db.conn();
        let held: Option<i64> = conn
            .query_row(
                "SELECT MAX(seq) FROM (SELECT seq FROM items WHERE author = ?1
                 UNION ALL SELECT seq FROM chain_pending WHERE device = ?1)",
                [device.0.to_vec()],
                |r| r.get(0),
            )
            .map_err(db)?;
        Ok(best.max(held.unwrap_or(0) as u64))
    }
}

fn own_envelope(tx: &rusqlite::Transaction<'_>, seq: u64) -> Result<Option<Envelope>, ClientError> {
    let bytes: Option<Vec<u8>> = tx
        .prepare_cached("SELECT envelope FROM outbox WHERE seq = ?1")
        .map_err(db)?
        .query_row([seq as i64], |r| r.get(0))
        .optional()
        .map_err(db)?;
    Ok(bytes.and_then(|b| Envelope::decode(&b).ok()))
}

fn stored_hash(
    tx: &rusqlite::Transaction<'_>,
    device: &DeviceId,
    seq: u64,
) -> Result<Option<Hash32>, ClientError> {
    let h: Option<Vec<u8>> = tx
        .prepare_cached("SELECT hash FROM items WHERE author = ?1 AND seq = ?2")
        .map_err(db)?
        .query_row(params![device.0.to_vec(), seq as i64], |r| r.get(0))
        .optional()
        .map_err(db)?;
    Ok(h.and_then(hash_of))
}

fn pending_cursor(
    tx: &rusqlite::Transaction<'_>,
    env: &Envelope,
) -> Result<Option<u64>, ClientError> {
    let c: Option<i64> = tx
        .query_row(
            "SELECT cursor FROM chain_pending WHERE device = ?1 AND seq = ?2",
            params![env.header.author.0.to_vec(), env.header.seq as i64],
            |r| r.get(0),
        )
        .optional()
        .map_err(db)?;
    Ok(c.map(|c| c as u64))
}

/// Whole days from `from` to `to` (`YYYY-MM-DD`), 0 when either does not parse.
fn days_between(from: &str, to: &str) -> i64 {
    let parse = |d: &str| chrono::NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
    match (parse(from), parse(to)) {
        (Some(a), Some(b)) => (b - a).num_days().max(0),
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::StreakMark;
    use crate::db::LocalDb;
    use crate::problems::WITHHELD_MARGIN_MS;

    #[test]
    fn a_streak_mark_reads_back_and_anything_else_is_absent() {
        let mark = StreakMark {
            last: "2026-12-03".into(),
            count: 412,
            row: 120_651,
        };
        assert_eq!(StreakMark::decode(&mark.encode()), Some(mark));
        for bad in [
            "",
            "2026-12-03",
            "2026-12-03 4",
            "2026-13-03 4 5",
            "yesterday 4 5",
            "2026-12-03 -4 5",
            "2026-12-03 4 5 6",
        ] {
            assert_eq!(StreakMark::decode(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn an_item_missing_from_a_later_sync_of_the_partner_is_withheld() {
        let db = LocalDb::open(std::path::Path::new(":memory:")).unwrap();
        let hour = 60 * 60 * 1000;
        for (seq, acked_at) in [(1, 0), (2, hour), (3, 5 * hour)] {
            db.conn()
                .execute(
                    "INSERT INTO outbox (seq, entry, envelope, queued_at, acked, acked_at)
                     VALUES (?1, ?2, x'00', 0, 1, ?3)",
                    rusqlite::params![seq, vec![seq as u8; 16], acked_at],
                )
                .unwrap();
        }
        let withheld = |seen_at: i64, of_me: u64| {
            db.first_acked_after(of_me, seen_at - WITHHELD_MARGIN_MS)
                .unwrap()
        };
        // The partner synced at 3 h and had seen up to 2: fine (3 came later).
        assert_eq!(withheld(3 * hour, 2), None);
        // Synced at 3 h but had only 1: envelope 2, acked at 1 h, was kept back.
        assert_eq!(withheld(3 * hour, 1), Some(2));
        // Within the clock margin it is not (yet) a problem.
        assert_eq!(withheld(hour + WITHHELD_MARGIN_MS - 1, 1), None);
        assert_eq!(withheld(hour + WITHHELD_MARGIN_MS + 1, 1), Some(2));
    }
}
