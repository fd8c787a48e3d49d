//! Reading a PDF (or one revision of it) with lopdf, and the facts the signer and the verifier
//! need beyond lopdf's object table: where the newest cross-reference section starts and
//! whether it is a table or a stream, and where each revision ends.
//!
//! A file is only signed when its cross-reference data reads as written: lopdf repairs damaged
//! files by scanning for objects, and an update appended to a repaired reading would point
//! (with /Prev) at data other readers cannot use, or would sign objects other readers do not
//! see. Encrypted files are refused: their strings and streams would have to be encrypted too,
//! and a signature dictionary's /Contents must not be.

use crate::Error;
use lopdf::{Document, LoadOptions, Object, ObjectId};

/// What the file is loaded for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Signing: stream contents are dropped as they are read (except object streams, which
    /// hold objects), so that a large file is not held twice.
    Sign,
    /// Verifying: streams up to [`KEPT_STREAM_BYTES`] are kept (a /DSS's certificates, content
    /// streams), larger ones dropped; the revision comparison compares those by their bytes in
    /// the file ([`crate::verify::changes`]).
    Verify,
}

/// Largest stream whose bytes a verifying load keeps.
pub const KEPT_STREAM_BYTES: usize = 256 * 1024;

/// A loaded revision.
pub struct Loaded {
    /// lopdf's reading.
    pub doc: Document,
    /// Whether the newest cross-reference section is a stream (PDF 1.5) rather than a table.
    pub xref_stream: bool,
    /// Offset of the newest cross-reference section (what `startxref` says).
    pub startxref: usize,
    /// The trailer's /Size: one more than the highest object number in use.
    pub size: u32,
    /// The catalog.
    pub root: ObjectId,
}

/// Most stream bytes a single object stream or cross-reference stream may inflate to: far
/// above real files, and a decompression bomb stops here.
pub const MAX_DECOMPRESSED: usize = 256 * 1024 * 1024;

/// lopdf's load filters: a stream's bytes are dropped as soon as it is parsed, so that a large
/// file is not held twice (all of them when signing, which reads dictionaries only; those over
/// [`KEPT_STREAM_BYTES`] when verifying). Object streams are kept: lopdf reads the objects in
/// them. lopdf uses the object passed in for plain objects and the one returned for members of
/// object streams, so both carry the change; and the bytes are replaced by one byte rather than
/// none, because lopdf reads the content of empty streams again afterwards (for streams whose
/// /Length it could not know while parsing).
fn drop_streams(id: ObjectId, o: &mut Object) -> Option<(ObjectId, Object)> {
    drop_streams_over(o, 0);
    Some((id, o.clone()))
}

fn drop_large_streams(id: ObjectId, o: &mut Object) -> Option<(ObjectId, Object)> {
    drop_streams_over(o, KEPT_STREAM_BYTES);
    Some((id, o.clone()))
}

fn drop_streams_over(o: &mut Object, limit: usize) {
    if let Object::Stream(s) = o
        && !s.dict.has_type(b"ObjStm")
        && s.content.len() > limit
    {
        s.content = vec![0];
    }
}

/// Loads `bytes` (a whole file, or a file up to the end of one revision).
pub fn load(bytes: &[u8], purpose: Purpose) -> Result<Loaded, Error> {
    if !bytes.starts_with(b"%PDF-") {
        return Err(Error::NotPdf(
            "the file does not start with %PDF- (bytes before the header would shift every \
             offset)"
                .into(),
        ));
    }
    let options = LoadOptions {
        filter: Some(match purpose {
            Purpose::Sign => drop_streams as lopdf::FilterFunc,
            Purpose::Verify => drop_large_streams,
        }),
        max_decompressed_size: Some(MAX_DECOMPRESSED),
        ..LoadOptions::default()
    };
    let doc = match Document::load_mem_with_options(bytes, options) {
        Ok(d) => d,
        Err(e) if has_encrypt(bytes) => return Err(Error::Encrypted(Some(Box::new(e)))),
        Err(e) => return Err(Error::Damaged(format!("lopdf cannot read it: {e}"))),
    };
    if doc.trailer.has(b"Encrypt") || doc.encryption_state.is_some() {
        return Err(Error::Encrypted(None));
    }
    if let Some(how) = doc.xref_recovery {
        return Err(Error::Damaged(format!(
            "its cross-reference data does not read as written ({how:?}); a repaired copy \
             (`qpdf in.pdf repaired.pdf`) can be signed"
        )));
    }
    let startxref = doc.xref_start;
    let xref_stream = !bytes
        .get(startxref..)
        .is_some_and(|b| b.starts_with(b"xref"));
    let root = doc
        .trailer
        .get(b"Root")
        .and_then(Object::as_reference)
        .map_err(|e| Error::Damaged(format!("the trailer names no catalog (/Root): {e}")))?;
    if doc.get_dictionary(root).is_err() {
        return Err(Error::Damaged(format!(
            "the catalog {} {} R is missing or not a dictionary",
            root.0, root.1
        )));
    }
    let declared = doc
        .trailer
        .get(b"Size")
        .and_then(Object::as_i64)
        .ok()
        .and_then(|s| u32::try_from(s).ok())
        .unwrap_or(0);
    let size = declared.max(doc.max_id.saturating_add(1));
    Ok(Loaded {
        doc,
        xref_stream,
        startxref,
        size,
        root,
    })
}

fn has_encrypt(bytes: &[u8]) -> bool {
    memchr::memmem::find(bytes, b"/Encrypt").is_some()
}

/// The ends of the file's revisions: for each `%%EOF` marker, in file order, the offset just
/// past it and the offset past the end-of-line after it (CR, LF or CRLF). A revision's
/// signature covers the file up to either.
pub fn revision_ends(bytes: &[u8]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    for at in memchr::memmem::find_iter(bytes, b"%%EOF") {
        let marker_end = at + 5;
        let mut end = marker_end;
        if bytes.get(end) == Some(&b'\r') {
            end += 1;
        }
        if bytes.get(end) == Some(&b'\n') {
            end += 1;
        }
        out.push((marker_end, end));
    }
    out
}

/// Which revision (from 1) ends at `end`, if any.
pub fn revision_at(ends: &[(usize, usize)], end: usize) -> Option<usize> {
    ends.iter()
        .position(|(lo, hi)| (*lo..=*hi).contains(&end))
        .map(|p| p + 1)
}

/// Resolves `o` through references (at most a few hops: a reference to a reference is legal but
/// rare, and a loop must end).
pub fn resolve<'a>(doc: &'a Document, mut o: &'a Object) -> &'a Object {
    for _ in 0..8 {
        match o {
            Object::Reference(id) => match doc.objects.get(id) {
                Some(next) => o = next,
                None => return &Object::Null,
            },
            _ => return o,
        }
    }
    &Object::Null
}

/// The dictionary `o` is or refers to.
pub fn dict<'a>(doc: &'a Document, o: &'a Object) -> Option<&'a lopdf::Dictionary> {
    match resolve(doc, o) {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

/// `d[key]`, resolved.
pub fn get<'a>(doc: &'a Document, d: &'a lopdf::Dictionary, key: &[u8]) -> &'a Object {
    d.get(key).map_or(&Object::Null, |o| resolve(doc, o))
}

/// `d[key]` as a name.
pub fn name<'a>(doc: &'a Document, d: &'a lopdf::Dictionary, key: &[u8]) -> Option<&'a [u8]> {
    match get(doc, d, key) {
        Object::Name(n) => Some(n),
        _ => None,
    }
}

/// The pages in order (lopdf's page tree walk, which guards against loops).
pub fn pages(doc: &Document) -> Vec<ObjectId> {
    doc.page_iter().collect()
}
