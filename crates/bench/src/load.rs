//! Closed-loop load: each worker sends one request, waits for the answer, and
//! sends the next, until a deadline or a request count, whichever comes first.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::time::Instant;

use crate::fixtures::Device;
use crate::stats::Latencies;

/// Envelopes sealed ahead for one device, used before sealing any live.
pub type Pool = VecDeque<Vec<u8>>;

/// What a run of workers did.
#[derive(Debug, Default)]
pub struct RunResult {
    /// Requests answered with success.
    pub requests: u64,
    /// Envelopes stored by those requests.
    pub envelopes: u64,
    pub errors: u64,
    pub first_error: Option<String>,
    pub elapsed: Duration,
    pub latencies: Latencies,
    /// Envelopes sealed inside the loop because the device's pool ran out.
    pub live_sealed: u64,
    /// Workers that stopped at their request limit before the deadline.
    pub count_limited: usize,
}

impl RunResult {
    pub fn requests_per_sec(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    pub fn envelopes_per_sec(&self) -> f64 {
        self.envelopes as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// Adds one worker's run to this total (not its elapsed time).
    pub fn absorb(&mut self, w: RunResult) {
        self.requests += w.requests;
        self.envelopes += w.envelopes;
        self.errors += w.errors;
        if self.first_error.is_none() {
            self.first_error = w.first_error;
        }
        self.latencies.extend(w.latencies);
        self.live_sealed += w.live_sealed;
        self.count_limited += w.count_limited;
    }
}

/// Seals `n` envelopes on the blocking pool (moving the chain there and back).
async fn seal_live(
    dev: &mut Device,
    n: usize,
    content: &Arc<Vec<u8>>,
) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut chain = dev.chain.clone();
    let content = content.clone();
    let (chain, envs) = tokio::task::spawn_blocking(move || {
        let envs = (0..n)
            .map(|_| chain.seal_next(&content))
            .collect::<anyhow::Result<Vec<_>>>();
        (chain, envs)
    })
    .await
    .context("a sealing task panicked")?;
    dev.chain = chain;
    envs
}

/// How a worker spaces its requests.
#[derive(Debug, Clone, Copy)]
pub enum Pace {
    /// The next request as soon as the previous one is answered.
    Closed,
    /// One request every `interval`, starting after `offset`; latency counts from
    /// the scheduled time, so a late answer delays (and is charged to) the next.
    Every {
        interval: Duration,
        offset: Duration,
    },
}

#[allow(clippy::too_many_arguments)]
async fn append_worker(
    mut dev: Device,
    mut pool: Pool,
    batch: usize,
    content: Arc<Vec<u8>>,
    start: Instant,
    deadline: Instant,
    max_requests: u64,
    pace: Pace,
) -> (Device, Pool, RunResult) {
    let mut out = RunResult {
        latencies: Latencies::with_capacity(4096),
        ..RunResult::default()
    };
    let space = dev.space();
    let mut next_at = match pace {
        Pace::Closed => start,
        Pace::Every { offset, .. } => start + offset,
    };
    loop {
        if Instant::now() >= deadline || next_at >= deadline {
            break;
        }
        if out.requests >= max_requests {
            out.count_limited = 1;
            break;
        }
        let mut envs: Vec<Vec<u8>> = Vec::with_capacity(batch);
        while envs.len() < batch {
            match pool.pop_front() {
                Some(e) => envs.push(e),
                None => break,
            }
        }
        if envs.len() < batch {
            let missing = batch - envs.len();
            match seal_live(&mut dev, missing, &content).await {
                Ok(more) => {
                    out.live_sealed += more.len() as u64;
                    envs.extend(more);
                }
                Err(e) => {
                    out.errors += 1;
                    out.first_error = Some(e.to_string());
                    break;
                }
            }
        }
        let started = match pace {
            Pace::Closed => Instant::now(),
            Pace::Every { interval, .. } => {
                tokio::time::sleep_until(next_at).await;
                let scheduled = next_at;
                next_at += interval;
                scheduled
            }
        };
        match dev.client.append(space, envs).await {
            Ok(r) if r.results.len() == batch && r.results.iter().all(|a| !a.duplicate) => {
                out.latencies.record(started.elapsed());
                out.requests += 1;
                out.envelopes += batch as u64;
            }
            Ok(r) => {
                out.errors += 1;
                out.first_error = Some(format!(
                    "unexpected answer: {} results for {batch} envelopes",
                    r.results.len()
                ));
                break;
            }
            Err(e) => {
                // The chain is now ambiguous for this device: stop it.
                out.errors += 1;
                out.first_error = Some(e.to_string());
                break;
            }
        }
    }
    (dev, pool, out)
}

/// Per-worker request limit of a warm-up: bounded in count as well as in time.
const WARMUP_MAX_REQUESTS: u64 = 1_000_000;

/// Warms up with live sealing for `warmup`, then seals enough envelopes ahead
/// (twice what the warm-up rate needs for `duration`, at most `cap` in all)
/// that the timed run seals none, normally.
pub async fn warm_and_preseal(
    devices: Vec<(Device, Pool)>,
    batch: usize,
    content: &Arc<Vec<u8>>,
    warmup: Duration,
    duration: Duration,
    cap: usize,
) -> anyhow::Result<(Vec<(Device, Pool)>, RunResult)> {
    let n = devices.len().max(1);
    let (devices, warm) =
        run_appends(devices, batch, content.clone(), warmup, WARMUP_MAX_REQUESTS).await?;
    if warm.errors > 0 {
        anyhow::bail!("warm-up failed: {}", warm.first_error.unwrap_or_default());
    }
    let rate = if warmup > Duration::ZERO {
        warm.envelopes_per_sec()
    } else {
        200.0 * n as f64
    };
    let per_device = ((rate * duration.as_secs_f64() * 2.0) / n as f64).ceil() as usize + 2 * batch;
    let per_device = per_device.min(cap / n).max(batch);
    let (devs, pools): (Vec<Device>, Vec<Pool>) = devices.into_iter().unzip();
    let chains = devs.iter().map(|d| d.chain.clone()).collect();
    let sealed = crate::fixtures::preseal(chains, per_device, content.clone()).await?;
    let out = devs
        .into_iter()
        .zip(pools)
        .zip(sealed)
        .map(|((mut dev, mut pool), (chain, fresh))| {
            dev.chain = chain;
            pool.extend(fresh);
            (dev, pool)
        })
        .collect();
    Ok((out, warm))
}

/// Runs one signed-append worker per device for `duration` (or `max_requests`
/// each), `batch` envelopes per request, and returns the devices with what is left
/// of their pools.
pub async fn run_appends(
    devices: Vec<(Device, Pool)>,
    batch: usize,
    content: Arc<Vec<u8>>,
    duration: Duration,
    max_requests: u64,
) -> anyhow::Result<(Vec<(Device, Pool)>, RunResult)> {
    run_appends_paced(devices, batch, content, duration, max_requests, None).await
}

/// [`run_appends`], optionally paced: `rate` requests per second in total, spread
/// evenly over the devices and over time.
pub async fn run_appends_paced(
    devices: Vec<(Device, Pool)>,
    batch: usize,
    content: Arc<Vec<u8>>,
    duration: Duration,
    max_requests: u64,
    rate: Option<f64>,
) -> anyhow::Result<(Vec<(Device, Pool)>, RunResult)> {
    let start = Instant::now();
    let deadline = start + duration;
    let n = devices.len().max(1);
    let handles: Vec<_> = devices
        .into_iter()
        .enumerate()
        .map(|(i, (dev, pool))| {
            let pace = match rate {
                Some(r) if r > 0.0 => {
                    let interval = Duration::from_secs_f64(n as f64 / r);
                    Pace::Every {
                        interval,
                        offset: interval.mul_f64(i as f64 / n as f64),
                    }
                }
                _ => Pace::Closed,
            };
            tokio::spawn(append_worker(
                dev,
                pool,
                batch,
                content.clone(),
                start,
                deadline,
                max_requests,
                pace,
            ))
        })
        .collect();
    let mut total = RunResult::default();
    let mut back = Vec::with_capacity(handles.len());
    for h in handles {
        let (dev, pool, r) = h.await.context("an append worker panicked")?;
        total.absorb(r);
        back.push((dev, pool));
    }
    total.elapsed = start.elapsed();
    Ok((back, total))
}

/// POSTs of `body` to `{url}/append/{i}`, one worker per client: the load for
/// the ceiling server. Each request carries the same signed headers a relay client
/// computes (an Ed25519 signature over the request), so the clients cost the
/// machine what the relay's clients cost; the ceiling server ignores them.
pub async fn run_ceiling(
    url: &str,
    clients: usize,
    body: Arc<Vec<u8>>,
    duration: Duration,
    max_requests: u64,
) -> anyhow::Result<RunResult> {
    let start = Instant::now();
    let deadline = start + duration;
    let handles: Vec<_> = (0..clients)
        .map(|i| {
            let path = format!("/append/{i}");
            let url = format!("{url}{path}");
            let body = body.clone();
            tokio::spawn(async move {
                let identity = attune_crypto::DeviceIdentity::generate();
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(60))
                    .build()
                    .unwrap_or_default();
                let mut out = RunResult {
                    latencies: Latencies::with_capacity(4096),
                    ..RunResult::default()
                };
                while Instant::now() < deadline {
                    if out.requests >= max_requests {
                        out.count_limited = 1;
                        break;
                    }
                    let started = Instant::now();
                    let mut req = http.post(&url).header("content-type", "application/json");
                    for (k, v) in attune_core::relay::sign_headers(
                        &identity,
                        "POST",
                        &path,
                        "",
                        &body,
                        attune_core::relay::now_ms(),
                        attune_crypto::secret::random_array(),
                    ) {
                        req = req.header(k, v);
                    }
                    let ok = match req.body(body.to_vec()).send().await {
                        Ok(resp) => {
                            let status = resp.status();
                            resp.bytes().await.is_ok() && status.is_success()
                        }
                        Err(_) => false,
                    };
                    if ok {
                        out.latencies.record(started.elapsed());
                        out.requests += 1;
                        out.envelopes += 1;
                    } else {
                        out.errors += 1;
                        out.first_error = Some("a ceiling request failed".into());
                        break;
                    }
                }
                out
            })
        })
        .collect();
    let mut total = RunResult::default();
    for h in handles {
        total.absorb(h.await.context("a ceiling worker panicked")?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// Samples a process's RSS every 100 ms until stopped; reports the peak in MiB.
#[derive(Debug)]
pub struct RssSampler {
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<Option<f64>>,
}

impl RssSampler {
    pub fn start(pid: Option<u32>) -> Self {
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let task = tokio::spawn(async move {
            let pid = pid?;
            let mut peak: Option<f64> = None;
            // Bounded: at most one hour of samples.
            for _ in 0..36_000 {
                if let Some(r) = crate::procfs::rss_mib(pid) {
                    peak = Some(peak.map_or(r, |p: f64| p.max(r)));
                }
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    _ = stopped.changed() => break,
                }
            }
            peak
        });
        Self { stop, task }
    }

    pub async fn finish(self) -> Option<f64> {
        let _ = self.stop.send(true);
        self.task.await.ok().flatten()
    }
}
