//! Writing through relay crashes, and checking afterwards that the relay holds every
//! acknowledged envelope exactly once: [`deliver`] re-sends a batch (the same bytes)
//! until the relay acknowledges it, [`pull_all`] reads a space back, and [`audit`]
//! compares the two.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use attune_core::relay::{RelayClient, RelayError};
use attune_proto::{DeviceId, EntryId, Envelope, Hash32, SpaceId};

use crate::rand_in;

/// One envelope the relay acknowledged.
#[derive(Debug, Clone)]
pub struct Acked {
    pub author: DeviceId,
    pub seq: u64,
    pub entry: EntryId,
    pub cursor: u64,
    pub bytes: Vec<u8>,
}

/// How delivering one batch went.
#[derive(Debug)]
pub struct Delivery {
    /// The batch as acknowledged, or why the relay's answers cannot be right (a
    /// refusal it should not have sent, or an inconsistent answer).
    pub outcome: Result<Vec<Acked>, String>,
    pub requests: u64,
    /// Attempts whose outcome was unknown: no answer in time or a broken connection.
    pub unreachable: u64,
    /// 5xx answers, which leave the outcome unknown too.
    pub server_errors: u64,
    /// 429 answers: refused before anything was stored.
    pub rate_limited: u64,
    /// Whether the acknowledgement came as duplicates (the relay had stored the
    /// batch already, on an attempt whose answer was lost).
    pub duplicates: bool,
}

impl Delivery {
    /// Whether some attempt ended with an unknown outcome before the batch was
    /// acknowledged (an in-doubt batch).
    pub fn in_doubt(&self) -> bool {
        self.unreachable + self.server_errors > 0
    }

    /// For an in-doubt batch: whether the relay had committed it before the attempt
    /// that failed (it was acknowledged as duplicates).
    pub fn committed_earlier(&self) -> bool {
        self.outcome.is_ok() && self.in_doubt() && self.duplicates
    }
}

/// What a writer's deliveries added up to.
#[derive(Debug, Default, Clone, Copy)]
pub struct Tally {
    pub requests: u64,
    /// Requests whose outcome was unknown (connection error or timeout).
    pub unreachable: u64,
    pub rate_limited: u64,
    pub server_errors: u64,
    /// In-doubt batches the relay had committed before the crash (acknowledged
    /// later as duplicates).
    pub in_doubt_committed: u64,
    /// In-doubt batches the relay had not committed (stored fresh on a retry).
    pub in_doubt_lost_before_commit: u64,
}

impl Tally {
    pub fn add(&mut self, d: &Delivery) {
        self.requests += d.requests;
        self.unreachable += d.unreachable;
        self.rate_limited += d.rate_limited;
        self.server_errors += d.server_errors;
        if d.in_doubt() && d.outcome.is_ok() {
            if d.committed_earlier() {
                self.in_doubt_committed += 1;
            } else {
                self.in_doubt_lost_before_commit += 1;
            }
        }
    }

    /// The sum of many writers' tallies.
    pub fn sum<'a>(all: impl IntoIterator<Item = &'a Tally>) -> Tally {
        all.into_iter().fold(Tally::default(), |mut t, x| {
            t.requests += x.requests;
            t.unreachable += x.unreachable;
            t.rate_limited += x.rate_limited;
            t.server_errors += x.server_errors;
            t.in_doubt_committed += x.in_doubt_committed;
            t.in_doubt_lost_before_commit += x.in_doubt_lost_before_commit;
            t
        })
    }
}

impl std::fmt::Display for Tally {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} requests, {} with unknown outcome, {} in-doubt batches had committed, {} had not, \
             {} rate-limited, {} server errors",
            self.requests,
            self.unreachable,
            self.in_doubt_committed,
            self.in_doubt_lost_before_commit,
            self.rate_limited,
            self.server_errors
        )
    }
}

/// Sends `batch` (encoded envelopes of one author, in chain order) until the relay
/// acknowledges it, re-sending the same bytes after every attempt whose outcome is
/// unknown, so that the final state is known. `request_timeout` bounds each attempt;
/// the caller bounds the whole.
pub async fn deliver(
    client: &RelayClient,
    space: SpaceId,
    batch: &[Vec<u8>],
    request_timeout: Duration,
) -> Delivery {
    let mut d = Delivery {
        outcome: Err(String::new()),
        requests: 0,
        unreachable: 0,
        server_errors: 0,
        rate_limited: 0,
        duplicates: false,
    };
    let headers: Vec<_> = batch
        .iter()
        .map(|b| {
            Envelope::decode(b)
                .expect("our own envelope decodes")
                .header
        })
        .collect();
    loop {
        d.requests += 1;
        let call = client.append(space, batch.to_vec());
        let Ok(answer) = tokio::time::timeout(request_timeout, call).await else {
            // No answer in time: as unknown as a broken connection.
            d.unreachable += 1;
            continue;
        };
        match answer {
            Ok(result) => {
                let results = result.results;
                let dups = results.iter().filter(|r| r.duplicate).count();
                d.outcome = if results.len() != batch.len() {
                    Err(format!(
                        "{} envelopes sent, {} results",
                        batch.len(),
                        results.len()
                    ))
                } else if dups != 0 && dups != results.len() {
                    Err(format!(
                        "a batch is all or nothing, yet {dups} of {} came back as duplicates",
                        results.len()
                    ))
                } else if dups != 0 && !d.in_doubt() {
                    Err("a batch sent for the first time came back as duplicates".into())
                } else {
                    d.duplicates = dups != 0;
                    Ok(headers
                        .iter()
                        .zip(batch)
                        .zip(results)
                        .map(|((h, raw), r)| Acked {
                            author: h.author,
                            seq: h.seq,
                            entry: h.entry,
                            cursor: r.cursor,
                            bytes: raw.clone(),
                        })
                        .collect())
                };
                return d;
            }
            // The relay went away mid-request or was down: the outcome is unknown.
            Err(RelayError::Unreachable { .. }) => {
                d.unreachable += 1;
                tokio::time::sleep(Duration::from_millis(rand_in(2, 15))).await;
            }
            // Refused before anything was stored: simply try again.
            Err(RelayError::Refused { status: 429, .. }) => {
                d.rate_limited += 1;
                tokio::time::sleep(Duration::from_millis(rand_in(10, 30))).await;
            }
            // A 5xx leaves the outcome unknown too; it is counted and reported.
            Err(RelayError::Refused { status, .. }) if status >= 500 => {
                d.server_errors += 1;
                tokio::time::sleep(Duration::from_millis(rand_in(2, 15))).await;
            }
            // Anything else (a sequence or chain conflict, say) means the relay lost
            // or rewrote something it had acknowledged.
            Err(e) => {
                let (first, last) = (&headers[0], &headers[headers.len() - 1]);
                d.outcome = Err(format!(
                    "device {} seq {}..={} (after {} attempts with unknown outcome): {e}",
                    first.author.to_hex(),
                    first.seq,
                    last.seq,
                    d.unreachable + d.server_errors
                ));
                return d;
            }
        }
    }
}

/// Every stored envelope of `space`, in cursor order, paging through `pull`.
pub async fn pull_all(client: &RelayClient, space: SpaceId) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = client
            .pull(space, after, 1000)
            .await
            .expect("the relay answers a pull");
        out.extend(page.envelopes.into_iter().filter_map(|s| match s.body {
            attune_proto::api::Stored::Envelope(b) => Some((s.cursor, b.0)),
            attune_proto::api::Stored::Reveal(_) => None,
        }));
        if !page.more {
            break;
        }
        assert!(page.next > after, "pull makes progress");
        after = page.next;
    }
    out
}

/// A space as read back, held against what the relay acknowledged.
#[derive(Debug, Default)]
pub struct Audit {
    /// One line per acknowledged envelope that is not where it was acknowledged.
    pub lost: Vec<String>,
    /// Entry ids stored more than once.
    pub dup_entries: usize,
    /// `(author, seq)` pairs stored more than once.
    pub dup_seqs: usize,
    /// Cursors acknowledged for two different envelopes.
    pub cursor_reused: usize,
    /// Per author, in cursor order: `(seq, prev, hash)`.
    pub per_author: HashMap<DeviceId, Vec<(u64, Hash32, Hash32)>>,
    /// The highest stored cursor.
    pub last_cursor: u64,
}

impl Audit {
    /// Everything counted as duplicated.
    pub fn duplicated(&self) -> usize {
        self.dup_entries + self.dup_seqs + self.cursor_reused
    }
}

/// Checks `pulled` (one space, as [`pull_all`] returns it) against `acked`: every
/// acknowledged envelope is stored at its cursor, byte for byte, and once.
pub fn audit<'a>(
    space: SpaceId,
    pulled: &[(u64, Vec<u8>)],
    acked: impl IntoIterator<Item = &'a Acked>,
) -> Audit {
    let mut a = Audit::default();
    let mut by_cursor: BTreeMap<u64, &[u8]> = BTreeMap::new();
    let mut entries: HashMap<EntryId, usize> = HashMap::new();
    let mut chains: HashMap<(DeviceId, u64), usize> = HashMap::new();
    for (cursor, raw) in pulled {
        assert!(
            *cursor > a.last_cursor,
            "cursors strictly increase: {cursor} after {}",
            a.last_cursor
        );
        a.last_cursor = *cursor;
        let env = Envelope::decode(raw).expect("a stored envelope decodes");
        let h = env.header;
        assert_eq!(h.space, space, "a stored envelope belongs to its space");
        *entries.entry(h.entry).or_default() += 1;
        *chains.entry((h.author, h.seq)).or_default() += 1;
        a.per_author
            .entry(h.author)
            .or_default()
            .push((h.seq, h.prev, env.hash()));
        by_cursor.insert(*cursor, raw);
    }
    a.dup_entries = entries.values().filter(|&&n| n > 1).count();
    a.dup_seqs = chains.values().filter(|&&n| n > 1).count();
    let mut acked_cursors = HashSet::new();
    for k in acked {
        if !acked_cursors.insert(k.cursor) {
            a.cursor_reused += 1;
        }
        let problem = match by_cursor.get(&k.cursor) {
            Some(stored) if *stored == k.bytes.as_slice() => None,
            Some(_) => Some("other bytes are stored there"),
            None => Some("nothing is stored there"),
        }
        .or_else(|| (!entries.contains_key(&k.entry)).then_some("its entry id is missing"));
        if let Some(problem) = problem {
            a.lost.push(format!(
                "device {} seq {} entry {} acknowledged at cursor {}: {problem}",
                k.author.to_hex(),
                k.seq,
                hex::encode(k.entry.0),
                k.cursor,
            ));
        }
    }
    a
}
