//! Regressions found by probing the running gateway from outside after issue 10 (a hostile
//! or sloppy sender's view).

use std::time::Duration;

use crate::support::{client, gateway::Gateway, raw_exchange, upstream::Upstream, verdict};

/// A route in front of `upstream_url`, with no checks that could refuse the probes.
fn route_to(upstream_url: &str) -> String {
    format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"q\"\npath = \"/q\"\nupstream = \"{upstream_url}\"\n"
    )
}

/// The upstream URL's own query parameters are configuration (often a token, a tenant,
/// an API version). A sender that repeats one of them must not override it: PHP, Rails
/// and many others take the last occurrence, or turn `name[]=` into an array that
/// replaces the value. Such parameters are dropped; the sender's others still pass.
#[tokio::test]
async fn sender_query_cannot_override_upstream_query_parameters() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in?token=abc&v=2"))).await;
    let sent = "token=evil&x=1&v=3&%74oken=evil2&token%5B%5D=evil3&tok+en=ok&v[k]=4&&y";
    let r = client()
        .post(gw.url(&format!("/q?{sent}")))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    let got = up.next().await;
    assert_eq!(got.uri.query(), Some("token=abc&v=2&x=1&tok+en=ok&y"));

    // With no query of its own configured, the sender's passes untouched.
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in"))).await;
    let r = client()
        .post(gw.url("/q?token=a&token=b&&c"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(up.next().await.uri.query(), Some("token=a&token=b&&c"));
}

/// `Transfer-Encoding: gzip, chunked` (or any coding besides one `chunked`) was accepted:
/// hyper undid the chunking and ignored the rest, so a gzip-coded body was judged as if
/// it were the JSON itself. RFC 9112 §6.1: a transfer coding the server does not
/// understand is answered 501, never guessed at.
#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in"))).await;
    for coding in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
        let request = format!(
            "POST /q HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
        );
        let answer = raw_exchange(gw.addr, request.as_bytes(), Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 501 "), "{coding}: {answer}");
        assert!(
            answer.contains("x-hookgate-verdict: bad_request"),
            "{coding}: {answer}"
        );
    }
    // Plain chunked (any case) still works.
    let request = "POST /q HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let answer = raw_exchange(gw.addr, request.as_bytes(), Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("x-hookgate-verdict: forwarded"), "{answer}");
    assert_eq!(&up.next().await.body[..], b"{}");
}
