//! The limits of a single relay process: a map of signatures, and governor's
//! keyed GCRA limiters.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use attune_proto::DeviceId;

use super::{Budget, Held, Limits};
use crate::store::StoreError;

type Keyed<K> = governor::RateLimiter<
    K,
    governor::state::keyed::DefaultKeyedStateStore<K>,
    governor::clock::DefaultClock,
>;

fn limiter<K: std::hash::Hash + Eq + Clone>(budget: Budget) -> Keyed<K> {
    let burst = std::num::NonZeroU32::new(budget.burst).unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::with_period(budget.period)
        .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
        .allow_burst(burst);
    governor::RateLimiter::keyed(quota)
}

fn check<K: std::hash::Hash + Eq + Clone>(limiter: &Keyed<K>, key: &K) -> Result<(), Held> {
    limiter.check_key(key).map_err(|not_until| {
        use governor::clock::Clock;
        let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
        Held::Wait(wait.as_secs_f64().ceil().max(1.0) as u64)
    })
}

#[derive(Debug, Default)]
struct ReplayCache {
    seen: HashMap<[u8; 64], i64>,
    last_prune_ms: i64,
}

pub struct MemoryLimits {
    replay: Mutex<ReplayCache>,
    devices: Keyed<DeviceId>,
    lookups: Keyed<IpAddr>,
    pruned: Mutex<Instant>,
}

impl std::fmt::Debug for MemoryLimits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryLimits").finish_non_exhaustive()
    }
}

impl MemoryLimits {
    pub fn new(devices: Budget) -> Self {
        Self {
            replay: Mutex::new(ReplayCache::default()),
            devices: limiter(devices),
            lookups: limiter(Budget::lookups()),
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// Forgets devices and addresses whose budget is full again, once a minute
    /// (not per request: it walks every key).
    fn prune(&self) {
        if let Ok(mut at) = self.pruned.lock() {
            if at.elapsed() > Duration::from_secs(60) {
                self.devices.retain_recent();
                self.lookups.retain_recent();
                *at = Instant::now();
            }
        }
    }
}

#[async_trait]
impl Limits for MemoryLimits {
    async fn first_use(
        &self,
        signature: &[u8; 64],
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<bool, StoreError> {
        let mut cache = self
            .replay
            .lock()
            .map_err(|_| StoreError::Internal("replay cache poisoned".into()))?;
        // Prune on a timer only: a size trigger would rescan a large cache of
        // still-valid entries on every request.
        if now_ms - cache.last_prune_ms > 10_000 {
            cache.seen.retain(|_, expiry| *expiry > now_ms);
            cache.last_prune_ms = now_ms;
        }
        Ok(cache.seen.insert(*signature, keep_until_ms).is_none())
    }

    async fn take_token(&self, device: &DeviceId) -> Result<(), Held> {
        self.prune();
        check(&self.devices, device)
    }

    async fn take_lookup(&self, addr: IpAddr) -> Result<(), Held> {
        self.prune();
        check(&self.lookups, &addr)
    }
}
