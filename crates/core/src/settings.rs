//! Typed accessors for what a profile stores about itself (the `meta` table):
//! front-ends never read a setting by its string key.

use crate::error::ClientError;
use crate::profile::Profile;

/// The keys, in one place.
mod key {
    pub const PARTNER_NAME: &str = "partner_name";
    pub const RELAY: &str = "relay";
    pub const LAST_SYNC_MS: &str = "last_sync_ms";
    pub const DEVICE_LABEL: &str = "device_label";
    pub const MEMBER: &str = "member";
    pub const SPACE: &str = "space";
    pub const COACH: &str = "coach";
}

impl Profile {
    /// Records the space this device now belongs to (after pairing, adding it
    /// as a device, or a restore): its verified roster, relay, member and the
    /// partner's name.
    pub(crate) fn enter_space(
        &mut self,
        space: attune_proto::SpaceId,
        member: attune_proto::MemberId,
        relay_url: &str,
        partner_name: &str,
        roster: &[Vec<u8>],
    ) -> Result<(), ClientError> {
        let now = self.now();
        self.db.set_roster(roster, now)?;
        self.db.set(key::RELAY, relay_url)?;
        self.db.set(key::MEMBER, &hex::encode(member.0))?;
        self.db.set(key::PARTNER_NAME, partner_name)?;
        self.db.set(key::SPACE, &space.to_hex())?;
        Ok(())
    }

    /// The partner's name as they chose it (not yet made inert for a terminal).
    pub fn partner_name(&self) -> Result<Option<String>, ClientError> {
        Ok(self.db.get(key::PARTNER_NAME)?)
    }

    /// The relay this profile syncs with.
    pub fn relay_url(&self) -> Result<Option<String>, ClientError> {
        Ok(self.db.get(key::RELAY)?)
    }

    /// Points this profile at another relay address serving the same space (the
    /// history generator: its profiles are made through a relay on a free port).
    pub fn set_relay_url(&self, url: &str) -> Result<(), ClientError> {
        Ok(self.db.set(key::RELAY, url)?)
    }

    /// When this device last finished a sync (Unix ms).
    pub fn last_sync_ms(&self) -> Result<Option<i64>, ClientError> {
        Ok(self.db.get(key::LAST_SYNC_MS)?.and_then(|v| v.parse().ok()))
    }

    /// The name this device was given when it was added (`device join --name`).
    pub fn device_label(&self) -> Result<Option<String>, ClientError> {
        Ok(self.db.get(key::DEVICE_LABEL)?)
    }

    pub(crate) fn set_device_label(&self, name: &str) -> Result<(), ClientError> {
        Ok(self.db.set(key::DEVICE_LABEL, name)?)
    }

    /// Whether the coach's tone check runs before sending (on unless turned off).
    pub fn coach_on(&self) -> Result<bool, ClientError> {
        Ok(self.db.get(key::COACH)?.as_deref() != Some("off"))
    }

    /// Turns the coach's tone check on or off on this device.
    pub fn set_coach(&self, on: bool) -> Result<(), ClientError> {
        Ok(self.db.set(key::COACH, if on { "on" } else { "off" })?)
    }

    pub(crate) fn set_last_sync_ms(&self, ms: i64) -> Result<(), ClientError> {
        Ok(self.db.set(key::LAST_SYNC_MS, &ms.to_string())?)
    }
}
