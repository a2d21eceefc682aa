//! What holds requests back: the replay cache (a signed request is taken once)
//! and the rate limits (per device, and recovery lookups per address). One
//! relay process keeps them in memory ([`memory`]); instances sharing a
//! PostgreSQL database keep them there (`postgres::limits`), so a replay sent
//! to another instance is still a replay and a device's budget is one budget.

use std::net::IpAddr;
use std::time::Duration;

use async_trait::async_trait;
use attune_proto::DeviceId;

use crate::store::StoreError;

pub mod memory;

/// Why a request was held back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Held {
    #[error("over the rate limit; try again in {0} s")]
    Wait(u64),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A budget of `burst` requests at once, refilled at one per `period`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Budget {
    pub period: Duration,
    pub burst: u32,
}

impl Budget {
    /// `rate` requests a second on average, bursts of `burst`.
    pub fn per_second(rate: f64, burst: f64) -> Self {
        Self {
            period: Duration::from_secs_f64(1.0 / rate.max(0.001)),
            burst: burst.clamp(1.0, f64::from(u32::MAX)) as u32,
        }
    }

    /// Recovery lookups an address may make: a restore needs one or two; 10 a
    /// minute leaves room for typos and stops nothing but scanning.
    pub fn lookups() -> Self {
        Self {
            period: Duration::from_secs(6),
            burst: 10,
        }
    }
}

#[async_trait]
pub trait Limits: Send + Sync + 'static {
    /// Records a verified signature, remembered until `keep_until_ms`; false if
    /// it was seen already (a replay).
    async fn first_use(
        &self,
        signature: &[u8; 64],
        now_ms: i64,
        keep_until_ms: i64,
    ) -> Result<bool, StoreError>;

    /// Takes one request from the device's budget.
    async fn take_token(&self, device: &DeviceId) -> Result<(), Held>;

    /// Takes one recovery lookup from the address's budget.
    async fn take_lookup(&self, addr: IpAddr) -> Result<(), Held>;
}
