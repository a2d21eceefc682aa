//! Reaching the relay through a SOCKS5 proxy (`ATTUNE_PROXY`), such as Tor's at
//! `socks5h://127.0.0.1:9050`, so the relay sees the proxy's address instead
//! of the user's. With `socks5h` the proxy also resolves the relay's name, so
//! no DNS query leaves the device either.

use tokio::net::TcpStream;

use super::transport::Setup;

/// The environment variable that names the proxy.
pub const PROXY_VAR: &str = "ATTUNE_PROXY";

/// A SOCKS5 proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proxy {
    /// As given (for reqwest, and for messages).
    pub url: String,
    /// `host:port` of the proxy.
    pub addr: String,
    /// `socks5h`: the proxy resolves the relay's host name.
    pub remote_dns: bool,
}

fn bad(value: &str, why: &str) -> Setup {
    Setup::BadUrl {
        url: value.to_string(),
        hint: format!(
            "{PROXY_VAR} {why}; it must look like socks5h://127.0.0.1:9050 (a SOCKS5 proxy such as Tor's; socks5h lets the proxy look up the relay's name)"
        ),
    }
}

/// Reads a proxy URL: `socks5://host:port` or `socks5h://host:port`.
pub fn parse(value: &str) -> Result<Proxy, Setup> {
    let value = value.trim();
    let (remote_dns, rest) = if let Some(r) = value.strip_prefix("socks5h://") {
        (true, r)
    } else if let Some(r) = value.strip_prefix("socks5://") {
        (false, r)
    } else {
        return Err(bad(value, "is not a SOCKS5 proxy address"));
    };
    let addr = rest.trim_end_matches('/');
    let port_ok = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0));
    if !port_ok || addr.contains('/') || addr.contains('@') {
        return Err(bad(value, "needs a host and a port, and nothing else"));
    }
    Ok(Proxy {
        url: value.to_string(),
        addr: addr.to_string(),
        remote_dns,
    })
}

/// The proxy `ATTUNE_PROXY` names, if it is set.
pub fn from_env() -> Result<Option<Proxy>, Setup> {
    match std::env::var(PROXY_VAR) {
        Ok(v) if !v.trim().is_empty() => parse(&v).map(Some),
        _ => Ok(None),
    }
}

/// A TCP connection to `host:port` through the proxy, its handshake done.
pub async fn connect(proxy: &Proxy, host: &str, port: u16) -> std::io::Result<TcpStream> {
    let to_io = |e: tokio_socks::Error| match e {
        tokio_socks::Error::Io(e) => e,
        e => std::io::Error::other(format!("the SOCKS5 proxy at {}: {e}", proxy.addr)),
    };
    let stream = if proxy.remote_dns {
        tokio_socks::tcp::Socks5Stream::connect(proxy.addr.as_str(), (host, port))
            .await
            .map_err(to_io)?
    } else {
        let target = tokio::net::lookup_host((host, port))
            .await?
            .next()
            .ok_or_else(|| std::io::Error::other(format!("{host} has no address")))?;
        tokio_socks::tcp::Socks5Stream::connect(proxy.addr.as_str(), target)
            .await
            .map_err(to_io)?
    };
    Ok(stream.into_inner())
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn only_socks5_addresses_with_a_host_and_port_are_proxies() {
        let p = parse("socks5h://127.0.0.1:9050").unwrap();
        assert_eq!((p.addr.as_str(), p.remote_dns), ("127.0.0.1:9050", true));
        let p = parse(" socks5://proxy.local:1080/ ").unwrap();
        assert_eq!((p.addr.as_str(), p.remote_dns), ("proxy.local:1080", false));
        for bad in [
            "http://127.0.0.1:8080",
            "socks4://127.0.0.1:9050",
            "socks5h://127.0.0.1",
            "socks5h://:9050",
            "socks5h://127.0.0.1:0",
            "socks5h://user:pw@127.0.0.1:9050",
            "127.0.0.1:9050",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
