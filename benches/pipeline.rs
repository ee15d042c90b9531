//! The whole request path through the router (`tower::ServiceExt::oneshot`), per verdict
//! and store backend: how long the gateway takes to reach a verdict.
//!
//! Cases, all with the Flashduty incident preset (allowlist, schema on a 1 KiB body,
//! dedup + order extraction):
//! - `no_route`: the cheapest answer, the baseline of the same run;
//! - `duplicate/<store>` and `stale/<store>`: full validation plus a store read;
//! - `forwarded/<store>`: a new event id each time, delivered to a real upstream on
//!   loopback, then committed (the embedded store fsyncs each commit here, since the
//!   requests are sequential: group commit needs concurrency to batch).

use std::hint::black_box;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::body::Body;
use axum::extract::ConnectInfo;
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use hookgate::server::router;
use tower::ServiceExt as _;

fn body() -> serde_json::Value {
    let path = format!(
        "{}/tests/schemas/flashduty-incident/valid/bench-1kib.json",
        env!("CARGO_MANIFEST_DIR")
    );
    serde_json::from_slice(&std::fs::read(path).expect("fixture")).expect("json")
}

fn app(
    rt: &tokio::runtime::Runtime,
    store: &str,
    dir: &std::path::Path,
    upstream: &str,
) -> axum::Router {
    let config = format!(
        "[store]\nbackend = \"{store}\"\npath = \"{}\"\n[[route]]\nname = \"fd\"\npath = \"/hooks/fd\"\npreset = \"flashduty-incident\"\nallow_ips = [\"127.0.0.1\"]\nupstream = \"{upstream}\"\n",
        dir.display()
    );
    let settings = hookgate::config::from_str(&config, "bench").expect("config");
    let _guard = rt.enter();
    router(hookgate::build(settings).expect("gateway"))
}

async fn send(app: &axum::Router, path: &str, body: Vec<u8>) -> u16 {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    let mut req = http::Request::post(path)
        .body(Body::from(body))
        .expect("request");
    req.extensions_mut().insert(ConnectInfo(peer));
    app.clone()
        .oneshot(req)
        .await
        .expect("infallible")
        .status()
        .as_u16()
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let upstream = rt.block_on(async {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        tokio::spawn(async move {
            axum::serve(l, axum::Router::new().fallback(|| async { "ok" })).await
        });
        format!("http://{addr}/in")
    });
    let base = body();
    let mut group = c.benchmark_group("pipeline");
    for store in ["memory", "embedded"] {
        let dir = tempfile::tempdir().expect("tmp");
        let app = app(&rt, store, dir.path(), &upstream);
        // Deliver one event so that repeats are duplicates and older ones stale.
        let first = serde_json::to_vec(&base).expect("json");
        assert_eq!(rt.block_on(send(&app, "/hooks/fd", first.clone())), 200);
        let mut older = base.clone();
        older["event_id"] = "older".into();
        older["event_time"] = (base["event_time"].as_i64().expect("time") - 1).into();
        let older = serde_json::to_vec(&older).expect("json");
        assert_eq!(rt.block_on(send(&app, "/hooks/fd", older.clone())), 200);

        if store == "memory" {
            group.bench_function("no_route", |b| {
                b.iter(|| rt.block_on(send(&app, "/nowhere", black_box(first.clone()))))
            });
        }
        group.bench_with_input(BenchmarkId::new("duplicate", store), &first, |b, body| {
            b.iter(|| rt.block_on(send(&app, "/hooks/fd", black_box(body.clone()))))
        });
        group.bench_with_input(BenchmarkId::new("stale", store), &older, |b, body| {
            b.iter(|| rt.block_on(send(&app, "/hooks/fd", black_box(body.clone()))))
        });
        let counter = AtomicU64::new(0);
        let mut fresh = base.clone();
        group.bench_function(BenchmarkId::new("forwarded", store), |b| {
            b.iter(|| {
                let n = counter.fetch_add(1, Ordering::Relaxed);
                fresh["event_id"] = format!("fresh-{n}").into();
                fresh["event_time"] =
                    (base["event_time"].as_i64().expect("time") + n as i64 + 1).into();
                let body = serde_json::to_vec(&fresh).expect("json");
                let status = rt.block_on(send(&app, "/hooks/fd", body));
                assert_eq!(status, 200);
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
