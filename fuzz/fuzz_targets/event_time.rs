//! Event times in every format and unit (`order_time`, `order_time_unit`).
//!
//! Invariants: integers are exact in their unit (auto: above 1e11 is milliseconds) or
//! refused when the product overflows i64 nanoseconds; decimal numbers written in any
//! spelling (fraction, exponent) are within the f64 error of their exact decimal value,
//! computed here in integer arithmetic, and refused only outside the i64 range; in the
//! unit `s` or `ms` the reading is monotone (a larger number is never an earlier time);
//! RFC 3339 times with any offset and fraction are the instant a proleptic Gregorian
//! calendar (`oracle.rs`) says, or refused when that does not fit; arbitrary strings and
//! values never panic and refusals say why.
#![no_main]

use hookgate::config::spec::OrderTimeUnit;
use hookgate::pipeline::extract::event_time;
use hookgate_fuzz::oracle::{days_from_civil, days_in_month};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const UNITS: [OrderTimeUnit; 3] = [OrderTimeUnit::Auto, OrderTimeUnit::S, OrderTimeUnit::Ms];

/// A decimal number as text: sign, digits, fraction digits, exponent.
#[derive(Debug, Arbitrary)]
struct Decimal {
    negative: bool,
    int: u64,
    /// Fraction digits (each taken modulo 10), at most 18 (the mantissa fits an i128).
    frac: Vec<u8>,
    exp: Option<i8>,
}

#[derive(Debug, Arbitrary)]
struct Rfc3339 {
    year: u16,
    month: u8,
    day: u8,
    hms: (u8, u8, u8),
    /// Fraction digits (each taken modulo 10), 0..=9 of them.
    frac: Vec<u8>,
    /// None: `Z`; else (negative, hours, minutes).
    offset: Option<(bool, u8, u8)>,
    lowercase: bool,
}

#[derive(Debug, Arbitrary)]
enum Input {
    Int(i64),
    Float(f64),
    Decimal(Decimal),
    Rfc3339(Rfc3339),
    Raw(String),
    Other(u8),
}

fn unit_factor(millis: bool) -> i128 {
    if millis { 1_000_000 } else { 1_000_000_000 }
}

/// `value` (a JSON number) read in `unit`: checks the refusal and the monotonicity.
fn read(value: &Value, unit: OrderTimeUnit) -> Result<i64, String> {
    let got = event_time(value, unit);
    if let Err(reason) = &got {
        assert!(!reason.is_empty());
    }
    got
}

fn check_int(i: i64) {
    for unit in UNITS {
        let ms = match unit {
            OrderTimeUnit::Ms => true,
            OrderTimeUnit::S => false,
            OrderTimeUnit::Auto => i.unsigned_abs() > 100_000_000_000,
        };
        let exact = i128::from(i) * unit_factor(ms);
        let got = read(&Value::from(i), unit);
        assert_eq!(
            got.clone().ok(),
            i64::try_from(exact).ok(),
            "{i} as {unit:?}"
        );
        // Monotone in a fixed unit: the next integer is not earlier.
        if unit != OrderTimeUnit::Auto
            && let Some(next) = i.checked_add(1)
            && let (Ok(a), Ok(b)) = (got, read(&Value::from(next), unit))
        {
            assert!(a < b, "{i} and {next} as {unit:?}: {a} >= {b}");
        }
    }
}

fn check_float(f: f64) {
    let value = Value::from(f);
    let Value::Number(_) = value else {
        // Non-finite: serde_json makes it null, which is not a time.
        for unit in UNITS {
            assert!(read(&value, unit).is_err());
        }
        return;
    };
    for unit in [OrderTimeUnit::S, OrderTimeUnit::Ms] {
        let next = f.next_up();
        if let (Ok(a), Ok(b)) = (read(&value, unit), read(&Value::from(next), unit)) {
            assert!(a <= b, "{f} < {next} as {unit:?}: {a} > {b}");
        }
        let prev = f.next_down();
        if let (Ok(a), Ok(b)) = (read(&Value::from(prev), unit), read(&value, unit)) {
            assert!(a <= b, "{prev} < {f} as {unit:?}: {a} > {b}");
        }
    }
    for unit in UNITS {
        let ms = match unit {
            OrderTimeUnit::Ms => true,
            OrderTimeUnit::S => false,
            OrderTimeUnit::Auto => f.abs() > 1e11,
        };
        let exact = f * if ms { 1e6 } else { 1e9 };
        match read(&value, unit) {
            Ok(n) => assert!(
                (n as f64 - exact).abs() <= 1.0 + exact.abs() * 2f64.powi(-52),
                "{f} as {unit:?}: {n}"
            ),
            Err(_) => assert!(exact.abs() >= 9.2e18, "{f} as {unit:?} refused"),
        }
    }
}

/// A decimal number written as text against its exact value, computed in i128.
fn check_decimal(d: &Decimal) {
    let frac: String = d
        .frac
        .iter()
        .take(18)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    let mut text = format!("{}{}", if d.negative { "-" } else { "" }, d.int);
    if !frac.is_empty() {
        text.push('.');
        text.push_str(&frac);
    }
    if let Some(e) = d.exp {
        text.push_str(&format!("e{e}"));
    }
    let Ok(value) = serde_json::from_str::<Value>(&text) else {
        // serde_json refuses numbers beyond f64: nothing to read.
        return;
    };
    // The exact value is mantissa * 10^(exp - frac digits), mantissa < 10^40.
    let mantissa: u128 = format!("{}{frac}", d.int).parse().expect("digits");
    let mantissa = i128::try_from(mantissa).expect("< 10^40") * if d.negative { -1 } else { 1 };
    let scale = i32::from(d.exp.unwrap_or(0)) - i32::try_from(frac.len()).expect("18");
    for unit in UNITS {
        // Compare the exact value with 1e11 to pick the auto unit; skip the hair's
        // breadth where f64 rounding decides the other way.
        let f = value.as_f64().expect("a number");
        let ms = match unit {
            OrderTimeUnit::Ms => true,
            OrderTimeUnit::S => false,
            OrderTimeUnit::Auto => {
                if (f.abs() - 1e11).abs() <= 1e11 * 1e-15 {
                    continue;
                }
                f.abs() > 1e11
            }
        };
        let shift = scale + if ms { 6 } else { 9 };
        // nanos = mantissa * 10^shift, exactly (or None when far beyond i64).
        let exact: Option<i128> = if mantissa == 0 {
            Some(0)
        } else if shift >= 0 {
            10i128
                .checked_pow(shift.unsigned_abs())
                .and_then(|p| mantissa.checked_mul(p))
        } else if shift < -38 {
            // |mantissa| < 10^38: rounds to 0.
            Some(0)
        } else {
            let p = 10i128.pow(shift.unsigned_abs());
            // Round half away from zero, like f64::round.
            let q = mantissa / p;
            let r = mantissa % p;
            Some(if 2 * r.abs() >= p {
                q + mantissa.signum()
            } else {
                q
            })
        };
        let got = read(&value, unit);
        let Some(exact) = exact else {
            assert!(
                got.is_err(),
                "{text} as {unit:?} is beyond i64 nanoseconds: {got:?}"
            );
            continue;
        };
        // The f64 reading errs by at most 2 ulp of the product, plus the rounding.
        let tolerance = 2 + exact.abs() / (1 << 51);
        let limit = i128::from(i64::MAX);
        if exact.abs() + tolerance < limit {
            let n = got.unwrap_or_else(|e| panic!("{text} as {unit:?} refused: {e}"));
            assert!(
                (i128::from(n) - exact).abs() <= tolerance,
                "{text} as {unit:?}: {n}, exactly {exact}"
            );
        } else if exact.abs() > limit + tolerance {
            assert!(got.is_err(), "{text} as {unit:?} out of range: {got:?}");
        }
    }
}

fn check_rfc3339(r: &Rfc3339) {
    let y = i64::from(r.year % 10_000);
    let mo = i64::from(r.month % 12) + 1;
    let d = i64::from(r.day) % days_in_month(y, mo) + 1;
    let (h, mi, s) = (
        i64::from(r.hms.0 % 24),
        i64::from(r.hms.1 % 60),
        i64::from(r.hms.2 % 60),
    );
    let frac: String = r
        .frac
        .iter()
        .take(9)
        .map(|b| char::from(b'0' + b % 10))
        .collect();
    let (offset_text, offset_secs) = match r.offset {
        None => (if r.lowercase { "z" } else { "Z" }.to_owned(), 0),
        Some((neg, oh, om)) => {
            let (oh, om) = (i64::from(oh % 24), i64::from(om % 60));
            (
                format!("{}{oh:02}:{om:02}", if neg { '-' } else { '+' }),
                (oh * 3600 + om * 60) * if neg { -1 } else { 1 },
            )
        }
    };
    let frac_nanos: i128 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().expect("nine digits")
    };
    let text = format!(
        "{y:04}-{mo:02}-{d:02}{}{h:02}:{mi:02}:{s:02}{}{offset_text}",
        if r.lowercase { 't' } else { 'T' },
        if frac.is_empty() {
            String::new()
        } else {
            format!(".{frac}")
        }
    );
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + s - offset_secs;
    let nanos = i128::from(secs) * 1_000_000_000 + frac_nanos;
    for unit in UNITS {
        let got = event_time(&Value::String(text.clone()), unit);
        match i64::try_from(nanos) {
            Ok(n) => assert_eq!(got, Ok(n), "{text}"),
            Err(_) => assert!(got.is_err(), "{text} out of range but read as {got:?}"),
        }
    }
}

fuzz_target!(|input: Input| {
    match input {
        Input::Int(i) => check_int(i),
        Input::Float(f) => check_float(f),
        Input::Decimal(d) => check_decimal(&d),
        Input::Rfc3339(r) => check_rfc3339(&r),
        Input::Raw(s) => {
            let v = Value::String(s);
            let results: Vec<_> = UNITS.iter().map(|u| read(&v, *u)).collect();
            // The unit is about numbers: a string reads the same in every unit.
            assert!(results.windows(2).all(|w| w[0] == w[1]), "{v}: {results:?}");
        }
        Input::Other(k) => {
            let v = match k % 4 {
                0 => Value::Null,
                1 => Value::Bool(k > 127),
                2 => serde_json::json!([1712000000]),
                _ => serde_json::json!({"t": 1712000000}),
            };
            for unit in UNITS {
                assert!(read(&v, unit).is_err(), "{v} read as a time");
            }
        }
    }
});
