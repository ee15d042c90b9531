//! Reading the request body: bounded in size and in time.
//!
//! A declared `Content-Length` above the cap is refused before a byte is read; a body
//! that grows past it while streaming is cut off there (never buffered whole). The
//! deadline covers the whole body, so a sender trickling one byte a second cannot hold
//! a connection open.

use bytes::Bytes;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use tokio::time::Instant;

/// Why a body was not read.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    /// Larger than `max_body_bytes`.
    #[error("body larger than {max} bytes")]
    TooLarge {
        /// The cap.
        max: u64,
    },
    /// Not received before the `read_timeout` deadline.
    #[error("body not received within the read timeout")]
    Timeout,
    /// The connection failed while reading.
    #[error("body could not be read: {0}")]
    Read(String),
}

/// Most bytes [`discard`] will swallow after an early rejection.
pub const DISCARD_MAX_BYTES: u64 = 64 * 1024;
/// Longest [`discard`] waits for them.
pub const DISCARD_MAX_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// The `Content-Length` a request declares, when it is a number.
pub fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Disposes of the body of a request refused on its head alone: a small one is swallowed
/// (see [`discard`]) so the connection stays usable. A sender that asked `Expect:
/// 100-continue` has not sent its body and will not until invited; reading it now would
/// invite it (hyper answers `100 Continue` on the first poll) only to throw it away, so
/// it is refused unread.
pub async fn refuse_unread(headers: &http::HeaderMap, body: axum::body::Body) {
    if !expects_continue(headers) {
        discard(body, declared_length(headers)).await;
    }
}

/// After an answer that needed no body (404, 405, 403, 429, 401): reads and drops a small
/// body so that closing the connection does not reset it under the answer. Not for a
/// sender that waits for `100 Continue` ([`expects_continue`]): its body is not coming.
///
/// A socket closed with unread bytes in its receive buffer sends RST, and the sender may
/// then never see the answer (a sender that retries on a reset would hammer us). Small
/// bodies are therefore swallowed, never buffered or parsed, within
/// [`DISCARD_MAX_BYTES`] and [`DISCARD_MAX_WAIT`]; a larger declared body is left unread
/// and the connection closed.
pub async fn discard(body: axum::body::Body, declared_len: Option<u64>) {
    if declared_len.is_some_and(|n| n > DISCARD_MAX_BYTES) {
        return;
    }
    let mut body = body;
    let mut seen = 0u64;
    let _ = tokio::time::timeout(DISCARD_MAX_WAIT, async {
        while let Some(Ok(frame)) = body.frame().await {
            if let Some(data) = frame.data_ref() {
                seen += data.len() as u64;
                if seen > DISCARD_MAX_BYTES {
                    break;
                }
            }
        }
    })
    .await;
}

/// Accepts a body with no `Content-Encoding` or only `identity`; otherwise returns the
/// encoding named (bounded, for the answer), which the gateway does not decode.
pub fn check_identity_encoding(headers: &http::HeaderMap) -> Result<(), String> {
    for value in headers.get_all(http::header::CONTENT_ENCODING) {
        let encoded = value.as_bytes().split(|&b| b == b',').any(|coding| {
            let coding = coding.trim_ascii();
            !coding.is_empty() && !coding.eq_ignore_ascii_case(b"identity")
        });
        if encoded {
            let shown = String::from_utf8_lossy(value.as_bytes());
            return Err(shown.chars().take(64).collect());
        }
    }
    Ok(())
}

/// Whether the sender waits for `100 Continue` before sending its body (RFC 9110
/// §10.1.1: the only expectation defined, compared case-insensitively).
pub fn expects_continue(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(http::header::EXPECT)
        .iter()
        .any(|v| v.as_bytes().eq_ignore_ascii_case(b"100-continue"))
}

/// Reads the whole body, at most `max` bytes, before `deadline`.
pub async fn read(
    body: axum::body::Body,
    declared_len: Option<u64>,
    max: u64,
    deadline: Instant,
) -> Result<Bytes, BodyError> {
    if declared_len.is_some_and(|n| n > max) {
        return Err(BodyError::TooLarge { max });
    }
    let limit = usize::try_from(max).unwrap_or(usize::MAX);
    let collected = tokio::time::timeout_at(deadline, Limited::new(body, limit).collect()).await;
    match collected {
        Err(_elapsed) => Err(BodyError::Timeout),
        Ok(Ok(c)) => Ok(c.to_bytes()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            Err(BodyError::TooLarge { max })
        }
        Ok(Err(e)) => Err(BodyError::Read(e.to_string())),
    }
}
