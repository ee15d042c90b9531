//! The request pipeline: one webhook request, stage by stage (DESIGN.md §1).
//!
//! `stages` reads top to bottom in the order that is the security model: cheap
//! rejections that need no body (route, method, address, rate limit, header credentials)
//! come first; only then is the body read, bounded in size and time; the signature is
//! checked over the raw bytes before anything parses them; then JSON, schema, key
//! extraction, and only a verified, valid event reaches the dedup/order store. The body
//! that reaches the upstream is the body that was received, byte for byte, and the
//! store's reservation is committed only when the upstream answered 2xx.

pub mod allowlist;
pub mod auth;
pub mod body;
pub mod extract;
pub mod json;
pub mod ratelimit;
pub mod signature;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderValue, Request};
use tokio::time::Instant;
use tokio_util::task::TaskTracker;

use crate::config::raw::SchemaMode;
use crate::config::{Route, Settings};
use crate::delivery::{
    Deliverer, DeliveryError, Outbound, Peer, append_via, forward_headers, is_looping,
};
use crate::error::{Answer, GatewayError};
use crate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest, Store};
use crate::telemetry::{DeliveryOutcome, Metrics};
use crate::verdict::{VERDICT_HEADER, Verdict};

/// Most schema violations listed in a 422 answer.
pub const MAX_VIOLATIONS: usize = 20;

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
        for r in &settings.routes {
            metrics.init_route(&r.name);
        }
        let mut deliverer = Deliverer::new(settings.routes.iter().map(|r| &r.upstream))?;
        for r in &settings.routes {
            if let Some(cas) = &r.upstream_ca {
                deliverer = deliverer.with_route_ca(&r.name, cas)?;
            }
        }
        let routes = settings
            .routes
            .iter()
            .map(|r| (r.path.clone(), Arc::clone(r)))
            .collect();
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

    /// The dedup/order store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The delivery half (for tests and tools).
    pub fn deliverer(&self) -> &Deliverer {
        &self.deliverer
    }
}

/// What one request ended as, for the log line.
struct Outcome {
    response: Response,
    verdict: Verdict,
    route: Option<Arc<str>>,
    client: Option<allowlist::Client>,
    event_id: Option<String>,
}

/// Handles one webhook request from `peer`. Deliveries run as tasks on `deliveries`, so
/// that a sender hanging up cannot cancel one half-way (see `stages`, step 11).
pub async fn handle(
    gw: Arc<Gateway>,
    deliveries: &TaskTracker,
    peer: SocketAddr,
    req: Request<Body>,
) -> Response {
    let started = Instant::now();
    let outcome = run(&gw, deliveries, peer, req, started).await;
    let status = outcome.response.status().as_u16();
    let seconds = started.elapsed().as_secs_f64();
    gw.metrics
        .request(outcome.route.as_ref(), outcome.verdict, seconds);
    tracing::info!(
        route = outcome.route.as_deref().unwrap_or("-"),
        verdict = outcome.verdict.as_str(),
        // `unknown` when a trusted proxy forwarded for a client it did not name; the
        // peer (that proxy) is logged beside it, so the line still says where it came from.
        client = %outcome.client.map(|c| c.to_string()).unwrap_or_else(|| peer.ip().to_string()),
        peer = %peer.ip().to_canonical(),
        event_id = outcome.event_id.as_deref().unwrap_or("-"),
        status,
        latency_ms = seconds * 1000.0,
        "Request handled."
    );
    outcome.response
}

async fn run(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    peer: SocketAddr,
    req: Request<Body>,
    started: Instant,
) -> Outcome {
    let mut outcome = Outcome {
        response: Response::default(),
        verdict: Verdict::Internal,
        route: None,
        client: None,
        event_id: None,
    };
    let (parts, body) = req.into_parts();
    let mut body = Some(body);
    match stages(
        gw,
        deliveries,
        peer,
        &parts,
        &mut body,
        started,
        &mut outcome,
    )
    .await
    {
        Ok(response) => outcome.response = response,
        Err(err) => {
            // A sender that asked `Expect: 100-continue` has not sent its body and will
            // not until invited; reading it now would invite it (hyper answers `100
            // Continue` on the first poll) only to throw it away. It is refused unread.
            if let Some(unread) = body.take()
                && !body::expects_continue(&parts.headers)
            {
                body::discard(unread, declared_length(&parts.headers)).await;
            }
            if let GatewayError::Auth(e) = &err {
                tracing::debug!(reason = %e, "Credentials refused.");
            }
            if let GatewayError::Signature(e) = &err {
                tracing::debug!(reason = e.reason(), "Signature refused.");
            }
            if let GatewayError::Delivery(e) = &err {
                tracing::warn!(route = outcome.route.as_deref().unwrap_or("-"), error = %e, "Delivery failed.");
            }
            let answer = err.into_answer(outcome.route.clone(), outcome.event_id.clone());
            outcome.verdict = answer.verdict;
            outcome.response = answer.into_response();
        }
    }
    outcome
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// The stages in order. `body` is taken only once the headers passed every check.
async fn stages(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    peer: SocketAddr,
    parts: &http::request::Parts,
    body: &mut Option<Body>,
    started: Instant,
    out: &mut Outcome,
) -> Result<Response, GatewayError> {
    let server = &gw.settings.server;
    // 1. route and method: no body read.
    let route = gw
        .routes
        .get(parts.uri.path())
        .ok_or(GatewayError::NoRoute)?;
    out.route = Some(Arc::clone(&route.name));
    // A request carrying our own Via token has been here before: a route whose upstream
    // leads back to this gateway. Refused before anything else, so a loop costs one
    // round trip instead of recursing until file descriptors run out.
    if is_looping(&parts.headers) {
        return Err(GatewayError::LoopDetected);
    }
    if !route.methods.contains(&parts.method) {
        return Err(GatewayError::MethodNotAllowed {
            method: parts.method.clone(),
            allow: route.methods.clone(),
        });
    }
    // 2. client address and allowlist: no body read.
    let client = allowlist::client_addr(
        peer,
        &parts.headers,
        &server.trusted_proxies,
        server.client_ip_header,
    );
    out.client = Some(client);
    // An unknown client passes no allowlist (a route without one still serves it).
    if let Some(list) = &route.allow_ips
        && !client.addr().is_some_and(|a| list.permits(a))
    {
        return Err(GatewayError::ForbiddenIp(client));
    }
    // 3. rate limit: no body read.
    if let Some(limit) = &route.rate_limit {
        limit.check(client)?;
    }
    // The connection's facts (TLS, client certificate), inserted by the server; a
    // request driven through the router without one is plain HTTP without a certificate.
    let conn = parts.extensions.get::<crate::server::ConnectionInfo>();
    // 4. TLS client certificate, then header credentials: no body read.
    if let Some(subjects) = &route.client_subjects
        && !conn.is_some_and(|c| c.client_matches(subjects))
    {
        return Err(auth::AuthError::ClientCertificate.into());
    }
    route.auth.check(&parts.headers)?;
    // 4b. an encoded body: signatures, JSON and schema would judge bytes the upstream
    // reads differently once decoded, so it is refused before being read.
    body::check_identity_encoding(&parts.headers).map_err(GatewayError::UnsupportedEncoding)?;
    // 5. the body, bounded in size and time.
    // The config caps durations, but a deadline that cannot be represented must still
    // never panic a request: it means "no deadline worth having", so take the cap.
    let deadline = started
        .checked_add(server.read_timeout)
        .unwrap_or_else(|| started + crate::config::MAX_DURATION);
    let unread = body
        .take()
        .ok_or(GatewayError::Internal("body taken twice"))?;
    let bytes = body::read(
        unread,
        declared_length(&parts.headers),
        server.max_body_bytes,
        deadline,
    )
    .await?;
    // 6. signature over the raw bytes, before any parsing.
    route
        .auth
        .verify_request(&crate::pipeline::signature::SignedRequest {
            headers: &parts.headers,
            query: parts.uri.query(),
            body: &bytes,
            now: std::time::SystemTime::now(),
        })?;
    // 7. JSON, depth-bounded before any tree is built.
    let document = json::parse(&bytes, server.max_json_depth)?;
    // 8. schema.
    check_schema(gw, route, &document)?;
    // 9. event id, entity and time.
    let keys = route.keys.extract(&parts.headers, &bytes, &document)?;
    out.event_id = keys.event_id.clone();
    // 10. dedup + order: one atomic reservation in the store.
    let reservation = reserve(gw, route, &keys).await?;
    // 11. delivery; then the reservation is committed (2xx) or released. Once the
    // upstream has the event it must run to its end whatever the sender does: a sender
    // that hangs up (Flashduty gives up after 2 s) drops this future, and releasing the
    // reservation then would let its retry be forwarded a second time and a newer event
    // of the entity overtake this one. So delivery and bookkeeping run in a task of
    // their own, tracked so that shutdown drains it; this request only awaits it.
    let peer_ip = peer.ip().to_canonical();
    let peer_trusted = server.trusted_proxies.iter().any(|n| n.contains(&peer_ip));
    let mut headers = forward_headers(
        &parts.headers,
        &route.consumed_headers,
        Peer {
            ip: peer_ip,
            trusted: peer_trusted,
            client_ip_header: server.client_ip_header,
            scheme: conn.map_or("http", crate::server::ConnectionInfo::scheme),
        },
        &route.name,
        out.event_id.as_deref(),
    );
    append_via(&mut headers, &parts.headers, parts.version);
    if route.delivery == crate::config::raw::DeliveryMode::Async {
        let (response, id) = crate::delivery::outbox::dispatch_async(
            &gw.store,
            route,
            parts,
            headers,
            &bytes,
            &keys,
            &client.to_string(),
            reservation,
        )
        .await?;
        (out.event_id, out.verdict) = (Some(id), Verdict::Accepted);
        return Ok(response);
    }
    let delivery = {
        let (gw, route) = (Arc::clone(gw), Arc::clone(route));
        let method = parts.method.clone();
        let query = parts.uri.query().map(str::to_owned);
        let event_id = out.event_id.clone();
        let client = client.to_string();
        deliveries.spawn(async move {
            let outbound = Outbound {
                route: &route.name,
                method,
                headers,
                body: bytes,
                query: query.as_deref(),
                event_id: event_id.as_deref(),
                client: &client,
                timeout: route.upstream_timeout,
            };
            deliver_and_settle(&gw, &route, outbound, reservation).await
        })
    };
    let delivered = delivery
        .await
        .map_err(|_| GatewayError::Internal("delivery task failed"))??;
    out.verdict = Verdict::Forwarded;
    if matches!(route.upstream, crate::delivery::Target::File(_)) {
        return Ok(Answer::new(
            Verdict::Forwarded,
            Some(Arc::clone(&route.name)),
            out.event_id.clone(),
        )
        .into_response());
    }
    let mut response = Response::new(Body::from(delivered.body));
    *response.status_mut() = delivered.status;
    *response.headers_mut() = delivered.headers;
    let headers = response.headers_mut();
    headers.insert(
        VERDICT_HEADER,
        HeaderValue::from_static(Verdict::Forwarded.as_str()),
    );
    Ok(response)
}

/// Delivers `outbound` and settles the reservation: committed on a 2xx, released
/// (dropped) otherwise, so the sender's retry goes through. Runs in its own task.
async fn deliver_and_settle(
    gw: &Gateway,
    route: &Route,
    outbound: Outbound<'_>,
    reservation: Option<crate::store::Reservation>,
) -> Result<crate::delivery::Delivered, DeliveryError> {
    let delivered = gw.deliverer.deliver(&route.upstream, outbound).await;
    gw.metrics.delivery(
        &route.name,
        match &delivered {
            Ok(d) if d.status.is_success() => DeliveryOutcome::success,
            Ok(_) => DeliveryOutcome::rejected,
            Err(DeliveryError::Unreachable(_)) => DeliveryOutcome::unreachable,
            Err(DeliveryError::Timeout(_)) => DeliveryOutcome::timeout,
            Err(DeliveryError::File(_)) => DeliveryOutcome::file_error,
        },
    );
    let delivered = delivered?;
    if delivered.status.is_success()
        && let Some(r) = reservation
        && let Err(e) = gw.store.commit(r).await
    {
        // Delivered but not marked seen: a retry may be delivered again
        // (at least once, never lost). The sender still gets the answer.
        tracing::error!(route = %route.name, error = %e, "Delivered event could not be marked seen.");
        gw.metrics.unrecorded_delivery(&route.name);
    }
    Ok(delivered)
}

/// Validates `document` against the route's schema: 422 in enforce mode, a counted and
/// logged violation in monitor mode.
fn check_schema(
    gw: &Gateway,
    route: &Route,
    document: &serde_json::Value,
) -> Result<(), GatewayError> {
    let Some(schema) = &route.schema else {
        return Ok(());
    };
    let violations = schema.violations(document, MAX_VIOLATIONS);
    if violations.is_empty() {
        return Ok(());
    }
    gw.metrics.schema_violation(&route.name);
    match route.schema_mode {
        SchemaMode::Enforce => Err(GatewayError::Schema(violations)),
        SchemaMode::Monitor => {
            // Paths and keywords only: messages quote body values.
            let paths: Vec<String> = violations
                .iter()
                .map(|v| format!("{} ({})", v.instance_path, v.keyword))
                .collect();
            tracing::warn!(
                route = %route.name,
                count = violations.len(),
                violations = ?paths,
                "Schema violation forwarded (monitor mode)."
            );
            Ok(())
        }
    }
}

/// How long a request waits for an in-flight delivery of the same event or entity to
/// settle before it is answered 409 `in_flight`.
///
/// Many senders never retry a 409 (Flashduty retries only network errors), so answering
/// it at once would lose the newer of two events for one incident that arrive together.
/// Waiting a little lets the other delivery finish: this request then becomes a
/// duplicate, a stale event, or the next delivery, and order still holds because it only
/// proceeds once the store reserves it. The wait stays well below senders' own answer
/// timeouts (Flashduty: 2 s).
pub const IN_FLIGHT_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The dedup + order verdict, one atomic step in the store. `None` when the route
/// extracts neither an id nor an order point from this event.
async fn reserve(
    gw: &Gateway,
    route: &Route,
    keys: &extract::Extracted,
) -> Result<Option<crate::store::Reservation>, GatewayError> {
    if keys.event_id.is_none() && keys.order.is_none() {
        return Ok(None);
    }
    let request = || ReserveRequest {
        route: &route.name,
        event_id: keys.event_id.as_deref(),
        order: keys.order.as_ref().map(|(entity, nanos)| OrderPoint {
            entity,
            time: EventTime(*nanos),
        }),
        dedup_ttl: gw.settings.store.dedup_ttl,
    };
    let deadline = Instant::now() + IN_FLIGHT_WAIT;
    let mut pause = std::time::Duration::from_millis(2);
    loop {
        let outcome = gw
            .store
            .reserve(request())
            .await
            .map_err(GatewayError::Store)?;
        match outcome {
            ReserveOutcome::Reserved(r) => return Ok(Some(r)),
            ReserveOutcome::Duplicate => return Err(GatewayError::Duplicate),
            ReserveOutcome::Stale => return Err(GatewayError::Stale),
            ReserveOutcome::InFlight if Instant::now() + pause > deadline => {
                return Err(GatewayError::InFlight);
            }
            // Polling with backoff: waiters are bounded by the requests in flight, and
            // the store's in-flight check is a map lookup under a mutex.
            ReserveOutcome::InFlight => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(std::time::Duration::from_millis(50));
            }
        }
    }
}
