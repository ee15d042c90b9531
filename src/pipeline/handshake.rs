//! Provider endpoint handshakes, answered by the gateway (DESIGN.md §4, verdict
//! `handshake`): Zoom `endpoint.url_validation`, Twitch `webhook_callback_verification`
//! and Slack `url_verification`.
//!
//! A sender performs its handshake before (and, for Zoom, every 72 h while) sending
//! events; the handshake request is signed like any event, so it reaches this dispatch only
//! after the signature over its raw bytes held ([`super::verify`]). It is answered here and
//! never forwarded, deduplicated or ordered: it is not an event. Which handshake a route
//! answers comes from its signature scheme's data (`handshake` in the bundled presets).

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::Value;

use super::signature::SignedRequest;
use super::{Route, json};
use crate::error::GatewayError;
use crate::providers::scheme::Handshake;
use crate::schema::Violation;
use crate::verdict::{VERDICT_HEADER, Verdict};

/// Longest challenge or `plainToken` echoed back. Providers send a few dozen characters;
/// a longer one is refused rather than reflected.
pub const MAX_CHALLENGE_BYTES: usize = 1024;

/// Twitch's message-type header and its handshake value.
const TWITCH_TYPE: &str = "twitch-eventsub-message-type";
const TWITCH_VERIFICATION: &[u8] = b"webhook_callback_verification";

/// The answer to `req` if it is the route's provider handshake; `None` for an event.
/// `req` has been verified already.
pub fn answer(
    route: &Route,
    req: &SignedRequest<'_>,
    max_depth: usize,
) -> Result<Option<Response>, GatewayError> {
    let Some(kind) = route.auth.handshake() else {
        return Ok(None);
    };
    match kind {
        Handshake::TwitchChallenge => {
            if req.headers.get(TWITCH_TYPE).map(HeaderValue::as_bytes) != Some(TWITCH_VERIFICATION)
            {
                return Ok(None);
            }
            let doc = json::parse(req.body, max_depth)?;
            let challenge = text_at(&doc, "/challenge")?;
            Ok(Some(plain(challenge)))
        }
        Handshake::SlackUrlVerification => {
            // Events and slash commands (form-encoded) are far more common than the
            // handshake: only a body naming it is parsed here.
            if !contains(req.body, b"url_verification") {
                return Ok(None);
            }
            let Ok(doc) = json::parse(req.body, max_depth) else {
                return Ok(None);
            };
            if doc.pointer("/type").and_then(Value::as_str) != Some("url_verification") {
                return Ok(None);
            }
            let challenge = text_at(&doc, "/challenge")?;
            Ok(Some(plain(challenge)))
        }
        Handshake::ZoomUrlValidation => {
            if !contains(req.body, b"endpoint.url_validation") {
                return Ok(None);
            }
            let doc = json::parse(req.body, max_depth)?;
            if doc.pointer("/event").and_then(Value::as_str) != Some("endpoint.url_validation") {
                return Ok(None);
            }
            let token = text_at(&doc, "/payload/plainToken")?;
            // The secret that signed this request is the one Zoom checks the answer with
            // (during a rotation the route lists two).
            let secret = route
                .auth
                .matching_secret(req)
                .ok_or(GatewayError::Internal(
                    "verified handshake matched no secret",
                ))?;
            let encrypted = zoom_encrypted_token(secret.expose(), token);
            let body = serde_json::json!({"plainToken": token, "encryptedToken": encrypted});
            Ok(Some(respond(
                body.to_string().into_bytes(),
                HeaderValue::from_static("application/json"),
            )))
        }
    }
}

/// Zoom's `encryptedToken`: hex HMAC-SHA256 of `plainToken` under the secret token.
pub fn zoom_encrypted_token(secret: &[u8], plain_token: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let Ok(mut mac) = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret) else {
        // HMAC takes keys of any length; unreachable, and an empty answer fails closed.
        return String::new();
    };
    mac.update(plain_token.as_bytes());
    mac.finalize()
        .into_bytes()
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            use std::fmt::Write as _;
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The string at `pointer`, bounded and printable, or a 422 naming it.
fn text_at<'d>(doc: &'d Value, pointer: &str) -> Result<&'d str, GatewayError> {
    let refuse = |message: &str| {
        GatewayError::Schema(vec![Violation {
            instance_path: pointer.to_owned(),
            keyword: "handshake".to_owned(),
            message: message.to_owned(),
        }])
    };
    let text = doc
        .pointer(pointer)
        .and_then(Value::as_str)
        .ok_or_else(|| refuse("the handshake carries no string here"))?;
    if text.is_empty() || text.len() > MAX_CHALLENGE_BYTES {
        return Err(refuse("empty, or longer than 1024 bytes"));
    }
    if !text.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refuse("not printable ASCII without spaces"));
    }
    Ok(text)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// The challenge echoed as `text/plain`, as Twitch requires and Slack accepts.
fn plain(challenge: &str) -> Response {
    respond(
        challenge.as_bytes().to_vec(),
        HeaderValue::from_static("text/plain; charset=utf-8"),
    )
}

fn respond(body: Vec<u8>, content_type: HeaderValue) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = StatusCode::OK;
    let headers: &mut HeaderMap = response.headers_mut();
    headers.insert(http::header::CONTENT_TYPE, content_type);
    // The echo is the sender's text: never let a browser sniff it into something else.
    headers.insert(
        http::header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        VERDICT_HEADER,
        HeaderValue::from_static(Verdict::Handshake.as_str()),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// FACTS.md §6.9 [computed]: secret `secret_token_123`, plainToken
    /// `qgg8vlvZRS6UYooatFL8Aw`.
    #[test]
    fn zoom_encrypted_token_vector() {
        assert_eq!(
            zoom_encrypted_token(b"secret_token_123", "qgg8vlvZRS6UYooatFL8Aw"),
            "607ad4942d1053ec9e39d4713e5b9ce1e0179b62a7ea81406e7ab515c0423e40"
        );
    }

    #[test]
    fn challenges_are_bounded_and_printable() {
        let doc = serde_json::json!({"challenge": "a b"});
        assert!(text_at(&doc, "/challenge").is_err());
        let doc = serde_json::json!({"challenge": "x".repeat(MAX_CHALLENGE_BYTES + 1)});
        assert!(text_at(&doc, "/challenge").is_err());
        let doc = serde_json::json!({"challenge": 5});
        assert!(text_at(&doc, "/challenge").is_err());
        let doc = serde_json::json!({"challenge": "pogchamp-kappa-360noscope-vohiyo"});
        assert_eq!(
            text_at(&doc, "/challenge").ok(),
            Some("pogchamp-kappa-360noscope-vohiyo")
        );
    }
}
