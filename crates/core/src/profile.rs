//! One device's profile: its home directory, keystore, local database and the
//! operations on them (write an item, sync, build the verified view).

use std::path::{Path, PathBuf};

use attune_crypto::{
    keystore_is_locked, open_keystore, seal_envelope, seal_keystore, write_keystore_file,
    DeviceIdentity, KdfParams, Keyring, KeystoreContents, KeystoreError, KeystoreKey, Protection,
    SeenHead,
};
use attune_proto::{
    DeviceId, EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, Roster,
    SignedRosterEvent, SpaceId,
};
use zeroize::Zeroizing;

use crate::db::LocalDb;
pub use crate::entry::{deletable, Entry, Problem};
pub use crate::error::{io_err, ClientError};
use crate::item::{Body, Head, Item, RosterHead};
use crate::relay::RelayClient;

pub const KEYSTORE_FILE: &str = "keystore.attune";
pub const DB_FILE: &str = "state.sqlite3";

/// The current time in Unix milliseconds. `ATTUNE_TEST_NOW_MS` overrides it, for
/// tests that need a history spread over many days.
pub fn now_ms() -> i64 {
    if let Some(ms) = std::env::var("ATTUNE_TEST_NOW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return ms;
    }
    crate::relay::now_ms()
}

/// Where a profile reads the time for what it writes and records (item times,
/// acknowledgements, syncs). `System` is [`now_ms`]; a library caller that writes
/// a history at chosen times (the history generator) sets `At(ms)` before each
/// step. Request signatures always use the real clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Clock {
    #[default]
    System,
    At(i64),
}

impl Clock {
    pub fn now(self) -> i64 {
        match self {
            Clock::System => now_ms(),
            Clock::At(ms) => ms,
        }
    }
}

/// Where a profile lives: `--home`, `ATTUNE_HOME`, or the platform data directory.
pub fn resolve_home(explicit: Option<PathBuf>) -> Result<PathBuf, ClientError> {
    if let Some(h) = explicit {
        return Ok(h);
    }
    directories::ProjectDirs::from("org", "attune", "attune")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| ClientError::Input("no home directory found: pass --home DIR".into()))
}

/// Everything this device can read, verified, plus the problems found.
#[derive(Debug, Default)]
pub struct View {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    pub heads: Vec<SeenHead>,
    /// The practices derived from the entries (blind exchanges, reflections, pauses).
    pub practice: crate::practice::Practice,
    /// Each partner's check-in streak (mine, theirs) as the store counted it,
    /// when the view holds only part of the history.
    pub streaks: Option<(usize, usize)>,
}

pub struct Profile {
    pub home: PathBuf,
    pub db: LocalDb,
    pub identity: DeviceIdentity,
    pub keys: Keyring,
    pub clock: Clock,
    passphrase: Option<Zeroizing<String>>,
    /// The stretched keystore key an unlock agent served (then no passphrase).
    unlocked: Option<KeystoreKey>,
    /// During a restore: the recovery key's identity, whose key wraps this
    /// device also takes (keys made after the recovery was set up).
    pub(crate) recovery_identity: Option<DeviceIdentity>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("home", &self.home)
            .finish_non_exhaustive()
    }
}

impl Profile {
    /// Creates a device identity in `home`.
    pub fn init(
        home: &Path,
        name: &str,
        passphrase: Option<Zeroizing<String>>,
    ) -> Result<Self, ClientError> {
        let ks = home.join(KEYSTORE_FILE);
        if ks.exists() {
            return Err(ClientError::AlreadyInitialised(home.to_path_buf()));
        }
        std::fs::create_dir_all(home).map_err(io_err(home))?;
        #[cfg(unix)]
        {
            // The profile holds keys and the local copy: readable by its owner only.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(home, std::fs::Permissions::from_mode(0o700))
                .map_err(io_err(home))?;
        }
        let db = LocalDb::open(&home.join(DB_FILE))?;
        db.set("device_name", name)?;
        let profile = Self {
            home: home.to_path_buf(),
            db,
            identity: DeviceIdentity::generate(),
            keys: Keyring::new(),
            clock: Clock::System,
            passphrase,
            unlocked: None,
            recovery_identity: None,
        };
        profile.save_keys()?;
        Ok(profile)
    }

    /// Loads the profile in `home`, asking `source` for the passphrase if the
    /// keystore is locked (again after a wrong one, as often as it allows).
    /// `Profile::open_with` (store.rs) also brings the store up to date.
    pub(crate) fn load(
        home: &Path,
        source: &mut dyn crate::ui::PassphraseSource,
    ) -> Result<Self, ClientError> {
        let ks = home.join(KEYSTORE_FILE);
        let bytes = match std::fs::read(&ks) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotInitialised(home.to_path_buf()))
            }
            Err(e) => return Err(io_err(&ks)(e)),
        };
        let locked = keystore_is_locked(&bytes)?;
        // An unlocked session (`attune unlock`) serves the stretched key: no
        // Argon2, no prompt. Without one, the passphrase.
        let unlocked = locked
            .then(|| crate::agent::open_with_agent(home, &bytes))
            .flatten();
        let (contents, passphrase, unlocked) = if let Some((key, contents)) = unlocked {
            (contents, None, Some(key))
        } else if locked {
            let mut attempt = 1;
            loop {
                let p = source.passphrase(attempt)?;
                match open_keystore(&bytes, Some(p.as_bytes())) {
                    Ok(c) => break (c, Some(p), None),
                    Err(KeystoreError::WrongPassphrase) if attempt < source.attempts() => {
                        attempt += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
        } else {
            (open_keystore(&bytes, None)?, None, None)
        };
        let db = LocalDb::open(&home.join(DB_FILE))?;
        let mut profile = Self {
            home: home.to_path_buf(),
            db,
            identity: contents.identity,
            keys: contents.keys,
            clock: Clock::System,
            passphrase,
            unlocked,
            recovery_identity: None,
        };
        if let Ok(member) = profile.member() {
            profile.keys.set_member(member);
        }
        Ok(profile)
    }

    pub fn save_keys(&self) -> Result<(), ClientError> {
        let contents = KeystoreContents {
            identity: self.identity.clone(),
            keys: self.keys.clone(),
        };
        let protection = match &self.passphrase {
            Some(p) => Protection::Passphrase(p.as_bytes(), KdfParams::DEFAULT),
            None => Protection::Unprotected,
        };
        let bytes = match &self.unlocked {
            // Same salt, fresh nonce: the agent's key keeps opening it.
            Some(key) => key.seal(&contents)?,
            None => seal_keystore(&contents, protection)?,
        };
        let path = self.home.join(KEYSTORE_FILE);
        write_keystore_file(&path, &bytes)?;
        Ok(())
    }

    /// Forgets the space: its keys and this device's copy. The identity stays, so
    /// the device can pair again.
    pub fn reset_local(mut self) -> Result<(), ClientError> {
        let name = self.name();
        self.keys = Keyring::new();
        self.save_keys()?;
        let home = self.home.clone();
        drop(self);
        for f in [DB_FILE, "state.sqlite3-wal", "state.sqlite3-shm"] {
            let path = home.join(f);
            if path.exists() {
                std::fs::remove_file(&path).map_err(io_err(&path))?;
            }
        }
        LocalDb::open(&home.join(DB_FILE))?.set("device_name", &name)?;
        Ok(())
    }

    /// The time by this profile's clock.
    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    pub fn name(&self) -> String {
        self.db
            .get("device_name")
            .ok()
            .flatten()
            .unwrap_or_default()
    }

    pub fn space(&self) -> Result<SpaceId, ClientError> {
        let hex = self.db.get("space")?.ok_or(ClientError::NotPaired)?;
        SpaceId::from_hex(&hex).map_err(|_| ClientError::Corrupt("space id".into()))
    }

    pub fn is_paired(&self) -> bool {
        matches!(self.db.get("space"), Ok(Some(_)))
    }

    pub fn relay(&self) -> Result<RelayClient, ClientError> {
        let url = self.db.get("relay")?.ok_or(ClientError::NotPaired)?;
        Ok(RelayClient::new(&url, self.identity.clone()))
    }

    pub fn member(&self) -> Result<MemberId, ClientError> {
        let hex = self.db.get("member")?.ok_or(ClientError::NotPaired)?;
        let mut m = [0u8; 16];
        hex::decode_to_slice(hex, &mut m).map_err(|_| ClientError::Corrupt("member id".into()))?;
        Ok(MemberId(m))
    }

    pub fn roster(&self) -> Result<Roster, ClientError> {
        let events = self
            .db
            .roster()?
            .iter()
            .map(|e| SignedRosterEvent::decode(e))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ClientError::Corrupt(format!("stored roster: {e}")))?;
        Roster::verify(self.space()?, &events)
            .map_err(|e| ClientError::Corrupt(format!("stored roster: {e}")))
    }

    /// Seals an item and puts it in the outbox: nothing touches the network here.
    pub fn write(&mut self, body: Body, private: bool) -> Result<EntryId, ClientError> {
        self.write_item(body, private, None, None, Extra::default())
    }

    /// Holds an item on this device until `send_at`, sealed under the member key;
    /// it can be withdrawn until then. Returns the hold's id, which is the entry id
    /// the item is sent under (`release_due`), so it names the item throughout.
    pub fn hold(&mut self, body: Body, private: bool, send_at: i64) -> Result<String, ClientError> {
        let blob = self.seal_held(&body)?;
        let id = hex::encode(attune_crypto::secret::random_array::<16>());
        self.db.add_later(&id, send_at, private, &blob)?;
        Ok(id)
    }

    /// Queues every held item whose time has come. Each is released and queued in
    /// one transaction, so none is lost or sent twice.
    pub fn release_due(&mut self) -> Result<usize, ClientError> {
        let now = self.now();
        let mut released = 0;
        for (id, send_at, private, blob) in self.db.later()? {
            if send_at > now {
                continue;
            }
            let body = self.open_held(&blob)?;
            self.write_item(body, private, Some(&id), Some(send_at), Extra::default())?;
            released += 1;
        }
        Ok(released)
    }

    pub fn open_held(&self, blob: &[u8]) -> Result<Body, ClientError> {
        let key = self
            .keys
            .get(&KeyId::MemberPrivate(0))
            .ok_or_else(|| ClientError::Corrupt("missing member key".into()))?;
        let plain = attune_crypto::local::open_local(key, b"later", blob)
            .map_err(|e| ClientError::Corrupt(e.to_string()))?;
        serde_json::from_slice(&plain).map_err(|e| ClientError::Corrupt(e.to_string()))
    }

    /// The item `body` becomes when written now, at `at`: with the heads and
    /// roster this device has seen.
    fn item_at(&self, body: Body, at: i64) -> Result<Item, ClientError> {
        let heads: Vec<Head> = self
            .db
            .get("heads")?
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default();
        let seen_at = self.last_sync_ms()?;
        let roster = self.db.roster()?;
        let roster = roster
            .last()
            .and_then(|e| SignedRosterEvent::decode(e).ok())
            .map(|e| RosterHead {
                len: roster.len() as u64,
                hash: e.hash().to_hex(),
            });
        Ok(Item {
            v: 1,
            at,
            body,
            heads,
            seen_at,
            roster,
        })
    }

    /// Whether `body`, written at `at`, fits in one item (its sealed plaintext
    /// and its content type byte are at most `attune_crypto::padding::MAX_PLAINTEXT`
    /// bytes). Writing a body that does not fit fails; this says so before
    /// anything is written.
    pub fn fits(&self, body: Body, at: i64) -> Result<bool, ClientError> {
        let item = self.item_at(body, at)?;
        Ok(item.to_bytes().len() < attune_crypto::padding::MAX_PLAINTEXT)
    }

    /// The entry id this device gives an imported item from `source` (a
    /// description of where it came from: format, original id, time, text).
    fn import_id(&self, device: &DeviceId, source: &[u8]) -> Result<EntryId, ClientError> {
        let key = self
            .keys
            .get(&KeyId::MemberPrivate(0))
            .ok_or_else(|| ClientError::Corrupt("missing member key".into()))?;
        Ok(attune_crypto::derive_import_id(
            key,
            &self.space()?,
            device,
            source,
        ))
    }

    /// The item an earlier import of `source` wrote, on this device or on
    /// another of this member's devices (once it has arrived here), if any.
    pub fn imported(&self, source: &[u8]) -> Result<Option<EntryId>, ClientError> {
        let me = self.identity.id();
        let member = self.member()?;
        let roster = self.roster()?;
        let mut devices = vec![me];
        devices.extend(
            roster
                .devices()
                .filter(|(id, d)| d.member == member && **id != me)
                .map(|(id, _)| *id),
        );
        for device in devices {
            let id = self.import_id(&device, source)?;
            if self.db.has_item(&id.to_hex())? {
                return Ok(Some(id));
            }
        }
        Ok(None)
    }

    /// Writes an imported journal entry with its original time `at` into the
    /// outbox, under the entry id derived from `source` (see
    /// `attune_crypto::derive_import_id`), unless an earlier import of the same
    /// source is here already. Nothing touches the network.
    pub fn import_journal(
        &mut self,
        source: &[u8],
        text: String,
        private: bool,
        at: i64,
    ) -> Result<Imported, ClientError> {
        if let Some(id) = self.imported(source)? {
            return Ok(Imported::AlreadyHere(id));
        }
        let entry = self.import_id(&self.identity.id(), source)?;
        let written = self.write_item(
            Body::Journal { text },
            private,
            None,
            Some(at),
            Extra {
                entry: Some(entry),
                held: None,
            },
        );
        match written {
            Ok(id) => Ok(Imported::Written(id)),
            // Another import of the same file on this device wrote it meanwhile
            // (the outbox takes an entry id once).
            Err(_) if self.db.has_item(&entry.to_hex())? => Ok(Imported::AlreadyHere(entry)),
            Err(e) => Err(e),
        }
    }

    fn write_item(
        &mut self,
        body: Body,
        private: bool,
        consume_later: Option<&str>,
        at: Option<i64>,
        extra: Extra,
    ) -> Result<EntryId, ClientError> {
        let space = self.space()?;
        let key_id = if private {
            self.keys
                .current_private()
                .ok_or_else(|| ClientError::Corrupt("no member-private key".into()))?
        } else {
            self.keys
                .current_epoch()
                .ok_or_else(|| ClientError::Corrupt("no epoch key".into()))?
        };
        let key = self
            .keys
            .get(&key_id)
            .ok_or_else(|| ClientError::Corrupt("missing key".into()))?;
        let item = self.item_at(body, at.unwrap_or_else(|| self.now()))?;
        // A held item is sent under the id it was held as.
        let entry = extra
            .entry
            .or_else(|| consume_later.and_then(|id| EntryId::from_hex(id).ok()))
            .unwrap_or_else(|| EntryId(attune_crypto::secret::random_array()));
        let plaintext = Zeroizing::new(item.to_bytes());
        let identity = &self.identity;
        let author = identity.id();
        let now = self.now();
        self.db.enqueue_next(
            now,
            consume_later,
            extra.held.as_deref(),
            |seq, prev| {
                let header = chain_header(space, author, entry, seq, prev)?;
                let env = seal_envelope(identity, header, key_id, key, &plaintext)
                    .map_err(|e| ClientError::Input(format!("cannot seal this item: {e}")))?;
                Ok::<_, ClientError>((entry.0.to_vec(), env.encode(), env.hash().to_hex(), ()))
            },
            |tx, seq, bytes| {
                let env = Envelope::decode(bytes)
                    .map_err(|e| ClientError::Corrupt(format!("own envelope: {e}")))?;
                crate::index::index_written(tx, &env, seq, &item, private)
            },
        )?;
        Ok(entry)
    }

    /// Seals an answer to `exercise` (an exercise, or a check-in exchange the
    /// partner opened): one envelope to both partners, whose key this member's
    /// devices derive and whose hold slot the relay releases to the partner once
    /// their own answer is in (PROTOCOL.md §9).
    pub fn seal_answer(
        &mut self,
        exercise: &str,
        answer: &crate::item::Answer,
    ) -> Result<EntryId, ClientError> {
        self.seal_into(Some(exercise), answer, None)
    }

    /// Opens a new check-in exchange with this answer: its id is the sealed
    /// answer's own entry id.
    pub fn open_exchange(&mut self, answer: &crate::item::Answer) -> Result<EntryId, ClientError> {
        self.seal_into(None, answer, None)
    }

    /// Seals `answer` into `exchange` (a new one, named after the answer, when
    /// `None`); `moved_from` names the own exchange it moves from.
    pub(crate) fn seal_into(
        &mut self,
        exchange: Option<&str>,
        answer: &crate::item::Answer,
        moved_from: Option<String>,
    ) -> Result<EntryId, ClientError> {
        let space = self.space()?;
        let entry = EntryId(attune_crypto::secret::random_array());
        let exchange_id = match exchange {
            Some(x) => {
                EntryId::from_hex(x).map_err(|_| ClientError::Input("bad exercise id".into()))?
            }
            None => entry,
        };
        let exercise = exchange_id.to_hex();
        let ctx = attune_proto::AnswerContext {
            space,
            exercise: exchange_id,
            author: self.identity.id(),
        };
        let plain = Zeroizing::new(answer.to_bytes());
        // The key comes from the member-private key, so this member's own
        // devices derive it from the envelope alone; the partner gets it from
        // the hold slot the relay releases once their own answer is in.
        let gen = match self.keys.current_private() {
            Some(KeyId::MemberPrivate(g)) => g,
            _ => return Err(ClientError::Corrupt("no member-private key".into())),
        };
        let key = attune_crypto::own_answer_key(&self.keys, &space, gen, &entry)
            .map_err(|e| ClientError::Corrupt(format!("cannot derive the answer key: {e}")))?;
        let sealed = attune_crypto::seal_answer_under(&ctx, &plain, &key)
            .map_err(|e| ClientError::Input(format!("cannot seal this answer: {e}")))?;
        let hold = attune_crypto::seal_hold(&self.keys, &space, &exchange_id, &entry, &key)
            .map_err(|e| ClientError::Corrupt(format!("cannot seal the hold slot: {e}")))?;
        self.write_item(
            Body::Sealed {
                exercise,
                sealed: attune_proto::api::b64(&sealed.encode()),
                moved_from,
                gen: Some(gen),
            },
            false,
            None,
            None,
            Extra {
                entry: Some(entry),
                held: Some(hold.encode()),
            },
        )
    }
}

/// What [`Profile::import_journal`] did with one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Imported {
    /// Written into the outbox under this id.
    Written(EntryId),
    /// An earlier import wrote it (this id); nothing was written.
    AlreadyHere(EntryId),
}

/// The header of this device's next envelope: number `seq`, chained to the
/// hash of its previous one (`None` for the first).
pub(crate) fn chain_header(
    space: SpaceId,
    author: attune_proto::DeviceId,
    entry: EntryId,
    seq: u64,
    prev: Option<String>,
) -> Result<EnvelopeHeader, ClientError> {
    let prev = match prev {
        Some(h) => Hash32::from_hex(&h).map_err(|_| ClientError::Corrupt("own chain".into()))?,
        None => Hash32::ZERO,
    };
    Ok(EnvelopeHeader {
        space,
        author,
        seq,
        prev,
        legacy_key: None,
        entry,
    })
}

/// What some writes add: a chosen entry id, and a held reveal to send with it.
#[derive(Debug, Default)]
struct Extra {
    entry: Option<EntryId>,
    held: Option<Vec<u8>>,
}

/// Where sync records a roster event it refused because it would retract what
/// was already accepted.
pub const RETRACTION_KEY: &str = "retraction";

#[cfg(test)]
mod tests {
    use crate::problems::{heads_problem, HeadsContext};
    use attune_crypto::HeadsProblem;
    use attune_proto::DeviceId;

    #[test]
    fn an_impossible_account_of_this_devices_chain_blames_its_signer() {
        let me = DeviceId([1; 32]);
        let other = DeviceId([2; 32]);
        let c = HeadsContext {
            me,
            own_max: 3,
            own_has: &|_| false,
            author_name: "Sam's",
            cursor: 9,
        };
        let p = heads_problem(
            HeadsProblem::Withheld {
                device: me,
                have: 3,
                seen: 7,
            },
            &c,
        );
        assert_eq!(p.kind, "false_heads");
        assert!(p.detail.starts_with("Sam's item says"), "{}", p.detail);
        // Not yet served back to this device: the relay's doing.
        let p = heads_problem(
            HeadsProblem::Withheld {
                device: me,
                have: 2,
                seen: 3,
            },
            &c,
        );
        assert_eq!(p.kind, "withheld");
        let p = heads_problem(
            HeadsProblem::Withheld {
                device: other,
                have: 2,
                seen: 5,
            },
            &c,
        );
        assert_eq!(p.kind, "withheld");
        assert!(p.detail.contains("the relay"), "{}", p.detail);
    }
}
