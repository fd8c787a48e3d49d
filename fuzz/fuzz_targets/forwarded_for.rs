//! The authority's walk over `X-Forwarded-For` (`tsa::proxy`, compiled here from its own file so
//! that this crate need not build the whole server): any header bytes from any peer give an
//! address, never a panic. An untrusted peer is always the client, whatever it sent; otherwise
//! the client is the peer or an address written in the header.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

#[path = "../../tsa/src/proxy/walk.rs"]
mod walk;

/// The proxies this target trusts: private and loopback addresses.
fn trusts(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_private() || v4.is_loopback(),
        IpAddr::V6(v6) => v6.is_loopback(),
    }
}

fuzz_target!(|data: &[u8]| {
    // The first bytes pick the peer, the rest are header lines separated by newlines.
    let (peer, header) = match data.split_first() {
        Some((&0, rest)) if rest.len() >= 16 => {
            let octets: [u8; 16] = rest[..16].try_into().expect("16 bytes");
            (IpAddr::V6(Ipv6Addr::from(octets)), &rest[16..])
        }
        Some((_, rest)) if rest.len() >= 4 => (
            IpAddr::V4(Ipv4Addr::new(rest[0], rest[1], rest[2], rest[3])),
            &rest[4..],
        ),
        _ => return,
    };
    let lines: Vec<&[u8]> = header.split(|b| *b == b'\n').collect();
    let client = walk::client(peer, &lines, trusts);
    if !trusts(peer.to_canonical()) {
        assert_eq!(
            client,
            peer.to_canonical(),
            "an untrusted peer is the client"
        );
        return;
    }
    let written = lines
        .iter()
        .flat_map(|l| l.split(|b| *b == b','))
        .filter_map(walk::parse_entry)
        .any(|ip| ip == client);
    assert!(
        client == peer.to_canonical() || written,
        "{client} is neither the peer nor in the header"
    );
});
