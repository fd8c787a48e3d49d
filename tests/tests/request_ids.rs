//! Every response carries a request id in `x-request-id`, the one the server logged the
//! request under: a client's well-formed id is kept, a malformed one replaced; the CA routes'
//! JSON errors name the same id as the header.

use sigillum_tests::TsaServer;
use sigillum_tests::der::ReqSpec;

fn call(
    req: ureq::RequestBuilder<ureq::typestate::WithBody>,
    body: &[u8],
) -> (u16, String, String) {
    let mut r = req.send(body).expect("request");
    let id = r
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    (
        r.status().as_u16(),
        id,
        r.body_mut().read_to_string().unwrap_or_default(),
    )
}

#[test]
fn every_response_carries_the_request_id_the_server_logged() {
    let server = TsaServer::start();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    // A token request: a new id, 16 hex digits, in the log beside the request.
    let spec = ReqSpec::sha256(b"request ids");
    let (status, id, _) = call(
        agent
            .post(server.url())
            .header("Content-Type", "application/timestamp-query"),
        &spec.encode(),
    );
    assert_eq!(status, 200);
    assert!(
        id.len() == 16 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{id:?}"
    );
    // The client's own id is kept (here on a request the authority rejects, which it logs);
    // a malformed one is replaced.
    let (_, kept, _) = call(
        agent
            .post(server.url())
            .header("Content-Type", "application/timestamp-query")
            .header("x-request-id", "batch-7.item_42"),
        b"\x30\x03\x02\x01\x07",
    );
    assert_eq!(kept, "batch-7.item_42");
    let (_, replaced, _) = call(
        agent
            .post(server.url())
            .header("Content-Type", "application/timestamp-query")
            .header("x-request-id", "a b;c"),
        &spec.encode(),
    );
    assert!(replaced.len() == 16 && replaced != "a b;c", "{replaced:?}");
    // A JSON error names the header's id.
    let (status, id, body) = call(
        agent
            .post(format!("{}.well-known/cmp", server.url()))
            .header("Content-Type", "text/plain"),
        b"x",
    );
    assert_eq!(status, 415);
    assert!(
        body.contains(&format!("\"request_id\":\"{id}\"")),
        "{id} {body}"
    );
    // A GET too.
    let r = agent
        .get(format!("{}healthz", server.url()))
        .call()
        .expect("healthz");
    assert!(r.headers().get("x-request-id").is_some());
    // The server logged the refused requests under their ids (granted tokens are counted in
    // /metrics, not logged one by one).
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    assert!(log.contains("batch-7.item_42"), "{log}");
    assert!(log.contains(&id), "{log}");
}

#[test]
fn json_logs_are_one_object_a_line_with_the_request_id() {
    let server = TsaServer::start_with(sigillum_tests::TsaOptions {
        env: vec![("TSA_LOG_FORMAT".into(), "json".into())],
        ..Default::default()
    });
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .new_agent();
    let (status, id, _) = call(
        agent
            .post(server.url())
            .header("Content-Type", "application/timestamp-query")
            .header("x-request-id", "json-check-1"),
        b"\x30\x00",
    );
    assert_eq!((status, id.as_str()), (200, "json-check-1"));
    std::thread::sleep(std::time::Duration::from_millis(200));
    let log = server.log();
    let objects: Vec<serde_json::Value> = log
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(!objects.is_empty(), "{log}");
    assert!(
        objects
            .iter()
            .any(|o| o["span"]["request_id"] == "json-check-1"),
        "{log}"
    );
}
