//! Optional HTTPS beside plain HTTP (rustls with ring).
//!
//! RFC 3161 is served over plain HTTP always (signtool refuses https TSA URLs, and the token
//! protects itself); `[tls]` adds an HTTPS listener for clients and policies that want one.
//! This module only loads the certificate and key and binds the socket: the accept loop in
//! [`crate::server`] runs each handshake on the connection's own task, inside the connection
//! cap and the request deadline, so a slow or hostile client can hold up neither `accept` nor
//! a file descriptor for long.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

/// Why HTTPS cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A PEM file cannot be read.
    #[error("cannot read {path}")]
    Pem {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    /// rustls refused the certificate and key.
    #[error("the TLS certificate and key cannot be used")]
    Config(#[source] tokio_rustls::rustls::Error),
    /// The address cannot be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Loads the PEM certificate chain and key and binds `addr` for HTTPS; with `client_ca`,
/// clients are asked for a certificate (optional: RFC 3161 and the CA routes need none), and
/// one that does not chain to `client_ca` fails the handshake.
pub async fn bind(
    addr: SocketAddr,
    certificate: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<(TcpListener, TlsAcceptor), TlsError> {
    let acceptor = acceptor(certificate, key, client_ca)?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind { addr, source })?;
    Ok((tcp, acceptor))
}

/// A TLS acceptor for the PEM certificate chain and key (PKCS#8, PKCS#1 or SEC1) given, asking
/// for optional client certificates under `client_ca`.
pub fn acceptor(
    certificate: &Path,
    key: &Path,
    client_ca: Option<&Path>,
) -> Result<TlsAcceptor, TlsError> {
    let pem_err = |path: &Path| {
        let path = path.display().to_string();
        move |source| TlsError::Pem { path, source }
    };
    let certs = CertificateDer::pem_file_iter(certificate)
        .map_err(pem_err(certificate))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(certificate))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(path) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(pem_err(path))? {
                roots
                    .add(cert.map_err(pem_err(path))?)
                    .map_err(TlsError::Config)?;
            }
            let verifier =
                tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .allow_unauthenticated()
                .build()
                .map_err(|e| {
                    TlsError::Config(tokio_rustls::rustls::Error::General(e.to_string()))
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}
