//! The one place where the CA's HTTP routes turn a failure into a response: a status code, a
//! JSON body `{"error": ..., "request_id": ...}`, an `x-request-id` header, and a log line
//! with the same id. (RFC 3161, CMP and OCSP answer in their own DER formats; their refusals
//! are protocol messages, not HTTP errors.)

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

tokio::task_local! {
    /// The id of the request being served (set by [`with_request_id`]).
    static REQUEST_ID: String;
}

/// The current request's id, or a new one outside a request.
pub fn current_request_id() -> String {
    REQUEST_ID
        .try_with(Clone::clone)
        .unwrap_or_else(|_| request_id())
}

/// Middleware: every request gets an id (the client's `x-request-id` when it is 1 to 64
/// characters of `[A-Za-z0-9._-]`, else a new one), every log line of the request carries it
/// (a `request` span), and every response returns it in `x-request-id`.
pub async fn with_request_id(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let given = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            (1..=64).contains(&v.len())
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
        .map(str::to_owned);
    let id = given.unwrap_or_else(request_id);
    let span = tracing::info_span!("request", request_id = %id, method = %req.method(), path = %req.uri().path());
    let mut resp = REQUEST_ID
        .scope(
            id.clone(),
            tracing::Instrument::instrument(next.run(req), span),
        )
        .await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// A request id: 16 hex digits, returned to the client and logged. A random 64-bit base drawn
/// once per process plus a counter: unique within the process and, with overwhelming
/// likelihood, across nodes and restarts, without a getrandom(2) call per request.
pub fn request_id() -> String {
    static BASE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let base = *BASE.get_or_init(|| {
        pki::ca::enrolment::random(8)
            .ok()
            .and_then(|b| <[u8; 8]>::try_from(b.as_slice()).ok())
            .map_or_else(
                // Without randomness the time still separates processes well enough for logs.
                || {
                    std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
                },
                u64::from_be_bytes,
            )
    });
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{:016x}", base.wrapping_add(n))
}

/// A failed HTTP request.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The request is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The body is not of the media type the route takes (415).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// Not for this client (403).
    #[error("{0}")]
    Forbidden(String),
    /// Nothing there (404).
    #[error("{0}")]
    NotFound(String),
    /// A rate limit (429) with the seconds to wait.
    #[error("{what}; try again in {retry_after} s")]
    TooMany {
        /// What was limited.
        what: String,
        /// Seconds.
        retry_after: i64,
    },
    /// A feature this server does not offer as configured (503).
    #[error("{0}")]
    Unavailable(String),
    /// Our fault (500): the detail is logged, the client gets the request id.
    #[error("internal error")]
    Internal(String),
}

impl AppError {
    fn status(&self) -> StatusCode {
        match self {
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Forbidden(_) => StatusCode::FORBIDDEN,
            AppError::NotFound(_) => StatusCode::NOT_FOUND,
            AppError::TooMany { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        let id = current_request_id();
        let status = self.status();
        match &self {
            AppError::Internal(detail) => {
                tracing::error!(request_id = %id, %detail, "request failed")
            }
            other => {
                tracing::info!(request_id = %id, status = status.as_u16(), error = %other, "request refused")
            }
        }
        let body = serde_json::json!({ "error": self.to_string(), "request_id": id });
        let mut resp = (
            status,
            [(header::CONTENT_TYPE, "application/json")],
            format!("{body}\n"),
        )
            .into_response();
        if let Ok(v) = HeaderValue::from_str(&id) {
            resp.headers_mut().insert("x-request-id", v);
        }
        if let AppError::TooMany { retry_after, .. } = self
            && let Ok(v) = HeaderValue::from_str(&retry_after.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

/// An address or client over its enrolment-code limit: 429 with Retry-After, whichever route
/// asked (the public `/enroll/start`, the administrators' `/admin/enroll-code`).
impl From<crate::archive::CodeProblem> for AppError {
    fn from(limited: crate::archive::CodeProblem) -> Self {
        AppError::TooMany {
            what: format!("too many enrolment codes for this {}", limited.limit),
            retry_after: limited.retry_after,
        }
    }
}

impl From<crate::archive::ArchiveError> for AppError {
    fn from(e: crate::archive::ArchiveError) -> Self {
        AppError::Internal(format!("{e:#}"))
    }
}
