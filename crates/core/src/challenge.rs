//! The 30-day empathy challenge: when a member starts (or stops) it, a private
//! item (under the member key, like an answer key) tells every device of that
//! member, so `today` shows the same day of the challenge on each of them.

use chrono::NaiveDate;
use rusqlite::OptionalExtension;

use crate::db::DbError;
use crate::error::ClientError;
use crate::item::Body;
use crate::profile::Profile;

/// Where a challenge started before it was shared lived: this device's settings.
const LOCAL_KEY: &str = "challenge_start";

const DAY_FORMAT: &str = "%Y-%m-%d";

fn parse_day(v: &str) -> Option<NaiveDate> {
    NaiveDate::parse_from_str(v, DAY_FORMAT).ok()
}

impl Profile {
    /// The first day of the 30-day challenge, if one is running: what the newest
    /// challenge item of this member says, from whichever of its devices.
    pub fn challenge_start(&self) -> Result<Option<NaiveDate>, ClientError> {
        let newest: Option<String> = self
            .db
            .conn()
            .query_row(
                "SELECT entry FROM items WHERE kind = 'challenge' AND mine = 1 AND readable = 1
                 ORDER BY at DESC, cursor IS NULL DESC, cursor DESC LIMIT 1",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(DbError::from)?;
        let Some(id) = newest else {
            // A challenge started on this device before it was shared.
            return Ok(self.db.get(LOCAL_KEY)?.as_deref().and_then(parse_day));
        };
        let view = self.view_around(std::slice::from_ref(&id), false)?;
        Ok(view
            .entries
            .iter()
            .find(|e| e.id.to_hex() == id)
            .and_then(|e| match &e.item.body {
                Body::Challenge { start } => start.as_deref().and_then(parse_day),
                _ => None,
            }))
    }

    /// Starts the challenge on `day`, or stops it (`None`), for all of this
    /// member's devices: the item waits in the outbox for the next push.
    pub fn set_challenge_start(&mut self, day: Option<NaiveDate>) -> Result<(), ClientError> {
        let start = day.map(|d| d.format(DAY_FORMAT).to_string());
        self.write(Body::Challenge { start }, true)?;
        self.db.set(LOCAL_KEY, "")?;
        Ok(())
    }
}
