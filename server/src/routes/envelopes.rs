//! Appending and pulling envelopes, and the WebSocket stream of new ones.

use attune_proto::api::{
    codes, AppendEnvelopes, AppendResult, Appended, Page, Stored, StoredEnvelope, B64,
};
use attune_proto::{Envelope, Hold, SpaceId};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::Json;
use rayon::prelude::*;
use serde::Deserialize;

use crate::auth::Member;
use crate::error::ApiError;
use crate::state::SharedState;
use crate::store::{NewEnvelope, NewHeld, Pulled, StoreError};

/// Batches at least this long are checked on several cores; below it, handing
/// the work to other threads costs more than it saves.
const PARALLEL_FROM: usize = 8;

fn check_envelope(
    raw: &[u8],
    index: usize,
    space: SpaceId,
    signer: &attune_proto::DeviceId,
    roster: &attune_proto::Roster,
    max_envelope: usize,
) -> Result<NewEnvelope, ApiError> {
    let key = roster
        .device(signer)
        .map(|d| d.verifier)
        .ok_or_else(|| ApiError::forbidden("this device is not a member of this space"))?;
    if raw.len() > max_envelope {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::ENVELOPE_TOO_LARGE,
            format!(
                "envelope {index} is {} bytes; this relay accepts at most {max_envelope}",
                raw.len()
            ),
        ));
    }
    let env = Envelope::decode(raw).map_err(|e| {
        ApiError::bad_request(codes::MALFORMED_ENVELOPE, format!("envelope {index}: {e}"))
    })?;
    let h = env.header;
    if h.legacy_key.is_some() {
        return Err(ApiError::bad_request(
            codes::UNSUPPORTED_VERSION,
            format!("envelope {index} is in the version 1 format, which names its key in the clear; this relay stores protocol 2 envelopes only: update attune"),
        ));
    }
    if h.space != space {
        return Err(ApiError::bad_request(
            codes::MALFORMED_ENVELOPE,
            format!("envelope {index} belongs to another space"),
        ));
    }
    if &h.author != signer {
        return Err(ApiError::forbidden(format!(
            "envelope {index} is authored by another device; a device uploads only its own envelopes"
        )));
    }
    if !roster.may_author(&h.author, h.seq) {
        return Err(ApiError::forbidden(format!(
            "envelope {index}: this device may not write to this space any more"
        )));
    }
    env.verify_with(&key).map_err(|_| {
        ApiError::bad_request(
            codes::BAD_SIGNATURE,
            format!("envelope {index}: the author's signature does not verify"),
        )
    })?;
    Ok(NewEnvelope {
        author: h.author,
        seq: h.seq,
        prev: h.prev,
        hash: env.hash(),
        entry: h.entry,
        bytes: raw.to_vec(),
        held: None,
    })
}

/// Gives each envelope its hold slot (one per envelope, in order, 104 bytes):
/// the relay files it under its opaque tag with the uploading member, and will
/// serve it (the entry id, nonce and ciphertext) once another member's slot
/// has the same tag.
fn attach_holds(
    holds: &[B64],
    envelopes: &mut [NewEnvelope],
    signer: &attune_proto::DeviceId,
    roster: &attune_proto::Roster,
) -> Result<(), ApiError> {
    if holds.len() != envelopes.len() {
        return Err(ApiError::bad_request(
            codes::BAD_REQUEST,
            format!(
                "{} hold slots for {} envelopes: every envelope comes with exactly one",
                holds.len(),
                envelopes.len()
            ),
        ));
    }
    let device = roster
        .device(signer)
        .ok_or_else(|| ApiError::forbidden("this device is not a member of this space"))?;
    for (i, (raw, env)) in holds.iter().zip(envelopes.iter_mut()).enumerate() {
        let hold = Hold::decode(&raw.0).map_err(|_| {
            ApiError::bad_request(
                codes::BAD_REQUEST,
                format!("hold slot {i} is not {} bytes", Hold::ENCODED_LEN),
            )
        })?;
        env.held = Some(NewHeld {
            tag: hold.tag,
            member: device.member,
            bytes: hold.released(env.entry).encode(),
        });
    }
    Ok(())
}

fn stored(p: Pulled) -> StoredEnvelope {
    StoredEnvelope {
        cursor: p.cursor,
        body: if p.reveal {
            Stored::Reveal(B64(p.bytes))
        } else {
            Stored::Envelope(B64(p.bytes))
        },
    }
}

/// `POST /v1/spaces/{space}/envelopes`: a batch, stored all or nothing.
pub async fn append(
    State(state): State<SharedState>,
    member: Member,
) -> Result<Json<AppendResult>, ApiError> {
    let req: AppendEnvelopes = member.json()?;
    // The body keeps its room in the budget until the request ends: its parsed
    // copies live as long.
    let Member {
        space,
        device,
        roster,
        body: _held,
    } = member;
    let max_batch = state.config.max_batch;
    if req.envelopes.is_empty() || req.envelopes.len() > max_batch {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            codes::BATCH_TOO_LARGE,
            format!("send between 1 and {max_batch} envelopes per request"),
        ));
    }
    let max_envelope = state.config.max_envelope;
    // Signature checks are CPU work: keep them off the async executor, and
    // spread a large batch over the cores. Every envelope is checked strictly
    // on its own (Ed25519 batch verification is not strict); the first bad one
    // by index refuses the whole batch, whichever thread found it.
    let checked = tokio::task::spawn_blocking(move || {
        let check = |(i, raw): (usize, &B64)| {
            check_envelope(&raw.0, i, space, &device, &roster, max_envelope)
        };
        let results: Vec<_> = if req.envelopes.len() >= PARALLEL_FROM {
            req.envelopes.par_iter().enumerate().map(check).collect()
        } else {
            req.envelopes.iter().enumerate().map(check).collect()
        };
        let mut checked = results.into_iter().collect::<Result<Vec<_>, _>>()?;
        attach_holds(&req.holds, &mut checked, &device, &roster)?;
        Ok::<_, ApiError>(checked)
    })
    .await
    .map_err(|_| ApiError::internal())??;
    let bytes: u64 = checked.iter().map(|e| e.bytes.len() as u64).sum();
    let placed = state
        .store
        .append_envelopes(space, checked, state.config.space_quota)
        .await
        .map_err(|e| match e {
            StoreError::Sequence {
                index,
                expected,
                found,
            } => ApiError::conflict(
                codes::SEQUENCE_CONFLICT,
                format!("envelope {index} has sequence number {found}; the relay expects {expected} next from this device"),
            ),
            StoreError::Chain { index } => ApiError::conflict(
                codes::CHAIN_CONFLICT,
                format!("envelope {index} does not chain to this device's previous envelope"),
            ),
            StoreError::EntryReused { index } => ApiError::conflict(
                codes::ENTRY_ID_REUSED,
                format!("envelope {index} reuses an entry id with different content"),
            ),
            StoreError::Quota { quota } => ApiError::new(
                StatusCode::INSUFFICIENT_STORAGE,
                codes::QUOTA_EXCEEDED,
                format!("this space has reached its quota of {quota} bytes on this relay"),
            ),
            StoreError::Revoked { index } => ApiError::forbidden(format!(
                "envelope {index}: this device was revoked from this space"
            )),
            StoreError::NoSpace => ApiError::not_found("no such space on this relay"),
            _ => ApiError::internal(),
        })?;
    let new = placed.iter().filter(|p| !p.duplicate).count() as u64;
    state
        .metrics
        .record_append(new, bytes, placed.len() as u64 - new);
    if let Some(max) = placed.iter().map(|p| p.cursor).max() {
        state.notify(space, max);
    }
    Ok(Json(AppendResult {
        results: placed
            .into_iter()
            .map(|p| Appended {
                cursor: p.cursor,
                duplicate: p.duplicate,
            })
            .collect(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct PullQuery {
    #[serde(default)]
    after: u64,
    limit: Option<usize>,
}

pub fn query<T: serde::de::DeserializeOwned>(uri: &axum::http::Uri) -> Result<T, ApiError> {
    Query::<T>::try_from_uri(uri).map(|q| q.0).map_err(|e| {
        ApiError::bad_request(codes::BAD_REQUEST, format!("bad query parameters: {e}"))
    })
}

/// `GET /v1/spaces/{space}/envelopes?after=C&limit=N`.
pub async fn pull(
    State(state): State<SharedState>,
    uri: axum::http::Uri,
    member: Member,
) -> Result<Json<Page>, ApiError> {
    let space = member.space;
    let q: PullQuery = query(&uri)?;
    let limit = q
        .limit
        .unwrap_or(state.config.page_limit)
        .clamp(1, state.config.page_limit);
    let mut rows = state
        .store
        .pull(space, q.after, limit + 1)
        .await
        .map_err(|_| ApiError::internal())?;
    let more = rows.len() > limit;
    rows.truncate(limit);
    let next = rows.last().map_or(q.after, |r| r.cursor);
    Ok(Json(Page {
        envelopes: rows.into_iter().map(stored).collect(),
        next,
        more,
    }))
}

/// `GET /v1/spaces/{space}/stream?after=C` (WebSocket): every envelope after the
/// cursor, then new ones as they are committed, as JSON text messages.
pub async fn stream(
    State(state): State<SharedState>,
    uri: axum::http::Uri,
    ws: Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
    member: Member,
) -> Result<Response, ApiError> {
    let ws = ws.map_err(|e| {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            format!("this route is a WebSocket stream; connect with a WebSocket client ({e})"),
        )
    })?;
    let (space, device) = (member.space, member.device);
    let q: PullQuery = query(&uri)?;
    let notices = state.subscribe(space).ok_or_else(ApiError::internal)?;
    Ok(ws
        .max_message_size(64 * 1024)
        // The stream only sends; small buffers keep 1,000 open streams cheap.
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .on_upgrade(move |socket| run_stream(state, space, device, q.after, socket, notices)))
}

async fn run_stream(
    state: SharedState,
    space: SpaceId,
    device: attune_proto::DeviceId,
    mut after: u64,
    mut socket: WebSocket,
    mut notices: tokio::sync::broadcast::Receiver<u64>,
) {
    state.metrics.stream_opened();
    let mut shutdown = state.shutdown.clone();
    let page = state.config.page_limit;
    'outer: loop {
        // A device revoked while streaming stops receiving at once.
        match state.roster(space).await {
            Ok(r) if r.is_active(&device) => {}
            _ => break,
        }
        // Catch up from the cursor, page by page.
        loop {
            let Ok(rows) = state.store.pull(space, after, page).await else {
                break 'outer;
            };
            let full = rows.len() == page;
            for row in rows {
                let cursor = row.cursor;
                let item = stored(row);
                let Ok(text) = serde_json::to_string(&item) else {
                    break 'outer;
                };
                if socket.send(Message::Text(text.into())).await.is_err() {
                    break 'outer;
                }
                after = cursor;
            }
            if !full {
                break;
            }
        }
        tokio::select! {
            n = notices.recv() => match n {
                Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            },
            msg = socket.recv() => match msg {
                Some(Ok(Message::Close(_))) | None | Some(Err(_)) => break,
                // Anything a client sends is ignored; the stream is one-way.
                Some(Ok(_)) => {}
            },
            _ = shutdown.changed() => break,
        }
    }
    let _ = socket.send(Message::Close(None)).await;
    state.metrics.stream_closed();
}
