//! Shared relay state: the store, the verified-roster cache, replay and rate
//! limiting, stream notifications and pairing mailboxes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use attune_proto::{DeviceId, Roster, SignedRosterEvent, SpaceId};
use tokio::sync::{broadcast, watch, Semaphore};

use crate::config::Config;
use crate::error::ApiError;
use crate::mailbox::Mailboxes;
use crate::metrics::Metrics;
use crate::store::Store;

pub type SharedState = Arc<AppState>;

/// Rosters only grow, so a longer one is newer. A request that loaded a roster
/// just before a concurrent append (a revocation, say) must not put the older
/// one back, or the revoked device would keep its access.
fn insert_newer(cache: &mut HashMap<SpaceId, Arc<Roster>>, space: SpaceId, roster: Arc<Roster>) {
    match cache.get(&space) {
        Some(cached) if cached.len() > roster.len() => {}
        _ => {
            cache.insert(space, roster);
        }
    }
}

fn budget(bytes: usize) -> usize {
    bytes.min(Semaphore::MAX_PERMITS)
}

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub mailboxes: Mailboxes,
    rosters: RwLock<HashMap<SpaceId, Arc<Roster>>>,
    /// Bumped whenever a space is erased, so that a roster loaded before the
    /// erasure is not put back into the cache after it.
    erasures: AtomicU64,
    replay: Mutex<ReplayCache>,
    /// Per-device request budget (`--rate`, `--burst`): governor's GCRA, keyed
    /// by device.
    rates: DeviceLimiter,
    rates_pruned: Mutex<Instant>,
    /// Recovery-bundle lookups per client address (no signature to key them by).
    lookups: AddrLimiter,
    streams: Mutex<HashMap<SpaceId, broadcast::Sender<u64>>>,
    pub shutdown: watch::Receiver<bool>,
    /// See [`Config::started_ms`].
    pub started_ms: i64,
    /// Bytes of authenticated request bodies held at once (`--body-budget`).
    pub bodies: Arc<Semaphore>,
    /// Bytes of bodies read before any signature is checked (`--preauth-budget`).
    pub preauth: Arc<Semaphore>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").finish_non_exhaustive()
    }
}

struct ReplayCache {
    seen: HashMap<[u8; 64], i64>,
    last_prune_ms: i64,
}

type DeviceLimiter = governor::RateLimiter<
    DeviceId,
    governor::state::keyed::DefaultKeyedStateStore<DeviceId>,
    governor::clock::DefaultClock,
>;

type AddrLimiter = governor::RateLimiter<
    std::net::IpAddr,
    governor::state::keyed::DefaultKeyedStateStore<std::net::IpAddr>,
    governor::clock::DefaultClock,
>;

/// Recovery lookups an address may make: a restore needs one or two; 10 a
/// minute leaves room for typos and stops nothing but scanning.
fn lookup_limiter() -> AddrLimiter {
    let per_minute = std::num::NonZeroU32::new(10).unwrap_or(std::num::NonZeroU32::MIN);
    governor::RateLimiter::keyed(governor::Quota::per_minute(per_minute))
}

/// `rate` requests a second on average, bursts of `burst`.
fn device_limiter(rate: f64, burst: f64) -> DeviceLimiter {
    let period = Duration::from_secs_f64(1.0 / rate.max(0.001));
    let burst = std::num::NonZeroU32::new(burst.clamp(1.0, u32::MAX as f64) as u32)
        .unwrap_or(std::num::NonZeroU32::MIN);
    let quota = governor::Quota::with_period(period)
        .unwrap_or_else(|| governor::Quota::per_second(std::num::NonZeroU32::MIN))
        .allow_burst(burst);
    governor::RateLimiter::keyed(quota)
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mailboxes = Mailboxes::new(&config);
        let (config_body_budget, config_preauth_budget) =
            (config.body_budget, config.preauth_budget);
        let started_ms = config.started_ms.unwrap_or_else(crate::auth::now_ms);
        let config_rate = (config.rate_per_sec, config.rate_burst);
        Self {
            config,
            store,
            metrics,
            mailboxes,
            rosters: RwLock::new(HashMap::new()),
            erasures: AtomicU64::new(0),
            replay: Mutex::new(ReplayCache {
                seen: HashMap::new(),
                last_prune_ms: 0,
            }),
            rates: device_limiter(config_rate.0, config_rate.1),
            rates_pruned: Mutex::new(Instant::now()),
            lookups: lookup_limiter(),
            streams: Mutex::new(HashMap::new()),
            shutdown,
            started_ms,
            bodies: Arc::new(Semaphore::new(budget(config_body_budget))),
            preauth: Arc::new(Semaphore::new(budget(config_preauth_budget))),
        }
    }

    /// The space's verified roster, from the cache or re-verified from storage.
    pub async fn roster(&self, space: SpaceId) -> Result<Arc<Roster>, ApiError> {
        if let Some(r) = self
            .rosters
            .read()
            .ok()
            .and_then(|m| m.get(&space).cloned())
        {
            return Ok(r);
        }
        let erasures = self.erasures.load(Ordering::SeqCst);
        let stored = self
            .store
            .roster(space)
            .await
            .map_err(|_| ApiError::internal())?
            .ok_or_else(|| ApiError::not_found("no such space on this relay"))?;
        let events = stored
            .iter()
            .map(|b| SignedRosterEvent::decode(b))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| {
                tracing::error!(error = %e, "stored roster does not decode");
                ApiError::internal()
            })?;
        let roster = Roster::verify(space, &events).map_err(|e| {
            tracing::error!(error = %e, "stored roster does not verify");
            ApiError::internal()
        })?;
        let roster = Arc::new(roster);
        if let Ok(mut m) = self.rosters.write() {
            // Checked under the lock that `forget_space` takes to remove it.
            if self.erasures.load(Ordering::SeqCst) == erasures {
                insert_newer(&mut m, space, roster.clone());
            }
        }
        Ok(roster)
    }

    /// Caches a space's roster after a create or an append.
    pub fn set_roster(&self, space: SpaceId, roster: Arc<Roster>) {
        if let Ok(mut m) = self.rosters.write() {
            insert_newer(&mut m, space, roster);
        }
    }

    pub fn forget_space(&self, space: SpaceId) {
        if let Ok(mut m) = self.rosters.write() {
            self.erasures.fetch_add(1, Ordering::SeqCst);
            m.remove(&space);
        }
        if let Ok(mut s) = self.streams.lock() {
            // Dropping the sender ends every stream of the space.
            s.remove(&space);
        }
    }

    /// Records a verified signature; false if it was already seen (a replay).
    pub fn first_use(&self, signature: &[u8; 64], now_ms: i64) -> bool {
        let window_ms = (self.config.max_skew_secs as i64) * 1000;
        let Ok(mut cache) = self.replay.lock() else {
            return false;
        };
        // Prune on a timer only: a size trigger would rescan a large cache of
        // still-valid entries on every request.
        if now_ms - cache.last_prune_ms > 10_000 {
            cache.seen.retain(|_, expiry| *expiry > now_ms);
            cache.last_prune_ms = now_ms;
        }
        // A signature stays remembered for as long as its timestamp is acceptable.
        cache
            .seen
            .insert(*signature, now_ms + 2 * window_ms)
            .is_none()
    }

    /// Takes one request from the device's token bucket; on refusal, the seconds
    /// until one is available.
    pub fn take_token(&self, device: &DeviceId) -> Result<(), u64> {
        self.prune_limiters();
        self.rates.check_key(device).map_err(|not_until| {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// Forgets devices and addresses whose budget is full again, once a minute
    /// (not per request: it walks every key).
    fn prune_limiters(&self) {
        if let Ok(mut at) = self.rates_pruned.lock() {
            if at.elapsed() > Duration::from_secs(60) {
                self.rates.retain_recent();
                self.lookups.retain_recent();
                *at = Instant::now();
            }
        }
    }

    /// Takes one recovery lookup from `addr`'s budget; on refusal, the seconds
    /// until the next is allowed.
    pub fn take_lookup(&self, addr: std::net::IpAddr) -> Result<(), u64> {
        self.prune_limiters();
        self.lookups.check_key(&addr).map_err(|not_until| {
            use governor::clock::Clock;
            let wait = not_until.wait_time_from(governor::clock::DefaultClock::default().now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
    }

    /// Subscribes to "new envelopes up to cursor C" notices for a space.
    pub fn subscribe(&self, space: SpaceId) -> Option<broadcast::Receiver<u64>> {
        let mut s = self.streams.lock().ok()?;
        Some(
            s.entry(space)
                .or_insert_with(|| broadcast::channel(16).0)
                .subscribe(),
        )
    }

    pub fn notify(&self, space: SpaceId, cursor: u64) {
        if let Ok(s) = self.streams.lock() {
            if let Some(tx) = s.get(&space) {
                let _ = tx.send(cursor);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use attune_proto::{labels, DevicePublic, Hash32, MemberId, RosterChange, RosterEvent};
    use ed25519_dalek::{Signer, SigningKey};

    fn device(seed: u8) -> (SigningKey, DevicePublic) {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let public = DevicePublic {
            sign: key.verifying_key().to_bytes(),
            kx: [seed; 32],
        };
        (key, public)
    }

    /// A verified roster of `len` events: create, then join.
    fn roster(space: SpaceId, len: usize) -> Arc<Roster> {
        let (key, a) = device(1);
        let (_, b) = device(2);
        let changes = [
            RosterChange::Create {
                member: MemberId([1; 16]),
                device: a,
            },
            RosterChange::Join {
                member: MemberId([2; 16]),
                device: b,
            },
        ];
        let mut events: Vec<SignedRosterEvent> = Vec::new();
        for (i, change) in changes.into_iter().take(len).enumerate() {
            let event = RosterEvent {
                space,
                seq: i as u64 + 1,
                prev: events.last().map_or(Hash32::ZERO, SignedRosterEvent::hash),
                signer: a.id(),
                legacy_at: None,
                change,
            };
            let mut message = labels::ROSTER_SIG.to_vec();
            message.extend(event.encode());
            events.push(SignedRosterEvent {
                event,
                signature: key.sign(&message).to_bytes(),
            });
        }
        Arc::new(Roster::verify(space, &events).unwrap())
    }

    #[test]
    fn an_older_roster_never_replaces_a_newer_one_in_the_cache() {
        let space = SpaceId([9; 16]);
        let mut cache = HashMap::new();
        insert_newer(&mut cache, space, roster(space, 2));
        insert_newer(&mut cache, space, roster(space, 1));
        assert_eq!(cache[&space].len(), 2, "a late, older load was cached");
        let mut cache = HashMap::new();
        insert_newer(&mut cache, space, roster(space, 1));
        insert_newer(&mut cache, space, roster(space, 2));
        assert_eq!(cache[&space].len(), 2);
    }
}
