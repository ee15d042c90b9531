//! Signs requests the way each sender does, written independently of the gateway's
//! verifiers (from the schemes' documentation), so a shared mistake cannot pass.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{KeyInit, Mac};

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = HmacSha256::new_from_slice(key).expect("any key length");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

/// `whsec_` form of raw key bytes.
pub fn whsec(key: &[u8]) -> String {
    format!("whsec_{}", B64.encode(key))
}

/// Standard Webhooks `v1,` headers.
pub fn standard_webhooks(key: &[u8], id: &str, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let ts_s = ts.to_string();
    let sig = hmac_sha256(key, &[id.as_bytes(), b".", ts_s.as_bytes(), b".", body]);
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts_s),
        (
            "webhook-signature".into(),
            format!("v1,{}", B64.encode(sig)),
        ),
    ]
}

/// Standard Webhooks `v1a,` (ed25519) headers, from a 32-byte seed.
pub fn standard_webhooks_ed25519(
    seed: [u8; 32],
    id: &str,
    ts: u64,
    body: &[u8],
) -> Vec<(String, String)> {
    use ed25519_dalek::Signer as _;
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let ts_s = ts.to_string();
    let mut content = Vec::new();
    content.extend_from_slice(id.as_bytes());
    content.push(b'.');
    content.extend_from_slice(ts_s.as_bytes());
    content.push(b'.');
    content.extend_from_slice(body);
    let sig = key.sign(&content);
    vec![
        ("webhook-id".into(), id.into()),
        ("webhook-timestamp".into(), ts_s),
        (
            "webhook-signature".into(),
            format!("v1a,{}", B64.encode(sig.to_bytes())),
        ),
    ]
}

/// `whpk_` form of the public key of a seed.
pub fn whpk(seed: [u8; 32]) -> String {
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    format!("whpk_{}", B64.encode(key.verifying_key().to_bytes()))
}

pub fn github(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "x-hub-signature-256".into(),
        format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &[body]))),
    )]
}

pub fn stripe(secret: &str, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let ts_s = ts.to_string();
    let sig = hmac_sha256(secret.as_bytes(), &[ts_s.as_bytes(), b".", body]);
    vec![(
        "stripe-signature".into(),
        format!("t={ts_s},v1={}", hex(&sig)),
    )]
}

pub fn slack(secret: &str, ts: u64, body: &[u8]) -> Vec<(String, String)> {
    let ts_s = ts.to_string();
    let sig = hmac_sha256(secret.as_bytes(), &[b"v0:", ts_s.as_bytes(), b":", body]);
    vec![
        ("x-slack-request-timestamp".into(), ts_s),
        ("x-slack-signature".into(), format!("v0={}", hex(&sig))),
    ]
}

pub fn generic_hmac(secret: &str, body: &[u8]) -> Vec<(String, String)> {
    vec![(
        "x-signature".into(),
        format!("sha256={}", hex(&hmac_sha256(secret.as_bytes(), &[body]))),
    )]
}
