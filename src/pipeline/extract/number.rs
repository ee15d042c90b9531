//! Exact JSON numbers for event ids, entity keys and event times.
//!
//! serde_json keeps an integer exactly only up to `u64`/`i64`; anything else (a longer
//! integer, a fraction, an exponent) becomes an `f64`, where `20000000000000000001` and
//! `20000000000000000002` are one value and long fractions collide. Keys and times
//! therefore go back to the number's text in the body ([`raw_at`], only for numbers the
//! tree holds as `f64`, so the common integer id costs nothing extra) and read it as an
//! exact decimal ([`Decimal`]).
//!
//! The crate-wide alternative, serde_json's `arbitrary_precision` feature, changes
//! `Value::Number` for every user of serde_json in the build (the schema validator
//! included) and makes every number an allocated string; the second, allocation-free
//! scan of one body for one pointer is local and cheaper.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// Most exponent digits accepted: beyond this a number is refused rather than risk two
/// distinct exponents being clamped into one key.
const MAX_EXPONENT_DIGITS: usize = 15;

/// A JSON number as an exact decimal: `(-1)^negative × digits × 10^exponent`, `digits`
/// without leading or trailing zeros (empty for zero, which is never negative).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decimal {
    negative: bool,
    digits: String,
    exponent: i64,
}

impl Decimal {
    /// Reads JSON number text (RFC 8259 grammar); `None` if it is not one or its
    /// exponent is absurdly long.
    pub fn parse(text: &str) -> Option<Decimal> {
        let (negative, rest) = match text.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, text),
        };
        let mantissa_end = rest.find(['e', 'E']).unwrap_or(rest.len());
        let (mantissa, exp_text) = rest.split_at(mantissa_end);
        let (int, frac) = match mantissa.split_once('.') {
            Some((i, f)) => (i, Some(f)),
            None => (mantissa, None),
        };
        let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int) || (int.len() > 1 && int.starts_with('0')) {
            return None;
        }
        let frac = match frac {
            Some(f) if !all_digits(f) => return None,
            Some(f) => f,
            None => "",
        };
        let mut exponent: i64 = 0;
        if let Some(e) = exp_text.get(1..) {
            let (sign, digits) = match e.as_bytes().first() {
                Some(b'-') => (-1, e.get(1..).unwrap_or_default()),
                Some(b'+') => (1, e.get(1..).unwrap_or_default()),
                _ => (1, e),
            };
            if !all_digits(digits) {
                return None;
            }
            let digits = digits.trim_start_matches('0');
            if digits.len() > MAX_EXPONENT_DIGITS {
                return None;
            }
            exponent = sign * digits.parse::<i64>().unwrap_or(0);
        }
        let frac_len = i64::try_from(frac.len()).ok()?;
        let mut digits: String = int.chars().chain(frac.chars()).collect();
        exponent -= frac_len;
        let trimmed = digits.trim_end_matches('0').len();
        exponent += i64::try_from(digits.len() - trimmed).ok()?;
        digits.truncate(trimmed);
        let digits = digits.trim_start_matches('0').to_owned();
        if digits.is_empty() {
            return Some(Decimal {
                negative: false,
                digits,
                exponent: 0,
            });
        }
        Some(Decimal {
            negative,
            digits,
            exponent,
        })
    }

    /// One spelling per value: integers in plain digits (as serde_json prints integers
    /// that fit 64 bits), fractions in plain decimal notation while short, everything
    /// else as `d.ddde±N`. Equal values give equal text; different values never do.
    pub fn canonical(&self) -> String {
        if self.digits.is_empty() {
            return "0".to_owned();
        }
        let sign = if self.negative { "-" } else { "" };
        let n = self.digits.len() as i64;
        // Position of the decimal point counted from the left of `digits`.
        let point = n + self.exponent;
        if self.exponent >= 0 && point <= 64 {
            format!(
                "{sign}{}{}",
                self.digits,
                "0".repeat(self.exponent as usize)
            )
        } else if self.exponent < 0 && point > 0 {
            let (int, frac) = self.digits.split_at(point as usize);
            format!("{sign}{int}.{frac}")
        } else if self.exponent < 0 && point > -16 {
            format!("{sign}0.{}{}", "0".repeat((-point) as usize), self.digits)
        } else {
            let (first, rest) = self.digits.split_at(1);
            let dot = if rest.is_empty() { "" } else { "." };
            format!("{sign}{first}{dot}{rest}e{}", point - 1)
        }
    }

    /// Whether the magnitude is above `10^power`.
    pub fn abs_exceeds_power_of_ten(&self, power: i64) -> bool {
        if self.digits.is_empty() {
            return false;
        }
        // |x| lies in [10^(point-1), 10^point); it equals 10^(point-1) only for digits "1".
        let point = self.digits.len() as i64 + self.exponent;
        point - 1 > power || (point - 1 == power && self.digits != "1")
    }

    /// The value times `10^scale`, rounded half away from zero, if it fits an `i64`.
    pub fn scaled_i64(&self, scale: i64) -> Option<i64> {
        if self.digits.is_empty() {
            return Some(0);
        }
        let shift = self.exponent.checked_add(scale)?;
        let magnitude: i128 = if shift >= 0 {
            let base: i128 = self.digits.parse().ok()?;
            let factor = 10i128.checked_pow(u32::try_from(shift).ok()?)?;
            base.checked_mul(factor)?
        } else {
            let drop = usize::try_from(-shift).ok()?;
            let keep = self.digits.len().saturating_sub(drop);
            let (kept, dropped) = self.digits.split_at(keep);
            let base: i128 = if kept.is_empty() {
                0
            } else {
                kept.parse().ok()?
            };
            // `dropped` is shorter than `drop` when the value is below 10^-1 of a unit:
            // then the first dropped digit is an implied zero.
            let round_up =
                dropped.len() == drop && dropped.as_bytes().first().is_some_and(|&d| d >= b'5');
            base.checked_add(i128::from(round_up))?
        };
        let signed = if self.negative { -magnitude } else { magnitude };
        i64::try_from(signed).ok()
    }
}

/// The text of the value at `pointer` (RFC 6901) in the JSON document `raw`, or `None`
/// when `raw` is not JSON or names nothing there. `raw` has already been parsed with its
/// depth checked, so the scan's recursion is bounded by that check.
pub fn raw_at<'a>(raw: &'a str, pointer: &str) -> Option<&'a str> {
    let tokens: Vec<String> = if pointer.is_empty() {
        Vec::new()
    } else {
        pointer
            .strip_prefix('/')?
            .split('/')
            .map(|t| t.replace("~1", "/").replace("~0", "~"))
            .collect()
    };
    let mut de = serde_json::Deserializer::from_str(raw);
    de.disable_recursion_limit();
    let found = Seek { tokens: &tokens }.deserialize(&mut de).ok()?;
    de.end().ok()?;
    found.map(RawValue::get)
}

/// Walks to the value `tokens` name, skipping everything else without building it.
struct Seek<'t> {
    tokens: &'t [String],
}

impl<'de> DeserializeSeed<'de> for Seek<'_> {
    type Value = Option<&'de RawValue>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        if self.tokens.is_empty() {
            return serde::Deserialize::deserialize(d).map(Some);
        }
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seek<'_> {
    type Value = Option<&'de RawValue>;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = match self.tokens.split_first() {
            Some(x) => x,
            None => return Ok(None),
        };
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if found.is_none() && key == first.as_str() {
                found = map.next_value_seed(Seek { tokens: rest })?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let (first, rest) = match self.tokens.split_first() {
            Some(x) => x,
            None => return Ok(None),
        };
        // RFC 6901 array indexes: decimal, no sign, no leading zero.
        let index = if first.starts_with('+') || (first.len() > 1 && first.starts_with('0')) {
            None
        } else {
            first.parse::<usize>().ok()
        };
        let mut found = None;
        let mut i = 0usize;
        loop {
            let more = if Some(i) == index {
                seq.next_element_seed(Seek { tokens: rest })?
                    .map(|f| found = f)
            } else {
                seq.next_element::<IgnoredAny>()?.map(|_| ())
            };
            if more.is_none() {
                return Ok(found);
            }
            i = i.saturating_add(1);
        }
    }

    fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }

    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn canon(t: &str) -> String {
        Decimal::parse(t).expect(t).canonical()
    }

    #[test]
    fn equal_values_share_one_spelling_and_distinct_ones_do_not() {
        for (a, b) in [
            ("100", "1e2"),
            ("100", "100.000"),
            ("0", "-0.0"),
            ("0.5", "5e-1"),
            ("1712000000", "1.712E9"),
        ] {
            assert_eq!(canon(a), canon(b), "{a} {b}");
        }
        for (a, b) in [
            ("20000000000000000001", "20000000000000000002"),
            ("0.10000000000000000001", "0.10000000000000000002"),
            ("1e400", "1e401"),
            ("-1", "1"),
        ] {
            assert_ne!(canon(a), canon(b), "{a} {b}");
        }
        assert_eq!(canon("20000000000000000002"), "20000000000000000002");
        assert_eq!(canon("12.50"), "12.5");
        assert_eq!(canon("1.5e-7"), "0.00000015");
        assert_eq!(canon("-1.25e300"), "-1.25e300");
        assert!(Decimal::parse("01").is_none());
        assert!(Decimal::parse("1.").is_none());
        assert!(Decimal::parse("1e").is_none());
        assert!(Decimal::parse("1e1000000000000000000").is_none());
    }

    #[test]
    fn scaling_is_exact_and_rounds_half_away_from_zero() {
        let d = |t: &str| Decimal::parse(t).expect(t);
        assert_eq!(
            d("1712000000.123456789").scaled_i64(9),
            Some(1_712_000_000_123_456_789)
        );
        assert_eq!(d("0.0000000005").scaled_i64(9), Some(1));
        assert_eq!(d("-0.0000000005").scaled_i64(9), Some(-1));
        assert_eq!(d("0.00000000049").scaled_i64(9), Some(0));
        assert_eq!(d("1e-30").scaled_i64(9), Some(0));
        assert_eq!(d("9223372036.854775807").scaled_i64(9), Some(i64::MAX));
        assert_eq!(d("9223372036.854775808").scaled_i64(9), None);
        assert!(!d("100000000000").abs_exceeds_power_of_ten(11));
        assert!(d("100000000000.001").abs_exceeds_power_of_ten(11));
        assert!(d("-2e11").abs_exceeds_power_of_ten(11));
    }

    #[test]
    fn raw_at_finds_the_text_a_pointer_names() {
        let raw = r#"{"a": [1, {"x/y": 2.50}], "~k": 20000000000000000002, "n": {"a": 3}}"#;
        assert_eq!(raw_at(raw, "/a/1/x~1y"), Some("2.50"));
        assert_eq!(raw_at(raw, "/~0k"), Some("20000000000000000002"));
        assert_eq!(raw_at(raw, "/n/a"), Some("3"));
        assert_eq!(raw_at(raw, "/a/01"), None);
        assert_eq!(raw_at(raw, "/a/5"), None);
        assert_eq!(raw_at(raw, "/missing"), None);
        assert_eq!(raw_at("not json", "/a"), None);
    }
}
