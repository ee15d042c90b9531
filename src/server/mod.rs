//! The HTTP server: accept loop, per-connection limits, TLS, the router, graceful shutdown.
//!
//! The accept loop is ours (not `axum::serve`) because the edge needs a header read
//! timeout against slow-header senders, which `axum::serve` does not expose; hyper's
//! HTTP/1 builder does. Shutdown stops accepting at once and then waits for in-flight
//! requests, up to [`DRAIN_TIMEOUT`].
//!
//! On TLS ([`tls`]) the handshake runs inside the connection's own task, bounded by the
//! header read timeout, so a client that never finishes it holds one task and no accept
//! slot; the connection is then served by hyper-util's `auto` builder (HTTP/1.1 or h2, as
//! ALPN chose). Plain connections speak HTTP/1.1 only: h2c prior knowledge is off.
//!
//! Every connection is registered in [`connections`], which closes it gracefully when it
//! has been idle for `idle_timeout`, has served `max_requests_per_connection`, is the one
//! idle the longest when a new connection arrives at `max_connections`, or at shutdown.

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
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::either::Either;
use tower::ServiceExt as _;

pub mod conn_info;
pub mod connections;
pub mod proxy_protocol;
pub mod tls;
pub mod watch;

pub use conn_info::{ConnectionInfo, TlsInfo};

use crate::config::{self, ConfigSource};
use crate::error::GatewayError;
use crate::pipeline::{self, Gateway};
use crate::protocol::{self, Rescue};
use crate::supervisor::Supervisor;
use crate::telemetry::{CloseReason, Format, Metrics, ShedReason};
use connections::Connections;

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
    /// Behind an `Arc`: axum clones the state for every request, and a supervisor's
    /// clone takes the locks of its cancellation tokens (measured: ~17 % of a `no_route`
    /// request in `cargo bench --bench pipeline` before this).
    supervisor: Arc<Supervisor>,
    /// Bumped by every [`Shared::replace`], for watchers of what the configuration names.
    generation: Arc<tokio::sync::watch::Sender<u64>>,
}

impl Shared {
    /// Wraps a gateway and the metrics it reports to.
    pub fn new(gw: Gateway, metrics: Arc<Metrics>) -> Self {
        Shared {
            gateway: Arc::new(RwLock::new(Arc::new(gw))),
            metrics,
            supervisor: Arc::new(Supervisor::new()),
            generation: Arc::new(tokio::sync::watch::Sender::new(0)),
        }
    }

    /// The owner of the background tasks.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// The async delivery workers (owned by the [`Supervisor`]).
    pub fn workers(&self) -> &crate::delivery::worker::Workers {
        self.supervisor.workers()
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
        self.generation.send_modify(|g| *g = g.wrapping_add(1));
    }

    /// Changes whenever the gateway is replaced.
    pub fn replaced(&self) -> tokio::sync::watch::Receiver<u64> {
        self.generation.subscribe()
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
    let writes = shared.current().store().write_stats();
    shared.metrics.store_writes(writes.commits, writes.changes);
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

/// One request's answer: 503 `overloaded` above `max_in_flight` (health checks are
/// never shed: an overloaded gateway is still alive), 400 for what breaks RFC 9112,
/// otherwise the router's.
async fn answer(
    req: Request<Body>,
    app: &Router,
    in_flight: &Arc<tokio::sync::Semaphore>,
    metrics: &Metrics,
) -> Result<Response, std::convert::Infallible> {
    let health = matches!(req.uri().path(), "/healthz" | "/readyz");
    let _request_slot = match Arc::clone(in_flight).try_acquire_owned() {
        Ok(permit) => Some(permit),
        Err(_) if health => None,
        Err(_) => {
            metrics.request(None, crate::verdict::Verdict::Overloaded, 0.0);
            return Ok(GatewayError::Overloaded
                .into_answer(None, None)
                .into_response());
        }
    };
    if let Err(e) = protocol::check_host(req.version(), req.headers())
        .and_then(|()| protocol::check_transfer_coding(req.headers()))
    {
        return Ok(refuse_malformed(req, e).await);
    }
    app.clone().oneshot(req).await
}

/// Serves `shared` on `listener` (over TLS when `tls` is given) until `shutdown`
/// completes, then drains.
pub async fn serve(
    listener: TcpListener,
    shared: Shared,
    tls: Option<tls::TlsEdge>,
    shutdown: impl Future<Output = ()>,
) {
    let read_timeout = shared.current().settings.server.read_timeout;
    let proxy_protocol = shared.current().settings.server.proxy_protocol;
    // Load shedding: above `max_connections` a new connection is held until the
    // connection idle the longest closes (or any closes), the next ones wait in the
    // kernel's backlog; a request slot is tried before the router, so above
    // `max_in_flight` the answer is 503 `overloaded` with the body unread.
    let stopping = tokio_util::sync::CancellationToken::new();
    let connections = Connections::new(
        shared.current().settings.server.max_connections,
        stopping.clone(),
    );
    let tracker = tokio_util::task::TaskTracker::new();
    let in_flight = Arc::new(tokio::sync::Semaphore::new(
        shared.current().settings.server.max_in_flight,
    ));
    let tls_reloader = tls.as_ref().map(tls::TlsEdge::spawn_reloader);
    let supervisor = shared.supervisor.clone();
    start_maintenance(&shared);
    // Async delivery workers: one per async route, reconciled on every reload.
    {
        let gw = shared.current();
        shared.supervisor.workers().start(
            gw.routes().map(|r| Arc::clone(r.spec())),
            crate::delivery::worker::Resources {
                store: gw.store(),
                deliverer: gw.deliverer(),
                metrics: &shared.metrics,
            },
        );
    }
    start_admin(&shared).await;
    let app = router(shared.clone());
    let mut http = hyper::server::conn::http1::Builder::new();
    // half_close: a sender that shuts down its write side after the request (some
    // scripts and proxies do) is still waiting for the answer; without it hyper reads
    // the EOF as a hang-up and drops the request.
    http.timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .half_close(true);
    let mut auto = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(read_timeout)
        .half_close(true);
    auto.http2().timer(TokioTimer::new());
    tokio::pin!(shutdown);
    loop {
        let (mut stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(error = %e, "Accept failed.");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let slot = tokio::select! {
            biased;
            () = &mut shutdown => break,
            slot = connections.slot(&shared.metrics) => match slot {
                Some(s) => s,
                None => break,
            },
        };
        let app = app.clone();
        let tls = tls.clone();
        let http = http.clone();
        let auto = auto.clone();
        let gateway = shared.current();
        let idle_timeout = gateway.settings.server.idle_timeout;
        let max_requests = gateway.settings.server.max_requests_per_connection;
        let in_flight = Arc::clone(&in_flight);
        let metrics = Arc::clone(shared.metrics());
        let registered = Arc::new(connections.open());
        tracker.spawn(async move {
            let _slot = slot;
            let _open = metrics.connection_opened();
            let mut client = peer;
            let mut proxy_source = None;
            if proxy_protocol {
                let ip = peer.ip().to_canonical();
                let trusted = gateway
                    .settings
                    .server
                    .trusted_proxies
                    .iter()
                    .any(|n| n.contains(&ip));
                drop(gateway);
                if trusted {
                    match proxy_protocol::read_trusted(&mut stream, read_timeout).await {
                        Ok(source) => {
                            proxy_source = source;
                            client = source.unwrap_or(peer);
                        }
                        Err(e) => {
                            metrics.connection_closed(CloseReason::proxy_header);
                            tracing::debug!(error = %e, %peer, "Connection closed: PROXY header.");
                            return;
                        }
                    }
                } else if proxy_protocol::untrusted_sends_header(&stream, read_timeout).await {
                    metrics.connection_closed(CloseReason::proxy_untrusted);
                    tracing::debug!(%peer, "Connection closed: {}", proxy_protocol::ProxyError::Untrusted);
                    return;
                }
            }
            let (io, info) = match tls {
                None => (
                    Either::Left(stream),
                    ConnectionInfo {
                        peer,
                        proxy_source,
                        tls: None,
                    },
                ),
                Some(edge) => {
                    let stream =
                        match tokio::time::timeout(read_timeout, edge.acceptor().accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => s,
                            Ok(Err(e)) => {
                                metrics.connection_closed(CloseReason::tls_handshake);
                                tracing::debug!(error = %e, %peer, "TLS handshake failed.");
                                return;
                            }
                            Err(_) => {
                                metrics.connection_closed(CloseReason::tls_timeout);
                                tracing::debug!(%peer, "TLS handshake timed out.");
                                return;
                            }
                        };
                    let client_names = stream
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|c| c.first())
                        .map(tls::client_names);
                    (
                        Either::Right(stream),
                        ConnectionInfo {
                            peer,
                            proxy_source,
                            tls: Some(TlsInfo { client_names }),
                        },
                    )
                }
            };
            let on_tls = info.tls.is_some();
            let conn = Arc::clone(registered.conn());
            let service_metrics = Arc::clone(&metrics);
            let service = hyper::service::service_fn(move |req: Request<hyper::body::Incoming>| {
                let mut req = req.map(Body::new);
                req.extensions_mut().insert(ConnectInfo(client));
                req.extensions_mut().insert(info.clone());
                let app = app.clone();
                let in_flight = Arc::clone(&in_flight);
                let metrics = Arc::clone(&service_metrics);
                let (request_guard, rank) = registered.request();
                let conn = Arc::clone(registered.conn());
                async move {
                    let _request_guard = request_guard;
                    let h1 = req.version() <= http::Version::HTTP_11;
                    let mut answer = answer(req, &app, &in_flight, &metrics).await?;
                    // The connection's last request: h1 says so in the answer and
                    // closes after it; h2 sends GOAWAY and finishes the streams open.
                    if let Some(limit) = max_requests
                        && rank >= limit
                    {
                        if rank == limit {
                            metrics.connection_shed(ShedReason::max_requests);
                        }
                        if h1 {
                            answer.headers_mut().insert(
                                http::header::CONNECTION,
                                http::HeaderValue::from_static("close"),
                            );
                        } else {
                            conn.close();
                        }
                    }
                    Ok::<_, std::convert::Infallible>(answer)
                }
            });
            let io = TokioIo::new(Rescue::new(io));
            let ended = if on_tls {
                conn.drive(
                    auto.serve_connection(io, service).into_owned(),
                    idle_timeout,
                    &metrics,
                )
                .await
            } else {
                conn.drive(http.serve_connection(io, service), idle_timeout, &metrics)
                    .await
            };
            if let Err(e) = ended {
                if e
                    .downcast_ref::<hyper::Error>()
                    .is_some_and(hyper::Error::is_timeout)
                {
                    metrics.connection_closed(CloseReason::header_timeout);
                }
                tracing::debug!(error = %e, %peer, "Connection ended with an error.");
            }
        });
    }
    drop(listener);
    if let Some(r) = tls_reloader {
        r.abort();
    }
    // The maintenance loops finish the pass they are in and drop their store handles,
    // so the store file is closed when `serve` returns.
    supervisor.stop_maintenance().await;
    tracing::info!("Shutting down: draining in-flight requests.");
    // Deliveries whose sender hung up have no connection left to wait for: drain them
    // too, under the same deadline.
    stopping.cancel();
    tracker.close();
    let drained = async {
        tracker.wait().await;
        supervisor.drain_deliveries().await;
    };
    if tokio::time::timeout(DRAIN_TIMEOUT, drained).await.is_err() {
        tracing::warn!("Drain timeout passed with requests still in flight.");
    }
    // The admin listener answers what it is asked, then stops; workers finish their
    // attempts in flight and settle them, then let the store go.
    supervisor.stop_services().await;
    supervisor.stop_workers(DRAIN_TIMEOUT).await;
}

/// Binds and starts the admin listener on the supervisor, if configured; it stops when
/// the supervisor stops its services. A bind failure is logged, and the gateway serves
/// without it.
async fn start_admin(shared: &Shared) {
    let gw = shared.current();
    let Some(settings) = gw.settings.admin.clone() else {
        return;
    };
    let listener = match TcpListener::bind(settings.listen).await {
        Ok(l) => l,
        Err(e) => {
            tracing::error!(listen = %settings.listen, error = %e, "Cannot bind the admin listener; serving without it.");
            return;
        }
    };
    tracing::info!(listen = %settings.listen, "Admin listener up.");
    let ops = crate::admin::Ops::new(gw.store(), crate::admin::async_routes(&gw.settings));
    shared.supervisor.spawn_service(|stop| {
        crate::admin::serve(listener, ops, settings.token, async move {
            stop.cancelled().await;
        })
    });
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

/// Reloads the configuration from `source` whenever an `allow_ips = "file:PATH"` file
/// changes (its bytes, not a mere touch), as SIGHUP would: a bad file refuses the
/// reload with an ERROR line and the running lists stay. The watched files follow the
/// configuration serving (a reload that names other files moves the watch). Runs until
/// the task is aborted.
pub fn reload_on_allowlist_change(
    shared: Shared,
    source: ConfigSource,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let (tx, mut rx) = tokio::sync::mpsc::channel::<()>(1);
        let mut replaced = shared.replaced();
        let mut files = shared.current().settings.allow_files();
        let mut watcher = watch::dirs(&files, tx.clone(), "allow_ips");
        let mut seen = watch::fingerprint(&files);
        loop {
            tokio::select! {
                Some(()) = rx.recv() => {
                    tokio::time::sleep(watch::SETTLE).await;
                    while rx.try_recv().is_ok() {}
                    let now = watch::fingerprint(&files);
                    if now != seen {
                        seen = now;
                        tracing::info!("An allow_ips file changed; reloading the configuration.");
                        reload(&shared, &source);
                    }
                }
                Ok(()) = replaced.changed() => {}
                else => break,
            }
            let current = shared.current().settings.allow_files();
            if current != files {
                drop(watcher);
                files = current;
                watcher = watch::dirs(&files, tx.clone(), "allow_ips");
                seen = watch::fingerprint(&files);
            }
        }
    })
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
    if settings.server.tls != old.settings.server.tls
        || settings.server.proxy_protocol != old.settings.server.proxy_protocol
        || settings.server.max_connections != old.settings.server.max_connections
        || settings.server.max_in_flight != old.settings.server.max_in_flight
    {
        tracing::warn!(
            "server.tls file paths, proxy_protocol, max_connections and max_in_flight change \
             only on restart (the certificate files themselves reload on SIGHUP)."
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
            shared.supervisor.workers().reconcile(
                gw.routes().map(|r| Arc::clone(r.spec())),
                crate::delivery::worker::Resources {
                    store: gw.store(),
                    deliverer: gw.deliverer(),
                    metrics: &shared.metrics,
                },
            );
            shared.replace(gw);
            tracing::info!(routes, "Configuration reloaded.");
        }
        Err(e) => {
            tracing::error!(error = %e, "Configuration reload refused; the running configuration stays.");
        }
    }
}
