//! The real binary: `check` exit codes, `serve` on a config, SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let p = dir.join("hookgate.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

#[test]
fn check_accepts_good_config_and_names_bad_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let good = write_config(
        dir.path(),
        r#"
[store]
backend = "memory"
[[route]]
name = "flashduty"
path = "/hooks/flashduty"
upstream = "http://127.0.0.1:9000/x"
auth = { type = "header", headers = { "X-Token" = ["env:HOOKGATE_CLI_TEST_TOKEN"] } }
"#,
    );
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .env("HOOKGATE_CLI_TEST_TOKEN", "abc")
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("route flashduty path=/hooks/flashduty"),
        "{stdout}"
    );
    assert!(stdout.contains("auth=header"), "{stdout}");
    assert!(!stdout.contains("abc"), "secret printed: {stdout}");
    // The store line: a memory store says it forgets, and on_unavailable's default.
    assert!(
        stdout.contains(
            "store backend=memory (lost on restart) dedup_ttl=3days on_unavailable=deliver"
        ),
        "{stdout}"
    );

    // Same file without the variable: exit 1, naming the key and the variable.
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good)
        .env_remove("HOOKGATE_CLI_TEST_TOKEN")
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("route[0].auth.headers.X-Token[0]"),
        "{stderr}"
    );
    assert!(stderr.contains("HOOKGATE_CLI_TEST_TOKEN"), "{stderr}");

    // An unknown on_unavailable is refused, naming the key and the value.
    let bad = write_config(dir.path(), "[store]\non_unavailable = \"sometimes\"\n");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("on_unavailable") && stderr.contains("sometimes"),
        "{stderr}"
    );

    let bad = write_config(dir.path(), "[server]\nlisten = \"nowhere\"\n");
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.listen"));
}

#[test]
fn check_without_config_uses_builtin_default() {
    let dir = tempfile::tempdir().expect("tmp");
    let out = Command::new(BIN)
        .arg("check")
        .current_dir(dir.path())
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("built-in default config"), "{stdout}");
    assert!(stdout.contains("path=/hooks/"), "{stdout}");
}

#[test]
fn serve_refuses_bad_config_with_the_same_message() {
    let dir = tempfile::tempdir().expect("tmp");
    let bad = write_config(
        dir.path(),
        "[[route]]\nname = \"x\"\npath = \"/x\"\nupstream = \"http://h/\"\nallow_ips = [\"300.1.1.1\"]\n",
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&bad)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("route[0].allow_ips[0]"));
}

/// `hookgate serve` with no config on a fresh directory: the built-in default delivers
/// to the file sink; SIGTERM exits 0.
#[test]
fn serve_default_config_delivers_to_file_sink_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tmp");
    // The default listens on 127.0.0.1:8080, which may be taken; use an equivalent file
    // with port 0 and check that the default itself compiles in the test above.
    let config = hookgate::config::DEFAULT_CONFIG.replace("127.0.0.1:8080", "127.0.0.1:0");
    let path = write_config(dir.path(), &config);
    let mut child = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("read");
    let mut header = String::new();
    stdout.read_line(&mut header).expect("read");
    let mut row = String::new();
    stdout.read_line(&mut row).expect("read");
    for col in ["PATH", "AUTH", "SCHEMA", "DELIVERY"] {
        assert!(header.contains(col), "start-up table header: {header}");
    }
    assert!(
        row.contains("/hooks/flashduty-incident")
            && row.contains("flashduty-incident")
            && row.contains("sync"),
        "start-up table row: {row}"
    );
    // Closing stdout early must not matter to the gateway: drop the rest unread.
    drop(stdout);
    let addr = first
        .split_whitespace()
        .nth(3)
        .expect("listening line")
        .to_owned();
    let route = "/hooks/flashduty-incident";
    let body = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/schemas/flashduty-incident/valid/doc-i_new.json"),
    )
    .expect("fixture");
    let event_id = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["event_id"]
        .as_str()
        .expect("event_id")
        .to_owned();
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let status = rt.block_on(async {
        crate::support::client()
            .post(format!("http://{addr}{route}"))
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
    });
    let sink = dir.path().join("hookgate-data/delivered.jsonl");
    let line = std::fs::read_to_string(&sink).unwrap_or_default();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    let mut waited = 0;
    let code = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s.code();
        }
        std::thread::sleep(Duration::from_millis(50));
        waited += 1;
        assert!(waited < 200, "did not exit after SIGTERM");
    };
    assert_eq!(status.expect("request"), 200);
    assert!(
        line.contains(&format!(r#""event_id":"{event_id}""#)),
        "sink: {line}"
    );
    assert_eq!(code, Some(0));
}
