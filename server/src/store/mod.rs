//! Storage behind one trait, so another engine (PostgreSQL, say) can be added
//! without touching the handlers. The relay stores only opaque bytes plus the
//! header fields it must check: author, sequence number, chain hash, entry id.

use async_trait::async_trait;
use attune_proto::{DeviceId, EntryId, Hash32, MemberId, SpaceId};
use thiserror::Error;

pub mod sqlite;

/// One envelope to append, with the header fields the store checks.
#[derive(Debug, Clone)]
pub struct NewEnvelope {
    pub author: DeviceId,
    pub seq: u64,
    pub prev: Hash32,
    pub hash: Hash32,
    pub entry: EntryId,
    pub bytes: Vec<u8>,
    /// The hold slot uploaded with this envelope (every protocol 2 envelope
    /// has one; only a sealed answer's is ever released).
    pub held: Option<NewHeld>,
}

/// A hold slot: kept back until another member uploads one with the same
/// opaque tag, then released to both (PROTOCOL.md §9). The relay cannot tell a
/// sealed answer's slot from random bytes.
#[derive(Debug, Clone)]
pub struct NewHeld {
    /// The opaque tag both members derive for one exchange (random otherwise).
    pub tag: [u8; 32],
    /// The member whose device uploaded it.
    pub member: MemberId,
    /// What a pull serves once it is released.
    pub bytes: Vec<u8>,
}

/// What a pull serves at a cursor: an envelope, or a released held reveal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pulled {
    pub cursor: u64,
    pub bytes: Vec<u8>,
    pub reveal: bool,
}

/// Roster events to append, with what the store must check in the same
/// transaction.
#[derive(Debug, Clone)]
pub struct RosterAppend {
    /// The sequence number of the first event.
    pub first_seq: u64,
    pub events: Vec<Vec<u8>>,
    /// `(device, last_seq)` of each revocation among the events.
    pub revokes: Vec<(DeviceId, u64)>,
    /// The space's quota, which roster events count toward.
    pub quota: u64,
}

/// A member's recovery bundle, for the recovery key `device` in the roster.
#[derive(Debug, Clone)]
pub struct RecoveryBundle {
    pub device: DeviceId,
    pub lookup: Hash32,
    pub bundle: Vec<u8>,
}

/// A stored recovery bundle, as a restore finds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundRecovery {
    pub space: SpaceId,
    pub device: DeviceId,
    pub bundle: Vec<u8>,
}

/// Where an appended envelope landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placed {
    pub cursor: u64,
    pub duplicate: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StoreError {
    #[error("no such space")]
    NoSpace,
    #[error("the space already exists")]
    SpaceExists,
    #[error("envelope {index}: expected sequence number {expected} from this author, got {found}")]
    Sequence {
        index: usize,
        expected: u64,
        found: u64,
    },
    #[error("envelope {index} does not chain to the author's previous envelope")]
    Chain { index: usize },
    #[error("envelope {index} reuses an entry id with different content")]
    EntryReused { index: usize },
    #[error("the space's quota of {quota} bytes would be exceeded")]
    Quota { quota: u64 },
    #[error("a revocation ends device {device}'s chain at {last_seq}, but envelope {head} of it is already stored", device = device.to_hex())]
    RevokeBelowHead {
        device: DeviceId,
        head: u64,
        last_seq: u64,
    },
    #[error("envelope {index} comes from a device revoked before it")]
    Revoked { index: usize },
    #[error("roster event {seq} conflicts with one already stored")]
    RosterConflict { seq: u64 },
    #[error("another recovery key already uses this lookup id")]
    RecoveryExists,
    #[error("storage failure: {0}")]
    Internal(String),
}

#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Creates a space with its first roster event.
    async fn create_space(&self, space: SpaceId, create_event: Vec<u8>) -> Result<(), StoreError>;

    /// Appends roster events numbered `first_seq`, `first_seq + 1`, ... Refuses a
    /// revocation that would end a device's chain before an envelope already
    /// stored, and from then on refuses that device's envelopes past its end.
    async fn append_roster(&self, space: SpaceId, append: RosterAppend) -> Result<(), StoreError>;

    /// The roster events of a space, in order; `None` if there is no such space.
    async fn roster(&self, space: SpaceId) -> Result<Option<Vec<Vec<u8>>>, StoreError>;

    /// How many roster events a space has; `None` if there is no such space.
    /// Asked on every request only where other instances may change a roster
    /// ([`Store::shared`]), to tell whether the cached one is still current.
    async fn roster_len(&self, space: SpaceId) -> Result<Option<usize>, StoreError> {
        Ok(self.roster(space).await?.map(|r| r.len()))
    }

    /// Whether other relay instances write to the same storage: then nothing
    /// kept in this process (a cached roster) may be trusted without a look.
    fn shared(&self) -> bool {
        false
    }

    /// Appends a batch atomically: every envelope lands (duplicates by entry id
    /// return the original cursor) or none does, with its held reveal; held
    /// reveals of an exchange both members have answered are released (given
    /// the next cursors) in the same transaction. Acknowledged only after commit.
    async fn append_envelopes(
        &self,
        space: SpaceId,
        envelopes: Vec<NewEnvelope>,
        quota: u64,
    ) -> Result<Vec<Placed>, StoreError>;

    /// Up to `limit` envelopes and released reveals with a cursor after
    /// `after`, in cursor order.
    async fn pull(
        &self,
        space: SpaceId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<Pulled>, StoreError>;

    /// Erases a space and everything in it. False if there was no such space.
    async fn delete_space(&self, space: SpaceId) -> Result<bool, StoreError>;

    /// Files (or replaces) the recovery bundle of a recovery key. Refused once
    /// that key is revoked.
    async fn put_recovery(&self, space: SpaceId, bundle: RecoveryBundle) -> Result<(), StoreError>;

    /// The bundle filed under `lookup`, unless its recovery key was revoked.
    async fn recovery(&self, lookup: Hash32) -> Result<Option<FoundRecovery>, StoreError>;
}
