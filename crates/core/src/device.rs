//! A member's devices (PROTOCOL.md §16): adding one with a short code, listing
//! both partners' devices, revoking one with a new epoch, and taking in the keys
//! other devices wrap to this one.
//!
//! Adding runs the pairing exchange (SPAKE2 through a mailbox) between two
//! devices of one member: the new device sends its public keys, the existing one
//! signs a `Link` for it and sends the roster and every key it holds, each
//! HPKE-wrapped to the new device. Revoking starts a new epoch and a new
//! member-private key, wrapped to every device that remains.

use std::time::{Duration, Instant};

use attune_crypto::{unwrap_key, wrap_key, DeviceIdentity, Keyring, SymmetricKey};
use attune_crypto::{Pairing, PairingCode};
use attune_proto::api::{b64, codes, from_b64};
use attune_proto::{
    DeviceId, DevicePublic, Envelope, KeyId, KeyWrap, MemberId, Role, Roster, RosterChange,
    RosterEvent, SignedRosterEvent, SpaceId,
};
use serde::{Deserialize, Serialize};

use crate::item::{Body, DeviceChange};
use crate::pair::{checked_name, failed, handshake, post, receive, Phase, Slot, ACK};
use crate::profile::{ClientError, Profile};
use crate::relay::RelayClient;

const PURPOSE: &str = "attune/v1/device-link";

#[derive(Serialize, Deserialize)]
struct DeviceHello {
    purpose: String,
    sign: String,
    kx: String,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct DeviceWelcome {
    purpose: String,
    space: String,
    member: String,
    roster: Vec<String>,
    /// The member's own name and the partner's, as this profile knows them.
    me: String,
    partner: String,
    /// Every key the existing device holds, HPKE-wrapped to the new one.
    wraps: Vec<String>,
}

/// One device (or recovery key) in the roster, as `device list` shows it.
#[derive(Debug, Clone)]
pub struct DeviceInfo {
    pub id: DeviceId,
    pub member: MemberId,
    /// One of this member's devices (this one included).
    pub mine: bool,
    pub this_device: bool,
    /// The name given when it was added (inside an item, never in the clear).
    pub name: Option<String>,
    /// A recovery key, not a device a person uses.
    pub recovery: bool,
    /// When the event that added it was signed (the signer's clock).
    pub added_at: i64,
    pub revoked: bool,
    pub revoked_at: Option<i64>,
    /// When it last wrote something this device has read.
    pub last_seen: Option<i64>,
}

/// A change to either member's devices, for `status`, `today` and the feed.
#[derive(Debug, Clone)]
pub struct DeviceEvent {
    pub at: i64,
    pub mine: bool,
    pub change: DeviceChange,
    pub device: DeviceId,
    pub name: Option<String>,
}

/// What `device add` did.
#[derive(Debug)]
pub struct Added {
    pub device: DeviceId,
    pub name: String,
}

/// What `device join` did.
#[derive(Debug)]
pub struct Joined {
    pub partner_name: String,
    pub space: SpaceId,
}

/// What `device revoke` did.
#[derive(Debug)]
pub struct Revoked {
    pub device: DeviceId,
    pub name: Option<String>,
    /// The epoch that new shared items are sealed under from now on.
    pub epoch: u32,
}

fn hex32(s: &str) -> Result<[u8; 32], ClientError> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(s, &mut out).map_err(|_| failed("malformed device keys"))?;
    Ok(out)
}

/// Wraps every key in `keys` that `to` may hold: epoch keys always, the
/// member-private keys only for a device of the same member.
pub(crate) fn wrap_all(
    space: &SpaceId,
    keys: &Keyring,
    to: &DevicePublic,
    same_member: bool,
) -> Result<Vec<KeyWrap>, ClientError> {
    keys.ids()
        .filter(|id| match id {
            KeyId::Epoch(_) => true,
            KeyId::MemberPrivate(_) => same_member,
            KeyId::KeyWraps(_) => false,
        })
        .map(|id| {
            let key = keys
                .get(id)
                .ok_or_else(|| ClientError::Corrupt("keyring".into()))?;
            wrap_key(space, to, *id, key)
                .map_err(|e| ClientError::Corrupt(format!("cannot wrap a key: {e}")))
        })
        .collect()
}

/// Takes the keys in a verified key-wrap envelope that are addressed to one of
/// `identities`. Epoch keys come from any device of the space; member-private
/// keys only from a device of this member. A key id already held is never
/// replaced. Returns how many keys were new.
pub(crate) fn absorb_wraps(
    keys: &mut Keyring,
    identities: &[&DeviceIdentity],
    roster: &Roster,
    env: &Envelope,
    list: &[u8],
) -> usize {
    let Ok(wraps) = KeyWrap::decode_list(list) else {
        return 0;
    };
    let author_member = roster.device(&env.header.author).map(|d| d.member);
    let mut added = 0;
    for wrap in &wraps {
        let Some(me) = identities.iter().find(|i| i.id() == wrap.recipient) else {
            continue;
        };
        if matches!(wrap.key, KeyId::MemberPrivate(_))
            && (author_member.is_none() || author_member != keys.member())
        {
            continue;
        }
        if let Ok(key) = unwrap_key(&env.header.space, me, wrap) {
            if keys.insert_new(wrap.key, key) {
                added += 1;
            }
        }
    }
    added
}

impl Profile {
    /// The verified roster and its events, each with its time: the signer's
    /// clock for a version 1 event, otherwise when this device first stored it.
    fn roster_events(&self) -> Result<(Roster, Vec<(SignedRosterEvent, i64)>), ClientError> {
        let stored = self.db.roster_with_times()?;
        let events = stored
            .iter()
            .map(|s| SignedRosterEvent::decode(&s.event))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Corrupt(format!("stored roster: {e}")))?;
        let roster = Roster::verify(self.space()?, &events)
            .map_err(|e| ClientError::Corrupt(format!("stored roster: {e}")))?;
        let timed = events
            .into_iter()
            .zip(stored)
            .map(|(e, s)| {
                let at = e.event.legacy_at.or(s.stored_at).unwrap_or(0);
                (e, at)
            })
            .collect();
        Ok((roster, timed))
    }

    /// Names given to devices, from the device items this profile has read
    /// (the newest name of each device wins).
    fn device_names(&self) -> Result<std::collections::BTreeMap<DeviceId, String>, ClientError> {
        let mut names = std::collections::BTreeMap::new();
        for e in self.entries_of_kind("device")? {
            if let Body::Device { device, name, .. } = &e.item.body {
                if let Ok(id) = DeviceId::from_hex(device) {
                    if !name.is_empty() {
                        names.insert(id, name.clone());
                    }
                }
            }
        }
        if let Some(label) = self.device_label()? {
            names.insert(self.identity.id(), label);
        }
        Ok(names)
    }

    /// Every device and recovery key of both members, in the order they were added.
    pub fn devices(&self) -> Result<Vec<DeviceInfo>, ClientError> {
        let (roster, events) = self.roster_events()?;
        let names = self.device_names()?;
        let my_member = self.member()?;
        let me = self.identity.id();
        let mut out: Vec<DeviceInfo> = roster
            .devices()
            .map(|(id, d)| {
                let revoked_at = events.iter().find_map(|(e, at)| match e.event.change {
                    RosterChange::Revoke { device, .. } if device == *id => Some(*at),
                    _ => None,
                });
                let added_at = events
                    .get((d.added_in - 1) as usize)
                    .map_or(0, |(_, at)| *at);
                Ok(DeviceInfo {
                    id: *id,
                    member: d.member,
                    mine: d.member == my_member,
                    this_device: *id == me,
                    name: names.get(id).cloned(),
                    recovery: d.recovery,
                    added_at,
                    revoked: d.revoked_after.is_some(),
                    revoked_at,
                    last_seen: self.last_item_at(id)?,
                })
            })
            .collect::<Result<_, ClientError>>()?;
        out.sort_by_key(|d| (d.added_at, d.id));
        Ok(out)
    }

    /// Device changes after the pairing (devices added, revoked, recovery keys
    /// set up), newest last, from the verified roster: a change cannot be
    /// hidden from either partner without the items' roster heads exposing it.
    pub fn device_events(&self, since_ms: i64) -> Result<Vec<DeviceEvent>, ClientError> {
        let (roster, events) = self.roster_events()?;
        let names = self.device_names()?;
        let my_member = self.member()?;
        let mut out = Vec::new();
        for (e, at) in &events {
            let (change, device) = match e.event.change {
                RosterChange::Link { device, .. } => (DeviceChange::Added, device.id()),
                RosterChange::Recovery { device, .. } => (DeviceChange::Recovery, device.id()),
                RosterChange::Revoke { device, .. } => (DeviceChange::Revoked, device),
                RosterChange::Create { .. } | RosterChange::Join { .. } => continue,
            };
            if *at < since_ms {
                continue;
            }
            let member = roster.device(&device).map(|d| d.member);
            out.push(DeviceEvent {
                at: *at,
                mine: member == Some(my_member),
                change,
                device,
                name: names.get(&device).cloned(),
            });
        }
        Ok(out)
    }

    /// Writes a key-wrap envelope (its body is the wraps, each sealed to one
    /// device on its own) into the outbox.
    pub(crate) fn write_key_wraps(&mut self, wraps: &[KeyWrap]) -> Result<(), ClientError> {
        let space = self.space()?;
        // Sealed under the epoch every remaining device already holds (the
        // revoked one too, which finds only wraps it cannot open inside).
        let current = self
            .keys
            .current_epoch()
            .ok_or_else(|| ClientError::Corrupt("no epoch key".into()))?;
        let current_key = self
            .keys
            .get(&current)
            .ok_or_else(|| ClientError::Corrupt("missing key".into()))?
            .clone();
        let sealed_under = (current, &current_key);
        let author = self.identity.id();
        let identity = self.identity.clone();
        let now = self.now();
        let entry = attune_proto::EntryId(attune_crypto::secret::random_array());
        self.db.enqueue_next(
            now,
            None,
            None,
            |seq, prev| {
                let header = crate::profile::chain_header(space, author, entry, seq, prev)?;
                let env = attune_crypto::seal_key_envelope(&identity, header, sealed_under, wraps)
                    .map_err(|e| ClientError::Corrupt(format!("cannot sign the key wraps: {e}")))?;
                Ok::<_, ClientError>((entry.0.to_vec(), env.encode(), env.hash().to_hex(), ()))
            },
            |tx, seq, bytes| {
                let env = Envelope::decode(bytes)
                    .map_err(|e| ClientError::Corrupt(format!("own envelope: {e}")))?;
                crate::index::index_written_plain(tx, &env, seq)
            },
        )
    }

    /// A device item (an addition, revocation, restore or recovery key), shared
    /// so the partner reads the name and the change.
    pub(crate) fn write_device_item(
        &mut self,
        change: DeviceChange,
        device: DeviceId,
        name: &str,
    ) -> Result<(), ClientError> {
        self.write(
            Body::Device {
                change,
                device: device.to_hex(),
                name: name.to_string(),
            },
            false,
        )?;
        Ok(())
    }

    /// Starts a new epoch and a new member-private key, wraps them to every
    /// device that remains active (and to this one, so an interrupted rotation
    /// heals when its envelope comes back), and only then uses them.
    pub(crate) fn rotate_keys(&mut self, roster: &Roster) -> Result<u32, ClientError> {
        let space = self.space()?;
        let my_member = self.member()?;
        let next_epoch = match self.keys.current_epoch() {
            Some(KeyId::Epoch(n)) => n + 1,
            _ => 0,
        };
        let next_private = match self.keys.current_private() {
            Some(KeyId::MemberPrivate(n)) => n + 1,
            _ => 0,
        };
        let epoch_key = SymmetricKey::generate();
        let private_key = SymmetricKey::generate();
        let mut wraps = Vec::new();
        for (id, d) in roster.devices() {
            if !roster.is_active(id) {
                continue;
            }
            let wrap = |key_id, key| {
                wrap_key(&space, &d.public, key_id, key)
                    .map_err(|e| ClientError::Corrupt(format!("cannot wrap a key: {e}")))
            };
            wraps.push(wrap(KeyId::Epoch(next_epoch), &epoch_key)?);
            if d.member == my_member {
                wraps.push(wrap(KeyId::MemberPrivate(next_private), &private_key)?);
            }
        }
        self.write_key_wraps(&wraps)?;
        self.keys.insert_new(KeyId::Epoch(next_epoch), epoch_key);
        self.keys
            .insert_new(KeyId::MemberPrivate(next_private), private_key);
        self.save_keys()?;
        Ok(next_epoch)
    }
}

/// Signs `change` as the next roster event after `roster`, checks it applies,
/// and appends it on the relay. Returns every event, the new one last.
pub(crate) async fn append_roster_event(
    relay: &RelayClient,
    signer: &DeviceIdentity,
    roster: &Roster,
    events: &[Vec<u8>],
    change: RosterChange,
) -> Result<Vec<Vec<u8>>, ClientError> {
    let event = signer.sign_roster_event(RosterEvent {
        space: roster.space(),
        seq: roster.len() + 1,
        prev: roster.head(),
        signer: signer.id(),
        legacy_at: None,
        change,
    });
    let mut check = roster.clone();
    check
        .apply(&event)
        .map_err(|e| ClientError::Input(format!("this change is not allowed: {e}")))?;
    relay
        .append_roster(roster.space(), vec![event.encode()])
        .await
        .map_err(|e| match e.code() {
            Some(codes::ROSTER_REJECTED) => ClientError::Input(
                "the relay has membership changes this device has not seen yet: run `attune sync`, then try again".into(),
            ),
            _ => ClientError::Relay(e),
        })?;
    let mut all = events.to_vec();
    all.push(event.encode());
    Ok(all)
}

/// `device add` on an existing device: opens a mailbox, shows the code through
/// `on_code`, and links the device that joins with it.
pub async fn add(
    profile: &mut Profile,
    timeout: Duration,
    on_code: impl FnOnce(&str),
) -> Result<Added, ClientError> {
    let deadline = Instant::now() + timeout;
    crate::sync::refresh_roster(profile).await?;
    let relay = profile.relay()?;
    let space = profile.space()?;
    let opened = relay.open_mailbox(space).await?;
    let slot = Slot {
        number: opened.mailbox,
        token: opened.token,
        device: true,
    };
    let code = PairingCode::generate(slot.number);
    on_code(&code.reveal());
    let result = add_exchange(profile, &relay, &slot, &code, deadline).await;
    let _ = relay.mailbox_close(slot.number, &slot.token).await;
    let (added, events) = result?;
    let now = profile.now();
    profile.db.set_roster(&events, now)?;
    profile.write_device_item(DeviceChange::Added, added.device, &added.name)?;
    Ok(added)
}

async fn add_exchange(
    profile: &Profile,
    relay: &RelayClient,
    slot: &Slot,
    code: &PairingCode,
    deadline: Instant,
) -> Result<(Added, Vec<Vec<u8>>), ClientError> {
    let space = profile.space()?;
    let member = profile.member()?;
    let (state, pake) = Pairing::start(Role::Inviter, code);
    post(relay, slot, Role::Inviter, &pake, Phase::Handshake).await?;
    let mut session = handshake(relay, slot, Role::Inviter, state, deadline).await?;
    let hello_msg = receive(relay, slot, Role::Inviter, 2, deadline, Phase::Exchange).await?;
    let hello_bytes = session
        .open(&hello_msg)
        .map_err(|_| failed("the new device's keys were altered in transit"))?;
    let hello: DeviceHello = serde_json::from_slice(&hello_bytes)
        .ok()
        .filter(|h: &DeviceHello| h.purpose == PURPOSE)
        .ok_or_else(|| {
            failed("the other side is not joining as your device (was this code meant for `attune device join`?)")
        })?;
    let name = checked_name(&hello.name)?;
    let device = DevicePublic {
        sign: hex32(&hello.sign)?,
        kx: hex32(&hello.kx)?,
    };
    let roster = profile.roster()?;
    let events = append_roster_event(
        relay,
        &profile.identity,
        &roster,
        &profile.db.roster()?,
        RosterChange::Link { member, device },
    )
    .await?;
    let wraps = wrap_all(&space, &profile.keys, &device, true)?;
    let welcome = DeviceWelcome {
        purpose: PURPOSE.into(),
        space: space.to_hex(),
        member: hex::encode(member.0),
        roster: events.iter().map(|e| b64(e)).collect(),
        me: profile.name(),
        partner: profile.partner_name()?.unwrap_or_default(),
        wraps: wraps.iter().map(|w| b64(&w.encode())).collect(),
    };
    let sealed = session
        .seal(&serde_json::to_vec(&welcome).unwrap_or_default())
        .map_err(|_| failed("could not seal the welcome"))?;
    post(relay, slot, Role::Inviter, &sealed, Phase::Exchange).await?;
    let ack = receive(relay, slot, Role::Inviter, 3, deadline, Phase::Exchange).await?;
    let ack = session
        .open(&ack)
        .map_err(|_| failed("the new device's confirmation was altered in transit"))?;
    if ack.as_slice() != ACK {
        return Err(failed("the new device did not accept the welcome"));
    }
    Ok((
        Added {
            device: device.id(),
            name,
        },
        events,
    ))
}

/// `device join CODE` on the new device (initialised, not paired): joins the
/// mailbox, sends its keys, and takes the roster and keys it is sent.
pub async fn join(
    profile: &mut Profile,
    code: &str,
    relay_url: &str,
    name: &str,
    timeout: Duration,
) -> Result<Joined, ClientError> {
    if profile.is_paired() {
        return Err(ClientError::AlreadyPaired);
    }
    let name = checked_name(name)
        .map_err(|_| ClientError::Input("a device name is 1 to 64 printable characters".into()))?;
    let code = PairingCode::parse(code).map_err(|_| {
        ClientError::Input(
            "a device code looks like 58301742-otter-maple: the number and two words `attune device add` shows on your other device".into(),
        )
    })?;
    let deadline = Instant::now() + timeout;
    let relay = RelayClient::new(relay_url, profile.identity.clone());
    let (state, pake) = Pairing::start(Role::Joiner, &code);
    let token = relay
        .mailbox_join(code.mailbox, pake.encode())
        .await
        .map_err(|e| crate::pair::refused(e, Role::Joiner, Phase::Handshake, true))?;
    let slot = Slot {
        number: code.mailbox,
        token,
        device: true,
    };
    let result = async {
        let mut session = handshake(&relay, &slot, Role::Joiner, state, deadline).await?;
        let public = profile.identity.public();
        let hello = DeviceHello {
            purpose: PURPOSE.into(),
            sign: hex::encode(public.sign),
            kx: hex::encode(public.kx),
            name: name.clone(),
        };
        let sealed = session
            .seal(&serde_json::to_vec(&hello).unwrap_or_default())
            .map_err(|_| failed("could not seal this device's keys"))?;
        post(&relay, &slot, Role::Joiner, &sealed, Phase::Exchange).await?;
        let msg = receive(&relay, &slot, Role::Joiner, 2, deadline, Phase::Exchange).await?;
        let bytes = session
            .open(&msg)
            .map_err(|_| failed("the welcome was altered in transit"))?;
        let welcome: DeviceWelcome = serde_json::from_slice(&bytes)
            .ok()
            .filter(|w: &DeviceWelcome| w.purpose == PURPOSE)
            .ok_or_else(|| {
                failed("the other side is not adding a device (was this code meant for `attune pair join`?)")
            })?;
        let accepted = accept_welcome(profile, &welcome)?;
        let ack = session
            .seal(ACK)
            .map_err(|_| failed("could not seal the acknowledgement"))?;
        post(&relay, &slot, Role::Joiner, &ack, Phase::Exchange).await?;
        Ok::<_, ClientError>((welcome, accepted))
    }
    .await;
    if result.is_err() {
        let _ = relay.mailbox_close(slot.number, &slot.token).await;
    }
    let (welcome, (space, member, events, keys)) = result?;
    let partner_name = checked_name(&welcome.partner)?;
    profile.keys = keys;
    profile.keys.set_member(member);
    profile.save_keys()?;
    profile.enter_space(space, member, relay_url, &partner_name, &events)?;
    if let Ok(me) = checked_name(&welcome.me) {
        profile.db.set("device_name", &me)?;
    }
    profile.set_device_label(&name)?;
    Ok(Joined {
        partner_name,
        space,
    })
}

type Accepted = (SpaceId, MemberId, Vec<Vec<u8>>, Keyring);

fn accept_welcome(profile: &Profile, w: &DeviceWelcome) -> Result<Accepted, ClientError> {
    let space = SpaceId::from_hex(&w.space).map_err(|_| failed("malformed space id"))?;
    let mut member = [0u8; 16];
    hex::decode_to_slice(&w.member, &mut member).map_err(|_| failed("malformed member id"))?;
    let member = MemberId(member);
    let (events, roster) = crate::pair::welcome_roster(space, &w.roster)?;
    match roster.device(&profile.identity.id()) {
        Some(d) if d.member == member && !d.recovery && d.revoked_after.is_none() => {}
        _ => {
            return Err(failed(
                "the roster does not add this device to your identity",
            ))
        }
    }
    let mut keys = Keyring::new();
    keys.set_member(member);
    for raw in &w.wraps {
        let wrap = from_b64(raw)
            .and_then(|b| KeyWrap::decode(&b).ok())
            .ok_or_else(|| failed("malformed key"))?;
        let key = unwrap_key(&space, &profile.identity, &wrap)
            .map_err(|_| failed("a key did not open: it was altered or is not for this device"))?;
        keys.insert_new(wrap.key, key);
    }
    if keys.current_epoch().is_none() || keys.current_private().is_none() {
        return Err(failed("the other device sent no keys"));
    }
    Ok((space, member, events, keys))
}

/// `device revoke ID`: removes one of this member's other devices (or recovery
/// keys) from the roster and starts a new epoch it cannot read.
pub async fn revoke(profile: &mut Profile, device: DeviceId) -> Result<Revoked, ClientError> {
    crate::sync::refresh_roster(profile).await?;
    let roster = profile.roster()?;
    let my_member = profile.member()?;
    let name = profile.device_names()?.get(&device).cloned().or_else(|| {
        // The devices that created and joined the space were never named.
        profile
            .roster()
            .ok()
            .and_then(|r| r.device(&device).map(|d| d.added_in <= 2))
            .unwrap_or(false)
            .then(|| "first device".to_string())
    });
    if device == profile.identity.id() {
        return Err(ClientError::Input(
            "this is the device you are using: revoke it from another of your devices (or `attune leave` to erase everything)".into(),
        ));
    }
    match roster.device(&device) {
        None => {
            return Err(ClientError::Input(
                "no device with this id in your space: `attune device list` shows them".into(),
            ))
        }
        Some(d) if d.member != my_member => {
            return Err(ClientError::Input(
                "that is your partner's device: only they can remove their devices".into(),
            ))
        }
        Some(d) if d.revoked_after.is_some() => {
            return Err(ClientError::Input("that device is already revoked".into()))
        }
        Some(_) => {}
    }
    let relay = profile.relay()?;
    let mut tries = 0;
    let events = loop {
        let roster = profile.roster()?;
        let last_seq = profile.highest_signed_seq(&device)?;
        let result = append_roster_event(
            &relay,
            &profile.identity,
            &roster,
            &profile.db.roster()?,
            RosterChange::Revoke { device, last_seq },
        )
        .await;
        match result {
            // The device wrote more than this one has seen: read it, then end
            // its chain after that (what was shared stays).
            Err(ClientError::Relay(e))
                if e.code() == Some(codes::REVOKE_BACKDATED) && tries < 2 =>
            {
                tries += 1;
                crate::sync::pull(profile, &mut crate::ui::Quiet).await?;
                crate::sync::refresh_roster(profile).await?;
                profile.index_new()?;
            }
            other => break other?,
        }
    };
    let now = profile.now();
    profile.db.set_roster(&events, now)?;
    let roster = profile.roster()?;
    let epoch = profile.rotate_keys(&roster)?;
    profile.write_device_item(DeviceChange::Revoked, device, name.as_deref().unwrap_or(""))?;
    Ok(Revoked {
        device,
        name,
        epoch,
    })
}

/// Finds the one device whose id starts with `prefix` (as `device list` shows
/// ids shortened).
pub fn resolve_device(profile: &Profile, prefix: &str) -> Result<DeviceId, ClientError> {
    let prefix = prefix.trim().to_ascii_lowercase();
    if prefix.len() < 4 {
        return Err(ClientError::Input(
            "give at least the first 4 characters of the device id `attune device list` shows"
                .into(),
        ));
    }
    let roster = profile.roster()?;
    let found: Vec<DeviceId> = roster
        .devices()
        .map(|(id, _)| *id)
        .filter(|id| id.to_hex().starts_with(&prefix))
        .collect();
    match found.as_slice() {
        [one] => Ok(*one),
        [] => Err(ClientError::Input(
            "no device id starts with that: `attune device list` shows them".into(),
        )),
        _ => Err(ClientError::Input(
            "more than one device id starts with that: give more characters".into(),
        )),
    }
}
