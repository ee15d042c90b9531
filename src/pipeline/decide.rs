//! Phase 4, decide: schema, dedup/order keys, and the store's verdict on one event.
//!
//! The outcome is a [`Decision`]: deliver under a reservation, or acknowledge without
//! delivering (a duplicate or a stale event is answered 200: the sender must stop
//! retrying). Only real refusals travel as errors.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::events::Event;
use super::{Gateway, Route, extract};
use crate::config::spec::{DeliveryMode, OnUnavailable, SchemaMode};
use crate::error::{Answer, GatewayError};
use crate::store::{EventTime, OrderPoint, Reservation, ReserveOutcome, ReserveRequest};
use crate::verdict::Verdict;

/// Most schema violations listed in a 422 answer.
pub const MAX_VIOLATIONS: usize = 20;

/// How long a request waits for an in-flight delivery of the same event or entity to
/// settle before it is answered 409 `in_flight`.
///
/// Many senders never retry a 409 (Flashduty retries only network errors), so answering
/// it at once would lose the newer of two events for one incident that arrive together.
/// Waiting a little lets the other delivery finish: this request then becomes a
/// duplicate, a stale event, or the next delivery, and order still holds because it only
/// proceeds once the store reserves it. The wait stays well below senders' own answer
/// timeouts (Flashduty: 2 s).
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// What happens to an event that passed every check.
#[derive(Debug)]
pub enum Decision {
    /// Deliver it; the reservation (if the route keys events) is settled by dispatch.
    Deliver(Option<Reservation>),
    /// The store cannot decide and the sync route's `[store] on_unavailable` is
    /// `deliver`: forward without the dedup/order check (counted and logged by
    /// dispatch once the upstream has it).
    DeliverUnchecked,
    /// Answer 200 without delivering.
    Acknowledge(Acknowledgement),
}

/// Why an event is acknowledged without delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acknowledgement {
    /// The event id was already delivered.
    Duplicate,
    /// The event is older than the newest delivered for its entity.
    Stale,
}

impl Acknowledgement {
    /// The 200 answer.
    pub fn answer(self, route: Option<Arc<str>>, event_id: Option<String>) -> Answer {
        let (verdict, detail) = match self {
            Acknowledgement::Duplicate => (Verdict::Duplicate, "event already delivered"),
            Acknowledgement::Stale => (
                Verdict::Stale,
                "event older than the newest delivered for its entity",
            ),
        };
        let mut answer = Answer::new(verdict, route, event_id);
        answer.detail = serde_json::json!(detail);
        answer
    }
}

/// Checks `event` against the route's schema and extracts its keys.
pub fn keys(
    gw: &Gateway,
    route: &Route,
    headers: &http::HeaderMap,
    event: &Event,
) -> Result<extract::Extracted, GatewayError> {
    check_schema(gw, route, &event.document)?;
    Ok(route.keys.extract(headers, &event.bytes, &event.document)?)
}

/// Checks every element of a batch against the route's (element) schema and extracts
/// each one's keys, before anything is delivered: one bad element refuses the whole
/// batch with 422, every violation naming its element (`instance_path` starts with
/// `/<index>`, as in the array the elements form).
pub fn batch_keys(
    gw: &Gateway,
    route: &Route,
    headers: &http::HeaderMap,
    elements: &[Event],
) -> Result<Vec<extract::Extracted>, GatewayError> {
    let mut violations = Vec::new();
    let mut keys = Vec::with_capacity(elements.len());
    for (i, event) in elements.iter().enumerate() {
        let found = match check_schema(gw, route, &event.document) {
            Ok(()) => match route.keys.extract(headers, &event.bytes, &event.document) {
                Ok(k) => {
                    keys.push(k);
                    continue;
                }
                Err(e) => vec![crate::schema::Violation {
                    instance_path: e.location().to_owned(),
                    keyword: e.key().to_owned(),
                    message: e.to_string(),
                }],
            },
            Err(GatewayError::Schema(found)) => found,
            Err(other) => return Err(other),
        };
        for mut v in found {
            if violations.len() == MAX_VIOLATIONS {
                break;
            }
            // A header key (`header:NAME`) is not inside the element.
            if v.instance_path.is_empty() || v.instance_path.starts_with('/') {
                v.instance_path = format!("/{i}{}", v.instance_path);
            }
            v.message = format!("element {i}: {}", v.message);
            violations.push(v);
        }
    }
    if violations.is_empty() {
        Ok(keys)
    } else {
        Err(GatewayError::Schema(violations))
    }
}

/// Extracts `event`'s keys without a schema check (a batch forwarded whole, whose
/// elements were checked one by one).
pub fn keys_unchecked(
    route: &Route,
    headers: &http::HeaderMap,
    event: &Event,
) -> Result<extract::Extracted, GatewayError> {
    Ok(route.keys.extract(headers, &event.bytes, &event.document)?)
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

/// Whether an event the store cannot decide on is forwarded anyway: on a sync route
/// with `[store] on_unavailable = "deliver"`. An async route never is: nothing is
/// accepted without durability.
fn unchecked_delivery(gw: &Gateway, route: &Route) -> bool {
    route.delivery == DeliveryMode::Sync
        && gw.settings.store.on_unavailable == OnUnavailable::Deliver
}

/// The dedup + order verdict, one atomic step in the store. Delivers without a
/// reservation when the route extracts neither an id nor an order point from this event.
pub async fn decide(
    gw: &Gateway,
    route: &Route,
    keys: &extract::Extracted,
) -> Result<Decision, GatewayError> {
    if keys.event_id.is_none() && keys.order.is_none() {
        return Ok(Decision::Deliver(None));
    }
    let request = || ReserveRequest {
        route: &route.name,
        event_id: keys.event_id.as_deref(),
        order: keys.order.as_ref().map(|(entity, nanos)| OrderPoint {
            entity,
            time: EventTime(*nanos),
        }),
        dedup_ttl: gw.settings.store.dedup_ttl,
        order_ttl: gw.settings.store.order_ttl,
    };
    let deadline = Instant::now() + IN_FLIGHT_WAIT;
    let mut pause = Duration::from_millis(2);
    loop {
        let outcome = match gw.store.reserve(request()).await {
            Ok(outcome) => outcome,
            Err(e) if unchecked_delivery(gw, route) => {
                tracing::warn!(route = %route.name, event_id = keys.event_id.as_deref().unwrap_or("-"), error = %e, "Store unavailable: delivering without the dedup/order check (store.on_unavailable = \"deliver\").");
                return Ok(Decision::DeliverUnchecked);
            }
            Err(e) => return Err(GatewayError::Store(e)),
        };
        match outcome {
            ReserveOutcome::Reserved(r) => return Ok(Decision::Deliver(Some(r))),
            ReserveOutcome::Duplicate => {
                return Ok(Decision::Acknowledge(Acknowledgement::Duplicate));
            }
            ReserveOutcome::Stale => return Ok(Decision::Acknowledge(Acknowledgement::Stale)),
            ReserveOutcome::InFlight if Instant::now() + pause > deadline => {
                return Err(GatewayError::InFlight);
            }
            // Polling with backoff: waiters are bounded by the requests in flight, and
            // the store's in-flight check is a map lookup under a mutex.
            ReserveOutcome::InFlight => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(50));
            }
        }
    }
}
