//! `attune-bench cold-sync --dir DIR`: a new device of Sam's receives the whole
//! history of a generated space, measured against the limit of checking and
//! opening the same envelopes on one and on two cores.
//!
//! Each run works on a fresh copy of DIR's relay database and Sam's profile, so
//! every run joins the same history. The real `attune` binary runs: `attune init`
//! for the new device, `attune device add` on Sam's profile, and `attune device
//! join` on the new one, which pairs and then fetches everything. The timed span
//! starts when the join prints that it fetches the history and ends when it
//! exits. Its peak resident memory comes from GNU time (`/usr/bin/time`) when
//! installed.
//!
//! The limits, in the same run, on the new device's own copy of the envelopes:
//! attune-crypto's `ChainVerifier` checks and opens every one of them on one
//! core, then on two threads, each with its own verifier over half of the
//! authors' chains (chains are independent, so this is the work split that
//! needs no coordination).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context};
use attune_crypto::ChainVerifier;
use attune_proto::Envelope;

use crate::client::{copy_dir, read_manifest, sibling, stored_relay};
use crate::target::Target;

#[derive(Debug, Clone, clap::Args)]
pub struct ColdArgs {
    /// A directory written by `attune-bench history` (left as it is: the bench
    /// works on copies).
    #[arg(long)]
    pub dir: PathBuf,

    /// Timed cold syncs, each a new device joining a fresh copy.
    #[arg(long, default_value_t = 3)]
    pub runs: usize,

    /// The `attune` binary [default: next to this executable].
    #[arg(long)]
    pub attune_bin: Option<PathBuf>,

    /// The `attune-relay` binary [default: next to this executable].
    #[arg(long)]
    pub relay_bin: Option<PathBuf>,

    /// Also write the figures as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdRun {
    pub received: usize,
    pub fetch_ms: f64,
    pub peak_rss_mib: Option<f64>,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ColdFigures {
    pub entries: usize,
    pub runs: Vec<ColdRun>,
    pub envelopes: usize,
    pub one_core_ms: f64,
    pub two_core_ms: f64,
}

impl ColdFigures {
    fn median_fetch_ms(&self) -> f64 {
        let mut v: Vec<f64> = self.runs.iter().map(|r| r.fetch_ms).collect();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }

    pub fn markdown(&self) -> String {
        let fetch = self.median_fetch_ms();
        let mut s = format!(
            "Cold sync of a history of {} items ({} envelopes) to a new device\n\n| figure | value |\n|---|---|\n",
            self.entries, self.envelopes
        );
        for (i, r) in self.runs.iter().enumerate() {
            let peak = r
                .peak_rss_mib
                .map_or("not measured".to_string(), |m| format!("{m:.1} MiB"));
            s += &format!(
                "| run {}: fetch and verify {} items | {:.0} ms, peak RSS {peak} |\n",
                i + 1,
                r.received,
                r.fetch_ms
            );
        }
        s += &format!("| median | {fetch:.0} ms |\n");
        s += &format!(
            "| limit, one core: check + open every envelope | {:.0} ms |\n",
            self.one_core_ms
        );
        s += &format!(
            "| limit, two cores (chains split by author) | {:.0} ms |\n",
            self.two_core_ms
        );
        s += &format!(
            "| cold sync / two-core limit | {:.2}× |\n",
            fetch / self.two_core_ms
        );
        s
    }
}

pub async fn run(args: ColdArgs) -> anyhow::Result<()> {
    let figures = measure(&args).await?;
    println!("\n{}", figures.markdown());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&figures)?)
            .with_context(|| format!("writing {}", path.display()))?;
        println!("JSON written to {}", path.display());
    }
    Ok(())
}

fn gnu_time() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/bin/time");
    Command::new(&p)
        .args(["-f", "%M", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
        .then_some(p)
}

fn attune(bin: &Path, home: &Path) -> Command {
    let mut c = Command::new(bin);
    c.arg("--home")
        .arg(home)
        .env("NO_COLOR", "1")
        .env_remove("ATTUNE_PASSPHRASE")
        .stdin(Stdio::null());
    c
}

const RSS_MARK: &str = "attune-bench-peak-kib=";

/// One new device joins Sam's identity on the relay at `url` and fetches the
/// history.
fn join_once(
    bin: &Path,
    time: Option<&Path>,
    sam: &Path,
    new: &Path,
    url: &str,
    run: usize,
) -> anyhow::Result<ColdRun> {
    let out = attune(bin, new)
        .args(["init", "--name", "Sam", "--no-passphrase"])
        .output()
        .context("running attune init")?;
    ensure!(
        out.status.success(),
        "`attune init` failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut add = attune(bin, sam)
        .args(["device", "add", "--timeout", "120"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("running attune device add")?;
    let code = {
        let stdout = add.stdout.take().context("device add's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        loop {
            let Some(line) = lines.next() else {
                bail!("`attune device add` ended without a code");
            };
            if let Some(code) = line?.strip_prefix("code: ") {
                break code.trim().to_string();
            }
        }
    };
    let mut join = match time {
        Some(t) => {
            let mut c = Command::new(t);
            c.args(["-f", &format!("{RSS_MARK}%M"), "--"]).arg(bin);
            c.arg("--home")
                .arg(new)
                .env("NO_COLOR", "1")
                .stdin(Stdio::null());
            c
        }
        None => attune(bin, new),
    };
    let name = format!("bench-{run}");
    let mut child = join
        .args(["device", "join", &code, "--relay", url, "--name", &name])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("running attune device join")?;
    let stderr = child.stderr.take().context("device join's stderr")?;
    let mut started = None;
    let mut peak_kib = None;
    let mut rest = String::new();
    for line in BufReader::new(stderr).lines() {
        let line = line?;
        if started.is_none() && line.starts_with("Fetching your history") {
            started = Some(Instant::now());
        } else if let Some(k) = line.strip_prefix(RSS_MARK) {
            peak_kib = k.trim().parse::<f64>().ok();
        } else {
            rest += &line;
            rest.push('\n');
        }
    }
    let out = child.wait_with_output()?;
    let ended = Instant::now();
    let _ = add.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    ensure!(
        out.status.success(),
        "`attune device join` failed ({}): {stdout}{rest}",
        out.status
    );
    let started = started.context("`attune device join` never said it fetches the history")?;
    let received = stdout
        .split("received ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|n| n.replace(',', "").parse().ok())
        .context("`attune device join` did not say how many items it received")?;
    Ok(ColdRun {
        received,
        fetch_ms: (ended - started).as_secs_f64() * 1000.0,
        peak_rss_mib: peak_kib.map(|k| k / 1024.0),
    })
}

pub async fn measure(args: &ColdArgs) -> anyhow::Result<ColdFigures> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    let bin = sibling("attune", &args.attune_bin, "--attune-bin")?;
    let relay_bin = sibling("attune-relay", &args.relay_bin, "--relay-bin")?;
    let manifest = read_manifest(&args.dir)?;
    let entries = manifest["entries"].as_u64().unwrap_or(0) as usize;
    let parent = args
        .dir
        .canonicalize()?
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(std::env::temp_dir);
    let work = tempfile::Builder::new()
        .prefix("attune-cold-bench")
        .tempdir_in(&parent)
        .with_context(|| format!("creating a working directory in {}", parent.display()))?;
    let w = work.path();
    let url = stored_relay(&args.dir.join("sam"))?;
    crate::target::check_loopback(&url)?;
    let listen = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_string();
    let time = gnu_time();
    if time.is_none() {
        eprintln!("GNU time (/usr/bin/time) is not installed: peak memory is not measured");
    }
    let mut runs = Vec::new();
    let mut last_home = None;
    for i in 0..args.runs {
        let sam = w.join("sam");
        let new = w.join(format!("new-{i}"));
        if sam.exists() {
            std::fs::remove_dir_all(&sam)?;
        }
        copy_dir(&args.dir.join("sam"), &sam)?;
        std::fs::copy(args.dir.join("relay.sqlite3"), w.join("relay.sqlite3"))
            .context("copying the relay database")?;
        for extra in ["relay.sqlite3-wal", "relay.sqlite3-shm"] {
            let _ = std::fs::remove_file(w.join(extra));
        }
        let relay = Target::spawn_at(&relay_bin, w, &listen, "warn", &[]).await?;
        eprintln!("run {}: a new device joins and fetches the history", i + 1);
        let (b, t, s, n, u) = (
            bin.clone(),
            time.clone(),
            sam.clone(),
            new.clone(),
            url.clone(),
        );
        let r = tokio::task::spawn_blocking(move || join_once(&b, t.as_deref(), &s, &n, &u, i))
            .await??;
        relay.stop().await?;
        eprintln!(
            "    {} items in {:.0} ms, peak {:?} MiB",
            r.received, r.fetch_ms, r.peak_rss_mib
        );
        runs.push(r);
        if let Some(old) = last_home.replace(new) {
            std::fs::remove_dir_all(old)?;
        }
    }
    let home = last_home.context("no run")?;
    let (envelopes, one, two) = tokio::task::spawn_blocking(move || verify_limits(&home)).await??;
    Ok(ColdFigures {
        entries,
        runs,
        envelopes,
        one_core_ms: one.as_secs_f64() * 1000.0,
        two_core_ms: two.as_secs_f64() * 1000.0,
    })
}

/// Checks and opens every envelope a profile received, in the order served:
/// on this thread, then split by author over two threads.
pub fn verify_limits(home: &Path) -> anyhow::Result<(usize, Duration, Duration)> {
    let p = attune_core::profile::Profile::open(home)?;
    let roster = p.roster()?;
    let envelopes: Vec<Envelope> = p
        .db
        .received()?
        .iter()
        .map(|(_, bytes, _)| Envelope::decode(bytes).context("a stored envelope does not decode"))
        .collect::<anyhow::Result<_>>()?;
    let check = |part: &[&Envelope]| -> anyhow::Result<usize> {
        let mut verifier = ChainVerifier::new(roster.clone());
        let mut opened = 0usize;
        for env in part {
            for c in verifier.check(env, &p.keys) {
                ensure!(
                    c.class.is_accepted(),
                    "an envelope did not verify: {:?}",
                    c.class
                );
                opened += usize::from(c.opened.is_some());
            }
        }
        Ok(opened)
    };
    let all: Vec<&Envelope> = envelopes.iter().collect();
    let started = Instant::now();
    let opened = check(&all)?;
    let one = started.elapsed();
    ensure!(opened > 0, "nothing was decrypted");
    // Authors' chains, largest first, each to the lighter of two halves.
    let mut by_author: std::collections::BTreeMap<_, Vec<&Envelope>> = Default::default();
    for e in &envelopes {
        by_author.entry(e.header.author).or_default().push(e);
    }
    let mut chains: Vec<Vec<&Envelope>> = by_author.into_values().collect();
    chains.sort_by_key(|c| std::cmp::Reverse(c.len()));
    let mut halves: [Vec<&Envelope>; 2] = [Vec::new(), Vec::new()];
    for c in chains {
        let lighter = usize::from(halves[1].len() < halves[0].len());
        halves[lighter].extend(c);
    }
    let started = Instant::now();
    let opened_two = std::thread::scope(|s| -> anyhow::Result<usize> {
        let handles: Vec<_> = halves.iter().map(|h| s.spawn(|| check(h))).collect();
        let mut n = 0;
        for h in handles {
            n += h
                .join()
                .map_err(|_| anyhow::anyhow!("a verifying thread failed"))??;
        }
        Ok(n)
    })?;
    let two = started.elapsed();
    ensure!(
        opened_two == opened,
        "the split opened {opened_two}, one core {opened}"
    );
    Ok((envelopes.len(), one, two))
}
