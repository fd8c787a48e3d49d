//! The keys a run signs with: the development PKI made by `tsa init`, or an RSA key and TSA
//! certificate made with openssl and served through a configuration file.

use crate::Settings;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Policy OID of the RSA configuration and of the openssl peer's configuration.
pub const POLICY: &str = "1.3.6.1.4.1.55555.1.1";

/// A key type the benchmark knows how to create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// Development PKI, ECDSA P-256 (the server's default).
    EcdsaP256,
    /// Development PKI, ECDSA P-384.
    EcdsaP384,
    /// Development PKI, Ed25519.
    Ed25519,
    /// RSA-2048 key and certificate made with openssl, served through a config file.
    Rsa2048,
}

impl KeyKind {
    /// Parses a `--keys` item.
    pub fn from_name(name: &str) -> Result<KeyKind> {
        Ok(match name.trim() {
            "ecdsa-p256" | "p256" => KeyKind::EcdsaP256,
            "ecdsa-p384" | "p384" => KeyKind::EcdsaP384,
            "ed25519" => KeyKind::Ed25519,
            "rsa2048" | "rsa-2048" | "rsa" => KeyKind::Rsa2048,
            other => {
                bail!("unknown key type {other:?}; use ecdsa-p256, rsa2048, ecdsa-p384 or ed25519")
            }
        })
    }

    /// The name printed in the table.
    pub fn name(self) -> &'static str {
        match self {
            KeyKind::EcdsaP256 => "ecdsa-p256",
            KeyKind::EcdsaP384 => "ecdsa-p384",
            KeyKind::Ed25519 => "ed25519",
            KeyKind::Rsa2048 => "rsa2048",
        }
    }

    /// The `tsa init --key-type` of a development PKI, or `None` for an openssl-made key.
    fn dev_key_type(self) -> Option<&'static str> {
        match self {
            KeyKind::EcdsaP256 => Some("ecdsa-p256"),
            KeyKind::EcdsaP384 => Some("ecdsa-p384"),
            KeyKind::Ed25519 => Some("ed25519"),
            KeyKind::Rsa2048 => None,
        }
    }
}

/// Key, certificate and chain files of one key type.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// PKCS#8 PEM private key.
    pub key_file: PathBuf,
    /// The TSA certificate, PEM.
    pub cert_file: PathBuf,
    /// The root certificate, PEM.
    pub chain_file: PathBuf,
    /// Served as a development PKI (no config file; files copied into the data directory).
    pub dev: bool,
}

/// The files `tsa init` writes, copied into each run's data directory.
pub const DEV_FILES: [&str; 4] = ["root.pem", "root.key", "tsa.pem", "tsa.key"];

impl KeySet {
    /// Creates the keys of `kind` in `dir`.
    pub fn create(kind: KeyKind, dir: &Path, settings: &Settings) -> Result<KeySet> {
        match kind.dev_key_type() {
            Some(key_type) => {
                let out = Command::new(&settings.tsa_bin)
                    .args(["init", "--key-type", key_type, "--data-dir"])
                    .arg(dir)
                    .env_remove("TSA_DATA_DIR")
                    .output()
                    .with_context(|| format!("cannot run {}", settings.tsa_bin.display()))?;
                if !out.status.success() {
                    bail!(
                        "tsa init failed: {}",
                        String::from_utf8_lossy(&out.stderr).trim()
                    );
                }
                Ok(KeySet {
                    dir: dir.to_owned(),
                    key_file: dir.join("tsa.key"),
                    cert_file: dir.join("tsa.pem"),
                    chain_file: dir.join("root.pem"),
                    dev: true,
                })
            }
            None => rsa_with_openssl(dir, &settings.openssl_bin),
        }
    }
}

/// An EC P-256 root and an RSA-2048 TSA key and certificate (critical timeStamping EKU,
/// digitalSignature, not a CA, subject with C and O), all made by openssl.
fn rsa_with_openssl(dir: &Path, openssl: &Path) -> Result<KeySet> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).with_context(|| format!("cannot write {name}"))
    };
    write(
        "root.cnf",
        "[req]\ndistinguished_name = dn\nprompt = no\nx509_extensions = v3_root\n\
         [dn]\nC = XX\nO = Sigillum Bench\nCN = Sigillum Bench Root\n\
         [v3_root]\nbasicConstraints = critical,CA:TRUE\nkeyUsage = critical,keyCertSign,cRLSign\n\
         subjectKeyIdentifier = hash\n",
    )?;
    write(
        "tsa-req.cnf",
        "[req]\ndistinguished_name = dn\nprompt = no\n\
         [dn]\nC = XX\nO = Sigillum Bench\nCN = Sigillum Bench RSA TSA\n",
    )?;
    write(
        "tsa-ext.cnf",
        "basicConstraints = CA:FALSE\nkeyUsage = critical,digitalSignature\n\
         extendedKeyUsage = critical,timeStamping\nsubjectKeyIdentifier = hash\n\
         authorityKeyIdentifier = keyid\n",
    )?;
    let steps: [&[&str]; 5] = [
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "root.key",
        ],
        &[
            "req", "-new", "-x509", "-config", "root.cnf", "-key", "root.key", "-sha256", "-days",
            "30", "-out", "root.pem",
        ],
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
            "-out",
            "rsa.key",
        ],
        &[
            "req",
            "-new",
            "-config",
            "tsa-req.cnf",
            "-key",
            "rsa.key",
            "-sha256",
            "-out",
            "rsa-tsa.csr",
        ],
        &[
            "x509",
            "-req",
            "-in",
            "rsa-tsa.csr",
            "-CA",
            "root.pem",
            "-CAkey",
            "root.key",
            "-set_serial",
            "4242",
            "-sha256",
            "-days",
            "30",
            "-extfile",
            "tsa-ext.cnf",
            "-out",
            "rsa-tsa.pem",
        ],
    ];
    for args in steps {
        let out = Command::new(openssl)
            .args(args)
            .current_dir(dir)
            .output()
            .with_context(|| format!("cannot run {}", openssl.display()))?;
        if !out.status.success() {
            bail!(
                "openssl {} failed: {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
    }
    Ok(KeySet {
        dir: dir.to_owned(),
        key_file: dir.join("rsa.key"),
        cert_file: dir.join("rsa-tsa.pem"),
        chain_file: dir.join("root.pem"),
        dev: false,
    })
}
