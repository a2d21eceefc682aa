//! The client reaches the relay through a SOCKS5 proxy (`ATTUNE_PROXY`): pairing,
//! sync and the WebSocket stream all go through it, with `socks5h` the relay's
//! host name is handed to the proxy unresolved, and a proxy that is down is said
//! in plain words. The proxy is a minimal SOCKS5 server this test runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use attune_tests::{pair, Attune, Relay};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the proxy was asked to connect to: `domain host:port` or `ip addr:port`.
type Seen = Arc<Mutex<Vec<String>>>;

async fn socks5_session(mut client: TcpStream, seen: Seen) -> std::io::Result<()> {
    // Greeting: version 5, methods; answer "no authentication".
    let mut head = [0u8; 2];
    client.read_exact(&mut head).await?;
    let mut methods = vec![0u8; head[1] as usize];
    client.read_exact(&mut methods).await?;
    client.write_all(&[5, 0]).await?;
    // CONNECT request.
    let mut req = [0u8; 4];
    client.read_exact(&mut req).await?;
    let target = match req[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip).await?;
            let mut port = [0u8; 2];
            client.read_exact(&mut port).await?;
            let addr = format!(
                "{}.{}.{}.{}:{}",
                ip[0],
                ip[1],
                ip[2],
                ip[3],
                u16::from_be_bytes(port)
            );
            seen.lock().unwrap().push(format!("ip {addr}"));
            addr
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len).await?;
            let mut host = vec![0u8; len[0] as usize];
            client.read_exact(&mut host).await?;
            let mut port = [0u8; 2];
            client.read_exact(&mut port).await?;
            let addr = format!(
                "{}:{}",
                String::from_utf8_lossy(&host),
                u16::from_be_bytes(port)
            );
            seen.lock().unwrap().push(format!("domain {addr}"));
            addr
        }
        _ => return Ok(()),
    };
    // Only loopback targets: this proxy never reaches out.
    let upstream = if target.starts_with("localhost:") || target.starts_with("127.0.0.1:") {
        TcpStream::connect(target.replacen("localhost", "127.0.0.1", 1)).await?
    } else {
        client.write_all(&[5, 2, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
        return Ok(());
    };
    client.write_all(&[5, 0, 0, 1, 0, 0, 0, 0, 0, 0]).await?;
    let mut upstream = upstream;
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
    Ok(())
}

/// Starts the proxy on a free loopback port, on its own thread and runtime.
fn start_proxy() -> (u16, Seen) {
    let seen: Seen = Arc::new(Mutex::new(Vec::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let s = seen.clone();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap().port()).unwrap();
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                tokio::spawn(socks5_session(client, s.clone()));
            }
        });
    });
    (rx.recv().unwrap(), seen)
}

fn through(who: &mut Attune, proxy: &str) {
    who.env.push(("ATTUNE_PROXY".into(), proxy.into()));
}

#[test]
fn everything_goes_through_the_socks5_proxy() {
    let (port, seen) = start_proxy();
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    // The relay by name, so the proxy's view shows who resolved it.
    let url = relay.url.replacen("127.0.0.1", "localhost", 1);
    let relay_port = url.rsplit(':').next().unwrap().to_string();
    let mut a = Attune::new(&dir.path().join("a"));
    let mut b = Attune::new(&dir.path().join("b"));
    through(&mut a, &format!("socks5h://127.0.0.1:{port}"));
    through(&mut b, &format!("socks5h://127.0.0.1:{port}"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &url);
    a.run(&["journal", "-m", "through the proxy"]).ok();
    let synced = b.run(&["sync"]).ok();
    assert!(synced.stdout.contains("received"), "{synced:?}");
    let before_watch = seen.lock().unwrap().len();
    // The stream: an item written while Sam watches arrives through the proxy.
    let watcher = b
        .command(&["watch", "--seconds", "6"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    a.run(&["journal", "-m", "while Sam watches"]).ok();
    let watch = watcher.wait_with_output().unwrap();
    let out = String::from_utf8_lossy(&watch.stdout);
    assert!(out.contains("while Sam watches"), "{out}");
    let seen = seen.lock().unwrap().clone();
    assert!(
        seen.len() > before_watch,
        "watch went through the proxy too: {seen:?}"
    );
    // socks5h: the proxy, not the device, looked up the relay's name.
    assert!(
        seen.iter()
            .all(|t| t == &format!("domain localhost:{relay_port}")),
        "{seen:?}"
    );

    // socks5: the device resolves the name and hands the proxy an address.
    let (port2, seen2) = start_proxy();
    let mut c = Attune::new(&a.home);
    through(&mut c, &format!("socks5://127.0.0.1:{port2}"));
    c.run(&["sync"]).ok();
    assert!(
        !seen2.lock().unwrap().is_empty(),
        "sync went through the proxy"
    );
    assert!(
        seen2
            .lock()
            .unwrap()
            .iter()
            .all(|t| t == &format!("ip 127.0.0.1:{relay_port}")),
        "{:?}",
        seen2.lock().unwrap()
    );
}

#[test]
fn a_proxy_that_is_down_or_malformed_is_said_plainly() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start(&dir.path().join("relay"), &[]);
    let mut a = Attune::new(&dir.path().join("a"));
    let b = Attune::new(&dir.path().join("b"));
    a.init("Alex");
    b.init("Sam");
    pair(&a, &b, &relay.url);
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = free.local_addr().unwrap().port();
    drop(free);
    let mut down = Attune::new(&a.home);
    through(&mut down, &format!("socks5h://127.0.0.1:{port}"));
    let run = down.run(&["sync"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("SOCKS5 proxy"), "{run:?}");
    through(&mut a, "http://127.0.0.1:3128");
    let run = a.run(&["sync"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("ATTUNE_PROXY"), "{run:?}");
    assert!(run.stderr.contains("socks5h://"), "{run:?}");
}
