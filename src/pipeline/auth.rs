//! Credential checks that need only the headers: bearer tokens, basic auth and the
//! custom-header secrets that Apono, Wallarm and Flashduty senders are configured with.
//!
//! They run before the body is read, so an unauthenticated sender never costs a body
//! read. Every comparison goes through [`Secret::matches`] (constant time), and every
//! configured secret is compared even after a match, so timing does not reveal which
//! rotation slot matched. Signature schemes, which need the body, live in `signature`:
//! for them this stage only checks that a signature header is present, and
//! [`Auth::verify_request`] does the verification once the body is read.

use base64::Engine as _;
use http::{HeaderMap, HeaderName, header::AUTHORIZATION};

use crate::pipeline::signature::{SignatureError, SignedRequest, Verifier};
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
    /// A JWT bearer token was refused (the fixed reason is logged, never the token).
    #[error("token refused: {0}")]
    InvalidToken(&'static str),
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
    /// `Authorization: Bearer <JWT>` verified against a JWKS.
    Jwt(std::sync::Arc<super::jwt::JwtVerifier>),
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

impl Auth {
    /// The `type` name, as in the config.
    pub fn type_name(&self) -> &str {
        match self {
            Auth::None => "none",
            Auth::Bearer(_) => "bearer",
            Auth::Basic(_) => "basic",
            Auth::Header(_) => "header",
            Auth::Jwt(_) => "jwt",
            Auth::Signature(v) => v.type_name(),
            Auth::Token { scheme, .. } => scheme,
        }
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
                let mut parts = decoded.splitn(2, |&b| b == b':');
                let (Some(user), Some(password)) = (parts.next(), parts.next()) else {
                    return Err(AuthError::Malformed("Authorization".into()));
                };
                let mut ok = false;
                for (u, p) in users {
                    // `&` not `&&`: both comparisons run for every entry.
                    ok |= u.matches(user) & p.matches(password);
                }
                if ok { Ok(()) } else { Err(AuthError::NoMatch) }
            }
            Auth::Jwt(verifier) => {
                let value = single(headers, &AUTHORIZATION)?;
                let token = strip_scheme(value, b"bearer")
                    .ok_or_else(|| AuthError::Malformed("Authorization".into()))?;
                verifier.verify(token)
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

    /// The configured secret that verifies `req` (see [`Verifier::matching_secret`]).
    pub fn matching_secret(&self, req: &SignedRequest<'_>) -> Option<&Secret> {
        match self {
            Auth::Signature(v) => v.matching_secret(req),
            _ => None,
        }
    }

    /// Headers holding credentials this check consumed; they are not forwarded.
    pub fn consumed_headers(&self) -> Vec<HeaderName> {
        match self {
            Auth::None => Vec::new(),
            Auth::Bearer(_) | Auth::Basic(_) | Auth::Jwt(_) => vec![AUTHORIZATION],
            Auth::Header(checks) => checks.iter().map(|(n, _)| n.clone()).collect(),
            Auth::Signature(v) => v.consumed_headers(),
            Auth::Token { header, .. } => vec![header.clone()],
        }
    }
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
