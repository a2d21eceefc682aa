//! Pairing two partners' devices with a short code (PROTOCOL.md §8): the inviter
//! creates the space and waits; the joiner types the code; SPAKE2 with key
//! confirmation runs through the relay's mailbox; then the inviter sends the space,
//! roster and epoch key sealed under the confirmed key.

use std::time::{Duration, Instant};

use attune_crypto::pairing::AwaitingPake;
use attune_crypto::{Pairing, PairingCode, PairingSession, SymmetricKey};
use attune_proto::api::{b64, codes, from_b64};
use attune_proto::{
    DevicePublic, Hash32, KeyId, MemberId, PairingMessage, Role, Roster, RosterChange, RosterEvent,
    SignedRosterEvent, SpaceId,
};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::profile::{ClientError, Profile};
use crate::relay::{RelayClient, RelayError};

#[derive(Serialize, Deserialize)]
struct JoinerHello {
    sign: String,
    kx: String,
    member: String,
    name: String,
}

#[derive(Serialize, Deserialize)]
struct Welcome {
    space: String,
    roster: Vec<String>,
    epoch: u32,
    epoch_key: String,
    name: String,
}

pub(crate) fn failed(why: &str) -> ClientError {
    ClientError::Pairing(format!("pairing failed: {why}"))
}

/// A pairing mailbox and this side's token for it.
pub(crate) struct Slot {
    pub(crate) number: u32,
    pub(crate) token: String,
    /// Pairing with a partner, or adding one's own device: for the wording.
    pub(crate) device: bool,
}

/// Where in pairing a refusal happened, to explain it correctly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    Handshake,
    Exchange,
}

pub(crate) fn refused(e: RelayError, me: Role, phase: Phase, device: bool) -> ClientError {
    if device {
        return match (e.code(), phase, me) {
            (Some(codes::MAILBOX_UNAVAILABLE), Phase::Exchange, _) => failed(
                "the other device stopped: the codes did not match, or the exchange was tampered with. Nothing was shared; start again with a new code",
            ),
            (Some(codes::MAILBOX_UNAVAILABLE), Phase::Handshake, Role::Inviter) => failed(
                "the code expired before the new device joined; run `attune device add` again for a new one",
            ),
            (Some(codes::MAILBOX_UNAVAILABLE), Phase::Handshake, Role::Joiner) => failed(
                "this code is unknown, already used or expired; run `attune device add` again on your other device for a new one",
            ),
            (Some(codes::MAILBOX_FULL), _, _) => failed(
                "someone else is already using this code; run `attune device add` again for a new one",
            ),
            _ => refused(e, me, phase, false),
        };
    }
    match (e.code(), phase, me) {
        (Some(codes::MAILBOX_UNAVAILABLE), Phase::Exchange, _) => failed(
            "the other side stopped: the codes did not match, or the exchange was tampered with. Nothing was shared; start again with a new code",
        ),
        (Some(codes::MAILBOX_UNAVAILABLE), Phase::Handshake, Role::Inviter) => failed(
            "the code expired before your partner joined; run `attune pair invite` again for a new one",
        ),
        (Some(codes::MAILBOX_UNAVAILABLE), Phase::Handshake, Role::Joiner) => failed(
            "this code is unknown, already used or expired; ask your partner for a new one",
        ),
        (Some(codes::MAILBOX_FULL), _, _) => failed(
            "someone else is already pairing with this code; ask your partner for a new one",
        ),
        (Some(codes::RATE_LIMITED), _, _) => failed(
            "the relay is refusing pairing attempts for now (too many from your network, or from everyone); try again in a minute",
        ),
        _ => ClientError::Relay(e),
    }
}

/// Waits for the other side's message number `index`. A mailbox the other side
/// closed answers `mailbox_unavailable`.
pub(crate) async fn receive(
    relay: &RelayClient,
    slot: &Slot,
    me: Role,
    index: usize,
    deadline: Instant,
    phase: Phase,
) -> Result<PairingMessage, ClientError> {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(failed(if slot.device {
                "the other device did not answer in time; start again"
            } else {
                "your partner did not answer in time; start again"
            }));
        }
        let got = relay
            .mailbox_read(slot.number, &slot.token, index, left.as_secs().clamp(1, 20))
            .await
            .map_err(|e| refused(e, me, phase, slot.device))?;
        if let Some(raw) = got.messages.first() {
            return PairingMessage::decode(&raw.0)
                .map_err(|_| failed("a pairing message was garbled in transit"));
        }
    }
}

pub(crate) async fn post(
    relay: &RelayClient,
    slot: &Slot,
    me: Role,
    msg: &PairingMessage,
    phase: Phase,
) -> Result<(), ClientError> {
    relay
        .mailbox_post(slot.number, &slot.token, msg.encode())
        .await
        .map_err(|e| refused(e, me, phase, slot.device))
}

/// After this side's key exchange is posted: the other's, and key confirmation.
/// On failure the caller closes the mailbox, so the code cannot be tried again.
pub(crate) async fn handshake(
    relay: &RelayClient,
    slot: &Slot,
    me: Role,
    state: AwaitingPake,
    deadline: Instant,
) -> Result<PairingSession, ClientError> {
    let theirs = receive(relay, slot, me, 0, deadline, Phase::Handshake).await?;
    let (state, confirm) = state
        .receive_pake(&theirs)
        .map_err(|_| failed("unexpected message from the other side"))?;
    post(relay, slot, me, &confirm, Phase::Exchange).await?;
    let their_confirm = receive(relay, slot, me, 1, deadline, Phase::Exchange).await?;
    state.receive_confirm(&their_confirm).map_err(|_| {
        failed(
            "the codes did not match (a typo?), or someone tampered with the exchange. Nothing was shared; start again with a new code",
        )
    })
}

/// What pairing established, for the caller to print.
#[derive(Debug)]
pub struct Paired {
    pub partner_name: String,
    pub space: SpaceId,
}

/// The inviter's side. `on_code` is called with the code as soon as it exists.
pub async fn invite(
    profile: &mut Profile,
    relay_url: &str,
    create_token: Option<String>,
    timeout: Duration,
    on_code: impl FnOnce(&str),
) -> Result<Paired, ClientError> {
    if profile.is_paired() {
        return Err(ClientError::AlreadyPaired);
    }
    let deadline = Instant::now() + timeout;
    let relay =
        RelayClient::new(relay_url, profile.identity.clone()).with_create_token(create_token);
    let me = &profile.identity;
    let name = profile.name();
    let space = SpaceId(attune_crypto::secret::random_array());
    let member = MemberId(attune_crypto::secret::random_array());
    let create = me.sign_roster_event(RosterEvent {
        space,
        seq: 1,
        prev: Hash32::ZERO,
        signer: me.id(),
        legacy_at: None,
        change: RosterChange::Create {
            member,
            device: me.public(),
        },
    });
    relay.create_space(create.encode()).await?;
    let result = async {
        let opened = relay.open_mailbox(space).await?;
        let slot = Slot {
            number: opened.mailbox,
            token: opened.token,
            device: false,
        };
        let code = PairingCode::generate(slot.number);
        on_code(&code.reveal());
        let exchanged = invite_exchange(&relay, &slot, &code, space, create, &name, deadline).await;
        // Single use, whatever happened.
        let _ = relay.mailbox_close(slot.number, &slot.token).await;
        exchanged
    }
    .await;
    let (join, epoch_key, partner_name) = match result {
        Ok(r) => r,
        Err(e) => {
            // Nothing was established: remove the half-made space from the relay.
            let _ = relay.delete_space(space).await;
            return Err(e);
        }
    };
    profile.keys.insert(KeyId::Epoch(0), epoch_key);
    profile.keys.set_member(member);
    profile
        .keys
        .insert(KeyId::MemberPrivate(0), SymmetricKey::generate());
    profile.save_keys()?;
    profile.enter_space(
        space,
        member,
        relay_url,
        &partner_name,
        &[create.encode(), join.encode()],
    )?;
    Ok(Paired {
        partner_name,
        space,
    })
}

/// After the code: handshake, the joiner's keys, the roster, the welcome, and the
/// joiner's acknowledgement. Returns the join event, the epoch key and the name.
#[allow(clippy::too_many_arguments)]
async fn invite_exchange(
    relay: &RelayClient,
    slot: &Slot,
    code: &PairingCode,
    space: SpaceId,
    create: SignedRosterEvent,
    my_name: &str,
    deadline: Instant,
) -> Result<(SignedRosterEvent, SymmetricKey, String), ClientError> {
    let me = relay.identity();
    let (state, pake) = Pairing::start(Role::Inviter, code);
    post(relay, slot, Role::Inviter, &pake, Phase::Handshake).await?;
    let mut session = handshake(relay, slot, Role::Inviter, state, deadline).await?;
    let hello_msg = receive(relay, slot, Role::Inviter, 2, deadline, Phase::Exchange).await?;
    let hello_bytes = session
        .open(&hello_msg)
        .map_err(|_| failed("the partner's device keys were altered in transit"))?;
    let hello: JoinerHello = serde_json::from_slice(&hello_bytes)
        .map_err(|_| failed("the partner's device sent something unexpected"))?;
    let partner_name = checked_name(&hello.name)?;
    let parse32 = |s: &str| -> Result<[u8; 32], ClientError> {
        let mut out = [0u8; 32];
        hex::decode_to_slice(s, &mut out).map_err(|_| failed("malformed partner keys"))?;
        Ok(out)
    };
    let mut partner_member = [0u8; 16];
    hex::decode_to_slice(&hello.member, &mut partner_member)
        .map_err(|_| failed("malformed partner keys"))?;
    let join = me.sign_roster_event(RosterEvent {
        space,
        seq: 2,
        prev: create.hash(),
        signer: me.id(),
        legacy_at: None,
        change: RosterChange::Join {
            member: MemberId(partner_member),
            device: DevicePublic {
                sign: parse32(&hello.sign)?,
                kx: parse32(&hello.kx)?,
            },
        },
    });
    Roster::verify(space, &[create, join])
        .map_err(|e| failed(&format!("the partner's keys are not acceptable: {e}")))?;
    relay.append_roster(space, vec![join.encode()]).await?;

    let epoch_key = SymmetricKey::generate();
    let welcome = Welcome {
        space: space.to_hex(),
        roster: vec![b64(&create.encode()), b64(&join.encode())],
        epoch: 0,
        epoch_key: b64(epoch_key.expose()),
        name: my_name.to_string(),
    };
    let welcome_bytes = Zeroizing::new(serde_json::to_vec(&welcome).unwrap_or_default());
    drop(welcome);
    let sealed = session
        .seal(&welcome_bytes)
        .map_err(|_| failed("could not seal the welcome"))?;
    post(relay, slot, Role::Inviter, &sealed, Phase::Exchange).await?;
    // The joiner confirms it received and accepted the welcome.
    let ack = receive(relay, slot, Role::Inviter, 3, deadline, Phase::Exchange).await?;
    let ack = session
        .open(&ack)
        .map_err(|_| failed("the partner's confirmation was altered in transit"))?;
    if ack.as_slice() != ACK {
        return Err(failed("the partner's device did not accept the welcome"));
    }
    Ok((join, epoch_key, partner_name))
}

/// The partner's name as sent in pairing: the same rules as `init --name`, so a
/// modified client cannot plant control characters in every later screen.
pub(crate) fn checked_name(name: &str) -> Result<String, ClientError> {
    crate::inert::valid_name(name)
        .map(str::to_string)
        .map_err(|e| {
            failed(&format!(
                "the partner's device sent an unacceptable name ({e}). Nothing was shared; they should run a released attune and start again"
            ))
        })
}

/// The roster a welcome carries (base64 events), verified from its first event.
pub(crate) fn welcome_roster(
    space: SpaceId,
    encoded: &[String],
) -> Result<(Vec<Vec<u8>>, Roster), ClientError> {
    let events: Vec<Vec<u8>> = encoded
        .iter()
        .map(|e| from_b64(e).ok_or_else(|| failed("malformed roster")))
        .collect::<Result<_, _>>()?;
    let decoded = events
        .iter()
        .map(|e| SignedRosterEvent::decode(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| failed("malformed roster"))?;
    let roster = Roster::verify(space, &decoded)
        .map_err(|e| failed(&format!("the roster does not verify: {e}")))?;
    Ok((events, roster))
}

/// What the joiner sends once it has verified and accepted the welcome.
pub(crate) const ACK: &[u8] = b"attune/v1/pairing/welcome-accepted";

/// The joiner's side.
pub async fn join(
    profile: &mut Profile,
    code: &str,
    relay_url: &str,
    timeout: Duration,
) -> Result<Paired, ClientError> {
    if profile.is_paired() {
        return Err(ClientError::AlreadyPaired);
    }
    let code = PairingCode::parse(code).map_err(|_| {
        ClientError::Input(
            "a pairing code looks like 58301742-otter-maple: a number and two words from your partner's screen".into(),
        )
    })?;
    let deadline = Instant::now() + timeout;
    let relay = RelayClient::new(relay_url, profile.identity.clone());
    // Joining posts this side's key exchange: the one try this code allows.
    let (state, pake) = Pairing::start(Role::Joiner, &code);
    let token = relay
        .mailbox_join(code.mailbox, pake.encode())
        .await
        .map_err(|e| refused(e, Role::Joiner, Phase::Handshake, false))?;
    let slot = Slot {
        number: code.mailbox,
        token,
        device: false,
    };
    let result = async {
        let mut session = handshake(&relay, &slot, Role::Joiner, state, deadline).await?;
        join_exchange(profile, &relay, &mut session, &slot, deadline).await
    }
    .await;
    if result.is_err() {
        let _ = relay.mailbox_close(slot.number, &slot.token).await;
    }
    let (space, member, events, epoch, key_bytes, partner_name) = result?;
    profile
        .keys
        .insert(KeyId::Epoch(epoch), SymmetricKey::from_bytes(*key_bytes));
    profile.keys.set_member(member);
    profile
        .keys
        .insert(KeyId::MemberPrivate(0), SymmetricKey::generate());
    profile.save_keys()?;
    profile.enter_space(space, member, relay_url, &partner_name, &events)?;
    Ok(Paired {
        partner_name,
        space,
    })
}

type Accepted = (
    SpaceId,
    MemberId,
    Vec<Vec<u8>>,
    u32,
    Zeroizing<[u8; 32]>,
    String,
);

/// After the handshake: send this device's keys, verify the welcome, acknowledge it.
async fn join_exchange(
    profile: &Profile,
    relay: &RelayClient,
    session: &mut PairingSession,
    slot: &Slot,
    deadline: Instant,
) -> Result<Accepted, ClientError> {
    let member = MemberId(attune_crypto::secret::random_array());
    let public = profile.identity.public();
    let hello = JoinerHello {
        sign: hex::encode(public.sign),
        kx: hex::encode(public.kx),
        member: hex::encode(member.0),
        name: profile.name(),
    };
    let sealed = session
        .seal(&serde_json::to_vec(&hello).unwrap_or_default())
        .map_err(|_| failed("could not seal this device's keys"))?;
    post(relay, slot, Role::Joiner, &sealed, Phase::Exchange).await?;
    let welcome_msg = receive(relay, slot, Role::Joiner, 2, deadline, Phase::Exchange).await?;
    let welcome_bytes = session
        .open(&welcome_msg)
        .map_err(|_| failed("the welcome was altered in transit"))?;
    let welcome: Welcome = serde_json::from_slice(&welcome_bytes)
        .map_err(|_| failed("the inviter sent something unexpected"))?;
    let partner_name = checked_name(&welcome.name)?;
    let space = SpaceId::from_hex(&welcome.space).map_err(|_| failed("malformed space id"))?;
    let (events, roster) = welcome_roster(space, &welcome.roster)?;
    let mine = roster
        .device(&profile.identity.id())
        .ok_or_else(|| failed("the roster does not include this device"))?;
    if mine.member != member {
        return Err(failed("the roster names this device under another member"));
    }
    let key_bytes: [u8; 32] = from_b64(&welcome.epoch_key)
        .and_then(|k| k.try_into().ok())
        .ok_or_else(|| failed("malformed epoch key"))?;
    let ack = session
        .seal(ACK)
        .map_err(|_| failed("could not seal the acknowledgement"))?;
    post(relay, slot, Role::Joiner, &ack, Phase::Exchange).await?;
    Ok((
        space,
        member,
        events,
        welcome.epoch,
        Zeroizing::new(key_bytes),
        partner_name,
    ))
}
