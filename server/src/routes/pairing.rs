//! The pairing mailbox routes. Opening one needs a signed request from a space
//! device; posting and reading need only the number, because the joiner has no
//! keys yet: SPAKE2 and key confirmation protect the exchange itself.

use std::time::Duration;

use attune_proto::api::{codes, MailboxMessages, MailboxOpened, MailboxPost, B64};
use attune_proto::Role;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::Deserialize;

use super::envelopes::query;
use crate::auth::{LimitedBody, Member};
use crate::error::ApiError;
use crate::state::SharedState;

fn parse_mailbox(s: &str) -> Result<u32, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            "the mailbox number must be a positive integer",
        )
    })
}

/// Longest a read may wait for a message.
const MAX_WAIT_SECS: u64 = 25;

/// `POST /v1/spaces/{space}/mailboxes`.
pub async fn open(
    State(state): State<SharedState>,
    _member: Member,
) -> Result<(StatusCode, Json<MailboxOpened>), ApiError> {
    let (mailbox, expires_in_secs) = state.mailboxes.open()?;
    state.metrics.set_mailboxes(state.mailboxes.count());
    Ok((
        StatusCode::CREATED,
        Json(MailboxOpened {
            mailbox,
            expires_in_secs,
        }),
    ))
}

/// `POST /v1/mailboxes/{n}/messages`.
pub async fn post(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    LimitedBody(body): LimitedBody,
) -> Result<StatusCode, ApiError> {
    let req: MailboxPost = serde_json::from_slice(&body).map_err(ApiError::malformed_json)?;
    state
        .mailboxes
        .post(parse_mailbox(&number)?, req.message.0)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    role: String,
    #[serde(default)]
    after: usize,
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/mailboxes/{n}/messages?role=inviter|joiner&after=K&wait=S`: the other
/// side's messages from index K on, waiting up to S seconds (at most 25) for one.
pub async fn read(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    uri: axum::http::Uri,
) -> Result<Json<MailboxMessages>, ApiError> {
    let q: ReadQuery = query(&uri)?;
    let role = match q.role.as_str() {
        "inviter" => Role::Inviter,
        "joiner" => Role::Joiner,
        _ => {
            return Err(ApiError::bad_request(
                codes::BAD_REQUEST,
                "role must be inviter or joiner",
            ))
        }
    };
    let wait = Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
    let (messages, closed) = state
        .mailboxes
        .read(parse_mailbox(&number)?, role, q.after, wait)
        .await?;
    Ok(Json(MailboxMessages {
        messages: messages.into_iter().map(B64).collect(),
        closed,
    }))
}

/// `POST /v1/mailboxes/{n}/close`: after a finished exchange or a failed
/// confirmation; the code cannot be used again.
pub async fn close(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
) -> Result<StatusCode, ApiError> {
    state.mailboxes.close(parse_mailbox(&number)?)?;
    Ok(StatusCode::NO_CONTENT)
}
