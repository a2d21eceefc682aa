//! A typed client for the relay's HTTP API, signing every request with the device
//! key (PROTOCOL.md §7).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use attune_crypto::DeviceIdentity;
use attune_proto::api::{
    self, AppendEnvelopes, AppendResult, AppendRoster, CreateSpace, ErrorBody, MailboxJoined,
    MailboxMessages, MailboxOpened, MailboxPost, Page, RosterEvents, SpaceCreated, StoredEnvelope,
    B64,
};
use attune_proto::{request, RequestToSign, SpaceId};
use reqwest::{Method, StatusCode};
use thiserror::Error;

pub mod proxy;
mod transport;

use transport::{check, explain, tls_config, Setup};
pub use transport::{check_url, CA_FILE_VAR};

#[derive(Debug, Error)]
pub enum RelayError {
    #[error("`{url}` is not a relay URL: {hint}")]
    BadUrl { url: String, hint: String },
    #[error(
        "ATTUNE_CA_FILE={path} cannot be used: {why}; it must name a PEM file of CA certificates"
    )]
    CaFile { path: String, why: String },
    #[error("could not reach the relay at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "the stream from the relay at {url} was cut off: the relay stopped, or the network dropped"
    )]
    StreamCut { url: String },
    #[error("{0}")]
    Certificate(String),
    #[error("could not set up a secure connection with {url}: {detail}")]
    Tls { url: String, detail: String },
    #[error("the relay refused the request ({status} {code}): {message}")]
    Refused {
        status: u16,
        code: String,
        message: String,
    },
    #[error("the relay sent an unexpected answer: {0}")]
    BadAnswer(String),
    #[error("the relay's answer is larger than this client accepts ({limit} bytes)")]
    AnswerTooLarge { limit: usize },
}

/// The largest answer read from a relay. A page of envelopes is asked for in
/// sizes that fit (see `sync::pull`); anything larger is a broken or hostile
/// relay, and reading it whole could exhaust memory.
pub const MAX_ANSWER: usize = 32 * 1024 * 1024;

impl RelayError {
    /// The stable error code, when the relay refused.
    pub fn code(&self) -> Option<&str> {
        match self {
            RelayError::Refused { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// The authentication headers of a signed request: device, timestamp, nonce,
/// signature, and the body hash the signature covers (so the relay can check the
/// signature before it reads the body).
pub fn sign_headers(
    identity: &DeviceIdentity,
    method: &str,
    path: &str,
    query: &str,
    body: &[u8],
    timestamp_ms: i64,
    nonce: [u8; 16],
) -> Vec<(&'static str, String)> {
    let req = RequestToSign {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        timestamp_ms,
        nonce,
        body_hash: request::body_hash(body),
        device: identity.id(),
    };
    let signature = identity.sign_request(&req);
    vec![
        (api::HEADER_DEVICE, identity.id().to_hex()),
        (api::HEADER_TIMESTAMP, timestamp_ms.to_string()),
        (api::HEADER_NONCE, hex::encode(nonce)),
        (api::HEADER_SIGNATURE, api::b64(&signature)),
        (api::HEADER_BODY_HASH, req.body_hash.to_hex()),
        (api::HEADER_PROTOCOL, attune_proto::PROTOCOL.to_string()),
    ]
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A device's connection to one relay.
#[derive(Debug, Clone)]
pub struct RelayClient {
    base: String,
    /// The HTTP client and the TLS settings it shares with the WebSocket stream;
    /// or why there are none (a bad URL or CA file), said on every call.
    conn: Result<(reqwest::Client, Arc<rustls::ClientConfig>), Setup>,
    /// The SOCKS5 proxy every connection goes through (`ATTUNE_PROXY`), if any.
    proxy: Option<proxy::Proxy>,
    identity: DeviceIdentity,
    /// The relay operator's space-creation token, if the relay needs one.
    create_token: Option<String>,
}

impl RelayClient {
    /// A client for the relay at `base_url`, trusting the platform's certificate
    /// authorities and those in the PEM file named by `ATTUNE_CA_FILE`, if set.
    pub fn new(base_url: &str, identity: DeviceIdentity) -> Self {
        let ca_file = std::env::var_os(CA_FILE_VAR).filter(|v| !v.is_empty());
        Self::with_ca_file(base_url, identity, ca_file.map(PathBuf::from).as_deref())
    }

    /// [`Self::new`] with the extra CA file given instead of read from the environment.
    pub fn with_ca_file(base_url: &str, identity: DeviceIdentity, ca_file: Option<&Path>) -> Self {
        let proxy = proxy::from_env();
        let conn = check(base_url).and_then(|_| {
            let tls = tls_config(ca_file)?;
            let mut http = reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(60))
                .use_preconfigured_tls((*tls).clone())
                // Only the proxy attune is told about: never one from HTTP_PROXY.
                .no_proxy();
            if let Ok(Some(p)) = &proxy {
                let p = reqwest::Proxy::all(&p.url).map_err(|e| Setup::BadUrl {
                    url: p.url.clone(),
                    hint: format!("{} cannot be used: {e}", proxy::PROXY_VAR),
                })?;
                http = http.proxy(p);
            }
            let http = http.build().map_err(|e| Setup::Tls(e.to_string()))?;
            Ok((http, tls))
        });
        let (conn, proxy) = match proxy {
            Ok(p) => (conn, p),
            Err(e) => (Err(e), None),
        };
        Self {
            base: base_url.trim().trim_end_matches('/').to_string(),
            conn,
            proxy,
            identity,
            create_token: None,
        }
    }

    /// Sends `token` when creating a space (relays started with `--create-token`).
    pub fn with_create_token(mut self, token: Option<String>) -> Self {
        self.create_token = token;
        self
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    pub fn identity(&self) -> &DeviceIdentity {
        &self.identity
    }

    /// Sends a request, signed unless `signed` is false, and decodes a JSON answer.
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        signed: bool,
    ) -> Result<T, RelayError> {
        self.call_with(method, path, query, body, signed, &[]).await
    }

    /// [`Self::call`] with extra headers.
    async fn call_with<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        signed: bool,
        extra: &[(&str, &str)],
    ) -> Result<T, RelayError> {
        let body = body.unwrap_or_default();
        match self
            .call_once(method.clone(), path, query, &body, signed, extra)
            .await
        {
            // Signed just before the relay (re)started: it did nothing with the
            // request, so signing again is safe. A clock that is really off fails
            // the second time too, with the relay's message.
            Err(e) if signed && e.code() == Some(api::codes::STALE_TIMESTAMP) => {
                self.call_once(method, path, query, &body, signed, extra)
                    .await
            }
            other => other,
        }
    }

    async fn call_once<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: &[u8],
        signed: bool,
        extra: &[(&str, &str)],
    ) -> Result<T, RelayError> {
        let url = if query.is_empty() {
            format!("{}{path}", self.base)
        } else {
            format!("{}{path}?{query}", self.base)
        };
        let (http, _) = self.conn.as_ref().map_err(Setup::error)?;
        let mut req = http.request(method.clone(), &url);
        if signed {
            let nonce = attune_crypto::secret::random_array();
            for (k, v) in sign_headers(
                &self.identity,
                method.as_str(),
                path,
                query,
                body,
                now_ms(),
                nonce,
            ) {
                req = req.header(k, v);
            }
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        if !body.is_empty() {
            req = req
                .header("content-type", "application/json")
                .body(body.to_vec());
        }
        let resp = req.send().await.map_err(|e| self.failed(&e))?;
        let status = resp.status();
        let bytes = self.read_capped(resp).await?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(e) => RelayError::Refused {
                    status: status.as_u16(),
                    code: e.error.code,
                    message: e.error.message,
                },
                Err(_) => RelayError::BadAnswer(format!("status {status} without an error body")),
            });
        }
        let bytes = if status == StatusCode::NO_CONTENT || bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes[..]
        };
        serde_json::from_slice(bytes).map_err(|e| RelayError::BadAnswer(e.to_string()))
    }

    /// A failed exchange with the relay, in plain words.
    fn failed(&self, e: &(dyn std::error::Error + 'static)) -> RelayError {
        match (explain(&self.base, e), &self.proxy) {
            (RelayError::Unreachable { url, detail }, Some(p)) => RelayError::Unreachable {
                url,
                detail: format!(
                    "through the SOCKS5 proxy {} ({}): {detail}",
                    p.addr,
                    proxy::PROXY_VAR
                ),
            },
            (e, _) => e,
        }
    }

    /// The answer's body, refused past [`MAX_ANSWER`] bytes without reading on.
    async fn read_capped(&self, mut resp: reqwest::Response) -> Result<Vec<u8>, RelayError> {
        let too_large = RelayError::AnswerTooLarge { limit: MAX_ANSWER };
        if resp.content_length().is_some_and(|n| n > MAX_ANSWER as u64) {
            return Err(too_large);
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| self.failed(&e))? {
            if bytes.len() + chunk.len() > MAX_ANSWER {
                return Err(too_large);
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(bytes)
    }

    fn json(body: &impl serde::Serialize) -> Option<Vec<u8>> {
        serde_json::to_vec(body).ok()
    }

    pub async fn create_space(&self, create_event: Vec<u8>) -> Result<SpaceCreated, RelayError> {
        let body = Self::json(&CreateSpace {
            create_event: B64(create_event),
        });
        let token = self.create_token.as_deref();
        let extra: Vec<(&str, &str)> = token
            .map(|t| (api::HEADER_CREATE_TOKEN, t))
            .into_iter()
            .collect();
        self.call_with(Method::POST, "/v1/spaces", "", body, true, &extra)
            .await
    }

    pub async fn roster(&self, space: SpaceId) -> Result<Vec<Vec<u8>>, RelayError> {
        let r: RosterEvents = self
            .call(
                Method::GET,
                &format!("/v1/spaces/{space}/roster"),
                "",
                None,
                true,
            )
            .await?;
        Ok(r.events.into_iter().map(|b| b.0).collect())
    }

    pub async fn append_roster(
        &self,
        space: SpaceId,
        events: Vec<Vec<u8>>,
    ) -> Result<Vec<Vec<u8>>, RelayError> {
        let body = Self::json(&AppendRoster {
            events: events.into_iter().map(B64).collect(),
        });
        let r: RosterEvents = self
            .call(
                Method::POST,
                &format!("/v1/spaces/{space}/roster"),
                "",
                body,
                true,
            )
            .await?;
        Ok(r.events.into_iter().map(|b| b.0).collect())
    }

    pub async fn append(
        &self,
        space: SpaceId,
        envelopes: Vec<Vec<u8>>,
    ) -> Result<AppendResult, RelayError> {
        let holds = envelopes
            .iter()
            .map(|_| attune_crypto::random_hold().encode())
            .collect();
        self.append_with_holds(space, envelopes, holds).await
    }

    /// Appends a batch, each envelope with its hold slot (PROTOCOL.md §9): a
    /// sealed answer's key for the relay to keep back, or random bytes.
    pub async fn append_with_holds(
        &self,
        space: SpaceId,
        envelopes: Vec<Vec<u8>>,
        holds: Vec<Vec<u8>>,
    ) -> Result<AppendResult, RelayError> {
        let body = Self::json(&AppendEnvelopes {
            envelopes: envelopes.into_iter().map(B64).collect(),
            holds: holds.into_iter().map(B64).collect(),
        });
        self.call(
            Method::POST,
            &format!("/v1/spaces/{space}/envelopes"),
            "",
            body,
            true,
        )
        .await
    }

    pub async fn pull(&self, space: SpaceId, after: u64, limit: usize) -> Result<Page, RelayError> {
        self.call(
            Method::GET,
            &format!("/v1/spaces/{space}/envelopes"),
            &format!("after={after}&limit={limit}"),
            None,
            true,
        )
        .await
    }

    pub async fn delete_space(&self, space: SpaceId) -> Result<serde_json::Value, RelayError> {
        self.call(
            Method::DELETE,
            &format!("/v1/spaces/{space}"),
            "",
            None,
            true,
        )
        .await
    }

    /// Files the recovery bundle of recovery key `device` under `lookup`.
    pub async fn put_recovery(
        &self,
        space: SpaceId,
        device: attune_proto::DeviceId,
        lookup: attune_proto::Hash32,
        bundle: Vec<u8>,
    ) -> Result<(), RelayError> {
        let body = Self::json(&api::PutRecovery {
            device: device.to_hex(),
            lookup: lookup.to_hex(),
            bundle: B64(bundle),
        });
        self.call::<Option<()>>(
            Method::PUT,
            &format!("/v1/spaces/{space}/recovery"),
            "",
            body,
            true,
        )
        .await
        .map(|_| ())
    }

    /// The recovery bundle filed under `lookup` (no signature: a blank device
    /// has no keys yet).
    pub async fn recovery(
        &self,
        lookup: attune_proto::Hash32,
    ) -> Result<api::RecoveryFound, RelayError> {
        self.call(
            Method::GET,
            &format!("/v1/recovery/{}", lookup.to_hex()),
            "",
            None,
            false,
        )
        .await
    }

    pub async fn open_mailbox(&self, space: SpaceId) -> Result<MailboxOpened, RelayError> {
        self.call(
            Method::POST,
            &format!("/v1/spaces/{space}/mailboxes"),
            "",
            None,
            true,
        )
        .await
    }

    /// Joins pairing mailbox `mailbox` with the joiner's key exchange; returns
    /// the joiner's token.
    pub async fn mailbox_join(&self, mailbox: u32, message: Vec<u8>) -> Result<String, RelayError> {
        let body = Self::json(&MailboxPost {
            message: B64(message),
        });
        self.call::<MailboxJoined>(
            Method::POST,
            &format!("/v1/mailboxes/{mailbox}/join"),
            "",
            body,
            false,
        )
        .await
        .map(|j| j.token)
    }

    pub async fn mailbox_post(
        &self,
        mailbox: u32,
        token: &str,
        message: Vec<u8>,
    ) -> Result<(), RelayError> {
        let body = Self::json(&MailboxPost {
            message: B64(message),
        });
        self.call_with::<Option<()>>(
            Method::POST,
            &format!("/v1/mailboxes/{mailbox}/messages"),
            "",
            body,
            false,
            &[(api::HEADER_MAILBOX_TOKEN, token)],
        )
        .await
        .map(|_| ())
    }

    /// The other side's messages from index `after` on, waiting up to `wait_secs`.
    pub async fn mailbox_read(
        &self,
        mailbox: u32,
        token: &str,
        after: usize,
        wait_secs: u64,
    ) -> Result<MailboxMessages, RelayError> {
        self.call_with(
            Method::GET,
            &format!("/v1/mailboxes/{mailbox}/messages"),
            &format!("after={after}&wait={wait_secs}"),
            None,
            false,
            &[(api::HEADER_MAILBOX_TOKEN, token)],
        )
        .await
    }

    pub async fn mailbox_close(&self, mailbox: u32, token: &str) -> Result<(), RelayError> {
        self.call_with::<Option<()>>(
            Method::POST,
            &format!("/v1/mailboxes/{mailbox}/close"),
            "",
            None,
            false,
            &[(api::HEADER_MAILBOX_TOKEN, token)],
        )
        .await
        .map(|_| ())
    }

    /// Opens the WebSocket stream of envelopes after `after`.
    pub async fn stream(&self, space: SpaceId, after: u64) -> Result<EnvelopeStream, RelayError> {
        use tokio_tungstenite::tungstenite::client::IntoClientRequest;
        let (_, tls) = self.conn.as_ref().map_err(Setup::error)?;
        let path = format!("/v1/spaces/{space}/stream");
        let query = format!("after={after}");
        let ws_base = self
            .base
            .replacen("http://", "ws://", 1)
            .replacen("https://", "wss://", 1);
        let mut req = format!("{ws_base}{path}?{query}")
            .into_client_request()
            .map_err(|e| RelayError::BadAnswer(e.to_string()))?;
        let nonce = attune_crypto::secret::random_array();
        for (k, v) in sign_headers(&self.identity, "GET", &path, &query, b"", now_ms(), nonce) {
            let value = v
                .parse()
                .map_err(|_| RelayError::BadAnswer("bad header".into()))?;
            req.headers_mut().insert(k, value);
        }
        // One message carries one envelope; nothing larger than an answer is read.
        let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
            .max_message_size(Some(MAX_ANSWER))
            .max_frame_size(Some(MAX_ANSWER));
        let connector = tokio_tungstenite::Connector::Rustls(tls.clone());
        let connected = match &self.proxy {
            None => {
                tokio_tungstenite::connect_async_tls_with_config(
                    req,
                    Some(config),
                    false,
                    Some(connector),
                )
                .await
            }
            Some(p) => {
                let host = req.uri().host().unwrap_or_default().to_string();
                let secure = req.uri().scheme_str() == Some("wss");
                let port = req
                    .uri()
                    .port_u16()
                    .unwrap_or(if secure { 443 } else { 80 });
                let tcp = proxy::connect(p, host.trim_matches(['[', ']']), port)
                    .await
                    .map_err(|e| self.failed(&e))?;
                tokio_tungstenite::client_async_tls_with_config(
                    req,
                    tcp,
                    Some(config),
                    Some(connector),
                )
                .await
            }
        };
        let (ws, _) = connected.map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(resp) => {
                let body = resp.body().clone().unwrap_or_default();
                match serde_json::from_slice::<ErrorBody>(&body) {
                    Ok(b) => RelayError::Refused {
                        status: resp.status().as_u16(),
                        code: b.error.code,
                        message: b.error.message,
                    },
                    Err(_) => RelayError::BadAnswer(format!("status {}", resp.status())),
                }
            }
            e => self.failed(&e),
        })?;
        Ok(EnvelopeStream {
            ws,
            url: self.base.clone(),
        })
    }
}

/// The envelopes a relay streams, in cursor order.
#[derive(Debug)]
pub struct EnvelopeStream {
    ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    url: String,
}

impl EnvelopeStream {
    /// The next envelope; `None` when the relay closed the stream.
    pub async fn next(&mut self) -> Option<Result<StoredEnvelope, RelayError>> {
        use futures_util::StreamExt;
        use tokio_tungstenite::tungstenite::Message;
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => {
                    return Some(
                        serde_json::from_str(t.as_str())
                            .map_err(|e| RelayError::BadAnswer(e.to_string())),
                    )
                }
                Ok(Message::Close(_)) => return None,
                Ok(_) => continue,
                Err(e) => return Some(Err(self.broke(&e))),
            }
        }
    }

    /// A stream that fails once open was cut off: the relay stopped, or the
    /// network dropped (a TLS or protocol fault is said as such).
    fn broke(&self, e: &tokio_tungstenite::tungstenite::Error) -> RelayError {
        use tokio_tungstenite::tungstenite::error::{Error, ProtocolError};
        match e {
            Error::Io(_)
            | Error::ConnectionClosed
            | Error::AlreadyClosed
            | Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => {
                RelayError::StreamCut {
                    url: self.url.clone(),
                }
            }
            e => explain(&self.url, e),
        }
    }

    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}
