//! Per-client rate limits (`[server] requests_per_second_per_client`): a token bucket per
//! client IP address on this node, refilled at the configured rate with a burst of one
//! second's worth. Over the limit a client gets HTTP 429 with `Retry-After`: on the RFC 3161
//! routes a DER rejection (systemFailure, "rate limit"), elsewhere the JSON error with its
//! request id. Off by default. The client is the TCP peer, or behind a proxy in `[server]
//! trusted_proxies` the address it forwarded for (`X-Forwarded-For`, [`crate::proxy`]).

use crate::ca::http::ClientAddr;
use crate::error::AppError;
use axum::extract::{Extension, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::Instant;

/// Most clients remembered before idle ones are forgotten (a bound on memory under a flood
/// from many addresses).
const MAX_CLIENTS: usize = 100_000;

/// The buckets of one node.
pub struct RateLimiter {
    per_second: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_second` requests a second per client (burst: as many).
    pub fn new(per_second: u32) -> RateLimiter {
        RateLimiter {
            per_second: f64::from(per_second),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one request for `client` at `now`: `Ok`, or the seconds to wait (one: a rate of at
    /// least one a second refills a request within a second).
    pub fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let mut buckets = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if buckets.len() >= MAX_CLIENTS && !buckets.contains_key(&client) {
            // Forget clients whose buckets have refilled: they are as if new. If a flood of
            // fresh addresses keeps them all busy, forget everyone: a hard bound on memory and
            // on this scan (at most once per MAX_CLIENTS new addresses), at the price of one
            // fresh burst each.
            let rate = self.per_second;
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < rate
            });
            if buckets.len() >= MAX_CLIENTS / 2 {
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(client).or_insert((self.per_second, now));
        let refilled = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second)
            .min(self.per_second);
        *at = now;
        if refilled >= 1.0 {
            *tokens = refilled - 1.0;
            Ok(())
        } else {
            *tokens = refilled;
            // The next request refills within (1 - refilled) / rate seconds, at most one second
            // for any rate of one a second or more; Retry-After has whole seconds.
            Err(1)
        }
    }
}

/// Middleware: refuses a client over its rate with 429 and Retry-After.
pub async fn limit(
    axum::extract::State(limiter): axum::extract::State<std::sync::Arc<RateLimiter>>,
    client: Option<Extension<ClientAddr>>,
    req: Request,
    next: Next,
) -> Response {
    // Probes and scrapers are never limited: a kubelet or Prometheus behind the same address
    // as heavy clients must still see the node.
    let path = req.uri().path();
    let exempt = matches!(path, "/livez" | "/healthz" | "/metrics");
    let Some(Extension(ClientAddr(client))) = client.filter(|_| !exempt) else {
        return next.run(req).await;
    };
    match limiter.take(client, Instant::now()) {
        Ok(()) => next.run(req).await,
        Err(retry_after) => {
            metrics::counter!("tsa_rate_limited_total").increment(1);
            let path = req.uri().path();
            if path == "/" || path == "/tsa" {
                let body = pki::tsp::rejection_response(
                    pki::asn1::FailureInfo::SystemFailure,
                    "rate limit: too many requests from this client",
                )
                .unwrap_or_default();
                let mut resp = (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(header::CONTENT_TYPE, crate::limits::REPLY_MEDIA_TYPE)],
                    body,
                )
                    .into_response();
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
                resp
            } else {
                AppError::TooMany {
                    what: "too many requests from this client".into(),
                    retry_after: i64::try_from(retry_after).unwrap_or(i64::MAX),
                }
                .into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::RateLimiter;
    use std::time::{Duration, Instant};

    #[test]
    fn a_client_gets_its_rate_with_a_burst_and_others_are_not_held_back() {
        let l = RateLimiter::new(5);
        let (a, b) = (
            "10.0.0.1".parse().expect("ip"),
            "10.0.0.2".parse().expect("ip"),
        );
        let t = Instant::now();
        for _ in 0..5 {
            assert_eq!(l.take(a, t), Ok(()));
        }
        assert_eq!(l.take(a, t), Err(1));
        assert_eq!(l.take(b, t), Ok(()));
        // 200 ms later one more request has refilled.
        assert_eq!(l.take(a, t + Duration::from_millis(200)), Ok(()));
        assert!(l.take(a, t + Duration::from_millis(200)).is_err());
        // A second later the whole burst is back.
        for _ in 0..5 {
            assert_eq!(l.take(a, t + Duration::from_millis(1300)), Ok(()));
        }
    }
}
