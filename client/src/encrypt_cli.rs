//! `stamp email encrypt` and `stamp email decrypt`: S/MIME encryption to the recipients'
//! certificates (files or a Sigillum directory) and decryption with the recipient's key, over
//! `pki::smime::encrypt`.

use crate::Exit;
use anyhow::{Context, anyhow, bail};
use pki::envelope::{ContentEncryption, Recipient};
use pki::smime::decrypt_message;
use stamp::files::write_atomically;
use stamp::recipients::{Encryptor, Recipients};
use std::path::PathBuf;

/// Where the recipients' certificates come from, and how to encrypt.
#[derive(clap::Args, Debug)]
pub struct EncryptionArgs {
    /// A recipient's address; repeat for several. Each gets the certificate for that address
    /// from --recipient-cert or the directory, checked (validity, key usage, the address,
    /// OCSP). When signing in bulk without --to, each message's To and Cc.
    #[arg(long = "to", value_name = "ADDR")]
    pub to: Vec<String>,
    /// The authority whose directory serves the recipients' certificates (its base URL).
    #[arg(long, value_name = "URL")]
    pub directory: Option<String>,
    /// Recipient certificates (PEM or DER), matched to --to by their email addresses.
    #[arg(long = "recipient-cert", value_name = "FILE")]
    pub recipient_cert: Vec<PathBuf>,
    /// The sender's own encryption certificate: one more recipient, so that the sender can
    /// read its archive.
    #[arg(long = "self-cert", value_name = "FILE")]
    pub self_cert: Option<PathBuf>,
    /// EnvelopedData with AES-256-CBC (smime-type=enveloped-data) for older clients, instead
    /// of AuthEnvelopedData with AES-256-GCM.
    #[arg(long)]
    pub cbc: bool,
    /// The CAs (PEM) every recipient certificate must chain to, for emailProtection: without
    /// it, a certificate from a forged directory answer or a wrong file would be used. Strongly
    /// advised; a warning is printed without it.
    #[arg(long, value_name = "FILE")]
    pub trust: Option<PathBuf>,
    /// Do not ask the OCSP responder a recipient certificate names (the directory serves only
    /// certificates that are not revoked; files may hold revoked ones).
    #[arg(long)]
    pub no_revocation_check: bool,
    /// The Subject shown outside; the real one is encrypted with the message.
    #[arg(long, value_name = "TEXT", default_value = pki::smime::encrypt::DEFAULT_OUTER_SUBJECT)]
    pub outer_subject: String,
}

impl EncryptionArgs {
    /// Whether any of these options was given.
    pub fn any(&self) -> bool {
        !self.to.is_empty()
            || self.directory.is_some()
            || !self.recipient_cert.is_empty()
            || self.self_cert.is_some()
            || self.cbc
            || self.no_revocation_check
            || self.trust.is_some()
            || self.outer_subject != pki::smime::encrypt::DEFAULT_OUTER_SUBJECT
    }

    /// The encryptor these options describe: --to (or, when none, each message's To and Cc),
    /// certificates from --recipient-cert or --directory, and --self-cert.
    pub fn encryptor(&self) -> anyhow::Result<Encryptor> {
        let anchors = match &self.trust {
            Some(path) => stamp::keys::load_certs(path)?,
            None => {
                eprintln!(
                    "stamp: warning: no --trust: recipient certificates are not checked against \
                     a CA; a forged directory answer or a wrong file would be encrypted to"
                );
                Vec::new()
            }
        };
        let recipients = Recipients::new(
            self.directory.as_deref(),
            &self.recipient_cert,
            anchors,
            !self.no_revocation_check,
        )?;
        let self_cert = match &self.self_cert {
            None => None,
            Some(path) => {
                let der = stamp::keys::load_certs(path)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("no certificate in {}", path.display()))?;
                let own = Recipient::from_certificate(&der)
                    .with_context(|| format!("{} cannot be a recipient", path.display()))?;
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs());
                own.check(None, now)
                    .map_err(|e| anyhow!("--self-cert {}: {e}", path.display()))?;
                Some(own)
            }
        };
        Ok(Encryptor {
            recipients,
            to: self.to.clone(),
            self_cert,
            encryption: if self.cbc {
                ContentEncryption::Aes256Cbc
            } else {
                ContentEncryption::Aes256Gcm
            },
            outer_subject: self.outer_subject.clone(),
        })
    }
}

/// `stamp email encrypt` arguments.
#[derive(clap::Args, Debug)]
pub struct EncryptArgs {
    /// The message to encrypt (RFC 5322; usually signed and timestamped first).
    input: PathBuf,
    /// Where to write the encrypted message (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "OUT.eml")]
    output: PathBuf,
    #[command(flatten)]
    encryption: EncryptionArgs,
    /// Overwrite OUT.eml if it exists.
    #[arg(long)]
    force: bool,
}

/// `stamp email decrypt` arguments.
#[derive(clap::Args, Debug)]
pub struct DecryptArgs {
    /// The encrypted message.
    input: PathBuf,
    /// Where to write the decrypted message (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "OUT.eml")]
    output: PathBuf,
    /// The recipient's private key: PKCS#8 (PEM or DER, clear or encrypted) or PKCS#12.
    #[arg(
        long,
        value_name = "KEY",
        required_unless_present = "pkcs11_module",
        conflicts_with = "pkcs11_module"
    )]
    key: Option<PathBuf>,
    /// The key's certificate, to find it among the recipients (optional with a PKCS#12 file,
    /// or when the key is the only recipient of its kind; required with a PKCS#11 key).
    #[arg(long, value_name = "CERT")]
    cert: Option<PathBuf>,
    /// Decrypt with a key in this PKCS#11 module's token (an HSM) instead of a key file; the
    /// key never leaves the token.
    #[arg(long, value_name = "MODULE", requires_all = ["pkcs11_token", "pkcs11_key", "cert"])]
    pkcs11_module: Option<PathBuf>,
    /// The token's label.
    #[arg(long, value_name = "LABEL")]
    pkcs11_token: Option<String>,
    /// The private key's label (CKA_LABEL).
    #[arg(long, value_name = "LABEL")]
    pkcs11_key: Option<String>,
    /// A file whose first line is the user PIN (otherwise it is prompted for).
    #[arg(long, value_name = "FILE")]
    pkcs11_pin_file: Option<PathBuf>,
    /// A file whose first line is the key file's password (otherwise it is prompted for).
    #[arg(long, value_name = "FILE")]
    pass_file: Option<PathBuf>,
    /// Overwrite OUT.eml if it exists.
    #[arg(long)]
    force: bool,
}

fn write_output(output: &std::path::Path, force: bool, bytes: &[u8]) -> anyhow::Result<()> {
    if output.as_os_str() == "-" {
        use std::io::Write;
        return std::io::stdout()
            .write_all(bytes)
            .context("cannot write to standard output");
    }
    if output.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", output.display());
    }
    write_atomically(output, bytes)
}

fn refuse_existing(output: &std::path::Path, force: bool) -> anyhow::Result<()> {
    if output.as_os_str() != "-" && output.exists() && !force {
        bail!("{} exists; pass --force to overwrite it", output.display());
    }
    Ok(())
}

/// `stamp email encrypt`.
pub fn encrypt(a: EncryptArgs) -> anyhow::Result<Exit> {
    refuse_existing(&a.output, a.force)?;
    if a.encryption.to.is_empty() {
        bail!("name the recipients with --to ADDR (one or more)");
    }
    let encryptor = a.encryption.encryptor()?;
    let message =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let (encrypted, recipients) = encryptor
        .encrypt(&message)
        .with_context(|| format!("cannot encrypt {}", a.input.display()))?;
    write_output(&a.output, a.force, &encrypted)?;
    if a.output.as_os_str() != "-" {
        let names: Vec<String> = recipients
            .iter()
            .map(|r| format!("{} <{}>", r.name(), r.emails().join(",")))
            .collect();
        eprintln!(
            "{}: encrypted ({}) to {}",
            a.output.display(),
            encryptor.encryption.smime_type(),
            names.join(", ")
        );
    }
    Ok(Exit::Verified)
}

/// `stamp email decrypt`.
pub fn decrypt(a: DecryptArgs) -> anyhow::Result<Exit> {
    refuse_existing(&a.output, a.force)?;
    let (key, cert): (Box<dyn pki::envelope::Decrypter>, Option<Vec<u8>>) =
        match (&a.key, &a.pkcs11_module) {
            (Some(key), _) => {
                let id =
                    stamp::keys::load_decryption(key, a.cert.as_deref(), a.pass_file.as_ref())?;
                (Box::new(id.key), id.cert)
            }
            (None, Some(module)) => {
                let cert_path = a
                    .cert
                    .as_ref()
                    .ok_or_else(|| anyhow!("a PKCS#11 key needs --cert"))?;
                let cert = stamp::keys::load_certs(cert_path)?
                    .into_iter()
                    .next()
                    .ok_or_else(|| anyhow!("no certificate in {}", cert_path.display()))?;
                let key = stamp::keys::load_pkcs11_decrypter(
                    module,
                    a.pkcs11_token.as_deref().unwrap_or_default(),
                    a.pkcs11_key.as_deref().unwrap_or_default(),
                    a.pkcs11_pin_file.as_ref(),
                    &cert,
                )?;
                (Box::new(key), Some(cert))
            }
            (None, None) => bail!("name the key: --key KEY, or --pkcs11-module and its options"),
        };
    let message =
        std::fs::read(&a.input).with_context(|| format!("cannot read {}", a.input.display()))?;
    let decrypted = match decrypt_message(&message, key.as_ref(), cert.as_deref()) {
        Ok(d) => d,
        Err(e @ (pki::Error::NotDecryptable | pki::Error::NotARecipient { .. })) => {
            // The recipients named come from the message: escaped like every untrusted text.
            eprintln!(
                "stamp: {}",
                stamp::escape::escape(&format!("{}: {e}", a.input.display()))
            );
            return Ok(Exit::NotVerified);
        }
        Err(e) => {
            return Err(
                anyhow::Error::new(e).context(format!("cannot decrypt {}", a.input.display()))
            );
        }
    };
    write_output(&a.output, a.force, &decrypted.message)?;
    if a.output.as_os_str() != "-" {
        eprintln!(
            "{}: decrypted ({:?}Data, {}); verify it with `stamp verify {}`",
            a.output.display(),
            decrypted.info.kind,
            decrypted.info.content_algorithm,
            a.output.display()
        );
    }
    Ok(Exit::Verified)
}
