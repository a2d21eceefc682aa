//! Creating and deleting spaces; reading and appending the roster.

use std::sync::Arc;

use attune_proto::api::{codes, AppendRoster, CreateSpace, RosterEvents, SpaceCreated, B64};
use attune_proto::{Roster, RosterChange, SignedRosterEvent, SpaceId};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use crate::auth::{Creation, Member};
use crate::error::ApiError;
use crate::state::SharedState;
use crate::store::{RosterAppend, StoreError};

pub fn parse_space(hex: &str) -> Result<SpaceId, ApiError> {
    SpaceId::from_hex(hex).map_err(|_| {
        ApiError::bad_request(codes::BAD_REQUEST, "the space id must be 32 hex digits")
    })
}

fn roster_rejected(e: impl std::fmt::Display) -> ApiError {
    ApiError::bad_request(
        codes::ROSTER_REJECTED,
        format!("the roster event was refused: {e}"),
    )
}

/// `POST /v1/spaces`, signed by the device the creation event creates (the
/// operator's token, when set, was checked before the body was read).
pub async fn create(
    State(state): State<SharedState>,
    signed: Creation,
) -> Result<(StatusCode, Json<SpaceCreated>), ApiError> {
    let req: CreateSpace = signed.json()?;
    let event = SignedRosterEvent::decode(&req.create_event.0).map_err(roster_rejected)?;
    let RosterChange::Create { device, .. } = event.event.change else {
        return Err(roster_rejected("the first event must create the space"));
    };
    if signed.device != device.id() {
        return Err(ApiError::forbidden(
            "a space must be created by the device its first roster event adds",
        ));
    }
    signed.verify(&state, &device.sign).await?;
    let space = event.event.space;
    let roster = Roster::verify(space, &[event]).map_err(roster_rejected)?;
    state
        .store
        .create_space(space, req.create_event.0)
        .await
        .map_err(|e| match e {
            StoreError::SpaceExists => {
                ApiError::conflict(codes::SPACE_EXISTS, "a space with this id already exists")
            }
            _ => ApiError::internal(),
        })?;
    state.set_roster(space, Arc::new(roster));
    Ok((
        StatusCode::CREATED,
        Json(SpaceCreated {
            space: space.to_hex(),
        }),
    ))
}

/// `GET /v1/spaces/{space}/roster`.
pub async fn read_roster(
    State(state): State<SharedState>,
    member: Member,
) -> Result<Json<RosterEvents>, ApiError> {
    let space = member.space;
    let events = state
        .store
        .roster(space)
        .await
        .map_err(|_| ApiError::internal())?
        .ok_or_else(|| ApiError::not_found("no such space on this relay"))?;
    Ok(Json(RosterEvents {
        events: events.into_iter().map(B64).collect(),
    }))
}

/// `POST /v1/spaces/{space}/roster`: the relay checks every rule it can, but cannot
/// add anything itself: each event is signed by a member device.
pub async fn append_roster(
    State(state): State<SharedState>,
    member: Member,
) -> Result<Json<RosterEvents>, ApiError> {
    let req: AppendRoster = member.json()?;
    let Member { space, roster, .. } = member;
    if req.events.is_empty() || req.events.len() > 64 {
        return Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            "send between 1 and 64 roster events",
        ));
    }
    // Every client reads the whole roster in one answer: keep it small.
    let max_events = state.config.max_roster_events;
    if roster.len() + req.events.len() as u64 > max_events {
        return Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            codes::ROSTER_FULL,
            format!("this space's roster is limited to {max_events} events on this relay"),
        ));
    }
    let mut next = (*roster).clone();
    let first_seq = next.len() + 1;
    let mut revokes = Vec::new();
    for raw in &req.events {
        let event = SignedRosterEvent::decode(&raw.0).map_err(roster_rejected)?;
        next.apply(&event).map_err(|e| match e {
            attune_proto::RosterError::BadSequence { .. }
            | attune_proto::RosterError::BrokenChain { .. } => ApiError::conflict(
                codes::ROSTER_REJECTED,
                format!("the roster changed meanwhile: {e}; read it again"),
            ),
            e => roster_rejected(e),
        })?;
        if let RosterChange::Revoke { device, last_seq } = event.event.change {
            revokes.push((device, last_seq));
        }
    }
    let append = RosterAppend {
        first_seq,
        events: req.events.into_iter().map(|b| b.0).collect(),
        revokes,
        quota: state.config.space_quota,
    };
    state
        .store
        .append_roster(space, append)
        .await
        .map_err(|e| match e {
            StoreError::RosterConflict { .. } => ApiError::conflict(
                codes::ROSTER_REJECTED,
                "the roster changed meanwhile; read it again",
            ),
            StoreError::RevokeBelowHead {
                head, last_seq, ..
            } => ApiError::conflict(
                codes::REVOKE_BACKDATED,
                format!(
                    "the revocation ends the device's envelopes at {last_seq}, but this relay already holds its envelope {head}: what was shared cannot be retracted; revoke it at {head} or later"
                ),
            ),
            StoreError::Quota { quota } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                codes::QUOTA_EXCEEDED,
                format!("this space has reached its quota of {quota} bytes on this relay"),
            ),
            StoreError::NoSpace => ApiError::not_found("no such space on this relay"),
            _ => ApiError::internal(),
        })?;
    state.set_roster(space, Arc::new(next));
    let events = state
        .store
        .roster(space)
        .await
        .map_err(|_| ApiError::internal())?
        .unwrap_or_default();
    Ok(Json(RosterEvents {
        events: events.into_iter().map(B64).collect(),
    }))
}

/// `DELETE /v1/spaces/{space}`: erases the space and everything in it.
pub async fn delete(
    State(state): State<SharedState>,
    member: Member,
) -> Result<Json<serde_json::Value>, ApiError> {
    let space = member.space;
    let deleted = state
        .store
        .delete_space(space)
        .await
        .map_err(|_| ApiError::internal())?;
    state.forget_space(space);
    Ok(Json(serde_json::json!({ "deleted": deleted })))
}
