//! The machine's ceiling: a minimal axum server, unauthenticated, whose one
//! handler does only what the relay's append does in storage — the same
//! group-committed insert through the same `SqliteStore::append_envelopes` — with
//! no signature checks, no JSON, no base64, no roster, no rate limit.

use std::sync::{Arc, Mutex};

use anyhow::Context;
use attune_proto::{DeviceId, EntryId, Hash32, SpaceId};
use attune_relay::metrics::Metrics;
use attune_relay::store::sqlite::SqliteStore;
use attune_relay::store::{NewEnvelope, Store};
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;
use tokio::sync::oneshot;

use crate::fixtures::random16;

/// One client's chain, kept by the server: the handler builds each `NewEnvelope`
/// from it (no hashing, no crypto: the hash is a counter).
#[derive(Debug)]
struct ClientChain {
    space: SpaceId,
    author: DeviceId,
    seq: u64,
    prev: Hash32,
}

#[derive(Debug)]
struct CeilingState {
    store: Arc<SqliteStore>,
    clients: Vec<Mutex<ClientChain>>,
    quota: u64,
    /// The stored bytes: a real encoded envelope, as the relay stores.
    envelope: Vec<u8>,
}

/// Thread name of the ceiling server's runtime.
pub const CEILING_THREADS: &str = "ceiling-rt";

/// The ceiling server on 127.0.0.1 with its own SQLite file, on its own runtime
/// (threads named [`CEILING_THREADS`]) so its CPU can be told from its clients'.
#[derive(Debug)]
pub struct Ceiling {
    pub url: String,
    pub metrics: Arc<Metrics>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
    runtime: Option<tokio::runtime::Runtime>,
}

fn fake_hash(client: usize, seq: u64) -> Hash32 {
    let mut h = [0u8; 32];
    h[..8].copy_from_slice(&(client as u64).to_be_bytes());
    h[8..16].copy_from_slice(&seq.to_be_bytes());
    h[31] = 1;
    Hash32(h)
}

async fn append(
    State(state): State<Arc<CeilingState>>,
    Path(client): Path<usize>,
    // Read like the relay reads it, but not parsed: no JSON, no base64.
    _body: Bytes,
) -> Result<String, StatusCode> {
    let chain = state.clients.get(client).ok_or(StatusCode::NOT_FOUND)?;
    let (space, env) = {
        let c = chain
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        let seq = c.seq + 1;
        (
            c.space,
            NewEnvelope {
                author: c.author,
                seq,
                prev: c.prev,
                hash: fake_hash(client, seq),
                entry: EntryId(random16()),
                held: None,
                bytes: state.envelope.clone(),
            },
        )
    };
    let (seq, hash) = (env.seq, env.hash);
    let placed = state
        .store
        .append_envelopes(space, vec![env], state.quota)
        .await
        .map_err(|_| StatusCode::CONFLICT)?;
    {
        let mut c = chain
            .lock()
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)?;
        c.seq = seq;
        c.prev = hash;
    }
    let cursor = placed.first().map_or(0, |p| p.cursor);
    Ok(format!(
        "{{\"results\":[{{\"cursor\":{cursor},\"duplicate\":false}}]}}"
    ))
}

impl Ceiling {
    /// Starts the server for `clients` clients, two per space like the relay bench;
    /// every append stores `envelope` (a real encoded envelope).
    pub async fn start(
        dir: &std::path::Path,
        clients: usize,
        envelope: Vec<u8>,
    ) -> anyhow::Result<Self> {
        let db = dir.join("ceiling.sqlite3");
        let metrics = Arc::new(Metrics::default());
        let store = {
            let metrics = metrics.clone();
            tokio::task::spawn_blocking(move || SqliteStore::open(&db, 4, metrics))
                .await?
                .map_err(|e| anyhow::anyhow!("opening the ceiling store: {e}"))?
        };
        let store = Arc::new(store);
        let mut chains = Vec::with_capacity(clients);
        let mut space = SpaceId(random16());
        for i in 0..clients {
            if i % 2 == 0 {
                space = SpaceId(random16());
                store
                    .create_space(space, b"ceiling space".to_vec())
                    .await
                    .map_err(|e| anyhow::anyhow!("creating a ceiling space: {e}"))?;
            }
            chains.push(Mutex::new(ClientChain {
                space,
                author: DeviceId(attune_crypto::secret::random_array()),
                seq: 0,
                prev: Hash32::ZERO,
            }));
        }
        let state = Arc::new(CeilingState {
            store,
            clients: chains,
            quota: u64::MAX / 2,
            envelope,
        });
        let app = Router::new()
            .route("/append/{client}", post(append))
            .with_state(state);
        let runtime = crate::target::named_runtime(CEILING_THREADS)?;
        let listener = {
            let _guard = runtime.enter();
            let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            std_listener.set_nonblocking(true)?;
            tokio::net::TcpListener::from_std(std_listener)?
        };
        let url = format!("http://{}", listener.local_addr()?);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = runtime.spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            url,
            metrics,
            stop: Some(stop),
            task: Some(task),
            runtime: Some(runtime),
        })
    }

    pub fn commits(&self) -> crate::target::RelayCounters {
        crate::target::RelayCounters::parse(&self.metrics.render())
    }

    pub async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.task.take() {
            t.await.context("the ceiling server panicked")??;
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
        Ok(())
    }
}

impl Drop for Ceiling {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
