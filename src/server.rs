//! The HTTP server: accept loop, per-connection limits, the router, graceful shutdown.
//!
//! The accept loop is ours (not `axum::serve`) because the edge needs a header read
//! timeout against slow-header senders, which `axum::serve` does not expose; hyper's
//! HTTP/1 builder does. Shutdown stops accepting at once and then waits for in-flight
//! requests, up to [`DRAIN_TIMEOUT`].

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::pipeline::{self, Gateway};

/// How long shutdown waits for in-flight requests before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway currently serving; swapped whole on a config reload, so a request always
/// sees one consistent configuration.
#[derive(Debug, Clone)]
pub struct Shared(Arc<RwLock<Arc<Gateway>>>);

impl Shared {
    /// Wraps a gateway.
    pub fn new(gw: Gateway) -> Self {
        Shared(Arc::new(RwLock::new(Arc::new(gw))))
    }

    /// The current gateway.
    pub fn current(&self) -> Arc<Gateway> {
        match self.0.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the gateway; requests already running keep the old one.
    pub fn replace(&self, gw: Gateway) {
        let new = Arc::new(gw);
        match self.0.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// The router: health endpoints, then every other path goes to the webhook pipeline.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .fallback(webhook)
        .with_state(shared)
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

async fn readyz(State(_shared): State<Shared>) -> Response {
    // The store arrives with the dedup stage; until then a loaded config is readiness.
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        r#"{"status":"ready"}"#,
    )
        .into_response()
}

async fn webhook(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    pipeline::handle(shared.current(), peer, req).await
}

/// Serves `shared` on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, shared: Shared, shutdown: impl Future<Output = ()>) {
    let read_timeout = shared.current().settings.server.read_timeout;
    let app = router(shared);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout);
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let app = app.clone();
        let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
            let mut req = req.map(Body::new);
            req.extensions_mut().insert(ConnectInfo(peer));
            app.clone().oneshot(req)
        });
        let conn = http.serve_connection(TokioIo::new(stream), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    tracing::info!("Shutting down: draining in-flight requests.");
    if tokio::time::timeout(DRAIN_TIMEOUT, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("Drain timeout passed with requests still in flight.");
    }
}
