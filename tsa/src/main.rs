//! The `tsa` binary: `tsa serve` and `tsa init`.

use anyhow::Context;
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use tsa::clock::ClockGuard;
use tsa::config::{Config, Overrides};
use tsa::state::App;

/// mimalloc instead of glibc's malloc: see the workspace Cargo.toml and BENCHMARKS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Sigillum RFC 3161 Time-Stamp Authority.
#[derive(Parser, Debug)]
#[command(name = "tsa", version, about)]
struct Opts {
    #[command(subcommand)]
    command: Command,
    /// Log format on standard error: `text`, or `json` (one object a line, for log shippers).
    #[arg(long, global = true, env = "TSA_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Serve RFC 3161 over HTTP. With no configuration, creates a development PKI and an
    /// SQLite archive in the data directory on first run.
    Serve {
        /// TOML configuration file (see deploy/tsa.example.toml).
        #[arg(long, env = "TSA_CONFIG")]
        config: Option<PathBuf>,
        /// Address to listen on [default: 127.0.0.1:3161].
        #[arg(long, env = "TSA_LISTEN")]
        listen: Option<String>,
        /// Data directory [default: ./tsa-data].
        #[arg(long, env = "TSA_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Archive URL: sqlite://PATH or postgres://USER@HOST/DB [default: sqlite in the data dir].
        #[arg(long, env = "TSA_DATABASE_URL")]
        database_url: Option<String>,
    },
    /// Create a one-time enrolment code for an address (out-of-band enrolment: a branch, a
    /// test) and print its `reference:` and `secret:` lines. Same lifetime, single use and
    /// per-address limit as mailed codes.
    EnrollCode {
        /// TOML configuration file (see deploy/tsa.example.toml).
        #[arg(long, env = "TSA_CONFIG")]
        config: Option<PathBuf>,
        /// Data directory [default: ./tsa-data].
        #[arg(long, env = "TSA_DATA_DIR")]
        data_dir: Option<PathBuf>,
        /// Archive URL [default: sqlite in the data dir].
        #[arg(long, env = "TSA_DATABASE_URL")]
        database_url: Option<String>,
        /// The address the code proves.
        #[arg(long)]
        email: String,
    },
    /// The token archive: export a period for an auditor, list the tokens of a certificate.
    #[command(subcommand)]
    Archive(ArchiveCommand),
    /// Create the development PKI (root CA + TSA certificate) and exit.
    Init {
        /// Data directory [default: ./tsa-data].
        #[arg(long, env = "TSA_DATA_DIR", default_value = tsa::config::DEFAULT_DATA_DIR)]
        data_dir: PathBuf,
        /// Key type: ecdsa-p256, ecdsa-p384 or ed25519 (with --pkcs11-module: ecdsa-p256 or
        /// rsa-2048).
        #[arg(long, default_value = "ecdsa-p256")]
        key_type: String,
        /// Make the TSA key in this PKCS#11 module's token instead (an HSM), and a development
        /// certificate for it (DATA_DIR/tsa-pkcs11.pem) under the development root.
        #[arg(long, requires_all = ["pkcs11_token", "pkcs11_key", "pkcs11_pin_file"])]
        pkcs11_module: Option<PathBuf>,
        /// The token's label.
        #[arg(long)]
        pkcs11_token: Option<String>,
        /// The label the new key gets (must be free).
        #[arg(long)]
        pkcs11_key: Option<String>,
        /// A file whose first line is the user PIN.
        #[arg(long)]
        pkcs11_pin_file: Option<PathBuf>,
    },
}

/// Where the archive is: a configuration, a data directory or a database URL.
#[derive(clap::Args, Debug)]
struct ArchiveLocation {
    /// TOML configuration file (its database_url).
    #[arg(long, env = "TSA_CONFIG")]
    config: Option<PathBuf>,
    /// Data directory (its SQLite archive) [default: ./tsa-data].
    #[arg(long, env = "TSA_DATA_DIR")]
    data_dir: Option<PathBuf>,
    /// Archive URL: sqlite://PATH or postgres://USER@HOST/DB.
    #[arg(long, env = "TSA_DATABASE_URL")]
    database_url: Option<String>,
    /// Tokens with genTime at or after this (RFC 3339, or YYYY-MM-DD for its midnight UTC).
    #[arg(long)]
    from: Option<String>,
    /// Tokens with genTime before this (RFC 3339, or YYYY-MM-DD).
    #[arg(long)]
    to: Option<String>,
}

#[derive(Subcommand, Debug)]
enum ArchiveCommand {
    /// Write the tokens of a period as a tar: `<serial hex>.tst` each, then manifest.csv.
    Export {
        #[command(flatten)]
        at: ArchiveLocation,
        /// The tar file to write.
        #[arg(short = 'o', long = "out")]
        out: PathBuf,
    },
    /// List the tokens signed by a certificate (after a key compromise): `serial genTime`.
    List {
        #[command(flatten)]
        at: ArchiveLocation,
        /// The signing certificate (PEM or DER).
        #[arg(long)]
        signer_cert: Option<PathBuf>,
    },
}

fn archive_command(cmd: ArchiveCommand) -> anyhow::Result<()> {
    let (at, out, signer_cert) = match cmd {
        ArchiveCommand::Export { at, out } => (at, Some(out), None),
        ArchiveCommand::List { at, signer_cert } => (at, None, signer_cert),
    };
    let cfg = Config::load(
        at.config.as_deref(),
        Overrides {
            listen: None,
            data_dir: at.data_dir,
            database_url: at.database_url,
        },
    )?;
    // Reading an archive must not create an empty one where none is (a wrong --data-dir).
    if let Some(path) = cfg.database_url.strip_prefix("sqlite://")
        && !std::path::Path::new(path.split('?').next().unwrap_or(path)).exists()
    {
        anyhow::bail!("no archive at {path}: check --data-dir, --database-url or --config");
    }
    let mut filter = tsa::archive::TokenFilter {
        from_ms: at
            .from
            .as_deref()
            .map(tsa::export::parse_time)
            .transpose()?,
        to_ms: at.to.as_deref().map(tsa::export::parse_time).transpose()?,
        signer_cert_sha256: None,
    };
    if let Some(path) = &signer_cert {
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        let certs = pki::cert::load_certificates(&bytes)
            .with_context(|| format!("no certificate in {}", path.display()))?;
        let first = certs
            .first()
            .with_context(|| format!("no certificate in {}", path.display()))?;
        filter.signer_cert_sha256 = Some(pki::HashAlg::Sha256.digest(first));
    }
    // A reader: the schema must be current, and is not upgraded from here.
    on_archive(&cfg, false, async |archive| match &out {
        Some(out) => tsa::export::export_tar(archive, &filter, out)
            .await
            .map(|n| eprintln!("exported {n} tokens to {}", out.display())),
        None => tsa::export::list(archive, &filter)
            .await
            .map(|n| eprintln!("{n} tokens")),
    })
}

/// Runs `work` on the archive `cfg` names (a one-off command: a small runtime, the archive
/// closed afterwards, whatever `work` returned).
fn on_archive<T>(
    cfg: &Config,
    migrate: bool,
    work: impl AsyncFnOnce(&tsa::archive::Archive) -> anyhow::Result<T>,
) -> anyhow::Result<T> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let opts = tsa::archive::ArchiveOptions {
            migrate,
            ..Default::default()
        };
        let archive = tsa::archive::Archive::connect(&cfg.database_url, opts)
            .await
            .with_context(|| {
                format!(
                    "cannot open the archive at {}",
                    tsa::state::redact(&cfg.database_url)
                )
            })?;
        let result = work(&archive).await;
        archive.close().await;
        result
    })
}

fn main() -> ExitCode {
    let opts = Opts::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,sqlx=warn".into());
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if opts.log_format == "json" {
        logs.json().with_current_span(true).init();
    } else {
        logs.with_ansi(
            std::io::IsTerminal::is_terminal(&std::io::stderr())
                && std::env::var_os("NO_COLOR").is_none(),
        )
        .init();
    }
    let result = match opts.command {
        Command::Init {
            data_dir,
            key_type,
            pkcs11_module: Some(module),
            pkcs11_token: Some(token),
            pkcs11_key: Some(key),
            pkcs11_pin_file: Some(pin_file),
        } => init_pkcs11(&data_dir, &key_type, &module, &token, &key, &pin_file),
        Command::Init {
            data_dir, key_type, ..
        } => init(&data_dir, &key_type),
        Command::Archive(cmd) => archive_command(cmd),
        Command::EnrollCode {
            config,
            data_dir,
            database_url,
            email,
        } => enroll_code(
            config,
            Overrides {
                listen: None,
                data_dir,
                database_url,
            },
            &email,
        ),
        Command::Serve {
            config,
            listen,
            data_dir,
            database_url,
        } => serve(
            config,
            Overrides {
                listen,
                data_dir,
                database_url,
            },
        ),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tsa: error: {e}");
            for cause in e.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::from(2)
        }
    }
}

fn init_pkcs11(
    dir: &std::path::Path,
    key_type: &str,
    module: &std::path::Path,
    token: &str,
    key: &str,
    pin_file: &std::path::Path,
) -> anyhow::Result<()> {
    use pki::signer::pkcs11::{KeyKind, Pkcs11Key};
    let kind = match key_type {
        "ecdsa-p256" => KeyKind::EcdsaP256,
        "rsa-2048" => KeyKind::Rsa2048,
        other => anyhow::bail!("{other:?}: an HSM key is ecdsa-p256 or rsa-2048"),
    };
    let pin = tsa::config::Pkcs11Config {
        module: module.into(),
        token: token.into(),
        key: key.into(),
        pin_file: Some(pin_file.into()),
        pin_env: None,
    }
    .pin()?;
    tsa::keys::init_dev_pki(dir, Default::default())?;
    let spki = pki::signer::pkcs11::generate(
        &Pkcs11Key {
            module,
            token_label: token,
            key_label: key,
            pin: &pin,
        },
        kind,
    )?;
    let cert = tsa::keys::issue_dev_tsa_certificate(dir, &spki)?;
    println!("Made the key {key:?} in PKCS#11 token {token:?} (it never leaves the token).");
    println!("DEVELOPMENT certificate for it: {}", cert.display());
    println!("Serve with this configuration:");
    // TOML strings, escaped (a path may hold a quote or a backslash).
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    println!(
        "\n[key]\ncertificate = {}\nchain = {}\n\n[key.pkcs11]\nmodule = {}\ntoken = {}\nkey = {}\npin_file = {}\n",
        q(&cert.display().to_string()),
        q(&dir.join(tsa::keys::files::ROOT_CERT).display().to_string()),
        q(&module.display().to_string()),
        q(token),
        q(key),
        q(&pin_file.display().to_string())
    );
    Ok(())
}

fn init(dir: &std::path::Path, key_type: &str) -> anyhow::Result<()> {
    let kind = pki::devpki::DevKeyType::from_name(key_type).ok_or_else(|| {
        anyhow::anyhow!("unknown key type {key_type:?}; use ecdsa-p256, ecdsa-p384 or ed25519")
    })?;
    let outcome = tsa::keys::init_dev_pki(dir, kind)?;
    if outcome.created {
        println!(
            "Created a DEVELOPMENT PKI in {} (not for production).",
            dir.display()
        );
    } else {
        println!("A PKI already exists in {}; left unchanged.", dir.display());
    }
    println!("Root certificate: {}", outcome.root_cert.display());
    println!(
        "Verify tokens with: stamp verify FILE --trust {}",
        outcome.root_cert.display()
    );
    Ok(())
}

fn enroll_code(config: Option<PathBuf>, overrides: Overrides, email: &str) -> anyhow::Result<()> {
    let cfg = Config::load(config.as_deref(), overrides)?;
    let email = tsa::ca::normalise_email(email)
        .ok_or_else(|| anyhow::anyhow!("{email:?} is not an email address"))?;
    if cfg.key.is_none() {
        tsa::keys::init_dev_pki(&cfg.data_dir, Default::default())?;
    }
    let ca = tsa::ca::CaService::load(&cfg).context("cannot load the CA ([ca])")?;
    on_archive(&cfg, true, async |archive| {
        match ca.new_code(archive, &email, "operator").await? {
            Ok((reference, secret, expires_at)) => {
                let until = time::OffsetDateTime::from_unix_timestamp(expires_at)?
                    .format(&time::format_description::well_known::Rfc3339)?;
                println!("email: {email}");
                println!("reference: {reference}");
                println!("secret: {}", secret.as_str());
                println!("expires: {until}");
                Ok(())
            }
            Err(limited) => anyhow::bail!(
                "too many enrolment codes for this {} within the window; try again in {} s",
                limited.limit,
                limited.retry_after
            ),
        }
    })
}

/// Resolves on SIGINT or SIGTERM (systemd, Kubernetes), so in-flight requests finish (within
/// `server.drain_timeout_ms`) and the archive commits what is queued before the process exits.
async fn shutdown_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = term => {}
    }
}

fn serve(config: Option<PathBuf>, overrides: Overrides) -> anyhow::Result<()> {
    // The runtime first, so that SIGHUP has its handler before anything else is done (its
    // default ends the process, and systemd allows a reload as soon as the process runs).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let hangups = {
        let _in_runtime = runtime.enter();
        tsa::tls::hangup_signal()
    };
    let cfg = Config::load(config.as_deref(), overrides)?;
    let stop = cfg.stop_budget();
    if stop > tsa::limits::SUPERVISOR_STOP_TIMEOUT {
        tracing::warn!(
            ?stop,
            "server.drain_timeout_ms + archive.commit_timeout_ms + 3 s exceeds the shipped systemd unit's TimeoutStopSec=30: raise TimeoutStopSec, or a slow stop is SIGKILLed"
        );
    }
    // Before the archive opens its files: the cap must leave them room.
    let max_connections = tsa::server::connection_budget(&cfg.server, cfg.archive.max_connections)?;
    let served = runtime.block_on(async move {
        let app = App::build(&cfg, ClockGuard::kernel()).await?;
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("cannot listen on {}", cfg.listen))?;
        // HTTPS is set up before anything says "Listening": a TLS file that does not load ends
        // the start with its error alone.
        let (https, reload) = match &cfg.tls {
            Some((addr, cert, key)) => {
                let files = tsa::tls::TlsFiles::new(
                    cert,
                    key,
                    cfg.tls_client_ca.as_deref(),
                    cfg.tls_client_crl.as_deref(),
                )?;
                let (listener, acceptor) = tsa::tls::bind(*addr, &files).await?;
                let (reloaded, current) = tokio::sync::watch::channel(acceptor);
                (Some((*addr, listener, current)), Some((files, reloaded)))
            }
            None => (None, None),
        };
        let root = cfg.data_dir.join(tsa::keys::files::ROOT_CERT);
        if cfg.key.is_none() {
            eprintln!("Development root certificate: {} (stamp verify FILE --trust {})", root.display(), root.display());
        }
        tracing::info!(listen = %cfg.listen, archive = %tsa::state::redact(&cfg.database_url), max_connections, "serving RFC 3161");
        eprintln!("Listening on http://{}/", cfg.listen);
        let https = https.map(|(addr, listener, current)| {
            eprintln!("Listening on https://{addr}/");
            (listener, current)
        });
        let archive = app.archive.clone();
        let router = tsa::routes::app(app);
        tokio::spawn(tsa::tls::reload_on_hangup(
            hangups,
            reload,
            cfg.tls_reload_check,
        ));
        tsa::server::Server::new(router, &cfg.server, max_connections)?
            .run(listener, https, shutdown_signal())
            .await;
        archive.close().await;
        Ok(())
    });
    // Dropping a runtime waits for its blocking threads, and a slow signer's thread (an HSM
    // that hangs) may never return: give them a second, then exit anyway (counted in
    // Config::stop_budget).
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    served
}
