//! Hostile tokens: genuine tokens changed where anyone can change them (unsigned attributes, the
//! certificate bag), tokens that break a structure rule, and trust anchors whose own
//! constraints forbid the path. Each test says what it guards.

use pki::HashAlg;
use pki::gentime::GenTime;
use pki::hostile::{self, Chain, ChainSpec};
use pki::report::{Outcome, SignatureReport};
use pki::token::{ParsedToken, VerifyOptions, verify};
use std::sync::mpsc;
use std::time::Duration;

const DATA: &[u8] = b"hostile data";

/// Runs `f` on a thread and waits at most 60 s: a hang guard, not a performance assertion.
fn within<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60))
        .unwrap_or_else(|_| panic!("{what}: no answer within 60 s (unbounded work)"))
}

fn opts(chain: &Chain) -> VerifyOptions {
    VerifyOptions {
        trust: vec![chain.root.clone()],
        ..Default::default()
    }
}

fn check<'r>(r: &'r SignatureReport, name: &str) -> &'r pki::report::Check {
    r.checks
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no {name} check in {:#?}", r.checks))
}

fn verify_bytes(bytes: Vec<u8>, opts: VerifyOptions) -> SignatureReport {
    within("parse and verify", move || {
        let token = ParsedToken::parse(&bytes).expect("parses");
        verify(&token, Some(&HashAlg::Sha256.digest(DATA)), &opts)
    })
}

fn chain() -> Chain {
    Chain::generate(&ChainSpec::default()).expect("chain")
}

/// Why: the genuine token must verify, or every rejection below proves nothing.
#[test]
fn a_genuine_chain_token_verifies() {
    let c = chain();
    let r = verify_bytes(c.token(DATA).expect("token"), opts(&c));
    assert!(r.verified, "{:#?}", r.checks);
    assert_eq!(r.chain.len(), 3, "TSA, intermediate, root");
    assert_eq!(check(&r, "tsa-name").outcome, Outcome::Passed);
}

/// Why: 300 000 appended unsigned attributes (4.5 MB) took der's SET OF sort minutes; they are
/// unsigned, so the token still verifies, and parsing stays linear.
#[test]
fn appended_unsigned_attributes_neither_hang_nor_break_verification() {
    let c = chain();
    let hostile = hostile::with_unsigned_attributes(&c.token(DATA).expect("token"), 300_000)
        .expect("hostile");
    assert!(hostile.len() > 4_000_000, "{} bytes", hostile.len());
    let parsed = {
        let h = hostile.clone();
        within("parse", move || ParsedToken::parse(&h).expect("parses"))
    };
    assert_eq!(parsed.signer_info.unsigned_attr_count, 300_000);
    let r = verify_bytes(hostile, opts(&c));
    assert!(r.verified, "{:#?}", r.checks);
}

/// Why: a bag certificate whose RDN holds 100 000 AVAs made x509-cert's decode quadratic; the
/// verifier only ever walks it raw (it names no issuer on the path) and the token still
/// verifies. (Decoding it is refused by the SET guard: see the next test.)
#[test]
fn a_bag_certificate_with_a_huge_rdn_neither_hangs_nor_breaks_verification() {
    let c = chain();
    let huge = hostile::with_huge_rdn(&c.intermediate, 100_000).expect("huge");
    let huge_tsa = hostile::with_huge_rdn(&c.tsa, 100_000).expect("huge");
    let token =
        hostile::with_prepended_certificates(&c.token(DATA).expect("token"), &[huge, huge_tsa])
            .expect("hostile");
    assert!(token.len() > 2_000_000);
    let r = verify_bytes(token, opts(&c));
    assert!(r.verified, "{:#?}", r.checks);
}

/// Why: whatever does decode such a certificate (`stamp inspect` summarises every bag
/// certificate; a look-alike may be the only one a sid names) must refuse it at once through
/// the SET guard instead of sorting 100 000 AVAs.
#[test]
fn decoding_a_huge_rdn_certificate_is_refused_by_the_set_guard_in_bounded_time() {
    let c = chain();
    let huge = hostile::with_huge_rdn(&c.tsa, 100_000).expect("huge");
    let refused = within("summary", move || pki::cert::summary(&huge).map(|_| ()));
    let err = refused.expect_err("a 100 000-AVA RDN must not decode");
    assert!(
        pki::error::error_text(&err).contains("SET"),
        "{}",
        pki::error::error_text(&err)
    );
}

/// Why: thousands of prepended look-alikes (same issuer and serial as the signer, same subject
/// and key identifiers as intermediate and root, other keys) must neither be taken for the
/// signer nor exhaust webpki's signature budget.
#[test]
fn thousands_of_prepended_look_alikes_do_not_make_a_valid_token_fail() {
    let c = chain();
    let mut bogus = hostile::look_alikes(&c.tsa, 1500).expect("signer look-alikes");
    bogus.extend(hostile::look_alikes(&c.intermediate, 1500).expect("intermediate look-alikes"));
    bogus.extend(hostile::look_alikes(&c.root, 1500).expect("root look-alikes"));
    let token =
        hostile::with_prepended_certificates(&c.token(DATA).expect("token"), &bogus).expect("bag");
    let r = verify_bytes(token, opts(&c));
    assert!(r.verified, "{:#?}", r.checks);
    assert_eq!(r.chain.len(), 3);
}

/// Why: the look-alikes alone must not verify (the test above is only meaningful if they are
/// really wrong): with the genuine certificates gone the token fails.
#[test]
fn look_alikes_alone_do_not_verify() {
    let c = chain();
    let mut bogus = hostile::look_alikes(&c.tsa, 3).expect("look-alikes");
    bogus.extend(hostile::look_alikes(&c.intermediate, 3).expect("look-alikes"));
    let bare = hostile::without_certificates(&c.token(DATA).expect("token")).expect("bare");
    let token = hostile::with_prepended_certificates(&bare, &bogus).expect("bag");
    let r = verify_bytes(token, opts(&c));
    assert!(!r.verified);
    assert_eq!(check(&r, "signing-certificate").outcome, Outcome::Failed);
    assert_eq!(check(&r, "signature").outcome, Outcome::Failed);
}

fn anchor_failure(spec: ChainSpec, want: &str) {
    let c = Chain::generate(&spec).expect("chain");
    let r = verify_bytes(c.token(DATA).expect("token"), opts(&c));
    assert!(!r.verified, "{:#?}", r.checks);
    let path = check(&r, "certificate-path");
    assert_eq!(path.outcome, Outcome::Failed);
    assert!(path.detail.contains(want), "{}", path.detail);
}

/// Why: webpki ignores an anchor's pathLenConstraint; openssl honours it, and so must we.
#[test]
fn a_root_with_path_len_zero_above_an_intermediate_fails() {
    anchor_failure(
        ChainSpec {
            path_len: Some(0),
            ..Default::default()
        },
        "pathLenConstraint",
    );
}

/// Why: pathLen 1 allows the one intermediate: the check must not refuse honest chains.
#[test]
fn a_root_with_path_len_one_above_an_intermediate_verifies() {
    let c = Chain::generate(&ChainSpec {
        path_len: Some(1),
        ..Default::default()
    })
    .expect("chain");
    let r = verify_bytes(c.token(DATA).expect("token"), opts(&c));
    assert!(r.verified, "{:#?}", r.checks);
}

/// Why: a root that expired before genTime proves nothing at genTime; webpki does not look.
#[test]
fn a_root_expired_before_gen_time_fails() {
    anchor_failure(
        ChainSpec {
            not_after: time::Duration::days(-1),
            ..Default::default()
        },
        "not valid at that time",
    );
}

/// Why: a root whose keyUsage lacks keyCertSign may not sign certificates (RFC 5280 §4.2.1.3).
#[test]
fn a_root_without_key_cert_sign_fails() {
    anchor_failure(
        ChainSpec {
            key_usages: vec![rcgen::KeyUsagePurpose::DigitalSignature],
            ..Default::default()
        },
        "keyCertSign",
    );
}

/// Why: a root whose basicConstraints says cA FALSE is no CA (openssl's check_ca refuses it);
/// webpki does not look at an anchor's own extensions.
#[test]
fn a_root_that_is_not_a_ca_fails() {
    anchor_failure(
        ChainSpec {
            root_not_ca: true,
            key_usages: Vec::new(),
            ..Default::default()
        },
        "not a CA",
    );
}

/// Why: a genTime in the verifier's future is a forged or broken clock; "now" is injectable.
#[test]
fn a_gen_time_in_the_future_fails_and_now_is_injectable() {
    let c = chain();
    let now = GenTime::now_millis().expect("clock").unix_seconds();
    let later = GenTime::from_unix_millis((now + 3600) * 1000).expect("time");
    let token = c.token_at(DATA, later).expect("token");
    let r = verify_bytes(token.clone(), opts(&c));
    assert_eq!(check(&r, "gen-time").outcome, Outcome::Failed);
    assert!(!r.verified);
    // 301 s ahead is within 5 minutes plus the 1 s accuracy.
    let mut o = opts(&c);
    o.now = Some(now + 3600 - 301);
    let r = verify_bytes(token.clone(), o.clone());
    assert_eq!(
        check(&r, "gen-time").outcome,
        Outcome::Passed,
        "{:#?}",
        r.checks
    );
    o.now = Some(now + 3600 - 302);
    let r = verify_bytes(token, o);
    assert_eq!(check(&r, "gen-time").outcome, Outcome::Failed);
}

/// Why: a token must not switch the future-genTime check off by declaring a huge accuracy
/// (10^12 s saturated the limit); only an hour of accuracy widens the tolerance.
#[test]
fn a_huge_declared_accuracy_does_not_excuse_a_future_gen_time() {
    let mut c = chain();
    c.issuer = c
        .issuer
        .with_accuracy(Some(pki::tsp::Accuracy {
            seconds: Some(1_000_000_000_000),
            millis: None,
            micros: None,
        }))
        .expect("issuer");
    let now = GenTime::now_millis().expect("clock").unix_seconds();
    let later = GenTime::from_unix_millis((now + 2 * 3600) * 1000).expect("time");
    let token = c.token_at(DATA, later).expect("token");
    let mut o = opts(&c);
    o.now = Some(now);
    let r = verify_bytes(token.clone(), o.clone());
    assert_eq!(
        check(&r, "gen-time").outcome,
        Outcome::Failed,
        "{:#?}",
        r.checks
    );
    // Within 5 minutes plus the hour it is credited.
    o.now = Some(now + 2 * 3600 - 3600 - 300);
    let r = verify_bytes(token, o);
    assert_eq!(
        check(&r, "gen-time").outcome,
        Outcome::Passed,
        "{:#?}",
        r.checks
    );
}

/// Why: a tsa name that is none of the certificate's names is reported, naming both.
#[test]
fn a_tsa_name_the_certificate_does_not_carry_is_a_warning() {
    use der::asn1::Ia5String;
    use x509_cert::ext::pkix::name::GeneralName;
    let mut c = chain();
    c.issuer = c
        .issuer
        .with_tsa_name(GeneralName::DnsName(
            Ia5String::new("tsa.example.org").expect("dns"),
        ))
        .expect("issuer");
    let r = verify_bytes(c.token(DATA).expect("token"), opts(&c));
    let t = check(&r, "tsa-name");
    assert_eq!(t.outcome, Outcome::Warning);
    assert!(
        t.detail.contains("DNS:tsa.example.org") && t.detail.contains("CN=Hostile TSA"),
        "{}",
        t.detail
    );
    assert!(r.verified, "a warning does not fail");
}

/// Why: RFC 3161 §2.4.2: only granted replies carry tokens; a rejection with one is refused.
#[test]
fn a_rejection_that_carries_a_token_is_refused() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let resp = |status: u8| {
        let status_info = [0x30, 0x03, 0x02, 0x01, status];
        pki::raw::tlv(der::Tag::Sequence, &[&status_info, &token]).expect("resp")
    };
    ParsedToken::parse(&resp(0)).expect("granted with a token parses");
    ParsedToken::parse(&resp(1)).expect("grantedWithMods with a token parses");
    for status in [2u8, 3, 4, 5] {
        let e = ParsedToken::parse(&resp(status)).expect_err("refused");
        assert!(e.to_string().contains("§2.4.2"), "{e}");
    }
}

fn parse_error(bytes: &[u8]) -> String {
    pki::error::error_text(&ParsedToken::parse(bytes).expect_err("refused"))
}

/// Why: SignerInfo version must follow its sid (RFC 5652 §5.3): issuerAndSerialNumber is 1.
#[test]
fn a_signer_info_version_that_does_not_fit_its_sid_is_refused() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let bad = hostile::with_signer_info_field(&token, 0, &[0x02, 0x01, 0x03], None).expect("v3");
    assert!(parse_error(&bad).contains("§5.3"), "{}", parse_error(&bad));
}

/// Why: SignedData version follows its contents (RFC 5652 §5.1); 1 is tolerated as a warning
/// (deployed Go authorities write it), failing with strict; anything else is refused.
#[test]
fn a_signed_data_version_that_does_not_fit_its_contents_is_reported() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let v4 = hostile::with_signed_data_field(&token, 0, &[0x02, 0x01, 0x04]).expect("v4");
    assert!(parse_error(&v4).contains("§5.1"), "{}", parse_error(&v4));
    let v1 = hostile::with_signed_data_field(&token, 0, &[0x02, 0x01, 0x01]).expect("v1");
    let r = verify_bytes(v1.clone(), opts(&c));
    assert_eq!(check(&r, "structure").outcome, Outcome::Warning);
    assert!(r.verified);
    let mut strict = opts(&c);
    strict.strict = true;
    let r = verify_bytes(v1, strict);
    assert_eq!(check(&r, "structure").outcome, Outcome::Failed);
    assert!(!r.verified);
}

/// Why: the signer's digestAlgorithm must be among digestAlgorithms (RFC 5652 §5.1).
#[test]
fn a_digest_algorithm_missing_from_digest_algorithms_is_refused() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let sha384 = der::Encode::to_der(&HashAlg::Sha384.algorithm_identifier()).expect("alg");
    let set = pki::raw::tlv(der::Tag::Set, &[&sha384]).expect("set");
    let bad = hostile::with_signed_data_field(&token, 1, &set).expect("bad");
    assert!(
        parse_error(&bad).contains("not listed"),
        "{}",
        parse_error(&bad)
    );
}

/// Why: MD5 anywhere fails with a message that says so, even where it is listed consistently.
#[test]
fn an_md5_digest_algorithm_fails_by_name() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let md5 = der::Encode::to_der(&spki::AlgorithmIdentifierOwned {
        oid: pki::oid::ID_MD5,
        parameters: None,
    })
    .expect("alg");
    let set = pki::raw::tlv(der::Tag::Set, &[&md5]).expect("set");
    let bad = hostile::with_signer_info_field(&token, 2, &md5, Some(&set)).expect("bad");
    let r = verify_bytes(bad, opts(&c));
    assert!(!r.verified);
    for name in ["message-digest", "hash-algorithm"] {
        let k = check(&r, name);
        assert_eq!(k.outcome, Outcome::Failed);
        assert!(k.detail.contains("MD5"), "{}", k.detail);
    }
}

/// Why: messageDigest must occur once (RFC 5652 §11.2); a second copy is not silently ignored.
#[test]
fn a_duplicated_message_digest_attribute_fails() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let parsed = ParsedToken::parse(&token).expect("parses");
    let set = pki::raw::RawTlv::parse(&parsed.signed_attrs_der, "attrs").expect("attrs");
    let attrs = set.children("attrs").expect("children");
    let md = attrs
        .iter()
        .find(|a| {
            a.full.windows(11).any(|w| {
                w == [
                    0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x04,
                ]
            })
        })
        .expect("messageDigest");
    let mut parts: Vec<&[u8]> = attrs.iter().map(|a| a.full).collect();
    parts.push(md.full);
    let field = pki::raw::tlv(pki::raw::context(0, true), &parts).expect("field");
    let bad = hostile::with_signer_info_field(&token, 3, &field, None).expect("bad");
    let r = verify_bytes(bad, opts(&c));
    let k = check(&r, "message-digest");
    assert_eq!(k.outcome, Outcome::Failed);
    assert!(k.detail.contains("occurs 2 times"), "{}", k.detail);
}

/// Why: SHA-1 in the imprint is a weak-algorithm warning; strict makes it a failure.
#[test]
fn a_sha1_imprint_warns_weak_and_fails_with_strict() {
    let c = chain();
    let req = pki::tsp::build_request(HashAlg::Sha1, &HashAlg::Sha1.digest(DATA), None, true, None)
        .expect("req");
    let policy = pki::tsp::RequestPolicy::new(pki::oid::DEV_POLICY).dangerous_allow_sha1();
    let checked = pki::tsp::check_request(&req, &policy).expect("accepted");
    let token = c
        .issuer
        .issue(&checked, &[9], GenTime::now_millis().expect("clock"))
        .expect("token");
    let digest = HashAlg::Sha1.digest(DATA);
    let parsed = ParsedToken::parse(&token).expect("parses");
    let r = verify(&parsed, Some(&digest), &opts(&c));
    let k = check(&r, "hash-algorithm");
    assert_eq!(k.outcome, Outcome::Warning);
    assert!(
        k.detail.contains("weak") && k.detail.contains("imprint"),
        "{}",
        k.detail
    );
    assert!(r.verified);
    let mut strict = opts(&c);
    strict.strict = true;
    let r = verify(&parsed, Some(&digest), &strict);
    assert_eq!(check(&r, "hash-algorithm").outcome, Outcome::Failed);
    assert!(!r.verified);
}

/// Why: SHA-1 in the SignerInfo digestAlgorithm and ecdsa-with-SHA1 as the signature algorithm
/// are named as weak; ring cannot verify ECDSA with SHA-1, so that signature fails saying so.
#[test]
fn sha1_digest_and_ecdsa_with_sha1_are_reported_weak() {
    let c = chain();
    let token = c.token(DATA).expect("token");
    let alg = |o: der::asn1::ObjectIdentifier| {
        der::Encode::to_der(&spki::AlgorithmIdentifierOwned {
            oid: o,
            parameters: None,
        })
        .expect("alg")
    };
    let sha1 = alg(pki::oid::ID_SHA1);
    let set = pki::raw::tlv(der::Tag::Set, &[&sha1]).expect("set");
    let bad = hostile::with_signer_info_field(&token, 2, &sha1, Some(&set)).expect("sha1");
    let r = verify_bytes(bad, opts(&c));
    let k = check(&r, "hash-algorithm");
    assert_eq!(k.outcome, Outcome::Warning);
    assert!(
        k.detail.contains("weak") && k.detail.contains("digestAlgorithm"),
        "{}",
        k.detail
    );

    let ecdsa_sha1 = alg(pki::oid::ECDSA_WITH_SHA1);
    let bad = hostile::with_signer_info_field(&token, 4, &ecdsa_sha1, None).expect("ecdsa-sha1");
    let r = verify_bytes(bad, opts(&c));
    let sig = check(&r, "signature");
    assert_eq!(sig.outcome, Outcome::Failed);
    assert!(
        sig.detail.contains("weak") && sig.detail.contains("unsupported"),
        "{}",
        sig.detail
    );
    let k = check(&r, "hash-algorithm");
    assert_eq!(k.outcome, Outcome::Warning);
    assert!(k.detail.contains("signature algorithm"), "{}", k.detail);
}
