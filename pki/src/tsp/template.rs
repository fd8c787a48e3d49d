//! The parts of an issuer's tokens that never change, encoded once, and each token written
//! around them in one pass.
//!
//! Through the generic builders (der's derived types and [`crate::cms::SignedDataBuilder`]) a
//! token cost 4.2 µs of encoding on one core (BENCHMARKS.md, seventh slice), a quarter of an
//! ECDSA P-256 signature, and most of it went into what is the same in every token: the
//! issuer's name twice (signingCertificateV2 and the SignerIdentifier), the algorithm
//! identifiers, the certificates, the sorting of the signed attributes, and copying each nested
//! layer into the next. A [`Template`] keeps those parts as DER. Per token it encodes only the
//! TSTInfo's variable fields (policy, imprint, serial, genTime, nonce), the messageDigest and
//! the signature, computes every length first, and writes the token once into a buffer of its
//! final size.
//!
//! The generic path stays as the reference ([`super::TokenIssuer::prepare`]): a template is
//! checked against it when it is built (the same request, with and without certificates, must
//! give the same bytes), and the tests compare the two over many requests.

use super::{CheckedRequest, Profile, positive_int};
use crate::asn1::attribute;
use crate::digest::HashAlg;
use crate::error::{Error, Result};
use crate::gentime::GenTime;
use crate::oid;
use crate::raw::{context, tlv};
use crate::signer::to_der;
use der::asn1::{OctetString, SetOfVec};
use der::{Any, Encode, Header, Length, Tag};

/// TSTInfo's version: v1.
const TST_VERSION: [u8; 3] = [0x02, 0x01, 0x01];
/// SignerInfo's version: 1 (the signer named by issuerAndSerialNumber).
const SIGNER_INFO_VERSION: [u8; 3] = [0x02, 0x01, 0x01];

/// An issuer's constant token parts, as DER.
#[derive(Clone, Debug)]
pub(super) struct Template {
    /// The digest of the TSTInfo in messageDigest (the signature algorithm's).
    digest: HashAlg,
    /// TSTInfo's accuracy, or nothing.
    accuracy: Vec<u8>,
    /// TSTInfo's fields after the nonce: `[0] tsa` and `[1] extensions`, when set.
    tst_tail: Vec<u8>,
    /// The signed attributes that sort before messageDigest's, and after it (DER orders a SET
    /// OF by the elements' encodings; these differ from messageDigest in their length or their
    /// OID, both before the digest, so the order holds for every digest).
    attrs_before: Vec<u8>,
    attrs_after: Vec<u8>,
    /// messageDigest's attribute up to the digest's octets.
    md_prefix: Vec<u8>,
    /// SignerInfo's version, sid and digestAlgorithm.
    signer_info_head: Vec<u8>,
    /// SignerInfo's signatureAlgorithm.
    signature_algorithm: Vec<u8>,
    /// SignedData's version and digestAlgorithms.
    signed_data_head: Vec<u8>,
    /// eContentType: id-ct-TSTInfo.
    content_type: Vec<u8>,
    /// `[0] certificates`: the signer's, then the chain (for requests with certReq).
    certificates: Vec<u8>,
    /// ContentInfo's contentType: id-signedData.
    signed_data_oid: Vec<u8>,
}

/// A token's TSTInfo and the signed attributes over it, which the signer signs.
pub(super) struct Unsigned {
    tst: Vec<u8>,
    /// The SET's whole TLV.
    signed_attrs: Vec<u8>,
    /// The SET's content octets, at the end of `signed_attrs`.
    attrs_len: usize,
}

impl Unsigned {
    /// The bytes to sign: the DER of the signed attributes as a SET (RFC 5652 §5.4).
    pub(super) fn bytes(&self) -> &[u8] {
        &self.signed_attrs
    }
}

impl Template {
    /// Encodes `profile`'s constant parts.
    pub(super) fn build(profile: &Profile) -> Result<Template> {
        let algorithm = profile.signer.algorithm();
        let digest = algorithm.digest();
        let digest_alg = digest.algorithm_identifier();
        let content_type_attr = attribute(
            oid::ID_CONTENT_TYPE,
            Any::encode_from(&oid::ID_CT_TST_INFO).map_err(Error::Encode)?,
        )?;
        let placeholder = OctetString::new(vec![0; digest.len()]).map_err(Error::Encode)?;
        let md_attr = attribute(
            oid::ID_MESSAGE_DIGEST,
            Any::encode_from(&placeholder).map_err(Error::Encode)?,
        )?;
        let md = to_der(&md_attr)?;
        // The SET in der's own order, split around messageDigest.
        let mut attrs = SetOfVec::new();
        for a in [
            content_type_attr,
            md_attr,
            profile.signing_certificate_v2.clone(),
        ] {
            attrs.insert(a).map_err(Error::Encode)?;
        }
        let mut content = Vec::new();
        for a in attrs.iter() {
            a.encode_to_vec(&mut content).map_err(Error::Encode)?;
        }
        let at = content
            .windows(md.len())
            .position(|w| w == md.as_slice())
            .ok_or_else(|| Error::invalid("token template", "messageDigest not found"))?;
        let tsa = match &profile.tsa_name {
            Some(name) => tlv(context(0, true), &[&to_der(name)?])?,
            None => Vec::new(),
        };
        let extensions = match &profile.extensions {
            Some(exts) => {
                let each = exts.iter().map(to_der).collect::<Result<Vec<_>>>()?;
                let parts: Vec<&[u8]> = each.iter().map(Vec::as_slice).collect();
                tlv(context(1, true), &parts)?
            }
            None => Vec::new(),
        };
        let mut digest_algs = SetOfVec::new();
        digest_algs
            .insert(digest_alg.clone())
            .map_err(Error::Encode)?;
        let chain: Vec<&[u8]> = std::iter::once(profile.cert.der.as_slice())
            .chain(profile.chain.iter().map(Vec::as_slice))
            .collect();
        Ok(Template {
            digest,
            accuracy: match &profile.accuracy {
                Some(a) => to_der(a)?,
                None => Vec::new(),
            },
            tst_tail: [tsa, extensions].concat(),
            attrs_before: content[..at].to_vec(),
            attrs_after: content[at + md.len()..].to_vec(),
            md_prefix: md[..md.len() - digest.len()].to_vec(),
            signer_info_head: [
                SIGNER_INFO_VERSION.as_slice(),
                &to_der(&profile.cert.signer_identifier())?,
                &to_der(&digest_alg)?,
            ]
            .concat(),
            signature_algorithm: to_der(&algorithm.algorithm_identifier()?)?,
            // SignedData version 3: the content is not id-data (RFC 5652 §5.1).
            signed_data_head: [to_der(&3u8)?, to_der(&digest_algs)?].concat(),
            content_type: to_der(&oid::ID_CT_TST_INFO)?,
            certificates: tlv(context(0, true), &chain)?,
            signed_data_oid: to_der(&oid::ID_SIGNED_DATA)?,
        })
    }

    /// Step 1: the TSTInfo for `req` and the signed attributes over it.
    pub(super) fn unsigned(
        &self,
        req: &CheckedRequest,
        serial: &[u8],
        gen_time: GenTime,
    ) -> Result<Unsigned> {
        let nonce = match &req.nonce {
            Some(n) => to_der(n)?,
            None => Vec::new(),
        };
        let tst = tlv(
            Tag::Sequence,
            &[
                &TST_VERSION,
                &to_der(&req.policy)?,
                &to_der(&req.message_imprint)?,
                &to_der(&positive_int(serial)?)?,
                &to_der(&gen_time)?,
                &self.accuracy,
                &nonce,
                &self.tst_tail,
            ],
        )?;
        let digest = self.digest.digest(&tst);
        let parts = [
            &self.attrs_before,
            &self.md_prefix,
            &digest,
            &self.attrs_after,
        ];
        let signed_attrs = tlv(Tag::Set, &parts.map(Vec::as_slice))?;
        let attrs_len = parts.iter().map(|p| p.len()).sum();
        Ok(Unsigned {
            tst,
            signed_attrs,
            attrs_len,
        })
    }

    /// Step 3: the token (ContentInfo DER) around `signature`, written once.
    pub(super) fn assemble(
        &self,
        unsigned: &Unsigned,
        signature: &[u8],
        cert_req: bool,
    ) -> Result<Vec<u8>> {
        let certificates: &[u8] = if cert_req { &self.certificates } else { &[] };
        let tst = &unsigned.tst;
        // Every length, innermost first.
        let signer_info = self.signer_info_head.len()
            + unsigned.signed_attrs.len()
            + self.signature_algorithm.len()
            + whole(signature.len())?;
        let signer_infos = whole(signer_info)?;
        let octets = whole(tst.len())?;
        let encap = self.content_type.len() + whole(octets)?;
        let signed_data =
            self.signed_data_head.len() + whole(encap)? + certificates.len() + whole(signer_infos)?;
        let explicit = whole(signed_data)?;
        let content_info = self.signed_data_oid.len() + whole(explicit)?;
        let total = whole(content_info)?;

        let mut out = Vec::with_capacity(total);
        put(&mut out, Tag::Sequence, content_info)?;
        out.extend_from_slice(&self.signed_data_oid);
        put(&mut out, context(0, true), explicit)?;
        put(&mut out, Tag::Sequence, signed_data)?;
        out.extend_from_slice(&self.signed_data_head);
        put(&mut out, Tag::Sequence, encap)?;
        out.extend_from_slice(&self.content_type);
        put(&mut out, context(0, true), octets)?;
        put(&mut out, Tag::OctetString, tst.len())?;
        out.extend_from_slice(tst);
        out.extend_from_slice(certificates);
        put(&mut out, Tag::Set, signer_infos)?;
        put(&mut out, Tag::Sequence, signer_info)?;
        out.extend_from_slice(&self.signer_info_head);
        // signedAttrs [0] IMPLICIT: the signed SET with its tag replaced.
        let attrs = &unsigned.signed_attrs;
        put(&mut out, context(0, true), unsigned.attrs_len)?;
        out.extend_from_slice(&attrs[attrs.len() - unsigned.attrs_len..]);
        out.extend_from_slice(&self.signature_algorithm);
        put(&mut out, Tag::OctetString, signature.len())?;
        out.extend_from_slice(signature);
        if out.len() != total {
            return Err(Error::invalid(
                "token template",
                format!("wrote {} bytes, expected {total}", out.len()),
            ));
        }
        Ok(out)
    }
}

/// A TLV's whole length for `len` content octets: der's header length (every tag here is one
/// octet, as a SEQUENCE's) plus the content.
fn whole(len: usize) -> Result<usize> {
    let header = Length::try_from(len)
        .and_then(|length| Header::new(Tag::Sequence, length))
        .and_then(|header| header.encoded_len())
        .and_then(usize::try_from)
        .map_err(Error::Encode)?;
    Ok(header + len)
}

/// Writes a DER header for `len` content octets.
fn put(out: &mut Vec<u8>, tag: Tag, len: usize) -> Result<()> {
    Header::new(tag, Length::try_from(len).map_err(Error::Encode)?)
        .and_then(|h| h.encode_to_vec(out))
        .map_err(Error::Encode)?;
    Ok(())
}

#[cfg(all(test, feature = "devpki"))]
mod tests {
    use super::super::{CheckedRequest, RequestPolicy, TokenIssuer, build_request, check_request};
    use crate::cms::SignerCert;
    use crate::devpki::{DevKeyType, DevPki};
    use crate::digest::HashAlg;
    use crate::gentime::GenTime;
    use crate::oid;
    use crate::signer::{RingSigner, RsaPadding};
    use std::sync::Arc;
    use x509_cert::ext::pkix::name::GeneralName;

    fn issuers(kind: DevKeyType) -> Vec<(&'static str, TokenIssuer)> {
        let dev = DevPki::generate(kind).expect("dev pki");
        let make = |chain: Vec<Vec<u8>>, name: bool| {
            let signer = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1).expect("key");
            let cert = SignerCert::from_der(dev.tsa_cert.clone()).expect("cert");
            let accuracy = crate::asn1::Accuracy {
                seconds: Some(1),
                millis: Some(500),
                micros: None,
            };
            TokenIssuer::new(Arc::new(signer), cert, chain, Some(accuracy), name).expect("issuer")
        };
        let dns = GeneralName::DnsName(der::asn1::Ia5String::new("tsa.example").expect("ia5"));
        vec![
            ("plain", make(vec![dev.root_cert.clone()], true)),
            ("no name", make(Vec::new(), false)),
            // A certificate that is not self-signed stays in the chain.
            (
                "chain",
                make(vec![dev.tsa_cert.clone(), dev.root_cert.clone()], true),
            ),
            (
                "no accuracy",
                make(Vec::new(), true).with_accuracy(None).expect("issuer"),
            ),
            (
                "dns name",
                make(Vec::new(), true).with_tsa_name(dns).expect("issuer"),
            ),
            (
                "qualified",
                make(Vec::new(), true).qualified().expect("issuer"),
            ),
        ]
    }

    fn request(alg: HashAlg, nonce: Option<&[u8]>, cert_req: bool) -> CheckedRequest {
        let digest = alg.digest(b"the template writes what the generic encoder writes");
        let der = build_request(alg, &digest, nonce, cert_req, Some(oid::DEV_POLICY)).expect("req");
        check_request(&der, &RequestPolicy::new(oid::DEV_POLICY)).expect("accepted")
    }

    /// For every key type, issuer profile, imprint hash, nonce, serial and certReq, the template
    /// signs the same bytes and, around the same signature, writes the same token as the
    /// generic encoder.
    #[test]
    fn the_template_writes_what_the_generic_encoder_writes() {
        let gen_time = GenTime::from_unix_millis(1_796_539_131_267).expect("time");
        let serials: [&[u8]; 6] = [
            &[1],
            &[0x7f],
            &[0x80],
            &[0, 0, 0x80, 1],
            &[0; 8],
            &[0xff; 20],
        ];
        let nonces: [Option<&[u8]>; 4] = [None, Some(&[1]), Some(&[0x80, 2, 3]), Some(&[0xff; 16])];
        let mut compared = 0;
        for kind in [
            DevKeyType::EcdsaP256,
            DevKeyType::EcdsaP384,
            DevKeyType::Ed25519,
        ] {
            for (profile, issuer) in issuers(kind) {
                for alg in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
                    for nonce in nonces {
                        for cert_req in [true, false] {
                            let req = request(alg, nonce, cert_req);
                            for serial in serials {
                                let what = format!(
                                    "{kind:?} {profile} {alg:?} {nonce:?} {cert_req} {serial:?}"
                                );
                                let fast = issuer
                                    .template
                                    .unsigned(&req, serial, gen_time)
                                    .expect("fast");
                                let generic =
                                    issuer.prepare(&req, serial, gen_time).expect("generic");
                                assert_eq!(fast.bytes(), generic.bytes(), "to be signed: {what}");
                                let signature = issuer.signer().sign(fast.bytes()).expect("sign");
                                let token = issuer
                                    .template
                                    .assemble(&fast, &signature, cert_req)
                                    .expect("token");
                                assert_eq!(
                                    token,
                                    generic.assemble(signature).expect("generic token"),
                                    "token: {what}"
                                );
                                compared += 1;
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(compared, 3 * 6 * 3 * 4 * 2 * 6);
    }
}
