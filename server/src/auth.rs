//! Signed-request authentication (PROTOCOL.md §7): every request to a space is
//! signed by a device key over method, path, query, timestamp, nonce and body hash.
//! No passwords, no sessions.
//!
//! Everything that needs no body is checked first: the headers, the timestamp, the
//! device in the space's roster and not revoked, the signature over the body hash
//! the client declares (`x-attune-body-hash`), replays and the rate. Only then is
//! the body read, under `--max-body` and the relay's body budget, and checked
//! against that hash: a request nobody has authenticated makes the relay hold none
//! of its body. The two routes whose body must be read before any signature can be
//! checked (space creation, whose signer is in the body, and unsigned pairing
//! posts) read at most [`PREAUTH_BODY_LIMIT`] bytes, under a small shared budget
//! that refuses at once when it is full.

use std::sync::Arc;

use attune_proto::api::{self, codes};
use attune_proto::{request, DeviceId, Hash32, RequestToSign, Roster, SpaceId, Verifier};
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::{header, request::Parts, HeaderMap, StatusCode};
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::error::ApiError;
use crate::limits::Held;
use crate::routes::spaces::parse_space;
use crate::routes::Param;
use crate::state::SharedState;

/// The largest body read before a signature can be checked: a pairing post (a
/// 16 KiB message in base64url JSON) or a space's creation event.
pub const PREAUTH_BODY_LIMIT: usize = 24 * 1024;

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A body in memory, holding its share of the budget it was read under.
#[derive(Debug)]
pub struct HeldBody {
    pub bytes: Bytes,
    _held: Option<OwnedSemaphorePermit>,
}

fn too_large(limit: usize) -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        codes::BODY_TOO_LARGE,
        format!("the request body is larger than this relay's limit of {limit} bytes"),
    )
}

fn overloaded() -> ApiError {
    let mut e = ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        codes::OVERLOADED,
        "the relay is holding as many request bodies as it can; try again in a moment",
    );
    e.retry_after_secs = Some(1);
    e
}

/// Takes `n` bytes of `budget`, waiting for room if `wait`, else refusing at once.
async fn reserve(
    budget: &Arc<Semaphore>,
    n: usize,
    wait: bool,
) -> Result<Option<OwnedSemaphorePermit>, ApiError> {
    if n == 0 {
        return Ok(None);
    }
    let n = u32::try_from(n).map_err(|_| overloaded())?;
    let permit = if wait {
        budget.clone().acquire_many_owned(n).await.ok()
    } else {
        budget.clone().try_acquire_many_owned(n).ok()
    };
    permit.map(Some).ok_or_else(overloaded)
}

/// The declared `Content-Length`, if any.
fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ApiError> {
    headers
        .get(header::CONTENT_LENGTH)
        .map(|v| {
            v.to_str().ok().and_then(|s| s.parse().ok()).ok_or_else(|| {
                ApiError::bad_request(codes::BAD_REQUEST, "the Content-Length header is malformed")
            })
        })
        .transpose()
}

fn has_body(headers: &HeaderMap) -> Result<bool, ApiError> {
    Ok(content_length(headers)?.is_some_and(|n| n > 0)
        || headers.contains_key(header::TRANSFER_ENCODING))
}

/// Reads a body of at most `limit` bytes under `budget`. A declared length over
/// the limit is refused before anything is read, and room for it is taken at once;
/// a body of unknown length takes room as it arrives.
async fn read_body(
    headers: &HeaderMap,
    body: axum::body::Body,
    limit: usize,
    budget: &Arc<Semaphore>,
    wait: bool,
) -> Result<HeldBody, ApiError> {
    let declared = content_length(headers)?;
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(too_large(limit));
    }
    let declared = declared.map_or(0, |n| n as usize);
    let mut held = reserve(budget, declared, wait).await?;
    let mut room = declared;
    let mut buf: Vec<u8> = Vec::with_capacity(declared);
    let mut body = body;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| {
            ApiError::bad_request(
                codes::BAD_REQUEST,
                "the request body could not be read (truncated or malformed framing)",
            )
        })?;
        let Ok(data) = frame.into_data() else {
            continue;
        };
        let len = buf.len() + data.len();
        if len > limit {
            return Err(too_large(limit));
        }
        if len > room {
            let more = reserve(budget, len - room, wait).await?;
            match (&mut held, more) {
                (Some(h), Some(m)) => h.merge(m),
                (h, m) => *h = h.take().or(m),
            }
            room = len;
        }
        buf.extend_from_slice(&data);
    }
    Ok(HeldBody {
        bytes: Bytes::from(buf),
        _held: held,
    })
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, ApiError> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::unauthenticated(
                codes::UNAUTHENTICATED,
                format!(
                    "missing or unreadable {name} header: requests must be signed by a device key"
                ),
            )
        })
}

/// Refuses a client of another protocol before anything else: an older client
/// would misread protocol 2 envelopes, so it is told plainly to update.
fn check_protocol(headers: &HeaderMap) -> Result<(), ApiError> {
    let spoken = headers
        .get(api::HEADER_PROTOCOL)
        .and_then(|v| v.to_str().ok());
    if spoken == Some(attune_proto::PROTOCOL.to_string().as_str()) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        codes::UNSUPPORTED_VERSION,
        format!(
            "this relay speaks attune protocol {} and this client speaks {}: update attune on this device (nothing was read or stored)",
            attune_proto::PROTOCOL,
            match spoken {
                Some(v) => format!("protocol {}", v.chars().take(8).collect::<String>()),
                None => "an older one".to_string(),
            }
        ),
    ))
}

fn malformed(what: &str) -> ApiError {
    ApiError::unauthenticated(
        codes::UNAUTHENTICATED,
        format!("the {what} header is malformed"),
    )
}

fn body_mismatch() -> ApiError {
    ApiError::unauthenticated(
        codes::BAD_SIGNATURE,
        "the request body does not match the hash its signature covers",
    )
}

/// The authentication headers of a request, parsed, with the timestamp checked.
#[derive(Debug)]
struct Claim {
    request: RequestToSign,
    signature: [u8; 64],
    /// Whether the client declared the body hash (otherwise it is the empty body's).
    declared_hash: bool,
}

impl Claim {
    fn parse(parts: &Parts, state: &SharedState) -> Result<Self, ApiError> {
        let headers = &parts.headers;
        let device = DeviceId::from_hex(header(headers, api::HEADER_DEVICE)?)
            .map_err(|_| malformed(api::HEADER_DEVICE))?;
        let timestamp_ms: i64 = header(headers, api::HEADER_TIMESTAMP)?
            .parse()
            .map_err(|_| malformed(api::HEADER_TIMESTAMP))?;
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(header(headers, api::HEADER_NONCE)?, &mut nonce)
            .map_err(|_| malformed(api::HEADER_NONCE))?;
        let signature: [u8; 64] = api::from_b64(header(headers, api::HEADER_SIGNATURE)?)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed(api::HEADER_SIGNATURE))?;
        // A signed request: of this protocol, or refused before anything else.
        check_protocol(headers)?;
        let body_hash = match headers.get(api::HEADER_BODY_HASH) {
            Some(v) => Some(
                v.to_str()
                    .ok()
                    .and_then(|s| Hash32::from_hex(s).ok())
                    .ok_or_else(|| malformed(api::HEADER_BODY_HASH))?,
            ),
            None => None,
        };
        let skew_ms = state.config.max_skew_secs.saturating_mul(1000);
        if now_ms().abs_diff(timestamp_ms) > skew_ms {
            return Err(ApiError::unauthenticated(
                codes::STALE_TIMESTAMP,
                format!(
                    "the request's timestamp is more than {} seconds from the relay's clock; check this device's clock",
                    state.config.max_skew_secs
                ),
            ));
        }
        if timestamp_ms < state.started_ms {
            return Err(ApiError::unauthenticated(
                codes::STALE_TIMESTAMP,
                "the request was signed before this relay started; sign it again (if this repeats, this device's clock is behind the relay's)",
            ));
        }
        Ok(Self {
            request: RequestToSign {
                method: parts.method.as_str().to_string(),
                path: parts.uri.path().to_string(),
                query: parts.uri.query().unwrap_or("").to_string(),
                timestamp_ms,
                nonce,
                body_hash: body_hash.unwrap_or_else(|| request::body_hash(b"")),
                device,
            },
            signature,
            declared_hash: body_hash.is_some(),
        })
    }

    /// Verifies the signature with the device's signing key, refuses replays, and
    /// takes a rate-limit token.
    async fn verify(&self, state: &SharedState, key: &Verifier) -> Result<(), ApiError> {
        self.request
            .verify_with(key, &self.signature)
            .map_err(|_| {
                ApiError::unauthenticated(
                    codes::BAD_SIGNATURE,
                    "the request signature does not verify for this device",
                )
            })?;
        if !state.first_use(&self.signature, now_ms()).await? {
            return Err(ApiError::unauthenticated(
                codes::REPLAYED_REQUEST,
                "this signed request was already used; sign each request afresh",
            ));
        }
        state
            .limits
            .take_token(&self.request.device)
            .await
            .map_err(|held| match held {
                Held::Wait(secs) => {
                    let mut e = ApiError::new(
                        StatusCode::TOO_MANY_REQUESTS,
                        codes::RATE_LIMITED,
                        format!("too many requests from this device; retry in {secs} s"),
                    );
                    e.retry_after_secs = Some(secs);
                    e
                }
                Held::Store(e) => {
                    tracing::error!(error = %e, "the rate limit failed");
                    ApiError::internal()
                }
            })
    }
}

/// A request to a space (`/v1/spaces/{space}/…`) signed by a device of its roster
/// that is not revoked, verified before its body was read.
#[derive(Debug)]
pub struct Member {
    pub space: SpaceId,
    pub device: DeviceId,
    pub roster: Arc<Roster>,
    pub body: HeldBody,
}

impl FromRequest<SharedState> for Member {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (mut parts, body) = req.into_parts();
        let claim = Claim::parse(&parts, state)?;
        if !claim.declared_hash && has_body(&parts.headers)? {
            return Err(ApiError::unauthenticated(
                codes::UNAUTHENTICATED,
                format!(
                    "a signed request with a body must carry the {} header",
                    api::HEADER_BODY_HASH
                ),
            ));
        }
        let max_body = state.config.max_body;
        if content_length(&parts.headers)?.is_some_and(|n| n > max_body as u64) {
            return Err(too_large(max_body));
        }
        let Param(space) = Param::from_request_parts(&mut parts, state).await?;
        let space = parse_space(&space)?;
        let roster = state.roster(space).await?;
        let device = claim.request.device;
        let Some(entry) = roster.device(&device) else {
            return Err(ApiError::forbidden(
                "this device is not a member of this space",
            ));
        };
        if !roster.is_active(&device) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                codes::DEVICE_REVOKED,
                "this device was revoked from this space",
            ));
        }
        claim.verify(state, &entry.verifier).await?;
        let body = read_body(&parts.headers, body, max_body, &state.bodies, true).await?;
        if request::body_hash(&body.bytes) != claim.request.body_hash {
            return Err(body_mismatch());
        }
        Ok(Self {
            space,
            device,
            roster,
            body,
        })
    }
}

impl Member {
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body.bytes).map_err(ApiError::malformed_json)
    }
}

/// `POST /v1/spaces`: the signing key is in the body (the creation event), so the
/// body is read first, at most [`PREAUTH_BODY_LIMIT`] bytes; the operator's
/// creation token, when set, is checked before that.
#[derive(Debug)]
pub struct Creation {
    pub device: DeviceId,
    pub body: HeldBody,
    claim: Claim,
}

impl FromRequest<SharedState> for Creation {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let mut claim = Claim::parse(&parts, state)?;
        if let Some(expected) = &state.config.create_token {
            let given = parts
                .headers
                .get(api::HEADER_CREATE_TOKEN)
                .map(|v| v.as_bytes())
                .unwrap_or_default();
            if !bool::from(subtle::ConstantTimeEq::ct_eq(given, expected.as_bytes())) {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    codes::CREATION_NOT_ALLOWED,
                    "this relay creates spaces only with its operator's token: pass it with --relay-token (or ATTUNE_RELAY_TOKEN)",
                ));
            }
        }
        let limit = PREAUTH_BODY_LIMIT.min(state.config.max_body);
        let body = read_body(&parts.headers, body, limit, &state.preauth, false).await?;
        let hash = request::body_hash(&body.bytes);
        if claim.declared_hash && hash != claim.request.body_hash {
            return Err(body_mismatch());
        }
        claim.request.body_hash = hash;
        Ok(Self {
            device: claim.request.device,
            body,
            claim,
        })
    }
}

impl Creation {
    /// Verifies the signature with the key the creation event names.
    pub async fn verify(&self, state: &SharedState, sign_key: &[u8; 32]) -> Result<(), ApiError> {
        let key = Verifier::new(sign_key).map_err(|_| {
            ApiError::unauthenticated(
                codes::BAD_SIGNATURE,
                "the request signature does not verify for this device",
            )
        })?;
        self.claim.verify(state, &key).await
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body.bytes).map_err(ApiError::malformed_json)
    }
}

/// An unauthenticated request body (pairing posts), at most
/// [`PREAUTH_BODY_LIMIT`] bytes, read under the pre-authentication budget.
#[derive(Debug)]
pub struct LimitedBody(pub Bytes);

impl FromRequest<SharedState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let (parts, body) = req.into_parts();
        let limit = PREAUTH_BODY_LIMIT.min(state.config.max_body);
        // The body is small and parsed at once: its room is given back here.
        let held = read_body(&parts.headers, body, limit, &state.preauth, false).await?;
        Ok(Self(held.bytes))
    }
}
