//! Regressions: client attribution, forwarding headers, loops and upstream answers.

use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

/// A gateway behind a trusted proxy (the test itself, on 127.0.0.1) with one route
/// allowlisting `allow`; `extra` goes into `[server]` and `route` into the route.
fn behind_proxy(upstream: &str, allow: &str, extra: &str, route: &str) -> String {
    format!(
        r#"
[server]
trusted_proxies = ["127.0.0.0/8", "10.0.0.0/8"]
{extra}
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
allow_ips = [{allow}]
upstream = "{upstream}"
{route}
[[route]]
name = "open"
path = "/hooks/open"
upstream = "{upstream}"
{route}
"#
    )
}

async fn post(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = client().post(url).body("{}");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.expect("send")
}

/// Defect 1: a sender's own `Forwarded` (or an unreadable hop) passed the allowlist.
#[tokio::test]
async fn allowlist_bypass_through_forwarded() {
    let up = Upstream::start().await;
    // The proxy's own range (127.0.0.0/8) is on the allowlist too: an unreadable hop
    // must not become the proxy's address.
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        "",
        "",
    ))
    .await;
    // The proxy appended the real client to X-Forwarded-For; the sender added Forwarded.
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    assert_eq!(verdict(&r), "forbidden_ip");
    // Unreadable hops: the client is unknown, never the proxy.
    for xff in ["unknown", "1.2.3.4 ,, ", "fe80::1%eth0", "_hidden"] {
        let r = post(&gw.url("/hooks/r"), &[("x-forwarded-for", xff)]).await;
        assert_eq!(r.status(), 403, "{xff:?}");
        assert_eq!(verdict(&r), "forbidden_ip", "{xff:?}");
    }
    up.assert_nothing().await;
    // A route without allowlist still serves an unknown client.
    let r = post(&gw.url("/hooks/open"), &[("x-forwarded-for", "unknown")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    up.next().await;
    // The real client named by the configured header passes.
    let r = post(&gw.url("/hooks/r"), &[("x-forwarded-for", "47.94.95.118")]).await;
    assert_eq!(r.status(), 200);
    up.next().await;

    // client_ip_header = "forwarded": now X-Forwarded-For is the sender's.
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        r#"client_ip_header = "forwarded""#,
        "",
    ))
    .await;
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    for fwd in [
        "for=unknown",
        "for=_hidden",
        "proto=https",
        "for=\"[fe80::1%eth0]\"",
    ] {
        let r = post(&gw.url("/hooks/r"), &[("forwarded", fwd)]).await;
        assert_eq!(r.status(), 403, "{fwd:?}");
        assert_eq!(verdict(&r), "forbidden_ip", "{fwd:?}");
    }
    up.assert_nothing().await;
    let r = post(
        &gw.url("/hooks/r"),
        &[("forwarded", "for=47.94.95.118;proto=https, for=10.0.0.3")],
    )
    .await;
    assert_eq!(r.status(), 200);
    up.next().await;

    // client_ip_header = "x-real-ip".
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""47.94.95.118", "127.0.0.0/8""#,
        r#"client_ip_header = "x-real-ip""#,
        "",
    ))
    .await;
    let r = post(
        &gw.url("/hooks/r"),
        &[
            ("x-real-ip", "6.6.6.6"),
            ("x-forwarded-for", "47.94.95.118"),
        ],
    )
    .await;
    assert_eq!(r.status(), 403);
    let r = post(&gw.url("/hooks/r"), &[("x-real-ip", "47.94.95.118")]).await;
    assert_eq!(r.status(), 200);
    up.next().await;
}

/// Defect 1, rate limits: per-address buckets follow the same attribution, and unknown
/// clients share one bucket instead of spending the proxy's.
#[tokio::test]
async fn allowlist_bypass_through_forwarded_rate_limit_attribution() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""0.0.0.0/0""#,
        "",
        "rate_limit = { per_second = 1, burst = 1, per_address = true }",
    ))
    .await;
    let url = gw.url("/hooks/open");
    assert_eq!(
        post(&url, &[("x-forwarded-for", "1.1.1.1")]).await.status(),
        200
    );
    // The same client, whatever a sender writes into Forwarded.
    let r = post(
        &url,
        &[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")],
    )
    .await;
    assert_eq!(r.status(), 429);
    assert_eq!(verdict(&r), "rate_limited");
    assert_eq!(
        post(&url, &[("x-forwarded-for", "2.2.2.2")]).await.status(),
        200
    );
    // Unknown clients: one shared bucket, apart from the proxy's own.
    assert_eq!(
        post(&url, &[("x-forwarded-for", "unknown")]).await.status(),
        200
    );
    let r = post(&url, &[("x-forwarded-for", "_other")]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(
        post(&url, &[]).await.status(),
        200,
        "the proxy's own bucket"
    );
}

/// Defect 3: `Forwarded`, `X-Real-IP` and the like from an untrusted peer reached the
/// upstream verbatim (a forged client for an upstream that trusts its gateway).
#[tokio::test]
async fn forwarding_headers_from_untrusted_peers() {
    let up = Upstream::start().await;
    let forged = [
        ("forwarded", "for=47.94.95.118;proto=https"),
        ("x-real-ip", "47.94.95.118"),
        ("x-client-ip", "47.94.95.118"),
        ("true-client-ip", "47.94.95.118"),
        ("cf-connecting-ip", "47.94.95.118"),
        ("x-forwarded-for", "47.94.95.118"),
        ("x-forwarded-host", "victim.example"),
        ("x-forwarded-proto", "https"),
    ];
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        // No trusted proxies: the test's connection is an untrusted peer.
        let gw = Gateway::start(&format!(
            r#"
[server]
client_ip_header = "{header}"
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
upstream = "{}"
"#,
            up.url("/in")
        ))
        .await;
        let r = post(&gw.url("/hooks/r"), &forged).await;
        assert_eq!(r.status(), 200, "{header}");
        assert_eq!(verdict(&r), "forwarded");
        let got = up.next().await.headers;
        assert_eq!(got["x-forwarded-for"], "127.0.0.1", "{header}");
        assert_eq!(got["x-forwarded-proto"], "http", "{header}");
        for (name, _) in forged {
            for v in got.get_all(name) {
                assert_ne!(v, "47.94.95.118", "{name} passed verbatim ({header})");
                assert_ne!(v, "victim.example", "{name} passed verbatim ({header})");
                assert_ne!(v, "for=47.94.95.118;proto=https", "{name} ({header})");
            }
        }
        // The configured header is rewritten to the peer; the others are gone.
        match header {
            "forwarded" => assert_eq!(got["forwarded"], "for=127.0.0.1"),
            "x-real-ip" => assert_eq!(got["x-real-ip"], "127.0.0.1"),
            _ => assert!(got.get("forwarded").is_none() && got.get("x-real-ip").is_none()),
        }
        for name in [
            "x-client-ip",
            "true-client-ip",
            "cf-connecting-ip",
            "x-forwarded-host",
        ] {
            assert!(got.get(name).is_none(), "{name} ({header})");
        }
    }
    // From a trusted peer only the configured header's chain is extended.
    let gw = Gateway::start(&behind_proxy(
        &up.url("/in"),
        r#""0.0.0.0/0""#,
        r#"client_ip_header = "forwarded""#,
        "",
    ))
    .await;
    let r = post(
        &gw.url("/hooks/open"),
        &[
            ("forwarded", "for=47.94.95.118"),
            ("x-forwarded-for", "6.6.6.6"),
            ("x-real-ip", "6.6.6.6"),
        ],
    )
    .await;
    assert_eq!(r.status(), 200);
    let got = up.next().await.headers;
    assert_eq!(got["forwarded"], "for=47.94.95.118, for=127.0.0.1");
    assert_eq!(got["x-forwarded-for"], "127.0.0.1");
    assert!(got.get("x-real-ip").is_none());
}

fn plain(upstream: &str) -> String {
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
upstream = "{upstream}"
"#
    )
}

/// Defect 6: a route whose upstream is the gateway itself recursed per request. Now the
/// gateway adds `Via` with its own token and refuses a request that carries it.
#[tokio::test]
async fn forwarding_loops_via_token() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&plain(&up.url("/in"))).await;
    let r = post(&gw.url("/hooks/r"), &[("via", "1.1 proxy.example")]).await;
    assert_eq!(r.status(), 200);
    let via = up.next().await.headers["via"]
        .to_str()
        .expect("ascii")
        .to_owned();
    let ours = via
        .strip_prefix("1.1 proxy.example, 1.1 hookgate-")
        .unwrap_or_else(|| panic!("our Via entry appended: {via}"));
    assert_eq!(ours.len(), 16, "{via}");
    // The same request coming back: 508 before the body is read.
    let r = post(&gw.url("/hooks/r"), &[("via", via.as_str())]).await;
    assert_eq!(r.status(), 508);
    assert_eq!(verdict(&r), "loop_detected");
    up.assert_nothing().await;
    let started = std::time::Instant::now();
    let req = format!(
        "POST /hooks/r HTTP/1.1\r\nhost: x\r\nvia: {via}\r\ncontent-length: 1000000\r\n\r\n"
    );
    let answer =
        crate::support::raw_exchange(gw.addr, req.as_bytes(), std::time::Duration::from_secs(3))
            .await;
    assert!(answer.starts_with("HTTP/1.1 508"), "{answer}");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    // Another gateway's token is not ours.
    let r = post(
        &gw.url("/hooks/r"),
        &[("via", "1.1 hookgate-0000000000000000")],
    )
    .await;
    assert_eq!(r.status(), 200);
    up.next().await;
}

/// Defect 6: a real self-loop ends after one round trip.
#[tokio::test]
async fn forwarding_loops_self_upstream() {
    // Pick a free port, then start the gateway on it with itself as the upstream.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let gw = Gateway::start_on(
        &format!("127.0.0.1:{port}"),
        &plain(&format!("http://127.0.0.1:{port}/hooks/r")),
    )
    .await;
    let started = std::time::Instant::now();
    let r = post(&gw.url("/hooks/r"), &[]).await;
    // The inner hop refused the loop; the outer passes that answer back.
    assert_eq!(r.status(), 508);
    let body = r.text().await.expect("body");
    assert!(body.contains("\"verdict\":\"loop_detected\""), "{body}");
    assert!(started.elapsed() < std::time::Duration::from_secs(3));
}

/// Defect 6: `check` (and start-up) refuse an upstream equal to a listen address.
#[test]
fn forwarding_loops_check_refuses_own_listen_address() {
    for (listen, upstream) in [
        ("127.0.0.1:18080", "http://127.0.0.1:18080/x"),
        ("127.0.0.1:18080", "http://localhost:18080/x"),
        ("0.0.0.0:18080", "http://localhost:18080/x"),
        ("0.0.0.0:18080", "http://127.0.0.5:18080/x"),
        ("0.0.0.0:80", "http://localhost/x"),
        ("[::]:18080", "http://[::1]:18080/x"),
        ("127.0.0.1:18080", "http://0.0.0.0:18080/x"),
        ("[::1]:443", "https://localhost/x"),
        // The scheme does not matter: the connection reaches the gateway.
        ("127.0.0.1:18080", "https://localhost:18080/x"),
    ] {
        let text = format!("[server]\nlisten = \"{listen}\"\n{}", plain(upstream));
        let err = hookgate::config::from_str(&text, "t")
            .err()
            .unwrap_or_else(|| panic!("{listen} -> {upstream} accepted"))
            .to_string();
        assert!(err.contains("route[0].upstream"), "{err}");
        assert!(err.contains("loop"), "{err}");
    }
    for (listen, upstream) in [
        ("127.0.0.1:18080", "http://127.0.0.1:18081/x"),
        ("127.0.0.1:18080", "http://127.0.0.2:18080/x"),
        ("0.0.0.0:18080", "http://[::1]:18080/x"),
    ] {
        let text = format!("[server]\nlisten = \"{listen}\"\n{}", plain(upstream));
        if let Err(e) = hookgate::config::from_str(&text, "t") {
            panic!("{listen} -> {upstream} refused: {e}");
        }
    }
    // The real `check`, with credentials in the URL that must not be printed.
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("hookgate.toml");
    std::fs::write(
        &path,
        format!(
            "[server]\nlisten = \"0.0.0.0:18080\"\n{}",
            plain("http://user:s3cret@localhost:18080/x")
        ),
    )
    .expect("write");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookgate"))
        .args(["check", "--config"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("route[0].upstream"), "{text}");
    assert!(!text.contains("s3cret"), "credentials printed: {text}");
}

/// Defect 7: with `upstream = "http://user:pass@host/..."` the sender's `Authorization`
/// replaced the configured credentials.
#[tokio::test]
async fn upstream_url_credentials_overridden() {
    use base64::Engine as _;
    let up = Upstream::start().await;
    let url = format!("http://svc:p%40ss@{}/in", up.addr);
    let gw = Gateway::start(&plain(&url)).await;
    let r = post(
        &gw.url("/hooks/r"),
        &[("authorization", "Bearer sender-token")],
    )
    .await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    let got = up.next().await.headers;
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode("svc:p@ss")
    );
    let values: Vec<_> = got.get_all("authorization").iter().collect();
    assert_eq!(values, [expected.as_str()]);
    // Without URL credentials the sender's header still passes (auth = none consumes nothing).
    let gw = Gateway::start(&plain(&up.url("/in"))).await;
    post(
        &gw.url("/hooks/r"),
        &[("authorization", "Bearer sender-token")],
    )
    .await;
    assert_eq!(
        up.next().await.headers["authorization"],
        "Bearer sender-token"
    );
}

/// `{"upstream":"compressed"}`, gzipped.
const GZIPPED: &[u8] = &[
    31, 139, 8, 0, 0, 0, 0, 0, 2, 3, 171, 86, 42, 45, 40, 46, 41, 74, 77, 204, 85, 178, 82, 74,
    206, 207, 45, 40, 74, 45, 46, 78, 77, 81, 170, 5, 0, 41, 157, 190, 231, 25, 0, 0, 0,
];

/// An upstream that answers per path with the headers a real service sends.
async fn scripted_upstream() -> std::net::SocketAddr {
    use axum::response::IntoResponse;
    async fn answer(uri: http::Uri) -> axum::response::Response {
        match uri.path() {
            "/redirect" => (
                http::StatusCode::TEMPORARY_REDIRECT,
                [
                    ("location", "https://elsewhere.example/in"),
                    ("x-custom", "kept"),
                ],
            )
                .into_response(),
            "/busy" => (
                http::StatusCode::SERVICE_UNAVAILABLE,
                [("retry-after", "7"), ("x-hookgate-verdict", "forged")],
                "busy",
            )
                .into_response(),
            "/limited" => {
                (http::StatusCode::TOO_MANY_REQUESTS, [("retry-after", "3")]).into_response()
            }
            _ => (
                [
                    ("content-type", "application/json"),
                    ("content-encoding", "gzip"),
                    ("vary", "accept-encoding"),
                ],
                GZIPPED,
            )
                .into_response(),
        }
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = axum::Router::new().fallback(answer);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

/// Defect 8: the upstream's answer lost `Location`, `Retry-After` and
/// `Content-Encoding` (while the body stayed compressed).
#[tokio::test]
async fn upstream_answer_loses_its_headers() {
    let up = scripted_upstream().await;
    let mut config = String::from("[store]\nbackend = \"memory\"\n");
    for name in ["redirect", "busy", "limited", "gz"] {
        config.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath = \"/hooks/{name}\"\nupstream = \"http://{up}/{name}\"\n"
        ));
    }
    let gw = Gateway::start(&config).await;

    let r = post(&gw.url("/hooks/redirect"), &[]).await;
    assert_eq!(r.status(), 307);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(r.headers()["location"], "https://elsewhere.example/in");
    assert_eq!(r.headers()["x-custom"], "kept");

    let r = post(&gw.url("/hooks/busy"), &[]).await;
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "7");
    // The verdict is the gateway's, one value.
    let verdicts: Vec<_> = r.headers().get_all("x-hookgate-verdict").iter().collect();
    assert_eq!(verdicts, ["forwarded"]);
    assert_eq!(r.text().await.expect("body"), "busy");

    let r = post(&gw.url("/hooks/limited"), &[]).await;
    assert_eq!(r.status(), 429);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(r.headers()["retry-after"], "3");

    // The body as the upstream sent it, with the encoding that describes it.
    let r = post(&gw.url("/hooks/gz"), &[("accept-encoding", "gzip")]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(r.headers()["content-encoding"], "gzip");
    assert_eq!(r.headers()["content-type"], "application/json");
    assert_eq!(r.headers()["vary"], "accept-encoding");
    assert_eq!(
        r.headers()["content-length"],
        GZIPPED.len().to_string().as_str()
    );
    assert_eq!(&r.bytes().await.expect("body")[..], GZIPPED);
}

/// A TLS upstream on 127.0.0.1 whose certificate a fresh private CA signed; returns its
/// address and the CA's PEM.
async fn tls_upstream() -> (std::net::SocketAddr, String) {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("ca key")).expect("ca");
    let leaf_key = KeyPair::generate().expect("leaf key");
    let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("leaf params")
        .signed_by(&leaf_key, &ca)
        .expect("leaf");
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![leaf.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into()),
        )
        .expect("server config");
    let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(http::Response::new(
                        http_body_util::Full::new(bytes::Bytes::from_static(b"tls-ok")),
                    ))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    (addr, ca.pem())
}

/// Smaller item: a private CA for an `https://` upstream worked only through
/// `SSL_CERT_FILE`; now a route names it with `upstream_ca`.
#[tokio::test]
async fn upstream_ca_trusts_a_private_ca() {
    let (up, ca_pem) = tls_upstream().await;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("ca")).expect("mkdir");
    std::fs::write(dir.path().join("ca/internal.pem"), ca_pem).expect("write ca");
    let path = dir.path().join("hookgate.toml");
    std::fs::write(
        &path,
        format!(
            r#"
[store]
backend = "memory"
[[route]]
name = "private"
path = "/hooks/private"
upstream = "https://{up}/in"
upstream_ca = "ca/internal.pem"
[[route]]
name = "system-roots"
path = "/hooks/system"
upstream = "https://{up}/in"
"#
        ),
    )
    .expect("write config");
    let settings = hookgate::config::load(&hookgate::config::ConfigSource::File(path))
        .expect("config with a relative upstream_ca");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let gw = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(hookgate::run(listener, settings, async {
        let _ = stopped.await;
    }));
    let r = post(&format!("http://{gw}/hooks/private"), &[]).await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(r.text().await.expect("body"), "tls-ok");
    // The same upstream without the CA is not trusted.
    let r = post(&format!("http://{gw}/hooks/system"), &[]).await;
    assert_eq!(r.status(), 502);
    assert_eq!(verdict(&r), "upstream_error");
    let _ = stop.send(());

    // check names the key for a CA that cannot be used.
    for (upstream, ca, why) in [
        ("http://127.0.0.1:9/x", "ca/internal.pem", "https://"),
        ("https://127.0.0.1:9/x", "ca/missing.pem", "cannot read"),
        (
            "https://127.0.0.1:9/x",
            "hookgate.toml",
            "no PEM certificate",
        ),
    ] {
        let text = format!("{}upstream_ca = \"{ca}\"\n", plain(upstream));
        let bad = dir.path().join("bad.toml");
        std::fs::write(&bad, text).expect("write");
        let err = hookgate::config::load(&hookgate::config::ConfigSource::File(bad))
            .err()
            .unwrap_or_else(|| panic!("{ca} accepted for {upstream}"))
            .to_string();
        assert!(err.contains("route[0].upstream_ca"), "{err}");
        assert!(err.contains(why), "{err}");
    }
}
