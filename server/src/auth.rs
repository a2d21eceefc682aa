//! Signed-request authentication (PROTOCOL.md §7): every request to a space is
//! signed by a device key over method, path, query, timestamp, nonce and body hash.
//! No passwords, no sessions.

use attune_proto::api::{self, codes};
use attune_proto::{request, DeviceId, RequestToSign};
use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{HeaderMap, StatusCode};

use crate::error::ApiError;
use crate::state::SharedState;

/// A request's body and claimed signature, not yet verified: verifying needs the
/// signer's key, which depends on the route (the roster, or a creation event).
#[derive(Debug)]
pub struct Signed {
    pub device: DeviceId,
    pub body: Bytes,
    request: RequestToSign,
    signature: [u8; 64],
}

/// A request body read under the relay's size limit, with no authentication.
#[derive(Debug)]
pub struct LimitedBody(pub Bytes);

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

async fn read_body(req: Request, limit: usize) -> Result<Bytes, ApiError> {
    axum::body::to_bytes(req.into_body(), limit)
        .await
        .map_err(|e| {
            // Only a body over the limit is "too large"; anything else is a broken body.
            let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
            let mut too_large = false;
            while let Some(err) = source {
                if err.is::<http_body_util::LengthLimitError>() {
                    too_large = true;
                }
                source = err.source();
            }
            if too_large {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    codes::BODY_TOO_LARGE,
                    format!("the request body is larger than this relay's limit of {limit} bytes"),
                )
            } else {
                ApiError::bad_request(
                    codes::BAD_REQUEST,
                    "the request body could not be read (truncated or malformed framing)",
                )
            }
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

fn malformed(what: &str) -> ApiError {
    ApiError::unauthenticated(
        codes::UNAUTHENTICATED,
        format!("the {what} header is malformed"),
    )
}

impl FromRequest<SharedState> for LimitedBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        Ok(Self(read_body(req, state.config.max_body).await?))
    }
}

impl FromRequest<SharedState> for Signed {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &SharedState) -> Result<Self, ApiError> {
        let headers = req.headers().clone();
        let method = req.method().as_str().to_string();
        let path = req.uri().path().to_string();
        let query = req.uri().query().unwrap_or("").to_string();
        let device = DeviceId::from_hex(header(&headers, api::HEADER_DEVICE)?)
            .map_err(|_| malformed(api::HEADER_DEVICE))?;
        let timestamp_ms: i64 = header(&headers, api::HEADER_TIMESTAMP)?
            .parse()
            .map_err(|_| malformed(api::HEADER_TIMESTAMP))?;
        let mut nonce = [0u8; 16];
        hex::decode_to_slice(header(&headers, api::HEADER_NONCE)?, &mut nonce)
            .map_err(|_| malformed(api::HEADER_NONCE))?;
        let signature: [u8; 64] = api::from_b64(header(&headers, api::HEADER_SIGNATURE)?)
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| malformed(api::HEADER_SIGNATURE))?;
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
        let body = read_body(req, state.config.max_body).await?;
        let request = RequestToSign {
            method,
            path,
            query,
            timestamp_ms,
            nonce,
            body_hash: request::body_hash(&body),
            device,
        };
        Ok(Self {
            device,
            body,
            request,
            signature,
        })
    }
}

impl Signed {
    /// Verifies the signature with the device's signing key, refuses replays, and
    /// takes a rate-limit token.
    pub fn verify(&self, state: &SharedState, sign_key: &[u8; 32]) -> Result<(), ApiError> {
        self.request
            .verify(sign_key, &self.signature)
            .map_err(|_| {
                ApiError::unauthenticated(
                    codes::BAD_SIGNATURE,
                    "the request signature does not verify for this device",
                )
            })?;
        if !state.first_use(&self.signature, now_ms()) {
            return Err(ApiError::unauthenticated(
                codes::REPLAYED_REQUEST,
                "this signed request was already used; sign each request afresh",
            ));
        }
        state.take_token(&self.device).map_err(|secs| {
            let mut e = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                codes::RATE_LIMITED,
                format!("too many requests from this device; retry in {secs} s"),
            );
            e.retry_after_secs = Some(secs);
            e
        })
    }

    /// Authenticates a device of the space's roster that is not revoked.
    pub async fn member(
        &self,
        state: &SharedState,
        space: attune_proto::SpaceId,
    ) -> Result<std::sync::Arc<attune_proto::Roster>, ApiError> {
        let roster = state.roster(space).await?;
        let Some(device) = roster.device(&self.device) else {
            return Err(ApiError::forbidden(
                "this device is not a member of this space",
            ));
        };
        self.verify(state, &device.public.sign)?;
        if !roster.is_active(&self.device) {
            return Err(ApiError::forbidden(
                "this device was revoked from this space",
            ));
        }
        Ok(roster)
    }

    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, ApiError> {
        serde_json::from_slice(&self.body).map_err(ApiError::malformed_json)
    }
}
