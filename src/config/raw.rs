//! The configuration file as written by the user (DESIGN.md §3), before any checking.
//!
//! Every struct denies unknown keys so that a typo is a start-up error, never a silently
//! ignored setting. Values stay strings here; `compile.rs` parses them and names the key
//! when one is wrong.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::spec::{
    ClientIpHeader, DeliveryMode, HmacAlgorithm, MissingKey, OrderTimeUnit, SchemaMode,
    SigEncoding, StoreBackendName,
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
    /// How long a delivered event id is remembered (default `72h`).
    pub(super) dedup_ttl: Option<String>,
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
    /// Source addresses allowed (IPs or CIDRs); absent means any address.
    pub(super) allow_ips: Option<Vec<String>>,
    /// `http://`, `https://` or `file://PATH` (one JSON line per event).
    pub(super) upstream: Option<String>,
    /// Extra CA certificates (PEM file, relative to the config file) trusted for an
    /// `https://` upstream, on top of the system's roots.
    pub(super) upstream_ca: Option<String>,
    /// `sync` (reverse proxy, the default) or `async`.
    pub(super) delivery: Option<DeliveryMode>,
    /// How long the upstream may take to answer (default `5s`).
    pub(super) upstream_timeout: Option<String>,
    /// Credentials the sender must present (default none).
    pub(super) auth: Option<RawAuth>,
    /// Requests per second and burst, for the route or per client address.
    pub(super) rate_limit: Option<RawRateLimit>,
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
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
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
    /// Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`.
    StandardWebhooks {
        /// `whsec_<base64>` keys for `v1,` HMAC signatures.
        #[serde(default)]
        secrets: Vec<String>,
        /// `whpk_<base64>` ed25519 public keys for `v1a,` signatures.
        #[serde(default)]
        public_keys: Vec<String>,
        /// Accepted clock difference, both directions (default `5m`).
        tolerance: Option<String>,
    },
    /// GitHub: `X-Hub-Signature-256: sha256=<hex>`. GitHub signs no timestamp.
    Github {
        /// Webhook secrets; any may match.
        secrets: Vec<String>,
    },
    /// Stripe: `Stripe-Signature: t=..,v1=..`.
    Stripe {
        /// Endpoint secrets (`whsec_...`, used as written); any may match.
        secrets: Vec<String>,
        /// Accepted clock difference, both directions (default `5m`).
        tolerance: Option<String>,
    },
    /// Slack: `X-Slack-Signature: v0=<hex>` over `v0:<ts>:<body>`.
    Slack {
        /// Signing secrets; any may match.
        secrets: Vec<String>,
        /// Accepted clock difference, both directions (default `5m`).
        tolerance: Option<String>,
    },
}
