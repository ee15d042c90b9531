//! Config parsing and compilation: every refusal names its key.

use super::*;

fn err(text: &str) -> String {
    match from_str(text, "test.toml") {
        Ok(_) => panic!("config was accepted:\n{text}"),
        Err(e) => e.to_string(),
    }
}

const ROUTE: &str = r#"
[[route]]
name = "r"
path = "/hooks/r"
upstream = "http://127.0.0.1:9/x"
"#;

#[test]
fn builtin_default_compiles() {
    let s = from_str(DEFAULT_CONFIG, "default").expect("default config");
    assert!(!s.routes.is_empty());
    assert_eq!(s.server.listen.to_string(), "127.0.0.1:8080");
}

#[test]
fn unknown_keys_are_named() {
    let e = err("[server]\nlisten_addr = \"1.2.3.4:1\"\n");
    assert!(e.contains("listen_addr"), "{e}");
    let e = err(&format!("{ROUTE}colour = \"red\"\n"));
    assert!(e.contains("colour"), "{e}");
    let e = err(&format!(
        "{ROUTE}auth = {{ type = \"bearer\", tokens = [\"a\"], extra = 1 }}\n"
    ));
    assert!(e.contains("extra"), "{e}");
}

#[test]
fn bad_values_are_named() {
    let e = err(&format!(
        "{ROUTE}allow_ips = [\"10.0.0.0/8\", \"10.0.0/33\"]\n"
    ));
    assert!(e.contains("route[0].allow_ips[1]"), "{e}");
    let e = err(&ROUTE.replace("http://127.0.0.1:9/x", "gopher://x"));
    assert!(e.contains("route[0].upstream"), "{e}");
    let e = err(&format!("{ROUTE}{ROUTE}"));
    assert!(e.contains("route[1].name"), "{e}");
    let e = err(&format!(
        "{ROUTE}{}",
        ROUTE.replace("name = \"r\"", "name = \"s\"")
    ));
    assert!(
        e.contains("route[1].path") && e.contains("duplicate"),
        "{e}"
    );
    let e = err(&format!("{ROUTE}upstream_timeout = \"soon\"\n"));
    assert!(e.contains("route[0].upstream_timeout"), "{e}");
    let e = err("[server]\ntrusted_proxies = [\"nope\"]\n");
    assert!(e.contains("server.trusted_proxies[0]"), "{e}");
    let e = err("[server]\nmax_json_depth = 100000\n");
    assert!(e.contains("server.max_json_depth"), "{e}");
    let e = err(&ROUTE.replace("/hooks/r", "/healthz"));
    assert!(e.contains("route[0].path") && e.contains("reserved"), "{e}");
}

#[test]
fn missing_secrets_are_named() {
    let e = err(&format!(
        "{ROUTE}auth = {{ type = \"bearer\", tokens = [\"env:HOOKGATE_TEST_NO_SUCH_VAR\"] }}\n"
    ));
    assert!(e.contains("route[0].auth.tokens[0]"), "{e}");
    assert!(e.contains("HOOKGATE_TEST_NO_SUCH_VAR"), "{e}");
    let e = err(&format!(
        "{ROUTE}auth = {{ type = \"header\", headers = {{ \"X-Token\" = [\"file:/no/such/hookgate/file\"] }} }}\n"
    ));
    assert!(e.contains("route[0].auth.headers.X-Token[0]"), "{e}");
}

#[test]
fn auth_types_compile() {
    for auth in [
        r#"{ type = "none" }"#,
        r#"{ type = "bearer", tokens = ["a", "b"] }"#,
        r#"{ type = "basic", users = { alice = "pw" } }"#,
        r#"{ type = "header", headers = { "X-A" = ["1"], "X-B" = ["2", "3"] } }"#,
    ] {
        from_str(&format!("{ROUTE}auth = {auth}\n"), "t").expect(auth);
    }
}

#[test]
fn default_config_has_one_route_per_preset_with_loopback_and_published_addresses() {
    let s = from_str(DEFAULT_CONFIG, "default").expect("default config");
    let presets = crate::providers::presets().expect("presets");
    // One route per payload preset (a bundled schema). Signing presets (github, stripe,
    // ...) have no route by default: they are only useful with secrets, which a built-in
    // config cannot have.
    let payload: Vec<_> = presets.iter().filter(|(_, p)| p.schema.is_some()).collect();
    assert_eq!(s.routes.len(), payload.len());
    for (name, preset) in payload {
        let route = s
            .routes
            .iter()
            .find(|r| r.path == format!("/hooks/{name}"))
            .unwrap_or_else(|| panic!("no default route for {name}"));
        assert!(route.schema.is_some(), "{name}");
        let allow = route.allow_ips.as_ref().expect("allowlist");
        let loopback = crate::pipeline::allowlist::ClientAddr("127.0.0.1".parse().expect("ip"));
        assert!(allow.permits(loopback), "{name}");
        let v6 = crate::pipeline::allowlist::ClientAddr("::1".parse().expect("ip"));
        assert!(allow.permits(v6), "{name}");
        for ip in preset.allow_ips.iter().flatten() {
            let net = crate::pipeline::allowlist::parse_net(ip).expect("net");
            let addr = crate::pipeline::allowlist::ClientAddr(net.addr());
            assert!(allow.permits(addr), "{name} default route misses {ip}");
        }
    }
}

#[test]
fn async_delivery_keys() {
    // The built-in default has an admin listener on loopback.
    let s = from_str(DEFAULT_CONFIG, "default").expect("default config");
    let admin = s.admin.as_ref().expect("admin");
    assert_eq!(admin.listen.to_string(), "127.0.0.1:9081");
    // A config without [admin] has none.
    assert!(from_str(ROUTE, "t").expect("ok").admin.is_none());
    // async is accepted, with the documented defaults.
    let s = from_str(&format!("{ROUTE}delivery = \"async\"\n"), "t").expect("async");
    let r = &s.routes[0];
    assert_eq!((r.concurrency, r.max_pending), (16, 100_000));
    assert_eq!(r.retry, crate::delivery::retry::RetryPolicy::default());
    // Async keys on a sync route are refused, naming the key.
    let e = err(&format!("{ROUTE}concurrency = 4\n"));
    assert!(e.contains("route[0].concurrency"), "{e}");
    let e = err(&format!(
        "{ROUTE}delivery = \"async\"\nretry = {{ max_attempts = 0 }}\n"
    ));
    assert!(e.contains("route[0].retry"), "{e}");
    // Memory store + async: warned (lost on restart).
    let s = from_str(
        &format!("[store]\nbackend = \"memory\"\n{ROUTE}delivery = \"async\"\n"),
        "t",
    )
    .expect("memory async");
    assert!(
        s.warnings().iter().any(|w| w.contains("LOST on restart")),
        "{:?}",
        s.warnings()
    );
}

/// A relative `file:` secret resolves against the config file's directory, not the
/// working directory (issue 16).
#[test]
fn relative_file_secrets_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(dir.path().join("secrets")).expect("mkdir");
    std::fs::write(dir.path().join("secrets/token"), "t0ken\n").expect("write");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        r#"
[store]
backend = "memory"
[[route]]
name = "r"
path = "/r"
upstream = "http://127.0.0.1:9/x"
auth = { type = "bearer", tokens = ["file:secrets/token"] }
"#,
    )
    .expect("write");
    // The working directory holds no `secrets/token`.
    assert!(!std::path::Path::new("secrets/token").exists());
    load(&ConfigSource::File(config)).expect("secret found beside the config file");
    // Without a file (no directory) the path is the working directory's, as before.
    let text = std::fs::read_to_string(dir.path().join("hookgate.toml")).expect("read");
    let err = from_str(&text, "inline").expect_err("no such file in the cwd");
    assert!(err.to_string().contains("secrets/token"), "{err}");
}

/// `allow_ips = "file:PATH"`: one CIDR per line, `#` comments, relative to the config
/// file; a bad line is an error naming the file and line.
#[test]
fn allow_ips_from_a_file_beside_the_config() {
    use crate::pipeline::allowlist::ClientAddr;
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("senders.txt"),
        "# senders\n203.0.113.0/24\n\n2001:db8::1   # one v6 sender\n",
    )
    .expect("write");
    let config = dir.path().join("hookgate.toml");
    std::fs::write(
        &config,
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/x\"\nallow_ips = \"file:senders.txt\"\n",
    )
    .expect("write");
    let settings = load(&ConfigSource::File(config.clone())).expect("config");
    let allow = settings.routes[0].allow_ips.as_ref().expect("allowlist");
    assert!(allow.permits(ClientAddr("203.0.113.9".parse().expect("ip"))));
    assert!(allow.permits(ClientAddr("2001:db8::1".parse().expect("ip"))));
    assert!(!allow.permits(ClientAddr("198.51.100.1".parse().expect("ip"))));
    std::fs::write(
        dir.path().join("senders.txt"),
        "203.0.113.0/24\nnot-an-ip\n",
    )
    .expect("write");
    let err = load(&ConfigSource::File(config)).expect_err("bad line");
    let text = err.to_string();
    assert!(
        text.contains("route[0].allow_ips") && text.contains("line 2"),
        "{text}"
    );
}

/// `idle_timeout` defaults to `read_timeout`; `max_requests_per_connection` defaults to
/// 1000 and 0 means no limit; a bad value names its key.
#[test]
fn connection_limits_default_and_zero_means_unlimited() {
    let s = from_str("[server]\nread_timeout = \"7s\"\n", "t").expect("config");
    assert_eq!(s.server.idle_timeout, std::time::Duration::from_secs(7));
    assert_eq!(s.server.max_requests_per_connection, Some(1000));
    let s = from_str(
        "[server]\nidle_timeout = \"500ms\"\nmax_requests_per_connection = 0\n",
        "t",
    )
    .expect("config");
    assert_eq!(s.server.idle_timeout, std::time::Duration::from_millis(500));
    assert_eq!(s.server.max_requests_per_connection, None);
    let e = err("[server]\nidle_timeout = \"0s\"\n");
    assert!(e.contains("server.idle_timeout"), "{e}");
    let e = err("[server]\nmax_requests_per_connection = -1\n");
    assert!(e.contains("max_requests_per_connection"), "{e}");
}

#[test]
fn sync_commits_defaults_to_fsync() {
    use crate::store::SyncCommits;
    let ok = |text: &str| from_str(text, "test.toml").expect("config");
    assert_eq!(ok(ROUTE).store.sync_commits, SyncCommits::Fsync);
    let s = ok(&format!("[store]\nsync_commits = \"deferred\"\n{ROUTE}"));
    assert_eq!(s.store.sync_commits, SyncCommits::Deferred);
    let s = ok(&format!("[store]\nsync_commits = \"fsync\"\n{ROUTE}"));
    assert_eq!(s.store.sync_commits, SyncCommits::Fsync);
    let e = err(&format!("[store]\nsync_commits = \"never\"\n{ROUTE}"));
    assert!(e.contains("sync_commits"), "{e}");
}

#[test]
fn order_ttl_defaults_to_dedup_ttl() {
    let ok = |text: &str| from_str(text, "test.toml").expect("config");
    let s = ok(&format!("[store]\ndedup_ttl = \"5h\"\n{ROUTE}"));
    assert_eq!(s.store.order_ttl, std::time::Duration::from_secs(5 * 3600));
    let s = ok(&format!(
        "[store]\ndedup_ttl = \"5h\"\norder_ttl = \"30d\"\n{ROUTE}"
    ));
    assert_eq!(
        s.store.order_ttl,
        std::time::Duration::from_secs(30 * 86400)
    );
    let s = ok(ROUTE);
    assert_eq!(s.store.order_ttl, s.store.dedup_ttl);
    let e = err(&format!("[store]\norder_ttl = \"soon\"\n{ROUTE}"));
    assert!(e.contains("store.order_ttl"), "{e}");
}

#[test]
#[allow(clippy::unwrap_used)] // test: a panic is the failure report
fn redis_store_keys() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("redis-url");
    std::fs::write(&file, "redis://app:s3cret@10.0.0.5:6380/2\n").unwrap();
    let s = from_str(
        &format!(
            "[store]\nbackend = \"redis\"\nurl = \"file:{}\"\npool_size = 8\nwait_replicas = 1\n{ROUTE}upstream_timeout = \"7s\"\n",
            file.display()
        ),
        "test.toml",
    )
    .unwrap();
    let r = s.store.redis.as_ref().unwrap();
    assert_eq!(r.url, "redis://app:s3cret@10.0.0.5:6380/2");
    assert_eq!(r.display_url(), "redis://app:***@10.0.0.5:6380/2");
    assert_eq!(
        s.store.url.as_deref(),
        Some("redis://app:***@10.0.0.5:6380/2")
    );
    assert!(
        !format!("{s:?}").contains("s3cret"),
        "the password is never in Debug"
    );
    assert_eq!((r.pool_size, r.wait_replicas), (8, 1));
    assert_eq!(r.lease, std::time::Duration::from_secs(19)); // 2 × 7 s + 5 s
    let e = err(&format!("[store]\nbackend = \"redis\"\n{ROUTE}"));
    assert!(e.contains("store.url") && e.contains("required"), "{e}");
    // rediss:// (TLS): system roots, or `tls_ca` relative to the config file.
    let s = from_str(
        &format!("[store]\nbackend = \"redis\"\nurl = \"rediss://h:6379\"\n{ROUTE}"),
        "test.toml",
    )
    .unwrap();
    assert!(s.store.redis.as_ref().unwrap().tls_ca.is_none());
    std::fs::write(
        dir.path().join("ca.pem"),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("not-pem.txt"), "hello").unwrap();
    let tls_config = |ca: &str, url: &str| {
        let config = dir.path().join("hookgate.toml");
        std::fs::write(
            &config,
            format!("[store]\nbackend = \"redis\"\nurl = \"{url}\"\ntls_ca = \"{ca}\"\n{ROUTE}"),
        )
        .unwrap();
        load(&ConfigSource::File(config))
    };
    let s = tls_config("ca.pem", "rediss://h:6379").unwrap();
    let pem = s.store.redis.as_ref().unwrap().tls_ca.as_deref().unwrap();
    assert!(pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    for (ca, url, says) in [
        ("missing.pem", "rediss://h:6379", "cannot read"),
        ("not-pem.txt", "rediss://h:6379", "no PEM certificate"),
        ("ca.pem", "redis://h:6379", "only for a rediss://"),
    ] {
        let e = tls_config(ca, url).unwrap_err().to_string();
        assert!(
            e.contains("store.tls_ca") && e.contains(says),
            "{ca} {url}: {e}"
        );
    }
    let e = err("[store]\nbackend = \"memory\"\ntls_ca = \"ca.pem\"\n");
    assert!(e.contains("store.tls_ca") && e.contains("only for"), "{e}");
    let e = err("[store]\nbackend = \"redis\"\nurl = \"redis://h\"\npool_size = 0\n");
    assert!(e.contains("store.pool_size"), "{e}");
    let e = err("[store]\npool_size = 2\n");
    assert!(
        e.contains("store.pool_size") && e.contains("only for"),
        "{e}"
    );
}
