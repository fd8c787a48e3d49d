//! Every way a request can be refused, over real HTTP against a real `tsa serve`: the HTTP
//! status, a DER TimeStampResp with status rejection and exactly the right failInfo bit, the
//! reply media type, and `openssl ts -reply -text` reading the same failInfo. Each refusal sits
//! beside a granted control that differs from it only in the refused detail, so a test cannot
//! pass because the request was broken in some other way.

use pki::asn1::{FailureInfo, PkiStatus};
use sigillum_tests::der::{self, ReqSpec};
use sigillum_tests::{
    HttpReply, TsaOptions, TsaServer, openssl, post, post_without_content_type, random_bytes,
    write_file,
};

const QUERY: &str = "application/timestamp-query";
const REPLY: &str = "application/timestamp-reply";

/// The text `openssl ts -reply -text` prints for each failInfo bit (crypto/ts/ts_rsp_print.c).
fn openssl_failure_text(f: FailureInfo) -> &'static str {
    match f {
        FailureInfo::BadAlg => "unrecognized or unsupported algorithm identifier",
        FailureInfo::BadRequest => "transaction not permitted or supported",
        FailureInfo::BadDataFormat => "the data submitted has the wrong format",
        FailureInfo::TimeNotAvailable => "the TSA's time source is not available",
        FailureInfo::UnacceptedPolicy => "the requested TSA policy is not supported by the TSA",
        FailureInfo::UnacceptedExtension => "the requested extension is not supported by the TSA",
        FailureInfo::AddInfoNotAvailable => {
            "the additional information requested could not be understood or is not available"
        }
        FailureInfo::SystemFailure => "the request cannot be handled due to system failure",
        // The other bits are CMP's (RFC 9810): an authority never answers a timestamp request
        // with them, and openssl ts has no text for them.
        other => panic!("{other} is not an RFC 3161 failInfo bit"),
    }
}

/// Asserts that `reply` is a DER rejection with exactly `fail_info`, with HTTP `status`, and
/// that openssl reads it the same way.
fn assert_rejected(
    server: &TsaServer,
    what: &str,
    reply: &HttpReply,
    status: u16,
    fail_info: FailureInfo,
) {
    assert_eq!(
        reply.status,
        status,
        "{what}: HTTP status (body {:?})",
        reply.text()
    );
    assert_eq!(
        reply.content_type.as_deref(),
        Some(REPLY),
        "{what}: media type"
    );
    let parsed = pki::tsp::parse_response(&reply.body).unwrap_or_else(|e| {
        panic!(
            "{what}: the reply is not a DER TimeStampResp: {e}; {:02x?}",
            reply.body
        )
    });
    assert_eq!(parsed.status, PkiStatus::Rejection, "{what}: {parsed:?}");
    assert_eq!(parsed.fail_info, vec![fail_info], "{what}: failInfo");
    assert!(
        parsed.token.is_none(),
        "{what}: a rejection carries no token"
    );
    assert!(
        parsed.status_text.iter().any(|t| !t.trim().is_empty()),
        "{what}: a rejection says why in statusString: {parsed:?}"
    );
    // An independent parser must read the same status and the same bit.
    let name = format!("rejection-{}.tsr", next_id());
    let path = write_file(server.work_dir(), &name, &reply.body);
    let text = openssl(
        server.work_dir(),
        &[
            "ts",
            "-reply",
            "-in",
            path.to_str().expect("utf-8 path"),
            "-text",
        ],
    );
    text.assert_ok();
    assert!(text.stdout.contains("Status: Rejected."), "{what}: {text}");
    assert!(
        text.stdout.contains(&format!(
            "Failure info: {}",
            openssl_failure_text(fail_info)
        )),
        "{what}: openssl reads another failInfo: {text}"
    );
}

/// Asserts a granted reply (the control beside each refusal).
fn assert_granted(what: &str, reply: &HttpReply) {
    assert_eq!(reply.status, 200, "{what}: HTTP status");
    assert_eq!(
        reply.content_type.as_deref(),
        Some(REPLY),
        "{what}: media type"
    );
    let parsed = pki::tsp::parse_response(&reply.body).expect("TimeStampResp");
    assert_eq!(parsed.status, PkiStatus::Granted, "{what}: {parsed:?}");
    assert!(
        parsed.fail_info.is_empty() && parsed.token.is_some(),
        "{what}: {parsed:?}"
    );
}

/// A number for unique file names in a server's scratch directory.
fn next_id() -> usize {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn wrong_media_type_is_415_bad_request() {
    let server = TsaServer::start();
    let req = ReqSpec::sha256(b"media").encode();
    for media in [
        "application/octet-stream",
        "text/plain",
        "application/timestamp-reply",
        "application/json",
    ] {
        let reply = post(&server.url(), media, &req);
        assert_rejected(&server, media, &reply, 415, FailureInfo::BadRequest);
    }
    let reply = post_without_content_type(&server.url(), &req);
    assert_rejected(
        &server,
        "no Content-Type",
        &reply,
        415,
        FailureInfo::BadRequest,
    );
    // Controls: the same bytes with the right type, in any case, with a parameter, on /tsa.
    assert_granted("right type", &post(&server.url(), QUERY, &req));
    assert_granted(
        "upper case",
        &post(&server.url(), "Application/TimeStamp-Query", &req),
    );
    assert_granted(
        "parameter",
        &post(
            &server.url(),
            "application/timestamp-query; charset=binary",
            &req,
        ),
    );
    assert_granted(
        "/tsa route",
        &post(&format!("{}tsa", server.url()), QUERY, &req),
    );
    assert_rejected(
        &server,
        "/tsa wrong type",
        &post(&format!("{}tsa", server.url()), "text/plain", &req),
        415,
        FailureInfo::BadRequest,
    );
}

/// Pads a valid request with a (refused) extension so that it is exactly `len` bytes long.
fn request_of_len(len: usize) -> Vec<u8> {
    let mut spec = ReqSpec::sha256(b"size");
    let mut pad = len.saturating_sub(spec.encode().len() + 40);
    loop {
        spec.extensions = vec![("1.3.6.1.4.1.55555.99".into(), false, vec![0u8; pad])];
        let got = spec.encode().len();
        if got == len {
            return spec.encode();
        }
        assert!(got < len, "overshot {len} at {got}");
        pad += 1;
    }
}

#[test]
fn body_over_8_kib_is_413_and_8_kib_is_read() {
    let server = TsaServer::start();
    // Exactly at the limit the body is read and judged on its content (here: the padding
    // extension), one byte over it is refused unread.
    let at_limit = request_of_len(8 * 1024);
    assert_eq!(at_limit.len(), 8192);
    let reply = post(&server.url(), QUERY, &at_limit);
    assert_rejected(
        &server,
        "8192-byte request",
        &reply,
        200,
        FailureInfo::UnacceptedExtension,
    );
    let over = request_of_len(8 * 1024 + 1);
    let reply = post(&server.url(), QUERY, &over);
    assert_rejected(
        &server,
        "8193-byte request",
        &reply,
        413,
        FailureInfo::BadRequest,
    );
    server.assert_healthy();
}

#[test]
fn one_mib_body_is_413_and_the_server_stays_up() {
    let server = TsaServer::start();
    for chunked in [false, true] {
        let what = if chunked {
            "1 MiB chunked body"
        } else {
            "1 MiB body"
        };
        let reply = sigillum_tests::raw_post(
            server.port(),
            "/",
            QUERY,
            random_bytes(1024 * 1024),
            chunked,
        );
        assert_rejected(&server, what, &reply, 413, FailureInfo::BadRequest);
        server.assert_healthy();
    }
    // A plain client that writes the whole body before reading must get the 413 too (or at
    // worst a reset), and the server must live on.
    if let Ok(reply) = sigillum_tests::try_post(&server.url(), QUERY, &random_bytes(1024 * 1024)) {
        assert_rejected(
            &server,
            "1 MiB body via ureq",
            &reply,
            413,
            FailureInfo::BadRequest,
        );
    }
    server.assert_healthy();
}

/// Opens a raw connection and writes a query head declaring `content_length` and then `body`.
fn raw_query(server: &TsaServer, content_length: usize, body: &[u8]) -> std::net::TcpStream {
    use std::io::Write;
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", server.port())).expect("connect");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .expect("read timeout");
    let head = format!(
        "POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {QUERY}\r\nContent-Length: {content_length}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("head");
    stream.write_all(body).expect("body");
    stream
}

#[test]
fn a_body_shorter_than_its_content_length_is_400_not_413() {
    // Regression: a client that half-closed after part of its body was told 413 (over 8 KiB).
    let server = TsaServer::start();
    let req = ReqSpec::sha256(b"cut short").encode();
    let mut stream = raw_query(&server, req.len(), &req[..req.len() / 2]);
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let reply =
        sigillum_tests::read_reply(&mut stream).expect("a reply to the half-closed request");
    assert_rejected(
        &server,
        "body shorter than its Content-Length",
        &reply,
        400,
        FailureInfo::BadRequest,
    );
    // The same request whole, on the same raw path, is granted.
    let mut stream = raw_query(&server, req.len(), &req);
    let reply = sigillum_tests::read_reply(&mut stream).expect("reply");
    assert_granted("the same request whole", &reply);
}

#[test]
fn a_content_length_over_8_kib_is_413_before_the_body_is_sent() {
    // The declared length alone decides: nothing of the body needs to arrive (or be read).
    let server = TsaServer::start();
    let mut stream = raw_query(&server, 8 * 1024 + 1, b"");
    let reply = sigillum_tests::read_reply(&mut stream).expect("a reply before the body");
    assert_rejected(
        &server,
        "Content-Length 8193, no body sent",
        &reply,
        413,
        FailureInfo::BadRequest,
    );
    let mut stream = raw_query(&server, 8 * 1024, b"");
    stream
        .shutdown(std::net::Shutdown::Write)
        .expect("half-close");
    let reply = sigillum_tests::read_reply(&mut stream).expect("reply");
    assert_rejected(
        &server,
        "Content-Length 8192, no body sent, half-closed",
        &reply,
        400,
        FailureInfo::BadRequest,
    );
    server.assert_healthy();
}

#[test]
fn malformed_der_is_bad_data_format() {
    let server = TsaServer::start();
    let good = ReqSpec::sha256(b"malformed").encode();
    assert_granted("control", &server.post_query(&good));
    let mut trailing = good.clone();
    trailing.extend_from_slice(&[0x05, 0x00]);
    let mut trailing_zero = good.clone();
    trailing_zero.push(0);
    let mut indefinite = good.clone();
    indefinite[1] = 0x80; // BER indefinite length: not DER
    indefinite.extend_from_slice(&[0, 0]);
    let mut not_v1 = ReqSpec::sha256(b"malformed").encode();
    not_v1[4] = 2; // version INTEGER 2
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("empty body", Vec::new()),
        ("random bytes", random_bytes(200)),
        ("one byte", vec![0x30]),
        ("truncated DER", good[..good.len() - 5].to_vec()),
        ("truncated header", good[..2].to_vec()),
        ("trailing bytes", trailing),
        ("trailing zero byte", trailing_zero),
        ("BER indefinite length", indefinite),
        ("version 2", not_v1),
        ("a bare NULL", der::null()),
        ("text", b"hello, timestamp me please".to_vec()),
    ];
    for (what, body) in cases {
        let reply = server.post_query(&body);
        assert_rejected(&server, what, &reply, 200, FailureInfo::BadDataFormat);
    }
    server.assert_healthy();
}

#[test]
fn imprint_of_the_wrong_length_is_bad_data_format() {
    let server = TsaServer::start();
    for (oid, right) in [(der::SHA256, 32), (der::SHA384, 48), (der::SHA512, 64)] {
        for len in [0, right - 1, right + 1, 20] {
            let spec = ReqSpec {
                hash_oid: oid.into(),
                imprint: vec![7; len],
                ..ReqSpec::sha256(b"")
            };
            let reply = server.post_query(&spec.encode());
            assert_rejected(
                &server,
                &format!("{oid} with {len} bytes"),
                &reply,
                200,
                FailureInfo::BadDataFormat,
            );
        }
        let spec = ReqSpec {
            hash_oid: oid.into(),
            imprint: vec![7; right],
            ..ReqSpec::sha256(b"")
        };
        assert_granted(
            &format!("{oid} with {right} bytes"),
            &server.post_query(&spec.encode()),
        );
    }
}

#[test]
fn nonce_over_64_bytes_is_bad_data_format() {
    let server = TsaServer::start();
    let with_nonce = |n: usize| {
        ReqSpec {
            nonce: Some(vec![0x5a; n]),
            ..ReqSpec::sha256(b"nonce")
        }
        .encode()
    };
    assert_granted("64-byte nonce", &server.post_query(&with_nonce(64)));
    assert_rejected(
        &server,
        "65-byte nonce",
        &server.post_query(&with_nonce(65)),
        200,
        FailureInfo::BadDataFormat,
    );
    assert_rejected(
        &server,
        "1000-byte nonce",
        &server.post_query(&with_nonce(1000)),
        200,
        FailureInfo::BadDataFormat,
    );
}

#[test]
fn nonce_limit_counts_the_number_not_the_sign_byte() {
    // A client drawing 64 random bytes gets the top bit set half the time; DER then adds a 0x00
    // sign byte. The limit is on the nonce (64 bytes), so both halves must be granted.
    let server = TsaServer::start();
    let spec = ReqSpec {
        nonce: Some(vec![0xff; 64]),
        ..ReqSpec::sha256(b"nonce")
    };
    assert_granted(
        "64-byte nonce with the top bit set (65 content bytes)",
        &server.post_query(&spec.encode()),
    );
}

#[test]
fn weak_unknown_or_odd_hash_algorithms_are_bad_alg() {
    let server = TsaServer::start();
    let spec = |oid: &str, len: usize, params: Option<Vec<u8>>| {
        ReqSpec {
            hash_oid: oid.into(),
            hash_params: params,
            imprint: vec![0x42; len],
            ..ReqSpec::sha256(b"")
        }
        .encode()
    };
    let cases = [
        ("MD5", spec(der::MD5, 16, Some(der::null()))),
        ("MD5 without parameters", spec(der::MD5, 16, None)),
        ("SHA-1", spec(der::SHA1, 20, Some(der::null()))),
        ("SHA-1 without parameters", spec(der::SHA1, 20, None)),
        ("unknown OID", spec("1.2.3.4.5", 32, Some(der::null()))),
        (
            "SHA3-256 (not accepted)",
            spec("2.16.840.1.101.3.4.2.8", 32, Some(der::null())),
        ),
        (
            "SHA-256 with OCTET STRING parameters",
            spec(der::SHA256, 32, Some(der::octets(b"x"))),
        ),
        (
            "SHA-256 with INTEGER parameters",
            spec(der::SHA256, 32, Some(der::uint(&[0]))),
        ),
        (
            "SHA-256 with an OID as parameters",
            spec(der::SHA256, 32, Some(der::oid(der::SHA256))),
        ),
    ];
    for (what, body) in cases {
        assert_rejected(
            &server,
            what,
            &server.post_query(&body),
            200,
            FailureInfo::BadAlg,
        );
    }
    // Controls: absent and NULL parameters are both fine (RFC 5754 §2).
    assert_granted(
        "SHA-256, NULL parameters",
        &server.post_query(&spec(der::SHA256, 32, Some(der::null()))),
    );
    assert_granted(
        "SHA-256, no parameters",
        &server.post_query(&spec(der::SHA256, 32, None)),
    );
}

#[test]
fn unaccepted_policy_is_unaccepted_policy() {
    let server = TsaServer::start();
    let with_policy = |p: &str| {
        ReqSpec {
            policy: Some(p.into()),
            ..ReqSpec::sha256(b"policy")
        }
        .encode()
    };
    assert_granted(
        "the default policy, asked for",
        &server.post_query(&with_policy(der::DEV_POLICY)),
    );
    for p in ["1.2.3.4", "1.3.6.1.4.1.55555.1.2", "2.5.29.32.0"] {
        assert_rejected(
            &server,
            p,
            &server.post_query(&with_policy(p)),
            200,
            FailureInfo::UnacceptedPolicy,
        );
    }
}

#[test]
fn a_configured_extra_policy_is_accepted_and_others_are_not() {
    let server = TsaServer::start_with(TsaOptions {
        config: Some(
            "allow_unsynced_clock = true\n[policy]\ndefault = \"1.2.3.4.1\"\naccepted = [\"1.2.3.4.2\"]\n".into(),
        ),
        ..TsaOptions::default()
    });
    let with_policy = |p: Option<&str>| {
        ReqSpec {
            policy: p.map(Into::into),
            ..ReqSpec::sha256(b"policy")
        }
        .encode()
    };
    for (asked, expected) in [
        (None, "1.2.3.4.1"),
        (Some("1.2.3.4.1"), "1.2.3.4.1"),
        (Some("1.2.3.4.2"), "1.2.3.4.2"),
    ] {
        let token = sigillum_tests::granted_token(&server.post_query(&with_policy(asked)));
        assert_eq!(token.info().policy, expected, "asked {asked:?}");
    }
    let reply = server.post_query(&with_policy(Some(der::DEV_POLICY)));
    assert_rejected(
        &server,
        "the dev policy, not configured",
        &reply,
        200,
        FailureInfo::UnacceptedPolicy,
    );
}

#[test]
fn any_extension_critical_or_not_is_unaccepted_extension() {
    let server = TsaServer::start();
    let with_ext = |exts: Vec<(String, bool, Vec<u8>)>| {
        ReqSpec {
            extensions: exts,
            ..ReqSpec::sha256(b"ext")
        }
        .encode()
    };
    let cases = [
        (
            "critical unknown",
            vec![("1.2.3.4.99".to_string(), true, der::null())],
        ),
        (
            "non-critical unknown",
            vec![("1.2.3.4.99".to_string(), false, der::null())],
        ),
        // RFC 3161 names no request extension, so even well-known ones are refused.
        (
            "non-critical nonce-like (OCSP nonce)",
            vec![(
                "1.3.6.1.5.5.7.48.1.2".to_string(),
                false,
                der::octets(&[1; 16]),
            )],
        ),
        (
            "two extensions",
            vec![
                ("1.2.3.4.98".to_string(), false, der::null()),
                ("1.2.3.4.99".to_string(), true, der::null()),
            ],
        ),
    ];
    for (what, exts) in cases {
        assert_rejected(
            &server,
            what,
            &server.post_query(&with_ext(exts)),
            200,
            FailureInfo::UnacceptedExtension,
        );
    }
}

#[test]
fn unsynchronised_clock_without_opt_in_is_time_not_available() {
    let clock = sysclock::status().expect("adjtimex works on Linux");
    let server = TsaServer::start_with(TsaOptions {
        config: Some("allow_unsynced_clock = false\n".into()),
        allow_unhealthy: true,
        ..TsaOptions::default()
    });
    let req = ReqSpec::sha256(b"clock").encode();
    let reply = server.post_query(&req);
    if clock.synchronized {
        // Only a machine whose kernel says the clock is disciplined gets here: then the guard
        // must let requests through, and this test checks that instead.
        eprintln!(
            "NOTE: the kernel says the clock is synchronised ({clock:?}); asserting the granted path instead"
        );
        assert_eq!(server.healthz(), 200);
        assert_granted("synchronised clock", &reply);
        return;
    }
    eprintln!(
        "the kernel says the clock is NOT synchronised ({clock:?}): asserting timeNotAvailable"
    );
    assert_eq!(
        server.healthz_status_at_start(),
        503,
        "/healthz must say the server cannot issue"
    );
    assert_rejected(
        &server,
        "unsynchronised clock",
        &reply,
        503,
        FailureInfo::TimeNotAvailable,
    );
    assert_eq!(
        reply.retry_after.as_deref(),
        Some("1"),
        "503 carries Retry-After"
    );
    // A bad request is still judged on its content first: the client learns its own mistake.
    let md5 = ReqSpec {
        hash_oid: der::MD5.into(),
        imprint: vec![1; 16],
        ..ReqSpec::sha256(b"")
    }
    .encode();
    assert_rejected(
        &server,
        "MD5 with a bad clock",
        &server.post_query(&md5),
        200,
        FailureInfo::BadAlg,
    );
}

#[test]
fn garbage_leaves_the_server_healthy() {
    let server = TsaServer::start();
    for size in [1, 2, 3, 17, 100, 1000, 8191, 8192] {
        let body = random_bytes(size);
        let reply = server.post_query(&body);
        // Random bytes can by chance start like a SEQUENCE; whatever they are, the answer is a
        // DER rejection and never a 5xx.
        assert!(
            reply.status == 200,
            "{size} random bytes: HTTP {}",
            reply.status
        );
        let parsed = pki::tsp::parse_response(&reply.body).expect("DER reply");
        assert_eq!(parsed.status, PkiStatus::Rejection, "{size} random bytes");
    }
    let good = ReqSpec::sha256(b"garbage").encode();
    for cut in 0..good.len() {
        let reply = server.post_query(&good[..cut]);
        assert_rejected(
            &server,
            &format!("request cut at {cut}"),
            &reply,
            200,
            FailureInfo::BadDataFormat,
        );
    }
    let _ = sigillum_tests::try_post(&server.url(), QUERY, &random_bytes(1024 * 1024));
    assert_eq!(server.healthz(), 200);
    server.assert_healthy();
    let metrics = sigillum_tests::get(&format!("{}metrics", server.url()));
    assert_eq!(metrics.status, 200);
    assert!(
        !metrics.text().contains("systemFailure"),
        "no system failure counted:\n{}",
        metrics.text()
    );
}
