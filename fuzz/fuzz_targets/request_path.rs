//! The whole request path through the router on arbitrary requests: never panics, every
//! answer carries a contract verdict, and the status is the one the contract gives it.
#![no_main]

use std::net::SocketAddr;
use std::sync::OnceLock;

use axum::body::Body;
use axum::extract::ConnectInfo;
use hookgate::verdict::Verdict;
use libfuzzer_sys::fuzz_target;
use tower::ServiceExt as _;

struct World {
    rt: tokio::runtime::Runtime,
    app: axum::Router,
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let dir = std::env::temp_dir().join(format!("hookgate-fuzz-{}", std::process::id()));
        let config = format!(
            r#"
[server]
max_body_bytes = 8192
max_json_depth = 32
[store]
backend = "memory"
[[route]]
name = "fd"
path = "/hooks/fd"
preset = "flashduty-incident"
allow_ips = ["127.0.0.1"]
upstream = "file://{0}/fd.jsonl"
auth = {{ type = "bearer", tokens = ["tok"] }}
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
        World { rt, app }
    })
}

const METHODS: &[&str] = &["POST", "GET", "PUT", "DELETE"];
const PATHS: &[&str] = &["/hooks/fd", "/hooks/sw", "/nope", "/healthz"];
const HEADERS: &[&str] = &[
    "authorization",
    "content-type",
    "content-length",
    "x-forwarded-for",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
];

fuzz_target!(|input: (u8, u8, Vec<(u8, Vec<u8>)>, Vec<u8>)| {
    let (method, path, headers, body) = input;
    let w = world();
    let path = PATHS[usize::from(path) % PATHS.len()];
    let mut req = http::Request::builder()
        .method(METHODS[usize::from(method) % METHODS.len()])
        .uri(path);
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
    let Ok(mut req) = req.body(Body::from(body)) else {
        return;
    };
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("addr");
    req.extensions_mut().insert(ConnectInfo(peer));
    let response =
        w.rt.block_on(w.app.clone().oneshot(req))
            .expect("infallible");
    if path == "/healthz" {
        return;
    }
    let verdict = response
        .headers()
        .get("x-hookgate-verdict")
        .and_then(|v| v.to_str().ok())
        .expect("every answer carries a verdict");
    let v = Verdict::ALL
        .iter()
        .find(|v| v.as_str() == verdict)
        .expect("a contract verdict");
    match v {
        Verdict::Forwarded => assert_eq!(response.status(), 200, "file sinks answer 200"),
        Verdict::UpstreamError => assert!(matches!(response.status().as_u16(), 502 | 504)),
        other => assert_eq!(response.status(), other.status(), "{verdict}"),
    }
});
