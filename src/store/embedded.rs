//! Embedded backend: one crash-safe redb file, `<store.path>/hookgate.redb`.
//!
//! The default backend for a single gateway (DESIGN.md §7). Dedup keys and
//! watermarks survive restarts; in-flight reservations deliberately do not
//! (they live in the shared in-memory ledger, see `mod.rs`).
//!
//! # Tables
//!
//! | table | key | value |
//! |---|---|---|
//! | `dedup_v2` | `H(route NUL id)` | expiry, unix nanos (`u64`) |
//! | `dedup_expiry_v2` | `(expiry, H(route NUL id))` | `()` |
//! | `watermarks_v3` | `H(route NUL entity)` | (newest committed event time, unix nanos (`i64`), expiry, unix nanos (`u64`)) |
//! | `watermark_expiry_v3` | `(expiry, H(route NUL entity))` | `()` |
//! | `hash_key_v1` | `"hmac-sha256"` | the file's 32-byte hash key |
//!
//! `H` is the file's keyed 128-bit hash (`u128`), HMAC-SHA-256 truncated: see
//! `embedded/hashed.rs` for why a hash and why this one. `dedup_expiry_v2` is an
//! index of `dedup_v2` ordered by expiry, kept in the same transactions, so that a
//! purge is a bounded range scan from the oldest expiry instead of a scan of every
//! key; `watermark_expiry_v3` is the same for `watermarks_v3` (`order_ttl`).
//!
//! **Migration**, at open, in the one transaction that creates the tables, one-way
//! (an older hookgate opening the file again finds no dedup keys or watermarks):
//! * a file written before hashed keys has `dedup_v1` / `dedup_expiry_v1` and
//!   `watermarks_v2` / `watermark_expiry_v2`, keyed by the raw `route NUL value`:
//!   every row not yet expired moves to the hashed tables with its expiry, and the
//!   four old tables are deleted;
//! * a file written before `order_ttl` has `watermarks_v1` (`route NUL entity` →
//!   time, no expiry): every row moves to `watermarks_v3` with an expiry of the open
//!   time plus [`MIGRATED_ORDER_TTL`] (the default `order_ttl`), and
//!   `watermarks_v1` is deleted.
//!
//! # Hot path
//!
//! * **Reads** (`reserve`): a redb read transaction (MVCC snapshot, never
//!   blocked by the writer) run while the ledger mutex is held, which is what
//!   makes check-and-reserve atomic (see `Ledger` in `ledger.rs`). It runs
//!   inline on the async worker, not in `spawn_blocking`: measured on the
//!   2-core dev machine, a duplicate check costs ~0.7 µs with the key in
//!   redb's page cache and ~3 µs for random keys over 1M stored ids, while a
//!   `spawn_blocking` round trip alone costs 11-16 µs. The page cache is
//!   capped at [`CACHE_BYTES`] and nothing else is cached beside redb, so
//!   memory stays bounded however many ids are stored (39 MB RSS with 1M ids
//!   after 200 000 random lookups with a 16 MiB cache, 137 MB with 64 MiB;
//!   `examples/fill_million.rs`, where a random lookup cost 26 µs against 22 µs,
//!   on a loaded machine: lookups past the cache are reads from the OS page cache).
//! * **Writes** (`commit`, `purge_expired`): one dedicated writer thread owns
//!   every write transaction. It blocks for the first job, drains everything
//!   else already queued (up to [`MAX_BATCH`] commits) and writes the whole
//!   batch in one transaction with `Durability::Immediate` (fsync): group
//!   commit, so N concurrent commits cost one fsync (measured: ~310 µs per
//!   lone commit, ~12 µs per commit with 64 concurrent tasks). Only after the commit
//!   returns does it take the batch's keys out of the in-flight ledger and
//!   answer each waiter, so a concurrent `reserve` always sees either "in
//!   flight" or the durable result.
//! * **`sync_commits = "deferred"`** ([`SyncCommits::Deferred`]): a batch of
//!   sync-route commits alone is written with `Durability::None` (visible to every
//!   later read, durable with the next durable commit) and the writer makes it
//!   durable within [`DEFERRED_SYNC_MAX`] (a probe-row write when no accept, purge or
//!   ping came first), and before it exits. A batch with an accept is always
//!   `Immediate`. What a crash can cost is told on [`SyncCommits::Deferred`]. Measured
//!   with the load benchmark: the fsync is about half the embedded row's time on the
//!   dev machine's disk (see the README's Performance section).
//!
//! Dropping the last clone of the store stops the writer (its queue
//! disconnects) and joins it, so the file is closed when the drop returns and
//! can be reopened at once.

use std::cell::Cell;
use std::fmt;
use std::ops::Bound;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use redb::backends::FileBackend;
use redb::{
    BackendError, Database, Durability, ReadableDatabase, ReadableTable, StorageBackend,
    TableDefinition,
};
use tokio::sync::oneshot;

mod hashed;

use self::hashed::KeyHasher;
use super::ledger::{Committed, Ledger};
use super::outbox::{Counts, CountsInner, OutboxOp, Stored, Table};
use super::{
    Clock, EventTime, Reservation, ReserveOutcome, ReserveRequest, StoreError, StoreErrorKind,
    SyncCommits, WriteStats,
};

// === Errors: redb's, told in the store's kinds ===

/// Every answer while the file is being reopened after a failed write.
fn reopening() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "the store is unavailable: reopening after a failed write",
    )
}

/// The writer thread is gone (it panicked): nothing can be written any more.
fn writer_stopped() -> StoreError {
    StoreError::new(
        StoreErrorKind::Unavailable,
        "embedded store writer thread is not running",
    )
}

/// A group commit failed; every commit of the batch gets this error.
fn write_failed(err: Arc<redb::Error>) -> StoreError {
    StoreError::with_source(StoreErrorKind::Io, "embedded store write failed", err)
}

impl From<redb::Error> for StoreError {
    fn from(err: redb::Error) -> Self {
        let kind = match &err {
            redb::Error::Io(_) | redb::Error::PreviousIo => StoreErrorKind::Io,
            redb::Error::DatabaseAlreadyOpen => StoreErrorKind::InUse,
            redb::Error::Corrupted(_)
            | redb::Error::UpgradeRequired(_)
            | redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)
            | redb::Error::TableIsNotMultimap(_) => StoreErrorKind::Corrupt,
            _ => StoreErrorKind::Backend,
        };
        StoreError::with_source(kind, "embedded store", err)
    }
}

// redb has one error type per operation; all of them fold into `redb::Error`.
macro_rules! from_redb {
    ($($ty:ty),* $(,)?) => {$(
        impl From<$ty> for StoreError {
            fn from(err: $ty) -> Self {
                redb::Error::from(err).into()
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
);

/// The database file's name inside `store.path`.
pub(super) const FILE_NAME: &str = "hookgate.redb";

/// redb's page cache. redb's default is 1 GiB; the working set of a gateway's
/// hot keys (recent ids: retries come within minutes) is far smaller, and this
/// bounds the process's memory (issue 14's target: ≤ 100 MiB RSS with 1M ids).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// Most commits written in one transaction. Bounds the latency one batch adds
/// to the commits queued behind it.
const MAX_BATCH: usize = 4096;

/// With `sync_commits = "deferred"`, the longest a sync route's commit stays written
/// but not fsynced: what a crash can lose.
pub(super) const DEFERRED_SYNC_MAX: Duration = Duration::from_secs(1);

/// The first pause before reopening the file after a failed write; it doubles after
/// each failed reopen up to [`REOPEN_MAX`].
const REOPEN_FIRST: Duration = Duration::from_secs(1);
/// The longest pause between two reopen attempts.
const REOPEN_MAX: Duration = Duration::from_secs(30);

/// `H(route NUL id)` → expiry (unix nanos).
const DEDUP: TableDefinition<u128, u64> = TableDefinition::new("dedup_v2");
/// `(expiry, H(route NUL id))` → `()`: `DEDUP` ordered by expiry, for purging.
const DEDUP_EXPIRY: TableDefinition<(u64, u128), ()> = TableDefinition::new("dedup_expiry_v2");
/// `H(route NUL entity)` → (newest committed event time, its expiry), unix nanos.
const WATERMARKS: TableDefinition<u128, (i64, u64)> = TableDefinition::new("watermarks_v3");
/// `(expiry, H(route NUL entity))` → `()`: `WATERMARKS` ordered by expiry, for purging.
const WATERMARK_EXPIRY: TableDefinition<(u64, u128), ()> =
    TableDefinition::new("watermark_expiry_v3");
/// The dedup keys of a file written before hashed keys: migrated at open.
const DEDUP_V1: TableDefinition<&str, u64> = TableDefinition::new("dedup_v1");
/// `DEDUP_V1`'s expiry index: deleted at open.
const DEDUP_EXPIRY_V1: TableDefinition<(u64, &str), ()> = TableDefinition::new("dedup_expiry_v1");
/// The watermarks of a file written before hashed keys: migrated at open.
const WATERMARKS_V2: TableDefinition<&str, (i64, u64)> = TableDefinition::new("watermarks_v2");
/// `WATERMARKS_V2`'s expiry index: deleted at open.
const WATERMARK_EXPIRY_V2: TableDefinition<(u64, &str), ()> =
    TableDefinition::new("watermark_expiry_v2");
/// The watermarks of a file written before `order_ttl`, without expiry: migrated at open.
const WATERMARKS_V1: TableDefinition<&str, i64> = TableDefinition::new("watermarks_v1");
/// How long a watermark migrated from `watermarks_v1` is kept: the default `order_ttl`.
pub(super) const MIGRATED_ORDER_TTL: std::time::Duration =
    std::time::Duration::from_secs(72 * 3600);
/// Small bookkeeping rows: `ready_probe` → unix nanos of the last readiness write.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta_v1");
/// `(route, seq)` → outbox record (format: `delivery::outbox`). Written by the
/// same writer thread as the dedup keys, so an accepted event and its dedup key
/// share one group commit.
const OUTBOX: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("outbox_v1");
/// `(route, seq)` → dead-lettered record.
const DEAD: TableDefinition<(&str, u64), &[u8]> = TableDefinition::new("dead_letters_v1");

/// One entry of an outbox table scan.
type ScanEntry<'a> = Result<
    (
        redb::AccessGuard<'a, (&'static str, u64)>,
        redb::AccessGuard<'a, &'static [u8]>,
    ),
    redb::StorageError,
>;

/// The embedded store. `Clone` shares the same file and writer thread.
#[derive(Clone)]
pub struct EmbeddedStore {
    inner: Arc<Inner>,
}

// Field order matters: `_writer` joins the thread on drop, which only returns
// once `jobs` (dropped first) has disconnected the queue.
struct Inner {
    jobs: mpsc::Sender<Job>,
    /// Never read: it exists for its `Drop`, which joins the writer thread.
    _writer: Writer,
    ledger: Arc<Ledger>,
    /// The open database; `None` while the writer is reopening it after a failed
    /// write (every read then answers [`StoreErrorKind::Unavailable`]).
    db: Arc<ArcSwapOption<Open>>,
    clock: Clock,
    path: PathBuf,
    counts: Arc<Counts>,
    stats: Arc<Stats>,
}

/// Write counters, kept by the writer thread.
#[derive(Debug, Default)]
struct Stats {
    commits: AtomicU64,
    changes: AtomicU64,
}

impl Stats {
    /// Changes written by a transaction that was not fsynced (`sync_commits = "deferred"`).
    fn deferred(&self, changes: usize) {
        self.changes.fetch_add(
            u64::try_from(changes).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }

    fn committed(&self, changes: usize) {
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.changes.fetch_add(
            u64::try_from(changes).unwrap_or(u64::MAX),
            Ordering::Relaxed,
        );
    }
}

/// A switch that makes the store file's writes and syncs fail while it is set, to
/// test a failing disk at the storage layer (a wrapper around redb's
/// [`FileBackend`]). Clones share the switch. Not part of the supported API.
#[doc(hidden)]
#[derive(Clone, Debug, Default)]
pub struct WriteFault(Arc<AtomicBool>);

impl WriteFault {
    /// A switch, off.
    pub fn new() -> WriteFault {
        WriteFault::default()
    }

    /// Makes every later write and sync fail (`true`) or work again (`false`).
    pub fn set(&self, failing: bool) {
        self.0.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> std::io::Result<()> {
        if self.0.load(Ordering::SeqCst) {
            Err(std::io::Error::other("injected write fault"))
        } else {
            Ok(())
        }
    }
}

/// redb's file backend, with an optional [`WriteFault`] in front of its writes.
#[derive(Debug)]
struct Backend {
    file: FileBackend,
    fault: Option<WriteFault>,
}

impl Backend {
    fn check(&self) -> std::io::Result<()> {
        self.fault.as_ref().map_or(Ok(()), WriteFault::check)
    }
}

impl StorageBackend for Backend {
    fn len(&self) -> std::io::Result<u64> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> std::io::Result<()> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> std::io::Result<()> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> std::io::Result<()> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> std::io::Result<()> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> std::io::Result<()> {
        self.file.close()
    }
    fn try_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.try_lock_range(start, end)
    }
    fn try_lock_shared_range(
        &self,
        start: Bound<u64>,
        end: Bound<u64>,
    ) -> Result<bool, BackendError> {
        self.file.try_lock_shared_range(start, end)
    }
    fn lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_range(start, end)
    }
    fn lock_shared_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.lock_shared_range(start, end)
    }
    fn unlock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<(), BackendError> {
        self.file.unlock_range(start, end)
    }
    fn query_lock_range(&self, start: Bound<u64>, end: Bound<u64>) -> Result<bool, BackendError> {
        self.file.query_lock_range(start, end)
    }
}

/// An open database file and its key hasher (read from the file at open).
struct Open {
    db: Database,
    keys: KeyHasher,
}

impl std::ops::Deref for Open {
    type Target = Database;
    fn deref(&self) -> &Database {
        &self.db
    }
}

/// Opens the file (creating it and every table, and its hash key), migrating the
/// tables of older layouts (rows expired at `now` are not moved).
fn open_db(path: &Path, fault: Option<&WriteFault>, now: u64) -> Result<Open, StoreError> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|source| StoreError::io("open", path, source))?;
    let backend = Backend {
        file: FileBackend::new(file)?,
        fault: fault.cloned(),
    };
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create_with_backend(backend)?;
    // Create the tables up front so read transactions never meet a missing table.
    // A durable write: a reopened store is only called back when writes work.
    let txn = db.begin_write()?;
    let keys = KeyHasher::load_or_create(&txn, path)?;
    txn.open_table(DEDUP)?;
    txn.open_table(DEDUP_EXPIRY)?;
    txn.open_table(WATERMARKS)?;
    txn.open_table(WATERMARK_EXPIRY)?;
    migrate_unhashed(&txn, &keys, now)?;
    txn.open_table(OUTBOX)?;
    txn.open_table(DEAD)?;
    txn.commit()?;
    Ok(Open { db, keys })
}

/// Work for the writer thread.
enum Job {
    /// Joins the next group commit.
    Commit(PendingCommit),
    /// Runs after the group commit it arrived with.
    Maintenance(Maintenance),
    /// Joins the next group commit: an outbox change, with the reservation an
    /// accept commits in the same transaction.
    Outbox(OutboxJob),
}

struct OutboxJob {
    commit: Option<(Reservation, Stamp)>,
    op: OutboxOp,
    /// For an accept: refused (and its reservation not committed) when the route
    /// already has this many pending records, counted in the writer's transaction.
    limit: Option<u64>,
    done: oneshot::Sender<Result<Option<u64>, StoreError>>,
}

struct PendingCommit {
    /// Holds the keys in flight until the batch is durable.
    reservation: Reservation,
    stamp: Stamp,
    done: oneshot::Sender<Result<(), StoreError>>,
}

/// The times a commit writes, read from the store clock when it was asked for.
#[derive(Clone, Copy, Debug)]
struct Stamp {
    /// Now: a stored watermark that expired by then counts as absent.
    now: u64,
    /// The dedup key's expiry (`now + dedup_ttl`).
    seen_until: u64,
    /// The watermark's expiry (`now + order_ttl`).
    order_until: u64,
}

impl Stamp {
    fn of(clock: &Clock, r: &Reservation) -> Stamp {
        Stamp {
            now: clock.now_nanos(),
            seen_until: clock.expiry_after(r.dedup_ttl),
            order_until: clock.expiry_after(r.order_ttl),
        }
    }
}

enum Maintenance {
    Purge {
        now: u64,
        max: usize,
        done: oneshot::Sender<Result<usize, StoreError>>,
    },
    Ping {
        /// The store clock's time, written to the probe row.
        now: u64,
        done: oneshot::Sender<Result<(), StoreError>>,
    },
}

impl EmbeddedStore {
    pub(super) fn open(dir: &Path, clock: Clock) -> Result<EmbeddedStore, StoreError> {
        Self::open_with_fault(dir, clock, None, SyncCommits::Fsync)
    }

    pub(super) fn open_with_fault(
        dir: &Path,
        clock: Clock,
        fault: Option<WriteFault>,
        sync_commits: SyncCommits,
    ) -> Result<EmbeddedStore, StoreError> {
        std::fs::create_dir_all(dir)
            .map_err(|source| StoreError::io("create store directory", dir, source))?;
        let path = dir.join(FILE_NAME);
        let db = open_db(&path, fault.as_ref(), clock.now_nanos())?;
        let counts = Arc::new(count_outbox(&db)?);

        let db = Arc::new(ArcSwapOption::from_pointee(db));
        let stats = Arc::new(Stats::default());
        let (jobs, queue) = mpsc::channel();
        let writer = WriterState {
            slot: Arc::clone(&db),
            path: path.clone(),
            fault,
            counts: Arc::clone(&counts),
            stats: Arc::clone(&stats),
            sync_commits,
            unsynced_since: Cell::new(None),
        };
        let thread = std::thread::Builder::new()
            .name("hookgate-store-writer".to_owned())
            .spawn(move || run_writer(&writer, &queue))
            .map_err(|source| StoreError::io("start the writer thread for", &path, source))?;

        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                jobs,
                _writer: Writer(Some(thread)),
                ledger: Arc::default(),
                db,
                clock,
                path,
                counts,
                stats,
            }),
        })
    }

    /// The open database, or [`StoreErrorKind::Unavailable`] while it is being reopened.
    fn db(&self) -> Result<Arc<Open>, StoreError> {
        self.inner.db.load_full().ok_or_else(reopening)
    }

    pub(super) fn write_stats(&self) -> WriteStats {
        WriteStats {
            commits: self.inner.stats.commits.load(Ordering::Relaxed),
            changes: self.inner.stats.changes.load(Ordering::Relaxed),
        }
    }

    pub(super) fn counts(&self) -> &Counts {
        &self.inner.counts
    }

    /// An accept (or any outbox change) with the reservation it commits, in the
    /// next group commit. Returns the record's seq.
    pub(super) async fn outbox_write(
        &self,
        reservation: Option<Reservation>,
        op: OutboxOp,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        if let Some(r) = &reservation
            && !r.belongs_to(&self.inner.ledger)
        {
            return Err(StoreError::foreign_reservation());
        }
        let commit = reservation.filter(|r| !r.is_empty()).map(|r| {
            let stamp = Stamp::of(&self.inner.clock, &r);
            (r, stamp)
        });
        let full = match (&op, limit) {
            (OutboxOp::Accept { route, .. }, Some(_)) => Some(route.clone()),
            _ => None,
        };
        let seq = self
            .call(|done| {
                Job::Outbox(OutboxJob {
                    commit,
                    op,
                    limit,
                    done,
                })
            })
            .await?;
        match (seq, full) {
            (Some(seq), _) => Ok(seq),
            (None, Some(route)) => Err(StoreError::outbox_full(&route)),
            (None, None) => Err(writer_stopped()),
        }
    }

    pub(super) async fn outbox_write_checked(
        &self,
        op: OutboxOp,
    ) -> Result<Option<u64>, StoreError> {
        self.call(|done| {
            Job::Outbox(OutboxJob {
                commit: None,
                op,
                limit: None,
                done,
            })
        })
        .await
    }

    pub(super) fn outbox_scan(
        &self,
        table: Table,
        route: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let t = txn.open_table(match table {
            Table::Outbox => OUTBOX,
            Table::Dead => DEAD,
        })?;
        let mut out = Vec::new();
        let mut push = |entry: ScanEntry<'_>| -> Result<bool, StoreError> {
            let (k, v) = entry?;
            let (r, seq) = k.value();
            if seq > after {
                out.push(Stored {
                    route: r.to_owned(),
                    seq,
                    record: v.value().to_vec(),
                });
            }
            Ok(out.len() < max)
        };
        match route {
            Some(route) => {
                let Some(first) = after.checked_add(1) else {
                    return Ok(out);
                };
                for entry in t.range((route, first)..=(route, u64::MAX))? {
                    if !push(entry)? {
                        break;
                    }
                }
            }
            None => {
                for entry in t.iter()? {
                    if !push(entry)? {
                        break;
                    }
                }
            }
        }
        Ok(out)
    }

    pub(super) fn outbox_get(
        &self,
        table: Table,
        route: &str,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        let db = self.db()?;
        let txn = db.begin_read()?;
        let t = txn.open_table(match table {
            Table::Outbox => OUTBOX,
            Table::Dead => DEAD,
        })?;
        Ok(t.get((route, seq))?.map(|v| v.value().to_vec()))
    }

    pub(super) fn reserve(&self, req: ReserveRequest<'_>) -> Result<ReserveOutcome, StoreError> {
        let now = self.inner.clock.now_nanos();
        let db = self.db()?;
        self.inner.ledger.reserve(&req, now, |id_key, entity_key| {
            lookup(&db, now, id_key, entity_key)
        })
    }

    pub(super) async fn commit(&self, r: Reservation) -> Result<(), StoreError> {
        if !r.belongs_to(&self.inner.ledger) {
            return Err(StoreError::foreign_reservation());
        }
        if r.is_empty() {
            // Neither id nor entity: nothing to persist.
            return Ok(());
        }
        let stamp = Stamp::of(&self.inner.clock, &r);
        self.call(|done| {
            Job::Commit(PendingCommit {
                reservation: r,
                stamp,
                done,
            })
        })
        .await
    }

    pub(super) async fn purge_expired(&self, max: usize) -> Result<usize, StoreError> {
        if max == 0 {
            return Ok(0);
        }
        let now = self.inner.clock.now_nanos();
        self.call(|done| Job::Maintenance(Maintenance::Purge { now, max, done }))
            .await
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let now = self.inner.clock.now_nanos();
        self.call(|done| Job::Maintenance(Maintenance::Ping { now, done }))
            .await
    }

    /// Queues the job `make` builds around its answer channel and waits for
    /// the writer's answer. If the writer is gone the job (and any
    /// reservation in it) is dropped, which releases the reservation.
    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, StoreError>>) -> Job,
    ) -> Result<T, StoreError> {
        let (done, answer) = oneshot::channel();
        self.inner
            .jobs
            .send(make(done))
            .map_err(|_| writer_stopped())?;
        answer.await.map_err(|_| writer_stopped())?
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Reads the committed state of one request's keys from a fresh snapshot; a watermark
/// expired at `now` reads as absent.
fn lookup(
    db: &Open,
    now: u64,
    id_key: Option<&str>,
    entity_key: Option<&str>,
) -> Result<Committed, StoreError> {
    let txn = db.begin_read()?;
    let seen_until = match id_key {
        Some(key) => txn
            .open_table(DEDUP)?
            .get(db.keys.hash(key))?
            .map(|v| v.value()),
        None => None,
    };
    let watermark = match entity_key {
        Some(key) => txn
            .open_table(WATERMARKS)?
            .get(db.keys.hash(key))?
            .map(|v| v.value())
            .filter(|(_, until)| *until > now)
            .map(|(time, _)| EventTime(time)),
        None => None,
    };
    Ok(Committed {
        seen_until,
        watermark,
    })
}

// === Writer thread ===

/// Joins the writer thread when the store is dropped.
struct Writer(Option<JoinHandle<()>>);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take()
            && thread.join().is_err()
        {
            tracing::error!("Embedded store writer thread panicked.");
        }
    }
}

/// What the writer thread owns besides its queue.
struct WriterState {
    /// Where readers find the database; emptied while it is being reopened.
    slot: Arc<ArcSwapOption<Open>>,
    path: PathBuf,
    fault: Option<WriteFault>,
    counts: Arc<Counts>,
    stats: Arc<Stats>,
    /// Whether a batch of sync-route commits alone is fsynced (`[store] sync_commits`).
    sync_commits: SyncCommits,
    /// When the oldest commit not yet fsynced was written (`sync_commits = "deferred"`).
    unsynced_since: Cell<Option<Instant>>,
}

/// The writer loop: group commits, then purges and pings, until every sender is gone.
///
/// # A failing disk
///
/// A write that fails (full disk, I/O error, read-only remount, a file-size limit)
/// leaves redb's handle unusable, so the writer takes the database out of the slot
/// (readers answer [`StoreErrorKind::Unavailable`] from then on), drops it, and reopens the
/// file after 1 s, then 2 s, 4 s ... at most 30 s apart, until the reopen and its
/// durable table write succeed. Meanwhile every job is answered `Unavailable` at once
/// (a ping too, so `/readyz` is 503) and reservations in them are released. The counts
/// are read again from the reopened file; the next seq never goes back, so a worker's
/// "above the last seq I saw" scan still finds every new record.
fn run_writer(state: &WriterState, queue: &mpsc::Receiver<Job>) {
    let mut db = state.slot.load_full();
    let mut old: Option<Arc<Open>> = None;
    let mut pause = REOPEN_FIRST;
    let mut next_attempt = Instant::now();
    loop {
        if let Some(open) = &db {
            let next = match state.unsynced_since.get() {
                None => queue
                    .recv()
                    .map_err(|_| mpsc::RecvTimeoutError::Disconnected),
                Some(since) => queue.recv_timeout(
                    (since + DEFERRED_SYNC_MAX).saturating_duration_since(Instant::now()),
                ),
            };
            let result = match next {
                Ok(first) => write_pass(open, first, queue, state)
                    .and_then(|()| sync_deferred(open, state, false)),
                Err(mpsc::RecvTimeoutError::Timeout) => sync_deferred(open, state, false),
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    // Shutting down: what was deferred is made durable before the file closes.
                    if let Err(err) = sync_deferred(open, state, true) {
                        tracing::error!(error = %err, path = %state.path.display(), "Embedded store: the last fsync failed; deferred sync-route commits are lost (their events may be forwarded again).");
                    }
                    break;
                }
            };
            if let Err(err) = result {
                // Whatever was deferred went with the failed handle.
                state.unsynced_since.set(None);
                tracing::error!(error = %err, path = %state.path.display(), "Embedded store write failed; the store is unavailable until its file reopens (first attempt in 1 s).");
                state.slot.store(None);
                old = db.take();
                pause = REOPEN_FIRST;
                next_attempt = Instant::now() + pause;
            }
            continue;
        }
        let wait = next_attempt.saturating_duration_since(Instant::now());
        match queue.recv_timeout(wait) {
            Ok(job) => refuse(job),
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
            Err(mpsc::RecvTimeoutError::Timeout) => match reopen(state, &mut old) {
                Ok(reopened) => {
                    tracing::info!(path = %state.path.display(), "Embedded store reopened; writes work again.");
                    state.slot.store(Some(Arc::clone(&reopened)));
                    db = Some(reopened);
                }
                Err(err) => {
                    pause = (pause * 2).min(REOPEN_MAX);
                    next_attempt = Instant::now() + pause;
                    tracing::warn!(error = %err, retry_in_s = pause.as_secs(), "Embedded store cannot reopen yet.");
                }
            },
        }
    }
}

/// Fsyncs the commits that `sync_commits = "deferred"` left unsynced, once the oldest
/// is [`DEFERRED_SYNC_MAX`] old (or at once with `now`), with a durable write of a
/// bookkeeping row: redb makes every earlier non-durable commit durable with it.
fn sync_deferred(db: &Database, state: &WriterState, now: bool) -> Result<(), Arc<redb::Error>> {
    let Some(since) = state.unsynced_since.get() else {
        return Ok(());
    };
    if !now && since.elapsed() < DEFERRED_SYNC_MAX {
        return Ok(());
    }
    let result = (|| -> Result<(), redb::Error> {
        let mut txn = db.begin_write()?;
        txn.set_durability(Durability::Immediate)?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert("deferred_sync", Clock::System.now_nanos())?;
        }
        txn.commit()?;
        Ok(())
    })();
    match result {
        Ok(()) => {
            state.unsynced_since.set(None);
            state.stats.committed(0);
            Ok(())
        }
        Err(err) => {
            state.slot.store(None);
            Err(Arc::new(err))
        }
    }
}

/// Answers a job that arrived while the store is down.
fn refuse(job: Job) {
    // A waiter that went away needs no answer; reservations are released on drop.
    match job {
        Job::Commit(p) => {
            drop(p.reservation);
            let _ = p.done.send(Err(reopening()));
        }
        Job::Outbox(j) => {
            drop(j.commit);
            let _ = j.done.send(Err(reopening()));
        }
        Job::Maintenance(Maintenance::Purge { done, .. }) => {
            let _ = done.send(Err(reopening()));
        }
        Job::Maintenance(Maintenance::Ping { done, .. }) => {
            let _ = done.send(Err(reopening()));
        }
    }
}

/// Drops the failed handle (once no reader holds it any more: the file lock goes with
/// it) and opens the file again, with a durable write to prove writes work.
fn reopen(state: &WriterState, old: &mut Option<Arc<Open>>) -> Result<Arc<Open>, StoreError> {
    if let Some(db) = old.take() {
        match Arc::try_unwrap(db) {
            Ok(db) => drop(db),
            Err(still_read) => {
                *old = Some(still_read);
                return Err(reopening());
            }
        }
    }
    // The first open migrated any older tables; a file swapped in since is migrated
    // by the wall clock.
    let db = open_db(&state.path, state.fault.as_ref(), Clock::System.now_nanos())?;
    let fresh = count_outbox(&db)?;
    {
        let fresh = fresh.lock().clone();
        let mut counts = state.counts.lock();
        let next_seq = counts.next_seq.max(fresh.next_seq);
        *counts = fresh;
        counts.next_seq = next_seq;
    }
    state.stats.committed(0);
    Ok(Arc::new(db))
}

/// One writer pass: the first job and everything queued behind it (up to
/// [`MAX_BATCH`] commits) in one group commit, then the purges and pings. Every waiter
/// is answered; `Err` when a write failed (the database must be reopened).
fn write_pass(
    db: &Open,
    first: Job,
    queue: &mpsc::Receiver<Job>,
    state: &WriterState,
) -> Result<(), Arc<redb::Error>> {
    let mut commits = Vec::new();
    let mut outbox = Vec::new();
    let mut others = Vec::new();
    let mut next = Some(first);
    while let Some(job) = next {
        match job {
            Job::Commit(pending) => commits.push(pending),
            Job::Maintenance(job) => others.push(job),
            Job::Outbox(job) => outbox.push(job),
        }
        next = if commits.len() + outbox.len() < MAX_BATCH {
            queue.try_recv().ok()
        } else {
            None
        };
    }

    let mut failed = None;
    if !commits.is_empty() || !outbox.is_empty() {
        let mut next = state.counts.lock().clone();
        // An accept is fsynced before its 202 whatever `sync_commits` says: accepted
        // means never lost.
        let durable = state.sync_commits == SyncCommits::Fsync || !outbox.is_empty();
        let result = write_batch(db, &commits, &outbox, &mut next, durable);
        let seqs = match &result {
            Ok(seqs) => {
                *state.counts.lock() = next;
                if durable {
                    state.stats.committed(commits.len() + outbox.len());
                    state.unsynced_since.set(None);
                } else {
                    state.stats.deferred(commits.len());
                    if state.unsynced_since.get().is_none() {
                        state.unsynced_since.set(Some(Instant::now()));
                    }
                }
                seqs.clone()
            }
            Err(_) => Vec::new(),
        };
        let result = result.map(|_| ()).map_err(|err| {
            tracing::error!(batch = commits.len() + outbox.len(), error = %err, "Embedded store group commit failed.");
            // Out of the readers' reach before any waiter hears of the failure, so
            // that no request sees the failed handle after its own write failed.
            state.slot.store(None);
            Arc::new(err)
        });
        finish_outbox(&result, &mut outbox, seqs);
        failed = result.clone().err();
        finish_batch(result, &mut commits);
    }
    // Pings that arrived together share one probe write: a flood of `/readyz`
    // calls costs one fsync per writer pass, not one each.
    let mut probe = None;
    for job in others {
        // A waiter that went away needs no answer. After a failed write nothing more
        // is tried on this handle.
        match job {
            Maintenance::Purge { done, .. } if failed.is_some() => {
                let _ = done.send(Err(reopening()));
            }
            Maintenance::Ping { done, .. } if failed.is_some() => {
                let _ = done.send(Err(reopening()));
            }
            Maintenance::Purge { now, max, done } => {
                let result = purge(db, now, max).map_err(Arc::new);
                match &result {
                    Ok(_) => {
                        state.stats.committed(0);
                        state.unsynced_since.set(None);
                    }
                    Err(e) => {
                        state.slot.store(None);
                        failed = Some(Arc::clone(e));
                    }
                }
                let _ = done.send(result.map_err(write_failed));
            }
            Maintenance::Ping { now, done } => {
                let result = probe.get_or_insert_with(|| {
                    let r = ping(db, now).map_err(Arc::new);
                    match &r {
                        Ok(()) => {
                            state.stats.committed(0);
                            state.unsynced_since.set(None);
                        }
                        Err(_) => state.slot.store(None),
                    }
                    r
                });
                if let Err(e) = result {
                    failed = Some(Arc::clone(e));
                }
                let _ = done.send(result.clone().map_err(write_failed));
            }
        }
    }
    failed.map_or(Ok(()), Err)
}

/// Releases the batch's keys from the ledger (the write is visible now, or it
/// failed and the reservations are abandoned) and answers every waiter.
fn finish_batch(result: Result<(), Arc<redb::Error>>, commits: &mut Vec<PendingCommit>) {
    let batch = commits.len();
    tracing::trace!(batch, "Embedded store group commit done.");
    for pending in commits.drain(..) {
        drop(pending.reservation);
        // A waiter that went away (its request was cancelled) needs no answer.
        let _ = pending.done.send(result.clone().map_err(write_failed));
    }
}

/// Answers the outbox jobs of a batch (with their seq, or `None` when the record
/// they named was gone or the accept was over its limit) and releases their
/// reservations.
fn finish_outbox(
    result: &Result<(), Arc<redb::Error>>,
    jobs: &mut Vec<OutboxJob>,
    seqs: Vec<Option<u64>>,
) {
    let mut seqs = seqs.into_iter();
    for job in jobs.drain(..) {
        drop(job.commit);
        let answer = match result {
            Ok(()) => Ok(seqs.next().flatten()),
            Err(e) => Err(write_failed(Arc::clone(e))),
        };
        let _ = job.done.send(answer);
    }
}

/// Which outbox jobs of a batch go in: an accept over its route's limit (pending now
/// plus the accepts of this batch before it) does not, and neither does its
/// reservation's dedup mark.
fn admitted(outbox: &[OutboxJob], counts: &CountsInner) -> Vec<bool> {
    let mut added: std::collections::HashMap<&str, u64> = std::collections::HashMap::new();
    outbox
        .iter()
        .map(|job| match (&job.op, job.limit) {
            (OutboxOp::Accept { route, .. }, Some(limit)) => {
                let n = added.entry(route.as_str()).or_insert(0);
                let pending = counts.pending.get(route).copied().unwrap_or(0);
                if pending.saturating_add(*n) >= limit {
                    false
                } else {
                    *n += 1;
                    true
                }
            }
            _ => true,
        })
        .collect()
}

/// Writes one group commit in a single durable transaction: dedup commits, then
/// outbox changes (each accept's reservation in the same transaction as its record).
/// `counts` is updated as the changes are written; the caller keeps it only if the
/// commit succeeds. Returns each outbox job's seq (`None`: its record was gone).
fn write_batch(
    db: &Open,
    commits: &[PendingCommit],
    outbox: &[OutboxJob],
    counts: &mut CountsInner,
    durable: bool,
) -> Result<Vec<Option<u64>>, redb::Error> {
    let admitted = admitted(outbox, counts);
    let mut txn = db.begin_write()?;
    // Immediate is redb's default, stated because the contract depends on it: `commit`
    // returns only after fsync. `None` (sync_commits = "deferred"): written and visible
    // to every later read, made durable by the next durable commit.
    txn.set_durability(if durable {
        Durability::Immediate
    } else {
        Durability::None
    })?;
    {
        let mut dedup = txn.open_table(DEDUP)?;
        let mut by_expiry = txn.open_table(DEDUP_EXPIRY)?;
        let mut watermarks = txn.open_table(WATERMARKS)?;
        let mut watermarks_by_expiry = txn.open_table(WATERMARK_EXPIRY)?;
        let commits = commits.iter().map(|p| (&p.reservation, p.stamp));
        let accepts = outbox
            .iter()
            .zip(&admitted)
            .filter(|(_, admitted)| **admitted)
            .filter_map(|(j, _)| j.commit.as_ref().map(|(r, s)| (r, *s)));
        for (r, stamp) in commits.chain(accepts) {
            let expires_at = stamp.seen_until;
            if let Some(key) = r.local_id_key().map(|k| db.keys.hash(k)) {
                let old = dedup.insert(key, expires_at)?.map(|v| v.value());
                // A re-commit after expiry replaces the key's index entry.
                if let Some(old) = old {
                    by_expiry.remove((old, key))?;
                }
                by_expiry.insert((expires_at, key), ())?;
            }
            if let (Some(key), Some((_, time))) =
                (r.local_entity_key().map(|k| db.keys.hash(k)), &r.order)
            {
                // Every commit of the entity writes its watermark, to set the expiry afresh.
                let old = watermarks.get(key)?.map(|v| v.value());
                let newest = match old {
                    Some((old_time, until)) if until > stamp.now => old_time.max(time.0),
                    _ => time.0,
                };
                if let Some((_, old_until)) = old {
                    watermarks_by_expiry.remove((old_until, key))?;
                }
                watermarks.insert(key, (newest, stamp.order_until))?;
                watermarks_by_expiry.insert((stamp.order_until, key), ())?;
            }
        }
    }
    let mut seqs = Vec::with_capacity(outbox.len());
    {
        let mut pending = txn.open_table(OUTBOX)?;
        let mut dead = txn.open_table(DEAD)?;
        for (job, admitted) in outbox.iter().zip(&admitted) {
            if !admitted {
                seqs.push(None);
                continue;
            }
            let new_seq = counts.next_seq;
            let applied = match &job.op {
                OutboxOp::Accept { route, record } => {
                    pending.insert((route.as_str(), new_seq), record.as_slice())?;
                    true
                }
                OutboxOp::Remove { route, seq } => {
                    pending.remove((route.as_str(), *seq))?.is_some()
                }
                OutboxOp::Update { route, seq, record } => {
                    let present = pending.get((route.as_str(), *seq))?.is_some();
                    if present {
                        pending.insert((route.as_str(), *seq), record.as_slice())?;
                    }
                    present
                }
                OutboxOp::DeadLetter { route, seq, record } => {
                    let present = pending.remove((route.as_str(), *seq))?.is_some();
                    if present {
                        dead.insert((route.as_str(), *seq), record.as_slice())?;
                    }
                    present
                }
                OutboxOp::Replay { route, seq, record } => {
                    let present = dead.remove((route.as_str(), *seq))?.is_some();
                    if present {
                        pending.insert((route.as_str(), new_seq), record.as_slice())?;
                    }
                    present
                }
                OutboxOp::DropDead { route, seq } => dead.remove((route.as_str(), *seq))?.is_some(),
            };
            seqs.push(applied.then(|| counts.apply(&job.op)));
        }
    }
    txn.commit()?;
    Ok(seqs)
}

/// Counts pending and dead records per route and finds the next seq, at open.
fn count_outbox(db: &Database) -> Result<Counts, StoreError> {
    let txn = db.begin_read()?;
    let counts = Counts::default();
    {
        let mut c = counts.lock();
        for (table, dead) in [(OUTBOX, false), (DEAD, true)] {
            let t = txn.open_table(table)?;
            for entry in t.iter()? {
                let (k, _) = entry?;
                let (route, seq) = k.value();
                let map = if dead { &mut c.dead } else { &mut c.pending };
                *map.entry(route.to_owned()).or_insert(0) += 1;
                c.next_seq = c.next_seq.max(seq.saturating_add(1));
            }
        }
    }
    Ok(counts)
}

/// Deletes up to `max` dedup keys, then watermarks, whose expiry is at or before
/// `now`, oldest first, in one short transaction.
///
/// Durable like every write: a purge runs every few seconds at most, so its
/// fsync is cheap, and a non-durable commit would hold freed pages until the
/// next durable one.
fn purge(db: &Database, now: u64, max: usize) -> Result<usize, redb::Error> {
    let txn = db.begin_write()?;
    let purged;
    {
        let mut by_expiry = txn.open_table(DEDUP_EXPIRY)?;
        let mut dedup = txn.open_table(DEDUP)?;
        // Every index entry below `(now + 1, "")` has expiry <= now.
        let victims = expired(&by_expiry, now, max)?;
        for &(expiry, key) in &victims {
            by_expiry.remove((expiry, key))?;
            // The index and the table move together, but check anyway: a
            // key must never be deleted while it holds a newer expiry.
            let current = dedup.get(key)?.map(|v| v.value());
            if current == Some(expiry) {
                dedup.remove(key)?;
            }
        }
        let mut purged_so_far = victims.len();
        let mut wm_by_expiry = txn.open_table(WATERMARK_EXPIRY)?;
        let mut watermarks = txn.open_table(WATERMARKS)?;
        let victims = expired(&wm_by_expiry, now, max.saturating_sub(purged_so_far))?;
        for &(expiry, key) in &victims {
            wm_by_expiry.remove((expiry, key))?;
            let current = watermarks.get(key)?.map(|v| v.value().1);
            if current == Some(expiry) {
                watermarks.remove(key)?;
            }
        }
        purged_so_far += victims.len();
        purged = purged_so_far;
    }
    txn.commit()?;
    Ok(purged)
}

/// Up to `max` entries of an expiry index whose expiry is at or before `now`, oldest
/// first.
fn expired(
    index: &impl ReadableTable<(u64, u128), ()>,
    now: u64,
    max: usize,
) -> Result<Vec<(u64, u128)>, redb::StorageError> {
    // Every index entry below `(now + 1, 0)` has expiry <= now.
    index
        .range::<(u64, u128)>(..(now.saturating_add(1), 0))?
        .take(max)
        .map(|entry| entry.map(|(key, _)| key.value()))
        .collect()
}

/// Moves the dedup keys and watermarks of older layouts (module docs, "Migration")
/// into the hashed tables and deletes the old tables. Rows expired at `now` are
/// dropped instead of moved; v1 watermarks (no expiry) expire at
/// `now + MIGRATED_ORDER_TTL`.
fn migrate_unhashed(
    txn: &redb::WriteTransaction,
    keys: &KeyHasher,
    now: u64,
) -> Result<(), StoreError> {
    use redb::TableHandle as _;
    let names: Vec<String> = txn.list_tables()?.map(|t| t.name().to_owned()).collect();
    let has = |table: &str| names.iter().any(|n| n == table);
    let old_tables = [
        DEDUP_V1.name(),
        DEDUP_EXPIRY_V1.name(),
        WATERMARKS_V2.name(),
        WATERMARK_EXPIRY_V2.name(),
        WATERMARKS_V1.name(),
    ];
    if !old_tables.iter().any(|t| has(t)) {
        return Ok(());
    }
    let v1_until = now.saturating_add(super::duration_nanos(MIGRATED_ORDER_TTL));
    let (mut ids, mut entities) = (0u64, 0u64);
    {
        let mut tables = Hashed {
            dedup: txn.open_table(DEDUP)?,
            dedup_by_expiry: txn.open_table(DEDUP_EXPIRY)?,
            watermarks: txn.open_table(WATERMARKS)?,
            watermarks_by_expiry: txn.open_table(WATERMARK_EXPIRY)?,
        };
        if has(DEDUP_V1.name()) {
            for entry in txn.open_table(DEDUP_V1)?.iter()? {
                let (key, until) = entry?;
                let until = until.value();
                if until > now {
                    tables.put_dedup(keys.hash(key.value()), until)?;
                    ids += 1;
                }
            }
        }
        if has(WATERMARKS_V2.name()) {
            for entry in txn.open_table(WATERMARKS_V2)?.iter()? {
                let (key, value) = entry?;
                let (time, until) = value.value();
                if until > now {
                    tables.put_watermark(keys.hash(key.value()), time, until)?;
                    entities += 1;
                }
            }
        }
        if has(WATERMARKS_V1.name()) {
            for entry in txn.open_table(WATERMARKS_V1)?.iter()? {
                let (key, time) = entry?;
                tables.put_watermark(keys.hash(key.value()), time.value(), v1_until)?;
                entities += 1;
            }
        }
    }
    txn.delete_table(DEDUP_V1)?;
    txn.delete_table(DEDUP_EXPIRY_V1)?;
    txn.delete_table(WATERMARKS_V2)?;
    txn.delete_table(WATERMARK_EXPIRY_V2)?;
    txn.delete_table(WATERMARKS_V1)?;
    tracing::info!(
        dedup_keys = ids,
        watermarks = entities,
        "Embedded store: dedup keys and watermarks migrated to hashed keys (dedup_v2, watermarks_v3)."
    );
    Ok(())
}

/// The hashed tables, open in one write transaction, for the migration.
struct Hashed<'t> {
    dedup: redb::Table<'t, u128, u64>,
    dedup_by_expiry: redb::Table<'t, (u64, u128), ()>,
    watermarks: redb::Table<'t, u128, (i64, u64)>,
    watermarks_by_expiry: redb::Table<'t, (u64, u128), ()>,
}

impl Hashed<'_> {
    /// Stores a dedup key until `until`, or keeps the later expiry already stored
    /// (two raw keys with one hash: the safe direction is "seen" for longer).
    fn put_dedup(&mut self, key: u128, until: u64) -> Result<(), StoreError> {
        let old = self.dedup.get(key)?.map(|v| v.value());
        if old.is_some_and(|old| old >= until) {
            return Ok(());
        }
        if let Some(old) = old {
            self.dedup_by_expiry.remove((old, key))?;
        }
        self.dedup.insert(key, until)?;
        self.dedup_by_expiry.insert((until, key), ())?;
        Ok(())
    }

    /// Stores a watermark, merged with one already stored under the same hash (the
    /// newer time, the later expiry).
    fn put_watermark(&mut self, key: u128, time: i64, until: u64) -> Result<(), StoreError> {
        let old = self.watermarks.get(key)?.map(|v| v.value());
        let (time, until) = match old {
            Some((old_time, old_until)) => {
                self.watermarks_by_expiry.remove((old_until, key))?;
                (old_time.max(time), old_until.max(until))
            }
            None => (time, until),
        };
        self.watermarks.insert(key, (time, until))?;
        self.watermarks_by_expiry.insert((until, key), ())?;
        Ok(())
    }
}

/// A durable write of the probe row: reading alone would call a store ready
/// whose disk refuses writes (full, read-only remount, failing), where every
/// commit fails and dedup silently stops recording deliveries.
fn ping(db: &Database, now: u64) -> Result<(), redb::Error> {
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    {
        let mut meta = txn.open_table(META)?;
        meta.insert("ready_probe", now)?;
    }
    txn.commit()?;
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // tests: a panic is the failure report
mod tests {
    use std::sync::atomic::AtomicU64;

    use super::*;

    /// A file written before `order_ttl` (`watermarks_v1`, no expiry) keeps its
    /// watermarks: they are moved to `watermarks_v2` at open, with the default
    /// `order_ttl`, and the old table is gone.
    #[tokio::test]
    async fn watermarks_v1_are_migrated_at_open() {
        use crate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest};
        use redb::TableHandle as _;
        let dir = tempfile::tempdir().unwrap();
        {
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            txn.open_table(WATERMARKS_V1)
                .unwrap()
                .insert("r\0inc-1", 100)
                .unwrap();
            txn.commit().unwrap();
        }
        let store = EmbeddedStore::open(dir.path(), Clock::System).unwrap();
        let at = |time| ReserveRequest {
            route: "r",
            event_id: None,
            order: Some(OrderPoint {
                entity: "inc-1",
                time: EventTime(time),
            }),
            dedup_ttl: MIGRATED_ORDER_TTL,
            order_ttl: MIGRATED_ORDER_TTL,
        };
        assert!(matches!(
            store.reserve(at(99)).unwrap(),
            ReserveOutcome::Stale
        ));
        assert!(matches!(
            store.reserve(at(100)).unwrap(),
            ReserveOutcome::Reserved(_)
        ));
        let txn = store.db().unwrap().begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(!names.iter().any(|n| n == "watermarks_v1"), "{names:?}");
        let key = store.db().unwrap().keys.hash("r\0inc-1");
        let (time, until) = txn
            .open_table(WATERMARKS)
            .unwrap()
            .get(key)
            .unwrap()
            .unwrap()
            .value();
        assert_eq!(time, 100);
        let now = Clock::System.now_nanos();
        assert!(until > now && until <= now + super::super::duration_nanos(MIGRATED_ORDER_TTL));
    }

    /// A file written before hashed keys (`dedup_v1`, `watermarks_v2` and their
    /// expiry indexes, keyed by the raw `route NUL value`) keeps what it recorded: at
    /// open, live rows move to the hashed tables with their expiry, expired rows are
    /// dropped, the old tables are gone, and purge and reopen work on the result.
    #[tokio::test]
    async fn unhashed_tables_are_migrated_at_open() {
        use crate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest};
        use redb::{ReadableTableMetadata as _, TableHandle as _};
        let dir = tempfile::tempdir().unwrap();
        let now = 1_000_000_000_000_000_000u64;
        let clock = Clock::Manual(Arc::new(AtomicU64::new(now)));
        let hour = 3_600_000_000_000u64;
        {
            // The old layout, written as the previous release wrote it.
            let db = Database::create(dir.path().join(FILE_NAME)).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut dedup = txn.open_table(DEDUP_V1).unwrap();
                let mut by_expiry = txn.open_table(DEDUP_EXPIRY_V1).unwrap();
                for (key, until) in [("r\0live", now + hour), ("r\0gone", now - 1)] {
                    dedup.insert(key, until).unwrap();
                    by_expiry.insert((until, key), ()).unwrap();
                }
                let mut wm = txn.open_table(WATERMARKS_V2).unwrap();
                let mut wm_by_expiry = txn.open_table(WATERMARK_EXPIRY_V2).unwrap();
                for (key, time, until) in [
                    ("r\0inc-live", 500i64, now + 2 * hour),
                    ("r\0inc-gone", 900, now - 1),
                ] {
                    wm.insert(key, (time, until)).unwrap();
                    wm_by_expiry.insert((until, key), ()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let store =
            super::super::Store::open_embedded_with_clock(dir.path(), clock.clone()).unwrap();
        let ttl = std::time::Duration::from_secs(3600);
        let req = |id: Option<&'static str>, entity: Option<&'static str>, time| ReserveRequest {
            route: "r",
            event_id: id,
            order: entity.map(|entity| OrderPoint {
                entity,
                time: EventTime(time),
            }),
            dedup_ttl: ttl,
            order_ttl: ttl,
        };
        assert!(matches!(
            store.reserve(req(Some("live"), None, 0)).await.unwrap(),
            ReserveOutcome::Duplicate
        ));
        assert!(matches!(
            store
                .reserve(req(None, Some("inc-live"), 499))
                .await
                .unwrap(),
            ReserveOutcome::Stale
        ));
        for (id, entity) in [(Some("gone"), None), (None, Some("inc-gone"))] {
            match store.reserve(req(id, entity, 1)).await.unwrap() {
                ReserveOutcome::Reserved(r) => drop(r),
                other => panic!("{id:?} {entity:?}: {other:?}"),
            }
        }
        {
            let super::super::Store::Embedded(embedded) = &store else {
                unreachable!()
            };
            let open = embedded.db().unwrap();
            let txn = open.begin_read().unwrap();
            let names: Vec<String> = txn
                .list_tables()
                .unwrap()
                .map(|t| t.name().to_owned())
                .collect();
            for old in [
                "dedup_v1",
                "dedup_expiry_v1",
                "watermarks_v2",
                "watermark_expiry_v2",
            ] {
                assert!(!names.iter().any(|n| n == old), "{old} in {names:?}");
            }
            assert_eq!(txn.open_table(DEDUP).unwrap().len().unwrap(), 1);
            assert_eq!(txn.open_table(DEDUP_EXPIRY).unwrap().len().unwrap(), 1);
            assert_eq!(txn.open_table(WATERMARKS).unwrap().len().unwrap(), 1);
            assert_eq!(txn.open_table(WATERMARK_EXPIRY).unwrap().len().unwrap(), 1);
            let until = txn
                .open_table(DEDUP)
                .unwrap()
                .get(open.keys.hash("r\0live"))
                .unwrap()
                .map(|v| v.value());
            assert_eq!(until, Some(now + hour), "the expiry moves with the key");
        }
        // The same hash key after a reopen: what was migrated is still found.
        drop(store);
        let store =
            super::super::Store::open_embedded_with_clock(dir.path(), clock.clone()).unwrap();
        assert!(matches!(
            store.reserve(req(Some("live"), None, 0)).await.unwrap(),
            ReserveOutcome::Duplicate
        ));
        // Purge works on the migrated index: past both expiries, both rows go.
        let Clock::Manual(time) = &clock else {
            unreachable!()
        };
        time.store(now + 3 * hour, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(store.purge_expired(100).await.unwrap(), 2);
    }

    /// Every file draws its own hash key: the same `route NUL id` is stored under
    /// different hashes in two files, and a file's key survives a reopen.
    #[test]
    fn each_file_has_its_own_hash_key() {
        let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let hash = |dir: &Path| {
            let open = open_db(&dir.join(FILE_NAME), None, 0).unwrap();
            open.keys.hash("r\0id")
        };
        let first = hash(a.path());
        assert_eq!(first, hash(a.path()));
        assert_ne!(first, hash(b.path()));
    }

    /// Readiness is a durable write, not a read: after a ping the probe row holds the
    /// current time, and a burst of pings all succeed (sharing probe writes).
    #[tokio::test]
    async fn ping_writes_the_probe_row() {
        let dir = tempfile::tempdir().unwrap();
        let store = EmbeddedStore::open(dir.path(), Clock::System).unwrap();
        let before = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let pings: Vec<_> = (0..32)
            .map(|_| {
                let s = store.clone();
                tokio::spawn(async move { s.ping().await })
            })
            .collect();
        for p in pings {
            p.await.unwrap().unwrap();
        }
        let db = store.db().unwrap();
        let txn = db.begin_read().unwrap();
        let meta = txn.open_table(META).unwrap();
        let written = meta
            .get("ready_probe")
            .unwrap()
            .map(|v| v.value() / 1_000_000_000);
        assert!(
            written.is_some_and(|t| t >= before && t <= before + 5),
            "{written:?}"
        );
    }

    fn req(id: &str) -> ReserveRequest<'_> {
        ReserveRequest {
            route: "r",
            event_id: Some(id),
            order: None,
            dedup_ttl: std::time::Duration::from_secs(3600),
            order_ttl: std::time::Duration::from_secs(3600),
        }
    }

    async fn reserved(store: &super::super::Store, id: &str) -> Reservation {
        match store.reserve(req(id)).await.unwrap() {
            ReserveOutcome::Reserved(r) => r,
            other => panic!("{id}: {other:?}"),
        }
    }

    /// A write that fails takes the store down (reads and writes answer `Unavailable`,
    /// the reservation is released), and it reopens by itself once writes work again,
    /// with everything committed before the fault still there.
    #[tokio::test]
    async fn a_failed_write_takes_the_store_down_until_it_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let fault = WriteFault::new();
        let store =
            super::super::Store::open_embedded_with_fault(dir.path(), fault.clone()).unwrap();
        let r = reserved(&store, "before").await;
        store.commit(r).await.unwrap();
        let before = store.write_stats();
        assert!(before.commits >= 1 && before.changes >= 1, "{before:?}");

        fault.set(true);
        let r = reserved(&store, "during").await;
        assert!(matches!(
            store.commit(r).await.map_err(|e| e.kind()),
            Err(StoreErrorKind::Io)
        ));
        assert!(matches!(
            store.reserve(req("other")).await.map_err(|e| e.kind()),
            Err(StoreErrorKind::Unavailable)
        ));
        assert!(matches!(
            store.ping().await.map_err(|e| e.kind()),
            Err(StoreErrorKind::Unavailable)
        ));
        assert!(matches!(
            store
                .accept(None, "r", b"x".to_vec())
                .await
                .map_err(|e| e.kind()),
            Err(StoreErrorKind::Unavailable)
        ));
        // The first reopen comes after 1 s and fails: the fault is still on.
        tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
        assert!(matches!(
            store.ping().await.map_err(|e| e.kind()),
            Err(StoreErrorKind::Unavailable)
        ));

        fault.set(false);
        // The next attempt is 2 s after the first.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while store.ping().await.is_err() {
            assert!(std::time::Instant::now() < deadline, "never reopened");
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(matches!(
            store.reserve(req("before")).await.unwrap(),
            ReserveOutcome::Duplicate
        ));
        // The failed commit left no trace: its id is delivered again.
        let r = reserved(&store, "during").await;
        store.commit(r).await.unwrap();
        assert!(matches!(
            store.reserve(req("during")).await.unwrap(),
            ReserveOutcome::Duplicate
        ));
        assert!(store.write_stats().commits > before.commits);
    }

    /// `sync_commits = "deferred"`: sync-route commits are visible at once but not
    /// fsynced with their answer, an accept is fsynced before it returns (and takes the
    /// deferred commits with it), the writer fsyncs what is left within
    /// `DEFERRED_SYNC_MAX` without any further job, and a clean close keeps everything.
    #[tokio::test]
    async fn deferred_sync_commits_are_fsynced_within_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let open = |dir: &Path| {
            super::super::Store::Embedded(
                EmbeddedStore::open_with_fault(dir, Clock::System, None, SyncCommits::Deferred)
                    .unwrap(),
            )
        };
        let store = open(dir.path());
        let start = store.write_stats();
        for i in 0..20 {
            let r = reserved(&store, &format!("d{i}")).await;
            store.commit(r).await.unwrap();
        }
        let deferred = store.write_stats();
        assert_eq!(deferred.changes - start.changes, 20);
        // At most one fsync, and only if the 20 commits took over a second.
        assert!(deferred.commits - start.commits <= 1, "{deferred:?}");
        assert!(matches!(
            store.reserve(req("d0")).await.unwrap(),
            ReserveOutcome::Duplicate
        ));

        let r = reserved(&store, "accepted").await;
        store.accept(Some(r), "r", b"x".to_vec()).await.unwrap();
        let accepted = store.write_stats();
        assert_eq!(
            accepted.commits,
            deferred.commits + 1,
            "an accept is fsynced"
        );

        let r = reserved(&store, "late").await;
        store.commit(r).await.unwrap();
        assert_eq!(store.write_stats().commits, accepted.commits);
        tokio::time::sleep(DEFERRED_SYNC_MAX + std::time::Duration::from_millis(500)).await;
        assert_eq!(
            store.write_stats().commits,
            accepted.commits + 1,
            "the writer fsyncs by itself"
        );

        let r = reserved(&store, "last").await;
        store.commit(r).await.unwrap();
        drop(store);
        let store = open(dir.path());
        for id in ["d0", "d19", "accepted", "late", "last"] {
            assert!(
                matches!(
                    store.reserve(req(id)).await.unwrap(),
                    ReserveOutcome::Duplicate
                ),
                "{id}"
            );
        }
    }

    /// `max_pending` is checked in the accept's own transaction: 64 concurrent accepts
    /// against a limit of 10 leave exactly 10 pending, and the refused ones leave no
    /// dedup mark behind (their ids are reserved again).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_accepts_never_pass_max_pending() {
        let dir = tempfile::tempdir().unwrap();
        let store = super::super::Store::open_embedded(dir.path()).unwrap();
        let tasks: Vec<_> = (0..64)
            .map(|i| {
                let store = store.clone();
                tokio::spawn(async move {
                    let id = format!("e{i}");
                    let r = reserved(&store, &id).await;
                    let result = store.accept_within(Some(r), "r", b"x".to_vec(), 10).await;
                    (id, result)
                })
            })
            .collect();
        let mut refused = Vec::new();
        let mut accepted = 0;
        for t in tasks {
            match t.await.unwrap() {
                (_, Ok(_)) => accepted += 1,
                (id, Err(e)) if e.kind() == StoreErrorKind::OutboxFull => {
                    assert_eq!(e.to_string(), r#"the outbox of route "r" is full"#);
                    refused.push(id);
                }
                (id, Err(e)) => panic!("{id}: {e}"),
            }
        }
        assert_eq!(accepted, 10);
        assert_eq!(store.outbox_pending("r"), 10);
        for id in refused {
            let r = reserved(&store, &id).await;
            drop(r);
        }
        // The memory store keeps the same bound.
        let memory = super::super::Store::memory();
        for i in 0..12 {
            let result = memory.accept_within(None, "r", b"x".to_vec(), 10).await;
            assert_eq!(result.is_ok(), i < 10, "{i}: {result:?}");
        }
    }
}
