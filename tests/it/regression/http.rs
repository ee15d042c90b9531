//! Regressions: the HTTP exchange itself (hang-ups, `Expect`, answers without a verdict).

use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{client, gateway::Gateway, raw_exchange, upstream::Upstream, verdict};

/// A sync route with dedup and ordering in front of `upstream`.
fn ordered_config(upstream: &Upstream) -> String {
    format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"t\"\npath = \"/t\"\nupstream = \"{}\"\ndedup_key = \"/id\"\norder_key = \"/entity\"\norder_time = \"/t\"\n",
        upstream.url("/in")
    )
}

fn post(path: &str, body: &str, extra: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Defect 2: a sender that hangs up (here with a reset, as a timed-out client does) while
/// the upstream is still working must not cancel the delivery: the id and the entity stay
/// in flight until the upstream answers, so the sender's retry is not forwarded a second
/// time and a newer event of the entity does not overtake the older one.
#[tokio::test]
async fn hang_up_mid_delivery_does_not_cancel_it() {
    let upstream = Upstream::start().await;
    upstream.set_delay(Duration::from_millis(600));
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let first = r#"{"id":"e1","entity":"x","t":1}"#;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(&post("/t", first, "")).await.expect("write");
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.set_zero_linger().expect("linger");
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;

    let c = client();
    let retry = {
        let (c, url) = (c.clone(), gw.url("/t"));
        tokio::spawn(async move { c.post(url).body(first).send().await.expect("retry") })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    let newer = {
        let (c, url) = (c.clone(), gw.url("/t"));
        tokio::spawn(async move {
            c.post(url)
                .body(r#"{"id":"e2","entity":"x","t":2}"#)
                .send()
                .await
                .expect("newer")
        })
    };
    let retry = retry.await.expect("join");
    assert!(
        matches!(verdict(&retry).as_str(), "duplicate" | "in_flight"),
        "the retry of a delivery still at the upstream was {} {}",
        retry.status(),
        verdict(&retry)
    );
    let newer = newer.await.expect("join");
    assert_eq!(newer.status(), 200);
    assert_eq!(verdict(&newer), "forwarded");
    let got = upstream.next().await;
    assert_eq!(&got.body[..], first.as_bytes(), "the older event first");
    let got = upstream.next().await;
    assert!(std::str::from_utf8(&got.body).expect("utf8").contains("e2"));
    upstream.assert_nothing().await;
}

/// Defect 2, at shutdown: a delivery whose sender hung up still settles before the
/// gateway stops (and closes its store); it is neither cancelled nor abandoned.
#[tokio::test]
async fn shutdown_drains_deliveries_whose_sender_hung_up() {
    let upstream = Upstream::start().await;
    upstream.set_delay(Duration::from_millis(500));
    let mut gw = Gateway::start(&ordered_config(&upstream)).await;
    let body = r#"{"id":"s1","entity":"s","t":1}"#;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(&post("/t", body, "")).await.expect("write");
    tokio::time::sleep(Duration::from_millis(150)).await;
    s.set_zero_linger().expect("linger");
    drop(s);
    tokio::time::sleep(Duration::from_millis(20)).await;
    tokio::time::timeout(Duration::from_secs(5), gw.begin_shutdown())
        .await
        .expect("drained")
        .expect("join");
    assert_eq!(
        upstream.count_now().await,
        1,
        "shutdown returned before the delivery settled"
    );
}

/// Defect 2, below the socket: whatever drops the request future (a hang-up hyper
/// notices, a layer's timeout) must not cancel a delivery that has started. The router
/// is driven directly and its future dropped while the upstream is still working.
#[tokio::test]
async fn dropped_request_does_not_cancel_its_delivery() {
    use tower::ServiceExt as _;
    let upstream = Upstream::start().await;
    upstream.set_delay(Duration::from_millis(400));
    let settings = hookgate::config::from_str(&ordered_config(&upstream), "test").expect("config");
    let app = hookgate::server::router(hookgate::build(settings).expect("gateway"));
    let request = |body: &'static str| {
        let mut req = http::Request::post("/t")
            .header("host", "gw")
            .body(axum::body::Body::from(body))
            .expect("request");
        let peer: std::net::SocketAddr = "127.0.0.1:1".parse().expect("peer");
        req.extensions_mut()
            .insert(axum::extract::ConnectInfo(peer));
        req
    };
    let first = r#"{"id":"d1","entity":"z","t":1}"#;
    let cut = tokio::time::timeout(
        Duration::from_millis(150),
        app.clone().oneshot(request(first)),
    )
    .await;
    assert!(cut.is_err(), "the request was still at the upstream");
    let retry = app.oneshot(request(first)).await.expect("infallible");
    let retried = retry
        .headers()
        .get("x-hookgate-verdict")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    assert!(
        matches!(retried.as_str(), "duplicate" | "in_flight"),
        "the retry of a delivery still at the upstream was {} {retried}",
        retry.status()
    );
    assert_eq!(&upstream.next().await.body[..], first.as_bytes());
    upstream.assert_nothing().await;
}

/// Defect 2, the gentle variant: a sender that half-closes its write side after the
/// request (`shutdown(SHUT_WR)`) still reads the answer.
#[tokio::test]
async fn half_closed_sender_still_gets_its_answer() {
    let upstream = Upstream::start().await;
    upstream.set_delay(Duration::from_millis(200));
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let body = r#"{"id":"h1","entity":"y","t":1}"#;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(&post("/t", body, "")).await.expect("write");
    s.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "answer: {answer:?}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-hookgate-verdict: forwarded"),
        "answer: {answer:?}"
    );
    assert_eq!(&upstream.next().await.body[..], body.as_bytes());
    upstream.assert_nothing().await;
}

/// Routes that refuse on the headers alone: credentials, address, rate limit, method.
fn refusing_config(upstream: &Upstream) -> String {
    let up = upstream.url("/in");
    format!(
        r#"[store]
backend = "memory"
[[route]]
name = "auth"
path = "/auth"
upstream = "{up}"
auth = {{ type = "bearer", tokens = ["t0ken"] }}
[[route]]
name = "ip"
path = "/ip"
upstream = "{up}"
allow_ips = ["192.0.2.1"]
[[route]]
name = "limited"
path = "/limited"
upstream = "{up}"
rate_limit = {{ per_second = 1, burst = 1 }}
"#
    )
}

/// Sends `request` and returns what arrives within `wait` of the first byte read.
async fn first_answer(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = vec![0u8; 4096];
    match tokio::time::timeout(wait, s.read(&mut buf)).await {
        Ok(Ok(n)) => String::from_utf8_lossy(&buf[..n]).into_owned(),
        _ => String::new(),
    }
}

/// Defect 9: a request with `Expect: 100-continue` refused on its headers (401, 403, 404,
/// 405, 429) is answered at once, without `100 Continue` first and without waiting for
/// the body it never asked for.
#[tokio::test]
async fn expect_continue_refusals_do_not_invite_the_body() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&refusing_config(&upstream)).await;
    // Use up the rate limit's only token.
    let r = client()
        .post(gw.url("/limited"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    let _ = upstream.next().await;
    for (method, path, status, expected) in [
        ("POST", "/auth", 401, "unauthorized"),
        ("POST", "/ip", 403, "forbidden_ip"),
        ("POST", "/nowhere", 404, "no_route"),
        ("GET", "/auth", 405, "method_not_allowed"),
        ("POST", "/limited", 429, "rate_limited"),
    ] {
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n"
        );
        // Well under DISCARD_MAX_WAIT (1 s): the answer must not wait for a body.
        let answer = first_answer(gw.addr, request.as_bytes(), Duration::from_millis(600)).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{method} {path}: {answer:?}"
        );
        assert!(
            answer
                .to_ascii_lowercase()
                .contains(&format!("x-hookgate-verdict: {expected}")),
            "{method} {path}: {answer:?}"
        );
    }
    upstream.assert_nothing().await;
}

/// The status line, the headers (lower-cased) and the body of a raw HTTP/1.1 answer.
fn split_answer(answer: &str) -> (String, String, serde_json::Value) {
    let (head, body) = answer.split_once("\r\n\r\n").unwrap_or((answer, ""));
    let (status, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let json = serde_json::from_str(body).unwrap_or(serde_json::Value::Null);
    (status.to_owned(), headers.to_ascii_lowercase(), json)
}

/// Asserts a raw answer is `status` with verdict `expected` in header and JSON body.
fn assert_answer(answer: &str, status: &str, expected: &str) {
    let (line, headers, body) = split_answer(answer);
    assert!(
        line.starts_with(&format!("HTTP/1.1 {status}")),
        "{answer:?}"
    );
    assert!(
        headers.contains(&format!("x-hookgate-verdict: {expected}")),
        "{answer:?}"
    );
    assert_eq!(body["verdict"], expected, "{answer:?}");
}

/// Defect 10: answers the gateway gave without `X-Hookgate-Verdict`: other methods on
/// the health endpoints, `/metrics` when disabled, and hyper's own 400 (a folded header),
/// 414 (a long request target) and 431 (too many headers).
#[tokio::test]
async fn every_answer_carries_a_verdict() {
    let upstream = Upstream::start().await;
    let config = format!("[server]\nmetrics = false\n{}", ordered_config(&upstream));
    let gw = Gateway::start(&config).await;
    let wait = Duration::from_secs(3);
    for (method, path) in [("POST", "/healthz"), ("DELETE", "/readyz")] {
        let answer = raw_exchange(
            gw.addr,
            format!("{method} {path} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").as_bytes(),
            wait,
        )
        .await;
        assert_answer(&answer, "405", "method_not_allowed");
        let (_, headers, _) = split_answer(&answer);
        assert!(headers.contains("allow: get, head"), "{answer:?}");
    }
    let answer = raw_exchange(
        gw.addr,
        b"GET /metrics HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n",
        wait,
    )
    .await;
    assert_answer(&answer, "404", "no_route");

    let folded = post(
        "/t",
        r#"{"id":"f1","entity":"f","t":1}"#,
        "X-Folded: a\r\n b\r\n",
    );
    assert_answer(
        &raw_exchange(gw.addr, &folded, wait).await,
        "400",
        "bad_request",
    );
    let long = format!(
        "POST /t?{} HTTP/1.1\r\nHost: gw\r\nContent-Length: 0\r\n\r\n",
        "a".repeat(70_000)
    );
    assert_answer(
        &raw_exchange(gw.addr, long.as_bytes(), wait).await,
        "414",
        "bad_request",
    );
    let many: String = (0..120).map(|i| format!("X-H{i}: v\r\n")).collect();
    let crowded = post("/t", r#"{"id":"f2","entity":"f","t":1}"#, &many);
    assert_answer(
        &raw_exchange(gw.addr, &crowded, wait).await,
        "431",
        "bad_request",
    );
    upstream.assert_nothing().await;
}

/// RFC 9112 §3.2: an HTTP/1.1 request without `Host`, or with two, is refused with 400
/// `bad_request` and not delivered.
#[tokio::test]
async fn http11_request_needs_exactly_one_host() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let body = r#"{"id":"h","entity":"h","t":1}"#;
    let wait = Duration::from_secs(3);
    let without = format!(
        "POST /t HTTP/1.1\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_answer(
        &raw_exchange(gw.addr, without.as_bytes(), wait).await,
        "400",
        "bad_request",
    );
    let two = post("/t", body, "Host: other\r\nConnection: close\r\n");
    assert_answer(
        &raw_exchange(gw.addr, &two, wait).await,
        "400",
        "bad_request",
    );
    upstream.assert_nothing().await;
    // One Host is fine.
    let one = post("/t", body, "Connection: close\r\n");
    let answer = raw_exchange(gw.addr, &one, wait).await;
    let (line, headers, _) = split_answer(&answer);
    assert!(line.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        headers.contains("x-hookgate-verdict: forwarded"),
        "{answer:?}"
    );
    assert_eq!(&upstream.next().await.body[..], body.as_bytes());
}

/// A body cut short by the sender (the connection's write side closed before
/// `Content-Length` bytes arrived) is a broken request, 400 `bad_request`: it says
/// nothing about the JSON, so it is not `invalid_json`. Nothing is delivered.
#[tokio::test]
async fn body_cut_short_is_bad_request_not_invalid_json() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(b"POST /t HTTP/1.1\r\nHost: gw\r\nContent-Length: 100\r\n\r\n{\"id\":\"c1\"")
        .await
        .expect("write");
    s.shutdown().await.expect("half-close");
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer)).await;
    assert_answer(&String::from_utf8_lossy(&answer), "400", "bad_request");
    upstream.assert_nothing().await;
}

/// DESIGN.md §4: a body labelled with a `Content-Encoding` the gateway does not decode
/// is refused with 415 `unsupported_encoding` before it is read (the sender's schema and
/// signature checks would otherwise run on bytes the upstream decodes differently).
/// `identity` is no encoding.
#[tokio::test]
async fn content_encoding_is_refused_unread() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let body = r#"{"id":"g1","entity":"g","t":1}"#;
    for encoding in ["gzip", "identity, br", "x-custom"] {
        let request = post(
            "/t",
            body,
            &format!("Content-Encoding: {encoding}\r\nExpect: 100-continue\r\n"),
        );
        // With `Expect: 100-continue` unanswered the body is not even invited.
        let answer = first_answer(
            gw.addr,
            &request[..request.len() - body.len()],
            Duration::from_millis(600),
        )
        .await;
        assert_answer(&answer, "415", "unsupported_encoding");
    }
    upstream.assert_nothing().await;
    let plain = post(
        "/t",
        body,
        "Content-Encoding: identity\r\nConnection: close\r\n",
    );
    let answer = raw_exchange(gw.addr, &plain, Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert_eq!(&upstream.next().await.body[..], body.as_bytes());
}

/// `/metrics` answered OpenMetrics even to a scraper that asked for the classic text
/// format, which `promtool check metrics` and older scrapers cannot read. It negotiates
/// now, as the Prometheus client libraries do.
#[tokio::test]
async fn metrics_answer_the_format_asked_for() {
    let upstream = Upstream::start().await;
    let gw = Gateway::start(&ordered_config(&upstream)).await;
    let c = client();
    let r = c
        .post(gw.url("/t"))
        .body(r#"{"id":"m1","entity":"m","t":1}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    let scrape = |accept: Option<&'static str>| {
        let mut req = c.get(gw.url("/metrics"));
        if let Some(a) = accept {
            req = req.header("accept", a);
        }
        req.send()
    };
    for accept in [Some("text/plain;version=0.0.4"), None] {
        let r = scrape(accept).await.expect("scrape");
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .to_owned();
        assert!(
            ct.starts_with("text/plain; version=0.0.4"),
            "{accept:?}: {ct}"
        );
        let text = r.text().await.expect("text");
        assert!(!text.contains("# EOF"), "{text}");
        assert!(
            text.contains("# TYPE hookgate_requests_total counter"),
            "{text}"
        );
        assert!(
            text.contains(r#"hookgate_requests_total{route="t",verdict="forwarded"} 1"#),
            "{text}"
        );
    }
    let r = scrape(Some("application/openmetrics-text;version=1.0.0"))
        .await
        .expect("scrape");
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert!(ct.starts_with("application/openmetrics-text"), "{ct}");
    assert!(r.text().await.expect("text").ends_with("# EOF\n"));
}
