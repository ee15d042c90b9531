//! `GatewayError`: every way a request can end short of delivery, mapped to its verdict,
//! status and answer body in one place (DESIGN.md §4).
//!
//! Stage errors convert in with `?`; [`Answer`] turns the outcome into the response with
//! the `X-Hookgate-Verdict` header and the JSON body `{verdict, route, event_id, detail}`.
//! Details never echo a secret: credential failures say only that they failed (the exact
//! variant goes to the log).

use std::sync::Arc;

use axum::response::{IntoResponse, Response};
use http::{HeaderName, HeaderValue, Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::DeliveryError;
use crate::pipeline::allowlist::Client;
use crate::pipeline::auth::AuthError;
use crate::pipeline::body::BodyError;
use crate::pipeline::extract::ExtractError;
use crate::pipeline::json::JsonError;
use crate::pipeline::ratelimit::RateLimited;
use crate::pipeline::signature::SignatureError;
use crate::protocol::ProtocolError;
use crate::schema::Violation;
use crate::verdict::{VERDICT_HEADER, Verdict};

/// `Retry-After` of a 409 `in_flight`: the other delivery is usually done within it.
pub const IN_FLIGHT_RETRY_SECS: u64 = 1;

/// `Retry-After` of a 503 `unavailable` on an async route (outbox full, or the accept
/// write failed): long enough for workers to drain some backlog.
pub const ASYNC_RETRY_SECS: u64 = 5;

/// `Retry-After` of a 503 `unavailable` when the store could not decide: a short outage
/// (a busy disk, a store reopening) is usually over by then.
pub const STORE_RETRY_SECS: u64 = 5;

/// Why a request was not delivered.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No route has this path.
    #[error("no route for this path")]
    NoRoute,
    /// The request carries this gateway's own `Via` token: it is looping.
    #[error("the request already passed through this gateway (its own Via token)")]
    LoopDetected,
    /// The route does not accept this method.
    #[error("method {method} not allowed")]
    MethodNotAllowed {
        /// What was sent.
        method: Method,
        /// What the route accepts.
        allow: Vec<Method>,
    },
    /// The client address is not in the route's allowlist, or the client is unknown.
    #[error("address {0} is not allowed")]
    ForbiddenIp(Client),
    /// The route's rate limit is exhausted.
    #[error(transparent)]
    RateLimited(#[from] RateLimited),
    /// Credentials missing or wrong.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// The body was too large, too slow or unreadable.
    #[error(transparent)]
    Body(#[from] BodyError),
    /// The body signature is missing, wrong or outside the tolerance.
    #[error(transparent)]
    Signature(#[from] SignatureError),
    /// The body is not acceptable JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// A batch body is not acceptable (an element is not JSON, none, too many).
    #[error(transparent)]
    Batch(#[from] crate::pipeline::events::BatchError),
    /// The body violates the route's schema (at most 20 violations listed).
    #[error("body violates the schema ({} violations listed)", .0.len())]
    Schema(Vec<Violation>),
    /// A dedup/order key is missing or malformed.
    #[error(transparent)]
    Extract(#[from] ExtractError),
    /// The same event id, or another event of the same entity, is being delivered.
    #[error("the same event (or entity) is being delivered right now")]
    InFlight,
    /// The store could not decide or persist.
    #[error("store unavailable: {0}")]
    Store(crate::store::StoreError),
    /// Async delivery cannot accept now (outbox full, or the store cannot write):
    /// nothing is accepted without durability. Answered with `Retry-After`.
    #[error("cannot accept for async delivery: {0}")]
    AsyncUnavailable(&'static str),
    /// A bug: an invariant of the gateway did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
    /// The upstream could not be reached or did not answer in time.
    #[error(transparent)]
    Delivery(#[from] DeliveryError),
    /// The request is not acceptable HTTP/1.1.
    #[error(transparent)]
    Protocol(#[from] ProtocolError),
    /// The body is labelled with a `Content-Encoding` other than `identity`.
    #[error("content encoding {0:?} is not supported: send the body unencoded")]
    UnsupportedEncoding(String),
    /// More than `max_in_flight` requests are in flight.
    #[error("too many requests in flight, retry later")]
    Overloaded,
}

/// `Retry-After` of an `overloaded` answer: load passes in about a request's time.
const OVERLOADED_RETRY_SECS: u64 = 1;

impl GatewayError {
    /// The contract verdict of this error.
    pub fn verdict(&self) -> Verdict {
        match self {
            GatewayError::NoRoute => Verdict::NoRoute,
            GatewayError::LoopDetected => Verdict::LoopDetected,
            GatewayError::MethodNotAllowed { .. } => Verdict::MethodNotAllowed,
            GatewayError::ForbiddenIp(_) => Verdict::ForbiddenIp,
            GatewayError::RateLimited(_) => Verdict::RateLimited,
            GatewayError::Auth(_) | GatewayError::Signature(_) => Verdict::Unauthorized,
            GatewayError::Body(BodyError::TooLarge { .. }) => Verdict::TooLarge,
            GatewayError::Body(BodyError::Timeout) => Verdict::Timeout,
            // A body cut short is a broken request, not a judgement on its JSON.
            GatewayError::Body(BodyError::Read(_)) => Verdict::BadRequest,
            GatewayError::Protocol(_) => Verdict::BadRequest,
            GatewayError::UnsupportedEncoding(_) => Verdict::UnsupportedEncoding,
            GatewayError::Json(_) | GatewayError::Batch(_) => Verdict::InvalidJson,
            GatewayError::Delivery(_) => Verdict::UpstreamError,
            GatewayError::Internal(_) => Verdict::Internal,
            GatewayError::InFlight => Verdict::InFlight,
            GatewayError::Store(_) | GatewayError::AsyncUnavailable(_) => Verdict::Unavailable,
            GatewayError::Overloaded => Verdict::Overloaded,
            GatewayError::Schema(_) | GatewayError::Extract(_) => Verdict::InvalidSchema,
        }
    }

    /// Logs what the sender is not told. The one place a refusal is logged: the variant
    /// of a credential failure (never the secret), and a delivery failure's cause.
    pub fn log(&self, route: Option<&str>) {
        match self {
            GatewayError::Auth(e) => tracing::debug!(reason = %e, "Credentials refused."),
            GatewayError::Signature(e) => {
                tracing::debug!(reason = e.reason(), "Signature refused.");
            }
            GatewayError::Delivery(e) => {
                tracing::warn!(route = route.unwrap_or("-"), error = %e, "Delivery failed.");
            }
            GatewayError::Internal(what) => {
                tracing::error!(route = route.unwrap_or("-"), what, "Internal error.");
            }
            // The verdict on the request's log line says all there is to say.
            GatewayError::NoRoute
            | GatewayError::LoopDetected
            | GatewayError::MethodNotAllowed { .. }
            | GatewayError::ForbiddenIp(_)
            | GatewayError::RateLimited(_)
            | GatewayError::Body(_)
            | GatewayError::Json(_)
            | GatewayError::Batch(_)
            | GatewayError::Schema(_)
            | GatewayError::Extract(_)
            | GatewayError::InFlight
            | GatewayError::Store(_)
            | GatewayError::AsyncUnavailable(_)
            | GatewayError::Overloaded
            | GatewayError::Protocol(_)
            | GatewayError::UnsupportedEncoding(_) => {}
        }
    }

    /// The answer for this error on `route` (if one matched). Every variant chooses its
    /// own `detail` (no catch-all), so no error's `Display` reaches a sender unless its
    /// arm says so.
    pub fn into_answer(self, route: Option<Arc<str>>, event_id: Option<String>) -> Answer {
        let verdict = self.verdict();
        let mut answer = Answer::new(verdict, route, event_id);
        answer.detail = match &self {
            GatewayError::NoRoute | GatewayError::LoopDetected | GatewayError::ForbiddenIp(_) => {
                json!(self.to_string())
            }
            GatewayError::MethodNotAllowed { allow, .. } => {
                let list = allow
                    .iter()
                    .map(Method::as_str)
                    .collect::<Vec<_>>()
                    .join(", ");
                if let Ok(v) = HeaderValue::from_str(&list) {
                    answer.headers.push((http::header::ALLOW, v));
                }
                json!(format!("allowed: {list}"))
            }
            GatewayError::RateLimited(r) => {
                answer.headers.push((
                    http::header::RETRY_AFTER,
                    HeaderValue::from(r.retry_after_secs),
                ));
                json!(r.to_string())
            }
            // Never say which part of the credentials was wrong.
            GatewayError::Auth(_) | GatewayError::Signature(_) => {
                json!("credentials missing or invalid")
            }
            // Size, deadline or a cut-short read: the sender's own doing, nothing secret.
            GatewayError::Body(e) => json!(e.to_string()),
            GatewayError::Json(e) => json!(e.to_string()),
            GatewayError::Batch(e) => json!(e.to_string()),
            GatewayError::UnsupportedEncoding(_) => json!(self.to_string()),
            GatewayError::Delivery(e) => match e {
                DeliveryError::Timeout(_) => {
                    answer.status = StatusCode::GATEWAY_TIMEOUT;
                    json!("upstream timed out")
                }
                DeliveryError::File(_) => json!("file sink write failed"),
                DeliveryError::Connect(_) | DeliveryError::Setup(_) => {
                    json!("upstream unreachable")
                }
            },
            GatewayError::Internal(_) => Value::Null,
            GatewayError::Protocol(p) => {
                answer.status = p.status();
                json!(p.to_string())
            }
            GatewayError::InFlight => {
                answer.headers.push((
                    http::header::RETRY_AFTER,
                    HeaderValue::from(IN_FLIGHT_RETRY_SECS),
                ));
                json!(self.to_string())
            }
            GatewayError::AsyncUnavailable(why) => {
                answer.headers.push((
                    http::header::RETRY_AFTER,
                    HeaderValue::from(ASYNC_RETRY_SECS),
                ));
                json!(why)
            }
            GatewayError::Overloaded => {
                answer.headers.push((
                    http::header::RETRY_AFTER,
                    HeaderValue::from(OVERLOADED_RETRY_SECS),
                ));
                json!(self.to_string())
            }
            // Never expose store internals (paths) to senders.
            GatewayError::Store(_) => {
                // DESIGN §4: `unavailable` always tells the sender when to come back.
                answer.headers.push((
                    http::header::RETRY_AFTER,
                    HeaderValue::from(STORE_RETRY_SECS),
                ));
                json!("store unavailable, retry later")
            }
            GatewayError::Schema(violations) => json!(violations),
            GatewayError::Extract(e) => json!([Violation {
                instance_path: e.location().to_owned(),
                keyword: e.key().to_owned(),
                message: e.to_string(),
            }]),
        };
        answer
    }
}

/// A gateway-made answer: verdict, status, extra headers and the JSON body.
#[derive(Debug)]
pub struct Answer {
    /// The verdict (header and body).
    pub verdict: Verdict,
    /// The status; the verdict's own unless overridden (504).
    pub status: StatusCode,
    /// The matched route.
    pub route: Option<Arc<str>>,
    /// The event id, when extracted.
    pub event_id: Option<String>,
    /// Free-form detail.
    pub detail: Value,
    /// Extra headers (`Allow`, `Retry-After`).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl Answer {
    /// An answer with the verdict's own status and no detail.
    pub fn new(verdict: Verdict, route: Option<Arc<str>>, event_id: Option<String>) -> Self {
        Answer {
            verdict,
            status: verdict.status(),
            route,
            event_id,
            detail: Value::Null,
            headers: Vec::new(),
        }
    }
}

impl Answer {
    /// The JSON body `{verdict, route, event_id, detail}` of DESIGN.md §4.
    pub fn body_json(&self) -> String {
        // A struct, not `json!`, so the fields keep the contract's order.
        #[derive(serde::Serialize)]
        struct Body<'a> {
            verdict: &'static str,
            route: Option<&'a str>,
            event_id: Option<&'a str>,
            detail: &'a Value,
        }
        serde_json::to_string(&Body {
            verdict: self.verdict.as_str(),
            route: self.route.as_deref(),
            event_id: self.event_id.as_deref(),
            detail: &self.detail,
        })
        .unwrap_or_default()
    }
}

impl IntoResponse for Answer {
    fn into_response(self) -> Response {
        let body = self.body_json();
        let mut response = (
            self.status,
            [(http::header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response();
        let headers = response.headers_mut();
        headers.insert(
            HeaderName::from_static(VERDICT_HEADER),
            HeaderValue::from_static(self.verdict.as_str()),
        );
        for (name, value) in self.headers {
            headers.insert(name, value);
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// DESIGN §4: every 503 `unavailable` carries `Retry-After`, whichever store
    /// failure caused it.
    #[test]
    fn store_unavailable_tells_the_sender_when_to_retry() {
        let response = GatewayError::Store(crate::store::StoreError::new(
            crate::store::StoreErrorKind::Unavailable,
            "embedded store writer thread is not running",
        ))
        .into_answer(None, None)
        .into_response();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(
            response.headers().get(VERDICT_HEADER).map(|v| v.as_bytes()),
            Some(&b"unavailable"[..])
        );
        assert_eq!(
            response.headers().get(http::header::RETRY_AFTER),
            Some(&HeaderValue::from(STORE_RETRY_SECS))
        );
    }
}
