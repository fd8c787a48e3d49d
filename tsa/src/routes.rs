//! Every route of the authority, in one place.
//!
//! | route          | what                                                            |
//! |----------------|-----------------------------------------------------------------|
//! | `POST /`       | RFC 3161 over HTTP: application/timestamp-query in, -reply out   |
//! | `POST /tsa`    | the same, for clients configured with a path                    |
//! | `GET /certs`   | the TSA certificate chain as PEM                                |
//! | `GET /healthz` | 200 when tokens can be issued, 503 when not (clock, archive)    |
//! | `GET /livez`   | 200 while the process serves HTTP (liveness, not readiness)     |
//! | `GET /metrics` | Prometheus text format (`[server] metrics_clients` only, when set) |
//! | `POST /.well-known/cmp[/p/{profile}]` | CMP over HTTP (RFC 9811): ir, cr, p10cr, kur, rr, certConf, genm |
//! | `POST /enroll/start` | `{"email": ADDR}`: mail a one-time enrolment code to ADDR |
//! | `GET /directory/{email}` | the address's valid certificates (PEM, or DER by Accept) |
//! | `GET /ocsp/{base64}`, `POST /ocsp` | OCSP (RFC 6960) |
//! | `GET /crl`     | the CA's CRL, DER                                               |
//! | `GET /ca.cer`  | the CA certificate, DER                                         |
//! | `/admin/...`   | operators' routes behind allowlisted HTTPS client certificates ([`crate::admin`]) |

use crate::ca::http as ca;
use crate::state::App;
use axum::Router;
use axum::routing::{get, post};
use std::sync::Arc;

/// The router, without a socket, so tests drive it directly.
pub fn app(state: Arc<App>) -> Router {
    let limiter = state.rate_limit.clone();
    let proxies = Arc::clone(&state.trusted_proxies);
    let admin = Router::new()
        .route("/admin/enroll-code", post(crate::admin::enroll_code))
        .route("/admin/archive/list", get(crate::admin::archive_list))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            crate::admin::require_client,
        ));
    let router = Router::new()
        .merge(admin)
        .route("/", post(crate::timestamp::handle))
        .route("/tsa", post(crate::timestamp::handle))
        .route("/certs", get(crate::info::certs))
        .route("/healthz", get(crate::info::healthz))
        .route("/livez", get(crate::info::livez))
        .route("/metrics", get(crate::info::metrics))
        .route("/.well-known/cmp", post(ca::cmp))
        .route("/.well-known/cmp/p/{profile}", post(ca::cmp_profile))
        .route("/enroll/start", post(ca::enroll_start))
        .route("/directory/{email}", get(ca::directory))
        .route("/ocsp", post(ca::ocsp_post))
        .route("/ocsp/{*request}", get(ca::ocsp_get))
        .route("/crl", get(ca::crl))
        .route("/ca.cer", get(ca::ca_certificate));
    // Layers wrap what is above them: the request id is outermost, so refusals carry it too;
    // the forwarded client is known before the rate limit counts it.
    let router = match limiter {
        Some(l) => router.layer(axum::middleware::from_fn_with_state(
            l,
            crate::ratelimit::limit,
        )),
        None => router,
    };
    let router = if proxies.is_empty() {
        router
    } else {
        router.layer(axum::middleware::from_fn_with_state(
            proxies,
            crate::proxy::forwarded_client,
        ))
    };
    router
        .layer(axum::middleware::from_fn(crate::error::with_request_id))
        .with_state(state)
}
