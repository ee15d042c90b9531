//! Credential checks that need only the headers: bearer tokens, basic auth and the
//! custom-header secrets that Apono, Wallarm and Flashduty senders are configured with.
//!
//! They run before the body is read, so an unauthenticated sender never costs a body
//! read. Every comparison goes through [`Secret::matches`] (constant time), and every
//! configured secret is compared even after a match, so timing does not reveal which
//! rotation slot matched. Signature schemes, which need the body, live in `signature`:
//! for them this stage only checks that a signature header is present, and
//! [`Auth::verify_body`] does the verification once the body is read.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, header::AUTHORIZATION};

use crate::config::raw::RawAuth;
use crate::config::secret_source;
use crate::pipeline::signature::{
    self, GithubScheme, HmacAlgorithm, HmacScheme, SigEncoding, SignatureError, SlackScheme,
    StandardWebhooksScheme, StripeScheme, Verifier,
};
use crate::secret::Secret;

/// Why credentials were refused. The variant is logged; the sender only sees 401.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    /// A required header is absent.
    #[error("missing {0} header")]
    Missing(String),
    /// The header is present more than once, so we cannot tell which to believe.
    #[error("{0} header given more than once")]
    Repeated(String),
    /// The header's syntax is wrong (scheme, base64, ...).
    #[error("malformed {0} header")]
    Malformed(String),
    /// The presented credential matches none of the configured ones.
    #[error("credentials do not match")]
    NoMatch,
    /// The route lists `client_subjects` and no verified TLS client certificate names
    /// one of them.
    #[error("no verified client certificate with an accepted subject")]
    ClientCertificate,
}

/// The header-based credential check of one route.
#[derive(Debug)]
pub enum Auth {
    /// Nothing is checked.
    None,
    /// `Authorization: Bearer <token>`; any token matches.
    Bearer(Vec<Secret>),
    /// `Authorization: Basic ...`; (user, password) pairs.
    Basic(Vec<(Secret, Secret)>),
    /// Every named header present once, with one of its accepted values.
    Header(Vec<(HeaderName, Vec<Secret>)>),
    /// A signature over the raw body (checked after the body is read).
    Signature(Box<Verifier>),
}

/// Default signed-timestamp tolerance, both directions (the schemes' own libraries use 5 min).
const DEFAULT_TOLERANCE: &str = "5m";

impl Auth {
    /// Builds the check from the config, resolving `env:`/`file:` secrets. Errors carry
    /// the key suffix below `auth` (e.g. `.tokens[1]`).
    pub fn compile(raw: RawAuth) -> Result<Self, (String, String)> {
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
                    let pw = secret_source::resolve(&password)
                        .map_err(|e| (format!(".users.{user}"), e))?;
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
                Auth::Signature(Box::new(Verifier::Hmac(HmacScheme {
                    header,
                    algorithm: algorithm.unwrap_or(HmacAlgorithm::Sha256),
                    encoding: encoding.unwrap_or(SigEncoding::Hex),
                    prefix: prefix.unwrap_or_default(),
                    secrets: non_empty(&secrets, ".secrets")?,
                })))
            }
            RawAuth::StandardWebhooks {
                secrets,
                public_keys,
                tolerance,
            } => {
                if secrets.is_empty() && public_keys.is_empty() {
                    return Err((
                        ".secrets".into(),
                        "list at least one whsec_ secret or whpk_ public key".into(),
                    ));
                }
                let secrets = resolve_all(&secrets, ".secrets")?
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        signature::decode_whsec(s.expose()).map_err(|e| {
                            (format!(".secrets[{i}]"), format!("not a whsec_ key: {e}"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let public_keys = resolve_all(&public_keys, ".public_keys")?
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
                Auth::Signature(Box::new(Verifier::StandardWebhooks(
                    StandardWebhooksScheme {
                        secrets,
                        public_keys,
                        tolerance: tolerance_of(tolerance.as_deref())?,
                    },
                )))
            }
            RawAuth::Github { secrets } => {
                Auth::Signature(Box::new(Verifier::Github(GithubScheme {
                    secrets: non_empty(&secrets, ".secrets")?,
                })))
            }
            RawAuth::Stripe { secrets, tolerance } => {
                Auth::Signature(Box::new(Verifier::Stripe(StripeScheme {
                    secrets: non_empty(&secrets, ".secrets")?,
                    tolerance: tolerance_of(tolerance.as_deref())?,
                })))
            }
            RawAuth::Slack { secrets, tolerance } => {
                Auth::Signature(Box::new(Verifier::Slack(SlackScheme {
                    secrets: non_empty(&secrets, ".secrets")?,
                    tolerance: tolerance_of(tolerance.as_deref())?,
                })))
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

    /// The `type` name, as in the config.
    pub fn type_name(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic(_) => "basic",
            Auth::Header(_) => "header",
            Auth::Signature(v) => match **v {
                Verifier::Hmac(_) => "hmac",
                Verifier::StandardWebhooks(_) => "standard-webhooks",
                Verifier::Github(_) => "github",
                Verifier::Stripe(_) => "stripe",
                Verifier::Slack(_) => "slack",
            },
        }
    }

    /// Verifies a body signature, for the signature schemes; other types pass.
    pub fn verify_body(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: std::time::SystemTime,
    ) -> Result<(), SignatureError> {
        match self {
            Auth::Signature(v) => v.verify(headers, body, now),
            _ => Ok(()),
        }
    }

    /// Checks the request headers. For signature schemes, only that the scheme's signature
    /// header is present: an unsigned request is refused without reading its body.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AuthError> {
        match self {
            Auth::None => Ok(()),
            Auth::Signature(v) => v
                .signature_present(headers)
                .map_err(|name| AuthError::Missing(name.to_string())),
            Auth::Bearer(tokens) => {
                let value = single(headers, &AUTHORIZATION)?;
                let token = strip_scheme(value, b"bearer")
                    .ok_or_else(|| AuthError::Malformed("Authorization".into()))?;
                any_matches(tokens.iter(), token)
            }
            Auth::Basic(users) => {
                let value = single(headers, &AUTHORIZATION)?;
                let encoded = strip_scheme(value, b"basic")
                    .ok_or_else(|| AuthError::Malformed("Authorization".into()))?;
                let decoded = base64::engine::general_purpose::STANDARD
                    .decode(encoded)
                    .map_err(|_| AuthError::Malformed("Authorization".into()))?;
                let colon = decoded
                    .iter()
                    .position(|&b| b == b':')
                    .ok_or_else(|| AuthError::Malformed("Authorization".into()))?;
                let (user, password) = (&decoded[..colon], &decoded[colon + 1..]);
                let mut ok = false;
                for (u, p) in users {
                    // `&` not `&&`: both comparisons run for every entry.
                    ok |= u.matches(user) & p.matches(password);
                }
                if ok { Ok(()) } else { Err(AuthError::NoMatch) }
            }
            Auth::Header(checks) => {
                let mut all = true;
                for (name, accepted) in checks {
                    let value = single(headers, name)?;
                    all &= any_matches(accepted.iter(), value).is_ok();
                }
                if all { Ok(()) } else { Err(AuthError::NoMatch) }
            }
        }
    }

    /// Headers holding credentials this check consumed; they are not forwarded.
    pub fn consumed_headers(&self) -> Vec<HeaderName> {
        match self {
            Auth::None => Vec::new(),
            Auth::Bearer(_) | Auth::Basic(_) => vec![AUTHORIZATION],
            Auth::Header(checks) => checks.iter().map(|(n, _)| n.clone()).collect(),
            Auth::Signature(v) => v.consumed_headers(),
        }
    }
}

fn non_empty(values: &[String], key: &str) -> Result<Vec<Secret>, (String, String)> {
    if values.is_empty() {
        return Err((key.to_owned(), "must list at least one secret".into()));
    }
    resolve_all(values, key)
}

fn tolerance_of(value: Option<&str>) -> Result<std::time::Duration, (String, String)> {
    crate::config::parse_duration(".tolerance", value, DEFAULT_TOLERANCE)
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

fn single<'h>(headers: &'h HeaderMap, name: &HeaderName) -> Result<&'h [u8], AuthError> {
    let mut values = headers.get_all(name).iter();
    let first = values
        .next()
        .ok_or_else(|| AuthError::Missing(name.to_string()))?;
    if values.next().is_some() {
        return Err(AuthError::Repeated(name.to_string()));
    }
    Ok(first.as_bytes())
}

/// `Bearer abc` → `abc` (scheme is case-insensitive, RFC 9110 §11.1).
fn strip_scheme<'v>(value: &'v [u8], scheme: &[u8]) -> Option<&'v [u8]> {
    let (head, rest) = value.split_at_checked(scheme.len())?;
    if !head.eq_ignore_ascii_case(scheme) {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let trimmed = rest.trim_ascii();
    (!trimmed.is_empty()).then_some(trimmed)
}

fn any_matches<'a>(
    secrets: impl Iterator<Item = &'a Secret>,
    presented: &[u8],
) -> Result<(), AuthError> {
    let mut ok = false;
    for s in secrets {
        ok |= s.matches(presented);
    }
    if ok { Ok(()) } else { Err(AuthError::NoMatch) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

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
        let auth = Auth::compile(RawAuth::Bearer {
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
        let auth = Auth::compile(RawAuth::Basic { users }).expect("auth");
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
        let auth = Auth::compile(RawAuth::Header { headers }).expect("auth");
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
        assert!(Auth::compile(RawAuth::Bearer { tokens: vec![] }).is_err());
        let err = Auth::compile(RawAuth::Bearer {
            tokens: vec!["env:HOOKGATE_UNSET_TOKEN_VAR".into()],
        })
        .expect_err("unset env");
        assert_eq!(err.0, ".tokens[0]");
        assert!(err.1.contains("HOOKGATE_UNSET_TOKEN_VAR"));
    }
}
