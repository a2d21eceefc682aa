//! `attune-relay health`: asks a relay serving with the same settings whether it
//! answers. Made for container health checks, where the image has no HTTP client
//! of its own; it reads the listen address (and whether TLS is on) from the same
//! flags and `ATTUNE_RELAY_*` variables as the relay it checks.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::Config;

/// The longest a check waits for the whole answer.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// What a healthy relay answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Healthy {
    /// `GET /healthz` answered 200.
    Answered { addr: SocketAddr },
    /// The relay serves TLS, whose certificate names a host this check cannot
    /// know: it only saw the port accept a connection.
    Accepting { addr: SocketAddr },
}

#[derive(Debug, thiserror::Error)]
pub enum HealthError {
    #[error("nothing accepts connections on {addr}; is the relay running with these settings?")]
    Connect {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("the relay on {addr} did not answer within {} s", TIMEOUT.as_secs())]
    Timeout { addr: SocketAddr },
    #[error("the relay on {addr} closed the connection without answering /healthz")]
    Http { addr: SocketAddr },
    #[error("the relay on {addr} answered /healthz with status {status}")]
    Status { addr: SocketAddr, status: u16 },
}

/// Where to reach a relay listening on `listen`: its own address, or loopback
/// when it listens on every address.
pub fn probe_addr(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(v4) if v4.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(v6) if v6.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

/// Checks the relay that `config` describes.
pub async fn check(config: &Config) -> Result<Healthy, HealthError> {
    let addr = probe_addr(config.listen);
    match tokio::time::timeout(TIMEOUT, check_at(addr, config.tls_cert.is_some())).await {
        Ok(result) => result,
        Err(_) => Err(HealthError::Timeout { addr }),
    }
}

async fn check_at(addr: SocketAddr, tls: bool) -> Result<Healthy, HealthError> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|source| HealthError::Connect { addr, source })?;
    if tls {
        return Ok(Healthy::Accepting { addr });
    }
    let http = |_| HealthError::Http { addr };
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(http)?;
    let conn = tokio::spawn(conn);
    let request = hyper::Request::get("/healthz")
        .header(hyper::header::HOST, addr.to_string())
        .body(Empty::<Bytes>::new())
        .map_err(|_| HealthError::Http { addr })?;
    let response = sender.send_request(request).await.map_err(http)?;
    let status = response.status();
    // Read the body so the relay sees a complete exchange, not a reset.
    response.into_body().collect().await.map_err(http)?;
    conn.abort();
    if status.is_success() {
        Ok(Healthy::Answered { addr })
    } else {
        Err(HealthError::Status {
            addr,
            status: status.as_u16(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_is_probed_on_loopback() {
        let cases = [
            ("0.0.0.0:8733", "127.0.0.1:8733"),
            ("[::]:9000", "[::1]:9000"),
            ("127.0.0.1:1", "127.0.0.1:1"),
            ("10.1.2.3:8733", "10.1.2.3:8733"),
        ];
        for (listen, probed) in cases {
            let listen: SocketAddr = listen.parse().unwrap_or_else(|e| panic!("{listen}: {e}"));
            assert_eq!(probe_addr(listen).to_string(), probed);
        }
    }
}
