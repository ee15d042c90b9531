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

use crate::config::raw::{RawAuth, RawSchemeKeys};
use crate::config::secret_source;
use crate::pipeline::signature::{
    self, CompiledScheme, HeaderOverrides, HmacAlgorithm, SchemeVerifier, SigEncoding,
    SignatureError, SignedRequest, Verifier,
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
    /// A preset whose sender puts the shared secret itself in a header (GitLab's
    /// `X-Gitlab-Token`): checked like `header`, before the body is read.
    Token {
        /// The preset name.
        scheme: String,
        /// The header carrying the token.
        header: HeaderName,
        /// Accepted tokens.
        tokens: Vec<Secret>,
    },
}

/// Default signed-timestamp tolerance, both directions (the schemes' own libraries use 5 min).
const DEFAULT_TOLERANCE: &str = "5m";

impl Auth {
    /// Builds the check from the config, resolving `env:`/`file:` secrets. Errors carry
    /// the key suffix below `auth` (e.g. `.tokens[1]`).
    ///
    /// `public_url` is the route's `public_url`, required by schemes that sign the URL.
    pub fn compile(raw: RawAuth, public_url: Option<&str>) -> Result<Self, (String, String)> {
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

    /// The `type` name, as in the config.
    pub fn type_name(&self) -> &str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic(_) => "basic",
            Auth::Header(_) => "header",
            Auth::Signature(v) => v.type_name(),
            Auth::Token { scheme, .. } => scheme,
        }
    }

    /// Verifies a body signature, for the signature schemes; other types pass.
    pub fn verify_body(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: std::time::SystemTime,
    ) -> Result<(), SignatureError> {
        self.verify_request(&SignedRequest {
            headers,
            query: None,
            body,
            now,
        })
    }

    /// Verifies a body signature with everything a scheme may sign (the query string
    /// too, for schemes that sign the URL); other types pass.
    pub fn verify_request(&self, req: &SignedRequest<'_>) -> Result<(), SignatureError> {
        match self {
            Auth::Signature(v) => v.verify_request(req),
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
            Auth::Token { header, tokens, .. } => {
                let value = single(headers, header)?;
                any_matches(tokens.iter(), value)
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

    /// The endpoint handshake the route's sender performs, if its signature scheme has
    /// one (see [`Verifier::handshake`]).
    pub fn handshake(&self) -> Option<crate::providers::scheme::Handshake> {
        match self {
            Auth::Signature(v) => v.handshake(),
            _ => None,
        }
    }

    /// Headers holding credentials this check consumed; they are not forwarded.
    pub fn consumed_headers(&self) -> Vec<HeaderName> {
        match self {
            Auth::None => Vec::new(),
            Auth::Bearer(_) | Auth::Basic(_) => vec![AUTHORIZATION],
            Auth::Header(checks) => checks.iter().map(|(n, _)| n.clone()).collect(),
            Auth::Signature(v) => v.consumed_headers(),
            Auth::Token { header, .. } => vec![header.clone()],
        }
    }
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

    impl Auth {
        fn compile_for_test(raw: RawAuth) -> Result<Self, (String, String)> {
            Self::compile(raw, None)
        }
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
        let auth = Auth::compile_for_test(RawAuth::Bearer {
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
        let auth = Auth::compile_for_test(RawAuth::Basic { users }).expect("auth");
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
        let auth = Auth::compile_for_test(RawAuth::Header { headers }).expect("auth");
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
        assert!(Auth::compile_for_test(RawAuth::Bearer { tokens: vec![] }).is_err());
        let err = Auth::compile_for_test(RawAuth::Bearer {
            tokens: vec!["env:HOOKGATE_UNSET_TOKEN_VAR".into()],
        })
        .expect_err("unset env");
        assert_eq!(err.0, ".tokens[0]");
        assert!(err.1.contains("HOOKGATE_UNSET_TOKEN_VAR"));
    }
}
