//! JSON parsing, minifying, key extraction and event times on arbitrary bytes.
//!
//! Invariants: `parse` refuses for the right reason (not UTF-8 at the right offset, too
//! deep, or what serde_json refuses too); an accepted document respects the depth bound
//! and the depth pre-scan is tight; `minify` keeps the document; for every node (up to a
//! bound), a JSON pointer to it extracts exactly what the key rule says (a non-empty
//! string or a number, at most MAX_KEY_BYTES, a number exact to its text; null is
//! missing), under both missing-key
//! rules, and integer event times are exact in their unit.
#![no_main]

use hookgate::config::spec::{MissingKey, OrderTimeUnit};
use hookgate::pipeline::extract::{
    DedupKey, EventKeys, ExtractError, MAX_KEY_BYTES, OrderSpec, event_time, is_unsendable,
};
use hookgate::pipeline::json::{self, JsonError};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

// The reference models the stable property tests use (this target needs only some).
#[allow(dead_code)]
#[path = "../../tests/it/oracle.rs"]
mod oracle;

const MAX_DEPTH: usize = 32;
/// Nodes examined per document: bounds the work per input.
const MAX_NODES: usize = 64;
const UNITS: [OrderTimeUnit; 3] = [OrderTimeUnit::Auto, OrderTimeUnit::S, OrderTimeUnit::Ms];

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

/// Every node with its JSON pointer (RFC 6901 escaping), breadth first, at most `max`.
fn nodes(doc: &Value, max: usize) -> Vec<(String, &Value)> {
    let mut out = vec![(String::new(), doc)];
    let mut i = 0;
    while i < out.len() && out.len() < max {
        let (path, v) = (out[i].0.clone(), out[i].1);
        match v {
            Value::Array(a) => {
                for (j, child) in a.iter().enumerate() {
                    out.push((format!("{path}/{j}"), child));
                }
            }
            Value::Object(o) => {
                for (k, child) in o {
                    let k = k.replace('~', "~0").replace('/', "~1");
                    out.push((format!("{path}/{k}"), child));
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.truncate(max);
    out
}

/// The key rule written out: `Ok(None)` is missing, `Err(())` is invalid.
fn reference_key(v: &Value) -> Result<Option<String>, ()> {
    let text = match v {
        Value::Null => return Ok(None),
        Value::String(s) if !s.is_empty() => s.clone(),
        // The tree rounded this number to an f64; the key is the exact decimal of its
        // text in the body, checked below against the f64 (empty: no key is empty).
        Value::Number(n) if n.is_f64() => return Ok(Some(String::new())),
        Value::Number(n) => n.to_string(),
        _ => return Err(()),
    };
    if text.len() > MAX_KEY_BYTES || text.chars().any(is_unsendable) {
        return Err(());
    }
    Ok(Some(text))
}

fn check_node(doc: &Value, pointer: &str, node: &Value, raw: &[u8]) {
    assert_eq!(doc.pointer(pointer), Some(node), "pointer {pointer:?}");
    let headers = http::HeaderMap::new();
    let expected = reference_key(node);
    for missing in [MissingKey::Pass, MissingKey::Reject] {
        let keys = EventKeys {
            dedup: Some(DedupKey::Pointer(pointer.to_owned())),
            order: None,
            missing,
        };
        let got = keys.extract(&headers, raw, doc).map(|e| e.event_id);
        match (&expected, got) {
            (Ok(Some(e)), Ok(Some(g))) if e.is_empty() => {
                assert_eq!(g.parse::<f64>().ok(), node.as_f64(), "{pointer:?}: {g}")
            }
            (Ok(Some(e)), Err(ExtractError::Invalid { .. })) if e.is_empty() => {}
            (Ok(Some(e)), Ok(Some(g))) => assert_eq!(e, &g),
            (Ok(None), Ok(None)) => assert_eq!(missing, MissingKey::Pass),
            (Ok(None), Err(ExtractError::Missing { .. })) => {
                assert_eq!(missing, MissingKey::Reject)
            }
            (Err(()), Err(ExtractError::Invalid { .. })) => {}
            (e, g) => panic!("{pointer:?} on {node:?}: expected {e:?}, got {g:?}"),
        }
    }
    for unit in UNITS {
        let got = event_time(node, unit);
        if let Some(i) = node.as_i64() {
            let ms = match unit {
                OrderTimeUnit::Ms => true,
                OrderTimeUnit::S => false,
                OrderTimeUnit::Auto => i.unsigned_abs() > 100_000_000_000,
            };
            let expected = i.checked_mul(if ms { 1_000_000 } else { 1_000_000_000 });
            assert_eq!(got.as_ref().ok(), expected.as_ref(), "{i} as {unit:?}");
        } else if !node.is_number() && !node.is_string() {
            assert!(got.is_err(), "{node:?} read as a time");
        }
        // The order point of a route keyed on this node: entity and time both here.
        let keys = EventKeys {
            dedup: None,
            order: Some(OrderSpec {
                entity: pointer.to_owned(),
                time: pointer.to_owned(),
                unit,
            }),
            missing: MissingKey::Reject,
        };
        let order = keys.extract(&headers, raw, doc).map(|e| e.order);
        if let (Ok(Some(entity)), Ok(nanos)) = (&expected, &got) {
            if entity.is_empty() {
                // An f64 node: the entity is the exact decimal of its text, checked as
                // the id is above (or refused as invalid, like the id).
                match &order {
                    Ok(Some((g, n))) => {
                        // The key reads the exact text; `event_time` on the tree reads
                        // the f64: equal up to the f64's rounding.
                        let tol = (nanos.unsigned_abs() >> 40).max(1_000);
                        assert!(n.abs_diff(*nanos) <= tol, "{pointer:?}: {n} vs {nanos}");
                        assert_eq!(g.parse::<f64>().ok(), node.as_f64(), "{pointer:?}: {g}");
                    }
                    Err(ExtractError::Invalid { .. }) => {}
                    other => panic!("{pointer:?}: {other:?}"),
                }
            } else {
                assert_eq!(order, Ok(Some((entity.clone(), *nanos))));
            }
        } else if !matches!(&expected, Ok(Some(e)) if e.is_empty()) {
            // (An f64 node is left out: its exact text and its f64 may fall on either
            // side of the auto unit's 1e11 boundary.)
            assert!(order.is_err(), "{pointer:?}: {order:?}");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let doc = match json::parse(data, MAX_DEPTH) {
        Err(JsonError::NotUtf8 { offset }) => {
            let e = std::str::from_utf8(data).expect_err("refused as not UTF-8");
            assert_eq!(offset, e.valid_up_to());
            return;
        }
        Err(JsonError::TooDeep { max }) => {
            assert_eq!(max, MAX_DEPTH);
            assert!(json::depth_exceeds(data, MAX_DEPTH));
            return;
        }
        Err(JsonError::Syntax { .. }) => {
            assert!(serde_json::from_slice::<Value>(data).is_err());
            return;
        }
        Err(JsonError::DuplicateKey { key, .. }) => {
            assert!(oracle::repeated_keys(data).contains(&key), "{key:?}");
            return;
        }
        Ok(doc) => doc,
    };
    assert!(oracle::repeated_keys(data).is_empty());
    // Depth: within the bound, and the pre-scan is tight from below.
    let d = depth(&doc);
    assert!(d <= MAX_DEPTH);
    assert!(!json::depth_exceeds(data, MAX_DEPTH));
    if d > 0 {
        assert!(json::depth_exceeds(data, d - 1), "depth {d} not seen");
    }
    assert_eq!(
        serde_json::from_slice::<Value>(data).ok().as_ref(),
        Some(&doc)
    );

    // Minify keeps the document and leaves no layout whitespace.
    let min = json::minify(data);
    let back: Value = serde_json::from_slice(&min).expect("minified JSON parses");
    assert_eq!(back, doc);
    assert_eq!(json::minify(&min), min);
    assert!(!min.iter().any(|b| matches!(b, b'\n' | b'\r' | b'\t')));

    // Keys and times at every node.
    for (pointer, node) in nodes(&doc, MAX_NODES) {
        check_node(&doc, &pointer, node, data);
    }
    // A pointer to nothing is missing.
    let absent = "/\u{0}absent";
    if doc.pointer(absent).is_none() {
        let keys = EventKeys {
            dedup: Some(DedupKey::Pointer(absent.into())),
            order: None,
            missing: MissingKey::Pass,
        };
        let got = keys.extract(&http::HeaderMap::new(), data, &doc);
        assert_eq!(got.map(|e| e.event_id), Ok(None));
    }
});
