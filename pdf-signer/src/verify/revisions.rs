//! What came after each signature, and the PAdES level it reached.

use super::changes::{self, Policy};
use super::{Ctx, Item, dss_certificates, dss_vri_keys, lock};
use crate::document::{self, Loaded, Purpose};
use pki::report::Outcome;

const MODIFICATIONS: &str = "modifications";

impl Ctx<'_> {
    /// The document as of the revision ending at `end` (loaded once).
    fn revision(&mut self, end: usize) -> Result<&Loaded, String> {
        if !self.revisions.contains_key(&end) {
            let loaded = document::load(&self.bytes[..end], Purpose::Verify)
                .map_err(|e| pki::error::error_text(&e));
            self.revisions.insert(end, loaded);
        }
        match self.revisions.get(&end) {
            Some(Ok(l)) => Ok(l),
            Some(Err(e)) => Err(e.clone()),
            None => Err("not loaded".into()),
        }
    }

    /// Records the `modifications` check: what the revisions after the signed one changed.
    pub(super) fn modifications(&mut self, item: &mut Item, docmdp: u8) {
        let Some(c) = item.range else {
            return;
        };
        // Whitespace after the last %%EOF is no revision.
        let effective = self.bytes.len()
            - self.bytes[c.end..]
                .iter()
                .rev()
                .take_while(|b| b.is_ascii_whitespace() || **b == 0)
                .count();
        if effective <= c.end {
            item.r.pass(MODIFICATIONS, "covers the whole document");
            return;
        }
        let after = self.bytes.len() - c.end;
        let policy = Policy {
            docmdp,
            locked: lock(&self.last.doc, &item.found),
        };
        let (last, bytes) = (self.last, self.bytes);
        let found = match self.revision(c.end) {
            Ok(old) => changes::analyse(bytes, &old.doc, &last.doc, &policy),
            Err(e) => {
                item.r.fail(
                    MODIFICATIONS,
                    format!(
                        "{after} bytes added after, but the signed revision cannot be read: {e}"
                    ),
                );
                return;
            }
        };
        if let Some(p) = item.r.pdf.as_mut() {
            p.allowed_changes.clone_from(&found.allowed);
            p.disallowed_changes.clone_from(&found.disallowed);
        }
        let allowed = if found.allowed.is_empty() {
            "no object changed".to_owned()
        } else {
            found.allowed.join("; ")
        };
        if found.disallowed.is_empty() {
            item.r.pass(
                MODIFICATIONS,
                format!("{after} bytes added after; changes allowed: {allowed}"),
            );
        } else {
            item.r.fail(
                MODIFICATIONS,
                format!(
                    "{after} bytes added after; changes not allowed: {}",
                    found.disallowed.join("; ")
                ),
            );
        }
    }

    /// Records the PAdES baseline level a verified ETSI.CAdES.detached signature reaches: B-B;
    /// B-T with a proven time (its signature timestamp, or a later document timestamp); B-LT
    /// when the /DSS holds its certificate; B-LTA when a verified document timestamp covers a
    /// revision whose /DSS does.
    pub(super) fn level(&mut self, item: &mut Item, doc_ts: &[(usize, i64)]) {
        let Some(c) = item.range else { return };
        let cades = item
            .r
            .pdf
            .as_ref()
            .is_some_and(|p| p.sub_filter == "ETSI.CAdES.detached");
        let failed = item
            .r
            .checks
            .iter()
            .any(|c| matches!(c.outcome, Outcome::Failed | Outcome::NotChecked));
        if failed {
            return;
        }
        if !cades {
            item.r.check(
                "pades-level",
                Outcome::Warning,
                "adbe.pkcs7.detached: a PDF signature, but not a PAdES baseline signature",
            );
            return;
        }
        let Some(signer) = self.signer_ders.get(&item.found.field).cloned() else {
            return;
        };
        let t = item.proven.is_some() || doc_ts.iter().any(|(end, _)| *end > c.end);
        // Validation data counts for this signature when it came after it: the signer's
        // certificate was not in the /DSS of the signed revision, or a /VRI entry names this
        // signature. A /DSS another signer left earlier does not make a new signature B-LT.
        let already = self
            .revision(c.end)
            .map(|r| dss_certificates(&r.doc, r.root).contains(&signer))
            .unwrap_or(false);
        let vri_key = item
            .contents
            .as_deref()
            .map(|c| hex::encode_upper(pki::HashAlg::Sha1.digest(c)));
        let covers = |doc: &lopdf::Document, root| {
            dss_certificates(doc, root).contains(&signer)
                && (!already
                    || vri_key
                        .as_ref()
                        .is_some_and(|k| dss_vri_keys(doc, root).contains(k)))
        };
        let lt = t && covers(&self.last.doc, self.last.root);
        let later: Vec<usize> = doc_ts
            .iter()
            .filter(|(end, _)| *end > c.end)
            .map(|(end, _)| *end)
            .collect();
        let mut lta = false;
        if lt {
            for end in later {
                if let Ok(rev) = self.revision(end)
                    && covers(&rev.doc, rev.root)
                {
                    lta = true;
                    break;
                }
            }
        }
        let (level, why) = match (t, lt, lta) {
            (_, _, true) => (
                "B-LTA",
                "validation data in the /DSS, covered by a document timestamp",
            ),
            (_, true, false) => ("B-LT", "a proven time and validation data in the /DSS"),
            (true, false, false) => ("B-T", "a proven time"),
            _ => ("B-B", "no proven time"),
        };
        item.r.pass("pades-level", format!("PAdES {level}: {why}"));
        if let Some(p) = item.r.pdf.as_mut() {
            p.level = Some(level.into());
        }
    }
}
