//! `[server] metrics_clients`: `GET /metrics` answers the listed client addresses only (403 with
//! the reason and a request id for the others), everyone when the setting is left out. Behind a
//! trusted proxy the client is the one it forwarded for.

use sigillum_tests::{TsaOptions, TsaServer};
use std::time::Duration;

fn server(server_section: &str) -> TsaServer {
    TsaServer::start_with(TsaOptions {
        config: Some(format!(
            "allow_unsynced_clock = true\n\n[server]\n{server_section}\n"
        )),
        ..Default::default()
    })
}

/// GET /metrics, with `forwarded` as X-Forwarded-For when given: (status, body).
fn scrape(server: &TsaServer, forwarded: Option<&str>) -> (u16, String) {
    let mut req =
        sigillum_tests::agent(Duration::from_secs(30)).get(format!("{}metrics", server.url()));
    if let Some(f) = forwarded {
        req = req.header("X-Forwarded-For", f);
    }
    let mut r = req.call().expect("GET /metrics");
    let status = r.status().as_u16();
    (status, r.body_mut().read_to_string().expect("body"))
}

#[test]
fn metrics_answer_the_listed_clients_only() {
    // Loopback listed: served.
    let open = server("metrics_clients = [\"127.0.0.0/8\", \"::1\"]");
    let (status, body) = scrape(&open, None);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("tsa_"), "{body}");
    drop(open);
    // Not listed: 403, saying why, with the request id. (Proxies are trusted, but not this
    // peer.)
    let closed = server("trusted_proxies = [\"10.0.0.0/8\"]\nmetrics_clients = [\"10.0.0.0/8\"]");
    let (status, body) = scrape(&closed, None);
    assert_eq!(status, 403, "{body}");
    assert!(
        body.contains("metrics_clients")
            && body.contains("127.0.0.1")
            && body.contains("request_id"),
        "{body}"
    );
    // A forged X-Forwarded-For from a peer that is no trusted proxy changes nothing.
    let (status, _) = scrape(&closed, Some("10.1.2.3"));
    assert_eq!(status, 403);
    // The other routes are untouched.
    assert_eq!(
        sigillum_tests::get(&format!("{}healthz", closed.url())).status,
        200
    );
    drop(closed);
    // An empty list: nobody.
    let nobody = server("metrics_clients = []");
    assert_eq!(scrape(&nobody, None).0, 403);
}

#[test]
fn behind_a_trusted_proxy_the_forwarded_client_is_checked() {
    let proxied =
        server("trusted_proxies = [\"127.0.0.1\", \"::1\"]\nmetrics_clients = [\"192.0.2.0/24\"]");
    assert_eq!(scrape(&proxied, Some("192.0.2.5")).0, 200);
    let (status, body) = scrape(&proxied, Some("203.0.113.1"));
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("203.0.113.1"), "{body}");
    // The proxy itself is no listed client.
    assert_eq!(scrape(&proxied, None).0, 403);
}
