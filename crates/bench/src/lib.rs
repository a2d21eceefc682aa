//! attune-bench: measures the relay on this machine, on loopback only.
//!
//! It starts the relay (in this process, or the real binary as a child process
//! with `--spawn`, or uses `--relay URL`), then runs:
//!
//! * a. signed single-envelope appends by 1, 16 and 64 devices (real Ed25519
//!   request signatures, real sealed and signed envelopes, one chain per device,
//!   two devices per space linked by a roster `Link` event);
//! * b. signed batches of 100 envelopes;
//! * c. a paged pull of 100,000 envelopes from one space;
//! * d. the relay's RSS idle, under load and with 1,000 WebSocket streams open;
//! * e. the machine's ceiling: a bare axum handler doing only the same
//!   group-committed insert through `SqliteStore::append_envelopes`.
//!
//! Each scenario gets a fresh relay (new database, empty caches) unless
//! `--one-relay`. Every loop is bounded in time and in count. See BENCHMARKS.md.
//!
//! Two subcommands measure the client instead: `history` writes two paired
//! profiles and the relay database of a history of N items ([`history`]), and
//! `client` times everyday `attune` commands on such a history ([`client`]).
//! `cold-sync` times a new device's first sync of such a history ([`cold`]), and
//! `peer` measures the relay next to atuin's sync server ([`peer`]).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};

pub mod atuin;
pub mod ceiling;
pub mod client;
pub mod cold;
pub mod costs;
pub mod fixtures;
pub mod history;
pub mod load;
pub mod observe;
pub mod peer;
pub mod pg;
pub mod procfs;
pub mod report;
pub mod scenarios;
pub mod stats;
pub mod target;
pub mod wsprobe;

use report::Report;
use target::Target;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Scenario {
    /// a. signed single-envelope appends at each `--devices` count
    Single,
    /// b. signed batched appends
    Batch,
    /// c. paged pull from one space
    Pull,
    /// d. WebSocket streams held open (RSS)
    Streams,
    /// e. the ceiling: bare handler, same store append
    Ceiling,
    /// (not run by default) idle WebSocket memory of a bare axum server with
    /// tungstenite's default buffers and with 4 KiB ones
    WsBuffer,
}

/// attune-bench: throughput, latency and memory of attune-relay on this machine
/// (loopback only).
#[derive(Debug, Clone, Parser)]
#[command(
    name = "attune-bench",
    version,
    about,
    long_about = None,
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    /// Without a subcommand: the relay scenarios below.
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Spawn the real relay binary as a child process (RSS and CPU are then the
    /// relay's alone) instead of serving it inside the bench process.
    #[arg(long, conflicts_with = "relay")]
    pub spawn: bool,

    /// The relay binary for --spawn [default: attune-relay next to this executable].
    #[arg(long, requires = "spawn")]
    pub relay_bin: Option<PathBuf>,

    /// Log filter for the spawned relay (its log goes to a file in the temp dir).
    #[arg(long, default_value = "info")]
    pub relay_log: String,

    /// Extra environment for the spawned relay, KEY=VALUE (repeatable), e.g.
    /// `--relay-env MALLOC_ARENA_MAX=2`.
    #[arg(long, requires = "spawn", value_parser = parse_env)]
    pub relay_env: Vec<(String, String)>,

    /// Keep one relay for all scenarios instead of a fresh one for each (the
    /// scenarios then inherit each other's data and caches).
    #[arg(long)]
    pub one_relay: bool,

    /// Use a relay already running at this loopback URL (start it with
    /// `ATTUNE_RELAY_RATE=1e9 ATTUNE_RELAY_BURST=1e9` or it throttles the bench).
    #[arg(long)]
    pub relay: Option<String>,

    /// Scenarios to run, comma-separated [default: all but ws-buffer].
    #[arg(long, value_enum, value_delimiter = ',')]
    pub scenarios: Vec<Scenario>,

    /// Seconds each timed run lasts (scenarios a, b, e).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,

    /// Seconds of untimed warm-up before each timed run.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,

    /// Device counts for scenario a, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
    pub devices: Vec<usize>,

    /// After scenario a, run its last device count again, paced at this fraction
    /// of the throughput it reached (0 to skip): latency below saturation.
    #[arg(long, default_value_t = 0.5)]
    pub paced_fraction: f64,

    /// Devices per space in scenario a (one member's devices, linked by roster events).
    #[arg(long, default_value_t = 2)]
    pub devices_per_space: usize,

    /// Plaintext bytes per envelope (1 KiB pads to the 2 KiB bucket).
    #[arg(long, default_value_t = 1024)]
    pub content_bytes: usize,

    /// Envelopes per request in scenario b.
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,

    /// Devices (all in one space) sending batches in scenario b.
    #[arg(long, default_value_t = 16)]
    pub batch_devices: usize,

    /// Envelopes to pull in scenario c.
    #[arg(long, default_value_t = 100_000)]
    pub pull_count: usize,

    /// Envelopes per pulled page.
    #[arg(long, default_value_t = 1000)]
    pub page: usize,

    /// WebSocket streams to hold open in scenario d.
    #[arg(long, default_value_t = 1000)]
    pub streams: usize,

    /// Concurrent clients of the ceiling server (e).
    #[arg(long, default_value_t = 64)]
    pub ceiling_clients: usize,

    /// Most envelopes sealed ahead for one timed run (memory bound).
    #[arg(long, default_value_t = 150_000)]
    pub preseal_cap: usize,

    /// Run the spawned relays on PostgreSQL: the server's admin URL (a new
    /// database is made on it for each relay started). Needs --spawn.
    #[arg(long, requires = "spawn", value_name = "URL")]
    pub pg: Option<String>,

    /// With --pg: relay instances on each database, the load spread over them.
    #[arg(long, requires = "pg", default_value_t = 1)]
    pub instances: usize,

    /// Directory for the temporary databases [default: the system temp dir].
    #[arg(long)]
    pub db_dir: Option<PathBuf>,

    /// Internal: serve the WebSocket probe of `--scenarios ws-buffer` with this
    /// read/write buffer size (0: the default) and nothing else.
    #[arg(long, hide = true)]
    pub internal_ws_server: Option<usize>,

    /// Also write the summary as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// The client benchmarks.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Write two paired profiles (DIR/alex, DIR/sam) and the relay database
    /// (DIR/relay.sqlite3) of a realistic history of N items, fully synced.
    History(history::HistoryArgs),
    /// Write N more items as one partner of a generated history (journals,
    /// private notes, edits, deletes, appreciations, open check-ins, exercises,
    /// pauses) and send them; the relay the profile points at must be running.
    Extend(history::ExtendArgs),
    /// Time everyday `attune` commands on Sam's profile of a generated history,
    /// and a sync receiving many new items against the limit of verifying them.
    Client(client::ClientArgs),
    /// Time a new device of Sam's fetching the whole history of a generated
    /// space, against the limit of checking and opening it on one and two cores.
    ColdSync(cold::ColdArgs),
    /// attune's relay next to atuin's sync server (the closest peer) on bulk
    /// uploads, single appends, a cold download and the database's size,
    /// alternately in one run, with the ratios.
    Peer(peer::PeerArgs),
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {s:?}"))
}

impl Args {
    fn wants(&self, s: Scenario) -> bool {
        if self.scenarios.is_empty() {
            s != Scenario::WsBuffer
        } else {
            self.scenarios.contains(&s)
        }
    }

    fn relay_bin(&self) -> anyhow::Result<PathBuf> {
        if let Some(p) = &self.relay_bin {
            return Ok(p.clone());
        }
        let exe = std::env::current_exe().context("locating this executable")?;
        Ok(exe.with_file_name("attune-relay"))
    }
}

/// Starts relays: a fresh one (new database, empty caches) for each scenario
/// unless `--one-relay`, so scenarios do not inherit each other's state.
#[derive(Debug)]
struct Relays<'a> {
    args: &'a Args,
    dir: &'a std::path::Path,
    started: usize,
    /// Highest VmHWM of the relays stopped so far, in MiB.
    hwm: Option<f64>,
}

impl Relays<'_> {
    async fn start(&mut self) -> anyhow::Result<Target> {
        let target = if let Some(url) = &self.args.relay {
            Target::external(url).await?
        } else {
            let dir = self.dir.join(format!("relay-{}", self.started));
            std::fs::create_dir_all(&dir)?;
            if let Some(admin) = &self.args.pg {
                let db = pg::fresh_database(admin, self.started).await?;
                Target::spawn_postgres(
                    &self.args.relay_bin()?,
                    &dir,
                    &self.args.relay_log,
                    &self.args.relay_env,
                    &db,
                    self.args.instances,
                )
                .await?
            } else if self.args.spawn {
                Target::spawn(
                    &self.args.relay_bin()?,
                    &dir,
                    &self.args.relay_log,
                    &self.args.relay_env,
                )
                .await?
            } else {
                Target::in_process(&dir).await?
            }
        };
        self.started += 1;
        println!(
            "relay: {} at {} ({})",
            target.mode(),
            target.urls().join(", "),
            target.database()
        );
        Ok(target)
    }

    async fn stop(&mut self, target: Target) -> anyhow::Result<()> {
        if let Some(h) = target.pid().and_then(procfs::hwm_mib) {
            self.hwm = Some(self.hwm.map_or(h, |m: f64| m.max(h)));
        }
        let dir = target
            .db()
            .and_then(|d| d.parent())
            .map(|d| d.to_path_buf());
        target.stop().await?;
        // Free the disk: a relay's database can reach a few hundred MB.
        if let Some(dir) = dir.filter(|d| d.starts_with(self.dir)) {
            let _ = std::fs::remove_dir_all(dir);
        }
        Ok(())
    }

    /// `target` itself the first time, or with `--one-relay` or `--relay`; else a
    /// new relay in its place.
    async fn fresh(&mut self, target: Target, used: &mut bool) -> anyhow::Result<Target> {
        let keep = !*used || self.args.one_relay || matches!(target, Target::External { .. });
        *used = true;
        if keep {
            return Ok(target);
        }
        self.stop(target).await?;
        self.start().await
    }
}

/// Runs the selected scenarios and prints the summary.
pub async fn run(args: Args) -> anyhow::Result<()> {
    match args.command.clone() {
        Some(Command::History(h)) => return history::run(h).await,
        Some(Command::Client(c)) => return client::run(c).await,
        Some(Command::ColdSync(c)) => return cold::run(c).await,
        Some(Command::Peer(p)) => return peer::run(p).await,
        Some(Command::Extend(e)) => return history::extend(&e.home, e.entries, e.seed).await,
        None => {}
    }
    if let Some(buf) = args.internal_ws_server {
        return wsprobe::serve(buf).await;
    }
    anyhow::ensure!(
        args.duration > 0.0 && args.duration <= 600.0,
        "--duration must be in (0, 600]"
    );
    anyhow::ensure!(
        args.warmup >= 0.0 && args.warmup <= 60.0,
        "--warmup must be in [0, 60]"
    );
    if let Some(url) = &args.relay {
        target::check_loopback(url)?;
    }
    let dir = match &args.db_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("attune-bench")
            .tempdir_in(d)?,
        None => tempfile::Builder::new().prefix("attune-bench").tempdir()?,
    };
    let hz = procfs::clock_ticks();
    let mut report = Report::default();
    let mut machine = procfs::machine();
    for (append, what) in [(false, "overwrite"), (true, "append")] {
        match procfs::fsync_probe(dir.path(), append) {
            Ok((p50, p99, n)) => {
                println!(
                    "disk: 4 KiB {what} + fdatasync p50 {p50:.2} ms, p99 {p99:.2} ms ({n} syncs in {})",
                    dir.path().display()
                );
                machine[format!("fsync_{what}_p50_ms")] = p50.into();
                machine[format!("fsync_{what}_p99_ms")] = p99.into();
            }
            Err(e) => eprintln!("disk probe failed: {e}"),
        }
    }
    let content = Arc::new(vec![0x42u8; args.content_bytes]);
    let costs = {
        let content = content.clone();
        tokio::task::spawn_blocking(move || costs::measure(&content)).await??
    };
    println!("cost of each step on one core (µs):");
    for (step, us) in &costs {
        println!("    {us:>7.1}  {step}");
    }
    report.insert(
        "costs_us",
        costs
            .iter()
            .map(|(k, v)| ((*k).to_string(), serde_json::Value::from(*v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
    );
    report.costs = costs;
    let mut relays = Relays {
        args: &args,
        dir: dir.path(),
        started: 0,
        hwm: None,
    };
    let mut target = relays.start().await?;
    machine["relay_mode"] = target.mode().into();
    report.insert("machine", machine);
    report.rss_scope = target.rss_scope().to_string();
    let spawned = matches!(target, Target::Spawned { .. });

    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Some(idle) = target.rss_mib() {
        println!("relay RSS idle: {idle:.1} MiB ({})", target.rss_scope());
        report.rss.push(("idle, after start".into(), idle));
        report.insert("rss_idle_mib", idle.into());
    }

    let started = std::time::Instant::now();
    let mut used = false;
    if args.wants(Scenario::Single) {
        let mut last = None;
        for &n in &args.devices {
            target = relays.fresh(target, &mut used).await?;
            let ctx = scenarios::Ctx::new(&args, &target, &content, hz, dir.path());
            last = Some((n, scenarios::single(&ctx, n, None, &mut report).await?));
        }
        // The same load, not saturating: latency without the queueing.
        if let Some((n, rate)) = last.filter(|_| args.paced_fraction > 0.0) {
            target = relays.fresh(target, &mut used).await?;
            let ctx = scenarios::Ctx::new(&args, &target, &content, hz, dir.path());
            let paced = (rate * args.paced_fraction).max(1.0);
            scenarios::single(&ctx, n, Some(paced), &mut report).await?;
        }
    }
    if args.wants(Scenario::Batch) || args.wants(Scenario::Pull) {
        // The pull reads the space the batches filled: one relay for both.
        target = relays.fresh(target, &mut used).await?;
        let ctx = scenarios::Ctx::new(&args, &target, &content, hz, dir.path());
        let mut bulk = scenarios::Bulk::default();
        if args.wants(Scenario::Batch) {
            scenarios::batch(&ctx, &mut bulk, &mut report).await?;
        }
        if args.wants(Scenario::Pull) {
            scenarios::pull(&ctx, &mut bulk, &mut report).await?;
        }
    }
    if args.wants(Scenario::Streams) {
        target = relays.fresh(target, &mut used).await?;
        let ctx = scenarios::Ctx::new(&args, &target, &content, hz, dir.path());
        scenarios::streams(&ctx, &mut report).await?;
    }
    if args.wants(Scenario::Ceiling) {
        let ctx = scenarios::Ctx::new(&args, &target, &content, hz, dir.path());
        scenarios::ceiling(&ctx, &mut report).await?;
    }
    if args.wants(Scenario::WsBuffer) {
        wsprobe::run(args.streams, &mut report).await?;
    }
    relays.stop(target).await?;
    if let Some(hwm) = relays.hwm.filter(|_| spawned) {
        report
            .rss
            .push(("peak of any relay process (VmHWM)".into(), hwm));
        report.insert("rss_hwm_mib", hwm.into());
    }
    report.insert("relays_started", relays.started.into());
    report.insert("total_secs", started.elapsed().as_secs_f64().into());

    let devices = args.devices.last().copied().unwrap_or(64);
    let md = report.markdown(devices, spawned);
    println!("\n{md}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report.to_json())?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON summary written to {}", path.display());
    }
    Ok(())
}
