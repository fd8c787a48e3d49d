//! The walk over `X-Forwarded-For` itself, on bytes and the standard library only, so that the
//! fuzz target `forwarded_for` compiles this very file (fuzz/fuzz_targets/forwarded_for.rs).

use std::net::{IpAddr, SocketAddr};

/// The client of a request from `peer` whose `X-Forwarded-For` header lines are `lines` (in
/// the order received), with `trusts` saying which addresses are trusted proxies: the peer
/// when it is not trusted; else, walking the entries from the last one back, the first that is
/// not trusted; the last trusted one when an entry is no address or the entries run out.
pub fn client(peer: IpAddr, lines: &[&[u8]], trusts: impl Fn(IpAddr) -> bool) -> IpAddr {
    let mut client = peer.to_canonical();
    if !trusts(client) {
        return client;
    }
    for line in lines.iter().rev() {
        for entry in line.rsplit(|b| *b == b',') {
            match parse_entry(entry) {
                Some(ip) if trusts(ip) => client = ip,
                Some(ip) => return ip,
                None => return client,
            }
        }
    }
    client
}

/// One `X-Forwarded-For` entry: an address, with or without a port (IPv6 in brackets then),
/// IPv4-mapped IPv6 read as IPv4.
pub fn parse_entry(entry: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(entry).ok()?.trim();
    let ip = text
        .parse::<IpAddr>()
        .or_else(|_| text.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .or_else(|| {
            text.strip_prefix('[')?
                .strip_suffix(']')?
                .parse::<IpAddr>()
                .ok()
        })?;
    Some(ip.to_canonical())
}
