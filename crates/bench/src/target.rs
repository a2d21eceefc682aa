//! The relay under test: started in this process, spawned as the real
//! `attune-relay` binary, or already running at a loopback URL.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::oneshot;

/// How to reach (and, where possible, observe) the relay.
#[derive(Debug)]
pub enum Target {
    /// `attune_relay::serve` on its own runtime in this process, whose threads are
    /// named [`RELAY_THREADS`] so their CPU can be told from the bench's. RSS
    /// includes the bench.
    InProcess {
        url: String,
        stop: Option<oneshot::Sender<()>>,
        task: Option<tokio::task::JoinHandle<Result<(), attune_relay::RelayError>>>,
        runtime: Option<tokio::runtime::Runtime>,
        db: PathBuf,
    },
    /// The release binary as a child process: its RSS and CPU are the relay's alone.
    Spawned {
        url: String,
        child: Child,
        db: PathBuf,
        log: PathBuf,
        /// More instances on the same PostgreSQL database (URL, process); the
        /// RSS and CPU figures are the first instance's.
        others: Vec<(String, Child)>,
        /// The PostgreSQL database, when the relay runs on one.
        pg: Option<String>,
    },
    /// A relay someone else started; nothing to observe but its answers.
    External { url: String },
}

/// Requests per second and burst that never throttle the bench.
pub const UNTHROTTLED: f64 = 1e9;

/// The relay's connection cap in the bench: above anything it opens.
pub const UNCAPPED_CONNECTIONS: usize = 1_000_000;

/// Thread name of the in-process relay's runtime (workers and blocking pool).
pub const RELAY_THREADS: &str = "relay-rt";

/// Thread name of SQLite's writer, in the relay and in the ceiling server.
pub const WRITER_THREAD: &str = "attune-writer";

/// A multi-threaded runtime with one worker per CPU and named threads.
pub fn named_runtime(name: &str) -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .thread_name(name)
        .enable_all()
        .build()?)
}

impl Target {
    pub async fn in_process(dir: &Path) -> anyhow::Result<Self> {
        let db = dir.join("relay.sqlite3");
        let mut config = attune_relay::Config::for_tests(db.clone());
        config.rate_per_sec = UNTHROTTLED;
        config.rate_burst = UNTHROTTLED;
        // All the load comes from one address, and connections are what is measured.
        config.max_connections_per_ip = 0;
        config.max_connections = UNCAPPED_CONNECTIONS;
        let runtime = named_runtime(RELAY_THREADS)?;
        let listener = {
            let _guard = runtime.enter();
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(attune_relay::serve(listener, config, async move {
            let _ = stopped.await;
        }));
        wait_healthy(&url).await?;
        Ok(Self::InProcess {
            url,
            stop: Some(stop),
            task: Some(task),
            runtime: Some(runtime),
            db,
        })
    }

    /// Spawns `bin --listen 127.0.0.1:0 --db FILE` (in `dir`) and reads `listening on ADDR`
    /// from its first stdout line. Its log (at `log_level`) goes to a file in `dir`.
    pub async fn spawn(
        bin: &Path,
        dir: &Path,
        log_level: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        Self::spawn_at(bin, dir, "127.0.0.1:0", log_level, env).await
    }

    /// [`Target::spawn`], listening on `listen` (e.g. the address profiles point at).
    pub async fn spawn_at(
        bin: &Path,
        dir: &Path,
        listen: &str,
        log_level: &str,
        env: &[(String, String)],
    ) -> anyhow::Result<Self> {
        let (url, child, db, log) = Self::spawn_one(bin, dir, listen, log_level, env, None).await?;
        let target = Self::Spawned {
            url,
            child,
            db,
            log,
            others: Vec::new(),
            pg: None,
        };
        wait_healthy(target.url()).await?;
        Ok(target)
    }

    /// `instances` relay processes on one PostgreSQL database (`db_url`, which
    /// is new and empty), their logs in `dir`.
    pub async fn spawn_postgres(
        bin: &Path,
        dir: &Path,
        log_level: &str,
        env: &[(String, String)],
        db_url: &str,
        instances: usize,
    ) -> anyhow::Result<Self> {
        let mut started = Vec::new();
        for i in 0..instances.max(1) {
            let d = dir.join(format!("instance-{i}"));
            std::fs::create_dir_all(&d)?;
            let (url, child, _, log) =
                Self::spawn_one(bin, &d, "127.0.0.1:0", log_level, env, Some(db_url)).await?;
            wait_healthy(&url).await?;
            started.push((url, child, log));
        }
        let mut started = started.into_iter();
        let (url, child, log) = started.next().context("one instance at least")?;
        Ok(Self::Spawned {
            url,
            child,
            db: dir.join("postgres"),
            log,
            others: started.map(|(u, c, _)| (u, c)).collect(),
            pg: Some(db_url.to_string()),
        })
    }

    async fn spawn_one(
        bin: &Path,
        dir: &Path,
        listen: &str,
        log_level: &str,
        env: &[(String, String)],
        pg: Option<&str>,
    ) -> anyhow::Result<(String, Child, PathBuf, PathBuf)> {
        if !bin.exists() {
            bail!(
                "{} does not exist: build it first with `cargo build --release -p attune-relay`",
                bin.display()
            );
        }
        let db = dir.join("relay.sqlite3");
        let log = dir.join("relay.log");
        let log_file = std::fs::File::create(&log)?;
        let rate = UNTHROTTLED.to_string();
        let db_arg: std::ffi::OsString = match pg {
            Some(url) => url.into(),
            None => db.clone().into(),
        };
        let mut child = Command::new(bin)
            .args(["--listen", listen, "--db"])
            .arg(db_arg)
            .args(["--log", log_level])
            // By environment: stable whatever the flags are called.
            .env("ATTUNE_RELAY_RATE", &rate)
            .env("ATTUNE_RELAY_BURST", &rate)
            .env("ATTUNE_RELAY_MAX_CONNECTIONS_PER_IP", "0")
            .env(
                "ATTUNE_RELAY_MAX_CONNECTIONS",
                UNCAPPED_CONNECTIONS.to_string(),
            )
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log_file))
            .spawn()
            .with_context(|| format!("starting {}", bin.display()))?;
        let stdout = child.stdout.take().context("the relay's stdout is piped")?;
        let (tx, rx) = oneshot::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match tokio::time::timeout(Duration::from_secs(30), rx).await {
            Ok(Ok(line)) => line,
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the relay did not print its address within 30 s");
            }
        };
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            bail!("unexpected first line from the relay: {line:?}; its log:\n{text}");
        };
        Ok((format!("http://{addr}"), child, db, log))
    }

    pub async fn external(url: &str) -> anyhow::Result<Self> {
        let url = url.trim_end_matches('/').to_string();
        check_loopback(&url)?;
        wait_healthy(&url).await?;
        Ok(Self::External { url })
    }

    /// Every instance's URL (one, but for several on PostgreSQL).
    pub fn urls(&self) -> Vec<String> {
        let mut urls = vec![self.url().to_string()];
        if let Self::Spawned { others, .. } = self {
            urls.extend(others.iter().map(|(u, _)| u.clone()));
        }
        urls
    }

    /// The database, as the bench prints it.
    pub fn database(&self) -> String {
        match self {
            Self::Spawned {
                pg: Some(url),
                others,
                ..
            } => {
                format!("PostgreSQL {url}, {} instance(s)", others.len() + 1)
            }
            _ => self
                .db()
                .map_or("its own database".into(), |d| d.display().to_string()),
        }
    }

    pub fn url(&self) -> &str {
        match self {
            Self::InProcess { url, .. } | Self::Spawned { url, .. } | Self::External { url } => url,
        }
    }

    /// The process whose memory and CPU are the relay's (and, in process, the bench's).
    pub fn pid(&self) -> Option<u32> {
        match self {
            Self::InProcess { .. } => Some(std::process::id()),
            Self::Spawned { child, .. } => Some(child.id()),
            Self::External { .. } => None,
        }
    }

    pub fn mode(&self) -> &'static str {
        match self {
            Self::InProcess { .. } => "in-process",
            Self::Spawned { .. } => "spawned",
            Self::External { .. } => "external",
        }
    }

    /// What an RSS figure of [`Target::pid`] covers.
    pub fn rss_scope(&self) -> &'static str {
        match self {
            Self::InProcess { .. } => "bench + relay in one process (overstates the relay)",
            Self::Spawned { .. } => "relay process alone",
            Self::External { .. } => "not measured",
        }
    }

    pub fn db(&self) -> Option<&Path> {
        match self {
            Self::InProcess { db, .. } | Self::Spawned { db, .. } => Some(db),
            Self::External { .. } => None,
        }
    }

    /// The relay's share of a CPU delta of [`Target::pid`]: the whole child
    /// process, or the in-process relay's named threads.
    pub fn relay_cpu_secs(&self, d: &crate::procfs::CpuDelta) -> f64 {
        match self {
            Self::InProcess { .. } => [RELAY_THREADS, WRITER_THREAD]
                .iter()
                .filter_map(|n| d.by_name.get(*n))
                .sum(),
            _ => d.process_secs,
        }
    }

    pub fn rss_mib(&self) -> Option<f64> {
        self.pid().and_then(crate::procfs::rss_mib)
    }

    /// Stops the relay: graceful for the in-process one, SIGKILL for the child.
    pub async fn stop(mut self) -> anyhow::Result<()> {
        match &mut self {
            Self::InProcess {
                stop,
                task,
                runtime,
                ..
            } => {
                if let Some(s) = stop.take() {
                    let _ = s.send(());
                }
                if let Some(t) = task.take() {
                    match tokio::time::timeout(Duration::from_secs(30), t).await {
                        Ok(r) => r.context("the relay task panicked")??,
                        Err(_) => bail!("the in-process relay did not stop within 30 s"),
                    }
                }
                if let Some(rt) = runtime.take() {
                    rt.shutdown_background();
                }
            }
            Self::Spawned {
                child, log, others, ..
            } => {
                let status = child.try_wait()?;
                if let Some(status) = status {
                    bail!("the relay exited early ({status}); see {}", log.display());
                }
                let _ = child.kill();
                let _ = child.wait();
                for (_, c) in others.iter_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
            Self::External { .. } => {}
        }
        Ok(())
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        match self {
            Self::Spawned { child, others, .. } => {
                let _ = child.kill();
                let _ = child.wait();
                for (_, c) in others.iter_mut() {
                    let _ = c.kill();
                    let _ = c.wait();
                }
            }
            Self::InProcess { runtime, .. } => {
                if let Some(rt) = runtime.take() {
                    rt.shutdown_background();
                }
            }
            Self::External { .. } => {}
        }
    }
}

/// Refuses anything but a loopback relay: this bench floods what it talks to.
pub fn check_loopback(url: &str) -> anyhow::Result<()> {
    let rest = url
        .strip_prefix("http://")
        .context("the relay URL must start with http:// (the bench speaks no TLS)")?;
    let host = rest.split('/').next().unwrap_or("");
    let host = host.rsplit_once(':').map_or(
        host,
        |(h, p)| if p.parse::<u16>().is_ok() { h } else { host },
    );
    let ok = matches!(host, "127.0.0.1" | "localhost" | "[::1]");
    if !ok {
        bail!("the bench only talks to a relay on 127.0.0.1, localhost or [::1], not {host}");
    }
    Ok(())
}

/// Polls `/healthz` until it answers (at most 10 s).
pub async fn wait_healthy(url: &str) -> anyhow::Result<()> {
    let http = reqwest::Client::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(r) = http.get(format!("{url}/healthz")).send().await {
            if r.status().is_success() {
                return Ok(());
            }
        }
        if tokio::time::Instant::now() > deadline {
            bail!("the relay at {url} did not answer /healthz within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The relay's counters from `/metrics` that the bench uses.
#[derive(Debug, Clone, Copy, Default)]
pub struct RelayCounters {
    pub commits: u64,
    pub committed_jobs: u64,
    pub envelopes: u64,
    pub streams_open: i64,
}

impl RelayCounters {
    pub fn parse(text: &str) -> Self {
        let mut c = Self::default();
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let mut parts = line.split_whitespace();
            let (Some(name), Some(v)) = (parts.next(), parts.next()) else {
                continue;
            };
            match name {
                "attune_commits_total" => c.commits = v.parse().unwrap_or(0),
                "attune_committed_jobs_total" => c.committed_jobs = v.parse().unwrap_or(0),
                "attune_envelopes_appended_total" => c.envelopes = v.parse().unwrap_or(0),
                "attune_streams_open" => c.streams_open = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        c
    }

    pub async fn fetch(url: &str) -> anyhow::Result<Self> {
        let text = reqwest::get(format!("{url}/metrics"))
            .await?
            .error_for_status()?
            .text()
            .await?;
        Ok(Self::parse(&text))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_only() {
        assert!(check_loopback("http://127.0.0.1:8733").is_ok());
        assert!(check_loopback("http://localhost:1/").is_ok());
        assert!(check_loopback("http://[::1]:80").is_ok());
        assert!(check_loopback("http://10.0.0.1:8733").is_err());
        assert!(check_loopback("https://127.0.0.1:8733").is_err());
        assert!(check_loopback("http://127.0.0.1.evil.example:80").is_err());
    }

    #[test]
    fn counters() {
        let text = "# HELP x\nattune_commits_total 10\nattune_committed_jobs_total 640\nattune_streams_open 3\n";
        let c = RelayCounters::parse(text);
        assert_eq!((c.commits, c.committed_jobs, c.streams_open), (10, 640, 3));
    }
}
