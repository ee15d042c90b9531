//! Bundled schemas: every fixture through `hookgate validate` and through the HTTP
//! route; `schema_mode = "monitor"`; user schema sets: drafts without `$schema`, the
//! ref map, folders of documents and JUnit output (the official suite is in conformance.rs).

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

// === schema sets: drafts, ref map, folders, JUnit ===

fn run(args: &[&std::ffi::OsStr]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN).args(args).output().expect("run");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(path, text).expect("write");
}

/// A schema set split over nested folders that `$ref` each other by absolute `https://`
/// `$id`s, like the ones published by API vendors.
fn schema_set(root: &Path) -> PathBuf {
    let shared = root.join("shared");
    write(
        &shared.join("common/user.json"),
        r#"{"$id": "https://schemas.example.com/common/user.json",
            "type": "object", "required": ["email"],
            "properties": {"email": {"$ref": "types/email.json"}}}"#,
    );
    write(
        &shared.join("common/types/email.json"),
        r#"{"$id": "https://schemas.example.com/common/types/email.json",
            "type": "string", "pattern": "@"}"#,
    );
    shared
}

fn validate_doc(schema: &Path, map: &str, doc: &str) -> (Option<i32>, String, String) {
    let dir = schema.parent().expect("dir");
    let file = dir.join("doc.json");
    std::fs::write(&file, doc).expect("write");
    run(&[
        os("validate"),
        os("--schema"),
        schema.as_os_str(),
        os("--ref-map"),
        os(map),
        file.as_os_str(),
    ])
}

#[test]
fn ref_map_loads_nested_folders_by_absolute_id_with_or_without_trailing_slash() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shared = schema_set(tmp.path());
    let shared = shared.display();
    // Direct absolute ref; the prefix given with and without its trailing slash.
    let main = tmp.path().join("main.json");
    write(
        &main,
        r#"{"type": "object", "properties": {"owner": {"$ref": "https://schemas.example.com/common/user.json"}}}"#,
    );
    for map in [
        format!("https://schemas.example.com/={shared}"),
        format!("https://schemas.example.com={shared}"),
    ] {
        let (code, out, err) = validate_doc(&main, &map, r#"{"owner": {"email": "a@b"}}"#);
        assert_eq!(code, Some(0), "{map}: {out}{err}");
        // The nested ref (types/email.json, relative to user.json's $id) is enforced.
        let (code, out, _) = validate_doc(&main, &map, r#"{"owner": {"email": "nobody"}}"#);
        assert_eq!(code, Some(1), "{map}: {out}");
        assert!(out.contains("/owner/email: pattern"), "{out}");
    }
    // A `$id` ending in `/` is a folder: `user.json` resolves inside it.
    let folder_id = tmp.path().join("folder-id.json");
    write(
        &folder_id,
        r#"{"$id": "https://schemas.example.com/common/", "$ref": "user.json"}"#,
    );
    // Without the slash the last segment is a file name: `common/user.json` is needed.
    let file_id = tmp.path().join("file-id.json");
    write(
        &file_id,
        r#"{"$id": "https://schemas.example.com/common", "$ref": "common/user.json"}"#,
    );
    let map = format!("https://schemas.example.com/={shared}");
    for schema in [&folder_id, &file_id] {
        let (code, out, err) = validate_doc(schema, &map, r#"{"email": "a@b"}"#);
        assert_eq!(code, Some(0), "{}: {out}{err}", schema.display());
        let (code, _, _) = validate_doc(schema, &map, r#"{}"#);
        assert_eq!(code, Some(1), "{}", schema.display());
    }
    // A longer prefix wins over a shorter one.
    let other = tmp.path().join("other");
    write(&other.join("user.json"), r#"{"const": "from-other"}"#);
    std::fs::write(tmp.path().join("doc.json"), r#"{"owner": "from-other"}"#).expect("w");
    let (code, out, err) = run(&[
        os("validate"),
        os("--schema"),
        main.as_os_str(),
        os("--ref-map"),
        os(&map),
        os("--ref-map"),
        os(&format!(
            "https://schemas.example.com/common/={}",
            other.display()
        )),
        tmp.path().join("doc.json").as_os_str(),
    ]);
    assert_eq!(code, Some(0), "{out}{err}");
}

#[test]
fn ref_map_refuses_escapes_missing_and_non_json_files_and_unmapped_uris() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shared = schema_set(tmp.path());
    // A schema outside the mapped folder that would accept anything, were it loaded.
    write(&tmp.path().join("secret.json"), r#"{"type": "object"}"#);
    let map = format!("https://schemas.example.com/shared/={}", shared.display());
    let cases = [
        // `..`, plain or percent-encoded, is normalised out of the mapped prefix by URI
        // resolution: the result is unmapped, so it fails closed.
        (
            "https://schemas.example.com/shared/../secret.json",
            "not fetched",
        ),
        (
            "https://schemas.example.com/shared/%2e%2e/secret.json",
            "not fetched",
        ),
        // Encoded separators survive normalisation and are refused by the ref map.
        (
            "https://schemas.example.com/shared/common%2f..%2f..%2fsecret.json",
            "refused",
        ),
        (
            "https://schemas.example.com/shared/common%5c..%5c..%5csecret.json",
            "refused",
        ),
        (
            "https://schemas.example.com/shared/common/missing.json",
            "missing.json",
        ),
        (
            "https://schemas.example.com/shared/broken.json",
            "broken.json",
        ),
        ("https://schemas.example.com/shared/link.json", "refused"),
        (
            "https://elsewhere.example.org/user.json",
            "https://elsewhere.example.org/user.json",
        ),
    ];
    write(&shared.join("broken.json"), "{not json");
    std::os::unix::fs::symlink(tmp.path().join("secret.json"), shared.join("link.json"))
        .expect("symlink");
    for (uri, named) in cases {
        let schema = tmp.path().join("main.json");
        write(&schema, &format!(r#"{{"$ref": "{uri}"}}"#));
        let (code, out, err) = validate_doc(&schema, &map, "{}");
        assert_eq!(code, Some(2), "{uri}: {out}{err}");
        assert!(out.is_empty(), "{uri}: nothing may be validated: {out}");
        assert!(err.contains(named), "{uri}: {err}");
    }
    // Unmapped: the message names the URI and the option that would map it.
    let schema = tmp.path().join("main.json");
    write(
        &schema,
        r#"{"$ref": "https://elsewhere.example.org/user.json"}"#,
    );
    let (_, _, err) = validate_doc(&schema, &map, "{}");
    assert!(
        err.contains("--ref-map PREFIX=DIR") && err.contains("ref_map"),
        "{err}"
    );
    // A folder that does not exist is refused up front.
    let (code, _, err) = validate_doc(&schema, "https://x.example/=/no/such/folder", "{}");
    assert_eq!(code, Some(2));
    assert!(err.contains("/no/such/folder"), "{err}");
}

#[test]
fn fifos_are_never_read_as_documents_or_mapped_refs() {
    let tmp = tempfile::tempdir().expect("tmp");
    let fifo = tmp.path().join("pipe.json");
    let made = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(made.success());
    let schema = tmp.path().join("s.json");
    write(&schema, r#"{"$ref": "https://x.example/pipe.json"}"#);
    let plain = tmp.path().join("plain.json");
    write(&plain, r#"{"type": "object"}"#);
    let map = format!("https://x.example/={}", tmp.path().display());
    let runs: [Vec<&std::ffi::OsStr>; 3] = [
        // as a document, named
        vec![
            os("validate"),
            os("--schema"),
            plain.as_os_str(),
            fifo.as_os_str(),
        ],
        // as a document, found in a folder
        vec![
            os("validate"),
            os("--schema"),
            plain.as_os_str(),
            tmp.path().as_os_str(),
        ],
        // as a mapped ref
        vec![
            os("validate"),
            os("--schema"),
            schema.as_os_str(),
            os("--ref-map"),
            os(&map),
            plain.as_os_str(),
        ],
    ];
    for args in runs {
        let mut child = Command::new(BIN)
            .args(&args)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("hookgate hung on a FIFO: {args:?}");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        };
        let out = child.wait_with_output().expect("output");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(status.code(), Some(2), "{args:?}: {text}");
        assert!(text.contains("not a regular file"), "{args:?}: {text}");
    }
}

#[test]
fn draft_applies_to_schemas_without_dollar_schema_only() {
    let tmp = tempfile::tempdir().expect("tmp");
    // `dependencies` is draft 4-7; 2019-09 and later ignore it (an unknown keyword).
    let deps = tmp.path().join("deps.json");
    write(&deps, r#"{"dependencies": {"a": ["b"]}}"#);
    // `prefixItems` is 2020-12; earlier drafts ignore it.
    let prefix = tmp.path().join("prefix.json");
    write(&prefix, r#"{"prefixItems": [{"type": "integer"}]}"#);
    // `$schema` in the file wins over --draft.
    let named7 = tmp.path().join("named7.json");
    write(
        &named7,
        r#"{"$schema": "http://json-schema.org/draft-07/schema#", "dependencies": {"a": ["b"]}}"#,
    );
    let named2020 = tmp.path().join("named2020.json");
    write(
        &named2020,
        r#"{"$schema": "https://json-schema.org/draft/2020-12/schema", "dependencies": {"a": ["b"]}}"#,
    );
    let obj = tmp.path().join("obj.json");
    write(&obj, r#"{"a": 1}"#);
    let arr = tmp.path().join("arr.json");
    write(&arr, r#"["x"]"#);
    let cases: &[(&Path, Option<&str>, &Path, i32)] = &[
        (&deps, None, &obj, 0),
        (&deps, Some("2020-12"), &obj, 0),
        (&deps, Some("2019-09"), &obj, 0),
        (&deps, Some("7"), &obj, 1),
        (&deps, Some("6"), &obj, 1),
        (&deps, Some("4"), &obj, 1),
        (&prefix, None, &arr, 1),
        (&prefix, Some("7"), &arr, 0),
        (&named7, Some("2020-12"), &obj, 1),
        (&named2020, Some("7"), &obj, 0),
    ];
    for (schema, draft, doc, want) in cases {
        let mut args = vec![os("validate"), os("--schema"), schema.as_os_str()];
        if let Some(d) = draft {
            args.extend([os("--draft"), os(d)]);
        }
        args.push(doc.as_os_str());
        let (code, out, err) = run(&args);
        assert_eq!(
            code,
            Some(*want),
            "{} {draft:?}: {out}{err}",
            schema.display()
        );
    }
    let (code, _, err) = run(&[
        os("validate"),
        os("--schema"),
        deps.as_os_str(),
        os("--draft"),
        os("3"),
        obj.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{err}");
}

#[test]
fn folders_recurse_into_json_and_ndjson_and_an_empty_folder_is_an_error() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.json");
    write(&schema, r#"{"type": "object", "required": ["id"]}"#);
    let docs = tmp.path().join("fixtures");
    write(&docs.join("a.json"), r#"{"id": 1}"#);
    write(&docs.join("deep/er/b.json"), r#"{"id": 2}"#);
    write(
        &docs.join("deep/batch.ndjson"),
        "{\"id\": 3}\n\n{\"no\": 4}\n",
    );
    write(&docs.join("notes.txt"), "not a document");
    let (code, out, err) = run(&[
        os("validate"),
        os("--schema"),
        schema.as_os_str(),
        docs.as_os_str(),
    ]);
    assert_eq!(code, Some(1), "{out}{err}");
    let d = docs.display();
    assert_eq!(
        out.lines()
            .filter(|l| !l.starts_with("  "))
            .collect::<Vec<_>>(),
        vec![
            format!("{d}/a.json: valid"),
            format!("{d}/deep/batch.ndjson:1: valid"),
            format!("{d}/deep/batch.ndjson:3: invalid (1 errors)"),
            format!("{d}/deep/er/b.json: valid"),
        ],
        "{out}"
    );
    let empty = tmp.path().join("empty");
    write(&empty.join("sub/readme.txt"), "no documents here");
    let (code, out, _) = run(&[
        os("validate"),
        os("--schema"),
        schema.as_os_str(),
        empty.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("no *.json or *.ndjson document"), "{out}");
    // One bad NDJSON line is unreadable (2), named by its line.
    write(&docs.join("deep/batch.ndjson"), "{\"id\": 3}\n{oops\n");
    let (code, out, _) = run(&[
        os("validate"),
        os("--schema"),
        schema.as_os_str(),
        docs.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("batch.ndjson:2: unreadable"), "{out}");
}

#[test]
fn junit_report_is_read_back_by_a_junit_parser() {
    let tmp = tempfile::tempdir().expect("tmp");
    let schema = tmp.path().join("s.json");
    write(
        &schema,
        r#"{"type": "object", "required": ["id"], "properties": {"n": {"type": "integer"}}}"#,
    );
    let docs = tmp.path().join("docs");
    write(&docs.join("1-valid.json"), r#"{"id": 1}"#);
    // Two errors; a key with markup and a control character that XML cannot carry.
    write(&docs.join("2-invalid.json"), r#"{"n": "<&\"'\u0001>"}"#);
    write(&docs.join("3-batch.ndjson"), "{\"id\": 1, \"n\": 2}\n[1]\n");
    write(&docs.join("4-broken.json"), "{");
    let (code, xml, err) = run(&[
        os("validate"),
        os("--schema"),
        schema.as_os_str(),
        os("--format"),
        os("junit"),
        docs.as_os_str(),
    ]);
    assert_eq!(code, Some(2), "{xml}{err}");
    let report = junit_parser::from_reader(std::io::Cursor::new(xml.as_bytes()))
        .unwrap_or_else(|e| panic!("not JUnit XML: {e}\n{xml}"));
    assert_eq!(
        (report.tests, report.failures, report.errors),
        (5, 2, 1),
        "{xml}"
    );
    assert_eq!(report.suites.len(), 1);
    let suite = &report.suites[0];
    assert_eq!(suite.name, schema.display().to_string());
    let d = docs.display();
    let names: Vec<_> = suite
        .cases
        .iter()
        .map(|c| c.original_name.clone())
        .collect();
    assert_eq!(
        names,
        vec![
            format!("{d}/1-valid.json"),
            format!("{d}/2-invalid.json"),
            format!("{d}/3-batch.ndjson:1"),
            format!("{d}/3-batch.ndjson:2"),
            format!("{d}/4-broken.json"),
        ]
    );
    assert!(suite.cases[0].status.is_success());
    assert!(suite.cases[2].status.is_success());
    match &suite.cases[3].status {
        junit_parser::TestStatus::Failure(f) => {
            assert_eq!(f.failure_type, "type");
            assert_eq!(f.message, "/: type");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        suite.cases[4].status,
        junit_parser::TestStatus::Error(_)
    ));
    // junit-parser keeps one failure per case; count them with a plain XML reader.
    let mut reader = quick_xml::Reader::from_str(&xml);
    let (mut case, mut failures_in_case2) = (0, Vec::new());
    loop {
        match reader.read_event().expect("xml") {
            quick_xml::events::Event::Start(e) | quick_xml::events::Event::Empty(e)
                if e.name().as_ref() == "testcase" =>
            {
                case += 1;
            }
            quick_xml::events::Event::Start(e) if e.name().as_ref() == "failure" && case == 2 => {
                let attr = e.try_get_attribute("type").expect("attr").expect("type");
                failures_in_case2.push(
                    attr.normalized_value(quick_xml::XmlVersion::Implicit1_0)
                        .expect("value")
                        .into_owned(),
                );
            }
            quick_xml::events::Event::Eof => break,
            _ => {}
        }
    }
    failures_in_case2.sort();
    assert_eq!(failures_in_case2, vec!["required", "type"], "{xml}");
}

#[tokio::test]
async fn route_schema_draft_and_config_ref_map() {
    let tmp = tempfile::tempdir().expect("tmp");
    let shared = schema_set(tmp.path());
    let schema = tmp.path().join("route.json");
    write(
        &schema,
        r#"{"dependencies": {"a": ["b"]},
            "properties": {"owner": {"$ref": "https://schemas.example.com/common/user.json"}}}"#,
    );
    let up = Upstream::start().await;
    let config = |draft: &str| {
        format!(
            "[schemas]\nref_map = {{ \"https://schemas.example.com/\" = \"{}\" }}\n\
             [store]\nbackend = \"memory\"\n[[route]]\nname = \"u\"\npath = \"/u\"\n\
             schema = \"{}\"\n{draft}upstream = \"{}\"\n",
            shared.display(),
            schema.display(),
            up.url("/in")
        )
    };
    let c = client();
    let gw7 = Gateway::start(&config("schema_draft = \"7\"\n")).await;
    let gw = Gateway::start(&config("")).await;
    for (gw, body, status) in [
        (&gw7, r#"{"a": 1}"#, 422),
        (&gw7, r#"{"a": 1, "b": 2, "owner": {"email": "a@b"}}"#, 200),
        (&gw7, r#"{"b": 2, "owner": {"email": "nobody"}}"#, 422),
        (&gw, r#"{"a": 1, "owner": {"email": "a@b"}}"#, 200),
    ] {
        let r = c.post(gw.url("/u")).body(body).send().await.expect("send");
        assert_eq!(r.status(), status, "{body}");
        if status == 200 {
            assert_eq!(&up.next().await.body[..], body.as_bytes());
        }
    }
    up.assert_nothing().await;
    // In a config file the folder is relative to the file; a bad draft names the key.
    let file = tmp.path().join("hookgate.toml");
    let text = format!(
        "[schemas]\nref_map = {{ \"https://schemas.example.com/\" = \"shared\" }}\n\
         [store]\nbackend = \"memory\"\n[[route]]\nname = \"u\"\npath = \"/u\"\n\
         schema = \"route.json\"\nschema_draft = \"2019-09\"\nupstream = \"{}\"\n",
        up.url("/in")
    );
    std::fs::write(&file, &text).expect("w");
    let (code, out, err) = run(&[os("check"), os("--config"), file.as_os_str()]);
    assert_eq!(code, Some(0), "{out}{err}");
    std::fs::write(&file, text.replace("\"shared\"", "\"nowhere\"")).expect("w");
    let (code, out, err) = run(&[os("check"), os("--config"), file.as_os_str()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(
        format!("{out}{err}").contains("schemas.ref_map"),
        "{out}{err}"
    );
    std::fs::write(&file, text.replace("2019-09", "5")).expect("w");
    let (code, out, err) = run(&[os("check"), os("--config"), file.as_os_str()]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert!(format!("{out}{err}").contains("schema_draft"), "{out}{err}");
}
