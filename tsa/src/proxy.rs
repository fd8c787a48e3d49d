//! Client addresses: who the client is behind reverse proxies (`[server] trusted_proxies`), and
//! the address lists the configuration names (`trusted_proxies`, `metrics_clients`).
//!
//! Behind a load balancer or a TLS-terminating proxy every connection comes from the proxy, so a
//! limit keyed on the TCP peer (the per-client rate limit, the CA's per-client enrolment codes)
//! would count all clients as one. Proxies pass the address they received the request from in
//! `X-Forwarded-For`, each appending its own peer to the list. Any client can send that header
//! too, with any address in it, so it is read only from a peer in `trusted_proxies`, and only
//! as far as the trusted hops go: walking the list from its right end (the entry the nearest
//! proxy appended), trusted addresses are skipped and the first untrusted one is the client.
//! Whatever a client wrote further left stays unread. When every entry is a trusted address, the
//! left-most is the client (a proxy host made the request itself). An entry that is not an
//! address (`unknown`, an obfuscated RFC 7239 name, garbage) ends the walk at the last trusted
//! hop: the limit then counts that proxy, never an address nobody vouched for. So the list must
//! hold the proxies only, and only proxies that append to the header (a TCP pass-through
//! balancer forwards what the client wrote): any host in a listed range is believed.
//!
//! Entries may carry a port (`203.0.113.7:4711`, `[2001:db8::1]:443`); several header lines are
//! one list, in order (RFC 9110 §5.3). The RFC 7239 `Forwarded` header is not read.
//! IPv4-mapped IPv6 addresses (a dual-stack listener's peers) count as the IPv4 address, in the
//! configuration's lists too (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).

use crate::ca::http::ClientAddr;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::Response;
use ipnet::IpNet;
use std::net::IpAddr;
use std::sync::Arc;

mod walk;

/// The header proxies append their peer to.
const FORWARDED_FOR: &str = "x-forwarded-for";

/// Addresses and ranges (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`), as the configuration
/// lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressRanges(Vec<IpNet>);

impl AddressRanges {
    /// Parses `entries`. Refused: what is not an address or a range, and a range with host bits
    /// set (`10.0.0.1/8`: which was meant?).
    pub fn parse(entries: &[String]) -> Result<AddressRanges, String> {
        entries
            .iter()
            .map(|e| parse_range(e.trim()))
            .collect::<Result<Vec<_>, _>>()
            .map(AddressRanges)
    }

    /// Whether `ip` (IPv4-mapped IPv6 counting as IPv4) is in one of the ranges.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// The address ranges whose `X-Forwarded-For` is believed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(AddressRanges);

impl TrustedProxies {
    /// Parses `entries` as [`AddressRanges::parse`] does, refusing a range of every address as
    /// well (then any client could choose the address it is counted as).
    pub fn parse(entries: &[String]) -> Result<TrustedProxies, String> {
        let ranges = AddressRanges::parse(entries)?;
        if let Some(all) = ranges.0.iter().find(|net| net.prefix_len() == 0) {
            return Err(format!(
                "{all} trusts every address, so any client could name its own; list the proxies' addresses"
            ));
        }
        Ok(TrustedProxies(ranges))
    }

    /// Whether none is configured (the TCP peer is the client).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.contains(ip)
    }

    /// The client of a request that came from `peer` with `headers` (see the module's text).
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        // Header lines in order, each a comma-separated list.
        let lines: Vec<&[u8]> = headers
            .get_all(FORWARDED_FOR)
            .iter()
            .map(|v| v.as_bytes())
            .collect();
        walk::client(peer, &lines, |ip| self.trusts(ip))
    }
}

fn parse_range(entry: &str) -> Result<IpNet, String> {
    let net = match entry.parse::<IpNet>() {
        Ok(net) => net,
        Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
            format!(
                "{entry:?} is neither an address nor a range (10.0.0.0/8, 192.0.2.7, 2001:db8::/32)"
            )
        })?,
    };
    // Addresses are compared as IPv4 when IPv4-mapped, so a mapped range is its IPv4 range.
    let net = match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96)
                .map(IpNet::V4)
                .unwrap_or(net),
            None => net,
        },
        other => other,
    };
    if net.trunc() != net {
        return Err(format!(
            "{entry:?} has host bits set; write the range as {}",
            net.trunc()
        ));
    }
    Ok(net)
}

/// Middleware: replaces the connection's [`ClientAddr`] with the forwarded client when the peer
/// is a trusted proxy. Installed only when `trusted_proxies` is set.
pub async fn forwarded_client(
    State(proxies): State<Arc<TrustedProxies>>,
    mut req: Request,
    next: Next,
) -> Response {
    if let Some(ClientAddr(peer)) = req.extensions().get::<ClientAddr>().copied() {
        let client = proxies.client(peer, req.headers());
        req.extensions_mut().insert(ClientAddr(client));
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn proxies(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(&list.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>())
            .expect("valid")
    }

    fn headers(lines: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for l in lines {
            h.append(FORWARDED_FOR, HeaderValue::from_str(l).expect("value"));
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_forwards() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(ip("198.51.100.9"), &headers(&["203.0.113.7"])),
            ip("198.51.100.9")
        );
        // Nothing configured: the same.
        assert_eq!(
            TrustedProxies::default().client(ip("10.1.2.3"), &headers(&["203.0.113.7"])),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_client_is_the_entry_it_appended() {
        let p = proxies(&["10.0.0.0/8"]);
        assert_eq!(
            p.client(ip("10.0.0.5"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // A client that forges the header is counted as what the proxy saw, not what it wrote.
        assert_eq!(
            p.client(
                ip("10.0.0.5"),
                &headers(&["192.0.2.1, 192.0.2.2, 198.51.100.9"])
            ),
            ip("198.51.100.9")
        );
        // A chain of trusted proxies is skipped, right to left; lines are one list in order.
        assert_eq!(
            p.client(
                ip("10.0.0.5"),
                &headers(&["192.0.2.1, 198.51.100.9", "10.9.9.9,10.0.0.7"])
            ),
            ip("198.51.100.9")
        );
        // Every hop trusted: the left-most of them.
        assert_eq!(
            p.client(ip("10.0.0.5"), &headers(&["10.1.1.1, 10.2.2.2"])),
            ip("10.1.1.1")
        );
        // No header: the proxy itself.
        assert_eq!(p.client(ip("10.0.0.5"), &HeaderMap::new()), ip("10.0.0.5"));
    }

    #[test]
    fn an_entry_that_is_no_address_stops_at_the_last_trusted_hop() {
        let p = proxies(&["10.0.0.0/8"]);
        for bad in [
            "unknown",
            "_hidden",
            "",
            "203.0.113.7:port",
            "[::1",
            "::1]:80",
        ] {
            assert_eq!(
                p.client(ip("10.0.0.5"), &headers(&[&format!("192.0.2.1, {bad}")])),
                ip("10.0.0.5"),
                "{bad:?}"
            );
            assert_eq!(
                p.client(
                    ip("10.0.0.5"),
                    &headers(&[&format!("192.0.2.1, {bad}, 10.0.0.9")])
                ),
                ip("10.0.0.9"),
                "{bad:?}"
            );
        }
        // Bytes that are not text.
        let mut h = HeaderMap::new();
        h.append(
            FORWARDED_FOR,
            HeaderValue::from_bytes(b"192.0.2.1, \xff").expect("value"),
        );
        assert_eq!(p.client(ip("10.0.0.5"), &h), ip("10.0.0.5"));
    }

    #[test]
    fn ports_brackets_and_mapped_addresses_are_read() {
        let p = proxies(&["10.0.0.0/8", "2001:db8:1::/48"]);
        for (entry, want) in [
            ("203.0.113.7:4711", "203.0.113.7"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            (" 2001:db8::1 ", "2001:db8::1"),
            ("::ffff:203.0.113.7", "203.0.113.7"),
        ] {
            assert_eq!(
                p.client(ip("10.0.0.5"), &headers(&[entry])),
                ip(want),
                "{entry:?}"
            );
        }
        // A dual-stack listener's peer ::ffff:10.0.0.5 is the trusted 10.0.0.5.
        assert_eq!(
            p.client(ip("::ffff:10.0.0.5"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
        // And an IPv6 proxy in its range.
        assert_eq!(
            p.client(ip("2001:db8:1::9"), &headers(&["203.0.113.7"])),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ranges_are_checked_when_the_configuration_is_read() {
        let ok = proxies(&["10.0.0.0/8", "192.0.2.7", "2001:db8::/32", " ::1 "]);
        assert!(ok.trusts(ip("10.255.0.1")) && ok.trusts(ip("192.0.2.7")));
        assert!(ok.trusts(ip("::1")) && !ok.trusts(ip("192.0.2.8")));
        // IPv4-mapped entries mean their IPv4 addresses, as the addresses compared do.
        let mapped = proxies(&["::ffff:127.0.0.1", "::ffff:10.0.0.0/104"]);
        assert!(mapped.trusts(ip("127.0.0.1")) && mapped.trusts(ip("::ffff:127.0.0.1")));
        assert!(mapped.trusts(ip("10.1.2.3")) && !mapped.trusts(ip("11.0.0.1")));
        assert_eq!(
            mapped,
            proxies(&["127.0.0.1", "10.0.0.0/8"]),
            "the same lists"
        );
        for (bad, says) in [
            ("10.0.0.1/8", "write the range as 10.0.0.0/8"),
            ("0.0.0.0/0", "trusts every address"),
            ("::/0", "trusts every address"),
            ("proxy.example", "neither an address nor a range"),
            ("10.0.0.0/33", "neither an address nor a range"),
        ] {
            let err = TrustedProxies::parse(&[bad.to_owned()]).expect_err(bad);
            assert!(err.contains(says), "{bad}: {err}");
        }
    }
}
