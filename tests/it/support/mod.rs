//! Test support: the real gateway on an ephemeral port, a real upstream on another.

pub mod gateway;
pub mod redis_server;
pub mod sign;
pub mod upstream;

use std::time::Duration;

/// A plain HTTP client for talking to the gateway.
pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The verdict header of a response.
pub fn verdict(r: &reqwest::Response) -> String {
    r.headers()
        .get("x-hookgate-verdict")
        .map(|v| v.to_str().expect("ascii").to_owned())
        .unwrap_or_default()
}

/// Sends raw bytes on a fresh TCP connection and returns everything read back until the
/// server closes or `wait` passes.
pub async fn raw_exchange(addr: std::net::SocketAddr, request: &[u8], wait: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(request).await.expect("write");
    let mut buf = Vec::new();
    let _ = tokio::time::timeout(wait, s.read_to_end(&mut buf)).await;
    String::from_utf8_lossy(&buf).into_owned()
}

/// A store backend for a test: its `[store]` lines, and for the embedded store the
/// directory that holds it for as long as the test runs.
pub struct Backend {
    /// The `[store]` lines.
    pub toml: String,
    _dir: Option<tempfile::TempDir>,
    /// The Redis server of the redis backend (stopped when the test ends).
    _redis: Option<redis_server::RedisServer>,
}

impl Backend {
    /// Process memory.
    pub fn memory() -> Backend {
        Backend {
            toml: "backend = \"memory\"".into(),
            _dir: None,
            _redis: None,
        }
    }

    /// The embedded store, in a fresh temporary directory.
    pub fn embedded() -> Backend {
        let dir = tempfile::tempdir().expect("tmp");
        Backend {
            toml: format!(
                "backend = \"embedded\"\npath = \"{}\"",
                dir.path().display()
            ),
            _dir: Some(dir),
            _redis: None,
        }
    }

    /// A fresh `redis-server` of its own (persistence off).
    pub fn redis() -> Backend {
        let server = redis_server::RedisServer::start();
        Backend {
            toml: format!("backend = \"redis\"\nurl = \"{}\"", server.url()),
            _dir: None,
            _redis: Some(server),
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.toml)
    }
}

/// Generates each store-dependent test once per backend, as `memory::NAME`,
/// `embedded::NAME` and `redis::NAME` (a real `redis-server` per test), so that a failure names its backend (ripgrep's `rgtest!`). The body
/// sees its [`Backend`] as `&Backend` under the given name.
macro_rules! per_backend {
    ($( $(#[$meta:meta])* async fn $name:ident($store:ident) $body:block )*) => {
        mod memory {
            use super::*;
            $( $(#[$meta])* #[tokio::test] async fn $name() {
                let $store = &crate::support::Backend::memory();
                $body
            } )*
        }
        mod embedded {
            use super::*;
            $( $(#[$meta])* #[tokio::test] async fn $name() {
                let $store = &crate::support::Backend::embedded();
                $body
            } )*
        }
        mod redis {
            use super::*;
            $( $(#[$meta])* #[tokio::test] async fn $name() {
                let $store = &crate::support::Backend::redis();
                $body
            } )*
        }
    };
}
pub(crate) use per_backend;
