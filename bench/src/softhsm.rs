//! Keys in SoftHSM2, reached through PKCS#11. Each key type gets a token of its own: its own
//! `softhsm2.conf` and token directory under the run's directory, so nothing touches
//! /etc/softhsm or anybody else's tokens. `tsa init --pkcs11-*` makes the key inside the token
//! (it never leaves it) and issues a development TSA certificate for it under the development
//! root, as an operator would.
//!
//! SoftHSM2 finds its configuration through the SOFTHSM2_CONF environment variable, read when
//! the module initialises; the server and the raw-signing worker are started with it set.

use anyhow::{Context, Result, bail};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's SoftHSM2 module (package softhsm2).
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The label of the token the benchmark makes.
const TOKEN: &str = "sigillum-bench";
/// The label of the key inside it.
const KEY_LABEL: &str = "tsa";
/// User PIN of the throwaway token (not a secret: the token lives in the run's directory).
const PIN: &str = "1234";
/// Security officer PIN of the throwaway token.
const SO_PIN: &str = "5678";
/// The certificate `tsa init --pkcs11-module` writes into the data directory.
const CERT_FILE: &str = "tsa-pkcs11.pem";

/// A key in a SoftHSM2 token, and what a process needs to reach it.
#[derive(Debug, Clone)]
pub struct HsmKey {
    /// The token's `softhsm2.conf`: SOFTHSM2_CONF of every process that opens it.
    pub conf: PathBuf,
    /// The PKCS#11 module.
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The private key's label.
    pub label: String,
    /// A file (mode 0600) whose first line is the user PIN.
    pub pin_file: PathBuf,
}

impl HsmKey {
    /// Where [`create`] puts the token and the PIN of the key in `dir`.
    pub fn in_dir(dir: &Path) -> HsmKey {
        HsmKey {
            conf: dir.join("softhsm").join("softhsm2.conf"),
            module: PathBuf::from(MODULE),
            token: TOKEN.into(),
            label: KEY_LABEL.into(),
            pin_file: dir.join("pin"),
        }
    }
}

/// Checks that the SoftHSM2 module and `softhsm2-util` are there.
pub fn check_installed() -> Result<()> {
    if !Path::new(MODULE).is_file() {
        bail!(
            "SoftHSM2 is not installed (no {MODULE}); install it with `apt-get install softhsm2`"
        );
    }
    match Command::new("softhsm2-util").arg("--version").output() {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            bail!("softhsm2-util is not installed; install it with `apt-get install softhsm2`")
        }
        other => other.context("cannot run softhsm2-util")?,
    };
    Ok(())
}

/// Makes a token in `dir`, a `key_type` (`ecdsa-p256` or `rsa-2048`) key inside it with
/// `tsa init`, and the development PKI with the key's certificate; returns the key and the
/// certificate's path.
pub fn create(dir: &Path, key_type: &str, tsa_bin: &Path) -> Result<(HsmKey, PathBuf)> {
    if !Path::new(MODULE).is_file() {
        bail!(
            "SoftHSM2 is not installed (no {MODULE}); install it with `apt-get install softhsm2`"
        );
    }
    let key = HsmKey::in_dir(dir);
    let token_dir = dir.join("softhsm").join("tokens");
    std::fs::create_dir_all(&token_dir)
        .with_context(|| format!("cannot create {}", token_dir.display()))?;
    std::fs::write(
        &key.conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            token_dir.display()
        ),
    )
    .context("cannot write softhsm2.conf")?;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&key.pin_file)
        .and_then(|mut f| writeln!(f, "{PIN}"))
        .with_context(|| format!("cannot write {}", key.pin_file.display()))?;

    let out = Command::new("softhsm2-util")
        .args(["--init-token", "--free", "--label", TOKEN])
        .args(["--pin", PIN, "--so-pin", SO_PIN])
        .env("SOFTHSM2_CONF", &key.conf)
        .output()
        .context("cannot run softhsm2-util")?;
    if !out.status.success() {
        bail!(
            "softhsm2-util --init-token failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }

    let out = Command::new(tsa_bin)
        .arg("init")
        .arg("--data-dir")
        .arg(dir)
        .arg("--key-type")
        .arg(key_type)
        .arg("--pkcs11-module")
        .arg(&key.module)
        .arg("--pkcs11-token")
        .arg(&key.token)
        .arg("--pkcs11-key")
        .arg(&key.label)
        .arg("--pkcs11-pin-file")
        .arg(&key.pin_file)
        .env_remove("TSA_DATA_DIR")
        .env("SOFTHSM2_CONF", &key.conf)
        .output()
        .with_context(|| format!("cannot run {}", tsa_bin.display()))?;
    let cert = dir.join(CERT_FILE);
    if !out.status.success() || !cert.is_file() {
        bail!(
            "tsa init --pkcs11-module failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok((key, cert))
}

/// Opens the key made by [`create`] in `dir` as the server does (the probe signature checks it
/// against its certificate). SOFTHSM2_CONF must already be set in this process's environment.
pub fn open_signer(dir: &Path) -> Result<pki::signer::pkcs11::Pkcs11Signer> {
    let key = HsmKey::in_dir(dir);
    let pin = zeroize::Zeroizing::new(
        std::fs::read_to_string(&key.pin_file)
            .with_context(|| format!("cannot read {}", key.pin_file.display()))?
            .lines()
            .next()
            .unwrap_or_default()
            .to_owned(),
    );
    let cert_path = dir.join(CERT_FILE);
    let pem = std::fs::read(&cert_path)
        .with_context(|| format!("cannot read {}", cert_path.display()))?;
    let cert = pki::cert::load_certificates(&pem)
        .with_context(|| format!("cannot parse {}", cert_path.display()))?
        .into_iter()
        .next()
        .with_context(|| format!("no certificate in {}", cert_path.display()))?;
    pki::signer::pkcs11::Pkcs11Signer::open(
        &pki::signer::pkcs11::Pkcs11Key {
            module: &key.module,
            token_label: &key.token,
            key_label: &key.label,
            pin: &pin,
        },
        &cert,
    )
    .with_context(|| format!("cannot open the PKCS#11 key {:?}", key.label))
}
