//! `auth = { type = "jwt" }`: OAuth client-credentials senders' bearer JWTs, verified
//! against a JWKS file whose keys the test generates.

use std::path::Path;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use jsonwebtoken::{Algorithm, EncodingKey, Header};

use crate::support::sign::now;
use crate::support::{client, gateway::Gateway, upstream::Upstream, verdict};

/// An Ed25519 key from a seed: its PKCS#8 DER (for signing) and its JWK.
fn ed25519(seed: u8, kid: &str) -> (EncodingKey, serde_json::Value) {
    let seed = [seed; 32];
    // RFC 8410 PKCS#8 wrapping of a 32-byte Ed25519 seed.
    let mut der = vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    der.extend_from_slice(&seed);
    let public = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let jwk = serde_json::json!({
        "kty": "OKP", "crv": "Ed25519", "use": "sig", "kid": kid, "x": B64URL.encode(public)
    });
    (EncodingKey::from_ed_der(&der), jwk)
}

/// A fresh P-256 key: its PKCS#8 DER (for signing) and its JWK.
fn p256(kid: &str) -> (EncodingKey, serde_json::Value) {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).expect("keygen");
    let point = pair.public_key_raw();
    let (x, y) = point[1..].split_at(32);
    let jwk = serde_json::json!({
        "kty": "EC", "crv": "P-256", "alg": "ES256", "kid": kid,
        "x": B64URL.encode(x), "y": B64URL.encode(y)
    });
    (EncodingKey::from_ec_der(&pair.serialize_der()), jwk)
}

fn write_jwks(path: &Path, keys: &[&serde_json::Value]) {
    let doc = serde_json::json!({ "keys": keys });
    // Written beside and renamed, as an operator's tooling would: never half a file.
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, doc.to_string()).expect("write jwks");
    std::fs::rename(&tmp, path).expect("rename jwks");
}

fn claims(aud: &str, exp_in: i64) -> serde_json::Value {
    let now = now() as i64;
    serde_json::json!({
        "iss": "https://idp.example.com/", "aud": aud, "sub": "apono-client",
        "iat": now, "exp": now + exp_in
    })
}

fn token(alg: Algorithm, kid: &str, key: &EncodingKey, claims: &serde_json::Value) -> String {
    let mut header = Header::new(alg);
    header.kid = Some(kid.to_owned());
    jsonwebtoken::encode(&header, claims, key).expect("sign")
}

struct Setup {
    gw: Gateway,
    up: Upstream,
    jwks: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

async fn setup(keys: &[&serde_json::Value]) -> Setup {
    let dir = tempfile::tempdir().expect("tmp");
    let jwks = dir.path().join("jwks.json");
    write_jwks(&jwks, keys);
    let up = Upstream::start().await;
    let gw = Gateway::start(&format!(
        r#"
[store]
backend = "memory"
[[route]]
name = "oauth"
path = "/hooks/oauth"
upstream = "{}"
auth = {{ type = "jwt", jwks = "file:{}", issuer = "https://idp.example.com/", audience = ["hookgate", "hooks.example.com"], leeway = "5s" }}
"#,
        up.url("/in"),
        jwks.display()
    ))
    .await;
    Setup {
        gw,
        up,
        jwks,
        _dir: dir,
    }
}

async fn post(s: &Setup, bearer: &str) -> reqwest::Response {
    client()
        .post(s.gw.url("/hooks/oauth"))
        .header("authorization", format!("Bearer {bearer}"))
        .header("content-type", "application/json")
        .body(r#"{"event_type":"AccessRequestCreated"}"#)
        .send()
        .await
        .expect("send")
}

async fn status(s: &Setup, bearer: &str) -> (u16, String) {
    let r = post(s, bearer).await;
    (r.status().as_u16(), verdict(&r))
}

#[tokio::test]
async fn valid_tokens_pass_and_bad_ones_are_401() {
    let (k1, jwk1) = ed25519(1, "k1");
    let (e1, jwke1) = p256("e1");
    let s = setup(&[&jwk1, &jwke1]).await;
    let ok = (200, "forwarded".to_owned());
    let refused = (401, "unauthorized".to_owned());

    // Valid: EdDSA and ES256, either audience; the token is not forwarded.
    assert_eq!(
        status(
            &s,
            &token(Algorithm::EdDSA, "k1", &k1, &claims("hookgate", 300))
        )
        .await,
        ok
    );
    let got = s.up.next().await;
    assert!(got.headers.get("authorization").is_none());
    let es = token(
        Algorithm::ES256,
        "e1",
        &e1,
        &claims("hooks.example.com", 300),
    );
    assert_eq!(status(&s, &es).await, ok);
    s.up.next().await;

    // Expired (beyond the 5 s leeway), wrong audience, wrong issuer.
    let expired = token(Algorithm::EdDSA, "k1", &k1, &claims("hookgate", -60));
    assert_eq!(status(&s, &expired).await, refused);
    let other_aud = token(Algorithm::EdDSA, "k1", &k1, &claims("another-api", 300));
    assert_eq!(status(&s, &other_aud).await, refused);
    let mut c = claims("hookgate", 300);
    c["iss"] = "https://evil.example.com/".into();
    assert_eq!(
        status(&s, &token(Algorithm::EdDSA, "k1", &k1, &c)).await,
        refused
    );
    let mut c = claims("hookgate", 300);
    c.as_object_mut().expect("object").remove("exp");
    assert_eq!(
        status(&s, &token(Algorithm::EdDSA, "k1", &k1, &c)).await,
        refused
    );

    // Wrong key: signed by a key the JWKS does not hold, under its kid and without one.
    let (stranger, _) = ed25519(9, "k1");
    let forged = token(Algorithm::EdDSA, "k1", &stranger, &claims("hookgate", 300));
    assert_eq!(status(&s, &forged).await, refused);
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = None;
    let forged = jsonwebtoken::encode(&header, &claims("hookgate", 300), &stranger).expect("sign");
    assert_eq!(status(&s, &forged).await, refused);

    // alg: none, unsigned.
    let payload = B64URL.encode(claims("hookgate", 300).to_string());
    let none = format!(
        "{}.{payload}.",
        B64URL.encode(r#"{"alg":"none","typ":"JWT"}"#)
    );
    assert_eq!(status(&s, &none).await, refused);

    // HMAC with the public key as the secret (algorithm confusion).
    let public = B64URL.decode(jwk1["x"].as_str().expect("x")).expect("b64");
    let confused = token(
        Algorithm::HS256,
        "k1",
        &EncodingKey::from_secret(&public).expect("hmac key"),
        &claims("hookgate", 300),
    );
    assert_eq!(status(&s, &confused).await, refused);

    // Not a JWT at all, and no Authorization header.
    assert_eq!(status(&s, "not-a-jwt").await, refused);
    let r = client()
        .post(s.gw.url("/hooks/oauth"))
        .body("{}")
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 401);
    s.up.assert_nothing().await;
}

/// The IdP rotates: the JWKS file gains a new key and drops the old one. The gateway
/// rereads it (it checks for a change at most once a second) without a restart.
#[tokio::test]
async fn key_rotation_in_the_jwks_file_is_picked_up() {
    let (k1, jwk1) = ed25519(1, "k1");
    let (k2, jwk2) = ed25519(2, "k2");
    let s = setup(&[&jwk1]).await;
    let old = token(Algorithm::EdDSA, "k1", &k1, &claims("hookgate", 300));
    let new = token(Algorithm::EdDSA, "k2", &k2, &claims("hookgate", 300));
    assert_eq!(status(&s, &old).await.0, 200);
    assert_eq!(status(&s, &new).await.0, 401);
    write_jwks(&s.jwks, &[&jwk2]);
    let mut accepted = false;
    for _ in 0..50 {
        if status(&s, &new).await.0 == 200 {
            accepted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(accepted, "the new key was not picked up within 5 s");
    assert_eq!(
        status(&s, &old).await.0,
        401,
        "the dropped key still verifies"
    );
    // A broken JWKS keeps the last good keys.
    std::fs::write(&s.jwks, "{ not json").expect("write");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(status(&s, &new).await.0, 200);
}

#[test]
fn jwt_config_is_checked_at_start_up() {
    let dir = tempfile::tempdir().expect("tmp");
    let jwks = dir.path().join("jwks.json");
    let (_, jwk) = ed25519(1, "k1");
    write_jwks(&jwks, &[&jwk]);
    let cfg = |auth: &str| {
        format!(
            "[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:9/\"\nauth = {auth}\n"
        )
    };
    let err = |auth: String| {
        hookgate::config::from_str(&cfg(&auth), "t")
            .expect_err("refused")
            .to_string()
    };
    let j = jwks.display();
    let e = err(format!(
        r#"{{ type = "jwt", jwks = "file:{j}", issuer = "i", audience = "a", algorithms = ["HS256"] }}"#
    ));
    assert!(e.contains("route[0].auth.algorithms[0]"), "{e}");
    let e = err(format!(
        r#"{{ type = "jwt", jwks = "file:{j}", issuer = "i" }}"#
    ));
    assert!(e.contains("route[0].auth.audience"), "{e}");
    let e =
        err(r#"{ type = "jwt", jwks = "http://idp/jwks", issuer = "i", audience = "a" }"#.into());
    assert!(e.contains("route[0].auth.jwks"), "{e}");
    let e = err(format!(
        r#"{{ type = "jwt", jwks = "file:{j}.missing", issuer = "i", audience = "a" }}"#
    ));
    assert!(
        e.contains("route[0].auth.jwks") && e.contains("cannot read"),
        "{e}"
    );
    let ok = cfg(&format!(
        r#"{{ type = "jwt", jwks = "file:{j}", issuer = "i", audience = "a" }}"#
    ));
    assert!(hookgate::config::from_str(&ok, "t").is_ok());
}
