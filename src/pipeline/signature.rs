//! Signature verification: proves that a webhook body was produced by a sender that holds
//! a shared secret (HMAC) or a private key (ed25519), and, where the scheme signs a
//! timestamp, that the request is fresh.
//!
//! This stage runs after the body has been read and before it is parsed: every scheme signs
//! the **raw bytes as received**, so nothing here looks at JSON (DESIGN.md §1). Only a
//! request that passes reaches the dedup store, so unsigned traffic never touches it.
//!
//! **One engine over scheme data.** Every sender's scheme is a
//! [`SchemeSpec`] in the bundled presets (header
//! names, signed-content template, MAC, encoding, header layout, timestamp and tolerance);
//! [`CompiledScheme`] turns one into header names and template parts once, and
//! [`CompiledScheme::verify`] checks a request against it. Standard Webhooks (and Svix),
//! GitHub, Stripe, Slack, Shopify, Twilio, GitLab, Zoom, Twitch, Square, PagerDuty and
//! Grafana are all rows of data; the generic `hmac` type is a scheme built from the route's
//! own keys. The typed [`GithubScheme`], [`StripeScheme`], ... remain as constructors for
//! library users and run on the same engine with the bundled spec. The facts and the
//! official test vectors are in `shared/providers/FACTS.md` §6.
//!
//! Invariants:
//! - Every comparison of a MAC or token is constant-time (`subtle`), and every secret list
//!   allows rotation: any one secret (or public key) may match, and every secret is tried.
//! - A signed timestamp outside the tolerance is rejected in **both** directions, even when
//!   the signature is right (replay protection; DESIGN.md §3).
//! - The body is never copied: the MAC (and the ed25519 hash) is fed the signed content in
//!   pieces. (Twilio's form parameters are decoded and sorted: that is what it signs.)
//! - Header data cannot make this code panic or do unbounded work: signature and timestamp
//!   headers are capped at [`MAX_HEADER_BYTES`], at most [`MAX_SIGNATURE_ENTRIES`] entries
//!   of a signature list are examined, and decoding goes into fixed-size stack buffers.
//! - Errors name the header and a fixed reason, never secret material nor the presented
//!   value (which is attacker-controlled and would otherwise end up in logs).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use ed25519_dalek::ed25519::signature::MultipartVerifier as _;
use ed25519_dalek::{Signature, VerifyingKey};
use hmac::digest::block_api::EagerHash;
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName};
use sha2::Digest as _;
use subtle::{Choice, ConstantTimeEq};

use crate::providers::scheme::{Handshake, KeyForm, SchemeSpec, SigFormat, TimestampFormat};
pub use crate::providers::scheme::{HmacAlgorithm, SigEncoding};
use crate::secret::Secret;

/// Longest signature, timestamp or id header value accepted, in bytes.
///
/// Real headers are far shorter (a Standard Webhooks header with a dozen rotated
/// signatures is under 1 KiB); the cap bounds the parsing work an attacker can cause.
pub const MAX_HEADER_BYTES: usize = 4096;

/// How many entries of one signature header are examined; the rest are ignored.
///
/// Applies to the space-separated Standard Webhooks list, PagerDuty's comma list and to
/// Stripe's comma-separated items (where `t=` counts as an item; Stripe sends it first).
/// It bounds the work per request: each ed25519 entry costs a hash of the body per key.
pub const MAX_SIGNATURE_ENTRIES: usize = 16;

/// How many `v1a` (ed25519) signatures of one request are tried; a sender rotating keys
/// lists two, so four leaves room while bounding the public-key work an unsigned request
/// can cause.
pub const MAX_V1A_ENTRIES: usize = 4;

/// Largest MAC or signature we decode: HMAC-SHA512 and ed25519 are both 64 bytes.
const MAX_TAG_BYTES: usize = 64;

/// Scratch space for decoding a presented base64 tag: the largest tag is 64 bytes (88
/// characters), plus slack because `base64`'s `decode_slice` may ask for room for its
/// decoded-length estimate.
const BASE64_SCRATCH_BYTES: usize = 96;

/// The generic `hmac` scheme: one header holding `prefix` followed by the encoded
/// HMAC of the raw body.
#[derive(Debug, Clone)]
pub struct HmacScheme {
    /// The header carrying the signature.
    pub header: HeaderName,
    /// The hash behind the HMAC.
    pub algorithm: HmacAlgorithm,
    /// How the MAC is encoded after the prefix.
    pub encoding: SigEncoding,
    /// Literal text that must precede the MAC (for example `sha256=`); empty for none.
    pub prefix: String,
    /// Keys, used as raw bytes; any one may match (rotation).
    pub secrets: Vec<Secret>,
}

/// Standard Webhooks (spec v1.0.0), which is also Svix's scheme: the bundled
/// `standard-webhooks` preset's scheme with these keys.
#[derive(Debug, Clone)]
pub struct StandardWebhooksScheme {
    /// HMAC keys, already decoded from `whsec_<base64>` (see [`decode_whsec`]).
    pub secrets: Vec<Secret>,
    /// ed25519 public keys, decoded from `whpk_<base64>` (see [`decode_whpk`]). Weak
    /// (small-order) keys never verify anything.
    pub public_keys: Vec<VerifyingKey>,
    /// Largest accepted distance between the signed timestamp and now, either way
    /// (the official libraries use 5 minutes).
    pub tolerance: Duration,
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`. No timestamp,
/// so no replay window: rely on dedup by `X-GitHub-Delivery`.
#[derive(Debug, Clone)]
pub struct GithubScheme {
    /// Webhook secrets, used as their raw UTF-8 bytes.
    pub secrets: Vec<Secret>,
}

/// Stripe: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>...][,v0=<hex>]` over `t.body`.
#[derive(Debug, Clone)]
pub struct StripeScheme {
    /// Endpoint secrets. The key is the secret string's bytes **including** its `whsec_`
    /// prefix: unlike Standard Webhooks, Stripe does not base64-decode it.
    pub secrets: Vec<Secret>,
    /// Largest accepted distance between `t` and now. Stripe's SDK checks only the past;
    /// we check both directions, as for every other timestamped scheme (DESIGN.md §3).
    pub tolerance: Duration,
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:<timestamp>:<body>`, with the timestamp
/// in `X-Slack-Request-Timestamp`.
#[derive(Debug, Clone)]
pub struct SlackScheme {
    /// Signing secrets, used as their raw UTF-8 bytes.
    pub secrets: Vec<Secret>,
    /// Largest accepted distance between the timestamp and now, either way.
    pub tolerance: Duration,
}

/// A route's keys for a compiled scheme: what `auth = { type = "<preset>", ... }` builds.
#[derive(Debug, Clone)]
pub struct SchemeVerifier {
    /// The scheme, with the route's header overrides applied.
    pub scheme: CompiledScheme,
    /// Keys (already in the scheme's key form, e.g. `whsec_` decoded); any may match.
    pub secrets: Vec<Secret>,
    /// ed25519 public keys, for schemes whose list has an ed25519 version.
    pub public_keys: Vec<VerifyingKey>,
    /// Largest accepted distance between the signed timestamp and now, either way.
    pub tolerance: Duration,
    /// The URL the sender was configured with (scheme, host, path; no query), for
    /// schemes that sign it.
    pub public_url: Option<String>,
}

/// The signature check of one route. `Debug` prints no secret (see [`Secret`]).
#[derive(Debug, Clone)]
pub enum Verifier {
    /// The generic `hmac` scheme.
    Hmac(HmacScheme),
    /// Standard Webhooks / Svix.
    StandardWebhooks(StandardWebhooksScheme),
    /// GitHub's `X-Hub-Signature-256`.
    Github(GithubScheme),
    /// Stripe's `Stripe-Signature`.
    Stripe(StripeScheme),
    /// Slack's `X-Slack-Signature`.
    Slack(SlackScheme),
    /// Any scheme described as data (what the config compiler builds).
    Scheme(Box<SchemeVerifier>),
}

/// What a scheme may look at in a request.
#[derive(Debug, Clone, Copy)]
pub struct SignedRequest<'a> {
    /// The request headers.
    pub headers: &'a HeaderMap,
    /// The raw query string, as received (without `?`).
    pub query: Option<&'a str>,
    /// The raw body, as received.
    pub body: &'a [u8],
    /// The wall clock (injected so tests can fix it).
    pub now: SystemTime,
}

/// Why a request's signature was rejected. Every variant is a 401 `unauthorized`
/// (DESIGN.md §4); the variant is for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    /// A header the scheme needs is absent.
    #[error("missing header {0}")]
    MissingHeader(HeaderName),
    /// A header is present but cannot be parsed.
    #[error("malformed header {header}: {reason}")]
    MalformedHeader {
        /// The offending header.
        header: HeaderName,
        /// A fixed description of what is wrong (never the value itself).
        reason: &'static str,
    },
    /// A signature, timestamp or id header is longer than [`MAX_HEADER_BYTES`].
    #[error("header {0} is longer than {MAX_HEADER_BYTES} bytes")]
    HeaderTooLong(HeaderName),
    /// The signed timestamp is further in the past than the tolerance allows.
    #[error("signed timestamp is too old")]
    TimestampTooOld,
    /// The signed timestamp is further in the future than the tolerance allows.
    #[error("signed timestamp is too far in the future")]
    TimestampTooNew,
    /// The signature header holds no entry of a version this scheme supports
    /// (for example only `v2,` entries in a Standard Webhooks header).
    #[error("no signature of a supported version")]
    NoSupportedSignature,
    /// The verifier has no secret and no public key, so nothing can match. The config
    /// compiler should prevent this; verification fails closed all the same.
    #[error("no secret or public key configured")]
    NoKeysConfigured,
    /// The bundled scheme this verifier needs is missing or invalid (a build defect,
    /// caught by the presets' unit tests); verification fails closed.
    #[error("signature scheme unavailable")]
    SchemeUnavailable,
    /// The body does not hash to the value the signed URL carries (Twilio `bodySHA256`).
    #[error("body does not match the signed body hash")]
    BodyHashMismatch,
    /// Well-formed signatures were presented but none matched any secret or key.
    #[error("no signature matched")]
    NoMatch,
}

impl SignatureError {
    /// A short, stable, snake_case label for metrics (bounded cardinality).
    pub fn reason(&self) -> &'static str {
        match self {
            SignatureError::MissingHeader(_) => "missing_header",
            SignatureError::MalformedHeader { .. } => "malformed_header",
            SignatureError::HeaderTooLong(_) => "header_too_long",
            SignatureError::TimestampTooOld => "timestamp_too_old",
            SignatureError::TimestampTooNew => "timestamp_too_new",
            SignatureError::NoSupportedSignature => "no_supported_signature",
            SignatureError::NoKeysConfigured => "no_keys_configured",
            SignatureError::SchemeUnavailable => "scheme_unavailable",
            SignatureError::BodyHashMismatch => "body_hash_mismatch",
            SignatureError::NoMatch => "no_match",
        }
    }
}

/// Why a configured `whsec_`/`whpk_` key could not be decoded.
///
/// Deliberately carries no detail from the base64 decoder: its messages quote the
/// offending byte and offset, which would leak part of a secret into the error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The value (after the optional prefix) is not standard padded base64.
    #[error("key is not valid base64")]
    InvalidBase64,
    /// The value decodes to zero bytes.
    #[error("key is empty")]
    Empty,
    /// A public key that does not decode to exactly 32 bytes.
    #[error("public key must be {expected} bytes, got {actual}")]
    WrongLength {
        /// Required length in bytes.
        expected: usize,
        /// Decoded length in bytes.
        actual: usize,
    },
    /// 32 bytes that are not a valid ed25519 point.
    #[error("public key is not a valid ed25519 point")]
    InvalidPublicKey,
    /// A small-order ed25519 key, for which signatures can be forged for almost any
    /// message.
    #[error("public key is weak (small order)")]
    WeakPublicKey,
}

/// Decodes a Standard Webhooks secret, `whsec_<base64>`, into its key bytes.
///
/// The `whsec_` prefix is optional, as in the official libraries.
pub fn decode_whsec(value: &[u8]) -> Result<Secret, KeyError> {
    let encoded = value.strip_prefix(b"whsec_").unwrap_or(value);
    let key = BASE64
        .decode(encoded)
        .map_err(|_| KeyError::InvalidBase64)?;
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    Ok(Secret::new(key))
}

/// Decodes a Standard Webhooks public key, `whpk_<base64 of 32 bytes>`.
///
/// The `whpk_` prefix is optional, like `whsec_` in [`decode_whsec`]. Weak (small-order)
/// keys are refused because the verification used here is the standard (non-strict) one.
pub fn decode_whpk(value: &[u8]) -> Result<VerifyingKey, KeyError> {
    const KEY_LEN: usize = ed25519_dalek::PUBLIC_KEY_LENGTH;
    let encoded = value.strip_prefix(b"whpk_").unwrap_or(value);
    // Runs once at start-up, so a heap buffer is fine here (unlike on the request path).
    let decoded = BASE64
        .decode(encoded)
        .map_err(|_| KeyError::InvalidBase64)?;
    let bytes: [u8; KEY_LEN] =
        decoded
            .as_slice()
            .try_into()
            .map_err(|_| KeyError::WrongLength {
                expected: KEY_LEN,
                actual: decoded.len(),
            })?;
    let key = VerifyingKey::from_bytes(&bytes).map_err(|_| KeyError::InvalidPublicKey)?;
    if key.is_weak() {
        return Err(KeyError::WeakPublicKey);
    }
    Ok(key)
}

// === the compiled scheme ===

/// One header family, as header names.
#[derive(Debug, Clone)]
struct Family {
    signature: HeaderName,
    timestamp: Option<HeaderName>,
    id: Option<HeaderName>,
}

/// One piece of the signed content.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Id,
    Timestamp,
    Body,
    Url,
    Form,
    Literal(Vec<u8>),
}

/// The signature header's layout, as bytes.
#[derive(Debug, Clone)]
enum Format {
    Single {
        prefix: Vec<u8>,
    },
    List {
        separator: u8,
        version_separator: u8,
        mac: Vec<u8>,
        ed25519: Option<Vec<u8>>,
    },
    Pairs {
        timestamp_key: Vec<u8>,
        mac: Vec<u8>,
    },
    Token,
}

/// A [`SchemeSpec`] compiled for verification: header names parsed, template split into
/// parts, header overrides applied. Built once per route (or once per bundled scheme).
#[derive(Debug, Clone)]
pub struct CompiledScheme {
    name: String,
    families: Vec<Family>,
    parts: Vec<Part>,
    algorithm: HmacAlgorithm,
    encoding: SigEncoding,
    key: KeyForm,
    public_keys: bool,
    format: Format,
    timestamp: Option<TimestampFormat>,
    default_tolerance: Option<String>,
    id_forbids: Option<u8>,
    body_sha256_param: Option<String>,
    url_port_variants: bool,
    strip: Vec<HeaderName>,
    handshake: Option<Handshake>,
}

/// Route-level changes to a scheme's header names (a sender that lets its users name them,
/// like Grafana).
#[derive(Debug, Clone, Copy, Default)]
pub struct HeaderOverrides<'a> {
    /// Replaces the signature header of the first family.
    pub signature: Option<&'a str>,
    /// Names the timestamp header of the first family.
    pub timestamp: Option<&'a str>,
}

fn header_name(what: &str, name: &str) -> Result<HeaderName, String> {
    HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("{what}: {name:?} is not a header name"))
}

fn one_byte(what: &str, c: char) -> Result<u8, String> {
    u8::try_from(c)
        .ok()
        .filter(u8::is_ascii)
        .ok_or_else(|| format!("{what}: {c:?} is not one ASCII character"))
}

fn parse_template(template: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let Some((literal, after)) = rest.split_once('{') else {
            parts.push(Part::Literal(rest.as_bytes().to_vec()));
            break;
        };
        if !literal.is_empty() {
            parts.push(Part::Literal(literal.as_bytes().to_vec()));
        }
        let (field, tail) = after
            .split_once('}')
            .ok_or_else(|| format!("signed: unclosed '{{' in {template:?}"))?;
        parts.push(match field {
            "id" => Part::Id,
            "timestamp" => Part::Timestamp,
            "body" => Part::Body,
            "url" => Part::Url,
            "form" => Part::Form,
            other => return Err(format!("signed: unknown field {{{other}}}")),
        });
        rest = tail;
    }
    Ok(parts)
}

impl CompiledScheme {
    /// Compiles `spec` (the scheme of preset `name`), applying `overrides`.
    pub fn compile(
        name: &str,
        spec: &SchemeSpec,
        overrides: HeaderOverrides<'_>,
    ) -> Result<Self, String> {
        let mut families = spec
            .headers
            .iter()
            .map(|f| {
                Ok(Family {
                    signature: header_name("headers.signature", &f.signature)?,
                    timestamp: f
                        .timestamp
                        .as_deref()
                        .map(|t| header_name("headers.timestamp", t))
                        .transpose()?,
                    id: f
                        .id
                        .as_deref()
                        .map(|t| header_name("headers.id", t))
                        .transpose()?,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let first = families
            .first_mut()
            .ok_or_else(|| "headers: lists no header family".to_owned())?;
        if let Some(sig) = overrides.signature {
            first.signature = header_name("header", sig)?;
        }
        if let Some(ts) = overrides.timestamp {
            if spec.timestamp.is_none() {
                return Err(format!("timestamp_header: {name} signs no timestamp"));
            }
            first.timestamp = Some(header_name("timestamp_header", ts)?);
        }
        let format = match &spec.format {
            SigFormat::Single { prefix } => Format::Single {
                prefix: prefix.as_bytes().to_vec(),
            },
            SigFormat::List {
                separator,
                version_separator,
                mac,
                ed25519,
            } => Format::List {
                separator: one_byte("format.separator", *separator)?,
                version_separator: one_byte("format.version_separator", *version_separator)?,
                mac: mac.as_bytes().to_vec(),
                ed25519: ed25519.as_ref().map(|v| v.as_bytes().to_vec()),
            },
            SigFormat::Pairs { timestamp_key, mac } => Format::Pairs {
                timestamp_key: timestamp_key.as_bytes().to_vec(),
                mac: mac.as_bytes().to_vec(),
            },
            SigFormat::Token => Format::Token,
        };
        let mut parts = parse_template(&spec.signed)?;
        let timestamp_in_pairs = matches!(format, Format::Pairs { .. });
        let mut timestamp = spec.timestamp.as_ref().map(|t| t.format);
        if let Some(ts) = &spec.timestamp {
            let has_header = families.iter().all(|f| f.timestamp.is_some());
            if !has_header && !timestamp_in_pairs {
                if !ts.optional {
                    return Err("timestamp: no timestamp header in headers".into());
                }
                // Optional and not configured: neither the timestamp nor the literal
                // that joins it to the next field is signed.
                if let Some(at) = parts.iter().position(|p| *p == Part::Timestamp) {
                    parts.remove(at);
                    if matches!(parts.get(at), Some(Part::Literal(_))) {
                        parts.remove(at);
                    }
                }
                timestamp = None;
            }
        }
        if parts.contains(&Part::Timestamp) != timestamp.is_some() {
            return Err("signed: {timestamp} must appear exactly when a timestamp is set".into());
        }
        let has_id = families.iter().all(|f| f.id.is_some());
        if parts.contains(&Part::Id) != has_id {
            return Err("signed: {id} must appear exactly when every family names an id".into());
        }
        let is_token = matches!(format, Format::Token);
        let algorithm = match (spec.algorithm, is_token) {
            (Some(a), false) => a,
            (None, true) => HmacAlgorithm::Sha256,
            (Some(_), true) => return Err("algorithm: a token scheme has no MAC".into()),
            (None, false) => return Err("algorithm: missing".into()),
        };
        let encoding = match (spec.encoding, is_token) {
            (Some(e), _) => e,
            (None, true) => SigEncoding::Hex,
            (None, false) => return Err("encoding: missing".into()),
        };
        let strip = spec
            .strip
            .iter()
            .map(|s| header_name("strip", s))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(tolerance) = &spec.timestamp {
            humantime::parse_duration(&tolerance.tolerance)
                .map_err(|e| format!("timestamp.tolerance: {e}"))?;
        }
        Ok(CompiledScheme {
            name: name.to_owned(),
            families,
            parts,
            algorithm,
            encoding,
            key: spec.key,
            public_keys: spec.public_keys,
            format,
            timestamp,
            default_tolerance: spec.timestamp.as_ref().map(|t| t.tolerance.clone()),
            id_forbids: spec
                .id_forbids
                .map(|c| one_byte("id_forbids", c))
                .transpose()?,
            body_sha256_param: spec.body_sha256_param.clone(),
            url_port_variants: spec.url_port_variants,
            strip,
            handshake: spec.handshake,
        })
    }

    /// The scheme of the generic `hmac` auth type: `prefix` + encoded MAC of the body.
    pub fn hmac(
        header: HeaderName,
        algorithm: HmacAlgorithm,
        encoding: SigEncoding,
        prefix: &str,
    ) -> Self {
        CompiledScheme {
            name: "hmac".to_owned(),
            families: vec![Family {
                signature: header,
                timestamp: None,
                id: None,
            }],
            parts: vec![Part::Body],
            algorithm,
            encoding,
            key: KeyForm::Raw,
            public_keys: false,
            format: Format::Single {
                prefix: prefix.as_bytes().to_vec(),
            },
            timestamp: None,
            default_tolerance: None,
            id_forbids: None,
            body_sha256_param: None,
            url_port_variants: false,
            strip: Vec::new(),
            handshake: None,
        }
    }

    /// The bundled preset `name`'s scheme, compiled once and kept.
    pub fn bundled(name: &str) -> Option<&'static CompiledScheme> {
        static BUNDLED: std::sync::LazyLock<BTreeMap<String, CompiledScheme>> =
            std::sync::LazyLock::new(|| {
                crate::providers::presets()
                    .map(|all| {
                        all.iter()
                            .filter_map(|(name, p)| {
                                let spec = p.scheme.as_ref()?;
                                CompiledScheme::compile(name, spec, HeaderOverrides::default())
                                    .ok()
                                    .map(|c| (name.clone(), c))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            });
        BUNDLED.get(name)
    }

    /// The preset name (or `hmac`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the signed content includes the request URL (the route needs `public_url`).
    pub fn signs_url(&self) -> bool {
        self.parts.contains(&Part::Url)
    }

    /// Whether the header holds the secret itself rather than a MAC.
    pub fn is_token(&self) -> bool {
        matches!(self.format, Format::Token)
    }

    /// Whether the scheme takes ed25519 public keys.
    pub fn takes_public_keys(&self) -> bool {
        self.public_keys
    }

    /// Whether a timestamp is signed (so a tolerance applies).
    pub fn has_timestamp(&self) -> bool {
        self.timestamp.is_some()
    }

    /// The scheme's default tolerance (e.g. `"5m"`), when it signs a timestamp.
    pub fn default_tolerance(&self) -> Option<&str> {
        self.default_tolerance.as_deref()
    }

    /// The endpoint handshake this sender performs, if any. Answering it is a separate
    /// dispatch (issue 17, part 2); the engine only verifies signed events.
    pub fn handshake(&self) -> Option<Handshake> {
        self.handshake
    }

    /// The query parameter that carries the body's SHA-256 when the body is not form
    /// parameters (Twilio's `bodySHA256`), if the scheme has one.
    pub fn body_sha256_param(&self) -> Option<&str> {
        self.body_sha256_param.as_deref()
    }

    /// The header carrying the signature (or the token), of the first family.
    pub fn signature_header(&self) -> Option<&HeaderName> {
        self.families.first().map(|f| &f.signature)
    }

    /// Turns a configured secret into a MAC key, per the scheme's key form.
    pub fn decode_secret(&self, secret: &[u8]) -> Result<Secret, KeyError> {
        match self.key {
            KeyForm::Raw => Ok(Secret::new(secret.to_vec())),
            KeyForm::Whsec => decode_whsec(secret),
        }
    }

    /// The headers this scheme consumes: every family's signature and timestamp, and the
    /// extra `strip` headers. Ids are kept: they are not credentials, and they are the
    /// sender's idempotency key, useful to the upstream.
    pub fn consumed_headers(&self) -> Vec<HeaderName> {
        let mut names = Vec::new();
        for family in &self.families {
            names.push(family.signature.clone());
            names.extend(family.timestamp.clone());
        }
        names.extend(self.strip.iter().cloned());
        names
    }

    /// Whether a signature header of any family is present; on `Err`, the expected one.
    pub fn signature_present(&self, headers: &HeaderMap) -> Result<(), HeaderName> {
        if self
            .families
            .iter()
            .any(|f| headers.contains_key(&f.signature))
        {
            return Ok(());
        }
        self.families
            .first()
            .map_or(Ok(()), |f| Err(f.signature.clone()))
    }

    /// Verifies `req` against this scheme with these keys.
    ///
    /// `now` is injected (the wall clock in production, fixed in tests) because the
    /// timestamp tolerance is about wall-clock time. Timestamps are whole seconds; `now`
    /// is truncated to whole seconds before the tolerance is applied, as the official
    /// libraries do.
    pub fn verify(
        &self,
        secrets: &[Secret],
        public_keys: &[VerifyingKey],
        tolerance: Duration,
        public_url: Option<&str>,
        req: &SignedRequest<'_>,
    ) -> Result<(), SignatureError> {
        if secrets.is_empty() && public_keys.is_empty() {
            return Err(SignatureError::NoKeysConfigured);
        }
        let headers = req.headers;
        // One family or the other, never a mix: a request carrying any header of a
        // family is a request of that family and must carry all of them.
        let family = self
            .families
            .iter()
            .find(|f| {
                headers.contains_key(&f.signature)
                    || f.timestamp
                        .as_ref()
                        .is_some_and(|t| headers.contains_key(t))
                    || f.id.as_ref().is_some_and(|i| headers.contains_key(i))
            })
            .or_else(|| self.families.first())
            .ok_or(SignatureError::SchemeUnavailable)?;

        let id = match &family.id {
            Some(name) => {
                let id = required_header(headers, name)?;
                // The id is joined to the other fields by this byte, so it inside the id
                // would make the signed content ambiguous (Standard Webhooks forbids it).
                if let Some(b) = self.id_forbids
                    && id.contains(&b)
                {
                    return Err(malformed(name, "id contains '.'"));
                }
                Some(id)
            }
            None => None,
        };
        let mut ts_raw = None;
        if let (Some(name), Some(format)) = (&family.timestamp, self.timestamp) {
            let raw = required_header(headers, name)?;
            check_freshness(parse_timestamp(name, format, raw)?, req.now, tolerance)?;
            ts_raw = Some(raw);
        }
        let name = &family.signature;
        let value = required_header(headers, name)?;

        let mut macs = TagList::new();
        let mut ed25519 = TagList::new();
        match &self.format {
            Format::Token => {
                return if any_secret(secrets, |s| s.matches(value)) {
                    Ok(())
                } else {
                    Err(SignatureError::NoMatch)
                };
            }
            Format::Single { prefix } => {
                let encoded = value
                    .strip_prefix(prefix.as_slice())
                    .ok_or_else(|| malformed(name, "missing signature prefix"))?;
                let tag = Tag::decode(self.encoding, encoded, self.algorithm.output_len())
                    .ok_or_else(|| malformed(name, not_encoded(self.encoding)))?;
                macs.push(tag);
            }
            Format::List {
                separator,
                version_separator,
                mac,
                ed25519: ed_version,
            } => {
                let mut malformed_seen = false;
                let mut entries = 0;
                for entry in value
                    .split(|b| b == separator)
                    .filter(|entry| !entry.is_empty())
                    .take(MAX_SIGNATURE_ENTRIES)
                {
                    entries += 1;
                    let Some((version, encoded)) = split_once(entry, *version_separator) else {
                        malformed_seen = true;
                        continue;
                    };
                    let (list, len) = if version == mac.as_slice() {
                        (&mut macs, self.algorithm.output_len())
                    } else if ed_version.as_deref() == Some(version) {
                        (&mut ed25519, ed25519_dalek::SIGNATURE_LENGTH)
                    } else {
                        // Unknown versions are skipped, as Standard Webhooks requires.
                        continue;
                    };
                    match Tag::decode(self.encoding, encoded, len) {
                        Some(tag) => list.push(tag),
                        None => malformed_seen = true,
                    }
                }
                if entries == 0 {
                    return Err(malformed(name, "no signature entries"));
                }
                if macs.is_empty() && ed25519.is_empty() {
                    return Err(if malformed_seen {
                        malformed(name, "no well-formed signature entry")
                    } else {
                        SignatureError::NoSupportedSignature
                    });
                }
            }
            Format::Pairs { timestamp_key, mac } => {
                let mut timestamp: Option<&[u8]> = None;
                let mut malformed_seen = false;
                for item in value.split(|b| *b == b',').take(MAX_SIGNATURE_ENTRIES) {
                    let Some((key, encoded)) = split_once(item, b'=') else {
                        return Err(malformed(name, "item is not key=value"));
                    };
                    if key == timestamp_key.as_slice() {
                        if timestamp.is_some() {
                            // Stripe's SDK would keep the last one; two timestamps are
                            // ambiguous, so refuse.
                            return Err(malformed(name, "more than one timestamp item"));
                        }
                        timestamp = Some(encoded);
                    } else if key == mac.as_slice() {
                        match Tag::decode(self.encoding, encoded, self.algorithm.output_len()) {
                            Some(tag) => macs.push(tag),
                            None => malformed_seen = true,
                        }
                    }
                    // Other keys (Stripe's legacy test-mode v0) are skipped.
                }
                let raw = timestamp.ok_or_else(|| malformed(name, "no timestamp item"))?;
                let format = self.timestamp.unwrap_or_default();
                check_freshness(parse_timestamp(name, format, raw)?, req.now, tolerance)?;
                ts_raw = Some(raw);
                if macs.is_empty() {
                    return Err(if malformed_seen {
                        malformed(name, "no well-formed signature item")
                    } else {
                        SignatureError::NoSupportedSignature
                    });
                }
            }
        }

        // Content only some schemes sign: the public URL (plus the query as received)
        // and the sorted form parameters.
        let urls = if self.signs_url() {
            let base = public_url.ok_or(SignatureError::SchemeUnavailable)?;
            url_variants(base, self.url_port_variants)
                .into_iter()
                .map(|u| {
                    Some(match req.query {
                        Some(q) => format!("{u}?{q}"),
                        None => u,
                    })
                })
                .collect()
        } else {
            vec![None]
        };
        let mut form = Vec::new();
        if self.parts.contains(&Part::Form) {
            match self.body_hash_param(req.query) {
                Some(expected) => {
                    let digest = sha2::Sha256::digest(req.body);
                    let mut decoded = [0u8; 32];
                    let ok = expected.len() == 64
                        && base16ct::mixed::decode(expected.as_bytes(), &mut decoded).is_ok();
                    if !(ok && bool::from(digest.as_slice().ct_eq(&decoded))) {
                        return Err(SignatureError::BodyHashMismatch);
                    }
                }
                None => form = sorted_form(req.body),
            }
        }
        // Every URL variant is tried, whichever matches, like every secret.
        let mut mac_ok = false;
        for url in &urls {
            let pieces = self.pieces(id, ts_raw, req.body, url.as_deref(), &form);
            if !macs.is_empty() {
                mac_ok |=
                    any_secret_matches(secrets, self.algorithm, &pieces, macs.as_slice()).is_ok();
            }
        }
        if mac_ok {
            return Ok(());
        }
        let first_url = urls.first().cloned().flatten();
        let pieces = self.pieces(id, ts_raw, req.body, first_url.as_deref(), &form);
        // ed25519 hashes `R || A || message`, so each (signature, key) pair costs one pass
        // over the body plus a curve check (~30 µs): only the first MAX_V1A_ENTRIES
        // signatures are tried, so an unauthenticated sender cannot buy more than
        // MAX_V1A_ENTRIES × keys of that work per request. `multipart_verify` takes the
        // message in pieces, so even here the body is not copied into a joined buffer.
        for tag in ed25519.as_slice().iter().take(MAX_V1A_ENTRIES) {
            let Ok(bytes) = <[u8; ed25519_dalek::SIGNATURE_LENGTH]>::try_from(tag.as_slice())
            else {
                continue;
            };
            let signature = Signature::from_bytes(&bytes);
            let verified = public_keys.iter().any(|key| {
                // Non-strict verification accepts anything under a weak key; decode_whpk
                // refuses them, but keys may be built elsewhere, so check here too.
                !key.is_weak() && key.multipart_verify(&pieces, &signature).is_ok()
            });
            if verified {
                return Ok(());
            }
        }
        Err(SignatureError::NoMatch)
    }

    fn body_hash_param<'q>(&self, query: Option<&'q str>) -> Option<std::borrow::Cow<'q, str>> {
        let param = self.body_sha256_param.as_deref()?;
        form_urlencoded::parse(query?.as_bytes())
            .find(|(k, _)| k == param)
            .map(|(_, v)| v)
    }

    /// The signed content, in pieces borrowed from the request.
    fn pieces<'a>(
        &'a self,
        id: Option<&'a [u8]>,
        ts: Option<&'a [u8]>,
        body: &'a [u8],
        url: Option<&'a str>,
        form: &'a [u8],
    ) -> Vec<&'a [u8]> {
        self.parts
            .iter()
            .map(|part| match part {
                Part::Id => id.unwrap_or_default(),
                Part::Timestamp => ts.unwrap_or_default(),
                Part::Body => body,
                Part::Url => url.map(str::as_bytes).unwrap_or_default(),
                Part::Form => form,
                Part::Literal(bytes) => bytes.as_slice(),
            })
            .collect()
    }

    /// The headers a sender using this scheme would send with `body` (for `hookgate sign`
    /// and tests). `secret` is the configured secret as written; `id` is used by schemes
    /// that sign a message id; `url` is the full URL the sender posts to (with its query)
    /// for schemes that sign it. Returns `(name, value)` pairs in a stable order.
    pub fn sign(
        &self,
        secret: &[u8],
        id: &str,
        timestamp: u64,
        url: Option<&str>,
        body: &[u8],
    ) -> Result<Vec<(String, String)>, String> {
        let family = self
            .families
            .first()
            .ok_or_else(|| "scheme names no header".to_owned())?;
        let mut out = Vec::new();
        if let Format::Token = self.format {
            let token = std::str::from_utf8(secret).map_err(|_| "secret is not UTF-8")?;
            out.push((family.signature.to_string(), token.to_owned()));
            return Ok(out);
        }
        let key = self
            .decode_secret(secret)
            .map_err(|e| format!("secret: {e}"))?;
        let ts_text = match self.timestamp {
            None => None,
            Some(TimestampFormat::Unix) => Some(timestamp.to_string()),
            Some(TimestampFormat::Rfc3339) => Some(rfc3339(timestamp)?),
        };
        if self.signs_url() && url.is_none() {
            return Err(format!("{} signs the URL: pass --url", self.name));
        }
        let query = url.and_then(|u| u.split_once('?')).map(|(_, q)| q);
        let form = if self.parts.contains(&Part::Form) && self.body_hash_param(query).is_none() {
            sorted_form(body)
        } else {
            Vec::new()
        };
        let id_bytes = family.id.as_ref().map(|_| id.as_bytes());
        let pieces = self.pieces(
            id_bytes,
            ts_text.as_deref().map(str::as_bytes),
            body,
            url,
            &form,
        );
        let mac = compute_mac(self.algorithm, key.expose(), &pieces);
        let encoded = match self.encoding {
            SigEncoding::Hex => hex_lower(mac.as_slice()),
            SigEncoding::Base64 => BASE64.encode(mac.as_slice()),
        };
        if let (Some(name), true) = (&family.id, id_bytes.is_some()) {
            out.push((name.to_string(), id.to_owned()));
        }
        if let (Some(name), Some(ts)) = (&family.timestamp, &ts_text) {
            out.push((name.to_string(), ts.clone()));
        }
        let value = match &self.format {
            Format::Single { prefix } => format!("{}{encoded}", String::from_utf8_lossy(prefix)),
            Format::List {
                mac,
                version_separator,
                ..
            } => format!(
                "{}{}{encoded}",
                String::from_utf8_lossy(mac),
                char::from(*version_separator)
            ),
            Format::Pairs { timestamp_key, mac } => format!(
                "{}={},{}={encoded}",
                String::from_utf8_lossy(timestamp_key),
                ts_text.as_deref().unwrap_or_default(),
                String::from_utf8_lossy(mac)
            ),
            Format::Token => String::new(),
        };
        out.push((family.signature.to_string(), value));
        Ok(out)
    }
}

fn not_encoded(encoding: SigEncoding) -> &'static str {
    match encoding {
        SigEncoding::Hex => "not hex of the expected length",
        SigEncoding::Base64 => "not base64 of the expected length",
    }
}

/// The public URL as configured, and, when `port_variants`, the same URL with the
/// scheme's default port added (when it has no port) or its port removed (when it has
/// one), as Twilio's validator tries both.
fn url_variants(base: &str, port_variants: bool) -> Vec<String> {
    let mut urls = vec![base.to_owned()];
    if !port_variants {
        return urls;
    }
    let Some((scheme, rest)) = base.split_once("://") else {
        return urls;
    };
    let (authority, path) = rest.find('/').map_or((rest, ""), |at| rest.split_at(at));
    // A port is the digits after the last ':' that is not inside an IPv6 literal.
    let port = authority
        .rsplit_once(':')
        .filter(|(host, port)| {
            !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) && !host.ends_with('[')
        })
        .filter(|(_, port)| !port.contains(']'));
    let variant = match port {
        Some((host, _)) => format!("{scheme}://{host}{path}"),
        None => {
            let default = if scheme.eq_ignore_ascii_case("https") {
                443
            } else {
                80
            };
            format!("{scheme}://{authority}:{default}{path}")
        }
    };
    urls.push(variant);
    urls
}

/// Twilio's form content: the body's `application/x-www-form-urlencoded` parameters,
/// decoded, sorted by key then value, duplicates removed (as `twilio-python` does with
/// `sorted(set(...))`), each written as key followed by value.
fn sorted_form(body: &[u8]) -> Vec<u8> {
    let mut pairs: Vec<_> = form_urlencoded::parse(body).collect();
    pairs.sort();
    pairs.dedup();
    let mut out = Vec::new();
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn rfc3339(timestamp: u64) -> Result<String, String> {
    let secs = i64::try_from(timestamp).map_err(|_| "timestamp out of range")?;
    let t = time::OffsetDateTime::from_unix_timestamp(secs).map_err(|e| e.to_string())?;
    Ok(format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    ))
}

fn hex_lower(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

// === impl Verifier ===

impl Verifier {
    /// What `auth = { type = "hmac", header, algorithm, encoding, prefix, secrets }`
    /// builds: the generic scheme with these keys (raw bytes).
    pub fn hmac(
        header: HeaderName,
        algorithm: HmacAlgorithm,
        encoding: SigEncoding,
        prefix: &str,
        secrets: Vec<Secret>,
    ) -> Verifier {
        Verifier::compiled(
            CompiledScheme::hmac(header, algorithm, encoding, prefix),
            secrets,
            Vec::new(),
            Duration::ZERO,
        )
    }

    /// What `auth = { type = "<name>", ... }` builds for the bundled preset `name`, with
    /// keys already in the scheme's key form ([`CompiledScheme::decode_secret`]) and no
    /// public URL; `None` when no bundled preset of that name has a scheme. For tests,
    /// benches and fuzz targets that need a verifier without writing config text.
    pub fn preset(
        name: &str,
        secrets: Vec<Secret>,
        public_keys: Vec<VerifyingKey>,
        tolerance: Duration,
    ) -> Option<Verifier> {
        let scheme = CompiledScheme::bundled(name)?.clone();
        Some(Verifier::compiled(scheme, secrets, public_keys, tolerance))
    }

    fn compiled(
        scheme: CompiledScheme,
        secrets: Vec<Secret>,
        public_keys: Vec<VerifyingKey>,
        tolerance: Duration,
    ) -> Verifier {
        Verifier::Scheme(Box::new(SchemeVerifier {
            scheme,
            secrets,
            public_keys,
            tolerance,
            public_url: None,
        }))
    }

    /// Verifies the signature over the raw body as received, for schemes that do not sign
    /// the URL (see [`Verifier::verify_request`]).
    pub fn verify(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now: SystemTime,
    ) -> Result<(), SignatureError> {
        self.verify_request(&SignedRequest {
            headers,
            query: None,
            body,
            now,
        })
    }

    /// Verifies a request: every variant runs on the one engine, [`CompiledScheme::verify`].
    pub fn verify_request(&self, req: &SignedRequest<'_>) -> Result<(), SignatureError> {
        let bundled =
            |name: &str| CompiledScheme::bundled(name).ok_or(SignatureError::SchemeUnavailable);
        match self {
            Verifier::Hmac(s) => CompiledScheme::hmac(
                s.header.clone(),
                s.algorithm,
                s.encoding,
                &s.prefix,
            )
            .verify(&s.secrets, &[], Duration::ZERO, None, req),
            Verifier::StandardWebhooks(s) => bundled("standard-webhooks")?.verify(
                &s.secrets,
                &s.public_keys,
                s.tolerance,
                None,
                req,
            ),
            Verifier::Github(s) => {
                bundled("github")?.verify(&s.secrets, &[], Duration::ZERO, None, req)
            }
            Verifier::Stripe(s) => {
                bundled("stripe")?.verify(&s.secrets, &[], s.tolerance, None, req)
            }
            Verifier::Slack(s) => bundled("slack")?.verify(&s.secrets, &[], s.tolerance, None, req),
            Verifier::Scheme(v) => v.scheme.verify(
                &v.secrets,
                &v.public_keys,
                v.tolerance,
                v.public_url.as_deref(),
                req,
            ),
        }
    }

    /// The scheme's name: `hmac`, or the preset whose scheme it is.
    pub fn type_name(&self) -> &str {
        match self {
            Verifier::Hmac(_) => "hmac",
            Verifier::StandardWebhooks(_) => "standard-webhooks",
            Verifier::Github(_) => "github",
            Verifier::Stripe(_) => "stripe",
            Verifier::Slack(_) => "slack",
            Verifier::Scheme(v) => v.scheme.name(),
        }
    }

    fn with_scheme<T>(&self, default: T, f: impl FnOnce(&CompiledScheme) -> T) -> T {
        match self {
            Verifier::Hmac(s) => f(&CompiledScheme::hmac(
                s.header.clone(),
                s.algorithm,
                s.encoding,
                &s.prefix,
            )),
            Verifier::Scheme(v) => f(&v.scheme),
            other => CompiledScheme::bundled(other.type_name()).map_or(default, f),
        }
    }

    /// The request headers this verifier consumed; they are stripped before forwarding
    /// (DESIGN.md §6), so upstreams never see a credential they did not need.
    ///
    /// Standard Webhooks keeps `webhook-id`/`svix-id`: the id is not a credential, and it
    /// is the sender's idempotency key, useful to the upstream (the gateway's own
    /// `dedup_key = "header:webhook-id"` reads headers before they are stripped anyway).
    /// Both header families are stripped, whichever was verified, so that an unverified
    /// signature under the other family is not forwarded either. GitHub's legacy SHA-1
    /// `X-Hub-Signature` is stripped with the SHA-256 one for the same reason: it is the
    /// same credential under a weaker MAC, and the gateway has already checked the body.
    pub fn consumed_headers(&self) -> Vec<HeaderName> {
        self.with_scheme(Vec::new(), CompiledScheme::consumed_headers)
    }

    /// The endpoint handshake this sender performs before sending events (Zoom URL
    /// validation, Twitch challenge, Slack url_verification), from the scheme's data.
    /// This is the hook for the handshake dispatch: the handshake request is signed like
    /// any event, so it is verified first and then answered instead of forwarded.
    pub fn handshake(&self) -> Option<Handshake> {
        self.with_scheme(None, CompiledScheme::handshake)
    }

    /// The first configured secret that verifies `req` on its own, for answers that
    /// must be computed with the sender's current secret (Zoom's `encryptedToken`).
    /// Only scheme verifiers (what the config builds) report one.
    pub fn matching_secret(&self, req: &SignedRequest<'_>) -> Option<&Secret> {
        let Verifier::Scheme(v) = self else {
            return None;
        };
        v.secrets.iter().find(|secret| {
            v.scheme
                .verify(
                    std::slice::from_ref(*secret),
                    &[],
                    v.tolerance,
                    v.public_url.as_deref(),
                    req,
                )
                .is_ok()
        })
    }

    /// Whether a header carrying the signature itself is present: a request with none
    /// is unsigned and can be refused before its body is read. A timestamp alone, or
    /// GitHub's legacy SHA-1 header (stripped but never trusted), is not enough. On
    /// `Err`, the header the scheme expects.
    pub fn signature_present(&self, headers: &HeaderMap) -> Result<(), HeaderName> {
        self.with_scheme(Ok(()), |s| s.signature_present(headers))
    }
}

// === MAC computation ===

/// `Ok` if the MAC of `signed` under any secret equals any presented tag.
fn any_secret_matches(
    secrets: &[Secret],
    algorithm: HmacAlgorithm,
    signed: &[&[u8]],
    tags: &[Tag],
) -> Result<(), SignatureError> {
    // One MAC per secret, compared against every tag: the body is hashed once per secret,
    // however many signatures the sender listed.
    if any_secret(secrets, |secret| {
        mac_matches(algorithm, secret.expose(), signed, tags)
    }) {
        Ok(())
    } else {
        Err(SignatureError::NoMatch)
    }
}

/// Whether `matches` holds for any secret, trying every one: stopping at the first hit
/// would let the response time tell which of the rotated secrets (old or new) signed a
/// request, and make the cost of a request depend on it.
fn any_secret(secrets: &[Secret], mut matches: impl FnMut(&Secret) -> bool) -> bool {
    secrets
        .iter()
        .fold(false, |found, secret| matches(secret) | found)
}

fn mac_matches(algorithm: HmacAlgorithm, key: &[u8], signed: &[&[u8]], tags: &[Tag]) -> bool {
    let computed = compute_mac(algorithm, key, signed);
    // Compare against every tag without stopping at the first hit, so the time taken
    // does not say which entry matched.
    let mut matched = Choice::from(0);
    for tag in tags {
        matched |= computed.as_slice().ct_eq(tag.as_slice());
    }
    matched.into()
}

/// The MAC of the pieces, held on the stack.
fn compute_mac(algorithm: HmacAlgorithm, key: &[u8], signed: &[&[u8]]) -> Tag {
    match algorithm {
        HmacAlgorithm::Sha1 => mac_with::<sha1::Sha1>(key, signed),
        HmacAlgorithm::Sha256 => mac_with::<sha2::Sha256>(key, signed),
        HmacAlgorithm::Sha512 => mac_with::<sha2::Sha512>(key, signed),
    }
}

fn mac_with<D: EagerHash>(key: &[u8], signed: &[&[u8]]) -> Tag
where
    Hmac<D>: KeyInit + Mac,
{
    let mut tag = Tag {
        bytes: [0; MAX_TAG_BYTES],
        len: 0,
    };
    // HMAC accepts keys of any length, so this cannot fail; if it ever did, the empty
    // tag matches no presented signature (they are checked to be the MAC's length).
    let Ok(mut mac) = <Hmac<D> as KeyInit>::new_from_slice(key) else {
        return tag;
    };
    // Feed the pieces one by one: the body is never copied into a joined buffer.
    for piece in signed {
        mac.update(piece);
    }
    let computed = mac.finalize().into_bytes();
    if let Some(slot) = tag.bytes.get_mut(..computed.len()) {
        slot.copy_from_slice(&computed);
        tag.len = computed.len();
    }
    tag
}

// === presented signatures ===

/// A decoded signature as presented by the sender, held on the stack.
#[derive(Clone, Copy)]
struct Tag {
    bytes: [u8; MAX_TAG_BYTES],
    len: usize,
}

impl Tag {
    /// Decodes `encoded` into exactly `len` bytes, or `None` (bad alphabet, padding or
    /// length). The length is checked before decoding so no decoder sees oversized input.
    fn decode(encoding: SigEncoding, encoded: &[u8], len: usize) -> Option<Tag> {
        let mut tag = Tag {
            bytes: [0; MAX_TAG_BYTES],
            len,
        };
        let out = tag.bytes.get_mut(..len)?;
        match encoding {
            SigEncoding::Hex => {
                if encoded.len() != len * 2 {
                    return None;
                }
                base16ct::mixed::decode(encoded, out).ok()?;
            }
            SigEncoding::Base64 => {
                if encoded.len() != len.div_ceil(3) * 4 {
                    return None;
                }
                let mut scratch = [0u8; BASE64_SCRATCH_BYTES];
                let decoded = BASE64.decode_slice(encoded, &mut scratch).ok()?;
                if decoded != len {
                    return None;
                }
                out.copy_from_slice(scratch.get(..len)?);
            }
        }
        Some(tag)
    }

    fn as_slice(&self) -> &[u8] {
        self.bytes.get(..self.len).unwrap_or_default()
    }
}

/// Up to [`MAX_SIGNATURE_ENTRIES`] tags, without allocating.
struct TagList {
    tags: [Tag; MAX_SIGNATURE_ENTRIES],
    len: usize,
}

impl TagList {
    fn new() -> Self {
        TagList {
            tags: [Tag {
                bytes: [0; MAX_TAG_BYTES],
                len: 0,
            }; MAX_SIGNATURE_ENTRIES],
            len: 0,
        }
    }

    /// Adds a tag; beyond the capacity tags are dropped (callers never examine more
    /// entries than that anyway).
    fn push(&mut self, tag: Tag) {
        if let Some(slot) = self.tags.get_mut(self.len) {
            *slot = tag;
            self.len += 1;
        }
    }

    fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn as_slice(&self) -> &[Tag] {
        self.tags.get(..self.len).unwrap_or_default()
    }
}

// === header helpers ===

/// The value of a header the scheme needs, as bytes that are known to be short,
/// non-empty, single and printable ASCII.
fn required_header<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> Result<&'a [u8], SignatureError> {
    let mut values = headers.get_all(name).iter();
    let value = values
        .next()
        .ok_or_else(|| SignatureError::MissingHeader(name.clone()))?;
    // A repeated signature header is ambiguous (which one did the sender mean, and which
    // would the upstream see?), so refuse rather than pick one.
    if values.next().is_some() {
        return Err(malformed(name, "header is repeated"));
    }
    let bytes = value.as_bytes();
    if bytes.len() > MAX_HEADER_BYTES {
        return Err(SignatureError::HeaderTooLong(name.clone()));
    }
    if bytes.is_empty() {
        return Err(malformed(name, "empty value"));
    }
    // Visible ASCII plus the space that separates Standard Webhooks entries. This rules
    // out tabs and obs-text bytes that `HeaderValue` otherwise allows.
    if !bytes.iter().all(|b| (b' '..=b'~').contains(b)) {
        return Err(malformed(name, "value is not printable ASCII"));
    }
    Ok(bytes)
}

/// Parses a signed timestamp into unix seconds: integer seconds (ASCII digits only: no
/// sign, no fraction, no spaces), or RFC 3339 (fraction truncated).
fn parse_timestamp(
    name: &HeaderName,
    format: TimestampFormat,
    raw: &[u8],
) -> Result<u64, SignatureError> {
    match format {
        TimestampFormat::Unix => {
            const REASON: &str = "timestamp is not integer unix seconds";
            if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
                return Err(malformed(name, REASON));
            }
            std::str::from_utf8(raw)
                .ok()
                .and_then(|digits| digits.parse::<u64>().ok())
                .ok_or_else(|| malformed(name, REASON))
        }
        TimestampFormat::Rfc3339 => {
            const REASON: &str = "timestamp is not RFC 3339 after 1970";
            std::str::from_utf8(raw)
                .ok()
                .and_then(|text| {
                    time::OffsetDateTime::parse(
                        text,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .ok()
                })
                .and_then(|t| u64::try_from(t.unix_timestamp()).ok())
                .ok_or_else(|| malformed(name, REASON))
        }
    }
}

/// Rejects a timestamp further than `tolerance` from `now`, in either direction.
fn check_freshness(ts: u64, now: SystemTime, tolerance: Duration) -> Result<(), SignatureError> {
    // A clock before 1970 is not a real deployment; treating it as 0 fails closed
    // (every real timestamp is then "too new").
    let now = now
        .duration_since(UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    if ts > now {
        if Duration::from_secs(ts - now) > tolerance {
            return Err(SignatureError::TimestampTooNew);
        }
    } else if Duration::from_secs(now - ts) > tolerance {
        return Err(SignatureError::TimestampTooOld);
    }
    Ok(())
}

fn split_once(bytes: &[u8], separator: u8) -> Option<(&[u8], &[u8])> {
    let at = bytes.iter().position(|b| *b == separator)?;
    Some((bytes.get(..at)?, bytes.get(at + 1..)?))
}

fn malformed(name: &HeaderName, reason: &'static str) -> SignatureError {
    SignatureError::MalformedHeader {
        header: name.clone(),
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer as _, SigningKey};
    use http::HeaderValue;

    const TOLERANCE: Duration = Duration::from_secs(300);

    // --- helpers ---

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
            );
        }
        map
    }

    fn hmac_sha256(key: &[u8], pieces: &[&[u8]]) -> Vec<u8> {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("any key");
        for piece in pieces {
            mac.update(piece);
        }
        mac.finalize().into_bytes().to_vec()
    }

    fn hex(bytes: &[u8]) -> String {
        let mut buf = vec![0u8; bytes.len() * 2];
        base16ct::lower::encode_str(bytes, &mut buf)
            .expect("buffer sized")
            .to_owned()
    }

    fn b64(bytes: &[u8]) -> String {
        BASE64.encode(bytes)
    }

    fn secret(s: &str) -> Secret {
        Secret::new(s.as_bytes().to_vec())
    }

    fn whsec(s: &str) -> Secret {
        decode_whsec(s.as_bytes()).expect("test whsec")
    }

    fn std_verifier(secrets: Vec<Secret>, public_keys: Vec<VerifyingKey>) -> Verifier {
        Verifier::StandardWebhooks(StandardWebhooksScheme {
            secrets,
            public_keys,
            tolerance: TOLERANCE,
        })
    }

    /// A `v1,` entry as a Standard Webhooks sender would write it.
    fn std_v1(key: &Secret, id: &str, ts: u64, body: &[u8]) -> String {
        let ts = ts.to_string();
        let mac = hmac_sha256(
            key.expose(),
            &[id.as_bytes(), b".", ts.as_bytes(), b".", body],
        );
        format!("v1,{}", b64(&mac))
    }

    fn std_headers(id: &str, ts: u64, signature: &str) -> HeaderMap {
        headers(&[
            ("webhook-id", id),
            ("webhook-timestamp", &ts.to_string()),
            ("webhook-signature", signature),
        ])
    }

    fn github(secrets: &[&str]) -> Verifier {
        Verifier::Github(GithubScheme {
            secrets: secrets.iter().map(|s| secret(s)).collect(),
        })
    }

    fn stripe(secrets: &[&str]) -> Verifier {
        Verifier::Stripe(StripeScheme {
            secrets: secrets.iter().map(|s| secret(s)).collect(),
            tolerance: TOLERANCE,
        })
    }

    fn stripe_v1(secret: &str, ts: u64, body: &[u8]) -> String {
        let ts = ts.to_string();
        hex(&hmac_sha256(
            secret.as_bytes(),
            &[ts.as_bytes(), b".", body],
        ))
    }

    fn slack(secrets: &[&str]) -> Verifier {
        Verifier::Slack(SlackScheme {
            secrets: secrets.iter().map(|s| secret(s)).collect(),
            tolerance: TOLERANCE,
        })
    }

    fn slack_headers(secret: &str, ts: u64, body: &[u8]) -> HeaderMap {
        let ts = ts.to_string();
        let mac = hmac_sha256(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
        headers(&[
            ("x-slack-request-timestamp", &ts),
            ("x-slack-signature", &format!("v0={}", hex(&mac))),
        ])
    }

    fn hmac_sha256_hex(secrets: &[&str]) -> Verifier {
        Verifier::Hmac(HmacScheme {
            header: HeaderName::from_static("x-signature"),
            algorithm: HmacAlgorithm::Sha256,
            encoding: SigEncoding::Hex,
            prefix: String::new(),
            secrets: secrets.iter().map(|s| secret(s)).collect(),
        })
    }

    fn assert_malformed(result: Result<(), SignatureError>, header: &str) {
        match result {
            Err(SignatureError::MalformedHeader { header: got, .. }) => {
                assert_eq!(got.as_str(), header);
            }
            other => panic!("expected MalformedHeader({header}), got {other:?}"),
        }
    }

    // === official vectors: Standard Webhooks (FACTS.md §6.1) and Svix (§6.2) ===

    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: u64 = 1_614_265_330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    const RS_SECRET: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const RS_ID: &str = "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk";
    const RS_TS: u64 = 1_649_367_553;
    const RS_BODY: &[u8] = br#"{"email":"test@example.com","username":"test_user"}"#;

    #[test]
    fn standard_webhooks_official_vector() {
        // standard-webhooks/standard-webhooks libraries/javascript/src/webhook.test.ts
        // "sign function works" (same vector in libraries/go/webhook_test.go, Java
        // TestScenario, C# WebhookTest.cs, PHP WebhookTest.php); FACTS.md §6.1.
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
    }

    #[test]
    fn standard_webhooks_rust_lib_vector() {
        // standard-webhooks libraries/rust/src/lib.rs `test_sign`; FACTS.md §6.1 (and the
        // identical Svix Rust `test_sign`, §6.2).
        let v = std_verifier(vec![whsec(RS_SECRET)], vec![]);
        let h = std_headers(
            RS_ID,
            RS_TS,
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        );
        assert_eq!(v.verify(&h, RS_BODY, at(RS_TS)), Ok(()));
    }

    #[test]
    fn standard_webhooks_rust_lib_negative_vector() {
        // standard-webhooks libraries/rust/src/lib.rs: same inputs with this signature
        // must fail; FACTS.md §6.1 "Negative".
        let v = std_verifier(vec![whsec(RS_SECRET)], vec![]);
        let h = std_headers(
            RS_ID,
            RS_TS,
            "v1,R3PTzyfHASBKHH98a7yexTwaJ4yNIcGhFQc1yuN+BPU=",
        );
        assert_eq!(
            v.verify(&h, RS_BODY, at(RS_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn standard_webhooks_unknown_version_does_not_verify() {
        // standard-webhooks libraries/java .../TestScenario.java: `v2,g0hM9S…` (unknown
        // version) must not verify; FACTS.md §6.1.
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let h = std_headers(
            SW_ID,
            SW_TS,
            "v2,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        );
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoSupportedSignature)
        );
    }

    #[test]
    fn standard_webhooks_secret_without_prefix() {
        // FACTS.md §6.1: "JS lib also accepts secret without the `whsec_` prefix".
        let bare = SW_SECRET.trim_start_matches("whsec_");
        let v = std_verifier(vec![whsec(bare)], vec![]);
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
    }

    #[test]
    fn svix_multi_signature_header() {
        // svix/svix-webhooks multi-signature test header, FACTS.md §6.2, with the valid
        // official signature in the `<valid>` slot, sent under the svix-* header names.
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let multi = format!(
            "v1,tFtCZ5RDCPxzWQRWXWPgrCgE2frDBe9gjpbWQxnVfsQ= \
             v1,Mm7xgUVICxZfQ3bgf0h0Dof65L/IFx+PnZvnDWPCX6Q= {SW_SIG} \
             v1,9DfC1c3eeOrXB6w/5dIDydLNQaEyww5KalE5jLBZucE="
        );
        let h = headers(&[
            ("svix-id", SW_ID),
            ("svix-timestamp", &SW_TS.to_string()),
            ("svix-signature", &multi),
        ]);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
    }

    // === official vectors: GitHub (FACTS.md §6.3) ===

    #[test]
    fn github_docs_vector() {
        // github/docs content/webhooks/using-webhooks/validating-webhook-deliveries.md;
        // FACTS.md §6.3.
        let v = github(&["It's a Secret to Everybody"]);
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        )]);
        assert_eq!(v.verify(&h, b"Hello, World!", at(0)), Ok(()));
    }

    #[test]
    fn github_octokit_vector() {
        // @octokit/webhooks-methods test/sign.test.ts; FACTS.md §6.3.
        let v = github(&["mysecret"]);
        let h = headers(&[(
            "x-hub-signature-256",
            "sha256=4864d2759938a15468b5df9ade20bf161da9b4f737ea61794142f3484236bda3",
        )]);
        assert_eq!(v.verify(&h, br#"{"foo":"bar"}"#, at(0)), Ok(()));
    }

    #[test]
    fn hmac_sha1_legacy_github_computed_vector() {
        // FACTS.md §6.3: "SHA-1 of same inputs [computed]" (legacy `X-Hub-Signature`),
        // checked through the generic hmac scheme with a prefix.
        let v = Verifier::Hmac(HmacScheme {
            header: HeaderName::from_static("x-hub-signature"),
            algorithm: HmacAlgorithm::Sha1,
            encoding: SigEncoding::Hex,
            prefix: "sha1=".to_owned(),
            secrets: vec![secret("It's a Secret to Everybody")],
        });
        let h = headers(&[(
            "x-hub-signature",
            "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59",
        )]);
        assert_eq!(v.verify(&h, b"Hello, World!", at(0)), Ok(()));
    }

    // === official vector: Slack (FACTS.md §6.5) ===

    const SLACK_SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const SLACK_TS: u64 = 1_531_420_618;
    const SLACK_BODY: &[u8] = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

    #[test]
    fn slack_official_vector() {
        // slackapi/python-slack-sdk tests/slack_sdk/signature/test_signature_verifier.py
        // (copied from docs.slack.dev "verifying requests"); FACTS.md §6.5.
        let v = slack(&[SLACK_SECRET]);
        let h = headers(&[
            ("x-slack-request-timestamp", "1531420618"),
            (
                "x-slack-signature",
                "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503",
            ),
        ]);
        assert_eq!(v.verify(&h, SLACK_BODY, at(SLACK_TS)), Ok(()));
    }

    // === computed fixture: Stripe (FACTS.md §6.4) ===

    const STRIPE_SECRET: &str = "whsec_test_secret";
    const STRIPE_TS: u64 = 1_614_265_330;
    const STRIPE_BODY: &[u8] = b"{\n  \"id\": \"evt_test_webhook\",\n  \"object\": \"event\"\n}";

    #[test]
    fn stripe_computed_fixture() {
        // FACTS.md §6.4 [computed] fixture over stripe/stripe-python tests/test_webhook.py's
        // payload; the key is the secret string including `whsec_`.
        let v = stripe(&[STRIPE_SECRET]);
        let h = headers(&[(
            "stripe-signature",
            "t=1614265330,v1=af4ead0627a34a8cca29808e8de9ada8e41a92e6237c63cef6eacf51d36cca34",
        )]);
        assert_eq!(v.verify(&h, STRIPE_BODY, at(STRIPE_TS)), Ok(()));
    }

    #[test]
    fn stripe_key_keeps_its_whsec_prefix() {
        // FACTS.md §6.4: the key is the whole `whsec_...` string. Keying with the prefix
        // stripped (as Standard Webhooks would) must not verify the same fixture.
        let v = stripe(&["test_secret"]);
        let h = headers(&[(
            "stripe-signature",
            "t=1614265330,v1=af4ead0627a34a8cca29808e8de9ada8e41a92e6237c63cef6eacf51d36cca34",
        )]);
        assert_eq!(
            v.verify(&h, STRIPE_BODY, at(STRIPE_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    // === ed25519 (v1a) ===

    const SEED: [u8; 32] = [7; 32];

    fn whpk_of(key: &SigningKey) -> String {
        format!("whpk_{}", b64(key.verifying_key().as_bytes()))
    }

    fn v1a(key: &SigningKey, id: &str, ts: u64, body: &[u8]) -> String {
        let mut message = format!("{id}.{ts}.").into_bytes();
        message.extend_from_slice(body);
        format!("v1a,{}", b64(&key.sign(&message).to_bytes()))
    }

    #[test]
    fn ed25519_v1a_round_trip() {
        let signing = SigningKey::from_bytes(&SEED);
        let public = decode_whpk(whpk_of(&signing).as_bytes()).expect("whpk decodes");
        let v = std_verifier(vec![], vec![public]);
        let h = std_headers(SW_ID, SW_TS, &v1a(&signing, SW_ID, SW_TS, SW_BODY));
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
        // Tampered body.
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232315}"#, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn ed25519_wrong_key_fails() {
        let signing = SigningKey::from_bytes(&SEED);
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        let v = std_verifier(vec![], vec![other]);
        let h = std_headers(SW_ID, SW_TS, &v1a(&signing, SW_ID, SW_TS, SW_BODY));
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn ed25519_key_rotation_and_mixed_versions() {
        let signing = SigningKey::from_bytes(&SEED);
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        // Only the second public key matches; a wrong v1 and an unknown version come first.
        let v = std_verifier(vec![whsec(RS_SECRET)], vec![other, signing.verifying_key()]);
        let header = format!("{SW_SIG} v9,abc {}", v1a(&signing, SW_ID, SW_TS, SW_BODY));
        let h = std_headers(SW_ID, SW_TS, &header);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
    }

    #[test]
    fn ed25519_tries_only_the_first_v1a_entries() {
        let signing = SigningKey::from_bytes(&SEED);
        let v = std_verifier(vec![], vec![signing.verifying_key()]);
        let junk = format!("v1a,{}", b64(&[1u8; 64]));
        let good = v1a(&signing, SW_ID, SW_TS, SW_BODY);
        let with_junk_first = |n: usize| {
            let mut entries = vec![junk.clone(); n];
            entries.push(good.clone());
            std_headers(SW_ID, SW_TS, &entries.join(" "))
        };
        // The right signature as the last tried entry verifies; one place later it is
        // never looked at.
        let h = with_junk_first(MAX_V1A_ENTRIES - 1);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
        let h = with_junk_first(MAX_V1A_ENTRIES);
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn ed25519_weak_key_never_verifies() {
        // The identity point (small order) as a public key: signatures with R = identity
        // and s = 0 would pass a non-strict check for any message.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        let weak = VerifyingKey::from_bytes(&identity).expect("identity is a valid point");
        let mut sig = [0u8; 64];
        sig[0] = 1;
        let v = std_verifier(vec![], vec![weak]);
        let h = std_headers(SW_ID, SW_TS, &format!("v1a,{}", b64(&sig)));
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
        let encoded = format!("whpk_{}", b64(&identity));
        assert_eq!(
            decode_whpk(encoded.as_bytes()),
            Err(KeyError::WeakPublicKey)
        );
    }

    // === key decoding ===

    #[test]
    fn decode_whsec_with_and_without_prefix() {
        let with = decode_whsec(SW_SECRET.as_bytes()).expect("with prefix");
        let without =
            decode_whsec(SW_SECRET.trim_start_matches("whsec_").as_bytes()).expect("bare");
        assert_eq!(with.expose(), without.expose());
        assert_eq!(with.expose().len(), 24);
    }

    #[test]
    fn decode_whsec_rejects_bad_input() {
        assert_eq!(
            decode_whsec(b"whsec_not*base64").map(|_| ()),
            Err(KeyError::InvalidBase64)
        );
        assert_eq!(decode_whsec(b"whsec_").map(|_| ()), Err(KeyError::Empty));
        // A trailing newline from a `file:` secret is an error, not silently stripped.
        assert_eq!(
            decode_whsec(format!("{SW_SECRET}\n").as_bytes()).map(|_| ()),
            Err(KeyError::InvalidBase64)
        );
    }

    #[test]
    fn decode_whpk_rejects_bad_input() {
        let signing = SigningKey::from_bytes(&SEED);
        let good = whpk_of(&signing);
        assert_eq!(decode_whpk(good.as_bytes()), Ok(signing.verifying_key()));
        assert_eq!(
            decode_whpk(good.trim_start_matches("whpk_").as_bytes()),
            Ok(signing.verifying_key())
        );
        assert_eq!(
            decode_whpk(format!("whpk_{}", b64(&[1; 31])).as_bytes()),
            Err(KeyError::WrongLength {
                expected: 32,
                actual: 31
            })
        );
        assert_eq!(
            decode_whpk(format!("whpk_{}", b64(&[1; 200])).as_bytes()),
            Err(KeyError::WrongLength {
                expected: 32,
                actual: 200
            })
        );
        assert_eq!(decode_whpk(b"whpk_!!!!"), Err(KeyError::InvalidBase64));
    }

    // === Standard Webhooks: negative cases ===

    #[test]
    fn standard_webhooks_wrong_secret_and_tampered_body() {
        let v = std_verifier(vec![whsec(RS_SECRET)], vec![]);
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        assert_eq!(
            v.verify(&h, br#"{"test": 2432232315}"#, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn standard_webhooks_tolerance_both_directions() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        // The official, correct signature, checked at clocks around its timestamp.
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS + 300)), Ok(()));
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS - 300)), Ok(()));
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS + 301)),
            Err(SignatureError::TimestampTooOld)
        );
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS - 301)),
            Err(SignatureError::TimestampTooNew)
        );
        // Freshly signed requests at the edges, checked at a fixed clock.
        let key = whsec(SW_SECRET);
        for (ts, expected) in [
            (SW_TS - 300, Ok(())),
            (SW_TS + 300, Ok(())),
            (SW_TS - 301, Err(SignatureError::TimestampTooOld)),
            (SW_TS + 301, Err(SignatureError::TimestampTooNew)),
        ] {
            let h = std_headers(SW_ID, ts, &std_v1(&key, SW_ID, ts, SW_BODY));
            assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), expected, "ts={ts}");
        }
    }

    #[test]
    fn standard_webhooks_rotation_second_secret_matches() {
        let v = std_verifier(vec![whsec(RS_SECRET), whsec(SW_SECRET)], vec![]);
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(v.verify(&h, SW_BODY, at(SW_TS)), Ok(()));
    }

    #[test]
    fn standard_webhooks_missing_headers() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let ts = SW_TS.to_string();
        let missing = |pairs: &[(&str, &str)]| v.verify(&headers(pairs), SW_BODY, at(SW_TS));
        assert_eq!(
            missing(&[]),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "webhook-id"
            )))
        );
        assert_eq!(
            missing(&[("webhook-id", SW_ID), ("webhook-signature", SW_SIG)]),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "webhook-timestamp"
            )))
        );
        assert_eq!(
            missing(&[("webhook-id", SW_ID), ("webhook-timestamp", &ts)]),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "webhook-signature"
            )))
        );
        // Families do not mix: a webhook-* request must not borrow svix-signature.
        assert_eq!(
            missing(&[
                ("webhook-id", SW_ID),
                ("webhook-timestamp", &ts),
                ("svix-signature", SW_SIG)
            ]),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "webhook-signature"
            )))
        );
        assert_eq!(
            missing(&[("svix-id", SW_ID), ("svix-timestamp", &ts)]),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "svix-signature"
            )))
        );
    }

    #[test]
    fn standard_webhooks_malformed_headers() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let check = |id: &str, ts: &str, sig: &str| {
            v.verify(
                &headers(&[
                    ("webhook-id", id),
                    ("webhook-timestamp", ts),
                    ("webhook-signature", sig),
                ]),
                SW_BODY,
                at(SW_TS),
            )
        };
        let ts = SW_TS.to_string();
        // Bad base64, wrong length, no comma, empty value.
        assert_malformed(check(SW_ID, &ts, "v1,not*base64!"), "webhook-signature");
        assert_malformed(
            check(SW_ID, &ts, &format!("v1,{}", b64(&[0; 31]))),
            "webhook-signature",
        );
        assert_malformed(
            check(SW_ID, &ts, &format!("v1a,{}", b64(&[0; 32]))),
            "webhook-signature",
        );
        assert_malformed(check(SW_ID, &ts, "v1"), "webhook-signature");
        assert_malformed(check(SW_ID, &ts, ""), "webhook-signature");
        assert_malformed(check(SW_ID, &ts, "   "), "webhook-signature");
        // Non-numeric, signed, fractional or empty timestamps.
        for bad in [
            "abc",
            "-1614265330",
            "+1614265330",
            "1614265330.5",
            "",
            "1e9",
        ] {
            assert_malformed(check(SW_ID, bad, SW_SIG), "webhook-timestamp");
        }
        assert_malformed(
            check(SW_ID, "99999999999999999999999", SW_SIG),
            "webhook-timestamp",
        );
        // '.' in the id would make `id.ts.body` ambiguous.
        assert_malformed(check("msg.1", &ts, SW_SIG), "webhook-id");
        // A well-formed but wrong entry next to garbage is a plain mismatch.
        assert_eq!(
            check(SW_ID, &ts, &format!("v1,garbage v1,{}", b64(&[0; 32]))),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn standard_webhooks_header_too_long() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let long = format!("{SW_SIG} {}", "v2,x ".repeat(2048));
        assert!(long.len() > 10_000);
        let h = std_headers(SW_ID, SW_TS, &long);
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "webhook-signature"
            )))
        );
        let h = std_headers(&"m".repeat(MAX_HEADER_BYTES + 1), SW_TS, SW_SIG);
        assert_eq!(
            v.verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "webhook-id"
            )))
        );
    }

    #[test]
    fn standard_webhooks_examines_at_most_16_entries() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let wrong = format!("v1,{}", b64(&[0; 32]));
        let with_valid_at = |position: usize| {
            let mut entries = vec![wrong.as_str(); position - 1];
            entries.push(SW_SIG);
            std_headers(SW_ID, SW_TS, &entries.join(" "))
        };
        assert_eq!(v.verify(&with_valid_at(16), SW_BODY, at(SW_TS)), Ok(()));
        assert_eq!(
            v.verify(&with_valid_at(17), SW_BODY, at(SW_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn repeated_or_non_ascii_signature_header_is_malformed() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let mut h = std_headers(SW_ID, SW_TS, SW_SIG);
        h.append("webhook-signature", HeaderValue::from_static("v1,x"));
        assert_malformed(v.verify(&h, SW_BODY, at(SW_TS)), "webhook-signature");

        let mut h = std_headers(SW_ID, SW_TS, SW_SIG);
        h.insert(
            "webhook-signature",
            HeaderValue::from_bytes(b"v1,\xe9t\xe9").expect("obs-text is a valid HeaderValue"),
        );
        assert_malformed(v.verify(&h, SW_BODY, at(SW_TS)), "webhook-signature");
        let mut h = std_headers(SW_ID, SW_TS, SW_SIG);
        h.insert(
            "webhook-signature",
            HeaderValue::from_bytes(b"v1,a\tb").expect("tab is a valid HeaderValue"),
        );
        assert_malformed(v.verify(&h, SW_BODY, at(SW_TS)), "webhook-signature");
    }

    #[test]
    fn no_keys_configured_fails_closed() {
        let h = std_headers(SW_ID, SW_TS, SW_SIG);
        assert_eq!(
            std_verifier(vec![], vec![]).verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoKeysConfigured)
        );
        assert_eq!(
            github(&[]).verify(&h, SW_BODY, at(SW_TS)),
            Err(SignatureError::NoKeysConfigured)
        );
    }

    // === hmac (generic): negative cases ===

    #[test]
    fn hmac_scheme_accepts_and_rejects() {
        let body = b"payload";
        let good = hex(&hmac_sha256(b"s2", &[body]));
        let v = hmac_sha256_hex(&["s1", "s2"]);
        let sig = |value: &str| headers(&[("x-signature", value)]);
        // Rotation: only the second secret matches. Upper-case hex is accepted.
        assert_eq!(v.verify(&sig(&good), body, at(0)), Ok(()));
        assert_eq!(v.verify(&sig(&good.to_uppercase()), body, at(0)), Ok(()));
        assert_eq!(
            hmac_sha256_hex(&["s1"]).verify(&sig(&good), body, at(0)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify(&sig(&good), b"payloaD", at(0)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify(&HeaderMap::new(), body, at(0)),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-signature"
            )))
        );
        assert_malformed(v.verify(&sig(""), body, at(0)), "x-signature");
        assert_malformed(v.verify(&sig(&"zz".repeat(32)), body, at(0)), "x-signature");
        assert_malformed(v.verify(&sig(&good[2..]), body, at(0)), "x-signature");
        assert_malformed(
            v.verify(&sig(&format!("{good}00")), body, at(0)),
            "x-signature",
        );
        assert_eq!(
            v.verify(&sig(&"a".repeat(10 * 1024)), body, at(0)),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "x-signature"
            )))
        );
    }

    #[test]
    fn hmac_scheme_sha512_base64_with_prefix() {
        let body = b"payload";
        let mut mac = <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(b"k").expect("any key");
        mac.update(body);
        let good = format!("sha512={}", b64(&mac.finalize().into_bytes()));
        let v = Verifier::Hmac(HmacScheme {
            header: HeaderName::from_static("x-sig"),
            algorithm: HmacAlgorithm::Sha512,
            encoding: SigEncoding::Base64,
            prefix: "sha512=".to_owned(),
            secrets: vec![secret("k")],
        });
        let sig = |value: &str| headers(&[("x-sig", value)]);
        assert_eq!(v.verify(&sig(&good), body, at(0)), Ok(()));
        // Missing prefix, bad base64, a 32-byte (SHA-256 sized) MAC.
        assert_malformed(
            v.verify(&sig(&good["sha512=".len()..]), body, at(0)),
            "x-sig",
        );
        assert_malformed(v.verify(&sig("sha512=***"), body, at(0)), "x-sig");
        assert_malformed(
            v.verify(&sig(&format!("sha512={}", b64(&[0; 32]))), body, at(0)),
            "x-sig",
        );
    }

    // === GitHub: negative cases ===

    #[test]
    fn github_negative_cases() {
        let body = b"Hello, World!";
        let good = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        let sig = |value: &str| headers(&[("x-hub-signature-256", value)]);
        assert_eq!(
            github(&["wrong"]).verify(&sig(good), body, at(0)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            github(&["wrong", "It's a Secret to Everybody"]).verify(&sig(good), body, at(0)),
            Ok(())
        );
        let v = github(&["It's a Secret to Everybody"]);
        assert_eq!(
            v.verify(&sig(good), b"Hello, World?", at(0)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            v.verify(
                &headers(&[(
                    "x-hub-signature",
                    "sha1=01dc10d0c83e72ed246219cdd91669667fe2ca59"
                )]),
                body,
                at(0)
            ),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-hub-signature-256"
            )))
        );
        assert_malformed(
            v.verify(&sig(&good[7..]), body, at(0)),
            "x-hub-signature-256",
        );
        assert_malformed(
            v.verify(&sig("sha256=xyz"), body, at(0)),
            "x-hub-signature-256",
        );
        assert_malformed(v.verify(&sig(""), body, at(0)), "x-hub-signature-256");
        assert_eq!(
            v.verify(
                &sig(&format!("sha256={}", "0".repeat(10 * 1024))),
                body,
                at(0)
            ),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "x-hub-signature-256"
            )))
        );
    }

    // === Stripe: negative cases ===

    #[test]
    fn stripe_rotation_multiple_v1_and_v0() {
        let good = stripe_v1(STRIPE_SECRET, STRIPE_TS, STRIPE_BODY);
        let other = stripe_v1("whsec_other", STRIPE_TS, STRIPE_BODY);
        let h = headers(&[(
            "stripe-signature",
            &format!("t={STRIPE_TS},v1={other},v1={good},v0={}", "0".repeat(64)),
        )]);
        assert_eq!(
            stripe(&[STRIPE_SECRET]).verify(&h, STRIPE_BODY, at(STRIPE_TS)),
            Ok(())
        );
        // Rotation on our side: only the second configured secret matches.
        let h = headers(&[("stripe-signature", &format!("t={STRIPE_TS},v1={good}"))]);
        assert_eq!(
            stripe(&["whsec_old", STRIPE_SECRET]).verify(&h, STRIPE_BODY, at(STRIPE_TS)),
            Ok(())
        );
        assert_eq!(
            stripe(&["whsec_old"]).verify(&h, STRIPE_BODY, at(STRIPE_TS)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            stripe(&[STRIPE_SECRET]).verify(&h, b"{}", at(STRIPE_TS)),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn stripe_tolerance_both_directions() {
        let v = stripe(&[STRIPE_SECRET]);
        for (ts, now, expected) in [
            (STRIPE_TS, STRIPE_TS + 300, Ok(())),
            (STRIPE_TS, STRIPE_TS - 300, Ok(())),
            (
                STRIPE_TS,
                STRIPE_TS + 301,
                Err(SignatureError::TimestampTooOld),
            ),
            (
                STRIPE_TS,
                STRIPE_TS - 301,
                Err(SignatureError::TimestampTooNew),
            ),
        ] {
            let value = format!("t={ts},v1={}", stripe_v1(STRIPE_SECRET, ts, STRIPE_BODY));
            let h = headers(&[("stripe-signature", &value)]);
            assert_eq!(v.verify(&h, STRIPE_BODY, at(now)), expected, "now={now}");
        }
    }

    #[test]
    fn stripe_malformed_headers() {
        let v = stripe(&[STRIPE_SECRET]);
        let good = stripe_v1(STRIPE_SECRET, STRIPE_TS, STRIPE_BODY);
        let check = |value: &str| {
            v.verify(
                &headers(&[("stripe-signature", value)]),
                STRIPE_BODY,
                at(STRIPE_TS),
            )
        };
        assert_eq!(
            v.verify(&HeaderMap::new(), STRIPE_BODY, at(STRIPE_TS)),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "stripe-signature"
            )))
        );
        for bad in [
            format!("v1={good}"),                             // no t=
            format!("t=abc,v1={good}"),                       // non-numeric t
            format!("t=,v1={good}"),                          // empty t
            format!("t={STRIPE_TS},t={STRIPE_TS},v1={good}"), // two t=
            format!("t={STRIPE_TS},v1={good},"),              // trailing comma
            format!("t={STRIPE_TS},v1={}", "g".repeat(64)),   // bad hex
            format!("t={STRIPE_TS},v1={}", &good[..62]),      // wrong length
            String::new(),                                    // empty value
        ] {
            assert_malformed(check(&bad), "stripe-signature");
        }
        assert_eq!(
            check(&format!("t={STRIPE_TS},v0={good}")),
            Err(SignatureError::NoSupportedSignature)
        );
        assert_eq!(
            check(&format!("t={STRIPE_TS},v1={good}{}", ",v1=00".repeat(2000))),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "stripe-signature"
            )))
        );
    }

    // === Slack: negative cases ===

    #[test]
    fn slack_negative_cases() {
        let v = slack(&[SLACK_SECRET]);
        let h = slack_headers(SLACK_SECRET, SLACK_TS, SLACK_BODY);
        assert_eq!(
            slack(&["other"]).verify(&h, SLACK_BODY, at(SLACK_TS)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            slack(&["other", SLACK_SECRET]).verify(&h, SLACK_BODY, at(SLACK_TS)),
            Ok(())
        );
        assert_eq!(
            v.verify(&h, b"token=x", at(SLACK_TS)),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(v.verify(&h, SLACK_BODY, at(SLACK_TS + 300)), Ok(()));
        assert_eq!(v.verify(&h, SLACK_BODY, at(SLACK_TS - 300)), Ok(()));
        assert_eq!(
            v.verify(&h, SLACK_BODY, at(SLACK_TS + 301)),
            Err(SignatureError::TimestampTooOld)
        );
        assert_eq!(
            v.verify(&h, SLACK_BODY, at(SLACK_TS - 301)),
            Err(SignatureError::TimestampTooNew)
        );

        let sig = h
            .get("x-slack-signature")
            .and_then(|value| value.to_str().ok())
            .expect("signature header")
            .to_owned();
        let ts = SLACK_TS.to_string();
        let check = |ts: &str, sig: &str| {
            v.verify(
                &headers(&[
                    ("x-slack-request-timestamp", ts),
                    ("x-slack-signature", sig),
                ]),
                SLACK_BODY,
                at(SLACK_TS),
            )
        };
        assert_malformed(check("yesterday", &sig), "x-slack-request-timestamp");
        assert_malformed(check("", &sig), "x-slack-request-timestamp");
        assert_malformed(check(&ts, &sig[3..]), "x-slack-signature");
        assert_malformed(check(&ts, "v0=nothex"), "x-slack-signature");
        assert_malformed(check(&ts, &sig[..sig.len() - 2]), "x-slack-signature");
        assert_eq!(
            check(&ts, &format!("v0={}", "a".repeat(10 * 1024))),
            Err(SignatureError::HeaderTooLong(HeaderName::from_static(
                "x-slack-signature"
            )))
        );
        assert_eq!(
            v.verify(
                &headers(&[("x-slack-signature", &sig)]),
                SLACK_BODY,
                at(SLACK_TS)
            ),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-slack-request-timestamp"
            )))
        );
        assert_eq!(
            v.verify(
                &headers(&[("x-slack-request-timestamp", &ts)]),
                SLACK_BODY,
                at(SLACK_TS)
            ),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-slack-signature"
            )))
        );
    }

    // === consumed headers, Debug ===

    #[test]
    fn consumed_headers_per_scheme() {
        let names = |v: &Verifier| -> Vec<String> {
            v.consumed_headers()
                .iter()
                .map(|name| name.as_str().to_owned())
                .collect()
        };
        assert_eq!(names(&hmac_sha256_hex(&["k"])), ["x-signature"]);
        assert_eq!(
            names(&std_verifier(vec![], vec![])),
            [
                "webhook-signature",
                "webhook-timestamp",
                "svix-signature",
                "svix-timestamp"
            ]
        );
        assert_eq!(
            names(&github(&["k"])),
            ["x-hub-signature-256", "x-hub-signature"]
        );
        assert_eq!(names(&stripe(&["k"])), ["stripe-signature"]);
        assert_eq!(
            names(&slack(&["k"])),
            ["x-slack-signature", "x-slack-request-timestamp"]
        );
    }

    #[test]
    fn only_the_signature_header_itself_counts_as_signed() {
        fn present(v: &Verifier, pairs: &[(&str, &str)]) -> Result<(), String> {
            v.signature_present(&headers(pairs))
                .map_err(|name| name.to_string())
        }
        let sw = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        assert_eq!(
            present(&sw, &[("webhook-timestamp", "1"), ("webhook-id", "m")]),
            Err("webhook-signature".to_owned())
        );
        assert_eq!(present(&sw, &[("svix-signature", "v1,x")]), Ok(()));
        assert_eq!(present(&sw, &[("webhook-signature", "v1,x")]), Ok(()));
        let gh = github(&["k"]);
        assert_eq!(
            present(&gh, &[("x-hub-signature", "sha1=00")]),
            Err("x-hub-signature-256".to_owned())
        );
        assert_eq!(
            present(&gh, &[("x-hub-signature-256", "sha256=00")]),
            Ok(())
        );
        let sl = slack(&["k"]);
        assert_eq!(
            present(&sl, &[("x-slack-request-timestamp", "1")]),
            Err("x-slack-signature".to_owned())
        );
        assert_eq!(
            present(&stripe(&["k"]), &[]),
            Err("stripe-signature".to_owned())
        );
        assert_eq!(
            present(&hmac_sha256_hex(&["k"]), &[("x-signature", "00")]),
            Ok(())
        );
    }

    #[test]
    fn debug_and_errors_carry_no_secret() {
        let v = std_verifier(vec![whsec(SW_SECRET)], vec![]);
        let shown = format!("{v:?}");
        assert!(shown.contains("[redacted]"), "{shown}");
        assert!(!shown.contains("MfKQ9r8G"), "{shown}");
        let v = stripe(&[STRIPE_SECRET]);
        assert!(!format!("{v:?}").contains("test_secret"));
        let err = decode_whsec(b"whsec_s3cr*t")
            .map(|_| ())
            .expect_err("bad base64");
        assert!(!err.to_string().contains("s3cr"));
        assert_eq!(
            SignatureError::TimestampTooOld.reason(),
            "timestamp_too_old"
        );
    }

    // === property: header data never panics ===

    mod prop {
        use super::*;
        use proptest::prelude::*;

        fn all_verifiers() -> Vec<Verifier> {
            vec![
                hmac_sha256_hex(&["k"]),
                Verifier::Hmac(HmacScheme {
                    header: HeaderName::from_static("x-signature"),
                    algorithm: HmacAlgorithm::Sha512,
                    encoding: SigEncoding::Base64,
                    prefix: "sha512=".to_owned(),
                    secrets: vec![secret("k")],
                }),
                std_verifier(
                    vec![whsec(SW_SECRET)],
                    vec![SigningKey::from_bytes(&SEED).verifying_key()],
                ),
                github(&["k"]),
                stripe(&["k"]),
                slack(&["k"]),
            ]
        }

        const NAMES: [&str; 10] = [
            "x-signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-signature",
            "x-hub-signature-256",
            "stripe-signature",
            "x-slack-signature",
            "x-slack-request-timestamp",
            "svix-timestamp",
        ];

        fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..300),
                proptest::collection::vec(any::<u8>(), 4000..4200),
                "(v1a?,[A-Za-z0-9+/=]{0,90} ?){0,20}".prop_map(String::into_bytes),
                "(t=[0-9]{0,12},)?(v[01]=[0-9a-fA-Fg]{0,66},?){0,20}".prop_map(String::into_bytes),
                "(sha(256|512)=|v0=)?[0-9a-f]{0,130}".prop_map(String::into_bytes),
                "[0-9.+-]{0,25}".prop_map(String::into_bytes),
            ]
        }

        proptest! {
            #[test]
            fn arbitrary_headers_never_panic(
                values in proptest::collection::vec((0..NAMES.len(), value_strategy()), 0..8),
                body in proptest::collection::vec(any::<u8>(), 0..64),
                now in any::<u64>(),
            ) {
                let mut map = HeaderMap::new();
                for (index, value) in &values {
                    let (Some(name), Ok(value)) =
                        (NAMES.get(*index), HeaderValue::from_bytes(value))
                    else {
                        continue;
                    };
                    map.append(*name, value);
                }
                // SystemTime cannot hold every u64 of seconds on every platform.
                let now = UNIX_EPOCH
                    .checked_add(Duration::from_secs(now % (1 << 40)))
                    .unwrap_or(UNIX_EPOCH);
                for verifier in all_verifiers() {
                    // Random data must never verify, and must never panic.
                    prop_assert!(verifier.verify(&map, &body, now).is_err());
                }
            }
        }
    }
}

/// Each preset's scheme against its vector from `shared/providers/FACTS.md` §6, through the
/// one engine with the bundled data. The source of every vector is named at its test and
/// in the preset's `vector` key.
#[cfg(test)]
mod preset_vectors {
    use super::*;
    use http::HeaderValue;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).expect("test header name"),
                HeaderValue::from_bytes(value.as_bytes()).expect("test header value"),
            );
        }
        map
    }

    /// A route's verifier for bundled preset `name`, built as the config compiler does.
    fn preset(name: &str, secrets: &[&str], public_url: Option<&str>) -> SchemeVerifier {
        preset_with(name, secrets, public_url, HeaderOverrides::default())
    }

    fn preset_with(
        name: &str,
        secrets: &[&str],
        public_url: Option<&str>,
        overrides: HeaderOverrides<'_>,
    ) -> SchemeVerifier {
        let spec = crate::providers::scheme(name).expect("bundled scheme");
        let scheme = CompiledScheme::compile(name, spec, overrides).expect("compiles");
        let secrets = secrets
            .iter()
            .map(|s| scheme.decode_secret(s.as_bytes()).expect("key"))
            .collect();
        let tolerance = scheme.default_tolerance().map_or(Duration::ZERO, |t| {
            humantime::parse_duration(t).expect("tolerance")
        });
        SchemeVerifier {
            scheme,
            secrets,
            public_keys: Vec::new(),
            tolerance,
            public_url: public_url.map(str::to_owned),
        }
    }

    fn check(
        v: &SchemeVerifier,
        h: &HeaderMap,
        query: Option<&str>,
        body: &[u8],
        now: u64,
    ) -> Result<(), SignatureError> {
        Verifier::Scheme(Box::new(v.clone())).verify_request(&SignedRequest {
            headers: h,
            query,
            body,
            now: at(now),
        })
    }

    #[test]
    fn every_bundled_scheme_compiles_and_fifteen_presets_exist() {
        let all = crate::providers::presets().expect("presets");
        let mut schemes = 0;
        for (name, p) in all {
            if let Some(spec) = &p.scheme {
                schemes += 1;
                CompiledScheme::compile(name, spec, HeaderOverrides::default())
                    .unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(CompiledScheme::bundled(name).is_some(), "{name}");
                assert!(spec.vector.is_some(), "{name} names its vector's source");
            }
        }
        assert!(schemes >= 12, "{schemes} signing presets");
        assert!(all.len() >= 15);
    }

    #[test]
    fn shopify_computed_vector() {
        // FACTS.md §6.6 [computed] (Shopify publishes no fixed vector): key `hush`.
        let v = preset("shopify", &["hush"], None);
        let h = headers(&[(
            "x-shopify-hmac-sha256",
            "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=",
        )]);
        assert_eq!(check(&v, &h, None, br#"{"id":1}"#, 0), Ok(()));
        assert_eq!(
            check(&v, &h, None, br#"{"id":2}"#, 0),
            Err(SignatureError::NoMatch)
        );
        let wrong = preset("shopify", &["hush!"], None);
        assert_eq!(
            check(&wrong, &h, None, br#"{"id":1}"#, 0),
            Err(SignatureError::NoMatch)
        );
    }

    const TWILIO_URL: &str = "https://mycompany.com/myapp.php";
    const TWILIO_QUERY: &str = "foo=1&bar=2";
    const TWILIO_FORM: &[u8] = b"CallSid=CA1234567890ABCDE&Caller=%2B14158675309&Digits=1234&From=%2B14158675309&To=%2B18005551212";

    #[test]
    fn twilio_official_vectors() {
        // twilio/twilio-python tests/unit/test_request_validator.py; FACTS.md §6.7.
        let v = preset("twilio", &["12345"], Some(TWILIO_URL));
        let sig = |s: &str| headers(&[("x-twilio-signature", s)]);
        let h = sig("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(check(&v, &h, Some(TWILIO_QUERY), TWILIO_FORM, 0), Ok(()));
        // Parameter order in the body does not matter: they are sorted.
        let reordered = b"To=%2B18005551212&From=%2B14158675309&Digits=1234&Caller=%2B14158675309&CallSid=CA1234567890ABCDE";
        assert_eq!(check(&v, &h, Some(TWILIO_QUERY), reordered, 0), Ok(()));
        // The URL is signed: another query, or no public_url match, fails.
        assert_eq!(
            check(&v, &h, Some("foo=1&bar=3"), TWILIO_FORM, 0),
            Err(SignatureError::NoMatch)
        );
        // A URL with an explicit port (same vector file).
        let v1234 = preset(
            "twilio",
            &["12345"],
            Some("http://mycompany.com:1234/myapp.php"),
        );
        let h1234 = sig("Zmvh+3yNM1Phv2jhDCwEM3q5ebU=");
        assert_eq!(
            check(&v1234, &h1234, Some(TWILIO_QUERY), TWILIO_FORM, 0),
            Ok(())
        );
        // Repeated keys: every (key, value) pair, sorted.
        let dup = sig("IK+Dwps556ElfBT0I3Rgjkr1wJU=");
        let body = b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234";
        assert_eq!(check(&v, &dup, Some(TWILIO_QUERY), body, 0), Ok(()));
    }

    #[test]
    fn twilio_port_variants_official_vectors() {
        // twilio-python test_request_validator.py: the sender signed the URL with the
        // default port (`:443`, `:80`) while the receiver knows it without, and the
        // validator accepts both ways; FACTS.md §6.7.
        let sig = |s: &str| headers(&[("x-twilio-signature", s)]);
        let https = preset("twilio", &["12345"], Some(TWILIO_URL));
        let h443 = sig("kvajT1Ptam85bY51eRf/AJRuM3w=");
        assert_eq!(
            check(&https, &h443, Some(TWILIO_QUERY), TWILIO_FORM, 0),
            Ok(())
        );
        let http = preset("twilio", &["12345"], Some("http://mycompany.com/myapp.php"));
        let h80 = sig("0ZXoZLH/DfblKGATFgpif+LLRf4=");
        assert_eq!(
            check(&http, &h80, Some(TWILIO_QUERY), TWILIO_FORM, 0),
            Ok(())
        );
        // And the other way round: configured with the port, signed without.
        let with_port = preset(
            "twilio",
            &["12345"],
            Some("https://mycompany.com:443/myapp.php"),
        );
        let plain = sig("RSOYDt4T1cUTdK1PDd93/VVr8B8=");
        assert_eq!(
            check(&with_port, &plain, Some(TWILIO_QUERY), TWILIO_FORM, 0),
            Ok(())
        );
        // The :80 signature is not an https one.
        assert_eq!(
            check(&https, &h80, Some(TWILIO_QUERY), TWILIO_FORM, 0),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            url_variants("https://[::1]:8443/p", true),
            ["https://[::1]:8443/p", "https://[::1]/p"]
        );
        assert_eq!(
            url_variants("https://[::1]/p", true),
            ["https://[::1]/p", "https://[::1]:443/p"]
        );
        assert_eq!(url_variants("https://h/p", false), ["https://h/p"]);
    }

    #[test]
    fn twilio_json_body_sha256_variant() {
        // twilio-python test_request_validator.py, JSON body; FACTS.md §6.7.
        let v = preset("twilio", &["12345"], Some(TWILIO_URL));
        let body = br#"{"property": "value", "boolean": true}"#;
        let query = "foo=1&bar=2&bodySHA256=0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620";
        let h = headers(&[("x-twilio-signature", "a9nBmqA0ju/hNViExpshrM61xv4=")]);
        assert_eq!(check(&v, &h, Some(query), body, 0), Ok(()));
        // The URL (and so the signature) is right but the body is not the hashed one.
        assert_eq!(
            check(
                &v,
                &h,
                Some(query),
                br#"{"property": "value", "boolean": false}"#,
                0
            ),
            Err(SignatureError::BodyHashMismatch)
        );
    }

    #[test]
    fn gitlab_token() {
        // FACTS.md §6.8: X-Gitlab-Token carries the secret token (no MAC, no vector).
        let v = preset("gitlab", &["old-token", "new-token"], None);
        let body = b"{}";
        assert_eq!(
            check(
                &v,
                &headers(&[("x-gitlab-token", "new-token")]),
                None,
                body,
                0
            ),
            Ok(())
        );
        assert_eq!(
            check(
                &v,
                &headers(&[("x-gitlab-token", "new-tokem")]),
                None,
                body,
                0
            ),
            Err(SignatureError::NoMatch)
        );
        assert_eq!(
            check(&v, &headers(&[]), None, body, 0),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-gitlab-token"
            )))
        );
    }

    #[test]
    fn zoom_computed_vector_and_tolerance() {
        // FACTS.md §6.9 [computed] (Zoom publishes no fixed vector).
        let v = preset("zoom", &["secret_token_123"], None);
        let body = br#"{"event":"meeting.started","event_ts":1658940994000}"#;
        let h = headers(&[
            ("x-zm-request-timestamp", "1658940994"),
            (
                "x-zm-signature",
                "v0=706ba54a361cc543fd415610128574f7b24ceb368d7a9271fc04c66f81f21320",
            ),
        ]);
        assert_eq!(check(&v, &h, None, body, 1_658_940_994), Ok(()));
        assert_eq!(
            check(&v, &h, None, body, 1_658_940_994 + 301),
            Err(SignatureError::TimestampTooOld)
        );
        assert_eq!(
            check(&v, &h, None, body, 1_658_940_994 - 301),
            Err(SignatureError::TimestampTooNew)
        );
        assert_eq!(
            Verifier::Scheme(Box::new(v)).handshake(),
            Some(Handshake::ZoomUrlValidation)
        );
        let slack = Verifier::Slack(SlackScheme {
            secrets: vec![Secret::new(b"k".to_vec())],
            tolerance: Duration::from_secs(300),
        });
        assert_eq!(slack.handshake(), Some(Handshake::SlackUrlVerification));
        assert_eq!(
            Verifier::Scheme(Box::new(preset("twitch", &["k"], None))).handshake(),
            Some(Handshake::TwitchChallenge)
        );
        assert_eq!(
            Verifier::Scheme(Box::new(preset("github", &["k"], None))).handshake(),
            None
        );
    }

    #[test]
    fn twitch_computed_vector_rfc3339_and_ten_minutes() {
        // FACTS.md §6.10 [computed] (Twitch publishes no fixed vector).
        let v = preset("twitch", &["s3cRe7s3cRe7"], None);
        let body = br#"{"subscription":{"type":"channel.follow"}}"#;
        let h = headers(&[
            (
                "twitch-eventsub-message-id",
                "e76c6bd4-55c9-4987-8304-da1588d8988b",
            ),
            (
                "twitch-eventsub-message-timestamp",
                "2019-11-16T10:11:12.634234626Z",
            ),
            (
                "twitch-eventsub-message-signature",
                "sha256=e78a10bc0f474de33a937e7e2196ef5d50307d8e94ec2fd73051e1b181585a06",
            ),
        ]);
        let ts = 1_573_899_072; // 2019-11-16T10:11:12Z
        assert_eq!(check(&v, &h, None, body, ts), Ok(()));
        assert_eq!(check(&v, &h, None, body, ts + 600), Ok(()));
        assert_eq!(
            check(&v, &h, None, body, ts + 601),
            Err(SignatureError::TimestampTooOld)
        );
        let mut tampered = h.clone();
        tampered.insert(
            "twitch-eventsub-message-id",
            HeaderValue::from_static("e76c6bd4-55c9-4987-8304-da1588d8988c"),
        );
        assert_eq!(
            check(&v, &tampered, None, body, ts),
            Err(SignatureError::NoMatch)
        );
        let mut bad_ts = h.clone();
        bad_ts.insert(
            "twitch-eventsub-message-timestamp",
            HeaderValue::from_static("1573899072"),
        );
        assert!(matches!(
            check(&v, &bad_ts, None, body, ts),
            Err(SignatureError::MalformedHeader { .. })
        ));
    }

    #[test]
    fn square_official_vector() {
        // square/square-python-sdk tests/integration/test_webhooks_helper.py; FACTS.md §6.11.
        let url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
        let v = preset("square", &["Ibxx_5AKakO-3qeNVR61Dw"], Some(url));
        let body = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}"#;
        let h = headers(&[(
            "x-square-hmacsha256-signature",
            "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=",
        )]);
        assert_eq!(check(&v, &h, None, body, 0), Ok(()));
        let elsewhere = preset(
            "square",
            &["Ibxx_5AKakO-3qeNVR61Dw"],
            Some("https://webhook.site/other"),
        );
        assert_eq!(
            check(&elsewhere, &h, None, body, 0),
            Err(SignatureError::NoMatch)
        );
    }

    #[test]
    fn pagerduty_official_vector_and_comma_list() {
        // PagerDuty/go-pagerduty webhookv3/webhookv3_test.go (`defaultBody`, saved in
        // tests/vectors/pagerduty-v3-body.json); FACTS.md §6.12.
        let body = include_bytes!("../../tests/vectors/pagerduty-v3-body.json");
        assert_eq!(body.len(), 1655);
        let v = preset(
            "pagerduty",
            &["lDQHScfUeXUKaQRNF+8XIiDKZ7XX3itBAYzwU0TARw8lJqRnkKl2iB1anSb0Z+IK"],
            None,
        );
        let good = "v1=0c0b9495b893a39e70d1fea2fe11fbe0a825f88b9f67846f6cc07dd2bc5476cd";
        let bad = "v1=7020c8a7ec668a9b7012bc3dd82e483394b038f4230acc6785efbf2a7d8bcaf5";
        let sig = |s: &str| headers(&[("x-pagerduty-signature", s)]);
        assert_eq!(check(&v, &sig(good), None, body, 0), Ok(()));
        assert_eq!(
            check(&v, &sig(bad), None, body, 0),
            Err(SignatureError::NoMatch)
        );
        // Sender-side rotation: the good one anywhere in the comma list.
        assert_eq!(
            check(&v, &sig(&format!("{bad},{good}")), None, body, 0),
            Ok(())
        );
        assert_eq!(
            check(&v, &sig("v2=00"), None, body, 0),
            Err(SignatureError::NoSupportedSignature)
        );
    }

    #[test]
    fn grafana_with_and_without_timestamp() {
        // FACTS.md §6.14 [computed], matching computeHMAC in grafana/alerting
        // http/hmac_test.go.
        let body = b"test message";
        let v = preset("grafana", &["secret"], None);
        let h = headers(&[(
            "x-grafana-alerting-signature",
            "3bcebf43c85d20bba6e3b6ba278af1d2ba3ab0d57de271b0ad30b833e851c5a6",
        )]);
        assert_eq!(check(&v, &h, None, body, 0), Ok(()));
        let with_ts = preset_with(
            "grafana",
            &["secret"],
            None,
            HeaderOverrides {
                signature: None,
                timestamp: Some("x-grafana-alerting-timestamp"),
            },
        );
        let h = headers(&[
            ("x-grafana-alerting-timestamp", "1700000000"),
            (
                "x-grafana-alerting-signature",
                "36fa366a807205a13fc507ea4413374566ad5808c7ca7653f94d121fe5e64c2d",
            ),
        ]);
        assert_eq!(check(&with_ts, &h, None, body, 1_700_000_000), Ok(()));
        assert_eq!(
            check(&with_ts, &h, None, body, 1_700_000_000 + 301),
            Err(SignatureError::TimestampTooOld)
        );
        // Once the route names the timestamp header, a request without it is refused.
        let h = headers(&[(
            "x-grafana-alerting-signature",
            "3bcebf43c85d20bba6e3b6ba278af1d2ba3ab0d57de271b0ad30b833e851c5a6",
        )]);
        assert_eq!(
            check(&with_ts, &h, None, body, 1_700_000_000),
            Err(SignatureError::MissingHeader(HeaderName::from_static(
                "x-grafana-alerting-timestamp"
            )))
        );
    }

    #[test]
    fn svix_preset_uses_svix_names_first() {
        // FACTS.md §6.2: the Standard Webhooks official vector under svix-* names.
        let v = preset("svix", &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"], None);
        let h = headers(&[
            ("svix-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("svix-timestamp", "1614265330"),
            (
                "svix-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ]);
        assert_eq!(
            check(&v, &h, None, br#"{"test": 2432232314}"#, 1_614_265_330),
            Ok(())
        );
        assert_eq!(
            v.scheme.signature_present(&HeaderMap::new()),
            Err(HeaderName::from_static("svix-signature"))
        );
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        /// Every header name any bundled scheme reads.
        fn names() -> Vec<&'static str> {
            vec![
                "x-shopify-hmac-sha256",
                "x-twilio-signature",
                "x-gitlab-token",
                "x-zm-signature",
                "x-zm-request-timestamp",
                "twitch-eventsub-message-id",
                "twitch-eventsub-message-timestamp",
                "twitch-eventsub-message-signature",
                "x-square-hmacsha256-signature",
                "x-pagerduty-signature",
                "x-grafana-alerting-signature",
                "svix-id",
                "svix-timestamp",
                "svix-signature",
            ]
        }

        fn value_strategy() -> impl Strategy<Value = Vec<u8>> {
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..200),
                "(v1=[0-9a-f]{0,66},?){0,20}".prop_map(String::into_bytes),
                "(sha256=|v0=)?[0-9a-f]{0,70}".prop_map(String::into_bytes),
                "[A-Za-z0-9+/=]{0,60}".prop_map(String::into_bytes),
                "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:.]{0,20}(Z|[+-][0-9]{2}:[0-9]{2})?"
                    .prop_map(String::into_bytes),
                proptest::collection::vec(any::<u8>(), 4090..4100),
            ]
        }

        proptest! {
            #[test]
            fn arbitrary_requests_never_verify_nor_panic(
                values in proptest::collection::vec((0..14usize, value_strategy()), 0..8),
                query in proptest::option::of("[A-Za-z0-9=&%+._-]{0,80}(bodySHA256=[0-9a-fA-F]{0,70})?"),
                body in proptest::collection::vec(any::<u8>(), 0..64),
                now in any::<u64>(),
            ) {
                let names = names();
                let mut map = HeaderMap::new();
                for (index, value) in &values {
                    let (Some(name), Ok(value)) =
                        (names.get(*index), HeaderValue::from_bytes(value))
                    else {
                        continue;
                    };
                    map.append(*name, value);
                }
                let now = UNIX_EPOCH
                    .checked_add(Duration::from_secs(now % (1 << 40)))
                    .unwrap_or(UNIX_EPOCH);
                for name in [
                    "shopify", "twilio", "zoom", "twitch", "square", "pagerduty",
                    "grafana", "svix",
                ] {
                    let secret = if name == "svix" {
                        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
                    } else {
                        "k"
                    };
                    let v = preset(name, &[secret], Some("https://h.example/p"));
                    prop_assert!(
                        check(&v, &map, query.as_deref(), &body, now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())).is_err(),
                        "{} verified random data", name
                    );
                }
                // GitLab's token is compared, never parsed: only the token itself passes.
                let v = preset("gitlab", &["a-token-no-generator-makes"], None);
                prop_assert!(check(&v, &map, None, &body, 0).is_err());
            }
        }
    }

    #[test]
    fn sign_then_verify_round_trips_for_every_scheme() {
        let all = crate::providers::presets().expect("presets");
        let body = br#"{"id":"evt_1","n":1}"#;
        let ts = 1_700_000_000;
        for (name, p) in all {
            if p.scheme.is_none() {
                continue;
            }
            let secret = if name == "standard-webhooks" || name == "svix" {
                "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
            } else {
                "a-shared-secret"
            };
            let public_url = "https://hooks.example.com/hooks/x";
            let v = preset(name, &[secret], Some(public_url));
            let signed = v
                .scheme
                .sign(secret.as_bytes(), "msg_1", ts, Some(public_url), body)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let pairs: Vec<(&str, &str)> = signed
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let h = headers(&pairs);
            assert_eq!(check(&v, &h, None, body, ts), Ok(()), "{name}");
            let other = preset(name, &[&secret.replace('a', "b")], Some(public_url));
            if name != "standard-webhooks" && name != "svix" {
                assert_eq!(
                    check(&other, &h, None, body, ts),
                    Err(SignatureError::NoMatch),
                    "{name}"
                );
            }
        }
    }
}
