//! JSON parsing with a depth bound checked before any tree is built.
//!
//! serde_json has a fixed recursion limit (127) but no configurable one, so the depth is
//! measured first by a byte scan (hand-written: no crate offers a depth-only pre-pass,
//! and the scan is a few lines with no allocation). The scan also powers [`minify`], used
//! by the file sink to put an event on one line without reordering keys or reformatting
//! numbers.

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
    if let Err(e) = std::str::from_utf8(bytes) {
        return Err(JsonError::NotUtf8 {
            offset: e.valid_up_to(),
        });
    }
    if depth_exceeds(bytes, max_depth) {
        return Err(JsonError::TooDeep { max: max_depth });
    }
    // serde_json's own recursion limit (127 levels) would refuse a document exactly at
    // the configured ceiling of 128; the scan above has already bounded the depth, so the
    // parser's limit is switched off rather than allowed to disagree with the config.
    let syntax = |e: serde_json::Error| JsonError::Syntax {
        line: e.line(),
        column: e.column(),
        message: e.to_string(),
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let value = <Value as serde::Deserialize>::deserialize(&mut de).map_err(syntax)?;
    de.end().map_err(syntax)?;
    Ok(value)
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
