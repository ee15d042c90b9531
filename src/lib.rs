//! hookgate: an inbound webhook gateway.
//!
//! # Layout
//!
//! A request flows through the modules in this order (DESIGN.md §1):
//!
//! - [`server`]: accept loop, `max_connections` slots ([`server::connections`]), PROXY
//!   header ([`server::proxy_protocol`]), TLS with reloadable certificates
//!   ([`server::tls`], [`server::watch`]), the router, SIGHUP reload, graceful shutdown;
//!   [`server::conn_info`] is what the pipeline learns about the connection. [`protocol`]:
//!   requests that are not acceptable HTTP/1.1, hyper's own answers included.
//! - [`pipeline`]: one request in typed phases, [`pipeline::admit`] (headers only: route,
//!   method, Via loop, [`pipeline::allowlist`], [`pipeline::ratelimit`],
//!   [`pipeline::auth`] and [`pipeline::jwt`], encoding, [`pipeline::handshake`]s) →
//!   [`pipeline::verify`] (bounded [`pipeline::body`] read, [`pipeline::signature`] over
//!   the raw bytes) → [`pipeline::events`] (depth-bounded [`pipeline::json`], a split
//!   [`pipeline::batch`]) → [`pipeline::decide`] ([`schema`], [`pipeline::extract`]ed
//!   keys, the store's reservation) → [`pipeline::dispatch`] (sync delivery then commit
//!   or release, or the async accept) → [`pipeline::respond`] (custom answers).
//!   [`pipeline::route`] builds the runtime routes (spec + rate-limit buckets, carried
//!   over a reload when unchanged).
//! - [`delivery`]: `forward` to the upstream or a `file` sink,
//!   typed [`delivery::DeliveryError`]s; for async routes the [`delivery::outbox`] record
//!   and its writer/reader handles, the pure [`delivery::retry`] decision and the
//!   [`delivery::worker`]s.
//! - [`store`]: the dedup/order contract and its backends (memory, embedded, redis), the
//!   local backends' in-flight ledger, the outbox tables ([`store::outbox`]);
//!   backend-neutral [`store::StoreError`]s (a [`store::StoreErrorKind`] plus the source).
//! - [`supervisor`]: owns the background tasks (deliveries outliving their request,
//!   purge, bucket eviction, the delivery workers, the admin listener), survives reloads
//!   and drains them on shutdown.
//! - [`error`] and [`verdict`]: every outcome mapped to its HTTP answer in one place,
//!   variant by variant (no catch-all).
//! - [`config`]: the TOML file, parsed (private `raw`, so nothing outside `config` can
//!   read it: the compiler checks that) then compiled into [`config::Settings`] and
//!   [`config::spec`] data, with presets applied and secrets resolved.
//! - [`providers`]: bundled sender presets and signature schemes, as data; [`schema`]:
//!   JSON Schema checks; [`secret`]: constant-time secrets; [`telemetry`]: metrics and
//!   the log writer.
//! - Beside the request path: [`admin`] (outbox status and dead letters, over the admin
//!   listener or a stopped gateway's store), [`validate`] (`validate`, `schemas`),
//!   [`presets_cmd`] (`presets`, `sign`); `main.rs` is the command line.
//!
//! # No panic on outside input
//!
//! Outside the tests, the crate denies `unwrap`, `expect`, `panic!`, indexing and slicing
//! that can panic, and string slicing at byte offsets: every place that handles a
//! request's bytes, a stored record or a config file uses `get`, `split_once`,
//! `strip_prefix` or an explicit error instead. The fuzz targets check the same promise
//! from outside.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing,
        clippy::string_slice
    )
)]

pub mod admin;
pub mod config;
pub mod delivery;
pub mod error;
pub mod pipeline;
pub mod presets_cmd;
pub mod protocol;
pub mod providers;
pub mod schema;
pub mod secret;
pub mod server;
pub mod store;
pub mod supervisor;
pub mod telemetry;
pub mod validate;
pub mod verdict;

use std::future::Future;

use tokio::net::TcpListener;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A delivery target could not be prepared (file sink not writable, ...).
    #[error(transparent)]
    Delivery(#[from] delivery::DeliveryError),
    /// The store could not be opened.
    #[error("cannot open the store: {0}")]
    Store(#[from] store::StoreError),
    /// The TLS certificates could not be loaded.
    #[error("TLS: {0}")]
    Tls(#[from] server::tls::TlsError),
    /// The SIGHUP handler could not be installed.
    #[error("cannot install the SIGHUP handler: {0}")]
    Signal(std::io::Error),
}

/// Like [`run`] on a gateway already [`build`]t and certificates already loaded with
/// [`tls_edge`] (so that start-up failures come before the listener is announced), and
/// reloads the configuration from `source` on SIGHUP and when an `allow_ips` file
/// changes.
pub async fn run_reloadable(
    listener: TcpListener,
    source: config::ConfigSource,
    shared: server::Shared,
    tls: Option<server::tls::TlsEdge>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    #[cfg(unix)]
    let reloader =
        server::reload_on_sighup(shared.clone(), source.clone()).map_err(StartError::Signal)?;
    let allow_watch = server::reload_on_allowlist_change(shared.clone(), source);
    server::serve(listener, shared, tls, shutdown).await;
    allow_watch.abort();
    let _ = allow_watch.await;
    #[cfg(unix)]
    {
        reloader.abort();
        let _ = reloader.await;
    }
    Ok(())
}

/// Runs the gateway on an already-bound listener until `shutdown` completes, then
/// drains in-flight requests. Tests bind port 0 and pass the listener in.
pub async fn run(
    listener: TcpListener,
    settings: config::Settings,
    shutdown: impl Future<Output = ()>,
) -> Result<(), StartError> {
    let shared = build(settings)?;
    let tls = tls_edge(&shared)?;
    server::serve(listener, shared, tls, shutdown).await;
    Ok(())
}

/// Loads the TLS certificates when `[server] tls` is set.
pub fn tls_edge(shared: &server::Shared) -> Result<Option<server::tls::TlsEdge>, StartError> {
    Ok(match &shared.current().settings.server.tls {
        Some(t) => Some(server::tls::TlsEdge::new(t)?),
        None => None,
    })
}

/// Opens the store and builds the gateway with a fresh metrics registry: everything
/// [`server::serve`] needs. Benches and fuzz targets drive [`server::router`] with it.
pub fn build(settings: config::Settings) -> Result<server::Shared, StartError> {
    let metrics = std::sync::Arc::new(telemetry::Metrics::new());
    let store = open_store(&settings.store)?;
    let gateway = pipeline::Gateway::new(settings, std::sync::Arc::clone(&metrics), store)?;
    Ok(server::Shared::new(gateway, metrics))
}

/// Like [`build`] on a store the caller opened (tests open one whose file they can make
/// fail: [`store::Store::open_embedded_with_fault`]). `settings.store` is not opened.
pub fn build_with_store(
    settings: config::Settings,
    store: store::Store,
) -> Result<server::Shared, StartError> {
    let metrics = std::sync::Arc::new(telemetry::Metrics::new());
    let gateway = pipeline::Gateway::new(settings, std::sync::Arc::clone(&metrics), store)?;
    Ok(server::Shared::new(gateway, metrics))
}

/// Opens the configured store backend.
pub fn open_store(settings: &config::StoreSettings) -> Result<store::Store, store::StoreError> {
    match settings.backend {
        config::spec::StoreBackendName::Memory => Ok(store::Store::memory()),
        config::spec::StoreBackendName::Embedded => {
            store::Store::open_embedded_with(&settings.path, settings.sync_commits)
        }
        config::spec::StoreBackendName::Redis => match redis_options(settings) {
            Some(options) => store::Store::open_redis(&options),
            // compile() fills it for this backend; never fall back to another store.
            None => Err(store::StoreError::unsupported("redis (no [store] url)")),
        },
    }
}

/// The Redis store's options from `[store]`, when `backend = "redis"`.
pub fn redis_options(settings: &config::StoreSettings) -> Option<store::RedisOptions> {
    let r = settings.redis.as_ref()?;
    Some(store::RedisOptions {
        url: r.url.clone(),
        pool_size: r.pool_size,
        connect_timeout: r.connect_timeout,
        command_timeout: r.command_timeout,
        wait_replicas: r.wait_replicas,
        key_prefix: r.key_prefix.clone(),
        lease: r.lease,
        tls_ca: r.tls_ca.clone(),
    })
}
