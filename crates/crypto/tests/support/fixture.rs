//! A paired couple with real keys, for the integration tests.
#![allow(dead_code)]

use attune_crypto::{seal_envelope, DeviceIdentity, Keyring, SymmetricKey};
use attune_proto::{
    DeviceId, EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, Roster, RosterChange,
    RosterEvent, SignedRosterEvent, SpaceId,
};

pub fn random16() -> [u8; 16] {
    attune_crypto::secret::random_array()
}

/// Two members, one device each, a verified roster and epoch key 0.
pub struct Couple {
    pub space: SpaceId,
    pub a: DeviceIdentity,
    pub b: DeviceIdentity,
    pub member_a: MemberId,
    pub member_b: MemberId,
    pub events: Vec<SignedRosterEvent>,
    pub roster: Roster,
    pub keys: Keyring,
}

impl Couple {
    pub fn new() -> Self {
        let space = SpaceId(random16());
        let a = DeviceIdentity::generate();
        let b = DeviceIdentity::generate();
        let member_a = MemberId(random16());
        let member_b = MemberId(random16());
        let create = a.sign_roster_event(RosterEvent {
            space,
            seq: 1,
            prev: Hash32::ZERO,
            signer: a.id(),
            legacy_at: None,
            change: RosterChange::Create {
                member: member_a,
                device: a.public(),
            },
        });
        let join = a.sign_roster_event(RosterEvent {
            space,
            seq: 2,
            prev: create.hash(),
            signer: a.id(),
            legacy_at: None,
            change: RosterChange::Join {
                member: member_b,
                device: b.public(),
            },
        });
        let events = vec![create, join];
        let roster = Roster::verify(space, &events).expect("fixture roster verifies");
        let mut keys = Keyring::new();
        keys.insert(KeyId::Epoch(0), SymmetricKey::generate());
        Self {
            space,
            a,
            b,
            member_a,
            member_b,
            events,
            roster,
            keys,
        }
    }

    /// Appends a signed roster event and re-verifies.
    pub fn append_roster(&mut self, signer: &DeviceIdentity, change: RosterChange) {
        let last = self.events.last().expect("roster has events");
        let ev = signer.sign_roster_event(RosterEvent {
            space: self.space,
            seq: last.event.seq + 1,
            prev: last.hash(),
            signer: signer.id(),
            legacy_at: None,
            change,
        });
        self.events.push(ev);
        self.roster = Roster::verify(self.space, &self.events).expect("roster verifies");
    }
}

/// One device's outgoing chain.
pub struct Author<'a> {
    pub identity: &'a DeviceIdentity,
    pub seq: u64,
    pub prev: Hash32,
}

impl<'a> Author<'a> {
    pub fn new(identity: &'a DeviceIdentity) -> Self {
        Self {
            identity,
            seq: 0,
            prev: Hash32::ZERO,
        }
    }

    pub fn id(&self) -> DeviceId {
        self.identity.id()
    }

    /// The next header of this chain (does not advance it).
    pub fn next_header(&self, space: SpaceId) -> EnvelopeHeader {
        EnvelopeHeader {
            space,
            author: self.identity.id(),
            seq: self.seq + 1,
            prev: self.prev,
            legacy_key: None,
            entry: EntryId(random16()),
        }
    }

    /// Seals the next envelope of the chain under epoch 0 and advances.
    pub fn write(&mut self, couple: &Couple, text: &str) -> Envelope {
        let key = couple.keys.get(&KeyId::Epoch(0)).expect("epoch 0");
        let header = self.next_header(couple.space);
        let env = seal_envelope(self.identity, header, KeyId::Epoch(0), key, text.as_bytes())
            .expect("seals");
        self.seq += 1;
        self.prev = env.hash();
        env
    }
}
