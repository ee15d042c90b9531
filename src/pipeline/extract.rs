//! Extracting the event id, the entity key and the event time from an accepted event.
//!
//! Runs after the schema check, on the parsed document (and the headers, for
//! `header:NAME` keys, read before any credential header is stripped). Values are
//! bounded in length so that a sender cannot grow the store with huge keys.
//!
//! Event times become integer nanoseconds since the Unix epoch: an RFC 3339 string
//! (any offset, fractions kept), or a number of seconds or milliseconds. With unit
//! `auto`, a number above 1e11 is milliseconds (1e11 seconds is the year 5138, while
//! 1e11 milliseconds is March 1973, before any webhook sender existed), otherwise seconds.
//! Numbers are read exactly from their text in the body ([`number`]): a fractional epoch
//! keeps every digit down to the nanosecond (rounded half away from zero below that).
//! Times must fit i64 nanoseconds (the years 1677 to 2262): with unit `auto`, a number of
//! seconds between 9223372036.854775807 (year 2262) and 1e11 is out of range and refused.
//!
//! Numeric ids and entity keys are exact too: the key is the number's canonical decimal
//! text ([`number::Decimal::canonical`]), so `1e2`, `100.0` and `100` are one key while
//! `20000000000000000001` and `20000000000000000002` are two. A string key is its text
//! as is, so the string `"100"` and the number `100` are one key (senders that switch
//! between the two spellings of one id are not told they sent two events), while `"1e2"`
//! and `1e2` are not.

use http::{HeaderMap, HeaderName};
use serde_json::Value;
use sha2::Digest as _;

use crate::config::spec::{MissingKey, OrderTimeUnit};

pub mod number;

use number::Decimal;

/// Longest event id or entity key accepted (bytes).
pub const MAX_KEY_BYTES: usize = 512;

/// Where the event id comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupKey {
    /// A JSON pointer into the body.
    Pointer(String),
    /// A request header (read before credential headers are stripped).
    Header(HeaderName),
    /// The SHA-256 of the raw body, hex.
    BodySha256,
}

impl DedupKey {
    /// Parses the `dedup_key` config value.
    pub fn parse(text: &str) -> Result<Self, String> {
        if text == "body-sha256" {
            return Ok(DedupKey::BodySha256);
        }
        if let Some(name) = text.strip_prefix("header:") {
            return HeaderName::from_bytes(name.trim().as_bytes())
                .map(DedupKey::Header)
                .map_err(|_| format!("{name:?} is not a header name"));
        }
        check_pointer(text).map(|()| DedupKey::Pointer(text.to_owned()))
    }
}

/// The config spelling, as [`DedupKey::parse`] reads it.
impl std::fmt::Display for DedupKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DedupKey::Pointer(p) => f.write_str(p),
            DedupKey::Header(h) => write!(f, "header:{h}"),
            DedupKey::BodySha256 => f.write_str("body-sha256"),
        }
    }
}

/// A JSON pointer is `""` or starts with `/` (RFC 6901).
pub fn check_pointer(text: &str) -> Result<(), String> {
    if text.is_empty() || text.starts_with('/') {
        Ok(())
    } else {
        Err(format!(
            "{text:?} is not a JSON pointer (it must start with '/'), \"header:NAME\" or \"body-sha256\""
        ))
    }
}

/// The ordering keys of a route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSpec {
    /// Pointer to the entity key.
    pub entity: String,
    /// Pointer to the event time.
    pub time: String,
    /// How numbers are read.
    pub unit: OrderTimeUnit,
}

/// What a route extracts from each event.
#[derive(Debug, Clone, Default)]
pub struct EventKeys {
    /// The event id, for dedup.
    pub dedup: Option<DedupKey>,
    /// Entity and time, for ordering.
    pub order: Option<OrderSpec>,
    /// What a missing key does.
    pub missing: MissingKey,
}

/// What was extracted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Extracted {
    /// The event id.
    pub event_id: Option<String>,
    /// The entity key and event time in Unix nanoseconds.
    pub order: Option<(String, i64)>,
}

/// A key could not be extracted.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum ExtractError {
    /// The pointer names nothing in the body (or the header is absent).
    #[error("{key} {location} is missing")]
    Missing {
        /// Which config key (`dedup_key`, `order_key`, `order_time`).
        key: &'static str,
        /// The pointer or header.
        location: String,
    },
    /// The value has the wrong type or form.
    #[error("{key} {location}: {reason}")]
    Invalid {
        /// Which config key.
        key: &'static str,
        /// The pointer or header.
        location: String,
        /// What is wrong.
        reason: String,
    },
}

impl ExtractError {
    /// The JSON pointer (or header) the error is about.
    pub fn location(&self) -> &str {
        match self {
            ExtractError::Missing { location, .. } | ExtractError::Invalid { location, .. } => {
                location
            }
        }
    }

    /// The config key the error is about.
    pub fn key(&self) -> &'static str {
        match self {
            ExtractError::Missing { key, .. } | ExtractError::Invalid { key, .. } => key,
        }
    }
}

impl EventKeys {
    /// Extracts the keys from `doc`, parsed from `raw` (whose text gives numbers their
    /// exact value). With `missing = "pass"`, a missing id or order key yields
    /// `None` for that part instead of an error (a present but malformed value is
    /// still an error: it is a sender bug worth a clear answer).
    pub fn extract(
        &self,
        headers: &HeaderMap,
        raw: &[u8],
        doc: &Value,
    ) -> Result<Extracted, ExtractError> {
        let pass = self.missing == MissingKey::Pass;
        let event_id = match &self.dedup {
            None => None,
            Some(key) => match dedup_value(key, headers, raw, doc) {
                Err(ExtractError::Missing { .. }) if pass => None,
                other => Some(other?),
            },
        };
        let order = match &self.order {
            None => None,
            Some(spec) => match order_value(spec, raw, doc) {
                Err(ExtractError::Missing { .. }) if pass => None,
                other => Some(other?),
            },
        };
        Ok(Extracted { event_id, order })
    }
}

fn dedup_value(
    key: &DedupKey,
    headers: &HeaderMap,
    raw: &[u8],
    doc: &Value,
) -> Result<String, ExtractError> {
    match key {
        DedupKey::BodySha256 => {
            let digest = sha2::Sha256::digest(raw);
            let mut hex = [0u8; 64];
            // 32 bytes always fit 64 hex digits; fail closed rather than panic.
            base16ct::lower::encode_str(&digest, &mut hex)
                .map(str::to_owned)
                .map_err(|_| ExtractError::Invalid {
                    key: "dedup_key",
                    location: "body-sha256".into(),
                    reason: "digest encoding failed".into(),
                })
        }
        DedupKey::Header(name) => {
            // The location is only spelled out when something is wrong.
            let location = || format!("header:{name}");
            let mut values = headers.get_all(name).iter();
            let v = values.next().ok_or_else(|| ExtractError::Missing {
                key: "dedup_key",
                location: location(),
            })?;
            // Two values: the upstream may read the other one as the event's id.
            if values.next().is_some() {
                return Err(ExtractError::Invalid {
                    key: "dedup_key",
                    location: location(),
                    reason: "given more than once".into(),
                });
            }
            let s = v.to_str().map_err(|_| ExtractError::Invalid {
                key: "dedup_key",
                location: location(),
                reason: "not visible ASCII".into(),
            })?;
            bounded("dedup_key", location, s.trim().to_owned())
        }
        DedupKey::Pointer(p) => key_text("dedup_key", p, raw, doc),
    }
}

/// A string or number at `pointer`, as text.
fn key_text(
    key: &'static str,
    pointer: &str,
    raw: &[u8],
    doc: &Value,
) -> Result<String, ExtractError> {
    let value = doc.pointer(pointer).ok_or_else(|| ExtractError::Missing {
        key,
        location: pointer.to_owned(),
    })?;
    let text = match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => exact_number(n, pointer, raw)
            .map(|d| d.canonical())
            .ok_or_else(|| ExtractError::Invalid {
                key,
                location: pointer.to_owned(),
                reason: "number out of range".into(),
            })?,
        Value::Null => {
            return Err(ExtractError::Missing {
                key,
                location: pointer.to_owned(),
            });
        }
        _ => {
            return Err(ExtractError::Invalid {
                key,
                location: pointer.to_owned(),
                reason: "must be a non-empty string or a number".into(),
            });
        }
    };
    bounded(key, || pointer.to_owned(), text)
}

fn bounded(
    key: &'static str,
    location: impl FnOnce() -> String,
    text: String,
) -> Result<String, ExtractError> {
    if text.len() > MAX_KEY_BYTES || text.is_empty() || text.chars().any(is_unsendable) {
        return Err(ExtractError::Invalid {
            key,
            location: location(),
            reason: format!("must be 1 to {MAX_KEY_BYTES} bytes, without control characters"),
        });
    }
    Ok(text)
}

/// A character no HTTP header value may carry (control characters but tab, and DEL):
/// an id holding one could not travel as `X-Hookgate-Event-Id`, so the upstream could
/// not dedup on it.
pub fn is_unsendable(c: char) -> bool {
    (c.is_ascii_control() && c != '\t') || c == '\u{7f}'
}

/// The exact value of the number `n` found at `pointer`. Integers that fit 64 bits are
/// exact in the tree already; any other number is read from its text in `raw`, checked to
/// be the one the tree holds (so a `raw` that is not `doc`'s body falls back to the tree).
fn exact_number(n: &serde_json::Number, pointer: &str, raw: &[u8]) -> Option<Decimal> {
    if let Some(f) = n.as_f64().filter(|_| n.is_f64())
        && let Some(text) = std::str::from_utf8(raw)
            .ok()
            .and_then(|r| number::raw_at(r, pointer))
        && text.parse::<f64>().ok() == Some(f)
    {
        return Decimal::parse(text);
    }
    Decimal::parse(&n.to_string())
}

fn order_value(spec: &OrderSpec, raw: &[u8], doc: &Value) -> Result<(String, i64), ExtractError> {
    let entity = key_text("order_key", &spec.entity, raw, doc)?;
    let value = doc
        .pointer(&spec.time)
        .ok_or_else(|| ExtractError::Missing {
            key: "order_time",
            location: spec.time.clone(),
        })?;
    let exact = match value {
        Value::Number(n) => Some(exact_number(n, &spec.time, raw)),
        _ => None,
    };
    let read = match exact {
        Some(Some(d)) => decimal_time(&d, spec.unit),
        Some(None) => Err("time out of range".to_owned()),
        None => event_time(value, spec.unit),
    };
    let nanos = read.map_err(|reason| ExtractError::Invalid {
        key: "order_time",
        location: spec.time.clone(),
        reason,
    })?;
    Ok((entity, nanos))
}

/// Reads an event time as Unix nanoseconds.
pub fn event_time(value: &Value, unit: OrderTimeUnit) -> Result<i64, String> {
    match value {
        Value::String(s) => {
            let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
                .map_err(|e| format!("{s:?} is not an RFC 3339 time ({e})"))?;
            i64::try_from(t.unix_timestamp_nanos()).map_err(|_| "time out of range".to_owned())
        }
        // A number's text (serde_json prints an integer exactly and an f64 as the
        // shortest decimal that reads back as it), read as an exact decimal.
        Value::Number(n) => Decimal::parse(&n.to_string())
            .ok_or_else(|| "time out of range".to_owned())
            .and_then(|d| decimal_time(&d, unit)),
        _ => Err("must be an RFC 3339 string or an epoch number".into()),
    }
}

/// An epoch number as Unix nanoseconds, exactly (rounded half away from zero below a
/// nanosecond).
fn decimal_time(d: &Decimal, unit: OrderTimeUnit) -> Result<i64, String> {
    let millis = match unit {
        OrderTimeUnit::Ms => true,
        OrderTimeUnit::S => false,
        // 1e11 seconds is the year 5138; 1e11 milliseconds is March 1973.
        OrderTimeUnit::Auto => d.abs_exceeds_power_of_ten(11),
    };
    d.scaled_i64(if millis { 6 } else { 9 })
        .ok_or_else(|| "time out of range".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keys(dedup: &str, missing: MissingKey) -> EventKeys {
        EventKeys {
            dedup: Some(DedupKey::parse(dedup).expect("key")),
            order: Some(OrderSpec {
                entity: "/incident/incident_id".into(),
                time: "/event_time".into(),
                unit: OrderTimeUnit::Auto,
            }),
            missing,
        }
    }

    #[test]
    fn times_in_three_spellings_agree() {
        let s = event_time(&json!(1712000000), OrderTimeUnit::Auto).expect("s");
        let ms = event_time(&json!(1712000000000i64), OrderTimeUnit::Auto).expect("ms");
        let rfc = event_time(&json!("2024-04-01T19:33:20Z"), OrderTimeUnit::Auto).expect("rfc");
        let off =
            event_time(&json!("2024-04-01T21:33:20+02:00"), OrderTimeUnit::Auto).expect("off");
        assert_eq!(s, ms);
        assert_eq!(s, rfc);
        assert_eq!(s, off);
        assert_eq!(
            event_time(&json!(1712000000.5), OrderTimeUnit::S).expect("frac"),
            s + 500_000_000
        );
        assert_eq!(
            event_time(&json!(5), OrderTimeUnit::Ms).expect("ms"),
            5_000_000
        );
        assert!(event_time(&json!("yesterday"), OrderTimeUnit::Auto).is_err());
        assert!(event_time(&json!(true), OrderTimeUnit::Auto).is_err());
        assert!(event_time(&json!(i64::MAX), OrderTimeUnit::S).is_err());
        assert!(event_time(&json!(1e300), OrderTimeUnit::S).is_err());
    }

    /// The range the README states: i64 nanoseconds, so with `auto` the seconds past
    /// the year 2262 up to 1e11 are refused, and milliseconds start above 1e11.
    #[test]
    fn numeric_time_range_is_the_documented_one() {
        let read = |raw: &str, unit| {
            let doc: Value = serde_json::from_str(raw).expect("json");
            let spec = OrderSpec {
                entity: "/e".into(),
                time: "/t".into(),
                unit,
            };
            order_value(&spec, raw.as_bytes(), &doc).map(|(_, t)| t)
        };
        let auto = OrderTimeUnit::Auto;
        assert_eq!(
            read(r#"{"e":1,"t":9223372036.854775807}"#, auto),
            Ok(i64::MAX)
        );
        assert_eq!(
            read(r#"{"e":1,"t":-9223372036.854775808}"#, auto),
            Ok(i64::MIN)
        );
        for t in ["9223372036.854775808", "9223372037", "1e11", "-1e11"] {
            let raw = format!(r#"{{"e":1,"t":{t}}}"#);
            assert!(read(&raw, auto).is_err(), "{t}");
        }
        assert_eq!(
            read(r#"{"e":1,"t":100000000001}"#, auto),
            Ok(100_000_000_001_000_000)
        );
        assert_eq!(
            read(r#"{"e":1,"t":9223372036854.775807}"#, auto),
            Ok(i64::MAX)
        );
        assert!(read(r#"{"e":1,"t":9223372036854.775808}"#, auto).is_err());
        assert!(read(r#"{"e":1,"t":9223372036854.775808}"#, OrderTimeUnit::S).is_err());
    }

    #[test]
    fn extracts_pointer_header_and_hash() {
        let doc = json!({"event_id": "e1", "event_time": 1712000000000i64, "incident": {"incident_id": 42}});
        let mut h = HeaderMap::new();
        h.insert("webhook-id", "msg_1".parse().expect("v"));
        let got = keys("/event_id", MissingKey::Reject)
            .extract(&h, b"{}", &doc)
            .expect("ok");
        assert_eq!(got.event_id.as_deref(), Some("e1"));
        assert_eq!(
            got.order,
            Some(("42".to_owned(), 1_712_000_000_000_000_000))
        );
        let got = keys("header:webhook-id", MissingKey::Reject)
            .extract(&h, b"{}", &doc)
            .expect("ok");
        assert_eq!(got.event_id.as_deref(), Some("msg_1"));
        let got = keys("body-sha256", MissingKey::Reject)
            .extract(&h, b"abc", &doc)
            .expect("ok");
        assert_eq!(
            got.event_id.as_deref(),
            Some("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        );
    }

    #[test]
    fn missing_rejects_or_passes() {
        let doc = json!({"incident": {}});
        let e = keys("/event_id", MissingKey::Reject)
            .extract(&HeaderMap::new(), b"{}", &doc)
            .expect_err("missing");
        assert_eq!(e.key(), "dedup_key");
        assert_eq!(e.location(), "/event_id");
        let got = keys("/event_id", MissingKey::Pass)
            .extract(&HeaderMap::new(), b"{}", &doc)
            .expect("pass");
        assert_eq!(got, Extracted::default());
        // Present but malformed is an error even with pass.
        let bad = json!({"event_id": {"x": 1}});
        assert!(
            keys("/event_id", MissingKey::Pass)
                .extract(&HeaderMap::new(), b"{}", &bad)
                .is_err()
        );
        let long = json!({"event_id": "x".repeat(MAX_KEY_BYTES + 1)});
        assert!(
            keys("/event_id", MissingKey::Pass)
                .extract(&HeaderMap::new(), b"{}", &long)
                .is_err()
        );
    }

    /// An id that could not travel as `X-Hookgate-Event-Id` (CR, LF, NUL, DEL) is
    /// refused; a tab, which a header value may hold, is not.
    #[test]
    fn ids_with_control_characters_are_refused() {
        for bad in ["a\r\nX-Evil: 1", "a\u{0}b", "a\u{7f}"] {
            let doc = json!({ "event_id": bad });
            assert!(
                keys("/event_id", MissingKey::Pass)
                    .extract(&HeaderMap::new(), b"{}", &doc)
                    .is_err(),
                "{bad:?} accepted"
            );
        }
        let doc = json!({"event_id": "a\tb"});
        assert!(
            keys("/event_id", MissingKey::Pass)
                .extract(&HeaderMap::new(), b"{}", &doc)
                .is_ok()
        );
    }

    #[test]
    fn config_values_parse() {
        assert!(DedupKey::parse("event_id").is_err());
        assert!(DedupKey::parse("header:bad header").is_err());
        assert_eq!(DedupKey::parse("body-sha256"), Ok(DedupKey::BodySha256));
    }
}
