//! The engine's one error type: what went wrong, in words a person can act on.

use std::path::{Path, PathBuf};

use attune_crypto::KeystoreError;
use thiserror::Error;

use crate::db::DbError;
use crate::relay::RelayError;

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
    /// The relay no longer has the space: a member erased it (`attune leave`).
    /// Nothing can be sent or received any more; what this device holds stays
    /// readable.
    #[error("the relay no longer has your shared space: {partner} erased it with `attune leave` (or one of your own other devices did). Nothing more can be sent or received, so attune stops trying. Everything this device holds is still readable here: keep a copy with `attune export --format markdown --out attune.md`; then `attune leave` clears this device")]
    SpaceErased { partner: String },
    /// One of the member's devices revoked this one: the relay refuses it from
    /// now on and nothing written after the revocation opens here.
    #[error("this device was removed from your shared space by one of your other devices: it can no longer sync, and nothing written since can be read here. What it holds stays readable (`attune export --format markdown --out attune.md` keeps a copy); `attune leave` clears it. To use it again: `attune leave` here, then `attune device add` on a device you still use and `attune device join CODE` here")]
    DeviceRemoved,
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
