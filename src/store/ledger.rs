//! The in-flight ledger: the local backends' (memory, embedded) mechanism for holding a
//! reservation's keys while its delivery runs.
//!
//! It is process memory, so it holds only within one process: a backend shared by
//! replicas (Redis) leases its keys in the backend itself, with an expiry, and does not
//! use this. What a reservation holds is its [`Lease`](super::Lease).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{
    EventTime, Lease, Reservation, ReserveOutcome, ReserveRequest, StoreError, scoped_key,
};

/// What a backend has committed for one request's keys, as read inside the
/// ledger's critical section.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Committed {
    /// Expiry (unix nanos) of the id's dedup key, if one is stored; it may
    /// already have passed.
    pub(super) seen_until: Option<u64>,
    /// The entity's watermark, if any event of it was committed.
    pub(super) watermark: Option<EventTime>,
}

/// The process-local record of reservations in flight.
///
/// Atomicity argument: a backend's committed state for a key changes only
/// through the commit of the one reservation holding that key in flight, and
/// that reservation leaves the ledger only *after* its write is visible. So a
/// `reserve` that holds `maps` while it reads the committed state sees, for
/// each of its keys, either the key in flight or the committed result, never
/// neither. (Purge only deletes expired keys, which read as absent anyway.)
#[derive(Debug, Default)]
pub(super) struct Ledger {
    maps: Mutex<InFlightMaps>,
    next_token: AtomicU64,
}

#[derive(Debug, Default)]
struct InFlightMaps {
    /// `route NUL id` → token of the reservation holding it.
    ids: HashMap<String, u64>,
    /// `route NUL entity` → token of the reservation holding it.
    entities: HashMap<String, u64>,
}

impl Ledger {
    fn lock(&self) -> MutexGuard<'_, InFlightMaps> {
        // A panic inside the critical section can only happen between plain
        // map operations, which leave the maps consistent: keep serving.
        self.maps.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The atomic check-and-reserve. `lookup` reads the backend's committed
    /// state for `(id_key, entity_key)` and runs while the ledger is locked.
    pub(super) fn reserve(
        self: &Arc<Self>,
        req: &ReserveRequest<'_>,
        now: u64,
        lookup: impl FnOnce(Option<&str>, Option<&str>) -> Result<Committed, StoreError>,
    ) -> Result<ReserveOutcome, StoreError> {
        if req.route.contains('\0') {
            return Err(StoreError::invalid_route(req.route));
        }
        let id_key = req.event_id.map(|id| scoped_key(req.route, id));
        let entity_key = req.order.map(|o| scoped_key(req.route, o.entity));

        let mut maps = self.lock();
        // Neither key: nothing was ever committed for this request, in any backend.
        let committed = if id_key.is_none() && entity_key.is_none() {
            Committed::default()
        } else {
            lookup(id_key.as_deref(), entity_key.as_deref())?
        };

        if committed.seen_until.is_some_and(|until| until > now) {
            return Ok(ReserveOutcome::Duplicate);
        }
        if id_key.as_ref().is_some_and(|k| maps.ids.contains_key(k)) {
            return Ok(ReserveOutcome::InFlight);
        }
        if let (Some(watermark), Some(order)) = (committed.watermark, req.order) {
            // Equal is not stale: two events stamped the same instant both pass.
            if watermark > order.time {
                return Ok(ReserveOutcome::Stale);
            }
        }
        if entity_key
            .as_ref()
            .is_some_and(|k| maps.entities.contains_key(k))
        {
            return Ok(ReserveOutcome::InFlight);
        }

        let token = self.next_token.fetch_add(1, Ordering::Relaxed);
        if let Some(k) = &id_key {
            maps.ids.insert(k.clone(), token);
        }
        if let Some(k) = &entity_key {
            maps.entities.insert(k.clone(), token);
        }
        drop(maps);

        Ok(ReserveOutcome::Reserved(Reservation {
            route: req.route.to_owned(),
            event_id: req.event_id.map(str::to_owned),
            order: req.order.map(|o| (o.entity.to_owned(), o.time)),
            dedup_ttl: req.dedup_ttl,
            order_ttl: req.order_ttl,
            lease: Lease::Local(InFlightGuard {
                ledger: Arc::clone(self),
                token,
                id_key,
                entity_key,
            }),
        }))
    }
}

/// A local lease: holds a reservation's keys in the ledger, and takes them out when
/// dropped.
pub(super) struct InFlightGuard {
    pub(super) ledger: Arc<Ledger>,
    pub(super) token: u64,
    /// `route NUL id`, present iff the reservation has an event id.
    pub(super) id_key: Option<String>,
    /// `route NUL entity`, present iff the reservation has an order point.
    pub(super) entity_key: Option<String>,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        let mut maps = self.ledger.lock();
        // Remove only our own entry: the token check keeps a (buggy) double
        // removal from freeing a key another reservation now holds.
        if let Some(k) = &self.id_key
            && maps.ids.get(k) == Some(&self.token)
        {
            maps.ids.remove(k);
        }
        if let Some(k) = &self.entity_key
            && maps.entities.get(k) == Some(&self.token)
        {
            maps.entities.remove(k);
        }
    }
}
