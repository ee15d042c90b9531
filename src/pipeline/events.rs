//! Phase 3, events: a verified body becomes the events it carries. Today a body is always
//! one event; the batch issue splits a body into its elements here, so that every later
//! phase already works on one event at a time.

use bytes::Bytes;

use super::json;
use super::verify::Verified;
use crate::error::GatewayError;

/// One event: its bytes (forwarded as they are) and its parsed JSON.
#[derive(Debug)]
pub struct Event {
    /// The bytes the upstream receives.
    pub bytes: Bytes,
    /// The parsed document, for the schema check and key extraction.
    pub document: serde_json::Value,
}

/// The one event of `verified`, JSON depth-bounded before any tree is built.
pub fn one(verified: Verified, max_depth: usize) -> Result<Event, GatewayError> {
    let document = json::parse(&verified.bytes, max_depth)?;
    Ok(Event {
        bytes: verified.bytes,
        document,
    })
}
