//! Signing (PAdES baseline, ETSI EN 319 142-1 §6) and document timestamps (§5.4, ISO 32000-2
//! §12.8.5), each an incremental update after the bytes given.
//!
//! The update adds a signature field merged with its widget (invisible, or drawn on a page),
//! lists it in the AcroForm (created when the file has none) and on its page's /Annots, and
//! writes the signature dictionary with a /ByteRange placeholder and a /Contents hole. The
//! byte ranges (everything but the hole) are hashed as a stream over the input and the update,
//! without copying either; the CMS is built by [`pki::cades::sign`] (signedAttributes
//! contentType, messageDigest, signingCertificateV2 and no signingTime: /M carries the claimed
//! time), and the signature timestamp is requested over its signature value.
//!
//! The hole is sized from the certificates, the key and a token allowance. Should the CMS not
//! fit (a TSA whose tokens carry a long chain), the revision is built again with the exact size
//! plus a margin, signed and timestamped again: an overflow cannot be written.

mod field;

pub(crate) use field::terminal_fields;

use crate::Error;
use crate::document::{self, Loaded, Purpose};
use crate::object::{pdf_date, text_string};
use crate::update::{Hole, TrailerBase, UpdateWriter};
use lopdf::{Dictionary, Object, ObjectId};
use pki::HashAlg;
use pki::cades::{self, CadesSignature, Content, SignRequest};
use pki::cms::SignerCert;
use pki::report::TimestampInfo;
use pki::signer::Signer;
use pki::timestamper::Timestamper;

/// Bytes reserved for a signature timestamp token on the first attempt: an RFC 3161 token with
/// a TSA certificate and one intermediate is 3 to 6 kB.
pub const TOKEN_ALLOWANCE: usize = 12 * 1024;

/// Bytes added to the exact size when a revision has to be built again.
const RETRY_MARGIN: usize = 2048;

/// The PAdES baseline level to produce.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub enum Level {
    /// B-B: the signature alone.
    #[serde(rename = "B-B")]
    BB,
    /// B-T: with a signature timestamp.
    #[default]
    #[serde(rename = "B-T")]
    BT,
    /// B-LT: B-T and a /DSS with the validation data.
    #[serde(rename = "B-LT")]
    BLT,
    /// B-LTA: B-LT and a document timestamp over it.
    #[serde(rename = "B-LTA")]
    BLTA,
}

impl Level {
    /// `B-B`, `B-T`, `B-LT` or `B-LTA`.
    pub fn name(self) -> &'static str {
        match self {
            Level::BB => "B-B",
            Level::BT => "B-T",
            Level::BLT => "B-LT",
            Level::BLTA => "B-LTA",
        }
    }
}

impl std::str::FromStr for Level {
    type Err = String;
    fn from_str(s: &str) -> Result<Level, String> {
        match s.to_ascii_uppercase().as_str() {
            "B-B" => Ok(Level::BB),
            "B-T" => Ok(Level::BT),
            "B-LT" => Ok(Level::BLT),
            "B-LTA" => Ok(Level::BLTA),
            _ => Err(format!("unknown level {s:?} (B-B, B-T, B-LT or B-LTA)")),
        }
    }
}

/// Where a visible signature goes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Visible {
    /// The page, from 1.
    pub page: usize,
    /// The rectangle in default user space: x1, y1, x2, y2.
    pub rect: [f32; 4],
}

impl std::str::FromStr for Visible {
    type Err = String;
    /// `PAGE,X1,Y1,X2,Y2`.
    fn from_str(s: &str) -> Result<Visible, String> {
        let parts: Vec<&str> = s.split(',').map(str::trim).collect();
        let [page, x1, y1, x2, y2] = parts.as_slice() else {
            return Err(format!("{s:?}: expected PAGE,X1,Y1,X2,Y2"));
        };
        let page: usize = page
            .parse()
            .ok()
            .filter(|p| *p >= 1)
            .ok_or_else(|| format!("{s:?}: the page is a number from 1"))?;
        let mut rect = [0f32; 4];
        for (slot, v) in rect.iter_mut().zip([x1, y1, x2, y2]) {
            *slot = v
                .parse()
                .ok()
                .filter(|f: &f32| f.is_finite())
                .ok_or_else(|| format!("{s:?}: {v:?} is not a coordinate"))?;
        }
        if rect[2] <= rect[0] || rect[3] <= rect[1] {
            return Err(format!("{s:?}: X2 must exceed X1 and Y2 exceed Y1"));
        }
        Ok(Visible { page, rect })
    }
}

/// What a signature says and how far it goes: everything but the key and the TSA, so that a
/// bulk run holds it once.
#[derive(Clone, Debug, Default)]
pub struct Details {
    /// The level to reach.
    pub level: Level,
    /// /Reason.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// /ContactInfo.
    pub contact: Option<String>,
    /// /Name (default: the certificate's common name).
    pub name: Option<String>,
    /// The field to sign: an empty signature field of that name, or a new field so named.
    pub field: Option<String>,
    /// A visible signature; `None`: invisible.
    pub visible: Option<Visible>,
    /// DER OCSP responses for the /DSS (B-LT and B-LTA).
    pub ocsp: Vec<Vec<u8>>,
    /// DER CRLs for the /DSS (B-LT and B-LTA).
    pub crl: Vec<Vec<u8>>,
    /// The claimed time (/M), Unix seconds; `None`: now.
    pub signing_time: Option<i64>,
}

/// How to sign.
pub struct SignOptions<'a> {
    /// The key (a file, an HSM).
    pub signer: &'a dyn Signer,
    /// Its certificate.
    pub cert: &'a SignerCert,
    /// Certificates above it (intermediates, and the root if wanted in the /DSS).
    pub chain: &'a [Vec<u8>],
    /// The source of timestamps: required from B-T up.
    pub timestamper: Option<&'a dyn Timestamper>,
    /// What the signature says and its level.
    pub details: &'a Details,
}

/// What was appended.
#[derive(Clone, Debug)]
pub struct Signed {
    /// The bytes to write after the input: one incremental update per revision added.
    pub appended: Vec<u8>,
    /// The field signed.
    pub field: String,
    /// The level reached.
    pub level: Option<Level>,
    /// The signature timestamp, when one was embedded.
    pub timestamp: Option<TimestampInfo>,
    /// The document timestamp, when one was added.
    pub document_timestamp: Option<TimestampInfo>,
}

/// Signs `input` (a whole PDF file).
pub fn sign(input: &[u8], o: &SignOptions<'_>) -> Result<Signed, Error> {
    let d = o.details;
    if d.level >= Level::BT && o.timestamper.is_none() {
        return Err(Error::Usage(format!(
            "{} needs a timestamp authority (--tsa URL); B-B signs without one",
            d.level.name()
        )));
    }
    if !o.cert.matches(o.signer) {
        return Err(Error::Pki(pki::Error::Certificate(
            "the certificate does not belong to the signing key".into(),
        )));
    }
    let mut st = State::new(input)?;
    let now = d.signing_time.unwrap_or_else(pki::gentime::unix_now);
    let signer_name = d.name.clone().unwrap_or_else(|| o.cert.display_name());
    let lines = vec![
        format!("Digitally signed by {signer_name}"),
        format!("Date: {}", pki::gentime::unix_rfc3339(now)),
    ];
    let plan = st.plan_field(d.field.as_deref(), d.visible.as_ref(), Some(&lines))?;

    let mut entries = Dictionary::new();
    entries.set("Type", Object::Name(b"Sig".to_vec()));
    entries.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
    entries.set("SubFilter", Object::Name(b"ETSI.CAdES.detached".to_vec()));
    entries.set("M", text_string(&pdf_date(now)));
    entries.set("Name", text_string(&signer_name));
    for (key, value) in [
        ("Reason", &d.reason),
        ("Location", &d.location),
        ("ContactInfo", &d.contact),
    ] {
        if let Some(v) = value {
            entries.set(key, text_string(v));
        }
    }

    let level_timestamper = (d.level >= Level::BT).then_some(o.timestamper).flatten();
    let request = SignRequest {
        signer: o.signer,
        cert: o.cert,
        chain: o.chain,
        timestamper: level_timestamper,
        signing_time: None,
        smime_capabilities: false,
    };
    let certs_len: usize = o.cert.der.len() + o.chain.iter().map(Vec::len).sum::<usize>();
    let estimate = certs_len
        + 1024
        + o.signer.public_key().len()
        + 64
        + if level_timestamper.is_some() {
            TOKEN_ALLOWANCE
        } else {
            0
        };
    let mut made: Option<CadesSignature> = None;
    let contents = st.add_signature_revision(
        &plan,
        &entries,
        cades::digest_algorithm(o.signer),
        estimate,
        &mut |digest| {
            let s = cades::sign(Content::Detached(digest), &request)?;
            let der = s.der.clone();
            made = Some(s);
            Ok(der)
        },
    )?;
    let made = made.ok_or_else(|| Error::Usage("no signature was made".into()))?;

    let mut document_timestamp = None;
    if d.level >= Level::BLT {
        let mut certs = vec![o.cert.der.clone()];
        certs.extend(o.chain.iter().cloned());
        certs.extend(made.timestamp_certificates.iter().cloned());
        st.add_dss(&contents, &certs, &d.ocsp, &d.crl)?;
    }
    if d.level == Level::BLTA
        && let Some(ts) = o.timestamper
    {
        document_timestamp = Some(st.add_document_timestamp(ts, None)?);
    }
    Ok(Signed {
        appended: st.appended,
        field: plan.name,
        level: Some(d.level),
        timestamp: made.timestamp,
        document_timestamp,
    })
}

/// Adds a document timestamp (SubFilter ETSI.RFC3161) to `input`, in a new invisible field or
/// the empty signature field `field`.
pub fn timestamp(input: &[u8], ts: &dyn Timestamper, field: Option<&str>) -> Result<Signed, Error> {
    let mut st = State::new(input)?;
    let info = st.add_document_timestamp(ts, field)?;
    Ok(Signed {
        appended: st.appended,
        field: st.last_field.clone(),
        level: None,
        timestamp: None,
        document_timestamp: Some(info),
    })
}

/// Hands out object numbers from the trailer's /Size up.
struct Ids(u32);

impl Ids {
    fn next(&mut self) -> ObjectId {
        let id = (self.0, 0);
        self.0 += 1;
        id
    }
}

/// The objects of a new signature field, ready to write.
struct FieldPlan {
    objects: Vec<(ObjectId, Object)>,
    sig_id: ObjectId,
    name: String,
}

/// The document as it grows: the input, what was appended, and lopdf's objects with the
/// updates applied.
struct State<'a> {
    input: &'a [u8],
    appended: Vec<u8>,
    loaded: Loaded,
    last_field: String,
}

impl<'a> State<'a> {
    fn new(input: &'a [u8]) -> Result<State<'a>, Error> {
        let loaded = document::load(input, Purpose::Sign)?;
        if document::pages(&loaded.doc).is_empty() {
            return Err(Error::Damaged("the page tree has no pages".into()));
        }
        if crate::verify::docmdp(&loaded.doc, loaded.root) == 1 {
            return Err(Error::Unsupported(
                "the document is certified with no changes allowed (DocMDP P=1): another \
                 signature would break its certification"
                    .into(),
            ));
        }
        Ok(State {
            input,
            appended: Vec::new(),
            loaded,
            last_field: String::new(),
        })
    }

    fn total_len(&self) -> usize {
        self.input.len() + self.appended.len()
    }

    fn last_byte(&self) -> Option<u8> {
        self.appended.last().or_else(|| self.input.last()).copied()
    }

    fn trailer_base(&self) -> TrailerBase {
        let t = &self.loaded.doc.trailer;
        TrailerBase {
            prev: self.loaded.startxref,
            root: self.loaded.root,
            info: t.get(b"Info").ok().cloned(),
            id_first: t
                .get(b"ID")
                .and_then(Object::as_array)
                .ok()
                .and_then(|a| a.first())
                .and_then(|f| f.as_str().ok())
                .map(<[u8]>::to_vec),
            xref_stream: self.loaded.xref_stream,
        }
    }

    fn commit(&mut self, objects: &[(ObjectId, Object)], update: Vec<u8>, xref_at: usize) {
        self.appended.extend_from_slice(&update);
        for (id, o) in objects {
            self.loaded.doc.objects.insert(*id, o.clone());
        }
        self.loaded.startxref = xref_at;
        if self.loaded.xref_stream {
            self.loaded.size += 1;
        }
    }

    /// The digest of everything but the hole: input, earlier updates, then this update around
    /// the hole, as a stream.
    fn digest(&self, hash: HashAlg, update: &[u8], hole: &Hole) -> Vec<u8> {
        let mut h = hash.hasher();
        h.update(self.input);
        h.update(&self.appended);
        h.update(&update[..hole.contents_start]);
        h.update(&update[hole.contents_end..]);
        h.finish().as_ref().to_vec()
    }

    /// Writes a revision with `plan`'s objects and a signature dictionary whose /Contents
    /// `make` computes from the byte-range digest; returns /Contents as embedded (padded).
    fn add_signature_revision(
        &mut self,
        plan: &FieldPlan,
        entries: &Dictionary,
        hash: HashAlg,
        estimate: usize,
        make: &mut dyn FnMut(Vec<u8>) -> Result<Vec<u8>, Error>,
    ) -> Result<Vec<u8>, Error> {
        let mut capacity = estimate;
        let mut needed = 0;
        for attempt in 0..2 {
            let mut w = UpdateWriter::new(self.total_len(), self.last_byte());
            for (id, o) in &plan.objects {
                w.object(*id, o);
            }
            let hole = w.signature(plan.sig_id, entries, capacity);
            let (mut update, xref_at) = w.finish(self.loaded.size, &self.trailer_base());
            hole.write_byte_range(&mut update, self.total_len())?;
            let contents = make(self.digest(hash, &update, &hole))?;
            needed = contents.len();
            if needed > hole.capacity() {
                if attempt == 0 {
                    capacity = needed + RETRY_MARGIN;
                    continue;
                }
                break;
            }
            hole.fill(&mut update, &contents)?;
            let mut padded = contents;
            padded.resize(hole.capacity(), 0);
            self.commit(&plan.objects, update, xref_at);
            self.last_field.clone_from(&plan.name);
            return Ok(padded);
        }
        Err(Error::HoleTooSmall {
            needed,
            reserved: capacity,
        })
    }

    fn add_document_timestamp(
        &mut self,
        ts: &dyn Timestamper,
        field: Option<&str>,
    ) -> Result<TimestampInfo, Error> {
        let plan = self.plan_field(field, None, None)?;
        let mut entries = Dictionary::new();
        entries.set("Type", Object::Name(b"DocTimeStamp".to_vec()));
        entries.set("Filter", Object::Name(b"Adobe.PPKLite".to_vec()));
        entries.set("SubFilter", Object::Name(b"ETSI.RFC3161".to_vec()));
        let hash = ts.hash_alg();
        let mut info = None;
        self.add_signature_revision(&plan, &entries, hash, TOKEN_ALLOWANCE, &mut |digest| {
            let token = cades::obtain_token(ts, hash, &digest)?;
            info = Some(token.info());
            Ok(token.der)
        })?;
        info.ok_or_else(|| Error::Usage("no token was obtained".into()))
    }

    /// A /DSS update (PAdES §5.4.2): the certificates, OCSP responses and CRLs, each a stream,
    /// listed in /Certs, /OCSPs and /CRLs (after those already there) and in a /VRI entry for
    /// the signature whose /Contents is `contents`.
    fn add_dss(
        &mut self,
        contents: &[u8],
        certs: &[Vec<u8>],
        ocsps: &[Vec<u8>],
        crls: &[Vec<u8>],
    ) -> Result<(), Error> {
        let doc = &self.loaded.doc;
        let mut catalog = doc
            .get_dictionary(self.loaded.root)
            .map_err(|e| Error::Damaged(format!("the catalog: {e}")))?
            .clone();
        let mut dss = catalog
            .get(b"DSS")
            .ok()
            .and_then(|o| document::dict(doc, o))
            .cloned()
            .unwrap_or_default();
        let existing_id = catalog.get(b"DSS").and_then(Object::as_reference).ok();
        let mut ids = Ids(self.loaded.size);
        let mut objects = Vec::new();
        let mut vri = Dictionary::new();
        for (key, vri_key, items) in [
            ("Certs", "Cert", certs),
            ("OCSPs", "OCSP", ocsps),
            ("CRLs", "CRL", crls),
        ] {
            let mut list = match dss.get(key.as_bytes()) {
                Ok(o) => match document::resolve(doc, o) {
                    Object::Array(a) => a.clone(),
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            };
            let mut refs = Vec::new();
            let mut seen: Vec<&[u8]> = Vec::new();
            for der in items {
                if seen.contains(&der.as_slice()) {
                    continue;
                }
                seen.push(der);
                let id = ids.next();
                objects.push((
                    id,
                    Object::Stream(lopdf::Stream::new(Dictionary::new(), der.clone())),
                ));
                refs.push(Object::Reference(id));
            }
            if refs.is_empty() && list.is_empty() {
                continue;
            }
            list.extend(refs.iter().cloned());
            dss.set(key, Object::Array(list));
            if !refs.is_empty() {
                vri.set(vri_key, Object::Array(refs));
            }
        }
        let vri_key = hex::encode_upper(HashAlg::Sha1.digest(contents));
        let mut vris = dss
            .get(b"VRI")
            .ok()
            .and_then(|o| document::dict(&self.loaded.doc, o))
            .cloned()
            .unwrap_or_default();
        vris.set(vri_key.as_bytes(), Object::Dictionary(vri));
        dss.set("VRI", Object::Dictionary(vris));
        let dss_id = match existing_id {
            Some(id) => id,
            None => ids.next(),
        };
        self.loaded.size = ids.0;
        objects.push((dss_id, Object::Dictionary(dss)));
        if existing_id.is_none() {
            catalog.set("DSS", Object::Reference(dss_id));
            objects.push((self.loaded.root, Object::Dictionary(catalog)));
        }
        let mut w = UpdateWriter::new(self.total_len(), self.last_byte());
        for (id, o) in &objects {
            w.object(*id, o);
        }
        let (update, xref_at) = w.finish(self.loaded.size, &self.trailer_base());
        self.commit(&objects, update, xref_at);
        Ok(())
    }
}
