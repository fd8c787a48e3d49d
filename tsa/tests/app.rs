//! The router driven without a socket (axum's testing pattern): granted tokens are archived
//! before the reply, and every refusal carries the right HTTP status and failInfo. The clock
//! source is injected, so the timeNotAvailable path is tested whatever this machine's clock says.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt;
use pki::asn1::{FailureInfo, PkiStatus};
use pki::token::{ParsedToken, VerifyOptions};
use pki::{HashAlg, tsp};
use std::sync::Arc;
use tower::ServiceExt;
use tsa::clock::StatusSource;
use tsa::config::{Config, Overrides};
use tsa::state::App;

fn clock(synced: bool) -> StatusSource {
    Box::new(move || {
        Ok(sysclock::ClockStatus {
            synchronized: synced,
            max_error_us: 1000,
            est_error_us: 1000,
        })
    })
}

async fn app_with(dir: &std::path::Path, allow_unsynced: bool, synced: bool) -> Arc<App> {
    let mut cfg = Config::load(
        None,
        Overrides {
            data_dir: Some(dir.to_path_buf()),
            ..Default::default()
        },
    )
    .expect("cfg");
    cfg.allow_unsynced_clock = allow_unsynced;
    App::build(&cfg, clock(synced)).await.expect("app")
}

async fn post(app: &Arc<App>, media: &str, body: Vec<u8>) -> (StatusCode, Vec<u8>, Option<String>) {
    let req = Request::post("/")
        .header(header::CONTENT_TYPE, media)
        .body(Body::from(body))
        .expect("request");
    let resp = tsa::routes::app(app.clone())
        .oneshot(req)
        .await
        .expect("response");
    let status = resp.status();
    let ct = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = resp
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    (status, bytes, ct)
}

fn request(alg: HashAlg, data: &[u8]) -> Vec<u8> {
    tsp::build_request(alg, &alg.digest(data), Some(&[9, 8, 7, 6]), true, None).expect("request")
}

#[tokio::test]
async fn a_granted_token_verifies_and_is_in_the_archive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with(dir.path(), false, true).await;
    let (status, body, ct) = post(
        &app,
        "application/timestamp-query",
        request(HashAlg::Sha384, b"statement"),
    )
    .await;
    assert_eq!(
        (status, ct.as_deref()),
        (StatusCode::OK, Some("application/timestamp-reply"))
    );
    let resp = tsp::parse_response(&body).expect("reply");
    assert_eq!(resp.status, PkiStatus::Granted);
    assert!(
        resp.status_text.is_empty(),
        "granted replies carry no statusString (jarsigner)"
    );
    let token = ParsedToken::parse(&body).expect("token");
    let root =
        pki::cert::load_certificates(&std::fs::read(dir.path().join("root.pem")).expect("root"))
            .expect("pem");
    let opts = VerifyOptions {
        trust: root,
        expected_nonce: Some(vec![9, 8, 7, 6]),
        ..Default::default()
    };
    let report = pki::token::verify(&token, Some(&HashAlg::Sha384.digest(b"statement")), &opts);
    assert!(report.verified, "{:#?}", report.checks);
    // Only the TSA certificate travels: the root is the verifier's anchor, not the token's.
    assert_eq!(token.certificates.len(), 1);
    let serial = u64::from_str_radix(&token.info().serial_hex, 16).expect("serial");
    let rec = app
        .archive
        .get(serial)
        .await
        .expect("archive")
        .expect("archived before the reply");
    assert_eq!(rec.token, token.der);
    assert_eq!(rec.hash_alg, "sha384");
    assert_eq!(rec.imprint, HashAlg::Sha384.digest(b"statement"));
}

#[tokio::test]
async fn refusals_have_the_right_status_and_fail_info() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with(dir.path(), true, false).await;
    let good = request(HashAlg::Sha256, b"x");
    let sha1 = tsp::build_request(
        HashAlg::Sha1,
        &HashAlg::Sha1.digest(b"x"),
        None,
        false,
        None,
    )
    .expect("req");
    let mut trailing = good.clone();
    trailing.push(0);
    let cases: Vec<(&str, &str, Vec<u8>, StatusCode, FailureInfo)> = vec![
        (
            "media type",
            "text/plain",
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FailureInfo::BadRequest,
        ),
        (
            "no media type",
            "",
            good.clone(),
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            FailureInfo::BadRequest,
        ),
        (
            "oversized",
            "application/timestamp-query",
            vec![0x30; 9000],
            StatusCode::PAYLOAD_TOO_LARGE,
            FailureInfo::BadRequest,
        ),
        (
            "garbage",
            "application/timestamp-query",
            b"hello".to_vec(),
            StatusCode::OK,
            FailureInfo::BadDataFormat,
        ),
        (
            "empty",
            "application/timestamp-query",
            Vec::new(),
            StatusCode::OK,
            FailureInfo::BadDataFormat,
        ),
        (
            "trailing",
            "application/timestamp-query",
            trailing,
            StatusCode::OK,
            FailureInfo::BadDataFormat,
        ),
        (
            "sha1",
            "application/timestamp-query",
            sha1,
            StatusCode::OK,
            FailureInfo::BadAlg,
        ),
    ];
    for (name, media, body, want_status, want_fail) in cases {
        let (status, reply, ct) = post(&app, media, body).await;
        assert_eq!(status, want_status, "{name}");
        assert_eq!(ct.as_deref(), Some("application/timestamp-reply"), "{name}");
        let resp = tsp::parse_response(&reply).expect(name);
        assert_eq!(
            (resp.status, resp.fail_info),
            (PkiStatus::Rejection, vec![want_fail]),
            "{name}"
        );
    }
    // The same app still grants a good request: nothing above hurt it.
    let (status, reply, _) = post(&app, "application/timestamp-query; charset=binary", good).await;
    assert_eq!(
        (status, tsp::parse_response(&reply).expect("reply").status),
        (StatusCode::OK, PkiStatus::Granted)
    );
}

#[tokio::test]
async fn an_unsynchronised_clock_means_time_not_available_with_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with(dir.path(), false, false).await;
    let req = Request::post("/tsa")
        .header(header::CONTENT_TYPE, "application/timestamp-query")
        .body(Body::from(request(HashAlg::Sha256, b"x")))
        .expect("request");
    let resp = tsa::routes::app(app.clone())
        .oneshot(req)
        .await
        .expect("response");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()),
        Some("1")
    );
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let parsed = tsp::parse_response(&body).expect("reply");
    assert_eq!(parsed.fail_info, vec![FailureInfo::TimeNotAvailable]);
    assert_eq!(
        app.archive.count().await.expect("count"),
        0,
        "nothing issued, nothing archived"
    );
    let health = tsa::routes::app(app.clone())
        .oneshot(
            Request::get("/healthz")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    assert_eq!(health.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn certs_route_serves_the_chain_and_metrics_count_outcomes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = app_with(dir.path(), true, true).await;
    let resp = tsa::routes::app(app.clone())
        .oneshot(Request::get("/certs").body(Body::empty()).expect("request"))
        .await
        .expect("response");
    let pem = resp.into_body().collect().await.expect("body").to_bytes();
    let certs = pki::cert::load_certificates(&pem).expect("pem chain");
    assert_eq!(certs.len(), 2, "TSA certificate and root");
    assert_eq!(
        pki::cert::load_certificates(&std::fs::read(dir.path().join("tsa.pem")).expect("tsa"))
            .expect("pem")[0],
        certs[0]
    );
    post(
        &app,
        "application/timestamp-query",
        request(HashAlg::Sha256, b"m"),
    )
    .await;
    let resp = tsa::routes::app(app.clone())
        .oneshot(
            Request::get("/metrics")
                .body(Body::empty())
                .expect("request"),
        )
        .await
        .expect("response");
    let text = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec(),
    )
    .expect("utf8");
    assert!(
        text.contains("tsa_requests_total{outcome=\"granted\"}"),
        "{text}"
    );
}
