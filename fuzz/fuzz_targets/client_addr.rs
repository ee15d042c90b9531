//! The client address behind trusted proxies (`Forwarded` / `X-Forwarded-For` walks).
//!
//! Invariants: on a well-formed chain (addresses in every spelling the headers allow,
//! unreadable hops, split over several header lines, as `Forwarded` with an ignored
//! `X-Forwarded-For` decoy or as `X-Forwarded-For`) the client is what the reference walk
//! in `oracle.rs` says; on arbitrary header bytes the client is the peer or an address
//! the headers name, never an IPv4-mapped IPv6 address, and an untrusted peer's headers
//! (or anyone's, with no trusted proxies) are ignored.
#![no_main]

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use hookgate::pipeline::allowlist::{ClientIpHeader, client_addr};
use hookgate_fuzz::oracle::{addresses_in, reference_client};
use http::{HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

/// Addresses in and out of the trusted networks, so that walks go somewhere.
const KNOWN: &[&str] = &[
    "10.0.0.7",
    "10.255.0.1",
    "203.0.113.5",
    "2001:db8::1",
    "2001:db8::3",
    "2001:db9::1",
    "::ffff:10.1.2.3",
    "::ffff:203.0.113.6",
    "::1",
    "127.0.0.1",
];
/// Hops nobody can read: each stops the walk.
const GARBAGE: &[&str] = &[
    "unknown",
    "_hidden",
    "1.2.3",
    "10.0.0.1 10.0.0.2",
    "",
    "300.1.1.1",
    "10.0.0.1:99999",
];
const HEADERS: &[&str] = &["x-forwarded-for", "forwarded", "x-real-ip", "FORWARDED"];

#[derive(Debug, Arbitrary)]
enum Addr {
    Known(u8),
    V4([u8; 4]),
    V6([u8; 16]),
    Mapped([u8; 4]),
}

impl Addr {
    fn ip(&self) -> IpAddr {
        match self {
            Addr::Known(i) => KNOWN[usize::from(*i) % KNOWN.len()].parse().expect("ip"),
            Addr::V4(b) => IpAddr::V4(Ipv4Addr::from(*b)),
            Addr::V6(b) => IpAddr::V6(Ipv6Addr::from(*b)),
            Addr::Mapped(b) => IpAddr::V6(Ipv4Addr::from(*b).to_ipv6_mapped()),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Hop {
    /// An address, with a port or not, in brackets or not (v6 with a port always is).
    Addr {
        addr: Addr,
        port: Option<u16>,
        brackets: bool,
    },
    Garbage(u8),
}

impl Hop {
    /// The spelling and what it means (`None`: unreadable).
    fn render(&self) -> (String, Option<IpAddr>) {
        match self {
            Hop::Addr {
                addr,
                port,
                brackets,
            } => {
                let ip = addr.ip();
                let text = match (ip, port) {
                    (IpAddr::V4(v4), Some(p)) => format!("{v4}:{p}"),
                    (IpAddr::V4(v4), None) => v4.to_string(),
                    (IpAddr::V6(v6), Some(p)) => format!("[{v6}]:{p}"),
                    (IpAddr::V6(v6), None) if *brackets => format!("[{v6}]"),
                    (IpAddr::V6(v6), None) => v6.to_string(),
                };
                (text, Some(ip))
            }
            Hop::Garbage(i) => (GARBAGE[usize::from(*i) % GARBAGE.len()].to_owned(), None),
        }
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    peer: Addr,
    peer_port: u16,
    /// Trusted networks: an address and a prefix length (taken modulo the family's).
    trusted: Vec<(Addr, u8)>,
    chain: Vec<Hop>,
    as_forwarded: bool,
    /// Where the chain is split over two header lines.
    split: u8,
    decoy: Option<Addr>,
    /// Arbitrary header lines, checked on their own.
    raw: Vec<(u8, Vec<u8>)>,
}

fuzz_target!(|input: Input| {
    let peer = SocketAddr::new(input.peer.ip(), input.peer_port);
    let mut trusted: Vec<IpNet> = input
        .trusted
        .iter()
        .take(4)
        .filter_map(|(a, len)| {
            let ip = a.ip().to_canonical();
            let max = if ip.is_ipv4() { 33 } else { 129 };
            IpNet::new(ip, len % max).ok().map(|n| n.trunc())
        })
        .collect();
    // Always trust something the known addresses fall in.
    trusted.push("10.0.0.0/8".parse().expect("net"));
    trusted.push("2001:db8::/126".parse().expect("net"));
    let peer_ip = peer.ip().to_canonical();
    let peer_trusted = trusted.iter().any(|n| n.contains(&peer_ip));

    // 1. A well-formed chain follows the reference walk.
    let hops: Vec<(String, Option<IpAddr>)> =
        input.chain.iter().take(48).map(Hop::render).collect();
    let render = |hs: &[(String, Option<IpAddr>)]| -> String {
        hs.iter()
            .map(|(t, _)| {
                if input.as_forwarded {
                    format!("for=\"{t}\";proto=https")
                } else {
                    t.clone()
                }
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    let at = usize::from(input.split) % (hops.len() + 1);
    let name = if input.as_forwarded {
        "forwarded"
    } else {
        "x-forwarded-for"
    };
    let mut headers = HeaderMap::new();
    let which = if input.as_forwarded {
        ClientIpHeader::Forwarded
    } else {
        ClientIpHeader::XForwardedFor
    };
    if let (Some(decoy), true) = (&input.decoy, input.as_forwarded) {
        // Ignored: only the configured header (Forwarded here) is read.
        let v = HeaderValue::from_str(&decoy.ip().to_string()).expect("ascii");
        headers.append("x-forwarded-for", v);
    }
    for part in [&hops[..at], &hops[at..]] {
        if !part.is_empty() {
            let v = HeaderValue::from_str(&render(part)).expect("ascii");
            headers.append(HeaderName::from_static(name), v);
        }
    }
    let meaning: Vec<Option<IpAddr>> = hops.iter().map(|(_, m)| *m).collect();
    let got = client_addr(peer, &headers, &trusted, which)
        .addr()
        .map(|a| a.0);
    assert_eq!(
        got,
        reference_client(peer.ip(), &meaning, &trusted),
        "{headers:?} from {peer} trusting {trusted:?}"
    );

    // 2. Arbitrary header bytes: the peer or a named address, normalised.
    let mut headers = HeaderMap::new();
    let mut texts = Vec::new();
    for (n, value) in input.raw.iter().take(8) {
        let name = HEADERS[usize::from(*n) % HEADERS.len()].to_ascii_lowercase();
        let Ok(v) = HeaderValue::from_bytes(value) else {
            continue;
        };
        texts.push(String::from_utf8_lossy(value).into_owned());
        headers.append(HeaderName::from_bytes(name.as_bytes()).expect("name"), v);
    }
    let named: HashSet<IpAddr> = texts.iter().flat_map(|t| addresses_in(t)).collect();
    for which in [
        ClientIpHeader::XForwardedFor,
        ClientIpHeader::Forwarded,
        ClientIpHeader::XRealIp,
    ] {
        // Unknown (None) is allowed: it never becomes the proxy's own address.
        let Some(got) = client_addr(peer, &headers, &trusted, which)
            .addr()
            .map(|a| a.0)
        else {
            assert!(peer_trusted, "an untrusted peer's client became unknown");
            continue;
        };
        assert!(
            got == peer_ip || named.contains(&got),
            "client {got} is neither the peer nor named in {headers:?}"
        );
        assert!(
            !matches!(got, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()),
            "{got} not normalised"
        );
        if !peer_trusted {
            assert_eq!(got, peer_ip, "an untrusted peer's headers were believed");
        }
        assert_eq!(
            client_addr(peer, &headers, &[], which).addr().map(|a| a.0),
            Some(peer_ip)
        );
    }
});
