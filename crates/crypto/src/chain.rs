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

use crate::envelope::{decrypt_envelope, verify_envelope, OpenError};
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
    pub opened: Option<crate::envelope::Opened>,
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

/// One author's chain as a device stores it between runs: its accepted head, the
/// highest number seen, and the envelopes held past a gap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChainSnapshot {
    pub device: DeviceId,
    pub head_seq: u64,
    pub head_hash: Hash32,
    pub max_seen: u64,
    pub pending: Vec<Envelope>,
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

    /// Resumes verification where an earlier run stopped. The hashes of accepted
    /// envelopes below the heads are not kept here: [`ChainVerifier::remember`]
    /// supplies those an incoming envelope or a claimed head refers to.
    pub fn resume(roster: Roster, snapshots: Vec<ChainSnapshot>) -> Self {
        let chains = snapshots
            .into_iter()
            .map(|s| {
                let mut hashes = BTreeMap::new();
                if s.head_seq > 0 {
                    hashes.insert(s.head_seq, s.head_hash);
                }
                let pending = s.pending.into_iter().map(|e| (e.header.seq, e)).collect();
                (
                    s.device,
                    AuthorChain {
                        hashes,
                        head_seq: s.head_seq,
                        head_hash: s.head_hash,
                        max_seen: s.max_seen,
                        pending,
                    },
                )
            })
            .collect();
        Self { roster, chains }
    }

    /// What to store to resume later (see [`ChainVerifier::resume`]).
    pub fn snapshot(&self) -> Vec<ChainSnapshot> {
        self.chains
            .iter()
            .map(|(device, c)| ChainSnapshot {
                device: *device,
                head_seq: c.head_seq,
                head_hash: c.head_hash,
                max_seen: c.max_seen,
                pending: c.pending.values().cloned().collect(),
            })
            .collect()
    }

    /// Tells a resumed verifier the hash of an envelope it accepted in an earlier
    /// run (at or below the head), so a replay or a fork of it is recognised.
    pub fn remember(&mut self, device: DeviceId, seq: u64, hash: Hash32) {
        if let Some(c) = self.chains.get_mut(&device) {
            if seq <= c.head_seq {
                c.hashes.insert(seq, hash);
            }
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
        let verdict = Signed(verify_envelope(envelope, &self.roster));
        self.check_signed(envelope, verdict, keys)
    }

    /// Checks the signatures of many envelopes against this verifier's roster,
    /// on all cores (the costly part of [`check`](Self::check), and independent
    /// per envelope); pass each verdict to [`check_signed`](Self::check_signed)
    /// with its envelope, in order.
    pub fn verify_all<E: std::borrow::Borrow<Envelope> + Sync>(
        &self,
        envelopes: &[E],
    ) -> Vec<Signed> {
        let roster = &self.roster;
        let one = |e: &E| Signed(verify_envelope(e.borrow(), roster));
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(envelopes.len().div_ceil(64).max(1));
        if threads <= 1 {
            return envelopes.iter().map(one).collect();
        }
        let per = envelopes.len().div_ceil(threads);
        let parallel: Option<Vec<Signed>> = std::thread::scope(|s| {
            let parts: Vec<_> = envelopes
                .chunks(per)
                .map(|part| s.spawn(move || part.iter().map(one).collect::<Vec<_>>()))
                .collect();
            let mut all = Vec::with_capacity(envelopes.len());
            for p in parts {
                all.extend(p.join().ok()?);
            }
            Some(all)
        });
        // A thread that could not finish: verify here instead.
        parallel.unwrap_or_else(|| envelopes.iter().map(one).collect())
    }

    /// [`check`](Self::check) with the signature verdict [`verify_all`](Self::verify_all)
    /// gave for this very envelope.
    pub fn check_signed(
        &mut self,
        envelope: &Envelope,
        signed: Signed,
        keys: &Keyring,
    ) -> Vec<Checked> {
        let reject = |class| {
            vec![Checked {
                class,
                envelope: envelope.clone(),
                opened: None,
            }]
        };
        // Authenticity first: nothing below trusts an unauthenticated header.
        let opened = signed
            .0
            .and_then(|()| decrypt_envelope(envelope, &self.roster, keys));
        let plaintext = match opened {
            Ok(p) => Some(p),
            Err(OpenError::MissingKey) => None,
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
            opened: plaintext,
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
                    opened: None,
                });
                return;
            }
            let hash = envelope.hash();
            chain.hashes.insert(next, hash);
            chain.head_seq = next;
            chain.head_hash = hash;
            // It verified when it was held; opening again only decrypts.
            let opened = crate::envelope::open_envelope(&envelope, &self.roster, keys).ok();
            out.push(Checked {
                class: Class::Ok,
                envelope,
                opened,
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

/// The verdict on one envelope's signature against a verifier's roster, from
/// [`ChainVerifier::verify_all`].
#[derive(Debug)]
pub struct Signed(Result<(), OpenError>);
