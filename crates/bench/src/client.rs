//! `attune-bench client --dir DIR`: the wall time of everyday `attune` commands
//! on the partner's profile (Sam's) of a history written by `attune-bench
//! history`, and of a sync receiving many new items against the limit of
//! verifying and decrypting them.
//!
//! It works on a copy of DIR (next to it, removed at the end), starts the real
//! `attune-relay` binary on the copy's database at the address the profiles
//! point at, and runs the real `attune` binary: each command `--runs` times after
//! `--warmup` untimed runs, with hyperfine when it is installed (else a loop),
//! and reports the median. `journal -m` runs with the relay stopped
//! (unreachable), on a copy of Sam's profile that is put back afterwards. For
//! the sync, Alex writes `--sync-items` new items through the client library and
//! pushes them; then `attune sync` on a fresh copy of Sam's profile receives them
//! (`--sync-runs` times). In the same run, the limit: the same envelopes
//! verified and decrypted by attune-crypto's `ChainVerifier` on one core (after
//! the history before them, untimed, so the chains are where sync finds them).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use attune_crypto::ChainVerifier;
use attune_proto::Envelope;

use crate::history;
use crate::target::Target;

#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// A directory written by `attune-bench history` (left as it is: the bench
    /// works on a copy).
    #[arg(long)]
    pub dir: PathBuf,

    /// Timed runs of each command; the median is reported (3 runs for a command
    /// whose first run takes over 2 s, that run alone over 20 s).
    #[arg(long, default_value_t = 15)]
    pub runs: usize,

    /// Untimed runs of each command first (page cache, SQLite cache).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,

    /// New items Alex writes for the sync measurement.
    #[arg(long, default_value_t = 10_000)]
    pub sync_items: usize,

    /// Timed syncs, each on a fresh copy of Sam's profile.
    #[arg(long, default_value_t = 3)]
    pub sync_runs: usize,

    /// The `attune` binary [default: next to this executable].
    #[arg(long)]
    pub attune_bin: Option<PathBuf>,

    /// The `attune-relay` binary [default: next to this executable].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,

    /// Time with a plain loop even if hyperfine is installed.
    #[arg(long)]
    pub no_hyperfine: bool,

    /// Where the working copy goes [default: next to DIR].
    #[arg(long)]
    pub work_dir: Option<PathBuf>,

    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One measured command.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Timing {
    pub what: String,
    pub median_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
    pub tool: &'static str,
}

impl Timing {
    fn from_samples(what: String, mut ms: Vec<f64>, tool: &'static str) -> Self {
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        let median = match n {
            0 => f64::NAN,
            _ if n % 2 == 1 => ms[n / 2],
            _ => (ms[n / 2 - 1] + ms[n / 2]) / 2.0,
        };
        Self {
            what,
            median_ms: median,
            min_ms: ms.first().copied().unwrap_or(f64::NAN),
            max_ms: ms.last().copied().unwrap_or(f64::NAN),
            runs: n,
            tool,
        }
    }
}

/// Everything one run of the client bench measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figures {
    pub entries: usize,
    pub commands: Vec<Timing>,
    pub sync: Option<Timing>,
    /// Verifying and decrypting the envelopes the sync received, one core.
    pub limit_ms: Option<f64>,
    pub sync_items: usize,
    pub extend_secs: f64,
    pub notes: Vec<String>,
}

impl Figures {
    pub fn markdown(&self) -> String {
        let mut out = format!(
            "| on Sam's profile, {} items | median | min | max | runs |\n|---|---:|---:|---:|---:|\n",
            self.entries
        );
        let row = |t: &Timing| {
            format!(
                "| {} | {:.1} ms | {:.1} ms | {:.1} ms | {} |\n",
                t.what, t.median_ms, t.min_ms, t.max_ms, t.runs
            )
        };
        for t in &self.commands {
            out.push_str(&row(t));
        }
        if let Some(s) = &self.sync {
            out.push_str(&row(s));
        }
        if let Some(l) = self.limit_ms {
            out.push_str(&format!(
                "| limit: verify + decrypt those {} envelopes (`ChainVerifier`, one core) | {l:.1} ms | | | 1 |\n",
                self.sync_items
            ));
            if let Some(s) = &self.sync {
                out.push_str(&format!(
                    "| sync / limit | {:.1}× | | | |\n",
                    s.median_ms / l
                ));
            }
        }
        for n in &self.notes {
            out.push_str(&format!("\n{n}"));
        }
        out
    }
}

pub(crate) fn sibling(
    name: &str,
    explicit: &Option<PathBuf>,
    flag: &str,
) -> anyhow::Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().context("locating this executable")?;
    let p = exe.with_file_name(name);
    ensure!(
        p.exists(),
        "{} does not exist: build it first (`cargo build --release -p attune -p attune-relay`) or pass {flag}",
        p.display()
    );
    Ok(p)
}

/// Copies a directory tree (regular files and directories only), each file
/// flushed to the disk: a copy left in the page cache as dirty pages would be
/// written out by the first fsync of the command timed on it (190 MB at 100,000
/// items), which a device's own profile never is.
pub fn copy_dir(from: &Path, to: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in std::fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let entry = entry?;
        let kind = entry.file_type()?;
        let dest = to.join(entry.file_name());
        if kind.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else if kind.is_file() {
            std::fs::copy(entry.path(), &dest)
                .with_context(|| format!("copying {}", entry.path().display()))?;
            std::fs::File::open(&dest)
                .and_then(|f| f.sync_all())
                .with_context(|| format!("flushing {}", dest.display()))?;
        }
    }
    Ok(())
}

/// Puts `copy` back in place of `dir`.
fn restore(copy: &Path, dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("removing {}", dir.display()))?;
    }
    copy_dir(copy, dir)
}

/// The manifest `attune-bench history` wrote in `dir`.
pub(crate) fn read_manifest(dir: &Path) -> anyhow::Result<serde_json::Value> {
    let path = dir.join(history::MANIFEST);
    let bytes = std::fs::read(&path).with_context(|| {
        format!(
            "reading {}: is {} written by `attune-bench history`?",
            path.display(),
            dir.display()
        )
    })?;
    serde_json::from_slice(&bytes).with_context(|| format!("reading {}", path.display()))
}

/// The relay URL stored in a profile.
pub(crate) fn stored_relay(home: &Path) -> anyhow::Result<String> {
    let db = home.join(attune_core::profile::DB_FILE);
    let conn =
        rusqlite::Connection::open_with_flags(&db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
            .with_context(|| format!("opening {}", db.display()))?;
    conn.query_row("SELECT value FROM meta WHERE key = 'relay'", [], |r| {
        r.get(0)
    })
    .with_context(|| {
        format!(
            "{} has no relay URL: is it a paired profile?",
            home.display()
        )
    })
}

/// A command slower than this on its first run is timed only [`SLOW_RUNS`] times.
const SLOW: Duration = Duration::from_secs(2);
const SLOW_RUNS: usize = 3;
/// A command slower than this on its first run is reported from that run alone.
const VERY_SLOW: Duration = Duration::from_secs(20);

#[derive(Debug)]
struct Runner {
    attune: PathBuf,
    hyperfine: bool,
    runs: usize,
    warmup: usize,
    dir: PathBuf,
}

impl Runner {
    fn command(&self, home: &Path, args: &[&str]) -> Command {
        let mut c = Command::new(&self.attune);
        c.arg("--home")
            .arg(home)
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("ATTUNE_PASSPHRASE")
            .stdin(Stdio::null());
        c
    }

    /// Runs once and checks it succeeds; returns its stdout.
    fn check(&self, home: &Path, args: &[&str]) -> anyhow::Result<String> {
        let out = self
            .command(home, args)
            .output()
            .with_context(|| format!("running {}", self.attune.display()))?;
        if !out.status.success() {
            bail!(
                "`attune {}` failed ({}): {}{}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn measure(&self, what: &str, home: &Path, args: &[&str]) -> anyhow::Result<Timing> {
        let first = Instant::now();
        self.check(home, args)?;
        let took = first.elapsed();
        // A command that takes seconds is timed fewer times (it is far from any
        // target, and 15 runs would take minutes); one that takes many, once.
        if took > VERY_SLOW {
            let ms = took.as_secs_f64() * 1000.0;
            return Ok(Timing::from_samples(what.to_string(), vec![ms], "once"));
        }
        let (runs, warmup) = if took > SLOW {
            (self.runs.min(SLOW_RUNS), 1)
        } else {
            (self.runs, self.warmup)
        };
        if self.hyperfine {
            return self.hyperfine(what, home, args, runs, warmup);
        }
        for _ in 1..warmup {
            self.check(home, args)?;
        }
        let mut ms = Vec::with_capacity(runs);
        for _ in 0..runs {
            let t = Instant::now();
            let status = self
                .command(home, args)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()?;
            ms.push(t.elapsed().as_secs_f64() * 1000.0);
            ensure!(
                status.success(),
                "`attune {}` failed ({status})",
                args.join(" ")
            );
        }
        Ok(Timing::from_samples(what.to_string(), ms, "loop"))
    }

    fn hyperfine(
        &self,
        what: &str,
        home: &Path,
        args: &[&str],
        runs: usize,
        warmup: usize,
    ) -> anyhow::Result<Timing> {
        let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
        let mut line = vec![
            quote(&self.attune.to_string_lossy()),
            "--home".into(),
            quote(&home.to_string_lossy()),
        ];
        line.extend(args.iter().map(|a| quote(a)));
        let json = self.dir.join("hyperfine.json");
        let status = Command::new("hyperfine")
            .args(["-N", "--style", "none", "--runs"])
            .arg(runs.to_string())
            .arg("--warmup")
            .arg(warmup.saturating_sub(1).to_string())
            .arg("--export-json")
            .arg(&json)
            .arg(line.join(" "))
            .env("NO_COLOR", "1")
            .env_remove("ATTUNE_PASSPHRASE")
            .stdout(Stdio::null())
            .status()
            .context("running hyperfine")?;
        ensure!(
            status.success(),
            "hyperfine failed on `attune {}`",
            args.join(" ")
        );
        let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
        let times: Vec<f64> = v["results"][0]["times"]
            .as_array()
            .context("hyperfine's JSON has no times")?
            .iter()
            .filter_map(|t| t.as_f64())
            .map(|s| s * 1000.0)
            .collect();
        Ok(Timing::from_samples(what.to_string(), times, "hyperfine"))
    }
}

fn has_hyperfine() -> bool {
    Command::new("hyperfine")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

pub async fn run(args: ClientArgs) -> anyhow::Result<()> {
    let figures = measure(&args).await?;
    println!("\n{}", figures.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

pub async fn measure(args: &ClientArgs) -> anyhow::Result<Figures> {
    ensure!(
        args.runs >= 1 && args.sync_runs >= 1,
        "--runs and --sync-runs must be at least 1"
    );
    let attune = sibling("attune", &args.attune_bin, "--attune-bin")?;
    let relay_bin = sibling("attune-relay", &args.relay_bin, "--relay-bin")?;
    let manifest = read_manifest(&args.dir)?;
    let entries = manifest["entries"].as_u64().unwrap_or(0) as usize;
    let parent = match &args.work_dir {
        Some(d) => d.clone(),
        None => args
            .dir
            .canonicalize()?
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(std::env::temp_dir),
    };
    let work = tempfile::Builder::new()
        .prefix("attune-client-bench")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a working directory in {}", parent.display()))?;
    let w = work.path();
    eprintln!("copying {} to {}", args.dir.display(), w.display());
    for part in ["alex", "sam"] {
        copy_dir(&args.dir.join(part), &w.join(part))?;
    }
    std::fs::copy(args.dir.join("relay.sqlite3"), w.join("relay.sqlite3"))
        .context("copying the relay database")?;
    let sam = w.join("sam");
    let sam_orig = w.join("sam.orig");
    copy_dir(&sam, &sam_orig)?;
    let url = stored_relay(&sam)?;
    crate::target::check_loopback(&url)?;
    let listen = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();

    let runner = Runner {
        attune,
        hyperfine: !args.no_hyperfine && has_hyperfine(),
        runs: args.runs,
        warmup: args.warmup.max(1),
        dir: w.to_path_buf(),
    };
    let mut notes = Vec::new();
    notes.push(if runner.hyperfine {
        "Timed with hyperfine (`-N`, no shell); `sync` with a loop.".to_string()
    } else {
        "Timed with a loop (hyperfine is not installed, or --no-hyperfine).".to_string()
    });
    let journal_id = manifest["journals"]["alex"]
        .as_array()
        .and_then(|a| a.first())
        .and_then(|v| v.as_str())
        .or_else(|| {
            manifest["journals"]["sam"]
                .as_array()
                .and_then(|a| a.first())
                .and_then(|v| v.as_str())
        })
        .context("the manifest names no journal entry to `show`")?
        .to_string();
    let feed_help = runner.check(&sam, &["feed", "--help"])?;
    let has_n = feed_help.contains("-n,") || feed_help.contains("-n <");
    let feed: Vec<&str> = if has_n {
        vec!["feed", "-n", "20"]
    } else {
        notes
            .push("`attune feed` has no `-n` yet: the plain `feed` (every item) was timed.".into());
        vec!["feed"]
    };

    let mut relay = Target::spawn_at(&relay_bin, w, &listen, "warn", &[]).await?;
    eprintln!("relay: {} on {}", relay_bin.display(), relay.url());
    let mut commands = Vec::new();
    let reads: Vec<(String, Vec<&str>)> = vec![
        ("`attune status`".into(), vec!["status"]),
        ("`attune today`".into(), vec!["today"]),
        (format!("`attune {}`", feed.join(" ")), feed.clone()),
        (
            "`attune show ID` (a journal entry)".into(),
            vec!["show", &journal_id],
        ),
        (
            "`attune stats --days 30`".into(),
            vec!["stats", "--days", "30"],
        ),
    ];
    for (what, cmd) in &reads {
        eprintln!("timing {what}");
        let t = runner.measure(what, &sam, cmd)?;
        eprintln!("    median {:.1} ms", t.median_ms);
        commands.push(t);
    }
    relay.stop().await?;
    {
        let what = "`attune journal -m TEXT` (relay unreachable)";
        eprintln!("timing {what}");
        let t = runner.measure(
            what,
            &sam,
            &["journal", "-m", "A short note while offline."],
        )?;
        eprintln!("    median {:.1} ms", t.median_ms);
        commands.push(t);
        restore(&sam_orig, &sam)?;
    }

    // Sync: Alex writes new items while Sam is away; Sam's sync receives them.
    relay = Target::spawn_at(&relay_bin, w, &listen, "warn", &[]).await?;
    let t = Instant::now();
    eprintln!("Alex writes {} new items and sends them", args.sync_items);
    history::extend(&w.join("alex"), args.sync_items, 7).await?;
    let extend_secs = t.elapsed().as_secs_f64();
    let mut ms = Vec::new();
    for i in 0..args.sync_runs {
        restore(&sam_orig, &sam)?;
        let t = Instant::now();
        let out = runner
            .command(&sam, &["sync"])
            .output()
            .context("running attune sync")?;
        ms.push(t.elapsed().as_secs_f64() * 1000.0);
        let stdout = String::from_utf8_lossy(&out.stdout);
        ensure!(
            out.status.success(),
            "`attune sync` failed ({}): {stdout}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        ensure!(
            stdout.contains(&format!("received {}", args.sync_items)),
            "`attune sync` did not receive the {} new items: {stdout}",
            args.sync_items
        );
        eprintln!("    sync {}: {:.0} ms", i + 1, ms[ms.len() - 1]);
    }
    let sync = Timing::from_samples(
        format!("`attune sync` receiving {} new items", args.sync_items),
        ms,
        "loop",
    );
    relay.stop().await?;
    let limit = {
        let home = sam.clone();
        let k = args.sync_items;
        tokio::task::spawn_blocking(move || verify_limit(&home, k)).await??
    };
    eprintln!("limit: {:.1} ms", limit.as_secs_f64() * 1000.0);
    Ok(Figures {
        entries,
        commands,
        sync: Some(sync),
        limit_ms: Some(limit.as_secs_f64() * 1000.0),
        sync_items: args.sync_items,
        extend_secs,
        notes,
    })
}

/// The time to verify and decrypt the last `last` envelopes a profile received,
/// on this thread, with the chains first brought up to them (untimed).
pub fn verify_limit(home: &Path, last: usize) -> anyhow::Result<Duration> {
    let p = attune_core::profile::Profile::open(home)?;
    let roster = p.roster()?;
    let rows = p.db.received()?;
    ensure!(
        rows.len() >= last,
        "{} holds {} envelopes, fewer than {last}",
        home.display(),
        rows.len()
    );
    let split = rows.len() - last;
    let mut verifier = ChainVerifier::new(roster);
    for (_, bytes, _) in &rows[..split] {
        let env = Envelope::decode(bytes).context("a stored envelope does not decode")?;
        verifier.check(&env, &p.keys);
    }
    let started = Instant::now();
    let mut opened = 0usize;
    for (_, bytes, _) in &rows[split..] {
        let env = Envelope::decode(bytes).context("a stored envelope does not decode")?;
        for c in verifier.check(&env, &p.keys) {
            ensure!(
                c.class.is_accepted(),
                "an envelope did not verify: {:?}",
                c.class
            );
            opened += usize::from(c.opened.is_some());
        }
    }
    let took = started.elapsed();
    // Alex's private entries cannot be opened here; everything else must be.
    ensure!(opened > 0, "nothing was decrypted");
    Ok(took)
}
