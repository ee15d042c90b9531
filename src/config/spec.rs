//! Compiled configuration as plain data: the choices a user names in the file, with no
//! run-time resources attached.
//!
//! These enums are shared by the file format (`raw`, private to `config`) and by the
//! stages that act on them. They live here, below both, so that config depends on
//! nothing at run time and the pipeline never reaches into the raw file format.

use serde::Deserialize;

/// The store backends a user can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreBackendName {
    /// One crash-safe file under `store.path`.
    Embedded,
    /// Process memory, lost on restart.
    Memory,
    /// A shared Redis server.
    Redis,
}

/// What a schema violation does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SchemaMode {
    /// Answer 422 `invalid_schema`.
    #[default]
    Enforce,
    /// Forward anyway; count and log the violations.
    Monitor,
}

/// How a numeric event time is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OrderTimeUnit {
    /// Numbers above 1e11 are milliseconds, others seconds.
    #[default]
    Auto,
    /// Epoch seconds (fractions allowed).
    S,
    /// Epoch milliseconds.
    Ms,
}

/// What happens when a configured dedup/order pointer is not in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MissingKey {
    /// Answer 422 `invalid_schema` naming the missing pointer.
    #[default]
    Reject,
    /// Deliver without the dedup (or order) check the missing key would drive.
    Pass,
}

/// How accepted events reach the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryMode {
    /// Reverse proxy: the sender gets the upstream's answer.
    #[default]
    Sync,
    /// Durable outbox, answer 202.
    Async,
}

impl DeliveryMode {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryMode::Sync => "sync",
            DeliveryMode::Async => "async",
        }
    }
}

/// What a sync route does while the store cannot decide (`[store] on_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum OnUnavailable {
    /// Forward without the dedup/order check, counted in
    /// `hookgate_unrecorded_deliveries_total` and logged: a lost event is worse than a
    /// duplicate.
    #[default]
    Deliver,
    /// Answer 503 `unavailable` with `Retry-After`.
    Refuse,
}

impl OnUnavailable {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            OnUnavailable::Deliver => "deliver",
            OnUnavailable::Refuse => "refuse",
        }
    }
}

// The HMAC algorithm and MAC encoding are scheme data, shared with the presets.
pub use crate::providers::scheme::{HmacAlgorithm, SigEncoding};

/// The one header that names the client when the TCP peer is a trusted proxy
/// (`[server] client_ip_header`), like nginx's `real_ip_header`.
///
/// Exactly one is read: a proxy appends to (or sets) the header it is configured for and
/// passes every other header through untouched, so any other forwarding header is
/// whatever the sender wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientIpHeader {
    /// `X-Forwarded-For`: a comma-separated chain, walked right to left.
    #[default]
    XForwardedFor,
    /// `Forwarded` (RFC 7239): the `for=` of each element, walked right to left.
    Forwarded,
    /// `X-Real-IP`: one address, set (not appended) by the proxy.
    XRealIp,
}

impl ClientIpHeader {
    /// The header's name.
    pub fn header_name(self) -> http::HeaderName {
        match self {
            ClientIpHeader::XForwardedFor => http::HeaderName::from_static("x-forwarded-for"),
            ClientIpHeader::Forwarded => http::header::FORWARDED,
            ClientIpHeader::XRealIp => http::HeaderName::from_static("x-real-ip"),
        }
    }
}

/// `rate_limit`, checked: the limit a route's buckets are built from. Two specs that are
/// equal describe the same buckets, which is what lets a reload keep them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitSpec {
    /// Sustained requests per second.
    pub per_second: std::num::NonZeroU32,
    /// Requests allowed at once before the rate applies.
    pub burst: std::num::NonZeroU32,
    /// One bucket per client address (IPv6: per /64) instead of one for the route.
    pub per_address: bool,
}

/// Whether a TLS client must present a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ClientAuth {
    /// A certificate is verified when presented; routes with `client_subjects` require one.
    Optional,
    /// The handshake fails without a verified certificate.
    Required,
}

/// How a route reads its body (`body`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum BodyFormat {
    /// One JSON document.
    #[default]
    Json,
    /// One JSON document per line (blank lines skipped): each line is a batch element.
    Ndjson,
    /// One JSON document (a top-level array is a batch of its elements), else NDJSON when
    /// every line parses.
    Auto,
}

impl BodyFormat {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            BodyFormat::Json => "json",
            BodyFormat::Ndjson => "ndjson",
            BodyFormat::Auto => "auto",
        }
    }
}

/// `respond`, checked: the answer the gateway gives instead of its JSON body when it
/// acknowledges an event itself (async `accepted`, `duplicate`, `stale`, a file sink's
/// `forwarded`, a whole batch done). The verdict header is still set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Respond {
    /// A 2xx status.
    pub status: http::StatusCode,
    /// The body, as configured.
    pub body: bytes::Bytes,
    /// Its `Content-Type`, if any.
    pub content_type: Option<http::HeaderValue>,
}

/// Whether the embedded store fsyncs a sync route's commit before `commit` returns
/// (`[store] sync_commits`). Async accepts are fsynced before their 202 either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SyncCommits {
    /// Every group commit is fsynced before its waiters are answered: nothing a
    /// sync route committed is lost to a crash. The default.
    #[default]
    Fsync,
    /// A group commit of sync-route commits alone is written without fsync (visible
    /// to every later `reserve` at once); the writer fsyncs within a second, or
    /// sooner with the next accept, purge or readiness probe. A crash of the process
    /// or the machine loses the commits of that last second: their ids can be
    /// forwarded a second time (a sender's retry is not seen as a duplicate), and an
    /// entity's watermark can fall back, so an event older than one already
    /// forwarded can be forwarded after the restart. No event is lost.
    Deferred,
}

impl SyncCommits {
    /// The name used in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncCommits::Fsync => "fsync",
            SyncCommits::Deferred => "deferred",
        }
    }
}
