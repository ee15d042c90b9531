//! Batches (`body = "json" | "ndjson" | "auto"`, `split`): Wallarm's NDJSON and JSON
//! array bodies, validated per element; split, each element is its own event.

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

const ELEMENT_SCHEMA: &str = r#"{
  "$schema": "https://json-schema.org/draft/2020-12/schema",
  "type": "object",
  "required": ["id", "entity", "t"],
  "properties": {"id": {"type": "string"}, "entity": {"type": "string"}, "t": {"type": "integer"}}
}"#;

struct Setup {
    gw: Gateway,
    up: Upstream,
    _dir: tempfile::TempDir,
}

async fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let schema = dir.path().join("element.json");
    std::fs::write(&schema, ELEMENT_SCHEMA).expect("schema");
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "batch"
path = "/hooks/batch"
upstream = "{}"
schema = "{}"
{extra}
"#,
        up.url("/in"),
        schema.display()
    ))
    .await;
    Setup { gw, up, _dir: dir }
}

async fn post(s: &Setup, content_type: &str, body: &str) -> reqwest::Response {
    client()
        .post(s.gw.url("/hooks/batch"))
        .header("content-type", content_type)
        .body(body.to_owned())
        .send()
        .await
        .expect("send")
}

fn line(id: &str, entity: &str, t: u64) -> String {
    format!(r#"{{"id":"{id}","entity":"{entity}","t":{t}}}"#)
}

async fn detail(r: reqwest::Response) -> serde_json::Value {
    let v: serde_json::Value = r.json().await.expect("json");
    v["detail"].clone()
}

fn verdicts(detail: &serde_json::Value) -> Vec<String> {
    detail["elements"]
        .as_array()
        .expect("elements")
        .iter()
        .map(|e| e["verdict"].as_str().expect("verdict").to_owned())
        .collect()
}

const SPLIT: &str = r#"body = "ndjson"
split = true
dedup_key = "/id"
order_key = "/entity"
order_time = "/t""#;

#[tokio::test]
async fn ndjson_split_delivers_each_line_as_its_own_event() {
    let s = setup(SPLIT).await;
    let body = format!(
        "{}\n{}\r\n\n{}\n",
        line("a1", "x", 1),
        line("a2", "y", 1),
        line("a3", "x", 2)
    );
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    let d = detail(r).await;
    assert_eq!(verdicts(&d), ["forwarded", "forwarded", "forwarded"]);
    assert_eq!(d["elements"][1]["event_id"], "a2");
    assert_eq!(d["not_attempted"], 0);
    for (id, entity, t) in [("a1", "x", 1), ("a2", "y", 1), ("a3", "x", 2)] {
        let got = s.up.next().await;
        assert_eq!(got.body, line(id, entity, t).as_bytes(), "byte for byte");
        assert_eq!(got.headers["x-hookgate-event-id"], id);
        assert_eq!(got.headers["content-type"], "application/json");
    }
    s.up.assert_nothing().await;

    // Partial duplicates and a stale element: only the new one is delivered.
    let body = format!(
        "{}\n{}\n{}\n",
        line("a2", "y", 1),
        line("a0", "x", 0),
        line("a4", "y", 5)
    );
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(
        verdicts(&detail(r).await),
        ["duplicate", "stale", "forwarded"]
    );
    assert_eq!(s.up.next().await.body, line("a4", "y", 5).as_bytes());
    s.up.assert_nothing().await;

    // Every element already seen: the batch is a duplicate, 200.
    let r = post(&s, "application/x-ndjson", &line("a4", "y", 5)).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn array_split_and_one_bad_element_refuses_the_batch_naming_its_index() {
    let s = setup(&SPLIT.replace("\"ndjson\"", "\"json\"")).await;
    let body = format!(
        "[{}, {{\"id\":\"b2\",\"entity\":\"x\"}}, {}]",
        line("b1", "x", 1),
        line("b3", "x", 3)
    );
    let r = post(&s, "application/json", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (422, "invalid_schema".into())
    );
    let d = detail(r).await;
    assert_eq!(d[0]["instance_path"], "/1", "{d}");
    assert!(
        d[0]["message"].as_str().expect("msg").contains("element 1"),
        "{d}"
    );
    s.up.assert_nothing().await;

    let body = format!("[{} , {}]", line("b1", "x", 1), line("b3", "x", 3));
    let r = post(&s, "application/json", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(s.up.next().await.body, line("b1", "x", 1).as_bytes());
    assert_eq!(s.up.next().await.body, line("b3", "x", 3).as_bytes());
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn a_line_that_is_not_json_is_400_naming_the_element() {
    let s = setup(SPLIT).await;
    let body = format!("{}\n{{\"id\":\n", line("c1", "x", 1));
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (400, "invalid_json".into())
    );
    let v: serde_json::Value = r.json().await.expect("json");
    let d = v["detail"].as_str().expect("detail");
    assert!(d.starts_with("element 1 (line 2)"), "{d}");
    s.up.assert_nothing().await;
}

/// The batch stops at the first element the upstream refuses; nothing after it is
/// attempted, and the sender's retry delivers the rest (the delivered ones are duplicates).
#[tokio::test]
async fn a_refused_element_stops_the_batch_and_the_retry_completes_it() {
    let s = setup(SPLIT).await;
    let body = format!(
        "{}\n{}\n{}\n",
        line("d1", "x", 1),
        line("d2", "x", 2),
        line("d3", "x", 3)
    );
    let r = post(&s, "application/x-ndjson", &line("d1", "x", 1)).await;
    assert_eq!(r.status(), 200);
    s.up.next().await;
    s.up.set_status(500);
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (500, "forwarded".into())
    );
    let d = detail(r).await;
    assert_eq!(verdicts(&d), ["duplicate", "forwarded"]);
    assert_eq!(d["elements"][1]["status"], 500);
    assert_eq!(d["not_attempted"], 1);
    assert_eq!(s.up.next().await.body, line("d2", "x", 2).as_bytes());
    s.up.assert_nothing().await;
    s.up.set_status(200);
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(
        verdicts(&detail(r).await),
        ["duplicate", "forwarded", "forwarded"]
    );
    assert_eq!(s.up.next().await.body, line("d2", "x", 2).as_bytes());
    assert_eq!(s.up.next().await.body, line("d3", "x", 3).as_bytes());
}

/// Without split the batch is validated element by element and forwarded whole.
#[tokio::test]
async fn without_split_the_batch_is_validated_per_element_and_forwarded_whole() {
    let s = setup("body = \"auto\"\ndedup_key = \"body-sha256\"").await;
    let ndjson = format!("{}\n{}\n", line("e1", "x", 1), line("e2", "x", 2));
    let r = post(&s, "application/x-ndjson", &ndjson).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    let got = s.up.next().await;
    assert_eq!(got.body, ndjson.as_bytes());
    assert_eq!(got.headers["content-type"], "application/x-ndjson");
    let r = post(&s, "application/x-ndjson", &ndjson).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
    // A JSON array under `auto` is a batch too.
    let array = format!("[{},{}]", line("e3", "x", 1), line("e4", "x", 2));
    let r = post(&s, "application/json", &array).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(s.up.next().await.body, array.as_bytes());
    // One bad element refuses the whole body.
    let bad = format!("{}\n{{\"id\":\"e6\"}}\n", line("e5", "x", 1));
    let r = post(&s, "application/x-ndjson", &bad).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (422, "invalid_schema".into())
    );
    assert_eq!(detail(r).await[0]["instance_path"], "/1");
    s.up.assert_nothing().await;
}

#[tokio::test]
async fn async_split_accepts_each_element() {
    let s = setup(&format!("{SPLIT}\ndelivery = \"async\"")).await;
    let body = format!("{}\n{}\n", line("f1", "x", 1), line("f2", "y", 1));
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!((r.status().as_u16(), verdict(&r)), (202, "accepted".into()));
    assert_eq!(verdicts(&detail(r).await), ["accepted", "accepted"]);
    let mut got = vec![s.up.next().await.body, s.up.next().await.body];
    got.sort();
    assert_eq!(
        got,
        [
            line("f1", "x", 1).into_bytes(),
            line("f2", "y", 1).into_bytes()
        ]
    );
    let r = post(&s, "application/x-ndjson", &body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "duplicate".into())
    );
}

#[test]
fn batch_keys_are_checked_at_start_up() {
    let cfg = |extra: &str| {
        format!(
            "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\n{extra}\n"
        )
    };
    let e = hookgate::config::from_str(&cfg("body = \"ndjson\"\ndedup_key = \"/id\""), "t")
        .expect_err("pointer without split")
        .to_string();
    assert!(
        e.contains("route[0].dedup_key") && e.contains("split"),
        "{e}"
    );
    let e = hookgate::config::from_str(&cfg("split = true\ndedup_key = \"header:x-id\""), "t")
        .expect_err("header with split")
        .to_string();
    assert!(e.contains("route[0].dedup_key"), "{e}");
    let e = hookgate::config::from_str(&cfg("body = \"jsonl\""), "t")
        .expect_err("unknown format")
        .to_string();
    assert!(e.contains("jsonl"), "{e}");
}

/// FACTS.md §2.1/§2.5: the `wallarm-ndjson` preset reads Wallarm's NDJSON format (and its
/// JSON-array test messages), validating every notification on its own.
#[tokio::test]
async fn wallarm_ndjson_preset_validates_each_notification() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "wallarm"
path = "/hooks/wallarm"
preset = "wallarm-ndjson"
allow_ips = ["127.0.0.1"]
upstream = "{}"
"#,
        up.url("/in")
    ))
    .await;
    let notification = |cloud: &str| {
        format!(
            r#"{{"summary":"[Wallarm] Trigger: New IP address was denylisted","description":"Notification type: ip_blocked\n","details":{{"client_name":"TestCompany","cloud":"{cloud}","notification_type":"ip_blocked","trigger_name":"Notification about denylisted IP","application":"Application #8","reason":"Produces many attacks","expire_at":"2021-06-10 02:27:15 +0300","ip":"1.1.1.1"}}}}"#
        )
    };
    let send = |body: String| {
        client()
            .post(gw.url("/hooks/wallarm"))
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
    };
    let ndjson = format!("{}\n{}\n", notification("EU"), notification("US"));
    let r = send(ndjson.clone()).await.expect("send");
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(up.next().await.body, ndjson.as_bytes());
    // Test notifications come as a JSON array whatever the format.
    let array = format!("[{}]", notification("EU"));
    let r = send(array.clone()).await.expect("send");
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(up.next().await.body, array.as_bytes());
    // An unknown cloud on the second line: 422 naming element 1.
    let bad = format!("{}\n{}\n", notification("EU"), notification("MARS"));
    let r = send(bad).await.expect("send");
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (422, "invalid_schema".into())
    );
    let v: serde_json::Value = r.json().await.expect("json");
    assert!(
        v["detail"][0]["instance_path"]
            .as_str()
            .expect("path")
            .starts_with("/1/details"),
        "{v}"
    );
    up.assert_nothing().await;
}
