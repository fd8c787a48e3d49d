//! Issue a token with the development PKI and verify it with our own verifier, for every key
//! type the dev PKI makes; then tamper with it and watch each check catch it.

use pki::asn1::FailureInfo;
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::gentime::GenTime;
use pki::signer::{RingSigner, RsaPadding};
use pki::token::{ParsedToken, VerifyOptions, verify};
use pki::tsp::{RequestPolicy, TokenIssuer, build_request, check_request};
use pki::{HashAlg, oid};
use std::sync::Arc;

fn issuer(kind: DevKeyType) -> (DevPki, TokenIssuer) {
    let dev = DevPki::generate(kind).expect("dev pki");
    let signer = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1).expect("key");
    let cert = SignerCert::from_der(dev.tsa_cert.clone()).expect("cert");
    let acc = pki::tsp::Accuracy {
        seconds: Some(1),
        millis: None,
        micros: None,
    };
    let issuer = TokenIssuer::new(
        Arc::new(signer),
        cert,
        vec![dev.root_cert.clone()],
        Some(acc),
        true,
    )
    .expect("issuer");
    (dev, issuer)
}

fn issue(issuer: &TokenIssuer, data: &[u8], alg: HashAlg, cert_req: bool) -> Vec<u8> {
    let req = build_request(
        alg,
        &alg.digest(data),
        Some(&[1, 2, 3, 4, 5, 6, 7, 8]),
        cert_req,
        None,
    )
    .expect("req");
    let checked = check_request(&req, &RequestPolicy::new(oid::DEV_POLICY)).expect("accepted");
    issuer
        .issue(
            &checked,
            &[0x01, 0x23],
            GenTime::now_millis().expect("clock"),
        )
        .expect("token")
}

#[test]
fn tokens_of_every_dev_key_type_verify() {
    for kind in [
        DevKeyType::EcdsaP256,
        DevKeyType::EcdsaP384,
        DevKeyType::Ed25519,
    ] {
        let (dev, issuer) = issuer(kind);
        for alg in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let token = issue(&issuer, b"hello", alg, true);
            let parsed = ParsedToken::parse(&token).expect("parse");
            assert_eq!(parsed.hash_alg(), Some(alg));
            let opts = VerifyOptions {
                trust: vec![dev.root_cert.clone()],
                ..Default::default()
            };
            let r = verify(&parsed, Some(&alg.digest(b"hello")), &opts);
            assert!(r.verified, "{kind:?} {alg}: {:#?}", r.checks);
            assert_eq!(r.chain.len(), 2);
            let ts = r.timestamp.as_ref().expect("timestamp info");
            assert_eq!(
                (ts.serial.as_deref(), ts.hash_algorithm.as_str()),
                (Some("291"), alg.name())
            );
            assert!(ts.gen_time.ends_with('Z'), "{}", ts.gen_time);
        }
    }
}

#[test]
fn wrong_data_fails_only_the_imprint_check() {
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let parsed =
        ParsedToken::parse(&issue(&issuer, b"hello", HashAlg::Sha256, true)).expect("parse");
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    let r = verify(&parsed, Some(&HashAlg::Sha256.digest(b"hellO")), &opts);
    assert!(!r.verified);
    let failed: Vec<&str> = r.failures().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, vec!["imprint"]);
}

#[test]
fn untrusted_root_fails_the_path() {
    let (_dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let (other, _) = self::issuer(DevKeyType::EcdsaP256);
    let parsed = ParsedToken::parse(&issue(&issuer, b"x", HashAlg::Sha256, true)).expect("parse");
    let opts = VerifyOptions {
        trust: vec![other.root_cert.clone()],
        ..Default::default()
    };
    let r = verify(&parsed, Some(&HashAlg::Sha256.digest(b"x")), &opts);
    let failed: Vec<&str> = r.failures().iter().map(|c| c.name.as_str()).collect();
    assert_eq!(failed, vec!["certificate-path"]);
}

#[test]
fn token_without_certificates_needs_certs_option() {
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let parsed = ParsedToken::parse(&issue(&issuer, b"x", HashAlg::Sha256, false)).expect("parse");
    assert!(parsed.certificates.is_empty());
    let mut opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    let digest = HashAlg::Sha256.digest(b"x");
    let r = verify(&parsed, Some(&digest), &opts);
    assert_eq!(r.failures()[0].name, "signer-certificate");
    opts.extra_certs = vec![dev.tsa_cert.clone()];
    assert!(verify(&parsed, Some(&digest), &opts).verified);
}

#[test]
fn a_flipped_byte_in_the_tst_info_breaks_the_message_digest() {
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let token = issue(&issuer, b"x", HashAlg::Sha256, true);
    let parsed = ParsedToken::parse(&token).expect("parse");
    // Find the serial 0x0123 inside the TSTInfo and change it.
    let pos = token
        .windows(4)
        .position(|w| w == [0x02, 0x02, 0x01, 0x23])
        .expect("serial");
    let mut bad = token.clone();
    bad[pos + 3] = 0x24;
    let parsed_bad = ParsedToken::parse(&bad).expect("parse");
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    let digest = HashAlg::Sha256.digest(b"x");
    assert!(verify(&parsed, Some(&digest), &opts).verified);
    let r = verify(&parsed_bad, Some(&digest), &opts);
    assert_eq!(r.failures()[0].name, "message-digest");
}

fn rejected(der: &[u8], policy: &RequestPolicy) -> FailureInfo {
    match check_request(der, policy) {
        Ok(_) => panic!("request accepted"),
        Err(r) => r.fail_info,
    }
}

#[test]
fn request_rejections_carry_the_right_fail_info() {
    let policy = RequestPolicy::new(oid::DEV_POLICY);
    let d = HashAlg::Sha256.digest(b"x");
    let sha1 = build_request(
        HashAlg::Sha1,
        &HashAlg::Sha1.digest(b"x"),
        None,
        false,
        None,
    )
    .expect("req");
    assert_eq!(rejected(&sha1, &policy), FailureInfo::BadAlg);
    assert!(check_request(&sha1, &policy.clone().dangerous_allow_sha1()).is_ok());
    let other_policy =
        build_request(HashAlg::Sha256, &d, None, false, Some(oid::ID_DATA)).expect("req");
    assert_eq!(
        rejected(&other_policy, &policy),
        FailureInfo::UnacceptedPolicy
    );
    let mut trailing = build_request(HashAlg::Sha256, &d, None, false, None).expect("req");
    trailing.push(0);
    assert_eq!(rejected(&trailing, &policy), FailureInfo::BadDataFormat);
    assert_eq!(
        rejected(b"\x30\x03\x02\x01", &policy),
        FailureInfo::BadDataFormat
    );
}

#[test]
fn fail_info_bits_encode_as_der_named_bit_lists() {
    use der::Encode;
    let bad_alg = FailureInfo::BadAlg
        .to_bit_string()
        .expect("bits")
        .to_der()
        .expect("der");
    assert_eq!(bad_alg, [0x03, 0x02, 0x07, 0x80]);
    let time = FailureInfo::TimeNotAvailable
        .to_bit_string()
        .expect("bits")
        .to_der()
        .expect("der");
    assert_eq!(time, [0x03, 0x03, 0x01, 0x00, 0x02]);
    let ext = FailureInfo::UnacceptedExtension
        .to_bit_string()
        .expect("bits")
        .to_der()
        .expect("der");
    assert_eq!(ext, [0x03, 0x04, 0x07, 0x00, 0x00, 0x80]);
    // CMP's bits (RFC 9810 §5.2.3): badPOP is bit 9, duplicateCertReq the last, 26 (cmpv2 0.2
    // declares these as masks; this type has the positions).
    let pop = FailureInfo::BadPop
        .to_bit_string()
        .expect("bits")
        .to_der()
        .expect("der");
    assert_eq!(pop, [0x03, 0x03, 0x06, 0x00, 0x40]);
    let dup = FailureInfo::DuplicateCertReq
        .to_bit_string()
        .expect("bits")
        .to_der()
        .expect("der");
    assert_eq!(dup, [0x03, 0x05, 0x05, 0x00, 0x00, 0x00, 0x20]);
    assert_eq!(FailureInfo::ALL.len(), 27);
    for (i, f) in FailureInfo::ALL.into_iter().enumerate() {
        assert_eq!(f as usize, i, "{f} is at bit {i}");
    }
    for f in FailureInfo::ALL {
        assert_eq!(
            FailureInfo::from_bit_string(&f.to_bit_string().expect("bits")),
            vec![f]
        );
    }
}

/// Re-encodes a DER token the way streaming S/MIME tools write BER: indefinite lengths on
/// every enclosing constructed element and the TSTInfo OCTET STRING split into chunks.
fn to_streaming_ber(token: &[u8]) -> Vec<u8> {
    use pki::raw::RawTlv;
    fn indefinite(tag: u8, parts: &[&[u8]]) -> Vec<u8> {
        let mut out = vec![tag, 0x80];
        for p in parts {
            out.extend_from_slice(p);
        }
        out.extend_from_slice(&[0, 0]);
        out
    }
    let ci = RawTlv::parse(token, "ci").expect("ci");
    let ci_fields = ci.children("ci").expect("fields");
    let sd = RawTlv::parse(ci_fields[1].value, "sd").expect("sd");
    let sd_fields = sd.children("sd").expect("fields");
    let encap = sd_fields[2].children("encap").expect("encap");
    let octets = RawTlv::parse(encap[1].value, "octets")
        .expect("octets")
        .value;
    let (a, b) = octets.split_at(octets.len() / 2);
    let chunk = |c: &[u8]| {
        let mut v = vec![0x04, u8::try_from(c.len()).expect("short chunk")];
        v.extend_from_slice(c);
        v
    };
    let chunked = indefinite(0x24, &[&chunk(a), &chunk(b)]);
    let explicit = indefinite(0xa0, &[&chunked]);
    let new_encap = indefinite(0x30, &[encap[0].full, &explicit]);
    let mut fields: Vec<&[u8]> = sd_fields.iter().map(|f| f.full).collect();
    fields[2] = &new_encap;
    let new_sd = indefinite(0x30, &fields);
    let new_explicit = indefinite(0xa0, &[&new_sd]);
    indefinite(0x30, &[ci_fields[0].full, &new_explicit])
}

#[test]
fn a_ber_encoded_token_verifies_like_its_der_form() {
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let der = issue(&issuer, b"streamed", HashAlg::Sha256, true);
    let ber = to_streaming_ber(&der);
    assert_ne!(ber, der);
    let parsed = ParsedToken::parse(&ber).expect("BER token parses");
    assert_eq!(parsed.der, der, "normalising gives back the DER token");
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    assert!(verify(&parsed, Some(&HashAlg::Sha256.digest(b"streamed")), &opts).verified);
}

#[test]
fn a_signature_timestamp_becomes_an_unsigned_attribute_and_keeps_the_signature() {
    // Sign detached content with the TSA key (any signer will do here), then timestamp the
    // SignerInfo's signature value and attach the token, as the email and PDF flows will.
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let signer = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1).expect("key");
    let cert = SignerCert::from_der(dev.tsa_cert.clone()).expect("cert");
    let digest = HashAlg::Sha256.digest(b"mime part");
    let tbs = pki::cms::SignedDataBuilder::detached(
        oid::ID_DATA,
        digest,
        pki::signer::Signer::algorithm(&signer),
        &cert,
    )
    .expect("builder")
    .certificates([dev.tsa_cert.clone()])
    .to_be_signed()
    .expect("tbs");
    let sig = pki::signer::Signer::sign(&signer, tbs.bytes()).expect("sign");
    let signed = tbs.assemble(sig).expect("assemble");
    let value = pki::cms::signature_value(&signed, 0).expect("signature value");
    let token = issue(&issuer, &value, HashAlg::Sha256, true);
    let parsed = ParsedToken::parse(&token).expect("token parses");
    let stamped = pki::cms::add_signature_timestamp(&signed, 0, &parsed).expect("attach");
    let raw = pki::cms::RawSignedData::parse(&stamped).expect("parse");
    // Signed attributes and signature are untouched, byte for byte.
    let attrs = |ci: &[u8]| {
        let raw = pki::cms::RawSignedData::parse(ci).expect("parse");
        pki::signer_info::SignerInfoView::parse(raw.signer_infos[0].full)
            .expect("SignerInfo")
            .signed_attrs_der
    };
    assert_eq!(attrs(&stamped), attrs(&signed));
    assert!(attrs(&signed).is_some());
    assert_eq!(
        pki::cms::signature_value(&stamped, 0).expect("value"),
        value
    );
    let si: cms::signed_data::SignerInfo = raw.signer_infos[0].decode("si").expect("si");
    let unsigned = si.unsigned_attrs.expect("unsigned attrs");
    let attr = unsigned.iter().next().expect("one attribute");
    assert_eq!(attr.oid, oid::ID_AA_SIGNATURE_TIME_STAMP_TOKEN);
    let carried = der::Encode::to_der(attr.values.get(0).expect("value")).expect("der");
    let parsed = ParsedToken::parse(&carried).expect("token");
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    assert!(verify(&parsed, Some(&HashAlg::Sha256.digest(&value)), &opts).verified);
}

#[test]
fn qualified_tokens_carry_a_non_critical_qc_statement_and_still_verify() {
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let issuer = issuer.qualified().expect("qualified");
    let parsed = ParsedToken::parse(&issue(&issuer, b"q", HashAlg::Sha256, true)).expect("parse");
    let exts = parsed.tst_info.extensions.clone().expect("extensions");
    assert_eq!(exts.len(), 1);
    assert_eq!(
        (exts[0].extn_id, exts[0].critical),
        (oid::ID_PE_QC_STATEMENTS, false)
    );
    let statements: Vec<pki::asn1::QcStatement> =
        der::Decode::from_der(exts[0].extn_value.as_bytes()).expect("statements");
    assert_eq!(statements[0].statement_id, oid::ESI4_QTST_STATEMENT_1);
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    assert!(verify(&parsed, Some(&HashAlg::Sha256.digest(b"q")), &opts).verified);
}

/// Why: the signingTime attribute must be UTCTime up to 2049 and GeneralizedTime from 2050
/// (RFC 5652 §11.3), and both public attribute builders must decode as what they claim.
#[test]
fn signing_time_and_signing_certificate_v2_attributes_are_well_formed() {
    use der::{Encode, Tagged};
    let t = pki::cms::signing_time(1_700_000_000).expect("2023");
    assert_eq!(t.oid, oid::ID_SIGNING_TIME);
    let v = t.values.get(0).expect("one value");
    assert_eq!(v.tag(), der::Tag::UtcTime);
    assert_eq!(v.value(), b"231114221320Z");
    let later = pki::cms::signing_time(2_600_000_000).expect("2052");
    assert_eq!(
        later.values.get(0).expect("one").tag(),
        der::Tag::GeneralizedTime
    );
    let (dev, _) = issuer(DevKeyType::EcdsaP256);
    let cert = SignerCert::from_der(dev.tsa_cert.clone()).expect("cert");
    let attr = pki::cms::signing_certificate_v2(&cert).expect("attribute");
    assert_eq!(attr.oid, oid::ID_AA_SIGNING_CERTIFICATE_V2);
    let sc: pki::asn1::SigningCertificateV2 = attr
        .values
        .get(0)
        .expect("one value")
        .decode_as()
        .expect("decodes");
    assert_eq!(sc.certs.len(), 1);
    assert_eq!(
        sc.certs[0].hash_algorithm, None,
        "SHA-256 is the DEFAULT, left out"
    );
    assert_eq!(
        sc.certs[0].cert_hash.as_bytes(),
        HashAlg::Sha256.digest(&dev.tsa_cert).as_slice()
    );
    assert!(attr.to_der().is_ok());
}

/// Why: the SignerInfo verifier tokens use is the one emails and PDFs will use: on a detached
/// id-data signature (signingTime, signingCertificateV2) it passes every shared check, and it
/// fails messageDigest when the content is not what was signed, and contentType when another
/// content type is expected.
#[test]
fn the_shared_signer_info_verifier_checks_a_detached_id_data_signature() {
    use pki::report::{Outcome, SignatureReport};
    use pki::signer_check::{SignedKind, SignerInput, check_signer};
    let (dev, _) = issuer(DevKeyType::EcdsaP256);
    let content = b"Statement of account, November 2026\r\n".to_vec();
    let signing_time = pki::cms::signing_time(1_790_000_000).expect("signingTime");
    let signed = detached_signature(&dev, &content, vec![signing_time]);
    let raw = pki::cms::RawSignedData::parse(&signed).expect("parse");
    let view = first_signer_info(&signed);
    let bag = raw.certificates().expect("certificates");
    const EMAIL: SignedKind = SignedKind {
        content_type: oid::ID_DATA,
        content_type_name: "id-data",
        content: "the signed MIME part",
        whole: "the message",
        holder: "the signature",
        signer: "the signer's certificate",
    };
    let run = |kind: SignedKind, data: &[u8]| {
        let digest = |h: HashAlg| Some(h.digest(data));
        let input = SignerInput {
            signer_info: &view,
            kind,
            content_digest: &digest,
            certificates: &bag,
            carries_certificates: true,
            require_signing_certificate: true,
        };
        let mut r = SignatureReport::new("signer 1");
        let found = check_signer(&input, &mut r);
        assert!(found.is_some(), "{:#?}", r.checks);
        r.finish();
        r
    };
    let outcome = |r: &SignatureReport, name: &str| {
        r.checks
            .iter()
            .find(|c| c.name == name)
            .map(|c| c.outcome)
            .unwrap_or_else(|| panic!("no {name} check: {:#?}", r.checks))
    };
    let good = run(EMAIL, &content);
    assert!(good.verified, "{:#?}", good.checks);
    for name in [
        "content-type",
        "message-digest",
        "signer-certificate",
        "signing-certificate",
        "signature",
    ] {
        assert_eq!(outcome(&good, name), Outcome::Passed, "{name}");
    }
    let altered = run(EMAIL, b"Statement of account, November 2026 (amended)\r\n");
    assert_eq!(outcome(&altered, "message-digest"), Outcome::Failed);
    assert!(!altered.verified);
    let as_token = run(
        SignedKind {
            content_type: oid::ID_CT_TST_INFO,
            content_type_name: "id-ct-TSTInfo",
            ..EMAIL
        },
        &content,
    );
    assert_eq!(outcome(&as_token, "content-type"), Outcome::Failed);
}

/// A detached id-data SignedData over `content`, signed with the development TSA key, with
/// signingCertificateV2 and the `extra` signed attributes.
fn detached_signature(dev: &DevPki, content: &[u8], extra: Vec<pki::asn1::Attribute>) -> Vec<u8> {
    let signer = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1).expect("key");
    let cert = SignerCert::from_der(dev.tsa_cert.clone()).expect("cert");
    let mut builder = pki::cms::SignedDataBuilder::detached(
        oid::ID_DATA,
        HashAlg::Sha256.digest(content),
        pki::signer::Signer::algorithm(&signer),
        &cert,
    )
    .expect("builder")
    .signed_attribute(pki::cms::signing_certificate_v2(&cert).expect("ESS"))
    .expect("ESS");
    for attr in extra {
        builder = builder.signed_attribute(attr).expect("extra attribute");
    }
    let tbs = builder
        .certificates([dev.tsa_cert.clone()])
        .to_be_signed()
        .expect("tbs");
    let sig = pki::signer::Signer::sign(&signer, tbs.bytes()).expect("sign");
    tbs.assemble(sig).expect("assemble")
}

fn first_signer_info(content_info: &[u8]) -> pki::signer_info::SignerInfoView {
    let raw = pki::cms::RawSignedData::parse(content_info).expect("parse");
    pki::signer_info::SignerInfoView::parse(raw.signer_infos[0].full).expect("view")
}

/// Why: a signature's timestamp is checked by the token verifier and nested in the signature's
/// report: over this signature value it proves the time; one moved from another signature
/// fails (its imprint is another signature value); none at all is "time not proven".
#[test]
fn a_signature_timestamp_is_verified_by_the_token_verifier_and_nested() {
    use pki::report::{Outcome, SignatureReport};
    let (dev, issuer) = issuer(DevKeyType::EcdsaP256);
    let opts = VerifyOptions {
        trust: vec![dev.root_cert.clone()],
        ..Default::default()
    };
    let signed = detached_signature(&dev, b"statement 1", Vec::new());
    let value = pki::cms::signature_value(&signed, 0).expect("value");
    let token = ParsedToken::parse(&issue(&issuer, &value, HashAlg::Sha256, true)).expect("token");
    let stamped = pki::cms::add_signature_timestamp(&signed, 0, &token).expect("attach");
    let check = |content_info: &[u8]| {
        let mut r = SignatureReport::new("signer 1");
        let proven =
            pki::token::check_signature_timestamp(&mut r, &first_signer_info(content_info), &opts);
        let c = r
            .checks
            .iter()
            .find(|c| c.name == "signature-timestamp")
            .cloned()
            .expect("the check is recorded");
        (proven, c, r)
    };

    let (proven, c, r) = check(&stamped);
    assert_eq!(c.outcome, Outcome::Passed, "{c:?}");
    assert_eq!(proven, Some(token.gen_time()));
    let nested = r.signature_timestamp.expect("nested report");
    assert!(nested.verified, "{:#?}", nested.checks);

    // The same token moved onto another message's signature.
    let other = detached_signature(&dev, b"statement 2", Vec::new());
    let moved = pki::cms::add_signature_timestamp(&other, 0, &token).expect("attach");
    let (proven, c, r) = check(&moved);
    assert_eq!(c.outcome, Outcome::Failed, "{c:?}");
    assert!(c.detail.contains("imprint"), "{c:?}");
    assert_eq!(proven, None);
    assert!(!r.signature_timestamp.expect("nested").verified);

    let (proven, c, r) = check(&signed);
    assert_eq!(c.outcome, Outcome::Warning, "{c:?}");
    assert!(c.detail.contains("not proven"), "{c:?}");
    assert_eq!(proven, None);
    assert!(r.signature_timestamp.is_none());
}
