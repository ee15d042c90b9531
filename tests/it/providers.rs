//! Every signing preset through the real gateway: a request signed as its sender signs it
//! (the official vector from FACTS.md §6 where its inputs allow, otherwise signed here with
//! the test's own HMAC, independent of the gateway's engine) is forwarded byte for byte
//! with the credential headers stripped; the same request with a changed body is 401.

use crate::support::sign::{hex, hmac_sha256, now};
use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

/// One signed request for one preset.
struct Fixture {
    preset: &'static str,
    /// Extra keys of the `[[route]]` table (auth, public_url, preset...).
    route: String,
    /// Path and query the sender posts to.
    target: &'static str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// The credential header the gateway must strip.
    credential: &'static str,
}

const SQUARE_BODY: &[u8] = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;

fn rfc3339(secs: u64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(i64::try_from(secs).expect("secs"))
        .expect("time");
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.123456789Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn fixtures() -> Vec<Fixture> {
    let t = now();
    let ts = t.to_string();
    let zoom_body = br#"{"event":"meeting.started","event_ts":1658940994000}"#.to_vec();
    let zoom_sig = hex(&hmac_sha256(
        b"secret_token_123",
        &[b"v0:", ts.as_bytes(), b":", &zoom_body],
    ));
    let twitch_body = br#"{"subscription":{"type":"channel.follow"}}"#.to_vec();
    let twitch_ts = rfc3339(t);
    let twitch_id = "e76c6bd4-55c9-4987-8304-da1588d8988b";
    let twitch_sig = hex(&hmac_sha256(
        b"s3cRe7s3cRe7",
        &[twitch_id.as_bytes(), twitch_ts.as_bytes(), &twitch_body],
    ));
    let grafana_body = br#"{"status":"firing","alerts":[]}"#.to_vec();
    let grafana_sig = hex(&hmac_sha256(
        b"secret",
        &[ts.as_bytes(), b":", &grafana_body],
    ));
    vec![
        // FACTS.md §6.6 [computed] vector.
        Fixture {
            preset: "shopify",
            route: r#"auth = { type = "shopify", secrets = ["hush"] }"#.into(),
            target: "/hooks/p",
            headers: h(&[(
                "X-Shopify-Hmac-SHA256",
                "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=",
            )]),
            body: br#"{"id":1}"#.to_vec(),
            credential: "x-shopify-hmac-sha256",
        },
        // FACTS.md §6.7 [official] JSON variant: the signed URL carries bodySHA256.
        Fixture {
            preset: "twilio",
            route: r#"auth = { type = "twilio", secrets = ["12345"] }
public_url = "https://mycompany.com/myapp.php""#
                .into(),
            target: "/hooks/p?foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620",
            headers: h(&[("X-Twilio-Signature", "a9nBmqA0ju/hNViExpshrM61xv4=")]),
            body: br#"{"property": "value", "boolean": true}"#.to_vec(),
            credential: "x-twilio-signature",
        },
        // FACTS.md §6.8: the token itself.
        Fixture {
            preset: "gitlab",
            route: r#"auth = { type = "gitlab", secrets = ["glpat-hook-token"] }"#.into(),
            target: "/hooks/p",
            headers: h(&[("X-Gitlab-Token", "glpat-hook-token")]),
            body: br#"{"object_kind":"push"}"#.to_vec(),
            credential: "x-gitlab-token",
        },
        // FACTS.md §6.9 scheme, signed now (the vector's timestamp is long past).
        Fixture {
            preset: "zoom",
            route: r#"auth = { type = "zoom", secrets = ["secret_token_123"] }"#.into(),
            target: "/hooks/p",
            headers: vec![
                ("x-zm-request-timestamp".into(), ts.clone()),
                ("x-zm-signature".into(), format!("v0={zoom_sig}")),
            ],
            body: zoom_body,
            credential: "x-zm-signature",
        },
        // FACTS.md §6.10 scheme, signed now with an RFC 3339 timestamp.
        Fixture {
            preset: "twitch",
            route: r#"auth = { type = "twitch", secrets = ["s3cRe7s3cRe7"] }"#.into(),
            target: "/hooks/p",
            headers: vec![
                ("Twitch-Eventsub-Message-Id".into(), twitch_id.into()),
                ("Twitch-Eventsub-Message-Timestamp".into(), twitch_ts),
                (
                    "Twitch-Eventsub-Message-Signature".into(),
                    format!("sha256={twitch_sig}"),
                ),
            ],
            body: twitch_body,
            credential: "twitch-eventsub-message-signature",
        },
        // FACTS.md §6.11 [official] vector.
        Fixture {
            preset: "square",
            route: r#"auth = { type = "square", secrets = ["Ibxx_5AKakO-3qeNVR61Dw"] }
public_url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9""#
                .into(),
            target: "/hooks/p",
            headers: h(&[(
                "x-square-hmacsha256-signature",
                "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
            )]),
            body: SQUARE_BODY.to_vec(),
            credential: "x-square-hmacsha256-signature",
        },
        // FACTS.md §6.12 [official] vector, second in a rotated comma list.
        Fixture {
            preset: "pagerduty",
            route: r#"auth = { type = "pagerduty", secrets = ["lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"] }"#.into(),
            target: "/hooks/p",
            headers: h(&[(
                "X-PagerDuty-Signature",
                "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5,v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd",
            )]),
            body: include_bytes!("../vectors/pagerduty-v3-body.json").to_vec(),
            credential: "x-pagerduty-signature",
        },
        // FACTS.md §6.14 scheme with the route naming the timestamp header.
        Fixture {
            preset: "grafana",
            route: r#"auth = { type = "grafana", secrets = ["secret"], timestamp_header = "X-Grafana-Alerting-Timestamp" }"#.into(),
            target: "/hooks/p",
            headers: vec![
                ("X-Grafana-Alerting-Timestamp".into(), ts.clone()),
                ("X-Grafana-Alerting-Signature".into(), grafana_sig),
            ],
            body: grafana_body,
            credential: "x-grafana-alerting-signature",
        },
    ]
}

async fn gateway(route: &str, up: &Upstream) -> Gateway {
    Gateway::start(&format!(
        "[store]\nbackend = \"memory\"\n[[route]]\nname = \"p\"\npath = \"/hooks/p\"\nupstream = \"{}\"\n{route}\n",
        up.url("/in"),
    ))
    .await
}

async fn post(
    gw: &Gateway,
    target: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> reqwest::Response {
    let mut req = client().post(gw.url(target)).body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    req.send().await.expect("send")
}

#[tokio::test]
async fn every_signing_preset_verifies_through_the_gateway() {
    let up = Upstream::start().await;
    for f in fixtures() {
        let gw = gateway(&f.route, &up).await;
        let r = post(&gw, f.target, &f.headers, &f.body).await;
        assert_eq!(r.status(), 200, "{}", f.preset);
        assert_eq!(verdict(&r), "forwarded", "{}", f.preset);
        let got = up.next().await;
        assert_eq!(&got.body[..], &f.body[..], "{}", f.preset);
        assert!(
            got.headers.get(f.credential).is_none(),
            "{}: credential forwarded",
            f.preset
        );
        // The same credentials over another body (GitLab's token signs nothing: a wrong
        // token instead).
        if f.preset == "gitlab" {
            let wrong = h(&[("X-Gitlab-Token", "glpat-hook-tokem")]);
            let r = post(&gw, f.target, &wrong, &f.body).await;
            assert_eq!(r.status(), 401, "gitlab wrong token");
            continue;
        }
        let mut tampered = f.body.clone();
        tampered.push(b' ');
        let r = post(&gw, f.target, &f.headers, &tampered).await;
        assert_eq!(r.status(), 401, "{} tampered", f.preset);
        assert_eq!(verdict(&r), "unauthorized", "{} tampered", f.preset);
        // No credentials at all.
        let r = post(&gw, f.target, &[], &f.body).await;
        assert_eq!(r.status(), 401, "{} unsigned", f.preset);
        up.assert_nothing().await;
    }
}

#[tokio::test]
async fn preset_fills_the_dedup_key_of_a_signing_sender() {
    // `preset = "square"` fills dedup_key = "/event_id" (FACTS.md §6.11).
    let up = Upstream::start().await;
    let gw = gateway(
        r#"preset = "square"
auth = { type = "square", secrets = ["Ibxx_5AKakO-3qeNVR61Dw"] }
public_url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9""#,
        &up,
    )
    .await;
    let headers = h(&[(
        "x-square-hmacsha256-signature",
        "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
    )]);
    let r = post(&gw, "/hooks/p", &headers, SQUARE_BODY).await;
    assert_eq!(verdict(&r), "forwarded");
    up.next().await;
    let r = post(&gw, "/hooks/p", &headers, SQUARE_BODY).await;
    assert_eq!(r.status(), 200);
    assert_eq!(verdict(&r), "duplicate");
    up.assert_nothing().await;
}

#[tokio::test]
async fn twilio_form_posts_verify_but_are_not_json() {
    // FACTS.md §6.7 [official] form vector: the signature verifies (so the answer is not
    // 401), then the gateway refuses the form body as invalid JSON; it carries JSON only.
    let up = Upstream::start().await;
    let gw = gateway(
        r#"auth = { type = "twilio", secrets = ["12345"] }
public_url = "https://mycompany.com/myapp.php""#,
        &up,
    )
    .await;
    let body = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";
    let good = h(&[("X-Twilio-Signature", "RSOYDt4T1cUTdK1PDd93/VVr8B8=")]);
    let r = post(&gw, "/hooks/p?foo=1&bar=2", &good, body).await;
    assert_eq!(verdict(&r), "invalid_json");
    let r = post(&gw, "/hooks/p?foo=1&bar=3", &good, body).await;
    assert_eq!(verdict(&r), "unauthorized");
    up.assert_nothing().await;
}

#[tokio::test]
async fn url_signing_scheme_without_public_url_is_a_config_error() {
    let e = hookgate::config::from_str(
        "[[route]]\nname = \"p\"\npath = \"/p\"\nupstream = \"http://127.0.0.1:1/\"\nauth = { type = \"square\", secrets = [\"k\"] }\n",
        "t",
    )
    .expect_err("needs public_url");
    let e = e.to_string();
    assert!(e.contains("route[0].public_url"), "{e}");
    let e = hookgate::config::from_str(
        "[[route]]\nname = \"p\"\npath = \"/p\"\nupstream = \"http://127.0.0.1:1/\"\nauth = { type = \"shopfy\", secrets = [\"k\"] }\n",
        "t",
    )
    .expect_err("unknown type");
    let e = e.to_string();
    assert!(
        e.contains("route[0].auth.type") && e.contains("shopify"),
        "{e}"
    );
}

// === the real binary: `presets` and `sign` ===

const BIN: &str = env!("CARGO_BIN_EXE_hookgate");

fn run(args: &[&str]) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .output()
        .expect("run hookgate")
}

#[test]
fn presets_lists_and_shows_and_refuses_unknown_names() {
    let out = run(&["presets"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(names.len() >= 15, "{text}");
    for name in [
        "standard-webhooks",
        "svix",
        "github",
        "stripe",
        "slack",
        "shopify",
        "twilio",
        "gitlab",
        "zoom",
        "twitch",
        "square",
        "pagerduty",
        "grafana",
        "datadog",
        "alertmanager",
        "flashduty-incident",
        "wallarm",
        "apono-request",
        "firefly",
        "nops",
    ] {
        assert!(names.contains(&name), "{name} missing from\n{text}");
    }
    let out = run(&["presets", "show", "flashduty-incident"]);
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("dedup_key=/event_id"), "{text}");
    assert!(text.contains("address:     47.94.95.118"), "{text}");
    let out = run(&["presets", "show", "square"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("public_url"), "{text}");
    assert!(text.contains("square-python-sdk"), "{text}");
    let out = run(&["presets", "show", "nope"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("shopify"));
}

#[test]
fn sign_refuses_unknown_presets_unreadable_files_and_unsigned_senders() {
    let dir = tempfile::tempdir().expect("tmp");
    let body = dir.path().join("body.json");
    std::fs::write(&body, b"{}").expect("write");
    let body = body.to_str().expect("utf-8 path");
    let out = run(&["sign", "--preset", "nope", "--secret", "s", body]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&[
        "sign",
        "--preset",
        "github",
        "--secret",
        "s",
        "/nonexistent/body.json",
    ]);
    assert_eq!(out.status.code(), Some(2));
    let out = run(&["sign", "--preset", "wallarm", "--secret", "s", body]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no signature scheme"));
    let out = run(&["sign", "--preset", "square", "--secret", "s", body]);
    assert_eq!(out.status.code(), Some(2), "square needs --url");
    // The GitHub docs vector (FACTS.md §6.3), printed as GitHub sends it.
    let hello = dir.path().join("hello.txt");
    std::fs::write(&hello, b"Hello, World!").expect("write");
    let out = run(&[
        "sign",
        "--preset",
        "github",
        "--secret",
        "It's a Secret to Everybody",
        hello.to_str().expect("utf-8 path"),
    ]);
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "x-hub-signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17\n"
    );
}

#[tokio::test]
async fn sign_output_verifies_through_the_gateway_for_every_signing_preset() {
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("body.json");
    let body = br#"{"id":"evt_1","event_id":"e-1","type":"test"}"#;
    std::fs::write(&file, body).expect("write");
    let file = file.to_str().expect("utf-8 path").to_owned();
    let public_url = "https://hooks.example.com/hooks/p";
    let up = Upstream::start().await;
    let presets = hookgate::providers::presets().expect("presets");
    let mut signed = 0;
    for (name, p) in presets {
        if p.scheme.is_none() {
            continue;
        }
        let whsec = name == "standard-webhooks" || name == "svix";
        let secret = if whsec {
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
        } else {
            "a-sender-secret"
        };
        let out = run(&[
            "sign", "--preset", name, "--secret", secret, "--url", public_url, &file,
        ]);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let mut target = "/hooks/p".to_owned();
        let mut headers = Vec::new();
        for line in text.lines() {
            if let Some(url) = line.strip_prefix("# POST ") {
                if let Some((_, query)) = url.split_once('?') {
                    target = format!("/hooks/p?{query}");
                }
            } else if let Some((k, v)) = line.split_once(": ") {
                headers.push((k.to_owned(), v.to_owned()));
            }
        }
        assert!(!headers.is_empty(), "{name}: {text}");
        let route = |secret: &str| {
            format!(
                "auth = {{ type = \"{name}\", secrets = [\"{secret}\"] }}\npublic_url = \"{public_url}\""
            )
        };
        let gw = gateway(&route(secret), &up).await;
        let r = post(&gw, &target, &headers, body).await;
        assert_eq!(r.status(), 200, "{name}: {text}");
        assert_eq!(verdict(&r), "forwarded", "{name}");
        assert_eq!(&up.next().await.body[..], &body[..], "{name}");
        // The same headers at a route holding another secret: refused.
        let other = if whsec {
            "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"
        } else {
            "another-secret"
        };
        let gw_other = gateway(&route(other), &up).await;
        let r = post(&gw_other, &target, &headers, body).await;
        assert_eq!(r.status(), 401, "{name}");
        up.assert_nothing().await;
        signed += 1;
    }
    assert!(signed >= 12);
}

#[tokio::test]
async fn a_presets_scheme_is_the_auth_type_when_type_is_left_out() {
    // `preset = "github"` + `auth = { secrets = [...] }`: verified as GitHub signs
    // (FACTS.md §6.3 docs vector), and the preset's dedup key is filled too.
    let up = Upstream::start().await;
    let gw = gateway(
        "preset = \"github\"\nauth = { secrets = [\"It's a Secret to Everybody\"] }",
        &up,
    )
    .await;
    let signed = h(&[
        (
            "X-Hub-Signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        ),
        ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
    ]);
    // GitHub's docs vector body is not JSON: the signature passes, then JSON refuses it.
    let r = post(&gw, "/hooks/p", &signed, b"Hello, World!").await;
    assert_eq!(verdict(&r), "invalid_json");
    let r = post(&gw, "/hooks/p", &h(&[("X-GitHub-Delivery", "x")]), b"{}").await;
    assert_eq!(verdict(&r), "unauthorized");
    up.assert_nothing().await;
    // Without a signing preset, a type-less auth is a config error naming the key.
    let e = hookgate::config::from_str(
        "[[route]]\nname = \"p\"\npath = \"/p\"\nupstream = \"http://127.0.0.1:1/\"\npreset = \"wallarm\"\nauth = { secrets = [\"k\"] }\n",
        "t",
    )
    .expect_err("no scheme to take")
    .to_string();
    assert!(e.contains("route[0].auth.type"), "{e}");
}
