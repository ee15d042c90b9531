//! Signature schemes as plain data: what a sender signs, how, and where it puts the result.
//!
//! Each preset in `schemas/presets.toml` may carry a `[<preset>.scheme]` table of this shape;
//! `auth = { type = "<preset>", secrets = [...] }` on a route then verifies requests with it
//! through the one engine in `pipeline::signature`. Adding a sender that signs its webhooks
//! is therefore a data change plus its test vector, not new verification code.
//!
//! This module holds data only (strings, small enums): the config layer may use it without
//! depending on the pipeline, and the engine compiles it (header names, signed-content
//! template) once per route.

use serde::Deserialize;

/// The hash behind an HMAC signature (also the `algorithm` of an `hmac` auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HmacAlgorithm {
    /// HMAC-SHA256 (32-byte MAC).
    Sha256,
    /// HMAC-SHA1 (20-byte MAC). Legacy senders only.
    Sha1,
    /// HMAC-SHA512 (64-byte MAC).
    Sha512,
}

impl HmacAlgorithm {
    /// Length of this algorithm's MAC in bytes (before hex/base64 encoding).
    pub const fn output_len(self) -> usize {
        match self {
            HmacAlgorithm::Sha1 => 20,
            HmacAlgorithm::Sha256 => 32,
            HmacAlgorithm::Sha512 => 64,
        }
    }

    /// The name used in config and presets.
    pub const fn as_str(self) -> &'static str {
        match self {
            HmacAlgorithm::Sha1 => "sha1",
            HmacAlgorithm::Sha256 => "sha256",
            HmacAlgorithm::Sha512 => "sha512",
        }
    }
}

/// How a MAC is written in its header (also the `encoding` of an `hmac` auth).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SigEncoding {
    /// Hexadecimal; upper, lower or mixed case is accepted.
    Hex,
    /// Standard base64 alphabet with `=` padding (RFC 4648 §4).
    Base64,
}

impl SigEncoding {
    /// The name used in config and presets.
    pub const fn as_str(self) -> &'static str {
        match self {
            SigEncoding::Hex => "hex",
            SigEncoding::Base64 => "base64",
        }
    }
}

/// One sender's signature scheme.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemeSpec {
    /// Header families, tried in order: the first one any of whose headers the request
    /// carries is used (all of its headers are then required), otherwise the first.
    /// Standard Webhooks lists its own names, then Svix's.
    pub headers: Vec<HeaderFamily>,
    /// What is signed, as a template: `{id}`, `{timestamp}`, `{body}`, `{url}` (the
    /// route's `public_url` plus the request's query string) and `{form}` (the body's
    /// form parameters, sorted, as `key` + `value`); any other text is literal.
    #[serde(default = "body_only")]
    pub signed: String,
    /// The MAC (`sha256`, `sha1`, `sha512`); absent for `token` schemes.
    pub algorithm: Option<HmacAlgorithm>,
    /// How MACs and signatures are encoded in the header.
    pub encoding: Option<SigEncoding>,
    /// How the configured secrets become keys (default: their raw bytes).
    #[serde(default)]
    pub key: KeyForm,
    /// Whether `public_keys` (ed25519, `whpk_`) may be configured; they verify the
    /// `ed25519` entries of a `list` signature.
    #[serde(default)]
    pub public_keys: bool,
    /// How the signature header is laid out.
    pub format: SigFormat,
    /// The signed timestamp, if the scheme has one.
    pub timestamp: Option<TimestampSpec>,
    /// A byte the id may not contain (it separates the signed fields).
    pub id_forbids: Option<char>,
    /// Query parameter carrying the hex SHA-256 of the body (Twilio's JSON variant): when
    /// the request's URL has it, `{form}` is empty and the body must hash to it.
    pub body_sha256_param: Option<String>,
    /// Also accept the URL with its default port added or its port removed, as Twilio's
    /// own validator does ("signature generation on the back end is inconsistent"
    /// about `:443`/`:80`). Costs one more MAC per secret.
    #[serde(default)]
    pub url_port_variants: bool,
    /// Further headers stripped before forwarding (older signatures of the same secret).
    #[serde(default)]
    pub strip: Vec<String>,
    /// An endpoint handshake the sender performs before sending events. Recorded here so
    /// the presets say which senders need one; answering it is a separate dispatch.
    pub handshake: Option<Handshake>,
    /// Where the official test vector of this scheme comes from (shown by `presets show`).
    pub vector: Option<String>,
}

fn body_only() -> String {
    "{body}".to_owned()
}

/// The headers of one family.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderFamily {
    /// The header carrying the signature (or the token).
    pub signature: String,
    /// The header carrying the signed timestamp, if it is a header of its own.
    pub timestamp: Option<String>,
    /// The header carrying the signed message id.
    pub id: Option<String>,
}

/// How configured secrets become MAC keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum KeyForm {
    /// The secret's bytes as written (GitHub, Stripe incl. its `whsec_` prefix, Slack...).
    #[default]
    Raw,
    /// `whsec_<base64>`: strip the optional prefix and base64-decode (Standard Webhooks).
    Whsec,
}

/// How the signature header is laid out.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SigFormat {
    /// One MAC after a fixed prefix (`sha256=<hex>`, `v0=<hex>`, bare base64).
    Single {
        /// Text before the MAC.
        #[serde(default)]
        prefix: String,
    },
    /// A list of `<version><version_separator><signature>` entries; entries of unknown
    /// versions are skipped; any entry may match (sender-side key rotation).
    List {
        /// Between entries (`" "` for Standard Webhooks, `","` for PagerDuty).
        separator: char,
        /// Between version and signature (`","` or `"="`).
        version_separator: char,
        /// The version whose entries are MACs.
        mac: String,
        /// The version whose entries are ed25519 signatures.
        ed25519: Option<String>,
    },
    /// `key=value` items separated by `,`, one of them the timestamp (Stripe).
    Pairs {
        /// The key of the timestamp item.
        timestamp_key: String,
        /// The key of MAC items.
        mac: String,
    },
    /// No MAC: the header holds the shared secret itself (GitLab's `X-Gitlab-Token`).
    Token,
}

/// The signed timestamp.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimestampSpec {
    /// How it is written.
    #[serde(default)]
    pub format: TimestampFormat,
    /// Default tolerance, both directions (a route's `tolerance` overrides it).
    pub tolerance: String,
    /// The sender may be configured without a timestamp (Grafana): unless the route names
    /// a `timestamp_header`, `{timestamp}` and the literal right after it are not signed.
    #[serde(default)]
    pub optional: bool,
}

/// How a signed timestamp is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum TimestampFormat {
    /// Integer unix seconds.
    #[default]
    Unix,
    /// RFC 3339, signed as written (Twitch).
    Rfc3339,
}

/// An endpoint handshake a sender performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Handshake {
    /// Zoom `endpoint.url_validation`: answer `plainToken` and its HMAC.
    ZoomUrlValidation,
    /// Twitch `webhook_callback_verification`: echo `challenge`.
    TwitchChallenge,
    /// Slack `url_verification`: echo `challenge`.
    SlackUrlVerification,
}

impl SchemeSpec {
    /// Whether the signed content includes the request URL (the route needs `public_url`).
    pub fn signs_url(&self) -> bool {
        self.signed.contains("{url}")
    }

    /// A one-line summary for `hookgate presets`.
    pub fn summary(&self) -> String {
        let header = self
            .headers
            .first()
            .map_or("?", |family| family.signature.as_str());
        match (&self.format, self.algorithm) {
            (SigFormat::Token, _) => format!("token in {header}"),
            (_, Some(alg)) => format!(
                "hmac-{} {} of {:?} in {header}",
                alg.as_str(),
                self.encoding.map_or("?", SigEncoding::as_str),
                self.signed
            ),
            (_, None) => format!("{:?} in {header}", self.signed),
        }
    }
}
