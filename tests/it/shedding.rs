//! Load shedding: `max_in_flight` answers 503 `overloaded` with `Retry-After` before the
//! body is read; `max_connections` stops accepting until a connection closes.

use std::time::Duration;

use crate::support::gateway::Gateway;
use crate::support::upstream::Upstream;
use crate::support::{client, raw_exchange, verdict};

async fn gateway(server: &str, up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "[server]\n{server}\n[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/hooks/r\"\nupstream = \"{}\"\n",
        up.url("/r")
    ))
    .await
}

#[tokio::test]
async fn above_max_in_flight_the_answer_is_503_overloaded_with_retry_after() {
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(800));
    let gw = gateway("max_in_flight = 1", &up).await;
    let c = client();
    let url = gw.url("/hooks/r");
    let first = {
        let c = c.clone();
        let url = url.clone();
        tokio::spawn(async move { c.post(url).body("{}").send().await })
    };
    up.wait_arrivals(1).await;
    let r = c.post(&url).body("{}").send().await.expect("second");
    assert_eq!(r.status(), 503);
    assert_eq!(verdict(&r), "overloaded");
    assert_eq!(r.headers()["retry-after"], "1");
    // Health checks are not shed.
    let h = c.get(gw.url("/healthz")).send().await.expect("healthz");
    assert_eq!(h.status(), 200);
    let first = first.await.expect("task").expect("first");
    assert_eq!(verdict(&first), "forwarded");
    // The slot is free again.
    up.set_delay(Duration::ZERO);
    let r = c.post(&url).body("{}").send().await.expect("third");
    assert_eq!(verdict(&r), "forwarded");
    let m = c.get(gw.url("/metrics")).send().await.expect("metrics");
    let text = m.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l.contains("verdict=\"overloaded\"") && l.ends_with(" 1")),
        "{text}"
    );
}

#[tokio::test]
async fn at_max_connections_new_connections_wait_until_one_closes() {
    let up = Upstream::start().await;
    let gw = gateway("max_connections = 1", &up).await;
    let holder = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("holder");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let req = b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n";
    let waiting = raw_exchange(gw.addr, req, Duration::from_millis(500)).await;
    assert_eq!(waiting, "", "a second connection was served at the limit");
    drop(holder);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let served = raw_exchange(gw.addr, req, Duration::from_secs(3)).await;
    assert!(served.starts_with("HTTP/1.1 200"), "{served}");
    assert_eq!(
        metric(&gw, "hookgate_connections_waited_total").await,
        "hookgate_connections_waited_total 1"
    );
}

/// An idle keep-alive connection is closed after `read_timeout` (hyper's header read
/// timer runs while the connection waits for its next request).
#[tokio::test]
async fn idle_keep_alive_connections_close_after_the_read_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = Upstream::start().await;
    let gw = gateway("read_timeout = \"1s\"", &up).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).await.expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let started = std::time::Instant::now();
    let closed = tokio::time::timeout(Duration::from_secs(4), async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "an idle keep-alive connection stayed open");
    assert!(started.elapsed() >= Duration::from_millis(800));
}

/// Reads from `s` until the peer closes it, within `within`: what arrived, or `None`
/// when it stayed open.
async fn read_until_closed(s: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    use tokio::io::AsyncReadExt as _;
    let mut all = Vec::new();
    let mut buf = [0u8; 4096];
    tokio::time::timeout(within, async {
        loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => all.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .ok()?;
    Some(String::from_utf8_lossy(&all).into_owned())
}

/// Sends one request on `s` and reads its whole answer (a `/healthz` answer is short
/// and arrives in one piece).
async fn exchange(s: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")
        .await
        .expect("write");
    let mut buf = [0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

async fn metric(gw: &Gateway, series: &str) -> String {
    let text = client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    text.lines()
        .find(|l| l.starts_with(series))
        .map_or_else(|| format!("{series} absent"), str::to_owned)
}

/// `max_requests_per_connection`: the last answer says `Connection: close` and the
/// connection closes after it; counted as shed `max_requests`.
#[tokio::test]
async fn a_connection_closes_after_its_request_limit() {
    let up = Upstream::start().await;
    let gw = gateway("max_requests_per_connection = 2", &up).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let first = exchange(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    assert!(
        !first.to_ascii_lowercase().contains("connection: close"),
        "{first}"
    );
    let second = exchange(&mut s).await;
    assert!(second.starts_with("HTTP/1.1 200"), "{second}");
    assert!(
        second.to_ascii_lowercase().contains("connection: close"),
        "{second}"
    );
    assert_eq!(
        read_until_closed(&mut s, Duration::from_secs(3)).await,
        Some(String::new()),
        "the connection stayed open after its last request"
    );
    assert_eq!(
        metric(
            &gw,
            "hookgate_connections_shed_total{reason=\"max_requests\"}"
        )
        .await,
        "hookgate_connections_shed_total{reason=\"max_requests\"} 1"
    );
}

/// `idle_timeout` closes a keep-alive connection waiting for its next request, well
/// before `read_timeout` would; counted as shed `idle_timeout`.
#[tokio::test]
async fn an_idle_connection_closes_after_idle_timeout() {
    let up = Upstream::start().await;
    let gw = gateway("read_timeout = \"20s\"\nidle_timeout = \"1s\"", &up).await;
    let mut s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let first = exchange(&mut s).await;
    assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    let started = std::time::Instant::now();
    assert_eq!(
        read_until_closed(&mut s, Duration::from_secs(8)).await,
        Some(String::new()),
        "an idle connection outlived idle_timeout"
    );
    assert!(started.elapsed() >= Duration::from_millis(800));
    assert_eq!(
        metric(
            &gw,
            "hookgate_connections_shed_total{reason=\"idle_timeout\"}"
        )
        .await,
        "hookgate_connections_shed_total{reason=\"idle_timeout\"} 1"
    );
}

/// At `max_connections`, a new connection is served and the keep-alive connection idle
/// the longest is closed to make room; counted as shed `max_connections`.
#[tokio::test]
async fn at_max_connections_the_longest_idle_connection_makes_room() {
    let up = Upstream::start().await;
    let gw = gateway("max_connections = 2", &up).await;
    let mut oldest = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    assert!(exchange(&mut oldest).await.starts_with("HTTP/1.1 200"));
    tokio::time::sleep(Duration::from_millis(50)).await;
    let mut newer = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    assert!(exchange(&mut newer).await.starts_with("HTTP/1.1 200"));
    // Both idle, at the limit: a third connection is served...
    let mut third = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let answer = exchange(&mut third).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    // ...and the oldest idle one was closed, the newer one still serves.
    assert_eq!(
        read_until_closed(&mut oldest, Duration::from_secs(3)).await,
        Some(String::new()),
        "the connection idle the longest was not closed"
    );
    drop(third);
    assert!(exchange(&mut newer).await.starts_with("HTTP/1.1 200"));
    drop(newer);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        metric(
            &gw,
            "hookgate_connections_shed_total{reason=\"max_connections\"}"
        )
        .await,
        "hookgate_connections_shed_total{reason=\"max_connections\"} 1"
    );
}

/// A sender trickling its header lines slower than `read_timeout` allows is cut off
/// within it: the connection is closed without an answer (hyper writes none for a header
/// timeout), counted as closed `header_timeout`, and the gateway keeps serving.
#[tokio::test]
async fn slow_headers_are_cut_off_at_the_read_timeout_and_counted() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let up = Upstream::start().await;
    let gw = gateway("read_timeout = \"1s\"", &up).await;
    let s = tokio::net::TcpStream::connect(gw.addr)
        .await
        .expect("connect");
    let (mut rd, mut wr) = s.into_split();
    let trickle = tokio::spawn(async move {
        let _ = wr
            .write_all(b"POST /hooks/r HTTP/1.1\r\nHost: gw\r\n")
            .await;
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            if wr
                .write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let started = std::time::Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match rd.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    trickle.abort();
    assert!(closed.is_ok(), "a slow-header sender was never cut off");
    assert!(started.elapsed() >= Duration::from_millis(900));
    let text = String::from_utf8_lossy(&got);
    assert!(
        text.is_empty() || text.to_ascii_lowercase().contains("x-hookgate-verdict"),
        "an answer without a verdict: {text}"
    );
    assert_eq!(up.count_now().await, 0);
    assert_eq!(
        metric(
            &gw,
            "hookgate_connections_closed_total{reason=\"header_timeout\"}"
        )
        .await,
        "hookgate_connections_closed_total{reason=\"header_timeout\"} 1"
    );
}
