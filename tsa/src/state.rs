//! The server's state, built once from a validated [`Config`].

use crate::archive::{Archive, ArchiveOptions};
use crate::clock::{ClockGuard, StatusSource};
use crate::config::Config;
use crate::keys::{self, Identity};
use crate::serial::SerialAllocator;
use anyhow::Context;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use pki::tsp::{RequestPolicy, TokenIssuer};
use std::num::NonZeroU64;
use std::sync::{Arc, OnceLock};

/// Everything a request handler needs. Shared as `Arc<App>`.
pub struct App {
    /// Builds and signs tokens with the TSA key.
    pub issuer: TokenIssuer,
    /// What requests are accepted (hash allowlist, policies).
    pub policy: RequestPolicy,
    /// The only source of genTime.
    pub clock: ClockGuard,
    /// Hands out serial numbers from blocks reserved in the archive.
    pub serials: SerialAllocator,
    /// Where every token is committed before its reply leaves.
    pub archive: Archive,
    /// SHA-256 of the TSA certificate, archived with every token (EN 319 421: the tokens of a
    /// compromised key can be listed).
    pub signer_cert_sha256: Vec<u8>,
    /// The key's usage period, Unix seconds, inclusive: the TSA certificate's validity narrowed
    /// by its privateKeyUsagePeriod (ETSI EN 319 421). No token outside it.
    pub key_usage: (u64, u64),
    /// The chain served at `GET /certs` (TSA certificate first, root last), PEM.
    pub certs_pem: String,
    /// Renders `GET /metrics`.
    pub metrics: PrometheusHandle,
    /// Threads for slow signers (RSA, HSMs); `None` when the key signs fast enough inline.
    pub signing: Option<crate::signing::SigningPool>,
    /// The email-certificate CA, unless `[ca] enabled = false`.
    pub ca: Option<crate::ca::CaService>,
    /// Per-client rate limits, when configured.
    pub rate_limit: Option<Arc<crate::ratelimit::RateLimiter>>,
    /// Proxies whose `X-Forwarded-For` names the client (empty: none).
    pub trusted_proxies: Arc<crate::proxy::TrustedProxies>,
    /// Who may read `GET /metrics` (`None`: everyone).
    pub metrics_clients: Option<crate::proxy::AddressRanges>,
    /// Who may use the `/admin/` routes.
    pub admin: crate::config::AdminAccess,
}

/// The process-wide Prometheus recorder (metrics' recorder is global; tests build many apps).
pub fn metrics_handle() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            if metrics::set_global_recorder(recorder).is_err() {
                tracing::warn!("a metrics recorder was already installed; /metrics will be empty");
            }
            handle
        })
        .clone()
}

impl App {
    /// Builds the state: development PKI on first run without a key configured, identity
    /// checks, archive connection, clock guard seeded from the archive.
    pub async fn build(cfg: &Config, clock_source: StatusSource) -> anyhow::Result<Arc<App>> {
        if cfg.key.is_none() {
            let outcome = keys::init_dev_pki(&cfg.data_dir, Default::default())?;
            if outcome.created {
                tracing::warn!(dir = %cfg.data_dir.display(), "created a DEVELOPMENT PKI (not for production)");
            }
            tracing::warn!(
                root = %outcome.root_cert.display(),
                "running with the development PKI; verifiers trust it with --trust {}",
                outcome.root_cert.display()
            );
        }
        keys::create_data_dir(&cfg.data_dir)?;
        let Identity {
            signer,
            cert,
            chain,
        } = keys::load_identity(cfg)?;
        let key_usage = pki::cert::key_usage_period(&cert.cert);
        let signer_cert_sha256 = pki::HashAlg::Sha256.digest(&cert.der);
        let mut all = vec![cert.der.clone()];
        all.extend(chain.iter().cloned());
        let certs_pem = pki::cert::to_pem(&all)?;
        let issuer = TokenIssuer::new(
            signer,
            cert,
            chain,
            cfg.accuracy(),
            cfg.policy.include_tsa_name,
        )?;
        let issuer = if cfg.policy.qualified {
            tracing::info!("tokens are marked qualified (qcStatements esi4-qtstStatement-1)");
            issuer.qualified()?
        } else {
            issuer
        };
        let mut policy = RequestPolicy::new(cfg.default_policy()?);
        policy.hash_algorithms = cfg.hash_algorithms()?;
        policy.accepted_policies = cfg.accepted_policies()?;
        if cfg.policy.dangerous_allow_sha1 {
            tracing::warn!("SHA-1 imprints are accepted (dangerous_allow_sha1 = true)");
            policy = policy.dangerous_allow_sha1();
        }
        let signing = if issuer.signer().is_slow() {
            let threads =
                std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
            Some(
                crate::signing::SigningPool::new(threads)
                    .context("cannot start the signing threads")?,
            )
        } else {
            None
        };
        let archive = Archive::connect(
            &cfg.database_url,
            ArchiveOptions {
                max_batch: cfg.archive.max_batch,
                max_connections: cfg.archive.max_connections,
                commit_timeout: std::time::Duration::from_millis(cfg.archive.commit_timeout_ms),
                signing: signing.as_ref().map(crate::signing::SigningPool::running),
                ..Default::default()
            },
        )
        .await
        .with_context(|| format!("cannot open the archive at {}", redact(&cfg.database_url)))?;
        let last = archive
            .last_gen_time_ms()
            .await
            .context("cannot read the archive's last genTime")?;
        if cfg.allow_unsynced_clock {
            tracing::warn!(
                "allow_unsynced_clock = true: tokens are issued even if the clock is not synchronised"
            );
        }
        let clock = ClockGuard::new(
            last,
            cfg.allow_unsynced_clock,
            cfg.accuracy_us(),
            clock_source,
        );
        let block =
            NonZeroU64::new(cfg.archive.serial_block).context("serial_block must be positive")?;
        let serials = SerialAllocator::with_block_size(archive.clone(), block);
        let ca = if cfg.ca_enabled() {
            Some(crate::ca::CaService::load(cfg).context("cannot load the CA ([ca])")?)
        } else {
            None
        };
        let app = Arc::new(App {
            issuer,
            policy,
            clock,
            serials,
            archive,
            key_usage,
            signer_cert_sha256,
            certs_pem,
            metrics: metrics_handle(),
            signing,
            ca,
            rate_limit: cfg
                .server
                .requests_per_second_per_client
                .map(|n| Arc::new(crate::ratelimit::RateLimiter::new(n))),
            trusted_proxies: Arc::new(cfg.server.trusted_proxies.clone()),
            metrics_clients: cfg.server.metrics_clients.clone(),
            admin: {
                let mut admin = cfg.admin.clone();
                if let Some(path) = &cfg.tls_client_ca {
                    let bytes = std::fs::read(path)
                        .with_context(|| format!("cannot read {}", path.display()))?;
                    admin.cas = pki::cert::load_certificates(&bytes)
                        .with_context(|| format!("no certificate in {}", path.display()))?;
                }
                admin
            },
        });
        // For alerts (once the recorder exists): when the key stops signing (the certificate's
        // validity narrowed by privateKeyUsagePeriod), as Unix seconds.
        metrics::gauge!("tsa_signing_key_usage_end_seconds").set(app.key_usage.1 as f64);
        if app.ca.is_some() {
            let weak = Arc::downgrade(&app);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(std::time::Duration::from_secs(60));
                loop {
                    tick.tick().await;
                    let Some(app) = weak.upgrade() else { break };
                    if let Some(ca) = &app.ca
                        && let Err(e) = ca.housekeeping(&app.archive).await
                    {
                        tracing::warn!(error = %e, "CA housekeeping failed; retrying in a minute");
                    }
                }
            });
        }
        let weak = Arc::downgrade(&app);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
            loop {
                tick.tick().await;
                let Some(app) = weak.upgrade() else { break };
                app.clock.refresh();
                metrics::gauge!("tsa_clock_synchronised").set(if app.clock.synchronised() {
                    1.0
                } else {
                    0.0
                });
            }
        });
        Ok(app)
    }
}

/// How long before the end of the key's usage period `/healthz` warns.
pub const KEY_EXPIRY_WARNING_SECS: u64 = 30 * 86_400;

/// The warning `/healthz` gives at `now` for a key usable until `until`, if any.
pub fn key_expiry_warning(now: u64, until: u64) -> Option<String> {
    if now > until {
        Some("the signing key's usage period has ended: no tokens are issued".into())
    } else if until - now <= KEY_EXPIRY_WARNING_SECS {
        Some(format!(
            "the signing key's usage period ends in {} days: renew the TSA certificate",
            (until - now).div_ceil(86_400)
        ))
    } else {
        None
    }
}

/// A database URL without its password, for logs.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(s), Some(at)) if at > s => {
            let creds = &url[s + 3..at];
            match creds.find(':') {
                Some(c) => format!("{}{}:***{}", &url[..s + 3], &creds[..c], &url[at..]),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::{KEY_EXPIRY_WARNING_SECS, key_expiry_warning};

    #[test]
    fn healthz_warns_thirty_days_before_the_key_usage_period_ends() {
        let until = 1_900_000_000;
        assert_eq!(
            key_expiry_warning(until - KEY_EXPIRY_WARNING_SECS - 1, until),
            None
        );
        let w = key_expiry_warning(until - KEY_EXPIRY_WARNING_SECS, until).unwrap_or_default();
        assert!(w.contains("ends in 30 days"), "{w}");
        let w = key_expiry_warning(until - 3600, until).unwrap_or_default();
        assert!(w.contains("ends in 1 days"), "{w}");
        let w = key_expiry_warning(until + 1, until).unwrap_or_default();
        assert!(w.contains("has ended"), "{w}");
    }
}
