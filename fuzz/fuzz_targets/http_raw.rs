//! Raw bytes on a real socket into the real server and accept loop (`hookgate::run` on
//! 127.0.0.1, one server per process, reused across inputs): an input that starts with
//! an uppercase letter is sent as it is; any other builds pipelined requests (any
//! method, path, headers, framing: `Content-Length` right or wrong, chunked, none;
//! bodies raw or the Flashduty fixture) and raw chunks. The write side is then closed.
//!
//! Invariants: the server answers with a sequence of well-formed HTTP/1.x responses
//! (each head parses, each body is framed by `Content-Length`, chunking or the close)
//! and then closes, or closes without answering — within 5 s, never hanging; every
//! answer with a verdict obeys the contract (`check_answer`), every other answer is
//! an operational endpoint's or hyper's own refusal of an unparseable request; after
//! each input a fresh connection's `GET /healthz` answers 200 (the process keeps
//! serving).
#![no_main]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Duration;

use libfuzzer_sys::arbitrary::{self, Arbitrary, Unstructured};
use libfuzzer_sys::fuzz_target;

struct World {
    addr: SocketAddr,
    dir: PathBuf,
    _rt: tokio::runtime::Runtime,
}

/// How long the server may take to answer and close one input's connection.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(5);
/// Bytes written per input at most.
const MAX_INPUT: usize = 64 * 1024;

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = hookgate_fuzz::scratch_dir("http-raw");
        let config = format!(
            r#"
[server]
max_body_bytes = 8192
max_json_depth = 32
read_timeout = "2s"
trusted_proxies = ["127.0.0.0/8"]
[store]
backend = "memory"
[[route]]
name = "fd"
path = "/hooks/fd"
preset = "flashduty-incident"
upstream = "file://{0}/fd.jsonl"
auth = {{ type = "bearer", tokens = ["tok"] }}
[[route]]
name = "open"
path = "/hooks/open"
methods = ["POST", "PUT"]
upstream = "file://{0}/open.jsonl"
[[route]]
name = "limited"
path = "/hooks/limited"
upstream = "file://{0}/limited.jsonl"
dedup_key = "body-sha256"
rate_limit = {{ per_second = 1, burst = 2 }}
"#,
            dir.display()
        );
        let settings = hookgate::config::from_str(&config, "fuzz").expect("config");
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        rt.spawn(async move {
            hookgate::run(listener, settings, std::future::pending())
                .await
                .expect("the gateway runs");
        });
        World { addr, dir, _rt: rt }
    })
}

const METHODS: &[&str] = &["POST", "PUT", "GET", "DELETE", "OPTIONS", "post", "CONNECT"];
const PATHS: &[&str] = &[
    "/hooks/fd",
    "/hooks/open",
    "/hooks/limited",
    "/hooks/open?x=1",
    "/healthz",
    "/readyz",
    "/metrics",
    "/nope",
    "*",
    "http://example.com/hooks/open",
    "/hooks/%6fpen",
];
const VERSIONS: &[&str] = &["HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/1.1 ", "http/1.1"];
const HEADERS: &[&str] = &[
    "host",
    "authorization",
    "content-type",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "x-forwarded-for",
    "forwarded",
    "content-encoding",
    "via",
];
const FIXTURE: &[u8] =
    include_bytes!("../../tests/schemas/flashduty-incident/valid/minimal-required-only.json");

#[derive(Debug, Arbitrary)]
enum Framing {
    Length,
    WrongLength(i8),
    Chunked(u8),
    None,
}

#[derive(Debug, Arbitrary)]
enum Chunk {
    Raw(Vec<u8>),
    Request {
        method: u8,
        path: u8,
        version: u8,
        auth: bool,
        headers: Vec<(u8, Vec<u8>)>,
        fixture: bool,
        body: Vec<u8>,
        framing: Framing,
    },
}

fn render(chunk: &Chunk, out: &mut Vec<u8>) {
    let (method, path, version, auth, headers, fixture, body, framing) = match chunk {
        Chunk::Raw(bytes) => {
            out.extend_from_slice(bytes);
            return;
        }
        Chunk::Request {
            method,
            path,
            version,
            auth,
            headers,
            fixture,
            body,
            framing,
        } => (method, path, version, auth, headers, fixture, body, framing),
    };
    let pick = |list: &[&'static str], i: u8| list[usize::from(i) % list.len()];
    out.extend_from_slice(
        format!(
            "{} {} {}\r\nhost: gw\r\n",
            pick(METHODS, *method),
            pick(PATHS, *path),
            pick(VERSIONS, *version)
        )
        .as_bytes(),
    );
    if *auth {
        out.extend_from_slice(b"authorization: Bearer tok\r\n");
    }
    for (n, v) in headers.iter().take(8) {
        out.extend_from_slice(pick(HEADERS, *n).as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    let body: &[u8] = if *fixture { FIXTURE } else { body };
    match framing {
        Framing::Length => {
            out.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        Framing::WrongLength(d) => {
            let n = i64::try_from(body.len()).unwrap_or(0) + i64::from(*d);
            out.extend_from_slice(format!("content-length: {n}\r\n\r\n").as_bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked(size) => {
            out.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            for piece in body.chunks(usize::from(*size).max(1)) {
                out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
                out.extend_from_slice(piece);
                out.extend_from_slice(b"\r\n");
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
        Framing::None => {
            out.extend_from_slice(b"\r\n");
            out.extend_from_slice(body);
        }
    }
}

/// Sends `bytes`, closes the write side when `half_close`, and reads until the server
/// closes.
fn exchange(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).expect("the gateway accepts connections");
    s.set_read_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    s.set_write_timeout(Some(ANSWER_TIMEOUT)).expect("timeout");
    // The server may close first (a refused request): a failed write is an answer too.
    let _ = s.write_all(bytes);
    if half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!(
                "no answer and no close within {ANSWER_TIMEOUT:?} ({e}); answer so far: {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
    }
    answer
}

/// Decodes a chunked body at the start of `rest`: (body, bytes used).
fn dechunk(mut rest: &[u8]) -> (Vec<u8>, usize) {
    let start = rest.len();
    let mut body = Vec::new();
    loop {
        let (used, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(c)) => c,
            other => panic!("bad chunk size line: {other:?}"),
        };
        rest = &rest[used..];
        let size = usize::try_from(size).expect("chunk size");
        if size == 0 {
            assert!(rest.starts_with(b"\r\n"), "no end after the last chunk");
            return (body, start - rest.len() + 2);
        }
        assert!(rest.len() >= size + 2, "truncated chunk");
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n", "chunk not ended by CRLF");
        rest = &rest[size + 2..];
    }
}

/// Checks that `answer` is a sequence of well-formed responses (see the module docs).
fn check_responses(answer: &[u8], sent_head: bool) {
    let mut rest = answer;
    while !rest.is_empty() {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut headers);
        let used = match resp.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            other => panic!(
                "malformed response head ({other:?}): {:?}",
                String::from_utf8_lossy(rest)
            ),
        };
        let code = resp.code.expect("a status");
        let get = |name: &str| {
            resp.headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).into_owned())
        };
        rest = &rest[used..];
        if (100..200).contains(&code) {
            continue;
        }
        if sent_head {
            // A HEAD answer has no body but may name its length: framing is not
            // checkable without knowing which request was HEAD.
            return;
        }
        let chunked = get("transfer-encoding").is_some_and(|t| t.contains("chunked"));
        let body: Vec<u8> = if code == 204 || code == 304 {
            Vec::new()
        } else if chunked {
            let (body, n) = dechunk(rest);
            rest = &rest[n..];
            body
        } else if let Some(len) = get("content-length") {
            let len: usize = len.trim().parse().expect("a numeric Content-Length");
            assert!(rest.len() >= len, "body shorter than its Content-Length");
            let body = rest[..len].to_vec();
            rest = &rest[len..];
            body
        } else {
            // Delimited by the close: the last answer.
            let body = rest.to_vec();
            rest = &[];
            body
        };
        if hookgate_fuzz::check_answer(code, get, &body).is_none() {
            // hyper's own refusals carry no body; the endpoints answer 200/404/503.
            assert!(
                matches!(code, 200 | 404 | 503)
                    || (matches!(code, 400 | 408 | 413 | 414 | 431 | 501 | 505) && body.is_empty()),
                "status {code} without a verdict: {:?}",
                String::from_utf8_lossy(&body)
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    // An input that starts like a request line is sent as it is (the seeds are readable
    // requests and the dictionary's tokens land in them); any other is built.
    let mut bytes = Vec::new();
    if data.first().is_some_and(u8::is_ascii_uppercase) {
        bytes.extend_from_slice(data);
    } else if let Ok(chunks) = Unstructured::new(data).arbitrary::<Vec<Chunk>>() {
        for c in &chunks {
            if bytes.len() >= MAX_INPUT {
                break;
            }
            render(c, &mut bytes);
        }
    }
    bytes.truncate(MAX_INPUT);
    // The write side is closed so that an unfinished request ends at once. hyper (with
    // its default `half_close(false)`) may then close without answering a request it
    // read: allowed here, a close is an answer.
    let answer = exchange(w.addr, &bytes, true);
    let sent_head = bytes.windows(5).any(|w| w.eq_ignore_ascii_case(b"HEAD "));
    check_responses(&answer, sent_head);
    hookgate_fuzz::trim_sinks(&w.dir);

    // The process keeps serving.
    let health = exchange(
        w.addr,
        b"GET /healthz HTTP/1.1\r\nhost: gw\r\nconnection: close\r\n\r\n",
        false,
    );
    assert!(
        health.starts_with(b"HTTP/1.1 200 "),
        "healthz after the input: {:?}",
        String::from_utf8_lossy(&health)
    );
});
