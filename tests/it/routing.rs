//! 404, 405, health, and that body-less rejections never wait for the body.

use std::time::{Duration, Instant};

use crate::support::{client, gateway::Gateway, raw_exchange, upstream::Upstream, verdict};

fn config(upstream: &str) -> String {
    format!(
        r#"
[server]
read_timeout = "5s"
[store]
backend = "memory"
[[route]]
name = "only-post"
path = "/hooks/a"
methods = ["POST", "put"]
upstream = "{upstream}"
"#
    )
}

#[tokio::test]
async fn unknown_path_is_404_no_route() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let r = client()
        .post(gw.url("/hooks/nope"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 404);
    assert_eq!(verdict(&r), "no_route");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["verdict"], "no_route");
    assert_eq!(body["route"], serde_json::Value::Null);
    up.assert_nothing().await;
}

#[tokio::test]
async fn wrong_method_is_405_with_allow() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let r = client().get(gw.url("/hooks/a")).send().await.expect("send");
    assert_eq!(r.status(), 405);
    assert_eq!(verdict(&r), "method_not_allowed");
    assert_eq!(r.headers()["allow"], "POST, PUT");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["route"], "only-post");
    up.assert_nothing().await;
}

#[tokio::test]
async fn health_endpoint_answers() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let r = client().get(gw.url("/healthz")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let r = client().get(gw.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 200);
}

/// A request announcing a 1 MB body but sending none: if the gateway read the body
/// before deciding, it would wait for the 5 s read timeout and answer 408.
#[tokio::test]
async fn bodyless_rejections_do_not_read_the_body() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    for (line, expect) in [
        ("POST /hooks/nope HTTP/1.1", "404"),
        ("DELETE /hooks/a HTTP/1.1", "405"),
    ] {
        let started = Instant::now();
        let req = format!("{line}\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n");
        let answer = raw_exchange(gw.addr, req.as_bytes(), Duration::from_secs(3)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {expect}")),
            "{answer}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "waited for the body"
        );
    }
}

/// An early answer must reach the sender even though its body was never used: closing
/// a socket with unread bytes resets it, and the sender would see an error instead.
#[tokio::test]
async fn early_rejection_with_small_body_is_not_reset() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let body = format!(r#"{{"pad":"{}"}}"#, "x".repeat(30_000));
    for i in 0..30 {
        // A fresh connection each time, so every answer comes with a close.
        let c = client();
        let r = c
            .post(gw.url("/hooks/nope"))
            .body(body.clone())
            .send()
            .await;
        let r = r.unwrap_or_else(|e| panic!("attempt {i}: {e:?}"));
        assert_eq!(r.status(), 404);
    }
}
