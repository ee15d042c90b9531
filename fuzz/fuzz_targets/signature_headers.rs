//! Every signature verifier on arbitrary headers and bodies: never panics, never accepts
//! a signature made without its secret, and never quotes a presented value in its error.
//! As a positive control, each input's body is also signed properly (GitHub, Stripe,
//! Standard Webhooks) and must verify, and must stop verifying when the fuzzed headers
//! are added to the signed ones as duplicates.
#![no_main]

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use hmac::{KeyInit, Mac};
use hookgate::pipeline::signature::{HmacAlgorithm, SigEncoding, Verifier};
use hookgate::secret::Secret;
use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;

const NAMES: &[&str] = &[
    "x-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "stripe-signature",
    "x-slack-signature",
    "x-slack-request-timestamp",
];

const SECRET: &[u8] = b"fuzz-secret";
const TOLERANCE: Duration = Duration::from_secs(300);

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key");
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().to_vec()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn verifiers() -> Vec<Verifier> {
    let secrets = || vec![Secret::new(SECRET.to_vec())];
    let hmac = |algorithm, encoding, prefix: &str| {
        Verifier::hmac(
            HeaderName::from_static("x-signature"),
            algorithm,
            encoding,
            prefix,
            secrets(),
        )
    };
    vec![
        hmac(HmacAlgorithm::Sha512, SigEncoding::Hex, ""),
        hmac(HmacAlgorithm::Sha256, SigEncoding::Base64, "sha256="),
        hmac(HmacAlgorithm::Sha1, SigEncoding::Hex, "sha1="),
        Verifier::preset(
            "standard-webhooks",
            secrets(),
            vec![ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key()],
            TOLERANCE,
        )
        .expect("bundled scheme"),
        Verifier::preset("github", secrets(), vec![], Duration::ZERO).expect("bundled scheme"),
        Verifier::preset("stripe", secrets(), vec![], TOLERANCE).expect("bundled scheme"),
        Verifier::preset("slack", secrets(), vec![], TOLERANCE).expect("bundled scheme"),
    ]
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Header name (an index into NAMES) and value.
    headers: Vec<(u8, Vec<u8>)>,
    body: Vec<u8>,
    /// The clock, in Unix seconds.
    now: u32,
}

fuzz_target!(|input: Input| {
    let Input {
        headers: pairs,
        body,
        now,
    } = input;
    let mut headers = HeaderMap::new();
    let mut presented = Vec::new();
    for (name, value) in pairs {
        let name = HeaderName::from_static(NAMES[usize::from(name) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.append(name.clone(), v);
            presented.push((name, value));
        }
    }
    let ts = u64::from(now);
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(ts);

    // 1. Fuzzed headers never verify: their MACs were made without the secret.
    for v in &verifiers() {
        let Err(e) = v.verify(&headers, &body, at) else {
            panic!("{v:?} accepted fuzz input");
        };
        assert!(!e.reason().is_empty());
        // Errors name headers and fixed reasons (lowercase prose): a long value with an
        // uppercase letter, '+' or '/' showing up in one would be a quote of the input.
        let msg = e.to_string();
        for (_, value) in &presented {
            let distinctive = value.len() >= 8
                && value
                    .iter()
                    .any(|b| b.is_ascii_uppercase() || b"+/".contains(b));
            assert!(
                !distinctive || !msg.as_bytes().windows(value.len()).any(|w| w == value),
                "{v:?} quotes a presented value: {msg}"
            );
        }
    }

    // 2. The positive control: the same body, properly signed at `now`, verifies; with
    // any fuzzed copy of the signature header added next to it, it does not (repeated
    // signature headers are refused, never one of them picked).
    let ts_text = ts.to_string();
    let signed: [(Verifier, Vec<(&str, String)>); 3] = [
        (
            Verifier::preset(
                "github",
                vec![Secret::new(SECRET.to_vec())],
                vec![],
                Duration::ZERO,
            )
            .expect("bundled scheme"),
            vec![(
                "x-hub-signature-256",
                format!("sha256={}", hex(&hmac_sha256(SECRET, &[&body]))),
            )],
        ),
        (
            Verifier::preset(
                "stripe",
                vec![Secret::new(SECRET.to_vec())],
                vec![],
                TOLERANCE,
            )
            .expect("bundled scheme"),
            vec![(
                "stripe-signature",
                format!(
                    "t={ts_text},v1={}",
                    hex(&hmac_sha256(SECRET, &[ts_text.as_bytes(), b".", &body]))
                ),
            )],
        ),
        (
            Verifier::preset(
                "standard-webhooks",
                vec![Secret::new(SECRET.to_vec())],
                vec![],
                TOLERANCE,
            )
            .expect("bundled scheme"),
            {
                let mac = hmac_sha256(SECRET, &[b"msg_1", b".", ts_text.as_bytes(), b".", &body]);
                let sig = base64::engine::general_purpose::STANDARD.encode(mac);
                vec![
                    ("webhook-id", "msg_1".to_owned()),
                    ("webhook-timestamp", ts_text.clone()),
                    ("webhook-signature", format!("v1,{sig}")),
                ]
            },
        ),
    ];
    for (verifier, pairs) in &signed {
        let mut good = HeaderMap::new();
        for (name, value) in pairs {
            good.append(*name, HeaderValue::from_str(value).expect("ascii"));
        }
        assert_eq!(
            verifier.verify(&good, &body, at),
            Ok(()),
            "{verifier:?} refused its own signature"
        );
        let mut doubled = good.clone();
        let mut added = false;
        for (name, _) in pairs.iter().filter(|(n, _)| n.ends_with("signature")) {
            for v in headers.get_all(*name) {
                doubled.append(*name, v.clone());
                added = true;
            }
        }
        if added {
            assert!(
                verifier.verify(&doubled, &body, at).is_err(),
                "{verifier:?} accepted a repeated signature header"
            );
        }
    }
});
