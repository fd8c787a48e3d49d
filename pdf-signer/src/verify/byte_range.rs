//! The /ByteRange check (Universal Signature Forgery and Signature Wrapping, CCS 2019): what a
//! signature covers must be the whole of one revision except exactly its own /Contents.
//!
//! The array must be four non-negative direct integers `[0 a b c]` with `a < b` and
//! `b + c` within the file; the bytes from `a` to `b` must be `<`, an even number of hex
//! digits and `>`, whose value is this dictionary's /Contents; that hole must lie inside the
//! object the document's cross-reference data names for this signature dictionary (so the
//! dictionary a reader shows is the one that was signed, and nothing was moved into the hole);
//! and `b + c` must end a revision, at its `%%EOF`.

use crate::document::{self, Loaded};
use lopdf::{Dictionary, Object, ObjectId, xref::XrefEntry};
use pki::report::SignatureReport;

/// What a well-formed /ByteRange covers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Coverage {
    /// The hole: from the `<` to just past the `>`.
    pub hole: (usize, usize),
    /// The end of the signed revision.
    pub end: usize,
}

const NAME: &str = "byte-range";

/// Checks the signature dictionary `sig` (held by object `holder`) against `bytes`; records the
/// `byte-range` check and returns the coverage when it passes.
pub fn check(
    r: &mut SignatureReport,
    bytes: &[u8],
    ends: &[(usize, usize)],
    sig: &Dictionary,
    contents: Option<&[u8]>,
    holder: Option<ObjectId>,
    last: &Loaded,
) -> Option<Coverage> {
    match explain(bytes, ends, sig, contents, holder, last) {
        Ok(c) => {
            r.pass(
                NAME,
                format!(
                    "covers bytes 0–{} and {}–{}: the whole revision except exactly this \
                     signature's /Contents",
                    c.hole.0, c.hole.1, c.end
                ),
            );
            Some(c)
        }
        Err(e) => {
            r.fail(NAME, e);
            None
        }
    }
}

fn kind(o: &Object) -> &'static str {
    match o {
        Object::Null => "null",
        Object::Boolean(_) => "boolean",
        Object::Integer(_) | Object::Real(_) => "number",
        Object::Name(_) => "name",
        Object::String(..) => "string",
        Object::Array(_) => "array",
        Object::Dictionary(_) => "dictionary",
        Object::Stream(_) => "stream",
        Object::Reference(_) => "reference",
    }
}

fn explain(
    bytes: &[u8],
    ends: &[(usize, usize)],
    sig: &Dictionary,
    contents: Option<&[u8]>,
    holder: Option<ObjectId>,
    last: &Loaded,
) -> Result<Coverage, String> {
    let contents = match sig.get(b"Contents") {
        Err(_) => return Err("the signature dictionary has no /Contents".into()),
        Ok(Object::Reference(_)) => {
            return Err(
                "/Contents is an indirect reference: it must be a string inside the \
                        signature dictionary"
                    .into(),
            );
        }
        Ok(Object::String(..)) => contents.unwrap_or_default(),
        Ok(other) => return Err(format!("/Contents is a {}, not a string", kind(other))),
    };
    if contents.iter().all(|&b| b == 0) {
        return Err("/Contents is empty: there is no signature".into());
    }
    let range = match sig.get(b"ByteRange") {
        Err(_) => return Err("the signature dictionary has no /ByteRange".into()),
        Ok(Object::Array(a)) => a,
        Ok(Object::Reference(_)) => {
            return Err(
                "/ByteRange is an indirect reference: its value would lie outside the \
                        signed dictionary"
                    .into(),
            );
        }
        Ok(other) => {
            return Err(format!("/ByteRange is a {}, not an array", kind(other)));
        }
    };
    let nums: Vec<usize> = range
        .iter()
        .map(|o| match o {
            Object::Integer(i) => usize::try_from(*i).ok(),
            _ => None,
        })
        .collect::<Option<Vec<usize>>>()
        .ok_or("/ByteRange holds something other than non-negative integers")?;
    let [start, a, b, c] = nums.as_slice() else {
        return Err(format!(
            "/ByteRange has {} numbers; a signature covers two ranges (four numbers)",
            nums.len()
        ));
    };
    let (a, b, c) = (*a, *b, *c);
    if *start != 0 {
        return Err(format!(
            "/ByteRange starts at byte {start}, not at the file's start"
        ));
    }
    let end = b
        .checked_add(c)
        .filter(|e| *e <= bytes.len())
        .ok_or_else(|| format!("/ByteRange reaches beyond the file's {} bytes", bytes.len()))?;
    if a >= b || a == 0 {
        return Err(format!(
            "/ByteRange [0 {a} {b} {c}] leaves no hole for the signature"
        ));
    }
    let hole = &bytes[a..b];
    if hole.len() < 2 || hole[0] != b'<' || hole[hole.len() - 1] != b'>' {
        return Err(format!(
            "the bytes left out ({a}–{b}) are not a hex string: something other than the \
             signature sits outside the signed ranges"
        ));
    }
    let inner = &hole[1..hole.len() - 1];
    if !inner.len().is_multiple_of(2) || !inner.iter().all(u8::is_ascii_hexdigit) {
        return Err(format!(
            "the bytes left out ({a}–{b}) hold more than hex digits: something other than the \
             signature sits outside the signed ranges"
        ));
    }
    let decoded = hex::decode(inner).map_err(|e| format!("the hole is not hex: {e}"))?;
    if decoded != contents {
        return Err(
            "the bytes left out are not this signature's /Contents (the range points at another \
             string)"
                .into(),
        );
    }
    // The hole must sit inside the object that holds this dictionary.
    let Some(holder) = holder else {
        return Err("the signature dictionary is not an indirect object".into());
    };
    let Some(XrefEntry::Normal { offset, .. }) = last.doc.reference_table.get(holder.0) else {
        return Err(format!(
            "the signature dictionary (object {} {}) is not a plain object in the file",
            holder.0, holder.1
        ));
    };
    let obj_start = usize::try_from(*offset).unwrap_or(usize::MAX);
    let obj_end = bytes
        .get(obj_start..)
        .and_then(|rest| memchr::memmem::find(rest, b"endobj"))
        .map(|p| obj_start + p);
    if !obj_end.is_some_and(|obj_end| obj_start < a && b <= obj_end) {
        return Err(format!(
            "the signed hole ({a}–{b}) is not inside the signature dictionary the document \
             shows (object {} {} at byte {obj_start}): the signature was moved or its \
             dictionary replaced",
            holder.0, holder.1
        ));
    }
    if document::revision_at(ends, end).is_none() {
        return Err(format!(
            "the signed ranges end at byte {end}, which is not the end of a revision (%%EOF): \
             part of a revision is left unsigned"
        ));
    }
    Ok(Coverage { hole: (a, b), end })
}
