//! The signing key, its certificate and chain, as the signing commands take them (`--key`,
//! `--cert`, `--chain`, `--pass-file`), through pki's one key loader.

use anyhow::{Context, anyhow};
use pki::cms::SignerCert;
use pki::signer::Signer;
use std::path::{Path, PathBuf};

/// A loaded signing identity.
pub struct Identity {
    /// The key (a file's; an HSM's later).
    pub signer: Box<dyn Signer>,
    /// Its certificate.
    pub cert: SignerCert,
    /// The certificates above it: from --cert after the first, the PKCS#12 file, and --chain.
    pub chain: Vec<Vec<u8>>,
}

/// Reads certificates (PEM bundle or DER).
pub fn load_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    pki::cert::load_certificates(&bytes)
        .with_context(|| format!("no usable certificate in {}", path.display()))
}

/// The password of the key file `key`, asked for only when the loader needs one: the first line
/// of `pass_file`, or a prompt on the terminal.
pub fn password_source(
    key: &Path,
    pass_file: Option<&PathBuf>,
) -> impl FnMut() -> std::io::Result<zeroize::Zeroizing<String>> + use<> {
    let key_path = key.to_owned();
    let pass_file = pass_file.cloned();
    move || match &pass_file {
        Some(p) => {
            let text = zeroize::Zeroizing::new(std::fs::read_to_string(p)?);
            Ok(zeroize::Zeroizing::new(
                text.lines().next().unwrap_or("").to_owned(),
            ))
        }
        None => rpassword::prompt_password(format!("password for {}: ", key_path.display()))
            .map(zeroize::Zeroizing::new),
    }
}

/// A loaded decryption identity.
pub struct Decryption {
    /// The key.
    pub key: pki::envelope::SoftwareDecrypter,
    /// Its certificate, when known (--cert, or the PKCS#12 file's).
    pub cert: Option<Vec<u8>>,
}

/// Loads a decryption key (the same files as a signing key) and its certificate.
pub fn load_decryption(
    key: &Path,
    cert: Option<&Path>,
    pass_file: Option<&PathBuf>,
) -> anyhow::Result<Decryption> {
    let key_bytes = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    let mut password = password_source(key, pass_file);
    let loaded = pki::keyfile::load_decryption_key(&key_bytes, &mut password)
        .with_context(|| format!("cannot load the key {}", key.display()))?;
    let cert = match cert {
        Some(path) => Some(
            load_certs(path)?
                .into_iter()
                .next()
                .ok_or_else(|| anyhow!("no certificate in {}", path.display()))?,
        ),
        None => loaded.certificate,
    };
    Ok(Decryption {
        key: loaded.decrypter,
        cert,
    })
}

/// A decryption key in a PKCS#11 token: `key_label` in the token labelled `token`, logged in
/// with the PIN from `pin_file` (its first line) or a prompt, checked against `certificate`.
pub fn load_pkcs11_decrypter(
    module: &Path,
    token: &str,
    key_label: &str,
    pin_file: Option<&PathBuf>,
    certificate: &[u8],
) -> anyhow::Result<pki::signer::pkcs11::Pkcs11Decrypter> {
    let mut pin = password_source(Path::new(&format!("PKCS#11 token {token}")), pin_file);
    let pin = pin().context("cannot read the PKCS#11 PIN")?;
    pki::signer::pkcs11::Pkcs11Decrypter::open(
        &pki::signer::pkcs11::Pkcs11Key {
            module,
            token_label: token,
            key_label,
            pin: &pin,
        },
        certificate,
    )
    .with_context(|| format!("cannot use the PKCS#11 key {key_label:?} in token {token:?}"))
}

/// Loads `key` (PKCS#8 PEM or DER, or PKCS#12 with its password from `pass_file` or a prompt),
/// its certificate (`cert`, or the PKCS#12 file's) and the chain.
pub fn load_identity(
    key: &Path,
    cert: Option<&Path>,
    chain_file: Option<&Path>,
    pass_file: Option<&PathBuf>,
) -> anyhow::Result<Identity> {
    let key_bytes = std::fs::read(key).with_context(|| format!("cannot read {}", key.display()))?;
    let mut password = password_source(key, pass_file);
    // --cert first: it completes an EC key file that carries no public key.
    let mut chain = Vec::new();
    let given =
        match cert {
            Some(path) => {
                let mut certs = load_certs(path)?.into_iter();
                let first = certs
                    .next()
                    .ok_or_else(|| anyhow!("no certificate in {}", path.display()))?;
                chain.extend(certs);
                Some(SignerCert::from_der(first).with_context(|| {
                    format!("the certificate in {} is malformed", path.display())
                })?)
            }
            None => None,
        };
    let loaded = pki::keyfile::load_signing_key_for(
        &key_bytes,
        pki::signer::RsaPadding::Pkcs1,
        &mut password,
        given.as_ref(),
    )
    .with_context(|| format!("cannot load the key {}", key.display()))?;
    chain.extend(loaded.chain);
    let cert = match (given, loaded.certificate) {
        (Some(c), _) => c,
        (None, Some(der)) => {
            SignerCert::from_der(der).context("the key file's certificate is malformed")?
        }
        (None, None) => {
            return Err(anyhow!(
                "no certificate: pass --cert CERT (the key file holds none)"
            ));
        }
    };
    if let Some(c) = chain_file {
        chain.extend(load_certs(c)?);
    }
    if !cert.matches(&loaded.signer) {
        return Err(anyhow!(
            "the certificate does not belong to the key {}",
            key.display()
        ));
    }
    Ok(Identity {
        signer: Box::new(loaded.signer),
        cert,
        chain,
    })
}
