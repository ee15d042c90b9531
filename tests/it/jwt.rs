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

/// A 2048-bit RSA test key (PKCS#1 DER, base64), made once with `openssl genrsa`: RSA key
/// generation in a debug build takes too long to run in every test. Used for nothing else.
const RSA_TEST_KEY_DER: &str = concat!(
    "MIIEowIBAAKCAQEAu4+695aS1ccKpnlYnZ4artTAekxsivInxXn84Zu0Nq6C3iBHUyBvIA8d429mGHSsWkxNqRBpwahsyDGd",
    "2a/+maOGYFYVNC7g8R0BfjUb+ScCGsCSu3a3AncxXFHMZZSv/aXHtzQ9vbwMadgMuN24FDMh3IbOOvqfSLli9FxrULPYHGHc",
    "W4/oGcjD77hc9MTGoJRRAQd3KI67fEyV+sgn32hVUzE7plsFq10t4ao6RNyV92C45nJyCMrWohTKfA5wMKjysgmLOzbYwKml",
    "lHjiIji3hl//DRW5Fcy2T1aOVk9rRo4DDc94tiPCbFuXzqEDO031g8SMRmBpssqdrWvIjwIDAQABAoIBAAt4M9KG2VLVMH3l",
    "fechk+Vs6nW5P67UWjhn44KS7OCmTJVqVubPXQMkpzi+4q/DKitHJfRUE7AYyMkKE7OMF9X+Ei42qfjZu5mObCsqF0Dl1WnB",
    "PxfTe0fvrLlqc/vZZFTcjlS/xgHrC5i2zboS5Xowdf5HGqfUy3rqyrX4S/tr8TODywsydbkHj/gRgHUabcx4raViU5t69c81",
    "m3EuAQcsYBdiCXLIfSeue5MqvTa4AeXDphMRpfDuY0Nh9PT/0npptogwTUhksBv8zmup2P1hzvkO3NOsy8O3zR3CSXbRR96G",
    "Bodz/O51VeyAbMJyYpFi0IqjgyiR4luwyS/bK+0CgYEA4cTmLNnzvswbafTuZuQVwPW6hfkZ7b2nKrtZWjNyliO7BzFmM81M",
    "LJ16/PnigDflaXpjs7okBqlp7DZ6YHr5UGjR81KgtejnaNDSljoyZxIl1Rmlx8I/qGhSqdi+HaIgn1uJMc5BUxKW5NXnxIjy",
    "ysTiLQfEQJk2ARY/NNGfAG0CgYEA1K0d0C0JDjhIWyFWKG9zBjGjpiayLAIonaHt1KlL+8JZaXgNVBfYS6UbFdkb+JzXThDt",
    "Plf3Y79uFJSr+PYYjoaA1+lZ0bkHJT9uzaf2DZtgiGbeyfVQZAYW6of2d9CjctWhiLPZOYR4YvPTBMf++saSkiCR80Xx/s1R",
    "4t6+J2sCgYEAwhb43nQc5NkpdCS500CgJvvZd5WYIddaYBUiEraJ+uMKxXtFZqFGrFBSTCsy+pGTKuOp1PfgQs3gHs8S0+DE",
    "dsk2PR26xchNMMHdWIL9k7h5R8M9zwaCnW/aKOQJRQZ9TyJtRqEPbbBcgqwWDNLDD2jFHHtBz1snnzWV7v2K2N0CgYA+/pga",
    "FXzdLWahN5qhl4FmkEV87XFQ/8KwDkq39v1+sO5zAxBPnFCA94KyUgCq/yn3AaSEFuI8NXORvQfDUoGrlcOMMJ5eNIQdUFCt",
    "sdZ76U4KmQ3cnEEXn4YiKeujSbVgSk7ygvMQymAuTzJt9B9egHrhtawFdu5bHs3meTuxyQKBgCq/jHjVWS+mINycFaVAPrYw",
    "KVwuVtL0hLHrIbvM2gWTd2wSAPMJ8uhaworJ6a672JTq9jHrdhQV4EfXJvScOh104PKXlh9E3t8WusYZdx4deg2Qh1suS2rE",
    "yAe4SkvTJmOLgde03/s6MLpc5JPKzIeWxaO5TRMBKmhix9y3IF87",
);
/// Its modulus, base64url (the JWK `n`; `e` is 65537).
const RSA_TEST_KEY_N: &str = "u4-695aS1ccKpnlYnZ4artTAekxsivInxXn84Zu0Nq6C3iBHUyBvIA8d429mGHSsWkxNqRBpwahsyDGd2a_-maOGYFYVNC7g8R0BfjUb-ScCGsCSu3a3AncxXFHMZZSv_aXHtzQ9vbwMadgMuN24FDMh3IbOOvqfSLli9FxrULPYHGHcW4_oGcjD77hc9MTGoJRRAQd3KI67fEyV-sgn32hVUzE7plsFq10t4ao6RNyV92C45nJyCMrWohTKfA5wMKjysgmLOzbYwKmllHjiIji3hl__DRW5Fcy2T1aOVk9rRo4DDc94tiPCbFuXzqEDO031g8SMRmBpssqdrWvIjw";

/// The RSA test key: its PKCS#1 DER (for signing) and its JWK.
fn rsa(kid: &str) -> (EncodingKey, serde_json::Value) {
    let der = base64::engine::general_purpose::STANDARD
        .decode(RSA_TEST_KEY_DER)
        .expect("der");
    let jwk = serde_json::json!({
        "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid, "n": RSA_TEST_KEY_N, "e": "AQAB"
    });
    (EncodingKey::from_rsa_der(&der), jwk)
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
    let (r1, jwkr1) = rsa("r1");
    let s = setup(&[&jwk1, &jwke1, &jwkr1]).await;
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
    let rs = token(Algorithm::RS256, "r1", &r1, &claims("hookgate", 300));
    assert_eq!(status(&s, &rs).await, ok);
    s.up.next().await;
    // RS512 is not among the route's (default) algorithms, even with a good key.
    let rs512 = token(Algorithm::RS512, "r1", &r1, &claims("hookgate", 300));
    assert_eq!(status(&s, &rs512).await, refused);
    // An ES256 token naming the RSA key's kid: the key does not fit the algorithm.
    let mixed = token(Algorithm::ES256, "r1", &e1, &claims("hookgate", 300));
    assert_eq!(status(&s, &mixed).await, refused);

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
