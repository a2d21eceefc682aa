//! The pairing mailbox routes. Opening one needs a signed request from a space
//! device and returns the opener's token; joining needs only the number, because
//! the joiner has no keys yet, and returns the joiner's token; posting, reading
//! and closing need one of the two tokens. SPAKE2 and key confirmation protect the
//! exchange itself; the tokens and limits keep strangers from disturbing it.

use std::time::Duration;

use attune_proto::api::{
    self, codes, MailboxJoined, MailboxMessages, MailboxOpened, MailboxPost, B64,
};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde::Deserialize;

use super::envelopes::query;
use crate::auth::{LimitedBody, Member};
use crate::error::ApiError;
use crate::mailbox::Token;
use crate::peer::ClientAddr;
use crate::state::SharedState;

fn parse_mailbox(s: &str) -> Result<u32, ApiError> {
    s.parse().map_err(|_| {
        ApiError::bad_request(
            codes::BAD_REQUEST,
            "the mailbox number must be a positive integer",
        )
    })
}

fn token(headers: &HeaderMap) -> Result<Token, ApiError> {
    let mut token = Token::default();
    headers
        .get(api::HEADER_MAILBOX_TOKEN)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| hex::decode_to_slice(v, &mut token).ok())
        .ok_or_else(|| {
            ApiError::unauthenticated(
                codes::UNAUTHENTICATED,
                format!(
                    "missing or malformed {} header: only the two sides of a pairing may use its mailbox",
                    api::HEADER_MAILBOX_TOKEN
                ),
            )
        })?;
    Ok(token)
}

fn message(body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let req: MailboxPost = serde_json::from_slice(body).map_err(ApiError::malformed_json)?;
    Ok(req.message.0)
}

/// Longest a read may wait for a message.
const MAX_WAIT_SECS: u64 = 25;

/// `POST /v1/spaces/{space}/mailboxes`.
pub async fn open(
    State(state): State<SharedState>,
    from: ClientAddr,
    member: Member,
) -> Result<(StatusCode, Json<MailboxOpened>), ApiError> {
    let opened = state.mailboxes.open(member.space, from).await?;
    state.metrics.set_mailboxes(state.mailboxes.count().await);
    Ok((
        StatusCode::CREATED,
        Json(MailboxOpened {
            mailbox: opened.number,
            token: opened.token,
            expires_in_secs: opened.expires_in_secs,
        }),
    ))
}

/// `POST /v1/mailboxes/{n}/join`: the joiner's key exchange.
pub async fn join(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    from: ClientAddr,
    LimitedBody(body): LimitedBody,
) -> Result<(StatusCode, Json<MailboxJoined>), ApiError> {
    let number = parse_mailbox(&number)?;
    let token = state.mailboxes.join(number, from, message(&body)?).await?;
    Ok((StatusCode::CREATED, Json(MailboxJoined { token })))
}

/// `POST /v1/mailboxes/{n}/messages`.
pub async fn post(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    from: ClientAddr,
    headers: HeaderMap,
    LimitedBody(body): LimitedBody,
) -> Result<StatusCode, ApiError> {
    let number = parse_mailbox(&number)?;
    let token = token(&headers)?;
    state
        .mailboxes
        .post(number, &token, from, message(&body)?)
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
pub struct ReadQuery {
    #[serde(default)]
    after: usize,
    #[serde(default)]
    wait: u64,
}

/// `GET /v1/mailboxes/{n}/messages?after=K&wait=S`: the other side's messages
/// from index K on, waiting up to S seconds (at most 25) for one.
pub async fn read(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    from: ClientAddr,
    headers: HeaderMap,
    uri: axum::http::Uri,
) -> Result<Json<MailboxMessages>, ApiError> {
    let number = parse_mailbox(&number)?;
    let q: ReadQuery = query(&uri)?;
    let token = token(&headers)?;
    let wait = Duration::from_secs(q.wait.min(MAX_WAIT_SECS));
    let messages = state
        .mailboxes
        .read(number, &token, from, q.after, wait)
        .await?;
    Ok(Json(MailboxMessages {
        messages: messages.into_iter().map(B64).collect(),
    }))
}

/// `POST /v1/mailboxes/{n}/close`: after a finished exchange or a failed
/// confirmation; the code cannot be used again.
pub async fn close(
    State(state): State<SharedState>,
    super::Param(number): super::Param,
    from: ClientAddr,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let number = parse_mailbox(&number)?;
    state
        .mailboxes
        .close(number, &token(&headers)?, from)
        .await?;
    state.metrics.set_mailboxes(state.mailboxes.count().await);
    Ok(StatusCode::NO_CONTENT)
}
