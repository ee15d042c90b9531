//! `auth = { type = "jwt", ... }`: OAuth client-credentials senders (Apono, Grafana,
//! Alertmanager) present `Authorization: Bearer <JWT>`, issued by their identity
//! provider. The token is checked with the `jsonwebtoken` crate (RustCrypto backend)
//! against the public keys of a JWKS, before the body is read.
//!
//! What is refused, and why:
//! - `alg` outside the route's `algorithms` (default RS256, ES256, EdDSA). Only
//!   asymmetric algorithms can be configured, so `alg: none` (which the crate does not
//!   even parse) and HMAC-with-the-public-key confusion cannot pass; symmetric (`oct`)
//!   keys in a JWKS are ignored.
//! - a signature no key of the JWKS verifies: with a `kid`, only that key is tried, and
//!   only keys whose type (and curve, and `alg` if the JWK names one) fit the token's `alg`.
//! - `exp` past (or missing), `nbf` in the future, each beyond `leeway`; `iss` not one of
//!   `issuer`, `aud` not one of `audience` (all three are required claims).
//!
//! Keys: a `file:` JWKS is read at start-up (a bad file is a config error) and reread
//! when it changes (checked at most once a second, on requests) and on every reload
//! (SIGHUP); an unreadable or invalid new version keeps the last good keys. An `https://`
//! JWKS is fetched at start-up by a background task and refreshed every
//! [`HTTPS_REFRESH`] (after a failure every [`HTTPS_RETRY`]), keeping the last good keys
//! when a fetch fails; until the first fetch succeeds, every token is refused.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use tokio::time::Instant;

use super::auth::AuthError;

/// How often an `https://` JWKS is fetched again.
pub const HTTPS_REFRESH: Duration = Duration::from_secs(300);
/// How soon a failed `https://` JWKS fetch is tried again.
pub const HTTPS_RETRY: Duration = Duration::from_secs(30);
/// How often, at most, a `file:` JWKS is checked for a change.
pub const FILE_RECHECK: Duration = Duration::from_secs(1);
/// Largest JWKS document read (file or network).
pub const MAX_JWKS_BYTES: u64 = 1024 * 1024;
/// Longest token looked at.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// Where the keys come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwksSource {
    /// A local JWKS file (resolved against the config file's directory).
    File(PathBuf),
    /// An `https://` URL.
    Https(String),
}

/// `auth = { type = "jwt", ... }`, checked: plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwtSpec {
    /// The JWKS.
    pub source: JwksSource,
    /// Accepted `iss` values.
    pub issuers: Vec<String>,
    /// Accepted `aud` values.
    pub audiences: Vec<String>,
    /// Accepted `alg` values (asymmetric only).
    pub algorithms: Vec<Algorithm>,
    /// Clock skew allowed on `exp` and `nbf`.
    pub leeway: Duration,
}

/// The algorithms a route may name: asymmetric only.
pub const ALLOWED_ALGORITHMS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA",
];

/// The default `algorithms`.
pub const DEFAULT_ALGORITHMS: &[Algorithm] =
    &[Algorithm::RS256, Algorithm::ES256, Algorithm::EdDSA];

/// Parses one `algorithms` entry; HMAC and `none` are refused with the reason.
pub fn parse_algorithm(name: &str) -> Result<Algorithm, String> {
    if !ALLOWED_ALGORITHMS.contains(&name) {
        return Err(
            if name.starts_with("HS") || name.eq_ignore_ascii_case("none") {
                format!(
                    "{name:?} is refused: only asymmetric algorithms are accepted (an HMAC key would \
                 be the public key itself, and `none` is no signature)"
                )
            } else {
                format!("{name:?} is not one of {}", ALLOWED_ALGORITHMS.join(", "))
            },
        );
    }
    name.parse::<Algorithm>()
        .map_err(|_| format!("{name:?} is not an algorithm"))
}

/// One usable public key.
struct Key {
    kid: Option<String>,
    /// The JWK's own `alg`, when it names one.
    alg: Option<Algorithm>,
    kind: KeyKind,
    key: DecodingKey,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum KeyKind {
    Rsa,
    P256,
    P384,
    Ed25519,
}

impl KeyKind {
    fn fits(self, alg: Algorithm) -> bool {
        match self {
            KeyKind::Rsa => matches!(
                alg,
                Algorithm::RS256
                    | Algorithm::RS384
                    | Algorithm::RS512
                    | Algorithm::PS256
                    | Algorithm::PS384
                    | Algorithm::PS512
            ),
            KeyKind::P256 => alg == Algorithm::ES256,
            KeyKind::P384 => alg == Algorithm::ES384,
            KeyKind::Ed25519 => alg == Algorithm::EdDSA,
        }
    }
}

/// The keys of one JWKS version.
#[derive(Default)]
pub struct KeySet {
    keys: Vec<Key>,
}

impl KeySet {
    /// Parses a JWKS document, keeping the signature keys it can use. Fails when it is not
    /// a JWKS or holds no usable key.
    pub fn parse(bytes: &[u8]) -> Result<KeySet, String> {
        let set: JwkSet =
            serde_json::from_slice(bytes).map_err(|e| format!("not a JWKS document: {e}"))?;
        let mut keys = Vec::new();
        for jwk in &set.keys {
            if jwk.common.public_key_use == Some(PublicKeyUse::Encryption) {
                continue;
            }
            let kind = match &jwk.algorithm {
                AlgorithmParameters::RSA(_) => KeyKind::Rsa,
                AlgorithmParameters::EllipticCurve(p) => match p.curve {
                    EllipticCurve::P256 => KeyKind::P256,
                    EllipticCurve::P384 => KeyKind::P384,
                    _ => continue,
                },
                AlgorithmParameters::OctetKeyPair(p) => {
                    // The crate slices the first 32 bytes of `x`: anything else is refused
                    // here rather than trusted there.
                    let x = base64::Engine::decode(
                        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
                        p.x.trim_end_matches('='),
                    );
                    if p.curve != EllipticCurve::Ed25519 || x.map_or(true, |x| x.len() != 32) {
                        continue;
                    }
                    KeyKind::Ed25519
                }
                // Symmetric keys have no place in a set of public keys.
                _ => continue,
            };
            let alg = match jwk.common.key_algorithm {
                None => None,
                Some(a) => match a.to_string().parse::<Algorithm>() {
                    Ok(alg) => Some(alg),
                    Err(_) => continue,
                },
            };
            let Ok(key) = DecodingKey::from_jwk(jwk) else {
                continue;
            };
            keys.push(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                kind,
                key,
            });
        }
        if keys.is_empty() {
            return Err(
                "the JWKS holds no usable signature key (RSA, P-256, P-384, Ed25519)".into(),
            );
        }
        Ok(KeySet { keys })
    }

    fn candidates<'k>(
        &'k self,
        alg: Algorithm,
        kid: Option<&'k str>,
    ) -> impl Iterator<Item = &'k Key> + 'k {
        self.keys.iter().filter(move |k| {
            k.kind.fits(alg)
                && k.alg.is_none_or(|a| a == alg)
                && kid.is_none_or(|kid| k.kid.as_deref() == Some(kid))
        })
    }

    /// How many usable keys it holds.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

/// Reads a JWKS file, bounded.
pub fn read_file(path: &std::path::Path) -> Result<(KeySet, FileStamp), String> {
    use std::io::Read as _;
    let file =
        std::fs::File::open(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let stamp = FileStamp::of(&file);
    let mut bytes = Vec::new();
    file.take(MAX_JWKS_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if bytes.len() as u64 > MAX_JWKS_BYTES {
        return Err(format!(
            "{} is larger than {MAX_JWKS_BYTES} bytes",
            path.display()
        ));
    }
    let keys = KeySet::parse(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok((keys, stamp))
}

/// What tells a changed file apart: modification time and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FileStamp(Option<SystemTime>, u64);

impl FileStamp {
    fn of(file: &std::fs::File) -> FileStamp {
        file.metadata()
            .map(|m| FileStamp(m.modified().ok(), m.len()))
            .unwrap_or_default()
    }

    fn of_path(path: &std::path::Path) -> Option<FileStamp> {
        std::fs::metadata(path)
            .ok()
            .map(|m| FileStamp(m.modified().ok(), m.len()))
    }
}

#[derive(Default)]
struct FileState {
    stamp: FileStamp,
    checked: Option<Instant>,
}

/// A route's JWT check with its live keys.
pub struct JwtVerifier {
    spec: JwtSpec,
    validation: Vec<(Algorithm, Validation)>,
    keys: ArcSwap<KeySet>,
    file: Mutex<FileState>,
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("spec", &self.spec)
            .field("keys", &self.keys.load().len())
            .finish()
    }
}

impl JwtVerifier {
    /// Builds the verifier; a `file:` JWKS is read now (its errors are config errors).
    pub fn new(spec: JwtSpec) -> Result<Arc<JwtVerifier>, String> {
        let (keys, stamp) = match &spec.source {
            JwksSource::File(path) => {
                let (keys, stamp) = read_file(path)?;
                (keys, stamp)
            }
            JwksSource::Https(_) => (KeySet::default(), FileStamp::default()),
        };
        let validation = spec
            .algorithms
            .iter()
            .map(|&alg| {
                let mut v = Validation::new(alg);
                v.leeway = spec.leeway.as_secs();
                v.validate_exp = true;
                v.validate_nbf = true;
                v.validate_aud = true;
                v.set_required_spec_claims(&["exp", "iss", "aud"]);
                v.set_issuer(&spec.issuers);
                v.set_audience(&spec.audiences);
                (alg, v)
            })
            .collect();
        Ok(Arc::new(JwtVerifier {
            spec,
            validation,
            keys: ArcSwap::from_pointee(keys),
            file: Mutex::new(FileState {
                stamp,
                checked: Some(Instant::now()),
            }),
        }))
    }

    /// The spec it was built from.
    pub fn spec(&self) -> &JwtSpec {
        &self.spec
    }

    /// Checks a bearer token.
    pub fn verify(&self, token: &[u8]) -> Result<(), AuthError> {
        let refuse = AuthError::InvalidToken;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(refuse("token too long"));
        }
        let token = std::str::from_utf8(token).map_err(|_| refuse("malformed token"))?;
        // `alg: none` and unknown algorithms fail here: the crate has no such variant.
        let header = jsonwebtoken::decode_header(token).map_err(|_| refuse("malformed token"))?;
        let Some((_, validation)) = self.validation.iter().find(|(a, _)| *a == header.alg) else {
            return Err(refuse("algorithm not accepted"));
        };
        self.recheck_file();
        let keys = self.keys.load();
        let mut last = refuse("no key of the JWKS fits the token");
        for key in keys.candidates(header.alg, header.kid.as_deref()) {
            match jsonwebtoken::decode::<serde::de::IgnoredAny>(token, &key.key, validation) {
                Ok(_) => return Ok(()),
                Err(e) => {
                    use jsonwebtoken::errors::ErrorKind as K;
                    last = refuse(match e.kind() {
                        K::InvalidSignature | K::InvalidEcdsaKey | K::InvalidEddsaKey => {
                            "signature does not verify"
                        }
                        K::InvalidRsaKey(_) | K::InvalidKeyFormat => "signature does not verify",
                        // Claims do not depend on the key: no other key can do better.
                        K::ExpiredSignature => return Err(refuse("token expired")),
                        K::ImmatureSignature => return Err(refuse("token not yet valid")),
                        K::InvalidIssuer => return Err(refuse("issuer not accepted")),
                        K::InvalidAudience => return Err(refuse("audience not accepted")),
                        K::MissingRequiredClaim(_) => {
                            return Err(refuse("required claim missing (exp, iss, aud)"));
                        }
                        _ => return Err(refuse("malformed token")),
                    });
                }
            }
        }
        Err(last)
    }

    /// Rereads a `file:` JWKS that changed since it was read (at most once per
    /// [`FILE_RECHECK`]); an unreadable or invalid version keeps the last good keys.
    fn recheck_file(&self) {
        let JwksSource::File(path) = &self.spec.source else {
            return;
        };
        let Ok(mut state) = self.file.try_lock() else {
            // Another request is checking right now.
            return;
        };
        let now = Instant::now();
        if state
            .checked
            .is_some_and(|t| now.saturating_duration_since(t) < FILE_RECHECK)
        {
            return;
        }
        state.checked = Some(now);
        if FileStamp::of_path(path).is_none_or(|s| s == state.stamp) {
            return;
        }
        match read_file(path) {
            Ok((keys, stamp)) => {
                tracing::info!(path = %path.display(), keys = keys.len(), "JWKS file reread.");
                self.keys.store(Arc::new(keys));
                state.stamp = stamp;
            }
            Err(e) => {
                tracing::warn!(error = %e, "JWKS file unusable; keeping the last good keys.");
                // Not stamped: the next check tries again.
            }
        }
    }

    /// Starts the background refresh of an `https://` JWKS (a no-op for a file, or
    /// outside a tokio runtime). The task ends once the verifier is dropped (a reload
    /// replaced the route).
    pub fn start_refresh(self: &Arc<Self>) {
        let JwksSource::Https(url) = &self.spec.source else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let url = url.clone();
        let weak = Arc::downgrade(self);
        runtime.spawn(async move {
            let _ = rustls::crypto::ring::default_provider().install_default();
            let client = match reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(10))
                .https_only(true)
                .build()
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!(error = %e, "JWKS client could not be built; JWT routes refuse every token.");
                    return;
                }
            };
            loop {
                let Some(verifier) = weak.upgrade() else {
                    return;
                };
                let wait = match fetch(&client, &url).await {
                    Ok(keys) => {
                        tracing::info!(url = %url, keys = keys.len(), "JWKS fetched.");
                        verifier.keys.store(Arc::new(keys));
                        HTTPS_REFRESH
                    }
                    Err(e) => {
                        tracing::warn!(url = %url, error = %e, "JWKS fetch failed; keeping the last good keys.");
                        HTTPS_RETRY
                    }
                };
                drop(verifier);
                tokio::time::sleep(wait).await;
            }
        });
    }
}

async fn fetch(client: &reqwest::Client, url: &str) -> Result<KeySet, String> {
    let mut response = client
        .get(url)
        .header(http::header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("status {}", response.status()));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(|e| e.to_string())? {
        if (bytes.len() + chunk.len()) as u64 > MAX_JWKS_BYTES {
            return Err(format!("larger than {MAX_JWKS_BYTES} bytes"));
        }
        bytes.extend_from_slice(&chunk);
    }
    KeySet::parse(&bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_asymmetric_algorithms_can_be_named() {
        assert!(parse_algorithm("HS256").is_err());
        assert!(parse_algorithm("none").is_err());
        assert!(parse_algorithm("ES256").is_ok());
        assert!(parse_algorithm("EdDSA").is_ok());
    }

    #[test]
    fn symmetric_and_short_keys_are_ignored() {
        let oct = br#"{"keys":[{"kty":"oct","k":"c2VjcmV0"}]}"#;
        assert!(KeySet::parse(oct).is_err());
        let short = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
        assert!(KeySet::parse(short).is_err());
        let ok = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#;
        assert_eq!(KeySet::parse(ok).map(|k| k.len()).ok(), Some(1));
    }
}
