//! Helpers of the email tests: a small mail PKI made with the openssl CLI, statements to sign,
//! and surgery on signed messages (taking the signature out, putting another one in).

use crate::openssl_ca::path_str as s;
use crate::{openssl, write_file};
use base64::Engine;
use std::path::{Path, PathBuf};

/// A mail CA and end-entity certificates, made by openssl in a directory.
pub struct MailPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The CA certificate (the `--trust` anchor).
    pub ca: PathBuf,
}

/// One end entity: key (PKCS#8 PEM) and certificate.
pub struct Person {
    /// The key.
    pub key: PathBuf,
    /// The certificate.
    pub cert: PathBuf,
}

impl MailPki {
    /// A CA named `name` (ECDSA P-256) in `dir`.
    pub fn new(dir: &Path, name: &str) -> MailPki {
        let ca_key = dir.join(format!("{name}-ca.key"));
        let ca = dir.join(format!("{name}-ca.pem"));
        crate::openssl_ca::self_signed_p256(
            dir,
            s(&ca_key),
            s(&ca),
            &format!("/CN={name} Mail CA/O=Sigillum tests"),
            "3650",
            &[
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        MailPki {
            dir: dir.to_path_buf(),
            ca,
        }
    }

    /// An end entity for `email` with a key of `kind` (`ec` for P-256, `p384`, `rsa` for
    /// RSA-2048),
    /// EKU emailProtection and the address as rfc822Name.
    pub fn person(&self, email: &str, kind: &str) -> Person {
        self.person_with(
            email,
            kind,
            "signing",
            "keyUsage=critical,digitalSignature,nonRepudiation",
        )
    }

    /// An encryption certificate for `email`: keyEncipherment for `rsa`, keyAgreement for the
    /// EC kinds, EKU emailProtection.
    pub fn encryption_person(&self, email: &str, kind: &str) -> Person {
        let usage = if kind == "rsa" {
            "keyUsage=critical,keyEncipherment"
        } else {
            "keyUsage=critical,keyAgreement"
        };
        self.person_with(email, kind, "encryption", usage)
    }

    /// An end entity for `email` with a key of `kind` and the keyUsage line `usage`; `role`
    /// keeps the file names of several certificates for one address apart.
    pub fn person_with(&self, email: &str, kind: &str, role: &str, usage: &str) -> Person {
        let stem = format!("{}-{kind}-{role}", email.replace(['@', '.'], "_"));
        let key = self.dir.join(format!("{stem}.key"));
        let csr = self.dir.join(format!("{stem}.csr"));
        let cert = self.dir.join(format!("{stem}.pem"));
        let ext = write_file(
            &self.dir,
            &format!("{stem}.ext"),
            format!(
                "subjectAltName=email:{email}\nextendedKeyUsage=emailProtection\n\
                 {usage}\nbasicConstraints=CA:FALSE\n"
            )
            .as_bytes(),
        );
        let keyopt = match kind {
            "rsa" => vec!["-newkey", "rsa:2048"],
            "p384" => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
            _ => vec!["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
        };
        let mut args = vec!["req"];
        args.extend(keyopt);
        let subj = format!("/CN={email}");
        args.extend([
            "-nodes",
            "-keyout",
            s(&key),
            "-out",
            s(&csr),
            "-subj",
            &subj,
        ]);
        openssl(&self.dir, &args).assert_ok();
        let ca_key = self
            .ca
            .with_file_name(self.ca.file_name().map_or_else(String::new, |n| {
                n.to_string_lossy().replace("-ca.pem", "-ca.key")
            }));
        let serial: String = std::iter::once("0x1".to_owned())
            .chain(crate::random_bytes(8).iter().map(|b| format!("{b:02x}")))
            .collect();
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                s(&csr),
                "-CA",
                s(&self.ca),
                "-CAkey",
                s(&ca_key),
                "-set_serial",
                &serial,
                "-out",
                s(&cert),
                "-days",
                "365",
                "-extfile",
                s(&ext),
            ],
        )
        .assert_ok();
        Person { key, cert }
    }
}

/// A bank statement from `from`: LF line ends, 8-bit UTF-8 text, a line starting with "From ".
pub fn statement(from: &str, n: usize) -> Vec<u8> {
    format!(
        "From: Bank <{from}>\nTo: customer{n}@example.org\nSubject: Statement {n}\n\
         Date: Thu, 03 Dec 2026 10:00:00 +0000\nMessage-ID: <statement-{n}@example.com>\n\
         Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         Dear customer {n},\n\nyour balance is 1 234,56 € on account {n}.\n\
         From now on statements are signed.\n"
    )
    .into_bytes()
}

/// A multipart/signed message split into what surrounds the signature and the signature.
pub struct Detached {
    /// Everything up to the signature part's base64 body.
    pub head: Vec<u8>,
    /// The SignedData DER.
    pub cms: Vec<u8>,
    /// Everything after the base64 body (the closing delimiter).
    pub tail: Vec<u8>,
}

impl Detached {
    /// Splits a message signed by `stamp email sign` (multipart/signed, base64 signature part).
    pub fn split(message: &[u8]) -> Detached {
        let text = String::from_utf8(message.to_vec()).expect("7-bit message");
        let marker = "Content-Description: S/MIME Cryptographic Signature\r\n\r\n";
        let start = text.find(marker).expect("a signature part") + marker.len();
        let end = start + text[start..].find("\r\n--").expect("the closing delimiter");
        let b64: String = text[start..end].split_whitespace().collect();
        let cms = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .expect("base64");
        Detached {
            head: message[..start].to_vec(),
            cms,
            tail: message[end..].to_vec(),
        }
    }

    /// The message with `cms` as its signature.
    pub fn join(&self, cms: &[u8]) -> Vec<u8> {
        let b64 = base64::engine::general_purpose::STANDARD.encode(cms);
        let mut out = self.head.clone();
        for (i, chunk) in b64.as_bytes().chunks(76).enumerate() {
            if i > 0 {
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(chunk);
        }
        out.extend_from_slice(&self.tail);
        out
    }
}
