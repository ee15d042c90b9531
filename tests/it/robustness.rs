//! No input makes the gateway panic or lie: property tests over the parsers of outside
//! input (config, JSON, signature headers, event keys and times, forwarding headers) and
//! over whole requests through the real gateway. Each property asserts an invariant or
//! agrees with a small reference model written here, not only the absence of a panic.
//! The cargo-fuzz targets in `fuzz/` explore the same surfaces with the same reference
//! models (`oracle.rs`).

use std::collections::{BTreeMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hookgate::config::JSON_DEPTH_CEILING;
use hookgate::config::spec::{MissingKey, OrderTimeUnit};
use hookgate::pipeline::allowlist::{Client, ClientAddr, ClientIpHeader, client_addr};
use hookgate::pipeline::extract::number::Decimal;
use hookgate::pipeline::extract::{
    DedupKey, EventKeys, ExtractError, MAX_KEY_BYTES, OrderSpec, event_time, is_unsendable,
};
use hookgate::pipeline::json::{self, JsonError};
use hookgate::pipeline::signature::{HmacAlgorithm, SigEncoding, SignatureError, Verifier};
use hookgate::secret::Secret;
use hookgate::verdict::Verdict;
use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::test_runner::{Config, TestRunner};
use serde_json::Value;

use crate::oracle::{addresses_in, days_from_civil, days_in_month, reference_client};
use crate::support::{client, gateway::Gateway, sign, upstream::Upstream, verdict};

// === shared helpers ===

/// Nesting depth as the gateway counts it: a scalar is 0, `[1]` is 1.
fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Appends every pair that is a legal header; others are skipped (the HTTP layer would
/// never deliver them).
fn header_map<V: AsRef<[u8]>>(pairs: &[(String, V)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, v) in pairs {
        if let (Ok(k), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HeaderValue::from_bytes(v.as_ref()),
        ) {
            h.append(k, v);
        }
    }
    h
}

/// Arbitrary JSON values (numbers as serde_json builds them).
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from), // non-finite becomes null
        ".{0,12}".prop_map(Value::String),
    ];
    leaf.prop_recursive(6, 48, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            proptest::collection::btree_map(".{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

// === config ===

/// A valid config; the mutation strategy breaks it in small places.
const VALID_CONFIG: &str = "[server]\nlisten = \"127.0.0.1:0\"\nmax_json_depth = 16\n[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\npreset = \"flashduty-incident\"\nupstream = \"http://127.0.0.1:1/\"\nauth = { type = \"bearer\", tokens = [\"t\"] }\n";

const DURATIONS: &[&str] = &[
    "\"10s\"",
    "\"0s\"",
    "\"1ns\"",
    "\"500ms\"",
    "\"72h\"",
    "\"1y 2months\"",
    "\"abc\"",
    "\"\"",
    "\"-5s\"",
    "\"18446744073709551616s\"",
];

const AUTHS: &[&str] = &[
    "{ type = \"none\" }",
    "{ type = \"bearer\", tokens = [\"t\"] }",
    "{ type = \"bearer\", tokens = [] }",
    "{ type = \"bearer\", tokens = [\"\"] }",
    "{ type = \"bearer\", tokens = [\"env:HOOKGATE_ROBUSTNESS_SURELY_UNSET\"] }",
    "{ type = \"bearer\", tokens = [\"file:/nonexistent/hookgate-secret\"] }",
    "{ type = \"basic\", users = { u = \"p\" } }",
    "{ type = \"basic\", users = { \"a:b\" = \"p\" } }",
    "{ type = \"basic\", users = {} }",
    "{ type = \"header\", headers = { \"X-T\" = [\"v\"] } }",
    "{ type = \"header\", headers = { \"bad name\" = [\"v\"] } }",
    "{ type = \"header\", headers = { \"X-T\" = [] } }",
    "{ type = \"header\", headers = {} }",
    "{ type = \"hmac\", header = \"X-Sig\", algorithm = \"sha512\", encoding = \"base64\", prefix = \"v=\", secrets = [\"s\"] }",
    "{ type = \"hmac\", header = \"bad header\", secrets = [\"s\"] }",
    "{ type = \"hmac\", header = \"X-Sig\", secrets = [] }",
    "{ type = \"standard-webhooks\", secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"] }",
    "{ type = \"standard-webhooks\", secrets = [\"whsec_!!!\"] }",
    "{ type = \"standard-webhooks\", secrets = [\"whsec_\"] }",
    "{ type = \"standard-webhooks\", public_keys = [\"whpk_AAAA\"] }",
    "{ type = \"standard-webhooks\", public_keys = [\"whpk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"] }",
    "{ type = \"standard-webhooks\" }",
    "{ type = \"standard-webhooks\", secrets = [\"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\"], tolerance = \"0s\" }",
    "{ type = \"github\", secrets = [\"x\"] }",
    "{ type = \"stripe\", secrets = [\"whsec_x\"], tolerance = \"18446744073709551615s\" }",
    "{ type = \"slack\", secrets = [\"s\"], tolerance = \"abc\" }",
];

/// Lines the TOML layer itself refuses (wrong types, unknown keys and variants); one is
/// mixed in now and then, so that most generated texts reach the compile step.
const TYPE_ERRORS: &[&str] = &[
    "listen = 80",
    "max_body_bytes = -1",
    "max_json_depth = \"big\"",
    "read_timeout = 5",
    "metrics = \"yes\"",
    "backend = \"bogus\"",
    "schema_mode = \"x\"",
    "order_time_unit = \"ns\"",
    "delivery = \"x\"",
    "auth = { type = \"bogus\" }",
    "auth = { type = \"bearer\", tokens = [\"t\"], extra = 1 }",
    "auth = { type = \"hmac\", header = \"X-Sig\", algorithm = \"md5\", secrets = [\"s\"] }",
    "auth = \"bearer\"",
    "rate_limit = { burst = 1 }",
    "rate_limit = { per_second = -1 }",
    "bogus_key = 1",
];

/// `key = value\n` with a value from `pool`, present one time in three.
fn line(key: &'static str, pool: &'static [&'static str]) -> BoxedStrategy<String> {
    prop_oneof![
        2 => Just(String::new()),
        1 => select(pool).prop_map(move |v| format!("{key} = {v}\n")),
    ]
    .boxed()
}

/// The lines of one table, now and then with a line the TOML layer refuses.
fn section(lines: Vec<BoxedStrategy<String>>) -> impl Strategy<Value = String> {
    (
        lines,
        prop_oneof![15 => Just(None), 1 => select(TYPE_ERRORS).prop_map(Some)],
    )
        .prop_map(|(l, bad)| {
            let mut text = l.concat();
            if let Some(bad) = bad {
                text.push_str(bad);
                text.push('\n');
            }
            text
        })
}

/// Config texts built from the real keys with good, bad and extreme values: most reach
/// the compile step (secrets, presets, schemas, CIDRs, durations), not only the TOML
/// parser.
fn structured_config() -> impl Strategy<Value = String> {
    let server = section(vec![
        line(
            "listen",
            &[
                "\"127.0.0.1:0\"",
                "\"[::1]:8080\"",
                "\"localhost:80\"",
                "\"\"",
            ],
        ),
        line(
            "max_body_bytes",
            &["0", "1", "1048576", "9223372036854775807"],
        ),
        line("max_json_depth", &["0", "1", "64", "128", "129"]),
        line("read_timeout", DURATIONS),
        line(
            "trusted_proxies",
            &[
                "[\"10.0.0.0/8\"]",
                "[\"::ffff:10.0.0.0/104\"]",
                "[\"::ffff:1.2.3.4/95\"]",
                "[\"1.2.3.4/33\"]",
                "[\"nope\"]",
                "[\" 10.0.0.1 \"]",
                "[]",
            ],
        ),
        line("metrics", &["true", "false"]),
    ]);
    let store = section(vec![
        line("backend", &["\"memory\"", "\"embedded\"", "\"redis\""]),
        line("path", &["\"/nonexistent/hookgate\"", "\"\""]),
        line("url", &["\"redis://127.0.0.1:1\"", "\"\""]),
        line("dedup_ttl", DURATIONS),
    ]);
    // Without a name, path and upstream a route is refused before anything else is
    // looked at, so those three are usually present.
    let required = |key: &'static str, pool: &'static [&'static str]| {
        prop_oneof![
            1 => Just(String::new()),
            12 => select(pool).prop_map(move |v| format!("{key} = {v}\n")),
        ]
        .boxed()
    };
    let route = section(vec![
        required(
            "name",
            &[
                "\"a\"",
                "\"b\"",
                "\"x.y-z_1\"",
                "\"a b\"",
                "\"\"",
                "\"\u{fc}\"",
            ],
        ),
        required(
            "path",
            &[
                "\"/a\"",
                "\"/b\"",
                "\"/\"",
                "\"a\"",
                "\"/healthz\"",
                "\"/a?b\"",
                "\"/a b\"",
                "\"/\u{fc}\"",
            ],
        ),
        required(
            "upstream",
            &[
                "\"http://127.0.0.1:1/\"",
                "\"https://example.invalid/x?y=1\"",
                "\"http://user:pw@example.invalid/\"",
                "\"file:///nonexistent/hookgate/x.jsonl\"",
                "\"file://\"",
                "\"http://\"",
                "\"ftp://x\"",
                "\"not a url\"",
            ],
        ),
        line(
            "preset",
            &[
                "\"flashduty-incident\"",
                "\"flashduty-alert\"",
                "\"wallarm\"",
                "\"apono-request\"",
                "\"apono-integration\"",
                "\"firefly\"",
                "\"nops\"",
                "\"nope\"",
                "\"\"",
            ],
        ),
        line(
            "schema",
            &[
                "\"flashduty-incident\"",
                "\"wallarm\"",
                "\"/nonexistent/schema.json\"",
                "\"relative/x.json\"",
                "\"\"",
            ],
        ),
        line("schema_mode", &["\"enforce\"", "\"monitor\""]),
        line(
            "dedup_key",
            &[
                "\"/event_id\"",
                "\"header:webhook-id\"",
                "\"header:bad header\"",
                "\"header:\"",
                "\"body-sha256\"",
                "\"event_id\"",
                "\"\"",
            ],
        ),
        line("order_key", &["\"/incident/incident_id\"", "\"x\"", "\"\""]),
        line("order_time", &["\"/event_time\"", "\"t\""]),
        line("order_time_unit", &["\"s\"", "\"ms\"", "\"auto\""]),
        line("missing_key", &["\"pass\"", "\"reject\""]),
        line(
            "methods",
            &[
                "[\"POST\"]",
                "[]",
                "[\"get\", \"put\"]",
                "[\"POST\", \"POST\"]",
                "[\"NOT A METHOD\"]",
                "[\"\u{c4}\"]",
            ],
        ),
        line(
            "allow_ips",
            &[
                "[\"127.0.0.1\"]",
                "[\"2001:db8::/32\", \"1.2.3.4/32\"]",
                "[\"::ffff:1.2.3.0/120\"]",
                "[\"1.2.3/8\"]",
                "[]",
            ],
        ),
        line("delivery", &["\"sync\"", "\"async\""]),
        line("upstream_timeout", DURATIONS),
        line("auth", AUTHS),
        line(
            "rate_limit",
            &[
                "{ per_second = 1 }",
                "{ per_second = 0 }",
                "{ per_second = 5, burst = 0 }",
                "{ per_second = 4294967295, burst = 4294967295, per_address = true }",
            ],
        ),
    ]);
    // Server and store errors stop compilation before the routes: often leave them out.
    let server = prop_oneof![Just(String::new()), server];
    let store = prop_oneof![Just(String::new()), store];
    (server, store, vec(route, 0..3)).prop_map(|(server, store, routes)| {
        let mut text = format!("[server]\n{server}[store]\n{store}");
        for r in routes {
            text.push_str("[[route]]\n");
            text.push_str(&r);
        }
        text
    })
}

/// The shared config oracle (`oracle.rs`), as a proptest failure.
fn check_config(text: &str) -> Result<(), TestCaseError> {
    crate::oracle::check_config(text, "robust.toml").map_err(TestCaseError::fail)
}

#[test]
fn config_text_never_panics_and_every_refusal_explains_itself() {
    // The control: the text the mutations start from is accepted.
    hookgate::config::from_str(VALID_CONFIG, "control").expect("the base config is valid");
    let valid = VALID_CONFIG;
    let strategy = prop_oneof![
        // Anything at all (mostly TOML syntax errors).
        ".{0,200}".boxed(),
        // Valid text with one slice replaced by junk: near-misses exercise more keys.
        (0..valid.len(), 0..valid.len(), "[ -~\n]{0,12}")
            .prop_map(move |(a, b, junk)| {
                let (a, b) = (a.min(b), a.max(b));
                let mut s = valid.to_owned();
                s.replace_range(a..b, &junk); // VALID_CONFIG is ASCII
                s
            })
            .boxed(),
        // Real keys with good, bad and extreme values.
        structured_config().boxed(),
        structured_config().boxed(),
    ];
    let mut runner = TestRunner::new(Config {
        cases: 768,
        ..Config::default()
    });
    runner
        .run(&strategy, |text| check_config(&text))
        .expect("config property");
}

// === JSON ===

/// Whitespace JSON allows between tokens.
fn ws() -> impl Strategy<Value = String> {
    "[ \t\n\r]{0,2}"
}

fn json_string_literal() -> impl Strategy<Value = String> {
    prop_oneof![
        "[ -~\t\n\u{e9}\u{2028}\u{1F600}]{0,10}"
            .prop_map(|s| serde_json::to_string(&s).expect("a string serialises")),
        // Escapes serde_json would not produce itself, and structure inside strings.
        select(&[
            r#""\u00e9\/\\\"""#,
            r#""[{\"}]""#,
            r#""\\""#,
            r#""a\\\\\"b \t""#,
            r#""\ud83d\ude00""#,
            r#""""#,
        ])
        .prop_map(str::to_owned),
    ]
}

/// JSON documents as text, with random whitespace, number spellings, escapes and
/// duplicate keys, and their nesting depth, counted on the text's structure (a parsed
/// tree can be shallower: of duplicate keys serde_json keeps the last).
fn json_text() -> impl Strategy<Value = (String, usize)> {
    let number = "-?(0|[1-9][0-9]{0,24})(\\.[0-9]{1,18})?([eE][+-]?[0-9]{1,2})?";
    let leaf = prop_oneof![
        select(&["null", "true", "false"]).prop_map(str::to_owned),
        number,
        json_string_literal(),
    ]
    .prop_map(|text| (text, 0));
    let doc = leaf.prop_recursive(8, 64, 5, |inner| {
        prop_oneof![
            vec((ws(), inner.clone(), ws()), 0..5).prop_map(|items| {
                let depth = 1 + items.iter().map(|(_, (_, d), _)| *d).max().unwrap_or(0);
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, (v, _), b)| a + &v + &b)
                    .collect();
                (format!("[{}]", items.join(",")), depth)
            }),
            vec((ws(), json_string_literal(), ws(), ws(), inner, ws()), 0..5).prop_map(|items| {
                let depth = 1 + items.iter().map(|(.., (_, d), _)| *d).max().unwrap_or(0);
                let items: Vec<String> = items
                    .into_iter()
                    .map(|(a, k, b, c, (v, _), d)| format!("{a}{k}{b}:{c}{v}{d}"))
                    .collect();
                (format!("{{{}}}", items.join(",")), depth)
            }),
        ]
    });
    (ws(), doc, ws()).prop_map(|(a, (d, depth), b)| (a + &d + &b, depth))
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    /// `parse` is total on bytes and agrees with serde_json: each refusal is the right
    /// one, and an accepted document is what serde_json reads, within the depth bound.
    #[test]
    fn json_parse_is_total_and_agrees_with_serde_json(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..256),
            "[\\[\\]{}\",:0-9a-z \\\\.eE+-]{0,64}".prop_map(String::into_bytes),
        ],
        max in 1usize..=JSON_DEPTH_CEILING,
    ) {
        match json::parse(&bytes, max) {
            Err(JsonError::NotUtf8 { offset }) => {
                let e = std::str::from_utf8(&bytes).expect_err("refused as not UTF-8");
                prop_assert_eq!(offset, e.valid_up_to());
            }
            Err(JsonError::TooDeep { max: m }) => {
                prop_assert_eq!(m, max);
                prop_assert!(json::depth_exceeds(&bytes, max));
            }
            Err(JsonError::Syntax { message, .. }) => {
                prop_assert!(!message.is_empty());
                prop_assert!(serde_json::from_slice::<Value>(&bytes).is_err());
            }
            Err(JsonError::DuplicateKey { key, .. }) => {
                prop_assert!(crate::oracle::repeated_keys(&bytes).contains(&key), "{:?} not repeated", key);
            }
            Ok(v) => {
                prop_assert!(depth(&v) <= max);
                prop_assert!(crate::oracle::repeated_keys(&bytes).is_empty());
                prop_assert_eq!(serde_json::from_slice::<Value>(&bytes).ok(), Some(v));
            }
        }
    }

    /// On valid documents, the depth pre-scan agrees with the depth of the parsed tree,
    /// `parse` accepts exactly the documents within the bound, and `minify` keeps the
    /// document (same value, idempotent, no layout whitespace left).
    #[test]
    fn depth_check_and_minify_agree_with_the_parsed_document((text, d) in json_text(), max in 0usize..10) {
        let bytes = text.as_bytes();
        let v: Value = serde_json::from_slice(bytes).expect("the generator writes valid JSON");
        prop_assert!(depth(&v) <= d);
        prop_assert_eq!(json::depth_exceeds(bytes, max), d > max, "depth {} max {}", d, max);
        if max >= 1 {
            match json::parse(bytes, max) {
                Ok(parsed) => {
                    prop_assert!(d <= max);
                    prop_assert_eq!(&parsed, &v);
                }
                Err(JsonError::TooDeep { .. }) => prop_assert!(d > max),
                // The first problem met while reading wins: a repeated key before the
                // too-deep part is reported as such.
                Err(JsonError::DuplicateKey { key, .. }) => {
                    prop_assert!(crate::oracle::repeated_keys(bytes).contains(&key), "{:?} not repeated", key);
                }
                Err(e) => return Err(TestCaseError::fail(format!("valid JSON refused: {e}"))),
            }
        }
        let min = json::minify(bytes);
        let back: Value = serde_json::from_slice(&min).expect("minified JSON parses");
        prop_assert_eq!(&back, &v);
        prop_assert_eq!(json::minify(&min), min.clone(), "minify is idempotent");
        prop_assert!(min.len() <= bytes.len());
        // JSON strings cannot hold raw tabs or line breaks: any left would be layout.
        prop_assert!(!min.iter().any(|b| matches!(b, b'\n' | b'\r' | b'\t')));
    }
}

/// Documents exactly `max_json_depth` deep are within the bound (DESIGN.md §4: only
/// "nested deeper than `max_json_depth`" is refused), including at the ceiling of 128,
/// which is also the default.
#[test]
fn a_document_exactly_at_the_depth_ceiling_is_accepted() {
    let doc = format!(
        "{}{}",
        "[".repeat(JSON_DEPTH_CEILING),
        "]".repeat(JSON_DEPTH_CEILING)
    );
    assert!(!json::depth_exceeds(doc.as_bytes(), JSON_DEPTH_CEILING));
    let parsed = json::parse(doc.as_bytes(), JSON_DEPTH_CEILING);
    assert!(parsed.is_ok(), "{parsed:?}");
    let deeper = format!("[{doc}]");
    let refused = json::parse(deeper.as_bytes(), JSON_DEPTH_CEILING);
    assert!(
        matches!(refused, Err(JsonError::TooDeep { max }) if max == JSON_DEPTH_CEILING),
        "{refused:?}"
    );
}

// === signatures ===

/// Verifiers of every scheme, with secrets that no generated input knows.
fn junk_verifiers() -> Vec<Verifier> {
    let s = || {
        vec![
            Secret::new(b"secret-one".to_vec()),
            Secret::new(b"whsec_two".to_vec()),
        ]
    };
    let tolerance = Duration::from_secs(300);
    let public_key = ed25519_dalek::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let hmac = |algorithm, encoding, prefix: &str| {
        Verifier::hmac(
            HeaderName::from_static("x-signature"),
            algorithm,
            encoding,
            prefix,
            s(),
        )
    };
    vec![
        hmac(HmacAlgorithm::Sha256, SigEncoding::Base64, "sha256="),
        hmac(HmacAlgorithm::Sha256, SigEncoding::Hex, ""),
        hmac(HmacAlgorithm::Sha1, SigEncoding::Hex, "sha1="),
        hmac(HmacAlgorithm::Sha512, SigEncoding::Base64, ""),
        Verifier::preset("standard-webhooks", s(), vec![public_key], tolerance)
            .expect("bundled scheme"),
        Verifier::preset("github", s(), vec![], Duration::ZERO).expect("bundled scheme"),
        Verifier::preset("stripe", s(), vec![], tolerance).expect("bundled scheme"),
        Verifier::preset("slack", s(), vec![], tolerance).expect("bundled scheme"),
    ]
}

/// Header names the verifiers look at, plus noise.
fn signature_header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => select(&[
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
        ])
        .prop_map(str::to_owned),
        1 => "[a-z-]{1,12}",
    ]
}

/// Values shaped like each scheme's, plus raw bytes (obs-text, tabs).
fn signature_header_value() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[ -~]{0,64}".prop_map(String::into_bytes),
        "(v1|v1a|v2),[A-Za-z0-9+/=]{0,90}( (v1|v1a),[A-Za-z0-9+/=]{0,90}){0,3}"
            .prop_map(String::into_bytes),
        "t=[0-9]{0,12},v1=[0-9a-f]{0,64}(,v1=[0-9a-f]{0,64}){0,2}".prop_map(String::into_bytes),
        "(sha256=|sha1=|v0=)?[0-9a-fA-F]{0,130}".prop_map(String::into_bytes),
        "[A-Za-z0-9+/]{86}==".prop_map(String::into_bytes),
        "[0-9]{0,20}".prop_map(String::into_bytes),
        vec(any::<u8>(), 0..40),
    ]
}

/// Headers as a sender writes them.
type Pairs = Vec<(String, String)>;

/// What one scheme needs to sign a request.
struct Signed {
    name: &'static str,
    verifier: Verifier,
    /// A verifier of the same scheme holding another secret.
    stranger: Verifier,
    /// Signs `(body, id, timestamp)` like the sender does (`support::sign`).
    sign: fn(&[u8], &str, u64) -> Pairs,
    /// Whether a timestamp is signed (and its tolerance enforced).
    timed: bool,
}

const TOLERANCE: Duration = Duration::from_secs(300);
const SW_KEY: &[u8] = b"standard-webhooks-key";
const ED_SEED: [u8; 32] = [9; 32];

fn signed_schemes() -> Vec<Signed> {
    let secret = |s: &str| vec![Secret::new(s.as_bytes().to_vec())];
    let hmac = |s: &str| {
        Verifier::hmac(
            HeaderName::from_static("x-signature"),
            HmacAlgorithm::Sha256,
            SigEncoding::Hex,
            "sha256=",
            secret(s),
        )
    };
    let sw = |key: &[u8]| {
        Verifier::preset(
            "standard-webhooks",
            vec![Secret::new(key.to_vec())],
            vec![],
            TOLERANCE,
        )
        .expect("bundled scheme")
    };
    let ed = |seed: [u8; 32]| {
        Verifier::preset(
            "standard-webhooks",
            vec![],
            vec![ed25519_dalek::SigningKey::from_bytes(&seed).verifying_key()],
            TOLERANCE,
        )
        .expect("bundled scheme")
    };
    let stripe =
        |s: &str| Verifier::preset("stripe", secret(s), vec![], TOLERANCE).expect("bundled scheme");
    let slack =
        |s: &str| Verifier::preset("slack", secret(s), vec![], TOLERANCE).expect("bundled scheme");
    vec![
        Signed {
            name: "hmac",
            verifier: hmac("hmac-secret"),
            stranger: hmac("hmac-secret2"),
            sign: |body, _, _| sign::generic_hmac("hmac-secret", body),
            timed: false,
        },
        Signed {
            name: "github",
            verifier: Verifier::preset("github", secret("gh-secret"), vec![], Duration::ZERO)
                .expect("bundled scheme"),
            stranger: Verifier::preset("github", secret("gh-secreT"), vec![], Duration::ZERO)
                .expect("bundled scheme"),
            sign: |body, _, _| sign::github("gh-secret", body),
            timed: false,
        },
        Signed {
            name: "stripe",
            verifier: stripe("whsec_stripe"),
            stranger: stripe("whsec_stripf"),
            sign: |body, _, ts| sign::stripe("whsec_stripe", ts, body),
            timed: true,
        },
        Signed {
            name: "slack",
            verifier: slack("slack-secret"),
            stranger: slack("slack-secreu"),
            sign: |body, _, ts| sign::slack("slack-secret", ts, body),
            timed: true,
        },
        Signed {
            name: "standard-webhooks v1",
            verifier: sw(SW_KEY),
            stranger: sw(b"standard-webhooks-kez"),
            sign: |body, id, ts| sign::standard_webhooks(SW_KEY, id, ts, body),
            timed: true,
        },
        Signed {
            name: "svix v1",
            verifier: sw(SW_KEY),
            stranger: sw(b"standard-webhooks-kez"),
            sign: |body, id, ts| {
                sign::standard_webhooks(SW_KEY, id, ts, body)
                    .into_iter()
                    .map(|(k, v)| (k.replace("webhook-", "svix-"), v))
                    .collect()
            },
            timed: true,
        },
        Signed {
            name: "standard-webhooks v1a",
            verifier: ed(ED_SEED),
            stranger: ed([10; 32]),
            sign: |body, id, ts| sign::standard_webhooks_ed25519(ED_SEED, id, ts, body),
            timed: true,
        },
    ]
}

proptest! {
    #![proptest_config(Config { cases: 256, ..Config::default() })]

    /// Junk never verifies, and a refusal never quotes what the sender presented.
    #[test]
    fn verifiers_never_accept_junk_nor_quote_it(
        headers in vec((signature_header_name(), signature_header_value()), 0..6),
        body in vec(any::<u8>(), 0..128),
        now in 0u64..4_000_000_000,
    ) {
        let h = header_map(&headers);
        let at = UNIX_EPOCH + Duration::from_secs(now);
        for v in junk_verifiers() {
            let Err(e) = v.verify(&h, &body, at) else {
                return Err(TestCaseError::fail(format!("{v:?} accepted {headers:?}")));
            };
            prop_assert!(!e.reason().is_empty());
            let msg = e.to_string();
            for (_, value) in &headers {
                // Names and fixed reasons are lowercase prose: a long value with an
                // uppercase letter, '+' or '/' in the message would be a quote of it.
                let distinctive = value.len() >= 8
                    && value.iter().any(|b| b.is_ascii_uppercase() || b"+/".contains(b));
                prop_assert!(
                    !distinctive || !msg.as_bytes().windows(value.len()).any(|w| w == value.as_slice()),
                    "{:?} quotes a presented value: {}", v, msg
                );
            }
        }
    }

}

proptest! {
    // ed25519 in a debug build is slow: fewer cases, each checking seven schemes.
    #![proptest_config(Config { cases: 64, ..Config::default() })]

    /// The positive control for the property above: each scheme accepts the request its
    /// sender signs, anywhere within the tolerance, and refuses it when one body byte
    /// changes, a byte is added, the clock is past the tolerance, the signature header
    /// is repeated, or the secret is another. Every credential header it reads is one it
    /// strips before forwarding (`webhook-id` excepted: it is not a credential).
    #[test]
    fn verifiers_accept_exactly_the_signed_request(
        body in vec(any::<u8>(), 0..200),
        id in "[A-Za-z0-9_-]{1,24}",
        ts in 1_000_000_000u64..4_000_000_000,
        skew in -300i64..=300,
        subsec in 0u32..1_000_000_000,
        flip in (any::<Index>(), 1u8..=255),
        late in 301u64..10_000_000,
        future in any::<bool>(),
    ) {
        let at = |secs: u64| UNIX_EPOCH + Duration::new(secs, subsec);
        let now = at(ts.saturating_add_signed(skew));
        for s in signed_schemes() {
            let pairs = (s.sign)(&body, &id, ts);
            let h = header_map(&pairs);
            prop_assert_eq!(s.verifier.verify(&h, &body, now), Ok(()), "{} refused its own signature", s.name);
            if !body.is_empty() {
                let mut changed = body.clone();
                changed[flip.0.index(body.len())] ^= flip.1;
                prop_assert!(s.verifier.verify(&h, &changed, now).is_err(), "{}: changed body accepted", s.name);
            }
            let mut longer = body.clone();
            longer.push(b' ');
            prop_assert!(s.verifier.verify(&h, &longer, now).is_err(), "{}: longer body accepted", s.name);
            prop_assert_eq!(s.stranger.verify(&h, &body, now), Err(SignatureError::NoMatch), "{}", s.name);
            let mut repeated = pairs.clone();
            if let Some(sig) = pairs.iter().find(|(k, _)| k.contains("signature")) {
                repeated.push(sig.clone());
                prop_assert!(s.verifier.verify(&header_map(&repeated), &body, now).is_err(), "{}: repeated header accepted", s.name);
            }
            if s.timed {
                let (when, expected) = if future {
                    (at(ts - late), SignatureError::TimestampTooNew)
                } else {
                    (at(ts + late), SignatureError::TimestampTooOld)
                };
                prop_assert_eq!(s.verifier.verify(&h, &body, when), Err(expected), "{}", s.name);
            }
            let consumed = s.verifier.consumed_headers();
            for (name, _) in &pairs {
                prop_assert!(
                    name.ends_with("-id") || consumed.iter().any(|c| c == name.as_str()),
                    "{}: {} is read but not stripped", s.name, name
                );
            }
        }
    }
}

// === event keys and times ===

/// An RFC 3339 time and the Unix nanoseconds it denotes.
fn rfc3339() -> impl Strategy<Value = (String, i128)> {
    (
        0i64..=9999,
        1i64..=12,
        any::<Index>(),
        (0i64..24, 0i64..60, 0i64..60),
        proptest::option::of("[0-9]{1,9}"),
        prop_oneof![
            Just(None),
            (any::<bool>(), 0i64..24, 0i64..60).prop_map(Some)
        ],
    )
        .prop_map(|(y, mo, day, (h, mi, s), frac, offset)| {
            let d = 1 + day.index(days_in_month(y, mo) as usize) as i64;
            let (offset_text, offset_secs) = match offset {
                None => ("Z".to_owned(), 0),
                Some((neg, oh, om)) => (
                    format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
                    (oh * 3600 + om * 60) * if neg { -1 } else { 1 },
                ),
            };
            let frac_nanos: i128 = frac
                .as_deref()
                .map_or(0, |f| format!("{f:0<9}").parse().expect("nine digits"));
            let text = format!(
                "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}{}{offset_text}",
                frac.map(|f| format!(".{f}")).unwrap_or_default()
            );
            let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
            (text, i128::from(secs) * 1_000_000_000 + frac_nanos)
        })
}

/// Strings that look like times, and those that almost do.
fn time_like_string() -> impl Strategy<Value = String> {
    prop_oneof![
        ".{0,40}",
        "[0-9]{1,6}-[0-9]{1,3}-[0-9]{1,3}[Tt ][0-9]{1,3}:[0-9]{1,3}:[0-9]{1,3}(\\.[0-9]{0,20})?([Zz]|[+-][0-9]{1,3}:[0-9]{1,3})?",
        rfc3339().prop_map(|(t, _)| t),
        select(&[
            "1990-12-31T23:59:60Z",
            "1990-12-31T15:59:60-08:00",
            "9999-12-31T23:59:59.999999999-23:59",
            "0000-01-01T00:00:00+23:59",
            "2024-02-30T00:00:00Z",
            "+2024-01-01T00:00:00Z",
            "",
        ])
        .prop_map(str::to_owned),
    ]
}

const UNITS: [OrderTimeUnit; 3] = [OrderTimeUnit::Auto, OrderTimeUnit::S, OrderTimeUnit::Ms];

/// Numbers as the JSON parser makes them from text, including huge and tiny spellings.
fn json_number() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        (-200_000_000_000i64..200_000_000_000).prop_map(Value::from),
        "-?[0-9]{1,30}(\\.[0-9]{0,20})?([eE][+-]?[0-9]{1,3})?"
            .prop_filter_map("within f64", |t| serde_json::from_str::<Value>(&t).ok()),
    ]
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    /// Integer epochs are exact in the unit the route says (auto: above 1e11 is
    /// milliseconds), out-of-range ones are refused; fractional ones are within a
    /// nanosecond of the value; nothing panics.
    #[test]
    fn event_time_reads_numbers_exactly_in_their_unit(n in json_number()) {
        let Value::Number(num) = &n else {
            // Non-finite floats became null: refused, like every non-number.
            for unit in UNITS {
                prop_assert!(event_time(&n, unit).is_err());
            }
            return Ok(());
        };
        for unit in UNITS {
            let got = event_time(&n, unit);
            if let Some(i) = num.as_i64() {
                let ms = match unit {
                    OrderTimeUnit::Ms => true,
                    OrderTimeUnit::S => false,
                    OrderTimeUnit::Auto => i.unsigned_abs() > 100_000_000_000,
                };
                let expected = i.checked_mul(if ms { 1_000_000 } else { 1_000_000_000 });
                prop_assert_eq!(got.ok(), expected, "{} as {:?}", i, unit);
            } else {
                let f = num.as_f64().expect("a JSON number is finite");
                let ms = match unit {
                    OrderTimeUnit::Ms => true,
                    OrderTimeUnit::S => false,
                    OrderTimeUnit::Auto => f.abs() > 1e11,
                };
                let exact = f * if ms { 1e6 } else { 1e9 };
                match got {
                    Ok(nanos) => prop_assert!((nanos as f64 - exact).abs() <= 1.0 + exact.abs() * 1e-15, "{} as {:?}: {}", f, unit, nanos),
                    Err(_) => prop_assert!(exact.abs() >= 9.2e18, "{} as {:?} refused", f, unit),
                }
            }
        }
    }

    /// RFC 3339 times, with any offset and fraction, are the instant a calendar says
    /// they are (or refused when that instant does not fit in i64 nanoseconds).
    #[test]
    fn event_time_reads_rfc3339_like_a_calendar((text, nanos) in rfc3339()) {
        let got = event_time(&Value::String(text.clone()), OrderTimeUnit::Auto);
        match i64::try_from(nanos) {
            Ok(n) => prop_assert_eq!(got, Ok(n), "{}", text),
            Err(_) => prop_assert!(got.is_err(), "{} out of range but read as {:?}", text, got),
        }
    }

    /// Arbitrary and near-miss strings never panic; a refusal explains itself.
    #[test]
    fn event_time_is_total_on_strings(s in time_like_string()) {
        for unit in UNITS {
            if let Err(reason) = event_time(&Value::String(s.clone()), unit) {
                prop_assert!(!reason.is_empty());
            }
        }
    }

    /// `EventKeys::extract` finds exactly what its pointers name, under the route's
    /// missing-key rule, within the key size bound; body hashes are SHA-256 hex; header
    /// keys are the trimmed header value.
    #[test]
    fn event_keys_extract_what_the_pointers_name(
        id in proptest::option::of(prop_oneof![any_json(), ".{0,600}".prop_map(Value::String), json_number()]),
        entity in proptest::option::of(prop_oneof![any_json(), json_number()]),
        time in proptest::option::of(prop_oneof![json_number(), time_like_string().prop_map(Value::String), any_json()]),
        header in proptest::option::of(vec(any::<u8>(), 0..40)),
        raw in vec(any::<u8>(), 0..64),
        pass in any::<bool>(),
        unit in select(UNITS.to_vec()),
    ) {
        let missing = if pass { MissingKey::Pass } else { MissingKey::Reject };
        let mut doc = serde_json::json!({ "nested": { "a/b": {} } });
        if let Some(v) = &id {
            doc["id"] = v.clone();
            doc["nested"]["a/b"]["~"] = v.clone();
        }
        if let Some(v) = &entity {
            doc["entity"] = v.clone();
        }
        if let Some(v) = &time {
            doc["t"] = v.clone();
        }
        let mut headers = HeaderMap::new();
        if let Some(v) = header.as_ref().and_then(|h| HeaderValue::from_bytes(h).ok()) {
            headers.insert("webhook-id", v);
        }
        let keys = |dedup, order| EventKeys { dedup, order, missing };
        let pointer = |p: &str| Some(DedupKey::Pointer(p.to_owned()));

        // The event id, by pointer (plain and escaped: `~1` is '/', `~0` is '~').
        let expected = reference_key(id.as_ref(), pass);
        for p in ["/id", "/nested/a~1b/~0"] {
            let got = keys(pointer(p), None).extract(&headers, &raw, &doc).map(|e| e.event_id);
            prop_assert_eq!(kind(&got), kind(&expected), "pointer {} on {:?}", p, id);
            if let (Ok(g), Ok(e)) = (&got, &expected) {
                prop_assert_eq!(g, e);
            }
        }
        // A pointer to nothing, and to the whole object (not a string or number).
        let got = keys(pointer("/absent"), None).extract(&headers, &raw, &doc);
        prop_assert_eq!(got.map(|e| e.event_id).map_err(|e| matches!(e, ExtractError::Missing { .. })), if pass { Ok(None) } else { Err(true) });
        let got = keys(pointer(""), None).extract(&headers, &raw, &doc);
        prop_assert!(matches!(got, Err(ExtractError::Invalid { .. })), "{:?}", got);

        // The body hash.
        let got = keys(Some(DedupKey::BodySha256), None).extract(&headers, &raw, &doc).expect("a body always hashes");
        let hash = got.event_id.expect("hash");
        prop_assert!(hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase()));

        // A header.
        let got = keys(Some(DedupKey::Header(HeaderName::from_static("webhook-id"))), None).extract(&headers, &raw, &doc);
        match headers.get("webhook-id").map(|v| v.to_str().map(str::trim)) {
            None => prop_assert_eq!(got.map(|e| e.event_id).map_err(|e| matches!(e, ExtractError::Missing { .. })), if pass { Ok(None) } else { Err(true) }),
            Some(Ok(text)) if !text.is_empty() && text.len() <= MAX_KEY_BYTES => {
                prop_assert_eq!(got.map(|e| e.event_id), Ok(Some(text.to_owned())));
            }
            Some(_) => prop_assert!(matches!(got, Err(ExtractError::Invalid { .. })), "{:?}", got),
        }

        // Entity and time, for ordering.
        let spec = OrderSpec { entity: "/entity".into(), time: "/t".into(), unit };
        let got = keys(None, Some(spec)).extract(&headers, &raw, &doc).map(|e| e.order);
        let expected = match reference_key(entity.as_ref(), pass) {
            Err(k) => Err(k),
            Ok(None) => Ok(None),
            Ok(Some(entity)) => match &time {
                None if pass => Ok(None),
                None => Err(Kind::Missing),
                Some(t) => event_time(t, unit).map(|n| Some((entity, n))).map_err(|_| Kind::Invalid),
            },
        };
        prop_assert_eq!(kind(&got), kind(&expected), "entity {:?} time {:?}", entity, time);
        if let (Ok(g), Ok(e)) = (&got, &expected) {
            prop_assert_eq!(g, e);
        }
    }
}

/// Why a reference extraction fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Missing,
    Invalid,
}

fn kind<T, E: std::fmt::Debug>(r: &Result<T, E>) -> Result<(), Kind> {
    match r {
        Ok(_) => Ok(()),
        Err(e) if format!("{e:?}").starts_with("Missing") => Err(Kind::Missing),
        Err(_) => Err(Kind::Invalid),
    }
}

/// The key rule written out: a non-empty string or a number, at most MAX_KEY_BYTES; null
/// or absent is missing; anything else is invalid.
fn reference_key(v: Option<&Value>, pass: bool) -> Result<Option<String>, Kind> {
    let text = match v {
        None | Some(Value::Null) if pass => return Ok(None),
        None | Some(Value::Null) => return Err(Kind::Missing),
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        // Unrelated `raw` bytes: the number's own text, in canonical decimal form.
        Some(Value::Number(n)) => match Decimal::parse(&n.to_string()) {
            Some(d) => d.canonical(),
            None => return Err(Kind::Invalid),
        },
        Some(_) => return Err(Kind::Invalid),
    };
    if text.len() > MAX_KEY_BYTES || text.chars().any(is_unsendable) {
        return Err(Kind::Invalid);
    }
    Ok(Some(text))
}

// === client address ===

/// One forwarding hop as written, and what it means (None: unparseable).
fn hop() -> impl Strategy<Value = (&'static str, Option<IpAddr>)> {
    let ip = |s: &str| Some(s.parse::<IpAddr>().expect("ip"));
    select(vec![
        ("10.0.0.7", ip("10.0.0.7")),
        ("10.9.8.7", ip("10.9.8.7")),
        ("::ffff:10.1.2.3", ip("10.1.2.3")),
        ("203.0.113.5", ip("203.0.113.5")),
        ("198.51.100.9", ip("198.51.100.9")),
        ("2001:db8::1", ip("2001:db8::1")),
        ("2001:0db8:0:0:0:0:0:1", ip("2001:db8::1")),
        ("::ffff:203.0.113.6", ip("203.0.113.6")),
        ("203.0.113.7:8080", ip("203.0.113.7")),
        ("[2001:db8::2]:443", ip("2001:db8::2")),
        ("[2001:db8::3]", ip("2001:db8::3")),
        ("[::ffff:10.0.0.9]:1", ip("10.0.0.9")),
        ("unknown", None),
        ("_hidden", None),
        ("1.2.3", None),
        ("10.0.0.1 10.0.0.2", None),
    ])
}

/// Which network trusted proxies live in, for the client-address properties.
fn trusted_nets() -> Vec<ipnet::IpNet> {
    vec![
        "10.0.0.0/8".parse().expect("net"),
        "2001:db8::/126".parse().expect("net"),
    ]
}

fn known(c: Client) -> Option<IpAddr> {
    c.addr().map(|ClientAddr(ip)| ip)
}

proptest! {
    #![proptest_config(Config { cases: 512, ..Config::default() })]

    /// On arbitrary forwarding headers the client is the peer or an address the headers
    /// name; an untrusted peer's headers are ignored.
    #[test]
    fn client_address_is_the_peer_or_named_in_the_headers(
        values in vec((select(&["x-forwarded-for", "forwarded", "x-real-ip"]), prop_oneof![
            "[ -~]{0,60}",
            "[0-9a-f:., \\[\\]]{0,60}",
            "((for|For|by)=\"?[0-9a-f:.\\[\\]]{0,30}\"?[;,] ?){0,4}",
            vec(hop().prop_map(|(t, _)| t), 0..6).prop_map(|h| h.join(", ")),
        ]), 0..4),
        peer in select(&["10.0.0.1:443", "203.0.113.1:1", "[::ffff:10.0.0.2]:2", "[2001:db8::1]:3", "[2001:db9::1]:4"]),
        which in select(&[ClientIpHeader::XForwardedFor, ClientIpHeader::Forwarded, ClientIpHeader::XRealIp]),
    ) {
        let peer: SocketAddr = peer.parse().expect("peer");
        let pairs: Vec<(String, String)> = values.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect();
        let h = header_map(&pairs);
        let trusted = trusted_nets();
        let got = client_addr(peer, &h, &trusted, which);
        // Only the configured header is read; the others are noise.
        let named: HashSet<IpAddr> = values.iter().filter(|(k, _)| *k == which.header_name().as_str()).flat_map(|(_, v)| addresses_in(v)).collect();
        if let Some(got) = known(got) {
            prop_assert!(got == peer.ip().to_canonical() || named.contains(&got), "client {} from {:?}", got, values);
            prop_assert!(!matches!(got, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()), "{} not normalised", got);
        }
        if !trusted.iter().any(|n| n.contains(&peer.ip().to_canonical())) {
            prop_assert_eq!(known(got), Some(peer.ip().to_canonical()));
        }
        prop_assert_eq!(known(client_addr(peer, &h, &[], which)), Some(peer.ip().to_canonical()));
    }

    /// On well-formed chains the client is what the reference walk says, whether the
    /// chain comes as `X-Forwarded-For` or `Forwarded` (whichever is configured; the
    /// other is a decoy), in one header line or several.
    #[test]
    fn client_address_follows_the_reference_walk(
        hops in vec(hop(), 0..40),
        split in any::<Index>(),
        as_forwarded in any::<bool>(),
        decoy in any::<bool>(),
        peer in select(&["10.0.0.1:443", "203.0.113.1:1", "[::ffff:10.0.0.2]:2", "[2001:db8::1]:3"]),
    ) {
        let peer: SocketAddr = peer.parse().expect("peer");
        let render = |hs: &[(&str, Option<IpAddr>)]| -> String {
            hs.iter()
                .map(|(t, _)| if as_forwarded { format!("for=\"{t}\";proto=https") } else { (*t).to_owned() })
                .collect::<Vec<_>>()
                .join(", ")
        };
        let at = split.index(hops.len() + 1);
        let name = if as_forwarded { "forwarded" } else { "x-forwarded-for" };
        let (which, other) = if as_forwarded {
            (ClientIpHeader::Forwarded, ("x-forwarded-for", "198.51.100.200"))
        } else {
            (ClientIpHeader::XForwardedFor, ("forwarded", "for=198.51.100.200"))
        };
        let mut pairs = Vec::new();
        if decoy {
            // Ignored: not the configured header.
            pairs.push((other.0.to_owned(), other.1.to_owned()));
        }
        let mut meaning: Vec<Option<IpAddr>> = Vec::new();
        let lines: &[&[(&str, Option<IpAddr>)]] = if at < hops.len() {
            &[&hops[..at], &hops[at..]]
        } else {
            &[&hops[..]]
        };
        for line in lines {
            pairs.push((name.to_owned(), render(line)));
            // An empty header line is an unreadable hop.
            if line.is_empty() {
                meaning.push(None);
            }
            meaning.extend(line.iter().map(|(_, m)| *m));
        }
        let h = header_map(&pairs);
        prop_assert_eq!(h.get_all(name).iter().count(), pairs.iter().filter(|(k, _)| k == name).count());
        let trusted = trusted_nets();
        prop_assert_eq!(
            known(client_addr(peer, &h, &trusted, which)),
            reference_client(peer.ip(), &meaning, &trusted),
            "{:?}", pairs
        );
    }
}

// === the whole request path ===

/// Bodies: junk, the valid fixture and near-misses of it, deep nesting, huge numbers,
/// invalid UTF-8, too large.
fn request_body(fixture: Vec<u8>) -> impl Strategy<Value = Vec<u8>> {
    let template = {
        let mut v: Value = serde_json::from_slice(&fixture).expect("fixture is JSON");
        v["event_id"] = Value::String("__ID__".into());
        v["event_time"] = Value::String("__TIME__".into());
        serde_json::to_string_pretty(&v).expect("serialise")
    };
    prop_oneof![
        2 => vec(any::<u8>(), 0..300),
        2 => Just(fixture.clone()),
        2 => (Just(fixture.clone()), any::<Index>(), any::<u8>()).prop_map(|(mut f, i, b)| {
            let at = i.index(f.len());
            f[at] = b;
            f
        }),
        // The fixture with a fresh id and an event time from normal to absurd.
        4 => (
            "[a-f0-9]{1,32}",
            prop_oneof![
                Just("1700000000000".to_owned()),
                (1_600_000_000_000i64..1_800_000_000_000).prop_map(|t| t.to_string()),
                select(&["1e999", "-1", "0", "99999999999999999999999999", "1.5e300", "-9223372036854775808", "18446744073709551615", "\"2024-01-01T00:00:00Z\"", "null", "1700000000000.5"]).prop_map(str::to_owned),
            ],
        )
            .prop_map(move |(id, time)| {
                template
                    .replace("\"__ID__\"", &format!("\"{id}\""))
                    .replace("\"__TIME__\"", &time)
                    .into_bytes()
            }),
        1 => (1usize..40).prop_map(|n| format!("{}1{}", "[".repeat(n), "]".repeat(n)).into_bytes()),
        1 => (1usize..40).prop_map(|n| format!("{}{}", "{\"a\":".repeat(n), "}".repeat(n)).replacen('}', "1}", 1).into_bytes()),
        2 => any_json().prop_map(|v| serde_json::to_vec(&v).expect("json")),
        1 => Just(b"{\"n\": 1e999999}".to_vec()),
        1 => Just(b"{\"event_id\": \"\xff\xfe\"}".to_vec()),
        1 => vec(any::<u8>(), 4097..5000),
    ]
}

/// Extra headers: forwarding headers, content type, ids, noise, and obs-text bytes.
fn extra_headers() -> impl Strategy<Value = Vec<(String, Vec<u8>)>> {
    vec(
        (
            prop_oneof![
                select(&[
                    "x-forwarded-for",
                    "forwarded",
                    "content-type",
                    "webhook-id",
                    "x-request-id",
                    "authorization",
                ])
                .prop_map(str::to_owned),
                "x-[a-z]{1,8}",
            ],
            prop_oneof![
                "[ -~]{0,24}".prop_map(String::into_bytes),
                vec(any::<u8>(), 0..16),
            ],
        ),
        0..4,
    )
}

/// One request of the whole-path property.
type Req = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<(String, Vec<u8>)>,
    Vec<u8>,
);

/// What the gateway answered.
struct Answer {
    status: u16,
    verdict: Option<String>,
    allow: Option<String>,
    body: Vec<u8>,
}

async fn send(gw: &Gateway, (method, path, auth, extra, body): &Req) -> Answer {
    let mut req = client()
        .request(method.parse().expect("method"), gw.url(path))
        .body(body.clone());
    if let Some(a) = auth {
        req = req.header("authorization", *a);
    }
    for (k, v) in extra {
        if let Ok(v) = HeaderValue::from_bytes(v) {
            req = req.header(k.as_str(), v);
        }
    }
    let r = req.send().await.expect("an answer");
    let header = |name: &str| {
        r.headers()
            .get(name)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
    };
    let (status, verdict, allow) = (
        r.status().as_u16(),
        header("x-hookgate-verdict"),
        header("allow"),
    );
    let body = r.bytes().await.expect("answer body").to_vec();
    Answer {
        status,
        verdict,
        allow,
        body,
    }
}

/// The gateway's routes: request path → (route name, upstream path).
const ROUTES: &[(&str, (&str, &str))] = &[
    ("/hooks/fd", ("fd", "/up/fd")),
    ("/hooks/open", ("open", "/up/open")),
];

/// Checks one answer against the contract; returns its verdict, and records what the
/// upstream must have received (upstream path, method, body) when it was forwarded.
fn check_answer(
    req: &Req,
    a: &Answer,
    forwarded: &mut Vec<(String, String, Vec<u8>)>,
) -> Result<Verdict, TestCaseError> {
    let (method, path, _, _, body) = req;
    let Some(verdict) = &a.verdict else {
        return Err(TestCaseError::fail(format!(
            "{} without a verdict header",
            a.status
        )));
    };
    let Some(v) = Verdict::ALL.iter().copied().find(|v| v.as_str() == verdict) else {
        return Err(TestCaseError::fail(format!(
            "unknown verdict {verdict:?} ({})",
            a.status
        )));
    };
    let path_only = path.split('?').next().unwrap_or(path);
    let route = ROUTES
        .iter()
        .find(|(p, _)| *p == path_only)
        .map(|(_, r)| *r);
    match v {
        Verdict::Forwarded => {
            prop_assert_eq!(a.status, 200, "the upstream always answers 200 here");
            prop_assert_eq!(&a.body, br#"{"upstream":"ok"}"#, "the upstream's body");
            let Some((_, up_path)) = route else {
                return Err(TestCaseError::fail(format!("{path} forwarded off-route")));
            };
            forwarded.push((up_path.to_owned(), (*method).to_owned(), body.clone()));
        }
        Verdict::UpstreamError => prop_assert!(a.status == 502 || a.status == 504),
        v => prop_assert_eq!(a.status, v.status().as_u16(), "verdict {}", v),
    }
    if v != Verdict::Forwarded {
        let json: Value = serde_json::from_slice(&a.body)
            .map_err(|e| TestCaseError::fail(format!("{v} answer is not JSON: {e}")))?;
        prop_assert_eq!(&json["verdict"], &Value::from(v.as_str()));
        let route_name = route.map_or(Value::Null, |(name, _)| Value::from(name));
        prop_assert_eq!(&json["route"], &route_name);
    }
    if v == Verdict::MethodNotAllowed {
        let allow = a.allow.clone().unwrap_or_default();
        prop_assert!(allow.contains("POST"), "Allow: {:?}", allow);
    }
    Ok(v)
}

/// Whole requests through one running gateway: every answer carries a contract verdict
/// with the status the contract gives it (and the JSON body naming it and the route,
/// except proxied answers), and the upstream receives exactly the requests that were
/// answered `forwarded`, byte for byte, without the bearer credential. A fixed prelude
/// reaches each verdict once; then proptest generates requests.
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
            up.url("/up/fd"),
            up.url("/up/open")
        ))
        .await;
        (gw, up)
    });
    let fixture = std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/schemas/flashduty-incident/valid/minimal-required-only.json"),
    )
    .expect("fixture");
    let mut forwarded = Vec::new();

    // The prelude: one request per verdict this configuration can give.
    let older = String::from_utf8(fixture.clone())
        .expect("utf-8")
        .replace(
            "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5a",
            "0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f5b",
        )
        .replace("1700000000000", "1600000000000")
        .into_bytes();
    let good = Some("Bearer good-token");
    let prelude: Vec<(Req, Verdict)> = vec![
        (
            ("POST", "/hooks/fd", good, vec![], fixture.clone()),
            Verdict::Forwarded,
        ),
        (
            ("POST", "/hooks/fd", good, vec![], fixture.clone()),
            Verdict::Duplicate,
        ),
        (("POST", "/hooks/fd", good, vec![], older), Verdict::Stale),
        (
            ("POST", "/hooks/fd", None, vec![], fixture.clone()),
            Verdict::Unauthorized,
        ),
        (
            ("POST", "/hooks/fd", good, vec![], b"{\"a\":1}".to_vec()),
            Verdict::InvalidSchema,
        ),
        (
            (
                "POST",
                "/hooks/fd",
                good,
                vec![],
                format!("{}{}", "[".repeat(17), "]".repeat(17)).into_bytes(),
            ),
            Verdict::InvalidJson,
        ),
        (
            ("POST", "/hooks/fd", good, vec![], vec![b' '; 4097]),
            Verdict::TooLarge,
        ),
        (
            ("GET", "/hooks/fd", good, vec![], vec![]),
            Verdict::MethodNotAllowed,
        ),
        (
            ("POST", "/hooks/nope", good, vec![], b"{}".to_vec()),
            Verdict::NoRoute,
        ),
        (
            (
                "PUT",
                "/hooks/open?q=1",
                None,
                vec![],
                b" [1, {\"a\": \"\xc3\xa9\"}] ".to_vec(),
            ),
            Verdict::Forwarded,
        ),
    ];
    for (req, expected) in &prelude {
        let answer = rt.block_on(send(&gw, req));
        let got = check_answer(req, &answer, &mut forwarded).expect("the contract holds");
        assert_eq!(got, *expected, "{} {}", req.0, req.1);
    }

    let request = (
        prop_oneof![
            20 => Just("POST"),
            3 => Just("PUT"),
            1 => select(&["GET", "DELETE", "PATCH", "OPTIONS"]),
        ],
        prop_oneof![
            12 => Just("/hooks/fd"),
            5 => Just("/hooks/open"),
            1 => Just("/hooks/fd?x=1&y"),
            2 => select(&["/hooks/nope", "/hooks/fd/", "/HOOKS/fd", "/hooks/%66d", "/"]),
        ],
        prop_oneof![
            1 => Just(None),
            6 => Just(good),
            1 => select(&[
                Some("bearer good-token"),
                Some("Bearer  good-token "),
                Some("Bearer bad"),
                Some("Basic %%"),
                Some("Bearer"),
            ]),
        ],
        extra_headers(),
        request_body(fixture),
    );
    let forwarded = std::cell::RefCell::new(forwarded);
    let seen = std::cell::RefCell::new(BTreeMap::<&str, usize>::new());
    let mut runner = TestRunner::new(Config {
        cases: 96,
        ..Config::default()
    });
    runner
        .run(&request, |req| {
            let answer = rt.block_on(send(&gw, &req));
            let v = check_answer(&req, &answer, &mut forwarded.borrow_mut())?;
            *seen.borrow_mut().entry(v.as_str()).or_default() += 1;
            Ok(())
        })
        .expect("request-path property");
    let seen = seen.into_inner();
    eprintln!("verdicts seen: {seen:?}");
    // The generator reaches past the router (a loose bound: the prelude covers each).
    assert!(seen.len() >= 5, "too few verdicts reached: {seen:?}");

    rt.block_on(async {
        let mut expected = forwarded.into_inner();
        let mut received = Vec::new();
        for _ in 0..expected.len() {
            let r = up.next().await;
            if r.uri.path() == "/up/fd" {
                assert!(
                    !r.headers.contains_key("authorization"),
                    "the bearer token reached the upstream"
                );
            }
            received.push((
                r.uri.path().to_owned(),
                r.method.to_string(),
                r.body.to_vec(),
            ));
        }
        up.assert_nothing().await;
        received.sort();
        expected.sort();
        assert_eq!(
            received, expected,
            "the upstream received other requests than those forwarded"
        );
    });
}

/// The other durations a config accepts, at their extreme (the cap of 3650 days), must
/// still work: no overflow in the upstream timeout, the dedup expiry, the signature
/// tolerance or the rate limit.
#[test]
fn extreme_accepted_durations_and_limits_still_work() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("rt");
    rt.block_on(async {
        const MAX: &str = "315360000s";
        assert_eq!(hookgate::config::MAX_DURATION.as_secs(), 315_360_000);
        let key = b"extreme-key";
        let up = Upstream::start().await;
        let gw = Gateway::start(&format!(
            r#"
[store]
backend = "memory"
dedup_ttl = "{MAX}"
[[route]]
name = "x"
path = "/x"
upstream = "{}"
upstream_timeout = "{MAX}"
dedup_key = "header:webhook-id"
order_key = "/e"
order_time = "/t"
rate_limit = {{ per_second = 4294967295, burst = 4294967295, per_address = true }}
auth = {{ type = "standard-webhooks", secrets = ["{}"], tolerance = "{MAX}" }}
"#,
            up.url("/in"),
            sign::whsec(key)
        ))
        .await;
        let send = |id: &'static str, t: u64| {
            let body = format!(r#"{{"e":"entity","t":{t}}}"#).into_bytes();
            // Signed nine years ago: within the (huge) tolerance.
            let nine_years_ago = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .expect("after epoch")
                .as_secs()
                - 9 * 365 * 86_400;
            let headers = sign::standard_webhooks(key, id, nine_years_ago, &body);
            let mut req = client().post(gw.url("/x")).body(body);
            for (k, v) in headers {
                req = req.header(k, v);
            }
            async move {
                let r = req.send().await.expect("an answer");
                (r.status().as_u16(), verdict(&r))
            }
        };
        assert_eq!(send("m1", 1_700_000_000).await, (200, "forwarded".into()));
        assert_eq!(send("m1", 1_700_000_000).await, (200, "duplicate".into()));
        assert_eq!(send("m2", 1_600_000_000).await, (200, "stale".into()));
        assert_eq!(up.next().await.uri.path(), "/in");
        up.assert_nothing().await;
    });
}

/// A config the compile step accepts must not fail on the first request (config/mod.rs:
/// "it never surfaces on the first request"): durations past the cap are refused naming
/// the key, and the longest accepted one still serves requests.
#[test]
fn an_accepted_read_timeout_never_panics_a_request() {
    use tower::ServiceExt as _;
    let dir = tempfile::tempdir().expect("tmp");
    let config = |timeout: &str| {
        format!(
            "[server]\nread_timeout = \"{timeout}\"\n[store]\nbackend = \"memory\"\n[[route]]\nname = \"r\"\npath = \"/r\"\nupstream = \"file://{}/out.jsonl\"\n",
            dir.path().display()
        )
    };
    let refused = hookgate::config::from_str(&config("18446744073709551615s"), "test")
        .expect_err("an absurd timeout is refused");
    assert!(
        refused.to_string().contains("server.read_timeout"),
        "{refused}"
    );
    let longest = format!("{}s", hookgate::config::MAX_DURATION.as_secs());
    let config = config(&longest);
    let settings = hookgate::config::from_str(&config, "test").expect("the config is accepted");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let app = {
        let _guard = rt.enter();
        hookgate::server::router(hookgate::build(settings).expect("gateway"))
    };
    let mut req = http::Request::post("/r")
        .body(axum::body::Body::from("{}"))
        .expect("request");
    let peer: SocketAddr = "127.0.0.1:1".parse().expect("peer");
    req.extensions_mut()
        .insert(axum::extract::ConnectInfo(peer));
    let answer = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        rt.block_on(app.oneshot(req)).expect("infallible")
    }));
    let answer = answer.expect("the request does not panic");
    assert_eq!(
        answer
            .headers()
            .get("x-hookgate-verdict")
            .map(HeaderValue::as_bytes),
        Some(&b"forwarded"[..])
    );
}

/// Lets the time helpers be checked against a date everybody knows.
#[test]
fn the_reference_calendar_is_right() {
    assert_eq!(days_from_civil(1970, 1, 1), 0);
    assert_eq!(days_from_civil(2000, 3, 1), 11_017);
    assert_eq!(days_from_civil(1969, 12, 31), -1);
    let t =
        SystemTime::UNIX_EPOCH + Duration::from_secs(days_from_civil(2024, 4, 1) as u64 * 86_400);
    assert_eq!(
        t.duration_since(UNIX_EPOCH).expect("after epoch").as_secs(),
        1_711_929_600
    );
}
