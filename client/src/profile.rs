//! One device's profile: its home directory, keystore, local database and the
//! operations on them (write an item, sync, build the verified view).

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use attune_crypto::{
    keystore_is_locked, open_keystore, seal_envelope, seal_keystore, write_keystore_file,
    ChainVerifier, Class, DeviceIdentity, KdfParams, Keyring, KeystoreContents, KeystoreError,
    Protection, SeenHead,
};
use attune_proto::{
    DeviceId, EntryId, Envelope, EnvelopeHeader, Hash32, KeyId, MemberId, Roster,
    SignedRosterEvent, SpaceId,
};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::db::{DbError, LocalDb};
use crate::item::{Body, Head, Item, RosterHead};
use crate::relay::{RelayClient, RelayError};

pub const KEYSTORE_FILE: &str = "keystore.attune";
pub const DB_FILE: &str = "state.sqlite3";

#[derive(Debug, Error)]
pub enum ClientError {
    #[error("this device has no identity yet in {0}: run `attune init --name NAME` first")]
    NotInitialised(PathBuf),
    #[error("this device already has an identity in {0}; use another --home for a second profile")]
    AlreadyInitialised(PathBuf),
    #[error("this device is not paired yet: run `attune pair invite --relay URL` or `attune pair join CODE --relay URL`")]
    NotPaired,
    #[error("this device is already paired; `attune leave` first to pair again")]
    AlreadyPaired,
    #[error("the keystore is locked: type the passphrase in a terminal, or set ATTUNE_PASSPHRASE")]
    PassphraseNeeded,
    #[error("wrong passphrase for the keystore")]
    WrongPassphrase,
    #[error("the keystore could not be opened: {0}")]
    Keystore(KeystoreError),
    #[error("{0}")]
    Relay(#[from] RelayError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Pairing(String),
    #[error("could not read or write {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the local state is inconsistent: {0}")]
    Corrupt(String),
    /// Something served by the relay (or signed by the partner) breaks the rules
    /// that keep the history honest. Exit code 3, like the problems a view finds.
    #[error("{0}")]
    Integrity(String),
}

impl ClientError {
    /// The process exit code for this error: 3 for integrity problems, else 1.
    pub fn exit_code(&self) -> i32 {
        match self {
            ClientError::Integrity(_) => 3,
            _ => 1,
        }
    }
}

impl From<KeystoreError> for ClientError {
    fn from(e: KeystoreError) -> Self {
        match e {
            KeystoreError::WrongPassphrase => ClientError::WrongPassphrase,
            KeystoreError::PassphraseRequired => ClientError::PassphraseNeeded,
            e => ClientError::Keystore(e),
        }
    }
}

pub fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ClientError + '_ {
    move |source| ClientError::Io {
        path: path.to_path_buf(),
        source,
    }
}

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

/// Where a profile lives: `--home`, `ATTUNE_HOME`, or the platform data directory.
pub fn resolve_home(explicit: Option<PathBuf>) -> Result<PathBuf, ClientError> {
    if let Some(h) = explicit {
        return Ok(h);
    }
    directories::ProjectDirs::from("org", "attune", "attune")
        .map(|d| d.data_dir().to_path_buf())
        .ok_or_else(|| ClientError::Input("no home directory found: pass --home DIR".into()))
}

/// How the passphrase is obtained: `ATTUNE_PASSPHRASE`, else a prompt on a terminal.
pub fn read_passphrase(prompt: &str) -> Result<Zeroizing<String>, ClientError> {
    if let Ok(p) = std::env::var("ATTUNE_PASSPHRASE") {
        return Ok(Zeroizing::new(p));
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::PassphraseNeeded);
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|_| ClientError::PassphraseNeeded)
}

/// A verified, readable item.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: EntryId,
    pub cursor: Option<u64>,
    pub author: DeviceId,
    pub mine: bool,
    pub private: bool,
    pub pending: bool,
    pub item: Item,
    /// The latest text after edits, and whether it was deleted.
    pub edited: bool,
    pub deleted: bool,
}

/// An integrity problem found in what the relay served.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Problem {
    pub kind: String,
    pub detail: String,
    pub cursor: Option<u64>,
}

/// Everything this device can read, verified, plus the problems found.
#[derive(Debug, Default)]
pub struct View {
    pub entries: Vec<Entry>,
    pub problems: Vec<Problem>,
    pub heads: Vec<SeenHead>,
    /// The practices derived from the entries (blind exchanges, reflections, pauses).
    pub practice: crate::practice::Practice,
}

pub struct Profile {
    pub home: PathBuf,
    pub db: LocalDb,
    pub identity: DeviceIdentity,
    pub keys: Keyring,
    passphrase: Option<Zeroizing<String>>,
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
            passphrase,
        };
        profile.save_keys()?;
        Ok(profile)
    }

    /// Opens the profile in `home`, asking for the passphrase if the keystore is locked.
    pub fn open(home: &Path) -> Result<Self, ClientError> {
        let ks = home.join(KEYSTORE_FILE);
        let bytes = match std::fs::read(&ks) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(ClientError::NotInitialised(home.to_path_buf()))
            }
            Err(e) => return Err(io_err(&ks)(e)),
        };
        let passphrase = if keystore_is_locked(&bytes)? {
            Some(read_passphrase("attune passphrase: ")?)
        } else {
            None
        };
        let contents = open_keystore(&bytes, passphrase.as_ref().map(|p| p.as_bytes()))?;
        let db = LocalDb::open(&home.join(DB_FILE))?;
        let mut profile = Self {
            home: home.to_path_buf(),
            db,
            identity: contents.identity,
            keys: contents.keys,
            passphrase,
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
        let bytes = seal_keystore(&contents, protection)?;
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

    /// The highest envelope number of `device` that this device holds with a valid
    /// signature of it (0 if none): what a revocation of it may not retract.
    pub fn highest_signed_seq(
        &self,
        device: &DeviceId,
        roster: &Roster,
    ) -> Result<u64, ClientError> {
        let Some(key) = roster.device(device).map(|d| d.public.sign) else {
            return Ok(0);
        };
        let mut best = 0;
        if *device == self.identity.id() {
            best = self.db.acked_times()?.last().map_or(0, |(seq, _)| *seq);
        }
        for (_, bytes, _) in self.db.received()? {
            if let Ok(env) = Envelope::decode(&bytes) {
                if env.header.author == *device
                    && env.header.seq > best
                    && env.verify_signature(&key).is_ok()
                {
                    best = env.header.seq;
                }
            }
        }
        Ok(best)
    }

    /// Seals an item and puts it in the outbox: nothing touches the network here.
    pub fn write(&mut self, body: Body, private: bool) -> Result<EntryId, ClientError> {
        self.write_item(body, private, None, None)
    }

    /// Holds an item on this device until `send_at`, sealed under the member key;
    /// it can be withdrawn until then. Returns the hold's id.
    pub fn hold(&mut self, body: Body, private: bool, send_at: i64) -> Result<String, ClientError> {
        let key = self
            .keys
            .get(&KeyId::MemberPrivate(0))
            .ok_or_else(|| ClientError::Corrupt("missing member key".into()))?;
        let plain = Zeroizing::new(serde_json::to_vec(&body).unwrap_or_default());
        let blob = attune_crypto::local::seal_local(key, b"later", &plain)
            .map_err(|e| ClientError::Corrupt(e.to_string()))?;
        let id = hex::encode(attune_crypto::secret::random_array::<16>());
        self.db.add_later(&id, send_at, private, &blob)?;
        Ok(id)
    }

    /// Queues every held item whose time has come. Each is released and queued in
    /// one transaction, so none is lost or sent twice.
    pub fn release_due(&mut self) -> Result<usize, ClientError> {
        let now = now_ms();
        let mut released = 0;
        for (id, send_at, private, blob) in self.db.later()? {
            if send_at > now {
                continue;
            }
            let body = self.open_held(&blob)?;
            self.write_item(body, private, Some(&id), Some(send_at))?;
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

    fn write_item(
        &mut self,
        body: Body,
        private: bool,
        consume_later: Option<&str>,
        at: Option<i64>,
    ) -> Result<EntryId, ClientError> {
        let space = self.space()?;
        let key_id = if private {
            KeyId::MemberPrivate(0)
        } else {
            self.keys
                .current_epoch()
                .ok_or_else(|| ClientError::Corrupt("no epoch key".into()))?
        };
        let key = self
            .keys
            .get(&key_id)
            .ok_or_else(|| ClientError::Corrupt("missing key".into()))?;
        let heads: Vec<Head> = self
            .db
            .get("heads")?
            .and_then(|h| serde_json::from_str(&h).ok())
            .unwrap_or_default();
        let seen_at = self.db.get("last_sync_ms")?.and_then(|v| v.parse().ok());
        let roster = self.db.roster()?;
        let roster = roster
            .last()
            .and_then(|e| SignedRosterEvent::decode(e).ok())
            .map(|e| RosterHead {
                len: roster.len() as u64,
                hash: e.hash().to_hex(),
            });
        let item = Item {
            v: 1,
            at: at.unwrap_or_else(now_ms),
            body,
            heads,
            seen_at,
            roster,
        };
        let entry = EntryId(attune_crypto::secret::random_array());
        let plaintext = Zeroizing::new(item.to_bytes());
        let identity = &self.identity;
        let author = identity.id();
        self.db.enqueue_next(now_ms(), consume_later, |seq, prev| {
            let prev = match prev {
                Some(h) => {
                    Hash32::from_hex(&h).map_err(|_| ClientError::Corrupt("own chain".into()))?
                }
                None => Hash32::ZERO,
            };
            let header = EnvelopeHeader {
                space,
                author,
                seq,
                prev,
                key: key_id,
                entry,
            };
            let env = seal_envelope(identity, header, key, &plaintext)
                .map_err(|e| ClientError::Input(format!("cannot seal this item: {e}")))?;
            Ok::<_, ClientError>((entry.0.to_vec(), env.encode(), env.hash().to_hex(), ()))
        })?;
        Ok(entry)
    }

    /// Seals an answer under a fresh key (DESIGN.md §4): the key goes privately to
    /// this member's own devices, the sealed answer to both partners.
    pub fn seal_answer(
        &mut self,
        exercise: &str,
        answer: &crate::item::Answer,
    ) -> Result<EntryId, ClientError> {
        let ctx = attune_proto::AnswerContext {
            space: self.space()?,
            exercise: EntryId::from_hex(exercise)
                .map_err(|_| ClientError::Input("bad exercise id".into()))?,
            author: self.identity.id(),
        };
        let plain = Zeroizing::new(answer.to_bytes());
        let (sealed, key) = attune_crypto::seal_answer(&ctx, &plain)
            .map_err(|e| ClientError::Input(format!("cannot seal this answer: {e}")))?;
        self.write(
            Body::AnswerKey {
                exercise: exercise.to_string(),
                key: attune_proto::api::b64(key.expose()),
            },
            true,
        )?;
        self.write(
            Body::Sealed {
                exercise: exercise.to_string(),
                sealed: attune_proto::api::b64(&sealed.encode()),
            },
            false,
        )
    }

    /// Verifies everything received, in the order the relay served it, and adds the
    /// outbox (own items not yet acknowledged).
    pub fn view(&self) -> Result<View, ClientError> {
        let roster = self.roster()?;
        let my_member = roster.device(&self.identity.id()).map(|d| d.member);
        let mut verifier = ChainVerifier::new(roster.clone());
        let mut view = View::default();
        // A retraction the partner signed stays reported for good (see sync).
        if let Some(p) = self
            .db
            .get(RETRACTION_KEY)?
            .and_then(|j| serde_json::from_str::<Problem>(&j).ok())
        {
            view.problems.push(p);
        }
        let mut claims: Vec<Claim> = Vec::new();
        let partner = self
            .db
            .get("partner_name")?
            .unwrap_or_else(|| "your partner".into());
        let mut raw: Vec<Entry> = Vec::new();
        // What this device wrote itself, by sequence number: the relay must serve
        // exactly these back.
        let me = self.identity.id();
        let own: std::collections::HashMap<u64, Envelope> = self
            .db
            .own_envelopes()?
            .iter()
            .filter_map(|q| Envelope::decode(&q.envelope).ok())
            .map(|e| (e.header.seq, e))
            .collect();
        let own_max = own.keys().max().copied().unwrap_or(0);
        for (cursor, bytes, _) in self.db.received()? {
            let mut env = match Envelope::decode(&bytes) {
                Ok(e) => e,
                Err(e) => {
                    view.problems.push(Problem {
                        kind: "malformed".into(),
                        detail: format!("the relay served bytes that are not an envelope: {e}"),
                        cursor: Some(cursor),
                    });
                    continue;
                }
            };
            if env.header.author == me {
                if let Some(mine) = own.get(&env.header.seq) {
                    if *mine != env {
                        view.problems.push(Problem {
                            kind: "fork".into(),
                            detail: format!(
                                "the relay serves a different envelope {} for this device than the one it wrote: a forged or forked history",
                                env.header.seq
                            ),
                            cursor: Some(cursor),
                        });
                        // Keep verifying with what this device actually wrote.
                        env = mine.clone();
                    }
                }
            }
            for checked in verifier.check(&env, &self.keys) {
                let h = checked.envelope.header;
                if !checked.class.is_accepted() {
                    view.problems
                        .push(describe(checked.class, &h, cursor, &roster));
                    continue;
                }
                if checked.class == Class::Reordered {
                    view.problems
                        .push(describe(checked.class, &h, cursor, &roster));
                }
                let Some(plain) = checked.plaintext else {
                    continue; // the partner's private entries: not ours to read
                };
                let Ok(item) = Item::from_bytes(&plain) else {
                    view.problems.push(Problem {
                        kind: "unreadable".into(),
                        detail: format!("item {} decrypted but is not a known format", h.entry),
                        cursor: Some(cursor),
                    });
                    continue;
                };
                let heads: Vec<SeenHead> = item
                    .heads
                    .iter()
                    .filter_map(|hd| {
                        Some(SeenHead {
                            device: DeviceId::from_hex(&hd.device).ok()?,
                            seq: hd.seq,
                            hash: Hash32::from_hex(&hd.hash).ok()?,
                        })
                    })
                    .filter(|s| s.device != h.author)
                    .collect();
                let author_member = roster.device(&h.author).map(|d| d.member);
                let author_name = if author_member.is_some() && author_member != my_member {
                    format!("{partner}'s")
                } else {
                    "your other device's".to_string()
                };
                for p in verifier.check_heads(&heads) {
                    view.problems.push(heads_problem(
                        p,
                        &HeadsContext {
                            me,
                            own_max,
                            own: &own,
                            author_name: &author_name,
                            cursor,
                        },
                    ));
                }
                if author_member.is_some() && author_member != my_member {
                    if let Some(seen_at) = item.seen_at {
                        claims.push(Claim {
                            seen_at,
                            of_me: heads.iter().find(|s| s.device == me).map_or(0, |s| s.seq),
                            roster: item.roster.clone(),
                        });
                    }
                }
                raw.push(Entry {
                    id: h.entry,
                    cursor: Some(cursor),
                    author: h.author,
                    mine: author_member.is_some() && author_member == my_member,
                    private: matches!(h.key, KeyId::MemberPrivate(_)),
                    pending: false,
                    item,
                    edited: false,
                    deleted: false,
                });
            }
        }
        view.heads = verifier.heads();
        if let Some((seq, _, _)) = withheld_from_partner(&claims, &self.db.acked_times()?) {
            view.problems.push(Problem {
                kind: "withheld_from_partner".into(),
                detail: format!(
                    "{partner}'s devices have not received your envelope {seq}, although they synced well after the relay accepted it: the relay may be withholding it from {partner}"
                ),
                cursor: None,
            });
        }
        if self.db.get(RETRACTION_KEY)?.is_none() {
            let events = self.db.roster()?;
            view.problems
                .extend(roster_disagreements(&claims, &events, &partner));
        }
        // Own items this device wrote that the relay has not served back (yet).
        let unacked: std::collections::HashSet<u64> =
            self.db.outbox()?.iter().map(|q| q.seq).collect();
        for q in self.db.own_envelopes()? {
            let Ok(env) = Envelope::decode(&q.envelope) else {
                continue;
            };
            if raw.iter().any(|e| e.id == env.header.entry) {
                continue;
            }
            if let Ok(plain) = attune_crypto::open_envelope(&env, &roster, &self.keys) {
                if let Ok(item) = Item::from_bytes(&plain) {
                    raw.push(Entry {
                        id: env.header.entry,
                        cursor: None,
                        author: env.header.author,
                        mine: true,
                        private: matches!(env.header.key, KeyId::MemberPrivate(_)),
                        pending: unacked.contains(&q.seq),
                        item,
                        edited: false,
                        deleted: false,
                    });
                }
            }
        }
        view.entries = apply_edits(raw, &roster);
        view.practice = crate::practice::fold(&view.entries, roster.space());
        view.problems.append(&mut view.practice.problems);
        Ok(view)
    }
}

/// What `heads_problem` needs to know about this device and the item's author.
struct HeadsContext<'a> {
    me: DeviceId,
    own_max: u64,
    own: &'a std::collections::HashMap<u64, Envelope>,
    author_name: &'a str,
    cursor: u64,
}

/// Describes a disagreement between an item's heads and this device's chains.
/// A claim about this device's own chain that cannot be true (an envelope it never
/// wrote, or a different one than it wrote, which the relay cannot forge) is the
/// item's author's doing, and the warning says so.
fn heads_problem(p: attune_crypto::HeadsProblem, c: &HeadsContext<'_>) -> Problem {
    use attune_crypto::HeadsProblem;
    let who = c.author_name;
    let (kind, detail) = match p {
        HeadsProblem::Withheld { device, seen, .. } if device == c.me && seen > c.own_max => (
            "false_heads",
            format!(
                "{who} item says it had received your envelope {seen}, but this device has written only {}: that device signed a false account of what it received",
                c.own_max
            ),
        ),
        HeadsProblem::Fork { device, seq } if device == c.me && c.own.contains_key(&seq) => (
            "false_heads",
            format!(
                "{who} item says it received a different envelope {seq} of yours than the one this device wrote, which the relay cannot forge: that device signed a false account of what it received"
            ),
        ),
        HeadsProblem::Withheld { device, have, seen } => (
            "withheld",
            format!(
                "an item says its author had seen envelope {seen} of device {}, but the relay has served only up to {have}: the relay is withholding envelopes",
                short(&device)
            ),
        ),
        HeadsProblem::Fork { device, seq } => (
            "fork",
            format!(
                "an item says its author saw a different envelope {seq} of device {} than this device did: the relay showed you different histories",
                short(&device)
            ),
        ),
    };
    Problem {
        kind: kind.into(),
        detail,
        cursor: Some(c.cursor),
    }
}

/// Where sync records a roster event it refused because it would retract what
/// was already accepted.
pub const RETRACTION_KEY: &str = "retraction";

/// How much later than an acknowledgement (or a roster change) the partner must
/// have synced before its absence on their side counts as withheld: generous,
/// because the two devices' clocks differ.
const WITHHELD_MARGIN_MS: i64 = 10 * 60 * 1000;

/// What one of the partner's items says its device had received when it wrote it.
#[derive(Debug, Clone)]
struct Claim {
    seen_at: i64,
    /// The highest envelope of this device it had.
    of_me: u64,
    roster: Option<RosterHead>,
}

/// The first own envelope the partner's devices should have had by their latest
/// account and did not: acknowledged at `acked_at`, yet missing from the heads of
/// an item whose device synced more than the margin later. `(seq, acked_at,
/// seen_at)`. Only the latest account counts, so an envelope that was late but
/// arrived is not reported for ever.
fn withheld_from_partner(claims: &[Claim], acked: &[(u64, i64)]) -> Option<(u64, i64, i64)> {
    let latest = claims.iter().max_by_key(|c| (c.seen_at, c.of_me))?;
    acked
        .iter()
        .find(|(seq, acked_at)| {
            *seq > latest.of_me && latest.seen_at > acked_at.saturating_add(WITHHELD_MARGIN_MS)
        })
        .map(|&(seq, acked_at)| (seq, acked_at, latest.seen_at))
}

/// Compares the rosters the partner's items say they had with this device's:
/// a longer or different one means the relay shows the two of you different
/// memberships; a shorter one, long after a change, that it hid the change from
/// the partner.
fn roster_disagreements(claims: &[Claim], events: &[Vec<u8>], partner: &str) -> Vec<Problem> {
    let mine = events.len() as u64;
    let mut out: Vec<Problem> = Vec::new();
    let mut push = |kind: &str, detail: String| {
        if !out.iter().any(|p| p.kind == kind) {
            out.push(Problem {
                kind: kind.into(),
                detail,
                cursor: None,
            });
        }
    };
    for c in claims {
        let Some(r) = &c.roster else { continue };
        if r.len > mine {
            push("roster_withheld", format!(
                "{partner}'s device had seen {} membership events, this device only {mine}: the relay is not showing this device a device change; sync again, and if this stays, the relay is hiding it",
                r.len
            ));
            continue;
        }
        let at = |i: u64| {
            events
                .get(i as usize)
                .and_then(|e| SignedRosterEvent::decode(e).ok())
        };
        let ours = r.len.checked_sub(1).and_then(at).map(|e| e.hash().to_hex());
        if ours.as_deref() != Some(r.hash.as_str()) {
            push("roster_fork", format!(
                "{partner}'s device saw a different membership history than this device: the relay is showing the two of you different device lists"
            ));
        } else if let Some(missed) = at(r.len) {
            if missed.event.at.saturating_add(WITHHELD_MARGIN_MS) < c.seen_at {
                push("roster_withheld_from_partner", format!(
                    "{partner}'s devices had not seen membership event {} (a device change) although they synced well after it: the relay may be hiding it from {partner}",
                    r.len + 1
                ));
            }
        }
    }
    out
}

/// Folds edits and tombstones into the items they target. Only the target's own
/// member may change it; anything else is ignored.
fn apply_edits(raw: Vec<Entry>, roster: &Roster) -> Vec<Entry> {
    let member = |d: &DeviceId| roster.device(d).map(|x| x.member);
    let mut out: Vec<Entry> = Vec::new();
    for e in raw {
        match &e.item.body {
            Body::Edit { target, text } => {
                if let Some(t) = out
                    .iter_mut()
                    .find(|t| t.id.to_hex() == *target && member(&t.author) == member(&e.author))
                {
                    // Only journal entries are edited; a new check-in says how things are now.
                    if let Body::Journal { text: old } = &mut t.item.body {
                        *old = text.clone();
                        t.edited = true;
                    }
                }
            }
            Body::Delete { target } => {
                if let Some(t) = out
                    .iter_mut()
                    .find(|t| t.id.to_hex() == *target && member(&t.author) == member(&e.author))
                {
                    // The commitments of blind exchanges cannot be withdrawn: deleting a
                    // sealed answer, a key or a reveal would let one answer again after
                    // seeing the partner's.
                    if deletable(&t.item.body) {
                        t.deleted = true;
                    }
                }
            }
            _ => out.push(e),
        }
    }
    out
}

/// What a tombstone may remove: one's own writing, never the parts of an exchange.
pub fn deletable(body: &Body) -> bool {
    matches!(
        body,
        Body::CheckIn(_) | Body::Journal { .. } | Body::Appreciation { .. }
    )
}

pub fn short(d: &DeviceId) -> String {
    d.to_hex()[..8].to_string()
}

fn describe(class: Class, h: &EnvelopeHeader, cursor: u64, roster: &Roster) -> Problem {
    let who = short(&h.author);
    let revoked = roster.device(&h.author).is_some();
    let (kind, detail) = match class {
        Class::Ok => ("ok", String::new()),
        Class::Forged if revoked => ("forged", format!("envelope {} of device {who} was written after that device was revoked: it is not accepted", h.seq)),
        Class::Forged => ("forged", format!("envelope at cursor {cursor} claims device {who}, which is not a device of this space: forged")),
        Class::Altered => ("altered", format!("envelope {} of device {who} does not verify: it was altered after it was written", h.seq)),
        Class::ForeignSpace => ("foreign", format!("envelope at cursor {cursor} belongs to another space")),
        Class::Replayed => ("replayed", format!("envelope {} of device {who} was served again (a replay)", h.seq)),
        Class::Gap { expected, found } => ("gap", format!("device {who}: envelope {found} arrived but {expected}..{} are missing: the relay dropped or is holding back envelopes", found - 1)),
        Class::Reordered => ("reordered", format!("envelope {} of device {who} was served out of order", h.seq)),
        Class::Fork { seq } => ("fork", format!("device {who} has two different envelopes numbered {seq}: the relay is showing a forked history")),
    };
    Problem {
        kind: kind.into(),
        detail,
        cursor: Some(cursor),
    }
}

#[cfg(test)]
mod tests {
    use super::{heads_problem, withheld_from_partner, Claim, HeadsContext, WITHHELD_MARGIN_MS};
    use attune_crypto::HeadsProblem;
    use attune_proto::DeviceId;

    #[test]
    fn an_impossible_account_of_this_devices_chain_blames_its_signer() {
        let me = DeviceId([1; 32]);
        let other = DeviceId([2; 32]);
        let own = std::collections::HashMap::new();
        let c = HeadsContext {
            me,
            own_max: 3,
            own: &own,
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

    fn claim(seen_at: i64, of_me: u64) -> Claim {
        Claim {
            seen_at,
            of_me,
            roster: None,
        }
    }

    #[test]
    fn an_item_missing_from_a_later_sync_of_the_partner_is_withheld() {
        let hour = 60 * 60 * 1000;
        let acked = [(1, 0), (2, hour), (3, 5 * hour)];
        // The partner synced at 3 h and had seen up to 2: fine (3 came later).
        assert_eq!(withheld_from_partner(&[claim(3 * hour, 2)], &acked), None);
        // Synced at 3 h but had only 1: envelope 2, acked at 1 h, was kept back.
        assert_eq!(
            withheld_from_partner(&[claim(3 * hour, 1)], &acked),
            Some((2, hour, 3 * hour))
        );
        // Within the clock margin it is not (yet) a problem.
        let soon = hour + WITHHELD_MARGIN_MS - 1;
        assert_eq!(withheld_from_partner(&[claim(soon, 1)], &acked), None);
        // A newer account that has it settles an older one that did not.
        assert_eq!(
            withheld_from_partner(&[claim(3 * hour, 1), claim(4 * hour, 2)], &acked),
            None
        );
        assert_eq!(
            withheld_from_partner(&[claim(4 * hour, 1), claim(3 * hour, 2)], &acked),
            Some((2, hour, 4 * hour))
        );
        assert_eq!(withheld_from_partner(&[], &acked), None);
    }
}
