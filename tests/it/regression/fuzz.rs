//! Regressions found by the fuzz targets in `fuzz/` (each names its target); the input
//! that found it is in `fuzz/seeds/<target>/`.

use crate::support::{client, gateway::Gateway, verdict};

/// `http_raw`: `GEZ /healthz` (any method but GET/HEAD on an operational endpoint) got
/// axum's bare 405, with no `X-Hookgate-Verdict` and an empty body; the contract
/// answers every request with a verdict.
#[tokio::test]
async fn fuzz_http_raw_operational_endpoints_answer_other_methods_with_the_contract_405() {
    let gw = Gateway::start(
        r#"
[store]
backend = "memory"
[[route]]
name = "open"
path = "/hooks/open"
upstream = "file:///dev/null"
"#,
    )
    .await;
    for path in ["/healthz", "/readyz", "/metrics"] {
        for method in ["POST", "DELETE", "GEZ"] {
            let m = http::Method::from_bytes(method.as_bytes()).expect("method");
            let r = client()
                .request(m, gw.url(path))
                .send()
                .await
                .expect("answer");
            assert_eq!(r.status(), 405, "{method} {path}");
            assert_eq!(verdict(&r), "method_not_allowed", "{method} {path}");
            let allow = r
                .headers()
                .get("allow")
                .expect("Allow")
                .to_str()
                .expect("ascii");
            assert!(allow.contains("GET"), "{allow}");
            let body: serde_json::Value = r.json().await.expect("a JSON body");
            assert_eq!(body["verdict"], "method_not_allowed");
        }
        // GET still answers as before.
        let r = client().get(gw.url(path)).send().await.expect("answer");
        assert_ne!(r.status(), 405, "GET {path}");
    }
}
