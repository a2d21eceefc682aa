//! Verifying every author's hash chain, and classifying whatever the relay serves.
//!
//! Each envelope is checked against the verified roster, its author's chain so far
//! and the keys this device holds, and gets one [`Class`]:
//!
//! | class | meaning |
//! |---|---|
//! | `Ok` | genuine, next in its author's chain |
//! | `Forged` | its author is not a device of the space (or was revoked before writing it) |
//! | `Altered` | it names a real author, but the signature or the ciphertext does not verify: these are not the bytes the author wrote |
//! | `ForeignSpace` | it belongs to another space |
//! | `Replayed` | an envelope already received, served again |
//! | `Gap` | it skips sequence numbers: earlier envelopes are missing (held back until they arrive) |
//! | `Reordered` | genuine, but served after a later envelope of the same author |
//! | `Fork` | a second, different envelope for a sequence number already taken (or one that chains to a different predecessor) |
//!
//! Only `Ok` and `Reordered` envelopes (and envelopes released when a gap fills)
//! are accepted; nothing else is ever shown as genuine.

use std::collections::BTreeMap;

use attune_proto::{DeviceId, Envelope, Hash32, Roster};
use zeroize::Zeroizing;

use crate::envelope::{open_envelope, OpenError};
use crate::keys::Keyring;

/// The integrity class of one served envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    Ok,
    Forged,
    Altered,
    ForeignSpace,
    Replayed,
    Gap { expected: u64, found: u64 },
    Reordered,
    Fork { seq: u64 },
}

impl Class {
    /// True if the envelope was accepted as genuine.
    pub fn is_accepted(&self) -> bool {
        matches!(self, Class::Ok | Class::Reordered)
    }
}

/// What became of one envelope.
#[derive(Debug)]
pub struct Checked {
    pub class: Class,
    pub envelope: Envelope,
    /// The decrypted content of an accepted envelope; `None` if this device lacks
    /// the key (the partner's private entries) or the envelope was not accepted.
    pub plaintext: Option<Zeroizing<Vec<u8>>>,
}

/// One author's chain as accepted so far.
#[derive(Debug, Default, Clone)]
struct AuthorChain {
    hashes: BTreeMap<u64, Hash32>,
    head_seq: u64,
    head_hash: Hash32,
    max_seen: u64,
    /// Envelopes past a gap, waiting for the missing ones.
    pending: BTreeMap<u64, Envelope>,
}

/// A head another device claims to have seen: `(device, seq, hash of that envelope)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeenHead {
    pub device: DeviceId,
    pub seq: u64,
    pub hash: Hash32,
}

/// A disagreement between the heads another device saw and the chains we hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadsProblem {
    /// They saw envelope `seen` of `device`; we have only up to `have`: the relay
    /// withheld something from us.
    Withheld {
        device: DeviceId,
        have: u64,
        seen: u64,
    },
    /// They saw a different envelope at `seq` than we did: the relay showed the two
    /// of us different histories.
    Fork { device: DeviceId, seq: u64 },
}

/// Verifies a stream of envelopes of one space, in the order the relay serves them.
#[derive(Debug, Clone)]
pub struct ChainVerifier {
    roster: Roster,
    chains: BTreeMap<DeviceId, AuthorChain>,
}

impl ChainVerifier {
    pub fn new(roster: Roster) -> Self {
        Self {
            roster,
            chains: BTreeMap::new(),
        }
    }

    /// Replaces the roster with a newer verified one (after a join, link or revoke).
    pub fn update_roster(&mut self, roster: Roster) {
        self.roster = roster;
    }

    /// The last accepted `(seq, hash)` of `device`'s chain.
    pub fn head(&self, device: &DeviceId) -> Option<(u64, Hash32)> {
        self.chains
            .get(device)
            .filter(|c| c.head_seq > 0)
            .map(|c| (c.head_seq, c.head_hash))
    }

    /// All accepted heads: what this device has seen, to be carried in its next item.
    pub fn heads(&self) -> Vec<SeenHead> {
        self.chains
            .iter()
            .filter(|(_, c)| c.head_seq > 0)
            .map(|(device, c)| SeenHead {
                device: *device,
                seq: c.head_seq,
                hash: c.head_hash,
            })
            .collect()
    }

    /// Classifies `envelope`. Returns its own verdict first, followed by any held
    /// envelopes it released by filling a gap.
    pub fn check(&mut self, envelope: &Envelope, keys: &Keyring) -> Vec<Checked> {
        let reject = |class| {
            vec![Checked {
                class,
                envelope: envelope.clone(),
                plaintext: None,
            }]
        };
        // Authenticity first: nothing below trusts an unauthenticated header.
        let plaintext = match open_envelope(envelope, &self.roster, keys) {
            Ok(p) => Some(p),
            Err(OpenError::MissingKey(_)) => None,
            Err(OpenError::ForeignSpace) => return reject(Class::ForeignSpace),
            Err(OpenError::UnknownAuthor) => return reject(Class::Forged),
            Err(_) => return reject(Class::Altered),
        };
        let h = envelope.header;
        let hash = envelope.hash();
        let chain = self.chains.entry(h.author).or_default();

        let known = chain
            .hashes
            .get(&h.seq)
            .copied()
            .or_else(|| chain.pending.get(&h.seq).map(Envelope::hash));
        if let Some(known) = known {
            return reject(if known == hash {
                Class::Replayed
            } else {
                Class::Fork { seq: h.seq }
            });
        }
        chain.max_seen = chain.max_seen.max(h.seq);
        if h.seq > chain.head_seq + 1 {
            chain.pending.insert(h.seq, envelope.clone());
            return reject(Class::Gap {
                expected: chain.head_seq + 1,
                found: h.seq,
            });
        }
        // Here h.seq == head_seq + 1 (lower numbers were caught as replay or fork).
        if h.prev != chain.head_hash {
            return reject(Class::Fork { seq: h.seq });
        }
        let class = if h.seq < chain.max_seen {
            Class::Reordered
        } else {
            Class::Ok
        };
        chain.hashes.insert(h.seq, hash);
        chain.head_seq = h.seq;
        chain.head_hash = hash;
        let mut out = vec![Checked {
            class,
            envelope: envelope.clone(),
            plaintext,
        }];
        self.release_pending(h.author, keys, &mut out);
        out
    }

    /// Accepts held envelopes that now follow the head, in order.
    fn release_pending(&mut self, author: DeviceId, keys: &Keyring, out: &mut Vec<Checked>) {
        loop {
            let Some(chain) = self.chains.get_mut(&author) else {
                return;
            };
            let next = chain.head_seq + 1;
            let Some(envelope) = chain.pending.remove(&next) else {
                return;
            };
            if envelope.header.prev != chain.head_hash {
                out.push(Checked {
                    class: Class::Fork { seq: next },
                    envelope,
                    plaintext: None,
                });
                return;
            }
            let hash = envelope.hash();
            chain.hashes.insert(next, hash);
            chain.head_seq = next;
            chain.head_hash = hash;
            // It verified when it was held; opening again only decrypts.
            let plaintext = open_envelope(&envelope, &self.roster, keys).ok();
            out.push(Checked {
                class: Class::Ok,
                envelope,
                plaintext,
            });
        }
    }

    /// Compares the heads another device says it had seen with ours.
    pub fn check_heads(&self, seen: &[SeenHead]) -> Vec<HeadsProblem> {
        seen.iter()
            .filter_map(|s| {
                let chain = self.chains.get(&s.device);
                let have = chain.map_or(0, |c| c.head_seq);
                if s.seq > have {
                    return Some(HeadsProblem::Withheld {
                        device: s.device,
                        have,
                        seen: s.seq,
                    });
                }
                let ours = chain.and_then(|c| c.hashes.get(&s.seq));
                (ours != Some(&s.hash)).then_some(HeadsProblem::Fork {
                    device: s.device,
                    seq: s.seq,
                })
            })
            .collect()
    }
}
