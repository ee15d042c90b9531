//! Turns the raw TOML into [`Settings`]: parsed addresses and CIDRs, resolved secrets,
//! checked URLs and durations. Every error names the key it comes from.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http::Method;
use ipnet::IpNet;

use super::raw::{self, RawConfig};
use super::spec::{DeliveryMode, OnUnavailable, RateLimitSpec, SchemaMode, StoreBackendName};
use crate::delivery::Target;
use crate::pipeline::allowlist::{self, Allowlist};
use crate::pipeline::auth::Auth;
use crate::pipeline::extract::{self, DedupKey, EventKeys, OrderSpec};
use crate::schema::Schema;

/// A compile error: the key path and the reason.
pub(super) type KeyError = (String, String);

/// The checked configuration the gateway runs on.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `[server]`.
    pub server: ServerSettings,
    /// `[store]`.
    pub store: StoreSettings,
    /// The routes, in file order.
    pub routes: Vec<Arc<Route>>,
    /// `[admin]`, if configured.
    pub admin: Option<AdminSettings>,
}

/// `[admin]`, checked.
#[derive(Debug, Clone)]
pub struct AdminSettings {
    /// Where the admin listener listens.
    pub listen: SocketAddr,
    /// The bearer token every admin request must carry, if set.
    pub token: Option<crate::secret::Secret>,
}

impl Settings {
    /// Every `allow_ips` file of every route, sorted, without repeats.
    pub fn allow_files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self
            .routes
            .iter()
            .flat_map(|r| r.allow_files.iter().cloned())
            .collect();
        files.sort();
        files.dedup();
        files
    }

    /// Settings that work but are probably a mistake, one sentence each, for `check` and
    /// the start-up log.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self
            .routes
            .iter()
            .filter(|r| {
                r.delivery == DeliveryMode::Async && self.store.backend == StoreBackendName::Memory
            })
            .map(|r| {
                format!(
                    "route {}: delivery = \"async\" with store.backend = \"memory\": accepted \
                     events not yet delivered are LOST on restart",
                    r.name
                )
            })
            .collect();
        warnings.extend(self.proxy_warnings());
        warnings
    }

    fn proxy_warnings(&self) -> Vec<String> {
        self.server
            .trusted_proxies
            .iter()
            .filter(|n| n.prefix_len() == 0)
            .map(|n| {
                format!(
                    "server.trusted_proxies: {n} trusts every peer, so any sender can name its own \
                     client address in a header and pass allow_ips and per-address rate limits; \
                     list only your proxies' addresses"
                )
            })
            .collect()
    }
}

/// `[server]`, checked.
#[derive(Debug, Clone)]
pub struct ServerSettings {
    /// Where to listen.
    pub listen: SocketAddr,
    /// Largest body accepted.
    pub max_body_bytes: u64,
    /// Deepest JSON nesting accepted.
    pub max_json_depth: usize,
    /// Deadline for the whole request to arrive.
    pub read_timeout: Duration,
    /// Peers whose forwarding headers are believed.
    pub trusted_proxies: Vec<IpNet>,
    /// The one header that names the client when the peer is a trusted proxy.
    pub client_ip_header: super::spec::ClientIpHeader,
    /// Whether `GET /metrics` is served.
    pub metrics: bool,
    /// TLS termination; `None` is plain HTTP.
    pub tls: Option<TlsSettings>,
    /// Whether `trusted_proxies` peers open with a PROXY header.
    pub proxy_protocol: bool,
    /// Most open connections.
    pub max_connections: usize,
    /// Most requests in flight.
    pub max_in_flight: usize,
    /// How long a connection may wait for its next request before it is closed (on
    /// HTTP/1.1 `read_timeout` bounds that wait too).
    pub idle_timeout: Duration,
    /// Requests served on one connection before it is closed gracefully; `None` is no
    /// limit.
    pub max_requests_per_connection: Option<u64>,
}

/// `[server] tls`, checked: file paths resolved against the config file's directory.
/// Plain data; the files are read by `server::tls`, which can read them again on reload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The default certificate (served when no `sni` entry matches).
    pub default: CertPaths,
    /// Certificates chosen by SNI name (names lower-cased).
    pub sni: Vec<SniCert>,
    /// CA certificates for client certificates, if any.
    pub client_ca: Option<PathBuf>,
    /// Whether a client certificate is required (only with `client_ca`).
    pub client_auth: super::spec::ClientAuth,
}

/// A PEM certificate chain and its private key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPaths {
    /// The chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// One `sni` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SniCert {
    /// Host names, lower-case.
    pub names: Vec<String>,
    /// The certificate served for them.
    pub paths: CertPaths,
}

/// `[store]`, checked.
#[derive(Debug, Clone)]
pub struct StoreSettings {
    /// Which backend.
    pub backend: StoreBackendName,
    /// Directory of the embedded store.
    pub path: PathBuf,
    /// The Redis URL with its password redacted, for messages ([`RedisSettings::url`]
    /// is the one used).
    pub url: Option<String>,
    /// How long a delivered event id is remembered.
    pub dedup_ttl: Duration,
    /// What sync routes do while the store cannot decide.
    pub on_unavailable: OnUnavailable,
    /// How long an entity's newest delivered time (its watermark) is kept after the
    /// entity's last delivery (default: `dedup_ttl`).
    pub order_ttl: Duration,
    /// Embedded store: whether a sync route's commit is fsynced before its answer
    /// (default) or up to a second later.
    pub sync_commits: crate::store::SyncCommits,
    /// The Redis connection, when `backend = "redis"`.
    pub redis: Option<RedisSettings>,
}

/// `[store]` keys of the Redis backend, checked.
#[derive(Clone)]
pub struct RedisSettings {
    /// `redis://[user[:password]@]host[:port][/db]` (or `rediss://`, `unix://`); may hold
    /// a password, so it is never printed ([`RedisSettings::display_url`] is).
    pub url: String,
    /// Connections kept open (each multiplexes every request).
    pub pool_size: usize,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command may take.
    pub command_timeout: Duration,
    /// Replicas that must acknowledge an accept or a commit (`WAIT`), 0 = none.
    pub wait_replicas: u32,
    /// Prefix of every key.
    pub key_prefix: String,
    /// How long an in-flight lease lasts: twice the longest `upstream_timeout` of the
    /// routes plus 5 s, so it outlives any delivery (a dead replica's lease expires).
    pub lease: Duration,
    /// `tls_ca`: PEM root certificate(s) trusted for a `rediss://` url instead of the
    /// system's roots; `None` = the system's roots.
    pub tls_ca: Option<Vec<u8>>,
}

impl RedisSettings {
    /// The URL without its password, for messages.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }
}

impl std::fmt::Debug for RedisSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisSettings")
            .field("url", &self.display_url())
            .field("pool_size", &self.pool_size)
            .field("connect_timeout", &self.connect_timeout)
            .field("command_timeout", &self.command_timeout)
            .field("wait_replicas", &self.wait_replicas)
            .field("key_prefix", &self.key_prefix)
            .field("tls_ca", &self.tls_ca.is_some())
            .finish()
    }
}

/// `scheme://user:***@host...`: the URL with any password replaced.
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    // The userinfo ends at the last '@' before the path.
    let (authority, path) = match rest.find('/') {
        Some(slash) => rest.split_at_checked(slash).unwrap_or((rest, "")),
        None => (rest, ""),
    };
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(u, _)| u);
            let masked = if userinfo.contains(':') {
                format!("{user}:***")
            } else {
                "***".to_owned()
            };
            format!("{scheme}://{masked}@{host}{path}")
        }
        None => url.to_owned(),
    }
}

/// One route, checked.
#[derive(Debug)]
pub struct Route {
    /// Unique name.
    pub name: Arc<str>,
    /// Exact request path.
    pub path: String,
    /// Accepted methods.
    pub methods: Vec<Method>,
    /// Allowed source addresses; `None` means any.
    pub allow_ips: Option<Allowlist>,
    /// The `file:` allowlists `allow_ips` was read from, resolved: a change to one of
    /// them reloads the configuration.
    pub allow_files: Vec<PathBuf>,
    /// Credentials the sender must present.
    pub auth: Auth,
    /// The credential headers `auth` consumes, removed before forwarding (computed
    /// once here rather than on every request).
    pub consumed_headers: Vec<http::HeaderName>,
    /// Where events go.
    pub upstream: Target,
    /// Extra CAs trusted for an `https://` upstream (`upstream_ca`).
    pub upstream_ca: Option<Vec<rustls::pki_types::CertificateDer<'static>>>,
    /// How events are delivered.
    pub delivery: DeliveryMode,
    /// How long the upstream may take.
    pub upstream_timeout: Duration,
    /// Async delivery: how failed attempts are retried.
    pub retry: crate::delivery::retry::RetryPolicy,
    /// Async delivery: attempts in flight at once.
    pub concurrency: usize,
    /// Async delivery: pending events above which the route answers 503 `unavailable`.
    pub max_pending: u64,
    /// Request rate limit, if any.
    pub rate_limit: Option<RateLimitSpec>,
    /// The schema events must conform to, if any.
    pub schema: Option<Arc<Schema>>,
    /// What a violation does.
    pub schema_mode: SchemaMode,
    /// What is extracted for dedup and ordering.
    pub keys: EventKeys,
    /// Accepted TLS client identities (SAN DNS/URI or CN); `None` means no certificate
    /// is required.
    pub client_subjects: Option<Vec<String>>,
    /// The custom answer for events the gateway acknowledges itself.
    pub respond: Option<super::spec::Respond>,
    /// How the body is read.
    pub body: super::spec::BodyFormat,
    /// Each batch element is its own event.
    pub split: bool,
}

impl Route {
    /// Whether bodies are read as batches whose elements are validated one by one
    /// (`body = "ndjson" | "auto"`, or `split = true`); the schema is then the
    /// element's schema.
    pub fn takes_batches(&self) -> bool {
        self.split || self.body != super::spec::BodyFormat::Json
    }
}

/// Largest `respond.body`: an acknowledgement, not a document.
const MAX_RESPOND_BODY_BYTES: usize = 64 * 1024;

/// Checks `respond`: a 2xx status, a body within bounds, a usable `Content-Type`.
fn compile_respond(r: raw::RawRespond) -> Result<super::spec::Respond, KeyError> {
    let status = r.status.unwrap_or(200);
    if !(200..=299).contains(&status) {
        return Err((
            ".status".into(),
            format!("{status} is not a 2xx status (the answer acknowledges an event)"),
        ));
    }
    let status = http::StatusCode::from_u16(status)
        .map_err(|_| (".status".to_owned(), format!("{status} is not a status")))?;
    let body = r.body.unwrap_or_default();
    if body.len() > MAX_RESPOND_BODY_BYTES {
        return Err((
            ".body".into(),
            format!("longer than {MAX_RESPOND_BODY_BYTES} bytes"),
        ));
    }
    if !body.is_empty()
        && (status == http::StatusCode::NO_CONTENT || status == http::StatusCode::RESET_CONTENT)
    {
        return Err((".body".into(), format!("status {status} carries no body")));
    }
    let content_type = match (r.content_type, body.is_empty()) {
        (Some(ct), _) => Some(http::HeaderValue::from_str(&ct).map_err(|_| {
            (
                ".content_type".to_owned(),
                format!("{ct:?} is not a header value"),
            )
        })?),
        (None, false) => Some(http::HeaderValue::from_static("application/json")),
        (None, true) => None,
    };
    Ok(super::spec::Respond {
        status,
        body: bytes::Bytes::from(body),
        content_type,
    })
}

/// Headers that carry credentials whatever the route's auth: never an event id.
const CREDENTIAL_HEADERS: &[http::HeaderName] = &[
    http::header::AUTHORIZATION,
    http::header::PROXY_AUTHORIZATION,
    http::header::COOKIE,
];

/// Paths the gateway answers itself; no route may take them.
pub const RESERVED_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

/// The largest `max_json_depth` (DESIGN.md's default): deeper trees cost stack in the
/// parser, the validator and `Drop`, so the bound is a fixed ceiling.
pub const JSON_DEPTH_CEILING: usize = 128;

pub(super) fn compile(
    raw: RawConfig,
    base_dir: Option<&std::path::Path>,
) -> Result<Settings, KeyError> {
    let server = compile_server(raw.server, base_dir)?;
    let mut store = compile_store(raw.store, base_dir)?;
    let admin = match raw.admin {
        None => None,
        Some(a) => Some(AdminSettings {
            listen: a.listen.parse().map_err(|e| {
                (
                    "admin.listen".to_owned(),
                    format!("{:?} is not host:port ({e})", a.listen),
                )
            })?,
            token: match a.token {
                None => None,
                Some(t) => Some(
                    super::secret_source::resolve(&t).map_err(|e| ("admin.token".to_owned(), e))?,
                ),
            },
        }),
    };
    let mut routes = Vec::with_capacity(raw.routes.len());
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    let ref_map = compile_ref_map(raw.schemas, base_dir)?;
    for (i, r) in raw.routes.into_iter().enumerate() {
        let route = compile_route(i, r, base_dir, &ref_map)?;
        if !names.insert(route.name.clone()) {
            return Err((
                format!("route[{i}].name"),
                format!("duplicate route name {:?}", route.name),
            ));
        }
        if !paths.insert(route.path.clone()) {
            return Err((
                format!("route[{i}].path"),
                format!("duplicate route path {:?}", route.path),
            ));
        }
        if let Target::Http(up) = &route.upstream
            && upstream_is_listener(up.url(), server.listen)
        {
            return Err((
                format!("route[{i}].upstream"),
                format!(
                    "{} is the gateway's own listen address {} (a forwarding loop)",
                    route.upstream, server.listen
                ),
            ));
        }
        if let Some(subjects) = &route.client_subjects {
            if subjects.is_empty() || subjects.iter().any(String::is_empty) {
                return Err((
                    format!("route[{i}].client_subjects"),
                    "must list at least one non-empty name".to_owned(),
                ));
            }
            if server.tls.as_ref().is_none_or(|t| t.client_ca.is_none()) {
                return Err((
                    format!("route[{i}].client_subjects"),
                    "needs server.tls.client_ca (client certificates are verified against it)"
                        .to_owned(),
                ));
            }
        }
        routes.push(Arc::new(route));
    }
    if let Some(redis) = &mut store.redis {
        let longest = routes
            .iter()
            .map(|r| r.upstream_timeout)
            .max()
            .unwrap_or_default();
        redis.lease = longest.saturating_mul(2) + Duration::from_secs(5);
    }
    Ok(Settings {
        server,
        store,
        routes,
        admin,
    })
}

/// Resolves a path from the config file against the file's directory.
pub(super) fn resolve_path(base_dir: Option<&std::path::Path>, path: &str) -> PathBuf {
    match base_dir {
        Some(dir) if std::path::Path::new(path).is_relative() => dir.join(path),
        _ => PathBuf::from(path),
    }
}

/// Most bytes read from an `allow_ips` file.
const MAX_ALLOW_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Replaces each `file:PATH` entry with the file's lines: one IP or CIDR per line, blank
/// lines and `#` comments ignored. Read at every load, so SIGHUP (and a change to the
/// file, see `server::reload_on_allowlist_change`) rereads it; a bad file refuses the
/// reload and the running list stays. Also returns the files read.
fn expand_allow_files(
    list: Vec<String>,
    base_dir: Option<&std::path::Path>,
) -> Result<(Vec<String>, Vec<PathBuf>), String> {
    use std::io::Read as _;
    let mut out = Vec::with_capacity(list.len());
    let mut files = Vec::new();
    for entry in list {
        let Some(path) = entry.strip_prefix("file:") else {
            out.push(entry);
            continue;
        };
        let path = resolve_path(base_dir, path);
        let mut text = String::new();
        std::fs::File::open(&path)
            .and_then(|f| f.take(MAX_ALLOW_FILE_BYTES + 1).read_to_string(&mut text))
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        if text.len() as u64 > MAX_ALLOW_FILE_BYTES {
            return Err(format!(
                "{} is larger than {MAX_ALLOW_FILE_BYTES} bytes",
                path.display()
            ));
        }
        for (n, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            allowlist::parse_net(line)
                .map_err(|e| format!("{} line {}: {e}", path.display(), n + 1))?;
            out.push(line.to_owned());
        }
        files.push(path);
    }
    Ok((out, files))
}

fn at_least_one(key: &str, value: Option<usize>, default: usize) -> Result<usize, KeyError> {
    match value {
        None => Ok(default),
        // A semaphore holds at most usize::MAX >> 3 permits.
        Some(n) if (1..=1 << 40).contains(&n) => Ok(n),
        Some(_) => Err((key.to_owned(), "must be between 1 and 2^40".to_owned())),
    }
}

fn compile_tls(
    t: raw::RawTls,
    base_dir: Option<&std::path::Path>,
) -> Result<TlsSettings, KeyError> {
    let pair = |prefix: &str, cert: Option<String>, key: Option<String>| {
        let cert = cert
            .filter(|c| !c.is_empty())
            .ok_or_else(|| (format!("{prefix}.cert"), "missing".to_owned()))?;
        let key = key
            .filter(|k| !k.is_empty())
            .ok_or_else(|| (format!("{prefix}.key"), "missing".to_owned()))?;
        Ok::<_, KeyError>(CertPaths {
            cert: resolve_path(base_dir, &cert),
            key: resolve_path(base_dir, &key),
        })
    };
    let default = pair("server.tls", t.cert, t.key)?;
    let mut sni = Vec::new();
    let mut seen = HashSet::new();
    for (i, e) in t.sni.unwrap_or_default().into_iter().enumerate() {
        let prefix = format!("server.tls.sni[{i}]");
        let names: Vec<String> = e
            .names
            .unwrap_or_default()
            .iter()
            .map(|n| n.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        if names.is_empty() {
            return Err((format!("{prefix}.names"), "missing or empty".to_owned()));
        }
        for n in &names {
            if n.is_empty() || !seen.insert(n.clone()) {
                return Err((
                    format!("{prefix}.names"),
                    format!("{n:?} is empty or named twice"),
                ));
            }
        }
        sni.push(SniCert {
            names,
            paths: pair(&prefix, e.cert, e.key)?,
        });
    }
    let client_ca = t.client_ca.map(|p| resolve_path(base_dir, &p));
    if client_ca.is_none() && t.client_auth.is_some() {
        return Err((
            "server.tls.client_auth".to_owned(),
            "needs client_ca (the CAs client certificates are verified against)".to_owned(),
        ));
    }
    Ok(TlsSettings {
        default,
        sni,
        client_ca,
        client_auth: t.client_auth.unwrap_or(super::spec::ClientAuth::Optional),
    })
}

fn compile_server(
    s: raw::RawServer,
    base_dir: Option<&std::path::Path>,
) -> Result<ServerSettings, KeyError> {
    let listen = s.listen.as_deref().unwrap_or("127.0.0.1:8080");
    let listen = listen.parse::<SocketAddr>().map_err(|e| {
        (
            "server.listen".to_owned(),
            format!("{listen:?} is not an IP:port address ({e})"),
        )
    })?;
    let max_body_bytes = s.max_body_bytes.unwrap_or(1024 * 1024);
    if max_body_bytes == 0 {
        return Err(("server.max_body_bytes".into(), "must be at least 1".into()));
    }
    let max_json_depth = s.max_json_depth.unwrap_or(JSON_DEPTH_CEILING);
    if max_json_depth == 0 || max_json_depth > JSON_DEPTH_CEILING {
        return Err((
            "server.max_json_depth".into(),
            format!("must be between 1 and {JSON_DEPTH_CEILING}"),
        ));
    }
    let read_timeout = duration("server.read_timeout", s.read_timeout.as_deref(), "10s")?;
    let trusted_proxies = s
        .trusted_proxies
        .unwrap_or_default()
        .iter()
        .enumerate()
        .map(|(i, v)| {
            allowlist::parse_net(v).map_err(|e| (format!("server.trusted_proxies[{i}]"), e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(ServerSettings {
        listen,
        max_body_bytes,
        max_json_depth,
        read_timeout,
        trusted_proxies,
        client_ip_header: s.client_ip_header.unwrap_or_default(),
        metrics: s.metrics.unwrap_or(true),
        tls: s.tls.map(|t| compile_tls(t, base_dir)).transpose()?,
        proxy_protocol: s.proxy_protocol.unwrap_or(false),
        max_connections: at_least_one("server.max_connections", s.max_connections, 10_000)?,
        max_in_flight: at_least_one("server.max_in_flight", s.max_in_flight, 4096)?,
        idle_timeout: match s.idle_timeout.as_deref() {
            None => read_timeout,
            Some(t) => duration("server.idle_timeout", Some(t), "")?,
        },
        max_requests_per_connection: match s.max_requests_per_connection {
            None => Some(DEFAULT_MAX_REQUESTS_PER_CONNECTION),
            Some(0) => None,
            Some(n) => Some(n),
        },
    })
}

/// Default `max_requests_per_connection`, as nginx's `keepalive_requests`: a long-lived
/// connection is recycled now and then, so that memory it holds is given back and load
/// balancers in front rebalance.
const DEFAULT_MAX_REQUESTS_PER_CONNECTION: u64 = 1000;

fn compile_store(
    s: raw::RawStore,
    base_dir: Option<&std::path::Path>,
) -> Result<StoreSettings, KeyError> {
    let backend = s.backend.unwrap_or(StoreBackendName::Embedded);
    let dedup_ttl = duration("store.dedup_ttl", s.dedup_ttl.as_deref(), "72h")?;
    let order_ttl = match s.order_ttl.as_deref() {
        Some(text) => duration("store.order_ttl", Some(text), "72h")?,
        None => dedup_ttl,
    };
    let redis = if backend == StoreBackendName::Redis {
        let Some(url) = s.url.clone() else {
            return Err((
                "store.url".into(),
                "required when store.backend = \"redis\"".into(),
            ));
        };
        // The URL may carry a password: like every credential it may come from
        // "env:NAME" or "file:PATH".
        let url = if url.starts_with("env:") || url.starts_with("file:") {
            let secret =
                super::secret_source::resolve(&url).map_err(|e| ("store.url".to_owned(), e))?;
            String::from_utf8(secret.expose().to_vec())
                .map_err(|_| ("store.url".to_owned(), "is not UTF-8".to_owned()))?
                .trim()
                .to_owned()
        } else {
            url
        };
        check_redis_url(&url).map_err(|e| ("store.url".to_owned(), e))?;
        let pool_size = s.pool_size.unwrap_or(4);
        if !(1..=64).contains(&pool_size) {
            return Err((
                "store.pool_size".into(),
                format!("{pool_size} is outside 1..=64"),
            ));
        }
        let key_prefix = s
            .key_prefix
            .clone()
            .unwrap_or_else(|| "hookgate".to_owned());
        if key_prefix.is_empty() || key_prefix.contains(['{', '}']) || key_prefix.len() > 64 {
            return Err((
                "store.key_prefix".into(),
                "must be 1 to 64 characters without '{' or '}' (they delimit hash tags)".into(),
            ));
        }
        let tls_ca = match s.tls_ca.as_deref() {
            None => None,
            Some(path) => {
                if !url.to_ascii_lowercase().starts_with("rediss://") {
                    return Err((
                        "store.tls_ca".into(),
                        "only for a rediss:// store.url (TLS)".into(),
                    ));
                }
                let full = resolve_path(base_dir, path);
                let pem = std::fs::read(&full).map_err(|e| {
                    (
                        "store.tls_ca".to_owned(),
                        format!("cannot read {}: {e}", full.display()),
                    )
                })?;
                if !pem
                    .windows(b"-----BEGIN CERTIFICATE-----".len())
                    .any(|w| w == b"-----BEGIN CERTIFICATE-----")
                {
                    return Err((
                        "store.tls_ca".to_owned(),
                        format!("{} holds no PEM certificate", full.display()),
                    ));
                }
                Some(pem)
            }
        };
        Some(RedisSettings {
            url,
            pool_size,
            connect_timeout: duration("store.connect_timeout", s.connect_timeout.as_deref(), "2s")?,
            command_timeout: duration("store.command_timeout", s.command_timeout.as_deref(), "2s")?,
            wait_replicas: s.wait_replicas.unwrap_or(0),
            key_prefix,
            lease: Duration::from_secs(15),
            tls_ca,
        })
    } else {
        for (key, set) in [
            ("store.pool_size", s.pool_size.is_some()),
            ("store.connect_timeout", s.connect_timeout.is_some()),
            ("store.command_timeout", s.command_timeout.is_some()),
            ("store.wait_replicas", s.wait_replicas.is_some()),
            ("store.key_prefix", s.key_prefix.is_some()),
            ("store.tls_ca", s.tls_ca.is_some()),
        ] {
            if set {
                return Err((key.into(), "only for store.backend = \"redis\"".into()));
            }
        }
        None
    };
    Ok(StoreSettings {
        backend,
        path: PathBuf::from(s.path.as_deref().unwrap_or("./hookgate-data")),
        url: redis.as_ref().map(RedisSettings::display_url),
        dedup_ttl,
        order_ttl,
        on_unavailable: s.on_unavailable.unwrap_or_default(),
        sync_commits: s.sync_commits.unwrap_or_default(),
        redis,
    })
}

/// A Redis URL this build can use: `redis://`, `rediss://` (TLS) or `unix://`, parsed
/// by the driver.
fn check_redis_url(url: &str) -> Result<(), String> {
    let shown = redact_url(url);
    let scheme = url.split_once("://").map(|(s, _)| s.to_ascii_lowercase());
    match scheme.as_deref() {
        Some("redis" | "rediss" | "unix" | "redis+unix") => {}
        _ => {
            return Err(format!(
                "{shown} is not a Redis URL (expected redis://[user[:password]@]host[:port][/db])"
            ));
        }
    }
    redis::Client::open(url)
        .map(drop)
        .map_err(|e| format!("{shown} is not a valid Redis URL: {e}"))
}

/// `[schemas] ref_map`: folders relative to the config file, each checked to exist.
fn compile_ref_map(
    raw: raw::RawSchemas,
    base_dir: Option<&std::path::Path>,
) -> Result<crate::schema::RefMap, KeyError> {
    let mut map = crate::schema::RefMap::default();
    for (prefix, dir) in raw.ref_map.unwrap_or_default() {
        let dir = match base_dir {
            Some(base) => base.join(&dir),
            None => std::path::PathBuf::from(&dir),
        };
        map.insert(&prefix, &dir)
            .map_err(|e| (format!("schemas.ref_map.{prefix:?}"), e.to_string()))?;
    }
    Ok(map)
}

fn compile_route(
    i: usize,
    mut r: raw::RawRoute,
    base_dir: Option<&std::path::Path>,
    ref_map: &crate::schema::RefMap,
) -> Result<Route, KeyError> {
    let key = |k: &str| format!("route[{i}].{k}");
    super::presets::apply(&mut r).map_err(|e| (key("preset"), e))?;
    let name = r
        .name
        .filter(|n| !n.is_empty())
        .ok_or_else(|| (key("name"), "missing (every route needs a name)".to_owned()))?;
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err((
            key("name"),
            format!("{name:?} may only contain ASCII letters, digits, '-', '_' and '.'"),
        ));
    }
    let path = r.path.ok_or_else(|| (key("path"), "missing".to_owned()))?;
    // Control characters cannot arrive in a request target (and a NUL would be printed
    // raw by `check`); refusing them here keeps every route reachable.
    if !path.starts_with('/')
        || path.contains(['?', '#'])
        || path.contains(char::is_whitespace)
        || path.contains(char::is_control)
    {
        return Err((
            key("path"),
            format!(
                "{path:?} must start with '/' and contain no query, fragment, space or control character"
            ),
        ));
    }
    if RESERVED_PATHS.contains(&path.as_str()) {
        return Err((
            key("path"),
            format!("{path:?} is reserved for the gateway itself"),
        ));
    }
    let methods = match r.methods {
        None => vec![Method::POST],
        Some(list) if list.is_empty() => {
            return Err((key("methods"), "must list at least one method".into()));
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(j, m)| {
                let upper = m.to_ascii_uppercase();
                Method::from_bytes(upper.as_bytes()).map_err(|_| {
                    (
                        key(&format!("methods[{j}]")),
                        format!("{m:?} is not a method"),
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
    };
    let (allow_ips, allow_files) = match r.allow_ips {
        None => (None, Vec::new()),
        Some(list) => {
            let (list, files) =
                expand_allow_files(list, base_dir).map_err(|e| (key("allow_ips"), e))?;
            let list =
                Allowlist::parse(&list).map_err(|(j, e)| (key(&format!("allow_ips[{j}]")), e))?;
            (Some(list), files)
        }
    };
    let upstream = r
        .upstream
        .ok_or_else(|| (key("upstream"), "missing".to_owned()))?;
    let upstream = Target::parse(&upstream).map_err(|e| (key("upstream"), e))?;
    if let Target::File(file) = &upstream
        && (file.is_dir() || file.as_os_str().to_string_lossy().ends_with('/'))
    {
        // `serve` would fail to open it; say so here rather than at the first start.
        return Err((
            key("upstream"),
            format!("{} is a directory, not a file", file.display()),
        ));
    }
    let upstream_ca = match &r.upstream_ca {
        None => None,
        Some(path) => {
            Some(upstream_ca(&upstream, path, base_dir).map_err(|e| (key("upstream_ca"), e))?)
        }
    };
    let delivery = r.delivery.unwrap_or_default();
    let (retry, concurrency, max_pending) = async_settings(
        r.retry.as_ref(),
        r.concurrency,
        r.max_pending,
        delivery,
        &key,
    )?;
    let upstream_timeout = duration(
        &key("upstream_timeout"),
        r.upstream_timeout.as_deref(),
        "5s",
    )?;
    if let Some(url) = &r.public_url {
        public_url(url).map_err(|e| (key("public_url"), e))?;
    }
    let auth = super::auth::compile(
        r.auth.unwrap_or(raw::RawAuth::None),
        r.public_url.as_deref(),
    )
    .map_err(|(k, e)| match k.strip_prefix('!') {
        // A key of the route itself, not below `auth`.
        Some(route_key) => (key(route_key), e),
        None => (format!("{}{k}", key("auth")), e),
    })?;
    let rate_limit = match r.rate_limit {
        None => None,
        Some(rl) => {
            let per_second = std::num::NonZeroU32::new(rl.per_second).ok_or_else(|| {
                (
                    key("rate_limit.per_second"),
                    "must be at least 1".to_owned(),
                )
            })?;
            let burst = match rl.burst {
                None => per_second,
                Some(b) => std::num::NonZeroU32::new(b)
                    .ok_or_else(|| (key("rate_limit.burst"), "must be at least 1".to_owned()))?,
            };
            Some(RateLimitSpec {
                per_second,
                burst,
                per_address: rl.per_address,
            })
        }
    };
    let schema = match &r.schema {
        None => None,
        Some(name) => {
            // A relative schema path is relative to the config file, not to the cwd.
            let resolved = match base_dir {
                Some(dir)
                    if crate::schema::bundled(name).is_none()
                        && std::path::Path::new(name).is_relative() =>
                {
                    dir.join(name).display().to_string()
                }
                _ => name.clone(),
            };
            let options = crate::schema::SchemaOptions {
                draft: r.schema_draft.unwrap_or_default(),
                ref_map: ref_map.clone(),
            };
            Some(Arc::new(
                Schema::load_with(&resolved, &options)
                    .map_err(|e| (key("schema"), e.to_string()))?,
            ))
        }
    };
    let dedup = match &r.dedup_key {
        None => None,
        Some(k) => Some(DedupKey::parse(k).map_err(|e| (key("dedup_key"), e))?),
    };
    if let Some(DedupKey::Header(h)) = &dedup
        && (CREDENTIAL_HEADERS.contains(h) || auth.consumed_headers().contains(h))
    {
        // The event id is logged, stored, answered and forwarded as X-Hookgate-Event-Id.
        return Err((
            key("dedup_key"),
            format!(
                "header {h} carries credentials; as the event id it would be logged, stored and forwarded"
            ),
        ));
    }
    let order = match (&r.order_key, &r.order_time) {
        (None, None) => None,
        (Some(_), None) => {
            return Err((key("order_time"), "required when order_key is set".into()));
        }
        (None, Some(_)) => {
            return Err((key("order_key"), "required when order_time is set".into()));
        }
        (Some(entity), Some(time)) => {
            extract::check_pointer(entity).map_err(|e| (key("order_key"), e))?;
            extract::check_pointer(time).map_err(|e| (key("order_time"), e))?;
            Some(OrderSpec {
                entity: entity.clone(),
                time: time.clone(),
                unit: r.order_time_unit.unwrap_or_default(),
            })
        }
    };
    let respond = r
        .respond
        .map(compile_respond)
        .transpose()
        .map_err(|(k, e)| (format!("{}{k}", key("respond")), e))?;
    let body = r.body.unwrap_or_default();
    let split = r.split.unwrap_or(false);
    if split || body != super::spec::BodyFormat::Json {
        batch_keys(&dedup, order.as_ref(), split, &key)?;
    }
    Ok(Route {
        respond,
        body,
        split,
        consumed_headers: auth.consumed_headers(),
        schema,
        schema_mode: r.schema_mode.unwrap_or_default(),
        keys: EventKeys {
            dedup,
            order,
            missing: r.missing_key.unwrap_or_default(),
        },
        rate_limit,
        name: Arc::from(name),
        path,
        methods,
        allow_ips,
        allow_files,
        auth,
        upstream,
        upstream_ca,
        delivery,
        upstream_timeout,
        retry,
        concurrency,
        max_pending,
        client_subjects: r.client_subjects,
    })
}

/// A batch forwarded whole (no `split`) is one event without one document: its keys
/// can come from a header or the body's hash, not from a pointer into an element.
fn batch_keys(
    dedup: &Option<DedupKey>,
    order: Option<&OrderSpec>,
    split: bool,
    key: &dyn Fn(&str) -> String,
) -> Result<(), KeyError> {
    if split {
        if matches!(dedup, Some(DedupKey::Header(_))) {
            return Err((
                key("dedup_key"),
                "with split = true every element needs its own id: a header is shared by \
                 the whole batch (use a JSON pointer or \"body-sha256\", the element's hash)"
                    .into(),
            ));
        }
        return Ok(());
    }
    if matches!(dedup, Some(DedupKey::Pointer(_))) {
        return Err((
            key("dedup_key"),
            "a JSON pointer needs split = true on a batch route (body = \"ndjson\" or \"auto\"); \
             without split use \"header:NAME\" or \"body-sha256\""
                .into(),
        ));
    }
    if order.is_some() {
        return Err((
            key("order_key"),
            "ordering needs split = true on a batch route (body = \"ndjson\" or \"auto\")".into(),
        ));
    }
    Ok(())
}

/// Default `concurrency`: enough to keep a slow upstream busy, few enough that a
/// recovering one is not flooded by the backlog.
pub(super) const DEFAULT_CONCURRENCY: u32 = 16;
/// Default `max_pending` (the README gives its disk cost).
pub(super) const DEFAULT_MAX_PENDING: u64 = 100_000;

/// `retry`, `concurrency` and `max_pending`: only meaningful for `delivery = "async"`,
/// so a sync route naming them is refused rather than silently ignoring them.
fn async_settings(
    retry: Option<&raw::RawRetry>,
    concurrency: Option<u32>,
    max_pending: Option<u64>,
    delivery: DeliveryMode,
    key: &dyn Fn(&str) -> String,
) -> Result<(crate::delivery::retry::RetryPolicy, usize, u64), KeyError> {
    if delivery == DeliveryMode::Sync {
        for (name, set) in [
            ("retry", retry.is_some()),
            ("concurrency", concurrency.is_some()),
            ("max_pending", max_pending.is_some()),
        ] {
            if set {
                return Err((key(name), "only applies to delivery = \"async\"".into()));
            }
        }
    }
    let raw = retry.cloned().unwrap_or_default();
    let max_attempts = raw.max_attempts.unwrap_or(15);
    let initial = duration(&key("retry.initial"), raw.initial.as_deref(), "1s")?;
    let max_delay = duration(&key("retry.max_delay"), raw.max_delay.as_deref(), "10m")?;
    let max_age = duration(&key("retry.max_age"), raw.max_age.as_deref(), "72h")?;
    let retry = crate::delivery::retry::RetryPolicy::new(max_attempts, initial, max_delay, max_age)
        .map_err(|e| (key("retry"), e.to_string()))?;
    let concurrency = concurrency.unwrap_or(DEFAULT_CONCURRENCY);
    if concurrency == 0 || concurrency > 4096 {
        return Err((key("concurrency"), "must be between 1 and 4096".into()));
    }
    let max_pending = max_pending.unwrap_or(DEFAULT_MAX_PENDING);
    if max_pending == 0 {
        return Err((key("max_pending"), "must be at least 1".into()));
    }
    Ok((retry, concurrency as usize, max_pending))
}

/// Most bytes read from an `upstream_ca` file; a CA bundle is a few hundred KiB at most.
const MAX_CA_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Reads the PEM certificates of `upstream_ca` (relative to the config file's directory).
fn upstream_ca(
    upstream: &Target,
    path: &str,
    base_dir: Option<&std::path::Path>,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    match upstream {
        Target::Http(up) if up.url().scheme() == "https" => {}
        _ => return Err("only applies to an https:// upstream".into()),
    }
    let resolved = match base_dir {
        Some(dir) if std::path::Path::new(path).is_relative() => dir.join(path),
        _ => PathBuf::from(path),
    };
    let shown = resolved.display();
    let file = std::fs::File::open(&resolved).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut pem = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(file, MAX_CA_FILE_BYTES + 1),
        &mut pem,
    )
    .map_err(|e| format!("cannot read {shown}: {e}"))?;
    if pem.len() as u64 > MAX_CA_FILE_BYTES {
        return Err(format!("{shown} is larger than {MAX_CA_FILE_BYTES} bytes"));
    }
    let certs = rustls::pki_types::CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a PEM certificate bundle ({e})"))?;
    if certs.is_empty() {
        return Err(format!("{shown} holds no PEM certificate"));
    }
    Ok(certs)
}

/// True when `url` would connect to `listen`, the gateway itself: same port, and a host
/// that reaches the listener (the same address; `localhost` or a loopback address for a
/// wildcard or loopback listener; `0.0.0.0`/`::`, which connect to the local host).
///
/// Host names other than `localhost` are not resolved here (`check` stays offline and
/// deterministic); a loop through one is still stopped per request by the `Via` token.
fn upstream_is_listener(url: &url::Url, listen: SocketAddr) -> bool {
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
    if listen.port() == 0 || url.port_or_known_default() != Some(listen.port()) {
        return false;
    }
    let Some(host) = url.host_str() else {
        return false;
    };
    let bare = host.trim_start_matches('[').trim_end_matches(']');
    let hosts: Vec<IpAddr> = match bare.parse::<IpAddr>() {
        Ok(ip) => vec![ip.to_canonical()],
        Err(_) => {
            let d = bare.trim_end_matches('.').to_ascii_lowercase();
            if d == "localhost" || d.ends_with(".localhost") {
                vec![
                    IpAddr::V4(Ipv4Addr::LOCALHOST),
                    IpAddr::V6(Ipv6Addr::LOCALHOST),
                ]
            } else {
                return false;
            }
        }
    };
    let listen_ip = listen.ip().to_canonical();
    hosts.iter().any(|&host| {
        // Connecting to the unspecified address reaches the local host.
        let local = host.is_loopback() || host.is_unspecified();
        match listen_ip {
            IpAddr::V4(l) if l.is_unspecified() => host.is_ipv4() && local,
            // `[::]` listens dual-stack by default.
            IpAddr::V6(l) if l.is_unspecified() => local,
            l if l.is_loopback() && host.is_unspecified() => l.is_ipv4() == host.is_ipv4(),
            l => host == l,
        }
    })
}

/// The longest duration any key accepts. Longer values are typos or attempts to say
/// "never"; refusing them keeps every `now + duration` the gateway computes (deadlines,
/// expiries, tolerances) far from overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 24 * 3600);

/// Checks a route's `public_url`: an absolute `http(s)://` URL without query or fragment
/// (the request's own query string is appended to it when a scheme signs the URL).
fn public_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or_else(|| format!("{url:?} must start with https:// or http://"))?;
    if rest.is_empty() || rest.starts_with('/') {
        return Err(format!("{url:?} has no host"));
    }
    if url.contains(['?', '#']) {
        return Err(format!(
            "{url:?} may not carry a query or fragment: the request's query is appended to it"
        ));
    }
    if url.bytes().any(|b| !(b'!'..=b'~').contains(&b)) {
        return Err(format!(
            "{url:?} must be printable ASCII without spaces (percent-encode the rest)"
        ));
    }
    Ok(())
}

/// Parses a duration string like `"500ms"` or `"24h"`; zero is refused (it would disable
/// the limit in a surprising way), and so is anything beyond [`MAX_DURATION`].
pub fn duration(key: &str, value: Option<&str>, default: &str) -> Result<Duration, KeyError> {
    let text = value.unwrap_or(default);
    let d = humantime::parse_duration(text)
        .map_err(|e| (key.to_owned(), format!("{text:?} is not a duration ({e})")))?;
    if d.is_zero() {
        return Err((key.to_owned(), "must be greater than zero".to_owned()));
    }
    if d > MAX_DURATION {
        return Err((
            key.to_owned(),
            format!("{text:?} is longer than the maximum of 3650 days"),
        ));
    }
    Ok(d)
}
