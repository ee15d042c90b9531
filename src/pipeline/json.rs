//! JSON parsing for request bodies: UTF-8, a configurable depth bound, and no repeated
//! keys, checked while the tree is built (see [`parse`]).
//!
//! A byte scan that knows string boundaries (hand-written: a few lines, no allocation)
//! powers [`minify`], used by the file sink to put an event on one line without
//! reordering keys or reformatting numbers, and [`depth_exceeds`], the depth of a text
//! without parsing it.

use std::cell::RefCell;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Why a body is not acceptable JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not UTF-8.
    #[error("body is not valid UTF-8 (first bad byte at offset {offset})")]
    NotUtf8 {
        /// Offset of the first invalid byte.
        offset: usize,
    },
    /// Nested deeper than the limit.
    #[error("JSON nested deeper than {max} levels")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// An object names the same key twice. RFC 8259 leaves the meaning open and parsers
    /// differ (first or last wins), so the gateway could validate and dedup one value
    /// while the upstream acts on the other: such bodies are refused (as I-JSON,
    /// RFC 7493, requires).
    #[error("duplicate object key {key:?} at line {line}, column {column}")]
    DuplicateKey {
        /// The key, as decoded.
        key: String,
        /// 1-based line.
        line: usize,
        /// 1-based column (just after the repeated member).
        column: usize,
    },
    /// Not JSON.
    #[error("invalid JSON at line {line}, column {column}: {message}")]
    Syntax {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser expected.
        message: String,
    },
}

/// Parses `bytes` as one JSON document nested at most `max_depth` levels.
pub fn parse(bytes: &[u8], max_depth: usize) -> Result<Value, JsonError> {
    let text = std::str::from_utf8(bytes).map_err(|e| JsonError::NotUtf8 {
        offset: e.valid_up_to(),
    })?;
    let refusal = RefCell::new(None);
    let refused = |e: serde_json::Error| match refusal.borrow_mut().take() {
        Some(Refusal::TooDeep) => JsonError::TooDeep { max: max_depth },
        Some(Refusal::DuplicateKey(key)) => JsonError::DuplicateKey {
            key,
            line: e.line(),
            column: e.column(),
        },
        None => JsonError::Syntax {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        },
    };
    // From the checked `str`: serde_json's slice reader would validate the UTF-8 of
    // every string again.
    let mut de = serde_json::Deserializer::from_str(text);
    // serde_json's own recursion limit (127 levels) would refuse a document exactly at
    // the configured ceiling of 128. Recursion happens only through `Checked`, which
    // refuses to open a level past `max_depth`, so the parser's limit is switched off
    // rather than allowed to disagree with the config.
    de.disable_recursion_limit();
    let value = Checked {
        refusal: &refusal,
        depth: 0,
        max_depth,
    }
    .deserialize(&mut de)
    .map_err(refused)?;
    de.end().map_err(refused)?;
    Ok(value)
}

/// Why [`Checked`] stopped the parser (serde's error type cannot carry it).
enum Refusal {
    TooDeep,
    DuplicateKey(String),
}

/// Builds a [`Value`] like serde_json's own `Deserialize`, but stops at the first array
/// or object nested past `max_depth` (before descending into it) and at the first object
/// that repeats a key, recording why in `refusal`. Hand-written because serde_json has
/// no configurable depth and no duplicate check, and the candidate crates deserialize
/// into their own types; checking both while the tree is built costs one pass, where a
/// separate depth pre-scan cost another.
#[derive(Clone, Copy)]
struct Checked<'a> {
    refusal: &'a RefCell<Option<Refusal>>,
    /// Nesting level of the value being read: the document itself is 0.
    depth: usize,
    max_depth: usize,
}

impl<'a> Checked<'a> {
    /// The visitor for the members of a container opened at this level, or the refusal.
    fn descend<E: serde::de::Error>(self) -> Result<Checked<'a>, E> {
        let depth = self.depth + 1;
        if depth > self.max_depth {
            *self.refusal.borrow_mut() = Some(Refusal::TooDeep);
            return Err(E::custom("nested too deep"));
        }
        Ok(Checked { depth, ..self })
    }
}

impl<'de> DeserializeSeed<'de> for Checked<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Checked<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let inner = self.descend()?;
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(inner)? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let inner = self.descend()?;
        let mut object = serde_json::Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(inner)?;
            match object.entry(key) {
                serde_json::map::Entry::Vacant(slot) => {
                    slot.insert(value);
                }
                serde_json::map::Entry::Occupied(taken) => {
                    *self.refusal.borrow_mut() = Some(Refusal::DuplicateKey(taken.key().clone()));
                    return Err(serde::de::Error::custom("duplicate object key"));
                }
            }
        }
        Ok(Value::Object(object))
    }
}

/// Walks `bytes`, calling `f(byte, in_string)`, where `in_string` tells whether the byte
/// belongs to a string literal (escapes honoured; a string's opening quote counts as
/// outside, its closing quote as inside). `f` returns false to stop early.
fn scan(bytes: &[u8], mut f: impl FnMut(u8, bool) -> bool) {
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        let inside = in_string;
        if in_string {
            if escaped {
                escaped = false;
            } else if b == b'\\' {
                escaped = true;
            } else if b == b'"' {
                in_string = false;
            }
        } else if b == b'"' {
            in_string = true;
        }
        if !f(b, inside) {
            return;
        }
    }
}

/// True when arrays/objects nest deeper than `max` (strings are skipped, escapes honoured).
pub fn depth_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut exceeded = false;
    scan(bytes, |b, in_string| {
        if !in_string {
            match b {
                b'[' | b'{' => depth += 1,
                b']' | b'}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        exceeded = depth > max;
        !exceeded
    });
    exceeded
}

/// Removes the whitespace outside strings of a valid JSON document, so it fits on one
/// line byte-for-byte otherwise (key order, number spelling and escapes unchanged).
pub fn minify(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    scan(bytes, |b, in_string| {
        if in_string || !matches!(b, b' ' | b'\t' | b'\n' | b'\r') {
            out.push(b);
        }
        true
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_only_structure() {
        assert!(!depth_exceeds(br#"{"a":[1,{"b":"[[[[["}]}"#, 3));
        assert!(depth_exceeds(br#"{"a":[1,{"b":[]}]}"#, 3));
        assert!(!depth_exceeds(br#""\"[[[""#, 1));
    }

    #[test]
    fn parse_errors_are_distinct() {
        assert!(matches!(
            parse(b"\xff{}", 8),
            Err(JsonError::NotUtf8 { offset: 0 })
        ));
        assert!(matches!(
            parse(b"[[[]]]", 2),
            Err(JsonError::TooDeep { max: 2 })
        ));
        assert!(matches!(parse(b"{", 8), Err(JsonError::Syntax { .. })));
        // Keys compare after unescaping; nested objects are checked too; equal keys in
        // different objects are fine.
        for doc in [
            r#"{"a":1,"a":2}"#,
            r#"{"a":1,"\u0061":2}"#,
            r#"[{"x":{"id":1,"id":1}}]"#,
        ] {
            assert!(
                matches!(parse(doc.as_bytes(), 8), Err(JsonError::DuplicateKey { ref key, .. }) if key == "a" || key == "id"),
                "{doc}: {:?}",
                parse(doc.as_bytes(), 8)
            );
        }
        let v = parse(br#"{"a":{"a":1},"b":[{"a":2},{"a":3}]}"#, 8).expect("no duplicate");
        assert_eq!(v["b"][1]["a"], 3);
        assert!(parse(b"{\"a\": 1}", 8).is_ok());
    }

    #[test]
    fn minify_keeps_strings_and_order() {
        let src = b"{ \"z\" : \"a b\\\" c\",\n  \"a\": [1.50, 2e3] }";
        assert_eq!(
            minify(src),
            b"{\"z\":\"a b\\\" c\",\"a\":[1.50,2e3]}".to_vec()
        );
    }
}
