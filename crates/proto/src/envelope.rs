//! Envelopes: the only thing the relay stores for a space's content.
//!
//! ```text
//! header (105 bytes) = 0x02 | space 16 | author 32 | seq u64 | prev 32 | entry 16
//! envelope           = header | body_len u32 | body | signature 64
//! ```
//! The signature is Ed25519 by the author over `ENVELOPE_SIG || header || body`.
//! Nothing in the clear says which key opens the body (PROTOCOL.md §4): a reader
//! finds it by the key commitment inside the body. Version 1 headers (0x01) named
//! their key between `prev` and `entry`; they still decode, so history written
//! before version 2 stays readable, but nothing new is written that way.

use crate::codec::{DecodeError, Reader, Writer};
use crate::ids::{hash_labelled, DeviceId, EntryId, Hash32, SpaceId};
use crate::labels;
use crate::sig::{self, SignatureError};

/// The most body bytes one envelope may carry (1 MiB of padded plaintext plus the
/// nonce, the key commitment and the tag).
pub const MAX_BODY_LEN: usize = (1 << 20) + 24 + 32 + 16;

/// The envelope format new envelopes are written in.
pub const ENVELOPE_VERSION: u8 = 2;

/// Which key an envelope's body is sealed under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyId {
    /// The space's epoch key number `n`, shared by both members' devices.
    Epoch(u32),
    /// Generation `n` of the author member's private key: for entries that sync to
    /// the author's own devices only.
    MemberPrivate(u32),
    /// Not sealed by the envelope layer: the body is a list of HPKE key wraps that
    /// distribute epoch key `n` (each wrap is encrypted to one device on its own).
    KeyWraps(u32),
}

impl KeyId {
    pub const ENCODED_LEN: usize = 5;

    pub fn encode(&self) -> [u8; 5] {
        let (tag, n) = match *self {
            KeyId::Epoch(n) => (1u8, n),
            KeyId::MemberPrivate(n) => (2, n),
            KeyId::KeyWraps(n) => (3, n),
        };
        let mut out = [0u8; 5];
        out[0] = tag;
        out[1..].copy_from_slice(&n.to_be_bytes());
        out
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let id = Self::read(&mut r)?;
        r.finish("key id")?;
        Ok(id)
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let tag = r.u8("key id")?;
        let n = r.u32("key id")?;
        match tag {
            1 => Ok(KeyId::Epoch(n)),
            2 => Ok(KeyId::MemberPrivate(n)),
            3 => Ok(KeyId::KeyWraps(n)),
            tag => Err(DecodeError::UnknownTag {
                what: "key id",
                tag,
            }),
        }
    }
}

/// The authenticated, unencrypted part of an envelope. Its canonical bytes are the
/// body's AEAD associated data and the start of what the author signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeHeader {
    pub space: SpaceId,
    pub author: DeviceId,
    /// The author's sequence number: 1, 2, 3 ... with no gaps.
    pub seq: u64,
    /// Hash of the author's previous envelope; [`Hash32::ZERO`] when `seq == 1`.
    pub prev: Hash32,
    /// Only in version 1 envelopes, which named their key in the clear; `None`
    /// for every envelope written now (version 2).
    pub legacy_key: Option<KeyId>,
    pub entry: EntryId,
}

impl EnvelopeHeader {
    /// The size of a version 2 header.
    pub const ENCODED_LEN: usize = 1 + 16 + 32 + 8 + 32 + 16;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }

    fn write(&self, w: &mut Writer) {
        let version = if self.legacy_key.is_some() {
            1
        } else {
            ENVELOPE_VERSION
        };
        w.u8(version)
            .fixed(&self.space.0)
            .fixed(&self.author.0)
            .u64(self.seq)
            .fixed(&self.prev.0);
        if let Some(key) = &self.legacy_key {
            w.fixed(&key.encode());
        }
        w.fixed(&self.entry.0);
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = Self::read(&mut r)?;
        r.finish("envelope header")?;
        Ok(header)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let version = r.u8("envelope header")?;
        if version != 1 && version != ENVELOPE_VERSION {
            return Err(DecodeError::UnknownVersion {
                what: "envelope header",
                found: version,
                supported: ENVELOPE_VERSION,
            });
        }
        let space = SpaceId(r.array("space id")?);
        let author = DeviceId(r.array("author device id")?);
        let seq = r.u64("sequence number")?;
        let prev = Hash32(r.array("previous hash")?);
        let legacy_key = if version == 1 {
            Some(KeyId::read(r)?)
        } else {
            None
        };
        let header = Self {
            space,
            author,
            seq,
            prev,
            legacy_key,
            entry: EntryId(r.array("entry id")?),
        };
        header.check()?;
        Ok(header)
    }

    /// The chain rules that make a header canonical: what decoding checks, for
    /// writers to check before they sign.
    pub fn check(&self) -> Result<(), DecodeError> {
        if self.seq == 0 {
            return Err(DecodeError::NonCanonical {
                what: "envelope header",
                why: "sequence numbers start at 1",
            });
        }
        if (self.seq == 1) != (self.prev == Hash32::ZERO) {
            return Err(DecodeError::NonCanonical {
                what: "envelope header",
                why: "the previous hash is all zeros exactly when the sequence number is 1",
            });
        }
        Ok(())
    }
}

/// A signed envelope as stored and forwarded by the relay.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    pub header: EnvelopeHeader,
    /// `nonce 24 || commitment 32 || XChaCha20-Poly1305 ciphertext` (version 2).
    pub body: Vec<u8>,
    pub signature: [u8; 64],
}

impl std::fmt::Debug for Envelope {
    // The body is ciphertext, but there is nothing to learn from printing it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Envelope")
            .field("header", &self.header)
            .field("body_len", &self.body.len())
            .finish_non_exhaustive()
    }
}

impl Envelope {
    /// The bytes the author signs (after the label): `header || body`.
    pub fn signed_message(header: &EnvelopeHeader, body: &[u8]) -> Vec<u8> {
        let mut msg = header.encode();
        msg.extend_from_slice(body);
        msg
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.header.write(&mut w);
        w.var(&self.body).fixed(&self.signature);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let header = EnvelopeHeader::read(&mut r)?;
        let body = r.var("envelope body", 1, MAX_BODY_LEN)?.to_vec();
        let signature = r.array("envelope signature")?;
        r.finish("envelope")?;
        Ok(Self {
            header,
            body,
            signature,
        })
    }

    /// The chain hash: `SHA-256(ENVELOPE_HASH || encoded envelope)`. The next
    /// envelope of the same author names it as `prev`.
    pub fn hash(&self) -> Hash32 {
        hash_labelled(labels::ENVELOPE_HASH, &[&self.encode()])
    }

    /// Checks the author's signature, given the author's Ed25519 public key.
    pub fn verify_signature(&self, author_sign_key: &[u8; 32]) -> Result<(), SignatureError> {
        self.verify_with(&sig::Verifier::new(author_sign_key)?)
    }

    /// Checks the author's signature with the author's key, already decoded.
    pub fn verify_with(&self, author: &sig::Verifier) -> Result<(), SignatureError> {
        author.verify(
            labels::ENVELOPE_SIG,
            &Self::signed_message(&self.header, &self.body),
            &self.signature,
        )
    }
}
