//! Hostile tokens through the real `stamp` binary (and openssl, where it has an opinion): a
//! multi-megabyte token must not hang `stamp verify`, attacker text must not repaint the
//! terminal, and trust anchors whose own constraints forbid the path fail in both tools.

use pki::hostile::{self, Chain, ChainSpec};
use sigillum_tests::{CannedServer, openssl, read_file, stamp, stamp_bin, write_file};
use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DATA: &[u8] = b"hostile data\n";
/// The repaint attack: erase the line, return to its start, print a verdict, end the line.
const EVIL: &str = "\u{1b}[2K\rVERIFIED\n";

/// Runs `stamp ARGS` in `dir`, killing it after 60 s: a hang guard, not a performance limit.
fn stamp_within_60s(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(stamp_bin())
        .current_dir(dir)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn stamp");
    // Read both pipes while it runs, so a chatty child cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let stderr = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let out = stdout.join().expect("stdout");
            let err = stderr.join().expect("stderr");
            return (status.code(), format!("{out}\n--- stderr ---\n{err}"));
        }
        if start.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("stamp {args:?} did not finish within 60 s: unbounded work");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `stamp verify data.txt --trust root.pem -v` on a token over other data: it must say NOT
/// VERIFIED on its first line, whatever the token's text tries.
fn verify_other_data(dir: &Path, chain: &Chain) -> sigillum_tests::Run {
    setup(dir, chain, &chain.token(b"other data").expect("token"));
    let run = stamp(dir, &["verify", "data.txt", "--trust", "root.pem", "-v"]);
    run.assert_code(1);
    assert!(run.stdout.starts_with("data.txt: NOT VERIFIED\n"), "{run}");
    run
}

fn setup(dir: &Path, chain: &Chain, token: &[u8]) {
    write_file(dir, "data.txt", DATA);
    write_file(dir, "data.txt.tsr", token);
    let pem = pki::cert::to_pem(std::slice::from_ref(&chain.root)).expect("pem");
    write_file(dir, "root.pem", pem.as_bytes());
}

/// Why: `stamp verify` of a 4.5 MB token (300 000 appended unsigned attributes) took minutes;
/// it must finish, and verify, since unsigned attributes are not signed.
#[test]
fn stamp_verify_of_a_token_with_300k_unsigned_attributes_finishes_and_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&ChainSpec::default()).expect("chain");
    let token = hostile::with_unsigned_attributes(&chain.token(DATA).expect("token"), 300_000)
        .expect("hostile");
    setup(dir.path(), &chain, &token);
    let (code, out) = stamp_within_60s(dir.path(), &["verify", "data.txt", "--trust", "root.pem"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("data.txt: VERIFIED"), "{out}");
    let (code, out) = stamp_within_60s(dir.path(), &["inspect", "data.txt.tsr"]);
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("and 299984 more (not listed)"), "{out}");
}

/// Why: a bag certificate with a 100 000-AVA RDN must not stop `stamp verify` either.
#[test]
fn stamp_verify_of_a_token_with_a_huge_rdn_bag_certificate_finishes_and_verifies() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&ChainSpec::default()).expect("chain");
    let huge = hostile::with_huge_rdn(&chain.tsa, 100_000).expect("huge");
    let token = hostile::with_prepended_certificates(&chain.token(DATA).expect("token"), &[huge])
        .expect("hostile");
    setup(dir.path(), &chain, &token);
    let (code, out) = stamp_within_60s(dir.path(), &["verify", "data.txt", "--trust", "root.pem"]);
    assert_eq!(code, Some(0), "{out}");
}

fn assert_inert(out: &str) {
    assert!(
        !out.contains('\u{1b}') && !out.contains('\r'),
        "raw control characters in human output: {out:?}"
    );
    assert!(out.contains("\\x1b[2K\\x0dVERIFIED\\x0a"), "{out}");
}

/// Why: a TSA name holding "ESC[2K CR VERIFIED LF" must not repaint NOT VERIFIED (in the TSA
/// name line, the tsa-name check's detail and `stamp inspect`); JSON keeps the exact text.
#[test]
fn a_tsa_name_with_terminal_escapes_renders_escaped_and_json_stays_exact() {
    use x509_cert::ext::pkix::name::GeneralName;
    let dir = tempfile::tempdir().expect("tmp");
    let mut chain = Chain::generate(&ChainSpec::default()).expect("chain");
    chain.issuer = chain
        .issuer
        .with_tsa_name(GeneralName::DnsName(
            der::asn1::Ia5String::new(EVIL).expect("IA5 admits control characters"),
        ))
        .expect("issuer");
    let run = verify_other_data(dir.path(), &chain);
    assert_inert(&run.stdout);
    for prefix in ["  TSA name ", "    [warn] tsa-name"] {
        assert!(
            run.stdout
                .lines()
                .any(|l| l.starts_with(prefix) && l.contains("\\x1b[2K\\x0dVERIFIED\\x0a")),
            "{prefix}: {run}"
        );
    }
    let inspect = stamp(dir.path(), &["inspect", "data.txt.tsr"]);
    inspect.assert_ok();
    assert_inert(&inspect.stdout);
    let json = stamp(
        dir.path(),
        &["verify", "data.txt", "--trust", "root.pem", "--json"],
    );
    let report: serde_json::Value = serde_json::from_str(&json.stdout).expect("json");
    let tsa = report["signatures"][0]["timestamp"]["tsa_name"]
        .as_str()
        .expect("tsa name");
    assert_eq!(tsa, format!("DNS:{EVIL}"), "JSON must keep the exact text");
}

/// Why: certificate DNs are shown in RFC 4514 form, whose hex escapes already make control
/// characters inert; the output must stay free of them.
#[test]
fn a_subject_dn_with_terminal_escapes_renders_inert() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&ChainSpec {
        tsa_common_name: EVIL.into(),
        ..Default::default()
    })
    .expect("chain");
    let run = verify_other_data(dir.path(), &chain);
    assert!(
        !run.stdout.contains('\u{1b}') && !run.stdout.contains('\r'),
        "{run}"
    );
    assert!(run.stdout.contains("CN=\\1b[2K\\0dVERIFIED\\0a"), "{run}");
}

fn rejection_with_evil_text() -> Vec<u8> {
    pki::tsp::rejection_response(pki::asn1::FailureInfo::BadAlg, EVIL).expect("rejection")
}

/// Why: statusString is the authority's free text: `stamp inspect`, the report's errors and
/// the error printer must all escape it.
#[test]
fn a_status_string_with_terminal_escapes_renders_escaped_everywhere() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&ChainSpec::default()).expect("chain");
    setup(dir.path(), &chain, &rejection_with_evil_text());
    let inspect = stamp(dir.path(), &["inspect", "data.txt.tsr"]);
    assert_inert(&inspect.stdout);
    let verify = stamp(dir.path(), &["verify", "data.txt", "--trust", "root.pem"]);
    verify.assert_code(1);
    assert_inert(&verify.stdout);
    // A rejection that carries a token: refused by the parser, through the error printer.
    let chain_token = chain.token(DATA).expect("token");
    let status = [0x02, 0x01, 0x02];
    let text = pki::raw::tlv(der::Tag::Utf8String, &[EVIL.as_bytes()]).expect("text");
    let free = pki::raw::tlv(der::Tag::Sequence, &[&text]).expect("free text");
    let info = pki::raw::tlv(der::Tag::Sequence, &[&status, &free]).expect("info");
    let resp = pki::raw::tlv(der::Tag::Sequence, &[&info, &chain_token]).expect("resp");
    write_file(dir.path(), "rejected.tsr", &resp);
    let inspect = stamp(dir.path(), &["inspect", "rejected.tsr"]);
    inspect.assert_code(2);
    assert!(inspect.stderr.contains("§2.4.2"), "{inspect}");
    assert_inert(&inspect.stderr);
    assert_inert(&inspect.stdout);
}

/// Why: `stamp file` verified a hostile reply (a genuine token with 60 000 appended unsigned
/// attributes, under the 1 MiB reply limit) for minutes, past --timeout; it must finish and
/// keep the reply.
#[test]
fn stamp_file_checks_a_hostile_granted_reply_in_bounded_time() {
    let dir = tempfile::tempdir().expect("tmp");
    write_file(dir.path(), "data.txt", DATA);
    let chain = Chain::generate(&ChainSpec::default()).expect("chain");
    let token = hostile::with_unsigned_attributes(&chain.token(DATA).expect("token"), 60_000)
        .expect("hostile");
    let reply = pki::tsp::granted_response(&token).expect("reply");
    assert!(reply.len() > 800_000 && reply.len() < 1 << 20);
    let server = CannedServer::start(200, "application/timestamp-reply", reply.clone(), 1);
    let url = server.url();
    let (code, out) = stamp_within_60s(
        dir.path(),
        &[
            "file",
            "data.txt",
            "--tsa",
            &url,
            "--no-nonce",
            "--timeout",
            "30",
        ],
    );
    drop(server);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(read_file(&dir.path().join("data.txt.tsr")), reply);
}

/// Why: `stamp verify --strict` makes a weak-algorithm warning (a SHA-1 imprint) exit 1; without
/// it the token verifies with a warning that says weak.
#[test]
fn stamp_verify_strict_fails_on_a_sha1_token() {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&ChainSpec::default()).expect("chain");
    let req = pki::tsp::build_request(
        pki::HashAlg::Sha1,
        &pki::HashAlg::Sha1.digest(DATA),
        None,
        true,
        None,
    )
    .expect("request");
    let policy = pki::tsp::RequestPolicy::new(pki::oid::DEV_POLICY).dangerous_allow_sha1();
    let checked = pki::tsp::check_request(&req, &policy).expect("accepted");
    let token = chain
        .issuer
        .issue(
            &checked,
            &[7],
            pki::gentime::GenTime::now_millis().expect("clock"),
        )
        .expect("token");
    setup(dir.path(), &chain, &token);
    let lax = stamp(dir.path(), &["verify", "data.txt", "--trust", "root.pem"]);
    lax.assert_code(0);
    assert!(
        lax.stdout.contains("warning") && lax.stdout.contains("weak"),
        "{lax}"
    );
    let strict = stamp(
        dir.path(),
        &["verify", "data.txt", "--trust", "root.pem", "--strict"],
    );
    strict.assert_code(1);
    assert!(strict.stdout.contains("--strict"), "{strict}");
}

/// Why: `stamp file` prints an authority's rejection text; it must be escaped too.
#[test]
fn stamp_file_escapes_a_rejection_status_string() {
    let dir = tempfile::tempdir().expect("tmp");
    write_file(dir.path(), "data.txt", DATA);
    let server = CannedServer::start(
        200,
        "application/timestamp-reply",
        rejection_with_evil_text(),
        1,
    );
    let run = stamp(dir.path(), &["file", "data.txt", "--tsa", &server.url()]);
    drop(server);
    run.assert_code(1);
    assert_inert(&run.stderr);
}

fn openssl_verdict(dir: &Path) -> (bool, String) {
    let run = openssl(
        dir,
        &[
            "ts",
            "-verify",
            "-data",
            "data.txt",
            "-in",
            "token.der",
            "-token_in",
            "-CAfile",
            "root.pem",
        ],
    );
    (run.stdout.contains("Verification: OK"), format!("{run}"))
}

/// Why: anchors that forbid the path (pathLen 0 above an intermediate, expired, keyUsage
/// without keyCertSign, basicConstraints cA FALSE) fail in `stamp verify` and in `openssl ts
/// -verify`, and an honest one passes in both, so the two tools agree.
#[test]
fn anchor_constraints_are_honoured_as_openssl_honours_them() {
    let cases: [(&str, ChainSpec, bool); 5] = [
        ("honest root", ChainSpec::default(), true),
        (
            "pathLen 0",
            ChainSpec {
                path_len: Some(0),
                ..Default::default()
            },
            false,
        ),
        (
            "expired",
            ChainSpec {
                not_after: time::Duration::days(-1),
                ..Default::default()
            },
            false,
        ),
        (
            "no keyCertSign",
            ChainSpec {
                key_usages: vec![rcgen::KeyUsagePurpose::DigitalSignature],
                ..Default::default()
            },
            false,
        ),
        (
            "cA FALSE",
            ChainSpec {
                root_not_ca: true,
                key_usages: Vec::new(),
                ..Default::default()
            },
            false,
        ),
    ];
    for (what, spec, good) in cases {
        let dir = tempfile::tempdir().expect("tmp");
        let chain = Chain::generate(&spec).expect("chain");
        let token = chain.token(DATA).expect("token");
        setup(dir.path(), &chain, &token);
        write_file(dir.path(), "token.der", &token);
        let run = stamp(
            dir.path(),
            &["verify", "data.txt", "--trust", "root.pem", "--json"],
        );
        run.assert_code(if good { 0 } else { 1 });
        if !good {
            let report: serde_json::Value = serde_json::from_str(&run.stdout).expect("json");
            let path = report["signatures"][0]["checks"]
                .as_array()
                .expect("checks")
                .iter()
                .find(|c| c["name"] == "certificate-path")
                .cloned()
                .expect("certificate-path");
            assert_eq!(path["outcome"], "failed", "{what}: {run}");
        }
        let (ok, out) = openssl_verdict(dir.path());
        assert_eq!(ok, good, "{what}: openssl disagrees: {out}");
    }
}

fn both_verdicts(spec: ChainSpec) -> (bool, bool, String) {
    let dir = tempfile::tempdir().expect("tmp");
    let chain = Chain::generate(&spec).expect("chain");
    let token = chain.token(DATA).expect("token");
    setup(dir.path(), &chain, &token);
    write_file(dir.path(), "token.der", &token);
    let ours = stamp(dir.path(), &["verify", "data.txt", "--trust", "root.pem"]);
    let (theirs, out) = openssl_verdict(dir.path());
    (ours.code == Some(0), theirs, format!("{ours}\n{out}"))
}

fn constrained(subtree: rcgen::GeneralSubtree, tsa_dns: &str) -> ChainSpec {
    ChainSpec {
        name_constraints: Some(rcgen::NameConstraints {
            permitted_subtrees: vec![subtree],
            excluded_subtrees: Vec::new(),
        }),
        tsa_dns_name: Some(tsa_dns.into()),
        ..Default::default()
    }
}

/// Why: an anchor's dNSName constraints hold for the TSA certificate below it (webpki applies
/// them, openssl too): inside the permitted subtree both tools verify, outside both refuse.
#[test]
fn anchor_dns_name_constraints_agree_with_openssl() {
    let inside = constrained(
        rcgen::GeneralSubtree::DnsName("example.org".into()),
        "tsa.example.org",
    );
    let (ours, theirs, out) = both_verdicts(inside);
    assert!(ours && theirs, "inside the permitted subtree: {out}");
    let outside = constrained(
        rcgen::GeneralSubtree::DnsName("example.org".into()),
        "tsa.example.net",
    );
    let (ours, theirs, out) = both_verdicts(outside);
    assert!(!ours && !theirs, "outside the permitted subtree: {out}");
    assert!(out.contains("name constraints"), "{out}");
}

/// Why: webpki does not implement directoryName constraints and refuses every path under them
/// (fail closed), where openssl checks them; this pins that known difference: a chain whose DNs
/// all lie inside the permitted subtree is refused by us and accepted by openssl.
#[test]
fn anchor_directory_name_constraints_fail_closed() {
    let mut base = rcgen::DistinguishedName::new();
    base.push(rcgen::DnType::CountryName, "XX");
    base.push(rcgen::DnType::OrganizationName, "Sigillum hostile tests");
    let spec = constrained(
        rcgen::GeneralSubtree::DirectoryName(base),
        "tsa.example.org",
    );
    let (ours, theirs, out) = both_verdicts(spec);
    assert!(!ours, "webpki refuses directoryName constraints: {out}");
    assert!(theirs, "openssl checks them and accepts: {out}");
}
