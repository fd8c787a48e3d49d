//! `stamp`: timestamp files with an RFC 3161 authority, sign emails and PDFs, verify and
//! inspect tokens, signed messages and signed PDFs.

use anyhow::{Context, anyhow};
use clap::{Parser, Subcommand};
use pki::HashAlg;
use pki::report::{Kind, Report};
use pki::smime::{CheckTime, EmailVerifyOptions};
use pki::token::{ParsedToken, VerifyOptions};
use stamp::escape::escape;
use stamp::files::write_atomically;
use stamp::tsa_client::{StampError, TsaClient};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

mod encrypt_cli;
mod enroll_cli;
mod pdf_cli;

/// Exit codes, documented for scripts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Exit {
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
    /// Sign and timestamp emails (S/MIME).
    #[command(subcommand)]
    Email(EmailCommand),
    /// Sign and timestamp PDFs (PAdES), or add document timestamps.
    #[command(subcommand)]
    Pdf(pdf_cli::PdfCommand),
    /// Verify files against their timestamp tokens (FILE.tsr beside each, or --token), and
    /// signed emails and PDFs (detected from their content).
    Verify(VerifyArgs),
    /// Obtain an email certificate from a Sigillum CA: a key made here, a one-time code mailed
    /// to the address, CMP enrolment; a second key for encryption unless --no-encryption.
    Enroll(enroll_cli::EnrollArgs),
    /// Replace the key and certificate (CMP key update), keeping the old files as .old.
    Renew(enroll_cli::CurrentArgs),
    /// Revoke the certificate (CMP revocation request signed with its key).
    Revoke(enroll_cli::CurrentArgs),
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
        Command::Email(EmailCommand::Sign(args)) => cmd_email_sign(args),
        Command::Email(EmailCommand::Encrypt(args)) => encrypt_cli::encrypt(args),
        Command::Email(EmailCommand::Decrypt(args)) => encrypt_cli::decrypt(args),
        Command::Pdf(cmd) => pdf_cli::run(cmd),
        Command::Verify(args) => cmd_verify(args),
        Command::Inspect { file } => cmd_inspect(&file),
        Command::Enroll(args) => enroll_cli::enroll(args),
        Command::Renew(args) => enroll_cli::renew(args),
        Command::Revoke(args) => enroll_cli::revoke(args),
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
pub(crate) fn print_error(e: &anyhow::Error) {
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
                "check the path; a signed message is read as given, a file's token is looked for \
                 at FILE.tsr unless --token is given"
                    .into(),
            );
        }
    }
    None
}

/// `stamp verify` arguments.
#[derive(clap::Args, Debug)]
struct VerifyArgs {
    /// Data files (or, with --token, the one file it covers), signed messages or PDFs.
    #[arg(required_unless_present = "archive")]
    files: Vec<PathBuf>,
    /// An export of `tsa archive export` (a tar of tokens and manifest.csv): every token is
    /// verified, in parallel, against the manifest; a summary, and exit 1 if any fails.
    #[arg(long, value_name = "FILE.tar", conflicts_with_all = ["files", "token"])]
    archive: Option<PathBuf>,
    /// Trust anchors (PEM bundle or DER): the roots whose tokens and signers you accept.
    #[arg(long, value_name = "FILE")]
    trust: Vec<PathBuf>,
    /// Trust anchors for the TSAs of signature timestamps (default: those of --trust).
    #[arg(long, value_name = "FILE")]
    tsa_trust: Vec<PathBuf>,
    /// Check certificates at this moment instead of the proven time (a token's genTime, a
    /// signature's timestamp, a later PDF document timestamp): an RFC 3339 time, or `claimed`
    /// (an email signature's signingTime, a PDF signature's /M; tokens keep their genTime).
    /// Reported as not proven.
    #[arg(long, value_name = "TIME|claimed")]
    at: Option<String>,
    /// Flag a gap larger than this between the proven time, the claimed signingTime and
    /// the Date header, seconds.
    #[arg(long, value_name = "SECONDS", default_value_t = pki::smime::verify::DEFAULT_MAX_TIME_GAP_SECS)]
    max_time_gap: i64,
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
}

/// `stamp email` subcommands.
#[derive(Subcommand, Debug)]
enum EmailCommand {
    /// Sign and timestamp a message (S/MIME, RFC 8551), or many: a directory or an mbox.
    ///
    /// The output is multipart/signed (or, with --opaque, application/pkcs7-mime signed-data)
    /// whose SignerInfo carries a token from the TSA over its signature value. Verify it with
    /// `stamp verify OUT.eml --trust ROOT.pem`.
    Sign(EmailSignArgs),
    /// Encrypt a message to its recipients' certificates (S/MIME, RFC 8551):
    /// AuthEnvelopedData with AES-256-GCM (or --cbc), the whole message inside, a neutral
    /// Subject outside.
    Encrypt(encrypt_cli::EncryptArgs),
    /// Decrypt a message with the recipient's key; then `stamp verify` it as usual.
    ///
    /// Exit status 1 when the key is not a recipient or the message does not decrypt (a wrong
    /// key or an altered message: one error, on purpose).
    Decrypt(encrypt_cli::DecryptArgs),
}

/// The signing identity of a signing command.
#[derive(clap::Args, Debug)]
pub(crate) struct KeyArgs {
    /// The signing key: PKCS#8 (PEM or DER) or PKCS#12 (.p12, .pfx).
    #[arg(long, value_name = "KEY")]
    pub(crate) key: PathBuf,
    /// The signer's certificate (PEM or DER); optional with a PKCS#12 key that holds it.
    #[arg(long, value_name = "CERT")]
    pub(crate) cert: Option<PathBuf>,
    /// Intermediate certificates to include (PEM).
    #[arg(long, value_name = "FILE")]
    pub(crate) chain: Option<PathBuf>,
    /// A file whose first line is the PKCS#12 password (otherwise it is prompted for).
    #[arg(long, value_name = "FILE")]
    pub(crate) pass_file: Option<PathBuf>,
}

impl KeyArgs {
    /// Loads the key, certificate and chain through pki's one key loader.
    pub(crate) fn load(&self) -> anyhow::Result<stamp::keys::Identity> {
        stamp::keys::load_identity(
            &self.key,
            self.cert.as_deref(),
            self.chain.as_deref(),
            self.pass_file.as_ref(),
        )
    }
}

/// The authority a signing command asks for timestamps.
#[derive(clap::Args, Debug)]
pub(crate) struct TsaArgs {
    /// The authority's URL.
    #[arg(long, env = "STAMP_TSA", default_value = "http://127.0.0.1:3161/")]
    pub(crate) tsa: String,
    /// Check the TSA's chain against this trust anchor (PEM) before embedding a token.
    #[arg(long, value_name = "FILE")]
    pub(crate) tsa_trust: Option<PathBuf>,
    /// Seconds to wait for each TSA reply.
    #[arg(long, default_value_t = 30)]
    pub(crate) timeout: u64,
}

/// `stamp email sign` arguments.
#[derive(clap::Args, Debug)]
struct EmailSignArgs {
    /// The message to sign (RFC 5322, CRLF or LF line ends).
    #[arg(required_unless_present_any = ["in_dir", "mbox"], conflicts_with_all = ["in_dir", "mbox"])]
    input: Option<PathBuf>,
    /// Where to write the signed message (`-` for standard output).
    #[arg(short = 'o', long = "output", value_name = "OUT.eml", required_unless_present_any = ["in_dir", "mbox"])]
    output: Option<PathBuf>,
    /// Sign every file in DIR (not recursive) into --out-dir, same names.
    #[arg(
        long,
        value_name = "DIR",
        requires = "out_dir",
        conflicts_with = "mbox"
    )]
    in_dir: Option<PathBuf>,
    /// Where --in-dir writes; a message whose output exists is skipped.
    #[arg(long, value_name = "DIR")]
    out_dir: Option<PathBuf>,
    /// Sign every message of an mbox file into --out-mbox.
    #[arg(long, value_name = "IN", requires = "out_mbox")]
    mbox: Option<PathBuf>,
    /// Where --mbox writes; messages already in it (by Message-ID) are skipped.
    #[arg(long, value_name = "OUT")]
    out_mbox: Option<PathBuf>,
    #[command(flatten)]
    key: KeyArgs,
    #[command(flatten)]
    tsa: TsaArgs,
    /// Sign without a timestamp (verifiers then report the time as not proven).
    #[arg(long)]
    no_timestamp: bool,
    /// application/pkcs7-mime signed-data instead of multipart/signed (only S/MIME clients
    /// can show it).
    #[arg(long)]
    opaque: bool,
    /// Then encrypt each signed message to its recipients (--to, or each message's To and
    /// Cc), as `stamp email encrypt` does.
    #[arg(long)]
    encrypt: bool,
    #[command(flatten)]
    encryption: Box<encrypt_cli::EncryptionArgs>,
    /// Workers for --in-dir and --mbox (default: 4 per core; at most 1024).
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
    /// Overwrite an existing output (single message).
    #[arg(long)]
    force: bool,
    /// Print the summary (bulk) or the result (single message) as JSON.
    #[arg(long)]
    json: bool,
}

fn cmd_email_sign(a: EmailSignArgs) -> anyhow::Result<Exit> {
    let signer = load_email_signer(&a)?;
    let jobs = stamp::pool::network_jobs(a.jobs);
    if let (Some(dir), Some(out_dir)) = (&a.in_dir, &a.out_dir) {
        std::fs::create_dir_all(out_dir)
            .with_context(|| format!("cannot create {}", out_dir.display()))?;
        let pairs: Vec<(PathBuf, PathBuf)> = stamp::files::files_in(dir)?
            .into_iter()
            .filter_map(|p| {
                let out = out_dir.join(p.file_name()?);
                Some((p, out))
            })
            .collect();
        let bar = progress(pairs.len());
        let summary = stamp::email::sign_files(&signer, &pairs, jobs, bar.as_ref());
        // With a bar, each failure was printed above it as it happened.
        let printed = bar.is_some();
        if let Some(b) = bar {
            b.finish_and_clear();
        }
        return print_summary(&summary, a.json, printed);
    }
    if let (Some(mbox), Some(out)) = (&a.mbox, &a.out_mbox) {
        let summary = stamp::email::sign_mbox(&signer, mbox, out, jobs, progress)?;
        return print_summary(&summary, a.json, false);
    }
    let (Some(input), Some(output)) = (&a.input, &a.output) else {
        return Err(anyhow!(
            "name a message and -o OUT.eml, or --in-dir/--out-dir, or --mbox/--out-mbox"
        ));
    };
    let to_stdout = output.as_os_str() == "-";
    if !to_stdout && output.exists() && !a.force {
        return Err(anyhow!(
            "{} exists; pass --force to overwrite it",
            output.display()
        ));
    }
    let bytes = std::fs::read(input).with_context(|| format!("cannot read {}", input.display()))?;
    let signed = signer
        .sign(&bytes)
        .with_context(|| format!("cannot sign {}", input.display()))?;
    if to_stdout {
        use std::io::Write;
        std::io::stdout()
            .write_all(&signed.bytes)
            .context("cannot write to standard output")?;
        return Ok(Exit::Verified);
    }
    write_atomically(output, &signed.bytes)?;
    if a.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({
                "input": input.display().to_string(),
                "output": output.display().to_string(),
                "timestamp": signed.timestamp,
            }))?
        );
    } else {
        let time = signed
            .timestamp
            .as_ref()
            .map(|t| format!("timestamped {} (serial 0x{})", t.gen_time, t.serial_hex))
            .unwrap_or_else(|| "no timestamp".into());
        println!(
            "{}",
            escape(&format!(
                "{} -> {} ({time})",
                input.display(),
                output.display()
            ))
        );
    }
    Ok(Exit::Verified)
}

/// The bulk summary; failures are listed on stderr unless they were printed already.
pub(crate) fn print_summary(
    s: &stamp::email::Summary,
    json: bool,
    failures_printed: bool,
) -> anyhow::Result<Exit> {
    if json {
        println!("{}", serde_json::to_string_pretty(s)?);
    } else {
        if !failures_printed {
            for f in &s.failed {
                eprintln!("stamp: {}", escape(&format!("{}: {}", f.message, f.error)));
            }
        }
        println!("{}", s.line());
    }
    Ok(if s.failed.is_empty() {
        Exit::Verified
    } else {
        Exit::NotVerified
    })
}

/// Loads the key, certificate and chain, and sets up the TSA client.
fn load_email_signer(a: &EmailSignArgs) -> anyhow::Result<stamp::email::EmailSigner> {
    let id = a.key.load()?;
    let tsa = if a.no_timestamp {
        None
    } else {
        Some(tsa_client(&a.tsa)?)
    };
    let encryptor = if a.encrypt {
        Some(a.encryption.encryptor()?)
    } else if a.encryption.any() {
        return Err(anyhow!(
            "--to, --directory, --recipient-cert, --self-cert, --cbc, --trust, \
             --no-revocation-check and --outer-subject only apply with --encrypt"
        ));
    } else {
        None
    };
    Ok(stamp::email::EmailSigner {
        signer: id.signer,
        cert: id.cert,
        chain: id.chain,
        tsa,
        opaque: a.opaque,
        encryptor,
    })
}

/// The TSA client for signatures: `--tsa-trust` checks the TSA's chain before a token is
/// embedded.
pub(crate) fn tsa_client(a: &TsaArgs) -> anyhow::Result<TsaClient> {
    let mut client = TsaClient::new(&a.tsa, Duration::from_secs(a.timeout));
    if let Some(t) = &a.tsa_trust {
        client.trust = load_certs(t)?;
    }
    Ok(client)
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
    /// Files stamped at once, each request on a keep-alive connection of its own [default:
    /// 4 per core; at most 1024].
    #[arg(long, value_name = "N")]
    jobs: Option<usize>,
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
    // Every target is checked before the first request, so that a refusal costs no token.
    let targets = a
        .files
        .iter()
        .map(|f| tsr_path(f, a.out.as_deref()))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(t) = targets.iter().find(|t| t.exists() && !a.force) {
        return Err(anyhow!(
            "{} exists; pass --force to overwrite it",
            t.display()
        ));
    }
    let jobs = stamp::pool::network_jobs(a.jobs);
    let bar = progress(a.files.len());
    // Many files are made durable by groups (one file-system sync for hundreds of token files);
    // one file is synced alone.
    let grouped = (a.files.len() > 1).then(stamp::files::GroupedWrites::default);
    // Per file: the line to print, a refusal (exit 1), or an error that ends the run (exit 2).
    let results = stamp::pool::map(a.files.len(), jobs, |i| {
        let (file, target) = (&a.files[i], &targets[i]);
        let result =
            (|| -> anyhow::Result<Result<String, String>> {
                let digest = hash_file(file, hash)?;
                match client.stamp(hash, &digest) {
                    Ok(stamped) => {
                        match &grouped {
                            Some(g) => g.write(target, &stamped.response)?,
                            None => write_atomically(target, &stamped.response)?,
                        }
                        let info = stamped.token.info();
                        Ok(Ok(format!(
                            "{} -> {} (genTime {}, serial 0x{})",
                            file.display(),
                            target.display(),
                            info.gen_time,
                            info.serial_hex
                        )))
                    }
                    Err(e @ (StampError::Rejected { .. } | StampError::BadToken(_))) => Ok(Err(
                        format!("{}: {}", file.display(), pki::error::error_text(&e)),
                    )),
                    Err(e) => Err(anyhow::Error::new(e)
                        .context(format!("cannot timestamp {}", file.display()))),
                }
            })();
        if let Some(b) = &bar {
            b.inc(1);
        }
        result
    });
    // A file whose group did not reach the disk under its name is an error, not a line.
    let not_durable = grouped.map(|g| g.finish()).unwrap_or_default();
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    // In input order: the stamped files, the refusals; then the first error, if any.
    let mut worst = Exit::Verified;
    let mut first_error = None;
    for (r, target) in results.into_iter().zip(&targets) {
        let r = match not_durable.get(target) {
            Some(reason) if matches!(r, Ok(Ok(_))) => Err(anyhow!("{reason}")),
            _ => r,
        };
        match r {
            Ok(Ok(line)) => println!("{line}"),
            Ok(Err(refusal)) => {
                eprintln!("stamp: {}", escape(&refusal));
                worst = Exit::NotVerified;
            }
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(worst),
    }
}

pub(crate) fn progress(n: usize) -> Option<indicatif::ProgressBar> {
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

/// Files at least this large are read on a second thread while this one hashes.
const OVERLAP_FROM: u64 = 8 << 20;
/// The reads of a large file: 1 MiB, three buffers in flight (constant memory).
const LARGE_CHUNK: usize = 1 << 20;
/// The most read at once from a smaller file.
const SMALL_CHUNK: usize = 64 << 10;

/// Hashes a file in bounded reads, so that size does not matter: 64 KiB reads for ordinary
/// files; for large ones, reading and hashing overlap (a reader thread fills 1 MiB buffers
/// while this one hashes the previous), so a file not in the page cache costs about the
/// slower of the disk and SHA-256 rather than their sum (BENCHMARKS.md: 1 GB cold 1.31 s
/// with one thread).
fn hash_file(path: &Path, alg: HashAlg) -> anyhow::Result<Vec<u8>> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut ctx = alg.hasher();
    let len = f.metadata().map(|m| m.len()).ok();
    if len.is_some_and(|l| l >= OVERLAP_FROM) {
        hash_overlapped(f, |chunk| ctx.update(chunk))
            .with_context(|| format!("cannot read {}", path.display()))?;
    } else {
        // A buffer of the file's size (one more byte to see the end), neither zeroed nor larger
        // than SMALL_CHUNK: a bulk verification opens thousands of small files. A file that grew
        // since its metadata is read on, SMALL_CHUNK at a time, to its end.
        let chunk = len
            .and_then(|l| usize::try_from(l).ok())
            .map_or(SMALL_CHUNK, |l| l.min(SMALL_CHUNK));
        let mut buf = Vec::with_capacity(chunk + 1);
        loop {
            buf.clear();
            let n = (&mut f)
                .take(SMALL_CHUNK as u64)
                .read_to_end(&mut buf)
                .with_context(|| format!("cannot read {}", path.display()))?;
            ctx.update(&buf);
            if n < SMALL_CHUNK {
                break;
            }
        }
    }
    Ok(ctx.finish().as_ref().to_vec())
}

/// Feeds `f`'s bytes in order to `update`, read on a scoped thread [`LARGE_CHUNK`] at a time.
fn hash_overlapped(mut f: std::fs::File, mut update: impl FnMut(&[u8])) -> std::io::Result<()> {
    use std::sync::mpsc::sync_channel;
    std::thread::scope(|scope| {
        // Full buffers to the hasher; empty ones back to the reader. Both ends are dropped
        // when this closure returns, early or not, so the reader never waits forever.
        let (full_tx, full_rx) = sync_channel::<std::io::Result<Vec<u8>>>(2);
        let (empty_tx, empty_rx) = sync_channel::<Vec<u8>>(3);
        for _ in 0..3 {
            let _ = empty_tx.send(Vec::with_capacity(LARGE_CHUNK));
        }
        scope.spawn(move || {
            while let Ok(mut buf) = empty_rx.recv() {
                // Up to one chunk into the buffer's own capacity (read_to_end retries
                // interrupted reads and stops at the end of the file).
                buf.clear();
                match (&mut f).take(LARGE_CHUNK as u64).read_to_end(&mut buf) {
                    Ok(0) => break,
                    Ok(_) => {
                        if full_tx.send(Ok(buf)).is_err() {
                            break;
                        }
                    }
                    Err(e) => {
                        let _ = full_tx.send(Err(e));
                        break;
                    }
                }
            }
        });
        for chunk in full_rx {
            let buf = chunk?;
            update(&buf);
            let _ = empty_tx.send(buf);
        }
        Ok(())
    })
}

pub(crate) fn load_certs(path: &Path) -> anyhow::Result<Vec<Vec<u8>>> {
    stamp::keys::load_certs(path)
}

/// `stamp verify --archive`: every token of an export, on every core; a summary line (or
/// JSON), the failures by serial, exit 1 when any fails.
fn verify_archive(path: &Path, opts: &VerifyOptions, json: bool) -> anyhow::Result<Exit> {
    let progress = std::io::stderr().is_terminal() && !json;
    let summary = stamp::archive_verify::verify(path, opts, stamp::pool::cores(), progress)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&summary)?);
    } else {
        for (serial, why) in &summary.failures {
            println!("{}: FAILED: {}", escape(serial), escape(why));
        }
        println!(
            "{}: {} tokens, {} verified, {} failed{}",
            escape(&path.display().to_string()),
            summary.tokens,
            summary.verified,
            summary.failures.len(),
            if summary.tokens == 0 {
                " (nothing to verify: an empty export proves nothing)"
            } else {
                ""
            }
        );
    }
    Ok(if summary.failures.is_empty() && summary.tokens > 0 {
        Exit::Verified
    } else {
        Exit::NotVerified
    })
}

fn cmd_verify(a: VerifyArgs) -> anyhow::Result<Exit> {
    if a.trust.is_empty() {
        return Err(anyhow!(
            "no trust anchor: pass --trust ROOT.pem (for a Sigillum development authority: --trust tsa-data/root.pem)"
        ));
    }
    if a.token.is_some() && a.files.len() > 1 {
        return Err(anyhow!(
            "--token names the token of one file; got {} files",
            a.files.len()
        ));
    }
    let mut opts = VerifyOptions {
        strict: a.strict,
        ..VerifyOptions::default()
    };
    for t in &a.trust {
        opts.trust.extend(load_certs(t)?);
    }
    for c in &a.certs {
        opts.extra_certs.extend(load_certs(c)?);
    }
    if let Some(archive) = &a.archive {
        return verify_archive(archive, &opts, a.json);
    }
    let mut email = EmailVerifyOptions {
        trust: opts.trust.clone(),
        extra_certs: opts.extra_certs.clone(),
        max_time_gap: a.max_time_gap,
        strict: a.strict,
        ..EmailVerifyOptions::default()
    };
    if !a.tsa_trust.is_empty() {
        let mut anchors = Vec::new();
        for t in &a.tsa_trust {
            anchors.extend(load_certs(t)?);
        }
        email.tsa_trust = Some(anchors);
    }
    email.check_time = match a.at.as_deref() {
        None => CheckTime::Proven,
        Some("claimed") => CheckTime::Claimed,
        Some(t) => {
            let at = parse_rfc3339(t)?;
            // A token's own claim is its genTime: `--at claimed` leaves tokens as they are.
            opts.at = Some(at);
            CheckTime::At(at)
        }
    };
    let pdf = pdf_signer::PdfVerifyOptions {
        trust: email.trust.clone(),
        tsa_trust: email.tsa_trust.clone(),
        extra_certs: email.extra_certs.clone(),
        check_time: email.check_time,
        now: None,
        strict: a.strict,
    };
    let bar = if a.json {
        None
    } else {
        progress(a.files.len())
    };
    // Every core verifies (and renders, for text); results keep the input order, and the first
    // unreadable input (in that order) is the error, before anything is printed.
    let verify = |i: usize| {
        let r = verify_any(&a.files[i], a.token.as_deref(), &opts, &email, &pdf);
        if let Some(b) = &bar {
            b.inc(1);
        }
        r
    };
    let n = a.files.len();
    let verified = if a.json {
        let reports = stamp::pool::map(n, stamp::pool::cores(), verify)
            .into_iter()
            .collect::<anyhow::Result<Vec<Report>>>()?;
        let text = if reports.len() == 1 {
            serde_json::to_string_pretty(&reports[0])?
        } else {
            serde_json::to_string_pretty(&reports)?
        };
        println!("{text}");
        reports.iter().all(|r| r.verified)
    } else {
        let texts = stamp::pool::map(n, stamp::pool::cores(), |i| {
            verify(i).map(|r| (r.verified, stamp::render::report(&r, a.verbose)))
        })
        .into_iter()
        .collect::<anyhow::Result<Vec<(bool, String)>>>()?;
        if let Some(b) = &bar {
            b.finish_and_clear();
        }
        // One buffered writer: stdout alone would write each report's lines separately.
        let mut out = std::io::BufWriter::new(std::io::stdout().lock());
        for (_, text) in &texts {
            out.write_all(text.as_bytes())?;
        }
        out.flush()?;
        texts.iter().all(|(v, _)| *v)
    };
    Ok(if verified {
        Exit::Verified
    } else {
        Exit::NotVerified
    })
}

fn parse_rfc3339(t: &str) -> anyhow::Result<i64> {
    let at = time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("--at {t:?} is neither an RFC 3339 time (2026-12-03T10:00:00Z) nor `claimed`")
        })?;
    Ok(at.unix_timestamp())
}

/// Verifies one input: a file with its token (given, or FILE.tsr beside it), or a signed
/// message, told apart by content when no token is given or found.
fn verify_any(
    file: &Path,
    token: Option<&Path>,
    opts: &VerifyOptions,
    email: &EmailVerifyOptions,
    pdf: &pdf_signer::PdfVerifyOptions,
) -> anyhow::Result<Report> {
    if let Some(t) = token {
        return verify_one(file, t, opts);
    }
    let tsr = tsr_path(file, None)?;
    if tsr.exists() {
        return verify_one(file, &tsr, opts);
    }
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    if pdf_signer::looks_like_pdf(&bytes) {
        return Ok(pdf_signer::verify_pdf(
            &file.display().to_string(),
            &bytes,
            pdf,
        ));
    }
    if pki::smime::looks_like_message(&bytes) {
        return Ok(pki::smime::verify_message(
            &file.display().to_string(),
            &bytes,
            email,
        ));
    }
    // Neither: say what was looked for.
    verify_one(file, &tsr, opts)
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Both readers feed every byte once and in order, for sizes around their chunk boundaries
    /// (the small files' buffer of the file's size, the overlapped reader's chunks), and agree
    /// with one digest of the whole content.
    #[test]
    fn files_hash_the_same_at_sizes_around_every_read_boundary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let chunk = u64::try_from(LARGE_CHUNK).expect("small");
        let small = u64::try_from(SMALL_CHUNK).expect("small");
        for len in [
            0,
            1,
            small - 1,
            small,
            small + 1,
            3 * small + 7,
            OVERLAP_FROM - 1,
            OVERLAP_FROM,
            OVERLAP_FROM + 1,
            OVERLAP_FROM + 3 * chunk + 12_345,
        ] {
            let len = usize::try_from(len).expect("fits");
            // Bytes that differ by position, so a chunk out of order or twice changes the hash.
            let content: Vec<u8> = (0..len)
                .map(|i| u8::try_from((i * 7 + i / 4096) % 251).expect("< 251"))
                .collect();
            let path = dir.path().join(format!("f{len}"));
            std::fs::write(&path, &content).expect("write");
            for alg in [HashAlg::Sha256, HashAlg::Sha512] {
                let mut whole = alg.hasher();
                whole.update(&content);
                assert_eq!(
                    hash_file(&path, alg).expect("hash"),
                    whole.finish().as_ref(),
                    "{len} bytes, {alg:?}"
                );
            }
        }
    }

    #[test]
    fn a_read_error_in_the_reader_thread_is_an_error_not_a_digest() {
        // A directory opens but cannot be read; its size is below the threshold, so ask the
        // overlapped path directly.
        let dir = tempfile::tempdir().expect("tempdir");
        let f = std::fs::File::open(dir.path()).expect("open a directory");
        let mut fed = 0usize;
        let result = hash_overlapped(f, |c| fed += c.len());
        assert!(result.is_err(), "read a directory: {result:?}");
        assert_eq!(fed, 0);
    }
}
