//! Phase 3, events: a verified body becomes the events it carries.
//!
//! A route with `body = "json"` and no `split` (the default) reads one JSON document, one
//! event. A batch route (`body = "ndjson" | "auto"`, or `split = true`) reads elements:
//! the items of a top-level JSON array, or the lines of an NDJSON body (Wallarm's
//! `format = "jsonl"`). Each element keeps its exact bytes, so a split batch forwards
//! each element byte for byte as it arrived inside the batch, and every later phase
//! already works on one event at a time.

use bytes::Bytes;
use serde_json::Value;
use serde_json::value::RawValue;

use super::json::{self, JsonError};
use super::verify::Verified;
use crate::config::spec::BodyFormat;
use crate::error::GatewayError;

/// Most elements one batch may hold: each becomes a store step and, split, a delivery.
pub const MAX_BATCH_ELEMENTS: usize = 10_000;

/// One event: its bytes (forwarded as they are) and its parsed JSON.
#[derive(Debug)]
pub struct Event {
    /// The bytes the upstream receives.
    pub bytes: Bytes,
    /// The parsed document, for the schema check and key extraction.
    pub document: Value,
}

/// What a body carries.
#[derive(Debug)]
pub enum Events {
    /// One document (a route that does not take batches).
    One(Event),
    /// A batch: the whole body and its elements, in order.
    Batch(Batch),
}

/// A batch body.
#[derive(Debug)]
pub struct Batch {
    /// The body as received (forwarded whole when the route does not split).
    pub bytes: Bytes,
    /// The elements, in order; never empty.
    pub elements: Vec<Event>,
}

/// Why a batch body was refused (400 `invalid_json`).
#[derive(Debug, thiserror::Error)]
pub enum BatchError {
    /// One element is not acceptable JSON.
    #[error("element {index} (line {line}): {error}")]
    Element {
        /// 0-based element index.
        index: usize,
        /// 1-based line of the body it starts on.
        line: usize,
        /// Why.
        error: JsonError,
    },
    /// No element at all.
    #[error("the batch holds no element")]
    Empty,
    /// More than [`MAX_BATCH_ELEMENTS`].
    #[error("the batch holds more than {MAX_BATCH_ELEMENTS} elements")]
    TooMany,
}

/// The one event of `verified`, JSON depth-bounded before any tree is built.
pub fn one(verified: Verified, max_depth: usize) -> Result<Event, GatewayError> {
    let document = json::parse(&verified.bytes, max_depth)?;
    Ok(Event {
        bytes: verified.bytes,
        document,
    })
}

/// The events of `verified` for a route reading `format`; `batches` says whether the
/// route takes batches at all.
pub fn read(
    verified: Verified,
    format: BodyFormat,
    batches: bool,
    max_depth: usize,
) -> Result<Events, GatewayError> {
    if !batches {
        return one(verified, max_depth).map(Events::One);
    }
    let bytes = verified.bytes;
    let elements = match format {
        BodyFormat::Json => document_elements(&bytes, max_depth)?,
        BodyFormat::Ndjson => lines(&bytes, max_depth)?,
        // One document if it is one; else NDJSON when every line parses; else the
        // single document's error, which says where it stopped being JSON.
        BodyFormat::Auto => match document_elements(&bytes, max_depth) {
            Ok(elements) => elements,
            Err(single) => match lines(&bytes, max_depth) {
                Ok(elements) if elements.len() > 1 => elements,
                _ => return Err(single),
            },
        },
    };
    if elements.is_empty() {
        return Err(BatchError::Empty.into());
    }
    Ok(Events::Batch(Batch { bytes, elements }))
}

/// One JSON document: a top-level array's items, else the document itself.
fn document_elements(bytes: &Bytes, max_depth: usize) -> Result<Vec<Event>, GatewayError> {
    let document = json::parse(bytes, max_depth)?;
    let Value::Array(items) = document else {
        return Ok(vec![Event {
            bytes: bytes.clone(),
            document,
        }]);
    };
    if items.len() > MAX_BATCH_ELEMENTS {
        return Err(BatchError::TooMany.into());
    }
    // The items' exact text: the document parsed above (depth-bounded, duplicate keys
    // refused), so this second pass over the same bytes cannot fail on them.
    let text = std::str::from_utf8(bytes).map_err(|_| GatewayError::Internal("batch text"))?;
    let raws: Vec<&RawValue> = serde_json::from_str(text)
        .map_err(|_| GatewayError::Internal("batch items unreadable after parse"))?;
    if raws.len() != items.len() {
        return Err(GatewayError::Internal("batch items miscounted"));
    }
    raws.into_iter()
        .zip(items)
        .map(|(raw, document)| {
            let bytes = sub_bytes(bytes, raw.get().as_bytes())
                .ok_or(GatewayError::Internal("batch item outside the body"))?;
            Ok(Event { bytes, document })
        })
        .collect()
}

/// NDJSON: every non-blank line is one element (a trailing `\r` is not part of it).
fn lines(bytes: &Bytes, max_depth: usize) -> Result<Vec<Event>, GatewayError> {
    let mut elements = Vec::new();
    for (n, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.trim_ascii().is_empty() {
            continue;
        }
        if elements.len() == MAX_BATCH_ELEMENTS {
            return Err(BatchError::TooMany.into());
        }
        let document = json::parse(line, max_depth).map_err(|error| BatchError::Element {
            index: elements.len(),
            line: n + 1,
            error,
        })?;
        let bytes =
            sub_bytes(bytes, line).ok_or(GatewayError::Internal("batch line outside the body"))?;
        elements.push(Event { bytes, document });
    }
    Ok(elements)
}

/// `part` (a slice of `whole`'s memory) as a zero-copy `Bytes`.
fn sub_bytes(whole: &Bytes, part: &[u8]) -> Option<Bytes> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    whole.get(start..end)?;
    Some(whole.slice(start..end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(body: &'static [u8], format: BodyFormat) -> Result<Vec<String>, String> {
        let verified = Verified {
            bytes: Bytes::from_static(body),
        };
        match read(verified, format, true, 16) {
            Ok(Events::Batch(b)) => Ok(b
                .elements
                .iter()
                .map(|e| String::from_utf8_lossy(&e.bytes).into_owned())
                .collect()),
            Ok(Events::One(_)) => Err("one".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn array_items_keep_their_exact_bytes() {
        let got = batch(b"[ {\"a\": 1} ,\n{\"b\" :[2, 3]}]", BodyFormat::Json).expect("batch");
        assert_eq!(got, ["{\"a\": 1}", "{\"b\" :[2, 3]}"]);
        let got = batch(b"{\"a\":1}", BodyFormat::Json).expect("one document");
        assert_eq!(got, ["{\"a\":1}"]);
    }

    #[test]
    fn ndjson_lines_skip_blanks_and_carriage_returns() {
        let got = batch(b"{\"a\":1}\r\n\n  \n{\"b\":2}", BodyFormat::Ndjson).expect("batch");
        assert_eq!(got, ["{\"a\":1}", "{\"b\":2}"]);
        let e = batch(b"{\"a\":1}\n\n{\"b\":", BodyFormat::Ndjson).expect_err("bad line");
        assert!(e.starts_with("element 1 (line 3)"), "{e}");
    }

    #[test]
    fn auto_takes_a_document_else_ndjson() {
        assert_eq!(
            batch(b"[{\"a\":1},{\"b\":2}]", BodyFormat::Auto).expect("array"),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert_eq!(
            batch(b"{\"a\":1}\n{\"b\":2}\n", BodyFormat::Auto).expect("ndjson"),
            ["{\"a\":1}", "{\"b\":2}"]
        );
        assert!(batch(b"{\"a\":1}\n{\"b\":", BodyFormat::Auto).is_err());
        assert!(batch(b"[]", BodyFormat::Auto).is_err());
    }
}
