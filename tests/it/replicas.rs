//! Several replicas on one Redis (DESIGN.md §5, §7): two processes of the real binary
//! share a real `redis-server`; dedup, order and the async outbox hold across them, a
//! `kill -9`ed replica's accepted events are delivered by the other, and a Redis that
//! restarts empty is survived without restarting the gateways.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::redis_server::RedisServer;
use crate::support::upstream::Upstream;
use crate::support::{client, verdict};

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// One gateway process of the real binary.
struct Replica {
    child: Option<std::process::Child>,
    port: u16,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

impl Replica {
    /// Starts `hookgate serve` with `routes` on Redis `url`, and waits for `/readyz`.
    async fn start(url: &str, routes: &str) -> Replica {
        let dir = tempfile::tempdir().expect("tmp");
        let port = free_port();
        let cfg = format!(
            "[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nbackend = \"redis\"\nurl = \"{url}\"\ncommand_timeout = \"500ms\"\nconnect_timeout = \"500ms\"\n{routes}"
        );
        let file = dir.path().join("hookgate.toml");
        std::fs::write(&file, cfg).expect("config");
        let child = std::process::Command::new(BIN)
            .args(["serve", "--config", file.to_str().expect("utf8")])
            .env("RUST_LOG", "error")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("spawn hookgate");
        let r = Replica {
            child: Some(child),
            port,
            config: file,
            _dir: dir,
        };
        r.wait_ready(Duration::from_secs(10)).await;
        r
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    async fn ready(&self) -> Option<u16> {
        client()
            .get(self.url("/readyz"))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    async fn wait_ready(&self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.ready().await != Some(200) {
            assert!(
                Instant::now() < deadline,
                "replica on {} not ready",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// `kill -9`.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

const SYNC_ROUTE: &str = r#"
[[route]]
name = "fd"
path = "/hooks/fd"
upstream = "UPSTREAM"
dedup_key = "/event_id"
order_key = "/incident/incident_id"
order_time = "/event_time"
upstream_timeout = "2s"
"#;

const ASYNC_ROUTE: &str = r#"
[[route]]
name = "async"
path = "/hooks/async"
upstream = "UPSTREAM"
delivery = "async"
dedup_key = "/event_id"
order_key = "/incident/incident_id"
order_time = "/event_time"
upstream_timeout = "2s"
retry = { max_attempts = 50, initial = "100ms", max_delay = "300ms" }
"#;

fn event(id: &str, incident: &str, time: i64) -> String {
    json!({"event_id": id, "event_time": time, "incident": {"incident_id": incident}}).to_string()
}

fn id_of(r: &crate::support::upstream::Recorded) -> String {
    r.headers["x-hookgate-event-id"]
        .to_str()
        .expect("ascii")
        .to_owned()
}

async fn send(url: &str, body: &str) -> (u16, String) {
    let r = client()
        .post(url)
        .body(body.to_owned())
        .send()
        .await
        .expect("send");
    (r.status().as_u16(), verdict(&r))
}

/// `max_pending` is exact across replicas: with the upstream down, events sent at once
/// to two replicas are accepted up to `max_pending` and no further (each replica's
/// cached count alone let both accept past it), and what was refused is 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_pending_holds_across_replicas() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    up.set_status(503);
    let routes = ASYNC_ROUTE.replace("UPSTREAM", &up.url("/in")) + "max_pending = 10\n";
    let a = Replica::start(&redis.url(), &routes).await;
    let b = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    let mut sends = tokio::task::JoinSet::new();
    for i in 0..40 {
        let url = if i % 2 == 0 {
            a.url("/hooks/async")
        } else {
            b.url("/hooks/async")
        };
        sends.spawn(async move {
            send(&url, &event(&format!("m{i}"), &format!("inc-{i}"), t + i)).await
        });
    }
    let answers = sends.join_all().await;
    let accepted = answers.iter().filter(|(s, _)| *s == 202).count();
    let refused = answers
        .iter()
        .filter(|(s, v)| (*s, v.as_str()) == (503, "unavailable"))
        .count();
    assert_eq!((accepted, refused), (10, 30), "answers: {answers:?}");
    let stream = "hookgate:{async}:outbox";
    assert_eq!(redis.command(&format!("XLEN {stream}")), ":10\r\n");
}

/// 50 concurrent identical events spread over two replicas: exactly one is forwarded,
/// the others are 409 `in_flight` or 200 `duplicate`; then stale and equal times are
/// judged the same whichever replica sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_forward_one_of_fifty_copies_and_share_the_order() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    up.set_delay(Duration::from_millis(300));
    let routes = SYNC_ROUTE.replace("UPSTREAM", &up.url("/in"));
    let a = Replica::start(&redis.url(), &routes).await;
    let b = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    let body = event("evt-1", "inc-1", t);
    let tasks: Vec<_> = (0..50)
        .map(|i| {
            let url = if i % 2 == 0 { &a } else { &b }.url("/hooks/fd");
            let body = body.clone();
            tokio::spawn(async move { send(&url, &body).await })
        })
        .collect();
    let mut forwarded = 0;
    for task in tasks {
        match task.await.expect("join") {
            (200, v) if v == "forwarded" => forwarded += 1,
            (200, v) if v == "duplicate" => {}
            (409, v) if v == "in_flight" => {}
            other => panic!("unexpected answer {other:?}"),
        }
    }
    assert_eq!(forwarded, 1);
    up.next().await;
    up.assert_nothing().await;
    up.set_delay(Duration::ZERO);

    // Order across replicas: A delivers t+10, B refuses t+5 as stale, B forwards an
    // equal time (another id), A refuses the copy of evt-2 as a duplicate.
    let fd = |r: &Replica| r.url("/hooks/fd");
    assert_eq!(
        send(&fd(&a), &event("evt-2", "inc-1", t + 10)).await.1,
        "forwarded"
    );
    assert_eq!(
        send(&fd(&b), &event("evt-3", "inc-1", t + 5)).await.1,
        "stale"
    );
    assert_eq!(
        send(&fd(&b), &event("evt-4", "inc-1", t + 10)).await.1,
        "forwarded"
    );
    assert_eq!(
        send(&fd(&a), &event("evt-2", "inc-1", t + 10)).await.1,
        "duplicate"
    );
    assert_eq!(
        send(&fd(&a), &event("evt-5", "inc-2", t)).await.1,
        "forwarded"
    );
    let ids: Vec<String> = [up.next().await, up.next().await, up.next().await]
        .iter()
        .map(id_of)
        .collect();
    assert_eq!(ids, ["evt-2", "evt-4", "evt-5"]);
    up.assert_nothing().await;
}

/// Async events accepted by A while the upstream fails, A `kill -9`ed before any
/// delivery succeeded: B takes the route's outbox over (after the worker lease runs
/// out) and delivers every event, in order per entity.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_accepted_by_a_killed_replica_are_delivered_by_the_other_in_order() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    up.set_status(503);
    let routes = ASYNC_ROUTE.replace("UPSTREAM", &up.url("/in"));
    let mut a = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    let url = a.url("/hooks/async");
    for i in 0..6 {
        let incident = if i % 2 == 0 { "inc-A" } else { "inc-B" };
        let (s, v) = send(&url, &event(&format!("e{i}"), incident, t + i)).await;
        assert_eq!((s, v.as_str()), (202, "accepted"));
    }
    // B starts while A still holds the route: it waits.
    let b = Replica::start(&redis.url(), &routes).await;
    up.wait_arrivals(1).await;
    // A read all six through the route's consumer group: they are pending with A's
    // consumer (XPENDING's summary starts with the count).
    let stream = "hookgate:{async}:outbox";
    let deadline = Instant::now() + Duration::from_secs(5);
    while !redis
        .command(&format!("XPENDING {stream} delivery"))
        .starts_with("*4\r\n:6\r\n")
    {
        assert!(Instant::now() < deadline, "A has not read the six events");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill();
    // What A tried (and failed) is drained; from now on only B delivers, successfully.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let failed_before = up.count_now().await;
    assert!(failed_before >= 1);
    up.set_status(200);
    let mut delivered: Vec<String> = Vec::new();
    while delivered.len() < 6 {
        // B takes over once A's worker lease runs out (10 s without renewal).
        let got = up
            .next_within(Duration::from_secs(20))
            .await
            .unwrap_or_else(|| panic!("not all delivered: {delivered:?}"));
        let id = id_of(&got);
        if !delivered.contains(&id) {
            delivered.push(id);
        }
    }
    let pos = |id: &str| delivered.iter().position(|d| d == id).expect("delivered");
    assert!(
        pos("e0") < pos("e2") && pos("e2") < pos("e4"),
        "{delivered:?}"
    );
    assert!(
        pos("e1") < pos("e3") && pos("e3") < pos("e5"),
        "{delivered:?}"
    );
    // B got them by XAUTOCLAIM from A's consumer: B counts six taken over, and A's
    // consumer, left with nothing pending, was removed from the group.
    let metrics = client()
        .get(b.url("/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    assert!(
        metrics.contains("hookgate_outbox_taken_over_total{route=\"async\"} 6"),
        "{metrics}"
    );
    assert!(
        redis
            .command(&format!("XINFO CONSUMERS {stream} delivery"))
            .starts_with("*1\r\n"),
        "A's consumer is still in the group"
    );
    // B also accepts and delivers new events itself.
    let (s, _) = send(&b.url("/hooks/async"), &event("e6", "inc-A", t + 6)).await;
    assert_eq!(s, 202);
    let got = up
        .next_within(Duration::from_secs(10))
        .await
        .expect("e6 delivered");
    assert_eq!(id_of(&got), "e6");
}

/// Redis killed mid-test (persistence off) and started again empty: `/readyz` and the
/// async route answer 503 (with `Retry-After`) meanwhile; then both replicas recover
/// by themselves, sync and async, without being restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_restarted_empty_is_survived_without_restarting_the_gateways() {
    let mut redis = RedisServer::start();
    let up = Upstream::start().await;
    let routes = format!(
        "{}{}",
        SYNC_ROUTE.replace("UPSTREAM", &up.url("/in")),
        ASYNC_ROUTE.replace("UPSTREAM", &up.url("/in"))
    );
    let a = Replica::start(&redis.url(), &routes).await;
    let b = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    assert_eq!(
        send(&a.url("/hooks/fd"), &event("s1", "inc-1", t)).await.1,
        "forwarded"
    );
    assert_eq!(
        send(&b.url("/hooks/async"), &event("a1", "inc-9", t))
            .await
            .0,
        202
    );
    up.next().await;
    up.next().await;

    redis.stop();
    for r in [&a, &b] {
        assert_eq!(r.ready().await, Some(503));
        let resp = client()
            .post(r.url("/hooks/async"))
            .body(event("a2", "inc-9", t + 1))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status(), 503);
        assert_eq!(verdict(&resp), "unavailable");
        assert!(resp.headers().contains_key("retry-after"));
    }
    up.assert_nothing().await;
    // A sync route follows `on_unavailable` (default "deliver"): forwarded unchecked.
    let (s, v) = send(&a.url("/hooks/fd"), &event("s2", "inc-1", t + 1)).await;
    assert_eq!((s, v.as_str()), (200, "forwarded"));
    assert_eq!(id_of(&up.next().await), "s2");
    up.assert_nothing().await;

    redis.restart();
    a.wait_ready(Duration::from_secs(10)).await;
    b.wait_ready(Duration::from_secs(10)).await;
    // Every key was lost: s1 is new again (the store cannot remember what it lost).
    assert_eq!(
        send(&b.url("/hooks/fd"), &event("s2", "inc-1", t + 1))
            .await
            .1,
        "forwarded"
    );
    assert_eq!(
        send(&a.url("/hooks/fd"), &event("s2", "inc-1", t + 1))
            .await
            .1,
        "duplicate"
    );
    assert_eq!(
        send(&a.url("/hooks/async"), &event("a2", "inc-9", t + 1))
            .await
            .0,
        202
    );
    let mut ids = vec![
        id_of(&up.next().await),
        id_of(
            &up.next_within(Duration::from_secs(20))
                .await
                .expect("the async event is delivered after the restart"),
        ),
    ];
    ids.sort();
    assert_eq!(ids, ["a2", "s2"]);
}

/// The route's consumer group destroyed under a running replica (what a Redis that lost
/// the group's key, or an operator, does): the worker's next read meets `NOGROUP`,
/// creates the group again, backs off, and delivers what is pending and what comes next,
/// without restarting and without a tight retry loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_consumer_group_is_created_again_with_backoff() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    let routes = ASYNC_ROUTE.replace("UPSTREAM", &up.url("/in"));
    let a = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    let url = a.url("/hooks/async");
    assert_eq!(send(&url, &event("g0", "inc-1", t)).await.0, 202);
    assert_eq!(id_of(&up.next().await), "g0");
    let stream = "hookgate:{async}:outbox";
    assert_eq!(
        redis.command(&format!("XGROUP DESTROY {stream} delivery")),
        ":1\r\n"
    );
    redis.command("CONFIG RESETSTAT");
    for i in 1..4 {
        let (s, _) = send(&url, &event(&format!("g{i}"), "inc-1", t + i)).await;
        assert_eq!(s, 202);
    }
    let mut ids = Vec::new();
    for _ in 1..4 {
        let got = up
            .next_within(Duration::from_secs(10))
            .await
            .unwrap_or_else(|| panic!("not delivered after the group was lost: {ids:?}"));
        ids.push(id_of(&got));
    }
    assert_eq!(ids, ["g1", "g2", "g3"]);
    up.assert_nothing().await;
    assert!(
        redis
            .command(&format!("XINFO GROUPS {stream}"))
            .contains("delivery"),
        "the group exists again"
    );
    // Created once, not in a loop: a few XGROUP calls at most since the reset.
    let stats = redis.command("INFO commandstats");
    let xgroup_calls: u64 = stats
        .lines()
        .find_map(|l| l.strip_prefix("cmdstat_xgroup:calls="))
        .and_then(|l| l.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        xgroup_calls <= 3,
        "XGROUP called {xgroup_calls} times: {stats}"
    );
}

/// The dead-letter CLI works on Redis directly (no admin listener configured): it lists
/// a dead letter while the replicas run, and a replay is delivered by them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_cli_works_on_redis() {
    let redis = RedisServer::start();
    let up = Upstream::start().await;
    up.set_status(500);
    let routes = ASYNC_ROUTE
        .replace("UPSTREAM", &up.url("/in"))
        .replace("max_attempts = 50", "max_attempts = 1");
    let a = Replica::start(&redis.url(), &routes).await;
    let t = 1_712_000_000_000i64;
    assert_eq!(
        send(&a.url("/hooks/async"), &event("d1", "inc-1", t))
            .await
            .0,
        202
    );
    assert_eq!(id_of(&up.next().await), "d1");
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(BIN)
            .args(args)
            .args(["--config", a.config.to_str().expect("utf8")])
            .output()
            .expect("run hookgate");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    };
    // The dead-lettering is written just after the failed attempt: poll for it.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (code, out) = cli(&["dead-letters", "list"]);
        assert_eq!(code, 0, "{out}");
        if out.contains("\"d1\"") {
            break;
        }
        assert!(Instant::now() < deadline, "{out}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (code, out) = cli(&["outbox"]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("\"dead_letters\":1"), "{out}");
    up.set_status(200);
    let (code, out) = cli(&["dead-letters", "replay", "--id", "d1"]);
    assert_eq!((code, out.trim()), (0, r#"{"replayed":1}"#));
    let got = up
        .next_within(Duration::from_secs(10))
        .await
        .expect("replayed");
    assert_eq!(id_of(&got), "d1");
}

/// `hookgate check` and `hookgate serve` say which of url / password / host is wrong,
/// never showing the password.
#[test]
fn check_and_start_up_say_what_is_wrong_with_redis() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let dir = tempfile::tempdir().expect("tmp");
    let run = |cmd: &str, url: &str| {
        let file = dir.path().join("hookgate.toml");
        let port = free_port();
        std::fs::write(
            &file,
            format!("[server]\nlisten = \"127.0.0.1:{port}\"\n[store]\nbackend = \"redis\"\nurl = \"{url}\"\nconnect_timeout = \"500ms\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\n"),
        )
        .expect("config");
        let out = std::process::Command::new(BIN)
            .args([cmd, "--config", file.to_str().expect("utf8")])
            .env("RUST_LOG", "off")
            .output()
            .expect("run hookgate");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let port = redis.port();
    for cmd in ["check", "serve"] {
        let (code, out) = run(cmd, &format!("redis://:wrong-pw@127.0.0.1:{port}/0"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("wrong user or password"), "{out}");
        assert!(!out.contains("wrong-pw"), "password shown: {out}");
        let (code, out) = run(cmd, "redis://127.0.0.1:1/0");
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("unreachable"), "{out}");
        let (code, out) = run(cmd, "http://127.0.0.1:6379");
        assert_eq!(code, 1, "{out}");
        assert!(
            out.contains("store.url") && out.contains("not a Redis URL"),
            "{out}"
        );
        // rediss:// is accepted; a server that does not speak TLS fails the handshake.
        let (code, out) = run(cmd, &format!("rediss://:s3cret@127.0.0.1:{port}/0"));
        assert_eq!(code, 1, "{out}");
        assert!(out.contains("rediss://") && out.contains("TLS"), "{out}");
    }
    let (code, out) = run("check", &format!("redis://:s3cret@127.0.0.1:{port}/0"));
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("store redis at redis://:***@127.0.0.1"),
        "{out}"
    );
}

/// `rediss://` end to end through the real binary: `hookgate check` against a
/// `redis-server` serving TLS only, its certificate signed by a test CA named by
/// `tls_ca` (relative to the config file); another CA is refused, saying why.
#[test]
fn check_connects_over_tls_with_tls_ca() {
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
    let dir = tempfile::tempdir().expect("tmp");
    let make_ca = |name: &str| {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("ca params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        CertifiedIssuer::self_signed(params, KeyPair::generate().expect("key")).expect("ca")
    };
    let ca = make_ca("redis test CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("leaf");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let cert_file = write("server.pem", &cert.pem());
    let key_file = write("server.key", &key.serialize_pem());
    let ca_file = write("ca.pem", &ca.pem());
    write("other-ca.pem", &make_ca("another CA").pem());
    let port = free_port();
    let mut server = std::process::Command::new("redis-server")
        .args(["--port", "0", "--tls-port", &port.to_string()])
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .args(["--tls-cert-file", &cert_file, "--tls-key-file", &key_file])
        .args(["--tls-ca-cert-file", &ca_file, "--tls-auth-clients", "no"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("redis-server from PATH (.ci/run installs it)");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "redis-server with TLS did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let check = |tls_ca: &str| {
        let file = dir.path().join("hookgate.toml");
        std::fs::write(
            &file,
            format!("[store]\nbackend = \"redis\"\nurl = \"rediss://127.0.0.1:{port}\"\ntls_ca = \"{tls_ca}\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\n"),
        )
        .expect("config");
        let out = std::process::Command::new(BIN)
            .args(["check", "--config", file.to_str().expect("utf8")])
            .env("RUST_LOG", "off")
            .output()
            .expect("run hookgate");
        (
            out.status.code().unwrap_or(-1),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let ok = check("ca.pem");
    let wrong = check("other-ca.pem");
    let missing = check("missing.pem");
    let _ = server.kill();
    let _ = server.wait();
    assert_eq!(ok.0, 0, "{}", ok.1);
    assert!(
        ok.1.contains("store redis at rediss://127.0.0.1"),
        "{}",
        ok.1
    );
    assert_eq!(wrong.0, 1, "{}", wrong.1);
    assert!(
        wrong.1.contains("TLS handshake refused") && wrong.1.contains("store.tls_ca"),
        "{}",
        wrong.1
    );
    assert_eq!(missing.0, 1, "{}", missing.1);
    assert!(missing.1.contains("store.tls_ca"), "{}", missing.1);
}
