//! What changed after a signature: the objects of the signed revision compared with those of
//! the final document, each difference judged against a whitelist.
//!
//! Allowed, and named in the report: a /DSS and its streams, document timestamps and later
//! signatures filling their own fields (a new signature field with its widget on a page's
//! /Annots, the AcroForm's /Fields and /SigFlags), form filling when the DocMDP permissions
//! allow it (P 2 or 3; approval signatures without DocMDP allow it) and the field is not locked
//! by a FieldMDP, new annotations when P is 3, the document information dictionary and XMP
//! metadata, the catalog's /Version and /Extensions.
//!
//! Everything else is not: a page's content, resources or other keys; a page-tree node; an
//! annotation removed or a non-widget annotation added (below P 3); a font, image or form
//! XObject rewritten in place; an earlier signature's dictionary; a catalog entry (/Pages,
//! /OpenAction, /Names, /OCProperties, ...); /Root pointing elsewhere; and an object that the
//! signed revision referenced but did not contain, now defined (the "hide" step of the shadow
//! attacks: content already referenced by the signed revision, switched on later).
//!
//! Objects are compared as values (a dictionary by its keys, a stream by its dictionary and its
//! bytes), so a later revision that writes an object again unchanged is no change, and one that
//! points an object number at other bytes is.

use crate::document::{self, dict, resolve};
use crate::sign::terminal_fields;
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::{BTreeSet, HashMap, HashSet};

/// The DocMDP permissions and FieldMDP locks in force for the changes after one signature.
#[derive(Clone, Debug)]
pub struct Policy {
    /// DocMDP /P: 1 no changes, 2 form filling and signing, 3 also annotations. Approval
    /// signatures without a certification signature behave as 2.
    pub docmdp: u8,
    /// Fields this signature locks (FieldMDP).
    pub locked: Lock,
}

/// A FieldMDP lock (ISO 32000-2 §12.8.2.4).
#[derive(Clone, Debug, Default)]
pub enum Lock {
    /// Nothing locked.
    #[default]
    None,
    /// Every field.
    All,
    /// These fields.
    Include(Vec<String>),
    /// Every field but these.
    Exclude(Vec<String>),
}

impl Lock {
    fn locks(&self, field: &str) -> bool {
        match self {
            Lock::None => false,
            Lock::All => true,
            Lock::Include(f) => f.iter().any(|x| x == field),
            Lock::Exclude(f) => !f.iter().any(|x| x == field),
        }
    }
}

/// The differences found, in words.
#[derive(Clone, Debug, Default)]
pub struct Changes {
    /// Allowed changes.
    pub allowed: Vec<String>,
    /// Changes that are not allowed.
    pub disallowed: Vec<String>,
}

impl Changes {
    fn ok(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !self.allowed.contains(&s) {
            self.allowed.push(s);
        }
    }
    fn bad(&mut self, s: impl Into<String>) {
        let s = s.into();
        if !self.disallowed.contains(&s) {
            self.disallowed.push(s);
        }
    }
}

/// Whether two objects are the same value; streams by dictionary and bytes.
pub fn same(a: &Object, b: &Object) -> bool {
    match (a, b) {
        (Object::Stream(x), Object::Stream(y)) => {
            same_dict(&x.dict, &y.dict) && x.content == y.content
        }
        (Object::Dictionary(x), Object::Dictionary(y)) => same_dict(x, y),
        (Object::Array(x), Object::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same(p, q))
        }
        (Object::Real(x), Object::Real(y)) => x.to_bits() == y.to_bits() || x == y,
        (Object::Integer(i), Object::Real(r)) | (Object::Real(r), Object::Integer(i)) => {
            #[allow(clippy::cast_precision_loss)]
            let f = *i as f32;
            f == *r
        }
        _ => a == b,
    }
}

fn same_dict(x: &Dictionary, y: &Dictionary) -> bool {
    x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_ok_and(|w| same(v, w)))
}

/// A field (or one of its widgets, or an appearance stream of one) in the signed revision.
#[derive(Clone, Debug)]
struct FieldRole {
    name: String,
    is_signature: bool,
    signed: bool,
    /// The terminal field object, which holds /V.
    field: ObjectId,
}

/// The roles objects of the signed revision play, for judging and describing their changes.
#[derive(Default)]
struct Roles {
    pages: HashMap<ObjectId, usize>,
    annots_arrays: HashMap<ObjectId, ObjectId>,
    acroform: Option<ObjectId>,
    fields_array: Option<ObjectId>,
    /// Field and widget objects.
    fields: HashMap<ObjectId, FieldRole>,
    /// Appearance streams of widgets, with their field.
    appearances: HashMap<ObjectId, FieldRole>,
    signature_dicts: HashSet<ObjectId>,
    page_contents: HashMap<ObjectId, usize>,
    info: Option<ObjectId>,
    metadata: Option<ObjectId>,
    dss: HashSet<ObjectId>,
}

fn roles(doc: &Document, root: ObjectId) -> Roles {
    let mut r = Roles::default();
    for (i, p) in document::pages(doc).into_iter().enumerate() {
        r.pages.insert(p, i + 1);
        for c in doc.get_page_contents(p) {
            r.page_contents.insert(c, i + 1);
        }
        if let Ok(page) = doc.get_dictionary(p)
            && let Ok(id) = page.get(b"Annots").and_then(Object::as_reference)
        {
            r.annots_arrays.insert(id, p);
        }
    }
    r.info = doc.trailer.get(b"Info").and_then(Object::as_reference).ok();
    let Ok(catalog) = doc.get_dictionary(root) else {
        return r;
    };
    r.metadata = catalog.get(b"Metadata").and_then(Object::as_reference).ok();
    if let Ok(d) = catalog.get(b"DSS") {
        if let Ok(id) = d.as_reference() {
            r.dss.insert(id);
        }
        if let Some(dd) = dict(doc, d) {
            for (_, v) in dd.iter() {
                if let Ok(id) = v.as_reference() {
                    r.dss.insert(id);
                }
                if let Some(vri) = dict(doc, v) {
                    for (_, e) in vri.iter() {
                        if let Ok(id) = e.as_reference() {
                            r.dss.insert(id);
                        }
                    }
                }
            }
        }
    }
    let Ok(acro) = catalog.get(b"AcroForm") else {
        return r;
    };
    r.acroform = acro.as_reference().ok();
    let Some(acro) = dict(doc, acro) else {
        return r;
    };
    r.fields_array = acro.get(b"Fields").and_then(Object::as_reference).ok();
    let fields = match acro.get(b"Fields").map(|f| resolve(doc, f)) {
        Ok(Object::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for f in terminal_fields(doc, &fields) {
        let Some(id) = f.id else { continue };
        let role = FieldRole {
            name: f.name.clone(),
            is_signature: f.is_signature,
            signed: f.signed,
            field: id,
        };
        r.fields.insert(id, role.clone());
        let Ok(fd) = doc.get_dictionary(id) else {
            continue;
        };
        if f.is_signature
            && let Ok(v) = fd.get(b"V").and_then(Object::as_reference)
        {
            r.signature_dicts.insert(v);
        }
        // Widgets: the field itself (merged) or its kids.
        let mut widgets = vec![id];
        if let Object::Array(kids) = document::get(doc, fd, b"Kids") {
            for k in kids {
                if let Ok(kid) = k.as_reference() {
                    r.fields.entry(kid).or_insert_with(|| role.clone());
                    widgets.push(kid);
                }
            }
        }
        for w in widgets {
            let Ok(wd) = doc.get_dictionary(w) else {
                continue;
            };
            if let Some(ap) = dict(doc, document::get(doc, wd, b"AP"))
                .or_else(|| wd.get(b"AP").ok().and_then(|o| dict(doc, o)))
            {
                for (_, state) in ap.iter() {
                    if let Ok(id) = state.as_reference() {
                        r.appearances.insert(id, role.clone());
                    }
                    if let Some(states) = dict(doc, state) {
                        for (_, s) in states.iter() {
                            if let Ok(id) = s.as_reference() {
                                r.appearances.insert(id, role.clone());
                            }
                        }
                    }
                }
            }
        }
    }
    r
}

/// Every object number `doc`'s objects refer to.
fn references(doc: &Document) -> HashSet<ObjectId> {
    fn walk(o: &Object, out: &mut HashSet<ObjectId>) {
        match o {
            Object::Reference(id) => {
                out.insert(*id);
            }
            Object::Array(a) => a.iter().for_each(|x| walk(x, out)),
            Object::Dictionary(d) => d.iter().for_each(|(_, v)| walk(v, out)),
            Object::Stream(s) => s.dict.iter().for_each(|(_, v)| walk(v, out)),
            _ => {}
        }
    }
    let mut out = HashSet::new();
    for o in doc.objects.values() {
        walk(o, &mut out);
    }
    // Not the trailer: some producers name there (/AdditionalStreams) objects a later revision
    // will add, which shows nothing.
    out
}

/// Whether object `id` is unchanged between the two revisions of the file `bytes`. Streams
/// whose bytes the loader dropped ([`crate::document::KEPT_STREAM_BYTES`]) are compared by
/// their bytes in the file: the same cross-reference entry, or the same dictionary and the same
/// stream data (data written again with other bytes counts as changed, even if it decodes to
/// the same content).
fn unchanged(
    bytes: &[u8],
    old: &Document,
    new: &Document,
    id: ObjectId,
    a: &Object,
    b: &Object,
) -> bool {
    let (Object::Stream(x), Object::Stream(y)) = (a, b) else {
        return same(a, b);
    };
    let entry = |d: &Document| match d.reference_table.get(id.0) {
        Some(lopdf::xref::XrefEntry::Normal { offset, generation }) => Some((*offset, *generation)),
        _ => None,
    };
    if entry(old).is_some() && entry(old) == entry(new) {
        return true;
    }
    if !same_dict(&x.dict, &y.dict) {
        return false;
    }
    match (
        stream_data(bytes, old, id, &x.dict),
        stream_data(bytes, new, id, &y.dict),
    ) {
        (Some(p), Some(q)) => p == q,
        // Not found where the dictionary says: count it as changed.
        _ => false,
    }
}

/// A stream's data as it sits in the file: /Length bytes after the `stream` keyword and its
/// end of line.
fn stream_data<'a>(
    bytes: &'a [u8],
    doc: &Document,
    id: ObjectId,
    dict: &Dictionary,
) -> Option<&'a [u8]> {
    let Some(lopdf::xref::XrefEntry::Normal { offset, .. }) = doc.reference_table.get(id.0) else {
        return None;
    };
    // From the object's start, not up to the first `endobj`: the data may hold those bytes.
    let raw = bytes.get(usize::try_from(*offset).ok()?..)?;
    let len = match dict.get(b"Length").ok()? {
        Object::Integer(n) => usize::try_from(*n).ok()?,
        Object::Reference(r) => usize::try_from(doc.objects.get(r)?.as_i64().ok()?).ok()?,
        _ => return None,
    };
    let head = &raw[..raw.len().min(64 * 1024)];
    let at = memchr::memmem::find(head, b"stream")? + "stream".len();
    let start = at
        + match raw.get(at..at + 2)? {
            [b'\r', b'\n'] => 2,
            [b'\n', _] | [b'\r', _] => 1,
            _ => return None,
        };
    raw.get(start..start.checked_add(len)?)
}

/// Compares the signed revision `old` with the final document `new` (both read from `bytes`)
/// under `policy`.
pub fn analyse(bytes: &[u8], old: &Document, new: &Document, policy: &Policy) -> Changes {
    let mut c = Changes::default();
    let root = |d: &Document| d.trailer.get(b"Root").and_then(Object::as_reference).ok();
    let (Some(old_root), Some(new_root)) = (root(old), root(new)) else {
        c.bad("a revision has no catalog");
        return c;
    };
    if old_root != new_root {
        c.bad(format!(
            "the catalog was replaced (/Root {} {} R became {} {} R)",
            old_root.0, old_root.1, new_root.0, new_root.1
        ));
    }
    if new.trailer.has(b"Encrypt") && !old.trailer.has(b"Encrypt") {
        c.bad("encryption was added");
    }
    let roles = roles(old, old_root);
    let new_roles = roles_fields_only(new, new_root);
    let referenced = references(old);
    let ids: BTreeSet<ObjectId> = old
        .objects
        .keys()
        .chain(new.objects.keys())
        .copied()
        .collect();
    for id in ids {
        match (old.objects.get(&id), new.objects.get(&id)) {
            (Some(a), Some(b)) if unchanged(bytes, old, new, id, a, b) => {}
            (Some(_), None) => c.bad(format!("object {} {} was deleted", id.0, id.1)),
            (None, Some(_)) => {
                if referenced.contains(&id) {
                    c.bad(format!(
                        "object {} {}, referenced but absent in the signed revision, is now \
                         defined (content switched on after signing)",
                        id.0, id.1
                    ));
                }
            }
            (Some(a), Some(b)) => judge(&mut c, id, a, b, old, new, &roles, &new_roles, policy),
            (None, None) => {}
        }
    }
    c
}

/// Signature fields of the final document (for recognising widgets of new signatures).
fn roles_fields_only(doc: &Document, root: ObjectId) -> HashMap<ObjectId, (String, bool)> {
    let mut out = HashMap::new();
    let Ok(catalog) = doc.get_dictionary(root) else {
        return out;
    };
    let Some(acro) = catalog.get(b"AcroForm").ok().and_then(|a| dict(doc, a)) else {
        return out;
    };
    let fields = match acro.get(b"Fields").map(|f| resolve(doc, f)) {
        Ok(Object::Array(a)) => a.clone(),
        _ => Vec::new(),
    };
    for f in terminal_fields(doc, &fields) {
        if let Some(id) = f.id {
            out.insert(id, (f.name.clone(), f.is_signature));
            if let Ok(fd) = doc.get_dictionary(id)
                && let Object::Array(kids) = document::get(doc, fd, b"Kids")
            {
                for k in kids {
                    if let Ok(kid) = k.as_reference() {
                        out.insert(kid, (f.name.clone(), f.is_signature));
                    }
                }
            }
        }
    }
    out
}

/// Keys of two dictionaries whose values differ.
fn changed_keys(a: &Dictionary, b: &Dictionary) -> Vec<String> {
    let keys: BTreeSet<&Vec<u8>> = a
        .iter()
        .map(|(k, _)| k)
        .chain(b.iter().map(|(k, _)| k))
        .collect();
    keys.into_iter()
        .filter(|k| match (a.get(k), b.get(k)) {
            (Ok(x), Ok(y)) => !same(x, y),
            _ => true,
        })
        .map(|k| String::from_utf8_lossy(k).into_owned())
        .collect()
}

fn as_dict(o: &Object) -> Option<&Dictionary> {
    match o {
        Object::Dictionary(d) => Some(d),
        Object::Stream(s) => Some(&s.dict),
        _ => None,
    }
}

fn type_name(o: &Object) -> String {
    as_dict(o)
        .and_then(|d| d.get(b"Type").ok())
        .and_then(|t| t.as_name().ok())
        .map(|n| format!(" (/{})", String::from_utf8_lossy(n)))
        .unwrap_or_default()
}

#[allow(clippy::too_many_arguments)]
fn judge(
    c: &mut Changes,
    id: ObjectId,
    a: &Object,
    b: &Object,
    old: &Document,
    new: &Document,
    roles: &Roles,
    new_fields: &HashMap<ObjectId, (String, bool)>,
    policy: &Policy,
) {
    let obj = format!("object {} {}", id.0, id.1);
    let root = old.trailer.get(b"Root").and_then(Object::as_reference).ok();
    if Some(id) == root {
        let (Some(x), Some(y)) = (as_dict(a), as_dict(b)) else {
            c.bad("the catalog is no longer a dictionary");
            return;
        };
        for key in changed_keys(x, y) {
            match key.as_str() {
                "DSS" => c.ok("validation data (/DSS) added"),
                "Version" | "Extensions" => c.ok(format!("catalog /{key} updated")),
                "Metadata" => c.ok("XMP metadata replaced"),
                "AcroForm" => match (x.get(b"AcroForm"), y.get(b"AcroForm")) {
                    (Ok(Object::Dictionary(p)), Ok(Object::Dictionary(q))) => {
                        judge_acroform(c, p, q, old, new, new_fields, policy);
                    }
                    (Err(_), Ok(q)) => match dict(new, q) {
                        Some(q) => {
                            judge_acroform(c, &Dictionary::new(), q, old, new, new_fields, policy)
                        }
                        None => c.bad("the catalog's /AcroForm is not a dictionary"),
                    },
                    _ => c.bad("the catalog's /AcroForm was replaced"),
                },
                other => c.bad(format!("the catalog's /{other} changed")),
            }
        }
        return;
    }
    if roles.dss.contains(&id) {
        c.ok("validation data (/DSS) updated");
        return;
    }
    if Some(id) == roles.info {
        c.ok("document information (/Info) updated");
        return;
    }
    if Some(id) == roles.metadata {
        c.ok("XMP metadata updated");
        return;
    }
    if Some(id) == roles.acroform {
        match (as_dict(a), as_dict(b)) {
            (Some(p), Some(q)) => judge_acroform(c, p, q, old, new, new_fields, policy),
            _ => c.bad("the AcroForm is no longer a dictionary"),
        }
        return;
    }
    if Some(id) == roles.fields_array {
        judge_fields(c, a, b, new, new_fields, policy);
        return;
    }
    if let Some(&page) = roles.pages.get(&id) {
        let (Some(p), Some(q)) = (as_dict(a), as_dict(b)) else {
            c.bad(format!("page {page} is no longer a dictionary"));
            return;
        };
        for key in changed_keys(p, q) {
            if key == "Annots" {
                let empty = Object::Array(Vec::new());
                let pa = p.get(b"Annots").map_or(&empty, |o| resolve(old, o));
                let qa = q.get(b"Annots").map_or(&empty, |o| resolve(new, o));
                judge_annots(c, page, pa, qa, new, new_fields, policy);
            } else {
                c.bad(format!("page {page}'s /{key} changed"));
            }
        }
        return;
    }
    if let Some(&page_id) = roles.annots_arrays.get(&id) {
        let page = roles.pages.get(&page_id).copied().unwrap_or(0);
        judge_annots(c, page, a, b, new, new_fields, policy);
        return;
    }
    if let Some(&page) = roles.page_contents.get(&id) {
        c.bad(format!("the content of page {page} changed ({obj})"));
        return;
    }
    if roles.signature_dicts.contains(&id) {
        c.bad(format!(
            "the dictionary of an earlier signature changed ({obj})"
        ));
        return;
    }
    if let Some(role) = roles.fields.get(&id) {
        let name = &role.name;
        let (Some(p), Some(q)) = (as_dict(a), as_dict(b)) else {
            c.bad(format!("field {name:?} is no longer a dictionary"));
            return;
        };
        let keys = changed_keys(p, q);
        let value_keys = |k: &String| matches!(k.as_str(), "V" | "AP" | "AS");
        // Signing an empty field may also set its widget flags and appearance characteristics.
        let signing_keys = |k: &String| value_keys(k) || matches!(k.as_str(), "F" | "MK");
        if role.is_signature {
            if role.signed {
                c.bad(format!(
                    "the signed field {name:?} changed ({})",
                    keys.join(", ")
                ));
            } else if keys.iter().all(signing_keys) {
                if policy.locked.locks(name) {
                    c.bad(format!(
                        "signature field {name:?}, locked by this signature, was signed"
                    ));
                } else {
                    c.ok(format!("signature field {name:?} signed"));
                }
            } else {
                c.bad(format!(
                    "signature field {name:?} changed ({})",
                    keys.join(", ")
                ));
            }
        } else {
            let filled = value_changed(old, new, role.field);
            judge_form_fill(
                c,
                name,
                keys.iter().all(value_keys),
                filled,
                &keys.join(", "),
                policy,
            );
        }
        return;
    }
    if let Some(role) = roles.appearances.get(&id) {
        let filled = !role.is_signature && value_changed(old, new, role.field);
        judge_form_fill(
            c,
            &role.name,
            true,
            filled,
            "its appearance stream rewritten",
            policy,
        );
        return;
    }
    if type_name(a) == " (/Pages)" {
        c.bad(format!(
            "the page tree changed ({obj}): pages added, removed or replaced"
        ));
        return;
    }
    c.bad(format!("{obj}{} changed", type_name(a)));
}

/// Whether field `field`'s value (/V) differs between the two revisions.
fn value_changed(old: &Document, new: &Document, field: ObjectId) -> bool {
    let v = |d: &Document| {
        d.get_dictionary(field)
            .ok()
            .and_then(|f| f.get(b"V").ok())
            .cloned()
    };
    match (v(old), v(new)) {
        (Some(x), Some(y)) => !same(&x, &y),
        (None, None) => false,
        _ => true,
    }
}

/// Form filling: the value and its appearance may change together, when DocMDP and FieldMDP
/// allow it. An appearance that changes while the value does not is what the shadow
/// "replace" attack does (a field shows other text than it holds) and is refused.
fn judge_form_fill(
    c: &mut Changes,
    name: &str,
    only_values: bool,
    value_changed: bool,
    what: &str,
    policy: &Policy,
) {
    if !only_values {
        c.bad(format!(
            "form field {name:?} changed beyond its value ({what})"
        ));
    } else if !value_changed {
        c.bad(format!(
            "the appearance of form field {name:?} changed while its value did not ({what}): \
             what is shown is not what was filled in"
        ));
    } else if policy.docmdp < 2 {
        c.bad(format!(
            "form field {name:?} filled, but the certification (DocMDP P=1) allows no changes"
        ));
    } else if policy.locked.locks(name) {
        c.bad(format!(
            "form field {name:?}, locked by this signature, was changed"
        ));
    } else {
        c.ok(format!("form field {name:?} filled"));
    }
}

fn judge_acroform(
    c: &mut Changes,
    p: &Dictionary,
    q: &Dictionary,
    old: &Document,
    new: &Document,
    new_fields: &HashMap<ObjectId, (String, bool)>,
    policy: &Policy,
) {
    for key in changed_keys(p, q) {
        match key.as_str() {
            "Fields" => {
                let empty = Object::Array(Vec::new());
                let fa = p.get(b"Fields").map_or(&empty, |o| resolve(old, o));
                let fb = q.get(b"Fields").map_or(&empty, |o| resolve(new, o));
                judge_fields(c, fa, fb, new, new_fields, policy);
            }
            "SigFlags" => {}
            "DR" | "DA" => c.ok(format!("form defaults (/{key}) updated")),
            other => c.bad(format!("the AcroForm's /{other} changed")),
        }
    }
}

fn judge_fields(
    c: &mut Changes,
    a: &Object,
    b: &Object,
    new: &Document,
    new_fields: &HashMap<ObjectId, (String, bool)>,
    policy: &Policy,
) {
    let (Object::Array(a), Object::Array(b)) = (a, b) else {
        c.bad("the AcroForm's /Fields is not an array");
        return;
    };
    for x in a {
        if !b.iter().any(|y| same(x, y)) {
            c.bad("a form field was removed");
        }
    }
    for y in b.iter().filter(|y| !a.iter().any(|x| same(x, y))) {
        let is_sig = y
            .as_reference()
            .ok()
            .and_then(|id| new_fields.get(&id))
            .is_some_and(|(_, s)| *s);
        let name = y
            .as_reference()
            .ok()
            .and_then(|id| new_fields.get(&id))
            .map_or_else(String::new, |(n, _)| n.clone());
        if is_sig {
            if policy.docmdp < 2 && !is_document_timestamp(new, y) {
                c.bad(format!(
                    "signature field {name:?} added, but the certification (DocMDP P=1) allows \
                     no changes"
                ));
            } else {
                c.ok(format!("signature field {name:?} added"));
            }
        } else {
            c.bad(format!("form field {name:?} added"));
        }
    }
}

/// Whether the field `f` (new document) holds a document timestamp, which DocMDP P=1 allows.
fn is_document_timestamp(doc: &Document, f: &Object) -> bool {
    dict(doc, f)
        .map(|d| document::get(doc, d, b"V"))
        .and_then(|v| as_dict(v))
        .and_then(|v| v.get(b"Type").ok())
        .and_then(|t| t.as_name().ok())
        == Some(b"DocTimeStamp".as_slice())
}

fn judge_annots(
    c: &mut Changes,
    page: usize,
    a: &Object,
    b: &Object,
    new: &Document,
    new_fields: &HashMap<ObjectId, (String, bool)>,
    policy: &Policy,
) {
    let empty = Vec::new();
    let a = match a {
        Object::Array(a) => a,
        _ => &empty,
    };
    let Object::Array(b) = b else {
        c.bad(format!("page {page}'s /Annots is not an array"));
        return;
    };
    for x in a {
        if !b.iter().any(|y| same(x, y)) {
            c.bad(format!("an annotation was removed from page {page}"));
        }
    }
    for y in b.iter().filter(|y| !a.iter().any(|x| same(x, y))) {
        let field = y.as_reference().ok().and_then(|id| new_fields.get(&id));
        match field {
            Some((name, true)) => {
                if policy.docmdp < 2 && !is_document_timestamp(new, y) {
                    c.bad(format!(
                        "signature widget {name:?} added on page {page} under DocMDP P=1"
                    ));
                } else {
                    c.ok(format!("signature widget {name:?} added on page {page}"));
                }
            }
            Some((name, false)) => {
                c.bad(format!("form field widget {name:?} added on page {page}"))
            }
            None => {
                let subtype = dict(new, y)
                    .and_then(|d| d.get(b"Subtype").ok())
                    .and_then(|s| s.as_name().ok())
                    .map_or_else(|| "?".into(), |n| String::from_utf8_lossy(n).into_owned());
                if policy.docmdp >= 3 && subtype != "Widget" {
                    c.ok(format!(
                        "/{subtype} annotation added on page {page} (DocMDP P=3 allows it)"
                    ));
                } else {
                    c.bad(format!("/{subtype} annotation added on page {page}"));
                }
            }
        }
    }
}
