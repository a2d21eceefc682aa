//! The keystore file: a device's identity and the space keys it holds, locked with
//! a passphrase (Argon2id + XChaCha20-Poly1305) or, when the user explicitly asks
//! for it, stored unprotected.
//!
//! ```text
//! file      = magic "ATTUNEKS" | version u8 | mode u8 | rest
//!   mode 0 (unprotected): rest = contents
//!   mode 1 (passphrase) : rest = m_cost_kib u32 | t_cost u32 | p_cost u32 | salt 16 | nonce 24
//!                                | ciphertext var        (AAD = every byte before the ciphertext length)
//! contents  = version u8 | sign_seed 32 | kx_secret 32 | count u32 | (key_id 5 | key 32) * count
//! ```

use std::fmt;
use std::fs;
use std::io::Write;
use std::path::Path;

use argon2::{Algorithm, Argon2, Params, Version};
use attune_proto::codec::{Reader, Writer};
use attune_proto::labels::KEYSTORE_MAGIC;
use attune_proto::{DecodeError, KeyId};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use thiserror::Error;
use zeroize::Zeroizing;

use crate::identity::DeviceIdentity;
use crate::keys::Keyring;
use crate::secret::{random_array, SymmetricKey};

const MODE_UNPROTECTED: u8 = 0;
const MODE_PASSPHRASE: u8 = 1;
const MAX_KEYS: usize = 4096;

#[derive(Debug, Error)]
pub enum KeystoreError {
    #[error("this is not an attune keystore file")]
    NotAKeystore,
    #[error("the keystore is damaged: {0}")]
    Corrupt(#[from] DecodeError),
    #[error("the keystore is locked: a passphrase is needed")]
    PassphraseRequired,
    #[error("wrong passphrase (or the keystore was altered)")]
    WrongPassphrase,
    #[error("the keystore asks for Argon2 settings outside the accepted range")]
    BadKdfParams,
    #[error("the keystore names a key id that is not an epoch or member-private key")]
    BadKeyId,
    #[error("could not read or write the keystore file: {0}")]
    Io(#[from] std::io::Error),
    #[error("encrypting the keystore failed")]
    Seal,
    #[error("the keystore has no passphrase")]
    NotLocked,
    #[error("the keystore was sealed again under another passphrase or salt")]
    KeyChanged,
}

/// Argon2id cost settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    pub m_cost_kib: u32,
    pub t_cost: u32,
    pub p_cost: u32,
}

impl KdfParams {
    /// RFC 9106's second recommended setting, with one lane: 64 MiB, 3 passes.
    pub const DEFAULT: KdfParams = KdfParams {
        m_cost_kib: 64 * 1024,
        t_cost: 3,
        p_cost: 1,
    };

    /// Cheap settings for tests only.
    pub const INSECURE_FOR_TESTS: KdfParams = KdfParams {
        m_cost_kib: 64,
        t_cost: 1,
        p_cost: 1,
    };

    /// Bounds on what a file may ask for, so a crafted keystore cannot make opening
    /// it take gigabytes or hours.
    fn argon2(&self) -> Result<Argon2<'static>, KeystoreError> {
        if self.m_cost_kib > 1024 * 1024 || self.t_cost > 64 || self.p_cost > 16 {
            return Err(KeystoreError::BadKdfParams);
        }
        let params = Params::new(self.m_cost_kib, self.t_cost, self.p_cost, Some(32))
            .map_err(|_| KeystoreError::BadKdfParams)?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }
}

/// How to protect the keystore on disk.
#[derive(Debug, Clone, Copy)]
pub enum Protection<'a> {
    Passphrase(&'a [u8], KdfParams),
    /// No passphrase: anyone who can read the file has the keys. Only on request.
    Unprotected,
}

/// What the keystore holds.
#[derive(Debug, Clone)]
pub struct KeystoreContents {
    pub identity: DeviceIdentity,
    pub keys: Keyring,
}

pub(crate) fn encode_contents(contents: &KeystoreContents) -> Zeroizing<Vec<u8>> {
    let (sign, kx) = contents.identity.secret_bytes();
    let keys: Vec<_> = contents.keys.iter().collect();
    let mut w = Writer::new();
    w.u8(attune_proto::VERSION)
        .fixed(&sign[..])
        .fixed(&kx[..])
        .u32(u32::try_from(keys.len()).unwrap_or(u32::MAX));
    for (id, key) in keys {
        w.fixed(&id.encode()).fixed(key.expose());
    }
    Zeroizing::new(w.finish())
}

pub(crate) fn decode_contents(bytes: &[u8]) -> Result<KeystoreContents, KeystoreError> {
    let mut r = Reader::new(bytes);
    let version = r.u8("keystore contents")?;
    if version != attune_proto::VERSION {
        return Err(DecodeError::UnknownVersion {
            what: "keystore contents",
            found: version,
            supported: attune_proto::VERSION,
        }
        .into());
    }
    let sign = Zeroizing::new(r.array::<32>("signing key")?);
    let kx = Zeroizing::new(r.array::<32>("exchange key")?);
    let count = r.u32("key count")? as usize;
    if count > MAX_KEYS {
        return Err(DecodeError::BadLength {
            what: "key count",
            len: count,
            min: 0,
            max: MAX_KEYS,
        }
        .into());
    }
    let mut keys = Keyring::new();
    let mut previous: Option<KeyId> = None;
    for _ in 0..count {
        let id_bytes = r.array::<5>("key id")?;
        let id = KeyId::decode(&id_bytes)?;
        if matches!(id, KeyId::KeyWraps(_)) {
            return Err(KeystoreError::BadKeyId);
        }
        // The encoder writes ids sorted and unique; anything else is not canonical.
        if previous.is_some_and(|p| p >= id) {
            return Err(DecodeError::NonCanonical {
                what: "keystore contents",
                why: "key ids must be sorted and unique",
            }
            .into());
        }
        previous = Some(id);
        let key = SymmetricKey::from_bytes(r.array("key")?);
        keys.insert(id, key);
    }
    r.finish("keystore contents")?;
    Ok(KeystoreContents {
        identity: DeviceIdentity::from_secret_bytes(&sign, &kx),
        keys,
    })
}

/// Encodes (and, with a passphrase, encrypts) the keystore.
pub fn seal_keystore(
    contents: &KeystoreContents,
    protection: Protection<'_>,
) -> Result<Vec<u8>, KeystoreError> {
    seal_keystore_with(contents, protection, random_array(), random_array())
}

pub(crate) fn seal_keystore_with(
    contents: &KeystoreContents,
    protection: Protection<'_>,
    salt: [u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, KeystoreError> {
    match protection {
        Protection::Unprotected => {
            let plain = encode_contents(contents);
            let mut w = Writer::new();
            w.fixed(KEYSTORE_MAGIC)
                .u8(attune_proto::VERSION)
                .u8(MODE_UNPROTECTED)
                .fixed(&plain);
            Ok(w.finish())
        }
        Protection::Passphrase(passphrase, params) => {
            let key = stretch(passphrase, &salt, &params)?;
            seal_with_key(contents, &key, &params, &salt, nonce)
        }
    }
}

/// Encrypts the contents under an already stretched key (mode 1).
fn seal_with_key(
    contents: &KeystoreContents,
    key: &SymmetricKey,
    params: &KdfParams,
    salt: &[u8; 16],
    nonce: [u8; 24],
) -> Result<Vec<u8>, KeystoreError> {
    let plain = encode_contents(contents);
    let mut w = Writer::new();
    w.fixed(KEYSTORE_MAGIC)
        .u8(attune_proto::VERSION)
        .u8(MODE_PASSPHRASE)
        .u32(params.m_cost_kib)
        .u32(params.t_cost)
        .u32(params.p_cost)
        .fixed(salt)
        .fixed(&nonce);
    let mut out = w.finish();
    let ct = XChaCha20Poly1305::new(key.expose().into())
        .encrypt(
            XNonce::from_slice(&nonce),
            Payload {
                msg: &plain,
                aad: &out,
            },
        )
        .map_err(|_| KeystoreError::Seal)?;
    let mut w = Writer::new();
    w.var(&ct);
    out.extend_from_slice(&w.finish());
    Ok(out)
}

pub(crate) fn stretch(
    passphrase: &[u8],
    salt: &[u8; 16],
    params: &KdfParams,
) -> Result<SymmetricKey, KeystoreError> {
    let mut out = Zeroizing::new([0u8; 32]);
    params
        .argon2()?
        .hash_password_into(passphrase, salt, &mut out[..])
        .map_err(|_| KeystoreError::BadKdfParams)?;
    Ok(SymmetricKey::from_bytes(*out))
}

/// True if the keystore needs a passphrase to open.
pub fn keystore_is_locked(bytes: &[u8]) -> Result<bool, KeystoreError> {
    let mut r = Reader::new(bytes);
    read_preamble(&mut r).map(|mode| mode == MODE_PASSPHRASE)
}

fn read_preamble(r: &mut Reader<'_>) -> Result<u8, KeystoreError> {
    let magic: [u8; 8] = r
        .array("keystore magic")
        .map_err(|_| KeystoreError::NotAKeystore)?;
    if &magic != KEYSTORE_MAGIC {
        return Err(KeystoreError::NotAKeystore);
    }
    let version = r.u8("keystore version")?;
    if version != attune_proto::VERSION {
        return Err(DecodeError::UnknownVersion {
            what: "keystore",
            found: version,
            supported: attune_proto::VERSION,
        }
        .into());
    }
    match r.u8("keystore mode")? {
        m @ (MODE_UNPROTECTED | MODE_PASSPHRASE) => Ok(m),
        tag => Err(DecodeError::UnknownTag {
            what: "keystore mode",
            tag,
        }
        .into()),
    }
}

/// The parts of a passphrase-locked keystore file (mode 1).
struct Locked<'a> {
    params: KdfParams,
    salt: [u8; 16],
    nonce: [u8; 24],
    aad: &'a [u8],
    ciphertext: &'a [u8],
}

/// Reads a keystore's preamble: `None` for an unprotected one (with its contents'
/// bytes), `Some` for a locked one.
fn parse(bytes: &[u8]) -> Result<Result<Locked<'_>, &[u8]>, KeystoreError> {
    let mut r = Reader::new(bytes);
    if read_preamble(&mut r)? == MODE_UNPROTECTED {
        return Ok(Err(r.rest("keystore contents", 0, bytes.len())?));
    }
    let params = KdfParams {
        m_cost_kib: r.u32("argon2 memory")?,
        t_cost: r.u32("argon2 passes")?,
        p_cost: r.u32("argon2 lanes")?,
    };
    let salt: [u8; 16] = r.array("argon2 salt")?;
    let nonce: [u8; 24] = r.array("keystore nonce")?;
    let aad_len = bytes.len() - r.remaining();
    let ciphertext = r.var("keystore ciphertext", 16, 16 + 1024 * 1024)?;
    r.finish("keystore")?;
    Ok(Ok(Locked {
        params,
        salt,
        nonce,
        aad: &bytes[..aad_len],
        ciphertext,
    }))
}

fn decrypt(locked: &Locked<'_>, key: &SymmetricKey) -> Result<KeystoreContents, KeystoreError> {
    let plain = Zeroizing::new(
        XChaCha20Poly1305::new(key.expose().into())
            .decrypt(
                XNonce::from_slice(&locked.nonce),
                Payload {
                    msg: locked.ciphertext,
                    aad: locked.aad,
                },
            )
            .map_err(|_| KeystoreError::WrongPassphrase)?,
    );
    decode_contents(&plain)
}

/// Opens a keystore. `passphrase` is required for a locked one and ignored otherwise.
pub fn open_keystore(
    bytes: &[u8],
    passphrase: Option<&[u8]>,
) -> Result<KeystoreContents, KeystoreError> {
    let locked = match parse(bytes)? {
        Err(contents) => return decode_contents(contents),
        Ok(locked) => locked,
    };
    let passphrase = passphrase.ok_or(KeystoreError::PassphraseRequired)?;
    let key = stretch(passphrase, &locked.salt, &locked.params)?;
    decrypt(&locked, &key)
}

/// The key Argon2id stretched from a keystore's passphrase, with the salt and
/// settings it was stretched with: what an unlocked session (the `attune unlock`
/// agent) keeps instead of the passphrase. It opens every keystore file sealed
/// under that salt, and seals new contents under the same salt (with a fresh
/// nonce), so neither needs Argon2 again; it does not reveal the passphrase.
/// Zeroized on drop; `Debug` shows no secret.
#[derive(Clone)]
pub struct KeystoreKey {
    key: SymmetricKey,
    salt: [u8; 16],
    params: KdfParams,
}

impl fmt::Debug for KeystoreKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeystoreKey").finish_non_exhaustive()
    }
}

/// Length of [`KeystoreKey::encode`]: key 32 | salt 16 | m_cost u32 | t_cost u32 | p_cost u32.
pub const KEYSTORE_KEY_LEN: usize = 32 + 16 + 12;

impl KeystoreKey {
    /// Runs Argon2id on `passphrase` with the salt and settings of the locked
    /// keystore `bytes`, and checks that the result opens it (returning what it
    /// holds). An unprotected keystore has no key: `NotLocked`.
    pub fn derive(
        bytes: &[u8],
        passphrase: &[u8],
    ) -> Result<(KeystoreKey, KeystoreContents), KeystoreError> {
        let locked = parse(bytes)?.map_err(|_| KeystoreError::NotLocked)?;
        let key = stretch(passphrase, &locked.salt, &locked.params)?;
        let contents = decrypt(&locked, &key)?;
        Ok((
            KeystoreKey {
                key,
                salt: locked.salt,
                params: locked.params,
            },
            contents,
        ))
    }

    /// Opens the keystore `bytes` with this key, without Argon2. A file sealed
    /// under another salt or other settings (the passphrase was set again) is
    /// `KeyChanged`; one that does not decrypt is `WrongPassphrase`.
    pub fn open(&self, bytes: &[u8]) -> Result<KeystoreContents, KeystoreError> {
        let locked = parse(bytes)?.map_err(|_| KeystoreError::NotLocked)?;
        if locked.salt != self.salt || locked.params != self.params {
            return Err(KeystoreError::KeyChanged);
        }
        decrypt(&locked, &self.key)
    }

    /// True if the locked keystore `bytes` was sealed under this key's salt and
    /// settings (so [`KeystoreKey::open`] can try it), without decrypting.
    pub fn matches(&self, bytes: &[u8]) -> bool {
        matches!(parse(bytes), Ok(Ok(l)) if l.salt == self.salt && l.params == self.params)
    }

    /// Seals `contents` under this key: same salt and settings, a fresh nonce.
    pub fn seal(&self, contents: &KeystoreContents) -> Result<Vec<u8>, KeystoreError> {
        seal_with_key(
            contents,
            &self.key,
            &self.params,
            &self.salt,
            random_array(),
        )
    }

    /// The key for handing to the agent over its socket (owner-only).
    pub fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut w = Writer::new();
        w.fixed(self.key.expose())
            .fixed(&self.salt)
            .u32(self.params.m_cost_kib)
            .u32(self.params.t_cost)
            .u32(self.params.p_cost);
        Zeroizing::new(w.finish())
    }

    pub fn decode(bytes: &[u8]) -> Result<KeystoreKey, KeystoreError> {
        let mut r = Reader::new(bytes);
        let key = SymmetricKey::from_bytes(r.array("keystore key")?);
        let salt = r.array("argon2 salt")?;
        let params = KdfParams {
            m_cost_kib: r.u32("argon2 memory")?,
            t_cost: r.u32("argon2 passes")?,
            p_cost: r.u32("argon2 lanes")?,
        };
        r.finish("keystore key")?;
        params.argon2()?;
        Ok(KeystoreKey { key, salt, params })
    }
}

/// Writes the keystore atomically (temporary file, fsync, rename), readable by the
/// owner only.
pub fn write_keystore_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let tmp = path.with_extension("tmp");
    // A stale temporary file (from a crash) could carry wider permissions: start afresh.
    match fs::remove_file(&tmp) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e.into()),
    }
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        // Make the rename itself durable; not every platform can open a directory.
        if let Ok(d) = fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}
