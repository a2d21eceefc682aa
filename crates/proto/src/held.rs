//! Held reveals: an answer key uploaded with its sealed answer, which the relay
//! keeps back until the partner's own sealed answer to the same exchange has
//! arrived, then releases with it (PROTOCOL.md §9).
//!
//! ```text
//! held reveal = version u8 | space 16 | exchange 16 | entry 16 | author 32 | key_id 5
//!               | nonce 24 | ciphertext 48 | signature 64
//! signature   = Ed25519(author, HELD_REVEAL_SIG || every byte before it)
//! ```
//!
//! `entry` is the sealed answer's entry id; the ciphertext (the 32-byte answer
//! key under a key derived from the epoch key `key_id`) is opened by the client.
//! The relay reads only the clear fields.

use crate::codec::{expect_version, DecodeError, Reader, Writer};
use crate::envelope::KeyId;
use crate::ids::{DeviceId, EntryId, SpaceId};
use crate::sig::{SignatureError, Verifier};

/// The answer key (32 bytes) and its AEAD tag.
pub const HELD_KEY_CT: usize = 48;

/// The clear part of a held reveal: what it belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldHeader {
    pub space: SpaceId,
    /// The exchange the sealed answer answers (an exercise, or a check-in exchange).
    pub exchange: EntryId,
    /// The sealed answer's entry id.
    pub entry: EntryId,
    pub author: DeviceId,
    /// The epoch key the answer key is encrypted under.
    pub key: KeyId,
}

impl HeldHeader {
    /// The bytes the AEAD binds (its associated data).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .fixed(&self.space.0)
            .fixed(&self.exchange.0)
            .fixed(&self.entry.0)
            .fixed(&self.author.0)
            .fixed(&self.key.encode());
        w.finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldReveal {
    pub header: HeldHeader,
    pub nonce: [u8; 24],
    pub ciphertext: [u8; HELD_KEY_CT],
    pub signature: [u8; 64],
}

impl HeldReveal {
    /// Every byte the signature covers.
    pub fn signed_part(header: &HeldHeader, nonce: &[u8; 24], ct: &[u8; HELD_KEY_CT]) -> Vec<u8> {
        let mut out = header.encode();
        out.extend_from_slice(nonce);
        out.extend_from_slice(ct);
        out
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Self::signed_part(&self.header, &self.nonce, &self.ciphertext);
        out.extend_from_slice(&self.signature);
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        expect_version(&mut r, "held reveal")?;
        let header = HeldHeader {
            space: SpaceId(r.array("held reveal space")?),
            exchange: EntryId(r.array("held reveal exchange")?),
            entry: EntryId(r.array("held reveal entry")?),
            author: DeviceId(r.array("held reveal author")?),
            key: KeyId::decode(&r.array::<5>("held reveal key id")?)?,
        };
        let out = Self {
            header,
            nonce: r.array("held reveal nonce")?,
            ciphertext: r.array("held reveal ciphertext")?,
            signature: r.array("held reveal signature")?,
        };
        r.finish("held reveal")?;
        Ok(out)
    }

    /// Checks the author's signature with their public signing key.
    pub fn verify(&self, sign_key: &[u8; 32]) -> Result<(), SignatureError> {
        self.verify_with(&Verifier::new(sign_key)?)
    }

    /// [`HeldReveal::verify`] with the author's key already decoded (a
    /// verified roster holds it so).
    pub fn verify_with(&self, author: &Verifier) -> Result<(), SignatureError> {
        let signed = Self::signed_part(&self.header, &self.nonce, &self.ciphertext);
        author.verify(crate::labels::HELD_REVEAL_SIG, &signed, &self.signature)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_and_decodes_exactly() {
        let h = HeldReveal {
            header: HeldHeader {
                space: SpaceId([1; 16]),
                exchange: EntryId([2; 16]),
                entry: EntryId([3; 16]),
                author: DeviceId([4; 32]),
                key: KeyId::Epoch(7),
            },
            nonce: [5; 24],
            ciphertext: [6; HELD_KEY_CT],
            signature: [7; 64],
        };
        let bytes = h.encode();
        assert_eq!(bytes.len(), 1 + 16 + 16 + 16 + 32 + 5 + 24 + 48 + 64);
        assert_eq!(HeldReveal::decode(&bytes), Ok(h));
        assert!(HeldReveal::decode(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(HeldReveal::decode(&longer).is_err());
    }
}

/// Version 2: the hold slot every uploaded envelope comes with (PROTOCOL.md §9).
///
/// ```text
/// hold     = tag 32 | nonce 24 | ciphertext 48                        (104 bytes)
/// released = 0x02 | entry 16 | nonce 24 | ciphertext 48               (89 bytes, served)
/// ```
/// For a sealed answer, `tag` is an opaque value both members derive for the
/// exchange and the ciphertext is its answer key; for every other envelope the
/// slot is 104 random bytes. The relay releases the slots whose tag two
/// different members uploaded, and cannot tell the others from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub tag: [u8; 32],
    pub nonce: [u8; 24],
    pub ciphertext: [u8; HELD_KEY_CT],
}

impl Hold {
    pub const ENCODED_LEN: usize = 32 + 24 + HELD_KEY_CT;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.fixed(&self.tag)
            .fixed(&self.nonce)
            .fixed(&self.ciphertext);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let hold = Self {
            tag: r.array("hold tag")?,
            nonce: r.array("hold nonce")?,
            ciphertext: r.array("hold ciphertext")?,
        };
        r.finish("hold")?;
        Ok(hold)
    }

    /// What the relay serves once it releases this slot of the envelope `entry`.
    pub fn released(&self, entry: EntryId) -> Released {
        Released {
            entry,
            nonce: self.nonce,
            ciphertext: self.ciphertext,
        }
    }
}

/// A released hold as a pull serves it: which envelope's slot, and its sealed key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub entry: EntryId,
    pub nonce: [u8; 24],
    pub ciphertext: [u8; HELD_KEY_CT],
}

impl Released {
    pub const VERSION: u8 = 2;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(Self::VERSION)
            .fixed(&self.entry.0)
            .fixed(&self.nonce)
            .fixed(&self.ciphertext);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("released hold")?;
        if version != Self::VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "released hold",
                found: version,
                supported: Self::VERSION,
            });
        }
        let released = Self {
            entry: EntryId(r.array("entry id")?),
            nonce: r.array("hold nonce")?,
            ciphertext: r.array("hold ciphertext")?,
        };
        r.finish("released hold")?;
        Ok(released)
    }
}

#[cfg(test)]
mod hold_tests {
    use super::*;

    #[test]
    fn hold_and_released_round_trip_and_refuse_other_sizes() {
        let hold = Hold {
            tag: [1; 32],
            nonce: [2; 24],
            ciphertext: [3; HELD_KEY_CT],
        };
        let bytes = hold.encode();
        assert_eq!(bytes.len(), Hold::ENCODED_LEN);
        assert_eq!(Hold::decode(&bytes), Ok(hold));
        assert!(Hold::decode(&bytes[1..]).is_err());
        let released = hold.released(EntryId([9; 16]));
        let bytes = released.encode();
        assert_eq!(Released::decode(&bytes), Ok(released));
        let mut v1 = bytes.clone();
        v1[0] = 1;
        assert!(Released::decode(&v1).is_err());
    }
}
