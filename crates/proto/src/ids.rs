//! Identifiers and public keys. All are fixed-size byte arrays; ids print as hex.

use std::fmt;

use sha2::{Digest, Sha256};

use crate::codec::{DecodeError, Reader, Writer};
use crate::labels;

macro_rules! byte_id {
    ($(#[$doc:meta])* $name:ident, $len:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $len]);

        impl $name {
            pub const LEN: usize = $len;

            pub fn as_bytes(&self) -> &[u8; $len] {
                &self.0
            }

            pub fn to_hex(&self) -> String {
                hex::encode(self.0)
            }

            /// Parses the lower-case or upper-case hex form.
            pub fn from_hex(s: &str) -> Result<Self, DecodeError> {
                let mut out = [0u8; $len];
                hex::decode_to_slice(s, &mut out).map_err(|_| DecodeError::NonCanonical {
                    what: stringify!($name),
                    why: "not hex of the right length",
                })?;
                Ok(Self(out))
            }

            pub fn from_slice(s: &[u8]) -> Result<Self, DecodeError> {
                let arr: [u8; $len] = s.try_into().map_err(|_| DecodeError::BadLength {
                    what: stringify!($name),
                    len: s.len(),
                    min: $len,
                    max: $len,
                })?;
                Ok(Self(arr))
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.to_hex())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.to_hex())
            }
        }
    };
}

byte_id!(
    /// The couple's shared space: 16 random bytes.
    SpaceId,
    16
);
byte_id!(
    /// One partner. 16 random bytes chosen by the member's first device.
    MemberId,
    16
);
byte_id!(
    /// A device: SHA-256 over a label and its two public keys (see [`DevicePublic::id`]).
    DeviceId,
    32
);
byte_id!(
    /// One item, and the idempotency key of its upload: 16 random bytes.
    EntryId,
    16
);
byte_id!(
    /// A SHA-256 digest used to chain envelopes and roster events.
    Hash32,
    32
);

impl Hash32 {
    /// The "previous hash" of the first link of a chain.
    pub const ZERO: Hash32 = Hash32([0u8; 32]);
}

/// A device's public keys: Ed25519 for signatures, X25519 for receiving wrapped keys.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct DevicePublic {
    pub sign: [u8; 32],
    pub kx: [u8; 32],
}

impl DevicePublic {
    pub const ENCODED_LEN: usize = 64;

    /// `SHA-256(label || sign || kx)`.
    pub fn id(&self) -> DeviceId {
        let mut h = Sha256::new();
        h.update(labels::DEVICE_ID);
        h.update(self.sign);
        h.update(self.kx);
        DeviceId(h.finalize().into())
    }

    pub(crate) fn write(&self, w: &mut Writer) {
        w.fixed(&self.sign).fixed(&self.kx);
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            sign: r.array("device signing key")?,
            kx: r.array("device exchange key")?,
        })
    }
}

impl fmt::Debug for DevicePublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DevicePublic({})", self.id().to_hex())
    }
}

/// A labelled SHA-256: `SHA-256(label || part_1 || ... || part_n)`.
pub fn hash_labelled(label: &[u8], parts: &[&[u8]]) -> Hash32 {
    let mut h = Sha256::new();
    h.update(label);
    for p in parts {
        h.update(p);
    }
    Hash32(h.finalize().into())
}
