//! The HTTP API. One table, [`ROUTES`], lists every route; the router and the
//! OpenAPI document are both built from it, so neither can miss a route.

use std::time::Instant;

use attune_proto::api::codes;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put, MethodRouter};
use axum::{Json, Router};

use crate::error::ApiError;
use crate::state::SharedState;

pub mod envelopes;
pub mod openapi;
pub mod pairing;
pub mod recovery;
pub mod spaces;

/// A path parameter whose rejection is a JSON error like every other.
#[derive(Debug)]
pub struct Param(pub String);

impl<S: Send + Sync> axum::extract::FromRequestParts<S> for Param {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        state: &S,
    ) -> Result<Self, ApiError> {
        axum::extract::Path::<String>::from_request_parts(parts, state)
            .await
            .map(|p| Param(p.0))
            .map_err(|e| ApiError::bad_request(codes::BAD_REQUEST, format!("bad path: {e}")))
    }
}

/// How a route authenticates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Auth {
    None,
    /// Signed by a device of the space (or, for creation, the creating device).
    Signed,
    /// The pairing mailbox token of one side (`x-attune-mailbox-token`).
    MailboxToken,
}

/// One route of the API, as documented.
#[derive(Debug, Clone, Copy)]
pub struct RouteSpec {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub auth: Auth,
    /// Success status and the stable error codes this route may answer with.
    pub success: u16,
    pub errors: &'static [&'static str],
}

const AUTH_ERRORS: &[&str] = &[
    codes::UNAUTHENTICATED,
    codes::BAD_SIGNATURE,
    codes::STALE_TIMESTAMP,
    codes::REPLAYED_REQUEST,
    codes::FORBIDDEN,
    codes::DEVICE_REVOKED,
    codes::RATE_LIMITED,
    codes::NOT_FOUND,
];

pub const ROUTES: &[RouteSpec] = &[
    RouteSpec { method: "GET", path: "/healthz", summary: "Liveness: the relay answers.", auth: Auth::None, success: 200, errors: &[] },
    RouteSpec { method: "GET", path: "/metrics", summary: "Counters, gauges and request-latency histograms in the OpenMetrics text format.", auth: Auth::None, success: 200, errors: &[] },
    RouteSpec { method: "GET", path: "/v1/openapi.json", summary: "This document.", auth: Auth::None, success: 200, errors: &[] },
    RouteSpec { method: "POST", path: "/v1/spaces", summary: "Create a space from its signed roster creation event.", auth: Auth::Signed, success: 201, errors: &[codes::MALFORMED_JSON, codes::ROSTER_REJECTED, codes::SPACE_EXISTS, codes::BODY_TOO_LARGE, codes::CREATION_NOT_ALLOWED, codes::OVERLOADED] },
    RouteSpec { method: "DELETE", path: "/v1/spaces/{space}", summary: "Erase a space and everything in it (a member device).", auth: Auth::Signed, success: 200, errors: AUTH_ERRORS },
    RouteSpec { method: "GET", path: "/v1/spaces/{space}/roster", summary: "Read the signed roster events.", auth: Auth::Signed, success: 200, errors: AUTH_ERRORS },
    RouteSpec { method: "POST", path: "/v1/spaces/{space}/roster", summary: "Append signed roster events.", auth: Auth::Signed, success: 200, errors: &[codes::MALFORMED_JSON, codes::ROSTER_REJECTED] },
    RouteSpec { method: "POST", path: "/v1/spaces/{space}/envelopes", summary: "Append a batch of envelopes, all or nothing; repeated entry ids return the original cursor.", auth: Auth::Signed, success: 200, errors: &[codes::MALFORMED_JSON, codes::MALFORMED_ENVELOPE, codes::ENVELOPE_TOO_LARGE, codes::BATCH_TOO_LARGE, codes::BODY_TOO_LARGE, codes::SEQUENCE_CONFLICT, codes::CHAIN_CONFLICT, codes::ENTRY_ID_REUSED, codes::QUOTA_EXCEEDED] },
    RouteSpec { method: "GET", path: "/v1/spaces/{space}/envelopes", summary: "Pull envelopes after a cursor, paged (query: after, limit).", auth: Auth::Signed, success: 200, errors: AUTH_ERRORS },
    RouteSpec { method: "GET", path: "/v1/spaces/{space}/stream", summary: "WebSocket: envelopes after a cursor, then new ones as they are stored (query: after).", auth: Auth::Signed, success: 101, errors: AUTH_ERRORS },
    RouteSpec { method: "POST", path: "/v1/spaces/{space}/mailboxes", summary: "Open a pairing mailbox; returns its number and the opener's token.", auth: Auth::Signed, success: 201, errors: &[codes::TOO_MANY_MAILBOXES] },
    RouteSpec { method: "POST", path: "/v1/mailboxes/{mailbox}/messages", summary: "Post one pairing message from the token's side.", auth: Auth::MailboxToken, success: 204, errors: &[codes::UNAUTHENTICATED, codes::MALFORMED_JSON, codes::BAD_REQUEST, codes::BODY_TOO_LARGE, codes::MAILBOX_UNAVAILABLE, codes::MAILBOX_FULL, codes::RATE_LIMITED, codes::OVERLOADED] },
    RouteSpec { method: "GET", path: "/v1/mailboxes/{mailbox}/messages", summary: "Read the other side's pairing messages, long-polling (query: after, wait).", auth: Auth::MailboxToken, success: 200, errors: &[codes::UNAUTHENTICATED, codes::BAD_REQUEST, codes::MAILBOX_UNAVAILABLE, codes::RATE_LIMITED] },
    RouteSpec { method: "POST", path: "/v1/mailboxes/{mailbox}/close", summary: "Close a pairing mailbox (either side) after the exchange or a failed confirmation.", auth: Auth::MailboxToken, success: 204, errors: &[codes::UNAUTHENTICATED, codes::BAD_REQUEST, codes::MAILBOX_UNAVAILABLE, codes::RATE_LIMITED] },
    // Last, so that the fuzz corpus's route numbers keep their meaning.
    RouteSpec { method: "POST", path: "/v1/mailboxes/{mailbox}/join", summary: "Join a pairing with the joiner's key exchange (once per mailbox); returns the joiner's token. Rate-limited per address and relay-wide.", auth: Auth::None, success: 201, errors: &[codes::MALFORMED_JSON, codes::BAD_REQUEST, codes::BODY_TOO_LARGE, codes::MAILBOX_UNAVAILABLE, codes::MAILBOX_FULL, codes::RATE_LIMITED, codes::OVERLOADED] },
    RouteSpec { method: "PUT", path: "/v1/spaces/{space}/recovery", summary: "File (or replace) the recovery bundle of an active recovery key of the signer's own member.", auth: Auth::Signed, success: 204, errors: &[codes::MALFORMED_JSON, codes::BAD_REQUEST, codes::BODY_TOO_LARGE, codes::FORBIDDEN, codes::DEVICE_REVOKED] },
    RouteSpec { method: "GET", path: "/v1/recovery/{lookup}", summary: "Fetch a recovery bundle by the lookup id its code gives; gone once its recovery key is revoked. Ten lookups a minute per address.", auth: Auth::None, success: 200, errors: &[codes::BAD_REQUEST, codes::NOT_FOUND, codes::RATE_LIMITED] },
];

fn handler(spec: &RouteSpec) -> MethodRouter<SharedState> {
    match (spec.method, spec.path) {
        ("GET", "/healthz") => get(healthz),
        ("GET", "/metrics") => get(metrics),
        ("GET", "/v1/openapi.json") => get(openapi_json),
        ("POST", "/v1/spaces") => post(spaces::create),
        ("DELETE", "/v1/spaces/{space}") => delete(spaces::delete),
        ("GET", "/v1/spaces/{space}/roster") => get(spaces::read_roster),
        ("POST", "/v1/spaces/{space}/roster") => post(spaces::append_roster),
        ("POST", "/v1/spaces/{space}/envelopes") => post(envelopes::append),
        ("GET", "/v1/spaces/{space}/envelopes") => get(envelopes::pull),
        ("GET", "/v1/spaces/{space}/stream") => get(envelopes::stream),
        ("POST", "/v1/spaces/{space}/mailboxes") => post(pairing::open),
        ("POST", "/v1/mailboxes/{mailbox}/join") => post(pairing::join),
        ("POST", "/v1/mailboxes/{mailbox}/messages") => post(pairing::post),
        ("GET", "/v1/mailboxes/{mailbox}/messages") => get(pairing::read),
        ("POST", "/v1/mailboxes/{mailbox}/close") => post(pairing::close),
        ("PUT", "/v1/spaces/{space}/recovery") => put(recovery::put),
        ("GET", "/v1/recovery/{lookup}") => get(recovery::get),
        // Unreachable while ROUTES and this match agree; a test checks they do.
        _ => get(unknown_route),
    }
}

/// The whole application: routes, fallbacks, metrics, tracing, time limits.
pub fn router(state: SharedState) -> Router {
    let mut router: Router<SharedState> = Router::new();
    for spec in ROUTES {
        router = router.route(spec.path, handler(spec));
    }
    let timeout = state.config.request_timeout();
    router
        .fallback(unknown_route)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(state.clone(), observe))
        .layer(middleware::from_fn(move |req: Request, next: Next| {
            time_limit(req, next, timeout)
        }))
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(state)
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

async fn metrics(State(state): State<SharedState>) -> Response {
    state.metrics.set_mailboxes(state.mailboxes.count().await);
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn openapi_json() -> Json<serde_json::Value> {
    Json(openapi::document())
}

async fn unknown_route(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        codes::UNKNOWN_ROUTE,
        format!("no route {method} {}; see /v1/openapi.json", uri.path()),
    )
}

async fn method_not_allowed(method: Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        codes::METHOD_NOT_ALLOWED,
        format!(
            "{} does not accept {method}; see /v1/openapi.json",
            uri.path()
        ),
    )
}

/// One span per request with the route template, status and latency, and the
/// request counter. Never content, signatures or keys.
async fn observe(State(state): State<SharedState>, req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |m| m.as_str())
        .to_string();
    let method = req.method().clone();
    let start = Instant::now();
    let span = tracing::info_span!("request", %method, route = %route);
    let resp = {
        let _guard = span.enter();
        drop(_guard);
        tracing::Instrument::instrument(next.run(req), span.clone()).await
    };
    let status = resp.status().as_u16();
    state
        .metrics
        .record_request(&route, status, start.elapsed().as_secs_f64());
    span.in_scope(|| {
        tracing::info!(
            status,
            latency_ms = start.elapsed().as_secs_f64() * 1000.0,
            "served"
        );
    });
    resp
}

async fn time_limit(req: Request, next: Next, limit: std::time::Duration) -> Response {
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TIMEOUT,
            "the relay took too long to answer; try again",
        )
        .into_response(),
    }
}
