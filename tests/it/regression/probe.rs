//! Regressions found by probing the running gateway from outside after issue 10 (a hostile
//! or sloppy sender's view).

use std::time::Duration;

use crate::support::{client, gateway::Gateway, raw_exchange, upstream::Upstream, verdict};

/// A route in front of `upstream_url`, with no checks that could refuse the probes.
fn route_to(upstream_url: &str) -> String {
    format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"q\"\npath = \"/q\"\nupstream = \"{upstream_url}\"\n"
    )
}

/// The upstream URL's own query parameters are configuration (often a token, a tenant,
/// an API version). A sender that repeats one of them must not override it: PHP, Rails
/// and many others take the last occurrence, or turn `name[]=` into an array that
/// replaces the value. Such parameters are dropped; the sender's others still pass.
#[tokio::test]
async fn sender_query_cannot_override_upstream_query_parameters() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in?token=abc&v=2"))).await;
    let sent = "token=evil&x=1&v=3&%74oken=evil2&token%5B%5D=evil3&tok+en=ok&v[k]=4&&y";
    let r = client()
        .post(gw.url(&format!("/q?{sent}")))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    let got = up.next().await;
    assert_eq!(got.uri.query(), Some("token=abc&v=2&x=1&tok+en=ok&y"));

    // With no query of its own configured, the sender's passes untouched.
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in"))).await;
    let r = client()
        .post(gw.url("/q?token=a&token=b&&c"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(up.next().await.uri.query(), Some("token=a&token=b&&c"));
}

/// `Transfer-Encoding: gzip, chunked` (or any coding besides one `chunked`) was accepted:
/// hyper undid the chunking and ignored the rest, so a gzip-coded body was judged as if
/// it were the JSON itself. RFC 9112 §6.1: a transfer coding the server does not
/// understand is answered 501, never guessed at.
#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&route_to(&up.url("/in"))).await;
    for coding in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
        let request = format!(
            "POST /q HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: {coding}\r\nConnection: close\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
        );
        let answer = raw_exchange(gw.addr, request.as_bytes(), Duration::from_secs(3)).await;
        assert!(answer.starts_with("HTTP/1.1 501 "), "{coding}: {answer}");
        assert!(
            answer.contains("x-hookgate-verdict: bad_request"),
            "{coding}: {answer}"
        );
    }
    // Plain chunked (any case) still works.
    let request = "POST /q HTTP/1.1\r\nHost: gw\r\nTransfer-Encoding: Chunked\r\nConnection: close\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let answer = raw_exchange(gw.addr, request.as_bytes(), Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
    assert!(answer.contains("x-hookgate-verdict: forwarded"), "{answer}");
    assert_eq!(&up.next().await.body[..], b"{}");
}

/// A file sink that reaches the process's file-size limit (`ulimit -f`, RLIMIT_FSIZE)
/// killed the whole gateway with SIGXFSZ, leaving half a line in the file: the cut-back
/// of a failed append (issue 10, defect 4) never ran. The signal is ignored so that the
/// write fails with EFBIG like a full disk: that event is refused, the file keeps only
/// whole lines, and the gateway goes on serving.
#[cfg(unix)]
#[tokio::test]
async fn file_size_limit_refuses_the_event_instead_of_killing_the_gateway() {
    use std::io::BufRead as _;
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().expect("tmp");
    let sink = dir.path().join("out.jsonl");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n[[route]]\nname = \"f\"\npath = \"/f\"\nupstream = \"file://{}\"\n",
            sink.display()
        ),
    )
    .expect("config");
    // 4 blocks of 512 bytes (POSIX sh counts in those): room for two events of ~700 bytes, not for three.
    let mut child = Command::new("sh")
        .args(["-c", "ulimit -f 4 && exec \"$0\" serve --config \"$1\""])
        .arg(env!("CARGO_BIN_EXE_hookgate"))
        .arg(&config)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let addr = first
        .split_whitespace()
        .nth(3)
        .expect("listening line")
        .to_owned();
    let pad = "x".repeat(700);
    let c = client();
    let mut statuses = Vec::new();
    for i in 0..4 {
        let r = c
            .post(format!("http://{addr}/f"))
            .body(format!(r#"{{"id":{i},"pad":"{pad}"}}"#))
            .send()
            .await;
        statuses.push(r.map(|r| (r.status().as_u16(), verdict(&r))).ok());
    }
    let alive = child.try_wait().expect("wait").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(alive, "the gateway died; answers: {statuses:?}");
    assert_eq!(
        statuses[0],
        Some((200, "forwarded".to_owned())),
        "{statuses:?}"
    );
    assert_eq!(
        statuses[1],
        Some((200, "forwarded".to_owned())),
        "{statuses:?}"
    );
    for s in &statuses[2..] {
        let (status, verdict) = s.clone().expect("an answer");
        assert!(status >= 500, "{status} {verdict}");
        assert_eq!(verdict, "upstream_error");
    }
    let written = std::fs::read_to_string(&sink).expect("sink");
    assert!(written.ends_with('\n'), "a torn line was left: {written:?}");
    assert_eq!(written.lines().count(), 2);
}

/// The upstream URL's credentials were masked in the start-up table and `check`, but its
/// query was printed whole, and a query is where many upstreams take their secret
/// (`?code=` for Azure Functions, `?key=&token=` for chat webhooks). Values are masked,
/// names stay (they say what is configured).
#[test]
fn check_and_start_up_table_do_not_print_upstream_query_secrets() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"q\"\npath = \"/q\"\nupstream = \"http://127.0.0.1:9/in?code=s3cr3tQueryKey&v=2\"\n",
    )
    .expect("config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("check");
    let shown = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{shown}");
    assert!(!shown.contains("s3cr3tQueryKey"), "{shown}");
    assert!(
        shown.contains("http://127.0.0.1:9/in?code=***&v=***"),
        "{shown}"
    );
}

/// An upstream answering with a status that is no final answer (101 Switching Protocols
/// to a request that asked for no upgrade) or none at all (600..999) was passed back as
/// `forwarded`: the sender got a protocol switch nobody made, or an invalid status line.
/// Either is the upstream failing: 502 `upstream_error`, and the event is not marked seen.
#[tokio::test]
async fn upstream_answers_outside_200_to_599_are_upstream_errors() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    for answer in [
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        "HTTP/1.1 999 Odd\r\nContent-Length: 2\r\n\r\nok",
    ] {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = tokio::spawn(async move {
            let mut arrivals = 0;
            // Bounded: the gateway sends two requests at most.
            while arrivals < 2 {
                let Ok(Ok((mut s, _))) =
                    tokio::time::timeout(Duration::from_secs(5), listener.accept()).await
                else {
                    break;
                };
                arrivals += 1;
                let mut buf = vec![0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            }
            arrivals
        });
        let gw = Gateway::start(&format!(
            "{}dedup_key = \"/id\"\n",
            route_to(&format!("http://{addr}/in"))
        ))
        .await;
        let c = client();
        for _ in 0..2 {
            let r = c
                .post(gw.url("/q"))
                .body(r#"{"id":"e1"}"#)
                .send()
                .await
                .expect("send");
            assert_eq!(r.status(), 502, "{answer}");
            assert_eq!(verdict(&r), "upstream_error", "{answer}");
        }
        // Not marked seen: the retry reached the upstream too.
        assert_eq!(server.await.expect("join"), 2, "{answer}");
    }
}

/// A config that does not parse was reported with the TOML parser's snippet of the
/// offending line, and with the misplaced value quoted: literal tokens reached stderr and,
/// on a refused SIGHUP reload, the structured log ("secrets are never logged"). The
/// message keeps the line, the column and the parser's reason, with values masked.
#[test]
fn config_parse_errors_do_not_quote_secrets() {
    let dir = tempfile::tempdir().expect("tmp");
    let config = dir.path().join("hookgate.toml");
    for auth in [
        "auth = { type = \"bearer\", tokens = [\"LiteralSecretOne\", 5] }",
        "auth = { type = \"bearer\", tokens = \"LiteralSecretOne\" }",
    ] {
        std::fs::write(
            &config,
            format!(
                "[store]\nbackend = \"memory\"\n[[route]]\nname = \"a\"\npath = \"/a\"\nupstream = \"http://127.0.0.1:9/a\"\n{auth}\n"
            ),
        )
        .expect("config");
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .expect("check");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{said}");
        assert!(!said.contains("LiteralSecretOne"), "{said}");
        assert!(said.contains("line 7"), "{said}");
        assert!(said.contains("invalid type"), "{said}");
        assert!(said.contains("(auth)"), "the key is named: {said}");
    }
}

/// With `dedup_key = "header:NAME"`, a request carrying the header twice was deduplicated
/// on the first value while both reached the upstream, which may well read the last one:
/// the gateway and the upstream disagreed on which event it was (`a` then `b, a`-style
/// retries slipped through or were dropped). A repeated id header is refused like a
/// malformed one (422), as repeated credential headers are.
#[tokio::test]
async fn repeated_dedup_header_is_refused() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        "{}dedup_key = \"header:X-Event-Id\"\n",
        route_to(&up.url("/in"))
    ))
    .await;
    let c = client();
    let r = c
        .post(gw.url("/q"))
        .header("x-event-id", "a")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    up.next().await;
    let r = c
        .post(gw.url("/q"))
        .header("x-event-id", "b")
        .header("x-event-id", "a")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 422);
    assert_eq!(verdict(&r), "invalid_schema");
    let r = c
        .post(gw.url("/q"))
        .header("x-event-id", "b")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(up.next().await.headers["x-event-id"], "b");
    up.assert_nothing().await;
}
