//! The `/admin/` routes, for operators' systems rather than the public: they need an HTTPS
//! client certificate that chains to `[tls] client_ca` (the handshake checks that) and whose
//! subject or issuer is in `[tls] admin_subjects` / `admin_issuers` (checked here). Plain HTTP,
//! no certificate, or one not listed: 403, with the reason and a request id.
//!
//! | route | what |
//! |---|---|
//! | `POST /admin/enroll-code` | `{"email": ADDR}` → `{"reference", "secret", "expires"}`: `tsa enroll-code` for a branch system |
//! | `GET /admin/archive/list?signer_cert_sha256=HEX` | `serial genTime` lines of the tokens that certificate signed |

use crate::archive::ArchiveError;
use crate::error::AppError;
use crate::state::App;
use axum::body::Bytes;
use axum::extract::{Extension, Query, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures_util::{StreamExt, TryStreamExt};
use std::sync::Arc;

/// The client certificate (DER) the TLS handshake verified, put on each request of the
/// connection by the accept loop.
#[derive(Clone, Debug)]
pub struct ClientCert(pub Arc<Vec<u8>>);

/// Middleware on `/admin/`: an allowlisted client certificate, or 403.
pub async fn require_client(
    State(app): State<Arc<App>>,
    cert: Option<Extension<ClientCert>>,
    req: Request,
    next: Next,
) -> Response {
    let Some(Extension(ClientCert(der))) = cert else {
        return AppError::Forbidden(
            "the /admin/ routes need an HTTPS client certificate ([tls] client_ca)".into(),
        )
        .into_response();
    };
    let subject = name_of(&der);
    // Issued directly by a client_ca certificate: the handshake accepted any path up to one,
    // and a sub-CA under it could mint an allowlisted name.
    let Some(issuer) = app
        .admin
        .cas
        .iter()
        .find(|ca| pki::cert::issued_by(&der, ca))
        .map(|ca| name_of(ca))
    else {
        return AppError::Forbidden(format!(
            "the client certificate {subject:?} is not issued directly by a tls.client_ca \
             certificate"
        ))
        .into_response();
    };
    let allowed = app.admin.subjects.contains(&subject) || app.admin.issuers.contains(&issuer);
    if !allowed {
        tracing::warn!(%subject, %issuer, "admin route refused: client certificate not allowlisted");
        return AppError::Forbidden(format!(
            "the client certificate {subject:?} (issuer {issuer:?}) is not in tls.admin_subjects \
             or tls.admin_issuers"
        ))
        .into_response();
    }
    tracing::info!(%subject, path = %req.uri().path(), "admin request");
    next.run(req).await
}

/// A certificate's subject as the allowlists write it (`CN=...,O=...`).
fn name_of(cert: &[u8]) -> String {
    pki::cert::subject_der(cert)
        .map(|n| pki::cert::name_string(&n))
        .unwrap_or_default()
}

/// The body of `POST /admin/enroll-code`.
#[derive(serde::Deserialize)]
pub struct EnrollCode {
    email: String,
}

/// `POST /admin/enroll-code`: a one-time code for an address, returned to the operator's
/// system (the same limits as mailed codes; the client recorded is the certificate's subject).
pub async fn enroll_code(
    State(app): State<Arc<App>>,
    Extension(ClientCert(der)): Extension<ClientCert>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    // JSON only: a browser holding an admin certificate cannot be made to post a form here.
    let json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
    if !json {
        return Err(AppError::UnsupportedMediaType(
            "Content-Type must be application/json".into(),
        ));
    }
    let ca = app
        .ca
        .as_ref()
        .ok_or_else(|| AppError::NotFound("this server runs no CA".into()))?;
    let req: EnrollCode = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("expected {{\"email\": ADDRESS}}: {e}")))?;
    let email = crate::ca::normalise_email(&req.email)
        .ok_or_else(|| AppError::BadRequest(format!("{:?} is not an email address", req.email)))?;
    let client = format!("admin {}", name_of(&der));
    let (reference, secret, expires_at) = ca.new_code(&app.archive, &email, &client).await??;
    tracing::info!(%email, %client, %reference, "enrolment code issued to an operator");
    let body = serde_json::json!({
        "email": email,
        "reference": reference,
        "secret": secret.as_str(),
        "expires_at": expires_at,
    });
    Ok((
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

/// `?signer_cert_sha256=HEX` on the archive listing.
#[derive(serde::Deserialize)]
pub struct ListQuery {
    signer_cert_sha256: String,
}

/// `GET /admin/archive/list?signer_cert_sha256=HEX`: the tokens a certificate signed.
pub async fn archive_list(
    State(app): State<Arc<App>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, AppError> {
    let hash = hex::decode(&q.signer_cert_sha256)
        .ok()
        .filter(|h| h.len() == 32)
        .ok_or_else(|| {
            AppError::BadRequest("signer_cert_sha256 must be 64 hex digits (SHA-256)".into())
        })?;
    let filter = crate::archive::TokenFilter {
        signer_cert_sha256: Some(hash),
        ..Default::default()
    };
    // The first page decides the status (an archive error is a 503 like anywhere else); the
    // rest stream a page at a time as the client reads, so a certificate that signed millions
    // of tokens costs one page of memory. A failure after the first page ends the body short
    // (the chunked encoding never completes) and is logged.
    let mut pages = Box::pin(app.archive.pages(filter));
    let first = pages.try_next().await?;
    let lines = futures_util::stream::iter(first.map(Ok))
        .chain(pages)
        .map_ok(|page| {
            Bytes::from(
                page.iter()
                    .map(crate::export::list_line)
                    .collect::<String>(),
            )
        })
        .inspect_err(|error: &ArchiveError| tracing::error!(%error, "archive listing cut short"));
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        axum::body::Body::from_stream(lines),
    )
        .into_response())
}
