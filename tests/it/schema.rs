//! Bundled schemas: every fixture through `hookgate validate` and through the HTTP
//! route; `schema_mode = "monitor"`; the official JSON Schema Test Suite through the
//! code path `validate` uses for users' schemas.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn fixtures(schema: &str, kind: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas")
        .join(schema)
        .join(kind);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}

fn schema_names() -> Vec<&'static str> {
    hookgate::schema::BUNDLED.iter().map(|(n, _)| *n).collect()
}

#[test]
fn validate_command_accepts_every_valid_fixture() {
    for name in schema_names() {
        let files = fixtures(name, "valid");
        let out = Command::new(BIN)
            .args(["validate", "--schema", name])
            .args(&files)
            .output()
            .expect("run");
        assert_eq!(
            out.status.code(),
            Some(0),
            "{name}: {}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

#[test]
fn validate_command_rejects_every_invalid_fixture_with_paths() {
    for name in schema_names() {
        let files = fixtures(name, "invalid");
        let out = Command::new(BIN)
            .args(["validate", "--format", "json", "--schema", name])
            .args(&files)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{name}");
        let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json report");
        let results = report["results"].as_array().expect("results");
        assert_eq!(results.len(), files.len());
        for r in results {
            assert_eq!(r["valid"], false, "{name}: {} passed", r["file"]);
            assert!(
                r.get("unreadable").is_none(),
                "{name}: {} unreadable",
                r["file"]
            );
            let errors = r["errors"].as_array().expect("errors");
            assert!(!errors.is_empty());
            for e in errors {
                assert!(
                    e["instance_path"].is_string()
                        && e["keyword"].is_string()
                        && e["message"].is_string()
                );
            }
        }
    }
}

#[test]
fn validate_command_exit_codes_and_text_output() {
    let valid = fixtures("flashduty-incident", "valid").remove(0);
    let invalid = fixtures("flashduty-incident", "invalid").remove(0);
    // stdin
    let mut child = Command::new(BIN)
        .args(["validate", "--schema", "flashduty-incident"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin
            .write_all(&std::fs::read(&valid).expect("read"))
            .expect("write");
    }
    let out = child.wait_with_output().expect("wait");
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "-: valid\n");
    // mixed: invalid wins, text names the path and keyword
    let out = Command::new(BIN)
        .args(["validate", "--schema", "flashduty-incident"])
        .arg(&valid)
        .arg(&invalid)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(": invalid ("), "{text}");
    // unknown schema and unreadable input are 2
    let out = Command::new(BIN)
        .args(["validate", "--schema", "no-such-schema"])
        .arg(&valid)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("flashduty-incident"));
    let out = Command::new(BIN)
        .args(["validate", "--schema", "nops", "/no/such/file.json"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    // user schema file
    let dir = tempfile::tempdir().expect("tmp");
    let schema = dir.path().join("s.json");
    std::fs::write(&schema, r#"{"type":"object","required":["id"]}"#).expect("w");
    let doc = dir.path().join("d.json");
    std::fs::write(&doc, r#"{"name":"x"}"#).expect("w");
    let out = Command::new(BIN)
        .args(["validate", "--schema"])
        .arg(&schema)
        .arg(&doc)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("/: required:"));
}

#[test]
fn schemas_command_lists_and_shows() {
    let out = Command::new(BIN).arg("schemas").output().expect("run");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for name in schema_names() {
        assert!(text.contains(name), "{text}");
    }
    let out = Command::new(BIN)
        .args(["schemas", "show", "wallarm"])
        .output()
        .expect("run");
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("schema json");
    assert_eq!(v["$id"], "https://hookgate.dev/schemas/wallarm.json");
    let out = Command::new(BIN)
        .args(["schemas", "show", "nope"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
}

fn preset_route(name: &str, upstream: &str, mode: &str) -> String {
    // The preset's dedup keys stay on; a fresh memory store per gateway keeps fixtures
    // that share an event id independent.
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "{name}"
path = "/hooks/{name}"
preset = "{name}"
allow_ips = ["127.0.0.1"]
upstream = "{upstream}"
schema_mode = "{mode}"
"#
    )
}

#[tokio::test]
async fn http_route_forwards_valid_and_rejects_invalid_fixtures() {
    let up = Upstream::start().await;
    let c = client();
    for name in schema_names() {
        for file in fixtures(name, "valid") {
            let gw = Gateway::start(&preset_route(name, &up.url("/in"), "enforce")).await;
            let body = std::fs::read(&file).expect("read");
            let r = c
                .post(gw.url(&format!("/hooks/{name}")))
                .body(body.clone())
                .send()
                .await
                .expect("send");
            assert_eq!(
                verdict(&r),
                "forwarded",
                "{}: {:?}",
                file.display(),
                r.text().await
            );
            assert_eq!(&up.next().await.body[..], &body[..], "{}", file.display());
        }
        let gw = Gateway::start(&preset_route(name, &up.url("/in"), "enforce")).await;
        for file in fixtures(name, "invalid") {
            let body = std::fs::read(&file).expect("read");
            let r = c
                .post(gw.url(&format!("/hooks/{name}")))
                .body(body)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 422, "{}", file.display());
            assert_eq!(verdict(&r), "invalid_schema");
            let answer: serde_json::Value = r.json().await.expect("json");
            let detail = answer["detail"].as_array().expect("detail list");
            assert!(!detail.is_empty() && detail.len() <= 20);
            assert!(detail[0]["instance_path"].is_string() && detail[0]["keyword"].is_string());
        }
        up.assert_nothing().await;
    }
}

#[tokio::test]
async fn violation_list_is_bounded_to_20() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let schema = dir.path().join("s.json");
    std::fs::write(&schema, r#"{"additionalProperties":{"type":"string"}}"#).expect("w");
    let gw = Gateway::start(&format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"u\"\npath = \"/u\"\nschema = \"{}\"\nupstream = \"{}\"\n",
        schema.display(),
        up.url("/in")
    ))
    .await;
    let body: serde_json::Map<String, serde_json::Value> = (0..100)
        .map(|i| (format!("k{i}"), serde_json::json!(i)))
        .collect();
    let r = client()
        .post(gw.url("/u"))
        .json(&body)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    let answer: serde_json::Value = r.json().await.expect("json");
    assert_eq!(answer["detail"].as_array().expect("list").len(), 20);
    up.assert_nothing().await;
}

#[tokio::test]
async fn monitor_mode_forwards_and_counts_violations() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&preset_route("nops", &up.url("/in"), "monitor")).await;
    let c = client();
    let r = c
        .post(gw.url("/hooks/nops"))
        .body(r#"{"unexpected":true}"#)
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(&up.next().await.body[..], br#"{"unexpected":true}"#);
    let metrics = c
        .get(gw.url("/metrics"))
        .send()
        .await
        .expect("scrape")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hookgate_schema_violations_total{route=\"nops\"} 1"),
        "{metrics}"
    );
}
