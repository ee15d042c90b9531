//! The outbox and dead-letter tables of the store (async delivery, DESIGN.md §6).
//!
//! The store keeps records as opaque bytes (their format belongs to
//! `delivery::outbox`), keyed `(route, seq)`. `seq` is assigned by the one writer
//! (the embedded store's writer thread, or under the memory store's lock) in commit
//! order, so a reader that has seen `seq` N will only ever find *newer* records above
//! N: a worker can poll "everything after the last seq I loaded" and never miss one.
//!
//! Accepting an event is one write: its dedup mark / watermark (the reservation's
//! commit) and its outbox record go into the same group-committed, fsynced
//! transaction. Pending and dead-letter counts per route are kept in memory beside the
//! tables (counted once at open) so the hot path's `max_pending` check is a map lookup.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

pub use super::redis::{Takeover, WorkerLease};
use super::{Reservation, Store, StoreError};

/// A change to the outbox or dead letters, applied in one transaction.
#[derive(Debug)]
pub enum OutboxOp {
    /// Adds a new record to the route's outbox (a new seq is assigned).
    Accept {
        /// The route.
        route: String,
        /// The record.
        record: Vec<u8>,
    },
    /// The record was delivered: removes it.
    Remove {
        /// The route.
        route: String,
        /// Its seq.
        seq: u64,
    },
    /// Replaces a pending record (attempt count, last error).
    Update {
        /// The route.
        route: String,
        /// Its seq.
        seq: u64,
        /// The new record.
        record: Vec<u8>,
    },
    /// Moves a pending record to the dead letters, as `record`.
    DeadLetter {
        /// The route.
        route: String,
        /// Its seq.
        seq: u64,
        /// The record as dead-lettered (last status/error).
        record: Vec<u8>,
    },
    /// Moves a dead letter back to the outbox, as `record`, under a new seq.
    Replay {
        /// The route.
        route: String,
        /// Its seq among the dead letters.
        seq: u64,
        /// The record as replayed (attempts reset).
        record: Vec<u8>,
    },
    /// Deletes a dead letter.
    DropDead {
        /// The route.
        route: String,
        /// Its seq among the dead letters.
        seq: u64,
    },
}

/// Pending and dead counts per route, and the next seq.
#[derive(Debug, Default)]
pub(super) struct Counts {
    inner: Mutex<CountsInner>,
}

#[derive(Debug, Clone)]
pub(super) struct CountsInner {
    pub(super) pending: HashMap<String, u64>,
    pub(super) dead: HashMap<String, u64>,
    /// Seqs start at 1, so "after 0" means "from the start".
    pub(super) next_seq: u64,
}

impl Default for CountsInner {
    fn default() -> Self {
        CountsInner {
            pending: HashMap::new(),
            dead: HashMap::new(),
            next_seq: 1,
        }
    }
}

impl Counts {
    pub(super) fn lock(&self) -> MutexGuard<'_, CountsInner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn pending(&self, route: &str) -> u64 {
        self.lock().pending.get(route).copied().unwrap_or(0)
    }

    pub(super) fn dead(&self, route: &str) -> u64 {
        self.lock().dead.get(route).copied().unwrap_or(0)
    }
}

impl CountsInner {
    fn add(map: &mut HashMap<String, u64>, route: &str, delta: i64) {
        let n = map.entry(route.to_owned()).or_insert(0);
        *n = n.saturating_add_signed(delta);
    }

    /// Applies the effect of `op` (already written) on the counts; returns its seq.
    pub(super) fn apply(&mut self, op: &OutboxOp) -> u64 {
        match op {
            OutboxOp::Accept { route, .. } | OutboxOp::Replay { route, .. } => {
                let seq = self.next_seq;
                self.next_seq += 1;
                Self::add(&mut self.pending, route, 1);
                if matches!(op, OutboxOp::Replay { .. }) {
                    Self::add(&mut self.dead, route, -1);
                }
                seq
            }
            OutboxOp::Remove { route, seq } => {
                Self::add(&mut self.pending, route, -1);
                *seq
            }
            OutboxOp::Update { seq, .. } => *seq,
            OutboxOp::DeadLetter { route, seq, .. } => {
                Self::add(&mut self.pending, route, -1);
                Self::add(&mut self.dead, route, 1);
                *seq
            }
            OutboxOp::DropDead { route, seq } => {
                Self::add(&mut self.dead, route, -1);
                *seq
            }
        }
    }
}

/// A stored record and where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    /// The route.
    pub route: String,
    /// Its seq.
    pub seq: u64,
    /// The record bytes.
    pub record: Vec<u8>,
}

/// The memory backend's tables.
#[derive(Debug, Default)]
pub(super) struct MemoryTables {
    pub(super) outbox: BTreeMap<(String, u64), Vec<u8>>,
    pub(super) dead: BTreeMap<(String, u64), Vec<u8>>,
}

impl MemoryTables {
    /// Applies `op` with `seq` (the new seq for accept/replay). An op naming a record
    /// that is not there (dropped meanwhile) changes nothing and says so.
    pub(super) fn apply(&mut self, op: &OutboxOp, new_seq: u64) -> bool {
        match op {
            OutboxOp::Accept { route, record } => {
                self.outbox.insert((route.clone(), new_seq), record.clone());
                true
            }
            OutboxOp::Remove { route, seq } => self.outbox.remove(&(route.clone(), *seq)).is_some(),
            OutboxOp::Update { route, seq, record } => {
                match self.outbox.get_mut(&(route.clone(), *seq)) {
                    Some(r) => {
                        r.clone_from(record);
                        true
                    }
                    None => false,
                }
            }
            OutboxOp::DeadLetter { route, seq, record } => {
                if self.outbox.remove(&(route.clone(), *seq)).is_none() {
                    return false;
                }
                self.dead.insert((route.clone(), *seq), record.clone());
                true
            }
            OutboxOp::Replay { route, seq, record } => {
                if self.dead.remove(&(route.clone(), *seq)).is_none() {
                    return false;
                }
                self.outbox.insert((route.clone(), new_seq), record.clone());
                true
            }
            OutboxOp::DropDead { route, seq } => self.dead.remove(&(route.clone(), *seq)).is_some(),
        }
    }
}

/// Which table a scan reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Table {
    /// Pending records.
    Outbox,
    /// Dead letters.
    Dead,
}

impl Store {
    /// Accepts an event: commits `reservation` (dedup mark, watermark) and adds
    /// `record` to the route's outbox in one durable transaction; returns its seq.
    /// On `Err` nothing was written and the reservation is released.
    pub async fn accept(
        &self,
        reservation: Option<Reservation>,
        route: &str,
        record: Vec<u8>,
    ) -> Result<u64, StoreError> {
        let op = OutboxOp::Accept {
            route: route.to_owned(),
            record,
        };
        match self {
            Store::Memory(s) => s.outbox_write(reservation, op, None),
            Store::Embedded(s) => s.outbox_write(reservation, op, None).await,
            Store::Redis(s) => {
                s.outbox_accept(reservation, route, record_of(op), None)
                    .await
            }
        }
    }

    /// Like [`Store::accept`], refused with [`StoreErrorKind::OutboxFull`](super::StoreErrorKind::OutboxFull) (nothing
    /// written, the reservation released) when the route already has `max_pending`
    /// pending events. The count is checked where the record is written (in the
    /// embedded store's writer transaction, under the memory store's lock), so
    /// concurrent accepts never take the outbox past `max_pending`.
    pub async fn accept_within(
        &self,
        reservation: Option<Reservation>,
        route: &str,
        record: Vec<u8>,
        max_pending: u64,
    ) -> Result<u64, StoreError> {
        let op = OutboxOp::Accept {
            route: route.to_owned(),
            record,
        };
        match self {
            Store::Memory(s) => s.outbox_write(reservation, op, Some(max_pending)),
            Store::Embedded(s) => s.outbox_write(reservation, op, Some(max_pending)).await,
            // Replicas share the outbox: this process's count (refreshed from Redis
            // every few seconds and on each accept) turns most refusals away without a
            // round trip, and the accept script checks the stream's length again in the
            // same atomic step as the write, so concurrent accepts on several replicas
            // never pass `max_pending`.
            Store::Redis(s) => {
                if s.counts().pending(route) >= max_pending {
                    return Err(StoreError::outbox_full(route));
                }
                s.outbox_accept(reservation, route, record_of(op), Some(max_pending))
                    .await
            }
        }
    }

    /// Applies one outbox change durably. Returns the record's (new) seq, or
    /// `Ok(None)` when the record it names is not there any more.
    pub async fn outbox_apply(&self, op: OutboxOp) -> Result<Option<u64>, StoreError> {
        match self {
            Store::Memory(s) => s.outbox_write_checked(op),
            Store::Embedded(s) => s.outbox_write_checked(op).await,
            Store::Redis(s) => s.outbox_apply(op).await,
        }
    }

    /// Up to `max` records of `table` (of `route`, or every route) with a seq above
    /// `after`, oldest first.
    pub async fn outbox_scan(
        &self,
        table: Table,
        route: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        match self {
            Store::Memory(s) => Ok(s.outbox_scan(table, route, after, max)),
            Store::Embedded(s) => s.outbox_scan(table, route, after, max),
            Store::Redis(s) => s.outbox_scan(table, route, after, max).await,
        }
    }

    /// The next pending records of `route` for this process's worker, oldest first,
    /// at most `max`. The local backends scan above `after`. On Redis the worker is a
    /// consumer of the route's group: first its own pending entries above `after`
    /// (after a takeover: those claimed from a dead replica), then new entries.
    pub async fn outbox_next(
        &self,
        route: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        match self {
            Store::Memory(s) => Ok(s.outbox_scan(Table::Outbox, Some(route), after, max)),
            Store::Embedded(s) => s.outbox_scan(Table::Outbox, Some(route), after, max),
            Store::Redis(s) => s.outbox_next(route, after, max).await,
        }
    }

    /// Claims for this process what other replicas left pending on `route`, before it
    /// delivers the route (Redis); nothing to claim on the local backends.
    pub async fn outbox_takeover(&self, route: &str) -> Result<Takeover, StoreError> {
        match self {
            Store::Redis(s) => s.outbox_takeover(route).await,
            Store::Memory(_) | Store::Embedded(_) => Ok(Takeover::default()),
        }
    }

    /// One record of `table`, if present.
    pub async fn outbox_get(
        &self,
        table: Table,
        route: &str,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        match self {
            Store::Memory(s) => Ok(s.outbox_get(table, route, seq)),
            Store::Embedded(s) => s.outbox_get(table, route, seq),
            Store::Redis(s) => s.outbox_get(table, route, seq).await,
        }
    }

    /// Events of `route` accepted and not yet delivered or dead-lettered.
    pub fn outbox_pending(&self, route: &str) -> u64 {
        match self {
            Store::Memory(s) => s.counts().pending(route),
            Store::Embedded(s) => s.counts().pending(route),
            Store::Redis(s) => s.counts().pending(route),
        }
    }

    /// Dead letters of `route`.
    pub fn dead_letter_count(&self, route: &str) -> u64 {
        match self {
            Store::Memory(s) => s.counts().dead(route),
            Store::Embedded(s) => s.counts().dead(route),
            Store::Redis(s) => s.counts().dead(route),
        }
    }

    /// Re-reads `route`'s pending and dead counts where other processes change them
    /// (Redis); a no-op for the local backends, whose counts are exact.
    pub async fn outbox_refresh(&self, route: &str) -> Result<(), StoreError> {
        match self {
            Store::Redis(s) => s.outbox_refresh(route).await,
            Store::Memory(_) | Store::Embedded(_) => Ok(()),
        }
    }

    /// Takes or renews the right to deliver `route`'s outbox (`give_up`: hands it
    /// back). Only a store shared by replicas (Redis) has other holders; a local store
    /// is always [`WorkerLease::Renewed`].
    pub async fn worker_lease(
        &self,
        route: &str,
        give_up: bool,
    ) -> Result<WorkerLease, StoreError> {
        match self {
            Store::Redis(s) => s.worker_lease(route, give_up).await,
            Store::Memory(_) | Store::Embedded(_) => Ok(WorkerLease::Renewed),
        }
    }
}

/// The record of an accept (the only op [`Store::accept`] builds).
fn record_of(op: OutboxOp) -> Vec<u8> {
    match op {
        OutboxOp::Accept { record, .. } => record,
        _ => Vec::new(),
    }
}

/// Scans a `BTreeMap` table the way the embedded store scans its redb table.
pub(super) fn scan_map(
    map: &BTreeMap<(String, u64), Vec<u8>>,
    route: Option<&str>,
    after: u64,
    max: usize,
) -> Vec<Stored> {
    let matches = |r: &str, seq: u64| route.is_none_or(|want| want == r) && seq > after;
    map.iter()
        .filter(|((r, seq), _)| matches(r, *seq))
        .take(max)
        .map(|((r, seq), v)| Stored {
            route: r.clone(),
            seq: *seq,
            record: v.clone(),
        })
        .collect()
}
