//! Optional HTTPS beside plain HTTP (rustls with ring).
//!
//! RFC 3161 is served over plain HTTP always (signtool refuses https TSA URLs, and the token
//! protects itself); `[tls]` adds an HTTPS listener for clients and policies that want one.
//! This module loads the certificate and key (again on SIGHUP: [`reload_on_hangup`]) and binds
//! the socket: the accept loop in [`crate::server`] runs each handshake on the connection's own
//! task, inside the connection cap and the request deadline, so a slow or hostile client can
//! hold up neither `accept` nor a file descriptor for long.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
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

/// What an HTTPS listener is made of (`[tls]`), kept so that SIGHUP can build it again: the
/// certificate chain, key and client CRLs are read anew each time; the client CAs are the ones
/// read at start (the `/admin/` check uses them too, so a new `client_ca` needs a restart).
#[derive(Clone, Debug)]
pub struct TlsFiles {
    certificate: PathBuf,
    key: PathBuf,
    /// The `client_ca` certificates, read at start.
    client_cas: Option<Vec<CertificateDer<'static>>>,
    client_crl: Option<PathBuf>,
    /// The files as [`TlsFiles::new`] found them, before the first acceptor reads them: a
    /// change after that is a change to load.
    at_start: OnDisk,
}

/// Each reloadable file's modification time, size and inode (`None`: unreadable now).
type OnDisk = Vec<Option<(std::time::SystemTime, u64, u64)>>;

impl TlsFiles {
    /// The files of `[tls]`; reads the client CAs now. With `client_ca`, clients are asked for
    /// a certificate (optional: RFC 3161 and the CA routes need none), and one that does not
    /// chain to those CAs, or that `client_crl` revokes, fails the handshake.
    pub fn new(
        certificate: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        client_crl: Option<&Path>,
    ) -> Result<TlsFiles, TlsError> {
        let client_cas = match client_ca {
            Some(path) => Some(
                CertificateDer::pem_file_iter(path)
                    .map_err(pem_err(path))?
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(pem_err(path))?,
            ),
            None => None,
        };
        let mut files = TlsFiles {
            certificate: certificate.to_owned(),
            key: key.to_owned(),
            client_cas,
            client_crl: client_crl.map(Path::to_owned),
            at_start: Vec::new(),
        };
        files.at_start = files.on_disk();
        Ok(files)
    }

    /// A TLS acceptor from the files as they are now.
    pub fn acceptor(&self) -> Result<TlsAcceptor, TlsError> {
        acceptor(self)
    }

    /// What identifies the reloadable files' contents without reading them: each one's
    /// modification time, size and inode, through symbolic links (a Kubernetes Secret's files
    /// are links swapped at once); `None` for a file that cannot be read now.
    fn on_disk(&self) -> OnDisk {
        use std::os::unix::fs::MetadataExt;
        [
            Some(&self.certificate),
            Some(&self.key),
            self.client_crl.as_ref(),
        ]
        .into_iter()
        .flatten()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some((meta.modified().ok()?, meta.len(), meta.ino()))
        })
        .collect()
    }
}

/// Binds `addr` for HTTPS with an acceptor made from `files`.
pub async fn bind(
    addr: SocketAddr,
    files: &TlsFiles,
) -> Result<(TcpListener, TlsAcceptor), TlsError> {
    let acceptor = files.acceptor()?;
    let tcp = TcpListener::bind(addr)
        .await
        .map_err(|source| TlsError::Bind { addr, source })?;
    Ok((tcp, acceptor))
}

/// Installs the SIGHUP handler (call inside the runtime, first thing): from then on a SIGHUP
/// waits in the returned stream for [`reload_on_hangup`] instead of ending the process.
pub fn hangup_signal() -> std::io::Result<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// On each SIGHUP, and when the files change on disk (checked every `check_every`, if set),
/// builds the HTTPS listener's acceptor again from `files` and hands it to the accept loop
/// (`acceptor`): new connections use it, open ones keep theirs. A file that does not load
/// leaves the acceptor as it was, with an error in the log, and is tried again at each check
/// until it loads (a renewal may still be half written, or its permissions not yet set).
/// Without `[tls]` a SIGHUP only says so (it must not end the process, SIGHUP's default).
///
/// `hangups` is [`hangup_signal`]'s, taken before the configuration is read, so that a SIGHUP
/// during start-up does not take the default action either.
pub async fn reload_on_hangup(
    hangups: std::io::Result<tokio::signal::unix::Signal>,
    tls: Option<(TlsFiles, tokio::sync::watch::Sender<TlsAcceptor>)>,
    check_every: Option<std::time::Duration>,
) {
    let mut hangups = match hangups {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!(error = %e, "cannot listen for SIGHUP: a SIGHUP ends the process, and the HTTPS files reload only when they change on disk ([tls] reload_check_secs)");
            None
        }
    };
    if tls.is_some() {
        // Exported from the start, so that an alert on failures has a series to watch.
        for result in ["ok", "failed"] {
            metrics::counter!("tsa_tls_reloads_total", "result" => result).increment(0);
        }
    }
    let mut check = check_every
        .filter(|_| tls.is_some())
        .map(tokio::time::interval);
    let mut seen = tls.as_ref().map(|(files, _)| files.at_start.clone());
    let mut failing = false;
    loop {
        // Why, and the files' state a check has just read (a SIGHUP reads it below).
        let (why, now) = tokio::select! {
            Some(()) = async { hangups.as_mut()?.recv().await } => ("SIGHUP", None),
            Some(_) = async { Some(check.as_mut()?.tick().await) } => {
                let now = tls.as_ref().map(|(files, _)| files.on_disk());
                if now == seen && !failing {
                    continue;
                }
                ("changed on disk", now)
            }
            else => return,
        };
        let Some((files, acceptor)) = &tls else {
            tracing::info!("SIGHUP: nothing to reload (no [tls])");
            continue;
        };
        seen = now.or_else(|| Some(files.on_disk()));
        let load = files.clone();
        let loaded = tokio::task::spawn_blocking(move || load.acceptor())
            .await
            .unwrap_or_else(|e| {
                Err(TlsError::Config(tokio_rustls::rustls::Error::General(
                    format!("the reload task failed: {e}"),
                )))
            });
        match loaded {
            Ok(new) => {
                acceptor.send_replace(new);
                failing = false;
                metrics::counter!("tsa_tls_reloads_total", "result" => "ok").increment(1);
                tracing::info!(
                    why,
                    certificate = %files.certificate.display(),
                    client_crl = ?files.client_crl,
                    "HTTPS certificate, key and client CRLs reloaded; new connections use them"
                );
            }
            // Logged and counted once per spell of failures, and at every SIGHUP.
            Err(e) if !failing || why == "SIGHUP" => {
                failing = true;
                metrics::counter!("tsa_tls_reloads_total", "result" => "failed").increment(1);
                tracing::error!(
                    why,
                    error = %pki::error::error_text(&e),
                    "HTTPS files not reloaded; the listener keeps the ones it had (tried again at each check)"
                );
            }
            Err(_) => {}
        }
    }
}

fn pem_err(path: &Path) -> impl FnOnce(rustls_pki_types::pem::Error) -> TlsError + use<> {
    let path = path.display().to_string();
    move |source| TlsError::Pem { path, source }
}

/// A TLS acceptor for the PEM certificate chain and key (PKCS#8, PKCS#1 or SEC1) of `files`,
/// asking for optional client certificates when they name client CAs.
fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor, TlsError> {
    let (certificate, key) = (files.certificate.as_path(), files.key.as_path());
    let certs = CertificateDer::pem_file_iter(certificate)
        .map_err(pem_err(certificate))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem_err(certificate))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(pem_err(key))?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Config)?;
    let crl = files.client_crl.as_deref();
    let builder = match &files.client_cas {
        None => builder.with_no_client_auth(),
        Some(cas) => {
            let mut roots = tokio_rustls::rustls::RootCertStore::empty();
            for cert in cas {
                roots.add(cert.clone()).map_err(TlsError::Config)?;
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
    let not_after = certs
        .first()
        .and_then(|c| pki::cert::parse(c.as_ref()).ok())
        .map(|c| pki::cert::validity(&c).1);
    if not_after.is_none() {
        // rustls took it, but its expiry cannot be read here: 0 rather than the old one's.
        metrics::gauge!("tsa_tls_certificate_not_after_seconds").set(0.0);
        tracing::warn!(certificate = %certificate.display(), "cannot read the HTTPS certificate's notAfter for tsa_tls_certificate_not_after_seconds (set to 0)");
    }
    let config = builder
        .with_single_cert(certs, key)
        .map_err(TlsError::Config)?;
    if let Some(not_after) = not_after {
        // For alerts: when the HTTPS certificate in use expires, as Unix seconds.
        metrics::gauge!("tsa_tls_certificate_not_after_seconds").set(not_after as f64);
        let now = u64::try_from(crate::ca::now()).unwrap_or(0);
        // The signing key's warning period, counted as /healthz counts it.
        if not_after.saturating_sub(now) <= crate::state::KEY_EXPIRY_WARNING_SECS {
            tracing::warn!(
                certificate = %certificate.display(),
                days_left = not_after.saturating_sub(now).div_ceil(86_400),
                expired = not_after < now,
                "the HTTPS certificate expires within 30 days: renew it (read again on SIGHUP and when it changes on disk)"
            );
        }
    }
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
