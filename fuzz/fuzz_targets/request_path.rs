//! The whole request path through the router (`tower::ServiceExt::oneshot`) on
//! arbitrary method, path, headers and body.
//!
//! Invariants: nothing panics; every answer carries a contract verdict with the status
//! the contract gives it, a JSON body naming the same verdict and the route, and the
//! headers the contract requires (`Allow` on 405, `Retry-After` on 429 and 409); a file
//! sink grows by exactly one line when, and only when, the answer is `forwarded`, and
//! that line holds the request body (same JSON document) and the route.
#![no_main]

use std::net::SocketAddr;
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
}

/// Removes the sink directories of earlier runs whose process is gone.
fn sweep_stale(base: &Path) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|n| n.strip_prefix("hookgate-fuzz-request-path-"))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(e.path());
        }
    }
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        // The sinks fsync every line: keep them in memory where there is a tmpfs.
        let base = Some(PathBuf::from("/dev/shm"))
            .filter(|p| p.is_dir())
            .unwrap_or_else(std::env::temp_dir);
        sweep_stale(&base);
        let dir = base.join(format!("hookgate-fuzz-request-path-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let config = format!(
            r#"
[server]
max_body_bytes = 8192
max_json_depth = 32
trusted_proxies = ["127.0.0.0/8"]
[store]
backend = "memory"
[[route]]
name = "fd"
path = "/hooks/fd"
preset = "flashduty-incident"
allow_ips = ["127.0.0.1", "10.0.0.0/8"]
upstream = "file://{0}/fd.jsonl"
auth = {{ type = "bearer", tokens = ["tok"] }}
[[route]]
name = "open"
path = "/hooks/open"
methods = ["POST", "PUT"]
upstream = "file://{0}/open.jsonl"
[[route]]
name = "limited"
path = "/hooks/limited"
upstream = "file://{0}/limited.jsonl"
dedup_key = "body-sha256"
rate_limit = {{ per_second = 1, burst = 2 }}
[[route]]
name = "sw"
path = "/hooks/sw"
upstream = "file://{0}/sw.jsonl"
dedup_key = "header:webhook-id"
auth = {{ type = "standard-webhooks", secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }}
"#,
            dir.display()
        );
        let settings = hookgate::config::from_str(&config, "fuzz").expect("config");
        let app = {
            let _guard = rt.enter();
            hookgate::server::router(hookgate::build(settings).expect("gateway"))
        };
        World { rt, app, dir }
    })
}

const METHODS: &[&str] = &["POST", "PUT", "GET", "DELETE", "PATCH"];
/// Request paths, and the route (and sink file) each one reaches.
const PATHS: &[(&str, Option<&str>)] = &[
    ("/hooks/fd", Some("fd")),
    ("/hooks/open", Some("open")),
    ("/hooks/limited", Some("limited")),
    ("/hooks/sw", Some("sw")),
    ("/hooks/open?q=1", Some("open")),
    ("/hooks/fd/", None),
    ("/nope", None),
    ("/healthz", None),
];
const HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "x-forwarded-for",
    "forwarded",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];
/// Sink files only grow: start over past this size.
const SINK_RESET_BYTES: u64 = 1 << 20;

fn sink_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// The Flashduty fixture the `fd` route's schema accepts; its keys are fuzzed.
const FIXTURE: &str =
    include_str!("../../tests/schemas/flashduty-incident/valid/minimal-required-only.json");

#[derive(Debug, Arbitrary)]
enum Auth {
    None,
    Good,
    Raw(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum EventTime {
    Int(i64),
    Float(f64),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum RequestBody {
    /// Any bytes.
    Raw(Vec<u8>),
    /// The fixture with a fuzzed event id, incident id (the order key) and event time,
    /// so that inputs reach the schema, the keys, the store and the sink.
    Event {
        id: String,
        incident: String,
        time: EventTime,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: u8,
    auth: Auth,
    headers: Vec<(u8, Vec<u8>)>,
    body: RequestBody,
}

fn render(body: RequestBody) -> Vec<u8> {
    match body {
        RequestBody::Raw(bytes) => bytes,
        RequestBody::Event { id, incident, time } => {
            let quoted = |s: &str| serde_json::to_string(s).expect("a string serialises");
            let time = match time {
                EventTime::Int(i) => i.to_string(),
                EventTime::Float(f) => serde_json::to_string(&f).expect("a float serialises"),
                EventTime::Raw(s) => s,
            };
            FIXTURE
                .replace("\"0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a\"", &quoted(&id))
                .replace("\"6554a5f0c2d3e4f5a6b7c8d9\"", &quoted(&incident))
                .replacen("1700000000000", &time, 1)
                .into_bytes()
        }
    }
}

fuzz_target!(|input: Input| {
    let Input {
        method,
        path,
        auth,
        headers,
        body,
    } = input;
    let body = render(body);
    let w = world();
    let (path, route) = PATHS[usize::from(path) % PATHS.len()];
    let mut req = http::Request::builder()
        .method(METHODS[usize::from(method) % METHODS.len()])
        .uri(path);
    match auth {
        Auth::None => {}
        Auth::Good => req = req.header("authorization", "Bearer tok"),
        Auth::Raw(v) => {
            if let Ok(v) = http::HeaderValue::from_bytes(&v) {
                req = req.header("authorization", v);
            }
        }
    }
    for (name, value) in headers {
        let name = HEADERS[usize::from(name) % HEADERS.len()];
        // A wrong Content-Length is the connection layer's business (hyper refuses it
        // before the router); here the body is what was sent.
        if name == "content-length" {
            continue;
        }
        if let Ok(v) = http::HeaderValue::from_bytes(&value) {
            req = req.header(name, v);
        }
    }
    let Ok(mut req) = req.body(Body::from(body.clone())) else {
        return;
    };
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(peer));

    let sink = route.map(|r| w.dir.join(format!("{r}.jsonl")));
    let before = sink.as_deref().map_or(0, sink_len);
    let (parts, answer) = w.rt.block_on(async {
        let response = w.app.clone().oneshot(req).await.expect("infallible");
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .expect("answer body");
        (parts, bytes)
    });
    if path == "/healthz" {
        return;
    }

    // The verdict and its status.
    let verdict = parts
        .headers
        .get("x-hookgate-verdict")
        .and_then(|v| v.to_str().ok())
        .expect("every answer carries a verdict");
    let v = Verdict::ALL
        .iter()
        .copied()
        .find(|v| v.as_str() == verdict)
        .expect("a contract verdict");
    let status = parts.status;
    match v {
        // File sinks answer for themselves: 200.
        Verdict::Forwarded => assert_eq!(status, 200, "file sinks answer 200"),
        Verdict::UpstreamError => assert!(matches!(status.as_u16(), 502 | 504)),
        other => assert_eq!(status, other.status(), "{verdict}"),
    }
    let needs = match v {
        Verdict::MethodNotAllowed => Some(http::header::ALLOW),
        Verdict::RateLimited | Verdict::InFlight => Some(http::header::RETRY_AFTER),
        _ => None,
    };
    if let Some(h) = needs {
        assert!(parts.headers.contains_key(&h), "{verdict} without {h}");
    }

    // The answer body names the verdict and the route.
    let json: Value = serde_json::from_slice(&answer).expect("a JSON answer");
    assert_eq!(json["verdict"], verdict, "{json}");
    assert_eq!(
        json["route"],
        route.map_or(Value::Null, Value::from),
        "{json}"
    );

    // The sink got one line exactly when the event was forwarded.
    let Some(sink) = sink else {
        assert_ne!(v, Verdict::Forwarded, "forwarded without a route");
        return;
    };
    let after = sink_len(&sink);
    if v != Verdict::Forwarded {
        assert_eq!(after, before, "{verdict} but the sink grew");
        return;
    }
    let all = std::fs::read(&sink).expect("sink");
    let added = &all[usize::try_from(before).expect("size")..];
    assert!(
        added.ends_with(b"\n") && added.iter().filter(|b| **b == b'\n').count() == 1,
        "forwarded but not exactly one line was added"
    );
    let line: Value = serde_json::from_slice(added).expect("the line is JSON");
    let sent: Value = serde_json::from_slice(&body).expect("a forwarded body is JSON");
    assert_eq!(line["body"], sent, "the sink holds another document");
    assert_eq!(line["route"], route.map_or(Value::Null, Value::from));
    assert_eq!(line["event_id"], json["event_id"]);
    if after > SINK_RESET_BYTES {
        // The sink appends (O_APPEND): its next line lands at the new end, offset 0.
        std::fs::File::options()
            .write(true)
            .open(&sink)
            .and_then(|f| f.set_len(0))
            .expect("truncate sink");
    }
});
