//! Regressions: client attribution, forwarding headers, loops and upstream answers.

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

/// A gateway behind a trusted proxy (the test itself, on 127.0.0.1) with one route
/// allowlisting `allow`; `extra` goes into `[server]` and `route` into the route.
fn behind_proxy(upstream: &str, allow: &str, extra: &str, route: &str) -> String {
    format!(
        r#"
[server]
trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]
{extra}
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
allow_ips = [{allow}]
upstream = "{upstream}"
{route}
[[route]]
name = "open"
path = "/hooks/open"
upstream = "{upstream}"
{route}
"#
    )
}

async fn post(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(url).body("{}");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("send")
}

/// Defect 1: a sender's own `Forwarded` (or an unreadable hop) passed the allowlist.
#[tokio::test]
async fn allowlist_bypass_through_forwarded() {
    let up = Upstream::start().await;
    // The proxy's own range (127.0.0.0/8) is on the allowlist too: an unreadable hop
    // must not become the proxy's address.
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        "",
        "",
    ))
    .await;
    // The proxy appended the real client to X-Forwarded-For; the sender added Forwarded.
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(verdict(&r), "forbidden_ip");
    // Unreadable hops: the client is unknown, never the proxy.
    for xff in ["unknown", "1.2.3.4 ,, ", "fe80::1%eth0", "_hidden"] {
        let r = post(&gw.url("/hooks/r"), &[("x-forwarded-for", xff)]).await;
        assert_eq!(r.status(), 403, "{xff:?}");
        assert_eq!(verdict(&r), "forbidden_ip", "{xff:?}");
    }
    up.assert_nothing().await;
    // A route without allowlist still serves an unknown client.
    let r = post(&gw.url("/hooks/open"), &[("x-forwarded-for", "unknown")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    up.next().await;
    // The real client named by the configured header passes.
    let r = post(&gw.url("/hooks/r"), &[("x-forwarded-for", "47.94.95.118")]).await;
    assert_eq!(r.status(), 200);
    up.next().await;

    // client_ip_header = "forwarded": now X-Forwarded-For is the sender's.
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        r#"client_ip_header = "forwarded""#,
        "",
    ))
    .await;
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    for fwd in [
        "for=unknown",
        "for=_hidden",
        "proto=https",
        "for=\"[fe80::1%eth0]\"",
    ] {
        let r = post(&gw.url("/hooks/r"), &[("forwarded", fwd)]).await;
        assert_eq!(r.status(), 403, "{fwd:?}");
        assert_eq!(verdict(&r), "forbidden_ip", "{fwd:?}");
    }
    up.assert_nothing().await;
    let r = post(
        &gw.url("/hooks/r"),
        &[("forwarded", "for=47.94.95.118;proto=https, for=10.0.0.3")],
    )
    .await;
    assert_eq!(r.status(), 200);
    up.next().await;

    // client_ip_header = "x-real-ip".
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        r#"client_ip_header = "x-real-ip""#,
        "",
    ))
    .await;
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-for", "47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post(&gw.url("/hooks/r"), &[("x-real-ip", "47.94.95.118")]).await;
    assert_eq!(r.status(), 200);
    up.next().await;
}

/// Defect 1, rate limits: per-address buckets follow the same attribution, and unknown
/// clients share one bucket instead of spending the proxy's.
#[tokio::test]
async fn allowlist_bypass_through_forwarded_rate_limit_attribution() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""0.0.0.0/0""#,
        "",
        "rate_limit = { per_second = 1, burst = 1, per_address = true }",
    ))
    .await;
    let url = gw.url("/hooks/open");
    assert_eq!(
        post(&url, &[("x-forwarded-for", "1.1.1.1")]).await.status(),
        200
    );
    // The same client, whatever a sender writes into Forwarded.
    let r = post(
        &url,
        &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(verdict(&r), "rate_limited");
    assert_eq!(
        post(&url, &[("x-forwarded-for", "2.2.2.2")]).await.status(),
        200
    );
    // Unknown clients: one shared bucket, apart from the proxy's own.
    assert_eq!(
        post(&url, &[("x-forwarded-for", "unknown")]).await.status(),
        200
    );
    let r = post(&url, &[("x-forwarded-for", "_other")]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        post(&url, &[]).await.status(),
        200,
        "the proxy's own bucket"
    );
}
