//! The configuration file as written by the user (DESIGN.md §3), before any checking.
//!
//! Every struct denies unknown keys so that a typo is a start-up error, never a silently
//! ignored setting. Values stay strings here; `compile.rs` parses them and names the key
//! when one is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::spec::{
    BodyFormat, ClientAuth, ClientIpHeader, DeliveryMode, HmacAlgorithm, MissingKey, OnUnavailable,
    OrderTimeUnit, SchemaMode, SigEncoding, StoreBackendName,
};

/// The whole file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawConfig {
    /// Listener and request limits.
    #[serde(default)]
    pub(super) server: RawServer,
    /// Where dedup and order state lives.
    #[serde(default)]
    pub(super) store: RawStore,
    /// The operators' listener; absent means none.
    pub(super) admin: Option<RawAdmin>,
    /// How every route's schema file finds the schemas it `$ref`s.
    #[serde(default)]
    pub(super) schemas: RawSchemas,
    /// The webhook routes, `[[route]]` tables.
    #[serde(default, rename = "route")]
    pub(super) routes: Vec<RawRoute>,
}

/// `[server]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawServer {
    /// Address to listen on, `host:port` (default `127.0.0.1:8080`).
    pub(super) listen: Option<String>,
    /// Largest body accepted; above it the answer is 413 (default 1 MiB).
    pub(super) max_body_bytes: Option<u64>,
    /// Deepest JSON nesting accepted; deeper is 400 `invalid_json` (default 128, at most 128).
    pub(super) max_json_depth: Option<usize>,
    /// The whole request must arrive within this duration (default `10s`).
    pub(super) read_timeout: Option<String>,
    /// Peers whose `client_ip_header` is believed (IPs or CIDRs).
    pub(super) trusted_proxies: Option<Vec<String>>,
    /// The one header read from trusted proxies (default `x-forwarded-for`).
    pub(super) client_ip_header: Option<ClientIpHeader>,
    /// Serve `GET /metrics` (default true).
    pub(super) metrics: Option<bool>,
    /// TLS termination; absent means plain HTTP.
    pub(super) tls: Option<RawTls>,
    /// Expect a PROXY v1/v2 header from `trusted_proxies` peers (default false).
    pub(super) proxy_protocol: Option<bool>,
    /// Most open connections; the listener accepts no more (default 10000).
    pub(super) max_connections: Option<usize>,
    /// Most requests in flight; above it 503 `overloaded` (default 4096).
    pub(super) max_in_flight: Option<usize>,
    /// How long a connection may wait for its next request (default: `read_timeout`).
    pub(super) idle_timeout: Option<String>,
    /// Requests served on one connection before it is closed (default 1000, 0 = no limit).
    pub(super) max_requests_per_connection: Option<u64>,
}

/// `[server] tls`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    /// PEM certificate chain of the default certificate.
    pub(super) cert: Option<String>,
    /// PEM private key of the default certificate.
    pub(super) key: Option<String>,
    /// PEM CA certificates that client certificates are verified against.
    pub(super) client_ca: Option<String>,
    /// `optional` or `required` (default `optional` when `client_ca` is set).
    pub(super) client_auth: Option<ClientAuth>,
    /// Certificates chosen by the SNI name the client asks for.
    pub(super) sni: Option<Vec<RawSniCert>>,
}

/// One `sni` entry.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSniCert {
    /// Host names served with this certificate.
    pub(super) names: Option<Vec<String>>,
    /// PEM certificate chain.
    pub(super) cert: Option<String>,
    /// PEM private key.
    pub(super) key: Option<String>,
}

/// `[admin]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawAdmin {
    /// Address to listen on, `host:port`.
    pub(super) listen: String,
    /// Bearer token required on every admin request (secret value); absent means none.
    pub(super) token: Option<String>,
}

/// `[store]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawStore {
    /// `embedded` (default), `memory` or `redis`.
    pub(super) backend: Option<StoreBackendName>,
    /// Directory of the embedded store (default `./hookgate-data`).
    pub(super) path: Option<String>,
    /// Redis URL, for `backend = "redis"`.
    pub(super) url: Option<String>,
    /// Redis: connections kept open (default 4).
    pub(super) pool_size: Option<usize>,
    /// Redis: how long one connection attempt may take (default `2s`).
    pub(super) connect_timeout: Option<String>,
    /// Redis: how long one command may take (default `2s`).
    pub(super) command_timeout: Option<String>,
    /// Redis: replicas that must acknowledge an accept or a commit (`WAIT`; default 0).
    pub(super) wait_replicas: Option<u32>,
    /// Redis: prefix of every key (default `hookgate`), so gateways of unrelated
    /// deployments can share one Redis.
    pub(super) key_prefix: Option<String>,
    /// PEM root certificate(s) for a `rediss://` url, relative to the config file.
    pub(super) tls_ca: Option<String>,
    /// How long a delivered event id is remembered (default `72h`).
    pub(super) dedup_ttl: Option<String>,
    /// What sync routes do while the store cannot decide (default `deliver`).
    pub(super) on_unavailable: Option<OnUnavailable>,
    /// How long an entity's newest delivered time is kept (default: `dedup_ttl`).
    pub(super) order_ttl: Option<String>,
    /// Embedded store: fsync each sync-route commit (default) or defer it up to 1 s.
    pub(super) sync_commits: Option<crate::store::SyncCommits>,
}

/// `[schemas]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawSchemas {
    /// `$ref` URI prefix → local folder (relative to the config file): a `$ref` under the
    /// prefix is read from the folder, never from the network.
    pub(super) ref_map: Option<BTreeMap<String, String>>,
}

/// One `[[route]]` table.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRoute {
    /// Unique name, used in answers, headers, logs and metrics labels.
    pub(super) name: Option<String>,
    /// Exact request path, starting with `/`.
    pub(super) path: Option<String>,
    /// A bundled sender preset; fills the keys this route leaves out.
    pub(super) preset: Option<String>,
    /// Bundled schema name or path to a JSON Schema file; absent means any JSON.
    pub(super) schema: Option<String>,
    /// `enforce` (422 on violation, the default) or `monitor` (forward, count, log).
    pub(super) schema_mode: Option<SchemaMode>,
    /// Draft for a schema file without `$schema`: `"4"`, `"6"`, `"7"`, `"2019-09"` or
    /// `"2020-12"` (the default); a `$schema` in the file wins.
    pub(super) schema_draft: Option<crate::schema::Draft>,
    /// JSON pointer, `header:NAME` or `body-sha256`; absent means no dedup.
    pub(super) dedup_key: Option<String>,
    /// JSON pointer naming the entity whose events are ordered.
    pub(super) order_key: Option<String>,
    /// JSON pointer to the event time (RFC 3339 string or epoch number).
    pub(super) order_time: Option<String>,
    /// How numeric event times are read (default `auto`).
    pub(super) order_time_unit: Option<OrderTimeUnit>,
    /// What to do when a dedup/order pointer is missing from the body (default `reject`).
    pub(super) missing_key: Option<MissingKey>,
    /// Methods accepted (default `["POST"]`).
    pub(super) methods: Option<Vec<String>>,
    /// Source addresses allowed (IPs or CIDRs), or `"file:PATH"` (one per line, `#`
    /// comments; a string is read as a one-element list); absent means any address.
    #[serde(default, deserialize_with = "string_or_list")]
    pub(super) allow_ips: Option<Vec<String>>,
    /// `http://`, `https://` or `file://PATH` (one JSON line per event).
    pub(super) upstream: Option<String>,
    /// Extra CA certificates (PEM file, relative to the config file) trusted for an
    /// `https://` upstream, on top of the system's roots.
    pub(super) upstream_ca: Option<String>,
    /// Require a verified TLS client certificate whose SAN (DNS or URI) or subject CN is
    /// one of these.
    pub(super) client_subjects: Option<Vec<String>>,
    /// `sync` (reverse proxy, the default) or `async`.
    pub(super) delivery: Option<DeliveryMode>,
    /// How long the upstream may take to answer (default `5s`).
    pub(super) upstream_timeout: Option<String>,
    /// Async delivery: how failed attempts are retried.
    pub(super) retry: Option<RawRetry>,
    /// Async delivery: attempts in flight at once (default 16).
    pub(super) concurrency: Option<u32>,
    /// Async delivery: pending events above which the route answers 503 (default 100000).
    pub(super) max_pending: Option<u64>,
    /// Credentials the sender must present (default none).
    pub(super) auth: Option<RawAuth>,
    /// The URL the sender was configured with (`https://host/path`, no query), for auth
    /// schemes that sign the URL (Twilio, Square). Not guessed from `Host`: behind a proxy
    /// the scheme, host and port the gateway sees are not the ones the sender signed.
    pub(super) public_url: Option<String>,
    /// Requests per second and burst, for the route or per client address.
    pub(super) rate_limit: Option<RawRateLimit>,
    /// The answer for events the gateway acknowledges itself (async `accepted`,
    /// `duplicate`, `stale`, a file sink's `forwarded`), for senders that check it.
    pub(super) respond: Option<RawRespond>,
    /// How the body is read: `json` (one document, the default), `ndjson` (one document
    /// per line) or `auto` (one document, else NDJSON when every line parses).
    pub(super) body: Option<BodyFormat>,
    /// Each batch element (array item or NDJSON line) is its own event (default false).
    pub(super) split: Option<bool>,
}

/// `respond = { status = 200, body = '{"ok":true}', content_type = "application/json" }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRespond {
    /// A 2xx status (default 200).
    pub(super) status: Option<u16>,
    /// The body, sent as written (default empty).
    pub(super) body: Option<String>,
    /// `Content-Type` of the body (default `application/json` when a body is given).
    pub(super) content_type: Option<String>,
}

/// `retry = { max_attempts = 15, initial = "1s", max_delay = "10m", max_age = "72h" }`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRetry {
    /// Attempts before the event is dead-lettered (default 15).
    pub(super) max_attempts: Option<u32>,
    /// First backoff ceiling (default `1s`).
    pub(super) initial: Option<String>,
    /// Largest backoff ceiling (default `10m`).
    pub(super) max_delay: Option<String>,
    /// Age after which the event is dead-lettered (default `72h`).
    pub(super) max_age: Option<String>,
}

/// `rate_limit = { per_second = 100, burst = 200, per_address = false }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRateLimit {
    /// Sustained requests per second (at least 1).
    pub(super) per_second: u32,
    /// Requests allowed at once before the rate applies (default: `per_second`).
    pub(super) burst: Option<u32>,
    /// One bucket per client address (IPv6: per /64) instead of one for the route.
    #[serde(default)]
    pub(super) per_address: bool,
}

/// `auth = { type = "...", ... }`.
///
/// `none`, `bearer`, `basic`, `header` and `hmac` are built in; any other `type` names a
/// preset with a signature scheme (`github`, `stripe`, `shopify`, ...), checked when the
/// route is compiled. Without `type`, the route's `preset` names the scheme.
#[derive(Debug, Clone)]
pub(super) enum RawAuth {
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
    /// `Authorization: Bearer <JWT>` checked against a JWKS.
    Jwt {
        /// `file:PATH` or `https://...`.
        jwks: String,
        /// Accepted `iss` values.
        issuer: Option<Vec<String>>,
        /// Accepted `aud` values.
        audience: Option<Vec<String>>,
        /// Accepted `alg` values (default RS256, ES256, EdDSA).
        algorithms: Option<Vec<String>>,
        /// Clock skew allowed on `exp`/`nbf` (default `60s`).
        leeway: Option<String>,
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
pub(super) struct RawSchemeKeys {
    /// Shared secrets (secret values; `whsec_...` for Standard Webhooks); any may match.
    #[serde(default)]
    pub(super) secrets: Vec<String>,
    /// `whpk_<base64>` ed25519 public keys, for schemes that take them.
    #[serde(default)]
    pub(super) public_keys: Vec<String>,
    /// Accepted clock difference, both directions (default: the scheme's, e.g. `5m`).
    pub(super) tolerance: Option<String>,
    /// Replaces the scheme's signature header (for senders whose users name it).
    pub(super) header: Option<String>,
    /// Names the timestamp header, for schemes where it is optional (Grafana).
    pub(super) timestamp_header: Option<String>,
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
    Jwt {
        jwks: String,
        #[serde(default, deserialize_with = "string_or_list")]
        issuer: Option<Vec<String>>,
        #[serde(default, deserialize_with = "string_or_list")]
        audience: Option<Vec<String>>,
        algorithms: Option<Vec<String>>,
        leeway: Option<String>,
    },
}

const BUILT_IN_AUTH: [&str; 6] = ["none", "bearer", "basic", "header", "hmac", "jwt"];

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
                BuiltInAuth::Jwt {
                    jwks,
                    issuer,
                    audience,
                    algorithms,
                    leeway,
                } => RawAuth::Jwt {
                    jwks,
                    issuer,
                    audience,
                    algorithms,
                    leeway,
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
