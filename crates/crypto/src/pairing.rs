//! Pairing two devices from a short code: SPAKE2 through the relay's mailbox, then
//! explicit key confirmation, then payloads sealed under the confirmed key.
//!
//! Both sides run the same three steps:
//! 1. [`Pairing::start`] → send the `Pake` message;
//! 2. [`AwaitingPake::receive_pake`] with the other's `Pake` → send the `Confirm` message;
//! 3. [`AwaitingConfirm::receive_confirm`] with the other's `Confirm` → a [`PairingSession`].
//!
//! A wrong code, or any change to a message in transit, makes step 3 fail on both
//! sides: each side's confirmation is a PRF of the SPAKE2 key and the transcript,
//! so a relay in the middle has exactly one guess at the code.

use std::fmt;

use attune_proto::{labels, PairingMessage, PairingPayload, Role};
use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hkdf::Hkdf;
use rand_core::{OsRng, RngCore};
use sha2::{Digest, Sha256};
use spake2::{Ed25519Group, Identity, Password, Spake2};
use subtle::ConstantTimeEq;
use thiserror::Error;
use zeroize::{Zeroize, Zeroizing};

use crate::secret::{random_array, SymmetricKey};
use crate::words::WORDS;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PairingError {
    #[error("the pairing code is not of the form NUMBER-WORD-WORD")]
    BadCode,
    #[error("expected a {expected} message from the {from:?}, got something else")]
    UnexpectedMessage { expected: &'static str, from: Role },
    #[error("the two devices did not agree on a key: the code was wrong, or a message was altered in transit")]
    ConfirmationFailed,
    #[error("a sealed pairing message did not decrypt: it was altered, replayed or reordered")]
    Decrypt,
    #[error("sealing a pairing message failed")]
    Seal,
}

/// A pairing code: the relay mailbox number and two words, e.g. `42-otter-maple`.
#[derive(Clone, PartialEq, Eq)]
pub struct PairingCode {
    pub mailbox: u32,
    words: [&'static str; 2],
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingCode({}-[redacted])", self.mailbox)
    }
}

impl PairingCode {
    /// A fresh code for `mailbox`: 16 bits of secret, enough because SPAKE2 gives an
    /// attacker one online guess per pairing attempt.
    pub fn generate(mailbox: u32) -> Self {
        let mut b = [0u8; 2];
        OsRng.fill_bytes(&mut b);
        Self {
            mailbox,
            words: [WORDS[b[0] as usize], WORDS[b[1] as usize]],
        }
    }

    /// Parses `NUMBER-WORD-WORD`, forgiving case, spaces and surrounding blanks.
    pub fn parse(input: &str) -> Result<Self, PairingError> {
        let normal = input.trim().to_ascii_lowercase().replace(' ', "-");
        let mut parts = normal.split('-').filter(|p| !p.is_empty());
        let mailbox = parts
            .next()
            .and_then(|p| p.parse::<u32>().ok())
            .ok_or(PairingError::BadCode)?;
        let mut word = || {
            parts
                .next()
                .and_then(|p| WORDS.iter().find(|w| **w == p).copied())
                .ok_or(PairingError::BadCode)
        };
        let words = [word()?, word()?];
        if parts.next().is_some() {
            return Err(PairingError::BadCode);
        }
        Ok(Self { mailbox, words })
    }

    /// The canonical text of the code, which is also the SPAKE2 password.
    pub fn reveal(&self) -> String {
        format!("{}-{}-{}", self.mailbox, self.words[0], self.words[1])
    }
}

/// Entry point of the pairing state machine.
#[derive(Debug)]
pub struct Pairing;

impl Pairing {
    /// Starts pairing as `role` with `code`; send the returned message.
    pub fn start(role: Role, code: &PairingCode) -> (AwaitingPake, PairingMessage) {
        Self::start_with_rng(role, code, OsRng)
    }

    /// [`Pairing::start`] with a chosen randomness source: only for the fixed test vectors.
    pub(crate) fn start_with_rng(
        role: Role,
        code: &PairingCode,
        rng: impl rand_core::CryptoRng + RngCore,
    ) -> (AwaitingPake, PairingMessage) {
        let password = Password::new(code.reveal().as_bytes());
        let inviter = Identity::new(labels::PAIRING_IDENTITY_INVITER);
        let joiner = Identity::new(labels::PAIRING_IDENTITY_JOINER);
        let (state, msg) = match role {
            Role::Inviter => {
                Spake2::<Ed25519Group>::start_a_with_rng(&password, &inviter, &joiner, rng)
            }
            Role::Joiner => {
                Spake2::<Ed25519Group>::start_b_with_rng(&password, &inviter, &joiner, rng)
            }
        };
        let out = PairingMessage {
            from: role,
            payload: PairingPayload::Pake(msg.clone()),
        };
        (
            AwaitingPake {
                role,
                state,
                own_msg: msg,
            },
            out,
        )
    }
}

/// Waiting for the other side's SPAKE2 message.
pub struct AwaitingPake {
    role: Role,
    state: Spake2<Ed25519Group>,
    own_msg: Vec<u8>,
}

impl fmt::Debug for AwaitingPake {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwaitingPake({:?})", self.role)
    }
}

/// Waiting for the other side's confirmation.
pub struct AwaitingConfirm {
    role: Role,
    keys: SessionKeys,
    expected_confirm: Zeroizing<[u8; 32]>,
}

impl fmt::Debug for AwaitingConfirm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AwaitingConfirm({:?})", self.role)
    }
}

struct SessionKeys {
    send: SymmetricKey,
    recv: SymmetricKey,
}

fn derive(prk: &Hkdf<Sha256>, label: &[u8], transcript: &[u8; 32]) -> Zeroizing<[u8; 32]> {
    let mut out = Zeroizing::new([0u8; 32]);
    let info = [label, &transcript[..]].concat();
    if prk.expand(&info, &mut out[..]).is_err() {
        unreachable!("HKDF output length is fixed and valid");
    }
    out
}

impl AwaitingPake {
    /// Takes the other side's SPAKE2 message; send the returned confirmation.
    ///
    /// A malformed SPAKE2 message is not reported here: it yields a random key, so
    /// that the failure surfaces as a confirmation failure on both sides alike.
    pub fn receive_pake(
        self,
        msg: &PairingMessage,
    ) -> Result<(AwaitingConfirm, PairingMessage), PairingError> {
        let theirs = match &msg.payload {
            PairingPayload::Pake(m) if msg.from == self.role.other() => m.clone(),
            _ => {
                return Err(PairingError::UnexpectedMessage {
                    expected: "key exchange",
                    from: self.role.other(),
                })
            }
        };
        let mut shared = Zeroizing::new(
            self.state
                .finish(&theirs)
                .unwrap_or_else(|_| random_array::<32>().to_vec()),
        );
        let (inviter_msg, joiner_msg) = match self.role {
            Role::Inviter => (&self.own_msg, &theirs),
            Role::Joiner => (&theirs, &self.own_msg),
        };
        let mut t = Sha256::new();
        for m in [inviter_msg, joiner_msg] {
            t.update((m.len() as u32).to_be_bytes());
            t.update(m);
        }
        let transcript: [u8; 32] = t.finalize().into();
        let prk = Hkdf::<Sha256>::new(None, &shared);
        shared.zeroize();

        let confirm_inviter = derive(&prk, labels::PAIRING_CONFIRM_INVITER, &transcript);
        let confirm_joiner = derive(&prk, labels::PAIRING_CONFIRM_JOINER, &transcript);
        let seal_inviter = derive(&prk, labels::PAIRING_SEAL_INVITER, &transcript);
        let seal_joiner = derive(&prk, labels::PAIRING_SEAL_JOINER, &transcript);
        let (own_confirm, expected_confirm, send, recv) = match self.role {
            Role::Inviter => (confirm_inviter, confirm_joiner, seal_inviter, seal_joiner),
            Role::Joiner => (confirm_joiner, confirm_inviter, seal_joiner, seal_inviter),
        };
        let out = PairingMessage {
            from: self.role,
            payload: PairingPayload::Confirm(*own_confirm),
        };
        Ok((
            AwaitingConfirm {
                role: self.role,
                keys: SessionKeys {
                    send: SymmetricKey::from_bytes(*send),
                    recv: SymmetricKey::from_bytes(*recv),
                },
                expected_confirm,
            },
            out,
        ))
    }
}

impl AwaitingConfirm {
    /// Checks the other side's confirmation in constant time.
    pub fn receive_confirm(self, msg: &PairingMessage) -> Result<PairingSession, PairingError> {
        let theirs = match &msg.payload {
            PairingPayload::Confirm(c) if msg.from == self.role.other() => c,
            _ => {
                return Err(PairingError::UnexpectedMessage {
                    expected: "confirmation",
                    from: self.role.other(),
                })
            }
        };
        if !bool::from(theirs.ct_eq(&*self.expected_confirm)) {
            return Err(PairingError::ConfirmationFailed);
        }
        Ok(PairingSession {
            role: self.role,
            keys: self.keys,
            sent: 0,
            received: 0,
        })
    }
}

/// A confirmed pairing channel. Messages are sealed per direction with a counter
/// in the associated data, so the relay cannot replay, reorder or reflect them.
pub struct PairingSession {
    role: Role,
    keys: SessionKeys,
    sent: u64,
    received: u64,
}

impl fmt::Debug for PairingSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingSession({:?}, [redacted])", self.role)
    }
}

fn session_aad(from: Role, counter: u64) -> [u8; 9] {
    let mut aad = [0u8; 9];
    aad[0] = match from {
        Role::Inviter => 1,
        Role::Joiner => 2,
    };
    aad[1..].copy_from_slice(&counter.to_be_bytes());
    aad
}

impl PairingSession {
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn seal(&mut self, plaintext: &[u8]) -> Result<PairingMessage, PairingError> {
        let nonce: [u8; 24] = random_array();
        let aad = session_aad(self.role, self.sent);
        let ciphertext = XChaCha20Poly1305::new(self.keys.send.expose().into())
            .encrypt(
                XNonce::from_slice(&nonce),
                Payload {
                    msg: plaintext,
                    aad: &aad,
                },
            )
            .map_err(|_| PairingError::Seal)?;
        self.sent += 1;
        Ok(PairingMessage {
            from: self.role,
            payload: PairingPayload::Sealed { nonce, ciphertext },
        })
    }

    pub fn open(&mut self, msg: &PairingMessage) -> Result<Zeroizing<Vec<u8>>, PairingError> {
        let (nonce, ciphertext) = match &msg.payload {
            PairingPayload::Sealed { nonce, ciphertext } if msg.from == self.role.other() => {
                (nonce, ciphertext)
            }
            _ => {
                return Err(PairingError::UnexpectedMessage {
                    expected: "sealed",
                    from: self.role.other(),
                })
            }
        };
        let aad = session_aad(self.role.other(), self.received);
        let plain = XChaCha20Poly1305::new(self.keys.recv.expose().into())
            .decrypt(
                XNonce::from_slice(nonce),
                Payload {
                    msg: ciphertext,
                    aad: &aad,
                },
            )
            .map_err(|_| PairingError::Decrypt)?;
        self.received += 1;
        Ok(Zeroizing::new(plain))
    }
}
