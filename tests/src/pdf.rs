//! Helpers of the PDF tests: the fixture PDFs (tests/py/pdf_fixtures.py), a signer PKI made with
//! the openssl CLI beside the TSA's development root, and the peers that sign or judge PDF
//! signatures: pyHanko (tests/py/pyhanko_sign.py, `pyhanko sign validate`,
//! tests/py/pdf_validate.py) and poppler's pdfsig with an NSS database. Nothing here parses JSON
//! (serde_json is a dev-dependency): the tests do.

use crate::mail::{MailPki, Person};
use crate::openssl_ca::path_str as s;
use crate::{Run, TsaServer, openssl, read_file, run, stamp, workspace_root, write_file};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python interpreter that has pyHanko and reportlab (`$PYTHON`, as scripts/test.sh exports
/// it, else `python3`).
pub fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

/// A script of tests/py/.
pub fn py_script(name: &str) -> PathBuf {
    workspace_root().join("tests/py").join(name)
}

/// A committed input of tests/vectors/pdf/.
pub fn vector(name: &str) -> PathBuf {
    workspace_root().join("tests/vectors/pdf").join(name)
}

/// Runs `python3 tests/py/pdf_fixtures.py DIR/fixtures` and returns that directory (the
/// script checks every file it writes and exits 1 with the reason otherwise).
pub fn fixtures(dir: &Path) -> PathBuf {
    let out = dir.join("fixtures");
    let made = run(Command::new(python())
        .current_dir(dir)
        .arg(py_script("pdf_fixtures.py"))
        .arg(&out));
    assert!(
        made.ok(),
        "tests/py/pdf_fixtures.py (reportlab, pyhanko and qpdf are required; scripts/test.sh \
         installs them): {made}"
    );
    out
}

/// Signers under one openssl-made CA, and the roots a validator needs.
pub struct PdfPki {
    /// The signers' CA certificate (the `--trust` anchor).
    pub ca: PathBuf,
    /// The TSA's development root (the `--tsa-trust` anchor).
    pub tsa_root: PathBuf,
    /// Both in one PEM file (pyHanko's and pdfsig's trust).
    pub roots: PathBuf,
    /// alice@example.com, ECDSA P-256.
    pub ec: Person,
    /// bob@example.com, RSA-2048 (another subject: NSS files keys by subject).
    pub rsa: Person,
}

impl PdfPki {
    /// The CA and both signers in `dir`, with `server`'s root.
    pub fn new(dir: &Path, server: &TsaServer) -> PdfPki {
        let mail = MailPki::new(dir, "pdf");
        let ec = mail.person("alice@example.com", "ec");
        let rsa = mail.person("bob@example.com", "rsa");
        let tsa_root = server.root_pem();
        let mut both = read_file(&mail.ca);
        both.extend_from_slice(&read_file(&tsa_root));
        let roots = write_file(dir, "roots.pem", &both);
        PdfPki {
            ca: mail.ca,
            tsa_root,
            roots,
            ec,
            rsa,
        }
    }
}

/// `stamp pdf sign IN --key --cert --tsa URL -o OUT EXTRA...` in `dir`, asserting exit 0;
/// returns `dir/OUT`.
pub fn stamp_sign(
    dir: &Path,
    server: &TsaServer,
    input: &Path,
    signer: &Person,
    out: &str,
    extra: &[&str],
) -> PathBuf {
    let url = server.url();
    let mut args = vec![
        "pdf",
        "sign",
        s(input),
        "--key",
        s(&signer.key),
        "--cert",
        s(&signer.cert),
        "--tsa",
        &url,
        "-o",
        out,
    ];
    args.extend_from_slice(extra);
    let signed = stamp(dir, &args);
    assert!(signed.ok(), "stamp pdf sign {}: {signed}", input.display());
    dir.join(out)
}

/// `qpdf --check PDF`, asserting exit 0 (3 would be "warnings") and qpdf's all-clear line.
pub fn qpdf_check(pdf: &Path) {
    let checked = run(Command::new("qpdf").arg("--check").arg(pdf));
    assert!(
        checked.ok()
            && checked
                .stdout
                .contains("No syntax or stream encoding errors found"),
        "qpdf --check {}: {checked}",
        pdf.display()
    );
}

/// `tests/py/pyhanko_sign.py --level LEVEL [--key --cert --chain CA] [--tsa URL] IN OUT` in
/// `dir` (pyHanko's API signs, not our code), asserting its "OK" line; returns `dir/OUT`.
/// `signer` is `None` for `doc-ts`; `--tsa` is passed for every level but B-B (the script
/// timestamps whenever it has a TSA).
pub fn pyhanko_sign(
    dir: &Path,
    server: &TsaServer,
    pki: &PdfPki,
    signer: Option<&Person>,
    level: &str,
    input: &Path,
    out: &str,
) -> PathBuf {
    let mut cmd = Command::new(python());
    cmd.current_dir(dir)
        .arg(py_script("pyhanko_sign.py"))
        .args(["--level", level]);
    if let Some(p) = signer {
        cmd.arg("--key").arg(&p.key).arg("--cert").arg(&p.cert);
        cmd.arg("--chain").arg(&pki.ca);
        cmd.arg("--trust")
            .arg(&pki.ca)
            .arg("--trust")
            .arg(&pki.tsa_root);
    }
    if level != "B-B" {
        cmd.args(["--tsa", &server.url()]);
    }
    let signed = run(cmd.arg(input).arg(out));
    assert!(
        signed.ok() && signed.stdout.starts_with(&format!("OK {level}")),
        "tests/py/pyhanko_sign.py --level {level} {}: {signed}",
        input.display()
    );
    dir.join(out)
}

/// `pyhanko sign validate --pretty-print --no-revocation-check --trust-replace --trust ROOTS
/// [--no-strict-syntax] PDF` (the pyhanko CLI, run as `$PYTHON -m pyhanko`). Not asserted: the
/// caller judges the text.
pub fn pyhanko_validate_cli(pki: &PdfPki, pdf: &Path, strict: bool) -> Run {
    let mut cmd = Command::new(python());
    cmd.args(["-m", "pyhanko", "sign", "validate", "--pretty-print"])
        .args(["--no-revocation-check", "--trust-replace", "--trust"])
        .arg(&pki.roots);
    if !strict {
        cmd.arg("--no-strict-syntax");
    }
    run(cmd.arg(pdf))
}

/// `tests/py/pdf_validate.py --trust ROOTS PDF` (pyHanko's validation API), asserting exit 0;
/// its stdout is the JSON the script's docstring describes.
pub fn pyhanko_validate_api(pki: &PdfPki, pdf: &Path) -> Run {
    let judged = run(Command::new(python())
        .arg(py_script("pdf_validate.py"))
        .arg("--trust")
        .arg(&pki.roots)
        .arg(pdf));
    assert!(
        judged.ok(),
        "tests/py/pdf_validate.py {}: {judged}",
        pdf.display()
    );
    judged
}

/// An NSS database (`sql:DIR`) for poppler's pdfsig, empty password.
pub struct NssDb {
    /// `sql:DIR`, as pdfsig's `-nssdir` and certutil's `-d` take it.
    pub spec: String,
}

impl NssDb {
    /// A new database in `dir` trusting the signers' CA and the TSA root ("CT,C,C").
    pub fn new(dir: &Path, pki: &PdfPki) -> NssDb {
        std::fs::create_dir_all(dir).expect("NSS database directory");
        let db = NssDb {
            spec: format!("sql:{}", dir.display()),
        };
        db.certutil(&["-N", "--empty-password"]);
        for (nick, pem) in [("ca", &pki.ca), ("tsa-root", &pki.tsa_root)] {
            db.certutil(&["-A", "-n", nick, "-t", "CT,C,C", "-i", s(pem)]);
        }
        db
    }

    fn certutil(&self, args: &[&str]) {
        let done = run(Command::new("certutil").args(["-d", &self.spec]).args(args));
        assert!(done.ok(), "certutil (libnss3-tools): {done}");
    }

    /// Imports `signer`'s key and certificate (a PKCS#12 made by openssl, empty password) under
    /// `nick`, for `pdfsig -add-signature -nick NICK`.
    pub fn import_key(&self, dir: &Path, signer: &Person, ca: &Path, nick: &str) {
        let p12 = dir.join(format!("{nick}.p12"));
        let export = openssl(
            dir,
            &[
                "pkcs12",
                "-export",
                "-inkey",
                s(&signer.key),
                "-in",
                s(&signer.cert),
                "-certfile",
                s(ca),
                "-name",
                nick,
                "-passout",
                "pass:",
                "-out",
                s(&p12),
            ],
        );
        assert!(export.ok(), "openssl pkcs12 -export: {export}");
        let import = run(Command::new("pk12util")
            .args(["-d", &self.spec, "-W", "", "-i"])
            .arg(&p12));
        assert!(import.ok(), "pk12util -i {}: {import}", p12.display());
    }

    /// `pdfsig -nssdir DB PDF` (validates every signature; not asserted).
    pub fn pdfsig(&self, pdf: &Path) -> Run {
        run(Command::new("pdfsig")
            .args(["-nssdir", &self.spec])
            .arg(pdf))
    }
}
