//! `POST /` and `POST /tsa`: RFC 3161 over HTTP.
//!
//! Every answer is a DER TimeStampResp with `application/timestamp-reply`. HTTP status: 200
//! for granted tokens and for rejections of the request's content (the failInfo says why, which
//! is how RFC 3161 clients expect to learn it); HTTP-level refusals, still with a DER rejection
//! body (badRequest): 415 for a wrong media type, 413 for a body over 8 KiB (refused unread when
//! its Content-Length says so), 400 for a body that ends before its Content-Length (the client
//! half-closed or the connection broke), 408 for a body still incomplete at the whole-request
//! deadline (`server.request_timeout_ms`; written if the socket still takes it, else the
//! connection is just closed); 503 with Retry-After for timeNotAvailable, so load balancers try
//! another node, for systemFailure while the archive cannot write (disk full, I/O errors,
//! database down: the request may succeed on another node or in a moment), and (from
//! [`crate::server`], before any request is read) for a connection over the connection cap,
//! with systemFailure; 500 with systemFailure only for our other faults. Never a panic and
//! never a 500 for a client's mistake. A token is granted only once the archive has confirmed
//! its commit; every wait for the archive is bounded by its commit timeout.

use crate::archive::{ArchiveError, TokenRecord};
use crate::limits::{MAX_NONCE_BYTES, MAX_REQUEST_BYTES, QUERY_MEDIA_TYPE, REPLY_MEDIA_TYPE};
use crate::state::App;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use pki::asn1::FailureInfo;
use pki::gentime::GenTime;
use pki::tsp::{CheckedRequest, Rejection, check_request, granted_response, rejection_response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

static REQUEST_ID: AtomicU64 = AtomicU64::new(1);

/// Handles one timestamp request.
pub async fn handle(State(app): State<Arc<App>>, headers: HeaderMap, body: Body) -> Response {
    let started = Instant::now();
    let id = REQUEST_ID.fetch_add(1, Ordering::Relaxed);
    let response = match issue(&app, &headers, body).await {
        Ok(reply) => {
            metrics::counter!("tsa_requests_total", "outcome" => "granted").increment(1);
            reply_with(StatusCode::OK, reply)
        }
        Err((status, rejection)) => {
            if status == StatusCode::SERVICE_UNAVAILABLE {
                // The clock guard logs each state change once; per request this is detail.
                tracing::warn!(request = id, fail_info = %rejection.fail_info, "request refused: {}", rejection.reason);
            } else if status.is_server_error() {
                tracing::error!(request = id, fail_info = %rejection.fail_info, "request failed: {}", rejection.reason);
            } else {
                tracing::info!(request = id, fail_info = %rejection.fail_info, "request rejected: {}", rejection.reason);
            }
            metrics::counter!("tsa_requests_total", "outcome" => "rejected", "fail_info" => rejection.fail_info.name())
                .increment(1);
            let mut resp = match rejection_response(rejection.fail_info, &public_text(&rejection)) {
                Ok(der) => reply_with(status, der),
                Err(e) => {
                    tracing::error!(request = id, error = %e, "cannot encode a rejection");
                    StatusCode::INTERNAL_SERVER_ERROR.into_response()
                }
            };
            if status == StatusCode::SERVICE_UNAVAILABLE {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, header::HeaderValue::from_static("1"));
            }
            resp
        }
    };
    metrics::histogram!("tsa_request_duration_seconds").record(started.elapsed().as_secs_f64());
    response
}

fn reply_with(status: StatusCode, der: Vec<u8>) -> Response {
    (status, [(header::CONTENT_TYPE, REPLY_MEDIA_TYPE)], der).into_response()
}

/// The statusString a client sees: the reason for its own mistakes, a fixed text for ours
/// (the detail stays in our log).
fn public_text(r: &Rejection) -> String {
    match r.fail_info {
        FailureInfo::SystemFailure => "internal error; the request was not timestamped".into(),
        _ => r.reason.clone(),
    }
}

type Refusal = (StatusCode, Rejection);

fn refuse(status: StatusCode, fail_info: FailureInfo, reason: impl Into<String>) -> Refusal {
    (status, Rejection::new(fail_info, reason))
}

/// Builds and signs a token: inline for fast signers, on the signing pool for slow ones
/// (see [`crate::signing`]).
async fn sign_token(
    app: &Arc<App>,
    req: &CheckedRequest,
    serial: u64,
    gen_time: GenTime,
) -> Result<Vec<u8>, pki::Error> {
    let Some(pool) = &app.signing else {
        return app.issuer.issue(req, &serial.to_be_bytes(), gen_time);
    };
    let task = Arc::clone(app);
    let req = req.clone();
    pool.run(move || task.issuer.issue(&req, &serial.to_be_bytes(), gen_time))
        .await
        .unwrap_or_else(|| Err(pki::Error::Signing("the signing pool stopped".into())))
}

/// Reads the request body, at most [`MAX_REQUEST_BYTES`]: 413 for a larger one (refused
/// unread when its Content-Length says so), 408 when it is not complete within the request
/// deadline ([`crate::server::RequestTimedOut`]), 400 when the connection ends before the
/// body does (fewer bytes than the Content-Length, a broken chunked encoding).
async fn read_body(headers: &HeaderMap, mut body: Body) -> Result<Vec<u8>, Refusal> {
    let too_large = || {
        refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            FailureInfo::BadRequest,
            format!("request body over {MAX_REQUEST_BYTES} bytes"),
        )
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_REQUEST_BYTES as u64) {
        return Err(too_large());
    }
    let capacity = declared
        .and_then(|n| usize::try_from(n).ok())
        .unwrap_or(1024);
    let mut bytes = Vec::with_capacity(capacity);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(body_error)?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > MAX_REQUEST_BYTES {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}

/// 408 when the request deadline passed, 400 for any other failure to read the body (the
/// connection ended early): the error's whole chain goes to the client, it is about its bytes.
fn body_error(e: axum::Error) -> Refusal {
    let mut why = e.to_string();
    let mut last = why.clone();
    let mut timed_out = false;
    let mut cause = std::error::Error::source(&e);
    while let Some(c) = cause {
        timed_out |= c.is::<crate::server::RequestTimedOut>();
        let text = c.to_string();
        if text != last {
            why = format!("{why}: {text}");
        }
        last = text;
        cause = c.source();
    }
    if timed_out {
        refuse(StatusCode::REQUEST_TIMEOUT, FailureInfo::BadRequest, why)
    } else {
        refuse(
            StatusCode::BAD_REQUEST,
            FailureInfo::BadRequest,
            format!("the request body is incomplete: {why}"),
        )
    }
}

async fn issue(app: &Arc<App>, headers: &HeaderMap, body: Body) -> Result<Vec<u8>, Refusal> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = media.split(';').next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case(QUERY_MEDIA_TYPE) {
        return Err(refuse(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FailureInfo::BadRequest,
            format!("media type {media:?} is not {QUERY_MEDIA_TYPE}"),
        ));
    }
    let bytes = read_body(headers, body).await?;
    let req = check_request(&bytes, &app.policy).map_err(|r| (StatusCode::OK, r))?;
    // Count the number's octets, not DER's 0x00 sign byte before a high first octet.
    if req.nonce.as_ref().is_some_and(|n| {
        let b = n.as_bytes();
        b.len() - usize::from(b.len() > 1 && b[0] == 0) > MAX_NONCE_BYTES
    }) {
        return Err(refuse(
            StatusCode::OK,
            FailureInfo::BadDataFormat,
            format!("nonce longer than {MAX_NONCE_BYTES} bytes"),
        ));
    }
    // Known unwritable: refuse before spending a serial and a signature on a token that
    // could not be archived.
    app.archive.check_writable().map_err(archive_refusal)?;
    let gen_time = app.clock.now().map_err(|e| {
        refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            FailureInfo::TimeNotAvailable,
            e.to_string(),
        )
    })?;
    // ETSI EN 319 421: no token outside the key's usage period (the certificate's validity,
    // narrowed by privateKeyUsagePeriod).
    let (from, until) = app.key_usage;
    if u64::try_from(gen_time.unix_seconds()).is_ok_and(|t| t < from || t > until) {
        return Err(refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            FailureInfo::SystemFailure,
            "outside the signing key's usage period (certificate validity or \
             privateKeyUsagePeriod)",
        ));
    }
    let serial = app.serials.next().await.map_err(archive_refusal)?;
    let token = sign_token(app, &req, serial, gen_time).await.map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            FailureInfo::SystemFailure,
            format!("issuing: {e}"),
        )
    })?;
    let reply = granted_response(&token).map_err(|e| {
        refuse(
            StatusCode::INTERNAL_SERVER_ERROR,
            FailureInfo::SystemFailure,
            format!("encoding: {e}"),
        )
    })?;
    // The reply leaves only once the archive has the token durably.
    app.archive
        .append(TokenRecord {
            serial,
            gen_time_ms: gen_time.to_unix_millis(),
            policy: req.policy.to_string(),
            hash_alg: req.hash_alg.name().to_owned(),
            imprint: req.message_imprint.hashed_message.as_bytes().to_vec(),
            token,
            signer_cert_sha256: Some(app.signer_cert_sha256.clone()),
        })
        .await
        .map_err(archive_refusal)?;
    Ok(reply)
}

/// systemFailure for an archive error: 503 with Retry-After while the archive cannot write or
/// answer (another node, or this one in a moment, may succeed), 500 for anything else (a
/// duplicate serial, an impossible value).
fn archive_refusal(e: ArchiveError) -> Refusal {
    let status = if e.is_unavailable() {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    };
    refuse(status, FailureInfo::SystemFailure, format!("archive: {e}"))
}
