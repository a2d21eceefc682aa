//! The scenarios: signed single appends, signed batches, a paged pull, open
//! WebSocket streams, and the ceiling. Each prints a result line and adds its
//! figures to the [`Report`].

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, ensure, Context};
use attune_proto::api::{AppendEnvelopes, B64};
use tokio::time::Instant;

use crate::ceiling::Ceiling;
use crate::fixtures::{self, Device};
use crate::load::{self, Pool, RunResult};
use crate::observe::Observer;
use crate::report::{fmt_ms, fmt_opt, Report, Row};
use crate::target::{RelayCounters, Target};
use crate::Args;

/// Per-worker request limit: every loop is bounded in count as well as in time.
const MAX_REQUESTS_PER_WORKER: u64 = 1_000_000;

/// Shared inputs of the scenarios.
#[derive(Debug)]
pub struct Ctx<'a> {
    pub args: &'a Args,
    pub target: &'a Target,
    pub content: Arc<Vec<u8>>,
    pub hz: f64,
    pub dir: &'a std::path::Path,
}

impl<'a> Ctx<'a> {
    pub fn new(
        args: &'a Args,
        target: &'a Target,
        content: &Arc<Vec<u8>>,
        hz: f64,
        dir: &'a std::path::Path,
    ) -> Self {
        Self {
            args,
            target,
            content: content.clone(),
            hz,
            dir,
        }
    }

    fn duration(&self) -> Duration {
        Duration::from_secs_f64(self.args.duration)
    }

    fn warmup(&self) -> Duration {
        Duration::from_secs_f64(self.args.warmup)
    }
}

fn no_pools(devices: Vec<Device>) -> Vec<(Device, Pool)> {
    devices.into_iter().map(|d| (d, VecDeque::new())).collect()
}

/// [`load::warm_and_preseal`] with the scenario's warm-up, duration and cap.
async fn warm_and_preseal(
    ctx: &Ctx<'_>,
    devices: Vec<(Device, Pool)>,
    batch: usize,
) -> anyhow::Result<(Vec<(Device, Pool)>, RunResult)> {
    load::warm_and_preseal(
        devices,
        batch,
        &ctx.content,
        ctx.warmup(),
        ctx.duration(),
        ctx.args.preseal_cap,
    )
    .await
}

fn check_errors(what: &str, r: &RunResult) -> anyhow::Result<()> {
    if r.errors > 0 {
        bail!(
            "{what}: {} requests failed; first: {}",
            r.errors,
            r.first_error.clone().unwrap_or_default()
        );
    }
    Ok(())
}

/// a. Signed single-envelope appends by `n` devices, `devices_per_space` per space,
/// as fast as answers come (closed loop), or paced at `paced` appends/s in total.
/// Returns the measured appends/s.
pub async fn single(
    ctx: &Ctx<'_>,
    n: usize,
    paced: Option<f64>,
    report: &mut Report,
) -> anyhow::Result<f64> {
    let args = ctx.args;
    let devices =
        fixtures::create_devices_across(&ctx.target.urls(), n, args.devices_per_space, 16)
            .await
            .context("setting up devices")?;
    let (devices, _) = warm_and_preseal(ctx, no_pools(devices), 1).await?;
    let obs = Observer::begin(ctx.target, ctx.hz).await;
    let (_, mut r) = load::run_appends_paced(
        devices,
        1,
        ctx.content.clone(),
        ctx.duration(),
        MAX_REQUESTS_PER_WORKER,
        paced,
    )
    .await?;
    let o = obs.end(ctx.target).await;
    check_errors("single appends", &r)?;
    let lat = r.latencies.summary();
    let rate = r.envelopes_per_sec();
    let (key, label) = match paced {
        Some(p) => (
            format!("paced_{n}"),
            format!("a. signed single appends, {n} devices, paced at {p:.0}/s"),
        ),
        None => (
            format!("single_{n}"),
            format!("a. signed single appends, {n} devices"),
        ),
    };
    println!(
        "{label}: {rate:>8.0} appends/s  p50 {} ms  p99 {} ms  \
         ({} appends in {:.1} s; relay CPU {} us/append; {} jobs/commit; peak RSS {} MiB; {} sealed live)",
        fmt_ms(lat.p50_ms),
        fmt_ms(lat.p99_ms),
        r.envelopes,
        r.elapsed.as_secs_f64(),
        fmt_opt(o.cpu_us_per_envelope(r.envelopes), 0),
        fmt_opt(o.jobs_per_commit(), 1),
        fmt_opt(o.peak_rss_mib, 1),
        r.live_sealed,
    );
    println!("    {}", o.cpu_line());
    let secs = r.elapsed.as_secs_f64();
    report.insert(
        &key,
        serde_json::json!({
            "devices": n,
            "paced_rate": paced,
            "devices_per_space": args.devices_per_space,
            "spaces": n.div_ceil(args.devices_per_space.max(1)),
            "appends": r.envelopes,
            "secs": secs,
            "appends_per_sec": rate,
            "p50_ms": lat.p50_ms,
            "p99_ms": lat.p99_ms,
            "max_ms": lat.max_ms,
            "sealed_live": r.live_sealed,
            "relay": o.to_json(r.envelopes),
        }),
    );
    report.rows.push(Row {
        scenario: label.clone(),
        throughput: format!("{rate:.0} appends/s"),
        p50: fmt_ms(lat.p50_ms),
        p99: fmt_ms(lat.p99_ms),
        cpu: fmt_opt(o.cpu_us_per_envelope(r.envelopes), 0),
        group: fmt_opt(o.jobs_per_commit(), 1),
        other: o.other_cores(),
    });
    if let Some(peak) = o.peak_rss_mib {
        report
            .rss
            .push((format!("under load ({label}), peak"), peak));
    }
    Ok(rate)
}

/// The devices of the bulk space used by the batch and pull scenarios, with what
/// is left of their pools and how many envelopes the space holds.
#[derive(Debug, Default)]
pub struct Bulk {
    pub devices: Vec<(Device, Pool)>,
    pub stored: u64,
}

async fn bulk_space(ctx: &Ctx<'_>, bulk: &mut Bulk) -> anyhow::Result<()> {
    if bulk.devices.is_empty() {
        let devices =
            fixtures::create_space_across(&ctx.target.urls(), ctx.args.batch_devices.max(1))
                .await
                .context("setting up the bulk space")?;
        bulk.devices = no_pools(devices);
        bulk.stored = 0;
    }
    Ok(())
}

/// b. Signed batched appends into one space with `batch_devices` linked devices.
pub async fn batch(ctx: &Ctx<'_>, bulk: &mut Bulk, report: &mut Report) -> anyhow::Result<()> {
    let args = ctx.args;
    bulk_space(ctx, bulk).await?;
    let size = args.batch_size;
    let (devices, warm) = warm_and_preseal(ctx, std::mem::take(&mut bulk.devices), size).await?;
    bulk.stored += warm.envelopes;
    let obs = Observer::begin(ctx.target, ctx.hz).await;
    let (devices, mut r) = load::run_appends(
        devices,
        size,
        ctx.content.clone(),
        ctx.duration(),
        MAX_REQUESTS_PER_WORKER,
    )
    .await?;
    let o = obs.end(ctx.target).await;
    bulk.devices = devices;
    bulk.stored += r.envelopes;
    check_errors("batched appends", &r)?;
    let lat = r.latencies.summary();
    let rate = r.envelopes_per_sec();
    let n = bulk.devices.len();
    println!(
        "batched appends, {size}/request, {n} devices in one space: {rate:>8.0} envelopes/s \
         ({:.0} requests/s)  request p50 {} ms  p99 {} ms  (relay CPU {} us/envelope; {} jobs/commit)",
        r.requests_per_sec(),
        fmt_ms(lat.p50_ms),
        fmt_ms(lat.p99_ms),
        fmt_opt(o.cpu_us_per_envelope(r.envelopes), 1),
        fmt_opt(o.jobs_per_commit(), 1),
    );
    println!("    {}", o.cpu_line());
    let secs = r.elapsed.as_secs_f64();
    report.insert(
        "batch",
        serde_json::json!({
            "devices": n,
            "batch_size": size,
            "envelopes": r.envelopes,
            "requests": r.requests,
            "secs": secs,
            "envelopes_per_sec": rate,
            "requests_per_sec": r.requests_per_sec(),
            "request_p50_ms": lat.p50_ms,
            "request_p99_ms": lat.p99_ms,
            "request_max_ms": lat.max_ms,
            "sealed_live": r.live_sealed,
            "relay": o.to_json(r.envelopes),
        }),
    );
    report.rows.push(Row {
        scenario: format!("b. signed batches of {size}, {n} devices, one space"),
        throughput: format!("{rate:.0} envelopes/s ({:.0} req/s)", r.requests_per_sec()),
        p50: fmt_ms(lat.p50_ms),
        p99: fmt_ms(lat.p99_ms),
        cpu: fmt_opt(o.cpu_us_per_envelope(r.envelopes), 1),
        group: fmt_opt(o.jobs_per_commit(), 1),
        other: o.other_cores(),
    });
    if let Some(peak) = o.peak_rss_mib {
        report
            .rss
            .push((format!("under load (b, batches of {size}), peak"), peak));
    }
    Ok(())
}

/// c. Pulls `pull_count` envelopes from the bulk space, `page` per request (after
/// topping the space up with signed batches, untimed).
pub async fn pull(ctx: &Ctx<'_>, bulk: &mut Bulk, report: &mut Report) -> anyhow::Result<()> {
    let args = ctx.args;
    bulk_space(ctx, bulk).await?;
    let want = args.pull_count as u64;
    if bulk.stored < want {
        let need = want - bulk.stored;
        let n = bulk.devices.len() as u64;
        let size = args.batch_size.max(1) as u64;
        let per_device = need.div_ceil(n * size);
        eprintln!("pull: storing {need} more envelopes in the bulk space first (untimed)");
        let (devices, r) = load::run_appends(
            std::mem::take(&mut bulk.devices),
            size as usize,
            ctx.content.clone(),
            Duration::from_secs(600),
            per_device,
        )
        .await?;
        bulk.devices = devices;
        bulk.stored += r.envelopes;
        check_errors("filling the bulk space", &r)?;
        ensure!(
            bulk.stored >= want,
            "the bulk space holds only {} envelopes",
            bulk.stored
        );
    }
    let client = &bulk
        .devices
        .first()
        .context("the bulk space has a device")?
        .0;
    let space = client.space();
    let page = args.page.max(1);
    let max_pages = want.div_ceil(page as u64) + 10;
    let obs = Observer::begin(ctx.target, ctx.hz).await;
    let start = Instant::now();
    let (mut after, mut got, mut pages, mut bytes) = (0u64, 0u64, 0u64, 0u64);
    let mut page_lat = crate::stats::Latencies::with_capacity(max_pages as usize);
    while got < want && pages < max_pages {
        let t = Instant::now();
        let p = client
            .client
            .pull(space, after, page)
            .await
            .context("pulling a page")?;
        page_lat.record(t.elapsed());
        pages += 1;
        got += p.envelopes.len() as u64;
        bytes +=
            p.envelopes
                .iter()
                .map(|e| match &e.body {
                    attune_proto::api::Stored::Envelope(b)
                    | attune_proto::api::Stored::Reveal(b) => b.0.len() as u64,
                })
                .sum::<u64>();
        after = p.next;
        if !p.more {
            break;
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    let o = obs.end(ctx.target).await;
    ensure!(got >= want, "pulled only {got} of {want} envelopes");
    let rate = got as f64 / elapsed.max(1e-9);
    let lat = page_lat.summary();
    println!(
        "pull {got} envelopes, {page}/page: {elapsed:.2} s = {rate:.0} envelopes/s \
         ({:.1} MiB of envelopes; page p50 {} ms p99 {} ms; relay CPU {} us/envelope; peak RSS {} MiB)",
        bytes as f64 / 1048576.0,
        fmt_ms(lat.p50_ms),
        fmt_ms(lat.p99_ms),
        fmt_opt(o.cpu_us_per_envelope(got), 1),
        fmt_opt(o.peak_rss_mib, 1),
    );
    println!("    {}", o.cpu_line());
    report.insert(
        "pull",
        serde_json::json!({
            "envelopes": got,
            "pages": pages,
            "page_size": page,
            "envelope_bytes": bytes,
            "secs": elapsed,
            "envelopes_per_sec": rate,
            "page_p50_ms": lat.p50_ms,
            "page_p99_ms": lat.p99_ms,
            "relay": o.to_json(got),
        }),
    );
    report.rows.push(Row {
        scenario: format!("c. pull {got} envelopes, {page}/page, one space"),
        throughput: format!("{elapsed:.2} s = {rate:.0} envelopes/s"),
        p50: format!("{} (page)", fmt_ms(lat.p50_ms)),
        p99: format!("{} (page)", fmt_ms(lat.p99_ms)),
        cpu: fmt_opt(o.cpu_us_per_envelope(got), 1),
        group: "-".into(),
        other: o.other_cores(),
    });
    if let Some(peak) = o.peak_rss_mib {
        report.rss.push(("during the pull (c), peak".into(), peak));
    }
    Ok(())
}

/// d. Opens `streams` WebSocket streams (one per device, two devices per space)
/// and measures the relay's RSS with all of them open.
pub async fn streams(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let n = ctx.args.streams;
    // In process, both ends of every socket are this process's files.
    let fds_needed = match ctx.target {
        Target::InProcess { .. } => 2 * n as u64 + 256,
        _ => n as u64 + 256,
    };
    let limit = crate::procfs::open_files_soft_limit().unwrap_or(1024);
    if limit < fds_needed {
        bail!(
            "{n} streams need about {fds_needed} open files but the soft limit is {limit}: \
             run the bench from a shell after `ulimit -n 4096`"
        );
    }
    let url = ctx.target.url();
    let devices = fixtures::create_devices(url, n, 2, 32)
        .await
        .context("setting up stream devices")?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = ctx.target.rss_mib();
    let start = Instant::now();
    let mut opened: Vec<Option<attune_core::relay::EnvelopeStream>> = Vec::with_capacity(n);
    for chunk in devices.chunks(64) {
        let mut set = tokio::task::JoinSet::new();
        for (i, d) in chunk.iter().enumerate() {
            let (client, space) = (d.client.clone(), d.space());
            set.spawn(async move { (i, client.stream(space, 0).await) });
        }
        let mut got: Vec<(usize, _)> = Vec::with_capacity(chunk.len());
        while let Some(r) = set.join_next().await {
            got.push(r.context("a stream task panicked")?);
        }
        got.sort_by_key(|(i, _)| *i);
        for (_, s) in got {
            opened.push(Some(s.context("opening a stream")?));
        }
    }
    let open_secs = start.elapsed().as_secs_f64();
    // Let the relay settle, then take the highest of a few samples.
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut with = None::<f64>;
    for _ in 0..5 {
        if let Some(r) = ctx.target.rss_mib() {
            with = Some(with.map_or(r, |w| w.max(r)));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server_open = RelayCounters::fetch(url).await.ok().map(|c| c.streams_open);
    // Check the streams are live: one envelope in the first space reaches both of
    // its devices' streams.
    let mut first = devices.first().context("a stream device")?.clone();
    let env = first.chain.seal_next(&ctx.content)?;
    first
        .client
        .append(first.space(), vec![env])
        .await
        .context("appending to a streamed space")?;
    let mut delivered = 0;
    for s in opened.iter_mut().take(2).flatten() {
        if let Ok(Some(Ok(_))) = tokio::time::timeout(Duration::from_secs(5), s.next()).await {
            delivered += 1;
        }
    }
    // Close them all, bounded in time.
    let closing: Vec<_> = opened
        .into_iter()
        .flatten()
        .map(|s| tokio::spawn(s.close()))
        .collect();
    let _ = tokio::time::timeout(Duration::from_secs(10), async {
        for c in closing {
            let _ = c.await;
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = ctx.target.rss_mib();
    println!(
        "{n} WebSocket streams: opened in {open_secs:.2} s; relay RSS {} MiB before, {} MiB with them open \
         ({} KiB/stream), {} MiB after closing; relay reports {} open; a new envelope reached {delivered}/2 streams",
        fmt_opt(before, 1),
        fmt_opt(with, 1),
        match (before, with) {
            (Some(b), Some(w)) => format!("{:.1}", (w - b) * 1024.0 / n as f64),
            _ => "-".into(),
        },
        fmt_opt(after, 1),
        server_open.map_or("?".into(), |s| s.to_string()),
    );
    ensure!(delivered == 2, "a streamed envelope did not arrive");
    report.insert(
        "streams",
        serde_json::json!({
            "streams": n,
            "open_secs": open_secs,
            "rss_before_mib": before,
            "rss_with_streams_mib": with,
            "rss_after_close_mib": after,
            "kib_per_stream": match (before, with) {
                (Some(b), Some(w)) => Some((w - b) * 1024.0 / n as f64),
                _ => None,
            },
            "relay_streams_open": server_open,
        }),
    );
    if let Some(b) = before {
        report.rss.push((format!("before opening {n} streams"), b));
    }
    if let Some(w) = with {
        report
            .rss
            .push((format!("with {n} WebSocket streams open"), w));
        report.rss_streams = Some(w);
    }
    Ok(())
}

/// e. The ceiling: the same store append behind a bare axum handler, at
/// `ceiling_clients` clients.
pub async fn ceiling(ctx: &Ctx<'_>, report: &mut Report) -> anyhow::Result<()> {
    let clients = ctx.args.ceiling_clients.max(1);
    // The same request body the relay gets (one real envelope in the append JSON),
    // and the same stored bytes (that envelope).
    let mut chain = fixtures::Chain {
        identity: attune_crypto::DeviceIdentity::generate(),
        space: attune_proto::SpaceId(fixtures::random16()),
        epoch: Arc::new(attune_crypto::SymmetricKey::generate()),
        seq: 0,
        prev: attune_proto::Hash32::ZERO,
    };
    let envelope = chain.seal_next(&ctx.content)?;
    let body = Arc::new(serde_json::to_vec(&AppendEnvelopes {
        envelopes: vec![B64(envelope.clone())],
        holds: vec![B64(attune_crypto::random_hold().encode())],
    })?);
    let server = Ceiling::start(ctx.dir, clients, envelope).await?;
    let warm = load::run_ceiling(
        &server.url,
        clients,
        body.clone(),
        ctx.warmup(),
        MAX_REQUESTS_PER_WORKER,
    )
    .await?;
    check_errors("ceiling warm-up", &warm)?;
    let before = server.commits();
    let pid = std::process::id();
    let cpu0 = crate::procfs::ThreadCpu::read(pid);
    let machine0 = crate::procfs::machine_ticks();
    let mut r = load::run_ceiling(
        &server.url,
        clients,
        body.clone(),
        ctx.duration(),
        MAX_REQUESTS_PER_WORKER,
    )
    .await?;
    let cpu = cpu0.delta(&crate::procfs::ThreadCpu::read(pid), ctx.hz);
    let machine = match (machine0, crate::procfs::machine_ticks()) {
        (Some((b0, _)), Some((b1, _))) => Some(b1.saturating_sub(b0) as f64 / ctx.hz),
        _ => None,
    };
    let after = server.commits();
    server.stop().await?;
    check_errors("ceiling", &r)?;
    let secs = r.elapsed.as_secs_f64();
    let thread = |name: &str| cpu.by_name.get(name).copied().unwrap_or(0.0);
    // The ceiling server is its runtime's threads and its writer; the in-process
    // relay (if any) is idle; everything else in this process is the clients.
    let writer = thread(crate::target::WRITER_THREAD);
    let server_cpu = thread(crate::ceiling::CEILING_THREADS) + writer;
    let clients_cpu =
        (cpu.process_secs - server_cpu - thread(crate::target::RELAY_THREADS)).max(0.0);
    let other = machine.map(|m| (m - cpu.process_secs).max(0.0));
    let commits = after.commits.saturating_sub(before.commits);
    let jobs = after.committed_jobs.saturating_sub(before.committed_jobs);
    let group = (commits > 0).then(|| jobs as f64 / commits as f64);
    let lat = r.latencies.summary();
    let rate = r.envelopes_per_sec();
    let per_env = |c: f64| (r.envelopes > 0).then(|| c * 1e6 / r.envelopes as f64);
    println!(
        "ceiling (bare axum + SqliteStore::append_envelopes, no auth), {clients} clients: \
         {rate:>8.0} appends/s  p50 {} ms  p99 {} ms  ({} jobs/commit; {:.0} commits/s; server CPU {} us/append)",
        fmt_ms(lat.p50_ms),
        fmt_ms(lat.p99_ms),
        fmt_opt(group, 1),
        commits as f64 / secs.max(1e-9),
        fmt_opt(per_env(server_cpu), 0),
    );
    println!(
        "    cores: server {:.2} (writer {:.2}), clients {:.2}, other processes {}",
        server_cpu / secs,
        writer / secs,
        clients_cpu / secs,
        fmt_opt(other.map(|o| o / secs), 2),
    );
    report.insert(
        "ceiling",
        serde_json::json!({
            "clients": clients,
            "appends": r.envelopes,
            "secs": secs,
            "appends_per_sec": rate,
            "p50_ms": lat.p50_ms,
            "p99_ms": lat.p99_ms,
            "max_ms": lat.max_ms,
            "commits": commits,
            "commits_per_sec": commits as f64 / secs.max(1e-9),
            "jobs_per_commit": group,
            "server_cpu_secs": server_cpu,
            "server_cpu_us_per_envelope": per_env(server_cpu),
            "writer_thread_cpu_secs": writer,
            "clients_cpu_secs": clients_cpu,
            "other_processes_cpu_cores": other.map(|o| o / secs),
            "body_bytes": body.len(),
        }),
    );
    report.rows.push(Row {
        scenario: format!("e. ceiling: bare axum + same store append, {clients} clients"),
        throughput: format!("{rate:.0} appends/s"),
        p50: fmt_ms(lat.p50_ms),
        p99: fmt_ms(lat.p99_ms),
        cpu: fmt_opt(per_env(server_cpu), 0),
        group: fmt_opt(group, 1),
        other: fmt_opt(other.map(|o| o / secs), 2),
    });
    report.ceiling_rate = Some(rate);
    Ok(())
}
