//! For tests and demonstrations (feature `testing`): a development PKI with a document signer
//! and an in-process authority, and a one-page statement written by lopdf. Never for
//! production: the keys are generated in memory.

use crate::{Details, SignOptions};
use lopdf::{Document, Object, Stream, dictionary};
use pki::cms::SignerCert;
use pki::devpki::{DevKeyType, DevPki};
use pki::signer::{RingSigner, RsaPadding};
use pki::timestamper::LocalTimestamper;
use pki::tsp::{RequestPolicy, TokenIssuer};
use std::sync::Arc;

/// A signer and an authority under one development root.
pub struct TestPki {
    /// The root, TSA certificate and keys.
    pub dev: DevPki,
    /// The document signer's key (ECDSA P-256).
    pub signer: RingSigner,
    /// Its certificate (documentSigning and emailProtection).
    pub cert: SignerCert,
    /// An authority in this process.
    pub tsa: LocalTimestamper,
}

impl TestPki {
    /// Generates the root, the TSA and a signer named `name` (`email` in its SAN).
    pub fn new(name: &str, email: &str) -> Result<TestPki, pki::Error> {
        let dev = DevPki::generate(DevKeyType::EcdsaP256)?;
        let (cert, key) = dev.issue_signer(name, email, DevKeyType::EcdsaP256)?;
        let tsa_key = RingSigner::from_pkcs8_der(&dev.tsa_key, RsaPadding::Pkcs1)?;
        let issuer = TokenIssuer::new(
            Arc::new(tsa_key),
            SignerCert::from_der(dev.tsa_cert.clone())?,
            vec![dev.root_cert.clone()],
            None,
            false,
        )?;
        Ok(TestPki {
            signer: RingSigner::from_pkcs8_der(&key, RsaPadding::Pkcs1)?,
            cert: SignerCert::from_der(cert)?,
            tsa: LocalTimestamper::new(issuer, RequestPolicy::new(pki::oid::DEV_POLICY)),
            dev,
        })
    }

    /// Options signing with this signer and authority, the root in the chain.
    pub fn options<'a>(&'a self, details: &'a Details) -> SignOptions<'a> {
        SignOptions {
            signer: &self.signer,
            cert: &self.cert,
            chain: std::slice::from_ref(&self.dev.root_cert),
            timestamper: Some(&self.tsa),
            details,
        }
    }
}

/// A one-page PDF 1.7 (classic cross-reference table) showing `line` in Helvetica.
pub fn one_page_pdf(line: &str) -> Vec<u8> {
    page_with_content(format!("BT /F1 18 Tf 72 720 Td ({line}) Tj ET").as_bytes())
}

/// A one-page PDF 1.7 whose page draws `content` (a content stream; font /F1 is Helvetica).
pub fn page_with_content(content: &[u8]) -> Vec<u8> {
    let mut doc = Document::with_version("1.7");
    let pages_id = doc.new_object_id();
    let font = doc.add_object(dictionary! {
        "Type" => "Font", "Subtype" => "Type1", "BaseFont" => "Helvetica",
    });
    let content = doc.add_object(Stream::new(dictionary! {}, content.to_vec()));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => pages_id,
        "MediaBox" => vec![0.into(), 0.into(), 612.into(), 792.into()],
        "Contents" => content,
        "Resources" => dictionary! { "Font" => dictionary! { "F1" => font } },
    });
    doc.objects.insert(
        pages_id,
        Object::Dictionary(
            dictionary! { "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1 },
        ),
    );
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => pages_id });
    doc.trailer.set("Root", catalog);
    let mut out = Vec::new();
    // Writing to a Vec cannot fail.
    let _ = doc.save_to(&mut out);
    out
}
