//! Sender presets: what we know about each bundled sender, as data.
//!
//! `schemas/presets.toml` (bundled into the binary) has one table per preset naming its
//! schema, published source addresses and dedup/order pointers; `preset = "<name>"` on a
//! route fills every key the route leaves out. Explicit route keys win, so a user can
//! keep a preset's schema but narrow its addresses, say.
//!
//! A preset of a signing sender also carries its signature scheme as data ([`mod@scheme`]);
//! `auth = { type = "<preset>", ... }` verifies with it. Senders that do not sign say in
//! `credentials` which header checks (bearer, basic, custom headers) they can be paired with.

pub mod scheme;

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::config::raw::{OrderTimeUnit, RawAuth, RawRoute};

/// The bundled presets file.
pub const PRESETS_TOML: &str = include_str!("../../schemas/presets.toml");

/// One preset: the route keys it fills.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Preset {
    /// What the preset is for.
    pub description: String,
    /// Bundled schema name.
    pub schema: Option<String>,
    /// Published sender addresses.
    pub allow_ips: Option<Vec<String>>,
    /// Dedup key (pointer, `header:NAME` or `body-sha256`).
    pub dedup_key: Option<String>,
    /// Entity pointer.
    pub order_key: Option<String>,
    /// Event time pointer.
    pub order_time: Option<String>,
    /// Event time unit.
    pub order_time_unit: Option<OrderTimeUnit>,
    /// Methods the sender uses.
    pub methods: Option<Vec<String>>,
    /// For senders that do not sign: the credentials they can send, as documentation.
    pub credentials: Option<String>,
    /// For senders that sign: their signature scheme.
    pub scheme: Option<scheme::SchemeSpec>,
}

/// All presets by name. The bundled file is checked by a unit test, so a parse error here
/// is a build defect; it is still reported, not panicked on.
/// Parsed on first use and kept: every route naming a preset, at start-up and on each
/// reload, reads the same table.
pub fn presets() -> Result<&'static BTreeMap<String, Preset>, String> {
    static PRESETS: std::sync::LazyLock<Result<BTreeMap<String, Preset>, String>> =
        std::sync::LazyLock::new(|| {
            toml::from_str(PRESETS_TOML).map_err(|e| format!("bundled presets.toml: {e}"))
        });
    PRESETS.as_ref().map_err(Clone::clone)
}

/// The signature scheme of preset `name`, if it has one; on `Err`, the names of the
/// presets that have one (for the error message).
pub fn scheme(name: &str) -> Result<&'static scheme::SchemeSpec, String> {
    let all = presets()?;
    all.get(name)
        .and_then(|p| p.scheme.as_ref())
        .ok_or_else(|| {
            all.iter()
                .filter(|(_, p)| p.scheme.is_some())
                .map(|(n, _)| n.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        })
}

/// Fills the keys `route` leaves out from its preset, if it names one.
pub fn apply(route: &mut RawRoute) -> Result<(), String> {
    let Some(name) = &route.preset else {
        return Ok(());
    };
    let all = presets()?;
    let preset = all.get(name).ok_or_else(|| {
        format!(
            "unknown preset {name:?} (known: {})",
            all.keys().cloned().collect::<Vec<_>>().join(", ")
        )
    })?;
    fill(&mut route.schema, &preset.schema);
    fill(&mut route.allow_ips, &preset.allow_ips);
    fill(&mut route.dedup_key, &preset.dedup_key);
    fill(&mut route.order_key, &preset.order_key);
    fill(&mut route.order_time, &preset.order_time);
    fill(&mut route.order_time_unit, &preset.order_time_unit);
    fill(&mut route.methods, &preset.methods);
    // `auth = { secrets = [...] }` without `type`: the preset's own signature scheme.
    if let Some(RawAuth::Scheme {
        scheme: scheme @ None,
        ..
    }) = &mut route.auth
        && preset.scheme.is_some()
    {
        *scheme = Some(name.clone());
    }
    Ok(())
}

fn fill<T: Clone>(slot: &mut Option<T>, from: &Option<T>) {
    if slot.is_none() {
        slot.clone_from(from);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_names_a_bundled_schema() {
        let all = presets().expect("presets");
        // Every bundled schema has its preset; a preset names a schema only if bundled.
        let with_schema = all.values().filter(|p| p.schema.is_some()).count();
        assert_eq!(with_schema, crate::schema::BUNDLED.len());
        for (name, p) in all {
            if let Some(schema) = p.schema.as_deref() {
                assert!(crate::schema::bundled(schema).is_some(), "{name}");
            }
            // Each preset either signs or says which credentials its sender can send.
            assert!(
                p.scheme.is_some() ^ p.credentials.is_some(),
                "{name}: exactly one of scheme / credentials"
            );
        }
        assert!(all.len() >= 15, "at least 15 sender presets");
    }

    #[test]
    fn explicit_keys_win() {
        let mut r = RawRoute {
            preset: Some("flashduty-incident".into()),
            allow_ips: Some(vec!["10.0.0.1".into()]),
            ..RawRoute::default()
        };
        apply(&mut r).expect("apply");
        assert_eq!(r.allow_ips, Some(vec!["10.0.0.1".to_owned()]));
        assert_eq!(r.schema.as_deref(), Some("flashduty-incident"));
        assert_eq!(r.dedup_key.as_deref(), Some("/event_id"));
        assert_eq!(r.order_time_unit, Some(OrderTimeUnit::Ms));
    }

    #[test]
    fn auth_without_type_takes_the_presets_scheme() {
        let mut r = RawRoute {
            preset: Some("github".into()),
            auth: Some(RawAuth::Scheme {
                scheme: None,
                keys: crate::config::raw::RawSchemeKeys::default(),
            }),
            ..RawRoute::default()
        };
        apply(&mut r).expect("apply");
        assert!(
            matches!(&r.auth, Some(RawAuth::Scheme { scheme: Some(s), .. }) if s == "github"),
            "{:?}",
            r.auth
        );
        // A preset without a scheme leaves it for the compiler to refuse.
        let mut r = RawRoute {
            preset: Some("wallarm".into()),
            auth: Some(RawAuth::Scheme {
                scheme: None,
                keys: crate::config::raw::RawSchemeKeys::default(),
            }),
            ..RawRoute::default()
        };
        apply(&mut r).expect("apply");
        assert!(matches!(
            &r.auth,
            Some(RawAuth::Scheme { scheme: None, .. })
        ));
    }

    #[test]
    fn unknown_preset_is_an_error_listing_known_ones() {
        let mut r = RawRoute {
            preset: Some("nope".into()),
            ..RawRoute::default()
        };
        let e = apply(&mut r).expect_err("unknown");
        assert!(e.contains("flashduty-incident"), "{e}");
    }
}
