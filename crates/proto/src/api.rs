//! The relay's HTTP API: JSON bodies (binary fields as unpadded base64url), the
//! authentication headers, and the stable error codes. Shared by relay and client.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Hex device id of the signing device.
pub const HEADER_DEVICE: &str = "x-attune-device";
/// Unix milliseconds when the request was signed.
pub const HEADER_TIMESTAMP: &str = "x-attune-timestamp";
/// 16 random bytes, hex.
pub const HEADER_NONCE: &str = "x-attune-nonce";
/// The Ed25519 signature of the request string, base64url.
pub const HEADER_SIGNATURE: &str = "x-attune-signature";
/// Hex SHA-256 body hash the signature covers (§7), so the relay can check the
/// signature before it reads the body. Required on a signed request with a body.
pub const HEADER_BODY_HASH: &str = "x-attune-body-hash";
/// The relay operator's space-creation token, on `POST /v1/spaces` when the relay
/// requires one.
pub const HEADER_CREATE_TOKEN: &str = "x-attune-create-token";
/// A pairing mailbox token (hex): the opener's, from opening the mailbox, or the
/// joiner's, from joining it. Every later request on the mailbox carries it.
pub const HEADER_MAILBOX_TOKEN: &str = "x-attune-mailbox-token";
/// The protocol version the client speaks ([`crate::PROTOCOL`]), on every request.
pub const HEADER_PROTOCOL: &str = "x-attune-protocol";

/// Bytes that travel as an unpadded base64url string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct B64(pub Vec<u8>);

#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for B64 {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some("unpadded base64url"))
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for B64 {}

impl Serialize for B64 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&URL_SAFE_NO_PAD.encode(&self.0))
    }
}

impl<'de> Deserialize<'de> for B64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        URL_SAFE_NO_PAD
            .decode(s.as_bytes())
            .map(B64)
            .map_err(|_| serde::de::Error::custom("not unpadded base64url"))
    }
}

pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub fn from_b64(s: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s.as_bytes()).ok()
}

/// `POST /v1/spaces`: the signed creation event of the space's roster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct CreateSpace {
    pub create_event: B64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SpaceCreated {
    pub space: String,
}

/// `POST /v1/spaces/{space}/roster`: events to append, in order.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppendRoster {
    pub events: Vec<B64>,
}

/// `GET /v1/spaces/{space}/roster`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RosterEvents {
    pub events: Vec<B64>,
}

/// `POST /v1/spaces/{space}/envelopes`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct AppendEnvelopes {
    pub envelopes: Vec<B64>,
    /// One hold slot (PROTOCOL.md §9, 104 bytes) per envelope, in the same order:
    /// a sealed answer's key, kept back until the other member's answer to the
    /// same exchange has arrived with its own, or random bytes.
    pub holds: Vec<B64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Appended {
    pub cursor: u64,
    /// True if this entry id was already stored: `cursor` is the original's.
    pub duplicate: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppendResult {
    pub results: Vec<Appended>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct StoredEnvelope {
    pub cursor: u64,
    #[serde(flatten)]
    pub body: Stored,
}

impl StoredEnvelope {
    /// The bytes at this cursor (an envelope's, or a released reveal's).
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            Stored::Envelope(b) | Stored::Reveal(b) => &b.0,
        }
    }

    /// True for a released held reveal.
    pub fn is_reveal(&self) -> bool {
        matches!(self.body, Stored::Reveal(_))
    }
}

/// What sits at a cursor: an envelope, or a held reveal the relay released.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub enum Stored {
    #[serde(rename = "envelope")]
    Envelope(B64),
    #[serde(rename = "reveal")]
    Reveal(B64),
}

/// `GET /v1/spaces/{space}/envelopes?after=C&limit=N`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Page {
    pub envelopes: Vec<StoredEnvelope>,
    /// Pass as `after` to continue.
    pub next: u64,
    pub more: bool,
}

/// `POST /v1/spaces/{space}/mailboxes`: the mailbox number and the opener's token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailboxOpened {
    pub mailbox: u32,
    /// The opener's mailbox token, hex.
    pub token: String,
    pub expires_in_secs: u64,
}

/// `POST /v1/mailboxes/{n}/join` (the joiner's key exchange) and
/// `POST /v1/mailboxes/{n}/messages`: one pairing message from one side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct MailboxPost {
    pub message: B64,
}

/// `POST /v1/mailboxes/{n}/join`: the joiner's token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailboxJoined {
    /// The joiner's mailbox token, hex.
    pub token: String,
}

/// `GET /v1/mailboxes/{n}/messages?after=K&wait=S`: the other side's messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MailboxMessages {
    pub messages: Vec<B64>,
}

/// `PUT /v1/spaces/{space}/recovery`: a member's recovery bundle, filed under a
/// lookup id derived from the recovery code, for a recovery key in the roster.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct PutRecovery {
    /// Hex id of the recovery key's roster device.
    pub device: String,
    /// Hex of `SHA-256(RECOVERY_LOOKUP || code)`.
    pub lookup: String,
    pub bundle: B64,
}

/// `GET /v1/recovery/{lookup}`: the bundle and the space it belongs to.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RecoveryFound {
    pub space: String,
    pub bundle: B64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ErrorDetail {
    pub code: String,
    pub message: String,
}

/// The stable error codes of the API.
pub mod codes {
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    pub const BAD_SIGNATURE: &str = "bad_signature";
    pub const STALE_TIMESTAMP: &str = "stale_timestamp";
    pub const REPLAYED_REQUEST: &str = "replayed_request";
    pub const FORBIDDEN: &str = "forbidden";
    pub const NOT_FOUND: &str = "not_found";
    pub const UNKNOWN_ROUTE: &str = "unknown_route";
    pub const METHOD_NOT_ALLOWED: &str = "method_not_allowed";
    pub const MALFORMED_JSON: &str = "malformed_json";
    pub const BAD_REQUEST: &str = "bad_request";
    pub const MALFORMED_ENVELOPE: &str = "malformed_envelope";
    pub const BODY_TOO_LARGE: &str = "body_too_large";
    pub const ENVELOPE_TOO_LARGE: &str = "envelope_too_large";
    pub const BATCH_TOO_LARGE: &str = "batch_too_large";
    pub const SEQUENCE_CONFLICT: &str = "sequence_conflict";
    pub const CHAIN_CONFLICT: &str = "chain_conflict";
    pub const ENTRY_ID_REUSED: &str = "entry_id_reused";
    pub const QUOTA_EXCEEDED: &str = "quota_exceeded";
    pub const RATE_LIMITED: &str = "rate_limited";
    pub const SPACE_EXISTS: &str = "space_exists";
    pub const ROSTER_REJECTED: &str = "roster_rejected";
    /// A revocation that would retract envelopes the relay already holds.
    pub const REVOKE_BACKDATED: &str = "revoke_backdated";
    /// The space's roster has as many events as the relay allows.
    pub const ROSTER_FULL: &str = "roster_full";
    /// The signing device was revoked from the space: it is refused from then on.
    pub const DEVICE_REVOKED: &str = "device_revoked";
    pub const MAILBOX_UNAVAILABLE: &str = "mailbox_unavailable";
    pub const MAILBOX_FULL: &str = "mailbox_full";
    pub const TOO_MANY_MAILBOXES: &str = "too_many_mailboxes";
    pub const CREATION_NOT_ALLOWED: &str = "creation_not_allowed";
    pub const TIMEOUT: &str = "timeout";
    pub const TOO_MANY_CONNECTIONS: &str = "too_many_connections";
    pub const OVERLOADED: &str = "overloaded";
    pub const INTERNAL: &str = "internal";
    /// 400: the request (or an envelope in it) is of another protocol version.
    pub const UNSUPPORTED_VERSION: &str = "unsupported_version";
}
