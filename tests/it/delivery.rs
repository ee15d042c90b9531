//! `forwarded` and `upstream_error`: exactly what reaches the upstream, and what comes back.

use std::time::Duration;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str, timeout: &str) -> String {
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "proxy"
path = "/hooks/proxy"
methods = ["POST", "PUT"]
upstream = "{upstream}"
upstream_timeout = "{timeout}"
"#
    )
}

#[tokio::test]
async fn forwards_method_bytes_and_headers() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/internal/flashduty?src=gw"), "5s")).await;
    // Odd spacing, key order and unicode escapes must survive byte for byte.
    let body = "{ \"z\":1,\n  \"a\" : \"\\u00e9t\u{e9}\", \"n\": 1.50e2 }\n";
    let r = client()
        .put(gw.url("/hooks/proxy?a=a"))
        .header("content-type", "application/json")
        .header("x-customize-header-a", "a")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "1")
        .header("keep-alive", "timeout=5")
        .header("x-hookgate-route", "forged")
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.expect("text"), r#"{"upstream":"ok"}"#);

    let got = up.next().await;
    assert_eq!(got.method, "PUT");
    assert_eq!(got.uri.path(), "/internal/flashduty");
    assert_eq!(got.uri.query(), Some("src=gw&a=a"));
    assert_eq!(&got.body[..], body.as_bytes());
    assert_eq!(got.headers["content-type"], "application/json");
    assert_eq!(got.headers["x-customize-header-a"], "a");
    assert_eq!(got.headers["x-forwarded-for"], "127.0.0.1");
    assert_eq!(got.headers["x-forwarded-proto"], "http");
    assert_eq!(got.headers["x-hookgate-route"], "proxy");
    assert!(got.headers.get("x-hop").is_none());
    assert!(got.headers.get("keep-alive").is_none());
    assert_eq!(got.headers["content-length"], body.len().to_string());
    assert_eq!(got.headers["host"], up.addr.to_string());
}

#[tokio::test]
async fn upstream_status_and_body_are_passed_back() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), "5s")).await;
    for status in [201u16, 404, 500, 503] {
        up.set_status(status);
        let r = client()
            .post(gw.url("/hooks/proxy"))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), status);
        assert_eq!(verdict(&r), "forwarded");
        assert_eq!(r.text().await.expect("text"), r#"{"upstream":"ok"}"#);
        up.next().await;
    }
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    // Bind then drop a listener: the port is closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let gw = Gateway::start(&config(&format!("http://127.0.0.1:{port}/x"), "2s")).await;
    let r = client()
        .post(gw.url("/hooks/proxy"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 502);
    assert_eq!(verdict(&r), "upstream_error");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["verdict"], "upstream_error");
    assert_eq!(body["route"], "proxy");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(1500));
    let gw = Gateway::start(&config(&up.url("/in"), "300ms")).await;
    let r = client()
        .post(gw.url("/hooks/proxy"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 504);
    assert_eq!(verdict(&r), "upstream_error");
}

#[tokio::test]
async fn file_upstream_appends_one_json_line_per_event() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("sub/delivered.jsonl");
    let gw = Gateway::start(&config(&format!("file://{}", path.display()), "5s")).await;
    for body in ["{\n \"b\": 2,\n \"a\": \"x y\" }", "[1, 2]"] {
        let r = client()
            .post(gw.url("/hooks/proxy"))
            .body(body)
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        assert_eq!(verdict(&r), "forwarded");
    }
    let text = std::fs::read_to_string(&path).expect("sink file");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    let first: serde_json::Value = serde_json::from_str(lines[0]).expect("line 1 is JSON");
    assert_eq!(first["route"], "proxy");
    assert_eq!(first["client"], "127.0.0.1");
    assert_eq!(first["body"]["a"], "x y");
    assert!(
        lines[0].ends_with(r#""body":{"b":2,"a":"x y"}}"#),
        "{}",
        lines[0]
    );
    let second: serde_json::Value = serde_json::from_str(lines[1]).expect("line 2 is JSON");
    assert_eq!(second["body"], serde_json::json!([1, 2]));
}

#[tokio::test]
async fn shutdown_drains_in_flight_requests() {
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(600));
    let mut gw = Gateway::start(&config(&up.url("/in"), "5s")).await;
    let url = gw.url("/hooks/proxy");
    let in_flight = tokio::spawn(async move { client().post(url).body("{}").send().await });
    // Shut down only once the request is at the upstream: a fixed sleep raced the
    // connect under load and the test then saw a refused connection, not a drain.
    up.wait_arrivals(1).await;
    let done = gw.begin_shutdown();
    let r = in_flight
        .await
        .expect("join")
        .expect("in-flight request answered");
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    tokio::time::timeout(Duration::from_secs(5), done)
        .await
        .expect("drained")
        .expect("join");
    // Stopped accepting.
    assert!(tokio::net::TcpStream::connect(gw.addr).await.is_err());
}

/// An upstream answer body over the relay limit (1 MiB) is dropped, not the answer: the
/// status and headers go back with `X-Hookgate-Body-Dropped: too_large`, whether the
/// upstream declared the length or streamed the body (README "Forwarding").
#[tokio::test]
async fn oversized_upstream_answer_keeps_its_status_and_says_the_body_was_dropped() {
    use axum::response::IntoResponse;
    const LIMIT: usize = 1024 * 1024;
    async fn answer(uri: http::Uri) -> axum::response::Response {
        let headers = [("content-type", "text/plain"), ("x-custom", "kept")];
        match uri.path() {
            "/declared" => {
                (http::StatusCode::CREATED, headers, vec![b'x'; LIMIT + 1]).into_response()
            }
            "/streamed" => {
                let chunk = bytes::Bytes::from(vec![b'x'; 64 * 1024]);
                let chunks = (0..=LIMIT / chunk.len())
                    .map(move |_| Ok::<_, std::convert::Infallible>(chunk.clone()));
                let body = axum::body::Body::from_stream(tokio_stream::iter(chunks));
                (http::StatusCode::ACCEPTED, headers, body).into_response()
            }
            _ => (headers, vec![b'x'; LIMIT]).into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let up = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, axum::Router::new().fallback(answer)).await;
    });
    let mut config = String::from("[store]\nbackend = \"memory\"\n");
    for name in ["declared", "streamed", "limit"] {
        config.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath = \"/hooks/{name}\"\nupstream = \"http://{up}/{name}\"\n"
        ));
    }
    let gw = Gateway::start(&config).await;
    for (name, status) in [("declared", 201), ("streamed", 202)] {
        let r = client()
            .post(gw.url(&format!("/hooks/{name}")))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status().as_u16(), status, "{name}");
        assert_eq!(verdict(&r), "forwarded");
        assert_eq!(
            r.headers()["x-hookgate-body-dropped"],
            "too_large",
            "{name}"
        );
        assert_eq!(r.headers()["x-custom"], "kept");
        // The type described the dropped body.
        assert!(r.headers().get("content-type").is_none(), "{name}");
        assert!(r.bytes().await.expect("body").is_empty(), "{name}");
    }
    // Exactly the limit passes, unmarked.
    let r = client()
        .post(gw.url("/hooks/limit"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert!(r.headers().get("x-hookgate-body-dropped").is_none());
    assert_eq!(r.bytes().await.expect("body").len(), LIMIT);
}
