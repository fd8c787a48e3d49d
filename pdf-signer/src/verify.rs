//! Verifying every signature and document timestamp of a PDF, in file order, resisting the
//! published attack classes ("1 Trillion Dollar Refund", CCS 2019; "Shadow Attacks", NDSS 2021):
//!
//! * Universal Signature Forgery: a signature whose /Contents, /ByteRange or /SubFilter is
//!   missing, null, empty or malformed fails with that reason; it is never skipped.
//! * Signature Wrapping ([`byte_range`]): the /ByteRange must start at 0, leave out exactly the
//!   hex string of this signature's /Contents, sitting inside this signature's dictionary, and
//!   end at the end of a revision (`%%EOF`); the bytes around it are hashed as they are.
//! * Incremental Saving and shadow attacks ([`changes`]): every later revision's objects are
//!   compared with the signed revision's and anything not on the whitelist (a /DSS, document
//!   timestamps, later signatures, form filling the signature permits) fails the signature.
//!
//! The CMS goes through `pki`'s one SignerInfo verifier ([`pki::cades::verify_detached`]), a
//! document timestamp through its token verifier; certificates are checked at the time the
//! signature timestamp proves, else a later document timestamp, else now (or `--at`).

pub mod byte_range;
pub mod changes;
mod revisions;

use crate::document::{self, Loaded, Purpose, dict, get};
use crate::object::{decode_text, parse_pdf_date};
use crate::sign::terminal_fields;
use changes::Lock;
use lopdf::{Document, Object, ObjectId};
use pki::HashAlg;
use pki::cades::{CheckTime, SignerChecks};
use pki::report::{Kind, Outcome, PdfSignatureInfo, Report, SignatureReport};
use pki::signer_check::SignedKind;
use pki::token::{ParsedToken, VerifyOptions};
use std::collections::HashMap;

/// How the shared SignerInfo verifier names a PDF's parts.
const PDF_KIND: SignedKind = SignedKind {
    content_type: pki::oid::ID_DATA,
    content_type_name: "id-data",
    content: "the signed byte ranges",
    whole: "the document",
    holder: "the signature",
    signer: "the signer's certificate",
};

/// What to verify a PDF against.
#[derive(Clone, Debug, Default)]
pub struct PdfVerifyOptions {
    /// Anchors for the signers' certificates (`--trust`).
    pub trust: Vec<Vec<u8>>,
    /// Anchors for the TSAs (`--tsa-trust`); `None`: the same as `trust`.
    pub tsa_trust: Option<Vec<Vec<u8>>>,
    /// Certificates to use beside those the signatures and the /DSS carry.
    pub extra_certs: Vec<Vec<u8>>,
    /// When to check the signers' certificate paths.
    pub check_time: CheckTime,
    /// The verifier's clock, Unix seconds (`None`: the system clock).
    pub now: Option<i64>,
    /// Weak algorithms fail.
    pub strict: bool,
}

/// Whether `bytes` look like a PDF (for `stamp verify`'s detection): a `%PDF-` header in the
/// first kilobyte, where readers look for it (the verifier then refuses bytes before it).
pub fn looks_like_pdf(bytes: &[u8]) -> bool {
    memchr::memmem::find(&bytes[..bytes.len().min(1024)], b"%PDF-").is_some()
}

/// One signature dictionary found in the field tree.
struct Found {
    field: String,
    /// The object holding the signature dictionary (the field's /V, or the field itself when
    /// /V is direct).
    holder: Option<ObjectId>,
    sig: lopdf::Dictionary,
    field_lock: Option<lopdf::Dictionary>,
}

/// Verifies a PDF. `source` names it in the report.
pub fn verify_pdf(source: &str, bytes: &[u8], o: &PdfVerifyOptions) -> Report {
    if !bytes.starts_with(b"%PDF-") {
        let why = if looks_like_pdf(bytes) {
            "bytes before the %PDF- header: every offset, the signed byte ranges included, \
             would be read differently by different readers"
        } else {
            "not a PDF (no %PDF- header)"
        };
        return Report::error(Kind::Pdf, source, why);
    }
    let last = match document::load(bytes, Purpose::Verify) {
        Ok(l) => l,
        Err(e) => return Report::error(Kind::Pdf, source, pki::error::error_text(&e)),
    };
    let found = signatures(&last.doc, last.root);
    if found.is_empty() {
        return Report::error(
            Kind::Pdf,
            source,
            "no signature or document timestamp: nothing proves who made this document or when",
        );
    }
    let ends = document::revision_ends(bytes);
    let mut ctx = Ctx {
        bytes,
        ends: &ends,
        last: &last,
        revisions: HashMap::new(),
        opts: o,
        tsa_opts: VerifyOptions {
            trust: o.tsa_trust.clone().unwrap_or_else(|| o.trust.clone()),
            extra_certs: o.extra_certs.clone(),
            now: o.now,
            strict: o.strict,
            ..VerifyOptions::default()
        },
        dss_certs: dss_certificates(&last.doc, last.root),
        signer_ders: HashMap::new(),
    };
    let docmdp = docmdp(&last.doc, last.root);

    // Byte ranges first: they give the file order and the revisions.
    let mut items: Vec<Item> = found
        .into_iter()
        .map(|f| {
            let mut r = SignatureReport::new(f.field.clone());
            let is_doc_ts = matches!(
                get(&last.doc, &f.sig, b"Type"),
                Object::Name(n) if n == b"DocTimeStamp"
            ) || sub_filter(&f.sig).as_deref() == Some("ETSI.RFC3161");
            let contents = match f.sig.get(b"Contents") {
                Ok(Object::String(s, _)) => Some(s.clone()),
                _ => None,
            };
            let range = byte_range::check(
                &mut r,
                bytes,
                &ends,
                &f.sig,
                contents.as_deref(),
                f.holder,
                &last,
            );
            Item {
                found: f,
                r,
                range,
                contents,
                is_doc_ts,
                proven: None,
            }
        })
        .collect();
    items.sort_by_key(|i| i.range.map_or(usize::MAX, |c| c.end));

    // Document timestamps, then signatures (which may rely on a later document timestamp).
    for item in items.iter_mut().filter(|i| i.is_doc_ts) {
        ctx.document_timestamp(item);
    }
    let doc_ts: Vec<(usize, i64)> = items
        .iter()
        .filter(|i| i.is_doc_ts && i.r.failures().is_empty())
        .filter_map(|i| Some((i.range?.end, i.proven?)))
        .collect();
    for item in items.iter_mut().filter(|i| !i.is_doc_ts) {
        let later = item
            .range
            .and_then(|c| doc_ts.iter().find(|(end, _)| *end > c.end).map(|(_, t)| *t));
        ctx.signature(item, later);
    }
    for item in &mut items {
        ctx.modifications(item, docmdp);
        if !item.is_doc_ts {
            ctx.level(item, &doc_ts);
        }
        item.r.finish();
    }
    Report::new(Kind::Pdf, source, items.into_iter().map(|i| i.r).collect())
}

struct Item {
    found: Found,
    r: SignatureReport,
    range: Option<byte_range::Coverage>,
    contents: Option<Vec<u8>>,
    is_doc_ts: bool,
    proven: Option<i64>,
}

struct Ctx<'a> {
    bytes: &'a [u8],
    ends: &'a [(usize, usize)],
    last: &'a Loaded,
    revisions: HashMap<usize, Result<Loaded, String>>,
    opts: &'a PdfVerifyOptions,
    tsa_opts: VerifyOptions,
    dss_certs: Vec<Vec<u8>>,
    signer_ders: HashMap<String, Vec<u8>>,
}

fn sub_filter(sig: &lopdf::Dictionary) -> Option<String> {
    sig.get(b"SubFilter")
        .ok()
        .and_then(|s| s.as_name().ok())
        .map(|n| String::from_utf8_lossy(n).into_owned())
}

fn text(doc: &Document, d: &lopdf::Dictionary, key: &[u8]) -> Option<String> {
    match get(doc, d, key) {
        Object::String(s, _) => Some(decode_text(s)),
        _ => None,
    }
}

impl Ctx<'_> {
    fn info(&self, item: &Item) -> PdfSignatureInfo {
        let doc = &self.last.doc;
        let sig = &item.found.sig;
        let end = item.range.map_or(self.bytes.len(), |c| c.end);
        PdfSignatureInfo {
            field: item.found.field.clone(),
            kind: if item.is_doc_ts {
                "document-timestamp".into()
            } else {
                "signature".into()
            },
            sub_filter: sub_filter(sig).unwrap_or_default(),
            revision: document::revision_at(self.ends, end).unwrap_or(0),
            bytes_after: u64::try_from(self.bytes.len() - end.min(self.bytes.len())).unwrap_or(0),
            allowed_changes: Vec::new(),
            disallowed_changes: Vec::new(),
            level: None,
            claimed_time: text(doc, sig, b"M")
                .and_then(|m| parse_pdf_date(&m))
                .map(pki::gentime::unix_rfc3339),
            reason: text(doc, sig, b"Reason"),
            location: text(doc, sig, b"Location"),
            contact: text(doc, sig, b"ContactInfo"),
            name: text(doc, sig, b"Name"),
        }
    }

    /// The signed bytes' digest with `h`.
    fn digest(&self, c: byte_range::Coverage, h: HashAlg) -> Vec<u8> {
        let mut ctx = h.hasher();
        ctx.update(&self.bytes[..c.hole.0]);
        ctx.update(&self.bytes[c.hole.1..c.end]);
        ctx.finish().as_ref().to_vec()
    }

    fn signature_bytes(&self, item: &mut Item) -> Option<(byte_range::Coverage, Vec<u8>)> {
        item.r.pdf = Some(self.info(item));
        let c = item.range?;
        let contents = item.contents.as_deref()?;
        match pki::cades::strip_padding(contents) {
            Ok(cms) => Some((c, cms.to_vec())),
            Err(e) => {
                item.r.fail("structure", e);
                None
            }
        }
    }

    fn document_timestamp(&mut self, item: &mut Item) {
        let label = format!("{} (document timestamp)", item.found.field);
        item.r.label = label;
        let Some((c, cms)) = self.signature_bytes(item) else {
            return;
        };
        let token = match ParsedToken::parse(&cms) {
            Ok(t) => t,
            Err(e) => {
                item.r.fail(
                    "structure",
                    format!(
                        "/Contents is not a timestamp token: {}",
                        pki::error::error_text(&e)
                    ),
                );
                return;
            }
        };
        let digest = token.hash_alg().map(|h| self.digest(c, h));
        let mut opts = self.tsa_opts.clone();
        opts.extra_certs.extend(self.dss_certs.iter().cloned());
        // A document timestamp is a token: `--at TIME` checks its TSA's path at that moment,
        // as for a token file (`--at claimed` leaves it at genTime: a token claims nothing else).
        if let CheckTime::At(t) = self.opts.check_time {
            opts.at = Some(t);
        }
        let tr = pki::token::verify(&token, digest.as_deref(), &opts);
        for check in &tr.checks {
            item.r
                .check(&check.name, check.outcome, check.detail.clone());
        }
        item.r.signer = tr.signer.clone();
        item.r.chain = tr.chain.clone();
        item.r.timestamp = tr.timestamp.clone();
        item.r.signature_algorithm = tr.signature_algorithm.clone();
        if tr.verified {
            item.proven = Some(token.gen_time().unix_seconds());
        }
    }

    fn signature(&mut self, item: &mut Item, later: Option<i64>) {
        let sf = sub_filter(&item.found.sig);
        let Some((c, cms)) = self.signature_bytes(item) else {
            return;
        };
        let cades = match sf.as_deref() {
            Some("ETSI.CAdES.detached") => true,
            Some("adbe.pkcs7.detached") => false,
            Some(other) => {
                item.r.fail(
                    "sub-filter",
                    format!("/SubFilter /{other} is not supported (ETSI.CAdES.detached, adbe.pkcs7.detached and ETSI.RFC3161 are)"),
                );
                return;
            }
            None => {
                item.r.fail(
                    "sub-filter",
                    "the signature dictionary has no /SubFilter: how it was made cannot be known",
                );
                return;
            }
        };
        let claimed_unix =
            text(&self.last.doc, &item.found.sig, b"M").and_then(|m| parse_pdf_date(&m));
        let later_desc = "a later document timestamp proves";
        let checks = SignerChecks {
            kind: PDF_KIND,
            trust: &self.opts.trust,
            tsa_opts: &self.tsa_opts,
            check_time: self.opts.check_time,
            now: self.opts.now,
            strict: self.opts.strict,
            ekus: pki::oid::PDF_SIGNING_EKUS,
            claimed_elsewhere: claimed_unix,
            later_proof: later.map(|t| (t, later_desc)),
            require_signing_certificate: cades,
        };
        let digest = |h: HashAlg| Some(self.digest(c, h));
        let mut extra = self.opts.extra_certs.clone();
        extra.extend(self.dss_certs.iter().cloned());
        let out = pki::cades::verify_detached(&mut item.r, &cms, &digest, &extra, &checks);
        if cades && out.has_signing_time {
            item.r.check(
                "pades",
                Outcome::Warning,
                "the CMS carries a signingTime attribute, which PAdES baseline signatures must not \
                 (the claimed time belongs in /M)",
            );
        }
        item.proven = out.proven;
        if let Some(der) = out.signer_der {
            item.r.signer = pki::cert::summary(&der).ok();
            self.signer_ders.insert(item.found.field.clone(), der);
        }
    }
}

/// The signature dictionaries of the document's signature fields.
fn signatures(doc: &Document, root: ObjectId) -> Vec<Found> {
    let Some(acro) = doc
        .get_dictionary(root)
        .ok()
        .and_then(|c| c.get(b"AcroForm").ok())
        .and_then(|a| dict(doc, a))
    else {
        return Vec::new();
    };
    let fields = match get(doc, acro, b"Fields") {
        Object::Array(a) => a.clone(),
        _ => Vec::new(),
    };
    let mut out = Vec::new();
    for f in terminal_fields(doc, &fields) {
        if !f.is_signature {
            continue;
        }
        let Some(fd) = f.id.and_then(|id| doc.get_dictionary(id).ok()) else {
            continue;
        };
        let v = fd.get(b"V").ok();
        let holder = match v {
            Some(Object::Reference(id)) => Some(*id),
            Some(Object::Dictionary(_)) => f.id,
            _ => None,
        };
        let Some(sig) = v.and_then(|v| dict(doc, v)).cloned() else {
            continue;
        };
        let field_lock = fd.get(b"Lock").ok().and_then(|l| dict(doc, l)).cloned();
        out.push(Found {
            field: f.name,
            holder,
            sig,
            field_lock,
        });
    }
    out
}

/// The certificates in the final document's /DSS (untrusted: they only help build paths).
fn dss_certificates(doc: &Document, root: ObjectId) -> Vec<Vec<u8>> {
    let Some(dss) = doc
        .get_dictionary(root)
        .ok()
        .and_then(|c| c.get(b"DSS").ok())
        .and_then(|d| dict(doc, d))
    else {
        return Vec::new();
    };
    match get(doc, dss, b"Certs") {
        Object::Array(a) => a
            .iter()
            .filter_map(|c| match document::resolve(doc, c) {
                Object::Stream(s) => s
                    .decompressed_content()
                    .ok()
                    .or_else(|| Some(s.content.clone())),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

/// The keys of the final document's /DSS /VRI (uppercase hex SHA-1 of a signature's /Contents).
fn dss_vri_keys(doc: &Document, root: ObjectId) -> Vec<String> {
    doc.get_dictionary(root)
        .ok()
        .and_then(|c| c.get(b"DSS").ok())
        .and_then(|d| dict(doc, d))
        .and_then(|dss| dss.get(b"VRI").ok())
        .and_then(|v| dict(doc, v))
        .map(|vri| {
            vri.iter()
                .map(|(k, _)| String::from_utf8_lossy(k).to_ascii_uppercase())
                .collect()
        })
        .unwrap_or_default()
}

/// The DocMDP permission level of a certification signature (catalog /Perms /DocMDP), 2 when
/// there is none.
pub(crate) fn docmdp(doc: &Document, root: ObjectId) -> u8 {
    let p = doc
        .get_dictionary(root)
        .ok()
        .and_then(|c| c.get(b"Perms").ok())
        .and_then(|p| dict(doc, p))
        .and_then(|p| p.get(b"DocMDP").ok())
        .and_then(|s| dict(doc, s))
        .and_then(|sig| match get(doc, sig, b"Reference") {
            Object::Array(refs) => refs.iter().find_map(|r| {
                let r = dict(doc, r)?;
                (document::name(doc, r, b"TransformMethod") == Some(b"DocMDP"))
                    .then(|| dict(doc, get(doc, r, b"TransformParams")))
                    .flatten()
                    .and_then(|tp| get(doc, tp, b"P").as_i64().ok())
            }),
            _ => None,
        });
    match p {
        Some(1) => 1,
        Some(3) => 3,
        _ => 2,
    }
}

/// The FieldMDP lock of a signature: the field's /Lock, or a FieldMDP reference in the
/// signature dictionary.
fn lock(doc: &Document, found: &Found) -> Lock {
    let from = |d: &lopdf::Dictionary| -> Lock {
        let names = |key: &[u8]| -> Vec<String> {
            match get(doc, d, key) {
                Object::Array(a) => a
                    .iter()
                    .filter_map(|n| match document::resolve(doc, n) {
                        Object::String(s, _) => Some(decode_text(s)),
                        _ => None,
                    })
                    .collect(),
                _ => Vec::new(),
            }
        };
        match document::name(doc, d, b"Action") {
            Some(b"All") => Lock::All,
            Some(b"Include") => Lock::Include(names(b"Fields")),
            Some(b"Exclude") => Lock::Exclude(names(b"Fields")),
            _ => Lock::None,
        }
    };
    if let Some(l) = &found.field_lock {
        return from(l);
    }
    if let Object::Array(refs) = get(doc, &found.sig, b"Reference") {
        for r in refs {
            if let Some(r) = dict(doc, r)
                && document::name(doc, r, b"TransformMethod") == Some(b"FieldMDP")
                && let Some(tp) = dict(doc, get(doc, r, b"TransformParams"))
            {
                return from(tp);
            }
        }
    }
    Lock::None
}
