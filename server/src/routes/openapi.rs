//! The OpenAPI 3 document, generated from [`super::ROUTES`].

use attune_proto::api;
use serde_json::{json, Map, Value};

use super::{Auth, ROUTES};

/// Every body's schema, derived from the types the relay and the client
/// (de)serialize (attune-proto's `api`), so the document cannot drift from them.
#[derive(utoipa::OpenApi)]
#[openapi(components(schemas(
    api::B64,
    api::ErrorBody,
    api::ErrorDetail,
    api::CreateSpace,
    api::SpaceCreated,
    api::RosterEvents,
    api::AppendRoster,
    api::AppendEnvelopes,
    api::Appended,
    api::AppendResult,
    api::Page,
    api::StoredEnvelope,
    api::Stored,
    api::MailboxOpened,
    api::MailboxJoined,
    api::MailboxPost,
    api::MailboxMessages,
    api::PutRecovery,
    api::RecoveryFound,
)))]
struct Schemas;

fn schemas() -> Value {
    use utoipa::OpenApi;
    Schemas::openapi()
        .components
        .map(|c| serde_json::to_value(c.schemas).unwrap_or_default())
        .unwrap_or_default()
}

/// (request schema, response schema) by route.
fn bodies(method: &str, path: &str) -> (Option<&'static str>, Option<&'static str>) {
    match (method, path) {
        ("POST", "/v1/spaces") => (Some("CreateSpace"), Some("SpaceCreated")),
        ("GET", "/v1/spaces/{space}/roster") => (None, Some("RosterEvents")),
        ("POST", "/v1/spaces/{space}/roster") => (Some("AppendRoster"), Some("RosterEvents")),
        ("POST", "/v1/spaces/{space}/envelopes") => (Some("AppendEnvelopes"), Some("AppendResult")),
        ("GET", "/v1/spaces/{space}/envelopes") => (None, Some("Page")),
        ("POST", "/v1/spaces/{space}/mailboxes") => (None, Some("MailboxOpened")),
        ("POST", "/v1/mailboxes/{mailbox}/join") => (Some("MailboxPost"), Some("MailboxJoined")),
        ("POST", "/v1/mailboxes/{mailbox}/messages") => (Some("MailboxPost"), None),
        ("GET", "/v1/mailboxes/{mailbox}/messages") => (None, Some("MailboxMessages")),
        ("PUT", "/v1/spaces/{space}/recovery") => (Some("PutRecovery"), None),
        ("GET", "/v1/recovery/{lookup}") => (None, Some("RecoveryFound")),
        _ => (None, None),
    }
}

fn query_params(method: &str, path: &str) -> Vec<Value> {
    let int = |name: &str, desc: &str| {
        json!({ "name": name, "in": "query", "required": false, "description": desc,
                "schema": { "type": "integer", "minimum": 0 } })
    };
    match (method, path) {
        ("GET", "/v1/spaces/{space}/envelopes") => vec![
            int("after", "return envelopes with a cursor after this one"),
            int("limit", "most envelopes to return"),
        ],
        ("GET", "/v1/spaces/{space}/stream") => vec![int("after", "start after this cursor")],
        ("GET", "/v1/mailboxes/{mailbox}/messages") => vec![
            int("after", "skip this many of the other side's messages"),
            int("wait", "seconds to wait for a message (at most 25)"),
        ],
        _ => vec![],
    }
}

pub fn document() -> Value {
    let mut paths = Map::new();
    for spec in ROUTES {
        let mut params: Vec<Value> = ["space", "mailbox", "lookup"]
            .iter()
            .filter(|p| spec.path.contains(&format!("{{{p}}}")))
            .map(|p| {
                json!({ "name": p, "in": "path", "required": true,
                        "schema": { "type": if *p == "mailbox" { "integer" } else { "string" } } })
            })
            .collect();
        params.extend(query_params(spec.method, spec.path));
        let (req, resp) = bodies(spec.method, spec.path);
        let mut responses = Map::new();
        let ok = match resp {
            Some(schema) => json!({ "description": "success",
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } }),
            None => json!({ "description": "success" }),
        };
        responses.insert(spec.success.to_string(), ok);
        if !spec.errors.is_empty() || spec.auth != Auth::None {
            responses.insert(
                "default".into(),
                json!({ "description": format!("error; codes include: {}", spec.errors.join(", ")),
                        "content": { "application/json": { "schema": { "$ref": "#/components/schemas/ErrorBody" } } } }),
            );
        }
        let mut op = json!({
            "summary": spec.summary,
            "operationId": format!("{}_{}", spec.method.to_lowercase(),
                spec.path.trim_matches('/').replace(['/', '{', '}', '.'], "_")),
            "parameters": params,
            "responses": responses,
        });
        if let Some(schema) = req {
            op["requestBody"] = json!({ "required": true,
                "content": { "application/json": { "schema": { "$ref": format!("#/components/schemas/{schema}") } } } });
        }
        match spec.auth {
            Auth::None => {}
            Auth::Signed => op["security"] = json!([{ "deviceSignature": [] }]),
            Auth::MailboxToken => op["security"] = json!([{ "mailboxToken": [] }]),
        }
        let entry = paths
            .entry(spec.path.to_string())
            .or_insert_with(|| json!({}));
        entry[spec.method.to_lowercase()] = op;
    }
    json!({
        "openapi": "3.0.3",
        "info": {
            "title": "attune relay",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Stores and forwards signed, encrypted envelopes for couples. It can read none of them. Binary fields are unpadded base64url; byte layouts are in PROTOCOL.md."
        },
        "paths": paths,
        "components": {
            "schemas": schemas(),
            "securitySchemes": {
                "deviceSignature": {
                    "type": "apiKey", "in": "header", "name": "x-attune-signature",
                    "description": "Ed25519 signature by the device over the canonical request string (PROTOCOL.md §7), with x-attune-device, x-attune-timestamp and x-attune-nonce headers, and x-attune-body-hash (hex) on a request with a body: the relay checks the signature before it reads the body."
                },
                "mailboxToken": {
                    "type": "apiKey", "in": "header", "name": "x-attune-mailbox-token",
                    "description": "The token of one side of a pairing mailbox: the opener's from opening it, the joiner's from joining it (PROTOCOL.md §8)."
                }
            }
        }
    })
}
