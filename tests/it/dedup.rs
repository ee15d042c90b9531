//! Dedup and ordering (DESIGN.md §5) through the real gateway and a real upstream, on
//! the memory and the embedded (redb file) store.

use std::time::Duration;

use serde_json::json;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str, store: &str, extra: &str) -> String {
    format!(
        r#"
[store]
{store}
dedup_ttl = "72h"
[[route]]
name = "fd"
path = "/hooks/fd"
upstream = "{upstream}"
dedup_key = "/event_id"
order_key = "/incident/incident_id"
order_time = "/event_time"
{extra}
"#
    )
}

fn memory() -> String {
    "backend = \"memory\"".into()
}

fn embedded(dir: &std::path::Path) -> String {
    format!("backend = \"embedded\"\npath = \"{}\"", dir.display())
}

fn event(id: &str, incident: &str, time: serde_json::Value) -> String {
    json!({"event_id": id, "event_time": time, "event_type": "i_new", "incident": {"incident_id": incident}})
        .to_string()
}

async fn send(gw: &Gateway, body: &str) -> (u16, String, serde_json::Value) {
    let r = client()
        .post(gw.url("/hooks/fd"))
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    let status = r.status().as_u16();
    let v = verdict(&r);
    let body = r
        .json::<serde_json::Value>()
        .await
        .unwrap_or(serde_json::Value::Null);
    (status, v, body)
}

#[tokio::test]
async fn unreachable_upstream_leaves_the_id_unseen() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = config(
        &format!("http://127.0.0.1:{port}/in"),
        &embedded(dir.path()),
        "upstream_timeout = \"1s\"",
    );
    let mut gw = Gateway::start(&cfg).await;
    let e = event("evt-502", "inc-9", json!(1_712_000_000_000i64));
    let (s, v, _) = send(&gw, &e).await;
    assert_eq!((s, v.as_str()), (502, "upstream_error"));
    gw.begin_shutdown().await.expect("stopped");
    // Same store, upstream now listening on that port.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("rebind");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
        let tx = tx.clone();
        async move {
            let _ = tx.send(body);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = Gateway::start(&cfg).await;
    let (s, v, _) = send(&gw, &e).await;
    assert_eq!((s, v.as_str()), (200, "forwarded"));
    assert_eq!(rx.recv().await.expect("delivered"), e.as_bytes());
}

#[tokio::test]
async fn seconds_milliseconds_and_rfc3339_compare_as_one_clock() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), &memory(), "")).await;
    // 2024-04-01T19:33:20Z = 1712000000 s.
    assert_eq!(
        send(&gw, &event("t1", "inc", json!(1_712_000_000))).await.1,
        "forwarded"
    );
    assert_eq!(
        send(&gw, &event("t2", "inc", json!(1_711_999_999_999i64)))
            .await
            .1,
        "stale"
    );
    assert_eq!(
        send(&gw, &event("t3", "inc", json!("2024-04-01T19:33:19.5Z")))
            .await
            .1,
        "stale"
    );
    assert_eq!(
        send(
            &gw,
            &event("t4", "inc", json!("2024-04-01T21:33:20.001+02:00"))
        )
        .await
        .1,
        "forwarded"
    );
    assert_eq!(
        send(&gw, &event("t5", "inc", json!(1_712_000_000.000_5)))
            .await
            .1,
        "stale"
    );
    assert_eq!(
        send(&gw, &event("t6", "inc", json!(1_712_000_000.002)))
            .await
            .1,
        "forwarded"
    );
    // A time that is none of those is a clear 422.
    let (s, v, body) = send(&gw, &event("t7", "inc", json!("yesterday"))).await;
    assert_eq!((s, v.as_str()), (422, "invalid_schema"));
    assert_eq!(body["detail"][0]["instance_path"], "/event_time");
}

#[tokio::test]
async fn embedded_store_keeps_dedup_and_order_across_restart_memory_forgets() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = 1_712_000_000_000i64;
    for (store, persists) in [(embedded(dir.path()), true), (memory(), false)] {
        let up = Upstream::start().await;
        let cfg = config(&up.url("/in"), &store, "");
        let mut gw = Gateway::start(&cfg).await;
        assert_eq!(
            send(&gw, &event("r1", "inc-r", json!(t))).await.1,
            "forwarded"
        );
        up.next().await;
        gw.begin_shutdown().await.expect("stopped");
        let gw = Gateway::start(&cfg).await;
        // Order first: on a forgetful store the older event goes through.
        let stale = send(&gw, &event("r2", "inc-r", json!(t - 1))).await.1;
        let dup = send(&gw, &event("r1", "inc-r", json!(t))).await.1;
        if persists {
            assert_eq!(
                (stale.as_str(), dup.as_str()),
                ("stale", "duplicate"),
                "{store}"
            );
            up.assert_nothing().await;
        } else {
            assert_eq!(
                (stale.as_str(), dup.as_str()),
                ("forwarded", "forwarded"),
                "{store}"
            );
        }
    }
}

#[tokio::test]
async fn ids_expire_after_dedup_ttl() {
    let up = Upstream::start().await;
    let cfg = config(&up.url("/in"), &memory(), "")
        .replace("dedup_ttl = \"72h\"", "dedup_ttl = \"700ms\"");
    let gw = Gateway::start(&cfg).await;
    let e = event("ttl-1", "inc-ttl", json!(1_712_000_000_000i64));
    assert_eq!(send(&gw, &e).await.1, "forwarded");
    assert_eq!(send(&gw, &e).await.1, "duplicate");
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert_eq!(
        send(&gw, &e).await.1,
        "forwarded",
        "id remembered past its TTL"
    );
}

#[tokio::test]
async fn missing_keys_are_rejected_by_default_or_passed_when_configured() {
    let up = Upstream::start().await;
    let body = json!({"event_type": "i_new", "incident": {"incident_id": "i"}, "event_time": 1})
        .to_string();
    let gw = Gateway::start(&config(&up.url("/in"), &memory(), "")).await;
    let (s, v, detail) = send(&gw, &body).await;
    assert_eq!((s, v.as_str()), (422, "invalid_schema"));
    assert_eq!(detail["detail"][0]["instance_path"], "/event_id");
    assert_eq!(detail["detail"][0]["keyword"], "dedup_key");
    up.assert_nothing().await;

    let gw = Gateway::start(&config(&up.url("/in"), &memory(), "missing_key = \"pass\"")).await;
    assert_eq!(send(&gw, &body).await.1, "forwarded");
    assert_eq!(send(&gw, &body).await.1, "forwarded", "no id: no dedup");
    up.next().await;
    up.next().await;
}

#[tokio::test]
async fn header_and_body_hash_dedup_keys() {
    let up = Upstream::start().await;
    let cfg = format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"h\"\npath = \"/h\"\nupstream = \"{0}\"\ndedup_key = \"header:webhook-id\"\n[[route]]\nname = \"b\"\npath = \"/b\"\nupstream = \"{0}\"\ndedup_key = \"body-sha256\"\n",
        up.url("/in")
    );
    let gw = Gateway::start(&cfg).await;
    let c = client();
    let post_h = |id: &'static str| {
        c.post(gw.url("/h"))
            .header("webhook-id", id)
            .body("{}")
            .send()
    };
    assert_eq!(verdict(&post_h("msg_1").await.expect("send")), "forwarded");
    assert_eq!(verdict(&post_h("msg_1").await.expect("send")), "duplicate");
    assert_eq!(verdict(&post_h("msg_2").await.expect("send")), "forwarded");
    let post_b = |b: &'static str| c.post(gw.url("/b")).body(b).send();
    assert_eq!(
        verdict(&post_b("{\"a\":1}").await.expect("send")),
        "forwarded"
    );
    assert_eq!(
        verdict(&post_b("{\"a\":1}").await.expect("send")),
        "duplicate"
    );
    assert_eq!(
        verdict(&post_b("{\"a\": 1}").await.expect("send")),
        "forwarded"
    );
    for _ in 0..4 {
        up.next().await;
    }
    up.assert_nothing().await;
}

#[tokio::test]
async fn readiness_reports_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), &embedded(dir.path()), "")).await;
    let r = client().get(gw.url("/readyz")).send().await.expect("send");
    assert_eq!(r.status(), 200);
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["store"], "embedded");
}

/// When the other delivery takes longer than the gateway waits, the copy is answered
/// 409 `in_flight` with `Retry-After`, and nothing more reaches the upstream.
#[tokio::test]
async fn a_copy_during_a_long_delivery_is_409_in_flight() {
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(2500));
    let gw = Gateway::start(&config(
        &up.url("/in"),
        &memory(),
        "upstream_timeout = \"5s\"",
    ))
    .await;
    let e = event("slow", "inc-slow", json!(1_712_000_000_000i64));
    let (c, url) = (client(), gw.url("/hooks/fd"));
    let first = tokio::spawn({
        let (c, url, e) = (c.clone(), url.clone(), e.clone());
        async move { c.post(url).body(e).send().await.map(|r| verdict(&r)) }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let r = c.post(&url).body(e.clone()).send().await.expect("send");
    assert_eq!(r.status(), 409);
    assert_eq!(verdict(&r), "in_flight");
    assert_eq!(r.headers()["retry-after"], "1");
    assert_eq!(first.await.expect("join").expect("send"), "forwarded");
    up.next().await;
    // Now it is a duplicate.
    assert_eq!(send(&gw, &e).await.1, "duplicate");
    up.assert_nothing().await;
}

/// An upstream that answers 200 but never finishes its body has still accepted the
/// event: the gateway passes the status on and marks the id seen, so the sender's retry
/// is a duplicate rather than a second delivery.
#[tokio::test]
async fn a_2xx_with_a_stalled_body_counts_as_delivered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 8192];
                let _ = s.read(&mut buf).await;
                let _ = tx.send(());
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\npartial")
                    .await;
                tokio::time::sleep(Duration::from_secs(5)).await;
            });
        }
    });
    let gw = Gateway::start(&config(
        &format!("http://{addr}/in"),
        &memory(),
        "upstream_timeout = \"300ms\"",
    ))
    .await;
    let e = event("stalled", "inc-st", json!(1_712_000_000_000i64));
    let (s, v, _) = send(&gw, &e).await;
    assert_eq!((s, v.as_str()), (200, "forwarded"));
    rx.recv().await.expect("delivered once");
    assert_eq!(send(&gw, &e).await.1, "duplicate");
    assert!(rx.try_recv().is_err(), "delivered twice");
}

// Store-dependent cases, once per backend.
crate::support::per_backend! {
    async fn duplicate_after_success(store) {
        let up = Upstream::start().await;
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let e = event("evt-1", "inc-1", json!(1_712_000_000_000i64));
        let (s, v, _) = send(&gw, &e).await;
        assert_eq!((s, v.as_str()), (200, "forwarded"), "{store}");
        let got = up.next().await;
        assert_eq!(got.headers["x-hookgate-event-id"], "evt-1");
        let (s, v, body) = send(&gw, &e).await;
        assert_eq!((s, v.as_str()), (200, "duplicate"), "{store}");
        assert_eq!(body["event_id"], "evt-1");
        assert_eq!(body["route"], "fd");
        up.assert_nothing().await;
    }

    async fn failed_delivery_leaves_the_id_unseen_so_the_retry_goes_through(store) {
        let up = Upstream::start().await;
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let e = event("evt-retry", "inc-1", json!(1_712_000_000_000i64));
        up.set_status(500);
        let (s, v, _) = send(&gw, &e).await;
        assert_eq!((s, v.as_str()), (500, "forwarded"));
        up.next().await;
        up.set_status(200);
        let (s, v, _) = send(&gw, &e).await;
        assert_eq!(
            (s, v.as_str()),
            (200, "forwarded"),
            "retry after 500 must be delivered"
        );
        up.next().await;
        let (_, v, _) = send(&gw, &e).await;
        assert_eq!(v, "duplicate");
        up.assert_nothing().await;
    }

    async fn fifty_concurrent_identical_requests_forward_exactly_one(store) {
        let up = Upstream::start().await;
        up.set_delay(Duration::from_millis(300));
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let e = event("evt-race", "inc-race", json!(1_712_000_000_000i64));
        let c = client();
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (c, url, body) = (c.clone(), gw.url("/hooks/fd"), e.clone());
            tasks.push(tokio::spawn(async move {
                let r = c.post(url).body(body).send().await.expect("send");
                (
                    r.status().as_u16(),
                    verdict(&r),
                    r.headers().get("retry-after").cloned(),
                )
            }));
        }
        let mut forwarded = 0;
        for t in tasks {
            let (status, v, retry_after) = t.await.expect("join");
            match v.as_str() {
                "forwarded" => forwarded += 1,
                "in_flight" => {
                    assert_eq!(status, 409);
                    assert_eq!(retry_after.expect("Retry-After"), "1");
                }
                "duplicate" => assert_eq!(status, 200),
                other => panic!("unexpected verdict {other}"),
            }
        }
        assert_eq!(forwarded, 1, "{store}");
        up.next().await;
        up.assert_nothing().await;
    }

    async fn stale_equal_and_newer_times(store) {
        let up = Upstream::start().await;
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let t = 1_712_000_000_000i64;
        let cases = [
            ("a", t, "forwarded"),
            ("b", t - 1, "stale"),
            ("c", t, "forwarded"), // equal time is not stale
            ("d", t + 1, "forwarded"),
            ("e", t, "stale"),
        ];
        for (id, time, expect) in cases {
            let (s, v, body) = send(&gw, &event(id, "inc-1", json!(time))).await;
            assert_eq!(v, expect, "event {id}");
            assert_eq!(s, 200);
            if expect == "forwarded" {
                up.next().await;
            } else {
                assert_eq!(body["verdict"], "stale");
            }
        }
        up.assert_nothing().await;
    }

    async fn entities_are_independent(store) {
        let up = Upstream::start().await;
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let t = 1_712_000_000_000i64;
        assert_eq!(
            send(&gw, &event("x1", "inc-A", json!(t + 100))).await.1,
            "forwarded"
        );
        // Older, but another incident: not stale.
        assert_eq!(
            send(&gw, &event("x2", "inc-B", json!(t))).await.1,
            "forwarded"
        );
        assert_eq!(send(&gw, &event("x3", "inc-A", json!(t))).await.1, "stale");
        up.next().await;
        up.next().await;
        up.assert_nothing().await;
    }

    /// Two events of one incident arriving together: the second waits for the first
    /// delivery instead of being refused (many senders never retry a 409), then goes out
    /// after it, in order.
    async fn events_of_one_entity_arriving_together_are_both_delivered_in_order(store) {
        let up = Upstream::start().await;
        up.set_delay(Duration::from_millis(300));
        let gw = Gateway::start(&config(&up.url("/in"), &store.toml, "")).await;
        let t = 1_712_000_000_000i64;
        let first = event("ack", "inc-1", json!(t));
        let second = event("resolve", "inc-1", json!(t + 5));
        let (c, url) = (client(), gw.url("/hooks/fd"));
        let a = tokio::spawn({
            let (c, url) = (c.clone(), url.clone());
            async move { c.post(url).body(first).send().await.map(|r| verdict(&r)) }
        });
        // The first is being delivered (a fixed sleep here lost the race on a loaded
        // machine, where one request can take longer than the sleep to reach the store).
        up.wait_arrivals(1).await;
        let b = c
            .post(url)
            .body(second)
            .send()
            .await
            .map(|r| verdict(&r))
            .expect("send");
        assert_eq!(a.await.expect("join").expect("send"), "forwarded");
        assert_eq!(b, "forwarded");
        let got: Vec<serde_json::Value> = vec![
            serde_json::from_slice(&up.next().await.body).expect("json"),
            serde_json::from_slice(&up.next().await.body).expect("json"),
        ];
        assert_eq!(got[0]["event_id"], "ack");
        assert_eq!(got[1]["event_id"], "resolve");
    }
}
