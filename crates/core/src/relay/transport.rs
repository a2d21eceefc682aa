//! How the client reaches a relay: relay URLs, the one rustls configuration that
//! HTTPS requests and the WebSocket stream share (the platform's certificate
//! authorities plus those in `ATTUNE_CA_FILE`), and network failures said in plain
//! words, with what to do.

use std::io::ErrorKind;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::{CertificateError, RootCertStore};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::CertificateDer;

use crate::relay::RelayError;

/// The environment variable naming a PEM file of extra certificate authorities,
/// for a relay with its own certificate.
pub const CA_FILE_VAR: &str = "ATTUNE_CA_FILE";

/// Why a client could not be set up; said again on every call.
#[derive(Debug, Clone)]
pub enum Setup {
    BadUrl { url: String, hint: String },
    CaFile { path: String, why: String },
    Tls(String),
}

impl Setup {
    pub fn error(&self) -> RelayError {
        match self.clone() {
            Setup::BadUrl { url, hint } => RelayError::BadUrl { url, hint },
            Setup::CaFile { path, why } => RelayError::CaFile { path, why },
            Setup::Tls(why) => RelayError::Tls {
                url: "the relay".into(),
                detail: why,
            },
        }
    }
}

impl From<Setup> for RelayError {
    fn from(s: Setup) -> Self {
        s.error()
    }
}

/// Checks that `url` is an `http://` or `https://` URL with a host, as a relay
/// address must be.
pub fn check_url(url: &str) -> Result<(), RelayError> {
    check(url).map_err(RelayError::from)
}

pub(crate) fn check(url: &str) -> Result<(), Setup> {
    let url = url.trim();
    let bad = |hint: String| Setup::BadUrl {
        url: url.to_string(),
        hint,
    };
    let write_as = || {
        bad(format!(
            "write it as http://{url} (or https://{url} if the relay serves HTTPS)"
        ))
    };
    if url.is_empty() {
        return Err(bad(
            "give the relay's address, such as http://relay.example:8733".into(),
        ));
    }
    if !url.contains("://") {
        return Err(write_as());
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        bad(format!(
            "it does not read as a URL ({e}); write it like http://relay.example:8733"
        ))
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "a relay URL starts with http:// or https://, not {}://",
            parsed.scheme()
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad(
            "it names no host; write it like http://relay.example:8733".into(),
        ));
    }
    if parsed.query().is_some() || parsed.fragment().is_some() {
        return Err(bad(
            "a relay URL has no ?query or #fragment; write it like http://relay.example:8733"
                .into(),
        ));
    }
    Ok(())
}

/// The platform's certificate authorities, read once per process.
fn platform_roots() -> &'static [CertificateDer<'static>] {
    static ROOTS: OnceLock<Vec<CertificateDer<'static>>> = OnceLock::new();
    ROOTS.get_or_init(|| rustls_native_certs::load_native_certs().certs)
}

/// The TLS settings for a relay: the platform's authorities plus those in
/// `ca_file`. Made once per CA file and process.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, Setup> {
    type Cached = Option<(Option<std::path::PathBuf>, Arc<rustls::ClientConfig>)>;
    static LAST: Mutex<Cached> = Mutex::new(None);
    if let Ok(last) = LAST.lock() {
        if let Some((path, config)) = last.as_ref() {
            if path.as_deref() == ca_file {
                return Ok(config.clone());
            }
        }
    }
    let mut roots = RootCertStore::empty();
    // A platform certificate rustls cannot use is skipped, as browsers do.
    let _ = roots.add_parsable_certificates(platform_roots().iter().cloned());
    if let Some(path) = ca_file {
        let name = path.display().to_string();
        let ca = |why: String| Setup::CaFile {
            path: name.clone(),
            why,
        };
        let bytes = std::fs::read(path)
            .map_err(|e| ca(format!("it could not be read ({})", io_words(&e))))?;
        let certs = CertificateDer::pem_slice_iter(&bytes)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| ca(format!("it is not a PEM file ({e})")))?;
        if certs.is_empty() {
            return Err(ca(
                "it holds no certificate (-----BEGIN CERTIFICATE-----)".into()
            ));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| ca(format!("a certificate in it cannot be used ({e})")))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Setup::Tls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // HTTP/1.1 for requests and the WebSocket upgrade alike.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let config = Arc::new(config);
    if let Ok(mut last) = LAST.lock() {
        *last = Some((ca_file.map(Path::to_path_buf), config.clone()));
    }
    Ok(config)
}

/// An I/O error in a few plain words (no "os error 111").
fn io_words(e: &std::io::Error) -> String {
    match e.kind() {
        ErrorKind::NotFound => "no such file".into(),
        ErrorKind::PermissionDenied => "permission denied".into(),
        ErrorKind::ConnectionRefused => "the connection was refused".into(),
        ErrorKind::ConnectionReset => "the connection was reset".into(),
        ErrorKind::ConnectionAborted => "the connection was aborted".into(),
        ErrorKind::TimedOut => "the connection timed out".into(),
        ErrorKind::UnexpectedEof => "the connection closed early".into(),
        ErrorKind::BrokenPipe => "the connection broke".into(),
        ErrorKind::AddrNotAvailable => "the address is not available".into(),
        ErrorKind::HostUnreachable => "the host is unreachable".into(),
        ErrorKind::NetworkUnreachable => "the network is unreachable".into(),
        ErrorKind::NetworkDown => "the network is down".into(),
        _ => {
            let text = e.to_string();
            // "Connection refused (os error 111)" -> "connection refused"
            let text = text.split(" (os error").next().unwrap_or(&text);
            text.to_lowercase()
        }
    }
}

/// What went wrong, found in an error and its causes.
#[derive(Debug)]
enum Cause<'a> {
    Tls(&'a rustls::Error),
    Io(&'a std::io::Error),
    Timeout,
    Dns,
    NotHttp,
    Closed,
    Other,
}

/// The most telling cause in `e`'s chain: a TLS error first, then an I/O error.
fn cause<'a>(e: &'a (dyn std::error::Error + 'static)) -> Cause<'a> {
    let mut io = None;
    let mut text = String::new();
    let mut timeout = false;
    let mut cur: Option<&'a (dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<rustls::Error>() {
            return Cause::Tls(t);
        }
        if let Some(tokio_tungstenite::tungstenite::error::TlsError::Rustls(t)) =
            err.downcast_ref::<tokio_tungstenite::tungstenite::error::TlsError>()
        {
            return Cause::Tls(t);
        }
        if let Some(i) = err.downcast_ref::<std::io::Error>() {
            // An I/O error's source skips what it wraps (a rustls error, say, or
            // another I/O error around one).
            let mut wrapped = i.get_ref();
            while let Some(inner) = wrapped {
                if let Some(t) = inner.downcast_ref::<rustls::Error>() {
                    return Cause::Tls(t);
                }
                wrapped = inner
                    .downcast_ref::<std::io::Error>()
                    .and_then(std::io::Error::get_ref);
            }
            io.get_or_insert(i);
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            timeout |= r.is_timeout();
        }
        text.push_str(&err.to_string().to_lowercase());
        text.push('\n');
        cur = err.source();
    }
    if timeout {
        return Cause::Timeout;
    }
    if let Some(i) = io {
        if i.kind() == ErrorKind::TimedOut {
            return Cause::Timeout;
        }
        if !text.contains("dns error") {
            return Cause::Io(i);
        }
    }
    if text.contains("dns error") || text.contains("failed to lookup address") {
        Cause::Dns
    } else if text.contains("invalid http") || text.contains("invalid status") {
        Cause::NotHttp
    } else if text.contains("connection closed") || text.contains("incomplete") {
        Cause::Closed
    } else {
        Cause::Other
    }
}

fn host_of(url: &str) -> String {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_string))
        .unwrap_or_else(|| url.to_string())
}

/// A failed exchange with the relay at `url`, said in plain words with what to do.
pub fn explain(url: &str, e: &(dyn std::error::Error + 'static)) -> RelayError {
    let https = url.starts_with("https://");
    let unreachable = |detail: String| RelayError::Unreachable {
        url: url.to_string(),
        detail,
    };
    match cause(e) {
        Cause::Tls(t) => tls_words(url, t),
        Cause::Io(i) => match i.kind() {
            ErrorKind::ConnectionRefused => unreachable(
                "the connection was refused — is attune-relay running there, on that port?".into(),
            ),
            ErrorKind::ConnectionReset
            | ErrorKind::ConnectionAborted
            | ErrorKind::UnexpectedEof
            | ErrorKind::BrokenPipe
                if !https =>
            {
                unreachable(format!(
                    "{} — if the relay serves HTTPS, write the address with https://",
                    io_words(i)
                ))
            }
            _ => unreachable(format!(
                "{} — check the address and the network, and that attune-relay is running",
                io_words(i)
            )),
        },
        Cause::Timeout => unreachable(
            "it did not answer in time — check the address and the network, or try again later"
                .into(),
        ),
        Cause::Dns => unreachable(format!(
            "the host name {} could not be found — check the address",
            host_of(url)
        )),
        Cause::NotHttp | Cause::Closed if !https => unreachable(
            "what answered there does not speak plain HTTP — if the relay serves HTTPS, write the address with https://".into(),
        ),
        Cause::NotHttp => unreachable(
            "what answered there is not an attune relay — check the address".into(),
        ),
        Cause::Closed => unreachable(
            "the connection closed before the relay answered — try again; if it repeats, check the address".into(),
        ),
        Cause::Other => unreachable(
            "the connection failed — check the address and the network, and that attune-relay is running".into(),
        ),
    }
}

fn tls_words(url: &str, e: &rustls::Error) -> RelayError {
    let untrusted = |why: &str| {
        RelayError::Certificate(format!(
            "the certificate of the relay at {url} is not trusted by this device ({why}): \
             if the relay uses its own certificate, set {CA_FILE_VAR} to its CA's PEM file"
        ))
    };
    match e {
        rustls::Error::InvalidCertificate(c) => match c {
            CertificateError::UnknownIssuer => untrusted("it is signed by an unknown authority"),
            CertificateError::BadSignature => untrusted("its signature does not verify"),
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                RelayError::Certificate(format!(
                    "the certificate of the relay at {url} has expired: its operator must renew it \
                     (or check this device's clock)"
                ))
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                RelayError::Certificate(format!(
                    "the certificate of the relay at {url} is not valid yet: check this device's clock"
                ))
            }
            CertificateError::NotValidForName
            | CertificateError::NotValidForNameContext { .. } => {
                RelayError::Certificate(format!(
                    "the certificate of the relay at {url} is not issued for {}: check the address, \
                     or ask its operator for a certificate that names it",
                    host_of(url)
                ))
            }
            CertificateError::Revoked => RelayError::Certificate(format!(
                "the certificate of the relay at {url} has been revoked: its operator must replace it"
            )),
            CertificateError::Other(o) if format!("{o:?}").contains("CaUsedAsEndEntity") => {
                RelayError::Certificate(format!(
                    "the relay at {url} presents a CA certificate as its own, which is not \
                     accepted: sign a separate certificate for the relay with that CA (the \
                     README's TLS section shows how)"
                ))
            }
            other => untrusted(&format!("{other:?}")),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InappropriateMessage { .. } => {
            RelayError::Tls {
                url: url.to_string(),
                detail: "what answered there does not speak TLS — if the relay serves plain HTTP, \
                         write the address with http://"
                    .into(),
            }
        }
        rustls::Error::AlertReceived(alert) => RelayError::Tls {
            url: url.to_string(),
            detail: format!(
                "the relay ended the handshake ({alert:?}) — check that this is its address and port"
            ),
        },
        other => RelayError::Tls {
            url: url.to_string(),
            detail: format!("{other}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hint(url: &str) -> String {
        match check(url) {
            Err(Setup::BadUrl { hint, .. }) => hint,
            other => panic!("{url:?} was not refused: {other:?}"),
        }
    }

    #[test]
    fn relay_urls_are_checked() {
        assert!(check("http://127.0.0.1:8733").is_ok());
        assert!(check("https://relay.example").is_ok());
        assert!(check("https://relay.example/attune/").is_ok());
        assert!(hint("127.0.0.1:8733").contains("http://127.0.0.1:8733"));
        assert!(hint("localhost:8733").contains("http://localhost:8733"));
        assert!(hint("relay.example").contains("http://relay.example"));
        assert!(hint("ftp://relay.example").contains("http:// or https://"));
        assert!(hint("http://").contains("no host") || hint("http://").contains("URL"));
        assert!(hint("http://relay.example/?x=1").contains("query"));
        assert!(hint("").contains("address"));
    }
}
