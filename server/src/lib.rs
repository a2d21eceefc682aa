//! attune-relay: the blind relay. It links attune-proto (formats and signature
//! verification) and nothing that can decrypt: it stores and forwards envelopes,
//! enforces the roster, and cannot read, forge, drop, reorder or replay unnoticed.

use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;

pub mod auth;
pub mod config;
pub mod error;
pub mod mailbox;
pub mod metrics;
pub mod peer;
pub mod routes;
pub mod state;
pub mod store;

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
    let path = config.db_path().ok_or(RelayError::NoDbPath)?;
    let metrics = Arc::new(metrics::Metrics::default());
    let store = {
        let (path, readers, metrics) = (path.clone(), config.readers, metrics.clone());
        tokio::task::spawn_blocking(move || {
            store::sqlite::SqliteStore::open(&path, readers, metrics).map_err(|e| (path, e))
        })
        .await
        .map_err(|e| RelayError::Io(std::io::Error::other(e)))?
        .map_err(|(path, source)| RelayError::Store {
            path: path.display().to_string(),
            source,
        })?
    };
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let state = Arc::new(state::AppState::new(
        config,
        Arc::new(store),
        metrics,
        stop_rx,
    ));
    let app = routes::router(state.clone());
    tracing::info!(addr = %listener.local_addr()?, db = %path.display(), "attune-relay listening");
    // A client gets as long to send its headers as a request gets to be answered.
    let header_timeout = state.config.request_timeout();
    accept_loop(listener, app, header_timeout, shutdown, move || {
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

/// How long shutdown waits for connections to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(30);

/// Accepts connections until `shutdown`, then lets open ones finish (bounded).
/// hyper directly rather than `axum::serve`, so reading headers has a time limit
/// (a slow-loris guard).
async fn accept_loop(
    listener: TcpListener,
    app: axum::Router,
    header_timeout: std::time::Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_stop: impl FnOnce(),
) {
    use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
    use hyper_util::server::conn::auto::Builder;
    use hyper_util::server::graceful::GracefulShutdown;
    use hyper_util::service::TowerToHyperService;

    let graceful = GracefulShutdown::new();
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
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
        // The peer address, for per-address limits (crate::peer).
        let app = tower::ServiceExt::map_request(
            app.clone(),
            move |mut req: axum::extract::Request<_>| {
                req.extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                req
            },
        );
        let service = TowerToHyperService::new(app);
        let conn = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            let _ = conn.await;
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
