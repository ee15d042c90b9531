//! `delivery = "async"`: 202 `accepted` after the durable accept, then a worker
//! delivers with retries, per-entity order, dead letters and back-pressure.

use std::time::Duration;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(store: &str, upstream: &str, extra: &str) -> String {
    format!(
        r#"
[store]
{store}
[[route]]
name = "async"
path = "/hooks/async"
upstream = "{upstream}"
delivery = "async"
dedup_key = "/id"
order_key = "/entity"
order_time = "/t"
upstream_timeout = "2s"
{extra}
"#
    )
}

fn embedded(dir: &std::path::Path) -> String {
    format!("backend = \"embedded\"\npath = \"{}\"", dir.display())
}

async fn post(gw: &Gateway, id: &str, entity: &str, t: u64) -> reqwest::Response {
    client()
        .post(gw.url("/hooks/async"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"id":"{id}","entity":"{entity}","t":{t}}}"#))
        .send()
        .await
        .expect("send")
}

fn id_of(body: &[u8]) -> String {
    let v: serde_json::Value = serde_json::from_slice(body).expect("json");
    v["id"].as_str().expect("id").to_owned()
}

async fn metrics(gw: &Gateway) -> String {
    client()
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}

#[tokio::test]
async fn accepted_is_202_then_delivered_with_event_id_and_attempt() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&embedded(dir.path()), &up.url("/in"), "")).await;
    let r = post(&gw, "e1", "a", 1).await;
    assert_eq!(r.status(), 202);
    assert_eq!(verdict(&r), "accepted");
    let got = up.next().await;
    assert_eq!(id_of(&got.body), "e1");
    assert_eq!(got.headers["x-hookgate-event-id"], "e1");
    assert_eq!(got.headers["x-hookgate-attempt"], "1");
    assert_eq!(got.headers["x-hookgate-route"], "async");
    // A copy is a duplicate, an older event of the entity stale: from the accept on.
    let r = post(&gw, "e1", "a", 1).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
    let r = post(&gw, "e0", "a", 0).await;
    assert_eq!((r.status().as_u16(), verdict(&r)), (200, "stale".into()));
    up.assert_nothing().await;
}

#[tokio::test]
async fn route_without_dedup_key_gets_a_generated_event_id() {
    let up = Upstream::start().await;
    let cfg = format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "plain"
path = "/hooks/plain"
upstream = "{}"
delivery = "async"
"#,
        up.url("/in")
    );
    let gw = Gateway::start(&cfg).await;
    let r = client()
        .post(gw.url("/hooks/plain"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 202);
    let got = up.next().await;
    let id = got.headers["x-hookgate-event-id"].to_str().expect("ascii");
    assert!(id.starts_with("hg-") && id.len() > 20, "{id}");
}

/// The upstream fails, then recovers: every event arrives, and per entity no event is
/// sent before the older one was delivered.
#[tokio::test]
async fn down_then_up_delivers_all_in_entity_order() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    up.set_status(500);
    let retry = r#"retry = { initial = "20ms", max_delay = "50ms" }"#;
    let gw = Gateway::start(&config(&embedded(dir.path()), &up.url("/in"), retry)).await;
    for (i, entity) in [(1, "a"), (2, "b"), (3, "a"), (4, "b"), (5, "a")] {
        let r = post(&gw, &format!("e{i}"), entity, i).await;
        assert_eq!(r.status(), 202);
    }
    up.wait_arrivals(6).await;
    up.set_status(200);
    // Record arrivals until every id was seen after the recovery.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        let got = up.next().await;
        seen.push(id_of(&got.body));
        if ["e1", "e2", "e3", "e4", "e5"]
            .iter()
            .all(|id| seen.iter().rev().take(5).any(|s| s == id))
        {
            break;
        }
    }
    for id in ["e1", "e2", "e3", "e4", "e5"] {
        assert!(seen.iter().any(|s| s == id), "{id} never arrived: {seen:?}");
    }
    // Entity a: e1 < e3 < e5 at first arrival, and no older one after a newer one.
    for (older, newer) in [("e1", "e3"), ("e3", "e5"), ("e2", "e4")] {
        let last_older = seen.iter().rposition(|s| s == older).expect("older");
        let first_newer = seen.iter().position(|s| s == newer).expect("newer");
        assert!(
            last_older < first_newer,
            "{newer} sent before {older} was done: {seen:?}"
        );
    }
}

#[tokio::test]
async fn dead_letter_after_max_attempts_does_not_block_the_entity() {
    let up = Upstream::start().await;
    up.set_status(503);
    let retry = r#"retry = { max_attempts = 2, initial = "10ms", max_delay = "10ms" }"#;
    let gw = Gateway::start(&config("backend = \"memory\"", &up.url("/in"), retry)).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    let first = up.next().await;
    let second = up.next().await;
    assert_eq!(first.headers["x-hookgate-attempt"], "1");
    assert_eq!(second.headers["x-hookgate-attempt"], "2");
    up.assert_nothing().await;
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"hookgate_dead_letters{route="async"} 1"#),
        "{m}"
    );
    assert!(
        m.contains(r#"hookgate_deliveries_total{route="async",outcome="rejected"} 2"#),
        "{m}"
    );
    up.set_status(200);
    assert_eq!(post(&gw, "e2", "a", 2).await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "e2");
}

#[tokio::test]
async fn full_outbox_is_503_unavailable_with_retry_after() {
    let up = Upstream::start().await;
    up.set_status(500);
    let extra = "max_pending = 1\nretry = { initial = \"1h\", max_delay = \"1h\" }";
    let gw = Gateway::start(&config("backend = \"memory\"", &up.url("/in"), extra)).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    let r = post(&gw, "e2", "b", 1).await;
    assert_eq!(r.status(), 503);
    assert_eq!(verdict(&r), "unavailable");
    assert!(r.headers().get("retry-after").is_some());
    // Not marked seen: the sender's retry is not a duplicate later.
    let r = post(&gw, "e2", "b", 1).await;
    assert_eq!(r.status(), 503);
}

/// `max_pending` holds under concurrency: the pending count is checked in the accept's
/// own store transaction, so 40 concurrent senders against `max_pending = 5` get
/// exactly five 202s (the upstream refuses everything, so nothing drains meanwhile).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_accepts_stop_exactly_at_max_pending() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    up.set_status(500);
    let extra = "max_pending = 5\nretry = { initial = \"1h\", max_delay = \"1h\" }";
    let gw = std::sync::Arc::new(
        Gateway::start(&config(&embedded(dir.path()), &up.url("/in"), extra)).await,
    );
    let sends: Vec<_> = (0..40)
        .map(|i| {
            let gw = std::sync::Arc::clone(&gw);
            tokio::spawn(async move {
                let r = post(&gw, &format!("c{i}"), &format!("ent{i}"), 1).await;
                (r.status().as_u16(), verdict(&r))
            })
        })
        .collect();
    let mut accepted = 0;
    for s in sends {
        match s.await.expect("task") {
            (202, _) => accepted += 1,
            (503, v) => assert_eq!(v, "unavailable"),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, 5);
    // The gauge follows within a worker pass.
    let want = "hookgate_outbox_pending{route=\"async\"} 5";
    let mut m = metrics(&gw).await;
    for _ in 0..100 {
        if m.contains(want) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
        m = metrics(&gw).await;
    }
    assert!(m.contains(want), "{m}");
}

#[tokio::test]
async fn restart_resumes_pending_events() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    up.set_status(500);
    let retry = r#"retry = { initial = "1h", max_delay = "1h" }"#;
    let cfg = config(&embedded(dir.path()), &up.url("/in"), retry);
    let mut gw = Gateway::start(&cfg).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    assert_eq!(up.next().await.headers["x-hookgate-attempt"], "1");
    gw.begin_shutdown().await.expect("shutdown");
    up.set_status(200);
    let gw = Gateway::start(&cfg).await;
    let got = up.next().await;
    assert_eq!(id_of(&got.body), "e1");
    assert_eq!(got.headers["x-hookgate-attempt"], "2");
    // Delivered now: removed from the outbox, so nothing comes again.
    up.assert_nothing().await;
    let m = metrics(&gw).await;
    assert!(
        m.contains(r#"hookgate_outbox_pending{route="async"} 0"#),
        "{m}"
    );
}

/// Shutdown drains the workers instead of aborting them: an attempt in flight when
/// shutdown begins is let finish and settled (a restart delivers nothing again), and the
/// admin listener, owned by the same supervisor, is closed once shutdown is over.
#[tokio::test]
async fn shutdown_settles_the_attempt_in_flight_and_closes_the_admin_listener() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(800));
    let port = free_port();
    let cfg = format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\n{}",
        config(&embedded(dir.path()), &up.url("/in"), "")
    );
    let mut gw = Gateway::start(&cfg).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    up.wait_arrivals(1).await;
    let began = tokio::time::Instant::now();
    gw.begin_shutdown().await.expect("shutdown");
    assert!(
        began.elapsed() >= Duration::from_millis(500),
        "shutdown returned before the attempt in flight ended"
    );
    assert_eq!(id_of(&up.next().await.body), "e1");
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the admin listener outlived the shutdown"
    );
    // Settled before the store closed: nothing pending, nothing delivered again.
    up.set_delay(Duration::ZERO);
    let gw = Gateway::start(&cfg).await;
    up.assert_nothing().await;
    let status: serde_json::Value = client()
        .get(format!("http://127.0.0.1:{port}/outbox"))
        .send()
        .await
        .expect("admin")
        .json()
        .await
        .expect("json");
    assert_eq!(status["routes"][0]["pending"], 0, "{status}");
    drop(gw);
}

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// A port free right now (the admin listener binds it next).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

async fn hookgate(args: &[&str]) -> (i32, String) {
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(BIN)
            .args(&args)
            .output()
            .expect("run hookgate")
    })
    .await
    .expect("join");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Dead letter after max_attempts, then replayed through the CLI (admin listener of
/// the running gateway) → delivered; with the gateway stopped the CLI reads the store
/// file; exit 1 when refused, 2 when unreachable.
#[tokio::test]
async fn dead_letter_replayed_through_the_cli() {
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    up.set_status(500);
    let port = free_port();
    let admin = format!("http://127.0.0.1:{port}");
    let extra = r#"retry = { max_attempts = 1 }"#;
    let cfg = format!(
        "[admin]\nlisten = \"127.0.0.1:{port}\"\ntoken = \"s3cret-admin\"\n{}",
        config(&embedded(dir.path()), &up.url("/in"), extra)
    );
    let cfg_file = dir.path().join("hookgate.toml");
    std::fs::write(&cfg_file, &cfg).expect("write config");
    let cfg_path = cfg_file.to_str().expect("utf8");
    let mut gw = Gateway::start(&cfg).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "e1");
    up.assert_nothing().await;

    // Without the token the admin listener refuses: exit 1.
    let (code, _) = hookgate(&["outbox", "--admin", &admin]).await;
    assert_eq!(code, 1);
    // Through the config (which has the token): status and the list.
    let (code, out) = hookgate(&["outbox", "--config", cfg_path]).await;
    assert_eq!(code, 0, "{out}");
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["routes"][0]["dead_letters"], 1, "{out}");
    let (code, out) = hookgate(&["dead-letters", "list", "--config", cfg_path]).await;
    assert_eq!(code, 0);
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["dead_letters"][0]["event_id"], "e1", "{out}");
    assert_eq!(v["dead_letters"][0]["last_status"], 500, "{out}");
    // An unknown route is refused.
    let (code, _) = hookgate(&[
        "dead-letters",
        "list",
        "--config",
        cfg_path,
        "--route",
        "nope",
    ])
    .await;
    assert_eq!(code, 1);

    up.set_status(200);
    let (code, out) = hookgate(&[
        "dead-letters",
        "replay",
        "--config",
        cfg_path,
        "--route",
        "async",
        "--id",
        "e1",
    ])
    .await;
    assert_eq!((code, out.trim()), (0, r#"{"replayed":1}"#));
    let got = up.next().await;
    assert_eq!(id_of(&got.body), "e1");
    assert_eq!(got.headers["x-hookgate-attempt"], "1");

    // A second dead letter, then the gateway stops: the CLI works on the store file.
    up.set_status(500);
    assert_eq!(post(&gw, "e2", "b", 1).await.status(), 202);
    assert_eq!(id_of(&up.next().await.body), "e2");
    up.assert_nothing().await;
    gw.begin_shutdown().await.expect("shutdown");
    let (code, out) = hookgate(&["dead-letters", "list", "--config", cfg_path]).await;
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"e2\""), "{out}");
    let (code, out) = hookgate(&["dead-letters", "drop", "--config", cfg_path, "--id", "e2"]).await;
    assert_eq!((code, out.trim()), (0, r#"{"dropped":1}"#));
    // Nobody listens at an explicit --admin URL: exit 2.
    let (code, _) = hookgate(&["outbox", "--admin", &admin]).await;
    assert_eq!(code, 2);
}

/// The real binary, serving `config` (a file) on `port`.
struct Binary(std::process::Child);

impl Binary {
    async fn start(config: &std::path::Path, port: u16) -> Binary {
        let mut child = std::process::Command::new(BIN)
            .args(["serve", "--config", config.to_str().expect("utf8")])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn hookgate");
        let ready = format!("http://127.0.0.1:{port}/readyz");
        for _ in 0..200 {
            if let Ok(r) = client().get(&ready).send().await
                && r.status() == 200
            {
                return Binary(child);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        panic!("hookgate did not become ready on {port}");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        // SIGKILL: no drain, no clean close of the store.
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// 2 000 events sent concurrently to an async route of the real binary, five times over,
/// each cycle cut short by `kill -9` midway, restarted on the same store: every id
/// that got a 202 reaches the upstream; per entity the first deliveries never go back
/// in time; duplicates (redeliveries after a crash) are counted and printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_cycles_lose_no_accepted_event() {
    use std::collections::{HashMap, HashSet};
    use std::sync::{Arc, Mutex};
    const CYCLES: usize = 5;
    const PER_CYCLE: usize = 2_000;
    const SENDERS: usize = 32;
    let dir = tempfile::tempdir().expect("tmp");
    let up = Upstream::start().await;
    let accepted: Arc<Mutex<HashSet<String>>> = Arc::default();
    let mut times: HashMap<String, (String, u64)> = HashMap::new();
    let config_file = dir.path().join("hookgate.toml");
    let mut next_id = 0usize;
    let mut last = None;
    for cycle in 0..=CYCLES {
        let port = free_port();
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n{}",
            config(&embedded(&dir.path().join("store")), &up.url("/in"), "")
        );
        std::fs::write(&config_file, cfg).expect("config");
        let bin = Binary::start(&config_file, port).await;
        if cycle == CYCLES {
            // The last run only drains what the earlier ones accepted.
            last = Some(bin);
            break;
        }
        let url = format!("http://127.0.0.1:{port}/hooks/async");
        let sent = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let mut tasks = Vec::new();
        let ids: Vec<(String, String, u64)> = (0..PER_CYCLE)
            .map(|i| {
                let n = next_id + i;
                (format!("c{cycle}-{n}"), format!("ent{}", n % 200), n as u64)
            })
            // Senders pop from the end: oldest event times go first.
            .rev()
            .collect();
        next_id += PER_CYCLE;
        for (id, entity, t) in &ids {
            times.insert(id.clone(), (entity.clone(), *t));
        }
        let ids = Arc::new(Mutex::new(ids));
        for _ in 0..SENDERS {
            let (ids, accepted, url, sent) = (
                Arc::clone(&ids),
                Arc::clone(&accepted),
                url.clone(),
                Arc::clone(&sent),
            );
            tasks.push(tokio::spawn(async move {
                let c = client();
                loop {
                    let Some((id, entity, t)) = ids.lock().expect("lock").pop() else {
                        return;
                    };
                    let body = format!(r#"{{"id":"{id}","entity":"{entity}","t":{t}}}"#);
                    let r = c.post(&url).body(body).send().await;
                    sent.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    if let Ok(r) = r
                        && r.status() == 202
                    {
                        accepted.lock().expect("lock").insert(id);
                    }
                }
            }));
        }
        // kill -9 midway through the cycle's sends.
        while sent.load(std::sync::atomic::Ordering::SeqCst) < PER_CYCLE / 2 {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        drop(bin);
        for t in tasks {
            t.await.expect("sender");
        }
    }
    let accepted = accepted.lock().expect("lock").clone();
    assert!(
        accepted.len() > 2_500,
        "too few accepted: {}",
        accepted.len()
    );
    let mut received: HashMap<String, usize> = HashMap::new();
    let mut first_order: Vec<String> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(180);
    while accepted.iter().any(|id| !received.contains_key(id)) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "accepted events lost: {}",
            accepted
                .iter()
                .filter(|id| !received.contains_key(*id))
                .count()
        );
        let id = id_of(&up.next().await.body);
        let n = received.entry(id.clone()).or_insert(0);
        if *n == 0 {
            first_order.push(id);
        }
        *n += 1;
    }
    let duplicates: usize = received.values().map(|n| n - 1).sum();
    let unaccepted = received.keys().filter(|id| !accepted.contains(*id)).count();
    println!(
        "crash test: {} accepted, {} delivered, {duplicates} duplicate deliveries, \
         {unaccepted} delivered without a 202 seen (killed mid-answer)",
        accepted.len(),
        received.len()
    );
    // Per entity, first deliveries never go back in event time.
    let mut newest: HashMap<&str, u64> = HashMap::new();
    for id in &first_order {
        let (entity, t) = &times[id];
        let prev = newest.entry(entity.as_str()).or_insert(0);
        assert!(
            *t >= *prev,
            "{id} of {entity} delivered after a newer event"
        );
        *prev = *t;
    }
    drop(last);
}

/// An upstream's `Retry-After` is a floor under the backoff: with a 10 ms backoff and
/// `Retry-After: 1`, the second attempt comes no sooner than a second later.
#[tokio::test]
async fn retry_after_is_honoured() {
    let up = Upstream::start().await;
    up.set_status(503);
    up.set_retry_after(1);
    let retry = r#"retry = { initial = "10ms", max_delay = "10ms" }"#;
    let gw = Gateway::start(&config("backend = \"memory\"", &up.url("/in"), retry)).await;
    assert_eq!(post(&gw, "e1", "a", 1).await.status(), 202);
    let _ = up.next().await;
    let first = tokio::time::Instant::now();
    up.set_status(200);
    up.set_retry_after(0);
    let second = up.next().await;
    let waited = first.elapsed();
    assert_eq!(second.headers["x-hookgate-attempt"], "2");
    assert!(
        waited >= Duration::from_millis(900),
        "retried after {waited:?}"
    );
}
