//! The async delivery workers: one task per async route, delivering its outbox.
//!
//! A worker keeps a window of the route's oldest pending records (metadata only;
//! bodies are read from the store per attempt) and launches at most `concurrency`
//! attempts at once. Per entity, only the oldest pending record is eligible, so an
//! event never overtakes an older one of its entity, while other entities (and events
//! without an entity) go ahead. Each attempt settles itself (delivered → removed,
//! failed → attempt noted and retried after [`next_step`]'s pause, last attempt →
//! dead letter) and reports back. New records are found by polling the store for
//! seqs above the last one loaded ([`POLL`]), which also picks up replayed dead
//! letters and whatever a previous run left behind.
//!
//! On a store shared by replicas (Redis) every replica runs the worker, but only the
//! holder of the route's lease delivers (renewed every 2 s); the others
//! wait to take over. A worker that takes the lease, or loses it, drops its window and
//! starts again from the outbox's head, so per-entity order holds across a takeover.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::{HeaderName, HeaderValue};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::outbox::{OutboxReader, Record, jitter, pair};
use super::retry::{AttemptResult, Step, next_step};
use super::{Deliverer, Outbound};
use crate::config::Route;
use crate::store::WORKER_RENEW;
use crate::store::outbox::{OutboxOp, WorkerLease};
use crate::telemetry::{DeliveryOutcome, Metrics};

/// How often a worker looks for new records when nothing else wakes it.
pub const POLL: Duration = Duration::from_millis(20);

/// Most pending records a worker holds in memory (metadata only). Beyond it, newer
/// records wait in the store; an entity blocked at the head of a window this full
/// would hold back the route, which takes 10 000 pending events of that one entity.
pub const WINDOW: usize = 10_000;

/// Pause before retrying a record whose settlement could not be written.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Longest `Retry-After` believed (an upstream asking for more is capped here).
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);

struct Entry {
    entity: Option<String>,
    attempts: u32,
    received_ms: u64,
    next_at: Instant,
    running: bool,
}

/// How an attempt ended, for the worker's window.
enum Settled {
    /// Removed from the outbox (delivered or dead-lettered).
    Gone,
    /// Still pending: try again at this instant.
    Later(Instant, u32),
}

/// Starts a worker for every async route of `routes`; they stop when `stop` is
/// cancelled, letting attempts in flight finish.
pub fn spawn_all(
    routes: impl Iterator<Item = Arc<Route>>,
    store: &crate::store::Store,
    deliverer: &Deliverer,
    metrics: &Arc<Metrics>,
    stop: &CancellationToken,
) -> JoinSet<()> {
    let mut set = JoinSet::new();
    for route in routes {
        if route.delivery != crate::config::spec::DeliveryMode::Async {
            continue;
        }
        let (_, reader) = pair(store);
        set.spawn(run(
            route,
            reader,
            deliverer.clone(),
            Arc::clone(metrics),
            stop.clone(),
        ));
    }
    set
}

/// One route's worker loop.
pub async fn run(
    route: Arc<Route>,
    reader: OutboxReader,
    deliverer: Deliverer,
    metrics: Arc<Metrics>,
    stop: CancellationToken,
) {
    let mut pending: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut after = 0u64;
    let mut running: JoinSet<(u64, Settled)> = JoinSet::new();
    let mut next_poll = Instant::now();
    // A store shared by replicas: only the holder of the route's lease delivers.
    let shared = reader.shared();
    let mut held = !shared;
    let mut next_lease = Instant::now();
    loop {
        let now = Instant::now();
        if shared && now >= next_lease {
            next_lease = now + WORKER_RENEW;
            if let Err(e) = reader.refresh(&route.name).await {
                tracing::debug!(route = %route.name, error = %e, "Outbox counts not refreshed.");
            }
            let lease = reader.worker_lease(&route.name, false).await;
            let keep = match &lease {
                Ok(WorkerLease::Renewed) => held,
                Ok(WorkerLease::Taken) => {
                    tracing::info!(route = %route.name, "This replica now delivers the route's outbox.");
                    false
                }
                Ok(WorkerLease::Elsewhere) => false,
                Err(e) => {
                    tracing::warn!(route = %route.name, error = %e, "Outbox lease not renewed.");
                    false
                }
            };
            if !keep {
                // What was loaded may be stale (another replica delivered it, or the
                // store restarted empty): settle what runs, then start from the head.
                while running.join_next().await.is_some() {}
                pending.clear();
                after = 0;
            }
            held = matches!(lease, Ok(WorkerLease::Renewed | WorkerLease::Taken));
        }
        if !held {
            metrics.outbox(
                &route.name,
                reader.pending(&route.name),
                None,
                reader.dead(&route.name),
            );
            tokio::select! {
                () = tokio::time::sleep_until(next_lease) => {}
                () = stop.cancelled() => break,
            }
            continue;
        }
        // A full window still advances the poll clock, or the loop would spin.
        let scan = now >= next_poll && pending.len() < WINDOW;
        if now >= next_poll {
            next_poll = now + POLL;
        }
        if scan {
            match reader
                .scan(&route.name, after, WINDOW - pending.len())
                .await
            {
                Ok(found) => {
                    for stored in found {
                        after = after.max(stored.seq);
                        match Record::decode(&stored.record) {
                            Ok(r) => {
                                pending.insert(
                                    stored.seq,
                                    Entry {
                                        entity: r.entity,
                                        attempts: r.attempts,
                                        received_ms: r.received_ms,
                                        next_at: now,
                                        running: false,
                                    },
                                );
                            }
                            Err(e) => {
                                tracing::error!(route = %route.name, seq = stored.seq, error = %e, "Unreadable outbox record: dead-lettered as it is.");
                                let _ = reader
                                    .apply(OutboxOp::DeadLetter {
                                        route: route.name.to_string(),
                                        seq: stored.seq,
                                        record: stored.record,
                                    })
                                    .await;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(route = %route.name, error = %e, "Outbox scan failed."),
            }
        }
        let (launch, due) = eligible(
            pending.iter(),
            now,
            route.concurrency.saturating_sub(running.len()),
        );
        let mut wake = due.map_or(next_poll, |d| d.min(next_poll));
        if shared {
            wake = wake.min(next_lease);
        }
        for seq in launch {
            if let Some(e) = pending.get_mut(&seq) {
                e.running = true;
                running.spawn(attempt(
                    Arc::clone(&route),
                    reader.clone(),
                    deliverer.clone(),
                    Arc::clone(&metrics),
                    seq,
                    e.attempts,
                ));
            }
        }
        metrics.outbox(
            &route.name,
            reader.pending(&route.name),
            pending.values().map(|e| e.received_ms).min(),
            reader.dead(&route.name),
        );
        tokio::select! {
            Some(done) = running.join_next() => {
                if let Ok((seq, settled)) = done {
                    match settled {
                        Settled::Gone => { pending.remove(&seq); }
                        Settled::Later(at, attempts) => if let Some(e) = pending.get_mut(&seq) {
                            e.running = false;
                            e.next_at = at;
                            e.attempts = attempts;
                        },
                    }
                }
            }
            () = tokio::time::sleep_until(wake) => {}
            () = stop.cancelled() => break,
        }
    }
    // Attempts in flight finish (and settle) before the worker lets the store go.
    while running.join_next().await.is_some() {}
    if shared && held {
        // Hand the route over at once rather than after the lease runs out.
        let _ = reader.worker_lease(&route.name, true).await;
    }
}

/// The records to launch now, in seq order: per entity only the oldest pending record
/// (so nothing overtakes an older event of its entity, and a running or waiting one
/// holds back only its own entity), not running, due, at most `free` of them. Also the
/// earliest instant a waiting record becomes due.
fn eligible<'a>(
    pending: impl Iterator<Item = (&'a u64, &'a Entry)>,
    now: Instant,
    free: usize,
) -> (Vec<u64>, Option<Instant>) {
    let mut blocked: HashSet<&str> = HashSet::new();
    let mut launch = Vec::new();
    let mut due: Option<Instant> = None;
    for (seq, e) in pending {
        if let Some(entity) = &e.entity
            && !blocked.insert(entity.as_str())
        {
            continue;
        }
        if e.running {
            continue;
        }
        if e.next_at > now {
            due = Some(due.map_or(e.next_at, |d| d.min(e.next_at)));
            continue;
        }
        if launch.len() >= free {
            break;
        }
        launch.push(*seq);
    }
    (launch, due)
}

/// One attempt of record `seq`, settled in the store.
async fn attempt(
    route: Arc<Route>,
    reader: OutboxReader,
    deliverer: Deliverer,
    metrics: Arc<Metrics>,
    seq: u64,
    attempts_known: u32,
) -> (u64, Settled) {
    let later = |attempts| Settled::Later(Instant::now() + STORE_RETRY, attempts);
    let mut record = match reader.get(&route.name, seq).await {
        Ok(Some(bytes)) => match Record::decode(&bytes) {
            Ok(r) => r,
            Err(_) => return (seq, later(attempts_known)),
        },
        // Dropped or dead-lettered meanwhile (an operator, another path).
        Ok(None) => return (seq, Settled::Gone),
        Err(e) => {
            tracing::warn!(route = %route.name, error = %e, "Outbox read failed.");
            return (seq, later(attempts_known));
        }
    };
    record.attempts = record.attempts.max(attempts_known) + 1;
    let (Ok(mut headers), Ok(body), Ok(method)) =
        (record.header_map(), record.body_bytes(), record.method())
    else {
        record.note_failure(None, Some("unreadable outbox record"));
        let op = OutboxOp::DeadLetter {
            route: route.name.to_string(),
            seq,
            record: record.encode(),
        };
        return match reader.apply(op).await {
            Ok(_) => (seq, Settled::Gone),
            Err(_) => (seq, later(record.attempts)),
        };
    };
    headers.insert(
        HeaderName::from_static("x-hookgate-attempt"),
        HeaderValue::from(record.attempts),
    );
    let outbound = Outbound {
        route: &route.name,
        method,
        headers,
        body,
        query: record.query.as_deref(),
        event_id: Some(&record.event_id),
        client: &record.client,
        timeout: route.upstream_timeout,
    };
    let delivered = deliverer.deliver(&route.upstream, outbound).await;
    let (outcome, result, status, error) = match &delivered {
        Ok(d) if d.status.is_success() => (
            DeliveryOutcome::success,
            AttemptResult::Delivered,
            None,
            None,
        ),
        Ok(d) => (
            DeliveryOutcome::rejected,
            AttemptResult::Failed {
                retry_after: retry_after(&d.headers),
            },
            Some(d.status.as_u16()),
            None,
        ),
        Err(e) => (
            e.outcome(),
            AttemptResult::Failed { retry_after: None },
            None,
            Some(e.to_string()),
        ),
    };
    metrics.delivery(&route.name, outcome);
    let age = record.age(SystemTime::now());
    let step = next_step(record.attempts, &result, &route.retry, age, jitter());
    let name = route.name.to_string();
    let (op, settled) = match step {
        Step::Done => (OutboxOp::Remove { route: name, seq }, Settled::Gone),
        Step::RetryAfter(pause) => {
            record.note_failure(status, error.as_deref());
            (
                OutboxOp::Update {
                    route: name,
                    seq,
                    record: record.encode(),
                },
                Settled::Later(Instant::now() + pause, record.attempts),
            )
        }
        Step::DeadLetter => {
            record.note_failure(status, error.as_deref());
            tracing::warn!(route = %route.name, event_id = %record.event_id, attempts = record.attempts, status, "Event moved to the dead letters.");
            (
                OutboxOp::DeadLetter {
                    route: name,
                    seq,
                    record: record.encode(),
                },
                Settled::Gone,
            )
        }
    };
    match reader.apply(op).await {
        // Gone from the outbox meanwhile (dropped by an operator): nothing to keep.
        Ok(None) => (seq, Settled::Gone),
        Ok(Some(_)) => (seq, settled),
        Err(e) => {
            // Delivered but not removed: it is delivered again later (at least once).
            tracing::error!(route = %route.name, error = %e, "Outbox settlement failed.");
            (seq, later(record.attempts))
        }
    }
}

/// The upstream's `Retry-After` in seconds (an HTTP date is not read: a retry then
/// follows the backoff alone), capped at [`MAX_RETRY_AFTER`].
fn retry_after(headers: &http::HeaderMap) -> Option<Duration> {
    let secs: u64 = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(secs).min(MAX_RETRY_AFTER))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::store::outbox::Table;
    use crate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest, Store};

    #[derive(Debug, Clone)]
    enum Op {
        /// Accept a new event of entity n (None: no entity).
        Accept(Option<u8>),
        /// The k-th eligible record is delivered.
        Deliver(usize),
        /// The k-th eligible record fails (dead-lettered from its 3rd failure).
        Fail(usize),
        /// kill -9 and restart: the store is reopened, the window rebuilt from it.
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => proptest::option::of(0u8..3).prop_map(Op::Accept),
            2 => (0usize..4).prop_map(Op::Deliver),
            1 => (0usize..4).prop_map(Op::Fail),
            1 => Just(Op::Crash),
        ]
    }

    /// The window a (re)started worker builds: every pending record, due now.
    async fn window(store: &Store) -> BTreeMap<u64, Entry> {
        let now = Instant::now();
        store
            .outbox_scan(Table::Outbox, Some("r"), 0, usize::MAX)
            .await
            .unwrap()
            .into_iter()
            .map(|s| {
                let r = Record::decode(&s.record).unwrap();
                (
                    s.seq,
                    Entry {
                        entity: r.entity,
                        attempts: r.attempts,
                        received_ms: r.received_ms,
                        next_at: now,
                        running: false,
                    },
                )
            })
            .collect()
    }

    /// Settles the k-th eligible record (delivered or failed), as `attempt` does.
    async fn settle(store: &Store, k: usize, ok: bool, settled: &mut Vec<(String, i64)>) {
        let pending = window(store).await;
        let (launch, _) = eligible(pending.iter(), Instant::now(), usize::MAX);
        let Some(&seq) = launch.get(k % launch.len().max(1)) else {
            return;
        };
        let mut r = Record::decode(
            &store
                .outbox_get(Table::Outbox, "r", seq)
                .await
                .unwrap()
                .unwrap(),
        )
        .unwrap();
        r.attempts += 1;
        let route = "r".to_owned();
        let op = if ok {
            OutboxOp::Remove { route, seq }
        } else if r.attempts >= 3 {
            OutboxOp::DeadLetter {
                route,
                seq,
                record: r.encode(),
            }
        } else {
            OutboxOp::Update {
                route,
                seq,
                record: r.encode(),
            }
        };
        let finished = !matches!(op, OutboxOp::Update { .. });
        assert!(store.outbox_apply(op).await.unwrap().is_some());
        if finished {
            settled.push((r.event_id.clone(), r.event_time.unwrap_or(0)));
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        /// Random accept / deliver / fail / crash-restart sequences against a reference
        /// model: no accepted id is lost (each ends delivered or dead-lettered exactly
        /// once), and per entity the settlement order never goes back in event time.
        #[test]
        fn outbox_matches_the_model(ops in proptest::collection::vec(op(), 1..40)) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let dir = tempfile::tempdir().unwrap();
                let mut store = Store::open_embedded(dir.path()).unwrap();
                let mut accepted: HashMap<String, Option<String>> = HashMap::new();
                let mut settled: Vec<(String, i64)> = Vec::new();
                let mut clock = 0i64;
                for op in ops {
                    match op {
                        Op::Accept(entity) => {
                            clock += 1;
                            let id = format!("e{clock}");
                            let entity = entity.map(|n| format!("ent{n}"));
                            let req = ReserveRequest {
                                route: "r",
                                event_id: Some(&id),
                                order: entity.as_deref().map(|e| OrderPoint { entity: e, time: EventTime(clock) }),
                                dedup_ttl: Duration::from_secs(3600),
                            };
                            let ReserveOutcome::Reserved(res) = store.reserve(req).await.unwrap() else {
                                panic!("a fresh id with a newer time is reserved");
                            };
                            let order = entity.clone().map(|e| (e, clock));
                            let rec = super::super::outbox::record_for(
                                &id, order.as_ref(), &http::Method::POST, None,
                                &http::HeaderMap::new(), b"{}", "127.0.0.1",
                            );
                            store.accept(Some(res), "r", rec.encode()).await.unwrap();
                            accepted.insert(id, entity);
                        }
                        Op::Deliver(k) => settle(&store, k, true, &mut settled).await,
                        Op::Fail(k) => settle(&store, k, false, &mut settled).await,
                        Op::Crash => {
                            drop(store);
                            store = Store::open_embedded(dir.path()).unwrap();
                        }
                    }
                }
                // Drain: a final worker delivers everything left.
                while store.outbox_pending("r") > 0 {
                    settle(&store, 0, true, &mut settled).await;
                }
                let mut seen: HashMap<&str, usize> = HashMap::new();
                for (id, _) in &settled {
                    *seen.entry(id.as_str()).or_insert(0) += 1;
                }
                for id in accepted.keys() {
                    prop_assert_eq!(seen.get(id.as_str()).copied(), Some(1), "{} lost or settled twice", id);
                }
                let mut newest: HashMap<&str, i64> = HashMap::new();
                for (id, t) in &settled {
                    if let Some(Some(entity)) = accepted.get(id) {
                        let prev = newest.entry(entity.as_str()).or_insert(0);
                        prop_assert!(*t >= *prev, "{} of {} settled after a newer event", id, entity);
                        *prev = *t;
                    }
                }
                prop_assert_eq!(store.outbox_pending("r"), 0);
                Ok(())
            })?;
        }
    }
}
