//! A SoftHSM2 token of a test's own (its own configuration and token directory, label
//! `sigillum`, user PIN 1234), and key pairs made inside it by OpenSC's pkcs11-tool.

use crate::openssl_ca::path_str as s;
use crate::{Run, openssl, run};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Debian's SoftHSM2 module.
pub const MODULE: &str = "/usr/lib/softhsm/libsofthsm2.so";
/// The token's label.
pub const TOKEN: &str = "sigillum";
/// The user PIN.
pub const PIN: &str = "1234";

/// Writes `dir/softhsm2.conf` (tokens in `dir/tokens`) and initialises the token; returns the
/// configuration's path (for `SOFTHSM2_CONF`).
pub fn init_token(dir: &Path) -> PathBuf {
    std::fs::create_dir(dir.join("tokens")).expect("tokens");
    let conf = dir.join("softhsm2.conf");
    std::fs::write(
        &conf,
        format!(
            "directories.tokendir = {}\nobjectstore.backend = file\nlog.level = ERROR\n",
            dir.join("tokens").display()
        ),
    )
    .expect("conf");
    run(Command::new("softhsm2-util")
        .args([
            "--init-token",
            "--free",
            "--label",
            TOKEN,
            "--pin",
            PIN,
            "--so-pin",
            "5678",
        ])
        .env("SOFTHSM2_CONF", &conf))
    .assert_ok();
    conf
}

/// `pkcs11-tool --module MODULE --token-label sigillum ARGS` with `conf`.
pub fn tool(conf: &Path, args: &[&str]) -> Run {
    run(Command::new("pkcs11-tool")
        .args(["--module", MODULE, "--token-label", TOKEN])
        .args(args)
        .env("SOFTHSM2_CONF", conf))
}

/// A key pair of `kind` (`EC:prime256v1`, `rsa:2048`) labelled `label`, made inside the token
/// with the pkcs11-tool `usages` (`--usage-sign`, `--usage-decrypt`, `--usage-derive`); its
/// public key is written to `dir/LABEL.pub.pem`, whose path is returned.
pub fn keypair(conf: &Path, dir: &Path, label: &str, kind: &str, usages: &[&str]) -> PathBuf {
    let mut args = vec![
        "--login",
        "--pin",
        PIN,
        "--keypairgen",
        "--key-type",
        kind,
        "--label",
        label,
    ];
    args.extend_from_slice(usages);
    tool(conf, &args).assert_ok();
    let der = dir.join(format!("{label}.pub.der"));
    tool(
        conf,
        &[
            "--read-object",
            "--type",
            "pubkey",
            "--label",
            label,
            "-o",
            s(&der),
        ],
    )
    .assert_ok();
    let pem = dir.join(format!("{label}.pub.pem"));
    openssl(
        dir,
        &[
            "pkey",
            "-pubin",
            "-inform",
            "DER",
            "-in",
            s(&der),
            "-out",
            s(&pem),
        ],
    )
    .assert_ok();
    pem
}
