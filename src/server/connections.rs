//! The open connections: the `max_connections` slots, which connections are idle, and
//! closing one gracefully (idle too long, its request limit reached, or room needed for
//! a new connection at the limit).
//!
//! A connection is *idle* while it has no request in flight. At `max_connections` a new
//! connection is accepted and held while the keep-alive connection idle the longest
//! (one that has served a request and waits for the next; a connection that never sent
//! one is bounded by the header read timeout instead) is closed to make room; when
//! none is idle, the new one waits for a slot and the connections behind it wait in the
//! kernel's backlog.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::telemetry::{Metrics, ShedReason};

/// Every open connection, by accept order.
#[derive(Debug)]
pub struct Connections {
    slots: Arc<Semaphore>,
    open: Mutex<BTreeMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    /// Signalled when a connection becomes idle: a new connection waiting at the
    /// limit may now close it.
    became_idle: Notify,
    /// Parent of every connection's close token: cancelled at shutdown.
    stopping: CancellationToken,
}

/// One open connection's state, shared by its task and its requests.
#[derive(Debug)]
pub struct Conn {
    id: u64,
    /// Requests in flight.
    busy: AtomicUsize,
    /// Requests started.
    served: AtomicU64,
    /// When the last request ended (or the connection was accepted).
    idle_since: Mutex<Instant>,
    /// Cancelled to ask the connection to close gracefully.
    close: CancellationToken,
    /// Wakes the connection task when a request starts or ends.
    activity: Notify,
}

impl Connections {
    /// Room for `max` connections; `stopping` closes them all.
    pub fn new(max: usize, stopping: CancellationToken) -> Arc<Connections> {
        Arc::new(Connections {
            slots: Arc::new(Semaphore::new(max)),
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
            became_idle: Notify::new(),
            stopping,
        })
    }

    /// A slot for a connection just accepted. At the limit, closes the keep-alive
    /// connection idle the longest (counted as shed `max_connections`) and waits for
    /// its slot; with none idle, waits until one is or a slot frees.
    pub async fn slot(&self, metrics: &Metrics) -> Option<OwnedSemaphorePermit> {
        if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
            return Some(p);
        }
        let mut counted = false;
        loop {
            // Registered before looking, so that a connection going idle meanwhile
            // is not missed.
            let idle = self.became_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if let Some(victim) = self.longest_idle() {
                victim.close.cancel();
                metrics.connection_shed(ShedReason::max_connections);
                tracing::debug!("At max_connections: closing the connection idle the longest.");
                // Idle, it closes at once and its slot is ours.
                return Arc::clone(&self.slots).acquire_owned().await.ok();
            }
            if !counted {
                counted = true;
                metrics.connection_waited();
            }
            tokio::select! {
                p = Arc::clone(&self.slots).acquire_owned() => return p.ok(),
                () = &mut idle => {}
            }
        }
    }

    /// The keep-alive connection idle the longest that is not already closing.
    fn longest_idle(&self) -> Option<Arc<Conn>> {
        let open = match self.open.lock() {
            Ok(o) => o,
            Err(poisoned) => poisoned.into_inner(),
        };
        open.values()
            .filter(|c| {
                c.served.load(Ordering::Acquire) > 0
                    && c.busy.load(Ordering::Acquire) == 0
                    && !c.close.is_cancelled()
            })
            .min_by_key(|c| c.idle_since())
            .cloned()
    }

    /// Registers a connection; it leaves the registry when the returned guard drops.
    pub fn open(self: &Arc<Self>) -> Registered {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            id,
            busy: AtomicUsize::new(0),
            served: AtomicU64::new(0),
            idle_since: Mutex::new(Instant::now()),
            close: self.stopping.child_token(),
            activity: Notify::new(),
        });
        match self.open.lock() {
            Ok(mut o) => o.insert(id, Arc::clone(&conn)),
            Err(poisoned) => poisoned.into_inner().insert(id, Arc::clone(&conn)),
        };
        Registered {
            conn,
            all: Arc::clone(self),
        }
    }
}

/// A connection in the registry; dropping it removes the connection.
#[derive(Debug)]
pub struct Registered {
    conn: Arc<Conn>,
    all: Arc<Connections>,
}

impl Registered {
    /// The connection's shared state.
    pub fn conn(&self) -> &Arc<Conn> {
        &self.conn
    }

    /// Marks a request started; the returned guard marks it ended. The number is the
    /// request's rank on the connection, from 1.
    pub fn request(&self) -> (InFlight, u64) {
        let c = &self.conn;
        c.busy.fetch_add(1, Ordering::AcqRel);
        let n = c.served.fetch_add(1, Ordering::AcqRel) + 1;
        c.activity.notify_one();
        (
            InFlight {
                conn: Arc::clone(c),
                all: Arc::clone(&self.all),
            },
            n,
        )
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        match self.all.open.lock() {
            Ok(mut o) => o.remove(&self.conn.id),
            Err(poisoned) => poisoned.into_inner().remove(&self.conn.id),
        };
    }
}

/// One request in flight on a connection.
#[derive(Debug)]
pub struct InFlight {
    conn: Arc<Conn>,
    all: Arc<Connections>,
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let c = &self.conn;
        if c.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            c.set_idle_since(Instant::now());
            c.activity.notify_one();
            self.all.became_idle.notify_waiters();
        }
    }
}

impl Conn {
    /// Drives `conn` to its end, shutting it down gracefully (h1: after the answer in
    /// progress; h2: GOAWAY) once [`Conn::closing`] completes.
    pub async fn drive<C>(
        &self,
        conn: C,
        idle_timeout: Duration,
        metrics: &Metrics,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>>
    where
        C: hyper_util::server::graceful::GracefulConnection,
        C::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    {
        tokio::pin!(conn);
        let closing = self.closing(idle_timeout, metrics);
        tokio::pin!(closing);
        let mut asked = false;
        loop {
            tokio::select! {
                ended = conn.as_mut() => return ended.map_err(Into::into),
                () = &mut closing, if !asked => {
                    asked = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        }
    }

    fn idle_since(&self) -> Instant {
        match self.idle_since.lock() {
            Ok(t) => *t,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }

    fn set_idle_since(&self, at: Instant) {
        match self.idle_since.lock() {
            Ok(mut t) => *t = at,
            Err(poisoned) => *poisoned.into_inner() = at,
        }
    }

    /// Asks the connection to close gracefully.
    pub fn close(&self) {
        self.close.cancel();
    }

    /// Completes when the connection should close: asked to (shed at the limit, its
    /// last request answered, shutdown), or idle for `idle_timeout` (counted).
    pub async fn closing(&self, idle_timeout: Duration, metrics: &Metrics) {
        loop {
            let woken = self.activity.notified();
            let deadline = if self.busy.load(Ordering::Acquire) == 0 {
                Some(self.idle_since() + idle_timeout)
            } else {
                None
            };
            tokio::select! {
                () = self.close.cancelled() => return,
                () = woken => {}
                () = async {
                    match deadline {
                        Some(d) => tokio::time::sleep_until(d).await,
                        None => std::future::pending().await,
                    }
                } => {
                    if self.busy.load(Ordering::Acquire) == 0
                        && self.idle_since() + idle_timeout <= Instant::now()
                    {
                        metrics.connection_shed(ShedReason::idle_timeout);
                        self.close.cancel();
                        return;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn longest_idle_id(all: &Connections) -> Option<u64> {
        all.longest_idle().map(|c| c.id)
    }

    /// The connection idle the longest is chosen; never one that is busy, has not
    /// served a request yet, or is already closing.
    #[tokio::test]
    async fn the_connection_idle_the_longest_is_chosen() {
        let all = Connections::new(4, CancellationToken::new());
        let _fresh = all.open();
        let a = all.open();
        let b = all.open();
        assert_eq!(
            longest_idle_id(&all),
            None,
            "an unused connection was chosen"
        );
        drop(b.request().0);
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(a.request().0);
        assert_eq!(longest_idle_id(&all), Some(b.conn().id));
        let (busy, rank) = b.request();
        assert_eq!(rank, 2);
        assert_eq!(longest_idle_id(&all), Some(a.conn().id));
        tokio::time::sleep(Duration::from_millis(5)).await;
        drop(busy);
        a.conn().close();
        assert_eq!(longest_idle_id(&all), Some(b.conn().id));
        drop(b);
        assert_eq!(
            longest_idle_id(&all),
            None,
            "a closed connection stayed listed"
        );
    }

    /// `closing` completes after `idle_timeout` of idleness, counted, and not while a
    /// request is in flight.
    #[tokio::test]
    async fn closing_waits_for_idleness() {
        let metrics = Metrics::new();
        let all = Connections::new(1, CancellationToken::new());
        let c = all.open();
        let (busy, _) = c.request();
        let closing = c.conn().closing(Duration::from_millis(50), &metrics);
        tokio::pin!(closing);
        assert!(
            tokio::time::timeout(Duration::from_millis(200), closing.as_mut())
                .await
                .is_err(),
            "closed with a request in flight"
        );
        drop(busy);
        assert!(
            tokio::time::timeout(Duration::from_secs(2), closing)
                .await
                .is_ok(),
            "an idle connection never closed"
        );
        assert!(
            metrics
                .render()
                .contains("hookgate_connections_shed_total{reason=\"idle_timeout\"} 1")
        );
    }
}
