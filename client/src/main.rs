//! `stamp`: timestamp files with an RFC 3161 authority, verify and inspect tokens.

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use pki::HashAlg;
use pki::report::{Kind, Report};
use pki::token::{ParsedToken, VerifyOptions};
use stamp::escape::escape;
use stamp::tsa_client::{StampError, TsaClient};
use std::io::{IsTerminal, Read};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Exit codes, documented for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
enum Exit {
    /// Everything verified (or stamped and checked).
    Verified = 0,
    /// A verification failed, or the authority rejected a request.
    NotVerified = 1,
    /// Bad usage, unreadable input, unreachable authority.
    UsageOrIo = 2,
}

/// Timestamp files with an RFC 3161 authority, and verify or inspect timestamp tokens.
///
/// Exit status: 0 verified, 1 not verified (or rejected by the authority), 2 usage or I/O error.
#[derive(Parser, Debug)]
#[command(name = "stamp", version, about, long_about)]
struct Opts {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Timestamp files: writes FILE.tsr (the authority's whole reply) beside each file, after
    /// checking it (nonce, imprint, signature, certificate).
    File(FileArgs),
    /// Verify files against their timestamp tokens (FILE.tsr beside each, or --token).
    Verify {
        /// Data files (or, with --token, the one file it covers).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// Trust anchors (PEM bundle or DER): the roots whose tokens you accept.
        #[arg(long, value_name = "FILE")]
        trust: Vec<PathBuf>,
        /// The token (.tsr: a TimeStampResp or a bare token, DER or BER).
        #[arg(long, value_name = "FILE")]
        token: Option<PathBuf>,
        /// Certificates to use beside the token's own (for tokens made without certReq).
        #[arg(long, value_name = "FILE")]
        certs: Vec<PathBuf>,
        /// Print the report as JSON (an object; an array for several files).
        #[arg(long)]
        json: bool,
        /// List every check, also when verified.
        #[arg(long, short)]
        verbose: bool,
        /// Fail (exit 1) on what is otherwise a warning: SHA-1 in the imprint, the digest or
        /// the signature algorithm, and a SignedData version that does not fit its content.
        #[arg(long)]
        strict: bool,
    },
    /// Print a token or a whole TimeStampResp, human-readable.
    Inspect {
        /// The .tsr file.
        file: PathBuf,
    },
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let result = match opts.command {
        Command::File(args) => cmd_file(args),
        Command::Verify {
            files,
            trust,
            token,
            certs,
            json,
            verbose,
            strict,
        } => cmd_verify(&files, &trust, token, &certs, json, verbose, strict),
        Command::Inspect { file } => cmd_inspect(&file),
    };
    match result {
        Ok(code) => ExitCode::from(code as u8),
        Err(e) => {
            print_error(&e);
            ExitCode::from(Exit::UsageOrIo as u8)
        }
    }
}

/// The one error printer: the error, its causes, and a hint where one helps.
fn print_error(e: &anyhow::Error) {
    // Messages may quote untrusted text (a statusString, a DN): escape them for the terminal.
    eprintln!("stamp: error: {}", escape(&e.to_string()));
    for cause in e.chain().skip(1) {
        eprintln!("  caused by: {}", escape(&cause.to_string()));
    }
    if let Some(hint) = hint(e) {
        eprintln!("  hint: {hint}");
    }
}

fn hint(e: &anyhow::Error) -> Option<String> {
    for cause in e.chain() {
        if let Some(StampError::Http { .. }) = cause.downcast_ref::<StampError>() {
            return Some(
                "is the authority running? start one with `cargo run --release -p tsa -- serve`"
                    .into(),
            );
        }
        if let Some(io) = cause.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return Some(
                "check the path; tokens are looked for at FILE.tsr unless --token is given".into(),
            );
        }
    }
    None
}

/// `stamp file` arguments.
#[derive(clap::Args, Debug)]
struct FileArgs {
    /// Files to timestamp.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// The authority's URL.
    #[arg(long, env = "STAMP_TSA", default_value = "http://127.0.0.1:3161/")]
    tsa: String,
    /// Write the .tsr files into DIR instead of beside each file.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Hash algorithm: sha256, sha384 or sha512.
    #[arg(long, default_value = "sha256")]
    hash: String,
    /// Also check the TSA's chain against this trust anchor (PEM).
    #[arg(long, value_name = "FILE")]
    trust: Option<PathBuf>,
    /// Ask for a specific policy OID.
    #[arg(long)]
    policy: Option<String>,
    /// Do not send a nonce.
    #[arg(long)]
    no_nonce: bool,
    /// Do not ask for the TSA's certificates in the token (check with --certs).
    #[arg(long)]
    no_cert_req: bool,
    /// The TSA's certificates (PEM), needed with --no-cert-req to check the signature.
    #[arg(long, value_name = "FILE")]
    certs: Option<PathBuf>,
    /// Seconds to wait for each reply.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
    /// Overwrite existing .tsr files.
    #[arg(long)]
    force: bool,
}

fn cmd_file(a: FileArgs) -> anyhow::Result<Exit> {
    let hash = match HashAlg::from_name(&a.hash) {
        Some(HashAlg::Sha1) => {
            return Err(anyhow!(
                "sha1 is too weak for new timestamps; use sha256, sha384 or sha512"
            ));
        }
        Some(h) => h,
        None => {
            return Err(anyhow!(
                "unknown hash algorithm {:?}; use sha256, sha384 or sha512",
                a.hash
            ));
        }
    };
    let mut client = TsaClient::new(&a.tsa, Duration::from_secs(a.timeout));
    client.nonce = !a.no_nonce;
    client.cert_req = !a.no_cert_req;
    if let Some(p) = &a.policy {
        client.policy = Some(
            pki::oid::ObjectIdentifier::new(p)
                .map_err(|e| anyhow!("--policy {p:?} is not an OID: {e}"))?,
        );
    }
    if let Some(t) = &a.trust {
        client.trust = load_certs(t)?;
    }
    if let Some(c) = &a.certs {
        client.extra_certs = load_certs(c)?;
    }
    if let Some(dir) = &a.out {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let bar = progress(a.files.len());
    let mut worst = Exit::Verified;
    for file in &a.files {
        let target = tsr_path(file, a.out.as_deref())?;
        if target.exists() && !a.force {
            return Err(anyhow!(
                "{} exists; pass --force to overwrite it",
                target.display()
            ));
        }
        let digest = hash_file(file, hash)?;
        match client.stamp(hash, &digest) {
            Ok(stamped) => {
                write_atomically(&target, &stamped.response)?;
                let info = stamped.token.info();
                let line = format!(
                    "{} -> {} (genTime {}, serial 0x{})",
                    file.display(),
                    target.display(),
                    info.gen_time,
                    info.serial_hex
                );
                match &bar {
                    Some(b) => b.println(line),
                    None => println!("{line}"),
                }
            }
            Err(e @ (StampError::Rejected { .. } | StampError::BadToken(_))) => {
                eprintln!(
                    "stamp: {}",
                    escape(&format!(
                        "{}: {}",
                        file.display(),
                        pki::error::error_text(&e)
                    ))
                );
                worst = Exit::NotVerified;
            }
            Err(e) => {
                return Err(
                    anyhow::Error::new(e).context(format!("cannot timestamp {}", file.display()))
                );
            }
        }
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    Ok(worst)
}

fn progress(n: usize) -> Option<indicatif::ProgressBar> {
    (n > 1 && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(n as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {elapsed} {msg}")
        {
            bar.set_style(style);
        }
        bar
    })
}

fn tsr_path(file: &Path, out: Option<&Path>) -> anyhow::Result<PathBuf> {
    let name = file
        .file_name()
        .ok_or_else(|| anyhow!("{} is not a file name", file.display()))?;
    let mut tsr = name.to_os_string();
    tsr.push(".tsr");
    Ok(match out {
        Some(dir) => dir.join(tsr),
        None => file.with_file_name(tsr),
    })
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let mut tmp = path.as_os_str().to_os_string();
    tmp.push(".part");
    let tmp = PathBuf::from(tmp);
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
}

/// Hashes a file in 64 KiB reads, so that size does not matter.
fn hash_file(path: &Path, alg: HashAlg) -> anyhow::Result<Vec<u8>> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ctx = alg.hasher();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        ctx.update(&buf[..n]);
    }
    Ok(ctx.finish().as_ref().to_vec())
}

fn load_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
    pki::cert::load_certificates(&bytes)
        .with_context(|| format!("no usable certificate in {}", path.display()))
}

fn cmd_verify(
    files: &[PathBuf],
    trust: &[PathBuf],
    token: Option<PathBuf>,
    certs: &[PathBuf],
    json: bool,
    verbose: bool,
    strict: bool,
) -> anyhow::Result<Exit> {
    if trust.is_empty() {
        return Err(anyhow!(
            "no trust anchor: pass --trust ROOT.pem (for a Sigillum development authority: --trust tsa-data/root.pem)"
        ));
    }
    if token.is_some() && files.len() > 1 {
        return Err(anyhow!(
            "--token names the token of one file; got {} files",
            files.len()
        ));
    }
    let mut opts = VerifyOptions {
        strict,
        ..VerifyOptions::default()
    };
    for t in trust {
        opts.trust.extend(load_certs(t)?);
    }
    for c in certs {
        opts.extra_certs.extend(load_certs(c)?);
    }
    let mut reports = Vec::new();
    let bar = if json { None } else { progress(files.len()) };
    for file in files {
        let tsr = match &token {
            Some(t) => t.clone(),
            None => tsr_path(file, None)?,
        };
        reports.push(verify_one(file, &tsr, &opts)?);
        if let Some(b) = &bar {
            b.inc(1);
        }
    }
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    if json {
        let text = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        println!("{text}");
    } else {
        for r in &reports {
            print!("{}", stamp::render::report(r, verbose));
        }
    }
    Ok(if reports.iter().all(|r| r.verified) {
        Exit::Verified
    } else {
        Exit::NotVerified
    })
}

/// Verifies one file against one token. Unreadable files are I/O errors (exit 2); a token that
/// cannot be parsed is a verification failure, reported like any other.
fn verify_one(file: &Path, tsr: &Path, opts: &VerifyOptions) -> anyhow::Result<Report> {
    let source = file.display().to_string();
    let bytes =
        std::fs::read(tsr).with_context(|| format!("cannot read the token {}", tsr.display()))?;
    let token = match ParsedToken::parse(&bytes) {
        Ok(t) => t,
        Err(e) => {
            return Ok(Report::error(
                Kind::DetachedData,
                source,
                format!("{}: {}", tsr.display(), pki::error::error_text(&e)),
            ));
        }
    };
    let digest = match token.hash_alg() {
        Some(h) => Some(hash_file(file, h)?),
        None => None,
    };
    let sig = pki::token::verify(&token, digest.as_deref(), opts);
    Ok(Report::new(Kind::DetachedData, source, vec![sig]))
}

fn cmd_inspect(file: &Path) -> anyhow::Result<Exit> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if pki::tsp::is_response(&bytes) {
        let resp = pki::tsp::parse_response(&bytes).context("not a valid TimeStampResp")?;
        println!("TimeStampResp");
        println!("  status         {:?}", resp.status);
        if !resp.status_text.is_empty() {
            println!("  statusString   {}", escape(&resp.status_text.join("; ")));
        }
        if !resp.fail_info.is_empty() {
            let names: Vec<&str> = resp.fail_info.iter().map(|f| f.name()).collect();
            println!("  failInfo       {}", names.join(", "));
        }
        if resp.token.is_none() {
            return Ok(Exit::Verified);
        }
    }
    let token = ParsedToken::parse(&bytes).context("not a valid timestamp token")?;
    print!("{}", stamp::render::token(&token));
    Ok(Exit::Verified)
}
