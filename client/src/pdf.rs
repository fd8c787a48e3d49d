//! `stamp pdf sign` and `stamp pdf timestamp`: one PDF or many, through `pdf-signer`, with
//! timestamps from the shared TSA client. The input is read once; the output is the input
//! followed by the appended update, written atomically without joining the two in memory.

use crate::files::write_parts_atomically;
use crate::keys::Identity;
use crate::tsa_client::TsaClient;
use anyhow::Context;
use pdf_signer::{Details, SignOptions, Signed};
use pki::timestamper::Timestamper;
use std::path::Path;

/// What every signature of a run shares.
pub struct PdfSigner {
    /// The key, certificate and chain; `None` for document timestamps only.
    pub identity: Option<Identity>,
    /// The TSA; `None` for B-B.
    pub tsa: Option<TsaClient>,
    /// What each signature says, and its level.
    pub details: Details,
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
            details: &self.details,
        };
        Ok(pdf_signer::sign(input, &o)?)
    }

    /// Adds a document timestamp to `input`.
    pub fn timestamp(&self, input: &[u8]) -> anyhow::Result<Signed> {
        let ts = self
            .timestamper()
            .context("a document timestamp needs a TSA (--tsa URL)")?;
        Ok(pdf_signer::timestamp(
            input,
            ts,
            self.details.field.as_deref(),
        )?)
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
