//! attune-relay: the blind relay. It links attune-proto (formats and signature
//! verification) and nothing that can decrypt: it stores and forwards envelopes,
//! enforces the roster, and cannot read, forge, drop, reorder or replay unnoticed.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub mod auth;
pub mod config;
pub mod conns;
pub mod error;
pub mod health;
pub mod limits;
pub mod mailbox;
pub mod metrics;
pub mod peer;
pub mod postgres;
pub mod routes;
pub mod state;
pub mod store;
pub mod tls;

pub use config::Config;

/// The relay's version string.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The wire-format version this relay speaks.
pub const PROTOCOL_VERSION: u8 = attune_proto::VERSION;

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(
        "no database path: pass --db or set ATTUNE_RELAY_DB (no platform data directory was found)"
    )]
    NoDbPath,
    #[error("could not open the database {path}: {source}")]
    Store {
        path: String,
        source: store::StoreError,
    },
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    #[error("the server failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Serves the relay on `listener` until `shutdown` completes, then finishes the
/// requests in flight and the queued writes before returning.
pub async fn serve(
    listener: TcpListener,
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), RelayError> {
    let database = config.database().ok_or(RelayError::NoDbPath)?;
    if config.body_budget < config.max_body {
        return Err(RelayError::Config(format!(
            "--body-budget ({}) must be at least --max-body ({})",
            config.body_budget, config.max_body
        )));
    }
    let preauth_needs = auth::PREAUTH_BODY_LIMIT.min(config.max_body);
    if config.preauth_budget < preauth_needs {
        return Err(RelayError::Config(format!(
            "--preauth-budget ({}) must be at least {preauth_needs} (one pairing post)",
            config.preauth_budget
        )));
    }
    let certificate = match (&config.tls_cert, &config.tls_key) {
        (Some(cert), Some(key)) => Some(tls::Certificate::load(cert, key)?),
        (None, None) => None,
        _ => {
            return Err(RelayError::Config(
                "--tls-cert and --tls-key go together: give both, or neither".into(),
            ))
        }
    };
    let tls = certificate
        .as_ref()
        .map(|c| c.server_config().map(tokio_rustls::TlsAcceptor::from))
        .transpose()?;
    let metrics = Arc::new(metrics::Metrics::default());
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let caps = conns::Caps::new(config.max_connections, config.max_connections_per_ip);
    let state = match &database {
        config::Database::Sqlite(path) => {
            let (path, readers, m) = (path.clone(), config.readers, metrics.clone());
            let store = tokio::task::spawn_blocking(move || {
                store::sqlite::SqliteStore::open(&path, readers, m).map_err(|e| (path, e))
            })
            .await
            .map_err(|e| RelayError::Io(std::io::Error::other(e)))?
            .map_err(|(path, source)| RelayError::Store {
                path: path.display().to_string(),
                source,
            })?;
            Arc::new(state::AppState::new(
                config,
                Arc::new(store),
                metrics,
                stop_rx.clone(),
            ))
        }
        config::Database::Postgres(url) => {
            let pg = postgres::Pg::connect((**url).clone(), config.pg_connections)
                .await
                .map_err(|source| RelayError::Store {
                    path: url.to_string(),
                    source,
                })?;
            let mailboxes = postgres::mailbox::PgMailboxes::new(
                pg.clone(),
                mailbox::MailboxLimits::from_config(&config),
            );
            let notices = mailboxes.notices();
            let engine = state::Engine {
                store: Arc::new(postgres::store::PgStore::new(pg.clone())),
                limits: Arc::new(postgres::limits::PgLimits::new(
                    pg.clone(),
                    limits::Budget::per_second(config.rate_per_sec, config.rate_burst),
                )),
                mailboxes: Arc::new(mailboxes),
            };
            let state = Arc::new(state::AppState::with_engine(
                config,
                engine,
                metrics,
                stop_rx.clone(),
            ));
            let streams: Arc<dyn postgres::listen::Notified> =
                Arc::new(Streams(Arc::downgrade(&state)));
            tokio::spawn(postgres::listen::run(
                (**url).clone(),
                streams,
                notices,
                stop_rx.clone(),
            ));
            state
        }
    };
    let app = routes::router(state.clone());
    tracing::info!(
        addr = %listener.local_addr()?,
        db = %database,
        tls = tls.is_some(),
        "attune-relay listening"
    );
    if let Some(cert) = certificate {
        tokio::spawn(tls::reload_on_sighup(cert, stop_rx.clone()));
    }
    let setup = Setup {
        // A client gets as long to send its headers (and to finish the TLS
        // handshake) as a request gets to be answered.
        header_timeout: state.config.request_timeout(),
        caps,
        tls,
        stop: stop_rx,
        metrics: state.metrics.clone(),
    };
    accept_loop(listener, app, setup, shutdown, move || {
        tracing::info!("shutting down: finishing requests in flight");
        // Ends WebSocket streams, which would otherwise hold shutdown open.
        let _ = stop_tx.send(true);
    })
    .await;
    // The last handle to the store: dropping it waits for queued writes to commit.
    tokio::task::spawn_blocking(move || drop(state))
        .await
        .map_err(|e| RelayError::Io(std::io::Error::other(e)))?;
    tracing::info!("stopped");
    Ok(())
}

/// Hands what other instances committed to this instance's streams.
struct Streams(std::sync::Weak<state::AppState>);

impl postgres::listen::Notified for Streams {
    fn space(&self, space: attune_proto::SpaceId, cursor: u64) {
        if let Some(state) = self.0.upgrade() {
            state.notify(space, cursor);
        }
    }

    fn missed(&self) {
        if let Some(state) = self.0.upgrade() {
            state.notify_all();
        }
    }
}

/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Most connections over a cap that are being answered with a 503 at once; past
/// it, they are closed without an answer, so refusing costs little.
const REFUSING_AT_ONCE: usize = 64;

/// How long a refused connection gets to send its request (and TLS handshake).
const REFUSAL_TIME: std::time::Duration = std::time::Duration::from_secs(5);

/// What every connection needs besides the router.
struct Setup {
    header_timeout: std::time::Duration,
    caps: Arc<conns::Caps>,
    tls: Option<tokio_rustls::TlsAcceptor>,
    stop: tokio::sync::watch::Receiver<bool>,
    metrics: Arc<metrics::Metrics>,
}

type ConnBuilder = hyper_util::server::conn::auto::Builder<hyper_util::rt::TokioExecutor>;

/// HTTP/1.1 only (no HTTP/2: one connection is then one request at a time, so
/// the connection caps also cap requests), a time limit on reading headers (a
/// slow-loris guard), and a small read buffer: a request head over 16 KiB is
/// refused, and a connection holds little while it waits.
fn conn_builder(header_timeout: std::time::Duration) -> ConnBuilder {
    use hyper_util::rt::{TokioExecutor, TokioTimer};
    let mut builder = ConnBuilder::new(TokioExecutor::new()).http1_only();
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout)
        .max_buf_size(16 * 1024);
    builder
}

/// Accepts connections until `shutdown`, then lets open ones finish (bounded).
/// hyper directly rather than `axum::serve`, for the connection caps, TLS and the
/// header time limit.
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    setup: Setup,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_stop: impl FnOnce(),
) {
    use hyper_util::server::graceful::GracefulShutdown;

    let graceful = GracefulShutdown::new();
    let builder = Arc::new(conn_builder(setup.header_timeout));
    let refusing = Arc::new(tokio::sync::Semaphore::new(REFUSING_AT_ONCE));
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // Out of file descriptors and the like: wait instead of spinning.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let slot = match setup.caps.admit(peer.ip()) {
            Ok(slot) => slot,
            Err(refusal) => {
                setup.metrics.connection_refused();
                if let Ok(permit) = refusing.clone().try_acquire_owned() {
                    tokio::spawn(refuse(stream, setup.tls.clone(), refusal, permit));
                }
                continue;
            }
        };
        setup.metrics.set_connections(setup.caps.open());
        let (builder, app, watcher) = (builder.clone(), app.clone(), graceful.watcher());
        let (tls, mut stop) = (setup.tls.clone(), setup.stop.clone());
        let (header_timeout, caps, metrics) = (
            setup.header_timeout,
            setup.caps.clone(),
            setup.metrics.clone(),
        );
        tokio::spawn(async move {
            // The peer address, for per-address limits (crate::peer).
            let app =
                tower::ServiceExt::map_request(app, move |mut req: axum::extract::Request<_>| {
                    req.extensions_mut()
                        .insert(axum::extract::ConnectInfo(peer));
                    req
                });
            let service = hyper_util::service::TowerToHyperService::new(app);
            match tls {
                None => {
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
                Some(acceptor) => {
                    let handshake = tokio::time::timeout(header_timeout, acceptor.accept(stream));
                    let stream = tokio::select! {
                        done = handshake => match done {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                tracing::debug!(error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!("TLS handshake took too long");
                                return;
                            }
                        },
                        _ = stop.changed() => return,
                    };
                    let io = hyper_util::rt::TokioIo::new(stream);
                    let conn = builder.serve_connection_with_upgrades(io, service);
                    let _ = watcher.watch(conn.into_owned()).await;
                }
            }
            drop(slot);
            metrics.set_connections(caps.open());
        });
    }
    drop(listener);
    on_stop();
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish in time");
    }
}

/// Answers every request on a connection over a cap with the JSON 503, then
/// closes it, all within [`REFUSAL_TIME`].
async fn refuse(
    stream: tokio::net::TcpStream,
    tls: Option<tokio_rustls::TlsAcceptor>,
    refusal: conns::Refusal,
    _permit: tokio::sync::OwnedSemaphorePermit,
) {
    let app = axum::Router::new().fallback(move || async move { refusal.response() });
    let service = hyper_util::service::TowerToHyperService::new(app);
    let builder = conn_builder(REFUSAL_TIME);
    let answer = async {
        match tls {
            None => {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = builder.serve_connection(io, service).await;
            }
            Some(acceptor) => {
                if let Ok(s) = acceptor.accept(stream).await {
                    let io = hyper_util::rt::TokioIo::new(s);
                    let _ = builder.serve_connection(io, service).await;
                }
            }
        }
    };
    let _ = tokio::time::timeout(REFUSAL_TIME, answer).await;
}

/// Resolves on ctrl-c or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
