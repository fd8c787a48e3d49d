//! Per-client rate limits: over `requests_per_second_per_client` a client gets HTTP 429 with
//! Retry-After (a DER rejection that openssl reads on the RFC 3161 route, the JSON error with
//! its request id elsewhere); within it, every request is served.

use sigillum_tests::der::ReqSpec;
use sigillum_tests::{TsaOptions, TsaServer};

#[test]
fn a_client_over_its_rate_gets_429_with_retry_after_and_a_rejection_it_can_read() {
    let server = TsaServer::start_with(TsaOptions {
        config: Some(
            "allow_unsynced_clock = true\n\n[server]\nrequests_per_second_per_client = 3\n".into(),
        ),
        // /healthz at start counts too: it is one of the client's requests.
        ..Default::default()
    });
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let q = ReqSpec::sha256(b"rate").encode();
    let mut statuses = Vec::new();
    let mut refused = None;
    for _ in 0..8 {
        let mut r = agent
            .post(server.url())
            .header("Content-Type", "application/timestamp-query")
            .send(&q[..])
            .expect("post");
        let status = r.status().as_u16();
        statuses.push(status);
        if status == 429 && refused.is_none() {
            let retry = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let ct = r
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            refused = Some((retry, ct, r.body_mut().read_to_vec().expect("body")));
        }
    }
    // The burst (3) is served, then refusals (a slow machine may see one request refill in
    // between: a third of a second at 3 a second).
    assert_eq!(&statuses[..3], &[200, 200, 200], "{statuses:?}");
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 429),
        "{statuses:?}"
    );
    assert!(
        statuses[3..].iter().filter(|s| **s == 429).count() >= 3,
        "{statuses:?}"
    );
    let (retry, ct, body) = refused.expect("a refusal");
    assert_eq!(retry.as_deref(), Some("1"));
    assert_eq!(ct.as_deref(), Some("application/timestamp-reply"));
    // openssl reads the refusal: a rejection, systemFailure, with the reason.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("r.tsr"), &body).expect("write");
    let t = sigillum_tests::openssl(dir.path(), &["ts", "-reply", "-in", "r.tsr", "-text"]);
    assert!(
        t.stdout.contains("Status: Rejected") && t.stdout.contains("rate limit"),
        "{}",
        t.stdout
    );
    // Other routes answer the JSON error with a request id.
    let mut r = agent
        .get(format!("{}directory/a@b.example", server.url()))
        .call()
        .expect("get");
    assert_eq!(r.status().as_u16(), 429);
    let json = r.body_mut().read_to_string().expect("body");
    assert!(
        json.contains("request_id") && json.contains("too many requests"),
        "{json}"
    );
    // After a second the client is served again.
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let r = agent
        .post(server.url())
        .header("Content-Type", "application/timestamp-query")
        .send(&q[..])
        .expect("post");
    assert_eq!(r.status().as_u16(), 200);
}

/// `n` timestamp requests, each with `forwarded` as its X-Forwarded-For; their statuses.
fn statuses_forwarded(
    server: &TsaServer,
    forwarded: impl Fn(usize) -> String,
    n: usize,
) -> Vec<u16> {
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let q = ReqSpec::sha256(b"proxied").encode();
    (0..n)
        .map(|i| {
            agent
                .post(server.url())
                .header("Content-Type", "application/timestamp-query")
                .header("X-Forwarded-For", forwarded(i))
                .send(&q[..])
                .expect("post")
                .status()
                .as_u16()
        })
        .collect()
}

/// A burst of 2 served, then at least two of the next four refused (a slow machine may refill
/// one request in between: half a second at 2 a second).
fn limited(statuses: &[u16]) -> bool {
    statuses[..2] == [200, 200]
        && statuses.iter().all(|s| *s == 200 || *s == 429)
        && statuses[2..].iter().filter(|s| **s == 429).count() >= 2
}

/// A server limiting each client to 2 requests a second, with `proxies` trusted.
fn limited_to_two(proxies: &str) -> TsaServer {
    TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n\n[server]\nrequests_per_second_per_client = 2\n\
             trusted_proxies = {proxies}\n"
        )),
        ..Default::default()
    })
}

#[test]
fn behind_a_trusted_proxy_each_forwarded_client_has_its_own_limit() {
    let server = limited_to_two(r#"["127.0.0.1", "::1"]"#);
    // The proxy (127.0.0.1, trusted) forwards for one client: that client is limited...
    let first = statuses_forwarded(&server, |_| "203.0.113.1".into(), 6);
    assert!(limited(&first), "{first:?}");
    // ...and another client behind the same proxy has a bucket of its own, right away. The
    // client is the right-most untrusted entry: what the client itself wrote to the left of
    // it (here the exhausted 203.0.113.1) is not read.
    let second = statuses_forwarded(&server, |_| "203.0.113.1, 203.0.113.2".into(), 2);
    assert_eq!(second, [200, 200]);
}

#[test]
fn from_an_untrusted_peer_x_forwarded_for_is_ignored() {
    let server = limited_to_two(r#"["10.0.0.0/8"]"#);
    // 127.0.0.1 is no listed proxy: a new address in every request's header changes nothing.
    let statuses = statuses_forwarded(&server, |i| format!("203.0.113.{}", i + 1), 6);
    assert!(limited(&statuses), "{statuses:?}");
}
