//! Delivery: getting an accepted event to the route's upstream.
//!
//! Two kinds of target exist. An `http(s)://` upstream gets the sender's request as a
//! reverse proxy would send it: same method, byte-identical body, the sender's headers
//! minus hop-by-hop and consumed credential headers, plus the forwarding headers of
//! DESIGN.md §6. A `file://PATH` upstream gets one JSON line per event, appended and
//! fsynced before the answer, so a 200 from a file route means the line is on disk.
//!
//! The HTTP client (`client`) is one pooled HTTP/1.1 hyper-util client shared by every
//! route (a route with `upstream_ca` has its own); redirects are not followed (a proxy
//! passes a 3xx back, it does not chase it), and an answer is never decompressed: the
//! upstream's body and its `Content-Encoding` go back to the sender together, as the
//! sender's `Accept-Encoding` (forwarded) asked for. An answer body over
//! [`MAX_UPSTREAM_BODY`] (or cut off, or late) is dropped, its status passed back with
//! `X-Hookgate-Body-Dropped` naming why ([`BodyDropped`]).
//!
//! # Async delivery (`delivery = "async"`): design
//!
//! **Invariant: an event answered 202 `accepted` is on disk and is delivered or
//! dead-lettered, never silently dropped.**
//!
//! *Accept* (`outbox::dispatch_async`, called at the one point where a sync route
//! would deliver). After every check up to the store's reservation, the event's
//! record is written to the outbox table in the SAME redb write transaction as the
//! reservation's dedup mark and entity watermark; that transaction is part of the
//! embedded store's group commit (`Durability::Immediate`, fsync) and 202 is sent only
//! after it returned. From then on a copy is 200 `duplicate` and an older event of the
//! entity 200 `stale`. Above `max_pending` pending events, or when the store cannot
//! write, the answer is 503 `unavailable` with `Retry-After` and nothing is marked.
//!
//! *Record format* (`outbox::Record`, table `outbox_v1`, key `(route, seq)`): JSON
//! `{"v":1, event_id, entity, event_time, method, query, headers: [[name, base64]],
//! body: base64, client, received_ms, attempts, last_status, last_error}`. `v` is the
//! format version: a reader refuses any other (such a record is dead-lettered as it
//! is, never misread). `seq` is assigned by the store's single writer in commit order,
//! so "every seq above N" finds every record committed after one the reader saw.
//! Cost: about 1.33 × body + 1.33 × forwarded headers + ~250 bytes, plus redb's page
//! overhead (see README).
//!
//! *States*: `pending` (in `outbox_v1`; attempts 0..max) → delivered (row removed) |
//! `dead` (moved to `dead_letters_v1` with its last status/error, after the last
//! attempt or past `max_age`) → replayed (back to `outbox_v1` under a new seq, attempts
//! reset) | dropped (row removed).
//!
//! *Delivery* (`worker`): one worker per async route, at most `concurrency` attempts
//! at once; per entity only the oldest pending record is eligible (strict FIFO; a
//! dead-lettered one leaves the outbox and so stops blocking); records without an
//! entity go in parallel. Each failure is settled by `retry::next_step` (exponential
//! backoff with full jitter, `Retry-After` as a floor) and its attempt count written
//! back; every settlement is a transaction in the same group commit.
//!
//! *Recovery*: at start-up each worker scans its route's outbox from the first seq and
//! retries everything at once (the backoff pause is not persisted, only the attempt
//! count). Records of a route no longer configured at start-up stay in the file
//! untouched. A reload that removes a route or makes it sync drains it instead: its
//! worker delivers what is pending, then stops (`worker::Workers`). While the store is
//! down (a failed write, reopening), accepts are refused with 503 `unavailable`, scans
//! and settlements fail and are retried a second later; an attempt whose settlement
//! failed is delivered again (at least once).
//!
//! *What a crash can cause*: before the accept transaction commits, nothing (the
//! sender got no 202 and retries). After it, the event is delivered later. Between an
//! upstream 2xx and the removal of the record, the event is delivered once more after
//! restart, with the same `X-Hookgate-Event-Id` for the upstream to dedup on (at least
//! once, never zero times). An attempt count noted after a failure may be lost, so
//! an event may get an extra attempt.
//!
//! *Memory store*: same behaviour, all lost on restart (`check` and the start-up log
//! warn).

mod client;
mod file;
mod forward;
pub mod outbox;
pub mod retry;
pub mod target;
pub use target::{HttpUpstream, Target};
pub mod worker;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, Method, StatusCode};

pub use file::FileSink;
pub use forward::{
    CLIENT_IDENTITY, HOP_BY_HOP, PROXY_VIEW, Peer, append_via, forward_headers, is_looping,
    via_pseudonym,
};

/// One event on its way out.
#[derive(Debug)]
pub struct Outbound<'a> {
    /// The route's name.
    pub route: &'a str,
    /// The sender's method.
    pub method: Method,
    /// The headers to send (already filtered by [`forward_headers`]).
    pub headers: HeaderMap,
    /// The raw body as received.
    pub body: Bytes,
    /// The sender's query string, appended to the upstream URL.
    pub query: Option<&'a str>,
    /// The event id, when the route extracts one.
    pub event_id: Option<&'a str>,
    /// The client address.
    pub client: &'a str,
    /// How long the upstream may take.
    pub timeout: Duration,
}

/// What the upstream answered.
#[derive(Debug)]
pub struct Delivered {
    /// Its status.
    pub status: StatusCode,
    /// Its end-to-end headers (hop-by-hop, `Content-Length` and `X-Hookgate-*` removed),
    /// passed back to the sender with the body as it came.
    pub headers: HeaderMap,
    /// Its body (empty when it was dropped).
    pub body: Bytes,
    /// Why the body was dropped, if it was: the sender gets the status and headers
    /// with an empty body and `X-Hookgate-Body-Dropped: <reason>`.
    pub body_dropped: Option<BodyDropped>,
}

/// Why an upstream's answer body was not passed back. Its status was: once the
/// upstream has answered, the delivery outcome is known (a 2xx has been recorded as
/// delivered), so the gateway neither turns it into an error nor invents a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyDropped {
    /// Larger than [`MAX_UPSTREAM_BODY`] (declared or as read).
    TooLarge,
    /// Not complete within `upstream_timeout` (counted from the request's start).
    Timeout,
    /// The upstream broke off while sending it.
    Incomplete,
}

impl BodyDropped {
    /// The reason as the `X-Hookgate-Body-Dropped` value and log field.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyDropped::TooLarge => "too_large",
            BodyDropped::Timeout => "timeout",
            BodyDropped::Incomplete => "incomplete",
        }
    }
}

/// The answer header that says the upstream's body was dropped, and why.
pub const BODY_DROPPED_HEADER: &str = "x-hookgate-body-dropped";

/// Why an event could not be delivered (no answer came back). An upstream that answered
/// is a [`Delivered`] whatever its status: sync delivery passes it back to the sender,
/// and async delivery retries every non-2xx (see `retry`).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    /// Connection refused, reset, DNS failure, TLS failure...
    #[error("upstream unreachable: {0}")]
    Connect(String),
    /// No answer within `upstream_timeout`.
    #[error("upstream did not answer within {0:?}")]
    Timeout(Duration),
    /// The sink file could not be written.
    #[error("cannot write to the file sink: {0}")]
    File(String),
    /// Delivery could not be prepared (the HTTP client could not be built): a host
    /// problem, not the upstream's.
    #[error("cannot prepare delivery: {0}")]
    Setup(String),
}

impl DeliveryError {
    /// The `hookgate_deliveries_total` outcome of this failure.
    pub fn outcome(&self) -> crate::telemetry::DeliveryOutcome {
        use crate::telemetry::DeliveryOutcome;
        match self {
            DeliveryError::Connect(_) | DeliveryError::Setup(_) => DeliveryOutcome::unreachable,
            DeliveryError::Timeout(_) => DeliveryOutcome::timeout,
            DeliveryError::File(_) => DeliveryOutcome::file_error,
        }
    }
}

/// Largest upstream answer body passed back to the sender; a larger one is dropped
/// (the status still goes back, so the delivery outcome is not lost, with
/// [`BODY_DROPPED_HEADER`]).
pub const MAX_UPSTREAM_BODY: usize = 1024 * 1024;

/// Sends events to their targets. Built once per configuration.
#[derive(Debug, Clone)]
pub struct Deliverer {
    client: client::HttpClient,
    /// Clients of routes with an `upstream_ca`, by route name.
    route_clients: Arc<HashMap<String, client::HttpClient>>,
    files: Arc<HashMap<PathBuf, Arc<FileSink>>>,
}

impl Deliverer {
    /// Builds the shared HTTP client and opens every file sink the targets name.
    pub fn new<'t>(targets: impl Iterator<Item = &'t Target>) -> Result<Self, DeliveryError> {
        // The forwarding client names ring itself; the process default is for reqwest
        // (JWKS fetches), built without a bundled provider. A second call finds it
        // installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = client::build(Vec::new())?;
        let mut files = HashMap::new();
        for t in targets {
            if let Target::File(path) = t
                && !files.contains_key(path)
            {
                files.insert(path.clone(), Arc::new(FileSink::open(path)?));
            }
        }
        Ok(Deliverer {
            client,
            route_clients: Arc::new(HashMap::new()),
            files: Arc::new(files),
        })
    }

    /// Gives `route` a client of its own that also trusts `cas` (`upstream_ca`).
    pub fn with_route_ca(
        mut self,
        route: &str,
        cas: &[rustls::pki_types::CertificateDer<'static>],
    ) -> Result<Self, DeliveryError> {
        let client = client::build(cas.to_vec())?;
        Arc::make_mut(&mut self.route_clients).insert(route.to_owned(), client);
        Ok(self)
    }

    /// Delivers one event to `target`.
    pub async fn deliver(
        &self,
        target: &Target,
        out: Outbound<'_>,
    ) -> Result<Delivered, DeliveryError> {
        match target {
            Target::Http(upstream) => {
                let client = self.route_clients.get(out.route).unwrap_or(&self.client);
                forward::send(client, upstream, out).await
            }
            Target::File(path) => {
                let sink = self
                    .files
                    .get(path)
                    .ok_or_else(|| DeliveryError::File(format!("{} not opened", path.display())))?;
                sink.append(&out).await?;
                Ok(Delivered {
                    status: StatusCode::OK,
                    headers: HeaderMap::new(),
                    body: Bytes::new(),
                    body_dropped: None,
                })
            }
        }
    }

    /// The file sink at `path`, if one is open (for tests and the CLI).
    pub fn file_sink(&self, path: &Path) -> Option<&Arc<FileSink>> {
        self.files.get(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_targets() {
        assert!(matches!(
            Target::parse("http://127.0.0.1:9000/x"),
            Ok(Target::Http(_))
        ));
        assert!(matches!(
            Target::parse("https://example.com"),
            Ok(Target::Http(_))
        ));
        assert_eq!(
            Target::parse("file://./data/out.jsonl"),
            Ok(Target::File(PathBuf::from("./data/out.jsonl")))
        );
        assert_eq!(
            Target::parse("file:///var/out.jsonl"),
            Ok(Target::File(PathBuf::from("/var/out.jsonl")))
        );
        assert!(Target::parse("ftp://x").is_err());
        assert!(Target::parse("not a url").is_err());
        assert!(Target::parse("file://").is_err());
        let with_creds = Target::parse("https://user:s3cret@example.com/x").expect("url");
        assert_eq!(with_creds.to_string(), "https://***@example.com/x");
        assert!(!format!("{with_creds:?}").contains("s3cret"));
    }
}
