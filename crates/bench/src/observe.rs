//! Watching the relay while a scenario runs: its CPU time (per thread), the
//! bench's and the whole machine's, its group commits (from `/metrics`), and its
//! peak RSS.

use crate::load::RssSampler;
use crate::procfs::{machine_ticks, CpuDelta, ThreadCpu};
use crate::target::{RelayCounters, Target, WRITER_THREAD};

/// Snapshots taken when a scenario starts.
#[derive(Debug)]
pub struct Observer {
    relay_cpu: Option<ThreadCpu>,
    bench_cpu: ThreadCpu,
    machine: Option<(u64, u64)>,
    counters: Option<RelayCounters>,
    sampler: RssSampler,
    started: std::time::Instant,
    hz: f64,
}

/// What the relay, the bench and the machine did during a scenario.
#[derive(Debug, Default)]
pub struct Observation {
    pub secs: f64,
    /// CPU seconds of the relay alone (its process, or its threads in process).
    pub relay_cpu_secs: Option<f64>,
    /// CPU seconds of SQLite's writer thread.
    pub writer_cpu_secs: Option<f64>,
    pub relay_by_thread: Option<CpuDelta>,
    /// CPU seconds of the bench's clients (everything in the bench process that is
    /// not the relay).
    pub bench_cpu_secs: f64,
    /// CPU seconds used on the whole machine, all processes.
    pub machine_cpu_secs: Option<f64>,
    pub commits: Option<u64>,
    pub committed_jobs: Option<u64>,
    pub peak_rss_mib: Option<f64>,
}

impl Observer {
    pub async fn begin(target: &Target, hz: f64) -> Self {
        let relay_pid = target.pid();
        Self {
            relay_cpu: relay_pid.map(ThreadCpu::read),
            bench_cpu: ThreadCpu::read(std::process::id()),
            machine: machine_ticks(),
            counters: RelayCounters::fetch(target.url()).await.ok(),
            sampler: RssSampler::start(relay_pid),
            started: std::time::Instant::now(),
            hz,
        }
    }

    pub async fn end(self, target: &Target) -> Observation {
        let secs = self.started.elapsed().as_secs_f64();
        let machine_cpu_secs = match (self.machine, machine_ticks()) {
            (Some((b0, _)), Some((b1, _))) => Some(b1.saturating_sub(b0) as f64 / self.hz),
            _ => None,
        };
        let peak_rss_mib = self.sampler.finish().await;
        let relay = match (target.pid(), &self.relay_cpu) {
            (Some(pid), Some(before)) => Some(before.delta(&ThreadCpu::read(pid), self.hz)),
            _ => None,
        };
        let relay_cpu_secs = relay.as_ref().map(|d| target.relay_cpu_secs(d));
        let writer_cpu_secs = relay
            .as_ref()
            .map(|d| d.by_name.get(WRITER_THREAD).copied().unwrap_or(0.0));
        let bench = self
            .bench_cpu
            .delta(&ThreadCpu::read(std::process::id()), self.hz);
        let bench_cpu_secs = match target {
            Target::InProcess { .. } => bench.process_secs - relay_cpu_secs.unwrap_or(0.0),
            _ => bench.process_secs,
        };
        let after = RelayCounters::fetch(target.url()).await.ok();
        let (commits, committed_jobs) = match (self.counters, after) {
            (Some(b), Some(a)) => (
                Some(a.commits.saturating_sub(b.commits)),
                Some(a.committed_jobs.saturating_sub(b.committed_jobs)),
            ),
            _ => (None, None),
        };
        Observation {
            secs,
            relay_cpu_secs,
            writer_cpu_secs,
            relay_by_thread: relay,
            bench_cpu_secs,
            machine_cpu_secs,
            commits,
            committed_jobs,
            peak_rss_mib,
        }
    }
}

impl Observation {
    /// CPU seconds on the machine used by neither the relay nor the bench.
    pub fn other_cpu_secs(&self) -> Option<f64> {
        let m = self.machine_cpu_secs?;
        Some((m - self.relay_cpu_secs.unwrap_or(0.0) - self.bench_cpu_secs).max(0.0))
    }

    /// Cores used by other processes meanwhile, formatted.
    pub fn other_cores(&self) -> String {
        crate::report::fmt_opt(self.other_cpu_secs().map(|o| o / self.secs.max(1e-9)), 2)
    }

    pub fn cpu_us_per_envelope(&self, envelopes: u64) -> Option<f64> {
        let c = self.relay_cpu_secs?;
        (envelopes > 0).then(|| c * 1e6 / envelopes as f64)
    }

    pub fn jobs_per_commit(&self) -> Option<f64> {
        match (self.commits, self.committed_jobs) {
            (Some(c), Some(j)) if c > 0 => Some(j as f64 / c as f64),
            _ => None,
        }
    }

    /// A short CPU line: relay / bench / other processes, in cores.
    pub fn cpu_line(&self) -> String {
        let s = self.secs.max(1e-9);
        let f = |v: Option<f64>| v.map_or("-".into(), |v| format!("{:.2}", v / s));
        format!(
            "cores: relay {} (writer {}), bench {}, other processes {}",
            f(self.relay_cpu_secs),
            f(self.writer_cpu_secs),
            f(Some(self.bench_cpu_secs)),
            f(self.other_cpu_secs()),
        )
    }

    /// The figures as JSON, per `envelopes` stored.
    pub fn to_json(&self, envelopes: u64) -> serde_json::Value {
        let s = self.secs.max(1e-9);
        let per_env = |cpu: Option<f64>| {
            cpu.filter(|_| envelopes > 0)
                .map(|c| c * 1e6 / envelopes as f64)
        };
        serde_json::json!({
            "relay_cpu_secs": self.relay_cpu_secs,
            "relay_cpu_cores": self.relay_cpu_secs.map(|c| c / s),
            "relay_cpu_us_per_envelope": per_env(self.relay_cpu_secs),
            "writer_thread_cpu_secs": self.writer_cpu_secs,
            "writer_thread_busy_fraction": self.writer_cpu_secs.map(|w| w / s),
            "relay_cpu_by_thread": self.relay_by_thread.as_ref().map(|c| &c.by_name),
            "bench_cpu_secs": self.bench_cpu_secs,
            "bench_cpu_us_per_envelope": per_env(Some(self.bench_cpu_secs)),
            "machine_cpu_secs": self.machine_cpu_secs,
            "other_processes_cpu_cores": self.other_cpu_secs().map(|c| c / s),
            "commits": self.commits,
            "commits_per_sec": self.commits.map(|c| c as f64 / s),
            "jobs_per_commit": self.jobs_per_commit(),
            "peak_rss_mib": self.peak_rss_mib,
        })
    }
}
