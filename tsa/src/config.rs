//! Typed configuration: a TOML file plus command-line/environment overrides, loaded once at
//! start and validated before serving. `deploy/tsa.example.toml` documents every key.

use crate::limits;
use pki::HashAlg;
use pki::signer::RsaPadding;
use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default listen address: loopback only, port 3161 (after RFC 3161).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:3161";
/// Default data directory.
pub const DEFAULT_DATA_DIR: &str = "./tsa-data";

/// The whole configuration file.
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    /// Address to listen on.
    pub listen: Option<String>,
    /// Data directory (development PKI, SQLite archive).
    pub data_dir: Option<PathBuf>,
    /// Archive URL: `sqlite://PATH` or `postgres://...`.
    pub database_url: Option<String>,
    /// Issue even when the kernel says the clock is unsynchronised (development only).
    pub allow_unsynced_clock: Option<bool>,
    /// The signing key and certificates.
    #[serde(default)]
    pub key: Option<KeyConfig>,
    /// Token profile.
    #[serde(default)]
    pub policy: PolicyConfig,
    /// Archive tuning.
    #[serde(default)]
    pub archive: ArchiveConfig,
    /// Optional HTTPS listener beside the plain HTTP one.
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Connection handling: deadlines, idle timeout, connection cap, drain.
    #[serde(default)]
    pub server: ServerFileConfig,
    /// The certificate authority for email certificates (CMP, directory, OCSP, CRL).
    #[serde(default)]
    pub ca: CaConfig,
}

/// `[ca]`: the email-certificate CA. Without `key`, the development root in the data
/// directory signs (development only).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CaConfig {
    /// Serve the CA routes (CMP, enrolment, directory, OCSP, CRL) [default: on with the
    /// development PKI or when `ca.key` is set; off for a production `[key]` without a CA key].
    pub enabled: Option<bool>,
    /// The CA's PKCS#8 key, PEM or DER.
    pub key: Option<PathBuf>,
    /// The CA's certificate (and, after it, its chain), PEM or DER.
    pub certificate: Option<PathBuf>,
    /// The CA's key in a PKCS#11 token instead of `key`.
    pub pkcs11: Option<Pkcs11Config>,
    /// The base URL relying parties reach this server at, for the AIA and CRL distribution
    /// point URLs in issued certificates [default: http://LISTEN].
    pub public_url: Option<String>,
    /// Lifetime of issued certificates, in days.
    #[serde(default = "default_validity_days")]
    pub validity_days: u32,
    /// Lifetime of an enrolment code, in seconds.
    #[serde(default = "default_code_ttl")]
    pub code_ttl_secs: u32,
    /// Enrolment codes per address within `code_window_secs`.
    #[serde(default = "default_codes_per_address")]
    pub codes_per_address: u32,
    /// Enrolment codes per client (IP address) within `code_window_secs`.
    #[serde(default = "default_codes_per_client")]
    pub codes_per_client: u32,
    /// The rate-limit window, in seconds.
    #[serde(default = "default_code_window")]
    pub code_window_secs: u32,
    /// The 32-byte key that derives enrolment secrets from their references (every node of a
    /// shared CA needs the same file) [default: DATA_DIR/enrolment.key, created 0600].
    pub enrolment_key: Option<PathBuf>,
    /// A delegated OCSP responder's key (id-kp-OCSPSigning certificate issued by the CA);
    /// without it the CA's key signs OCSP responses.
    pub ocsp_key: Option<PathBuf>,
    /// The delegated responder's certificate.
    pub ocsp_certificate: Option<PathBuf>,
    /// Where enrolment codes are mailed from; without it `POST /enroll/start` answers 503
    /// and codes come from `tsa enroll-code`.
    pub smtp: Option<SmtpConfig>,
}

/// `[ca.smtp]`: the mail relay enrolment codes go through.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    /// Relay host.
    pub host: String,
    /// Relay port [default: 25].
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// The From address of code mails.
    pub from: String,
    /// `none` (loopback relays only), `starttls` or `tls`.
    #[serde(default = "default_smtp_security")]
    pub security: String,
    /// SMTP AUTH user name, when the relay asks for one.
    pub username: Option<String>,
    /// File holding the SMTP AUTH password.
    pub password_file: Option<PathBuf>,
}

fn default_validity_days() -> u32 {
    365
}
fn default_code_ttl() -> u32 {
    900
}
fn default_codes_per_address() -> u32 {
    3
}
fn default_codes_per_client() -> u32 {
    10
}
fn default_code_window() -> u32 {
    3600
}
fn default_smtp_port() -> u16 {
    25
}
fn default_smtp_security() -> String {
    "starttls".into()
}

impl Default for CaConfig {
    fn default() -> Self {
        CaConfig {
            enabled: None,
            key: None,
            certificate: None,
            pkcs11: None,
            public_url: None,
            validity_days: default_validity_days(),
            code_ttl_secs: default_code_ttl(),
            codes_per_address: default_codes_per_address(),
            codes_per_client: default_codes_per_client(),
            code_window_secs: default_code_window(),
            enrolment_key: None,
            ocsp_key: None,
            ocsp_certificate: None,
            smtp: None,
        }
    }
}

/// `[server]` as written in the file: every key optional, defaults in [`crate::limits`].
#[derive(Clone, Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ServerFileConfig {
    /// Whole-request deadline (headers and body) from the request's first byte, in ms.
    pub request_timeout_ms: Option<u64>,
    /// Idle keep-alive timeout: a connection with no request in progress is closed, in ms.
    pub idle_timeout_ms: Option<u64>,
    /// Most client connections open at once (HTTP and HTTPS together).
    pub max_connections: Option<usize>,
    /// After SIGTERM/Ctrl-C, how long in-flight requests may take before they are aborted, in ms.
    pub drain_timeout_ms: Option<u64>,
    /// Requests a second one client address may make (a burst of as many), per node; over it,
    /// HTTP 429 with Retry-After. Off when absent.
    pub requests_per_second_per_client: Option<u32>,
    /// Proxies (addresses or CIDR ranges) whose `X-Forwarded-For` names the client (see
    /// [`crate::proxy`]). Empty when absent: the TCP peer is the client.
    pub trusted_proxies: Option<Vec<String>>,
    /// Clients (addresses or CIDR ranges) that may read `GET /metrics`; everyone when absent,
    /// no one when empty.
    pub metrics_clients: Option<Vec<String>>,
}

/// `[server]`, validated: what [`crate::server`] runs with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// Whole-request deadline (headers and body), from the request's first byte.
    pub request_timeout: Duration,
    /// Idle keep-alive timeout.
    pub idle_timeout: Duration,
    /// Connection cap, before the file-descriptor check at start (see
    /// [`crate::server::connection_budget`]).
    pub max_connections: usize,
    /// Whether `max_connections` was set in the file (then the server refuses to start when
    /// the file-descriptor limit cannot hold it, rather than clamping it with a warning).
    pub max_connections_configured: bool,
    /// Drain deadline after SIGTERM or Ctrl-C.
    pub drain_timeout: Duration,
    /// Per-client rate limit, requests a second.
    pub requests_per_second_per_client: Option<u32>,
    /// Whose `X-Forwarded-For` is believed.
    pub trusted_proxies: crate::proxy::TrustedProxies,
    /// Who may read `GET /metrics` (`None`: everyone).
    pub metrics_clients: Option<crate::proxy::AddressRanges>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            request_timeout: Duration::from_millis(limits::DEFAULT_REQUEST_TIMEOUT_MS),
            idle_timeout: Duration::from_millis(limits::DEFAULT_IDLE_TIMEOUT_MS),
            max_connections: limits::DEFAULT_MAX_CONNECTIONS,
            max_connections_configured: false,
            drain_timeout: Duration::from_millis(limits::DEFAULT_DRAIN_TIMEOUT_MS),
            requests_per_second_per_client: None,
            trusted_proxies: crate::proxy::TrustedProxies::default(),
            metrics_clients: None,
        }
    }
}

impl ServerFileConfig {
    /// Applies the defaults and checks every value against its bounds.
    pub fn resolve(&self) -> Result<ServerConfig, ConfigError> {
        fn millis(
            key: &'static str,
            value: Option<u64>,
            default: u64,
            range: std::ops::RangeInclusive<u64>,
        ) -> Result<Duration, ConfigError> {
            let v = value.unwrap_or(default);
            if !range.contains(&v) {
                return Err(ConfigError::Value {
                    key,
                    detail: format!("{v} ms is outside {}..={} ms", range.start(), range.end()),
                });
            }
            Ok(Duration::from_millis(v))
        }
        let request_timeout = millis(
            "server.request_timeout_ms",
            self.request_timeout_ms,
            limits::DEFAULT_REQUEST_TIMEOUT_MS,
            100..=limits::MAX_REQUEST_TIMEOUT_MS,
        )?;
        let idle_timeout = millis(
            "server.idle_timeout_ms",
            self.idle_timeout_ms,
            limits::DEFAULT_IDLE_TIMEOUT_MS,
            100..=limits::MAX_IDLE_TIMEOUT_MS,
        )?;
        let drain_timeout = millis(
            "server.drain_timeout_ms",
            self.drain_timeout_ms,
            limits::DEFAULT_DRAIN_TIMEOUT_MS,
            0..=limits::MAX_DRAIN_TIMEOUT_MS,
        )?;
        let max_connections = self
            .max_connections
            .unwrap_or(limits::DEFAULT_MAX_CONNECTIONS);
        if !(limits::MIN_CONNECTIONS..=limits::MAX_CONNECTIONS).contains(&max_connections) {
            return Err(ConfigError::Value {
                key: "server.max_connections",
                detail: format!(
                    "{max_connections} is outside {}..={}",
                    limits::MIN_CONNECTIONS,
                    limits::MAX_CONNECTIONS
                ),
            });
        }
        if self.requests_per_second_per_client == Some(0) {
            return Err(ConfigError::Value {
                key: "server.requests_per_second_per_client",
                detail: "0 would refuse everything; leave it out to switch the limit off".into(),
            });
        }
        let trusted_proxies =
            crate::proxy::TrustedProxies::parse(self.trusted_proxies.as_deref().unwrap_or(&[]))
                .map_err(|detail| ConfigError::Value {
                    key: "server.trusted_proxies",
                    detail,
                })?;
        let metrics_clients = self
            .metrics_clients
            .as_deref()
            .map(crate::proxy::AddressRanges::parse)
            .transpose()
            .map_err(|detail| ConfigError::Value {
                key: "server.metrics_clients",
                detail,
            })?;
        Ok(ServerConfig {
            request_timeout,
            idle_timeout,
            max_connections,
            max_connections_configured: self.max_connections.is_some(),
            drain_timeout,
            requests_per_second_per_client: self.requests_per_second_per_client,
            trusted_proxies,
            metrics_clients,
        })
    }
}

/// How often, by default, the HTTPS files are checked for a change on disk.
const DEFAULT_TLS_RELOAD_CHECK_SECS: u64 = 60;
/// The longest check interval accepted.
const MAX_TLS_RELOAD_CHECK_SECS: u64 = 86_400;

/// `[tls]`: an HTTPS listener served beside plain HTTP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// Address for HTTPS.
    pub listen: String,
    /// Server certificate chain, PEM.
    pub certificate: PathBuf,
    /// Server key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// CA certificates (PEM) whose client certificates the HTTPS listener asks for and checks;
    /// the `/admin/` routes need one (and an allowlisted subject or issuer).
    pub client_ca: Option<PathBuf>,
    /// CRLs of the `client_ca` certificates (PEM `X509 CRL` blocks, or one DER CRL), read at
    /// start, on SIGHUP and when the file changes: a revoked client certificate, or one from a
    /// CA with no CRL here, fails the handshake.
    pub client_crl: Option<PathBuf>,
    /// How often (seconds) the certificate, key and CRL files are checked for a change on disk,
    /// which reloads them as SIGHUP does; 0: only on SIGHUP. Default 60.
    pub reload_check_secs: Option<u64>,
    /// Client certificate subjects (RFC 4514, as `CN=branch-7,O=Bank`: no space after commas) allowed
    /// on the `/admin/` routes.
    #[serde(default)]
    pub admin_subjects: Vec<String>,
    /// Client certificate issuers allowed on the `/admin/` routes (every client of that CA).
    #[serde(default)]
    pub admin_issuers: Vec<String>,
}

/// Who may use the `/admin/` routes: HTTPS clients with a certificate from `client_ca`
/// whose subject or issuer is listed. Nobody when empty.
#[derive(Clone, Debug, Default)]
pub struct AdminAccess {
    /// Allowed subjects.
    pub subjects: Vec<String>,
    /// Allowed issuers.
    pub issuers: Vec<String>,
    /// The `client_ca` certificates (DER), read at start: an admin client's certificate must
    /// be issued directly by one of them (a sub-CA under them could otherwise mint an
    /// allowlisted name).
    pub cas: Vec<Vec<u8>>,
}

/// `[key]`: where the signing key and its certificates are.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// PKCS#8 private key, PEM or DER (or `pkcs11` instead).
    pub file: Option<PathBuf>,
    /// The TSA certificate, PEM or DER.
    pub certificate: PathBuf,
    /// Certificates above it (intermediates, then the root), PEM bundle. Optional.
    pub chain: Option<PathBuf>,
    /// RSA padding: "pkcs1" (default) or "pss".
    #[serde(default)]
    pub rsa_padding: RsaPadding,
    /// The key in a PKCS#11 token (an HSM) instead of a file.
    pub pkcs11: Option<Pkcs11Config>,
}

/// `[key.pkcs11]`: a key in a PKCS#11 token.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Pkcs11Config {
    /// The module (`/usr/lib/softhsm/libsofthsm2.so`, the HSM vendor's library).
    pub module: PathBuf,
    /// The token's label.
    pub token: String,
    /// The private key's label.
    pub key: String,
    /// A file whose first line is the user PIN (mode 0600).
    pub pin_file: Option<PathBuf>,
    /// An environment variable holding the user PIN (Kubernetes secrets, systemd credentials).
    pub pin_env: Option<String>,
}

impl Pkcs11Config {
    /// With its paths resolved against the configuration file's directory.
    fn resolved(self, resolve: impl Fn(PathBuf) -> PathBuf) -> Pkcs11Config {
        Pkcs11Config {
            module: resolve(self.module),
            pin_file: self.pin_file.map(&resolve),
            ..self
        }
    }

    /// The PIN, from `pin_file` or `pin_env`.
    pub fn pin(&self) -> Result<zeroize::Zeroizing<String>, ConfigError> {
        match (&self.pin_file, &self.pin_env) {
            (Some(f), None) => {
                {
                    use std::os::unix::fs::PermissionsExt;
                    if let Ok(meta) = std::fs::metadata(f)
                        && meta.permissions().mode() & 0o077 != 0
                    {
                        tracing::warn!(path = %f.display(), "the PIN file is readable by group or others; chmod 600 it");
                    }
                }
                let text = zeroize::Zeroizing::new(std::fs::read_to_string(f).map_err(|e| {
                    ConfigError::Value {
                        key: "key.pkcs11.pin_file",
                        detail: format!("{}: {e}", f.display()),
                    }
                })?);
                Ok(zeroize::Zeroizing::new(
                    text.lines().next().unwrap_or("").to_owned(),
                ))
            }
            (None, Some(var)) => std::env::var(var)
                .map(zeroize::Zeroizing::new)
                .map_err(|_| ConfigError::Value {
                    key: "key.pkcs11.pin_env",
                    detail: format!("the environment variable {var} is not set"),
                }),
            _ => Err(ConfigError::Value {
                key: "key.pkcs11",
                detail: "give exactly one of pin_file and pin_env".into(),
            }),
        }
    }
}

/// `[policy]`: the token profile.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy OID used when a request names none.
    pub default: String,
    /// Other policy OIDs a request may ask for.
    #[serde(default)]
    pub accepted: Vec<String>,
    /// Imprint hash algorithms accepted.
    #[serde(default = "default_hashes")]
    pub hash_algorithms: Vec<String>,
    /// Accept SHA-1 imprints (forbidden by CA/B Forum code-signing rules; legacy only).
    #[serde(default)]
    pub dangerous_allow_sha1: bool,
    /// Accuracy: seconds part.
    pub accuracy_seconds: Option<u64>,
    /// Accuracy: milliseconds part (1-999).
    pub accuracy_millis: Option<u16>,
    /// Accuracy: microseconds part (1-999).
    pub accuracy_micros: Option<u16>,
    /// Put the TSA certificate's subject in the tokens' `tsa` field.
    #[serde(default = "yes")]
    pub include_tsa_name: bool,
    /// Mark tokens as qualified (ETSI EN 319 422 qcStatements esi4-qtstStatement-1).
    #[serde(default)]
    pub qualified: bool,
}

fn default_hashes() -> Vec<String> {
    vec!["sha256".into(), "sha384".into(), "sha512".into()]
}

fn yes() -> bool {
    true
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default: pki::oid::DEV_POLICY.to_string(),
            accepted: Vec::new(),
            hash_algorithms: default_hashes(),
            dangerous_allow_sha1: false,
            accuracy_seconds: Some(1),
            accuracy_millis: None,
            accuracy_micros: None,
            include_tsa_name: true,
            qualified: false,
        }
    }
}

/// `[archive]`: group-commit tuning.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// Most tokens committed in one transaction.
    #[serde(default = "default_batch")]
    pub max_batch: usize,
    /// Serials reserved from the database at a time.
    #[serde(default = "default_block")]
    pub serial_block: u64,
    /// Database connections.
    #[serde(default = "default_conns")]
    pub max_connections: u32,
    /// Longest a token waits for its commit before it is refused (milliseconds).
    #[serde(default = "default_commit_timeout_ms")]
    pub commit_timeout_ms: u64,
}

fn default_batch() -> usize {
    512
}
fn default_block() -> u64 {
    crate::serial::SerialAllocator::DEFAULT_BLOCK_SIZE.get()
}
fn default_conns() -> u32 {
    4
}
fn default_commit_timeout_ms() -> u64 {
    5000
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            max_batch: default_batch(),
            serial_block: default_block(),
            max_connections: default_conns(),
            commit_timeout_ms: default_commit_timeout_ms(),
        }
    }
}

/// Overrides from the command line or environment (they win over the file).
#[derive(Clone, Debug, Default)]
pub struct Overrides {
    /// `--listen` / `TSA_LISTEN`.
    pub listen: Option<String>,
    /// `--data-dir` / `TSA_DATA_DIR`.
    pub data_dir: Option<PathBuf>,
    /// `--database-url` / `TSA_DATABASE_URL`.
    pub database_url: Option<String>,
}

/// The validated configuration the server runs with.
#[derive(Clone, Debug)]
pub struct Config {
    /// Address to listen on.
    pub listen: SocketAddr,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Archive URL.
    pub database_url: String,
    /// Whether the clock guard lets an unsynchronised clock through.
    pub allow_unsynced_clock: bool,
    /// Key and certificates; `None` means the development PKI in the data directory.
    pub key: Option<KeyConfig>,
    /// Token profile.
    pub policy: PolicyConfig,
    /// Archive tuning.
    pub archive: ArchiveConfig,
    /// HTTPS listener address, certificate and key, when configured.
    pub tls: Option<(SocketAddr, PathBuf, PathBuf)>,
    /// The client CAs the HTTPS listener checks client certificates against.
    pub tls_client_ca: Option<PathBuf>,
    /// Their CRLs, when configured.
    pub tls_client_crl: Option<PathBuf>,
    /// How often the HTTPS files are checked for a change on disk (`None`: only on SIGHUP).
    pub tls_reload_check: Option<Duration>,
    /// Who may use the `/admin/` routes.
    pub admin: AdminAccess,
    /// Connection handling (`[server]`).
    pub server: ServerConfig,
    /// Whether a configuration file was given (production) or defaults are in use.
    pub from_file: bool,
    /// The email-certificate CA (`[ca]`).
    pub ca: CaConfig,
}

/// A configuration problem, named precisely.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read configuration file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not valid TOML for this schema.
    #[error("configuration file {path} is invalid")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: toml::de::Error,
    },
    /// A value is wrong.
    #[error("configuration value `{key}` is invalid: {detail}")]
    Value {
        /// Which key.
        key: &'static str,
        /// What is wrong.
        detail: String,
    },
}

impl Config {
    fn validate_ca(&self) -> Result<(), ConfigError> {
        let ca = &self.ca;
        let bad = |key, detail: String| Err(ConfigError::Value { key, detail });
        if ca.key.is_some() && ca.pkcs11.is_some() {
            return bad("ca.key", "give ca.key or [ca.pkcs11], not both".into());
        }
        if (ca.key.is_some() || ca.pkcs11.is_some()) != ca.certificate.is_some() {
            return bad(
                "ca.key",
                "ca.certificate goes with ca.key or [ca.pkcs11]".into(),
            );
        }
        if ca.ocsp_key.is_some() != ca.ocsp_certificate.is_some() {
            return bad(
                "ca.ocsp_key",
                "ca.ocsp_key and ca.ocsp_certificate go together".into(),
            );
        }
        if ca.enabled == Some(true) && ca.certificate.is_none() && self.key.is_some() {
            return bad(
                "ca.key",
                "the CA of a production configuration ([key] set) needs its own key: set ca.key \
                 and ca.certificate"
                    .into(),
            );
        }
        if self.ca_enabled()
            && self.ca.public_url.is_none()
            && (self.listen.ip().is_unspecified() || self.key.is_some())
        {
            return bad(
                "ca.public_url",
                format!(
                    "the CA writes its OCSP, CA-issuers and CRL URLs into every certificate: set \
                     the URL clients reach this server at (listening on {} says nothing)",
                    self.listen
                ),
            );
        }
        if self.from_file
            && self.ca_enabled()
            && ca.enrolment_key.is_none()
            && !self.database_url.starts_with("sqlite:")
        {
            return bad(
                "ca.enrolment_key",
                "several nodes share this CA's database: set ca.enrolment_key to one file every \
                 node reads (each node would otherwise make its own, and codes made on one would \
                 fail on another)"
                    .into(),
            );
        }
        if !(1..=3650).contains(&ca.validity_days) {
            return bad(
                "ca.validity_days",
                format!("{} is outside 1..=3650", ca.validity_days),
            );
        }
        if !(60..=86_400).contains(&ca.code_ttl_secs) {
            return bad(
                "ca.code_ttl_secs",
                format!("{} is outside 60..=86400", ca.code_ttl_secs),
            );
        }
        if ca.codes_per_address == 0 || ca.codes_per_client == 0 || ca.code_window_secs == 0 {
            return bad(
                "ca.codes_per_address",
                "rate limits must be positive".into(),
            );
        }
        if let Some(u) = &ca.public_url
            && !(u.starts_with("http://") || u.starts_with("https://"))
        {
            return bad("ca.public_url", format!("{u:?} is not an http(s) URL"));
        }
        if let Some(smtp) = &ca.smtp
            && !["none", "starttls", "tls"].contains(&smtp.security.as_str())
        {
            return bad(
                "ca.smtp.security",
                format!("{:?}: expected none, starttls or tls", smtp.security),
            );
        }
        Ok(())
    }

    /// Whether the CA runs: as configured, else with the development PKI or a CA key.
    pub fn ca_enabled(&self) -> bool {
        self.ca
            .enabled
            .unwrap_or(self.key.is_none() || self.ca.certificate.is_some())
    }

    /// The base URL in issued certificates' AIA and CRL distribution points.
    pub fn ca_public_url(&self) -> String {
        match &self.ca.public_url {
            Some(u) => u.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.listen),
        }
    }

    /// Loads `file` (if any), applies `overrides`, and validates.
    pub fn load(file: Option<&Path>, overrides: Overrides) -> Result<Config, ConfigError> {
        let (mut fc, base) = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                    path: path.into(),
                    source,
                })?;
                let fc: FileConfig =
                    toml::from_str(&text).map_err(|source| ConfigError::Parse {
                        path: path.into(),
                        source,
                    })?;
                (fc, path.parent().map(Path::to_path_buf).unwrap_or_default())
            }
            None => (FileConfig::default(), PathBuf::new()),
        };
        let from_file = file.is_some();
        let resolve = |p: PathBuf| if p.is_absolute() { p } else { base.join(p) };
        let listen_text = overrides
            .listen
            .or(fc.listen.take())
            .unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = listen_text.parse().map_err(|e| ConfigError::Value {
            key: "listen",
            detail: format!("{listen_text:?}: {e}"),
        })?;
        let data_dir = match overrides.data_dir {
            Some(d) => d,
            None => fc
                .data_dir
                .take()
                .map(&resolve)
                .unwrap_or_else(|| PathBuf::from(DEFAULT_DATA_DIR)),
        };
        let database_url = overrides
            .database_url
            .or(fc.database_url.take())
            .unwrap_or_else(|| format!("sqlite://{}", data_dir.join("archive.db").display()));
        if !(database_url.starts_with("sqlite:")
            || database_url.starts_with("postgres://")
            || database_url.starts_with("postgresql://"))
        {
            return Err(ConfigError::Value {
                key: "database_url",
                detail: "must start with sqlite://, postgres:// or postgresql://".into(),
            });
        }
        let key = match fc.key.take() {
            Some(k) => {
                if k.pkcs11.is_some() && k.rsa_padding == RsaPadding::Pss {
                    return Err(ConfigError::Value {
                        key: "key.rsa_padding",
                        detail: "PKCS#11 RSA keys sign with PKCS#1 v1.5 (CKM_SHA256_RSA_PKCS); \
                                 \"pss\" is for key files"
                            .into(),
                    });
                }
                if k.file.is_some() == k.pkcs11.is_some() {
                    return Err(ConfigError::Value {
                        key: "key",
                        detail: "give exactly one of key.file and [key.pkcs11]".into(),
                    });
                }
                Some(KeyConfig {
                    file: k.file.map(&resolve),
                    certificate: resolve(k.certificate),
                    chain: k.chain.map(&resolve),
                    rsa_padding: k.rsa_padding,
                    pkcs11: k.pkcs11.map(|p| p.resolved(resolve)),
                })
            }
            None => None,
        };
        // The development defaults allow an unsynchronised clock (and say so loudly);
        // a configuration file must opt in.
        let allow_unsynced_clock = fc.allow_unsynced_clock.unwrap_or(!from_file);
        let mut tls_client_ca = None;
        let mut tls_client_crl = None;
        let mut tls_reload_check = None;
        let mut admin = AdminAccess::default();
        let tls = match fc.tls.take() {
            None => None,
            Some(t) => {
                let addr = t.listen.parse().map_err(|e| ConfigError::Value {
                    key: "tls.listen",
                    detail: format!("{:?}: {e}", t.listen),
                })?;
                if t.client_ca.is_none()
                    && !(t.admin_subjects.is_empty() && t.admin_issuers.is_empty())
                {
                    return Err(ConfigError::Value {
                        key: "tls.admin_subjects",
                        detail: "an allowlist needs tls.client_ca to check certificates against"
                            .into(),
                    });
                }
                if t.client_ca.is_none() && t.client_crl.is_some() {
                    return Err(ConfigError::Value {
                        key: "tls.client_crl",
                        detail: "CRLs need tls.client_ca, the CAs whose certificates they revoke"
                            .into(),
                    });
                }
                tls_client_ca = t.client_ca.map(&resolve);
                tls_client_crl = t.client_crl.map(&resolve);
                let check = t.reload_check_secs.unwrap_or(DEFAULT_TLS_RELOAD_CHECK_SECS);
                if check > MAX_TLS_RELOAD_CHECK_SECS {
                    return Err(ConfigError::Value {
                        key: "tls.reload_check_secs",
                        detail: format!(
                            "{check} is over {MAX_TLS_RELOAD_CHECK_SECS} (a day); 0 checks only on SIGHUP"
                        ),
                    });
                }
                tls_reload_check = (check > 0).then(|| Duration::from_secs(check));
                admin = AdminAccess {
                    subjects: t.admin_subjects,
                    issuers: t.admin_issuers,
                    cas: Vec::new(),
                };
                Some((addr, resolve(t.certificate), resolve(t.key)))
            }
        };
        let server = fc.server.resolve()?;
        let mut ca = fc.ca;
        ca.key = ca.key.map(&resolve);
        ca.certificate = ca.certificate.map(&resolve);
        ca.enrolment_key = ca.enrolment_key.map(&resolve);
        ca.ocsp_key = ca.ocsp_key.map(&resolve);
        ca.ocsp_certificate = ca.ocsp_certificate.map(&resolve);
        ca.pkcs11 = ca.pkcs11.map(|p| p.resolved(resolve));
        if let Some(smtp) = ca.smtp.as_mut() {
            smtp.password_file = smtp.password_file.take().map(&resolve);
        }
        let cfg = Config {
            listen,
            data_dir,
            database_url,
            allow_unsynced_clock,
            key,
            policy: fc.policy,
            archive: fc.archive,
            tls,
            tls_client_ca,
            tls_client_crl,
            tls_reload_check,
            admin,
            server,
            from_file,
            ca,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn validate(&self) -> Result<(), ConfigError> {
        self.validate_ca()?;
        self.default_policy()?;
        self.accepted_policies()?;
        self.hash_algorithms()?;
        for (key, v) in [
            ("policy.accuracy_millis", self.policy.accuracy_millis),
            ("policy.accuracy_micros", self.policy.accuracy_micros),
        ] {
            if let Some(v) = v
                && !(1..=999).contains(&v)
            {
                return Err(ConfigError::Value {
                    key,
                    detail: format!("{v} is outside 1..=999 (RFC 3161 §2.4.2)"),
                });
            }
        }
        if !(100..=60_000).contains(&self.archive.commit_timeout_ms) {
            return Err(ConfigError::Value {
                key: "archive.commit_timeout_ms",
                detail: format!(
                    "{} is outside 100..=60000: requests must be refused in bounded time",
                    self.archive.commit_timeout_ms
                ),
            });
        }
        if self.archive.max_batch == 0 || self.archive.serial_block == 0 {
            return Err(ConfigError::Value {
                key: "archive",
                detail: "max_batch and serial_block must be positive".into(),
            });
        }
        Ok(())
    }

    /// The longest a stop after SIGTERM can take: the drain deadline, one second of slack for
    /// the connection tasks, the archive's bounded close (commit timeout, then one second for
    /// its connections), and one second for the runtime's blocking threads.
    pub fn stop_budget(&self) -> std::time::Duration {
        self.server.drain_timeout
            + std::time::Duration::from_millis(self.archive.commit_timeout_ms)
            + std::time::Duration::from_secs(3)
    }

    /// The default policy OID.
    pub fn default_policy(&self) -> Result<pki::oid::ObjectIdentifier, ConfigError> {
        parse_oid("policy.default", &self.policy.default)
    }

    /// The accepted policy OIDs.
    pub fn accepted_policies(&self) -> Result<Vec<pki::oid::ObjectIdentifier>, ConfigError> {
        self.policy
            .accepted
            .iter()
            .map(|p| parse_oid("policy.accepted", p))
            .collect()
    }

    /// The accepted imprint algorithms.
    pub fn hash_algorithms(&self) -> Result<Vec<HashAlg>, ConfigError> {
        self.policy
            .hash_algorithms
            .iter()
            .map(|h| match HashAlg::from_name(h) {
                Some(HashAlg::Sha1) => Err(ConfigError::Value {
                    key: "policy.hash_algorithms",
                    detail: "sha1 is only accepted through dangerous_allow_sha1 = true".into(),
                }),
                Some(alg) => Ok(alg),
                None => Err(ConfigError::Value {
                    key: "policy.hash_algorithms",
                    detail: format!("unknown algorithm {h:?}"),
                }),
            })
            .collect()
    }

    /// The accuracy to declare in tokens, if any part is set.
    pub fn accuracy(&self) -> Option<pki::tsp::Accuracy> {
        let p = &self.policy;
        if p.accuracy_seconds.is_none()
            && p.accuracy_millis.is_none()
            && p.accuracy_micros.is_none()
        {
            return None;
        }
        Some(pki::tsp::Accuracy {
            seconds: p.accuracy_seconds,
            millis: p.accuracy_millis.and_then(|m| i16::try_from(m).ok()),
            micros: p.accuracy_micros.and_then(|m| i16::try_from(m).ok()),
        })
    }

    /// The accuracy in microseconds, for the clock guard.
    pub fn accuracy_us(&self) -> Option<i64> {
        let p = &self.policy;
        self.accuracy().map(|_| {
            let s = i64::try_from(p.accuracy_seconds.unwrap_or(0)).unwrap_or(i64::MAX / 2_000_000);
            s.saturating_mul(1_000_000)
                + i64::from(p.accuracy_millis.unwrap_or(0)) * 1000
                + i64::from(p.accuracy_micros.unwrap_or(0))
        })
    }
}

fn parse_oid(key: &'static str, s: &str) -> Result<pki::oid::ObjectIdentifier, ConfigError> {
    pki::oid::ObjectIdentifier::new(s).map_err(|e| ConfigError::Value {
        key,
        detail: format!("{s:?} is not an OID: {e}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/tsa.example.toml")
    }

    #[test]
    fn the_example_configuration_loads_as_documented() {
        let cfg = Config::load(Some(&example()), Overrides::default()).expect("example config");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:3161");
        assert!(
            cfg.stop_budget() <= crate::limits::SUPERVISOR_STOP_TIMEOUT,
            "the example's stop must fit the shipped unit's TimeoutStopSec: {:?}",
            cfg.stop_budget()
        );
        assert!(!cfg.allow_unsynced_clock);
        assert_eq!(cfg.database_url, "sqlite:///var/lib/sigillum/archive.db");
        assert_eq!(
            cfg.hash_algorithms().expect("hashes"),
            vec![HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512]
        );
        assert_eq!(cfg.accuracy_us(), Some(1_000_000));
        assert!(cfg.key.is_some());
        // The example writes out every [server] default.
        assert_eq!(
            cfg.server,
            ServerConfig {
                max_connections_configured: true,
                ..ServerConfig::default()
            }
        );
    }

    #[test]
    fn server_limits_default_and_are_bounded() {
        let cfg = Config::load(None, Overrides::default()).expect("defaults");
        assert_eq!(cfg.server, ServerConfig::default());
        assert_eq!(cfg.server.request_timeout, Duration::from_secs(5));
        assert_eq!(cfg.server.idle_timeout, Duration::from_secs(30));
        assert_eq!(cfg.server.drain_timeout, Duration::from_secs(10));
        assert_eq!(cfg.server.max_connections, 1024);
        assert!(!cfg.server.max_connections_configured);
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(
            &path,
            "[server]\nrequest_timeout_ms = 800\nidle_timeout_ms = 1500\nmax_connections = 40\ndrain_timeout_ms = 0\n",
        )
        .expect("write");
        let s = Config::load(Some(&path), Overrides::default())
            .expect("short deadlines")
            .server;
        assert_eq!(s.request_timeout, Duration::from_millis(800));
        assert_eq!(s.idle_timeout, Duration::from_millis(1500));
        assert_eq!(s.drain_timeout, Duration::ZERO);
        assert_eq!(
            (s.max_connections, s.max_connections_configured),
            (40, true)
        );
    }

    /// `[server]` from a file holding `text`, or the error's text.
    fn server_section(text: &str) -> Result<ServerConfig, String> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("c.toml");
        std::fs::write(&path, format!("[server]\n{text}\n")).expect("write");
        Config::load(Some(&path), Overrides::default())
            .map(|c| c.server)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn trusted_proxies_are_read_and_checked() {
        let s =
            server_section("trusted_proxies = [\"10.0.0.0/8\", \"192.0.2.7\"]").expect("proxies");
        let forwarded = |peer: &str| {
            let mut h = axum::http::HeaderMap::new();
            h.insert("x-forwarded-for", "203.0.113.7".parse().expect("value"));
            s.trusted_proxies
                .client(peer.parse().expect("ip"), &h)
                .to_string()
        };
        assert_eq!(forwarded("10.1.2.3"), "203.0.113.7");
        assert_eq!(forwarded("192.0.2.7"), "203.0.113.7");
        assert_eq!(forwarded("192.0.2.8"), "192.0.2.8");
        let err = server_section("trusted_proxies = [\"10.0.0.1/8\"]").expect_err("host bits");
        assert!(
            err.contains("server.trusted_proxies") && err.contains("10.0.0.0/8"),
            "{err}"
        );
        // metrics_clients: absent is everyone, empty is no one, a range is its addresses.
        assert_eq!(s.metrics_clients, None);
        let none = server_section("metrics_clients = []")
            .expect("empty")
            .metrics_clients
            .expect("a list");
        assert!(none.is_empty() && !none.contains("127.0.0.1".parse().expect("ip")));
        let some = server_section("metrics_clients = [\"10.0.0.0/8\"]")
            .expect("range")
            .metrics_clients
            .expect("a list");
        assert!(some.contains("10.9.8.7".parse().expect("ip")));
        assert!(!some.contains("127.0.0.1".parse().expect("ip")));
        let err = server_section("metrics_clients = [\"prometheus\"]").expect_err("a name");
        assert!(err.contains("server.metrics_clients"), "{err}");
    }

    #[test]
    fn overrides_win_over_the_file() {
        let o = Overrides {
            listen: Some("127.0.0.1:9999".into()),
            data_dir: Some("/tmp/elsewhere".into()),
            database_url: Some("postgres://postgres@127.0.0.1/test".into()),
        };
        let cfg = Config::load(Some(&example()), o).expect("config");
        assert_eq!(cfg.listen.to_string(), "127.0.0.1:9999");
        assert_eq!(cfg.data_dir, PathBuf::from("/tmp/elsewhere"));
        assert_eq!(cfg.database_url, "postgres://postgres@127.0.0.1/test");
    }

    #[test]
    fn defaults_without_a_file_are_the_development_ones() {
        let cfg = Config::load(None, Overrides::default()).expect("defaults");
        assert!(cfg.allow_unsynced_clock && cfg.key.is_none() && !cfg.from_file);
        assert_eq!(cfg.database_url, "sqlite://./tsa-data/archive.db");
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cases = [
            ("listen = \"nowhere\"", "listen"),
            ("database_url = \"mysql://x\"", "database_url"),
            ("[policy]\ndefault = \"not-an-oid\"", "policy.default"),
            (
                "[policy]\ndefault = \"1.2.3\"\nhash_algorithms = [\"md5\"]",
                "policy.hash_algorithms",
            ),
            (
                "[policy]\ndefault = \"1.2.3\"\nhash_algorithms = [\"sha1\"]",
                "policy.hash_algorithms",
            ),
            (
                "[policy]\ndefault = \"1.2.3\"\naccuracy_millis = 1000",
                "policy.accuracy_millis",
            ),
            (
                "[archive]\ncommit_timeout_ms = 0",
                "archive.commit_timeout_ms",
            ),
            (
                "[server]\nrequest_timeout_ms = 0",
                "server.request_timeout_ms",
            ),
            (
                "[server]\nrequest_timeout_ms = 600000",
                "server.request_timeout_ms",
            ),
            ("[server]\nidle_timeout_ms = 99", "server.idle_timeout_ms"),
            (
                "database_url = \"postgres://tsa@db/tsa\"",
                "ca.enrolment_key",
            ),
            (
                "[server]\nrequests_per_second_per_client = 0",
                "server.requests_per_second_per_client",
            ),
            ("[ca]\nkey = \"/k\"", "ca.key"),
            (
                "[server]\ndrain_timeout_ms = 300001",
                "server.drain_timeout_ms",
            ),
            ("[server]\nmax_connections = 0", "server.max_connections"),
            ("[server]\nmax_connections = 15", "server.max_connections"),
            (
                "[server]\nmax_connections = 2000000",
                "server.max_connections",
            ),
        ];
        for (text, key) in cases {
            let path = dir.path().join("c.toml");
            std::fs::write(&path, text).expect("write");
            let err = Config::load(Some(&path), Overrides::default())
                .expect_err(text)
                .to_string();
            assert!(err.contains(key), "{text}: {err}");
        }
        std::fs::write(dir.path().join("c.toml"), "[server]\nread_timeout_ms = 1").expect("write");
        let err = Config::load(Some(&dir.path().join("c.toml")), Overrides::default())
            .expect_err("unknown [server] key");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
        std::fs::write(dir.path().join("c.toml"), "lisen = \"x\"").expect("write");
        let err =
            Config::load(Some(&dir.path().join("c.toml")), Overrides::default()).expect_err("typo");
        assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    }
}
