//! The client's one HTTP agent (ureq, rustls): the authority, the CA's CMP and enrolment
//! routes, the certificate directory and OCSP all go through [`agent`].

use crate::pool::MAX_JOBS;
use std::time::Duration;

/// An agent with keep-alive connections, `timeout` for each whole request, HTTP error statuses
/// returned as responses (callers read the body: a TSA rejection, a CMP error, a JSON error),
/// and each authority's name resolved once per run ([`ResolveOnce`]).
///
/// Its pool keeps every connection a bulk run's workers opened (up to [`MAX_JOBS`]): ureq keeps
/// 3 idle connections per host by default, so with 8 or 32 workers most replies closed their
/// connection and the next request opened a new one (217 connections for 4,000 files at 8
/// workers). Idle connections exist only as many as were in use at once.
pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .max_idle_connections(MAX_JOBS)
        .max_idle_connections_per_host(MAX_JOBS)
        .timeout_global(Some(timeout))
        .http_status_as_error(false)
        .user_agent(concat!("sigillum-stamp/", env!("CARGO_PKG_VERSION")))
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        ResolveOnce::<ureq::unversioned::resolver::DefaultResolver>::default(),
    )
}

/// Most names [`ResolveOnce`] keeps: a run talks to one authority (and perhaps a proxy).
const RESOLVED_NAMES: usize = 8;

/// ureq resolves the authority's name before every request, even one a pooled keep-alive
/// connection serves, and with a timeout it resolves on a thread of its own each time: about a
/// tenth of `stamp file`'s CPU per file went to starting those threads. A run talks to one
/// authority (a directory, an OCSP responder), so each scheme and authority is resolved once
/// (through `R`, within the timeout) and its addresses are kept for the agent's life, a CLI
/// run; failures are not kept.
#[derive(Debug, Default)]
struct ResolveOnce<R> {
    inner: R,
    known: std::sync::Mutex<Vec<(String, ureq::unversioned::resolver::ResolvedSocketAddrs)>>,
}

impl<R: ureq::unversioned::resolver::Resolver> ureq::unversioned::resolver::Resolver
    for ResolveOnce<R>
{
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = format!(
            "{}://{}",
            uri.scheme_str().unwrap_or_default(),
            uri.authority().map_or("", |a| a.as_str())
        );
        let known = || {
            self.known
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        if let Some((_, addrs)) = known().iter().find(|(k, _)| *k == key) {
            return Ok(addrs.clone());
        }
        let addrs = self.inner.resolve(uri, config, timeout)?;
        let mut known = known();
        if known.len() < RESOLVED_NAMES {
            known.push((key, addrs.clone()));
        }
        Ok(addrs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::SocketAddr;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use ureq::unversioned::resolver::{ResolvedSocketAddrs, Resolver};

    /// Resolves every name to 127.0.0.1 on its URI's port, counting the calls; the first
    /// `fail_first` calls fail.
    #[derive(Debug, Default)]
    struct Counting {
        calls: AtomicUsize,
        fail_first: usize,
    }

    impl Resolver for Counting {
        fn resolve(
            &self,
            uri: &ureq::http::Uri,
            _config: &ureq::config::Config,
            _timeout: ureq::unversioned::transport::NextTimeout,
        ) -> Result<ResolvedSocketAddrs, ureq::Error> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.fail_first {
                return Err(ureq::Error::HostNotFound);
            }
            let mut addrs = self.empty();
            addrs.push(SocketAddr::from((
                [127, 0, 0, 1],
                uri.port_u16().unwrap_or(80),
            )));
            Ok(addrs)
        }
    }

    /// Requests from `workers` threads at once, each making `each` in a row with a pause
    /// between them (a bulk run's worker hashes the next file, checks and writes the reply), to
    /// a local HTTP/1.1 server that answers every request on a keep-alive connection: returns
    /// the connections the server accepted.
    fn connections_for(workers: usize, each: usize) -> usize {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let url = format!("http://{}/", listener.local_addr().expect("addr"));
        let accepted = std::sync::Arc::new(AtomicUsize::new(0));
        let counter = std::sync::Arc::clone(&accepted);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                counter.fetch_add(1, Ordering::SeqCst);
                std::thread::spawn(move || {
                    let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                    let mut stream = stream;
                    let mut line = String::new();
                    loop {
                        // A request: its head up to the empty line (GETs carry no body).
                        loop {
                            line.clear();
                            match reader.read_line(&mut line) {
                                Ok(0) | Err(_) => return,
                                Ok(_) if line == "\r\n" => break,
                                Ok(_) => {}
                            }
                        }
                        let reply = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.write_all(reply).is_err() {
                            return;
                        }
                    }
                });
            }
        });
        let agent = agent(Duration::from_secs(10));
        let start = std::sync::Barrier::new(workers);
        std::thread::scope(|s| {
            for _ in 0..workers {
                s.spawn(|| {
                    start.wait();
                    for _ in 0..each {
                        let mut r = agent.get(&url).call().expect("request");
                        assert_eq!(r.body_mut().read_to_string().expect("body"), "ok");
                        std::thread::sleep(Duration::from_millis(2));
                    }
                });
            }
        });
        accepted.load(Ordering::SeqCst)
    }

    /// Workers that each make one request after another use one connection each: the pool
    /// keeps as many idle connections as were in use at once (ureq's default keeps 3 per host,
    /// so 16 workers opened new connections all the time).
    #[test]
    fn concurrent_workers_keep_their_connections() {
        let connections = connections_for(16, 40);
        assert!(
            connections <= 16,
            "16 workers x 40 requests opened {connections} connections"
        );
    }

    fn resolve(r: &ResolveOnce<Counting>, url: &str) -> Result<Vec<SocketAddr>, ureq::Error> {
        let uri: ureq::http::Uri = url.parse().expect("uri");
        r.resolve(&uri, &ureq::config::Config::default(), Default::default())
            .map(|a| a.iter().copied().collect())
    }

    /// One resolution per scheme and authority for the run, whatever the path; another
    /// authority (another port) is resolved on its own; a failure is not remembered.
    #[test]
    fn each_authority_is_resolved_once_and_failures_are_not_kept() {
        let r = ResolveOnce {
            inner: Counting {
                fail_first: 1,
                ..Counting::default()
            },
            ..ResolveOnce::default()
        };
        let calls = |r: &ResolveOnce<Counting>| r.inner.calls.load(Ordering::SeqCst);
        assert!(resolve(&r, "http://tsa.example:3161/").is_err());
        let first = resolve(&r, "http://tsa.example:3161/").expect("resolved");
        assert_eq!(first, [SocketAddr::from(([127, 0, 0, 1], 3161))]);
        assert_eq!(calls(&r), 2, "the failure was not kept");
        for path in ["/", "/tsa", "/other"] {
            let again = resolve(&r, &format!("http://tsa.example:3161{path}")).expect("kept");
            assert_eq!(again, first);
        }
        assert_eq!(calls(&r), 2, "kept for the run");
        let other = resolve(&r, "http://tsa.example:3999/").expect("resolved");
        assert_eq!(other, [SocketAddr::from(([127, 0, 0, 1], 3999))]);
        assert_eq!(calls(&r), 3);
    }
}
