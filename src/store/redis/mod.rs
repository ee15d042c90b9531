//! Redis backend: the store shared by several gateway replicas (DESIGN.md §7).
//!
//! Dedup keys, watermarks, in-flight leases and the async outbox all live in Redis
//! (or Valkey), so replicas behind one load balancer decide together: two replicas
//! never forward the same id at once, and a dead replica's accepted events are
//! delivered by another.
//!
//! # Keys
//!
//! `P` is `store.key_prefix` (default `hookgate`), `R` the route name. Every key of a
//! route carries the hash tag `{R}`, so each script (which touches the keys of one
//! route only) runs on Redis Cluster too. Times are fixed-width decimal strings
//! (20 digits) compared as strings inside the scripts: Lua numbers are doubles and
//! cannot hold nanoseconds.
//!
//! | key | type | value | expiry |
//! |---|---|---|---|
//! | `P:{R}:seen:<id>` | string | dedup expiry, unix nanos by the gateway's clock | `PX dedup_ttl` |
//! | `P:{R}:wm:<entity>` | string | 20 digits: valid until (gateway clock, nanos), then 20 digits: newest committed event time, nanos + 2^63 | `order_ttl` (`PX`), reset by every commit of the entity; the expiry is also checked on read |
//! | `P:{R}:lease:id:<id>` | string | the holding reservation's token | `PX lease` |
//! | `P:{R}:lease:ent:<entity>` | string | the holding reservation's token | `PX lease` |
//! | `P:{R}:seq` | string | last outbox seq of the route (`INCR`) | none |
//! | `P:{R}:outbox` | stream | pending events, entry id `0-<seq>`, field `r` = record; consumer group `delivery`, one consumer per replica process, named `pid-random` by the store instance | none |
//! | `P:{R}:retry` | hash | seq → the record as last updated (attempts, last error) | none |
//! | `P:{R}:dead` | stream | dead letters, entry id `0-<seq>`, field `r` = record | none |
//! | `P:{R}:worker` | string | token of the replica delivering the route's outbox | `PX` [`WORKER_LEASE`] |
//! | `P:routes` | set | route names that have an outbox (for "every route" listings) | none |
//! | `P:ready-probe` | string | last readiness probe time | `PX 60s` |
//!
//! # Steps (each ONE Lua script, loaded once, called by SHA, reloaded on `NOSCRIPT`)
//!
//! * **reserve**: the same precedence as every backend (`mod.rs`): duplicate, id in
//!   flight, stale, entity in flight, else `SET NX PX lease` on the id's and the
//!   entity's lease keys with a fresh token. The lease outlives the longest delivery
//!   (`lease` is twice the longest `upstream_timeout` plus 5 s), and expires by itself
//!   when a replica dies mid-delivery, so the sender's retry is not blocked forever.
//! * **commit**: writes the dedup mark (`PX dedup_ttl`) and raises the watermark, then
//!   deletes the leases *if they still carry our token*. The marks are written even
//!   when the lease was lost (it expired): the delivery did happen, and recording it
//!   is what stops a further copy.
//! * **release**: deletes the leases that still carry our token, nothing else.
//! * **accept** (async): commit + `INCR seq` + `XADD outbox 0-<seq>` in one script.
//! * **settle** (async): delivered = `XACK` + `XDEL` (+ `HDEL retry`); retried =
//!   `HSET retry`; dead-lettered = `XACK` + `XDEL` + `XADD dead`; replay and drop move or
//!   delete a dead letter. One script (`outbox.rs`).
//! * **next** (the worker's read) and **takeover** (`XAUTOCLAIM`): see below.
//!
//! Expiry is checked on read against the gateway's clock (as in every backend), and
//! Redis's own `PX` reclaims the space, so [`RedisStore::purge_expired`] has nothing to
//! do. Replicas' clocks must agree to well within `dedup_ttl` (NTP).
//!
//! # The outbox across replicas
//!
//! One replica at a time delivers a route's outbox: the holder of `P:{R}:worker`, a
//! lease renewed every [`WORKER_RENEW`] and lost after [`WORKER_LEASE`] without
//! renewal. Under the lease sits the route's consumer group: the holder reads with
//! `XREADGROUP` as its own consumer (its own pending entries above what it has loaded
//! first, then `>`), and a delivery or dead-lettering `XACK`s and `XDEL`s the entry in
//! the same script. A replica that takes the lease over first `XAUTOCLAIM`s what other
//! consumers left pending, idle for at least [`VISIBILITY`] (= [`WORKER_LEASE`]), and
//! removes consumers left with nothing pending. Why that is safe with the lease: a
//! replica stops reading as soon as a renewal fails, so an entry idle for a whole lease
//! period is not in anyone's hands but a dead or cut-off replica's; an entry read more
//! recently makes the takeover wait (retried at each renewal) rather than be skipped,
//! since delivering around it could put a newer event of its entity first. The claimed
//! entries come back first, in stream order (they are older than anything `>` gives),
//! so one worker applies the per-entity FIFO rule of `delivery::worker` across the
//! takeover. A replica killed mid-delivery is redelivered (at least once: the upstream
//! dedups on `X-Hookgate-Event-Id`).
//!
//! One partition per route: a route's deliveries are bounded by one replica's
//! `concurrency`, not by the number of replicas. Partitioning a route into N streams by
//! a hash of the entity, one lease each, is the way to spread one route; it is not done
//! because it splits `max_pending` and the single seq order that listings and replays
//! use, and a change of N moves entities between partitions (a reorder window).
//!
//! # Redis unavailable, or restarted empty
//!
//! Every command is bounded by `store.command_timeout`; a failure is a [`StoreError`]
//! of kind [`StoreErrorKind::Unavailable`] (503 for the request, `/readyz` 503). The connections
//! reconnect by themselves. A restart that lost every key loses the worker lease too:
//! the next renewal finds it gone, the worker drops its window and starts again from
//! the (new) stream's head. The read that meets `NOGROUP` creates the group again
//! (`XGROUP CREATE ... 0 MKSTREAM`; the takeover tolerates `BUSYGROUP`) and still fails,
//! so the worker backs off (`STORE_RETRY`, 1 s), drops its window (seqs start over on
//! an empty Redis) and reads again: one re-creation, never a loop.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Client, ErrorKind, Script};

use super::outbox::Counts;
use super::{
    Clock, EventTime, Lease, Reservation, ReserveOutcome, ReserveRequest, StoreError,
    StoreErrorKind,
};

pub(super) mod outbox;
#[cfg(test)]
mod tls_tests;

pub(crate) use outbox::WORKER_RENEW;
pub use outbox::{Takeover, WorkerLease};
#[cfg(doc)]
use outbox::{VISIBILITY, WORKER_LEASE};

/// What a Redis store is opened with.
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://...`, `rediss://...` (TLS) or `unix://...`.
    pub url: String,
    /// Connections kept open.
    pub pool_size: usize,
    /// How long one connection attempt may take.
    pub connect_timeout: Duration,
    /// How long one command may take.
    pub command_timeout: Duration,
    /// Replicas that must acknowledge an accept or commit (`WAIT`), 0 = none.
    pub wait_replicas: u32,
    /// Prefix of every key.
    pub key_prefix: String,
    /// How long an in-flight lease lasts.
    pub lease: Duration,
    /// PEM root certificate(s) trusted for a `rediss://` url instead of the system's
    /// roots; `None` = the system's roots.
    pub tls_ca: Option<Vec<u8>>,
}

/// The Redis store. `Clone` shares the connections.
#[derive(Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

pub(super) struct Inner {
    pool: Vec<ConnectionManager>,
    next: AtomicUsize,
    prefix: String,
    clock: Clock,
    lease_ms: u64,
    wait_replicas: u32,
    command_timeout: Duration,
    shown_url: String,
    /// This store instance's name in tokens: unique per process and instance.
    instance: String,
    next_token: AtomicU64,
    /// Outbox counts as last read from Redis (the hot path's `max_pending` check).
    counts: Counts,
}

const RESERVE: &str = r"
local has_id = ARGV[5] == '1'
local has_ent = ARGV[4] ~= ''
if has_id then
  local seen = redis.call('GET', KEYS[1])
  if seen and seen > ARGV[1] then return 1 end
  if redis.call('EXISTS', KEYS[2]) == 1 then return 2 end
end
if has_ent then
  local wm = redis.call('GET', KEYS[3])
  if wm and string.sub(wm, 1, 20) > ARGV[1] and string.sub(wm, 21) > ARGV[4] then return 3 end
  if redis.call('EXISTS', KEYS[4]) == 1 then return 2 end
end
if has_id then redis.call('SET', KEYS[2], ARGV[2], 'NX', 'PX', ARGV[3]) end
if has_ent then redis.call('SET', KEYS[4], ARGV[2], 'NX', 'PX', ARGV[3]) end
return 0
";

/// The commit, shared by `COMMIT` and the accept script (`outbox.rs`): KEYS[1..4] as in
/// reserve, ARGV[1] token, ARGV[2] expiry, ARGV[3] dedup ttl ms, ARGV[4] '' or the order
/// point: event time (20 digits), watermark valid until (20), now (20), order ttl ms,
/// ARGV[5] '1' when there is an id. Leaves `held` = 0 when a lease was lost.
pub(super) const COMMIT_BODY: &str = r"
local held = 1
if ARGV[5] == '1' then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) else held = 0 end
end
if ARGV[4] ~= '' then
  local t = string.sub(ARGV[4], 1, 20)
  local wm = redis.call('GET', KEYS[3])
  if wm and string.sub(wm, 1, 20) > string.sub(ARGV[4], 41, 60) then
    local old = string.sub(wm, 21)
    if old > t then t = old end
  end
  redis.call('SET', KEYS[3], string.sub(ARGV[4], 21, 40) .. t, 'PX', string.sub(ARGV[4], 61))
  if redis.call('GET', KEYS[4]) == ARGV[1] then redis.call('DEL', KEYS[4]) else held = 0 end
end
";

const RELEASE: &str = r"
local n = 0
for i = 1, #KEYS do
  if redis.call('GET', KEYS[i]) == ARGV[1] then n = n + redis.call('DEL', KEYS[i]) end
end
return n
";

fn script(
    cell: &'static std::sync::OnceLock<Script>,
    src: impl FnOnce() -> String,
) -> &'static Script {
    cell.get_or_init(|| Script::new(&src()))
}

fn reserve_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    script(&S, || RESERVE.to_owned())
}

fn commit_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    script(&S, || format!("{COMMIT_BODY}\nreturn held"))
}

fn release_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    script(&S, || RELEASE.to_owned())
}

/// Why a Redis store could not be opened, in the words `check` and start-up print.
/// The driver's client for `options.url`. For `rediss://` (TLS, rustls with the ring
/// provider) the server certificate is checked against `tls_ca` when set, else
/// against the system's roots.
fn client(options: &RedisOptions) -> Result<Client, redis::RedisError> {
    if options.url.to_ascii_lowercase().starts_with("rediss://") {
        // rustls needs a process-wide provider; ring is this build's (never aws-lc).
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    match &options.tls_ca {
        Some(pem) => Client::build_with_tls(
            options.url.as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(pem.clone()),
            },
        ),
        None => Client::open(options.url.as_str()),
    }
}

fn classify(shown_url: &str, err: &redis::RedisError) -> StoreError {
    let reason = if err.kind() == ErrorKind::AuthenticationFailed
        || err
            .code()
            .is_some_and(|c| c == "WRONGPASS" || c == "NOAUTH" || c == "NOPERM")
    {
        format!("wrong user or password ({err})")
    } else if err.is_connection_refusal() {
        format!("unreachable: connection refused ({err})")
    } else if err.is_timeout() {
        format!("unreachable: no answer within the connect timeout ({err})")
    } else if err.to_string().contains("certificate") {
        format!(
            "TLS handshake refused: the server's certificate is not trusted or not for this \
             host ({err}); store.tls_ca names the CA that signed it"
        )
    } else if err.is_io_error() {
        format!("unreachable ({err})")
    } else if err.kind() == ErrorKind::InvalidClientConfig {
        format!("bad url ({err})")
    } else {
        err.to_string()
    };
    // A plain-text server on a rediss:// port reads the ClientHello as a command and
    // waits: say what the likely cause is.
    let reason = if shown_url.to_ascii_lowercase().starts_with("rediss://")
        && !err.is_connection_refusal()
        && (err.is_timeout() || err.is_io_error())
        && !reason.starts_with("TLS")
    {
        format!("{reason}; the TLS handshake did not complete: does this port serve TLS?")
    } else {
        reason
    };
    connect_error(shown_url, reason)
}

impl RedisStore {
    /// Connects (checking the URL, the credentials and the database once, so that a
    /// start-up error says which is wrong), then keeps `pool_size` self-reconnecting
    /// connections. Blocks for at most `connect_timeout` per check.
    /// Needs a tokio runtime (the connections' reconnect tasks run on it).
    pub(super) fn open(options: &RedisOptions, clock: Clock) -> Result<RedisStore, StoreError> {
        let client = Self::probe(options)?;
        let shown_url = crate::secret::redact_url(&options.url);
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(connect_error(
                &shown_url,
                "the Redis store needs a tokio runtime".to_owned(),
            ));
        }
        Self::connect(options, clock, client, shown_url)
    }

    /// The start-up checks alone (for `hookgate check`): the URL parses, the host
    /// answers within `connect_timeout`, the credentials and the database are accepted,
    /// PING answers. Blocking.
    pub(crate) fn probe(options: &RedisOptions) -> Result<Client, StoreError> {
        let shown_url = crate::secret::redact_url(&options.url);
        let client = client(options).map_err(|e| classify(&shown_url, &e))?;
        // One synchronous probe: connection, AUTH, SELECT and PING.
        let mut probe = client
            .get_connection_with_timeout(options.connect_timeout)
            .map_err(|e| classify(&shown_url, &e))?;
        probe
            .set_read_timeout(Some(options.command_timeout))
            .and_then(|()| probe.set_write_timeout(Some(options.command_timeout)))
            .map_err(|e| classify(&shown_url, &e))?;
        redis::cmd("PING")
            .query::<String>(&mut probe)
            .map_err(|e| classify(&shown_url, &e))?;
        Ok(client)
    }

    fn connect(
        options: &RedisOptions,
        clock: Clock,
        client: Client,
        shown_url: String,
    ) -> Result<RedisStore, StoreError> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(options.connect_timeout))
            .set_response_timeout(Some(options.command_timeout))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_secs(1));
        let pool = (0..options.pool_size.max(1))
            .map(|_| ConnectionManager::new_lazy_with_config(client.clone(), config.clone()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| classify(&shown_url, &e))?;
        Ok(RedisStore {
            inner: Arc::new(Inner {
                pool,
                next: AtomicUsize::new(0),
                prefix: options.key_prefix.clone(),
                clock,
                lease_ms: millis(options.lease).max(1),
                wait_replicas: options.wait_replicas,
                command_timeout: options.command_timeout,
                shown_url,
                instance: instance_name(),
                next_token: AtomicU64::new(1),
                counts: Counts::default(),
            }),
        })
    }

    /// A connection of the pool (round robin). Cloning a manager is cheap.
    #[allow(clippy::indexing_slicing)] // i < len by the modulo; the pool has 1..=64 connections
    pub(super) fn conn(&self) -> ConnectionManager {
        let i = self.inner.next.fetch_add(1, Ordering::Relaxed) % self.inner.pool.len();
        self.inner.pool[i].clone()
    }

    pub(super) fn inner(&self) -> &Inner {
        &self.inner
    }

    /// `P:{route}:kind:value`.
    pub(super) fn key(&self, route: &str, kind: &str, value: &str) -> String {
        let p = &self.inner.prefix;
        let mut k = String::with_capacity(p.len() + route.len() + kind.len() + value.len() + 6);
        k.push_str(p);
        k.push_str(":{");
        k.push_str(route);
        k.push_str("}:");
        k.push_str(kind);
        if !value.is_empty() {
            k.push(':');
            k.push_str(value);
        }
        k
    }

    /// A key outside any route.
    pub(super) fn global_key(&self, name: &str) -> String {
        format!("{}:{name}", self.inner.prefix)
    }

    fn check_route(route: &str) -> Result<(), StoreError> {
        // NUL as in every backend; braces because they delimit the hash tag, and a
        // route name holding "}:" could otherwise spell another route's key.
        if route.contains(['\0', '{', '}']) || route.is_empty() {
            return Err(StoreError::invalid_route(route));
        }
        Ok(())
    }

    /// The four keys of a reserve/commit (unused ones are never touched).
    fn keys4(&self, route: &str, id: Option<&str>, entity: Option<&str>) -> [String; 4] {
        let id = id.unwrap_or("");
        let entity = entity.unwrap_or("");
        [
            self.key(route, "seen", id),
            self.key(route, "lease:id", id),
            self.key(route, "wm", entity),
            self.key(route, "lease:ent", entity),
        ]
    }

    pub(super) async fn reserve(
        &self,
        req: ReserveRequest<'_>,
    ) -> Result<ReserveOutcome, StoreError> {
        Self::check_route(req.route)?;
        if req.event_id.is_none() && req.order.is_none() {
            return Ok(ReserveOutcome::Reserved(self.reservation(&req, None)));
        }
        let token = format!(
            "{}:{}",
            self.inner.instance,
            self.inner.next_token.fetch_add(1, Ordering::Relaxed)
        );
        let keys = self.keys4(req.route, req.event_id, req.order.map(|o| o.entity));
        let now = format!("{:020}", self.inner.clock.now_nanos());
        let time = req.order.map(|o| time_text(o.time)).unwrap_or_default();
        let mut call = reserve_script().prepare_invoke();
        for k in &keys {
            call.key(k);
        }
        call.arg(&now)
            .arg(&token)
            .arg(self.inner.lease_ms)
            .arg(&time)
            .arg(if req.event_id.is_some() { "1" } else { "0" });
        let code: i64 = call.invoke_async(&mut self.conn()).await?;
        Ok(match code {
            0 => ReserveOutcome::Reserved(self.reservation(&req, Some(token))),
            1 => ReserveOutcome::Duplicate,
            3 => ReserveOutcome::Stale,
            _ => ReserveOutcome::InFlight,
        })
    }

    fn reservation(&self, req: &ReserveRequest<'_>, token: Option<String>) -> Reservation {
        let lease_keys: Vec<String> = match &token {
            None => Vec::new(),
            Some(_) => {
                let [_, id_lease, _, ent_lease] =
                    self.keys4(req.route, req.event_id, req.order.map(|o| o.entity));
                let mut v = Vec::with_capacity(2);
                if req.event_id.is_some() {
                    v.push(id_lease);
                }
                if req.order.is_some() {
                    v.push(ent_lease);
                }
                v
            }
        };
        Reservation {
            route: req.route.to_owned(),
            event_id: req.event_id.map(str::to_owned),
            order: req.order.map(|o| (o.entity.to_owned(), o.time)),
            dedup_ttl: req.dedup_ttl,
            order_ttl: req.order_ttl,
            lease: Lease::Redis(RedisLease {
                store: self.clone(),
                token: token.unwrap_or_default(),
                keys: lease_keys,
                live: true,
            }),
        }
    }

    /// Takes the lease out of `r` if it was made by this store; otherwise refuses it
    /// (dropping it releases it in its own store).
    pub(super) fn own_lease(
        &self,
        r: &mut Reservation,
    ) -> Result<(String, Vec<String>), StoreError> {
        match &mut r.lease {
            Lease::Redis(l) if Arc::ptr_eq(&l.store.inner, &self.inner) => {
                l.live = false;
                Ok((std::mem::take(&mut l.token), std::mem::take(&mut l.keys)))
            }
            _ => Err(StoreError::foreign_reservation()),
        }
    }

    /// The arguments of the commit body for `r` (see [`COMMIT_BODY`]).
    pub(super) fn commit_args(&self, r: &Reservation, token: &str) -> ([String; 4], [String; 5]) {
        let keys = self.keys4(
            &r.route,
            r.event_id.as_deref(),
            r.order.as_ref().map(|(e, _)| e.as_str()),
        );
        let expiry = format!("{:020}", self.inner.clock.expiry_after(r.dedup_ttl));
        let args = [
            token.to_owned(),
            expiry,
            millis(r.dedup_ttl).max(1).to_string(),
            r.order
                .as_ref()
                .map(|(_, t)| {
                    // Redis refuses a PX beyond 2^63 ms; ~35 years is "never" here.
                    let ttl_ms = millis(r.order_ttl).clamp(1, 1 << 50);
                    format!(
                        "{}{:020}{:020}{ttl_ms}",
                        time_text(*t),
                        self.inner.clock.expiry_after(r.order_ttl),
                        self.inner.clock.now_nanos(),
                    )
                })
                .unwrap_or_default(),
            if r.event_id.is_some() { "1" } else { "0" }.to_owned(),
        ];
        (keys, args)
    }

    pub(super) async fn commit(&self, mut r: Reservation) -> Result<(), StoreError> {
        let (token, lease_keys) = self.own_lease(&mut r)?;
        if lease_keys.is_empty() {
            return Ok(());
        }
        let (keys, args) = self.commit_args(&r, &token);
        let mut call = commit_script().prepare_invoke();
        for k in &keys {
            call.key(k);
        }
        for a in &args {
            call.arg(a);
        }
        let mut conn = self.conn();
        let held: Result<i64, _> = call.invoke_async(&mut conn).await;
        match held {
            Ok(held) => {
                if held == 0 {
                    tracing::warn!(route = %r.route, "Redis lease expired before the commit; the commit was recorded anyway.");
                }
                self.wait(&mut conn).await
            }
            Err(e) => {
                // Whether the script ran is unknown: release what may still be held.
                self.release_keys(token, lease_keys);
                Err(e.into())
            }
        }
    }

    pub(super) async fn release(&self, mut r: Reservation) -> Result<(), StoreError> {
        let (token, keys) = self.own_lease(&mut r)?;
        if keys.is_empty() {
            return Ok(());
        }
        let mut call = release_script().prepare_invoke();
        for k in &keys {
            call.key(k);
        }
        call.arg(&token);
        let _: i64 = call.invoke_async(&mut self.conn()).await?;
        Ok(())
    }

    /// Best-effort release in the background (a dropped reservation, a failed commit).
    fn release_keys(&self, token: String, keys: Vec<String>) {
        if keys.is_empty() {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            // No runtime (shutdown): the lease expires by itself.
            return;
        };
        let store = self.clone();
        handle.spawn(async move {
            let mut call = release_script().prepare_invoke();
            for k in &keys {
                call.key(k);
            }
            call.arg(&token);
            let released: Result<i64, _> = call.invoke_async(&mut store.conn()).await;
            if let Err(e) = released {
                tracing::debug!(error = %e, "Redis lease release failed; it expires by itself.");
            }
        });
    }

    /// `WAIT wait_replicas timeout` after a write, when configured.
    pub(super) async fn wait(&self, conn: &mut ConnectionManager) -> Result<(), StoreError> {
        let want = self.inner.wait_replicas;
        if want == 0 {
            return Ok(());
        }
        let timeout = millis(self.inner.command_timeout) / 2;
        let acked: i64 = redis::cmd("WAIT")
            .arg(want)
            .arg(timeout.max(1))
            .query_async(conn)
            .await?;
        if acked < i64::from(want) {
            return Err(StoreError::new(
                StoreErrorKind::NotReplicated,
                format!(
                    "redis: only {} of {want} replicas acknowledged the write",
                    acked.max(0)
                ),
            ));
        }
        Ok(())
    }

    pub(super) async fn ping(&self) -> Result<(), StoreError> {
        let now = format!("{:020}", self.inner.clock.now_nanos());
        let _: () = redis::cmd("SET")
            .arg(self.global_key("ready-probe"))
            .arg(now)
            .arg("PX")
            .arg(60_000)
            .query_async(&mut self.conn())
            .await?;
        Ok(())
    }

    /// Redis expires dedup keys by itself (`PX dedup_ttl`): nothing to purge.
    pub(super) fn purge_expired(&self, _max: usize) -> usize {
        0
    }

    pub(super) fn counts(&self) -> &Counts {
        &self.inner.counts
    }
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.inner.shown_url)
            .field("prefix", &self.inner.prefix)
            .finish_non_exhaustive()
    }
}

/// A Redis lease: the token written on the reservation's lease keys. Dropping it
/// without commit or release releases it in the background (best effort; the lease
/// also expires by itself).
pub(super) struct RedisLease {
    store: RedisStore,
    pub(super) token: String,
    /// The lease keys held (id's, entity's); empty for a request with neither.
    keys: Vec<String>,
    live: bool,
}

impl RedisLease {
    pub(super) fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

impl Drop for RedisLease {
    fn drop(&mut self) {
        if self.live {
            self.live = false;
            self.store.release_keys(
                std::mem::take(&mut self.token),
                std::mem::take(&mut self.keys),
            );
        }
    }
}

/// An event time as a fixed-width string ordered like the time (`i64` shifted by 2^63).
fn time_text(t: EventTime) -> String {
    format!("{:020}", (t.0 as u64) ^ (1u64 << 63))
}

pub(super) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `host-pid-random`: names this process's tokens and worker leases.
fn instance_name() -> String {
    use std::hash::{BuildHasher, Hasher};
    static N: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(N.fetch_add(1, Ordering::Relaxed));
    h.write_u32(std::process::id());
    format!(
        "{}-{:012x}",
        std::process::id(),
        h.finish() & 0xffff_ffff_ffff
    )
}

/// Redis at `shown_url` (password redacted) could not be used: `reason` says which
/// check failed and why.
fn connect_error(shown_url: &str, reason: String) -> StoreError {
    StoreError::new(
        StoreErrorKind::Connect,
        format!("redis at {shown_url}: {reason}"),
    )
}

/// A failed command: `Unavailable` when the connection is the cause (the manager
/// reconnects by itself), `Backend` when Redis answered with an error.
impl From<redis::RedisError> for StoreError {
    fn from(err: redis::RedisError) -> Self {
        let kind = if err.is_io_error()
            || err.is_timeout()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
        {
            StoreErrorKind::Unavailable
        } else {
            StoreErrorKind::Backend
        };
        StoreError::with_source(kind, "redis", err)
    }
}
