//! The outbox record and its two handles: [`OutboxWriter`] for the pipeline (accept)
//! and [`OutboxReader`] for the workers (scan, settle). See `delivery/mod.rs` for the
//! design (record format, states, recovery).

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use serde::{Deserialize, Serialize};

use crate::store::outbox::{OutboxOp, Stored, Table};
use crate::store::{Reservation, Store, StoreError, StoreErrorKind};

/// The record format version written today. A reader refuses any other (a newer
/// gateway's record is left in place, not misread).
pub const RECORD_VERSION: u32 = 1;

/// Largest last-error text kept in a record.
const MAX_ERROR_CHARS: usize = 300;

/// One accepted event as stored in the outbox (JSON; body and header values base64).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Format version ([`RECORD_VERSION`]).
    pub v: u32,
    /// The event id: the dedup key's value, or a generated one.
    pub event_id: String,
    /// The entity (order key), if any.
    pub entity: Option<String>,
    /// The event time, unix nanoseconds, if ordered.
    pub event_time: Option<i64>,
    /// The sender's method.
    pub method: String,
    /// The sender's query string.
    pub query: Option<String>,
    /// The headers to forward (name, base64 value), already filtered.
    pub headers: Vec<(String, String)>,
    /// The raw body, base64.
    pub body: String,
    /// The client address, for file sinks.
    pub client: String,
    /// When it was accepted, unix milliseconds.
    pub received_ms: u64,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's upstream status, if it answered.
    pub last_status: Option<u16>,
    /// The last attempt's error, if it did not.
    pub last_error: Option<String>,
}

/// Why a stored record cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Not JSON of the expected shape.
    #[error("malformed outbox record: {0}")]
    Malformed(#[from] serde_json::Error),
    /// A version this gateway does not know.
    #[error("outbox record version {0} is not supported")]
    Version(u32),
    /// Bad base64 or header bytes.
    #[error("malformed outbox record field {0}")]
    Field(&'static str),
}

impl Record {
    /// Encodes it for the store.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising plain strings and numbers cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// Decodes a stored record.
    pub fn decode(bytes: &[u8]) -> Result<Record, RecordError> {
        let r: Record = serde_json::from_slice(bytes)?;
        if r.v != RECORD_VERSION {
            return Err(RecordError::Version(r.v));
        }
        Ok(r)
    }

    /// The body bytes.
    pub fn body_bytes(&self) -> Result<Bytes, RecordError> {
        B64.decode(&self.body)
            .map(Bytes::from)
            .map_err(|_| RecordError::Field("body"))
    }

    /// The headers to send.
    pub fn header_map(&self) -> Result<HeaderMap, RecordError> {
        let mut map = HeaderMap::with_capacity(self.headers.len());
        for (name, value) in &self.headers {
            let name =
                HeaderName::try_from(name.as_str()).map_err(|_| RecordError::Field("headers"))?;
            let bytes = B64
                .decode(value)
                .map_err(|_| RecordError::Field("headers"))?;
            let value =
                HeaderValue::from_bytes(&bytes).map_err(|_| RecordError::Field("headers"))?;
            map.append(name, value);
        }
        Ok(map)
    }

    /// The method.
    pub fn method(&self) -> Result<Method, RecordError> {
        Method::from_bytes(self.method.as_bytes()).map_err(|_| RecordError::Field("method"))
    }

    /// How long ago it was accepted.
    pub fn age(&self, now: SystemTime) -> Duration {
        let received = SystemTime::UNIX_EPOCH + Duration::from_millis(self.received_ms);
        now.duration_since(received).unwrap_or_default()
    }

    /// Notes a failed attempt's status or error.
    pub fn note_failure(&mut self, status: Option<u16>, error: Option<&str>) {
        self.last_status = status;
        self.last_error = error.map(|e| e.chars().take(MAX_ERROR_CHARS).collect());
    }
}

/// Unix milliseconds now.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A fresh event id for a route without a dedup key: `hg-` and 128 random-ish bits
/// (std's per-process random hash keys, mixed with the time and a counter), unique
/// enough for an upstream to dedup redeliveries on.
pub fn generate_event_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u64(n);
    a.write_u64(now_ms());
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(a.finish());
    b.write_u64(n);
    format!("hg-{:016x}{:016x}", a.finish(), b.finish())
}

/// A uniform draw from `0.0..=1.0` for backoff jitter (not cryptographic).
pub fn jitter() -> f64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(now_ms());
    (h.finish() >> 11) as f64 / (1u64 << 53) as f64
}

/// The pipeline's handle: accepts events durably.
#[derive(Debug, Clone)]
pub struct OutboxWriter {
    store: Store,
}

/// The workers' and operators' handle: reads and settles records.
#[derive(Debug, Clone)]
pub struct OutboxReader {
    store: Store,
}

/// The two handles over one store.
pub fn pair(store: &Store) -> (OutboxWriter, OutboxReader) {
    (
        OutboxWriter {
            store: store.clone(),
        },
        OutboxReader {
            store: store.clone(),
        },
    )
}

/// Why an event was not accepted.
#[derive(Debug, thiserror::Error)]
pub enum AcceptError {
    /// `max_pending` reached.
    #[error("outbox full")]
    Full,
    /// The store could not write.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl OutboxWriter {
    /// Accepts `record` on `route`: its reservation's dedup mark / watermark and the
    /// record in one durable transaction. Refused when `max_pending` events wait: a
    /// quick check here turns most refusals away before the store's queue, and the
    /// store checks again in the accept's own transaction, so concurrent accepts never
    /// take the outbox past `max_pending` (exact, not a bound).
    pub async fn accept(
        &self,
        route: &str,
        max_pending: u64,
        reservation: Option<Reservation>,
        record: &Record,
    ) -> Result<u64, AcceptError> {
        if self.store.outbox_pending(route) >= max_pending {
            return Err(AcceptError::Full);
        }
        match self
            .store
            .accept_within(reservation, route, record.encode(), max_pending)
            .await
        {
            Ok(seq) => Ok(seq),
            Err(e) if e.kind() == StoreErrorKind::OutboxFull => Err(AcceptError::Full),
            Err(e) => Err(AcceptError::Store(e)),
        }
    }
}

impl OutboxReader {
    /// The next pending records of `route` for this worker (above `after`), oldest
    /// first, at most `max` ([`Store::outbox_next`]).
    pub async fn scan(
        &self,
        route: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        self.store.outbox_next(route, after, max).await
    }

    /// Claims what other replicas left pending on `route` ([`Store::outbox_takeover`]).
    pub async fn takeover(
        &self,
        route: &str,
    ) -> Result<crate::store::outbox::Takeover, StoreError> {
        self.store.outbox_takeover(route).await
    }

    /// Dead letters (of `route`, or all) above `after`, at most `max`.
    pub async fn dead_letters(
        &self,
        route: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        self.store.outbox_scan(Table::Dead, route, after, max).await
    }

    /// One pending record.
    pub async fn get(&self, route: &str, seq: u64) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.outbox_get(Table::Outbox, route, seq).await
    }

    /// Re-reads the counts other replicas change (Redis; no-op otherwise).
    pub async fn refresh(&self, route: &str) -> Result<(), StoreError> {
        self.store.outbox_refresh(route).await
    }

    /// Takes, renews or (`give_up`) hands back the right to deliver `route`.
    pub async fn worker_lease(
        &self,
        route: &str,
        give_up: bool,
    ) -> Result<crate::store::outbox::WorkerLease, StoreError> {
        self.store.worker_lease(route, give_up).await
    }

    /// Whether the store is shared by replicas (so a worker must hold the route's lease).
    pub fn shared(&self) -> bool {
        matches!(self.store, Store::Redis(_))
    }

    /// Applies a settlement (delivered, retry noted, dead-lettered, replayed, dropped).
    pub async fn apply(&self, op: OutboxOp) -> Result<Option<u64>, StoreError> {
        self.store.outbox_apply(op).await
    }

    /// Pending events of `route`.
    pub fn pending(&self, route: &str) -> u64 {
        self.store.outbox_pending(route)
    }

    /// Dead letters of `route`.
    pub fn dead(&self, route: &str) -> u64 {
        self.store.dead_letter_count(route)
    }

    /// Moves the dead letter `seq` of `route` back to the outbox with its attempts reset.
    pub async fn replay(&self, route: &str, seq: u64) -> Result<Option<u64>, StoreError> {
        let Some(bytes) = self.store.outbox_get(Table::Dead, route, seq).await? else {
            return Ok(None);
        };
        // An unreadable record is replayed as it is: the worker dead-letters it again.
        let record = match Record::decode(&bytes) {
            Ok(mut r) => {
                r.attempts = 0;
                r.received_ms = now_ms();
                r.encode()
            }
            Err(_) => bytes,
        };
        self.apply(OutboxOp::Replay {
            route: route.to_owned(),
            seq,
            record,
        })
        .await
    }
}

/// Builds the record of an event being accepted. `headers` are the forward headers.
#[allow(clippy::too_many_arguments)]
pub fn record_for(
    event_id: &str,
    order: Option<&(String, i64)>,
    method: &Method,
    query: Option<&str>,
    headers: &HeaderMap,
    body: &[u8],
    client: &str,
) -> Record {
    Record {
        v: RECORD_VERSION,
        event_id: event_id.to_owned(),
        entity: order.map(|(e, _)| e.clone()),
        event_time: order.map(|(_, t)| *t),
        method: method.as_str().to_owned(),
        query: query.map(str::to_owned),
        headers: headers
            .iter()
            .map(|(n, v)| (n.as_str().to_owned(), B64.encode(v.as_bytes())))
            .collect(),
        body: B64.encode(body),
        client: client.to_owned(),
        received_ms: now_ms(),
        attempts: 0,
        last_status: None,
        last_error: None,
    }
}

/// Shared so the pipeline can keep one per gateway.
pub type SharedWriter = Arc<OutboxWriter>;

/// The async branch of the pipeline (DESIGN.md §6): after every check up to the keys
/// and the store's reservation, the event is accepted durably and answered 202
/// `accepted`. Returns the answer and the event id (generated when the route has no
/// dedup key, and then also forwarded as `X-Hookgate-Event-Id`).
#[allow(clippy::too_many_arguments)]
pub async fn dispatch_async(
    store: &Store,
    route: &crate::config::Route,
    parts: &http::request::Parts,
    mut headers: HeaderMap,
    body: &[u8],
    keys: &crate::pipeline::extract::Extracted,
    client: &str,
    reservation: Option<Reservation>,
) -> Result<(axum::response::Response, String), crate::error::GatewayError> {
    use crate::error::{Answer, GatewayError};
    use axum::response::IntoResponse as _;
    let event_id = match &keys.event_id {
        Some(id) => id.clone(),
        None => {
            let id = generate_event_id();
            if let Ok(v) = HeaderValue::from_str(&id) {
                headers.insert(HeaderName::from_static("x-hookgate-event-id"), v);
            }
            id
        }
    };
    let record = record_for(
        &event_id,
        keys.order.as_ref(),
        &parts.method,
        parts.uri.query(),
        &headers,
        body,
        client,
    );
    let (writer, _) = pair(store);
    match writer
        .accept(&route.name, route.max_pending, reservation, &record)
        .await
    {
        Ok(_) => Ok((
            Answer::new(
                crate::verdict::Verdict::Accepted,
                Some(Arc::clone(&route.name)),
                Some(event_id.clone()),
            )
            .into_response(),
            event_id,
        )),
        Err(AcceptError::Full) => Err(GatewayError::AsyncUnavailable(
            "the route's outbox is full, retry later",
        )),
        Err(AcceptError::Store(e)) => {
            tracing::error!(route = %route.name, error = %e, "Outbox accept failed.");
            Err(GatewayError::AsyncUnavailable(
                "store unavailable, retry later",
            ))
        }
    }
}
