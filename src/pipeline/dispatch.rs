//! Phase 5, dispatch: an event the store reserved goes to its upstream, and the
//! reservation is settled: committed on a 2xx, released otherwise.
//!
//! A sync route delivers here and the sender gets the upstream's answer ([`sync`]); an
//! async route's event is accepted into the outbox in the same store transaction as its
//! dedup mark ([`accept`]), and the workers deliver it later. Provider handshakes plug in
//! here next, beside these two.

use std::sync::Arc;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue};
use tokio_util::task::TaskTracker;

use super::admit::Admitted;
use super::events::Event;
use super::extract::Extracted;
use super::{Gateway, Route};
use crate::delivery::{
    Delivered, DeliveryError, Outbound, Peer, Target, append_via, forward_headers,
};
use crate::error::{Answer, GatewayError};
use crate::store::Reservation;
use crate::telemetry::DeliveryOutcome;
use crate::verdict::{VERDICT_HEADER, Verdict};

/// What a sync delivery settles once the upstream answered.
#[derive(Debug)]
pub enum Settle {
    /// The route keys no event: nothing.
    Nothing,
    /// Commit on a 2xx, release otherwise.
    Reservation(Reservation),
    /// The store could not decide (`on_unavailable = "deliver"`): a 2xx is counted in
    /// `hookgate_unrecorded_deliveries_total`, since neither its id nor its time could
    /// be recorded.
    Unrecorded,
}

/// Delivers `event` now and answers with the upstream's answer (a file sink's: 200).
///
/// Once the upstream has the event the delivery must run to its end whatever the sender
/// does: a sender that hangs up (Flashduty gives up after 2 s) drops this future, and
/// releasing the reservation then would let its retry be forwarded a second time and a
/// newer event of the entity overtake this one. So delivery and bookkeeping run in a task
/// of their own on `deliveries` (drained on shutdown); this request only awaits it.
pub async fn sync(
    gw: &Arc<Gateway>,
    deliveries: &TaskTracker,
    admitted: &Admitted<'_>,
    event: Event,
    event_id: Option<String>,
    settle: Settle,
) -> Result<Response, GatewayError> {
    let parts = admitted.parts;
    let route = &admitted.route;
    let headers = outbound_headers(gw, admitted, event_id.as_deref());
    let delivery = {
        let (gw, route) = (Arc::clone(gw), Arc::clone(route));
        let method = parts.method.clone();
        let query = parts.uri.query().map(str::to_owned);
        let event_id = event_id.clone();
        let client = admitted.client.to_string();
        deliveries.spawn(async move {
            let outbound = Outbound {
                route: &route.name,
                method,
                headers,
                body: event.bytes,
                query: query.as_deref(),
                event_id: event_id.as_deref(),
                client: &client,
                timeout: route.upstream_timeout,
            };
            deliver_and_settle(&gw, &route, outbound, settle).await
        })
    };
    let delivered = delivery
        .await
        .map_err(|_| GatewayError::Internal("delivery task failed"))??;
    if matches!(route.upstream, Target::File(_)) {
        // The gateway answers for a file sink, so a custom answer applies.
        return Ok(super::respond::answer(
            route.respond.as_ref(),
            Answer::new(Verdict::Forwarded, Some(Arc::clone(&route.name)), event_id),
        ));
    }
    let mut response = Response::new(Body::from(delivered.body));
    *response.status_mut() = delivered.status;
    *response.headers_mut() = delivered.headers;
    response.headers_mut().insert(
        VERDICT_HEADER,
        HeaderValue::from_static(Verdict::Forwarded.as_str()),
    );
    if let Some(dropped) = delivered.body_dropped {
        response.headers_mut().insert(
            crate::delivery::BODY_DROPPED_HEADER,
            HeaderValue::from_static(dropped.as_str()),
        );
    }
    Ok(response)
}

/// Async delivery: the event is written to the outbox with its reservation's marks in
/// one store transaction and answered 202 `accepted`; the route's worker delivers it.
/// Returns the answer and the event id the record is stored under.
pub async fn accept(
    gw: &Gateway,
    admitted: &Admitted<'_>,
    event: &Event,
    keys: &Extracted,
    reservation: Option<Reservation>,
) -> Result<(Response, String), GatewayError> {
    let headers = outbound_headers(gw, admitted, keys.event_id.as_deref());
    crate::delivery::outbox::dispatch_async(
        &gw.store,
        &admitted.route,
        admitted.parts,
        headers,
        &event.bytes,
        keys,
        &admitted.client.to_string(),
        reservation,
    )
    .await
}

/// The headers the upstream receives, sync or async: the sender's, minus consumed
/// credentials, plus forwarding and `Via`.
fn outbound_headers(gw: &Gateway, admitted: &Admitted<'_>, event_id: Option<&str>) -> HeaderMap {
    let server = &gw.settings.server;
    let parts = admitted.parts;
    let route = &admitted.route;
    let peer_ip = admitted.peer.ip().to_canonical();
    let peer_trusted = server.trusted_proxies.iter().any(|n| n.contains(&peer_ip));
    // The connection's facts (TLS), inserted by the server; a request driven through
    // the router without one is plain HTTP.
    let conn = parts.extensions.get::<crate::server::ConnectionInfo>();
    let mut headers = forward_headers(
        &parts.headers,
        &route.consumed_headers,
        Peer {
            ip: peer_ip,
            trusted: peer_trusted,
            client_ip_header: server.client_ip_header,
            scheme: conn.map_or("http", crate::server::ConnectionInfo::scheme),
        },
        &route.name,
        event_id,
    );
    append_via(&mut headers, &parts.headers, parts.version);
    headers
}

/// Delivers `outbound` and settles the reservation: committed on a 2xx, released
/// otherwise, so the sender's retry goes through.
async fn deliver_and_settle(
    gw: &Gateway,
    route: &Route,
    outbound: Outbound<'_>,
    settle: Settle,
) -> Result<Delivered, DeliveryError> {
    let delivered = gw.deliverer.deliver(&route.upstream, outbound).await;
    gw.metrics.delivery(
        &route.name,
        match &delivered {
            Ok(d) if d.status.is_success() => DeliveryOutcome::success,
            Ok(_) => DeliveryOutcome::rejected,
            Err(e) => e.outcome(),
        },
    );
    let reservation = match settle {
        Settle::Nothing => return delivered,
        Settle::Unrecorded => {
            if matches!(&delivered, Ok(d) if d.status.is_success()) {
                gw.metrics.unrecorded_delivery(&route.name);
            }
            return delivered;
        }
        Settle::Reservation(r) => r,
    };
    match &delivered {
        Ok(d) if d.status.is_success() => {
            if let Err(e) = gw.store.commit(reservation).await {
                // Delivered but not marked seen: a retry may be delivered again
                // (at least once, never lost). The sender still gets the answer.
                tracing::error!(route = %route.name, error = %e, "Delivered event could not be marked seen.");
                gw.metrics.unrecorded_delivery(&route.name);
            }
        }
        _ => {
            if let Err(e) = gw.store.release(reservation).await {
                tracing::warn!(route = %route.name, error = %e, "Releasing a reservation failed.");
            }
        }
    }
    delivered
}
