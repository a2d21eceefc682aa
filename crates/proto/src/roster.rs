//! The roster: an append-only, signed log of who belongs to a space.
//!
//! ```text
//! event        = 0x02 | space 16 | seq u64 | prev 32 | signer 32 | tag u8 | change
//! change       = 1 Create | 2 Join | 3 Link : member 16 | sign_pk 32 | kx_pk 32
//!              | 4 Revoke                   : device 32 | last_seq u64
//!              | 5 Recovery                 : member 16 | sign_pk 32 | kx_pk 32
//! signed event = event | signature 64      (Ed25519 by `signer` over ROSTER_SIG || event)
//! ```
//! Verification is public-key only, so it lives here: the relay enforces the
//! roster for access control, and every client re-verifies it from the first event.
//! Its clear fields are only what that needs. Version 1 events (0x01) also carried
//! the signer's clock (`at i64` after `signer`); they still decode and verify, so
//! a roster may begin in version 1 and continue in version 2.

use std::collections::BTreeMap;

use thiserror::Error;

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{hash_labelled, DeviceId, DevicePublic, Hash32, MemberId, SpaceId};
use crate::labels;
use crate::sig::{SignatureError, Verifier};

/// The roster event format new events are written in.
pub const ROSTER_VERSION: u8 = 2;

/// What one roster event changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RosterChange {
    /// The space is created by the first device of its first member.
    Create {
        member: MemberId,
        device: DevicePublic,
    },
    /// The second member joins through pairing; signed by a device of the first.
    Join {
        member: MemberId,
        device: DevicePublic,
    },
    /// A member adds another of their own devices; signed by one of that member's devices.
    Link {
        member: MemberId,
        device: DevicePublic,
    },
    /// A device is removed. Its envelopes up to `last_seq` stay valid; later ones are not.
    Revoke { device: DeviceId, last_seq: u64 },
    /// A member authorises a recovery key: a device whose secret keys live only in
    /// a recovery bundle opened by the member's recovery code. Same rules as `Link`;
    /// flagged so every client can say it is a recovery key, not a device.
    Recovery {
        member: MemberId,
        device: DevicePublic,
    },
}

/// An unsigned roster event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterEvent {
    pub space: SpaceId,
    /// 1 for the creation event, then +1 per event.
    pub seq: u64,
    /// Hash of the previous signed event; [`Hash32::ZERO`] for the first.
    pub prev: Hash32,
    pub signer: DeviceId,
    /// Only in version 1 events: when the signer made it, in Unix milliseconds
    /// (informational). `None` for every event written now (version 2), which
    /// leaves the signer's clock out of what the relay stores.
    pub legacy_at: Option<i64>,
    pub change: RosterChange,
}

impl RosterEvent {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }

    fn write(&self, w: &mut Writer) {
        w.u8(if self.legacy_at.is_some() {
            1
        } else {
            ROSTER_VERSION
        })
        .fixed(&self.space.0)
        .u64(self.seq)
        .fixed(&self.prev.0)
        .fixed(&self.signer.0);
        if let Some(at) = self.legacy_at {
            w.i64(at);
        }
        match &self.change {
            RosterChange::Create { member, device } => {
                w.u8(1).fixed(&member.0);
                device.write(w);
            }
            RosterChange::Join { member, device } => {
                w.u8(2).fixed(&member.0);
                device.write(w);
            }
            RosterChange::Link { member, device } => {
                w.u8(3).fixed(&member.0);
                device.write(w);
            }
            RosterChange::Revoke { device, last_seq } => {
                w.u8(4).fixed(&device.0).u64(*last_seq);
            }
            RosterChange::Recovery { member, device } => {
                w.u8(5).fixed(&member.0);
                device.write(w);
            }
        }
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("roster event")?;
        if version != 1 && version != ROSTER_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "roster event",
                found: version,
                supported: ROSTER_VERSION,
            });
        }
        let space = SpaceId(r.array("space id")?);
        let seq = r.u64("roster sequence number")?;
        let prev = Hash32(r.array("previous roster hash")?);
        let signer = DeviceId(r.array("signer device id")?);
        let legacy_at = if version == 1 {
            Some(r.i64("roster timestamp")?)
        } else {
            None
        };
        let change = match r.u8("roster change")? {
            1 => RosterChange::Create {
                member: MemberId(r.array("member id")?),
                device: DevicePublic::read(r)?,
            },
            2 => RosterChange::Join {
                member: MemberId(r.array("member id")?),
                device: DevicePublic::read(r)?,
            },
            3 => RosterChange::Link {
                member: MemberId(r.array("member id")?),
                device: DevicePublic::read(r)?,
            },
            4 => RosterChange::Revoke {
                device: DeviceId(r.array("revoked device id")?),
                last_seq: r.u64("last sequence number")?,
            },
            5 => RosterChange::Recovery {
                member: MemberId(r.array("member id")?),
                device: DevicePublic::read(r)?,
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "roster change",
                    tag,
                })
            }
        };
        if seq == 0 || (seq == 1) != (prev == Hash32::ZERO) {
            return Err(DecodeError::NonCanonical {
                what: "roster event",
                why: "sequence starts at 1 and only the first event has an all-zero previous hash",
            });
        }
        Ok(Self {
            space,
            seq,
            prev,
            signer,
            legacy_at,
            change,
        })
    }
}

/// A roster event with its signer's signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedRosterEvent {
    pub event: RosterEvent,
    pub signature: [u8; 64],
}

impl SignedRosterEvent {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.event.write(&mut w);
        w.fixed(&self.signature);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let event = RosterEvent::read(&mut r)?;
        let signature = r.array("roster signature")?;
        r.finish("roster event")?;
        Ok(Self { event, signature })
    }

    /// `SHA-256(ROSTER_HASH || signed event)`: the next event's `prev`.
    pub fn hash(&self) -> Hash32 {
        hash_labelled(labels::ROSTER_HASH, &[&self.encode()])
    }

    pub fn verify_signature(&self, signer_key: &[u8; 32]) -> Result<(), SignatureError> {
        self.verify_with(&Verifier::new(signer_key)?)
    }

    /// As [`Self::verify_signature`], with the signer's key already decoded.
    pub fn verify_with(&self, signer: &Verifier) -> Result<(), SignatureError> {
        signer.verify(labels::ROSTER_SIG, &self.event.encode(), &self.signature)
    }
}

/// Why a roster (or one more event for it) is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RosterError {
    #[error("the roster is empty")]
    Empty,
    #[error("the first roster event must create the space, signed by the creating device")]
    BadCreate,
    #[error("roster event {seq} belongs to another space")]
    WrongSpace { seq: u64 },
    #[error("roster event has sequence number {found}, expected {expected}")]
    BadSequence { expected: u64, found: u64 },
    #[error("roster event {seq} does not chain to the previous event")]
    BrokenChain { seq: u64 },
    #[error("roster event {seq} is signed by a device that is not an active member device")]
    UnauthorizedSigner { seq: u64 },
    #[error("roster event {seq} has an invalid signature: {source}")]
    BadSignature { seq: u64, source: SignatureError },
    #[error("roster event {seq} adds a device key that is not a valid Ed25519 key")]
    BadDeviceKey { seq: u64 },
    #[error("roster event {seq} adds a device that is already in the roster")]
    DuplicateDevice { seq: u64 },
    #[error("roster event {seq} would add a member, but a space has exactly two members")]
    SpaceFull { seq: u64 },
    #[error("roster event {seq} names a member that is not in the space")]
    UnknownMember { seq: u64 },
    #[error("roster event {seq} changes a member other than the signer's own")]
    NotOwnMember { seq: u64 },
    #[error("roster event {seq} revokes a device that is unknown or already revoked")]
    NotRevocable { seq: u64 },
}

/// One device as the verified roster knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterDevice {
    pub public: DevicePublic,
    /// `public.sign`, decoded once when the roster was verified.
    pub verifier: Verifier,
    pub member: MemberId,
    /// `Some(n)` once revoked: its envelopes with sequence number `<= n` stay valid.
    pub revoked_after: Option<u64>,
    /// A recovery key (`Recovery` event), not a device a person uses.
    pub recovery: bool,
    /// The roster event that added it (1 for the creating device).
    pub added_in: u64,
}

/// One member: the identity key is the signing key of the member's first device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RosterMember {
    pub id: MemberId,
    pub identity_key: [u8; 32],
}

/// A roster that has been verified from its creation event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Roster {
    space: SpaceId,
    members: Vec<RosterMember>,
    devices: BTreeMap<DeviceId, RosterDevice>,
    head: Hash32,
    len: u64,
}

impl Roster {
    /// Verifies a whole roster, from its creation event on.
    pub fn verify(space: SpaceId, events: &[SignedRosterEvent]) -> Result<Self, RosterError> {
        let (first, rest) = events.split_first().ok_or(RosterError::Empty)?;
        let mut roster = Self::create(space, first)?;
        for event in rest {
            roster.apply(event)?;
        }
        Ok(roster)
    }

    fn create(space: SpaceId, signed: &SignedRosterEvent) -> Result<Self, RosterError> {
        let ev = &signed.event;
        let RosterChange::Create { member, device } = ev.change else {
            return Err(RosterError::BadCreate);
        };
        if ev.space != space {
            return Err(RosterError::WrongSpace { seq: ev.seq });
        }
        if ev.seq != 1 || ev.signer != device.id() {
            return Err(RosterError::BadCreate);
        }
        let verifier = Verifier::new(&device.sign)
            .map_err(|source| RosterError::BadSignature { seq: 1, source })?;
        signed
            .verify_with(&verifier)
            .map_err(|source| RosterError::BadSignature { seq: 1, source })?;
        let mut devices = BTreeMap::new();
        devices.insert(
            device.id(),
            RosterDevice {
                public: device,
                verifier,
                member,
                revoked_after: None,
                recovery: false,
                added_in: 1,
            },
        );
        Ok(Self {
            space,
            members: vec![RosterMember {
                id: member,
                identity_key: device.sign,
            }],
            devices,
            head: signed.hash(),
            len: 1,
        })
    }

    /// Checks one more event against the roster so far and applies it.
    pub fn apply(&mut self, signed: &SignedRosterEvent) -> Result<(), RosterError> {
        let ev = &signed.event;
        let seq = ev.seq;
        if ev.space != self.space {
            return Err(RosterError::WrongSpace { seq });
        }
        if seq != self.len + 1 {
            return Err(RosterError::BadSequence {
                expected: self.len + 1,
                found: seq,
            });
        }
        if ev.prev != self.head {
            return Err(RosterError::BrokenChain { seq });
        }
        let signer = match self.devices.get(&ev.signer) {
            Some(d) if d.revoked_after.is_none() => *d,
            _ => return Err(RosterError::UnauthorizedSigner { seq }),
        };
        signed
            .verify_with(&signer.verifier)
            .map_err(|source| RosterError::BadSignature { seq, source })?;

        match ev.change {
            RosterChange::Create { .. } => return Err(RosterError::BadCreate),
            RosterChange::Join { member, device } => {
                if self.members.len() != 1 || self.members[0].id == member {
                    return Err(RosterError::SpaceFull { seq });
                }
                self.add_device(seq, member, device, false)?;
                self.members.push(RosterMember {
                    id: member,
                    identity_key: device.sign,
                });
            }
            RosterChange::Link { member, device } | RosterChange::Recovery { member, device } => {
                if !self.members.iter().any(|m| m.id == member) {
                    return Err(RosterError::UnknownMember { seq });
                }
                if signer.member != member {
                    return Err(RosterError::NotOwnMember { seq });
                }
                let recovery = matches!(ev.change, RosterChange::Recovery { .. });
                self.add_device(seq, member, device, recovery)?;
            }
            RosterChange::Revoke { device, last_seq } => {
                let target = self
                    .devices
                    .get_mut(&device)
                    .filter(|d| d.revoked_after.is_none())
                    .ok_or(RosterError::NotRevocable { seq })?;
                if target.member != signer.member {
                    return Err(RosterError::NotOwnMember { seq });
                }
                target.revoked_after = Some(last_seq);
            }
        }
        self.head = signed.hash();
        self.len = seq;
        Ok(())
    }

    fn add_device(
        &mut self,
        seq: u64,
        member: MemberId,
        device: DevicePublic,
        recovery: bool,
    ) -> Result<(), RosterError> {
        let verifier =
            Verifier::new(&device.sign).map_err(|_| RosterError::BadDeviceKey { seq })?;
        let id = device.id();
        if self.devices.contains_key(&id) {
            return Err(RosterError::DuplicateDevice { seq });
        }
        self.devices.insert(
            id,
            RosterDevice {
                public: device,
                verifier,
                member,
                revoked_after: None,
                recovery,
                added_in: seq,
            },
        );
        Ok(())
    }

    pub fn space(&self) -> SpaceId {
        self.space
    }

    pub fn members(&self) -> &[RosterMember] {
        &self.members
    }

    pub fn device(&self, id: &DeviceId) -> Option<&RosterDevice> {
        self.devices.get(id)
    }

    pub fn devices(&self) -> impl Iterator<Item = (&DeviceId, &RosterDevice)> {
        self.devices.iter()
    }

    /// True while the device is in the roster and not revoked.
    pub fn is_active(&self, id: &DeviceId) -> bool {
        matches!(self.devices.get(id), Some(d) if d.revoked_after.is_none())
    }

    /// True if the device may author its envelope number `seq`: active, or revoked
    /// after having written it.
    pub fn may_author(&self, id: &DeviceId, seq: u64) -> bool {
        match self.devices.get(id) {
            Some(d) => d.revoked_after.is_none_or(|last| seq <= last),
            None => false,
        }
    }

    /// Hash of the last event: what the next event must name as `prev`.
    pub fn head(&self) -> Hash32 {
        self.head
    }

    /// Number of events verified so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// A verified roster always holds its creation event.
    pub fn is_empty(&self) -> bool {
        false
    }
}
