//! The Redis outbox: a stream per route and one delivering replica per route (the key
//! layout and the reasoning are in `mod.rs`).
//!
//! Seqs come from `INCR P:{R}:seq` and are the stream entry ids (`0-<seq>`), so they
//! rise in commit order and a worker that polls "after the last seq I loaded" never
//! misses a record, as with the other backends. A stream entry cannot be changed, so a
//! retried record's attempt count and last error live in the `P:{R}:retry` hash until
//! the record leaves the outbox. A dead letter is added to the dead stream under a new
//! seq of the same counter (an explicit stream id must rise; dead-lettering happens out
//! of seq order).

use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use redis::Script;
use redis::Value;

use super::{COMMIT_BODY, RedisStore, millis};
use crate::store::outbox::{OutboxOp, Stored, Table};
use crate::store::{Reservation, StoreError};

/// How long a route's worker lease lasts without renewal: a dead replica's deliveries
/// are taken over after at most this long.
pub(crate) const WORKER_LEASE: Duration = Duration::from_secs(10);

/// How often the holder renews it (and a waiting replica tries to take it).
pub(crate) const WORKER_RENEW: Duration = Duration::from_secs(2);

/// KEYS: 1-4 the commit's keys, 5 seq, 6 outbox, 7 retry, 8 dead.
/// ARGV: 1-5 the commit's arguments, 6 '1' to commit, 7 op, 8 seq, 9 record,
/// 10 `max_pending` for an accept ('' for none).
/// Returns {seq, or -1 (no such record), or -2 (outbox full: nothing written), pending, dead}.
const APPLY_BODY: &str = r"
local op = ARGV[7]
local id = '0-' .. ARGV[8]
local out = -1
if op == 'accept' and ARGV[10] ~= '' and redis.call('XLEN', KEYS[6]) >= tonumber(ARGV[10]) then
  out = -2
elseif op == 'accept' then
  if ARGV[6] == '1' then COMMIT end
  out = redis.call('INCR', KEYS[5])
  redis.call('XADD', KEYS[6], '0-' .. out, 'r', ARGV[9])
elseif op == 'remove' then
  redis.pcall('XACK', KEYS[6], $GROUP, id)
  if redis.call('XDEL', KEYS[6], id) == 1 then out = tonumber(ARGV[8]) end
  redis.call('HDEL', KEYS[7], ARGV[8])
elseif op == 'update' then
  if #redis.call('XRANGE', KEYS[6], id, id) == 1 then
    redis.call('HSET', KEYS[7], ARGV[8], ARGV[9])
    out = tonumber(ARGV[8])
  end
elseif op == 'dead' then
  redis.pcall('XACK', KEYS[6], $GROUP, id)
  if redis.call('XDEL', KEYS[6], id) == 1 then
    redis.call('HDEL', KEYS[7], ARGV[8])
    out = redis.call('INCR', KEYS[5])
    redis.call('XADD', KEYS[8], '0-' .. out, 'r', ARGV[9])
  end
elseif op == 'replay' then
  if redis.call('XDEL', KEYS[8], id) == 1 then
    out = redis.call('INCR', KEYS[5])
    redis.call('XADD', KEYS[6], '0-' .. out, 'r', ARGV[9])
  end
elseif op == 'drop' then
  if redis.call('XDEL', KEYS[8], id) == 1 then out = tonumber(ARGV[8]) end
end
return {out, redis.call('XLEN', KEYS[6]), redis.call('XLEN', KEYS[8])}
";

/// KEYS: 1 stream, 2 retry hash. ARGV: 1 first id, 2 count, 3 '1' to overlay retries.
/// Returns a flat list seq, record, seq, record, ...
const SCAN: &str = r"
local e = redis.call('XRANGE', KEYS[1], ARGV[1], '+', 'COUNT', ARGV[2])
local out = {}
for _, x in ipairs(e) do
  local seq = string.sub(x[1], 3)
  local rec = x[2][2]
  if ARGV[3] == '1' then
    local u = redis.call('HGET', KEYS[2], seq)
    if u then rec = u end
  end
  out[#out + 1] = seq
  out[#out + 1] = rec
end
return out
";

/// KEYS: 1 worker lease. ARGV: 1 token, 2 lease ms, 3 '1' to give it up.
/// Returns 1 renewed, 2 newly taken, 0 held by another (or given up).
const WORKER: &str = r"
local cur = redis.call('GET', KEYS[1])
if ARGV[3] == '1' then
  if cur == ARGV[1] then redis.call('DEL', KEYS[1]) end
  return 0
end
if cur == ARGV[1] then redis.call('PEXPIRE', KEYS[1], ARGV[2]) return 1 end
if not cur then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 2 end
return 0
";

/// The consumer group on each route's outbox stream (one group per route, as the
/// stream key carries the route), as a Lua string literal spliced into the scripts
/// where they say `$GROUP`.
/// Each replica's consumer in it is named by the store instance (`pid-random`).
const GROUP_LUA: &str = "'delivery'";

/// The visibility timeout: `XAUTOCLAIM` takes over only entries that their consumer has
/// not read for this long. Equal to [`WORKER_LEASE`]: a replica that could still be
/// working on an entry (it read it while it held the route's lease) has had a whole
/// lease period since, and it stops reading as soon as its renewal fails (every
/// [`WORKER_RENEW`]). Entries read more recently are waited for, not skipped (see
/// [`Takeover::waiting`]), so nothing newer of their entity overtakes them.
pub(crate) const VISIBILITY: Duration = WORKER_LEASE;

/// KEYS: 1 outbox stream, 2 retry hash. ARGV: 1 consumer, 2 `0-<after>`, 3 count.
/// This consumer's pending entries above `after` first (after a takeover: those
/// claimed from other consumers, and its own from an earlier lease), then new ones
/// (`>`); deleted entries still pending are acknowledged and skipped. A missing group
/// (Redis lost its keys) is created again and reported as `NOGROUP`, so the worker
/// backs off and starts over, never spins. Returns seq, record, seq, record, ...
const NEXT: &str = r"
local function read(from)
  return redis.pcall('XREADGROUP', 'GROUP', $GROUP, ARGV[1], 'COUNT', ARGV[3], 'STREAMS', KEYS[1], from)
end
local r = read(ARGV[2])
if type(r) == 'table' and r.err then
  if string.find(r.err, 'NOGROUP', 1, true) then
    redis.pcall('XGROUP', 'CREATE', KEYS[1], $GROUP, '0', 'MKSTREAM')
    return redis.error_reply('NOGROUP the outbox consumer group was missing and has been created again')
  end
  return r
end
local entries = {}
if r and r[1] then entries = r[1][2] end
if #entries == 0 then
  r = read('>')
  if type(r) == 'table' and r.err then return r end
  if r and r[1] then entries = r[1][2] end
end
local out = {}
for _, x in ipairs(entries) do
  if x[2] then
    local seq = string.sub(x[1], 3)
    local rec = x[2][2]
    local u = redis.call('HGET', KEYS[2], seq)
    if u then rec = u end
    out[#out + 1] = seq
    out[#out + 1] = rec
  else
    redis.call('XACK', KEYS[1], $GROUP, x[1])
  end
end
return out
";

/// KEYS: 1 outbox stream. ARGV: 1 consumer, 2 min idle ms ([`VISIBILITY`]).
/// Creates the group if missing (`BUSYGROUP` is fine), `XAUTOCLAIM`s every entry other
/// consumers left pending for at least the visibility timeout, and deletes the other
/// consumers left with nothing pending. Returns {taken, still pending elsewhere, created}.
const TAKEOVER: &str = r"
local created = 0
local c = redis.pcall('XGROUP', 'CREATE', KEYS[1], $GROUP, '0', 'MKSTREAM')
if type(c) == 'table' and c.err then
  if not string.find(c.err, 'BUSYGROUP', 1, true) then return c end
else
  created = 1
end
local function foreign(prune)
  local n = 0
  for _, info in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], $GROUP)) do
    local f = {}
    for i = 1, #info, 2 do f[info[i]] = info[i + 1] end
    if f['name'] ~= ARGV[1] then
      n = n + f['pending']
      if prune and f['pending'] == 0 then
        redis.call('XGROUP', 'DELCONSUMER', KEYS[1], $GROUP, f['name'])
      end
    end
  end
  return n
end
local before = foreign(false)
local cursor = '0-0'
repeat
  local r = redis.call('XAUTOCLAIM', KEYS[1], $GROUP, ARGV[1], ARGV[2], cursor, 'COUNT', 1000, 'JUSTID')
  cursor = r[1]
until cursor == '0-0'
local left = foreign(true)
return {before - left, left, created}
";

fn next_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| Script::new(&NEXT.replace("$GROUP", GROUP_LUA)))
}

fn takeover_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| Script::new(&TAKEOVER.replace("$GROUP", GROUP_LUA)))
}

fn apply_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| {
        Script::new(
            &APPLY_BODY
                .replace("COMMIT", COMMIT_BODY)
                .replace("$GROUP", GROUP_LUA),
        )
    })
}

fn scan_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| Script::new(SCAN))
}

fn worker_script() -> &'static Script {
    static S: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    S.get_or_init(|| Script::new(WORKER))
}

/// What a worker holds after [`Store::worker_lease`](crate::store::Store::worker_lease).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WorkerLease {
    /// Still ours (renewed).
    Renewed,
    /// Ours from now on: whatever was loaded before is stale (another replica may
    /// have delivered it, or Redis restarted empty).
    Taken,
    /// Another replica delivers this route.
    Elsewhere,
}

/// What a replica found when it took a route's outbox over
/// ([`Store::outbox_takeover`](crate::store::Store::outbox_takeover)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Takeover {
    /// Entries other consumers (replicas) had read and not settled, now this
    /// replica's: it delivers them first, in stream order.
    pub taken: u64,
    /// Entries another consumer read less than the visibility timeout ago: the takeover
    /// is not complete, and the replica delivers nothing until it is (a newer event of
    /// the same entity must not overtake them).
    pub waiting: u64,
    /// The consumer group did not exist and was created (first start, or Redis lost
    /// its keys).
    pub created: bool,
}

/// Routes this process has registered in `P:routes`.
static REGISTERED: Mutex<Option<HashSet<String>>> = Mutex::new(None);

impl RedisStore {
    /// The outbox keys of `route`: seq, outbox, retry, dead.
    fn outbox_keys(&self, route: &str) -> [String; 4] {
        [
            self.key(route, "seq", ""),
            self.key(route, "outbox", ""),
            self.key(route, "retry", ""),
            self.key(route, "dead", ""),
        ]
    }

    /// Runs the apply script; returns the seq (or `None`: the record is not there).
    /// An accept with `max_pending` is refused in the script itself when that many
    /// records wait: the check and the write are one atomic step across replicas, so
    /// concurrent accepts on several of them never take the outbox past it.
    async fn apply(
        &self,
        reservation: Option<Reservation>,
        op: &OutboxOp,
        max_pending: Option<u64>,
    ) -> Result<Option<u64>, StoreError> {
        let (route, name, seq, record): (&str, &str, u64, &[u8]) = match op {
            OutboxOp::Accept { route, record } => (route, "accept", 0, record),
            OutboxOp::Remove { route, seq } => (route, "remove", *seq, &[]),
            OutboxOp::Update { route, seq, record } => (route, "update", *seq, record),
            OutboxOp::DeadLetter { route, seq, record } => (route, "dead", *seq, record),
            OutboxOp::Replay { route, seq, record } => (route, "replay", *seq, record),
            OutboxOp::DropDead { route, seq } => (route, "drop", *seq, &[]),
        };
        Self::check_route(route)?;
        let mut reservation = reservation;
        let lease = match &mut reservation {
            Some(r) => {
                let (token, lease_keys) = self.own_lease(r)?;
                if r.route != route {
                    // Keys of two routes cannot share one script (hash tags).
                    self.release_keys(token, lease_keys);
                    return Err(StoreError::foreign_reservation());
                }
                Some((token, lease_keys))
            }
            None => None,
        };
        let commit = lease.as_ref().is_some_and(|(_, k)| !k.is_empty());
        let (ckeys, cargs) = match (&reservation, &lease) {
            (Some(r), Some((token, _))) if commit => self.commit_args(r, token),
            _ => (
                [
                    self.key(route, "seen", ""),
                    self.key(route, "lease:id", ""),
                    self.key(route, "wm", ""),
                    self.key(route, "lease:ent", ""),
                ],
                Default::default(),
            ),
        };
        let mut call = apply_script().prepare_invoke();
        for k in ckeys.iter().chain(self.outbox_keys(route).iter()) {
            call.key(k);
        }
        for a in &cargs {
            call.arg(a);
        }
        call.arg(if commit { "1" } else { "0" })
            .arg(name)
            .arg(seq)
            .arg(record)
            .arg(max_pending.map(|m| m.to_string()).unwrap_or_default());
        let mut conn = self.conn();
        let answer: Result<(i64, u64, u64), _> = call.invoke_async(&mut conn).await;
        let (out, pending, dead) = match answer {
            Ok(a) => a,
            Err(e) => {
                if let Some((token, keys)) = lease {
                    self.release_keys(token, keys);
                }
                return Err(e.into());
            }
        };
        self.set_counts(route, pending, dead);
        if out == -2 {
            if let Some((token, keys)) = lease {
                self.release_keys(token, keys);
            }
            return Err(StoreError::outbox_full(route));
        }
        if matches!(op, OutboxOp::Accept { .. }) {
            self.register(route).await;
        }
        self.wait(&mut conn).await?;
        Ok(u64::try_from(out).ok())
    }

    fn set_counts(&self, route: &str, pending: u64, dead: u64) {
        let mut c = self.counts().lock();
        c.pending.insert(route.to_owned(), pending);
        c.dead.insert(route.to_owned(), dead);
    }

    /// Adds `route` to `P:routes` once per process (for listings over every route).
    async fn register(&self, route: &str) {
        let first = REGISTERED
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get_or_insert_with(HashSet::new)
            .insert(format!("{}\0{route}", self.inner().prefix));
        if first {
            let added: Result<i64, _> = redis::cmd("SADD")
                .arg(self.global_key("routes"))
                .arg(route)
                .query_async(&mut self.conn())
                .await;
            if let Err(e) = added {
                tracing::debug!(error = %e, "Cannot register the route in Redis.");
            }
        }
    }

    pub(in crate::store) async fn outbox_accept(
        &self,
        reservation: Option<Reservation>,
        route: &str,
        record: Vec<u8>,
        max_pending: Option<u64>,
    ) -> Result<u64, StoreError> {
        let op = OutboxOp::Accept {
            route: route.to_owned(),
            record,
        };
        self.apply(reservation, &op, max_pending)
            .await?
            .ok_or_else(|| {
                StoreError::new(
                    crate::store::StoreErrorKind::Backend,
                    "redis: the accept script answered without a seq",
                )
            })
    }

    pub(in crate::store) async fn outbox_apply(
        &self,
        op: OutboxOp,
    ) -> Result<Option<u64>, StoreError> {
        self.apply(None, &op, None).await
    }

    pub(in crate::store) async fn outbox_scan(
        &self,
        table: Table,
        route: Option<&str>,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        let routes: Vec<String> = match route {
            Some(r) => vec![r.to_owned()],
            None => {
                let mut all: Vec<String> = redis::cmd("SMEMBERS")
                    .arg(self.global_key("routes"))
                    .query_async(&mut self.conn())
                    .await?;
                all.sort();
                all
            }
        };
        let Some(first) = after.checked_add(1) else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for route in routes {
            if out.len() >= max || Self::check_route(&route).is_err() {
                continue;
            }
            let [_, outbox, retry, dead] = self.outbox_keys(&route);
            let stream = match table {
                Table::Outbox => outbox,
                Table::Dead => dead,
            };
            let count = (max - out.len()).min(100_000);
            let flat: Vec<Value> = scan_script()
                .key(&stream)
                .key(&retry)
                .arg(format!("0-{first}"))
                .arg(count)
                .arg(if table == Table::Outbox { "1" } else { "0" })
                .invoke_async(&mut self.conn())
                .await?;
            out.extend(pairs(&route, &flat));
        }
        Ok(out)
    }

    pub(in crate::store) async fn outbox_get(
        &self,
        table: Table,
        route: &str,
        seq: u64,
    ) -> Result<Option<Vec<u8>>, StoreError> {
        if seq == 0 {
            return Ok(None);
        }
        let found = self.outbox_scan(table, Some(route), seq - 1, 1).await?;
        Ok(found.into_iter().find(|s| s.seq == seq).map(|s| s.record))
    }

    /// Re-reads the route's pending and dead counts (other replicas change them).
    pub(in crate::store) async fn outbox_refresh(&self, route: &str) -> Result<(), StoreError> {
        let [_, outbox, _, dead] = self.outbox_keys(route);
        let (pending, dead): (u64, u64) = redis::pipe()
            .cmd("XLEN")
            .arg(&outbox)
            .cmd("XLEN")
            .arg(&dead)
            .query_async(&mut self.conn())
            .await?;
        self.set_counts(route, pending, dead);
        Ok(())
    }

    /// The next records for this replica's worker: its own pending entries above
    /// `after` (in stream order), else new ones read through the consumer group.
    pub(in crate::store) async fn outbox_next(
        &self,
        route: &str,
        after: u64,
        max: usize,
    ) -> Result<Vec<Stored>, StoreError> {
        Self::check_route(route)?;
        let [_, outbox, retry, _] = self.outbox_keys(route);
        let flat: Vec<Value> = next_script()
            .key(&outbox)
            .key(&retry)
            .arg(&self.inner().instance)
            .arg(format!("0-{after}"))
            .arg(max.clamp(1, 100_000))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(pairs(route, &flat))
    }

    /// Claims what other replicas left pending on `route` (see [`Takeover`]).
    pub(in crate::store) async fn outbox_takeover(
        &self,
        route: &str,
    ) -> Result<Takeover, StoreError> {
        Self::check_route(route)?;
        let (taken, waiting, created): (u64, u64, u64) = takeover_script()
            .key(self.key(route, "outbox", ""))
            .arg(&self.inner().instance)
            .arg(millis(VISIBILITY))
            .invoke_async(&mut self.conn())
            .await?;
        Ok(Takeover {
            taken,
            waiting,
            created: created == 1,
        })
    }

    /// Takes or renews the route's worker lease (`give_up`: releases it).
    pub(in crate::store) async fn worker_lease(
        &self,
        route: &str,
        give_up: bool,
    ) -> Result<WorkerLease, StoreError> {
        Self::check_route(route)?;
        let code: i64 = worker_script()
            .key(self.key(route, "worker", ""))
            .arg(&self.inner().instance)
            .arg(millis(WORKER_LEASE))
            .arg(if give_up { "1" } else { "0" })
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match code {
            1 => WorkerLease::Renewed,
            2 => WorkerLease::Taken,
            _ => WorkerLease::Elsewhere,
        })
    }
}

/// A script's flat answer seq, record, seq, record, ... as records of `route`.
fn pairs(route: &str, flat: &[Value]) -> Vec<Stored> {
    flat.chunks_exact(2)
        .filter_map(|pair| {
            let [seq, record] = pair else { return None };
            Some(Stored {
                route: route.to_owned(),
                seq: text(seq)?.parse().ok()?,
                record: bytes(record)?,
            })
        })
        .collect()
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b.clone()).ok(),
        Value::SimpleString(s) => Some(s.clone()),
        Value::Int(n) => Some(n.to_string()),
        _ => None,
    }
}

fn bytes(v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::BulkString(b) => Some(b.clone()),
        Value::SimpleString(s) => Some(s.clone().into_bytes()),
        _ => None,
    }
}
