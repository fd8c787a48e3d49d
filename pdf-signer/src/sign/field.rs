//! The signature field of a new signature (ISO 32000-2 §12.7.5.5): an empty signature field
//! of the name asked for is filled; otherwise a field merged with its widget annotation is
//! added to the AcroForm's /Fields and to its page's /Annots. Objects that hold those arrays
//! (the catalog when the AcroForm sits inside it, the AcroForm, the page, an indirect array)
//! are written again with only that change.

use super::{FieldPlan, Ids, State};
use crate::Error;
use crate::appearance;
use crate::document;
use crate::object::{decode_text, text_string};
use crate::sign::Visible;
use lopdf::{Dictionary, Document, Object, ObjectId};
use std::collections::HashSet;

/// Field annotation flags: Print (4) and Locked (128).
const WIDGET_FLAGS: i64 = 132;

/// Deepest field hierarchy followed.
const MAX_FIELD_DEPTH: usize = 32;

/// A terminal field, by its fully qualified name.
pub(crate) struct FieldRef {
    pub id: Option<ObjectId>,
    pub name: String,
    pub is_signature: bool,
    pub signed: bool,
}

/// Every terminal field under `fields` (the AcroForm's /Fields), with fully qualified names.
pub(crate) fn terminal_fields(doc: &Document, fields: &[Object]) -> Vec<FieldRef> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    for f in fields {
        walk(doc, f, "", None, 0, &mut seen, &mut out);
    }
    out
}

fn walk(
    doc: &Document,
    o: &Object,
    prefix: &str,
    inherited_ft: Option<&[u8]>,
    depth: usize,
    seen: &mut HashSet<ObjectId>,
    out: &mut Vec<FieldRef>,
) {
    let id = o.as_reference().ok();
    if depth > MAX_FIELD_DEPTH || id.is_some_and(|id| !seen.insert(id)) {
        return;
    }
    let Some(d) = document::dict(doc, o) else {
        return;
    };
    let part = match d.get(b"T") {
        Ok(Object::String(s, _)) => decode_text(s),
        _ => String::new(),
    };
    let name = match (prefix.is_empty(), part.is_empty()) {
        (_, true) => prefix.to_owned(),
        (true, false) => part,
        (false, false) => format!("{prefix}.{part}"),
    };
    let ft = document::name(doc, d, b"FT").or(inherited_ft);
    // Kids that are fields (they have /T) make this a non-terminal field; kids that are only
    // widgets do not.
    let kids: Vec<&Object> = match document::get(doc, d, b"Kids") {
        Object::Array(a) => a
            .iter()
            .filter(|k| document::dict(doc, k).is_some_and(|kd| kd.has(b"T")))
            .collect(),
        _ => Vec::new(),
    };
    if kids.is_empty() {
        out.push(FieldRef {
            id,
            name,
            is_signature: ft == Some(b"Sig"),
            signed: !matches!(document::get(doc, d, b"V"), Object::Null),
        });
        return;
    }
    for k in kids {
        walk(doc, k, &name, ft, depth + 1, seen, out);
    }
}

impl State<'_> {
    /// Plans the field for a new signature or document timestamp: `visible` draws `lines` on a
    /// page; otherwise the widget is invisible (a zero rectangle on page 1), with an empty
    /// appearance when `lines` is given (a signature: PDF/A wants one) and none for a document
    /// timestamp (ISO 32000-2 §12.8.5 recommends none, and pyHanko counts a document timestamp
    /// with an appearance as form filling rather than signature maintenance).
    pub(super) fn plan_field(
        &mut self,
        field: Option<&str>,
        visible: Option<&Visible>,
        lines: Option<&[String]>,
    ) -> Result<FieldPlan, Error> {
        let root = self.loaded.root;
        let mut ids = Ids(self.loaded.size);
        let doc = &self.loaded.doc;
        let mut catalog = doc
            .get_dictionary(root)
            .map_err(|e| Error::Damaged(format!("the catalog: {e}")))?
            .clone();
        let mut objects: Vec<(ObjectId, Object)> = Vec::new();

        // The AcroForm and its /Fields, wherever they live.
        let acro_ref = catalog.get(b"AcroForm").and_then(Object::as_reference).ok();
        let mut acro = catalog
            .get(b"AcroForm")
            .ok()
            .and_then(|o| document::dict(doc, o))
            .cloned()
            .unwrap_or_default();
        let fields_ref = acro.get(b"Fields").and_then(Object::as_reference).ok();
        let mut fields: Vec<Object> = match acro.get(b"Fields") {
            Ok(o) => match document::resolve(doc, o) {
                Object::Array(a) => a.clone(),
                _ => Vec::new(),
            },
            Err(_) => Vec::new(),
        };
        let existing = terminal_fields(doc, &fields);
        let pages = document::pages(doc);

        let sig_id = ids.next();
        let name;
        let mut fields_changed = false;
        if let Some(found) = field.and_then(|f| existing.iter().find(|e| e.name == f)) {
            // Fill an existing empty signature field.
            name = found.name.clone();
            if !found.is_signature {
                return Err(Error::Field(format!("{name:?} is not a signature field")));
            }
            if found.signed {
                return Err(Error::Field(format!(
                    "{name:?} is already signed; name a new field with --field"
                )));
            }
            let Some(fid) = found.id else {
                return Err(Error::Unsupported(format!(
                    "the field {name:?} is not an indirect object"
                )));
            };
            let mut fd = doc
                .get_dictionary(fid)
                .map_err(|e| Error::Damaged(format!("field {name:?}: {e}")))?
                .clone();
            fd.set("V", Object::Reference(sig_id));
            objects.push((fid, Object::Dictionary(fd)));
        } else {
            name = match field {
                Some(f) => {
                    if f.is_empty() || f.contains('.') {
                        return Err(Error::Field(format!(
                            "{f:?}: a new field's name must be non-empty and without '.'"
                        )));
                    }
                    f.to_owned()
                }
                None => (1..)
                    .map(|i| format!("Signature{i}"))
                    .find(|n| !existing.iter().any(|e| e.name == *n))
                    .unwrap_or_else(|| "Signature".into()),
            };
            let page_index = visible.map_or(1, |v| v.page);
            let Some(&page_id) = pages.get(page_index - 1) else {
                return Err(Error::Usage(format!(
                    "page {page_index} does not exist: the document has {} page(s)",
                    pages.len()
                )));
            };
            let mut page = doc
                .get_dictionary(page_id)
                .map_err(|e| Error::Damaged(format!("page {page_index}: {e}")))?
                .clone();
            let annots_ref = page.get(b"Annots").and_then(Object::as_reference).ok();
            let mut annots: Vec<Object> = match page.get(b"Annots") {
                Ok(o) => match document::resolve(doc, o) {
                    Object::Array(a) => a.clone(),
                    _ => Vec::new(),
                },
                Err(_) => Vec::new(),
            };

            let widget_id = ids.next();
            let (rect, ap): (Vec<Object>, Option<Object>) = match (visible, lines) {
                (Some(v), Some(lines)) => {
                    let font_id = ids.next();
                    objects.push((font_id, appearance::helvetica()));
                    let ap = appearance::signature_appearance(
                        v.rect[2] - v.rect[0],
                        v.rect[3] - v.rect[1],
                        lines,
                        Object::Reference(font_id),
                    );
                    (v.rect.map(Object::Real).to_vec(), Some(ap))
                }
                (None, Some(_)) => (
                    vec![Object::Integer(0); 4],
                    Some(appearance::empty_appearance()),
                ),
                _ => (vec![Object::Integer(0); 4], None),
            };
            let mut widget = Dictionary::new();
            widget.set("Type", Object::Name(b"Annot".to_vec()));
            widget.set("Subtype", Object::Name(b"Widget".to_vec()));
            widget.set("FT", Object::Name(b"Sig".to_vec()));
            widget.set("T", text_string(&name));
            widget.set("V", Object::Reference(sig_id));
            widget.set("F", Object::Integer(WIDGET_FLAGS));
            widget.set("P", Object::Reference(page_id));
            widget.set("Rect", Object::Array(rect));
            if let Some(ap) = ap {
                let ap_id = ids.next();
                objects.push((ap_id, ap));
                let mut n = Dictionary::new();
                n.set("N", Object::Reference(ap_id));
                widget.set("AP", Object::Dictionary(n));
            }
            objects.push((widget_id, Object::Dictionary(widget)));
            fields.push(Object::Reference(widget_id));
            fields_changed = true;
            annots.push(Object::Reference(widget_id));
            match annots_ref {
                Some(id) => objects.push((id, Object::Array(annots))),
                None => {
                    page.set("Annots", Object::Array(annots));
                    objects.push((page_id, Object::Dictionary(page)));
                }
            }
        }

        // /SigFlags: SignaturesExist | AppendOnly.
        acro.set("SigFlags", Object::Integer(3));
        match fields_ref {
            Some(id) if fields_changed => objects.push((id, Object::Array(fields))),
            Some(_) => {}
            None => acro.set("Fields", Object::Array(fields)),
        }
        match acro_ref {
            Some(id) => objects.push((id, Object::Dictionary(acro))),
            None => {
                catalog.set("AcroForm", Object::Dictionary(acro));
                objects.push((root, Object::Dictionary(catalog)));
            }
        }
        // Each object written once: should a crafted file use one object in two roles (its
        // /Annots array also its /Fields array), the later version wins rather than two
        // definitions of one object number in one section.
        let mut seen = HashSet::new();
        let mut unique: Vec<(ObjectId, Object)> = Vec::new();
        for (id, o) in objects.into_iter().rev() {
            if seen.insert(id) {
                unique.push((id, o));
            }
        }
        unique.reverse();
        self.loaded.size = ids.0;
        Ok(FieldPlan {
            objects: unique,
            sig_id,
            name,
        })
    }
}
