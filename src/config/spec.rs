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

/// The hash behind an HMAC signature (also the `algorithm` of an `hmac` auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256 (32-byte MAC).
    Sha256,
    /// HMAC-SHA1 (20-byte MAC). Legacy senders only.
    Sha1,
    /// HMAC-SHA512 (64-byte MAC).
    Sha512,
}

impl HmacAlgorithm {
    /// Length of this algorithm's MAC in bytes (before hex/base64 encoding).
    pub const fn output_len(self) -> usize {
        match self {
            HmacAlgorithm::Sha1 => 20,
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
        }
    }
}

/// How a MAC is written in its header (also the `encoding` of an `hmac` auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigEncoding {
    /// Hexadecimal; upper, lower or mixed case is accepted.
    Hex,
    /// Standard base64 alphabet with `=` padding (RFC 4648 §4).
    Base64,
}

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
