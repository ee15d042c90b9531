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

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    duration: Family<RouteLabels, Histogram>,
    deliveries: Family<DeliveryLabels, Counter>,
    outbox_pending: Family<RouteLabels, Gauge>,
    dead_letters: Family<RouteLabels, Gauge>,
    schema_violations: Family<RouteLabels, Counter>,
    unrecorded_deliveries: Family<RouteLabels, Counter>,
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
        let schema_violations = Family::<RouteLabels, Counter>::default();
        let unrecorded_deliveries = Family::<RouteLabels, Counter>::default();
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
            "hookgate_unrecorded_deliveries",
            "Delivered events the store could not mark seen (a retry is delivered again)",
            unrecorded_deliveries.clone(),
        );
        Metrics {
            registry,
            requests,
            duration,
            deliveries,
            outbox_pending,
            dead_letters,
            schema_violations,
            unrecorded_deliveries,
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

    /// The Prometheus/OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
