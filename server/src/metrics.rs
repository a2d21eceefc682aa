//! What `/metrics` exposes, in the OpenMetrics text format (prometheus-client):
//! requests by route template and status, their latency as a histogram,
//! envelopes, commits, streams, mailboxes and connections. Never content or
//! identities: a route is its template (`/v1/spaces/{space}/…`), not its path.

use std::sync::Mutex;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: String,
    status: u16,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: String,
}

fn latency_histogram() -> Histogram {
    // 0.5 ms to about 16 s, doubling.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram, fn() -> Histogram>,
    envelopes_appended: Counter,
    envelope_bytes_appended: Counter,
    duplicates: Counter,
    commits: Counter,
    committed_jobs: Counter,
    connections_refused: Counter,
    streams_open: Gauge,
    mailboxes_open: Gauge,
    connections_open: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<RouteLabel, Histogram, fn() -> Histogram>::new_with_constructor(
            latency_histogram,
        );
        let m = Metrics {
            requests: requests.clone(),
            latency: latency.clone(),
            envelopes_appended: Counter::default(),
            envelope_bytes_appended: Counter::default(),
            duplicates: Counter::default(),
            commits: Counter::default(),
            committed_jobs: Counter::default(),
            connections_refused: Counter::default(),
            streams_open: Gauge::default(),
            mailboxes_open: Gauge::default(),
            connections_open: Gauge::default(),
            registry: Mutex::new(Registry::default()),
        };
        registry.register(
            "attune_requests",
            "HTTP requests by route template and status",
            requests,
        );
        registry.register(
            "attune_request_duration_seconds",
            "Time to answer a request, by route template",
            latency,
        );
        registry.register(
            "attune_envelopes_appended",
            "Envelopes stored",
            m.envelopes_appended.clone(),
        );
        registry.register(
            "attune_envelope_bytes_appended",
            "Bytes of envelopes stored",
            m.envelope_bytes_appended.clone(),
        );
        registry.register(
            "attune_duplicate_envelopes",
            "Uploads of an entry id already stored",
            m.duplicates.clone(),
        );
        registry.register(
            "attune_commits",
            "Write transactions committed",
            m.commits.clone(),
        );
        registry.register(
            "attune_committed_jobs",
            "Write jobs committed (jobs / commits = group size)",
            m.committed_jobs.clone(),
        );
        registry.register(
            "attune_connections_refused",
            "Connections refused for being over a connection cap",
            m.connections_refused.clone(),
        );
        registry.register(
            "attune_streams_open",
            "WebSocket streams open",
            m.streams_open.clone(),
        );
        registry.register(
            "attune_mailboxes_open",
            "Pairing mailboxes open",
            m.mailboxes_open.clone(),
        );
        registry.register(
            "attune_connections_open",
            "Connections open (admitted under the caps)",
            m.connections_open.clone(),
        );
        if let Ok(mut r) = m.registry.lock() {
            *r = registry;
        }
        m
    }
}

impl Metrics {
    /// One answered request: counted by route and status, timed by route.
    pub fn record_request(&self, route: &str, status: u16, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                route: route.to_string(),
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel {
                route: route.to_string(),
            })
            .observe(seconds);
    }

    pub fn record_commit(&self, jobs: usize) {
        self.commits.inc();
        self.committed_jobs.inc_by(jobs as u64);
    }

    pub fn record_append(&self, new: u64, bytes: u64, duplicates: u64) {
        self.envelopes_appended.inc_by(new);
        self.envelope_bytes_appended.inc_by(bytes);
        self.duplicates.inc_by(duplicates);
    }

    pub fn stream_opened(&self) {
        self.streams_open.inc();
    }

    pub fn stream_closed(&self) {
        self.streams_open.dec();
    }

    pub fn set_connections(&self, n: usize) {
        self.connections_open.set(n as i64);
    }

    pub fn connection_refused(&self) {
        self.connections_refused.inc();
    }

    pub fn set_mailboxes(&self, n: usize) {
        self.mailboxes_open.set(n as i64);
    }

    /// The OpenMetrics text of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Ok(r) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &r);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Metrics;

    #[test]
    fn requests_are_counted_and_timed_by_route_template() {
        let m = Metrics::default();
        m.record_request("/v1/spaces/{space}/envelopes", 200, 0.003);
        m.record_request("/v1/spaces/{space}/envelopes", 200, 0.2);
        m.record_commit(3);
        let text = m.render();
        assert!(
            text.contains(
                "attune_requests_total{route=\"/v1/spaces/{space}/envelopes\",status=\"200\"} 2"
            ),
            "{text}"
        );
        assert!(text.contains(
            "attune_request_duration_seconds_count{route=\"/v1/spaces/{space}/envelopes\"} 2"
        ));
        assert!(text.contains("attune_committed_jobs_total 3"), "{text}");
        assert!(text.contains("# TYPE attune_commits counter"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
