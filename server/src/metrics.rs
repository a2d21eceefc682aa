//! Counters exposed at `/metrics` in the Prometheus text format. They count
//! requests, envelopes and commits; they never carry content or identities.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;

#[derive(Debug, Default)]
pub struct Metrics {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    envelopes_appended: AtomicU64,
    envelope_bytes_appended: AtomicU64,
    duplicates: AtomicU64,
    commits: AtomicU64,
    committed_jobs: AtomicU64,
    streams_open: AtomicI64,
    mailboxes_open: AtomicI64,
    connections_open: AtomicI64,
    connections_refused: AtomicU64,
}

impl Metrics {
    pub fn record_request(&self, route: &str, status: u16) {
        if let Ok(mut m) = self.requests.lock() {
            *m.entry((route.to_string(), status)).or_insert(0) += 1;
        }
    }

    pub fn record_commit(&self, jobs: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.committed_jobs
            .fetch_add(jobs as u64, Ordering::Relaxed);
    }

    pub fn record_append(&self, new: u64, bytes: u64, duplicates: u64) {
        self.envelopes_appended.fetch_add(new, Ordering::Relaxed);
        self.envelope_bytes_appended
            .fetch_add(bytes, Ordering::Relaxed);
        self.duplicates.fetch_add(duplicates, Ordering::Relaxed);
    }

    pub fn stream_opened(&self) {
        self.streams_open.fetch_add(1, Ordering::Relaxed);
    }

    pub fn stream_closed(&self) {
        self.streams_open.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn set_connections(&self, n: usize) {
        self.connections_open.store(n as i64, Ordering::Relaxed);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.fetch_add(1, Ordering::Relaxed);
    }

    pub fn set_mailboxes(&self, n: usize) {
        self.mailboxes_open.store(n as i64, Ordering::Relaxed);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# HELP attune_requests_total HTTP requests by route template and status."
        );
        let _ = writeln!(out, "# TYPE attune_requests_total counter");
        if let Ok(m) = self.requests.lock() {
            for ((route, status), n) in m.iter() {
                let _ = writeln!(
                    out,
                    "attune_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
                );
            }
        }
        let counters = [
            (
                "attune_envelopes_appended_total",
                "Envelopes stored.",
                self.envelopes_appended.load(Ordering::Relaxed),
            ),
            (
                "attune_envelope_bytes_appended_total",
                "Bytes of envelopes stored.",
                self.envelope_bytes_appended.load(Ordering::Relaxed),
            ),
            (
                "attune_duplicate_envelopes_total",
                "Uploads of an entry id already stored.",
                self.duplicates.load(Ordering::Relaxed),
            ),
            (
                "attune_commits_total",
                "Write transactions committed.",
                self.commits.load(Ordering::Relaxed),
            ),
            (
                "attune_committed_jobs_total",
                "Write jobs committed (jobs / commits = group size).",
                self.committed_jobs.load(Ordering::Relaxed),
            ),
            (
                "attune_connections_refused_total",
                "Connections refused for being over a connection cap.",
                self.connections_refused.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in counters {
            let _ = writeln!(
                out,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
            );
        }
        let gauges = [
            (
                "attune_streams_open",
                "WebSocket streams open.",
                self.streams_open.load(Ordering::Relaxed),
            ),
            (
                "attune_mailboxes_open",
                "Pairing mailboxes open.",
                self.mailboxes_open.load(Ordering::Relaxed),
            ),
            (
                "attune_connections_open",
                "Connections open (admitted under the caps).",
                self.connections_open.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, v) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {v}");
        }
        out
    }
}
