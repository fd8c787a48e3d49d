//! `stamp enroll`, `stamp renew`, `stamp revoke`: certificates from a Sigillum CA over CMP
//! (RFC 9483 profile). Keys are made here and never leave this machine (mode 0600); the CMP
//! messages are `pki`'s ([`pki::cmp::client`]); HTTP is here.

use crate::Exit;
use anyhow::{Context, anyhow, bail};
use pki::cmp::CertKind;
use pki::cmp::client::{self as cmp, Answer, ClientProtection, ReplyCheck, Sent};
use pki::cms::SignerCert;
use pki::signer::RingSigner;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `stamp enroll`.
#[derive(clap::Args, Debug)]
pub struct EnrollArgs {
    /// The CA's base URL (http://HOST:PORT).
    #[arg(long)]
    server: String,
    /// The address to certify; the CA mails it a one-time code.
    #[arg(long)]
    email: String,
    /// Where the keys and certificates go [default: the current directory].
    #[arg(long, default_value = ".")]
    out: PathBuf,
    /// Read the code (`reference: ...` and `secret: ...` lines, as mailed or printed by
    /// `tsa enroll-code`) from this file instead of asking the CA to mail one and prompting.
    #[arg(long)]
    code_file: Option<PathBuf>,
    /// Only a signing certificate (no second key for encryption).
    #[arg(long)]
    no_encryption: bool,
    /// The password of the PKCS#12 files written for mail clients (first line of FILE);
    /// without it, asked on the terminal.
    #[arg(long)]
    pass_file: Option<PathBuf>,
    /// Write no PKCS#12 files (PEM key and certificate files only).
    #[arg(long)]
    no_pkcs12: bool,
}

/// The PKCS#12 password: `--pass-file`, or asked twice on the terminal; `None` when there is
/// neither (the caller says so).
fn pkcs12_password(args: &EnrollArgs) -> anyhow::Result<Option<zeroize::Zeroizing<String>>> {
    if let Some(f) = &args.pass_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        );
        return Ok(Some(zeroize::Zeroizing::new(
            text.lines().next().unwrap_or("").to_owned(),
        )));
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return Ok(None);
    }
    let first = zeroize::Zeroizing::new(rpassword::prompt_password(
        "password for the PKCS#12 files (mail clients ask for it on import): ",
    )?);
    let again = zeroize::Zeroizing::new(rpassword::prompt_password("the same again: ")?);
    if *first != *again {
        bail!("the two passwords differ");
    }
    Ok(Some(first))
}

/// Writes `PATH.p12` beside a key and certificate.
fn write_p12(
    path: &Path,
    key: &[u8],
    cert: &[u8],
    ca: &[u8],
    password: &str,
    label: &str,
) -> anyhow::Result<()> {
    let p12 = pki::keyfile::write_pkcs12(key, cert, &[ca.to_vec()], password, label)?;
    stamp::files::write_new_secret(path, &p12)?;
    println!("PKCS#12 for mail clients: {}", path.display());
    Ok(())
}

/// `stamp renew` and `stamp revoke`: the current key and certificate.
#[derive(clap::Args, Debug)]
pub struct CurrentArgs {
    /// The CA's base URL (http://HOST:PORT).
    #[arg(long)]
    server: String,
    /// The current key (PKCS#8).
    #[arg(long)]
    key: PathBuf,
    /// The current certificate.
    #[arg(long)]
    cert: PathBuf,
    /// The CA certificate (as stored by `stamp enroll`: ca.pem), which must sign the replies.
    #[arg(long)]
    ca: PathBuf,
    /// For revoke: keyCompromise, superseded, cessationOfOperation, affiliationChanged or
    /// unspecified.
    #[arg(long)]
    reason: Option<String>,
}

struct Client {
    agent: ureq::Agent,
    url: String,
}

impl Client {
    fn new(server: &str) -> Client {
        Client {
            agent: stamp::http::agent(Duration::from_secs(30)),
            url: server.trim_end_matches('/').to_owned(),
        }
    }

    fn exchange(&self, path: &str, sent: &Sent, check: ReplyCheck<'_>) -> anyhow::Result<Answer> {
        let url = format!("{}{path}", self.url);
        let mut resp = self
            .agent
            .post(&url)
            .header("Content-Type", "application/pkixcmp")
            .send(&sent.der[..])
            .with_context(|| format!("cannot reach the CA at {url}"))?;
        let status = resp.status().as_u16();
        let body = resp
            .body_mut()
            .with_config()
            .limit(pki::cmp::MAX_MESSAGE as u64)
            .read_to_vec()
            .with_context(|| format!("reading the reply from {url}"))?;
        if status != 200 {
            bail!(
                "the CA answered HTTP {status}: {}",
                String::from_utf8_lossy(&body).trim()
            );
        }
        let answer =
            cmp::read_reply(&body, sent, check).context("the CA's reply is not acceptable")?;
        if let Some((bits, text)) = &answer.refusal {
            let names: Vec<&str> = bits.iter().map(|b| b.name()).collect();
            let unproven = if answer.authenticated {
                ""
            } else {
                " [the reply's protection could not be checked]"
            };
            bail!(CaRefused(format!(
                "{} ({}){unproven}",
                text,
                names.join(", ")
            )));
        }
        Ok(answer)
    }

    /// One certificate request and, unless implicitly confirmed, its certConf.
    fn certify(
        &self,
        path: &str,
        sent: &Sent,
        check: ReplyCheck<'_>,
        protection: ClientProtection<'_>,
        ca_cert: Option<&[u8]>,
    ) -> anyhow::Result<Answer> {
        let answer = self.exchange(path, sent, check)?;
        let cert = answer
            .certificate
            .clone()
            .ok_or_else(|| anyhow!("the CA's reply holds no certificate"))?;
        if !answer.implicit_confirm {
            let conf = cmp::cert_conf(
                sent,
                &answer.sender_nonce,
                &cert,
                pki::cmp::cert_hash_alg(&cert)?,
                ca_cert,
                protection,
            )?;
            let ack = self.exchange(path, &conf, check)?;
            if ack.body_type != 19 {
                bail!("the CA did not confirm (body type {})", ack.body_type);
            }
        }
        Ok(answer)
    }
}

/// The CA refused; exit 1 rather than 2.
#[derive(Debug, thiserror::Error)]
#[error("the CA refused: {0}")]
pub struct CaRefused(String);

fn parse_code(text: &str) -> anyhow::Result<(String, String)> {
    let mut reference = None;
    let mut secret = None;
    for line in text.lines() {
        if let Some(v) = line.trim().strip_prefix("reference:") {
            reference = Some(v.trim().to_owned());
        } else if let Some(v) = line.trim().strip_prefix("secret:") {
            secret = Some(v.trim().to_owned());
        }
    }
    if reference.is_none() && secret.is_none() {
        let words: Vec<&str> = text.split_whitespace().collect();
        if let [r, s] = words[..] {
            return Ok((r.to_owned(), s.to_owned()));
        }
    }
    match (reference, secret) {
        (Some(r), Some(s)) if !r.is_empty() && !s.is_empty() => Ok((r, s)),
        _ => bail!("expected `reference: ...` and `secret: ...` lines"),
    }
}

fn ask_for_code(client: &Client, email: &str) -> anyhow::Result<(String, String)> {
    let url = format!("{}/enroll/start", client.url);
    let body = serde_json::json!({ "email": email }).to_string();
    let mut resp = client
        .agent
        .post(&url)
        .header("Content-Type", "application/json")
        .send(body.as_bytes())
        .with_context(|| format!("cannot reach the CA at {url}"))?;
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap_or_default();
    if status != 202 {
        let why = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["error"].as_str().map(str::to_owned))
            .unwrap_or(text);
        bail!(CaRefused(format!("HTTP {status}: {}", why.trim())));
    }
    eprintln!("A one-time code was mailed to {email}.");
    eprintln!("Paste its two lines (reference: ..., secret: ...), then an empty line:");
    let mut input = String::new();
    for line in std::io::stdin().lines() {
        let line = line?;
        if line.trim().is_empty() && !input.is_empty() {
            break;
        }
        input.push_str(&line);
        input.push('\n');
        if input.contains("reference:") && input.contains("secret:") {
            break;
        }
    }
    parse_code(&input)
}

fn exit_for(e: &anyhow::Error) -> Exit {
    if e.downcast_ref::<CaRefused>().is_some() {
        Exit::NotVerified
    } else {
        Exit::UsageOrIo
    }
}

/// Runs `stamp enroll`.
pub fn enroll(args: EnrollArgs) -> anyhow::Result<Exit> {
    match run_enroll(&args) {
        Ok(()) => Ok(Exit::Verified),
        Err(e) if exit_for(&e) == Exit::NotVerified => {
            crate::print_error(&e);
            Ok(Exit::NotVerified)
        }
        Err(e) => Err(e),
    }
}

fn run_enroll(args: &EnrollArgs) -> anyhow::Result<()> {
    // The CA keys addresses in lower case; so do the file names.
    let email = args.email.trim().to_ascii_lowercase();
    let client = Client::new(&args.server);
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let key_path = args.out.join(format!("{email}.key"));
    let cert_path = args.out.join(format!("{email}.pem"));
    if key_path.exists() {
        bail!(
            "{} exists already: renew with `stamp renew`, or choose another --out",
            key_path.display()
        );
    }
    let password = if args.no_pkcs12 {
        None
    } else {
        let p = pkcs12_password(args)?;
        if p.is_none() {
            eprintln!(
                "note: no PKCS#12 files will be written: no --pass-file and no terminal to ask on \
                 (--no-pkcs12 says so explicitly)"
            );
        }
        p
    };
    let (reference, secret) = match &args.code_file {
        Some(f) => parse_code(
            &std::fs::read_to_string(f).with_context(|| format!("cannot read {}", f.display()))?,
        )?,
        None => ask_for_code(&client, &email)?,
    };
    let (signer, pkcs8) = RingSigner::generate_p256()?;
    stamp::files::write_new_secret(&key_path, pki::signer::private_key_pem(&pkcs8)?.as_bytes())?;
    let spki = pki::signer::subject_public_key_info(&signer)?;
    let protection = ClientProtection::Mac {
        reference: reference.as_bytes(),
        secret: secret.as_bytes(),
    };
    let ir = cmp::certificate_request(
        CertKind::Ir,
        &signer,
        &spki,
        &email,
        None,
        protection,
        false,
    )?;
    let answer = client
        .certify(
            "/.well-known/cmp",
            &ir,
            ReplyCheck::Mac(secret.as_bytes()),
            protection,
            None,
        )
        .inspect_err(|_| {
            let _ = std::fs::remove_file(&key_path);
        })?;
    let cert = answer.certificate.clone().unwrap_or_default();
    if !pki::cert::same_public_key(&cert, &spki) {
        let _ = std::fs::remove_file(&key_path);
        bail!("the CA returned a certificate for another key than the one made here");
    }
    let ca = answer
        .ca_pubs
        .first()
        .cloned()
        .ok_or_else(|| anyhow!("the CA sent no CA certificate (caPubs)"))?;
    stamp::files::write_atomically(
        &cert_path,
        pki::cert::to_pem(&[cert.clone(), ca.clone()])?.as_bytes(),
    )?;
    stamp::files::write_atomically(
        &args.out.join("ca.pem"),
        pki::cert::to_pem(std::slice::from_ref(&ca))?.as_bytes(),
    )?;
    if let Some(pw) = &password {
        write_p12(
            &args.out.join(format!("{email}.p12")),
            &pkcs8,
            &cert,
            &ca,
            pw,
            &format!("{email} (signing)"),
        )?;
    }
    println!("signing key: {}", key_path.display());
    println!("signing certificate: {}", cert_path.display());
    println!("CA certificate: {}", args.out.join("ca.pem").display());
    if !args.no_encryption {
        let cert = SignerCert::from_der(cert)?;
        let (enc_signer, enc_pkcs8) = RingSigner::generate_p256()?;
        let enc_key = args.out.join(format!("{email}-encryption.key"));
        let enc_cert = args.out.join(format!("{email}-encryption.pem"));
        stamp::files::write_new_secret(
            &enc_key,
            pki::signer::private_key_pem(&enc_pkcs8)?.as_bytes(),
        )?;
        let protection = ClientProtection::Signature {
            signer: &signer,
            cert: &cert,
        };
        let cr = cmp::certificate_request(
            CertKind::Cr,
            &enc_signer,
            &pki::signer::subject_public_key_info(&enc_signer)?,
            &email,
            Some(&ca),
            protection,
            false,
        )?;
        let enc_spki = pki::signer::subject_public_key_info(&enc_signer)?;
        let answer = client
            .certify(
                "/.well-known/cmp/p/encryption",
                &cr,
                ReplyCheck::Ca(&ca),
                protection,
                Some(&ca),
            )
            .and_then(|a| {
                if a.certificate
                    .as_deref()
                    .is_some_and(|c| pki::cert::same_public_key(c, &enc_spki))
                {
                    Ok(a)
                } else {
                    bail!("the CA returned a certificate for another key than the one made here")
                }
            })
            .inspect_err(|_| {
                let _ = std::fs::remove_file(&enc_key);
            })?;
        let der = answer.certificate.unwrap_or_default();
        if let Some(pw) = &password {
            write_p12(
                &args.out.join(format!("{email}-encryption.p12")),
                &enc_pkcs8,
                &der,
                &ca,
                pw,
                &format!("{email} (encryption)"),
            )?;
        }
        stamp::files::write_atomically(&enc_cert, pki::cert::to_pem(&[der, ca])?.as_bytes())?;
        println!("encryption key: {}", enc_key.display());
        println!("encryption certificate: {}", enc_cert.display());
    }
    Ok(())
}

fn load_current(args: &CurrentArgs) -> anyhow::Result<(stamp::keys::Identity, Vec<u8>)> {
    let id = stamp::keys::load_identity(&args.key, Some(&args.cert), None, None)?;
    let ca = stamp::keys::load_certs(&args.ca)?
        .into_iter()
        .next()
        .ok_or_else(|| anyhow!("no certificate in {}", args.ca.display()))?;
    Ok((id, ca))
}

/// Runs `stamp renew`: a new key, a kur signed by the current one; the old files are kept
/// as `.old` (`.old.1`, `.old.2`, ... after later renewals).
pub fn renew(args: CurrentArgs) -> anyhow::Result<Exit> {
    let run = || -> anyhow::Result<()> {
        let (id, ca) = load_current(&args)?;
        let client = Client::new(&args.server);
        let (signer, pkcs8) = RingSigner::generate_p256()?;
        let protection = ClientProtection::Signature {
            signer: id.signer.as_ref(),
            cert: &id.cert,
        };
        let cn = pki::cert::common_name(&id.cert.cert).unwrap_or_default();
        let kur = cmp::certificate_request(
            CertKind::Kur,
            &signer,
            &pki::signer::subject_public_key_info(&signer)?,
            &cn,
            Some(&ca),
            protection,
            false,
        )?;
        let answer = client.certify(
            "/.well-known/cmp",
            &kur,
            ReplyCheck::Ca(&ca),
            protection,
            Some(&ca),
        )?;
        let cert = answer.certificate.unwrap_or_default();
        // The old key and certificate are kept (`.old`, `.old.1`, ...: never overwritten), and
        // each file always holds the old or the new version.
        let old_key = stamp::files::replace_keeping_old(
            &args.key,
            pki::signer::private_key_pem(&pkcs8)?.as_bytes(),
            0o600,
        )?;
        let old_cert = stamp::files::replace_keeping_old(
            &args.cert,
            pki::cert::to_pem(&[cert, ca])?.as_bytes(),
            0o644,
        )?;
        println!(
            "new key: {} (the old one is {})",
            args.key.display(),
            old_key.display()
        );
        println!(
            "new certificate: {} (the old one is {})",
            args.cert.display(),
            old_cert.display()
        );
        Ok(())
    };
    finish(run())
}

/// Runs `stamp revoke`: an rr signed by the certificate's own key.
pub fn revoke(args: CurrentArgs) -> anyhow::Result<Exit> {
    let run = || -> anyhow::Result<()> {
        let (id, ca) = load_current(&args)?;
        let serial = id.cert.cert.tbs_certificate.serial_number.as_bytes();
        let serial = serial.strip_prefix(&[0]).unwrap_or(serial);
        let protection = ClientProtection::Signature {
            signer: id.signer.as_ref(),
            cert: &id.cert,
        };
        let rr = cmp::revocation_request(serial, &ca, args.reason.as_deref(), protection)?;
        Client::new(&args.server).exchange("/.well-known/cmp", &rr, ReplyCheck::Ca(&ca))?;
        println!("revoked: serial {}", hex::encode(serial));
        Ok(())
    };
    finish(run())
}

fn finish(r: anyhow::Result<()>) -> anyhow::Result<Exit> {
    match r {
        Ok(()) => Ok(Exit::Verified),
        Err(e) if exit_for(&e) == Exit::NotVerified => {
            crate::print_error(&e);
            Ok(Exit::NotVerified)
        }
        Err(e) => Err(e),
    }
}
