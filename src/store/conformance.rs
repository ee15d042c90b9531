//! The store conformance suite: one set of checks, run against every backend.
//!
//! Each check is an `async fn(Fixture)`; the `conformance!` macro at the
//! bottom instantiates every check once per backend, so adding a backend
//! (Redis) means adding one fixture constructor and one macro arm. Backend
//! drift, such as a memory store that forgets to check expiry on read, fails
//! here rather than in production.
//!
//! Expiry is driven by a manual clock (`Clock::Manual`) so TTL checks are
//! exact and instant; one check per backend also uses the real clock with a
//! short TTL to cover `SystemTime`.
//!
//! The property test at the end runs random interleavings of reserve /
//! commit / release / clock advance / purge against a reference model.

#![allow(clippy::unwrap_used)] // tests: a panic is the failure report

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tempfile::TempDir;

use super::{
    Clock, EventTime, OrderPoint, Reservation, ReserveOutcome, ReserveRequest, Store, StoreError,
    StoreErrorKind,
};

/// A TTL that never runs out within a test.
const LONG_TTL: Duration = Duration::from_secs(3600);
/// The manual clock's starting point: 2023-11-14, so expiries are realistic.
const START_NANOS: u64 = 1_700_000_000_000_000_000;

// === Fixtures ===

/// A store under test plus what keeps it alive and controls its clock.
struct Fixture {
    store: Store,
    now: Arc<AtomicU64>,
    /// The embedded store's directory (kept for reopen checks).
    dir: Option<TempDir>,
    /// The Redis server of a Redis store (killed when the fixture drops).
    _redis: Option<RedisServer>,
}

#[path = "../../tests/it/support/redis_server.rs"]
#[allow(dead_code, unreachable_pub)]
pub(crate) mod redis_server;
use redis_server::RedisServer;

/// Options for a Redis store on `server` in tests.
pub(crate) fn redis_options(server: &RedisServer, lease: Duration) -> super::RedisOptions {
    super::RedisOptions {
        url: server.url(),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        wait_replicas: 0,
        key_prefix: "hgtest".to_owned(),
        lease,
        tls_ca: None,
    }
}

impl Fixture {
    fn memory() -> Fixture {
        let now = Arc::new(AtomicU64::new(START_NANOS));
        Fixture {
            store: Store::memory_with_clock(Clock::Manual(Arc::clone(&now))),
            now,
            dir: None,
            _redis: None,
        }
    }

    fn redis() -> Fixture {
        let server = RedisServer::start();
        let now = Arc::new(AtomicU64::new(START_NANOS));
        let store = Store::open_redis_with_clock(
            &redis_options(&server, Duration::from_secs(30)),
            Clock::Manual(Arc::clone(&now)),
        )
        .unwrap();
        Fixture {
            store,
            now,
            dir: None,
            _redis: Some(server),
        }
    }

    /// `n` where the backend purges expired keys itself; 0 for Redis, which expires
    /// them on its own (`PX`), so `purge_expired` never has anything to do.
    fn purged(&self, n: usize) -> usize {
        if matches!(self.store, Store::Redis(_)) {
            0
        } else {
            n
        }
    }

    fn embedded() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let now = Arc::new(AtomicU64::new(START_NANOS));
        let store = open_embedded(dir.path(), &now);
        Fixture {
            store,
            now,
            dir: Some(dir),
            _redis: None,
        }
    }

    fn advance(&self, by: Duration) {
        let nanos = u64::try_from(by.as_nanos()).unwrap();
        self.now.fetch_add(nanos, Ordering::SeqCst);
    }
}

fn open_embedded(dir: &Path, now: &Arc<AtomicU64>) -> Store {
    Store::open_embedded_with_clock(dir, Clock::Manual(Arc::clone(now))).unwrap()
}

// === Helpers ===

/// An outcome without its reservation, for `assert_eq!`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Verdict {
    Reserved,
    Duplicate,
    InFlight,
    Stale,
}

fn verdict(outcome: &ReserveOutcome) -> Verdict {
    match outcome {
        ReserveOutcome::Reserved(_) => Verdict::Reserved,
        ReserveOutcome::Duplicate => Verdict::Duplicate,
        ReserveOutcome::InFlight => Verdict::InFlight,
        ReserveOutcome::Stale => Verdict::Stale,
    }
}

/// A request on `route` with an optional id and an optional `(entity, time)`.
fn req<'a>(
    route: &'a str,
    id: Option<&'a str>,
    order: Option<(&'a str, i64)>,
    ttl: Duration,
) -> ReserveRequest<'a> {
    ReserveRequest {
        route,
        event_id: id,
        order: order.map(|(entity, time)| OrderPoint {
            entity,
            time: EventTime(time),
        }),
        dedup_ttl: ttl,
        // Watermarks outlive every check that does not test `order_ttl` itself.
        order_ttl: Duration::MAX,
    }
}

/// An order-only request whose watermark is kept for `order_ttl`.
fn at_for(entity: &str, time: i64, order_ttl: Duration) -> ReserveRequest<'_> {
    ReserveRequest {
        order_ttl,
        ..at(entity, time)
    }
}

/// Reserves and returns the verdict, dropping (= releasing) any reservation.
async fn try_reserve(store: &Store, r: ReserveRequest<'_>) -> Verdict {
    verdict(&store.reserve(r).await.unwrap())
}

/// Reserves and insists on `Reserved`.
async fn must_reserve(store: &Store, r: ReserveRequest<'_>) -> Reservation {
    match store.reserve(r).await.unwrap() {
        ReserveOutcome::Reserved(reservation) => reservation,
        other => panic!("expected Reserved for {r:?}, got {other:?}"),
    }
}

/// Reserves and commits in one go.
async fn deliver(store: &Store, r: ReserveRequest<'_>) {
    let reservation = must_reserve(store, r).await;
    store.commit(reservation).await.unwrap();
}

fn id(id: &str) -> ReserveRequest<'_> {
    req("route-a", Some(id), None, LONG_TTL)
}

fn at(entity: &str, time: i64) -> ReserveRequest<'_> {
    req("route-a", None, Some((entity, time)), LONG_TTL)
}

// === Checks ===

async fn commit_marks_duplicate(f: Fixture) {
    let s = &f.store;
    let r = must_reserve(s, id("evt-1")).await;
    assert_eq!(r.route(), "route-a");
    assert_eq!(r.event_id(), Some("evt-1"));
    assert_eq!(r.order(), None);
    s.commit(r).await.unwrap();
    assert_eq!(try_reserve(s, id("evt-1")).await, Verdict::Duplicate);
    assert_eq!(try_reserve(s, id("evt-2")).await, Verdict::Reserved);
}

async fn release_leaves_no_trace(f: Fixture) {
    let s = &f.store;
    let r = must_reserve(
        s,
        req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    s.release(r).await.unwrap();
    // Neither the id nor the entity (nor its time) was recorded.
    let r = must_reserve(
        s,
        req("route-a", Some("evt-1"), Some(("inc-1", 5)), LONG_TTL),
    )
    .await;
    s.release(r).await.unwrap();
    assert_eq!(try_reserve(s, at("inc-1", 1)).await, Verdict::Reserved);
}

async fn drop_releases(f: Fixture) {
    let s = &f.store;
    let r = must_reserve(
        s,
        req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    // A cancelled request drops its reservation without commit or release. A local
    // lease is gone at once; a Redis lease is released in the background, well within
    // the pipeline's 1 s in-flight wait.
    drop(r);
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    loop {
        let v = try_reserve(
            s,
            req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
        )
        .await;
        if v == Verdict::Reserved {
            break;
        }
        assert_eq!(v, Verdict::InFlight);
        assert!(std::time::Instant::now() < deadline, "still in flight");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn concurrent_same_id_reserves_once(f: Fixture) {
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|_| {
            let store = f.store.clone();
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                store.reserve(id("evt-1")).await.unwrap()
            })
        })
        .collect();
    // Keep every outcome (and so every reservation) alive until counted.
    let mut outcomes = Vec::new();
    for task in tasks {
        outcomes.push(task.await.unwrap());
    }
    let count = |v| outcomes.iter().filter(|o| verdict(o) == v).count();
    assert_eq!(count(Verdict::Reserved), 1);
    assert_eq!(count(Verdict::InFlight), 49);
}

async fn commit_has_no_window(f: Fixture) {
    // While a commit is being written, a concurrent reserve of the same id
    // must see InFlight (or, once visible, Duplicate), never Reserved.
    let r = must_reserve(&f.store, id("evt-1")).await;
    let observer = {
        let store = f.store.clone();
        tokio::spawn(async move {
            let mut seen = Vec::new();
            loop {
                let v = try_reserve(&store, id("evt-1")).await;
                seen.push(v);
                if v != Verdict::InFlight {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    tokio::task::yield_now().await;
    f.store.commit(r).await.unwrap();
    let seen = observer.await.unwrap();
    assert_eq!(seen.last(), Some(&Verdict::Duplicate), "{seen:?}");
}

async fn stale_equal_newer(f: Fixture) {
    let s = &f.store;
    deliver(s, at("inc-1", 10)).await;
    assert_eq!(try_reserve(s, at("inc-1", 9)).await, Verdict::Stale);
    assert_eq!(try_reserve(s, at("inc-1", i64::MIN)).await, Verdict::Stale);
    // Equal is not stale.
    deliver(s, at("inc-1", 10)).await;
    deliver(s, at("inc-1", 11)).await;
    assert_eq!(try_reserve(s, at("inc-1", 10)).await, Verdict::Stale);
    // Negative times (before 1970) order correctly too.
    deliver(s, at("inc-2", -5)).await;
    assert_eq!(try_reserve(s, at("inc-2", -6)).await, Verdict::Stale);
    assert_eq!(try_reserve(s, at("inc-2", -5)).await, Verdict::Reserved);
}

async fn watermark_never_lowers(f: Fixture) {
    let s = &f.store;
    deliver(s, at("inc-1", 10)).await;
    // Only a reservation at >= watermark can exist, so commit only raises;
    // still, equal commits must keep it at 10, not move it.
    deliver(s, at("inc-1", 10)).await;
    assert_eq!(try_reserve(s, at("inc-1", 9)).await, Verdict::Stale);
}

async fn entities_are_independent(f: Fixture) {
    let s = &f.store;
    deliver(s, at("inc-1", 100)).await;
    assert_eq!(try_reserve(s, at("inc-2", 1)).await, Verdict::Reserved);
    // In flight on one entity does not block another.
    let _held = must_reserve(s, at("inc-3", 1)).await;
    assert_eq!(try_reserve(s, at("inc-4", 1)).await, Verdict::Reserved);
}

async fn routes_are_independent(f: Fixture) {
    let s = &f.store;
    deliver(
        s,
        req("route-a", Some("evt-1"), Some(("inc-1", 100)), LONG_TTL),
    )
    .await;
    assert_eq!(try_reserve(s, id("evt-1")).await, Verdict::Duplicate);
    assert_eq!(try_reserve(s, at("inc-1", 1)).await, Verdict::Stale);
    assert_eq!(
        try_reserve(s, req("route-b", Some("evt-1"), None, LONG_TTL)).await,
        Verdict::Reserved
    );
    assert_eq!(
        try_reserve(s, req("route-b", None, Some(("inc-1", 1)), LONG_TTL)).await,
        Verdict::Reserved
    );
    // In flight is per route too.
    let _held = must_reserve(
        s,
        req("route-c", Some("evt-9"), Some(("inc-9", 1)), LONG_TTL),
    )
    .await;
    assert_eq!(
        try_reserve(
            s,
            req("route-d", Some("evt-9"), Some(("inc-9", 1)), LONG_TTL)
        )
        .await,
        Verdict::Reserved
    );
    // The key encoding cannot be confused by a NUL inside an id.
    deliver(s, req("route-a", Some("x\0y"), None, LONG_TTL)).await;
    assert_eq!(
        try_reserve(s, req("route-a", Some("x\0y"), None, LONG_TTL)).await,
        Verdict::Duplicate
    );
    assert_eq!(
        try_reserve(s, req("route-a", Some("x"), None, LONG_TTL)).await,
        Verdict::Reserved
    );
}

async fn ttl_expires_on_read(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(10);
    deliver(s, req("route-a", Some("evt-1"), None, ttl)).await;
    f.advance(Duration::from_secs(9));
    assert_eq!(
        try_reserve(s, req("route-a", Some("evt-1"), None, ttl)).await,
        Verdict::Duplicate
    );
    f.advance(Duration::from_secs(1));
    // Expired exactly at commit + ttl, and nobody purged: still not a duplicate.
    let r = must_reserve(s, req("route-a", Some("evt-1"), None, ttl)).await;
    // A re-commit starts a fresh TTL, and the purge must not take it.
    s.commit(r).await.unwrap();
    assert_eq!(s.purge_expired(100).await.unwrap(), 0);
    f.advance(Duration::from_secs(9));
    assert_eq!(
        try_reserve(s, req("route-a", Some("evt-1"), None, ttl)).await,
        Verdict::Duplicate
    );
    f.advance(Duration::from_secs(1));
    assert_eq!(s.purge_expired(100).await.unwrap(), f.purged(1));
    assert_eq!(
        try_reserve(s, req("route-a", Some("evt-1"), None, ttl)).await,
        Verdict::Reserved
    );
}

/// `order_ttl`: an expired watermark is not stale any more (checked on read, before any
/// purge), and the next commit of the entity starts from its own time.
async fn watermark_expires_on_read(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(10);
    deliver(s, at_for("inc-1", 100, ttl)).await;
    f.advance(Duration::from_secs(9));
    assert_eq!(
        try_reserve(s, at_for("inc-1", 50, ttl)).await,
        Verdict::Stale
    );
    f.advance(Duration::from_secs(1));
    // Expired exactly at commit + order_ttl, and nobody purged: not stale.
    deliver(s, at_for("inc-1", 50, ttl)).await;
    // The new watermark is the new event's time, with a fresh expiry.
    assert_eq!(
        try_reserve(s, at_for("inc-1", 40, ttl)).await,
        Verdict::Stale
    );
    assert_eq!(
        try_reserve(s, at_for("inc-1", 60, ttl)).await,
        Verdict::Reserved
    );
    f.advance(Duration::from_secs(9));
    assert_eq!(
        try_reserve(s, at_for("inc-1", 40, ttl)).await,
        Verdict::Stale
    );
}

/// Every commit of an entity sets its watermark's expiry afresh, even one that does
/// not raise the time (an equal time).
async fn watermark_expiry_refreshed_by_commit(f: Fixture) {
    let s = &f.store;
    let ttl = Duration::from_secs(10);
    deliver(s, at_for("inc-1", 100, ttl)).await;
    f.advance(Duration::from_secs(8));
    deliver(s, at_for("inc-1", 100, ttl)).await;
    f.advance(Duration::from_secs(8));
    assert_eq!(
        try_reserve(s, at_for("inc-1", 99, ttl)).await,
        Verdict::Stale
    );
    assert_eq!(s.purge_expired(100).await.unwrap(), 0, "not expired");
    f.advance(Duration::from_secs(2));
    assert_eq!(s.purge_expired(100).await.unwrap(), f.purged(1));
    assert_eq!(
        try_reserve(s, at_for("inc-1", 1, ttl)).await,
        Verdict::Reserved
    );
}

/// Purging takes expired watermarks too (after expired dedup keys, within the same
/// bound), and never a live one.
async fn purge_takes_expired_watermarks(f: Fixture) {
    let s = &f.store;
    let short = Duration::from_secs(1);
    for i in 0..4 {
        let entity = format!("old-{i}");
        deliver(s, at_for(&entity, 100, short)).await;
    }
    deliver(s, req("route-a", Some("old-id"), None, short)).await;
    deliver(s, at_for("live", 100, Duration::from_secs(3600))).await;
    assert_eq!(s.purge_expired(10).await.unwrap(), 0, "nothing expired yet");
    f.advance(Duration::from_secs(2));
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(3));
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(2));
    assert_eq!(s.purge_expired(3).await.unwrap(), 0);
    assert_eq!(try_reserve(s, at("live", 99)).await, Verdict::Stale);
    assert_eq!(try_reserve(s, at("old-0", 1)).await, Verdict::Reserved);
}

async fn purge_is_bounded(f: Fixture) {
    let s = &f.store;
    let short = Duration::from_secs(1);
    for i in 0..10 {
        let id = format!("old-{i}");
        deliver(s, req("route-a", Some(&id), None, short)).await;
    }
    deliver(s, id("live-1")).await;
    deliver(s, id("live-2")).await;
    assert_eq!(s.purge_expired(3).await.unwrap(), 0, "nothing expired yet");
    f.advance(Duration::from_secs(2));
    assert_eq!(s.purge_expired(0).await.unwrap(), 0);
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(3));
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(3));
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(3));
    assert_eq!(s.purge_expired(3).await.unwrap(), f.purged(1));
    assert_eq!(s.purge_expired(3).await.unwrap(), 0);
    assert_eq!(try_reserve(s, id("live-1")).await, Verdict::Duplicate);
    assert_eq!(try_reserve(s, id("live-2")).await, Verdict::Duplicate);
    assert_eq!(
        try_reserve(s, req("route-a", Some("old-0"), None, short)).await,
        Verdict::Reserved
    );
}

async fn order_only(f: Fixture) {
    let s = &f.store;
    let r = must_reserve(s, at("inc-1", 10)).await;
    assert_eq!(r.event_id(), None);
    assert_eq!(
        r.order(),
        Some(OrderPoint {
            entity: "inc-1",
            time: EventTime(10)
        })
    );
    s.commit(r).await.unwrap();
    assert_eq!(try_reserve(s, at("inc-1", 9)).await, Verdict::Stale);
    // No id: the same event again is not a duplicate (equal time passes).
    assert_eq!(try_reserve(s, at("inc-1", 10)).await, Verdict::Reserved);
}

async fn id_only(f: Fixture) {
    let s = &f.store;
    deliver(s, id("evt-1")).await;
    assert_eq!(try_reserve(s, id("evt-1")).await, Verdict::Duplicate);
    // With no order point, any number of different ids may be in flight.
    let _a = must_reserve(s, id("evt-2")).await;
    let _b = must_reserve(s, id("evt-3")).await;
}

async fn neither_id_nor_order(f: Fixture) {
    let s = &f.store;
    let none = req("route-a", None, None, LONG_TTL);
    let a = must_reserve(s, none).await;
    let b = must_reserve(s, none).await;
    s.commit(a).await.unwrap();
    s.release(b).await.unwrap();
    assert_eq!(try_reserve(s, none).await, Verdict::Reserved);
}

async fn entity_in_flight(f: Fixture) {
    let s = &f.store;
    let held = must_reserve(
        s,
        req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    // A newer or an older event of the same entity waits; so does one without id.
    let newer = req("route-a", Some("evt-2"), Some(("inc-1", 20)), LONG_TTL);
    let older = req("route-a", Some("evt-3"), Some(("inc-1", 5)), LONG_TTL);
    assert_eq!(try_reserve(s, newer).await, Verdict::InFlight);
    assert_eq!(try_reserve(s, older).await, Verdict::InFlight);
    assert_eq!(try_reserve(s, at("inc-1", 30)).await, Verdict::InFlight);
    s.commit(held).await.unwrap();
    // Once committed, the older one is stale and the newer one goes.
    assert_eq!(try_reserve(s, older).await, Verdict::Stale);
    assert_eq!(try_reserve(s, newer).await, Verdict::Reserved);
}

async fn precedence(f: Fixture) {
    let s = &f.store;
    deliver(
        s,
        req("route-a", Some("seen"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    let _held = must_reserve(
        s,
        req("route-a", Some("held"), Some(("inc-1", 20)), LONG_TTL),
    )
    .await;
    // Duplicate beats entity in flight and stale.
    assert_eq!(
        try_reserve(
            s,
            req("route-a", Some("seen"), Some(("inc-1", 1)), LONG_TTL)
        )
        .await,
        Verdict::Duplicate
    );
    // Id in flight beats stale.
    assert_eq!(
        try_reserve(
            s,
            req("route-a", Some("held"), Some(("inc-1", 1)), LONG_TTL)
        )
        .await,
        Verdict::InFlight
    );
    // Stale beats entity in flight.
    assert_eq!(
        try_reserve(s, req("route-a", Some("new"), Some(("inc-1", 9)), LONG_TTL)).await,
        Verdict::Stale
    );
    // Entity in flight, not stale.
    assert_eq!(
        try_reserve(
            s,
            req("route-a", Some("new"), Some(("inc-1", 10)), LONG_TTL)
        )
        .await,
        Verdict::InFlight
    );
}

async fn foreign_reservation_is_refused(f: Fixture) {
    let other = Store::memory();
    let r = must_reserve(&other, id("evt-1")).await;
    assert!(matches!(
        f.store.commit(r).await.map_err(|e| e.kind()),
        Err(StoreErrorKind::ForeignReservation)
    ));
    // Refused and released in its own store: nothing was marked seen anywhere.
    assert_eq!(try_reserve(&other, id("evt-1")).await, Verdict::Reserved);
    assert_eq!(try_reserve(&f.store, id("evt-1")).await, Verdict::Reserved);
}

async fn route_with_nul_is_refused(f: Fixture) {
    let err = f
        .store
        .reserve(req("a\0b", Some("x"), None, LONG_TTL))
        .await;
    assert!(
        matches!(
            err.as_ref().map_err(StoreError::kind),
            Err(StoreErrorKind::InvalidRoute)
        ),
        "{err:?}"
    );
}

async fn ping_and_name(f: Fixture) {
    f.store.ping().await.unwrap();
    let expected = if f.dir.is_some() {
        "embedded"
    } else if f._redis.is_some() {
        "redis"
    } else {
        "memory"
    };
    assert_eq!(f.store.backend_name(), expected);
}

async fn clones_share_state(f: Fixture) {
    let clone = f.store.clone();
    deliver(&clone, id("evt-1")).await;
    assert_eq!(try_reserve(&f.store, id("evt-1")).await, Verdict::Duplicate);
}

/// Runs every check against every backend, each as its own `#[tokio::test]`
/// on a two-worker runtime so that concurrency checks really interleave.
macro_rules! conformance {
    ($($check:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Fixture::memory()).await;
                }
            )*
        }
        mod embedded {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Fixture::embedded()).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $check() {
                    super::$check(super::Fixture::redis()).await;
                }
            )*
        }
    };
}

conformance!(
    commit_marks_duplicate,
    release_leaves_no_trace,
    drop_releases,
    concurrent_same_id_reserves_once,
    commit_has_no_window,
    stale_equal_newer,
    watermark_never_lowers,
    entities_are_independent,
    routes_are_independent,
    ttl_expires_on_read,
    watermark_expires_on_read,
    watermark_expiry_refreshed_by_commit,
    purge_takes_expired_watermarks,
    purge_is_bounded,
    order_only,
    id_only,
    neither_id_nor_order,
    entity_in_flight,
    precedence,
    foreign_reservation_is_refused,
    route_with_nul_is_refused,
    ping_and_name,
    clones_share_state,
);

// === Real clock ===

/// The production clock (`SystemTime`) with a short real TTL, per backend.
async fn real_clock_ttl(store: Store) {
    let ttl = Duration::from_millis(300);
    deliver(&store, req("route-a", Some("evt-1"), None, ttl)).await;
    assert_eq!(
        try_reserve(&store, req("route-a", Some("evt-1"), None, ttl)).await,
        Verdict::Duplicate
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(
        try_reserve(&store, req("route-a", Some("evt-1"), None, ttl)).await,
        Verdict::Reserved
    );
    let purged = if matches!(store, Store::Redis(_)) {
        0
    } else {
        1
    };
    assert_eq!(store.purge_expired(10).await.unwrap(), purged);
}

#[tokio::test]
async fn memory_real_clock_ttl() {
    real_clock_ttl(Store::memory()).await;
}

#[tokio::test]
async fn embedded_real_clock_ttl() {
    let dir = tempfile::tempdir().unwrap();
    real_clock_ttl(Store::open_embedded(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn redis_real_clock_ttl() {
    let server = RedisServer::start();
    let store = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    real_clock_ttl(store).await;
}

// === Redis only: what the other backends cannot show ===

/// Dedup keys and watermarks carry their TTL in Redis (space is reclaimed by Redis
/// itself), and a committed reservation leaves no lease behind.
#[tokio::test]
async fn redis_keys_carry_ttl_and_leases_go() {
    let server = RedisServer::start();
    let store = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    deliver(
        &store,
        req(
            "route-a",
            Some("evt-1"),
            Some(("inc-1", 5)),
            Duration::from_secs(100),
        ),
    )
    .await;
    let pttl = server.command("PTTL hgtest:{route-a}:seen:evt-1");
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap();
    assert!((90_000..=100_000).contains(&ms), "{pttl}");
    // A watermark carries `order_ttl` (here "never": capped at 2^50 ms for Redis).
    let pttl = server.command("PTTL hgtest:{route-a}:wm:inc-1");
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap();
    assert!(ms > 1 << 49, "{pttl}");
    assert!(
        server
            .command("EXISTS hgtest:{route-a}:lease:id:evt-1")
            .starts_with(":0")
    );
    assert!(
        server
            .command("EXISTS hgtest:{route-a}:lease:ent:inc-1")
            .starts_with(":0")
    );
    // A held reservation's lease carries the lease time.
    let _held = must_reserve(&store, id("evt-2")).await;
    let pttl = server.command("PTTL hgtest:{route-a}:lease:id:evt-2");
    let ms: i64 = pttl.trim().trim_start_matches(':').parse().unwrap();
    assert!((20_000..=30_000).contains(&ms), "{pttl}");
}

/// A replica that dies mid-delivery never releases: its lease expires by itself and
/// the sender's retry goes through on another replica.
#[tokio::test]
async fn redis_lease_of_a_dead_replica_expires() {
    let server = RedisServer::start();
    let dead = Store::open_redis(&redis_options(&server, Duration::from_millis(300))).unwrap();
    let alive = Store::open_redis(&redis_options(&server, Duration::from_millis(300))).unwrap();
    let r = must_reserve(
        &dead,
        req("route-a", Some("evt-1"), Some(("inc-1", 1)), LONG_TTL),
    )
    .await;
    // The process is gone: nothing runs its release.
    std::mem::forget(r);
    assert_eq!(try_reserve(&alive, id("evt-1")).await, Verdict::InFlight);
    assert_eq!(try_reserve(&alive, at("inc-1", 2)).await, Verdict::InFlight);
    tokio::time::sleep(Duration::from_millis(400)).await;
    deliver(
        &alive,
        req("route-a", Some("evt-1"), Some(("inc-1", 2)), LONG_TTL),
    )
    .await;
    assert_eq!(try_reserve(&dead, id("evt-1")).await, Verdict::Duplicate);
    assert_eq!(try_reserve(&dead, at("inc-1", 1)).await, Verdict::Stale);
}

/// Two store instances (two replicas) on one Redis: 50 concurrent reserves of one id
/// spread over both reserve it once; a commit on one is a duplicate on the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_two_instances_reserve_once() {
    let server = RedisServer::start();
    let a = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    let b = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    let barrier = Arc::new(tokio::sync::Barrier::new(50));
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let store = if i % 2 == 0 { a.clone() } else { b.clone() };
            let barrier = Arc::clone(&barrier);
            tokio::spawn(async move {
                barrier.wait().await;
                (i % 2, store.reserve(id("evt-1")).await.unwrap())
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.unwrap());
    }
    let reserved: Vec<_> = outcomes
        .into_iter()
        .filter_map(|(side, o)| match o {
            ReserveOutcome::Reserved(r) => Some((side, r)),
            ReserveOutcome::InFlight => None,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(reserved.len(), 1);
    let (side, r) = reserved.into_iter().next().unwrap();
    let (mine, other) = if side == 0 { (&a, &b) } else { (&b, &a) };
    // The other replica cannot commit or release it (its lease is not theirs).
    mine.commit(r).await.unwrap();
    assert_eq!(try_reserve(other, id("evt-1")).await, Verdict::Duplicate);
}

/// Two store instances (two replicas' consumers) on one route's outbox: what one
/// read is pending with it, invisible to the other's reads; the other's takeover waits
/// for entries read less than the visibility timeout ago instead of delivering around
/// them, and a settlement (ACK) takes an entry out of the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outbox_consumers_and_takeover_wait() {
    use super::outbox::{OutboxOp, Takeover};
    let server = RedisServer::start();
    let a = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    let b = Store::open_redis(&redis_options(&server, Duration::from_secs(30))).unwrap();
    let created = a.outbox_takeover("r").await.unwrap();
    assert_eq!(
        created,
        Takeover {
            taken: 0,
            waiting: 0,
            created: true
        }
    );
    for i in 0..3u8 {
        a.accept(None, "r", vec![b'x', i]).await.unwrap();
    }
    let read = a.outbox_next("r", 0, 10).await.unwrap();
    assert_eq!(read.iter().map(|s| s.seq).collect::<Vec<_>>(), [1, 2, 3]);
    // A's own pending entries come back above `after` (a restarted window).
    assert_eq!(a.outbox_next("r", 1, 10).await.unwrap().len(), 2);
    assert!(b.outbox_next("r", 0, 10).await.unwrap().is_empty());
    let t = b.outbox_takeover("r").await.unwrap();
    assert_eq!((t.taken, t.waiting, t.created), (0, 3, false));
    let removed = a
        .outbox_apply(OutboxOp::Remove {
            route: "r".into(),
            seq: 1,
        })
        .await
        .unwrap();
    assert_eq!(removed, Some(1));
    assert_eq!(b.outbox_takeover("r").await.unwrap().waiting, 2);
    // A new entry goes to whichever consumer reads first, once.
    a.accept(None, "r", b"y".to_vec()).await.unwrap();
    assert_eq!(b.outbox_next("r", 0, 10).await.unwrap().len(), 1);
    assert!(a.outbox_next("r", 3, 10).await.unwrap().is_empty());
}

/// Start-up says which of url / password / host is wrong.
#[tokio::test]
async fn redis_open_errors_say_which() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let open = |url: String| {
        let mut o = redis_options(&server, Duration::from_secs(30));
        o.url = url;
        o.connect_timeout = Duration::from_millis(500);
        super::RedisStore::probe(&o).unwrap_err().to_string()
    };
    let wrong = open(format!("redis://:nope@127.0.0.1:{}/0", server.port()));
    assert!(wrong.contains("wrong user or password"), "{wrong}");
    assert!(
        !wrong.contains("nope"),
        "the password is never shown: {wrong}"
    );
    let unreachable = open("redis://127.0.0.1:1/0".to_owned());
    assert!(unreachable.contains("unreachable"), "{unreachable}");
    let bad = open("redis://127.0.0.1:notaport/0".to_owned());
    assert!(bad.contains("bad url") || bad.contains("invalid"), "{bad}");
    let mut o = redis_options(&server, Duration::from_secs(30));
    o.url = format!("redis://:s3cret@127.0.0.1:{}/0", server.port());
    Store::open_redis(&o).unwrap();
}

// === Restart ===

#[tokio::test]
async fn embedded_state_survives_reopen() {
    let f = Fixture::embedded();
    let dir = f.dir.as_ref().unwrap().path().to_owned();
    assert!(dir.join(super::embedded::FILE_NAME).is_file());
    deliver(
        &f.store,
        req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    // In-flight state is not durable: this reservation must not survive.
    let held = must_reserve(
        &f.store,
        req("route-a", Some("evt-2"), Some(("inc-2", 1)), LONG_TTL),
    )
    .await;
    let now = Arc::clone(&f.now);
    drop(f.store);
    drop(held);

    let store = open_embedded(&dir, &now);
    assert_eq!(try_reserve(&store, id("evt-1")).await, Verdict::Duplicate);
    assert_eq!(try_reserve(&store, at("inc-1", 9)).await, Verdict::Stale);
    assert_eq!(
        try_reserve(&store, at("inc-1", 10)).await,
        Verdict::Reserved
    );
    assert_eq!(
        try_reserve(
            &store,
            req("route-a", Some("evt-2"), Some(("inc-2", 1)), LONG_TTL)
        )
        .await,
        Verdict::Reserved
    );
    // Expiry is persisted too: it still runs out after the restart.
    now.fetch_add(
        u64::try_from(LONG_TTL.as_nanos()).unwrap(),
        Ordering::SeqCst,
    );
    assert_eq!(try_reserve(&store, id("evt-1")).await, Verdict::Reserved);
}

#[tokio::test]
async fn embedded_file_is_exclusive() {
    let f = Fixture::embedded();
    let err = Store::open_embedded(f.dir.as_ref().unwrap().path());
    assert!(
        matches!(
            err.as_ref().map_err(StoreError::kind),
            Err(StoreErrorKind::InUse)
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn memory_store_forgets() {
    let first = Store::memory();
    deliver(
        &first,
        req("route-a", Some("evt-1"), Some(("inc-1", 10)), LONG_TTL),
    )
    .await;
    drop(first);
    let second = Store::memory();
    assert_eq!(
        try_reserve(
            &second,
            req("route-a", Some("evt-1"), Some(("inc-1", 9)), LONG_TTL)
        )
        .await,
        Verdict::Reserved
    );
}

// === Property test against a reference model ===

mod model {
    use super::*;
    use proptest::prelude::*;

    const SLOTS: usize = 3;
    const TTL: Duration = Duration::from_secs(2);

    /// One step of a random schedule. Slots stand for requests between
    /// `reserve` and the end of their delivery.
    #[derive(Clone, Debug)]
    enum Op {
        Reserve {
            slot: usize,
            route: u8,
            id: Option<u8>,
            entity: Option<(u8, i64)>,
        },
        /// Delivery finished: commit on success, release on failure.
        Finish {
            slot: usize,
            success: bool,
        },
        Advance {
            millis: u64,
        },
        Purge {
            max: usize,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0..SLOTS, 0..2u8, proptest::option::weighted(0.8, 0..4u8),
                  proptest::option::weighted(0.8, (0..3u8, 0..6i64)))
                .prop_map(|(slot, route, id, entity)| Op::Reserve { slot, route, id, entity }),
            4 => (0..SLOTS, proptest::bool::weighted(0.7))
                .prop_map(|(slot, success)| Op::Finish { slot, success }),
            1 => (0..1500u64).prop_map(|millis| Op::Advance { millis }),
            1 => (0..4usize).prop_map(|max| Op::Purge { max }),
        ]
    }

    /// A request held in a slot: what was reserved.
    #[derive(Clone, Debug)]
    struct Held {
        route: u8,
        id: Option<u8>,
        entity: Option<(u8, i64)>,
    }

    /// The contract, written as plainly as possible.
    #[derive(Default)]
    struct Model {
        now: u64,
        seen: HashMap<(u8, u8), u64>,
        watermarks: HashMap<(u8, u8), i64>,
        slots: [Option<Held>; SLOTS],
    }

    impl Model {
        fn expect(&self, h: &Held) -> Verdict {
            let in_flight = || self.slots.iter().flatten();
            if let Some(id) = h.id {
                if self.seen.get(&(h.route, id)).is_some_and(|&t| t > self.now) {
                    return Verdict::Duplicate;
                }
                if in_flight().any(|o| o.route == h.route && o.id == Some(id)) {
                    return Verdict::InFlight;
                }
            }
            if let Some((entity, time)) = h.entity {
                if self
                    .watermarks
                    .get(&(h.route, entity))
                    .is_some_and(|&w| w > time)
                {
                    return Verdict::Stale;
                }
                if in_flight().any(|o| o.route == h.route && o.entity.map(|e| e.0) == Some(entity))
                {
                    return Verdict::InFlight;
                }
            }
            Verdict::Reserved
        }
    }

    fn run(make: impl Fn() -> Fixture, ops: Vec<Op>) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let f = make();
            let mut model = Model {
                now: START_NANOS,
                ..Model::default()
            };
            let mut reservations: [Option<Reservation>; SLOTS] = Default::default();
            // Independent invariants, checked on the commit log rather than
            // through the model: (a) no id committed twice within its TTL,
            // (b) per entity, committed times never decrease.
            let mut last_commit: HashMap<(u8, u8), u64> = HashMap::new();
            let mut last_time: HashMap<(u8, u8), i64> = HashMap::new();
            let routes = ["route-a", "route-b"];

            for op in ops {
                match op {
                    Op::Reserve {
                        slot,
                        route,
                        id,
                        entity,
                    } => {
                        if model.slots[slot].is_some() {
                            continue;
                        }
                        let held = Held { route, id, entity };
                        let id_s = id.map(|i| format!("evt-{i}"));
                        let entity_s = entity.map(|(e, _)| format!("inc-{e}"));
                        let request = ReserveRequest {
                            route: routes[usize::from(route)],
                            event_id: id_s.as_deref(),
                            order: entity_s
                                .as_deref()
                                .zip(entity)
                                .map(|(e, (_, t))| OrderPoint {
                                    entity: e,
                                    time: EventTime(t),
                                }),
                            dedup_ttl: TTL,
                            order_ttl: Duration::MAX,
                        };
                        let expected = model.expect(&held);
                        let outcome = f.store.reserve(request).await.unwrap();
                        prop_assert_eq!(verdict(&outcome), expected, "{:?}", held);
                        if let ReserveOutcome::Reserved(r) = outcome {
                            reservations[slot] = Some(r);
                            model.slots[slot] = Some(held);
                        }
                    }
                    Op::Finish { slot, success } => {
                        let (Some(r), Some(held)) =
                            (reservations[slot].take(), model.slots[slot].take())
                        else {
                            continue;
                        };
                        if !success {
                            f.store.release(r).await.unwrap();
                            continue;
                        }
                        // Every commit at its own instant, so no two ids share an expiry:
                        // which of several tied keys a bounded purge takes is the backend's
                        // choice (the embedded store orders them by their hash), not the
                        // model's to guess.
                        f.advance(Duration::from_nanos(1));
                        model.now += 1;
                        f.store.commit(r).await.unwrap();
                        if let Some(id) = held.id {
                            let key = (held.route, id);
                            if let Some(prev) = last_commit.get(&key) {
                                prop_assert!(
                                    model.now >= prev + duration(TTL),
                                    "id {:?} committed twice within the TTL",
                                    key
                                );
                            }
                            last_commit.insert(key, model.now);
                            model.seen.insert(key, model.now + duration(TTL));
                        }
                        if let Some((entity, time)) = held.entity {
                            let key = (held.route, entity);
                            if let Some(prev) = last_time.get(&key) {
                                prop_assert!(
                                    time >= *prev,
                                    "entity {:?} committed {} after {}",
                                    key,
                                    time,
                                    prev
                                );
                            }
                            last_time.insert(key, time);
                            let w = model.watermarks.entry(key).or_insert(time);
                            *w = (*w).max(time);
                        }
                    }
                    Op::Advance { millis } => {
                        f.advance(Duration::from_millis(millis));
                        model.now += duration(Duration::from_millis(millis));
                    }
                    Op::Purge { max } => {
                        // Oldest expiry first, as documented (no ties: see Finish):
                        // which keys go matters once an expired id is re-committed.
                        let mut expired: Vec<_> = model
                            .seen
                            .iter()
                            .filter(|(_, t)| **t <= model.now)
                            .map(|(k, t)| (*t, *k))
                            .collect();
                        expired.sort_unstable();
                        expired.truncate(max);
                        for (_, k) in &expired {
                            model.seen.remove(k);
                        }
                        prop_assert_eq!(f.store.purge_expired(max).await.unwrap(), expired.len());
                    }
                }
            }
            Ok(())
        })
    }

    fn duration(d: Duration) -> u64 {
        u64::try_from(d.as_nanos()).unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn memory_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
            run(Fixture::memory, ops)?;
        }
    }

    proptest! {
        // Every commit fsyncs: keep the embedded run small.
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn embedded_matches_model(ops in proptest::collection::vec(op(), 1..60)) {
            run(Fixture::embedded, ops)?;
        }
    }
}

// === Static properties the gateway relies on ===

/// The store is shared across axum handlers and its futures are `Send`.
#[test]
fn store_and_futures_are_send() {
    fn send_sync<T: Send + Sync + 'static>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let store = Store::memory();
    send_sync(&store);
    send(&store.reserve(id("evt-1")));
    send(&store.ping());
    send(&store.purge_expired(1));
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let r = rt.block_on(must_reserve(&store, id("evt-1")));
    send_sync(&r);
    send(&store.commit(r));
}

/// `wait_replicas`: a commit waits for that many Redis replicas (`WAIT`); with fewer
/// connected it fails (the caller answers 503 and the sender retries).
#[tokio::test]
async fn redis_wait_replicas() {
    let primary = RedisServer::start();
    let port = primary.port().to_string();
    let _replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &port]);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !primary.command("INFO replication").contains("state=online") {
        assert!(
            std::time::Instant::now() < deadline,
            "the replica never connected"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut options = redis_options(&primary, Duration::from_secs(30));
    options.wait_replicas = 1;
    let one = Store::open_redis(&options).unwrap();
    deliver(&one, id("evt-1")).await;
    let r = must_reserve(&one, id("evt-2")).await;
    one.accept(Some(r), "route-a", b"{}".to_vec())
        .await
        .unwrap();
    options.wait_replicas = 2;
    let two = Store::open_redis(&options).unwrap();
    let r = must_reserve(&two, id("evt-3")).await;
    let err = two.commit(r).await.unwrap_err();
    assert!(
        err.kind() == StoreErrorKind::NotReplicated
            && err.to_string() == "redis: only 1 of 2 replicas acknowledged the write",
        "{err}"
    );
}
