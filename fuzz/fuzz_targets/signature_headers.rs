//! Every signature verifier on arbitrary headers and bodies: never panics, never accepts.
#![no_main]

use std::time::{Duration, SystemTime};

use hookgate::pipeline::signature::{
    GithubScheme, HmacAlgorithm, HmacScheme, SigEncoding, SlackScheme, StandardWebhooksScheme,
    StripeScheme, Verifier,
};
use hookgate::secret::Secret;
use http::{HeaderMap, HeaderName, HeaderValue};
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

fuzz_target!(|input: (Vec<(u8, Vec<u8>)>, Vec<u8>, u32)| {
    let (pairs, body, now) = input;
    let mut headers = HeaderMap::new();
    for (name, value) in pairs {
        let name = HeaderName::from_static(NAMES[usize::from(name) % NAMES.len()]);
        if let Ok(v) = HeaderValue::from_bytes(&value) {
            headers.append(name, v);
        }
    }
    let secrets = || vec![Secret::new(b"fuzz-secret".to_vec())];
    let tolerance = Duration::from_secs(300);
    let verifiers = [
        Verifier::Hmac(HmacScheme {
            header: HeaderName::from_static("x-signature"),
            algorithm: HmacAlgorithm::Sha512,
            encoding: SigEncoding::Hex,
            prefix: String::new(),
            secrets: secrets(),
        }),
        Verifier::StandardWebhooks(StandardWebhooksScheme {
            secrets: secrets(),
            public_keys: vec![],
            tolerance,
        }),
        Verifier::Github(GithubScheme { secrets: secrets() }),
        Verifier::Stripe(StripeScheme {
            secrets: secrets(),
            tolerance,
        }),
        Verifier::Slack(SlackScheme {
            secrets: secrets(),
            tolerance,
        }),
    ];
    let at = SystemTime::UNIX_EPOCH + Duration::from_secs(u64::from(now));
    for v in &verifiers {
        // A forged MAC under a secret the input never saw: accepting it would be a bug.
        assert!(
            v.verify(&headers, &body, at).is_err(),
            "{v:?} accepted fuzz input"
        );
    }
});
