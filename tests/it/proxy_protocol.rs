//! PROXY protocol v1/v2 from trusted and untrusted peers: the client address comes from
//! the header; anything else from a trusted peer, or a header from an untrusted one,
//! closes the connection and the gateway keeps serving.

use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::raw_exchange;
use crate::support::upstream::Upstream;

async fn gateway(trusted: &str, up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        r#"
[server]
read_timeout = "1s"
proxy_protocol = true
trusted_proxies = ["{trusted}"]
[store]
backend = "memory"
[[route]]
name = "only"
path = "/hooks/only"
allow_ips = ["203.0.113.7"]
upstream = "{}"
[[route]]
name = "any"
path = "/hooks/any"
upstream = "{}"
"#,
        up.url("/only"),
        up.url("/any"),
    ))
    .await
}

const REQUEST: &[u8] = b"POST /hooks/only HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";

fn v2(source: &str) -> Vec<u8> {
    let src: std::net::SocketAddr = source.parse().expect("addr");
    let dst: std::net::SocketAddr = "127.0.0.1:443".parse().expect("addr");
    ppp::v2::Builder::with_addresses(
        ppp::v2::Version::Two | ppp::v2::Command::Proxy,
        ppp::v2::Protocol::Stream,
        (src, dst),
    )
    .build()
    .expect("v2 header")
}

#[tokio::test]
async fn trusted_proxy_names_the_client_in_v1_and_v2() {
    let up = Upstream::start().await;
    let gw = gateway("127.0.0.1/32", &up).await;
    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n".to_vec();
    v1.extend_from_slice(REQUEST);
    let answer = raw_exchange(gw.addr, &v1, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert_eq!(
        up.next().await.headers["x-forwarded-for"],
        "203.0.113.7",
        "the upstream hears of the PROXY source, not the proxy"
    );
    let mut h = v2("203.0.113.7:40000");
    h.extend_from_slice(REQUEST);
    let answer = raw_exchange(gw.addr, &h, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // Another source named by the proxy is not on the allowlist.
    let mut h = v2("198.51.100.1:40000");
    h.extend_from_slice(REQUEST);
    let answer = raw_exchange(gw.addr, &h, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
}

#[tokio::test]
async fn missing_truncated_or_untrusted_headers_close_the_connection() {
    let up = Upstream::start().await;
    let gw = gateway("127.0.0.1/32", &up).await;
    // A trusted peer without a header.
    assert_eq!(
        raw_exchange(gw.addr, REQUEST, Duration::from_secs(3)).await,
        ""
    );
    // Truncated v1 and v2 headers: closed by the read timeout, nothing answered.
    for partial in [&b"PROXY TCP4 203.0.113.7"[..], &v2("203.0.113.7:1")[..20]] {
        assert_eq!(
            raw_exchange(gw.addr, partial, Duration::from_secs(3)).await,
            ""
        );
    }
    // Garbage in a v1 header.
    assert_eq!(
        raw_exchange(
            gw.addr,
            b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n",
            Duration::from_secs(3)
        )
        .await,
        ""
    );
    // Each is counted, and the gateway keeps serving.
    let metrics = raw_exchange(
        gw.addr,
        b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\nGET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        metrics.contains("hookgate_connections_closed_total{reason=\"proxy_header\"} 4"),
        "{metrics}"
    );
    // From an untrusted peer a header is refused, a plain request served.
    let up2 = Upstream::start().await;
    let untrusted = gateway("10.0.0.0/8", &up2).await;
    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n".to_vec();
    v1.extend_from_slice(REQUEST);
    assert_eq!(
        raw_exchange(untrusted.addr, &v1, Duration::from_secs(3)).await,
        ""
    );
    let mut h = v2("203.0.113.7:40000");
    h.extend_from_slice(REQUEST);
    assert_eq!(
        raw_exchange(untrusted.addr, &h, Duration::from_secs(3)).await,
        ""
    );
    let metrics = raw_exchange(
        untrusted.addr,
        b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        Duration::from_secs(3),
    )
    .await;
    assert!(
        metrics.contains("hookgate_connections_closed_total{reason=\"proxy_untrusted\"} 2"),
        "{metrics}"
    );
    let plain = raw_exchange(untrusted.addr, REQUEST, Duration::from_secs(3)).await;
    assert!(plain.starts_with("HTTP/1.1 403"), "{plain}");
    let any = raw_exchange(
        untrusted.addr,
        &REQUEST.to_vec().replace_path(),
        Duration::from_secs(3),
    )
    .await;
    assert!(any.starts_with("HTTP/1.1 200"), "{any}");
    // The trusted gateway still serves a well-formed header.
    let mut v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 40000 443\r\n".to_vec();
    v1.extend_from_slice(REQUEST);
    let answer = raw_exchange(gw.addr, &v1, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

trait ReplacePath {
    fn replace_path(self) -> Vec<u8>;
}

impl ReplacePath for Vec<u8> {
    fn replace_path(self) -> Vec<u8> {
        String::from_utf8(self)
            .expect("ascii")
            .replace("/hooks/only", "/hooks/any")
            .into_bytes()
    }
}
