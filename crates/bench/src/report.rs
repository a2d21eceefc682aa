//! The summary: JSON for machines, a markdown table for people, and the targets.

use std::fmt::Write;

/// One throughput row of the markdown table.
#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: String,
    pub throughput: String,
    pub p50: String,
    pub p99: String,
    /// Relay CPU per envelope, in microseconds.
    pub cpu: String,
    /// Mean jobs per group commit.
    pub group: String,
    /// CPU cores used meanwhile by other processes on the machine (noise).
    pub other: String,
}

/// The targets from the issue.
pub const TARGET_RATIO: f64 = 0.5;
pub const TARGET_P99_MS: f64 = 25.0;
pub const TARGET_RSS_MIB: f64 = 64.0;

/// Cores used by other processes above which a comparison is called noisy.
pub const NOISY_CORES: f64 = 0.15;

#[derive(Debug, Default)]
pub struct Report {
    pub json: serde_json::Map<String, serde_json::Value>,
    pub rows: Vec<Row>,
    /// (when, MiB)
    pub rss: Vec<(String, f64)>,
    pub rss_scope: String,
    pub ceiling_rate: Option<f64>,
    pub rss_streams: Option<f64>,
    /// (step, µs on one core)
    pub costs: Vec<(&'static str, f64)>,
}

pub fn fmt_ms(ms: f64) -> String {
    if ms.is_nan() {
        "-".into()
    } else if ms < 10.0 {
        format!("{ms:.2}")
    } else {
        format!("{ms:.1}")
    }
}

pub fn fmt_opt(v: Option<f64>, decimals: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.decimals$}"))
}

fn verdict(ok: Option<bool>) -> &'static str {
    match ok {
        Some(true) => "met",
        Some(false) => "NOT met",
        None => "not measured",
    }
}

impl Report {
    pub fn insert(&mut self, key: &str, value: serde_json::Value) {
        self.json.insert(key.to_string(), value);
    }

    fn figure(&self, key: &str, field: &str) -> Option<f64> {
        self.json
            .get(key)
            .and_then(|v| v.get(field))
            .and_then(serde_json::Value::as_f64)
    }

    fn single(&self, n: usize, field: &str) -> Option<f64> {
        self.figure(&format!("single_{n}"), field)
    }

    /// Evaluates the targets against the figures, for `devices` devices.
    pub fn targets(
        &mut self,
        devices: usize,
        spawned: bool,
    ) -> Vec<(String, String, &'static str)> {
        let auth = self.single(devices, "appends_per_sec");
        let p99 = self.single(devices, "p99_ms");
        let ratio = match (auth, self.ceiling_rate) {
            (Some(a), Some(c)) if c > 0.0 => Some(a / c),
            _ => None,
        };
        let rss = self.rss_streams.filter(|_| spawned);
        let paced_key = format!("paced_{devices}");
        let paced_p99 = self.figure(&paced_key, "p99_ms");
        let paced_rate = self.figure(&paced_key, "paced_rate");
        let mut out = vec![
            (
                format!("authenticated appends at {devices} devices >= 50% of the ceiling"),
                fmt_opt(ratio.map(|r| r * 100.0), 0) + " %",
                verdict(ratio.map(|r| r >= TARGET_RATIO)),
            ),
            (
                format!("p99 < 25 ms at {devices} devices"),
                fmt_opt(p99, 1) + " ms",
                verdict(p99.map(|p| p < TARGET_P99_MS)),
            ),
        ];
        if let (Some(p), Some(rate)) = (paced_p99, paced_rate) {
            out.push((
                format!(
                    "(for reference) p99 < 25 ms at {devices} devices paced at {rate:.0} appends/s"
                ),
                fmt_opt(Some(p), 1) + " ms",
                verdict(Some(p < TARGET_P99_MS)),
            ));
        }
        out.extend([(
            "relay RSS < 64 MB with the streams open (spawned relay only)".into(),
            fmt_opt(rss, 1) + " MiB",
            verdict(rss.map(|r| r < TARGET_RSS_MIB)),
        )]);
        self.insert(
            "targets",
            serde_json::json!({
                "ratio_vs_ceiling": ratio,
                "ratio_met": ratio.map(|r| r >= TARGET_RATIO),
                "p99_ms": p99,
                "p99_met": p99.map(|p| p < TARGET_P99_MS),
                "paced_p99_ms": paced_p99,
                "paced_rate": paced_rate,
                "rss_with_streams_mib": rss,
                "rss_met": rss.map(|r| r < TARGET_RSS_MIB),
            }),
        );
        out
    }

    pub fn markdown(&mut self, devices: usize, spawned: bool) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "| Scenario | Throughput | p50 ms | p99 ms | Relay CPU µs/envelope | Jobs/commit | Other processes, cores |"
        );
        let _ = writeln!(s, "|---|---|---|---|---|---|---|");
        for r in &self.rows {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} | {} |",
                r.scenario, r.throughput, r.p50, r.p99, r.cpu, r.group, r.other
            );
        }
        if !self.rss.is_empty() {
            let _ = writeln!(s, "\n| Relay RSS ({}) | MiB |", self.rss_scope);
            let _ = writeln!(s, "|---|---|");
            for (when, mib) in &self.rss {
                let _ = writeln!(s, "| {when} | {mib:.1} |");
            }
        }
        if !self.costs.is_empty() {
            let _ = writeln!(s, "\n| Step (one core) | µs |");
            let _ = writeln!(s, "|---|---|");
            for (step, us) in &self.costs {
                let _ = writeln!(s, "| {step} | {us:.1} |");
            }
        }
        let targets = self.targets(devices, spawned);
        let _ = writeln!(s, "\n| Target | Measured | Verdict |");
        let _ = writeln!(s, "|---|---|---|");
        for (what, value, verdict) in targets {
            let _ = writeln!(s, "| {what} | {value} | {verdict} |");
        }
        let noise = [
            self.json
                .get(&format!("single_{devices}"))
                .and_then(|v| v.get("relay"))
                .and_then(|v| v.get("other_processes_cpu_cores"))
                .and_then(serde_json::Value::as_f64),
            self.figure("ceiling", "other_processes_cpu_cores"),
        ];
        if noise.iter().flatten().any(|n| *n > NOISY_CORES) {
            let _ = writeln!(
                s,
                "\nWarning: other processes used more than {NOISY_CORES} cores during the \
                 {devices}-device run or the ceiling; the ratio is unreliable, run again on a quiet machine."
            );
        }
        s
    }

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(self.json.clone())
    }
}
