//! OpenSSL as the client of the CA in `tsa serve`: `openssl cmp` (3.0) enrols with a one-time
//! enrolment code (ir, MAC-protected), asks for a second key's certificate (cr on the encryption
//! profile, p10cr), updates a key (kur), asks for the CA certificates (genm) and revokes (rr),
//! with its checks of the server's replies on (`-srvcert`, or a `-trusted` store); `openssl ocsp`
//! (POST and GET, nonce echoed), `openssl crl` and `openssl verify -crl_check` see every
//! revocation at once; the directory publishes exactly the valid certificates. Every issued
//! certificate binds the proven address whatever the request says, with the key usage of its
//! profile. A genm for rootCaCert, which openssl 3.0 cannot send, is built here and answered
//! with an id-it-rootCaKeyUpdate without value (no root update).
//!
//! And the refusals, each as openssl prints it (PKIFailureInfo) or, for bytes openssl would not
//! send, as the error PKIMessage's failInfo, and each with nothing issued: wrong MAC secret,
//! unknown reference, used or expired code, replayed messages, a new message in a used
//! transaction, a template for another address, proofs of possession that are missing,
//! RA-verified or do not verify, a signer that is revoked or from another CA, malformed DER, the
//! wrong media type.
//!
//! Keys and certificates are made fresh in a temporary directory on every run; every test runs
//! its own server (and so its own CA, archive and rate limits).

use base64::Engine;
use pki::cmp::CertKind;
use pki::cmp::client::{self, ClientProtection, ReplyCheck, Sent};
use pki::signer::RingSigner;
use sigillum_tests::der::{children, octets, oid, seq, split_tlv, tlv, uint};
use sigillum_tests::openssl_ca::{cms_round_trip, new_key, ok, path_str as p, pem_cert_der};
use sigillum_tests::{
    HttpReply, Run, TsaOptions, TsaServer, agent, get, openssl, post, post_without_content_type,
    read_file, run, tsa_bin, write_file,
};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// The CMP endpoint (RFC 9811 §3.3) and the encryption-certificate profile under it.
const CMP: &str = "/.well-known/cmp";
const CMP_ENCRYPTION: &str = "/.well-known/cmp/p/encryption";
const PKIXCMP: &str = "application/pkixcmp";

// PKIFailureInfo bits (RFC 9810 §5.2.3).
const BAD_DATA_FORMAT: u32 = 5;
const BAD_SENDER_NONCE: u32 = 18;
const TRANSACTION_ID_IN_USE: u32 = 21;
const NOT_AUTHORIZED: u32 = 23;

// infoTypes of general messages (RFC 9810 §5.3.19).
const ID_IT_CA_CERTS: &str = "1.3.6.1.5.5.7.4.17";
const ID_IT_ROOT_CA_KEY_UPDATE: &str = "1.3.6.1.5.5.7.4.18";
const ID_IT_ROOT_CA_CERT: &str = "1.3.6.1.5.5.7.4.20";

/// The signing profile's key usage as `openssl x509 -ext` prints it.
const KU_SIGNING: &str = "Digital Signature, Non Repudiation";

/// A running server with a scratch directory for keys, certificates and openssl's files.
struct Ca {
    server: TsaServer,
    dir: PathBuf,
}

/// An enrolment code as `tsa enroll-code` prints it.
struct Code {
    email: String,
    reference: String,
    secret: String,
}

impl Code {
    /// `-secret pass:SECRET`.
    fn pass(&self) -> String {
        format!("pass:{}", self.secret)
    }
}

impl Ca {
    fn start() -> Ca {
        let server = TsaServer::start();
        let dir = server.work_dir().join("cmp");
        std::fs::create_dir_all(&dir).expect("mkdir cmp");
        Ca { server, dir }
    }

    fn root(&self) -> PathBuf {
        self.server.root_pem()
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn url(&self, route: &str) -> String {
        format!("{}{route}", self.server.url())
    }

    /// `openssl ARGS` in the scratch directory, exit 0 asserted.
    fn ok(&self, args: &[&str]) -> Run {
        ok(&self.dir, args)
    }

    /// A fresh EC P-256 key in `name`.
    fn ec_key(&self, name: &str) -> PathBuf {
        new_key(&self.dir, "ec", name)
    }

    /// A fresh RSA-2048 key in `name`.
    fn rsa_key(&self, name: &str) -> PathBuf {
        new_key(&self.dir, "rsa", name)
    }

    /// `tsa enroll-code` for `email` on the server's data directory (the same archive).
    fn code(&self, email: &str) -> Code {
        let r = run(Command::new(tsa_bin())
            .arg("enroll-code")
            .arg("--data-dir")
            .arg(self.server.data_dir())
            .arg("--email")
            .arg(email)
            .env("NO_COLOR", "1")
            .env_remove("TSA_CONFIG")
            .env_remove("TSA_DATA_DIR")
            .env_remove("TSA_DATABASE_URL"));
        r.assert_ok();
        let line = |label: &str| {
            r.stdout
                .lines()
                .find_map(|l| l.strip_prefix(label))
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| panic!("no {label:?} line: {r}"))
        };
        Code {
            email: line("email:"),
            reference: line("reference:"),
            secret: line("secret:"),
        }
    }

    /// `openssl cmp` at `route` with the timeouts that make a hang fail fast; the server's
    /// certificate is pinned with `-srvcert` unless `args` bring their own `-trusted` store.
    fn cmp_at(&self, route: &str, args: &[&str]) -> Run {
        let server = format!("127.0.0.1:{}", self.server.port());
        let root = self.root();
        let mut all = vec![
            "cmp",
            "-server",
            &server,
            "-path",
            route,
            "-msg_timeout",
            "10",
            "-total_timeout",
            "20",
        ];
        if !args.contains(&"-trusted") {
            all.extend(["-srvcert", p(&root)]);
        }
        all.extend_from_slice(args);
        openssl(&self.dir, &all)
    }

    /// `openssl cmp` at the default route, `-srvcert` pinned.
    fn cmp(&self, args: &[&str]) -> Run {
        self.cmp_at(CMP, args)
    }

    /// An ir with `code` for `key`, asserted to succeed (IP, certConf, PKIconf); the
    /// certificate is written to `out`.
    fn enrol(&self, code: &Code, key: &Path, subject: &str, out: &str) -> PathBuf {
        let r = self.cmp(&[
            "-cmd",
            "ir",
            "-ref",
            &code.reference,
            "-secret",
            &code.pass(),
            "-newkey",
            p(key),
            "-subject",
            subject,
            "-certout",
            out,
        ]);
        assert_enrolled(&r, "IR", "IP");
        self.path(out)
    }

    /// Rows in `ca_certificates`, read from the SQLite archive with python3's stdlib.
    fn certificates_stored(&self) -> u64 {
        let db = self.server.data_dir().join("archive.db");
        let r = run(Command::new("python3").args([
            "-c",
            "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
             print(c.execute('select count(*) from ca_certificates').fetchone()[0])",
            p(&db),
        ]));
        r.assert_ok();
        r.stdout
            .trim()
            .parse()
            .unwrap_or_else(|e| panic!("count: {e}: {r}"))
    }

    /// `GET /directory/{email}` (PEM).
    fn directory(&self, email: &str) -> HttpReply {
        get(&self.url(&format!("directory/{email}")))
    }

    /// The certificates the directory lists for `email`, DER; empty on 404.
    fn listed(&self, email: &str) -> Vec<Vec<u8>> {
        let reply = self.directory(email);
        if reply.status == 404 {
            return Vec::new();
        }
        assert_eq!(reply.status, 200, "directory/{email}: {}", reply.text());
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/pem-certificate-chain"),
            "directory/{email}"
        );
        pem_ders(&reply.text())
    }

    /// `GET /directory/{email}` with `Accept: application/pkix-cert` (the newest, DER).
    fn directory_der(&self, email: &str) -> HttpReply {
        let mut resp = agent(Duration::from_secs(30))
            .get(self.url(&format!("directory/{email}")))
            .header("Accept", "application/pkix-cert")
            .call()
            .unwrap_or_else(|e| panic!("GET directory/{email}: {e}"));
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut body = Vec::new();
        std::io::Read::read_to_end(&mut resp.body_mut().as_reader(), &mut body)
            .expect("directory body");
        HttpReply {
            status: resp.status().as_u16(),
            content_type,
            retry_after: None,
            body,
        }
    }

    /// `POST /.well-known/cmp` with `content_type`.
    fn post_cmp(&self, content_type: &str, body: &[u8]) -> HttpReply {
        post(&self.url(".well-known/cmp"), content_type, body)
    }

    /// `openssl x509 -serial` of a PEM certificate: the hex digits.
    fn serial(&self, cert: &Path) -> String {
        let r = self.ok(&["x509", "-in", p(cert), "-noout", "-serial"]);
        r.stdout
            .trim()
            .strip_prefix("serial=")
            .unwrap_or_else(|| panic!("no serial= in {r}"))
            .to_owned()
    }

    /// The profile fields of a certificate as openssl reads them.
    fn profile(&self, cert: &Path) -> Profile {
        let r = self.ok(&[
            "x509",
            "-in",
            p(cert),
            "-noout",
            "-subject",
            "-ext",
            "basicConstraints,keyUsage,extendedKeyUsage,subjectAltName",
        ]);
        let text = r.stdout;
        let after = |header: &str| {
            let mut lines = text.lines();
            lines
                .by_ref()
                .find(|l| l.trim_start().starts_with(header))
                .unwrap_or_else(|| panic!("no {header} in {}:\n{text}", cert.display()));
            lines.next().map(str::trim).unwrap_or_default().to_owned()
        };
        Profile {
            subject: text
                .lines()
                .find_map(|l| l.strip_prefix("subject="))
                .unwrap_or_default()
                .trim()
                .to_owned(),
            basic_constraints: after("X509v3 Basic Constraints"),
            key_usage: after("X509v3 Key Usage"),
            ext_key_usage: after("X509v3 Extended Key Usage"),
            san: after("X509v3 Subject Alternative Name"),
        }
    }

    /// The public key of a certificate or a private key file, PEM.
    fn public_key(&self, file: &Path, is_cert: bool) -> String {
        if is_cert {
            self.ok(&["x509", "-in", p(file), "-noout", "-pubkey"])
                .stdout
        } else {
            self.ok(&["pkey", "-in", p(file), "-pubout"]).stdout
        }
    }
}

/// What the tests check of an issued certificate.
#[derive(Debug)]
struct Profile {
    subject: String,
    basic_constraints: String,
    key_usage: String,
    ext_key_usage: String,
    san: String,
}

impl Profile {
    /// An end-entity email-protection certificate for exactly `email` with `key_usage`.
    fn assert_email(&self, email: &str, key_usage: &str, what: &str) {
        assert_eq!(self.san, format!("email:{email}"), "{what}: SAN {self:?}");
        assert_eq!(self.key_usage, key_usage, "{what}: key usage {self:?}");
        assert_eq!(
            self.ext_key_usage, "E-mail Protection",
            "{what}: EKU {self:?}"
        );
        assert_eq!(self.basic_constraints, "CA:FALSE", "{what}: {self:?}");
    }
}

/// stdout and stderr of a run, for matching openssl's messages wherever it prints them.
fn output(r: &Run) -> String {
    format!("{}\n{}", r.stdout, r.stderr)
}

/// An `openssl cmp` run that sent `sent`, got `got`, confirmed and got PKIconf.
fn assert_enrolled(r: &Run, sent: &str, got: &str) {
    let out = output(r);
    assert!(r.ok(), "openssl cmp failed: {r}");
    for step in [
        format!("sending {sent}"),
        format!("received {got}"),
        "sending CERTCONF".to_owned(),
        "received PKICONF".to_owned(),
        "received 1 enrolled certificate".to_owned(),
    ] {
        assert!(out.contains(&step), "no {step:?}: {r}");
    }
}

/// An `openssl cmp` run that failed on an error message with `fail_info` and `text` in its
/// statusString.
fn assert_refused(r: &Run, fail_info: &str, text: &str) {
    let out = output(r);
    assert_eq!(r.code, Some(1), "openssl cmp should fail: {r}");
    assert!(out.contains("received ERROR"), "no error message: {r}");
    assert!(
        out.contains(&format!("PKIFailureInfo: {fail_info};")),
        "not {fail_info}: {r}"
    );
    assert!(out.contains(text), "statusString lacks {text:?}: {r}");
}

/// The DER of every certificate in a PEM text.
fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut b64 = None::<String>;
    for line in pem.lines() {
        if line.starts_with("-----BEGIN CERTIFICATE-----") {
            b64 = Some(String::new());
        } else if line.starts_with("-----END CERTIFICATE-----") {
            let text = b64.take().expect("END without BEGIN");
            out.push(
                base64::engine::general_purpose::STANDARD
                    .decode(text)
                    .expect("PEM base64"),
            );
        } else if let Some(text) = b64.as_mut() {
            text.push_str(line.trim());
        }
    }
    out
}

/// An error PKIMessage (body [23] ErrorMsgContent) as the server sent it.
#[derive(Debug)]
struct CmpError {
    /// PKIStatus (2 = rejection).
    status: u8,
    /// The statusString texts, joined.
    text: String,
    /// The failInfo bits set.
    fail_info: BTreeSet<u32>,
}

/// Walks a PKIMessage whose body must be an error message; panics with the bytes otherwise.
fn cmp_error(reply: &[u8]) -> CmpError {
    let (tag, message, rest) = split_tlv(reply);
    assert!(
        tag == 0x30 && rest.is_empty(),
        "not one PKIMessage: {reply:02x?}"
    );
    let parts = children(message);
    assert!(parts.len() >= 2, "no body: {reply:02x?}");
    let (body_tag, body, _) = split_tlv(parts[1]);
    assert_eq!(
        body_tag,
        0xB7,
        "the body is not an error message [23]: {}",
        String::from_utf8_lossy(reply)
    );
    let (_, error_content, _) = split_tlv(body);
    let (_, status_info, _) = split_tlv(children(error_content)[0]);
    let fields = children(status_info);
    let (int_tag, status, _) = split_tlv(fields[0]);
    assert_eq!(
        (int_tag, status.len()),
        (0x02, 1),
        "PKIStatus {status:02x?}"
    );
    let mut text = String::new();
    let mut fail_info = BTreeSet::new();
    for field in &fields[1..] {
        let (tag, content, _) = split_tlv(field);
        match tag {
            0x30 => {
                for s in children(content) {
                    let (_, utf8, _) = split_tlv(s);
                    text.push_str(&String::from_utf8_lossy(utf8));
                }
            }
            0x03 => {
                for (i, byte) in content[1..].iter().enumerate() {
                    for bit in 0..8u32 {
                        if byte & (0x80 >> bit) != 0 {
                            fail_info.insert(u32::try_from(i).expect("small") * 8 + bit);
                        }
                    }
                }
            }
            other => panic!("unexpected field {other:#x} in PKIStatusInfo"),
        }
    }
    CmpError {
        status: status[0],
        text,
        fail_info,
    }
}

/// A 200 application/pkixcmp reply carrying a rejection with exactly `bit` and `text`.
fn assert_cmp_error(reply: &HttpReply, bit: u32, text: &str, what: &str) {
    assert_eq!(reply.status, 200, "{what}: RFC 9811 errors travel with 200");
    assert_eq!(
        reply.content_type.as_deref(),
        Some(PKIXCMP),
        "{what}: content type"
    );
    let e = cmp_error(&reply.body);
    assert_eq!(e.status, 2, "{what}: rejection {e:?}");
    assert_eq!(e.fail_info, BTreeSet::from([bit]), "{what}: failInfo {e:?}");
    assert!(e.text.contains(text), "{what}: statusString {e:?}");
}

/// An unprotected genm (PKIBody [21]) from and to the empty name asking for `infos`
/// (InfoTypeAndValue DER each): `(message, transactionID, senderNonce)`, 16 random bytes each.
/// openssl 3.0 asks only for the infoTypes it knows, which do not include rootCaCert.
fn genm(infos: &[Vec<u8>]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let transaction_id = pki::cmp::fresh_nonce().expect("transactionID");
    let sender_nonce = pki::cmp::fresh_nonce().expect("senderNonce");
    let null_dn = tlv(0xa4, &seq(&[]));
    let header = seq(&[
        &uint(&[2]),
        &null_dn,
        &null_dn,
        &tlv(0xa4, &octets(&transaction_id)),
        &tlv(0xa5, &octets(&sender_nonce)),
    ]);
    let infos: Vec<&[u8]> = infos.iter().map(Vec::as_slice).collect();
    let body = tlv(0xb5, &seq(&infos));
    (seq(&[&header, &body]), transaction_id, sender_nonce)
}

/// The certificates (DER) of the id-it-caCerts entry of a genp; panics when the message is
/// not a genp or holds no caCerts.
fn genp_ca_certs(genp: &[u8]) -> Vec<Vec<u8>> {
    let m = pki::cmp::parse(genp).expect("a PKIMessage");
    assert_eq!(m.body_type, 22, "not a genp: {genp:02x?}");
    let (_, infos, _) = split_tlv(m.body_content());
    let ca_certs = oid(ID_IT_CA_CERTS);
    let entry = children(infos)
        .into_iter()
        .map(|itav| children(split_tlv(itav).1))
        .find(|fields| fields.first() == Some(&ca_certs.as_slice()))
        .expect("an id-it-caCerts entry");
    let (_, certs, _) = split_tlv(entry.get(1).expect("caCerts has a value"));
    children(certs).into_iter().map(<[u8]>::to_vec).collect()
}

/// `sent`, MAC-protected with `secret`, moved into the transaction `transaction_id`: its
/// transactionID replaced (same length) and its MAC computed anew, so that it is a fresh,
/// valid message (its own senderNonce) in a transaction used before.
fn in_transaction(sent: &Sent, transaction_id: &[u8], secret: &[u8]) -> Vec<u8> {
    let old = sent.transaction_id.as_slice();
    assert_eq!(old.len(), transaction_id.len());
    let mut der = sent.der.clone();
    let at: Vec<usize> = der
        .windows(old.len())
        .enumerate()
        .filter_map(|(i, w)| (w == old).then_some(i))
        .collect();
    assert_eq!(at.len(), 1, "the transactionID occurs once");
    der[at[0]..at[0] + old.len()].copy_from_slice(transaction_id);
    let (algorithm, old_mac, protected) = {
        let m = pki::cmp::parse(&der).expect("parse");
        (
            m.protection_alg.clone().expect("protectionAlg"),
            m.protection.clone().expect("protection"),
            m.protected_part().expect("ProtectedPart"),
        )
    };
    let mac = pki::pbmac::mac(&algorithm, &protected, secret).expect("MAC");
    // MAC protection, no extraCerts: the message ends with the MAC's bits.
    assert!(der.ends_with(&old_mac) && mac.len() == old_mac.len());
    let end = der.len();
    der[end - mac.len()..].copy_from_slice(&mac);
    let m = pki::cmp::parse(&der).expect("parse");
    assert_eq!(m.transaction_id.as_deref(), Some(transaction_id));
    assert_eq!(
        m.sender_nonce.as_deref(),
        Some(sent.sender_nonce.as_slice())
    );
    assert!(m.verify_mac(secret).expect("MAC"), "the new MAC verifies");
    der
}

/// `openssl ocsp` by POST for `cert` (a name in the scratch directory), with a nonce: the
/// response verifies against the root and echoes the nonce; returns stdout.
fn ocsp_post(ca: &Ca, cert: &str) -> String {
    let root = ca.root();
    let r = ca.ok(&[
        "ocsp",
        "-issuer",
        p(&root),
        "-cert",
        cert,
        "-url",
        &ca.url("ocsp"),
        "-CAfile",
        p(&root),
    ]);
    let out = output(&r);
    assert!(out.contains("Response verify OK"), "{r}");
    // openssl sends a nonce by default and says so when the response has none, or another.
    assert!(!out.contains("WARNING: no nonce in response"), "{r}");
    assert!(!out.contains("Nonce Verify error"), "{r}");
    r.stdout
}

/// `openssl ocsp` by GET (RFC 6960 A.1: base64 then percent-encoded) for `cert`, with a nonce
/// checked against the request file; returns openssl's text of the response.
fn ocsp_get(ca: &Ca, cert: &str, name: &str) -> String {
    let root = ca.root();
    let req = format!("{name}.req.der");
    ca.ok(&["ocsp", "-issuer", p(&root), "-cert", cert, "-reqout", &req]);
    let b64 = base64::engine::general_purpose::STANDARD.encode(read_file(&ca.path(&req)));
    let encoded = b64
        .replace('+', "%2B")
        .replace('/', "%2F")
        .replace('=', "%3D");
    let reply = get(&ca.url(&format!("ocsp/{encoded}")));
    assert_eq!(reply.status, 200, "GET /ocsp: {}", reply.text());
    assert_eq!(
        reply.content_type.as_deref(),
        Some("application/ocsp-response")
    );
    let resp = write_file(&ca.dir, &format!("{name}.resp.der"), &reply.body);
    // -reqin (not -cert, which would build a new request with a new nonce) checks the nonce.
    let r = ca.ok(&[
        "ocsp",
        "-reqin",
        &req,
        "-respin",
        p(&resp),
        "-issuer",
        p(&root),
        "-CAfile",
        p(&root),
        "-resp_text",
    ]);
    let out = output(&r);
    assert!(out.contains("Response verify OK"), "{r}");
    assert!(!out.contains("WARNING: no nonce in response"), "{r}");
    assert!(!out.contains("Nonce Verify error"), "{r}");
    r.stdout
}

#[test]
fn openssl_cmp_runs_the_whole_certificate_lifecycle_against_a_pinned_ca_certificate() {
    let ca = Ca::start();
    let root = ca.root();
    // The address as typed; the CA keys it in lower case.
    let code = ca.code("Alice@Example.ORG");
    assert_eq!(code.email, "alice@example.org");
    let email = code.email.as_str();
    assert!(ca.listed(email).is_empty(), "nothing before enrolment");

    // ir: the enrolment code (MAC) proves the address; the subject claims nothing about it.
    let k = ca.ec_key("k.pem");
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k),
        "-subject",
        "/CN=Somebody Else",
        "-certout",
        "new.pem",
        "-cacertsout",
        "capubs.pem",
    ]);
    assert_enrolled(&r, "IR", "IP");
    let new = ca.path("new.pem");
    let profile = ca.profile(&new);
    profile.assert_email(email, KU_SIGNING, "ir");
    assert_eq!(profile.subject, "CN = Somebody Else", "{profile:?}");
    assert_eq!(
        ca.public_key(&new, true),
        ca.public_key(&k, false),
        "ir certifies the requested key"
    );
    assert_eq!(
        pem_cert_der(&ca.path("capubs.pem")),
        pem_cert_der(&root),
        "caPubs of an ir is the CA certificate"
    );
    let v = ca.ok(&[
        "verify",
        "-CAfile",
        p(&root),
        "-purpose",
        "smimesign",
        "new.pem",
    ]);
    assert!(v.stdout.contains("new.pem: OK"), "{v}");
    assert_eq!(ca.listed(email), vec![pem_cert_der(&new)], "after ir");

    // The code served its one ir.
    let k_again = ca.ec_key("k_again.pem");
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k_again),
        "-subject",
        "/CN=Alice",
        "-certout",
        "again.pem",
    ]);
    assert_refused(&r, "notAuthorized", "the enrolment code was already used");
    assert!(!ca.path("again.pem").exists());

    // cr on the encryption profile, signed with the ir certificate: an RSA key gets
    // keyEncipherment, and works for CMS encryption.
    let k3 = ca.rsa_key("k3.pem");
    let r = ca.cmp_at(
        CMP_ENCRYPTION,
        &[
            "-cmd",
            "cr",
            "-cert",
            "new.pem",
            "-key",
            p(&k),
            "-newkey",
            p(&k3),
            "-subject",
            "/CN=Alice",
            "-certout",
            "enc.pem",
        ],
    );
    assert_enrolled(&r, "CR", "CP");
    let enc = ca.path("enc.pem");
    ca.profile(&enc)
        .assert_email(email, "Key Encipherment", "cr (encryption, RSA)");
    let v = ca.ok(&[
        "verify",
        "-CAfile",
        p(&root),
        "-purpose",
        "smimeencrypt",
        "enc.pem",
    ]);
    assert!(v.stdout.contains("enc.pem: OK"), "{v}");
    cms_round_trip(&ca.dir, "enc.pem", &k3, "for Alice's eyes only\n");

    // p10cr: a PKCS#10 request for a second signing key, the CMP message signed with the first.
    let k2 = ca.ec_key("k2.pem");
    ca.ok(&[
        "req",
        "-new",
        "-key",
        p(&k2),
        "-subj",
        "/CN=Alice",
        "-out",
        "csr.pem",
    ]);
    let r = ca.cmp(&[
        "-cmd",
        "p10cr",
        "-cert",
        "new.pem",
        "-key",
        p(&k),
        "-csr",
        "csr.pem",
        "-certout",
        "p10.pem",
    ]);
    assert_enrolled(&r, "P10CR", "CP");
    let p10 = ca.path("p10.pem");
    ca.profile(&p10).assert_email(email, KU_SIGNING, "p10cr");
    assert_eq!(ca.public_key(&p10, true), ca.public_key(&k2, false));

    // kur: a new key for the ir certificate's address and profile.
    let k4 = ca.ec_key("k4.pem");
    let r = ca.cmp(&[
        "-cmd",
        "kur",
        "-cert",
        "new.pem",
        "-key",
        p(&k),
        "-newkey",
        p(&k4),
        "-certout",
        "kur.pem",
    ]);
    assert_enrolled(&r, "KUR", "KUP");
    let kur = ca.path("kur.pem");
    ca.profile(&kur).assert_email(email, KU_SIGNING, "kur");
    assert_eq!(ca.public_key(&kur, true), ca.public_key(&k4, false));
    assert_ne!(ca.serial(&kur), ca.serial(&new));

    // genm: the CA certificates, to anyone.
    let r = ca.cmp(&[
        "-cmd",
        "genm",
        "-infotype",
        "caCerts",
        "-unprotected_requests",
        "-ref",
        "anyone",
        "-rspout",
        "genp.der",
    ]);
    assert!(r.ok(), "{r}");
    let out = output(&r);
    assert!(out.contains("received GENP"), "{r}");
    assert!(
        out.contains("genp contains ITAV of type: id-it-caCerts"),
        "{r}"
    );
    // openssl 3.0 prints the infoType only (its -cacertsout saves an ip's caPubs, not a
    // genp's caCerts): the certificates are read from the genp it accepted.
    let ca_certs = genp_ca_certs(&read_file(&ca.path("genp.der")));
    assert!(
        ca_certs.contains(&pem_cert_der(&root)),
        "the CA's root is not among the {} caCerts",
        ca_certs.len()
    );

    // The directory: the four certificates; DER of one of them on request; 404 for others.
    let listed: BTreeSet<Vec<u8>> = ca.listed(email).into_iter().collect();
    let all: BTreeSet<Vec<u8>> = [&new, &enc, &p10, &kur]
        .into_iter()
        .map(|c| pem_cert_der(c))
        .collect();
    assert_eq!(listed, all, "directory after ir, cr, p10cr, kur");
    let der = ca.directory_der(email);
    assert_eq!(der.status, 200, "{}", der.text());
    assert_eq!(der.content_type.as_deref(), Some("application/pkix-cert"));
    let der_file = write_file(&ca.dir, "dir.der", &der.body);
    ca.ok(&["x509", "-inform", "DER", "-in", p(&der_file), "-noout"]);
    assert!(all.contains(&der.body), "the DER answer is one of the four");
    let unknown = ca.directory("nobody@example.org");
    assert_eq!(unknown.status, 404, "{}", unknown.text());

    // OCSP before the revocation: good, by POST and by GET.
    let before = ocsp_post(&ca, "p10.pem");
    assert!(before.contains("p10.pem: good"), "{before}");
    let text = ocsp_get(&ca, "p10.pem", "get-good");
    assert!(text.contains("Cert Status: good"), "{text}");

    // rr: the p10cr certificate revokes itself; a second time it is already revoked.
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-cert",
        "p10.pem",
        "-key",
        p(&k2),
        "-oldcert",
        "p10.pem",
    ]);
    assert!(r.ok(), "{r}");
    let out = output(&r);
    assert!(
        out.contains("sending RR") && out.contains("received RP"),
        "{r}"
    );
    assert!(
        out.contains("revocation accepted (PKIStatus=accepted)"),
        "{r}"
    );
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-cert",
        "p10.pem",
        "-key",
        p(&k2),
        "-oldcert",
        "p10.pem",
    ]);
    assert_refused(&r, "certRevoked", "revoked");

    // The directory drops it at once; the others stay.
    let listed: BTreeSet<Vec<u8>> = ca.listed(email).into_iter().collect();
    let mut remaining = all.clone();
    remaining.remove(&pem_cert_der(&p10));
    assert_eq!(listed, remaining, "directory after rr");

    // OCSP: revoked, by POST and GET; the others are still good.
    let after = ocsp_post(&ca, "p10.pem");
    assert!(after.contains("p10.pem: revoked"), "{after}");
    let text = ocsp_get(&ca, "p10.pem", "get-revoked");
    assert!(text.contains("Cert Status: revoked"), "{text}");
    let still = ocsp_post(&ca, "new.pem");
    assert!(still.contains("new.pem: good"), "{still}");

    // The CRL lists exactly the revoked serial, verifies, and makes openssl verify refuse it.
    let crl = get(&ca.url("crl"));
    assert_eq!(crl.status, 200);
    assert_eq!(crl.content_type.as_deref(), Some("application/pkix-crl"));
    let crl_der = write_file(&ca.dir, "crl.der", &crl.body);
    let c = ca.ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl_der),
        "-CAfile",
        p(&root),
        "-noout",
        "-text",
    ]);
    assert!(output(&c).contains("verify OK"), "CRL signature: {c}");
    let revoked_serial = ca.serial(&p10);
    assert!(
        c.stdout
            .contains(&format!("Serial Number: {revoked_serial}")),
        "CRL lacks {revoked_serial}: {c}"
    );
    assert_eq!(
        c.stdout.matches("Serial Number:").count(),
        1,
        "only the revoked certificate: {c}"
    );
    ca.ok(&[
        "crl",
        "-inform",
        "DER",
        "-in",
        p(&crl_der),
        "-out",
        "crl.pem",
    ]);
    let mut bundle = read_file(&root);
    bundle.extend(read_file(&ca.path("crl.pem")));
    write_file(&ca.dir, "root+crl.pem", &bundle);
    let v = openssl(
        &ca.dir,
        &["verify", "-crl_check", "-CAfile", "root+crl.pem", "p10.pem"],
    );
    assert!(!v.ok(), "a revoked certificate verified: {v}");
    assert!(output(&v).contains("certificate revoked"), "{v}");
    let v = ca.ok(&["verify", "-crl_check", "-CAfile", "root+crl.pem", "new.pem"]);
    assert!(v.stdout.contains("new.pem: OK"), "{v}");
}

#[test]
fn openssl_cmp_validates_signed_replies_against_a_trust_store() {
    let ca = Ca::start();
    let root = ca.root();
    let code = ca.code("bob@example.org");
    let k = ca.ec_key("k.pem");
    // The ip to an ir is MAC-protected with the enrolment secret, so openssl validates it with
    // the secret and -trusted plays no part (it says "PBM-based"); the signed replies are
    // checked below, on a cr.
    let r = ca.cmp(&[
        "-trusted",
        p(&root),
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k),
        "-subject",
        "/CN=Bob",
        "-certout",
        "bob.pem",
        "-verbosity",
        "7",
    ]);
    assert_enrolled(&r, "IR", "IP");
    assert!(
        output(&r).contains("successfully validated PBM-based CMP message protection"),
        "{r}"
    );

    // cr on the encryption profile: the cp and pkiconf are signed by the CA; openssl finds
    // the CA certificate (in extraCerts) and chains it to the -trusted root. An EC key gets
    // keyAgreement.
    let k2 = ca.ec_key("k2.pem");
    let cr = |trusted: &Path, out: &str| {
        ca.cmp_at(
            CMP_ENCRYPTION,
            &[
                "-trusted",
                p(trusted),
                "-cmd",
                "cr",
                "-cert",
                "bob.pem",
                "-key",
                p(&k),
                "-newkey",
                p(&k2),
                "-subject",
                "/CN=Bob",
                "-certout",
                out,
            ],
        )
    };
    let r = cr(&root, "enc.pem");
    assert_enrolled(&r, "CR", "CP");
    ca.profile(&ca.path("enc.pem")).assert_email(
        "bob@example.org",
        "Key Agreement",
        "cr (encryption, EC)",
    );
    // And CMS encryption to it works (ECDH).
    cms_round_trip(&ca.dir, "enc.pem", &k2, "for Bob\n");

    // Control: with another root in the store, the same signed reply is not accepted.
    let other = ca.path("other-root.pem");
    sigillum_tests::openssl_ca::self_signed_p256(
        &ca.dir,
        "other-root.key",
        p(&other),
        "/CN=Some Other Root",
        "2",
        &[],
    );
    let r = cr(&other, "untrusted.pem");
    assert_eq!(
        r.code,
        Some(1),
        "a reply from an untrusted CA accepted: {r}"
    );
    assert!(output(&r).contains("error validating protection"), "{r}");
    assert!(!ca.path("untrusted.pem").exists());
}

#[test]
fn implicit_confirm_enrols_without_certconf_and_publishes_at_once() {
    let ca = Ca::start();
    let code = ca.code("carol@example.org");
    let k = ca.ec_key("k.pem");
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-implicit_confirm",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k),
        "-subject",
        "/CN=Carol",
        "-certout",
        "carol.pem",
    ]);
    assert!(r.ok(), "{r}");
    let out = output(&r);
    assert!(out.contains("received IP"), "{r}");
    // openssl sends certConf unless the server granted implicitConfirm in its ip.
    assert!(!out.contains("CERTCONF"), "certConf sent: {r}");
    assert!(!out.contains("PKICONF"), "{r}");
    let cert = ca.path("carol.pem");
    ca.profile(&cert)
        .assert_email("carol@example.org", KU_SIGNING, "implicit ir");

    // Published and good at once, with no confirmation ever sent.
    assert_eq!(ca.listed("carol@example.org"), vec![pem_cert_der(&cert)]);
    let der = ca.directory_der("carol@example.org");
    assert_eq!(der.status, 200, "{}", der.text());
    assert_eq!(der.content_type.as_deref(), Some("application/pkix-cert"));
    assert_eq!(
        der.body,
        pem_cert_der(&cert),
        "the DER answer is the certificate"
    );
    let status = ocsp_post(&ca, "carol.pem");
    assert!(status.contains("carol.pem: good"), "{status}");
}

#[test]
fn a_wrong_mac_secret_or_unknown_reference_is_bad_message_check_and_issues_nothing() {
    let ca = Ca::start();
    let code = ca.code("dave@example.org");
    let k = ca.ec_key("k.pem");
    let ir = |reference: &str, secret: &str| {
        ca.cmp(&[
            "-cmd",
            "ir",
            "-ref",
            reference,
            "-secret",
            secret,
            "-newkey",
            p(&k),
            "-subject",
            "/CN=Dave",
            "-certout",
            "dave.pem",
        ])
    };
    // A secret of the right length, one character off.
    let mut wrong = code.secret.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = format!("pass:{}", String::from_utf8(wrong).expect("hex"));
    assert_refused(
        &ir(&code.reference, &wrong),
        "badMessageCheck",
        "the MAC does not verify",
    );
    assert_refused(
        &ir("000000000000", &code.pass()),
        "badMessageCheck",
        "unknown enrolment reference",
    );
    assert_eq!(ca.certificates_stored(), 0, "nothing issued");
    assert!(ca.listed("dave@example.org").is_empty());
    assert!(!ca.path("dave.pem").exists());
    // The failed attempts did not spend the code: the right secret still enrols.
    ca.enrol(&code, &k, "/CN=Dave", "dave.pem");
    assert_eq!(ca.certificates_stored(), 1);
}

#[test]
fn a_used_enrolment_code_is_not_authorized_and_issues_nothing() {
    let ca = Ca::start();
    let code = ca.code("erin@example.org");
    let k = ca.ec_key("k.pem");
    let first = ca.enrol(&code, &k, "/CN=Erin", "erin.pem");
    assert_eq!(ca.certificates_stored(), 1);
    let k2 = ca.ec_key("k2.pem");
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k2),
        "-subject",
        "/CN=Erin",
        "-certout",
        "second.pem",
    ]);
    assert_refused(&r, "notAuthorized", "the enrolment code was already used");
    assert_eq!(ca.certificates_stored(), 1, "nothing more issued");
    assert_eq!(ca.listed("erin@example.org"), vec![pem_cert_der(&first)]);
    assert!(!ca.path("second.pem").exists());
}

#[test]
fn an_expired_enrolment_code_is_not_authorized_and_issues_nothing() {
    let ca = Ca::start();
    let code = ca.code("frank@example.org");
    // No clock to move: the code's expiry is moved into the past in the archive instead.
    let db = ca.server.data_dir().join("archive.db");
    let r = run(Command::new("python3").args([
        "-c",
        "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]); \
         n=c.execute('update ca_enrolment_codes set expires_at = 0 where reference = ?', \
         (sys.argv[2],)).rowcount; \
         c.commit(); print(n)",
        p(&db),
        &code.reference,
    ]));
    r.assert_ok();
    assert_eq!(r.stdout.trim(), "1", "the code's row: {r}");
    let k = ca.ec_key("k.pem");
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k),
        "-subject",
        "/CN=Frank",
        "-certout",
        "frank.pem",
    ]);
    assert_refused(&r, "notAuthorized", "the enrolment code expired");
    assert_eq!(ca.certificates_stored(), 0);
    assert!(ca.listed("frank@example.org").is_empty());
}

#[test]
fn replayed_messages_are_refused_and_issue_nothing() {
    let ca = Ca::start();
    let email = "grace@example.org";
    let code = ca.code(email);
    let k = ca.ec_key("k.pem");
    // The ir and its certConf, saved as openssl sends them (and answered once).
    let r = ca.cmp(&[
        "-cmd",
        "ir",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-newkey",
        p(&k),
        "-subject",
        "/CN=Grace",
        "-certout",
        "grace.pem",
        "-reqout",
        "ir.der,ir-certconf.der",
    ]);
    assert_enrolled(&r, "IR", "IP");
    // A cr signed by that certificate, and its certConf.
    let k2 = ca.ec_key("k2.pem");
    let r = ca.cmp(&[
        "-cmd",
        "cr",
        "-cert",
        "grace.pem",
        "-key",
        p(&k),
        "-newkey",
        p(&k2),
        "-subject",
        "/CN=Grace",
        "-certout",
        "grace2.pem",
        "-reqout",
        "cr.der,cr-certconf.der",
    ]);
    assert_enrolled(&r, "CR", "CP");
    assert_eq!(ca.certificates_stored(), 2);
    let listed: BTreeSet<Vec<u8>> = ca.listed(email).into_iter().collect();
    assert_eq!(listed.len(), 2);

    // The replayed ir: its code is spent, which the server checks first (before the nonce).
    let reply = ca.post_cmp(PKIXCMP, &read_file(&ca.path("ir.der")));
    assert_cmp_error(
        &reply,
        NOT_AUTHORIZED,
        "the enrolment code was already used",
        "replayed ir",
    );
    // The replayed cr: its signer is still valid, so the senderNonce gives it away.
    let reply = ca.post_cmp(PKIXCMP, &read_file(&ca.path("cr.der")));
    assert_cmp_error(
        &reply,
        BAD_SENDER_NONCE,
        "senderNonce replayed",
        "replayed cr",
    );
    // The replayed certConfs too.
    for conf in ["ir-certconf.der", "cr-certconf.der"] {
        let reply = ca.post_cmp(PKIXCMP, &read_file(&ca.path(conf)));
        assert_cmp_error(&reply, BAD_SENDER_NONCE, "senderNonce replayed", conf);
    }
    assert_eq!(ca.certificates_stored(), 2, "no replay issued anything");
    assert_eq!(
        ca.listed(email).into_iter().collect::<BTreeSet<_>>(),
        listed
    );
}

#[test]
fn a_new_message_reusing_a_transaction_id_is_transaction_id_in_use_and_issues_nothing() {
    let ca = Ca::start();
    let email = "ivan@example.org";
    let (first, second) = (ca.code(email), ca.code(email));
    let (key, _) = RingSigner::generate_p256().expect("key");
    let spki = pki::signer::subject_public_key_info(&key).expect("public key");
    // An ir asking for implicit confirmation, as `stamp enroll` builds it.
    let ir = |code: &Code| {
        let mac = ClientProtection::Mac {
            reference: code.reference.as_bytes(),
            secret: code.secret.as_bytes(),
        };
        client::certificate_request(CertKind::Ir, &key, &spki, "Ivan", None, mac, true).expect("ir")
    };
    let granted = |sent: &Sent, code: &Code| {
        let reply = ca.post_cmp(PKIXCMP, &sent.der);
        assert_eq!(reply.status, 200);
        let answer = client::read_reply(&reply.body, sent, ReplyCheck::Mac(code.secret.as_bytes()))
            .expect("a reply to this ir");
        assert_eq!(
            (answer.body_type, &answer.refusal),
            (1, &None),
            "{answer:?}"
        );
        answer.certificate.expect("the certificate")
    };
    let one = ir(&first);
    let issued = granted(&one, &first);
    assert_eq!(ca.certificates_stored(), 1);

    // An ir with the second code, its own senderNonce and MAC, in the first ir's transaction.
    let two = ir(&second);
    assert_ne!(two.sender_nonce, one.sender_nonce);
    let reused = in_transaction(&two, &one.transaction_id, second.secret.as_bytes());
    let reply = ca.post_cmp(PKIXCMP, &reused);
    assert_cmp_error(
        &reply,
        TRANSACTION_ID_IN_USE,
        "transactionID already used",
        "a new ir in a used transaction",
    );
    assert_eq!(ca.certificates_stored(), 1, "nothing issued");
    assert_eq!(ca.listed(email), vec![issued.clone()]);

    // Nor was the second code spent: an ir with it in a transaction of its own is granted.
    let again = granted(&ir(&second), &second);
    assert_ne!(again, issued);
    assert_eq!(ca.certificates_stored(), 2);
}

#[test]
fn a_genm_for_the_root_ca_certificate_gets_a_root_ca_key_update_without_value() {
    let ca = Ca::start();
    let root = pem_cert_der(&ca.root());
    let ask = |info_type: &str| seq(&[&oid(info_type)]);
    // RFC 9483 §4.3.2, RFC 9810 §5.3.19.16: one root, never rolled over, so the answer is
    // id-it-rootCaKeyUpdate with its infoValue absent, and nothing else.
    let no_update = seq(&[&oid(ID_IT_ROOT_CA_KEY_UPDATE)]);
    let ca_certs = seq(&[&oid(ID_IT_CA_CERTS), &seq(&[&root])]);
    for (what, infos, answer) in [
        (
            "rootCaCert",
            vec![ask(ID_IT_ROOT_CA_CERT)],
            seq(&[&no_update]),
        ),
        (
            "rootCaCert naming the root the requester trusts",
            vec![seq(&[&oid(ID_IT_ROOT_CA_CERT), &root])],
            seq(&[&no_update]),
        ),
        (
            "caCerts and rootCaCert",
            vec![ask(ID_IT_CA_CERTS), ask(ID_IT_ROOT_CA_CERT)],
            seq(&[&ca_certs, &no_update]),
        ),
    ] {
        let (request, transaction_id, sender_nonce) = genm(&infos);
        let reply = ca.post_cmp(PKIXCMP, &request);
        assert_eq!(
            (reply.status, reply.content_type.as_deref()),
            (200, Some(PKIXCMP)),
            "{what}"
        );
        let m = pki::cmp::parse(&reply.body).expect("a PKIMessage");
        assert_eq!(m.body_type, 22, "{what}: not a genp: {:02x?}", reply.body);
        assert_eq!(m.body_content(), answer.as_slice(), "{what}: GenRepContent");
        assert_eq!(
            (m.transaction_id.as_deref(), m.recip_nonce.as_deref()),
            (Some(&transaction_id[..]), Some(&sender_nonce[..])),
            "{what}: the genm's transactionID and senderNonce"
        );
        assert_eq!(
            m.verify_signature().expect("protected"),
            Ok(root.as_slice()),
            "{what}: signed by the CA"
        );
    }
    assert_eq!(ca.certificates_stored(), 0);
}

#[test]
fn a_template_for_another_address_is_bad_cert_template_and_issues_nothing() {
    let ca = Ca::start();
    let code = ca.code("heidi@example.org");
    let k = ca.ec_key("k.pem");
    // openssl 3.0's -sans has no email: form (it would send a URI); an extensions section
    // puts a real rfc822Name in the template.
    write_file(
        &ca.dir,
        "mallory.cnf",
        b"[mallory]\nsubjectAltName = email:mallory@evil.example\n",
    );
    let pass = code.pass();
    let ir = |extra: &[&str], subject: &str| {
        let mut args = vec![
            "-config",
            "mallory.cnf",
            "-cmd",
            "ir",
            "-ref",
            &code.reference,
            "-secret",
            &pass,
            "-newkey",
            p(&k),
            "-subject",
            subject,
            "-certout",
            "mallory.pem",
        ];
        args.extend_from_slice(extra);
        // -config replaces the default configuration; the pinned root still comes from cmp_at.
        ca.cmp(&args)
    };
    let asked =
        "the request asks for mallory@evil.example, but the proven address is heidi@example.org";
    // In subjectAltName.
    assert_refused(
        &ir(&["-reqexts", "mallory"], "/CN=Heidi"),
        "badCertTemplate",
        asked,
    );
    // In the subject's emailAddress.
    assert_refused(
        &ir(&[], "/CN=Heidi/emailAddress=mallory@evil.example"),
        "badCertTemplate",
        asked,
    );
    // Any other name kind: openssl's -sans sends a DNS name (and `email:` as a URI).
    assert_refused(
        &ir(&["-sans", "mallory.evil.example"], "/CN=Heidi"),
        "badCertTemplate",
        "the request asks for DNS name mallory.evil.example; an email certificate binds only the proven address",
    );
    // In a PKCS#10 request (p10cr with the code).
    let k2 = ca.ec_key("k2.pem");
    ca.ok(&[
        "req",
        "-new",
        "-key",
        p(&k2),
        "-subj",
        "/CN=Heidi",
        "-addext",
        "subjectAltName=email:mallory@evil.example",
        "-out",
        "mallory.csr",
    ]);
    let r = ca.cmp(&[
        "-cmd",
        "p10cr",
        "-ref",
        &code.reference,
        "-secret",
        &code.pass(),
        "-csr",
        "mallory.csr",
        "-certout",
        "mallory.pem",
    ]);
    assert_refused(&r, "badCertTemplate", asked);
    assert_eq!(ca.certificates_stored(), 0);
    assert!(ca.listed("heidi@example.org").is_empty());
    assert!(ca.listed("mallory@evil.example").is_empty());
    assert!(!ca.path("mallory.pem").exists());
}

#[test]
fn malformed_der_gets_an_error_pkimessage_with_bad_data_format() {
    let ca = Ca::start();
    for (what, body) in [
        ("truncated SEQUENCE", &b"\x30\x03\x02\x01"[..]),
        ("an INTEGER", &b"\x02\x01\x00"[..]),
        ("empty", &b""[..]),
    ] {
        let reply = ca.post_cmp(PKIXCMP, body);
        assert_cmp_error(&reply, BAD_DATA_FORMAT, "does not parse", what);
    }
    assert_eq!(ca.certificates_stored(), 0);
}

#[test]
fn a_wrong_content_type_is_http_415_with_a_request_id_and_parameters_are_accepted() {
    let ca = Ca::start();
    let body = b"\x30\x03\x02\x01";
    // Control: with the right type the same bytes get a CMP error message in a 200.
    let right = ca.post_cmp(PKIXCMP, body);
    assert_eq!(right.status, 200);
    assert_eq!(right.content_type.as_deref(), Some(PKIXCMP));
    // A parameter after the media type is still the media type.
    let with_parameter = ca.post_cmp("application/pkixcmp; charset=binary", body);
    assert_eq!(with_parameter.status, 200, "{}", with_parameter.text());
    let mut replies = Vec::new();
    for media in [
        "application/octet-stream",
        "application/timestamp-query",
        "text/plain",
    ] {
        replies.push((media, ca.post_cmp(media, body)));
    }
    replies.push((
        "no Content-Type",
        post_without_content_type(&ca.url(".well-known/cmp"), body),
    ));
    for (media, reply) in replies {
        assert_eq!(reply.status, 415, "{media}: {}", reply.text());
        assert_eq!(
            reply.content_type.as_deref(),
            Some("application/json"),
            "{media}"
        );
        let json: serde_json::Value =
            serde_json::from_slice(&reply.body).unwrap_or_else(|e| panic!("{media}: {e}"));
        let id = json["request_id"].as_str().unwrap_or_default();
        assert!(!id.is_empty(), "{media}: no request_id in {json}");
        assert!(
            json["error"].as_str().is_some_and(|e| e.contains(PKIXCMP)),
            "{media}: {json}"
        );
    }
}

#[test]
fn a_missing_ra_verified_or_false_proof_of_possession_is_bad_pop_and_issues_nothing() {
    let ca = Ca::start();
    let email = "ivan@example.org";
    // One code for the refused irs, one for the certificate that signs the p10cr below.
    let code = ca.code(email);
    let k = ca.ec_key("k.pem");
    let signer = ca.enrol(&code, &k, "/CN=Ivan", "ivan.pem");
    assert_eq!(ca.certificates_stored(), 1);

    let code = ca.code(email);
    let k2 = ca.ec_key("k2.pem");
    for (popo, why) in [
        (
            "0",
            "raVerified: this CA is not behind a registration authority",
        ),
        ("-1", "no proof of possession"),
        (
            "2",
            "only signature proofs of possession are accepted (RFC 9483 §4.1.1)",
        ),
    ] {
        let r = ca.cmp(&[
            "-cmd",
            "ir",
            "-popo",
            popo,
            "-ref",
            &code.reference,
            "-secret",
            &code.pass(),
            "-newkey",
            p(&k2),
            "-subject",
            "/CN=Ivan",
            "-certout",
            "nopop.pem",
        ]);
        assert_refused(&r, "badPOP", why);
    }

    // A PKCS#10 request whose self-signature does not verify (one bit of it flipped), sent in a
    // p10cr that the signing certificate protects; openssl warns and sends it anyway.
    ca.ok(&[
        "req",
        "-new",
        "-key",
        p(&k2),
        "-subj",
        "/CN=Ivan",
        "-outform",
        "DER",
        "-out",
        "good.csr.der",
    ]);
    let mut csr = read_file(&ca.path("good.csr.der"));
    let last = csr.len() - 1;
    csr[last] ^= 0x01;
    write_file(&ca.dir, "bad.csr.der", &csr);
    ca.ok(&[
        "req",
        "-inform",
        "DER",
        "-in",
        "bad.csr.der",
        "-out",
        "bad.csr.pem",
    ]);
    // (openssl 3.0's req -verify exits 0 either way; its message tells.)
    let v = openssl(&ca.dir, &["req", "-in", "bad.csr.pem", "-verify", "-noout"]);
    assert!(
        output(&v).contains("self-signature verify failure"),
        "the damaged request still verifies: {v}"
    );
    let r = ca.cmp(&[
        "-cmd",
        "p10cr",
        "-cert",
        p(&signer),
        "-key",
        p(&k),
        "-csr",
        "bad.csr.pem",
        "-certout",
        "nopop.pem",
    ]);
    assert_refused(&r, "badPOP", "signature does not verify");

    assert_eq!(ca.certificates_stored(), 1, "nothing more issued");
    assert_eq!(ca.listed(email), vec![pem_cert_der(&signer)]);
    assert!(!ca.path("nopop.pem").exists());
}

#[test]
fn a_revoked_certificate_cannot_update_its_key_or_request_another() {
    let ca = Ca::start();
    let email = "judy@example.org";
    let code = ca.code(email);
    let k = ca.ec_key("k.pem");
    ca.enrol(&code, &k, "/CN=Judy", "judy.pem");
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-cert",
        "judy.pem",
        "-key",
        p(&k),
        "-oldcert",
        "judy.pem",
    ]);
    assert!(r.ok() && output(&r).contains("received RP"), "{r}");
    assert!(ca.listed(email).is_empty(), "revoked: out of the directory");

    let k2 = ca.ec_key("k2.pem");
    let r = ca.cmp(&[
        "-cmd",
        "kur",
        "-cert",
        "judy.pem",
        "-key",
        p(&k),
        "-newkey",
        p(&k2),
        "-certout",
        "kur.pem",
    ]);
    assert_refused(&r, "certRevoked", "the protecting certificate is revoked");
    let r = ca.cmp(&[
        "-cmd",
        "cr",
        "-cert",
        "judy.pem",
        "-key",
        p(&k),
        "-newkey",
        p(&k2),
        "-subject",
        "/CN=Judy",
        "-certout",
        "kur.pem",
    ]);
    assert_refused(&r, "certRevoked", "the protecting certificate is revoked");
    assert_eq!(ca.certificates_stored(), 1, "nothing more issued");
    assert!(ca.listed(email).is_empty());
    assert!(!ca.path("kur.pem").exists());
}

#[test]
fn a_certificate_from_another_ca_with_the_same_names_is_signer_not_trusted() {
    let ca = Ca::start();
    let root = ca.root();
    let email = "karl@example.org";
    let code = ca.code(email);
    let k = ca.ec_key("k.pem");
    let real = ca.enrol(&code, &k, "/CN=Karl", "karl.pem");

    // An impostor root with the real root's subject and key identifier, and a certificate
    // from it with the real certificate's subject, address and serial: only the signature
    // tells them apart.
    let subject = ca.ok(&[
        "x509",
        "-in",
        p(&root),
        "-noout",
        "-subject",
        "-nameopt",
        "compat",
    ]);
    let subject = subject
        .stdout
        .trim()
        .strip_prefix("subject=")
        .expect("subject=")
        .to_owned();
    let ski = ca.ok(&[
        "x509",
        "-in",
        p(&root),
        "-noout",
        "-ext",
        "subjectKeyIdentifier",
    ]);
    let ski = ski
        .stdout
        .lines()
        .last()
        .expect("SKI line")
        .trim()
        .to_owned();
    sigillum_tests::openssl_ca::self_signed_p256(
        &ca.dir,
        "impostor.key",
        "impostor.pem",
        &subject,
        "2",
        &[
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,digitalSignature",
            "-addext",
            &format!("subjectKeyIdentifier={ski}"),
        ],
    );
    let ke = ca.ec_key("ke.pem");
    ca.ok(&[
        "req",
        "-new",
        "-key",
        p(&ke),
        "-subj",
        "/CN=Karl",
        "-out",
        "fake.csr",
    ]);
    write_file(
        &ca.dir,
        "fake.ext",
        format!(
            "subjectAltName=email:{email}\nkeyUsage=critical,digitalSignature,nonRepudiation\n\
             extendedKeyUsage=emailProtection\nauthorityKeyIdentifier=keyid\n"
        )
        .as_bytes(),
    );
    let serial = ca.serial(&real);
    ca.ok(&[
        "x509",
        "-req",
        "-in",
        "fake.csr",
        "-CA",
        "impostor.pem",
        "-CAkey",
        "impostor.key",
        "-set_serial",
        &format!("0x{serial}"),
        "-days",
        "1",
        "-extfile",
        "fake.ext",
        "-out",
        "fake.pem",
    ]);
    let fake = ca.path("fake.pem");
    assert_eq!(ca.serial(&fake), serial, "the impostor copies the serial");
    let v = openssl(&ca.dir, &["verify", "-CAfile", p(&root), "fake.pem"]);
    assert!(
        !v.ok(),
        "the real root accepts the impostor's certificate: {v}"
    );

    let kn = ca.ec_key("kn.pem");
    let r = ca.cmp(&[
        "-cmd",
        "cr",
        "-cert",
        "fake.pem",
        "-key",
        p(&ke),
        "-newkey",
        p(&kn),
        "-subject",
        "/CN=Karl",
        "-certout",
        "stolen.pem",
    ]);
    assert_refused(
        &r,
        "signerNotTrusted",
        "the protecting certificate was not issued by this CA",
    );
    assert_eq!(ca.certificates_stored(), 1, "nothing more issued");
    assert_eq!(ca.listed(email), vec![pem_cert_der(&real)]);
    assert!(!ca.path("stolen.pem").exists());
}

#[test]
fn a_delegated_ocsp_responder_signs_and_openssl_accepts_it_under_the_root() {
    // The development PKI first, then a responder certificate the CA issues with openssl
    // (extendedKeyUsage OCSPSigning), then the server configured to sign OCSP with it.
    let work = tempfile::tempdir().expect("tempdir");
    let data = work.path().join("data");
    run(Command::new(tsa_bin())
        .arg("init")
        .arg("--data-dir")
        .arg(&data))
    .assert_ok();
    let root_key = data.join("root.key");
    let root = data.join("root.pem");
    ok(
        work.path(),
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-out",
            "ocsp.key",
        ],
    );
    ok(
        work.path(),
        &[
            "req",
            "-new",
            "-key",
            "ocsp.key",
            "-subj",
            "/CN=Sigillum OCSP Responder",
            "-out",
            "ocsp.csr",
        ],
    );
    write_file(
        work.path(),
        "ocsp.ext",
        b"extendedKeyUsage = OCSPSigning\nkeyUsage = critical, digitalSignature\nbasicConstraints = CA:FALSE\n",
    );
    ok(
        work.path(),
        &[
            "x509",
            "-req",
            "-in",
            "ocsp.csr",
            "-CA",
            p(&root),
            "-CAkey",
            p(&root_key),
            "-CAcreateserial",
            "-days",
            "30",
            "-extfile",
            "ocsp.ext",
            "-out",
            "ocsp.pem",
        ],
    );
    let config = format!(
        "allow_unsynced_clock = true\n\n[ca]\nocsp_key = \"{}\"\nocsp_certificate = \"{}\"\n",
        work.path().join("ocsp.key").display(),
        work.path().join("ocsp.pem").display()
    );
    let server = TsaServer::start_with(TsaOptions {
        config: Some(config),
        data_dir: Some(data.clone()),
        ..Default::default()
    });
    let dir = server.work_dir().join("cmp");
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ca = Ca { server, dir };
    let code = ca.code("olga@example.org");
    let k = ca.ec_key("k.pem");
    let cert = ca.enrol(&code, &k, "/CN=Olga", "olga.pem");
    let url = ca.url("ocsp");
    let r = ca.ok(&[
        "ocsp",
        "-issuer",
        p(&ca.root()),
        "-cert",
        p(&cert),
        "-url",
        &url,
        "-CAfile",
        p(&ca.root()),
        "-resp_text",
    ]);
    let all = format!("{}{}", r.stdout, r.stderr);
    assert!(all.contains("Response verify OK"), "{all}");
    assert!(all.contains("olga.pem: good"), "{all}");
    // The response names and carries the delegate, not the CA.
    assert!(all.contains("Subject: CN=Sigillum OCSP Responder"), "{all}");
    // A responder certificate without OCSPSigning is refused at start.
    let bad = run(Command::new(tsa_bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(&data)
        .arg("--listen")
        .arg("127.0.0.1:1")
        .arg("--config")
        .arg({
            let cfg = work.path().join("bad.toml");
            std::fs::write(
                &cfg,
                format!(
                    "allow_unsynced_clock = true\n\n[ca]\nocsp_key = \"{}\"\nocsp_certificate = \"{}\"\n",
                    root_key.display(),
                    root.display()
                ),
            )
            .expect("bad.toml");
            cfg
        })
        .env_remove("TSA_CONFIG"));
    assert_eq!(bad.code, Some(2), "{bad}");
    assert!(bad.stderr.contains("OCSPSigning"), "{}", bad.stderr);
}

#[test]
fn a_lost_key_is_revoked_with_a_fresh_code_and_key_compromise_takes_what_the_key_obtained() {
    let ca = Ca::start();
    let email = "peggy@example.org";
    let code = ca.code(email);
    let k = ca.ec_key("k.pem");
    let signing = ca.enrol(&code, &k, "/CN=Peggy", "peggy.pem");
    // The signing key obtains an encryption certificate (cr on the encryption profile).
    let k2 = ca.ec_key("k2.pem");
    let r = ca.cmp_at(
        "/.well-known/cmp/p/encryption",
        &[
            "-cmd",
            "cr",
            "-cert",
            p(&signing),
            "-key",
            p(&k),
            "-newkey",
            p(&k2),
            "-subject",
            "/CN=Peggy",
            "-certout",
            "enc.pem",
        ],
    );
    assert_enrolled(&r, "CR", "CP");
    assert_eq!(ca.listed(email).len(), 2);
    // The key is gone (a stolen laptop): the owner proves the address again and revokes the
    // signing certificate for keyCompromise, with the new code's MAC instead of the lost key.
    let fresh = ca.code(email);
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-ref",
        &fresh.reference,
        "-secret",
        &fresh.pass(),
        "-oldcert",
        p(&signing),
        "-revreason",
        "1",
    ]);
    assert!(r.ok() && output(&r).contains("received RP"), "{r}");
    // Both go: the encryption certificate the stolen key obtained too.
    assert!(ca.listed(email).is_empty(), "{:?}", ca.listed(email).len());
    for cert in [&signing, &ca.path("enc.pem")] {
        let url = ca.url("ocsp");
        let o = ca.ok(&[
            "ocsp",
            "-issuer",
            p(&ca.root()),
            "-cert",
            p(cert),
            "-url",
            &url,
            "-CAfile",
            p(&ca.root()),
        ]);
        assert!(
            o.stdout.contains(": revoked") && o.stdout.contains("Reason: keyCompromise"),
            "{o}"
        );
    }
    // The code worked once; a code for another address cannot revoke Peggy's certificates.
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-ref",
        &fresh.reference,
        "-secret",
        &fresh.pass(),
        "-oldcert",
        p(&signing),
    ]);
    assert_refused(&r, "notAuthorized", "already used");
    let other = ca.code("mallory@example.org");
    let k3 = ca.ec_key("k3.pem");
    let mallory = ca.enrol(&other, &k3, "/CN=Mallory", "mallory.pem");
    let other = ca.code("mallory@example.org");
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-ref",
        &other.reference,
        "-secret",
        &other.pass(),
        "-oldcert",
        p(&ca.path("enc.pem")),
    ]);
    assert_refused(
        &r,
        "badCertId",
        "no certificate with this serial for the proven address",
    );
    // And a certificate still revokes only itself.
    let code = ca.code(email);
    let k4 = ca.ec_key("k4.pem");
    let again = ca.enrol(&code, &k4, "/CN=Peggy", "again.pem");
    let r = ca.cmp(&[
        "-cmd",
        "rr",
        "-cert",
        p(&mallory),
        "-key",
        p(&k3),
        "-oldcert",
        p(&again),
    ]);
    assert_refused(&r, "notAuthorized", "a certificate may revoke only itself");
    assert_eq!(ca.listed(email).len(), 1);
}

#[test]
fn a_common_name_naming_another_address_or_repainting_text_is_bad_cert_template() {
    let ca = Ca::start();
    let code = ca.code("quinn@example.org");
    let k = ca.ec_key("k.pem");
    for (subject, why) in [
        ("/CN=ceo@bank.example", "looks like another address"),
        ("/CN=Quinn\u{202e}gpj.exe", "bidirectional-override"),
        // (A commonName over 64 characters openssl itself refuses to send; the server's
        // check is a unit test in tsa/src/ca.rs.)
    ] {
        let r = ca.cmp(&[
            "-cmd",
            "ir",
            "-ref",
            &code.reference,
            "-secret",
            &code.pass(),
            "-newkey",
            p(&k),
            "-subject",
            subject,
            "-certout",
            "x.pem",
        ]);
        assert_refused(&r, "badCertTemplate", why);
    }
    // The code was not spent by the refusals.
    let ok = ca.enrol(&code, &k, "/CN=quinn@example.org", "quinn.pem");
    assert!(ok.is_file());
    assert_eq!(ca.certificates_stored(), 1);
}
