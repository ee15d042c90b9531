//! The verdicts of DESIGN.md §4 and the one table that maps them to HTTP.
//!
//! Every answer the gateway gives carries exactly one [`Verdict`] in the
//! `X-Hookgate-Verdict` header. Keeping the name and the status in one `match` means the
//! contract table and the code cannot drift apart.

use http::StatusCode;

/// Name of the header that carries the verdict on every answer.
pub const VERDICT_HEADER: &str = "x-hookgate-verdict";

/// The outcome of one request, as named in the contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Verdict {
    /// No route for the path (404).
    NoRoute,
    /// Method not allowed on the route (405).
    MethodNotAllowed,
    /// Source address not in `allow_ips` (403).
    ForbiddenIp,
    /// Rate limit exhausted (429).
    RateLimited,
    /// Body larger than `max_body_bytes` (413).
    TooLarge,
    /// Body not received within `read_timeout` (408).
    Timeout,
    /// Credentials or signature missing, wrong, or outside the tolerance (401).
    Unauthorized,
    /// Body is not UTF-8 JSON or nests too deep (400).
    InvalidJson,
    /// Body violates the route's schema (422).
    InvalidSchema,
    /// Event id already delivered (200, dropped).
    Duplicate,
    /// The same event id (or entity) is being delivered right now (409).
    InFlight,
    /// Event older than the newest delivered for its entity (200, dropped).
    Stale,
    /// Delivered synchronously; the upstream's status is passed back.
    Forwarded,
    /// Upstream unreachable (502) or timed out (504).
    UpstreamError,
    /// Stored durably in the outbox (202).
    Accepted,
    /// The request already passed through this gateway: its own `Via` token (508).
    LoopDetected,
    /// The store is unreachable: the sender should retry (503).
    Unavailable,
    /// A bug in the gateway (500).
    Internal,
    /// Not acceptable HTTP/1.1: malformed, no or two `Host` headers, a body cut short
    /// (400; 414 and 431 for hyper's own limits). DESIGN.md §4 names no verdict for it.
    BadRequest,
    /// A `Content-Encoding` the gateway does not decode (415).
    UnsupportedEncoding,
    /// More than `max_in_flight` requests in flight (503).
    Overloaded,
    /// A provider's endpoint handshake, verified and answered by the gateway (200).
    Handshake,
}

impl Verdict {
    /// Every verdict, for metrics initialisation and exhaustive tests.
    pub const ALL: [Verdict; 22] = [
        Verdict::NoRoute,
        Verdict::MethodNotAllowed,
        Verdict::ForbiddenIp,
        Verdict::RateLimited,
        Verdict::TooLarge,
        Verdict::Timeout,
        Verdict::Unauthorized,
        Verdict::InvalidJson,
        Verdict::InvalidSchema,
        Verdict::Duplicate,
        Verdict::InFlight,
        Verdict::Stale,
        Verdict::Forwarded,
        Verdict::UpstreamError,
        Verdict::Accepted,
        Verdict::LoopDetected,
        Verdict::Unavailable,
        Verdict::Internal,
        Verdict::BadRequest,
        Verdict::UnsupportedEncoding,
        Verdict::Overloaded,
        Verdict::Handshake,
    ];

    /// The stable name used in the header, the JSON body and metrics labels.
    pub fn as_str(self) -> &'static str {
        self.row().0
    }

    /// The HTTP status of the gateway's own answer. `Forwarded` passes the upstream's
    /// status instead; `UpstreamError` is 502 here and 504 for a timeout.
    pub fn status(self) -> StatusCode {
        self.row().1
    }

    /// The contract table (DESIGN.md §4), in one place.
    fn row(self) -> (&'static str, StatusCode) {
        match self {
            Verdict::NoRoute => ("no_route", StatusCode::NOT_FOUND),
            Verdict::MethodNotAllowed => ("method_not_allowed", StatusCode::METHOD_NOT_ALLOWED),
            Verdict::ForbiddenIp => ("forbidden_ip", StatusCode::FORBIDDEN),
            Verdict::RateLimited => ("rate_limited", StatusCode::TOO_MANY_REQUESTS),
            Verdict::TooLarge => ("too_large", StatusCode::PAYLOAD_TOO_LARGE),
            Verdict::Timeout => ("timeout", StatusCode::REQUEST_TIMEOUT),
            Verdict::Unauthorized => ("unauthorized", StatusCode::UNAUTHORIZED),
            Verdict::InvalidJson => ("invalid_json", StatusCode::BAD_REQUEST),
            Verdict::InvalidSchema => ("invalid_schema", StatusCode::UNPROCESSABLE_ENTITY),
            Verdict::Duplicate => ("duplicate", StatusCode::OK),
            Verdict::InFlight => ("in_flight", StatusCode::CONFLICT),
            Verdict::Stale => ("stale", StatusCode::OK),
            Verdict::Forwarded => ("forwarded", StatusCode::OK),
            Verdict::UpstreamError => ("upstream_error", StatusCode::BAD_GATEWAY),
            Verdict::Accepted => ("accepted", StatusCode::ACCEPTED),
            Verdict::LoopDetected => ("loop_detected", StatusCode::LOOP_DETECTED),
            Verdict::Unavailable => ("unavailable", StatusCode::SERVICE_UNAVAILABLE),
            Verdict::Internal => ("internal", StatusCode::INTERNAL_SERVER_ERROR),
            Verdict::BadRequest => ("bad_request", StatusCode::BAD_REQUEST),
            Verdict::UnsupportedEncoding => {
                ("unsupported_encoding", StatusCode::UNSUPPORTED_MEDIA_TYPE)
            }
            Verdict::Overloaded => ("overloaded", StatusCode::SERVICE_UNAVAILABLE),
            Verdict::Handshake => ("handshake", StatusCode::OK),
        }
    }
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_snake_case() {
        let mut seen = std::collections::HashSet::new();
        for v in Verdict::ALL {
            assert!(seen.insert(v.as_str()), "duplicate name {v}");
            assert!(
                v.as_str()
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }

    #[test]
    fn acknowledged_drops_are_200() {
        assert_eq!(Verdict::Duplicate.status(), StatusCode::OK);
        assert_eq!(Verdict::Stale.status(), StatusCode::OK);
    }
}
