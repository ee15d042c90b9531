//! Your own configuration under fuzz: the request path through the router of the
//! gateway that the config file named by `HOOKGATE_FUZZ_CONFIG` builds (the built-in
//! default config when it is unset), on arbitrary methods, paths (the config's route
//! paths and near-misses), peers, headers and bodies.
//!
//! So that fuzzing never reaches a real service or a real store, the config is
//! rewritten before it is compiled: every route delivers synchronously to its own file
//! sink in a scratch directory (`upstream`, `upstream_ca`, `delivery` replaced), the
//! store is `memory`, and `tls` and `[admin]` are dropped. Everything else — routes,
//! allowlists, credentials (`env:`/`file:` secrets are read as usual), schemas, keys,
//! limits — is yours.
//!
//! Invariants: every answer obeys the contract (`check_answer`: a verdict with its
//! status and headers, a JSON body naming it); a route's sink grows by exactly one
//! line, holding the request's JSON document, when and only when the answer is
//! `forwarded`.
#![no_main]

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hookgate::verdict::Verdict;
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use tower::ServiceExt as _;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
    dir: PathBuf,
    /// (path, route name) of every route.
    routes: Vec<(String, String)>,
}

/// The config text made safe to fuzz (see the module docs).
fn rewrite(text: &str, dir: &Path) -> String {
    let mut doc: toml::Table = toml::from_str(text).expect("the config is TOML");
    if let Some(toml::Value::Table(server)) = doc.get_mut("server") {
        server.remove("tls");
    }
    doc.remove("admin");
    let mut store = toml::Table::new();
    store.insert("backend".into(), "memory".into());
    if let Some(toml::Value::Table(old)) = doc.get("store") {
        for key in ["dedup_ttl", "order_ttl"] {
            if let Some(v) = old.get(key) {
                store.insert(key.into(), v.clone());
            }
        }
    }
    doc.insert("store".into(), toml::Value::Table(store));
    if let Some(toml::Value::Array(routes)) = doc.get_mut("route") {
        for (i, r) in routes.iter_mut().enumerate() {
            if let toml::Value::Table(r) = r {
                let sink = format!("file://{}/{i}.jsonl", dir.display());
                r.insert("upstream".into(), sink.into());
                r.insert("delivery".into(), "sync".into());
                r.remove("upstream_ca");
                r.remove("retry");
            }
        }
    }
    toml::to_string(&doc).expect("TOML serialises")
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = hookgate_fuzz::scratch_dir("user-config");
        let (text, origin, base) = match std::env::var_os("HOOKGATE_FUZZ_CONFIG") {
            Some(path) => {
                let path = PathBuf::from(path);
                let text = std::fs::read_to_string(&path)
                    .unwrap_or_else(|e| panic!("HOOKGATE_FUZZ_CONFIG={}: {e}", path.display()));
                let base = path.parent().map(Path::to_path_buf);
                (text, path.display().to_string(), base)
            }
            None => (
                hookgate::config::DEFAULT_CONFIG.to_owned(),
                "built-in default".to_owned(),
                None,
            ),
        };
        let text = rewrite(&text, &dir);
        let settings = hookgate::config::compile_text(&text, &origin, base.as_deref())
            .unwrap_or_else(|e| panic!("the config does not load: {e}"));
        let routes = settings
            .routes
            .iter()
            .map(|r| (r.path.clone(), r.name.to_string()))
            .collect();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let app = {
            let _guard = rt.enter();
            hookgate::server::router(hookgate::build(settings).expect("gateway"))
        };
        World {
            rt,
            app,
            dir,
            routes,
        }
    })
}

const METHODS: &[&str] = &["POST", "PUT", "GET", "DELETE", "PATCH"];
const HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "x-forwarded-for",
    "forwarded",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "content-encoding",
    "via",
];

#[derive(Debug, Arbitrary)]
enum PeerIp {
    Loopback,
    V4([u8; 4]),
    V6([u8; 16]),
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    /// A route's path (or, past the routes, a near-miss of one).
    path: u8,
    suffix: u8,
    peer: PeerIp,
    headers: Vec<(u8, Vec<u8>)>,
    body: Vec<u8>,
}

fuzz_target!(|input: Input| {
    let w = world();
    let n = w.routes.len().max(1);
    let idx = usize::from(input.path) % (n + 2);
    let base = w.routes.get(idx % n).map_or("/", |(p, _)| p.as_str());
    let path = match (idx >= n, input.suffix % 4) {
        (false, _) | (true, 0) => base.to_owned(),
        (true, 1) => format!("{base}/"),
        (true, 2) => format!("{base}?q=1"),
        (true, _) => "/nope".to_owned(),
    };
    // The route (and sink) the path reaches: the router matches the path, not the query.
    let route = w
        .routes
        .iter()
        .enumerate()
        .find(|(_, (p, _))| Some(p.as_str()) == path.split('?').next());
    let mut req = http::Request::builder()
        .method(METHODS[usize::from(input.method) % METHODS.len()])
        .uri(&path);
    for (name, value) in input.headers.iter().take(8) {
        if let Ok(v) = http::HeaderValue::from_bytes(value) {
            req = req.header(HEADERS[usize::from(*name) % HEADERS.len()], v);
        }
    }
    let Ok(mut req) = req.body(Body::from(input.body.clone())) else {
        return;
    };
    let ip = match input.peer {
        PeerIp::Loopback => IpAddr::from([127, 0, 0, 1]),
        PeerIp::V4(b) => IpAddr::from(b),
        PeerIp::V6(b) => IpAddr::from(b),
    };
    req.extensions_mut()
        .insert(ConnectInfo(SocketAddr::new(ip, 40000)));

    let sink = route.map(|(i, _)| w.dir.join(format!("{i}.jsonl")));
    let len = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
    let before = sink.as_deref().map_or(0, len);
    let (parts, answer) = w.rt.block_on(async {
        let response = w.app.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("answer body");
        (parts, bytes)
    });
    let get = |name: &str| {
        parts
            .headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let verdict = hookgate_fuzz::check_answer(parts.status.as_u16(), get, &answer)
        .unwrap_or_else(|| panic!("{path}: an answer without a verdict"));
    let Some(sink) = sink else {
        assert_ne!(verdict, Verdict::Forwarded, "forwarded without a route");
        return;
    };
    let after = len(&sink);
    if verdict != Verdict::Forwarded {
        assert_eq!(after, before, "{verdict:?} but the sink grew");
        return;
    }
    let all = std::fs::read(&sink).expect("sink");
    let added = &all[usize::try_from(before).expect("size")..];
    assert_eq!(
        added.iter().filter(|b| **b == b'\n').count(),
        1,
        "forwarded but not exactly one line was added"
    );
    let line: Value = serde_json::from_slice(added).expect("the line is JSON");
    let sent: Value = serde_json::from_slice(&input.body).expect("a forwarded body is JSON");
    assert_eq!(line["body"], sent, "the sink holds another document");
    hookgate_fuzz::trim_sinks(&w.dir);
});
