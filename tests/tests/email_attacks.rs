//! Signed email against its attackers ("Johnny, you are fired!", USENIX Security 2019, and the
//! CAdES-T classes): each tampering with a message that `stamp email sign` produced is refused
//! by `stamp verify` with exit 1 and a reason that names it, while the untouched message
//! verifies. Canonicalisation is checked on the way: LF-only 8-bit input, attachments, nested
//! multiparts and over-long lines come out 7-bit, CRLF and verifiable by openssl.

use pki::cms::RawSignedData;
use pki::signer_info::SignerInfoView;
use sigillum_tests::mail::{Detached, MailPki, Person, statement};
use sigillum_tests::{Run, TsaServer, openssl, read_file, stamp, write_file};
use std::path::{Path, PathBuf};

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

struct Fixture {
    server: TsaServer,
    pki: MailPki,
    alice: Person,
    trust: PathBuf,
}

fn fixture() -> Fixture {
    let server = TsaServer::start();
    let pki = MailPki::new(server.work_dir(), "bank");
    let alice = pki.person("alice@example.com", "ec");
    Fixture {
        trust: pki.ca.clone(),
        server,
        pki,
        alice,
    }
}

impl Fixture {
    fn dir(&self) -> &Path {
        self.server.work_dir()
    }

    /// Signs `message` as `who` and returns the signed bytes.
    fn sign(&self, name: &str, message: &[u8], who: &Person, extra: &[&str]) -> Vec<u8> {
        let input = write_file(self.dir(), &format!("{name}.in.eml"), message);
        let out = self.dir().join(format!("{name}.eml"));
        let mut args = vec![
            "email",
            "sign",
            p(&input),
            "--key",
            p(&who.key),
            "--cert",
            p(&who.cert),
            "--tsa",
        ];
        let url = self.server.url();
        args.push(&url);
        args.extend(["-o", p(&out)]);
        args.extend(extra);
        stamp(self.dir(), &args).assert_ok();
        read_file(&out)
    }

    /// `stamp verify --json` of `message`, with the TSA root as --tsa-trust.
    fn verify(&self, name: &str, message: &[u8]) -> (Run, serde_json::Value) {
        let path = write_file(self.dir(), &format!("{name}.check.eml"), message);
        let run = stamp(
            self.dir(),
            &[
                "verify",
                p(&path),
                "--trust",
                p(&self.trust),
                "--tsa-trust",
                p(&self.server.root_pem()),
                "--json",
            ],
        );
        let json = serde_json::from_str(&run.stdout).unwrap_or(serde_json::Value::Null);
        (run, json)
    }
}

/// The failed checks and report errors, as `name: detail` lines.
fn failures(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v["errors"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| e.as_str().map(|e| format!("error: {e}")))
        .collect();
    for s in v["signatures"].as_array().into_iter().flatten() {
        for c in s["checks"].as_array().into_iter().flatten() {
            if c["outcome"] != "passed" && c["outcome"] != "warning" {
                out.push(format!(
                    "{}: {}",
                    c["name"].as_str().unwrap_or(""),
                    c["detail"].as_str().unwrap_or("")
                ));
            }
        }
    }
    out
}

/// Asserts `message` is refused with exit 1 and a failure containing `reason`.
fn assert_refused(f: &Fixture, name: &str, message: &[u8], reason: &str) {
    let (run, json) = f.verify(name, message);
    run.assert_code(1);
    assert_eq!(json["verified"], false, "{name}: {run}");
    let fails = failures(&json);
    assert!(
        fails.iter().any(|l| l.contains(reason)),
        "{name}: expected a failure mentioning {reason:?}, got {fails:#?}"
    );
}

fn replace(haystack: &[u8], from: &str, to: &str) -> Vec<u8> {
    let text = String::from_utf8(haystack.to_vec()).expect("7-bit");
    assert!(text.contains(from), "{from:?} not in the message");
    text.replacen(from, to, 1).into_bytes()
}

/// A new SignedData ContentInfo with `signer_infos` and `certificates` in place of the ones of
/// `cms` (everything else as it was).
fn rebuild(cms: &[u8], certificates: &[&[u8]], signer_infos: &[&[u8]]) -> Vec<u8> {
    use sigillum_tests::der::{oid, seq, tlv};
    let raw = RawSignedData::parse(cms).expect("SignedData");
    let mut fields: Vec<Vec<u8>> = raw.fields[..3].iter().map(|f| f.full.to_vec()).collect();
    fields.push(tlv(0xa0, &certificates.concat()));
    fields.push(tlv(0x31, &signer_infos.concat()));
    let parts: Vec<&[u8]> = fields.iter().map(Vec::as_slice).collect();
    let sd = seq(&parts);
    seq(&[&oid("1.2.840.113549.1.7.2"), &tlv(0xa0, &sd)])
}

#[test]
fn a_signed_statement_verifies_and_each_tampering_is_refused() {
    let f = fixture();
    let original = statement("alice@example.com", 1);
    let signed = f.sign("s1", &original, &f.alice, &[]);
    let (run, json) = f.verify("good", &signed);
    run.assert_ok();
    assert_eq!(json["verified"], true, "{run}");
    let sig = &json["signatures"][0];
    assert_eq!(sig["signature_timestamp"]["verified"], true, "{run}");
    assert_eq!(sig["times"]["checked_at_basis"], "proven", "{run}");

    // Body changed (one digit of the balance).
    let body = replace(&signed, "1 234,56", "9 234,56");
    assert_refused(
        &f,
        "body",
        &body,
        "message-digest: messageDigest does not match",
    );

    // From changed to someone the certificate does not name.
    let from = replace(
        &signed,
        "From: Bank <alice@example.com>",
        "From: Bank <ceo@example.com>",
    );
    assert_refused(
        &f,
        "from",
        &from,
        "possible impersonation: From says ceo@example.com",
    );

    // A display name that shows another address than the one signed for.
    let shown = replace(
        &signed,
        "From: Bank <alice@example.com>",
        "From: \"ceo@example.com\" <alice@example.com>",
    );
    assert_refused(
        &f,
        "display-name",
        &shown,
        "the From display name shows ceo@example.com",
    );

    // A second From field beside the signer's (one client shows the first, another the second).
    let two = replace(&signed, "To: ", "From: ceo@example.com\r\nTo: ");
    assert_refused(&f, "two-from", &two, "2 From fields");

    // Signature replaced by the one of another message.
    let other = f.sign("s2", &statement("alice@example.com", 2), &f.alice, &[]);
    let d = Detached::split(&signed);
    let foreign = d.join(&Detached::split(&other).cms);
    assert_refused(
        &f,
        "replaced",
        &foreign,
        "message-digest: messageDigest does not match",
    );

    // The signed part wrapped in an unsigned multipart with a footer beside it.
    let split = signed
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("header end");
    let (headers, body) = signed.split_at(split + 4);
    let headers = String::from_utf8(headers.to_vec()).expect("ascii");
    let inner_ct_start = headers.find("Content-Type: multipart/signed").expect("ct");
    let mut wrapped = headers.as_bytes()[..inner_ct_start].to_vec();
    wrapped
        .extend_from_slice(b"Content-Type: multipart/mixed; boundary=\"wrap\"\r\n\r\n--wrap\r\n");
    wrapped.extend_from_slice(&headers.as_bytes()[inner_ct_start..]);
    wrapped.extend_from_slice(body);
    wrapped.extend_from_slice(
        b"\r\n--wrap\r\nContent-Type: text/plain\r\n\r\nYou are fired.\r\n--wrap--\r\n",
    );
    assert_refused(&f, "wrapped", &wrapped, "partially signed");

    // A third part slipped into the multipart/signed itself.
    let boundary = headers
        .split("boundary=\"")
        .nth(1)
        .and_then(|b| b.split('"').next())
        .expect("boundary")
        .to_owned();
    let closing = format!("\r\n--{boundary}--");
    let extra = replace(
        &signed,
        &closing,
        &format!("\r\n--{boundary}\r\nContent-Type: text/plain\r\n\r\nunsigned\r\n--{boundary}--"),
    );
    assert_refused(&f, "third-part", &extra, "multipart/signed with 3 parts");
}

#[test]
fn certificates_signers_and_tokens_that_do_not_belong_are_refused() {
    let f = fixture();
    let signed = f.sign("base", &statement("alice@example.com", 3), &f.alice, &[]);
    let d = Detached::split(&signed);
    let raw = RawSignedData::parse(&d.cms).expect("SignedData");
    let alice_si = raw.signer_infos[0].full;

    // Certificate swapped: Eve's certificate (same CA) in place of Alice's.
    let eve = f.pki.person("eve@example.com", "ec");
    let eve_der = pki::cert::load_certificates(&read_file(&eve.cert)).expect("cert")[0].clone();
    let swapped = rebuild(&d.cms, &[&eve_der], &[alice_si]);
    assert_refused(&f, "cert-swap", &d.join(&swapped), "signer-certificate");

    // A second SignerInfo added by someone else (Eve signs the same part; her SignerInfo and
    // certificate are appended): Eve is not the From address.
    let eve_signed = f.sign("eve", &statement("alice@example.com", 3), &eve, &[]);
    let eve_d = Detached::split(&eve_signed);
    let eve_raw = RawSignedData::parse(&eve_d.cms).expect("SignedData");
    let alice_cert = raw.certificates().expect("certs")[0];
    let both = rebuild(
        &d.cms,
        &[alice_cert, eve_raw.certificates().expect("certs")[0]],
        &[alice_si, eve_raw.signer_infos[0].full],
    );
    let (run, json) = f.verify("two-signers", &d.join(&both));
    run.assert_code(1);
    let sigs = json["signatures"].as_array().expect("signatures");
    assert_eq!(sigs.len(), 2, "{run}");
    assert_eq!(
        sigs[0]["verified"], true,
        "Alice's SignerInfo still verifies: {run}"
    );
    assert_eq!(sigs[1]["verified"], false, "{run}");
    assert!(
        failures(&json)
            .iter()
            .any(|l| l.contains("possible impersonation")),
        "{run}"
    );

    // A token moved from another message: over that message's signature value.
    let unstamped = f.sign(
        "plain",
        &statement("alice@example.com", 3),
        &f.alice,
        &["--no-timestamp"],
    );
    let (run, json) = f.verify("plain", &unstamped);
    run.assert_ok();
    let ts = json["signatures"][0]["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["name"] == "signature-timestamp")
        .expect("signature-timestamp check")
        .clone();
    assert_eq!(ts["outcome"], "warning", "{run}");
    assert!(
        ts["detail"].as_str().unwrap_or("").contains("not proven"),
        "{run}"
    );
    let plain_d = Detached::split(&unstamped);
    let other_token = SignerInfoView::parse(alice_si)
        .expect("SignerInfo")
        .signature_timestamps[0]
        .clone();
    let token = pki::token::ParsedToken::parse(&other_token).expect("token");
    let moved = pki::cms::add_signature_timestamp(&plain_d.cms, 0, &token).expect("added");
    assert_refused(
        &f,
        "moved-token",
        &plain_d.join(&moved),
        "imprint: the sha256 imprint does not match",
    );

    // A token over other data: a token for a file, from the same TSA.
    let data = write_file(f.dir(), "other.txt", b"some other data\n");
    stamp(f.dir(), &["file", p(&data), "--tsa", &f.server.url()]).assert_ok();
    let file_token =
        pki::token::ParsedToken::parse(&read_file(&f.dir().join("other.txt.tsr"))).expect("token");
    let over_other =
        pki::cms::add_signature_timestamp(&plain_d.cms, 0, &file_token).expect("added");
    assert_refused(
        &f,
        "other-data-token",
        &plain_d.join(&over_other),
        "signature-timestamp: the signature timestamp does not verify",
    );

    // A token from a TSA nobody trusts: another authority with its own root.
    let rogue = TsaServer::start();
    let rogue_signed = {
        let input = write_file(f.dir(), "rogue.in.eml", &statement("alice@example.com", 4));
        let out = f.dir().join("rogue.eml");
        stamp(
            f.dir(),
            &[
                "email",
                "sign",
                p(&input),
                "--key",
                p(&f.alice.key),
                "--cert",
                p(&f.alice.cert),
                "--tsa",
                &rogue.url(),
                "-o",
                p(&out),
            ],
        )
        .assert_ok();
        read_file(&out)
    };
    assert_refused(
        &f,
        "rogue-tsa",
        &rogue_signed,
        "the signature timestamp does not verify: certificate-path:",
    );
}

#[test]
fn canonicalised_messages_are_seven_bit_crlf_and_verify_with_openssl_and_stamp() {
    let f = fixture();
    let long = "long line ".repeat(120);
    let nested = format!(
        "From: alice@example.com\nTo: bob@example.org\nSubject: nested\n\
         Content-Type: multipart/mixed; boundary=\"outer\"\n\n\
         preamble\n--outer\nContent-Type: multipart/alternative; boundary=\"inner\"\n\n\
         --inner\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n\
         Grüße\n{long}\n--inner\nContent-Type: text/html; charset=utf-8\n\n<p>Grüße</p>\n\
         --inner--\n--outer\nContent-Type: application/octet-stream; name=\"a.bin\"\n\
         Content-Transfer-Encoding: binary\n\n"
    );
    let mut message = nested.into_bytes();
    message.extend_from_slice(&[0, 1, 2, 0xff, 0xfe, b'\n', b'\r', 0x80]);
    message.extend_from_slice(b"\n--outer--\n");
    for (name, extra) in [("nested", &[][..]), ("nested-opaque", &["--opaque"][..])] {
        let signed = f.sign(name, &message, &f.alice, extra);
        assert!(signed.iter().all(|b| *b < 0x80), "{name}: 7-bit");
        let text = String::from_utf8(signed.clone()).expect("ascii");
        assert!(
            !text.replace("\r\n", "").contains(['\r', '\n']),
            "{name}: CRLF only"
        );
        assert!(
            text.split("\r\n").all(|l| l.len() <= 998),
            "{name}: short lines"
        );
        let (run, json) = f.verify(name, &signed);
        run.assert_ok();
        assert_eq!(json["verified"], true, "{name}: {run}");
        let path = f.dir().join(format!("{name}.eml"));
        let content = f.dir().join(format!("{name}.content"));
        let v = openssl(
            f.dir(),
            &[
                "cms",
                "-verify",
                "-in",
                p(&path),
                "-CAfile",
                p(&f.trust),
                "-out",
                p(&content),
            ],
        );
        assert!(v.stderr.contains("Verification successful"), "{name}: {v}");
        let shown = String::from_utf8_lossy(&read_file(&content)).into_owned();
        assert!(shown.contains("Gr=C3=BC=C3=9Fe"), "{name}: {shown}");
        assert!(
            shown.contains("AAEC//4KDYA="),
            "{name}: the binary part: {shown}"
        );
    }
}

#[test]
fn a_pkcs12_p384_key_signs_with_sha384_and_bad_keys_or_inputs_get_clear_errors() {
    let f = fixture();
    let dir = f.dir();
    let p384 = f.pki.person("alice@example.com", "p384");
    let p12 = dir.join("alice.p12");
    let pw = write_file(dir, "pw.txt", b"correct horse\n");
    sigillum_tests::openssl(
        dir,
        &[
            "pkcs12",
            "-export",
            "-inkey",
            p(&p384.key),
            "-in",
            p(&p384.cert),
            "-certfile",
            p(&f.pki.ca),
            "-passout",
            &format!("file:{}", p(&pw)),
            "-out",
            p(&p12),
        ],
    )
    .assert_ok();
    let input = write_file(dir, "p12.in.eml", &statement("alice@example.com", 7));
    let out = dir.join("p12.eml");
    let url = f.server.url();
    // The certificate comes from the PKCS#12 file; the password from --pass-file.
    stamp(
        dir,
        &[
            "email",
            "sign",
            p(&input),
            "--key",
            p(&p12),
            "--pass-file",
            p(&pw),
            "--tsa",
            &url,
            "-o",
            p(&out),
        ],
    )
    .assert_ok();
    let signed = read_file(&out);
    let text = String::from_utf8_lossy(&signed).into_owned();
    assert!(text.contains("micalg=sha-384"), "{text}");
    let (run, json) = f.verify("p12", &signed);
    run.assert_ok();
    assert_eq!(
        json["signatures"][0]["signature_algorithm"],
        "ecdsa-p384-sha384"
    );
    let v = openssl(
        dir,
        &[
            "cms",
            "-verify",
            "-in",
            p(&out),
            "-CAfile",
            p(&f.trust),
            "-out",
            "/dev/null",
        ],
    );
    assert!(v.stderr.contains("Verification successful"), "{v}");

    // A wrong password: exit 2, said plainly, no output.
    let bad_pw = write_file(dir, "bad.txt", b"wrong\n");
    let out2 = dir.join("p12-bad.eml");
    let run = stamp(
        dir,
        &[
            "email",
            "sign",
            p(&input),
            "--key",
            p(&p12),
            "--pass-file",
            p(&bad_pw),
            "--tsa",
            &url,
            "-o",
            p(&out2),
        ],
    );
    run.assert_code(2);
    assert!(run.stderr.contains("wrong password"), "{run}");
    assert!(!out2.exists());

    // A certificate of another key: exit 2, named.
    let run = stamp(
        dir,
        &[
            "email",
            "sign",
            p(&input),
            "--key",
            p(&f.alice.key),
            "--cert",
            p(&p384.cert),
            "--tsa",
            &url,
            "-o",
            p(&out2),
        ],
    );
    run.assert_code(2);
    assert!(run.stderr.contains("does not belong to the key"), "{run}");
    assert!(!out2.exists());

    // An authority that does not answer: exit 2 with the hint, no output.
    let run = stamp(
        dir,
        &[
            "email",
            "sign",
            p(&input),
            "--key",
            p(&f.alice.key),
            "--cert",
            p(&f.alice.cert),
            "--tsa",
            "http://127.0.0.1:9/",
            "--timeout",
            "2",
            "-o",
            p(&out2),
        ],
    );
    run.assert_code(2);
    assert!(
        run.stderr.contains("cannot obtain a signature timestamp"),
        "{run}"
    );
    assert!(
        run.stderr.contains("hint: is the authority running?"),
        "{run}"
    );
    assert!(!out2.exists());

    // Unreadable message: exit 2; a message whose signature is garbage: exit 1, named.
    let missing = dir.join("missing.eml");
    let run = stamp(dir, &["verify", p(&missing), "--trust", p(&f.trust)]);
    run.assert_code(2);
    let garbage = replace(&signed, "MII", "XYZ");
    let (run, json) = f.verify("garbage", &garbage);
    run.assert_code(1);
    assert!(
        failures(&json)
            .iter()
            .any(|l| l.contains("malformed signature")),
        "{run}"
    );
}
