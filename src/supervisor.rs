//! The background work of a running gateway, owned in one place: the maintenance loops
//! (expired-key purge, idle rate-bucket eviction), the deliveries that outlive the
//! request that started them, the async routes' delivery [`Workers`], and the services
//! listening beside the public port (the admin listener).
//!
//! It lives in [`crate::server::Shared`], not in a [`crate::pipeline::Gateway`], so it
//! survives config reloads: a reload swaps the gateway these tasks read (and reconciles
//! the workers with the new routes), not the tasks.
//!
//! On shutdown it drains instead of aborting, in this order (see `server::serve`):
//! maintenance loops stop at their next boundary (a purge finishes the batch it is
//! writing); deliveries run to their end; the services stop gracefully (an admin request
//! in progress is answered); the workers launch no new attempt and settle those in
//! flight. So no store write and no upstream request is cut off half-way. Only a worker
//! attempt still running after the drain deadline is aborted (and retried after restart).

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::delivery::worker::Workers;

/// Owns the background tasks. Cheap to clone: clones share the same tasks.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    maintenance: TaskTracker,
    deliveries: TaskTracker,
    /// Listeners beside the public one (the admin listener).
    services: TaskTracker,
    workers: Workers,
    /// Cancelled when shutdown begins: maintenance loops stop.
    stop: CancellationToken,
    /// Cancelled once deliveries are drained: services shut down gracefully. Later than
    /// `stop` so that an operator can watch the outbox while requests drain.
    stop_services: CancellationToken,
}

impl Supervisor {
    /// A supervisor with no tasks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Where a request spawns its delivery, so that a sender hanging up cannot cancel it
    /// half-way and shutdown waits for it.
    pub fn deliveries(&self) -> &TaskTracker {
        &self.deliveries
    }

    /// Runs `every` periodically until shutdown. The pass in progress when shutdown comes
    /// is finished, not aborted; `pass` should return at a safe boundary.
    pub fn every<F, Fut>(&self, period: Duration, mut pass: F)
    where
        F: FnMut() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        let stop = self.stop.clone();
        self.maintenance.spawn(async move {
            let mut tick = tokio::time::interval(period);
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    _ = tick.tick() => {}
                }
                // Not raced against `stop`: a pass already running is let finish.
                pass().await;
            }
        });
    }

    /// A token that is cancelled when shutdown begins, for loops inside a pass that
    /// should stop early at a safe boundary.
    pub fn stopping(&self) -> CancellationToken {
        self.stop.clone()
    }

    /// Stops the maintenance loops and waits for them (they hold store handles: once
    /// this returns, the gateway's store can close).
    pub async fn stop_maintenance(&self) {
        self.stop.cancel();
        self.maintenance.close();
        self.maintenance.wait().await;
    }

    /// Waits for every delivery in flight; no new one is accepted after this is called.
    pub async fn drain_deliveries(&self) {
        self.deliveries.close();
        self.deliveries.wait().await;
    }

    /// The async routes' delivery workers (started by `server::serve`, reconciled on
    /// every reload).
    pub fn workers(&self) -> &Workers {
        &self.workers
    }

    /// Runs a service (a listener beside the public port) until shutdown: `serve` gets
    /// the token to shut down gracefully on, and its task is waited for by
    /// [`Supervisor::stop_services`].
    pub fn spawn_service<F>(&self, serve: impl FnOnce(CancellationToken) -> F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.services.spawn(serve(self.stop_services.clone()));
    }

    /// Tells the services to shut down and waits until they have (requests in progress
    /// are answered first).
    pub async fn stop_services(&self) {
        self.stop_services.cancel();
        self.services.close();
        self.services.wait().await;
    }

    /// Stops the workers: attempts in flight finish and settle within `deadline`, and
    /// only those still running after it are aborted.
    pub async fn stop_workers(&self, deadline: Duration) {
        self.workers.shutdown(deadline).await;
    }
}
