//! Key material on disk: creating the development PKI (`tsa init`) and loading the signing
//! identity the server runs with, checked before serving.
//!
//! Key files are created with mode 0600 (and the data directory 0700); their bytes go from
//! `Zeroizing` buffers to ring and are never logged.

use crate::config::Config;
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::signer::{RingSigner, Signer};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// File names of the development PKI inside the data directory.
pub mod files {
    /// Root CA certificate: what verifiers pass to `--trust`.
    pub const ROOT_CERT: &str = "root.pem";
    /// Root CA key.
    pub const ROOT_KEY: &str = "root.key";
    /// TSA certificate.
    pub const TSA_CERT: &str = "tsa.pem";
    /// TSA key.
    pub const TSA_KEY: &str = "tsa.key";
}

/// Errors while creating or loading key material.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// A file could not be read or written.
    #[error("{action} {path}")]
    Io {
        /// What we were doing.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The key or a certificate cannot be used.
    #[error("{path}: {detail}")]
    Unusable {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// The PKI library refused.
    #[error("{context}")]
    Pki {
        /// What we were doing.
        context: String,
        /// Why.
        #[source]
        source: pki::Error,
    },
}

/// What `tsa init` did.
#[derive(Debug)]
pub struct InitOutcome {
    /// Whether a new PKI was created (false: one was there already).
    pub created: bool,
    /// The root certificate path.
    pub root_cert: PathBuf,
}

/// Creates the development PKI in `dir` unless one is already there.
pub fn init_dev_pki(dir: &Path, key_type: DevKeyType) -> Result<InitOutcome, KeyError> {
    let root_cert = dir.join(files::ROOT_CERT);
    create_data_dir(dir)?;
    if dir.join(files::TSA_KEY).exists() {
        return Ok(InitOutcome {
            created: false,
            root_cert,
        });
    }
    let dev = DevPki::generate(key_type).map_err(|source| KeyError::Pki {
        context: "cannot generate the development PKI".into(),
        source,
    })?;
    let pem_error = |source| KeyError::Pki {
        context: "cannot encode PEM".into(),
        source,
    };
    let key_pem = |der: &[u8]| pki::signer::private_key_pem(der).map_err(pem_error);
    let cert_pem = |der: &[u8]| pki::cert::to_pem(&[der.to_vec()]).map_err(pem_error);
    write_secret(
        &dir.join(files::ROOT_KEY),
        key_pem(&dev.root_key)?.as_bytes(),
    )?;
    write_secret(&dir.join(files::TSA_KEY), key_pem(&dev.tsa_key)?.as_bytes())?;
    write_public(
        &dir.join(files::TSA_CERT),
        cert_pem(&dev.tsa_cert)?.as_bytes(),
    )?;
    write_public(&root_cert, cert_pem(&dev.root_cert)?.as_bytes())?;
    Ok(InitOutcome {
        created: true,
        root_cert,
    })
}

/// A development TSA certificate, under the development root in `dir`, for a key held
/// elsewhere (`spki`: an HSM key's SubjectPublicKeyInfo); written to `dir/tsa-pkcs11.pem`.
pub fn issue_dev_tsa_certificate(dir: &Path, spki: &[u8]) -> Result<PathBuf, KeyError> {
    let root_key =
        pki::signer::pem_or_der(&read(&dir.join(files::ROOT_KEY))?).map_err(|source| {
            KeyError::Pki {
                context: "cannot read the development root key".into(),
                source,
            }
        })?;
    let cert = pki::devpki::issue_tsa_certificate(&zeroize::Zeroizing::new(root_key), spki)
        .map_err(|source| KeyError::Pki {
            context: "cannot issue the development TSA certificate".into(),
            source,
        })?;
    let path = dir.join("tsa-pkcs11.pem");
    let pem = pki::cert::to_pem(&[cert]).map_err(|source| KeyError::Pki {
        context: "cannot encode PEM".into(),
        source,
    })?;
    write_public(&path, pem.as_bytes())?;
    Ok(path)
}

/// Creates the data directory (mode 0700) if it does not exist.
pub fn create_data_dir(dir: &Path) -> Result<(), KeyError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| KeyError::Io {
            action: "cannot create data directory",
            path: dir.into(),
            source,
        })
}

/// Writes a key file with mode 0600, whole or not at all: under a temporary name first, synced,
/// then given its name only if that is free (`AlreadyExists` otherwise). Another process sees no
/// file or the whole key, never one still being written (nodes starting together on one data
/// directory), and a crash leaves no truncated key behind.
fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    let io = |source| KeyError::Io {
        action: "cannot write key file",
        path: path.into(),
        source,
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".key-")
        .permissions(std::fs::Permissions::from_mode(0o600))
        .tempfile_in(dir)
        .map_err(io)?;
    tmp.write_all(bytes).map_err(io)?;
    tmp.as_file().sync_all().map_err(io)?;
    // Dropping the temporary file on failure removes it.
    tmp.persist_noclobber(path).map_err(|e| io(e.error))?;
    // The new name is durable once the directory is.
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io)
}

fn write_public(path: &Path, bytes: &[u8]) -> Result<(), KeyError> {
    std::fs::write(path, bytes).map_err(|source| KeyError::Io {
        action: "cannot write",
        path: path.into(),
        source,
    })
}

/// The signing identity the server runs with.
pub struct Identity {
    /// The key.
    pub signer: Arc<dyn Signer>,
    /// The TSA certificate.
    pub cert: SignerCert,
    /// Certificates above it (intermediates, root), DER.
    pub chain: Vec<Vec<u8>>,
}

fn read(path: &Path) -> Result<Vec<u8>, KeyError> {
    std::fs::read(path).map_err(|source| KeyError::Io {
        action: "cannot read",
        path: path.into(),
        source,
    })
}

/// Loads the configured key and certificates (or the development PKI) and checks them: the
/// certificate matches the key, has a critical timeStamping EKU, is not a CA, is valid now.
pub fn load_identity(cfg: &Config) -> Result<Identity, KeyError> {
    let dev_key = cfg.data_dir.join(files::TSA_KEY);
    let (key, cert_path, chain_path) = match &cfg.key {
        Some(k) => (
            match (&k.file, &k.pkcs11) {
                (_, Some(p)) => KeySource::Pkcs11(p),
                (Some(f), None) => KeySource::File(f, k.rsa_padding),
                (None, None) => {
                    return Err(KeyError::Unusable {
                        path: k.certificate.clone(),
                        detail: "no key: set key.file or [key.pkcs11]".into(),
                    });
                }
            },
            k.certificate.clone(),
            k.chain.clone(),
        ),
        None => (
            KeySource::File(&dev_key, Default::default()),
            cfg.data_dir.join(files::TSA_CERT),
            Some(cfg.data_dir.join(files::ROOT_CERT)),
        ),
    };
    load_pair(key, &cert_path, chain_path.as_deref(), |cert| {
        let problems = pki::cert::tsa_certificate_problems(&cert.cert);
        (!problems.is_empty())
            .then(|| format!("not usable as a TSA certificate: {}", problems.join("; ")))
    })
}

/// Loads the CA's key and certificate (`[ca]`, or the development root): the certificate
/// matches the key, is a CA certificate, is valid now.
pub fn load_ca_identity(cfg: &Config) -> Result<Identity, KeyError> {
    let dev_key = cfg.data_dir.join(files::ROOT_KEY);
    let (key, cert_path) = match (&cfg.ca.key, &cfg.ca.pkcs11, &cfg.ca.certificate) {
        (_, Some(p), Some(c)) => (KeySource::Pkcs11(p), c.clone()),
        (Some(k), None, Some(c)) => (KeySource::File(k, Default::default()), c.clone()),
        _ => (
            KeySource::File(&dev_key, Default::default()),
            cfg.data_dir.join(files::ROOT_CERT),
        ),
    };
    load_pair(key, &cert_path, None, |cert| {
        (!pki::cert::is_ca(&cert.cert))
            .then(|| "not a CA certificate (basicConstraints cA)".to_owned())
    })
}

/// Loads a delegated OCSP responder's key and certificate (`[ca] ocsp_key`), if configured.
pub fn load_ocsp_identity(cfg: &Config) -> Result<Option<Identity>, KeyError> {
    let (Some(k), Some(c)) = (&cfg.ca.ocsp_key, &cfg.ca.ocsp_certificate) else {
        return Ok(None);
    };
    load_pair(KeySource::File(k, Default::default()), c, None, |cert| {
        (!pki::cert::has_eku(&cert.cert, &pki::oid::ID_KP_OCSP_SIGNING))
            .then(|| "no extendedKeyUsage id-kp-OCSPSigning".to_owned())
    })
    .map(Some)
}

/// Where a signing key is.
enum KeySource<'a> {
    /// A PKCS#8 file, with the RSA padding to sign with.
    File(&'a Path, pki::signer::RsaPadding),
    /// A key in a PKCS#11 token.
    Pkcs11(&'a crate::config::Pkcs11Config),
}

/// The one key loader: a key (PKCS#8 file or PKCS#11 token), its certificate (with any chain
/// after it in the file and in `chain_path`), checked to match the key and be valid now, then
/// by `problem`.
fn load_pair(
    key: KeySource<'_>,
    cert_path: &Path,
    chain_path: Option<&Path>,
    problem: impl Fn(&SignerCert) -> Option<String>,
) -> Result<Identity, KeyError> {
    let unusable = |detail: String| KeyError::Unusable {
        path: cert_path.into(),
        detail,
    };
    let cert_ders =
        pki::cert::load_certificates(&read(cert_path)?).map_err(|e| unusable(e.to_string()))?;
    let mut cert_ders = cert_ders.into_iter();
    let cert_der = cert_ders
        .next()
        .ok_or_else(|| unusable("no certificate".into()))?;
    // A certificate file may carry its chain after the certificate.
    let mut chain: Vec<Vec<u8>> = cert_ders.collect();
    if let Some(p) = chain_path {
        let extra = pki::cert::load_certificates(&read(p)?).map_err(|e| KeyError::Unusable {
            path: p.into(),
            detail: e.to_string(),
        })?;
        for c in extra {
            if !chain.contains(&c) {
                chain.push(c);
            }
        }
    }
    let key_name = match &key {
        KeySource::File(p, _) => p.display().to_string(),
        KeySource::Pkcs11(p) => format!("the PKCS#11 key {:?} of token {:?}", p.key, p.token),
    };
    let signer: Arc<dyn Signer> = match key {
        KeySource::File(key_path, padding) => {
            warn_if_key_readable_by_others(key_path);
            let key_bytes = zeroize::Zeroizing::new(read(key_path)?);
            Arc::new(
                RingSigner::from_pkcs8_file_bytes(&key_bytes, padding).map_err(|e| {
                    KeyError::Unusable {
                        path: key_path.into(),
                        detail: e.to_string(),
                    }
                })?,
            )
        }
        KeySource::Pkcs11(p) => {
            let pin = p.pin().map_err(|e| KeyError::Unusable {
                path: p.module.clone(),
                detail: e.to_string(),
            })?;
            let key = pki::signer::pkcs11::Pkcs11Key {
                module: &p.module,
                token_label: &p.token,
                key_label: &p.key,
                pin: &pin,
            };
            let signer = pki::signer::pkcs11::Pkcs11Signer::open(&key, &cert_der)
                .map_err(|e| unusable(e.to_string()))?;
            tracing::info!(token = %p.token, key = %p.key, sessions = signer.max_sessions(), "signing key in a PKCS#11 token");
            Arc::new(signer)
        }
    };
    let cert = SignerCert::from_der(cert_der).map_err(|e| unusable(e.to_string()))?;
    if let Some(p) = problem(&cert) {
        return Err(unusable(p));
    }
    if !cert.matches(signer.as_ref()) {
        return Err(unusable(format!(
            "the certificate does not match the key in {key_name}"
        )));
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    if !pki::cert::valid_at(&cert.cert, now) {
        let v = &cert.cert.tbs_certificate.validity;
        return Err(unusable(format!(
            "the certificate is not valid now (valid from {} to {})",
            v.not_before, v.not_after
        )));
    }
    Ok(Identity {
        signer,
        cert,
        chain,
    })
}

/// The enrolment key (32 bytes): read from `path`, or created there with mode 0600 when
/// missing.
pub fn enrolment_key(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>, KeyError> {
    if !path.exists() {
        let key = zeroize::Zeroizing::new(pki::ca::enrolment::random(32).map_err(|e| {
            KeyError::Unusable {
                path: path.into(),
                detail: e.to_string(),
            }
        })?);
        match write_secret(path, &key) {
            // Another node or process created it first: use theirs.
            Err(KeyError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::AlreadyExists => {}
            other => other?,
        }
    }
    warn_if_key_readable_by_others(path);
    let key = zeroize::Zeroizing::new(read(path)?);
    if key.len() < 32 {
        return Err(KeyError::Unusable {
            path: path.into(),
            detail: format!("{} bytes; an enrolment key has at least 32", key.len()),
        });
    }
    Ok(key)
}

fn warn_if_key_readable_by_others(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(path = %path.display(), mode = format!("{:o}", meta.permissions().mode() & 0o777), "key file is readable by group or others; chmod 600 it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// Nodes that start together on one data directory all create the enrolment key at once:
    /// each must read the one that won, whole, never a file another is still writing.
    #[test]
    fn nodes_creating_the_enrolment_key_together_all_read_the_same_whole_key() {
        for _ in 0..20 {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("enrolment.key");
            let start = std::sync::Barrier::new(8);
            let keys: Vec<Result<Vec<u8>, String>> = std::thread::scope(|s| {
                let nodes: Vec<_> = (0..8)
                    .map(|_| {
                        s.spawn(|| {
                            start.wait();
                            enrolment_key(&path)
                                .map(|k| k.to_vec())
                                .map_err(|e| e.to_string())
                        })
                    })
                    .collect();
                nodes.into_iter().map(|n| n.join().expect("node")).collect()
            });
            let first = keys[0].clone().expect("a key");
            assert_eq!(first.len(), 32);
            for k in &keys {
                assert_eq!(k.as_ref(), Ok(&first), "every node reads the same key");
            }
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            // No temporary file is left beside it.
            assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
        }
    }

    #[test]
    fn init_creates_keys_with_mode_0600_and_is_idempotent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().join("data");
        let first = init_dev_pki(&d, DevKeyType::EcdsaP256).expect("init");
        assert!(first.created);
        for f in [files::TSA_KEY, files::ROOT_KEY] {
            let mode = std::fs::metadata(d.join(f))
                .expect("meta")
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{f}");
        }
        let dir_mode = std::fs::metadata(&d).expect("meta").permissions().mode() & 0o777;
        assert_eq!(dir_mode, 0o700);
        let before = std::fs::read(d.join(files::TSA_KEY)).expect("key");
        let second = init_dev_pki(&d, DevKeyType::EcdsaP256).expect("init again");
        assert!(!second.created);
        assert_eq!(before, std::fs::read(d.join(files::TSA_KEY)).expect("key"));
    }

    #[test]
    fn a_certificate_for_another_key_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        init_dev_pki(&a, DevKeyType::EcdsaP256).expect("a");
        init_dev_pki(&b, DevKeyType::EcdsaP256).expect("b");
        let mut cfg = Config::load(
            None,
            crate::config::Overrides {
                data_dir: Some(a.clone()),
                ..Default::default()
            },
        )
        .expect("cfg");
        cfg.key = Some(crate::config::KeyConfig {
            file: Some(a.join(files::TSA_KEY)),
            certificate: b.join(files::TSA_CERT),
            chain: None,
            rsa_padding: Default::default(),
            pkcs11: None,
        });
        let err = load_identity(&cfg).err().expect("must fail").to_string();
        assert!(err.contains("does not match the key"), "{err}");
        cfg.key = Some(crate::config::KeyConfig {
            file: Some(a.join(files::ROOT_KEY)),
            certificate: a.join(files::ROOT_CERT),
            chain: None,
            rsa_padding: Default::default(),
            pkcs11: None,
        });
        let err = load_identity(&cfg).err().expect("must fail").to_string();
        assert!(
            err.contains("extendedKeyUsage") && err.contains("CA certificate"),
            "{err}"
        );
    }
}
