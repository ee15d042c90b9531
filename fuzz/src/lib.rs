//! Helpers shared by the fuzz targets: arbitrary JSON trees, scratch directories on a
//! tmpfs, and the HTTP answer contract (DESIGN.md §4) every target that talks to the
//! router or the socket checks. The reference models live in `tests/it/oracle.rs`,
//! included here by path so that the stable property tests and the fuzz targets check
//! one statement of each invariant.

use std::path::{Path, PathBuf};

use hookgate::verdict::Verdict;
use libfuzzer_sys::arbitrary::{self, Unstructured};
use serde_json::Value;

#[allow(dead_code)]
#[path = "../../tests/it/oracle.rs"]
pub mod oracle;

/// Keys the arbitrary JSON trees use: few, so that objects repeat them and pointers hit.
const KEYS: &[&str] = &[
    "event_id",
    "event_time",
    "id",
    "a",
    "",
    "~",
    "/",
    "a/b",
    "\u{0}",
    "é",
];

/// An arbitrary JSON value nested at most `depth` levels, with distinct object keys.
pub fn arb_json(u: &mut Unstructured<'_>, depth: usize) -> arbitrary::Result<Value> {
    let max_kind = if depth == 0 { 5 } else { 7 };
    Ok(match u.int_in_range(0..=max_kind)? {
        0 => Value::Null,
        1 => Value::Bool(u.arbitrary()?),
        2 => Value::from(u.arbitrary::<i64>()?),
        3 => Value::from(u.arbitrary::<f64>()?),
        4 => Value::String(if u.arbitrary()? {
            (*u.choose(KEYS)?).to_owned()
        } else {
            u.arbitrary()?
        }),
        5 => Value::from(u.arbitrary::<u64>()?),
        6 => {
            let n = u.int_in_range(0..=4)?;
            let mut items = Vec::with_capacity(n);
            for _ in 0..n {
                items.push(arb_json(u, depth - 1)?);
            }
            Value::Array(items)
        }
        _ => {
            let n = u.int_in_range(0..=4)?;
            let mut map = serde_json::Map::new();
            for _ in 0..n {
                let key = if u.arbitrary()? {
                    (*u.choose(KEYS)?).to_owned()
                } else {
                    u.arbitrary()?
                };
                let value = arb_json(u, depth - 1)?;
                map.insert(key, value);
            }
            Value::Object(map)
        }
    })
}

/// Nesting depth of a value: scalars are 0, `[]` is 1.
pub fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// A fresh scratch directory `<tmpfs or temp>/hookgate-fuzz-<name>-<pid>`, after
/// removing the ones of earlier runs whose process is gone. A tmpfs, where there is one,
/// because stores and sinks fsync.
pub fn scratch_dir(name: &str) -> PathBuf {
    let base = Some(PathBuf::from("/dev/shm"))
        .filter(|p| p.is_dir())
        .unwrap_or_else(std::env::temp_dir);
    let prefix = format!("hookgate-fuzz-{name}-");
    if let Ok(entries) = std::fs::read_dir(&base) {
        for e in entries.flatten() {
            let file_name = e.file_name();
            let Some(pid) = file_name.to_str().and_then(|n| n.strip_prefix(&prefix)) else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
    }
    let dir = base.join(format!("{prefix}{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("scratch directory");
    dir
}

/// Sink files only grow: a target truncates one past this size.
pub const SINK_RESET_BYTES: u64 = 1 << 20;

/// Truncates every `*.jsonl` sink in `dir` that grew past [`SINK_RESET_BYTES`] (the
/// sinks append with `O_APPEND`, so their next line lands at offset 0).
pub fn trim_sinks(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        if e.metadata().is_ok_and(|m| m.len() > SINK_RESET_BYTES) {
            let _ = std::fs::File::options()
                .write(true)
                .open(e.path())
                .and_then(|f| f.set_len(0));
        }
    }
}

/// Checks one gateway answer against DESIGN.md §4 and returns its verdict: a contract
/// verdict in `X-Hookgate-Verdict` with the status the contract gives it (file sinks
/// answer 200 for `forwarded`), `Allow` on 405, `Retry-After` on 429/409/503, and a JSON
/// body naming the same verdict. `None` for an answer without a verdict (the
/// operational endpoints, and hyper's own answers to unparseable requests), which the
/// caller judges.
pub fn check_answer(
    status: u16,
    header: impl Fn(&str) -> Option<String>,
    body: &[u8],
) -> Option<Verdict> {
    let verdict = header("x-hookgate-verdict")?;
    let v = Verdict::ALL
        .iter()
        .copied()
        .find(|v| v.as_str() == verdict)
        .unwrap_or_else(|| panic!("{verdict:?} is not a contract verdict"));
    match v {
        Verdict::Forwarded => assert_eq!(status, 200, "file sinks answer 200"),
        Verdict::UpstreamError => assert!(matches!(status, 502 | 504), "{status}"),
        // hyper's own limits (414, 431) and an unknown transfer coding (501, RFC 9112
        // §6.1) are answered with `bad_request` too.
        Verdict::BadRequest => assert!(matches!(status, 400 | 414 | 431 | 501), "{status}"),
        other => assert_eq!(status, other.status().as_u16(), "{verdict}"),
    }
    let needs = match v {
        Verdict::MethodNotAllowed => Some("allow"),
        Verdict::RateLimited | Verdict::InFlight => Some("retry-after"),
        _ => None,
    };
    if let Some(h) = needs {
        assert!(header(h).is_some(), "{verdict} without {h}");
    }
    let json: Value = serde_json::from_slice(body)
        .unwrap_or_else(|e| panic!("{verdict}: the answer body is not JSON ({e})"));
    assert_eq!(json["verdict"], verdict, "{json}");
    Some(v)
}
