//! Requests that are not acceptable HTTP/1.1, and the answers they get.
//!
//! Two kinds exist. hyper itself refuses what it cannot parse (a malformed request line
//! or header, a folded header, a request target or header section over its limits) and
//! writes its own bare answer, with no hook to change it: [`Rescue`] wraps the connection
//! and replaces exactly those answers with ours, so that every answer carries
//! `X-Hookgate-Verdict` and the JSON body of DESIGN.md §4. The rest parses but breaks
//! RFC 9112 in ways hyper lets through (no `Host`, or two): [`check_host`] refuses those
//! before any handler runs.
//!
//! DESIGN.md §4 names no verdict for a malformed request; these answers use
//! `bad_request` (400, or hyper's 414 and 431).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use http::{StatusCode, Version};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::error::GatewayError;

/// Why a request is not acceptable HTTP/1.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// hyper could not parse the request (400).
    #[error("malformed HTTP request")]
    Malformed,
    /// The request target is longer than hyper accepts (414).
    #[error("request target too long")]
    UriTooLong,
    /// The header section is larger than hyper accepts (431).
    #[error("request header fields too large")]
    HeadersTooLarge,
    /// An HTTP/1.1 request without a `Host` header, or with more than one (RFC 9112
    /// §3.2: 400).
    #[error("an HTTP/1.1 request needs exactly one Host header")]
    Host,
    /// A transfer coding other than one `chunked` (RFC 9112 §6.1: 501). hyper undoes
    /// the chunking and ignores the rest, so a `gzip, chunked` body would be judged as
    /// if its coded bytes were the JSON.
    #[error("transfer coding not implemented: only chunked is")]
    TransferCoding,
}

impl ProtocolError {
    /// The status of the answer.
    pub fn status(self) -> StatusCode {
        match self {
            ProtocolError::Malformed | ProtocolError::Host => StatusCode::BAD_REQUEST,
            ProtocolError::UriTooLong => StatusCode::URI_TOO_LONG,
            ProtocolError::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ProtocolError::TransferCoding => StatusCode::NOT_IMPLEMENTED,
        }
    }

    /// The error behind one of hyper's own answers, by its status line.
    fn of_hyper_status(code: &[u8]) -> Option<Self> {
        match code {
            b"400" => Some(ProtocolError::Malformed),
            b"414" => Some(ProtocolError::UriTooLong),
            b"431" => Some(ProtocolError::HeadersTooLarge),
            _ => None,
        }
    }
}

/// Refuses an HTTP/1.1 request that has no `Host` header or more than one. (HTTP/1.0
/// requests need none.)
pub fn check_host(version: Version, headers: &http::HeaderMap) -> Result<(), ProtocolError> {
    if version == Version::HTTP_11 && headers.get_all(http::header::HOST).iter().count() != 1 {
        return Err(ProtocolError::Host);
    }
    Ok(())
}

/// Refuses a `Transfer-Encoding` other than exactly one `chunked` (any case), over all
/// its header lines. hyper has already refused one whose last coding is not `chunked`.
pub fn check_transfer_coding(headers: &http::HeaderMap) -> Result<(), ProtocolError> {
    let mut codings = 0usize;
    for value in headers.get_all(http::header::TRANSFER_ENCODING) {
        let value = value.to_str().map_err(|_| ProtocolError::TransferCoding)?;
        for coding in value.split(',') {
            if !coding.trim().eq_ignore_ascii_case("chunked") {
                return Err(ProtocolError::TransferCoding);
            }
            codings += 1;
        }
    }
    if codings > 1 {
        return Err(ProtocolError::TransferCoding);
    }
    Ok(())
}

/// The complete HTTP/1.1 answer for `error`, as bytes on the wire. The connection is
/// closed after it (hyper closes it after a parse error anyway).
fn answer_bytes(error: ProtocolError) -> Vec<u8> {
    let answer = GatewayError::Protocol(error).into_answer(None, None);
    let body = answer.body_json();
    let mut out = format!(
        "HTTP/1.1 {} {}\r\ncontent-type: application/json\r\n{}: {}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        answer.status.as_str(),
        answer.status.canonical_reason().unwrap_or(""),
        crate::verdict::VERDICT_HEADER,
        answer.verdict.as_str(),
        body.len(),
    )
    .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

/// Whether `buf` is exactly one of hyper's own error answers: a whole response head with
/// status 400, 414 or 431, no body, and no verdict header. Every answer the gateway
/// itself writes carries the verdict header, so none of ours can match.
fn hyper_error(buf: &[u8]) -> Option<ProtocolError> {
    let rest = buf
        .strip_prefix(b"HTTP/1.1 ")
        .or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let error = ProtocolError::of_hyper_status(rest.get(..3)?)?;
    // The head must end exactly where the buffer ends: no body follows hyper's answer.
    if !buf.ends_with(b"\r\n\r\n") || buf.windows(4).filter(|w| w == b"\r\n\r\n").count() != 1 {
        return None;
    }
    let marked = buf
        .split(|&b| b == b'\n')
        .any(|line| starts_with_ignore_case(line, crate::verdict::VERDICT_HEADER.as_bytes()));
    (!marked).then_some(error)
}

fn starts_with_ignore_case(line: &[u8], prefix: &[u8]) -> bool {
    line.get(..prefix.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(prefix))
}

/// A connection whose writes are watched for hyper's own error answers, which are
/// replaced by ours (see the module doc). Reads pass through untouched.
///
/// It reports itself as not supporting vectored writes, so hyper flattens each answer
/// into one buffer and its error answer arrives whole, in one `poll_write`.
#[derive(Debug)]
pub struct Rescue<T> {
    inner: T,
    /// Our replacement being written, how much of it is written, and how many bytes of
    /// hyper's buffer it stands for.
    replacing: Option<(Vec<u8>, usize, usize)>,
}

impl<T> Rescue<T> {
    /// Wraps a connection.
    pub fn new(inner: T) -> Self {
        Rescue {
            inner,
            replacing: None,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Rescue<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rescue<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        if this.replacing.is_none() {
            match hyper_error(buf) {
                Some(error) => this.replacing = Some((answer_bytes(error), 0, buf.len())),
                None => return Pin::new(&mut this.inner).poll_write(cx, buf),
            }
        }
        // hyper calls again with the same buffer until we report it written.
        while let Some((bytes, written, stands_for)) = &mut this.replacing {
            if *written == bytes.len() {
                let n = (*stands_for).min(buf.len());
                this.replacing = None;
                return Poll::Ready(Ok(n));
            }
            let n = ready!(
                Pin::new(&mut this.inner).poll_write(cx, bytes.get(*written..).unwrap_or_default())
            )?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
        }
        Poll::Ready(Ok(0))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyper_answers_are_recognised() {
        let bare = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(hyper_error(bare), Some(ProtocolError::Malformed));
        let long = b"HTTP/1.1 414 URI Too Long\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(long), Some(ProtocolError::UriTooLong));
        let big = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(big), Some(ProtocolError::HeadersTooLarge));
    }

    #[test]
    fn our_own_answers_are_left_alone() {
        let ours = b"HTTP/1.1 400 Bad Request\r\nX-Hookgate-Verdict: invalid_json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hyper_error(ours), None);
        let head_only = b"HTTP/1.1 400 Bad Request\r\nx-hookgate-verdict: invalid_json\r\n\r\n";
        assert_eq!(hyper_error(head_only), None);
        let with_body = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(hyper_error(with_body), None);
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n";
        assert_eq!(hyper_error(ok), None);
        assert_eq!(hyper_error(b"HTTP/1.1 4"), None);
    }

    #[test]
    fn the_replacement_is_a_whole_answer() {
        let bytes = answer_bytes(ProtocolError::UriTooLong);
        let text = String::from_utf8(bytes).expect("utf8");
        let (head, body) = text.split_once("\r\n\r\n").expect("head");
        assert!(head.starts_with("HTTP/1.1 414 URI Too Long\r\n"), "{head}");
        assert!(head.contains("x-hookgate-verdict: bad_request"), "{head}");
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let v: serde_json::Value = serde_json::from_str(body).expect("json");
        assert_eq!(v["verdict"], "bad_request");
    }

    #[test]
    fn host_must_appear_once_in_http_11() {
        let mut h = http::HeaderMap::new();
        assert_eq!(check_host(Version::HTTP_11, &h), Err(ProtocolError::Host));
        assert_eq!(check_host(Version::HTTP_10, &h), Ok(()));
        h.append(http::header::HOST, http::HeaderValue::from_static("a"));
        assert_eq!(check_host(Version::HTTP_11, &h), Ok(()));
        h.append(http::header::HOST, http::HeaderValue::from_static("b"));
        assert_eq!(check_host(Version::HTTP_11, &h), Err(ProtocolError::Host));
    }
}
