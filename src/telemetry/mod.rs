//! Metrics (DESIGN.md §8): one registry for the life of the process.
//!
//! The registry outlives configuration reloads, so counters keep counting across a
//! SIGHUP. Label values come only from the config (route names) and from fixed enums
//! ([`Verdict`], [`DeliveryOutcome`]): never from request data, so cardinality is bounded
//! by the config. Requests that match no route are counted under the route label `-`.

use std::sync::Arc;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::verdict::Verdict;

pub mod logs;

/// Label value of requests that matched no route.
pub const NO_ROUTE_LABEL: &str = "-";

/// Labels of `hookgate_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// Route name from the config.
    pub route: Arc<str>,
    /// The verdict.
    pub verdict: VerdictLabel,
}

/// A [`Verdict`] as a label value.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub struct VerdictLabel(pub Verdict);

impl EncodeLabelValue for VerdictLabel {
    fn encode(
        &self,
        encoder: &mut prometheus_client::encoding::LabelValueEncoder<'_>,
    ) -> Result<(), std::fmt::Error> {
        use std::fmt::Write as _;
        encoder.write_str(self.0.as_str())
    }
}

/// Labels carrying only the route.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabels {
    /// Route name from the config.
    pub route: Arc<str>,
}

/// How one delivery attempt ended.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum DeliveryOutcome {
    /// The upstream answered 2xx (or the file sink wrote the line).
    success,
    /// The upstream answered, but not 2xx.
    rejected,
    /// The upstream could not be reached.
    unreachable,
    /// The upstream did not answer in time.
    timeout,
    /// The file sink could not be written.
    file_error,
}

/// Labels of `hookgate_deliveries_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeliveryLabels {
    /// Route name from the config.
    pub route: Arc<str>,
    /// How it ended.
    pub outcome: DeliveryOutcome,
}

/// Why a connection was closed before any HTTP request (`hookgate_connections_closed_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum CloseReason {
    /// The TLS handshake failed: not TLS, no shared version or cipher, a client
    /// certificate that does not verify.
    tls_handshake,
    /// The TLS handshake did not finish within `read_timeout`.
    tls_timeout,
    /// A PROXY header missing, truncated or malformed from a trusted peer.
    proxy_header,
    /// A PROXY header from a peer outside `trusted_proxies`.
    proxy_untrusted,
    /// A request's header section did not arrive within `read_timeout` (a slow-header
    /// sender; the connection is closed without an answer, as hyper does).
    header_timeout,
}

/// Why the gateway closed a working connection (`hookgate_connections_shed_total`).
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum ShedReason {
    /// At `max_connections`, the connection idle the longest made room for a new one.
    max_connections,
    /// Idle longer than `idle_timeout`.
    idle_timeout,
    /// It reached `max_requests_per_connection`.
    max_requests,
}

/// Labels of `hookgate_connections_shed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ShedLabels {
    /// Why.
    pub reason: ShedReason,
}

/// Labels of `hookgate_connections_closed_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CloseLabels {
    /// Why.
    pub reason: CloseReason,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_pending: Family<RouteLabels, Gauge>,
    dead_letters: Family<RouteLabels, Gauge>,
    outbox_oldest_age: Family<RouteLabels, Gauge>,
    schema_violations: Family<RouteLabels, Counter>,
    unrecorded_deliveries: Family<RouteLabels, Counter>,
    outbox_taken_over: Family<RouteLabels, Counter>,
    connections_closed: Family<CloseLabels, Counter>,
    connections_shed: Family<ShedLabels, Counter>,
    connections_accepted: Counter,
    connections_waited: Counter,
    connections_open: Gauge,
    store_commits: Counter,
    store_changes: Counter,
    /// The store's write counts at the last scrape, to add only what is new.
    store_seen: std::sync::Mutex<(u64, u64)>,
    /// The `route` label of requests that matched no route, built once.
    no_route: Arc<str>,
}

fn duration_histogram() -> Histogram {
    // 0.5 ms .. ~16 s: gateway-only answers sit in the first buckets, slow upstreams in the last.
    Histogram::new(exponential_buckets(0.0005, 2.0, 16))
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every series.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let requests = Family::<RequestLabels, Counter>::default();
        let duration = Family::<RouteLabels, Histogram>::new_with_constructor(
            duration_histogram as fn() -> Histogram,
        );
        let deliveries = Family::<DeliveryLabels, Counter>::default();
        let outbox_pending = Family::<RouteLabels, Gauge>::default();
        let dead_letters = Family::<RouteLabels, Gauge>::default();
        let outbox_oldest_age = Family::<RouteLabels, Gauge>::default();
        let schema_violations = Family::<RouteLabels, Counter>::default();
        let unrecorded_deliveries = Family::<RouteLabels, Counter>::default();
        let connections_closed = Family::<CloseLabels, Counter>::default();
        let store_commits = Counter::default();
        let store_changes = Counter::default();
        registry.register(
            "hookgate_store_commits",
            "Durable write transactions of the store (one fsync each; embedded store)",
            store_commits.clone(),
        );
        registry.register(
            "hookgate_store_committed_events",
            "Changes those transactions carried: dedup marks, outbox accepts and settlements (group commit: many per fsync)",
            store_changes.clone(),
        );
        registry.register(
            "hookgate_connections_closed",
            "Connections closed before any HTTP request, by reason",
            connections_closed.clone(),
        );
        let connections_shed = Family::<ShedLabels, Counter>::default();
        registry.register(
            "hookgate_connections_shed",
            "Working connections the gateway closed gracefully, by reason",
            connections_shed.clone(),
        );
        let connections_accepted = Counter::default();
        registry.register(
            "hookgate_connections_accepted",
            "Connections accepted",
            connections_accepted.clone(),
        );
        let connections_waited = Counter::default();
        registry.register(
            "hookgate_connections_waited",
            "Connections accepted at max_connections with none idle to close: they waited for a slot",
            connections_waited.clone(),
        );
        let connections_open = Gauge::default();
        registry.register(
            "hookgate_connections_open",
            "Connections open now",
            connections_open.clone(),
        );
        registry.register(
            "hookgate_requests",
            "Webhook requests by route and verdict",
            requests.clone(),
        );
        registry.register(
            "hookgate_request_duration_seconds",
            "Time from request start to answer, by route",
            duration.clone(),
        );
        registry.register(
            "hookgate_deliveries",
            "Delivery attempts by route and outcome",
            deliveries.clone(),
        );
        registry.register(
            "hookgate_outbox_pending",
            "Events accepted into the outbox and not yet delivered",
            outbox_pending.clone(),
        );
        registry.register(
            "hookgate_outbox_oldest_age_seconds",
            "Age of the oldest event pending in the outbox (0 when none)",
            outbox_oldest_age.clone(),
        );
        registry.register(
            "hookgate_dead_letters",
            "Events that exhausted their delivery retries",
            dead_letters.clone(),
        );
        registry.register(
            "hookgate_schema_violations",
            "Events that violated their route's schema (enforced or monitored)",
            schema_violations.clone(),
        );
        registry.register(
            "hookgate_log_lines_dropped",
            "Log lines dropped because the log queue was full (stderr too slow)",
            logs::DroppedLines,
        );
        registry.register(
            "hookgate_unrecorded_deliveries",
            "Delivered events the store could not mark seen (a retry is delivered again)",
            unrecorded_deliveries.clone(),
        );
        let outbox_taken_over = Family::<RouteLabels, Counter>::default();
        registry.register(
            "hookgate_outbox_taken_over",
            "Pending events this replica claimed from other replicas' consumers (Redis XAUTOCLAIM)",
            outbox_taken_over.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            deliveries,
            outbox_pending,
            dead_letters,
            outbox_oldest_age,
            schema_violations,
            unrecorded_deliveries,
            outbox_taken_over,
            connections_closed,
            connections_shed,
            connections_accepted,
            connections_waited,
            connections_open,
            store_commits,
            store_changes,
            store_seen: std::sync::Mutex::new((0, 0)),
            no_route: Arc::from(NO_ROUTE_LABEL),
        }
    }

    /// Makes every per-route series exist at zero, so dashboards and alerts see the
    /// route before its first request.
    pub fn init_route(&self, route: &Arc<str>) {
        let labels = RouteLabels {
            route: Arc::clone(route),
        };
        let _ = self.outbox_pending.get_or_create(&labels);
        let _ = self.dead_letters.get_or_create(&labels);
        let _ = self.schema_violations.get_or_create(&labels);
        let _ = self.unrecorded_deliveries.get_or_create(&labels);
    }

    /// Counts one answered request.
    pub fn request(&self, route: Option<&Arc<str>>, verdict: Verdict, seconds: f64) {
        let route = route.map_or_else(|| Arc::clone(&self.no_route), Arc::clone);
        self.requests
            .get_or_create(&RequestLabels {
                route: Arc::clone(&route),
                verdict: VerdictLabel(verdict),
            })
            .inc();
        self.duration
            .get_or_create(&RouteLabels { route })
            .observe(seconds);
    }

    /// Sets a route's outbox gauges: pending events, the oldest pending event's
    /// acceptance time (unix ms; `None` when nothing is pending) and dead letters.
    pub fn outbox(&self, route: &Arc<str>, pending: u64, oldest_ms: Option<u64>, dead: u64) {
        let labels = RouteLabels {
            route: Arc::clone(route),
        };
        let age = oldest_ms.map_or(0, |ms| {
            crate::delivery::outbox::now_ms().saturating_sub(ms) / 1000
        });
        let gauge = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.outbox_pending
            .get_or_create(&labels)
            .set(gauge(pending));
        self.outbox_oldest_age
            .get_or_create(&labels)
            .set(gauge(age));
        self.dead_letters.get_or_create(&labels).set(gauge(dead));
    }

    /// Counts one delivery attempt.
    pub fn delivery(&self, route: &Arc<str>, outcome: DeliveryOutcome) {
        self.deliveries
            .get_or_create(&DeliveryLabels {
                route: Arc::clone(route),
                outcome,
            })
            .inc();
    }

    /// Counts one schema violation (enforced or monitored).
    pub fn schema_violation(&self, route: &Arc<str>) {
        self.schema_violations
            .get_or_create(&RouteLabels {
                route: Arc::clone(route),
            })
            .inc();
    }

    /// Counts one delivered event whose dedup/order mark the store failed to write:
    /// dedup and ordering are not being recorded, so alert on any increase.
    pub fn unrecorded_delivery(&self, route: &Arc<str>) {
        self.unrecorded_deliveries
            .get_or_create(&RouteLabels {
                route: Arc::clone(route),
            })
            .inc();
    }

    /// Counts `n` pending events claimed from other replicas in a takeover.
    pub fn outbox_taken_over(&self, route: &Arc<str>, n: u64) {
        self.outbox_taken_over
            .get_or_create(&RouteLabels {
                route: Arc::clone(route),
            })
            .inc_by(n);
    }

    /// Counts one connection closed before HTTP.
    pub fn connection_closed(&self, reason: CloseReason) {
        self.connections_closed
            .get_or_create(&CloseLabels { reason })
            .inc();
    }

    /// Counts one working connection closed by the gateway.
    pub fn connection_shed(&self, reason: ShedReason) {
        self.connections_shed
            .get_or_create(&ShedLabels { reason })
            .inc();
    }

    /// Counts one connection that waited for a slot at `max_connections`.
    pub fn connection_waited(&self) {
        self.connections_waited.inc();
    }

    /// Counts one accepted connection, open until the guard is dropped.
    pub fn connection_opened(self: &Arc<Self>) -> OpenConnection {
        self.connections_accepted.inc();
        self.connections_open.inc();
        OpenConnection(Arc::clone(self))
    }

    /// Brings the store write counters up to the store's own counts (read at scrape
    /// time; the counts only grow for one store, which outlives reloads).
    pub fn store_writes(&self, commits: u64, changes: u64) {
        let mut seen = self
            .store_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.store_commits.inc_by(commits.saturating_sub(seen.0));
        self.store_changes.inc_by(changes.saturating_sub(seen.1));
        *seen = (seen.0.max(commits), seen.1.max(changes));
    }

    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// Keeps a connection counted in `hookgate_connections_open` while it lives.
#[derive(Debug)]
pub struct OpenConnection(Arc<Metrics>);

impl Drop for OpenConnection {
    fn drop(&mut self) {
        self.0.connections_open.dec();
    }
}

/// The exposition formats `/metrics` speaks, chosen from the scraper's `Accept` as the
/// Prometheus client libraries do: OpenMetrics only when asked for, the classic text
/// format (0.0.4) otherwise, which every scraper and `promtool check metrics` reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
    /// `text/plain; version=0.0.4`.
    Classic,
}

/// Most `Accept` entries looked at: a scraper lists a handful.
const MAX_ACCEPT_ENTRIES: usize = 32;

impl Format {
    /// The format for an `Accept` header value (absent: classic). Among the media
    /// ranges this gateway can serve, the one with the highest `q` wins, the first
    /// listed on a tie; `q=0` excludes.
    pub fn negotiate(accept: Option<&http::HeaderValue>) -> Format {
        let Some(accept) = accept.and_then(|v| v.to_str().ok()) else {
            return Format::Classic;
        };
        let mut best: Option<(Format, f32)> = None;
        for entry in accept.split(',').take(MAX_ACCEPT_ENTRIES) {
            let mut params = entry.split(';').map(str::trim);
            let media = params.next().unwrap_or("").to_ascii_lowercase();
            let format = match media.as_str() {
                "application/openmetrics-text" => Format::OpenMetrics,
                "text/plain" | "text/*" | "*/*" => Format::Classic,
                _ => continue,
            };
            let q = params
                .filter_map(|p| p.split_once('='))
                .find(|(k, _)| k.trim().eq_ignore_ascii_case("q"))
                .map_or(Some(1.0), |(_, v)| v.trim().parse::<f32>().ok())
                .filter(|q| q.is_finite() && *q > 0.0);
            if let Some(q) = q
                && best.is_none_or(|(_, b)| q > b)
            {
                best = Some((format, q));
            }
        }
        best.map_or(Format::Classic, |(f, _)| f)
    }

    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
            Format::Classic => "text/plain; version=0.0.4; charset=utf-8",
        }
    }
}

impl Metrics {
    /// The exposition in `format`.
    pub fn render_as(&self, format: Format) -> String {
        let open = self.render();
        match format {
            Format::OpenMetrics => open,
            Format::Classic => classic_text(&open),
        }
    }
}

/// Rewrites prometheus-client's OpenMetrics text into the classic text format 0.0.4:
/// counters are typed under their sample name (`_total`), `# UNIT`, `# EOF`, `_created`
/// samples and exemplars go, types the classic format lacks become `untyped`.
fn classic_text(open: &str) -> String {
    let counters: std::collections::HashSet<&str> = open
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, t)| *t == "counter")
        .map(|(name, _)| name)
        .collect();
    let family = |name: &str| -> String {
        if counters.contains(name) {
            format!("{name}_total")
        } else {
            name.to_owned()
        }
    };
    let mut out = String::with_capacity(open.len());
    for line in open.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            // OpenMetrics escapes `"` in help text; the classic format does not.
            let help = help.replace("\\\"", "\"");
            out.push_str(&format!("# HELP {} {help}\n", family(name)));
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "unknown"));
            let kind = match kind {
                "counter" | "gauge" | "histogram" | "summary" => kind,
                _ => "untyped",
            };
            out.push_str(&format!("# TYPE {} {kind}\n", family(name)));
            continue;
        }
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = line.get(..name_end).unwrap_or(line);
        if name
            .strip_suffix("_created")
            .is_some_and(|n| counters.contains(n))
        {
            continue;
        }
        // An exemplar (` # {...} value`) may follow the value; the classic format has
        // none. It is looked for after the label set, whose quoted values may hold `#`.
        let after_labels = line.rfind('}').map_or(name_end, |i| i + 1);
        let sample = line
            .get(after_labels..)
            .and_then(|tail| tail.find(" # "))
            .and_then(|i| line.get(..after_labels + i))
            .unwrap_or(line);
        out.push_str(sample);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod format_tests {
    use super::*;

    fn h(v: &'static str) -> http::HeaderValue {
        http::HeaderValue::from_static(v)
    }

    #[test]
    fn negotiation_follows_the_client_libraries() {
        assert_eq!(Format::negotiate(None), Format::Classic);
        assert_eq!(
            Format::negotiate(Some(&h("text/plain;version=0.0.4"))),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some(&h("application/openmetrics-text;version=1.0.0"))),
            Format::OpenMetrics
        );
        // Prometheus' own default Accept prefers OpenMetrics.
        let prometheus = "application/openmetrics-text;version=1.0.0;q=0.5,application/openmetrics-text;version=0.0.1;q=0.4,text/plain;version=0.0.4;q=0.3,*/*;q=0.2";
        assert_eq!(
            Format::negotiate(Some(&http::HeaderValue::from_static(prometheus))),
            Format::OpenMetrics
        );
        assert_eq!(
            Format::negotiate(Some(&h(
                "application/openmetrics-text;q=0.1, text/plain;q=0.9"
            ))),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some(&h("application/openmetrics-text;q=0"))),
            Format::Classic
        );
        assert_eq!(
            Format::negotiate(Some(&h("application/vnd.google.protobuf"))),
            Format::Classic
        );
    }

    #[test]
    fn classic_text_types_every_sample_it_shows() {
        let m = Metrics::new();
        let route: Arc<str> = Arc::from("r");
        m.init_route(&route);
        m.request(Some(&route), Verdict::Forwarded, 0.01);
        m.delivery(&route, DeliveryOutcome::success);
        let text = m.render_as(Format::Classic);
        assert!(
            !text.contains("# EOF") && !text.contains("# UNIT"),
            "{text}"
        );
        assert!(
            text.contains("# TYPE hookgate_requests_total counter\n"),
            "{text}"
        );
        assert!(text.contains("hookgate_requests_total{"), "{text}");
        assert!(
            text.contains("# TYPE hookgate_request_duration_seconds histogram\n"),
            "{text}"
        );
        // Every sample belongs to the family typed last before it.
        let mut family = String::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                family = rest.split(' ').next().unwrap_or("").to_owned();
            } else if !line.starts_with('#') {
                assert!(line.starts_with(family.as_str()), "{line} after {family}");
            }
        }
        assert!(m.render_as(Format::OpenMetrics).ends_with("# EOF\n"));
    }
}
