//! Metrics, rate limits, log hygiene, SIGHUP reload.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

/// The value of one series line in the exposition, e.g.
/// `hookgate_requests_total{route="m",verdict="forwarded"}`.
fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_each_verdict_exactly() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "m"
path = "/hooks/m"
upstream = "{}"
auth = {{ type = "bearer", tokens = ["t"] }}
"#,
        up.url("/in")
    ))
    .await;
    let c = client();
    for _ in 0..3 {
        let r = c
            .post(gw.url("/hooks/m"))
            .bearer_auth("t")
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
    }
    for _ in 0..2 {
        c.post(gw.url("/hooks/m"))
            .body("{}")
            .send()
            .await
            .expect("send");
    }
    c.post(gw.url("/hooks/m"))
        .bearer_auth("t")
        .body("{")
        .send()
        .await
        .expect("send");
    c.get(gw.url("/hooks/m")).send().await.expect("send");
    c.post(gw.url("/nowhere")).send().await.expect("send");
    up.set_status(500);
    c.post(gw.url("/hooks/m"))
        .bearer_auth("t")
        .body("{}")
        .send()
        .await
        .expect("send");

    let r = c.get(gw.url("/metrics")).send().await.expect("scrape");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    let req = |v: &str| {
        series(
            &text,
            &format!("hookgate_requests_total{{route=\"m\",verdict=\"{v}\"}}"),
        )
    };
    assert_eq!(req("forwarded"), Some(4.0), "{text}");
    assert_eq!(req("unauthorized"), Some(2.0));
    assert_eq!(req("invalid_json"), Some(1.0));
    assert_eq!(req("method_not_allowed"), Some(1.0));
    assert_eq!(
        series(
            &text,
            "hookgate_requests_total{route=\"-\",verdict=\"no_route\"}"
        ),
        Some(1.0)
    );
    let del = |o: &str| {
        series(
            &text,
            &format!("hookgate_deliveries_total{{route=\"m\",outcome=\"{o}\"}}"),
        )
    };
    assert_eq!(del("success"), Some(3.0));
    assert_eq!(del("rejected"), Some(1.0));
    assert_eq!(
        series(
            &text,
            "hookgate_request_duration_seconds_count{route=\"m\"}"
        ),
        Some(8.0)
    );
    assert_eq!(
        series(&text, "hookgate_outbox_pending{route=\"m\"}"),
        Some(0.0)
    );
    assert_eq!(
        series(&text, "hookgate_dead_letters{route=\"m\"}"),
        Some(0.0)
    );
    // Every forwarded event was recorded by the store.
    assert_eq!(
        series(&text, "hookgate_unrecorded_deliveries_total{route=\"m\"}"),
        Some(0.0)
    );
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "rl"
path = "/hooks/rl"
upstream = "{}"
rate_limit = {{ per_second = 1, burst = 2 }}
"#,
        up.url("/in")
    ))
    .await;
    let c = client();
    for _ in 0..2 {
        let r = c
            .post(gw.url("/hooks/rl"))
            .body("{}")
            .send()
            .await
            .expect("send");
        assert_eq!(r.status(), 200);
        up.next().await;
    }
    let r = c
        .post(gw.url("/hooks/rl"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(verdict(&r), "rate_limited");
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("whole seconds");
    assert!((1..=2).contains(&retry), "retry-after {retry}");
    up.assert_nothing().await;
    // After the advertised wait, a request passes again.
    tokio::time::sleep(Duration::from_secs(retry)).await;
    let r = c
        .post(gw.url("/hooks/rl"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
}

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

struct Served {
    child: std::process::Child,
    addr: String,
    logs: std::sync::mpsc::Receiver<String>,
}

fn serve(config: &std::path::Path, extra: &[&str]) -> Served {
    let mut command = Command::new(BIN);
    command.args(["serve", "--config"]).arg(config).args(extra);
    serve_command(command)
}

/// Starts `command` (which runs `hookgate serve`), reads the address from its first
/// line and collects its log.
fn serve_command(mut command: Command) -> Served {
    let mut child = command
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    stdout.read_line(&mut first).expect("read");
    std::thread::spawn(move || std::io::copy(&mut stdout, &mut std::io::sink()));
    let addr = first
        .split_whitespace()
        .nth(3)
        .expect("listening line")
        .to_owned();
    let (tx, logs) = std::sync::mpsc::channel();
    let mut stderr = child.stderr.take().expect("stderr");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = tx.send(String::from_utf8_lossy(&buf[..n]).into_owned());
        }
    });
    Served { child, addr, logs }
}

impl Served {
    fn logs_until(&self, needle: &str) -> String {
        let mut all = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while std::time::Instant::now() < deadline {
            if let Ok(chunk) = self.logs.recv_timeout(Duration::from_millis(100)) {
                all.push_str(&chunk);
                if all.contains(needle) {
                    break;
                }
            }
        }
        all
    }

    fn signal(&self, sig: &str) {
        Command::new("kill")
            .args([sig, &self.child.id().to_string()])
            .status()
            .expect("kill");
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn route_config(routes: &[(&str, &str)], upstream: &str) -> String {
    let mut text = "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n".to_owned();
    for (name, path) in routes {
        text.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath = \"{path}\"\nupstream = \"{upstream}\"\nauth = {{ type = \"bearer\", tokens = [\"tok-SECRET-1234\"] }}\n"
        ));
    }
    text
}

#[tokio::test]
async fn log_line_never_contains_the_token_or_body() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, route_config(&[("a", "/hooks/a")], &up.url("/in"))).expect("write");
    for format in ["text", "json"] {
        let s = serve(&cfg, &["--log-format", format]);
        let c = client();
        for token in ["tok-SECRET-1234", "tok-WRONG-9876"] {
            c.post(format!("http://{}/hooks/a", s.addr))
                .bearer_auth(token)
                .body(r#"{"body_marker":"BODY-CONTENT"}"#)
                .send()
                .await
                .expect("send");
        }
        let logs = s.logs_until("unauthorized");
        assert!(
            logs.contains("forwarded") && logs.contains("unauthorized"),
            "{logs}"
        );
        assert!(logs.contains("127.0.0.1"), "client address logged: {logs}");
        for secret in ["tok-", "SECRET", "1234", "WRONG", "9876", "BODY-CONTENT"] {
            assert!(
                !logs.contains(secret),
                "{format} log leaks {secret}: {logs}"
            );
        }
        if format == "json" {
            let line = logs
                .lines()
                .find(|l| l.contains("\"verdict\":\"forwarded\""))
                .expect("json line");
            let v: serde_json::Value = serde_json::from_str(line).expect("json log line");
            assert_eq!(v["route"], "a");
            assert_eq!(v["status"], 200);
        }
    }
}

#[tokio::test]
async fn sighup_reloads_routes_and_refuses_bad_config() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(&cfg, route_config(&[("a", "/hooks/a")], &up.url("/in"))).expect("write");
    let s = serve(&cfg, &[]);
    let c = client();
    let post = |path: &'static str| {
        let c = c.clone();
        let url = format!("http://{}{path}", s.addr);
        async move {
            c.post(url)
                .bearer_auth("tok-SECRET-1234")
                .body("{}")
                .send()
                .await
                .expect("send")
                .status()
                .as_u16()
        }
    };
    assert_eq!(post("/hooks/b").await, 404);

    // A request in flight during the reload finishes on the old configuration.
    up.set_delay(std::time::Duration::from_millis(800));
    let in_flight = tokio::spawn(post("/hooks/a"));
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    std::fs::write(
        &cfg,
        route_config(&[("a", "/hooks/a"), ("b", "/hooks/b")], &up.url("/in")),
    )
    .expect("write");
    s.signal("-HUP");
    s.logs_until("Configuration reloaded");
    assert_eq!(
        in_flight.await.expect("join"),
        200,
        "in-flight request dropped by the reload"
    );
    up.set_delay(std::time::Duration::ZERO);
    assert_eq!(post("/hooks/b").await, 200);

    // A bad config is refused; the old one keeps serving.
    std::fs::write(&cfg, "[[route]]\nname = \"a\"\n").expect("write");
    s.signal("-HUP");
    let logs = s.logs_until("reload refused");
    assert!(logs.contains("reload refused"), "{logs}");
    assert_eq!(post("/hooks/a").await, 200);
    assert_eq!(post("/hooks/b").await, 200);
}

#[tokio::test]
async fn per_address_rate_limit_keeps_senders_apart() {
    let up = Upstream::start().await;
    // The loopback peer is a trusted proxy, so X-Forwarded-For names the sender.
    let gw = Gateway::start(&format!(
        r#"
[server]
trusted_proxies = ["127.0.0.1"]
[store]
backend = "memory"
[[route]]
name = "pa"
path = "/hooks/pa"
upstream = "{}"
rate_limit = {{ per_second = 1, burst = 1, per_address = true }}
"#,
        up.url("/in")
    ))
    .await;
    let c = client();
    let send = |addr: &'static str| {
        c.post(gw.url("/hooks/pa"))
            .header("x-forwarded-for", addr)
            .body("{}")
            .send()
    };
    assert_eq!(send("203.0.113.1").await.expect("send").status(), 200);
    let r = send("203.0.113.1").await.expect("send");
    assert_eq!(r.status(), 429);
    assert_eq!(verdict(&r), "rate_limited");
    // Another sender has its own bucket.
    assert_eq!(send("203.0.113.2").await.expect("send").status(), 200);
    // The same IPv6 /64 shares one.
    assert_eq!(send("2001:db8::1").await.expect("send").status(), 200);
    assert_eq!(send("2001:db8::2").await.expect("send").status(), 429);
    up.next().await;
    up.next().await;
    up.next().await;
    up.assert_nothing().await;
}

/// When the disk refuses writes (here: the process may not grow any file past 128 KiB,
/// `ulimit -f`), `/readyz` turns 503, and events are still delivered: an event whose
/// dedup mark could not be written is forwarded again on retry (at least once, never
/// lost), not answered `duplicate` on a promise the store never kept.
#[tokio::test]
async fn a_store_that_cannot_write_is_not_ready_and_loses_no_event() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"embedded\"\npath = \"{}\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"{}\"\ndedup_key = \"/id\"\n",
            dir.path().join("data").display(),
            up.url("/in")
        ),
    )
    .expect("write");
    // SIGXFSZ is ignored so that a write past the limit fails with EFBIG instead of
    // killing the process; an ignored signal stays ignored across exec.
    let mut command = Command::new("bash");
    command
        .arg("-c")
        .arg("trap '' XFSZ; ulimit -f 128; exec \"$0\" serve --config \"$1\"")
        .arg(BIN)
        .arg(&cfg);
    let s = serve_command(command);
    let c = client();
    let ready = || {
        let c = c.clone();
        let url = format!("http://{}/readyz", s.addr);
        async move { c.get(url).send().await.expect("readyz").status().as_u16() }
    };
    let post = |id: String| {
        let c = c.clone();
        let url = format!("http://{}/r", s.addr);
        async move {
            // Long ids make the store file grow quickly.
            let body = format!(r#"{{"id":"{id}","pad":"{}"}}"#, "x".repeat(64));
            let r = c.post(url).body(body.clone()).send().await.expect("send");
            (r.status().as_u16(), verdict(&r), body)
        }
    };
    assert_eq!(ready().await, 200);

    let mut sent = 0;
    while ready().await == 200 {
        assert!(sent < 2_000, "the store never failed to write");
        let id = format!("evt-{sent:05}-{}", "i".repeat(200));
        let (status, v, body) = post(id).await;
        assert_eq!((status, v.as_str()), (200, "forwarded"), "event {sent}");
        assert_eq!(up.next().await.body, body.as_bytes(), "event {sent}");
        sent += 1;
    }
    // Not ready, and it stays so.
    assert_eq!(ready().await, 503);

    // An event delivered now cannot be marked seen: its retry is delivered again.
    let id = format!("after-failure-{}", "i".repeat(200));
    for attempt in 0..2 {
        let (status, v, body) = post(id.clone()).await;
        assert_eq!(
            (status, v.as_str()),
            (200, "forwarded"),
            "attempt {attempt}"
        );
        assert_eq!(up.next().await.body, body.as_bytes(), "attempt {attempt}");
    }
    let logs = s.logs_until("could not be marked seen");
    assert!(logs.contains("could not be marked seen"), "{logs}");
    assert_eq!(ready().await, 503);
    // Both attempts of the last event at least went unrecorded, and say so.
    let metrics = c
        .get(format!("http://{}/metrics", s.addr))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    let unrecorded = series(
        &metrics,
        "hookgate_unrecorded_deliveries_total{route=\"r\"}",
    );
    assert!(unrecorded.is_some_and(|n| n >= 2.0), "{metrics}");
}

/// A reload keeps the buckets of a route whose `rate_limit` did not change (otherwise
/// every SIGHUP would forgive every limited sender), and gives a changed limit fresh
/// buckets. In process through `server::reload`, so that no second of refill can pass
/// between exhausting the bucket and asking again.
#[tokio::test]
async fn reload_keeps_unchanged_rate_limit_buckets() {
    use axum::body::Body;
    use axum::extract::ConnectInfo;
    use tower::ServiceExt as _;

    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    let config = |burst: u32, extra_route: bool| {
        let mut text = format!(
            "[store]\nbackend = \"memory\"\n[[route]]\nname = \"rl\"\npath = \"/hooks/rl\"\n\
             upstream = \"{}\"\nrate_limit = {{ per_second = 1, burst = {burst} }}\n",
            up.url("/in")
        );
        if extra_route {
            text.push_str(&format!(
                "[[route]]\nname = \"b\"\npath = \"/hooks/b\"\nupstream = \"{}\"\n",
                up.url("/in")
            ));
        }
        text
    };
    std::fs::write(&cfg, config(3, false)).expect("write");
    let source = hookgate::config::ConfigSource::File(cfg.clone());
    let shared = hookgate::build(hookgate::config::load(&source).expect("config")).expect("build");
    let app = hookgate::server::router(shared.clone());
    let post = || {
        let app = app.clone();
        async move {
            let mut req = http::Request::post("/hooks/rl")
                .body(Body::from("{}"))
                .expect("request");
            req.extensions_mut()
                .insert(ConnectInfo(std::net::SocketAddr::from(([127, 0, 0, 1], 9))));
            app.oneshot(req)
                .await
                .expect("infallible")
                .status()
                .as_u16()
        }
    };
    for _ in 0..3 {
        assert_eq!(post().await, 200);
        up.next().await;
    }
    assert_eq!(post().await, 429);

    // Another route added, this one's limit unchanged: still limited.
    std::fs::write(&cfg, config(3, true)).expect("write");
    hookgate::server::reload(&shared, &source);
    assert!(
        shared.current().route_for("/hooks/b").is_some(),
        "the reload did not apply"
    );
    assert_eq!(post().await, 429, "the reload reset an unchanged limit");

    // A changed limit is a new limit: fresh buckets.
    std::fs::write(&cfg, config(4, true)).expect("write");
    hookgate::server::reload(&shared, &source);
    assert_eq!(post().await, 200, "a changed limit kept its old buckets");
    up.next().await;
}
