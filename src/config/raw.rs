//! The configuration file as written by the user (DESIGN.md §3), before any checking.
//!
//! Every struct denies unknown keys so that a typo is a start-up error, never a silently
//! ignored setting. Values stay strings here; `compile.rs` parses them and names the key
//! when one is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::providers::scheme::{HmacAlgorithm, SigEncoding};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Listener and request limits.
    #[serde(default)]
    pub server: RawServer,
    /// Where dedup and order state lives.
    #[serde(default)]
    pub store: RawStore,
    /// The operators' listener; absent means none.
    pub admin: Option<RawAdmin>,
    /// How every route's schema file finds the schemas it `$ref`s.
    #[serde(default)]
    pub schemas: RawSchemas,
    /// The webhook routes, `[[route]]` tables.
    #[serde(default, rename = "route")]
    pub routes: Vec<RawRoute>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    /// Address to listen on, `host:port` (default `127.0.0.1:8080`).
    pub listen: Option<String>,
    /// Largest body accepted; above it the answer is 413 (default 1 MiB).
    pub max_body_bytes: Option<u64>,
    /// Deepest JSON nesting accepted; deeper is 400 `invalid_json` (default 128, at most 128).
    pub max_json_depth: Option<usize>,
    /// The whole request must arrive within this duration (default `10s`).
    pub read_timeout: Option<String>,
    /// Peers whose `client_ip_header` is believed (IPs or CIDRs).
    pub trusted_proxies: Option<Vec<String>>,
    /// The one header read from trusted proxies (default `x-forwarded-for`).
    pub client_ip_header: Option<crate::pipeline::allowlist::ClientIpHeader>,
    /// Serve `GET /metrics` (default true).
    pub metrics: Option<bool>,
    /// TLS termination; absent means plain HTTP.
    pub tls: Option<RawTls>,
    /// Expect a PROXY v1/v2 header from `trusted_proxies` peers (default false).
    pub proxy_protocol: Option<bool>,
    /// Most open connections; the listener accepts no more (default 10000).
    pub max_connections: Option<usize>,
    /// Most requests in flight; above it 503 `overloaded` (default 4096).
    pub max_in_flight: Option<usize>,
}

/// `[server] tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTls {
    /// PEM certificate chain of the default certificate.
    pub cert: Option<String>,
    /// PEM private key of the default certificate.
    pub key: Option<String>,
    /// PEM CA certificates that client certificates are verified against.
    pub client_ca: Option<String>,
    /// `optional` or `required` (default `optional` when `client_ca` is set).
    pub client_auth: Option<ClientAuth>,
    /// Certificates chosen by the SNI name the client asks for.
    pub sni: Option<Vec<RawSniCert>>,
}

/// One `sni` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSniCert {
    /// Host names served with this certificate.
    pub names: Option<Vec<String>>,
    /// PEM certificate chain.
    pub cert: Option<String>,
    /// PEM private key.
    pub key: Option<String>,
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

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAdmin {
    /// Address to listen on, `host:port`.
    pub listen: String,
    /// Bearer token required on every admin request (secret value); absent means none.
    pub token: Option<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStore {
    /// `embedded` (default), `memory` or `redis`.
    pub backend: Option<StoreBackendName>,
    /// Directory of the embedded store (default `./hookgate-data`).
    pub path: Option<String>,
    /// Redis URL, for `backend = "redis"`.
    pub url: Option<String>,
    /// How long a delivered event id is remembered (default `72h`).
    pub dedup_ttl: Option<String>,
}

/// `[schemas]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemas {
    /// `$ref` URI prefix → local folder (relative to the config file): a `$ref` under the
    /// prefix is read from the folder, never from the network.
    pub ref_map: Option<BTreeMap<String, String>>,
}

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

/// One `[[route]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// Unique name, used in answers, headers, logs and metrics labels.
    pub name: Option<String>,
    /// Exact request path, starting with `/`.
    pub path: Option<String>,
    /// A bundled sender preset; fills the keys this route leaves out.
    pub preset: Option<String>,
    /// Bundled schema name or path to a JSON Schema file; absent means any JSON.
    pub schema: Option<String>,
    /// `enforce` (422 on violation, the default) or `monitor` (forward, count, log).
    pub schema_mode: Option<SchemaMode>,
    /// Draft for a schema file without `$schema`: `"4"`, `"6"`, `"7"`, `"2019-09"` or
    /// `"2020-12"` (the default); a `$schema` in the file wins.
    pub schema_draft: Option<crate::schema::Draft>,
    /// JSON pointer, `header:NAME` or `body-sha256`; absent means no dedup.
    pub dedup_key: Option<String>,
    /// JSON pointer naming the entity whose events are ordered.
    pub order_key: Option<String>,
    /// JSON pointer to the event time (RFC 3339 string or epoch number).
    pub order_time: Option<String>,
    /// How numeric event times are read (default `auto`).
    pub order_time_unit: Option<OrderTimeUnit>,
    /// What to do when a dedup/order pointer is missing from the body (default `reject`).
    pub missing_key: Option<MissingKey>,
    /// Methods accepted (default `["POST"]`).
    pub methods: Option<Vec<String>>,
    /// Source addresses allowed (IPs or CIDRs), or `"file:PATH"` (one per line, `#`
    /// comments; a string is read as a one-element list); absent means any address.
    #[serde(default, deserialize_with = "string_or_list")]
    pub allow_ips: Option<Vec<String>>,
    /// `http://`, `https://` or `file://PATH` (one JSON line per event).
    pub upstream: Option<String>,
    /// Extra CA certificates (PEM file, relative to the config file) trusted for an
    /// `https://` upstream, on top of the system's roots.
    pub upstream_ca: Option<String>,
    /// Require a verified TLS client certificate whose SAN (DNS or URI) or subject CN is
    /// one of these.
    pub client_subjects: Option<Vec<String>>,
    /// `sync` (reverse proxy, the default) or `async`.
    pub delivery: Option<DeliveryMode>,
    /// How long the upstream may take to answer (default `5s`).
    pub upstream_timeout: Option<String>,
    /// Async delivery: how failed attempts are retried.
    pub retry: Option<RawRetry>,
    /// Async delivery: attempts in flight at once (default 16).
    pub concurrency: Option<u32>,
    /// Async delivery: pending events above which the route answers 503 (default 100000).
    pub max_pending: Option<u64>,
    /// Credentials the sender must present (default none).
    pub auth: Option<RawAuth>,
    /// The URL the sender was configured with (`https://host/path`, no query), for auth
    /// schemes that sign the URL (Twilio, Square). Not guessed from `Host`: behind a proxy
    /// the scheme, host and port the gateway sees are not the ones the sender signed.
    pub public_url: Option<String>,
    /// Requests per second and burst, for the route or per client address.
    pub rate_limit: Option<RawRateLimit>,
}

/// `retry = { max_attempts = 15, initial = "1s", max_delay = "10m", max_age = "72h" }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Attempts before the event is dead-lettered (default 15).
    pub max_attempts: Option<u32>,
    /// First backoff ceiling (default `1s`).
    pub initial: Option<String>,
    /// Largest backoff ceiling (default `10m`).
    pub max_delay: Option<String>,
    /// Age after which the event is dead-lettered (default `72h`).
    pub max_age: Option<String>,
}

/// `rate_limit = { per_second = 100, burst = 200, per_address = false }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRateLimit {
    /// Sustained requests per second (at least 1).
    pub per_second: u32,
    /// Requests allowed at once before the rate applies (default: `per_second`).
    pub burst: Option<u32>,
    /// One bucket per client address (IPv6: per /64) instead of one for the route.
    #[serde(default)]
    pub per_address: bool,
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

/// `auth = { type = "...", ... }`.
///
/// `none`, `bearer`, `basic`, `header` and `hmac` are built in; any other `type` names a
/// preset with a signature scheme (`github`, `stripe`, `shopify`, ...), checked when the
/// route is compiled. Without `type`, the route's `preset` names the scheme.
#[derive(Debug, Clone)]
pub enum RawAuth {
    /// No credentials (the default).
    None,
    /// `Authorization: Bearer <token>`, any listed token.
    Bearer {
        /// Accepted tokens (secret values).
        tokens: Vec<String>,
    },
    /// `Authorization: Basic ...`.
    Basic {
        /// user → password (secret value).
        users: BTreeMap<String, String>,
    },
    /// Custom headers, every one required with one of its accepted values.
    Header {
        /// header name → accepted values (secret values).
        headers: BTreeMap<String, Vec<String>>,
    },
    /// HMAC of the raw body in one header.
    Hmac {
        /// The header carrying the MAC.
        header: String,
        /// `sha256` (default), `sha1` or `sha512`.
        algorithm: Option<HmacAlgorithm>,
        /// `hex` (default) or `base64`.
        encoding: Option<SigEncoding>,
        /// Text before the MAC, e.g. `sha256=`.
        prefix: Option<String>,
        /// Keys (secret values, used as bytes); any may match.
        secrets: Vec<String>,
    },
    /// A preset's signature scheme (`standard-webhooks`, `github`, `stripe`, `slack`,
    /// `shopify`, `twilio`, ...; `hookgate presets` lists them).
    Scheme {
        /// The preset name, as written in `type`; `None` when `type` is left out, which
        /// means the route's `preset` (filled in by `providers::apply`).
        scheme: Option<String>,
        /// The scheme's keys.
        keys: RawSchemeKeys,
    },
}

/// The keys of `auth` for a preset's signature scheme.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSchemeKeys {
    /// Shared secrets (secret values; `whsec_...` for Standard Webhooks); any may match.
    #[serde(default)]
    pub secrets: Vec<String>,
    /// `whpk_<base64>` ed25519 public keys, for schemes that take them.
    #[serde(default)]
    pub public_keys: Vec<String>,
    /// Accepted clock difference, both directions (default: the scheme's, e.g. `5m`).
    pub tolerance: Option<String>,
    /// Replaces the scheme's signature header (for senders whose users name it).
    pub header: Option<String>,
    /// Names the timestamp header, for schemes where it is optional (Grafana).
    pub timestamp_header: Option<String>,
}

/// The built-in auth types, as written.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
enum BuiltInAuth {
    None,
    Bearer {
        tokens: Vec<String>,
    },
    Basic {
        users: BTreeMap<String, String>,
    },
    Header {
        headers: BTreeMap<String, Vec<String>>,
    },
    Hmac {
        header: String,
        algorithm: Option<HmacAlgorithm>,
        encoding: Option<SigEncoding>,
        prefix: Option<String>,
        secrets: Vec<String>,
    },
}

const BUILT_IN_AUTH: [&str; 5] = ["none", "bearer", "basic", "header", "hmac"];

impl<'de> Deserialize<'de> for RawAuth {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;
        // The scheme types are data (the bundled presets), so `type` is read first and
        // the rest of the table is then read as a built-in type or as scheme keys.
        let mut table = toml::Table::deserialize(d)?;
        let kind = match table.get("type") {
            Some(toml::Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(D::Error::custom("`type` must be a string")),
            None => None,
        };
        if kind.as_deref().is_some_and(|k| BUILT_IN_AUTH.contains(&k)) {
            let auth = BuiltInAuth::deserialize(toml::Value::Table(table))
                .map_err(|e| D::Error::custom(e.message()))?;
            return Ok(match auth {
                BuiltInAuth::None => RawAuth::None,
                BuiltInAuth::Bearer { tokens } => RawAuth::Bearer { tokens },
                BuiltInAuth::Basic { users } => RawAuth::Basic { users },
                BuiltInAuth::Header { headers } => RawAuth::Header { headers },
                BuiltInAuth::Hmac {
                    header,
                    algorithm,
                    encoding,
                    prefix,
                    secrets,
                } => RawAuth::Hmac {
                    header,
                    algorithm,
                    encoding,
                    prefix,
                    secrets,
                },
            });
        }
        table.remove("type");
        let keys = RawSchemeKeys::deserialize(toml::Value::Table(table))
            .map_err(|e| D::Error::custom(e.message()))?;
        Ok(RawAuth::Scheme { scheme: kind, keys })
    }
}

/// A list of strings, or one string standing for a one-element list.
fn string_or_list<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(Some(match OneOrMany::deserialize(d)? {
        OneOrMany::One(s) => vec![s],
        OneOrMany::Many(v) => v,
    }))
}
