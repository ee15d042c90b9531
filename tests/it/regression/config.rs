//! Regressions: configurations `check` must refuse, and data the store must keep apart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("hookgate.toml");
    std::fs::write(&p, text).expect("write config");
    p
}

fn check(config: &Path) -> Output {
    Command::new(BIN)
        .args(["check", "--config"])
        .arg(config)
        .output()
        .expect("run check")
}

/// A route to `upstream` with `extra` keys, on a memory store.
fn route_config(extra: &str, upstream: &str) -> String {
    format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"{upstream}\"\n{extra}\n"
    )
}

/// `check` on `text` exits 1 and its message names `key` and contains `reason`.
fn assert_refused(text: &str, key: &str, reason: &str) {
    let dir = tempfile::tempdir().expect("tmp");
    let out = check(&write_config(dir.path(), text));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "accepted:\n{text}\n{stderr}");
    assert!(
        stderr.contains(key) && stderr.contains(reason),
        "expected {key:?} / {reason:?} in: {stderr}"
    );
}

/// A running `hookgate serve`, killed on drop.
struct Served {
    child: Child,
    addr: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `hookgate serve` through `bash -c`, so that `prelude` (a `ulimit`) applies to
/// the gateway, and waits for its "listening" line.
fn serve_under(prelude: &str, config: &Path) -> Served {
    let script = format!("{prelude}; exec \"$0\" serve --config \"$1\"");
    let mut child = Command::new("bash")
        .args(["-c", &script, BIN])
        .arg(config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let addr = first
        .split_whitespace()
        .nth(3)
        .unwrap_or_else(|| panic!("no listening line: {first:?}"))
        .to_owned();
    Served { child, addr }
}

/// Issue 10, defect 4: a failed append (here: the file-size limit, as a full disk would)
/// left half a line in the sink; the next event was answered 200 and appended to that
/// fragment, unparseable. Now the failed event is 502 and the file is cut back.
#[test]
fn issue_10_file_sink_failed_append_leaves_no_fragment() {
    let dir = tempfile::tempdir().expect("tmp");
    let sink = dir.path().join("out.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            r#"
[server]
listen = "127.0.0.1:0"
[store]
backend = "memory"
[[route]]
name = "sink"
path = "/sink"
dedup_key = "/id"
upstream = "file://{}"
"#,
            sink.display()
        ),
    );
    // 4 KiB (bash counts `ulimit -f` in KiB); SIGXFSZ ignored so that writes past it
    // fail with EFBIG instead of killing the process.
    let served = serve_under("trap '' XFSZ; ulimit -f 4", &config);
    let pad = "x".repeat(1500);
    let rt = tokio::runtime::Runtime::new().expect("rt");
    let send = |id: &str, pad: &str| {
        let url = format!("http://{}/sink", served.addr);
        let body = format!(r#"{{"id":"{id}","pad":"{pad}"}}"#);
        rt.block_on(async {
            let r = crate::support::client()
                .post(url)
                .body(body)
                .send()
                .await
                .expect("send");
            (r.status().as_u16(), crate::support::verdict(&r))
        })
    };
    // Two lines of ~1.6 KB fit; the third crosses 4096 bytes part-way.
    assert_eq!(send("a", &pad), (200, "forwarded".into()));
    assert_eq!(send("b", &pad), (200, "forwarded".into()));
    let before = std::fs::metadata(&sink).expect("sink").len();
    assert_eq!(send("c", &pad), (502, "upstream_error".into()));
    assert_eq!(
        std::fs::metadata(&sink).expect("sink").len(),
        before,
        "the failed line was cut back"
    );
    // A small event still fits in the space the failed one did not keep.
    assert_eq!(send("d", ""), (200, "forwarded".into()));
    let text = std::fs::read_to_string(&sink).expect("read sink");
    let ids: Vec<String> = text
        .lines()
        .map(|line| {
            let v: serde_json::Value = serde_json::from_str(line)
                .unwrap_or_else(|e| panic!("unparseable sink line ({e}): {line:?}"));
            v["event_id"].as_str().unwrap_or_default().to_owned()
        })
        .collect();
    assert_eq!(ids, ["a", "b", "d"]);
}

/// Issue 10, defect 11: a route path with a NUL or another control character passed
/// `check` (which printed it raw) though no request can ever reach it.
#[test]
fn issue_10_check_refuses_control_characters_in_route_path() {
    for (spelled, shown) in [
        (r"\u0000", r"\0"),
        (r"\u0007", r"\u{7}"),
        (r"\u0085", r"\u{85}"),
    ] {
        let text = format!(
            "[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/hooks/a{spelled}b\"\nupstream = \"http://127.0.0.1:9/\"\n"
        );
        let dir = tempfile::tempdir().expect("tmp");
        let out = check(&write_config(dir.path(), &text));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(stderr.contains("route[0].path"), "{stderr}");
        assert!(
            stderr.contains(&format!("/hooks/a{shown}b")),
            "escaped: {stderr}"
        );
        assert!(
            !out.stderr
                .iter()
                .chain(&out.stdout)
                .any(|&b| b == 0 || b == 7),
            "control character printed raw"
        );
    }
}

/// Issue 10, defect 11: a directory as `file://` sink passed `check`, and `serve` then
/// printed "listening" and exited 1. Now `check` refuses it, and a sink `serve` cannot
/// open stops it before it says "listening".
#[test]
fn issue_10_check_refuses_directory_as_file_sink() {
    let dir = tempfile::tempdir().expect("tmp");
    let target = dir.path().display().to_string();
    assert_refused(
        &route_config("", &format!("file://{target}")),
        "route[0].upstream",
        "is a directory",
    );
    assert_refused(
        &route_config("", "file:///tmp/somewhere/"),
        "route[0].upstream",
        "is a directory",
    );

    // A sink under a regular file passes `check` (nothing to see without creating it)
    // but cannot be opened: `serve` exits 1 without announcing a listener.
    let blocker = dir.path().join("plain-file");
    std::fs::write(&blocker, b"").expect("write");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n{}",
            route_config("", &format!("file://{}/out.jsonl", blocker.display()))
        ),
    );
    let out = Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .output()
        .expect("run serve");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(!stdout.contains("listening"), "announced: {stdout}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("plain-file"),
        "names the sink"
    );
}

/// Issue 10, defect 11: tokens and header values no request can carry (blank, a
/// newline, whitespace HTTP strips) passed `check`; every sender then got 401.
#[test]
fn issue_10_check_refuses_credentials_that_can_never_match() {
    let up = "http://127.0.0.1:9/";
    for (auth, key) in [
        (
            r#"auth = { type = "bearer", tokens = ["  "] }"#,
            "route[0].auth.tokens[0]",
        ),
        (
            r#"auth = { type = "bearer", tokens = ["ok", "tok\n"] }"#,
            "route[0].auth.tokens[1]",
        ),
        (
            r#"auth = { type = "bearer", tokens = [" tok"] }"#,
            "route[0].auth.tokens[0]",
        ),
        (
            r#"auth = { type = "header", headers = { "X-Token" = ["v\u0000"] } }"#,
            "route[0].auth.headers.X-Token[0]",
        ),
        (
            r#"auth = { type = "header", headers = { "X-Token" = ["v "] } }"#,
            "route[0].auth.headers.X-Token[0]",
        ),
    ] {
        assert_refused(&route_config(auth, up), key, "no request can ever match it");
    }
    // A tab inside a value can arrive, so it stays accepted.
    let dir = tempfile::tempdir().expect("tmp");
    let out = check(&write_config(
        dir.path(),
        &route_config(
            r#"auth = { type = "header", headers = { "X-Token" = ["a\tb"] } }"#,
            up,
        ),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 10, defect 11: `trusted_proxies = ["0.0.0.0/0"]` lets every sender choose its
/// own client address; `check` accepted it silently. It still exits 0, with a warning.
#[test]
fn issue_10_check_warns_about_trusting_every_peer() {
    for net in ["0.0.0.0/0", "::/0"] {
        let dir = tempfile::tempdir().expect("tmp");
        let text = format!(
            "[server]\ntrusted_proxies = [\"10.0.0.0/8\", \"{net}\"]\n{}",
            route_config("", "http://127.0.0.1:9/")
        );
        let out = check(&write_config(dir.path(), &text));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{stderr}");
        assert!(
            stderr.contains("warning")
                && stderr.contains(net)
                && stderr.contains("trusts every peer"),
            "{stderr}"
        );
        assert!(
            !stderr.contains("10.0.0.0/8"),
            "only the catch-all is flagged: {stderr}"
        );
    }
}

/// Issue 10, defect 11: `dedup_key = "header:Authorization"` made the secret the event
/// id (logged, stored, forwarded as X-Hookgate-Event-Id).
#[test]
fn issue_10_check_refuses_credential_header_as_dedup_key() {
    let up = "http://127.0.0.1:9/";
    for extra in [
        "dedup_key = \"header:Authorization\"",
        "dedup_key = \"header:cookie\"",
        "dedup_key = \"header:Proxy-Authorization\"",
        "dedup_key = \"header:x-token\"\nauth = { type = \"header\", headers = { \"X-Token\" = [\"s3cret\"] } }",
        "dedup_key = \"header:x-hub-signature-256\"\nauth = { type = \"github\", secrets = [\"s3cret\"] }",
    ] {
        assert_refused(
            &route_config(extra, up),
            "route[0].dedup_key",
            "carries credentials",
        );
    }
    let dir = tempfile::tempdir().expect("tmp");
    let out = check(&write_config(
        dir.path(),
        &route_config("dedup_key = \"header:webhook-id\"", up),
    ));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Issue 10, defect 5: numeric ids and entity keys were compared through `f64`:
/// `20000000000000000002` was a duplicate of `…001` and never delivered, long fractions
/// collided, and two entities with such ids shared one ordering clock. Fractional event
/// times lost their nanoseconds the same way.
#[tokio::test]
async fn issue_10_numeric_ids_and_entity_keys_are_exact() {
    use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "n"
path = "/n"
dedup_key = "/id"
order_key = "/entity"
order_time = "/t"
order_time_unit = "s"
upstream = "{}"
"#,
        up.url("/up")
    ))
    .await;
    let c = client();
    let send = |body: &'static str| {
        let req = c.post(gw.url("/n")).body(body);
        async move {
            let r = req.send().await.expect("send");
            (r.status().as_u16(), verdict(&r))
        }
    };
    let forwarded = (200, "forwarded".to_owned());
    let duplicate = (200, "duplicate".to_owned());
    let stale = (200, "stale".to_owned());
    // Ids past u64 that differ in the last digit are two events.
    assert_eq!(
        send(r#"{"id":20000000000000000001,"entity":1,"t":1}"#).await,
        forwarded
    );
    assert_eq!(
        send(r#"{"id":20000000000000000002,"entity":1,"t":1}"#).await,
        forwarded
    );
    // So are fractions that differ past f64's precision.
    assert_eq!(
        send(r#"{"id":0.10000000000000000001,"entity":1,"t":1}"#).await,
        forwarded
    );
    assert_eq!(
        send(r#"{"id":0.10000000000000000002,"entity":1,"t":1}"#).await,
        forwarded
    );
    // One value in other spellings is one id; the string "100" is the number 100.
    assert_eq!(send(r#"{"id":100,"entity":1,"t":1}"#).await, forwarded);
    assert_eq!(send(r#"{"id":1e2,"entity":1,"t":1}"#).await, duplicate);
    assert_eq!(send(r#"{"id":100.000,"entity":1,"t":1}"#).await, duplicate);
    assert_eq!(send(r#"{"id":"100","entity":1,"t":1}"#).await, duplicate);
    // Two incidents with such ids keep separate clocks: a newer event of one does not
    // make the other's older event stale.
    assert_eq!(
        send(r#"{"id":"a1","entity":30000000000000000001,"t":200}"#).await,
        forwarded
    );
    assert_eq!(
        send(r#"{"id":"a2","entity":30000000000000000002,"t":100}"#).await,
        forwarded
    );
    assert_eq!(
        send(r#"{"id":"a3","entity":30000000000000000001,"t":150}"#).await,
        stale
    );
    // Event times keep their nanoseconds: one nanosecond older is stale.
    assert_eq!(
        send(r#"{"id":"b1","entity":"e","t":1712000000.000000002}"#).await,
        forwarded
    );
    assert_eq!(
        send(r#"{"id":"b2","entity":"e","t":1712000000.000000001}"#).await,
        stale
    );
    assert_eq!(
        up.count_now().await,
        8,
        "every forwarded event reached the upstream"
    );
}
