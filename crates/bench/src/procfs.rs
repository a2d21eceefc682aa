//! What the bench reads from Linux's /proc: resident memory, CPU time (per process
//! and per thread), the open-files limit, and a little about the machine.

use std::collections::BTreeMap;
use std::path::Path;

/// A `kB` field of /proc/<pid>/status (`VmRSS`, `VmHWM` ...), in KiB.
pub fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

/// Resident set size of `pid`, in MiB.
pub fn rss_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmRSS").map(|k| k as f64 / 1024.0)
}

/// Peak resident set size of `pid` so far, in MiB.
pub fn hwm_mib(pid: u32) -> Option<f64> {
    status_kib(pid, "VmHWM").map(|k| k as f64 / 1024.0)
}

/// `(comm, utime + stime in clock ticks)` from a /proc stat file.
fn parse_stat(text: &str) -> Option<(String, u64)> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let comm = text.get(open + 1..close)?.to_string();
    let fields: Vec<&str> = text.get(close + 1..)?.split_whitespace().collect();
    // After the comm: state is field 3 of stat(5), utime 14, stime 15.
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

/// Clock ticks per second for /proc CPU times (`getconf CLK_TCK`, usually 100).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU seconds used so far, per thread name, of `pid` (threads that have already
/// exited are not counted; tokio's workers live as long as the runtime).
#[derive(Debug, Clone, Default)]
pub struct ThreadCpu {
    pub by_name: BTreeMap<String, u64>,
    pub process_ticks: u64,
}

impl ThreadCpu {
    pub fn read(pid: u32) -> Self {
        let mut by_name = BTreeMap::new();
        if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
            for task in dir.flatten() {
                let Ok(text) = std::fs::read_to_string(task.path().join("stat")) else {
                    continue;
                };
                if let Some((comm, ticks)) = parse_stat(&text) {
                    *by_name.entry(comm).or_insert(0) += ticks;
                }
            }
        }
        let process_ticks = std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .ok()
            .and_then(|t| parse_stat(&t))
            .map_or(0, |(_, t)| t);
        Self {
            by_name,
            process_ticks,
        }
    }

    /// CPU seconds between `self` (earlier) and `later`: whole process, and per name.
    pub fn delta(&self, later: &ThreadCpu, hz: f64) -> CpuDelta {
        let by_name = later
            .by_name
            .iter()
            .map(|(k, v)| {
                let before = self.by_name.get(k).copied().unwrap_or(0);
                (k.clone(), v.saturating_sub(before) as f64 / hz)
            })
            .filter(|(_, s)| *s > 0.0)
            .collect();
        CpuDelta {
            process_secs: later.process_ticks.saturating_sub(self.process_ticks) as f64 / hz,
            by_name,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct CpuDelta {
    pub process_secs: f64,
    pub by_name: BTreeMap<String, f64>,
}

/// Machine-wide CPU ticks from /proc/stat: `(busy, all)`, summed over CPUs.
/// Busy is user + nice + system + irq + softirq + steal; the rest is idle + iowait.
pub fn machine_ticks() -> Option<(u64, u64)> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .filter_map(|x| x.parse().ok())
        .collect();
    if v.len() < 8 {
        return None;
    }
    let busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    Some((busy, v.iter().sum()))
}

/// The soft limit on open files of this process.
pub fn open_files_soft_limit() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// A one-line description of the machine: CPUs, memory, kernel.
pub fn machine() -> serde_json::Value {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let mem_mib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|k| k.parse::<u64>().ok())
        })
        .map_or(0, |k| k / 1024);
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    serde_json::json!({
        "cpus": cpus,
        "cpu_model": model,
        "memory_mib": mem_mib,
        "kernel": kernel,
    })
}

/// Median and p99 time, in ms, of writing 4 KiB and `fdatasync` in `dir`:
/// `append` grows the file each time (the file system journals the new size, like
/// a growing WAL), otherwise the same block is overwritten (like a WAL reused
/// after a checkpoint). The floor under every group commit: SQLite syncs its WAL
/// once per commit. Bounded: at most 100 syncs and 2 s.
pub fn fsync_probe(dir: &Path, append: bool) -> std::io::Result<(f64, f64, usize)> {
    use std::io::{Seek, SeekFrom, Write};
    let path = dir.join("fsync-probe");
    let mut f = std::fs::File::create(&path)?;
    let block = [0x5au8; 4096];
    f.write_all(&block)?;
    f.sync_all()?;
    let mut lat = crate::stats::Latencies::with_capacity(100);
    let start = std::time::Instant::now();
    while lat.len() < 100 && start.elapsed() < std::time::Duration::from_secs(2) {
        let t = std::time::Instant::now();
        if !append {
            f.seek(SeekFrom::Start(0))?;
        }
        f.write_all(&block)?;
        f.sync_data()?;
        lat.record(t.elapsed());
    }
    let n = lat.len();
    let s = lat.summary();
    drop(f);
    let _ = std::fs::remove_file(&path);
    Ok((s.p50_ms, s.p99_ms, n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_line() {
        let line = "1234 (tokio-runtime-w) S 1 2 3 4 5 6 7 8 9 10 250 50 0 0 20 0 4 0";
        assert_eq!(parse_stat(line), Some(("tokio-runtime-w".into(), 300)));
        let odd = "7 (a (b) c) R 1 2 3 4 5 6 7 8 9 10 1 2 0";
        assert_eq!(parse_stat(odd), Some(("a (b) c".into(), 3)));
    }
}
