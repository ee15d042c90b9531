//! The admin listener (`[admin] listen`, DESIGN.md §2–§3): outbox status and dead
//! letters for operators, on its own address so that it is never reachable through
//! the public port. The same operations run on a stopped gateway's store file
//! ([`Ops`] over an opened store), which is how the CLI works when no gateway answers.
//!
//! Endpoints (JSON answers; every request carries `Authorization: Bearer <token>` when
//! `[admin] token` is set):
//!
//! | method | path | query | answer |
//! |---|---|---|---|
//! | GET | `/outbox` | `route` | `{"routes":[{"route","pending","oldest_age_seconds","in_retry","dead_letters"}]}` |
//! | GET | `/dead-letters` | `route`, `after`, `limit` (≤ 1000) | `{"dead_letters":[...],"next_after":N}` |
//! | POST | `/dead-letters/replay` | `route`, `id` | `{"replayed":N}` |
//! | POST | `/dead-letters/drop` | `route`, `id` | `{"dropped":N}` |
//!
//! Without `route` and `id`, replay and drop act on every dead letter.

use std::future::Future;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderMap, StatusCode, Uri};
use serde_json::{Value, json};

use crate::delivery::outbox::{OutboxReader, Record, now_ms, pair};
use crate::secret::Secret;
use crate::store::outbox::OutboxOp;
use crate::store::{Store, StoreError};

/// Most dead letters listed per page.
pub const MAX_PAGE: usize = 1000;
/// Pending records examined to count those in retry.
const RETRY_SCAN: usize = 10_000;
/// Dead letters examined per replay/drop call.
const ACT_SCAN: usize = 100_000;

/// The operations, over a store and the async routes' names.
#[derive(Debug, Clone)]
pub struct Ops {
    reader: OutboxReader,
    routes: Vec<String>,
}

/// Why an operation was refused.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    /// The route is not an async route of this configuration.
    #[error("no async route named {0:?}")]
    UnknownRoute(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Ops {
    /// Operations on `store` for the routes named `routes` (the async ones).
    pub fn new(store: &Store, routes: Vec<String>) -> Ops {
        Ops {
            reader: pair(store).1,
            routes,
        }
    }

    fn routes_for(&self, route: Option<&str>) -> Result<Vec<String>, OpsError> {
        match route {
            Some(r) if self.routes.iter().any(|x| x == r) => Ok(vec![r.to_owned()]),
            Some(r) => Err(OpsError::UnknownRoute(r.to_owned())),
            None => Ok(self.routes.clone()),
        }
    }

    /// Outbox status per route.
    pub async fn status(&self, route: Option<&str>) -> Result<Value, OpsError> {
        let mut out = Vec::new();
        for r in self.routes_for(route)? {
            self.reader.refresh(&r).await?;
            let head = self.reader.scan(&r, 0, RETRY_SCAN).await?;
            let records: Vec<Record> = head
                .iter()
                .filter_map(|s| Record::decode(&s.record).ok())
                .collect();
            let oldest = records.iter().map(|x| x.received_ms).min();
            out.push(json!({
                "route": r,
                "pending": self.reader.pending(&r),
                "oldest_age_seconds": oldest.map_or(0, |ms| now_ms().saturating_sub(ms) / 1000),
                "in_retry": records.iter().filter(|x| x.attempts > 0).count(),
                "dead_letters": self.reader.dead(&r),
            }));
        }
        Ok(json!({ "routes": out }))
    }

    /// One page of dead letters (oldest first), after seq `after`.
    pub async fn list(
        &self,
        route: Option<&str>,
        after: u64,
        limit: usize,
    ) -> Result<Value, OpsError> {
        let routes = self.routes_for(route)?;
        let mut items = Vec::new();
        let mut next_after = after;
        for r in routes {
            for s in self
                .reader
                .dead_letters(Some(&r), after, limit.min(MAX_PAGE))
                .await?
            {
                next_after = next_after.max(s.seq);
                let rec = Record::decode(&s.record).ok();
                items.push(json!({
                    "route": s.route,
                    "seq": s.seq,
                    "event_id": rec.as_ref().map(|x| x.event_id.clone()),
                    "entity": rec.as_ref().and_then(|x| x.entity.clone()),
                    "attempts": rec.as_ref().map(|x| x.attempts),
                    "last_status": rec.as_ref().and_then(|x| x.last_status),
                    "last_error": rec.as_ref().and_then(|x| x.last_error.clone()),
                    "received_ms": rec.as_ref().map(|x| x.received_ms),
                }));
            }
        }
        items.truncate(limit.min(MAX_PAGE));
        Ok(json!({ "dead_letters": items, "next_after": next_after }))
    }

    /// The dead letters matching `route` and `id` (the event id).
    async fn matching(
        &self,
        route: Option<&str>,
        id: Option<&str>,
    ) -> Result<Vec<(String, u64)>, OpsError> {
        let mut found = Vec::new();
        for r in self.routes_for(route)? {
            for s in self.reader.dead_letters(Some(&r), 0, ACT_SCAN).await? {
                let event_id = Record::decode(&s.record).ok().map(|x| x.event_id);
                if id.is_none_or(|want| event_id.as_deref() == Some(want)) {
                    found.push((s.route, s.seq));
                }
            }
        }
        Ok(found)
    }

    /// Moves matching dead letters back to the outbox; returns how many.
    pub async fn replay(&self, route: Option<&str>, id: Option<&str>) -> Result<Value, OpsError> {
        let mut n = 0;
        for (r, seq) in self.matching(route, id).await? {
            if self.reader.replay(&r, seq).await?.is_some() {
                n += 1;
            }
        }
        Ok(json!({ "replayed": n }))
    }

    /// Deletes matching dead letters; returns how many.
    pub async fn drop_dead(
        &self,
        route: Option<&str>,
        id: Option<&str>,
    ) -> Result<Value, OpsError> {
        let mut n = 0;
        for (route, seq) in self.matching(route, id).await? {
            if self
                .reader
                .apply(OutboxOp::DropDead { route, seq })
                .await?
                .is_some()
            {
                n += 1;
            }
        }
        Ok(json!({ "dropped": n }))
    }
}

#[derive(Clone)]
struct AdminState {
    ops: Ops,
    token: Option<Secret>,
}

/// The admin router.
pub fn router(ops: Ops, token: Option<Secret>) -> Router {
    Router::new()
        .route("/outbox", get(outbox))
        .route("/dead-letters", get(list))
        .route("/dead-letters/replay", post(replay))
        .route("/dead-letters/drop", post(drop_dead))
        .with_state(AdminState { ops, token })
}

/// Serves the admin router on `listener` until `shutdown` completes.
pub async fn serve(
    listener: tokio::net::TcpListener,
    ops: Ops,
    token: Option<Secret>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(ops, token);
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!(error = %e, "Admin listener failed.");
    }
}

/// `key=value` pairs of the query string, percent-decoded (bounded by the URI size
/// hyper accepts).
fn query(uri: &Uri) -> Vec<(String, String)> {
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(&s.replace('+', " "))
            .decode_utf8_lossy()
            .into_owned()
    };
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| match p.split_once('=') {
            Some((k, v)) => (decode(k), decode(v)),
            None => (decode(p), String::new()),
        })
        .collect()
}

fn param<'a>(q: &'a [(String, String)], key: &str) -> Option<&'a str> {
    q.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn authorized(state: &AdminState, headers: &HeaderMap) -> bool {
    let Some(token) = &state.token else {
        return true;
    };
    headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
        .is_some_and(|presented| token.matches(presented))
}

fn answer(result: Result<Value, OpsError>) -> Response {
    match result {
        Ok(v) => json_answer(StatusCode::OK, v),
        Err(OpsError::UnknownRoute(r)) => json_answer(
            StatusCode::NOT_FOUND,
            json!({ "error": format!("no async route named {r:?}") }),
        ),
        Err(OpsError::Store(e)) => {
            tracing::error!(error = %e, "Admin operation failed.");
            json_answer(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({ "error": "store unavailable" }),
            )
        }
    }
}

fn json_answer(status: StatusCode, body: Value) -> Response {
    (
        status,
        [(http::header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn unauthorized() -> Response {
    json_answer(
        StatusCode::UNAUTHORIZED,
        json!({ "error": "admin token missing or wrong" }),
    )
}

async fn outbox(State(s): State<AdminState>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let q = query(&uri);
    answer(s.ops.status(param(&q, "route")).await)
}

async fn list(State(s): State<AdminState>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let q = query(&uri);
    let after = param(&q, "after").and_then(|v| v.parse().ok()).unwrap_or(0);
    let limit = param(&q, "limit")
        .and_then(|v| v.parse().ok())
        .unwrap_or(100usize);
    answer(s.ops.list(param(&q, "route"), after, limit).await)
}

async fn replay(State(s): State<AdminState>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let q = query(&uri);
    answer(s.ops.replay(param(&q, "route"), param(&q, "id")).await)
}

async fn drop_dead(State(s): State<AdminState>, headers: HeaderMap, uri: Uri) -> Response {
    if !authorized(&s, &headers) {
        return unauthorized();
    }
    let q = query(&uri);
    answer(s.ops.drop_dead(param(&q, "route"), param(&q, "id")).await)
}

/// The async route names of a configuration.
pub fn async_routes(settings: &crate::config::Settings) -> Vec<String> {
    settings
        .routes
        .iter()
        .filter(|r| r.delivery == crate::config::spec::DeliveryMode::Async)
        .map(|r| r.name.to_string())
        .collect()
}

/// What the CLI asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CliAction {
    /// `hookgate outbox`.
    Status,
    /// `hookgate dead-letters list`.
    List,
    /// `hookgate dead-letters replay`.
    Replay,
    /// `hookgate dead-letters drop`.
    Drop,
}

/// Exit status: success.
pub const EXIT_OK: u8 = 0;
/// Exit status: the gateway (or the store) refused.
pub const EXIT_REFUSED: u8 = 1;
/// Exit status: the gateway cannot be reached (and its store cannot be opened).
pub const EXIT_UNREACHABLE: u8 = 2;

/// The CLI: asks the admin listener (`admin_url`, or the config's `[admin] listen`);
/// when no gateway answers, runs the same operation on the config's store file.
/// Prints the JSON answer on stdout; returns the exit status.
pub fn cli(
    action: CliAction,
    settings: Option<&crate::config::Settings>,
    admin_url: Option<&str>,
    route: Option<&str>,
    id: Option<&str>,
) -> u8 {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("hookgate: cannot start: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    runtime.block_on(cli_async(action, settings, admin_url, route, id))
}

async fn cli_async(
    action: CliAction,
    settings: Option<&crate::config::Settings>,
    admin_url: Option<&str>,
    route: Option<&str>,
    id: Option<&str>,
) -> u8 {
    let base = admin_url
        .map(|u| u.trim_end_matches('/').to_owned())
        .or_else(|| {
            settings
                .and_then(|s| s.admin.as_ref())
                .map(|a| format!("http://{}", a.listen))
        });
    let token = settings
        .and_then(|s| s.admin.as_ref())
        .and_then(|a| a.token.clone());
    if let Some(base) = base {
        match remote(action, &base, token.as_ref(), route, id).await {
            Ok((ok, body)) => {
                println!("{body}");
                return if ok { EXIT_OK } else { EXIT_REFUSED };
            }
            Err(e) => {
                if settings.is_none() || admin_url.is_some() {
                    eprintln!("hookgate: the gateway at {base} cannot be reached: {e}");
                    return EXIT_UNREACHABLE;
                }
                eprintln!("hookgate: no gateway answers at {base}; using the store directly");
            }
        }
    }
    let Some(settings) = settings else {
        eprintln!("hookgate: give --config or --admin");
        return EXIT_UNREACHABLE;
    };
    // The embedded file (of a stopped gateway), or Redis, which every replica shares
    // and which the CLI may use while gateways run.
    let store = match settings.store.backend {
        crate::config::spec::StoreBackendName::Embedded => {
            Store::open_embedded(&settings.store.path)
        }
        crate::config::spec::StoreBackendName::Redis => crate::open_store(&settings.store),
        crate::config::spec::StoreBackendName::Memory => {
            eprintln!("hookgate: the gateway is not reachable and its store is not a file");
            return EXIT_UNREACHABLE;
        }
    };
    let store = match store {
        Ok(s) => s,
        Err(e) => {
            eprintln!("hookgate: cannot open the store: {e}");
            return EXIT_UNREACHABLE;
        }
    };
    let ops = Ops::new(&store, async_routes(settings));
    let result = match action {
        CliAction::Status => ops.status(route).await,
        CliAction::List => ops.list(route, 0, MAX_PAGE).await,
        CliAction::Replay => ops.replay(route, id).await,
        CliAction::Drop => ops.drop_dead(route, id).await,
    };
    match result {
        Ok(v) => {
            println!("{v}");
            EXIT_OK
        }
        Err(e) => {
            eprintln!("hookgate: {e}");
            EXIT_REFUSED
        }
    }
}

async fn remote(
    action: CliAction,
    base: &str,
    token: Option<&Secret>,
    route: Option<&str>,
    id: Option<&str>,
) -> Result<(bool, String), reqwest::Error> {
    // reqwest is built without a bundled crypto provider; ring is ours.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let client = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(30))
        .build()?;
    let (method, path) = match action {
        CliAction::Status => (http::Method::GET, "/outbox"),
        CliAction::List => (http::Method::GET, "/dead-letters"),
        CliAction::Replay => (http::Method::POST, "/dead-letters/replay"),
        CliAction::Drop => (http::Method::POST, "/dead-letters/drop"),
    };
    let mut url = format!("{base}{path}?");
    let enc = |v: &str| {
        percent_encoding::utf8_percent_encode(v, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    if let Some(r) = route {
        url.push_str(&format!("route={}&", enc(r)));
    }
    if let Some(i) = id {
        url.push_str(&format!("id={}&", enc(i)));
    }
    let mut req = client.request(method, url.trim_end_matches(['?', '&']));
    if let Some(t) = token {
        let mut value = b"Bearer ".to_vec();
        value.extend_from_slice(t.expose());
        if let Ok(v) = http::HeaderValue::from_bytes(&value) {
            req = req.header(http::header::AUTHORIZATION, v);
        }
    }
    let response = req.send().await?;
    let ok = response.status().is_success();
    let body = response.text().await?;
    Ok((ok, body))
}
