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
//! | `dedup_v1` | `route NUL id` | expiry, unix nanos (`u64`) |
//! | `dedup_expiry_v1` | `(expiry, route NUL id)` | `()` |
//! | `watermarks_v1` | `route NUL entity` | newest committed event time, unix nanos (`i64`) |
//!
//! `dedup_expiry_v1` is an index of `dedup_v1` ordered by expiry, kept in the
//! same transactions, so that a purge is a bounded range scan from the
//! oldest expiry instead of a scan of every key.
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
//!   memory stays bounded however many ids are stored (~135 MB RSS with 1M
//!   ids after random lookups, `examples/fill_million.rs`).
//! * **Writes** (`commit`, `purge_expired`): one dedicated writer thread owns
//!   every write transaction. It blocks for the first job, drains everything
//!   else already queued (up to [`MAX_BATCH`] commits) and writes the whole
//!   batch in one transaction with `Durability::Immediate` (fsync): group
//!   commit, so N concurrent commits cost one fsync (measured: ~310 µs per
//!   lone commit, ~12 µs per commit with 64 concurrent tasks). Only after the commit
//!   returns does it take the batch's keys out of the in-flight ledger and
//!   answer each waiter, so a concurrent `reserve` always sees either "in
//!   flight" or the durable result.
//!
//! Dropping the last clone of the store stops the writer (its queue
//! disconnects) and joins it, so the file is closed when the drop returns and
//! can be reopened at once.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use redb::{Database, Durability, ReadableDatabase, ReadableTable, TableDefinition};
use tokio::sync::oneshot;

use super::ledger::{Committed, Ledger};
use super::outbox::{Counts, CountsInner, OutboxOp, Stored, Table};
use super::{Clock, EventTime, Reservation, ReserveOutcome, ReserveRequest, StoreError};

/// The database file's name inside `store.path`.
pub(super) const FILE_NAME: &str = "hookgate.redb";

/// redb's page cache. redb's default is 1 GiB; the working set of a gateway's
/// hot keys is far smaller, and this bounds the process's memory.
const CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Most commits written in one transaction. Bounds the latency one batch adds
/// to the commits queued behind it.
const MAX_BATCH: usize = 4096;

/// `route NUL id` → expiry (unix nanos).
const DEDUP: TableDefinition<&str, u64> = TableDefinition::new("dedup_v1");
/// `(expiry, route NUL id)` → `()`: `DEDUP` ordered by expiry, for purging.
const DEDUP_EXPIRY: TableDefinition<(u64, &str), ()> = TableDefinition::new("dedup_expiry_v1");
/// `route NUL entity` → newest committed event time (unix nanos).
const WATERMARKS: TableDefinition<&str, i64> = TableDefinition::new("watermarks_v1");
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
    db: Arc<Database>,
    clock: Clock,
    path: PathBuf,
    counts: Arc<Counts>,
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
    commit: Option<(Reservation, u64)>,
    op: OutboxOp,
    done: oneshot::Sender<Result<Option<u64>, StoreError>>,
}

struct PendingCommit {
    /// Holds the keys in flight until the batch is durable.
    reservation: Reservation,
    expires_at: u64,
    done: oneshot::Sender<Result<(), StoreError>>,
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
        std::fs::create_dir_all(dir).map_err(|source| StoreError::Io {
            action: "create store directory",
            path: dir.to_owned(),
            source,
        })?;
        let path = dir.join(FILE_NAME);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)?;

        // Create the tables up front so read transactions never meet a
        // missing table.
        let txn = db.begin_write()?;
        txn.open_table(DEDUP)?;
        txn.open_table(DEDUP_EXPIRY)?;
        txn.open_table(WATERMARKS)?;
        txn.open_table(OUTBOX)?;
        txn.open_table(DEAD)?;
        txn.commit()?;
        let counts = Arc::new(count_outbox(&db)?);

        let db = Arc::new(db);
        let (jobs, queue) = mpsc::channel();
        let writer_db = Arc::clone(&db);
        let writer_counts = Arc::clone(&counts);
        let thread = std::thread::Builder::new()
            .name("hookgate-store-writer".to_owned())
            .spawn(move || run_writer(&writer_db, &queue, &writer_counts))
            .map_err(|source| StoreError::Io {
                action: "start the writer thread for",
                path: path.clone(),
                source,
            })?;

        Ok(EmbeddedStore {
            inner: Arc::new(Inner {
                jobs,
                _writer: Writer(Some(thread)),
                ledger: Arc::default(),
                db,
                clock,
                path,
                counts,
            }),
        })
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
    ) -> Result<u64, StoreError> {
        if let Some(r) = &reservation
            && !r.belongs_to(&self.inner.ledger)
        {
            return Err(StoreError::ForeignReservation);
        }
        let commit = reservation.filter(|r| !r.is_empty()).map(|r| {
            let expires_at = self.inner.clock.expiry_after(r.dedup_ttl);
            (r, expires_at)
        });
        let seq = self
            .call(|done| Job::Outbox(OutboxJob { commit, op, done }))
            .await?;
        seq.ok_or(StoreError::WriterStopped)
    }

    pub(super) async fn outbox_write_checked(
        &self,
        op: OutboxOp,
    ) -> Result<Option<u64>, StoreError> {
        self.call(|done| {
            Job::Outbox(OutboxJob {
                commit: None,
                op,
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
        let txn = self.inner.db.begin_read()?;
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
        let txn = self.inner.db.begin_read()?;
        let t = txn.open_table(match table {
            Table::Outbox => OUTBOX,
            Table::Dead => DEAD,
        })?;
        Ok(t.get((route, seq))?.map(|v| v.value().to_vec()))
    }

    pub(super) fn reserve(&self, req: ReserveRequest<'_>) -> Result<ReserveOutcome, StoreError> {
        let now = self.inner.clock.now_nanos();
        let db = &*self.inner.db;
        self.inner.ledger.reserve(&req, now, |id_key, entity_key| {
            lookup(db, id_key, entity_key)
        })
    }

    pub(super) async fn commit(&self, r: Reservation) -> Result<(), StoreError> {
        if !r.belongs_to(&self.inner.ledger) {
            return Err(StoreError::ForeignReservation);
        }
        if r.is_empty() {
            // Neither id nor entity: nothing to persist.
            return Ok(());
        }
        let expires_at = self.inner.clock.expiry_after(r.dedup_ttl);
        self.call(|done| {
            Job::Commit(PendingCommit {
                reservation: r,
                expires_at,
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
            .map_err(|_| StoreError::WriterStopped)?;
        answer.await.map_err(|_| StoreError::WriterStopped)?
    }
}

impl fmt::Debug for EmbeddedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmbeddedStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

/// Reads the committed state of one request's keys from a fresh snapshot.
fn lookup(
    db: &Database,
    id_key: Option<&str>,
    entity_key: Option<&str>,
) -> Result<Committed, StoreError> {
    let txn = db.begin_read()?;
    let seen_until = match id_key {
        Some(key) => txn.open_table(DEDUP)?.get(key)?.map(|v| v.value()),
        None => None,
    };
    let watermark = match entity_key {
        Some(key) => txn
            .open_table(WATERMARKS)?
            .get(key)?
            .map(|v| EventTime(v.value())),
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

/// The writer loop: group commits, then purges and pings, until every sender
/// is gone.
fn run_writer(db: &Database, queue: &mpsc::Receiver<Job>, counts: &Counts) {
    let mut commits = Vec::new();
    let mut outbox = Vec::new();
    let mut others = Vec::new();
    while let Ok(first) = queue.recv() {
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

        if !commits.is_empty() || !outbox.is_empty() {
            let mut next = counts.lock().clone();
            let result = write_batch(db, &commits, &outbox, &mut next);
            let seqs = match &result {
                Ok(seqs) => {
                    *counts.lock() = next;
                    seqs.clone()
                }
                Err(_) => Vec::new(),
            };
            let result = result.map(|_| ()).map_err(|err| {
                tracing::error!(batch = commits.len() + outbox.len(), error = %err, "Embedded store group commit failed.");
                Arc::new(err)
            });
            finish_outbox(&result, &mut outbox, seqs);
            finish_batch(result, &mut commits);
        }
        // Pings that arrived together share one probe write: a flood of `/readyz`
        // calls costs one fsync per writer pass, not one each.
        let mut probe = None;
        for job in others.drain(..) {
            // A waiter that went away needs no answer.
            match job {
                Maintenance::Purge { now, max, done } => {
                    let _ = done.send(purge(db, now, max).map_err(StoreError::from));
                }
                Maintenance::Ping { now, done } => {
                    let result = probe.get_or_insert_with(|| ping(db, now).map_err(Arc::new));
                    let _ = done.send(result.clone().map_err(StoreError::WriteFailed));
                }
            }
        }
    }
}

/// Releases the batch's keys from the ledger (the write is visible now, or it
/// failed and the reservations are abandoned) and answers every waiter.
fn finish_batch(result: Result<(), Arc<redb::Error>>, commits: &mut Vec<PendingCommit>) {
    let batch = commits.len();
    tracing::trace!(batch, "Embedded store group commit done.");
    for pending in commits.drain(..) {
        drop(pending.reservation);
        // A waiter that went away (its request was cancelled) needs no answer.
        let _ = pending
            .done
            .send(result.clone().map_err(StoreError::WriteFailed));
    }
}

/// Answers the outbox jobs of a batch (with their seq, or `None` when the record
/// they named was gone) and releases their reservations.
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
            Err(e) => Err(StoreError::WriteFailed(Arc::clone(e))),
        };
        let _ = job.done.send(answer);
    }
}

/// Writes one group commit in a single durable transaction: dedup commits, then
/// outbox changes (each accept's reservation in the same transaction as its record).
/// `counts` is updated as the changes are written; the caller keeps it only if the
/// commit succeeds. Returns each outbox job's seq (`None`: its record was gone).
fn write_batch(
    db: &Database,
    commits: &[PendingCommit],
    outbox: &[OutboxJob],
    counts: &mut CountsInner,
) -> Result<Vec<Option<u64>>, redb::Error> {
    let mut txn = db.begin_write()?;
    // redb's default, stated because the contract depends on it: `commit`
    // returns only after fsync.
    txn.set_durability(Durability::Immediate)?;
    {
        let mut dedup = txn.open_table(DEDUP)?;
        let mut by_expiry = txn.open_table(DEDUP_EXPIRY)?;
        let mut watermarks = txn.open_table(WATERMARKS)?;
        let commits = commits.iter().map(|p| (&p.reservation, p.expires_at));
        let accepts = outbox
            .iter()
            .filter_map(|j| j.commit.as_ref().map(|(r, e)| (r, *e)));
        for (r, expires_at) in commits.chain(accepts) {
            if let Some(key) = r.local_id_key().map(String::as_str) {
                let old = dedup.insert(key, expires_at)?.map(|v| v.value());
                // A re-commit after expiry replaces the key's index entry.
                if let Some(old) = old {
                    by_expiry.remove((old, key))?;
                }
                by_expiry.insert((expires_at, key), ())?;
            }
            if let (Some(key), Some((_, time))) =
                (r.local_entity_key().map(String::as_str), &r.order)
            {
                let old = watermarks.get(key)?.map(|v| v.value());
                if old.is_none_or(|old| time.0 > old) {
                    watermarks.insert(key, time.0)?;
                }
            }
        }
    }
    let mut seqs = Vec::with_capacity(outbox.len());
    {
        let mut pending = txn.open_table(OUTBOX)?;
        let mut dead = txn.open_table(DEAD)?;
        for job in outbox {
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

/// Deletes up to `max` dedup keys whose expiry is at or before `now`, oldest
/// first, in one short transaction.
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
        let victims = by_expiry
            .range::<(u64, &str)>(..(now.saturating_add(1), ""))?
            .take(max)
            .map(|entry| {
                entry.map(|(key, _)| {
                    let (expiry, key) = key.value();
                    (expiry, key.to_owned())
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        for (expiry, key) in &victims {
            by_expiry.remove((*expiry, key.as_str()))?;
            // The index and the table move together, but check anyway: a
            // key must never be deleted while it holds a newer expiry.
            let current = dedup.get(key.as_str())?.map(|v| v.value());
            if current == Some(*expiry) {
                dedup.remove(key.as_str())?;
            }
        }
        purged = victims.len();
    }
    txn.commit()?;
    Ok(purged)
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
    use super::*;

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
        let txn = store.inner.db.begin_read().unwrap();
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
}
