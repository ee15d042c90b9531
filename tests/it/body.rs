//! 413 `too_large`, 408 `timeout`, 400 `invalid_json`.

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str) -> String {
    format!(
        r#"
[server]
max_body_bytes = 1024
max_json_depth = 8
read_timeout = "400ms"
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
upstream = "{upstream}"
"#
    )
}

#[tokio::test]
async fn declared_and_streamed_oversize_bodies_are_413() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let big = format!(r#"{{"pad":"{}"}}"#, "x".repeat(2000));
    let r = client()
        .post(gw.url("/hooks/r"))
        .body(big.clone())
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(verdict(&r), "too_large");
    // Chunked, no Content-Length: cut off while streaming.
    let stream = futures_stream(big.into_bytes());
    let r = client()
        .post(gw.url("/hooks/r"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 413);
    assert_eq!(verdict(&r), "too_large");
    // Exactly at the limit passes.
    let exact = format!(r#"{{"pad":"{}"}}"#, "x".repeat(1024 - 10));
    assert_eq!(exact.len(), 1024);
    let r = client()
        .post(gw.url("/hooks/r"))
        .body(exact)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    up.next().await;
    up.assert_nothing().await;
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> + Send + 'static {
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        bytes.chunks(100).map(|c| Ok(c.to_vec())).collect();
    tokio_stream::iter(chunks)
}

#[tokio::test]
async fn slow_body_is_408_timeout() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(b"POST /hooks/r HTTP/1.1\r\nhost: x\r\ncontent-length: 20\r\n\r\n{\"a\"")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(3), s.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "gateway kept the slow connection open");
    let text = String::from_utf8_lossy(&buf);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.to_ascii_lowercase()
            .contains("x-hookgate-verdict: timeout"),
        "{text}"
    );
    up.assert_nothing().await;
}

#[tokio::test]
async fn malformed_bodies_are_400_invalid_json() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"))).await;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("syntax", b"{\"a\":".to_vec()),
        ("empty", Vec::new()),
        ("trailing garbage", b"{} x".to_vec()),
        ("not utf-8", b"{\"a\":\"\xff\xfe\"}".to_vec()),
        ("too deep", b"[[[[[[[[[1]]]]]]]]]".to_vec()),
        (
            "duplicate key",
            br#"{"event_id":"a","n":{"k":1,"\u006b":2}}"#.to_vec(),
        ),
    ];
    for (name, body) in cases {
        let r = client()
            .post(gw.url("/hooks/r"))
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 400, "{name}");
        assert_eq!(verdict(&r), "invalid_json", "{name}");
        let body: serde_json::Value = r.json().await.expect("json");
        assert_eq!(body["route"], "r");
        assert!(body["detail"].is_string(), "{name}");
        if name == "duplicate key" {
            let detail = body["detail"].as_str().unwrap_or_default();
            assert!(detail.contains("duplicate object key \"k\""), "{detail}");
        }
    }
    // Depth exactly at the limit is fine.
    let r = client()
        .post(gw.url("/hooks/r"))
        .body("[[[[[[[[1]]]]]]]]")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    up.next().await;
    up.assert_nothing().await;
}
