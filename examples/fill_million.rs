//! Fills an embedded store with 1,000,000 distinct event ids and reports the
//! cost: file size of `hookgate.redb`, process memory, elapsed time.
//!
//! The ids are reserved and committed by many concurrent tasks, as a busy
//! gateway would, so the writer thread's group commit batches them. A second
//! phase then times `reserve` of random stored ids (the duplicate path) with
//! a store much larger than redb's page cache.
//!
//! Run: `cargo run --release --example fill_million [COUNT] [TASKS] [LOOKUPS]`
//! (defaults 1000000, 256 and 200000). The store lives in a temporary directory.

#![allow(clippy::unwrap_used)] // a measurement tool: a panic is the report

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hookgate::store::{ReserveOutcome, ReserveRequest, Store};

const TTL: Duration = Duration::from_secs(72 * 3600);

fn main() {
    let mut args = std::env::args().skip(1);
    let count: u64 = args.next().map_or(1_000_000, |a| a.parse().unwrap());
    let tasks: u64 = args.next().map_or(256, |a| a.parse().unwrap());
    let lookups: u64 = args.next().map_or(200_000, |a| a.parse().unwrap());

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open_embedded(dir.path()).unwrap();
    println!("rss before: {}", rss());

    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    rt.block_on(async {
        let workers: Vec<_> = (0..tasks)
            .map(|_| {
                let store = store.clone();
                let next = Arc::clone(&next);
                tokio::spawn(async move {
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= count {
                            break;
                        }
                        let id = event_id(n);
                        match store.reserve(request(&id)).await.unwrap() {
                            ReserveOutcome::Reserved(r) => store.commit(r).await.unwrap(),
                            other => panic!("expected Reserved for {id}, got {other:?}"),
                        }
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    });
    let elapsed = start.elapsed();
    let file = dir.path().join("hookgate.redb");
    let size = std::fs::metadata(&file).unwrap().len();
    println!(
        "filled {count} ids with {tasks} tasks in {:.2?} ({:.0} commits/s)",
        elapsed,
        count as f64 / elapsed.as_secs_f64()
    );
    println!(
        "hookgate.redb: {:.1} MiB ({:.0} bytes/id)",
        size as f64 / (1024.0 * 1024.0),
        size as f64 / count as f64
    );
    println!("rss after fill: {}", rss());

    // Phase 2: the duplicate path over the whole key space (xorshift picks).
    let start = Instant::now();
    rt.block_on(async {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..lookups {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let id = event_id(x % count);
            let outcome = store.reserve(request(&id)).await.unwrap();
            assert!(matches!(outcome, ReserveOutcome::Duplicate), "{id}");
        }
    });
    let elapsed = start.elapsed();
    println!(
        "{lookups} random duplicate reserves: {:.2?} per reserve",
        elapsed / u32::try_from(lookups).unwrap()
    );
    println!("rss after lookups: {}", rss());

    let start = Instant::now();
    let purged = rt.block_on(store.purge_expired(10_000)).unwrap();
    println!(
        "purge_expired(10000) with nothing expired: {purged} in {:.2?}",
        start.elapsed()
    );

    // Phase 3: the server's purge pass (1000 keys) on top of the full store, once
    // 50 000 short-lived ids have expired.
    const SHORT: u64 = 50_000;
    rt.block_on(async {
        let workers: Vec<_> = (0..tasks.min(SHORT))
            .map(|t| {
                let store = store.clone();
                tokio::spawn(async move {
                    let mut n = t;
                    while n < SHORT {
                        let id = format!("short-{n}");
                        let mut req = request(&id);
                        req.dedup_ttl = Duration::from_millis(500);
                        if let ReserveOutcome::Reserved(r) = store.reserve(req).await.unwrap() {
                            store.commit(r).await.unwrap();
                        }
                        n += tasks.min(SHORT);
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
    });
    std::thread::sleep(Duration::from_millis(600));
    let mut passes = Vec::new();
    loop {
        let start = Instant::now();
        let purged = rt.block_on(store.purge_expired(1_000)).unwrap();
        passes.push(start.elapsed());
        if purged < 1_000 {
            break;
        }
    }
    passes.sort();
    let total: Duration = passes.iter().sum();
    println!(
        "purge of {SHORT} expired ids in {} passes of 1000: median {:.2?}, max {:.2?}, {:.0} keys/s (without the server's 10 ms pause)",
        passes.len(),
        passes[passes.len() / 2],
        passes[passes.len() - 1],
        SHORT as f64 / total.as_secs_f64()
    );
}

fn event_id(n: u64) -> String {
    // Shaped like a provider's UUID-ish event id (36 bytes).
    format!(
        "evt-{n:016x}-0000-4000-8000-{:012x}",
        n.wrapping_mul(2_654_435_761) & 0xffff_ffff_ffff
    )
}

fn request(id: &str) -> ReserveRequest<'_> {
    ReserveRequest {
        route: "flashduty-incidents",
        event_id: Some(id),
        order: None,
        dedup_ttl: TTL,
        order_ttl: TTL,
    }
}

/// `VmRSS` and `VmHWM` (peak) from /proc/self/status.
fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map_or("?".to_owned(), |l| l[name.len()..].trim().to_owned())
    };
    format!("VmRSS {} (peak VmHWM {})", field("VmRSS:"), field("VmHWM:"))
}
