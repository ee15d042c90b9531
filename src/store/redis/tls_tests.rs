//! `rediss://`: a real `redis-server` serving TLS only, with a server certificate from
//! a test CA made here with rcgen; the store trusts that CA through `tls_ca`.

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

use crate::store::{EventTime, OrderPoint, ReserveOutcome, ReserveRequest, Store};

/// A CA: (issuer, its PEM).
fn ca(name: &str) -> (CertifiedIssuer<'static, KeyPair>, String) {
    let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    let issuer =
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca");
    let pem = issuer.pem();
    (issuer, pem)
}

/// `redis-server` with TLS only (`--port 0`), killed on drop.
struct TlsRedis {
    child: Child,
    port: u16,
}

impl TlsRedis {
    fn start(dir: &Path) -> (TlsRedis, String) {
        let (issuer, ca_pem) = ca("hookgate redis test CA");
        let key = KeyPair::generate().expect("leaf key");
        let mut params = CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".into()])
            .expect("leaf params");
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "127.0.0.1");
        let cert = params.signed_by(&key, &issuer).expect("leaf");
        let write = |name: &str, text: &str| {
            let p = dir.join(name);
            std::fs::write(&p, text).expect("write");
            p.display().to_string()
        };
        let cert_file = write("server.pem", &cert.pem());
        let key_file = write("server.key", &key.serialize_pem());
        let ca_file = write("ca.pem", &ca_pem);
        for _ in 0..20 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("free port")
                .port();
            let mut child = Command::new("redis-server")
                .args(["--port", "0", "--tls-port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .args(["--tls-cert-file", &cert_file, "--tls-key-file", &key_file])
                .args(["--tls-ca-cert-file", &ca_file, "--tls-auth-clients", "no"])
                .args(["--protected-mode", "no", "--daemonize", "no"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start redis-server from PATH ({e}); install it (.ci/run does)")
                });
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    // Exited: the port was taken, or this redis-server has no TLS.
                    eprintln!("redis-server exited ({status}); trying another port");
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return (TlsRedis { child, port }, ca_pem);
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("redis-server with TLS did not start (does it link libssl?)");
    }
}

impl Drop for TlsRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn options(port: u16, tls_ca: Option<Vec<u8>>) -> super::RedisOptions {
    super::RedisOptions {
        url: format!("rediss://127.0.0.1:{port}"),
        pool_size: 2,
        connect_timeout: Duration::from_secs(2),
        command_timeout: Duration::from_secs(2),
        wait_replicas: 0,
        key_prefix: "hgtls".to_owned(),
        lease: Duration::from_secs(15),
        tls_ca,
    }
}

fn request(id: &str) -> ReserveRequest<'_> {
    ReserveRequest {
        route: "tls",
        event_id: Some(id),
        order: Some(OrderPoint {
            entity: "inc-1",
            time: EventTime(1_000),
        }),
        dedup_ttl: Duration::from_secs(60),
        order_ttl: Duration::from_secs(60),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_tls_ca_reserves_commits_and_sees_the_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, ca_pem) = TlsRedis::start(dir.path());
    let store = Store::open_redis(&options(server.port, Some(ca_pem.into_bytes())))
        .unwrap_or_else(|e| panic!("open over TLS: {e}"));
    store.ping().await.expect("ping over TLS");
    let ReserveOutcome::Reserved(r) = store.reserve(request("evt-1")).await.expect("reserve")
    else {
        panic!("first reserve must be Reserved");
    };
    store.commit(r).await.expect("commit");
    assert!(
        matches!(
            store
                .reserve(request("evt-1"))
                .await
                .expect("reserve again"),
            ReserveOutcome::Duplicate
        ),
        "the committed id must be a duplicate"
    );
    // A second store on the same TLS server shares the verdict.
    let other = Store::open_redis(&options(
        server.port,
        Some(std::fs::read(dir.path().join("ca.pem")).expect("ca")),
    ))
    .expect("second store");
    assert!(matches!(
        other.reserve(request("evt-1")).await.expect("reserve on B"),
        ReserveOutcome::Duplicate
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rediss_with_a_wrong_ca_fails_to_open_with_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, _ca_pem) = TlsRedis::start(dir.path());
    let (_other, wrong_pem) = ca("some other CA");
    let Err(e) = Store::open_redis(&options(server.port, Some(wrong_pem.into_bytes()))) else {
        panic!("a server certificate from another CA must be refused");
    };
    let text = e.to_string();
    eprintln!("{text}");
    assert!(
        text.contains(&format!("rediss://127.0.0.1:{}", server.port)),
        "names the url: {text}"
    );
    assert!(
        text.contains("TLS") && text.contains("certificate") && text.contains("store.tls_ca"),
        "says the certificate is the problem: {text}"
    );
    // The system's roots do not know the test CA either.
    let Err(e) = Store::open_redis(&options(server.port, None)) else {
        panic!("the test CA is not a system root");
    };
    assert!(
        e.to_string().to_ascii_lowercase().contains("certificate"),
        "{e}"
    );
}
