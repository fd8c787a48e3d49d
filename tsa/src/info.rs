//! The informational routes: certificates, health, metrics.

use crate::state::App;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use std::sync::Arc;

/// `GET /certs`: the chain, TSA certificate first.
pub async fn certs(State(app): State<Arc<App>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        app.certs_pem.clone(),
    )
}

/// `GET /healthz`: whether tokens can be issued now.
pub async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let clock_ok = app.clock.can_issue_now();
    // MAX over the indexed genTime column: cheap at any archive size.
    let archive_ok = app.archive.last_gen_time_ms().await.is_ok();
    let body = format!(
        "{{\"status\":\"{}\",\"clock_synchronised\":{},\"clock_usable\":{},\"archive\":\"{}\",\"archive_reachable\":{}}}\n",
        if clock_ok && archive_ok {
            "ok"
        } else {
            "unavailable"
        },
        app.clock.synchronised(),
        clock_ok,
        app.archive.backend(),
        archive_ok
    );
    let status = if clock_ok && archive_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// `GET /metrics`: Prometheus text format.
pub async fn metrics(State(app): State<Arc<App>>) -> impl IntoResponse {
    app.metrics.run_upkeep();
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    )
}
