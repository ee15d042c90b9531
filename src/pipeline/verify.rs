//! Phase 2, read + verify: the body, bounded in size and time, then its signature over
//! the raw bytes, before anything parses them.

use bytes::Bytes;
use tokio::time::Instant;

use super::admit::Admitted;
use super::{Gateway, body};
use crate::error::GatewayError;

/// A body whose bytes are complete and whose signature (if the route has one) holds.
#[derive(Debug)]
pub struct Verified {
    /// The body exactly as received.
    pub bytes: Bytes,
}

/// Reads `unread` under the server's limits and verifies it. Consumes the body: whatever
/// happens, it is not read again.
pub async fn read_verified(
    gw: &Gateway,
    admitted: &Admitted<'_>,
    unread: axum::body::Body,
    started: Instant,
) -> Result<Verified, GatewayError> {
    let server = &gw.settings.server;
    let headers = &admitted.parts.headers;
    // The config caps durations, but a deadline that cannot be represented must still
    // never panic a request: it means "no deadline worth having", so take the cap.
    let deadline = started
        .checked_add(server.read_timeout)
        .unwrap_or_else(|| started + crate::config::MAX_DURATION);
    let bytes = body::read(
        unread,
        body::declared_length(headers),
        server.max_body_bytes,
        deadline,
    )
    .await?;
    admitted
        .route
        .auth
        .verify_request(&super::signature::SignedRequest {
            headers,
            query: admitted.parts.uri.query(),
            body: &bytes,
            now: std::time::SystemTime::now(),
        })?;
    Ok(Verified { bytes })
}
