//! Applies a route's `preset`: fills the keys the route leaves out from the bundled
//! sender data in [`crate::providers`]. Here, not there, because only `config` reads the
//! raw file format.

use super::raw::{RawAuth, RawRoute};
use crate::providers::presets;

/// Fills the keys `route` leaves out from its preset, if it names one.
pub(super) fn apply(route: &mut RawRoute) -> Result<(), String> {
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
    fill(&mut route.body, &preset.body);
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
    use crate::config::spec::OrderTimeUnit;

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
