//! 403 `forbidden_ip`: allowlists, trusted proxies, IPv6.

use std::time::{Duration, Instant};

use crate::support::{client, gateway::Gateway, raw_exchange, upstream::Upstream, verdict};

fn config(upstream: &str, allow: &str, trusted: &str) -> String {
    format!(
        r#"
[server]
trusted_proxies = [{trusted}]
[store]
backend = "memory"
[[route]]
name = "r"
path = "/hooks/r"
allow_ips = [{allow}]
upstream = "{upstream}"
"#
    )
}

#[tokio::test]
async fn address_outside_allowlist_is_403_and_not_forwarded() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#""10.0.0.0/8", "2001:db8::/32""#,
        "",
    ))
    .await;
    let r = client()
        .post(gw.url("/hooks/r"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    assert_eq!(verdict(&r), "forbidden_ip");
    up.assert_nothing().await;
    // Not even with a forged X-Forwarded-For: the peer is not a trusted proxy.
    let r = client()
        .post(gw.url("/hooks/r"))
        .header("x-forwarded-for", "10.1.2.3")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    up.assert_nothing().await;
}

#[tokio::test]
async fn forbidden_address_never_reads_the_body() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(&up.url("/in"), r#""10.0.0.0/8""#, "")).await;
    let started = Instant::now();
    let req = "POST /hooks/r HTTP/1.1\r\nhost: x\r\ncontent-length: 1000000\r\n\r\n";
    let answer = raw_exchange(gw.addr, req.as_bytes(), Duration::from_secs(3)).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(2));
}

#[tokio::test]
async fn trusted_proxy_forwarded_for_is_walked_right_to_left() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#""47.94.95.118""#,
        r#""127.0.0.1", "10.0.0.0/8""#,
    ))
    .await;
    // client, then an internal proxy; the gateway's peer (127.0.0.1) is trusted too.
    let r = client()
        .post(gw.url("/hooks/r"))
        .header("x-forwarded-for", "6.6.6.6, 47.94.95.118, 10.0.0.7")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200, "{:?}", r.text().await);
    let got = up.next().await;
    // The chain is extended with the peer, since the peer is trusted.
    assert_eq!(
        got.headers["x-forwarded-for"],
        "6.6.6.6, 47.94.95.118, 10.0.0.7, 127.0.0.1"
    );
    // The spoofed leftmost entry does not help an attacker behind a trusted proxy.
    let r = client()
        .post(gw.url("/hooks/r"))
        .header("x-forwarded-for", "47.94.95.118, 6.6.6.6")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    // Only the configured header (default X-Forwarded-For) is read: a `Forwarded` the
    // sender wrote leaves the request attributed to the proxy (127.0.0.1), not allowed.
    let r = client()
        .post(gw.url("/hooks/r"))
        .header("forwarded", "for=47.94.95.118;proto=https")
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
    up.assert_nothing().await;
}

#[tokio::test]
async fn ipv6_peer_is_matched() {
    let up = Upstream::start().await;
    let gw = Gateway::start_on("[::1]:0", &config(&up.url("/in"), r#""::1/128""#, "")).await;
    let r = client()
        .post(gw.url("/hooks/r"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "forwarded");
    assert_eq!(up.next().await.headers["x-forwarded-for"], "::1");

    let gw = Gateway::start_on("[::1]:0", &config(&up.url("/in"), r#""127.0.0.1""#, "")).await;
    let r = client()
        .post(gw.url("/hooks/r"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 403);
}

/// `allow_ips = "file:PATH"` is reread by a reload (what SIGHUP runs); a bad file refuses
/// the reload and the running list stays.
#[tokio::test]
async fn allow_ips_file_is_reread_on_reload_and_a_bad_file_keeps_the_old_list() {
    use hookgate::pipeline::allowlist::ClientAddr;
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("senders.txt");
    std::fs::write(&list, "203.0.113.1\n").expect("write");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/x\"\nallow_ips = \"file:senders.txt\"\n",
    )
    .expect("write");
    let source = hookgate::config::ConfigSource::File(config);
    let shared = hookgate::build(hookgate::config::load(&source).expect("config")).expect("build");
    let permits = |ip: &str| {
        let gw = shared.current();
        let route = gw.routes().next().expect("route");
        route
            .allow_ips
            .as_ref()
            .expect("allowlist")
            .permits(ClientAddr(ip.parse().expect("ip")))
    };
    assert!(permits("203.0.113.1") && !permits("203.0.113.2"));
    std::fs::write(&list, "203.0.113.2 # rotated\n").expect("write");
    hookgate::server::reload(&shared, &source);
    assert!(!permits("203.0.113.1") && permits("203.0.113.2"));
    std::fs::write(&list, "garbage\n").expect("write");
    hookgate::server::reload(&shared, &source);
    assert!(
        permits("203.0.113.2"),
        "a bad file replaced the running list"
    );
}

/// `allow_ips = "file:PATH"` is reread when the file changes, without SIGHUP: the new
/// list applies to the next requests; a bad file keeps the running list.
#[tokio::test]
async fn allow_ips_file_is_reread_on_change_and_a_bad_file_keeps_the_old_list() {
    let up = Upstream::start().await;
    let dir = tempfile::tempdir().expect("tmp");
    let list = dir.path().join("senders.txt");
    std::fs::write(&list, "203.0.113.1\n").expect("write");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        format!(
            "[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"{}\"\nallow_ips = \"file:senders.txt\"\n",
            up.url("/in")
        ),
    )
    .expect("write");
    let source = hookgate::config::ConfigSource::File(config);
    let shared = hookgate::build(hookgate::config::load(&source).expect("config")).expect("build");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(hookgate::run_reloadable(
        listener,
        source,
        shared,
        None,
        async {
            let _ = stopped.await;
        },
    ));
    let c = client();
    let url = format!("http://{addr}/r");
    let post = || async {
        let r = c.post(&url).body("{}").send().await.expect("send");
        (r.status().as_u16(), verdict(&r))
    };
    assert_eq!(post().await, (403, "forbidden_ip".to_owned()));
    // Let the watcher start before the rewrite.
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::fs::write(&list, "# rotated\n127.0.0.1\n").expect("write");
    let mut answer = post().await;
    for _ in 0..50 {
        if answer.0 != 403 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        answer = post().await;
    }
    assert_eq!(
        answer,
        (200, "forwarded".to_owned()),
        "the new list never applied"
    );
    std::fs::write(&list, "not-an-address\n").expect("write");
    // The bad file is refused after the settle delay; the running list keeps serving.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(post().await, (200, "forwarded".to_owned()));
    let _ = stop.send(());
    server.await.expect("join").expect("run");
}
