//! What the engine asks of its front-end: a passphrase when the keystore is
//! locked, and somewhere to report progress. The engine itself never prints,
//! prompts or exits.

use zeroize::Zeroizing;

use crate::error::ClientError;

/// Supplies the keystore passphrase. `attempt` starts at 1; the engine asks again
/// after a wrong passphrase while [`PassphraseSource::attempts`] allows.
pub trait PassphraseSource {
    fn passphrase(&mut self, attempt: u32) -> Result<Zeroizing<String>, ClientError>;

    /// How many tries a wrong passphrase gets (one for a script, more at a terminal).
    fn attempts(&self) -> u32 {
        1
    }
}

/// A passphrase source for scripts and tests: `ATTUNE_PASSPHRASE`, never a prompt.
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvPassphrase;

impl PassphraseSource for EnvPassphrase {
    fn passphrase(&mut self, _attempt: u32) -> Result<Zeroizing<String>, ClientError> {
        std::env::var("ATTUNE_PASSPHRASE")
            .map(Zeroizing::new)
            .map_err(|_| ClientError::PassphraseNeeded)
    }
}

/// Progress of a long operation (receiving a large history).
pub trait Progress {
    /// `done` items so far; `more` says whether more are known to follow.
    fn advance(&mut self, done: u64, more: bool);
    /// `done` of the items received so far are verified and stored.
    fn verified(&mut self, _done: u64) {}
    /// The operation ended (successfully or not).
    fn finish(&mut self) {}
}

/// Progress that goes nowhere.
#[derive(Debug, Default, Clone, Copy)]
pub struct Quiet;

impl Progress for Quiet {
    fn advance(&mut self, _done: u64, _more: bool) {}
}
