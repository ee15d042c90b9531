//! Compiles `auth = {...}` into the route's credential check, resolving `env:`/`file:`
//! secrets and a preset's signature scheme. It lives in `config` so that only `config`
//! reads the raw file format.

use http::HeaderName;

use super::compile::KeyError;
use super::raw::{RawAuth, RawSchemeKeys};
use super::secret_source;
use crate::pipeline::auth::Auth;
use crate::pipeline::signature::{
    self, CompiledScheme, HeaderOverrides, HmacAlgorithm, SchemeVerifier, SigEncoding, Verifier,
};
use crate::secret::Secret;

/// Default signed-timestamp tolerance, both directions (the schemes' own libraries use 5 min).
const DEFAULT_TOLERANCE: &str = "5m";

/// Builds the check from the config, resolving `env:`/`file:` secrets. Errors carry
/// the key suffix below `auth` (e.g. `.tokens[1]`).
///
/// `public_url` is the route's `public_url`, required by schemes that sign the URL.
pub(super) fn compile(raw: RawAuth, public_url: Option<&str>) -> Result<Auth, KeyError> {
    Ok(match raw {
        RawAuth::None => Auth::None,
        RawAuth::Bearer { tokens } => {
            if tokens.is_empty() {
                return Err((".tokens".into(), "must list at least one token".into()));
            }
            let tokens = resolve_all(&tokens, ".tokens")?;
            can_arrive(&tokens, ".tokens")?;
            Auth::Bearer(tokens)
        }
        RawAuth::Basic { users } => {
            if users.is_empty() {
                return Err((".users".into(), "must list at least one user".into()));
            }
            let mut pairs = Vec::with_capacity(users.len());
            for (user, password) in users {
                if user.contains(':') || user.is_empty() {
                    return Err((
                        format!(".users.{user}"),
                        "a user name may not be empty or contain ':'".into(),
                    ));
                }
                let pw =
                    secret_source::resolve(&password).map_err(|e| (format!(".users.{user}"), e))?;
                pairs.push((Secret::new(user.into_bytes()), pw));
            }
            Auth::Basic(pairs)
        }
        RawAuth::Hmac {
            header,
            algorithm,
            encoding,
            prefix,
            secrets,
        } => {
            let header = HeaderName::from_bytes(header.as_bytes()).map_err(|_| {
                (
                    ".header".to_owned(),
                    format!("{header:?} is not a header name"),
                )
            })?;
            let scheme = CompiledScheme::hmac(
                header,
                algorithm.unwrap_or(HmacAlgorithm::Sha256),
                encoding.unwrap_or(SigEncoding::Hex),
                prefix.as_deref().unwrap_or_default(),
            );
            Auth::Signature(Box::new(Verifier::Scheme(Box::new(SchemeVerifier {
                scheme,
                secrets: non_empty(&secrets, ".secrets")?,
                public_keys: Vec::new(),
                tolerance: std::time::Duration::ZERO,
                public_url: None,
            }))))
        }
        RawAuth::Scheme {
            scheme: Some(scheme),
            keys,
        } => compile_scheme(&scheme, keys, public_url)?,
        RawAuth::Jwt {
            jwks,
            issuer,
            audience,
            algorithms,
            leeway,
        } => compile_jwt(jwks, issuer, audience, algorithms, leeway)?,
        RawAuth::Scheme { scheme: None, .. } => {
            return Err((
                ".type".into(),
                "missing: name an auth type, or leave it out only on a route whose \
                 preset is a sender with a signature scheme (see `hookgate presets`)"
                    .into(),
            ));
        }
        RawAuth::Header { headers } => {
            if headers.is_empty() {
                return Err((".headers".into(), "must name at least one header".into()));
            }
            let mut checks = Vec::with_capacity(headers.len());
            for (name, values) in headers {
                let key = format!(".headers.{name}");
                let header = HeaderName::from_bytes(name.as_bytes())
                    .map_err(|_| (key.clone(), format!("{name:?} is not a header name")))?;
                if values.is_empty() {
                    return Err((key, "must list at least one accepted value".into()));
                }
                let values = resolve_all(&values, &key)?;
                can_arrive(&values, &key)?;
                checks.push((header, values));
            }
            Auth::Header(checks)
        }
    })
}

/// Longest `leeway` accepted: more is not clock skew.
const MAX_JWT_LEEWAY: std::time::Duration = std::time::Duration::from_secs(600);

/// `auth = { type = "jwt", ... }`: the spec, and the verifier with a `file:` JWKS read.
fn compile_jwt(
    jwks: String,
    issuer: Option<Vec<String>>,
    audience: Option<Vec<String>>,
    algorithms: Option<Vec<String>>,
    leeway: Option<String>,
) -> Result<Auth, KeyError> {
    use crate::pipeline::jwt::{self, JwksSource, JwtSpec, JwtVerifier};
    let source = if let Some(path) = jwks.strip_prefix("file:") {
        JwksSource::File(secret_source::resolve_path(path))
    } else if jwks.starts_with("https://") && jwks.len() > "https://".len() {
        reqwest::Url::parse(&jwks).map_err(|e| (".jwks".to_owned(), format!("{jwks:?}: {e}")))?;
        JwksSource::Https(jwks)
    } else {
        return Err((
            ".jwks".into(),
            format!("{jwks:?} must be \"file:PATH\" or an https:// URL"),
        ));
    };
    let required = |key: &str, v: Option<Vec<String>>| match v {
        Some(list) if !list.is_empty() && list.iter().all(|s| !s.is_empty()) => Ok(list),
        _ => Err((
            format!(".{key}"),
            "required: list the accepted values (a token for another audience or issuer \
             must not pass)"
                .to_owned(),
        )),
    };
    let issuers = required("issuer", issuer)?;
    let audiences = required("audience", audience)?;
    let algorithms = match algorithms {
        None => jwt::DEFAULT_ALGORITHMS.to_vec(),
        Some(list) if list.is_empty() => {
            return Err((".algorithms".into(), "must list at least one".into()));
        }
        Some(list) => list
            .iter()
            .enumerate()
            .map(|(i, a)| jwt::parse_algorithm(a).map_err(|e| (format!(".algorithms[{i}]"), e)))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let leeway = match leeway.as_deref() {
        None => std::time::Duration::from_secs(60),
        Some(text) => humantime::parse_duration(text).map_err(|e| {
            (
                ".leeway".to_owned(),
                format!("{text:?} is not a duration ({e})"),
            )
        })?,
    };
    if leeway > MAX_JWT_LEEWAY {
        return Err((".leeway".into(), "at most 10m".into()));
    }
    let verifier = JwtVerifier::new(JwtSpec {
        source,
        issuers,
        audiences,
        algorithms,
        leeway,
    })
    .map_err(|e| (".jwks".to_owned(), e))?;
    Ok(Auth::Jwt(verifier))
}

/// `auth = { type = "<preset>", ... }`: the preset's scheme, compiled with the route's keys.
fn compile_scheme(
    name: &str,
    keys: RawSchemeKeys,
    public_url: Option<&str>,
) -> Result<Auth, (String, String)> {
    let spec = crate::providers::scheme(name).map_err(|known| {
        (
            ".type".to_owned(),
            format!(
                "unknown auth type {name:?} (built in: none, bearer, basic, header, hmac; \
                 presets with a signature scheme: {known})"
            ),
        )
    })?;
    let scheme = CompiledScheme::compile(
        name,
        spec,
        HeaderOverrides {
            signature: keys.header.as_deref(),
            timestamp: keys.timestamp_header.as_deref(),
        },
    )
    .map_err(|e| {
        let key = if e.starts_with("timestamp_header") {
            ".timestamp_header"
        } else if e.starts_with("header") {
            ".header"
        } else {
            ".type"
        };
        (key.to_owned(), e)
    })?;
    if !scheme.takes_public_keys() && !keys.public_keys.is_empty() {
        return Err((
            ".public_keys".into(),
            format!("{name} takes no public keys"),
        ));
    }
    if scheme.is_token() {
        let tokens = non_empty(&keys.secrets, ".secrets")?;
        can_arrive(&tokens, ".secrets")?;
        let header = scheme
            .signature_header()
            .cloned()
            .ok_or_else(|| (".type".to_owned(), "scheme names no header".to_owned()))?;
        return Ok(Auth::Token {
            scheme: name.to_owned(),
            header,
            tokens,
        });
    }
    if keys.secrets.is_empty() && keys.public_keys.is_empty() {
        return Err((
            ".secrets".into(),
            if scheme.takes_public_keys() {
                "list at least one secret or public key".into()
            } else {
                "must list at least one secret".into()
            },
        ));
    }
    let secrets = resolve_all(&keys.secrets, ".secrets")?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            scheme
                .decode_secret(s.expose())
                .map_err(|e| (format!(".secrets[{i}]"), format!("not a usable key: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let public_keys = resolve_all(&keys.public_keys, ".public_keys")?
        .iter()
        .enumerate()
        .map(|(i, s)| {
            signature::decode_whpk(s.expose()).map_err(|e| {
                (
                    format!(".public_keys[{i}]"),
                    format!("not a whpk_ key: {e}"),
                )
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let tolerance = if scheme.has_timestamp() {
        crate::config::parse_duration(
            ".tolerance",
            keys.tolerance.as_deref(),
            scheme.default_tolerance().unwrap_or(DEFAULT_TOLERANCE),
        )?
    } else if keys.tolerance.is_some() {
        return Err((
            ".tolerance".into(),
            format!("{name} signs no timestamp, so no tolerance applies"),
        ));
    } else {
        std::time::Duration::ZERO
    };
    let public_url = if scheme.signs_url() {
        let url = public_url.ok_or_else(|| {
            (
                "!public_url".to_owned(),
                format!(
                    "required by auth type {name}, which signs the URL the sender posts to \
                     (write it as configured at the sender, e.g. \"https://hooks.example.com/hooks/{name}\")"
                ),
            )
        })?;
        Some(url.to_owned())
    } else {
        None
    };
    Ok(Auth::Signature(Box::new(Verifier::Scheme(Box::new(
        SchemeVerifier {
            scheme,
            secrets,
            public_keys,
            tolerance,
            public_url,
        },
    )))))
}

fn non_empty(values: &[String], key: &str) -> Result<Vec<Secret>, (String, String)> {
    if values.is_empty() {
        return Err((key.to_owned(), "must list at least one secret".into()));
    }
    resolve_all(values, key)
}

fn resolve_all(values: &[String], key: &str) -> Result<Vec<Secret>, (String, String)> {
    values
        .iter()
        .enumerate()
        .map(|(i, v)| secret_source::resolve(v).map_err(|e| (format!("{key}[{i}]"), e)))
        .collect()
}

/// Refuses a token or header value that no request can carry, so that `check` catches
/// it instead of every sender getting 401: HTTP strips whitespace around a field value
/// (RFC 9110 §5.5, and the bearer check trims it too), and no field value may hold a
/// control character other than a tab inside it. The message never shows the value.
fn can_arrive(values: &[Secret], key: &str) -> Result<(), (String, String)> {
    for (i, v) in values.iter().enumerate() {
        let bytes = v.expose();
        let reason = if bytes.trim_ascii().is_empty() {
            "is empty or only whitespace"
        } else if bytes.trim_ascii().len() != bytes.len() {
            "has leading or trailing whitespace, which HTTP strips"
        } else if bytes.iter().any(|&b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            "contains a control character, which HTTP does not carry"
        } else {
            continue;
        };
        return Err((
            format!("{key}[{i}]"),
            format!("{reason}: no request can ever match it"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pipeline::auth::AuthError;
    use base64::Engine as _;
    use http::HeaderMap;
    use std::collections::BTreeMap;

    fn compile_for_test(raw: RawAuth) -> Result<Auth, KeyError> {
        compile(raw, None)
    }

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (k, v) in pairs {
            m.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                v.parse().expect("value"),
            );
        }
        m
    }

    #[test]
    fn bearer_rotation_and_errors() {
        let auth = compile_for_test(RawAuth::Bearer {
            tokens: vec!["old".into(), "new".into()],
        })
        .expect("auth");
        assert_eq!(auth.check(&h(&[("authorization", "Bearer new")])), Ok(()));
        assert_eq!(auth.check(&h(&[("authorization", "bearer old")])), Ok(()));
        assert_eq!(
            auth.check(&h(&[("authorization", "Bearer nope")])),
            Err(AuthError::NoMatch)
        );
        assert!(matches!(auth.check(&h(&[])), Err(AuthError::Missing(_))));
        assert!(matches!(
            auth.check(&h(&[("authorization", "Basic new")])),
            Err(AuthError::Malformed(_))
        ));
        assert!(matches!(
            auth.check(&h(&[
                ("authorization", "Bearer new"),
                ("authorization", "Bearer x")
            ])),
            Err(AuthError::Repeated(_))
        ));
    }

    #[test]
    fn basic_checks_user_and_password() {
        let mut users = BTreeMap::new();
        users.insert("apono".to_owned(), "pw:with:colons".to_owned());
        let auth = compile_for_test(RawAuth::Basic { users }).expect("auth");
        let good = base64::engine::general_purpose::STANDARD.encode("apono:pw:with:colons");
        assert_eq!(
            auth.check(&h(&[("authorization", &format!("Basic {good}"))])),
            Ok(())
        );
        let bad = base64::engine::general_purpose::STANDARD.encode("other:pw:with:colons");
        assert_eq!(
            auth.check(&h(&[("authorization", &format!("Basic {bad}"))])),
            Err(AuthError::NoMatch)
        );
        assert!(matches!(
            auth.check(&h(&[("authorization", "Basic !!!")])),
            Err(AuthError::Malformed(_))
        ));
    }

    #[test]
    fn header_requires_every_header() {
        let mut headers = BTreeMap::new();
        headers.insert("X-Token".to_owned(), vec!["a".into(), "b".into()]);
        headers.insert("X-Tenant".to_owned(), vec!["acme".into()]);
        let auth = compile_for_test(RawAuth::Header { headers }).expect("auth");
        assert_eq!(
            auth.check(&h(&[("x-token", "b"), ("x-tenant", "acme")])),
            Ok(())
        );
        assert_eq!(
            auth.check(&h(&[("x-token", "c"), ("x-tenant", "acme")])),
            Err(AuthError::NoMatch)
        );
        assert!(matches!(
            auth.check(&h(&[("x-token", "a")])),
            Err(AuthError::Missing(_))
        ));
    }

    #[test]
    fn empty_lists_are_config_errors() {
        assert!(compile_for_test(RawAuth::Bearer { tokens: vec![] }).is_err());
        let err = compile_for_test(RawAuth::Bearer {
            tokens: vec!["env:HOOKGATE_UNSET_TOKEN_VAR".into()],
        })
        .expect_err("unset env");
        assert_eq!(err.0, ".tokens[0]");
        assert!(err.1.contains("HOOKGATE_UNSET_TOKEN_VAR"));
    }
}
