//! Latency samples and their percentiles.

use std::time::Duration;

/// The `p`-th percentile (0..=100) of `sorted` by the nearest-rank method: the
/// smallest sample with at least `p` % of the samples at or below it. `None` when
/// there are no samples.
pub fn percentile(sorted: &[u32], p: f64) -> Option<u32> {
    if sorted.is_empty() {
        return None;
    }
    let p = p.clamp(0.0, 100.0);
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// Request latencies in microseconds.
#[derive(Debug, Default, Clone)]
pub struct Latencies {
    micros: Vec<u32>,
}

impl Latencies {
    pub fn with_capacity(n: usize) -> Self {
        Self {
            micros: Vec::with_capacity(n),
        }
    }

    pub fn record(&mut self, d: Duration) {
        self.micros
            .push(d.as_micros().min(u128::from(u32::MAX)) as u32);
    }

    pub fn extend(&mut self, other: Latencies) {
        self.micros.extend(other.micros);
    }

    pub fn len(&self) -> usize {
        self.micros.len()
    }

    pub fn is_empty(&self) -> bool {
        self.micros.is_empty()
    }

    /// p50, p99 and max, in milliseconds.
    pub fn summary(&mut self) -> LatencySummary {
        self.micros.sort_unstable();
        let ms = |v: Option<u32>| v.map_or(f64::NAN, |us| f64::from(us) / 1000.0);
        LatencySummary {
            p50_ms: ms(percentile(&self.micros, 50.0)),
            p99_ms: ms(percentile(&self.micros, 99.0)),
            max_ms: ms(self.micros.last().copied()),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct LatencySummary {
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank() {
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50.0), Some(50));
        assert_eq!(percentile(&v, 99.0), Some(99));
        assert_eq!(percentile(&v, 100.0), Some(100));
        assert_eq!(percentile(&v, 0.0), Some(1));
        assert_eq!(percentile(&[7], 99.0), Some(7));
        assert_eq!(percentile(&[], 50.0), None);
        // 10 samples: p99 is the largest, p50 the 5th.
        let w: Vec<u32> = (10..20).collect();
        assert_eq!(percentile(&w, 99.0), Some(19));
        assert_eq!(percentile(&w, 50.0), Some(14));
    }

    #[test]
    fn summary_in_ms() {
        let mut l = Latencies::default();
        for us in [3000, 1000, 2000] {
            l.record(Duration::from_micros(us));
        }
        let s = l.summary();
        assert_eq!(s.p50_ms, 2.0);
        assert_eq!(s.p99_ms, 3.0);
        assert_eq!(s.max_ms, 3.0);
    }
}
