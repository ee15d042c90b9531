//! No input makes the gateway panic or lie: property tests over the parsers of outside
//! input (config, JSON, signature headers, forwarding headers, event keys) and over whole
//! requests through the real gateway. Each property asserts an invariant, not only the
//! absence of a panic.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use hookgate::config::raw::{MissingKey, OrderTimeUnit};
use hookgate::pipeline::allowlist::client_addr;
use hookgate::pipeline::extract::{DedupKey, EventKeys, OrderSpec, event_time};
use hookgate::pipeline::json;
use hookgate::pipeline::signature::{
    GithubScheme, HmacAlgorithm, HmacScheme, SigEncoding, SlackScheme, StandardWebhooksScheme,
    StripeScheme, Verifier,
};
use hookgate::secret::Secret;
use hookgate::verdict::Verdict;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::support::{client, gateway::Gateway, upstream::Upstream};

fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

fn header_map(pairs: &[(String, String)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_str(v),
        ) {
            h.append(k, v);
        }
    }
    h
}

fn verifiers() -> Vec<Verifier> {
    let s = || {
        vec![
            Secret::new(b"secret-one".to_vec()),
            Secret::new(b"whsec_two".to_vec()),
        ]
    };
    let tolerance = Duration::from_secs(300);
    vec![
        Verifier::Hmac(HmacScheme {
            header: HeaderName::from_static("x-signature"),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SigEncoding::Base64,
            prefix: "sha256=".into(),
            secrets: s(),
        }),
        Verifier::StandardWebhooks(StandardWebhooksScheme {
            secrets: s(),
            public_keys: vec![],
            tolerance,
        }),
        Verifier::Github(GithubScheme { secrets: s() }),
        Verifier::Stripe(StripeScheme {
            secrets: s(),
            tolerance,
        }),
        Verifier::Slack(SlackScheme {
            secrets: s(),
            tolerance,
        }),
    ]
}

/// Header names the verifiers look at, plus noise.
fn signature_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("x-signature".to_owned()),
        Just("webhook-id".to_owned()),
        Just("webhook-timestamp".to_owned()),
        Just("webhook-signature".to_owned()),
        Just("svix-signature".to_owned()),
        Just("x-hub-signature-256".to_owned()),
        Just("stripe-signature".to_owned()),
        Just("x-slack-signature".to_owned()),
        Just("x-slack-request-timestamp".to_owned()),
        "[a-z-]{1,12}",
    ]
}

fn signature_header_value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~]{0,64}",
        "(v1|v1a|v2),[A-Za-z0-9+/=]{0,90}( (v1|v1a),[A-Za-z0-9+/=]{0,90}){0,3}",
        "t=[0-9]{0,12},v1=[0-9a-f]{0,64}(,v1=[0-9a-f]{0,64}){0,2}",
        "(sha256=|v0=)[0-9a-fA-F]{0,70}",
        "[0-9]{0,20}",
    ]
}

#[test]
fn config_text_never_panics_and_every_refusal_explains_itself() {
    let valid = "[server]\nlisten = \"127.0.0.1:0\"\n[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"http://127.0.0.1:1/\"\nauth = { type = \"bearer\", tokens = [\"t\"] }\n";
    let mut runner = TestRunner::new(Config {
        cases: 512,
        ..Config::default()
    });
    let strategy = prop_oneof![
        ".{0,200}".boxed(),
        // Valid text with one slice replaced by junk: near-misses exercise more keys.
        (0..valid.len(), 0..valid.len(), "[ -~\n]{0,12}")
            .prop_map(move |(a, b, junk)| {
                let (a, b) = (a.min(b), a.max(b));
                let mut s = valid.to_owned();
                if s.is_char_boundary(a) && s.is_char_boundary(b) {
                    s.replace_range(a..b, &junk);
                }
                s
            })
            .boxed(),
    ];
    runner
        .run(&strategy, |text| {
            if let Err(e) = hookgate::config::from_str(&text, "fuzz") {
                prop_assert!(!e.to_string().trim().is_empty());
            }
            Ok(())
        })
        .expect("config property");
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    #[test]
    fn json_parse_is_total_on_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..256), max in 1usize..16) {
        // Any outcome but a panic; and a success really is within the depth bound.
        if let Ok(v) = json::parse(&bytes, max) {
            prop_assert!(depth(&v) <= max);
        }
    }

    #[test]
    fn depth_check_and_minify_agree_with_the_parsed_value(v in any_json(), pretty in any::<bool>(), max in 0usize..8) {
        let text = if pretty { serde_json::to_vec_pretty(&v) } else { serde_json::to_vec(&v) }.expect("serialise");
        prop_assert_eq!(json::depth_exceeds(&text, max), depth(&v) > max);
        let min = json::minify(&text);
        prop_assert!(!min.contains(&b'\n'));
        let back: Value = serde_json::from_slice(&min).expect("minified JSON parses");
        prop_assert_eq!(back, v);
    }

    #[test]
    fn verifiers_never_accept_or_panic_on_junk(
        headers in proptest::collection::vec((signature_header_name(), signature_header_value()), 0..6),
        body in proptest::collection::vec(any::<u8>(), 0..128),
        now in 0u64..4_000_000_000,
    ) {
        let h = header_map(&headers);
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(now);
        for v in verifiers() {
            prop_assert!(v.verify(&h, &body, at).is_err(), "{v:?} accepted {headers:?}");
        }
    }

    #[test]
    fn event_keys_never_panic(doc in any_json(), raw in proptest::collection::vec(any::<u8>(), 0..64)) {
        for unit in [OrderTimeUnit::Auto, OrderTimeUnit::S, OrderTimeUnit::Ms] {
            let _ = event_time(&doc, unit);
            let keys = EventKeys {
                dedup: Some(DedupKey::Pointer("/a".into())),
                order: Some(OrderSpec { entity: "/b".into(), time: "/c".into(), unit }),
                missing: MissingKey::Pass,
            };
            let wrapped = serde_json::json!({"a": doc.clone(), "b": doc.clone(), "c": doc.clone()});
            if let Ok(got) = keys.extract(&HeaderMap::new(), &raw, &wrapped)
                && let Some(id) = got.event_id {
                    prop_assert!(!id.is_empty() && id.len() <= hookgate::pipeline::extract::MAX_KEY_BYTES);
                }
        }
    }

    #[test]
    fn client_address_is_the_peer_or_named_in_the_headers(
        xff in "[0-9a-f:., \\[\\]]{0,60}",
        fwd in "(for=[0-9a-f:.\"\\[\\]]{0,30}[;,] ?){0,3}",
        trusted_peer in any::<bool>(),
    ) {
        let peer: SocketAddr = "10.0.0.1:443".parse().expect("peer");
        let trusted = if trusted_peer { vec!["10.0.0.0/8".parse().expect("net")] } else { vec![] };
        let h = header_map(&[("x-forwarded-for".into(), xff.clone()), ("forwarded".into(), fwd.clone())]);
        let got = client_addr(peer, &h, &trusted);
        let text = got.to_string();
        prop_assert!(
            got.0 == peer.ip() || xff.contains(&text) || fwd.contains(&text)
                || xff.contains(&got.0.to_string()) || fwd.contains(&got.0.to_string())
                || got.0.is_ipv4() && (xff.contains("::ffff:") || fwd.contains("::ffff:")),
            "client {text} from xff {xff:?} fwd {fwd:?}"
        );
        if !trusted_peer {
            prop_assert_eq!(got.0, peer.ip());
        }
    }
}

/// Whole requests through one running gateway: every answer carries a contract verdict
/// with the status the contract gives it, and the upstream receives exactly the bodies
/// that were answered `forwarded`, byte for byte.
#[test]
fn any_request_gets_a_contract_answer_and_only_forwarded_bodies_reach_the_upstream() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    let (gw, up) = rt.block_on(async {
        let up = Upstream::start().await;
        let gw = Gateway::start(&format!(
            r#"
[server]
max_body_bytes = 4096
max_json_depth = 16
read_timeout = "2s"
[store]
backend = "memory"
[[route]]
name = "fd"
path = "/hooks/fd"
preset = "flashduty-incident"
allow_ips = ["127.0.0.1"]
upstream = "{}"
auth = {{ type = "bearer", tokens = ["good-token"] }}
[[route]]
name = "open"
path = "/hooks/open"
methods = ["POST", "PUT"]
upstream = "{}"
"#,
            up.url("/in"),
            up.url("/in")
        ))
        .await;
        (gw, up)
    });
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/schemas/flashduty-incident/valid/minimal-required-only.json"),
    )
    .expect("fixture");
    let body = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..300),
        Just(fixture.clone()),
        (
            Just(fixture.clone()),
            any::<prop::sample::Index>(),
            any::<u8>()
        )
            .prop_map(|(mut f, i, b)| {
                let at = i.index(f.len());
                f[at] = b;
                f
            }),
        (1usize..40).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        any_json().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        Just(b"{\"n\": 1e999999}".to_vec()),
    ];
    let request = (
        prop_oneof![6 => Just("POST"), 1 => Just("GET"), 1 => Just("PUT"), 1 => Just("DELETE"), 1 => Just("PATCH")],
        prop_oneof![5 => Just("/hooks/fd"), 3 => Just("/hooks/open"), 1 => Just("/hooks/nope"), 1 => Just("/hooks/fd/extra")],
        prop_oneof![1 => Just(None), 5 => Just(Some("Bearer good-token")), 1 => Just(Some("Bearer bad")), 1 => Just(Some("Basic %%"))],
        proptest::collection::vec(("x-[a-z]{1,8}", "[ -~]{0,20}"), 0..4),
        body,
    );
    let statuses: HashMap<&str, u16> = Verdict::ALL
        .iter()
        .map(|v| (v.as_str(), v.status().as_u16()))
        .collect();
    // Every request sent (shrinking included) is recorded: they all reached the gateway.
    let forwarded = std::cell::RefCell::new(Vec::new());
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<String, usize>::new());
    let mut runner = TestRunner::new(Config {
        cases: 160,
        ..Config::default()
    });
    runner
        .run(&request, |(method, path, auth, extra, body)| {
            let (status, verdict) = rt.block_on(async {
                let mut req = client()
                    .request(method.parse().expect("method"), gw.url(path))
                    .body(body.clone());
                if let Some(a) = auth {
                    req = req.header("authorization", a);
                }
                for (k, v) in &extra {
                    req = req.header(k.as_str(), v.as_str());
                }
                let r = req.send().await.expect("an answer");
                let v = r
                    .headers()
                    .get("x-hookgate-verdict")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_owned();
                (r.status().as_u16(), v)
            });
            prop_assert!(
                statuses.contains_key(verdict.as_str()),
                "unknown verdict {verdict:?} ({status})"
            );
            *seen.borrow_mut().entry(verdict.clone()).or_default() += 1;
            match verdict.as_str() {
                "forwarded" => {
                    prop_assert_eq!(status, 200, "the upstream always answers 200 here");
                    forwarded.borrow_mut().push(body);
                }
                "upstream_error" => prop_assert!(status == 502 || status == 504),
                v => prop_assert_eq!(status, statuses[v], "verdict {}", v),
            }
            Ok(())
        })
        .expect("request-path property");
    let seen = seen.into_inner();
    eprintln!("verdicts seen: {seen:?}");
    // The generator must reach deep into the pipeline, not only bounce off the router.
    for v in [
        "forwarded",
        "unauthorized",
        "invalid_json",
        "invalid_schema",
        "no_route",
        "method_not_allowed",
    ] {
        assert!(seen.contains_key(v), "no request ended as {v}: {seen:?}");
    }
    rt.block_on(async {
        let mut forwarded = forwarded.into_inner();
        let mut received = Vec::new();
        for _ in 0..forwarded.len() {
            received.push(up.next().await.body.to_vec());
        }
        up.assert_nothing().await;
        received.sort();
        forwarded.sort();
        assert_eq!(
            received, forwarded,
            "the upstream received other bodies than those forwarded"
        );
    });
}
