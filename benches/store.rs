//! Store microbenchmarks: the verdict's hot path per backend.
//!
//! Cases (`store/<operation>/<backend>`):
//! * `reserve_commit_seq`: one task, reserve + commit of a fresh id and
//!   entity, back to back. For `embedded` this is one fsync per event: the
//!   commit latency a lone sender sees.
//! * `reserve_commit_c64`: 64 tasks doing the same concurrently; reported per
//!   event, so the throughput shows what group commit buys.
//! * `reserve_duplicate`: reserve of an id that is already committed (the
//!   read path alone: ledger lock + one lookup).
//! * `reserve_release`: reserve + release of a fresh id (no write).
//!
//! Backends: `memory`, `embedded` (a temporary directory) and `redis` (a real
//! `redis-server` from PATH on a free port, persistence off, on the same machine: a
//! round trip over loopback per step).
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`.

#![allow(clippy::unwrap_used)] // benchmark harness: a panic is the report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use hookgate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest, Store};
use tempfile::TempDir;

const TTL: Duration = Duration::from_secs(72 * 3600);
const TASKS: u64 = 64;

#[path = "../tests/it/support/redis_server.rs"]
#[allow(dead_code, unreachable_pub, missing_docs)]
mod redis_server;

/// What keeps a backend alive for the run: the embedded store's directory, the Redis
/// server (a real `redis-server` on a free port, persistence off, on this machine).
#[allow(dead_code)] // held for its Drop
enum Keep {
    None,
    Dir(TempDir),
    Redis(redis_server::RedisServer),
}

/// A store per backend. Call inside the runtime (the Redis store needs one).
fn backends() -> Vec<(&'static str, Store, Keep)> {
    let dir = tempfile::tempdir().unwrap();
    let embedded = Store::open_embedded(dir.path()).unwrap();
    let server = redis_server::RedisServer::start();
    // From config text, as `serve` opens it.
    let config = format!(
        "[store]\nbackend = \"redis\"\nurl = \"{}\"\npool_size = 4\nkey_prefix = \"bench\"\n",
        server.url()
    );
    let settings = hookgate::config::from_str(&config, "bench config").unwrap();
    let redis = hookgate::open_store(&settings.store).unwrap();
    vec![
        ("memory", Store::memory(), Keep::None),
        ("embedded", embedded, Keep::Dir(dir)),
        ("redis", redis, Keep::Redis(server)),
    ]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Reserve + commit event number `n` (fresh id, fresh entity).
async fn reserve_commit(store: &Store, n: u64) {
    let id = format!("evt-{n}");
    let entity = format!("inc-{n}");
    let req = ReserveRequest {
        route: "bench",
        event_id: Some(&id),
        order: Some(OrderPoint {
            entity: &entity,
            time: EventTime(1),
        }),
        dedup_ttl: TTL,
        order_ttl: TTL,
    };
    match store.reserve(req).await.unwrap() {
        ReserveOutcome::Reserved(r) => store.commit(r).await.unwrap(),
        other => panic!("expected Reserved, got {other:?}"),
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let _in_runtime = rt.enter();
    for (name, store, _keep) in backends() {
        group.bench_function(BenchmarkId::new("reserve_commit_seq", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        reserve_commit(&store, next.fetch_add(1, Ordering::Relaxed)).await;
                    }
                    start.elapsed()
                })
            });
        });

        group.bench_function(BenchmarkId::new("reserve_commit_c64", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let store = store.clone();
                            let next = Arc::clone(&next);
                            // Split `iters` events over the tasks.
                            let count = iters / TASKS + u64::from(t < iters % TASKS);
                            tokio::spawn(async move {
                                for _ in 0..count {
                                    let n = next.fetch_add(1, Ordering::Relaxed);
                                    reserve_commit(&store, n).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                    start.elapsed()
                })
            });
        });

        rt.block_on(reserve_commit(&store, u64::MAX));
        let seen = format!("evt-{}", u64::MAX);
        let duplicate = ReserveRequest {
            route: "bench",
            event_id: Some(&seen),
            order: None,
            dedup_ttl: TTL,
            order_ttl: TTL,
        };
        group.bench_function(BenchmarkId::new("reserve_duplicate", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let outcome = store.reserve(duplicate).await.unwrap();
                        assert!(matches!(outcome, ReserveOutcome::Duplicate));
                    }
                    start.elapsed()
                })
            });
        });

        group.bench_function(BenchmarkId::new("reserve_release", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let id = format!("fresh-{}", next.fetch_add(1, Ordering::Relaxed));
                        let req = ReserveRequest {
                            route: "bench",
                            event_id: Some(&id),
                            order: None,
                            dedup_ttl: TTL,
                            order_ttl: TTL,
                        };
                        match store.reserve(req).await.unwrap() {
                            ReserveOutcome::Reserved(r) => store.release(r).await.unwrap(),
                            other => panic!("expected Reserved, got {other:?}"),
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
