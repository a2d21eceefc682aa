//! The replay cache and rate limits in the database, shared by every instance:
//! a signature is inserted once (a second insert, from any instance, is a
//! replay), and each budget is a GCRA "theoretical arrival time" updated in one
//! statement. On the quick pool: losing the last moments of these in a crash
//! of the database server only forgets what held requests back.

use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use attune_proto::DeviceId;

use super::{db_error, pool_error, Pg};
use crate::limits::{Budget, Held, Limits};
use crate::store::StoreError;

/// How often an instance deletes expired signatures and full budgets.
const PRUNE_EVERY: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub struct PgLimits {
    pg: Pg,
    devices: Budget,
    pruned: Mutex<Instant>,
}

impl PgLimits {
    pub fn new(pg: Pg, devices: Budget) -> Self {
        Self {
            pg,
            devices,
            pruned: Mutex::new(Instant::now()),
        }
    }

    /// One request from the budget under `key`: allowed while the budget's
    /// arrival time stays within `burst` periods of now.
    async fn take(&self, key: &[u8], budget: Budget) -> Result<(), Held> {
        let now = crate::auth::now_ms() as f64;
        let period = budget.period.as_secs_f64() * 1000.0;
        let tolerance = period * f64::from(budget.burst);
        let client = self.pg.quick.get().await.map_err(pool_error)?;
        let took = client
            .query_opt(
                &client.prepare_cached("INSERT INTO rate_limits AS r (key, tat_ms) VALUES ($1, $2::float8 + $3::float8)
                 ON CONFLICT (key) DO UPDATE SET tat_ms = GREATEST(r.tat_ms, $2::float8) + $3::float8
                   WHERE GREATEST(r.tat_ms, $2::float8) + $3::float8 - $2::float8 <= $4::float8
                 RETURNING tat_ms").await.map_err(|e| db_error(&e))?,
                &[&key, &now, &period, &tolerance],
            )
            .await
            .map_err(|e| db_error(&e))?;
        if took.is_some() {
            return Ok(());
        }
        let tat: f64 = client
            .query_opt(
                &client
                    .prepare_cached("SELECT tat_ms FROM rate_limits WHERE key = $1")
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&key],
            )
            .await
            .map_err(|e| db_error(&e))?
            .map_or(now, |r| r.get(0));
        let wait_ms = (tat + period - now - tolerance).max(0.0);
        Err(Held::Wait((wait_ms / 1000.0).ceil().max(1.0) as u64))
    }

    /// Deletes what no longer holds anything back, every few seconds.
    async fn prune(&self, now_ms: i64) -> Result<(), StoreError> {
        match self.pruned.lock() {
            Ok(mut at) if at.elapsed() > PRUNE_EVERY => *at = Instant::now(),
            _ => return Ok(()),
        }
        let client = self.pg.quick.get().await.map_err(pool_error)?;
        client
            .execute(
                &client
                    .prepare_cached("DELETE FROM replay WHERE expires_ms < $1")
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&now_ms],
            )
            .await
            .map_err(|e| db_error(&e))?;
        client
            .execute(
                &client
                    .prepare_cached("DELETE FROM rate_limits WHERE tat_ms < $1")
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&(now_ms as f64)],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(())
    }
}

fn device_key(device: &DeviceId) -> Vec<u8> {
    let mut key = b"d".to_vec();
    key.extend_from_slice(&device.0);
    key
}

fn addr_key(addr: IpAddr) -> Vec<u8> {
    let mut key = b"l".to_vec();
    match addr {
        IpAddr::V4(a) => key.extend_from_slice(&a.octets()),
        IpAddr::V6(a) => key.extend_from_slice(&a.octets()),
    }
    key
}

#[async_trait]
impl Limits for PgLimits {
    async fn first_use(
        &self,
        signature: &[u8; 64],
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<bool, StoreError> {
        self.prune(now_ms).await?;
        let client = self.pg.quick.get().await.map_err(pool_error)?;
        let n = client
            .execute(
                &client
                    .prepare_cached(
                        "INSERT INTO replay (signature, expires_ms) VALUES ($1, $2)
                 ON CONFLICT (signature) DO NOTHING",
                    )
                    .await
                    .map_err(|e| db_error(&e))?,
                &[&&signature[..], &keep_until_ms],
            )
            .await
            .map_err(|e| db_error(&e))?;
        Ok(n == 1)
    }

    async fn take_token(&self, device: &DeviceId) -> Result<(), Held> {
        self.take(&device_key(device), self.devices).await
    }

    async fn take_lookup(&self, addr: IpAddr) -> Result<(), Held> {
        self.take(&addr_key(addr), Budget::lookups()).await
    }
}
