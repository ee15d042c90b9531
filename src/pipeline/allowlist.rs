//! Source-address checks: which client the request comes from, and whether that address
//! may send to the route.
//!
//! Runs before the body is read: a forbidden sender costs us one header scan, nothing
//! more. The client is the TCP peer unless the peer is a trusted proxy, in which case the
//! one configured forwarding header is walked right to left past every trusted hop (the
//! rightmost untrusted hop is the first address nobody we trust could have forged). What
//! cannot be read makes the client unknown, which no allowlist admits.

use std::net::{IpAddr, SocketAddr};

use http::HeaderMap;
use ipnet::IpNet;

/// The address a request is attributed to, IPv4-mapped IPv6 normalised to IPv4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr(pub IpAddr);

impl std::fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// Parses `"1.2.3.4"`, `"::1"` or a CIDR like `"10.0.0.0/8"` into a network.
pub fn parse_net(text: &str) -> Result<IpNet, String> {
    let t = text.trim();
    if let Ok(net) = t.parse::<IpNet>() {
        return Ok(match net {
            // An IPv4-mapped IPv6 network is the IPv4 network it maps.
            IpNet::V6(v6) => match v6.addr().to_ipv4_mapped() {
                Some(v4) if v6.prefix_len() >= 96 => {
                    IpNet::new(IpAddr::V4(v4), v6.prefix_len() - 96).map_err(|e| e.to_string())?
                }
                _ => net,
            },
            IpNet::V4(_) => net,
        });
    }
    t.parse::<IpAddr>()
        .map(|ip| IpNet::from(ip.to_canonical()))
        .map_err(|_| format!("{text:?} is not an IP address or CIDR"))
}

/// The set of networks a route accepts senders from.
#[derive(Debug, Clone)]
pub struct Allowlist(Vec<IpNet>);

impl Allowlist {
    /// Parses a list of IPs/CIDRs; the error carries the index of the bad entry.
    pub fn parse(entries: &[String]) -> Result<Self, (usize, String)> {
        entries
            .iter()
            .enumerate()
            .map(|(i, e)| parse_net(e).map_err(|err| (i, err)))
            .collect::<Result<Vec<_>, _>>()
            .map(Allowlist)
    }

    /// True when `addr` lies in one of the networks.
    pub fn permits(&self, addr: ClientAddr) -> bool {
        self.0.iter().any(|n| n.contains(&addr.0))
    }

    /// Number of networks listed.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when nothing is allowed.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Most forwarding hops we walk; a longer chain of trusted hops makes the client unknown
/// (bounded work on input, and no guessing past what we did not read).
pub const MAX_HOPS: usize = 32;

pub use crate::config::spec::ClientIpHeader;

/// Who a request is attributed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A known address.
    Addr(ClientAddr),
    /// A trusted proxy forwarded it for a client it could not or would not name
    /// (`for=unknown`, an obfuscated or unparseable hop, a chain too long to walk). Never
    /// the proxy's own address: that would let anyone behind the proxy pass an
    /// allowlist that lists the proxy's range.
    Unknown,
}

impl Client {
    /// The address, when known.
    pub fn addr(self) -> Option<ClientAddr> {
        match self {
            Client::Addr(a) => Some(a),
            Client::Unknown => None,
        }
    }
}

impl std::fmt::Display for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Client::Addr(a) => a.fmt(f),
            Client::Unknown => f.write_str("unknown"),
        }
    }
}

/// Attributes a request to a client.
///
/// The TCP peer is the client unless it is in `trusted`. From a trusted peer only the
/// `header` is read; when it is absent the request came from the proxy itself and the
/// peer is the client. `X-Forwarded-For` and `Forwarded` are walked right to left past
/// trusted hops; the first untrusted hop is the client. A hop we cannot read (`unknown`,
/// an obfuscated identifier, an empty element, an address with a zone) makes the client
/// [`Client::Unknown`]; so does a chain with more than [`MAX_HOPS`] trusted hops. A chain
/// of trusted hops only is attributed to its leftmost hop.
pub fn client_addr(
    peer: SocketAddr,
    headers: &HeaderMap,
    trusted: &[IpNet],
    header: ClientIpHeader,
) -> Client {
    let peer_ip = peer.ip().to_canonical();
    if !is_trusted(peer_ip, trusted) {
        return Client::Addr(ClientAddr(peer_ip));
    }
    let values: Vec<&http::HeaderValue> = headers.get_all(header.header_name()).iter().collect();
    if values.is_empty() {
        return Client::Addr(ClientAddr(peer_ip));
    }
    let Some(hops) = hops(header, &values) else {
        return Client::Unknown;
    };
    let mut current = peer_ip;
    for (walked, hop) in hops.into_iter().rev().enumerate() {
        if walked == MAX_HOPS {
            return Client::Unknown;
        }
        match hop {
            Some(ip) => {
                current = ip.to_canonical();
                if !is_trusted(current, trusted) {
                    break;
                }
            }
            None => return Client::Unknown,
        }
    }
    Client::Addr(ClientAddr(current))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The hops the header names, left to right; `None` for one we cannot parse. `None`
/// overall when the header as a whole cannot be read (not ASCII, or several `X-Real-IP`).
fn hops(header: ClientIpHeader, values: &[&http::HeaderValue]) -> Option<Vec<Option<IpAddr>>> {
    let mut texts = Vec::with_capacity(values.len());
    for v in values {
        texts.push(v.to_str().ok()?);
    }
    Some(match header {
        ClientIpHeader::XForwardedFor => texts
            .iter()
            .flat_map(|s| s.split(',').map(|h| parse_hop(h.trim())))
            .collect(),
        ClientIpHeader::Forwarded => texts
            .iter()
            .flat_map(|s| {
                s.split(',').map(|elem| {
                    elem.split(';')
                        .find_map(|pair| {
                            let (k, v) = pair.trim().split_once('=')?;
                            k.trim().eq_ignore_ascii_case("for").then_some(v)
                        })
                        .and_then(parse_forwarded_for)
                })
            })
            .collect(),
        // One address, set by the proxy; two lines mean someone else set one too.
        ClientIpHeader::XRealIp => match texts.as_slice() {
            [one] => vec![parse_hop(one.trim())],
            _ => return None,
        },
    })
}

/// `for=` values: `192.0.2.1`, `"[2001:db8::1]:4711"`, `"192.0.2.1:80"`.
fn parse_forwarded_for(v: &str) -> Option<IpAddr> {
    parse_hop(v.trim().trim_matches('"'))
}

/// One hop: a bare IP, `[v6]`, `[v6]:port` or `v4:port`.
fn parse_hop(h: &str) -> Option<IpAddr> {
    if let Ok(ip) = h.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Some(rest) = h.strip_prefix('[') {
        let inner = rest.split(']').next()?;
        return inner.parse().ok();
    }
    h.parse::<SocketAddr>().ok().map(|s| s.ip())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|s| parse_net(s).expect("net")).collect()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        h
    }

    fn peer(s: &str) -> SocketAddr {
        s.parse().expect("peer")
    }

    const XFF: ClientIpHeader = ClientIpHeader::XForwardedFor;

    fn known(s: &str) -> Client {
        Client::Addr(ClientAddr(s.parse().expect("ip")))
    }

    #[test]
    fn untrusted_peer_headers_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let c = client_addr(peer("9.9.9.9:1"), &h, &nets(&["10.0.0.0/8"]), XFF);
        assert_eq!(c, known("9.9.9.9"));
    }

    #[test]
    fn walks_right_to_left_past_trusted_hops() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let c = client_addr(peer("10.0.0.1:1"), &h, &nets(&["10.0.0.0/8"]), XFF);
        assert_eq!(c, known("1.2.3.4"));
    }

    #[test]
    fn only_the_configured_header_is_read() {
        let h = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=47.94.95.118"),
            ("x-real-ip", "47.94.95.119"),
        ]);
        let t = nets(&["10.0.0.0/8"]);
        let p = peer("10.0.0.1:1");
        assert_eq!(client_addr(p, &h, &t, XFF), known("6.6.6.6"));
        assert_eq!(
            client_addr(p, &h, &t, ClientIpHeader::Forwarded),
            known("47.94.95.118")
        );
        assert_eq!(
            client_addr(p, &h, &t, ClientIpHeader::XRealIp),
            known("47.94.95.119")
        );
        // Absent header: the proxy itself is the client.
        assert_eq!(
            client_addr(p, &HeaderMap::new(), &t, XFF),
            known("10.0.0.1")
        );
    }

    #[test]
    fn unreadable_hops_make_the_client_unknown() {
        let t = nets(&["10.0.0.0/8"]);
        let p = peer("10.0.0.1:1");
        for (name, value, header) in [
            ("x-forwarded-for", "1.2.3.4, unknown", XFF),
            ("x-forwarded-for", "1.2.3.4 ,, ", XFF),
            ("x-forwarded-for", "fe80::1%eth0", XFF),
            ("forwarded", "for=unknown", ClientIpHeader::Forwarded),
            ("forwarded", "for=_hidden", ClientIpHeader::Forwarded),
            ("forwarded", "proto=https", ClientIpHeader::Forwarded),
            ("x-real-ip", "nope", ClientIpHeader::XRealIp),
        ] {
            let h = headers(&[(name, value)]);
            assert_eq!(client_addr(p, &h, &t, header), Client::Unknown, "{value}");
        }
        let two = headers(&[("x-real-ip", "1.2.3.4"), ("x-real-ip", "5.6.7.8")]);
        assert_eq!(
            client_addr(p, &two, &t, ClientIpHeader::XRealIp),
            Client::Unknown
        );
        let long = vec!["10.0.0.9"; MAX_HOPS + 1].join(", ");
        let h = headers(&[("x-forwarded-for", long.as_str())]);
        assert_eq!(client_addr(p, &h, &t, XFF), Client::Unknown);
    }

    #[test]
    fn forwarded_header_parses_ports_and_v6() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3",
            ),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        let c = client_addr(
            peer("10.0.0.1:1"),
            &h,
            &nets(&["10.0.0.0/8"]),
            ClientIpHeader::Forwarded,
        );
        assert_eq!(c, known("2001:db8::1"));
    }

    #[test]
    fn ipv4_mapped_is_normalised() {
        let c = client_addr(peer("[::ffff:1.2.3.4]:5"), &HeaderMap::new(), &[], XFF);
        assert_eq!(c, known("1.2.3.4"));
        let list = Allowlist::parse(&["::ffff:1.2.3.0/120".to_owned()]).expect("list");
        assert!(c.addr().is_some_and(|a| list.permits(a)));
    }

    #[test]
    fn allowlist_v4_v6_and_errors() {
        let list =
            Allowlist::parse(&["47.94.95.118".into(), "2001:db8::/32".into()]).expect("list");
        assert!(list.permits(ClientAddr("47.94.95.118".parse().expect("ip"))));
        assert!(!list.permits(ClientAddr("47.94.95.119".parse().expect("ip"))));
        assert!(list.permits(ClientAddr("2001:db8::5".parse().expect("ip"))));
        assert_eq!(
            Allowlist::parse(&["1.2.3.4".into(), "1.2.3/8".into()])
                .err()
                .map(|e| e.0),
            Some(1)
        );
    }
}
