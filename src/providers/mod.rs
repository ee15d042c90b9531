//! Sender presets: what we know about each bundled sender, as data.
//!
//! `schemas/presets.toml` (bundled into the binary) has one table per preset naming its
//! schema, published source addresses and dedup/order pointers; `preset = "<name>"` on a
//! route fills every key the route leaves out. Explicit route keys win, so a user can
//! keep a preset's schema but narrow its addresses, say.

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_parses_and_names_a_bundled_schema() {
        let all = presets().expect("presets");
        assert_eq!(all.len(), crate::schema::BUNDLED.len());
        for (name, p) in all {
            let schema = p.schema.as_deref().expect("schema");
            assert!(crate::schema::bundled(schema).is_some(), "{name}");
        }
    }
}
