//! A split batch (`split = true`): each element of an array or NDJSON body is its own
//! event, with its own dedup id, entity, time, store verdict and delivery.
//!
//! Every element was checked (schema, keys) before this runs, so a bad element refuses
//! the batch before anything is delivered. Elements then go through phases 4 and 5 one
//! after the other, in order (two elements of one entity keep their order), and the
//! batch stops at the first element that is not done: the sender retries the whole
//! batch, and the elements already delivered are then duplicates (given a dedup key).
//!
//! The answer is the gateway's own, whatever the delivery mode: `detail.elements` lists
//! each attempted element's `index`, `verdict`, `status` and `event_id`, and
//! `detail.not_attempted` counts the elements after a failure. It is a success (the
//! route's `respond` applies) only when every element was delivered, accepted, or was a
//! duplicate or stale; its verdict is then `accepted` (202) if any element was accepted,
//! else `forwarded` (200) if any was delivered, else `duplicate` or `stale` (200). A
//! failed element's own status and verdict answer the batch (502 `upstream_error`, 409
//! `in_flight`, 503 `unavailable`, or the upstream's non-2xx status with `forwarded`).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::{Value, json};
use tokio_util::task::TaskTracker;

use super::admit::Admitted;
use super::events::Event;
use super::extract::Extracted;
use super::{Gateway, Trace, respond};
use crate::error::{Answer, GatewayError};
use crate::verdict::Verdict;

/// Delivers each element of a split batch in order; see the module doc for the answer.
pub async fn deliver_each(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    admitted: &Admitted<'_>,
    elements: Vec<Event>,
    keys: Vec<Extracted>,
) -> Result<(Verdict, Response), GatewayError> {
    let route = &admitted.route;
    let total = elements.len();
    // Each element travels as a JSON document of its own, whatever the batch was labelled.
    let mut parts = admitted.parts.clone();
    parts.headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    let element = Admitted {
        route: Arc::clone(route),
        peer: admitted.peer,
        client: admitted.client,
        parts: &parts,
    };
    let mut outcomes = Vec::with_capacity(total);
    let mut failure: Option<Failure> = None;
    for (index, (event, keys)) in elements.into_iter().zip(keys).enumerate() {
        let mut trace = Trace::default();
        match super::deliver_one(gw, deliveries, &element, event, keys, &mut trace).await {
            Ok((verdict, response)) => {
                let status = response.status();
                outcomes.push(json!({
                    "index": index,
                    "verdict": verdict.as_str(),
                    "status": status.as_u16(),
                    "event_id": trace.event_id,
                }));
                if verdict == Verdict::Forwarded && !status.is_success() {
                    failure = Some(Failure {
                        status,
                        verdict,
                        headers: Vec::new(),
                    });
                    break;
                }
            }
            Err(err) => {
                err.log(Some(&route.name));
                let answer = err.into_answer(Some(Arc::clone(&route.name)), None);
                outcomes.push(json!({
                    "index": index,
                    "verdict": answer.verdict.as_str(),
                    "status": answer.status.as_u16(),
                    "event_id": trace.event_id,
                    "detail": answer.detail,
                }));
                failure = Some(Failure {
                    status: answer.status,
                    verdict: answer.verdict,
                    headers: answer.headers,
                });
                break;
            }
        }
    }
    let attempted = outcomes.len();
    let verdict = match &failure {
        Some(f) => f.verdict,
        None => overall(&outcomes),
    };
    let mut answer = Answer::new(verdict, Some(Arc::clone(&route.name)), None);
    answer.detail = json!({
        "elements": outcomes,
        "not_attempted": total - attempted,
    });
    match failure {
        Some(f) => {
            answer.status = f.status;
            answer.headers = f.headers;
            Ok((verdict, answer.into_response()))
        }
        None => Ok((verdict, respond::answer(route.respond.as_ref(), answer))),
    }
}

/// The element that stopped a batch: its answer's status, verdict and extra headers
/// (`Retry-After`), which answer the batch.
struct Failure {
    status: StatusCode,
    verdict: Verdict,
    headers: Vec<(http::HeaderName, HeaderValue)>,
}

/// The verdict of a batch all of whose elements are done.
fn overall(outcomes: &[Value]) -> Verdict {
    let has = |v: Verdict| {
        outcomes
            .iter()
            .any(|o| o.get("verdict").and_then(Value::as_str) == Some(v.as_str()))
    };
    if has(Verdict::Accepted) {
        Verdict::Accepted
    } else if has(Verdict::Forwarded) {
        Verdict::Forwarded
    } else if has(Verdict::Duplicate) {
        Verdict::Duplicate
    } else {
        Verdict::Stale
    }
}
