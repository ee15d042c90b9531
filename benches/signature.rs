//! Signature verification per scheme and body size.
//!
//! Each case verifies a correctly signed request (the accept path, which does the most
//! work: every MAC is computed). `raw_hmac_sha256` is the same-run baseline: one
//! HMAC-SHA256 over the body and nothing else, so each scheme's cost can be read as a
//! ratio to it.

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::{Signer as _, SigningKey};
use hmac::{Hmac, KeyInit, Mac};
use hookgate::pipeline::signature::{HmacAlgorithm, SigEncoding, Verifier};
use hookgate::secret::Secret;
use http::{HeaderMap, HeaderName, HeaderValue};

const TS: u64 = 1_614_265_330;
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const KEY: &[u8] = b"bench-secret-0123456789abcdef";
const TOLERANCE: Duration = Duration::from_secs(300);

fn mac(key: &[u8], pieces: &[&[u8]]) -> Vec<u8> {
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key");
    for piece in pieces {
        mac.update(piece);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    let mut buf = vec![0u8; bytes.len() * 2];
    base16ct::lower::encode_str(bytes, &mut buf)
        .expect("buffer sized")
        .to_owned()
}

fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
    pairs
        .iter()
        .map(|(name, value)| {
            (
                HeaderName::from_static(name),
                HeaderValue::from_str(value).expect("ascii header"),
            )
        })
        .collect()
}

/// One signed request per scheme for `body`.
fn cases(body: &[u8]) -> Vec<(&'static str, Verifier, HeaderMap)> {
    let secrets = || vec![Secret::new(KEY.to_vec())];
    let ts = TS.to_string();
    let std_signed: [&[u8]; 5] = [ID.as_bytes(), b".", ts.as_bytes(), b".", body];
    let signing = SigningKey::from_bytes(&[7; 32]);
    let message: Vec<u8> = std_signed.concat();

    vec![
        (
            "hmac_sha256_hex",
            Verifier::hmac(
                HeaderName::from_static("x-signature"),
                HmacAlgorithm::Sha256,
                SigEncoding::Hex,
                "",
                secrets(),
            ),
            headers(&[("x-signature", hex(&mac(KEY, &[body])))]),
        ),
        (
            "standard_webhooks_v1",
            Verifier::preset("standard-webhooks", secrets(), vec![], TOLERANCE)
                .expect("bundled scheme"),
            headers(&[
                ("webhook-id", ID.to_owned()),
                ("webhook-timestamp", ts.clone()),
                (
                    "webhook-signature",
                    format!("v1,{}", BASE64.encode(mac(KEY, &std_signed))),
                ),
            ]),
        ),
        (
            "standard_webhooks_v1a_ed25519",
            Verifier::preset(
                "standard-webhooks",
                vec![],
                vec![signing.verifying_key()],
                TOLERANCE,
            )
            .expect("bundled scheme"),
            headers(&[
                ("webhook-id", ID.to_owned()),
                ("webhook-timestamp", ts.clone()),
                (
                    "webhook-signature",
                    format!("v1a,{}", BASE64.encode(signing.sign(&message).to_bytes())),
                ),
            ]),
        ),
        (
            "github",
            Verifier::preset("github", secrets(), vec![], Duration::ZERO).expect("bundled scheme"),
            headers(&[(
                "x-hub-signature-256",
                format!("sha256={}", hex(&mac(KEY, &[body]))),
            )]),
        ),
        (
            "stripe",
            Verifier::preset("stripe", secrets(), vec![], TOLERANCE).expect("bundled scheme"),
            headers(&[(
                "stripe-signature",
                format!("t={ts},v1={}", hex(&mac(KEY, &[ts.as_bytes(), b".", body]))),
            )]),
        ),
        (
            "slack",
            Verifier::preset("slack", secrets(), vec![], TOLERANCE).expect("bundled scheme"),
            headers(&[
                ("x-slack-request-timestamp", ts.clone()),
                (
                    "x-slack-signature",
                    format!(
                        "v0={}",
                        hex(&mac(KEY, &[b"v0:", ts.as_bytes(), b":", body]))
                    ),
                ),
            ]),
        ),
    ]
}

fn verify(c: &mut Criterion) {
    let now: SystemTime = UNIX_EPOCH + Duration::from_secs(TS);
    let mut group = c.benchmark_group("verify");
    for (label, size) in [("1KiB", 1024usize), ("64KiB", 64 * 1024)] {
        // JSON-ish filler; the content does not matter to a MAC, only the length.
        let body: Vec<u8> = b"{\"a\": 1, \"bc\": [true]} "
            .iter()
            .copied()
            .cycle()
            .take(size)
            .collect();
        group.throughput(Throughput::Bytes(size as u64));

        group.bench_with_input(
            BenchmarkId::new("raw_hmac_sha256", label),
            &body,
            |b, body| b.iter(|| mac(black_box(KEY), &[black_box(body)])),
        );
        for (scheme, verifier, headers) in cases(&body) {
            assert!(verifier.verify(&headers, &body, now).is_ok(), "{scheme}");
            group.bench_with_input(BenchmarkId::new(scheme, label), &body, |b, body| {
                b.iter(|| verifier.verify(black_box(&headers), black_box(body), now))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, verify);
criterion_main!(benches);
