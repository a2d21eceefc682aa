//! A crash campaign: a scripted two-partner workload (journal entries and syncs by
//! both partners, through the real `attune` binary against the real `attune-relay`)
//! during which the relay and the clients are killed with SIGKILL at random points,
//! at least 50 times in one run. Afterwards every acknowledged write is present
//! exactly once, every outbox item is delivered exactly once, and no local or relay
//! database is corrupt (`PRAGMA integrity_check`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeSet, HashMap};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use attune_tests::{pair, random16, Attune, Relay};
use serde_json::{json, Value};

/// Kills (relay and client together) the campaign must reach.
const MIN_KILLS: usize = 50;
/// Kills of each kind the campaign aims for (not asserted: a fast machine may
/// finish most clients before the kill).
const AIM_EACH: usize = 20;
/// Upper bound on rounds, so the test stays bounded even if kills are rare.
const MAX_ROUNDS: usize = 400;
/// Longest the whole campaign phase may take before it stops adding rounds.
const CAMPAIGN_BUDGET: Duration = Duration::from_secs(60);
/// Longest one client child may run once it was not killed.
const CHILD_TIMEOUT: Duration = Duration::from_secs(20);

/// A tiny xorshift64* generator: the campaign is reproducible from its seed.
struct XorShift(u64);

impl XorShift {
    fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `feed --json`, after checking there is no integrity problem.
fn feed(who: &Attune) -> Vec<Value> {
    let v = who.run(&["feed", "--json"]).ok().json();
    assert_eq!(v["problems"], json!([]), "integrity problems: {v:#}");
    v["entries"].as_array().unwrap().clone()
}

fn integrity(db: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(
        db,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .unwrap();
    let rows: Vec<String> = conn
        .prepare("PRAGMA integrity_check")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    rows.join("\n")
}

/// Waits for a child at most `CHILD_TIMEOUT`, killing it after that.
fn wait_bounded(child: &mut Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + CHILD_TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// `sync` until it exits 0, at most a few times.
fn sync_until_ok(who: &Attune, name: &str) {
    let mut last = None;
    for _ in 0..10 {
        let r = who.run(&["sync"]);
        if r.code == 0 {
            return;
        }
        last = Some(r);
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("{name}: sync never succeeded after the campaign: {last:?}");
}

/// What one profile attempted during the campaign.
#[derive(Default)]
struct Attempts {
    /// Every journal text it was asked to write.
    texts: BTreeSet<String>,
    /// Texts whose `journal` exited 0 by itself (acknowledged to the user).
    acked: BTreeSet<String>,
    /// Texts whose `journal` was killed (outcome unknown).
    killed: BTreeSet<String>,
}

#[test]
fn a_crash_campaign_loses_nothing_duplicates_nothing_and_corrupts_nothing() {
    let started = Instant::now();
    let seed = std::env::var("ATTUNE_CRASH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| u64::from_le_bytes(random16()[..8].try_into().unwrap()));
    eprintln!("crash campaign seed {seed} (set ATTUNE_CRASH_SEED to replay the script)");
    let mut rng = XorShift::new(seed);

    let dir = tempfile::tempdir().unwrap();
    let mut relay = Relay::start(&dir.path().join("relay"), &[]);
    let a = Attune::new(&dir.path().join("a"));
    let b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &relay.url);
    let profiles = [("A", &a), ("B", &b)];
    let tag = hex::encode(&random16()[..4]);

    let mut attempts: [Attempts; 2] = [Attempts::default(), Attempts::default()];
    let (mut relay_kills, mut client_kills, mut rounds) = (0usize, 0usize, 0usize);
    let mut log = Vec::new();
    let campaign_started = Instant::now();
    while (relay_kills + client_kills < MIN_KILLS
        || relay_kills < AIM_EACH
        || client_kills < AIM_EACH)
        && rounds < MAX_ROUNDS
        && campaign_started.elapsed() < CAMPAIGN_BUDGET
    {
        rounds += 1;
        let who = rng.below(2) as usize;
        let (name, profile) = profiles[who];
        let write = rng.below(3) != 0;
        let text = format!("crash-{tag}-{name}-{rounds:04}");
        let args: Vec<&str> = if write {
            vec!["journal", "-m", &text]
        } else {
            vec!["sync"]
        };
        // 0: kill the relay, 1: kill the client, 2: nothing.
        let action = rng.below(5);
        let delay = Duration::from_millis(rng.below(61));
        let mut child = profile
            .command(&args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        if write {
            attempts[who].texts.insert(text.clone());
        }
        std::thread::sleep(delay);
        let what = match action {
            0 | 1 => {
                relay.kill9();
                relay_kills += 1;
                relay.restart();
                "relay killed"
            }
            2 | 3 => {
                if child.try_wait().unwrap().is_none() {
                    let _ = child.kill();
                    "client kill sent"
                } else {
                    "client had finished"
                }
            }
            _ => "nothing",
        };
        let status = wait_bounded(&mut child);
        // Only a child that really died of the signal counts as killed.
        let killed = what == "client kill sent" && status.is_some_and(|s| s.signal() == Some(9));
        if killed {
            client_kills += 1;
        }
        if write {
            match status {
                Some(s) if s.success() && !killed => {
                    attempts[who].acked.insert(text.clone());
                }
                _ => {
                    attempts[who].killed.insert(text.clone());
                }
            }
        }
        log.push(format!(
            "round {rounds}: {name} {} after {delay:?}: {what}, exit {status:?}",
            args[0]
        ));
    }
    let campaign = campaign_started.elapsed();
    assert!(
        relay_kills + client_kills >= MIN_KILLS,
        "only {relay_kills} relay and {client_kills} client kills in {rounds} rounds ({campaign:?}):\n{}",
        log.join("\n")
    );
    assert!(relay_kills > 0 && client_kills > 0, "{}", log.join("\n"));

    // The relay is running; everything propagates.
    for _ in 0..2 {
        for (name, p) in profiles {
            sync_until_ok(p, name);
        }
    }

    // Integrity of every database.
    let mut corrupt = 0;
    for db in [
        relay.db.clone(),
        a.home.join("state.sqlite3"),
        b.home.join("state.sqlite3"),
    ] {
        let check = integrity(&db);
        if check != "ok" {
            corrupt += 1;
            eprintln!("{}: {check}", db.display());
        }
    }
    assert_eq!(corrupt, 0, "corrupt databases");

    // The relay: entry ids unique, each author's chain 1..n without gaps.
    let conn = rusqlite::Connection::open(&relay.db).unwrap();
    let mut on_relay: HashMap<Vec<u8>, usize> = HashMap::new();
    {
        let mut stmt = conn.prepare("SELECT entry FROM envelopes").unwrap();
        let rows = stmt.query_map([], |r| r.get::<_, Vec<u8>>(0)).unwrap();
        for e in rows {
            *on_relay.entry(e.unwrap()).or_default() += 1;
        }
    }
    let dup_on_relay: Vec<String> = on_relay
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(e, n)| format!("{} x{n}", hex::encode(e)))
        .collect();
    let mut chains = conn
        .prepare(
            "SELECT author, COUNT(*), COUNT(DISTINCT seq), MIN(seq), MAX(seq)
             FROM envelopes GROUP BY author",
        )
        .unwrap();
    let chains: Vec<(Vec<u8>, i64, i64, i64, i64)> = chains
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    for (author, n, distinct, lo, hi) in &chains {
        assert!(
            *n == *distinct && *lo == 1 && *hi == *n,
            "device {}: {n} envelopes, {distinct} distinct seqs, {lo}..={hi}",
            hex::encode(author)
        );
    }

    let feeds = [feed(&a), feed(&b)];
    let (mut kept, mut lost, mut duplicated) = (0usize, 0usize, 0usize);
    let mut failures = Vec::new();
    if !dup_on_relay.is_empty() {
        duplicated += dup_on_relay.len();
        failures.push(format!("entries twice on the relay: {dup_on_relay:?}"));
    }
    for who in 0..2 {
        let (name, profile) = profiles[who];
        let own: Vec<&Value> = feeds[who].iter().filter(|e| e["author"] == "me").collect();
        let partner_feed = &feeds[1 - who];
        // Own items, by text: each attempted text at most once, nothing else.
        let mut own_texts: HashMap<&str, usize> = HashMap::new();
        for e in &own {
            let text = e["text"].as_str().unwrap_or_default();
            *own_texts.entry(text).or_default() += 1;
            if !attempts[who].texts.contains(text) {
                failures.push(format!(
                    "{name}: an own item nobody wrote (partial?): {e:#}"
                ));
            }
            if e["pending"] != false {
                failures.push(format!("{name}: still pending after the syncs: {e:#}"));
            }
            let id = e["id"].as_str().unwrap();
            let on = on_relay
                .get(&hex::decode(id).unwrap())
                .copied()
                .unwrap_or(0);
            if on != 1 {
                failures.push(format!("{name}: item {id} is {on} times on the relay"));
                if on == 0 {
                    lost += 1;
                } else {
                    duplicated += 1;
                }
            }
            let at_partner = partner_feed
                .iter()
                .filter(|p| p["id"] == e["id"])
                .collect::<Vec<_>>();
            if at_partner.len() != 1
                || at_partner[0]["author"] != "partner"
                || at_partner[0]["text"] != e["text"]
            {
                failures.push(format!(
                    "{name}: item {id} is {} times at the partner: {at_partner:#?}",
                    at_partner.len()
                ));
                if at_partner.is_empty() {
                    lost += 1;
                } else {
                    duplicated += 1;
                }
            }
        }
        for (text, n) in &own_texts {
            if *n != 1 {
                duplicated += 1;
                failures.push(format!("{name}: {text:?} is {n} times in its own feed"));
            }
        }
        for text in &attempts[who].acked {
            if !own_texts.contains_key(text.as_str()) {
                lost += 1;
                failures.push(format!("{name}: acknowledged write {text:?} is gone"));
            }
        }
        kept += own_texts.len();

        // Every outbox item (acknowledged or not) is on the relay exactly once and
        // acknowledged locally; it is one of the own items.
        let local = rusqlite::Connection::open(profile.home.join("state.sqlite3")).unwrap();
        let outbox: Vec<(Vec<u8>, i64)> = local
            .prepare("SELECT entry, acked FROM outbox ORDER BY seq")
            .unwrap()
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        let own_ids: BTreeSet<String> = own
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_string())
            .collect();
        let outbox_ids: BTreeSet<String> = outbox.iter().map(|(e, _)| hex::encode(e)).collect();
        if own_ids != outbox_ids {
            failures.push(format!(
                "{name}: own feed ids {own_ids:?} differ from outbox ids {outbox_ids:?}"
            ));
        }
        for (entry, acked) in &outbox {
            let on = on_relay.get(entry).copied().unwrap_or(0);
            if on != 1 || *acked != 1 {
                failures.push(format!(
                    "{name}: outbox item {} is {on} times on the relay, acked {acked}",
                    hex::encode(entry)
                ));
            }
        }
        let status = profile.run(&["status", "--json"]).ok().json();
        if status["waiting"] != 0 {
            failures.push(format!("{name}: status after the syncs: {status:#}"));
        }
    }
    // Nothing on the relay that no profile owns.
    let all_own: usize = feeds
        .iter()
        .map(|f| f.iter().filter(|e| e["author"] == "me").count())
        .sum();
    if on_relay.len() != all_own {
        failures.push(format!(
            "the relay holds {} entries, the profiles own {all_own}",
            on_relay.len()
        ));
    }

    let acked: usize = attempts.iter().map(|x| x.acked.len()).sum();
    let killed_kept: usize = (0..2)
        .map(|w| {
            let own: BTreeSet<&str> = feeds[w]
                .iter()
                .filter(|e| e["author"] == "me")
                .filter_map(|e| e["text"].as_str())
                .collect();
            attempts[w]
                .killed
                .iter()
                .filter(|t| own.contains(t.as_str()))
                .count()
        })
        .sum();
    let killed: usize = attempts.iter().map(|x| x.killed.len()).sum();
    eprintln!(
        "campaign: {rounds} rounds in {campaign:?}; {acked} writes acknowledged, {killed} writes killed or failed ({killed_kept} of them kept); total {:?}",
        started.elapsed()
    );
    eprintln!(
        "crash campaign: {} kills ({relay_kills} relay, {client_kills} client), {kept} writes kept, lost after ack {lost}, duplicated {duplicated}, corrupt databases {corrupt}",
        relay_kills + client_kills
    );
    assert!(
        failures.is_empty(),
        "{}\n\ncampaign log:\n{}",
        failures.join("\n"),
        log.join("\n")
    );
}
