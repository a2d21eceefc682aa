//! Connection caps: at most `--max-connections` open at once, and at most
//! `--max-connections-per-ip` from one address (an IPv6 /64 counts as one
//! address: one host usually has a whole /64). A connection over a cap is answered
//! with a JSON 503 `too_many_connections` and closed; while many such answers are
//! already being written, further ones are closed without a word.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use attune_proto::api::codes;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::ApiError;

/// Which cap a refused connection hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

impl Refusal {
    /// The JSON 503 for a refused connection; it closes the connection.
    pub fn response(self) -> Response {
        let message = match self {
            Refusal::Total => {
                "the relay has as many connections open as it serves at once; try again in a moment"
            }
            Refusal::PerAddress => {
                "too many connections from this address are open on the relay; close some, or try again in a moment"
            }
        };
        let mut e = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::TOO_MANY_CONNECTIONS,
            message,
        );
        e.retry_after_secs = Some(1);
        let mut resp = e.into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    }
}

#[derive(Debug, Default)]
struct Open {
    total: usize,
    by_address: HashMap<IpAddr, usize>,
}

#[derive(Debug)]
pub struct Caps {
    max_total: usize,
    /// 0: no per-address cap.
    max_per_address: usize,
    open: Mutex<Open>,
}

/// The address a connection counts against.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Caps {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::new(Open::default()),
        })
    }

    /// Counts a new connection from `ip`, or says which cap it is over.
    pub fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<Slot, Refusal> {
        let key = address_key(ip);
        let mut open = self.open.lock().map_err(|_| Refusal::Total)?;
        if open.total >= self.max_total {
            return Err(Refusal::Total);
        }
        let mine = open.by_address.get(&key).copied().unwrap_or(0);
        if self.max_per_address > 0 && mine >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        open.total += 1;
        open.by_address.insert(key, mine + 1);
        Ok(Slot {
            caps: self.clone(),
            key,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.lock().map_or(0, |o| o.total)
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    caps: Arc<Caps>,
    key: IpAddr,
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Ok(mut open) = self.caps.open.lock() {
            open.total = open.total.saturating_sub(1);
            if let Some(n) = open.by_address.get_mut(&self.key) {
                *n -= 1;
                if *n == 0 {
                    open.by_address.remove(&self.key);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn caps_count_per_address_and_in_all_and_free_on_drop() {
        let caps = Caps::new(3, 2);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "2001:db8::1".parse().unwrap();
        let b_same_64: IpAddr = "2001:db8::ffff:1".parse().unwrap();
        let a1 = caps.admit(a).unwrap();
        let _a2 = caps.admit(a).unwrap();
        assert_eq!(caps.admit(a).unwrap_err(), Refusal::PerAddress);
        let _b1 = caps.admit(b).unwrap();
        assert_eq!(caps.admit(b_same_64).unwrap_err(), Refusal::Total);
        drop(a1);
        let _b2 = caps.admit(b_same_64).unwrap();
        assert_eq!(caps.admit(b).unwrap_err(), Refusal::Total);
        assert_eq!(caps.open(), 3);
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(address_key(mapped), a);
    }

    #[test]
    fn zero_means_no_per_address_cap() {
        let caps = Caps::new(10, 0);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let slots: Vec<_> = (0..10).map(|_| caps.admit(a).unwrap()).collect();
        assert_eq!(caps.admit(a).unwrap_err(), Refusal::Total);
        drop(slots);
        assert_eq!(caps.open(), 0);
    }
}
