//! The reverse-proxy half of delivery: which headers go upstream, and the send itself.

use std::net::IpAddr;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};
use http_body_util::BodyExt;

use super::{Delivered, DeliveryError, MAX_UPSTREAM_BODY, Outbound};

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

/// The headers sent upstream: the sender's, minus hop-by-hop headers (and those the
/// `Connection` header names), minus `Host`/`Content-Length` (the client sets its own),
/// minus the credential headers the gateway consumed, plus the forwarding headers.
///
/// `X-Forwarded-For` extends the sender's chain only when the peer is a trusted proxy;
/// from an untrusted peer the chain could be forged, so it restarts at the peer.
pub fn forward_headers(
    inbound: &HeaderMap,
    consumed: &[HeaderName],
    peer: IpAddr,
    peer_trusted: bool,
    route: &str,
    event_id: Option<&str>,
) -> HeaderMap {
    let mut drop: Vec<HeaderName> = HOP_BY_HOP
        .iter()
        .map(|h| HeaderName::from_static(h))
        .chain([http::header::HOST, http::header::CONTENT_LENGTH])
        .chain(consumed.iter().cloned())
        .collect();
    for v in inbound.get_all(http::header::CONNECTION) {
        if let Ok(s) = v.to_str() {
            drop.extend(
                s.split(',')
                    .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok()),
            );
        }
    }
    let xff = HeaderName::from_static("x-forwarded-for");
    let xfp = HeaderName::from_static("x-forwarded-proto");
    let mut out = HeaderMap::with_capacity(inbound.len() + 4);
    for (name, value) in inbound {
        if drop.contains(name)
            || name == xff
            || name == xfp
            || name.as_str().starts_with("x-hookgate-")
        {
            continue;
        }
        out.append(name.clone(), value.clone());
    }
    let prior = if peer_trusted {
        let chain: Vec<&str> = inbound
            .get_all(&xff)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        (!chain.is_empty()).then(|| chain.join(", "))
    } else {
        None
    };
    let xff_value = match prior {
        Some(chain) => format!("{chain}, {peer}"),
        None => peer.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff_value) {
        out.insert(xff, v);
    }
    let proto = peer_trusted
        .then(|| inbound.get(&xfp).cloned())
        .flatten()
        .unwrap_or(HeaderValue::from_static("http"));
    out.insert(xfp, proto);
    if let Ok(v) = HeaderValue::from_str(route) {
        out.insert(HeaderName::from_static("x-hookgate-route"), v);
    }
    if let Some(v) = event_id.and_then(|id| HeaderValue::from_str(id).ok()) {
        out.insert(HeaderName::from_static("x-hookgate-event-id"), v);
    }
    out
}

pub(super) async fn send(
    client: &reqwest::Client,
    base: &reqwest::Url,
    out: Outbound<'_>,
) -> Result<Delivered, DeliveryError> {
    let mut url = base.clone();
    if let Some(q) = out.query.filter(|q| !q.is_empty()) {
        let merged = match base.query() {
            Some(existing) if !existing.is_empty() => format!("{existing}&{q}"),
            _ => q.to_owned(),
        };
        url.set_query(Some(&merged));
    }
    let response = client
        .request(out.method, url)
        .headers(out.headers)
        .body(out.body)
        .timeout(out.timeout)
        .send()
        .await
        .map_err(|e| classify(e, out.timeout))?;
    let status = response.status();
    let content_type = response.headers().get(http::header::CONTENT_TYPE).cloned();
    let body = read_capped(response).await;
    Ok(Delivered {
        status,
        content_type,
        body,
    })
}

/// The upstream's answer body, at most [`MAX_UPSTREAM_BODY`] bytes.
///
/// Once the status has arrived the delivery outcome is known: a body that is too large,
/// cut off, or slower than the timeout is dropped and the status stands. Turning a 2xx
/// into a 504 here would release the event id and have the sender's retry delivered a
/// second time.
async fn read_capped(response: reqwest::Response) -> Bytes {
    if response
        .content_length()
        .is_some_and(|n| n > MAX_UPSTREAM_BODY as u64)
    {
        return Bytes::new();
    }
    let limited = http_body_util::Limited::new(reqwest::Body::from(response), MAX_UPSTREAM_BODY);
    match limited.collect().await {
        Ok(c) => c.to_bytes(),
        Err(_) => Bytes::new(),
    }
}

fn classify(e: reqwest::Error, timeout: std::time::Duration) -> DeliveryError {
    if e.is_timeout() {
        DeliveryError::Timeout(timeout)
    } else {
        // reqwest's Display hides the cause chain; keep it for the log line. The URL is
        // left out: it may carry credentials (`http://user:pass@host`).
        let e = e.without_url();
        let mut msg = e.to_string();
        let mut src = std::error::Error::source(&e);
        while let Some(s) = src {
            msg.push_str(": ");
            msg.push_str(&s.to_string());
            src = s.source();
        }
        DeliveryError::Unreachable(msg)
    }
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
            "1.2.3.4".parse().expect("ip"),
            false,
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
        let out = forward_headers(&h, &[], "10.0.0.1".parse().expect("ip"), true, "r", None);
        assert_eq!(out["x-forwarded-for"], "6.6.6.6, 10.0.0.1");
        assert_eq!(out["x-forwarded-proto"], "https");
        assert!(out.get("x-hookgate-event-id").is_none());
    }
}
