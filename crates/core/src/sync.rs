//! Sync: push the outbox, refresh the roster, pull new envelopes, verify.
//! Every step is idempotent, so a sync killed at any point loses nothing and
//! duplicates nothing when run again.

use crate::db::Incoming;
use attune_proto::api::Stored;
use attune_proto::{Roster, RosterChange, SignedRosterEvent};

use crate::item::Head;
use crate::profile::{ClientError, Problem, Profile, RETRACTION_KEY};
use crate::relay::RelayError;
use crate::ui::Progress;

/// Envelopes per append request.
const PUSH_BATCH: usize = 100;
/// Envelope bytes per append request: base64 makes them 4/3 larger, which stays
/// well under the relay's default body limit (8 MiB). One larger envelope goes
/// alone.
const PUSH_BYTES: usize = 4 * 1024 * 1024;

/// Splits envelopes of these sizes into consecutive batches of at most
/// `max_count` envelopes and `max_bytes` bytes (a single larger one alone).
fn batches(sizes: &[usize], max_count: usize, max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == max_count || (i > start && bytes + size > max_bytes);
        if full {
            out.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        out.push(start..sizes.len());
    }
    out
}
/// Envelopes per pull page.
const PULL_PAGE: usize = 500;

/// Checks the cursors a relay served after `after`: each must be higher than the
/// one before. A relay that names a cursor at or below one this device already
/// has is trying to slot envelopes into the past (or to make it pull the same
/// ones for ever), so nothing of such a page is kept.
pub fn check_cursors(after: u64, cursors: &[u64], next: u64) -> Result<(), ClientError> {
    // Cursors are SQLite integers on both sides: one past i64::MAX would wrap when
    // stored and sort before everything this device holds.
    if let Some(&c) = cursors
        .iter()
        .chain([&next])
        .find(|&&c| c > i64::MAX as u64)
    {
        return Err(ClientError::Integrity(format!(
            "the relay served position {c}, beyond any real position: it would sort before the history this device already has; nothing from that answer was kept"
        )));
    }
    let mut last = after;
    for &c in cursors {
        if c <= last {
            return Err(ClientError::Integrity(format!(
                "the relay served an envelope at position {c} after position {last}: positions must only grow, so it is reordering or rewriting the history this device already has; nothing from that answer was kept"
            )));
        }
        last = c;
    }
    if next < last {
        return Err(ClientError::Integrity(format!(
            "the relay said to continue after position {next}, below the {last} it had just served: it is trying to make this device read envelopes again; nothing from that answer was kept"
        )));
    }
    Ok(())
}

#[derive(Debug, Default)]
pub struct SyncReport {
    pub sent: usize,
    pub received: usize,
    /// The integrity problems this device knows of after the sync.
    pub problems: Vec<Problem>,
    /// Exchanges that opened in this sync (both answers now readable here).
    pub opened: Vec<crate::practice::Exchange>,
}

/// Sends every queued envelope, in sequence order. A repeat of an envelope the
/// relay already stored comes back as a duplicate and is simply acknowledged.
pub async fn push(profile: &mut Profile) -> Result<usize, ClientError> {
    profile.release_due()?;
    // Written before an update to protocol 2 and not sent then: sealed again.
    profile.reseal_legacy_outbox()?;
    let relay = profile.relay()?;
    let space = profile.space()?;
    let queued = profile.db.outbox()?;
    let mut sent = 0;
    let sizes: Vec<usize> = queued.iter().map(|q| q.envelope.len()).collect();
    for range in batches(&sizes, PUSH_BATCH, PUSH_BYTES) {
        let chunk = &queued[range];
        relay
            .append_with_holds(
                space,
                chunk.iter().map(|q| q.envelope.clone()).collect(),
                // Every envelope has a slot; only a sealed answer's means anything.
                chunk
                    .iter()
                    .map(|q| {
                        q.held
                            .clone()
                            .unwrap_or_else(|| attune_crypto::random_hold().encode())
                    })
                    .collect(),
            )
            .await?;
        let seqs: Vec<u64> = chunk.iter().map(|q| q.seq).collect();
        let now = profile.now();
        profile.db.acknowledge(&seqs, now)?;
        sent += chunk.len();
    }
    Ok(sent)
}

/// Fetches the roster and keeps it only if it verifies and extends the one held.
/// A revocation that would end a device's chain before an envelope this device
/// already holds from it would retract what was shared: the roster is kept only
/// up to the event before it, and the refusal is recorded for good.
pub async fn refresh_roster(profile: &mut Profile) -> Result<(), ClientError> {
    let relay = profile.relay()?;
    let space = profile.space()?;
    let events = relay.roster(space).await?;
    let decoded = events
        .iter()
        .map(|e| SignedRosterEvent::decode(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Pairing(format!("the relay served a malformed roster: {e}")))?;
    let roster = Roster::verify(space, &decoded).map_err(|e| {
        ClientError::Pairing(format!(
            "the relay served a roster that does not verify ({e}); keeping the one this device had"
        ))
    })?;
    let held = profile.db.roster()?;
    if held.len() > events.len() || held[..] != events[..held.len()] {
        return Err(ClientError::Pairing(
            "the relay served a roster that rewrites history this device already holds; keeping the one this device had".into(),
        ));
    }
    if roster.device(&profile.identity.id()).is_none() {
        return Err(ClientError::Pairing(
            "the relay served a roster without this device".into(),
        ));
    }
    let mut keep = events.len();
    for (i, signed) in decoded.iter().enumerate().skip(held.len()) {
        let RosterChange::Revoke { device, last_seq } = signed.event.change else {
            continue;
        };
        let written = profile.highest_signed_seq(&device)?;
        if written <= last_seq {
            continue;
        }
        let signer_member = roster.device(&signed.event.signer).map(|d| d.member);
        let mine = signer_member.is_some() && signer_member == profile.member().ok();
        let who = if mine {
            "one of your own devices".to_string()
        } else {
            format!(
                "{}'s device",
                profile
                    .db
                    .get("partner_name")?
                    .unwrap_or_else(|| "your partner".into())
            )
        };
        let problem = Problem {
            kind: "retraction".into(),
            detail: format!(
                "{who} signed a removal of device {} that would cancel its envelopes after number {last_seq}, but this device already has its envelope {written}: what was shared cannot be taken back, so this device ignores that removal and every membership change after it",
                crate::problems::short(&device)
            ),
            cursor: None,
        };
        profile.db.set(
            RETRACTION_KEY,
            &serde_json::to_string(&problem).unwrap_or_default(),
        )?;
        keep = i;
        break;
    }
    let now = profile.now();
    profile.db.set_roster(&events[..keep], now)?;
    Ok(())
}

/// What a relay served at a cursor, as the local store keeps it.
pub fn incoming(body: Stored) -> Incoming {
    match body {
        Stored::Envelope(b) => Incoming::Envelope(b.0),
        Stored::Reveal(b) => Incoming::Reveal(b.0),
    }
}

/// Pages fetched ahead of the one being stored and verified: downloading
/// overlaps with the disk and the signature checks, in bounded memory.
const PREFETCH_PAGES: usize = 2;
/// Envelopes received and not yet verified: past this many, a long pull
/// verifies what it has before it stores more, so a new device's history is
/// checked while the rest of it downloads.
const VERIFY_EVERY: usize = 5_000;

/// One page as the fetcher passes it on, its cursors already checked.
struct Fetched {
    rows: Vec<(u64, Incoming)>,
    more: bool,
}

/// Fetches every page after `after`, in order, into `out`; stops at the first
/// error (which it passes on) or when the receiver is gone.
async fn fetch_pages(
    relay: crate::relay::RelayClient,
    space: attune_proto::SpaceId,
    mut after: u64,
    out: tokio::sync::mpsc::Sender<Result<Fetched, ClientError>>,
) {
    let mut limit = PULL_PAGE;
    loop {
        let page = match relay.pull(space, after, limit).await {
            // Large envelopes: ask for fewer at a time, down to one.
            Err(RelayError::AnswerTooLarge { .. }) if limit > 1 => {
                limit = (limit / 8).max(1);
                continue;
            }
            Err(e) => {
                let _ = out.send(Err(e.into())).await;
                return;
            }
            Ok(page) => page,
        };
        let rows: Vec<(u64, Incoming)> = page
            .envelopes
            .into_iter()
            .map(|e| (e.cursor, incoming(e.body)))
            .collect();
        let cursors: Vec<u64> = rows.iter().map(|(c, _)| *c).collect();
        if let Err(e) = check_cursors(after, &cursors, page.next) {
            let _ = out.send(Err(e)).await;
            return;
        }
        if page.more && rows.is_empty() && page.next == after {
            let _ = out
                .send(Err(ClientError::Integrity(
                    "the relay says more envelopes follow but sends none: it would keep this device pulling for ever".into(),
                )))
                .await;
            return;
        }
        after = page.next;
        let more = page.more;
        if out.send(Ok(Fetched { rows, more })).await.is_err() || !more {
            return;
        }
    }
}

/// Stops the fetcher when the pull ends early (an error, a dropped future).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Pulls everything after the last cursor: a task fetches pages ahead while
/// this one stores them (the pages already waiting in one commit) and, in a
/// long pull, verifies what arrived every [`VERIFY_EVERY`] envelopes. Envelopes
/// of authors the held roster does not know yet wait for the roster that
/// [`sync`] fetches after the pull.
pub async fn pull(
    profile: &mut Profile,
    progress: &mut dyn Progress,
) -> Result<usize, ClientError> {
    let relaxed = Relaxed::new(profile)?;
    let received = pull_relaxed(&mut *relaxed.0, progress).await;
    // Full durability again before anything else is written; a pull that
    // ends any other way (an error, its future dropped) restores it on drop.
    relaxed.finish()?;
    received
}

/// A profile whose local database keeps little in memory while it is held
/// (`LocalDb::lean`), if asked to; dropped, it has its usual settings again.
struct Lean<'a>(&'a mut Profile, bool);

impl<'a> Lean<'a> {
    fn new(profile: &'a mut Profile, lean: bool) -> Result<Self, ClientError> {
        if lean {
            profile.db.lean(true)?;
        }
        Ok(Self(profile, lean))
    }
}

impl Drop for Lean<'_> {
    fn drop(&mut self) {
        if self.1 {
            // Only what the rest of this process reads is affected: the
            // settings end with the connection.
            let _ = self.0.db.lean(false);
        }
    }
}

/// A profile whose commits do not wait for the disk while it is held: what a
/// pull stores can be fetched again, and each commit carries its own resume
/// point (the received cursor with the envelopes, the indexed cursor with the
/// index rows), so a power loss can only take the newest commits, and the next
/// pull fetches them again. Dropped, it restores full durability, however the
/// pull ended.
struct Relaxed<'a>(&'a mut Profile);

impl<'a> Relaxed<'a> {
    fn new(profile: &'a mut Profile) -> Result<Self, ClientError> {
        profile.db.relax_durability()?;
        Ok(Self(profile))
    }

    /// Restores full durability, reporting a failure to.
    fn finish(self) -> Result<(), ClientError> {
        self.0.db.full_durability()?;
        Ok(())
    }
}

impl Drop for Relaxed<'_> {
    fn drop(&mut self) {
        // Also after `finish` (harmless); a failure here has nowhere to go,
        // and the setting ends with the connection anyway.
        let _ = self.0.db.full_durability();
    }
}

async fn pull_relaxed(
    profile: &mut Profile,
    progress: &mut dyn Progress,
) -> Result<usize, ClientError> {
    let relay = profile.relay()?;
    let space = profile.space()?;
    let after = profile.db.last_cursor()?;
    let (tx, mut rx) = tokio::sync::mpsc::channel(PREFETCH_PAGES);
    let _fetcher = AbortOnDrop(tokio::spawn(fetch_pages(relay, space, after, tx)));
    let mut received = 0;
    let mut unverified = 0;
    let mut verified = 0;
    // Verifying stops for this pull once it waits on an author the roster
    // does not know (it would check the same envelopes again each time).
    let mut verify_as_we_go = true;
    while let Some(first) = rx.recv().await {
        let mut pages = vec![first?];
        while pages.len() < PREFETCH_PAGES {
            match rx.try_recv() {
                Ok(page) => pages.push(page?),
                Err(_) => break,
            }
        }
        let more = pages.last().is_some_and(|p| p.more);
        let rows: Vec<(u64, Incoming)> = pages.into_iter().flat_map(|p| p.rows).collect();
        let now = profile.now();
        profile.db.store_received(&rows, now)?;
        received += rows.len();
        unverified += rows.len();
        progress.advance(received as u64, more);
        if verify_as_we_go && more && unverified >= VERIFY_EVERY {
            let n = profile.index_known_authors()?;
            verify_as_we_go = n > 0;
            verified += n;
            // Reveals released by the relay are stored, not verified here.
            unverified = 0;
            progress.verified(verified as u64);
        }
    }
    progress.finish();
    Ok(received)
}

/// A full sync: pull, roster, verify what arrived (once, into the store), queue
/// what is due (check-ins that crossed move, answers sealed before hold slots
/// reveal), then send everything waiting as one batch in sequence order, and
/// pull once more for what that batch released. Its requests have one shape
/// whatever was written (PROTOCOL.md §13). Remembers the heads it has seen.
pub async fn sync(
    profile: &mut Profile,
    progress: &mut dyn Progress,
) -> Result<SyncReport, ClientError> {
    let since = profile.db.last_cursor()?;
    // A first sync (a new or restored device) receives the whole history.
    let lean = Lean::new(profile, since == 0)?;
    let profile = &mut *lean.0;
    let mut received = pull(profile, progress).await?;
    // After the pull, so the roster is at least as new as any item received
    // (items carry the roster their author had, and a longer one is a problem).
    refresh_roster(profile).await?;
    profile.index_new()?;
    // Check-ins opened at once by both: the later one moves to the earlier.
    // Answers sealed before hold slots: reveal our keys where both have sealed.
    let due = profile.settle()?;
    profile.move_crossed(&due.crossed)?;
    for (exercise, key) in due.reveals_due {
        profile.write(crate::item::Body::Reveal { exercise, key }, false)?;
    }
    let sent = push(profile).await?;
    if sent > 0 {
        // A sealed answer in the batch may have released the partner's.
        received += pull(profile, &mut crate::ui::Quiet).await?;
        profile.index_new()?;
    }
    // What is still due (a partner's answer in the second pull) waits for the
    // next sync, which looks at it again.
    if profile.settle()?.is_empty() {
        profile.clear_dirty()?;
    }
    // A device's first pull (a new device, a restored one) receives the whole
    // history: every exchange in it opened long ago, none is news.
    let opened = if since == 0 {
        Vec::new()
    } else {
        profile.opened_after(since)?
    };
    remember_heads(profile)?;
    let now = profile.now();
    profile.set_last_sync_ms(now)?;
    Ok(SyncReport {
        sent,
        received,
        problems: profile.known_problems()?,
        opened,
    })
}

/// Stores the heads of the other devices' chains this device has accepted: the
/// next item it writes carries them.
pub fn remember_heads(profile: &Profile) -> Result<(), ClientError> {
    let heads: Vec<Head> = profile
        .stored_heads()?
        .iter()
        .filter(|h| h.device != profile.identity.id())
        .map(|h| Head {
            device: h.device.to_hex(),
            seq: h.seq,
            hash: h.hash.to_hex(),
        })
        .collect();
    profile
        .db
        .set("heads", &serde_json::to_string(&heads).unwrap_or_default())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{batches, check_cursors};

    #[test]
    fn served_cursors_must_grow_past_the_resume_point() {
        assert!(check_cursors(5, &[6, 7, 9], 9).is_ok());
        assert!(check_cursors(5, &[], 5).is_ok());
        // Into the past, a repeat, out of order, or a resume point moved back.
        for (after, cursors, next) in [
            (5, vec![3], 3),
            (5, vec![5], 5),
            (5, vec![6, 6], 6),
            (5, vec![7, 6], 7),
            (5, vec![6, 7], 6),
            (5, vec![], 4),
            (5, vec![1 << 63], 1 << 63),
            (5, vec![6], u64::MAX),
        ] {
            let err = check_cursors(after, &cursors, next).unwrap_err();
            assert_eq!(err.exit_code(), 3, "{after} {cursors:?} {next}");
        }
    }

    #[test]
    fn batches_respect_count_and_bytes_and_keep_order() {
        assert!(batches(&[], 3, 10).is_empty());
        assert_eq!(batches(&[1; 7], 3, 100), vec![0..3, 3..6, 6..7]);
        assert_eq!(batches(&[4, 4, 4, 4], 10, 9), vec![0..2, 2..4]);
        // One envelope over the byte budget still goes, alone.
        assert_eq!(batches(&[2, 50, 2, 2], 10, 9), vec![0..1, 1..2, 2..4]);
        assert_eq!(batches(&[9, 1], 10, 9), vec![0..1, 1..2]);
    }
}
