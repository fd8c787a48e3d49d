//! Optional HTTPS beside plain HTTP (rustls with ring).
//!
//! RFC 3161 is served over plain HTTP always (signtool refuses https TSA URLs, and the token
//! protects itself); `[tls]` adds an HTTPS listener for clients and policies that want one.
//! This module only loads the certificate and key and binds the socket: the accept loop in
//! [`crate::server`] runs each handshake on the connection's own task, inside the connection
//! cap and the request deadline, so a slow or hostile client can hold up neither `accept` nor
//! a file descriptor for long.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
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
    /// The client CRL file holds no usable CRL.
    #[error("{path}: {detail}")]
    Crl {
        /// The file.
        path: String,
        /// What is wrong with it.
        detail: String,
    },
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

/// Which client certificates the HTTPS listener accepts (`[tls] client_ca`, `client_crl`).
#[derive(Clone, Copy, Debug)]
pub struct ClientCerts<'a> {
    /// The CA certificates (PEM) a client certificate must chain to.
    pub ca: &'a Path,
    /// CRLs (PEM `X509 CRL` blocks, or one DER CRL) of those CAs: a client certificate they
    /// list as revoked, or one from a CA with no CRL here, fails the handshake.
    pub crl: Option<&'a Path>,
}

/// Loads the PEM certificate chain and key and binds `addr` for HTTPS; with `client`, clients
/// are asked for a certificate (optional: RFC 3161 and the CA routes need none), and one that
/// does not chain to its CAs, or that their CRLs revoke, fails the handshake.
pub async fn bind(
    addr: SocketAddr,
    certificate: &Path,
    key: &Path,
    client: Option<ClientCerts<'_>>,
) -> Result<(TcpListener, TlsAcceptor), TlsError> {
    let acceptor = acceptor(certificate, key, client)?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind { addr, source })?;
    Ok((tcp, acceptor))
}

/// A TLS acceptor for the PEM certificate chain and key (PKCS#8, PKCS#1 or SEC1) given, asking
/// for optional client certificates as `client` says.
pub fn acceptor(
    certificate: &Path,
    key: &Path,
    client: Option<ClientCerts<'_>>,
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
    let builder = match client {
        None => builder.with_no_client_auth(),
        Some(ClientCerts { ca: path, crl }) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path).map_err(pem_err(path))? {
                roots
                    .add(cert.map_err(pem_err(path))?)
                    .map_err(TlsError::Config)?;
            }
            let crls = match crl {
                Some(crl) => load_crls(crl)?,
                None => Vec::new(),
            };
            // With CRLs, rustls checks the client certificate against its issuer's CRL and
            // refuses one whose status it cannot tell (no CRL from that issuer): a CA left out
            // of the file cannot have its certificates revoked, so its clients are refused.
            let verifier =
                tokio_rustls::rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .with_crls(crls)
                .allow_unauthenticated()
                .build()
                .map_err(|e| match (e, crl) {
                    (
                        tokio_rustls::rustls::server::VerifierBuilderError::InvalidCrl(e),
                        Some(crl),
                    ) => TlsError::Crl {
                        path: crl.display().to_string(),
                        detail: format!("not a usable CRL: {e:?}"),
                    },
                    (e, _) => TlsError::Config(tokio_rustls::rustls::Error::General(e.to_string())),
                })?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The CRLs in `path`: every PEM `X509 CRL` block, or the file as one DER CRL.
fn load_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let crl_err = |detail: String| TlsError::Crl {
        path: path.display().to_string(),
        detail,
    };
    let bytes = std::fs::read(path).map_err(|e| crl_err(format!("cannot read it: {e}")))?;
    let pem = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| crl_err(format!("malformed PEM: {e}")))?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err(crl_err(
        "no CRL in it (PEM \"X509 CRL\" blocks or one DER CRL)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_crl_file_is_pem_blocks_or_one_der_crl() {
        let dir = tempfile::tempdir().expect("tempdir");
        let der: &[u8] = &[0x30, 0x03, 0x02, 0x01, 0x01];
        let body = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, der);
        let pem = format!(
            "-----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n\
             -----BEGIN X509 CRL-----\n{body}\n-----END X509 CRL-----\n"
        );
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).expect("write");
            path
        };
        assert_eq!(
            load_crls(&write("two.pem", pem.as_bytes()))
                .expect("pem")
                .len(),
            2
        );
        let one = load_crls(&write("one.der", der)).expect("der");
        assert_eq!(one[0].as_ref(), der);
        // Not a CRL, a certificate's PEM, a missing file: refused, naming the file.
        for (name, bytes, says) in [
            ("text.crl", &b"revoked: auditor\n"[..], "no CRL in it"),
            (
                "cert.pem",
                &b"-----BEGIN CERTIFICATE-----\nMAMCAQE=\n-----END CERTIFICATE-----\n"[..],
                "no CRL in it",
            ),
        ] {
            let err = load_crls(&write(name, bytes)).expect_err(name).to_string();
            assert!(err.contains(name) && err.contains(says), "{err}");
        }
        let err = load_crls(&dir.path().join("absent.crl"))
            .expect_err("absent")
            .to_string();
        assert!(
            err.contains("absent.crl") && err.contains("cannot read"),
            "{err}"
        );
    }
}
