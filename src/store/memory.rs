//! In-memory backend: all state in process memory, lost on restart.
//!
//! For tests and throwaway runs (`store.backend = "memory"`). It implements
//! the same contract as the embedded store (checked by `conformance.rs`),
//! including expiry on read: an expired key that `purge_expired` has not
//! removed yet is not a duplicate.
//!
//! Lock order: the ledger's in-flight maps, then `data`. `reserve` reads
//! `data` while holding the ledger; `commit` writes `data`, releases it, and
//! only then drops the reservation (which takes the ledger), so the two never
//! wait on each other in opposite orders.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::ledger::{Committed, Ledger};
use super::{Clock, EventTime, Reservation, ReserveOutcome, ReserveRequest, StoreError};

/// The in-memory store. `Clone` shares the same state.
#[derive(Clone)]
pub struct MemoryStore {
    inner: Arc<Inner>,
}

struct Inner {
    ledger: Arc<Ledger>,
    data: Mutex<Data>,
    clock: Clock,
    /// The outbox and dead letters (taken after `data` is released, never with it).
    outbox: Mutex<super::outbox::MemoryTables>,
    counts: super::outbox::Counts,
}

#[derive(Default)]
struct Data {
    /// `route NUL id` → expiry (unix nanos).
    seen: HashMap<String, u64>,
    /// `(expiry, key)` for every entry of `seen`, so a purge finds the
    /// oldest expired keys without scanning everything.
    by_expiry: BTreeSet<(u64, String)>,
    /// `route NUL entity` → newest committed event time and its expiry (unix nanos).
    watermarks: HashMap<String, (EventTime, u64)>,
    /// `(expiry, key)` for every entry of `watermarks`, for purging.
    watermarks_by_expiry: BTreeSet<(u64, String)>,
}

impl MemoryStore {
    pub(super) fn new(clock: Clock) -> MemoryStore {
        MemoryStore {
            inner: Arc::new(Inner {
                ledger: Arc::default(),
                data: Mutex::default(),
                clock,
                outbox: Mutex::default(),
                counts: super::outbox::Counts::default(),
            }),
        }
    }

    fn data(&self) -> MutexGuard<'_, Data> {
        // Every critical section is a handful of map operations that cannot
        // leave `Data` half-updated in a way that matters: keep serving.
        self.inner
            .data
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn reserve(&self, req: ReserveRequest<'_>) -> Result<ReserveOutcome, StoreError> {
        let now = self.inner.clock.now_nanos();
        self.inner.ledger.reserve(&req, now, |id_key, entity_key| {
            let data = self.data();
            Ok(Committed {
                seen_until: id_key.and_then(|k| data.seen.get(k).copied()),
                watermark: entity_key.and_then(|k| data.watermark(k, now)),
            })
        })
    }

    pub(super) fn commit(&self, r: Reservation) -> Result<(), StoreError> {
        if !r.belongs_to(&self.inner.ledger) {
            return Err(StoreError::foreign_reservation());
        }
        let now = self.inner.clock.now_nanos();
        let expires_at = self.inner.clock.expiry_after(r.dedup_ttl);
        let order_expires_at = self.inner.clock.expiry_after(r.order_ttl);
        let mut data = self.data();
        if let Some(key) = r.local_id_key() {
            if let Some(old) = data.seen.insert(key.clone(), expires_at) {
                data.by_expiry.remove(&(old, key.clone()));
            }
            data.by_expiry.insert((expires_at, key.clone()));
        }
        if let (Some(key), Some((_, time))) = (r.local_entity_key(), &r.order) {
            let newest = data.watermark(key, now).map_or(*time, |old| old.max(*time));
            if let Some((_, old)) = data
                .watermarks
                .insert(key.clone(), (newest, order_expires_at))
            {
                data.watermarks_by_expiry.remove(&(old, key.clone()));
            }
            data.watermarks_by_expiry
                .insert((order_expires_at, key.clone()));
        }
        drop(data);
        // The commit is visible now: leave the in-flight maps.
        drop(r);
        Ok(())
    }

    pub(super) fn purge_expired(&self, max: usize) -> usize {
        let now = self.inner.clock.now_nanos();
        let mut data = self.data();
        let mut purged = 0;
        while purged < max {
            match data.by_expiry.first() {
                Some((expiry, _)) if *expiry <= now => {}
                _ => break,
            }
            let Some((_, key)) = data.by_expiry.pop_first() else {
                break;
            };
            data.seen.remove(&key);
            purged += 1;
        }
        while purged < max {
            match data.watermarks_by_expiry.first() {
                Some((expiry, _)) if *expiry <= now => {}
                _ => break,
            }
            let Some((_, key)) = data.watermarks_by_expiry.pop_first() else {
                break;
            };
            data.watermarks.remove(&key);
            purged += 1;
        }
        purged
    }
}

impl Data {
    /// The entity's watermark, unless it has expired.
    fn watermark(&self, key: &str, now: u64) -> Option<EventTime> {
        self.watermarks
            .get(key)
            .filter(|(_, until)| *until > now)
            .map(|(time, _)| *time)
    }
}

// === Outbox (see `outbox.rs`) ===

impl MemoryStore {
    pub(super) fn counts(&self) -> &super::outbox::Counts {
        &self.inner.counts
    }

    fn tables(&self) -> MutexGuard<'_, super::outbox::MemoryTables> {
        self.inner
            .outbox
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Writes the record, then commits the reservation: nothing here survives a
    /// restart, so the two need no common transaction; the reservation keeps the
    /// id and entity in flight until both are visible.
    pub(super) fn outbox_write(
        &self,
        reservation: Option<Reservation>,
        op: super::outbox::OutboxOp,
        limit: Option<u64>,
    ) -> Result<u64, StoreError> {
        if let Some(r) = &reservation
            && !r.belongs_to(&self.inner.ledger)
        {
            return Err(StoreError::foreign_reservation());
        }
        let seq = {
            let mut tables = self.tables();
            let mut counts = self.inner.counts.lock();
            if let (super::outbox::OutboxOp::Accept { route, .. }, Some(limit)) = (&op, limit)
                && counts.pending.get(route).copied().unwrap_or(0) >= limit
            {
                return Err(StoreError::outbox_full(route));
            }
            let seq = counts.next_seq;
            if tables.apply(&op, seq) {
                counts.apply(&op)
            } else {
                seq
            }
        };
        if let Some(r) = reservation {
            self.commit(r)?;
        }
        Ok(seq)
    }

    pub(super) fn outbox_write_checked(
        &self,
        op: super::outbox::OutboxOp,
    ) -> Result<Option<u64>, StoreError> {
        let mut tables = self.tables();
        let mut counts = self.inner.counts.lock();
        let seq = counts.next_seq;
        Ok(tables.apply(&op, seq).then(|| counts.apply(&op)))
    }

    pub(super) fn outbox_scan(
        &self,
        table: super::outbox::Table,
        route: Option<&str>,
        after: u64,
        max: usize,
    ) -> Vec<super::outbox::Stored> {
        let tables = self.tables();
        let map = match table {
            super::outbox::Table::Outbox => &tables.outbox,
            super::outbox::Table::Dead => &tables.dead,
        };
        super::outbox::scan_map(map, route, after, max)
    }

    pub(super) fn outbox_get(
        &self,
        table: super::outbox::Table,
        route: &str,
        seq: u64,
    ) -> Option<Vec<u8>> {
        let tables = self.tables();
        let map = match table {
            super::outbox::Table::Outbox => &tables.outbox,
            super::outbox::Table::Dead => &tables.dead,
        };
        map.get(&(route.to_owned(), seq)).cloned()
    }
}

impl fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}
