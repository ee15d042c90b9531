//! The request pipeline: one webhook request, phase by phase (DESIGN.md §1).
//!
//! [`handle`] reads top to bottom in the order that is the security model, and each
//! phase's type says what has been checked so far:
//!
//! 1. [`admit`]: route, method, loop, client address, allowlist, rate limit, header
//!    credentials, encoding. Headers only: a refused sender costs no body read.
//! 2. [`verify`]: the body, bounded in size and time, and its signature over the raw
//!    bytes, before anything parses them.
//! 3. [`events`]: the events the body carries (today always one).
//! 4. [`decide`]: schema, dedup/order keys, and one atomic reservation in the store;
//!    duplicates and stale events are acknowledged, not delivered.
//! 5. [`dispatch`]: delivery; the reservation is committed only when the upstream
//!    answered 2xx. The body that reaches the upstream is the body that was received,
//!    byte for byte.

pub mod admit;
pub mod allowlist;
pub mod auth;
pub mod batch;
pub mod body;
pub mod decide;
pub mod dispatch;
pub mod events;
pub mod extract;
pub mod handshake;
pub mod json;
pub mod jwt;
pub mod ratelimit;
pub mod respond;
pub mod route;
pub mod signature;
pub mod verify;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::Request;
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

pub use decide::{IN_FLIGHT_WAIT, MAX_VIOLATIONS};
pub use route::Route;

use crate::config::Settings;
use crate::delivery::{Deliverer, DeliveryError};
use crate::error::GatewayError;
use crate::store::Store;
use crate::telemetry::Metrics;
use crate::verdict::Verdict;
use decide::Decision;

/// Everything a request needs, built once per configuration.
#[derive(Debug)]
pub struct Gateway {
    /// The settings it was built from.
    pub settings: Settings,
    routes: HashMap<String, Arc<Route>>,
    deliverer: Deliverer,
    metrics: Arc<Metrics>,
    store: Store,
}

impl Gateway {
    /// Builds the gateway: route table, HTTP client, file sinks. `metrics` and `store`
    /// outlive the gateway across reloads.
    pub fn new(
        settings: Settings,
        metrics: Arc<Metrics>,
        store: Store,
    ) -> Result<Self, DeliveryError> {
        Self::build(settings, metrics, store, None)
    }

    /// Like [`Gateway::new`] for a reload: routes whose `rate_limit` did not change keep
    /// the buckets they had in `previous`.
    pub fn reloaded(
        settings: Settings,
        metrics: Arc<Metrics>,
        store: Store,
        previous: &Gateway,
    ) -> Result<Self, DeliveryError> {
        Self::build(settings, metrics, store, Some(previous))
    }

    fn build(
        settings: Settings,
        metrics: Arc<Metrics>,
        store: Store,
        previous: Option<&Gateway>,
    ) -> Result<Self, DeliveryError> {
        for r in &settings.routes {
            metrics.init_route(&r.name);
        }
        let mut deliverer = Deliverer::new(settings.routes.iter().map(|r| &r.upstream))?;
        for r in &settings.routes {
            if let Some(cas) = &r.upstream_ca {
                deliverer = deliverer.with_route_ca(&r.name, cas)?;
            }
        }
        let routes = route::build(&settings, previous.map(|p| &p.routes));
        Ok(Gateway {
            settings,
            routes,
            deliverer,
            metrics,
            store,
        })
    }

    /// The routes, by path.
    pub fn routes(&self) -> impl Iterator<Item = &Arc<Route>> {
        self.routes.values()
    }

    /// The route serving `path`.
    pub fn route_for(&self, path: &str) -> Option<&Arc<Route>> {
        self.routes.get(path)
    }

    /// The dedup/order store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The delivery half (for tests and tools).
    pub fn deliverer(&self) -> &Deliverer {
        &self.deliverer
    }
}

/// What is known about a request so far, for its answer and its log line.
#[derive(Debug, Default)]
pub struct Trace {
    /// The matched route.
    pub route: Option<Arc<str>>,
    /// Who the request is attributed to.
    pub client: Option<allowlist::Client>,
    /// The extracted event id.
    pub event_id: Option<String>,
}

/// Handles one webhook request from `peer`. Deliveries run as tasks on `deliveries`, so
/// that a sender hanging up cannot cancel one half-way (see [`dispatch::sync`]).
pub async fn handle(
    gw: Arc<Gateway>,
    deliveries: &TaskTracker,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response {
    let started = Instant::now();
    let mut trace = Trace::default();
    let (verdict, response) = match phases(&gw, deliveries, peer, req, started, &mut trace).await {
        Ok(answered) => answered,
        Err(err) => {
            err.log(trace.route.as_deref());
            let answer = err.into_answer(trace.route.clone(), trace.event_id.clone());
            (answer.verdict, answer.into_response())
        }
    };
    let status = response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    gw.metrics.request(trace.route.as_ref(), verdict, seconds);
    tracing::info!(
        route = trace.route.as_deref().unwrap_or("-"),
        verdict = verdict.as_str(),
        // `unknown` when a trusted proxy forwarded for a client it did not name; the
        // peer (that proxy) is logged beside it, so the line still says where it came from.
        client = %trace.client.map(|c| c.to_string()).unwrap_or_else(|| peer.ip().to_string()),
        peer = %peer.ip().to_canonical(),
        event_id = trace.event_id.as_deref().unwrap_or("-"),
        status,
        latency_ms = seconds * 1000.0,
        "Request handled."
    );
    response
}

/// The phases in order; `trace` learns the route, client and event id as they are known.
async fn phases(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    peer: SocketAddr,
    req: Request<Body>,
    started: Instant,
    trace: &mut Trace,
) -> Result<(Verdict, Response), GatewayError> {
    let (parts, body) = req.into_parts();
    let admitted = match admit::admit(gw, peer, &parts, trace) {
        Ok(admitted) => admitted,
        Err(refused) => {
            body::refuse_unread(&parts.headers, body).await;
            return Err(refused);
        }
    };
    let verified = verify::read_verified(gw, &admitted, body, started).await?;
    // A provider handshake is verified like an event, then answered, never forwarded.
    let signed = signature::SignedRequest {
        headers: &parts.headers,
        query: parts.uri.query(),
        body: &verified.bytes,
        now: std::time::SystemTime::now(),
    };
    if let Some(response) =
        handshake::answer(&admitted.route, &signed, gw.settings.server.max_json_depth)?
    {
        return Ok((Verdict::Handshake, response));
    }
    let route = &admitted.route;
    match events::read(
        verified,
        route.body,
        route.takes_batches(),
        gw.settings.server.max_json_depth,
    )? {
        events::Events::One(event) => {
            let keys = decide::keys(gw, route, &parts.headers, &event)?;
            deliver_one(gw, deliveries, &admitted, event, keys, trace).await
        }
        events::Events::Batch(batch) => {
            let keys = decide::batch_keys(gw, route, &parts.headers, &batch.elements)?;
            if route.split {
                return batch::deliver_each(gw, deliveries, &admitted, batch.elements, keys).await;
            }
            // Forwarded whole: its keys are a header or the whole body's hash.
            let event = events::Event {
                bytes: batch.bytes,
                document: serde_json::Value::Null,
            };
            let keys = decide::keys_unchecked(route, &parts.headers, &event)?;
            deliver_one(gw, deliveries, &admitted, event, keys, trace).await
        }
    }
}

/// Phases 4 and 5 for one event whose schema was checked and keys extracted: the store's
/// verdict, then an acknowledgement, an accept into the outbox, or a sync delivery.
async fn deliver_one(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    admitted: &admit::Admitted<'_>,
    event: events::Event,
    keys: extract::Extracted,
    trace: &mut Trace,
) -> Result<(Verdict, Response), GatewayError> {
    trace.event_id.clone_from(&keys.event_id);
    match decide::decide(gw, &admitted.route, &keys).await? {
        Decision::Acknowledge(ack) => {
            let answer = ack.answer(trace.route.clone(), trace.event_id.clone());
            let verdict = answer.verdict;
            Ok((
                verdict,
                respond::answer(admitted.route.respond.as_ref(), answer),
            ))
        }
        Decision::Deliver(reservation)
            if admitted.route.delivery == crate::config::spec::DeliveryMode::Async =>
        {
            let (mut response, id) =
                dispatch::accept(gw, admitted, &event, &keys, reservation).await?;
            if let Some(r) = &admitted.route.respond {
                response = respond::custom(r, Verdict::Accepted);
            }
            trace.event_id = Some(id);
            Ok((Verdict::Accepted, response))
        }
        Decision::Deliver(reservation) => {
            let event_id = trace.event_id.clone();
            let settle = match reservation {
                Some(r) => dispatch::Settle::Reservation(r),
                None => dispatch::Settle::Nothing,
            };
            let response =
                dispatch::sync(gw, deliveries, admitted, event, event_id, settle).await?;
            Ok((Verdict::Forwarded, response))
        }
        Decision::DeliverUnchecked => {
            let event_id = trace.event_id.clone();
            let settle = dispatch::Settle::Unrecorded;
            let response =
                dispatch::sync(gw, deliveries, admitted, event, event_id, settle).await?;
            Ok((Verdict::Forwarded, response))
        }
    }
}
