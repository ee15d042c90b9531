//! The dedup/order store against a reference model: sequences of reserve, commit,
//! release, drop, expire (a commit whose TTL has already passed), purge and restart,
//! run on the memory and the embedded backend side by side.
//!
//! Invariants: every `reserve` outcome is the one the contract's precedence gives
//! (duplicate, then the id in flight, then stale, then the entity in flight, then
//! reserved), computed by a model of a few maps; a reservation reports what was
//! reserved; commit and release succeed; purge removes exactly the expired keys,
//! up to the limit asked, and reports how many; after a restart the memory store is empty and the
//! embedded one remembers every commit (and nothing that was only in flight); a route
//! name with NUL is refused.
#![no_main]

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use hookgate::store::{
    EventTime, OrderPoint, Reservation, ReserveOutcome, ReserveRequest, Store, StoreErrorKind,
};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const ROUTES: &[&str] = &["a", "b", "a.b"];
/// Ids and entities may contain anything, NUL included.
const VALUES: &[&str] = &["e1", "e2", "", "\u{0}", "a\u{0}b", "b", "é"];
/// A TTL that does not pass during a run, and one that has passed when it is read.
const LIVE: Duration = Duration::from_secs(3600);
const EXPIRED: Duration = Duration::ZERO;
const MAX_SLOTS: usize = 6;

#[derive(Debug, Arbitrary)]
enum Op {
    Reserve {
        route: u8,
        id: Option<u8>,
        entity: Option<u8>,
        time: i8,
        live: bool,
    },
    Commit(u8),
    Release(u8),
    Drop(u8),
    /// Purge at most this many (mod 8) expired keys, then all the rest.
    Purge(u8),
    Restart,
    /// A route name with NUL.
    BadRoute,
}

type Key = (usize, usize);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Reserved,
    Duplicate,
    InFlight,
    Stale,
}

/// The contract written as maps.
#[derive(Default)]
struct Model {
    /// Committed ids: live or expired (expired ones stay until purged), with the
    /// sequence number of their commit (purge takes the oldest expiry first).
    seen: HashMap<Key, (bool, u64)>,
    watermarks: HashMap<Key, i64>,
    ids_in_flight: HashSet<Key>,
    entities_in_flight: HashSet<Key>,
}

impl Model {
    fn reserve(&self, id: Option<Key>, order: Option<(Key, i64)>) -> Expect {
        if id.is_some_and(|k| self.seen.get(&k).is_some_and(|(live, _)| *live)) {
            return Expect::Duplicate;
        }
        if id.is_some_and(|k| self.ids_in_flight.contains(&k)) {
            return Expect::InFlight;
        }
        if let Some((k, t)) = order
            && self.watermarks.get(&k).is_some_and(|w| *w > t)
        {
            return Expect::Stale;
        }
        if order.is_some_and(|(k, _)| self.entities_in_flight.contains(&k)) {
            return Expect::InFlight;
        }
        Expect::Reserved
    }
}

struct Slot {
    id: Option<Key>,
    order: Option<(Key, i64)>,
    live: bool,
    held: [Reservation; 2],
}

fn kind(o: &ReserveOutcome) -> Expect {
    match o {
        ReserveOutcome::Reserved(_) => Expect::Reserved,
        ReserveOutcome::Duplicate => Expect::Duplicate,
        ReserveOutcome::InFlight => Expect::InFlight,
        ReserveOutcome::Stale => Expect::Stale,
    }
}

fn rt() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
    })
}

fn dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| hookgate_fuzz::scratch_dir("store-model"))
}

fn open_embedded() -> Store {
    Store::open_embedded(dir()).expect("open the embedded store")
}

fuzz_target!(|ops: Vec<Op>| {
    let _ = std::fs::remove_file(dir().join("hookgate.redb"));
    // [memory, embedded], each with its own model.
    let mut stores = [Store::memory(), open_embedded()];
    let mut models = [Model::default(), Model::default()];
    let mut slots: Vec<Slot> = Vec::new();
    let mut commits = 0u64;
    rt().block_on(async {
        for op in ops.into_iter().take(64) {
            match op {
                Op::Reserve {
                    route,
                    id,
                    entity,
                    time,
                    live,
                } => {
                    let r = usize::from(route) % ROUTES.len();
                    let id = id.map(|i| (r, usize::from(i) % VALUES.len()));
                    let order =
                        entity.map(|e| ((r, usize::from(e) % VALUES.len()), i64::from(time)));
                    let req = ReserveRequest {
                        route: ROUTES[r],
                        event_id: id.map(|(_, i)| VALUES[i]),
                        order: order.map(|((_, e), t)| OrderPoint {
                            entity: VALUES[e],
                            time: EventTime(t),
                        }),
                        dedup_ttl: if live { LIVE } else { EXPIRED },
                        order_ttl: std::time::Duration::MAX,
                    };
                    let mut held = Vec::new();
                    for (b, store) in stores.iter().enumerate() {
                        let expected = models[b].reserve(id, order);
                        let got = store.reserve(req).await.expect("reserve");
                        assert_eq!(kind(&got), expected, "backend {b}: {req:?}");
                        if let ReserveOutcome::Reserved(res) = got {
                            assert_eq!(res.route(), req.route);
                            assert_eq!(res.event_id(), req.event_id);
                            assert_eq!(res.order(), req.order);
                            held.push(res);
                        }
                    }
                    if let Ok(held) = <[Reservation; 2]>::try_from(held) {
                        for m in &mut models {
                            m.ids_in_flight.extend(id);
                            m.entities_in_flight.extend(order.map(|(k, _)| k));
                        }
                        slots.push(Slot {
                            id,
                            order,
                            live,
                            held,
                        });
                        if slots.len() > MAX_SLOTS {
                            let s = slots.remove(0);
                            finish(&mut models, &s);
                        }
                    }
                }
                Op::Commit(i) | Op::Release(i) | Op::Drop(i) if !slots.is_empty() => {
                    let s = slots.remove(usize::from(i) % slots.len());
                    finish(&mut models, &s);
                    let Slot {
                        id,
                        order,
                        live,
                        held,
                    } = s;
                    for (b, res) in held.into_iter().enumerate() {
                        match op {
                            Op::Commit(_) => stores[b].commit(res).await.expect("commit"),
                            Op::Release(_) => stores[b].release(res).await.expect("release"),
                            _ => drop(res),
                        }
                    }
                    if let Op::Commit(_) = op {
                        commits += 1;
                        for m in &mut models {
                            if let Some(k) = id {
                                m.seen.insert(k, (live, commits));
                            }
                            if let Some((k, t)) = order {
                                let w = m.watermarks.entry(k).or_insert(t);
                                *w = (*w).max(t);
                            }
                        }
                    }
                }
                Op::Commit(_) | Op::Release(_) | Op::Drop(_) => {}
                Op::Purge(max) => {
                    let max = usize::from(max % 8);
                    for (b, store) in stores.iter().enumerate() {
                        let mut expired: Vec<(u64, Key)> = models[b]
                            .seen
                            .iter()
                            .filter(|(_, (live, _))| !live)
                            .map(|(k, (_, seq))| (*seq, *k))
                            .collect();
                        expired.sort_unstable();
                        let first = store.purge_expired(max).await.expect("purge");
                        assert_eq!(first, max.min(expired.len()), "backend {b}: purge {max}");
                        let rest = store.purge_expired(usize::MAX).await.expect("purge");
                        assert_eq!(first + rest, expired.len(), "backend {b}: purge all");
                        for (_, k) in expired {
                            models[b].seen.remove(&k);
                        }
                    }
                }
                Op::Restart => {
                    // The process dies: its reservations with it.
                    for s in slots.drain(..) {
                        drop(s.held);
                    }
                    for m in &mut models {
                        m.ids_in_flight.clear();
                        m.entities_in_flight.clear();
                    }
                    stores[0] = Store::memory();
                    models[0] = Model::default();
                    // The embedded file must be closed before it is opened again.
                    stores[1] = Store::memory();
                    stores[1] = open_embedded();
                }
                Op::BadRoute => {
                    let req = ReserveRequest {
                        route: "a\u{0}b",
                        event_id: Some("e1"),
                        order: None,
                        dedup_ttl: LIVE,
                        order_ttl: std::time::Duration::MAX,
                    };
                    for store in &stores {
                        assert!(matches!(
                            store.reserve(req).await.map_err(|e| e.kind()),
                            Err(StoreErrorKind::InvalidRoute)
                        ));
                    }
                }
            }
        }
        drop(slots);
    });
});

/// The slot's keys leave the in-flight sets (commit, release and drop alike).
fn finish(models: &mut [Model; 2], s: &Slot) {
    for m in models {
        if let Some(k) = s.id {
            m.ids_in_flight.remove(&k);
        }
        if let Some((k, _)) = s.order {
            m.entities_in_flight.remove(&k);
        }
    }
}
