//! HTTPS and WSS end to end: the relay serves TLS itself (`--tls-cert`,
//! `--tls-key`) with a certificate from a CA made for the test, and the clients
//! trust that CA through `ATTUNE_CA_FILE`. Pairing, sync and watch work over it; a
//! client without the CA refuses and says why in plain words; the relay reloads
//! its certificate on SIGHUP; the header time limit holds under TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use attune_core::relay::{RelayClient, RelayError};
use attune_crypto::DeviceIdentity;
use attune_tests::{Attune, Couple, Relay, Run, TestCerts};

/// Lines of a child's pipe, as they come.
fn lines_of(pipe: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

fn wait_for(lines: &mpsc::Receiver<String>, needle: &str, within: Duration) -> Vec<String> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match lines.recv_timeout(left) {
            Ok(line) => {
                let found = line.contains(needle);
                seen.push(line);
                if found {
                    return seen;
                }
            }
            Err(_) => break,
        }
    }
    panic!("no line with {needle:?} within {within:?}; got {seen:?}");
}

fn feed_texts(p: &Attune) -> Vec<String> {
    let v = p.run(&["feed", "--json"]).ok().json();
    assert_eq!(
        v["problems"],
        serde_json::json!([]),
        "integrity problems: {v:#}"
    );
    v["entries"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["text"].as_str().map(str::to_string))
        .collect()
}

#[test]
fn pairing_sync_and_watch_work_over_tls() {
    let c = Couple::new_tls(&[]);
    assert!(c.relay.url.starts_with("https://"), "{}", c.relay.url);
    c.a.run(&["journal", "-m", "sent over https"]).ok();
    c.b.run(&["sync"]).ok();
    assert!(
        feed_texts(&c.b).contains(&"sent over https".to_string()),
        "the partner receives over HTTPS"
    );

    // watch: the WebSocket stream over TLS (wss://).
    let mut watch =
        c.b.command(&["watch", "--seconds", "60"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let out = lines_of(watch.stdout.take().unwrap());
    let err = lines_of(watch.stderr.take().unwrap());
    wait_for(&err, "watching", Duration::from_secs(30));
    std::thread::sleep(Duration::from_millis(500));
    c.a.run(&["journal", "-m", "streamed over wss"]).ok();
    let printed = wait_for(&out, "streamed over wss", Duration::from_secs(15));
    let _ = watch.kill();
    let _ = watch.wait();
    assert!(printed.iter().any(|l| l.contains("streamed over wss")));
    let errors: Vec<String> = err.try_iter().collect();
    assert!(
        !errors.iter().any(|l| l.contains("lost the connection")),
        "the stream held: {errors:?}"
    );
}

/// One line on stderr, non-zero exit, and every word (case-insensitive).
fn says(run: &Run, words: &[&str]) -> Result<(), String> {
    let lines: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let lower = run.stderr.to_lowercase();
    let missing: Vec<&&str> = words
        .iter()
        .filter(|w| !lower.contains(&w.to_lowercase()))
        .collect();
    if run.code == 0 || lines.len() != 1 || !lines[0].starts_with("attune:") || !missing.is_empty()
    {
        return Err(format!(
            "exit {}, missing {missing:?}, stderr {:?}",
            run.code, run.stderr
        ));
    }
    for library in [
        "rustls",
        "invalid peer certificate",
        "os error",
        "error sending request",
    ] {
        if lower.contains(library) {
            return Err(format!("library wording {library:?}: {:?}", run.stderr));
        }
    }
    Ok(())
}

#[test]
fn certificate_and_scheme_problems_are_refused_in_plain_words() {
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start_tls(&dir.path().join("relay"), &[]);
    let plain = Relay::start(&dir.path().join("plain"), &[]);
    let ca = relay.ca.clone().unwrap();
    let init = |name: &str| {
        let p = Attune::new(&dir.path().join(name));
        p.init(name);
        p
    };
    let stranger = init("stranger");
    let not_pem = dir.path().join("not-a-ca.pem");
    std::fs::write(&not_pem, "hello, I am not a certificate\n").unwrap();
    let with_ca = |p: &Attune, ca: &std::path::Path| p.clone().trusting(ca);
    let https_plain = plain.url.replacen("http://", "https://", 1);
    let http_tls = relay.url.replacen("https://", "http://", 1);

    let cases: Vec<(&str, Run, Vec<&str>)> = vec![
        (
            "a client without the relay's CA",
            stranger.run(&["pair", "invite", "--relay", &relay.url, "--timeout", "5"]),
            vec!["certificate", "not trusted", "ATTUNE_CA_FILE"],
        ),
        (
            "a joiner without the relay's CA",
            stranger.run(&[
                "pair",
                "join",
                "5-otter-maple",
                "--relay",
                &relay.url,
                "--timeout",
                "5",
            ]),
            vec!["certificate", "ATTUNE_CA_FILE"],
        ),
        (
            "ATTUNE_CA_FILE naming a file that does not exist",
            with_ca(&stranger, &dir.path().join("missing.pem")).run(&[
                "pair",
                "invite",
                "--relay",
                &relay.url,
                "--timeout",
                "5",
            ]),
            vec!["ATTUNE_CA_FILE", "no such file", "PEM"],
        ),
        (
            "ATTUNE_CA_FILE naming a file with no certificate",
            with_ca(&stranger, &not_pem).run(&[
                "pair",
                "invite",
                "--relay",
                &relay.url,
                "--timeout",
                "5",
            ]),
            vec!["ATTUNE_CA_FILE", "no certificate"],
        ),
        (
            "https:// to a relay that serves plain HTTP",
            with_ca(&stranger, &ca).run(&[
                "pair",
                "invite",
                "--relay",
                &https_plain,
                "--timeout",
                "5",
            ]),
            vec!["does not speak TLS", "http://"],
        ),
        (
            "http:// to a relay that serves HTTPS",
            with_ca(&stranger, &ca).run(&[
                "pair",
                "invite",
                "--relay",
                &http_tls,
                "--timeout",
                "5",
            ]),
            vec!["could not reach", "https://"],
        ),
    ];
    let mut failures = String::new();
    for (name, run, words) in &cases {
        let verdict = says(run, words);
        println!(
            "[{}] {name}: {:?}",
            if verdict.is_ok() { "ok" } else { "BAD" },
            run.stderr
        );
        if let Err(why) = verdict {
            failures.push_str(&format!("\n{name}: {why}"));
        }
    }
    assert!(failures.is_empty(), "unclear failures:{failures}");
}

/// A paired device that loses the CA (or meets another certificate) syncs
/// nothing and says why; its outbox waits.
#[test]
fn a_paired_device_that_does_not_trust_the_certificate_says_so() {
    let c = Couple::new_tls(&[]);
    let mut untrusting = c.a.clone();
    untrusting.env.clear();
    untrusting.run(&["journal", "-m", "kept for later"]).ok();
    let run = untrusting.run(&["sync"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("certificate") && run.stderr.contains("ATTUNE_CA_FILE"),
        "{run:?}"
    );
    let run = untrusting.run(&["watch", "--seconds", "3"]);
    assert_ne!(run.code, 0, "{run:?}");
    assert!(
        run.stderr.contains("certificate") && run.stderr.contains("ATTUNE_CA_FILE"),
        "{run:?}"
    );
    // With the CA again, what waited goes up.
    c.a.run(&["sync"]).ok();
    c.b.run(&["sync"]).ok();
    assert!(feed_texts(&c.b).contains(&"kept for later".to_string()));
}

/// Whether a fresh client trusting `ca` gets an answer from the relay (any
/// answer: the TLS handshake is what is checked); `Err` with the error if not.
async fn reaches(relay: &Relay, ca: &std::path::Path) -> Result<(), RelayError> {
    let client = RelayClient::with_ca_file(&relay.url, DeviceIdentity::generate(), Some(ca));
    match client.roster(attune_proto::SpaceId([0; 16])).await {
        Ok(_) | Err(RelayError::Refused { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}

fn wait_for_log(relay: &Relay, needle: &str, after: usize) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if relay.log_text()[after..].contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("the relay's log has no {needle:?}:\n{}", relay.log_text());
}

fn sighup(relay: &Relay) {
    let status = std::process::Command::new("kill")
        .args(["-HUP", &relay.pid().unwrap().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_reloads_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let first = TestCerts::generate(&dir.path().join("first"), "first");
    let second = TestCerts::generate(&dir.path().join("second"), "second");
    // The relay reads the files at these paths; the test replaces their content.
    let live = TestCerts::generate(&dir.path().join("live"), "live");
    std::fs::copy(&first.cert, &live.cert).unwrap();
    std::fs::copy(&first.key, &live.key).unwrap();
    let relay = Relay::start_with_certs(&dir.path().join("relay"), &live, &[]);

    reaches(&relay, &first.ca)
        .await
        .expect("the first certificate is served");
    let e = reaches(&relay, &second.ca).await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");

    // Renewed: the second certificate replaces the first, then SIGHUP.
    std::fs::copy(&second.cert, &live.cert).unwrap();
    std::fs::copy(&second.key, &live.key).unwrap();
    let before = relay.log_text().len();
    sighup(&relay);
    wait_for_log(&relay, "reloaded the TLS certificate", before);
    reaches(&relay, &second.ca)
        .await
        .expect("the renewed certificate is served without a restart");
    let e = reaches(&relay, &first.ca).await.unwrap_err();
    assert!(e.to_string().contains("certificate"), "{e}");

    // A broken renewal keeps the certificate in use, and says so in the log.
    std::fs::write(&live.cert, "not a certificate").unwrap();
    let before = relay.log_text().len();
    sighup(&relay);
    wait_for_log(&relay, "could not reload the TLS certificate", before);
    reaches(&relay, &second.ca)
        .await
        .expect("the previous certificate is still served");
    // The key never reaches the log.
    let key_pem = std::fs::read_to_string(&second.key).unwrap();
    let key_body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!relay.log_text().replace('\n', "").contains(&key_body[..40]));
}

/// A connection that never finishes its TLS handshake, and one that finishes it
/// and then sends its request head one byte at a time, are both closed once the
/// header time limit has passed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_header_time_limit_holds_under_tls() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let dir = tempfile::tempdir().unwrap();
    let relay = Relay::start_tls(dir.path(), &["--request-timeout-secs", "2"]);
    let limit = Duration::from_secs(8);

    // Silent after connecting: no ClientHello.
    let started = Instant::now();
    let mut silent = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let mut buf = [0u8; 64];
    let closed = tokio::time::timeout(limit, silent.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "a connection without a handshake was still open after {:?}",
        started.elapsed()
    );

    // A finished handshake, then a head that never ends.
    let ca = std::fs::read(relay.ca.as_ref().unwrap()).unwrap();
    let mut roots = rustls::RootCertStore::empty();
    use rustls_pki_types::pem::PemObject;
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(&ca) {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(relay.addr).await.unwrap();
    let name = rustls_pki_types::ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = connector
        .connect(name, tcp)
        .await
        .expect("the handshake completes");
    let started = Instant::now();
    tls.write_all(b"GET /healthz HTTP/1.1\r\nx-slow: ")
        .await
        .unwrap();
    let mut closed = false;
    while started.elapsed() < limit {
        if tls.write_all(b"a").await.is_err() {
            closed = true;
            break;
        }
        match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            _ => {}
        }
    }
    assert!(
        closed,
        "a slow request head over TLS was still open after {:?}",
        started.elapsed()
    );
}
