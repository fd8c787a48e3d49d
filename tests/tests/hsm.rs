//! Keys in an HSM: SoftHSM2 (Debian's) as the PKCS#11 token, keys made inside it by OpenSC's
//! pkcs11-tool (ECDSA P-256 and RSA-2048, never exported), certificates for their public keys
//! issued by the development root with openssl. The authority signs through the PKCS#11
//! `Signer` and `openssl ts -verify` accepts its tokens; a wrong PIN, a missing key, a key of
//! the wrong type or a certificate for another key are refused at start, by name.

use sigillum_tests::openssl_ca::path_str as p;
use sigillum_tests::{TsaOptions, TsaServer, openssl, run, tsa_bin};
use std::path::{Path, PathBuf};
use std::process::Command;

use sigillum_tests::softhsm::{self, MODULE};

/// A SoftHSM2 token of its own (its own config and token directory) with one EC and one RSA
/// key, the development PKI, and certificates for the two keys.
struct Hsm {
    dir: tempfile::TempDir,
}

impl Hsm {
    fn conf(&self) -> PathBuf {
        self.dir.path().join("softhsm2.conf")
    }

    fn tool(&self, args: &[&str]) -> sigillum_tests::Run {
        softhsm::tool(&self.conf(), args)
    }

    fn setup() -> Hsm {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path().to_path_buf();
        let d = d.as_path();
        softhsm::init_token(d);
        let hsm = Hsm { dir };
        for (label, kind) in [("tsa-ec", "EC:prime256v1"), ("tsa-rsa", "rsa:2048")] {
            softhsm::keypair(&hsm.conf(), d, label, kind, &["--usage-sign"]);
        }
        // The private keys stay in the token: pkcs11-tool cannot read them out.
        let out = hsm.tool(&[
            "--login",
            "--pin",
            "1234",
            "--read-object",
            "--type",
            "privkey",
            "--label",
            "tsa-ec",
            "-o",
            p(&d.join("stolen.der")),
        ]);
        assert!(!out.ok() || !d.join("stolen.der").exists(), "{out}");
        run(Command::new(tsa_bin())
            .arg("init")
            .arg("--data-dir")
            .arg(d.join("data")))
        .assert_ok();
        std::fs::write(
            d.join("ext.cnf"),
            "extendedKeyUsage = critical, timeStamping\nkeyUsage = critical, digitalSignature\n\
             basicConstraints = CA:FALSE\nsubjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
        )
        .expect("ext");
        for label in ["tsa-ec", "tsa-rsa"] {
            hsm.certify(label);
        }
        std::fs::write(d.join("pin.txt"), "1234\n").expect("pin");
        hsm
    }

    /// A TSA certificate `LABEL.pem` from the development root for the public key in
    /// `LABEL.pub.pem`.
    fn certify(&self, label: &str) {
        openssl(
            self.dir.path(),
            &[
                "x509",
                "-new",
                "-subj",
                &format!("/C=XX/O=Sigillum test/CN={label}"),
                "-force_pubkey",
                &format!("{label}.pub.pem"),
                "-CA",
                "data/root.pem",
                "-CAkey",
                "data/root.key",
                "-extfile",
                "ext.cnf",
                "-days",
                "30",
                "-out",
                &format!("{label}.pem"),
            ],
        )
        .assert_ok();
    }

    fn config(&self, cert: &str, key: &str, pin: &str) -> String {
        let d = self.dir.path();
        format!(
            "allow_unsynced_clock = true\n\n[key]\ncertificate = \"{}\"\nchain = \"{}\"\n\n\
             [key.pkcs11]\nmodule = \"{MODULE}\"\ntoken = \"sigillum\"\nkey = \"{key}\"\n{pin}\n",
            d.join(format!("{cert}.pem")).display(),
            d.join("data/root.pem").display(),
        )
    }

    fn start(&self, config: String, env: Vec<(String, String)>) -> TsaServer {
        let mut env = env;
        env.push(("SOFTHSM2_CONF".into(), self.conf().display().to_string()));
        TsaServer::start_with(TsaOptions {
            config: Some(config),
            data_dir: Some(self.dir.path().join("data")),
            env,
            ..Default::default()
        })
    }

    /// `tsa serve` with `config`, expected to refuse to start: its stderr.
    fn refused(&self, config: &str) -> String {
        let cfg = self.dir.path().join("refused.toml");
        std::fs::write(&cfg, config).expect("config");
        let r = run(Command::new(tsa_bin())
            .arg("serve")
            .arg("--config")
            .arg(&cfg)
            .arg("--data-dir")
            .arg(self.dir.path().join("data"))
            .args(["--listen", "127.0.0.1:1"])
            .env("SOFTHSM2_CONF", self.conf())
            .env_remove("TSA_CONFIG"));
        assert_eq!(r.code, Some(2), "{r}");
        r.stderr
    }
}

fn stamp_and_verify(server: &TsaServer, dir: &Path, what: &str) {
    std::fs::write(
        dir.join("data.txt"),
        format!("signed in the HSM with {what}\n"),
    )
    .expect("data");
    openssl(
        dir,
        &[
            "ts", "-query", "-data", "data.txt", "-sha256", "-cert", "-out", "q.tsq",
        ],
    )
    .assert_ok();
    let q = std::fs::read(dir.join("q.tsq")).expect("query");
    let reply = sigillum_tests::post(&server.url(), "application/timestamp-query", &q);
    assert_eq!(reply.status, 200, "{what}");
    std::fs::write(dir.join("r.tsr"), &reply.body).expect("reply");
    let v = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-queryfile",
            "q.tsq",
            "-in",
            "r.tsr",
            "-CAfile",
            p(&server.root_pem()),
        ],
    );
    assert!(v.stdout.contains("Verification: OK"), "{what}: {v}");
}

#[test]
fn ecdsa_and_rsa_keys_in_softhsm_sign_tokens_openssl_verifies() {
    let hsm = Hsm::setup();
    let work = tempfile::tempdir().expect("tempdir");
    let pin_file = format!(
        "pin_file = \"{}\"",
        hsm.dir.path().join("pin.txt").display()
    );
    let ec = hsm.start(hsm.config("tsa-ec", "tsa-ec", &pin_file), Vec::new());
    stamp_and_verify(&ec, work.path(), "ECDSA P-256");
    assert!(
        ec.log().contains("signing key in a PKCS#11 token"),
        "{}",
        ec.log()
    );
    drop(ec);
    // The PIN from an environment variable, an RSA key.
    let rsa = hsm.start(
        hsm.config("tsa-rsa", "tsa-rsa", "pin_env = \"SIGILLUM_HSM_PIN\""),
        vec![("SIGILLUM_HSM_PIN".into(), "1234".into())],
    );
    stamp_and_verify(&rsa, work.path(), "RSA-2048");
    // Many requests at once share the token's sessions.
    let spec = sigillum_tests::der::ReqSpec::sha256(b"concurrent");
    let url = rsa.url();
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let url = url.clone();
            let q = spec.encode();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| sigillum_tests::post(&url, "application/timestamp-query", &q).status)
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().expect("thread").iter().all(|s| *s == 200));
    }
}

#[test]
fn wrong_pins_missing_keys_and_mismatched_certificates_are_refused_at_start() {
    let hsm = Hsm::setup();
    let d = hsm.dir.path();
    std::fs::write(d.join("bad-pin.txt"), "9999\n").expect("pin");
    let bad_pin = format!("pin_file = \"{}\"", d.join("bad-pin.txt").display());
    let good_pin = format!("pin_file = \"{}\"", d.join("pin.txt").display());
    let e = hsm.refused(&hsm.config("tsa-ec", "tsa-ec", &bad_pin));
    assert!(e.contains("PIN"), "{e}");
    let e = hsm.refused(&hsm.config("tsa-ec", "no-such-key", &good_pin));
    assert!(e.contains("no private key labelled \"no-such-key\""), "{e}");
    let e = hsm.refused(&hsm.config("tsa-ec", "tsa-rsa", &good_pin));
    assert!(e.contains("the certificate is for an EC key"), "{e}");
    // An EC certificate for another EC key: the probe signature does not verify.
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "other.key",
        ],
    )
    .assert_ok();
    openssl(
        d,
        &[
            "pkey",
            "-in",
            "other.key",
            "-pubout",
            "-out",
            "other.pub.pem",
        ],
    )
    .assert_ok();
    hsm.certify("other");
    let e = hsm.refused(&hsm.config("other", "tsa-ec", &good_pin));
    assert!(e.contains("does not belong to the PKCS#11 key"), "{e}");
    let e = hsm.refused(&hsm.config("tsa-ec", "tsa-ec", "pin_env = \"SIGILLUM_UNSET_PIN_VAR\""));
    assert!(e.contains("SIGILLUM_UNSET_PIN_VAR"), "{e}");
}

#[test]
fn the_ca_key_in_the_token_issues_certificates_over_cmp() {
    let hsm = Hsm::setup();
    let d = hsm.dir.path();
    // A CA key made in the token; its certificate from a root of our own (the development
    // root may issue no CA under it: pathLen 0).
    softhsm::keypair(&hsm.conf(), d, "ca-ec", "EC:prime256v1", &["--usage-sign"]);
    sigillum_tests::openssl_ca::self_signed_p256(
        d,
        "mail-root.key",
        "mail-root.pem",
        "/CN=Mail Root",
        "30",
        &[],
    );
    std::fs::write(
        d.join("ca-ext.cnf"),
        "basicConstraints = critical, CA:TRUE, pathlen:0\n\
         keyUsage = critical, keyCertSign, cRLSign, digitalSignature\n\
         subjectKeyIdentifier = hash\nauthorityKeyIdentifier = keyid\n",
    )
    .expect("ext");
    openssl(
        d,
        &[
            "x509",
            "-new",
            "-subj",
            "/C=XX/O=Sigillum test/CN=HSM Mail CA",
            "-force_pubkey",
            "ca-ec.pub.pem",
            "-CA",
            "mail-root.pem",
            "-CAkey",
            "mail-root.key",
            "-extfile",
            "ca-ext.cnf",
            "-days",
            "30",
            "-out",
            "hsm-ca.pem",
        ],
    )
    .assert_ok();
    let pin = format!("pin_file = \"{}\"", d.join("pin.txt").display());
    let config = format!(
        "{}\n[ca]\ncertificate = \"{}\"\npublic_url = \"http://127.0.0.1:3161\"\n\n\
         [ca.pkcs11]\nmodule = \"{MODULE}\"\ntoken = \"sigillum\"\nkey = \"ca-ec\"\n{pin}\n",
        hsm.config("tsa-ec", "tsa-ec", &pin),
        d.join("hsm-ca.pem").display()
    );
    let server = hsm.start(config.clone(), Vec::new());
    std::fs::write(d.join("with-ca.toml"), &config).expect("config");
    let code = run(Command::new(tsa_bin())
        .args(["enroll-code", "--config"])
        .arg(d.join("with-ca.toml"))
        .arg("--data-dir")
        .arg(d.join("data"))
        .args(["--email", "hsm@example.org"])
        .env("SOFTHSM2_CONF", hsm.conf())
        .env_remove("TSA_CONFIG"));
    code.assert_ok();
    let field = |k: &str| {
        code.stdout
            .lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_owned())
            .unwrap_or_default()
    };
    openssl(
        d,
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "user.key",
        ],
    )
    .assert_ok();
    let server_addr = format!("127.0.0.1:{}", server.port());
    let secret = format!("pass:{}", field("secret:"));
    let r = openssl(
        d,
        &[
            "cmp",
            "-cmd",
            "ir",
            "-server",
            &server_addr,
            "-path",
            "/.well-known/cmp",
            "-srvcert",
            "hsm-ca.pem",
            "-ref",
            &field("reference:"),
            "-secret",
            &secret,
            "-newkey",
            "user.key",
            "-subject",
            "/CN=HSM user",
            "-certout",
            "user.pem",
            "-msg_timeout",
            "10",
            "-total_timeout",
            "20",
        ],
    );
    assert!(
        r.stdout.contains("received PKICONF") || r.stderr.contains("received PKICONF"),
        "{r}"
    );
    // The certificate chains to the root through the CA whose key never left the token.
    openssl(
        d,
        &[
            "verify",
            "-CAfile",
            "mail-root.pem",
            "-untrusted",
            "hsm-ca.pem",
            "user.pem",
        ],
    )
    .assert_ok();
    // genm caCerts is signed by the token key too, and openssl checks it against -srvcert.
    let g = openssl(
        d,
        &[
            "cmp",
            "-cmd",
            "genm",
            "-infotype",
            "caCerts",
            "-unprotected_requests",
            "-ref",
            "x",
            "-server",
            &server_addr,
            "-path",
            "/.well-known/cmp",
            "-srvcert",
            "hsm-ca.pem",
            "-msg_timeout",
            "10",
            "-total_timeout",
            "20",
        ],
    );
    assert!(
        format!("{}{}", g.stdout, g.stderr).contains("received GENP"),
        "{g}"
    );
}

#[test]
fn tsa_init_makes_the_key_in_the_token_and_a_certificate_the_authority_serves_with() {
    let hsm = Hsm::setup();
    let d = hsm.dir.path();
    let data = d.join("init-data");
    let init = |label: &str, kind: &str| {
        run(Command::new(tsa_bin())
            .arg("init")
            .arg("--data-dir")
            .arg(&data)
            .args([
                "--key-type",
                kind,
                "--pkcs11-module",
                MODULE,
                "--pkcs11-token",
                "sigillum",
            ])
            .args(["--pkcs11-key", label, "--pkcs11-pin-file"])
            .arg(d.join("pin.txt"))
            .env("SOFTHSM2_CONF", hsm.conf()))
    };
    let made = init("init-ec", "ecdsa-p256");
    made.assert_ok();
    assert!(made.stdout.contains("[key.pkcs11]"), "{made}");
    // The key is in the token, sensitive and never extractable.
    let objects = hsm.tool(&[
        "--login",
        "--pin",
        "1234",
        "--list-objects",
        "--type",
        "privkey",
    ]);
    let block = objects
        .stdout
        .split("Private Key Object")
        .find(|b| b.contains("init-ec"))
        .unwrap_or_default()
        .to_owned();
    assert!(
        block.contains("sensitive") && block.contains("never extractable"),
        "{objects}"
    );
    // The printed configuration serves tokens openssl verifies under the development root.
    let config = made.stdout[made.stdout.find("[key]").unwrap_or(0)..].to_owned();
    let server = TsaServer::start_with(TsaOptions {
        config: Some(format!("allow_unsynced_clock = true\n\n{config}")),
        data_dir: Some(data.clone()),
        env: vec![("SOFTHSM2_CONF".into(), hsm.conf().display().to_string())],
        ..Default::default()
    });
    let work = tempfile::tempdir().expect("tempdir");
    stamp_and_verify(&server, work.path(), "a key made by tsa init");
    drop(server);
    // The label is taken now; an unknown key type is refused.
    let again = init("init-ec", "ecdsa-p256");
    again.assert_code(2);
    assert!(
        again.stderr.contains("already holds objects labelled"),
        "{again}"
    );
    let bad = init("init-ed", "ed25519");
    bad.assert_code(2);
    assert!(bad.stderr.contains("ecdsa-p256 or rsa-2048"), "{bad}");
    // RSA too.
    init("init-rsa", "rsa-2048").assert_ok();
}
