//! The gateway's one-pass JSON parse (`pipeline::json::parse`) against serde_json.
//!
//! Invariants, on arbitrary bytes and on generated documents (any depth limit 0..=130,
//! arbitrary whitespace, escaped keys, repeated keys spliced in): `parse` accepts
//! exactly what serde_json accepts, except the documented refusals — invalid UTF-8 (at
//! the offset `str::from_utf8` names), nesting deeper than the limit (which the byte
//! pre-scan `depth_exceeds` confirms), and an object repeating a key (one the reference
//! walk in `oracle.rs` finds) — and then returns the same value; a syntax error points
//! inside the text.
#![no_main]

use hookgate::pipeline::json::{self, JsonError};
use hookgate_fuzz::oracle::repeated_keys;
use hookgate_fuzz::{arb_json, depth};
use libfuzzer_sys::arbitrary::{self, Unstructured};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

/// serde_json with no recursion limit: the reference.
fn reference(bytes: &[u8]) -> Option<Value> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let v = serde::Deserialize::deserialize(&mut de).ok()?;
    de.end().ok()?;
    Some(v)
}

/// Renders `v` with whitespace and escapes chosen by `u`, and maybe a repeated key.
fn render(u: &mut Unstructured<'_>, v: &Value, out: &mut String) -> arbitrary::Result<()> {
    let ws = |u: &mut Unstructured<'_>, out: &mut String| -> arbitrary::Result<()> {
        for _ in 0..u.int_in_range(0..=2)? {
            out.push(*u.choose(&[' ', '\n', '\t', '\r'])?);
        }
        Ok(())
    };
    match v {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                ws(u, out)?;
                render(u, item, out)?;
                ws(u, out)?;
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            let mut first = true;
            for (k, item) in map {
                // Sometimes a member twice, the second time with its key escaped.
                let times = if u.ratio(1, 16)? { 2 } else { 1 };
                for t in 0..times {
                    if !first {
                        out.push(',');
                    }
                    first = false;
                    ws(u, out)?;
                    if t == 1 || u.ratio(1, 8)? {
                        out.push('"');
                        for unit in k.encode_utf16() {
                            out.push_str(&format!("\\u{unit:04x}"));
                        }
                        out.push('"');
                    } else {
                        out.push_str(&serde_json::to_string(k).unwrap_or_default());
                    }
                    ws(u, out)?;
                    out.push(':');
                    ws(u, out)?;
                    render(u, item, out)?;
                }
            }
            out.push('}');
        }
        other => out.push_str(&other.to_string()),
    }
    Ok(())
}

/// The input: text that starts like JSON is parsed as it is, at the config's depth
/// ceiling (the seeds are the schema fixtures, the dictionary's tokens land in them);
/// any other input picks a depth limit and builds a document, or raw bytes.
fn input(data: &[u8]) -> arbitrary::Result<(usize, Vec<u8>)> {
    if data
        .first()
        .is_some_and(|b| b"{[\"-0123456789tfn \n".contains(b))
    {
        return Ok((hookgate::config::JSON_DEPTH_CEILING, data.to_vec()));
    }
    let mut u = Unstructured::new(data);
    let max_depth = u.int_in_range(0..=130)?;
    let text = if u.arbitrary()? {
        let v = arb_json(&mut u, 12)?;
        let mut s = String::new();
        render(&mut u, &v, &mut s)?;
        s.into_bytes()
    } else {
        u.arbitrary()?
    };
    Ok((max_depth, text))
}

fuzz_target!(|data: &[u8]| {
    let Ok((max_depth, text)) = input(data) else {
        return;
    };
    let expected = reference(&text);
    match json::parse(&text, max_depth) {
        Ok(v) => {
            assert_eq!(
                Some(&v),
                expected.as_ref(),
                "accepted what serde_json refuses"
            );
            assert!(depth(&v) <= max_depth);
            assert!(!json::depth_exceeds(&text, max_depth));
            assert!(repeated_keys(&text).is_empty());
        }
        Err(JsonError::NotUtf8 { offset }) => {
            let e = std::str::from_utf8(&text).expect_err("refused as not UTF-8");
            assert_eq!(offset, e.valid_up_to());
        }
        Err(JsonError::TooDeep { max }) => {
            assert_eq!(max, max_depth);
            assert!(json::depth_exceeds(&text, max_depth));
            if let Some(v) = &expected {
                assert!(depth(v) > max_depth);
            }
        }
        Err(JsonError::DuplicateKey { key, line, column }) => {
            assert!(repeated_keys(&text).contains(&key), "{key:?}");
            assert!(line >= 1 && line <= text.iter().filter(|b| **b == b'\n').count() + 1);
            assert!(column <= text.len() + 1);
        }
        Err(JsonError::Syntax { line, message, .. }) => {
            assert!(
                expected.is_none(),
                "refused what serde_json accepts: {message}"
            );
            assert!(line <= text.iter().filter(|b| **b == b'\n').count() + 1);
        }
    }
    // Accepted by the reference, within the limit and with no repeated key: accepted.
    if let Some(v) = &expected
        && depth(v) <= max_depth
        && repeated_keys(&text).is_empty()
    {
        assert!(
            json::parse(&text, max_depth).is_ok(),
            "refused a good document"
        );
    }
});
