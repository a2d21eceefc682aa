//! Shared relay state: the store, the verified-roster cache, replay and rate
//! limiting, stream notifications and pairing mailboxes.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;

use attune_proto::{DeviceId, Roster, SignedRosterEvent, SpaceId};
use tokio::sync::{broadcast, watch};

use crate::config::Config;
use crate::error::ApiError;
use crate::mailbox::Mailboxes;
use crate::metrics::Metrics;
use crate::store::Store;

pub type SharedState = Arc<AppState>;

pub struct AppState {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub metrics: Arc<Metrics>,
    pub mailboxes: Mailboxes,
    rosters: RwLock<HashMap<SpaceId, Arc<Roster>>>,
    replay: Mutex<ReplayCache>,
    rates: Mutex<HashMap<DeviceId, Bucket>>,
    streams: Mutex<HashMap<SpaceId, broadcast::Sender<u64>>>,
    pub shutdown: watch::Receiver<bool>,
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

#[derive(Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl AppState {
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let mailboxes = Mailboxes::new(&config);
        Self {
            config,
            store,
            metrics,
            mailboxes,
            rosters: RwLock::new(HashMap::new()),
            replay: Mutex::new(ReplayCache {
                seen: HashMap::new(),
                last_prune_ms: 0,
            }),
            rates: Mutex::new(HashMap::new()),
            streams: Mutex::new(HashMap::new()),
            shutdown,
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
        self.set_roster(space, roster.clone());
        Ok(roster)
    }

    pub fn set_roster(&self, space: SpaceId, roster: Arc<Roster>) {
        if let Ok(mut m) = self.rosters.write() {
            m.insert(space, roster);
        }
    }

    pub fn forget_space(&self, space: SpaceId) {
        if let Ok(mut m) = self.rosters.write() {
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
        let rate = self.config.rate_per_sec.max(0.001);
        let burst = self.config.rate_burst.max(1.0);
        let now = Instant::now();
        let Ok(mut rates) = self.rates.lock() else {
            return Ok(());
        };
        if rates.len() > 100_000 {
            rates.retain(|_, b| now.duration_since(b.at).as_secs_f64() * rate < burst);
        }
        let b = rates.entry(*device).or_insert(Bucket {
            tokens: burst,
            at: now,
        });
        b.tokens = (b.tokens + now.duration_since(b.at).as_secs_f64() * rate).min(burst);
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - b.tokens) / rate).ceil().max(1.0) as u64)
        }
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
