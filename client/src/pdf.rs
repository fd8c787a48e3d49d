//! `stamp pdf sign` and `stamp pdf timestamp`: one PDF or many, through `pdf-signer`, with
//! timestamps from the shared TSA client. The input is read once; the output is the input
//! followed by the appended update, written atomically without joining the two in memory.

use crate::files::write_parts_atomically;
use crate::keys::Identity;
use crate::tsa_client::TsaClient;
use anyhow::Context;
use pdf_signer::{Level, SignOptions, Signed, Visible};
use pki::timestamper::Timestamper;
use std::path::Path;

/// What every signature of a run shares.
pub struct PdfSigner {
    /// The key, certificate and chain; `None` for document timestamps only.
    pub identity: Option<Identity>,
    /// The TSA; `None` for B-B.
    pub tsa: Option<TsaClient>,
    /// The level.
    pub level: Level,
    /// /Reason, /Location, /ContactInfo, /Name.
    pub reason: Option<String>,
    /// /Location.
    pub location: Option<String>,
    /// /ContactInfo.
    pub contact: Option<String>,
    /// /Name.
    pub name: Option<String>,
    /// The field to sign or create.
    pub field: Option<String>,
    /// A visible signature.
    pub visible: Option<Visible>,
    /// OCSP responses and CRLs for the /DSS.
    pub ocsp: Vec<Vec<u8>>,
    /// CRLs for the /DSS.
    pub crl: Vec<Vec<u8>>,
}

impl PdfSigner {
    fn timestamper(&self) -> Option<&dyn Timestamper> {
        self.tsa.as_ref().map(|t| t as &dyn Timestamper)
    }

    /// Signs `input` (a whole file).
    pub fn sign(&self, input: &[u8]) -> anyhow::Result<Signed> {
        let id = self
            .identity
            .as_ref()
            .context("no signing key was loaded")?;
        let o = SignOptions {
            signer: id.signer.as_ref(),
            cert: &id.cert,
            chain: &id.chain,
            timestamper: self.timestamper(),
            level: self.level,
            reason: self.reason.clone(),
            location: self.location.clone(),
            contact: self.contact.clone(),
            name: self.name.clone(),
            field: self.field.clone(),
            visible: self.visible,
            ocsp: self.ocsp.clone(),
            crl: self.crl.clone(),
            signing_time: None,
        };
        Ok(pdf_signer::sign(input, &o)?)
    }

    /// Adds a document timestamp to `input`.
    pub fn timestamp(&self, input: &[u8]) -> anyhow::Result<Signed> {
        let ts = self
            .timestamper()
            .context("a document timestamp needs a TSA (--tsa URL)")?;
        Ok(pdf_signer::timestamp(input, ts, self.field.as_deref())?)
    }

    /// Signs (or, with `timestamp_only`, timestamps) the file `input` into `output`.
    pub fn file(
        &self,
        input: &Path,
        output: &Path,
        timestamp_only: bool,
    ) -> anyhow::Result<Signed> {
        let bytes =
            std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
        let signed = if timestamp_only {
            self.timestamp(&bytes)
        } else {
            self.sign(&bytes)
        }
        .with_context(|| format!("cannot sign {}", input.display()))?;
        write_parts_atomically(output, &[&bytes, &signed.appended])?;
        Ok(signed)
    }
}
