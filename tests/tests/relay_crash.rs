//! Proves "an acknowledged write survives kill -9 of the relay at any moment": four
//! devices append concurrently to the real `attune-relay` binary, which is killed
//! with SIGKILL mid-stream 25 times and restarted on the same database; every
//! acknowledged envelope is then present exactly once, where it was acknowledged.
//! On PostgreSQL (`ATTUNE_TEST_ENGINE=postgres`) half the devices write through
//! a second instance on the same database, which keeps serving throughout.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use attune_core::relay::RelayClient;
use attune_crypto::DeviceIdentity;
use attune_proto::{Hash32, RosterChange};
use attune_tests::acked::{audit, deliver, pull_all, Acked, Audit, Tally};
use attune_tests::{rand_in, Chain, Relay, TestSpace};

/// How many times the relay is killed with SIGKILL.
const KILLS: usize = 25;
/// Devices appending at once: the creator and three linked devices.
const DEVICES: usize = 4;
/// Plaintext bytes per envelope.
const CONTENT: usize = 1024;
/// Longest a single request may take before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest the writers may take to get their last batch acknowledged.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What one writer saw.
#[derive(Debug, Default)]
struct WriterReport {
    acked: Vec<Acked>,
    /// Envelopes built (the chain's last sequence number).
    built: u64,
    tally: Tally,
    /// Why the writer gave up, if it did: the relay refused a batch it should have
    /// taken, or answered inconsistently.
    error: Option<String>,
}

/// Appends batches until `stop` is set; each is re-sent (the same bytes) until the
/// relay acknowledges it, so the final state is known.
async fn writer(
    client: RelayClient,
    identity: DeviceIdentity,
    space: Arc<TestSpace>,
    stop: Arc<AtomicBool>,
    acks: Arc<AtomicU64>,
) -> WriterReport {
    let mut chain = Chain::new(&identity);
    let mut report = WriterReport::default();
    while !stop.load(Ordering::SeqCst) {
        // Half single envelopes, half small batches.
        let n = if rand_in(0, 1) == 0 {
            1
        } else {
            rand_in(2, 8) as usize
        };
        let bytes: Vec<Vec<u8>> = (0..n)
            .map(|_| {
                let mut content = vec![0u8; CONTENT];
                let tag = format!("{} {} ", identity.id().to_hex(), chain.seq + 1);
                for (i, b) in content.iter_mut().enumerate() {
                    *b = tag.as_bytes()[i % tag.len()];
                }
                chain.next(&space, &content).encode()
            })
            .collect();
        let d = deliver(&client, space.space, &bytes, REQUEST_TIMEOUT).await;
        report.tally.add(&d);
        match d.outcome {
            Ok(acked) => {
                acks.fetch_add(acked.len() as u64, Ordering::SeqCst);
                report.acked.extend(acked);
            }
            Err(e) => {
                report.error = Some(e);
                break;
            }
        }
    }
    report.built = chain.seq;
    report
}

/// Sets up the space with `DEVICES` writers: the creator plus devices it links.
async fn setup(relay: &Relay) -> (Arc<TestSpace>, Vec<DeviceIdentity>) {
    let creator = DeviceIdentity::generate();
    let mut space = TestSpace::new(&creator);
    let member = match space.events[0].event.change {
        RosterChange::Create { member, .. } => member,
        _ => unreachable!("the first roster event creates the space"),
    };
    let client = relay.client(&creator);
    client
        .create_space(space.create_event())
        .await
        .expect("the space is created");
    let mut devices = vec![creator.clone()];
    let mut links = Vec::new();
    for _ in 1..DEVICES {
        let other = DeviceIdentity::generate();
        let ev = space.next_event(
            &creator,
            RosterChange::Link {
                member,
                device: other.public(),
            },
        );
        links.push(ev.encode());
        space.events.push(ev);
        devices.push(other);
    }
    client
        .append_roster(space.space, links)
        .await
        .expect("the devices are linked");
    (Arc::new(space), devices)
}

#[test]
fn acknowledged_writes_survive_kill_9() {
    let started = Instant::now();
    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(dir.path(), &[]);
    // On PostgreSQL a second instance shares the database and is never killed:
    // half the writers use it, so the kills hit one of two live instances.
    let second = relay
        .pg
        .clone()
        .map(|url| Relay::start_postgres(&dir.path().join("second"), &url, &[]));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();

    let (space, devices) = rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(30), setup(&relay))
            .await
            .expect("setup finishes within 30 s")
    });

    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = devices
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let through = match &second {
                Some(second) if i % 2 == 1 => second,
                _ => &relay,
            };
            rt.spawn(writer(
                through.client(d),
                d.clone(),
                space.clone(),
                stop.clone(),
                acks.clone(),
            ))
        })
        .collect();

    // Kill the relay at random moments while the writers run; the restart reuses the
    // same database file and port, so the writers' retries reach the new process.
    let mut quiet_intervals = 0;
    for _ in 0..KILLS {
        let before = acks.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(rand_in(50, 300)));
        if acks.load(Ordering::SeqCst) == before {
            quiet_intervals += 1;
        }
        relay.kill9();
        // Sometimes stay down a moment, so writers also meet a refused connection.
        std::thread::sleep(Duration::from_millis(rand_in(0, 30)));
        relay.restart();
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the kill loop is taking too long"
        );
    }

    // Stop making new batches; every pending one is retried until acknowledged.
    stop.store(true, Ordering::SeqCst);
    let reports: Vec<WriterReport> = rt.block_on(async {
        tokio::time::timeout(DRAIN_TIMEOUT, futures_util::future::join_all(writers))
            .await
            .expect("the writers drain within the time limit")
            .into_iter()
            .map(|r| r.expect("a writer task does not panic"))
            .collect()
    });
    let pulled = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            pull_all(&relay.client(&devices[0]), space.space),
        )
        .await
        .expect("the final pull finishes within 30 s")
    });

    // --- What the relay holds: every acknowledged envelope, at its cursor, byte for
    // byte, once. ---
    let acked: Vec<&Acked> = reports.iter().flat_map(|r| r.acked.iter()).collect();
    let Audit {
        lost,
        dup_entries,
        dup_seqs,
        cursor_reused,
        mut per_author,
        last_cursor,
    } = audit(space.space, &pulled, acked.iter().copied());
    let duplicated = dup_entries + dup_seqs + cursor_reused;
    let lost_n = lost.len();

    // --- The file itself, after one more kill -9. ---
    relay.kill9();
    let integrity = relay.integrity();
    let rows = relay.count("SELECT COUNT(*) FROM envelopes");
    let log = relay.log_text();
    let log_errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect();
    rt.shutdown_timeout(Duration::from_secs(5));

    println!(
        "crash test ({}): {KILLS} kills, {} acknowledged, {lost_n} lost, {duplicated} duplicated, integrity {integrity}",
        if second.is_some() {
            "PostgreSQL, two instances, one killed"
        } else {
            "SQLite"
        },
        acked.len()
    );
    println!(
        "  {}, {} of {KILLS} intervals without an acknowledgement, \
         cursors 1..={last_cursor}, {} error/warning lines in the relay log, {:.1} s",
        Tally::sum(reports.iter().map(|r| &r.tally)),
        quiet_intervals,
        log_errors.len(),
        started.elapsed().as_secs_f64()
    );

    assert!(
        lost.is_empty(),
        "{lost_n} acknowledged envelopes lost:\n{}",
        lost.join("\n")
    );
    assert_eq!(dup_entries, 0, "no entry id is stored twice");
    assert_eq!(dup_seqs, 0, "no (author, seq) is stored twice");
    assert_eq!(cursor_reused, 0, "no cursor was acknowledged twice");
    assert_eq!(integrity, "ok", "PRAGMA integrity_check");
    assert_eq!(rows as usize, acked.len(), "rows in the envelopes table");
    let errors: Vec<String> = reports
        .iter()
        .enumerate()
        .filter_map(|(i, r)| r.error.as_ref().map(|e| format!("writer {i}: {e}")))
        .collect();
    assert!(
        errors.is_empty(),
        "the relay refused or garbled writes:\n{}",
        errors.join("\n")
    );
    // --- Per author: 1..=n, no gap, chained, and n is everything the writer built. ---
    for (i, r) in reports.iter().enumerate() {
        let id = devices[i].id();
        let got = per_author.remove(&id).unwrap_or_default();
        let seqs: Vec<u64> = got.iter().map(|g| g.0).collect();
        let expect: Vec<u64> = (1..=r.built).collect();
        assert_eq!(
            seqs,
            expect,
            "device {i} ({}): sequence numbers in cursor order are 1..={}",
            id.to_hex(),
            r.built
        );
        let mut prev = Hash32::ZERO;
        for (seq, p, hash) in &got {
            assert_eq!(
                *p, prev,
                "device {i}: envelope {seq} chains to its predecessor"
            );
            prev = *hash;
        }
        assert_eq!(
            r.acked.len() as u64,
            r.built,
            "device {i}: every envelope built was acknowledged in the end"
        );
    }
    assert!(
        per_author.is_empty(),
        "no envelopes from unknown authors: {:?}",
        per_author.keys().map(|k| k.to_hex()).collect::<Vec<_>>()
    );
    assert_eq!(
        pulled.len(),
        acked.len(),
        "the relay holds exactly the acknowledged envelopes"
    );

    for l in log_errors.iter().take(20) {
        println!("  relay log: {l}");
    }
    assert!(
        !log.contains("panicked"),
        "the relay panicked; see its log:\n{log}"
    );
    assert!(
        acked.len() >= 100,
        "the writers made real progress ({} acknowledged)",
        acked.len()
    );
    assert!(
        quiet_intervals <= KILLS / 2,
        "writes were acknowledged between most kills ({quiet_intervals} quiet intervals)"
    );
    assert!(
        started.elapsed() < Duration::from_secs(120),
        "the crash test is bounded in time"
    );
}

/// Kills the relay once the pull has stored its first page: the pages already
/// fetched are stored, then the pull fails.
struct KillAfterFirstPage<'a> {
    relay: &'a mut Relay,
    killed: bool,
}

impl attune_core::ui::Progress for KillAfterFirstPage<'_> {
    fn advance(&mut self, _done: u64, _more: bool) {
        if !self.killed {
            self.relay.kill9();
            self.killed = true;
        }
    }
}

/// A pull's commits do not wait for the disk; however it ends (the relay
/// killed in the middle of it, or its future dropped), commits wait for the
/// disk again afterwards, and the next sync resumes where the stored envelopes
/// end and verifies the whole history.
#[test]
fn a_pull_cut_short_leaves_full_durability_and_syncs_on() {
    use attune_core::item::Body;
    use attune_core::profile::Profile;
    use futures_util::FutureExt;

    const ENTRIES: usize = 3_000;
    let mut c = attune_tests::Couple::new(&[]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    {
        let mut a = Profile::open(&c.a.home).unwrap();
        // A test profile, written in bulk.
        a.db.without_durability().unwrap();
        for i in 0..ENTRIES {
            a.write(
                Body::Journal {
                    text: format!("entry {i}"),
                },
                false,
            )
            .unwrap();
        }
        rt.block_on(attune_core::sync::push(&mut a)).unwrap();
    }
    let mut b = Profile::open(&c.b.home).unwrap();
    assert!(b.db.fully_durable().unwrap());

    // Dropped while it waits for its first page.
    rt.block_on(async {
        let cut = attune_core::sync::pull(&mut b, &mut attune_core::ui::Quiet).now_or_never();
        assert!(cut.is_none(), "the pull cannot have finished in one poll");
    });
    assert!(b.db.fully_durable().unwrap());

    // The relay killed after the first page (of six) is stored.
    let mut progress = KillAfterFirstPage {
        relay: &mut c.relay,
        killed: false,
    };
    let failed = rt.block_on(attune_core::sync::pull(&mut b, &mut progress));
    assert!(failed.is_err(), "{failed:?}");
    assert!(b.db.fully_durable().unwrap());
    let stored = b.db.received().unwrap();
    assert!(
        !stored.is_empty() && stored.len() < ENTRIES,
        "{} stored",
        stored.len()
    );
    let resume = b.db.last_cursor().unwrap();
    assert_eq!(stored.last().map(|(c, _, _)| *c), Some(resume));

    // The relay back: the next sync fetches the rest and verifies it all.
    c.relay.restart();
    let report = rt
        .block_on(attune_core::sync::sync(&mut b, &mut attune_core::ui::Quiet))
        .unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert!(b.db.fully_durable().unwrap());
    let view = b.view().unwrap();
    let journals = view
        .entries
        .iter()
        .filter(|e| !e.mine && matches!(e.item.body, Body::Journal { .. }))
        .count();
    assert_eq!(journals, ENTRIES);
}
