//! S/MIME interop with tools that are not ours, on a mail CA and signers (ECDSA P-256 and
//! RSA-2048) made with the openssl CLI in each test's temp dir:
//!
//! - `openssl cms -verify` and `openssl smime -verify` accept what `stamp email sign` writes,
//!   detached and opaque, and output exactly the signed entity, whose decoded text and
//!   attachment equal the input's (LF line ends, 8-bit UTF-8, a "From " line, a binary
//!   attachment in multipart/mixed);
//! - openssl finds the signature timestamp among the unsigned attributes, and `openssl ts
//!   -verify -digest` (openssl, not our code, judges it) accepts the token over the SHA-256 of
//!   the SignerInfo's signature value;
//! - `stamp verify` accepts messages signed by `openssl cms -sign` (detached, opaque, and
//!   `-stream`: BER with indefinite lengths when opaque), `openssl smime -sign`, a detached
//!   BER signature (openssl's, its envelope re-encoded with indefinite lengths, which openssl
//!   accepts: openssl itself writes detached signatures in DER even with `-stream`), and
//!   Python `cryptography`'s PKCS7SignatureBuilder (tests/py/smime_sign.py), reporting the time
//!   as not proven; the same messages with their text changed are refused;
//! - an openssl signature with a token added afterwards (over its signature value, from the
//!   authority) still passes openssl, and `stamp verify` proves its time; moved to another
//!   signature, the token is refused.
//!
//! A missing openssl or python3/cryptography is a failure, not a skip: scripts/test.sh installs
//! them.

use base64::Engine;
use sigillum_tests::{Run, TsaServer, openssl, read_file, run, stamp, workspace_root, write_file};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The signer's address: in the certificates' subjectAltName and in the messages' From.
const ALICE: &str = "alice@example.com";

/// The body of the plain test message: 8-bit UTF-8 and a line starting with "From ", LF ends.
const PLAIN_BODY: &str = "Grüße aus Köln – naïve café, 東京.\n\
From the start of a line: an mbox writer would mangle this.\n\
Last line.\n";

/// The text part of the multipart/mixed test message.
const MIXED_TEXT: &str = "Anbei die Datei, grüße.\nFrom Alice, with love.\n";

fn p(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// One signer: its key (PKCS#8 PEM, as openssl writes it) and certificate.
struct Signer {
    name: &'static str,
    key: PathBuf,
    cert: PathBuf,
}

/// A mail CA and two end entities for alice@example.com.
struct MailPki {
    ca: PathBuf,
    signers: Vec<Signer>,
}

/// Runs openssl in `dir`; panics with `what` and openssl's output unless it exits 0.
fn openssl_ok(dir: &Path, args: &[&str], what: &str) -> Run {
    let run = openssl(dir, args);
    assert!(run.ok(), "{what}: {run}");
    run
}

/// The mail CA and an ECDSA P-256 and an RSA-2048 signer for alice@example.com, made by
/// openssl in `dir` (the shared test PKI of the email tests).
fn mail_pki(dir: &Path) -> MailPki {
    let shared = sigillum_tests::mail::MailPki::new(dir, "interop");
    let signers = ["ec", "rsa"]
        .into_iter()
        .map(|name| {
            let person = shared.person(ALICE, name);
            Signer {
                name,
                key: person.key,
                cert: person.cert,
            }
        })
        .collect();
    MailPki {
        ca: shared.ca,
        signers,
    }
}

/// LF line ends to CRLF (the text has no CR of its own).
fn crlf(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + text.len() / 16);
    for &b in text {
        if b == b'\n' {
            out.push(b'\r');
        }
        out.push(b);
    }
    out
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|i| i + from)
}

/// Splits a CRLF entity into its (unfolded) header block and its body.
fn split_entity(entity: &[u8]) -> (String, &[u8]) {
    let end = find(entity, b"\r\n\r\n", 0).unwrap_or_else(|| {
        panic!(
            "no CRLF CRLF after the headers of {:?}",
            String::from_utf8_lossy(entity)
        )
    });
    let head = String::from_utf8_lossy(&entity[..end])
        .replace("\r\n ", " ")
        .replace("\r\n\t", " ");
    (head, &entity[end + 4..])
}

/// The value of header `name` (case-insensitive) in an unfolded header block.
fn header(head: &str, name: &str) -> Option<String> {
    head.split("\r\n").find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_owned())
    })
}

/// The boundary parameter of a multipart Content-Type value.
fn boundary(content_type: &str) -> String {
    let at = content_type
        .to_ascii_lowercase()
        .find("boundary=")
        .unwrap_or_else(|| panic!("no boundary in {content_type:?}"));
    let rest = &content_type[at + "boundary=".len()..];
    match rest.strip_prefix('"') {
        Some(quoted) => quoted.split('"').next().unwrap_or_default().to_owned(),
        None => rest
            .split(|c: char| c == ';' || c.is_whitespace())
            .next()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// The body parts of a CRLF multipart body (RFC 2046 §5.1.1: the CRLF before a delimiter
/// belongs to the delimiter), preamble and epilogue left out.
fn multipart_parts(body: &[u8], boundary: &str) -> Vec<Vec<u8>> {
    let mut text = b"\r\n".to_vec();
    text.extend_from_slice(body);
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut parts = Vec::new();
    let mut at = find(&text, &delimiter, 0)
        .unwrap_or_else(|| panic!("no delimiter --{boundary} in the multipart body"));
    loop {
        let after = at + delimiter.len();
        if text[after..].starts_with(b"--") {
            return parts;
        }
        let start = find(&text, b"\r\n", after).expect("a delimiter line ends") + 2;
        let next = find(&text, &delimiter, start)
            .unwrap_or_else(|| panic!("no close delimiter --{boundary}--"));
        parts.push(text[start..next].to_vec());
        at = next;
    }
}

/// Quoted-printable (RFC 2045 §6.7) decoded: `=XX` and soft line breaks.
fn qp_decode(text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len());
    let mut i = 0;
    while i < text.len() {
        if text[i] == b'=' {
            if text[i + 1..].starts_with(b"\r\n") {
                i += 3;
                continue;
            }
            let hex = std::str::from_utf8(&text[i + 1..i + 3]).expect("=XX is ASCII");
            out.push(u8::from_str_radix(hex, 16).expect("=XX is hex"));
            i += 3;
        } else {
            out.push(text[i]);
            i += 1;
        }
    }
    out
}

/// The body of a part decoded by its Content-Transfer-Encoding.
fn decode_body(head: &str, body: &[u8]) -> Vec<u8> {
    let cte = header(head, "Content-Transfer-Encoding")
        .unwrap_or_default()
        .to_ascii_lowercase();
    match cte.as_str() {
        "quoted-printable" => qp_decode(body),
        "base64" => {
            let compact: Vec<u8> = body
                .iter()
                .copied()
                .filter(|b| !b.is_ascii_whitespace())
                .collect();
            base64::engine::general_purpose::STANDARD
                .decode(compact)
                .expect("base64 body")
        }
        _ => body.to_vec(),
    }
}

/// The first part of a multipart/signed message (CRLF): the entity the signature covers.
fn signed_entity(mail: &[u8]) -> Vec<u8> {
    let (head, body) = split_entity(mail);
    let ct = header(&head, "Content-Type").expect("Content-Type");
    assert!(
        ct.starts_with("multipart/signed"),
        "not multipart/signed: {ct}"
    );
    multipart_parts(body, &boundary(&ct))
        .into_iter()
        .next()
        .expect("a signed part")
}

/// Where the base64 CMS object of a signed message is: the lines (line ends stripped) and the
/// range of base64 lines after the header block of the application/[x-]pkcs7-signature part
/// (detached) or the application/[x-]pkcs7-mime entity (opaque). LF or CRLF line ends.
fn pkcs7_lines(text: &str) -> (Vec<&str>, std::ops::Range<usize>) {
    let lines: Vec<&str> = text.split('\n').map(|l| l.trim_end_matches('\r')).collect();
    let ct = lines
        .iter()
        .position(|l| {
            let l = l.to_ascii_lowercase();
            l.starts_with("content-type:")
                && !l.contains("multipart/")
                && (l.contains("pkcs7-signature") || l.contains("pkcs7-mime"))
        })
        .unwrap_or_else(|| panic!("no pkcs7 Content-Type in:\n{text}"));
    let blank = ct
        + lines[ct..]
            .iter()
            .position(|l| l.is_empty())
            .expect("head ends");
    let count = lines[blank + 1..]
        .iter()
        .take_while(|l| !l.is_empty() && !l.starts_with("--"))
        .count();
    (lines, blank + 1..blank + 1 + count)
}

/// The CMS object (DER or BER, as the message carries it) of a signed message.
fn pkcs7_der(mail: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(mail);
    let (lines, range) = pkcs7_lines(&text);
    base64::engine::general_purpose::STANDARD
        .decode(lines[range].concat())
        .expect("base64 CMS")
}

/// `mail` with its CMS object replaced by `cms` (base64, 64 columns), line ends kept as LF.
fn with_pkcs7(mail: &[u8], cms: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(mail);
    let (lines, range) = pkcs7_lines(&text);
    let b64 = base64::engine::general_purpose::STANDARD.encode(cms);
    let mut out: Vec<String> = lines[..range.start].iter().map(|l| l.to_string()).collect();
    out.extend(
        b64.as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned()),
    );
    out.extend(lines[range.end..].iter().map(|l| l.to_string()));
    out.join("\n").into_bytes()
}

/// The DER TLVs of `content`, each whole (definite lengths, one-byte tags: the CMS envelope).
fn tlvs(mut content: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    while !content.is_empty() {
        let first = content[1];
        let (header, len) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let n = usize::from(first & 0x7f);
            assert!(n > 0 && n <= 4, "a definite DER length, got {first:#04x}");
            let len = content[2..2 + n]
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            (2 + n, len)
        };
        out.push(&content[..header + len]);
        content = &content[header + len..];
    }
    out
}

/// `tag` with an indefinite length around `children`, closed by end-of-contents.
fn indefinite(tag: u8, children: &[Vec<u8>]) -> Vec<u8> {
    let mut out = vec![tag, 0x80];
    for c in children {
        out.extend_from_slice(c);
    }
    out.extend_from_slice(&[0, 0]);
    out
}

/// The content octets of a definite-length DER TLV.
fn content(tlv: &[u8]) -> &[u8] {
    let header = if tlv[1] < 0x80 {
        2
    } else {
        2 + usize::from(tlv[1] & 0x7f)
    };
    &tlv[header..]
}

/// A DER SignedData ContentInfo re-encoded as streaming encoders (gpgsm, `openssl cms -stream`
/// for opaque output) write it: ContentInfo, its [0], SignedData, encapContentInfo,
/// certificates and signerInfos with indefinite lengths. Certificates and SignerInfos (signed
/// bytes) are kept as they are.
fn ber_envelope(der: &[u8]) -> Vec<u8> {
    let ci = tlvs(content(der));
    assert_eq!(ci.len(), 2, "ContentInfo: contentType and [0]");
    let sd = tlvs(content(tlvs(content(ci[1]))[0]));
    let fields: Vec<Vec<u8>> = sd
        .iter()
        .map(|f| match f[0] {
            0x30 => indefinite(
                0x30,
                &tlvs(content(f))
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            ),
            0xa0 | 0x31 => indefinite(
                f[0],
                &tlvs(content(f))
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect::<Vec<_>>(),
            ),
            _ => f.to_vec(),
        })
        .collect();
    let signed_data = indefinite(0x30, &fields);
    indefinite(0x30, &[ci[0].to_vec(), indefinite(0xa0, &[signed_data])])
}

/// `openssl cms|smime -verify -in MAIL -CAfile CA -out OUT`: asserts "Verification successful"
/// and returns what openssl output as the signed content.
fn openssl_verify(dir: &Path, tool: &str, mail: &Path, ca: &Path, what: &str) -> Vec<u8> {
    let out = dir.join(format!(
        "{}.{tool}.out",
        mail.file_name().and_then(|n| n.to_str()).expect("name")
    ));
    let run = openssl(
        dir,
        &[
            tool,
            "-verify",
            "-in",
            p(mail),
            "-CAfile",
            p(ca),
            "-out",
            p(&out),
        ],
    );
    assert!(
        run.ok() && run.stderr.contains("Verification successful"),
        "openssl {tool} -verify must accept {what}: {run}"
    );
    read_file(&out)
}

/// `stamp email sign INPUT --key --cert --tsa URL -o OUT [--opaque]`.
fn stamp_sign(
    dir: &Path,
    server: &TsaServer,
    input: &Path,
    signer: &Signer,
    opaque: bool,
    out: &str,
) -> PathBuf {
    let url = server.url();
    let mut args = vec![
        "email",
        "sign",
        p(input),
        "--key",
        p(&signer.key),
        "--cert",
        p(&signer.cert),
        "--tsa",
        &url,
        "-o",
        out,
    ];
    if opaque {
        args.push("--opaque");
    }
    let run = stamp(dir, &args);
    assert!(
        run.ok(),
        "stamp email sign ({} key, opaque={opaque}): {run}",
        signer.name
    );
    dir.join(out)
}

/// `stamp verify MAIL --trust CA [--tsa-trust ROOT] --json`, asserting exit 0 and
/// `"verified": true`; returns the first signature's report.
fn stamp_verify_ok(
    dir: &Path,
    mail: &Path,
    ca: &Path,
    tsa_root: Option<&Path>,
    what: &str,
) -> serde_json::Value {
    let mut args = vec!["verify", p(mail), "--trust", p(ca), "--json"];
    if let Some(root) = tsa_root {
        args.extend_from_slice(&["--tsa-trust", p(root)]);
    }
    let run = stamp(dir, &args);
    assert_eq!(run.code, Some(0), "stamp verify must accept {what}: {run}");
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON report ({e}): {run}"));
    assert_eq!(report["verified"], true, "{what}: verified: {run}");
    assert_eq!(
        report["errors"].as_array().map(Vec::len),
        Some(0),
        "{what}: no errors: {run}"
    );
    let sigs = report["signatures"].as_array().expect("signatures[]");
    assert_eq!(sigs.len(), 1, "{what}: one signature: {run}");
    sigs[0].clone()
}

/// The outcome and detail of check `name` in a signature report.
fn check(sig: &serde_json::Value, name: &str) -> (String, String) {
    let found = sig["checks"]
        .as_array()
        .expect("checks[]")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name:?} in {sig:#}"));
    (
        found["outcome"].as_str().unwrap_or_default().to_owned(),
        found["detail"].as_str().unwrap_or_default().to_owned(),
    )
}

/// A foreign signature without a token: verified, time not proven (`signature-timestamp`
/// warning), and the checks that matter passed; none failed.
fn assert_verified_without_token(sig: &serde_json::Value, what: &str) {
    let (outcome, detail) = check(sig, "signature-timestamp");
    assert_eq!(
        outcome, "warning",
        "{what}: no token is a signature-timestamp warning ({detail}): {sig:#}"
    );
    assert!(
        sig["signature_timestamp"].is_null(),
        "{what}: no nested token report: {sig:#}"
    );
    for name in [
        "content-type",
        "message-digest",
        "signature",
        "certificate-path",
        "sender",
    ] {
        let (outcome, detail) = check(sig, name);
        assert_eq!(
            outcome, "passed",
            "{what}: check {name} ({detail}): {sig:#}"
        );
    }
    for c in sig["checks"].as_array().expect("checks[]") {
        assert_ne!(c["outcome"], "failed", "{what}: failed check {c}: {sig:#}");
    }
}

/// A detached message whose signed text was changed after signing ("Köln" to "Kiel"): `stamp
/// verify` must say not verified (exit 1) with a failed message-digest, or its "verified" above
/// would mean nothing.
fn assert_tampered_refused(dir: &Path, mail: &Path, ca: &Path, what: &str) {
    let bytes = read_file(mail);
    let at = find(&bytes, "Köln".as_bytes(), 0)
        .unwrap_or_else(|| panic!("{what}: the signed text is in the clear"));
    let mut tampered = bytes[..at].to_vec();
    tampered.extend_from_slice(b"Kiel");
    tampered.extend_from_slice(&bytes[at + "Köln".len()..]);
    let name = format!(
        "tampered-{}",
        mail.file_name().and_then(|n| n.to_str()).expect("name")
    );
    let tampered = write_file(dir, &name, &tampered);
    let run = stamp(dir, &["verify", p(&tampered), "--trust", p(ca), "--json"]);
    assert_eq!(
        run.code,
        Some(1),
        "{what}, text changed: not verified: {run}"
    );
    let report: serde_json::Value =
        serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("JSON report ({e}): {run}"));
    let (outcome, detail) = check(&report["signatures"][0], "message-digest");
    assert_eq!(
        outcome, "failed",
        "{what}, text changed: message-digest ({detail}): {run}"
    );
}

fn plain_message() -> Vec<u8> {
    format!(
        "From: Alice <{ALICE}>\n\
         To: Bob <bob@example.com>\n\
         Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\n\
         Message-ID: <email-interop-plain@example.com>\n\
         MIME-Version: 1.0\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         {PLAIN_BODY}"
    )
    .into_bytes()
}

/// Every byte value, four times: NUL, bare CR and LF, 8-bit.
fn attachment() -> Vec<u8> {
    (0..=255u8).cycle().take(1024).collect()
}

/// A multipart/mixed message with LF line ends: a UTF-8 text part with a "From " line and
/// `attachment()`, either base64 or raw (`Content-Transfer-Encoding: binary`).
fn mixed_message(raw_binary: bool) -> Vec<u8> {
    let mut m = format!(
        "From: Alice <{ALICE}>\n\
         To: bob@example.com\n\
         Subject: with attachment\n\
         Message-ID: <email-interop-mixed@example.com>\n\
         MIME-Version: 1.0\n\
         Content-Type: multipart/mixed; boundary=\"outer-7a1d\"\n\
         \n\
         This is a multi-part message in MIME format.\n\
         --outer-7a1d\n\
         Content-Type: text/plain; charset=utf-8\n\
         Content-Transfer-Encoding: 8bit\n\
         \n\
         {MIXED_TEXT}\n\
         --outer-7a1d\n\
         Content-Type: application/octet-stream; name=\"blob.bin\"\n\
         Content-Disposition: attachment; filename=\"blob.bin\"\n\
         Content-Transfer-Encoding: {}\n\
         \n",
        if raw_binary { "binary" } else { "base64" }
    )
    .into_bytes();
    if raw_binary {
        m.extend_from_slice(&attachment());
        m.push(b'\n');
    } else {
        let b64 = base64::engine::general_purpose::STANDARD.encode(attachment());
        for chunk in b64.as_bytes().chunks(76) {
            m.extend_from_slice(chunk);
            m.push(b'\n');
        }
    }
    m.extend_from_slice(b"--outer-7a1d--\n");
    m
}

/// The entity of the plain message as signed: text/plain, quoted-printable (the "From " line
/// and 8-bit text force it), decoding to the input body with CRLF line ends.
fn assert_plain_entity(entity: &[u8], what: &str) {
    let shown = String::from_utf8_lossy(entity);
    assert!(
        !shown.contains("\r\nFrom ") && !shown.starts_with("From "),
        "{what}: no line of the signed entity starts with \"From \":\n{shown}"
    );
    assert!(
        !entity.starts_with(b"\n") && !entity.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "{what}: the signed entity has CRLF line ends only:\n{shown}"
    );
    let (head, body) = split_entity(entity);
    let ct = header(&head, "Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("text/plain"),
        "{what}: Content-Type {ct}:\n{shown}"
    );
    assert_eq!(
        String::from_utf8_lossy(&decode_body(&head, body)),
        String::from_utf8_lossy(&crlf(PLAIN_BODY.as_bytes())),
        "{what}: the signed text decodes to the input body (CRLF):\n{shown}"
    );
}

/// The entity of the mixed message as signed: the text part decodes to `MIXED_TEXT` (CRLF)
/// and the attachment to `attachment()`, byte for byte.
fn assert_mixed_entity(entity: &[u8], what: &str) {
    let shown = String::from_utf8_lossy(entity);
    let (head, body) = split_entity(entity);
    let ct = header(&head, "Content-Type").unwrap_or_default();
    assert!(
        ct.starts_with("multipart/mixed"),
        "{what}: Content-Type {ct}:\n{shown}"
    );
    let parts = multipart_parts(body, &boundary(&ct));
    assert_eq!(parts.len(), 2, "{what}: two parts:\n{shown}");
    let (text_head, text_body) = split_entity(&parts[0]);
    assert_eq!(
        String::from_utf8_lossy(&decode_body(&text_head, text_body)),
        String::from_utf8_lossy(&crlf(MIXED_TEXT.as_bytes())),
        "{what}: the text part decodes to the input text (CRLF):\n{shown}"
    );
    let (att_head, att_body) = split_entity(&parts[1]);
    assert!(
        att_head.contains("blob.bin"),
        "{what}: second part is the attachment:\n{shown}"
    );
    assert!(
        decode_body(&att_head, att_body) == attachment(),
        "{what}: the attachment decodes to the input bytes exactly:\n{shown}"
    );
}

/// Signs `input` with both keys, detached and opaque, and checks each message with `openssl cms
/// -verify` and `openssl smime -verify`: accepted, and the content openssl outputs is the signed
/// entity (the first part of the detached message), which `check_entity` then decodes.
fn openssl_accepts_stamp_signed(
    server: &TsaServer,
    pki: &MailPki,
    input_name: &str,
    input: &[u8],
    check_entity: fn(&[u8], &str),
) {
    let dir = server.work_dir();
    let input = write_file(dir, input_name, input);
    for signer in &pki.signers {
        let detached = stamp_sign(
            dir,
            server,
            &input,
            signer,
            false,
            &format!("{input_name}.{}-detached.eml", signer.name),
        );
        let opaque = stamp_sign(
            dir,
            server,
            &input,
            signer,
            true,
            &format!("{input_name}.{}-opaque.eml", signer.name),
        );
        let entity = signed_entity(&read_file(&detached));
        check_entity(
            &entity,
            &format!(
                "{input_name}, {} key: the first part of multipart/signed",
                signer.name
            ),
        );
        for (mail, mode) in [(&detached, "detached"), (&opaque, "opaque")] {
            for tool in ["cms", "smime"] {
                let what = format!(
                    "{input_name} signed by stamp ({} key, {mode}), openssl {tool} -verify",
                    signer.name
                );
                let out = openssl_verify(dir, tool, mail, &pki.ca, &what);
                assert!(
                    out == entity,
                    "{what}: the content openssl outputs is the signed entity\n\
                     --- openssl -out ---\n{}\n--- signed entity ---\n{}",
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&entity)
                );
                check_entity(&out, &what);
            }
        }
    }
}

#[test]
fn openssl_verifies_stamp_signed_text_with_lf_8bit_and_from_line() {
    let server = TsaServer::start();
    let pki = mail_pki(server.work_dir());
    openssl_accepts_stamp_signed(
        &server,
        &pki,
        "plain.eml",
        &plain_message(),
        assert_plain_entity,
    );
}

#[test]
fn openssl_verifies_stamp_signed_multipart_mixed_with_binary_attachment() {
    let server = TsaServer::start();
    let pki = mail_pki(server.work_dir());
    openssl_accepts_stamp_signed(
        &server,
        &pki,
        "mixed-base64.eml",
        &mixed_message(false),
        assert_mixed_entity,
    );
    openssl_accepts_stamp_signed(
        &server,
        &pki,
        "mixed-binary.eml",
        &mixed_message(true),
        assert_mixed_entity,
    );
}

#[test]
fn signature_timestamp_is_an_unsigned_attribute_that_openssl_ts_verifies() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = mail_pki(dir);
    let input = write_file(dir, "plain.eml", &plain_message());
    let root = server.root_pem();
    for signer in &pki.signers {
        for opaque in [false, true] {
            let mode = if opaque { "opaque" } else { "detached" };
            let what = format!("stamp email sign, {} key, {mode}", signer.name);
            let mail = stamp_sign(
                dir,
                &server,
                &input,
                signer,
                opaque,
                &format!("ts-{}-{mode}.eml", signer.name),
            );
            // openssl extracts the CMS object and prints it: the token is an unsigned attribute.
            let p7 = dir.join(format!("ts-{}-{mode}.p7.der", signer.name));
            openssl_ok(
                dir,
                &[
                    "cms",
                    "-cmsout",
                    "-in",
                    p(&mail),
                    "-outform",
                    "DER",
                    "-out",
                    p(&p7),
                ],
                &format!("{what}: openssl cms -cmsout extracts the SignedData"),
            );
            let printed = openssl_ok(
                dir,
                &["cms", "-cmsout", "-print", "-inform", "DER", "-in", p(&p7)],
                &format!("{what}: openssl cms -cmsout -print"),
            );
            let text = &printed.stdout;
            let unsigned = text
                .find("unsignedAttrs:")
                .unwrap_or_else(|| panic!("{what}: no unsignedAttrs in openssl's print:\n{text}"));
            let token_attr = text
                .find("id-smime-aa-timeStampToken (1.2.840.113549.1.9.16.2.14)")
                .unwrap_or_else(|| {
                    panic!("{what}: no signatureTimeStampToken in openssl's print:\n{text}")
                });
            assert!(
                token_attr > unsigned,
                "{what}: the signatureTimeStampToken is among the unsigned attributes:\n{text}"
            );
            // The token and the signature value, from the bytes openssl extracted.
            let der = read_file(&p7);
            let sd = pki::cms::RawSignedData::parse(&der)
                .unwrap_or_else(|e| panic!("{what}: SignedData from openssl parses: {e}"));
            assert_eq!(sd.signer_infos.len(), 1, "{what}: one SignerInfo");
            let si = pki::signer_info::SignerInfoView::parse(sd.signer_infos[0].full)
                .unwrap_or_else(|e| panic!("{what}: SignerInfo parses: {e}"));
            assert_eq!(
                si.signature_timestamps.len(),
                1,
                "{what}: one signature timestamp"
            );
            let token = write_file(
                dir,
                &format!("ts-{}-{mode}.token.der", signer.name),
                &si.signature_timestamps[0],
            );
            let digest = ring::digest::digest(&ring::digest::SHA256, &si.signature);
            let digest_hex = hex::encode(digest.as_ref());
            let ts = openssl(
                dir,
                &[
                    "ts",
                    "-verify",
                    "-digest",
                    &digest_hex,
                    "-in",
                    p(&token),
                    "-token_in",
                    "-CAfile",
                    p(&root),
                ],
            );
            assert!(
                ts.ok() && ts.stdout.contains("Verification: OK"),
                "{what}: openssl ts -verify accepts the token over SHA-256(signature value) \
                 {digest_hex}: {ts}"
            );
            // The same token does not cover another value: openssl really compared the imprint.
            let mut other = digest.as_ref().to_vec();
            other[0] ^= 1;
            let other_hex = hex::encode(&other);
            let ts_other = openssl(
                dir,
                &[
                    "ts",
                    "-verify",
                    "-digest",
                    &other_hex,
                    "-in",
                    p(&token),
                    "-token_in",
                    "-CAfile",
                    p(&root),
                ],
            );
            assert!(
                !ts_other.stdout.contains("Verification: OK"),
                "{what}: openssl ts -verify must refuse the token for another digest: {ts_other}"
            );
            // And our own verifier, for the record: the time is proven.
            let sig = stamp_verify_ok(dir, &mail, &pki.ca, Some(&root), &what);
            let (outcome, detail) = check(&sig, "signature-timestamp");
            assert_eq!(
                outcome, "passed",
                "{what}: signature-timestamp ({detail}): {sig:#}"
            );
        }
    }
}

#[test]
fn stamp_verify_accepts_openssl_cms_and_smime_signed_messages() {
    let tmp = tempfile::Builder::new()
        .prefix("sigillum-email-interop-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path();
    let pki = mail_pki(dir);
    // A MIME entity (openssl signs it as is, canonicalised to CRLF); openssl's -from/-to/-subject
    // write the RFC 5322 headers in front of the S/MIME headers.
    let entity = write_file(
        dir,
        "entity.txt",
        format!(
            "Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\
             \n\
             {PLAIN_BODY}"
        )
        .as_bytes(),
    );
    // The third field: whether the CMS object is BER with indefinite lengths. openssl streams
    // only the content of a detached message: its application/pkcs7-signature is DER even
    // with -stream (SMIME_write_ASN1 writes the signature with B64_write_ASN1, not streamed),
    // and with -stream -outform DER|PEM openssl embeds the content whatever -nodetach says.
    // The detached BER case is covered below by re-encoding openssl's own signature.
    let variants: [(&str, &[&str], bool); 6] = [
        ("cms", &[], false),
        ("cms", &["-nodetach"], false),
        ("cms", &["-stream"], false),
        ("cms", &["-nodetach", "-stream"], true),
        ("smime", &[], false),
        ("smime", &["-nodetach"], false),
    ];
    for signer in &pki.signers {
        for (tool, extra, ber) in variants {
            let what = format!(
                "openssl {tool} -sign {} ({} key)",
                extra.join(" "),
                signer.name
            );
            let out = dir.join(format!(
                "openssl-{tool}-{}{}.eml",
                signer.name,
                extra.concat()
            ));
            let mut args = vec![
                tool,
                "-sign",
                "-in",
                p(&entity),
                "-signer",
                p(&signer.cert),
                "-inkey",
                p(&signer.key),
                "-certfile",
                p(&pki.ca),
                "-md",
                "sha256",
                "-from",
                ALICE,
                "-to",
                "bob@example.com",
                "-subject",
                "signed by openssl",
                "-out",
                p(&out),
            ];
            args.extend_from_slice(extra);
            openssl_ok(dir, &args, &what);
            let mail = read_file(&out);
            let head = String::from_utf8_lossy(&mail);
            assert!(
                head.lines().any(|l| l == format!("From: {ALICE}")),
                "{what}: openssl wrote the From header:\n{head}"
            );
            let opaque = extra.contains(&"-nodetach");
            assert_eq!(
                head.contains("multipart/signed"),
                !opaque,
                "{what}: detached is multipart/signed, opaque is not:\n{head}"
            );
            let cms = pkcs7_der(&mail);
            assert_eq!(
                cms.get(1) == Some(&0x80),
                ber,
                "{what}: the ContentInfo has an indefinite length exactly when streamed \
                 (BER), starts {:02x?}",
                &cms[..cms.len().min(4)]
            );
            let sig = stamp_verify_ok(dir, &out, &pki.ca, None, &what);
            assert_verified_without_token(&sig, &what);
            if !opaque {
                assert_tampered_refused(dir, &out, &pki.ca, &what);
            }
            if !opaque && tool == "cms" && extra.contains(&"-stream") {
                // A detached BER signature, as gpgsm writes one: openssl's signature with its
                // envelope re-encoded with indefinite lengths. openssl accepts it first.
                let what = format!("{what}, signature re-encoded as BER");
                let ber = ber_envelope(&cms);
                assert_eq!(&ber[..2], &[0x30, 0x80], "{what}: indefinite length");
                let ber_mail = write_file(
                    dir,
                    &format!("openssl-{tool}-{}-detached-ber.eml", signer.name),
                    &with_pkcs7(&mail, &ber),
                );
                assert_eq!(pkcs7_der(&read_file(&ber_mail)), ber, "{what}: written");
                let content = openssl_verify(dir, "cms", &ber_mail, &pki.ca, &what);
                assert!(
                    String::from_utf8_lossy(&content).contains("From the start of a line"),
                    "{what}: openssl outputs the signed text"
                );
                let sig = stamp_verify_ok(dir, &ber_mail, &pki.ca, None, &what);
                assert_verified_without_token(&sig, &what);
            }
        }
    }
}

#[test]
fn stamp_verify_accepts_python_cryptography_signed_messages() {
    let tmp = tempfile::Builder::new()
        .prefix("sigillum-email-interop-")
        .tempdir()
        .expect("temp dir");
    let dir = tmp.path();
    let pki = mail_pki(dir);
    let entity = write_file(
        dir,
        "entity.txt",
        format!(
            "Content-Type: text/plain; charset=utf-8\n\
             Content-Transfer-Encoding: 8bit\n\
             \n\
             {PLAIN_BODY}"
        )
        .as_bytes(),
    );
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let script = workspace_root().join("tests/py/smime_sign.py");
    for signer in &pki.signers {
        for mode in ["detached", "opaque"] {
            let what = format!(
                "Python cryptography PKCS7SignatureBuilder, {mode}, {} key",
                signer.name
            );
            let out = dir.join(format!("python-{}-{mode}.eml", signer.name));
            let signed = run(Command::new(&python)
                .current_dir(dir)
                .arg(&script)
                .arg(mode)
                .arg(&signer.key)
                .arg(&signer.cert)
                .arg(&pki.ca)
                .arg(&entity)
                .arg(&out)
                .args(["--header", &format!("From: Alice <{ALICE}>")])
                .args(["--header", "To: bob@example.com"])
                .args(["--header", "Subject: signed by Python cryptography"]));
            assert!(
                signed.ok() && signed.stdout.starts_with(&format!("OK {mode}")),
                "{what}: tests/py/smime_sign.py (python3 with cryptography is required; \
                 scripts/test.sh installs it): {signed}"
            );
            let sig = stamp_verify_ok(dir, &out, &pki.ca, None, &what);
            assert_verified_without_token(&sig, &what);
            if mode == "detached" {
                assert_tampered_refused(dir, &out, &pki.ca, &what);
            }
        }
    }
}

/// A message openssl signed (detached, no token) gets a signature timestamp afterwards, as an
/// archive would add one: the SignerInfo's signature value is stamped by the authority (`stamp
/// file` over a file holding those bytes, so the token's imprint is their SHA-256) and the
/// token is added as the unsigned attribute; openssl still verifies the message, `stamp
/// verify` proves its time, and the same token on another openssl signature is refused.
#[test]
fn stamp_verify_proves_the_time_of_an_openssl_signature_with_a_token_added() {
    let server = TsaServer::start();
    let dir = server.work_dir();
    let pki = mail_pki(dir);
    let signer = &pki.signers[0];
    let entity = write_file(
        dir,
        "entity.txt",
        format!("Content-Type: text/plain; charset=utf-8\n\n{PLAIN_BODY}").as_bytes(),
    );
    let sign = |name: &str| {
        let out = dir.join(name);
        openssl_ok(
            dir,
            &[
                "cms",
                "-sign",
                "-in",
                p(&entity),
                "-signer",
                p(&signer.cert),
                "-inkey",
                p(&signer.key),
                "-md",
                "sha256",
                "-from",
                ALICE,
                "-subject",
                "later stamped",
                "-out",
                p(&out),
            ],
            "openssl cms -sign",
        );
        read_file(&out)
    };
    let mail = sign("plain.eml");
    let cms = pkcs7_der(&mail);
    let raw = pki::cms::RawSignedData::parse(&cms).expect("SignedData");
    let signature = pki::signer_info::SignerInfoView::parse(raw.signer_infos[0].full)
        .expect("SignerInfo")
        .signature;
    let sig_file = write_file(dir, "signature.bin", &signature);
    stamp(dir, &["file", p(&sig_file), "--tsa", &server.url()]).assert_ok();
    let token =
        pki::token::ParsedToken::parse(&read_file(&dir.join("signature.bin.tsr"))).expect("token");
    let stamped = pki::cms::add_signature_timestamp(&cms, 0, &token).expect("token added");
    let stamped_mail = write_file(dir, "stamped.eml", &with_pkcs7(&mail, &stamped));

    openssl_verify(
        dir,
        "cms",
        &stamped_mail,
        &pki.ca,
        "openssl after the token was added",
    );
    let sig = stamp_verify_ok(
        dir,
        &stamped_mail,
        &pki.ca,
        Some(&server.root_pem()),
        "an openssl signature with a token added",
    );
    let (outcome, detail) = check(&sig, "signature-timestamp");
    assert_eq!(outcome, "passed", "{detail}: {sig:#}");
    assert_eq!(sig["times"]["checked_at_basis"], "proven", "{sig:#}");
    assert_eq!(sig["signature_timestamp"]["verified"], true, "{sig:#}");

    // The same token on another signature of the same text (ECDSA: another value) is refused.
    let other = sign("other.eml");
    let other_cms = pkcs7_der(&other);
    let moved = pki::cms::add_signature_timestamp(&other_cms, 0, &token).expect("token added");
    let moved_mail = write_file(dir, "moved.eml", &with_pkcs7(&other, &moved));
    let run = stamp(
        dir,
        &[
            "verify",
            p(&moved_mail),
            "--trust",
            p(&pki.ca),
            "--tsa-trust",
            p(&server.root_pem()),
            "--json",
        ],
    );
    run.assert_code(1);
    assert!(run.stdout.contains("imprint does not match"), "{run}");
}
