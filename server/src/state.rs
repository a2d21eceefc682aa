//! Shared relay state: the store, the verified-roster cache, replay and rate
//! limiting, stream notifications and pairing mailboxes.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use attune_proto::{Roster, SignedRosterEvent, SpaceId};
use tokio::sync::{broadcast, watch, Semaphore};

use crate::config::Config;
use crate::error::ApiError;
use crate::limits::memory::MemoryLimits;
use crate::limits::{Budget, Limits};
use crate::mailbox::memory::Mailboxes;
use crate::mailbox::{MailboxLimits, Pairing};
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
    pub mailboxes: Arc<dyn Pairing>,
    /// The replay cache and rate limits.
    pub limits: Arc<dyn Limits>,
    rosters: RwLock<HashMap<SpaceId, Arc<Roster>>>,
    /// Bumped whenever a space is erased, so that a roster loaded before the
    /// erasure is not put back into the cache after it.
    erasures: AtomicU64,
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

/// Where a relay keeps what correctness needs: its store, the limits that
/// hold requests back, and the pairing mailboxes.
pub struct Engine {
    pub store: Arc<dyn Store>,
    pub limits: Arc<dyn Limits>,
    pub mailboxes: Arc<dyn Pairing>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine").finish_non_exhaustive()
    }
}

impl Engine {
    /// One process: limits and mailboxes in memory.
    pub fn single(store: Arc<dyn Store>, config: &Config) -> Self {
        Self {
            store,
            limits: Arc::new(MemoryLimits::new(Budget::per_second(
                config.rate_per_sec,
                config.rate_burst,
            ))),
            mailboxes: Arc::new(Mailboxes::new(MailboxLimits::from_config(config))),
        }
    }
}

impl AppState {
    /// A single relay process on `store`.
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let engine = Engine::single(store, &config);
        Self::with_engine(config, engine, metrics, shutdown)
    }

    pub fn with_engine(
        config: Config,
        engine: Engine,
        metrics: Arc<Metrics>,
        shutdown: watch::Receiver<bool>,
    ) -> Self {
        let (config_body_budget, config_preauth_budget) =
            (config.body_budget, config.preauth_budget);
        let started_ms = config.started_ms.unwrap_or_else(crate::auth::now_ms);
        Self {
            config,
            store: engine.store,
            metrics,
            mailboxes: engine.mailboxes,
            limits: engine.limits,
            rosters: RwLock::new(HashMap::new()),
            erasures: AtomicU64::new(0),
            streams: Mutex::new(HashMap::new()),
            shutdown,
            started_ms,
            bodies: Arc::new(Semaphore::new(budget(config_body_budget))),
            preauth: Arc::new(Semaphore::new(budget(config_preauth_budget))),
        }
    }

    /// The cached roster of a space, if it is still current: always where this
    /// process is the only writer; where other instances write too, only if the
    /// stored roster has as many events (rosters only grow). A space erased
    /// elsewhere is forgotten here.
    async fn cached_roster(&self, space: SpaceId) -> Result<Option<Arc<Roster>>, ApiError> {
        let cached = self
            .rosters
            .read()
            .ok()
            .and_then(|m| m.get(&space).cloned());
        let Some(cached) = cached else {
            return Ok(None);
        };
        if !self.store.shared() {
            return Ok(Some(cached));
        }
        match self
            .store
            .roster_len(space)
            .await
            .map_err(|_| ApiError::internal())?
        {
            Some(n) if n as u64 == cached.len() => Ok(Some(cached)),
            Some(_) => Ok(None),
            None => {
                self.forget_space(space);
                Err(ApiError::not_found("no such space on this relay"))
            }
        }
    }

    /// The space's verified roster, from the cache or re-verified from storage.
    pub async fn roster(&self, space: SpaceId) -> Result<Arc<Roster>, ApiError> {
        if let Some(r) = self.cached_roster(space).await? {
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
    pub async fn first_use(&self, signature: &[u8; 64], now_ms: i64) -> Result<bool, ApiError> {
        // A signature stays remembered for as long as its timestamp is acceptable.
        let window_ms = (self.config.max_skew_secs as i64) * 1000;
        self.limits
            .first_use(signature, now_ms, now_ms + 2 * window_ms)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, "the replay cache failed");
                ApiError::internal()
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

    /// Wakes every stream: notices from other instances may have been missed.
    pub fn notify_all(&self) {
        if let Ok(s) = self.streams.lock() {
            for tx in s.values() {
                let _ = tx.send(0);
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
