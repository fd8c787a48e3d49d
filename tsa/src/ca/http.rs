//! The CA's HTTP routes: CMP over HTTP (RFC 9811), enrolment codes, the directory, OCSP
//! (RFC 6960 Appendix A, GET and POST), the CRL and the CA certificate.

use super::{CaService, normalise_email};
use crate::error::AppError;
use crate::state::App;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use std::sync::Arc;

/// The client's address, put on each request by the accept loop (absent when a test drives
/// the router directly): the TCP peer, or behind a trusted proxy the client it forwarded for
/// ([`crate::proxy`]).
#[derive(Clone, Copy, Debug)]
pub struct ClientAddr(pub std::net::IpAddr);

const PKIXCMP: &str = "application/pkixcmp";

fn ca(app: &App) -> Result<&CaService, AppError> {
    app.ca
        .as_ref()
        .ok_or_else(|| AppError::NotFound("this server runs no CA ([ca] enabled = false)".into()))
}

fn der(content_type: &'static str, body: Vec<u8>) -> Response {
    ([(header::CONTENT_TYPE, content_type)], body).into_response()
}

/// `POST /.well-known/cmp`.
pub async fn cmp(
    State(app): State<Arc<App>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    cmp_with(&app, None, &headers, &body).await
}

/// `POST /.well-known/cmp/p/{profile}`.
pub async fn cmp_profile(
    State(app): State<Arc<App>>,
    Path(profile): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, AppError> {
    cmp_with(&app, Some(&profile), &headers, &body).await
}

async fn cmp_with(
    app: &App,
    profile: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<Response, AppError> {
    let ca = ca(app)?;
    let ct = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let media_type = ct.split(';').next().unwrap_or("").trim();
    if !media_type.eq_ignore_ascii_case(PKIXCMP) {
        return Err(AppError::UnsupportedMediaType(format!(
            "Content-Type must be {PKIXCMP} (RFC 9811), not {ct:?}"
        )));
    }
    // RFC 9811 §3.4: every PKIMessage, errors included, travels with HTTP 200.
    Ok(der(PKIXCMP, ca.cmp(&app.archive, profile, body).await))
}

/// The body of `POST /enroll/start`.
#[derive(serde::Deserialize)]
pub struct EnrolStart {
    /// The address to prove.
    email: String,
}

/// `POST /enroll/start` `{"email": ADDR}`: mails a one-time code to ADDR (202), within the
/// per-address and per-client limits (429 with Retry-After).
pub async fn enroll_start(
    State(app): State<Arc<App>>,
    client: Option<Extension<ClientAddr>>,
    body: Bytes,
) -> Result<Response, AppError> {
    let ca = ca(&app)?;
    let req: EnrolStart = serde_json::from_slice(&body)
        .map_err(|e| AppError::BadRequest(format!("expected {{\"email\": ADDRESS}}: {e}")))?;
    let email = normalise_email(&req.email)
        .ok_or_else(|| AppError::BadRequest(format!("{:?} is not an email address", req.email)))?;
    let Some(mailer) = ca.mailer() else {
        return Err(AppError::Unavailable(
            "this CA sends no mail ([ca.smtp] is not configured); ask the operator for a code \
             (tsa enroll-code)"
                .into(),
        ));
    };
    let client = client.map_or_else(
        || "local".to_owned(),
        |Extension(ClientAddr(a))| a.to_string(),
    );
    let (reference, secret, expires_at) = ca.new_code(&app.archive, &email, &client).await??;
    mailer
        .send_code(&email, &reference, &secret, expires_at, &ca.base_url)
        .await
        .map_err(|e| AppError::Internal(format!("mailing the code to {email}: {e:#}")))?;
    tracing::info!(%email, %client, %reference, "enrolment code mailed");
    let body = serde_json::json!({
        "status": "sent",
        "email": email,
        "expires_in": expires_at - super::now(),
    });
    Ok((
        StatusCode::ACCEPTED,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{body}\n"),
    )
        .into_response())
}

/// `?usage=signing|encryption` on the directory.
#[derive(serde::Deserialize)]
pub struct DirectoryQuery {
    usage: Option<String>,
}

/// `GET /directory/{email}`: the address's valid certificates, newest first: PEM, or the
/// newest as DER with `Accept: application/pkix-cert`; 404 when there are none.
pub async fn directory(
    State(app): State<Arc<App>>,
    Path(email): Path<String>,
    Query(q): Query<DirectoryQuery>,
    headers: HeaderMap,
) -> Result<Response, AppError> {
    // The directory is the CA's: a server without one has none.
    ca(&app)?;
    let email = normalise_email(&email)
        .ok_or_else(|| AppError::BadRequest(format!("{email:?} is not an email address")))?;
    if let Some(u) = &q.usage
        && u != "signing"
        && u != "encryption"
    {
        return Err(AppError::BadRequest(format!(
            "usage {u:?}: expected signing or encryption"
        )));
    }
    let certs: Vec<Vec<u8>> = app
        .archive
        .directory(&email, super::now())
        .await?
        .into_iter()
        .filter(|c| q.usage.as_ref().is_none_or(|u| *u == c.usage))
        .map(|c| c.cert)
        .collect();
    if certs.is_empty() {
        return Err(AppError::NotFound(format!(
            "no valid certificate for {email}"
        )));
    }
    let wants_der = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("application/pkix-cert"));
    if wants_der {
        return Ok(der("application/pkix-cert", certs[0].clone()));
    }
    let pem = pki::cert::to_pem(&certs).map_err(|e| AppError::Internal(e.to_string()))?;
    Ok((
        [(header::CONTENT_TYPE, "application/pem-certificate-chain")],
        pem,
    )
        .into_response())
}

/// `POST /ocsp` (application/ocsp-request).
pub async fn ocsp_post(State(app): State<Arc<App>>, body: Bytes) -> Result<Response, AppError> {
    let ca = ca(&app)?;
    if body.len() > pki::ca::MAX_OCSP_REQUEST {
        return Err(AppError::BadRequest("OCSP request too large".into()));
    }
    Ok(der(
        "application/ocsp-response",
        ca.ocsp(&app.archive, &body).await,
    ))
}

/// `GET /ocsp/{base64}` (RFC 6960 Appendix A.1: the DER request, base64, URL-encoded).
pub async fn ocsp_get(
    State(app): State<Arc<App>>,
    Path(encoded): Path<String>,
) -> Result<Response, AppError> {
    let ca = ca(&app)?;
    if encoded.len() > pki::ca::MAX_OCSP_REQUEST * 2 {
        return Err(AppError::BadRequest("OCSP request too large".into()));
    }
    let request = get_request_der(&encoded);
    Ok(der(
        "application/ocsp-response",
        ca.ocsp(&app.archive, &request).await,
    ))
}

/// The DER of a GET request's path part (RFC 6960 Appendix A.1: base64, URL-decoded by the
/// router). Taken as it is: base64 may begin or end with `/` (the alphabet's 63), so no slash
/// is trimmed; what does not decode is an empty request (malformedRequest).
fn get_request_der(encoded: &str) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .unwrap_or_default()
}

/// `GET /crl`: the current CRL, DER.
pub async fn crl(State(app): State<Arc<App>>) -> Result<Response, AppError> {
    let ca = ca(&app)?;
    Ok(der("application/pkix-crl", ca.crl(&app.archive).await?))
}

/// `GET /ca.cer`: the CA certificate, DER (the AIA caIssuers URL).
pub async fn ca_certificate(State(app): State<Arc<App>>) -> Result<Response, AppError> {
    let ca = ca(&app)?;
    Ok(der("application/pkix-cert", ca.certificate().to_vec()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_get_request_whose_base64_ends_in_a_slash_keeps_it() {
        // 0x30 0x0f 0xff: base64 "MA//" ends in the alphabet's 63, twice.
        assert_eq!(super::get_request_der("MA//"), vec![0x30, 0x0f, 0xff]);
        assert!(super::get_request_der("not base64!").is_empty());
    }
}
