//! Messages exchanged through the relay's pairing mailbox.
//!
//! ```text
//! message = version u8 | role u8 (1 inviter, 2 joiner) | tag u8 | payload
//!   tag 1 Pake    : spake2 message var(1..=64)
//!   tag 2 Confirm : mac 32
//!   tag 3 Sealed  : nonce 24 | ciphertext var(16..=MAX_PAIRING_SEALED)
//! ```

use crate::codec::{expect_version, DecodeError, Reader, Writer};

/// The largest sealed pairing payload (a roster and keys fit easily).
pub const MAX_PAIRING_SEALED: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Inviter,
    Joiner,
}

impl Role {
    fn tag(self) -> u8 {
        match self {
            Role::Inviter => 1,
            Role::Joiner => 2,
        }
    }

    pub fn other(self) -> Role {
        match self {
            Role::Inviter => Role::Joiner,
            Role::Joiner => Role::Inviter,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PairingPayload {
    Pake(Vec<u8>),
    Confirm([u8; 32]),
    Sealed {
        nonce: [u8; 24],
        ciphertext: Vec<u8>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PairingMessage {
    pub from: Role,
    pub payload: PairingPayload,
}

impl PairingMessage {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION).u8(self.from.tag());
        match &self.payload {
            PairingPayload::Pake(msg) => {
                w.u8(1).var(msg);
            }
            PairingPayload::Confirm(mac) => {
                w.u8(2).fixed(mac);
            }
            PairingPayload::Sealed { nonce, ciphertext } => {
                w.u8(3).fixed(nonce).var(ciphertext);
            }
        }
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        expect_version(&mut r, "pairing message")?;
        let from = match r.u8("pairing role")? {
            1 => Role::Inviter,
            2 => Role::Joiner,
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "pairing role",
                    tag,
                })
            }
        };
        let payload = match r.u8("pairing message kind")? {
            1 => PairingPayload::Pake(r.var("spake2 message", 1, 64)?.to_vec()),
            2 => PairingPayload::Confirm(r.array("pairing confirmation")?),
            3 => PairingPayload::Sealed {
                nonce: r.array("pairing nonce")?,
                ciphertext: r
                    .var("pairing ciphertext", 16, MAX_PAIRING_SEALED)?
                    .to_vec(),
            },
            tag => {
                return Err(DecodeError::UnknownTag {
                    what: "pairing message kind",
                    tag,
                })
            }
        };
        r.finish("pairing message")?;
        Ok(Self { from, payload })
    }
}
