//! Both sides of CMP in `pki` against each other: what `cmp::client` builds, the server side
//! reads (header, MAC or signature protection, the body with its proof of possession); what
//! `cmp::reply` builds, the client side accepts only with the right protection, transaction
//! and nonce. (Against openssl: tests/tests/ca_openssl.rs.)

use der::{Decode, Encode};
use pki::ca::{Ca, EmailCertificate, Usage};
use pki::cmp::client::{self, ClientProtection, ReplyCheck};
use pki::cmp::{CertKind, GeneralAnswer, InfoType, Pop, Protection, Reply, ReplyBody, Request};
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::signer::{RingSigner, RsaPadding};

struct Setup {
    signer: RingSigner,
    cert: SignerCert,
}

fn setup() -> Setup {
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("dev pki");
    Setup {
        signer: RingSigner::from_pkcs8_der(&dev.root_key, RsaPadding::Pkcs1).expect("root key"),
        cert: SignerCert::from_der(dev.root_cert).expect("root"),
    }
}

fn ca(s: &Setup) -> Ca<'_> {
    Ca {
        signer: &s.signer,
        cert: &s.cert,
        ocsp_url: None,
        ca_issuers_url: None,
        crl_url: None,
    }
}

const SECRET: &[u8] = b"0123456789abcdef0123456789abcd";

fn mac() -> ClientProtection<'static> {
    ClientProtection::Mac {
        reference: b"4a5b6c7d8e9f",
        secret: SECRET,
    }
}

#[test]
fn an_ir_with_a_code_is_read_verified_answered_and_the_answer_checked() {
    let s = setup();
    let (key, _) = RingSigner::generate_p256().expect("key");
    let spki = pki::signer::subject_public_key_info(&key).expect("spki");
    let sent = client::certificate_request(CertKind::Ir, &key, &spki, "Alice", None, mac(), true)
        .expect("ir");

    // The server side: header, MAC, body, POP.
    let m = pki::cmp::parse(&sent.der).expect("parse");
    assert_eq!((m.pvno, m.body_type), (2, 0));
    assert!(m.is_mac_protected() && m.implicit_confirm);
    assert_eq!(m.sender_kid.as_deref(), Some(&b"4a5b6c7d8e9f"[..]));
    assert!(m.verify_mac(SECRET).expect("mac"));
    assert!(!m.verify_mac(b"another secret").expect("mac"));
    let Request::Certificates(CertKind::Ir, reqs) = Request::read(&m).expect("body") else {
        panic!("not an ir");
    };
    assert_eq!(reqs.len(), 1);
    assert_eq!(reqs[0].pop, Pop::Verified);
    assert_eq!(reqs[0].public_key_info, spki);
    assert_eq!(reqs[0].common_name.as_deref(), Some("Alice"));
    assert!(reqs[0].emails.is_empty() && reqs[0].other_names.is_empty());

    // The answer, MACed with the same secret.
    let cert = ca(&s)
        .issue(&EmailCertificate {
            public_key_info: &spki,
            email: "alice@example.org",
            common_name: Some("Alice"),
            usage: Usage::Signing,
            serial: &[1; 16],
            validity: (
                pki::gentime::unix_now() - 60,
                pki::gentime::unix_now() + 86_400,
            ),
        })
        .expect("issue");
    let ca = ca(&s);
    let reply = Reply {
        ca: &ca,
        chain: &[],
    };
    let alg = m.protection_alg.clone().expect("alg");
    let nonce = pki::cmp::fresh_nonce().expect("nonce");
    let body = ReplyBody::Certified {
        kind: CertKind::Ir,
        cert_req_id: reqs[0].cert_req_id.clone(),
        cert: cert.clone(),
        ca_pubs: vec![s.cert.der.clone()],
    };
    let protection = Protection::Mac {
        algorithm: &alg,
        secret: SECRET,
    };
    let der = reply
        .build(
            Some(&m),
            &body,
            protection,
            true,
            &nonce,
            pki::gentime::unix_now(),
        )
        .expect("reply");
    let answer = client::read_reply(&der, &sent, ReplyCheck::Mac(SECRET)).expect("accepted");
    assert!(answer.authenticated && answer.implicit_confirm && answer.refusal.is_none());
    assert_eq!(
        (answer.body_type, answer.certificate.as_deref()),
        (1, Some(&cert[..]))
    );
    assert_eq!(answer.ca_pubs, vec![s.cert.der.clone()]);
    assert_eq!(answer.sender_nonce, nonce);

    // The same reply is refused for another secret, another request, or one changed byte.
    assert!(client::read_reply(&der, &sent, ReplyCheck::Mac(b"wrong")).is_err());
    let other = client::certificate_request(CertKind::Ir, &key, &spki, "Alice", None, mac(), true)
        .expect("ir");
    let e = client::read_reply(&der, &other, ReplyCheck::Mac(SECRET)).expect_err("not ours");
    assert!(e.to_string().contains("transactionID"), "{e}");
    let mut changed = der.clone();
    let at = changed.len() / 2;
    changed[at] ^= 0x01;
    assert!(client::read_reply(&changed, &sent, ReplyCheck::Mac(SECRET)).is_err());
}

#[test]
fn signed_requests_and_replies_verify_with_their_certificates_only() {
    let s = setup();
    let dev = DevPki::generate(DevKeyType::EcdsaP256).expect("dev");
    let (cert_der, key_der) = dev
        .issue_signer("Bob", "bob@example.org", DevKeyType::EcdsaP256)
        .expect("signer");
    let bob = RingSigner::from_pkcs8_der(&key_der, RsaPadding::Pkcs1).expect("key");
    let bob_cert = SignerCert::from_der(cert_der.clone()).expect("cert");
    let protection = ClientProtection::Signature {
        signer: &bob,
        cert: &bob_cert,
    };
    let serial = pki::cert::serial_magnitude(&cert_der).expect("serial");
    let sent = client::revocation_request(&serial, &s.cert.der, Some("keyCompromise"), protection)
        .expect("rr");
    let m = pki::cmp::parse(&sent.der).expect("parse");
    assert_eq!(m.body_type, 11);
    assert!(!m.is_mac_protected());
    assert_eq!(m.verify_signature().expect("sig"), Ok(&cert_der[..]));
    let Request::Revoke(revs) = Request::read(&m).expect("body") else {
        panic!("not an rr");
    };
    assert_eq!(revs[0].serial, serial);
    assert_eq!(revs[0].reason, Some(1));
    assert_eq!(
        revs[0].issuer.as_deref(),
        Some(&pki::cert::subject_der(&s.cert.der).expect("subject")[..])
    );
    assert!(client::revocation_request(&serial, &s.cert.der, Some("onHold"), protection).is_err());

    // A reply to a pvno 3 request says pvno 3, signed by the CA, its certificate first in
    // extraCerts; the client accepts it under that CA only.
    let mut v3 = sent.der.clone();
    let header_at = v3
        .windows(3)
        .position(|w| w == [0x02, 0x01, 0x02])
        .expect("pvno");
    v3[header_at + 2] = 3;
    let m3 = pki::cmp::parse(&v3).expect("parse v3");
    assert_eq!(m3.pvno, 3);
    let ca = ca(&s);
    let reply = Reply {
        ca: &ca,
        chain: &[],
    };
    let nonce = pki::cmp::fresh_nonce().expect("nonce");
    let der = reply
        .build(
            Some(&m3),
            &ReplyBody::Revoked(vec![None]),
            Protection::Signature,
            false,
            &nonce,
            pki::gentime::unix_now(),
        )
        .expect("rp");
    let r = pki::cmp::parse(&der).expect("parse rp");
    assert_eq!((r.pvno, r.body_type), (3, 12));
    assert_eq!(r.extra_certs.first().copied(), Some(&s.cert.der[..]));
    let answer = client::read_reply(&der, &sent, ReplyCheck::Ca(&s.cert.der)).expect("rp");
    assert!(answer.authenticated && answer.refusal.is_none());
    let e = client::read_reply(&der, &sent, ReplyCheck::Ca(&cert_der)).expect_err("not Bob's");
    assert!(e.to_string().contains("another key"), "{e}");

    // An error message the client cannot authenticate is shown, marked as unproven.
    let refusal = reply
        .build(
            Some(&m),
            &ReplyBody::Error {
                fail: pki::asn1::FailureInfo::CertRevoked,
                text: "already revoked".into(),
            },
            Protection::Signature,
            false,
            &nonce,
            pki::gentime::unix_now(),
        )
        .expect("error");
    let shown = client::read_reply(&refusal, &sent, ReplyCheck::Mac(SECRET)).expect("shown");
    assert!(!shown.authenticated);
    let (bits, text) = shown.refusal.expect("refusal");
    assert_eq!(
        (bits, text.as_str()),
        (vec![pki::asn1::FailureInfo::CertRevoked], "already revoked")
    );
    let checked = client::read_reply(&refusal, &sent, ReplyCheck::Ca(&s.cert.der)).expect("ok");
    assert!(checked.authenticated);
}

/// id-it-rootCaCert (RFC 9810 §5.3.19.16): a genm asking for a root CA update.
const ID_IT_ROOT_CA_CERT: &str = "1.3.6.1.5.5.7.4.20";
/// id-it-rootCaKeyUpdate: the genp's answer to it.
const ID_IT_ROOT_CA_KEY_UPDATE: &str = "1.3.6.1.5.5.7.4.18";
/// id-it-caCerts (RFC 9810 §5.3.19.19).
const ID_IT_CA_CERTS: &str = "1.3.6.1.5.5.7.4.17";

fn itav(oid: &str, value: Option<&[u8]>) -> cmpv2::r#gen::InfoTypeAndValue {
    cmpv2::r#gen::InfoTypeAndValue {
        oid: oid.parse().expect("OID"),
        value: value.map(|v| der::Any::from_der(v).expect("infoValue")),
    }
}

/// An unprotected genm (what `openssl cmp -cmd genm -unprotected_requests` sends) asking
/// for `infos`, with a fresh transactionID and senderNonce.
fn genm(infos: Vec<cmpv2::r#gen::InfoTypeAndValue>) -> client::Sent {
    use der::asn1::OctetString;
    use x509_cert::ext::pkix::name::GeneralName;
    let transaction_id = pki::cmp::fresh_nonce().expect("transactionID");
    let sender_nonce = pki::cmp::fresh_nonce().expect("senderNonce");
    let message = cmpv2::message::PkiMessage {
        header: cmpv2::header::PkiHeader {
            pvno: cmpv2::header::Pvno::Cmp2000,
            sender: GeneralName::DirectoryName(Default::default()),
            recipient: GeneralName::DirectoryName(Default::default()),
            message_time: None,
            protection_alg: None,
            sender_kid: None,
            recip_kid: None,
            trans_id: Some(OctetString::new(transaction_id.clone()).expect("octets")),
            sender_nonce: Some(OctetString::new(sender_nonce.clone()).expect("octets")),
            recip_nonce: None,
            free_text: None,
            general_info: None,
        },
        body: cmpv2::body::PkiBody::GenM(infos),
        protection: None,
        extra_certs: None,
    };
    client::Sent {
        der: message.to_der().expect("genm"),
        transaction_id,
        sender_nonce,
    }
}

#[test]
fn a_genm_for_the_root_ca_certificate_is_answered_by_a_root_ca_key_update_without_value() {
    let s = setup();
    let ca = ca(&s);
    let reply = Reply {
        ca: &ca,
        chain: &[],
    };
    // RFC 9483 §4.3.2: the requester may name the root it trusts now, or not.
    for value in [None, Some(s.cert.der.as_slice())] {
        let what = if value.is_some() { "with" } else { "without" };
        let sent = genm(vec![itav(ID_IT_ROOT_CA_CERT, value)]);
        let m = pki::cmp::parse(&sent.der).expect("parse");
        assert_eq!(m.body_type, 21, "{what} a value");
        assert!(m.protection.is_none() && m.protection_alg.is_none());
        let Request::General(asked) = Request::read(&m).expect("body") else {
            panic!("not a genm");
        };
        assert_eq!(asked, vec![InfoType::RootCaCert], "{what} a value");

        // One root, no update: the genp holds exactly one id-it-rootCaKeyUpdate and no
        // infoValue (RFC 9483 §4.3.2; RFC 9810 §5.3.19.16), signed by the CA.
        let nonce = pki::cmp::fresh_nonce().expect("nonce");
        let der = reply
            .build(
                Some(&m),
                &ReplyBody::General(vec![GeneralAnswer::NoRootUpdate]),
                Protection::Signature,
                false,
                &nonce,
                pki::gentime::unix_now(),
            )
            .expect("genp");
        let r = pki::cmp::parse(&der).expect("parse genp");
        assert_eq!(r.body_type, 22, "{what} a value");
        let infos = Vec::<cmpv2::r#gen::InfoTypeAndValue>::from_der(r.body_content())
            .expect("GenRepContent");
        assert_eq!(infos, vec![itav(ID_IT_ROOT_CA_KEY_UPDATE, None)]);
        // SEQUENCE { SEQUENCE { OID 1.3.6.1.5.5.7.4.18 } }, nothing else.
        assert_eq!(
            r.body_content(),
            [
                0x30, 0x0c, 0x30, 0x0a, 0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x04, 0x12
            ]
        );
        assert_eq!(r.verify_signature().expect("signed"), Ok(&s.cert.der[..]));
        let answer = client::read_reply(&der, &sent, ReplyCheck::Ca(&s.cert.der)).expect("genp");
        assert!(answer.authenticated && answer.refusal.is_none());
        assert_eq!(answer.body_type, 22);
    }

    // Asked together with caCerts and a type the CA does not serve (id-it-suppLangTags), each
    // is read as itself, in order; the genp carries the answers in the order given.
    let sent = genm(vec![
        itav(ID_IT_CA_CERTS, None),
        itav(ID_IT_ROOT_CA_CERT, None),
        itav("1.3.6.1.5.5.7.4.16", None),
    ]);
    let m = pki::cmp::parse(&sent.der).expect("parse");
    let Request::General(asked) = Request::read(&m).expect("body") else {
        panic!("not a genm");
    };
    assert_eq!(
        asked,
        vec![
            InfoType::CaCerts,
            InfoType::RootCaCert,
            InfoType::Other("1.3.6.1.5.5.7.4.16".into())
        ]
    );
    let der = reply
        .build(
            Some(&m),
            &ReplyBody::General(vec![
                GeneralAnswer::CaCerts(vec![s.cert.der.clone()]),
                GeneralAnswer::NoRootUpdate,
            ]),
            Protection::Signature,
            false,
            &pki::cmp::fresh_nonce().expect("nonce"),
            pki::gentime::unix_now(),
        )
        .expect("genp");
    let r = pki::cmp::parse(&der).expect("parse genp");
    let infos =
        Vec::<cmpv2::r#gen::InfoTypeAndValue>::from_der(r.body_content()).expect("GenRepContent");
    let ca_certs = vec![x509_cert::Certificate::from_der(&s.cert.der).expect("certificate")]
        .to_der()
        .expect("caCerts");
    assert_eq!(
        infos,
        vec![
            itav(ID_IT_CA_CERTS, Some(&ca_certs)),
            itav(ID_IT_ROOT_CA_KEY_UPDATE, None)
        ]
    );
}
