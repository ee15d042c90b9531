//! The dedup/order store: the one place where the gateway decides, atomically,
//! whether an authenticated and schema-valid event may be delivered.
//!
//! # Place in the pipeline
//!
//! ```text
//! ... ─► validate schema ─► extract id / entity / time ─► Store::reserve ─► deliver ─► Store::commit | Store::release
//! ```
//!
//! The verdict is split in two on purpose (DESIGN.md §5): an event id is marked
//! *seen* only after its delivery succeeded, so a failed delivery never causes
//! the sender's retry to be dropped as a duplicate. Between the two calls the
//! event is *in flight*: a concurrent copy of it, or another event for the
//! same entity, is answered `409 in_flight` and the sender retries later.
//!
//! # The contract (every backend, checked by `conformance.rs`)
//!
//! * **One atomic step.** [`Store::reserve`] checks dedup and order together,
//!   and its outcome is decided in this precedence:
//!   1. the id was committed and has not expired → [`ReserveOutcome::Duplicate`];
//!   2. the id is reserved by another request in flight → [`ReserveOutcome::InFlight`];
//!   3. the entity's committed watermark is *greater* than the event time →
//!      [`ReserveOutcome::Stale`] (an *equal* time is not stale);
//!   4. another event of the same entity is in flight → [`ReserveOutcome::InFlight`].
//!      At most one event per entity is in flight, so an older event can never
//!      be forwarded after a newer one that overtook it on the wire;
//!   5. otherwise [`ReserveOutcome::Reserved`]: the id and the entity are now in
//!      flight until the [`Reservation`] is committed, released or dropped.
//!
//!   The id and the order point are independent and both optional: a route
//!   with no dedup key passes `event_id: None`, one with no order key
//!   `order: None`.
//! * **Only commit marks seen.** [`Store::commit`] marks the id seen until
//!   `now + dedup_ttl` and raises the entity watermark to `max(old, time)`.
//!   [`Store::release`] (delivery failed) leaves no trace, and so does
//!   dropping a [`Reservation`] (for example when the request future is
//!   cancelled because the client went away): no event is ever lost to dedup.
//!   If `commit` itself fails, the reservation is released as well; the
//!   event may then be delivered twice (at least once, never zero times).
//! * **TTL is checked on read.** A key whose expiry has passed is not a
//!   duplicate even while it is still stored. Purging ([`Store::purge_expired`])
//!   only reclaims space and never changes an outcome. This avoids the drift
//!   svix's memory cache had, where `set_if_not_exists` ignored expiry until
//!   its sweep ran. Expiry uses the wall clock ([`std::time::SystemTime`]),
//!   because it is persisted across restarts.
//! * **Namespaced by route.** The same id, or the same entity, on two routes
//!   is two independent keys. Keys are `route NUL id` and `route NUL entity`,
//!   so a route name must not contain NUL (rejected with
//!   [`StoreErrorKind::InvalidRoute`]); ids and entities may contain anything.
//! * **Watermarks expire** `order_ttl` after their entity's last commit (every
//!   commit of the entity sets the expiry afresh). An expired watermark reads as
//!   absent, like an expired dedup key: the entity's next event is not stale
//!   whatever its time. [`Store::purge_expired`] deletes expired watermarks as it
//!   deletes expired dedup keys, so the store holds the entities seen within
//!   `order_ttl`, not every entity ever seen.
//! * **In-flight state is process-local memory** for the local backends (memory,
//!   embedded), behind a std `Mutex` that is never held across an `.await`. It is
//!   deliberately not durable: after a crash, a reservation that never committed
//!   must not block the sender's retry. The Redis backend, shared by replicas, holds
//!   it in Redis as leases that expire by themselves, for the same reason.
//! * **Errors** ([`StoreError`]) mean the store could not decide or could not
//!   persist; the gateway answers 503 and the sender retries (a sync route with
//!   `[store] on_unavailable = "deliver"` forwards unchecked instead, counted).
//! * **A failing disk** takes the embedded store down: after a failed write it answers
//!   [`StoreErrorKind::Unavailable`] to everything (reads too) while it reopens its file
//!   with backoff (1 s doubling to 30 s), and comes back by itself (`embedded.rs`).
//!
//! # Sharing
//!
//! [`Store`] is `Clone`: every backend keeps its state behind an `Arc`, so a
//! clone is a pointer copy and all clones see the same state.
//!
//! # Layout
//!
//! * `mod.rs`: the public types, the [`Store`] enum that dispatches to a
//!   backend, and the in-flight ledger shared by all backends.
//! * `memory.rs`: everything in process memory; lost on restart.
//! * `embedded.rs`: redb file `hookgate.redb`, group-committed by one writer thread.
//! * `redis/`: a Redis shared by several replicas; one Lua script per step (its module
//!   doc lists every key).
//! * `conformance.rs`: the one test suite every backend must pass.

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

mod embedded;
mod ledger;
mod memory;
pub mod outbox;
mod redis;

#[cfg(test)]
mod conformance;

pub use embedded::EmbeddedStore;
#[doc(hidden)]
pub use embedded::WriteFault;
pub use memory::MemoryStore;
pub(crate) use redis::WORKER_RENEW;
pub use redis::{RedisOptions, RedisStore};

// === Public request / outcome types ===

/// What the gateway asks the store to reserve for one event, after the body
/// passed authentication and schema validation.
#[derive(Clone, Copy, Debug)]
pub struct ReserveRequest<'a> {
    /// The route's configured name. Must not contain NUL.
    pub route: &'a str,
    /// The dedup key's value; `None` when the route has no dedup key.
    pub event_id: Option<&'a str>,
    /// The ordering point; `None` when the route has no order key.
    pub order: Option<OrderPoint<'a>>,
    /// How long the id counts as seen after a successful commit.
    pub dedup_ttl: Duration,
    /// How long the entity's watermark is kept after a successful commit (`store.order_ttl`).
    pub order_ttl: Duration,
}

/// The entity an event belongs to and its event time, for ordering.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct OrderPoint<'a> {
    /// The entity key value (e.g. an incident id).
    pub entity: &'a str,
    /// The event time, compared against the entity's watermark.
    pub time: EventTime,
}

/// Event time normalised to integer nanoseconds since the Unix epoch (UTC).
///
/// `i64` nanoseconds cover the years 1677 to 2262, which is every time a
/// webhook can plausibly carry; the extractor must reject (or saturate) a
/// value outside that range rather than wrap it. Negative values (before
/// 1970) are valid and compare as expected.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct EventTime(pub i64);

/// The verdict of [`Store::reserve`].
#[derive(Debug)]
#[must_use = "a Reserved outcome holds a reservation that must be committed or released"]
pub enum ReserveOutcome {
    /// Go ahead and deliver; then commit or release the reservation.
    Reserved(Reservation),
    /// The id was already delivered within its TTL (answer 200 `duplicate`).
    Duplicate,
    /// The id, or another event of the same entity, is being delivered right
    /// now (answer 409 `in_flight` with `Retry-After`).
    InFlight,
    /// The event time is older than the newest delivered for its entity
    /// (answer 200 `stale`).
    Stale,
}

/// A held reservation: the id and entity stay in flight while it lives.
///
/// Pass it to exactly one of [`Store::commit`] or [`Store::release`]. Dropping
/// it has the same effect as `release`, so a cancelled request never leaves a
/// key stuck in flight. It is deliberately not `Clone`.
pub struct Reservation {
    route: String,
    event_id: Option<String>,
    order: Option<(String, EventTime)>,
    dedup_ttl: Duration,
    order_ttl: Duration,
    /// Holds the keys in flight; dropping it releases them (best effort: `release` is
    /// the contract).
    lease: Lease,
}

/// What holds a reservation's keys in flight until it is committed or released.
///
/// The local ledger's guard (memory, embedded), released when dropped; or a Redis
/// token with an expiry in Redis, which `Drop` can only release in the background
/// (best effort): that is why [`Store::release`] is the contract.
enum Lease {
    /// A guard on this process's [`ledger::Ledger`].
    Local(ledger::InFlightGuard),
    /// A token on lease keys in Redis.
    Redis(redis::RedisLease),
}

impl Lease {
    fn local(&self) -> Option<&ledger::InFlightGuard> {
        match self {
            Lease::Local(g) => Some(g),
            Lease::Redis(_) => None,
        }
    }
}

impl Reservation {
    /// The route this reservation belongs to.
    pub fn route(&self) -> &str {
        &self.route
    }

    /// The reserved event id, if the route deduplicates.
    pub fn event_id(&self) -> Option<&str> {
        self.event_id.as_deref()
    }

    /// The reserved entity and event time, if the route orders.
    pub fn order(&self) -> Option<OrderPoint<'_>> {
        self.order.as_ref().map(|(entity, time)| OrderPoint {
            entity,
            time: *time,
        })
    }

    /// True when the reservation was made by the store owning `ledger`.
    fn belongs_to(&self, ledger: &Arc<ledger::Ledger>) -> bool {
        self.lease
            .local()
            .is_some_and(|g| Arc::ptr_eq(&g.ledger, ledger))
    }

    /// The local lease's `route NUL id` key (memory, embedded).
    fn local_id_key(&self) -> Option<&String> {
        self.lease.local().and_then(|g| g.id_key.as_ref())
    }

    /// The local lease's `route NUL entity` key (memory, embedded).
    fn local_entity_key(&self) -> Option<&String> {
        self.lease.local().and_then(|g| g.entity_key.as_ref())
    }

    /// Whether a commit has anything to write.
    fn is_empty(&self) -> bool {
        match &self.lease {
            Lease::Local(g) => g.id_key.is_none() && g.entity_key.is_none(),
            Lease::Redis(l) => l.is_empty(),
        }
    }
}

impl fmt::Debug for Reservation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reservation")
            .field("route", &self.route)
            .field("event_id", &self.event_id)
            .field("order", &self.order)
            .field(
                "token",
                &match &self.lease {
                    Lease::Local(g) => g.token.to_string(),
                    Lease::Redis(l) => l.token.clone(),
                },
            )
            .finish()
    }
}

/// Why the store could not decide or persist. The gateway answers 503 for
/// every kind: the sender should retry.
///
/// Backend-neutral on purpose: a caller matches on [`StoreError::kind`], never on
/// which backend failed, so a new backend (or a change inside one) does not ripple
/// into the pipeline, delivery, admin or start-up code. The backend's own error is
/// kept as the [`source`](std::error::Error::source), and the message says what
/// failed in words an operator can act on (start-up, `hookgate check`, logs).
#[derive(Debug)]
pub struct StoreError {
    kind: StoreErrorKind,
    /// What failed, written for an operator; the source's text follows it.
    context: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

/// What kind of failure a [`StoreError`] is: what a caller can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreErrorKind {
    /// The store cannot answer right now (connection lost, command timed out,
    /// reopening after a failed write, writer stopped); it may recover by itself.
    Unavailable,
    /// The store could not be reached or refused us when connecting (bad URL,
    /// wrong credentials, host unreachable, TLS handshake); the message says which.
    Connect,
    /// Reading or writing the store's files failed (a directory not creatable, a
    /// failed group commit, a disk error).
    Io,
    /// The store's data is corrupt, or of a format this build does not read.
    Corrupt,
    /// Another process (or store instance) holds the store's file.
    InUse,
    /// The write was done but not acknowledged by as many replicas as configured.
    NotReplicated,
    /// The route's outbox holds `max_pending` events: the accept was refused and
    /// nothing was written.
    OutboxFull,
    /// The route name cannot be stored (it contains NUL, which keys reserve).
    InvalidRoute,
    /// The reservation was made by another store instance; it was released.
    ForeignReservation,
    /// The configured backend is not available in this build or configuration.
    Unsupported,
    /// The backend reported an error no other kind describes (a server error reply,
    /// an unexpected answer).
    Backend,
}

/// The source a [`StoreError`] keeps.
type BoxedSource = Box<dyn std::error::Error + Send + Sync + 'static>;

impl StoreError {
    /// An error of `kind` saying `context`, with no underlying error.
    pub(crate) fn new(kind: StoreErrorKind, context: impl Into<Cow<'static, str>>) -> StoreError {
        StoreError {
            kind,
            context: context.into(),
            source: None,
        }
    }

    /// An error of `kind` saying `context`, caused by `source` (whose text the
    /// message carries after the context).
    pub(crate) fn with_source(
        kind: StoreErrorKind,
        context: impl Into<Cow<'static, str>>,
        source: impl Into<BoxedSource>,
    ) -> StoreError {
        StoreError {
            kind,
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// `action` on `path` failed (creating the store directory, starting its writer).
    pub(crate) fn io(action: &str, path: &Path, source: std::io::Error) -> StoreError {
        StoreError::with_source(
            StoreErrorKind::Io,
            format!("cannot {action} {}", path.display()),
            source,
        )
    }

    /// The route's outbox is full.
    pub(crate) fn outbox_full(route: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::OutboxFull,
            format!("the outbox of route {route:?} is full"),
        )
    }

    /// The route name contains NUL.
    pub(crate) fn invalid_route(route: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::InvalidRoute,
            format!("route name {route:?} contains NUL"),
        )
    }

    /// The reservation was made by another store instance.
    pub(crate) fn foreign_reservation() -> StoreError {
        StoreError::new(
            StoreErrorKind::ForeignReservation,
            "reservation belongs to another store instance",
        )
    }

    /// The `backend` is not available in this build.
    pub(crate) fn unsupported(backend: &str) -> StoreError {
        StoreError::new(
            StoreErrorKind::Unsupported,
            format!("the {backend} store backend is not available in this build"),
        )
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.context)?;
        match &self.source {
            Some(source) => write!(f, ": {source}"),
            None => Ok(()),
        }
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

// === Store: enum dispatch ===

/// The dedup/order store. See the module docs for the contract.
///
/// Cheap to share: `Clone` copies an `Arc`; clones share all state.
#[derive(Clone, Debug)]
pub enum Store {
    /// Process memory; lost on restart. For tests and throwaway runs.
    Memory(MemoryStore),
    /// One crash-safe redb file; survives restarts. The default.
    Embedded(EmbeddedStore),
    /// A Redis shared by several gateway replicas.
    Redis(RedisStore),
}

impl Store {
    /// A fresh, empty in-memory store.
    pub fn memory() -> Store {
        Store::Memory(MemoryStore::new(Clock::System))
    }

    /// Opens (or creates) the embedded store in `dir`, creating the directory
    /// and the file `dir/hookgate.redb`. Blocking: call it at start-up. Fails
    /// if another process (or store instance) has the file open.
    pub fn open_embedded(dir: &Path) -> Result<Store, StoreError> {
        EmbeddedStore::open(dir, Clock::System).map(Store::Embedded)
    }

    /// [`Store::open_embedded`] with `[store] sync_commits`: with
    /// [`SyncCommits::Deferred`] a commit alone (no accept in its group commit) is
    /// written and visible at once but fsynced up to a second later (see
    /// [`SyncCommits`] for what a crash can then cost).
    pub fn open_embedded_with(dir: &Path, sync_commits: SyncCommits) -> Result<Store, StoreError> {
        EmbeddedStore::open_with_fault(dir, Clock::System, None, sync_commits).map(Store::Embedded)
    }

    /// Connects to Redis. Blocking for at most the connect timeout per check: call it
    /// at start-up. The error says whether the URL, the credentials or the reachability
    /// of the host is wrong.
    pub fn open_redis(options: &RedisOptions) -> Result<Store, StoreError> {
        RedisStore::open(options, Clock::System).map(Store::Redis)
    }

    /// The checks of [`Store::open_redis`] alone, without keeping a connection (for
    /// `hookgate check`). Blocking.
    pub fn probe_redis(options: &RedisOptions) -> Result<(), StoreError> {
        RedisStore::probe(options).map(drop)
    }

    /// Decides, in one atomic step, whether this event may be delivered. See
    /// the module docs for the precedence of the outcomes.
    pub async fn reserve(&self, req: ReserveRequest<'_>) -> Result<ReserveOutcome, StoreError> {
        match self {
            Store::Memory(s) => s.reserve(req),
            Store::Embedded(s) => s.reserve(req),
            Store::Redis(s) => s.reserve(req).await,
        }
    }

    /// Delivery succeeded: marks the id seen until `now + dedup_ttl` and raises
    /// the entity's watermark to `max(old, time)` (an expired old one counts as
    /// absent), kept until `now + order_ttl`. For the embedded store the
    /// change is durable (fsynced) when this returns `Ok`. The id and entity
    /// stay in flight until the change is visible, so no concurrent
    /// `reserve` can slip between the two. On `Err` the reservation is
    /// released (the sender's retry will be delivered again).
    pub async fn commit(&self, r: Reservation) -> Result<(), StoreError> {
        match self {
            Store::Memory(s) => s.commit(r),
            Store::Embedded(s) => s.commit(r).await,
            Store::Redis(s) => s.commit(r).await,
        }
    }

    /// Delivery failed: forgets the reservation without a trace, so the
    /// sender's retry is `Reserved` again. Same as dropping it (for Redis, dropping
    /// releases in the background; this waits for it).
    pub async fn release(&self, r: Reservation) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) if matches!(r.lease, Lease::Redis(_)) => s.release(r).await,
            _ => {
                drop(r);
                Ok(())
            }
        }
    }

    /// Checks that the store can serve requests (for `/readyz`). For the
    /// embedded store this is a durable write of a probe row through the writer
    /// thread (so a disk that refuses writes is not called ready, and a wedged
    /// one makes it wait: the caller should bound it with a timeout).
    pub async fn ping(&self) -> Result<(), StoreError> {
        match self {
            Store::Memory(_) => Ok(()),
            Store::Embedded(s) => s.ping().await,
            Store::Redis(s) => s.ping().await,
        }
    }

    /// Deletes up to `max` expired dedup keys and watermarks (dedup keys first) and
    /// returns how many it deleted.
    /// The gateway calls it periodically; each call does bounded work (oldest
    /// expiry first) so it never holds the write lock for long.
    pub async fn purge_expired(&self, max: usize) -> Result<usize, StoreError> {
        match self {
            Store::Memory(s) => Ok(s.purge_expired(max)),
            Store::Embedded(s) => s.purge_expired(max).await,
            Store::Redis(s) => Ok(s.purge_expired(max)),
        }
    }

    /// The backend's name, for logs and metrics labels.
    pub fn backend_name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Embedded(_) => "embedded",
            Store::Redis(_) => "redis",
        }
    }

    /// Opens the embedded store like [`Store::open_embedded`], on a file whose writes
    /// and syncs fail while `fault` is set: for tests of a failing disk. Not part of the
    /// supported API.
    #[doc(hidden)]
    pub fn open_embedded_with_fault(dir: &Path, fault: WriteFault) -> Result<Store, StoreError> {
        EmbeddedStore::open_with_fault(dir, Clock::System, Some(fault), SyncCommits::Fsync)
            .map(Store::Embedded)
    }

    /// Durable write transactions (each one fsync) and the changes they carried (a
    /// dedup mark, an accept, a settlement: one each), since open. Zero for the memory
    /// store.
    pub fn write_stats(&self) -> WriteStats {
        match self {
            Store::Memory(_) | Store::Redis(_) => WriteStats::default(),
            Store::Embedded(s) => s.write_stats(),
        }
    }

    /// An in-memory store whose expiry clock the test controls.
    #[cfg(test)]
    pub(crate) fn memory_with_clock(clock: Clock) -> Store {
        Store::Memory(MemoryStore::new(clock))
    }

    /// An embedded store whose expiry clock the test controls.
    #[cfg(test)]
    pub(crate) fn open_embedded_with_clock(dir: &Path, clock: Clock) -> Result<Store, StoreError> {
        EmbeddedStore::open(dir, clock).map(Store::Embedded)
    }

    /// A Redis store whose expiry clock the test controls.
    #[cfg(test)]
    pub(crate) fn open_redis_with_clock(
        options: &RedisOptions,
        clock: Clock,
    ) -> Result<Store, StoreError> {
        RedisStore::open(options, clock).map(Store::Redis)
    }
}

/// Whether the embedded store fsyncs a sync route's commit before `commit` returns
/// (`[store] sync_commits`). Async accepts are fsynced before their 202 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncCommits {
    /// Every group commit is fsynced before its waiters are answered: nothing a
    /// sync route committed is lost to a crash. The default.
    #[default]
    Fsync,
    /// A group commit of sync-route commits alone is written without fsync (visible
    /// to every later `reserve` at once); the writer fsyncs within a second, or
    /// sooner with the next accept, purge or readiness probe. A crash of the process
    /// or the machine loses the commits of that last second: their ids can be
    /// forwarded a second time (a sender's retry is not seen as a duplicate), and an
    /// entity's watermark can fall back, so an event older than one already
    /// forwarded can be forwarded after the restart. No event is lost.
    Deferred,
}

impl SyncCommits {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncCommits::Fsync => "fsync",
            SyncCommits::Deferred => "deferred",
        }
    }
}

/// What [`Store::write_stats`] reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriteStats {
    /// Durable (fsynced) write transactions committed (a transaction left unsynced by
    /// `sync_commits = "deferred"` counts in `changes` only).
    pub commits: u64,
    /// Changes those transactions carried (group commit: many per transaction).
    pub changes: u64,
}

// === Clock ===

/// Wall-clock source for dedup expiry, in nanoseconds since the Unix epoch.
///
/// An enum rather than `Arc<dyn Fn>`: production always reads `SystemTime`,
/// tests swap in a manual clock (tokio's paused time does not move
/// `SystemTime`, so it cannot drive persisted expiries).
#[derive(Clone, Debug)]
pub(crate) enum Clock {
    /// `SystemTime::now()`.
    System,
    /// A value the test sets; shared by clones.
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    fn now_nanos(&self) -> u64 {
        match self {
            // A clock set before 1970 counts as 0: everything is then "not
            // expired yet", the safe direction for dedup.
            Clock::System => SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, duration_nanos),
            #[cfg(test)]
            Clock::Manual(now) => now.load(Ordering::SeqCst),
        }
    }

    /// `now + ttl`, saturating (a huge TTL means "never expires").
    fn expiry_after(&self, ttl: Duration) -> u64 {
        self.now_nanos().saturating_add(duration_nanos(ttl))
    }
}

fn duration_nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

// === Keys ===

/// `route NUL value`: the namespaced key for an id or an entity.
fn scoped_key(route: &str, value: &str) -> String {
    let mut key = String::with_capacity(route.len() + 1 + value.len());
    key.push_str(route);
    key.push('\0');
    key.push_str(value);
    key
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use super::*;

    /// The message carries the source's text after the context (as the per-backend
    /// variants did), and the source stays reachable for a caller walking the chain.
    #[test]
    fn store_error_shows_its_source_and_keeps_it() {
        let io = std::io::Error::new(std::io::ErrorKind::PermissionDenied, "denied");
        let err = StoreError::io("create store directory", Path::new("/x/y"), io);
        assert_eq!(err.kind(), StoreErrorKind::Io);
        assert_eq!(
            err.to_string(),
            "cannot create store directory /x/y: denied"
        );
        let source = std::error::Error::source(&err).unwrap();
        assert_eq!(source.to_string(), "denied");

        let full = StoreError::outbox_full("r");
        assert_eq!(full.kind(), StoreErrorKind::OutboxFull);
        assert_eq!(full.to_string(), r#"the outbox of route "r" is full"#);
        assert!(std::error::Error::source(&full).is_none());
    }
}
