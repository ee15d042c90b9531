//! A failing disk, decided (DESIGN.md §7): the store's file refuses writes on demand
//! (a switch in front of redb's file backend), the gateway answers as the contract
//! says while it is down, and recovers without a restart once writes work again.
//! Also: reloads start and drain async workers.

use std::time::Duration;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};
use hookgate::store::{Store, WriteFault};

fn config(upstream: &str, on_unavailable: &str) -> String {
    format!(
        r#"
[store]
on_unavailable = "{on_unavailable}"
[[route]]
name = "a"
path = "/a"
upstream = "{upstream}"
delivery = "async"
dedup_key = "/id"
[[route]]
name = "s"
path = "/s"
upstream = "{upstream}"
dedup_key = "/id"
"#
    )
}

async fn post(gw: &Gateway, path: &str, id: &str) -> reqwest::Response {
    client()
        .post(gw.url(path))
        .body(format!(r#"{{"id":"{id}"}}"#))
        .send()
        .await
        .expect("send")
}

async fn ready(gw: &Gateway) -> u16 {
    client()
        .get(gw.url("/readyz"))
        .send()
        .await
        .expect("readyz")
        .status()
        .as_u16()
}

fn series(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

async fn metric(gw: &Gateway, name_and_labels: &str) -> Option<f64> {
    let text = client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    series(&text, name_and_labels)
}

fn id_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    v["id"].as_str().expect("id").to_owned()
}

/// Waits (up to 15 s: the reopen backoff is 1 s, then 2 s, 4 s) for `/readyz` to be 200.
async fn wait_ready(gw: &Gateway) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while ready(gw).await != 200 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the store never came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Store fault → async 503 `unavailable` with Retry-After, sync delivered unchecked and
/// counted, `/readyz` 503; fault cleared → back without a restart: ready, async
/// accepted and delivered, dedup working again.
#[tokio::test]
async fn store_fault_refuses_async_delivers_sync_and_recovers() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let fault = WriteFault::new();
    let store = Store::open_embedded_with_fault(dir.path(), fault.clone()).expect("store");
    let gw = Gateway::start_with_store(&config(&up.url("/in"), "deliver"), store.clone()).await;
    assert_eq!(ready(&gw).await, 200);
    assert_eq!(post(&gw, "/a", "a1").await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "a1");
    // Settled (removed from the outbox) before the disk fails.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while store.outbox_pending("a") > 0 {
        assert!(tokio::time::Instant::now() < deadline, "a1 never settled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    fault.set(true);
    // The first write to fail is this accept's own: nothing accepted.
    let r = post(&gw, "/a", "a2").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r).as_str()),
        (503, "unavailable")
    );
    assert!(r.headers().get("retry-after").is_some());
    // From now on the store is down: async refused before any write.
    let r = post(&gw, "/a", "a2").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r).as_str()),
        (503, "unavailable")
    );
    assert!(r.headers().get("retry-after").is_some());
    assert_eq!(ready(&gw).await, 503);

    // Sync, on_unavailable = "deliver": forwarded without the check, counted; its copy
    // is forwarded again (nothing could be recorded).
    for _ in 0..2 {
        let r = post(&gw, "/s", "s1").await;
        assert_eq!(
            (r.status().as_u16(), verdict(&r).as_str()),
            (200, "forwarded")
        );
        assert_eq!(id_of(&up.next().await.body), "s1");
    }
    assert_eq!(
        metric(&gw, "hookgate_unrecorded_deliveries_total{route=\"s\"}").await,
        Some(2.0)
    );
    up.assert_nothing().await;

    fault.set(false);
    wait_ready(&gw).await;
    // Accepted and delivered again, and what was committed before the fault holds.
    assert_eq!(post(&gw, "/a", "a2").await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "a2");
    let r = post(&gw, "/a", "a2").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r).as_str()),
        (200, "duplicate")
    );
    let r = post(&gw, "/a", "a1").await;
    assert_eq!(verdict(&r), "duplicate");
    let r = post(&gw, "/s", "s2").await;
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(id_of(&up.next().await.body), "s2");
    assert_eq!(verdict(&post(&gw, "/s", "s2").await), "duplicate");
    up.assert_nothing().await;
    let commits = metric(&gw, "hookgate_store_commits_total").await;
    let changes = metric(&gw, "hookgate_store_committed_events_total").await;
    assert!(commits.is_some_and(|c| c >= 1.0), "{commits:?}");
    assert!(changes.is_some_and(|c| c >= 4.0), "{changes:?}");
}

/// `on_unavailable = "refuse"`: while the store is down a sync route answers 503
/// `unavailable` with Retry-After and the upstream gets nothing.
#[tokio::test]
async fn store_fault_with_refuse_is_503_on_sync() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let fault = WriteFault::new();
    let store = Store::open_embedded_with_fault(dir.path(), fault.clone()).expect("store");
    let gw = Gateway::start_with_store(&config(&up.url("/in"), "refuse"), store).await;
    fault.set(true);
    // The readiness probe is a write: it fails and takes the store down.
    assert_eq!(ready(&gw).await, 503);
    let r = post(&gw, "/s", "s1").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r).as_str()),
        (503, "unavailable")
    );
    assert!(r.headers().get("retry-after").is_some());
    up.assert_nothing().await;
    fault.set(false);
    wait_ready(&gw).await;
    let r = post(&gw, "/s", "s1").await;
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(id_of(&up.next().await.body), "s1");
}

/// An unknown `on_unavailable` is a configuration error naming the key.
#[test]
fn unknown_on_unavailable_is_a_config_error() {
    let err = hookgate::config::from_str(&config("http://127.0.0.1:9/x", "maybe"), "test")
        .expect_err("refused");
    let text = err.to_string();
    assert!(text.contains("on_unavailable"), "{text}");
    assert!(text.contains("maybe"), "{text}");
}

/// A reload that adds an async route starts its worker; a reload that makes it sync
/// leaves its pending events to its worker, which delivers them and then stops.
#[tokio::test]
async fn reload_starts_and_drains_async_workers() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = dir.path().join("c.toml");
    let text = |delivery: Option<&str>| {
        let mut t = format!(
            "[store]\nbackend = \"embedded\"\npath = \"{}\"\n[[route]]\nname = \"s\"\npath = \"/s\"\nupstream = \"{}\"\n",
            dir.path().join("data").display(),
            up.url("/in")
        );
        if let Some(d) = delivery {
            t.push_str(&format!(
                "[[route]]\nname = \"n\"\npath = \"/n\"\nupstream = \"{}\"\ndelivery = \"{d}\"\ndedup_key = \"/id\"\n",
                up.url("/in")
            ));
            if d == "async" {
                t.push_str("retry = { initial = \"100ms\", max_delay = \"200ms\" }\n");
            }
        }
        t
    };
    std::fs::write(&cfg, text(None)).expect("write");
    let source = hookgate::config::ConfigSource::File(cfg.clone());
    let shared = hookgate::build(hookgate::config::load(&source).expect("config")).expect("build");
    let gw = Gateway::serve(shared.clone()).await;
    // Serving (the workers start before the first connection is accepted).
    assert_eq!(ready(&gw).await, 200);
    assert!(shared.workers().routes().is_empty());

    // Added as async: its worker runs and delivers.
    std::fs::write(&cfg, text(Some("async"))).expect("write");
    hookgate::server::reload(&shared, &source);
    assert_eq!(
        shared.workers().routes(),
        vec![std::sync::Arc::<str>::from("n")]
    );
    assert_eq!(post(&gw, "/n", "n1").await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "n1");

    // Events pending (the upstream fails), then the route becomes sync.
    up.set_status(500);
    for id in ["n2", "n3"] {
        assert_eq!(post(&gw, "/n", id).await.status(), 202);
    }
    up.wait_arrivals(3).await;
    std::fs::write(&cfg, text(Some("sync"))).expect("write");
    hookgate::server::reload(&shared, &source);
    assert_eq!(
        shared.workers().routes(),
        vec![std::sync::Arc::<str>::from("n")],
        "draining"
    );
    // The route answers sync now; the old events are still delivered by the worker,
    // which then stops.
    up.set_status(200);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while !shared.workers().routes().is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never stopped"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = shared.current().store().clone();
    assert_eq!(store.outbox_pending("n"), 0);
    assert_eq!(
        store.dead_letter_count("n"),
        0,
        "delivered, not dead-lettered"
    );
    let r = post(&gw, "/n", "n4").await;
    assert_eq!(verdict(&r), "forwarded");
}
