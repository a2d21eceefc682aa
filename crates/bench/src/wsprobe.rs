//! An experiment on the memory of idle WebSocket connections: a bare axum
//! WebSocket server (this executable, re-run as a child process) holding N
//! connections, with tungstenite's default 128 KiB read buffer and with a small
//! one. It isolates what each open relay stream costs and what a smaller buffer
//! would save, without touching the relay.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::routing::get;
use axum::Router;

use crate::report::Report;

/// Serves `/ws` on 127.0.0.1, printing `listening on ADDR`; each connection is
/// held until the client closes it. `read_buffer` 0 keeps tungstenite's default.
pub async fn serve(read_buffer: usize) -> anyhow::Result<()> {
    let app = Router::new().route(
        "/ws",
        get(move |ws: WebSocketUpgrade| async move {
            let ws = if read_buffer > 0 {
                ws.read_buffer_size(read_buffer)
                    .write_buffer_size(read_buffer)
            } else {
                ws
            };
            ws.on_upgrade(|mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            })
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}

/// RSS of a child WebSocket server with `n` idle connections open, in MiB:
/// `(before, with them open)`.
async fn measure(read_buffer: usize, n: usize) -> anyhow::Result<(f64, f64)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(["--internal-ws-server", &read_buffer.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the WebSocket probe server")?;
    let result = async {
        let stdout = child.stdout.take().context("piped stdout")?;
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            line
        });
        let line = tokio::time::timeout(Duration::from_secs(10), line)
            .await
            .context("the probe server did not start")??;
        let Some(addr) = line.trim().strip_prefix("listening on ") else {
            bail!("unexpected line from the probe server: {line:?}");
        };
        let url = format!("ws://{addr}/ws");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let pid = child.id();
        let before = crate::procfs::rss_mib(pid).context("reading the probe's RSS")?;
        let mut sockets = Vec::with_capacity(n);
        for _ in 0..n {
            let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .context("connecting to the probe server")?;
            sockets.push(ws);
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        let with = crate::procfs::rss_mib(pid).context("reading the probe's RSS")?;
        drop(sockets);
        Ok((before, with))
    }
    .await;
    let _ = child.kill();
    let _ = child.wait();
    result
}

/// Runs the experiment for the default buffer and a 4 KiB one.
pub async fn run(n: usize, report: &mut Report) -> anyhow::Result<()> {
    let mut rows = Vec::new();
    for (label, buf) in [("tungstenite default (128 KiB)", 0usize), ("4 KiB", 4096)] {
        let (before, with) = measure(buf, n).await?;
        let per = (with - before) * 1024.0 / n.max(1) as f64;
        println!(
            "bare axum WebSocket server, read/write buffer {label}: {n} idle connections \
             take {:.1} MiB ({per:.1} KiB each; RSS {before:.1} -> {with:.1} MiB)",
            with - before
        );
        rows.push(serde_json::json!({
            "buffer": label,
            "connections": n,
            "rss_before_mib": before,
            "rss_with_mib": with,
            "kib_per_connection": per,
        }));
        report.rss.push((
            format!("(experiment) bare axum WS server, {label} buffer, {n} connections"),
            with,
        ));
    }
    report.insert("ws_buffer_experiment", rows.into());
    Ok(())
}
