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
//! Criterion reports a mean per case. For the verdict's latency distribution, the two
//! `reserve_commit` cases also time every verdict (reserve + commit) on its own, and
//! the run ends with one table for all backends: verdicts/s (verdicts timed / time
//! measured), p50, p99 and p99.9 of the single-verdict latency. It counts every verdict
//! criterion ran, warm-up included (the same conditions, more samples); the two
//! `Instant::now()` calls per verdict cost well under 1 % of the cheapest backend's.
//!
//! Run: `cargo bench --bench store -- --warm-up-time 1 --measurement-time 3`
//! (`-- reserve_commit` for the latency table alone).

#![allow(clippy::unwrap_used)] // benchmark harness: a panic is the report

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
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

/// Every single-verdict latency of one (backend, case), and the time measured.
#[derive(Default)]
struct Samples {
    nanos: Vec<u32>,
    elapsed: Duration,
}

/// The samples of the run, by (backend, case).
type Recorded = Arc<Mutex<BTreeMap<(&'static str, &'static str), Samples>>>;

fn record(all: &Recorded, key: (&'static str, &'static str), nanos: Vec<u32>, took: Duration) {
    let mut all = all.lock().unwrap();
    let s = all.entry(key).or_default();
    s.nanos.extend(nanos);
    s.elapsed += took;
}

/// Reserve + commit of event `n`, timed; nanoseconds (saturating at ~4.3 s).
async fn timed_reserve_commit(store: &Store, n: u64) -> u32 {
    let start = Instant::now();
    reserve_commit(store, n).await;
    u32::try_from(start.elapsed().as_nanos()).unwrap_or(u32::MAX)
}

/// Prints the latency table (markdown, as the README's Performance section shows it).
fn report(all: &Recorded) {
    let mut all = all.lock().unwrap();
    println!();
    println!("verdict latency (reserve + commit of a fresh id and entity, every verdict timed)");
    println!();
    println!("| backend | case | verdicts | verdicts/s | p50 µs | p99 µs | p99.9 µs |");
    println!("|---|---|---|---|---|---|---|");
    for ((backend, case), s) in all.iter_mut() {
        if s.nanos.is_empty() {
            continue;
        }
        s.nanos.sort_unstable();
        let at = |q: f64| {
            let i = ((s.nanos.len() as f64 - 1.0) * q).round() as usize;
            f64::from(s.nanos[i.min(s.nanos.len() - 1)]) / 1000.0
        };
        let rate = s.nanos.len() as f64 / s.elapsed.as_secs_f64().max(1e-9);
        println!(
            "| {backend} | {case} | {} | {rate:.0} | {:.1} | {:.1} | {:.1} |",
            s.nanos.len(),
            at(0.50),
            at(0.99),
            at(0.999),
        );
    }
}

fn bench(c: &mut Criterion) {
    let rt = runtime();
    let next = Arc::new(AtomicU64::new(0));
    let recorded: Recorded = Arc::default();

    let mut group = c.benchmark_group("store");
    group.throughput(Throughput::Elements(1));
    let _in_runtime = rt.enter();
    for (name, store, _keep) in backends() {
        group.bench_function(BenchmarkId::new("reserve_commit_seq", name), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut nanos = Vec::with_capacity(usize::try_from(iters).unwrap_or(0));
                    let start = Instant::now();
                    for _ in 0..iters {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        nanos.push(timed_reserve_commit(&store, n).await);
                    }
                    let took = start.elapsed();
                    record(&recorded, (name, "seq"), nanos, took);
                    took
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
                                let mut nanos =
                                    Vec::with_capacity(usize::try_from(count).unwrap_or(0));
                                for _ in 0..count {
                                    let n = next.fetch_add(1, Ordering::Relaxed);
                                    nanos.push(timed_reserve_commit(&store, n).await);
                                }
                                nanos
                            })
                        })
                        .collect();
                    let mut nanos = Vec::new();
                    for task in tasks {
                        nanos.extend(task.await.unwrap());
                    }
                    let took = start.elapsed();
                    record(&recorded, (name, "c64"), nanos, took);
                    took
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
    report(&recorded);
}

criterion_group!(benches, bench);
criterion_main!(benches);
