//! The reverse-proxy half of delivery: which headers go upstream, and the send itself.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::{BodyExt, Full};

use super::client::HttpClient;
use super::target::HttpUpstream;
use super::{BodyDropped, Delivered, DeliveryError, MAX_UPSTREAM_BODY, Outbound};
use crate::pipeline::allowlist::ClientIpHeader;

/// Hop-by-hop headers (RFC 9110 §7.6.1): they describe one connection, never forwarded.
pub const HOP_BY_HOP: &[&str] = &[
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Headers that name the client or its connection to a proxy. A sender can write any
/// of them, so none reaches the upstream verbatim: the configured `client_ip_header` is
/// rewritten (extended from a trusted peer, restarted at the peer otherwise) and every
/// other one is dropped. `X-Forwarded-For` is always set (DESIGN.md §6).
pub const CLIENT_IDENTITY: &[&str] = &[
    "forwarded",
    "x-forwarded-for",
    "x-real-ip",
    "x-client-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-cluster-client-ip",
    "x-original-forwarded-for",
    "x-forwarded",
    "forwarded-for",
    "x-forwarded-by",
];

/// Headers that describe the request as the first proxy saw it (scheme, host, port):
/// passed on from a trusted peer, dropped from any other (`X-Forwarded-Proto` is then
/// set to the scheme the gateway itself received).
pub const PROXY_VIEW: &[&str] = &[
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-forwarded-server",
    "x-forwarded-scheme",
    "x-forwarded-ssl",
    "front-end-https",
];

// The names set on every forwarded request, built at compile time: `from_static` called
// per request validates and looks the name up each time (~150 instructions a name).
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_HOOKGATE_ROUTE: HeaderName = HeaderName::from_static("x-hookgate-route");
const X_HOOKGATE_EVENT_ID: HeaderName = HeaderName::from_static("x-hookgate-event-id");

/// Who the request came from, for the forwarding headers.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    /// The TCP peer.
    pub ip: IpAddr,
    /// Whether it is a trusted proxy.
    pub trusted: bool,
    /// The one header a trusted proxy names the client in.
    pub client_ip_header: ClientIpHeader,
    /// The scheme of the connection to the gateway (`https` on TLS), sent as
    /// `X-Forwarded-Proto` unless a trusted proxy named one.
    pub scheme: &'static str,
}

/// The headers sent upstream: the sender's, minus hop-by-hop headers (and those the
/// `Connection` header names), minus `Host`/`Content-Length` (the client sets its own),
/// minus the credential headers the gateway consumed, plus the forwarding headers.
///
/// The configured client header extends the sender's chain only when the peer is a
/// trusted proxy; from an untrusted peer the chain could be forged, so it restarts at
/// the peer. `X-Forwarded-For` is always sent (restarted unless it is the configured
/// header); the other client-identity headers ([`CLIENT_IDENTITY`]) never pass.
pub fn forward_headers(
    inbound: &HeaderMap,
    consumed: &[HeaderName],
    peer: Peer,
    route: &str,
    event_id: Option<&str>,
) -> HeaderMap {
    // The fixed names are built once per process (see `dropped_names`); only the names a
    // `Connection` header lists are per request, and most requests send none.
    let fixed = dropped_names();
    let connection_named = connection_named(inbound);
    let dropped = |name: &HeaderName| {
        fixed.always.contains(name)
            || consumed.contains(name)
            || (!peer.trusted && fixed.untrusted.contains(name))
            || connection_named.contains(name)
            || name.as_str().starts_with("x-hookgate-")
    };
    let mut out = HeaderMap::with_capacity(inbound.len() + 4);
    for (name, value) in inbound {
        if !dropped(name) {
            out.append(name.clone(), value.clone());
        }
    }
    let configured = peer.client_ip_header.header_name();
    let prior = |name: &HeaderName| -> Option<String> {
        if !peer.trusted || *name != configured {
            return None;
        }
        let chain: Vec<&str> = inbound
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!chain.is_empty()).then(|| chain.join(", "))
    };
    let ip = peer.ip;
    let xff = X_FORWARDED_FOR;
    let xff_value = match prior(&xff) {
        Some(chain) => format!("{chain}, {ip}"),
        None => ip.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff_value) {
        out.insert(xff, v);
    }
    match peer.client_ip_header {
        ClientIpHeader::XForwardedFor => {}
        ClientIpHeader::Forwarded => {
            // RFC 7239 §6: an IPv6 node is quoted and bracketed.
            let hop = match ip {
                IpAddr::V4(v4) => format!("for={v4}"),
                IpAddr::V6(v6) => format!("for=\"[{v6}]\""),
            };
            let value = match prior(&configured) {
                Some(chain) => format!("{chain}, {hop}"),
                None => hop,
            };
            if let Ok(v) = HeaderValue::from_str(&value) {
                out.insert(configured, v);
            }
        }
        // One address, not a chain: a trusted proxy's value stands, else the peer.
        ClientIpHeader::XRealIp => {
            let value = match inbound.get_all(&configured).iter().collect::<Vec<_>>()[..] {
                [one] if peer.trusted => one.clone(),
                _ => HeaderValue::from_str(&ip.to_string())
                    .unwrap_or(HeaderValue::from_static("unknown")),
            };
            out.insert(configured, value);
        }
    }
    let xfp = X_FORWARDED_PROTO;
    if !out.contains_key(&xfp) {
        out.insert(xfp, HeaderValue::from_static(peer.scheme));
    }
    if let Ok(v) = HeaderValue::from_str(route) {
        out.insert(X_HOOKGATE_ROUTE, v);
    }
    if let Some(v) = event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        out.insert(X_HOOKGATE_EVENT_ID, v);
    }
    out
}

/// The header names [`forward_headers`] drops whatever the request, parsed once.
struct DroppedNames {
    /// Hop-by-hop, client identity, `Host`, `Content-Length`, `Via`.
    always: Vec<HeaderName>,
    /// [`PROXY_VIEW`]: dropped unless the peer is a trusted proxy.
    untrusted: Vec<HeaderName>,
}

fn dropped_names() -> &'static DroppedNames {
    static NAMES: std::sync::OnceLock<DroppedNames> = std::sync::OnceLock::new();
    NAMES.get_or_init(|| DroppedNames {
        always: HOP_BY_HOP
            .iter()
            .chain(CLIENT_IDENTITY)
            .map(|h| HeaderName::from_static(h))
            .chain([
                http::header::HOST,
                http::header::CONTENT_LENGTH,
                http::header::VIA,
            ])
            .collect(),
        untrusted: PROXY_VIEW
            .iter()
            .map(|h| HeaderName::from_static(h))
            .collect(),
    })
}

/// The header names `headers`' `Connection` values list (hop-by-hop for this
/// connection only); empty, without allocating, when there is no `Connection` header.
fn connection_named(headers: &HeaderMap) -> Vec<HeaderName> {
    let mut named = Vec::new();
    for v in headers.get_all(http::header::CONNECTION) {
        if let Ok(s) = v.to_str() {
            named.extend(
                s.split(',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
            );
        }
    }
    named
}

/// This process's `Via` pseudonym (RFC 9110 §7.6.3), `hookgate-<16 hex digits>`.
///
/// Random per process, so two gateways chained on purpose do not mistake each other for a
/// loop, while a request that comes back to this one is recognised. The digits come from
/// std's `RandomState`, whose keys the OS random source seeds: the token only has to be
/// unpredictable enough not to collide, and a sender who learns it can do no more than
/// have its own request refused.
pub fn via_pseudonym() -> &'static str {
    static TOKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    TOKEN.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        if let Ok(t) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
            h.write_u128(t.as_nanos());
        }
        format!("hookgate-{:016x}", h.finish())
    })
}

/// Most `Via` entries examined for our token; a longer list is a loop or an attack.
const MAX_VIA_ENTRIES: usize = 64;

/// True when `Via` names this process as a hop already (or is too long to read, which
/// only a runaway loop produces).
pub fn is_looping(inbound: &HeaderMap) -> bool {
    let ours = via_pseudonym();
    let mut seen = 0;
    for value in inbound.get_all(http::header::VIA) {
        // Via is ASCII; a value that is not is not one of ours.
        let Ok(text) = value.to_str() else { continue };
        for entry in text.split(',') {
            seen += 1;
            if seen > MAX_VIA_ENTRIES {
                return true;
            }
            // `[protocol-name "/"] protocol-version RWS received-by [RWS comment]`
            if entry.split_ascii_whitespace().nth(1) == Some(ours) {
                return true;
            }
        }
    }
    false
}

/// Appends this gateway to the `Via` chain sent upstream, after the sender's entries.
pub fn append_via(out: &mut HeaderMap, inbound: &HeaderMap, version: http::Version) {
    let ours = our_via_entry(version);
    let mut chain: Vec<&str> = inbound
        .get_all(http::header::VIA)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    if chain.is_empty() {
        // Most senders send no `Via`: our entry alone, built once per process.
        out.insert(http::header::VIA, ours.clone());
        return;
    }
    let Ok(ours) = ours.to_str() else { return };
    chain.push(ours);
    if let Ok(v) = HeaderValue::from_str(&chain.join(", ")) {
        out.insert(http::header::VIA, v);
    }
}

/// `<protocol-version> hookgate-<token>`, this gateway's `Via` entry for a request
/// received over `version`.
fn our_via_entry(version: http::Version) -> &'static HeaderValue {
    /// One entry per version the server can receive.
    struct Entries {
        v09: HeaderValue,
        v10: HeaderValue,
        v11: HeaderValue,
        v2: HeaderValue,
        v3: HeaderValue,
    }
    static ENTRIES: std::sync::OnceLock<Entries> = std::sync::OnceLock::new();
    let entries = ENTRIES.get_or_init(|| {
        // The pseudonym is `hookgate-` and hex digits: always a valid value.
        let entry = |protocol: &str| {
            HeaderValue::from_str(&format!("{protocol} {}", via_pseudonym()))
                .unwrap_or(HeaderValue::from_static("1.1 hookgate"))
        };
        Entries {
            v09: entry("0.9"),
            v10: entry("1.0"),
            v11: entry("1.1"),
            v2: entry("2"),
            v3: entry("3"),
        }
    });
    match version {
        http::Version::HTTP_09 => &entries.v09,
        http::Version::HTTP_10 => &entries.v10,
        http::Version::HTTP_2 => &entries.v2,
        http::Version::HTTP_3 => &entries.v3,
        _ => &entries.v11,
    }
}

/// The upstream URL's own query followed by the sender's, minus every sender parameter
/// whose name the upstream URL already sets. Those are configuration (a token, a tenant,
/// an API version) and many frameworks let a repeated name win (PHP and Rails take the
/// last one, and turn `name[]` or `name[k]` into an array or hash that replaces it), so
/// a sender could otherwise override them. Names compare decoded (`%74oken` is `token`,
/// `+` is a space) and up to the first `[`.
fn merge_query(configured: Option<&str>, sent: &str) -> String {
    let Some(configured) = configured.filter(|c| !c.is_empty()) else {
        return sent.to_owned();
    };
    let taken: Vec<Vec<u8>> = configured.split('&').map(param_name).collect();
    let mut merged = configured.to_owned();
    for pair in sent.split('&') {
        if !pair.is_empty() && !taken.contains(&param_name(pair)) {
            merged.push('&');
            merged.push_str(pair);
        }
    }
    merged
}

/// The name of one `name=value` query parameter as an application reads it: decoded,
/// and without a PHP/Rails array or hash suffix.
fn param_name(pair: &str) -> Vec<u8> {
    let raw = pair.split_once('=').map_or(pair, |(name, _)| name);
    let mut name: Vec<u8> =
        percent_encoding::percent_decode(raw.replace('+', " ").as_bytes()).collect();
    if let Some(bracket) = name.iter().position(|&b| b == b'[') {
        name.truncate(bracket);
    }
    name
}

pub(super) async fn send(
    client: &HttpClient,
    upstream: &HttpUpstream,
    out: Outbound<'_>,
) -> Result<Delivered, DeliveryError> {
    // One deadline for the answer and its body, as reqwest's request timeout was.
    let deadline = tokio::time::Instant::now() + out.timeout;
    let query = out.query.filter(|q| !q.is_empty());
    let merged = query.map(|q| merge_query(upstream.url().query(), q));
    let mut request = http::Request::new(Full::new(out.body));
    *request.method_mut() = out.method;
    *request.uri_mut() = upstream
        .uri(merged.as_deref())
        .map_err(|e| DeliveryError::Setup(format!("cannot build the upstream URI: {e}")))?;
    *request.headers_mut() = out.headers;
    // Credentials in the upstream URL are sent as `Authorization: Basic`, and the
    // sender's own `Authorization` is replaced: the configured credentials win, and the
    // sender's never travels alongside them.
    if let Some(basic) = upstream.authorization() {
        request
            .headers_mut()
            .insert(http::header::AUTHORIZATION, basic.clone());
    }
    let response = match tokio::time::timeout_at(deadline, client.request(request)).await {
        Ok(answered) => answered.map_err(connect_error)?,
        Err(_) => return Err(DeliveryError::Timeout(out.timeout)),
    };
    let (parts, body) = response.into_parts();
    let status = parts.status;
    // A 1xx as the final answer (101 to a request that asked for no upgrade) or a status
    // outside RFC 9110's 100..=599 cannot be passed back as an answer: the upstream failed.
    if !(200..=599).contains(&status.as_u16()) {
        return Err(DeliveryError::Connect(format!(
            "upstream answered with status {}, not a final answer",
            status.as_u16()
        )));
    }
    let mut headers = answer_headers(&parts.headers);
    let (body, body_dropped) = match read_capped(body, deadline).await {
        Ok(body) => (body, None),
        Err(dropped) => {
            // The body was dropped: labels describing it no longer hold.
            headers.remove(http::header::CONTENT_ENCODING);
            headers.remove(http::header::CONTENT_TYPE);
            tracing::warn!(
                route = out.route,
                status = status.as_u16(),
                reason = dropped.as_str(),
                "Upstream answer body dropped; its status is passed back."
            );
            (Bytes::new(), Some(dropped))
        }
    };
    Ok(Delivered {
        status,
        headers,
        body,
        body_dropped,
    })
}

/// The upstream answer's end-to-end headers (`Location`, `Retry-After`,
/// `Content-Encoding`, ...): hop-by-hop headers and those its `Connection` names are
/// removed, `Content-Length` too (the gateway's server frames the body itself), and so
/// is any `X-Hookgate-*` (the verdict is ours to give).
fn answer_headers(upstream: &HeaderMap) -> HeaderMap {
    let always = &dropped_names().always;
    let hop_by_hop = always.get(..HOP_BY_HOP.len()).unwrap_or(always);
    let connection_named = connection_named(upstream);
    let mut out = HeaderMap::with_capacity(upstream.len());
    for (name, value) in upstream {
        let dropped = hop_by_hop.contains(name)
            || *name == http::header::CONTENT_LENGTH
            || connection_named.contains(name)
            || name.as_str().starts_with("x-hookgate-");
        if !dropped {
            out.append(name.clone(), value.clone());
        }
    }
    out
}

/// The upstream's answer body, at most [`MAX_UPSTREAM_BODY`] bytes, read by `deadline`;
/// why it was dropped otherwise.
///
/// Once the status has arrived the delivery outcome is known: a body that is too large,
/// cut off, or slower than the timeout is dropped and the status stands. Turning a 2xx
/// into a 502 or 504 here would release the event id and have the sender's retry
/// delivered a second time.
async fn read_capped(
    body: hyper::body::Incoming,
    deadline: tokio::time::Instant,
) -> Result<Bytes, BodyDropped> {
    // A declared length over the limit is refused before a byte is read.
    if hyper::body::Body::size_hint(&body).lower() > MAX_UPSTREAM_BODY as u64 {
        return Err(BodyDropped::TooLarge);
    }
    let limited = http_body_util::Limited::new(body, MAX_UPSTREAM_BODY);
    match tokio::time::timeout_at(deadline, limited.collect()).await {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(BodyDropped::TooLarge),
        Ok(Err(_)) => Err(BodyDropped::Incomplete),
        Err(_) => Err(BodyDropped::Timeout),
    }
}

/// A connection-level failure, with its cause chain for the log line (hyper's
/// `Display` names only the outermost step). The URI is not part of it, so credentials
/// in the upstream URL cannot leak.
fn connect_error(e: hyper_util::client::legacy::Error) -> DeliveryError {
    let mut msg = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        src = s.source();
    }
    DeliveryError::Connect(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_hop_by_hop_consumed_and_connection_named() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("close, x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("authorization", HeaderValue::from_static("Bearer t"));
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-hookgate-verdict", HeaderValue::from_static("forged"));
        let out = forward_headers(
            &h,
            &[http::header::AUTHORIZATION],
            peer("1.2.3.4", false, ClientIpHeader::XForwardedFor),
            "r",
            Some("e1"),
        );
        assert!(out.get("connection").is_none());
        assert!(out.get("x-private").is_none());
        assert!(out.get("authorization").is_none());
        assert!(out.get("x-hookgate-verdict").is_none());
        assert_eq!(out["content-type"], "application/json");
        assert_eq!(out["x-forwarded-for"], "1.2.3.4");
        assert_eq!(out["x-forwarded-proto"], "http");
        assert_eq!(out["x-hookgate-route"], "r");
        assert_eq!(out["x-hookgate-event-id"], "e1");
    }

    #[test]
    fn trusted_peer_extends_chain() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert("forwarded", HeaderValue::from_static("for=7.7.7.7"));
        h.insert("x-real-ip", HeaderValue::from_static("7.7.7.7"));
        let out = forward_headers(
            &h,
            &[],
            peer("10.0.0.1", true, ClientIpHeader::XForwardedFor),
            "r",
            None,
        );
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 10.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert!(out.get("x-hookgate-event-id").is_none());
        assert!(out.get("forwarded").is_none(), "not the configured header");
        assert!(out.get("x-real-ip").is_none(), "not the configured header");
    }

    #[test]
    fn configured_forwarded_and_real_ip_are_rewritten() {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("6.6.6.6"));
        h.insert("forwarded", HeaderValue::from_static("for=7.7.7.7"));
        h.insert("x-real-ip", HeaderValue::from_static("8.8.8.8"));
        h.insert("true-client-ip", HeaderValue::from_static("9.9.9.9"));
        let fwd = ClientIpHeader::Forwarded;
        let out = forward_headers(&h, &[], peer("10.0.0.1", true, fwd), "r", None);
        assert_eq!(out["forwarded"], "for=7.7.7.7, for=10.0.0.1");
        assert_eq!(out["x-forwarded-for"], "10.0.0.1");
        assert!(out.get("true-client-ip").is_none());
        let out = forward_headers(&h, &[], peer("::1", false, fwd), "r", None);
        assert_eq!(out["forwarded"], "for=\"[::1]\"");
        let real = ClientIpHeader::XRealIp;
        let out = forward_headers(&h, &[], peer("10.0.0.1", true, real), "r", None);
        assert_eq!(out["x-real-ip"], "8.8.8.8");
        let out = forward_headers(&h, &[], peer("1.2.3.4", false, real), "r", None);
        assert_eq!(out["x-real-ip"], "1.2.3.4");
        assert!(out.get("forwarded").is_none());
    }

    #[test]
    fn answer_keeps_end_to_end_headers_only() {
        let mut h = HeaderMap::new();
        h.insert("connection", HeaderValue::from_static("x-private"));
        h.insert("x-private", HeaderValue::from_static("1"));
        h.insert("transfer-encoding", HeaderValue::from_static("chunked"));
        h.insert("content-length", HeaderValue::from_static("9"));
        h.insert("x-hookgate-verdict", HeaderValue::from_static("forged"));
        h.insert("location", HeaderValue::from_static("/next"));
        h.append("set-cookie", HeaderValue::from_static("a=1"));
        h.append("set-cookie", HeaderValue::from_static("b=2"));
        let out = answer_headers(&h);
        let names: Vec<&str> = out.keys().map(HeaderName::as_str).collect();
        assert_eq!(names, ["location", "set-cookie"]);
        assert_eq!(out.get_all("set-cookie").iter().count(), 2);
    }

    #[test]
    fn via_is_appended_and_our_token_recognised() {
        let mut inbound = HeaderMap::new();
        inbound.append(
            "via",
            HeaderValue::from_static("1.0 fred, 1.1 p.example (x)"),
        );
        inbound.append("via", HeaderValue::from_static("HTTP/2 edge"));
        assert!(!is_looping(&inbound));
        let mut out = HeaderMap::new();
        append_via(&mut out, &inbound, http::Version::HTTP_11);
        let via = out["via"].to_str().expect("ascii").to_owned();
        let ours = format!("1.1 {}", via_pseudonym());
        assert_eq!(
            via,
            format!("1.0 fred, 1.1 p.example (x), HTTP/2 edge, {ours}")
        );
        assert!(is_looping(&out));
        // Without a prior `Via`, our entry alone, per version.
        let mut alone = HeaderMap::new();
        append_via(&mut alone, &HeaderMap::new(), http::Version::HTTP_2);
        assert_eq!(alone["via"], format!("2 {}", via_pseudonym()).as_str());
        assert!(is_looping(&alone));
        // Our name as a comment or a prefix is not our token.
        let mut other = HeaderMap::new();
        let spoof = format!("1.1 proxy ({}), 1.1 {}0", via_pseudonym(), via_pseudonym());
        other.insert("via", HeaderValue::from_str(&spoof).expect("value"));
        assert!(!is_looping(&other));
        // A runaway chain is a loop even without our token.
        let long = vec!["1.1 x"; MAX_VIA_ENTRIES + 1].join(", ");
        other.insert("via", HeaderValue::from_str(&long).expect("value"));
        assert!(is_looping(&other));
    }

    fn peer(ip: &str, trusted: bool, client_ip_header: ClientIpHeader) -> Peer {
        Peer {
            ip: ip.parse().expect("ip"),
            trusted,
            client_ip_header,
            scheme: "http",
        }
    }
}
