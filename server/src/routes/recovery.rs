//! Recovery bundles (PROTOCOL.md §16). A member's device files the bundle of a
//! recovery key that is in the roster; a blank device fetches it by the lookup
//! id its recovery code gives, with no keys of its own yet. The bundle is
//! encrypted under a key stretched from the code: the relay holds ciphertext it
//! cannot open, under an id it cannot invert.

use attune_proto::api::{codes, PutRecovery, RecoveryFound, B64};
use attune_proto::{DeviceId, Hash32};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::Member;
use crate::error::ApiError;
use crate::peer::ClientAddr;
use crate::state::SharedState;
use crate::store::{RecoveryBundle, StoreError};

/// Largest bundle accepted: a recovery key's identity and a few thousand keys.
const MAX_BUNDLE: usize = 256 * 1024;

fn bad(message: &str) -> ApiError {
    ApiError::bad_request(codes::BAD_REQUEST, message.to_string())
}

/// `PUT /v1/spaces/{space}/recovery`, signed by a device of the member whose
/// recovery key (in the roster, flagged as one) the bundle belongs to.
pub async fn put(State(state): State<SharedState>, member: Member) -> Result<StatusCode, ApiError> {
    let req: PutRecovery = member.json()?;
    let device = DeviceId::from_hex(&req.device)
        .map_err(|_| bad("the recovery key's device id must be 64 hex digits"))?;
    let lookup =
        Hash32::from_hex(&req.lookup).map_err(|_| bad("the lookup id must be 64 hex digits"))?;
    if req.bundle.0.is_empty() || req.bundle.0.len() > MAX_BUNDLE {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BODY_TOO_LARGE,
            format!("a recovery bundle holds 1 to {MAX_BUNDLE} bytes"),
        ));
    }
    let signer = member
        .roster
        .device(&member.device)
        .map(|d| d.member)
        .ok_or_else(|| ApiError::forbidden("this device is not a member of this space"))?;
    match member.roster.device(&device) {
        Some(d) if d.recovery && d.member == signer && d.revoked_after.is_none() => {}
        _ => {
            return Err(ApiError::forbidden(
                "a recovery bundle must belong to an active recovery key of the signing device's own member",
            ))
        }
    }
    state
        .store
        .put_recovery(
            member.space,
            RecoveryBundle {
                device,
                lookup,
                bundle: req.bundle.0,
            },
        )
        .await
        .map_err(|e| match e {
            StoreError::Revoked { .. } => ApiError::forbidden("this recovery key was revoked"),
            StoreError::RecoveryExists => ApiError::conflict(
                codes::BAD_REQUEST,
                "another recovery key already uses this lookup id",
            ),
            _ => ApiError::internal(),
        })?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v1/recovery/{lookup}`: no keys needed; the lookup id is the proof of
/// knowing the code (256 bits, derived from 130 random ones). Ten a minute per
/// address: a restore needs one or two.
pub async fn get(
    State(state): State<SharedState>,
    from: ClientAddr,
    super::Param(lookup): super::Param,
) -> Result<Json<RecoveryFound>, ApiError> {
    state
        .limits
        .take_lookup(from.0)
        .await
        .map_err(|held| match held {
            crate::limits::Held::Wait(secs) => {
                let mut e = ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    codes::RATE_LIMITED,
                    format!("too many recovery lookups from this address; try again in {secs} s"),
                );
                e.retry_after_secs = Some(secs);
                e
            }
            crate::limits::Held::Store(_) => ApiError::internal(),
        })?;
    let lookup =
        Hash32::from_hex(&lookup).map_err(|_| bad("the lookup id must be 64 hex digits"))?;
    let found = state
        .store
        .recovery(lookup)
        .await
        .map_err(|_| ApiError::internal())?
        .ok_or_else(|| {
            ApiError::not_found(
                "no recovery bundle under this code on this relay (a typo, a code that was replaced, or another relay)",
            )
        })?;
    Ok(Json(RecoveryFound {
        space: found.space.to_hex(),
        bundle: B64(found.bundle),
    }))
}
