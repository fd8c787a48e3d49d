//! The informational routes: certificates, health, metrics.

use crate::ca::http::ClientAddr;
use crate::error::AppError;
use crate::state::App;
use axum::extract::{Extension, State};
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

/// `GET /healthz`: whether tokens can be issued now: the clock is usable, the archive's last
/// write committed, and it answers a read (within two seconds: a health check must not hang),
/// and the key is within its usage period; `warnings` says when that period ends within 30
/// days.
pub async fn healthz(State(app): State<Arc<App>>) -> impl IntoResponse {
    let clock_ok = app.clock.can_issue_now();
    // MAX over the indexed genTime column: cheap at any archive size.
    let read = tokio::time::timeout(
        std::time::Duration::from_secs(2),
        app.archive.last_gen_time_ms(),
    )
    .await;
    let reachable = matches!(read, Ok(Ok(_)));
    let health = app.archive.health();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (from, until) = app.key_usage;
    let key_ok = (from..=until).contains(&now);
    let warnings: Vec<String> = crate::state::key_expiry_warning(now, until)
        .into_iter()
        .collect();
    let ok = clock_ok && reachable && health.writable && key_ok;
    let body = serde_json::json!({
        "status": if ok { "ok" } else { "unavailable" },
        "clock_synchronised": app.clock.synchronised(),
        "clock_usable": clock_ok,
        "archive": app.archive.backend(),
        "archive_reachable": reachable,
        "archive_writable": health.writable,
        "archive_problem": health.problem,
        "key_usable_until": time::OffsetDateTime::from_unix_timestamp(i64::try_from(until).unwrap_or(i64::MAX))
            .ok()
            .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
        "warnings": warnings,
    });
    let body = format!("{body}\n");
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}

/// `GET /livez`: 200 while the process serves HTTP at all. For a liveness probe: a node whose
/// database or clock is down is not ready (`/healthz` 503) but restarting it fixes neither,
/// and it resumes by itself when they return.
pub async fn livez() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "text/plain")], "alive\n")
}

/// `GET /metrics`: Prometheus text format; with `[server] metrics_clients`, to those clients
/// only (403 for the others).
pub async fn metrics(
    State(app): State<Arc<App>>,
    client: Option<Extension<ClientAddr>>,
) -> Result<impl IntoResponse, AppError> {
    if let Some(allowed) = &app.metrics_clients {
        let client = client.map(|Extension(ClientAddr(ip))| ip);
        if !client.is_some_and(|ip| allowed.contains(ip)) {
            let who = client.map(|ip| format!(", not {ip}")).unwrap_or_default();
            return Err(AppError::Forbidden(format!(
                "GET /metrics answers the clients in [server] metrics_clients only{who}"
            )));
        }
    }
    app.metrics.run_upkeep();
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(),
    ))
}
