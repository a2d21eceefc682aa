//! Recovery (PROTOCOL.md §16): a recovery key in the roster whose secrets live
//! only in a bundle on the relay, encrypted under a code shown once.
//!
//! Setting up adds the recovery key (a `Recovery` roster event) and files the
//! bundle: the key's own identity and every key the member holds. Keys made
//! later reach the recovery key as ordinary HPKE wraps (every rotation wraps to
//! every active device, recovery keys included), so the bundle never goes stale.
//! Restoring on a blank device opens the bundle, has the recovery key sign a
//! `Link` for the new device, and takes the recovery key's wraps from the history.

use attune_crypto::recovery::RECOVERY_KDF;
use attune_crypto::{
    open_envelope, open_recovery, seal_recovery, Content, DeviceIdentity, KdfParams,
    KeystoreContents, RecoveryCode, RecoveryContents,
};
use attune_proto::{DeviceId, Envelope, Roster, RosterChange, SignedRosterEvent, SpaceId};

use crate::device::{absorb_wraps, append_roster_event};
use crate::item::DeviceChange;
use crate::profile::{ClientError, Profile};
use crate::relay::RelayClient;

/// The Argon2id settings for new bundles. `ATTUNE_TEST_RECOVERY_KDF=insecure`
/// makes them cheap, for tests only.
fn kdf() -> KdfParams {
    match std::env::var("ATTUNE_TEST_RECOVERY_KDF").as_deref() {
        Ok("insecure") => KdfParams::INSECURE_FOR_TESTS,
        _ => RECOVERY_KDF,
    }
}

/// What `recovery setup` or `recovery rotate` made: the code, to show once.
#[derive(Debug)]
pub struct RecoverySet {
    pub code: RecoveryCode,
    pub key: DeviceId,
    /// Recovery keys the new one replaced (revoked).
    pub replaced: Vec<DeviceId>,
}

/// What `recovery restore` did.
#[derive(Debug)]
pub struct Restored {
    pub space: SpaceId,
    pub partner_name: String,
    /// This member's other devices, still active: probably lost, and worth revoking.
    pub others: Vec<DeviceId>,
    /// Envelopes received from the relay.
    pub received: usize,
}

fn active_recovery_keys(roster: &Roster, profile: &Profile) -> Result<Vec<DeviceId>, ClientError> {
    let member = profile.member()?;
    Ok(roster
        .devices()
        .filter(|(id, d)| d.recovery && d.member == member && roster.is_active(id))
        .map(|(id, _)| *id)
        .collect())
}

/// Adds a recovery key and files its bundle. With `replace`, revokes the
/// member's earlier recovery keys afterwards (a new epoch, which the new key
/// receives too); without, refuses if one exists.
pub async fn set_up(profile: &mut Profile, replace: bool) -> Result<RecoverySet, ClientError> {
    crate::sync::refresh_roster(profile).await?;
    let roster = profile.roster()?;
    let existing = active_recovery_keys(&roster, profile)?;
    if !existing.is_empty() && !replace {
        return Err(ClientError::Input(
            "a recovery code is already set up: `attune recovery rotate` replaces it with a new one".into(),
        ));
    }
    let relay = profile.relay()?;
    let space = profile.space()?;
    let member = profile.member()?;
    let recovery = DeviceIdentity::generate();
    let events = append_roster_event(
        &relay,
        &profile.identity,
        &roster,
        &profile.db.roster()?,
        RosterChange::Recovery {
            member,
            device: recovery.public(),
        },
    )
    .await?;
    let now = profile.now();
    profile.db.set_roster(&events, now)?;
    let code = RecoveryCode::generate();
    let contents = RecoveryContents {
        space,
        member,
        partner_name: profile.partner_name()?.unwrap_or_default(),
        keystore: KeystoreContents {
            identity: recovery.clone(),
            keys: profile.keys.clone(),
        },
    };
    let bundle = seal_recovery(&code, &contents, kdf())
        .map_err(|e| ClientError::Corrupt(format!("cannot seal the recovery bundle: {e}")))?;
    relay
        .put_recovery(space, recovery.id(), code.lookup(), bundle)
        .await?;
    profile.write_device_item(DeviceChange::Recovery, recovery.id(), "recovery code")?;
    let mut replaced = Vec::new();
    for old in existing {
        crate::device::revoke(profile, old).await?;
        replaced.push(old);
    }
    Ok(RecoverySet {
        code,
        key: recovery.id(),
        replaced,
    })
}

/// Restores the member on this blank (initialised, unpaired) device from the
/// recovery code: links it through the recovery key, takes every key, and
/// pulls the history. The caller then syncs, which verifies and opens it.
pub async fn restore(
    profile: &mut Profile,
    relay_url: &str,
    typed_code: &str,
) -> Result<Restored, ClientError> {
    if profile.is_paired() {
        return Err(ClientError::AlreadyPaired);
    }
    let code = RecoveryCode::parse(typed_code).map_err(|e| ClientError::Input(e.to_string()))?;
    let anonymous = RelayClient::new(relay_url, profile.identity.clone());
    let found = anonymous.recovery(code.lookup()).await.map_err(|e| {
        if crate::erased::space_gone(&e) {
            ClientError::Input(
                "this relay has no recovery bundle for that code: check it for typos, that it is the newest code (a rotated code stops working), and that this is your relay's address".into(),
            )
        } else {
            ClientError::Relay(e)
        }
    })?;
    let contents =
        open_recovery(&code, &found.bundle.0).map_err(|e| ClientError::Input(e.to_string()))?;
    let space = contents.space;
    if SpaceId::from_hex(&found.space).ok() != Some(space) {
        return Err(ClientError::Integrity(
            "the relay filed this recovery bundle under another space than the one inside it"
                .into(),
        ));
    }
    let recovery = contents.keystore.identity.clone();
    let as_recovery = RelayClient::new(relay_url, recovery.clone());
    let raw = as_recovery.roster(space).await?;
    let decoded = raw
        .iter()
        .map(|e| SignedRosterEvent::decode(e))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ClientError::Integrity(format!("the relay served a malformed roster: {e}")))?;
    let roster = Roster::verify(space, &decoded).map_err(|e| {
        ClientError::Integrity(format!(
            "the relay served a roster that does not verify: {e}"
        ))
    })?;
    match roster.device(&recovery.id()) {
        Some(d)
            if d.recovery && d.member == contents.member && roster.is_active(&recovery.id()) => {}
        _ => {
            return Err(ClientError::Input(
                "this recovery code was replaced or revoked: use the newest code you wrote down"
                    .into(),
            ))
        }
    }
    let me = profile.identity.id();
    let events = if roster.device(&me).is_some() {
        // An earlier restore got this far: the link is already there.
        raw
    } else {
        append_roster_event(
            &as_recovery,
            &recovery,
            &roster,
            &raw,
            RosterChange::Link {
                member: contents.member,
                device: profile.identity.public(),
            },
        )
        .await?
    };
    let others: Vec<DeviceId> = roster
        .devices()
        .filter(|(id, d)| {
            d.member == contents.member && !d.recovery && roster.is_active(id) && **id != me
        })
        .map(|(id, _)| *id)
        .collect();
    profile.keys = contents.keystore.keys.clone();
    profile.keys.set_member(contents.member);
    profile.save_keys()?;
    profile.enter_space(
        space,
        contents.member,
        relay_url,
        &contents.partner_name,
        &events,
    )?;
    // Keys made after the bundle was sealed were wrapped to the recovery key:
    // take them from the history before anything is opened.
    let received = crate::sync::pull(profile, &mut crate::ui::Quiet).await?;
    let roster = profile.roster()?;
    let mut taken = 0;
    let this = profile.identity.clone();
    // In history order: the wraps of epoch n+1 are sealed under epoch n, which
    // the bundle or an earlier wrap gave.
    for (_, bytes, _) in profile.db.received()? {
        let Ok(env) = Envelope::decode(&bytes) else {
            continue;
        };
        let Ok(opened) = open_envelope(&env, &roster, &profile.keys) else {
            continue;
        };
        if let Content::KeyWraps(list) = &opened.content {
            taken += absorb_wraps(&mut profile.keys, &[&recovery, &this], &roster, &env, list);
        }
    }
    if taken > 0 {
        profile.save_keys()?;
    }
    profile.recovery_identity = Some(recovery);
    Ok(Restored {
        space,
        partner_name: contents.partner_name,
        others,
        received,
    })
}

/// After a restore's sync: tells both partners (a device item).
pub fn announce_restore(profile: &mut Profile, name: &str) -> Result<(), ClientError> {
    let me = profile.identity.id();
    profile.set_device_label(name)?;
    profile.write_device_item(DeviceChange::Restored, me, name)
}
