//! Source-address checks: which client the request comes from, and whether that address
//! may send to the route.
//!
//! Runs before the body is read: a forbidden sender costs us one header scan, nothing
//! more. The client is the TCP peer unless the peer is a trusted proxy, in which case the
//! forwarding headers are walked right to left past every trusted hop (the rightmost
//! untrusted hop is the first address nobody we trust could have forged).

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

/// Most forwarding hops we walk; a longer chain is cut there (bounded work on input).
const MAX_HOPS: usize = 32;

/// Attributes a request to a client address.
///
/// Forwarding headers are read only when the TCP peer is in `trusted`. `Forwarded`
/// (RFC 7239) wins over `X-Forwarded-For` when both are present. Walking right to left,
/// trusted hops are skipped; the first untrusted hop is the client. An unparseable hop
/// (e.g. `unknown` or an obfuscated identifier) stops the walk and the last address we
/// could believe is used: we never guess past something we cannot read.
pub fn client_addr(peer: SocketAddr, headers: &HeaderMap, trusted: &[IpNet]) -> ClientAddr {
    let mut current = peer.ip().to_canonical();
    if !is_trusted(current, trusted) {
        return ClientAddr(current);
    }
    let hops = forwarded_hops(headers);
    for hop in hops.into_iter().rev().take(MAX_HOPS) {
        match hop {
            Some(ip) => {
                current = ip.to_canonical();
                if !is_trusted(current, trusted) {
                    break;
                }
            }
            None => break,
        }
    }
    ClientAddr(current)
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    trusted.iter().any(|n| n.contains(&ip))
}

/// The hops of the forwarding headers, left to right; `None` for one we cannot parse.
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let forwarded: Vec<_> = headers.get_all(http::header::FORWARDED).iter().collect();
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .flat_map(|v| {
                let s = v.to_str().unwrap_or("");
                s.split(',')
                    .map(|elem| {
                        elem.split(';')
                            .find_map(|pair| {
                                let (k, v) = pair.trim().split_once('=')?;
                                k.eq_ignore_ascii_case("for").then_some(v)
                            })
                            .and_then(parse_forwarded_for)
                    })
                    .collect::<Vec<_>>()
            })
            .collect();
    }
    headers
        .get_all("x-forwarded-for")
        .iter()
        .flat_map(|v| {
            v.to_str()
                .unwrap_or("")
                .split(',')
                .map(|h| parse_hop(h.trim()))
                .collect::<Vec<_>>()
        })
        .collect()
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

    #[test]
    fn untrusted_peer_headers_ignored() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4")]);
        let c = client_addr(peer("9.9.9.9:1"), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.0, "9.9.9.9".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn walks_right_to_left_past_trusted_hops() {
        let h = headers(&[("x-forwarded-for", "6.6.6.6, 1.2.3.4, 10.0.0.2")]);
        let c = client_addr(peer("10.0.0.1:1"), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.0, "1.2.3.4".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn forwarded_header_wins_and_parses_ports_and_v6() {
        let h = headers(&[
            (
                "forwarded",
                "for=\"[2001:db8::1]:4711\";proto=https, for=10.0.0.3",
            ),
            ("x-forwarded-for", "7.7.7.7"),
        ]);
        let c = client_addr(peer("10.0.0.1:1"), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.0, "2001:db8::1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn garbage_hop_stops_at_last_believable_address() {
        let h = headers(&[("x-forwarded-for", "1.2.3.4, unknown")]);
        let c = client_addr(peer("10.0.0.1:1"), &h, &nets(&["10.0.0.0/8"]));
        assert_eq!(c.0, "10.0.0.1".parse::<IpAddr>().expect("ip"));
    }

    #[test]
    fn ipv4_mapped_is_normalised() {
        let c = client_addr(peer("[::ffff:1.2.3.4]:5"), &HeaderMap::new(), &[]);
        assert_eq!(c.0, "1.2.3.4".parse::<IpAddr>().expect("ip"));
        let list = Allowlist::parse(&["::ffff:1.2.3.0/120".to_owned()]).expect("list");
        assert!(list.permits(c));
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
