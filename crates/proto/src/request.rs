//! The canonical string a device signs to authenticate one HTTP request.
//!
//! ```text
//! request = version u8 | method var | path var | query var | timestamp_ms i64
//!         | nonce 16 | body_hash 32 | device 32
//! ```
//! Signed with Ed25519 over `REQUEST_SIG || request`. The body hash is
//! `SHA-256(REQUEST_BODY || body)`; the nonce makes every request unique so the
//! relay can refuse a replayed signature.

use crate::codec::{expect_version, DecodeError, Reader, Writer};
use crate::ids::{hash_labelled, DeviceId, Hash32};
use crate::labels;
use crate::sig::{self, SignatureError};

pub const MAX_METHOD_LEN: usize = 16;
pub const MAX_PATH_LEN: usize = 2048;
pub const MAX_QUERY_LEN: usize = 4096;

/// Everything about a request that its signature covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestToSign {
    pub method: String,
    pub path: String,
    /// The raw query string without `?`, empty when there is none.
    pub query: String,
    pub timestamp_ms: i64,
    pub nonce: [u8; 16],
    pub body_hash: Hash32,
    pub device: DeviceId,
}

/// `SHA-256(REQUEST_BODY || body)`.
pub fn body_hash(body: &[u8]) -> Hash32 {
    hash_labelled(labels::REQUEST_BODY, &[body])
}

impl RequestToSign {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(crate::VERSION)
            .var(self.method.as_bytes())
            .var(self.path.as_bytes())
            .var(self.query.as_bytes())
            .i64(self.timestamp_ms)
            .fixed(&self.nonce)
            .fixed(&self.body_hash.0)
            .fixed(&self.device.0);
        w.finish()
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        expect_version(&mut r, "signed request")?;
        let text = |r: &mut Reader<'_>, what: &'static str, max: usize| {
            let raw = r.var(what, 0, max)?;
            String::from_utf8(raw.to_vec()).map_err(|_| DecodeError::NonCanonical {
                what,
                why: "not UTF-8",
            })
        };
        let method = text(&mut r, "request method", MAX_METHOD_LEN)?;
        let path = text(&mut r, "request path", MAX_PATH_LEN)?;
        let query = text(&mut r, "request query", MAX_QUERY_LEN)?;
        let req = Self {
            method,
            path,
            query,
            timestamp_ms: r.i64("request timestamp")?,
            nonce: r.array("request nonce")?,
            body_hash: Hash32(r.array("request body hash")?),
            device: DeviceId(r.array("request device")?),
        };
        r.finish("signed request")?;
        Ok(req)
    }

    pub fn verify(&self, sign_key: &[u8; 32], signature: &[u8; 64]) -> Result<(), SignatureError> {
        self.verify_with(&sig::Verifier::new(sign_key)?, signature)
    }

    /// As [`Self::verify`], with the device's key already decoded.
    pub fn verify_with(
        &self,
        key: &sig::Verifier,
        signature: &[u8; 64],
    ) -> Result<(), SignatureError> {
        key.verify(labels::REQUEST_SIG, &self.encode(), signature)
    }
}
