//! The client's one HTTP agent (ureq, rustls): the authority, the CA's CMP and enrolment
//! routes, the certificate directory and OCSP all go through [`agent`].

use std::time::Duration;

/// An agent with keep-alive connections, `timeout` for each whole request, HTTP error statuses
/// returned as responses (callers read the body: a TSA rejection, a CMP error, a JSON error),
/// and each authority's name resolved once per run ([`ResolveOnce`]).
pub fn agent(timeout: Duration) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
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
