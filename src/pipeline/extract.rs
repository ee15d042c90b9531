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
//! Fractional numbers are read through `f64`, so sub-microsecond digits of a fractional
//! epoch are not kept; integers are exact.

use http::{HeaderMap, HeaderName};
use serde_json::Value;
use sha2::Digest as _;

use crate::config::raw::{MissingKey, OrderTimeUnit};

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
    /// Extracts the keys. With `missing = "pass"`, a missing id or order key yields
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
            Some(spec) => match order_value(spec, doc) {
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
            let v = headers.get(name).ok_or_else(|| ExtractError::Missing {
                key: "dedup_key",
                location: location(),
            })?;
            let s = v.to_str().map_err(|_| ExtractError::Invalid {
                key: "dedup_key",
                location: location(),
                reason: "not visible ASCII".into(),
            })?;
            bounded("dedup_key", location, s.trim().to_owned())
        }
        DedupKey::Pointer(p) => key_text("dedup_key", p, doc),
    }
}

/// A string or number at `pointer`, as text.
fn key_text(key: &'static str, pointer: &str, doc: &Value) -> Result<String, ExtractError> {
    let value = doc.pointer(pointer).ok_or_else(|| ExtractError::Missing {
        key,
        location: pointer.to_owned(),
    })?;
    let text = match value {
        Value::String(s) if !s.is_empty() => s.clone(),
        Value::Number(n) => n.to_string(),
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
    if text.len() > MAX_KEY_BYTES || text.is_empty() {
        return Err(ExtractError::Invalid {
            key,
            location: location(),
            reason: format!("must be 1 to {MAX_KEY_BYTES} bytes"),
        });
    }
    Ok(text)
}

fn order_value(spec: &OrderSpec, doc: &Value) -> Result<(String, i64), ExtractError> {
    let entity = key_text("order_key", &spec.entity, doc)?;
    let value = doc
        .pointer(&spec.time)
        .ok_or_else(|| ExtractError::Missing {
            key: "order_time",
            location: spec.time.clone(),
        })?;
    let nanos = event_time(value, spec.unit).map_err(|reason| ExtractError::Invalid {
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
        Value::Number(n) => {
            let millis = |x: f64| match unit {
                OrderTimeUnit::Ms => true,
                OrderTimeUnit::S => false,
                OrderTimeUnit::Auto => x.abs() > 1e11,
            };
            if let Some(i) = n.as_i64() {
                let factor: i64 = if millis(i as f64) {
                    1_000_000
                } else {
                    1_000_000_000
                };
                return i
                    .checked_mul(factor)
                    .ok_or_else(|| "time out of range".to_owned());
            }
            let f = n.as_f64().ok_or_else(|| "not a finite number".to_owned())?;
            let factor = if millis(f) { 1e6 } else { 1e9 };
            let nanos = (f * factor).round();
            if nanos.is_finite() && nanos.abs() < i64::MAX as f64 {
                Ok(nanos as i64)
            } else {
                Err("time out of range".into())
            }
        }
        _ => Err("must be an RFC 3339 string or an epoch number".into()),
    }
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

    #[test]
    fn config_values_parse() {
        assert!(DedupKey::parse("event_id").is_err());
        assert!(DedupKey::parse("header:bad header").is_err());
        assert_eq!(DedupKey::parse("body-sha256"), Ok(DedupKey::BodySha256));
    }
}
