//! Provider endpoint handshakes (DESIGN.md §4, verdict `handshake`): verified like any
//! signed request, answered by the gateway as the provider expects, never forwarded.

use crate::support::sign::{hex, hmac_sha256, now};
use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

fn config(upstream: &str, auth: &str) -> String {
    format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "sender"
path = "/hooks/sender"
upstream = "{upstream}"
auth = {auth}
"#
    )
}

async fn post(gw: &Gateway, headers: &[(String, String)], body: &[u8]) -> reqwest::Response {
    let mut req = client()
        .post(gw.url("/hooks/sender"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (k, v) in headers {
        req = req.header(k, v);
    }
    req.send().await.expect("send")
}

fn zoom_headers(secret: &[u8], body: &[u8]) -> Vec<(String, String)> {
    let ts = now().to_string();
    let sig = hex(&hmac_sha256(secret, &[b"v0:", ts.as_bytes(), b":", body]));
    vec![
        ("x-zm-request-timestamp".into(), ts),
        ("x-zm-signature".into(), format!("v0={sig}")),
    ]
}

/// FACTS.md §6.9: the answer is `plainToken` and its HMAC under the secret that signed
/// the request (the second of two during a rotation), [computed] vector.
#[tokio::test]
async fn zoom_url_validation_is_answered_with_the_encrypted_token() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#"{ type = "zoom", secrets = ["an_older_secret", "secret_token_123"] }"#,
    ))
    .await;
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let r = post(&gw, &zoom_headers(b"secret_token_123", body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "handshake".into())
    );
    assert_eq!(r.headers()["content-type"], "application/json");
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        v["encryptedToken"],
        "607ad4942d1053ec9e39d4713e5b9ce1e0179b62a7ea81406e7ab515c0423e40"
    );
    // Signed with a secret the route does not know: refused, not answered.
    let r = post(&gw, &zoom_headers(b"not_the_secret", body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (401, "unauthorized".into())
    );
    // A validation without a plainToken is refused, naming where it was expected.
    let body = br#"{"payload":{},"event":"endpoint.url_validation"}"#;
    let r = post(&gw, &zoom_headers(b"secret_token_123", body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (422, "invalid_schema".into())
    );
    let v: serde_json::Value = r.json().await.expect("json");
    assert_eq!(v["detail"][0]["instance_path"], "/payload/plainToken");
    // An ordinary event still goes through.
    let body = br#"{"event":"meeting.started","event_ts":1658940994000}"#;
    let r = post(&gw, &zoom_headers(b"an_older_secret", body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    let got = up.next().await;
    assert_eq!(&got.body[..], body);
    up.assert_nothing().await;
}

fn twitch_headers(secret: &[u8], kind: &str, body: &[u8]) -> Vec<(String, String)> {
    let id = "e76c6bd4-55c9-4987-8304-da1588d8988b";
    let t = time::OffsetDateTime::now_utc();
    let ts = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.634234626Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let sig = hex(&hmac_sha256(secret, &[id.as_bytes(), ts.as_bytes(), body]));
    vec![
        ("Twitch-Eventsub-Message-Id".into(), id.into()),
        ("Twitch-Eventsub-Message-Timestamp".into(), ts),
        ("Twitch-Eventsub-Message-Type".into(), kind.into()),
        (
            "Twitch-Eventsub-Message-Signature".into(),
            format!("sha256={sig}"),
        ),
    ]
}

/// FACTS.md §6.10: the challenge is answered 200 as text/plain, after the signature.
#[tokio::test]
async fn twitch_challenge_is_echoed_after_the_signature() {
    let up = Upstream::start().await;
    let gw = Gateway::start(&config(
        &up.url("/in"),
        r#"{ type = "twitch", secrets = ["s3cRe7s3cRe7"] }"#,
    ))
    .await;
    let body = br#"{"challenge":"pogchamp-kappa-360noscope-vohiyo","subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","status":"webhook_callback_verification_pending","type":"channel.follow","version":"1"}}"#;
    let hs = twitch_headers(b"s3cRe7s3cRe7", "webhook_callback_verification", body);
    let r = post(&gw, &hs, body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "handshake".into())
    );
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain")
    );
    assert_eq!(
        r.text().await.expect("text"),
        "pogchamp-kappa-360noscope-vohiyo"
    );
    let bad = twitch_headers(b"wrong-secret-value", "webhook_callback_verification", body);
    let r = post(&gw, &bad, body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (401, "unauthorized".into())
    );
    // The same body as a notification is an event: forwarded.
    let hs = twitch_headers(b"s3cRe7s3cRe7", "notification", body);
    let r = post(&gw, &hs, body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(&up.next().await.body[..], body);
    up.assert_nothing().await;
}

fn slack_headers(secret: &[u8], body: &[u8]) -> Vec<(String, String)> {
    let ts = now().to_string();
    let sig = hex(&hmac_sha256(secret, &[b"v0:", ts.as_bytes(), b":", body]));
    vec![
        ("X-Slack-Request-Timestamp".into(), ts),
        ("X-Slack-Signature".into(), format!("v0={sig}")),
    ]
}

/// FACTS.md §6.5: `url_verification` echoes the challenge, after the signature.
#[tokio::test]
async fn slack_url_verification_is_echoed_after_the_signature() {
    let up = Upstream::start().await;
    let secret = "8f742231b10e8888abcd99yyyzzz85a5";
    let gw = Gateway::start(&config(
        &up.url("/in"),
        &format!(r#"{{ type = "slack", secrets = ["{secret}"] }}"#),
    ))
    .await;
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let r = post(&gw, &slack_headers(secret.as_bytes(), body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "handshake".into())
    );
    assert_eq!(
        r.text().await.expect("text"),
        "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"
    );
    let r = post(&gw, &slack_headers(b"another-secret", body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (401, "unauthorized".into())
    );
    // An event callback is forwarded.
    let body = br#"{"type":"event_callback","event":{"type":"app_mention"}}"#;
    let r = post(&gw, &slack_headers(secret.as_bytes(), body), body).await;
    assert_eq!(
        (r.status().as_u16(), verdict(&r)),
        (200, "forwarded".into())
    );
    assert_eq!(&up.next().await.body[..], body);
    up.assert_nothing().await;
}
