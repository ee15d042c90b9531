//! Phase 1, admit: every check that needs only the request head. The body is not touched
//! here, so a sender refused at this phase never costs a body read (DESIGN.md §1).
//!
//! The order is the security model: route and method, the loop check, client address and
//! allowlist, rate limit, header credentials, and last the `Content-Encoding` (a body the
//! upstream would decode could not be judged by signature, JSON or schema).

use std::net::SocketAddr;
use std::sync::Arc;

use http::request::Parts;

use super::allowlist::{self, Client};
use super::{Gateway, Route, Trace, body};
use crate::delivery::is_looping;
use crate::error::GatewayError;

/// A request whose head passed every check: its body may now be read.
#[derive(Debug)]
pub struct Admitted<'r> {
    /// The route it matched.
    pub route: Arc<Route>,
    /// The TCP peer.
    pub peer: SocketAddr,
    /// Who it is attributed to.
    pub client: Client,
    /// The request head.
    pub parts: &'r Parts,
}

/// Runs the head checks in order; `trace` learns the route and client as soon as known.
pub fn admit<'r>(
    gw: &Gateway,
    peer: SocketAddr,
    parts: &'r Parts,
    trace: &mut Trace,
) -> Result<Admitted<'r>, GatewayError> {
    let server = &gw.settings.server;
    let route = gw
        .route_for(parts.uri.path())
        .ok_or(GatewayError::NoRoute)?;
    trace.route = Some(Arc::clone(&route.name));
    // A request carrying our own Via token has been here before: a route whose upstream
    // leads back to this gateway. Refused before anything else, so a loop costs one
    // round trip instead of recursing until file descriptors run out.
    if is_looping(&parts.headers) {
        return Err(GatewayError::LoopDetected);
    }
    if !route.methods.contains(&parts.method) {
        return Err(GatewayError::MethodNotAllowed {
            method: parts.method.clone(),
            allow: route.methods.clone(),
        });
    }
    let client = allowlist::client_addr(
        peer,
        &parts.headers,
        &server.trusted_proxies,
        server.client_ip_header,
    );
    trace.client = Some(client);
    // An unknown client passes no allowlist (a route without one still serves it).
    if let Some(list) = &route.allow_ips
        && !client.addr().is_some_and(|a| list.permits(a))
    {
        return Err(GatewayError::ForbiddenIp(client));
    }
    if let Some(limit) = &route.rate_limit {
        limit.check(client)?;
    }
    // The connection's facts (TLS, client certificate), inserted by the server; a
    // request driven through the router without one is plain HTTP without a certificate.
    let conn = parts.extensions.get::<crate::server::ConnectionInfo>();
    // TLS client certificate, then header credentials: no body read.
    if let Some(subjects) = &route.client_subjects
        && !conn.is_some_and(|c| c.client_matches(subjects))
    {
        return Err(super::auth::AuthError::ClientCertificate.into());
    }
    route.auth.check(&parts.headers)?;
    body::check_identity_encoding(&parts.headers).map_err(GatewayError::UnsupportedEncoding)?;
    Ok(Admitted {
        route: Arc::clone(route),
        peer,
        client,
        parts,
    })
}
