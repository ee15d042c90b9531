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
use axum::routing::{any, get};
use http::{Method, Request, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::config::{self, ConfigSource};
use crate::error::GatewayError;
use crate::pipeline::{self, Gateway};
use crate::protocol::{self, Rescue};
use crate::supervisor::Supervisor;
use crate::telemetry::{Format, Metrics};

/// How long shutdown waits for in-flight requests before giving up on them.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// What the server shares between requests: the gateway currently serving, swapped
/// whole on a config reload (a request always sees one consistent configuration), the
/// metrics, which outlive reloads, and the [`Supervisor`] owning the background tasks
/// (deliveries outliving their request, maintenance loops), drained on shutdown.
#[derive(Debug, Clone)]
pub struct Shared {
    gateway: Arc<RwLock<Arc<Gateway>>>,
    metrics: Arc<Metrics>,
    supervisor: Supervisor,
}

impl Shared {
    /// Wraps a gateway and the metrics it reports to.
    pub fn new(gw: Gateway, metrics: Arc<Metrics>) -> Self {
        Shared {
            gateway: Arc::new(RwLock::new(Arc::new(gw))),
            metrics,
            supervisor: Supervisor::new(),
        }
    }

    /// The owner of the background tasks.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The metrics registry.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The current gateway.
    pub fn current(&self) -> Arc<Gateway> {
        match self.gateway.read() {
            Ok(g) => Arc::clone(&g),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Replaces the gateway; requests already running keep the old one.
    pub fn replace(&self, gw: Gateway) {
        let new = Arc::new(gw);
        match self.gateway.write() {
            Ok(mut g) => *g = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }
}

/// The router: health endpoints, then every other path goes to the webhook pipeline.
/// Every answer carries `X-Hookgate-Verdict`: other methods on the health endpoints get
/// 405 `method_not_allowed`.
pub fn router(shared: Shared) -> Router {
    Router::new()
        .route("/healthz", get(healthz).fallback(health_method_not_allowed))
        .route("/readyz", get(readyz).fallback(health_method_not_allowed))
        .route("/metrics", any(metrics))
        .fallback(webhook)
        .with_state(shared)
}

/// Answers a request off the wire that breaks RFC 9112 (see [`protocol::check_host`])
/// with 400 `bad_request`, before the router sees it. Its body is refused like any
/// other header-only refusal's: a small one swallowed, none invited.
async fn refuse_malformed(req: Request<Body>, e: protocol::ProtocolError) -> Response {
    let (parts, body) = req.into_parts();
    pipeline::body::refuse_unread(&parts.headers, body).await;
    GatewayError::Protocol(e)
        .into_answer(None, None)
        .into_response()
}

/// The methods the health endpoints and `/metrics` answer.
const HEALTH_METHODS: [Method; 2] = [Method::GET, Method::HEAD];

async fn health_method_not_allowed(method: Method) -> Response {
    GatewayError::MethodNotAllowed {
        method,
        allow: HEALTH_METHODS.to_vec(),
    }
    .into_answer(None, None)
    .into_response()
}

async fn healthz() -> Response {
    (
        StatusCode::OK,
        [("content-type", "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// How long `/readyz` waits for the store.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

async fn readyz(State(shared): State<Shared>) -> Response {
    let gw = shared.current();
    let store = gw.store();
    let ping = tokio::time::timeout(READY_TIMEOUT, store.ping()).await;
    let (status, body) = match ping {
        Ok(Ok(())) => (
            StatusCode::OK,
            serde_json::json!({"status": "ready", "store": store.backend_name()}),
        ),
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "Readiness check: store unreachable.");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"status": "store unreachable"}),
            )
        }
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"status": "store timed out"}),
        ),
    };
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

async fn metrics(
    State(shared): State<Shared>,
    connect: ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    // Disabled, the path is like any other: a route may even claim it.
    if !shared.current().settings.server.metrics {
        return webhook(State(shared), connect, req).await;
    }
    if !HEALTH_METHODS.contains(req.method()) {
        return health_method_not_allowed(req.method().clone()).await;
    }
    let format = Format::negotiate(req.headers().get(http::header::ACCEPT));
    (
        StatusCode::OK,
        [
            (http::header::CONTENT_TYPE, format.content_type()),
            (http::header::VARY, "accept"),
        ],
        shared.metrics.render_as(format),
    )
        .into_response()
}

async fn webhook(
    State(shared): State<Shared>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    req: Request<Body>,
) -> Response {
    pipeline::handle(shared.current(), shared.supervisor.deliveries(), peer, req).await
}

/// Serves `shared` on `listener` until `shutdown` completes, then drains.
pub async fn serve(listener: TcpListener, shared: Shared, shutdown: impl Future<Output = ()>) {
    let read_timeout = shared.current().settings.server.read_timeout;
    let supervisor = shared.supervisor.clone();
    start_maintenance(&shared);
    let app = router(shared);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a sender that shuts down its write side after the request (some
    // scripts and proxies do) is still waiting for the answer; without it hyper reads
    // the EOF as a hang-up and drops the request.
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .half_close(true);
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
            let app = app.clone();
            async move {
                if let Err(e) = protocol::check_host(req.version(), req.headers()) {
                    return Ok(refuse_malformed(req, e).await);
                }
                app.oneshot(req).await
            }
        });
        let conn = http.serve_connection(TokioIo::new(Rescue::new(stream)), service);
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, %peer, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    // The maintenance loops finish the pass they are in and drop their store handles,
    // so the store file is closed when `serve` returns.
    supervisor.stop_maintenance().await;
    tracing::info!("Shutting down: draining in-flight requests.");
    // Deliveries whose sender hung up have no connection left to wait for: drain them
    // too, under the same deadline.
    let drained = async {
        graceful.shutdown().await;
        supervisor.drain_deliveries().await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("Drain timeout passed with requests still in flight.");
    }
}

/// Starts the maintenance loops on the supervisor. Each pass reads the gateway current
/// at that moment, so the loops follow reloads.
fn start_maintenance(shared: &Shared) {
    let evicting = shared.clone();
    shared.supervisor.every(EVICT_EVERY, move || {
        let shared = evicting.clone();
        async move { evict_idle_rate_buckets(&shared) }
    });
    let purging = shared.clone();
    shared.supervisor.every(PURGE_EVERY, move || {
        let shared = purging.clone();
        async move { purge_expired_keys(&shared).await }
    });
}

/// How often idle per-address rate-limit buckets are dropped.
const EVICT_EVERY: Duration = Duration::from_secs(10);

fn evict_idle_rate_buckets(shared: &Shared) {
    for route in shared.current().routes() {
        if let Some(limit) = &route.rate_limit {
            limit.evict_idle();
        }
    }
}

/// How often expired dedup keys are purged, how many at most per pass, and the pause
/// between full passes. Each pass is one write transaction on the embedded store's
/// writer thread, where group commits wait behind it: small passes with a pause keep the
/// added commit latency to a few milliseconds while still reclaiming tens of thousands
/// of keys a second.
const PURGE_EVERY: Duration = Duration::from_secs(30);
const PURGE_BATCH: usize = 1_000;
const PURGE_PAUSE: Duration = Duration::from_millis(10);

/// Reclaims the space of expired dedup keys in bounded batches, stopping between batches
/// once shutdown begins. Expiry is checked on read anyway, so this only keeps the store
/// from growing.
async fn purge_expired_keys(shared: &Shared) {
    let gw = shared.current();
    let stopping = shared.supervisor.stopping();
    while !stopping.is_cancelled() {
        match gw.store().purge_expired(PURGE_BATCH).await {
            Ok(n) if n == PURGE_BATCH => tokio::time::sleep(PURGE_PAUSE).await,
            Ok(_) => break,
            Err(e) => {
                tracing::warn!(error = %e, "Purging expired dedup keys failed.");
                break;
            }
        }
    }
}

/// Reloads the configuration from `source` on every SIGHUP.
///
/// A new config that fails to load or compile is refused with an error log and the
/// running one stays. Requests already in flight finish on the configuration they
/// started with. A route whose `rate_limit` did not change keeps its buckets. `server.listen` and the header read timeout are bound at start-up; a
/// change to them is logged and applies only after a restart.
#[cfg(unix)]
pub fn reload_on_sighup(
    shared: Shared,
    source: ConfigSource,
) -> std::io::Result<tokio::task::JoinHandle<()>> {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    Ok(tokio::spawn(async move {
        while hup.recv().await.is_some() {
            reload(&shared, &source);
        }
    }))
}

/// Loads `source` and swaps it in, or logs why not.
pub fn reload(shared: &Shared, source: &ConfigSource) {
    let settings = match config::load(source) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "Configuration reload refused; the running configuration stays.");
            return;
        }
    };
    let old = shared.current();
    if settings.server.listen != old.settings.server.listen {
        tracing::warn!(
            old = %old.settings.server.listen,
            new = %settings.server.listen,
            "The listen address changes only on restart."
        );
    }
    if settings.store.backend != old.settings.store.backend
        || settings.store.path != old.settings.store.path
    {
        tracing::warn!(
            "The store backend and path change only on restart; the running store stays."
        );
    }
    let routes = settings.routes.len();
    match Gateway::reloaded(
        settings,
        Arc::clone(&shared.metrics),
        old.store().clone(),
        &old,
    ) {
        Ok(gw) => {
            shared.replace(gw);
            tracing::info!(routes, "Configuration reloaded.");
        }
        Err(e) => {
            tracing::error!(error = %e, "Configuration reload refused; the running configuration stays.");
        }
    }
}
