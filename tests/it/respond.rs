//! `respond = { status, body, content_type }`: the answer senders with response
//! validators (Apono) see for events the gateway acknowledges itself.

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str, delivery: &str) -> String {
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "apono"
path = "/hooks/apono"
upstream = "{upstream}"
delivery = "{delivery}"
dedup_key = "/id"
respond = {{ status = 200, body = '{{"data":{{"ok":true}}}}', content_type = "application/json" }}
"#
    )
}

async fn post(gw: &Gateway, id: &str) -> reqwest::Response {
    client()
        .post(gw.url("/hooks/apono"))
        .header("content-type", "application/json")
        .body(format!(r#"{{"id":"{id}"}}"#))
        .send()
        .await
        .expect("send")
}

#[tokio::test]
async fn async_accepted_and_duplicate_get_the_custom_answer() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), "async")).await;
    let r = post(&gw, "a1").await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "accepted");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.text().await.expect("text"), r#"{"data":{"ok":true}}"#);
    let got = up.next().await;
    assert_eq!(&got.body[..], br#"{"id":"a1"}"#);
    let r = post(&gw, "a1").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
    assert_eq!(r.text().await.expect("text"), r#"{"data":{"ok":true}}"#);
    up.assert_nothing().await;
}

/// A sync route's upstream answer is passed back as it is: the upstream is the one that
/// can say what the sender expects. The duplicate is the gateway's to answer.
#[tokio::test]
async fn sync_forwarded_keeps_the_upstream_answer_duplicate_is_custom() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), "sync")).await;
    let r = post(&gw, "s1").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(r.text().await.expect("text"), r#"{"upstream":"ok"}"#);
    up.next().await;
    let r = post(&gw, "s1").await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
    assert_eq!(r.text().await.expect("text"), r#"{"data":{"ok":true}}"#);
    up.assert_nothing().await;
}

/// Refusals keep the contract's answer: a custom answer only replaces acknowledgements.
#[tokio::test]
async fn refusals_keep_the_contract_answer() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), "async")).await;
    let r = client()
        .post(gw.url("/hooks/apono"))
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (400, "invalid_json".into())
    );
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["verdict"], "invalid_json");
}

#[test]
fn respond_is_checked_at_start_up() {
    let bad = |respond: &str| {
        let text = format!(
            "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nrespond = {respond}\n"
        );
        hookgate::config::from_str(&text, "t")
            .expect_err("refused")
            .to_string()
    };
    let e = bad("{ status = 500 }");
    assert!(
        e.contains("route[0].respond.status") && e.contains("2xx"),
        "{e}"
    );
    let e = bad("{ status = 204, body = \"x\" }");
    assert!(e.contains("route[0].respond.body"), "{e}");
    let e = bad("{ content_type = \"a\\nb\" }");
    assert!(e.contains("route[0].respond.content_type"), "{e}");
    let e = bad("{ stauts = 200 }");
    assert!(e.contains("stauts"), "{e}");
    let ok = "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nrespond = { status = 202 }\n";
    assert!(hookgate::config::from_str(ok, "t").is_ok());
}
