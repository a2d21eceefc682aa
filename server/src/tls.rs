//! HTTPS and WSS served by the relay itself (`--tls-cert`, `--tls-key`), with
//! rustls and its ring provider. The certificate and key are read again on SIGHUP,
//! so a renewed certificate needs no restart; a reload that fails is logged and the
//! previous certificate stays in use.
//!
//! A TLS provider necessarily links AEAD code (for TLS records). It is not the code
//! that opens attune's envelopes (XChaCha20-Poly1305 under keys the relay never
//! has), which stays out of the relay: see ARCHITECTURE.md.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::CryptoProvider;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} holds no PEM certificate (-----BEGIN CERTIFICATE-----): {why}")]
    Certificate { path: String, why: String },
    // Never the parser's words: they could quote the key file.
    #[error("{path} holds no usable PEM private key (PKCS#8, PKCS#1 or SEC1, unencrypted)")]
    Key { path: String },
    #[error("the key in {key} does not belong to the certificate in {cert}, or the certificate is not usable: {why}")]
    Mismatch {
        cert: String,
        key: String,
        why: String,
    },
    #[error("TLS could not be set up: {0}")]
    Setup(String),
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.display().to_string(),
        source,
    })
}

/// Reads a certificate chain and its key, and checks that they belong together.
fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let cert_name = cert.display().to_string();
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Certificate {
            path: cert_name.clone(),
            why: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::Certificate {
            path: cert_name,
            why: "none found".into(),
        });
    }
    let key_name = key.display().to_string();
    let der = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|_| TlsError::Key {
        path: key_name.clone(),
    })?;
    CertifiedKey::from_der(chain, der, provider).map_err(|e| TlsError::Mismatch {
        cert: cert_name,
        key: key_name,
        why: e.to_string(),
    })
}

/// The certificate the relay presents, replaced whole on reload.
#[derive(Debug)]
pub struct Certificate {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
}

impl Certificate {
    pub fn load(cert: &Path, key: &Path) -> Result<Arc<Self>, TlsError> {
        let provider = provider();
        let current = load(cert, key, &provider)?;
        Ok(Arc::new(Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            provider,
            current: RwLock::new(Arc::new(current)),
        }))
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let fresh = Arc::new(load(&self.cert, &self.key, &self.provider)?);
        let mut current = self
            .current
            .write()
            .map_err(|_| TlsError::Setup("the certificate lock is poisoned".into()))?;
        *current = fresh;
        Ok(())
    }

    /// The server configuration presenting this certificate (HTTP/1.1 only).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(self.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Setup(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

impl ResolvesServerCert for Certificate {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.current.read().ok().map(|c| Arc::clone(&c))
    }
}

/// Reloads `cert` on every SIGHUP until `stop` turns true.
pub async fn reload_on_sighup(
    cert: Arc<Certificate>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGHUP: the certificate will not be reloaded");
                return;
            }
        };
        loop {
            tokio::select! {
                got = hangups.recv() => {
                    if got.is_none() {
                        return;
                    }
                    match cert.reload() {
                        Ok(()) => tracing::info!(cert = %cert.cert.display(), "SIGHUP: reloaded the TLS certificate"),
                        Err(e) => tracing::warn!(error = %e, "SIGHUP: could not reload the TLS certificate; still serving the previous one"),
                    }
                }
                _ = stop.changed() => return,
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (cert, stop.changed().await);
    }
}
