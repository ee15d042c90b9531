//! The PROXY protocol (v1 text, v2 binary) in front of a connection, parsed by `ppp`.
//!
//! With `[server] proxy_protocol = true` a peer in `trusted_proxies` must open with a
//! PROXY header, whose source address then stands for the client. A peer outside
//! `trusted_proxies` that opens with one is refused: anyone could otherwise name any
//! address. A missing, truncated or malformed header from a trusted peer closes the
//! connection too. Everything is read under the header read timeout.
//!
//! The header is read exactly (v1 up to its CRLF, v2 to its declared length) so that not
//! one byte of the HTTP or TLS stream behind it is consumed.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::AsyncReadExt as _;
use tokio::net::TcpStream;

/// v1 headers are at most 107 bytes (the spec's bound).
const V1_MAX: usize = 107;
/// The 12-byte v2 signature.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
/// Largest v2 address + TLV block accepted; real proxies send a few hundred bytes.
const V2_MAX_BODY: usize = 4096;

/// Why a connection was closed before HTTP.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A trusted peer did not start with a PROXY header.
    #[error("no PROXY header from a trusted proxy")]
    Missing,
    /// An untrusted peer sent a PROXY header.
    #[error("PROXY header from a peer outside trusted_proxies")]
    Untrusted,
    /// The header could not be parsed or is too long.
    #[error("malformed PROXY header: {0}")]
    Malformed(String),
    /// The header did not arrive in time, or the connection broke.
    #[error("PROXY header not received: {0}")]
    Io(#[from] std::io::Error),
    /// The header did not arrive within the header read timeout.
    #[error("PROXY header timed out")]
    Timeout,
}

/// Reads the PROXY header a trusted peer must send and returns the client address it
/// names; `None` for `LOCAL` / `UNKNOWN` (health checks of the proxy itself), where the
/// peer stands for itself.
pub async fn read_trusted(
    stream: &mut TcpStream,
    timeout: Duration,
) -> Result<Option<SocketAddr>, ProxyError> {
    tokio::time::timeout(timeout, read_header(stream))
        .await
        .map_err(|_| ProxyError::Timeout)?
}

async fn read_header(stream: &mut TcpStream) -> Result<Option<SocketAddr>, ProxyError> {
    let mut buf = vec![0u8; 8];
    stream.read_exact(&mut buf).await?;
    if buf.starts_with(b"PROXY ") {
        // Byte by byte: at most 107 reads, once per connection, and none past the CRLF.
        while !buf.ends_with(b"\r\n") {
            if buf.len() >= V1_MAX {
                return Err(ProxyError::Malformed("v1 header without CRLF".into()));
            }
            buf.push(stream.read_u8().await?);
        }
        return match ppp::v1::Header::try_from(buf.as_slice()) {
            Ok(h) => Ok(match h.addresses {
                ppp::v1::Addresses::Tcp4(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Tcp6(a) => {
                    Some(SocketAddr::from((a.source_address, a.source_port)))
                }
                ppp::v1::Addresses::Unknown => None,
            }),
            Err(e) => Err(ProxyError::Malformed(e.to_string())),
        };
    }
    if !V2_SIGNATURE.starts_with(&buf) {
        return Err(ProxyError::Missing);
    }
    // The rest of the fixed part: 4 more signature bytes, version/command, family, length.
    let mut fixed = [0u8; 8];
    stream.read_exact(&mut fixed).await?;
    let len = usize::from(u16::from_be_bytes([fixed[6], fixed[7]]));
    if len > V2_MAX_BODY {
        return Err(ProxyError::Malformed(format!("v2 body of {len} bytes")));
    }
    buf.extend_from_slice(&fixed);
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    buf.extend_from_slice(&body);
    match ppp::v2::Header::try_from(buf.as_slice()) {
        Ok(h) if h.command == ppp::v2::Command::Local => Ok(None),
        Ok(h) => Ok(match h.addresses {
            ppp::v2::Addresses::IPv4(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v2::Addresses::IPv6(a) => {
                Some(SocketAddr::from((a.source_address, a.source_port)))
            }
            ppp::v2::Addresses::Unspecified | ppp::v2::Addresses::Unix(_) => None,
        }),
        Err(e) => Err(ProxyError::Malformed(e.to_string())),
    }
}

/// Whether an untrusted peer opens with what looks like a PROXY header, looking without
/// consuming. Waits (briefly, under `timeout`) only while the first bytes could still be
/// one: an HTTP method or a TLS record tells at once.
pub async fn untrusted_sends_header(stream: &TcpStream, timeout: Duration) -> bool {
    let look = async {
        let mut buf = [0u8; 8];
        loop {
            let n = match stream.peek(&mut buf).await {
                Ok(0) | Err(_) => return false,
                Ok(n) => n,
            };
            let seen = buf.get(..n).unwrap_or_default();
            let v1 = b"PROXY ".starts_with(seen.get(..n.min(6)).unwrap_or_default());
            let v2 = V2_SIGNATURE.starts_with(seen);
            if !v1 && !v2 {
                return false;
            }
            if n >= 6 {
                return true;
            }
            // A prefix that could still be either: wait for more bytes.
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(timeout, look).await.unwrap_or(false)
}
