//! Custom answers (`respond`): what a route answers when the gateway acknowledges an
//! event itself, for senders that check the answer (Apono's response validators expect
//! `$.data....` paths in it).
//!
//! It replaces the gateway's JSON body and status for the successful outcomes the gateway
//! answers on its own: async `accepted`, `duplicate`, `stale`, a file sink's `forwarded`,
//! and a batch all of whose elements ended so. A sync route's `forwarded` keeps the
//! upstream's own answer (the upstream is the one that can say what the sender expects),
//! and every refusal keeps the contract's answer. `X-Hookgate-Verdict` is always set.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::HeaderValue;

use crate::config::spec::Respond;
use crate::error::Answer;
use crate::verdict::{VERDICT_HEADER, Verdict};

/// Whether `verdict` is an acknowledgement a `respond` answer replaces.
pub fn replaces(verdict: Verdict) -> bool {
    matches!(
        verdict,
        Verdict::Accepted | Verdict::Duplicate | Verdict::Stale | Verdict::Forwarded
    )
}

/// The custom answer, with the verdict header.
pub fn custom(respond: &Respond, verdict: Verdict) -> Response {
    let mut response = Response::new(Body::from(respond.body.clone()));
    *response.status_mut() = respond.status;
    let headers = response.headers_mut();
    if let Some(ct) = &respond.content_type {
        headers.insert(http::header::CONTENT_TYPE, ct.clone());
    }
    headers.insert(VERDICT_HEADER, HeaderValue::from_static(verdict.as_str()));
    response
}

/// `answer` as the route answers it: its custom answer when it has one and the verdict
/// is one it replaces, the contract's JSON answer otherwise.
pub fn answer(respond: Option<&Respond>, answer: Answer) -> Response {
    match respond {
        Some(r) if replaces(answer.verdict) => custom(r, answer.verdict),
        _ => answer.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_answer_keeps_the_verdict_header() {
        let r = Respond {
            status: http::StatusCode::OK,
            body: bytes::Bytes::from_static(br#"{"data":{"ok":true}}"#),
            content_type: Some(HeaderValue::from_static("application/json")),
        };
        let resp = answer(Some(&r), Answer::new(Verdict::Accepted, None, None));
        assert_eq!(resp.status(), http::StatusCode::OK);
        assert_eq!(resp.headers()[VERDICT_HEADER], "accepted");
        // Refusals keep the contract's answer.
        let resp = answer(Some(&r), Answer::new(Verdict::Unauthorized, None, None));
        assert_eq!(resp.status(), http::StatusCode::UNAUTHORIZED);
    }
}
