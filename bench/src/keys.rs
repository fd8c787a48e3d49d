//! The keys a run signs with: the development PKI made by `tsa init`, an RSA key and TSA
//! certificate made with openssl and served through a configuration file, or a key inside a
//! SoftHSM2 token (`crate::softhsm`) with a development certificate, served through
//! `[key.pkcs11]`.

use crate::Settings;
use crate::softhsm::{self, HsmKey};
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
    /// ECDSA P-256 key inside a SoftHSM2 token, signed with through PKCS#11.
    SoftHsmP256,
    /// RSA-2048 key inside a SoftHSM2 token, signed with through PKCS#11.
    SoftHsmRsa2048,
}

impl KeyKind {
    /// Parses a `--keys` item.
    pub fn from_name(name: &str) -> Result<KeyKind> {
        Ok(match name.trim() {
            "ecdsa-p256" | "p256" => KeyKind::EcdsaP256,
            "ecdsa-p384" | "p384" => KeyKind::EcdsaP384,
            "ed25519" => KeyKind::Ed25519,
            "rsa2048" | "rsa-2048" | "rsa" => KeyKind::Rsa2048,
            "softhsm-p256" | "softhsm-ecdsa-p256" => KeyKind::SoftHsmP256,
            "softhsm-rsa2048" | "softhsm-rsa-2048" => KeyKind::SoftHsmRsa2048,
            other => {
                bail!(
                    "unknown key type {other:?}; use ecdsa-p256, rsa2048, ecdsa-p384, ed25519, \
                     softhsm-p256 or softhsm-rsa2048"
                )
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
            KeyKind::SoftHsmP256 => "softhsm-p256",
            KeyKind::SoftHsmRsa2048 => "softhsm-rsa2048",
        }
    }

    /// The `tsa init --key-type` of a development PKI, or `None` for an openssl-made key.
    fn dev_key_type(self) -> Option<&'static str> {
        match self {
            KeyKind::EcdsaP256 => Some("ecdsa-p256"),
            KeyKind::EcdsaP384 => Some("ecdsa-p384"),
            KeyKind::Ed25519 => Some("ed25519"),
            KeyKind::Rsa2048 | KeyKind::SoftHsmP256 | KeyKind::SoftHsmRsa2048 => None,
        }
    }

    /// Whether the key lives in a PKCS#11 token.
    pub fn is_pkcs11(self) -> bool {
        self.hsm_key_type().is_some()
    }

    /// The `tsa init --pkcs11-module --key-type` of a key made inside a SoftHSM2 token.
    fn hsm_key_type(self) -> Option<&'static str> {
        match self {
            KeyKind::SoftHsmP256 => Some("ecdsa-p256"),
            KeyKind::SoftHsmRsa2048 => Some("rsa-2048"),
            _ => None,
        }
    }
}

/// Where the private key is.
#[derive(Debug, Clone)]
pub enum PrivateKey {
    /// A PKCS#8 PEM file.
    File(PathBuf),
    /// Inside a SoftHSM2 token; it never leaves it.
    Pkcs11(HsmKey),
}

/// Key, certificate and chain files of one key type.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// The directory holding the files.
    pub dir: PathBuf,
    /// The private key.
    pub private: PrivateKey,
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
    /// The PKCS#8 file, unless the key is in a token.
    pub fn key_file(&self) -> Option<&Path> {
        match &self.private {
            PrivateKey::File(f) => Some(f),
            PrivateKey::Pkcs11(_) => None,
        }
    }

    /// Whether the key is in a PKCS#11 token.
    pub fn is_pkcs11(&self) -> bool {
        matches!(self.private, PrivateKey::Pkcs11(_))
    }

    /// Creates the keys of `kind` in `dir`.
    pub fn create(kind: KeyKind, dir: &Path, settings: &Settings) -> Result<KeySet> {
        if let Some(key_type) = kind.hsm_key_type() {
            let (hsm, cert_file) = softhsm::create(dir, key_type, &settings.tsa_bin)?;
            return Ok(KeySet {
                dir: dir.to_owned(),
                private: PrivateKey::Pkcs11(hsm),
                cert_file,
                chain_file: dir.join("root.pem"),
                dev: false,
            });
        }
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
                    private: PrivateKey::File(dir.join("tsa.key")),
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
        private: PrivateKey::File(dir.join("rsa.key")),
        cert_file: dir.join("rsa-tsa.pem"),
        chain_file: dir.join("root.pem"),
        dev: false,
    })
}
