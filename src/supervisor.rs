//! The background work of a running gateway, owned in one place: the maintenance loops
//! (expired-key purge, idle rate-bucket eviction) and the deliveries that outlive the
//! request that started them. Next: the outbox's delivery workers.
//!
//! It lives in [`crate::server::Shared`], not in a [`crate::pipeline::Gateway`], so it
//! survives config reloads: a reload swaps the gateway these tasks read, not the tasks.
//! On shutdown it drains instead of aborting: maintenance loops stop at their next
//! boundary (a purge finishes the batch it is writing), and deliveries run to their end,
//! so no store write and no upstream request is cut off half-way.

use std::future::Future;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Owns the background tasks. Cheap to clone: clones share the same tasks.
#[derive(Debug, Clone, Default)]
pub struct Supervisor {
    maintenance: TaskTracker,
    deliveries: TaskTracker,
    stop: CancellationToken,
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
}
