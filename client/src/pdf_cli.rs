//! `stamp pdf sign` and `stamp pdf timestamp`: the arguments and the single-file and bulk flows.

use crate::{Exit, KeyArgs, TsaArgs, print_summary, progress, tsa_client};
use anyhow::{Context, anyhow};
use clap::Subcommand;
use pdf_signer::{Details, Level, Visible};
use stamp::escape::escape;
use stamp::pdf::PdfSigner;
use std::path::{Path, PathBuf};

/// `stamp pdf` subcommands.
#[derive(Subcommand, Debug)]
pub(crate) enum PdfCommand {
    /// Sign and timestamp PDFs (PAdES baseline, SubFilter ETSI.CAdES.detached).
    ///
    /// Appends an incremental update (the original bytes and earlier signatures stay as they
    /// are) with a signature field and a signature whose timestamp comes from the TSA. B-LT
    /// adds the certificates (and --ocsp/--crl data) in a /DSS; B-LTA a document timestamp
    /// over that. Verify with `stamp verify OUT.pdf --trust ROOT.pem`.
    Sign(Box<PdfSignArgs>),
    /// Add a document timestamp (SubFilter ETSI.RFC3161): proof that the PDF, as it is, existed
    /// at the time the TSA states.
    Timestamp(PdfTimestampArgs),
}

/// Where the outputs go, for both subcommands.
#[derive(clap::Args, Debug)]
pub(crate) struct Outputs {
    /// The PDFs to sign.
    #[arg(required = true)]
    inputs: Vec<PathBuf>,
    /// Where to write the signed PDF (one input).
    #[arg(
        short = 'o',
        long = "output",
        value_name = "OUT.pdf",
        conflicts_with = "out_dir"
    )]
    output: Option<PathBuf>,
    /// Write each signed PDF into DIR under its own name (several inputs); an input whose
    /// output exists is skipped.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    #[command(flatten)]
    tsa: TsaArgs,
    /// The signature field: an empty signature field of this name is filled, otherwise a new
    /// field so named is added (default: Signature1, Signature2, ...).
    #[arg(long, value_name = "NAME")]
    field: Option<String>,
    /// Workers for several inputs (default: 4 per core; at most 1024).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Overwrite an existing output (one input).
    #[arg(long)]
    force: bool,
    /// Print the result (one input) or the summary (several) as JSON.
    #[arg(long)]
    json: bool,
}

/// `stamp pdf sign` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct PdfSignArgs {
    #[command(flatten)]
    out: Outputs,
    #[command(flatten)]
    key: KeyArgs,
    /// PAdES baseline level: B-B (no timestamp), B-T, B-LT or B-LTA.
    #[arg(long, default_value = "B-T", value_parser = clap::value_parser!(Level))]
    level: Level,
    /// The reason for signing (/Reason).
    #[arg(long, value_name = "R")]
    reason: Option<String>,
    /// Where it was signed (/Location).
    #[arg(long, value_name = "L")]
    location: Option<String>,
    /// How to reach the signer (/ContactInfo).
    #[arg(long, value_name = "C")]
    contact: Option<String>,
    /// The signer's name as shown (/Name; default: the certificate's common name).
    #[arg(long, value_name = "N")]
    name: Option<String>,
    /// A visible signature on page PAGE in the rectangle X1,Y1 to X2,Y2 (points from the
    /// bottom left), showing the signer's name and the time.
    #[arg(long, value_name = "PAGE,X1,Y1,X2,Y2", value_parser = clap::value_parser!(Visible))]
    visible: Option<Visible>,
    /// DER (or PEM) OCSP responses to put in the /DSS (B-LT, B-LTA).
    #[arg(long, value_name = "FILE")]
    ocsp: Vec<PathBuf>,
    /// DER or PEM CRLs to put in the /DSS (B-LT, B-LTA).
    #[arg(long, value_name = "FILE")]
    crl: Vec<PathBuf>,
}

/// `stamp pdf timestamp` arguments.
#[derive(clap::Args, Debug)]
pub(crate) struct PdfTimestampArgs {
    #[command(flatten)]
    out: Outputs,
}

/// Runs a `stamp pdf` subcommand.
pub(crate) fn run(cmd: PdfCommand) -> anyhow::Result<Exit> {
    match cmd {
        PdfCommand::Sign(a) => {
            let identity = a.key.load()?;
            let read_all = |paths: &[PathBuf]| -> anyhow::Result<Vec<Vec<u8>>> {
                paths
                    .iter()
                    .map(|p| {
                        let bytes = std::fs::read(p)
                            .with_context(|| format!("cannot read {}", p.display()))?;
                        pki::signer::pem_or_der(&bytes)
                            .with_context(|| format!("{} is neither PEM nor DER", p.display()))
                    })
                    .collect()
            };
            let tsa = (a.level >= Level::BT)
                .then(|| tsa_client(&a.out.tsa))
                .transpose()?;
            if a.level < Level::BLT && !(a.ocsp.is_empty() && a.crl.is_empty()) {
                return Err(anyhow!(
                    "--ocsp and --crl go into the /DSS, which only B-LT and B-LTA write"
                ));
            }
            let signer = PdfSigner {
                identity: Some(identity),
                tsa,
                details: Details {
                    level: a.level,
                    reason: a.reason,
                    location: a.location,
                    contact: a.contact,
                    name: a.name,
                    field: a.out.field.clone(),
                    visible: a.visible,
                    ocsp: read_all(&a.ocsp)?,
                    crl: read_all(&a.crl)?,
                    signing_time: None,
                },
            };
            outputs(&signer, &a.out, false)
        }
        PdfCommand::Timestamp(a) => {
            let signer = PdfSigner {
                identity: None,
                tsa: Some(tsa_client(&a.out.tsa)?),
                details: Details {
                    field: a.out.field.clone(),
                    ..Details::default()
                },
            };
            outputs(&signer, &a.out, true)
        }
    }
}

fn outputs(signer: &PdfSigner, o: &Outputs, timestamp_only: bool) -> anyhow::Result<Exit> {
    if let Some(dir) = &o.out_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let pairs: Vec<(PathBuf, PathBuf)> = o
            .inputs
            .iter()
            .map(|p| {
                let name = p
                    .file_name()
                    .ok_or_else(|| anyhow!("{} is not a file name", p.display()))?;
                Ok((p.clone(), dir.join(name)))
            })
            .collect::<anyhow::Result<_>>()?;
        let jobs = stamp::pool::network_jobs(o.jobs);
        let bar = progress(pairs.len());
        let summary = stamp::bulk::run_files(&pairs, jobs, bar.as_ref(), |input, output| {
            signer.file(input, output, timestamp_only).map(|_| ())
        });
        let printed = bar.is_some();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        return print_summary(&summary, o.json, printed);
    }
    let (Some(output), [input]) = (&o.output, o.inputs.as_slice()) else {
        return Err(anyhow!(
            "name one PDF and -o OUT.pdf, or several PDFs and --out-dir DIR"
        ));
    };
    if output.exists() && !o.force {
        return Err(anyhow!(
            "{} exists; pass --force to overwrite it",
            output.display()
        ));
    }
    let signed = signer.file(input, output, timestamp_only)?;
    print_result(input, output, &signed, o.json)?;
    Ok(Exit::Verified)
}

fn print_result(
    input: &Path,
    output: &Path,
    s: &pdf_signer::Signed,
    json: bool,
) -> anyhow::Result<()> {
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "input": input.display().to_string(),
                "output": output.display().to_string(),
                "field": s.field,
                "level": s.level.map(Level::name),
                "timestamp": s.timestamp,
                "document_timestamp": s.document_timestamp,
            }))?
        );
        return Ok(());
    }
    let mut what = Vec::new();
    if let Some(l) = s.level {
        what.push(format!("PAdES {}", l.name()));
    }
    if let Some(t) = &s.timestamp {
        what.push(format!(
            "timestamped {} (serial 0x{})",
            t.gen_time, t.serial_hex
        ));
    }
    if let Some(t) = &s.document_timestamp {
        what.push(format!(
            "document timestamp {} (serial 0x{})",
            t.gen_time, t.serial_hex
        ));
    }
    println!(
        "{}",
        escape(&format!(
            "{} -> {} (field {}: {})",
            input.display(),
            output.display(),
            s.field,
            what.join(", ")
        ))
    );
    Ok(())
}
