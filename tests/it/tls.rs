//! TLS at the edge: real rustls clients (reqwest) against the gateway with certificates
//! from a test CA made here with rcgen. HTTP/1.1 and h2 (ALPN), SNI, reload by file
//! change under load, client certificates, and bad input at the handshake.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::support::gateway::Gateway;
use crate::support::upstream::Upstream;
use crate::support::verdict;

/// A private CA that signs server and client certificates.
struct Ca {
    issuer: CertifiedIssuer<'static, KeyPair>,
}

impl Ca {
    fn new() -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "hookgate test CA");
        Ca {
            issuer: CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key"))
                .expect("ca"),
        }
    }

    fn pem(&self) -> String {
        self.issuer.pem()
    }

    /// A leaf for `names`; returns (chain PEM, key PEM).
    fn leaf(&self, names: &[&str], client: bool) -> (String, String) {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
                .expect("leaf params");
        // A subject of its own: openssl takes a leaf named like its issuer for self-signed.
        params.distinguished_name = rcgen::DistinguishedName::new();
        params.distinguished_name.push(
            rcgen::DnType::CommonName,
            names.first().copied().unwrap_or("leaf"),
        );
        if client {
            params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        }
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        (cert.pem(), key.serialize_pem())
    }
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A TLS client trusting `ca`, with `identity` (chain + key PEM) if given.
fn tls_client(ca: &Ca, h2: bool, identity: Option<&(String, String)>) -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut b = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .tls_certs_only([reqwest::Certificate::from_pem(ca.pem().as_bytes()).expect("ca")])
        .resolve("hooks.test", "127.0.0.1:0".parse().expect("addr"))
        .resolve("other.test", "127.0.0.1:0".parse().expect("addr"))
        .resolve("unknown.test", "127.0.0.1:0".parse().expect("addr"));
    b = if h2 {
        b.http2_prior_knowledge()
    } else {
        b.http1_only()
    };
    if let Some((chain, key)) = identity {
        b = b.identity(
            reqwest::Identity::from_pem(format!("{chain}{key}").as_bytes()).expect("identity"),
        );
    }
    b.build().expect("client")
}

fn url(gw: &Gateway, host: &str, path: &str) -> String {
    format!("https://{host}:{}{path}", gw.addr.port())
}

struct Edge {
    gw: Gateway,
    up: Upstream,
    ca: Ca,
    dir: tempfile::TempDir,
}

/// The gateway on TLS with a default certificate for `localhost` and `127.0.0.1`, an
/// SNI certificate for `hooks.test`, and `extra_tls` / `routes` appended.
async fn edge(extra_tls: &str, routes: &str) -> Edge {
    edge_with("", extra_tls, routes).await
}

/// [`edge`] with `server_extra` lines in `[server]`.
async fn edge_with(server_extra: &str, extra_tls: &str, routes: &str) -> Edge {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tmp");
    let (c, k) = ca.leaf(&["localhost", "127.0.0.1"], false);
    let cert = write(dir.path(), "default.pem", &c);
    let key = write(dir.path(), "default.key", &k);
    let (c, k) = ca.leaf(&["hooks.test"], false);
    let sni_cert = write(dir.path(), "hooks.pem", &c);
    let sni_key = write(dir.path(), "hooks.key", &k);
    let client_ca = write(dir.path(), "client-ca.pem", &ca.pem());
    let up = Upstream::start().await;
    let extra_tls = extra_tls.replace("CLIENT_CA", &client_ca.display().to_string());
    let config = format!(
        r#"
[server]
read_timeout = "1s"
max_body_bytes = 64
{server_extra}
tls = {{ cert = "{}", key = "{}", sni = [{{ names = ["hooks.test"], cert = "{}", key = "{}" }}] {extra_tls} }}
[store]
backend = "memory"
[[route]]
name = "open"
path = "/hooks/open"
upstream = "{}"
[[route]]
name = "bearer"
path = "/hooks/bearer"
upstream = "{}"
auth = {{ type = "bearer", tokens = ["s3cret"] }}
{routes}
"#,
        cert.display(),
        key.display(),
        sni_cert.display(),
        sni_key.display(),
        up.url("/open"),
        up.url("/bearer"),
    )
    .replace("UPSTREAM", &up.url("/x"));
    let gw = Gateway::start(&config).await;
    Edge { gw, up, ca, dir }
}

/// The verdict table on one protocol: every answer is the same on h1 and h2.
async fn verdict_table(e: &Edge, h2: bool) {
    let c = tls_client(&e.ca, h2, None);
    let want = if h2 {
        reqwest::Version::HTTP_2
    } else {
        reqwest::Version::HTTP_11
    };
    let cases: Vec<(&str, Option<&str>, &str, u16, &str)> = vec![
        ("/hooks/open", None, r#"{"a":1}"#, 200, "forwarded"),
        ("/nowhere", None, r#"{"a":1}"#, 404, "no_route"),
        ("/hooks/bearer", None, r#"{"a":1}"#, 401, "unauthorized"),
        (
            "/hooks/bearer",
            Some("s3cret"),
            r#"{"a":1}"#,
            200,
            "forwarded",
        ),
        ("/hooks/open", None, "{not json", 400, "invalid_json"),
        (
            "/hooks/open",
            None,
            r#"{"padding":"0123456789012345678901234567890123456789012345678901234567890123456789"}"#,
            413,
            "too_large",
        ),
    ];
    for (path, token, body, status, v) in cases {
        let mut req = c
            .post(url(&e.gw, "localhost", path))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        let r = req.send().await.expect("request over TLS");
        assert_eq!(r.version(), want, "{path}");
        assert_eq!(r.status(), status, "{path} {body} on h2={h2}");
        assert_eq!(verdict(&r), v, "{path} {body} on h2={h2}");
    }
    let r = c
        .get(url(&e.gw, "localhost", "/healthz"))
        .send()
        .await
        .expect("healthz");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn tls_serves_the_verdict_table_on_h1_and_h2_and_says_https_upstream() {
    let e = edge("", "").await;
    verdict_table(&e, false).await;
    verdict_table(&e, true).await;
    // Forwarded requests say how the sender reached the gateway.
    let c = tls_client(&e.ca, true, None);
    let r = c
        .post(url(&e.gw, "localhost", "/hooks/open"))
        .body(r#"{"b":2}"#)
        .send()
        .await
        .expect("post");
    assert_eq!(verdict(&r), "forwarded");
    let mut last = None;
    while let Ok(Ok(rec)) = tokio::time::timeout(Duration::from_millis(200), async {
        Ok::<_, ()>(e.up.next().await)
    })
    .await
    {
        last = Some(rec);
    }
    let rec = last.expect("the upstream received the request");
    assert_eq!(rec.headers["x-forwarded-proto"], "https");
    // Plain HTTP on a TLS listener is not served.
    let plain = crate::support::client()
        .get(format!("http://{}/healthz", e.gw.addr))
        .send()
        .await;
    assert!(plain.is_err(), "plain HTTP answered on the TLS port");
}

#[tokio::test]
async fn sni_chooses_the_certificate_and_an_unknown_name_gets_the_default() {
    let e = edge("", "").await;
    let c = tls_client(&e.ca, false, None);
    // hooks.test is only in the SNI certificate: verification proves it was served.
    let r = c
        .get(url(&e.gw, "hooks.test", "/healthz"))
        .send()
        .await
        .expect("SNI certificate");
    assert_eq!(r.status(), 200);
    // unknown.test gets the default certificate, which does not name it: the client
    // refuses, the gateway keeps serving.
    let err = c
        .get(url(&e.gw, "unknown.test", "/healthz"))
        .send()
        .await
        .expect_err("the default certificate does not name unknown.test");
    assert!(err.is_connect() || err.is_request(), "{err:?}");
    let r = c
        .get(url(&e.gw, "localhost", "/healthz"))
        .send()
        .await
        .expect("default certificate");
    assert_eq!(r.status(), 200);
}

#[tokio::test]
async fn certificates_reload_on_file_change_without_failing_requests_in_flight() {
    let e = edge("", "").await;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut load = Vec::new();
    for h2 in [false, true] {
        let c = tls_client(&e.ca, h2, None);
        let u = url(&e.gw, "localhost", "/hooks/open");
        let stop = stop.clone();
        load.push(tokio::spawn(async move {
            let mut n = 0u32;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let r = c
                    .post(&u)
                    .body(r#"{"n":1}"#)
                    .send()
                    .await
                    .expect("no failed request");
                assert_eq!(r.status(), 200);
                n += 1;
            }
            n
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // Rotation: the default pair now also names other.test.
    let (c, k) = e.ca.leaf(&["localhost", "127.0.0.1", "other.test"], false);
    write(e.dir.path(), "default.key", &k);
    write(e.dir.path(), "default.pem", &c);
    let fresh = tls_client(&e.ca, false, None);
    let mut served = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        if fresh
            .get(url(&e.gw, "other.test", "/healthz"))
            .send()
            .await
            .is_ok()
        {
            served = true;
            break;
        }
    }
    assert!(served, "the rotated certificate was never served");
    // A bad pair (a key of another certificate) is refused: the rotated one stays.
    let (_, wrong_key) = e.ca.leaf(&["localhost"], false);
    write(e.dir.path(), "default.key", &wrong_key);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = tls_client(&e.ca, false, None)
        .get(url(&e.gw, "other.test", "/healthz"))
        .send()
        .await
        .expect("the old pair keeps serving after a bad rotation");
    assert_eq!(r.status(), 200);
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for t in load {
        assert!(t.await.expect("load task") > 0);
    }
}

#[tokio::test]
async fn client_certificates_required_refuse_a_handshake_without_or_with_a_foreign_one() {
    let e = edge(r#", client_ca = "CLIENT_CA", client_auth = "required""#, "").await;
    let good = e.ca.leaf(&["sender.example"], true);
    let r = tls_client(&e.ca, false, Some(&good))
        .post(url(&e.gw, "localhost", "/hooks/open"))
        .body("{}")
        .send()
        .await
        .expect("a verified client certificate");
    assert_eq!(verdict(&r), "forwarded");
    assert!(
        tls_client(&e.ca, false, None)
            .get(url(&e.gw, "localhost", "/healthz"))
            .send()
            .await
            .is_err(),
        "served without a client certificate"
    );
    let foreign = Ca::new().leaf(&["sender.example"], true);
    assert!(
        tls_client(&e.ca, true, Some(&foreign))
            .get(url(&e.gw, "localhost", "/healthz"))
            .send()
            .await
            .is_err(),
        "served a client certificate of another CA"
    );
    let expired = {
        let key = KeyPair::generate().expect("key");
        let mut params = CertificateParams::new(vec!["sender.example".to_owned()]).expect("params");
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.not_before = time::OffsetDateTime::now_utc() - time::Duration::days(30);
        params.not_after = time::OffsetDateTime::now_utc() - time::Duration::days(1);
        let cert = params.signed_by(&key, &e.ca.issuer).expect("cert");
        (cert.pem(), key.serialize_pem())
    };
    assert!(
        tls_client(&e.ca, false, Some(&expired))
            .get(url(&e.gw, "localhost", "/healthz"))
            .send()
            .await
            .is_err(),
        "served an expired client certificate"
    );
    // Still serving, and the three refusals are counted.
    let r = tls_client(&e.ca, true, Some(&good))
        .get(url(&e.gw, "localhost", "/metrics"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(r.status(), 200);
    let text = r.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l == "hookgate_connections_closed_total{reason=\"tls_handshake\"} 3"),
        "{text}"
    );
}

/// `max_requests_per_connection` on h2: the connection's last answer is followed by
/// GOAWAY, the client carries on over a new connection, no request fails.
#[tokio::test]
async fn h2_connection_request_limit_sends_goaway_and_no_request_fails() {
    let e = edge_with("max_requests_per_connection = 2", "", "").await;
    let c = tls_client(&e.ca, true, None);
    for i in 0..5 {
        let r = c
            .get(url(&e.gw, "localhost", "/healthz"))
            .send()
            .await
            .unwrap_or_else(|err| panic!("request {i}: {err}"));
        assert_eq!(r.status(), 200);
        assert_eq!(r.version(), reqwest::Version::HTTP_2);
        // Time for the GOAWAY to reach the client's pool.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = c
        .get(url(&e.gw, "localhost", "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    // Requests 1-2, 3-4, then 5 and this one: three connections, two recycled.
    assert!(
        text.lines()
            .any(|l| l == "hookgate_connections_accepted_total 3"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "hookgate_connections_shed_total{reason=\"max_requests\"} 2"),
        "{text}"
    );
}

#[tokio::test]
async fn client_subjects_require_a_matching_certificate_per_route() {
    let e = edge(
        r#", client_ca = "CLIENT_CA", client_auth = "optional""#,
        r#"
[[route]]
name = "mtls"
path = "/hooks/mtls"
upstream = "UPSTREAM"
client_subjects = ["sender.example", "spiffe://test/sender"]
"#,
    )
    .await;
    let good = e.ca.leaf(&["sender.example"], true);
    let other = e.ca.leaf(&["intruder.example"], true);
    for h2 in [false, true] {
        let post = |id: Option<&(String, String)>, path: &str| {
            tls_client(&e.ca, h2, id)
                .post(url(&e.gw, "localhost", path))
                .body("{}")
                .send()
        };
        let r = post(Some(&good), "/hooks/mtls").await.expect("good");
        assert_eq!(
            (r.status().as_u16(), verdict(&r)),
            (200, "forwarded".into())
        );
        let r = post(Some(&other), "/hooks/mtls").await.expect("other");
        assert_eq!(
            (r.status().as_u16(), verdict(&r)),
            (401, "unauthorized".into())
        );
        let r = post(None, "/hooks/mtls").await.expect("none");
        assert_eq!(
            (r.status().as_u16(), verdict(&r)),
            (401, "unauthorized".into())
        );
        // A route without client_subjects serves a sender without a certificate.
        let r = post(None, "/hooks/open").await.expect("open");
        assert_eq!(
            (r.status().as_u16(), verdict(&r)),
            (200, "forwarded".into())
        );
    }
}

async fn closed_within(addr: SocketAddr, send: &[u8], within: Duration) -> bool {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    if !send.is_empty() {
        s.write_all(send).await.expect("write");
    }
    let mut buf = [0u8; 256];
    matches!(
        tokio::time::timeout(within, async {
            loop {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(_) => {}
                }
            }
        })
        .await,
        Ok(())
    )
}

#[tokio::test]
async fn garbage_and_stalled_handshakes_are_closed_and_the_gateway_keeps_serving() {
    let e = edge("", "").await;
    assert!(
        closed_within(
            e.gw.addr,
            b"POST /hooks/open HTTP/1.1\r\nHost: x\r\n\r\n",
            Duration::from_secs(3)
        )
        .await,
        "garbage instead of a ClientHello was not closed"
    );
    // A ClientHello that never comes: closed by the header read timeout (1 s).
    let started = std::time::Instant::now();
    assert!(
        closed_within(e.gw.addr, b"\x16\x03\x01", Duration::from_secs(5)).await,
        "a stalled handshake was never closed"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    let r = tls_client(&e.ca, true, None)
        .get(url(&e.gw, "localhost", "/healthz"))
        .send()
        .await
        .expect("still serving");
    assert_eq!(r.status(), 200);
    let text = tls_client(&e.ca, true, None)
        .get(url(&e.gw, "localhost", "/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for reason in ["tls_handshake", "tls_timeout"] {
        assert!(
            text.lines().any(|l| l.starts_with(&format!(
                "hookgate_connections_closed_total{{reason=\"{reason}\"}}"
            )) && l.ends_with(" 1")),
            "{reason}: {text}"
        );
    }
}

/// Relative TLS paths resolve against the config file's directory, and a bad pair is a
/// start-up error naming the file.
#[tokio::test]
async fn tls_paths_resolve_against_the_config_directory_and_a_bad_pair_is_refused() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("tls")).expect("mkdir");
    let (c, k) = ca.leaf(&["localhost"], false);
    write(dir.path(), "tls/chain.pem", &c);
    let (_, other_key) = ca.leaf(&["localhost"], false);
    write(dir.path(), "tls/key.pem", &other_key);
    let path = write(
        dir.path(),
        "hookgate.toml",
        "[server]\ntls = { cert = \"tls/chain.pem\", key = \"tls/key.pem\" }\n[store]\nbackend = \"memory\"\n",
    );
    let settings = hookgate::config::load(&hookgate::config::ConfigSource::File(path.clone()))
        .expect("config");
    let tls = settings.server.tls.clone().expect("tls");
    assert_eq!(tls.default.cert, dir.path().join("tls/chain.pem"));
    let err = hookgate::server::tls::TlsEdge::new(&tls).expect_err("mismatched key");
    assert!(err.to_string().contains("does not match"), "{err}");
    write(dir.path(), "tls/key.pem", &k);
    hookgate::server::tls::TlsEdge::new(&tls).expect("matching pair");
}

/// PROXY v2 in front of TLS: the header comes first, in the clear, then the handshake;
/// the allowlist judges the address the header names.
#[tokio::test]
async fn proxy_protocol_works_in_front_of_tls() {
    let e = edge_with(
        "proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1/32\"]",
        "",
        r#"
[[route]]
name = "only"
path = "/hooks/only"
allow_ips = ["203.0.113.7"]
upstream = "UPSTREAM"
"#,
    )
    .await;
    let mut roots = rustls::RootCertStore::empty();
    for c in
        hookgate::server::tls::read_certs(&write(e.dir.path(), "ca.pem", &e.ca.pem())).expect("ca")
    {
        roots.add(c).expect("root");
    }
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    for (source, status) in [("203.0.113.7:5000", "200"), ("198.51.100.9:5000", "403")] {
        let src: SocketAddr = source.parse().expect("addr");
        let header = ppp::v2::Builder::with_addresses(
            ppp::v2::Version::Two | ppp::v2::Command::Proxy,
            ppp::v2::Protocol::Stream,
            (src, e.gw.addr),
        )
        .build()
        .expect("header");
        let mut tcp = tokio::net::TcpStream::connect(e.gw.addr)
            .await
            .expect("connect");
        tcp.write_all(&header).await.expect("header");
        let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
        let mut tls = connector
            .connect(name, tcp)
            .await
            .expect("handshake after PROXY");
        tls.write_all(
            b"POST /hooks/only HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}",
        )
        .await
        .expect("request");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), tls.read_to_end(&mut answer)).await;
        let answer = String::from_utf8_lossy(&answer);
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status}")),
            "{source}: {answer}"
        );
    }
}

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

/// `hookgate check` names every served certificate's subject, SANs and expiry, and
/// warns about one that expires within 14 days.
#[test]
fn check_prints_certificates_and_warns_before_expiry() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tmp");
    let (c, k) = ca.leaf(&["localhost", "127.0.0.1"], false);
    write(dir.path(), "default.pem", &c);
    write(dir.path(), "default.key", &k);
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::new(vec!["soon.test".to_owned()]).expect("params");
    params.not_after = time::OffsetDateTime::now_utc() + time::Duration::days(5);
    let soon = params.signed_by(&key, &ca.issuer).expect("cert");
    write(dir.path(), "soon.pem", &soon.pem());
    write(dir.path(), "soon.key", &key.serialize_pem());
    let config = write(
        dir.path(),
        "hookgate.toml",
        "[server]\ntls = { cert = \"default.pem\", key = \"default.key\", sni = [{ names = [\"soon.test\"], cert = \"soon.pem\", key = \"soon.key\" }] }\n[store]\nbackend = \"memory\"\n",
    );
    let out = std::process::Command::new(BIN)
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("run check");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("SANs [DNS:localhost, IP:127.0.0.1]"),
        "{stdout}"
    );
    assert!(stdout.contains("SANs [DNS:soon.test]"), "{stdout}");
    assert!(
        stderr.contains("soon.pem expires in 4 days")
            || stderr.contains("soon.pem expires in 5 days"),
        "{stderr}"
    );
    assert!(!stderr.contains("default.pem expires"), "{stderr}");
}

/// The real binary on TLS, checked by `openssl s_client` (ALPN h2, verified chain) and
/// `curl --http2`. Both tools are required: a missing one fails the test.
#[test]
fn real_binary_speaks_tls_and_h2_to_openssl_and_curl() {
    use std::io::BufRead as _;
    let ca = Ca::new();
    let dir = tempfile::tempdir().expect("tmp");
    let (c, k) = ca.leaf(&["localhost"], false);
    write(dir.path(), "chain.pem", &c);
    write(dir.path(), "key.pem", &k);
    let ca_file = write(dir.path(), "ca.pem", &ca.pem());
    let config = write(
        dir.path(),
        "hookgate.toml",
        "[server]\nlisten = \"127.0.0.1:0\"\ntls = { cert = \"chain.pem\", key = \"key.pem\" }\n[store]\nbackend = \"memory\"\n",
    );
    let mut child = std::process::Command::new(BIN)
        .args(["serve", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the binary");
    let mut first = String::new();
    std::io::BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut first)
        .expect("read");
    let port = first
        .split_whitespace()
        .nth(3)
        .and_then(|a| a.rsplit(':').next())
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    assert!(first.contains("(https,"), "{first}");
    let s_client = std::process::Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}")])
        .args(["-servername", "localhost", "-alpn", "h2", "-CAfile"])
        .arg(&ca_file)
        .stdin(std::process::Stdio::null())
        .output()
        .expect("openssl s_client must be installed");
    let text = String::from_utf8_lossy(&s_client.stdout);
    let curl = std::process::Command::new("curl")
        .args([
            "--http2",
            "-s",
            "-o",
            "/dev/null",
            "-w",
            "%{http_version} %{http_code}",
        ])
        .args([
            "--resolve",
            &format!("localhost:{port}:127.0.0.1"),
            "--cacert",
        ])
        .arg(&ca_file)
        .arg(format!("https://localhost:{port}/healthz"))
        .output()
        .expect("curl must be installed");
    let _ = child.kill();
    let _ = child.wait();
    assert!(text.contains("ALPN protocol: h2"), "{text}");
    assert!(text.contains("Verify return code: 0 (ok)"), "{text}");
    assert_eq!(String::from_utf8_lossy(&curl.stdout), "2 200");
}

/// `idle_timeout` closes an idle h2 connection too (hyper has no header timer on h2):
/// the next request goes over a new connection.
#[tokio::test]
async fn h2_idle_connection_closes_after_idle_timeout() {
    let e = edge_with("idle_timeout = \"500ms\"", "", "").await;
    let c = tls_client(&e.ca, true, None);
    let get = |path: &'static str| {
        let c = c.clone();
        let u = url(&e.gw, "localhost", path);
        async move { c.get(u).send().await.expect("request") }
    };
    assert_eq!(get("/healthz").await.status(), 200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let text = get("/metrics").await.text().await.expect("text");
    assert!(
        text.lines()
            .any(|l| l == "hookgate_connections_shed_total{reason=\"idle_timeout\"} 1"),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l == "hookgate_connections_accepted_total 2"),
        "{text}"
    );
}
