//! What each step of a signed append costs on this machine, on one core: the
//! relay's extra work over the ceiling (two Ed25519 verifications, two SHA-256
//! hashes, JSON and base64) and the client's (sealing, signing). Used to explain
//! the relay's measured CPU per append.

use std::hint::black_box;
use std::time::Instant;

use attune_crypto::DeviceIdentity;
use attune_proto::api::{AppendEnvelopes, B64};
use attune_proto::{request, Envelope, RequestToSign};

use crate::fixtures::Chain;

/// Mean microseconds per call of `f` over `n` calls (after a few warm-up calls).
fn time_us(n: u32, mut f: impl FnMut()) -> f64 {
    for _ in 0..n.min(10) {
        f();
    }
    let t = Instant::now();
    for _ in 0..n {
        f();
    }
    t.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1))
}

/// Microseconds per step, as `(step, µs)`, for envelopes of `content` bytes.
pub fn measure(content: &[u8]) -> anyhow::Result<Vec<(&'static str, f64)>> {
    let identity = DeviceIdentity::generate();
    let mut chain = Chain {
        identity: identity.clone(),
        space: attune_proto::SpaceId(crate::fixtures::random16()),
        epoch: std::sync::Arc::new(attune_crypto::SymmetricKey::generate()),
        seq: 0,
        prev: attune_proto::Hash32::ZERO,
    };
    let raw = chain.seal_next(content)?;
    let body = serde_json::to_vec(&AppendEnvelopes {
        envelopes: vec![B64(raw.clone())],
        holds: vec![B64(attune_crypto::random_hold().encode())],
    })?;
    let key = identity.public().sign;
    let req = RequestToSign {
        method: "POST".into(),
        path: format!("/v1/spaces/{}/envelopes", chain.space),
        query: String::new(),
        timestamp_ms: 1,
        nonce: [7; 16],
        body_hash: request::body_hash(&body),
        device: identity.id(),
    };
    let sig = identity.sign_request(&req);
    let env = Envelope::decode(&raw).map_err(|e| anyhow::anyhow!("{e}"))?;
    anyhow::ensure!(
        req.verify(&key, &sig).is_ok(),
        "the request signature verifies"
    );
    anyhow::ensure!(env.verify_signature(&key).is_ok(), "the envelope verifies");
    let n = 300;
    Ok(vec![
        (
            "relay: verify the request signature (Ed25519)",
            time_us(n, || {
                black_box(req.verify(black_box(&key), black_box(&sig)).is_ok());
            }),
        ),
        (
            "relay: verify the envelope signature (Ed25519)",
            time_us(n, || {
                black_box(env.verify_signature(black_box(&key)).is_ok());
            }),
        ),
        (
            "relay: hash the request body (SHA-256)",
            time_us(n, || {
                black_box(request::body_hash(black_box(&body)));
            }),
        ),
        (
            "relay: decode + hash the envelope (SHA-256)",
            time_us(n, || {
                if let Ok(e) = Envelope::decode(black_box(&raw)) {
                    black_box(e.hash());
                }
            }),
        ),
        (
            "relay: parse the JSON body (base64)",
            time_us(n, || {
                black_box(serde_json::from_slice::<AppendEnvelopes>(black_box(&body)).is_ok());
            }),
        ),
        (
            "client: seal + sign an envelope",
            time_us(n, || {
                black_box(chain.seal_next(black_box(content)).is_ok());
            }),
        ),
        (
            "client: sign a request",
            time_us(n, || {
                black_box(identity.sign_request(black_box(&req)));
            }),
        ),
    ])
}
