//! Roster verification, checked against a small model of the rules in DESIGN.md.
//!
//! The fuzzer writes a script of roster events (create, join, link, revoke), who
//! signs each and with which key, and small tweaks (wrong sequence number, broken
//! chain, other space, bad or misattributed signature). The harness signs them
//! with fixed device keys, sends each through the canonical encoding and decoder
//! (as the relay and clients do), and verifies the list. The verdict and the
//! resulting devices must equal the model's; nothing may panic.
#![no_main]

use std::collections::BTreeMap;

use arbitrary::Arbitrary;
use attune_crypto::DeviceIdentity;
use attune_fuzz::device;
use attune_proto::{
    DeviceId, DevicePublic, Hash32, MemberId, Roster, RosterChange, RosterEvent, SignedRosterEvent,
    SpaceId,
};
use libfuzzer_sys::fuzz_target;

const SPACE: SpaceId = SpaceId([0x5A; 16]);
const MEMBERS: [MemberId; 3] = [
    MemberId([0x0A; 16]),
    MemberId([0x0B; 16]),
    MemberId([0x0C; 16]),
];
/// Devices 0..REAL have keys; the two after them are small-order (weak) public keys.
const REAL: usize = 5;

#[derive(Debug, Arbitrary)]
struct Op {
    kind: u8,
    signer: u8,
    subject: u8,
    member: u8,
    last_seq: u64,
    tweak: u8,
}

fn publics(ids: &[DeviceIdentity]) -> Vec<DevicePublic> {
    let mut out: Vec<DevicePublic> = ids.iter().map(DeviceIdentity::public).collect();
    let mut identity_point = [0u8; 32];
    identity_point[0] = 1;
    out.push(DevicePublic {
        sign: identity_point,
        kx: [9; 32],
    });
    out.push(DevicePublic {
        sign: [0; 32],
        kx: [9; 32],
    });
    out
}

/// The rules, restated plainly: who may sign what, and what each event changes.
#[derive(Debug, Default, PartialEq, Eq)]
struct Model {
    members: Vec<MemberId>,
    /// Device → (member, still active).
    devices: BTreeMap<DeviceId, (MemberId, bool)>,
}

impl Model {
    /// Applies one event; `false` if the rules reject it. `sig_ok` says whether
    /// the signature was made by the key of the device named as signer, over
    /// exactly these bytes.
    fn apply(
        &mut self,
        first: bool,
        ev: &RosterEvent,
        sig_ok: bool,
        key_ok: &dyn Fn(&DevicePublic) -> bool,
    ) -> bool {
        if first {
            let RosterChange::Create { member, device } = ev.change else {
                return false;
            };
            if ev.signer != device.id() || !sig_ok || !key_ok(&device) {
                return false;
            }
            self.members.push(member);
            self.devices.insert(device.id(), (member, true));
            return true;
        }
        let Some(&(signer_member, true)) = self.devices.get(&ev.signer) else {
            return false;
        };
        if !sig_ok {
            return false;
        }
        match ev.change {
            RosterChange::Create { .. } => false,
            RosterChange::Join { member, device } => {
                if self.members.len() != 1 || self.members.contains(&member) {
                    return false;
                }
                if !key_ok(&device) || self.devices.contains_key(&device.id()) {
                    return false;
                }
                self.members.push(member);
                self.devices.insert(device.id(), (member, true));
                true
            }
            RosterChange::Link { member, device } | RosterChange::Recovery { member, device } => {
                if !self.members.contains(&member) || member != signer_member {
                    return false;
                }
                if !key_ok(&device) || self.devices.contains_key(&device.id()) {
                    return false;
                }
                self.devices.insert(device.id(), (member, true));
                true
            }
            RosterChange::Revoke { device, .. } => match self.devices.get_mut(&device) {
                Some((m, active)) if *active && *m == signer_member => {
                    *active = false;
                    true
                }
                _ => false,
            },
        }
    }
}

fuzz_target!(|ops: Vec<Op>| {
    if ops.is_empty() || ops.len() > 16 {
        return;
    }
    let ids: Vec<DeviceIdentity> = (0..REAL as u8).map(device).collect();
    let publics = publics(&ids);
    let key_ok = |d: &DevicePublic| ids.iter().any(|i| i.public() == *d);

    let mut events: Vec<SignedRosterEvent> = Vec::new();
    let mut model = Model::default();
    let mut model_ok = true;
    for (i, op) in ops.iter().enumerate() {
        let signer = usize::from(op.signer) % REAL;
        let subject = publics[usize::from(op.subject) % publics.len()];
        let member = MEMBERS[usize::from(op.member) % MEMBERS.len()];
        let change = match op.kind % 5 {
            0 => RosterChange::Create {
                member,
                device: subject,
            },
            1 => RosterChange::Join {
                member,
                device: subject,
            },
            2 => RosterChange::Link {
                member,
                device: subject,
            },
            3 => RosterChange::Recovery {
                member,
                device: subject,
            },
            _ => RosterChange::Revoke {
                device: subject.id(),
                last_seq: op.last_seq,
            },
        };
        let good_prev = events.last().map_or(Hash32::ZERO, SignedRosterEvent::hash);
        let mut ev = RosterEvent {
            space: SPACE,
            seq: i as u64 + 1,
            prev: good_prev,
            signer: ids[signer].id(),
            legacy_at: None,
            change,
        };
        let tweak = op.tweak % 8;
        match tweak {
            1 => ev.seq += 1,
            2 if i > 0 => ev.prev = Hash32([0x77; 32]),
            3 => ev.space = SpaceId([0x5B; 16]),
            _ => {}
        }
        // Tweak 5 signs with the next device's key while naming this signer.
        let key_holder = if tweak == 5 {
            (signer + 1) % REAL
        } else {
            signer
        };
        let mut signed = ids[key_holder].sign_roster_event(ev);
        if tweak == 4 {
            signed.signature[usize::from(op.last_seq as u8) % 64] ^= 1;
        }
        // Through the wire format, as every reader of a roster gets it.
        let Ok(decoded) = SignedRosterEvent::decode(&signed.encode()) else {
            assert!(
                ev.seq != 1 && ev.prev == Hash32::ZERO || ev.seq == 1 && ev.prev != Hash32::ZERO,
                "a roster event that follows the format did not decode"
            );
            return;
        };
        assert!(decoded == signed, "decoding changed a roster event");
        let sig_ok = tweak != 4 && tweak != 5;
        let chain_ok = tweak != 1 && !(tweak == 2 && i > 0) && tweak != 3;
        if model_ok {
            model_ok = chain_ok && model.apply(i == 0, &ev, sig_ok, &key_ok);
        }
        events.push(decoded);
    }

    match Roster::verify(SPACE, &events) {
        Ok(roster) => {
            assert!(model_ok, "the roster verified, but the rules reject it");
            let got: BTreeMap<DeviceId, (MemberId, bool)> = roster
                .devices()
                .map(|(id, d)| (*id, (d.member, d.revoked_after.is_none())))
                .collect();
            assert!(
                got == model.devices,
                "the verified roster's devices differ from the rules'"
            );
            let members: Vec<MemberId> = roster.members().iter().map(|m| m.id).collect();
            assert!(
                members == model.members,
                "the verified roster's members differ"
            );
            assert!(roster.len() == events.len() as u64);
        }
        Err(e) => assert!(
            !model_ok,
            "the rules accept this roster, but verification said: {e}"
        ),
    }
});
