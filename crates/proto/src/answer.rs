//! Sealed answers for blind exchanges, and HPKE key wraps: their wire formats.
//!
//! ```text
//! sealed answer  = version u8 | commitment 32 | nonce 24 | ciphertext var(16..=MAX_ANSWER_CT)
//! answer context = version u8 | space 16 | exercise 16 | author 32          (AAD and commitment input)
//! key wrap       = version u8 | recipient 32 | key_id 5 | enc 32 | ciphertext var(48)
//! key wrap list  = version u8 | count u32 (1..=MAX_WRAPS) | key wrap ...
//! ```

use crate::codec::{expect_version, DecodeError, Reader, Writer};
use crate::envelope::KeyId;
use crate::ids::{DeviceId, EntryId, SpaceId};

pub const MAX_ANSWER_CT: usize = 256 * 1024;
pub const MAX_WRAPS: usize = 64;
/// A wrapped 32-byte key plus the 16-byte tag.
pub const WRAPPED_KEY_LEN: usize = 48;

/// An answer sealed under its own one-time key, with a commitment to that key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedAnswer {
    pub commitment: [u8; 32],
    pub nonce: [u8; 24],
    pub ciphertext: Vec<u8>,
}

impl SealedAnswer {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .fixed(&self.commitment)
            .fixed(&self.nonce)
            .var(&self.ciphertext);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        expect_version(&mut r, "sealed answer")?;
        let out = Self {
            commitment: r.array("answer commitment")?,
            nonce: r.array("answer nonce")?,
            ciphertext: r.var("answer ciphertext", 16, MAX_ANSWER_CT)?.to_vec(),
        };
        r.finish("sealed answer")?;
        Ok(out)
    }
}

/// What a sealed answer is bound to: its space, exercise and author.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AnswerContext {
    pub space: SpaceId,
    pub exercise: EntryId,
    pub author: DeviceId,
}

impl AnswerContext {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .fixed(&self.space.0)
            .fixed(&self.exercise.0)
            .fixed(&self.author.0);
        w.finish()
    }
}

/// One symmetric key wrapped with HPKE to one device's X25519 key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyWrap {
    pub recipient: DeviceId,
    pub key: KeyId,
    /// The HPKE encapsulated key.
    pub enc: [u8; 32],
    pub ciphertext: Vec<u8>,
}

impl KeyWrap {
    fn write(&self, w: &mut Writer) {
        w.u8(crate::VERSION)
            .fixed(&self.recipient.0)
            .fixed(&self.key.encode())
            .fixed(&self.enc)
            .var(&self.ciphertext);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        expect_version(r, "key wrap")?;
        Ok(Self {
            recipient: DeviceId(r.array("wrap recipient")?),
            key: KeyId::read(r)?,
            enc: r.array("wrap encapsulated key")?,
            ciphertext: r
                .var("wrap ciphertext", WRAPPED_KEY_LEN, WRAPPED_KEY_LEN)?
                .to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        self.write(&mut w);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        let out = Self::read(&mut r)?;
        r.finish("key wrap")?;
        Ok(out)
    }

    /// The HPKE associated data: the wrap's own header, so a wrap cannot be
    /// re-labelled for another device or key.
    pub fn aad(recipient: &DeviceId, key: &KeyId) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .fixed(&recipient.0)
            .fixed(&key.encode());
        w.finish()
    }

    pub fn encode_list(wraps: &[KeyWrap]) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .u32(u32::try_from(wraps.len()).unwrap_or(u32::MAX));
        for wrap in wraps {
            wrap.write(&mut w);
        }
        w.finish()
    }

    pub fn decode_list(bytes: &[u8]) -> Result<Vec<KeyWrap>, DecodeError> {
        let mut r = Reader::new(bytes);
        expect_version(&mut r, "key wrap list")?;
        let count = r.u32("key wrap count")? as usize;
        if count == 0 || count > MAX_WRAPS {
            return Err(DecodeError::BadLength {
                what: "key wrap count",
                len: count,
                min: 1,
                max: MAX_WRAPS,
            });
        }
        let mut wraps = Vec::with_capacity(count);
        for _ in 0..count {
            wraps.push(KeyWrap::read(&mut r)?);
        }
        r.finish("key wrap list")?;
        Ok(wraps)
    }
}
