//! What the server knows about a request's connection, handed to the pipeline as a
//! request extension: the TCP peer and, on TLS, the verified client identity.
//!
//! One extension read at one point keeps the pipeline free of socket types, and lets the
//! allowlist, `client_subjects` and `X-Forwarded-Proto` agree on the same facts.

use std::net::SocketAddr;

/// The connection a request arrived on.
#[derive(Debug, Clone)]
pub struct ConnectionInfo {
    /// The TCP peer.
    pub peer: SocketAddr,
    /// The client a trusted proxy named in a PROXY header; it stands for the client
    /// everywhere else (allowlist, rate limit, logs, forwarding headers).
    pub proxy_source: Option<SocketAddr>,
    /// Present when the connection is TLS.
    pub tls: Option<TlsInfo>,
}

/// The TLS side of a connection.
#[derive(Debug, Clone, Default)]
pub struct TlsInfo {
    /// The names a verified client certificate proves (SAN DNS and URI, subject CN);
    /// `None` when the client presented none.
    pub client_names: Option<Vec<String>>,
}

impl ConnectionInfo {
    /// `https` on TLS, else `http`: the scheme the sender used to reach the gateway.
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// Whether a verified client certificate names one of `subjects` (exact,
    /// ASCII case-insensitive).
    pub fn client_matches(&self, subjects: &[String]) -> bool {
        let Some(names) = self.tls.as_ref().and_then(|t| t.client_names.as_ref()) else {
            return false;
        };
        names
            .iter()
            .any(|n| subjects.iter().any(|s| s.eq_ignore_ascii_case(n)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(names: Option<Vec<&str>>) -> ConnectionInfo {
        ConnectionInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            proxy_source: None,
            tls: Some(TlsInfo {
                client_names: names.map(|n| n.into_iter().map(str::to_owned).collect()),
            }),
        }
    }

    #[test]
    fn subjects_match_any_name_case_insensitively() {
        let want = vec!["Sender.Example".to_owned()];
        assert!(info(Some(vec!["other", "sender.example"])).client_matches(&want));
        assert!(!info(Some(vec!["sender.example.evil"])).client_matches(&want));
        assert!(!info(None).client_matches(&want));
        let plain = ConnectionInfo {
            peer: SocketAddr::from(([127, 0, 0, 1], 1)),
            proxy_source: None,
            tls: None,
        };
        assert!(!plain.client_matches(&want));
        assert_eq!(plain.scheme(), "http");
        assert_eq!(info(None).scheme(), "https");
    }
}
