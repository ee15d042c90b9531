//! 401 `unauthorized` for header credentials; consumed credentials are not forwarded.

use base64::Engine as _;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str, auth: &str) -> String {
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
upstream = "{upstream}"
auth = {auth}
"#
    )
}

async fn post(gw: &Gateway, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(gw.url("/hooks/r")).body(r#"{"a":1}"#);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("send")
}

async fn assert_401(gw: &Gateway, up: &Upstream, headers: &[(&str, &str)]) {
    let r = post(gw, headers).await;
    assert_eq!(r.status(), 401, "headers {headers:?}");
    assert_eq!(verdict(&r), "unauthorized");
    let body: serde_json::Value = r.json().await.expect("json");
    assert_eq!(body["detail"], "credentials missing or invalid");
    up.assert_nothing().await;
}

#[tokio::test]
async fn bearer_tokens_with_rotation_from_env_and_file() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("token");
    std::fs::write(&file, "from-file\n").expect("write");
    // SAFETY of the test: the variable name is unique to this test.
    let auth = format!(
        r#"{{ type = "bearer", tokens = ["literal-token", "file:{}"] }}"#,
        file.display()
    );
    let gw = Gateway::start(&config(&up.url("/in"), &auth)).await;
    for token in ["literal-token", "from-file"] {
        let r = post(&gw, &[("authorization", &format!("Bearer {token}"))]).await;
        assert_eq!(r.status(), 200);
        let got = up.next().await;
        assert!(
            got.headers.get("authorization").is_none(),
            "credential forwarded"
        );
    }
    assert_401(&gw, &up, &[]).await;
    assert_401(&gw, &up, &[("authorization", "Bearer wrong")]).await;
    assert_401(&gw, &up, &[("authorization", "Bearer literal-toke")]).await;
    assert_401(&gw, &up, &[("authorization", "Basic bGl0ZXJhbC10b2tlbg==")]).await;
}

#[tokio::test]
async fn basic_auth() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#"{ type = "basic", users = { apono = "s3cret", other = "pw2" } }"#,
    ))
    .await;
    let good = base64::engine::general_purpose::STANDARD.encode("apono:s3cret");
    let r = post(&gw, &[("authorization", &format!("Basic {good}"))]).await;
    assert_eq!(r.status(), 200);
    assert!(up.next().await.headers.get("authorization").is_none());
    let wrong = base64::engine::general_purpose::STANDARD.encode("apono:pw2");
    assert_401(&gw, &up, &[("authorization", &format!("Basic {wrong}"))]).await;
    assert_401(&gw, &up, &[("authorization", "Basic %%%")]).await;
    assert_401(&gw, &up, &[]).await;
}

#[tokio::test]
async fn custom_headers_all_required() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#"{ type = "header", headers = { "X-Wallarm-Token" = ["t1", "t2"], "X-Tenant" = ["acme"] } }"#,
    ))
    .await;
    let r = post(
        &gw,
        &[
            ("x-wallarm-token", "t2"),
            ("x-tenant", "acme"),
            ("x-other", "kept"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = up.next().await;
    assert!(got.headers.get("x-wallarm-token").is_none());
    assert!(got.headers.get("x-tenant").is_none());
    assert_eq!(got.headers["x-other"], "kept");
    assert_401(&gw, &up, &[("x-wallarm-token", "t2")]).await;
    assert_401(&gw, &up, &[("x-wallarm-token", "t3"), ("x-tenant", "acme")]).await;
    assert_401(&gw, &up, &[("x-wallarm-token", "t1"), ("x-tenant", "ACME")]).await;
}
