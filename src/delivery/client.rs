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
use http_body_util::Full;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
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
