//! Regressions: configurations `check` must refuse, and data the store must keep apart.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("hookgate.toml");
    std::fs::write(&p, text).expect("write config");
    p
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
