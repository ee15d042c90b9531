//! The HTTP client that carries events to `http(s)://` upstreams, and each upstream's
//! address as the client needs it.
//!
//! hyper-util's pooled client is used directly, without reqwest on top: the gateway
//! needs none of reqwest's conveniences on this path (redirects are passed back, bodies
//! are bytes, nothing is decompressed), and its request building (a `Url` cloned,
//! re-serialised and re-parsed per request, a redirect layer, default headers) was a
//! large part of the forwarding cost (README "Performance"). What reqwest did that a
//! proxy needs is done here once per route: the URI without its credentials, the
//! `Authorization: Basic` header those credentials stand for.
//!
//! One client per set of trusted roots: keep-alive pool (idle connections closed after
//! 90 s), HTTP/1.1 to the upstream, TCP_NODELAY, TLS through rustls with ring and the
//! platform's verifier (the system's roots, plus a route's `upstream_ca`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::uri::{Authority, PathAndQuery, Scheme};
use http::{HeaderValue, Uri};
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use percent_encoding::{AsciiSet, CONTROLS};
use rustls::pki_types::CertificateDer;

use super::DeliveryError;

/// The pooled client every `http(s)://` delivery goes through.
pub(super) type HttpClient =
    hyper_util::client::legacy::Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>>;

/// How long an idle pooled connection is kept (reqwest's default, kept).
const POOL_IDLE: Duration = Duration::from_secs(90);

/// TCP keepalive probes on upstream connections (reqwest's default, kept): a pooled
/// connection whose peer vanished is noticed without waiting for a request to fail.
const TCP_KEEPALIVE: Duration = Duration::from_secs(15);

/// Builds a client that trusts the platform's roots plus `extra_cas`.
pub(super) fn build(extra_cas: Vec<CertificateDer<'static>>) -> Result<HttpClient, DeliveryError> {
    let setup = |what: &str, e: &dyn std::fmt::Display| {
        DeliveryError::Setup(format!("cannot build HTTP client: {what}: {e}"))
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    // The same verifier reqwest used: the platform's roots (on Linux the system bundle,
    // `SSL_CERT_FILE` honoured), augmented by the route's CAs.
    let verifier = if extra_cas.is_empty() {
        rustls_platform_verifier::Verifier::new(Arc::clone(&provider))
    } else {
        rustls_platform_verifier::Verifier::new_with_extra_roots(extra_cas, Arc::clone(&provider))
    }
    .map_err(|e| setup("certificate verifier", &e))?;
    let tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| setup("TLS versions", &e))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    let mut tcp = HttpConnector::new();
    // The TLS layer decides the scheme; the TCP connector must accept `https` URIs.
    tcp.enforce_http(false);
    tcp.set_nodelay(true);
    tcp.set_keepalive(Some(TCP_KEEPALIVE));
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(tcp);
    Ok(
        hyper_util::client::legacy::Client::builder(TokioExecutor::new())
            .pool_idle_timeout(POOL_IDLE)
            .pool_timer(TokioTimer::new())
            .build(connector),
    )
}

/// Characters of a query that are sent percent-encoded: those the WHATWG URL standard
/// encodes in the query of an `http(s)` URL (what reqwest's `Url` did to the sender's
/// query, kept so the upstream sees the same bytes as before).
const QUERY_ENCODED: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'<')
    .add(b'>')
    .add(b'\'');

/// An `http(s)://` upstream, parsed once when the configuration is compiled.
#[derive(Clone)]
pub struct HttpUpstream {
    /// The URL as configured (credentials included): for display and config checks.
    url: url::Url,
    /// The request URI when the sender sent no query: credentials removed.
    uri: Uri,
    /// Its parts, to build a URI with a merged query.
    scheme: Scheme,
    authority: Authority,
    /// The path, percent-encoded as `Url` normalised it.
    path: String,
    /// `Authorization: Basic` for credentials in the URL.
    authorization: Option<HeaderValue>,
}

impl HttpUpstream {
    /// Takes an `http://` or `https://` URL with a host apart.
    pub fn new(url: url::Url) -> Result<Self, String> {
        let host = url.host_str().ok_or("no host")?;
        let authority = match url.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authority = Authority::try_from(authority).map_err(|e| format!("host: {e}"))?;
        let scheme = Scheme::try_from(url.scheme()).map_err(|e| format!("scheme: {e}"))?;
        let path = url.path().to_owned();
        let path_and_query = match url.query() {
            Some(q) => format!("{path}?{q}"),
            None => path.clone(),
        };
        let uri = Uri::builder()
            .scheme(scheme.clone())
            .authority(authority.clone())
            .path_and_query(path_and_query)
            .build()
            .map_err(|e| format!("path: {e}"))?;
        Ok(HttpUpstream {
            authorization: basic_authorization(&url),
            url,
            uri,
            scheme,
            authority,
            path,
        })
    }

    /// The URL as configured.
    pub fn url(&self) -> &url::Url {
        &self.url
    }

    /// `Authorization: Basic` for credentials in the URL, if it has any.
    pub fn authorization(&self) -> Option<&HeaderValue> {
        self.authorization.as_ref()
    }

    /// The URI to request: the configured one, or with `query` (the configured query
    /// merged with the sender's) in place of its own.
    pub fn uri(&self, query: Option<&str>) -> Result<Uri, DeliveryError> {
        let Some(query) = query else {
            return Ok(self.uri.clone());
        };
        let query: std::borrow::Cow<'_, str> =
            percent_encoding::utf8_percent_encode(query, QUERY_ENCODED).into();
        let path_and_query = PathAndQuery::try_from(format!("{}?{query}", self.path))
            .map_err(|e| DeliveryError::Setup(format!("cannot build the upstream URI: {e}")))?;
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(path_and_query);
        Uri::from_parts(parts)
            .map_err(|e| DeliveryError::Setup(format!("cannot build the upstream URI: {e}")))
    }
}

impl PartialEq for HttpUpstream {
    fn eq(&self, other: &Self) -> bool {
        // Everything else is derived from the URL.
        self.url == other.url
    }
}

impl Eq for HttpUpstream {}

/// `Basic base64(user:password)` from the URL's userinfo, percent-decoded (as reqwest
/// sent it); `None` without credentials.
fn basic_authorization(url: &url::Url) -> Option<HeaderValue> {
    use base64::Engine as _;
    if url.username().is_empty() && url.password().is_none() {
        return None;
    }
    let mut pair: Vec<u8> = percent_encoding::percent_decode_str(url.username()).collect();
    pair.push(b':');
    pair.extend(percent_encoding::percent_decode_str(
        url.password().unwrap_or(""),
    ));
    let encoded = base64::engine::general_purpose::STANDARD.encode(pair);
    let mut value = HeaderValue::from_str(&format!("Basic {encoded}")).ok()?;
    // Kept out of HPACK tables and debug output.
    value.set_sensitive(true);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(text: &str) -> HttpUpstream {
        HttpUpstream::new(url::Url::parse(text).expect("url")).expect("upstream")
    }

    #[test]
    fn uri_drops_credentials_and_default_port() {
        let up = upstream("https://svc:p%40ss@example.com:443/in/../hook?a=1");
        assert_eq!(up.uri(None).expect("uri"), "https://example.com/hook?a=1");
        let basic = up.authorization().expect("basic").to_str().expect("ascii");
        // base64("svc:p@ss")
        assert_eq!(basic, "Basic c3ZjOnBAc3M=");
        let up = upstream("http://[::1]:8080/x");
        assert_eq!(up.uri(None).expect("uri"), "http://[::1]:8080/x");
        assert!(up.authorization().is_none());
    }

    #[test]
    fn uri_with_query_encodes_like_url() {
        let up = upstream("http://h/p");
        let uri = up.uri(Some("a=\"x\"&b='y'&c=%41")).expect("uri");
        let mut url = url::Url::parse("http://h/p").expect("url");
        url.set_query(Some("a=\"x\"&b='y'&c=%41"));
        assert_eq!(uri.to_string(), url.to_string());
    }
}
