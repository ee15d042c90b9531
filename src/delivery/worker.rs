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
//! starts again from the outbox's head. Taking over, it first claims the entries the
//! previous holder read and did not settle (`XAUTOCLAIM` in the route's consumer
//! group) and delivers nothing until all are claimed; they come back first, in stream
//! order, so per-entity order holds across a takeover.

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

/// The running workers, one per async route: started with the server, reconciled with
/// every configuration reload, stopped on shutdown. Cheap to clone (clones share them).
///
/// # Reload
///
/// A reload that adds an async route (or makes a route async) starts its worker. One
/// whose delivery settings changed (upstream, timeout, retry, concurrency, CA) gets a
/// new worker once the old one has finished its attempts in flight, so no record is
/// attempted by both. A route removed or made sync is **drained**: its worker keeps
/// delivering what the route has pending, with the settings it had, and stops when
/// nothing is left (logged at the reload with the pending count); nothing pending is
/// orphaned. A worker that is unchanged keeps running, with its backoff pauses.
#[derive(Debug, Clone, Default)]
pub struct Workers {
    registry: Arc<std::sync::Mutex<Registry>>,
    tasks: tokio_util::task::TaskTracker,
    stop: CancellationToken,
}

#[derive(Debug, Default)]
struct Registry {
    /// False until [`Workers::start`]: a reload of a gateway that is not serving starts
    /// nothing.
    started: bool,
    by_route: std::collections::HashMap<Arc<str>, Running>,
    aborts: Vec<tokio::task::AbortHandle>,
}

#[derive(Debug)]
struct Running {
    spec: Arc<Route>,
    /// Stop launching attempts; the worker ends once those in flight settle.
    stop: CancellationToken,
    /// Deliver what is pending, then end.
    retire: CancellationToken,
    /// Cancelled when the worker has ended.
    done: CancellationToken,
}

/// Whether a worker built from `a` delivers exactly as one built from `b` would.
fn same_delivery(a: &Route, b: &Route) -> bool {
    a.delivery == b.delivery
        && a.upstream == b.upstream
        && a.upstream_timeout == b.upstream_timeout
        && a.retry == b.retry
        && a.concurrency == b.concurrency
        // Certificates cannot be compared: a route with extra CAs is always restarted.
        && a.upstream_ca.is_none()
        && b.upstream_ca.is_none()
}

/// What a worker needs from the gateway it is started for.
#[derive(Debug, Clone, Copy)]
pub struct Resources<'a> {
    /// The store holding the outbox.
    pub store: &'a crate::store::Store,
    /// The gateway's HTTP client and file sinks.
    pub deliverer: &'a Deliverer,
    /// Where attempts are counted.
    pub metrics: &'a Arc<Metrics>,
}

impl Workers {
    /// No workers yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts a worker for every async route of `routes`.
    pub fn start(&self, routes: impl Iterator<Item = Arc<Route>>, with: Resources<'_>) {
        self.lock().started = true;
        self.reconcile(routes, with);
    }

    /// Brings the workers in line with `routes` (the routes of a reloaded
    /// configuration): see the type's docs. Does nothing before [`Workers::start`].
    pub fn reconcile(&self, routes: impl Iterator<Item = Arc<Route>>, with: Resources<'_>) {
        let mut registry = self.lock();
        if !registry.started || self.stop.is_cancelled() {
            return;
        }
        registry.aborts.retain(|a| !a.is_finished());
        registry.by_route.retain(|_, r| !r.done.is_cancelled());
        let wanted: std::collections::HashMap<Arc<str>, Arc<Route>> = routes
            .filter(|r| r.delivery == crate::config::spec::DeliveryMode::Async)
            .map(|r| (Arc::clone(&r.name), r))
            .collect();
        for (name, running) in &registry.by_route {
            if !wanted.contains_key(name) && !running.retire.is_cancelled() {
                let pending = with.store.outbox_pending(name);
                tracing::warn!(route = %name, pending, "Route no longer async: its worker delivers what is pending with its previous settings, then stops.");
                running.retire.cancel();
            }
        }
        for (name, spec) in wanted {
            let previous = match registry.by_route.get(&name) {
                Some(r) if !r.retire.is_cancelled() && same_delivery(&r.spec, &spec) => continue,
                Some(r) => {
                    tracing::info!(route = %name, "Async delivery settings changed: the route's worker restarts once its attempts in flight settle.");
                    r.stop.cancel();
                    Some(r.done.clone())
                }
                None => {
                    tracing::info!(route = %name, "Async delivery worker started.");
                    None
                }
            };
            let running = Running {
                spec: Arc::clone(&spec),
                stop: self.stop.child_token(),
                retire: CancellationToken::new(),
                done: CancellationToken::new(),
            };
            let (_, reader) = pair(with.store);
            let task = run(
                spec,
                reader,
                with.deliverer.clone(),
                Arc::clone(with.metrics),
                Control {
                    stop: running.stop.clone(),
                    retire: running.retire.clone(),
                },
            );
            let done = running.done.clone();
            let handle = self.tasks.spawn(async move {
                if let Some(previous) = previous {
                    previous.cancelled().await;
                }
                task.await;
                done.cancel();
            });
            registry.aborts.push(handle.abort_handle());
            registry.by_route.insert(name, running);
        }
    }

    /// Stops every worker: attempts in flight finish and settle, within `deadline`;
    /// after it they are aborted (an aborted attempt is retried after a restart).
    pub async fn shutdown(&self, deadline: Duration) {
        self.stop.cancel();
        self.tasks.close();
        if tokio::time::timeout(deadline, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!("Drain timeout passed with async deliveries still in flight.");
            for a in &self.lock().aborts {
                a.abort();
            }
            self.tasks.wait().await;
        }
    }

    /// The routes with a worker running (draining ones included), for tests and logs.
    pub fn routes(&self) -> Vec<Arc<str>> {
        let registry = self.lock();
        let mut names: Vec<_> = registry
            .by_route
            .iter()
            .filter(|(_, r)| !r.done.is_cancelled())
            .map(|(n, _)| Arc::clone(n))
            .collect();
        names.sort();
        names
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// How a worker is told to end.
#[derive(Debug, Clone)]
pub struct Control {
    /// Launch no more attempts; end once those in flight settle.
    pub stop: CancellationToken,
    /// Deliver everything pending, then end (a route no longer async).
    pub retire: CancellationToken,
}

/// One route's worker loop.
pub async fn run(
    route: Arc<Route>,
    reader: OutboxReader,
    deliverer: Deliverer,
    metrics: Arc<Metrics>,
    control: Control,
) {
    let Control { stop, retire } = control;
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
            let ours = matches!(lease, Ok(WorkerLease::Renewed | WorkerLease::Taken));
            // A lease newly ours delivers only once what other replicas left pending is
            // claimed (tried again at every renewal until it is, never in a tight loop).
            held = ours && (keep || take_over(&reader, &route.name, &metrics).await);
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
                Err(e) => {
                    // The store is down (reopening) or failing: look again in a second,
                    // not every poll, so the log is not flooded.
                    tracing::warn!(route = %route.name, error = %e, "Outbox scan failed.");
                    next_poll = now + STORE_RETRY;
                    if shared {
                        // Redis may have lost its keys (the consumer group was made
                        // again, seqs start over): what was loaded may name other
                        // records now. Start again from this consumer's pending entries.
                        while running.join_next().await.is_some() {}
                        pending.clear();
                        after = 0;
                    }
                }
            }
            // A retired route's worker ends once everything it had is settled.
            if retire.is_cancelled() && pending.is_empty() && running.is_empty() {
                tracing::info!(route = %route.name, "Worker of a route no longer async has delivered everything pending; it stops.");
                break;
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

/// Claims what other replicas left pending on `route` (a dead replica's deliveries);
/// true once nothing is left with them, so this replica may deliver.
async fn take_over(reader: &OutboxReader, route: &Arc<str>, metrics: &Metrics) -> bool {
    match reader.takeover(route).await {
        Ok(t) => {
            if t.created {
                tracing::info!(route = %route, "Outbox consumer group created.");
            }
            if t.taken > 0 {
                tracing::info!(route = %route, taken = t.taken, "Took over the events other replicas left pending; they are delivered first.");
                metrics.outbox_taken_over(route, t.taken);
            }
            if t.waiting > 0 {
                tracing::info!(route = %route, waiting = t.waiting, "Events recently read by another replica: taking over once they are idle for the visibility timeout.");
            }
            t.waiting == 0
        }
        Err(e) => {
            tracing::warn!(route = %route, error = %e, "Outbox takeover failed.");
            false
        }
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
                                order_ttl: Duration::from_secs(3600),
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
