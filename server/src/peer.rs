//! The address a request comes from, for per-address limits: the TCP peer, or,
//! only when the peer is the configured trusted proxy, the last address in
//! `X-Forwarded-For` (the one that proxy appended; a client can prepend anything).

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::HeaderMap;

use crate::state::SharedState;

/// The client's address as limits count it: IPv6 addresses by their /64,
/// because one host or home usually holds a whole /64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl FromRequestParts<SharedState> for ClientAddr {
    type Rejection = Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &SharedState,
    ) -> Result<Self, Infallible> {
        // The accept loop inserts the peer; a router driven in process has none.
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| c.0.ip());
        Ok(client_addr(
            peer,
            &parts.headers,
            state.config.trusted_proxy,
        ))
    }
}

pub fn client_addr(peer: IpAddr, headers: &HeaderMap, trusted: Option<IpAddr>) -> ClientAddr {
    let peer = peer.to_canonical();
    let forwarded = || {
        let last = headers.get_all("x-forwarded-for").iter().next_back()?;
        let entry = last.to_str().ok()?.rsplit(',').next()?.trim();
        entry
            .parse::<IpAddr>()
            .or_else(|_| entry.parse::<SocketAddr>().map(|s| s.ip()))
            .ok()
    };
    let addr = match trusted {
        // A proxy that sent no usable header counts as itself.
        Some(proxy) if proxy.to_canonical() == peer => forwarded().unwrap_or(peer),
        _ => peer,
    };
    ClientAddr(match addr.to_canonical() {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & !u128::from(u64::MAX))),
        v4 => v4,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(xff: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in xff {
            h.append(
                "x-forwarded-for",
                v.parse().unwrap_or_else(|_| unreachable!()),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn forwarded_only_from_the_trusted_proxy_and_only_its_last_entry() {
        let proxy = ip("10.0.0.1");
        let h = headers(&["1.1.1.1, 2.2.2.2", "3.3.3.3, 4.4.4.4"]);
        assert_eq!(client_addr(proxy, &h, Some(proxy)).0, ip("4.4.4.4"));
        assert_eq!(
            client_addr(ip("10.0.0.2"), &h, Some(proxy)).0,
            ip("10.0.0.2")
        );
        assert_eq!(client_addr(proxy, &h, None).0, proxy);
        // Unusable or missing: the proxy itself.
        assert_eq!(
            client_addr(proxy, &headers(&["junk"]), Some(proxy)).0,
            proxy
        );
        assert_eq!(client_addr(proxy, &headers(&[]), Some(proxy)).0, proxy);
        let with_port = headers(&["[2001:db8::1]:443"]);
        assert_eq!(
            client_addr(proxy, &with_port, Some(proxy)).0,
            ip("2001:db8::")
        );
    }

    #[test]
    fn ipv6_counts_by_its_64_and_mapped_ipv4_as_ipv4() {
        let a = client_addr(ip("2001:db8:1:2:aaaa::1"), &headers(&[]), None);
        let b = client_addr(ip("2001:db8:1:2:ffff::9"), &headers(&[]), None);
        let c = client_addr(ip("2001:db8:1:3::1"), &headers(&[]), None);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = client_addr(ip("::ffff:192.0.2.7"), &headers(&[]), Some(ip("192.0.2.7")));
        assert_eq!(mapped.0, ip("192.0.2.7"));
    }
}
