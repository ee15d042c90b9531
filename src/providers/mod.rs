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

use crate::config::spec::OrderTimeUnit;

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
    /// How the sender's bodies are read (`ndjson`/`auto` for batch senders).
    pub body: Option<crate::config::spec::BodyFormat>,
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
}
