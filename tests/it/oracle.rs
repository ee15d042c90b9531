//! Invariants and reference models shared by the property tests (`robustness.rs`) and
//! the cargo-fuzz targets (`fuzz/`, which include this file by path): one statement of
//! what the config loader and the JSON parser promise, checked by both explorers.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};

use hookgate::config::{ConfigError, JSON_DEPTH_CEILING, MAX_DURATION, RESERVED_PATHS, Settings};

/// Fails with a message unless `cond` holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

/// Loads `text` as a config named `origin`: a refusal must name its origin and say why
/// (an `Invalid` one names a real key); an acceptance must uphold every bound the compile
/// step promises (depth 1..=ceiling, non-zero sizes, durations in (0, cap], unique,
/// well-formed, unreserved route names and paths, at least one method).
pub fn check_config(text: &str, origin: &str) -> Result<(), String> {
    match hookgate::config::from_str(text, origin) {
        Err(e) => {
            let msg = e.to_string();
            let rest = msg.strip_prefix(&format!("{origin}: "));
            ensure!(
                rest.is_some_and(|r| !r.trim().is_empty()),
                "message {msg:?} does not name the origin and a reason"
            );
            match &e {
                ConfigError::Invalid { key, reason, .. } => {
                    ensure!(
                        ["server.", "store.", "route["]
                            .iter()
                            .any(|p| key.starts_with(p)),
                        "key {key:?} ({reason})"
                    );
                    ensure!(!reason.trim().is_empty(), "no reason for {key}");
                }
                ConfigError::Parse { message, .. } => {
                    ensure!(!message.trim().is_empty(), "empty parse message");
                }
                ConfigError::Read { .. } => return Err(format!("from_str read a file: {msg}")),
            }
        }
        Ok(s) => check_settings(&s)?,
    }
    Ok(())
}

fn check_settings(s: &Settings) -> Result<(), String> {
    let in_range = |d: std::time::Duration| !d.is_zero() && d <= MAX_DURATION;
    let srv = &s.server;
    ensure!(
        (1..=JSON_DEPTH_CEILING).contains(&srv.max_json_depth),
        "max_json_depth {}",
        srv.max_json_depth
    );
    ensure!(srv.max_body_bytes >= 1, "max_body_bytes 0");
    ensure!(
        in_range(srv.read_timeout),
        "read_timeout {:?}",
        srv.read_timeout
    );
    ensure!(
        in_range(s.store.dedup_ttl),
        "dedup_ttl {:?}",
        s.store.dedup_ttl
    );
    let mut names = HashSet::new();
    let mut paths = HashSet::new();
    for r in &s.routes {
        ensure!(
            !r.name.is_empty()
                && r.name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)),
            "name {:?}",
            r.name
        );
        ensure!(
            r.path.starts_with('/')
                && !r.path.contains(['?', '#'])
                && !r.path.contains(char::is_whitespace)
                && !RESERVED_PATHS.contains(&r.path.as_str()),
            "path {:?}",
            r.path
        );
        ensure!(!r.methods.is_empty(), "route {} has no method", r.name);
        ensure!(
            in_range(r.upstream_timeout),
            "upstream_timeout {:?}",
            r.upstream_timeout
        );
        ensure!(names.insert(r.name.clone()), "duplicate name {}", r.name);
        ensure!(paths.insert(r.path.clone()), "duplicate path {}", r.path);
    }
    Ok(())
}

/// Reference model for duplicate keys: every key that some object names more than once
/// (after unescaping), found by walking serde_json's own event stream as far as the
/// document is well-formed (a parser may stop at the first duplicate before it sees a
/// later syntax error, so keys repeated before such an error count too).
pub fn repeated_keys(bytes: &[u8]) -> HashSet<String> {
    use serde::de::{MapAccess, SeqAccess, Visitor};
    struct Walk<'a>(&'a std::cell::RefCell<HashSet<String>>);
    impl<'de> serde::de::DeserializeSeed<'de> for Walk<'_> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }
    impl<'de> Visitor<'de> for Walk<'_> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_bool<E>(self, _: bool) -> Result<(), E> {
            Ok(())
        }
        fn visit_i64<E>(self, _: i64) -> Result<(), E> {
            Ok(())
        }
        fn visit_u64<E>(self, _: u64) -> Result<(), E> {
            Ok(())
        }
        fn visit_f64<E>(self, _: f64) -> Result<(), E> {
            Ok(())
        }
        fn visit_str<E>(self, _: &str) -> Result<(), E> {
            Ok(())
        }
        fn visit_unit<E>(self) -> Result<(), E> {
            Ok(())
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while seq.next_element_seed(Walk(self.0))?.is_some() {}
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            let mut seen = HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                map.next_value_seed(Walk(self.0))?;
                if !seen.insert(key.clone()) {
                    self.0.borrow_mut().insert(key);
                }
            }
            Ok(())
        }
    }
    let found = std::cell::RefCell::new(HashSet::new());
    let mut de = serde_json::Deserializer::from_slice(bytes);
    de.disable_recursion_limit();
    let _ = serde::de::DeserializeSeed::deserialize(Walk(&found), &mut de);
    found.into_inner()
}

// === calendar and client address ===

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm),
/// written independently of the `time` crate the gateway uses.
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Days in month `m` (1..=12) of year `y`, proleptic Gregorian.
pub fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// The walk DESIGN.md describes, written out: from the peer, right to left, past trusted
/// hops, stopping at the first untrusted one; an unparseable hop, or a 33rd hop to walk,
/// makes the client unknown (`None`).
pub fn reference_client(
    peer: IpAddr,
    hops: &[Option<IpAddr>],
    trusted: &[ipnet::IpNet],
) -> Option<IpAddr> {
    let is_trusted = |ip: IpAddr| trusted.iter().any(|n| n.contains(&ip));
    let mut current = peer.to_canonical();
    if !is_trusted(current) {
        return Some(current);
    }
    for (walked, hop) in hops.iter().rev().enumerate() {
        if walked == 32 {
            return None;
        }
        current = hop.as_ref()?.to_canonical();
        if !is_trusted(current) {
            break;
        }
    }
    Some(current)
}

/// Every address a header string names, in any spelling: the tokens between separators
/// that parse as an address, a socket address, or a bracketed address.
pub fn addresses_in(text: &str) -> HashSet<IpAddr> {
    text.split([',', ';', '=', '"', ' ', '\t'])
        .filter_map(|t| {
            t.parse::<IpAddr>()
                .ok()
                .or_else(|| t.parse::<SocketAddr>().ok().map(|s| s.ip()))
                .or_else(|| {
                    t.strip_prefix('[')
                        .and_then(|r| r.split(']').next())
                        .and_then(|r| r.parse().ok())
                })
        })
        .map(|ip: IpAddr| ip.to_canonical())
        .collect()
}
