//! `attune-bench peer`: attune's relay next to atuin's sync server, the closest
//! peer (a self-hosted server of end-to-end encrypted records on SQLite, which
//! checks nothing about what it stores), on the same figures, alternately, in one
//! run, with the ratios.
//!
//! Both servers run as child processes on loopback with a fresh SQLite database
//! (WAL, `synchronous=FULL`: the relay's setting and sqlx's default) for each
//! figure, and are loaded from this process with the same closed-loop workers,
//! each with its own connection pool:
//!
//! 1. bulk upload by one client, batches of 100, for `--duration`;
//! 2. bulk upload of `--records` by 16 clients, batches of 100, timed to the last;
//! 3. the cold download of those records by a new client, 1,000 a page;
//! 4. the database's size after them (checkpointed, database + WAL files);
//! 5. single appends by 64 clients for `--duration`.
//!
//! attune's uploads are real sealed and signed envelopes (sealed ahead, untimed),
//! each verified by the relay; atuin's are records of the same plaintext size
//! (see [`crate::atuin`]), prepared ahead.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use tokio::time::Instant;

use crate::atuin;
use crate::fixtures;
use crate::load::{self, RunResult};
use crate::target::Target;

/// Per-worker request limit of a timed run.
const MAX_REQUESTS: u64 = 1_000_000;
/// Most attune envelopes sealed ahead for one timed run (memory bound).
const PRESEAL_CAP: usize = 400_000;
/// Records in one upload request.
const BATCH: usize = 100;
/// Clients of the concurrent bulk upload (one space or user, a device or host each).
const BULK_CLIENTS: usize = 16;
/// Clients of the single-append figure (two per space or user).
const SINGLE_CLIENTS: usize = 64;

#[derive(Debug, Clone, clap::Args)]
pub struct PeerArgs {
    /// atuin's server binary (`cargo install atuin-server --version 18.24.4
    /// --locked --root DIR` puts it at DIR/bin/atuin-server).
    #[arg(long)]
    pub atuin_bin: PathBuf,

    /// attune's relay binary [default: attune-relay next to this executable].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,

    /// Rounds; each measures both, in alternating order, and the table shows
    /// the medians.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,

    /// Seconds each time-bounded figure (1 and 5) runs.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of warm-up before them.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Records of the bulk upload that is then downloaded and measured on disk.
    #[arg(long, default_value_t = 100_000)]
    pub records: usize,

    /// Records per downloaded page.
    #[arg(long, default_value_t = 1000)]
    pub page: usize,

    /// Plaintext bytes per record.
    #[arg(long, default_value_t = 1024)]
    pub content_bytes: usize,

    /// Directory for the databases [default: the system temp dir].
    #[arg(long)]
    pub db_dir: Option<PathBuf>,

    /// Also write every round's figures and the medians as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Peer {
    Attune,
    Atuin,
}

impl Peer {
    fn name(self) -> &'static str {
        match self {
            Self::Attune => "attune",
            Self::Atuin => "atuin",
        }
    }
}

/// One round's figures for one server.
#[derive(Debug, Clone, Default, serde::Serialize)]
struct Figures {
    bulk_one_per_sec: f64,
    bulk_many_per_sec: f64,
    single_per_sec: f64,
    download_secs: f64,
    db_bytes: u64,
    /// Uploads sent again after a server error (atuin only).
    retried: u64,
    /// The end of atuin's log when it answered 500, or empty.
    #[serde(skip_serializing_if = "String::is_empty")]
    log_tail: String,
    /// Envelopes attune sealed inside a timed loop (its pool ran out), or 0.
    sealed_live: u64,
}

impl Figures {
    fn line(&self) -> String {
        format!(
            "bulk 1: {:.0}/s, bulk {BULK_CLIENTS}: {:.0}/s, single {SINGLE_CLIENTS}: {:.0}/s, \
             download {:.2} s, database {:.0} MB{}",
            self.bulk_one_per_sec,
            self.bulk_many_per_sec,
            self.single_per_sec,
            self.download_secs,
            self.db_bytes as f64 / 1e6,
            if self.retried > 0 {
                format!(
                    " ({} uploads answered 500 and sent again; its log ends:\n{})",
                    self.retried, self.log_tail
                )
            } else if self.sealed_live > 0 {
                format!(
                    " ({} envelopes sealed inside the timed loops)",
                    self.sealed_live
                )
            } else {
                String::new()
            }
        )
    }
}

fn check(what: &str, r: &RunResult) -> anyhow::Result<()> {
    ensure!(
        r.errors == 0,
        "{what}: {} requests failed; first: {}",
        r.errors,
        r.first_error.clone().unwrap_or_default()
    );
    Ok(())
}

/// Bytes of a SQLite database once its WAL is checkpointed into it: the
/// database file and whatever WAL and shared-memory files remain.
fn db_bytes(db: &Path) -> anyhow::Result<u64> {
    let c = rusqlite::Connection::open(db)?;
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    drop(c);
    Ok(["", "-wal", "-shm"]
        .iter()
        .filter_map(|suffix| {
            let mut p = db.as_os_str().to_owned();
            p.push(suffix);
            std::fs::metadata(PathBuf::from(p)).ok()
        })
        .map(|m| m.len())
        .sum())
}

struct Run<'a> {
    args: &'a PeerArgs,
    relay_bin: PathBuf,
    content: Arc<Vec<u8>>,
    payload: atuin::Payload,
    dir: &'a Path,
    started: usize,
}

impl Run<'_> {
    fn fresh_dir(&mut self, peer: Peer) -> anyhow::Result<PathBuf> {
        self.started += 1;
        let d = self.dir.join(format!("{}-{}", peer.name(), self.started));
        std::fs::create_dir_all(&d)?;
        Ok(d)
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.args.duration)
    }

    async fn relay(&mut self) -> anyhow::Result<(Target, PathBuf)> {
        let d = self.fresh_dir(Peer::Attune)?;
        let t = Target::spawn(&self.relay_bin, &d, "warn", &[]).await?;
        Ok((t, d))
    }

    async fn atuin(&mut self) -> anyhow::Result<(atuin::Server, PathBuf)> {
        let d = self.fresh_dir(Peer::Atuin)?;
        let s = atuin::Server::start(&self.args.atuin_bin, &d).await?;
        Ok((s, d))
    }

    /// A warm-up with live sealing, envelopes sealed ahead, then appends of
    /// `batch` by every device for the duration.
    async fn timed_appends(
        &self,
        devices: Vec<fixtures::Device>,
        batch: usize,
    ) -> anyhow::Result<RunResult> {
        let pools = devices
            .into_iter()
            .map(|d| (d, Default::default()))
            .collect();
        let (devices, _) = load::warm_and_preseal(
            pools,
            batch,
            &self.content,
            Duration::from_secs_f64(self.args.warmup),
            self.duration(),
            PRESEAL_CAP,
        )
        .await?;
        let (_, r) = load::run_appends(
            devices,
            batch,
            self.content.clone(),
            self.duration(),
            MAX_REQUESTS,
        )
        .await?;
        Ok(r)
    }

    async fn attune(&mut self) -> anyhow::Result<Figures> {
        let mut f = Figures::default();

        // 1. One client's batches for the duration.
        let (t, d) = self.relay().await?;
        let devices = fixtures::create_space(t.url(), 1).await?;
        let r = self.timed_appends(devices, BATCH).await?;
        check("attune, bulk upload by one client", &r)?;
        f.sealed_live += r.live_sealed;
        f.bulk_one_per_sec = r.envelopes_per_sec();
        t.stop().await?;
        std::fs::remove_dir_all(d)?;

        // 2–4. The records by many clients, their download, the database.
        let (t, d) = self.relay().await?;
        let devices = fixtures::create_space(t.url(), BULK_CLIENTS).await?;
        let per_device = uploaded(self.args.records) / BULK_CLIENTS;
        let chains = devices.iter().map(|d| d.chain.clone()).collect();
        let sealed = fixtures::preseal(chains, per_device, self.content.clone()).await?;
        let pools = devices
            .into_iter()
            .zip(sealed)
            .map(|(mut dev, (chain, pool))| {
                dev.chain = chain;
                (dev, pool.into())
            })
            .collect();
        let (devices, r) = load::run_appends(
            pools,
            BATCH,
            self.content.clone(),
            Duration::from_secs(900),
            (per_device / BATCH) as u64,
        )
        .await?;
        check("attune, bulk upload by many clients", &r)?;
        f.sealed_live += r.live_sealed;
        f.bulk_many_per_sec = r.envelopes_per_sec();
        let stored = r.envelopes;
        let reader = &devices.first().context("the bulk space has devices")?.0;
        let start = Instant::now();
        let (mut after, mut got) = (0u64, 0u64);
        for _ in 0..=(stored / self.args.page.max(1) as u64 + 2) {
            let p = reader
                .client
                .pull(reader.space(), after, self.args.page)
                .await
                .context("pulling a page from attune's relay")?;
            got += p.envelopes.len() as u64;
            after = p.next;
            if !p.more {
                break;
            }
        }
        f.download_secs = start.elapsed().as_secs_f64();
        ensure!(
            got == stored,
            "attune: downloaded {got} of {stored} envelopes"
        );
        let db = t
            .db()
            .context("a spawned relay has a database")?
            .to_path_buf();
        t.stop().await?;
        f.db_bytes = db_bytes(&db)?;
        std::fs::remove_dir_all(d)?;

        // 5. Single appends by many clients, two devices per space.
        let (t, d) = self.relay().await?;
        let devices = fixtures::create_devices(t.url(), SINGLE_CLIENTS, 2, 16).await?;
        let r = self.timed_appends(devices, 1).await?;
        check("attune, single appends", &r)?;
        f.sealed_live += r.live_sealed;
        f.single_per_sec = r.requests_per_sec();
        t.stop().await?;
        std::fs::remove_dir_all(d)?;
        Ok(f)
    }

    /// The last lines of atuin's log, when it answered 500 (its reason).
    fn atuin_log_tail(d: &Path) -> String {
        let text = std::fs::read_to_string(d.join("atuin.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(3)..].join("\n")
    }

    async fn atuin_figures(&mut self) -> anyhow::Result<Figures> {
        let mut f = Figures::default();
        let warmup = Duration::from_secs_f64(self.args.warmup);
        let payload = self.payload.clone();

        // 1.
        let (s, d) = self.atuin().await?;
        let w = atuin::writers(&s.url, 1, 1).await?;
        let (w, warm, _) = atuin::run_uploads(w, &payload, BATCH, warmup, MAX_REQUESTS).await?;
        check("atuin, warm-up", &warm)?;
        let (_, r, again) =
            atuin::run_uploads(w, &payload, BATCH, self.duration(), MAX_REQUESTS).await?;
        f.retried += again;
        check("atuin, bulk upload by one client", &r)?;
        f.bulk_one_per_sec = r.envelopes_per_sec();
        s.stop()?;
        if again > 0 {
            f.log_tail = Self::atuin_log_tail(&d);
        }
        std::fs::remove_dir_all(d)?;

        // 2–4.
        let (s, d) = self.atuin().await?;
        let w = atuin::writers(&s.url, 1, BULK_CLIENTS).await?;
        let per_writer = (uploaded(self.args.records) / (BULK_CLIENTS * BATCH)) as u64;
        let (w, r, again) =
            atuin::run_uploads(w, &payload, BATCH, Duration::from_secs(900), per_writer).await?;
        f.retried += again;
        check("atuin, bulk upload by many clients", &r)?;
        f.bulk_many_per_sec = r.envelopes_per_sec();
        let start = Instant::now();
        let reader = w.first().context("atuin has writers")?;
        let (got, _) = atuin::download(reader, self.args.page).await?;
        f.download_secs = start.elapsed().as_secs_f64();
        ensure!(
            got == r.envelopes,
            "atuin: downloaded {got} of {} records",
            r.envelopes
        );
        let db = s.db.clone();
        s.stop()?;
        f.db_bytes = db_bytes(&db)?;
        if again > 0 {
            f.log_tail = Self::atuin_log_tail(&d);
        }
        std::fs::remove_dir_all(d)?;

        // 5.
        let (s, d) = self.atuin().await?;
        let w = atuin::writers(&s.url, SINGLE_CLIENTS / 2, 2).await?;
        let (w, warm, _) = atuin::run_uploads(w, &payload, 1, warmup, MAX_REQUESTS).await?;
        check("atuin, warm-up", &warm)?;
        let (_, r, again) =
            atuin::run_uploads(w, &payload, 1, self.duration(), MAX_REQUESTS).await?;
        f.retried += again;
        check("atuin, single appends", &r)?;
        f.single_per_sec = r.requests_per_sec();
        s.stop()?;
        if again > 0 {
            f.log_tail = Self::atuin_log_tail(&d);
        }
        std::fs::remove_dir_all(d)?;
        Ok(f)
    }
}

/// Records uploaded for `--records`: 16 clients, whole batches each.
fn uploaded(records: usize) -> usize {
    records.div_ceil(BULK_CLIENTS * BATCH) * BULK_CLIENTS * BATCH
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The table: medians, the ratio attune/atuin, and whether attune is ahead.
fn table(attune: &[Figures], atuin: &[Figures], args: &PeerArgs) -> (String, serde_json::Value) {
    // Every client uploads whole batches: the records actually uploaded.
    let records = uploaded(args.records);
    type Get = fn(&Figures) -> f64;
    let rows: [(String, Get, bool); 5] = [
        (
            format!("bulk upload, 1 client, batches of {BATCH}, records/s"),
            |f| f.bulk_one_per_sec,
            true,
        ),
        (
            format!("bulk upload of {records} records, {BULK_CLIENTS} clients, records/s"),
            |f| f.bulk_many_per_sec,
            true,
        ),
        (
            format!("single appends, {SINGLE_CLIENTS} clients, requests/s"),
            |f| f.single_per_sec,
            true,
        ),
        (
            format!(
                "cold download of {records} records, {} a page, s",
                args.page
            ),
            |f| f.download_secs,
            false,
        ),
        (
            format!("database after {records} records, MB"),
            |f| f.db_bytes as f64 / 1e6,
            false,
        ),
    ];
    let mut md = String::from(
        "| figure | attune | atuin | attune/atuin | attune ahead |\n|---|---|---|---|---|\n",
    );
    let mut json = serde_json::Map::new();
    for (label, get, higher_is_better) in &rows {
        let a = median(attune.iter().map(get).collect());
        let b = median(atuin.iter().map(get).collect());
        let ratio = a / b;
        let ahead = if *higher_is_better {
            ratio >= 1.0
        } else {
            ratio <= 1.0
        };
        let fmt = |x: f64| {
            if *higher_is_better || x >= 100.0 {
                format!("{x:.0}")
            } else {
                format!("{x:.2}")
            }
        };
        md.push_str(&format!(
            "| {label} | {} | {} | {ratio:.2} | {} |\n",
            fmt(a),
            fmt(b),
            if ahead { "yes" } else { "no" }
        ));
        json.insert(
            label.clone(),
            serde_json::json!({ "attune": a, "atuin": b, "ratio": ratio, "attune_ahead": ahead }),
        );
    }
    (md, json.into())
}

pub async fn run(args: PeerArgs) -> anyhow::Result<()> {
    ensure!(
        args.duration > 0.0 && args.duration <= 600.0,
        "--duration must be in (0, 600]"
    );
    ensure!((1..=20).contains(&args.rounds), "--rounds must be 1 to 20");
    // The relay's default space quota (1 GiB) holds ~450,000 padded envelopes.
    ensure!(
        args.records >= BULK_CLIENTS * BATCH && args.records <= 400_000,
        "--records must be {} to 400,000",
        BULK_CLIENTS * BATCH
    );
    // The relay serves at most 1,000 envelopes a page by default.
    ensure!((1..=1000).contains(&args.page), "--page must be 1 to 1,000");
    let relay_bin = match &args.relay_bin {
        Some(p) => p.clone(),
        None => std::env::current_exe()
            .context("locating this executable")?
            .with_file_name("attune-relay"),
    };
    let tmp = match &args.db_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("attune-peer")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("attune-peer").tempdir()?,
    };
    let mut run = Run {
        args: &args,
        relay_bin,
        content: Arc::new(vec![0x42u8; args.content_bytes]),
        payload: atuin::Payload::new(args.content_bytes),
        dir: tmp.path(),
        started: 0,
    };
    println!(
        "attune: envelopes of {} plaintext bytes, sealed and signed, each verified by the relay; \
         atuin: records of {} payload bytes",
        args.content_bytes,
        run.payload.len()
    );
    // What checking signatures alone allows: the relay checks one per envelope
    // (and one per request), which atuin's server does not do at all.
    let costs = {
        let content = run.content.clone();
        tokio::task::spawn_blocking(move || crate::costs::measure(&content)).await??
    };
    let verify_us = costs
        .iter()
        .find(|(step, _)| step.contains("verify the envelope signature"))
        .map(|(_, us)| *us)
        .context("the costs include the envelope signature check")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let ceiling = cores as f64 * 1e6 / verify_us;
    println!(
        "one envelope signature check: {verify_us:.1} µs on one core; on all {cores} cores, \
         checks alone allow at most {ceiling:.0} envelopes/s"
    );
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let order = if round % 2 == 0 {
            [Peer::Attune, Peer::Atuin]
        } else {
            [Peer::Atuin, Peer::Attune]
        };
        for peer in order {
            let f = match peer {
                Peer::Attune => run.attune().await?,
                Peer::Atuin => run.atuin_figures().await?,
            };
            println!("round {}, {}: {}", round + 1, peer.name(), f.line());
            match peer {
                Peer::Attune => ours.push(f),
                Peer::Atuin => theirs.push(f),
            }
        }
    }
    let (md, medians) = table(&ours, &theirs, &args);
    println!("\nmedians of {} rounds:\n\n{md}", args.rounds);
    if let Some(path) = &args.json {
        let out = serde_json::json!({
            "rounds": args.rounds,
            "duration_secs": args.duration,
            "records": args.records,
            "content_bytes": args.content_bytes,
            "atuin_payload_bytes": run.payload.len(),
            "verify_us": verify_us,
            "verify_ceiling_per_sec": ceiling,
            "attune": ours,
            "atuin": theirs,
            "medians": medians,
        });
        std::fs::write(path, serde_json::to_vec_pretty(&out)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}
