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
